/*-------------------------------------------------------------------------
 *
 * worker.c
 *	  Ingest worker: the process and its main loop.
 *
 * Each database with streamproc runs streamproc.workers ingest workers
 * (launcher.c starts them).  Worker k owns the shards of stream logs that
 * map to it (shard s of stream S is worker (S + s) mod workers's), the
 * partitions of Kafka sources that kafka.c assigns it, and slot k of every
 * view's state; it is the only writer of that slot.  A view is fed by
 * several workers when its stream has several shards or a Kafka source
 * with workers > 1: each merges into its own slot, and readers combine the
 * slots.  Session and count-window views need all of a group's events in
 * one place: the stream's first worker runs them over every shard.  Every
 * worker also loads its slot of the views it does not feed (what it wrote
 * before a source was paused or resized), since readers need every slot.
 *
 * Everything the worker holds is in one struct (Worker, engine.h), built
 * from the catalog by catalog.c and refreshed there when the catalog
 * changes, for the objects that changed only.
 *
 * The loop: reload what the catalog changed; run a batch over every log
 * shard with committed events (batch.c) and over what the Kafka consumers
 * hold; publish watermarks; checkpoint every streamproc.checkpoint_interval
 * (checkpoint.c) or at sync(); wait on the latch (or inside librdkafka when
 * there are Kafka sources, see kafka.c).
 *
 * Failures are the view's, not the worker's.  Each view has its own
 * position in each input (positions.c) and a status.  An error of an
 * event's data sends the event to streamproc.errors; any other error in a
 * view's batch or checkpoint leaves the view where it was (nothing applied,
 * position unchanged), marks it retrying (transient) or failed (an error
 * of the view, errors.c), and retries it with exponential backoff; the
 * worker's other views go on.  sync() retries at once and reports a view
 * that still fails.  A checkpoint that fails as a whole is retried with
 * backoff; only errors outside all of that (the catalog cannot be read,
 * shared memory is exhausted) make the worker exit, and the launcher
 * starts it again: it then reloads its slot from the checkpoint and replays
 * its inputs from the positions, so nothing is lost or counted twice.
 *
 * Locking: see state.c (registry), groupmap.c (partitions) and launcher.c
 * (worker slots).  Nothing here holds a lock across a query.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#ifdef __GLIBC__
#include <malloc.h>
#endif

#include "access/htup_details.h"
#include "access/xact.h"
#include "catalog/pg_type.h"
#include "commands/extension.h"
#include "executor/spi.h"
#include "funcapi.h"
#include "mb/pg_wchar.h"
#include "miscadmin.h"
#include "pgstat.h"
#include "postmaster/bgworker.h"
#include "postmaster/interrupt.h"
#include "storage/ipc.h"
#include "storage/latch.h"
#include "storage/pmsignal.h"
#include "tcop/tcopprot.h"
#include "utils/builtins.h"
#include "utils/guc.h"
#include "utils/memutils.h"
#include "utils/syscache.h"
#include "utils/timestamp.h"

#include "engine.h"
#include "errors.h"
#include "changes.h"
#include "feed.h"
#include "sink.h"
#include "streamproc.h"

/* Longest event text kept in streamproc.errors. */
#define ERROR_EVENT_MAX 2048

static void apply_lock_timeout(void);
static void worker_exit(Worker *w, WorkerExit reason) pg_attribute_noreturn();
static void worker_exit_restoring(Worker *w) pg_attribute_noreturn();
static bool worker_has_extension(void);
static void worker_loop(Worker *w);
static int checkpoint_spacing(Worker *w);
static void worker_publish_status(Worker *w);
static void retry_all_now(Worker *w);
static bool view_behind(WView *view);

/*
 * streamproc_worker_main
 *		Entry point of an ingest worker; main_arg is its slot number.
 */
void
streamproc_worker_main(Datum main_arg)
{
	Worker *w;

	pqsignal(SIGHUP, SignalHandlerForConfigReload);
	pqsignal(SIGTERM, SignalHandlerForShutdownRequest);
	BackgroundWorkerUnblockSignals();

	w = MemoryContextAllocZero(TopMemoryContext, sizeof(Worker));
	w->slot = streamproc_worker_slot(DatumGetInt32(main_arg));
	w->index = w->slot->index;

	BackgroundWorkerInitializeConnectionByOid(w->slot->dbid, InvalidOid, 0);
	pgstat_report_appname(psprintf("streamproc worker %d", w->index));

	w->batch_cxt = AllocSetContextCreate(TopMemoryContext, "streamproc batch",
										 ALLOCSET_DEFAULT_SIZES);
	w->row_cxt = AllocSetContextCreate(TopMemoryContext, "streamproc row",
									   ALLOCSET_DEFAULT_SIZES);
#ifdef __GLIBC__

	/*
	 * Each batch allocates and frees a few MB in large blocks; by default
	 * glibc gives them back to the kernel (munmap, heap trimming) and the
	 * next batch faults them in again, which was a fifth of a Kafka
	 * worker's CPU.  Keep them in the process: its size then stays at the
	 * largest batch's, instead of going up and down with every batch.
	 */
	mallopt(M_MMAP_THRESHOLD, 32 * 1024 * 1024);
	mallopt(M_TRIM_THRESHOLD, 256 * 1024 * 1024);
#endif

	/*
	 * The catalog's queries are deparsed with only pg_catalog in the search
	 * path (view.c), and so are ours: run them the same way.
	 */
	SetConfigOption("search_path", "pg_catalog", PGC_SUSET, PGC_S_OVERRIDE);

	if (!worker_has_extension())
		worker_exit(w, WORKER_EXIT_NO_EXTENSION);
	if (streamproc_database_restoring())
		worker_exit_restoring(w);

	w->slot->pid = MyProcPid;
	w->slot->latch = MyLatch;

	w->catalog_generation = pg_atomic_read_u64(&streamproc_shared->catalog_generation);
	catalog_load(w);
	apply_lock_timeout();
	w->last_checkpoint = GetCurrentTimestamp();
	w->batch_needed = true;
	ereport(LOG, (errmsg("streamproc worker %d started", w->index)));

	worker_loop(w);

	if (w->checkpoint_needed)
		checkpoint_run(w);
	worker_exit(w, WORKER_EXIT_SHUTDOWN);
}

static void
worker_loop(Worker *w)
{
	while (!ShutdownRequestPending)
	{
		uint64 generation;
		uint64 catalog_generation;
		bool sync_requested;
		bool more = false;
		bool caught_up;
		bool behind = false;
		long kafka_wait;
		long sink_wait;
		long timeout;
		TimestampTz now;
		TimestampTz checkpointed;
		ListCell *lc;

		CHECK_FOR_INTERRUPTS();
		if (w->slot->exit_requested)
			worker_exit(w, WORKER_EXIT_SHUTDOWN); /* DROP DATABASE */
		if (ConfigReloadPending)
		{
			ConfigReloadPending = false;
			ProcessConfigFile(PGC_SIGHUP);
			apply_lock_timeout();
			retry_all_now(w); /* the memory budget may have grown */
		}

		/* Read the sync generation before taking any batch snapshot. */
		generation = streamproc_sync_generation();
		sync_requested = generation > pg_atomic_read_u64(&w->slot->sync_done);
		if (sync_requested && generation > w->sync_seen)
		{
			/* sync(): whatever waits for a retry is retried now. */
			w->sync_seen = generation;
			retry_all_now(w);
		}

		catalog_generation = pg_atomic_read_u64(&streamproc_shared->catalog_generation);
		if (catalog_generation != w->catalog_generation)
		{
			/* What is reloaded must be on disk first (catalog.c). */
			if (w->checkpoint_needed)
				checkpoint_run(w);
			if (!w->checkpoint_needed)
			{
				if (!worker_has_extension())
					worker_exit(w, WORKER_EXIT_NO_EXTENSION);
				if (streamproc_database_restoring())
					worker_exit_restoring(w);
				w->catalog_generation = catalog_generation;
				/* A (re)load waits for the locks it needs: it is all or nothing. */
				SetConfigOption("lock_timeout", "0", PGC_SUSET, PGC_S_OVERRIDE);
				catalog_load(w);
				apply_lock_timeout();
				w->batch_needed = true;
			}
		}

		/*
		 * Look at the logs when events were committed for us (the stream
		 * FDW counts them), for sync(), after a (re)load, when a view is due
		 * for a retry, and every checkpoint interval as a safety net.
		 */
		now = GetCurrentTimestamp();
		if (streamproc_take_pending_events(w->slot) > 0 || sync_requested ||
			TimestampDifferenceExceeds(w->last_batch, now, streamproc_checkpoint_interval))
			w->batch_needed = true;
		foreach (lc, w->views)
		{
			WView *view = lfirst(lc);

			if (view->status != VIEW_SLOT_RUNNING && view->status != VIEW_SLOT_IDLE &&
				now >= view->retry_at)
				w->batch_needed = true;
		}
		if (w->batch_needed && catalog_generation == w->catalog_generation)
		{
			bool reload = false;

			foreach (lc, w->streams)
			{
				WStream *stream = lfirst(lc);
				ListCell *sc;

				foreach (sc, stream->shards)
				{
					int64 n = batch_run_shard(w, lfirst(sc));

					if (n < 0)
					{
						/* The catalog changed under the batch: reload first. */
						reload = true;
						break;
					}
				}
				if (reload)
					break;
			}
			if (reload)
				continue;
			w->batch_needed = false;
			w->last_batch = GetCurrentTimestamp();
		}

		/* Kafka: whatever the consumers hold, then their housekeeping. */
		foreach (lc, w->streams)
		{
			WStream *stream = lfirst(lc);
			ListCell *sc;

			foreach (sc, stream->sources)
			{
				bool src_more = false;

				if (batch_run_source(w, stream, lfirst(sc), &src_more) > 0 &&
					stream->pending.nrows >= PENDING_ROWS_CHECKPOINT)
					w->checkpoint_soon = true;
				more |= src_more;
			}
		}
		kafka_wait = w->sources ? streamproc_kafka_maintain(w->sources) : -1;

		/*
		 * Watermarks, after this round's batches and before its checkpoint
		 * (which closes windows by them); also without events, as inputs go
		 * idle with time.
		 */
		foreach (lc, w->streams)
			window_publish_watermarks(w, lfirst(lc));
		if (streamproc_kafka_checkpoint_needed(w->sources))
			w->checkpoint_needed = true;
		/* Streams with dedup_key forget expired keys in checkpoints. */
		foreach (lc, w->streams)
			if (((WStream *)lfirst(lc))->dedup != NULL &&
				dedup_expiry_due(((WStream *)lfirst(lc))->dedup))
				w->checkpoint_needed = true;

		/*
		 * sync(): the Kafka partitions must also be processed up to the high
		 * watermarks read after the call, and the result checkpointed.
		 */
		caught_up = !sync_requested || streamproc_kafka_caught_up(w->sources, generation);

		now = GetCurrentTimestamp();
		checkpointed = w->last_checkpoint;
		if (w->checkpoint_needed && now >= w->checkpoint_retry_at &&
			((sync_requested && caught_up) || w->checkpoint_soon ||
			 TimestampDifferenceExceeds(w->last_checkpoint, now, checkpoint_spacing(w))))
			checkpoint_run(w);

		/*
		 * Views over final windows (feed.c) and their change logs
		 * (changes.c): the windows that every slot has now closed go to
		 * their feeds and logs, before sync() hears of this round.
		 */
		if (w->last_checkpoint != checkpointed || sync_requested)
		{
			streamproc_feed_emit_windows();
			streamproc_changes_after_checkpoint();
		}

		/* Kafka sinks (sink.c): produce what the change logs gained. */
		sink_wait = streamproc_sinks_run(w->index, w->last_checkpoint != checkpointed);

		worker_publish_status(w);
		if (sync_requested && caught_up && !w->checkpoint_needed)
		{
			ListCell *vc;
			WView *failing = NULL;

			foreach (vc, w->views)
			{
				WView *view = lfirst(vc);

				if (view->held)
					continue;
				if (view->status == VIEW_SLOT_FAILED || view->status == VIEW_SLOT_PAUSED)
					failing = view;
				else
					behind |= view_behind(view);
			}
			if (failing != NULL)
				streamproc_worker_failed(w->slot, generation, failing->viewid);
			else if (!behind)
				streamproc_worker_progress(w->slot, generation);
		}

		timeout = more ? 0 : streamproc_max_batch_delay;
		if (kafka_wait >= 0)
			timeout = Min(timeout, kafka_wait);
		timeout = Min(timeout, sink_wait);
		if (!caught_up || behind || (sync_requested && w->checkpoint_needed))
			timeout = Min(timeout, 20);
		foreach (lc, w->views)
		{
			WView *view = lfirst(lc);

			if (view->status != VIEW_SLOT_RUNNING && view->status != VIEW_SLOT_IDLE)
				timeout = Min(timeout, Max(1, (long)((view->retry_at - now) / 1000)));
		}
		if (w->checkpoint_needed && w->checkpoint_retry_at > now)
			timeout = Min(timeout, Max(1, (long)((w->checkpoint_retry_at - now) / 1000)));

		/*
		 * Idle: with Kafka sources, wait for a message inside librdkafka
		 * (kafka.c says why), a short while at a time; otherwise on the
		 * latch.
		 */
		if (timeout > 0 && !MyLatch->is_set && w->sources != NIL &&
			streamproc_kafka_wait(w->sources, timeout))
		{
			/* Not in WaitLatch: look after the postmaster ourselves. */
			if (!PostmasterIsAlive())
				proc_exit(1);
		}
		else
		{
			(void)WaitLatch(MyLatch, WL_LATCH_SET | WL_TIMEOUT | WL_EXIT_ON_PM_DEATH,
							timeout, PG_WAIT_EXTENSION);
			ResetLatch(MyLatch);
		}
	}
}

/*
 * Milliseconds between two checkpoints: streamproc.checkpoint_interval,
 * or more when checkpoints are slow, so that they take at most a tenth of
 * the worker's time.  Views are live in shared memory either way; a longer
 * spacing only means more input to replay after a crash.  sync() still
 * checkpoints at once, and so does a view with streamproc.checkpoint_groups
 * changed groups (batch.c): without that bound, a slow checkpoint spaced
 * the next one further, which then had more groups to write and was
 * slower still, and the worker paused for seconds.
 */
static int
checkpoint_spacing(Worker *w)
{
	return Max(streamproc_checkpoint_interval, (int)(w->last_checkpoint_ms * 9.0));
}

/* Does the database still have the extension? */
static bool
worker_has_extension(void)
{
	bool found;

	SetCurrentStatementStartTimestamp();
	StartTransactionCommand();
	found = OidIsValid(get_extension_oid("streamproc", true));
	CommitTransactionCommand();
	return found;
}

/*
 * Our statements wait for a lock at most streamproc.lock_timeout: a view
 * blocked by someone else's lock is then retried later (a transient error,
 * errors.c) instead of holding up the worker's other views.
 */
static void
apply_lock_timeout(void)
{
	char value[32];

	snprintf(value, sizeof(value), "%d", streamproc_lock_timeout);
	SetConfigOption("lock_timeout", value, PGC_SUSET, PGC_S_OVERRIDE);
}

static void
worker_exit(Worker *w, WorkerExit reason)
{
	/*
	 * The database or the extension is going away: free the shared state of
	 * our views (nobody else writes it), or it would count against
	 * streamproc.state_memory until the server restarts.
	 */
	if (reason == WORKER_EXIT_NO_EXTENSION || w->slot->exit_requested)
	{
		List *registered = streamproc_state_registered_views(MyDatabaseId, w->index);
		ListCell *lc;

		foreach (lc, registered)
			streamproc_state_forget(MyDatabaseId, lfirst_oid(lc), w->index);
	}
	streamproc_kafka_stop(w->sources);
	w->sources = NIL;
	w->slot->exit_reason = reason;
	proc_exit(0);
}

/*
 * A dump is being restored into our database (restore.c): its catalog is
 * not ours to read until streamproc.post_restore() starts us again.
 */
static void
worker_exit_restoring(Worker *w)
{
	ereport(LOG,
			(errmsg("streamproc worker %d stops: its database is being restored",
					w->index),
			 errhint("streamproc.post_restore() starts the workers again.")));
	worker_exit(w, WORKER_EXIT_NO_EXTENSION);
}

/* Publish each view's status and statistics, and our slot's pause. */
static void
worker_publish_status(Worker *w)
{
	bool paused = false;
	ListCell *lc;

	foreach (lc, w->views)
	{
		WView *view = lfirst(lc);

		if (view->vs == NULL)
			continue;
		streamproc_state_add_stats(view->vs, w->index, &view->stats);
		memset(&view->stats, 0, sizeof(ViewStatsDelta));
		paused |= (view->status == VIEW_SLOT_PAUSED);
	}
	w->slot->paused = paused;
}

/* Views waiting for a retry: now (sync(), a reload of the settings). */
static void
retry_all_now(Worker *w)
{
	ListCell *lc;

	foreach (lc, w->views)
	{
		WView *view = lfirst(lc);

		if (view->status != VIEW_SLOT_RUNNING && view->status != VIEW_SLOT_IDLE)
			view->retry_at = 0;
	}
	w->checkpoint_retry_at = 0;
	w->batch_needed = true;
}

/*
 * Is a view still behind its inputs, so that sync() must wait: it is
 * retrying a transient error (retried while sync() waits), or it has not
 * yet read again the Kafka messages a failed batch left it behind in
 * (the consumer rewinds for it, batch.c).
 */
static bool
view_behind(WView *view)
{
	HASH_SEQ_STATUS seq;
	KafkaLag *lag;
	bool behind = false;

	if (view->status == VIEW_SLOT_RETRYING)
		return true;
	if (view->kafka_lag == NULL)
		return false;
	hash_seq_init(&seq, view->kafka_lag);
	while ((lag = hash_seq_search(&seq)) != NULL)
	{
		int64 head = streamproc_kafka_position(lag->key.src, lag->key.partition);

		if (head >= 0 && lag->offset < head)
			behind = true;
	}
	return behind;
}

/*
 * worker_view_failed
 *		A view's batch or checkpoint failed with an error that is no event's
 *		fault (edata): nothing of it was applied; retry with backoff.
 */
void
worker_view_failed(Worker *w, WView *view, ErrorData *edata)
{
	StreamprocErrorKind kind = streamproc_error_kind(edata);
	ViewSlotStatus status = kind == STREAMPROC_ERROR_VIEW ? VIEW_SLOT_FAILED : VIEW_SLOT_RETRYING;
	char *message;
	bool first;

	/* A view dropped under its batch or checkpoint: the reload forgets it. */
	if (IsTransactionState() && !SearchSysCacheExists1(RELOID, ObjectIdGetDatum(view->viewid)))
		return;

	message = psprintf("%s: %s", unpack_sql_state(edata->sqlerrcode),
					   edata->message ? edata->message : "");
	first = (view->status != status || view->last_error == NULL ||
			 strcmp(view->last_error, message) != 0);

	view->backoff_ms = view->status == VIEW_SLOT_RUNNING || view->status == VIEW_SLOT_IDLE
						   ? VIEW_BACKOFF_MIN
						   : Min(view->backoff_ms * 2, VIEW_BACKOFF_MAX);
	view->retry_at = TimestampTzPlusMilliseconds(GetCurrentTimestamp(), view->backoff_ms);
	view->status = status;
	if (view->last_error)
		pfree(view->last_error);
	view->last_error = MemoryContextStrdup(w->catalog_cxt, message);
	if (first)
		ereport(LOG,
				(errmsg("streamproc worker %d: continuous view \"%s\" %s: %s",
						w->index, view->name,
						status == VIEW_SLOT_FAILED ? "failed" : "will retry its batch",
						edata->message ? edata->message : ""),
				 errdetail("SQLSTATE %s.  Nothing of the batch was applied; the view is retried with backoff while the worker's other views go on.",
						   unpack_sql_state(edata->sqlerrcode))));
	if (view->vs)
		streamproc_state_set_status(view->vs, w->index, status, message);
}

/* A view that was failing went through a batch or checkpoint. */
void
worker_view_ok(Worker *w, WView *view)
{
	if (view->status == VIEW_SLOT_RUNNING)
		return;
	if (view->status == VIEW_SLOT_PAUSED)
		ereport(LOG,
				(errmsg("streamproc worker %d: continuous view \"%s\" resumed: the state memory budget holds its batch",
						w->index, view->name)));
	else if (view->status != VIEW_SLOT_IDLE)
		ereport(LOG,
				(errmsg("streamproc worker %d: continuous view \"%s\" recovered",
						w->index, view->name)));
	view->status = VIEW_SLOT_RUNNING;
	view->backoff_ms = 0;
	if (view->vs)
		streamproc_state_set_status(view->vs, w->index, VIEW_SLOT_RUNNING, NULL);
}

/* May a batch run the view now? */
bool
worker_view_runnable(Worker *w, WView *view)
{
	if (view->status == VIEW_SLOT_RUNNING || view->status == VIEW_SLOT_IDLE)
		return true;
	return GetCurrentTimestamp() >= view->retry_at;
}

/*
 * worker_prepare
 *		Prepare and keep a plan.  SPI calls return in SPI's procedure
 *		context; this one returns in the caller's context.
 */
SPIPlanPtr
worker_prepare(const char *sql, int nargs, Oid *argtypes)
{
	MemoryContext cxt = CurrentMemoryContext;
	SPIPlanPtr plan = SPI_prepare(sql, nargs, argtypes);

	if (plan == NULL)
		elog(ERROR, "could not prepare streamproc query: %s",
			 SPI_result_code_string(SPI_result));
	SPI_keepplan(plan);
	MemoryContextSwitchTo(cxt);
	return plan;
}

/*
 * worker_record_failure
 *		An event whose data made its processing fail: appended to *list (a
 *		view's failures of the batch being run, moved to the worker's list
 *		when the batch is applied) for streamproc.errors.
 */
void
worker_record_failure(Worker *w, List **list, const char *source, WView *view,
					  const char *position, const char *event, ErrorData *edata)
{
	MemoryContext old = MemoryContextSwitchTo(TopMemoryContext);
	FailedEvent *f = palloc0(sizeof(FailedEvent));

	f->source = pstrdup(source);
	f->viewid = view ? view->viewid : InvalidOid;
	f->position = pstrdup(position);
	f->event = event ? pnstrdup(event, ERROR_EVENT_MAX) : NULL;
	f->sqlstate = pstrdup(unpack_sql_state(edata->sqlerrcode));
	f->message = pstrdup(edata->message ? edata->message : "");
	f->detail = edata->detail ? pstrdup(edata->detail) : NULL;
	f->partition = -1;
	f->offset = -1;
	*list = lappend(*list, f);
	MemoryContextSwitchTo(old);
}

/*
 * Bytes of a Kafka message as text for streamproc.errors: as they are when
 * they are valid in the database encoding, else in bytea's hex form;
 * truncated past ERROR_EVENT_MAX bytes.
 */
static char *
message_text(const char *data, size_t len)
{
	size_t keep = Min(len, (size_t)ERROR_EVENT_MAX);

	if (data == NULL)
		return NULL;
	if (memchr(data, '\0', keep) == NULL &&
		pg_verifymbstr(data, (int)keep, true))
		return pnstrdup(data, keep);
	if (pg_verifymbstr(data, (int)pg_mbcliplen(data, (int)keep, (int)keep), true) &&
		memchr(data, '\0', keep) == NULL)
		return pnstrdup(data, pg_mbcliplen(data, (int)keep, (int)keep));
	keep = Min(len, (size_t)ERROR_EVENT_MAX / 2);
	{
		char *hex = palloc(keep * 2 + 3);

		hex[0] = '\\';
		hex[1] = 'x';
		hex_encode(data, keep, hex + 2);
		hex[keep * 2 + 2] = '\0';
		return hex;
	}
}

/* A Kafka message that could not be parsed or processed (view NULL: parsing). */
void
worker_record_kafka_failure(Worker *w, List **list, KafkaSource *src, WView *view,
							const rd_kafka_message_t *m, int sqlerrcode,
							const char *message, const char *detail)
{
	MemoryContext old = MemoryContextSwitchTo(TopMemoryContext);
	FailedEvent *f = palloc0(sizeof(FailedEvent));

	f->source = pstrdup(streamproc_kafka_name(src));
	f->viewid = view ? view->viewid : InvalidOid;
	f->position = psprintf("partition %d offset %lld", (int)m->partition, (long long)m->offset);
	f->event = message_text(m->payload, m->len);
	f->sqlstate = pstrdup(unpack_sql_state(sqlerrcode));
	f->message = pstrdup(message);
	f->detail = detail ? pstrdup(detail) : NULL;
	f->topic = pstrdup(streamproc_kafka_topic(src));
	f->partition = m->partition;
	f->offset = m->offset;
	f->key = message_text(m->key, m->key_len);
	*list = lappend(*list, f);
	streamproc_kafka_count_error(src);
	MemoryContextSwitchTo(old);
}

/* Row i of rows as JSON text (row_to_json), for streamproc.errors. */
char *
worker_row_as_json(WStream *stream, SourceRows *rows, int i)
{
	TupleDesc desc = CreateTupleDescCopy(stream->desc);
	HeapTuple tuple;

	desc = BlessTupleDesc(desc);
	tuple = heap_form_tuple(desc, rows->values + (Size)i * rows->natts,
							rows->nulls + (Size)i * rows->natts);
	return text_to_cstring(DatumGetTextPP(DirectFunctionCall1(row_to_json,
															  HeapTupleGetDatum(tuple))));
}
