/*-------------------------------------------------------------------------
 *
 * statestore.c
 *	  Checkpointed state of continuous views: runs of groups per bucket,
 *	  in streamproc.state_runs.
 *
 * docs/architecture.md compares this design with RocksDB's, Hummock's and
 * PipelineDB's.  A slot of a view (one ingest worker's share of its state)
 * is checkpointed in buckets, the partitions of its group map (the top
 * byte of the key's hash).  A *run* is a byte string of groups of one
 * bucket:
 *
 *		per group:
 *			varint  key length
 *			bytes   key (groupkey.c)
 *			varint  0: a tombstone (the group left the slot), else the
 *					packed state's length + 1
 *			bytes   packed state (packed.c)
 *
 * A table row holds one run: (view, slot, bucket, run number, entries,
 * data).  Reading a bucket's runs in run order, a later entry for a key
 * replaces an earlier one.
 *
 * Each checkpoint writes, per bucket with changed groups, one run of them
 * (delta): its cost follows the change, not the state.  A bucket whose
 * runs hold more than twice its live bytes (or too many runs) is
 * compacted: rewritten as one run from the slot's groups in shared memory
 * (the worker has all of them), and its older runs deleted, in the same
 * transaction.  Compaction is budgeted: a checkpoint rewrites about twice
 * the bytes of deltas it wrote plus an eighth of the slot's garbage (with
 * a floor), largest garbage first, so the table stays below about twice
 * the live bytes under any update pattern, without ever rewriting the
 * whole state in one checkpoint.
 *
 * The run format's encoder and decoder are pure C (fuzzed); the rest runs
 * in a worker's checkpoint transaction or in a reader, through SPI.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "statestore.h"
#include "varint.h"

#ifndef STREAMPROC_FRONTEND
#include "catalog/pg_authid.h"
#include "catalog/pg_type.h"
#include "executor/spi.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/hsearch.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"
#include "funcapi.h"
#include "miscadmin.h"
#include "utils/tuplestore.h"

#include "groupkey.h"
#include "windows.h"
#endif

size_t
run_entry_size(uint32 keylen, int64 statelen)
{
	size_t size = varint_size(keylen) + keylen;

	if (statelen < 0)
		return size + 1;
	return size + varint_size((uint64_t)statelen + 1) + (size_t)statelen;
}

void
run_append(StringInfo run, const char *key, uint32 keylen, const char *state,
		   uint32 statelen)
{
	char *p;

	enlargeStringInfo(run, (int)run_entry_size(keylen, state ? (int64)statelen : -1));
	p = run->data + run->len;
	p += varint_put(p, keylen);
	memcpy(p, key, keylen);
	p += keylen;
	if (state == NULL)
		*p++ = 0;
	else
	{
		p += varint_put(p, (uint64_t)statelen + 1);
		memcpy(p, state, statelen);
		p += statelen;
	}
	run->len = (int)(p - run->data);
	run->data[run->len] = '\0';
}

bool
run_next(const char *data, size_t len, size_t *pos, const char **key,
		 uint32 *keylen, const char **state, int64 *statelen, bool *corrupt)
{
	const char *p = data + *pos;
	const char *end = data + len;
	uint64_t kl;
	uint64_t sl;

	*corrupt = false;
	if (p >= end)
		return false;
	if (!varint_get(&p, end, &kl) || kl > (uint64_t)(end - p) || kl > PG_UINT32_MAX)
		goto corrupt;
	*key = p;
	*keylen = (uint32)kl;
	p += kl;
	if (!varint_get(&p, end, &sl))
		goto corrupt;
	if (sl == 0)
	{
		*state = NULL;
		*statelen = -1;
	}
	else
	{
		sl--;
		if (sl > (uint64_t)(end - p) || sl > PG_UINT32_MAX)
			goto corrupt;
		*state = p;
		*statelen = (int64)sl;
		p += sl;
	}
	*pos = (size_t)(p - data);
	return true;

corrupt:
	*corrupt = true;
	return false;
}

#ifndef STREAMPROC_FRONTEND

/* A bucket is compacted when its runs exceed this times its live bytes... */
#define COMPACT_RATIO 2
/* ... plus this, so that small buckets are left alone ... */
#define COMPACT_SLACK 16384
/* ... or when it has this many runs. */
#define COMPACT_MAX_RUNS 32
/* Least budget of a checkpoint's compaction, in live bytes rewritten. */
#define COMPACT_MIN_BUDGET (256 * 1024)
/* An INSERT carries at most about this many bytes of runs. */
#define INSERT_MAX_BYTES (64 * 1024 * 1024)

static void
corrupt_run(Oid view, int slot, int bucket)
{
	ereport(ERROR,
			(errcode(ERRCODE_DATA_CORRUPTED),
			 errmsg("corrupt checkpoint run of continuous view %u, slot %d, bucket %d",
					view, slot, bucket)));
}

SlotStore *
statestore_create(Oid view, int slot, MemoryContext cxt)
{
	SlotStore *ss = MemoryContextAllocZero(cxt, sizeof(SlotStore));

	ss->view = view;
	ss->slot = slot;
	ss->next_run = 1;
	return ss;
}

void
statestore_load(SlotStore *ss, StoreEntryCallback cb, void *arg)
{
	Datum args[2];
	Portal portal;
	SPIPlanPtr plan;

	args[0] = ObjectIdGetDatum(ss->view);
	args[1] = Int32GetDatum(ss->slot);
	plan = SPI_prepare("SELECT bucket, run, data FROM streamproc.state_runs"
					   " WHERE view = $1 AND slot = $2 ORDER BY bucket, run",
					   2, (Oid[]){OIDOID, INT4OID});
	if (plan == NULL)
		elog(ERROR, "could not prepare a read of streamproc.state_runs: %s",
			 SPI_result_code_string(SPI_result));
	portal = SPI_cursor_open(NULL, plan, args, NULL, true);
	for (;;)
	{
		uint64 i;

		SPI_cursor_fetch(portal, true, 64);
		if (SPI_processed == 0)
			break;
		for (i = 0; i < SPI_processed; i++)
		{
			HeapTuple tup = SPI_tuptable->vals[i];
			bool isnull;
			int bucket = DatumGetInt32(SPI_getbinval(tup, SPI_tuptable->tupdesc, 1, &isnull));
			int64 run = DatumGetInt64(SPI_getbinval(tup, SPI_tuptable->tupdesc, 2, &isnull));
			bytea *data = DatumGetByteaPP(SPI_getbinval(tup, SPI_tuptable->tupdesc, 3, &isnull));
			const char *p = VARDATA_ANY(data);
			size_t len = VARSIZE_ANY_EXHDR(data);
			size_t pos = 0;
			const char *key;
			uint32 keylen;
			const char *state;
			int64 statelen;
			bool corrupt;

			if (bucket < 0 || bucket >= STATESTORE_BUCKETS)
				corrupt_run(ss->view, ss->slot, bucket);
			while (run_next(p, len, &pos, &key, &keylen, &state, &statelen, &corrupt))
				cb(key, keylen, state, statelen, arg);
			if (corrupt)
				corrupt_run(ss->view, ss->slot, bucket);
			ss->buckets[bucket].stored += len;
			ss->buckets[bucket].runs++;
			if (run >= ss->next_run)
				ss->next_run = run + 1;
			if ((Pointer)data != DatumGetPointer(SPI_getbinval(tup, SPI_tuptable->tupdesc, 3, &isnull)))
				pfree(data);
		}
		SPI_freetuptable(SPI_tuptable);
	}
	SPI_cursor_close(portal);
	SPI_freeplan(plan);
}

void
statestore_put(SlotStore *ss, uint32 hash, const char *key, uint32 keylen,
			   const char *state, uint32 statelen)
{
	int bucket = GROUPMAP_PARTITION(hash);
	StringInfo run = &ss->delta[bucket];

	if (run->data == NULL)
	{
		MemoryContext old = MemoryContextSwitchTo(GetMemoryChunkContext(ss));

		initStringInfo(run);
		MemoryContextSwitchTo(old);
	}
	run_append(run, key, keylen, state, statelen);
	ss->delta_entries[bucket]++;
}

bool
statestore_pending(SlotStore *ss)
{
	int b;

	for (b = 0; b < STATESTORE_BUCKETS; b++)
		if (ss->delta_entries[b] > 0)
			return true;
	return false;
}

/* Forget the checkpoint being built (after it failed). */
void
statestore_discard(SlotStore *ss)
{
	int b;

	for (b = 0; b < STATESTORE_BUCKETS; b++)
	{
		if (ss->delta[b].data != NULL)
		{
			pfree(ss->delta[b].data);
			ss->delta[b].data = NULL;
		}
		ss->delta_entries[b] = 0;
	}
}

/* Runs to insert, gathered for one INSERT. */
typedef struct RunBatch
{
	SlotStore *ss;
	int n;
	int cap;
	Datum *buckets;
	Datum *entries;
	Datum *datas;
	int64 bytes;
} RunBatch;

static void
flush_runs(RunBatch *rb)
{
	Datum args[6];
	int ret;
	int i;

	if (rb->n == 0)
		return;
	args[0] = ObjectIdGetDatum(rb->ss->view);
	args[1] = Int32GetDatum(rb->ss->slot);
	args[2] = Int64GetDatum(rb->ss->next_run);
	args[3] = PointerGetDatum(construct_array(rb->buckets, rb->n, INT4OID, sizeof(int32), true, TYPALIGN_INT));
	args[4] = PointerGetDatum(construct_array(rb->entries, rb->n, INT4OID, sizeof(int32), true, TYPALIGN_INT));
	args[5] = PointerGetDatum(construct_array(rb->datas, rb->n, BYTEAOID, -1, false, TYPALIGN_INT));
	ret = SPI_execute_with_args("INSERT INTO streamproc.state_runs (view, slot, bucket, run, entries, data)"
								" SELECT $1, $2, u.b, $3, u.e, u.d"
								" FROM ROWS FROM (pg_catalog.unnest($4::pg_catalog.int4[]),"
								" pg_catalog.unnest($5::pg_catalog.int4[]),"
								" pg_catalog.unnest($6::pg_catalog.bytea[])) AS u(b, e, d)",
								6, (Oid[]){OIDOID, INT4OID, INT8OID, INT4ARRAYOID, INT4ARRAYOID, BYTEAARRAYOID},
								args, NULL, false, 0);
	if (ret != SPI_OK_INSERT)
		elog(ERROR, "could not write streamproc.state_runs: %s", SPI_result_code_string(ret));
	for (i = 0; i < rb->n; i++)
		pfree(DatumGetPointer(rb->datas[i]));
	rb->n = 0;
	rb->bytes = 0;
}

static void
add_run(RunBatch *rb, int bucket, int entries, StringInfo run)
{
	bytea *b;

	if (rb->n == rb->cap)
	{
		rb->cap = rb->cap ? rb->cap * 2 : 64;
		rb->buckets = rb->buckets ? repalloc(rb->buckets, sizeof(Datum) * rb->cap) : palloc(sizeof(Datum) * rb->cap);
		rb->entries = rb->entries ? repalloc(rb->entries, sizeof(Datum) * rb->cap) : palloc(sizeof(Datum) * rb->cap);
		rb->datas = rb->datas ? repalloc(rb->datas, sizeof(Datum) * rb->cap) : palloc(sizeof(Datum) * rb->cap);
	}
	b = palloc(run->len + VARHDRSZ);
	SET_VARSIZE(b, run->len + VARHDRSZ);
	memcpy(VARDATA(b), run->data, run->len);
	rb->buckets[rb->n] = Int32GetDatum(bucket);
	rb->entries[rb->n] = Int32GetDatum(entries);
	rb->datas[rb->n] = PointerGetDatum(b);
	rb->n++;
	rb->bytes += run->len;
	if (rb->bytes >= INSERT_MAX_BYTES)
		flush_runs(rb);
}

/* A group of the slot visited for a compaction run. */
typedef struct CompactVisit
{
	StringInfo run;
	int entries;
} CompactVisit;

static void
compact_visit(uint32 hash, const char *key, uint32 keylen, const char *state,
			  uint32 statelen, void *arg)
{
	CompactVisit *cv = arg;

	run_append(cv->run, key, keylen, state, statelen);
	cv->entries++;
}

/* Order buckets by garbage, largest first. */
typedef struct BucketGarbage
{
	int bucket;
	int64 garbage;
} BucketGarbage;

static int
garbage_cmp(const void *a, const void *b)
{
	int64 x = ((const BucketGarbage *)a)->garbage;
	int64 y = ((const BucketGarbage *)b)->garbage;

	return x > y ? -1 : (x < y ? 1 : 0);
}

/*
 * statestore_write
 *		In the checkpoint: insert the runs put since the last checkpoint,
 *		and compact the buckets with the most garbage within the budget.
 *		The bookkeeping is updated as if the transaction commits; after a
 *		failure the caller reloads nothing but must call
 *		statestore_discard() and put everything again (the worker keeps its
 *		dirty list).
 */
void
statestore_write(SlotStore *ss, GroupMap *map)
{
	RunBatch rb;
	BucketGarbage cand[STATESTORE_BUCKETS];
	bool compact[STATESTORE_BUCKETS];
	int ncand = 0;
	int64 delta_bytes = 0;
	int64 garbage = 0;
	int64 budget;
	int32 compacted[STATESTORE_BUCKETS];
	int ncompacted = 0;
	int b;
	int i;

	memset(&rb, 0, sizeof(rb));
	rb.ss = ss;
	memset(compact, 0, sizeof(compact));

	for (b = 0; b < STATESTORE_BUCKETS; b++)
	{
		StoreBucket *bk = &ss->buckets[b];
		int64 after = bk->stored + (ss->delta_entries[b] > 0 ? ss->delta[b].len : 0);

		if (ss->delta_entries[b] > 0)
			delta_bytes += ss->delta[b].len;
		if (after > bk->live)
			garbage += after - bk->live;
		if ((after > COMPACT_RATIO * bk->live + COMPACT_SLACK) ||
			bk->runs + (ss->delta_entries[b] > 0 ? 1 : 0) > COMPACT_MAX_RUNS)
		{
			cand[ncand].bucket = b;
			cand[ncand].garbage = after - bk->live;
			ncand++;
		}
	}

	/*
	 * The buckets to compact: most garbage first, within the budget.  The
	 * deltas make as much garbage as they write; a bucket compacted before
	 * its garbage reaches its live bytes (too many runs) reclaims less
	 * than it rewrites, hence twice the deltas; an eighth of the garbage on
	 * top drains a backlog.  What a checkpoint overspent (one bucket is
	 * always compacted whole) is owed by the next.
	 */
	budget = Max(2 * delta_bytes + garbage / 8 - ss->written, COMPACT_MIN_BUDGET);
	qsort(cand, ncand, sizeof(BucketGarbage), garbage_cmp);
	for (i = 0; i < ncand && budget > 0; i++)
	{
		compact[cand[i].bucket] = true;
		budget -= ss->buckets[cand[i].bucket].live;
	}
	ss->written = budget > 0 ? 0 : -budget; /* owed */

	for (b = 0; b < STATESTORE_BUCKETS; b++)
	{
		StoreBucket *bk = &ss->buckets[b];

		if (compact[b])
		{
			StringInfoData run;
			CompactVisit cv;

			initStringInfo(&run);
			cv.run = &run;
			cv.entries = 0;
			groupmap_lock_partition(map, b);
			groupmap_visit_slot(map, b, ss->slot, compact_visit, &cv);
			groupmap_unlock_partition(map, b);
			bk->live = run.len;

			/*
			 * The bucket's delta goes after the groups, in the same run:
			 * its tombstones win over groups still in memory that leave it
			 * once this transaction commits (windows it closes).
			 */
			if (ss->delta_entries[b] > 0)
			{
				appendBinaryStringInfo(&run, ss->delta[b].data, ss->delta[b].len);
				cv.entries += ss->delta_entries[b];
			}
			if (cv.entries > 0)
				add_run(&rb, b, cv.entries, &run);
			bk->stored = cv.entries > 0 ? run.len : 0;
			bk->runs = cv.entries > 0 ? 1 : 0;
			compacted[ncompacted++] = b;
			pfree(run.data);
		}
		else if (ss->delta_entries[b] > 0)
		{
			add_run(&rb, b, ss->delta_entries[b], &ss->delta[b]);
			bk->stored += ss->delta[b].len;
			bk->runs++;
		}
	}
	flush_runs(&rb);

	if (ncompacted > 0)
	{
		Datum args[4];
		Datum *bs = palloc(sizeof(Datum) * ncompacted);
		int ret;

		for (i = 0; i < ncompacted; i++)
			bs[i] = Int32GetDatum(compacted[i]);
		args[0] = ObjectIdGetDatum(ss->view);
		args[1] = Int32GetDatum(ss->slot);
		args[2] = PointerGetDatum(construct_array(bs, ncompacted, INT4OID, sizeof(int32), true, TYPALIGN_INT));
		args[3] = Int64GetDatum(ss->next_run);
		ret = SPI_execute_with_args("DELETE FROM streamproc.state_runs"
									" WHERE view = $1 AND slot = $2 AND bucket = ANY ($3) AND run < $4",
									4, (Oid[]){OIDOID, INT4OID, INT4ARRAYOID, INT8OID},
									args, NULL, false, 0);
		if (ret != SPI_OK_DELETE)
			elog(ERROR, "could not compact streamproc.state_runs: %s", SPI_result_code_string(ret));
	}

	ss->next_run++;
	statestore_discard(ss);
}

void
statestore_sizes(SlotStore *ss, int64 *stored, int64 *live)
{
	int b;

	*stored = 0;
	*live = 0;
	for (b = 0; b < STATESTORE_BUCKETS; b++)
	{
		*stored += ss->buckets[b].stored;
		*live += ss->buckets[b].live;
	}
}

/* The latest state of each key of one (slot, bucket), while reading. */
typedef struct ReadEntry
{
	const char *key; /* hash key: points into the run (first field) */
	uint32 keylen;
	const char *state;
	int64 statelen;
} ReadEntry;

typedef struct ReadKey
{
	const char *key;
	uint32 keylen;
} ReadKey;

static uint32
read_key_hash(const void *key, Size keysize)
{
	const ReadKey *k = key;

	return groupmap_hash(k->key, k->keylen);
}

static int
read_key_match(const void *a, const void *b, Size keysize)
{
	const ReadKey *x = a;
	const ReadKey *y = b;

	if (x->keylen != y->keylen)
		return 1;
	return memcmp(x->key, y->key, x->keylen);
}

static void
emit_bucket(HTAB *latest, int slot, StoreReadCallback cb, void *arg)
{
	HASH_SEQ_STATUS seq;
	ReadEntry *e;

	hash_seq_init(&seq, latest);
	while ((e = hash_seq_search(&seq)) != NULL)
		if (e->statelen >= 0)
			cb(slot, e->key, e->keylen, e->state, (uint32)e->statelen, arg);
}

/*
 * statestore_read
 *		For readers while shared memory is not complete, and on a standby:
 *		the checkpointed groups of every slot, of one bucket or of all.
 *		Each (slot, bucket) is resolved in run order before cb sees it.
 */
void
statestore_read(Oid view, int bucket, StoreReadCallback cb, void *arg)
{
	statestore_read_slots(view, bucket, 0, cb, arg);
}

void
streamproc_internal_read_begin(InternalRead *ir)
{
	GetUserIdAndSecContext(&ir->save_userid, &ir->save_sec);
	SetUserIdAndSecContext(BOOTSTRAP_SUPERUSERID,
						   ir->save_sec | SECURITY_LOCAL_USERID_CHANGE | SECURITY_RESTRICTED_OPERATION);
}

/* After an error the (sub)transaction's abort restores the user instead. */
void
streamproc_internal_read_end(InternalRead *ir)
{
	SetUserIdAndSecContext(ir->save_userid, ir->save_sec);
}

/*
 * statestore_read_slots
 *		statestore_read() of the slots from min_slot on only: the slots of
 *		workers that no longer exist, for the worker that folds them into
 *		its own (catalog.c).
 */
void
statestore_read_slots(Oid view, int bucket, int min_slot, StoreReadCallback cb, void *arg)
{
	MemoryContext cxt = AllocSetContextCreate(CurrentMemoryContext, "streamproc state read",
											  ALLOCSET_DEFAULT_SIZES);
	MemoryContext old = MemoryContextSwitchTo(cxt);
	HASHCTL ctl;
	HTAB *latest = NULL;
	int cur_slot = -1;
	int cur_bucket = -1;
	Datum args[3];
	InternalRead ir;
	uint64 i;
	int ret;

	ctl.keysize = sizeof(ReadKey);
	ctl.entrysize = sizeof(ReadEntry);
	ctl.hash = read_key_hash;
	ctl.match = read_key_match;
	ctl.hcxt = cxt;

	args[0] = ObjectIdGetDatum(view);
	args[1] = Int32GetDatum(bucket);
	args[2] = Int32GetDatum(min_slot);
	streamproc_internal_read_begin(&ir);
	ret = SPI_execute_with_args("SELECT slot, bucket, data FROM streamproc.state_runs"
								" WHERE view = $1 AND ($2 < 0 OR bucket = $2) AND slot >= $3"
								" ORDER BY slot, bucket, run",
								3, (Oid[]){OIDOID, INT4OID, INT4OID}, args, NULL, true, 0);
	streamproc_internal_read_end(&ir);
	if (ret != SPI_OK_SELECT)
		elog(ERROR, "could not read streamproc.state_runs: %s", SPI_result_code_string(ret));
	for (i = 0; i < SPI_processed; i++)
	{
		HeapTuple tup = SPI_tuptable->vals[i];
		bool isnull;
		int slot = DatumGetInt32(SPI_getbinval(tup, SPI_tuptable->tupdesc, 1, &isnull));
		int b = DatumGetInt32(SPI_getbinval(tup, SPI_tuptable->tupdesc, 2, &isnull));
		bytea *data = DatumGetByteaPP(SPI_getbinval(tup, SPI_tuptable->tupdesc, 3, &isnull));
		const char *p = VARDATA_ANY(data);
		size_t len = VARSIZE_ANY_EXHDR(data);
		size_t pos = 0;
		ReadKey k;
		const char *state;
		int64 statelen;
		bool corrupt;

		if (slot != cur_slot || b != cur_bucket)
		{
			if (latest != NULL)
			{
				emit_bucket(latest, cur_slot, cb, arg);
				hash_destroy(latest);
			}
			latest = hash_create("streamproc state read", 1024, &ctl,
								 HASH_ELEM | HASH_FUNCTION | HASH_COMPARE | HASH_CONTEXT);
			cur_slot = slot;
			cur_bucket = b;
		}
		while (run_next(p, len, &pos, &k.key, &k.keylen, &state, &statelen, &corrupt))
		{
			ReadEntry *e = hash_search(latest, &k, HASH_ENTER, NULL);

			e->state = state;
			e->statelen = statelen;
		}
		if (corrupt)
			corrupt_run(view, slot, b);
	}
	if (latest != NULL)
		emit_bucket(latest, cur_slot, cb, arg);
	MemoryContextSwitchTo(old);
	MemoryContextDelete(cxt);
}

/*
 * streamproc._closed_windows(view regclass)
 *		The closed windows of a windowed view as streamproc.window_runs
 *		holds them: one row per (slot, window and group), with the
 *		watermark that closed it, its start and end (count windows: the
 *		window id as a start, and the time it closed as its end).  For tests
 *		and inspection; revoked from PUBLIC.
 */
PG_FUNCTION_INFO_V1(streamproc_closed_windows);

Datum
streamproc_closed_windows(PG_FUNCTION_ARGS)
{
	ReturnSetInfo *rsinfo = (ReturnSetInfo *)fcinfo->resultinfo;
	Datum arg = PG_GETARG_DATUM(0);
	uint64 i;
	int ret;

	InitMaterializedSRF(fcinfo, 0);
	SPI_connect();
	ret = SPI_execute_with_args("SELECT r.slot, r.closed, r.data, v.window_kind"
								" FROM streamproc.window_runs r JOIN streamproc.views v ON v.view = r.view"
								" WHERE r.view = $1",
								1, (Oid[]){OIDOID}, &arg, NULL, true, 0);
	if (ret != SPI_OK_SELECT)
		elog(ERROR, "could not read streamproc.window_runs: %s", SPI_result_code_string(ret));
	for (i = 0; i < SPI_processed; i++)
	{
		HeapTuple tup = SPI_tuptable->vals[i];
		bool isnull;
		int slot = DatumGetInt32(SPI_getbinval(tup, SPI_tuptable->tupdesc, 1, &isnull));
		TimestampTz closed = DatumGetTimestampTz(SPI_getbinval(tup, SPI_tuptable->tupdesc, 2, &isnull));
		bytea *data = DatumGetByteaPP(SPI_getbinval(tup, SPI_tuptable->tupdesc, 3, &isnull));
		char kind = DatumGetChar(SPI_getbinval(tup, SPI_tuptable->tupdesc, 4, &isnull));
		size_t pos = 0;
		const char *key;
		uint32 keylen;
		const char *state;
		int64 statelen;
		bool corrupt;

		while (run_next(VARDATA_ANY(data), VARSIZE_ANY_EXHDR(data), &pos, &key, &keylen,
						&state, &statelen, &corrupt))
		{
			Datum values[5];
			bool nulls[5] = {false, false, false, false, false};
			TimestampTz start;
			TimestampTz end;
			bytea *k;

			streamproc_window_key_decode(key, keylen, &start, &end);
			k = palloc(keylen + VARHDRSZ);
			SET_VARSIZE(k, keylen + VARHDRSZ);
			memcpy(VARDATA(k), key, keylen);
			values[0] = Int32GetDatum(slot);
			values[1] = TimestampTzGetDatum(closed);
			values[2] = TimestampTzGetDatum(start);
			values[3] = TimestampTzGetDatum(kind == 'c' ? closed : end);
			values[4] = PointerGetDatum(k);
			tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, values, nulls);
		}
		if (corrupt)
			ereport(ERROR,
					(errcode(ERRCODE_DATA_CORRUPTED),
					 errmsg("corrupt closed windows of continuous view \"%s\" in slot %d",
							get_rel_name(DatumGetObjectId(arg)), slot)));
	}
	SPI_finish();
	return (Datum)0;
}

#endif /* STREAMPROC_FRONTEND */
