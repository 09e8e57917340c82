/*-------------------------------------------------------------------------
 *
 * kafka.c
 *	  Kafka sources as inputs of the ingest workers: consumers, partition
 *	  assignment, positions, watermarks for sync(), statistics.
 *
 * A Kafka partition is one more replayable input of the engine.  The
 * worker that consumes it (worker.c) parses its messages in C (parse.c),
 * runs the stream's continuous views over the parsed rows in memory
 * (through streamproc._source_batch(), below) and merges the partial
 * states into its own state slot.  The partition's position (the offset of
 * the next message to process) lives in memory and is written to
 * streamproc.kafka_offsets by the worker's checkpoint, in the transaction
 * that writes the state it produced.  After any crash the state reloads
 * from the checkpoint and consumption resumes at the checkpointed
 * positions: no message is lost or counted twice.
 *
 * Assignment needs no consumer group.  A source with `workers` w is read by
 * the ingest workers base .. base + w - 1 (modulo streamproc.workers; base
 * is the worker that owns the stream's log, stream oid modulo
 * streamproc.workers), and partition p goes to the (p mod w)-th of them;
 * the consumers use rd_kafka_assign() with explicit offsets.  Each worker
 * reads the topic's metadata every few seconds and assigns the partitions
 * added since.  A partition seen for the first time starts at the source's
 * start_offset, resolved with one ListOffsets request and written to
 * kafka_offsets at once, so that a restart never resolves it again.
 * Messages below a partition's position (refetched after a reassignment)
 * are skipped.  With a group_id the positions are also committed to Kafka
 * after the database commit, for external lag tools only.
 *
 * Threads: librdkafka's threads never call PostgreSQL.  Its log lines go
 * to a log queue (log.queue) and its errors to the consumer queue; both are
 * served by the worker's own thread, whose callbacks only copy text into
 * the source; the worker turns them into log lines and statistics.  When
 * it has nothing to do, the worker waits for a message inside
 * rd_kafka_consume_batch_queue() on a consumer queue, for at most
 * KAFKA_WAIT_MAX ms at a time, and keeps the message it may get for the
 * next batch: a message wakes it at once.  (librdkafka 2.0's queue wake-up
 * events, io_event and cb_event, fire for barely one fetch response in
 * fifty, so waiting on the latch alone delayed every batch to its timeout
 * and ingestion ran at a fraction of the rate.)  During a broker outage librdkafka reconnects with its
 * own backoff; the worker retries metadata with an exponential backoff up
 * to 10 s, says once in the server log that the source is backing off and
 * once that it reconnected, and stat_sources shows the error meanwhile.
 *
 * Statistics: a fixed array of partition entries in shared memory, one per
 * (database, source, partition) being consumed.  Each entry is written by
 * the worker that consumes the partition and read by stat_sources, both
 * under KafkaShared.lock (a worker takes it once per batch, not per
 * message).
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"


#include "access/relation.h"
#include "access/xact.h"
#include "commands/dbcommands.h"
#include "catalog/pg_type.h"
#include "executor/spi.h"
#include "funcapi.h"
#include "mb/pg_wchar.h"
#include "miscadmin.h"
#include "pgstat.h"
#include "storage/lwlock.h"
#include "storage/shmem.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/jsonb.h"
#include "utils/memutils.h"
#include "utils/snapmgr.h"
#include "utils/timestamp.h"
#include "utils/tuplestore.h"

#include "kafka.h"
#include "parse.h"
#include "source.h"
#include "streamproc.h"

/* Partition entries in shared memory (stat_sources). */
#define KAFKA_MAX_PARTITION_STATS 4096
#define KAFKA_ERROR_LEN           256

/* Timeouts of the blocking librdkafka calls, in ms. */
#define KAFKA_METADATA_TIMEOUT 1000
#define KAFKA_OFFSETS_TIMEOUT  2000

/* Longest wait for a message inside librdkafka, in ms: the latch is not
 * looked at meanwhile, so this bounds the delay of sync() and shutdown. */
#define KAFKA_WAIT_MAX 20

/* A source says "is backing off" at most once in this many ms. */
#define KAFKA_BACKOFF_LOG_MS 10000

/* Metadata refresh while healthy, and the backoff bounds, in ms. */
#define KAFKA_METADATA_INTERVAL 5000
#define KAFKA_BACKOFF_MIN       250
#define KAFKA_BACKOFF_MAX       10000

/* librdkafka log lines kept between two drains. */
#define KAFKA_LOG_LINES 16

/*
 * message.max.bytes: room beside a message (key, headers, framing), and
 * librdkafka's default and upper bound; see message_max_bytes().
 */
#define KAFKA_MESSAGE_ROOM          (64 * 1024)
#define KAFKA_MESSAGE_MAX_BYTES_MIN 1000000
#define KAFKA_MESSAGE_MAX_BYTES_MAX 1000000000

typedef enum SourceState
{
	SOURCE_STARTING = 0,
	SOURCE_RUNNING,
	SOURCE_BACKING_OFF,
	SOURCE_ERROR
} SourceState;

static const char *const source_state_names[] = {"starting", "running", "backing off", "error"};

/* One consumed partition in shared memory; see the header comment. */
typedef struct PartitionStats
{
	bool in_use;
	Oid dbid;
	int worker;
	char source[NAMEDATALEN];
	int32 partition; /* -1: the source before any partition is known */
	int64 position;  /* next offset to process */
	int64 committed; /* in kafka_offsets, -1 if none */
	int64 high_watermark;
	int64 events;
	int64 bytes;
	int64 errors;
	double events_per_second;
	double bytes_per_second;
	SourceState state;
	char last_error[KAFKA_ERROR_LEN];
	TimestampTz last_error_at;
	TimestampTz last_checkpoint;
} PartitionStats;

typedef struct KafkaShared
{
	LWLock *lock;
	PartitionStats entries[KAFKA_MAX_PARTITION_STATS];
} KafkaShared;

static KafkaShared *kafka_shared = NULL;

/* A partition this worker consumes. */
typedef struct KafkaPartition
{
	int32 partition;
	int64 position;    /* next offset to process, -1 until resolved */
	int64 replay_from; /* refetching from here for views behind, or -1 */
	int64 next_fetch;  /* offset of the next message the consumer returns */
	int64 committed;   /* in kafka_offsets, -1 if none */
	int64 sync_target; /* high watermark the pending sync() waits for */
	int64 events;
	int64 bytes;
	int64 rate_events; /* events / bytes at the last rate update */
	int64 rate_bytes;
	double events_per_second;
	double bytes_per_second;
	bool out_of_range; /* the broker no longer has position: see reset_ranges */
	PartitionStats *stats;
	TimestampTz max_event_time; /* greatest event time processed (windows) */
	TimestampTz last_event;     /* when we last processed an event, or assigned it */
} KafkaPartition;

/*
 * Messages the broker deleted (retention) before we consumed them: written
 * to streamproc.errors by the checkpoint that commits the new position.
 */
typedef struct KafkaGap
{
	int32 partition;
	int64 from; /* first lost offset */
	int64 to;   /* last lost offset */
} KafkaGap;

struct KafkaSource
{
	char *name;
	char *signature; /* see streamproc_kafka_load */
	Oid stream;
	char *topic;
	char *brokers;
	char *group_id;
	Jsonb *options;
	StreamprocStartOffset start;
	int worker;  /* our ingest worker index */
	int member;  /* our index among the source's workers */
	int members; /* how many workers read it */
	StreamprocParser *parser;

	rd_kafka_t *rk;
	rd_kafka_queue_t *queue; /* the consumer queue */
	rd_kafka_queue_t *logq;

	int npartitions; /* ours, in parts */
	KafkaPartition *parts;
	int ncommitted; /* positions read from kafka_offsets at load */
	int32 *committed_partitions;
	int64 *committed_offsets;
	int nbehind; /* the least position of views behind, per partition */
	int32 *behind_partitions;
	int64 *behind_offsets;

	SourceState state;
	TimestampTz backoff_logged;   /* when "is backing off" was last logged */
	PartitionStats *source_stats; /* partition -1 entry until assigned */
	TimestampTz next_metadata;
	int backoff_ms;
	TimestampTz last_rate_update;
	uint64 sync_generation; /* sync_target is for this generation */
	TimestampTz next_sync_query;
	int64 errors; /* unpublished message errors */

	rd_kafka_message_t *stash; /* got while waiting, not processed yet */
	List *gaps;                /* KafkaGap *, until the checkpoint */

	/* Filled by librdkafka callbacks on the worker's thread. */
	char pending_error[KAFKA_ERROR_LEN];
	bool error_pending;
	bool fatal;
	int nlog;
	char log_lines[KAFKA_LOG_LINES][KAFKA_ERROR_LEN];
	int log_levels[KAFKA_LOG_LINES];
};

SourceRows *streamproc_source_rows = NULL;


/*
 * Scratch memory of the calls made outside a transaction (housekeeping,
 * fetch, sync), reset at each call so that a long run does not grow.
 */
static MemoryContext scratch_cxt = NULL;

static MemoryContext
scratch_begin(void)
{
	if (scratch_cxt == NULL)
		scratch_cxt = AllocSetContextCreate(TopMemoryContext, "streamproc Kafka scratch",
											ALLOCSET_SMALL_SIZES);
	else
		MemoryContextReset(scratch_cxt);
	return MemoryContextSwitchTo(scratch_cxt);
}

static void source_start(KafkaSource *src);
static StreamprocParser *create_parser(KafkaSource *src, StreamprocFormat format,
									   StreamprocParserOptions *popts, MemoryContext cxt);
static void source_set_state(KafkaSource *src, SourceState state, const char *error);

/* ----------------------------------------------------------------
 * Shared memory
 * ----------------------------------------------------------------
 */

Size
streamproc_kafka_shmem_size(void)
{
	return MAXALIGN(sizeof(KafkaShared));
}

void
streamproc_kafka_shmem_init(void)
{
	bool found;

	kafka_shared = ShmemInitStruct("streamproc kafka sources",
								   streamproc_kafka_shmem_size(), &found);
	if (!found)
	{
		memset(kafka_shared, 0, streamproc_kafka_shmem_size());
		kafka_shared->lock = &(GetNamedLWLockTranche("streamproc"))[2].lock;
	}
}

/* Claim (or find again) the entry of (source, partition); NULL when full. */
static PartitionStats *
stats_claim(KafkaSource *src, int32 partition, int worker)
{
	PartitionStats *unused = NULL;
	PartitionStats *released = NULL;
	PartitionStats *e = NULL;
	int i;

	/*
	 * The entry this (source, partition) had, in use or released by a
	 * catalog reload, keeps its counters; otherwise a never used entry, or
	 * one released by another partition.
	 */
	LWLockAcquire(kafka_shared->lock, LW_EXCLUSIVE);
	for (i = 0; i < KAFKA_MAX_PARTITION_STATS; i++)
	{
		PartitionStats *s = &kafka_shared->entries[i];

		if (s->dbid == MyDatabaseId && s->partition == partition &&
			(partition >= 0 || s->worker == worker) &&
			strcmp(s->source, src->name) == 0)
		{
			e = s;
			break;
		}
		if (!s->in_use && s->dbid == InvalidOid && unused == NULL)
			unused = s;
		else if (!s->in_use && released == NULL)
			released = s;
	}
	if (e == NULL && (unused != NULL || released != NULL))
	{
		e = unused ? unused : released;
		memset(e, 0, sizeof(PartitionStats));
		e->dbid = MyDatabaseId;
		strlcpy(e->source, src->name, NAMEDATALEN);
		e->partition = partition;
		e->committed = -1;
		e->high_watermark = -1;
		e->position = -1;
	}
	if (e != NULL)
		e->in_use = true;
	if (e != NULL)
	{
		e->worker = worker;
		e->state = src->state;
	}
	LWLockRelease(kafka_shared->lock);
	if (e == NULL)
		ereport(LOG,
				(errmsg("streamproc: no room for the statistics of Kafka source \"%s\" partition %d",
						src->name, partition),
				 errdetail("stat_sources shows at most %d partitions.", KAFKA_MAX_PARTITION_STATS)));
	return e;
}

/* Free an entry, unless it has been taken over (the partition moved). */
static void
stats_release(KafkaSource *src, PartitionStats *e, int32 partition)
{
	if (e == NULL)
		return;
	LWLockAcquire(kafka_shared->lock, LW_EXCLUSIVE);
	if (e->in_use && e->dbid == MyDatabaseId && e->partition == partition &&
		e->worker == src->worker && strcmp(e->source, src->name) == 0)
		e->in_use = false;
	LWLockRelease(kafka_shared->lock);
}

/* Publish the source's partitions; the caller holds no lock. */
static void
stats_publish(KafkaSource *src)
{
	int i;

	LWLockAcquire(kafka_shared->lock, LW_EXCLUSIVE);
	if (src->source_stats)
	{
		src->source_stats->state = src->state;
		src->source_stats->errors += src->errors;
		src->errors = 0;
	}
	for (i = 0; i < src->npartitions; i++)
	{
		KafkaPartition *p = &src->parts[i];
		PartitionStats *s = p->stats;

		if (s == NULL)
			continue;
		s->position = p->position;
		s->committed = p->committed;
		s->events = p->events;
		s->bytes = p->bytes;
		s->events_per_second = p->events_per_second;
		s->bytes_per_second = p->bytes_per_second;
		s->state = src->state;
		if (src->errors > 0 && i == 0)
		{
			s->errors += src->errors;
			src->errors = 0;
		}
	}
	LWLockRelease(kafka_shared->lock);
}

/* Record an error for every entry of the source. */
static void
stats_error(KafkaSource *src, const char *error)
{
	TimestampTz now = GetCurrentTimestamp();
	int i;

	LWLockAcquire(kafka_shared->lock, LW_EXCLUSIVE);
	if (src->source_stats)
	{
		strlcpy(src->source_stats->last_error, error, KAFKA_ERROR_LEN);
		src->source_stats->last_error_at = now;
	}
	for (i = 0; i < src->npartitions; i++)
	{
		if (src->parts[i].stats == NULL)
			continue;
		strlcpy(src->parts[i].stats->last_error, error, KAFKA_ERROR_LEN);
		src->parts[i].stats->last_error_at = now;
	}
	LWLockRelease(kafka_shared->lock);
}

/*
 * streamproc._source_stats(): the partition entries of the current
 * database, for the stat_sources view.
 */
PG_FUNCTION_INFO_V1(streamproc_source_stats);

Datum
streamproc_source_stats(PG_FUNCTION_ARGS)
{
	ReturnSetInfo *rsinfo = (ReturnSetInfo *)fcinfo->resultinfo;
	PartitionStats *copy;
	int n = 0;
	int i;

	streamproc_check_preloaded();
	InitMaterializedSRF(fcinfo, 0);

	copy = palloc(sizeof(PartitionStats) * KAFKA_MAX_PARTITION_STATS);
	LWLockAcquire(kafka_shared->lock, LW_SHARED);
	for (i = 0; i < KAFKA_MAX_PARTITION_STATS; i++)
		if (kafka_shared->entries[i].in_use &&
			kafka_shared->entries[i].dbid == MyDatabaseId)
			copy[n++] = kafka_shared->entries[i];
	LWLockRelease(kafka_shared->lock);

	for (i = 0; i < n; i++)
	{
		PartitionStats *s = &copy[i];
		Datum values[14];
		bool nulls[14];

		memset(nulls, false, sizeof(nulls));
		values[0] = CStringGetTextDatum(s->source);
		values[1] = Int32GetDatum(s->partition);
		nulls[1] = s->partition < 0;
		values[2] = Int32GetDatum(s->worker);
		values[3] = Int64GetDatum(s->committed);
		nulls[3] = s->committed < 0;
		values[4] = Int64GetDatum(s->position);
		nulls[4] = s->position < 0;
		values[5] = Int64GetDatum(s->high_watermark);
		nulls[5] = s->high_watermark < 0;
		values[6] = Int64GetDatum(s->events);
		values[7] = Int64GetDatum(s->bytes);
		values[8] = Float8GetDatum(s->events_per_second);
		values[9] = Float8GetDatum(s->bytes_per_second);
		values[10] = Int64GetDatum(s->errors);
		values[11] = CStringGetTextDatum(source_state_names[s->state]);
		values[12] = CStringGetTextDatum(s->last_error);
		nulls[12] = s->last_error[0] == '\0';
		values[13] = TimestampTzGetDatum(s->last_checkpoint);
		nulls[13] = s->last_checkpoint == 0;
		tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, values, nulls);
	}
	return (Datum)0;
}

/* ----------------------------------------------------------------
 * The in-memory batch: streamproc._source_batch()
 * ----------------------------------------------------------------
 */

PG_FUNCTION_INFO_V1(streamproc_source_batch);

/*
 * streamproc._source_batch()
 *		The rows of streamproc_source_rows the worker selected, with the
 *		columns the calling query's column definition list asks for,
 *		matched by name with the stream's (the list was written when the
 *		view was created; columns added to the stream later are not in it).
 */
Datum
streamproc_source_batch(PG_FUNCTION_ARGS)
{
	ReturnSetInfo *rsinfo = (ReturnSetInfo *)fcinfo->resultinfo;
	SourceRows *rows = streamproc_source_rows;
	TupleDesc desc;
	int *map;
	Datum *values;
	bool *nulls;
	int i;
	int j;

	if (rows == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("streamproc._source_batch() can only be called by a streamproc ingest worker")));

	InitMaterializedSRF(fcinfo, MAT_SRF_USE_EXPECTED_DESC);
	desc = rsinfo->setDesc;

	map = palloc(sizeof(int) * Max(desc->natts, 1));
	for (i = 0; i < desc->natts; i++)
	{
		Form_pg_attribute want = TupleDescAttr(desc, i);

		map[i] = -1;
		for (j = 0; j < rows->natts; j++)
		{
			Form_pg_attribute have = TupleDescAttr(rows->desc, j);

			if (!have->attisdropped &&
				strcmp(NameStr(have->attname), NameStr(want->attname)) == 0)
			{
				if (have->atttypid != want->atttypid)
					ereport(ERROR,
							(errcode(ERRCODE_DATATYPE_MISMATCH),
							 errmsg("stream column \"%s\" changed type since the continuous view was created",
									NameStr(want->attname)),
							 errhint("Drop the continuous view and create it again.")));
				map[i] = j;
				break;
			}
		}
		if (map[i] < 0 && strcmp(NameStr(want->attname), "$none") != 0)
			ereport(ERROR,
					(errcode(ERRCODE_UNDEFINED_COLUMN),
					 errmsg("stream column \"%s\" no longer exists",
							NameStr(want->attname)),
					 errhint("Drop the continuous view and create it again.")));
	}

	values = palloc(sizeof(Datum) * Max(desc->natts, 1));
	nulls = palloc(sizeof(bool) * Max(desc->natts, 1));
	for (i = rows->first; i < rows->first + rows->count; i++)
	{
		Datum *rv = rows->values + (Size)i * rows->natts;
		bool *rn = rows->nulls + (Size)i * rows->natts;

		if (rows->skip != NULL && rows->skip[i])
			continue;

		for (j = 0; j < desc->natts; j++)
		{
			values[j] = map[j] >= 0 ? rv[map[j]] : (Datum)0;
			nulls[j] = map[j] >= 0 ? rn[map[j]] : true;
		}
		tuplestore_putvalues(rsinfo->setResult, desc, values, nulls);
	}
	return (Datum)0;
}

/* ----------------------------------------------------------------
 * librdkafka callbacks: the worker's thread, no PostgreSQL calls
 * ----------------------------------------------------------------
 */

static void
error_cb(rd_kafka_t *rk, int err, const char *reason, void *opaque)
{
	KafkaSource *src = opaque;

	snprintf(src->pending_error, KAFKA_ERROR_LEN, "%s: %s",
			 rd_kafka_err2name((rd_kafka_resp_err_t)err), reason);
	src->error_pending = true;
	if (err == RD_KAFKA_RESP_ERR__FATAL)
		src->fatal = true;
}

static void
log_cb(const rd_kafka_t *rk, int level, const char *fac, const char *buf)
{
	KafkaSource *src = rd_kafka_opaque(rk);

	if (src == NULL || src->nlog >= KAFKA_LOG_LINES)
		return;
	snprintf(src->log_lines[src->nlog], KAFKA_ERROR_LEN, "%s: %s", fac, buf);
	src->log_levels[src->nlog] = level;
	src->nlog++;
}

/* ----------------------------------------------------------------
 * Loading and starting
 * ----------------------------------------------------------------
 */

/*
 * streamproc_kafka_wait
 *		Wait up to timeout_ms for a message of a source that has partitions,
 *		inside librdkafka (see the header comment); the message is kept for
 *		the next fetch.  Returns false, without waiting, when no source can
 *		deliver anything.
 */
bool
streamproc_kafka_wait(List *sources, long timeout_ms)
{
	ListCell *lc;

	foreach (lc, sources)
	{
		KafkaSource *src = lfirst(lc);
		ssize_t n;

		if (src->rk == NULL || src->npartitions == 0)
			continue;
		if (src->stash != NULL)
			return true; /* something to do already */
		pgstat_report_wait_start(PG_WAIT_EXTENSION);
		n = rd_kafka_consume_batch_queue(src->queue, (int)Min(timeout_ms, KAFKA_WAIT_MAX),
										 &src->stash, 1);
		pgstat_report_wait_end();
		if (n != 1)
			src->stash = NULL;
		return true;
	}
	return false;
}

/*
 * streamproc_kafka_load
 *		Read the sources this worker takes part in (see the header comment)
 *		and their committed positions, prepare their parsers, and start
 *		their consumers.
 */
List *
streamproc_kafka_load(List *old_sources, int worker, MemoryContext cxt)
{
	List *sources = NIL;
	SPITupleTable *tab;
	uint64 n;
	uint64 i;
	int ret;
	ListCell *lc;

	/*
	 * The signature changes with the source's row and the stream's
	 * relation (its columns, which the parser maps): an unchanged source
	 * keeps its consumer.
	 */
	ret = SPI_execute("SELECT s.name, s.stream::oid, s.topic, s.brokers, s.format, s.start_offset,"
					  " s.workers, s.options, s.format_options, s.group_id,"
					  " s.xmin::text || ':' || c.xmin::text || ':' || c.relnatts::text"
					  " FROM streamproc.sources s JOIN pg_catalog.pg_class c ON c.oid = s.stream"
					  " WHERE NOT s.paused ORDER BY s.name",
					  true, 0);
	if (ret != SPI_OK_SELECT)
		elog(ERROR, "could not read streamproc.sources: %s", SPI_result_code_string(ret));
	tab = SPI_tuptable;
	n = SPI_processed;

	for (i = 0; i < n; i++)
	{
		HeapTuple tup = tab->vals[i];
		TupleDesc desc = tab->tupdesc;
		bool isnull;
		Oid stream = DatumGetObjectId(SPI_getbinval(tup, desc, 2, &isnull));
		int base = (int)(stream % (Oid)streamproc_workers);
		int member = (worker - base + streamproc_workers) % streamproc_workers;

		int members = Min(DatumGetInt32(SPI_getbinval(tup, desc, 7, &isnull)),
						  streamproc_workers);
		MemoryContext old;
		MemoryContext scxt;
		KafkaSource *src;
		StreamprocFormat format;
		StreamprocParserOptions popts;
		Datum arg;
		uint64 k;

		if (member >= members)
			continue;

		/* Unchanged: keep it, consumer and positions. */
		src = NULL;
		foreach (lc, old_sources)
		{
			KafkaSource *o = lfirst(lc);

			if (strcmp(o->name, SPI_getvalue(tup, desc, 1)) == 0 &&
				strcmp(o->signature, SPI_getvalue(tup, desc, 11)) == 0)
			{
				src = o;
				old_sources = foreach_delete_current(old_sources, lc);
				break;
			}
		}
		if (src != NULL)
		{
			old = MemoryContextSwitchTo(cxt);
			sources = lappend(sources, src);
			MemoryContextSwitchTo(old);
			continue;
		}

		/* Each source in a context of its own: stopping it frees it all. */
		scxt = AllocSetContextCreate(cxt, "streamproc Kafka source", ALLOCSET_SMALL_SIZES);
		old = MemoryContextSwitchTo(scxt);
		src = palloc0(sizeof(KafkaSource));
		src->signature = SPI_getvalue(tup, desc, 11);
		src->name = SPI_getvalue(tup, desc, 1);
		src->stream = stream;
		src->topic = SPI_getvalue(tup, desc, 3);
		src->brokers = SPI_getvalue(tup, desc, 4);
		src->member = member;
		src->members = members;
		src->options = DatumGetJsonbPCopy(SPI_getbinval(tup, desc, 8, &isnull));
		src->group_id = SPI_getvalue(tup, desc, 10);
		streamproc_parse_start_offset(SPI_getvalue(tup, desc, 6), &src->start);
		if (!streamproc_format_from_name(SPI_getvalue(tup, desc, 5), &format))
			elog(ERROR, "Kafka source \"%s\" has an unknown format", src->name);
		memset(&popts, 0, sizeof(popts));
		streamproc_parser_options_from_jsonb(DatumGetJsonbP(SPI_getbinval(tup, desc, 9, &isnull)),
											 &popts);
		MemoryContextSwitchTo(old);
		src->worker = worker;
		src->source_stats = stats_claim(src, -1, worker);
		src->parser = create_parser(src, format, &popts, scxt);

		/* Committed positions. */
		arg = CStringGetTextDatum(src->name);
		ret = SPI_execute_with_args("SELECT partition, \"offset\" FROM streamproc.kafka_offsets"
									" WHERE source = $1",
									1, (Oid[]){TEXTOID}, &arg, NULL, true, 0);
		if (ret != SPI_OK_SELECT)
			elog(ERROR, "could not read streamproc.kafka_offsets: %s", SPI_result_code_string(ret));
		old = MemoryContextSwitchTo(scxt);
		src->ncommitted = (int)SPI_processed;
		src->committed_partitions = palloc(sizeof(int32) * Max(SPI_processed, 1));
		src->committed_offsets = palloc(sizeof(int64) * Max(SPI_processed, 1));
		for (k = 0; k < SPI_processed; k++)
		{
			src->committed_partitions[k] =
				DatumGetInt32(SPI_getbinval(SPI_tuptable->vals[k], SPI_tuptable->tupdesc, 1, &isnull));
			src->committed_offsets[k] =
				DatumGetInt64(SPI_getbinval(SPI_tuptable->vals[k], SPI_tuptable->tupdesc, 2, &isnull));
		}
		MemoryContextSwitchTo(old);
		SPI_freetuptable(SPI_tuptable);

		/* Views behind the source (positions.c): where they need to start. */
		arg = CStringGetTextDatum(psprintf("kafka %s ", src->name));
		ret = SPI_execute_with_args("SELECT pg_catalog.substring(input, '([0-9]+)$')::int4,"
									" pg_catalog.min(position::int8)"
									" FROM streamproc.positions"
									" WHERE pg_catalog.left(input, pg_catalog.length($1)) = $1"
									" GROUP BY 1",
									1, (Oid[]){TEXTOID}, &arg, NULL, true, 0);
		if (ret != SPI_OK_SELECT)
			elog(ERROR, "could not read streamproc.positions: %s", SPI_result_code_string(ret));
		old = MemoryContextSwitchTo(scxt);
		src->nbehind = (int)SPI_processed;
		src->behind_partitions = palloc(sizeof(int32) * Max(SPI_processed, 1));
		src->behind_offsets = palloc(sizeof(int64) * Max(SPI_processed, 1));
		for (k = 0; k < SPI_processed; k++)
		{
			src->behind_partitions[k] =
				DatumGetInt32(SPI_getbinval(SPI_tuptable->vals[k], SPI_tuptable->tupdesc, 1, &isnull));
			src->behind_offsets[k] =
				DatumGetInt64(SPI_getbinval(SPI_tuptable->vals[k], SPI_tuptable->tupdesc, 2, &isnull));
		}
		MemoryContextSwitchTo(old);
		SPI_freetuptable(SPI_tuptable);

		if (src->parser != NULL)
			source_start(src);
		old = MemoryContextSwitchTo(cxt);
		sources = lappend(sources, src);
		MemoryContextSwitchTo(old);
	}
	SPI_freetuptable(tab);

	/* What is left changed or went away. */
	streamproc_kafka_stop(old_sources);
	return sources;
}

/*
 * The source's parser for the stream's current columns.  If the stream
 * changed so that the source's format options no longer fit (a mapped
 * column dropped), the source goes to the error state instead of stopping
 * the worker's other inputs; recreating the source fixes it.
 */
static StreamprocParser *
create_parser(KafkaSource *src, StreamprocFormat format,
			  StreamprocParserOptions *popts, MemoryContext cxt)
{
	MemoryContext oldcxt = CurrentMemoryContext;
	ResourceOwner oldowner = CurrentResourceOwner;
	StreamprocParser *parser = NULL;

	BeginInternalSubTransaction(NULL);
	MemoryContextSwitchTo(oldcxt);
	PG_TRY();
	{
		Relation rel = relation_open(src->stream, AccessShareLock);

		parser = streamproc_parser_create(rel, format, popts, cxt);
		relation_close(rel, AccessShareLock);
		ReleaseCurrentSubTransaction();
		MemoryContextSwitchTo(oldcxt);
		CurrentResourceOwner = oldowner;
	}
	PG_CATCH();
	{
		ErrorData *edata;

		MemoryContextSwitchTo(oldcxt);
		edata = CopyErrorData();
		FlushErrorState();
		RollbackAndReleaseCurrentSubTransaction();
		MemoryContextSwitchTo(oldcxt);
		CurrentResourceOwner = oldowner;
		ereport(LOG,
				(errmsg("streamproc: Kafka source \"%s\" does not fit its stream any more: %s",
						src->name, edata->message),
				 errhint("Drop the source and create it again with format options that match the stream's columns.")));
		source_set_state(src, SOURCE_ERROR,
						 psprintf("does not fit its stream: %s", edata->message));
		parser = NULL;
	}
	PG_END_TRY();
	return parser;
}

/* Set a configuration value that streamproc controls; cannot fail. */
static void
conf_set(rd_kafka_conf_t *conf, const char *key, const char *value)
{
	char errstr[256];

	if (rd_kafka_conf_set(conf, key, value, errstr, sizeof(errstr)) != RD_KAFKA_CONF_OK)
		elog(ERROR, "could not set Kafka option \"%s\": %s", key, errstr);
}

/*
 * Fetch sizes for the source's largest message (docs/operations.md).  Of
 * librdkafka's consumer limits, only two are hard: receive.message.max.bytes
 * bounds a fetch response (100 MB by default) and message.max.bytes a
 * decompressed zstd batch (1 MB by default).  fetch.max.bytes and
 * max.partition.fetch.bytes are soft: brokers return the first batch of a
 * partition whatever its size (KIP-74).  Setting message.max.bytes to the
 * parser's limit plus room for the key, headers and framing is enough:
 * unless the options set them, librdkafka raises fetch.max.bytes to it and
 * receive.message.max.bytes to fetch.max.bytes + 512.  It is set before
 * the options, which may override it; when they set fetch.max.bytes or
 * receive.message.max.bytes (and not message.max.bytes) too low for it,
 * message.max.bytes follows them down, since librdkafka refuses a consumer
 * whose fetch.max.bytes is below message.max.bytes or whose
 * receive.message.max.bytes is below fetch.max.bytes + 512.  The size comes
 * from the limit in force when the consumer starts.
 */
static int
message_max_bytes(KafkaSource *src)
{
	int64 bytes = (int64)streamproc_parser_max_message_bytes(src->parser) + KAFKA_MESSAGE_ROOM;

	return (int)Min(Max(bytes, KAFKA_MESSAGE_MAX_BYTES_MIN), KAFKA_MESSAGE_MAX_BYTES_MAX);
}

/* Does the source's options object have this key? */
static bool
options_have(Jsonb *options, const char *key)
{
	JsonbValue v;

	return options != NULL && JB_ROOT_IS_OBJECT(options) &&
		   getKeyJsonValueFromContainer(&options->root, key, strlen(key), &v) != NULL;
}

/*
 * After the options: message.max.bytes follows a lower fetch.max.bytes, or
 * receive.message.max.bytes - 512, that they set (see above), unless they
 * set message.max.bytes too.  A value librdkafka refuses is left to
 * rd_kafka_new() to report, as it did before.
 */
static void
limit_message_max_bytes(rd_kafka_conf_t *conf, KafkaSource *src)
{
	static const struct
	{
		const char *key;
		int room;
	} caps[] = {{"fetch.max.bytes", 0}, {"receive.message.max.bytes", 512}};
	int64 limit = message_max_bytes(src);
	int i;

	if (options_have(src->options, "message.max.bytes"))
		return;
	for (i = 0; i < lengthof(caps); i++)
	{
		char value[32];
		size_t len = sizeof(value);

		if (options_have(src->options, caps[i].key) &&
			rd_kafka_conf_get(conf, caps[i].key, value, &len) == RD_KAFKA_CONF_OK)
			limit = Min(limit, strtoll(value, NULL, 10) - caps[i].room);
	}
	if (limit < message_max_bytes(src))
	{
		char errstr[256];

		(void)rd_kafka_conf_set(conf, "message.max.bytes", psprintf(INT64_FORMAT, limit), errstr,
								sizeof(errstr));
	}
}

/*
 * source_start
 *		Create the consumer.  Failures (an option librdkafka no longer
 *		accepts) put the source in the error state; they do not stop the
 *		worker's other inputs.
 */
static void
source_start(KafkaSource *src)
{
	rd_kafka_conf_t *conf = rd_kafka_conf_new();
	char errbuf[512];
	char *group;

	ereport(LOG,
			(errmsg("streamproc worker %d starts a consumer of Kafka source \"%s\" (topic \"%s\")",
					src->worker, src->name, src->topic)));

	/* Defaults the source's options may override. */
	conf_set(conf, "client.id", psprintf("streamproc-%s", src->name));
	conf_set(conf, "fetch.wait.max.ms", "50");

	/*
	 * librdkafka 2.0 compares queued.min.messages with the whole consumer
	 * queue (every partition's messages are forwarded to it) and backs a
	 * partition's fetching off once it is exceeded: with 64 partitions the
	 * default of 100000 stalled ingestion at 140k events/s where this gives
	 * 950k (bench/kafka_ingest.sh).  Memory stays bounded by
	 * queued.max.messages.kbytes.
	 */
	conf_set(conf, "queued.min.messages", "1000000");
	conf_set(conf, "queued.max.messages.kbytes", "65536");
	conf_set(conf, "socket.keepalive.enable", "true");
	conf_set(conf, "message.max.bytes", psprintf("%d", message_max_bytes(src)));
	if (!streamproc_kafka_conf_apply(conf, src->options, errbuf, sizeof(errbuf)))
	{
		rd_kafka_conf_destroy(conf);
		source_set_state(src, SOURCE_ERROR, errbuf);
		return;
	}
	limit_message_max_bytes(conf, src);

	/* What streamproc controls. */
	group = src->group_id ? src->group_id
						  : psprintf("streamproc-%s-%s", get_database_name(MyDatabaseId), src->name);
	conf_set(conf, "bootstrap.servers", src->brokers);
	conf_set(conf, "group.id", group);
	conf_set(conf, "enable.auto.commit", "false");
	conf_set(conf, "enable.auto.offset.store", "false");
	conf_set(conf, "enable.partition.eof", "false");
	conf_set(conf, "auto.offset.reset", "error"); /* see reset_ranges() */
	conf_set(conf, "log.queue", "true");
	rd_kafka_conf_set_error_cb(conf, error_cb);
	rd_kafka_conf_set_log_cb(conf, log_cb);
	rd_kafka_conf_set_opaque(conf, src);

	src->rk = streamproc_kafka_new(RD_KAFKA_CONSUMER, conf, errbuf, sizeof(errbuf));
	if (src->rk == NULL)
	{
		rd_kafka_conf_destroy(conf);
		source_set_state(src, SOURCE_ERROR, streamproc_kafka_redact(errbuf, src->options));
		return;
	}
	src->logq = rd_kafka_queue_new(src->rk);
	rd_kafka_set_log_queue(src->rk, src->logq);
	rd_kafka_poll_set_consumer(src->rk);
	src->queue = rd_kafka_queue_get_consumer(src->rk);
	src->state = SOURCE_STARTING;
	src->next_metadata = 0;
	src->backoff_ms = KAFKA_BACKOFF_MIN;
	src->last_rate_update = GetCurrentTimestamp();
}

void
streamproc_kafka_stop(List *sources)
{
	ListCell *lc;

	foreach (lc, sources)
	{
		KafkaSource *src = lfirst(lc);
		int i;

		if (src->rk)
		{
			if (src->stash)
				rd_kafka_message_destroy(src->stash);
			src->stash = NULL;
			(void)rd_kafka_assign(src->rk, NULL);
			rd_kafka_queue_destroy(src->queue);
			rd_kafka_queue_destroy(src->logq);
			(void)rd_kafka_consumer_close(src->rk);
			rd_kafka_destroy(src->rk);
			src->rk = NULL;
		}
		for (i = 0; i < src->npartitions; i++)
			stats_release(src, src->parts[i].stats, src->parts[i].partition);
		stats_release(src, src->source_stats, -1);
		if (src->parser)
			streamproc_parser_destroy(src->parser);
		MemoryContextDelete(GetMemoryChunkContext(src));
	}
}

Oid
streamproc_kafka_stream(KafkaSource *src)
{
	return src->stream;
}

const char *
streamproc_kafka_name(KafkaSource *src)
{
	return src->name;
}

const char *
streamproc_kafka_topic(KafkaSource *src)
{
	return src->topic;
}

StreamprocParser *
streamproc_kafka_parser(KafkaSource *src)
{
	return src->parser;
}

/* ----------------------------------------------------------------
 * Housekeeping
 * ----------------------------------------------------------------
 */

static void
source_set_state(KafkaSource *src, SourceState state, const char *error)
{
	SourceState old = src->state;

	src->state = state;
	if (error)
		stats_error(src, error);
	if (state == old)
		return;
	/*
	 * Once per outage: messages fetched before it can still arrive after
	 * its first error and make the source running for a moment, so a second
	 * "backing off" within KAFKA_BACKOFF_LOG_MS of the first is left to
	 * stat_sources (t/091 saw backing off, running again, backing off within
	 * 1 ms).
	 */
	if (state == SOURCE_BACKING_OFF && src->backoff_logged != 0 &&
		!TimestampDifferenceExceeds(src->backoff_logged, GetCurrentTimestamp(), KAFKA_BACKOFF_LOG_MS))
	{
		stats_publish(src);
		return;
	}
	if (state == SOURCE_BACKING_OFF)
		src->backoff_logged = GetCurrentTimestamp();
	if (state == SOURCE_BACKING_OFF || state == SOURCE_ERROR)
		ereport(LOG,
				(errmsg("streamproc: Kafka source \"%s\" is %s", src->name,
						source_state_names[state]),
				 error ? errdetail_internal("%s", error) : 0,
				 errhint("Consumption resumes by itself when the brokers are reachable; stat_sources shows the last error.")));
	else if (state == SOURCE_RUNNING &&
			 (old == SOURCE_BACKING_OFF || old == SOURCE_ERROR))
		ereport(LOG,
				(errmsg("streamproc: Kafka source \"%s\" is running again", src->name)));
	stats_publish(src);
}

/* Serve librdkafka's log queue and errors; only copies happen in callbacks. */
static void
source_drain_events(KafkaSource *src)
{
	int i;

	if (src->logq)
		while (rd_kafka_queue_poll_callback(src->logq, 0) > 0 && src->nlog < KAFKA_LOG_LINES)
			;
	for (i = 0; i < src->nlog; i++)
		ereport(src->log_levels[i] <= 3 ? DEBUG1 : DEBUG2,
				(errmsg_internal("streamproc: Kafka source \"%s\": %s", src->name, src->log_lines[i])));
	src->nlog = 0;

	if (src->error_pending)
	{
		src->error_pending = false;
		source_set_state(src, src->fatal ? SOURCE_ERROR : SOURCE_BACKING_OFF,
						 src->pending_error);
	}
}

/* The offset a partition seen for the first time starts at. */
static bool
resolve_start(KafkaSource *src, int n, int32 *partitions, int64 *offsets)
{
	rd_kafka_topic_partition_list_t *list = rd_kafka_topic_partition_list_new(n);
	rd_kafka_resp_err_t err;
	int i;
	bool ok = true;

	for (i = 0; i < n; i++)
	{
		int64 ts = RD_KAFKA_OFFSET_BEGINNING;
		int j;

		offsets[i] = -1;
		switch (src->start.kind)
		{
			case STREAMPROC_START_EARLIEST:
				break;
			case STREAMPROC_START_LATEST:
				ts = RD_KAFKA_OFFSET_END;
				break;
			case STREAMPROC_START_TIMESTAMP:
				ts = src->start.timestamp_ms;
				break;
			case STREAMPROC_START_OFFSETS:
				for (j = 0; j < src->start.npartitions; j++)
					if (src->start.partitions[j] == partitions[i])
						offsets[i] = src->start.offsets[j];
				break;
		}
		rd_kafka_topic_partition_list_add(list, src->topic, partitions[i])->offset = ts;
	}

	err = rd_kafka_offsets_for_times(src->rk, list, KAFKA_OFFSETS_TIMEOUT);
	if (err != RD_KAFKA_RESP_ERR_NO_ERROR)
	{
		source_set_state(src, SOURCE_BACKING_OFF,
						 psprintf("could not look up start offsets: %s", rd_kafka_err2str(err)));
		ok = false;
	}
	for (i = 0; ok && i < n; i++)
	{
		rd_kafka_topic_partition_t *tp = &list->elems[i];

		if (tp->err != RD_KAFKA_RESP_ERR_NO_ERROR)
		{
			source_set_state(src, SOURCE_BACKING_OFF,
							 psprintf("could not look up the start offset of partition %d: %s",
									  partitions[i], rd_kafka_err2str(tp->err)));
			ok = false;
		}
		else if (offsets[i] < 0)
			offsets[i] = tp->offset;
	}
	rd_kafka_topic_partition_list_destroy(list);

	/* A timestamp after the last message: start at the end. */
	if (ok && src->start.kind == STREAMPROC_START_TIMESTAMP)
	{
		for (i = 0; i < n; i++)
		{
			int64 low;
			int64 high;

			if (offsets[i] >= 0)
				continue;
			err = rd_kafka_query_watermark_offsets(src->rk, src->topic, partitions[i],
												   &low, &high, KAFKA_OFFSETS_TIMEOUT);
			if (err != RD_KAFKA_RESP_ERR_NO_ERROR)
				return false;
			offsets[i] = high;
		}
	}
	return ok;
}

/*
 * Lock a source's catalog row against drop_kafka_source() until the
 * transaction ends; false when the source is gone (nothing left to keep).
 */
static bool
lock_source_row(KafkaSource *src)
{
	Datum arg = CStringGetTextDatum(src->name);
	int ret;

	ret = SPI_execute_with_args("SELECT 1 FROM streamproc.sources WHERE name = $1 FOR KEY SHARE",
								1, (Oid[]){TEXTOID}, &arg, NULL, false, 1);
	if (ret != SPI_OK_SELECT)
		elog(ERROR, "could not lock streamproc.sources: %s", SPI_result_code_string(ret));
	return SPI_processed > 0;
}

/*
 * Write n partitions' positions (int4 and int8 Datums) to kafka_offsets:
 * replacing the rows there (checkpoint), or only where there is none (start
 * positions, where a row written first wins).
 */
static void
write_offsets(KafkaSource *src, int n, Datum *partitions, Datum *offsets,
			  bool overwrite)
{
	Datum args[4];
	int ret;

	args[0] = CStringGetTextDatum(src->name);
	args[1] = CStringGetTextDatum(src->topic);
	args[2] = PointerGetDatum(construct_array(partitions, n, INT4OID, 4, true, TYPALIGN_INT));
	args[3] = PointerGetDatum(construct_array(offsets, n, INT8OID, 8, FLOAT8PASSBYVAL, TYPALIGN_DOUBLE));
	ret = SPI_execute_with_args(psprintf("INSERT INTO streamproc.kafka_offsets (source, topic, partition, \"offset\")"
										 " SELECT $1, $2, u.p, u.o"
										 " FROM ROWS FROM (pg_catalog.unnest($3::int4[]), pg_catalog.unnest($4::int8[])) AS u(p, o)"
										 " ON CONFLICT (source, partition) DO %s",
										 overwrite ? "UPDATE SET \"offset\" = excluded.\"offset\", topic = excluded.topic,"
													 " updated_at = pg_catalog.now()"
												   : "NOTHING"),
								4, (Oid[]){TEXTOID, TEXTOID, INT4ARRAYOID, INT8ARRAYOID},
								args, NULL, false, 0);
	if (ret != SPI_OK_INSERT)
		elog(ERROR, "could not write streamproc.kafka_offsets: %s", SPI_result_code_string(ret));
}

/*
 * Write the start positions of new partitions, unless another process
 * did (the row wins).  Returns false when the source is gone.
 */
static bool
persist_start(KafkaSource *src, int n, int32 *partitions, int64 *offsets)
{
	Datum args[2];
	Datum *p = palloc(sizeof(Datum) * n);
	Datum *o = palloc(sizeof(Datum) * n);
	bool exists;
	int ret;
	int i;

	for (i = 0; i < n; i++)
	{
		p[i] = Int32GetDatum(partitions[i]);
		o[i] = Int64GetDatum(offsets[i]);
	}

	SetCurrentStatementStartTimestamp();
	StartTransactionCommand();
	SPI_connect();
	PushActiveSnapshot(GetTransactionSnapshot());
	exists = lock_source_row(src);
	if (exists)
	{
		write_offsets(src, n, p, o, false);

		/* Read back: a row written before ours wins. */
		args[0] = CStringGetTextDatum(src->name);
		args[1] = PointerGetDatum(construct_array(p, n, INT4OID, 4, true, TYPALIGN_INT));
		ret = SPI_execute_with_args("SELECT partition, \"offset\" FROM streamproc.kafka_offsets"
									" WHERE source = $1 AND partition = ANY ($2::int4[])",
									2, (Oid[]){TEXTOID, INT4ARRAYOID}, args, NULL, false, 0);
		if (ret != SPI_OK_SELECT)
			elog(ERROR, "could not read streamproc.kafka_offsets: %s", SPI_result_code_string(ret));
		for (i = 0; i < (int)SPI_processed; i++)
		{
			bool isnull;
			int32 part = DatumGetInt32(SPI_getbinval(SPI_tuptable->vals[i], SPI_tuptable->tupdesc, 1, &isnull));
			int64 off = DatumGetInt64(SPI_getbinval(SPI_tuptable->vals[i], SPI_tuptable->tupdesc, 2, &isnull));
			int j;

			for (j = 0; j < n; j++)
				if (partitions[j] == part)
					offsets[j] = off;
		}
	}
	SPI_finish();
	PopActiveSnapshot();
	CommitTransactionCommand();
	return exists;
}

/*
 * Assign every partition we own, each at its position (rd_kafka_assign
 * replaces the whole assignment).  False, with the error state, if
 * librdkafka refuses.
 */
static bool
assign_all(KafkaSource *src)
{
	rd_kafka_topic_partition_list_t *list = rd_kafka_topic_partition_list_new(src->npartitions);
	rd_kafka_resp_err_t err;
	int i;

	for (i = 0; i < src->npartitions; i++)
	{
		KafkaPartition *p = &src->parts[i];

		p->next_fetch = p->replay_from >= 0 ? p->replay_from : p->position;
		rd_kafka_topic_partition_list_add(list, src->topic, p->partition)->offset = p->next_fetch;
	}
	err = rd_kafka_assign(src->rk, list);
	rd_kafka_topic_partition_list_destroy(list);
	if (err != RD_KAFKA_RESP_ERR_NO_ERROR)
	{
		source_set_state(src, SOURCE_ERROR,
						 psprintf("could not assign partitions: %s", rd_kafka_err2str(err)));
		return false;
	}
	return true;
}

/*
 * Read the topic's partition count and assign the partitions we own that
 * are not assigned yet.  Returns false on failure (backoff).
 */
static bool
source_assign(KafkaSource *src)
{
	const struct rd_kafka_metadata *md = NULL;
	rd_kafka_topic_t *rkt;
	rd_kafka_resp_err_t err;
	int count;
	int nnew = 0;
	int32 *newparts;
	int64 *newoffs;
	int nresolve = 0;
	int32 *rparts;
	int64 *roffs;
	int i;

	rkt = rd_kafka_topic_new(src->rk, src->topic, NULL);
	if (rkt == NULL)
	{
		source_set_state(src, SOURCE_ERROR,
						 psprintf("could not create topic handle: %s",
								  rd_kafka_err2str(rd_kafka_last_error())));
		return false;
	}
	err = rd_kafka_metadata(src->rk, 0, rkt, &md, KAFKA_METADATA_TIMEOUT);
	rd_kafka_topic_destroy(rkt);
	if (err != RD_KAFKA_RESP_ERR_NO_ERROR)
	{
		source_set_state(src, SOURCE_BACKING_OFF,
						 psprintf("could not read the metadata of topic \"%s\": %s",
								  src->topic, rd_kafka_err2str(err)));
		return false;
	}
	if (md->topic_cnt != 1 || md->topics[0].err != RD_KAFKA_RESP_ERR_NO_ERROR)
	{
		rd_kafka_resp_err_t terr = md->topic_cnt == 1 ? md->topics[0].err
													  : RD_KAFKA_RESP_ERR_UNKNOWN_TOPIC_OR_PART;

		rd_kafka_metadata_destroy(md);
		source_set_state(src, SOURCE_BACKING_OFF,
						 psprintf("topic \"%s\": %s", src->topic, rd_kafka_err2str(terr)));
		return false;
	}
	count = md->topics[0].partition_cnt;
	rd_kafka_metadata_destroy(md);

	/* Ours among 0 .. count - 1, not yet known. */
	newparts = palloc(sizeof(int32) * Max(count, 1));
	newoffs = palloc(sizeof(int64) * Max(count, 1));
	rparts = palloc(sizeof(int32) * Max(count, 1));
	roffs = palloc(sizeof(int64) * Max(count, 1));
	for (i = 0; i < count; i++)
	{
		bool known = false;
		int j;

		if (i % src->members != src->member)
			continue;
		for (j = 0; j < src->npartitions; j++)
			if (src->parts[j].partition == i)
				known = true;
		if (known)
			continue;
		newparts[nnew] = i;
		newoffs[nnew] = -1;
		for (j = 0; j < src->ncommitted; j++)
			if (src->committed_partitions[j] == i)
				newoffs[nnew] = src->committed_offsets[j];
		if (newoffs[nnew] < 0)
			rparts[nresolve++] = i;
		nnew++;
	}
	if (nnew == 0)
	{
		if (src->state != SOURCE_RUNNING)
			source_set_state(src, SOURCE_RUNNING, NULL);
		return true;
	}

	if (nresolve > 0)
	{
		int j;

		if (!resolve_start(src, nresolve, rparts, roffs))
			return false;
		if (!persist_start(src, nresolve, rparts, roffs))
			return true; /* dropped: the catalog reload follows */
		for (i = 0; i < nresolve; i++)
			for (j = 0; j < nnew; j++)
				if (newparts[j] == rparts[i])
					newoffs[j] = roffs[i];
	}

	/* Grow the partition array (in the source's context). */
	{
		MemoryContext old = MemoryContextSwitchTo(GetMemoryChunkContext(src));
		KafkaPartition *parts = palloc0(sizeof(KafkaPartition) * (src->npartitions + nnew));

		if (src->npartitions > 0)
			memcpy(parts, src->parts, sizeof(KafkaPartition) * src->npartitions);
		for (i = 0; i < nnew; i++)
		{
			KafkaPartition *p = &parts[src->npartitions + i];

			p->partition = newparts[i];
			p->position = newoffs[i];
			p->committed = newoffs[i];
			p->replay_from = -1;
			{
				int j;

				for (j = 0; j < src->nbehind; j++)
					if (src->behind_partitions[j] == p->partition &&
						src->behind_offsets[j] < p->position)
						p->replay_from = src->behind_offsets[j];
			}
			p->sync_target = -1;
			p->max_event_time = DT_NOBEGIN;
			p->last_event = GetCurrentTimestamp();
			p->stats = stats_claim(src, p->partition, src->worker);
			if (p->stats != NULL)
			{
				/* Counters survive catalog reloads (the entry is kept). */
				p->events = p->rate_events = p->stats->events;
				p->bytes = p->rate_bytes = p->stats->bytes;
				p->events_per_second = p->stats->events_per_second;
				p->bytes_per_second = p->stats->bytes_per_second;
			}
		}
		if (src->parts)
			pfree(src->parts);
		src->parts = parts;
		src->npartitions += nnew;
		MemoryContextSwitchTo(old);

		if (!assign_all(src))
			return false;
	}

	/* The source-level entry is replaced by the partitions'. */
	if (src->source_stats && src->npartitions > 0)
	{
		stats_release(src, src->source_stats, -1);
		src->source_stats = NULL;
	}
	source_set_state(src, SOURCE_RUNNING, NULL);
	stats_publish(src);
	return true;
}

/*
 * reset_ranges
 *		Partitions whose position the broker no longer has (auto.offset.reset
 *		is "error", so librdkafka stops and tells us): the messages between
 *		our position and the oldest one left were deleted by retention before
 *		we consumed them.  Say so in the server log (again if a crash comes
 *		before the checkpoint) and, with the checkpoint that commits the new
 *		position, exactly once in streamproc.errors;
 *		then go on from the oldest message left.  A position beyond the end
 *		(the topic was recreated) goes to the end.  Returns false on failure
 *		(backoff).
 */
static bool
reset_ranges(KafkaSource *src)
{
	bool reassign = false;
	int i;

	for (i = 0; i < src->npartitions; i++)
	{
		KafkaPartition *p = &src->parts[i];
		rd_kafka_resp_err_t err;
		int64 low;
		int64 high;

		if (!p->out_of_range)
			continue;
		err = rd_kafka_query_watermark_offsets(src->rk, src->topic, p->partition,
											   &low, &high, KAFKA_OFFSETS_TIMEOUT);
		if (err != RD_KAFKA_RESP_ERR_NO_ERROR)
		{
			source_set_state(src, SOURCE_BACKING_OFF,
							 psprintf("could not read the watermarks of partition %d: %s",
									  p->partition, rd_kafka_err2str(err)));
			return false;
		}
		if (p->position < low)
		{
			MemoryContext old = MemoryContextSwitchTo(GetMemoryChunkContext(src));
			KafkaGap *gap = palloc(sizeof(KafkaGap));

			gap->partition = p->partition;
			gap->from = p->position;
			gap->to = low - 1;
			src->gaps = lappend(src->gaps, gap);
			MemoryContextSwitchTo(old);
			ereport(LOG,
					(errmsg("streamproc: Kafka source \"%s\" lost messages %lld to %lld of partition %d",
							src->name, (long long)gap->from, (long long)gap->to, p->partition),
					 errdetail("The broker deleted them (retention) before they were consumed; consumption goes on at offset %lld.",
							   (long long)low),
					 errhint("Keep sources running, or raise the topic's retention.")));
			stats_error(src, psprintf("messages %lld to %lld of partition %d were deleted by the broker before they were consumed",
									  (long long)gap->from, (long long)gap->to, p->partition));
			p->position = low;
		}
		else if (p->position > high)
			p->position = high;
		p->out_of_range = false;
		reassign = true;
	}

	return !reassign || assign_all(src);
}

/* Does the source have something only a checkpoint can make durable? */
bool
streamproc_kafka_checkpoint_needed(List *sources)
{
	ListCell *lc;

	foreach (lc, sources)
		if (((KafkaSource *)lfirst(lc))->gaps != NIL)
			return true;
	return false;
}

/* Recent rates, smoothed. */
static void
update_rates(KafkaSource *src, TimestampTz now)
{
	double secs = (double)(now - src->last_rate_update) / 1000000.0;
	int i;

	if (secs < 1.0)
		return;
	for (i = 0; i < src->npartitions; i++)
	{
		KafkaPartition *p = &src->parts[i];
		double ev = (double)(p->events - p->rate_events) / secs;
		double by = (double)(p->bytes - p->rate_bytes) / secs;

		p->events_per_second = 0.5 * p->events_per_second + 0.5 * ev;
		p->bytes_per_second = 0.5 * p->bytes_per_second + 0.5 * by;
		p->rate_events = p->events;
		p->rate_bytes = p->bytes;
	}

	/* Lag: the high watermarks of the last fetch responses (no request). */
	LWLockAcquire(kafka_shared->lock, LW_EXCLUSIVE);
	for (i = 0; i < src->npartitions; i++)
	{
		int64 low;
		int64 high;

		if (src->parts[i].stats != NULL &&
			rd_kafka_get_watermark_offsets(src->rk, src->topic, src->parts[i].partition,
										   &low, &high) == RD_KAFKA_RESP_ERR_NO_ERROR &&
			high >= 0)
			src->parts[i].stats->high_watermark = high;
	}
	LWLockRelease(kafka_shared->lock);
	src->last_rate_update = now;
	stats_publish(src);
}

long
streamproc_kafka_maintain(List *sources)
{
	TimestampTz now = GetCurrentTimestamp();
	long next = KAFKA_METADATA_INTERVAL;
	MemoryContext old = scratch_begin();
	ListCell *lc;

	foreach (lc, sources)
	{
		KafkaSource *src = lfirst(lc);
		long wait;

		if (src->rk == NULL)
			continue;
		source_drain_events(src);
		update_rates(src, now);

		if (src->fatal)
		{
			/* librdkafka cannot go on; the launcher restarts the worker. */
			ereport(ERROR,
					(errmsg("Kafka source \"%s\" hit a fatal consumer error", src->name),
					 errdetail_internal("%s", src->pending_error)));
		}

		if (now >= src->next_metadata)
		{
			if (reset_ranges(src) && source_assign(src))
			{
				src->backoff_ms = KAFKA_BACKOFF_MIN;
				src->next_metadata = now + (TimestampTz)KAFKA_METADATA_INTERVAL * 1000;
			}
			else
			{
				src->next_metadata = GetCurrentTimestamp() + (TimestampTz)src->backoff_ms * 1000;
				src->backoff_ms = Min(src->backoff_ms * 2, KAFKA_BACKOFF_MAX);
			}
		}
		wait = (long)((src->next_metadata - GetCurrentTimestamp()) / 1000);
		next = Min(next, Max(wait, 1));
	}
	MemoryContextSwitchTo(old);
	return next;
}

/* ----------------------------------------------------------------
 * Messages
 * ----------------------------------------------------------------
 */

static KafkaPartition *
find_partition(KafkaSource *src, int32 partition)
{
	int i;

	for (i = 0; i < src->npartitions; i++)
		if (src->parts[i].partition == partition)
			return &src->parts[i];
	return NULL;
}

static int fetch_messages(KafkaSource *src, rd_kafka_message_t **msgs, int max,
						  bool *more);

int
streamproc_kafka_fetch(KafkaSource *src, rd_kafka_message_t **msgs, int max,
					   bool *more)
{
	MemoryContext old = scratch_begin();
	int n = fetch_messages(src, msgs, max, more);

	MemoryContextSwitchTo(old);
	return n;
}

static int
fetch_messages(KafkaSource *src, rd_kafka_message_t **msgs, int max, bool *more)
{
	ssize_t got;
	int kept = 0;
	ssize_t i;

	*more = false;
	if (src->rk == NULL || src->npartitions == 0)
		return 0;
	if (src->stash != NULL)
	{
		/* The message the wait got comes first. */
		msgs[0] = src->stash;
		src->stash = NULL;
		got = 1 + rd_kafka_consume_batch_queue(src->queue, 0, msgs + 1, max - 1);
	}
	else
		got = rd_kafka_consume_batch_queue(src->queue, 0, msgs, max);
	if (got < 0)
	{
		source_set_state(src, SOURCE_BACKING_OFF,
						 psprintf("could not consume: %s", rd_kafka_err2str(rd_kafka_last_error())));
		return 0;
	}

	/*
	 * It also returns before max with messages still queued; call again at
	 * once while it returns something.
	 */
	*more = got > 0;
	for (i = 0; i < got; i++)
	{
		rd_kafka_message_t *m = msgs[i];
		KafkaPartition *p;

		if (m->err != RD_KAFKA_RESP_ERR_NO_ERROR)
		{
			if (m->err == RD_KAFKA_RESP_ERR__AUTO_OFFSET_RESET ||
				m->err == RD_KAFKA_RESP_ERR_OFFSET_OUT_OF_RANGE)
			{
				/* Fetching stopped; maintain() finds where to go on. */
				p = find_partition(src, m->partition);
				if (p != NULL)
				{
					p->out_of_range = true;
					src->next_metadata = 0;
				}
			}
			else if (m->err != RD_KAFKA_RESP_ERR__PARTITION_EOF)
				source_set_state(src, SOURCE_BACKING_OFF,
								 psprintf("partition %d: %s", m->partition,
										  rd_kafka_message_errstr(m)));
			rd_kafka_message_destroy(m);
			continue;
		}
		p = find_partition(src, m->partition);
		if (p == NULL || m->offset < (p->replay_from >= 0 ? p->replay_from : p->position))
		{
			/* Not ours, or prefetched before a reassignment: done already. */
			rd_kafka_message_destroy(m);
			continue;
		}
		msgs[kept++] = m;
	}
	if (kept > 0 && src->state != SOURCE_RUNNING)
		source_set_state(src, SOURCE_RUNNING, NULL);
	source_drain_events(src);
	return kept;
}

void
streamproc_kafka_consumed(KafkaSource *src, rd_kafka_message_t **msgs, int n)
{
	int i;

	for (i = 0; i < n; i++)
	{
		rd_kafka_message_t *m = msgs[i];
		KafkaPartition *p = find_partition(src, m->partition);

		if (p != NULL)
		{
			if (m->offset >= p->position)
			{
				/* A new message (not one refetched for views behind). */
				p->position = m->offset + 1;
				p->events++;
				p->bytes += (int64)m->len;
			}
			p->next_fetch = Max(p->next_fetch, m->offset + 1);
			if (p->replay_from >= 0 && m->offset + 1 >= p->position)
				p->replay_from = -1;
		}
		rd_kafka_message_destroy(m);
	}
	stats_publish(src);
}

/*
 * streamproc_kafka_position
 *		The source's position in a partition: the offset after the last
 *		message it processed (views behind it have their own, positions.c).
 *		-1 when the partition is not ours.
 */
int64
streamproc_kafka_position(KafkaSource *src, int32 partition)
{
	KafkaPartition *p = find_partition(src, partition);

	return p ? p->position : -1;
}

/*
 * streamproc_kafka_rewind
 *		A view behind the source needs the messages from offset on: make
 *		the consumer fetch them again (the views ahead skip them).  Nothing
 *		to do when the consumer is not past that offset.
 */
void
streamproc_kafka_rewind(KafkaSource *src, int32 partition, int64 offset)
{
	KafkaPartition *p = find_partition(src, partition);
	rd_kafka_topic_partition_list_t *list;
	rd_kafka_error_t *error;

	if (p == NULL || src->rk == NULL || offset < 0 || offset >= p->next_fetch)
		return;
	list = rd_kafka_topic_partition_list_new(1);
	rd_kafka_topic_partition_list_add(list, src->topic, partition)->offset = offset;
	error = rd_kafka_seek_partitions(src->rk, list, KAFKA_OFFSETS_TIMEOUT);
	rd_kafka_topic_partition_list_destroy(list);
	if (error != NULL)
	{
		ereport(LOG,
				(errmsg("streamproc: Kafka source \"%s\" could not seek partition %d back to offset %lld: %s",
						src->name, partition, (long long)offset, rd_kafka_error_string(error))));
		rd_kafka_error_destroy(error);
		return;
	}
	/* A message waiting from before the seek would come out of order. */
	if (src->stash != NULL && src->stash->partition == partition)
	{
		rd_kafka_message_destroy(src->stash);
		src->stash = NULL;
	}
	p->replay_from = offset;
	p->next_fetch = offset;
}

void
streamproc_kafka_count_error(KafkaSource *src)
{
	src->errors++;
}

void
streamproc_kafka_message_meta(const rd_kafka_message_t *m, StreamprocMessageMeta *meta)
{
	rd_kafka_headers_t *hdrs = NULL;
	rd_kafka_timestamp_type_t tstype;

	memset(meta, 0, sizeof(*meta));
	meta->partition = m->partition;
	meta->offset = m->offset;
	meta->key = m->key;
	meta->key_len = m->key_len;
	meta->timestamp_ms = rd_kafka_message_timestamp(m, &tstype);
	if (tstype == RD_KAFKA_TIMESTAMP_NOT_AVAILABLE)
		meta->timestamp_ms = -1;
	if (rd_kafka_message_headers(m, &hdrs) == RD_KAFKA_RESP_ERR_NO_ERROR && hdrs != NULL)
	{
		size_t count = rd_kafka_header_cnt(hdrs);
		StreamprocHeader *h = palloc(sizeof(StreamprocHeader) * Max(count, 1));
		size_t i;

		for (i = 0; i < count; i++)
		{
			const void *value;
			size_t size;

			if (rd_kafka_header_get_all(hdrs, i, &h[i].name, &value, &size) !=
				RD_KAFKA_RESP_ERR_NO_ERROR)
				break;
			h[i].value = value;
			h[i].value_len = size;
		}
		meta->headers = h;
		meta->nheaders = (int)i;
	}
}

/* ----------------------------------------------------------------
 * Checkpoint and sync
 * ----------------------------------------------------------------
 */

void
streamproc_kafka_checkpoint(List *sources)
{
	ListCell *lc;

	foreach (lc, sources)
	{
		KafkaSource *src = lfirst(lc);
		Datum *p = palloc(sizeof(Datum) * Max(src->npartitions, 1));
		Datum *o = palloc(sizeof(Datum) * Max(src->npartitions, 1));
		int n = 0;
		int ret;
		int i;
		ListCell *gc;

		for (i = 0; i < src->npartitions; i++)
		{
			if (src->parts[i].position == src->parts[i].committed ||
				src->parts[i].position < 0)
				continue;
			p[n] = Int32GetDatum(src->parts[i].partition);
			o[n] = Int64GetDatum(src->parts[i].position);
			n++;
		}
		if (n == 0 && src->gaps == NIL)
			continue;

		/* A source dropped meanwhile has nothing left to keep. */
		if (!lock_source_row(src))
			continue;

		foreach (gc, src->gaps)
		{
			KafkaGap *gap = lfirst(gc);
			Datum gargs[5];

			gargs[0] = CStringGetTextDatum(src->name);
			gargs[1] = CStringGetTextDatum(src->topic);
			gargs[2] = Int32GetDatum(gap->partition);
			gargs[3] = Int64GetDatum(gap->from);
			gargs[4] = Int64GetDatum(gap->to);
			ret = SPI_execute_with_args("INSERT INTO streamproc.errors"
										" (source, position, sqlstate, message, detail, topic, partition, \"offset\")"
										" VALUES ($1, pg_catalog.format('partition %s offsets %s to %s', $3, $4, $5),"
										" '22000',"
										" pg_catalog.format('messages %s to %s of partition %s were deleted by the broker before they were consumed', $4, $5, $3),"
										" 'The topic''s retention removed them while the source was behind (paused, stopped or slower than the producers).',"
										" $2, $3, $4)",
										5, (Oid[]){TEXTOID, TEXTOID, INT4OID, INT8OID, INT8OID},
										gargs, NULL, false, 0);
			if (ret != SPI_OK_INSERT)
				elog(ERROR, "could not write streamproc.errors: %s", SPI_result_code_string(ret));
		}
		if (n > 0)
			write_offsets(src, n, p, o, true);
	}
}

void
streamproc_kafka_checkpointed(List *sources)
{
	TimestampTz now = GetCurrentTimestamp();
	ListCell *lc;

	foreach (lc, sources)
	{
		KafkaSource *src = lfirst(lc);
		rd_kafka_topic_partition_list_t *list = NULL;
		int i;

		list_free_deep(src->gaps);
		src->gaps = NIL;
		for (i = 0; i < src->npartitions; i++)
		{
			KafkaPartition *p = &src->parts[i];

			if (p->position == p->committed || p->position < 0)
				continue;
			p->committed = p->position;
			if (src->group_id && src->rk)
			{
				if (list == NULL)
					list = rd_kafka_topic_partition_list_new(src->npartitions);
				rd_kafka_topic_partition_list_add(list, src->topic, p->partition)->offset = p->position;
			}
		}
		if (list != NULL)
		{
			/* Only for external lag tools: the database's offsets rule. */
			(void)rd_kafka_commit(src->rk, list, 1);
			rd_kafka_topic_partition_list_destroy(list);
		}

		LWLockAcquire(kafka_shared->lock, LW_EXCLUSIVE);
		for (i = 0; i < src->npartitions; i++)
			if (src->parts[i].stats)
			{
				src->parts[i].stats->committed = src->parts[i].committed;
				src->parts[i].stats->last_checkpoint = now;
			}
		LWLockRelease(kafka_shared->lock);
	}
}

static bool sources_caught_up(List *sources, uint64 generation);

bool
streamproc_kafka_caught_up(List *sources, uint64 generation)
{
	MemoryContext old = scratch_begin();
	bool done = sources_caught_up(sources, generation);

	MemoryContextSwitchTo(old);
	return done;
}

static bool
sources_caught_up(List *sources, uint64 generation)
{
	TimestampTz now = GetCurrentTimestamp();
	bool caught_up = true;
	ListCell *lc;

	foreach (lc, sources)
	{
		KafkaSource *src = lfirst(lc);
		int i;

		if (src->rk == NULL || src->state == SOURCE_ERROR)
			continue; /* nothing can arrive; sync() must not hang on it */
		if (src->npartitions == 0)
		{
			caught_up = false;
			continue;
		}
		if (src->sync_generation != generation)
		{
			rd_kafka_topic_partition_list_t *list;
			rd_kafka_resp_err_t err;

			if (now < src->next_sync_query)
			{
				caught_up = false;
				continue;
			}
			list = rd_kafka_topic_partition_list_new(src->npartitions);
			for (i = 0; i < src->npartitions; i++)
				rd_kafka_topic_partition_list_add(list, src->topic, src->parts[i].partition)->offset =
					RD_KAFKA_OFFSET_END;
			err = rd_kafka_offsets_for_times(src->rk, list, KAFKA_OFFSETS_TIMEOUT);
			for (i = 0; err == RD_KAFKA_RESP_ERR_NO_ERROR && i < src->npartitions; i++)
				if (list->elems[i].err != RD_KAFKA_RESP_ERR_NO_ERROR)
					err = list->elems[i].err;
			if (err != RD_KAFKA_RESP_ERR_NO_ERROR)
			{
				rd_kafka_topic_partition_list_destroy(list);
				source_set_state(src, SOURCE_BACKING_OFF,
								 psprintf("could not read high watermarks: %s", rd_kafka_err2str(err)));
				src->next_sync_query = now + (TimestampTz)KAFKA_BACKOFF_MIN * 1000;
				caught_up = false;
				continue;
			}
			LWLockAcquire(kafka_shared->lock, LW_EXCLUSIVE);
			for (i = 0; i < src->npartitions; i++)
			{
				KafkaPartition *p = find_partition(src, list->elems[i].partition);

				p->sync_target = list->elems[i].offset;
				if (p->stats)
					p->stats->high_watermark = p->sync_target;
			}
			LWLockRelease(kafka_shared->lock);
			rd_kafka_topic_partition_list_destroy(list);
			src->sync_generation = generation;
		}
		for (i = 0; i < src->npartitions; i++)
			if (src->parts[i].position < src->parts[i].sync_target)
				caught_up = false;
	}
	return caught_up;
}

/* ----------------------------------------------------------------
 * Event time (watermarks of windowed views, worker.c)
 * ----------------------------------------------------------------
 */

/*
 * streamproc_kafka_note_event_time
 *		Events of a partition up to event time max_time were processed now.
 */
void
streamproc_kafka_note_event_time(KafkaSource *src, int32 partition,
								 TimestampTz max_time, TimestampTz now)
{
	KafkaPartition *p = find_partition(src, partition);

	if (p == NULL)
		return;
	if (max_time > p->max_event_time)
		p->max_event_time = max_time;
	p->last_event = now;
}

/*
 * streamproc_kafka_event_times
 *		The least greatest event time over the source's active partitions
 *		(*least; false is returned when none is active) and the greatest
 *		over all of them (*greatest, DT_NOBEGIN before any event).  A
 *		partition is active when it had an event, or was assigned, less than
 *		idle_timeout ago (always, when idle_timeout < 0); one without events
 *		holds *least at -infinity (DT_NOBEGIN), and so does a source whose
 *		partitions are not assigned yet.
 */
bool
streamproc_kafka_event_times(KafkaSource *src, TimestampTz now, int64 idle_timeout,
							 TimestampTz *least, TimestampTz *greatest)
{
	bool active = false;
	int i;

	*least = DT_NOBEGIN;
	*greatest = DT_NOBEGIN;
	if (src->npartitions == 0)
		return true;
	for (i = 0; i < src->npartitions; i++)
	{
		KafkaPartition *p = &src->parts[i];

		*greatest = Max(*greatest, p->max_event_time);
		if (idle_timeout >= 0 && now - p->last_event >= idle_timeout)
			continue;
		if (!active || p->max_event_time < *least)
			*least = p->max_event_time;
		active = true;
	}
	return active;
}
