/*-------------------------------------------------------------------------
 *
 * launcher.c
 *	  The launcher background worker, ingest worker slots, and sync().
 *
 * The launcher is a static background worker, registered by _PG_init and
 * restarted by the postmaster after any crash.  It connects to no database
 * (only shared catalogs), lists the databases that accept connections, and
 * starts streamproc.workers ingest workers in each.  A worker whose
 * database has no streamproc extension says so in its slot and exits; the
 * launcher forgets it.  CREATE EXTENSION streamproc asks the launcher, at
 * commit, to start the workers of its database.
 *
 * Ingest workers are dynamic background workers that the postmaster never
 * restarts by itself (BGW_NEVER_RESTART): the launcher supervises them.
 * When one stops for any reason but a missing extension or a DROP
 * DATABASE/EXTENSION (it raised an error, was terminated with
 * pg_terminate_backend(), or crashed without taking the postmaster down),
 * the launcher starts it again after a second.  At server shutdown the
 * launcher stops too, and the postmaster starts no new workers.  A SIGKILLed backend makes the postmaster reinitialize shared
 * memory and restart everything, so after such a crash the launcher starts
 * from scratch, and the workers recover from their checkpoints.
 *
 * The launcher and the workers wait on their latches, never sleep; the
 * launcher also wakes when the postmaster reports a worker's stop
 * (bgw_notify_pid).
 *
 * sync() bumps a shared generation counter and wakes the database's
 * workers; a worker that starts a batch after reading generation G, and
 * finishes it (with a checkpoint), publishes G in its slot.  Every event
 * committed before sync() was called is visible in that batch's snapshot,
 * so once every worker of the database has published G, every such event
 * is reflected in every view.
 *
 * Locking: WorkerShared.lock (the second LWLock of the "streamproc"
 * tranche) protects the slot array, the launcher's pid and latch and the
 * queue of databases to start; see WorkerSlot for which fields a worker
 * writes.  sync_generation and WorkerSlot.sync_done are atomics.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/heapam.h"
#include "access/htup_details.h"
#include "access/relscan.h"
#include "access/tableam.h"
#include "access/xact.h"
#include "access/xlog.h"
#include "catalog/pg_database.h"
#include "commands/dbcommands.h"
#include "fmgr.h"
#include "funcapi.h"
#include "miscadmin.h"
#include "pgstat.h"
#include "postmaster/bgworker.h"
#include "postmaster/interrupt.h"
#include "storage/ipc.h"
#include "storage/lwlock.h"
#include "storage/proc.h"
#include "storage/shmem.h"
#include "tcop/tcopprot.h"
#include "tcop/utility.h"
#include "utils/builtins.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"
#include "utils/syscache.h"
#include "utils/timestamp.h"
#include "utils/tuplestore.h"

#include "dedup.h"
#include "feed.h"
#include "launcher.h"
#include "state.h"
#include "streamproc.h"

/* Databases waiting for the launcher to start their workers. */
#define PENDING_DATABASES 16

/* Delay before a worker that stopped unexpectedly is started again. */
#define WORKER_RESTART_DELAY_MS 1000

typedef struct WorkerShared
{
	LWLock *lock;
	pid_t launcher_pid;
	Latch *launcher_latch;
	int npending;
	Oid pending[PENDING_DATABASES];
	pg_atomic_uint64 sync_generation;
	ConditionVariable progress_cv; /* broadcast when a worker progresses */
	int nslots;
	WorkerSlot slots[FLEXIBLE_ARRAY_MEMBER];
} WorkerShared;

static WorkerShared *worker_shared = NULL;

/* Launcher-local: handle and last start time of each slot's worker. */
static BackgroundWorkerHandle **worker_handles = NULL;
static TimestampTz *worker_started_at = NULL;

/*
 * Launcher-local: when CREATE EXTENSION last asked for each database's
 * workers.  A worker that found no extension but had started before that
 * request may have looked before the commit: it is started again.
 */
static List *requested_dbs = NIL; /* Oid */
static List *requested_at = NIL;  /* TimestampTz *, same order */

/* Launcher-local: databases we warned about lacking worker slots. */
static List *warned_dbs = NIL;

/*
 * Events this transaction inserted into streams, by stream: at commit they
 * are added to the owning workers' pending counts (see
 * streamproc_note_stream_insert).
 */
typedef struct PendingInsert
{
	Oid stream;
	int shard;
	int64 nevents;
} PendingInsert;

static List *pending_inserts = NIL; /* in TopTransactionContext */
static bool insert_callback_registered = false;

static void insert_xact_callback(XactEvent event, void *arg);

/* Commit callback state for streamproc._launch_workers(). */
static bool launch_callback_registered = false;
static bool launch_at_commit = false;

static void launcher_start_database(Oid dbid);
static void launcher_start_all(void);
static void launcher_supervise(void);
static void launcher_take_pending(void);
static TimestampTz launcher_requested_at(Oid dbid);
static void launch_xact_callback(XactEvent event, void *arg);
static bool database_exists(Oid dbid);
static void launcher_process_utility(PlannedStmt *pstmt, const char *queryString,
									 bool readOnlyTree, ProcessUtilityContext context,
									 ParamListInfo params, QueryEnvironment *queryEnv,
									 DestReceiver *dest, QueryCompletion *qc);

static ProcessUtility_hook_type prev_process_utility = NULL;

PG_FUNCTION_INFO_V1(streamproc_launch_workers);
PG_FUNCTION_INFO_V1(streamproc_sync);
PG_FUNCTION_INFO_V1(streamproc_workers_status);

Size
streamproc_launcher_shmem_size(void)
{
	return add_size(offsetof(WorkerShared, slots),
					mul_size(max_worker_processes, sizeof(WorkerSlot)));
}

/*
 * streamproc_launcher_shmem_init
 *		Create the shared part; called from the shmem startup hook with
 *		AddinShmemInitLock held.
 */
void
streamproc_launcher_shmem_init(void)
{
	bool found;
	int i;

	worker_shared = ShmemInitStruct("streamproc workers",
									streamproc_launcher_shmem_size(), &found);
	if (!found)
	{
		memset(worker_shared, 0, streamproc_launcher_shmem_size());
		worker_shared->lock = &(GetNamedLWLockTranche("streamproc"))[1].lock;
		worker_shared->nslots = max_worker_processes;
		pg_atomic_init_u64(&worker_shared->sync_generation, 0);
		ConditionVariableInit(&worker_shared->progress_cv);
		for (i = 0; i < worker_shared->nslots; i++)
		{
			pg_atomic_init_u64(&worker_shared->slots[i].sync_done, 0);
			pg_atomic_init_u64(&worker_shared->slots[i].pending_events, 0);
		}
	}
}

/*
 * streamproc_register_launcher
 *		Register the launcher; called from _PG_init while preloading.
 */
void
streamproc_register_launcher(void)
{
	BackgroundWorker worker;

	memset(&worker, 0, sizeof(worker));
	worker.bgw_flags = BGWORKER_SHMEM_ACCESS | BGWORKER_BACKEND_DATABASE_CONNECTION;
	worker.bgw_start_time = BgWorkerStart_RecoveryFinished;
	worker.bgw_restart_time = 1;
	snprintf(worker.bgw_library_name, BGW_MAXLEN, "streamproc");
	snprintf(worker.bgw_function_name, BGW_MAXLEN, "streamproc_launcher_main");
	snprintf(worker.bgw_name, BGW_MAXLEN, "streamproc launcher");
	snprintf(worker.bgw_type, BGW_MAXLEN, "streamproc launcher");
	RegisterBackgroundWorker(&worker);
}

WorkerSlot *
streamproc_worker_slot(int slotno)
{
	Assert(slotno >= 0 && slotno < worker_shared->nslots);
	return &worker_shared->slots[slotno];
}

uint64
streamproc_sync_generation(void)
{
	return pg_atomic_read_u64(&worker_shared->sync_generation);
}

/*
 * streamproc_worker_progress
 *		Publish that everything committed before sync generation
 *		"generation" is reflected in the worker's views and checkpointed.
 */
void
streamproc_worker_progress(WorkerSlot *slot, uint64 generation)
{
	pg_atomic_write_u64(&slot->sync_done, generation);
	ConditionVariableBroadcast(&worker_shared->progress_cv);
}

/*
 * streamproc_worker_failed
 *		The worker cannot reflect sync generation "generation" because view
 *		viewid fails (or waits for memory); sync() reports it.
 */
void
streamproc_worker_failed(WorkerSlot *slot, uint64 generation, Oid viewid)
{
	LWLockAcquire(worker_shared->lock, LW_EXCLUSIVE);
	slot->sync_failed = generation;
	slot->sync_failed_view = viewid;
	LWLockRelease(worker_shared->lock);
	ConditionVariableBroadcast(&worker_shared->progress_cv);
}

/*
 * streamproc_wake_workers
 *		Set the latches of a database's running workers.
 */
void
streamproc_wake_workers(Oid dbid)
{
	int i;

	LWLockAcquire(worker_shared->lock, LW_SHARED);
	for (i = 0; i < worker_shared->nslots; i++)
	{
		WorkerSlot *slot = &worker_shared->slots[i];

		if (slot->in_use && slot->dbid == dbid && slot->latch != NULL)
			SetLatch(slot->latch);
	}
	LWLockRelease(worker_shared->lock);
}

/*
 * streamproc_note_stream_insert
 *		Called by the stream FDW for the events a statement inserted into a
 *		stream's log.  When the transaction commits, the events count
 *		towards the owning worker's next batch, and the worker is woken as
 *		soon as streamproc.batch_size events wait, instead of at its next
 *		streamproc.max_batch_delay tick.
 */
void
streamproc_note_stream_insert(Oid stream, int shard, int64 nevents)
{
	ListCell *lc;
	PendingInsert *p;
	MemoryContext old;

	if (!insert_callback_registered)
	{
		RegisterXactCallback(insert_xact_callback, NULL);
		insert_callback_registered = true;
	}
	foreach (lc, pending_inserts)
	{
		p = lfirst(lc);
		if (p->stream == stream && p->shard == shard)
		{
			p->nevents += nevents;
			return;
		}
	}
	old = MemoryContextSwitchTo(TopTransactionContext);
	p = palloc(sizeof(PendingInsert));
	p->stream = stream;
	p->shard = shard;
	p->nevents = nevents;
	pending_inserts = lappend(pending_inserts, p);
	MemoryContextSwitchTo(old);
}

static void
insert_xact_callback(XactEvent event, void *arg)
{
	ListCell *lc;
	int i;

	if (event == XACT_EVENT_COMMIT && pending_inserts != NIL)
	{
		LWLockAcquire(worker_shared->lock, LW_SHARED);
		foreach (lc, pending_inserts)
		{
			PendingInsert *p = lfirst(lc);
			int owner = (int)((p->stream + (Oid)p->shard) % (Oid)streamproc_workers);
			int base = (int)(p->stream % (Oid)streamproc_workers);

			/*
			 * The shard's owner, and the stream's first worker, which runs
			 * session and count-window views over every shard.
			 */
			for (i = 0; i < worker_shared->nslots; i++)
			{
				WorkerSlot *slot = &worker_shared->slots[i];

				if (slot->in_use && slot->dbid == MyDatabaseId &&
					(slot->index == owner || slot->index == base))
				{
					uint64 pending = pg_atomic_add_fetch_u64(&slot->pending_events,
															 p->nevents);

					if (pending >= (uint64)streamproc_batch_size && slot->latch != NULL)
						SetLatch(slot->latch);
				}
			}
		}
		LWLockRelease(worker_shared->lock);
	}
	/* The list lived in TopTransactionContext, gone at end of transaction. */
	if (event == XACT_EVENT_COMMIT || event == XACT_EVENT_ABORT ||
		event == XACT_EVENT_PARALLEL_COMMIT || event == XACT_EVENT_PARALLEL_ABORT ||
		event == XACT_EVENT_PREPARE)
		pending_inserts = NIL;
}

/*
 * streamproc_take_pending_events
 *		A worker starting a batch: how many events were committed for it
 *		since its last batch (an estimate for waking, not for correctness).
 */
uint64
streamproc_take_pending_events(WorkerSlot *slot)
{
	return pg_atomic_exchange_u64(&slot->pending_events, 0);
}

/*
 * streamproc_launcher_main
 *		Entry point of the launcher.
 */
void
streamproc_launcher_main(Datum main_arg)
{
	MemoryContext loop_cxt;

	pqsignal(SIGHUP, SignalHandlerForConfigReload);
	pqsignal(SIGTERM, SignalHandlerForShutdownRequest);
	BackgroundWorkerUnblockSignals();

	/* Shared catalogs only: pg_database. */
	BackgroundWorkerInitializeConnection(NULL, NULL, 0);
	pgstat_report_appname("streamproc launcher");

	worker_handles = MemoryContextAllocZero(TopMemoryContext,
											sizeof(BackgroundWorkerHandle *) * worker_shared->nslots);
	worker_started_at = MemoryContextAllocZero(TopMemoryContext,
											   sizeof(TimestampTz) * worker_shared->nslots);
	loop_cxt = AllocSetContextCreate(TopMemoryContext, "streamproc launcher loop",
									 ALLOCSET_DEFAULT_SIZES);

	LWLockAcquire(worker_shared->lock, LW_EXCLUSIVE);
	worker_shared->launcher_pid = MyProcPid;
	worker_shared->launcher_latch = MyLatch;
	LWLockRelease(worker_shared->lock);

	launcher_start_all();

	while (!ShutdownRequestPending)
	{
		MemoryContext oldcxt;

		(void)WaitLatch(MyLatch, WL_LATCH_SET | WL_TIMEOUT | WL_EXIT_ON_PM_DEATH,
						WORKER_RESTART_DELAY_MS, PG_WAIT_EXTENSION);
		ResetLatch(MyLatch);
		CHECK_FOR_INTERRUPTS();

		if (ConfigReloadPending)
		{
			ConfigReloadPending = false;
			ProcessConfigFile(PGC_SIGHUP);
		}

		oldcxt = MemoryContextSwitchTo(loop_cxt);
		launcher_take_pending();
		launcher_supervise();
		MemoryContextSwitchTo(oldcxt);
		MemoryContextReset(loop_cxt);
	}

	LWLockAcquire(worker_shared->lock, LW_EXCLUSIVE);
	worker_shared->launcher_pid = 0;
	worker_shared->launcher_latch = NULL;
	LWLockRelease(worker_shared->lock);
	proc_exit(0);
}

/* Start (or restart) the worker of one slot; false if no process slot. */
static bool
launcher_start_slot(int slotno)
{
	BackgroundWorker worker;
	WorkerSlot *slot = &worker_shared->slots[slotno];
	MemoryContext oldcxt;
	bool ok;

	memset(&worker, 0, sizeof(worker));
	worker.bgw_flags = BGWORKER_SHMEM_ACCESS | BGWORKER_BACKEND_DATABASE_CONNECTION;
	worker.bgw_start_time = BgWorkerStart_RecoveryFinished;
	worker.bgw_restart_time = BGW_NEVER_RESTART;
	snprintf(worker.bgw_library_name, BGW_MAXLEN, "streamproc");
	snprintf(worker.bgw_function_name, BGW_MAXLEN, "streamproc_worker_main");
	snprintf(worker.bgw_name, BGW_MAXLEN, "streamproc worker %d for database %u",
			 slot->index, slot->dbid);
	snprintf(worker.bgw_type, BGW_MAXLEN, "streamproc worker");
	worker.bgw_main_arg = Int32GetDatum(slotno);
	worker.bgw_notify_pid = MyProcPid;

	slot->pid = 0;
	slot->latch = NULL;
	slot->exit_reason = WORKER_RUNNING;
	slot->exit_requested = false;
	worker_started_at[slotno] = GetCurrentTimestamp();

	/* The handle outlives the loop's memory context. */
	oldcxt = MemoryContextSwitchTo(TopMemoryContext);
	ok = RegisterDynamicBackgroundWorker(&worker, &worker_handles[slotno]);
	MemoryContextSwitchTo(oldcxt);
	if (!ok)
		worker_handles[slotno] = NULL;
	return ok;
}

/*
 * launcher_start_database
 *		Make sure every worker of a database has a slot and a process.
 */
static void
launcher_start_database(Oid dbid)
{
	int index;

	for (index = 0; index < streamproc_workers; index++)
	{
		int slotno = -1;
		int free_slot = -1;
		int i;

		LWLockAcquire(worker_shared->lock, LW_EXCLUSIVE);
		for (i = 0; i < worker_shared->nslots; i++)
		{
			WorkerSlot *slot = &worker_shared->slots[i];

			if (slot->in_use && slot->dbid == dbid && slot->index == index)
			{
				slotno = i;
				/* Exited, not yet noticed by launcher_supervise: start again. */
				if (slot->exit_reason != WORKER_RUNNING && worker_handles[i] != NULL)
				{
					pid_t pid;

					if (GetBackgroundWorkerPid(worker_handles[i], &pid) == BGWH_STOPPED)
					{
						pfree(worker_handles[i]);
						if (!launcher_start_slot(i))
							worker_handles[i] = NULL;
					}
				}
			}
			else if (!slot->in_use && free_slot < 0)
				free_slot = i;
		}
		if (slotno < 0 && free_slot >= 0)
		{
			WorkerSlot *slot = &worker_shared->slots[free_slot];

			slot->in_use = true;
			slot->dbid = dbid;
			slot->index = index;
			slot->paused = false;
			pg_atomic_write_u64(&slot->sync_done, 0);
			slotno = free_slot;
			if (!launcher_start_slot(slotno))
			{
				slot->in_use = false;
				slotno = -2;
			}
		}
		LWLockRelease(worker_shared->lock);

		if (slotno < 0)
		{
			if (!list_member_oid(warned_dbs, dbid))
			{
				MemoryContext old = MemoryContextSwitchTo(TopMemoryContext);

				warned_dbs = lappend_oid(warned_dbs, dbid);
				MemoryContextSwitchTo(old);
				ereport(WARNING,
						(errmsg("could not start streamproc worker %d for database %u", index, dbid),
						 errdetail("No background worker slot is free."),
						 errhint("Increase \"max_worker_processes\": streamproc needs \"streamproc.workers\" per database plus one.")));
			}
			/* Try again at the next tick (warning once). */
			LWLockAcquire(worker_shared->lock, LW_EXCLUSIVE);
			if (worker_shared->npending < PENDING_DATABASES)
				worker_shared->pending[worker_shared->npending++] = dbid;
			LWLockRelease(worker_shared->lock);
			return;
		}
	}
}

/* Start the workers of every database that accepts connections. */
static void
launcher_start_all(void)
{
	Relation rel;
	TableScanDesc scan;
	HeapTuple tup;
	List *dbs = NIL;
	ListCell *lc;
	MemoryContext cxt = CurrentMemoryContext;

	StartTransactionCommand();
	rel = table_open(DatabaseRelationId, AccessShareLock);
	scan = table_beginscan_catalog(rel, 0, NULL);
	while ((tup = heap_getnext(scan, ForwardScanDirection)) != NULL)
	{
		Form_pg_database db = (Form_pg_database)GETSTRUCT(tup);

		/* The list outlives the transaction. */
		if (db->datallowconn && !db->datistemplate)
		{
			MemoryContext old = MemoryContextSwitchTo(cxt);

			dbs = lappend_oid(dbs, db->oid);
			MemoryContextSwitchTo(old);
		}
	}
	table_endscan(scan);
	table_close(rel, AccessShareLock);
	CommitTransactionCommand();

	foreach (lc, dbs)
		launcher_start_database(lfirst_oid(lc));
	list_free(dbs);
}

/* Start the databases queued by CREATE EXTENSION. */
static void
launcher_take_pending(void)
{
	Oid pending[PENDING_DATABASES];
	int n;
	int i;

	LWLockAcquire(worker_shared->lock, LW_EXCLUSIVE);
	n = worker_shared->npending;
	memcpy(pending, worker_shared->pending, sizeof(Oid) * n);
	worker_shared->npending = 0;
	LWLockRelease(worker_shared->lock);

	for (i = 0; i < n; i++)
	{
		ListCell *dc;
		ListCell *tc;
		bool known = false;
		MemoryContext old = MemoryContextSwitchTo(TopMemoryContext);

		forboth(dc, requested_dbs, tc, requested_at)
		{
			if (lfirst_oid(dc) == pending[i])
			{
				*(TimestampTz *)lfirst(tc) = GetCurrentTimestamp();
				known = true;
			}
		}
		if (!known)
		{
			TimestampTz *at = palloc(sizeof(TimestampTz));

			*at = GetCurrentTimestamp();
			requested_dbs = lappend_oid(requested_dbs, pending[i]);
			requested_at = lappend(requested_at, at);
		}
		MemoryContextSwitchTo(old);
		launcher_start_database(pending[i]);
	}
}

/* When CREATE EXTENSION last asked for a database's workers (0: never). */
static TimestampTz
launcher_requested_at(Oid dbid)
{
	ListCell *dc;
	ListCell *tc;

	forboth(dc, requested_dbs, tc, requested_at) if (lfirst_oid(dc) == dbid) return *(TimestampTz *)lfirst(tc);
	return 0;
}

/* Restart workers that stopped unexpectedly, forget those that finished. */
static void
launcher_supervise(void)
{
	int i;

	for (i = 0; i < worker_shared->nslots; i++)
	{
		WorkerSlot *slot = &worker_shared->slots[i];
		pid_t pid;
		BgwHandleStatus status;

		if (!slot->in_use || worker_handles[i] == NULL)
			continue;
		status = GetBackgroundWorkerPid(worker_handles[i], &pid);
		if (status == BGWH_POSTMASTER_DIED)
			proc_exit(1);
		if (status != BGWH_STOPPED)
			continue;

		LWLockAcquire(worker_shared->lock, LW_EXCLUSIVE);
		if ((slot->exit_reason == WORKER_EXIT_NO_EXTENSION || slot->exit_requested) &&
			worker_started_at[i] <= launcher_requested_at(slot->dbid))
		{
			/*
			 * A start was requested after this worker started: it may have
			 * looked before CREATE EXTENSION committed, or it was still
			 * exiting for a DROP EXTENSION when the CREATE EXTENSION that
			 * followed asked for workers (launcher_start_database() leaves a
			 * slot alone until its process has stopped).  Start it again.
			 */
			pfree(worker_handles[i]);
			if (!launcher_start_slot(i))
				worker_handles[i] = NULL;
		}
		else if (slot->exit_reason == WORKER_EXIT_NO_EXTENSION || slot->exit_requested)
		{
			/* No extension, or DROP DATABASE/EXTENSION: nothing to restart. */
			slot->in_use = false;
			slot->pid = 0;
			slot->latch = NULL;
			pfree(worker_handles[i]);
			worker_handles[i] = NULL;
		}
		else if (!database_exists(slot->dbid))
		{
			/* Its database was dropped. */
			slot->in_use = false;
			slot->pid = 0;
			slot->latch = NULL;
			pfree(worker_handles[i]);
			worker_handles[i] = NULL;
		}
		else if (TimestampDifferenceExceeds(worker_started_at[i], GetCurrentTimestamp(),
											WORKER_RESTART_DELAY_MS))
		{
			ereport(LOG,
					(errmsg("restarting streamproc worker %d for database %u",
							slot->index, slot->dbid)));
			pfree(worker_handles[i]);
			if (!launcher_start_slot(i))
				worker_handles[i] = NULL;
		}
		LWLockRelease(worker_shared->lock);
	}

	/* Slots whose registration failed earlier: try again. */
	for (i = 0; i < worker_shared->nslots; i++)
	{
		WorkerSlot *slot = &worker_shared->slots[i];

		if (slot->in_use && worker_handles[i] == NULL)
		{
			LWLockAcquire(worker_shared->lock, LW_EXCLUSIVE);
			if (!launcher_start_slot(i))
				worker_handles[i] = NULL;
			LWLockRelease(worker_shared->lock);
		}
	}
}

/*
 * streamproc._launch_workers()
 *		Called by the install script: at commit, ask the launcher to start
 *		the workers of the current database.
 */
Datum
streamproc_launch_workers(PG_FUNCTION_ARGS)
{
	streamproc_check_preloaded();
	if (!launch_callback_registered)
	{
		RegisterXactCallback(launch_xact_callback, NULL);
		launch_callback_registered = true;
	}
	launch_at_commit = true;
	PG_RETURN_VOID();
}

/* Does a database exist?  (The launcher reads the shared catalog.) */
static bool
database_exists(Oid dbid)
{
	bool exists;
	bool in_xact = IsTransactionState();

	if (!in_xact)
		StartTransactionCommand();
	exists = SearchSysCacheExists1(DATABASEOID, ObjectIdGetDatum(dbid));
	if (!in_xact)
		CommitTransactionCommand();
	return exists;
}

/*
 * streamproc_launcher_init
 *		Install the utility hook that lets DROP DATABASE through; called
 *		from _PG_init.
 */
void
streamproc_launcher_init(void)
{
	prev_process_utility = ProcessUtility_hook;
	ProcessUtility_hook = launcher_process_utility;
}

/*
 * Ask a database's workers to exit and wait (at most 10 seconds) until they
 * have: DROP DATABASE refuses while other sessions are connected.
 */
void
streamproc_stop_database_workers(Oid dbid)
{
	int i;
	int waited;

	LWLockAcquire(worker_shared->lock, LW_EXCLUSIVE);
	for (i = 0; i < worker_shared->nslots; i++)
	{
		WorkerSlot *slot = &worker_shared->slots[i];

		if (slot->in_use && slot->dbid == dbid)
		{
			slot->exit_requested = true;
			if (slot->latch != NULL)
				SetLatch(slot->latch);
		}
	}
	LWLockRelease(worker_shared->lock);

	for (waited = 0; waited < 100; waited++)
	{
		bool running = false;

		LWLockAcquire(worker_shared->lock, LW_SHARED);
		for (i = 0; i < worker_shared->nslots; i++)
		{
			WorkerSlot *slot = &worker_shared->slots[i];

			if (slot->in_use && slot->dbid == dbid &&
				slot->exit_reason == WORKER_RUNNING && slot->pid != 0)
				running = true;
		}
		LWLockRelease(worker_shared->lock);
		if (!running)
			break;
		(void)WaitLatch(MyLatch, WL_LATCH_SET | WL_TIMEOUT | WL_EXIT_ON_PM_DEATH,
						100, PG_WAIT_EXTENSION);
		ResetLatch(MyLatch);
		CHECK_FOR_INTERRUPTS();
	}
}

/*
 * Ask the launcher to start a database's missing workers (starting is
 * idempotent): at the commit of CREATE EXTENSION, after a DROP that failed,
 * and from sync() while fewer than streamproc.workers run (a safety net: a
 * worker that exited because it saw the extension dropped while it was
 * being created again must come back).
 */
static void
request_launch(Oid dbid)
{
	LWLockAcquire(worker_shared->lock, LW_EXCLUSIVE);
	if (worker_shared->npending < PENDING_DATABASES)
		worker_shared->pending[worker_shared->npending++] = dbid;
	if (worker_shared->launcher_latch != NULL)
		SetLatch(worker_shared->launcher_latch);
	LWLockRelease(worker_shared->lock);
}

static void
launcher_process_utility(PlannedStmt *pstmt, const char *queryString,
						 bool readOnlyTree, ProcessUtilityContext context,
						 ParamListInfo params, QueryEnvironment *queryEnv,
						 DestReceiver *dest, QueryCompletion *qc)
{
	Oid dropped = InvalidOid;

	if (IsA(pstmt->utilityStmt, DropdbStmt))
	{
		dropped = get_database_oid(((DropdbStmt *)pstmt->utilityStmt)->dbname, true);
		if (OidIsValid(dropped))
			streamproc_stop_database_workers(dropped);
	}
	else if (IsA(pstmt->utilityStmt, DropStmt) &&
			 ((DropStmt *)pstmt->utilityStmt)->removeType == OBJECT_EXTENSION)
	{
		ListCell *lc;

		/*
		 * DROP EXTENSION streamproc: the workers read the catalog it drops;
		 * stop them first rather than let them deadlock with it.
		 */
		foreach (lc, ((DropStmt *)pstmt->utilityStmt)->objects)
		{
			if (strcmp(strVal(lfirst(lc)), "streamproc") == 0)
			{
				dropped = MyDatabaseId;
				streamproc_stop_database_workers(dropped);
			}
		}
	}

	PG_TRY();
	{
		if (prev_process_utility)
			prev_process_utility(pstmt, queryString, readOnlyTree, context,
								 params, queryEnv, dest, qc);
		else
			standard_ProcessUtility(pstmt, queryString, readOnlyTree, context,
									params, queryEnv, dest, qc);
	}
	PG_CATCH();
	{
		/* The database (or the extension) stays: bring its workers back. */
		if (OidIsValid(dropped))
			request_launch(dropped);
		PG_RE_THROW();
	}
	PG_END_TRY();
}

static void
launch_xact_callback(XactEvent event, void *arg)
{
	if (event == XACT_EVENT_COMMIT && launch_at_commit)
		request_launch(MyDatabaseId);
	if (event == XACT_EVENT_COMMIT || event == XACT_EVENT_ABORT)
		launch_at_commit = false;
}

/* sync(): a view that cannot catch up, with its last error. */
static void
report_failed_view(Oid viewid)
{
	ViewStateInfo info;
	char *name = get_rel_name(viewid);
	int64 dedup;

	(void)streamproc_state_info(MyDatabaseId, viewid, &info);
	dedup = info.status == VIEW_SLOT_PAUSED ? streamproc_dedup_memory_used() : 0;
	if (info.status == VIEW_SLOT_PAUSED && dedup > 0)
		ereport(ERROR,
				(errcode(ERRCODE_PROGRAM_LIMIT_EXCEEDED),
				 errmsg("continuous view \"%s\" cannot catch up: the state memory budget is reached",
						name ? name : "?"),
				 errdetail("Continuous views use %lld bytes of shared memory (%lld of them for the keys of streams with dedup_key); \"streamproc.state_memory\" is %d kB.",
						   (long long)streamproc_state_memory_used(), (long long)dedup,
						   streamproc_state_memory),
				 errhint("Increase \"streamproc.state_memory\", shorten the dedup_window of streams with dedup_key, or drop continuous views.  Its input is kept and processed when memory allows.")));
	if (info.status == VIEW_SLOT_PAUSED)
		ereport(ERROR,
				(errcode(ERRCODE_PROGRAM_LIMIT_EXCEEDED),
				 errmsg("continuous view \"%s\" cannot catch up: the state memory budget is reached",
						name ? name : "?"),
				 errdetail("Continuous views use %lld bytes of shared memory; \"streamproc.state_memory\" is %d kB.",
						   (long long)streamproc_state_memory_used(), streamproc_state_memory),
				 errhint("Increase \"streamproc.state_memory\" or drop continuous views.  Its input is kept and processed when memory allows.")));
	ereport(ERROR,
			(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
			 errmsg("continuous view \"%s\" cannot catch up: %s", name ? name : "?",
					info.last_error[0] ? info.last_error : "it failed"),
			 errdetail("The view is retried with backoff; its events are kept, and the other views go on."),
			 errhint("Fix the cause (see streamproc.stat_views.last_error); the view recovers by itself.")));
}

/*
 * streamproc.sync(timeout interval)
 *		Return once every stream event committed before the call is
 *		reflected in every continuous view of the current database.
 */
Datum
streamproc_sync(PG_FUNCTION_ARGS)
{
	Interval *timeout = PG_GETARG_INTERVAL_P(0);
	int64 timeout_ms;
	TimestampTz deadline;
	uint64 generation;
	int running = 0;
	int done = 0;
	bool paused = false;
	Oid failed_view = InvalidOid;
	TimestampTz last_request = GetCurrentTimestamp(); /* let new workers start */
	int chain_rounds;

	streamproc_check_preloaded();

	/*
	 * A standby has no ingest workers: its views show what the primary's
	 * checkpoints wrote, as WAL replay brings it.
	 */
	if (RecoveryInProgress())
		ereport(ERROR,
				(errcode(ERRCODE_READ_ONLY_SQL_TRANSACTION),
				 errmsg("cannot wait for continuous views on a standby"),
				 errdetail("A standby does not ingest: its continuous views show the state the primary last checkpointed."),
				 errhint("Call streamproc.sync() on the primary, then wait for this standby to replay it.")));

	streamproc_check_not_restoring();

	timeout_ms = (int64)(timeout->time / 1000) +
				 (int64)(timeout->day + timeout->month * 30) * 86400000;
	if (timeout_ms <= 0)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("timeout must be positive")));
	deadline = TimestampTzPlusMilliseconds(GetCurrentTimestamp(), timeout_ms);

	chain_rounds = streamproc_feed_depth();
	generation = pg_atomic_add_fetch_u64(&worker_shared->sync_generation, 1);
	streamproc_wake_workers(MyDatabaseId);

	ConditionVariablePrepareToSleep(&worker_shared->progress_cv);
	for (;;)
	{
		long remaining;
		int i;

		running = done = 0;
		paused = false;
		failed_view = InvalidOid;
		LWLockAcquire(worker_shared->lock, LW_SHARED);
		for (i = 0; i < worker_shared->nslots; i++)
		{
			WorkerSlot *slot = &worker_shared->slots[i];

			if (!slot->in_use || slot->dbid != MyDatabaseId ||
				slot->exit_reason != WORKER_RUNNING || slot->pid == 0)
				continue;
			running++;
			if (pg_atomic_read_u64(&slot->sync_done) >= generation)
				done++;
			else if (slot->sync_failed >= generation)
				failed_view = slot->sync_failed_view;
			paused |= slot->paused;
		}
		LWLockRelease(worker_shared->lock);

		if (running >= streamproc_workers && done == running)
		{
			/*
			 * One worker's events may have moved a watermark that closes
			 * another worker's windows: then another round, in which they
			 * close them.  Views over views: a round's checkpoints write
			 * rows into the feeds of the views downstream (feed.c), which
			 * the next round merges; one round more per feed of the
			 * longest chain.
			 */
			if (streamproc_state_windows_settled(MyDatabaseId, streamproc_workers) &&
				chain_rounds-- <= 0)
				break;
			generation = pg_atomic_add_fetch_u64(&worker_shared->sync_generation, 1);
			streamproc_wake_workers(MyDatabaseId);
			continue;
		}
		if (OidIsValid(failed_view))
		{
			ConditionVariableCancelSleep();
			report_failed_view(failed_view);
		}

		remaining = TimestampDifferenceMilliseconds(GetCurrentTimestamp(), deadline);
		if (remaining <= 0)
		{
			ConditionVariableCancelSleep();
			ereport(ERROR,
					(errcode(ERRCODE_QUERY_CANCELED),
					 errmsg("streamproc.sync() timed out"),
					 paused ? errdetail("Ingestion is paused: the state memory budget \"streamproc.state_memory\" is reached.")
							: errdetail("%d of %d workers of this database caught up.", done,
										streamproc_workers),
					 paused ? errhint("Increase \"streamproc.state_memory\" or drop continuous views.")
							: errhint("Check the server log, streamproc.stat_views and streamproc.stat_sources (a Kafka source whose brokers are unreachable holds sync() back); pass a longer timeout.")));
		}
		if (running < streamproc_workers &&
			TimestampDifferenceExceeds(last_request, GetCurrentTimestamp(), 1000))
		{
			last_request = GetCurrentTimestamp();
			ereport(DEBUG1,
					(errmsg("streamproc.sync(): %d of %d workers of this database run; asking the launcher for the others",
							running, streamproc_workers)));
			request_launch(MyDatabaseId);
		}

		/* Re-check at least every second: workers may appear meanwhile. */
		(void)ConditionVariableTimedSleep(&worker_shared->progress_cv,
										  Min(remaining, 1000), PG_WAIT_EXTENSION);
		CHECK_FOR_INTERRUPTS();
	}
	ConditionVariableCancelSleep();
	PG_RETURN_VOID();
}

/*
 * streamproc._workers()
 *		The ingest workers of the current database.
 */
Datum
streamproc_workers_status(PG_FUNCTION_ARGS)
{
	ReturnSetInfo *rsinfo = (ReturnSetInfo *)fcinfo->resultinfo;
	int i;

	streamproc_check_preloaded();
	InitMaterializedSRF(fcinfo, 0);

	LWLockAcquire(worker_shared->lock, LW_SHARED);
	for (i = 0; i < worker_shared->nslots; i++)
	{
		WorkerSlot *slot = &worker_shared->slots[i];
		Datum values[4];
		bool nulls[4] = {false, false, false, false};

		if (!slot->in_use || slot->dbid != MyDatabaseId)
			continue;
		values[0] = Int32GetDatum(slot->index);
		values[1] = Int32GetDatum(slot->pid);
		nulls[1] = (slot->pid == 0);
		values[2] = BoolGetDatum(slot->paused);
		values[3] = Int64GetDatum((int64)pg_atomic_read_u64(&slot->sync_done));
		tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, values, nulls);
	}
	LWLockRelease(worker_shared->lock);
	return (Datum)0;
}
