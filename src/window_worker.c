/*-------------------------------------------------------------------------
 *
 * window_worker.c
 *	  The ingest worker's side of event-time windows: watermarks, session
 *	  merging, count windows, late events, and closing windows in the
 *	  checkpoint (windows.c has the model, worker.c calls these).
 *
 * Watermarks.  Per stream, the worker keeps the greatest event time of each
 * of its inputs (the log; each Kafka partition, in kafka.c) and publishes
 * their least, minus watermark_delay, in every windowed view's ViewShared;
 * the view's watermark is the minimum over the slots (see
 * worker_publish_watermarks()).
 *
 * Closing.  Our slot's windows close in the checkpoint: the watermark has
 * passed their end plus the allowed lateness.  worker_close_windows()
 * writes them to streamproc.window_state and deletes them from view_state
 * in the checkpoint's transaction; after the commit,
 * worker_windows_closed() publishes the watermark our slot closed at
 * (ViewShared.closed) and removes them from shared memory, under the
 * registry lock.  Readers count a window of a slot from window_state when
 * it ends at or before the slot's published closing bound, and from shared
 * memory otherwise (hop slices stay there while later windows need them),
 * so a reader never sees a window twice or not at all.
 *
 * Late events are kept in memory per view until the checkpoint writes them
 * to the view's late_events table, in the same transaction.
 *
 * Locking: ViewShared fields under the registry lock (state.c); the rest
 * is the worker's own memory.
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
#include "utils/memutils.h"
#include "utils/resowner.h"
#include "utils/timestamp.h"

#include "kafka.h"
#include "state.h"
#include "streamproc.h"
#include "windows.h"
#include "worker.h"
#include "worker_int.h"

static WindowPiece **window_pieces(WView *view, int *npieces);

/* A group of our slot copied by worker_close_windows()'s scan. */
typedef struct ClosingScan
{
	WView *view;
	TimestampTz old_bound; /* windows ending at or before it are closed */
	TimestampTz new_bound; /* ... and now these */
	GroupTable *closed;    /* the windows that close */
	List *removed;         /* DirtyKey * of groups that leave our slot */
	TimestampTz min_end;   /* the earliest window left to close */
	TimestampTz closed_at; /* count windows: their window_end in window_state */
} ClosingScan;

/* Rows of streamproc.window_state for the windows that close. */
typedef struct ClosedRows
{
	Datum *keys;
	Datum *states;
	Datum *ends;
	int count;
	TimestampTz closed_at; /* count windows: the window_end of every row */
} ClosedRows;

/* Add (add) or remove a session of our slot in the view's session index. */
void
worker_session_index(WView *view, const char *key, uint32 keylen, bool add)
{
	SessionGroup *g;
	DirtyKey k;
	TimestampTz start;
	TimestampTz end;
	ListCell *lc;
	bool found;

	if (view->sessions == NULL)
		return;
	streamproc_window_key_decode(key, keylen, &start, &end);
	k.len = keylen - WINDOW_KEY_PREFIX;
	k.bytes = (char *)key + WINDOW_KEY_PREFIX;
	worker_dirty_key_cxt = GetMemoryChunkContext(view->sessions);
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

/* Bookkeeping after storing a window's state in our slot. */
void
worker_window_stored(WView *view, const char *key, uint32 keylen, bool new_group)
{
	TimestampTz start;
	TimestampTz end;

	streamproc_window_key_decode(key, keylen, &start, &end);
	if (view->window.kind == WINDOW_COUNT)
	{
		worker_count_index(view, key, keylen, start, end);
		if (end >= view->window.size)
			view->min_end = DT_NOBEGIN; /* a full window: close it */
		return;
	}
	if (end < view->min_end)
		view->min_end = end; /* a hop slice's first window ends with it */
	worker_session_index(view, key, keylen, true);
}

/* Our current window of a group is (id, count), unless we know a later one. */
void
worker_count_index(WView *view, const char *key, uint32 keylen, int64 id, int64 count)
{
	CountGroup *g;
	DirtyKey k;
	bool found;

	k.len = keylen - WINDOW_KEY_PREFIX;
	k.bytes = (char *)key + WINDOW_KEY_PREFIX;
	worker_dirty_key_cxt = GetMemoryChunkContext(view->counters);
	g = hash_search(view->counters, &k, HASH_ENTER, &found);
	if (!found || id > g->id || (id == g->id && count > g->count))
	{
		g->id = id;
		g->count = count;
	}
}

/* Append the state of window (id, count) of a group to pending. */
static List *
count_window_done(WView *view, List *pending, WindowPiece *g, int64 id, int64 count,
				  int64 old_count, bytea *state)
{
	PendingState *p = palloc(sizeof(PendingState));

	p->keylen = WINDOW_KEY_PREFIX + g->glen;
	p->key = palloc(p->keylen);
	streamproc_window_key_prefix(p->key, id, count);
	memcpy(p->key + WINDOW_KEY_PREFIX, g->gkey, g->glen);
	if (old_count > 0 && old_count != count)
	{
		PendingState *drop = palloc(sizeof(PendingState));

		drop->keylen = p->keylen;
		drop->key = palloc(p->keylen);
		memcpy(drop->key, p->key, p->keylen);
		streamproc_window_key_prefix(drop->key, id, old_count);
		drop->state = NULL;
		pending = lappend(pending, drop);
	}
	p->state = state;
	return lappend(pending, p);
}

/*
 * worker_count_events
 *		combine_results() of a count-window view: the batch query yields one
 *		row per event with its number in the batch.  Per group, in that
 *		order, the events fill the group's current window up to the size and
 *		then start the next one.  A window's key carries its id and how many
 *		events it has, so a growing window is stored under a new key.
 */
List *
worker_count_events(WView *view)
{
	List *pending = NIL;
	WindowPiece **pieces;
	int npieces = 0;
	int first;

	pieces = window_pieces(view, &npieces);

	for (first = 0; first < npieces;)
	{
		WindowPiece *g = pieces[first];
		CountGroup *current;
		DirtyKey k;
		int64 id = 0;
		int64 count = 0;
		int64 old_count = 0;
		bytea *state = NULL;
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
			uint32 keylen = WINDOW_KEY_PREFIX + g->glen;
			char *open = palloc(keylen);

			streamproc_window_key_prefix(open, id, count);
			memcpy(open + WINDOW_KEY_PREFIX, g->gkey, g->glen);
			state = streamproc_state_fetch(view->groups, open, keylen, worker_index);
		}
		streamproc_packed_accum_init(&acc, view->aggs, view->nagg, CurrentMemoryContext);
		streamproc_packed_accum_add(&acc, state);
		for (; first < npieces && pieces[first]->glen == g->glen &&
			   memcmp(pieces[first]->gkey, g->gkey, g->glen) == 0;
			 first++)
		{
			streamproc_packed_accum_add(&acc, pieces[first]->state);
			count++;
			if (count == view->window.size)
			{
				pending = count_window_done(view, pending, g, id, count, old_count,
											streamproc_packed_accum_result(&acc));
				id++;
				count = old_count = 0;
			}
		}
		if (count > 0)
			pending = count_window_done(view, pending, g, id, count, old_count,
										streamproc_packed_accum_result(&acc));
	}
	return pending;
}

/* Order pieces by group, then start. */
static int
window_piece_cmp(const void *a, const void *b)
{
	const WindowPiece *x = *(WindowPiece *const *)a;
	const WindowPiece *y = *(WindowPiece *const *)b;
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

/*
 * The rows of a session or count-window view's batch query (in
 * SPI_tuptable) as pieces, sorted by group and start.
 */
static WindowPiece **
window_pieces(WView *view, int *npieces)
{
	WindowPiece **pieces = palloc(sizeof(WindowPiece *) * Max(SPI_processed, 1));
	StringInfoData key;
	uint64 i;

	initStringInfo(&key);
	for (i = 0; i < SPI_processed; i++)
	{
		HeapTuple tup = SPI_tuptable->vals[i];
		WindowPiece *p = palloc0(sizeof(WindowPiece));

		worker_serialize_key(view, tup, SPI_tuptable->tupdesc, &key);
		streamproc_window_key_decode(key.data, key.len, &p->start, &p->end);
		if (view->window.kind == WINDOW_SESSION)
		{
			/* The bin's first and last event time (view.c): [s1, s2 + gap). */
			int col = view->key_first + view->ngroup + view->nagg;
			bool isnull;

			Datum first = SPI_getbinval(tup, SPI_tuptable->tupdesc, col, &isnull);
			Datum last = SPI_getbinval(tup, SPI_tuptable->tupdesc, col + 1, &isnull);

			p->start = DatumGetTimestampTz(streamproc_agg_final(view->first_event,
																DatumGetByteaPP(first), &isnull));
			p->end = DatumGetTimestampTz(streamproc_agg_final(view->last_event,
															  DatumGetByteaPP(last), &isnull)) +
					 view->window.size;
		}
		p->glen = key.len - WINDOW_KEY_PREFIX;
		p->gkey = palloc(Max(p->glen, 1));
		memcpy(p->gkey, key.data + WINDOW_KEY_PREFIX, p->glen);
		p->state = worker_row_states(view, tup, SPI_tuptable->tupdesc);
		pieces[i] = p;
	}
	*npieces = (int)SPI_processed;
	qsort(pieces, *npieces, sizeof(WindowPiece *), window_piece_cmp);
	return pieces;
}

static char *
session_key(WindowPiece *p, TimestampTz start, TimestampTz end, uint32 *keylen)
{
	char *key = palloc(WINDOW_KEY_PREFIX + Max(p->glen, 1));

	streamproc_window_key_prefix(key, start, end);
	memcpy(key + WINDOW_KEY_PREFIX, p->gkey, p->glen);
	*keylen = WINDOW_KEY_PREFIX + p->glen;
	return key;
}

/*
 * worker_merge_sessions
 *		combine_results() of a session view: the batch query yields, per
 *		group, one piece per bin of one gap, [first event, last event + gap)
 *		(its events are less than a gap apart: one session).  Per group, sort
 *		them with our slot's open sessions by start and merge the ones that
 *		overlap (gaps and islands); every merged session that took a new
 *		piece replaces the open sessions it swallowed.
 */
List *
worker_merge_sessions(WView *view)
{
	List *pending = NIL;
	WindowPiece **pieces;
	int npieces = 0;
	int j;
	int first;

	pieces = window_pieces(view, &npieces);

	for (first = 0; first < npieces;)
	{
		WindowPiece *g = pieces[first];
		List *run = NIL;
		SessionGroup *open;
		DirtyKey k;
		int last = first;
		ListCell *lc;
		WindowPiece *cur = NULL;
		List *members = NIL;
		bool has_new = false;

		while (last < npieces && pieces[last]->glen == g->glen &&
			   memcmp(pieces[last]->gkey, g->gkey, g->glen) == 0)
			run = lappend(run, pieces[last++]);

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
			list_sort(run, (list_sort_comparator)window_piece_cmp);
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
				PendingState *out = palloc(sizeof(PendingState));
				PackedAccum acc;
				ListCell *mc;

				out->key = session_key(cur, cur->start, cur->end, &out->keylen);
				streamproc_packed_accum_init(&acc, view->aggs, view->nagg, CurrentMemoryContext);
				foreach (mc, members)
				{
					WindowPiece *m = lfirst(mc);
					bytea *mstate = m->state;

					if (m->existing)
					{
						uint32 mlen;
						char *mkey = session_key(m, m->start, m->end, &mlen);

						mstate = streamproc_state_fetch(view->groups, mkey, mlen, worker_index);
						if (mlen != out->keylen || memcmp(mkey, out->key, mlen) != 0)
						{
							PendingState *drop = palloc(sizeof(PendingState));

							drop->key = mkey;
							drop->keylen = mlen;
							drop->state = NULL;
							pending = lappend(pending, drop);
						}
					}
					streamproc_packed_accum_add(&acc, mstate);
				}
				out->state = streamproc_packed_accum_result(&acc);
				pending = lappend(pending, out);
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
	return pending;
}

/*
 * worker_publish_watermarks
 *		Our inputs' watermark for a stream's windowed views, minus
 *		watermark_delay: the least greatest event time of our active inputs
 *		(the log once it had events, each Kafka partition we read); when all
 *		of them are idle, the greatest, so that windows close once a stream
 *		goes quiet.  The view's watermark moves up to the minimum over the
 *		slots with inputs, once every worker that reads one of the stream's
 *		Kafka sources has published (a worker that has not loaded a new
 *		source yet, after a restart or a new source, would otherwise not hold
 *		it back).
 *		Asks for a checkpoint when a view's watermark passed the one our slot
 *		closed windows at.
 */
void
worker_publish_watermarks(WStream *stream)
{
	TimestampTz now;
	TimestampTz least = DT_NOEND;
	TimestampTz greatest = DT_NOBEGIN;
	TimestampTz mark = DT_NOBEGIN;
	bool active = false;
	bool inputs;
	ListCell *lc;

	if (stream->event_time == InvalidAttrNumber)
		return;
	now = GetCurrentTimestamp();
	if (stream->owns_log && stream->log_last_event != 0)
	{
		greatest = stream->log_max_time;
		if (stream->idle_timeout < 0 || now - stream->log_last_event < stream->idle_timeout)
		{
			least = stream->log_max_time;
			active = true;
		}
	}
	foreach (lc, stream->sources)
	{
		TimestampTz t;
		TimestampTz g;

		if (streamproc_kafka_event_times(lfirst(lc), now, stream->idle_timeout, &t, &g))
		{
			least = Min(least, t);
			active = true;
		}
		greatest = Max(greatest, g);
	}
	if (!active)
		least = greatest;
	inputs = active || greatest != DT_NOBEGIN;
	if (inputs && !TIMESTAMP_NOT_FINITE(least) &&
		(pg_sub_s64_overflow(least, stream->watermark_delay, &mark) || !IS_VALID_TIMESTAMP(mark)))
		mark = DT_NOBEGIN;

	LWLockAcquire(streamproc_state_lock(), LW_EXCLUSIVE);
	foreach (lc, stream->views)
	{
		WView *view = lfirst(lc);
		ViewShared *shared = view->shared;
		uint64 bit = UINT64CONST(1) << worker_index;

		if (view->window.kind == 0 || view->window.kind == WINDOW_COUNT || shared == NULL)
			continue;
		shared->published_slots |= bit;
		if (inputs)
		{
			shared->input_slots |= bit;
			shared->input_watermark[worker_index] = mark;
		}
		else
			shared->input_slots &= ~bit;
		if (shared->input_slots != 0 &&
			(shared->source_slots & ~shared->published_slots) == 0)
		{
			TimestampTz least_slot = DT_NOEND;
			int i;

			for (i = 0; i < streamproc_workers; i++)
				if (shared->input_slots & (UINT64CONST(1) << i))
					least_slot = Min(least_slot, shared->input_watermark[i]);
			if (least_slot > shared->watermark && !TIMESTAMP_NOT_FINITE(least_slot))
				shared->watermark = least_slot;
		}
		if (shared->watermark > view->closed)
			worker_checkpoint_needed = true;
	}
	LWLockRelease(streamproc_state_lock());
}

static void
closing_scan_callback(const char *key, uint32 keylen, bytea **slots, int nslots,
					  void *arg)
{
	ClosingScan *cs = arg;
	const WindowSpec *spec = &cs->view->window;
	bytea *state = slots[worker_index];
	TimestampTz start;
	TimestampTz end;
	TimestampTz last_end;

	if (state == NULL)
		return;
	streamproc_window_key_decode(key, keylen, &start, &end);
	if (spec->kind == WINDOW_COUNT && end < cs->new_bound)
		return; /* not full yet */
	/* A hop slice's last window starts with it. */
	last_end = spec->kind == WINDOW_HOP ? start + spec->size : end;
	if (spec->kind == WINDOW_HOP)
	{
		if (end <= cs->new_bound && last_end > cs->old_bound)
			streamproc_group_table_add_slice(cs->closed, spec, key, keylen, state,
											 cs->old_bound, cs->new_bound);
	}
	else if (end <= cs->new_bound)
		streamproc_group_table_add(cs->closed, key, keylen, state);

	if (last_end <= cs->new_bound)
	{
		DirtyKey *k = palloc(sizeof(DirtyKey));

		k->len = keylen;
		k->bytes = palloc(Max(keylen, 1));
		memcpy(k->bytes, key, keylen);
		cs->removed = lappend(cs->removed, k);
	}
	else
	{
		TimestampTz next = end;

		/* The next window of the slice to close. */
		if (spec->kind == WINDOW_HOP && end <= cs->new_bound)
			next = streamproc_window_bin(cs->new_bound, spec->slide, spec->origin) + spec->slide;
		cs->min_end = Min(cs->min_end, next);
	}
}

static void
closed_row_callback(const char *key, uint32 keylen, bytea *state, void *arg)
{
	ClosedRows *rows = arg;
	bytea *k = palloc(keylen + VARHDRSZ);
	TimestampTz start;
	TimestampTz end;

	SET_VARSIZE(k, keylen + VARHDRSZ);
	memcpy(VARDATA(k), key, keylen);
	streamproc_window_key_decode(key, keylen, &start, &end);
	rows->keys[rows->count] = PointerGetDatum(k);
	rows->states[rows->count] = PointerGetDatum(state);
	rows->ends[rows->count] = TimestampTzGetDatum(rows->closed_at != DT_NOBEGIN ? rows->closed_at : end);
	rows->count++;
}

/*
 * worker_close_windows
 *		In the checkpoint: move our slot's windows that the view's watermark
 *		closed to streamproc.window_state, record the watermark, and apply
 *		the retention.  What leaves shared memory is kept in *removed
 *		(worker_batch_cxt) for worker_windows_closed() after the commit.
 */
void
worker_close_windows(WView *view, TimestampTz *mark, List **removed)
{
	TimestampTz watermark;
	ClosingScan cs;
	Datum args[5];
	int ret;

	*removed = NIL;
	if (view->window.kind == WINDOW_COUNT)
	{
		/* Full windows close now: the mark is the checkpoint's time. */
		watermark = Max(GetCurrentTimestamp(), view->closed + 1);
		cs.old_bound = view->closed;
		cs.new_bound = view->window.size;
		cs.closed_at = watermark;
	}
	else
	{
		LWLockAcquire(streamproc_state_lock(), LW_SHARED);
		watermark = view->shared->watermark;
		LWLockRelease(streamproc_state_lock());
		if (watermark <= view->closed)
		{
			*mark = watermark;
			return;
		}
		cs.old_bound = streamproc_window_close_bound(&view->window, view->closed);
		cs.new_bound = streamproc_window_close_bound(&view->window, watermark);
		cs.closed_at = DT_NOBEGIN;
	}
	*mark = watermark;
	cs.view = view;
	cs.removed = NIL;
	cs.min_end = DT_NOEND;
	if (cs.new_bound >= view->min_end)
	{
		MemoryContext old = MemoryContextSwitchTo(worker_batch_cxt);
		ClosedRows rows;
		long n;
		ListCell *lc;
		Datum *keys;
		int nkeys = 0;

		cs.closed = streamproc_group_table_create(view->aggs, view->nagg, worker_batch_cxt);
		LWLockAcquire(streamproc_state_lock(), LW_SHARED);
		streamproc_state_scan(view->groups, closing_scan_callback, &cs);
		LWLockRelease(streamproc_state_lock());

		n = streamproc_group_table_count(cs.closed);
		rows.keys = palloc(sizeof(Datum) * Max(n, 1));
		rows.states = palloc(sizeof(Datum) * Max(n, 1));
		rows.ends = palloc(sizeof(Datum) * Max(n, 1));
		rows.count = 0;
		rows.closed_at = cs.closed_at;
		streamproc_group_table_emit(cs.closed, closed_row_callback, &rows);
		keys = palloc(sizeof(Datum) * Max(list_length(cs.removed), 1));
		foreach (lc, cs.removed)
		{
			DirtyKey *k = lfirst(lc);
			bytea *b = palloc(k->len + VARHDRSZ);

			SET_VARSIZE(b, k->len + VARHDRSZ);
			memcpy(VARDATA(b), k->bytes, k->len);
			keys[nkeys++] = PointerGetDatum(b);
			worker_dirty_key_cxt = view->dirty_cxt;
			(void)hash_search(view->dirty, k, HASH_REMOVE, NULL);
		}
		MemoryContextSwitchTo(old);

		args[0] = ObjectIdGetDatum(view->viewid);
		args[1] = Int32GetDatum(worker_index);
		if (rows.count > 0)
		{
			args[2] = PointerGetDatum(construct_array(rows.keys, rows.count, BYTEAOID, -1, false, TYPALIGN_INT));
			args[3] = PointerGetDatum(construct_array(rows.states, rows.count, BYTEAOID, -1, false, TYPALIGN_INT));
			args[4] = PointerGetDatum(construct_array(rows.ends, rows.count, TIMESTAMPTZOID, sizeof(TimestampTz),
													  FLOAT8PASSBYVAL, TYPALIGN_DOUBLE));
			ret = SPI_execute_with_args("INSERT INTO streamproc.window_state (view, slot, key, state, window_end)"
										" SELECT $1, $2, u.k, u.s, u.e FROM ROWS FROM (pg_catalog.unnest($3::bytea[]),"
										" pg_catalog.unnest($4::bytea[]), pg_catalog.unnest($5::timestamptz[])) AS u(k, s, e)",
										5, (Oid[]){OIDOID, INT4OID, BYTEAARRAYOID, BYTEAARRAYOID, TIMESTAMPTZARRAYOID},
										args, NULL, false, 0);
			if (ret != SPI_OK_INSERT)
				elog(ERROR, "could not write streamproc.window_state: %s", SPI_result_code_string(ret));
		}
		if (nkeys > 0)
		{
			args[2] = PointerGetDatum(construct_array(keys, nkeys, BYTEAOID, -1, false, TYPALIGN_INT));
			ret = SPI_execute_with_args("DELETE FROM streamproc.view_state WHERE view = $1 AND slot = $2 AND key = ANY ($3)",
										3, (Oid[]){OIDOID, INT4OID, BYTEAARRAYOID}, args, NULL, false, 0);
			if (ret != SPI_OK_DELETE)
				elog(ERROR, "could not write streamproc.view_state: %s", SPI_result_code_string(ret));
			worker_state_rows_written += nkeys;
		}
		view->min_end = cs.min_end;
		*removed = cs.removed;
	}

	args[0] = ObjectIdGetDatum(view->viewid);
	args[1] = Int32GetDatum(worker_index);
	args[2] = TimestampTzGetDatum(watermark);
	ret = SPI_execute_with_args("INSERT INTO streamproc.view_watermarks AS w (view, slot, watermark) VALUES ($1, $2, $3)"
								" ON CONFLICT (view, slot) DO UPDATE SET watermark = GREATEST(w.watermark, excluded.watermark)",
								3, (Oid[]){OIDOID, INT4OID, TIMESTAMPTZOID}, args, NULL, false, 0);
	if (ret != SPI_OK_INSERT)
		elog(ERROR, "could not write streamproc.view_watermarks: %s", SPI_result_code_string(ret));

	if (view->window.retention >= 0 && !TIMESTAMP_NOT_FINITE(watermark) &&
		watermark - view->window.retention > MIN_TIMESTAMP)
	{
		args[2] = TimestampTzGetDatum(watermark - view->window.retention);
		ret = SPI_execute_with_args("DELETE FROM streamproc.window_state WHERE view = $1 AND slot = $2 AND window_end < $3",
									3, (Oid[]){OIDOID, INT4OID, TIMESTAMPTZOID}, args, NULL, false, 0);
		if (ret != SPI_OK_DELETE)
			elog(ERROR, "could not apply the retention of streamproc.window_state: %s",
				 SPI_result_code_string(ret));
	}
}

/*
 * worker_windows_closed
 *		After the checkpoint committed: publish the watermark our slot closed
 *		at and remove the closed windows from shared memory, both under the
 *		registry lock, so that a reader (which holds it while it scans) sees
 *		either neither change or both.
 */
void
worker_windows_closed(WView *view, TimestampTz mark, List *removed)
{
	ListCell *lc;

	if (mark <= view->closed)
		return;
	LWLockAcquire(streamproc_state_lock(), LW_EXCLUSIVE);
	view->shared->closed[worker_index] = mark;
	foreach (lc, removed)
	{
		DirtyKey *k = lfirst(lc);
		bool deleted;

		view->memory -= streamproc_state_remove(view->groups, k->bytes, k->len, worker_index,
												&deleted);
		if (deleted)
			view->new_groups--;
	}
	LWLockRelease(streamproc_state_lock());
	foreach (lc, removed)
		worker_session_index(view, ((DirtyKey *)lfirst(lc))->bytes, ((DirtyKey *)lfirst(lc))->len, false);
	view->closed = mark;
	view->cutoff = streamproc_window_cutoff(&view->window, mark);
}

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
late_event(WView *view, TupleDesc desc, Datum *values, bool *nulls)
{
	view->late_count++;
	if (view->late_plan != NULL || view->late_error != NULL)
	{
		keep_late_row(view, desc, values, nulls);
		if (view->late.nrows >= PENDING_ROWS_CHECKPOINT)
			worker_checkpoint_soon = true; /* they are kept in memory until then */
	}
}

/* An event without event time: an error of the windowed view. */
static void
record_null_event_time(WStream *stream, WView *view, const char *position,
					   const char *event)
{
	ErrorData edata;

	memset(&edata, 0, sizeof(edata));
	edata.sqlerrcode = ERRCODE_NOT_NULL_VIOLATION;
	edata.message = psprintf("event time column \"%s\" is null",
							 NameStr(TupleDescAttr(stream->desc, stream->event_time - 1)->attname));
	worker_record_failed_event(stream, view, position, event, &edata);
}

/*
 * worker_log_late_events
 *		The log rows of a batch that are late for a windowed view (or have
 *		no event time): the batch query skipped them.
 */
void
worker_log_late_events(WStream *stream, WView *view, Datum *snap_args, const char *snap_nulls)
{
	Datum args[3];
	char nulls[3];
	Datum *values = palloc(sizeof(Datum) * Max(stream->desc->natts, 1));
	bool *isnull = palloc(sizeof(bool) * Max(stream->desc->natts, 1));
	uint64 i;
	int ret;

	args[0] = snap_args[0];
	args[1] = snap_args[1];
	args[2] = TimestampTzGetDatum(view->cutoff);
	nulls[0] = snap_nulls[0];
	nulls[1] = snap_nulls[1];
	nulls[2] = ' ';
	ret = SPI_execute_plan(stream->late_rows_plan, args, nulls, true, 0);
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
			record_null_event_time(stream, view,
								   psprintf("log row %s", SPI_getvalue(tup, SPI_tuptable->tupdesc, 1)),
								   SPI_getvalue(tup, SPI_tuptable->tupdesc, 2));
		else
			late_event(view, stream->desc, values, isnull);
	}
	SPI_freetuptable(SPI_tuptable);
}

/*
 * worker_checkpoint_late_rows
 *		In the checkpoint: insert the view's late events into its
 *		late_events table, one statement per watermark (row by row after a
 *		failure, which goes to streamproc.errors).
 */
void
worker_checkpoint_late_rows(WStream *stream, WView *view)
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
			worker_record_failed_event(stream, view, "late event", worker_row_as_json(stream, l, i), &edata);
		return;
	}
	streamproc_source_rows = l;
	while (first < l->nrows)
	{
		int last = first;
		Datum args[2];
		ErrorData *edata = NULL;

		while (last < l->nrows && view->late_marks[last] == view->late_marks[first])
			last++;
		args[0] = TimestampTzGetDatum(view->late_marks[first]);
		args[1] = CStringGetTextDatum("window closed");
		l->first = first;
		l->count = last - first;
		if (!worker_run_in_subxact(view, view->late_plan, args, "  ", NULL, &edata))
		{
			int i;

			for (i = first; i < last; i++)
			{
				edata = NULL;
				l->first = i;
				l->count = 1;
				if (!worker_run_in_subxact(view, view->late_plan, args, "  ", NULL, &edata))
					worker_record_failed_event(stream, view, "late event", worker_row_as_json(stream, l, i), edata);
			}
		}
		first = last;
	}
	streamproc_source_rows = NULL;
}

/*
 * worker_source_late_events
 *		The rows of a Kafka batch that are late for a windowed view, or have
 *		no event time: its source query skipped them.
 */
void
worker_source_late_events(WStream *stream, KafkaSource *src, WView *view, SourceRows *rows,
						  const int *rowmsg)
{
	int att = stream->event_time - 1;
	int before = view->late_count + view->errors;
	int i;

	for (i = 0; i < rows->nrows; i++)
	{
		Datum *values = rows->values + (Size)i * rows->natts;
		bool *nulls = rows->nulls + (Size)i * rows->natts;

		if (nulls[att])
			worker_record_kafka_failure(src, view, worker_kafka_msgs[rowmsg[i]], ERRCODE_NOT_NULL_VIOLATION,
										psprintf("event time column \"%s\" is null",
												 NameStr(TupleDescAttr(stream->desc, att)->attname)),
										NULL);
		else if (DatumGetTimestampTz(values[att]) < view->cutoff)
			late_event(view, stream->desc, values, nulls);
	}
	view->events -= view->late_count + view->errors - before;
}

/*
 * worker_note_event_times
 *		Tell kafka.c the greatest event time of each partition of a batch,
 *		and that the partition had events (for idle_timeout).
 */
void
worker_note_event_times(WStream *stream, KafkaSource *src, SourceRows *rows, int nmsgs,
						const int *rowmsg)
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
			if (parts[j] == worker_kafka_msgs[i]->partition)
				break;
		if (j == nparts)
		{
			parts[nparts] = worker_kafka_msgs[i]->partition;
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
			if (parts[j] == worker_kafka_msgs[rowmsg[i]]->partition && t > maxes[j])
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
worker_prepare_late_plan(WView *view, const char *late_query, Oid *types)
{
	MemoryContext cxt = CurrentMemoryContext;
	ResourceOwner owner = CurrentResourceOwner;
	SPIPlanPtr plan = NULL;

	BeginInternalSubTransaction(NULL);
	MemoryContextSwitchTo(cxt);
	PG_TRY();
	{
		plan = worker_prepare_or_die(late_query, 2, types);
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
