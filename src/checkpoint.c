/*-------------------------------------------------------------------------
 *
 * checkpoint.c
 *	  The ingest worker's checkpoint: one transaction that commits what the
 *	  worker merged since the last one together with where it got in its
 *	  inputs.
 *
 * In one transaction, every streamproc.checkpoint_interval (more when
 * checkpoints are slow), at sync(), and before the worker reloads what a
 * catalog change touched:
 *
 *	- per aggregating view, in a subtransaction of its own: the runs of
 *	  the groups our slot changed (statestore.c; found from the view's
 *	  dirty list, never by scanning), the windows the watermark closed
 *	  (window_worker.c), its late events, and its positions
 *	  (positions.c);
 *	- per append view, in a subtransaction of its own: the rows it appends
 *	  for the log rows up to our last batch's snapshot and for the Kafka
 *	  rows kept for it, and its positions;
 *	- the removal of the log rows every view of the stream has merged (a
 *	  TRUNCATE when nothing else is left and nobody inserts, else DELETE);
 *	- the Kafka sources' positions (kafka.c) and the events that failed.
 *
 * So state, outputs and positions commit together: exactly once.  A view
 * whose part fails (its late events table locked, the disk full for its
 * runs...) is rolled back alone and retried with backoff; its positions
 * stay where its state on disk is.  If the whole transaction fails, it is
 * retried with backoff; nothing in memory was forgotten yet.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/xact.h"
#include "catalog/pg_type.h"
#include "commands/vacuum.h"
#include "miscadmin.h"
#include "nodes/makefuncs.h"
#include "storage/lmgr.h"
#include "tcop/tcopprot.h"
#include "utils/builtins.h"
#include "utils/datum.h"
#include "utils/fmgrprotos.h"
#include "utils/memutils.h"
#include "utils/resowner.h"
#include "utils/snapmgr.h"
#include "utils/syscache.h"

#include "changes.h"
#include "engine.h"
#include "errors.h"
#include "streamproc.h"

/*
 * Rows of state runs written (about 64 a checkpoint) that call for a vacuum
 * of streamproc.state_runs: every few checkpoints, so that the space of the
 * runs compaction deleted is reused before the table grows.
 */
#define STATE_VACUUM_MIN_ROWS 250

/* Backoff of a checkpoint that failed as a whole, in ms. */
#define CHECKPOINT_BACKOFF_MIN 200
#define CHECKPOINT_BACKOFF_MAX 10000

/* What one view's part of the checkpoint did, for after the commit. */
typedef struct ViewCheckpoint
{
	WView *view;
	bool ok;
	int64 dirty_taken; /* bytes of its dirty list written */
} ViewCheckpoint;

static bool run_view_part(Worker *w, WView *view, void (*part)(Worker *, WView *));

/* ----------------------------------------------------------------
 * Aggregating views
 * ----------------------------------------------------------------
 */

/* Write the runs of a view's dirty groups, and its positions. */
/*
 * The slots of workers that no longer exist were folded into ours when we
 * loaded (catalog.c): their groups are in our dirty list, written by this
 * part; their runs and watermarks go, and their closed windows become ours
 * (a reader combines a window's states of all slots anyway; their bound is
 * lowered to ours, which readers know).
 */
static void
fold_orphan_slots(Worker *w, WView *view)
{
	Datum args[4];
	int ret;

	args[0] = ObjectIdGetDatum(view->viewid);
	args[1] = Int32GetDatum(streamproc_workers);
	args[2] = Int32GetDatum(w->index);
	args[3] = TimestampTzGetDatum(view->closed);
	ret = SPI_execute_with_args("UPDATE streamproc.window_runs SET slot = $3, closed = LEAST(closed, $4)"
								" WHERE view = $1 AND slot >= $2",
								4, (Oid[]){OIDOID, INT4OID, INT4OID, TIMESTAMPTZOID}, args, NULL,
								false, 0);
	if (ret != SPI_OK_UPDATE)
		elog(ERROR, "could not fold closed windows: %s", SPI_result_code_string(ret));
	ret = SPI_execute_with_args("DELETE FROM streamproc.state_runs WHERE view = $1 AND slot >= $2",
								2, (Oid[]){OIDOID, INT4OID}, args, NULL, false, 0);
	if (ret != SPI_OK_DELETE)
		elog(ERROR, "could not fold state runs: %s", SPI_result_code_string(ret));
	ret = SPI_execute_with_args("DELETE FROM streamproc.view_watermarks WHERE view = $1 AND slot >= $2",
								2, (Oid[]){OIDOID, INT4OID}, args, NULL, false, 0);
	if (ret != SPI_OK_DELETE)
		elog(ERROR, "could not fold watermarks: %s", SPI_result_code_string(ret));
}

static void
checkpoint_aggregating(Worker *w, WView *view)
{
	DirtyList *d = &view->dirty;
	StringInfoData state;
	int64 pos = 0;

	if (view->fold_pending)
		fold_orphan_slots(w, view);

	initStringInfo(&state);
	while (d->buf.data != NULL && pos < d->buf.len)
	{
		uint32 hash;
		uint32 keylen;
		const char *key;
		int part;

		memcpy(&hash, d->buf.data + pos, sizeof(uint32));
		memcpy(&keylen, d->buf.data + pos + sizeof(uint32), sizeof(uint32));
		key = d->buf.data + pos + 2 * sizeof(uint32);
		pos += 2 * sizeof(uint32) + keylen;

		part = GROUPMAP_PARTITION(hash);
		resetStringInfo(&state);
		groupmap_lock_partition(view->map, part);
		if (groupmap_take_dirty(view->map, hash, key, keylen, w->index, &state))
		{
			groupmap_unlock_partition(view->map, part);
			if (view->sign_agg >= 0 && batch_group_left(view, state.data, state.len))
			{
				/*
				 * Every row our slot's group had left it: drop it now, not
				 * when merged, so that a group that comes back before the
				 * checkpoint is not listed twice (its change log would log
				 * it twice).  Only we write our slot.
				 */
				bool existed;
				bool deleted;

				groupmap_lock_partition(view->map, part);
				(void)groupmap_remove(view->map, hash, key, keylen, w->index, &existed, &deleted);
				groupmap_unlock_partition(view->map, part);
				statestore_note(view->store, hash, keylen, (int32)state.len, -1);
				statestore_put(view->store, hash, key, keylen, NULL, 0);
			}
			else
				statestore_put(view->store, hash, key, keylen, state.data, state.len);
		}
		else
		{
			groupmap_unlock_partition(view->map, part);
			statestore_put(view->store, hash, key, keylen, NULL, 0); /* left the slot */
		}
		CHECK_FOR_INTERRUPTS();
	}
	pfree(state.data);

	/*
	 * After the changed groups: the tombstones of the windows this
	 * checkpoint closes come later in the runs than their last states.
	 */
	if (view->window.kind != 0)
	{
		window_close(w, view);
		window_checkpoint_late_rows(w, view->stream, view);
	}
	if (statestore_pending(view->store))
	{
		statestore_write(view->store, view->map);
		w->rows_written += STATESTORE_BUCKETS / 4;
	}

	/*
	 * Its change log, if it keeps one (changes.c): views without windows
	 * and tumbling windows with emit = 'updates'.
	 */
	if ((view->window.kind == 0 || (view->window.kind == WINDOW_TUMBLE && view->window.emit != 'f')) &&
		d->buf.data != NULL)
		streamproc_changes_log_groups(view->viewid, view->groups_table, view->keys, d->buf.data,
									  d->buf.len);
}

/* ----------------------------------------------------------------
 * Append views
 * ----------------------------------------------------------------
 */

/*
 * The rows an append view appends for its log range (done, last batch],
 * one statement; row by row after an error of some row's data.
 */
static void
append_from_log(Worker *w, WShard *shard, WView *view)
{
	LogPosition *pos = &view->logpos[shard->shard];
	Datum args[5];
	char nulls[5] = {' ', ' ', ' ', ' ', ' '};
	ErrorData *edata = NULL;
	ItemPointerData lo;
	ItemPointerData hi;

	if (shard->last_snapshot == (Datum)0 || pos->cur != (Datum)0)
		return;
	if (pos->done != (Datum)0 &&
		datumIsEqual(pos->done, shard->last_snapshot, false, -1))
		return;
	ItemPointerSet(&lo, 0, 0);
	ItemPointerSet(&hi, MaxBlockNumber, 0);
	args[0] = shard->last_snapshot;
	args[1] = pos->done;
	if (pos->done == (Datum)0)
		nulls[1] = 'n';
	args[2] = Int16GetDatum((int16)shard->shard);
	args[3] = PointerGetDatum(&lo);
	args[4] = PointerGetDatum(&hi);
	if (batch_run_in_subxact(w, view, view->batch_plan, args, nulls, NULL, &edata))
		view->stats.events += (int64)SPI_processed;
	else
	{
		/* Row by row: the failing rows go to streamproc.errors. */
		SPITupleTable *rows;
		uint64 nrows;
		uint64 i;
		int ret;

		ret = SPI_execute_plan(shard->rows_plan, args, nulls, true, 0);
		if (ret != SPI_OK_SELECT)
			elog(ERROR, "could not list stream log rows: %s", SPI_result_code_string(ret));
		rows = SPI_tuptable;
		nrows = SPI_processed;
		for (i = 0; i < nrows; i++)
		{
			bool isnull;
			Datum eargs[2];
			char enulls[2] = {' ', ' '};

			eargs[0] = SPI_getbinval(rows->vals[i], rows->tupdesc, 1, &isnull);
			eargs[1] = Int16GetDatum((int16)shard->shard);
			edata = NULL;
			if (batch_run_in_subxact(w, view, view->event_plan, eargs, enulls, NULL, &edata))
				view->stats.events += (int64)SPI_processed;
			else
				worker_record_failure(w, &view->batch_failures, shard->stream->name, view,
									  psprintf("log row %s", DatumGetCString(DirectFunctionCall1(tidout, eargs[0]))),
									  SPI_getvalue(rows->vals[i], rows->tupdesc, 2), edata);
		}
		SPI_freetuptable(rows);
	}
	{
		MemoryContext old = MemoryContextSwitchTo(GetMemoryChunkContext(view));

		if (pos->done != (Datum)0)
			pfree(DatumGetPointer(pos->done));
		pos->done = datumCopy(shard->last_snapshot, false, -1);
		MemoryContextSwitchTo(old);
	}
	view->logpos_changed[shard->shard] = true;
}

/* The Kafka rows kept for append views: those this one needs. */
static void
append_from_kafka(Worker *w, WStream *stream, WView *view)
{
	SourceRows *p = &stream->pending;
	bool *skip;
	ErrorData *edata = NULL;
	int reads = 0;
	int i;

	if (p->nrows == 0)
		return;
	skip = palloc(sizeof(bool) * p->nrows);
	for (i = 0; i < p->nrows; i++)
	{
		KafkaLagKey k;
		KafkaLag *lag = NULL;

		memset(&k, 0, sizeof(k));
		k.src = stream->pending_sources[i];
		k.partition = stream->pending_partitions[i];
		if (view->kafka_lag)
			lag = hash_search(view->kafka_lag, &k, HASH_FIND, NULL);
		skip[i] = lag != NULL && stream->pending_offsets[i] < lag->offset;
		if (!skip[i])
			reads++;
	}
	if (reads == 0)
		return;
	p->first = 0;
	p->count = p->nrows;
	p->skip = skip;
	streamproc_source_rows = p;
	if (batch_run_in_subxact(w, view, view->source_plan, NULL, NULL, NULL, &edata))
		view->stats.events += (int64)SPI_processed;
	else
	{
		for (i = 0; i < p->nrows; i++)
		{
			if (skip[i])
				continue;
			edata = NULL;
			p->first = i;
			p->count = 1;
			if (batch_run_in_subxact(w, view, view->source_plan, NULL, NULL, NULL, &edata))
				view->stats.events += (int64)SPI_processed;
			else
			{
				rd_kafka_message_t m;
				char *row = worker_row_as_json(stream, p, i);

				/*
				 * The payload is gone: the row's position identifies it, and
				 * the parsed row stands for the event.
				 */
				memset(&m, 0, sizeof(m));
				m.partition = stream->pending_partitions[i];
				m.offset = stream->pending_offsets[i];
				m.payload = row;
				m.len = strlen(row);
				worker_record_kafka_failure(w, &view->batch_failures, stream->pending_sources[i],
											view, &m, edata->sqlerrcode,
											edata->message ? edata->message : "", edata->detail);
			}
		}
	}
	streamproc_source_rows = NULL;
	p->skip = NULL;
	p->first = 0;
	p->count = p->nrows;

	/* It is where the source is now, in these partitions. */
	if (view->kafka_lag)
	{
		for (i = 0; i < p->nrows; i++)
		{
			KafkaLagKey k;
			KafkaLag *lag;

			memset(&k, 0, sizeof(k));
			k.src = stream->pending_sources[i];
			k.partition = stream->pending_partitions[i];
			lag = hash_search(view->kafka_lag, &k, HASH_FIND, NULL);
			if (lag && stream->pending_offsets[i] + 1 > lag->offset)
				lag->offset = stream->pending_offsets[i] + 1;
		}
	}
}

static void
checkpoint_append(Worker *w, WView *view)
{
	ListCell *lc;

	foreach (lc, view->stream->shards)
	{
		WShard *shard = lfirst(lc);

		if (view->reads_shard[shard->shard])
			append_from_log(w, shard, view);
	}
	append_from_kafka(w, view->stream, view);
}

/* ----------------------------------------------------------------
 * Positions
 * ----------------------------------------------------------------
 */

/* Save a view's positions that moved (in its part of the checkpoint). */
static void
save_positions(Worker *w, WView *view)
{
	int k;

	if (view->stream == NULL)
		return;
	for (k = 0; k < view->stream->nshards; k++)
	{
		LogPosition *pos = &view->logpos[k];

		if (!view->logpos_changed[k])
			continue;
		positions_save(view->viewid, position_log_input(k), position_log_text(pos));
	}
	if (view->kafka_lag)
	{
		HASH_SEQ_STATUS seq;
		KafkaLag *lag;

		hash_seq_init(&seq, view->kafka_lag);
		while ((lag = hash_seq_search(&seq)) != NULL)
		{
			char *input = position_kafka_input(streamproc_kafka_name(lag->key.src), lag->key.partition);
			int64 head = streamproc_kafka_position(lag->key.src, lag->key.partition);

			if (head >= 0 && lag->offset >= head)
			{
				/* Caught up with the source: its position is the view's. */
				if (lag->saved)
					positions_delete(view->viewid, input);
			}
			else
				positions_save(view->viewid, input, psprintf(INT64_FORMAT, lag->offset));
		}
	}
}

/* After the commit: what the view's part wrote is the new baseline. */
static void
positions_committed(WView *view)
{
	if (view->stream != NULL)
		memset(view->logpos_changed, 0, sizeof(bool) * view->stream->nshards);
	if (view->kafka_lag)
	{
		HASH_SEQ_STATUS seq;
		KafkaLag *lag;

		hash_seq_init(&seq, view->kafka_lag);
		while ((lag = hash_seq_search(&seq)) != NULL)
		{
			int64 head = streamproc_kafka_position(lag->key.src, lag->key.partition);

			if (head >= 0 && lag->offset >= head)
				(void)hash_search(view->kafka_lag, &lag->key, HASH_REMOVE, NULL);
			else
				lag->saved = true;
		}
	}
}

/* ----------------------------------------------------------------
 * Stream logs
 * ----------------------------------------------------------------
 */

/*
 * trim_shard
 *		Remove the rows of a shard we own that every view of the stream has
 *		merged, as the positions committed (ours of this checkpoint
 *		included) say.  When nothing else is left and no transaction is
 *		inserting (we get the lock without waiting), TRUNCATE gives the
 *		space back at once, as PgQ's table rotation does; otherwise DELETE,
 *		and a vacuum after the commit.  Only workers read logs, so
 *		TRUNCATE's MVCC caveat does not apply.
 */
static void
trim_shard(Worker *w, WShard *shard)
{
	List *texts = positions_of_shard(shard->stream->streamid, shard->shard);
	Datum *snaps;
	int nsnaps = 0;
	bool truncate = false;
	Datum args[1];
	ListCell *lc;
	int ret;

	if (shard->last_snapshot == (Datum)0 && texts == NIL)
		return;
	snaps = palloc(sizeof(Datum) * (list_length(texts) + 1));
	foreach (lc, texts)
	{
		LogPosition pos;

		position_log_parse(lfirst(lc), &pos);
		if (pos.done == (Datum)0)
			return; /* a view has merged nothing yet */
		snaps[nsnaps++] = pos.done;
	}
	if (nsnaps == 0)
		snaps[nsnaps++] = shard->last_snapshot; /* no views: nothing to keep */
	args[0] = PointerGetDatum(construct_array(snaps, nsnaps, PG_SNAPSHOTOID, -1, false, TYPALIGN_DOUBLE));

	if (ConditionalLockRelationOid(shard->logid, AccessExclusiveLock))
	{
		/*
		 * read_only = false: a new snapshot, taken now that we hold the
		 * lock, so it sees every row committed before nobody could insert
		 * any more.
		 */
		ret = SPI_execute_with_args(psprintf("SELECT 1 FROM %s l WHERE EXISTS"
											 " (SELECT 1 FROM pg_catalog.unnest($1::pg_catalog.pg_snapshot[]) s"
											 " WHERE NOT pg_catalog.pg_visible_in_snapshot(l.\"$xid\", s)) LIMIT 1",
											 shard->logname),
									1, (Oid[]){PG_SNAPSHOTARRAYOID}, args, NULL, false, 1);
		if (ret != SPI_OK_SELECT)
			elog(ERROR, "could not read stream log: %s", SPI_result_code_string(ret));
		truncate = (SPI_processed == 0);
	}
	if (truncate)
	{
		ret = SPI_execute(psprintf("TRUNCATE %s", shard->logname), false, 0);
		if (ret != SPI_OK_UTILITY)
			elog(ERROR, "could not truncate stream log: %s", SPI_result_code_string(ret));
	}
	else
	{
		ret = SPI_execute_with_args(psprintf("DELETE FROM %s l WHERE NOT EXISTS"
											 " (SELECT 1 FROM pg_catalog.unnest($1::pg_catalog.pg_snapshot[]) s"
											 " WHERE NOT pg_catalog.pg_visible_in_snapshot(l.\"$xid\", s))",
											 shard->logname),
									1, (Oid[]){PG_SNAPSHOTARRAYOID}, args, NULL, false, 0);
		if (ret != SPI_OK_DELETE)
			elog(ERROR, "could not trim stream log: %s", SPI_result_code_string(ret));
		if (SPI_processed > 0)
			shard->vacuum_needed = true;
	}
}

/* ----------------------------------------------------------------
 * Failed events
 * ----------------------------------------------------------------
 */

static void
write_failed_events(Worker *w)
{
	ListCell *lc;

	foreach (lc, w->failed_events)
	{
		FailedEvent *f = lfirst(lc);
		Datum args[11];
		char nulls[11];
		int ret;

		memset(nulls, ' ', sizeof(nulls));
		args[0] = CStringGetTextDatum(f->source);
		args[1] = ObjectIdGetDatum(f->viewid);
		nulls[1] = OidIsValid(f->viewid) ? ' ' : 'n';
		args[2] = CStringGetTextDatum(f->position);
		args[3] = f->event ? CStringGetTextDatum(f->event) : (Datum)0;
		nulls[3] = f->event ? ' ' : 'n';
		args[4] = CStringGetTextDatum(f->sqlstate);
		args[5] = CStringGetTextDatum(f->message);
		args[6] = f->detail ? CStringGetTextDatum(f->detail) : (Datum)0;
		nulls[6] = f->detail ? ' ' : 'n';
		args[7] = f->topic ? CStringGetTextDatum(f->topic) : (Datum)0;
		nulls[7] = f->topic ? ' ' : 'n';
		args[8] = Int32GetDatum(f->partition);
		nulls[8] = f->partition >= 0 ? ' ' : 'n';
		args[9] = Int64GetDatum(f->offset);
		nulls[9] = f->offset >= 0 ? ' ' : 'n';
		args[10] = f->key ? CStringGetTextDatum(f->key) : (Datum)0;
		nulls[10] = f->key ? ' ' : 'n';
		ret = SPI_execute_with_args("INSERT INTO streamproc.errors"
									" (source, view, position, event, sqlstate, message, detail,"
									" topic, partition, \"offset\", key)"
									" VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)",
									11, (Oid[]){TEXTOID, REGCLASSOID, TEXTOID, TEXTOID, TEXTOID, TEXTOID, TEXTOID, TEXTOID, INT4OID, INT8OID, TEXTOID},
									args, nulls, false, 0);
		if (ret != SPI_OK_INSERT)
			elog(ERROR, "could not write streamproc.errors: %s", SPI_result_code_string(ret));
	}
}

/* ----------------------------------------------------------------
 * The transaction
 * ----------------------------------------------------------------
 */

/*
 * Run one view's part in a subtransaction; false after an error, which
 * stops the view (worker.c) and rolls its part back.
 */
static bool
run_view_part(Worker *w, WView *view, void (*part)(Worker *, WView *))
{
	MemoryContext oldcxt = CurrentMemoryContext;
	ResourceOwner oldowner = CurrentResourceOwner;
	bool ok = true;

	BeginInternalSubTransaction(NULL);
	MemoryContextSwitchTo(oldcxt);
	PG_TRY();
	{
		/*
		 * A view dropped since the catalog was loaded has nothing left to
		 * write to: skip it (the catalog reload that follows forgets it).
		 * One dropped while the part runs fails it, harmlessly
		 * (worker_view_failed says nothing of a view that is gone).
		 */
		if (SearchSysCacheExists1(RELOID, ObjectIdGetDatum(view->viewid)))
		{
			part(w, view);
			save_positions(w, view);
		}
		ReleaseCurrentSubTransaction();
		MemoryContextSwitchTo(oldcxt);
		CurrentResourceOwner = oldowner;
	}
	PG_CATCH();
	{
		ErrorData *edata;

		MemoryContextSwitchTo(w->batch_cxt);
		edata = CopyErrorData();
		FlushErrorState();
		RollbackAndReleaseCurrentSubTransaction();
		MemoryContextSwitchTo(oldcxt);
		CurrentResourceOwner = oldowner;
		worker_view_failed(w, view, edata);
		ok = false;
	}
	PG_END_TRY();
	return ok;
}

/* Does a view's part have anything to write? */
static bool
view_has_work(WView *view)
{
	int k;

	if (view->held || view->stream == NULL)
		return false;
	if (view->kind == STREAMPROC_VIEW_APPEND || view->window.kind != 0)
		return true;
	if (view->dirty.count > 0 || view->kafka_lag != NULL || view->fold_pending)
		return true;
	for (k = 0; k < view->stream->nshards; k++)
		if (view->logpos_changed[k])
			return true;
	return false;
}

/*
 * streamproc_vacuum_relation
 *		Lazy VACUUM of a table the checkpoints churn (a log after DELETE,
 *		streamproc.state_runs after compactions, the change logs' tables),
 *		so that the space is reused at once instead of at autovacuum's next
 *		visit.  Called outside a transaction; skips the table if it cannot
 *		lock it at once.
 */
void
streamproc_vacuum_relation(Oid relid)
{
	VacuumParams params;
	MemoryContext vacuum_cxt;
	MemoryContext save_portal = PortalContext;
	MemoryContext old;
	List *rels;

	vacuum_cxt = AllocSetContextCreate(TopMemoryContext, "streamproc vacuum",
									   ALLOCSET_DEFAULT_SIZES);
	old = MemoryContextSwitchTo(vacuum_cxt);
	rels = list_make1(makeVacuumRelation(NULL, relid, NIL));
	MemoryContextSwitchTo(old);

	memset(&params, 0, sizeof(params));
	/*
	 * PROCESS_TOAST as VACUUM's own default: state runs over 2 kB live in
	 * state_runs' TOAST table, which grew without bound without it.
	 */
	params.options = VACOPT_VACUUM | VACOPT_SKIP_LOCKED | VACOPT_PROCESS_TOAST;
	params.freeze_min_age = -1;
	params.freeze_table_age = -1;
	params.multixact_freeze_min_age = -1;
	params.multixact_freeze_table_age = -1;
	params.log_min_duration = -1;
	params.index_cleanup = VACOPTVALUE_UNSPECIFIED; /* resolved from the reloptions */
	params.truncate = VACOPTVALUE_UNSPECIFIED;
	params.nworkers = -1;

	/* vacuum() allocates under PortalContext, which a worker has not got. */
	PortalContext = vacuum_cxt;
	SetCurrentStatementStartTimestamp();
	StartTransactionCommand();
	vacuum(rels, &params, NULL, true);
	CommitTransactionCommand();
	PortalContext = save_portal;
	MemoryContextDelete(vacuum_cxt);
}

/* The transaction itself; errors go to checkpoint_run's handler. */
static void
checkpoint_transaction(Worker *w, ViewCheckpoint *parts, int *nparts)
{
	ListCell *lc;

	SetCurrentStatementStartTimestamp();
	StartTransactionCommand();
	SPI_connect();
	PushActiveSnapshot(GetTransactionSnapshot());

	/*
	 * The logs first, before any table of a view: DROP of a stream locks
	 * its log before its views and their tables, so taking them in the
	 * same order cannot deadlock with it (it waits for us, or we for it).
	 */
	foreach (lc, w->streams)
		LockRelationOid(((WStream *)lfirst(lc))->logid, AccessShareLock);

	*nparts = 0;
	foreach (lc, w->views)
	{
		WView *view = lfirst(lc);
		ViewCheckpoint *vc;

		if (!view_has_work(view) || !worker_view_runnable(w, view))
			continue;
		vc = &parts[(*nparts)++];
		vc->view = view;
		vc->dirty_taken = view->dirty.buf.data ? view->dirty.buf.len : 0;
		vc->ok = run_view_part(w, view, view->kind == STREAMPROC_VIEW_APPEND ? checkpoint_append : checkpoint_aggregating);
		if (!vc->ok && view->store != NULL)
			statestore_discard(view->store);
	}

	streamproc_kafka_checkpoint(w->sources);

	/*
	 * Claimed keys of streams with dedup_key (dedup.c); none expires while
	 * a view of the stream is stopped.
	 */
	foreach (lc, w->streams)
	{
		WStream *stream = lfirst(lc);
		ListCell *vc;
		bool hold = false;

		if (stream->dedup == NULL)
			continue;
		foreach (vc, w->views)
		{
			WView *view = lfirst(vc);

			if (view->stream == stream && view->status != VIEW_SLOT_RUNNING &&
				view->status != VIEW_SLOT_IDLE)
				hold = true;
		}
		dedup_checkpoint(stream->dedup, hold);
	}

	/* The failures of views whose parts committed. */
	{
		int i;

		for (i = 0; i < *nparts; i++)
			if (parts[i].ok && parts[i].view->batch_failures != NIL)
			{
				MemoryContext old = MemoryContextSwitchTo(TopMemoryContext);

				w->failed_events = list_concat(w->failed_events, parts[i].view->batch_failures);
				parts[i].view->stats.errors += list_length(parts[i].view->batch_failures);
				MemoryContextSwitchTo(old);
				parts[i].view->batch_failures = NIL;
			}
	}
	write_failed_events(w);

	/*
	 * Trimming last: a TRUNCATE holds its shard's AccessExclusiveLock to
	 * the commit, and the other workers' batches read the log through its
	 * parent, which locks every shard: they wait for it (and give up after
	 * streamproc.lock_timeout) only while the rest of the commit runs.
	 */
	foreach (lc, w->streams)
	{
		WStream *stream = lfirst(lc);
		ListCell *sc;
		Datum arg = ObjectIdGetDatum(stream->streamid);
		int ret;

		/* A stream dropped since the catalog was loaded: nothing to trim. */
		ret = SPI_execute_with_args("SELECT 1 FROM streamproc.streams WHERE stream = $1",
									1, (Oid[]){OIDOID}, &arg, NULL, false, 1);
		if (ret != SPI_OK_SELECT || SPI_processed == 0)
			continue;
		foreach (sc, stream->shards)
		{
			WShard *shard = lfirst(sc);

			if (shard->owned)
				trim_shard(w, shard);
		}
	}

	SPI_finish();
	PopActiveSnapshot();
	CommitTransactionCommand();
}

/*
 * checkpoint_run
 *		Run a checkpoint; after a failure of the whole transaction, log it
 *		and retry with backoff (nothing in memory is forgotten before the
 *		commit).
 */
void
checkpoint_run(Worker *w)
{
	TimestampTz start = GetCurrentTimestamp();
	MemoryContext cxt = CurrentMemoryContext;
	ViewCheckpoint *parts = palloc(sizeof(ViewCheckpoint) * Max(list_length(w->views), 1));
	int nparts = 0;
	double elapsed_ms;
	ListCell *lc;
	int i;

	PG_TRY();
	{
		checkpoint_transaction(w, parts, &nparts);
	}
	PG_CATCH();
	{
		ErrorData *edata;

		MemoryContextSwitchTo(cxt);
		edata = CopyErrorData();
		FlushErrorState();
		if (streamproc_error_kind(edata) == STREAMPROC_ERROR_TRANSIENT && edata->elevel > ERROR)
			PG_RE_THROW();
		AbortCurrentTransaction();
		w->checkpoint_backoff_ms = w->checkpoint_backoff_ms == 0
									   ? CHECKPOINT_BACKOFF_MIN
									   : Min(w->checkpoint_backoff_ms * 2, CHECKPOINT_BACKOFF_MAX);
		w->checkpoint_retry_at = TimestampTzPlusMilliseconds(GetCurrentTimestamp(),
															 w->checkpoint_backoff_ms);
		ereport(LOG,
				(errmsg("streamproc worker %d could not checkpoint: %s", w->index,
						edata->message ? edata->message : ""),
				 errdetail("SQLSTATE %s.  Nothing was lost: the checkpoint is retried in %d ms.",
						   unpack_sql_state(edata->sqlerrcode), w->checkpoint_backoff_ms)));
		foreach (lc, w->views)
			if (((WView *)lfirst(lc))->store)
				statestore_discard(((WView *)lfirst(lc))->store);
		FreeErrorData(edata);
		MemoryContextSwitchTo(cxt);
		return;
	}
	PG_END_TRY();
	w->checkpoint_backoff_ms = 0;
	w->checkpoint_retry_at = 0;

	/*
	 * Committed: forget what it wrote, and vacuum what it deleted.  A view
	 * retrying a transient error still has its part to write (sync() waits
	 * for it); one that failed for its own reason is reported instead.
	 */
	w->checkpoint_needed = false;
	w->checkpoint_soon = false;
	foreach (lc, w->streams)
		if (((WStream *)lfirst(lc))->dedup != NULL)
			dedup_committed(((WStream *)lfirst(lc))->dedup);
	foreach (lc, w->views)
	{
		WView *view = lfirst(lc);

		if (view->status == VIEW_SLOT_RETRYING && view_has_work(view))
			w->checkpoint_needed = true;
	}
	for (i = 0; i < nparts; i++)
	{
		WView *view = parts[i].view;

		if (!parts[i].ok)
			continue;
		worker_view_ok(w, view);
		positions_committed(view);
		view->fold_pending = false;
		if (view->kind == STREAMPROC_VIEW_AGGREGATING)
		{
			DirtyList *d = &view->dirty;

			/* Groups listed after the part was written stay listed. */
			if (d->buf.data != NULL)
			{
				int64 taken = parts[i].dirty_taken;

				if (taken >= d->buf.len)
				{
					resetStringInfo(&d->buf);
					d->count = 0;
				}
				else
				{
					memmove(d->buf.data, d->buf.data + taken, d->buf.len - taken);
					d->buf.len -= (int)taken;
				}
				if (d->buf.maxlen > 64 * 1024 * 1024 && d->buf.len == 0)
				{
					pfree(d->buf.data);
					d->buf.data = NULL;
				}
			}
			if (view->window.kind != 0)
				window_closed(w, view);
		}
	}
	foreach (lc, w->views)
	{
		WView *view = lfirst(lc);

		if (view->late_cxt && view->status == VIEW_SLOT_RUNNING)
		{
			MemoryContextReset(view->late_cxt);
			memset(&view->late, 0, sizeof(SourceRows));
			view->late_cap = 0;
		}
	}
	streamproc_kafka_checkpointed(w->sources);
	list_free_deep(w->failed_events);
	w->failed_events = NIL;

	elapsed_ms = (double)(GetCurrentTimestamp() - start) / 1000.0;
	elog(DEBUG1, "streamproc worker %d: checkpoint in %.1f ms", w->index, elapsed_ms);
	w->last_checkpoint_ms = elapsed_ms;
	w->last_checkpoint = GetCurrentTimestamp();
	foreach (lc, w->views)
	{
		WView *view = lfirst(lc);

		if (view->vs && !view->held)
			streamproc_state_checkpointed(view->vs, w->last_checkpoint, elapsed_ms);
	}

	foreach (lc, w->streams)
	{
		WStream *stream = lfirst(lc);
		ListCell *sc;

		/* Kafka rows every append view wrote. */
		MemoryContextReset(stream->pending_cxt);
		stream->pending_cap = 0;
		memset(&stream->pending, 0, sizeof(SourceRows));
		foreach (sc, stream->shards)
		{
			WShard *shard = lfirst(sc);

			if (shard->vacuum_needed)
			{
				streamproc_vacuum_relation(shard->logid);
				shard->vacuum_needed = false;
			}
		}
	}
	/* The runs of expired claims (dedup.c), once they held many. */
	foreach (lc, w->streams)
	{
		WStream *stream = lfirst(lc);

		if (stream->dedup != NULL && dedup_vacuum_due(stream->dedup) &&
			OidIsValid(w->dedup_runs_relid))
			streamproc_vacuum_relation(w->dedup_runs_relid);
	}
	if (OidIsValid(w->state_runs_relid) && w->rows_written >= STATE_VACUUM_MIN_ROWS)
	{
		streamproc_vacuum_relation(w->state_runs_relid);
		if (OidIsValid(w->positions_relid))
			streamproc_vacuum_relation(w->positions_relid);
		w->rows_written = 0;
	}
	pfree(parts);
}
