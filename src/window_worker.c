/*-------------------------------------------------------------------------
 *
 * window_worker.c
 *	  The ingest worker's side of event-time windows: watermarks, session
 *	  merging, count windows, late events, and closing windows in the
 *	  checkpoint (windows.c has the model, batch.c and checkpoint.c call
 *	  these).
 *
 * Watermarks.  Per stream, the worker keeps the greatest event time of each
 * of its inputs (each log shard it reads; each Kafka partition, in kafka.c)
 * and publishes their least, minus watermark_delay, in every windowed view
 * (state.c); the view's watermark is the minimum over the slots.
 *
 * Closing.  Our slot's windows close in the checkpoint once the watermark
 * has passed their end plus the allowed lateness.  An index of our slot's
 * groups by window start (built as groups are created and loaded) finds
 * them without a scan of the view's groups.  window_close() writes them to
 * streamproc.window_runs, tombstones their groups in the slot's checkpoint
 * runs and records the watermark, in the checkpoint's transaction; after
 * the commit, window_closed() removes them from shared memory and
 * publishes the watermark our slot closed at, under the view's windows
 * lock, so a reader never sees a window twice or not at all.
 *
 * Late events are kept in memory per view until the checkpoint writes them
 * to the view's late_events table, in the same transaction.
 *
 * Locking: the registry and the windows lock through state.c; the rest is
 * the worker's own memory.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/xact.h"
#include "catalog/pg_type.h"
#include "common/int.h"
#include "executor/spi.h"
#include "miscadmin.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/datum.h"
#include "utils/fmgroids.h"
#include "utils/memutils.h"
#include "utils/resowner.h"
#include "utils/timestamp.h"

#include "engine.h"
#include "packed.h"
#include "streamproc.h"

/* Bytes of closed windows per row of streamproc.window_runs. */
#define WINDOW_RUN_BYTES (1024 * 1024)

/* A group key without its window prefix (hash key of the local indexes). */
typedef struct GroupKeyRef
{
	uint32 len;
	char *bytes;
} GroupKeyRef;

/* Session views: the open sessions of one group in our slot. */
typedef struct SessionGroup
{
	GroupKeyRef key;
	List *spans; /* SessionSpan * */
} SessionGroup;

typedef struct SessionSpan
{
	TimestampTz start;
	TimestampTz end;
} SessionSpan;

/* Count-window views: the current window of one group in our slot. */
typedef struct CountGroup
{
	GroupKeyRef key;
	int64 id;    /* its window id */
	int64 count; /* events in it */
} CountGroup;

/* The closing index: our slot's groups by window start. */
typedef struct OpenWindows
{
	TimestampTz start;
	DirtyList keys; /* (hash, keylen, key) of groups created with this start */
} OpenWindows;

static MemoryContext index_key_cxt; /* where ref_keycopy allocates */

static uint32
ref_hash(const void *key, Size keysize)
{
	const GroupKeyRef *k = key;

	return groupmap_hash(k->bytes, k->len);
}

static int
ref_match(const void *a, const void *b, Size keysize)
{
	const GroupKeyRef *x = a;
	const GroupKeyRef *y = b;

	if (x->len != y->len)
		return 1;
	return memcmp(x->bytes, y->bytes, x->len);
}

static void *
ref_keycopy(void *dest, const void *src, Size keysize)
{
	GroupKeyRef *d = dest;
	const GroupKeyRef *s = src;

	d->len = s->len;
	d->bytes = MemoryContextAlloc(index_key_cxt, Max(s->len, 1));
	memcpy(d->bytes, s->bytes, s->len);
	return dest;
}

static HTAB *
ref_table(const char *name, Size entrysize, MemoryContext cxt)
{
	HASHCTL ctl;

	ctl.keysize = sizeof(GroupKeyRef);
	ctl.entrysize = entrysize;
	ctl.hash = ref_hash;
	ctl.match = ref_match;
	ctl.keycopy = ref_keycopy;
	ctl.hcxt = cxt;
	return hash_create(name, 1024, &ctl,
					   HASH_ELEM | HASH_FUNCTION | HASH_COMPARE | HASH_KEYCOPY | HASH_CONTEXT);
}

/*
 * A set of keys, to visit each group of the closing index once: a group
 * that left our slot and came back is listed under its start twice (the
 * removal from the index is lazy).  True when key was in it already.
 */
static bool
key_seen(HTAB *seen, const char *key, uint32 keylen)
{
	GroupKeyRef k;
	bool found;

	k.len = keylen;
	k.bytes = (char *)key;
	index_key_cxt = GetMemoryChunkContext(seen);
	(void)hash_search(seen, &k, HASH_ENTER, &found);
	return found;
}

/*
 * window_view_init
 *		The worker's window structures of a windowed view.
 */
void
window_view_init(Worker *w, WView *view)
{
	MemoryContext cxt = GetMemoryChunkContext(view);
	HASHCTL ctl;

	view->late_cxt = AllocSetContextCreate(cxt, "streamproc late events", ALLOCSET_DEFAULT_SIZES);
	if (view->window.kind == WINDOW_SESSION)
	{
		Oid ts_type = TIMESTAMPTZOID;

		view->sessions = ref_table("streamproc sessions", sizeof(SessionGroup),
								   AllocSetContextCreate(cxt, "streamproc window index",
														 ALLOCSET_DEFAULT_SIZES));
		view->first_event = streamproc_agg_lookup(F_MIN_TIMESTAMPTZ, InvalidOid, 1, &ts_type);
		view->last_event = streamproc_agg_lookup(F_MAX_TIMESTAMPTZ, InvalidOid, 1, &ts_type);
	}
	if (view->window.kind == WINDOW_COUNT)
		view->counters = ref_table("streamproc count windows", sizeof(CountGroup),
								   AllocSetContextCreate(cxt, "streamproc window index",
														 ALLOCSET_DEFAULT_SIZES));
	ctl.keysize = sizeof(TimestampTz);
	ctl.entrysize = sizeof(OpenWindows);
	ctl.hcxt = AllocSetContextCreate(cxt, "streamproc open windows", ALLOCSET_DEFAULT_SIZES);
	view->open_ends = hash_create("streamproc open windows", 64, &ctl,
								  HASH_ELEM | HASH_BLOBS | HASH_CONTEXT);
	pending_init(&view->closing);
}

/* Add or remove a session of our slot in the view's session index. */
static void
session_index(WView *view, const char *key, uint32 keylen, bool add)
{
	SessionGroup *g;
	GroupKeyRef k;
	TimestampTz start;
	TimestampTz end;
	ListCell *lc;
	bool found;

	streamproc_window_key_decode(key, keylen, &start, &end);
	k.len = keylen - WINDOW_KEY_PREFIX;
	k.bytes = (char *)key + WINDOW_KEY_PREFIX;
	index_key_cxt = GetMemoryChunkContext(view->sessions);
	g = hash_search(view->sessions, &k, add ? HASH_ENTER : HASH_FIND, &found);
	if (!found)
	{
		if (add)
			g->spans = NIL;
		else
			return;
	}
	foreach (lc, g->spans)
	{
		SessionSpan *span = lfirst(lc);

		if (span->start == start && span->end == end)
		{
			if (!add)
			{
				g->spans = foreach_delete_current(g->spans, lc);
				pfree(span);
				if (g->spans == NIL)
				{
					char *bytes = g->key.bytes;

					(void)hash_search(view->sessions, &k, HASH_REMOVE, NULL);
					pfree(bytes);
				}
			}
			return;
		}
	}
	if (add)
	{
		MemoryContext old = MemoryContextSwitchTo(GetMemoryChunkContext(view->sessions));
		SessionSpan *span = palloc(sizeof(SessionSpan));

		span->start = start;
		span->end = end;
		g->spans = lappend(g->spans, span);
		MemoryContextSwitchTo(old);
	}
}

/* Our current window of a group is (id, count), unless we know a later one. */
static void
count_index(WView *view, const char *key, uint32 keylen, int64 id, int64 count)
{
	CountGroup *g;
	GroupKeyRef k;
	bool found;

	k.len = keylen - WINDOW_KEY_PREFIX;
	k.bytes = (char *)key + WINDOW_KEY_PREFIX;
	index_key_cxt = GetMemoryChunkContext(view->counters);
	g = hash_search(view->counters, &k, HASH_ENTER, &found);
	if (!found || id > g->id || (id == g->id && count > g->count))
	{
		g->id = id;
		g->count = count;
	}
}

/* List a group of our slot in the closing index, under its window start. */
static void
open_index(WView *view, const char *key, uint32 keylen)
{
	TimestampTz start;
	TimestampTz end;
	OpenWindows *ow;
	bool found;
	uint32 hash = groupmap_hash(key, keylen);

	streamproc_window_key_decode(key, keylen, &start, &end);
	if (view->window.kind == WINDOW_COUNT)
		start = 0; /* one list: full windows are looked for at closing */
	ow = hash_search(view->open_ends, &start, HASH_ENTER, &found);
	if (!found)
	{
		MemoryContext old = MemoryContextSwitchTo(GetMemoryChunkContext(view->open_ends));

		ow->start = start;
		initStringInfo(&ow->keys.buf);
		ow->keys.count = 0;
		MemoryContextSwitchTo(old);
	}
	appendBinaryStringInfo(&ow->keys.buf, (char *)&hash, sizeof(uint32));
	appendBinaryStringInfo(&ow->keys.buf, (char *)&keylen, sizeof(uint32));
	appendBinaryStringInfo(&ow->keys.buf, key, keylen);
	ow->keys.count++;
}

/*
 * window_group_loaded
 *		Bookkeeping when a group enters our slot (add) or leaves it: the
 *		session and count-window indexes and the closing index.  Removal
 *		from the closing index is lazy (a group that left is skipped when
 *		its window closes).
 */
void
window_group_loaded(WView *view, const char *key, uint32 keylen, bool add)
{
	TimestampTz start;
	TimestampTz end;

	streamproc_window_key_decode(key, keylen, &start, &end);
	if (view->window.kind == WINDOW_SESSION)
		session_index(view, key, keylen, add);
	if (!add)
		return;
	if (view->window.kind == WINDOW_COUNT)
	{
		count_index(view, key, keylen, start, end);
		if (end >= view->window.size)
			view->min_end = DT_NOBEGIN; /* a full window: close it */
	}
	else if (end < view->min_end)
		view->min_end = end; /* a hop slice's first window ends with it */
	open_index(view, key, keylen);
}

/* ----------------------------------------------------------------
 * Session and count windows: merging a batch's pieces
 * ----------------------------------------------------------------
 */

/* Order pieces by group, then start. */
static int
window_piece_cmp(const ListCell *a, const ListCell *b)
{
	const WindowPiece *x = lfirst(a);
	const WindowPiece *y = lfirst(b);
	int c;

	if (x->glen != y->glen)
		return x->glen < y->glen ? -1 : 1;
	c = memcmp(x->gkey, y->gkey, x->glen);
	if (c != 0)
		return c;
	if (x->start != y->start)
		return x->start < y->start ? -1 : 1;
	return 0;
}

static char *
window_key(WindowPiece *p, TimestampTz start, TimestampTz end, uint32 *keylen)
{
	char *key = palloc(WINDOW_KEY_PREFIX + Max(p->glen, 1));

	streamproc_window_key_prefix(key, start, end);
	memcpy(key + WINDOW_KEY_PREFIX, p->gkey, p->glen);
	*keylen = WINDOW_KEY_PREFIX + p->glen;
	return key;
}

/* Our slot's state of a group, copied (NULL: none). */
static char *
slot_state(Worker *w, WView *view, const char *key, uint32 keylen, uint32 *len)
{
	StringInfoData buf;

	initStringInfo(&buf);
	if (!groupmap_get_slot(view->map, groupmap_hash(key, keylen), key, keylen, w->index, &buf))
	{
		pfree(buf.data);
		return NULL;
	}
	*len = buf.len;
	return buf.data;
}

static void
pending_put(Pending *pending, const char *key, uint32 keylen, const char *state,
			uint32 statelen, int32 oldlen)
{
	pending_add(pending, groupmap_hash(key, keylen), key, keylen, state, (int32)statelen,
				oldlen);
}

/*
 * Count windows: per group, in processing order, the batch's events fill
 * the group's current window up to the size and then start the next one.
 * A window's key carries its id and how many events it has, so a growing
 * window is stored under a new key and the old one removed.
 */
static void
merge_count_windows(Worker *w, WView *view, List *pieces, Pending *pending)
{
	StringInfoData buf;
	int npieces = list_length(pieces);
	int first;

	initStringInfo(&buf);
	for (first = 0; first < npieces;)
	{
		WindowPiece *g = list_nth(pieces, first);
		CountGroup *current;
		GroupKeyRef k;
		int64 id = 0;
		int64 count = 0;
		int64 old_count = 0;
		char *state = NULL;
		uint32 statelen = 0;
		PackedAccum acc;

		k.len = g->glen;
		k.bytes = g->gkey;
		current = hash_search(view->counters, &k, HASH_FIND, NULL);
		if (current != NULL)
		{
			id = current->id;
			count = old_count = current->count;
		}
		if (count >= view->window.size)
		{
			id++;
			count = old_count = 0;
		}
		else if (count > 0)
		{
			uint32 keylen;
			char *open = window_key(g, id, count, &keylen);

			state = slot_state(w, view, open, keylen, &statelen);
		}
		streamproc_packed_accum_init(&acc, view->aggs, CurrentMemoryContext);
		if (state != NULL)
			streamproc_packed_accum_add(&acc, state, statelen);
		for (; first < npieces && ((WindowPiece *)list_nth(pieces, first))->glen == g->glen &&
			   memcmp(((WindowPiece *)list_nth(pieces, first))->gkey, g->gkey, g->glen) == 0;
			 first++)
		{
			WindowPiece *p = list_nth(pieces, first);

			streamproc_packed_accum_add(&acc, p->state, p->statelen);
			count++;
			if (count == view->window.size || first + 1 == npieces ||
				((WindowPiece *)list_nth(pieces, first + 1))->glen != g->glen ||
				memcmp(((WindowPiece *)list_nth(pieces, first + 1))->gkey, g->gkey, g->glen) != 0)
			{
				uint32 keylen;
				char *key = window_key(g, id, count, &keylen);

				resetStringInfo(&buf);
				(void)streamproc_packed_accum_result(&acc, &buf);
				if (old_count > 0 && old_count != count)
				{
					uint32 oldkeylen;
					char *oldkey = window_key(g, id, old_count, &oldkeylen);

					pending_put(pending, oldkey, oldkeylen, NULL, 0, (int32)statelen);
				}
				pending_put(pending, key, keylen, buf.data, buf.len, -1);
				if (count == view->window.size)
				{
					id++;
					count = old_count = 0;
					statelen = 0;
				}
				streamproc_packed_accum_init(&acc, view->aggs, CurrentMemoryContext);
			}
		}
	}
	pfree(buf.data);
}

/*
 * Sessions: the batch query yields, per group, one piece per bin of one
 * gap, [first event, last event + gap) (its events are less than a gap
 * apart: one session).  Per group, sort them with our slot's open sessions
 * by start and merge the ones that overlap (gaps and islands); every
 * merged session that took a new piece replaces the open sessions it
 * swallowed.
 */
static void
merge_sessions(Worker *w, WView *view, List *pieces, Pending *pending)
{
	StringInfoData buf;
	int npieces = list_length(pieces);
	int first;

	initStringInfo(&buf);
	for (first = 0; first < npieces;)
	{
		WindowPiece *g = list_nth(pieces, first);
		List *run = NIL;
		SessionGroup *open;
		GroupKeyRef k;
		int last = first;
		ListCell *lc;
		WindowPiece *cur = NULL;
		List *members = NIL;
		bool has_new = false;
		int j;

		while (last < npieces && ((WindowPiece *)list_nth(pieces, last))->glen == g->glen &&
			   memcmp(((WindowPiece *)list_nth(pieces, last))->gkey, g->gkey, g->glen) == 0)
			run = lappend(run, list_nth(pieces, last++));

		/* The group's open sessions join the run. */
		k.len = g->glen;
		k.bytes = g->gkey;
		open = hash_search(view->sessions, &k, HASH_FIND, NULL);
		if (open != NULL)
		{
			foreach (lc, open->spans)
			{
				SessionSpan *span = lfirst(lc);
				WindowPiece *p = palloc0(sizeof(WindowPiece));

				p->gkey = g->gkey;
				p->glen = g->glen;
				p->start = span->start;
				p->end = span->end;
				p->existing = true;
				run = lappend(run, p);
			}
			list_sort(run, window_piece_cmp);
		}

		/* Sweep: pieces that overlap the current session join it. */
		for (j = 0; j <= list_length(run); j++)
		{
			WindowPiece *p = j < list_length(run) ? list_nth(run, j) : NULL;

			if (cur != NULL && p != NULL && p->start < cur->end)
			{
				cur->end = Max(cur->end, p->end);
				members = lappend(members, p);
				has_new |= !p->existing;
				continue;
			}
			if (cur != NULL && has_new)
			{
				uint32 outlen;
				char *outkey = window_key(cur, cur->start, cur->end, &outlen);
				int32 outold = -1;
				PackedAccum acc;
				ListCell *mc;

				streamproc_packed_accum_init(&acc, view->aggs, CurrentMemoryContext);
				foreach (mc, members)
				{
					WindowPiece *m = lfirst(mc);

					if (m->existing)
					{
						uint32 mlen;
						char *mkey = window_key(m, m->start, m->end, &mlen);
						uint32 mstatelen = 0;
						char *mstate = slot_state(w, view, mkey, mlen, &mstatelen);

						if (mlen != outlen || memcmp(mkey, outkey, mlen) != 0)
							pending_put(pending, mkey, mlen, NULL, 0, mstate ? (int32)mstatelen : -1);
						else
							outold = mstate ? (int32)mstatelen : -1;
						if (mstate != NULL)
							streamproc_packed_accum_add(&acc, mstate, mstatelen);
					}
					else
						streamproc_packed_accum_add(&acc, m->state, m->statelen);
				}
				resetStringInfo(&buf);
				if (streamproc_packed_accum_result(&acc, &buf))
					pending_put(pending, outkey, outlen, buf.data, buf.len, outold);
			}
			if (p == NULL)
				break;
			cur = palloc(sizeof(WindowPiece));
			*cur = *p;
			members = list_make1(p);
			has_new = !p->existing;
		}
		first = last;
	}
	pfree(buf.data);
}

/*
 * window_merge_pieces
 *		The rows of a session or count-window view's batch query, merged
 *		with our slot's open windows into pending.
 */
void
window_merge_pieces(Worker *w, WView *view, List *pieces, Pending *pending)
{
	list_sort(pieces, window_piece_cmp);
	if (view->window.kind == WINDOW_SESSION)
		merge_sessions(w, view, pieces, pending);
	else
		merge_count_windows(w, view, pieces, pending);
}

/* ----------------------------------------------------------------
 * Watermarks
 * ----------------------------------------------------------------
 */

/*
 * window_publish_watermarks
 *		Publish our event times of a stream for its windowed views (see
 *		streamproc_state_publish_watermark for how the view's watermark
 *		follows from every slot's): the greatest event time in the log
 *		shards we read, the least greatest over our active Kafka partitions,
 *		the greatest of all.  Asks for a checkpoint when a view's watermark
 *		passed the one our slot closed windows at, and wakes the other
 *		workers when we moved it: their windows may close too.
 */
void
window_publish_watermarks(Worker *w, WStream *stream)
{
	SlotEventTimes times;
	TimestampTz now;
	bool wake = false;
	ListCell *lc;

	if (stream->event_time == InvalidAttrNumber)
		return;
	memset(&times, 0, sizeof(times));
	times.log_time = DT_NOBEGIN;
	times.kafka_least = DT_NOEND;
	times.greatest = DT_NOBEGIN;
	now = GetCurrentTimestamp();
	foreach (lc, stream->shards)
	{
		WShard *shard = lfirst(lc);

		if (shard->last_event == 0)
			continue;
		times.log_seen = true;
		times.log_time = Max(times.log_time, shard->max_time);
		if (stream->idle_timeout < 0 || now - shard->last_event < stream->idle_timeout)
			times.log_active = true;
	}
	times.greatest = times.log_time;
	foreach (lc, stream->sources)
	{
		TimestampTz t;
		TimestampTz g;

		if (streamproc_kafka_event_times(lfirst(lc), now, stream->idle_timeout, &t, &g))
		{
			times.kafka_least = Min(times.kafka_least, t);
			times.kafka_active = true;
		}
		times.greatest = Max(times.greatest, g);
	}

	foreach (lc, stream->views)
	{
		WView *view = lfirst(lc);
		TimestampTz watermark;
		bool advanced;

		if (view->window.kind == 0 || view->window.kind == WINDOW_COUNT || view->vs == NULL)
			continue;
		watermark = streamproc_state_publish_watermark(view->vs, w->index, &times,
													   stream->watermark_delay, &advanced);
		if (watermark > view->closed)
			w->checkpoint_needed = true;
		wake |= advanced;
	}
	if (wake)
		streamproc_wake_workers(MyDatabaseId);
}

/* ----------------------------------------------------------------
 * Closing
 * ----------------------------------------------------------------
 */

/* Closed windows being written, in runs of WINDOW_RUN_BYTES. */
typedef struct ClosedRuns
{
	WView *view;
	Worker *w;
	TimestampTz mark; /* the closing watermark (count: checkpoint time) */
	StringInfoData run;
	int entries;
	int64 start_lo;
	int64 start_hi;
	TimestampTz end_hi;
} ClosedRuns;

static void
flush_closed(ClosedRuns *cr)
{
	Datum args[9];
	bytea *data;
	int ret;

	if (cr->entries == 0)
		return;
	data = palloc(cr->run.len + VARHDRSZ);
	SET_VARSIZE(data, cr->run.len + VARHDRSZ);
	memcpy(VARDATA(data), cr->run.data, cr->run.len);
	args[0] = ObjectIdGetDatum(cr->view->viewid);
	args[1] = Int32GetDatum(cr->w->index);
	args[2] = TimestampTzGetDatum(cr->mark);
	args[3] = Int64GetDatum(cr->start_lo);
	args[4] = Int64GetDatum(cr->start_hi);
	args[5] = TimestampTzGetDatum(cr->end_hi);
	args[6] = Int32GetDatum(cr->entries);
	args[7] = PointerGetDatum(data);
	ret = SPI_execute_with_args("INSERT INTO streamproc.window_runs"
								" (view, slot, closed, start_lo, start_hi, end_hi, entries, data)"
								" VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
								8, (Oid[]){OIDOID, INT4OID, TIMESTAMPTZOID, INT8OID, INT8OID, TIMESTAMPTZOID, INT4OID, BYTEAOID},
								args, NULL, false, 0);
	if (ret != SPI_OK_INSERT)
		elog(ERROR, "could not write streamproc.window_runs: %s", SPI_result_code_string(ret));
	pfree(data);
	resetStringInfo(&cr->run);
	cr->entries = 0;
}

static void
closed_row_callback(const char *key, uint32 keylen, const char *state, uint32 statelen,
					void *arg)
{
	ClosedRuns *cr = arg;
	TimestampTz start;
	TimestampTz end;

	streamproc_window_key_decode(key, keylen, &start, &end);
	if (cr->entries == 0)
	{
		cr->start_lo = start;
		cr->start_hi = start;
		cr->end_hi = cr->view->window.kind == WINDOW_COUNT ? cr->mark : end;
	}
	cr->start_lo = Min(cr->start_lo, start);
	cr->start_hi = Max(cr->start_hi, start);
	if (cr->view->window.kind != WINDOW_COUNT)
		cr->end_hi = Max(cr->end_hi, end);
	run_append(&cr->run, key, keylen, state, statelen);
	cr->entries++;
	if (cr->run.len >= WINDOW_RUN_BYTES)
		flush_closed(cr);
}

/*
 * window_close
 *		In the checkpoint: write our slot's windows that the watermark (count
 *		windows: fullness) closed to streamproc.window_runs, tombstone the
 *		groups that leave our slot in its checkpoint runs, record the
 *		watermark and apply the retention.  What leaves shared memory is kept
 *		in view->closing for window_closed() after the commit.
 */
void
window_close(Worker *w, WView *view)
{
	const WindowSpec *spec = &view->window;
	TimestampTz watermark;
	TimestampTz old_bound;
	TimestampTz new_bound;
	Datum args[3];
	int ret;

	resetStringInfo(&view->closing.arena);
	view->closing.count = 0;
	view->closing_min_end = view->min_end;
	if (spec->kind == WINDOW_COUNT)
	{
		/* Full windows close now: the mark is the checkpoint's time. */
		watermark = Max(GetCurrentTimestamp(), view->closed + 1);
		old_bound = view->closed;
		new_bound = spec->size;
	}
	else
	{
		watermark = streamproc_state_watermark(view->vs);
		if (watermark <= view->closed)
		{
			view->closing_mark = DT_NOBEGIN;
			return;
		}
		old_bound = streamproc_window_close_bound(spec, view->closed);
		new_bound = streamproc_window_close_bound(spec, watermark);
	}
	view->closing_mark = watermark;

	if (spec->kind == WINDOW_COUNT || new_bound >= view->min_end)
	{
		MemoryContext old = MemoryContextSwitchTo(w->batch_cxt);
		GroupTable *closed = streamproc_group_table_create(view->aggs, w->batch_cxt);
		ClosedRuns cr;
		HASH_SEQ_STATUS seq;
		OpenWindows *ow;
		TimestampTz min_end = DT_NOEND;
		StringInfoData state;
		HTAB *seen = ref_table("streamproc closing keys", sizeof(GroupKeyRef),
							   w->batch_cxt);

		initStringInfo(&state);
		hash_seq_init(&seq, view->open_ends);
		while ((ow = hash_seq_search(&seq)) != NULL)
		{
			int64 pos = 0;

			/* Tumble, session: windows starting at or after the bound stay. */
			if (spec->kind != WINDOW_COUNT && spec->kind != WINDOW_HOP && ow->start >= new_bound)
			{
				min_end = Min(min_end, ow->start + (spec->kind == WINDOW_TUMBLE ? spec->slide : 0));
				continue;
			}
			if (spec->kind == WINDOW_HOP && ow->start + spec->slide > new_bound)
			{
				min_end = Min(min_end, ow->start + spec->slide);
				continue;
			}
			while (pos < ow->keys.buf.len)
			{
				uint32 hash;
				uint32 keylen;
				const char *key;
				TimestampTz start;
				TimestampTz end;
				TimestampTz last_end;
				bool leaves;

				memcpy(&hash, ow->keys.buf.data + pos, sizeof(uint32));
				memcpy(&keylen, ow->keys.buf.data + pos + sizeof(uint32), sizeof(uint32));
				key = ow->keys.buf.data + pos + 2 * sizeof(uint32);
				pos += 2 * sizeof(uint32) + keylen;

				if (key_seen(seen, key, keylen))
					continue; /* listed twice: it left our slot and came back */
				resetStringInfo(&state);
				if (!groupmap_get_slot(view->map, hash, key, keylen, w->index, &state))
					continue; /* left our slot (a merged session, closed) */
				streamproc_window_key_decode(key, keylen, &start, &end);
				if (spec->kind == WINDOW_COUNT && end < new_bound)
					continue; /* not full yet */
				/* A hop slice's last window starts with it. */
				last_end = spec->kind == WINDOW_HOP ? start + spec->size : end;
				if (spec->kind == WINDOW_HOP)
				{
					if (end <= new_bound && last_end > old_bound)
						streamproc_group_table_add_slice(closed, spec, key, keylen, state.data,
														 state.len, old_bound, new_bound);
				}
				else if (spec->kind == WINDOW_COUNT || end <= new_bound)
					streamproc_group_table_add(closed, key, keylen, state.data, state.len);

				leaves = spec->kind == WINDOW_COUNT || last_end <= new_bound;
				if (leaves)
				{
					/* Tombstoned in the slot's runs now, removed after the commit. */
					statestore_put(view->store, hash, key, keylen, NULL, 0);
					pending_add(&view->closing, hash, key, keylen, NULL, -1, (int32)state.len);
				}
				else
				{
					if (spec->kind == WINDOW_HOP)
						min_end = Min(min_end, streamproc_window_bin(new_bound, spec->slide, spec->origin) + spec->slide);
					else
						min_end = Min(min_end, end);
				}
			}
		}

		memset(&cr, 0, sizeof(cr));
		cr.view = view;
		cr.w = w;
		cr.mark = watermark;
		initStringInfo(&cr.run);
		streamproc_group_table_emit(closed, closed_row_callback, &cr);
		flush_closed(&cr);
		view->closing_min_end = min_end; /* for window_closed() */
		MemoryContextSwitchTo(old);
	}

	args[0] = ObjectIdGetDatum(view->viewid);
	args[1] = Int32GetDatum(w->index);
	args[2] = TimestampTzGetDatum(watermark);
	ret = SPI_execute_with_args("INSERT INTO streamproc.view_watermarks AS w (view, slot, watermark) VALUES ($1, $2, $3)"
								" ON CONFLICT (view, slot) DO UPDATE SET watermark = GREATEST(w.watermark, excluded.watermark)",
								3, (Oid[]){OIDOID, INT4OID, TIMESTAMPTZOID}, args, NULL, false, 0);
	if (ret != SPI_OK_INSERT)
		elog(ERROR, "could not write streamproc.view_watermarks: %s", SPI_result_code_string(ret));

	if (spec->retention >= 0 && !TIMESTAMP_NOT_FINITE(watermark) &&
		watermark - spec->retention > MIN_TIMESTAMP)
	{
		args[2] = TimestampTzGetDatum(watermark - spec->retention);
		ret = SPI_execute_with_args("DELETE FROM streamproc.window_runs WHERE view = $1 AND slot = $2 AND end_hi < $3",
									3, (Oid[]){OIDOID, INT4OID, TIMESTAMPTZOID}, args, NULL, false, 0);
		if (ret != SPI_OK_DELETE)
			elog(ERROR, "could not apply the retention of streamproc.window_runs: %s",
				 SPI_result_code_string(ret));
	}
}

/*
 * Drop from the closing index the groups that left our slot (closed,
 * merged), and the window starts left without any, among the windows that
 * start before the closing bound (those a closing looked at).
 */
static void
compact_open_index(Worker *w, WView *view, TimestampTz bound)
{
	HASH_SEQ_STATUS seq;
	OpenWindows *ow;
	StringInfoData kept;
	StringInfoData state;
	MemoryContext seencxt = AllocSetContextCreate(CurrentMemoryContext, "streamproc closing keys",
												  ALLOCSET_DEFAULT_SIZES);
	HTAB *seen = ref_table("streamproc closing keys", sizeof(GroupKeyRef), seencxt);

	initStringInfo(&kept);
	initStringInfo(&state);
	hash_seq_init(&seq, view->open_ends);
	while ((ow = hash_seq_search(&seq)) != NULL)
	{
		int64 pos = 0;
		int64 nkept = 0;

		if (view->window.kind != WINDOW_COUNT && ow->start >= bound)
			continue; /* nothing of it closed */
		resetStringInfo(&kept);
		while (pos < ow->keys.buf.len)
		{
			uint32 hash;
			uint32 keylen;
			const char *key;

			memcpy(&hash, ow->keys.buf.data + pos, sizeof(uint32));
			memcpy(&keylen, ow->keys.buf.data + pos + sizeof(uint32), sizeof(uint32));
			key = ow->keys.buf.data + pos + 2 * sizeof(uint32);
			pos += 2 * sizeof(uint32) + keylen;
			if (key_seen(seen, key, keylen))
				continue;
			resetStringInfo(&state);
			if (!groupmap_get_slot(view->map, hash, key, keylen, w->index, &state))
				continue;
			appendBinaryStringInfo(&kept, (char *)&hash, sizeof(uint32));
			appendBinaryStringInfo(&kept, (char *)&keylen, sizeof(uint32));
			appendBinaryStringInfo(&kept, key, keylen);
			nkept++;
		}
		if (nkept == 0)
		{
			pfree(ow->keys.buf.data);
			(void)hash_search(view->open_ends, &ow->start, HASH_REMOVE, NULL);
			continue;
		}
		resetStringInfo(&ow->keys.buf);
		appendBinaryStringInfo(&ow->keys.buf, kept.data, kept.len);
		ow->keys.count = nkept;
	}
	pfree(kept.data);
	pfree(state.data);
	MemoryContextDelete(seencxt);
}

/*
 * window_closed
 *		After the checkpoint committed: remove the closed windows from shared
 *		memory and publish the watermark our slot closed at, under the view's
 *		windows lock, so that a reader (which holds it shared while it reads
 *		shared memory and the bounds) sees either neither change or both.
 */
void
window_closed(Worker *w, WView *view)
{
	char *base = view->closing.arena.data;
	int64 pos = 0;
	int64 i;

	if (view->closing_mark == DT_NOBEGIN || view->closing_mark <= view->closed)
		return;
	streamproc_state_begin_closing(view->vs);
	for (i = 0; i < view->closing.count; i++)
	{
		PendingHeader h;
		const char *key;
		bool existed;
		bool deleted;
		int part;

		memcpy(&h, base + pos, sizeof(h));
		key = base + pos + sizeof(h);
		pos += sizeof(h) + h.keylen;
		part = GROUPMAP_PARTITION(h.hash);
		groupmap_lock_partition(view->map, part);
		(void)groupmap_remove(view->map, h.hash, key, h.keylen, w->index, &existed, &deleted);
		groupmap_unlock_partition(view->map, part);
		statestore_note(view->store, h.hash, h.keylen, existed ? h.oldlen : -1, -1);
		if (view->window.kind == WINDOW_SESSION)
			session_index(view, key, h.keylen, false);
	}
	streamproc_state_end_closing(view->vs, w->index, view->closing_mark);
	view->closed = view->closing_mark;
	view->cutoff = streamproc_window_cutoff(&view->window, view->closing_mark);
	view->min_end = view->closing_min_end;
	resetStringInfo(&view->closing.arena);
	view->closing.count = 0;
	compact_open_index(w, view, view->window.kind == WINDOW_COUNT ? 0 : streamproc_window_close_bound(&view->window, view->closed));
}

/* ----------------------------------------------------------------
 * Late events
 * ----------------------------------------------------------------
 */

/* Keep a late event (a row of the stream) for the view's late_events table. */
static void
keep_late_row(WView *view, TupleDesc desc, Datum *values, bool *nulls)
{
	MemoryContext old = MemoryContextSwitchTo(view->late_cxt);
	SourceRows *l = &view->late;
	int natts = desc->natts;
	int j;

	if (l->nrows >= view->late_cap)
	{
		int cap = Max(view->late_cap * 2, 256);

		l->values = view->late_cap ? repalloc(l->values, sizeof(Datum) * cap * Max(natts, 1))
								   : palloc(sizeof(Datum) * cap * Max(natts, 1));
		l->nulls = view->late_cap ? repalloc(l->nulls, sizeof(bool) * cap * Max(natts, 1))
								  : palloc(sizeof(bool) * cap * Max(natts, 1));
		view->late_marks = view->late_cap ? repalloc(view->late_marks, sizeof(TimestampTz) * cap)
										  : palloc(sizeof(TimestampTz) * cap);
		view->late_cap = cap;
	}
	l->desc = desc;
	l->natts = natts;
	for (j = 0; j < natts; j++)
	{
		Form_pg_attribute attr = TupleDescAttr(desc, j);
		int to = l->nrows * natts + j;

		l->nulls[to] = nulls[j] || attr->attisdropped;
		l->values[to] = l->nulls[to] ? (Datum)0 : datumCopy(values[j], attr->attbyval, attr->attlen);
	}
	view->late_marks[l->nrows] = view->closed;
	l->nrows++;
	MemoryContextSwitchTo(old);
}

/* A late event: counted, and kept for late_events when the view has it. */
static void
late_event(Worker *w, WView *view, TupleDesc desc, Datum *values, bool *nulls)
{
	view->stats.late_events++;
	view->stats.events--;
	if (view->late_plan != NULL || view->late_error != NULL)
	{
		keep_late_row(view, desc, values, nulls);
		if (view->late.nrows >= PENDING_ROWS_CHECKPOINT)
			w->checkpoint_soon = true; /* they are kept in memory until then */
	}
}

/* An event without event time: an error of the windowed view. */
static void
record_null_event_time(Worker *w, WStream *stream, WView *view, const char *position,
					   const char *event)
{
	ErrorData edata;

	memset(&edata, 0, sizeof(edata));
	edata.sqlerrcode = ERRCODE_NOT_NULL_VIOLATION;
	edata.message = psprintf("event time column \"%s\" is null",
							 NameStr(TupleDescAttr(stream->desc, stream->event_time - 1)->attname));
	worker_record_failure(w, &w->failed_events, stream->name, view, position, event, &edata);
	view->stats.errors++;
	view->stats.events--;
}

/*
 * window_log_late_events
 *		The log rows of a batch that are late for a windowed view (or have
 *		no event time): the batch query skipped them.  args are a batch
 *		query's range arguments.
 */
void
window_log_late_events(Worker *w, WShard *shard, WView *view, Datum *args,
					   const char *nulls)
{
	WStream *stream = shard->stream;
	Datum *values = palloc(sizeof(Datum) * Max(stream->desc->natts, 1));
	bool *isnull = palloc(sizeof(bool) * Max(stream->desc->natts, 1));
	uint64 i;
	int ret;

	ret = SPI_execute_plan(shard->late_rows_plan, args, nulls, true, 0);
	if (ret != SPI_OK_SELECT)
		elog(ERROR, "could not read late events: %s", SPI_result_code_string(ret));
	for (i = 0; i < SPI_processed; i++)
	{
		HeapTuple tup = SPI_tuptable->vals[i];
		int col = 3;
		int j;

		for (j = 0; j < stream->desc->natts; j++)
		{
			if (TupleDescAttr(stream->desc, j)->attisdropped)
			{
				values[j] = (Datum)0;
				isnull[j] = true;
				continue;
			}
			values[j] = SPI_getbinval(tup, SPI_tuptable->tupdesc, col++, &isnull[j]);
		}
		if (isnull[stream->event_time - 1])
			record_null_event_time(w, stream, view,
								   psprintf("log row %s", SPI_getvalue(tup, SPI_tuptable->tupdesc, 1)),
								   SPI_getvalue(tup, SPI_tuptable->tupdesc, 2));
		else
			late_event(w, view, stream->desc, values, isnull);
	}
	SPI_freetuptable(SPI_tuptable);
}

/*
 * window_checkpoint_late_rows
 *		In the checkpoint: insert the view's late events into its
 *		late_events table, one statement per watermark (row by row after a
 *		failure of some row's data, which goes to streamproc.errors).
 */
void
window_checkpoint_late_rows(Worker *w, WStream *stream, WView *view)
{
	SourceRows *l = &view->late;
	int first = 0;

	if (l->nrows == 0)
		return;
	if (view->late_plan == NULL)
	{
		ErrorData edata;
		int i;

		memset(&edata, 0, sizeof(edata));
		edata.sqlerrcode = ERRCODE_UNDEFINED_COLUMN;
		edata.message = view->late_error;
		for (i = 0; i < l->nrows; i++)
			worker_record_failure(w, &view->batch_failures, stream->name, view, "late event",
								  worker_row_as_json(stream, l, i), &edata);
		return;
	}
	streamproc_source_rows = l;
	while (first < l->nrows)
	{
		int last = first;
		Datum args[2];
		ErrorData *edata = NULL;
		bool unfit = false;
		int i;

		while (last < l->nrows && view->late_marks[last] == view->late_marks[first])
			last++;
		args[0] = TimestampTzGetDatum(view->late_marks[first]);
		args[1] = CStringGetTextDatum("window closed");
		l->first = first;
		l->count = last - first;
		if (!batch_run_late(w, view, args, &edata, &unfit) && !unfit)
		{
			for (i = first; i < last && !unfit; i++)
			{
				edata = NULL;
				l->first = i;
				l->count = 1;
				if (!batch_run_late(w, view, args, &edata, &unfit) && !unfit)
					worker_record_failure(w, &view->batch_failures, stream->name, view, "late event",
										  worker_row_as_json(stream, l, i), edata);
			}
			if (unfit)
				first = i - 1;
		}
		if (unfit)
		{
			/*
			 * The table no longer fits: this and the remaining late events
			 * go to streamproc.errors, and so do later ones until the next
			 * catalog change prepares the INSERT again.
			 */
			view->late_error = MemoryContextStrdup(GetMemoryChunkContext(view),
												   psprintf("late events of continuous view \"%s\" cannot be written to its late_events table: %s",
															view->name, edata->message));
			ereport(WARNING,
					(errmsg("%s", view->late_error),
					 errhint("Late events go to streamproc.errors until the table has the stream's columns and \"view\", \"watermark\" and \"reason\" again.")));
			edata->message = view->late_error;
			for (i = first; i < l->nrows; i++)
				worker_record_failure(w, &view->batch_failures, stream->name, view, "late event",
									  worker_row_as_json(stream, l, i), edata);
			SPI_freeplan(view->late_plan);
			view->late_plan = NULL;
			pfree(view->late_query);
			view->late_query = NULL;
			break;
		}
		first = last;
	}
	streamproc_source_rows = NULL;
}

/*
 * window_source_late_events
 *		The rows of a Kafka batch a windowed view read that are late for it,
 *		or have no event time: its source query skipped them.
 */
void
window_source_late_events(Worker *w, WStream *stream, KafkaSource *src, WView *view,
						  SourceRows *rows, const bool *skip, rd_kafka_message_t **msgs,
						  const int *rowmsg)
{
	int att = stream->event_time - 1;
	int i;

	for (i = 0; i < rows->nrows; i++)
	{
		Datum *values = rows->values + (Size)i * rows->natts;
		bool *nulls = rows->nulls + (Size)i * rows->natts;

		if (skip != NULL && skip[i])
			continue;
		if (nulls[att])
		{
			worker_record_kafka_failure(w, &w->failed_events, src, view, msgs[rowmsg[i]],
										ERRCODE_NOT_NULL_VIOLATION,
										psprintf("event time column \"%s\" is null",
												 NameStr(TupleDescAttr(stream->desc, att)->attname)),
										NULL);
			view->stats.errors++;
			view->stats.events--;
		}
		else if (DatumGetTimestampTz(values[att]) < view->cutoff)
			late_event(w, view, stream->desc, values, nulls);
	}
}

/*
 * window_note_event_times
 *		Tell kafka.c the greatest event time of each partition of a batch,
 *		and that the partition had events (for idle_timeout).
 */
void
window_note_event_times(WStream *stream, KafkaSource *src, SourceRows *rows,
						rd_kafka_message_t **msgs, int nmsgs, const int *rowmsg)
{
	int att = stream->event_time - 1;
	int32 *parts = palloc(sizeof(int32) * Max(nmsgs, 1));
	TimestampTz *maxes = palloc(sizeof(TimestampTz) * Max(nmsgs, 1));
	int nparts = 0;
	TimestampTz now = GetCurrentTimestamp();
	int i;
	int j;

	for (i = 0; i < nmsgs; i++)
	{
		for (j = 0; j < nparts; j++)
			if (parts[j] == msgs[i]->partition)
				break;
		if (j == nparts)
		{
			parts[nparts] = msgs[i]->partition;
			maxes[nparts++] = DT_NOBEGIN;
		}
	}
	for (i = 0; i < rows->nrows; i++)
	{
		TimestampTz t;

		if (rows->nulls[(Size)i * rows->natts + att])
			continue;
		t = DatumGetTimestampTz(rows->values[(Size)i * rows->natts + att]);
		for (j = 0; j < nparts; j++)
			if (parts[j] == msgs[rowmsg[i]]->partition && t > maxes[j])
				maxes[j] = t;
	}
	for (j = 0; j < nparts; j++)
		streamproc_kafka_note_event_time(src, parts[j], maxes[j], now);
}

/*
 * The INSERT of a windowed view's late events.  Its table belongs to the
 * user, who may have altered it so that it no longer fits: then the late
 * events go to streamproc.errors (view->late_error), rather than the
 * worker failing at every start.
 */
SPIPlanPtr
window_prepare_late_plan(WView *view, const char *late_query)
{
	MemoryContext cxt = CurrentMemoryContext;
	ResourceOwner owner = CurrentResourceOwner;
	Oid types[2] = {TIMESTAMPTZOID, TEXTOID};
	SPIPlanPtr plan = NULL;

	BeginInternalSubTransaction(NULL);
	MemoryContextSwitchTo(cxt);
	PG_TRY();
	{
		plan = worker_prepare(late_query, 2, types);
		ReleaseCurrentSubTransaction();
	}
	PG_CATCH();
	{
		ErrorData *edata;

		MemoryContextSwitchTo(cxt);
		edata = CopyErrorData();
		FlushErrorState();
		RollbackAndReleaseCurrentSubTransaction();
		MemoryContextSwitchTo(cxt); /* the view's context, not the transaction's */
		view->late_error = psprintf("late events of continuous view \"%s\" cannot be written to its late_events table: %s",
									view->name, edata->message);
		ereport(WARNING, (errmsg("%s", view->late_error),
						  errhint("Late events go to streamproc.errors until the table has the stream's columns and \"view\", \"watermark\" and \"reason\" again.")));
		plan = NULL;
	}
	PG_END_TRY();
	MemoryContextSwitchTo(cxt);
	CurrentResourceOwner = owner;
	return plan;
}
