/*-------------------------------------------------------------------------
 *
 * changes.h
 *	  Change logs of continuous views (changes.c).
 *
 *-------------------------------------------------------------------------
 */
#ifndef STREAMPROC_CHANGES_H
#define STREAMPROC_CHANGES_H

#include "groupkey.h"

/*
 * Ingest workers, after a checkpoint: delete the changes older than their
 * log's retention (and vacuum the logs' tables when they churned), and
 * write the windows that every slot has closed since the last time to the
 * change logs of final-windows views.  Runs its own
 * transactions; an error is logged and the work is retried next time.
 */
extern void streamproc_changes_after_checkpoint(void);

/*
 * Ingest workers, in the checkpoint of an aggregating view without windows
 * (after its changed groups are written): when the view keeps a change
 * log, log the changed groups whose row differs from the row last logged
 * (old and new).  groups_table is the view's; dirty is its dirty list
 * (engine.h), len its length; codec decodes its keys.  Errors roll the view's part back.
 */
extern void streamproc_changes_log_groups(Oid viewid, Oid groups_table, GroupKeyCodec *codec,
										  const char *dirty, int64 len);

/*
 * Start the change log of an aggregating view, with the default retention
 * of create_change_log(), unless it has one: true if it started one.  For
 * views over the view (feed.c), whatever the current user owns.
 */
extern bool streamproc_change_log_ensure(Oid viewid);

/*
 * SPI connected and running as the owner of schema streamproc, who owns
 * the change logs' tables (and the sinks'), until the matching _end():
 * the SQL functions of change logs and sinks write them for any caller
 * that passed their checks.
 */
typedef struct StreamprocAsOwner
{
	Oid userid;
	int sec_context;
} StreamprocAsOwner;

extern void streamproc_spi_as_owner_begin(StreamprocAsOwner *saved);
extern void streamproc_spi_as_owner_end(StreamprocAsOwner *saved);

#endif /* STREAMPROC_CHANGES_H */
