/*-------------------------------------------------------------------------
 *
 * streamproc.h
 *	  Declarations shared by the files of the streamproc extension.
 *
 * Each .c file in src/ owns one concern; this header declares what the
 * others may call.  See docs/architecture.md for the map from concerns to
 * files.
 *
 *-------------------------------------------------------------------------
 */
#ifndef STREAMPROC_H
#define STREAMPROC_H

#include "postgres.h"

#include "datatype/timestamp.h"
#include "port/atomics.h"

#define STREAMPROC_VERSION "0.7"

/* streamproc.c: module state */
extern bool streamproc_preloaded;
extern void streamproc_check_preloaded(void);

/* guc.c: configuration */
extern int streamproc_workers;
extern int streamproc_max_views;
extern int streamproc_batch_size;
extern int streamproc_max_batch_delay;
extern int streamproc_checkpoint_interval;
extern int streamproc_state_memory;
extern int streamproc_lock_timeout;
extern int streamproc_checkpoint_groups;
extern bool streamproc_restoring;
extern void streamproc_define_gucs(void);

/* restore.c: pg_dump and restore, pg_upgrade */
extern bool streamproc_database_restoring(void);
extern void streamproc_check_not_restoring(void);
extern char *streamproc_internal_relname(const char *prefix, Oid id, int nparts);

/* checkpoint.c: lazy VACUUM of a table, outside a transaction. */
extern void streamproc_vacuum_relation(Oid relid);
extern bool streamproc_link_internal(Oid relid, Oid owner);

/* shmem.c: the shared control block */
typedef struct StreamprocShared
{
	/* Set once when shared memory is created, read-only afterwards. */
	TimestampTz started_at;
	int worker_slots;

	/*
	 * Bumped (atomically, no lock) when a transaction that changed the
	 * engine catalog (streams, views) commits; workers reload their view
	 * of the catalog when it moves.
	 */
	pg_atomic_uint64 catalog_generation;

	/*
	 * Bumped the same way when a transaction that created, changed or
	 * dropped a Kafka sink commits (sink.c): the workers read their sinks
	 * at once instead of at their next tick.
	 */
	pg_atomic_uint64 sinks_generation;
} StreamprocShared;

extern StreamprocShared *streamproc_shared;
extern void streamproc_shmem_init(void);
extern void streamproc_catalog_changed(void);

#endif /* STREAMPROC_H */
