/*-------------------------------------------------------------------------
 *
 * windows.c
 *	  Event-time windows: the window functions, window keys, lateness and
 *	  the combining of window states.
 *
 * A windowed continuous view has one window function in FROM:
 * streamproc.tumble(ts, size [, origin]), streamproc.hop(ts, slide, size
 * [, origin]) or streamproc.session(ts, gap), over the stream's event_time
 * column, and groups by its window_start or window_end (view.c checks
 * this).  The functions are ordinary SQL functions, so the same query over
 * a table is the batch query a view is checked against.
 *
 * Inside the engine, the batch query groups by the window's start (view.c
 * computes it as a scalar, date_bin(), rather than calling the function)
 * and the other group keys; the group key of the view's state starts with
 * the window's start and end (start + slide, worker.c) as big-endian int64
 * (WINDOW_KEY_PREFIX bytes), followed by the ordinary serialized key.  So
 * the worker can tell each group's window without decoding the key, and
 * rows of streamproc.window_state sort by window.
 *
 *	- tumble: one state per window.
 *	- hop: the batch query bins by the slide instead, so the state is kept
 *	  per slice of one slide, and a window of size/slide slices is combined
 *	  from them when it is read or closed (Flink's window slicing): an event
 *	  costs one state update, not size/slide of them.  view.c requires size
 *	  to be a multiple of slide.
 *	- session: the batch query yields [ts, ts + gap) per distinct event
 *	  time and group; the worker merges the windows of a group that
 *	  overlap with the open sessions of its slot (worker.c), so the key of
 *	  a session is its current [start, end).
 *	- count: streamproc.count_window(n) is not called: the batch query
 *	  yields one row per event, numbered in processing order, and the
 *	  worker counts each group's events into windows of n (worker.c).  The
 *	  key's prefix is (window id, events so far); a full window closes at
 *	  the next checkpoint, at the checkpoint's time.  Ids and counts are per
 *	  state slot (ingest worker).
 *
 * Watermarks and lateness.  A view's watermark W comes from its stream's
 * inputs (worker.c).  With C = W - allowed_lateness, a window closes when
 * its end <= C: the worker's checkpoint moves it from shared memory to
 * streamproc.window_state.  An event is late when it would land in a
 * window its worker has closed, that is when its event time is below the
 * cutoff of the watermark the worker closed at:
 *	- tumble: the start of the window that contains C (bin(C, size));
 *	- hop: the start of the slice that contains C: the event's first window
 *	  ends with its slice, and a slice takes no event once its first window
 *	  closed, so the windows read from slices never change after closing;
 *	- session: C itself.  A closed session [s, e) has e <= C, so an event
 *	  at or after C cannot overlap it, and merging never reopens a session.
 * In each case the view equals the batch query over the events that were
 * not late, which the tests check.
 *
 * Nothing here touches shared memory.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/htup_details.h"
#include "common/hashfn.h"
#include "common/int.h"
#include "fmgr.h"
#include "funcapi.h"
#include "port/pg_bswap.h"
#include "utils/builtins.h"
#include "utils/memutils.h"
#include "utils/timestamp.h"

#include "windows.h"
#include "combine.h"

PG_FUNCTION_INFO_V1(streamproc_tumble);
PG_FUNCTION_INFO_V1(streamproc_hop);
PG_FUNCTION_INFO_V1(streamproc_session);
PG_FUNCTION_INFO_V1(streamproc_count_window);

/*
 * streamproc_interval_usecs
 *		An interval argument or option as microseconds.  Months have no fixed
 *		length, so they are refused (as date_bin() does); a day counts 24
 *		hours.  Zero is refused unless allow_zero; negative always.
 */
int64
streamproc_interval_usecs(Interval *interval, const char *what, bool allow_zero)
{
	int64 usecs;

	if (interval->month != 0)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("%s cannot contain months or years", what),
				 errhint("Use days, hours, minutes or seconds, for example '30 days'.")));
	if (pg_mul_s64_overflow((int64)interval->day, USECS_PER_DAY, &usecs) ||
		pg_add_s64_overflow(usecs, interval->time, &usecs))
		ereport(ERROR,
				(errcode(ERRCODE_DATETIME_VALUE_OUT_OF_RANGE),
				 errmsg("%s is out of range", what)));
	if (usecs < 0 || (usecs == 0 && !allow_zero))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("%s must be %s", what, allow_zero ? "zero or positive" : "positive"),
				 errdetail("It is %s.",
						   DatumGetCString(DirectFunctionCall1(interval_out,
															   IntervalPGetDatum(interval))))));
	return usecs;
}

/*
 * streamproc_window_bin
 *		The start of the window of the given size, aligned on origin, that
 *		contains ts (date_bin()'s arithmetic).  Infinite timestamps stay as
 *		they are.
 */
TimestampTz
streamproc_window_bin(TimestampTz ts, int64 size, TimestampTz origin)
{
	int64 delta;
	int64 bins;

	if (TIMESTAMP_NOT_FINITE(ts))
		return ts;
	if (pg_sub_s64_overflow(ts, origin, &delta))
		ereport(ERROR,
				(errcode(ERRCODE_DATETIME_VALUE_OUT_OF_RANGE),
				 errmsg("timestamp out of range for a window")));
	bins = delta / size;
	if (delta % size < 0)
		bins--;
	return origin + bins * size;
}

/* The window [start, start + size), checking the end's range. */
static TimestampTz
window_end(TimestampTz start, int64 size)
{
	TimestampTz end;

	if (pg_add_s64_overflow(start, size, &end) || !IS_VALID_TIMESTAMP(end))
		ereport(ERROR,
				(errcode(ERRCODE_DATETIME_VALUE_OUT_OF_RANGE),
				 errmsg("window end out of range")));
	return end;
}

/* A (window_start, window_end) record of the function's result type. */
static HeapTuple
window_tuple(TupleDesc desc, TimestampTz start, TimestampTz end)
{
	Datum values[2];
	bool nulls[2] = {false, false};

	values[0] = TimestampTzGetDatum(start);
	values[1] = TimestampTzGetDatum(end);
	return heap_form_tuple(desc, values, nulls);
}

static void
check_finite(TimestampTz ts)
{
	if (TIMESTAMP_NOT_FINITE(ts))
		ereport(ERROR,
				(errcode(ERRCODE_DATETIME_VALUE_OUT_OF_RANGE),
				 errmsg("an infinite event time has no window")));
}

static void
check_origin(TimestampTz origin, const char *func)
{
	if (TIMESTAMP_NOT_FINITE(origin))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("the origin of %s() must be finite", func)));
}

/*
 * streamproc.tumble(ts, size, origin) -> (window_start, window_end)
 */
Datum
streamproc_tumble(PG_FUNCTION_ARGS)
{
	TimestampTz ts = PG_GETARG_TIMESTAMPTZ(0);
	int64 size = streamproc_interval_usecs(PG_GETARG_INTERVAL_P(1), "window size", false);
	TimestampTz origin = PG_GETARG_TIMESTAMPTZ(2);
	TupleDesc desc;
	TimestampTz start;

	check_finite(ts);
	check_origin(origin, "streamproc.tumble");
	if (get_call_result_type(fcinfo, NULL, &desc) != TYPEFUNC_COMPOSITE)
		elog(ERROR, "return type must be a row type");
	start = streamproc_window_bin(ts, size, origin);
	PG_RETURN_DATUM(HeapTupleGetDatum(window_tuple(BlessTupleDesc(desc), start,
												   window_end(start, size))));
}

/*
 * streamproc.hop(ts, slide, size, origin) -> SETOF (window_start, window_end)
 *		Every window of the given size starting at origin + k * slide that
 *		contains ts, earliest first.
 */
/* Where streamproc.hop() is between calls. */
typedef struct HopState
{
	TimestampTz next; /* start of the next window to return */
	TimestampTz last; /* start of the last one */
	int64 slide;
	int64 size;
} HopState;

Datum
streamproc_hop(PG_FUNCTION_ARGS)
{
	FuncCallContext *funcctx;
	HopState *hop;

	if (SRF_IS_FIRSTCALL())
	{
		MemoryContext old;
		TimestampTz ts = PG_GETARG_TIMESTAMPTZ(0);
		int64 slide = streamproc_interval_usecs(PG_GETARG_INTERVAL_P(1), "hop slide", false);
		int64 size = streamproc_interval_usecs(PG_GETARG_INTERVAL_P(2), "window size", false);
		TimestampTz origin = PG_GETARG_TIMESTAMPTZ(3);
		TupleDesc desc;

		check_finite(ts);
		check_origin(origin, "streamproc.hop");
		if (size % slide != 0)
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("hop window size must be a multiple of its slide"),
					 errhint("Choose a slide that divides the size, for example a size of 10 seconds with a slide of 2 seconds.")));
		funcctx = SRF_FIRSTCALL_INIT();
		old = MemoryContextSwitchTo(funcctx->multi_call_memory_ctx);
		if (get_call_result_type(fcinfo, NULL, &desc) != TYPEFUNC_COMPOSITE)
			elog(ERROR, "return type must be a row type");
		funcctx->tuple_desc = BlessTupleDesc(CreateTupleDescCopy(desc));
		hop = palloc(sizeof(HopState));
		hop->last = streamproc_window_bin(ts, slide, origin);
		hop->next = hop->last - (size - slide);
		hop->slide = slide;
		hop->size = size;
		funcctx->user_fctx = hop;
		MemoryContextSwitchTo(old);
	}
	funcctx = SRF_PERCALL_SETUP();
	hop = funcctx->user_fctx;
	if (hop->next <= hop->last)
	{
		TimestampTz start = hop->next;

		hop->next += hop->slide;
		SRF_RETURN_NEXT(funcctx,
						HeapTupleGetDatum(window_tuple(funcctx->tuple_desc, start,
													   window_end(start, hop->size))));
	}
	SRF_RETURN_DONE(funcctx);
}

/*
 * streamproc.session(ts, gap) -> (window_start, window_end)
 *		One event's session, [ts, ts + gap).  A continuous view merges the
 *		overlapping sessions of a group; a batch query needs to merge them
 *		itself (docs/user-guide.md shows how).
 */
Datum
streamproc_session(PG_FUNCTION_ARGS)
{
	TimestampTz ts = PG_GETARG_TIMESTAMPTZ(0);
	int64 gap = streamproc_interval_usecs(PG_GETARG_INTERVAL_P(1), "session gap", false);
	TupleDesc desc;

	check_finite(ts);
	if (get_call_result_type(fcinfo, NULL, &desc) != TYPEFUNC_COMPOSITE)
		elog(ERROR, "return type must be a row type");
	PG_RETURN_DATUM(HeapTupleGetDatum(window_tuple(BlessTupleDesc(desc), ts,
												   window_end(ts, gap))));
}

/*
 * streamproc.count_window(size) -> window_id
 *		Numbers the events of each group in processing order, which exists
 *		only inside a continuous view: the worker assigns the ids, and the
 *		view's batch query never calls this.
 */
Datum
streamproc_count_window(PG_FUNCTION_ARGS)
{
	ereport(ERROR,
			(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
			 errmsg("streamproc.count_window() numbers events only in continuous views"),
			 errhint("Over a table, number the rows of each group with row_number() instead.")));
	PG_RETURN_NULL();
}

/* ----------------------------------------------------------------
 * Window keys
 * ----------------------------------------------------------------
 */

void
streamproc_window_key_prefix(char *buf, TimestampTz start, TimestampTz end)
{
	uint64 s = pg_hton64((uint64)start);
	uint64 e = pg_hton64((uint64)end);

	memcpy(buf, &s, sizeof(uint64));
	memcpy(buf + sizeof(uint64), &e, sizeof(uint64));
}

void
streamproc_window_key_decode(const char *key, uint32 keylen, TimestampTz *start,
							 TimestampTz *end)
{
	uint64 s;
	uint64 e;

	if (keylen < WINDOW_KEY_PREFIX)
		elog(ERROR, "corrupt streamproc window key");
	memcpy(&s, key, sizeof(uint64));
	memcpy(&e, key + sizeof(uint64), sizeof(uint64));
	*start = (TimestampTz)pg_ntoh64(s);
	*end = (TimestampTz)pg_ntoh64(e);
}

/* ----------------------------------------------------------------
 * Lateness and closing
 * ----------------------------------------------------------------
 */

/*
 * streamproc_window_close_bound
 *		C = watermark - allowed_lateness: the windows (and hop slices' windows)
 *		that end at or before it are closed at this watermark.
 */
TimestampTz
streamproc_window_close_bound(const WindowSpec *spec, TimestampTz watermark)
{
	TimestampTz bound;

	if (TIMESTAMP_NOT_FINITE(watermark))
		return watermark;
	if (pg_sub_s64_overflow(watermark, spec->lateness, &bound) ||
		!IS_VALID_TIMESTAMP(bound))
		return WATERMARK_NONE;
	return bound;
}

/*
 * streamproc_window_cutoff
 *		Events whose time is below this are late once the windows are closed
 *		at watermark (see the header comment).
 */
TimestampTz
streamproc_window_cutoff(const WindowSpec *spec, TimestampTz watermark)
{
	TimestampTz bound = streamproc_window_close_bound(spec, watermark);

	if (TIMESTAMP_NOT_FINITE(bound) || spec->kind == WINDOW_COUNT)
		return spec->kind == WINDOW_COUNT ? WATERMARK_NONE : bound;
	switch (spec->kind)
	{
		case WINDOW_TUMBLE:
		case WINDOW_HOP:
			return streamproc_window_bin(bound, spec->slide, spec->origin);
		default:
			return bound;
	}
}

/* ----------------------------------------------------------------
 * Combining group states by key (windows and, for the reader's
 * checkpoint fallback, any view's groups)
 * ----------------------------------------------------------------
 */

struct GroupTable
{
	HTAB *hash;
	ViewAggs *va;
	MemoryContext cxt;
};

typedef struct GroupEntry
{
	bytea *key;      /* the hash key: its bytes hash and compare */
	PackedAccum acc; /* the window's states, combined when emitted */
} GroupEntry;

static uint32
group_key_hash(const void *key, Size keysize)
{
	bytea *k = *(bytea *const *)key;

	return hash_bytes((const unsigned char *)VARDATA(k), VARSIZE(k) - VARHDRSZ);
}

static int
group_key_match(const void *key1, const void *key2, Size keysize)
{
	bytea *a = *(bytea *const *)key1;
	bytea *b = *(bytea *const *)key2;

	if (VARSIZE(a) != VARSIZE(b))
		return 1;
	return memcmp(VARDATA(a), VARDATA(b), VARSIZE(a) - VARHDRSZ);
}

GroupTable *
streamproc_group_table_create(ViewAggs *va, MemoryContext cxt)
{
	GroupTable *table = MemoryContextAlloc(cxt, sizeof(GroupTable));
	HASHCTL ctl;

	ctl.keysize = sizeof(bytea *);
	ctl.entrysize = sizeof(GroupEntry);
	ctl.hash = group_key_hash;
	ctl.match = group_key_match;
	ctl.hcxt = cxt;
	table->hash = hash_create("streamproc windows", 256, &ctl,
							  HASH_ELEM | HASH_FUNCTION | HASH_COMPARE | HASH_CONTEXT);
	table->va = va;
	table->cxt = cxt;
	return table;
}

/* Add a packed state (copied) to the group of key (copied). */
void
streamproc_group_table_add(GroupTable *table, const char *key, uint32 keylen,
						   const char *state, uint32 statelen)
{
	MemoryContext old = MemoryContextSwitchTo(table->cxt);
	bytea *k = palloc(keylen + VARHDRSZ);
	char *copy;
	GroupEntry *entry;
	bool found;

	SET_VARSIZE(k, keylen + VARHDRSZ);
	memcpy(VARDATA(k), key, keylen);
	entry = hash_search(table->hash, &k, HASH_ENTER, &found);
	if (found)
		pfree(k);
	else
		streamproc_packed_accum_init(&entry->acc, table->va, table->cxt);
	copy = palloc(Max(statelen, 1));
	memcpy(copy, state, statelen);
	streamproc_packed_accum_add(&entry->acc, copy, statelen);
	MemoryContextSwitchTo(old);
}

/*
 * streamproc_group_table_add_slice
 *		Add a hop slice's state to each window that contains the slice and
 *		ends in (after, upto].
 */
void
streamproc_group_table_add_slice(GroupTable *table, const WindowSpec *spec,
								 const char *key, uint32 keylen, const char *state,
								 uint32 statelen, TimestampTz after, TimestampTz upto)
{
	TimestampTz slice_start;
	TimestampTz slice_end;
	TimestampTz start;
	char *wkey = palloc(keylen);

	streamproc_window_key_decode(key, keylen, &slice_start, &slice_end);
	memcpy(wkey, key, keylen);
	for (start = slice_start - (spec->size - spec->slide); start <= slice_start;
		 start += spec->slide)
	{
		TimestampTz end = start + spec->size;

		if (end <= after || end > upto)
			continue;
		streamproc_window_key_prefix(wkey, start, end);
		streamproc_group_table_add(table, wkey, keylen, state, statelen);
	}
	pfree(wkey);
}

void
streamproc_group_table_emit(GroupTable *table, GroupEmitCallback cb, void *arg)
{
	HASH_SEQ_STATUS seq;
	GroupEntry *entry;
	StringInfoData buf;

	initStringInfo(&buf);
	hash_seq_init(&seq, table->hash);
	while ((entry = hash_seq_search(&seq)) != NULL)
	{
		resetStringInfo(&buf);
		if (streamproc_packed_accum_result(&entry->acc, &buf))
			cb(VARDATA(entry->key), VARSIZE(entry->key) - VARHDRSZ, buf.data, buf.len, arg);
	}
	pfree(buf.data);
}

long
streamproc_group_table_count(GroupTable *table)
{
	return hash_get_num_entries(table->hash);
}
