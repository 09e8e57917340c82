/*-------------------------------------------------------------------------
 *
 * worker.c
 *	  Ingest worker: micro-batches from stream logs into continuous views,
 *	  checkpoints, recovery.
 *
 * Each database with streamproc runs streamproc.workers ingest workers
 * (launcher.c starts them).  Worker k owns the streams whose oid modulo
 * streamproc.workers is k (it alone reads their logs), the partitions of
 * Kafka sources that kafka.c assigns it, and slot k of every view's shared
 * state; it is the only writer of that slot.  Several workers feed a view
 * when its stream has a Kafka source with workers > 1: each merges into
 * its own slot, and readers combine the slots.  Every worker also loads
 * its slot of the views it does not feed (what it wrote before a source
 * was paused or resized), since readers need every slot.
 *
 * Micro-batch (one transaction per owned stream, REPEATABLE READ): take
 * the transaction's snapshot as a pg_snapshot S; the batch is the stream's
 * log rows whose "$xid" is visible in S and not in the previous batch's
 * snapshot P (PgQ's idea: whatever the commit order, a committed row is in
 * exactly one batch; aborted rows are invisible to the scan).  For each
 * aggregating view of the stream, run its batch query (catalog
 * streamproc.views, written by view.c) as the view's owner; it yields one
 * row per group with the group key and one serialized partial state per
 * aggregate, computed by the PostgreSQL executor.  Combine each with the
 * group's current state of our slot (aggregates.c) and store it in shared
 * memory (state.c).  Readers see it at once.
 *
 * Kafka batch (kafka.c fetches the messages a consumer holds): parse them
 * in C into rows of the stream (parse.c; bad messages are recorded for
 * streamproc.errors), then run each aggregating view's source query, the
 * same query over streamproc._source_batch(), which returns the rows held
 * in memory: no log table is written or read.  The partitions' positions
 * advance in memory; the checkpoint writes them to streamproc.kafka_offsets
 * with the state.  Rows for append-only views are kept until the
 * checkpoint, which appends them.
 *
 * Errors: the batch query and the combining run in a subtransaction.  If it
 * fails, the batch is run again one event at a time, each in its own
 * subtransaction; the events that fail are recorded for streamproc.errors
 * and the others are merged.
 *
 * Checkpoint (every streamproc.checkpoint_interval, at sync(), and before
 * reloading the catalog), one transaction: upsert the changed groups of our
 * slot into streamproc.view_state; append the rows of append-only views
 * for every log row visible in the last batch's snapshot; delete those log
 * rows; write the Kafka partitions' positions; insert the recorded errors.
 * So the state, the consumed input and the outputs commit together:
 * exactly once.
 *
 * Recovery: at start a worker clears its slot and reloads it from
 * streamproc.view_state, then processes every log row still present and
 * consumes its Kafka partitions from the checkpointed offsets.  A
 * worker that exits with an error is restarted by the launcher and recovers
 * the same way; a crash reinitializes shared memory.
 *
 * Windowed views (window_worker.c): the batch queries take the lateness
 * cutoff as their last parameter, the late events are read apart and kept
 * until the checkpoint, each batch publishes the inputs' watermarks, and
 * the checkpoint closes the windows the watermark passed.  Session and
 * count-window views merge their batch's rows with the slot's open
 * windows instead of combining group by group.
 *
 * Memory budget: before each batch the worker compares the state area's
 * size with streamproc.state_memory; over it, ingestion pauses (inserts
 * still land in the logs), the slot says so for sync() and stat_views, and
 * the log says it once.
 *
 * Locking: see state.c (registry lock, dshash partition locks) and
 * launcher.c (worker slots).  Nothing here holds a lock across a query.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#ifdef __GLIBC__
#include <malloc.h>
#endif

#include "access/relation.h"
#include "access/xact.h"
#include "commands/vacuum.h"
#include "catalog/namespace.h"
#include "catalog/pg_type.h"
#include "common/hashfn.h"
#include "commands/extension.h"
#include "executor/spi.h"
#include "fmgr.h"
#include "funcapi.h"
#include "lib/stringinfo.h"
#include "miscadmin.h"
#include "nodes/makefuncs.h"
#include "pgstat.h"
#include "postmaster/bgworker.h"
#include "postmaster/interrupt.h"
#include "storage/ipc.h"
#include "storage/latch.h"
#include "storage/lmgr.h"
#include "storage/pmsignal.h"
#include "tcop/tcopprot.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/datum.h"
#include "utils/guc.h"
#include "utils/hsearch.h"
#include "utils/lsyscache.h"
#include "utils/float.h"
#include "utils/fmgroids.h"
#include "utils/memutils.h"
#include "mb/pg_wchar.h"
#include "utils/numeric.h"
#include "utils/snapmgr.h"
#include "utils/timestamp.h"

#include "aggregates.h"
#include "errors.h"
#include "kafka.h"
#include "launcher.h"
#include "state.h"
#include "stream.h"
#include "streamproc.h"
#include "view.h"
#include "windows.h"
#include "worker.h"
#include "worker_int.h"

/* Longest event text kept in streamproc.errors. */
#define ERROR_EVENT_MAX 2048

/* An event that failed, waiting for the checkpoint. */
typedef struct FailedEvent
{
	char *source;
	Oid viewid;
	char *position;
	char *event;
	char *sqlstate;
	char *message;
	char *detail;
	char *topic; /* Kafka messages: topic, partition, offset, key */
	int32 partition;
	int64 offset;
	char *key;
} FailedEvent;

static WorkerSlot *my_slot = NULL;
int worker_index;
static List *my_streams = NIL;
static List *failed_events = NIL;
static MemoryContext catalog_cxt = NULL; /* streams, views, plans */
MemoryContext worker_batch_cxt = NULL;   /* reset after every batch */
static uint64 catalog_generation_seen = 0;
bool worker_checkpoint_needed = false; /* batches merged since the last one */
static bool batch_needed = true;       /* start, catalog reload: look at the logs */
static TimestampTz last_batch = 0;
MemoryContext worker_dirty_key_cxt = NULL; /* where worker_dirty_keycopy allocates */
static TimestampTz last_checkpoint = 0;
static double last_checkpoint_ms = 0; /* how long the last one took */
static Oid view_state_relid = InvalidOid;
int64 worker_state_rows_written = 0; /* view_state rows since its last vacuum */

/* Fewest rewritten view_state rows that call for a vacuum of it. */
#define STATE_VACUUM_MIN_ROWS 10000
static List *my_sources = NIL;                 /* KafkaSource * */
static List *held_views = NIL;                 /* WView * of streams we do not feed */
rd_kafka_message_t **worker_kafka_msgs = NULL; /* streamproc.batch_size entries */
static int kafka_msgs_size = 0;
bool worker_checkpoint_soon = false; /* pending Kafka rows for append views pile up */


static void worker_load_catalog(void);
static bool worker_has_extension(void);
static int64 worker_batch(WStream *stream);
static void worker_checkpoint(void);
static void trim_log(WStream *stream);
static void vacuum_relation(Oid relid);
static int64 my_groups(void);
static void worker_exit(WorkerExit reason) pg_attribute_noreturn();
static void publish_view_stats(WStream *stream);
static int checkpoint_spacing(void);
static int worker_source_batch(WStream *stream, KafkaSource *src, bool *more);

/* ----------------------------------------------------------------
 * Packed states: the value of one slot of one group.
 *
 * bytea: int32 count, then per aggregate int32 length (-1: no state)
 * and the serialized state's bytes.
 * ----------------------------------------------------------------
 */
static bytea *
pack_states(int n, bytea **states)
{
	StringInfoData buf;
	int32 i32;
	int i;
	bytea *result;

	initStringInfo(&buf);
	appendStringInfoSpaces(&buf, VARHDRSZ);
	i32 = n;
	appendBinaryStringInfo(&buf, (char *)&i32, sizeof(int32));
	for (i = 0; i < n; i++)
	{
		i32 = states[i] ? (int32)VARSIZE_ANY_EXHDR(states[i]) : -1;
		appendBinaryStringInfo(&buf, (char *)&i32, sizeof(int32));
		if (states[i])
			appendBinaryStringInfo(&buf, VARDATA_ANY(states[i]), i32);
	}
	result = (bytea *)buf.data;
	SET_VARSIZE(result, buf.len);
	return result;
}

/*
 * streamproc_unpack_states
 *		Split a packed value into n palloc'd states (NULL where none); a NULL
 *		packed value gives n NULLs.  Exported for reader.c.
 */
bytea **
streamproc_unpack_states(bytea *packed, int n)
{
	bytea **states = palloc0(sizeof(bytea *) * Max(n, 1));
	const char *p;
	const char *end;
	int32 count;
	int i;

	if (packed == NULL)
		return states;
	p = VARDATA_ANY(packed);
	end = p + VARSIZE_ANY_EXHDR(packed);
	if (end - p < (long)sizeof(int32))
		elog(ERROR, "corrupt streamproc state");
	memcpy(&count, p, sizeof(int32));
	p += sizeof(int32);
	if (count != n)
		elog(ERROR, "streamproc state has %d aggregates, expected %d", count, n);
	for (i = 0; i < n; i++)
	{
		int32 len;

		if (end - p < (long)sizeof(int32))
			elog(ERROR, "corrupt streamproc state");
		memcpy(&len, p, sizeof(int32));
		p += sizeof(int32);
		if (len < 0)
			continue;
		if (end - p < len)
			elog(ERROR, "corrupt streamproc state");
		states[i] = palloc(len + VARHDRSZ);
		SET_VARSIZE(states[i], len + VARHDRSZ);
		memcpy(VARDATA(states[i]), p, len);
		p += len;
	}
	return states;
}

/*
 * streamproc_combine_packed
 *		Combine two packed values of a view, aggregate by aggregate.  Either
 *		may be NULL.  Result in CurrentMemoryContext.
 */
bytea *
streamproc_combine_packed(StreamprocAggInfo **aggs, int nagg, bytea *a, bytea *b)
{
	bytea **sa;
	bytea **sb;
	int i;

	if (a == NULL)
		return b;
	if (b == NULL)
		return a;
	sa = streamproc_unpack_states(a, nagg);
	sb = streamproc_unpack_states(b, nagg);
	for (i = 0; i < nagg; i++)
		sa[i] = streamproc_agg_combine(aggs[i], sa[i], sb[i], CurrentMemoryContext);
	return pack_states(nagg, sa);
}

/*
 * Combining many packed states (a merged session, a count window, a hop
 * window from its slices): one accumulator per aggregate (aggregates.c), so
 * that each state is deserialized once and the result serialized once,
 * instead of both at every pair as streamproc_combine_packed() does.  A
 * single state is passed through untouched.
 */
void
streamproc_packed_accum_init(PackedAccum *pa, StreamprocAggInfo **aggs, int nagg,
							 MemoryContext cxt)
{
	memset(pa, 0, sizeof(PackedAccum));
	pa->aggs = aggs;
	pa->nagg = nagg;
	pa->cxt = cxt;
}

static void
packed_accum_add_states(PackedAccum *pa, bytea *packed)
{
	bytea **states = streamproc_unpack_states(packed, pa->nagg);
	int i;

	for (i = 0; i < pa->nagg; i++)
		streamproc_agg_accum_add(pa->accs[i], states[i]);
}

void
streamproc_packed_accum_add(PackedAccum *pa, bytea *packed)
{
	int i;

	if (packed == NULL)
		return;
	if (pa->count == 0)
	{
		pa->first = packed;
		pa->count = 1;
		return;
	}
	if (pa->count == 1)
	{
		pa->accs = MemoryContextAlloc(pa->cxt, sizeof(StreamprocAggAccum *) * Max(pa->nagg, 1));
		for (i = 0; i < pa->nagg; i++)
			pa->accs[i] = streamproc_agg_accum_create(pa->aggs[i], pa->cxt);
		packed_accum_add_states(pa, pa->first);
	}
	packed_accum_add_states(pa, packed);
	pa->count++;
}

/* The combined packed state (palloc'd), or NULL; frees the accumulators. */
bytea *
streamproc_packed_accum_result(PackedAccum *pa)
{
	bytea **states;
	bytea *result;
	int i;

	if (pa->count <= 1)
		return pa->first;
	states = palloc(sizeof(bytea *) * Max(pa->nagg, 1));
	for (i = 0; i < pa->nagg; i++)
	{
		states[i] = streamproc_agg_accum_serialize(pa->accs[i], CurrentMemoryContext);
		streamproc_agg_accum_free(pa->accs[i]);
	}
	result = pack_states(pa->nagg, states);
	pa->count = 0;
	pa->first = NULL;
	return result;
}

/*
 * streamproc_lookup_view_aggs
 *		Look up the aggregates of a view from its catalog row's aggregates
 *		(regprocedure[]), agg_collations (oid[]) and agg_argtypes
 *		(oidvector[]: the actual argument types, which resolve polymorphic
 *		aggregates); *nagg is set.  The infos live under
 *		CurrentMemoryContext.  Exported for reader.c.
 */
StreamprocAggInfo **
streamproc_lookup_view_aggs(ArrayType *aggregates, ArrayType *collations,
							ArrayType *argtypes, int *nagg)
{
	Datum *aggs;
	Datum *colls;
	Datum *types;
	int ncolls;
	int ntypes;
	StreamprocAggInfo **infos;
	int i;

	deconstruct_array(collations, OIDOID, sizeof(Oid), true, TYPALIGN_INT,
					  &colls, NULL, &ncolls);
	deconstruct_array(argtypes, OIDVECTOROID, -1, false, TYPALIGN_INT,
					  &types, NULL, &ntypes);
	deconstruct_array(aggregates, OIDOID, sizeof(Oid), true, TYPALIGN_INT,
					  &aggs, NULL, nagg);
	if (ncolls != *nagg || ntypes != *nagg)
		elog(ERROR, "streamproc.views row has %d aggregates, %d collations and %d argument type lists",
			 *nagg, ncolls, ntypes);
	infos = palloc0(sizeof(StreamprocAggInfo *) * Max(*nagg, 1));
	for (i = 0; i < *nagg; i++)
	{
		oidvector *args = (oidvector *)DatumGetPointer(types[i]);

		infos[i] = streamproc_agg_lookup(DatumGetObjectId(aggs[i]),
										 DatumGetObjectId(colls[i]),
										 args->dim1, args->values);
	}
	return infos;
}

/* ----------------------------------------------------------------
 * Group keys: per group column, a null byte, then (when not null) the
 * int32 length and bytes of the type's binary send output.
 *
 * Keys are compared by these bytes, so values that GROUP BY treats as
 * equal must serialize alike: numeric values are reduced to their
 * shortest scale (1.0 and 1.00 become 1, the form numeric hashing uses),
 * floats' -0 becomes 0 and every NaN the same NaN.  Other types whose
 * equal values can differ in binary form (nondeterministic collations)
 * form separate groups; docs/architecture.md says so.
 * ----------------------------------------------------------------
 */
static Datum
canonical_key_value(Oid type, Datum value)
{
	switch (type)
	{
		case NUMERICOID:
			return DirectFunctionCall3(numeric_in,
									   CStringGetDatum(numeric_normalize(DatumGetNumeric(value))),
									   ObjectIdGetDatum(InvalidOid), Int32GetDatum(-1));
		case FLOAT8OID:
		{
			float8 f = DatumGetFloat8(value);

			if (isnan(f))
				return Float8GetDatum(get_float8_nan());
			return Float8GetDatum(f == 0.0 ? 0.0 : f);
		}
		case FLOAT4OID:
		{
			float4 f = DatumGetFloat4(value);

			if (isnan(f))
				return Float4GetDatum(get_float4_nan());
			return Float4GetDatum(f == 0.0f ? 0.0f : f);
		}
		default:
			return value;
	}
}

void
worker_serialize_key(WView *view, HeapTuple tuple, TupleDesc desc, StringInfo buf)
{
	int i;

	resetStringInfo(buf);
	if (view->window.kind != 0)
	{
		/*
		 * Windowed: the window's start and end first (windows.c); the batch
		 * query yields the start (count windows: the event's number).
		 */
		bool isnull;
		TimestampTz start = DatumGetTimestampTz(SPI_getbinval(tuple, desc, 1, &isnull));
		TimestampTz end = view->window.kind == WINDOW_COUNT ? 0 : start + view->window.slide;

		enlargeStringInfo(buf, WINDOW_KEY_PREFIX);
		streamproc_window_key_prefix(buf->data, start, end);
		buf->len = WINDOW_KEY_PREFIX;
		buf->data[buf->len] = '\0';
	}
	for (i = 0; i < view->ngroup; i++)
	{
		bool isnull;
		Datum value = SPI_getbinval(tuple, desc, view->key_first + i, &isnull);

		appendStringInfoChar(buf, isnull ? 0 : 1);
		if (!isnull)
		{
			bytea *out = SendFunctionCall(&view->group_send[i],
										  canonical_key_value(view->group_types[i], value));
			int32 len = VARSIZE(out) - VARHDRSZ;

			appendBinaryStringInfo(buf, (char *)&len, sizeof(int32));
			appendBinaryStringInfo(buf, VARDATA(out), len);
		}
	}
}

uint32
worker_dirty_hash(const void *key, Size keysize)
{
	const DirtyKey *k = key;

	return hash_bytes((const unsigned char *)k->bytes, k->len);
}

int
worker_dirty_match(const void *key1, const void *key2, Size keysize)
{
	const DirtyKey *a = key1;
	const DirtyKey *b = key2;

	if (a->len != b->len)
		return 1;
	return memcmp(a->bytes, b->bytes, a->len);
}

void *
worker_dirty_keycopy(void *dest, const void *src, Size keysize)
{
	DirtyKey *d = dest;
	const DirtyKey *s = src;

	d->len = s->len;
	d->bytes = MemoryContextAlloc(worker_dirty_key_cxt, Max(s->len, 1));
	memcpy(d->bytes, s->bytes, s->len);
	return dest;
}

static HTAB *
dirty_create(MemoryContext cxt)
{
	HASHCTL ctl;

	ctl.keysize = sizeof(DirtyKey);
	ctl.entrysize = sizeof(DirtyKey);
	ctl.hash = worker_dirty_hash;
	ctl.match = worker_dirty_match;
	ctl.keycopy = worker_dirty_keycopy;
	ctl.hcxt = cxt;
	return hash_create("streamproc dirty groups", 1024, &ctl,
					   HASH_ELEM | HASH_FUNCTION | HASH_COMPARE | HASH_KEYCOPY | HASH_CONTEXT);
}

static void
dirty_add(WView *view, const char *key, uint32 len)
{
	DirtyKey k;

	k.len = len;
	k.bytes = (char *)key;
	worker_dirty_key_cxt = view->dirty_cxt;
	(void)hash_search(view->dirty, &k, HASH_ENTER, NULL);
}

/* ----------------------------------------------------------------
 * Main loop
 * ----------------------------------------------------------------
 */

static void
worker_exit(WorkerExit reason)
{
	/*
	 * The database or the extension is going away: free the shared state of
	 * our views (nobody else writes it), or it would count against
	 * streamproc.state_memory until the server restarts.
	 */
	if (reason == WORKER_EXIT_NO_EXTENSION || my_slot->exit_requested)
	{
		List *registered = streamproc_state_registered_views(MyDatabaseId, worker_index);
		ListCell *lc;

		foreach (lc, registered)
			streamproc_state_forget(MyDatabaseId, lfirst_oid(lc), worker_index);
	}
	streamproc_kafka_stop(my_sources);
	my_sources = NIL;
	my_slot->exit_reason = reason;
	proc_exit(0);
}

/*
 * streamproc_worker_main
 *		Entry point of an ingest worker; main_arg is its slot number.
 */
void
streamproc_worker_main(Datum main_arg)
{
	my_slot = streamproc_worker_slot(DatumGetInt32(main_arg));
	worker_index = my_slot->index;

	pqsignal(SIGHUP, SignalHandlerForConfigReload);
	pqsignal(SIGTERM, SignalHandlerForShutdownRequest);
	BackgroundWorkerUnblockSignals();
	BackgroundWorkerInitializeConnectionByOid(my_slot->dbid, InvalidOid, 0);
	pgstat_report_appname(psprintf("streamproc worker %d", worker_index));

	catalog_cxt = AllocSetContextCreate(TopMemoryContext, "streamproc catalog",
										ALLOCSET_DEFAULT_SIZES);
	worker_batch_cxt = AllocSetContextCreate(TopMemoryContext, "streamproc batch",
											 ALLOCSET_DEFAULT_SIZES);
#ifdef __GLIBC__

	/*
	 * Each batch allocates and frees a few MB in large blocks; by default
	 * glibc gives them back to the kernel (munmap, heap trimming) and the
	 * next batch faults them in again, which was a fifth of a Kafka
	 * worker's CPU.  Keep them in the process: its size then stays at the
	 * largest batch's, instead of going up and down with every batch.
	 */
	mallopt(M_MMAP_THRESHOLD, 32 * 1024 * 1024);
	mallopt(M_TRIM_THRESHOLD, 256 * 1024 * 1024);
#endif

	/*
	 * The catalog's queries are deparsed with only pg_catalog in the search
	 * path (view.c), and so are ours: run them the same way.
	 */
	SetConfigOption("search_path", "pg_catalog", PGC_SUSET, PGC_S_OVERRIDE);

	if (!worker_has_extension())
		worker_exit(WORKER_EXIT_NO_EXTENSION);

	my_slot->pid = MyProcPid;
	my_slot->latch = MyLatch;

	catalog_generation_seen = pg_atomic_read_u64(&streamproc_shared->catalog_generation);
	worker_load_catalog();
	last_checkpoint = GetCurrentTimestamp();
	ereport(LOG, (errmsg("streamproc worker %d started", worker_index)));

	while (!ShutdownRequestPending)
	{
		uint64 generation;
		uint64 catalog_generation;
		bool over_budget;
		bool sync_requested;
		bool more;
		bool caught_up;
		long kafka_wait;
		long timeout;
		ListCell *lc;

		CHECK_FOR_INTERRUPTS();
		if (my_slot->exit_requested)
			worker_exit(WORKER_EXIT_SHUTDOWN); /* DROP DATABASE */
		if (ConfigReloadPending)
		{
			ConfigReloadPending = false;
			ProcessConfigFile(PGC_SIGHUP);
		}

		/* Read the sync generation before taking any batch snapshot. */
		generation = streamproc_sync_generation();

		catalog_generation = pg_atomic_read_u64(&streamproc_shared->catalog_generation);
		if (catalog_generation != catalog_generation_seen)
		{
			if (worker_checkpoint_needed)
				worker_checkpoint();
			if (!worker_has_extension())
				worker_exit(WORKER_EXIT_NO_EXTENSION);
			catalog_generation_seen = catalog_generation;
			worker_load_catalog();
			batch_needed = true;
		}

		over_budget = streamproc_state_memory_used() >
					  (int64)streamproc_state_memory * 1024;
		if (over_budget != my_slot->paused)
		{
			my_slot->paused = over_budget;
			if (over_budget)
				ereport(LOG,
						(errmsg("streamproc worker %d paused ingestion: state memory budget reached", worker_index),
						 errdetail("Continuous views use %lld bytes of shared memory; \"streamproc.state_memory\" is %d kB.",
								   (long long)streamproc_state_memory_used(), streamproc_state_memory),
						 errhint("Increase \"streamproc.state_memory\" or drop continuous views. Stream inserts are kept and processed when ingestion resumes.")));
			else
				ereport(LOG, (errmsg("streamproc worker %d resumed ingestion", worker_index)));
		}

		/*
		 * Look at the logs only when events were committed for us (the
		 * stream FDW counts them), for sync(), after a (re)load, and every
		 * checkpoint interval as a safety net: an idle worker costs nothing,
		 * and a long COPY is not rescanned while it runs.
		 */
		sync_requested = generation > pg_atomic_read_u64(&my_slot->sync_done);
		if (streamproc_take_pending_events(my_slot) > 0 || sync_requested ||
			TimestampDifferenceExceeds(last_batch, GetCurrentTimestamp(),
									   streamproc_checkpoint_interval))
			batch_needed = true;
		if (!over_budget && batch_needed)
		{
			bool reload = false;

			foreach (lc, my_streams)
			{
				int64 n;

				if (!((WStream *)lfirst(lc))->owns_log)
					continue;
				n = worker_batch((WStream *)lfirst(lc));

				if (n > 0)
					worker_checkpoint_needed = true;
				else if (n < 0)
				{
					/* The catalog changed under the batch: reload first. */
					reload = true;
					break;
				}
			}
			if (reload)
				continue;
			batch_needed = false;
			last_batch = GetCurrentTimestamp();
		}

		/* Kafka: whatever the consumers hold, then their housekeeping. */
		more = false;
		if (!over_budget)
		{
			foreach (lc, my_streams)
			{
				WStream *stream = lfirst(lc);
				ListCell *sc;

				foreach (sc, stream->sources)
				{
					bool src_more = false;

					if (worker_source_batch(stream, lfirst(sc), &src_more) > 0)
					{
						worker_checkpoint_needed = true;
						if (stream->pending.nrows >= PENDING_ROWS_CHECKPOINT)
							worker_checkpoint_soon = true;
					}
					more |= src_more;
				}
			}
		}
		kafka_wait = my_sources ? streamproc_kafka_maintain(my_sources) : -1;

		/*
		 * Watermarks, after this round's batches and before its checkpoint
		 * (which closes windows by them); also without events, as inputs go
		 * idle with time.
		 */
		foreach (lc, my_streams)
			worker_publish_watermarks(lfirst(lc));
		if (streamproc_kafka_checkpoint_needed(my_sources))
			worker_checkpoint_needed = true;

		/*
		 * sync(): the Kafka partitions must also be processed up to the high
		 * watermarks read after the call, and the result checkpointed.
		 */
		caught_up = !sync_requested || over_budget ||
					streamproc_kafka_caught_up(my_sources, generation);

		if (worker_checkpoint_needed &&
			((sync_requested && caught_up) || worker_checkpoint_soon ||
			 TimestampDifferenceExceeds(last_checkpoint, GetCurrentTimestamp(),
										checkpoint_spacing())))
		{
			worker_checkpoint();
			worker_checkpoint_soon = false;
		}

		if (!over_budget && caught_up)
			streamproc_worker_progress(my_slot, generation);

		timeout = more ? 0 : streamproc_max_batch_delay;
		if (kafka_wait >= 0)
			timeout = Min(timeout, kafka_wait);
		if (!caught_up)
			timeout = Min(timeout, 20);
		/*
		 * Idle: with Kafka sources, wait for a message inside librdkafka
		 * (kafka.c says why), a short while at a time; otherwise on the
		 * latch.
		 */
		if (timeout > 0 && !MyLatch->is_set && my_sources != NIL &&
			streamproc_kafka_wait(my_sources, timeout))
		{
			/* Not in WaitLatch: look after the postmaster ourselves. */
			if (!PostmasterIsAlive())
				proc_exit(1);
		}
		else
		{
			(void)WaitLatch(MyLatch, WL_LATCH_SET | WL_TIMEOUT | WL_EXIT_ON_PM_DEATH,
							timeout, PG_WAIT_EXTENSION);
			ResetLatch(MyLatch);
		}
	}

	if (worker_checkpoint_needed)
		worker_checkpoint();
	worker_exit(WORKER_EXIT_SHUTDOWN);
}

/*
 * Milliseconds between two checkpoints: streamproc.checkpoint_interval,
 * or more when checkpoints are slow (many changed groups), so that they
 * take at most a tenth of the worker's time; ingestion would otherwise
 * spend most of it writing the same groups again.  Views are live in
 * shared memory either way; a longer spacing only means more input to
 * replay after a crash.  sync() still checkpoints at once.
 */
static int
checkpoint_spacing(void)
{
	return Max(streamproc_checkpoint_interval, (int)(last_checkpoint_ms * 9.0));
}

/* Does the database still have the extension? */
static bool
worker_has_extension(void)
{
	bool found;

	SetCurrentStatementStartTimestamp();
	StartTransactionCommand();
	found = OidIsValid(get_extension_oid("streamproc", true));
	CommitTransactionCommand();
	return found;
}

/* ----------------------------------------------------------------
 * Catalog
 * ----------------------------------------------------------------
 */

/*
 * worker_prepare_or_die
 *		Prepare and keep a plan.  SPI calls return in SPI's procedure
 *		context; this one returns in the caller's context.
 */
SPIPlanPtr
worker_prepare_or_die(const char *sql, int nargs, Oid *argtypes)
{
	MemoryContext cxt = CurrentMemoryContext;
	SPIPlanPtr plan = SPI_prepare(sql, nargs, argtypes);

	if (plan == NULL)
		elog(ERROR, "could not prepare streamproc query: %s",
			 SPI_result_code_string(SPI_result));
	SPI_keepplan(plan);
	MemoryContextSwitchTo(cxt);
	return plan;
}


/* Prepare a view's plans as its owner (names resolve as the owner's). */
static void
worker_prepare_view(WView *view, const char *batch_query, const char *event_query,
					const char *source_query, const char *rows_table,
					const char *late_query)
{
	Oid snap_types[2] = {PG_SNAPSHOTOID, PG_SNAPSHOTOID};
	Oid tid_type[1] = {TIDOID};
	Oid save_userid;
	int save_sec;

	GetUserIdAndSecContext(&save_userid, &save_sec);
	SetUserIdAndSecContext(view->owner, save_sec | SECURITY_LOCAL_USERID_CHANGE);
	if (view->kind == 'a' && view->window.kind != 0)
	{
		/* Windowed: the late cutoff is the last parameter. */
		Oid batch_types[3] = {PG_SNAPSHOTOID, PG_SNAPSHOTOID, TIMESTAMPTZOID};
		Oid event_types[2] = {TIDOID, TIMESTAMPTZOID};
		Oid source_types[1] = {TIMESTAMPTZOID};
		Oid late_types[2] = {TIMESTAMPTZOID, TEXTOID};

		view->batch_plan = worker_prepare_or_die(batch_query, 3, batch_types);
		view->event_plan = worker_prepare_or_die(event_query, 2, event_types);
		view->source_plan = worker_prepare_or_die(source_query, 1, source_types);
		if (late_query != NULL)
			view->late_plan = worker_prepare_late_plan(view, late_query, late_types);
	}
	else if (view->kind == 'a')
	{
		view->batch_plan = worker_prepare_or_die(batch_query, 2, snap_types);
		view->event_plan = worker_prepare_or_die(event_query, 1, tid_type);
		view->source_plan = worker_prepare_or_die(source_query, 0, NULL);
	}
	else
	{
		view->batch_plan = worker_prepare_or_die(psprintf("INSERT INTO %s %s", rows_table, batch_query),
												 2, snap_types);
		view->event_plan = worker_prepare_or_die(psprintf("INSERT INTO %s %s", rows_table, event_query),
												 1, tid_type);
		view->source_plan = worker_prepare_or_die(psprintf("INSERT INTO %s %s", rows_table, source_query),
												  0, NULL);
	}
	SetUserIdAndSecContext(save_userid, save_sec);
}

/*
 * worker_load_view_state
 *		Clear our slot of an aggregating view and reload it from the
 *		checkpoint.  With fold (the worker that owns the view's stream log),
 *		rows checkpointed under slots that no longer exist (streamproc.workers
 *		was lowered) are folded into ours and rewritten at the next
 *		checkpoint; the slots of other running workers are theirs alone.
 */
static void
worker_load_view_state(WView *view, bool fold)
{
	Datum args[4];
	uint64 i;
	uint64 nrows;
	int ret;
	TimestampTz closed = DT_NOBEGIN;

	LWLockAcquire(streamproc_state_lock(), LW_EXCLUSIVE);
	view->shared = streamproc_state_register(MyDatabaseId, view->viewid, worker_index);
	view->shared->loaded &= ~(UINT64CONST(1) << worker_index);
	if (view->groups == NULL)
	{
		MemoryContext old = MemoryContextSwitchTo(catalog_cxt);

		view->groups = streamproc_state_attach_groups(view->shared);
		MemoryContextSwitchTo(old);
	}
	streamproc_state_reset_slot(view->groups, view->shared, worker_index);
	LWLockRelease(streamproc_state_lock());

	args[0] = ObjectIdGetDatum(view->viewid);
	args[1] = Int32GetDatum(worker_index);
	args[2] = BoolGetDatum(fold);
	args[3] = Int32GetDatum(streamproc_workers);
	ret = SPI_execute_with_args("SELECT key, state, slot FROM streamproc.view_state"
								" WHERE view = $1 AND (slot = $2 OR ($3 AND slot >= $4))",
								4, (Oid[]){OIDOID, INT4OID, BOOLOID, INT4OID}, args, NULL, true, 0);
	if (ret != SPI_OK_SELECT)
		elog(ERROR, "could not read streamproc.view_state: %s", SPI_result_code_string(ret));

	nrows = SPI_processed;
	for (i = 0; i < SPI_processed; i++)
	{
		HeapTuple tup = SPI_tuptable->vals[i];
		bool isnull;
		bytea *key = DatumGetByteaPP(SPI_getbinval(tup, SPI_tuptable->tupdesc, 1, &isnull));
		bytea *state = DatumGetByteaPP(SPI_getbinval(tup, SPI_tuptable->tupdesc, 2, &isnull));
		int slot = DatumGetInt32(SPI_getbinval(tup, SPI_tuptable->tupdesc, 3, &isnull));
		bool new_group;

		if (slot != worker_index)
		{
			bytea *mine = streamproc_state_fetch(view->groups, VARDATA_ANY(key),
												 VARSIZE_ANY_EXHDR(key), worker_index);

			state = streamproc_combine_packed(view->aggs, view->nagg, mine, state);
			view->rewrite_slots = true;
			dirty_add(view, VARDATA_ANY(key), VARSIZE_ANY_EXHDR(key));
		}
		view->memory += streamproc_state_store(view->groups, VARDATA_ANY(key),
											   VARSIZE_ANY_EXHDR(key), worker_index,
											   state, &new_group);
		if (new_group)
			view->new_groups++;
		if (view->window.kind != 0)
			worker_window_stored(view, VARDATA_ANY(key), VARSIZE_ANY_EXHDR(key), new_group);
	}
	SPI_freetuptable(SPI_tuptable);

	/* Count windows: each group goes on after its last closed window. */
	if (view->window.kind == WINDOW_COUNT)
	{
		ret = SPI_execute_with_args("SELECT DISTINCT ON (pg_catalog.substr(key, 17)) key"
									" FROM streamproc.window_state WHERE view = $1 AND slot = $2"
									" ORDER BY pg_catalog.substr(key, 17), pg_catalog.substr(key, 1, 8) DESC",
									2, (Oid[]){OIDOID, INT4OID}, args, NULL, true, 0);
		if (ret != SPI_OK_SELECT)
			elog(ERROR, "could not read streamproc.window_state: %s", SPI_result_code_string(ret));
		for (i = 0; i < SPI_processed; i++)
		{
			bool isnull;
			bytea *key = DatumGetByteaPP(SPI_getbinval(SPI_tuptable->vals[i], SPI_tuptable->tupdesc, 1, &isnull));
			TimestampTz id;
			TimestampTz count;

			streamproc_window_key_decode(VARDATA_ANY(key), VARSIZE_ANY_EXHDR(key), &id, &count);
			worker_count_index(view, VARDATA_ANY(key), VARSIZE_ANY_EXHDR(key), id, count);
		}
		SPI_freetuptable(SPI_tuptable);
	}

	/* The watermark our slot closed windows at: it never goes back. */
	ret = SPI_execute_with_args("SELECT watermark FROM streamproc.view_watermarks WHERE view = $1 AND slot = $2",
								2, (Oid[]){OIDOID, INT4OID}, args, NULL, true, 1);
	if (ret != SPI_OK_SELECT)
		elog(ERROR, "could not read streamproc.view_watermarks: %s", SPI_result_code_string(ret));
	if (SPI_processed == 1)
	{
		bool isnull;

		closed = DatumGetTimestampTz(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull));
		if (view->window.kind != 0)
		{
			view->closed = closed;
			view->cutoff = streamproc_window_cutoff(&view->window, closed);
		}
	}
	SPI_freetuptable(SPI_tuptable);

	LWLockAcquire(streamproc_state_lock(), LW_EXCLUSIVE);
	view->shared->groups_count += view->new_groups;
	view->shared->memory += view->memory;
	view->shared->loaded |= UINT64CONST(1) << worker_index;
	view->shared->closed[worker_index] = closed;
	/* (A count window's "closed" is the time it closed, not a watermark.) */
	if (closed > view->shared->watermark && view->window.kind != WINDOW_COUNT)
		view->shared->watermark = closed;
	if (nrows > 0 || closed != DT_NOBEGIN)
		view->shared->writers |= UINT64CONST(1) << worker_index;
	LWLockRelease(streamproc_state_lock());
	view->new_groups = 0;
	view->memory = 0;
}

/*
 * worker_load_catalog
 *		(Re)build the worker's streams and views from the catalog, keeping
 *		each stream's last snapshot.  The caller checkpointed first, so
 *		reloading view state from the checkpoint loses nothing.
 */
static void
worker_load_catalog(void)
{
	List *old_streams = my_streams;
	MemoryContext old_catalog = catalog_cxt;
	List *old_snapshots = NIL;
	ListCell *lc;
	uint64 i;
	int ret;
	Datum args[3];

	/* Keep the last snapshots, forget the rest. */
	catalog_cxt = AllocSetContextCreate(TopMemoryContext, "streamproc catalog",
										ALLOCSET_DEFAULT_SIZES);
	foreach (lc, old_streams)
	{
		WStream *s = lfirst(lc);
		ListCell *vc;

		foreach (vc, s->views)
		{
			WView *v = lfirst(vc);

			if (v->groups)
				dshash_detach(v->groups);
			if (v->batch_plan)
				SPI_freeplan(v->batch_plan);
			if (v->event_plan)
				SPI_freeplan(v->event_plan);
			if (v->source_plan)
				SPI_freeplan(v->source_plan);
			if (v->late_plan)
				SPI_freeplan(v->late_plan);
		}
		if (s->last_snapshot)
		{
			MemoryContext old = MemoryContextSwitchTo(catalog_cxt);

			old_snapshots = lappend(old_snapshots, list_make2(makeInteger(s->streamid),
															  DatumGetPointer(datumCopy(s->last_snapshot, false, -1))));
			MemoryContextSwitchTo(old);
		}
		if (s->count_plan)
			SPI_freeplan(s->count_plan);
		if (s->rows_plan)
			SPI_freeplan(s->rows_plan);
		if (s->delete_plan)
			SPI_freeplan(s->delete_plan);
		if (s->unconsumed_plan)
			SPI_freeplan(s->unconsumed_plan);
		if (s->late_rows_plan)
			SPI_freeplan(s->late_rows_plan);
	}
	my_streams = NIL;
	foreach (lc, held_views)
		if (((WView *)lfirst(lc))->groups)
			dshash_detach(((WView *)lfirst(lc))->groups);
	held_views = NIL;
	streamproc_kafka_stop(my_sources);
	my_sources = NIL;
	MemoryContextDelete(old_catalog);

	SetCurrentStatementStartTimestamp();
	StartTransactionCommand();
	SPI_connect();
	PushActiveSnapshot(GetTransactionSnapshot());

	/* Checkpoint rows of views that no longer exist (idempotent). */
	{
		const char *const tables[] = {"view_state", "window_state", "view_watermarks"};
		int t;

		for (t = 0; t < lengthof(tables); t++)
		{
			ret = SPI_execute(psprintf("DELETE FROM streamproc.%s s WHERE NOT EXISTS"
									   " (SELECT 1 FROM streamproc.views v WHERE v.view = s.view)",
									   tables[t]),
							  false, 0);
			if (ret != SPI_OK_DELETE)
				elog(ERROR, "could not clean streamproc.%s: %s", tables[t],
					 SPI_result_code_string(ret));
		}
	}

	view_state_relid = get_relname_relid("view_state", get_namespace_oid("streamproc", false));

	/* Kafka sources we consume, then their streams and ours. */
	my_sources = streamproc_kafka_load(worker_index, catalog_cxt);
	{
		Datum *oids = palloc(sizeof(Datum) * Max(list_length(my_sources), 1));
		int n = 0;

		foreach (lc, my_sources)
			oids[n++] = ObjectIdGetDatum(streamproc_kafka_stream(lfirst(lc)));
		args[2] = PointerGetDatum(construct_array(oids, n, OIDOID, sizeof(Oid), true, TYPALIGN_INT));
	}
	args[0] = Int32GetDatum(streamproc_workers);
	args[1] = Int32GetDatum(worker_index);
	ret = SPI_execute_with_args("SELECT s.stream::oid, s.stream::text, s.log::text, s.log::oid,"
								" (s.stream::oid::int8 % $1) = $2"
								" FROM streamproc.streams s"
								" WHERE (s.stream::oid::int8 % $1) = $2 OR s.stream::oid = ANY ($3)"
								" ORDER BY 1",
								3, (Oid[]){INT4OID, INT4OID, OIDARRAYOID}, args, NULL, true, 0);
	if (ret != SPI_OK_SELECT)
		elog(ERROR, "could not read streamproc.streams: %s", SPI_result_code_string(ret));

	for (i = 0; i < SPI_processed; i++)
	{
		MemoryContext old = MemoryContextSwitchTo(catalog_cxt);
		WStream *s = palloc0(sizeof(WStream));
		HeapTuple tup = SPI_tuptable->vals[i];
		bool isnull;
		ListCell *sc;

		s->streamid = DatumGetObjectId(SPI_getbinval(tup, SPI_tuptable->tupdesc, 1, &isnull));
		s->name = SPI_getvalue(tup, SPI_tuptable->tupdesc, 2);
		s->logname = SPI_getvalue(tup, SPI_tuptable->tupdesc, 3);
		s->logid = DatumGetObjectId(SPI_getbinval(tup, SPI_tuptable->tupdesc, 4, &isnull));
		s->owns_log = DatumGetBool(SPI_getbinval(tup, SPI_tuptable->tupdesc, 5, &isnull));
		foreach (sc, my_sources)
			if (streamproc_kafka_stream(lfirst(sc)) == s->streamid)
				s->sources = lappend(s->sources, lfirst(sc));
		{
			Relation rel = relation_open(s->streamid, AccessShareLock);

			s->desc = CreateTupleDescCopy(RelationGetDescr(rel));
			relation_close(rel, AccessShareLock);
		}
		s->pending_cxt = AllocSetContextCreate(catalog_cxt, "streamproc pending Kafka rows",
											   ALLOCSET_DEFAULT_SIZES);
		foreach (sc, old_snapshots)
		{
			List *pair = lfirst(sc);

			if (intVal(linitial(pair)) == (int)s->streamid)
				s->last_snapshot = PointerGetDatum(lsecond(pair));
		}
		my_streams = lappend(my_streams, s);
		MemoryContextSwitchTo(old);
	}
	SPI_freetuptable(SPI_tuptable);

	foreach (lc, my_streams)
	{
		WStream *s = lfirst(lc);
		Oid snap_types[2] = {PG_SNAPSHOTOID, PG_SNAPSHOTOID};
		Oid one_snap[1] = {PG_SNAPSHOTOID};
		const char *pred = "pg_catalog.pg_visible_in_snapshot(l.\"$xid\", $1)"
						   " AND ($2 IS NULL OR NOT pg_catalog.pg_visible_in_snapshot(l.\"$xid\", $2))";
		MemoryContext old;

		old = MemoryContextSwitchTo(catalog_cxt);
		s->rows_plan = worker_prepare_or_die(psprintf("SELECT l.ctid, (pg_catalog.to_jsonb(l) - '$xid')::text"
													  " FROM %s l WHERE %s ORDER BY l.ctid",
													  s->logname, pred),
											 2, snap_types);
		s->delete_plan = worker_prepare_or_die(psprintf("DELETE FROM %s l WHERE pg_catalog.pg_visible_in_snapshot(l.\"$xid\", $1)",
														s->logname),
											   1, one_snap);
		s->unconsumed_plan = worker_prepare_or_die(psprintf("SELECT 1 FROM %s l WHERE NOT pg_catalog.pg_visible_in_snapshot(l.\"$xid\", $1) LIMIT 1",
															s->logname),
												   1, one_snap);
		MemoryContextSwitchTo(old);

		args[0] = ObjectIdGetDatum(s->streamid);
		ret = SPI_execute_with_args("SELECT v.view::oid, v.view::text, v.kind, c.relowner,"
									" v.batch_query, v.event_query, v.group_types::oid[],"
									" v.aggregates::oid[], v.agg_collations, v.rows_table::text,"
									" v.agg_argtypes, v.source_query, v.window_kind, v.window_size,"
									" v.window_slide, v.window_origin, v.window_roles, v.allowed_lateness,"
									" v.retention, v.emit, v.late_events::oid"
									" FROM streamproc.views v JOIN pg_catalog.pg_class c ON c.oid = v.view"
									" WHERE v.stream = $1 ORDER BY 1",
									1, (Oid[]){OIDOID}, args, NULL, true, 0);
		if (ret != SPI_OK_SELECT)
			elog(ERROR, "could not read streamproc.views: %s", SPI_result_code_string(ret));

		{
			SPITupleTable *views = SPI_tuptable;
			uint64 nviews = SPI_processed;

			for (i = 0; i < nviews; i++)
			{
				HeapTuple tup = views->vals[i];
				TupleDesc desc = views->tupdesc;
				bool isnull;
				WView *v;
				ArrayType *arr;
				Datum *elems;
				int nelems;
				int j;
				char *batch_query;
				char *event_query;
				char *rows_table;
				int16 *roles;

				old = MemoryContextSwitchTo(catalog_cxt);
				v = palloc0(sizeof(WView));
				v->viewid = DatumGetObjectId(SPI_getbinval(tup, desc, 1, &isnull));
				v->name = SPI_getvalue(tup, desc, 2);
				v->kind = DatumGetChar(SPI_getbinval(tup, desc, 3, &isnull));
				v->owner = DatumGetObjectId(SPI_getbinval(tup, desc, 4, &isnull));
				batch_query = SPI_getvalue(tup, desc, 5);
				event_query = SPI_getvalue(tup, desc, 6);
				rows_table = SPI_getvalue(tup, desc, 10);

				arr = DatumGetArrayTypeP(SPI_getbinval(tup, desc, 7, &isnull));
				deconstruct_array(arr, OIDOID, sizeof(Oid), true, TYPALIGN_INT,
								  &elems, NULL, &nelems);

				/* Windowed views: the window, and which group columns are it. */
				v->key_first = 1;
				roles = NULL;
				(void)SPI_getbinval(tup, desc, 13, &isnull);
				if (!isnull)
				{
					Datum *relems;
					int nroles;

					v->window.kind = DatumGetChar(SPI_getbinval(tup, desc, 13, &isnull));
					v->window.size = DatumGetInt64(SPI_getbinval(tup, desc, 14, &isnull));
					v->window.slide = DatumGetInt64(SPI_getbinval(tup, desc, 15, &isnull));
					v->window.origin = DatumGetTimestampTz(SPI_getbinval(tup, desc, 16, &isnull));
					deconstruct_array(DatumGetArrayTypeP(SPI_getbinval(tup, desc, 17, &isnull)),
									  INT2OID, sizeof(int16), true, TYPALIGN_SHORT,
									  &relems, NULL, &nroles);
					roles = palloc0(sizeof(int16) * Max(nelems, 1));
					for (j = 0; j < nroles && j < nelems; j++)
						roles[j] = DatumGetInt16(relems[j]);
					v->window.lateness = DatumGetInt64(SPI_getbinval(tup, desc, 18, &isnull));
					v->window.retention = DatumGetInt64(SPI_getbinval(tup, desc, 19, &isnull));
					if (isnull)
						v->window.retention = -1;
					v->window.emit = DatumGetChar(SPI_getbinval(tup, desc, 20, &isnull));
					v->key_first = 2; /* after the window's start */
					v->closed = DT_NOBEGIN;
					v->cutoff = DT_NOBEGIN;
					v->min_end = DT_NOBEGIN;
					v->late_cxt = AllocSetContextCreate(catalog_cxt, "streamproc late events",
														ALLOCSET_DEFAULT_SIZES);
					if (v->window.kind == WINDOW_SESSION || v->window.kind == WINDOW_COUNT)
					{
						HASHCTL ctl;
						HTAB *index;

						ctl.keysize = sizeof(DirtyKey);
						ctl.entrysize = v->window.kind == WINDOW_SESSION ? sizeof(SessionGroup)
																		 : sizeof(CountGroup);
						ctl.hash = worker_dirty_hash;
						ctl.match = worker_dirty_match;
						ctl.keycopy = worker_dirty_keycopy;
						ctl.hcxt = AllocSetContextCreate(catalog_cxt, "streamproc window index",
														 ALLOCSET_DEFAULT_SIZES);
						index = hash_create("streamproc window index", 1024, &ctl,
											HASH_ELEM | HASH_FUNCTION | HASH_COMPARE |
												HASH_KEYCOPY | HASH_CONTEXT);
						if (v->window.kind == WINDOW_SESSION)
						{
							Oid ts_type = TIMESTAMPTZOID;

							v->sessions = index;
							v->first_event = streamproc_agg_lookup(F_MIN_TIMESTAMPTZ, InvalidOid, 1,
																   &ts_type);
							v->last_event = streamproc_agg_lookup(F_MAX_TIMESTAMPTZ, InvalidOid, 1,
																  &ts_type);
						}
						else
							v->counters = index;
					}
					if (s->event_time == InvalidAttrNumber)
					{
						char *column = streamproc_stream_time_options(s->streamid,
																	  &s->watermark_delay,
																	  &s->idle_timeout);

						s->event_time = column ? get_attnum(s->streamid, column) : InvalidAttrNumber;
						s->log_max_time = DT_NOBEGIN;
					}
				}

				/* The ordinary group keys: their send functions. */
				v->group_send = palloc0(sizeof(FmgrInfo) * Max(nelems, 1));
				v->group_types = palloc0(sizeof(Oid) * Max(nelems, 1));
				v->ngroup = 0;
				for (j = 0; j < nelems; j++)
				{
					Oid sendfn;
					bool varlena;

					if (roles != NULL && roles[j] != WINDOW_ROLE_KEY)
						continue;
					v->group_types[v->ngroup] = DatumGetObjectId(elems[j]);
					getTypeBinaryOutputInfo(DatumGetObjectId(elems[j]), &sendfn, &varlena);
					fmgr_info_cxt(sendfn, &v->group_send[v->ngroup], catalog_cxt);
					v->ngroup++;
				}

				v->aggs = streamproc_lookup_view_aggs(DatumGetArrayTypeP(SPI_getbinval(tup, desc, 8, &isnull)),
													  DatumGetArrayTypeP(SPI_getbinval(tup, desc, 9, &isnull)),
													  DatumGetArrayTypeP(SPI_getbinval(tup, desc, 11, &isnull)),
													  &v->nagg);

				{
					Oid late = DatumGetObjectId(SPI_getbinval(tup, desc, 21, &isnull));

					worker_prepare_view(v, batch_query, event_query,
										SPI_getvalue(tup, desc, 12), rows_table,
										isnull ? NULL
											   : streamproc_late_query(s->streamid, v->viewid, late));
				}
				if (v->kind != 'a')
					s->has_append = true;
				if (v->kind == 'a')
				{
					v->dirty_cxt = AllocSetContextCreate(catalog_cxt, "streamproc dirty groups",
														 ALLOCSET_DEFAULT_SIZES);
					v->dirty = dirty_create(v->dirty_cxt);
				}
				s->views = lappend(s->views, v);
				MemoryContextSwitchTo(old);
			}
			SPI_freetuptable(views);
		}

		/*
		 * A batch's size; with windowed views also its least and greatest
		 * event time and how many events have none, and the plan that reads
		 * the events before a cutoff (late).
		 */
		old = MemoryContextSwitchTo(catalog_cxt);
		if (s->event_time != InvalidAttrNumber)
		{
			const char *ev = quote_identifier(NameStr(TupleDescAttr(s->desc, s->event_time - 1)->attname));
			StringInfoData cols;
			int j;

			s->count_plan = worker_prepare_or_die(psprintf("SELECT count(*), min(l.%s), max(l.%s),"
														   " count(*) FILTER (WHERE l.%s IS NULL)"
														   " FROM %s l WHERE %s",
														   ev, ev, ev, s->logname, pred),
												  2, snap_types);
			initStringInfo(&cols);
			for (j = 0; j < s->desc->natts; j++)
				if (!TupleDescAttr(s->desc, j)->attisdropped)
					appendStringInfo(&cols, ", l.%s",
									 quote_identifier(NameStr(TupleDescAttr(s->desc, j)->attname)));
			s->late_rows_plan = worker_prepare_or_die(psprintf("SELECT l.ctid, (pg_catalog.to_jsonb(l) - '$xid')::text%s"
															   " FROM %s l WHERE %s AND (l.%s < $3 OR l.%s IS NULL)"
															   " ORDER BY l.ctid",
															   cols.data, s->logname, pred, ev, ev),
													  3, (Oid[]){PG_SNAPSHOTOID, PG_SNAPSHOTOID, TIMESTAMPTZOID});
		}
		else
			s->count_plan = worker_prepare_or_die(psprintf("SELECT count(*), NULL::pg_catalog.timestamptz,"
														   " NULL::pg_catalog.timestamptz, 0::pg_catalog.int8"
														   " FROM %s l WHERE %s",
														   s->logname, pred),
												  2, snap_types);
		MemoryContextSwitchTo(old);
	}

	foreach (lc, my_streams)
	{
		WStream *s = lfirst(lc);
		ListCell *vc;

		foreach (vc, s->views)
		{
			WView *v = lfirst(vc);

			if (v->kind == 'a')
				worker_load_view_state(v, s->owns_log);
			else
			{
				/* No state, but statistics: register it all the same. */
				LWLockAcquire(streamproc_state_lock(), LW_EXCLUSIVE);
				v->shared = streamproc_state_register(MyDatabaseId, v->viewid, worker_index);
				v->shared->loaded |= UINT64CONST(1) << worker_index;
				LWLockRelease(streamproc_state_lock());
			}
		}
	}

	/*
	 * Windowed views: the slots that read the stream's Kafka sources must
	 * all publish before the view's watermark moves (worker_publish_watermarks).
	 */
	foreach (lc, my_streams)
	{
		WStream *s = lfirst(lc);
		uint64 slots = 0;
		ListCell *vc;

		if (s->event_time == InvalidAttrNumber)
			continue;
		args[0] = ObjectIdGetDatum(s->streamid);
		ret = SPI_execute_with_args("SELECT workers FROM streamproc.sources WHERE stream = $1 AND NOT paused",
									1, (Oid[]){OIDOID}, args, NULL, true, 0);
		if (ret != SPI_OK_SELECT)
			elog(ERROR, "could not read streamproc.sources: %s", SPI_result_code_string(ret));
		for (i = 0; i < SPI_processed; i++)
		{
			bool isnull;
			int members = Min(DatumGetInt32(SPI_getbinval(SPI_tuptable->vals[i],
														  SPI_tuptable->tupdesc, 1, &isnull)),
							  streamproc_workers);
			int m;

			for (m = 0; m < members; m++)
				slots |= UINT64CONST(1) << ((s->streamid % (Oid)streamproc_workers + m) % streamproc_workers);
		}
		SPI_freetuptable(SPI_tuptable);
		LWLockAcquire(streamproc_state_lock(), LW_EXCLUSIVE);
		foreach (vc, s->views)
		{
			ViewShared *shared = ((WView *)lfirst(vc))->shared;

			if (((WView *)lfirst(vc))->window.kind == 0 || shared == NULL)
				continue;
			/* A slot that joins must publish anew. */
			shared->published_slots &= ~(slots & ~shared->source_slots);
			shared->source_slots = slots;
		}
		LWLockRelease(streamproc_state_lock());
	}

	/*
	 * Aggregating views of streams we do not feed: our slot of them may
	 * hold what we wrote before (a Kafka source's other worker, paused or
	 * resized since), and readers need every slot loaded.
	 */
	{
		Datum *oids = palloc(sizeof(Datum) * Max(list_length(my_streams), 1));
		int n = 0;
		SPITupleTable *tab;
		uint64 nheld;

		foreach (lc, my_streams)
			oids[n++] = ObjectIdGetDatum(((WStream *)lfirst(lc))->streamid);
		args[0] = PointerGetDatum(construct_array(oids, n, OIDOID, sizeof(Oid), true, TYPALIGN_INT));
		ret = SPI_execute_with_args("SELECT v.view::oid FROM streamproc.views v"
									" WHERE v.kind = 'a' AND v.stream::oid <> ALL ($1) ORDER BY 1",
									1, (Oid[]){OIDARRAYOID}, args, NULL, true, 0);
		if (ret != SPI_OK_SELECT)
			elog(ERROR, "could not read streamproc.views: %s", SPI_result_code_string(ret));
		tab = SPI_tuptable;
		nheld = SPI_processed;
		for (i = 0; i < nheld; i++)
		{
			bool isnull;
			MemoryContext old = MemoryContextSwitchTo(catalog_cxt);
			WView *v = palloc0(sizeof(WView));

			v->viewid = DatumGetObjectId(SPI_getbinval(tab->vals[i], tab->tupdesc, 1, &isnull));
			v->kind = 'a';
			held_views = lappend(held_views, v);
			MemoryContextSwitchTo(old);
			worker_load_view_state(v, false);
		}
		SPI_freetuptable(tab);
	}

	/*
	 * Views we are attached to that are gone: free our slot; the last
	 * worker to let go destroys the state, so nobody is writing it.
	 */
	{
		List *registered = streamproc_state_registered_views(MyDatabaseId, worker_index);
		ListCell *rc;

		foreach (rc, registered)
		{
			Oid viewid = lfirst_oid(rc);
			bool mine = false;

			foreach (lc, my_streams)
			{
				ListCell *vc;

				foreach (vc, ((WStream *)lfirst(lc))->views)
					if (((WView *)lfirst(vc))->viewid == viewid)
						mine = true;
			}
			foreach (lc, held_views)
				if (((WView *)lfirst(lc))->viewid == viewid)
					mine = true;
			if (!mine)
				streamproc_state_forget(MyDatabaseId, viewid, worker_index);
		}
	}

	SPI_finish();
	PopActiveSnapshot();
	CommitTransactionCommand();
}


/* ----------------------------------------------------------------
 * Micro-batches
 * ----------------------------------------------------------------
 */

/* The packed partial states of a row of a view's batch query. */
bytea *
worker_row_states(WView *view, HeapTuple tup, TupleDesc desc)
{
	bytea **states = palloc0(sizeof(bytea *) * Max(view->nagg, 1));
	int j;

	for (j = 0; j < view->nagg; j++)
	{
		bool isnull;
		Datum d = SPI_getbinval(tup, desc, view->key_first + view->ngroup + j, &isnull);

		states[j] = isnull ? NULL : DatumGetByteaPCopy(d);
	}
	return pack_states(view->nagg, states);
}

/*
 * Combine the rows of a batch or event query (in SPI_tuptable) with our
 * slot's states; the results are returned, not stored, so that a failure
 * leaves shared memory untouched.
 */
static List *
combine_results(WView *view)
{
	List *pending = NIL;
	StringInfoData key;
	uint64 i;

	if (view->window.kind == WINDOW_SESSION)
		return worker_merge_sessions(view);
	if (view->window.kind == WINDOW_COUNT)
		return worker_count_events(view);

	initStringInfo(&key);
	for (i = 0; i < SPI_processed; i++)
	{
		HeapTuple tup = SPI_tuptable->vals[i];
		TupleDesc desc = SPI_tuptable->tupdesc;
		bytea *current;
		PendingState *p;

		worker_serialize_key(view, tup, desc, &key);
		current = streamproc_state_fetch(view->groups, key.data, key.len, worker_index);

		p = palloc(sizeof(PendingState));
		p->keylen = key.len;
		p->key = palloc(Max(key.len, 1));
		memcpy(p->key, key.data, key.len);
		p->state = streamproc_combine_packed(view->aggs, view->nagg, current,
											 worker_row_states(view, tup, desc));
		pending = lappend(pending, p);
	}
	return pending;
}

static void
store_results(WView *view, List *pending)
{
	ListCell *lc;

	foreach (lc, pending)
	{
		PendingState *p = lfirst(lc);
		bool new_group;

		if (p->state == NULL)
		{
			bool deleted;

			view->memory -= streamproc_state_remove(view->groups, p->key, p->keylen,
													worker_index, &deleted);
			if (deleted)
				view->new_groups--;
			worker_session_index(view, p->key, p->keylen, false);
		}
		else
		{
			view->memory += streamproc_state_store(view->groups, p->key, p->keylen,
												   worker_index, p->state, &new_group);
			if (new_group)
				view->new_groups++;
			if (view->window.kind != 0)
				worker_window_stored(view, p->key, p->keylen, new_group);
		}
		dirty_add(view, p->key, p->keylen);
	}
}

/*
 * worker_run_in_subxact
 *		Execute plan with the given arguments as the view's owner in a
 *		subtransaction.  With pending (an aggregating view's partial states)
 *		also combine the results into *pending; without, the plan is an
 *		INSERT (append view, late events) and view->appended counts its rows.
 *		Returns true on success, false after recording
 *		nothing: the caller decides what a failure means, and finds the
 *		error in *edata (in worker_batch_cxt).  A transient error (errors.c)
 *		is re-thrown.
 */
bool
worker_run_in_subxact(WView *view, SPIPlanPtr plan, Datum *args, const char *nulls,
					  List **pending, ErrorData **edata)
{
	MemoryContext oldcxt = CurrentMemoryContext;
	ResourceOwner oldowner = CurrentResourceOwner;
	Oid save_userid;
	int save_sec;
	bool ok = true;
	bool merge = pending != NULL; /* else an INSERT (append view, late events) */

	GetUserIdAndSecContext(&save_userid, &save_sec);
	BeginInternalSubTransaction(NULL);
	MemoryContextSwitchTo(oldcxt);
	PG_TRY();
	{
		int ret;

		SetUserIdAndSecContext(view->owner,
							   save_sec | SECURITY_LOCAL_USERID_CHANGE | SECURITY_RESTRICTED_OPERATION);
		ret = SPI_execute_plan(plan, args, nulls, false, 0);
		if (ret < 0)
			elog(ERROR, "streamproc batch query failed: %s", SPI_result_code_string(ret));
		SetUserIdAndSecContext(save_userid, save_sec);
		if (!merge)
			view->appended = (int64)SPI_processed;

		if (merge)
		{
			MemoryContextSwitchTo(worker_batch_cxt);
			*pending = combine_results(view);
			MemoryContextSwitchTo(oldcxt);
		}
		SPI_freetuptable(SPI_tuptable);

		ReleaseCurrentSubTransaction();
		MemoryContextSwitchTo(oldcxt);
		CurrentResourceOwner = oldowner;
	}
	PG_CATCH();
	{
		MemoryContextSwitchTo(worker_batch_cxt);
		*edata = CopyErrorData();
		FlushErrorState();
		RollbackAndReleaseCurrentSubTransaction();
		MemoryContextSwitchTo(oldcxt);
		CurrentResourceOwner = oldowner;
		SetUserIdAndSecContext(save_userid, save_sec);

		/*
		 * A transient fault of the system (errors.c) is no event's fault and
		 * must not send events to streamproc.errors: it aborts the batch; the
		 * worker exits, the launcher starts it again, and it replays its
		 * inputs from the last checkpoint, so every event is still counted
		 * exactly once.
		 */
		if (streamproc_error_kind(*edata) == STREAMPROC_ERROR_TRANSIENT)
			ReThrowError(*edata);
		ok = false;
	}
	PG_END_TRY();
	return ok;
}

void
worker_record_failed_event(WStream *stream, WView *view, const char *position,
						   const char *event, ErrorData *edata)
{
	MemoryContext old = MemoryContextSwitchTo(TopMemoryContext);
	FailedEvent *f = palloc0(sizeof(FailedEvent));

	f->source = pstrdup(stream->name);
	f->viewid = view->viewid;
	f->position = pstrdup(position);
	f->event = pnstrdup(event, ERROR_EVENT_MAX);
	f->sqlstate = pstrdup(unpack_sql_state(edata->sqlerrcode));
	f->message = pstrdup(edata->message ? edata->message : "");
	f->detail = edata->detail ? pstrdup(edata->detail) : NULL;
	f->partition = -1;
	f->offset = -1;
	failed_events = lappend(failed_events, f);
	view->errors++;
	MemoryContextSwitchTo(old);
}

/*
 * Bytes of a Kafka message as text for streamproc.errors: as they are when
 * they are valid in the database encoding, else in bytea's hex form;
 * truncated past ERROR_EVENT_MAX bytes.
 */
static char *
message_text(const char *data, size_t len)
{
	size_t keep = Min(len, (size_t)ERROR_EVENT_MAX);

	if (data == NULL)
		return NULL;
	if (memchr(data, '\0', keep) == NULL &&
		pg_verifymbstr(data, (int)keep, true))
		return pnstrdup(data, keep);
	if (pg_verifymbstr(data, (int)pg_mbcliplen(data, (int)keep, (int)keep), true) &&
		memchr(data, '\0', keep) == NULL)
		return pnstrdup(data, pg_mbcliplen(data, (int)keep, (int)keep));
	keep = Min(len, (size_t)ERROR_EVENT_MAX / 2);
	{
		char *hex = palloc(keep * 2 + 3);

		hex[0] = '\\';
		hex[1] = 'x';
		hex_encode(data, keep, hex + 2);
		hex[keep * 2 + 2] = '\0';
		return hex;
	}
}

/* A Kafka message that could not be parsed or processed (view NULL: parsing). */
void
worker_record_kafka_failure(KafkaSource *src, WView *view, const rd_kafka_message_t *m,
							int sqlerrcode, const char *message, const char *detail)
{
	MemoryContext old = MemoryContextSwitchTo(TopMemoryContext);
	FailedEvent *f = palloc0(sizeof(FailedEvent));

	f->source = pstrdup(streamproc_kafka_name(src));
	f->viewid = view ? view->viewid : InvalidOid;
	f->position = psprintf("partition %d offset %lld", (int)m->partition, (long long)m->offset);
	f->event = message_text(m->payload, m->len);
	f->sqlstate = pstrdup(unpack_sql_state(sqlerrcode));
	f->message = pstrdup(message);
	f->detail = detail ? pstrdup(detail) : NULL;
	f->topic = pstrdup(streamproc_kafka_topic(src));
	f->partition = m->partition;
	f->offset = m->offset;
	f->key = message_text(m->key, m->key_len);
	failed_events = lappend(failed_events, f);
	if (view)
		view->errors++;
	streamproc_kafka_count_error(src);
	MemoryContextSwitchTo(old);
}

/*
 * run_events_one_by_one
 *		The batch query of a view failed: run it for each event of the
 *		batch (snapshot range args) alone, merging those that work and
 *		recording those that fail.
 */
static void
run_events_one_by_one(WStream *stream, WView *view, Datum *snap_args,
					  const char *snap_nulls)
{
	SPITupleTable *rows;
	uint64 nrows;
	uint64 i;
	int ret;

	ret = SPI_execute_plan(stream->rows_plan, snap_args, snap_nulls, true, 0);
	if (ret != SPI_OK_SELECT)
		elog(ERROR, "could not list stream log rows: %s", SPI_result_code_string(ret));
	rows = SPI_tuptable;
	nrows = SPI_processed;

	for (i = 0; i < nrows; i++)
	{
		bool isnull;
		Datum ctid = SPI_getbinval(rows->vals[i], rows->tupdesc, 1, &isnull);
		char *event = SPI_getvalue(rows->vals[i], rows->tupdesc, 2);
		List *pending = NIL;
		ErrorData *edata = NULL;

		Datum event_args[2] = {ctid, TimestampTzGetDatum(view->cutoff)};

		/* (The cutoff is for windowed views; the others take one argument.) */
		if (worker_run_in_subxact(view, view->event_plan, event_args, "  ",
								  view->kind == 'a' ? &pending : NULL, &edata))
		{
			if (view->kind == 'a')
				store_results(view, pending);
			else
				view->events += view->appended;
		}
		else
			worker_record_failed_event(stream, view,
									   psprintf("log row %s",
												DatumGetCString(DirectFunctionCall1(tidout, ctid))),
									   event, edata);
	}
	SPI_freetuptable(rows);
}

/*
 * worker_batch
 *		Process one micro-batch of a stream (see the header comment);
 *		returns the number of events in it, or -1 without processing
 *		anything when the catalog changed since it was loaded.
 */
static int64
worker_batch(WStream *stream)
{
	Datum snapshot;
	Datum args[3];
	char nulls[3] = {' ', ' ', ' '};
	int64 nevents = 0;
	ListCell *lc;
	int ret;
	bool isnull;
	bool min_isnull;
	bool max_isnull;
	TimestampTz min_time;
	TimestampTz max_time;
	int64 null_times;

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
		/* Outlives SPI_finish: copy into the batch context. */
		MemoryContext old = MemoryContextSwitchTo(worker_batch_cxt);

		snapshot = datumCopy(snapshot, false, -1);
		MemoryContextSwitchTo(old);
	}

	/*
	 * A catalog change that committed before this snapshot (a view created,
	 * then events inserted for it) must be loaded before the batch runs, or
	 * the new view would miss events committed after its creation.  The
	 * generation is bumped before the creating transaction returns, so it
	 * is visible here whenever the snapshot holds such events.
	 */
	pg_memory_barrier();
	if (pg_atomic_read_u64(&streamproc_shared->catalog_generation) != catalog_generation_seen)
	{
		SPI_finish();
		PopActiveSnapshot();
		CommitTransactionCommand();
		MemoryContextReset(worker_batch_cxt);
		return -1;
	}

	args[0] = snapshot;
	args[1] = stream->last_snapshot;
	if (stream->last_snapshot == (Datum)0)
		nulls[1] = 'n';

	ret = SPI_execute_plan(stream->count_plan, args, nulls, true, 1);
	if (ret != SPI_OK_SELECT)
		elog(ERROR, "could not count stream log rows: %s", SPI_result_code_string(ret));
	nevents = DatumGetInt64(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull));
	min_time = DatumGetTimestampTz(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 2, &min_isnull));
	max_time = DatumGetTimestampTz(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 3, &max_isnull));
	null_times = DatumGetInt64(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 4, &isnull));

	if (nevents > 0)
	{
		foreach (lc, stream->views)
		{
			WView *view = lfirst(lc);
			List *pending = NIL;
			ErrorData *edata = NULL;

			/* Append-only views are written by the checkpoint. */
			if (view->kind != 'a')
				continue;

			/* Windowed views skip the late events: $3 is the cutoff. */
			args[2] = TimestampTzGetDatum(view->cutoff);
			if (worker_run_in_subxact(view, view->batch_plan, args, nulls, &pending, &edata))
				store_results(view, pending);
			else
				run_events_one_by_one(stream, view, args, nulls);
			view->events += nevents;
			if (view->window.kind != 0 && view->window.kind != WINDOW_COUNT &&
				(null_times > 0 || (!min_isnull && min_time < view->cutoff)))
			{
				int64 before = view->late_count + view->errors;

				worker_log_late_events(stream, view, args, nulls);
				view->events -= view->late_count + view->errors - before;
			}
		}
		if (stream->event_time != InvalidAttrNumber)
		{
			stream->log_last_event = GetCurrentTimestamp();
			if (!max_isnull && max_time > stream->log_max_time)
				stream->log_max_time = max_time;
		}
	}

	SPI_finish();
	PopActiveSnapshot();

	/* Keep this batch's snapshot for the next batch and the checkpoint. */
	{
		MemoryContext old = MemoryContextSwitchTo(catalog_cxt);

		if (stream->last_snapshot)
			pfree(DatumGetPointer(stream->last_snapshot));
		stream->last_snapshot = datumCopy(snapshot, false, -1);
		MemoryContextSwitchTo(old);
	}
	CommitTransactionCommand();
	MemoryContextReset(worker_batch_cxt);
	publish_view_stats(stream);
	return nevents;
}

/* Publish the statistics of a stream's aggregating views after a batch. */
static void
publish_view_stats(WStream *stream)
{
	ListCell *lc;

	LWLockAcquire(streamproc_state_lock(), LW_EXCLUSIVE);
	foreach (lc, stream->views)
	{
		WView *view = lfirst(lc);

		if (view->kind != 'a' || view->shared == NULL)
			continue;
		if (view->events > 0)
			view->shared->writers |= UINT64CONST(1) << worker_index;
		view->shared->events += view->events;
		view->shared->groups_count += view->new_groups;
		view->shared->memory += view->memory;
		view->shared->errors += view->errors;
		view->shared->late_events += view->late_count;
		view->events = view->new_groups = view->memory = view->errors = 0;
		view->late_count = 0;
	}
	LWLockRelease(streamproc_state_lock());
}

/*
 * Keep a Kafka batch's parsed rows for the stream's append-only views,
 * which the checkpoint writes (as it writes them from the log).
 */
static void
keep_pending_rows(WStream *stream, KafkaSource *src, SourceRows *rows,
				  rd_kafka_message_t **msgs, const int *rowmsg)
{
	MemoryContext old = MemoryContextSwitchTo(stream->pending_cxt);
	SourceRows *p = &stream->pending;
	int natts = rows->natts;
	int i;
	int j;

	if (p->nrows + rows->count > stream->pending_cap)
	{
		int cap = Max(stream->pending_cap * 2, p->nrows + rows->count + 1024);

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
	for (i = 0; i < rows->count; i++)
	{
		int from = (rows->first + i) * natts;
		int to = p->nrows * natts;

		for (j = 0; j < natts; j++)
		{
			Form_pg_attribute attr = TupleDescAttr(stream->desc, j);

			p->nulls[to + j] = rows->nulls[from + j];
			p->values[to + j] = rows->nulls[from + j] ? (Datum)0 : datumCopy(rows->values[from + j], attr->attbyval, attr->attlen);
		}
		stream->pending_partitions[p->nrows] = msgs[rowmsg[rows->first + i]]->partition;
		stream->pending_offsets[p->nrows] = msgs[rowmsg[rows->first + i]]->offset;
		stream->pending_sources[p->nrows] = src;
		p->nrows++;
	}
	MemoryContextSwitchTo(old);
}


/*
 * worker_source_batch
 *		Process the messages of a Kafka source that are waiting: parse them
 *		(bad ones go to streamproc.errors), run the stream's aggregating
 *		views over the rows in memory (a failing batch is run again row by
 *		row, as for the log), merge into our slot, and advance the
 *		partitions' positions, which the next checkpoint commits with the
 *		state.  Returns the number of messages consumed; *more says whether
 *		more may be waiting.
 */
static int
worker_source_batch(WStream *stream, KafkaSource *src, bool *more)
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
	SourceRows rows;
	MemoryContext old;
	ListCell *lc;
	int i;

	if (kafka_msgs_size < max)
	{
		worker_kafka_msgs = worker_kafka_msgs ? repalloc(worker_kafka_msgs, sizeof(rd_kafka_message_t *) * max)
											  : MemoryContextAlloc(TopMemoryContext, sizeof(rd_kafka_message_t *) * max);
		kafka_msgs_size = max;
	}
	n = streamproc_kafka_fetch(src, worker_kafka_msgs, max, more);
	if (n == 0)
		return 0;

	SetCurrentStatementStartTimestamp();
	StartTransactionCommand();
	SPI_connect();
	PushActiveSnapshot(GetTransactionSnapshot());
	old = MemoryContextSwitchTo(worker_batch_cxt);

	natts = streamproc_parser_natts(parser);
	pm = palloc(sizeof(StreamprocMessage) * n);
	metas = palloc(sizeof(StreamprocMessageMeta) * n);
	errs = palloc(sizeof(StreamprocParseError) * n);
	values = palloc(sizeof(Datum) * n * Max(natts, 1));
	nulls = palloc(sizeof(bool) * n * Max(natts, 1));
	ok = palloc(sizeof(bool) * n);
	rowmsg = palloc(sizeof(int) * n);
	for (i = 0; i < n; i++)
	{
		streamproc_kafka_message_meta(worker_kafka_msgs[i], &metas[i]);
		pm[i].data = worker_kafka_msgs[i]->payload;
		pm[i].len = worker_kafka_msgs[i]->len;
		pm[i].meta = &metas[i];
	}
	(void)streamproc_parser_parse_batch(parser, n, pm, values, nulls, ok, errs);

	/* Rows that parsed, packed; the others are recorded. */
	for (i = 0; i < n; i++)
	{
		if (!ok[i])
		{
			worker_record_kafka_failure(src, NULL, worker_kafka_msgs[i], errs[i].sqlerrcode,
										errs[i].message, NULL);
			continue;
		}
		if (nrows != i)
		{
			memcpy(values + (Size)nrows * natts, values + (Size)i * natts, sizeof(Datum) * natts);
			memcpy(nulls + (Size)nrows * natts, nulls + (Size)i * natts, sizeof(bool) * natts);
		}
		rowmsg[nrows++] = i;
	}

	rows.desc = stream->desc;
	rows.natts = natts;
	rows.nrows = nrows;
	rows.values = values;
	rows.nulls = nulls;
	rows.first = 0;
	rows.count = nrows;

	if (nrows > 0)
	{
		streamproc_source_rows = &rows;
		foreach (lc, stream->views)
		{
			WView *view = lfirst(lc);
			List *pending = NIL;
			ErrorData *edata = NULL;
			Datum cutoff = TimestampTzGetDatum(view->cutoff);

			if (view->kind != 'a')
				continue;
			/* Windowed views skip the late events: $1 is the cutoff. */
			if (worker_run_in_subxact(view, view->source_plan, &cutoff, " ", &pending, &edata))
				store_results(view, pending);
			else
			{
				for (i = 0; i < nrows; i++)
				{
					pending = NIL;
					edata = NULL;
					rows.first = i;
					rows.count = 1;
					if (worker_run_in_subxact(view, view->source_plan, &cutoff, " ", &pending, &edata))
						store_results(view, pending);
					else
						worker_record_kafka_failure(src, view, worker_kafka_msgs[rowmsg[i]], edata->sqlerrcode,
													edata->message ? edata->message : "", edata->detail);
				}
				rows.first = 0;
				rows.count = nrows;
			}
			view->events += nrows;
			if (view->window.kind != 0 && view->window.kind != WINDOW_COUNT)
				worker_source_late_events(stream, src, view, &rows, rowmsg);
		}
		streamproc_source_rows = NULL;
		if (stream->has_append)
			keep_pending_rows(stream, src, &rows, worker_kafka_msgs, rowmsg);
	}

	if (stream->event_time != InvalidAttrNumber)
		worker_note_event_times(stream, src, &rows, n, rowmsg);

	MemoryContextSwitchTo(old);
	SPI_finish();
	PopActiveSnapshot();
	CommitTransactionCommand();

	streamproc_kafka_consumed(src, worker_kafka_msgs, n);
	MemoryContextReset(worker_batch_cxt);
	publish_view_stats(stream);
	return n;
}

/* Row i of rows as JSON text (row_to_json), for streamproc.errors. */
char *
worker_row_as_json(WStream *stream, SourceRows *rows, int i)
{
	TupleDesc desc = CreateTupleDescCopy(stream->desc);
	HeapTuple tuple;

	desc = BlessTupleDesc(desc);
	tuple = heap_form_tuple(desc, rows->values + (Size)i * rows->natts,
							rows->nulls + (Size)i * rows->natts);
	return text_to_cstring(DatumGetTextPP(DirectFunctionCall1(row_to_json,
															  HeapTupleGetDatum(tuple))));
}

/*
 * checkpoint_pending_rows
 *		In the checkpoint: append the Kafka rows kept for an append-only view
 *		(row by row after a failure, like the log's).
 */
static void
checkpoint_pending_rows(WStream *stream, WView *view)
{
	SourceRows *p = &stream->pending;
	ErrorData *edata = NULL;
	int i;

	if (p->nrows == 0)
		return;
	p->first = 0;
	p->count = p->nrows;
	streamproc_source_rows = p;
	if (worker_run_in_subxact(view, view->source_plan, NULL, NULL, NULL, &edata))
		view->events += view->appended;
	else
	{
		for (i = 0; i < p->nrows; i++)
		{
			edata = NULL;
			p->first = i;
			p->count = 1;
			if (worker_run_in_subxact(view, view->source_plan, NULL, NULL, NULL, &edata))
				view->events += view->appended;
			else
			{
				rd_kafka_message_t m;
				char *row = worker_row_as_json(stream, p, i);

				/*
				 * The payload is gone: the row's position identifies it, and
				 * the parsed row stands for the event.
				 */
				memset(&m, 0, sizeof(m));
				m.partition = stream->pending_partitions[i];
				m.offset = stream->pending_offsets[i];
				m.payload = row;
				m.len = strlen(row);
				worker_record_kafka_failure(stream->pending_sources[i], view, &m, edata->sqlerrcode,
											edata->message ? edata->message : "", edata->detail);
			}
		}
	}
	streamproc_source_rows = NULL;
}

/* ----------------------------------------------------------------
 * Checkpoint
 * ----------------------------------------------------------------
 */

static void
checkpoint_view_state(WView *view)
{
	HASH_SEQ_STATUS seq;
	DirtyKey *k;
	long n = hash_get_num_entries(view->dirty);
	Datum *keys;
	Datum *states;
	Datum *gone;
	int ngone = 0;
	int count = 0;
	Datum args[4];
	int ret;

	if (n == 0 && !view->rewrite_slots)
		return;

	keys = palloc(sizeof(Datum) * Max(n, 1));
	states = palloc(sizeof(Datum) * Max(n, 1));
	gone = palloc(sizeof(Datum) * Max(n, 1));
	hash_seq_init(&seq, view->dirty);
	while ((k = hash_seq_search(&seq)) != NULL)
	{
		bytea *state = streamproc_state_fetch(view->groups, k->bytes, k->len, worker_index);
		bytea *key;

		key = palloc(k->len + VARHDRSZ);
		SET_VARSIZE(key, k->len + VARHDRSZ);
		memcpy(VARDATA(key), k->bytes, k->len);
		if (state == NULL)
		{
			/* A session merged into another one: gone from our slot. */
			gone[ngone++] = PointerGetDatum(key);
			continue;
		}
		keys[count] = PointerGetDatum(key);
		states[count] = PointerGetDatum(state);
		count++;
	}

	if (ngone > 0)
	{
		args[0] = ObjectIdGetDatum(view->viewid);
		args[1] = Int32GetDatum(worker_index);
		args[2] = PointerGetDatum(construct_array(gone, ngone, BYTEAOID, -1, false, TYPALIGN_INT));
		ret = SPI_execute_with_args("DELETE FROM streamproc.view_state WHERE view = $1 AND slot = $2 AND key = ANY ($3)",
									3, (Oid[]){OIDOID, INT4OID, BYTEAARRAYOID}, args, NULL, false, 0);
		if (ret != SPI_OK_DELETE)
			elog(ERROR, "could not write streamproc.view_state: %s", SPI_result_code_string(ret));
	}

	if (view->rewrite_slots)
	{
		args[0] = ObjectIdGetDatum(view->viewid);
		args[1] = Int32GetDatum(streamproc_workers);
		ret = SPI_execute_with_args("DELETE FROM streamproc.view_state WHERE view = $1 AND slot >= $2",
									2, (Oid[]){OIDOID, INT4OID}, args, NULL, false, 0);
		if (ret != SPI_OK_DELETE)
			elog(ERROR, "could not rewrite streamproc.view_state: %s", SPI_result_code_string(ret));
	}

	args[0] = ObjectIdGetDatum(view->viewid);
	args[1] = Int32GetDatum(worker_index);
	args[2] = PointerGetDatum(construct_array(keys, count, BYTEAOID, -1, false, TYPALIGN_INT));
	args[3] = PointerGetDatum(construct_array(states, count, BYTEAOID, -1, false, TYPALIGN_INT));
	worker_state_rows_written += count;
	ret = SPI_execute_with_args("INSERT INTO streamproc.view_state AS s (view, slot, key, state)"
								" SELECT $1, $2, u.k, u.s FROM ROWS FROM (pg_catalog.unnest($3::bytea[]), pg_catalog.unnest($4::bytea[])) AS u(k, s)"
								" ON CONFLICT (view, slot, key) DO UPDATE SET state = excluded.state",
								4, (Oid[]){OIDOID, INT4OID, BYTEAARRAYOID, BYTEAARRAYOID},
								args, NULL, false, 0);
	if (ret != SPI_OK_INSERT)
		elog(ERROR, "could not write streamproc.view_state: %s", SPI_result_code_string(ret));
}

static void
checkpoint_failed_events(void)
{
	ListCell *lc;

	foreach (lc, failed_events)
	{
		FailedEvent *f = lfirst(lc);
		Datum args[11];
		char nulls[11];
		int ret;

		memset(nulls, ' ', sizeof(nulls));
		args[0] = CStringGetTextDatum(f->source);
		args[1] = ObjectIdGetDatum(f->viewid);
		nulls[1] = OidIsValid(f->viewid) ? ' ' : 'n';
		args[2] = CStringGetTextDatum(f->position);
		args[3] = f->event ? CStringGetTextDatum(f->event) : (Datum)0;
		nulls[3] = f->event ? ' ' : 'n';
		args[4] = CStringGetTextDatum(f->sqlstate);
		args[5] = CStringGetTextDatum(f->message);
		args[6] = f->detail ? CStringGetTextDatum(f->detail) : (Datum)0;
		nulls[6] = f->detail ? ' ' : 'n';
		args[7] = f->topic ? CStringGetTextDatum(f->topic) : (Datum)0;
		nulls[7] = f->topic ? ' ' : 'n';
		args[8] = Int32GetDatum(f->partition);
		nulls[8] = f->partition >= 0 ? ' ' : 'n';
		args[9] = Int64GetDatum(f->offset);
		nulls[9] = f->offset >= 0 ? ' ' : 'n';
		args[10] = f->key ? CStringGetTextDatum(f->key) : (Datum)0;
		nulls[10] = f->key ? ' ' : 'n';
		ret = SPI_execute_with_args("INSERT INTO streamproc.errors"
									" (source, view, position, event, sqlstate, message, detail,"
									" topic, partition, \"offset\", key)"
									" VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)",
									11, (Oid[]){TEXTOID, REGCLASSOID, TEXTOID, TEXTOID, TEXTOID, TEXTOID, TEXTOID, TEXTOID, INT4OID, INT8OID, TEXTOID},
									args, nulls, false, 0);
		if (ret != SPI_OK_INSERT)
			elog(ERROR, "could not write streamproc.errors: %s", SPI_result_code_string(ret));
	}
}

/*
 * trim_log
 *		Remove the log rows of a stream that the last batch consumed (those
 *		visible in its snapshot), in the checkpoint transaction.
 *
 * When nothing but consumed rows is left and no transaction is inserting
 * (we get the lock without waiting), TRUNCATE gives the space back at once,
 * as PgQ's table rotation does; the lock is held until the checkpoint
 * commits, a few milliseconds.  Otherwise DELETE, and autovacuum makes the
 * space reusable.  Only workers read logs, so TRUNCATE's MVCC caveat does
 * not apply.
 */
static void
trim_log(WStream *stream)
{
	Datum args[1];
	bool truncate = false;
	int ret;

	args[0] = stream->last_snapshot;
	if (ConditionalLockRelationOid(stream->logid, AccessExclusiveLock))
	{
		/*
		 * read_only = false: a new snapshot, taken now that we hold the
		 * lock, so it sees every row committed before nobody could insert
		 * any more.  The checkpoint's first snapshot may predate some.
		 */
		ret = SPI_execute_plan(stream->unconsumed_plan, args, NULL, false, 1);
		if (ret != SPI_OK_SELECT)
			elog(ERROR, "could not read stream log: %s", SPI_result_code_string(ret));
		truncate = (SPI_processed == 0);
	}

	if (truncate)
	{
		ret = SPI_execute(psprintf("TRUNCATE %s", stream->logname), false, 0);
		if (ret != SPI_OK_UTILITY)
			elog(ERROR, "could not truncate stream log: %s", SPI_result_code_string(ret));
	}
	else
	{
		ret = SPI_execute_plan(stream->delete_plan, args, NULL, false, 0);
		if (ret != SPI_OK_DELETE)
			elog(ERROR, "could not trim stream log: %s", SPI_result_code_string(ret));
		if (SPI_processed > 0)
			stream->vacuum_needed = true;
	}
}

/* Groups of the aggregating views we write (for vacuum_relation). */
static int64
my_groups(void)
{
	int64 groups = 0;
	ListCell *lc;

	LWLockAcquire(streamproc_state_lock(), LW_SHARED);
	foreach (lc, my_streams)
	{
		ListCell *vc;

		foreach (vc, ((WStream *)lfirst(lc))->views)
		{
			WView *view = lfirst(vc);

			if (view->kind == 'a' && view->shared != NULL)
				groups += view->shared->groups_count;
		}
	}
	LWLockRelease(streamproc_state_lock());
	return groups;
}

/*
 * vacuum_relation
 *		Lazy VACUUM of a table the checkpoints churn, so that the space is
 *		reused at once instead of at autovacuum's next visit (a minute
 *		away, by default):
 *		- a stream log after a checkpoint deleted rows from it: under
 *		  continuous inserts (when TRUNCATE cannot get its lock) the log
 *		  stays about the size of what arrives between two checkpoints;
 *		- streamproc.view_state once the checkpoints have rewritten about as
 *		  many rows as the worker's views have groups: every checkpoint
 *		  updates each changed group's row, and with 100,000 groups a
 *		  minute of checkpoints otherwise left hundreds of MB of dead rows.
 *		Called outside a transaction; vacuum() runs its own.  It skips the
 *		table if it cannot lock it without waiting.
 */
static void
vacuum_relation(Oid relid)
{
	VacuumParams params;
	MemoryContext vacuum_cxt;
	MemoryContext save_portal = PortalContext;
	MemoryContext old;
	List *rels;

	vacuum_cxt = AllocSetContextCreate(TopMemoryContext, "streamproc log vacuum",
									   ALLOCSET_DEFAULT_SIZES);
	old = MemoryContextSwitchTo(vacuum_cxt);
	rels = list_make1(makeVacuumRelation(NULL, relid, NIL));
	MemoryContextSwitchTo(old);

	memset(&params, 0, sizeof(params));
	params.options = VACOPT_VACUUM | VACOPT_SKIP_LOCKED;
	params.freeze_min_age = -1;
	params.freeze_table_age = -1;
	params.multixact_freeze_min_age = -1;
	params.multixact_freeze_table_age = -1;
	params.log_min_duration = -1;
	params.index_cleanup = VACOPTVALUE_AUTO;
	params.truncate = VACOPTVALUE_AUTO;
	params.nworkers = -1;

	/* vacuum() allocates under PortalContext, which a worker has not got. */
	PortalContext = vacuum_cxt;
	SetCurrentStatementStartTimestamp();
	StartTransactionCommand();
	vacuum(rels, &params, NULL, true);
	CommitTransactionCommand();
	PortalContext = save_portal;
	MemoryContextDelete(vacuum_cxt);
}

/*
 * worker_checkpoint
 *		Commit the changed state, the outputs of append-only views, the
 *		consumed log rows' removal and the failed events in one transaction.
 */
static void
worker_checkpoint(void)
{
	TimestampTz start = GetCurrentTimestamp();
	ListCell *lc;
	double elapsed_ms;

	SetCurrentStatementStartTimestamp();
	StartTransactionCommand();
	SPI_connect();
	PushActiveSnapshot(GetTransactionSnapshot());

	foreach (lc, my_streams)
	{
		WStream *stream = lfirst(lc);
		ListCell *vc;
		Datum args[2];
		char nulls[2] = {' ', 'n'};
		int ret;

		foreach (vc, stream->views)
		{
			WView *view = lfirst(vc);

			/* A view dropped since the catalog was loaded: nothing to keep. */
			args[0] = ObjectIdGetDatum(view->viewid);
			ret = SPI_execute_with_args("SELECT 1 FROM streamproc.views WHERE view = $1",
										1, (Oid[]){OIDOID}, args, NULL, false, 1);
			if (ret != SPI_OK_SELECT || SPI_processed == 0)
				continue;

			if (view->kind == 'a')
			{
				if (view->window.kind != 0)
				{
					worker_close_windows(view, &view->closing_mark, &view->closing_removed);
					worker_checkpoint_late_rows(stream, view);
				}
				checkpoint_view_state(view);
			}
			else
			{
				if (stream->owns_log && stream->last_snapshot)
				{
					ErrorData *edata = NULL;

					args[0] = stream->last_snapshot;
					args[1] = (Datum)0;
					if (worker_run_in_subxact(view, view->batch_plan, args, nulls, NULL, &edata))
						view->events += view->appended;
					else
						run_events_one_by_one(stream, view, args, nulls);
				}
				checkpoint_pending_rows(stream, view);
			}
		}

		/* A stream dropped since the catalog was loaded: nothing to trim. */
		args[0] = ObjectIdGetDatum(stream->streamid);
		ret = SPI_execute_with_args("SELECT 1 FROM streamproc.streams WHERE stream = $1",
									1, (Oid[]){OIDOID}, args, NULL, false, 1);
		if (ret != SPI_OK_SELECT || SPI_processed == 0)
			continue;

		if (stream->owns_log && stream->last_snapshot)
			trim_log(stream);
	}
	streamproc_kafka_checkpoint(my_sources);
	checkpoint_failed_events();

	SPI_finish();
	PopActiveSnapshot();
	CommitTransactionCommand();

	/* Committed: forget what it wrote, and vacuum what it deleted. */
	worker_checkpoint_needed = false;
	foreach (lc, my_streams)
	{
		WStream *stream = lfirst(lc);
		ListCell *vc;

		foreach (vc, stream->views)
		{
			WView *view = lfirst(vc);

			if (view->kind != 'a' || view->window.kind == 0)
				continue;
			worker_windows_closed(view, view->closing_mark, view->closing_removed);
			view->closing_mark = DT_NOBEGIN;
			view->closing_removed = NIL;
			MemoryContextReset(view->late_cxt);
			memset(&view->late, 0, sizeof(SourceRows));
			view->late_cap = 0;
		}
		publish_view_stats(stream);
	}
	MemoryContextReset(worker_batch_cxt);
	streamproc_kafka_checkpointed(my_sources);
	foreach (lc, my_streams)
	{
		WStream *stream = lfirst(lc);

		MemoryContextReset(stream->pending_cxt);
		stream->pending_cap = 0;
		stream->pending.nrows = 0;
		if (stream->vacuum_needed)
		{
			vacuum_relation(stream->logid);
			stream->vacuum_needed = false;
		}
	}
	if (OidIsValid(view_state_relid) &&
		worker_state_rows_written >= Max(STATE_VACUUM_MIN_ROWS, my_groups()))
	{
		vacuum_relation(view_state_relid);
		worker_state_rows_written = 0;
	}
	list_free_deep(failed_events);
	failed_events = NIL;
	elapsed_ms = (double)(GetCurrentTimestamp() - start) / 1000.0;
	elog(DEBUG1, "streamproc worker %d: checkpoint in %.1f ms", worker_index, elapsed_ms);
	last_checkpoint_ms = elapsed_ms;
	last_checkpoint = GetCurrentTimestamp();

	LWLockAcquire(streamproc_state_lock(), LW_EXCLUSIVE);
	foreach (lc, my_streams)
	{
		WStream *stream = lfirst(lc);
		ListCell *vc;

		foreach (vc, stream->views)
		{
			WView *view = lfirst(vc);

			if (view->kind == 'a')
			{
				hash_destroy(view->dirty);
				MemoryContextReset(view->dirty_cxt);
				view->dirty = dirty_create(view->dirty_cxt);
				view->rewrite_slots = false;
				if (view->shared)
				{
					view->shared->last_checkpoint = last_checkpoint;
					view->shared->last_checkpoint_ms = elapsed_ms;
					view->shared->errors += view->errors;
				}
				view->errors = 0;
			}
			else if (view->shared)
			{
				/* Append views: rows appended, written by this checkpoint. */
				view->shared->events += view->events;
				view->shared->errors += view->errors;
				view->shared->last_checkpoint = last_checkpoint;
				view->shared->last_checkpoint_ms = elapsed_ms;
				view->events = view->errors = 0;
			}
		}
	}
	LWLockRelease(streamproc_state_lock());
}
