/*-------------------------------------------------------------------------
 *
 * shmem.c
 *	  The shared control block of streamproc.
 *
 * Shared memory is requested in shmem_request_hook (PostgreSQL 15's place
 * for RequestAddinShmemSpace and RequestNamedLWLockTranche) and created in
 * shmem_startup_hook, chaining any hooks installed before ours, in the
 * manner of contrib/pg_stat_statements.  The space is sized from
 * PGC_POSTMASTER settings only, so it is fixed for the life of the server.
 *
 * Locking: the control block is written once, by the postmaster (or by
 * the first backend in EXEC_BACKEND builds) while AddinShmemInitLock is
 * held, before any backend can read it; afterwards it is read-only and
 * readers take no lock.  The "streamproc" LWLock tranche is requested here
 * for the engine's shared structures that are written after startup, one
 * lock each: the view registry (state.c), the worker slots (launcher.c),
 * the Kafka statistics (kafka.c) and the deduplication registry (dedup.c).
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/xact.h"
#include "miscadmin.h"
#include "storage/ipc.h"
#include "storage/lwlock.h"
#include "storage/shmem.h"
#include "utils/timestamp.h"

#include "dedup.h"
#include "kafka.h"
#include "launcher.h"
#include "state.h"
#include "streamproc.h"

/* Name of the control block in the shared memory index. */
#define STREAMPROC_SHMEM_NAME "streamproc control"

/* Named LWLock tranche for streamproc's shared structures. */
#define STREAMPROC_LWLOCK_TRANCHE "streamproc"
#define STREAMPROC_LWLOCK_COUNT   4

StreamprocShared *streamproc_shared = NULL;

static shmem_request_hook_type prev_shmem_request_hook = NULL;
static shmem_startup_hook_type prev_shmem_startup_hook = NULL;

static void streamproc_shmem_request(void);
static void streamproc_shmem_startup(void);
static Size streamproc_shmem_size(void);
static void streamproc_catalog_xact_callback(XactEvent event, void *arg);

/* Has the current transaction registered the catalog commit callback? */
static bool catalog_callback_registered = false;
static bool catalog_changed_in_xact = false;

/*
 * streamproc_shmem_init
 *		Install the shared memory hooks; called from _PG_init while
 *		shared_preload_libraries are being loaded.
 */
void
streamproc_shmem_init(void)
{
	prev_shmem_request_hook = shmem_request_hook;
	shmem_request_hook = streamproc_shmem_request;
	prev_shmem_startup_hook = shmem_startup_hook;
	shmem_startup_hook = streamproc_shmem_startup;
}

static Size
streamproc_shmem_size(void)
{
	return MAXALIGN(sizeof(StreamprocShared));
}

/* Everything the modules need in the main shared memory segment. */
static Size
streamproc_total_shmem_size(void)
{
	Size size = streamproc_shmem_size();

	size = add_size(size, streamproc_state_shmem_size());
	size = add_size(size, streamproc_launcher_shmem_size());
	size = add_size(size, streamproc_kafka_shmem_size());
	size = add_size(size, streamproc_dedup_shmem_size());
	return size;
}

static void
streamproc_shmem_request(void)
{
	if (prev_shmem_request_hook)
		prev_shmem_request_hook();

	RequestAddinShmemSpace(streamproc_total_shmem_size());
	RequestNamedLWLockTranche(STREAMPROC_LWLOCK_TRANCHE,
							  STREAMPROC_LWLOCK_COUNT);
}

static void
streamproc_shmem_startup(void)
{
	bool found;

	if (prev_shmem_startup_hook)
		prev_shmem_startup_hook();

	LWLockAcquire(AddinShmemInitLock, LW_EXCLUSIVE);

	streamproc_shared = ShmemInitStruct(STREAMPROC_SHMEM_NAME,
										streamproc_shmem_size(),
										&found);
	if (!found)
	{
		memset(streamproc_shared, 0, streamproc_shmem_size());
		streamproc_shared->started_at = GetCurrentTimestamp();
		streamproc_shared->worker_slots = streamproc_workers;
		pg_atomic_init_u64(&streamproc_shared->catalog_generation, 0);
		pg_atomic_init_u64(&streamproc_shared->sinks_generation, 0);
	}

	streamproc_state_shmem_init(found);
	streamproc_launcher_shmem_init();
	streamproc_kafka_shmem_init();
	streamproc_dedup_shmem_init();

	LWLockRelease(AddinShmemInitLock);
}

/*
 * streamproc_catalog_changed
 *		Note that the current transaction changed the engine catalog.
 *
 * The catalog generation moves only when the transaction commits, so a
 * worker that sees the new generation also sees the committed change.
 * Callers hold nothing; safe to call any number of times per transaction.
 */
void
streamproc_catalog_changed(void)
{
	if (!catalog_callback_registered)
	{
		RegisterXactCallback(streamproc_catalog_xact_callback, NULL);
		catalog_callback_registered = true;
	}
	catalog_changed_in_xact = true;
}

static void
streamproc_catalog_xact_callback(XactEvent event, void *arg)
{
	switch (event)
	{
		case XACT_EVENT_COMMIT:
		case XACT_EVENT_PARALLEL_COMMIT:
			if (catalog_changed_in_xact)
				pg_atomic_fetch_add_u64(&streamproc_shared->catalog_generation, 1);
			catalog_changed_in_xact = false;
			break;
		case XACT_EVENT_ABORT:
		case XACT_EVENT_PARALLEL_ABORT:
			catalog_changed_in_xact = false;
			break;
		default:
			break;
	}
}
