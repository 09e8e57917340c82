/*-------------------------------------------------------------------------
 *
 * guc.c
 *	  Configuration parameters of streamproc.
 *
 * Every parameter lives under the reserved "streamproc." prefix; the
 * prefix is reserved with MarkGUCPrefixReserved() so that a misspelt
 * setting (streamproc.batchsize) is reported instead of silently becoming
 * a placeholder.  Only what sizes shared memory is PGC_POSTMASTER; the rest
 * can be changed with a reload (PGC_SIGHUP), as the background workers
 * re-read their configuration on SIGHUP.
 *
 * docs/operations.md documents each parameter; keep the two in step.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include <limits.h>

#include "utils/guc.h"
#include "utils/memutils.h"

#include "parse.h"
#include "streamproc.h"

/* Number of ingest workers, and so of state slots, per database. */
int streamproc_workers = 2;

/* Most continuous views whose state the server keeps in shared memory. */
int streamproc_max_views = 1024;

/* Committed events that make a worker start a micro-batch at once. */
int streamproc_batch_size = 10000;

/* Longest time an event waits for its micro-batch to fill, in ms. */
int streamproc_max_batch_delay = 100;

/* Time between two checkpoints of a worker, in ms. */
int streamproc_checkpoint_interval = 1000;

/* Changed groups of a view that start a checkpoint at once (0: none). */
int streamproc_checkpoint_groups = 10000;

/* Budget for all continuous views' shared-memory state, in kB. */
int streamproc_state_memory = 256 * 1024;
int streamproc_lock_timeout = 1000;

/* Largest Kafka message a parser accepts, in bytes (parse.c). */
int streamproc_max_message_bytes = 1024 * 1024;

/* A dump is being restored into this database (restore.c). */
bool streamproc_restoring = false;

/*
 * streamproc_define_gucs
 *		Define the parameters; called from _PG_init.
 */
void
streamproc_define_gucs(void)
{
	DefineCustomIntVariable("streamproc.workers",
							"Number of ingest workers per database.",
							"Each worker owns a share of the inputs and one "
							"state slot of every continuous view.",
							&streamproc_workers,
							2, 1, 64,
							PGC_POSTMASTER,
							0,
							NULL, NULL, NULL);

	DefineCustomIntVariable("streamproc.max_views",
							"Most continuous views whose state the server keeps in shared memory.",
							"Sizes the view registry in shared memory.",
							&streamproc_max_views,
							1024, 1, 100000,
							PGC_POSTMASTER,
							0,
							NULL, NULL, NULL);

	DefineCustomIntVariable("streamproc.batch_size",
							"Committed events that make an ingest worker start a micro-batch at once.",
							"Below it, a worker starts a micro-batch every streamproc.max_batch_delay.",
							&streamproc_batch_size,
							10000, 1, 1000000,
							PGC_SIGHUP,
							0,
							NULL, NULL, NULL);

	DefineCustomIntVariable("streamproc.max_batch_delay",
							"Longest time an event waits for its micro-batch to fill.",
							NULL,
							&streamproc_max_batch_delay,
							100, 1, 60 * 1000,
							PGC_SIGHUP,
							GUC_UNIT_MS,
							NULL, NULL, NULL);

	DefineCustomIntVariable("streamproc.lock_timeout",
							"Longest time an ingest worker waits for a lock before it retries the view later.",
							"A view whose batch or checkpoint waits longer for a lock (a table it joins "
							"locked by someone else) is retried with backoff, while the worker's other "
							"views go on.  0 waits forever.",
							&streamproc_lock_timeout,
							1000, 0, INT_MAX,
							PGC_SIGHUP,
							GUC_UNIT_MS,
							NULL, NULL, NULL);

	DefineCustomIntVariable("streamproc.checkpoint_interval",
							"Time between two checkpoints of an ingest worker.",
							"A checkpoint commits the worker's changed state "
							"and input positions in one transaction.  Slow "
							"checkpoints are spaced further apart, so that "
							"they take at most a tenth of a worker's time.",
							&streamproc_checkpoint_interval,
							1000, 10, 60 * 60 * 1000,
							PGC_SIGHUP,
							GUC_UNIT_MS,
							NULL, NULL, NULL);

	DefineCustomIntVariable("streamproc.checkpoint_groups",
							"Changed groups of a continuous view that start a checkpoint at once.",
							"A worker merges no events while it checkpoints, for a time "
							"that follows the groups it writes: fewer keeps views fresher, "
							"more costs less per event.  0 waits for checkpoint_interval.",
							&streamproc_checkpoint_groups,
							10000, 0, INT_MAX,
							PGC_SIGHUP,
							0,
							NULL, NULL, NULL);

	DefineCustomIntVariable("streamproc.state_memory",
							"Shared memory budget for the state of all continuous views.",
							"When the budget is reached, ingestion pauses "
							"until memory is freed; nothing is dropped.",
							&streamproc_state_memory,
							256 * 1024, 1024, MAX_KILOBYTES,
							PGC_SIGHUP,
							GUC_UNIT_KB,
							NULL, NULL, NULL);

	DefineCustomIntVariable("streamproc.max_message_bytes",
							"Largest Kafka message that sources parse.",
							"Larger messages go to streamproc.errors unparsed.",
							&streamproc_max_message_bytes,
							1024 * 1024, 1, (int)MaxAllocSize,
							PGC_SIGHUP,
							GUC_UNIT_BYTE,
							NULL, NULL, NULL);

	DefineCustomBoolVariable("streamproc.restoring",
							 "Leaves streamproc's objects alone while a dump is restored.",
							 "Set for a database by streamproc.pre_restore() and reset "
							 "by streamproc.post_restore(); do not set it by hand.",
							 &streamproc_restoring,
							 false,
							 PGC_SUSET,
							 0,
							 NULL, NULL, NULL);

	MarkGUCPrefixReserved("streamproc");
}
