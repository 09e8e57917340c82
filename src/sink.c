/*-------------------------------------------------------------------------
 *
 * sink.c
 *	  Kafka sinks: every change of a continuous view produced to a Kafka
 *	  topic, exactly once.
 *
 * streamproc.create_kafka_sink(name, view, topic, brokers, format, key,
 * options) makes the ingest workers produce the changes of the view's
 * change log (changes.c; created with the sink when the view has none) to
 * the topic, in position order.  A message's key is the change's group
 * key (or the columns named by key), its value the new row in json or csv,
 * or null (a tombstone) when the group left the view.  Each message has
 * two headers: streamproc-sink, the sink's identity (its name and creation
 * time), and streamproc-position, the change's position in the log.
 *
 * Who runs a sink.  The ingest worker numbered hash(name) mod
 * streamproc.workers of the sink's database, between its batches
 * (streamproc_sinks_run() from worker.c): it reads the sinks table every
 * tick, and at once when a transaction that created, changed or dropped a
 * sink commits (StreamprocShared.sinks_generation, and a wake-up), so
 * sinks need no catalog reload.
 * Producing never blocks the worker: a round reads up to SINK_BATCH
 * changes and produces them, up to SINK_ROUNDS rounds are in flight, and
 * each tick serves librdkafka's delivery reports, commits to
 * streamproc.sinks the last position of the rounds acknowledged in order,
 * and reads the next rounds (in one transaction).  While a producer runs,
 * the position in memory is the sink's: the table's is read when the
 * producer starts, since what it skips rests on the tails it read.
 *
 * Exactly once.  The committed position only says where to start reading
 * again: a crash between Kafka's acknowledgment and that commit, or while
 * a round is in flight, leaves changes in Kafka that the sink will read
 * again.  Kafka's content decides what is produced again:
 *	- The producer is idempotent (enable.idempotence), never times a
 *	  message out (message.timeout.ms = 0: an outage only delays it) and
 *	  stops rather than leave a gap (enable.gapless.guarantee).  So what a
 *	  partition holds of the sink's messages is a prefix, in position order,
 *	  of what the sink produced to it.
 *	- The partition of a change is a function of its key and the number
 *	  of partitions (murmur2, as Kafka's Java clients and librdkafka's
 *	  murmur2 partitioner; by position when there is no key).
 *	- When a producer starts (the worker started, or the previous producer
 *	  failed), it reads the tail of each partition back to the newest
 *	  message with the sink's identity, and takes its position as that
 *	  partition's tail.  A change whose position is at most its partition's
 *	  tail is in Kafka already and is skipped; any other is not, and is
 *	  produced.  Every change ends up in the topic once, in order per key.
 *	The identity includes the creation time, so a sink dropped and created
 *	again under the same name does not mistake the old sink's messages for
 *	its own.  Not covered: adding partitions to the topic while changes are
 *	in flight (a key may move to a partition whose tail says nothing of
 *	it), and a killed producer's last request reaching a broker after the
 *	new producer read the tails (the connection is gone by then: a broker
 *	that still processes a request of a closed connection).  Kafka
 *	transactions would fence the second; librdkafka's mock cluster, which
 *	the tests run against, implements them only in part, and a
 *	transactional producer would cost a round trip to the coordinator per
 *	round: documented instead (docs/architecture.md).
 *
 * Failures.  An error of a sink (the broker unreachable when it starts, a
 * message refused, a change too large for message.max.bytes, the view's
 * log gone) sets the sink's state to 'retrying' with the error, and the
 * sink starts again after a backoff (1 s doubling to 30 s) with a new
 * producer, which reads the tails again; the worker's views and other
 * sinks go on.  While brokers are down, messages wait in the producer and
 * the sink shows 'waiting' with librdkafka's last error.  The change log
 * keeps every change a sink has not acknowledged: a sink holds back its
 * log's retention, like a replication slot (a paused sink too).
 *
 * Changing a sink (alter_kafka_sink(): brokers, options) changes its row,
 * which the worker notices at its next tick: it stops the old producer and
 * starts a new one, which reads the tails as after a crash.
 *
 * Locking: the sink's row of streamproc.sinks, taken by the worker's
 * UPDATE of its progress and by alter/pause/resume/drop; each waits for the other
 * for the length of a short statement.  Sink-local state (producers,
 * tails) lives in the worker's memory.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include <librdkafka/rdkafka.h>

#include "access/xact.h"
#include "catalog/namespace.h"
#include "catalog/pg_type.h"
#include "executor/spi.h"
#include "funcapi.h"
#include "miscadmin.h"
#include "storage/lmgr.h"
#include "utils/acl.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/jsonb.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"
#include "utils/snapmgr.h"
#include "utils/timestamp.h"

#include "changes.h"
#include "errors.h"
#include "launcher.h"
#include "sink.h"
#include "source.h"
#include "streamproc.h"
#include "view.h"

#define SINK_HEADER_ID       "streamproc-sink"
#define SINK_HEADER_POSITION "streamproc-position"

/*
 * Changes produced per round, at most, and rounds in flight, at most: the
 * producer's queue (queue.buffering.max.messages, 100,000 by default)
 * holds them all.
 */
#define SINK_BATCH  10000
#define SINK_ROUNDS 8
/*
 * Ticks: while messages are in flight, and otherwise (with or without
 * sinks: the table is read at each, so a new sink starts within one).
 */
#define SINK_INFLIGHT_MS 2
#define SINK_IDLE_MS     100
/* Backoff after a failure, in ms. */
#define SINK_BACKOFF_MIN 1000
#define SINK_BACKOFF_MAX 30000
/*
 * Network operations of a starting producer, in ms: metadata and offsets
 * (short, as kafka.c's: the worker waits, and retries back off), reading
 * a partition's tail.
 */
#define SINK_NET_TIMEOUT_MS   1000
#define SINK_FETCH_TIMEOUT_MS 5000
/* Messages read back from a partition's end first when looking for the tail. */
#define SINK_TAIL_STEP 64
/* In flight for this long with a broker error: the sink shows 'waiting'. */
#define SINK_WAITING_MS      3000
#define SINK_MAX_KEY_COLUMNS 32
#define SINK_ERROR_LEN       512

/* A round: the changes of the log in (previous round's upto, upto]. */
typedef struct SinkRound
{
	int64 upto;
	int64 count;   /* messages produced */
	int64 pending; /* delivery reports outstanding */
	TimestampTz sent_at;
} SinkRound;

/* A sink this worker runs; in sink_cxt. */
typedef struct Sink
{
	char *name;
	char *identity;   /* streamproc-sink header: name '/' creation time */
	char *definition; /* what was read of its row, to notice a change */
	Oid view;
	char *topic;
	char *brokers;
	Jsonb *options;
	char *query;     /* $1 view, $2 after, $3 up to: position, key, value */
	SPIPlanPtr plan; /* query, prepared once (kept; freed with the sink) */
	bool paused;
	int64 position; /* acknowledged and committed */
	bool seen;      /* in this tick's read of the table */
	/* The producer, while started. */
	rd_kafka_t *rk;
	rd_kafka_topic_t *rkt;
	int32 npartitions;
	int64 *tails; /* per partition: the last position Kafka held */
	/*
	 * Rounds in flight, oldest first: a ring of SINK_ROUNDS entries from
	 * round first_round to next_round - 1 (a round's entry is its number
	 * mod SINK_ROUNDS, which its messages carry as their opaque).
	 */
	SinkRound rounds[SINK_ROUNDS];
	uint64 first_round;
	uint64 next_round;
	int64 read_upto;   /* last position produced (>= position) */
	int64 acked_upto;  /* last position of the rounds acknowledged in order */
	int64 acked_count; /* messages of those rounds, not committed yet */
	int64 pending;     /* delivery reports outstanding, all rounds */
	int64 committing;  /* position this tick's transaction commits, or -1 */
	bool closing;      /* purging: delivery errors are expected */
	bool failed;       /* a message was refused: restart the producer */
	char error[SINK_ERROR_LEN];
	char broker_error[SINK_ERROR_LEN]; /* librdkafka's last error (error_cb) */
	/* Failures. */
	char *state; /* as last written to the table */
	TimestampTz retry_at;
	int backoff_ms;
} Sink;

/* Where a round's rows go (sink_read()): straight to the producer. */
typedef struct SinkDest
{
	DestReceiver pub;
	Sink *sink;
	SinkRound *round;
	int64 rows;
} SinkDest;

/* What sink_record_failure() writes. */
typedef struct SinkFailure
{
	Sink *s;
	const char *message;
} SinkFailure;

static MemoryContext sink_cxt = NULL;
static List *sinks = NIL; /* Sink * */
static TimestampTz next_tick = 0;
static uint64 sinks_generation = 0; /* as last seen by this worker */

/* This transaction changed a sink: wake the workers at commit. */
static bool sinks_changed_in_xact = false;
static bool sink_callback_registered = false;

PG_FUNCTION_INFO_V1(streamproc_create_kafka_sink);
PG_FUNCTION_INFO_V1(streamproc_alter_kafka_sink);
PG_FUNCTION_INFO_V1(streamproc_drop_kafka_sink);
PG_FUNCTION_INFO_V1(streamproc_pause_sink);
PG_FUNCTION_INFO_V1(streamproc_resume_sink);

static bool sinks_installed(void);
static void check_sink_options(Jsonb *options);
static void check_brokers(const char *brokers);
static char *sink_query(Oid viewid, const char *format, ArrayType *key);
static Oid sink_view(const char *name, bool missing_ok);
static void check_sink_owner(Oid viewid);
static void set_paused(const char *name, bool paused);
static void sinks_changed(void);
static void sink_xact_callback(XactEvent event, void *arg);
static void sinks_load(void *arg);
static void sink_step(void *arg);
static void sink_start(Sink *s);
static void sink_read_tails(Sink *s, rd_kafka_conf_t *conf);
static int64 message_position(rd_kafka_message_t *m, const char *identity);
static void sink_produce(Sink *s, SinkRound *r, int64 position, const char *key,
						 size_t keylen, const char *value, size_t valuelen,
						 const char *pkey, size_t pkeylen);
static void sink_close(Sink *s);
static void sink_reset_rounds(Sink *s);
static bool sink_dest_receive(TupleTableSlot *slot, DestReceiver *self);
static void sink_dest_startup(DestReceiver *self, int operation, TupleDesc typeinfo);
static void sink_dest_shutdown(DestReceiver *self);
static void sink_free(Sink *s);
static void sink_failed(Sink *s, const char *message);
static void sink_record_failure(void *arg);
static void sink_set_state(Sink *s, const char *state, const char *error);
static void sink_note_state(Sink *s, const char *state);
static void conf_set(rd_kafka_conf_t *conf, const char *key, const char *value);
static void dr_msg_cb(rd_kafka_t *rk, const rd_kafka_message_t *m, void *opaque);
static void error_cb(rd_kafka_t *rk, int err, const char *reason, void *opaque);
static void log_cb(const rd_kafka_t *rk, int level, const char *fac, const char *buf);

/* ----------------------------------------------------------------
 * SQL functions
 * ----------------------------------------------------------------
 */

/*
 * streamproc.create_kafka_sink(name, view, topic, brokers, format, key, options)
 *		Validate everything, create the view's change log if it has none,
 *		and add the sink, starting after the oldest change the log keeps.
 *		The caller must own the view.
 */
Datum
streamproc_create_kafka_sink(PG_FUNCTION_ARGS)
{
	static const char *const argnames[] = {"name", "view", "topic", "brokers", "format"};
	char *name;
	Oid viewid;
	char *topic;
	char *brokers;
	char *format;
	ArrayType *key = NULL;
	Jsonb *options;
	char *query;
	StreamprocAsOwner saved;
	Datum args[9];
	char nulls[9];
	bool isnull;
	int64 start;
	int ret;
	int i;

	streamproc_check_preloaded();
	for (i = 0; i < lengthof(argnames); i++)
		if (PG_ARGISNULL(i))
			ereport(ERROR,
					(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
					 errmsg("Kafka sink parameter \"%s\" cannot be null", argnames[i])));
	if (PG_ARGISNULL(6))
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("Kafka sink parameter \"options\" cannot be null")));
	name = text_to_cstring(PG_GETARG_TEXT_PP(0));
	viewid = PG_GETARG_OID(1);
	topic = text_to_cstring(PG_GETARG_TEXT_PP(2));
	brokers = text_to_cstring(PG_GETARG_TEXT_PP(3));
	format = text_to_cstring(PG_GETARG_TEXT_PP(4));
	if (!PG_ARGISNULL(5))
		key = PG_GETARG_ARRAYTYPE_P(5);
	options = PG_GETARG_JSONB_P(6);
	if (!sinks_installed())
		ereport(ERROR,
				(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
				 errmsg("Kafka sinks need version 0.7 of extension streamproc"),
				 errhint("Run ALTER EXTENSION streamproc UPDATE.")));

	if (name[0] == '\0')
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_NAME),
				 errmsg("Kafka sink name cannot be empty")));
	if (strlen(name) >= NAMEDATALEN)
		ereport(ERROR,
				(errcode(ERRCODE_NAME_TOO_LONG),
				 errmsg("Kafka sink name \"%s\" is too long", name),
				 errdetail("A sink name has at most %d bytes.", NAMEDATALEN - 1)));

	/* The view: as create_change_log() takes it, so that it stays. */
	LockRelationOid(viewid, ShareUpdateExclusiveLock);
	if (!streamproc_is_continuous_view(viewid))
		ereport(ERROR,
				(errcode(ERRCODE_WRONG_OBJECT_TYPE),
				 errmsg("\"%s\" is not a continuous view", get_rel_name(viewid) ? get_rel_name(viewid) : "?"),
				 errhint("A Kafka sink produces the changes of a continuous view (CREATE VIEW ... WITH (continuous)).")));
	check_sink_owner(viewid);

	streamproc_kafka_check_topic(topic);
	check_brokers(brokers);
	if (strcmp(format, "json") != 0 && strcmp(format, "csv") != 0)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("unrecognized sink format \"%s\"", format),
				 errhint("The formats of a sink are json and csv.")));
	query = sink_query(viewid, format, key);
	if (!JB_ROOT_IS_OBJECT(options) || JB_ROOT_IS_SCALAR(options))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("Kafka options must be a JSON object")));
	streamproc_kafka_check_option_privileges(options);
	check_sink_options(options);

	/* The change log, as the caller (create_change_log checks the owner). */
	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");
	args[0] = ObjectIdGetDatum(viewid);
	ret = SPI_execute_with_args("SELECT 1 FROM streamproc.change_logs WHERE view = $1",
								1, (Oid[]){OIDOID}, args, NULL, false, 0);
	if (ret != SPI_OK_SELECT)
		elog(ERROR, "could not read streamproc.change_logs: %s", SPI_result_code_string(ret));
	if (SPI_processed == 0)
	{
		ret = SPI_execute_with_args("SELECT streamproc.create_change_log($1)",
									1, (Oid[]){REGCLASSOID}, args, NULL, false, 0);
		if (ret != SPI_OK_SELECT)
			elog(ERROR, "could not create the change log: %s", SPI_result_code_string(ret));
	}
	SPI_finish();

	streamproc_spi_as_owner_begin(&saved);
	ret = SPI_execute_with_args("SELECT trimmed_to FROM streamproc.change_logs WHERE view = $1",
								1, (Oid[]){OIDOID}, args, NULL, false, 0);
	if (ret != SPI_OK_SELECT || SPI_processed != 1)
		elog(ERROR, "could not read the change log of view %u", viewid);
	start = DatumGetInt64(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull));

	memset(nulls, ' ', sizeof(nulls));
	args[0] = CStringGetTextDatum(name);
	args[1] = ObjectIdGetDatum(viewid);
	args[2] = CStringGetTextDatum(topic);
	args[3] = CStringGetTextDatum(brokers);
	args[4] = CStringGetTextDatum(format);
	args[5] = key ? PointerGetDatum(key) : (Datum)0;
	nulls[5] = key ? ' ' : 'n';
	args[6] = JsonbPGetDatum(options);
	args[7] = Int64GetDatum(start);
	args[8] = ObjectIdGetDatum(saved.userid); /* the caller */
	ret = SPI_execute_with_args("INSERT INTO streamproc.sinks"
								" (name, view, topic, brokers, format, key, options, position, owner)"
								" VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)"
								" ON CONFLICT (name) DO NOTHING",
								9, (Oid[]){TEXTOID, OIDOID, TEXTOID, TEXTOID, TEXTOID, TEXTARRAYOID, JSONBOID, INT8OID, OIDOID},
								args, nulls, false, 0);
	if (ret != SPI_OK_INSERT)
		elog(ERROR, "could not insert into streamproc.sinks: %s", SPI_result_code_string(ret));
	if (SPI_processed == 0)
		ereport(ERROR,
				(errcode(ERRCODE_DUPLICATE_OBJECT),
				 errmsg("Kafka sink \"%s\" already exists", name)));
	sinks_changed();
	streamproc_spi_as_owner_end(&saved);
	pfree(query);
	PG_RETURN_VOID();
}

/*
 * streamproc.alter_kafka_sink(name, brokers, options)
 *		Change what is not null.  The sink's identity stays: its worker
 *		starts a new producer, which goes on after the last change the
 *		topic holds.
 */
Datum
streamproc_alter_kafka_sink(PG_FUNCTION_ARGS)
{
	char *name;
	Oid viewid;
	StreamprocAsOwner saved;
	Datum args[3];
	char nulls[3] = {' ', 'n', 'n'};
	int ret;

	if (PG_ARGISNULL(0))
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("Kafka sink parameter \"name\" cannot be null")));
	name = text_to_cstring(PG_GETARG_TEXT_PP(0));
	viewid = sink_view(name, false);
	check_sink_owner(viewid);
	args[0] = CStringGetTextDatum(name);
	if (!PG_ARGISNULL(1))
	{
		char *brokers = text_to_cstring(PG_GETARG_TEXT_PP(1));

		check_brokers(brokers);
		args[1] = CStringGetTextDatum(brokers);
		nulls[1] = ' ';
	}
	if (!PG_ARGISNULL(2))
	{
		Jsonb *options = PG_GETARG_JSONB_P(2);

		if (!JB_ROOT_IS_OBJECT(options) || JB_ROOT_IS_SCALAR(options))
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("Kafka options must be a JSON object")));
		streamproc_kafka_check_option_privileges(options);
		check_sink_options(options);
		args[2] = JsonbPGetDatum(options);
		nulls[2] = ' ';
	}
	streamproc_spi_as_owner_begin(&saved);
	ret = SPI_execute_with_args("UPDATE streamproc.sinks SET brokers = COALESCE($2, brokers),"
								" options = COALESCE($3, options), state = 'starting', retry_at = NULL"
								" WHERE name = $1",
								3, (Oid[]){TEXTOID, TEXTOID, JSONBOID}, args, nulls, false, 0);
	if (ret != SPI_OK_UPDATE)
		elog(ERROR, "could not update streamproc.sinks: %s", SPI_result_code_string(ret));
	streamproc_spi_as_owner_end(&saved);
	sinks_changed();
	PG_RETURN_VOID();
}

/*
 * streamproc.drop_kafka_sink(name, if_exists)
 *		Delete the sink; its worker stops its producer at its next tick,
 *		dropping what it had not delivered.  The view's change log stays.
 */
Datum
streamproc_drop_kafka_sink(PG_FUNCTION_ARGS)
{
	char *name = text_to_cstring(PG_GETARG_TEXT_PP(0));
	bool if_exists = PG_GETARG_BOOL(1);
	Oid viewid = sink_view(name, if_exists);
	StreamprocAsOwner saved;
	Datum args[1];
	int ret;

	if (!OidIsValid(viewid))
	{
		ereport(NOTICE,
				(errmsg("Kafka sink \"%s\" does not exist, skipping", name)));
		PG_RETURN_VOID();
	}
	check_sink_owner(viewid);
	streamproc_spi_as_owner_begin(&saved);
	args[0] = CStringGetTextDatum(name);
	ret = SPI_execute_with_args("DELETE FROM streamproc.sinks WHERE name = $1",
								1, (Oid[]){TEXTOID}, args, NULL, false, 0);
	if (ret != SPI_OK_DELETE)
		elog(ERROR, "could not delete from streamproc.sinks: %s", SPI_result_code_string(ret));
	streamproc_spi_as_owner_end(&saved);
	sinks_changed();
	PG_RETURN_VOID();
}

/* streamproc.pause_sink(name): stop producing, keep the position. */
Datum
streamproc_pause_sink(PG_FUNCTION_ARGS)
{
	set_paused(text_to_cstring(PG_GETARG_TEXT_PP(0)), true);
	PG_RETURN_VOID();
}

/* streamproc.resume_sink(name): produce again after the position. */
Datum
streamproc_resume_sink(PG_FUNCTION_ARGS)
{
	set_paused(text_to_cstring(PG_GETARG_TEXT_PP(0)), false);
	PG_RETURN_VOID();
}

static void
set_paused(const char *name, bool paused)
{
	Oid viewid = sink_view(name, false);
	StreamprocAsOwner saved;
	Datum args[2];
	int ret;

	check_sink_owner(viewid);
	streamproc_spi_as_owner_begin(&saved);
	args[0] = CStringGetTextDatum(name);
	args[1] = BoolGetDatum(paused);
	ret = SPI_execute_with_args("UPDATE streamproc.sinks SET paused = $2,"
								" state = CASE WHEN $2 THEN 'paused' ELSE 'starting' END, retry_at = NULL"
								" WHERE name = $1",
								2, (Oid[]){TEXTOID, BOOLOID}, args, NULL, false, 0);
	if (ret != SPI_OK_UPDATE)
		elog(ERROR, "could not update streamproc.sinks: %s", SPI_result_code_string(ret));
	streamproc_spi_as_owner_end(&saved);
	sinks_changed();
}

static void
sinks_changed(void)
{
	if (!sink_callback_registered)
	{
		RegisterXactCallback(sink_xact_callback, NULL);
		sink_callback_registered = true;
	}
	sinks_changed_in_xact = true;
}

static void
sink_xact_callback(XactEvent event, void *arg)
{
	switch (event)
	{
		case XACT_EVENT_COMMIT:
			if (sinks_changed_in_xact)
			{
				pg_atomic_fetch_add_u64(&streamproc_shared->sinks_generation, 1);
				streamproc_wake_workers(MyDatabaseId);
			}
			sinks_changed_in_xact = false;
			break;
		case XACT_EVENT_ABORT:
			sinks_changed_in_xact = false;
			break;
		default:
			break;
	}
}

/* The view of sink name, or InvalidOid when missing_ok and it does not exist. */
static Oid
sink_view(const char *name, bool missing_ok)
{
	StreamprocAsOwner saved;
	Datum args[1];
	bool isnull;
	Oid viewid = InvalidOid;
	int ret;

	if (!sinks_installed())
		ereport(ERROR,
				(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
				 errmsg("Kafka sinks need version 0.7 of extension streamproc"),
				 errhint("Run ALTER EXTENSION streamproc UPDATE.")));
	streamproc_spi_as_owner_begin(&saved);
	args[0] = CStringGetTextDatum(name);
	ret = SPI_execute_with_args("SELECT view FROM streamproc.sinks WHERE name = $1 FOR UPDATE",
								1, (Oid[]){TEXTOID}, args, NULL, false, 0);
	if (ret != SPI_OK_SELECT)
		elog(ERROR, "could not read streamproc.sinks: %s", SPI_result_code_string(ret));
	if (SPI_processed == 1)
		viewid = DatumGetObjectId(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull));
	streamproc_spi_as_owner_end(&saved);
	if (!OidIsValid(viewid) && !missing_ok)
		ereport(ERROR,
				(errcode(ERRCODE_UNDEFINED_OBJECT),
				 errmsg("Kafka sink \"%s\" does not exist", name)));
	return viewid;
}

static void
check_brokers(const char *brokers)
{
	if (brokers[strspn(brokers, " \t\r\n")] == '\0')
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("Kafka brokers cannot be empty"),
				 errhint("Give the bootstrap brokers as a comma-separated list of host:port.")));
}

static void
check_sink_owner(Oid viewid)
{
	if (!pg_class_ownercheck(viewid, GetUserId()))
		aclcheck_error(ACLCHECK_NOT_OWNER, OBJECT_VIEW, get_rel_name(viewid));
}

static bool
sinks_installed(void)
{
	Oid nsp = get_namespace_oid("streamproc", true);

	return OidIsValid(nsp) && OidIsValid(get_relname_relid("sinks", nsp));
}

/*
 * Options streamproc sets on a sink's producer, and the source options
 * that make no sense for one; the rest is checked by building a producer's
 * configuration, as a worker will.
 */
static void
check_sink_options(Jsonb *options)
{
	static const char *const reserved[] = {
		"enable.idempotence", "enable.gapless.guarantee", "message.timeout.ms",
		"delivery.timeout.ms", "acks", "request.required.acks", "transactional.id",
		"partitioner", "max.in.flight.requests.per.connection", "max.in.flight"};
	JsonbIterator *it = JsonbIteratorInit(&options->root);
	JsonbIteratorToken r;
	JsonbValue v;
	rd_kafka_conf_t *conf;
	char errbuf[SINK_ERROR_LEN];
	bool ok;
	int i;

	while ((r = JsonbIteratorNext(&it, &v, true)) != WJB_DONE)
	{
		char *key;

		if (r != WJB_KEY)
			continue;
		key = pnstrdup(v.val.string.val, v.val.string.len);
		if (pg_strcasecmp(key, "bootstrap.servers") == 0 ||
			pg_strcasecmp(key, "metadata.broker.list") == 0)
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("Kafka option \"%s\" is reserved by streamproc", key),
					 errdetail("The sink's brokers parameter sets it.")));
		for (i = 0; i < lengthof(reserved); i++)
			if (pg_strcasecmp(key, reserved[i]) == 0)
				ereport(ERROR,
						(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
						 errmsg("Kafka option \"%s\" is reserved by streamproc", key),
						 errdetail("A sink's producer is idempotent, never times a message out and keeps the order of each partition without gaps: that is how each change reaches the topic exactly once.")));
	}
	conf = rd_kafka_conf_new();
	PG_TRY();
	{
		ok = streamproc_kafka_conf_apply(conf, options, errbuf, sizeof(errbuf));
	}
	PG_FINALLY();
	{
		rd_kafka_conf_destroy(conf);
	}
	PG_END_TRY();
	if (!ok)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("%s", errbuf)));
}

/*
 * The query a sink reads its changes with: position, message key, message
 * value, for the changes in ($2, $3] of view $1.
 */
static char *
sink_query(Oid viewid, const char *format, ArrayType *key)
{
	StringInfoData q;
	StringInfoData k;
	char *viewname = quote_qualified_identifier(get_namespace_name(get_rel_namespace(viewid)),
												get_rel_name(viewid));

	initStringInfo(&k);
	if (key == NULL)
		appendStringInfoString(&k, "CASE WHEN c.key IS NULL THEN NULL"
								   " WHEN pg_catalog.jsonb_array_length(c.key) = 1 THEN c.key->>0"
								   " ELSE c.key::pg_catalog.text END");
	else
	{
		Datum *elems;
		bool *enulls;
		int n;
		int i;

		if (ARR_NDIM(key) > 1)
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("key must be a one-dimensional array of column names")));
		deconstruct_array(key, TEXTOID, -1, false, TYPALIGN_INT, &elems, &enulls, &n);
		if (n == 0 || n > SINK_MAX_KEY_COLUMNS)
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("key must name 1 to %d columns of the view", SINK_MAX_KEY_COLUMNS),
					 errhint("Pass NULL to key the messages by the view's group key.")));
		for (i = 0; i < n; i++)
		{
			char *col;

			if (enulls[i])
				ereport(ERROR,
						(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
						 errmsg("key cannot name a null column")));
			col = TextDatumGetCString(elems[i]);
			if (get_attnum(viewid, col) == InvalidAttrNumber)
				ereport(ERROR,
						(errcode(ERRCODE_UNDEFINED_COLUMN),
						 errmsg("column \"%s\" of key does not exist in view \"%s\"",
								col, get_rel_name(viewid))));
			if (n == 1)
				appendStringInfo(&k, "COALESCE(c.new, c.old)->>%s", quote_literal_cstr(col));
			else
				appendStringInfo(&k, "%s%s, COALESCE(c.new, c.old)->%s",
								 i == 0 ? "pg_catalog.json_build_object(" : ", ",
								 quote_literal_cstr(col), quote_literal_cstr(col));
		}
		if (n > 1)
			appendStringInfoString(&k, ")::pg_catalog.text");
	}

	/*
	 * position, message key, value, and for a null message key the text
	 * its partition follows (one partition per key all the same): the
	 * group key's (aggregating views), "null" (named columns), or none
	 * (no key at all: by position).
	 */
	initStringInfo(&q);
	appendStringInfoString(&q, "SELECT c.position, k.key, ");
	if (strcmp(format, "json") == 0)
		appendStringInfoString(&q, "c.new::pg_catalog.text");
	else
		appendStringInfo(&q,
						 "CASE WHEN c.new IS NOT NULL THEN"
						 " (SELECT pg_catalog.string_agg(CASE WHEN t.v IS NULL THEN ''"
						 " WHEN t.v = '' OR t.v OPERATOR(pg_catalog.~) '[\",\\r\\n]'"
						 " THEN '\"' || pg_catalog.replace(t.v, '\"', '\"\"') || '\"'"
						 " ELSE t.v END, ',' ORDER BY t.n)"
						 " FROM pg_catalog.json_each_text(pg_catalog.row_to_json("
						 "pg_catalog.jsonb_populate_record(NULL::%s, c.new))) WITH ORDINALITY t(k, v, n))"
						 " END",
						 viewname);
	appendStringInfo(&q, ", CASE WHEN k.key IS NULL THEN %s END"
						 " FROM streamproc.changes c CROSS JOIN LATERAL (SELECT %s AS key) k"
						 " WHERE c.view = $1 AND c.position > $2 AND c.position <= $3 ORDER BY c.position",
					 key == NULL ? "c.key::pg_catalog.text" : "'null'", k.data);
	pfree(k.data);
	return q.data;
}

/* ----------------------------------------------------------------
 * The ingest workers' side
 * ----------------------------------------------------------------
 */

/*
 * streamproc_sinks_run
 *		See sink.h.  Each sink's round runs in a transaction of its own; an
 *		error is the sink's (sink_failed()), never the worker's.
 */
long
streamproc_sinks_run(int worker, bool force)
{
	TimestampTz now = GetCurrentTimestamp();
	uint64 generation = pg_atomic_read_u64(&streamproc_shared->sinks_generation);
	ErrorData *edata;
	ListCell *lc;
	long wait = SINK_IDLE_MS;

	/* A sink was created, changed or dropped: now. */
	if (generation != sinks_generation)
	{
		sinks_generation = generation;
		force = true;
	}
	if (!force && now < next_tick)
		return Max(1, (long)((next_tick - now) / 1000));
	if (sink_cxt == NULL)
		sink_cxt = AllocSetContextCreate(TopMemoryContext, "streamproc sinks",
										 ALLOCSET_DEFAULT_SIZES);

	/* Which sinks are ours, as the table says now. */
	edata = streamproc_run_xact(sinks_load, &worker);
	if (edata != NULL)
	{
		ereport(LOG,
				(errmsg("could not read the Kafka sinks: %s", edata->message ? edata->message : ""),
				 errdetail("They are read again in %d ms.", SINK_BACKOFF_MIN)));
		FreeErrorData(edata);
		next_tick = now + (TimestampTz)SINK_BACKOFF_MIN * 1000;
		return SINK_BACKOFF_MIN;
	}

	foreach (lc, sinks)
	{
		Sink *s = lfirst(lc);

		if (s->paused)
		{
			sink_close(s);
			continue;
		}
		if (s->retry_at > now)
		{
			wait = Min(wait, Max(1, (long)((s->retry_at - now) / 1000)));
			continue;
		}
		s->committing = -1;
		edata = streamproc_run_xact(sink_step, s);
		if (edata != NULL)
		{
			sink_failed(s, edata->message ? edata->message : "unknown error");
			FreeErrorData(edata);
		}
		else if (s->committing >= 0)
		{
			/* The rounds' position and 'running' are in the table now. */
			s->position = s->committing;
			s->acked_count = 0;
			sink_note_state(s, "running");
			s->backoff_ms = SINK_BACKOFF_MIN;
		}
		wait = Min(wait, s->retry_at > now                                               ? SINK_BACKOFF_MIN
						 : s->first_round < s->next_round || s->acked_upto > s->position ? SINK_INFLIGHT_MS
																						 : SINK_IDLE_MS);
	}
	next_tick = GetCurrentTimestamp() + (TimestampTz)wait * 1000;
	return wait;
}

/*
 * Read the sinks of this worker from the table: add the new ones, stop
 * those gone or changed (a changed one starts again, reading the tails).
 */
static void
sinks_load(void *arg)
{
	int worker = *(int *)arg;
	StreamprocAsOwner saved;
	Datum args[2];
	ListCell *lc;
	uint64 i;
	int ret;

	foreach (lc, sinks)
		((Sink *)lfirst(lc))->seen = false;
	if (sinks_installed())
	{
		streamproc_spi_as_owner_begin(&saved);
		args[0] = Int32GetDatum(streamproc_workers);
		args[1] = Int32GetDatum(worker);
		ret = SPI_execute_with_args("SELECT name, name || '/' || (pg_catalog.date_part('epoch', created_at)"
									" * 1000000)::pg_catalog.int8,"
									" pg_catalog.concat_ws(' ', view::pg_catalog.oid, topic, brokers, format,"
									" key::pg_catalog.text, options::pg_catalog.text, created_at),"
									" view::pg_catalog.oid, topic, brokers, format, key, options, paused,"
									" position, state, retry_at"
									" FROM streamproc.sinks"
									" WHERE (pg_catalog.hashtext(name)::pg_catalog.int8 + 2147483648) % $1 = $2",
									2, (Oid[]){INT4OID, INT4OID}, args, NULL, true, 0);
		if (ret != SPI_OK_SELECT)
			elog(ERROR, "could not read streamproc.sinks: %s", SPI_result_code_string(ret));
		for (i = 0; i < SPI_processed; i++)
		{
			HeapTuple tup = SPI_tuptable->vals[i];
			TupleDesc desc = SPI_tuptable->tupdesc;
			char *name = SPI_getvalue(tup, desc, 1);
			char *definition = SPI_getvalue(tup, desc, 3);
			Sink *s = NULL;
			bool isnull;
			Datum d;
			MemoryContext old;

			foreach (lc, sinks)
				if (strcmp(((Sink *)lfirst(lc))->name, name) == 0)
					s = lfirst(lc);
			if (s != NULL && strcmp(s->definition, definition) != 0)
			{
				sinks = list_delete_ptr(sinks, s);
				sink_free(s);
				s = NULL;
			}
			if (s == NULL)
			{
				Oid viewid = DatumGetObjectId(SPI_getbinval(tup, desc, 4, &isnull));
				ArrayType *key;

				d = SPI_getbinval(tup, desc, 8, &isnull);
				key = isnull ? NULL : DatumGetArrayTypeP(d);
				old = MemoryContextSwitchTo(sink_cxt);
				s = palloc0(sizeof(Sink));
				s->name = pstrdup(name);
				s->identity = SPI_getvalue(tup, desc, 2);
				s->definition = pstrdup(definition);
				s->view = viewid;
				s->topic = SPI_getvalue(tup, desc, 5);
				s->brokers = SPI_getvalue(tup, desc, 6);
				s->options = DatumGetJsonbPCopy(SPI_getbinval(tup, desc, 9, &isnull));
				s->state = SPI_getvalue(tup, desc, 12);
				s->backoff_ms = SINK_BACKOFF_MIN;
				MemoryContextSwitchTo(old);
				/* A view dropped meanwhile: the sink goes with it (catalog.c). */
				if (get_rel_name(viewid) == NULL)
				{
					sink_free(s);
					continue;
				}
				d = PointerGetDatum(sink_query(viewid, SPI_getvalue(tup, desc, 7), key));
				s->query = MemoryContextStrdup(sink_cxt, DatumGetCString(d));
				old = MemoryContextSwitchTo(sink_cxt);
				sinks = lappend(sinks, s);
				MemoryContextSwitchTo(old);
				d = SPI_getbinval(tup, desc, 13, &isnull);
				s->retry_at = isnull ? 0 : DatumGetTimestampTz(d);
			}
			s->seen = true;
			s->paused = DatumGetBool(SPI_getbinval(tup, desc, 10, &isnull));
			/*
			 * The committed position: the table's when the sink is new here
			 * or stopped (paused), ours while it runs (only we move it, and
			 * what a producer skips rests on tails read after it).
			 */
			if (s->rk == NULL)
			{
				s->position = DatumGetInt64(SPI_getbinval(tup, desc, 11, &isnull));
				sink_reset_rounds(s);
			}
		}
		streamproc_spi_as_owner_end(&saved);
	}
	foreach (lc, sinks)
	{
		Sink *s = lfirst(lc);

		if (!s->seen)
		{
			sinks = foreach_delete_current(sinks, lc);
			sink_free(s);
		}
	}
}

/*
 * One tick of a sink, in a transaction: serve the delivery reports; once a
 * round is acknowledged, commit its position; then produce the next round.
 */
static void
sink_step(void *arg)
{
	Sink *s = arg;
	StreamprocAsOwner saved;
	Datum args[5];
	bool isnull;
	int64 last;
	int64 trimmed;
	uint64 i;
	int ret;

	if (s->rk == NULL)
		sink_start(s);
	rd_kafka_poll(s->rk, 0);
	if (s->failed)
		ereport(ERROR,
				(errcode(ERRCODE_CONNECTION_FAILURE),
				 errmsg("Kafka refused a message of sink \"%s\": %s", s->name, s->error)));

	/* The rounds Kafka acknowledged, in order. */
	while (s->first_round < s->next_round && s->rounds[s->first_round % SINK_ROUNDS].pending == 0)
	{
		SinkRound *r = &s->rounds[s->first_round % SINK_ROUNDS];

		s->acked_upto = r->upto;
		s->acked_count += r->count;
		s->first_round++;
	}
	/* Waiting for Kafka: say so when it takes long and the broker errs. */
	if (s->first_round < s->next_round && s->broker_error[0] != '\0' &&
		strcmp(s->state, "waiting") != 0 &&
		TimestampDifferenceExceeds(s->rounds[s->first_round % SINK_ROUNDS].sent_at,
								   GetCurrentTimestamp(), SINK_WAITING_MS))
		sink_set_state(s, "waiting", s->broker_error);

	streamproc_spi_as_owner_begin(&saved);
	if (s->acked_upto > s->position ||
		(strcmp(s->state, "running") != 0 && s->first_round == s->next_round))
	{
		/* Those rounds are in Kafka: commit their position. */
		args[0] = CStringGetTextDatum(s->name);
		args[1] = Int64GetDatum(Max(s->acked_upto, s->position));
		args[2] = Int64GetDatum(s->acked_count);
		args[3] = CStringGetTextDatum(s->definition);
		ret = SPI_execute_with_args("UPDATE streamproc.sinks SET position = $2, messages = messages + $3,"
									" produced_at = CASE WHEN $3 > 0 THEN pg_catalog.now() ELSE produced_at END,"
									" state = 'running', retry_at = NULL"
									" WHERE name = $1 AND pg_catalog.concat_ws(' ', view::pg_catalog.oid, topic, brokers,"
									" format, key::pg_catalog.text, options::pg_catalog.text, created_at) = $4",
									4, (Oid[]){TEXTOID, INT8OID, INT8OID, TEXTOID}, args, NULL, false, 0);
		if (ret != SPI_OK_UPDATE)
			elog(ERROR, "could not update streamproc.sinks: %s", SPI_result_code_string(ret));
		/* Ours once the transaction commits (streamproc_sinks_run()). */
		s->committing = Max(s->acked_upto, s->position);
	}
	if (s->next_round - s->first_round >= SINK_ROUNDS)
	{
		streamproc_spi_as_owner_end(&saved);
		return;
	}

	/* The next rounds, while the others are in flight. */
	args[0] = ObjectIdGetDatum(s->view);
	ret = SPI_execute_with_args("SELECT last_position, trimmed_to FROM streamproc.change_logs WHERE view = $1",
								1, (Oid[]){OIDOID}, args, NULL, true, 0);
	if (ret != SPI_OK_SELECT)
		elog(ERROR, "could not read streamproc.change_logs: %s", SPI_result_code_string(ret));
	if (SPI_processed == 0)
		ereport(ERROR,
				(errcode(ERRCODE_UNDEFINED_OBJECT),
				 errmsg("continuous view \"%s\" of Kafka sink \"%s\" has no change log",
						get_rel_name(s->view) ? get_rel_name(s->view) : "?", s->name),
				 errhint("Drop the sink and create it again.")));
	last = DatumGetInt64(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull));
	trimmed = DatumGetInt64(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 2, &isnull));
	if (s->read_upto < trimmed)
		ereport(ERROR,
				(errcode(ERRCODE_SNAPSHOT_TOO_OLD),
				 errmsg("Kafka sink \"%s\" is at position " INT64_FORMAT ", but the change log keeps changes after " INT64_FORMAT " only",
						s->name, s->read_upto, trimmed),
				 errhint("Drop the sink and create it again.")));
	if (s->plan == NULL)
	{
		SPIPlanPtr plan = SPI_prepare(s->query, 3, (Oid[]){OIDOID, INT8OID, INT8OID});

		if (plan == NULL || SPI_keepplan(plan) != 0)
			elog(ERROR, "could not prepare the query of sink \"%s\": %s", s->name,
				 SPI_result_code_string(SPI_result));
		s->plan = plan;
	}
	while (s->read_upto < last && s->next_round - s->first_round < SINK_ROUNDS)
	{
		SinkRound *r = &s->rounds[s->next_round % SINK_ROUNDS];
		int64 upto = Min(last, s->read_upto + SINK_BATCH);
		ParamListInfo params = makeParamList(3);
		SPIExecuteOptions options;
		SinkDest dest;

		params->params[0].value = ObjectIdGetDatum(s->view);
		params->params[0].ptype = OIDOID;
		params->params[1].value = Int64GetDatum(s->read_upto);
		params->params[1].ptype = INT8OID;
		params->params[2].value = Int64GetDatum(upto);
		params->params[2].ptype = INT8OID;
		for (i = 0; i < 3; i++)
		{
			params->params[i].isnull = false;
			params->params[i].pflags = PARAM_FLAG_CONST;
		}
		r->upto = upto;
		r->count = 0;
		r->pending = 0;
		r->sent_at = GetCurrentTimestamp();
		if (s->first_round == s->next_round)
			s->broker_error[0] = '\0';

		/* Each row goes to the producer as the executor makes it. */
		memset(&dest, 0, sizeof(dest));
		dest.pub.receiveSlot = sink_dest_receive;
		dest.pub.rStartup = sink_dest_startup;
		dest.pub.rShutdown = sink_dest_shutdown;
		dest.pub.rDestroy = sink_dest_shutdown;
		dest.pub.mydest = DestNone;
		dest.sink = s;
		dest.round = r;
		memset(&options, 0, sizeof(options));
		options.params = params;
		options.read_only = true;
		options.dest = (DestReceiver *)&dest;
		ret = SPI_execute_plan_extended(s->plan, &options);
		/* SPI_OK_UTILITY, as SPI calls a SELECT whose rows it does not keep */
		if (ret < 0)
			elog(ERROR, "could not read the changes of sink \"%s\": %s", s->name, SPI_result_code_string(ret));
		if (dest.rows != upto - s->read_upto)
			elog(ERROR, "the change log of sink \"%s\" has " INT64_FORMAT " changes in (" INT64_FORMAT ", " INT64_FORMAT "]",
				 s->name, dest.rows, s->read_upto, upto);
		s->read_upto = upto;
		s->next_round++;
		rd_kafka_poll(s->rk, 0);
	}
	streamproc_spi_as_owner_end(&saved);
}

/* A row of the sink's query: produce it (position, key, value, partition key). */
static bool
sink_dest_receive(TupleTableSlot *slot, DestReceiver *self)
{
	SinkDest *dest = (SinkDest *)self;
	text *key;
	text *value;
	text *pkey;

	slot_getallattrs(slot);
	key = slot->tts_isnull[1] ? NULL : DatumGetTextPP(slot->tts_values[1]);
	value = slot->tts_isnull[2] ? NULL : DatumGetTextPP(slot->tts_values[2]);
	pkey = slot->tts_isnull[3] ? NULL : DatumGetTextPP(slot->tts_values[3]);
	sink_produce(dest->sink, dest->round, DatumGetInt64(slot->tts_values[0]),
				 key ? VARDATA_ANY(key) : NULL, key ? VARSIZE_ANY_EXHDR(key) : 0,
				 value ? VARDATA_ANY(value) : NULL, value ? VARSIZE_ANY_EXHDR(value) : 0,
				 pkey ? VARDATA_ANY(pkey) : NULL, pkey ? VARSIZE_ANY_EXHDR(pkey) : 0);
	dest->rows++;
	return true;
}

static void
sink_dest_startup(DestReceiver *self, int operation, TupleDesc typeinfo)
{
}

static void
sink_dest_shutdown(DestReceiver *self)
{
}

/* Produce one change, unless its partition holds it already. */
static void
sink_produce(Sink *s, SinkRound *r, int64 position, const char *key, size_t keylen,
			 const char *value, size_t valuelen, const char *pkey, size_t pkeylen)
{
	char pos[32];
	int32 partition;
	rd_kafka_resp_err_t err;

	if (key != NULL)
		partition = rd_kafka_msg_partitioner_murmur2(s->rkt, key, keylen, s->npartitions, NULL, NULL);
	else if (pkey != NULL)
		partition = rd_kafka_msg_partitioner_murmur2(s->rkt, pkey, pkeylen, s->npartitions, NULL, NULL);
	else
		partition = (int32)(position % s->npartitions);
	if (position <= s->tails[partition])
		return;
	snprintf(pos, sizeof(pos), INT64_FORMAT, position);
	for (;;)
	{
		err = rd_kafka_producev(s->rk,
								RD_KAFKA_V_RKT(s->rkt),
								RD_KAFKA_V_PARTITION(partition),
								RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY),
								RD_KAFKA_V_KEY(key, keylen),
								RD_KAFKA_V_VALUE((void *)value, valuelen),
								RD_KAFKA_V_HEADER(SINK_HEADER_ID, s->identity, -1),
								RD_KAFKA_V_HEADER(SINK_HEADER_POSITION, pos, -1),
								RD_KAFKA_V_OPAQUE((void *)(uintptr_t)(r - s->rounds)),
								RD_KAFKA_V_END);
		if (err != RD_KAFKA_RESP_ERR__QUEUE_FULL)
			break;
		/* The producer's queue is full: let it deliver. */
		rd_kafka_poll(s->rk, 10);
		CHECK_FOR_INTERRUPTS();
	}
	if (err == RD_KAFKA_RESP_ERR_MSG_SIZE_TOO_LARGE)
		ereport(ERROR,
				(errcode(ERRCODE_PROGRAM_LIMIT_EXCEEDED),
				 errmsg("change " INT64_FORMAT " of Kafka sink \"%s\" does not fit in a message", position, s->name),
				 errdetail("Its key and value take %zu bytes, more than the producer's message.max.bytes.",
						   keylen + valuelen),
				 errhint("Drop the sink and create it again with a larger \"message.max.bytes\" in its options (the topic's max.message.bytes must allow it too).")));
	if (err != RD_KAFKA_RESP_ERR_NO_ERROR)
		ereport(ERROR,
				(errcode(ERRCODE_CONNECTION_FAILURE),
				 errmsg("could not produce change " INT64_FORMAT " of Kafka sink \"%s\": %s",
						position, s->name, rd_kafka_err2str(err))));
	r->pending++;
	r->count++;
	s->pending++;
}

/*
 * Start the sink's producer: the topic's partitions, and each one's tail.
 * On error, whatever was built is freed by sink_failed() (sink_close()).
 */
static void
sink_start(Sink *s)
{
	rd_kafka_conf_t *conf = rd_kafka_conf_new();
	rd_kafka_conf_t *tail_conf;
	const rd_kafka_metadata_t *md = NULL;
	char errbuf[SINK_ERROR_LEN];
	rd_kafka_resp_err_t err;

	if (!streamproc_kafka_conf_apply(conf, s->options, errbuf, sizeof(errbuf)))
	{
		rd_kafka_conf_destroy(conf);
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("%s", errbuf)));
	}
	conf_set(conf, "bootstrap.servers", s->brokers);
	tail_conf = rd_kafka_conf_dup(conf);
	conf_set(conf, "enable.idempotence", "true");
	conf_set(conf, "enable.gapless.guarantee", "true");
	conf_set(conf, "message.timeout.ms", "0");
	rd_kafka_conf_set_dr_msg_cb(conf, dr_msg_cb);
	rd_kafka_conf_set_error_cb(conf, error_cb);
	rd_kafka_conf_set_log_cb(conf, log_cb);
	rd_kafka_conf_set_opaque(conf, s);
	s->closing = false;
	s->failed = false;
	s->broker_error[0] = '\0';
	sink_reset_rounds(s);
	s->rk = streamproc_kafka_new(RD_KAFKA_PRODUCER, conf, errbuf, sizeof(errbuf));
	if (s->rk == NULL)
	{
		rd_kafka_conf_destroy(conf);
		rd_kafka_conf_destroy(tail_conf);
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("could not create the producer of Kafka sink \"%s\": %s",
						s->name, streamproc_kafka_redact(errbuf, s->options))));
	}
	s->rkt = rd_kafka_topic_new(s->rk, s->topic, NULL);

	err = rd_kafka_metadata(s->rk, 0, s->rkt, &md, SINK_NET_TIMEOUT_MS);
	if (err == RD_KAFKA_RESP_ERR_NO_ERROR && md->topic_cnt == 1)
		err = md->topics[0].err;
	if (err != RD_KAFKA_RESP_ERR_NO_ERROR || md->topics[0].partition_cnt <= 0)
	{
		if (md != NULL)
			rd_kafka_metadata_destroy(md);
		rd_kafka_conf_destroy(tail_conf);
		ereport(ERROR,
				(errcode(ERRCODE_CONNECTION_FAILURE),
				 errmsg("could not read the partitions of topic \"%s\" for Kafka sink \"%s\": %s",
						s->topic, s->name, rd_kafka_err2str(err)),
				 err == RD_KAFKA_RESP_ERR_UNKNOWN_TOPIC_OR_PART
					 ? errhint("Create the topic: a sink does not create it.")
					 : 0));
	}
	s->npartitions = md->topics[0].partition_cnt;
	rd_kafka_metadata_destroy(md);
	s->tails = MemoryContextAllocZero(sink_cxt, sizeof(int64) * s->npartitions);
	sink_read_tails(s, tail_conf);
}

/*
 * For each partition, the position of the newest message of this sink
 * (0: none), read backwards from the partition's end in growing steps.
 * Takes conf.
 */
static void
sink_read_tails(Sink *s, rd_kafka_conf_t *conf)
{
	char errbuf[SINK_ERROR_LEN];
	rd_kafka_t *c;
	rd_kafka_topic_t *t;
	volatile int32 p;

	conf_set(conf, "enable.auto.commit", "false");
	conf_set(conf, "enable.auto.offset.store", "false");
	conf_set(conf, "enable.partition.eof", "false");
	rd_kafka_conf_set_log_cb(conf, log_cb);
	c = streamproc_kafka_new(RD_KAFKA_CONSUMER, conf, errbuf, sizeof(errbuf));
	if (c == NULL)
	{
		rd_kafka_conf_destroy(conf);
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("could not create the consumer of Kafka sink \"%s\": %s",
						s->name, streamproc_kafka_redact(errbuf, s->options))));
	}
	t = rd_kafka_topic_new(c, s->topic, NULL);
	PG_TRY();
	{
		for (p = 0; p < s->npartitions; p++)
		{
			int64 lo;
			int64 hi;
			int64 end;
			int64 step = SINK_TAIL_STEP;
			rd_kafka_resp_err_t err;

			err = rd_kafka_query_watermark_offsets(c, s->topic, p, &lo, &hi, SINK_NET_TIMEOUT_MS);
			if (err != RD_KAFKA_RESP_ERR_NO_ERROR)
				ereport(ERROR,
						(errcode(ERRCODE_CONNECTION_FAILURE),
						 errmsg("could not read the offsets of partition %d of topic \"%s\" for Kafka sink \"%s\": %s",
								p, s->topic, s->name, rd_kafka_err2str(err))));
			for (end = hi; end > lo && s->tails[p] == 0; step *= 4)
			{
				int64 start = Max(lo, end - step);
				int64 next = start;

				if (rd_kafka_consume_start(t, p, start) == -1)
					ereport(ERROR,
							(errcode(ERRCODE_CONNECTION_FAILURE),
							 errmsg("could not read partition %d of topic \"%s\" for Kafka sink \"%s\": %s",
									p, s->topic, s->name, rd_kafka_err2str(rd_kafka_last_error()))));
				while (next < end)
				{
					rd_kafka_message_t *m = rd_kafka_consume(t, p, SINK_FETCH_TIMEOUT_MS);

					CHECK_FOR_INTERRUPTS();
					if (m == NULL || m->err != RD_KAFKA_RESP_ERR_NO_ERROR)
					{
						err = m ? m->err : rd_kafka_last_error();
						if (m)
							rd_kafka_message_destroy(m);
						rd_kafka_consume_stop(t, p);
						ereport(ERROR,
								(errcode(ERRCODE_CONNECTION_FAILURE),
								 errmsg("could not read partition %d of topic \"%s\" for Kafka sink \"%s\": %s",
										p, s->topic, s->name, rd_kafka_err2str(err))));
					}
					if (m->offset >= next && m->offset < end)
						s->tails[p] = Max(s->tails[p], message_position(m, s->identity));
					next = m->offset + 1;
					rd_kafka_message_destroy(m);
				}
				rd_kafka_consume_stop(t, p);
				end = start;
			}
		}
	}
	PG_FINALLY();
	{
		rd_kafka_topic_destroy(t);
		rd_kafka_destroy(c);
	}
	PG_END_TRY();
}

/* The position header of a message of the sink with this identity, or 0. */
static int64
message_position(rd_kafka_message_t *m, const char *identity)
{
	rd_kafka_headers_t *hdrs;
	const void *val;
	size_t size;
	char buf[32];
	size_t idlen = strlen(identity);

	if (rd_kafka_message_headers(m, &hdrs) != RD_KAFKA_RESP_ERR_NO_ERROR)
		return 0;
	if (rd_kafka_header_get_last(hdrs, SINK_HEADER_ID, &val, &size) != RD_KAFKA_RESP_ERR_NO_ERROR ||
		size != idlen || memcmp(val, identity, idlen) != 0)
		return 0;
	if (rd_kafka_header_get_last(hdrs, SINK_HEADER_POSITION, &val, &size) != RD_KAFKA_RESP_ERR_NO_ERROR ||
		size == 0 || size >= sizeof(buf))
		return 0;
	memcpy(buf, val, size);
	buf[size] = '\0';
	return strtoi64(buf, NULL, 10);
}

/*
 * Stop the producer, dropping what it had not delivered: what reached
 * Kafka is found again by the next start's tails.
 */
static void
sink_close(Sink *s)
{
	if (s->rk == NULL)
		return;
	s->closing = true;
	rd_kafka_purge(s->rk, RD_KAFKA_PURGE_F_QUEUE | RD_KAFKA_PURGE_F_INFLIGHT);
	rd_kafka_poll(s->rk, 0);
	if (s->rkt != NULL)
		rd_kafka_topic_destroy(s->rkt);
	rd_kafka_destroy(s->rk);
	s->rk = NULL;
	s->rkt = NULL;
	if (s->tails != NULL)
		pfree(s->tails);
	s->tails = NULL;
	sink_reset_rounds(s);
}

/* No round in flight: the next one starts after the committed position. */
static void
sink_reset_rounds(Sink *s)
{
	s->first_round = s->next_round = 0;
	s->pending = 0;
	s->read_upto = s->acked_upto = s->position;
	s->acked_count = 0;
}

static void
sink_free(Sink *s)
{
	sink_close(s);
	pfree(s->name);
	pfree(s->identity);
	pfree(s->definition);
	pfree(s->topic);
	pfree(s->brokers);
	pfree(s->options);
	pfree(s->state);
	if (s->query != NULL)
		pfree(s->query);
	if (s->plan != NULL)
		SPI_freeplan(s->plan);
	pfree(s);
}

/*
 * A sink's round failed: stop its producer, back off, and say why in the
 * table (in a transaction of its own; if even that fails, the server log
 * says it).
 */
static void
sink_failed(Sink *s, const char *message)
{
	SinkFailure fail;
	ErrorData *edata;

	sink_close(s);
	s->retry_at = GetCurrentTimestamp() + (TimestampTz)s->backoff_ms * 1000;
	ereport(LOG,
			(errmsg("Kafka sink \"%s\" failed: %s", s->name, message),
			 errdetail("It starts again in %d ms, after the last change its topic holds.", s->backoff_ms)));
	s->backoff_ms = Min(s->backoff_ms * 2, SINK_BACKOFF_MAX);
	fail.s = s;
	fail.message = message;
	edata = streamproc_run_xact(sink_record_failure, &fail);
	if (edata != NULL)
		FreeErrorData(edata); /* the server log has the failure */
}

static void
sink_record_failure(void *arg)
{
	SinkFailure *fail = arg;

	sink_set_state(fail->s, "retrying", fail->message);
}

/* Write the sink's state and error (in the caller's transaction). */
static void
sink_set_state(Sink *s, const char *state, const char *error)
{
	StreamprocAsOwner saved;
	Datum args[4];
	char nulls[4] = {' ', ' ', ' ', ' '};
	int ret;

	streamproc_spi_as_owner_begin(&saved);
	args[0] = CStringGetTextDatum(s->name);
	args[1] = CStringGetTextDatum(state);
	args[2] = CStringGetTextDatum(error);
	args[3] = TimestampTzGetDatum(s->retry_at);
	if (strcmp(state, "retrying") != 0)
		nulls[3] = 'n';
	ret = SPI_execute_with_args("UPDATE streamproc.sinks SET state = $2, last_error = $3,"
								" last_error_at = pg_catalog.now(), retry_at = $4 WHERE name = $1",
								4, (Oid[]){TEXTOID, TEXTOID, TEXTOID, TIMESTAMPTZOID}, args, nulls, false, 0);
	if (ret != SPI_OK_UPDATE)
		elog(ERROR, "could not update streamproc.sinks: %s", SPI_result_code_string(ret));
	streamproc_spi_as_owner_end(&saved);
	sink_note_state(s, state);
}

/*
 * The state as the table has it now, kept in sink_cxt (a tick commits
 * many times a second: copy only when it changes).
 */
static void
sink_note_state(Sink *s, const char *state)
{
	if (strcmp(s->state, state) == 0)
		return;
	pfree(s->state);
	s->state = MemoryContextStrdup(sink_cxt, state);
}

static void
conf_set(rd_kafka_conf_t *conf, const char *key, const char *value)
{
	char errstr[SINK_ERROR_LEN];

	if (rd_kafka_conf_set(conf, key, value, errstr, sizeof(errstr)) != RD_KAFKA_CONF_OK)
		elog(ERROR, "could not set Kafka option \"%s\": %s", key, errstr);
}

/* ----------------------------------------------------------------
 * librdkafka callbacks: called from rd_kafka_poll() on the worker's
 * thread (error_cb and log_cb may run on librdkafka's threads: they only
 * copy into the sink's buffers); no PostgreSQL calls.
 * ----------------------------------------------------------------
 */

static void
dr_msg_cb(rd_kafka_t *rk, const rd_kafka_message_t *m, void *opaque)
{
	Sink *s = opaque;

	s->pending--;
	s->rounds[(uintptr_t)m->_private].pending--;
	if (m->err != RD_KAFKA_RESP_ERR_NO_ERROR && !s->closing && !s->failed)
	{
		s->failed = true;
		snprintf(s->error, sizeof(s->error), "%s", rd_kafka_err2str(m->err));
	}
}

static void
error_cb(rd_kafka_t *rk, int err, const char *reason, void *opaque)
{
	Sink *s = opaque;

	snprintf(s->broker_error, sizeof(s->broker_error), "%s: %s",
			 rd_kafka_err2name((rd_kafka_resp_err_t)err), reason);
	if (err == RD_KAFKA_RESP_ERR__FATAL && !s->closing && !s->failed)
	{
		char fatal[SINK_ERROR_LEN];

		rd_kafka_fatal_error(rk, fatal, sizeof(fatal));
		snprintf(s->error, sizeof(s->error), "%s", fatal);
		s->failed = true;
	}
}

/* librdkafka's log: its errors reach the sink through error_cb. */
static void
log_cb(const rd_kafka_t *rk, int level, const char *fac, const char *buf)
{
}
