/*-------------------------------------------------------------------------
 *
 * dedup.h
 *	  Deduplication of a stream's events by key (see dedup.c).
 *
 *-------------------------------------------------------------------------
 */
#ifndef STREAMPROC_DEDUP_H
#define STREAMPROC_DEDUP_H

#include "postgres.h"

#include "access/tupdesc.h"
#include "datatype/timestamp.h"
#include "nodes/pg_list.h"

/*
 * Which event claimed a key: a kind byte, then 16 bytes that name the
 * event for as long as it can be read again ('l': a log row, by shard,
 * inserting transaction and ctid; 'k': a Kafka message, by source,
 * partition and offset; 'x': no event, a claim restored from a dump).
 */
#define DEDUP_ID_LEN 17

typedef struct DedupId
{
	char bytes[DEDUP_ID_LEN];
} DedupId;

/* A stream's deduplication as an ingest worker uses it (backend-local). */
typedef struct DedupStream DedupStream;

/* Shared memory. */
extern Size streamproc_dedup_shmem_size(void);
extern void streamproc_dedup_shmem_init(void);
extern int64 streamproc_dedup_memory_used(void);

/*
 * Ingest workers.  dedup_open() attaches to the stream's shared set of
 * keys (loading it from streamproc.dedup_keys if nobody has since the
 * server started) in a transaction; dedup_add_shard() says which log
 * tables the batch queries' streamproc._dedup() calls come from.
 */
extern DedupStream *dedup_open(Oid stream, TupleDesc desc, List *columns,
							   AttrNumber time_column, int64 window,
							   int worker);
extern void dedup_add_shard(DedupStream *ds, Oid shard_log, int shard);
extern void dedup_close(DedupStream *ds);
extern void dedup_forget_dropped(List *open);

/* The streamproc._dedup() call of a log query (see dedup.c). */
struct StreamOptions;
extern char *streamproc_dedup_call_sql(const struct StreamOptions *opts,
									   const char *alias);

extern void dedup_kafka_id(DedupId *id, const char *source, int32 partition,
						   int64 offset);
extern bool dedup_admit_row(DedupStream *ds, const Datum *values,
							const bool *nulls, const DedupId *id);

/*
 * Checkpoints: inside the transaction, then after it committed;
 * dedup_listed() is how many claims the next one writes.
 */
extern int64 dedup_listed(DedupStream *ds);
extern void dedup_checkpoint(DedupStream *ds, bool hold);
extern bool dedup_expiry_due(DedupStream *ds);
extern bool dedup_vacuum_due(DedupStream *ds);
extern void dedup_committed(DedupStream *ds);

#endif /* STREAMPROC_DEDUP_H */
