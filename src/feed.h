/*-------------------------------------------------------------------------
 *
 * feed.h
 *	  Views over views: the feed stream between a continuous view and the
 *	  continuous view that reads it (feed.c).
 *
 *-------------------------------------------------------------------------
 */
#ifndef STREAMPROC_FEED_H
#define STREAMPROC_FEED_H

#include "postgres.h"

#include "nodes/parsenodes.h"
#include "utils/timestamp.h"

#include "view.h"

/*
 * The options that mark a feed stream: the upstream's rows table (an
 * append view), its groups table (a windowed view with emit = 'final'),
 * or the groups table of an aggregating view without windows, whose
 * changes the feed carries as retractions (the old row with "$sign" -1,
 * the new row with "$sign" +1).
 */
#define STREAMPROC_FEED_OPTION         "upstream_rows"
#define STREAMPROC_FEED_WINDOWS_OPTION "upstream_groups"
#define STREAMPROC_FEED_CHANGES_OPTION "upstream_changes"

/* The last column of a feed of changes: -1 a row leaves, +1 it enters. */
#define STREAMPROC_FEED_SIGN_COLUMN "$sign"

/* True while feed.c creates a feed stream or inserts into one. */
extern bool streamproc_feed_creating;
extern bool streamproc_feeding;

/*
 * The continuous view a SELECT reads instead of a stream, or InvalidOid
 * (the query names a stream, or no continuous view).  Errors for what
 * cannot feed a view.
 */
extern Oid streamproc_feed_upstream(Query *query, Index *rti);

/*
 * Create the feed stream of a new view over upstream (its rows table is
 * locked until commit), with a temporary name; streamproc_feed_attach()
 * finishes it once the view exists.
 */
extern Oid streamproc_feed_create(Oid upstream);
extern void streamproc_feed_attach(Oid feed, Oid view, Oid upstream);

/* Whether a feed carries an upstream's changes ("$sign" column). */
extern bool streamproc_feed_retracts(Oid feed);

/*
 * The views fed by an aggregating view's changes, as a list for a message
 * ("a, b"), or NULL: none.  Its change log cannot be dropped while any is.
 */
extern char *streamproc_feed_followers(Oid upstream);

/*
 * A writer of an aggregating view's change log, after adding changes
 * (after, last] and holding the log's row: pass them to the feeds of the
 * views over it, in the same transaction.
 */
extern void streamproc_feed_changes(Oid upstream, int64 after, int64 last);

/* ALTER VIEW ... OWNER TO of the view a feed feeds: the feed follows. */
extern void streamproc_feed_set_owner(Oid feed, Oid owner);

/* The continuous view a feed is fed by, or InvalidOid: not a feed. */
extern Oid streamproc_feed_upstream_view(Oid stream);

/* Whether a stream is a feed (stream.c refuses other writers). */
extern bool streamproc_is_feed(Oid stream);

/* The longest chain of views over views in this database (sync()). */
extern int streamproc_feed_depth(void);

/*
 * Ingest workers, after a checkpoint: pass the windows that every slot has
 * closed since the last time to the feeds of views over final windows.
 * Runs its own transactions.
 */
extern void streamproc_feed_emit_windows(void);

/*
 * The closing bound up to which every ingest worker's slot of a view of
 * tumbling or hopping windows has closed them: windows that end at or
 * before it are final.  False until every slot has loaded its state.
 */
extern bool streamproc_final_windows_bound(StreamprocView *up, TimestampTz *bound);

/* The column of a windowed view that shows its windows' start, or NULL. */
extern char *streamproc_window_start_column(StreamprocView *up);

/* The owner of schema streamproc, who creates internal relations there. */
extern Oid streamproc_schema_owner(void);

/* post_restore(): the dependencies of a view's feed. */
extern void streamproc_feed_link(Oid view, Oid stream);

#endif /* STREAMPROC_FEED_H */
