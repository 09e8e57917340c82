/*-------------------------------------------------------------------------
 *
 * retract.h
 *	  Views over aggregating views: aggregates that take a changed group's
 *	  old row back (retract.c).
 *
 *-------------------------------------------------------------------------
 */
#ifndef STREAMPROC_RETRACT_H
#define STREAMPROC_RETRACT_H

#include "postgres.h"

#include "nodes/parsenodes.h"

/*
 * Rewrite the analyzed SELECT of a view over aggregating view upstream,
 * whose range table entry rti is already the feed of upstream's changes,
 * so that its aggregates count the rows with "$sign" -1 as leaving.
 * Errors for what cannot be rewritten.
 */
extern void streamproc_retract_rewrite(Query *query, Index rti, Oid upstream);

#endif /* STREAMPROC_RETRACT_H */
