/*-------------------------------------------------------------------------
 *
 * batch.c
 *	  Running continuous views over a batch of events and merging the
 *	  results into their group maps.
 *
 * A log batch (one shard of a stream's log, one transaction, REPEATABLE
 * READ): take the transaction's snapshot S as a pg_snapshot.  For each view
 * the batch is the shard's rows whose "$xid" is visible in S and not in the
 * view's position P (PgQ's idea: whatever the commit order, a committed row
 * is in exactly one batch; aborted rows are invisible), read in pieces of
 * SUBBATCH_BLOCKS heap blocks so that a huge transaction is merged in
 * bounded steps.  A Kafka batch is what one source's consumer holds,
 * parsed in C (parse.c) and read by the views through
 * streamproc._source_batch(); each view skips the messages below its own
 * position.
 *
 * For each piece, the view's batch query runs as the view's owner in a
 * subtransaction; its rows (one per group: key columns and partial
 * states, computed by the executor) stream through a DestReceiver that
 * combines each with our slot's current state into a Pending list, in
 * memory that is reset per row.  Only when the query succeeded is the
 * Pending list applied to the group map (batch_apply), partition by
 * partition, after reserving its memory against streamproc.state_memory:
 * a failure never leaves half a batch in shared memory.
 *
 * When the query fails with an error of some event's data (errors.c), the
 * piece is run again one event at a time, each in its own subtransaction;
 * failing events go to streamproc.errors.  Any other error stops the view
 * (worker.c: retrying or failed) without touching its position, and the
 * other views of the batch go on.  When the memory cannot be reserved the
 * view pauses at that piece.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/relation.h"
#include "access/xact.h"
#include "catalog/pg_type.h"
#include "executor/tuptable.h"
#include "miscadmin.h"
#include "nodes/params.h"
#include "storage/bufmgr.h"
#include "storage/itemptr.h"
#include "storage/lmgr.h"
#include "tcop/dest.h"
#include "utils/acl.h"
#include "utils/builtins.h"
#include "utils/datum.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"
#include "utils/numeric.h"
#include "utils/snapmgr.h"

#include "engine.h"
#include "errors.h"
#include "packed.h"
#include "streamproc.h"

/* What running a query in a subtransaction came to. */
typedef enum RunResult
{
	RUN_OK,
	RUN_DATA_ERROR, /* some event's data: run the events one at a time */
	RUN_OTHER_ERROR /* the view's or the system's: stop the view */
} RunResult;

/* The DestReceiver that merges a view's batch rows into a Pending list. */
typedef struct MergeReceiver
{
	DestReceiver pub;
	Worker *w;
	WView *view;
	Pending *pending;
	List *pieces; /* session and count windows: WindowPiece * */
	StringInfoData key;
	StringInfoData current;
	StringInfoData merged;
	PackedState *incoming;
	int64 rows;
	bool defer;          /* events run one at a time: merge pieces after the last */
	HTAB *seen;          /* events one at a time: key -> its latest pending entry */
	List *event_changes; /* SeenChange * of the event being run */
} MergeReceiver;

/* A key the event being run (one at a time) gave a new pending entry. */
typedef struct SeenChange
{
	char *key;
	uint32 keylen;
	int offset; /* the new entry */
	int prev;   /* the entry it replaces, or -1 */
} SeenChange;

/* An entry of MergeReceiver.seen. */
typedef struct SeenKey
{
	uint32 keylen;
	const char *key; /* in the seen table's context */
} SeenKey;

typedef struct SeenEntry
{
	SeenKey k;
	int offset; /* of the latest pending entry for the key */
} SeenEntry;

static RunResult run_plan(Worker *w, WView *view, SPIPlanPtr plan, Datum *args,
						  const char *nulls, int nargs, DestReceiver *dest,
						  ErrorData **edata);

/* ----------------------------------------------------------------
 * Pending lists and dirty lists
 * ----------------------------------------------------------------
 */

void
pending_init(Pending *p)
{
	initStringInfo(&p->arena);
	p->count = 0;
	p->reserve = 0;
}

/*
 * Bytes a group of our slot may add to the map when its state goes from
 * oldlen (-1: no group) to statelen: an allocation size class and a bucket.
 */
static int64
reserve_for(uint32 keylen, int32 statelen, int32 oldlen)
{
	if (statelen < 0)
		return 0;
	if (oldlen < 0)
		return TYPEALIGN(16, 32 + keylen + statelen) + 16;
	if (statelen > oldlen)
		return TYPEALIGN(16, statelen - oldlen) + 16;
	return 0;
}

void
pending_add(Pending *p, uint32 hash, const char *key, uint32 keylen,
			const char *state, int32 statelen, int32 oldlen)
{
	PendingHeader h;

	memset(&h, 0, sizeof(h));
	h.hash = hash;
	h.keylen = keylen;
	h.statelen = state ? statelen : -1;
	h.oldlen = oldlen;
	appendBinaryStringInfo(&p->arena, (char *)&h, sizeof(h));
	appendBinaryStringInfo(&p->arena, key, keylen);
	if (state)
		appendBinaryStringInfo(&p->arena, state, statelen);
	p->count++;
	p->reserve += reserve_for(keylen, h.statelen, oldlen);
}

/* List a group of our slot as changed since the last checkpoint. */
void
dirty_add(WView *view, uint32 hash, const char *key, uint32 keylen)
{
	DirtyList *d = &view->dirty;

	if (d->buf.data == NULL)
	{
		MemoryContext old = MemoryContextSwitchTo(GetMemoryChunkContext(view));

		initStringInfo(&d->buf);
		MemoryContextSwitchTo(old);
	}
	appendBinaryStringInfo(&d->buf, (char *)&hash, sizeof(uint32));
	appendBinaryStringInfo(&d->buf, (char *)&keylen, sizeof(uint32));
	appendBinaryStringInfo(&d->buf, key, keylen);
	d->count++;
}

/* ----------------------------------------------------------------
 * Applying a Pending list
 * ----------------------------------------------------------------
 */

/*
 * batch_apply
 *		Apply a view's Pending list to its group map (our slot), partition by
 *		partition, and list the groups as dirty.  The caller reserved the
 *		memory.
 */
void
batch_apply(Worker *w, WView *view, Pending *pending)
{
	char *base = pending->arena.data;
	int64 n = pending->count;
	int64 *offsets;
	int64 counts[GROUPMAP_PARTITIONS + 1];
	int64 *sorted;
	int64 pos;
	int64 i;
	int p;

	if (n == 0)
		return;

	/* Counting sort of the entries by partition. */
	offsets = palloc(sizeof(int64) * n);
	sorted = palloc(sizeof(int64) * n);
	memset(counts, 0, sizeof(counts));
	pos = 0;
	for (i = 0; i < n; i++)
	{
		PendingHeader h;

		memcpy(&h, base + pos, sizeof(h));
		offsets[i] = pos;
		counts[GROUPMAP_PARTITION(h.hash) + 1]++;
		pos += sizeof(h) + h.keylen + (h.statelen > 0 ? h.statelen : 0);
	}
	for (p = 1; p <= GROUPMAP_PARTITIONS; p++)
		counts[p] += counts[p - 1];
	for (i = 0; i < n; i++)
	{
		PendingHeader h;

		memcpy(&h, base + offsets[i], sizeof(h));
		sorted[counts[GROUPMAP_PARTITION(h.hash)]++] = offsets[i];
	}

	i = 0;
	while (i < n)
	{
		PendingHeader h;
		int part;

		memcpy(&h, base + sorted[i], sizeof(h));
		part = GROUPMAP_PARTITION(h.hash);
		groupmap_lock_partition(view->map, part);
		for (; i < n; i++)
		{
			const char *key;
			const char *state;
			bool flag;
			bool created;

			memcpy(&h, base + sorted[i], sizeof(h));
			if (GROUPMAP_PARTITION(h.hash) != part)
				break;
			if (h.superseded)
				continue;
			key = base + sorted[i] + sizeof(h);
			state = key + h.keylen;
			if (h.statelen < 0)
			{
				(void)groupmap_remove(view->map, h.hash, key, h.keylen, w->index,
									  &flag, &created);
				if (flag)
					dirty_add(view, h.hash, key, h.keylen); /* a tombstone */
				statestore_note(view->store, h.hash, h.keylen, flag ? h.oldlen : -1, -1);
			}
			else
			{
				(void)groupmap_put(view->map, h.hash, key, h.keylen, w->index,
								   state, h.statelen, &flag, &created);
				if (!flag)
					dirty_add(view, h.hash, key, h.keylen);
				statestore_note(view->store, h.hash, h.keylen, h.oldlen, h.statelen);
			}
		}
		groupmap_unlock_partition(view->map, part);
	}

	/* Windows keep an index of our slot's groups. */
	if (view->window.kind != 0)
	{
		for (i = 0; i < n; i++)
		{
			PendingHeader h;

			memcpy(&h, base + offsets[i], sizeof(h));
			if (h.superseded || (h.statelen >= 0 && h.oldlen >= 0))
				continue; /* only groups that enter or leave our slot */
			window_group_loaded(view, base + offsets[i] + sizeof(h), h.keylen,
								h.statelen >= 0);
		}
	}
	pfree(offsets);
	pfree(sorted);

	/*
	 * A checkpoint stops merging while it writes, for a time that follows
	 * the groups it writes: start one before they are too many.
	 */
	if (streamproc_checkpoint_groups > 0 && view->dirty.count >= streamproc_checkpoint_groups)
		w->checkpoint_soon = true;
}

/*
 * The same for the claims of a stream with dedup_key, which the checkpoint
 * writes too (dedup.c).
 */
static void
dedup_note_claims(Worker *w, WStream *stream)
{
	if (stream->dedup != NULL && streamproc_checkpoint_groups > 0 &&
		dedup_listed(stream->dedup) >= streamproc_checkpoint_groups)
		w->checkpoint_soon = true;
}

/*
 * Reserve a Pending list's memory and apply it; false (the view paused)
 * when streamproc.state_memory cannot hold it.
 */
static bool
reserve_and_apply(Worker *w, WView *view, Pending *pending)
{
	if (!streamproc_state_reserve(pending->reserve))
	{
		int64 dedup = streamproc_dedup_memory_used();

		if (view->status != VIEW_SLOT_PAUSED && dedup == 0)
			ereport(LOG,
					(errmsg("streamproc worker %d: continuous view \"%s\" paused: state memory budget reached",
							w->index, view->name),
					 errdetail("Continuous views use %lld bytes of shared memory, a batch of this view needs up to %lld more, and \"streamproc.state_memory\" is %d kB.",
							   (long long)streamproc_state_memory_used(),
							   (long long)pending->reserve, streamproc_state_memory),
					 errhint("Increase \"streamproc.state_memory\" or drop continuous views.  The view's input is kept and processed when memory allows.")));
		else if (view->status != VIEW_SLOT_PAUSED)
			ereport(LOG,
					(errmsg("streamproc worker %d: continuous view \"%s\" paused: state memory budget reached",
							w->index, view->name),
					 errdetail("Continuous views use %lld bytes of shared memory (%lld of them for the keys of streams with dedup_key), a batch of this view needs up to %lld more, and \"streamproc.state_memory\" is %d kB.",
							   (long long)streamproc_state_memory_used(), (long long)dedup,
							   (long long)pending->reserve, streamproc_state_memory),
					 errhint("Increase \"streamproc.state_memory\", shorten the dedup_window of streams with dedup_key, or drop continuous views.  The view's input is kept and processed when memory allows.")));
		view->status = VIEW_SLOT_PAUSED;
		view->retry_at = TimestampTzPlusMilliseconds(GetCurrentTimestamp(), 1000);
		if (view->vs)
			streamproc_state_set_status(view->vs, w->index, VIEW_SLOT_PAUSED,
										"waiting for streamproc.state_memory");
		return false;
	}
	PG_TRY();
	{
		batch_apply(w, view, pending);
	}
	PG_FINALLY();
	{
		streamproc_state_release(pending->reserve);
	}
	PG_END_TRY();
	w->checkpoint_needed = true;
	return true;
}

/* The failures of a batch that was applied join the worker's list. */
static void
keep_failures(Worker *w, WView *view)
{
	MemoryContext old = MemoryContextSwitchTo(TopMemoryContext);

	w->failed_events = list_concat(w->failed_events, view->batch_failures);
	view->stats.errors += list_length(view->batch_failures);
	MemoryContextSwitchTo(old);
	list_free(view->batch_failures);
	view->batch_failures = NIL;
}

static void
drop_failures(WView *view)
{
	list_free_deep(view->batch_failures);
	view->batch_failures = NIL;
}

/* ----------------------------------------------------------------
 * The merge receiver
 * ----------------------------------------------------------------
 */

/* The group key of a batch row (windowed: with the window's prefix). */
static void
row_key(WView *view, TupleTableSlot *slot, StringInfo key)
{
	resetStringInfo(key);
	if (view->window.kind != 0)
	{
		/* The batch query yields the window's start (count: the event's number). */
		TimestampTz start = DatumGetTimestampTz(slot->tts_values[0]);
		TimestampTz end = view->window.kind == WINDOW_COUNT ? 0 : start + view->window.slide;

		enlargeStringInfo(key, WINDOW_KEY_PREFIX);
		streamproc_window_key_prefix(key->data, start, end);
		key->len = WINDOW_KEY_PREFIX;
	}
	groupkey_encode(view->keys, slot->tts_values + view->key_first - 1,
					slot->tts_isnull + view->key_first - 1, key);
}

/* The partial states of a batch row, as PackedStates. */
static void
row_states(WView *view, TupleTableSlot *slot, PackedState *states)
{
	int j;

	for (j = 0; j < view->aggs->nagg; j++)
	{
		int col = view->key_first - 1 + view->ngroup + j;

		if (slot->tts_isnull[col])
		{
			states[j].data = NULL;
			states[j].len = 0;
			states[j].isnull = true;
		}
		else
		{
			bytea *b = DatumGetByteaPP(slot->tts_values[col]);

			states[j].data = VARDATA_ANY(b);
			states[j].len = VARSIZE_ANY_EXHDR(b);
			states[j].isnull = false;
		}
	}
}

static uint32
seen_hash(const void *key, Size keysize)
{
	const SeenKey *k = key;

	return groupmap_hash(k->key, k->keylen);
}

static int
seen_match(const void *a, const void *b, Size keysize)
{
	const SeenKey *x = a;
	const SeenKey *y = b;

	if (x->keylen != y->keylen)
		return 1;
	return memcmp(x->key, y->key, x->keylen);
}

/*
 * Events run one at a time: the latest pending state of the key (copied
 * into *state), which the next event of the key combines with instead of
 * shared memory; *oldlen is what shared memory had, *prev its offset.
 */
static bool
seen_lookup(MergeReceiver *mr, StringInfo state, int32 *oldlen, int *prev)
{
	SeenKey k;
	SeenEntry *e;
	PendingHeader h;

	*prev = -1;
	k.keylen = mr->key.len;
	k.key = mr->key.data;
	e = hash_search(mr->seen, &k, HASH_FIND, NULL);
	if (e == NULL)
		return false;
	memcpy(&h, mr->pending->arena.data + e->offset, sizeof(h));
	*prev = e->offset;
	*oldlen = h.oldlen;
	if (h.statelen < 0)
		return false;
	appendBinaryStringInfo(state, mr->pending->arena.data + e->offset + sizeof(h) + h.keylen,
						   h.statelen);
	return true;
}

/* The event being run gave the key a new pending entry at offset. */
static void
seen_note(MergeReceiver *mr, int offset, int prev)
{
	MemoryContext old = MemoryContextSwitchTo(GetMemoryChunkContext(mr));
	SeenChange *c = palloc(sizeof(SeenChange));

	c->key = palloc(Max(mr->key.len, 1));
	memcpy(c->key, mr->key.data, mr->key.len);
	c->keylen = mr->key.len;
	c->offset = offset;
	c->prev = prev;
	mr->event_changes = lappend(mr->event_changes, c);
	MemoryContextSwitchTo(old);
}

/* The event went through: its entries replace the ones before them. */
static void
seen_commit(DestReceiver *dest)
{
	MergeReceiver *mr = (MergeReceiver *)dest;
	ListCell *lc;

	foreach (lc, mr->event_changes)
	{
		SeenChange *c = lfirst(lc);
		SeenKey k;
		SeenEntry *e;
		bool found;

		if (c->prev >= 0)
		{
			PendingHeader h;

			memcpy(&h, mr->pending->arena.data + c->prev, sizeof(h));
			h.superseded = true;
			memcpy(mr->pending->arena.data + c->prev, &h, sizeof(h));
		}
		k.keylen = c->keylen;
		k.key = c->key;
		e = hash_search(mr->seen, &k, HASH_ENTER, &found);
		if (!found)
			e->k.key = c->key; /* kept: it lives in the receiver's context */
		e->offset = c->offset;
	}
	list_free(mr->event_changes);
	mr->event_changes = NIL;
}

static void
seen_discard(DestReceiver *dest)
{
	MergeReceiver *mr = (MergeReceiver *)dest;

	list_free_deep(mr->event_changes);
	mr->event_changes = NIL;
}

/*
 * batch_group_left
 *		Is a packed state of our slot, of a view over an aggregating view,
 *		that of no rows: its sum("$sign") zero and every other aggregate's
 *		value zero or none?  Then every row that entered the group in our
 *		slot also left it (feed.c sends a group's rows and their
 *		retractions to the same shard), and removing the group from our
 *		slot changes no value the view shows; the checkpoint does, so that
 *		a view over changing groups does not keep every group that ever
 *		existed.  A value of another type than bigint and numeric keeps the
 *		group.
 */
bool
batch_group_left(WView *view, const char *data, size_t len)
{
	PackedState *states = view->sign_states;
	int sign = view->sign_agg;
	Datum zero = 0;
	int j;

	if (!packed_split(data, len, view->aggs->nagg, states))
		return false;
	/* The count of rows first: it is zero only when rows left. */
	if (states[sign].isnull ||
		DatumGetInt64(streamproc_agg_final_raw(view->aggs->aggs[sign], states[sign].data,
											   (int)states[sign].len, &(bool){false})) != 0)
		return false;
	for (j = 0; j < view->aggs->nagg; j++)
	{
		StreamprocAggInfo *info = view->aggs->aggs[j];
		bool isnull;
		Datum value;

		if (j == sign || states[j].isnull)
			continue;
		value = streamproc_agg_final_raw(info, states[j].data, (int)states[j].len, &isnull);
		if (isnull)
			continue;
		if (info->resulttype == INT8OID)
		{
			if (DatumGetInt64(value) != 0)
				return false;
		}
		else if (info->resulttype == NUMERICOID)
		{
			if (zero == 0)
				zero = NumericGetDatum(int64_to_numeric(0));
			if (DatumGetInt32(DirectFunctionCall2(numeric_cmp, value, zero)) != 0)
				return false;
		}
		else
			return false;
	}
	return true;
}

static bool
merge_receive(TupleTableSlot *slot, DestReceiver *self)
{
	MergeReceiver *mr = (MergeReceiver *)self;
	WView *view = mr->view;
	MemoryContext old;
	uint32 hash;
	bool found;
	int32 oldlen;
	int prev;

	old = MemoryContextSwitchTo(mr->w->row_cxt);
	slot_getallattrs(slot);
	row_key(view, slot, &mr->key);
	row_states(view, slot, mr->incoming);
	mr->rows++;

	if (view->window.kind == WINDOW_SESSION || view->window.kind == WINDOW_COUNT)
	{
		/* Merged with the slot's open windows once the query is done. */
		MemoryContext batch = MemoryContextSwitchTo(mr->w->batch_cxt);
		WindowPiece *p = palloc0(sizeof(WindowPiece));
		StringInfoData st;

		streamproc_window_key_decode(mr->key.data, mr->key.len, &p->start, &p->end);
		if (view->window.kind == WINDOW_SESSION)
		{
			/* The bin's first and last event time (view.c): [s1, s2 + gap). */
			int col = view->key_first - 1 + view->ngroup + view->aggs->nagg;
			bool isnull;
			bytea *s1 = DatumGetByteaPP(slot->tts_values[col]);
			bytea *s2 = DatumGetByteaPP(slot->tts_values[col + 1]);

			p->start = DatumGetTimestampTz(streamproc_agg_final_raw(view->first_event, VARDATA_ANY(s1),
																	VARSIZE_ANY_EXHDR(s1), &isnull));
			p->end = DatumGetTimestampTz(streamproc_agg_final_raw(view->last_event, VARDATA_ANY(s2),
																  VARSIZE_ANY_EXHDR(s2), &isnull)) +
					 view->window.size;
		}
		p->glen = mr->key.len - WINDOW_KEY_PREFIX;
		p->gkey = palloc(Max(p->glen, 1));
		memcpy(p->gkey, mr->key.data + WINDOW_KEY_PREFIX, p->glen);
		initStringInfo(&st);
		packed_append(&st, view->aggs->nagg, mr->incoming);
		p->state = st.data;
		p->statelen = st.len;
		mr->pieces = lappend(mr->pieces, p);
		MemoryContextSwitchTo(batch);
		MemoryContextSwitchTo(old);
		MemoryContextReset(mr->w->row_cxt);
		return true;
	}

	hash = groupmap_hash(mr->key.data, mr->key.len);
	resetStringInfo(&mr->current);
	prev = -1;
	if (mr->seen != NULL && seen_lookup(mr, &mr->current, &oldlen, &prev))
		found = true; /* an earlier event of this run: combine with it */
	else if (prev >= 0)
		found = false; /* an earlier event removed it (sessions): start anew */
	else
	{
		found = groupmap_get_slot(view->map, hash, mr->key.data, mr->key.len,
								  mr->w->index, &mr->current);
		oldlen = found ? (int32)mr->current.len : -1;
	}
	resetStringInfo(&mr->merged);
	if (found)
	{
		PackedState *cur = mr->incoming + view->aggs->nagg;

		if (!packed_split(mr->current.data, mr->current.len, view->aggs->nagg, cur))
			ereport(ERROR,
					(errcode(ERRCODE_DATA_CORRUPTED),
					 errmsg("corrupt partial state in continuous view \"%s\"", view->name)));
		streamproc_combine_states(view->aggs, cur, mr->incoming, &mr->merged);
	}
	else
		packed_append(&mr->merged, view->aggs->nagg, mr->incoming);
	if (mr->seen != NULL)
		seen_note(mr, mr->pending->arena.len, prev);
	pending_add(mr->pending, hash, mr->key.data, mr->key.len, mr->merged.data,
				mr->merged.len, oldlen);
	MemoryContextSwitchTo(old);
	MemoryContextReset(mr->w->row_cxt);
	return true;
}

static void
merge_startup(DestReceiver *self, int operation, TupleDesc typeinfo)
{
}

static void
merge_shutdown(DestReceiver *self)
{
}

static void
merge_destroy(DestReceiver *self)
{
}

/*
 * batch_merge_receiver
 *		A DestReceiver for a view's batch query that merges its rows into
 *		pending (session and count windows: after the query, see
 *		finish_merge).  Lives in the batch context.
 */
DestReceiver *
batch_merge_receiver(Worker *w, WView *view, Pending *pending)
{
	MemoryContext old = MemoryContextSwitchTo(w->batch_cxt);
	MergeReceiver *mr = palloc0(sizeof(MergeReceiver));

	mr->pub.receiveSlot = merge_receive;
	mr->pub.rStartup = merge_startup;
	mr->pub.rShutdown = merge_shutdown;
	mr->pub.rDestroy = merge_destroy;
	mr->pub.mydest = DestNone;
	mr->w = w;
	mr->view = view;
	mr->pending = pending;
	initStringInfo(&mr->key);
	initStringInfo(&mr->current);
	initStringInfo(&mr->merged);
	mr->incoming = palloc0(sizeof(PackedState) * Max(view->aggs->nagg, 1) * 2);
	MemoryContextSwitchTo(old);
	return (DestReceiver *)mr;
}

/* Events one at a time: remember each key's latest pending entry. */
static void
merge_seen_init(DestReceiver *dest)
{
	MergeReceiver *mr = (MergeReceiver *)dest;
	HASHCTL ctl;

	ctl.keysize = sizeof(SeenKey);
	ctl.entrysize = sizeof(SeenEntry);
	ctl.hash = seen_hash;
	ctl.match = seen_match;
	ctl.hcxt = GetMemoryChunkContext(mr);
	mr->seen = hash_create("streamproc events of a batch", 256, &ctl,
						   HASH_ELEM | HASH_FUNCTION | HASH_COMPARE | HASH_CONTEXT);
}

/* After a successful query: session and count windows merge their pieces. */
static void
finish_merge(Worker *w, WView *view, DestReceiver *dest)
{
	MergeReceiver *mr = (MergeReceiver *)dest;

	if (mr->pieces != NIL)
	{
		MemoryContext old = MemoryContextSwitchTo(w->batch_cxt);

		window_merge_pieces(w, view, mr->pieces, mr->pending);
		mr->pieces = NIL;
		MemoryContextSwitchTo(old);
	}
}

/* How far a merge receiver got, to go back there after a failed query. */
typedef struct MergeMark
{
	int len;
	int64 count;
	int64 reserve;
	int npieces;
} MergeMark;

static MergeMark
merge_mark(DestReceiver *dest)
{
	MergeReceiver *mr = (MergeReceiver *)dest;
	MergeMark m;

	m.len = mr->pending->arena.len;
	m.count = mr->pending->count;
	m.reserve = mr->pending->reserve;
	m.npieces = list_length(mr->pieces);
	return m;
}

static void
merge_rewind(DestReceiver *dest, MergeMark m)
{
	MergeReceiver *mr = (MergeReceiver *)dest;

	mr->pending->arena.len = m.len;
	mr->pending->count = m.count;
	mr->pending->reserve = m.reserve;
	mr->pieces = list_truncate(mr->pieces, m.npieces);
}

/* ----------------------------------------------------------------
 * Running a plan in a subtransaction
 * ----------------------------------------------------------------
 */

/*
 * run_plan
 *		Execute plan with the given arguments as the view's owner in a
 *		subtransaction, its rows going to dest (NULL: an INSERT, whose row
 *		count is returned in SPI_processed).  On failure the error is copied
 *		into *edata (in the batch context) and classified.
 */
static RunResult
run_plan(Worker *w, WView *view, SPIPlanPtr plan, Datum *args,
		 const char *nulls, int nargs, DestReceiver *dest, ErrorData **edata)
{
	MemoryContext oldcxt = CurrentMemoryContext;
	ResourceOwner oldowner = CurrentResourceOwner;
	Oid save_userid;
	int save_sec;
	RunResult result = RUN_OK;

	GetUserIdAndSecContext(&save_userid, &save_sec);
	BeginInternalSubTransaction(NULL);
	MemoryContextSwitchTo(oldcxt);
	PG_TRY();
	{
		SPIExecuteOptions options;
		ParamListInfo params = NULL;
		int ret;
		int i;

		if (nargs > 0)
		{
			params = makeParamList(nargs);
			for (i = 0; i < nargs; i++)
			{
				params->params[i].value = args[i];
				params->params[i].isnull = nulls && nulls[i] == 'n';
				params->params[i].pflags = PARAM_FLAG_CONST;
				params->params[i].ptype = SPI_getargtypeid(plan, i);
			}
		}
		/*
		 * A view over a view (feed.c) reads its feed, which is its owner's:
		 * the owner must still be allowed to read the upstream view, as
		 * the log of a stream (a revoked privilege fails the view).
		 */
		if (OidIsValid(view->upstream) &&
			pg_class_aclcheck(view->upstream, view->owner, ACL_SELECT) != ACLCHECK_OK)
			aclcheck_error(ACLCHECK_NO_PRIV, OBJECT_VIEW, get_rel_name(view->upstream));

		memset(&options, 0, sizeof(options));
		options.params = params;
		options.read_only = false;
		options.dest = dest;
		SetUserIdAndSecContext(view->owner,
							   save_sec | SECURITY_LOCAL_USERID_CHANGE | SECURITY_RESTRICTED_OPERATION);
		ret = SPI_execute_plan_extended(plan, &options);
		if (ret < 0)
			elog(ERROR, "streamproc batch query failed: %s", SPI_result_code_string(ret));
		SetUserIdAndSecContext(save_userid, save_sec);
		if (dest != NULL && !((MergeReceiver *)dest)->defer)
			finish_merge(w, view, dest);

		ReleaseCurrentSubTransaction();
		MemoryContextSwitchTo(oldcxt);
		CurrentResourceOwner = oldowner;
	}
	PG_CATCH();
	{
		MemoryContextSwitchTo(w->batch_cxt);
		*edata = CopyErrorData();
		FlushErrorState();
		RollbackAndReleaseCurrentSubTransaction();
		MemoryContextSwitchTo(oldcxt);
		CurrentResourceOwner = oldowner;
		SetUserIdAndSecContext(save_userid, save_sec);
		MemoryContextReset(w->row_cxt);
		result = streamproc_error_kind(*edata) == STREAMPROC_ERROR_DATA ? RUN_DATA_ERROR
																		: RUN_OTHER_ERROR;
	}
	PG_END_TRY();
	return result;
}

/*
 * batch_run_in_subxact
 *		run_plan() for callers outside this file (append views and late
 *		events in the checkpoint): true on success; false with *edata on an
 *		error of the events' data.  Any other error is re-thrown to the
 *		caller, whose subtransaction stops the view.
 */
bool
batch_run_in_subxact(Worker *w, WView *view, SPIPlanPtr plan, Datum *args,
					 const char *nulls, DestReceiver *dest, ErrorData **edata)
{
	RunResult r = run_plan(w, view, plan, args, nulls, SPI_getargcount(plan), dest, edata);

	if (r == RUN_OTHER_ERROR)
		ReThrowError(*edata);
	return r == RUN_OK;
}

/*
 * batch_run_late
 *		batch_run_in_subxact() for the INSERT of late events: an error of
 *		the view's kind (the late_events table no longer fits: a column
 *		dropped, a privilege revoked) also returns false, with *unfit set,
 *		so that the view goes on and its late events go to
 *		streamproc.errors; transient errors are re-thrown.
 */
bool
batch_run_late(Worker *w, WView *view, Datum *args, ErrorData **edata, bool *unfit)
{
	RunResult r = run_plan(w, view, view->late_plan, args, "  ", 2, NULL, edata);

	*unfit = false;
	if (r == RUN_OTHER_ERROR)
	{
		if (streamproc_error_kind(*edata) != STREAMPROC_ERROR_VIEW)
			ReThrowError(*edata);
		*unfit = true;
	}
	return r == RUN_OK;
}

/* ----------------------------------------------------------------
 * Log batches
 * ----------------------------------------------------------------
 */

/* The range of a log batch for one view, as query arguments. */
typedef struct LogRange
{
	Datum cur;  /* pg_snapshot: the batch */
	Datum done; /* pg_snapshot: merged already, or 0 */
	int shard;
	BlockNumber lo;
	BlockNumber hi;
} LogRange;

static ItemPointer
block_tid(BlockNumber block)
{
	ItemPointer tid = palloc(sizeof(ItemPointerData));

	ItemPointerSet(tid, block, 0);
	return tid;
}

/* Arguments of a batch query: $1 cur, $2 done, $3 shard, $4 lo, $5 hi [, $6 cutoff]. */
static int
range_args(WView *view, const LogRange *r, Datum *args, char *nulls)
{
	args[0] = r->cur;
	args[1] = r->done;
	args[2] = Int16GetDatum((int16)r->shard);
	args[3] = PointerGetDatum(block_tid(r->lo));
	args[4] = PointerGetDatum(block_tid(r->hi));
	args[5] = TimestampTzGetDatum(view->cutoff);
	memset(nulls, ' ', 6);
	if (r->done == (Datum)0)
		nulls[1] = 'n';
	return view->window.kind != 0 && view->kind == STREAMPROC_VIEW_AGGREGATING ? 6 : 5;
}

/*
 * run_events_one_by_one
 *		A piece's batch query failed on some event's data: run it for each
 *		event of the piece alone, merging those that work into pending and
 *		recording those that fail.  Returns false when an event met an error
 *		that is not its data's (*edata): the caller stops the view.
 */
static bool
run_events_one_by_one(Worker *w, WShard *shard, WView *view, const LogRange *r,
					  DestReceiver *dest, ErrorData **edata)
{
	Datum args[6];
	char nulls[6];
	SPITupleTable *rows;
	uint64 nrows;
	uint64 i;
	int ret;

	(void)range_args(view, r, args, nulls);
	ret = SPI_execute_plan(shard->rows_plan, args, nulls, true, 0);
	if (ret != SPI_OK_SELECT)
		elog(ERROR, "could not list stream log rows: %s", SPI_result_code_string(ret));
	rows = SPI_tuptable;
	nrows = SPI_processed;

	((MergeReceiver *)dest)->defer = true;
	merge_seen_init(dest);
	for (i = 0; i < nrows; i++)
	{
		bool isnull;
		Datum ctid = SPI_getbinval(rows->vals[i], rows->tupdesc, 1, &isnull);
		char *event = SPI_getvalue(rows->vals[i], rows->tupdesc, 2);
		Datum eargs[3];
		char enulls[3] = {' ', ' ', ' '};
		int nargs = view->window.kind != 0 && view->kind == STREAMPROC_VIEW_AGGREGATING ? 3 : 2;
		MergeMark mark = merge_mark(dest);
		RunResult res;

		eargs[0] = ctid;
		eargs[1] = Int16GetDatum((int16)shard->shard);
		eargs[2] = TimestampTzGetDatum(view->cutoff);

		/* A failing event must not take the pending list merged so far. */
		res = run_plan(w, view, view->event_plan, eargs, enulls, nargs, dest, edata);
		if (res == RUN_OK)
			seen_commit(dest);
		else
			seen_discard(dest);
		if (res == RUN_OTHER_ERROR)
		{
			((MergeReceiver *)dest)->defer = false;
			return false;
		}
		if (res == RUN_DATA_ERROR)
		{
			merge_rewind(dest, mark);
			worker_record_failure(w, &view->batch_failures, shard->stream->name, view,
								  psprintf("log row %s", DatumGetCString(DirectFunctionCall1(tidout, ctid))),
								  event, *edata);
		}
	}
	SPI_freetuptable(rows);
	((MergeReceiver *)dest)->defer = false;
	finish_merge(w, view, dest);
	return true;
}

/* The snapshots are the same (our batches' snapshots are taken in order). */
static bool
snapshot_equal(Datum a, Datum b)
{
	if (a == (Datum)0 || b == (Datum)0)
		return a == b;
	return datumIsEqual(a, b, false, -1);
}

/* Rows of a range, and their least and greatest event time. */
typedef struct RangeCount
{
	int64 rows;
	bool has_times;
	TimestampTz min_time;
	TimestampTz max_time;
	int64 null_times;
} RangeCount;

static void
count_range(WShard *shard, WView *view, const LogRange *r, RangeCount *c)
{
	Datum args[6];
	char nulls[6];
	bool isnull;
	bool min_null;
	bool max_null;
	int ret;

	(void)range_args(view, r, args, nulls);
	ret = SPI_execute_plan(shard->count_plan, args, nulls, true, 1);
	if (ret != SPI_OK_SELECT)
		elog(ERROR, "could not count stream log rows: %s", SPI_result_code_string(ret));
	c->rows = DatumGetInt64(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull));
	c->min_time = DatumGetTimestampTz(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 2, &min_null));
	c->max_time = DatumGetTimestampTz(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 3, &max_null));
	c->null_times = DatumGetInt64(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 4, &isnull));
	c->has_times = !min_null && !max_null;
	SPI_freetuptable(SPI_tuptable);
}

/*
 * run_view_range
 *		Merge the rows of one view's range (cur, done] of a shard, piece by
 *		piece from pos->next_block.  Returns false when the view stopped
 *		(failed, paused) before the end; pos then says how far it got.
 */
static bool
run_view_range(Worker *w, WShard *shard, WView *view, LogPosition *pos,
			   BlockNumber nblocks, int64 *events)
{
	LogRange r;
	RangeCount count;
	BlockNumber lo;

	r.cur = pos->cur;
	r.done = pos->done;
	r.shard = shard->shard;
	r.lo = 0;
	r.hi = nblocks;
	count_range(shard, view, &r, &count);
	if (count.rows == 0)
		return true;
	*events = Max(*events, count.rows);
	if (shard->stream->event_time != InvalidAttrNumber && count.has_times)
	{
		shard->last_event = GetCurrentTimestamp();
		if (count.max_time > shard->max_time)
			shard->max_time = count.max_time;
	}

	for (lo = pos->next_block; lo < nblocks; lo += SUBBATCH_BLOCKS)
	{
		Pending pending;
		DestReceiver *dest;
		ErrorData *edata = NULL;
		Datum args[6];
		char nulls[6];
		int nargs;
		RunResult res;
		MergeMark mark;

		r.lo = lo;
		r.hi = Min(nblocks, lo + SUBBATCH_BLOCKS);
		nargs = range_args(view, &r, args, nulls);
		pending_init(&pending);
		if (view->kind == STREAMPROC_VIEW_AGGREGATING)
		{
			dest = batch_merge_receiver(w, view, &pending);
			mark = merge_mark(dest);
			res = run_plan(w, view, view->batch_plan, args, nulls, nargs, dest, &edata);
			if (res != RUN_OK)
				merge_rewind(dest, mark);
			if (res == RUN_DATA_ERROR &&
				!run_events_one_by_one(w, shard, view, &r, dest, &edata))
				res = RUN_OTHER_ERROR;
			if (res == RUN_OTHER_ERROR)
			{
				drop_failures(view);
				worker_view_failed(w, view, edata);
				return false;
			}
			if (!reserve_and_apply(w, view, &pending))
			{
				drop_failures(view);
				return false;
			}
		}
		keep_failures(w, view);
		worker_view_ok(w, view);
		/*
		 * The state now holds this piece: a checkpoint before the range
		 * ends must save how far it got ("done|cur|block"), or a crash
		 * would merge the piece again.
		 */
		pos->next_block = r.hi;
		view->logpos_changed[shard->shard] = true;
		w->checkpoint_needed = true;
		MemoryContextReset(w->batch_cxt);
	}

	/* Late events (windows) of the whole range, read apart. */
	if (view->window.kind != 0 && view->window.kind != WINDOW_COUNT &&
		(count.null_times > 0 || (count.has_times && count.min_time < view->cutoff)))
	{
		Datum args[6];
		char nulls[6];

		r.lo = 0;
		r.hi = nblocks;
		(void)range_args(view, &r, args, nulls);
		window_log_late_events(w, shard, view, args, nulls);
	}
	view->stats.events += count.rows;
	return true;
}

/*
 * batch_run_shard
 *		One batch of a log shard for the views we run over it; returns the
 *		number of events (the most any view merged), or -1 without
 *		processing anything when the catalog changed since it was loaded.
 */
int64
batch_run_shard(Worker *w, WShard *shard)
{
	Datum snapshot;
	BlockNumber nblocks;
	int64 events = 0;
	ListCell *lc;
	bool isnull;
	int ret;

	SetCurrentStatementStartTimestamp();
	StartTransactionCommand();
	XactIsoLevel = XACT_REPEATABLE_READ;
	SPI_connect();
	PushActiveSnapshot(GetTransactionSnapshot());

	ret = SPI_execute("SELECT pg_catalog.pg_current_snapshot()", true, 1);
	if (ret != SPI_OK_SELECT || SPI_processed != 1)
		elog(ERROR, "could not take a snapshot");
	snapshot = SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull);
	{
		/* Outlives SPI_finish and the transaction: the shard's context. */
		MemoryContext old = MemoryContextSwitchTo(GetMemoryChunkContext(shard));

		snapshot = datumCopy(snapshot, false, -1);
		MemoryContextSwitchTo(old);
	}

	/*
	 * The partitioned log before its shard, in the order DDL on the stream
	 * takes them (the batch queries read the log), so that an ALTER of the
	 * stream cannot deadlock with us.
	 */
	LockRelationOid(shard->stream->logid, AccessShareLock);

	/*
	 * A catalog change that committed before this snapshot (a view created,
	 * then events inserted for it) must be loaded before the batch runs;
	 * so must one that committed while we waited for the lock (the stream
	 * dropped).  The generation is bumped when the changing transaction
	 * commits, before it releases its locks, so it is visible here in both
	 * cases.
	 */
	pg_memory_barrier();
	if (pg_atomic_read_u64(&streamproc_shared->catalog_generation) != w->catalog_generation)
	{
		pfree(DatumGetPointer(snapshot));
		SPI_finish();
		PopActiveSnapshot();
		CommitTransactionCommand();
		return -1;
	}

	{
		Relation rel = try_relation_open(shard->logid, AccessShareLock);

		if (rel == NULL)
			elog(ERROR, "log shard %u of stream \"%s\" does not exist", shard->logid,
				 shard->stream->name);
		nblocks = RelationGetNumberOfBlocks(rel);
		relation_close(rel, NoLock);
	}

	foreach (lc, shard->views)
	{
		WView *view = lfirst(lc);
		LogPosition *pos = &view->logpos[shard->shard];
		int rounds;

		if (view->kind != STREAMPROC_VIEW_AGGREGATING || !worker_view_runnable(w, view))
			continue;

		/* A range left unfinished comes first, then the new one. */
		for (rounds = 0; rounds < 2; rounds++)
		{
			if (pos->cur == (Datum)0)
			{
				MemoryContext vcxt = MemoryContextSwitchTo(GetMemoryChunkContext(view));

				if (snapshot_equal(pos->done, snapshot))
				{
					MemoryContextSwitchTo(vcxt);
					break;
				}
				pos->cur = datumCopy(snapshot, false, -1);
				pos->next_block = 0;
				MemoryContextSwitchTo(vcxt);
			}
			if (!run_view_range(w, shard, view, pos, nblocks, &events))
				break;
			if (pos->done != (Datum)0)
				pfree(DatumGetPointer(pos->done));
			pos->done = pos->cur;
			pos->cur = (Datum)0;
			pos->next_block = 0;
			view->logpos_changed[shard->shard] = true;
		}
	}

	SPI_finish();
	PopActiveSnapshot();

	/* The snapshot append views are written up to by the checkpoint. */
	if (shard->last_snapshot)
		pfree(DatumGetPointer(shard->last_snapshot));
	shard->last_snapshot = snapshot;
	CommitTransactionCommand();
	MemoryContextReset(w->batch_cxt);
	if (events > 0 || shard->stream->has_append)
		w->checkpoint_needed = true;
	dedup_note_claims(w, shard->stream);
	return events;
}

/* ----------------------------------------------------------------
 * Kafka batches
 * ----------------------------------------------------------------
 */

/* The offset a view needs next in a partition (-1: the source's position). */
static int64
view_kafka_offset(WView *view, KafkaSource *src, int32 partition)
{
	KafkaLagKey k;
	KafkaLag *lag;

	if (view->kafka_lag == NULL)
		return -1;
	memset(&k, 0, sizeof(k));
	k.src = src;
	k.partition = partition;
	lag = hash_search(view->kafka_lag, &k, HASH_FIND, NULL);
	return lag ? lag->offset : -1;
}

/*
 * A view's entry for a Kafka partition it is behind in (created when
 * absent: *found says which).
 */
KafkaLag *
view_kafka_lag(WView *view, KafkaSource *src, int32 partition, bool *found)
{
	KafkaLagKey k;

	if (view->kafka_lag == NULL)
	{
		HASHCTL ctl;

		ctl.keysize = sizeof(KafkaLagKey);
		ctl.entrysize = sizeof(KafkaLag);
		ctl.hcxt = GetMemoryChunkContext(view);
		view->kafka_lag = hash_create("streamproc Kafka lag", 16, &ctl,
									  HASH_ELEM | HASH_BLOBS | HASH_CONTEXT);
	}
	memset(&k, 0, sizeof(k));
	k.src = src;
	k.partition = partition;
	return hash_search(view->kafka_lag, &k, HASH_ENTER, found);
}

/* A view stays behind (or goes further behind) in a partition. */
static void
view_kafka_behind(WView *view, KafkaSource *src, int32 partition, int64 offset)
{
	bool found;
	KafkaLag *lag = view_kafka_lag(view, src, partition, &found);

	if (!found)
	{
		lag->offset = offset;
		lag->saved = false;
	}
	else if (offset < lag->offset)
		lag->offset = offset;
}

/*
 * After a batch an aggregating view read (or had nothing to read in): where
 * it is now.  Every message of the batch counts, also those that did not
 * parse, or a view behind would stay behind them (and the consumer rewind
 * for it) for good.  A runnable view was rewound for before the fetch, so
 * the batch starts no later than where it was.
 */
static void
view_kafka_advance_batch(WView *view, KafkaSource *src, rd_kafka_message_t **msgs, int n)
{
	int i;

	if (view->kafka_lag == NULL)
		return;
	for (i = 0; i < n; i++)
	{
		KafkaLagKey k;
		KafkaLag *lag;

		memset(&k, 0, sizeof(k));
		k.src = src;
		k.partition = msgs[i]->partition;
		lag = hash_search(view->kafka_lag, &k, HASH_FIND, NULL);
		if (lag != NULL && msgs[i]->offset + 1 > lag->offset)
			lag->offset = msgs[i]->offset + 1;
	}
}

/*
 * Views of the stream that are behind the source and may run again: rewind
 * the consumer to the least offset they need.
 */
static void
rewind_for_lagging_views(Worker *w, WStream *stream, KafkaSource *src)
{
	ListCell *lc;

	foreach (lc, stream->views)
	{
		WView *view = lfirst(lc);
		HASH_SEQ_STATUS seq;
		KafkaLag *lag;

		if (view->kafka_lag == NULL || !worker_view_runnable(w, view))
			continue;
		hash_seq_init(&seq, view->kafka_lag);
		while ((lag = hash_seq_search(&seq)) != NULL)
			if (lag->key.src == src)
				streamproc_kafka_rewind(src, lag->key.partition, lag->offset);
	}
}

/* Does a view read message msgs[i] (not below its position)? */
static bool
view_reads_message(WView *view, KafkaSource *src, rd_kafka_message_t **msgs,
				   const int64 *positions, int i)
{
	int64 need = view_kafka_offset(view, src, msgs[i]->partition);

	if (need < 0)
		need = positions[i];
	return msgs[i]->offset >= need;
}

/*
 * Which rows of a Kafka batch a view skips: those below its position in
 * their partition.  Returns how many it reads.
 */
static int
view_skip_mask(WView *view, KafkaSource *src, rd_kafka_message_t **msgs,
			   const int *rowmsg, const int64 *positions, int nrows, bool *skip)
{
	int reads = 0;
	int i;

	for (i = 0; i < nrows; i++)
	{
		skip[i] = !view_reads_message(view, src, msgs, positions, rowmsg[i]);
		if (!skip[i])
			reads++;
	}
	return reads;
}

/*
 * How many of a Kafka batch's copies dropped by dedup_key (messages
 * copymsg[0 .. ncopies - 1]) a view would have read: stat_views.events
 * counts them, as it counts the copies in a log range.
 */
static int
view_copies_read(WView *view, KafkaSource *src, rd_kafka_message_t **msgs,
				 const int *copymsg, const int64 *positions, int ncopies)
{
	int reads = 0;
	int i;

	for (i = 0; i < ncopies; i++)
		if (view_reads_message(view, src, msgs, positions, copymsg[i]))
			reads++;
	return reads;
}

/*
 * Run one aggregating view over a Kafka batch; false when it stopped
 * (then it stays behind in the batch's partitions).
 */
static bool
run_view_source(Worker *w, WStream *stream, KafkaSource *src, WView *view,
				SourceRows *rows, bool *skip, rd_kafka_message_t **msgs,
				const int *rowmsg)
{
	Pending pending;
	DestReceiver *dest;
	ErrorData *edata = NULL;
	Datum cutoff = TimestampTzGetDatum(view->cutoff);
	int nargs = view->window.kind != 0 ? 1 : 0;
	RunResult res;
	MergeMark mark;
	int i;

	pending_init(&pending);
	dest = batch_merge_receiver(w, view, &pending);
	rows->skip = skip;
	rows->first = 0;
	rows->count = rows->nrows;
	mark = merge_mark(dest);
	res = run_plan(w, view, view->source_plan, &cutoff, " ", nargs, dest, &edata);
	if (res != RUN_OK)
		merge_rewind(dest, mark);
	if (res == RUN_DATA_ERROR)
	{
		res = RUN_OK;
		((MergeReceiver *)dest)->defer = true;
		merge_seen_init(dest);
		for (i = 0; i < rows->nrows; i++)
		{
			RunResult r1;

			if (skip[i])
				continue;
			rows->first = i;
			rows->count = 1;
			edata = NULL;
			mark = merge_mark(dest);
			r1 = run_plan(w, view, view->source_plan, &cutoff, " ", nargs, dest, &edata);
			if (r1 == RUN_OK)
				seen_commit(dest);
			else
			{
				seen_discard(dest);
				merge_rewind(dest, mark);
			}
			if (r1 == RUN_OTHER_ERROR)
			{
				res = RUN_OTHER_ERROR;
				break;
			}
			if (r1 == RUN_DATA_ERROR)
			{
				worker_record_kafka_failure(w, &view->batch_failures, src, view, msgs[rowmsg[i]],
											edata->sqlerrcode,
											edata->message ? edata->message : "", edata->detail);
			}
		}
		((MergeReceiver *)dest)->defer = false;
		if (res == RUN_OK)
			finish_merge(w, view, dest);
	}
	rows->first = 0;
	rows->count = rows->nrows;
	if (res == RUN_OTHER_ERROR || !reserve_and_apply(w, view, &pending))
	{
		drop_failures(view);
		if (res == RUN_OTHER_ERROR)
			worker_view_failed(w, view, edata);
		return false;
	}
	keep_failures(w, view);
	worker_view_ok(w, view);
	return true;
}

/*
 * Keep a Kafka batch's rows for the stream's append views, which the
 * checkpoint writes (as it writes them from the log): the rows some append
 * view still needs.
 */
static void
keep_pending_rows(WStream *stream, KafkaSource *src, SourceRows *rows,
				  rd_kafka_message_t **msgs, const int *rowmsg, const bool *needed)
{
	MemoryContext old = MemoryContextSwitchTo(stream->pending_cxt);
	SourceRows *p = &stream->pending;
	int natts = rows->natts;
	int i;
	int j;

	for (i = 0; i < rows->nrows; i++)
	{
		int from = i * natts;
		int to;

		if (!needed[i])
			continue;
		if (p->nrows + 1 > stream->pending_cap)
		{
			int cap = Max(stream->pending_cap * 2, 1024);

			if (stream->pending_cap == 0)
			{
				p->values = palloc(sizeof(Datum) * cap * Max(natts, 1));
				p->nulls = palloc(sizeof(bool) * cap * Max(natts, 1));
				stream->pending_partitions = palloc(sizeof(int32) * cap);
				stream->pending_offsets = palloc(sizeof(int64) * cap);
				stream->pending_sources = palloc(sizeof(KafkaSource *) * cap);
			}
			else
			{
				p->values = repalloc(p->values, sizeof(Datum) * cap * Max(natts, 1));
				p->nulls = repalloc(p->nulls, sizeof(bool) * cap * Max(natts, 1));
				stream->pending_partitions = repalloc(stream->pending_partitions, sizeof(int32) * cap);
				stream->pending_offsets = repalloc(stream->pending_offsets, sizeof(int64) * cap);
				stream->pending_sources = repalloc(stream->pending_sources, sizeof(KafkaSource *) * cap);
			}
			stream->pending_cap = cap;
		}
		p->desc = stream->desc;
		p->natts = natts;
		to = p->nrows * natts;
		for (j = 0; j < natts; j++)
		{
			Form_pg_attribute attr = TupleDescAttr(stream->desc, j);

			p->nulls[to + j] = rows->nulls[from + j];
			p->values[to + j] = rows->nulls[from + j] ? (Datum)0 : datumCopy(rows->values[from + j], attr->attbyval, attr->attlen);
		}
		stream->pending_partitions[p->nrows] = msgs[rowmsg[i]]->partition;
		stream->pending_offsets[p->nrows] = msgs[rowmsg[i]]->offset;
		stream->pending_sources[p->nrows] = src;
		p->nrows++;
	}
	MemoryContextSwitchTo(old);
}

/*
 * batch_run_source
 *		Process the messages of a Kafka source that are waiting: parse them
 *		(bad ones go to streamproc.errors, once), run the stream's views
 *		over the rows in memory, each skipping what it has seen, merge into
 *		our slot, and advance the positions, which the next checkpoint
 *		commits with the state.  Returns the number of messages consumed;
 *		*more says whether more may be waiting.
 */
int
batch_run_source(Worker *w, WStream *stream, KafkaSource *src, bool *more)
{
	StreamprocParser *parser = streamproc_kafka_parser(src);
	int max = Max(streamproc_batch_size, 1);
	int n;
	int natts;
	int nrows = 0;
	StreamprocMessage *pm;
	StreamprocMessageMeta *metas;
	StreamprocParseError *errs;
	Datum *values;
	bool *nulls;
	bool *ok;
	int *rowmsg;
	int *copymsg;
	int ncopies = 0;
	int64 *positions;
	bool *skip;
	bool *append_needed;
	SourceRows rows;
	MemoryContext old;
	ListCell *lc;
	int i;

	rewind_for_lagging_views(w, stream, src);

	if (w->kafka_msgs_size < max)
	{
		w->kafka_msgs = w->kafka_msgs ? repalloc(w->kafka_msgs, sizeof(rd_kafka_message_t *) * max)
									  : MemoryContextAlloc(TopMemoryContext, sizeof(rd_kafka_message_t *) * max);
		w->kafka_msgs_size = max;
	}
	n = streamproc_kafka_fetch(src, w->kafka_msgs, max, more);
	if (n == 0)
		return 0;

	SetCurrentStatementStartTimestamp();
	StartTransactionCommand();
	SPI_connect();
	PushActiveSnapshot(GetTransactionSnapshot());
	old = MemoryContextSwitchTo(w->batch_cxt);

	natts = streamproc_parser_natts(parser);
	pm = palloc(sizeof(StreamprocMessage) * n);
	metas = palloc(sizeof(StreamprocMessageMeta) * n);
	errs = palloc(sizeof(StreamprocParseError) * n);
	values = palloc(sizeof(Datum) * n * Max(natts, 1));
	nulls = palloc(sizeof(bool) * n * Max(natts, 1));
	ok = palloc(sizeof(bool) * n);
	rowmsg = palloc(sizeof(int) * n);
	copymsg = palloc(sizeof(int) * n);
	positions = palloc(sizeof(int64) * n);
	for (i = 0; i < n; i++)
	{
		streamproc_kafka_message_meta(w->kafka_msgs[i], &metas[i]);
		pm[i].data = w->kafka_msgs[i]->payload;
		pm[i].len = w->kafka_msgs[i]->len;
		pm[i].meta = &metas[i];
		/* The source's own position: messages below it were seen already. */
		positions[i] = streamproc_kafka_position(src, w->kafka_msgs[i]->partition);
	}
	(void)streamproc_parser_parse_batch(parser, n, pm, values, nulls, ok, errs);

	/* Rows that parsed, packed; the others are recorded (the first time). */
	for (i = 0; i < n; i++)
	{
		if (!ok[i])
		{
			if (w->kafka_msgs[i]->offset >= positions[i])
				worker_record_kafka_failure(w, &w->failed_events, src, NULL, w->kafka_msgs[i],
											errs[i].sqlerrcode, errs[i].message, NULL);
			continue;
		}
		/* dedup_key: a duplicate goes no further (dedup.c). */
		if (stream->dedup != NULL)
		{
			DedupId id;

			dedup_kafka_id(&id, streamproc_kafka_name(src), w->kafka_msgs[i]->partition,
						   w->kafka_msgs[i]->offset);
			if (!dedup_admit_row(stream->dedup, values + (Size)i * natts, nulls + (Size)i * natts, &id))
			{
				copymsg[ncopies++] = i;
				continue;
			}
		}
		if (nrows != i)
		{
			memcpy(values + (Size)nrows * natts, values + (Size)i * natts, sizeof(Datum) * natts);
			memcpy(nulls + (Size)nrows * natts, nulls + (Size)i * natts, sizeof(bool) * natts);
		}
		rowmsg[nrows++] = i;
	}

	memset(&rows, 0, sizeof(rows));
	rows.desc = stream->desc;
	rows.natts = natts;
	rows.nrows = nrows;
	rows.values = values;
	rows.nulls = nulls;
	rows.first = 0;
	rows.count = nrows;
	skip = palloc(sizeof(bool) * Max(nrows, 1));
	append_needed = palloc0(sizeof(bool) * Max(nrows, 1));

	if (nrows > 0)
	{
		streamproc_source_rows = &rows;
		foreach (lc, stream->views)
		{
			WView *view = lfirst(lc);
			int reads = view_skip_mask(view, src, w->kafka_msgs, rowmsg, positions, nrows, skip);

			if (view->kind != STREAMPROC_VIEW_AGGREGATING)
			{
				/* Append views: the checkpoint writes the rows they need. */
				for (i = 0; i < nrows; i++)
					append_needed[i] |= !skip[i];
				continue;
			}
			if (reads == 0)
			{
				if (worker_view_runnable(w, view))
				{
					view_kafka_advance_batch(view, src, w->kafka_msgs, n);
					view->stats.events += view_copies_read(view, src, w->kafka_msgs, copymsg,
														   positions, ncopies);
				}
				continue;
			}
			if (!worker_view_runnable(w, view) ||
				!run_view_source(w, stream, src, view, &rows, skip, w->kafka_msgs, rowmsg))
			{
				/* Behind from the first row it needed in each partition. */
				for (i = nrows - 1; i >= 0; i--)
					if (!skip[i])
						view_kafka_behind(view, src, w->kafka_msgs[rowmsg[i]]->partition,
										  w->kafka_msgs[rowmsg[i]]->offset);
				continue;
			}
			view_kafka_advance_batch(view, src, w->kafka_msgs, n);
			view->stats.events += reads + view_copies_read(view, src, w->kafka_msgs, copymsg,
														   positions, ncopies);
			if (view->window.kind != 0 && view->window.kind != WINDOW_COUNT)
				window_source_late_events(w, stream, src, view, &rows, skip, w->kafka_msgs, rowmsg);
			w->checkpoint_needed = true;
		}
		streamproc_source_rows = NULL;
		rows.skip = NULL;
		if (stream->has_append)
			keep_pending_rows(stream, src, &rows, w->kafka_msgs, rowmsg, append_needed);
	}
	else
	{
		/* Not one row: the aggregating views behind have read past it all. */
		foreach (lc, stream->views)
		{
			WView *view = lfirst(lc);

			if (view->kind == STREAMPROC_VIEW_AGGREGATING && worker_view_runnable(w, view))
			{
				view_kafka_advance_batch(view, src, w->kafka_msgs, n);
				view->stats.events += view_copies_read(view, src, w->kafka_msgs, copymsg,
													   positions, ncopies);
			}
		}
	}

	if (stream->event_time != InvalidAttrNumber)
		window_note_event_times(stream, src, &rows, w->kafka_msgs, n, rowmsg);

	MemoryContextSwitchTo(old);
	SPI_finish();
	PopActiveSnapshot();
	CommitTransactionCommand();

	streamproc_kafka_consumed(src, w->kafka_msgs, n);
	MemoryContextReset(w->batch_cxt);
	w->checkpoint_needed = true;
	dedup_note_claims(w, stream);
	return n;
}
