/*-------------------------------------------------------------------------
 *
 * source.h
 *	  Kafka sources: the catalog streamproc.sources and what the consumer
 *	  side needs to interpret its rows (see source.c).
 *
 * A row of streamproc.sources says: read topic from brokers, parse each
 * message with format / format_options into a row of stream, starting at
 * start_offset, with workers ingest workers, applying the librdkafka
 * settings in options.  The SQL functions of source.c validate every field
 * when the source is created, so the consumer may treat a row as valid;
 * the functions below still return or throw errors for rows a superuser
 * wrote by hand.
 *
 *-------------------------------------------------------------------------
 */
#ifndef STREAMPROC_SOURCE_H
#define STREAMPROC_SOURCE_H

#include "postgres.h"

#include <librdkafka/rdkafka.h>

#include "utils/jsonb.h"

/* Where a source starts reading partitions that have no committed offset. */
typedef enum StreamprocStartKind
{
	STREAMPROC_START_EARLIEST,  /* the oldest message the broker keeps */
	STREAMPROC_START_LATEST,    /* only messages produced from now on */
	STREAMPROC_START_TIMESTAMP, /* the first message at or after a time */
	STREAMPROC_START_OFFSETS    /* explicit offsets per partition */
} StreamprocStartKind;

/* A parsed start_offset. */
typedef struct StreamprocStartOffset
{
	StreamprocStartKind kind;
	int64 timestamp_ms; /* TIMESTAMP: ms since 1970-01-01 UTC, >= 0 */
	int npartitions;    /* OFFSETS: listed partitions (unlisted ones start
						 * at earliest), sorted, distinct, >= 1 */
	int32 *partitions;  /* OFFSETS: partition numbers, >= 0 */
	int64 *offsets;     /* OFFSETS: offset of the first message to read, >= 0 */
} StreamprocStartOffset;

/*
 * streamproc_parse_start_offset
 *		Parse a start_offset: "earliest", "latest" (any case), a timestamp
 *		with time zone literal (read with the session's TimeZone and
 *		DateStyle when it names no zone; the catalog stores it in UTC with
 *		an explicit "+00"), or a JSON object of partition offsets such as
 *		{"0": 42, "3": 0}.  Raises an ERROR on invalid input.  Arrays are
 *		allocated in CurrentMemoryContext.  Needs no transaction.
 */
extern void streamproc_parse_start_offset(const char *text,
										  StreamprocStartOffset *out);

/*
 * streamproc_kafka_conf_apply
 *		Apply a source's options (a JSON object of librdkafka settings,
 *		each value a string, number or boolean) to conf with
 *		rd_kafka_conf_set().  Returns true, or false with a one-line
 *		message in errbuf when options is not an object, a value has the
 *		wrong type, a key is reserved by streamproc (bootstrap.servers,
 *		group.id, auto.offset.reset, enable.auto.commit, ...) or
 *		librdkafka rejects a setting.  The message never contains the
 *		value of a secret option (streamproc_kafka_option_is_secret).
 *		Settings before the failing one stay applied.
 *
 *		Does not ereport for bad options, so it is usable outside a
 *		transaction; it can still throw for out of memory (pallocs in
 *		CurrentMemoryContext).  conf stays owned by the caller in every
 *		case: a caller that must not leak it on such an error wraps the
 *		call in PG_TRY.  Privileged settings (plugin.library.paths,
 *		file locations, sasl.kerberos.kinit.cmd) are not refused here:
 *		streamproc.create_kafka_source() checks the creating role for them.
 */
extern bool streamproc_kafka_conf_apply(rd_kafka_conf_t *conf, Jsonb *options,
										char *errbuf, size_t errlen);

/*
 * streamproc_kafka_option_is_secret
 *		Does the value of librdkafka option key hold a secret?  True when
 *		the key contains "password", "secret", "jaas" or "token", ends in
 *		".pem", or starts with "ssl.key" or "ssl_key" (all case
 *		insensitive).  The one rule for masking (streamproc.kafka_sources)
 *		and for keeping values out of error messages.
 */
extern bool streamproc_kafka_option_is_secret(const char *key);

/*
 * msg (librdkafka's error text) with the value of every secret option
 * replaced by "********", palloc'd.
 */
extern char *streamproc_kafka_redact(const char *msg, Jsonb *options);

/* rd_kafka_new(), its threads blocking every signal. */
extern rd_kafka_t *streamproc_kafka_new(rd_kafka_type_t type, rd_kafka_conf_t *conf,
										char *errstr, size_t errlen);

/* Kafka's rule for topic names: raises an ERROR for an invalid one. */
extern void streamproc_kafka_check_topic(const char *topic);

/*
 * Raise an ERROR when options set a privileged librdkafka option that the
 * current role may not set (code loaded into the server, programs run,
 * server files read).
 */
extern void streamproc_kafka_check_option_privileges(Jsonb *options);

/*
 * streamproc_sources_check_drop
 *		DROP FOREIGN TABLE ... RESTRICT of relation stream: raise an ERROR
 *		if a Kafka source reads into it.  Called from the ProcessUtility
 *		hook before the drop runs, for every named relation; does nothing
 *		for relations that are not streams with sources, and for roles that
 *		do not own the relation (the drop itself then fails).  Takes the
 *		AccessExclusiveLock that the drop would take anyway.
 */
extern void streamproc_sources_check_drop(Oid stream);

/*
 * streamproc_sources_forget_stream
 *		Delete the sources that read into stream, and their offsets.
 *		Called from the object access hook (OAT_DROP) when a stream is
 *		dropped by any path (CASCADE, DROP SCHEMA, DROP OWNED, DROP
 *		EXTENSION).  Does nothing when the extension's tables are gone.
 */
extern void streamproc_sources_forget_stream(Oid stream);

#endif /* STREAMPROC_SOURCE_H */
