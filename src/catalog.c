/*-------------------------------------------------------------------------
 *
 * catalog.c
 *	  The ingest worker's view of the catalog: streams, their log shards,
 *	  views, Kafka sources; loaded at start and refreshed after a catalog
 *	  change for what the change touched only.
 *
 * The catalog tables are read through one reader each: streamproc.views by
 * view.c (streamproc_view_list), streamproc.streams by stream.c
 * (streamproc_stream_list), streamproc.sources by kafka.c.  From them the
 * worker builds:
 *
 *	- a WStream for every stream it reads: the log shards it owns (which it
 *	  also trims), the shards it reads for session and count-window views
 *	  (the stream's first worker reads them all), the Kafka sources it
 *	  consumes for the stream;
 *	- a WView for every aggregating view of the database (it must load its
 *	  slot of each, fed by it or not) and for the append views it feeds.
 *
 * A refresh keeps what did not change: a view whose catalog row and whose
 * stream's definition are the same keeps its plans, its state in shared
 * memory and its positions; a source whose row and stream are the same
 * keeps its consumer.  A view that changed is reloaded from its
 * checkpoint (the worker checkpoints before a refresh, so nothing is
 * lost), a view that is gone lets go of its slot, a new view is loaded.
 * So creating, altering or dropping one object costs what that object
 * holds, not what the database holds.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/relation.h"
#include "access/xact.h"
#include "catalog/namespace.h"
#include "catalog/pg_type.h"
#include "miscadmin.h"
#include "utils/builtins.h"
#include "utils/fmgroids.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"
#include "utils/rel.h"
#include "utils/snapmgr.h"

#include "engine.h"
#include "feed.h"
#include "stream.h"
#include "streamproc.h"

static void view_destroy(Worker *w, WView *view, bool forget);
static WView *view_create(Worker *w, StreamprocView *def, WStream *stream);
static void view_load_slot(Worker *w, WView *view);
static void view_prepare(Worker *w, WView *view);
static WStream *stream_create(Worker *w, const StreamprocStream *def);
static void stream_destroy(WStream *stream);
static void clean_dropped(void);
static void set_source_slots(Worker *w, WStream *stream, List *sources_rows);
static void view_prepare_late(Worker *w, WView *view, StreamprocView *def);
static void load_position(const char *input, const char *position, void *arg);
static void fold_entry(int slot, const char *key, uint32 keylen, const char *state,
					   uint32 statelen, void *arg);
static bool orphan_slots_exist(Oid viewid);
static int sign_aggregate(WView *view, const StreamprocView *def);

/*
 * catalog_load
 *		Bring the worker's structs in line with the catalog.  The caller has
 *		checkpointed: nothing in memory is newer than the checkpoint.
 */
void
catalog_load(Worker *w)
{
	List *old_streams = w->streams;
	List *old_views = w->views;
	List *streams;
	List *views;
	List *new_streams = NIL;
	List *new_views = NIL;
	ListCell *lc;

	if (w->catalog_cxt == NULL)
		w->catalog_cxt = AllocSetContextCreate(TopMemoryContext, "streamproc catalog",
											   ALLOCSET_DEFAULT_SIZES);

	SetCurrentStatementStartTimestamp();
	StartTransactionCommand();
	SPI_connect();
	PushActiveSnapshot(GetTransactionSnapshot());

	clean_dropped();
	w->state_runs_relid = get_relname_relid("state_runs", get_namespace_oid("streamproc", false));
	w->positions_relid = get_relname_relid("positions", get_namespace_oid("streamproc", false));
	w->dedup_runs_relid = get_relname_relid("dedup_runs", get_namespace_oid("streamproc", false));

	/* Kafka sources we consume: unchanged ones keep their consumers. */
	w->sources = streamproc_kafka_load(w->sources, w->index, w->catalog_cxt);

	/* Streams: unchanged ones are kept with their shards and plans. */
	streams = streamproc_stream_list();
	foreach (lc, streams)
	{
		StreamprocStream *def = lfirst(lc);
		WStream *keep = NULL;
		ListCell *oc;

		foreach (oc, old_streams)
		{
			WStream *s = lfirst(oc);

			if (s->streamid == def->stream && strcmp(s->signature, def->signature) == 0)
			{
				keep = s;
				old_streams = foreach_delete_current(old_streams, oc);
				break;
			}
		}
		if (keep == NULL)
		{
			keep = stream_create(w, def);
			if (keep == NULL)
				continue; /* dropped meanwhile: the next load forgets it */
		}
		else
		{
			/* Its sources are this load's; its views are re-listed below. */
			ListCell *sc;

			MemoryContext old = MemoryContextSwitchTo(GetMemoryChunkContext(keep));

			keep->sources = NIL;
			foreach (sc, w->sources)
				if (streamproc_kafka_stream(lfirst(sc)) == keep->streamid)
					keep->sources = lappend(keep->sources, lfirst(sc));
			keep->views = NIL;
			keep->has_append = false;
			foreach (sc, keep->shards)
				((WShard *)lfirst(sc))->views = NIL;
			MemoryContextSwitchTo(old);
		}
		{
			MemoryContext old = MemoryContextSwitchTo(w->catalog_cxt);

			new_streams = lappend(new_streams, keep);
			MemoryContextSwitchTo(old);
		}
	}
	/* Streams that changed or went away. */
	foreach (lc, old_streams)
	{
		WStream *s = lfirst(lc);
		ListCell *vc;

		/* Their views are rebuilt: let go of their structs, not their slots. */
		foreach (vc, old_views)
		{
			WView *v = lfirst(vc);

			if (v->stream == s)
				v->stream = NULL, v->def_xmin = InvalidTransactionId;
		}
		stream_destroy(s);
	}
	list_free(old_streams);
	w->streams = new_streams;
	{
		List *open = NIL;

		foreach (lc, w->streams)
			if (((WStream *)lfirst(lc))->dedup != NULL)
				open = lappend(open, ((WStream *)lfirst(lc))->dedup);
		dedup_forget_dropped(open);
		list_free(open);
	}

	/* Views. */
	views = streamproc_view_list(InvalidOid);
	foreach (lc, views)
	{
		StreamprocView *def = lfirst(lc);
		WStream *stream = NULL;
		WView *keep = NULL;
		ListCell *oc;

		foreach (oc, w->streams)
			if (((WStream *)lfirst(oc))->streamid == def->stream)
				stream = lfirst(oc);
		foreach (oc, old_views)
		{
			WView *v = lfirst(oc);

			if (v->viewid == def->view)
			{
				old_views = foreach_delete_current(old_views, oc);
				if (TransactionIdEquals(v->def_xmin, def->xmin) && v->owner == def->owner &&
					(v->stream == stream || (v->held && stream == NULL)))
				{
					keep = v;
					view_prepare_late(w, v, def);
					/* ALTER VIEW ... RENAME changes no catalog row of ours. */
					if (strcmp(v->name, def->name) != 0)
					{
						MemoryContext cxt = GetMemoryChunkContext(v->name);

						pfree(v->name);
						v->name = MemoryContextStrdup(cxt, def->name);
					}
				}
				else
					view_destroy(w, v, false); /* changed: reloaded below */
				break;
			}
		}
		if (keep == NULL)
		{
			keep = view_create(w, def, stream);
			if (keep == NULL)
				continue; /* an append view we do not feed */
		}
		{
			MemoryContext old = MemoryContextSwitchTo(w->catalog_cxt);

			new_views = lappend(new_views, keep);
			MemoryContextSwitchTo(old);
		}

		/* Where it runs (lists in the stream's context). */
		if (stream != NULL && !keep->held)
		{
			ListCell *sc;
			MemoryContext old = MemoryContextSwitchTo(GetMemoryChunkContext(stream));

			stream->views = lappend(stream->views, keep);
			foreach (sc, stream->shards)
			{
				WShard *shard = lfirst(sc);

				if (keep->reads_shard[shard->shard])
					shard->views = lappend(shard->views, keep);
			}
			if (keep->kind == STREAMPROC_VIEW_APPEND)
				stream->has_append = true;
			MemoryContextSwitchTo(old);
		}
	}
	foreach (lc, old_views)
		view_destroy(w, lfirst(lc), true); /* dropped */
	list_free(old_views);
	w->views = new_views;

	/* Windowed views: which slots must publish before the watermark moves. */
	foreach (lc, w->streams)
		set_source_slots(w, lfirst(lc), NIL);

	SPI_finish();
	PopActiveSnapshot();
	CommitTransactionCommand();

	/* Views registered before that are gone (their worker died meanwhile). */
	{
		List *registered = streamproc_state_registered_views(MyDatabaseId, w->index);

		foreach (lc, registered)
			if (catalog_find_view(w, lfirst_oid(lc)) == NULL)
				streamproc_state_forget(MyDatabaseId, lfirst_oid(lc), w->index);
	}
}

WView *
catalog_find_view(Worker *w, Oid viewid)
{
	ListCell *lc;

	foreach (lc, w->views)
		if (((WView *)lfirst(lc))->viewid == viewid)
			return lfirst(lc);
	return NULL;
}

/* Checkpoint rows of views that no longer exist (idempotent). */
static void
clean_dropped(void)
{
	const char *const tables[] = {"state_runs", "window_runs", "view_watermarks", "positions",
								  "change_logs", "changes", "change_rows", "sinks"};
	int t;

	for (t = 0; t < lengthof(tables); t++)
	{
		int ret;

		/* The change logs' tables: from 0.6 of the extension on; sinks: 0.7. */
		if (!OidIsValid(get_relname_relid(tables[t], get_namespace_oid("streamproc", false))))
			continue;
		ret = SPI_execute(psprintf("DELETE FROM streamproc.%s s WHERE NOT EXISTS"
								   " (SELECT 1 FROM streamproc.views v WHERE v.view = s.view)",
								   tables[t]),
						  false, 0);
		if (ret != SPI_OK_DELETE)
			elog(ERROR, "could not clean streamproc.%s: %s", tables[t],
				 SPI_result_code_string(ret));
	}
}

/* ----------------------------------------------------------------
 * Streams and shards
 * ----------------------------------------------------------------
 */

static WShard *
shard_create(Worker *w, WStream *stream, const StreamprocStream *def,
			 const StreamOptions *opts, int k, bool owned)
{
	WShard *shard = palloc0(sizeof(WShard));
	const char *pred = "pg_catalog.pg_visible_in_snapshot(l.\"$xid\", $1)"
					   " AND ($2 IS NULL OR NOT pg_catalog.pg_visible_in_snapshot(l.\"$xid\", $2))"
					   " AND l.ctid >= $4 AND l.ctid < $5 AND $3 IS NOT NULL";
	Oid range_types[5] = {PG_SNAPSHOTOID, PG_SNAPSHOTOID, INT2OID, TIDOID, TIDOID};

	shard->stream = stream;
	shard->shard = k;
	shard->owned = owned;
	shard->logid = def->shard_logs[k];
	if (get_rel_name(shard->logid) == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_UNDEFINED_TABLE),
				 errmsg("shard %d of the log of stream \"%s\" does not exist", k, def->name),
				 errhint("Drop the stream and create it again.")));
	shard->logname = quote_qualified_identifier(get_namespace_name(get_rel_namespace(shard->logid)),
												get_rel_name(shard->logid));
	shard->max_time = DT_NOBEGIN;

	shard->rows_plan = worker_prepare(psprintf("SELECT l.ctid, (pg_catalog.to_jsonb(l) - '$xid' - '$shard')::text"
											   " FROM %s l WHERE %s ORDER BY l.ctid",
											   shard->logname, pred),
									  5, range_types);
	if (stream->event_time != InvalidAttrNumber)
	{
		const char *ev = quote_identifier(NameStr(TupleDescAttr(stream->desc, stream->event_time - 1)->attname));
		StringInfoData cols;
		Oid late_types[6] = {PG_SNAPSHOTOID, PG_SNAPSHOTOID, INT2OID, TIDOID, TIDOID, TIMESTAMPTZOID};
		int j;

		shard->count_plan = worker_prepare(psprintf("SELECT count(*), min(l.%s), max(l.%s),"
													" count(*) FILTER (WHERE l.%s IS NULL)"
													" FROM %s l WHERE %s",
													ev, ev, ev, shard->logname, pred),
										   5, range_types);
		initStringInfo(&cols);
		for (j = 0; j < stream->desc->natts; j++)
			if (!TupleDescAttr(stream->desc, j)->attisdropped)
				appendStringInfo(&cols, ", l.%s",
								 quote_identifier(NameStr(TupleDescAttr(stream->desc, j)->attname)));
		if (opts->dedup_key == NULL)
			shard->late_rows_plan = worker_prepare(psprintf("SELECT l.ctid, (pg_catalog.to_jsonb(l) - '$xid' - '$shard')::text%s"
															" FROM %s l WHERE %s AND (l.%s < $6 OR l.%s IS NULL)"
															" ORDER BY l.ctid",
															cols.data, shard->logname, pred, ev, ev),
												   6, late_types);
		else
		{
			/*
			 * dedup_key: the late events that are not copies (dedup.c),
			 * decided for the rows of the range only, as in view.c.
			 */
			shard->late_rows_plan = worker_prepare(psprintf("SELECT l.\"$ctid\", (pg_catalog.to_jsonb(l) - '$xid' - '$shard'"
															" - '$tableoid' - '$ctid')::text%s"
															" FROM (SELECT *, l.tableoid AS \"$tableoid\", l.ctid AS \"$ctid\""
															" FROM %s l WHERE %s AND (l.%s < $6 OR l.%s IS NULL) OFFSET 0) l"
															" WHERE %s ORDER BY l.\"$ctid\"",
															cols.data, shard->logname, pred, ev, ev,
															streamproc_dedup_call_sql(opts, "l")),
												   6, late_types);
		}
	}
	else
		shard->count_plan = worker_prepare(psprintf("SELECT count(*), NULL::pg_catalog.timestamptz,"
													" NULL::pg_catalog.timestamptz, 0::pg_catalog.int8"
													" FROM %s l WHERE %s",
													shard->logname, pred),
										   5, range_types);
	return shard;
}

static WStream *
stream_create(Worker *w, const StreamprocStream *def)
{
	MemoryContext cxt = AllocSetContextCreate(w->catalog_cxt, "streamproc stream",
											  ALLOCSET_SMALL_SIZES);
	MemoryContext old = MemoryContextSwitchTo(cxt);
	WStream *s = palloc0(sizeof(WStream));
	int base = (int)(def->stream % (Oid)streamproc_workers);
	StreamOptions opts;
	ListCell *lc;
	int k;

	s->streamid = def->stream;
	s->name = pstrdup(def->name);
	s->logid = def->log;
	s->nshards = def->nshards;
	s->signature = pstrdup(def->signature);
	{
		/* A DROP that committed after our list of streams: skip it. */
		Relation rel = try_relation_open(s->streamid, AccessShareLock);

		if (rel == NULL)
		{
			MemoryContextSwitchTo(old);
			MemoryContextDelete(cxt);
			return NULL;
		}
		s->desc = CreateTupleDescCopy(RelationGetDescr(rel));
		/*
		 * Kept until the load commits: a DROP of the stream, which locks
		 * the stream, then its log, then the shards, waits for us rather
		 * than deadlock with the plans we prepare over the shards and log.
		 */
		relation_close(rel, NoLock);
	}
	s->pending_cxt = AllocSetContextCreate(cxt, "streamproc pending Kafka rows",
										   ALLOCSET_DEFAULT_SIZES);
	(void)streamproc_stream_options(s->streamid, &opts);
	s->watermark_delay = opts.watermark_delay;
	s->idle_timeout = opts.idle_timeout;
	s->event_time = opts.event_time ? get_attnum(s->streamid, opts.event_time) : InvalidAttrNumber;
	foreach (lc, w->sources)
		if (streamproc_kafka_stream(lfirst(lc)) == s->streamid)
			s->sources = lappend(s->sources, lfirst(lc));

	/*
	 * Shards: ours (worker (stream + k) mod workers), and every shard for
	 * the stream's first worker, which runs the session and count-window
	 * views over all of them.
	 */
	for (k = 0; k < s->nshards; k++)
	{
		bool owned = ((def->stream + k) % (Oid)streamproc_workers) == (Oid)w->index;

		if (owned || base == w->index)
			s->shards = lappend(s->shards, shard_create(w, s, def, &opts, k, owned));
	}

	/* dedup_key: the shared set of keys, and where our log queries read. */
	if (opts.dedup_key != NULL)
	{
		s->dedup = dedup_open(s->streamid, s->desc, opts.dedup_columns, s->event_time,
							  opts.dedup_window, w->index);
		foreach (lc, s->shards)
			dedup_add_shard(s->dedup, ((WShard *)lfirst(lc))->logid,
							((WShard *)lfirst(lc))->shard);
	}
	MemoryContextSwitchTo(old);
	return s;
}

static void
stream_destroy(WStream *stream)
{
	ListCell *lc;

	if (stream->dedup != NULL)
		dedup_close(stream->dedup);

	foreach (lc, stream->shards)
	{
		WShard *shard = lfirst(lc);

		if (shard->count_plan)
			SPI_freeplan(shard->count_plan);
		if (shard->rows_plan)
			SPI_freeplan(shard->rows_plan);
		if (shard->late_rows_plan)
			SPI_freeplan(shard->late_rows_plan);
	}
	MemoryContextDelete(GetMemoryChunkContext(stream));
}

/*
 * The slots that read a stream's Kafka sources must all publish before a
 * windowed view's watermark moves (window_worker.c).
 */
static void
set_source_slots(Worker *w, WStream *stream, List *unused)
{
	uint64 slots = 0;
	Datum arg;
	uint64 i;
	int ret;
	ListCell *lc;

	if (stream->event_time == InvalidAttrNumber)
		return;
	arg = ObjectIdGetDatum(stream->streamid);
	ret = SPI_execute_with_args("SELECT workers FROM streamproc.sources WHERE stream = $1 AND NOT paused",
								1, (Oid[]){OIDOID}, &arg, NULL, true, 0);
	if (ret != SPI_OK_SELECT)
		elog(ERROR, "could not read streamproc.sources: %s", SPI_result_code_string(ret));
	for (i = 0; i < SPI_processed; i++)
	{
		bool isnull;
		int members = Min(DatumGetInt32(SPI_getbinval(SPI_tuptable->vals[i],
													  SPI_tuptable->tupdesc, 1, &isnull)),
						  streamproc_workers);
		int m;

		for (m = 0; m < members; m++)
			slots |= UINT64CONST(1) << ((stream->streamid % (Oid)streamproc_workers + m) % streamproc_workers);
	}
	SPI_freetuptable(SPI_tuptable);
	foreach (lc, stream->views)
	{
		WView *view = lfirst(lc);

		if (view->window.kind != 0 && view->vs != NULL)
			streamproc_state_set_source_slots(view->vs, slots);
	}
}

/* ----------------------------------------------------------------
 * Views
 * ----------------------------------------------------------------
 */

/* Does a view need all of a group's events in one worker? */
static bool
needs_one_worker(const StreamprocView *def)
{
	return def->window_kind == WINDOW_SESSION || def->window_kind == WINDOW_COUNT;
}

/*
 * The aggregate a view over an aggregating view counts its upstream rows
 * with, sum("$sign") (retract.c: the only sum of int2 there, in its HAVING
 * when it has groups), or -1: the checkpoint drops a group of our slot once
 * that count and every sum are zero (batch_group_left()).  Views without groups keep their one row.
 */
static int
sign_aggregate(WView *view, const StreamprocView *def)
{
	int j;

	if (view->ngroup == 0 || !OidIsValid(view->upstream) ||
		!streamproc_feed_retracts(def->stream))
		return -1;
	for (j = 0; j < view->aggs->nagg; j++)
		if (view->aggs->aggs[j]->aggfnoid == F_SUM_INT2)
			return j;
	return -1;
}

/*
 * view_create
 *		Build a view's struct: register and load our slot of an aggregating
 *		view, prepare the plans of a view we feed.  NULL for an append view
 *		we do not feed.
 */
static WView *
view_create(Worker *w, StreamprocView *def, WStream *stream)
{
	MemoryContext cxt;
	MemoryContext old;
	WView *v;
	bool feeds = false;
	int base = (int)(def->stream % (Oid)streamproc_workers);
	int j;

	/* What we run it over. */
	if (stream != NULL)
	{
		ListCell *lc;

		foreach (lc, stream->shards)
		{
			WShard *shard = lfirst(lc);

			if (needs_one_worker(def) ? base == w->index : shard->owned)
				feeds = true;
		}
		if (stream->sources != NIL)
			feeds = true;
	}
	if (!feeds && def->kind != STREAMPROC_VIEW_AGGREGATING)
		return NULL;

	cxt = AllocSetContextCreate(w->catalog_cxt, "streamproc view", ALLOCSET_DEFAULT_SIZES);
	old = MemoryContextSwitchTo(cxt);
	v = palloc0(sizeof(WView));
	v->viewid = def->view;
	v->def = def; /* (in the transaction's memory: copied fields only below) */
	v->groups_table = def->groups_table;
	v->name = pstrdup(def->name);
	v->kind = def->kind;
	v->owner = def->owner;
	v->upstream = streamproc_feed_upstream_view(def->stream);
	v->def_xmin = def->xmin;
	v->held = !feeds;
	v->stream = feeds ? stream : NULL;
	v->status = VIEW_SLOT_IDLE;
	v->sign_agg = -1;
	v->closed = DT_NOBEGIN;
	v->cutoff = DT_NOBEGIN;
	v->min_end = DT_NOBEGIN;

	if (stream != NULL)
	{
		ListCell *lc;

		v->logpos = palloc0(sizeof(LogPosition) * Max(stream->nshards, 1));
		v->logpos_changed = palloc0(sizeof(bool) * Max(stream->nshards, 1));
		v->reads_shard = palloc0(sizeof(bool) * Max(stream->nshards, 1));
		foreach (lc, stream->shards)
		{
			WShard *shard = lfirst(lc);

			if (needs_one_worker(def) ? base == w->index : shard->owned)
				v->reads_shard[shard->shard] = true;
		}
	}

	if (def->kind == STREAMPROC_VIEW_AGGREGATING)
	{
		Oid *keytypes = palloc(sizeof(Oid) * Max(def->ngroups, 1));
		ArrayType *aggs;
		ArrayType *colls;

		/* The window (windows.h) and the ordinary group columns. */
		v->key_first = 1;
		if (def->window_kind != 0)
		{
			v->window.kind = def->window_kind;
			v->window.size = def->window_size;
			v->window.slide = def->window_slide;
			v->window.origin = def->window_origin;
			v->window.lateness = def->allowed_lateness;
			v->window.retention = def->retention;
			v->window.emit = def->emit;
			v->key_first = 2; /* after the window's start */
		}
		for (j = 0; j < def->ngroups; j++)
			if (def->window_kind == 0 || def->window_roles[j] == WINDOW_ROLE_KEY)
				keytypes[v->ngroup++] = def->group_types[j];
		v->keys = groupkey_codec_create(v->ngroup, keytypes);

		{
			Datum *elems = palloc(sizeof(Datum) * Max(def->naggs, 1));

			for (j = 0; j < def->naggs; j++)
				elems[j] = ObjectIdGetDatum(def->aggregates[j]);
			aggs = construct_array(elems, def->naggs, OIDOID, sizeof(Oid), true, TYPALIGN_INT);
			for (j = 0; j < def->naggs; j++)
				elems[j] = ObjectIdGetDatum(def->agg_collations[j]);
			colls = construct_array(elems, def->naggs, OIDOID, sizeof(Oid), true, TYPALIGN_INT);
		}
		v->aggs = streamproc_view_aggs(aggs, colls, DatumGetArrayTypeP(def->agg_argtypes));
		v->sign_agg = sign_aggregate(v, def);
		if (v->sign_agg >= 0)
			v->sign_states = palloc(sizeof(PackedState) * v->aggs->nagg);

		v->vs = streamproc_state_register(MyDatabaseId, v->viewid, w->index);
		v->map = streamproc_state_attach_map(v->vs);
		v->store = statestore_create(v->viewid, w->index, cxt);
		if (v->window.kind != 0)
			window_view_init(w, v);
		view_load_slot(w, v);
	}
	else
	{
		/* Append views: statistics, and where they are in their inputs. */
		v->vs = streamproc_state_register(MyDatabaseId, v->viewid, w->index);
		streamproc_state_begin_load(v->vs, w->index);
		streamproc_state_end_load(v->vs, w->index, false, DT_NOBEGIN, DT_NOBEGIN);
		positions_load(v->viewid, load_position, v);
	}

	if (feeds)
		view_prepare(w, v);
	v->def = NULL;
	MemoryContextSwitchTo(old);
	return v;
}

/* A key's group (loading): the state it had before, for the bookkeeping. */
typedef struct LoadArg
{
	Worker *w;
	WView *view;
	StringInfoData old;
	int64 groups;
} LoadArg;

static void
load_entry(const char *key, uint32 keylen, const char *state, int64 statelen,
		   void *arg)
{
	LoadArg *la = arg;
	WView *view = la->view;
	uint32 hash = groupmap_hash(key, keylen);
	int part = GROUPMAP_PARTITION(hash);
	bool had;
	bool flag;
	bool created;

	resetStringInfo(&la->old);
	had = groupmap_get_slot(view->map, hash, key, keylen, la->w->index, &la->old);
	groupmap_lock_partition(view->map, part);
	if (statelen < 0)
	{
		if (had)
			(void)groupmap_remove(view->map, hash, key, keylen, la->w->index, &flag, &created);
	}
	else
	{
		(void)groupmap_put(view->map, hash, key, keylen, la->w->index, state,
						   (uint32)statelen, &flag, &created);
		la->groups++;
	}
	groupmap_unlock_partition(view->map, part);
	statestore_note(view->store, hash, keylen, had ? (int64)la->old.len : -1, statelen);
	/*
	 * A key is in several runs when it changed between checkpoints: the
	 * window indexes follow only its entering and leaving our slot.
	 */
	if (view->window.kind != 0 && (statelen >= 0) != had)
		window_group_loaded(view, key, keylen, statelen >= 0);
}

/* A group of a gone worker's slot: combined into ours, to be written. */
static void
fold_entry(int slot, const char *key, uint32 keylen, const char *state, uint32 statelen,
		   void *arg)
{
	LoadArg *la = arg;
	WView *view = la->view;
	uint32 hash = groupmap_hash(key, keylen);
	int part = GROUPMAP_PARTITION(hash);
	StringInfoData combined;
	bool had;
	bool was_dirty;
	bool created;

	resetStringInfo(&la->old);
	had = groupmap_get_slot(view->map, hash, key, keylen, la->w->index, &la->old);
	initStringInfo(&combined);
	streamproc_combine_packed(view->aggs, had ? la->old.data : NULL, la->old.len, state,
							  statelen, &combined);
	groupmap_lock_partition(view->map, part);
	(void)groupmap_put(view->map, hash, key, keylen, la->w->index, combined.data,
					   (uint32)combined.len, &was_dirty, &created);
	groupmap_unlock_partition(view->map, part);
	if (!was_dirty)
		dirty_add(view, hash, key, keylen);
	if (!had)
		la->groups++;
	if (view->window.kind != 0)
		window_group_loaded(view, key, keylen, true);
	pfree(combined.data);
}

/* Has a view rows of slots beyond the workers that exist? */
static bool
orphan_slots_exist(Oid viewid)
{
	Datum args[2];
	int ret;

	args[0] = ObjectIdGetDatum(viewid);
	args[1] = Int32GetDatum(streamproc_workers);
	ret = SPI_execute_with_args("SELECT 1 FROM streamproc.state_runs WHERE view = $1 AND slot >= $2"
								" UNION ALL SELECT 1 FROM streamproc.window_runs WHERE view = $1 AND slot >= $2"
								" UNION ALL SELECT 1 FROM streamproc.view_watermarks WHERE view = $1 AND slot >= $2"
								" LIMIT 1",
								2, (Oid[]){OIDOID, INT4OID}, args, NULL, true, 1);
	if (ret != SPI_OK_SELECT)
		elog(ERROR, "could not read the state of continuous view %u: %s", viewid,
			 SPI_result_code_string(ret));
	return SPI_processed > 0;
}

/* Log and Kafka positions of a view, from streamproc.positions. */
static void
load_position(const char *input, const char *position, void *arg)
{
	WView *view = arg;
	int shard;

	if (sscanf(input, "log %d", &shard) == 1)
	{
		if (view->logpos != NULL && view->stream != NULL && shard >= 0 &&
			shard < view->stream->nshards)
		{
			/* The snapshots live as long as the view's struct. */
			MemoryContext old = MemoryContextSwitchTo(GetMemoryChunkContext(view));

			position_log_parse(position, &view->logpos[shard]);
			MemoryContextSwitchTo(old);
		}
	}
	else if (strncmp(input, "kafka ", 6) == 0 && view->stream != NULL)
	{
		const char *space = strrchr(input, ' ');
		ListCell *lc;

		foreach (lc, view->stream->sources)
		{
			KafkaSource *src = lfirst(lc);
			const char *name = streamproc_kafka_name(src);

			if (space - (input + 6) == (long)strlen(name) &&
				strncmp(input + 6, name, strlen(name)) == 0)
			{
				bool found;
				KafkaLag *lag = view_kafka_lag(view, src, atoi(space + 1), &found);

				lag->offset = strtoll(position, NULL, 10);
				lag->saved = true;
			}
		}
	}
}

/*
 * view_load_slot
 *		Clear our slot of an aggregating view and reload it from the
 *		checkpoint, with the positions and the closing watermark it goes
 *		with.
 */
static void
view_load_slot(Worker *w, WView *view)
{
	LoadArg la;
	MemoryContext old;
	Datum args[2];
	TimestampTz closed = DT_NOBEGIN;
	TimestampTz any_closed = DT_NOBEGIN;
	int ret;
	int p;

	TimestampTz started = GetCurrentTimestamp();

	streamproc_state_begin_load(view->vs, w->index);
	groupmap_reset_slot(view->map, w->index);

	la.w = w;
	la.view = view;
	la.groups = 0;
	old = MemoryContextSwitchTo(w->batch_cxt);
	initStringInfo(&la.old);
	statestore_load(view->store, load_entry, &la);
	MemoryContextSwitchTo(old);
	MemoryContextReset(w->batch_cxt);

	/* Loaded groups are checkpointed: clear the dirty bits put set. */
	for (p = 0; p < GROUPMAP_PARTITIONS; p++)
	{
		groupmap_lock_partition(view->map, p);
		groupmap_clear_dirty(view->map, p, w->index);
		groupmap_unlock_partition(view->map, p);
	}

	/*
	 * Slots of workers that no longer exist (streamproc.workers was
	 * lowered) are folded into the stream's first worker's slot; its next
	 * checkpoint writes them there and deletes theirs, in one transaction.
	 */
	if (view->stream != NULL &&
		(int)(view->stream->streamid % (Oid)streamproc_workers) == w->index)
	{
		old = MemoryContextSwitchTo(w->batch_cxt);
		initStringInfo(&la.old);
		statestore_read_slots(view->viewid, -1, streamproc_workers, fold_entry, &la);
		MemoryContextSwitchTo(old);
		MemoryContextReset(w->batch_cxt);
		view->fold_pending = orphan_slots_exist(view->viewid);
		if (view->fold_pending)
			w->checkpoint_needed = true;
	}

	positions_load(view->viewid, load_position, view);

	/*
	 * The watermark our slot closed windows at, and the greatest any slot
	 * closed them at: the view's watermark never goes back, whichever slot
	 * loads first.
	 */
	args[0] = ObjectIdGetDatum(view->viewid);
	args[1] = Int32GetDatum(w->index);
	ret = SPI_execute_with_args("SELECT max(watermark) FILTER (WHERE slot = $2), max(watermark)"
								" FROM streamproc.view_watermarks WHERE view = $1",
								2, (Oid[]){OIDOID, INT4OID}, args, NULL, true, 1);
	if (ret != SPI_OK_SELECT || SPI_processed != 1)
		elog(ERROR, "could not read streamproc.view_watermarks: %s", SPI_result_code_string(ret));
	{
		bool isnull;
		Datum d = SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull);

		if (!isnull)
		{
			closed = DatumGetTimestampTz(d);
			if (view->window.kind != 0)
			{
				view->closed = closed;
				view->cutoff = streamproc_window_cutoff(&view->window, closed);
			}
		}
		d = SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 2, &isnull);
		if (!isnull)
			any_closed = DatumGetTimestampTz(d);
	}
	SPI_freetuptable(SPI_tuptable);
	streamproc_state_end_load(view->vs, w->index, la.groups > 0 || closed != DT_NOBEGIN,
							  closed, any_closed);

	/* Loads cost O(groups): say when they happen (and t/066 counts them). */
	ereport(LOG,
			(errmsg("streamproc worker %d loaded continuous view %s: %lld groups in %ld ms",
					w->index, view->name, (long long)la.groups,
					TimestampDifferenceMilliseconds(started, GetCurrentTimestamp()))));
}

/*
 * The INSERT of a windowed view's late events, prepared again at a catalog
 * load when its text changed (it names the late_events table, which
 * belongs to the user and may be renamed: a prepared plan would look up the
 * old name again) or when the table did not fit.
 */
static void
view_prepare_late(Worker *w, WView *view, StreamprocView *def)
{
	MemoryContext old;
	char *query;
	Oid save_userid;
	int save_sec;

	if (view->window.kind == 0 || !OidIsValid(def->late_events) ||
		view->kind != STREAMPROC_VIEW_AGGREGATING)
		return;
	query = streamproc_late_query(def->stream, def->view, def->late_events);
	if (view->late_query != NULL && strcmp(view->late_query, query) == 0 &&
		view->late_plan != NULL)
		return;
	old = MemoryContextSwitchTo(GetMemoryChunkContext(view));
	if (view->late_plan)
		SPI_freeplan(view->late_plan);
	view->late_plan = NULL;
	if (view->late_error)
		pfree(view->late_error);
	view->late_error = NULL;
	if (view->late_query)
		pfree(view->late_query);
	view->late_query = pstrdup(query);
	GetUserIdAndSecContext(&save_userid, &save_sec);
	SetUserIdAndSecContext(view->owner, save_sec | SECURITY_LOCAL_USERID_CHANGE);
	view->late_plan = window_prepare_late_plan(view, query);
	SetUserIdAndSecContext(save_userid, save_sec);
	MemoryContextSwitchTo(old);
}

/* Prepare a view's plans as its owner (names resolve as the owner's). */
static void
view_prepare(Worker *w, WView *view)
{
	StreamprocView *def = view->def;
	Oid save_userid;
	int save_sec;
	Oid log_types[6] = {PG_SNAPSHOTOID, PG_SNAPSHOTOID, INT2OID, TIDOID, TIDOID, TIMESTAMPTZOID};
	Oid event_types[3] = {TIDOID, INT2OID, TIMESTAMPTZOID};
	Oid source_types[1] = {TIMESTAMPTZOID};
	bool windowed = view->window.kind != 0;

	GetUserIdAndSecContext(&save_userid, &save_sec);
	SetUserIdAndSecContext(view->owner, save_sec | SECURITY_LOCAL_USERID_CHANGE);
	if (view->kind == STREAMPROC_VIEW_AGGREGATING)
	{
		view->batch_plan = worker_prepare(def->batch_query, windowed ? 6 : 5, log_types);
		view->event_plan = worker_prepare(def->event_query, windowed ? 3 : 2, event_types);
		view->source_plan = worker_prepare(def->source_query, windowed ? 1 : 0, source_types);
	}
	else
	{
		char *relname = get_rel_name(def->rows_table);
		char *nspname = relname != NULL ? get_namespace_name(get_rel_namespace(def->rows_table)) : NULL;
		char *rows;

		/*
		 * The catalog was read before a DROP VIEW that committed since: the
		 * name is gone (it crashed the worker in quote_identifier(NULL)).
		 * The worker exits and loads the catalog again when it restarts.
		 */
		if (relname == NULL || nspname == NULL)
			ereport(ERROR,
					(errcode(ERRCODE_UNDEFINED_TABLE),
					 errmsg("continuous view \"%s\" was dropped while streamproc worker %d loaded it",
							view->name, w->index),
					 errdetail("The worker restarts and loads the views that remain.")));
		rows = quote_qualified_identifier(nspname, relname);

		view->batch_plan = worker_prepare(psprintf("INSERT INTO %s %s", rows, def->batch_query),
										  5, log_types);
		view->event_plan = worker_prepare(psprintf("INSERT INTO %s %s", rows, def->event_query),
										  2, event_types);
		view->source_plan = worker_prepare(psprintf("INSERT INTO %s %s", rows, def->source_query),
										   0, NULL);
	}
	SetUserIdAndSecContext(save_userid, save_sec);
	view_prepare_late(w, view, def);

	/* Positions of a view we feed that had none (older than its shards). */
	if (view->stream != NULL && view->logpos == NULL)
	{
		view->logpos = palloc0(sizeof(LogPosition) * Max(view->stream->nshards, 1));
		view->logpos_changed = palloc0(sizeof(bool) * Max(view->stream->nshards, 1));
	}
}

/*
 * view_destroy
 *		Let go of a view's struct; with forget (the view was dropped) also of
 *		our slot of its state.
 */
static void
view_destroy(Worker *w, WView *view, bool forget)
{
	if (view->batch_plan)
		SPI_freeplan(view->batch_plan);
	if (view->event_plan)
		SPI_freeplan(view->event_plan);
	if (view->source_plan)
		SPI_freeplan(view->source_plan);
	if (view->late_plan)
		SPI_freeplan(view->late_plan);
	if (view->map)
		groupmap_detach(view->map);
	if (forget)
		streamproc_state_forget(MyDatabaseId, view->viewid, w->index);
	MemoryContextDelete(GetMemoryChunkContext(view));
}

/* Everything, at exit. */
void
catalog_release(Worker *w)
{
	streamproc_kafka_stop(w->sources);
	w->sources = NIL;
}
