/*-------------------------------------------------------------------------
 *
 * launcher.h
 *	  Launcher, ingest worker slots and sync() (see launcher.c).
 *
 *-------------------------------------------------------------------------
 */
#ifndef STREAMPROC_LAUNCHER_H
#define STREAMPROC_LAUNCHER_H

#include "postgres.h"

#include "port/atomics.h"
#include "storage/condition_variable.h"
#include "storage/latch.h"

/* Why a worker exited; set by the worker just before it exits. */
typedef enum WorkerExit
{
	WORKER_RUNNING = 0,      /* not exited, or died without saying (crash) */
	WORKER_EXIT_SHUTDOWN,    /* SIGTERM */
	WORKER_EXIT_NO_EXTENSION /* its database has no streamproc */
} WorkerExit;

/*
 * One ingest worker's slot in shared memory.  The launcher assigns the slot
 * (dbid, index, in_use) with WorkerShared.lock held exclusively; the worker
 * writes the remaining fields of its own slot, readers (sync, stats) read
 * them under the same lock in shared mode.  sync_done is atomic so that the
 * worker publishes progress without the lock.
 */
typedef struct WorkerSlot
{
	bool in_use;
	Oid dbid;
	int index; /* 0 .. streamproc.workers - 1: the state slot */
	pid_t pid; /* 0 until the worker runs */
	Latch *latch;
	WorkerExit exit_reason;
	bool paused;                     /* ingestion paused at the memory budget */
	bool exit_requested;             /* DROP DATABASE: leave without a checkpoint */
	pg_atomic_uint64 sync_done;      /* highest sync generation reflected */
	uint64 sync_failed;              /* ... or that a view could not reflect */
	Oid sync_failed_view;            /* ... that view */
	pg_atomic_uint64 pending_events; /* committed since its last batch */
} WorkerSlot;

extern Size streamproc_launcher_shmem_size(void);
extern void streamproc_launcher_shmem_init(void);
extern void streamproc_register_launcher(void);
extern void streamproc_launcher_init(void);

extern WorkerSlot *streamproc_worker_slot(int slotno);
extern uint64 streamproc_sync_generation(void);
extern void streamproc_worker_progress(WorkerSlot *slot, uint64 generation);
extern void streamproc_worker_failed(WorkerSlot *slot, uint64 generation, Oid viewid);
extern void streamproc_wake_workers(Oid dbid);
extern void streamproc_stop_database_workers(Oid dbid);
extern void streamproc_note_stream_insert(Oid stream, int shard, int64 nevents);
extern uint64 streamproc_take_pending_events(WorkerSlot *slot);

PGDLLEXPORT void streamproc_launcher_main(Datum main_arg);
PGDLLEXPORT void streamproc_worker_main(Datum main_arg);

#endif /* STREAMPROC_LAUNCHER_H */
