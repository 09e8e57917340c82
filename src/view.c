/*-------------------------------------------------------------------------
 *
 * view.c
 *	  Continuous view definition: CREATE VIEW ... WITH (continuous).
 *
 * PostgreSQL has no CREATE CONTINUOUS VIEW, so we take over CREATE VIEW
 * statements whose options contain "continuous" in a ProcessUtility hook,
 * before PostgreSQL would reject the unknown reloption.  For such a
 * statement we
 *
 *	1. analyze the SELECT as the creating user and reject what cannot be
 *	   maintained incrementally (each restriction has its own message, see
 *	   check_query());
 *	2. check that the creating user may read every relation in FROM: the
 *	   workers later run the view's queries as its owner;
 *	3. rewrite the analyzed Query into the worker's batch query: the stream's
 *	   range table entry becomes a subquery over one shard of the stream's
 *	   log ("$shard" = $3) and one range of its blocks (ctid >= $4 and
 *	   < $5), restricted to one micro-batch (log rows whose "$xid" is
 *	   visible in snapshot $1 and not in $2; windowed views also take the
 *	   lateness cutoff as $6), and, for aggregating views, the target
 *	   list becomes the group keys g1..gn followed by one
 *	   streamproc.partial(<aggregate call>) per distinct aggregate a1..am.
 *	   The event query reads one event ($1 its ctid, $2 its shard), the
 *	   source query the rows of a Kafka batch.  The Query is deparsed with
 *	   pg_get_querydef() while search_path is pg_catalog, so the text names
 *	   every other object schema-qualified;
 *	4. create the user-visible view.  An aggregating view reads the foreign
 *	   table streamproc.groups_<view oid> (viewscan.c), whose columns are
 *	   the group keys g1..gn and each aggregate's final value a1..am,
 *	   computed from the partial states of all slots (partial states never
 *	   leave C code, so no SQL caller can hand a crafted state to a
 *	   deserialization function); its output expressions and HAVING are
 *	   the user's, with group expressions and aggregate calls replaced by
 *	   those columns.  An append view reads streamproc.rows_<view oid>, a
 *	   table owned by the view's owner that the workers append to.  Both
 *	   are created under a provisional name and renamed once the view
 *	   exists, belong to the view (an internal dependency), follow its
 *	   owner, cannot be altered on their own, and carry no dependencies on
 *	   types and collations of their own (the view's cover them);
 *	5. record dependencies (view -> every object the query uses, including
 *	   the stream and its columns) and insert the catalog row into
 *	   streamproc.views, and the view's starting positions: a snapshot
 *	   taken under the lock that waits for the stream's inserting
 *	   transactions, so that the view counts exactly the events of
 *	   transactions that commit after it.  The dependencies on columns
 *	   make DROP COLUMN ... CASCADE and DROP TYPE ... CASCADE drop the
 *	   view; stream.c refuses the other changes of a stream's columns
 *	   before PostgreSQL sees these dependencies (whose error for a type
 *	   change would be "unexpected object depending on column").
 *
 * This is the approach of PipelineDB's analyzer.c (worker query over the
 * stream, combiner and view over the materialization) and TimescaleDB's
 * continuous_aggs/create.c (partialize in the materialization query,
 * finalize when read), with our own catalog.
 *
 * A DROP of a continuous view, directly or by cascade (DROP FOREIGN TABLE
 * ... CASCADE, DROP EXTENSION ... CASCADE), deletes its catalog row from
 * the object_access_hook.  CREATE OR REPLACE VIEW of a continuous view and
 * ALTER VIEW forms that would change what it computes are refused; RENAME
 * and SET SCHEMA work because the catalog is keyed by oid.  ALTER VIEW
 * OWNER also moves the view's groups or rows table to the new owner.
 *
 * Catalog access: streamproc.views is an ordinary table of the extension;
 * we read, insert and delete its rows with the genam/heap functions (as
 * TimescaleDB does with its catalog), so neither the creating user nor a
 * user dropping a view needs privileges on it.  Its rows are protected by
 * the locks on the views they describe: DDL on a view holds an
 * AccessExclusiveLock on it.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/genam.h"
#include "access/htup_details.h"
#include "access/relation.h"
#include "access/table.h"
#include "access/xact.h"
#include "catalog/dependency.h"
#include "catalog/indexing.h"
#include "catalog/namespace.h"
#include "catalog/objectaccess.h"
#include "catalog/pg_aggregate.h"
#include "catalog/pg_class.h"
#include "catalog/pg_collation.h"
#include "catalog/pg_depend.h"
#include "catalog/pg_namespace.h"
#include "catalog/pg_proc.h"
#include "catalog/pg_type.h"
#include "catalog/toasting.h"
#include "commands/defrem.h"
#include "commands/extension.h"
#include "commands/tablecmds.h"
#include "commands/view.h"
#include "executor/executor.h"
#include "miscadmin.h"
#include "nodes/makefuncs.h"
#include "nodes/nodeFuncs.h"
#include "optimizer/optimizer.h"
#include "parser/analyze.h"
#include "parser/parse_func.h"
#include "parser/parse_oper.h"
#include "parser/parse_relation.h"
#include "parser/parser.h"
#include "parser/parsetree.h"
#include "rewrite/rewriteHandler.h"
#include "storage/lmgr.h"
#include "tcop/utility.h"
#include "utils/acl.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/catcache.h"
#include "utils/fmgroids.h"
#include "utils/guc.h"
#include "utils/lsyscache.h"
#include "utils/rel.h"
#include "utils/ruleutils.h"
#include "utils/syscache.h"
#include "utils/timestamp.h"
#include "utils/regproc.h"
#include "utils/snapmgr.h"
#include "access/transam.h"
#include "commands/tablecmds.h"
#include "foreign/foreign.h"

#include "aggregates.h"
#include "dedup.h"
#include "feed.h"
#include "retract.h"
#include "stream.h"
#include "streamproc.h"
#include "view.h"
#include "windows.h"

/* The extension's schema and catalog table. */
#define STREAMPROC_SCHEMA "streamproc"
#define VIEWS_TABLE       "views"

/* The server of the foreign tables aggregating views read (viewscan.c). */
#define VIEW_SERVER_NAME "streamproc_view"

/* Columns of streamproc.views, in the order of streamproc--0.1.sql. */
#define Natts_views               22
#define Anum_views_view           1
#define Anum_views_stream         2
#define Anum_views_kind           3
#define Anum_views_batch_query    4
#define Anum_views_event_query    5
#define Anum_views_group_types    6
#define Anum_views_aggregates     7
#define Anum_views_agg_collations 8
#define Anum_views_rows_table     9
#define Anum_views_definition     10
#define Anum_views_agg_argtypes   11
#define Anum_views_source_query   12
#define Anum_views_window_kind    13
#define Anum_views_window_size    14
#define Anum_views_window_slide   15
#define Anum_views_window_origin  16
#define Anum_views_window_roles   17
#define Anum_views_lateness       18
#define Anum_views_retention      19
#define Anum_views_emit           20
#define Anum_views_late_events    21
#define Anum_views_groups         22

/* Which input a generated query reads (build_log_query). */
typedef enum LogQueryInput
{
	INPUT_LOG_BATCH, /* log rows of a snapshot range: $1, $2 pg_snapshot,
					  * of shard $3 int2, in blocks [$4, $5) tid */
	INPUT_LOG_EVENT, /* one log row: $1 tid of shard $2 int2 */
	INPUT_SOURCE     /* a Kafka batch held by the worker: _source_batch() */
} LogQueryInput;

/* The relation alias of the groups table in an aggregating view's body. */
#define READ_ALIAS "s"

/*
 * What check_query() learned about the user's SELECT.  Lists point into
 * query; nothing here is modified after check_query() returns.
 */
typedef struct ViewShape
{
	Query *query;     /* the user's analyzed SELECT */
	Index stream_rti; /* range table index of the stream */
	Oid stream;       /* the stream */
	char kind;        /* STREAMPROC_VIEW_AGGREGATING or _APPEND */
	List *group_tles; /* TargetEntry of each GROUP BY item, in order */
	List *aggs;       /* distinct Aggrefs of target list and HAVING */

	/* Windowed views (check_window()); window_rti is 0 for the others. */
	Index window_rti;      /* range table index of the window function */
	FuncExpr *window_func; /* its call */
	List *window_args;     /* its arguments by position, defaults added */
	WindowSpec window;     /* kind, size, slide, origin and options */
	AttrNumber event_time; /* the stream's event_time column */
	RangeVar *late_events; /* the late_events option, or NULL */
	List *window_options;  /* the window options given (DefElem) */
} ViewShape;

/* State of read_expr_mutator. */
typedef struct ReadMutatorContext
{
	ViewShape *shape;
	bool rewrite; /* false: only check that expressions can be rewritten */
} ReadMutatorContext;

static ProcessUtility_hook_type prev_process_utility = NULL;
static object_access_hook_type prev_object_access = NULL;

static void view_process_utility(PlannedStmt *pstmt, const char *queryString,
								 bool readOnlyTree,
								 ProcessUtilityContext context,
								 ParamListInfo params,
								 QueryEnvironment *queryEnv,
								 DestReceiver *dest, QueryCompletion *qc);
static void view_object_access(ObjectAccessType access, Oid classId,
							   Oid objectId, int subId, void *arg);
static int continuous_option(List *options, List **rest);
static void create_continuous_view(ViewStmt *stmt, List *options,
								   const char *queryString);
static void check_query(Query *query, ViewShape *shape);
static void check_from_item(Query *query, Node *item, bool nullable,
							ViewShape *shape);
static void check_relation(RangeTblEntry *rte, ViewShape *shape);
static char window_function_kind(RangeTblEntry *rte);
static List *window_arguments(FuncExpr *func);
static List *take_window_options(List *options, List **rest);
static void check_window(ViewShape *shape, List *window_options);
static bool window_column_walker(Node *node, ViewShape *shape);
static int window_role(ViewShape *shape, TargetEntry *tle);
static void check_window_grouping(ViewShape *shape);
static void check_count_window(ViewShape *shape, List *window_options);
static void window_view_options(ViewShape *shape, List *window_options);
static Datum window_constant(Node *arg, const char *what, const char *func);
static Oid create_late_table(ViewShape *shape, Oid owner);
static bool find_stream_walker(Node *node, Oid *stream);
static oidvector *agg_argtypes(Aggref *agg);
static void relink_agg_argtypes(StreamprocView *view, Query *query);
static Oid *named_oid_array(Datum array, Oid infunc, int *n);
static char *collation_name(Oid collid);
static bool collect_aggs_walker(Node *node, List **aggs);
static bool stream_column_walker(Node *node, ViewShape *shape);
static char *build_batch_query(ViewShape *shape, LogQueryInput input);
static Query *build_log_query(Oid stream, LogQueryInput input,
							  AttrNumber event_time, bool with_seq,
							  List **colnames);
static List *window_batch_tlist(ViewShape *shape, Query *query);
static Expr *event_time_agg(ViewShape *shape, Oid aggfnoid);
static char *build_read_query(ViewShape *shape, Oid groups_table);
static Oid create_groups_table(ViewShape *shape);
static void forget_column_dependencies(Oid relid);
static void check_internal_table(Oid relid);
static void insert_positions(Oid viewid, Oid stream);
static Node *read_expr_mutator(Node *node, ReadMutatorContext *ctx);
static ObjectAddress define_view(ViewStmt *stmt, const char *sql, bool replace);
static Oid create_rows_table(ViewShape *shape, List *aliases, char **sql);
static void insert_catalog_row(ViewShape *shape, Oid viewid, Oid rows_table,
							   Oid groups_table, const char *batch_query,
							   const char *event_query,
							   const char *source_query,
							   const char *definition, Oid late_table);
static void delete_catalog_row(Oid viewid);
static void check_alter_table(AlterTableStmt *stmt, Oid *owner_view,
							  Oid *new_owner);
static Oid views_catalog(bool missing_ok);
static Oid extension_function(const char *name, int nargs);
static StreamprocView *view_from_tuple(HeapTuple tuple, TupleDesc desc);
static Oid *oid_array(Datum array, int *n);

/*
 * streamproc_view_init
 *		Install the ProcessUtility and object access hooks, chaining the
 *		hooks installed before ours.  Called from _PG_init.
 */
void
streamproc_view_init(void)
{
	prev_process_utility = ProcessUtility_hook;
	ProcessUtility_hook = view_process_utility;
	prev_object_access = object_access_hook;
	object_access_hook = view_object_access;
}

/*
 * view_process_utility
 *		Take over CREATE VIEW ... WITH (continuous); guard DDL that would
 *		change a continuous view; pass everything else on.
 */
static void
view_process_utility(PlannedStmt *pstmt, const char *queryString,
					 bool readOnlyTree, ProcessUtilityContext context,
					 ParamListInfo params, QueryEnvironment *queryEnv,
					 DestReceiver *dest, QueryCompletion *qc)
{
	Node *parsetree = pstmt->utilityStmt;
	Oid owner_view = InvalidOid;
	Oid new_owner = InvalidOid;
	bool renamed_view = false;

	if (streamproc_restoring)
	{
		/*
		 * A dump being restored recreates a continuous view as the
		 * ordinary view over its groups or rows table that it is, and its
		 * catalog row as data; streamproc.post_restore() links them
		 * (restore.c).
		 */
	}
	else if (IsA(parsetree, ViewStmt))
	{
		ViewStmt *stmt = (ViewStmt *)parsetree;
		List *rest;
		int continuous = continuous_option(stmt->options, &rest);

		if (continuous > 0)
		{
			create_continuous_view(stmt, rest, queryString);
			return;
		}

		/* Replacing a continuous view by an ordinary one is refused. */
		if (stmt->replace)
		{
			Oid relid = RangeVarGetRelid(stmt->view, NoLock, true);

			if (OidIsValid(relid) && streamproc_is_continuous_view(relid))
				ereport(ERROR,
						(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
						 errmsg("cannot replace continuous view \"%s\"",
								get_rel_name(relid)),
						 errhint("Drop the view and create it again.")));
		}

		/* "continuous = false": an ordinary view, without the option. */
		if (continuous == 0)
		{
			pstmt = copyObject(pstmt);
			((ViewStmt *)pstmt->utilityStmt)->options = rest;
		}
	}
	else if (IsA(parsetree, AlterTableStmt))
		check_alter_table((AlterTableStmt *)parsetree, &owner_view,
						  &new_owner);
	else if (IsA(parsetree, RenameStmt) && ((RenameStmt *)parsetree)->relation != NULL)
	{
		Oid relid = RangeVarGetRelid(((RenameStmt *)parsetree)->relation, NoLock, true);

		if (OidIsValid(relid))
			check_internal_table(relid);
		/* The workers name the view in their messages: they reload. */
		if (OidIsValid(relid) && streamproc_is_continuous_view(relid))
			renamed_view = true;
	}
	else if (IsA(parsetree, AlterObjectSchemaStmt) &&
			 ((AlterObjectSchemaStmt *)parsetree)->relation != NULL)
	{
		Oid relid = RangeVarGetRelid(((AlterObjectSchemaStmt *)parsetree)->relation, NoLock, true);

		if (OidIsValid(relid))
			check_internal_table(relid);
		if (OidIsValid(relid) && streamproc_is_continuous_view(relid))
			renamed_view = true;
	}

	if (prev_process_utility)
		prev_process_utility(pstmt, queryString, readOnlyTree, context,
							 params, queryEnv, dest, qc);
	else
		standard_ProcessUtility(pstmt, queryString, readOnlyTree, context,
								params, queryEnv, dest, qc);

	if (renamed_view)
		streamproc_catalog_changed();

	/* ALTER VIEW ... OWNER TO: the groups or rows table follows its view. */
	if (OidIsValid(owner_view))
	{
		StreamprocView *view = streamproc_view_load(owner_view, true);

		if (view && OidIsValid(view->rows_table))
			ATExecChangeOwner(view->rows_table, new_owner, true,
							  AccessExclusiveLock);
		if (view && OidIsValid(view->groups_table))
			ATExecChangeOwner(view->groups_table, new_owner, true,
							  AccessExclusiveLock);
		/* ... and so does its feed, whose log its queries read. */
		if (view && streamproc_is_feed(view->stream))
			streamproc_feed_set_owner(view->stream, new_owner);
		/* The workers run its queries as the owner: they reload it. */
		if (view)
			streamproc_catalog_changed();
	}
}

/*
 * continuous_option
 *		Find the "continuous" option of a CREATE VIEW.
 *
 * Returns -1 when there is none, else its value (0 or 1).  *rest is set to
 * the other options.
 */
static int
continuous_option(List *options, List **rest)
{
	ListCell *lc;
	int result = -1;

	*rest = NIL;
	foreach (lc, options)
	{
		DefElem *def = lfirst_node(DefElem, lc);

		if (def->defnamespace == NULL &&
			strcmp(def->defname, "continuous") == 0)
			result = defGetBoolean(def) ? 1 : 0;
		else
			*rest = lappend(*rest, def);
	}
	return result;
}

/*
 * view_object_access
 *		Delete the catalog row of a continuous view when the view is
 *		dropped, however the drop comes about.
 */
static void
view_object_access(ObjectAccessType access, Oid classId, Oid objectId,
				   int subId, void *arg)
{
	if (prev_object_access)
		prev_object_access(access, classId, objectId, subId, arg);

	if (access == OAT_DROP && classId == RelationRelationId && subId == 0 &&
		get_rel_relkind(objectId) == RELKIND_VIEW)
		delete_catalog_row(objectId);
}

/*
 * streamproc_owning_view
 *		See view.h.
 */
Oid
streamproc_owning_view(Oid relid)
{
	Relation rel;
	ScanKeyData key[2];
	SysScanDesc scan;
	HeapTuple tup;
	Oid view = InvalidOid;

	rel = table_open(DependRelationId, AccessShareLock);
	ScanKeyInit(&key[0], Anum_pg_depend_classid, BTEqualStrategyNumber, F_OIDEQ,
				ObjectIdGetDatum(RelationRelationId));
	ScanKeyInit(&key[1], Anum_pg_depend_objid, BTEqualStrategyNumber, F_OIDEQ,
				ObjectIdGetDatum(relid));
	scan = systable_beginscan(rel, DependDependerIndexId, true, NULL, 2, key);
	while (HeapTupleIsValid(tup = systable_getnext(scan)))
	{
		Form_pg_depend dep = (Form_pg_depend)GETSTRUCT(tup);

		if (dep->deptype == DEPENDENCY_INTERNAL && dep->refclassid == RelationRelationId &&
			streamproc_is_continuous_view(dep->refobjid))
		{
			view = dep->refobjid;
			break;
		}
	}
	systable_endscan(scan);
	table_close(rel, AccessShareLock);
	return view;
}

/*
 * check_internal_table
 *		Refuse to rename or alter the groups or rows table of a continuous
 *		view on its own: it follows the view's columns and owner.
 */
static void
check_internal_table(Oid relid)
{
	Oid view;

	/* feed.c moves a feed to the new owner of its view. */
	if (streamproc_feed_creating)
		return;
	if (get_rel_namespace(relid) != get_namespace_oid(STREAMPROC_SCHEMA, true))
		return;
	view = streamproc_owning_view(relid);
	if (OidIsValid(view))
		ereport(ERROR,
				(errcode(ERRCODE_WRONG_OBJECT_TYPE),
				 errmsg("cannot alter \"%s\" on its own", get_rel_name(relid)),
				 errdetail("It holds the results of continuous view \"%s\" and follows its columns and owner.",
						   get_rel_name(view)),
				 errhint("Alter the continuous view instead.")));
}

/*
 * check_alter_table
 *		Refuse ALTER VIEW forms that would change what a continuous view
 *		computes or who may read it.  When the statement changes the owner
 *		of a continuous view, *owner_view and *new_owner are set so that the
 *		caller moves its rows table too once the statement succeeded.
 */
static void
check_alter_table(AlterTableStmt *stmt, Oid *owner_view, Oid *new_owner)
{
	Oid relid;
	ListCell *lc;

	relid = RangeVarGetRelid(stmt->relation, NoLock, true);
	if (!OidIsValid(relid))
		return;
	if (!streamproc_is_continuous_view(relid))
	{
		check_internal_table(relid);
		return;
	}

	foreach (lc, stmt->cmds)
	{
		AlterTableCmd *cmd = lfirst_node(AlterTableCmd, lc);
		ListCell *lc2;

		switch (cmd->subtype)
		{
			case AT_SetRelOptions:
			case AT_ResetRelOptions:
			case AT_ReplaceRelOptions:
				foreach (lc2, (List *)cmd->def)
				{
					DefElem *def = lfirst_node(DefElem, lc2);

					if (strcmp(def->defname, "continuous") == 0 ||
						strcmp(def->defname, "check_option") == 0 ||
						strcmp(def->defname, "security_invoker") == 0)
						ereport(ERROR,
								(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
								 errmsg("cannot change option \"%s\" of continuous view \"%s\"",
										def->defname, get_rel_name(relid)),
								 errhint("Drop the view and create it again.")));
				}
				break;
			case AT_ChangeOwner:
				*owner_view = relid;
				*new_owner = get_rolespec_oid(cmd->newowner, false);
				break;
			default:
				break;
		}
	}
}

/*
 * create_continuous_view
 *		CREATE VIEW ... WITH (continuous): see the file header.
 *
 * options are the statement's reloptions without "continuous".  Runs in
 * the caller's transaction; everything it creates rolls back with it.
 */
static void
create_continuous_view(ViewStmt *stmt, List *options, const char *queryString)
{
	ViewStmt *vstmt;
	ListCell *lc;
	Oid nspid;
	RawStmt *raw;
	Query *query;
	ViewShape shape;
	int nestlevel;
	char *batch_query;
	char *event_query;
	char *source_query;
	char *definition;
	ObjectAddress view;
	Oid rows_table = InvalidOid;
	Oid groups_table = InvalidOid;
	Oid late_table = InvalidOid;
	List *window_options;
	Query *original;
	Oid upstream;
	Index upstream_rti = 0;
	Oid feed = InvalidOid;

	if (!OidIsValid(get_extension_oid("streamproc", true)))
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("extension \"streamproc\" is not installed in this database"),
				 errhint("Run CREATE EXTENSION streamproc.")));
	streamproc_check_preloaded();

	/* Options: check_option and security_invoker do not fit. */
	if (stmt->withCheckOption != NO_CHECK_OPTION)
		ereport(ERROR,
				(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
				 errmsg("continuous views do not support WITH CHECK OPTION"),
				 errhint("Only streamproc writes to a continuous view; remove the check option.")));
	foreach (lc, options)
	{
		DefElem *def = lfirst_node(DefElem, lc);

		if (strcmp(def->defname, "check_option") == 0)
			ereport(ERROR,
					(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
					 errmsg("continuous views do not support WITH CHECK OPTION"),
					 errhint("Only streamproc writes to a continuous view; remove the check option.")));
		if (strcmp(def->defname, "security_invoker") == 0 && defGetBoolean(def))
			ereport(ERROR,
					(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
					 errmsg("continuous views do not support security_invoker"),
					 errhint("Grant SELECT on the continuous view to the roles that read it.")));
	}

	/* Where the view goes; a continuous view cannot be temporary. */
	nspid = RangeVarGetCreationNamespace(stmt->view);
	if (stmt->view->relpersistence == RELPERSISTENCE_TEMP ||
		isTempNamespace(nspid))
		ereport(ERROR,
				(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
				 errmsg("continuous views cannot be temporary"),
				 errhint("Create the continuous view in a permanent schema.")));
	if (stmt->replace)
	{
		Oid old = get_relname_relid(stmt->view->relname, nspid);

		if (OidIsValid(old) && streamproc_is_continuous_view(old))
			ereport(ERROR,
					(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
					 errmsg("cannot replace continuous view \"%s\"",
							stmt->view->relname),
					 errhint("Drop the view and create it again.")));
		if (OidIsValid(old))
			ereport(ERROR,
					(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
					 errmsg("cannot replace view \"%s\" with a continuous view",
							stmt->view->relname),
					 errhint("Drop the view and create it again.")));
	}

	/* 1. Analyze and check the SELECT, as the creating user. */
	raw = makeNode(RawStmt);
	raw->stmt = copyObject(stmt->query);
	raw->stmt_location = -1;
	raw->stmt_len = 0;
	query = parse_analyze_fixedparams(raw, queryString, NULL, 0, NULL);

	/*
	 * A view over a continuous view reads its feed (feed.c), a stream made
	 * for it, in its place; what the user wrote stays its definition.
	 */
	original = query;
	upstream = streamproc_feed_upstream(query, &upstream_rti);
	if (OidIsValid(upstream))
	{
		RangeTblEntry *rte = rt_fetch(upstream_rti, query->rtable);

		(void)ExecCheckRTPerms(query->rtable, true);
		original = copyObject(query);
		feed = streamproc_feed_create(upstream);
		rte->relid = feed;
		rte->relkind = RELKIND_FOREIGN_TABLE;
		if (streamproc_feed_retracts(feed))
			streamproc_retract_rewrite(query, upstream_rti, upstream);
	}
	window_options = take_window_options(options, &options);
	check_query(query, &shape);
	if (shape.window_rti != 0 && OidIsValid(feed) && streamproc_feed_retracts(feed))
		ereport(ERROR,
				(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
				 errmsg("a windowed continuous view cannot read continuous view \"%s\"",
						get_rel_name(upstream)),
				 errdetail("The groups of \"%s\" change as events arrive, and a window's rows cannot leave it.",
						   get_rel_name(upstream)),
				 errhint("Group by the window's start (for example date_trunc('hour', ...)) instead of a window function, or read the stream of \"%s\".",
						 get_rel_name(upstream))));
	check_window(&shape, window_options);

	/* 2. The creating user must be able to read what the view reads. */
	(void)ExecCheckRTPerms(query->rtable, true);

	/*
	 * ShareLock on the stream until commit: it waits for transactions that
	 * are inserting into the stream, and later inserts wait for this one.
	 * An insert decides per statement whether any view reads the stream
	 * (stream.c), so every event committed after the view is seen by it.
	 */
	LockRelationOid(shape.stream, ShareLock);

	/*
	 * 3, 4.  Generate the SQL texts and create the view with search_path set
	 * to pg_catalog only, so that the texts qualify every name outside
	 * pg_catalog and mean the same under any search_path.
	 */
	vstmt = copyObject(stmt);
	vstmt->view->schemaname = get_namespace_name(nspid);
	vstmt->view->relpersistence = RELPERSISTENCE_PERMANENT;
	vstmt->options = options;
	vstmt->replace = false;

	nestlevel = NewGUCNestLevel();
	(void)set_config_option("search_path", "pg_catalog", PGC_USERSET,
							PGC_S_SESSION, GUC_ACTION_SAVE, true, 0, false);

	batch_query = build_batch_query(&shape, INPUT_LOG_BATCH);
	event_query = build_batch_query(&shape, INPUT_LOG_EVENT);
	source_query = build_batch_query(&shape, INPUT_SOURCE);
	definition = pg_get_querydef(original, false);

	if (shape.kind == STREAMPROC_VIEW_AGGREGATING)
	{
		ObjectAddress groups;

		/* The foreign table is named after the view: create, then rename. */
		groups_table = create_groups_table(&shape);
		view = define_view(vstmt, build_read_query(&shape, groups_table), false);
		CommandCounterIncrement();
		RenameRelationInternal(groups_table,
							   streamproc_internal_relname("groups", view.objectId, 0),
							   true, false);
		ObjectAddressSet(groups, RelationRelationId, groups_table);
		recordDependencyOn(&groups, &view, DEPENDENCY_INTERNAL);
	}
	else
	{
		char *body;
		ObjectAddress rows;

		/* The rows table is named after the view: create, then rename. */
		rows_table = create_rows_table(&shape, stmt->aliases, &body);
		CommandCounterIncrement();
		view = define_view(vstmt, body, false);
		CommandCounterIncrement();
		RenameRelationInternal(rows_table,
							   streamproc_internal_relname("rows", view.objectId, 0),
							   true, false);

		ObjectAddressSet(rows, RelationRelationId, rows_table);
		recordDependencyOn(&rows, &view, DEPENDENCY_INTERNAL);
	}

	/* A windowed view's late events go to a table of the view's owner. */
	if (shape.late_events != NULL)
	{
		ObjectAddress late;

		late_table = create_late_table(&shape, GetUserId());
		ObjectAddressSet(late, RelationRelationId, late_table);
		recordDependencyOn(&view, &late, DEPENDENCY_NORMAL);
	}

	AtEOXact_GUC(true, nestlevel);

	/* 5. Dependencies on everything the query uses, and the catalog row. */
	recordDependencyOnExpr(&view, (Node *)original, NIL, DEPENDENCY_NORMAL);
	insert_catalog_row(&shape, view.objectId, rows_table, groups_table, batch_query,
					   event_query, source_query, definition, late_table);
	if (OidIsValid(feed))
		streamproc_feed_attach(feed, view.objectId, upstream);
	insert_positions(view.objectId, shape.stream);
	streamproc_catalog_changed();
}

/*
 * check_query
 *		Reject what a continuous view cannot maintain, and describe the rest
 *		in *shape.  Each rejection is its own ereport: tests and users rely
 *		on the exact messages.
 */
static void
check_query(Query *query, ViewShape *shape)
{
	ListCell *lc;

	memset(shape, 0, sizeof(ViewShape));
	shape->query = query;
	shape->window.retention = -1;
	shape->window.emit = 'u';

	if (query->commandType != CMD_SELECT || query->utilityStmt != NULL)
		ereport(ERROR,
				(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
				 errmsg("continuous views do not support SELECT INTO"),
				 errhint("Remove the INTO clause.")));
	if (query->cteList != NIL)
		ereport(ERROR,
				(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
				 errmsg("continuous views do not support WITH queries"),
				 errhint("Join tables or ordinary views instead.")));
	if (query->setOperations != NULL)
		ereport(ERROR,
				(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
				 errmsg("continuous views do not support UNION, INTERSECT or EXCEPT"),
				 errhint("Create one continuous view per query and combine them in the query that reads them.")));
	if (query->rowMarks != NIL)
		ereport(ERROR,
				(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
				 errmsg("continuous views do not support %s",
						LCS_asString(linitial_node(RowMarkClause, query->rowMarks)->strength)),
				 errhint("Remove the locking clause.")));
	if (query->sortClause != NIL)
		ereport(ERROR,
				(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
				 errmsg("continuous views do not support ORDER BY"),
				 errhint("Put ORDER BY in the query that reads the view.")));
	if (query->limitCount != NULL || query->limitOffset != NULL)
		ereport(ERROR,
				(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
				 errmsg("continuous views do not support LIMIT or OFFSET"),
				 errhint("Put LIMIT and OFFSET in the query that reads the view.")));
	if (query->hasDistinctOn)
		ereport(ERROR,
				(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
				 errmsg("continuous views do not support DISTINCT ON"),
				 errhint("Put DISTINCT ON in the query that reads the view.")));
	if (query->distinctClause != NIL)
		ereport(ERROR,
				(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
				 errmsg("continuous views do not support DISTINCT"),
				 errhint("Use GROUP BY on the same columns instead.")));
	if (query->hasWindowFuncs)
		ereport(ERROR,
				(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
				 errmsg("continuous views do not support window functions"),
				 errhint("Compute window functions in the query that reads the view.")));
	if (query->groupingSets != NIL)
		ereport(ERROR,
				(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
				 errmsg("continuous views do not support GROUPING SETS, ROLLUP or CUBE"),
				 errhint("Create one continuous view per grouping.")));
	if (query->hasSubLinks)
		ereport(ERROR,
				(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
				 errmsg("continuous views do not support subqueries in expressions"),
				 errhint("Join the stream with a table or an ordinary view instead.")));

	/* FROM: exactly one stream, joined only with tables and views. */
	foreach (lc, query->jointree->fromlist)
		check_from_item(query, lfirst(lc), false, shape);
	if (shape->stream_rti == 0)
		ereport(ERROR,
				(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
				 errmsg("a continuous view must read a stream"),
				 errhint("A continuous view reads a stream; use a materialized view for queries over tables only.")));
	if (isQueryUsingTempRelation(query))
		ereport(ERROR,
				(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
				 errmsg("continuous views cannot read temporary tables or views"),
				 errhint("Join a permanent table instead.")));

	/* Stream columns only: no whole-row or system column references. */
	(void)query_tree_walker(query, stream_column_walker, shape, 0);

	/* GROUP BY keys: hashable, not volatile. */
	foreach (lc, query->groupClause)
	{
		SortGroupClause *sgc = lfirst_node(SortGroupClause, lc);
		TargetEntry *tle = get_sortgroupclause_tle(sgc, query->targetList);
		Oid type = exprType((Node *)tle->expr);

		if (contain_volatile_functions((Node *)tle->expr))
			ereport(ERROR,
					(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
					 errmsg("continuous views do not support volatile functions in GROUP BY"),
					 errhint("Group by columns of the stream or by immutable or stable expressions of them.")));
		if (!sgc->hashable)
			ereport(ERROR,
					(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
					 errmsg("continuous views do not support GROUP BY on type %s",
							format_type_be(type)),
					 errdetail("Type %s has no hash operator class.",
							   format_type_be(type)),
					 errhint("Group by an expression of a hashable type, such as a cast to text.")));
		shape->group_tles = lappend(shape->group_tles, tle);
	}

	/* Aggregates of the target list and HAVING, each once. */
	(void)collect_aggs_walker((Node *)query->targetList, &shape->aggs);
	(void)collect_aggs_walker(query->havingQual, &shape->aggs);
	foreach (lc, shape->aggs)
		streamproc_agg_check_combinable(lfirst_node(Aggref, lc));

	if (query->hasAggs || query->groupClause != NIL ||
		query->havingQual != NULL)
	{
		ReadMutatorContext ctx;

		shape->kind = STREAMPROC_VIEW_AGGREGATING;

		/*
		 * Every column outside aggregates must be a group key (PostgreSQL
		 * also accepts columns functionally dependent on a grouped primary
		 * key; the view cannot compute those).  Try the rewrite of the
		 * view's body now to raise that error before anything is created.
		 */
		ctx.shape = shape;
		ctx.rewrite = false;
		(void)read_expr_mutator((Node *)query->targetList, &ctx);
		(void)read_expr_mutator(query->havingQual, &ctx);
	}
	else
		shape->kind = STREAMPROC_VIEW_APPEND;
}

/*
 * check_from_item
 *		Check one FROM item (RangeTblRef or JoinExpr), recording the stream
 *		in *shape.  nullable is true when the item is on the nullable side
 *		of an outer join.
 */
static void
check_from_item(Query *query, Node *item, bool nullable, ViewShape *shape)
{
	if (IsA(item, JoinExpr))
	{
		JoinExpr *join = (JoinExpr *)item;

		switch (join->jointype)
		{
			case JOIN_INNER:
				check_from_item(query, join->larg, nullable, shape);
				check_from_item(query, join->rarg, nullable, shape);
				break;
			case JOIN_LEFT:
				check_from_item(query, join->larg, nullable, shape);
				check_from_item(query, join->rarg, true, shape);
				break;
			case JOIN_RIGHT:
				ereport(ERROR,
						(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
						 errmsg("continuous views do not support RIGHT JOIN"),
						 errhint("Write the join as a LEFT JOIN with the stream on the left side.")));
				break;
			case JOIN_FULL:
				ereport(ERROR,
						(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
						 errmsg("continuous views do not support FULL JOIN"),
						 errhint("Write the join as a LEFT JOIN with the stream on the left side.")));
				break;
			default:
				elog(ERROR, "unexpected join type %d", (int)join->jointype);
		}
	}
	else if (IsA(item, RangeTblRef))
	{
		Index rti = ((RangeTblRef *)item)->rtindex;
		RangeTblEntry *rte = rt_fetch(rti, query->rtable);

		switch (rte->rtekind)
		{
			case RTE_RELATION:
				if (streamproc_is_stream(rte->relid))
				{
					if (shape->stream_rti != 0)
					{
						if (shape->stream == rte->relid)
							ereport(ERROR,
									(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
									 errmsg("a continuous view can read only one stream"),
									 errdetail("Stream \"%s\" appears more than once in FROM.",
											   get_rel_name(rte->relid)),
									 errhint("Create one continuous view per stream.")));
						ereport(ERROR,
								(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
								 errmsg("a continuous view can read only one stream"),
								 errdetail("The query reads streams \"%s\" and \"%s\".",
										   get_rel_name(shape->stream),
										   get_rel_name(rte->relid)),
								 errhint("Create one continuous view per stream.")));
					}
					if (nullable)
						ereport(ERROR,
								(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
								 errmsg("a stream cannot be on the nullable side of an outer join"),
								 errhint("Put the stream on the left side of the LEFT JOIN.")));
					shape->stream_rti = rti;
					shape->stream = rte->relid;
				}
				else
					check_relation(rte, shape);
				break;
			case RTE_SUBQUERY:
				ereport(ERROR,
						(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
						 errmsg("continuous views do not support subqueries in FROM"),
						 errhint("Create an ordinary view for the subquery and join it.")));
				break;
			case RTE_FUNCTION:
				if (window_function_kind(rte) != 0)
				{
					if (shape->window_rti != 0)
						ereport(ERROR,
								(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
								 errmsg("a continuous view can have only one window function"),
								 errhint("Create one continuous view per window.")));
					shape->window_rti = rti;
					shape->window_func = (FuncExpr *)linitial_node(RangeTblFunction, rte->functions)->funcexpr;
					shape->window_args = window_arguments(shape->window_func);
					shape->window.kind = window_function_kind(rte);
					break;
				}
				/* FALLTHROUGH */
			case RTE_TABLEFUNC:
				ereport(ERROR,
						(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
						 errmsg("continuous views do not support functions in FROM"),
						 errhint("Call the function in the target list or in WHERE.")));
				break;
			case RTE_VALUES:
				ereport(ERROR,
						(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
						 errmsg("continuous views do not support VALUES in FROM"),
						 errhint("Put the values in a table and join it.")));
				break;
			default:
				elog(ERROR, "unexpected range table entry kind %d",
					 (int)rte->rtekind);
		}
	}
	else
		elog(ERROR, "unexpected FROM item %d", (int)nodeTag(item));
}

/*
 * check_relation
 *		A relation in FROM that is not a stream: a table, foreign table,
 *		materialized view or view, which must not read a stream itself.
 */
static void
check_relation(RangeTblEntry *rte, ViewShape *shape)
{
	if (rte->relkind == RELKIND_VIEW)
	{
		Relation rel = relation_open(rte->relid, AccessShareLock);
		Oid stream = InvalidOid;

		(void)find_stream_walker((Node *)get_view_query(rel), &stream);
		relation_close(rel, AccessShareLock);
		if (OidIsValid(stream))
			ereport(ERROR,
					(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
					 errmsg("a continuous view must name its stream in FROM"),
					 errdetail("View \"%s\" reads stream \"%s\".",
							   get_rel_name(rte->relid), get_rel_name(stream)),
					 errhint("Use the stream itself in the FROM clause of the continuous view.")));
	}
}

/* ----------------------------------------------------------------
 * Windowed views (see windows.c for the model)
 * ----------------------------------------------------------------
 */

/*
 * window_function_kind
 *		WINDOW_TUMBLE, WINDOW_HOP or WINDOW_SESSION when a FROM function is
 *		one of streamproc's window functions, else 0.
 */
static char
window_function_kind(RangeTblEntry *rte)
{
	RangeTblFunction *rtfunc;
	FuncExpr *func;
	char *name;

	if (list_length(rte->functions) != 1 || rte->funcordinality)
		return 0;
	rtfunc = linitial_node(RangeTblFunction, rte->functions);
	if (!IsA(rtfunc->funcexpr, FuncExpr))
		return 0;
	func = (FuncExpr *)rtfunc->funcexpr;
	if (get_func_namespace(func->funcid) != get_namespace_oid(STREAMPROC_SCHEMA, true))
		return 0;
	name = get_func_name(func->funcid);
	if (strcmp(name, "tumble") == 0)
		return WINDOW_TUMBLE;
	if (strcmp(name, "hop") == 0)
		return WINDOW_HOP;
	if (strcmp(name, "session") == 0)
		return WINDOW_SESSION;
	if (strcmp(name, "count_window") == 0)
		return WINDOW_COUNT;
	return 0;
}

/*
 * window_arguments
 *		A window function call's arguments by position, with named
 *		arguments put in place and defaults added (as the planner does).
 */
static List *
window_arguments(FuncExpr *func)
{
	HeapTuple proctup = SearchSysCache1(PROCOID, ObjectIdGetDatum(func->funcid));
	List *args;

	if (!HeapTupleIsValid(proctup))
		elog(ERROR, "cache lookup failed for function %u", func->funcid);
	args = expand_function_arguments(copyObject(func->args), false, func->funcresulttype,
									 proctup);
	ReleaseSysCache(proctup);
	return args;
}

/*
 * take_window_options
 *		Move the window options (allowed_lateness, late_events, retention,
 *		emit) out of a CREATE VIEW's options: PostgreSQL would reject them.
 */
static List *
take_window_options(List *options, List **rest)
{
	List *result = NIL;
	ListCell *lc;

	*rest = NIL;
	foreach (lc, options)
	{
		DefElem *def = lfirst_node(DefElem, lc);

		if (def->defnamespace == NULL &&
			(strcmp(def->defname, "allowed_lateness") == 0 ||
			 strcmp(def->defname, "late_events") == 0 ||
			 strcmp(def->defname, "retention") == 0 ||
			 strcmp(def->defname, "emit") == 0))
			result = lappend(result, def);
		else
			*rest = lappend(*rest, def);
	}
	return result;
}

/* A constant interval or timestamptz argument of a window function. */
static Datum
window_constant(Node *arg, const char *what, const char *func)
{
	Node *folded = eval_const_expressions(NULL, copyObject(arg));

	if (!IsA(folded, Const) || contain_var_clause(arg))
		ereport(ERROR,
				(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
				 errmsg("the %s of %s() must be a constant", what, func),
				 errhint("Write it as a literal, for example %s.",
						 exprType(arg) == INTERVALOID      ? "interval '1 minute'"
						 : exprType(arg) == TIMESTAMPTZOID ? "timestamptz '2026-01-01 00:00+00'"
														   : "100")));
	if (((Const *)folded)->constisnull)
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("the %s of %s() cannot be null", what, func)));
	return ((Const *)folded)->constvalue;
}

/* An interval option of a windowed view, in microseconds. */
static int64
window_interval_option(DefElem *def, bool allow_zero)
{
	Datum value = DirectFunctionCall3(interval_in, CStringGetDatum(defGetString(def)),
									  ObjectIdGetDatum(InvalidOid), Int32GetDatum(-1));

	return streamproc_interval_usecs(DatumGetIntervalP(value), def->defname, allow_zero);
}

/*
 * check_window
 *		Check a view's window function and window options, and fill in
 *		shape->window.  Views without a window function take no window
 *		option.
 */
static void
check_window(ViewShape *shape, List *window_options)
{
	const char *fname;
	char *event_time;
	StreamOptions opts;
	Var *ts;
	int nargs;

	if (shape->window_rti == 0)
	{
		if (window_options != NIL)
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("option \"%s\" applies only to windowed continuous views",
							linitial_node(DefElem, window_options)->defname),
					 errhint("Add a window function such as streamproc.tumble() to FROM, or remove the option.")));
		return;
	}
	fname = shape->window.kind == WINDOW_TUMBLE  ? "streamproc.tumble"
			: shape->window.kind == WINDOW_HOP   ? "streamproc.hop"
			: shape->window.kind == WINDOW_COUNT ? "streamproc.count_window"
												 : "streamproc.session";

	/* Count windows: processing order, no event time. */
	if (shape->window.kind == WINDOW_COUNT)
	{
		check_count_window(shape, window_options);
		return;
	}

	/* The first argument is the stream's event-time column. */
	(void)streamproc_stream_options(shape->stream, &opts);
	event_time = opts.event_time;
	if (event_time == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
				 errmsg("stream \"%s\" has no event-time column", get_rel_name(shape->stream)),
				 errdetail("%s() assigns events to windows by the stream's event_time column.", fname),
				 errhint("Set it with ALTER FOREIGN TABLE %s OPTIONS (ADD event_time 'column').",
						 quote_identifier(get_rel_name(shape->stream)))));
	shape->event_time = get_attnum(shape->stream, event_time);
	if (shape->event_time == InvalidAttrNumber)
		ereport(ERROR,
				(errcode(ERRCODE_UNDEFINED_COLUMN),
				 errmsg("event_time column \"%s\" of stream \"%s\" does not exist",
						event_time, get_rel_name(shape->stream)),
				 errhint("Set the stream's event_time option to one of its timestamptz columns.")));
	if (get_atttype(shape->stream, shape->event_time) != TIMESTAMPTZOID)
		ereport(ERROR,
				(errcode(ERRCODE_DATATYPE_MISMATCH),
				 errmsg("event_time column \"%s\" of stream \"%s\" has type %s, not timestamp with time zone",
						event_time, get_rel_name(shape->stream),
						format_type_be(get_atttype(shape->stream, shape->event_time))),
				 errhint("Use a timestamptz column for event time.")));
	nargs = list_length(shape->window_args);
	ts = (Var *)linitial(shape->window_args);
	if (!IsA(ts, Var) || ts->varno != shape->stream_rti || ts->varlevelsup != 0 ||
		ts->varattno != shape->event_time)
		ereport(ERROR,
				(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
				 errmsg("the first argument of %s() must be the stream's event_time column \"%s\"",
						fname, event_time),
				 errhint("Windows follow the stream's event time; for processing time, fill a column at arrival and make it the event_time.")));

	/* Sizes: constant, positive, no months; hop size a multiple of slide. */
	shape->window.origin = 0; /* 2000-01-01; replaced below */
	switch (shape->window.kind)
	{
		case WINDOW_TUMBLE:
			shape->window.size = streamproc_interval_usecs(DatumGetIntervalP(window_constant(lsecond(shape->window_args), "size", fname)),
														   "window size", false);
			shape->window.slide = shape->window.size;
			break;
		case WINDOW_HOP:
			shape->window.slide = streamproc_interval_usecs(DatumGetIntervalP(window_constant(lsecond(shape->window_args), "slide", fname)),
															"hop slide", false);
			shape->window.size = streamproc_interval_usecs(DatumGetIntervalP(window_constant(lthird(shape->window_args), "size", fname)),
														   "window size", false);
			if (shape->window.size % shape->window.slide != 0)
				ereport(ERROR,
						(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
						 errmsg("hop window size must be a multiple of its slide"),
						 errhint("Choose a slide that divides the size, for example a size of 10 seconds with a slide of 2 seconds.")));
			break;
		case WINDOW_SESSION:
			shape->window.size = streamproc_interval_usecs(DatumGetIntervalP(window_constant(lsecond(shape->window_args), "gap", fname)),
														   "session gap", false);
			shape->window.slide = shape->window.size;
			break;
	}
	if (shape->window.kind != WINDOW_SESSION)
	{
		int origin_arg = shape->window.kind == WINDOW_TUMBLE ? 3 : 4;

		if (nargs >= origin_arg)
		{
			shape->window.origin = DatumGetTimestampTz(window_constant(list_nth(shape->window_args, origin_arg - 1),
																	   "origin", fname));
			if (TIMESTAMP_NOT_FINITE(shape->window.origin))
				ereport(ERROR,
						(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
						 errmsg("the origin of %s() must be finite", fname)));
		}
		else
			shape->window.origin = -((TimestampTz)(POSTGRES_EPOCH_JDATE - UNIX_EPOCH_JDATE) * USECS_PER_DAY);
	}

	check_window_grouping(shape);

	window_view_options(shape, window_options);
}

/*
 * check_window_grouping
 *		A windowed view groups by its window, whose columns are used nowhere
 *		else.
 */
static void
check_window_grouping(ViewShape *shape)
{
	const char *hint = shape->window.kind == WINDOW_COUNT
						   ? "Add GROUP BY w.window_id (with the window function's alias)."
						   : "Add GROUP BY w.window_start, w.window_end (with the window function's alias).";
	bool grouped = false;
	ListCell *lc;

	if (shape->kind == STREAMPROC_VIEW_AGGREGATING)
		foreach (lc, shape->group_tles)
			if (window_role(shape, lfirst_node(TargetEntry, lc)) != WINDOW_ROLE_KEY)
				grouped = true;
	if (!grouped)
		ereport(ERROR,
				(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
				 errmsg("a windowed continuous view must group by its window"),
				 errhint("%s", hint)));
	foreach (lc, shape->group_tles)
		if (window_role(shape, lfirst_node(TargetEntry, lc)) == WINDOW_ROLE_KEY)
			(void)window_column_walker((Node *)lfirst_node(TargetEntry, lc)->expr, shape);
	(void)window_column_walker((Node *)shape->query->jointree, shape); /* WHERE, ON */
	(void)window_column_walker((Node *)shape->aggs, shape);
}

/*
 * check_count_window
 *		streamproc.count_window(n): n a positive constant, the function a
 *		FROM item of its own (the batch query leaves it out), no event-time
 *		options.
 */
static void
check_count_window(ViewShape *shape, List *window_options)
{
	bool top_level = false;
	ListCell *lc;

	shape->window.size = DatumGetInt64(window_constant(linitial(shape->window_args),
													   "size", "streamproc.count_window"));
	if (shape->window.size <= 0)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("count window size must be positive"),
				 errdetail("It is " INT64_FORMAT ".", shape->window.size)));
	shape->window.slide = shape->window.size;
	foreach (lc, shape->query->jointree->fromlist)
		if (IsA(lfirst(lc), RangeTblRef) &&
			((RangeTblRef *)lfirst(lc))->rtindex == (int)shape->window_rti)
			top_level = true;
	if (!top_level)
		ereport(ERROR,
				(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
				 errmsg("streamproc.count_window() must be an item of FROM of its own"),
				 errhint("Write FROM stream, streamproc.count_window(n) AS w.")));
	check_window_grouping(shape);
	window_view_options(shape, window_options);
}

/*
 * window_view_options
 *		The window options of a windowed view into shape->window (count
 *		windows take only retention and emit).
 */
static void
window_view_options(ViewShape *shape, List *window_options)
{
	ListCell *lc;

	foreach (lc, window_options)
	{
		DefElem *def = lfirst_node(DefElem, lc);

		if (strcmp(def->defname, "retention") == 0)
			shape->window.retention = window_interval_option(def, false);
		else if (strcmp(def->defname, "emit") == 0)
		{
			char *emit = defGetString(def);

			if (strcmp(emit, "updates") != 0 && strcmp(emit, "final") != 0)
				ereport(ERROR,
						(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
						 errmsg("invalid value for option \"emit\": \"%s\"", emit),
						 errhint("Use emit = 'updates' (open windows are visible as they change) or emit = 'final' (only closed windows).")));
			shape->window.emit = emit[0];
		}
		else if (shape->window.kind == WINDOW_COUNT)
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("option \"%s\" does not apply to count windows", def->defname),
					 errdetail("Count windows follow processing order: no event is late."),
					 errhint("Remove the option.")));
		else if (strcmp(def->defname, "allowed_lateness") == 0)
			shape->window.lateness = window_interval_option(def, true);
		else
		{
			/* late_events, resolved now: the view is created with another search_path. */
			RangeVar *rv = makeRangeVarFromNameList(stringToQualifiedNameList(defGetString(def)));
			Oid existing = RangeVarGetRelid(rv, NoLock, true);

			if (rv->schemaname == NULL)
				rv->schemaname = get_namespace_name(OidIsValid(existing)
														? get_rel_namespace(existing)
														: RangeVarGetCreationNamespace(rv));
			shape->late_events = rv;
		}
	}
}

/* The role of a group column of a windowed view (WINDOW_ROLE_*). */
static int
window_role(ViewShape *shape, TargetEntry *tle)
{
	Var *var = (Var *)tle->expr;

	if (shape->window_rti == 0 || !IsA(var, Var) ||
		var->varno != shape->window_rti || var->varlevelsup != 0)
		return WINDOW_ROLE_KEY;
	return var->varattno == 1 ? WINDOW_ROLE_START : WINDOW_ROLE_END;
}

/*
 * window_column_walker
 *		Refuse the window's columns outside the GROUP BY items that are the
 *		columns themselves: the engine computes them per slice or session,
 *		not per event.
 */
static bool
window_column_walker(Node *node, ViewShape *shape)
{
	if (node == NULL)
		return false;
	if (IsA(node, Var) && ((Var *)node)->varno == shape->window_rti &&
		((Var *)node)->varlevelsup == 0)
		ereport(ERROR,
				(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
				 errmsg("continuous views use window_start and window_end only as GROUP BY columns"),
				 errhint("Group by the window's columns themselves, and compute expressions of them in the query that reads the view.")));
	return expression_tree_walker(node, window_column_walker, shape);
}

/*
 * create_late_table
 *		The table of a view's late_events option: created, owned by the
 *		view's owner, when it does not exist, with the stream's columns and
 *		"view", watermark and reason; else it must have those columns and
 *		the owner must be allowed to insert into it.
 */
static Oid
create_late_table(ViewShape *shape, Oid owner)
{
	Oid relid = RangeVarGetRelid(shape->late_events, RowExclusiveLock, true);
	Relation stream = relation_open(shape->stream, AccessShareLock);
	TupleDesc desc = RelationGetDescr(stream);
	int i;

	if (!OidIsValid(relid))
	{
		StringInfoData sql;
		List *raws;

		initStringInfo(&sql);
		appendStringInfo(&sql, "CREATE TABLE %s (",
						 quote_qualified_identifier(shape->late_events->schemaname,
													shape->late_events->relname));
		for (i = 0; i < desc->natts; i++)
		{
			Form_pg_attribute attr = TupleDescAttr(desc, i);

			if (attr->attisdropped)
				continue;
			appendStringInfo(&sql, "%s %s, ", quote_identifier(NameStr(attr->attname)),
							 format_type_with_typemod(attr->atttypid, attr->atttypmod));
		}
		appendStringInfoString(&sql, "view pg_catalog.regclass, watermark pg_catalog.timestamptz,"
									 " reason pg_catalog.text)");
		raws = raw_parser(sql.data, RAW_PARSE_DEFAULT);
		{
			PlannedStmt *pstmt = makeNode(PlannedStmt);

			pstmt->commandType = CMD_UTILITY;
			pstmt->utilityStmt = linitial_node(RawStmt, raws)->stmt;
			pstmt->stmt_location = -1;
			ProcessUtility(pstmt, sql.data, false, PROCESS_UTILITY_SUBCOMMAND, NULL, NULL,
						   None_Receiver, NULL);
		}
		CommandCounterIncrement();
		relid = RangeVarGetRelid(shape->late_events, RowExclusiveLock, false);
	}
	else
	{
		const char *extra[] = {"view", "watermark", "reason"};

		if (get_rel_relkind(relid) != RELKIND_RELATION &&
			get_rel_relkind(relid) != RELKIND_PARTITIONED_TABLE)
			ereport(ERROR,
					(errcode(ERRCODE_WRONG_OBJECT_TYPE),
					 errmsg("late_events \"%s\" is not a table", get_rel_name(relid))));
		for (i = 0; i < desc->natts + 3; i++)
		{
			const char *col = i < desc->natts ? NameStr(TupleDescAttr(desc, i)->attname)
											  : extra[i - desc->natts];

			if (i < desc->natts && TupleDescAttr(desc, i)->attisdropped)
				continue;
			if (get_attnum(relid, col) == InvalidAttrNumber)
				ereport(ERROR,
						(errcode(ERRCODE_UNDEFINED_COLUMN),
						 errmsg("late_events table \"%s\" has no column \"%s\"",
								get_rel_name(relid), col),
						 errhint("The table needs the stream's columns and \"view\", \"watermark\" and \"reason\"; name a new table to have it created.")));
		}
		if (pg_class_aclcheck(relid, owner, ACL_INSERT) != ACLCHECK_OK)
			aclcheck_error(ACLCHECK_NO_PRIV, OBJECT_TABLE, get_rel_name(relid));
	}
	relation_close(stream, AccessShareLock);
	return relid;
}

/*
 * streamproc_late_query
 *		INSERT of a batch of late events (streamproc._source_batch(), worker.c)
 *		into a windowed view's late_events table, $1 the watermark, $2 the
 *		reason.  Built when a worker loads the view, so that it follows the
 *		table's renames.
 */
char *
streamproc_late_query(Oid stream_relid, Oid viewid, Oid late_table)
{
	Relation stream = relation_open(stream_relid, AccessShareLock);
	TupleDesc desc = RelationGetDescr(stream);
	StringInfoData cols;
	StringInfoData coldefs;
	StringInfoData sql;
	int i;

	initStringInfo(&cols);
	initStringInfo(&coldefs);
	initStringInfo(&sql);
	for (i = 0; i < desc->natts; i++)
	{
		Form_pg_attribute attr = TupleDescAttr(desc, i);
		const char *name = quote_identifier(NameStr(attr->attname));

		if (attr->attisdropped)
			continue;
		appendStringInfo(&cols, "%s, ", name);
		appendStringInfo(&coldefs, "%s%s %s", coldefs.len > 0 ? ", " : "", name,
						 format_type_with_typemod(attr->atttypid, attr->atttypmod));
	}
	appendStringInfo(&sql, "INSERT INTO %s (%sview, watermark, reason) SELECT %s%u::pg_catalog.regclass, $1, $2"
						   " FROM %s.\"_source_batch\"() AS b(%s)",
					 quote_qualified_identifier(get_namespace_name(get_rel_namespace(late_table)),
												get_rel_name(late_table)),
					 cols.data, cols.data, viewid, STREAMPROC_SCHEMA, coldefs.data);
	relation_close(stream, AccessShareLock);
	return sql.data;
}

/*
 * find_stream_walker
 *		Find a stream read anywhere in a query tree (a view's definition,
 *		including the views it reads).
 */
static bool
find_stream_walker(Node *node, Oid *stream)
{
	if (node == NULL)
		return false;
	if (IsA(node, RangeTblEntry))
	{
		RangeTblEntry *rte = (RangeTblEntry *)node;

		if (rte->rtekind == RTE_RELATION)
		{
			if (streamproc_is_stream(rte->relid))
			{
				*stream = rte->relid;
				return true;
			}
			/* Not the view's own OLD and NEW entries (inFromCl false). */
			if (rte->relkind == RELKIND_VIEW && rte->inFromCl)
			{
				Relation rel = relation_open(rte->relid, AccessShareLock);
				bool found;

				check_stack_depth();
				found = find_stream_walker((Node *)get_view_query(rel),
										   stream);
				relation_close(rel, AccessShareLock);
				return found;
			}
		}
		return false;
	}
	if (IsA(node, Query))
		return query_tree_walker((Query *)node, find_stream_walker, stream,
								 QTW_EXAMINE_RTES_BEFORE);
	return expression_tree_walker(node, find_stream_walker, stream);
}

/*
 * collect_aggs_walker
 *		Append to *aggs every Aggref of the tree not equal() to one already
 *		there (equal() ignores parse locations), in order of appearance.
 */
static bool
collect_aggs_walker(Node *node, List **aggs)
{
	if (node == NULL)
		return false;
	if (IsA(node, Aggref))
	{
		if (!list_member(*aggs, node))
			*aggs = lappend(*aggs, node);
		return false; /* aggregates do not nest */
	}
	if (IsA(node, GroupingFunc))
		ereport(ERROR,
				(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
				 errmsg("continuous views do not support GROUPING()"),
				 errhint("Without grouping sets GROUPING() is always 0; remove it.")));
	return expression_tree_walker(node, collect_aggs_walker, aggs);
}

/*
 * stream_column_walker
 *		Reject whole-row and system column references to the stream: the
 *		batch query reads the stream through a subquery, which has neither.
 */
static bool
stream_column_walker(Node *node, ViewShape *shape)
{
	if (node == NULL)
		return false;
	if (IsA(node, Var))
	{
		Var *var = (Var *)node;

		if (var->varno == shape->stream_rti && var->varlevelsup == 0)
		{
			if (var->varattno == 0)
				ereport(ERROR,
						(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
						 errmsg("continuous views do not support whole-row references to a stream"),
						 errhint("Name the stream's columns instead.")));
			if (var->varattno < 0)
				ereport(ERROR,
						(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
						 errmsg("continuous views do not support system columns of a stream"),
						 errhint("Name the stream's own columns instead.")));
		}
		return false;
	}
	return expression_tree_walker(node, stream_column_walker, shape);
}

/*
 * build_batch_query
 *		The worker's batch query (event: the event query) as SQL text; see
 *		the file header and view.h.  The caller has set search_path.
 */
static char *
build_batch_query(ViewShape *shape, LogQueryInput input)
{
	Query *query = copyObject(shape->query);
	RangeTblEntry *orig = rt_fetch(shape->stream_rti, query->rtable);
	RangeTblEntry *rte = makeNode(RangeTblEntry);
	List *colnames = NIL;
	List *erefnames = NIL;
	ListCell *lc;
	ListCell *lc2;

	/* The stream becomes a subquery over its log, under the same alias. */
	rte->rtekind = RTE_SUBQUERY;
	rte->subquery = build_log_query(shape->stream, input,
									shape->window_rti && shape->window.kind != WINDOW_COUNT
										? shape->event_time
										: InvalidAttrNumber,
									shape->window.kind == WINDOW_COUNT, &colnames);
	rte->inFromCl = orig->inFromCl;

	/* User-written column aliases stay, dropped columns get their names. */
	forboth(lc, orig->eref->colnames, lc2, colnames)
	{
		char *name = strVal(lfirst(lc));

		erefnames = lappend(erefnames,
							makeString(name[0] == '\0' ? strVal(lfirst(lc2)) : name));
	}
	if (shape->window.kind == WINDOW_COUNT)
		erefnames = lappend(erefnames, makeString(pstrdup(STREAM_SEQ_COLUMN)));
	rte->eref = makeAlias(orig->eref->aliasname, erefnames);
	rte->alias = makeAlias(orig->eref->aliasname,
						   (orig->alias && orig->alias->colnames) ? erefnames : NIL);
	lfirst(list_nth_cell(query->rtable, shape->stream_rti - 1)) = rte;

	if (shape->kind == STREAMPROC_VIEW_AGGREGATING)
	{
		Oid partial_fn = extension_function("partial", 1);
		List *tlist = NIL;
		int resno = 1;
		int i = 1;

		/* g1..gn: the GROUP BY expressions, in order. */
		if (shape->window_rti != 0)
		{
			tlist = window_batch_tlist(shape, query);
			resno = list_length(tlist) + 1;
		}
		else
		{
			foreach (lc, shape->group_tles)
			{
				TargetEntry *tle = lfirst_node(TargetEntry, lc);
				TargetEntry *gtle;

				gtle = makeTargetEntry(copyObject(tle->expr), resno,
									   psprintf("g%d", resno), false);
				gtle->ressortgroupref = tle->ressortgroupref;
				tlist = lappend(tlist, gtle);
				resno++;
			}
		}

		/* a1..am: streamproc.partial(<aggregate call>). */
		foreach (lc, shape->aggs)
		{
			FuncExpr *partial;

			partial = makeFuncExpr(partial_fn, BYTEAOID,
								   list_make1(copyObject(lfirst(lc))),
								   InvalidOid, InvalidOid,
								   COERCE_EXPLICIT_CALL);
			tlist = lappend(tlist,
							makeTargetEntry((Expr *)partial, resno++,
											psprintf("a%d", i++), false));
		}

		/*
		 * Sessions: the batch groups events by bins of one gap, whose events
		 * are surely in one session; s1, s2 are the partial states of a bin's
		 * first and last event time (min(ts), max(ts)), from which the worker
		 * makes [s1, s2 + gap).
		 */
		if (shape->window.kind == WINDOW_SESSION)
		{
			Oid fns[2] = {F_MIN_TIMESTAMPTZ, F_MAX_TIMESTAMPTZ};
			int k;

			for (k = 0; k < 2; k++)
				tlist = lappend(tlist,
								makeTargetEntry((Expr *)makeFuncExpr(partial_fn, BYTEAOID,
																	 list_make1(event_time_agg(shape, fns[k])),
																	 InvalidOid, InvalidOid,
																	 COERCE_EXPLICIT_CALL),
												resno++, psprintf("s%d", k + 1), false));
		}
		query->targetList = tlist;
		query->havingQual = NULL; /* applied when the view is read */
	}

	return pg_get_querydef(query, false);
}

/* min(ts) or max(ts) over the stream's event time, as parse analysis makes it. */
static Expr *
event_time_agg(ViewShape *shape, Oid aggfnoid)
{
	Aggref *agg = makeNode(Aggref);

	agg->aggfnoid = aggfnoid;
	agg->aggtype = TIMESTAMPTZOID;
	agg->aggcollid = InvalidOid;
	agg->inputcollid = InvalidOid;
	agg->aggtranstype = InvalidOid; /* the planner fills it in */
	agg->aggargtypes = list_make1_oid(TIMESTAMPTZOID);
	agg->args = list_make1(makeTargetEntry((Expr *)copyObject(linitial(shape->window_args)),
										   1, NULL, false));
	agg->aggkind = AGGKIND_NORMAL;
	agg->aggsplit = AGGSPLIT_SIMPLE;
	agg->location = -1;
	return (Expr *)agg;
}

/*
 * window_batch_tlist
 *		The group columns of a windowed view's batch query: the window's
 *		start (count windows: the event's number in the batch), then the
 *		other GROUP BY expressions; the query's GROUP BY is rebuilt to match.
 *		The worker derives the window's end (windows.c).
 *
 *		A window function that is an item of FROM of its own is left out of
 *		FROM, and its start computed as a scalar: date_bin(size, ts, origin)
 *		for tumble, date_bin(slide, ts, origin) for hop (the state is kept per
 *		slice of one slide), date_bin(gap, ts, origin) for sessions (a bin of
 *		events, see build_batch_query).  This spares the executor a function
 *		scan and a lateral join per event.  Inside a join it stays, hop
 *		replaced by tumble(ts, slide, origin) (a session's start is then ts).
 */
static List *
window_batch_tlist(ViewShape *shape, Query *query)
{
	RangeTblEntry *wrte = rt_fetch(shape->window_rti, query->rtable);
	RangeTblFunction *rtfunc = linitial_node(RangeTblFunction, wrte->functions);
	Node *ts = copyObject(linitial(shape->window_args));
	Interval *slide = palloc0(sizeof(Interval));
	Const *origin = makeConst(TIMESTAMPTZOID, -1, InvalidOid, sizeof(TimestampTz),
							  TimestampTzGetDatum(shape->window.origin), false, FLOAT8PASSBYVAL);
	Const *slide_const;
	Expr *start;
	List *exprs = NIL;
	List *tlist = NIL;
	ListCell *lc;
	bool top_level = false;
	int resno = 1;

	foreach (lc, query->jointree->fromlist)
		if (IsA(lfirst(lc), RangeTblRef) &&
			((RangeTblRef *)lfirst(lc))->rtindex == (int)shape->window_rti)
		{
			query->jointree->fromlist = foreach_delete_current(query->jointree->fromlist, lc);
			top_level = true;
			break;
		}
	slide->time = shape->window.slide;
	slide_const = makeConst(INTERVALOID, -1, InvalidOid, sizeof(Interval),
							PointerGetDatum(slide), false, false);

	if (shape->window.kind == WINDOW_COUNT)
	{
		/* One row per event (the worker numbers the windows). */
		int natts = list_length(rt_fetch(shape->stream_rti, query->rtable)->eref->colnames);

		start = (Expr *)makeVar(shape->stream_rti, natts, INT8OID, -1, InvalidOid, 0);
	}
	else if (top_level)
		start = (Expr *)makeFuncExpr(F_DATE_BIN_INTERVAL_TIMESTAMPTZ_TIMESTAMPTZ, TIMESTAMPTZOID,
									 list_make3(slide_const, ts, origin), InvalidOid,
									 InvalidOid, COERCE_EXPLICIT_CALL);
	else
	{
		if (shape->window.kind == WINDOW_HOP)
		{
			Oid argtypes[3] = {TIMESTAMPTZOID, INTERVALOID, TIMESTAMPTZOID};
			Oid tumble = LookupFuncName(list_make2(makeString(STREAMPROC_SCHEMA),
												   makeString("tumble")),
										3, argtypes, false);

			rtfunc->funcexpr = (Node *)makeFuncExpr(tumble, RECORDOID,
													list_make3(ts, slide_const, origin),
													InvalidOid, InvalidOid, COERCE_EXPLICIT_CALL);
		}
		start = (Expr *)makeVar(shape->window_rti, 1, TIMESTAMPTZOID, -1, InvalidOid, 0);
	}

	exprs = list_make1(start);
	foreach (lc, shape->group_tles)
		if (window_role(shape, lfirst_node(TargetEntry, lc)) == WINDOW_ROLE_KEY)
			exprs = lappend(exprs, copyObject(lfirst_node(TargetEntry, lc)->expr));

	query->groupClause = NIL;
	foreach (lc, exprs)
	{
		Expr *expr = lfirst(lc);
		TargetEntry *tle = makeTargetEntry(expr, resno, psprintf("g%d", resno), false);
		SortGroupClause *sgc = makeNode(SortGroupClause);
		Oid sortop;
		Oid eqop;
		bool hashable;

		get_sort_group_operators(exprType((Node *)expr), false, true, false,
								 &sortop, &eqop, NULL, &hashable);
		tle->ressortgroupref = resno;
		sgc->tleSortGroupRef = resno;
		sgc->eqop = eqop;
		sgc->sortop = sortop;
		sgc->nulls_first = false;
		sgc->hashable = hashable;
		query->groupClause = lappend(query->groupClause, sgc);
		tlist = lappend(tlist, tle);
		resno++;
	}
	return tlist;
}

/*
 * build_log_query
 *		The analyzed subquery that replaces the stream: its log rows of one
 *		batch ($1, $2 pg_snapshot), of one event ($1 tid), or the rows of a
 *		Kafka batch that the worker holds in memory (streamproc.
 *		_source_batch(), worker.c), all with the same columns.
 *
 * Its columns are the stream's attributes in order, so that the Vars of
 * the user's query keep their attribute numbers; a dropped attribute's
 * position is filled by a NULL named like the dropped attribute.  The
 * names are returned in *colnames.
 */
static Query *
build_log_query(Oid stream, LogQueryInput input, AttrNumber event_time,
				bool with_seq, List **colnames)
{
	Relation rel = relation_open(stream, AccessShareLock);
	TupleDesc desc = RelationGetDescr(rel);
	Oid log = streamproc_stream_log(stream);
	Oid batch_types[5] = {PG_SNAPSHOTOID, PG_SNAPSHOTOID, INT2OID, TIDOID, TIDOID};
	Oid event_types[2] = {TIDOID, INT2OID};
	Oid param_types[6];
	int nparams;
	StringInfoData sql;
	StringInfoData coldefs;
	StringInfoData bounds;
	List *raws;
	Query *query;
	ListCell *lc;
	int i;

	initStringInfo(&sql);
	initStringInfo(&coldefs);
	appendStringInfoString(&sql, "SELECT ");
	for (i = 0; i < desc->natts; i++)
	{
		Form_pg_attribute attr = TupleDescAttr(desc, i);
		const char *name = quote_identifier(NameStr(attr->attname));

		if (i > 0)
			appendStringInfoString(&sql, ", ");
		if (attr->attisdropped)
			appendStringInfo(&sql, "NULL::pg_catalog.int4 AS %s", name);
		else
		{
			appendStringInfoString(&sql, name);
			appendStringInfo(&coldefs, "%s%s %s", coldefs.len > 0 ? ", " : "",
							 name,
							 format_type_with_typemod(attr->atttypid, attr->atttypmod));
			if (OidIsValid(attr->attcollation) &&
				attr->attcollation != get_typcollation(attr->atttypid))
				appendStringInfo(&coldefs, " COLLATE %s",
								 generate_collation_name(attr->attcollation));
		}
		*colnames = lappend(*colnames,
							makeString(pstrdup(NameStr(attr->attname))));
	}
	/* Count windows: the events' processing order (worker.c). */
	if (with_seq)
	{
		appendStringInfo(&sql, ", pg_catalog.row_number() OVER () AS %s",
						 quote_identifier(STREAM_SEQ_COLUMN));
		*colnames = lappend(*colnames, makeString(pstrdup(STREAM_SEQ_COLUMN)));
	}
	/*
	 * The rows of the input: a range of a log shard bounded by snapshots,
	 * one log row, or a Kafka batch; for windowed views, only the events
	 * that are not late, those at or after the cutoff passed as the last
	 * parameter (windows.c).
	 */
	nparams = input == INPUT_LOG_EVENT ? 2 : (input == INPUT_LOG_BATCH ? 5 : 0);
	memcpy(param_types, input == INPUT_LOG_EVENT ? event_types : batch_types,
		   sizeof(Oid) * nparams);
	initStringInfo(&bounds);
	if (input == INPUT_LOG_EVENT)
		appendStringInfo(&bounds, "%s = $2 AND ctid = $1",
						 quote_identifier(STREAM_SHARD_COLUMN));
	else if (input == INPUT_LOG_BATCH)
		appendStringInfo(&bounds,
						 "%s = $3 AND ctid >= $4 AND ctid < $5"
						 " AND pg_catalog.pg_visible_in_snapshot(\"$xid\", $1)"
						 " AND ($2 IS NULL OR NOT pg_catalog.pg_visible_in_snapshot(\"$xid\", $2))",
						 quote_identifier(STREAM_SHARD_COLUMN));
	if (event_time != InvalidAttrNumber)
	{
		param_types[nparams++] = TIMESTAMPTZOID;
		appendStringInfo(&bounds, "%s%s >= $%d", bounds.len > 0 ? " AND " : "",
						 quote_identifier(NameStr(TupleDescAttr(desc, event_time - 1)->attname)),
						 nparams);
	}

	switch (input)
	{
		case INPUT_LOG_BATCH:
		case INPUT_LOG_EVENT:
		{
			char *logname = quote_qualified_identifier(get_namespace_name(get_rel_namespace(log)),
													   get_rel_name(log));
			StreamOptions opts;

			(void)streamproc_stream_options(stream, &opts);
			if (opts.dedup_key == NULL)
			{
				appendStringInfo(&sql, " FROM %s WHERE %s", logname, bounds.data);
				break;
			}

			/*
				 * Deduplication (dedup.c) decides for the rows of the input
				 * only: the bounds are a subquery that the planner keeps
				 * below the call.
				 */
			appendStringInfo(&sql,
							 " FROM (SELECT *, tableoid AS \"$tableoid\", ctid AS \"$ctid\""
							 " FROM %s WHERE %s OFFSET 0) AS l WHERE %s",
							 logname, bounds.data, streamproc_dedup_call_sql(&opts, "l"));
		}
		break;
		case INPUT_SOURCE:
			/* A column definition list cannot be empty. */
			if (coldefs.len == 0)
				appendStringInfoString(&coldefs, "\"$none\" pg_catalog.int4");
			appendStringInfo(&sql, " FROM %s.\"_source_batch\"() AS b(%s)",
							 STREAMPROC_SCHEMA, coldefs.data);
			if (bounds.len > 0)
				appendStringInfo(&sql, " WHERE %s", bounds.data);
			break;
	}

	raws = raw_parser(sql.data, RAW_PARSE_DEFAULT);
	query = parse_analyze_fixedparams(linitial_node(RawStmt, raws), sql.data,
									  param_types, nparams, NULL);

	/* The log must have the stream's columns with the stream's types. */
	i = 0;
	foreach (lc, query->targetList)
	{
		Form_pg_attribute attr;
		TargetEntry *tle = lfirst_node(TargetEntry, lc);

		if (i >= desc->natts)
			break; /* "$seq" */
		attr = TupleDescAttr(desc, i++);

		if (!attr->attisdropped &&
			exprType((Node *)tle->expr) != attr->atttypid)
			elog(ERROR, "column \"%s\" of log table \"%s\" does not have the stream's type",
				 NameStr(attr->attname), get_rel_name(log));
	}

	relation_close(rel, AccessShareLock);
	return query;
}

/*
 * build_read_query
 *		The body of an aggregating view as SQL text:
 *
 *		SELECT <user's output expressions> FROM streamproc.groups_<viewid> s
 *		  [WHERE <user's HAVING>]
 *
 * with every group expression replaced by s.gK and every aggregate call by
 * s.aJ: the groups table returns each aggregate's final value.  The caller has
 * set search_path.
 */
static char *
build_read_query(ViewShape *shape, Oid groups_table)
{
	Query *query = makeNode(Query);
	RangeTblEntry *rte = makeNode(RangeTblEntry);
	RangeTblRef *rtr = makeNode(RangeTblRef);
	ReadMutatorContext ctx;
	List *colnames = NIL;
	ListCell *lc;
	int resno = 1;
	int i;

	for (i = 1; i <= list_length(shape->group_tles); i++)
		colnames = lappend(colnames, makeString(psprintf("g%d", i)));
	for (i = 1; i <= list_length(shape->aggs); i++)
		colnames = lappend(colnames, makeString(psprintf("a%d", i)));

	rte->rtekind = RTE_RELATION;
	rte->relid = groups_table;
	rte->relkind = RELKIND_FOREIGN_TABLE;
	rte->rellockmode = AccessShareLock;
	rte->alias = makeAlias(READ_ALIAS, NIL);
	rte->eref = makeAlias(READ_ALIAS, colnames);
	rte->inh = true;
	rte->inFromCl = true;
	rte->requiredPerms = ACL_SELECT;
	rtr->rtindex = 1;

	ctx.shape = shape;
	ctx.rewrite = true;

	query->commandType = CMD_SELECT;
	query->querySource = QSRC_ORIGINAL;
	query->canSetTag = true;
	query->rtable = list_make1(rte);
	query->jointree = makeFromExpr(list_make1(rtr),
								   read_expr_mutator(shape->query->havingQual,
													 &ctx));
	foreach (lc, shape->query->targetList)
	{
		TargetEntry *tle = lfirst_node(TargetEntry, lc);

		if (tle->resjunk)
			continue;
		query->targetList =
			lappend(query->targetList,
					makeTargetEntry((Expr *)read_expr_mutator((Node *)tle->expr,
															  &ctx),
									resno++, pstrdup(tle->resname), false));
	}

	return pg_get_querydef(query, false);
}

/*
 * forget_column_dependencies
 *		Drop the dependencies of the columns of relid (a view's groups or
 *		rows table) on their types and collations.  The view's own columns
 *		have the same ones, so nothing can drop a type or collation without
 *		the view, and the table goes with the view (an internal dependency).
 *		Kept, they would make DROP TYPE ... CASCADE remove the table's
 *		column after the table itself went with the view, which fails
 *		("could not open relation"): the column's dependency is found
 *		before the view's.
 */
static void
forget_column_dependencies(Oid relid)
{
	deleteDependencyRecordsForClass(RelationRelationId, relid, TypeRelationId,
									DEPENDENCY_NORMAL);
	deleteDependencyRecordsForClass(RelationRelationId, relid, CollationRelationId,
									DEPENDENCY_NORMAL);
}

/*
 * create_groups_table
 *		Create the foreign table an aggregating view reads (viewscan.c): its
 *		group keys g1..gn and aggregate results a1..am, owned by the current
 *		user (the view's owner), under a provisional name in schema
 *		streamproc, created as the schema's owner on behalf of the current
 *		user (see create_rows_table).
 */
static Oid
create_groups_table(ViewShape *shape)
{
	CreateForeignTableStmt *create = makeNode(CreateForeignTableStmt);
	char *name = psprintf("groups_new_%d", MyProcPid);
	Oid owner = GetUserId();
	Oid save_userid;
	int save_sec_context;
	HeapTuple tuple;
	Oid nspowner;
	ObjectAddress address;
	ListCell *lc;
	int i = 1;

	foreach (lc, shape->group_tles)
	{
		Node *expr = (Node *)lfirst_node(TargetEntry, lc)->expr;

		create->base.tableElts = lappend(create->base.tableElts,
										 makeColumnDef(psprintf("g%d", i++), exprType(expr),
													   exprTypmod(expr), exprCollation(expr)));
	}
	i = 1;
	foreach (lc, shape->aggs)
	{
		Aggref *agg = lfirst_node(Aggref, lc);

		create->base.tableElts = lappend(create->base.tableElts,
										 makeColumnDef(psprintf("a%d", i++), agg->aggtype, -1,
													   agg->aggcollid));
	}
	create->base.relation = makeRangeVar(STREAMPROC_SCHEMA, name, -1);
	create->base.oncommit = ONCOMMIT_NOOP;
	create->servername = VIEW_SERVER_NAME;
	create->options = NIL;

	tuple = SearchSysCache1(NAMESPACENAME, CStringGetDatum(STREAMPROC_SCHEMA));
	if (!HeapTupleIsValid(tuple))
		elog(ERROR, "schema \"%s\" does not exist", STREAMPROC_SCHEMA);
	nspowner = ((Form_pg_namespace)GETSTRUCT(tuple))->nspowner;
	ReleaseSysCache(tuple);

	GetUserIdAndSecContext(&save_userid, &save_sec_context);
	SetUserIdAndSecContext(nspowner,
						   save_sec_context | SECURITY_LOCAL_USERID_CHANGE);
	address = DefineRelation(&create->base, RELKIND_FOREIGN_TABLE, owner, NULL, NULL);
	CreateForeignTable(create, address.objectId);
	forget_column_dependencies(address.objectId);
	CommandCounterIncrement();
	SetUserIdAndSecContext(save_userid, save_sec_context);

	return address.objectId;
}

/*
 * read_expr_mutator
 *		Rewrite an output expression or HAVING of an aggregating view over
 *		the groups table's columns (see build_read_query).  With
 *		ctx->rewrite false it only checks that the expression can be
 *		rewritten.
 */
static Node *
read_expr_mutator(Node *node, ReadMutatorContext *ctx)
{
	ViewShape *shape = ctx->shape;
	ListCell *lc;
	int i;

	if (node == NULL)
		return NULL;

	if (IsA(node, Aggref))
	{
		Aggref *agg = (Aggref *)node;
		int ngroups = list_length(shape->group_tles);

		i = 0;
		foreach (lc, shape->aggs)
		{
			if (equal(node, lfirst(lc)))
				break;
			i++;
		}
		Assert(i < list_length(shape->aggs));
		if (!ctx->rewrite)
			return node;
		/* The groups table returns the aggregate's final value. */
		return (Node *)makeVar(1, ngroups + i + 1, agg->aggtype, -1,
							   agg->aggcollid, 0);
	}

	i = 1;
	foreach (lc, shape->group_tles)
	{
		Node *expr = (Node *)lfirst_node(TargetEntry, lc)->expr;

		if (equal(node, expr))
			return (Node *)makeVar(1, i, exprType(expr), exprTypmod(expr),
								   exprCollation(expr), 0);
		i++;
	}

	if (IsA(node, Var))
		ereport(ERROR,
				(errcode(ERRCODE_GROUPING_ERROR),
				 errmsg("continuous views must group by every column used outside aggregate functions"),
				 errhint("Add the column to GROUP BY.")));

	return expression_tree_mutator(node, read_expr_mutator, ctx);
}

/*
 * define_view
 *		Run CREATE [OR REPLACE] VIEW with stmt's name and options and sql
 *		as its body.
 */
static ObjectAddress
define_view(ViewStmt *stmt, const char *sql, bool replace)
{
	ViewStmt *vstmt = copyObject(stmt);
	List *raws = raw_parser(sql, RAW_PARSE_DEFAULT);

	vstmt->query = linitial_node(RawStmt, raws)->stmt;
	vstmt->replace = replace;
	return DefineView(vstmt, sql, -1, 0);
}

/*
 * create_rows_table
 *		Create the table an append view's rows go to, with the view's output
 *		columns, owned by the current user (the view's owner), under a
 *		provisional name in schema streamproc.  Returns its oid and, in
 *		*sql, the body of the view over it.
 *
 * The current user usually cannot create tables in schema streamproc, so
 * the table is created as the schema's owner on behalf of the current user.
 */
static Oid
create_rows_table(ViewShape *shape, List *aliases, char **sql)
{
	CreateStmt *create = makeNode(CreateStmt);
	StringInfoData body;
	ListCell *lc;
	ListCell *alias = list_head(aliases);
	char *name = psprintf("rows_new_%d", MyProcPid);
	Oid owner = GetUserId();
	Oid save_userid;
	int save_sec_context;
	HeapTuple tuple;
	Oid nspowner;
	ObjectAddress address;

	initStringInfo(&body);
	appendStringInfoString(&body, "SELECT ");
	foreach (lc, shape->query->targetList)
	{
		TargetEntry *tle = lfirst_node(TargetEntry, lc);
		Node *expr = (Node *)tle->expr;
		const char *colname = tle->resname;

		if (tle->resjunk)
			continue;
		if (alias != NULL)
		{
			colname = strVal(lfirst(alias));
			alias = lnext(aliases, alias);
		}
		create->tableElts = lappend(create->tableElts,
									makeColumnDef(colname, exprType(expr),
												  exprTypmod(expr),
												  exprCollation(expr)));
		appendStringInfo(&body, "%sr.%s", list_length(create->tableElts) > 1 ? ", " : "",
						 quote_identifier(colname));
	}
	appendStringInfo(&body, " FROM %s.%s r", STREAMPROC_SCHEMA, name);
	*sql = body.data;

	create->relation = makeRangeVar(STREAMPROC_SCHEMA, name, -1);
	create->oncommit = ONCOMMIT_NOOP;

	tuple = SearchSysCache1(NAMESPACENAME, CStringGetDatum(STREAMPROC_SCHEMA));
	if (!HeapTupleIsValid(tuple))
		elog(ERROR, "schema \"%s\" does not exist", STREAMPROC_SCHEMA);
	nspowner = ((Form_pg_namespace)GETSTRUCT(tuple))->nspowner;
	ReleaseSysCache(tuple);

	GetUserIdAndSecContext(&save_userid, &save_sec_context);
	SetUserIdAndSecContext(nspowner,
						   save_sec_context | SECURITY_LOCAL_USERID_CHANGE);
	address = DefineRelation(create, RELKIND_RELATION, owner, NULL, NULL);
	forget_column_dependencies(address.objectId);
	CommandCounterIncrement();
	NewRelationCreateToastTable(address.objectId, (Datum)0);
	SetUserIdAndSecContext(save_userid, save_sec_context);

	return address.objectId;
}

/*
 * A transaction id of the snapshot as the 64-bit id pg_snapshot shows, in
 * the epoch the current next id implies (as xid8funcs.c does).
 */
static uint64
full_xid(TransactionId xid)
{
	FullTransactionId next = ReadNextFullTransactionId();
	uint32 epoch = EpochFromFullTransactionId(next);

	if (!TransactionIdIsNormal(xid))
		return (uint64)xid;
	if (xid > XidFromFullTransactionId(next))
		epoch--;
	return ((uint64)epoch << 32) | xid;
}

static int
uint64_cmp(const void *a, const void *b)
{
	uint64 x = *(const uint64 *)a;
	uint64 y = *(const uint64 *)b;

	return x < y ? -1 : (x > y ? 1 : 0);
}

/*
 * insert_positions
 *		A new view's position in every shard of its stream's log: a snapshot
 *		taken now, while CREATE VIEW holds its ShareLock on the stream (no
 *		transaction is inserting into the stream meanwhile), so that the view
 *		counts exactly the events of transactions that commit after it does
 *		(positions.c).  A fresh snapshot, not the statement's: transactions
 *		the lock waited for must be in it.
 */
static void
insert_positions(Oid viewid, Oid stream)
{
	Snapshot snap = GetLatestSnapshot();
	StringInfoData text;
	uint64 *xips = palloc(sizeof(uint64) * (snap->xcnt + 1));
	FullTransactionId own;
	int xcnt;
	Oid nsp = get_namespace_oid(STREAMPROC_SCHEMA, false);
	Relation rel;
	int nshards = streamproc_stream_shards(stream);
	int i;
	int k;

	initStringInfo(&text);
	appendStringInfo(&text, UINT64_FORMAT ":" UINT64_FORMAT ":",
					 full_xid(snap->xmin), full_xid(snap->xmax));
	for (i = 0; i < snap->xcnt; i++)
		xips[i] = full_xid(snap->xip[i]);
	xcnt = snap->xcnt;

	/*
	 * Our own transaction counts as in progress (a snapshot leaves it out of
	 * its list): what it inserts into the stream after CREATE VIEW, such as
	 * the backfill of a feed (feed.c), is the view's first batch.
	 */
	own = GetTopFullTransactionIdIfAny();
	if (FullTransactionIdIsValid(own) &&
		U64FromFullTransactionId(own) < full_xid(snap->xmax))
		xips[xcnt++] = U64FromFullTransactionId(own);
	qsort(xips, xcnt, sizeof(uint64), uint64_cmp);
	for (i = 0; i < xcnt; i++)
		if (i == 0 || xips[i] != xips[i - 1])
			appendStringInfo(&text, "%s" UINT64_FORMAT, i > 0 ? "," : "", xips[i]);

	rel = table_open(get_relname_relid("positions", nsp), RowExclusiveLock);
	for (k = 0; k < nshards; k++)
	{
		Datum values[3];
		bool nulls[3] = {false, false, false};
		HeapTuple tuple;

		values[0] = ObjectIdGetDatum(viewid);
		values[1] = CStringGetTextDatum(psprintf("log %d", k));
		values[2] = CStringGetTextDatum(text.data);
		tuple = heap_form_tuple(RelationGetDescr(rel), values, nulls);
		CatalogTupleInsert(rel, tuple);
	}
	table_close(rel, RowExclusiveLock);
	CommandCounterIncrement();
}

/*
 * insert_catalog_row
 *		Insert the view's row into streamproc.views.
 */
static void
insert_catalog_row(ViewShape *shape, Oid viewid, Oid rows_table, Oid groups_table,
				   const char *batch_query, const char *event_query,
				   const char *source_query, const char *definition,
				   Oid late_table)
{
	Relation rel = table_open(views_catalog(false), RowExclusiveLock);
	Datum values[Natts_views];
	bool nulls[Natts_views];
	int ngroups = list_length(shape->group_tles);
	int naggs = list_length(shape->aggs);
	Datum *group_types = palloc0(sizeof(Datum) * (ngroups + 1));
	Datum *aggregates = palloc0(sizeof(Datum) * (naggs + 1));
	Datum *collations = palloc0(sizeof(Datum) * (naggs + 1));
	Datum *argtypes = palloc0(sizeof(Datum) * (naggs + 1));
	ListCell *lc;
	int i;
	HeapTuple tuple;

	/*
	 * 0.2 stores aggregates and collations by name; a database not updated
	 * yet has 0.1's regprocedure[] and oid[] (see named_oid_array()).
	 */
	bool by_name = TupleDescAttr(RelationGetDescr(rel), Anum_views_aggregates - 1)->atttypid ==
				   TEXTARRAYOID;

	if (RelationGetDescr(rel)->natts != Natts_views)
		elog(ERROR, "catalog table streamproc.views has an unexpected shape");

	i = 0;
	foreach (lc, shape->group_tles)
		group_types[i++] = ObjectIdGetDatum(exprType((Node *)lfirst_node(TargetEntry, lc)->expr));
	i = 0;
	foreach (lc, shape->aggs)
	{
		Aggref *agg = lfirst_node(Aggref, lc);

		argtypes[i] = PointerGetDatum(agg_argtypes(agg));
		if (by_name)
		{
			aggregates[i] = CStringGetTextDatum(format_procedure_qualified(agg->aggfnoid));
			collations[i++] = CStringGetTextDatum(collation_name(agg->inputcollid));
		}
		else
		{
			aggregates[i] = ObjectIdGetDatum(agg->aggfnoid);
			collations[i++] = ObjectIdGetDatum(agg->inputcollid);
		}
	}

	memset(nulls, false, sizeof(nulls));
	values[Anum_views_view - 1] = ObjectIdGetDatum(viewid);
	values[Anum_views_stream - 1] = ObjectIdGetDatum(shape->stream);
	values[Anum_views_kind - 1] = CharGetDatum(shape->kind);
	values[Anum_views_batch_query - 1] = CStringGetTextDatum(batch_query);
	values[Anum_views_event_query - 1] = CStringGetTextDatum(event_query);
	values[Anum_views_source_query - 1] = CStringGetTextDatum(source_query);
	values[Anum_views_group_types - 1] =
		PointerGetDatum(construct_array(group_types, ngroups, REGTYPEOID,
										sizeof(Oid), true, TYPALIGN_INT));
	if (by_name)
	{
		values[Anum_views_aggregates - 1] =
			PointerGetDatum(construct_array(aggregates, naggs, TEXTOID, -1, false, TYPALIGN_INT));
		values[Anum_views_agg_collations - 1] =
			PointerGetDatum(construct_array(collations, naggs, TEXTOID, -1, false, TYPALIGN_INT));
	}
	else
	{
		values[Anum_views_aggregates - 1] =
			PointerGetDatum(construct_array(aggregates, naggs, REGPROCEDUREOID,
											sizeof(Oid), true, TYPALIGN_INT));
		values[Anum_views_agg_collations - 1] =
			PointerGetDatum(construct_array(collations, naggs, OIDOID,
											sizeof(Oid), true, TYPALIGN_INT));
	}
	values[Anum_views_rows_table - 1] = ObjectIdGetDatum(rows_table);
	nulls[Anum_views_rows_table - 1] = !OidIsValid(rows_table);
	values[Anum_views_groups - 1] = ObjectIdGetDatum(groups_table);
	nulls[Anum_views_groups - 1] = !OidIsValid(groups_table);
	values[Anum_views_definition - 1] = CStringGetTextDatum(definition);
	values[Anum_views_agg_argtypes - 1] =
		PointerGetDatum(construct_array(argtypes, naggs, OIDVECTOROID,
										-1, false, TYPALIGN_INT));

	if (shape->window_rti != 0)
	{
		Datum *roles = palloc0(sizeof(Datum) * (ngroups + 1));

		i = 0;
		foreach (lc, shape->group_tles)
			roles[i++] = Int16GetDatum(window_role(shape, lfirst_node(TargetEntry, lc)));
		values[Anum_views_window_kind - 1] = CharGetDatum(shape->window.kind);
		values[Anum_views_window_size - 1] = Int64GetDatum(shape->window.size);
		values[Anum_views_window_slide - 1] = Int64GetDatum(shape->window.slide);
		values[Anum_views_window_origin - 1] = TimestampTzGetDatum(shape->window.origin);
		nulls[Anum_views_window_origin - 1] = shape->window.kind == WINDOW_SESSION ||
											  shape->window.kind == WINDOW_COUNT;
		values[Anum_views_window_roles - 1] =
			PointerGetDatum(construct_array(roles, ngroups, INT2OID, sizeof(int16),
											true, TYPALIGN_SHORT));
		values[Anum_views_retention - 1] = Int64GetDatum(shape->window.retention);
		nulls[Anum_views_retention - 1] = shape->window.retention < 0;
	}
	else
	{
		nulls[Anum_views_window_kind - 1] = true;
		nulls[Anum_views_window_size - 1] = true;
		nulls[Anum_views_window_slide - 1] = true;
		nulls[Anum_views_window_origin - 1] = true;
		nulls[Anum_views_window_roles - 1] = true;
		nulls[Anum_views_retention - 1] = true;
	}
	values[Anum_views_lateness - 1] = Int64GetDatum(shape->window.lateness);
	values[Anum_views_emit - 1] = CharGetDatum(shape->window.emit);
	values[Anum_views_late_events - 1] = ObjectIdGetDatum(late_table);
	nulls[Anum_views_late_events - 1] = !OidIsValid(late_table);

	tuple = heap_form_tuple(RelationGetDescr(rel), values, nulls);
	CatalogTupleInsert(rel, tuple);
	heap_freetuple(tuple);
	table_close(rel, RowExclusiveLock);
}

/* The actual argument types of an aggregate call (agg_argtypes). */
static oidvector *
agg_argtypes(Aggref *agg)
{
	Oid *types = palloc0(sizeof(Oid) * (list_length(agg->aggargtypes) + 1));
	ListCell *lc;
	int n = 0;

	foreach (lc, agg->aggargtypes)
		types[n++] = lfirst_oid(lc);
	return buildoidvector(types, n);
}

/*
 * Rewrite a restored view's agg_argtypes from its re-analyzed query: they
 * are oids (an oidvector per aggregate), which a restore changes for types
 * that are not built in (max() of an enum column).  The aggregates are
 * collected as check_query() does, so they come in the stored order.
 */
static void
relink_agg_argtypes(StreamprocView *view, Query *query)
{
	List *aggs = NIL;
	Datum *argtypes;
	ListCell *lc;
	Relation rel;
	ScanKeyData key;
	SysScanDesc scan;
	HeapTuple tuple;
	int i = 0;

	(void)collect_aggs_walker((Node *)query->targetList, &aggs);
	(void)collect_aggs_walker(query->havingQual, &aggs);
	if (list_length(aggs) != view->naggs)
		elog(ERROR, "continuous view %s has %d aggregates in its catalog row and %d in its definition",
			 view->name, view->naggs, list_length(aggs));
	argtypes = palloc0(sizeof(Datum) * (list_length(aggs) + 1));
	foreach (lc, aggs)
		argtypes[i++] = PointerGetDatum(agg_argtypes(lfirst_node(Aggref, lc)));

	rel = table_open(views_catalog(false), RowExclusiveLock);
	ScanKeyInit(&key, Anum_views_view, BTEqualStrategyNumber, F_OIDEQ,
				ObjectIdGetDatum(view->view));
	scan = systable_beginscan(rel, RelationGetPrimaryKeyIndex(rel), true,
							  NULL, 1, &key);
	tuple = systable_getnext(scan);
	if (HeapTupleIsValid(tuple))
	{
		Datum values[Natts_views];
		bool nulls[Natts_views];
		bool replace[Natts_views];
		HeapTuple newtuple;

		memset(replace, false, sizeof(replace));
		replace[Anum_views_agg_argtypes - 1] = true;
		nulls[Anum_views_agg_argtypes - 1] = false;
		values[Anum_views_agg_argtypes - 1] =
			PointerGetDatum(construct_array(argtypes, list_length(aggs), OIDVECTOROID,
											-1, false, TYPALIGN_INT));
		newtuple = heap_modify_tuple(tuple, RelationGetDescr(rel), values, nulls, replace);
		CatalogTupleUpdate(rel, &newtuple->t_self, newtuple);
	}
	systable_endscan(scan);
	table_close(rel, RowExclusiveLock);
}

/*
 * streamproc_view_link
 *		Record what create_continuous_view() records besides the catalog row,
 *		for a view restored from a dump: its groups or rows table belongs to
 *		it, it depends on its late-events table and on everything its query
 *		uses.  Nothing, if its table already belongs to it.
 */
void
streamproc_view_link(Oid viewid)
{
	StreamprocView *view = streamproc_view_load(viewid, false);
	Oid table = OidIsValid(view->groups_table) ? view->groups_table : view->rows_table;
	ObjectAddress addr;
	RawStmt *raw;
	Query *query;
	int nestlevel;

	if (!streamproc_link_internal(table, viewid))
		return;
	forget_column_dependencies(table);

	ObjectAddressSet(addr, RelationRelationId, viewid);
	if (OidIsValid(view->late_events))
	{
		ObjectAddress late;

		ObjectAddressSet(late, RelationRelationId, view->late_events);
		recordDependencyOn(&addr, &late, DEPENDENCY_NORMAL);
	}

	/* The definition was deparsed with search_path = pg_catalog. */
	nestlevel = NewGUCNestLevel();
	(void)set_config_option("search_path", "pg_catalog", PGC_USERSET,
							PGC_S_SESSION, GUC_ACTION_SAVE, true, 0, false);
	raw = linitial_node(RawStmt, raw_parser(view->definition, RAW_PARSE_DEFAULT));
	query = parse_analyze_fixedparams(raw, view->definition, NULL, 0, NULL);
	AtEOXact_GUC(true, nestlevel);
	recordDependencyOnExpr(&addr, (Node *)query, NIL, DEPENDENCY_NORMAL);

	/* Over an aggregating view, the catalog has the rewritten aggregates. */
	if (streamproc_feed_retracts(view->stream))
	{
		Index rti = 0;
		Oid upstream = streamproc_feed_upstream(query, &rti);
		RangeTblEntry *rte;

		if (!OidIsValid(upstream))
			elog(ERROR, "continuous view %s does not read a continuous view", view->name);
		rte = rt_fetch(rti, query->rtable);
		rte->relid = view->stream;
		rte->relkind = RELKIND_FOREIGN_TABLE;
		streamproc_retract_rewrite(query, rti, upstream);
	}
	relink_agg_argtypes(view, query);
	streamproc_feed_link(viewid, view->stream);
}

/*
 * delete_catalog_row
 *		Delete viewid's row from streamproc.views, if the extension is
 *		installed and viewid is a continuous view.
 */
static void
delete_catalog_row(Oid viewid)
{
	Oid catalog = views_catalog(true);
	Relation rel;
	ScanKeyData key;
	SysScanDesc scan;
	HeapTuple tuple;

	if (!OidIsValid(catalog))
		return;

	rel = table_open(catalog, RowExclusiveLock);
	ScanKeyInit(&key, Anum_views_view, BTEqualStrategyNumber, F_OIDEQ,
				ObjectIdGetDatum(viewid));
	scan = systable_beginscan(rel, RelationGetPrimaryKeyIndex(rel), true,
							  NULL, 1, &key);
	while (HeapTupleIsValid(tuple = systable_getnext(scan)))
	{
		CatalogTupleDelete(rel, &tuple->t_self);
		streamproc_catalog_changed();
	}
	systable_endscan(scan);
	table_close(rel, RowExclusiveLock);
}

/*
 * streamproc_is_continuous_view
 *		See view.h.
 */
bool
streamproc_is_continuous_view(Oid relid)
{
	Oid catalog;
	Relation rel;
	ScanKeyData key;
	SysScanDesc scan;
	bool found;

	if (get_rel_relkind(relid) != RELKIND_VIEW)
		return false;
	catalog = views_catalog(true);
	if (!OidIsValid(catalog))
		return false;

	rel = table_open(catalog, AccessShareLock);
	ScanKeyInit(&key, Anum_views_view, BTEqualStrategyNumber, F_OIDEQ,
				ObjectIdGetDatum(relid));
	scan = systable_beginscan(rel, RelationGetPrimaryKeyIndex(rel), true,
							  NULL, 1, &key);
	found = HeapTupleIsValid(systable_getnext(scan));
	systable_endscan(scan);
	table_close(rel, AccessShareLock);
	return found;
}

/*
 * streamproc_view_load
 *		See view.h.
 */
StreamprocView *
streamproc_view_load(Oid relid, bool missing_ok)
{
	Oid catalog = views_catalog(missing_ok);
	Relation rel;
	ScanKeyData key;
	SysScanDesc scan;
	HeapTuple tuple;
	StreamprocView *view = NULL;

	if (!OidIsValid(catalog))
		return NULL;

	rel = table_open(catalog, AccessShareLock);
	ScanKeyInit(&key, Anum_views_view, BTEqualStrategyNumber, F_OIDEQ,
				ObjectIdGetDatum(relid));
	scan = systable_beginscan(rel, RelationGetPrimaryKeyIndex(rel), true,
							  NULL, 1, &key);
	tuple = systable_getnext(scan);
	if (HeapTupleIsValid(tuple))
		view = view_from_tuple(tuple, RelationGetDescr(rel));
	systable_endscan(scan);
	table_close(rel, AccessShareLock);

	if (view == NULL && !missing_ok)
		ereport(ERROR,
				(errcode(ERRCODE_WRONG_OBJECT_TYPE),
				 errmsg("relation with OID %u is not a continuous view", relid)));
	return view;
}

/*
 * streamproc_view_list
 *		See view.h.
 */
List *
streamproc_view_list(Oid stream)
{
	Oid catalog = views_catalog(true);
	Relation rel;
	SysScanDesc scan;
	HeapTuple tuple;
	List *result = NIL;

	if (!OidIsValid(catalog))
		return NIL;

	rel = table_open(catalog, AccessShareLock);
	scan = systable_beginscan(rel, RelationGetPrimaryKeyIndex(rel), true,
							  NULL, 0, NULL);
	while (HeapTupleIsValid(tuple = systable_getnext(scan)))
	{
		StreamprocView *view = view_from_tuple(tuple, RelationGetDescr(rel));

		if (!OidIsValid(stream) || view->stream == stream)
			result = lappend(result, view);
	}
	systable_endscan(scan);
	table_close(rel, AccessShareLock);
	return result;
}

/*
 * view_from_tuple
 *		Build a StreamprocView from a streamproc.views row.
 */
static StreamprocView *
view_from_tuple(HeapTuple tuple, TupleDesc desc)
{
	StreamprocView *view = palloc0(sizeof(StreamprocView));
	Datum values[Natts_views];
	bool nulls[Natts_views];
	int n;

	if (desc->natts != Natts_views)
		elog(ERROR, "catalog table streamproc.views has an unexpected shape");
	heap_deform_tuple(tuple, desc, values, nulls);

	view->view = DatumGetObjectId(values[Anum_views_view - 1]);
	view->xmin = HeapTupleHeaderGetXmin(tuple->t_data);
	view->owner = InvalidOid;
	{
		HeapTuple reltup = SearchSysCache1(RELOID,
										   ObjectIdGetDatum(view->view));

		if (HeapTupleIsValid(reltup))
		{
			Form_pg_class form = (Form_pg_class)GETSTRUCT(reltup);

			view->owner = form->relowner;
			view->name = quote_qualified_identifier(get_namespace_name(form->relnamespace),
													NameStr(form->relname));
			ReleaseSysCache(reltup);
		}
		else
			view->name = psprintf("%u", view->view);
	}
	view->stream = DatumGetObjectId(values[Anum_views_stream - 1]);
	view->kind = DatumGetChar(values[Anum_views_kind - 1]);
	view->batch_query = TextDatumGetCString(values[Anum_views_batch_query - 1]);
	view->event_query = TextDatumGetCString(values[Anum_views_event_query - 1]);
	view->source_query = TextDatumGetCString(values[Anum_views_source_query - 1]);
	view->group_types = oid_array(values[Anum_views_group_types - 1],
								  &view->ngroups);
	view->aggregates = named_oid_array(values[Anum_views_aggregates - 1],
									   F_REGPROCEDUREIN, &view->naggs);
	view->agg_collations = named_oid_array(values[Anum_views_agg_collations - 1],
										   F_REGCOLLATIONIN, &n);
	if (n != view->naggs)
		elog(ERROR, "continuous view %u has %d aggregates but %d collations",
			 view->view, view->naggs, n);
	view->agg_argtypes = PointerGetDatum(DatumGetArrayTypePCopy(values[Anum_views_agg_argtypes - 1]));
	view->rows_table = nulls[Anum_views_rows_table - 1]
						   ? InvalidOid
						   : DatumGetObjectId(values[Anum_views_rows_table - 1]);
	view->groups_table = nulls[Anum_views_groups - 1]
							 ? InvalidOid
							 : DatumGetObjectId(values[Anum_views_groups - 1]);
	view->definition = TextDatumGetCString(values[Anum_views_definition - 1]);
	view->retention = -1;
	if (!nulls[Anum_views_window_kind - 1])
	{
		ArrayType *roles = DatumGetArrayTypeP(values[Anum_views_window_roles - 1]);
		Datum *elems;
		int nroles;
		int i;

		view->window_kind = DatumGetChar(values[Anum_views_window_kind - 1]);
		view->window_size = DatumGetInt64(values[Anum_views_window_size - 1]);
		view->window_slide = DatumGetInt64(values[Anum_views_window_slide - 1]);
		view->window_origin = nulls[Anum_views_window_origin - 1]
								  ? 0
								  : DatumGetTimestampTz(values[Anum_views_window_origin - 1]);
		deconstruct_array(roles, INT2OID, sizeof(int16), true, TYPALIGN_SHORT,
						  &elems, NULL, &nroles);
		view->window_roles = palloc0(sizeof(int16) * Max(view->ngroups, 1));
		for (i = 0; i < nroles && i < view->ngroups; i++)
			view->window_roles[i] = DatumGetInt16(elems[i]);
		view->retention = nulls[Anum_views_retention - 1]
							  ? -1
							  : DatumGetInt64(values[Anum_views_retention - 1]);
	}
	view->allowed_lateness = DatumGetInt64(values[Anum_views_lateness - 1]);
	view->emit = DatumGetChar(values[Anum_views_emit - 1]);
	view->late_events = nulls[Anum_views_late_events - 1]
							? InvalidOid
							: DatumGetObjectId(values[Anum_views_late_events - 1]);
	return view;
}

/*
 * oid_array
 *		The elements of a one-dimensional array of an oid-like type,
 *		palloc'd; *n is set to their number.
 */
static Oid *
oid_array(Datum array, int *n)
{
	ArrayType *arr = DatumGetArrayTypeP(array);
	Datum *elems;
	Oid *result;
	int i;

	deconstruct_array(arr, ARR_ELEMTYPE(arr), sizeof(Oid), true, TYPALIGN_INT,
					  &elems, NULL, n);
	result = palloc(sizeof(Oid) * (*n + 1));
	for (i = 0; i < *n; i++)
		result[i] = DatumGetObjectId(elems[i]);
	return result;
}

/*
 * named_oid_array
 *		The oids of a text[] of names (aggregates, collations), read with
 *		the input function of their reg* type.  The catalog stores these by
 *		name rather than as regprocedure[] and regcollation[]: pg_dump
 *		writes names either way, but pg_upgrade refuses tables with reg*
 *		columns other than regclass, regrole and regtype, since it does not
 *		keep the oids of functions and collations.  A database still at 0.1
 *		has them as regprocedure[] and oid[].
 */
static Oid *
named_oid_array(Datum array, Oid infunc, int *n)
{
	Datum *elems;
	Oid *result;
	int i;

	/* Written before ALTER EXTENSION streamproc UPDATE to 0.2: oids. */
	if (ARR_ELEMTYPE(DatumGetArrayTypeP(array)) != TEXTOID)
		return oid_array(array, n);

	deconstruct_array(DatumGetArrayTypeP(array), TEXTOID, -1, false, TYPALIGN_INT,
					  &elems, NULL, n);
	result = palloc(sizeof(Oid) * (*n + 1));
	for (i = 0; i < *n; i++)
		result[i] = DatumGetObjectId(OidFunctionCall1(infunc,
													  CStringGetDatum(TextDatumGetCString(elems[i]))));
	return result;
}

/* A collation's qualified name, or "-" for none (as regcollationout). */
static char *
collation_name(Oid collid)
{
	HeapTuple tup;
	Form_pg_collation coll;
	char *name;

	if (!OidIsValid(collid))
		return "-";
	tup = SearchSysCache1(COLLOID, ObjectIdGetDatum(collid));
	if (!HeapTupleIsValid(tup))
		elog(ERROR, "cache lookup failed for collation %u", collid);
	coll = (Form_pg_collation)GETSTRUCT(tup);
	name = quote_qualified_identifier(get_namespace_name(coll->collnamespace),
									  NameStr(coll->collname));
	ReleaseSysCache(tup);
	return name;
}

/*
 * views_catalog
 *		The oid of streamproc.views, or InvalidOid when the extension is not
 *		installed (an error unless missing_ok).
 */
static Oid
views_catalog(bool missing_ok)
{
	Oid nspid = get_namespace_oid(STREAMPROC_SCHEMA, true);
	Oid relid = InvalidOid;

	if (OidIsValid(nspid))
		relid = get_relname_relid(VIEWS_TABLE, nspid);
	if (!OidIsValid(relid) && !missing_ok)
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("extension \"streamproc\" is not installed in this database"),
				 errhint("Run CREATE EXTENSION streamproc.")));
	return relid;
}

/*
 * extension_function
 *		The oid of the extension's function streamproc.<name> with nargs
 *		arguments (there is one of each).
 */
static Oid
extension_function(const char *name, int nargs)
{
	Oid nspid = get_namespace_oid(STREAMPROC_SCHEMA, false);
	CatCList *list = SearchSysCacheList1(PROCNAMEARGSNSP,
										 CStringGetDatum(name));
	Oid result = InvalidOid;
	int i;

	for (i = 0; i < list->n_members; i++)
	{
		Form_pg_proc proc = (Form_pg_proc)GETSTRUCT(&list->members[i]->tuple);

		if (proc->pronamespace == nspid && proc->pronargs == nargs)
		{
			result = proc->oid;
			break;
		}
	}
	ReleaseSysCacheList(list);

	if (!OidIsValid(result))
		ereport(ERROR,
				(errcode(ERRCODE_UNDEFINED_FUNCTION),
				 errmsg("function %s.%s with %d arguments does not exist",
						STREAMPROC_SCHEMA, name, nargs),
				 errhint("The streamproc extension is incomplete; reinstall it.")));
	return result;
}
