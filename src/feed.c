/*-------------------------------------------------------------------------
 *
 * feed.c
 *	  Views over views: a continuous view that reads another continuous
 *	  view in FROM, through a stream that the upstream view feeds.
 *
 * CREATE VIEW hourly WITH (continuous) AS SELECT ... FROM filtered ...,
 * where filtered is a continuous append view (no aggregates: its rows are
 * only ever added), makes a **feed**: an ordinary stream,
 * streamproc.feed_<hourly's oid>, with the upstream view's columns, and
 * the downstream view is created over the feed exactly as over any stream
 * (view.c swaps the range table entry before it checks the query).  So
 * the downstream view gets every part of the engine unchanged: its log
 * shards read by every worker, its positions, trimming, sync(), crash
 * recovery, and windows (the feed copies the upstream stream's event_time
 * and watermark options when the upstream view passes that column on).
 *
 * Exactly once along the chain.  An append view's rows are written to its
 * rows table by the checkpoint that commits its positions (checkpoint.c).
 * A statement trigger on that rows table, streamproc._feed_rows(), inserts
 * the same rows (its NEW TABLE) into the feed, in the same statement and
 * so in the same transaction: the feed's log gets the upstream's rows if
 * and only if the upstream's checkpoint commits them, whatever is killed
 * when.  From there the downstream view consumes the feed's log as any
 * log, exactly once.  A chain of any depth is this, step by step.
 *
 * Creation.  The new view must count every row of the upstream view, the
 * ones it has (backfill) and the ones to come, each once.  CREATE VIEW
 * takes ShareRowExclusiveLock on the upstream's rows table before anything
 * else, so it waits for the checkpoint writing there, and later ones wait
 * for its commit; then it creates the feed and the trigger, and inserts
 * the rows table's rows into the feed in its own transaction.  The view's
 * starting positions count its own transaction as in progress (view.c),
 * so the backfill is its first batch; the checkpoints that waited fire the
 * trigger, which their plans see since it was added under the lock.
 *
 * Who writes a feed.  Only the trigger and the backfill (the flag
 * streamproc_feeding); a user's INSERT or COPY into a feed is refused
 * (stream.c), since the downstream view must equal its query over the
 * upstream's rows.  The trigger inserts as the feed's owner (the owner of
 * the downstream view), as PostgreSQL's RI triggers act as the table
 * owner, and only from the rows table its feed names (the option
 * upstream_rows, which only this file sets: the validator refuses it from
 * users), so a trigger of a user's own cannot write into a feed.  The
 * owner of the downstream view must keep SELECT on the upstream view: the
 * workers check it before each batch (batch.c), as reading a stream's log
 * checks SELECT on the stream.
 *
 * Objects and dependencies.  The feed belongs to the downstream view
 * (internal dependency: dropped with it, not alone); the downstream view
 * depends normally on the upstream view (DROP ... RESTRICT names it,
 * CASCADE drops it); the trigger is on the upstream's rows table and
 * depends automatically on the feed.  pg_dump writes the feed (a stream
 * in schema streamproc), its log and the trigger; post_restore() records
 * the dependencies again (streamproc_feed_link()).
 *
 * Final windows.  A view of tumbling or hopping windows with emit =
 * 'final' is append-only too (a closed window never changes), but no one
 * checkpoint writes its rows: each worker closes its slot's part of a
 * window, and the window is final once every worker's slot has (see
 * emit_windows() for why every slot, not only those holding state).  Its
 * feed (option upstream_groups) has a position, the downstream view's row
 * "upstream windows" of streamproc.positions: after
 * each checkpoint every worker calls streamproc_feed_emit_windows(), which
 * in one transaction per feed locks that row (the workers take turns),
 * inserts the upstream view's rows of the windows that ended between the
 * position and the current final bound, by window start, and moves the
 * position.  A window is passed on once, by whoever comes first after it
 * is final; a crash only delays it.  The feed's event_time is the window
 * start, passed on in its order, so the feed's watermark follows the
 * upstream's closing (its shards are read independently, as any stream's:
 * windows over a feed need some allowed_lateness).
 *
 * Aggregating views without windows, and tumbling windows with emit =
 * 'updates'.  Their groups change, so the view below must take a group's
 * old row back when the group changes (or a window leaves by retention).  Its
 * feed (option upstream_changes, the upstream's groups table) has one more
 * column, "$sign", and carries the upstream's change log (changes.c): for
 * each change, the old row with "$sign" -1 and the new row with +1.  The
 * writer of the log's changes, in the checkpoint transaction that logs
 * them and holding the log's row, inserts them into every such feed
 * (streamproc_feed_changes()): exactly once, as for append views.
 * retract.c rewrites the view's aggregates to count a -1 row as leaving.
 * Each row goes to the log shard a hash of its upstream group picks
 * (insert_by_key()), so a row and its retraction meet in one worker's slot,
 * which drops a group once all its rows left (batch.c).
 * Creating the view starts the upstream's change log when it has none,
 * else locks the log's row (FOR UPDATE): the next writer waits for our
 * commit and then finds the new feed; either way the rows the log logged
 * last (streamproc.change_rows) are where its next changes start, and
 * they are the backfill.  No trigger: one on streamproc.changes would
 * take ShareRowExclusiveLock there to create and AccessExclusiveLock to
 * drop, against every change log's writers and readers.  While views read
 * them, the upstream's change log cannot be dropped.
 *
 * What cannot feed a view: hopping windows with emit = 'updates',
 * sessions and count windows (their groups change, and they keep no change
 * log); CREATE VIEW says so with a hint.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/relation.h"
#include "access/table.h"
#include "access/xact.h"
#include "catalog/dependency.h"
#include "catalog/namespace.h"
#include "catalog/pg_class.h"
#include "catalog/pg_namespace.h"
#include "catalog/pg_trigger.h"
#include "catalog/pg_type.h"
#include "commands/tablecmds.h"
#include "commands/trigger.h"
#include "executor/spi.h"
#include "foreign/foreign.h"
#include "miscadmin.h"
#include "nodes/makefuncs.h"
#include "parser/parse_func.h"
#include "parser/parsetree.h"
#include "rewrite/rewriteHandler.h"
#include "utils/builtins.h"
#include "utils/memutils.h"
#include "utils/snapmgr.h"
#include "utils/timestamp.h"
#include "utils/lsyscache.h"
#include "utils/regproc.h"
#include "utils/rel.h"
#include "utils/syscache.h"
#include "utils/tuplestore.h"
#include "utils/varlena.h"

#include "changes.h"
#include "errors.h"
#include "feed.h"
#include "launcher.h"
#include "state.h"
#include "stream.h"
#include "streamproc.h"
#include "view.h"
#include "windows.h"

#define FEED_SCHEMA "streamproc"

/* The name of the trigger's transition table. */
#define FEED_NEW_TABLE "streamproc_rows"

/*
 * The downstream view's row of streamproc.positions that says up to which
 * closing bound the upstream's final windows were passed to its feed.
 */
#define FEED_WINDOWS_INPUT "upstream windows"

/* A feed of final windows, as the workers pass them on. */
typedef struct WindowFeed
{
	Oid feed;
	Oid view;     /* the view it feeds */
	Oid upstream; /* the windowed view it is fed from */
} WindowFeed;

bool streamproc_feed_creating = false;
bool streamproc_feeding = false;

PG_FUNCTION_INFO_V1(streamproc_feed_rows);

static Oid feed_function(bool missing_ok);
static Oid feed_upstream_rows(Oid stream);
static void emit_windows(WindowFeed *f);
static void emit_windows_spi(void *arg);
static void exec_args_as(Oid userid, const char *sql, Datum *args);
static void exec_as(Oid userid, const char *sql, bool feeding, TriggerData *td);
static char *feed_columns_sql(Oid feed, const char *alias);
static void insert_by_key(Oid feed, const char *values, const char *hash,
						  const char *from);
static List *changes_feeds(Oid upstream);

/*
 * streamproc_feed_upstream
 *		See feed.h.  A query that names a stream reads it (a continuous view
 *		beside it is joined as a table, as before views over views).
 */
Oid
streamproc_feed_upstream(Query *query, Index *rti)
{
	ListCell *lc;
	Index i = 0;
	Oid upstream = InvalidOid;
	StreamprocView *up;

	foreach (lc, query->rtable)
	{
		RangeTblEntry *rte = lfirst_node(RangeTblEntry, lc);

		i++;
		if (rte->rtekind != RTE_RELATION)
			continue;
		if (streamproc_is_stream(rte->relid))
			return InvalidOid;
		if (rte->relkind != RELKIND_VIEW || !streamproc_is_continuous_view(rte->relid))
			continue;
		if (OidIsValid(upstream) && upstream != rte->relid)
			ereport(ERROR,
					(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
					 errmsg("a continuous view can read only one other continuous view"),
					 errdetail("The query reads continuous views \"%s\" and \"%s\".",
							   get_rel_name(upstream), get_rel_name(rte->relid)),
					 errhint("Create one continuous view per input.")));
		if (OidIsValid(upstream))
			ereport(ERROR,
					(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
					 errmsg("a continuous view can read only one other continuous view"),
					 errdetail("Continuous view \"%s\" appears more than once in FROM.",
							   get_rel_name(upstream)),
					 errhint("Create one continuous view per input.")));
		upstream = rte->relid;
		*rti = i;
	}
	if (!OidIsValid(upstream))
		return InvalidOid;

	up = streamproc_view_load(upstream, false);
	if (up->kind != STREAMPROC_VIEW_APPEND && up->window_kind == WINDOW_HOP && up->emit != 'f')
		ereport(ERROR,
				(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
				 errmsg("continuous view \"%s\" cannot feed another continuous view",
						get_rel_name(upstream)),
				 errdetail("Its hopping windows change until they close; only hopping windows that closed (emit = 'final') feed other continuous views."),
				 errhint("Create \"%s\" WITH (continuous, emit = 'final'), or use tumbling windows.",
						 get_rel_name(upstream))));
	if (up->kind != STREAMPROC_VIEW_APPEND && up->window_kind != 0 &&
		!(up->window_kind == WINDOW_TUMBLE || up->window_kind == WINDOW_HOP))
		ereport(ERROR,
				(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
				 errmsg("continuous view \"%s\" cannot feed another continuous view",
						get_rel_name(upstream)),
				 errdetail("Its session or count windows change as events arrive; only views without windows and tumbling or hopping windows with emit = 'final' feed other continuous views."),
				 errhint("Read the stream of \"%s\" in this view instead.",
						 get_rel_name(upstream))));
	if (up->kind != STREAMPROC_VIEW_APPEND && up->window_kind != 0 &&
		streamproc_window_start_column(up) == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
				 errmsg("continuous view \"%s\" cannot feed another continuous view",
						get_rel_name(upstream)),
				 errdetail("It does not show the start of its windows, by which its closed windows are passed on."),
				 errhint("Select the window's start (window_start) in \"%s\".",
						 get_rel_name(upstream))));
	if (!OidIsValid(feed_function(true)) ||
		(up->kind != STREAMPROC_VIEW_APPEND && (up->window_kind == 0 || up->emit != 'f') &&
		 !OidIsValid(get_relname_relid("change_logs", get_namespace_oid(FEED_SCHEMA, false)))))
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("continuous views over continuous views need version %s of extension \"streamproc\"",
						STREAMPROC_VERSION),
				 errhint("Run ALTER EXTENSION streamproc UPDATE.")));
	return upstream;
}

/*
 * streamproc_feed_create
 *		See feed.h.  Runs the DDL as the owner of schema streamproc (users
 *		cannot create there), then gives the feed to the current user, who
 *		owns the view it feeds.
 */
Oid
streamproc_feed_create(Oid upstream)
{
	StreamprocView *up = streamproc_view_load(upstream, false);
	Oid owner = GetUserId();
	Oid nsp = get_namespace_oid(FEED_SCHEMA, false);
	char *name = psprintf("feed_new_%d", MyProcPid);
	Relation rows;
	Relation view;
	TupleDesc desc;
	StringInfoData sql;
	StreamOptions opts;
	bool event_time = false;
	bool retracting = up->kind != STREAMPROC_VIEW_APPEND &&
					  (up->window_kind == 0 || (up->window_kind == WINDOW_TUMBLE && up->emit != 'f'));
	const char *option;
	int i;

	/*
	 * An append view: wait for checkpoints writing the upstream's rows;
	 * later ones wait for us.  Final windows are passed on by the workers
	 * from where the feed's position says (streamproc_feed_emit_windows()),
	 * whoever closed them and whenever.  An aggregating view's changes: see
	 * streamproc_feed_attach().
	 */
	if (up->kind == STREAMPROC_VIEW_APPEND)
		rows = table_open(up->rows_table, ShareRowExclusiveLock);
	else
		rows = relation_open(up->groups_table, AccessShareLock);

	/* The upstream view's columns, as its readers see them. */
	view = relation_open(upstream, AccessShareLock);
	desc = RelationGetDescr(view);
	(void)streamproc_stream_options(up->stream, &opts);
	if (up->kind != STREAMPROC_VIEW_APPEND)
	{
		/* Windows over final windows: by the windows' start, in order. */
		opts.event_time = retracting ? NULL : streamproc_window_start_column(up);
		opts.watermark_delay = 0;
	}
	option = up->kind == STREAMPROC_VIEW_APPEND ? STREAMPROC_FEED_OPTION
			 : retracting                       ? STREAMPROC_FEED_CHANGES_OPTION
												: STREAMPROC_FEED_WINDOWS_OPTION;
	initStringInfo(&sql);
	appendStringInfo(&sql, "CREATE FOREIGN TABLE %s.%s (", FEED_SCHEMA, name);
	for (i = 0; i < desc->natts; i++)
	{
		Form_pg_attribute attr = TupleDescAttr(desc, i);

		if (attr->attisdropped)
			continue;
		appendStringInfo(&sql, "%s%s %s", i > 0 ? ", " : "",
						 quote_identifier(NameStr(attr->attname)),
						 streamproc_column_type_sql(attr->atttypid, attr->atttypmod,
													attr->attcollation));
		if (opts.event_time != NULL && attr->atttypid == TIMESTAMPTZOID &&
			strcmp(NameStr(attr->attname), opts.event_time) == 0)
			event_time = true;
		if (retracting && strcmp(NameStr(attr->attname), STREAMPROC_FEED_SIGN_COLUMN) == 0)
			ereport(ERROR,
					(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
					 errmsg("continuous view \"%s\" cannot feed another continuous view",
							get_rel_name(upstream)),
					 errdetail("Its column \"%s\" has the name of the column that tells a change's rows apart.",
							   STREAMPROC_FEED_SIGN_COLUMN),
					 errhint("Rename the column in \"%s\".", get_rel_name(upstream))));
	}
	if (retracting)
		appendStringInfo(&sql, ", %s pg_catalog.int2",
						 quote_identifier(STREAMPROC_FEED_SIGN_COLUMN));
	appendStringInfo(&sql, ") SERVER %s OPTIONS (%s %s",
					 quote_identifier(GetForeignServer(GetForeignTable(up->stream)->serverid)->servername),
					 option,
					 quote_literal_cstr(quote_qualified_identifier(FEED_SCHEMA, RelationGetRelationName(rows))));
	if (event_time)
	{
		/* Windows over the feed: the upstream's events keep their times. */
		appendStringInfo(&sql, ", event_time %s, watermark_delay '" INT64_FORMAT " microseconds'",
						 quote_literal_cstr(opts.event_time), opts.watermark_delay);
		if (opts.idle_timeout >= 0)
			appendStringInfo(&sql, ", idle_timeout '" INT64_FORMAT " microseconds'",
							 opts.idle_timeout);
	}
	appendStringInfo(&sql, "); ALTER FOREIGN TABLE %s.%s OWNER TO %s", FEED_SCHEMA, name,
					 quote_identifier(GetUserNameFromId(owner, false)));
	relation_close(view, AccessShareLock);
	relation_close(rows, NoLock);

	streamproc_feed_creating = true;
	PG_TRY();
	{
		exec_as(streamproc_schema_owner(), sql.data, false, NULL);
	}
	PG_FINALLY();
	{
		streamproc_feed_creating = false;
	}
	PG_END_TRY();
	return get_relname_relid(name, nsp);
}

/*
 * streamproc_feed_attach
 *		See feed.h: name the feed after its view, tie it to the view, add the
 *		trigger, and insert the upstream's current rows (the caller then
 *		writes the view's starting positions, before these rows).
 */
void
streamproc_feed_attach(Oid feed, Oid view, Oid upstream)
{
	StreamprocView *up = streamproc_view_load(upstream, false);
	char *feedname = streamproc_internal_relname("feed", view, 0);
	char *qfeed = quote_qualified_identifier(FEED_SCHEMA, feedname);
	char *trigger = psprintf("streamproc_feed_%u", view);
	char *qrows = up->kind == STREAMPROC_VIEW_APPEND
					  ? quote_qualified_identifier(FEED_SCHEMA, get_rel_name(up->rows_table))
					  : NULL;
	Oid super = streamproc_schema_owner();
	ObjectAddress trig;
	ObjectAddress stream;

	RenameRelationInternal(feed, feedname, true, false);
	CommandCounterIncrement();
	(void)streamproc_link_internal(feed, view);

	/*
	 * Changes: the upstream's change log, started now if it has none (its
	 * first changes are the rows the upstream has), else its row locked
	 * (FOR UPDATE: the writer of the upstream's next changes waits for our
	 * commit, then finds this feed; streamproc_feed_changes()).  Either way
	 * the rows it logged last are those its next changes start from: they
	 * are the backfill.
	 */
	if (streamproc_feed_retracts(feed))
	{
		if (!streamproc_change_log_ensure(upstream))
			exec_as(super,
					psprintf("SELECT 1 FROM streamproc.change_logs"
							 " WHERE view OPERATOR(pg_catalog.=) '%u'::pg_catalog.oid FOR UPDATE",
							 upstream),
					false, NULL);
		insert_by_key(feed, psprintf("%s, 1::pg_catalog.int2", feed_columns_sql(feed, "r")),
					  "m.key_hash",
					  psprintf("streamproc.change_rows m,"
							   " pg_catalog.jsonb_populate_record(NULL::%s, m.row) r"
							   " WHERE m.view OPERATOR(pg_catalog.=) '%u'::pg_catalog.oid",
							   qfeed, upstream));
		return;
	}

	/* Final windows: the workers pass on every closed window, from the first. */
	if (up->kind != STREAMPROC_VIEW_APPEND)
	{
		exec_as(super,
				psprintf("INSERT INTO %s.positions (view, input, position) VALUES (%u, %s, '-infinity')",
						 FEED_SCHEMA, view, quote_literal_cstr(FEED_WINDOWS_INPUT)),
				false, NULL);
		return;
	}

	exec_as(super,
			psprintf("CREATE TRIGGER %s AFTER INSERT ON %s REFERENCING NEW TABLE AS %s"
					 " FOR EACH STATEMENT EXECUTE FUNCTION %s.%s(%s)",
					 quote_identifier(trigger), qrows, FEED_NEW_TABLE, FEED_SCHEMA,
					 "_feed_rows", quote_literal_cstr(qfeed)),
			false, NULL);
	ObjectAddressSet(trig, TriggerRelationId, get_trigger_oid(up->rows_table, trigger, false));
	ObjectAddressSet(stream, RelationRelationId, feed);
	recordDependencyOn(&trig, &stream, DEPENDENCY_AUTO);

	/* Backfill: the rows the upstream view has now. */
	exec_as(super, psprintf("INSERT INTO %s SELECT * FROM %s", qfeed, qrows), true, NULL);
}

/*
 * streamproc_feed_set_owner
 *		See feed.h: as ALTER FOREIGN TABLE, so that stream.c moves the log.
 */
void
streamproc_feed_set_owner(Oid feed, Oid owner)
{
	char *sql = psprintf("ALTER FOREIGN TABLE %s OWNER TO %s",
						 quote_qualified_identifier(get_namespace_name(get_rel_namespace(feed)),
													get_rel_name(feed)),
						 quote_identifier(GetUserNameFromId(owner, false)));

	streamproc_feed_creating = true;
	PG_TRY();
	{
		exec_as(streamproc_schema_owner(), sql, false, NULL);
	}
	PG_FINALLY();
	{
		streamproc_feed_creating = false;
	}
	PG_END_TRY();
}

/*
 * streamproc.feed_rows() trigger
 *		AFTER INSERT ... FOR EACH STATEMENT on an append view's rows table:
 *		insert the statement's new rows into the feed named by the argument.
 */
Datum
streamproc_feed_rows(PG_FUNCTION_ARGS)
{
	TriggerData *td = (TriggerData *)fcinfo->context;
	Trigger *trig;
	List *names;
	Oid feed;
	Relation rel;
	Oid owner;
	char *sql;

	if (!CALLED_AS_TRIGGER(fcinfo))
		ereport(ERROR,
				(errcode(ERRCODE_E_R_I_E_TRIGGER_PROTOCOL_VIOLATED),
				 errmsg("function streamproc._feed_rows() was not called by the trigger manager")));
	trig = td->tg_trigger;
	if (!TRIGGER_FIRED_AFTER(td->tg_event) || !TRIGGER_FIRED_FOR_STATEMENT(td->tg_event) ||
		!TRIGGER_FIRED_BY_INSERT(td->tg_event) || td->tg_newtable == NULL ||
		trig->tgnargs != 1)
		ereport(ERROR,
				(errcode(ERRCODE_E_R_I_E_TRIGGER_PROTOCOL_VIOLATED),
				 errmsg("function streamproc._feed_rows() must be fired AFTER INSERT FOR EACH STATEMENT, with a NEW TABLE and one argument")));

	names = stringToQualifiedNameList(trig->tgargs[0]);
	feed = RangeVarGetRelid(makeRangeVarFromNameList(names), RowExclusiveLock, false);
	if (feed_upstream_rows(feed) != RelationGetRelid(td->tg_relation))
		ereport(ERROR,
				(errcode(ERRCODE_WRONG_OBJECT_TYPE),
				 errmsg("\"%s\" is not the feed of a continuous view over \"%s\"",
						trig->tgargs[0], RelationGetRelationName(td->tg_relation))));
	if (tuplestore_tuple_count(td->tg_newtable) == 0)
		return PointerGetDatum(NULL);

	rel = relation_open(feed, NoLock);
	owner = rel->rd_rel->relowner;
	sql = psprintf("INSERT INTO %s SELECT * FROM %s",
				   quote_qualified_identifier(get_namespace_name(RelationGetNamespace(rel)),
											  RelationGetRelationName(rel)),
				   quote_identifier(trig->tgnewtable));
	relation_close(rel, NoLock);

	exec_as(owner, sql, true, td);
	return PointerGetDatum(NULL);
}

/*
 * streamproc_is_feed
 *		See feed.h.
 */
bool
streamproc_is_feed(Oid stream)
{
	ForeignTable *ft;
	ListCell *lc;

	if (get_rel_relkind(stream) != RELKIND_FOREIGN_TABLE)
		return false;
	ft = GetForeignTable(stream);
	foreach (lc, ft->options)
		if (strcmp(lfirst_node(DefElem, lc)->defname, STREAMPROC_FEED_OPTION) == 0 ||
			strcmp(lfirst_node(DefElem, lc)->defname, STREAMPROC_FEED_WINDOWS_OPTION) == 0 ||
			strcmp(lfirst_node(DefElem, lc)->defname, STREAMPROC_FEED_CHANGES_OPTION) == 0)
			return true;
	return false;
}

/*
 * streamproc_feed_upstream_view
 *		See feed.h.
 */
Oid
streamproc_feed_upstream_view(Oid stream)
{
	StreamOptions opts;
	Oid rel;

	if (!streamproc_stream_options(stream, &opts) ||
		(opts.upstream_rows == NULL && opts.upstream_groups == NULL &&
		 opts.upstream_changes == NULL))
		return InvalidOid;
	rel = RangeVarGetRelid(makeRangeVarFromNameList(stringToQualifiedNameList(opts.upstream_rows     ? opts.upstream_rows
																			  : opts.upstream_groups ? opts.upstream_groups
																									 : opts.upstream_changes)),
						   NoLock, true);
	return OidIsValid(rel) ? streamproc_owning_view(rel) : InvalidOid;
}

/*
 * streamproc_feed_depth
 *		See feed.h: 0 without views over views, else the number of feeds on
 *		the longest chain.  Read as the schema's owner: sync() may be called
 *		by anyone.
 */
int
streamproc_feed_depth(void)
{
	Oid super;
	Oid save_userid;
	int save_sec_context;
	int depth = 0;
	int ret;

	if (!OidIsValid(get_namespace_oid(FEED_SCHEMA, true)))
		return 0;
	super = streamproc_schema_owner();
	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");
	GetUserIdAndSecContext(&save_userid, &save_sec_context);
	SetUserIdAndSecContext(super, save_sec_context | SECURITY_LOCAL_USERID_CHANGE);
	ret = SPI_execute("WITH RECURSIVE edge(down, up) AS ("
					  "  SELECT v.view, u.view FROM streamproc.views v"
					  "  JOIN pg_catalog.pg_foreign_table f ON f.ftrelid = v.stream"
					  "  CROSS JOIN LATERAL pg_catalog.pg_options_to_table(f.ftoptions) o"
					  "  JOIN streamproc.views u"
					  "    ON u.rows_table = pg_catalog.to_regclass(o.option_value)"
					  "    OR u.groups = pg_catalog.to_regclass(o.option_value)"
					  "  WHERE o.option_name IN ('" STREAMPROC_FEED_OPTION "', '" STREAMPROC_FEED_WINDOWS_OPTION "',"
					  "                          '" STREAMPROC_FEED_CHANGES_OPTION "')),"
					  " chain(view, depth) AS ("
					  "  SELECT down, 1 FROM edge"
					  "  UNION ALL"
					  "  SELECT e.down, c.depth + 1 FROM edge e JOIN chain c ON c.view = e.up"
					  "  WHERE c.depth < 1000)"
					  " SELECT pg_catalog.max(depth) FROM chain",
					  true, 1);
	SetUserIdAndSecContext(save_userid, save_sec_context);
	if (ret != SPI_OK_SELECT)
		elog(ERROR, "SPI_execute failed: %s", SPI_result_code_string(ret));
	if (SPI_processed == 1)
	{
		bool isnull;
		Datum d = SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull);

		if (!isnull)
			depth = DatumGetInt32(d);
	}
	SPI_finish();
	return depth;
}

/*
 * streamproc_feed_link
 *		See feed.h: after a restore, the feed of view (its stream) belongs to
 *		it again, and the trigger that fills the feed depends on the feed.
 */
void
streamproc_feed_link(Oid view, Oid stream)
{
	Oid rows;
	Relation rel;
	int i;

	if (!streamproc_is_feed(stream))
		return;
	(void)streamproc_link_internal(stream, view);
	rows = feed_upstream_rows(stream);
	if (!OidIsValid(rows))
		return;
	rel = table_open(rows, AccessShareLock);
	for (i = 0; rel->trigdesc != NULL && i < rel->trigdesc->numtriggers; i++)
	{
		Trigger *trig = &rel->trigdesc->triggers[i];
		ObjectAddress trigaddr;
		ObjectAddress feedaddr;

		if (trig->tgfoid != feed_function(false) || trig->tgnargs != 1 ||
			RangeVarGetRelid(makeRangeVarFromNameList(stringToQualifiedNameList(trig->tgargs[0])),
							 NoLock, true) != stream)
			continue;
		ObjectAddressSet(trigaddr, TriggerRelationId, trig->tgoid);
		ObjectAddressSet(feedaddr, RelationRelationId, stream);
		recordDependencyOn(&trigaddr, &feedaddr, DEPENDENCY_AUTO);
	}
	table_close(rel, AccessShareLock);
}

/*
 * streamproc_feed_emit_windows
 *		See feed.h.  Each feed of final windows has a position, the closing
 *		bound up to which its upstream's windows were passed on.  In one
 *		transaction per feed: lock that position (the workers take turns),
 *		read the bound up to which every slot has closed its windows (as a
 *		reader of the view does), insert the windows between the two into
 *		the feed, by their start, and move the position.  So each closed
 *		window reaches the feed once, in a transaction of its own, whichever
 *		worker closed it last and whatever crashes in between: a window
 *		closed but not passed on is passed on by the next call.  Closed
 *		windows never change (later events are late), so the rows read are
 *		final.
 */
void
streamproc_feed_emit_windows(void)
{
	static uint64 loaded_generation = 0;
	static bool loaded = false;
	static List *feeds = NIL; /* WindowFeed *, in TopMemoryContext */
	uint64 generation = pg_atomic_read_u64(&streamproc_shared->catalog_generation);
	MemoryContext cxt = CurrentMemoryContext;
	ListCell *lc;

	if (!loaded || generation != loaded_generation)
	{
		uint64 i;
		int ret;

		SetCurrentStatementStartTimestamp();
		StartTransactionCommand();
		SPI_connect();
		PushActiveSnapshot(GetTransactionSnapshot());
		ret = SPI_execute("SELECT v.stream::pg_catalog.oid, v.view::pg_catalog.oid, u.view::pg_catalog.oid"
						  " FROM streamproc.views v"
						  " JOIN pg_catalog.pg_foreign_table f ON f.ftrelid = v.stream"
						  " CROSS JOIN LATERAL pg_catalog.pg_options_to_table(f.ftoptions) o"
						  " JOIN streamproc.views u ON u.groups = pg_catalog.to_regclass(o.option_value)"
						  " WHERE o.option_name = '" STREAMPROC_FEED_WINDOWS_OPTION "'",
						  true, 0);
		if (ret != SPI_OK_SELECT)
			elog(ERROR, "could not list the feeds of final windows: %s", SPI_result_code_string(ret));
		list_free_deep(feeds);
		feeds = NIL;
		for (i = 0; i < SPI_processed; i++)
		{
			MemoryContext old = MemoryContextSwitchTo(TopMemoryContext);
			WindowFeed *f = palloc(sizeof(WindowFeed));
			bool isnull;

			f->feed = DatumGetObjectId(SPI_getbinval(SPI_tuptable->vals[i], SPI_tuptable->tupdesc, 1, &isnull));
			f->view = DatumGetObjectId(SPI_getbinval(SPI_tuptable->vals[i], SPI_tuptable->tupdesc, 2, &isnull));
			f->upstream = DatumGetObjectId(SPI_getbinval(SPI_tuptable->vals[i], SPI_tuptable->tupdesc, 3, &isnull));
			feeds = lappend(feeds, f);
			MemoryContextSwitchTo(old);
		}
		SPI_finish();
		PopActiveSnapshot();
		CommitTransactionCommand();
		MemoryContextSwitchTo(cxt);
		loaded = true;
		loaded_generation = generation;
	}

	foreach (lc, feeds)
	{
		WindowFeed *f = lfirst(lc);
		ErrorData *edata = streamproc_run_xact(emit_windows_spi, f);

		/* On error nothing moved: the next call passes the same windows on. */
		if (edata != NULL)
		{
			ereport(LOG,
					(errmsg("could not pass the closed windows of continuous view %u to the feed of view %u: %s",
							f->upstream, f->view, edata->message ? edata->message : ""),
					 errdetail("SQLSTATE %s.  Nothing was lost: they are passed on after the next checkpoint.",
							   unpack_sql_state(edata->sqlerrcode))));
			FreeErrorData(edata);
		}
	}
}

/* emit_windows() connected to SPI, for streamproc_run_xact(). */
static void
emit_windows_spi(void *arg)
{
	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");
	emit_windows((WindowFeed *)arg);
	SPI_finish();
}

/* One feed's turn of streamproc_feed_emit_windows(), connected to SPI. */
static void
emit_windows(WindowFeed *f)
{
	StreamprocView *up = streamproc_view_load(f->upstream, true);
	TimestampTz bound;
	TimestampTz done;
	char *start;
	Relation feed;
	Oid owner;
	Datum args[3];
	bool isnull;
	int ret;

	if (up == NULL || get_rel_name(f->feed) == NULL)
		return;
	if (!streamproc_final_windows_bound(up, &bound))
		return;

	/* Our turn, and what was passed on already. */
	args[0] = ObjectIdGetDatum(f->view);
	args[1] = CStringGetTextDatum(FEED_WINDOWS_INPUT);
	ret = SPI_execute_with_args("SELECT position::pg_catalog.timestamptz FROM streamproc.positions"
								" WHERE view = $1 AND input = $2 FOR UPDATE",
								2, (Oid[]){OIDOID, TEXTOID}, args, NULL, false, 0);
	if (ret != SPI_OK_SELECT)
		elog(ERROR, "could not read the position of feed %u: %s", f->feed, SPI_result_code_string(ret));
	if (SPI_processed != 1)
		return;
	done = DatumGetTimestampTz(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull));
	if (bound <= done)
		return;

	/* The windows that end in (done, bound], by their start. */
	start = streamproc_window_start_column(up);
	if (start == NULL)
		elog(ERROR, "continuous view %u no longer shows the start of its windows", f->upstream);
	feed = relation_open(f->feed, RowExclusiveLock);
	owner = feed->rd_rel->relowner;
	args[0] = TimestampTzGetDatum(done == DT_NOBEGIN ? DT_NOBEGIN : done - up->window_size);
	args[1] = TimestampTzGetDatum(bound - up->window_size);
	exec_args_as(owner,
				 psprintf("INSERT INTO %s SELECT * FROM %s WHERE %s > $1 AND %s <= $2 ORDER BY %s",
						  quote_qualified_identifier(get_namespace_name(RelationGetNamespace(feed)),
													 RelationGetRelationName(feed)),
						  quote_qualified_identifier(get_namespace_name(get_rel_namespace(f->upstream)),
													 get_rel_name(f->upstream)),
						  quote_identifier(start), quote_identifier(start), quote_identifier(start)),
				 args);
	relation_close(feed, NoLock);

	args[0] = ObjectIdGetDatum(f->view);
	args[1] = CStringGetTextDatum(FEED_WINDOWS_INPUT);
	args[2] = CStringGetTextDatum(DatumGetCString(DirectFunctionCall1(timestamptz_out, TimestampTzGetDatum(bound))));
	ret = SPI_execute_with_args("UPDATE streamproc.positions SET position = $3 WHERE view = $1 AND input = $2",
								3, (Oid[]){OIDOID, TEXTOID, TEXTOID}, args, NULL, false, 0);
	if (ret != SPI_OK_UPDATE)
		elog(ERROR, "could not move the position of feed %u: %s", f->feed, SPI_result_code_string(ret));
}

/*
 * streamproc_final_windows_bound
 *		See feed.h.
 */
bool
streamproc_final_windows_bound(StreamprocView *up, TimestampTz *bound)
{
	WindowSpec spec;
	ViewStateInfo info;
	int s;

	memset(&spec, 0, sizeof(spec));
	spec.kind = up->window_kind;
	spec.size = up->window_size;
	spec.slide = up->window_slide;
	spec.origin = up->window_origin;
	spec.lateness = up->allowed_lateness;
	spec.retention = up->retention;
	spec.emit = up->emit;

	/*
	 * The closing bound of every ingest worker's slot, not only of those
	 * that hold state (as a reader takes it): a slot judges lateness by the
	 * windows it closed itself, so one that has not closed a window yet
	 * may still merge events into it, after the others closed their parts.
	 * Every worker reads a shard of the stream and closes its slot's
	 * windows as the view's watermark moves (window_publish_watermarks()),
	 * with or without events, so none holds this back for long.  Nothing
	 * until every slot has loaded its state.
	 */
	*bound = DT_NOEND;
	if (!streamproc_state_info(MyDatabaseId, up->view, &info) || !info.ready)
		return false;
	for (s = 0; s < Min(streamproc_workers, STREAMPROC_MAX_SLOTS); s++)
		*bound = Min(*bound, streamproc_window_close_bound(&spec, info.closed[s]));
	if (TIMESTAMP_NOT_FINITE(*bound))
		return false;
	return true;
}

/*
 * The output column of a windowed view that shows its windows' start (the
 * group column of role WINDOW_ROLE_START), or NULL.
 */
char *
streamproc_window_start_column(StreamprocView *up)
{
	AttrNumber start = 0;
	Relation rel;
	Query *query;
	ListCell *lc;
	char *name = NULL;
	int i;

	for (i = 0; up->window_roles != NULL && i < up->ngroups; i++)
		if (up->window_roles[i] == WINDOW_ROLE_START)
			start = i + 1;
	if (start == 0 || !OidIsValid(up->groups_table))
		return NULL;
	rel = relation_open(up->view, AccessShareLock);
	query = get_view_query(rel);
	foreach (lc, query->targetList)
	{
		TargetEntry *tle = lfirst_node(TargetEntry, lc);
		Var *var = (Var *)tle->expr;

		if (tle->resjunk || !IsA(var, Var) || var->varlevelsup != 0 ||
			var->varattno != start ||
			rt_fetch(var->varno, query->rtable)->relid != up->groups_table)
			continue;
		name = pstrdup(NameStr(TupleDescAttr(RelationGetDescr(rel), tle->resno - 1)->attname));
		break;
	}
	relation_close(rel, AccessShareLock);
	return name;
}

/*
 * streamproc_feed_retracts
 *		See feed.h.
 */
bool
streamproc_feed_retracts(Oid feed)
{
	StreamOptions opts;

	return streamproc_stream_options(feed, &opts) && opts.upstream_changes != NULL;
}

/*
 * streamproc_feed_followers
 *		See feed.h.  Read as the schema's owner: the caller owns the view.
 */
char *
streamproc_feed_followers(Oid upstream)
{
	List *feeds = changes_feeds(upstream);
	StringInfoData list;
	ListCell *lc;

	if (feeds == NIL)
		return NULL;
	initStringInfo(&list);
	foreach (lc, feeds)
		appendStringInfo(&list, "%s%s", list.len > 0 ? ", " : "",
						 DatumGetCString(DirectFunctionCall1(regclassout,
															 ObjectIdGetDatum(streamproc_owning_view(lfirst_oid(lc))))));
	return list.data;
}

/*
 * The feeds of an aggregating view's changes (their upstream_changes
 * option names its groups table), by oid: the order of the views they
 * feed, each created just after its feed.  Not read-only: a fresh
 * snapshot, so that a writer of the log that waited for a CREATE VIEW's
 * lock on its row sees the new feed.
 */
static List *
changes_feeds(Oid upstream)
{
	StreamprocView *up = streamproc_view_load(upstream, true);
	MemoryContext cxt = CurrentMemoryContext;
	List *feeds = NIL;
	Datum arg;
	uint64 i;
	int ret;

	if (up == NULL || !OidIsValid(up->groups_table))
		return NIL;
	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");
	arg = ObjectIdGetDatum(up->groups_table);
	ret = SPI_execute_with_args("SELECT f.ftrelid FROM pg_catalog.pg_foreign_table f"
								" CROSS JOIN LATERAL pg_catalog.pg_options_to_table(f.ftoptions) o"
								" WHERE o.option_name = '" STREAMPROC_FEED_CHANGES_OPTION "'"
								"   AND pg_catalog.to_regclass(o.option_value)::pg_catalog.oid = $1"
								" ORDER BY 1",
								1, (Oid[]){OIDOID}, &arg, NULL, false, 0);
	if (ret != SPI_OK_SELECT)
		elog(ERROR, "could not list the feeds of continuous view %u: %s", upstream,
			 SPI_result_code_string(ret));
	for (i = 0; i < SPI_processed; i++)
	{
		bool isnull;
		Oid feed = DatumGetObjectId(SPI_getbinval(SPI_tuptable->vals[i], SPI_tuptable->tupdesc, 1, &isnull));
		MemoryContext old = MemoryContextSwitchTo(cxt);

		feeds = lappend_oid(feeds, feed);
		MemoryContextSwitchTo(old);
	}
	SPI_finish();
	return feeds;
}

/*
 * The upstream's columns of a feed of changes (all but "$sign"), as
 * alias.column (alias NULL: column), comma-separated.
 */
static char *
feed_columns_sql(Oid feed, const char *alias)
{
	Relation rel = relation_open(feed, AccessShareLock);
	TupleDesc desc = RelationGetDescr(rel);
	StringInfoData buf;
	int i;

	initStringInfo(&buf);
	for (i = 0; i < desc->natts; i++)
	{
		Form_pg_attribute attr = TupleDescAttr(desc, i);

		if (attr->attisdropped ||
			strcmp(NameStr(attr->attname), STREAMPROC_FEED_SIGN_COLUMN) == 0)
			continue;
		appendStringInfo(&buf, "%s%s%s%s", buf.len > 0 ? ", " : "",
						 alias ? alias : "", alias ? "." : "",
						 quote_identifier(NameStr(attr->attname)));
	}
	relation_close(rel, AccessShareLock);
	return buf.data;
}

/*
 * streamproc_feed_changes
 *		See feed.h.  Each feed of the upstream's changes gets changes
 *		(after, last] as retractions: for each change in order, its old row
 *		with "$sign" -1, then its new row with +1 (a group new to the view
 *		has no old row, a group the view no longer shows no new row).  A
 *		feed dropped meanwhile is skipped.
 */
void
streamproc_feed_changes(Oid upstream, int64 after, int64 last)
{
	List *feeds;
	ListCell *lc;

	if (last <= after)
		return;
	feeds = changes_feeds(upstream);
	foreach (lc, feeds)
	{
		Relation rel = try_relation_open(lfirst_oid(lc), RowExclusiveLock);
		char *qfeed;

		if (rel == NULL)
			continue;
		qfeed = quote_qualified_identifier(get_namespace_name(RelationGetNamespace(rel)),
										   RelationGetRelationName(rel));
		relation_close(rel, NoLock);
		insert_by_key(lfirst_oid(lc),
					  psprintf("%s, s.sign", feed_columns_sql(lfirst_oid(lc), "r")),
					  "COALESCE(pg_catalog.jsonb_hash_extended(c.key, 0), 0)",
					  psprintf("streamproc.changes c"
							   " CROSS JOIN LATERAL (VALUES (c.old, -1::pg_catalog.int2), (c.new, 1::pg_catalog.int2)) s(row, sign)"
							   " CROSS JOIN LATERAL pg_catalog.jsonb_populate_record(NULL::%s, s.row) r"
							   " WHERE c.view OPERATOR(pg_catalog.=) '%u'::pg_catalog.oid"
							   "   AND c.position > " INT64_FORMAT " AND c.position <= " INT64_FORMAT
							   "   AND s.row IS NOT NULL"
							   " ORDER BY c.position, s.sign",
							   qfeed, upstream, after, last));
	}
}

/*
 * Insert into a feed of changes "SELECT values FROM from": values are the
 * feed's columns but "$sign", then "$sign"; each row goes into the shard of
 * the feed's log that hash (a bigint of the upstream group's key) picks:
 * every row of one upstream
 * group, old or new, goes to the same shard, so one worker's slot sees both
 * the row and its retraction, and a group whose rows all left is empty in
 * that slot (batch.c drops it).  Straight into the log, as the stream's
 * insert path would (the top-level xid; the shards' workers are woken at
 * commit), because that path spreads rows over shards in blocks.
 */
static void
insert_by_key(Oid feed, const char *values, const char *hash, const char *from)
{
	Oid log = streamproc_stream_log(feed);
	int nshards = streamproc_stream_shards(feed);
	Oid save_userid;
	int save_sec_context;
	uint64 i;
	int ret;
	char *sql;

	sql = psprintf("WITH ins AS (INSERT INTO %s (%s, %s, %s, %s)"
				   " SELECT %s, pg_catalog.pg_current_xact_id(),"
				   "        ((%s %% %d + %d) %% %d)::pg_catalog.int2"
				   " FROM %s"
				   " RETURNING %s)"
				   " SELECT %s, pg_catalog.count(*) FROM ins GROUP BY 1",
				   quote_qualified_identifier(get_namespace_name(get_rel_namespace(log)),
											  get_rel_name(log)),
				   feed_columns_sql(feed, NULL),
				   quote_identifier(STREAMPROC_FEED_SIGN_COLUMN),
				   quote_identifier(STREAM_XID_COLUMN), quote_identifier(STREAM_SHARD_COLUMN),
				   values, hash, nshards, nshards, nshards, from,
				   quote_identifier(STREAM_SHARD_COLUMN), quote_identifier(STREAM_SHARD_COLUMN));
	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");
	GetUserIdAndSecContext(&save_userid, &save_sec_context);
	SetUserIdAndSecContext(streamproc_schema_owner(),
						   save_sec_context | SECURITY_LOCAL_USERID_CHANGE);
	ret = SPI_execute(sql, false, 0);
	if (ret != SPI_OK_SELECT)
		elog(ERROR, "SPI_execute failed: %s: %s", SPI_result_code_string(ret), sql);
	SetUserIdAndSecContext(save_userid, save_sec_context);
	for (i = 0; i < SPI_processed; i++)
	{
		bool isnull;
		int16 shard = DatumGetInt16(SPI_getbinval(SPI_tuptable->vals[i], SPI_tuptable->tupdesc, 1, &isnull));
		int64 n = DatumGetInt64(SPI_getbinval(SPI_tuptable->vals[i], SPI_tuptable->tupdesc, 2, &isnull));

		streamproc_note_stream_insert(feed, shard, n);
	}
	SPI_finish();
	CommandCounterIncrement();
}

/* streamproc._feed_rows(), or InvalidOid before extension version 0.5. */
static Oid
feed_function(bool missing_ok)
{
	List *name = list_make2(makeString(FEED_SCHEMA), makeString("_feed_rows"));

	return LookupFuncName(name, 0, NULL, missing_ok);
}

/* The rows table a feed is fed from, or InvalidOid. */
static Oid
feed_upstream_rows(Oid stream)
{
	StreamOptions opts;

	if (!streamproc_stream_options(stream, &opts) || opts.upstream_rows == NULL)
		return InvalidOid;
	return RangeVarGetRelid(makeRangeVarFromNameList(stringToQualifiedNameList(opts.upstream_rows)),
							NoLock, true);
}

/*
 * Run SQL with two timestamptz parameters as userid, as a writer of feeds;
 * the caller is connected to SPI.
 */
static void
exec_args_as(Oid userid, const char *sql, Datum *args)
{
	Oid save_userid;
	int save_sec_context;
	int ret;

	GetUserIdAndSecContext(&save_userid, &save_sec_context);
	SetUserIdAndSecContext(userid, save_sec_context | SECURITY_LOCAL_USERID_CHANGE);
	streamproc_feeding = true;
	PG_TRY();
	{
		ret = SPI_execute_with_args(sql, 2, (Oid[]){TIMESTAMPTZOID, TIMESTAMPTZOID}, args, NULL,
									false, 0);
		if (ret < 0)
			elog(ERROR, "SPI_execute failed: %s: %s", SPI_result_code_string(ret), sql);
	}
	PG_FINALLY();
	{
		streamproc_feeding = false;
	}
	PG_END_TRY();
	SetUserIdAndSecContext(save_userid, save_sec_context);
}

/*
 * streamproc_schema_owner
 *		See feed.h.
 */
Oid
streamproc_schema_owner(void)
{
	HeapTuple tuple = SearchSysCache1(NAMESPACENAME, CStringGetDatum(FEED_SCHEMA));
	Oid owner;

	if (!HeapTupleIsValid(tuple))
		elog(ERROR, "schema \"%s\" does not exist", FEED_SCHEMA);
	owner = ((Form_pg_namespace)GETSTRUCT(tuple))->nspowner;
	ReleaseSysCache(tuple);
	return owner;
}

/*
 * Run SQL (every name qualified) in SPI as userid; feeding: as a writer of
 * feeds; td: with the trigger's transition tables.
 */
static void
exec_as(Oid userid, const char *sql, bool feeding, TriggerData *td)
{
	Oid save_userid;
	int save_sec_context;
	int ret;

	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");
	if (td != NULL && SPI_register_trigger_data(td) != SPI_OK_TD_REGISTER)
		elog(ERROR, "SPI_register_trigger_data failed");
	GetUserIdAndSecContext(&save_userid, &save_sec_context);
	SetUserIdAndSecContext(userid, save_sec_context | SECURITY_LOCAL_USERID_CHANGE);
	streamproc_feeding = feeding;
	PG_TRY();
	{
		ret = SPI_execute(sql, false, 0);
		if (ret < 0)
			elog(ERROR, "SPI_execute failed: %s: %s", SPI_result_code_string(ret), sql);
	}
	PG_FINALLY();
	{
		streamproc_feeding = false;
	}
	PG_END_TRY();
	SetUserIdAndSecContext(save_userid, save_sec_context);
	SPI_finish();
	CommandCounterIncrement();
}
