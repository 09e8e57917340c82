/*-------------------------------------------------------------------------
 *
 * source.c
 *	  Kafka sources, the SQL surface: streamproc.create_kafka_source(),
 *	  drop_kafka_source(), pause_source(), resume_source(), the masking
 *	  behind the view streamproc.kafka_sources, and what dropping a stream
 *	  does to its sources.
 *
 * What is stored.  One row of streamproc.sources per source: read topic
 * from brokers, parse each message as format (with format_options) into a
 * row of stream, from start_offset on, spreading the partitions over
 * `workers` ingest workers, with the librdkafka settings in options.
 * streamproc.kafka_offsets holds, per source and partition, the offset of
 * the next message to consume.  This file writes sources and deletes
 * offsets; the ingest workers (kafka.c) read sources, write offsets in
 * their checkpoint transactions, and interpret a row through the C API of
 * source.h (streamproc_parse_start_offset, streamproc_kafka_conf_apply).
 * Every change here calls streamproc_catalog_changed(): the workers reload
 * the sources when the catalog generation moves, at commit.
 *
 * Validation.  Everything is checked when the source is created, so the
 * workers can trust a row: the stream (a streamproc stream the caller
 * owns), the name, the topic (Kafka's rules), the format and the parser
 * options against the stream's current columns (the parser is built and
 * thrown away), workers, start_offset (stored in a canonical form: a
 * timestamp is resolved with the session's TimeZone and kept in UTC), and
 * the librdkafka options: each is set on a fresh rd_kafka_conf_t, then a
 * consumer handle is created from the whole configuration, as the workers
 * will, and destroyed at once.  rd_kafka_new() does not wait for a broker
 * (it starts threads that connect in the background); the handle is
 * destroyed without a consumer close, and its logs are discarded, so
 * creation never depends on a broker being up.  librdkafka handles are
 * malloc'd, outside memory contexts: no ereport may happen while one is
 * allocated, so errors are collected first, the handle freed, then raised.
 *
 * Options that streamproc itself sets are reserved (bootstrap.servers and
 * group.id come from their own parameters, auto.offset.reset from
 * start_offset; auto-commit and the offset store would break exactly-once,
 * since offsets are committed to kafka_offsets with the state they
 * produced; partition EOF events are streamproc's business).  Options that
 * make the server process load code (plugin.library.paths, ssl.providers,
 * the OpenSSL engine), run a program (sasl.kerberos.kinit.cmd) or read
 * server files (*.location, the Kerberos keytab) are refused to roles that
 * could not do the same in SQL: superusers, pg_execute_server_program and
 * pg_read_server_files respectively, as for COPY.  librdkafka applies some
 * of them as soon as they are set, so the check comes before any
 * rd_kafka_conf_set().
 *
 * Secrets.  options may hold credentials (sasl.password, ssl.key.pem, ...):
 * streamproc.sources is readable by superusers only, and the public view
 * streamproc.kafka_sources shows options through
 * streamproc._mask_kafka_options(), which replaces the value of every
 * secret key by "********".  streamproc_kafka_option_is_secret() is the one
 * rule.  Error messages never show a secret value: librdkafka's message
 * about a rejected secret value is replaced by a generic one, and the
 * secret values are cut out of rd_kafka_new()'s message.  The statement
 * text itself (with the password literal) is outside our control: it is
 * logged when log_statement says so (documented).
 *
 * Why direct catalog writes.  Callers have no privileges on
 * streamproc.sources, and the functions are not SECURITY DEFINER (they
 * would then validate, and build librdkafka handles, as the extension's
 * owner).  As view.c does for streamproc.views, rows are inserted, updated
 * and deleted with the heap and index functions, which check no
 * privileges.  Those bypass what the executor would do: CHECK constraints
 * (every field is validated here first), defaults (all values are given),
 * and the ON DELETE CASCADE of kafka_offsets (a trigger: offsets are
 * deleted here explicitly).
 *
 * Locking.  create_kafka_source() holds AccessShareLock on the stream
 * until commit, so the stream cannot be dropped or altered under a source
 * being created.  The source functions serialize among themselves with
 * ShareUpdateExclusiveLock on streamproc.sources (self-conflicting; it
 * blocks neither the workers' reads nor the foreign key checks of their
 * kafka_offsets writes), which makes "already exists" and "does not
 * exist" exact.  Dropping a source deletes its row before its offsets: a
 * worker's checkpoint that is writing offsets holds a KEY SHARE lock on
 * that row (foreign key check), so the delete waits for it, and the
 * offsets scan that follows, with a fresh snapshot, sees what it wrote; a
 * later checkpoint of the dropped source fails its foreign key check and
 * writes nothing.  DROP FOREIGN TABLE ... RESTRICT of a stream with
 * sources is refused before it starts (streamproc_sources_check_drop,
 * under the AccessExclusiveLock the drop takes anyway); any drop that goes
 * through (CASCADE, DROP SCHEMA ... CASCADE, DROP OWNED, DROP EXTENSION)
 * deletes the stream's sources and their offsets from the object access
 * hook (streamproc_sources_forget_stream).
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include <pthread.h>
#include <signal.h>

#include <librdkafka/rdkafka.h>

#include "access/genam.h"
#include "access/htup_details.h"
#include "access/relation.h"
#include "access/table.h"
#include "access/xact.h"
#include "catalog/indexing.h"
#include "catalog/namespace.h"
#include "catalog/pg_authid.h"
#include "catalog/pg_collation.h"
#include "common/int.h"
#include "common/jsonapi.h"
#include "fmgr.h"
#include "lib/stringinfo.h"
#include "mb/pg_wchar.h"
#include "miscadmin.h"
#include "storage/lmgr.h"
#include "utils/acl.h"
#include "utils/builtins.h"
#include "utils/datetime.h"
#include "utils/fmgroids.h"
#include "utils/jsonb.h"
#include "utils/lsyscache.h"
#include "utils/numeric.h"
#include "utils/rel.h"
#include "utils/syscache.h"
#include "utils/timestamp.h"

#include "parse.h"
#include "feed.h"
#include "source.h"
#include "stream.h"
#include "streamproc.h"

/* The extension's schema and the tables this file writes. */
#define STREAMPROC_SCHEMA "streamproc"
#define SOURCES_TABLE     "sources"
#define OFFSETS_TABLE     "kafka_offsets"

/* Columns of streamproc.sources, in the order of streamproc--0.1.sql. */
#define Natts_sources               13
#define Anum_sources_name           1
#define Anum_sources_stream         2
#define Anum_sources_topic          3
#define Anum_sources_brokers        4
#define Anum_sources_format         5
#define Anum_sources_start_offset   6
#define Anum_sources_workers        7
#define Anum_sources_options        8
#define Anum_sources_format_options 9
#define Anum_sources_group_id       10
#define Anum_sources_paused         11
#define Anum_sources_owner          12
#define Anum_sources_created_at     13

/* streamproc.kafka_offsets.source */
#define Anum_kafka_offsets_source 1

/* Bounds of a source's workers (the CHECK constraint of the table). */
#define SOURCE_MAX_WORKERS 64

/* Kafka's limit on topic names. */
#define KAFKA_TOPIC_MAX_LEN 249

/* What a masked secret looks like. */
#define SECRET_MASK "********"

/* group.id of the throwaway consumer that validates a configuration. */
#define VALIDATION_GROUP_ID "streamproc"

/* Secret values shorter than this are not cut out of librdkafka's messages. */
#define REDACT_MIN_LEN 4

/*
 * A librdkafka option that streamproc sets itself.  param names the
 * parameter of create_kafka_source() to use instead, or is NULL; detail
 * says why, or is NULL.
 */
typedef struct ReservedOption
{
	const char *key;
	const char *param;
	const char *detail;
} ReservedOption;

#define OFFSETS_DETAIL "streamproc commits offsets itself, to streamproc.kafka_offsets in the transaction that commits the state they produced."

static const ReservedOption reserved_options[] = {
	{"bootstrap.servers", "brokers", NULL},
	{"metadata.broker.list", "brokers", NULL},
	{"group.id", "group_id", NULL},
	{"auto.offset.reset", "start_offset", NULL},
	{"enable.auto.commit", NULL, OFFSETS_DETAIL},
	{"auto.commit.enable", NULL, OFFSETS_DETAIL},
	{"enable.auto.offset.store", NULL, OFFSETS_DETAIL},
	{"offset.store.method", NULL, OFFSETS_DETAIL},
	{"offset.store.path", NULL, OFFSETS_DETAIL},
	{"offset.store.sync.interval.ms", NULL, OFFSETS_DETAIL},
	{"enable.partition.eof", NULL, "streamproc sets this option itself."},
};

/* Who may set a privileged option (see privileged_option()). */
typedef enum OptionPrivilege
{
	OPTION_PRIV_NONE,            /* anyone */
	OPTION_PRIV_SUPERUSER,       /* loads code into the server process */
	OPTION_PRIV_EXECUTE_PROGRAM, /* runs a program on the server */
	OPTION_PRIV_READ_FILES       /* reads files of the server */
} OptionPrivilege;

/* Why a set of options was refused (apply_options). */
typedef enum OptionProblem
{
	OPTION_OK,
	OPTION_NOT_OBJECT,     /* options is not a JSON object */
	OPTION_BAD_VALUE_TYPE, /* a value is null, an array or an object */
	OPTION_RESERVED,       /* a key streamproc sets itself */
	OPTION_REJECTED        /* rd_kafka_conf_set() failed */
} OptionProblem;

/* The first problem apply_options() found; strings are palloc'd. */
typedef struct OptionError
{
	OptionProblem problem;
	char *key;
	const ReservedOption *reserved; /* OPTION_RESERVED */
	char *detail;                   /* OPTION_REJECTED: full sentence, secret-safe */
} OptionError;

/* State of the JSON start_offset parser (pg_parse_json callbacks). */
typedef struct OffsetsParseState
{
	int depth;         /* containers open */
	bool is_object;    /* the top-level value is an object */
	char *field;       /* key of the current top-level field */
	char *problem;     /* first problem found, a full sentence, or NULL */
	int n;             /* entries collected */
	int size;          /* allocated entries */
	int32 *partitions; /* partition of each entry */
	int64 *offsets;    /* offset of each entry */
} OffsetsParseState;

PG_FUNCTION_INFO_V1(streamproc_create_kafka_source);
PG_FUNCTION_INFO_V1(streamproc_drop_kafka_source);
PG_FUNCTION_INFO_V1(streamproc_pause_source);
PG_FUNCTION_INFO_V1(streamproc_resume_source);
PG_FUNCTION_INFO_V1(streamproc_mask_kafka_options);

static Oid catalog_table(const char *relname, bool missing_ok);
static Oid sources_catalog(bool missing_ok);
static Oid offsets_catalog(bool missing_ok);
static HeapTuple find_source(Relation rel, const char *name);
static void check_source_owner(Oid stream);
static void delete_offsets(const char *source);
static void set_paused(const char *name, bool paused);
static bool ci_has_prefix(const char *s, const char *prefix);
static bool ci_has_suffix(const char *s, const char *suffix);
static bool ci_contains(const char *s, const char *needle);
static const ReservedOption *reserved_option(const char *key);
static OptionPrivilege privileged_option(const char *key);
static char *option_value_text(JsonbValue *v);
static bool apply_options(rd_kafka_conf_t *conf, Jsonb *options,
						  OptionError *err);
static void validate_kafka_config(const char *brokers, const char *group_id,
								  Jsonb *options);
static void kafka_log_discard(const rd_kafka_t *rk, int level,
							  const char *fac, const char *buf);
static bool parse_nonneg_int64(const char *s, int64 max, int64 *result);
static void start_offset_error(const char *text, const char *detail) pg_attribute_noreturn();
static void parse_offsets_json(const char *text, StreamprocStartOffset *out);
static bool parse_start_timestamp(const char *text, int64 *ms);
static char *start_offset_canonical(const StreamprocStartOffset *so);
static int compare_partitions(const void *a, const void *b);

/* ------------------------------------------------------------------------
 * SQL-callable functions
 * ------------------------------------------------------------------------
 */

/*
 * streamproc_create_kafka_source
 *		streamproc.create_kafka_source(name, stream, topic, brokers, format,
 *		start_offset, workers, options, format_options, group_id): validate
 *		everything (see the file header), then insert the row.
 *
 * Not STRICT because group_id may be NULL; every other argument must not
 * be.
 */
Datum
streamproc_create_kafka_source(PG_FUNCTION_ARGS)
{
	static const char *const argnames[] = {
		"name", "stream", "topic", "brokers", "format", "start_offset",
		"workers", "options", "format_options"};
	char *name;
	Oid relid;
	char *relname;
	char *topic;
	char *brokers;
	char *format_name;
	char *start_text;
	int32 workers;
	Jsonb *options;
	Jsonb *format_options;
	char *group_id = NULL;
	StreamprocFormat format;
	StreamprocParserOptions popts;
	StreamprocStartOffset start;
	char *start_canonical;
	Relation stream;
	Relation rel;
	HeapTuple tuple;
	Datum values[Natts_sources];
	bool nulls[Natts_sources];
	int i;

	streamproc_check_preloaded();

	for (i = 0; i < lengthof(argnames); i++)
	{
		if (PG_ARGISNULL(i))
			ereport(ERROR,
					(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
					 errmsg("Kafka source parameter \"%s\" cannot be null",
							argnames[i])));
	}
	name = text_to_cstring(PG_GETARG_TEXT_PP(0));
	relid = PG_GETARG_OID(1);
	topic = text_to_cstring(PG_GETARG_TEXT_PP(2));
	brokers = text_to_cstring(PG_GETARG_TEXT_PP(3));
	format_name = text_to_cstring(PG_GETARG_TEXT_PP(4));
	start_text = text_to_cstring(PG_GETARG_TEXT_PP(5));
	workers = PG_GETARG_INT32(6);
	options = PG_GETARG_JSONB_P(7);
	format_options = PG_GETARG_JSONB_P(8);
	if (!PG_ARGISNULL(9))
		group_id = text_to_cstring(PG_GETARG_TEXT_PP(9));

	/* The name, and that it is free (exact: source DDL is serialized). */
	if (name[0] == '\0')
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_NAME),
				 errmsg("Kafka source name cannot be empty")));
	if (strlen(name) >= NAMEDATALEN)
		ereport(ERROR,
				(errcode(ERRCODE_NAME_TOO_LONG),
				 errmsg("Kafka source name \"%s\" is too long", name),
				 errdetail("A source name has at most %d bytes.",
						   NAMEDATALEN - 1)));
	rel = table_open(sources_catalog(false), ShareUpdateExclusiveLock);
	if (RelationGetDescr(rel)->natts != Natts_sources)
		elog(ERROR, "catalog table streamproc.sources has an unexpected shape");
	tuple = find_source(rel, name);
	if (HeapTupleIsValid(tuple))
		ereport(ERROR,
				(errcode(ERRCODE_DUPLICATE_OBJECT),
				 errmsg("Kafka source \"%s\" already exists", name)));

	/*
	 * The stream: locked until commit so that it cannot be dropped (or its
	 * columns changed) before the source is in the catalog.
	 */
	LockRelationOid(relid, AccessShareLock);
	relname = get_rel_name(relid);
	if (relname == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_UNDEFINED_TABLE),
				 errmsg("relation with OID %u does not exist", relid)));
	if (!streamproc_is_stream(relid))
		ereport(ERROR,
				(errcode(ERRCODE_WRONG_OBJECT_TYPE),
				 errmsg("\"%s\" is not a stream", relname),
				 errhint("A stream is a foreign table on server streamproc: CREATE FOREIGN TABLE ... SERVER streamproc.")));
	if (!pg_class_ownercheck(relid, GetUserId()))
		aclcheck_error(ACLCHECK_NOT_OWNER, OBJECT_FOREIGN_TABLE, relname);
	if (streamproc_is_feed(relid))
		ereport(ERROR,
				(errcode(ERRCODE_WRONG_OBJECT_TYPE),
				 errmsg("cannot read a Kafka topic into stream \"%s\"", relname),
				 errdetail("It feeds a continuous view the rows of another continuous view, and only that view writes it."),
				 errhint("Create the source for the stream of the upstream view.")));

	/* Scalar parameters. */
	streamproc_kafka_check_topic(topic);
	if (brokers[strspn(brokers, " \t\r\n")] == '\0')
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("Kafka brokers cannot be empty"),
				 errhint("Give the bootstrap brokers as a comma-separated list of host:port.")));
	if (!streamproc_format_from_name(format_name, &format))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("unrecognized message format \"%s\"", format_name),
				 errhint("The formats are json, csv and text.")));
	if (workers < 1 || workers > SOURCE_MAX_WORKERS)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("workers must be between 1 and %d", SOURCE_MAX_WORKERS)));
	if (group_id != NULL && group_id[0] == '\0')
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("Kafka group_id cannot be empty"),
				 errhint("Pass NULL to let streamproc choose the consumer group.")));
	streamproc_parse_start_offset(start_text, &start);
	start_canonical = start_offset_canonical(&start);

	/* The parser options, against the stream's current columns. */
	streamproc_parser_options_from_jsonb(format_options, &popts);
	stream = relation_open(relid, NoLock);
	streamproc_parser_destroy(streamproc_parser_create(stream, format, &popts,
													   CurrentMemoryContext));
	relation_close(stream, NoLock);

	/* The librdkafka configuration, as a worker will build it. */
	if (!JB_ROOT_IS_OBJECT(options) || JB_ROOT_IS_SCALAR(options))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("Kafka options must be a JSON object")));
	streamproc_kafka_check_option_privileges(options);
	validate_kafka_config(brokers, group_id, options);

	/* The row. */
	memset(nulls, false, sizeof(nulls));
	values[Anum_sources_name - 1] = CStringGetTextDatum(name);
	values[Anum_sources_stream - 1] = ObjectIdGetDatum(relid);
	values[Anum_sources_topic - 1] = CStringGetTextDatum(topic);
	values[Anum_sources_brokers - 1] = CStringGetTextDatum(brokers);
	values[Anum_sources_format - 1] = CStringGetTextDatum(format_name);
	values[Anum_sources_start_offset - 1] = CStringGetTextDatum(start_canonical);
	values[Anum_sources_workers - 1] = Int32GetDatum(workers);
	values[Anum_sources_options - 1] = JsonbPGetDatum(options);
	values[Anum_sources_format_options - 1] = JsonbPGetDatum(format_options);
	if (group_id != NULL)
		values[Anum_sources_group_id - 1] = CStringGetTextDatum(group_id);
	else
	{
		values[Anum_sources_group_id - 1] = (Datum)0;
		nulls[Anum_sources_group_id - 1] = true;
	}
	values[Anum_sources_paused - 1] = BoolGetDatum(false);
	values[Anum_sources_owner - 1] = ObjectIdGetDatum(GetUserId());
	values[Anum_sources_created_at - 1] =
		TimestampTzGetDatum(GetCurrentTransactionStartTimestamp());

	tuple = heap_form_tuple(RelationGetDescr(rel), values, nulls);
	CatalogTupleInsert(rel, tuple);
	heap_freetuple(tuple);
	table_close(rel, NoLock);

	streamproc_catalog_changed();
	PG_RETURN_VOID();
}

/*
 * streamproc_drop_kafka_source
 *		streamproc.drop_kafka_source(name, if_exists): delete the source and
 *		its offsets.  The caller must own the source's stream.
 */
Datum
streamproc_drop_kafka_source(PG_FUNCTION_ARGS)
{
	char *name = text_to_cstring(PG_GETARG_TEXT_PP(0));
	bool if_exists = PG_GETARG_BOOL(1);
	Relation rel;
	HeapTuple tuple;
	bool isnull;
	Oid stream;

	streamproc_check_preloaded();

	rel = table_open(sources_catalog(false), ShareUpdateExclusiveLock);
	tuple = find_source(rel, name);
	if (!HeapTupleIsValid(tuple))
	{
		table_close(rel, NoLock);
		if (!if_exists)
			ereport(ERROR,
					(errcode(ERRCODE_UNDEFINED_OBJECT),
					 errmsg("Kafka source \"%s\" does not exist", name)));
		ereport(NOTICE,
				(errmsg("Kafka source \"%s\" does not exist, skipping", name)));
		PG_RETURN_VOID();
	}
	stream = DatumGetObjectId(heap_getattr(tuple, Anum_sources_stream,
										   RelationGetDescr(rel), &isnull));
	check_source_owner(stream);

	/* The row first, then the offsets: see "Locking" in the file header. */
	CatalogTupleDelete(rel, &tuple->t_self);
	heap_freetuple(tuple);
	CommandCounterIncrement();
	delete_offsets(name);
	table_close(rel, NoLock);

	streamproc_catalog_changed();
	PG_RETURN_VOID();
}

/*
 * streamproc_pause_source
 *		streamproc.pause_source(name): the workers stop consuming the
 *		source (at the next catalog reload); its offsets stay.
 */
Datum
streamproc_pause_source(PG_FUNCTION_ARGS)
{
	streamproc_check_preloaded();
	set_paused(text_to_cstring(PG_GETARG_TEXT_PP(0)), true);
	PG_RETURN_VOID();
}

/*
 * streamproc_resume_source
 *		streamproc.resume_source(name): undo pause_source().
 */
Datum
streamproc_resume_source(PG_FUNCTION_ARGS)
{
	streamproc_check_preloaded();
	set_paused(text_to_cstring(PG_GETARG_TEXT_PP(0)), false);
	PG_RETURN_VOID();
}

/*
 * streamproc_mask_kafka_options
 *		streamproc._mask_kafka_options(jsonb): the options with the value of
 *		every secret key (streamproc_kafka_option_is_secret) replaced by
 *		"********".  Anything but an object is returned as is.
 */
Datum
streamproc_mask_kafka_options(PG_FUNCTION_ARGS)
{
	Jsonb *options = PG_GETARG_JSONB_P(0);
	JsonbParseState *state = NULL;
	JsonbIterator *it;
	JsonbIteratorToken r;
	JsonbValue v;
	JsonbValue *result = NULL;
	bool secret = false;

	streamproc_check_preloaded();

	if (!JB_ROOT_IS_OBJECT(options) || JB_ROOT_IS_SCALAR(options))
		PG_RETURN_JSONB_P(options);

	it = JsonbIteratorInit(&options->root);
	while ((r = JsonbIteratorNext(&it, &v, true)) != WJB_DONE)
	{
		if (r == WJB_KEY)
		{
			char *key = pnstrdup(v.val.string.val, v.val.string.len);

			secret = streamproc_kafka_option_is_secret(key);
			pfree(key);
		}
		else if (r == WJB_VALUE && secret)
		{
			v.type = jbvString;
			v.val.string.val = SECRET_MASK;
			v.val.string.len = strlen(SECRET_MASK);
		}
		result = pushJsonbValue(&state, r, r < WJB_BEGIN_ARRAY ? &v : NULL);
	}

	PG_RETURN_JSONB_P(JsonbValueToJsonb(result));
}

/* ------------------------------------------------------------------------
 * C API (source.h)
 * ------------------------------------------------------------------------
 */

/*
 * streamproc_kafka_option_is_secret
 *		See source.h.
 */
bool
streamproc_kafka_option_is_secret(const char *key)
{
	return ci_contains(key, "password") ||
		   ci_contains(key, "secret") ||
		   ci_contains(key, "jaas") ||
		   ci_contains(key, "token") ||
		   ci_has_suffix(key, ".pem") ||
		   ci_has_prefix(key, "ssl.key") ||
		   ci_has_prefix(key, "ssl_key");
}

/*
 * streamproc_kafka_conf_apply
 *		See source.h.
 */
bool
streamproc_kafka_conf_apply(rd_kafka_conf_t *conf, Jsonb *options,
							char *errbuf, size_t errlen)
{
	OptionError err;

	if (apply_options(conf, options, &err))
		return true;

	switch (err.problem)
	{
		case OPTION_NOT_OBJECT:
			snprintf(errbuf, errlen, "Kafka options must be a JSON object");
			break;
		case OPTION_BAD_VALUE_TYPE:
			snprintf(errbuf, errlen,
					 "value of Kafka option \"%s\" must be a string, number or boolean",
					 err.key);
			break;
		case OPTION_RESERVED:
			if (err.reserved->param != NULL)
				snprintf(errbuf, errlen,
						 "Kafka option \"%s\" is reserved by streamproc; the source's %s sets it",
						 err.key, err.reserved->param);
			else
				snprintf(errbuf, errlen,
						 "Kafka option \"%s\" is reserved by streamproc",
						 err.key);
			break;
		case OPTION_REJECTED:
			snprintf(errbuf, errlen, "invalid Kafka option \"%s\": %s",
					 err.key, err.detail);
			break;
		case OPTION_OK:
			/* not reached */
			break;
	}
	return false;
}

/*
 * streamproc_parse_start_offset
 *		See source.h.
 */
void
streamproc_parse_start_offset(const char *text, StreamprocStartOffset *out)
{
	memset(out, 0, sizeof(*out));

	if (pg_strcasecmp(text, "earliest") == 0)
		out->kind = STREAMPROC_START_EARLIEST;
	else if (pg_strcasecmp(text, "latest") == 0)
		out->kind = STREAMPROC_START_LATEST;
	else if (text[strspn(text, " \t\r\n")] == '{')
		parse_offsets_json(text, out);
	else if (parse_start_timestamp(text, &out->timestamp_ms))
		out->kind = STREAMPROC_START_TIMESTAMP;
	else
		start_offset_error(text, NULL);
}

/*
 * streamproc_sources_check_drop
 *		See source.h.
 */
void
streamproc_sources_check_drop(Oid stream)
{
	Oid catalog;
	Relation rel;
	ScanKeyData key;
	SysScanDesc scan;
	HeapTuple tuple;
	char *source = NULL;
	int nsources = 0;

	if (!streamproc_is_stream(stream) ||
		!pg_class_ownercheck(stream, GetUserId()))
		return;
	LockRelationOid(stream, AccessExclusiveLock);

	catalog = sources_catalog(true);
	if (!OidIsValid(catalog))
		return;
	rel = table_open(catalog, AccessShareLock);
	ScanKeyInit(&key, Anum_sources_stream, BTEqualStrategyNumber, F_OIDEQ,
				ObjectIdGetDatum(stream));
	scan = systable_beginscan(rel, InvalidOid, false, NULL, 1, &key);
	while (HeapTupleIsValid(tuple = systable_getnext(scan)))
	{
		bool isnull;
		char *name = TextDatumGetCString(heap_getattr(tuple, Anum_sources_name,
													  RelationGetDescr(rel),
													  &isnull));

		/* Name the first in byte order, whatever the heap order. */
		if (source == NULL || strcmp(name, source) < 0)
			source = name;
		nsources++;
	}
	systable_endscan(scan);
	table_close(rel, AccessShareLock);

	if (source != NULL)
		ereport(ERROR,
				(errcode(ERRCODE_DEPENDENT_OBJECTS_STILL_EXIST),
				 errmsg("cannot drop stream \"%s\" because Kafka source \"%s\" reads into it",
						get_rel_name(stream), source),
				 nsources > 1 ? errdetail_plural("%d other Kafka source also reads into it.",
												 "%d other Kafka sources also read into it.",
												 nsources - 1, nsources - 1)
							  : 0,
				 errhint("Drop the source with streamproc.drop_kafka_source() first, or use DROP ... CASCADE.")));
}

/*
 * streamproc_sources_forget_stream
 *		See source.h.  A sequential scan: the table is small and this runs
 *		only when a stream is dropped.
 */
void
streamproc_sources_forget_stream(Oid stream)
{
	Oid catalog = sources_catalog(true);
	Relation rel;
	ScanKeyData key;
	SysScanDesc scan;
	HeapTuple tuple;
	List *names = NIL;
	ListCell *lc;

	if (!OidIsValid(catalog))
		return;
	rel = table_open(catalog, RowExclusiveLock);
	ScanKeyInit(&key, Anum_sources_stream, BTEqualStrategyNumber, F_OIDEQ,
				ObjectIdGetDatum(stream));
	scan = systable_beginscan(rel, InvalidOid, false, NULL, 1, &key);
	while (HeapTupleIsValid(tuple = systable_getnext(scan)))
	{
		bool isnull;
		char *name = TextDatumGetCString(heap_getattr(tuple, Anum_sources_name,
													  RelationGetDescr(rel),
													  &isnull));

		CatalogTupleDelete(rel, &tuple->t_self);
		ereport(NOTICE,
				(errmsg("drop cascades to Kafka source \"%s\"", name)));
		names = lappend(names, name);
	}
	systable_endscan(scan);
	table_close(rel, RowExclusiveLock);

	if (names == NIL)
		return;
	CommandCounterIncrement();
	foreach (lc, names)
		delete_offsets((const char *)lfirst(lc));
	streamproc_catalog_changed();
}

/* ------------------------------------------------------------------------
 * Catalog access
 * ------------------------------------------------------------------------
 */

/*
 * sources_catalog, offsets_catalog
 *		OID of streamproc.sources / streamproc.kafka_offsets; InvalidOid
 *		when missing_ok and the extension is not installed (or is being
 *		dropped).
 */
static Oid
catalog_table(const char *relname, bool missing_ok)
{
	Oid nsp = get_namespace_oid(STREAMPROC_SCHEMA, missing_ok);
	Oid relid = InvalidOid;

	if (OidIsValid(nsp))
		relid = get_relname_relid(relname, nsp);
	if (!OidIsValid(relid) && !missing_ok)
		ereport(ERROR,
				(errcode(ERRCODE_UNDEFINED_TABLE),
				 errmsg("relation \"%s.%s\" does not exist",
						STREAMPROC_SCHEMA, relname)));
	return relid;
}

static Oid
sources_catalog(bool missing_ok)
{
	return catalog_table(SOURCES_TABLE, missing_ok);
}

static Oid
offsets_catalog(bool missing_ok)
{
	return catalog_table(OFFSETS_TABLE, missing_ok);
}

/*
 * find_source
 *		A copy of the row of source name in rel (streamproc.sources, opened
 *		by the caller), or NULL.  Probes the primary key index.
 */
static HeapTuple
find_source(Relation rel, const char *name)
{
	ScanKeyData key;
	SysScanDesc scan;
	HeapTuple tuple;

	/* The index orders by the column's collation: compare with it. */
	ScanKeyEntryInitialize(&key, 0, Anum_sources_name, BTEqualStrategyNumber,
						   InvalidOid, DEFAULT_COLLATION_OID, F_TEXTEQ,
						   CStringGetTextDatum(name));
	scan = systable_beginscan(rel, RelationGetPrimaryKeyIndex(rel), true,
							  NULL, 1, &key);
	tuple = systable_getnext(scan);
	if (HeapTupleIsValid(tuple))
		tuple = heap_copytuple(tuple);
	systable_endscan(scan);
	return tuple;
}

/*
 * check_source_owner
 *		Raise the usual "must be owner" error unless the current user owns
 *		stream (superusers own everything).  A source whose stream is gone
 *		(a catalog edited by hand) can be managed by superusers only.
 */
static void
check_source_owner(Oid stream)
{
	char *relname = get_rel_name(stream);

	if (relname == NULL)
	{
		if (!superuser())
			ereport(ERROR,
					(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
					 errmsg("must be superuser to manage a Kafka source whose stream does not exist")));
		return;
	}
	if (!pg_class_ownercheck(stream, GetUserId()))
		aclcheck_error(ACLCHECK_NOT_OWNER, OBJECT_FOREIGN_TABLE, relname);
}

/*
 * delete_offsets
 *		Delete the rows of streamproc.kafka_offsets of source.  Scans with
 *		a fresh snapshot (the table is not a system catalog), so rows
 *		committed by a worker we waited for are seen.
 */
static void
delete_offsets(const char *source)
{
	Oid catalog = offsets_catalog(true);
	Relation rel;
	ScanKeyData key;
	SysScanDesc scan;
	HeapTuple tuple;

	if (!OidIsValid(catalog))
		return;
	rel = table_open(catalog, RowExclusiveLock);
	ScanKeyEntryInitialize(&key, 0, Anum_kafka_offsets_source,
						   BTEqualStrategyNumber, InvalidOid,
						   DEFAULT_COLLATION_OID, F_TEXTEQ,
						   CStringGetTextDatum(source));
	scan = systable_beginscan(rel, RelationGetPrimaryKeyIndex(rel), true,
							  NULL, 1, &key);
	while (HeapTupleIsValid(tuple = systable_getnext(scan)))
		CatalogTupleDelete(rel, &tuple->t_self);
	systable_endscan(scan);
	table_close(rel, RowExclusiveLock);
}

/*
 * set_paused
 *		pause_source() and resume_source(): set the source's paused flag.
 *		Setting it to the value it has is not an error and changes nothing.
 */
static void
set_paused(const char *name, bool paused)
{
	Relation rel = table_open(sources_catalog(false), ShareUpdateExclusiveLock);
	HeapTuple tuple = find_source(rel, name);
	TupleDesc desc = RelationGetDescr(rel);
	bool isnull;
	Datum values[Natts_sources];
	bool nulls[Natts_sources];
	bool replace[Natts_sources];
	HeapTuple newtuple;

	if (!HeapTupleIsValid(tuple))
		ereport(ERROR,
				(errcode(ERRCODE_UNDEFINED_OBJECT),
				 errmsg("Kafka source \"%s\" does not exist", name)));
	check_source_owner(DatumGetObjectId(heap_getattr(tuple, Anum_sources_stream,
													 desc, &isnull)));

	if (DatumGetBool(heap_getattr(tuple, Anum_sources_paused, desc, &isnull)) != paused)
	{
		memset(replace, false, sizeof(replace));
		memset(nulls, false, sizeof(nulls));
		values[Anum_sources_paused - 1] = BoolGetDatum(paused);
		replace[Anum_sources_paused - 1] = true;
		newtuple = heap_modify_tuple(tuple, desc, values, nulls, replace);
		CatalogTupleUpdate(rel, &newtuple->t_self, newtuple);
		heap_freetuple(newtuple);
		streamproc_catalog_changed();
	}
	heap_freetuple(tuple);
	table_close(rel, NoLock);
}

/* ------------------------------------------------------------------------
 * Validation helpers
 * ------------------------------------------------------------------------
 */

/*
 * streamproc_kafka_check_topic
 *		Kafka's rule for topic names: 1 to 249 characters among ASCII
 *		letters, digits, '.', '_' and '-', and not "." or "..".
 */
void
streamproc_kafka_check_topic(const char *topic)
{
	size_t len = strlen(topic);
	bool ok = len >= 1 && len <= KAFKA_TOPIC_MAX_LEN &&
			  strcmp(topic, ".") != 0 && strcmp(topic, "..") != 0;
	const char *p;

	for (p = topic; ok && *p != '\0'; p++)
	{
		if (!((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') ||
			  (*p >= '0' && *p <= '9') || *p == '.' || *p == '_' || *p == '-'))
			ok = false;
	}
	if (!ok)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("invalid Kafka topic name \"%s\"", topic),
				 errdetail("A topic name has 1 to %d characters among ASCII letters, digits, \".\", \"_\" and \"-\", and is not \".\" or \"..\".",
						   KAFKA_TOPIC_MAX_LEN)));
}

/* Case-insensitive (ASCII) string tests that allocate nothing. */
static bool
ci_has_prefix(const char *s, const char *prefix)
{
	return pg_strncasecmp(s, prefix, strlen(prefix)) == 0;
}

static bool
ci_has_suffix(const char *s, const char *suffix)
{
	size_t len = strlen(s);
	size_t slen = strlen(suffix);

	return len >= slen && pg_strcasecmp(s + len - slen, suffix) == 0;
}

static bool
ci_contains(const char *s, const char *needle)
{
	size_t nlen = strlen(needle);

	for (; *s != '\0'; s++)
	{
		if (pg_strncasecmp(s, needle, nlen) == 0)
			return true;
	}
	return false;
}

/*
 * reserved_option
 *		The reservation of key, or NULL.  Case-insensitive, although
 *		librdkafka's names are case-sensitive: refusing "Group.Id" too
 *		costs nothing.
 */
static const ReservedOption *
reserved_option(const char *key)
{
	int i;

	for (i = 0; i < lengthof(reserved_options); i++)
	{
		if (pg_strcasecmp(key, reserved_options[i].key) == 0)
			return &reserved_options[i];
	}
	return NULL;
}

/*
 * privileged_option
 *		Which privilege setting key requires; see the file header.
 */
static OptionPrivilege
privileged_option(const char *key)
{
	if (pg_strcasecmp(key, "plugin.library.paths") == 0 ||
		pg_strcasecmp(key, "ssl.providers") == 0 ||
		pg_strcasecmp(key, "ssl.engine.location") == 0 ||
		pg_strcasecmp(key, "ssl.engine.id") == 0)
		return OPTION_PRIV_SUPERUSER;
	if (pg_strcasecmp(key, "sasl.kerberos.kinit.cmd") == 0)
		return OPTION_PRIV_EXECUTE_PROGRAM;
	if (ci_has_suffix(key, ".location") ||
		pg_strcasecmp(key, "sasl.kerberos.keytab") == 0 ||
		pg_strcasecmp(key, "ssl.ca.certificate.stores") == 0 ||
		pg_strcasecmp(key, "offset.store.path") == 0)
		return OPTION_PRIV_READ_FILES;
	return OPTION_PRIV_NONE;
}

/*
 * check_option_privileges
 *		Refuse the options the current user may not set.  Runs before any
 *		option reaches librdkafka.  options is a JSON object.
 */
void
streamproc_kafka_check_option_privileges(Jsonb *options)
{
	JsonbIterator *it = JsonbIteratorInit(&options->root);
	JsonbIteratorToken r;
	JsonbValue v;
	Oid userid = GetUserId();

	while ((r = JsonbIteratorNext(&it, &v, true)) != WJB_DONE)
	{
		char *key;

		if (r != WJB_KEY)
			continue;
		key = pnstrdup(v.val.string.val, v.val.string.len);
		switch (privileged_option(key))
		{
			case OPTION_PRIV_NONE:
				break;
			case OPTION_PRIV_SUPERUSER:
				if (!superuser())
					ereport(ERROR,
							(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
							 errmsg("permission denied to set Kafka option \"%s\"", key),
							 errdetail("Only superusers may set options that load code into the server.")));
				break;
			case OPTION_PRIV_EXECUTE_PROGRAM:
				if (!has_privs_of_role(userid, ROLE_PG_EXECUTE_SERVER_PROGRAM))
					ereport(ERROR,
							(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
							 errmsg("permission denied to set Kafka option \"%s\"", key),
							 errdetail("Only roles with privileges of the \"pg_execute_server_program\" role may set options that run programs on the server.")));
				break;
			case OPTION_PRIV_READ_FILES:
				if (!has_privs_of_role(userid, ROLE_PG_READ_SERVER_FILES))
					ereport(ERROR,
							(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
							 errmsg("permission denied to set Kafka option \"%s\"", key),
							 errdetail("Only roles with privileges of the \"pg_read_server_files\" role may set options that read files on the server."),
							 errhint("Certificates and keys can be given inline with ssl.ca.pem, ssl.certificate.pem and ssl.key.pem.")));
				break;
		}
		pfree(key);
	}
}

/*
 * option_value_text
 *		A string, number or boolean option value as librdkafka takes it, or
 *		NULL for other JSON values.
 */
static char *
option_value_text(JsonbValue *v)
{
	switch (v->type)
	{
		case jbvString:
			return pnstrdup(v->val.string.val, v->val.string.len);
		case jbvNumeric:
			return DatumGetCString(DirectFunctionCall1(numeric_out,
													   NumericGetDatum(v->val.numeric)));
		case jbvBool:
			return pstrdup(v->val.boolean ? "true" : "false");
		default:
			return NULL;
	}
}

/*
 * apply_options
 *		Set each option on conf, stopping at the first problem, which is
 *		described in *err.  Throws only for out of memory.
 */
static bool
apply_options(rd_kafka_conf_t *conf, Jsonb *options, OptionError *err)
{
	JsonbIterator *it;
	JsonbIteratorToken r;
	JsonbValue v;
	char *key = NULL;

	memset(err, 0, sizeof(*err));
	if (!JB_ROOT_IS_OBJECT(options) || JB_ROOT_IS_SCALAR(options))
	{
		err->problem = OPTION_NOT_OBJECT;
		return false;
	}

	it = JsonbIteratorInit(&options->root);
	while ((r = JsonbIteratorNext(&it, &v, true)) != WJB_DONE)
	{
		char *value;
		char errstr[512];
		rd_kafka_conf_res_t res;

		if (r == WJB_KEY)
		{
			key = pnstrdup(v.val.string.val, v.val.string.len);
			continue;
		}
		if (r != WJB_VALUE)
			continue;

		err->key = key;
		if ((err->reserved = reserved_option(key)) != NULL)
		{
			err->problem = OPTION_RESERVED;
			return false;
		}
		value = option_value_text(&v);
		if (value == NULL)
		{
			err->problem = OPTION_BAD_VALUE_TYPE;
			return false;
		}
		errstr[0] = '\0';
		res = rd_kafka_conf_set(conf, key, value, errstr, sizeof(errstr));
		if (res != RD_KAFKA_CONF_OK)
		{
			size_t len = strlen(errstr);

			err->problem = OPTION_REJECTED;
			/* An unknown key's message names the key only. */
			if (res == RD_KAFKA_CONF_INVALID &&
				streamproc_kafka_option_is_secret(key))
				err->detail = pstrdup("The value is not valid for this option; it is not shown because the option holds a secret.");
			else if (len > 0 && errstr[len - 1] != '.')
				err->detail = psprintf("%s.", errstr);
			else
				err->detail = pstrdup(len > 0 ? errstr : "librdkafka rejected the value.");
			return false;
		}
		pfree(value);
	}
	return true;
}

/*
 * kafka_log_discard
 *		Log callback of the throwaway validation handle.  It runs in
 *		librdkafka's threads, so it must not call PostgreSQL; it drops
 *		everything (connection attempts to brokers that may not be up).
 */
static void
kafka_log_discard(const rd_kafka_t *rk, int level, const char *fac,
				  const char *buf)
{
}

/*
 * validate_kafka_config
 *		Apply options to a fresh configuration with the source's brokers
 *		and group, and create (and destroy) a consumer from it: what a
 *		worker will do.  Raises the error of the first problem.
 *
 * No ereport may escape while conf or the handle is allocated: options
 * are applied inside PG_TRY (they palloc), and librdkafka's message is
 * copied before anything is freed and reported.
 */
static void
validate_kafka_config(const char *brokers, const char *group_id,
					  Jsonb *options)
{
	rd_kafka_conf_t *conf = rd_kafka_conf_new();
	rd_kafka_t *rk;
	OptionError err;
	bool ok = false;
	char errstr[512];

	PG_TRY();
	{
		ok = apply_options(conf, options, &err);
	}
	PG_CATCH();
	{
		rd_kafka_conf_destroy(conf);
		PG_RE_THROW();
	}
	PG_END_TRY();

	if (!ok)
	{
		rd_kafka_conf_destroy(conf);
		switch (err.problem)
		{
			case OPTION_BAD_VALUE_TYPE:
				ereport(ERROR,
						(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
						 errmsg("value of Kafka option \"%s\" must be a string, number or boolean",
								err.key)));
				break;
			case OPTION_RESERVED:
				ereport(ERROR,
						(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
						 errmsg("Kafka option \"%s\" is reserved by streamproc",
								err.key),
						 err.reserved->detail ? errdetail("%s", err.reserved->detail) : 0,
						 err.reserved->param ? errhint("Use the %s parameter of streamproc.create_kafka_source() instead.",
													   err.reserved->param)
											 : errhint("Remove the option.")));
				break;
			case OPTION_REJECTED:
				ereport(ERROR,
						(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
						 errmsg("invalid Kafka option \"%s\"", err.key),
						 errdetail("%s", err.detail)));
				break;
			case OPTION_NOT_OBJECT:
			case OPTION_OK:
				ereport(ERROR,
						(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
						 errmsg("Kafka options must be a JSON object")));
				break;
		}
	}

	/* From here to the ereport below, nothing can throw. */
	errstr[0] = '\0';
	rd_kafka_conf_set_log_cb(conf, kafka_log_discard);
	if (rd_kafka_conf_set(conf, "bootstrap.servers", brokers, errstr,
						  sizeof(errstr)) != RD_KAFKA_CONF_OK ||
		rd_kafka_conf_set(conf, "group.id",
						  group_id ? group_id : VALIDATION_GROUP_ID,
						  errstr, sizeof(errstr)) != RD_KAFKA_CONF_OK)
		rk = NULL;
	else
		rk = streamproc_kafka_new(RD_KAFKA_CONSUMER, conf, errstr, sizeof(errstr));
	if (rk == NULL)
	{
		/* rd_kafka_new() takes conf only when it succeeds. */
		size_t len = strlen(errstr);

		rd_kafka_conf_destroy(conf);
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("invalid Kafka configuration"),
				 errdetail("The Kafka consumer could not be created: %s%s",
						   streamproc_kafka_redact(errstr, options),
						   len > 0 && errstr[len - 1] == '.' ? "" : ".")));
	}
	rd_kafka_destroy_flags(rk, RD_KAFKA_DESTROY_F_NO_CONSUMER_CLOSE);
}

/*
 * streamproc_kafka_new
 *		rd_kafka_new() for a consumer or producer, with every signal blocked while
 *		librdkafka creates its threads: they inherit the mask, so that
 *		PostgreSQL's signal handlers (latch, timeouts, cancel, SIGTERM)
 *		only ever run on the backend's own thread.
 */
rd_kafka_t *
streamproc_kafka_new(rd_kafka_type_t type, rd_kafka_conf_t *conf, char *errstr, size_t errlen)
{
	sigset_t all;
	sigset_t saved;
	rd_kafka_t *rk;

	sigfillset(&all);
	pthread_sigmask(SIG_SETMASK, &all, &saved);
	rk = rd_kafka_new(type, conf, errstr, errlen);
	pthread_sigmask(SIG_SETMASK, &saved, NULL);
	return rk;
}

/*
 * streamproc_kafka_redact
 *		msg with every occurrence of the value of a secret option (of at
 *		least REDACT_MIN_LEN bytes) replaced by "********", in a palloc'd
 *		string.
 */
char *
streamproc_kafka_redact(const char *msg, Jsonb *options)
{
	char *result = pstrdup(msg);
	JsonbIterator *it = JsonbIteratorInit(&options->root);
	JsonbIteratorToken r;
	JsonbValue v;
	bool secret = false;

	while ((r = JsonbIteratorNext(&it, &v, true)) != WJB_DONE)
	{
		StringInfoData buf;
		char *value;
		const char *rest;
		const char *hit;

		if (r == WJB_KEY)
		{
			char *key = pnstrdup(v.val.string.val, v.val.string.len);

			secret = streamproc_kafka_option_is_secret(key);
			pfree(key);
			continue;
		}
		if (r != WJB_VALUE || !secret)
			continue;
		value = option_value_text(&v);
		if (value == NULL || strlen(value) < REDACT_MIN_LEN)
			continue;
		initStringInfo(&buf);
		rest = result;
		while ((hit = strstr(rest, value)) != NULL)
		{
			appendBinaryStringInfo(&buf, rest, hit - rest);
			appendStringInfoString(&buf, SECRET_MASK);
			rest = hit + strlen(value);
		}
		appendStringInfoString(&buf, rest);
		result = buf.data;
	}
	return result;
}

/* ------------------------------------------------------------------------
 * start_offset
 * ------------------------------------------------------------------------
 */

/*
 * start_offset_error
 *		The error for an invalid start_offset, with an optional detail
 *		(a full sentence).
 */
static void
start_offset_error(const char *text, const char *detail)
{
	ereport(ERROR,
			(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
			 errmsg("invalid start_offset \"%s\"", text),
			 detail ? errdetail("%s", detail) : 0,
			 errhint("Use \"earliest\", \"latest\", a timestamp with time zone, or a JSON object of partition offsets such as {\"0\": 42}.")));
}

/*
 * parse_nonneg_int64
 *		Parse s, made of decimal digits only, into *result <= max.
 */
static bool
parse_nonneg_int64(const char *s, int64 max, int64 *result)
{
	int64 n = 0;

	if (*s == '\0')
		return false;
	for (; *s != '\0'; s++)
	{
		if (*s < '0' || *s > '9' ||
			pg_mul_s64_overflow(n, 10, &n) ||
			pg_add_s64_overflow(n, *s - '0', &n))
			return false;
	}
	if (n > max)
		return false;
	*result = n;
	return true;
}

/* pg_parse_json callbacks for a JSON start_offset: see parse_offsets_json. */
static void
offsets_container_start(void *arg)
{
	OffsetsParseState *st = (OffsetsParseState *)arg;

	if (st->depth == 1 && st->problem == NULL)
		st->problem = psprintf("The offset of partition \"%s\" is not a non-negative integer.",
							   st->field);
	st->depth++;
}

static void
offsets_container_end(void *arg)
{
	((OffsetsParseState *)arg)->depth--;
}

static void
offsets_object_start(void *arg)
{
	OffsetsParseState *st = (OffsetsParseState *)arg;

	if (st->depth == 0)
		st->is_object = true;
	offsets_container_start(arg);
}

static void
offsets_field_start(void *arg, char *fname, bool isnull)
{
	OffsetsParseState *st = (OffsetsParseState *)arg;

	if (st->depth == 1)
		st->field = fname;
}

static void
offsets_scalar(void *arg, char *token, JsonTokenType tokentype)
{
	OffsetsParseState *st = (OffsetsParseState *)arg;
	int64 partition;
	int64 offset;

	if (st->depth != 1 || st->problem != NULL)
		return;
	if (!parse_nonneg_int64(st->field, PG_INT32_MAX, &partition))
	{
		st->problem = psprintf("\"%s\" is not a partition number.", st->field);
		return;
	}
	if (tokentype != JSON_TOKEN_NUMBER ||
		!parse_nonneg_int64(token, PG_INT64_MAX, &offset))
	{
		st->problem = psprintf("The offset of partition \"%s\" is not a non-negative integer.",
							   st->field);
		return;
	}
	if (st->n == st->size)
	{
		st->size = st->size * 2;
		st->partitions = repalloc(st->partitions, sizeof(int32) * st->size);
		st->offsets = repalloc(st->offsets, sizeof(int64) * st->size);
	}
	st->partitions[st->n] = (int32)partition;
	st->offsets[st->n] = offset;
	st->n++;
}

/* qsort comparator: (partition, offset) pairs by partition. */
typedef struct PartitionOffset
{
	int32 partition;
	int64 offset;
} PartitionOffset;

static int
compare_partitions(const void *a, const void *b)
{
	int32 pa = ((const PartitionOffset *)a)->partition;
	int32 pb = ((const PartitionOffset *)b)->partition;

	return (pa > pb) - (pa < pb);
}

/*
 * parse_offsets_json
 *		{"<partition>": <offset>, ...}: keys are partition numbers written
 *		in decimal digits (0 .. 2^31-1), values non-negative integers (JSON
 *		numbers), each partition once, at least one.  Parsed with the
 *		backend's JSON parser, which reports syntax errors as a code, so
 *		that every error says "invalid start_offset".
 */
static void
parse_offsets_json(const char *text, StreamprocStartOffset *out)
{
	OffsetsParseState st;
	JsonSemAction sem;
	JsonLexContext *lex;
	JsonParseErrorType result;
	PartitionOffset *pairs;
	int i;

	memset(&st, 0, sizeof(st));
	st.size = 8;
	st.partitions = palloc(sizeof(int32) * st.size);
	st.offsets = palloc(sizeof(int64) * st.size);

	memset(&sem, 0, sizeof(sem));
	sem.semstate = &st;
	sem.object_start = offsets_object_start;
	sem.object_end = offsets_container_end;
	sem.array_start = offsets_container_start;
	sem.array_end = offsets_container_end;
	sem.object_field_start = offsets_field_start;
	sem.scalar = offsets_scalar;

	lex = makeJsonLexContextCstringLen(pstrdup(text), strlen(text),
									   GetDatabaseEncoding(), true);
	result = pg_parse_json(lex, &sem);
	if (result != JSON_SUCCESS)
		start_offset_error(text, json_errdetail(result, lex));
	if (!st.is_object)
		start_offset_error(text, "A JSON start_offset must be an object.");
	if (st.problem != NULL)
		start_offset_error(text, st.problem);
	if (st.n == 0)
		start_offset_error(text, "The object lists no partition.");

	pairs = palloc(sizeof(PartitionOffset) * st.n);
	for (i = 0; i < st.n; i++)
	{
		pairs[i].partition = st.partitions[i];
		pairs[i].offset = st.offsets[i];
	}
	qsort(pairs, st.n, sizeof(PartitionOffset), compare_partitions);
	for (i = 0; i < st.n; i++)
	{
		if (i > 0 && pairs[i].partition == pairs[i - 1].partition)
			start_offset_error(text, psprintf("Partition %d is listed more than once.",
											  pairs[i].partition));
		st.partitions[i] = pairs[i].partition;
		st.offsets[i] = pairs[i].offset;
	}
	pfree(pairs);

	out->kind = STREAMPROC_START_OFFSETS;
	out->npartitions = st.n;
	out->partitions = st.partitions;
	out->offsets = st.offsets;
}

/*
 * parse_start_timestamp
 *		A timestamp with time zone literal, as timestamptz_in reads it
 *		(session TimeZone and DateStyle), into ms since 1970-01-01 UTC.
 *		False when text is not such a literal; an ERROR for literals that
 *		are but cannot be a start (infinity, before 1970, out of range).
 *		Values like "now" and "today" are evaluated now.
 */
static bool
parse_start_timestamp(const char *text, int64 *ms)
{
	char workbuf[MAXDATELEN + MAXDATEFIELDS];
	char *field[MAXDATEFIELDS];
	int ftype[MAXDATEFIELDS];
	int nf;
	int dtype;
	struct pg_tm tt;
	fsec_t fsec;
	int tz;
	TimestampTz ts;
	int64 unix_us;

	if (ParseDateTime(text, workbuf, sizeof(workbuf), field, ftype,
					  MAXDATEFIELDS, &nf) != 0 ||
		DecodeDateTime(field, ftype, nf, &dtype, &tt, &fsec, &tz) != 0)
		return false;
	if (dtype == DTK_EPOCH)
		ts = SetEpochTimestamp();
	else if (dtype != DTK_DATE)
		start_offset_error(text, "A start timestamp must be finite.");
	else if (tm2timestamp(&tt, fsec, &tz, &ts) != 0)
		start_offset_error(text, "The timestamp is out of range.");

	unix_us = ts + (POSTGRES_EPOCH_JDATE - UNIX_EPOCH_JDATE) * USECS_PER_DAY;
	if (unix_us < 0)
		start_offset_error(text, "A start timestamp cannot be before 1970-01-01 00:00:00+00.");
	*ms = unix_us / 1000;
	return true;
}

/*
 * start_offset_canonical
 *		The text stored in streamproc.sources.start_offset: "earliest",
 *		"latest", the timestamp in UTC with an explicit "+00" (millisecond
 *		precision, what Kafka resolves), or the offsets as a JSON object
 *		ordered by partition.  Independent of the session's settings, and
 *		parsed back to the same value by streamproc_parse_start_offset.
 */
static char *
start_offset_canonical(const StreamprocStartOffset *so)
{
	switch (so->kind)
	{
		case STREAMPROC_START_EARLIEST:
			return pstrdup("earliest");
		case STREAMPROC_START_LATEST:
			return pstrdup("latest");
		case STREAMPROC_START_TIMESTAMP:
		{
			TimestampTz ts = so->timestamp_ms * 1000 -
							 (POSTGRES_EPOCH_JDATE - UNIX_EPOCH_JDATE) * USECS_PER_DAY;
			struct pg_tm tt;
			fsec_t fsec;
			char buf[MAXDATELEN + 1];

			if (timestamp2tm(ts, NULL, &tt, &fsec, NULL, NULL) != 0)
				ereport(ERROR,
						(errcode(ERRCODE_DATETIME_VALUE_OUT_OF_RANGE),
						 errmsg("timestamp out of range")));
			/* UTC: a valid zone, so that EncodeDateTime prints it. */
			tt.tm_isdst = 0;
			EncodeDateTime(&tt, fsec, true, 0, NULL, USE_ISO_DATES, buf);
			return pstrdup(buf);
		}
		case STREAMPROC_START_OFFSETS:
		{
			StringInfoData buf;
			int i;

			initStringInfo(&buf);
			appendStringInfoChar(&buf, '{');
			for (i = 0; i < so->npartitions; i++)
				appendStringInfo(&buf, "%s\"%d\": " INT64_FORMAT,
								 i > 0 ? ", " : "", so->partitions[i],
								 so->offsets[i]);
			appendStringInfoChar(&buf, '}');
			return buf.data;
		}
	}
	elog(ERROR, "unexpected start_offset kind %d", (int)so->kind);
	return NULL; /* keep compiler quiet */
}
