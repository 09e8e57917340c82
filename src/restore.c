/*-------------------------------------------------------------------------
 *
 * restore.c
 *	  pg_dump and restore, and pg_upgrade, of streams and continuous views.
 *
 * What a dump holds.  A stream is a foreign table, its log an ordinary
 * partitioned table in schema streamproc; a continuous view is an ordinary
 * view over its groups foreign table or rows table, also in schema
 * streamproc.  None of these is a member of the extension, so pg_dump
 * writes them all, with the logs' and rows tables' contents.  The
 * extension's catalog tables (streams, views, positions, state_runs,
 * window_runs, view_watermarks, errors, sources, kafka_offsets) are marked
 * with pg_extension_config_dump(), so their rows are dumped too.  Every
 * reference they hold to a relation, type or role has a reg* type, which
 * pg_dump writes as a name; aggregates and collations are stored as names
 * (view.c: pg_upgrade refuses regprocedure and regcollation columns).  The
 * restored rows point at the restored objects, whatever their new oids.
 * The aggregates' argument types (an oidvector each) are recomputed from
 * the view's definition by post_restore().  Aggregate states and group
 * keys are stored in binary send/receive form (groupkey.c), which names no
 * oid for built-in types.
 *
 * Restoring, in three steps:
 *
 *	1. streamproc.pre_restore() in the new database, after CREATE
 *	   EXTENSION: sets streamproc.restoring for the database (ALTER
 *	   DATABASE ... SET, so that the restoring session and any worker
 *	   that starts see it) and stops its ingest workers.  While it is on,
 *	   the DDL hooks of stream.c and view.c let every statement through
 *	   untouched: CREATE FOREIGN TABLE ... SERVER streamproc makes no new
 *	   log, CREATE OR REPLACE VIEW of a continuous view is allowed, and
 *	   ALTER TABLE on internal tables (ATTACH PARTITION of a log shard,
 *	   OWNER TO) is allowed.  Workers that see it exit (worker.c) and
 *	   sync() refuses.  The install script puts a guard trigger on
 *	   streamproc.streams, views and sources: an SQL insert into them
 *	   (only a restore does that: the extension's own code inserts with
 *	   the heap functions) fails unless streamproc.restoring is on, so a
 *	   restore without step 1 stops at its first catalog row with a
 *	   message that says what to do, instead of mixing its catalog with
 *	   the one the hooks would have made.
 *	2. pg_restore or psql: everything comes back as it was dumped.
 *	3. streamproc.post_restore(): resets streamproc.restoring, records the
 *	   dependencies that pg_dump does not carry (a log and its shards
 *	   depend internally on their stream, a groups or rows table on its
 *	   view, a view normally on every object its query uses and on its
 *	   late-events table: view.c re-analyzes the stored definition),
 *	   rebases transaction ids (below), and starts the workers at commit.
 *
 * Transaction ids.  A view's position in a log is a pg_snapshot, and each
 * log row carries its inserting transaction's xid8: a batch is the rows
 * visible in the new snapshot and not in the position.  That comparison is
 * numeric, so it survives a restore into any database of the same server,
 * where every dumped xid is older than any new one.  Another server's
 * counter may be behind the dumped xids, and then new events could compare
 * as already consumed.  _rebase_xids() (install script) maps every xid
 * that a position or a log row holds, preserving order, into a range just
 * below the restoring transaction's xmin: each value a snapshot names
 * (xmin, xmax, in-progress xids) keeps its own slot, and the log xids
 * between two such values share one, since no snapshot tells them apart.
 * Every event then falls on the same side of every position as before,
 * and every new xid is above them all.  Nothing is rebased when every
 * dumped xid is already below the horizon.
 *
 * pg_upgrade keeps oids, xids and data files; in binary-upgrade mode the
 * module sets nothing up (streamproc.c).  Its schema dump does not carry
 * the dependencies either, so step 3 is run after it as well.
 *
 * Names.  Internal relations are named after the oid of their stream or
 * view (log_<oid>, groups_<oid>, rows_<oid>); restored ones keep their
 * old names, which a new object's oid may then meet.
 * streamproc_internal_relname() picks the first free name.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/genam.h"
#include "access/htup_details.h"
#include "access/table.h"
#include "access/xact.h"
#include "catalog/dependency.h"
#include "catalog/indexing.h"
#include "catalog/namespace.h"
#include "catalog/pg_db_role_setting.h"
#include "catalog/pg_depend.h"
#include "commands/dbcommands.h"
#include "executor/spi.h"
#include "fmgr.h"
#include "miscadmin.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/fmgroids.h"
#include "utils/guc.h"
#include "utils/lsyscache.h"
#include "utils/rel.h"
#include "utils/snapmgr.h"

#include "launcher.h"
#include "stream.h"
#include "streamproc.h"
#include "view.h"

PG_FUNCTION_INFO_V1(streamproc_pre_restore);
PG_FUNCTION_INFO_V1(streamproc_post_restore);

static void set_restoring(bool on);
static bool has_internal_dependency(Oid relid, Oid on);
static void link_streams(void);
static void link_views(void);

/*
 * streamproc_database_restoring
 *		Is streamproc.restoring on for this session, or set for the current
 *		database (ALTER DATABASE ... SET)?  The second answers for a worker
 *		that connected before pre_restore().  Starts a transaction when
 *		called outside one.
 */
bool
streamproc_database_restoring(void)
{
	bool in_xact = IsTransactionState();
	bool restoring = streamproc_restoring;
	Relation rel;
	ScanKeyData key[2];
	SysScanDesc scan;
	HeapTuple tup;

	if (restoring)
		return true;
	if (!in_xact)
	{
		SetCurrentStatementStartTimestamp();
		StartTransactionCommand();
	}
	PushActiveSnapshot(GetTransactionSnapshot());

	rel = table_open(DbRoleSettingRelationId, AccessShareLock);
	ScanKeyInit(&key[0], Anum_pg_db_role_setting_setdatabase,
				BTEqualStrategyNumber, F_OIDEQ, ObjectIdGetDatum(MyDatabaseId));
	ScanKeyInit(&key[1], Anum_pg_db_role_setting_setrole,
				BTEqualStrategyNumber, F_OIDEQ, ObjectIdGetDatum(InvalidOid));
	scan = systable_beginscan(rel, DbRoleSettingDatidRolidIndexId, true,
							  NULL, 2, key);
	tup = systable_getnext(scan);
	if (HeapTupleIsValid(tup))
	{
		bool isnull;
		Datum config = heap_getattr(tup, Anum_pg_db_role_setting_setconfig,
									RelationGetDescr(rel), &isnull);
		Datum *items;
		int n;
		int i;

		if (!isnull)
		{
			deconstruct_array(DatumGetArrayTypeP(config), TEXTOID, -1, false,
							  TYPALIGN_INT, &items, NULL, &n);
			for (i = 0; i < n; i++)
			{
				char *name;
				char *value;

				ParseLongOption(TextDatumGetCString(items[i]), &name, &value);
				if (value != NULL && pg_strcasecmp(name, "streamproc.restoring") == 0)
					(void)parse_bool(value, &restoring);
			}
		}
	}
	systable_endscan(scan);
	table_close(rel, AccessShareLock);

	PopActiveSnapshot();
	if (!in_xact)
		CommitTransactionCommand();
	return restoring;
}

/*
 * streamproc_check_not_restoring
 *		Refuse what needs the workers while a dump is being restored.
 */
void
streamproc_check_not_restoring(void)
{
	if (streamproc_database_restoring())
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("database \"%s\" is being restored", get_database_name(MyDatabaseId)),
				 errdetail("streamproc.pre_restore() stopped its ingest workers."),
				 errhint("When the restore has finished, run SELECT streamproc.post_restore().")));
}

/*
 * streamproc_internal_relname
 *		A free name in schema streamproc for an internal relation of the
 *		object id: "<prefix>_<id>", else "<prefix>_<id>_<n>" for the
 *		smallest n that is free; with nparts > 0, the names "<name>_<k>" of
 *		its parts k < nparts must be free too.
 */
char *
streamproc_internal_relname(const char *prefix, Oid id, int nparts)
{
	Oid nsp = get_namespace_oid("streamproc", false);
	int n;

	for (n = 0;; n++)
	{
		char *name = n == 0 ? psprintf("%s_%u", prefix, id)
							: psprintf("%s_%u_%d", prefix, id, n);
		bool free = !OidIsValid(get_relname_relid(name, nsp));
		int k;

		for (k = 0; free && k < nparts; k++)
			free = !OidIsValid(get_relname_relid(psprintf("%s_%d", name, k), nsp));
		if (free)
			return name;
	}
}

/*
 * streamproc.pre_restore()
 *		Prepare the current database for a restore: see the header.
 */
Datum
streamproc_pre_restore(PG_FUNCTION_ARGS)
{
	streamproc_check_preloaded();
	set_restoring(true);
	streamproc_stop_database_workers(MyDatabaseId);
	/* A worker started meanwhile looks again at commit. */
	streamproc_catalog_changed();
	PG_RETURN_VOID();
}

/*
 * streamproc.post_restore()
 *		Finish a restore (or a pg_upgrade) of the current database: see the
 *		header.  Running it again changes nothing.
 */
Datum
streamproc_post_restore(PG_FUNCTION_ARGS)
{
	int ret;

	streamproc_check_preloaded();
	set_restoring(false);

	link_streams();
	link_views();
	CommandCounterIncrement();

	SPI_connect();
	/* Before the rebase: the claims compare the dumped transaction ids. */
	if (OidIsValid(get_relname_relid("dedup_runs", get_namespace_oid("streamproc", false))))
	{
		ret = SPI_execute("SELECT streamproc._restore_dedup_claims()", false, 0);
		if (ret != SPI_OK_SELECT)
			elog(ERROR, "SPI_execute failed: %s", SPI_result_code_string(ret));
	}
	ret = SPI_execute("SELECT streamproc._rebase_xids()", false, 0);
	if (ret != SPI_OK_SELECT)
		elog(ERROR, "SPI_execute failed: %s", SPI_result_code_string(ret));
	ret = SPI_execute("SELECT streamproc._launch_workers()", false, 0);
	if (ret != SPI_OK_SELECT)
		elog(ERROR, "SPI_execute failed: %s", SPI_result_code_string(ret));
	SPI_finish();

	streamproc_catalog_changed();
	PG_RETURN_VOID();
}

/*
 * Set streamproc.restoring for the current database and this session, in
 * the current transaction.
 */
static void
set_restoring(bool on)
{
	char *dbname = get_database_name(MyDatabaseId);
	int ret;

	SPI_connect();
	ret = SPI_execute(psprintf(on ? "ALTER DATABASE %s SET streamproc.restoring = on"
								  : "ALTER DATABASE %s RESET streamproc.restoring",
							   quote_identifier(dbname)),
					  false, 0);
	if (ret != SPI_OK_UTILITY)
		elog(ERROR, "SPI_execute failed: %s", SPI_result_code_string(ret));
	SPI_finish();
	(void)set_config_option("streamproc.restoring", on ? "on" : "off",
							PGC_SUSET, PGC_S_SESSION, GUC_ACTION_SET,
							true, 0, false);
}

/* Does relid depend internally on the relation on? */
static bool
has_internal_dependency(Oid relid, Oid on)
{
	Relation rel;
	ScanKeyData key[2];
	SysScanDesc scan;
	HeapTuple tup;
	bool found = false;

	rel = table_open(DependRelationId, AccessShareLock);
	ScanKeyInit(&key[0], Anum_pg_depend_classid, BTEqualStrategyNumber, F_OIDEQ,
				ObjectIdGetDatum(RelationRelationId));
	ScanKeyInit(&key[1], Anum_pg_depend_objid, BTEqualStrategyNumber, F_OIDEQ,
				ObjectIdGetDatum(relid));
	scan = systable_beginscan(rel, DependDependerIndexId, true, NULL, 2, key);
	while (!found && HeapTupleIsValid(tup = systable_getnext(scan)))
	{
		Form_pg_depend dep = (Form_pg_depend)GETSTRUCT(tup);

		found = dep->refclassid == RelationRelationId && dep->refobjid == on &&
				dep->deptype == DEPENDENCY_INTERNAL;
	}
	systable_endscan(scan);
	table_close(rel, AccessShareLock);
	return found;
}

/*
 * streamproc_link_internal
 *		Record that relid belongs to owner (an internal dependency: it is
 *		dropped with it and cannot be dropped alone), unless it is recorded
 *		already; returns whether it recorded it.
 */
bool
streamproc_link_internal(Oid relid, Oid owner)
{
	ObjectAddress rel;
	ObjectAddress ref;

	if (has_internal_dependency(relid, owner))
		return false;
	ObjectAddressSet(rel, RelationRelationId, relid);
	ObjectAddressSet(ref, RelationRelationId, owner);
	recordDependencyOn(&rel, &ref, DEPENDENCY_INTERNAL);
	return true;
}

/* Each stream's log and shards belong to it. */
static void
link_streams(void)
{
	int ret;
	uint64 i;

	SPI_connect();
	ret = SPI_execute("SELECT stream, log, shard_logs FROM streamproc.streams", true, 0);
	if (ret != SPI_OK_SELECT)
		elog(ERROR, "SPI_execute failed: %s", SPI_result_code_string(ret));
	for (i = 0; i < SPI_processed; i++)
	{
		HeapTuple tup = SPI_tuptable->vals[i];
		TupleDesc desc = SPI_tuptable->tupdesc;
		bool isnull;
		Oid stream = DatumGetObjectId(SPI_getbinval(tup, desc, 1, &isnull));
		Oid log = DatumGetObjectId(SPI_getbinval(tup, desc, 2, &isnull));
		Datum *shards;
		int n;
		int k;

		deconstruct_array(DatumGetArrayTypeP(SPI_getbinval(tup, desc, 3, &isnull)),
						  REGCLASSOID, sizeof(Oid), true, TYPALIGN_INT,
						  &shards, NULL, &n);
		streamproc_link_internal(log, stream);
		for (k = 0; k < n; k++)
			streamproc_link_internal(DatumGetObjectId(shards[k]), stream);
	}
	SPI_finish();
}

/* Each view's groups or rows table, query and late-events table. */
static void
link_views(void)
{
	List *views = NIL;
	ListCell *lc;
	MemoryContext cxt = CurrentMemoryContext;
	int ret;
	uint64 i;

	SPI_connect();
	ret = SPI_execute("SELECT view FROM streamproc.views", true, 0);
	if (ret != SPI_OK_SELECT)
		elog(ERROR, "SPI_execute failed: %s", SPI_result_code_string(ret));
	for (i = 0; i < SPI_processed; i++)
	{
		bool isnull;
		Oid view = DatumGetObjectId(SPI_getbinval(SPI_tuptable->vals[i],
												  SPI_tuptable->tupdesc, 1, &isnull));
		MemoryContext spi = MemoryContextSwitchTo(cxt);

		views = lappend_oid(views, view);
		MemoryContextSwitchTo(spi);
	}
	SPI_finish();

	foreach (lc, views)
		streamproc_view_link(lfirst_oid(lc));
}
