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
 *	- batch_query: SQL text with parameters $1 pg_snapshot (this batch) and
 *	  $2 pg_snapshot (previous batch, or NULL).  Its names are qualified as
 *	  seen with search_path = pg_catalog: run it with that search_path.
 *	- event_query: the same query over the single log row whose ctid is $1
 *	  (tid), to isolate an event that makes a batch fail.
 *	- kind STREAMPROC_VIEW_AGGREGATING: both queries return the group key
 *	  columns g1..g<ngroups> (types group_types) then one serialized partial
 *	  state (bytea, from streamproc.partial()) per aggregate a1..a<naggs>,
 *	  whose aggregate function is aggregates[j] and input collation
 *	  agg_collations[j].  With ngroups = 0 they return exactly one row.
 *	- kind STREAMPROC_VIEW_APPEND: both queries return the view's output
 *	  rows, which the worker appends to rows_table.
 *	- owner: the role the worker must run both queries as.
 *
 *-------------------------------------------------------------------------
 */
#ifndef STREAMPROC_VIEW_H
#define STREAMPROC_VIEW_H

#include "postgres.h"

#include "nodes/pg_list.h"

/* streamproc.views.kind */
#define STREAMPROC_VIEW_AGGREGATING 'a'
#define STREAMPROC_VIEW_APPEND      'p'

/* One row of streamproc.views, plus the view's owner. */
typedef struct StreamprocView
{
	Oid view;            /* the user-visible view (pg_class oid) */
	Oid owner;           /* its owner: the role that runs the queries */
	Oid stream;          /* the stream it reads */
	char kind;           /* STREAMPROC_VIEW_AGGREGATING or _APPEND */
	char *batch_query;   /* see above */
	char *event_query;   /* see above */
	int ngroups;         /* number of group key columns g1..gn */
	Oid *group_types;    /* their types (ngroups entries) */
	int naggs;           /* number of partial states a1..am */
	Oid *aggregates;     /* aggregate function of each (naggs entries) */
	Oid *agg_collations; /* input collation of each (naggs entries) */
	Oid rows_table;      /* append views: the rows table, else Invalid */
	char *definition;    /* the user's query, deparsed */
} StreamprocView;

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

extern char *streamproc_late_query(Oid stream_relid, Oid viewid, Oid late_table);

#endif /* STREAMPROC_VIEW_H */
