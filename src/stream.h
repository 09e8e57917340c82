/*-------------------------------------------------------------------------
 *
 * stream.h
 *	  Streams: foreign tables on server streamproc, and their log tables.
 *
 * A stream is CREATE FOREIGN TABLE ... SERVER streamproc.  Inserting into
 * a stream that continuous views read appends one row per event to its log
 * table
 * (streamproc.log_<stream oid>) inside the inserting transaction: the
 * stream's columns by name, plus "$xid" xid8, the inserting top-level
 * transaction.  streamproc.streams maps each stream to its log.  See
 * src/stream.c for the design.
 *
 *-------------------------------------------------------------------------
 */
#ifndef STREAMPROC_STREAM_H
#define STREAMPROC_STREAM_H

#include "postgres.h"

#include "nodes/pg_list.h"

/* Name of the log column that holds the inserting transaction's id. */
#define STREAM_XID_COLUMN "$xid"

/* Name of the log column that says which shard a row is in (partition key). */
#define STREAM_SHARD_COLUMN "$shard"

/* Most shards a stream's log has (one per ingest worker). */
#define STREAMPROC_MAX_SHARDS 64

/* A row of streamproc.streams, for the ingest workers (catalog.c). */
typedef struct StreamprocStream
{
	Oid stream;
	char *name; /* qualified, quoted */
	Oid log;    /* the partitioned log */
	int nshards;
	Oid shard_logs[STREAMPROC_MAX_SHARDS];
	char *signature; /* changes when the stream's definition does */
} StreamprocStream;

extern List *streamproc_stream_list(void);

/*
 * Name of the column that numbers the events of a batch in the batch query
 * of a count-window view (view.c); not a column of streams or logs.
 */
#define STREAM_SEQ_COLUMN "$seq"

/*
 * streamproc_stream_init
 *		Install the stream DDL hooks (ProcessUtility_hook,
 *		object_access_hook).  Called once from _PG_init while the library
 *		is being preloaded.
 */
extern void streamproc_stream_init(void);

/*
 * streamproc_is_stream
 *		Is relid a stream (a row of streamproc.streams)?
 *
 * False for any other relation, for an invalid or dropped OID, and in a
 * database without the extension.  Costs a syscache lookup for relations
 * that are not foreign tables, and one index probe of streamproc.streams
 * for foreign tables: cheap enough for DDL and planning, not meant to be
 * called per event.  Needs a transaction; reads with a fresh catalog
 * snapshot, so it sees streams committed after the transaction snapshot
 * was taken.  The caller should hold a lock on relid if the answer must
 * stay true.
 */
extern bool streamproc_is_stream(Oid relid);

/*
 * streamproc_stream_log
 *		The log table of stream stream_relid, or InvalidOid when
 *		stream_relid is not a stream.
 *
 * Same cost and visibility as streamproc_is_stream.  The log's OID never
 * changes while the stream exists; it goes away with the stream (internal
 * dependency), so a lock on the stream protects it too.
 */
extern Oid streamproc_stream_log(Oid stream_relid);

/* How many shards a stream's log has (0: not a stream). */
extern int streamproc_stream_shards(Oid stream_relid);

/*
 * A stream's options (its foreign-table options), checked.  Event time
 * (windows.c): the event_time column's name (NULL: none), watermark_delay
 * and idle_timeout in microseconds (0 and -1 when unset).  Deduplication
 * (dedup.c): dedup_key as written (NULL: none) and its column names (char
 * *), dedup_window in microseconds (one hour when unset).
 */
#define STREAM_DEDUP_MAX_COLUMNS 32

typedef struct StreamOptions
{
	char *event_time;
	int64 watermark_delay;
	int64 idle_timeout;
	char *dedup_key;
	List *dedup_columns;
	int64 dedup_window;
	bool dedup_window_set;
	char *upstream_rows;    /* a feed (feed.c): the rows table it is fed from */
	char *upstream_groups;  /* ... or the groups table of final windows */
	char *upstream_changes; /* ... or the groups table of a grouped view */
} StreamOptions;

/* false (and the defaults) when relid is not a foreign table. */
extern bool streamproc_stream_options(Oid relid, StreamOptions *opts);

/* "type [COLLATE collation]" of a column, every name qualified. */
extern char *streamproc_column_type_sql(Oid typid, int32 typmod, Oid collid);

#endif /* STREAMPROC_STREAM_H */
