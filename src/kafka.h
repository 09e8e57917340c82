/*-------------------------------------------------------------------------
 *
 * kafka.h
 *	  Kafka sources as inputs of an ingest worker (see kafka.c), and the
 *	  in-memory batch that continuous views read through
 *	  streamproc._source_batch().
 *
 *-------------------------------------------------------------------------
 */
#ifndef STREAMPROC_KAFKA_H
#define STREAMPROC_KAFKA_H

#include "postgres.h"

#include <librdkafka/rdkafka.h>

#include "access/tupdesc.h"
#include "datatype/timestamp.h"
#include "nodes/pg_list.h"

#include "parse.h"

typedef struct KafkaSource KafkaSource;

/*
 * Rows parsed from Kafka messages, laid out for the stream: row i is
 * values/nulls[i * natts ...].  streamproc._source_batch() returns rows
 * first .. first + count - 1 of streamproc_source_rows.
 */
typedef struct SourceRows
{
	TupleDesc desc; /* the stream's */
	int natts;
	int nrows;
	Datum *values;
	bool *nulls;
	int first;
	int count;
	const bool *skip; /* rows a view does not read (its position), or NULL */
} SourceRows;

/* The rows a view's source_query reads now; NULL outside a batch. */
extern SourceRows *streamproc_source_rows;

/* Shared memory for stat_sources. */
extern Size streamproc_kafka_shmem_size(void);
extern void streamproc_kafka_shmem_init(void);

/*
 * The sources of the current database this worker consumes, as a List of
 * KafkaSource *, allocated in cxt: those of old_sources whose definition did
 * not change are kept as they are, the others stopped.  Needs a transaction
 * and SPI.
 */
extern List *streamproc_kafka_load(List *old_sources, int worker, MemoryContext cxt);
extern Oid streamproc_kafka_stream(KafkaSource *src);
extern const char *streamproc_kafka_name(KafkaSource *src);
extern const char *streamproc_kafka_topic(KafkaSource *src);
extern StreamprocParser *streamproc_kafka_parser(KafkaSource *src);

/* Close the consumers of a list from streamproc_kafka_load. */
extern void streamproc_kafka_stop(List *sources);

/*
 * Housekeeping outside a transaction: librdkafka's log and errors,
 * partitions (metadata), start offsets of new partitions, watermarks for
 * sync().  Returns the milliseconds until it wants to run again.
 */
extern long streamproc_kafka_maintain(List *sources);

/*
 * Up to max messages of one source, in offset order per partition, that
 * were not processed yet; *more says whether the queue may hold more.  The caller passes them to
 * streamproc_kafka_consumed() once processed.
 */
extern int streamproc_kafka_fetch(KafkaSource *src, rd_kafka_message_t **msgs,
								  int max, bool *more);
/* Positions for views behind the source (batch.c, positions.c). */
extern int64 streamproc_kafka_position(KafkaSource *src, int32 partition);
extern void streamproc_kafka_rewind(KafkaSource *src, int32 partition, int64 offset);

/* A message of the source failed (parse or processing): for stat_sources. */
extern void streamproc_kafka_count_error(KafkaSource *src);
extern void streamproc_kafka_consumed(KafkaSource *src, rd_kafka_message_t **msgs,
									  int n);

/* Metadata of a message for the parser (headers allocated in CurrentMemoryContext). */
extern void streamproc_kafka_message_meta(const rd_kafka_message_t *m,
										  StreamprocMessageMeta *meta);

/* Checkpoint: upsert the positions that moved (in the checkpoint's transaction). */
extern void streamproc_kafka_checkpoint(List *sources);
/* Is a checkpoint needed for something other than processed messages? */
extern bool streamproc_kafka_checkpoint_needed(List *sources);
/* After the checkpoint committed. */
extern void streamproc_kafka_checkpointed(List *sources);

/*
 * sync(): true once every assigned partition has been processed up to its
 * high watermark as queried after generation was requested.
 */
extern bool streamproc_kafka_caught_up(List *sources, uint64 generation);

/* Wait for a message, up to timeout_ms; false if no source can deliver. */
extern bool streamproc_kafka_wait(List *sources, long timeout_ms);

/* Event time of the processed messages, for watermarks (worker.c). */
extern void streamproc_kafka_note_event_time(KafkaSource *src, int32 partition,
											 TimestampTz max_time,
											 TimestampTz now);
extern bool streamproc_kafka_event_times(KafkaSource *src, TimestampTz now,
										 int64 idle_timeout, TimestampTz *least,
										 TimestampTz *greatest);

#endif /* STREAMPROC_KAFKA_H */
