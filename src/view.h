/*-------------------------------------------------------------------------
 *
 * view.h
 *	  Continuous view definitions: CREATE VIEW ... WITH (continuous) and the
 *	  catalog streamproc.views (see view.c).
 *
 * The ingest workers read a view's definition through
 * streamproc_view_load(); everything they need to run a micro-batch is in
 * the returned struct:
 *
 *	- batch_query: SQL text over one shard of the stream's log, with
 *	  parameters $1 pg_snapshot (the batch), $2 pg_snapshot (merged before,
 *	  or NULL), $3 int2 (the shard), $4 and $5 tid (the range of heap
 *	  blocks to read, [$4, $5)), and for windowed views $6 timestamptz (the
 *	  lateness cutoff).  The batch is the log rows whose "$xid" is visible
 *	  in $1 and not in $2.  Its names are qualified as seen with search_path
 *	  = pg_catalog: run it with that search_path.
 *	- event_query: the same query over the single log row whose ctid is $1
 *	  (tid) in shard $2 (int2) (windowed: $3 the cutoff), to isolate an
 *	  event that makes a batch fail.
 *	- source_query: the same query over the rows of a Kafka batch, read
 *	  through streamproc._source_batch() (windowed: $1 the cutoff).
 *	- kind STREAMPROC_VIEW_AGGREGATING: the queries return the group key
 *	  columns g1..g<ngroups> (types group_types) then one serialized partial
 *	  state (bytea, from streamproc.partial()) per aggregate a1..a<naggs>,
 *	  whose aggregate function is aggregates[j] and input collation
 *	  agg_collations[j].  With ngroups = 0 they return exactly one row.
 *	- kind STREAMPROC_VIEW_APPEND: the queries return the view's output
 *	  rows, which the worker appends to rows_table.
 *	- owner: the role the worker must run both queries as.
 *
 *-------------------------------------------------------------------------
 */
#ifndef STREAMPROC_VIEW_H
#define STREAMPROC_VIEW_H

#include "postgres.h"

#include "datatype/timestamp.h"
#include "nodes/pg_list.h"

/* streamproc.views.kind */
#define STREAMPROC_VIEW_AGGREGATING 'a'
#define STREAMPROC_VIEW_APPEND      'p'

/* One row of streamproc.views, plus the view's owner and name. */
typedef struct StreamprocView
{
	Oid view;            /* the user-visible view (pg_class oid) */
	Oid owner;           /* its owner: the role that runs the queries */
	char *name;          /* schema-qualified, quoted */
	TransactionId xmin;  /* of the catalog row: a new one means a change */
	Oid stream;          /* the stream it reads */
	char kind;           /* STREAMPROC_VIEW_AGGREGATING or _APPEND */
	char *batch_query;   /* see above */
	char *event_query;   /* see above */
	char *source_query;  /* see above */
	int ngroups;         /* number of group key columns g1..gn */
	Oid *group_types;    /* their types (ngroups entries) */
	int naggs;           /* number of partial states a1..am */
	Oid *aggregates;     /* aggregate function of each (naggs entries) */
	Oid *agg_collations; /* input collation of each (naggs entries) */
	Datum agg_argtypes;  /* oidvector[]: actual argument types of each */
	Oid rows_table;      /* append views: the rows table, else Invalid */
	Oid groups_table;    /* aggregating views: the foreign table they read */
	char *definition;    /* the user's query, deparsed */
	/* windowed views (windows.h); window_kind is 0 for the others */
	char window_kind;
	int64 window_size;
	int64 window_slide;
	TimestampTz window_origin;
	int16 *window_roles; /* per group column (ngroups entries) */
	int64 allowed_lateness;
	int64 retention; /* -1: none */
	char emit;
	Oid late_events; /* InvalidOid: none */
} StreamprocView;

/*
 * After a restore (restore.c): record the dependencies of a restored view
 * that pg_dump does not carry, unless they are recorded already.
 */
extern void streamproc_view_link(Oid viewid);

/* Install the DDL hooks; called from _PG_init. */
extern void streamproc_view_init(void);

/*
 * Is relid a continuous view of the current database?  False when the
 * extension is not installed.
 */
extern bool streamproc_is_continuous_view(Oid relid);

/*
 * Load one view's catalog row into a struct allocated in
 * CurrentMemoryContext.  Returns NULL when relid is not a continuous view
 * and missing_ok, raises an error otherwise.  The caller needs a
 * transaction (and a snapshot) but no lock.
 */
extern StreamprocView *streamproc_view_load(Oid relid, bool missing_ok);

/*
 * Every continuous view reading stream (every view of the database when
 * stream is InvalidOid), as a List of StreamprocView * in
 * CurrentMemoryContext, ordered by view oid.
 */
extern List *streamproc_view_list(Oid stream);

/*
 * The continuous view whose groups or rows table (or feed, feed.c) relid
 * is, or InvalidOid: the relation it depends on internally, if that is a
 * continuous view.
 */
extern Oid streamproc_owning_view(Oid relid);

extern char *streamproc_late_query(Oid stream_relid, Oid viewid, Oid late_table);

#endif /* STREAMPROC_VIEW_H */
