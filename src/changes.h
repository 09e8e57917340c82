/*-------------------------------------------------------------------------
 *
 * changes.h
 *	  Change logs of continuous views (changes.c).
 *
 *-------------------------------------------------------------------------
 */
#ifndef STREAMPROC_CHANGES_H
#define STREAMPROC_CHANGES_H

/*
 * Ingest workers, after a checkpoint: delete the changes older than their
 * log's retention, and write the windows that every slot has closed since
 * the last time to the change logs of final-windows views.  Runs its own
 * transactions; an error is logged and the work is retried next time.
 */
extern void streamproc_changes_after_checkpoint(void);

#endif /* STREAMPROC_CHANGES_H */
