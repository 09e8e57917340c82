/*-------------------------------------------------------------------------
 *
 * sink.h
 *	  Kafka sinks: a continuous view's changes produced to a topic,
 *	  exactly once (sink.c).
 *
 *-------------------------------------------------------------------------
 */
#ifndef STREAMPROC_SINK_H
#define STREAMPROC_SINK_H

#include "postgres.h"

/*
 * Ingest workers: run the Kafka sinks that worker (0 ..
 * streamproc.workers - 1) owns: acknowledge what Kafka delivered, produce
 * the next changes.  Returns the milliseconds until the sinks want to run
 * again.  Runs its own transactions: call it outside one.  force: run now
 * (a checkpoint may have written changes), not only when due.
 */
extern long streamproc_sinks_run(int worker, bool force);

#endif /* STREAMPROC_SINK_H */
