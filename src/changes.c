/*-------------------------------------------------------------------------
 *
 * changes.c
 *	  Change logs: following a continuous view's changes from any client.
 *
 * streamproc.create_change_log(view, retention) starts a view's log with
 * the rows the view has; from then on the checkpoints that change the
 * view write what they changed into it.  A change is a row of
 * streamproc.changes: (view, position, changed_at, key, old, new), the
 * rows as jsonb.  A client reads the changes after a position it
 * remembers with streamproc.changes(view, after), and can LISTEN on
 * streamproc.changes_channel(view), notified (with the last position as
 * payload) by each transaction that adds changes.
 *
 * What a change is.
 *	- Append views: a row appended (old and key null).
 *	- Tumbling or hopping windows with emit = 'final': a row of a window
 *	  once every worker's slot has closed it (old and key null).
 *	- Aggregating views without windows: a group whose row changed, with
 *	  its key (the group columns as a jsonb array), the row logged before
 *	  (old; null for a group new to the view) and its row now (new; null
 *	  when the view no longer shows it, through HAVING).
 *	- Tumbling windows with emit = 'updates': as views without windows, a
 *	  window's group being a group (its key includes the window's start);
 *	  and once the view's retention no longer shows a window, each of its
 *	  groups with new null (log_retention()).
 *	Hopping windows with emit = 'updates' (kept as slices: a changed slice
 *	changes several windows), sessions and count windows are refused with
 *	a hint.
 *
 * Views over the view.  The writer of an aggregating view's changes passes
 * them, in its transaction, to the feeds of the views over it
 * (streamproc_feed_changes(), feed.c); such a view starts the log with
 * streamproc_change_log_ensure() when it has none.
 *
 * Positions without gaps, in commit order.  Every writer of a view's log
 * first updates the view's row of streamproc.change_logs (last_position
 * += the number of changes it adds), so it holds that row's lock until it
 * commits or aborts, and the next writer numbers its changes after it.  A
 * snapshot therefore sees the changes of a log up to some position, all of
 * them: a client that read up to p and reads again after p misses nothing
 * and sees nothing twice.  An aborted writer leaves no gap, since the
 * position it took was never committed.
 *
 * Exactly once.
 *	- An append view's rows are written by the checkpoint that commits its
 *	  positions in its stream (checkpoint.c); a statement trigger on its
 *	  rows table, streamproc._change_rows(), writes the same rows as
 *	  changes in the same statement, so both commit or neither does,
 *	  whatever is killed when (feed.c's trigger does the same for views
 *	  over views).
 *	- The closed windows of a final-windows view are passed on by the
 *	  ingest workers after their checkpoints
 *	  (streamproc_changes_after_checkpoint()), as feed.c passes them to
 *	  views over views: in one transaction per log, under the log's row
 *	  lock, the rows of the windows that ended between the log's
 *	  windows_done and the bound every worker's slot has closed become
 *	  changes, and windows_done moves.  A window closed but not passed on
 *	  before a crash is passed on after it.
 *	- An aggregating view's checkpoint, in its part of the checkpoint
 *	  transaction, after writing its slot's changed groups
 *	  (streamproc_changes_log_groups()): under the log's row lock, it reads
 *	  the view's row of each group its slot changed (a keyed read, all
 *	  slots combined, as any reader), compares it with the row logged last
 *	  for the group (streamproc.change_rows, keyed by a hash of the group
 *	  key), and logs the pairs that differ.  So old is always the new of
 *	  the group's change before, and the log folded by key is the view.
 *	  A group's row combines every worker's slot, including what another
 *	  worker merged and has not checkpointed yet; if that worker then
 *	  crashes, it merges those events again, and until then a change may
 *	  show the group as it was before them.  Each change is still exactly
 *	  the difference between two rows the view showed, and after sync()
 *	  the folded log equals the view.
 *
 * Retention.  The same workers delete the changes older than the log's
 * retention, a prefix of the log, and record the last position removed in
 * trimmed_to, in the same transaction (trim()).  changes() compares
 * `after` with trimmed_to in the snapshot it reads the changes with, so a
 * client that fell behind the retention gets an error (SQLSTATE 72000, as
 * a snapshot too old), never a silent gap.  Retention trims changes, not
 * change_rows: those are the rows the view shows.
 *
 * Privileges.  The log's tables belong to the extension and are written
 * as the owner of schema streamproc; changes() checks that the caller may
 * SELECT the view, create/alter/drop_change_log() that the caller owns it.
 *
 * Locking: the log's row of streamproc.change_logs, held by a writer until
 * it ends.  create/alter/drop_change_log() take ShareUpdateExclusiveLock
 * on the view, so two of them on one view wait for each other (readers
 * and workers are not held back by it; DROP VIEW waits for it).  create_change_log() of an append view takes
 * ShareRowExclusiveLock on its rows table (as CREATE VIEW of a view over
 * it does, feed.c), and of an aggregating view ShareLock on its groups
 * table, which checkpoints that log take in RowExclusiveLock first: the
 * rows it reads as the log's start are those the checkpoints after it
 * compare with.  Checkpoints take their views' parts in view oid order, so
 * two workers' checkpoints take the logs' row locks in the same order.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/relation.h"
#include "access/xact.h"
#include "catalog/namespace.h"
#include "catalog/pg_type.h"
#include "commands/async.h"
#include "commands/trigger.h"
#include "executor/spi.h"
#include "funcapi.h"
#include "nodes/makefuncs.h"
#include "parser/parsetree.h"
#include "rewrite/rewriteHandler.h"
#include "miscadmin.h"
#include "storage/lmgr.h"
#include "utils/acl.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/datum.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"
#include "utils/resowner.h"
#include "utils/ruleutils.h"
#include "utils/snapmgr.h"
#include "utils/timestamp.h"

#include "changes.h"
#include "errors.h"
#include "feed.h"
#include "groupkey.h"
#include "state.h"
#include "streamproc.h"
#include "view.h"
#include "windows.h"

/* The trigger on an append view's rows table, and its transition table. */
#define CHANGES_TRIGGER   "streamproc_changes"
#define CHANGES_NEW_TABLE "streamproc_rows"

/* The retention of a log that a view over the view started (feed.c). */
#define CHANGES_DEFAULT_RETENTION "1 day"

/*
 * Rows this worker made dead in the change logs' tables (trimmed changes,
 * replaced rows of change_rows) since it last vacuumed them: past this, it
 * vacuums them after a checkpoint, as checkpoint.c does state_runs, so
 * that their space is reused at once (autovacuum's pace let a soak's
 * tables grow without bound).
 */
#define CHANGES_VACUUM_MIN_ROWS 50000

static int64 trimmed_rows = 0;
static int64 replaced_rows = 0;

/* The two tables above, once looked up (0.6 on). */
static Oid changes_relid = InvalidOid;
static Oid change_rows_relid = InvalidOid;

/* The work of streamproc_changes_after_checkpoint()'s first transaction. */
typedef struct AfterCheckpoint
{
	MemoryContext cxt;
	List *windowed; /* Oid: final-windows views with a log */
} AfterCheckpoint;

PG_FUNCTION_INFO_V1(streamproc_create_change_log);
PG_FUNCTION_INFO_V1(streamproc_alter_change_log);
PG_FUNCTION_INFO_V1(streamproc_drop_change_log);
PG_FUNCTION_INFO_V1(streamproc_changes);
PG_FUNCTION_INFO_V1(streamproc_changes_channel);
PG_FUNCTION_INFO_V1(streamproc_change_rows);

static StreamprocView *followed_view(Oid viewid, bool owner);
static void check_retention(Interval *retention);
static int64 take_positions(Oid viewid, int64 n, TimestampTz *done, bool *found);
static void notify(Oid viewid, int64 last);
static char *channel_name(Oid viewid);
static void emit_windows(Oid viewid);
static void list_and_trim(void *arg);
static void emit_windows_as_owner(void *arg);
static void trim(void);
static char *group_query(StreamprocView *v);
static char *diff_sql(const char *cur);
static int64 start_group_log(StreamprocView *v, TimestampTz now);
static bool log_installed(void);
static bool create_log(Oid viewid, Interval *retention, bool owner_check);
static bool logs_window_updates(StreamprocView *v);
static bool may_have_log(Oid viewid, Oid groups_table);
static int64 log_retention(StreamprocView *v, int64 last);

/*
 * streamproc.create_change_log(view regclass, retention interval)
 *		Start keeping the changes of a continuous view: its rows now, then
 *		what changes.
 */
Datum
streamproc_create_change_log(PG_FUNCTION_ARGS)
{
	if (!create_log(PG_GETARG_OID(0), PG_GETARG_INTERVAL_P(1), true))
		ereport(ERROR,
				(errcode(ERRCODE_DUPLICATE_OBJECT),
				 errmsg("continuous view \"%s\" already has a change log", get_rel_name(PG_GETARG_OID(0))),
				 errhint("Change its retention with streamproc.alter_change_log().")));
	PG_RETURN_VOID();
}

/*
 * streamproc_change_log_ensure
 *		See changes.h: for a view over viewid (feed.c), whose owner need not
 *		own viewid.
 */
bool
streamproc_change_log_ensure(Oid viewid)
{
	Interval *retention;
	StreamprocAsOwner saved;
	Datum arg = ObjectIdGetDatum(viewid);
	bool exists;
	int ret;

	/*
	 * Without a row lock: the caller (feed.c) locks an existing log's row
	 * itself, once it knows there is one.
	 */
	streamproc_spi_as_owner_begin(&saved);
	ret = SPI_execute_with_args("SELECT 1 FROM streamproc.change_logs WHERE view = $1",
								1, (Oid[]){OIDOID}, &arg, NULL, false, 0);
	if (ret != SPI_OK_SELECT)
		elog(ERROR, "could not read streamproc.change_logs: %s", SPI_result_code_string(ret));
	exists = SPI_processed > 0;
	streamproc_spi_as_owner_end(&saved);
	if (exists)
		return false;

	retention = DatumGetIntervalP(DirectFunctionCall3(interval_in,
													  CStringGetDatum(CHANGES_DEFAULT_RETENTION),
													  ObjectIdGetDatum(InvalidOid),
													  Int32GetDatum(-1)));
	return create_log(viewid, retention, false);
}

/*
 * Start the change log of viewid, after checking that the current user
 * owns it when owner_check; false: it has one already.
 */
static bool
create_log(Oid viewid, Interval *retention, bool owner_check)
{
	StreamprocView *v;
	StreamprocAsOwner saved;
	Datum args[3];
	int ret;

	/* One change of a view's log at a time (readers and workers go on). */
	LockRelationOid(viewid, ShareUpdateExclusiveLock);
	v = followed_view(viewid, owner_check);
	check_retention(retention);
	if (v->kind == STREAMPROC_VIEW_APPEND)
		LockRelationOid(v->rows_table, ShareRowExclusiveLock);

	streamproc_spi_as_owner_begin(&saved);
	args[0] = ObjectIdGetDatum(viewid);
	ret = SPI_execute_with_args("SELECT 1 FROM streamproc.change_logs WHERE view = $1 FOR UPDATE",
								1, (Oid[]){OIDOID}, args, NULL, false, 0);
	if (ret != SPI_OK_SELECT)
		elog(ERROR, "could not read streamproc.change_logs: %s", SPI_result_code_string(ret));
	if (SPI_processed > 0)
	{
		streamproc_spi_as_owner_end(&saved);
		return false;
	}

	/* Changes of a dropped view whose oid this one got. */
	ret = SPI_execute_with_args("DELETE FROM streamproc.changes WHERE view = $1",
								1, (Oid[]){OIDOID}, args, NULL, false, 0);
	if (ret != SPI_OK_DELETE)
		elog(ERROR, "could not clean streamproc.changes: %s", SPI_result_code_string(ret));

	/*
	 * The log starts with the rows the view has: an append view's rows now
	 * (under the lock, no checkpoint adds any until we commit), in the order
	 * they were appended; final windows from the first (windows_done
	 * -infinity), passed on by the workers.
	 */
	args[1] = IntervalPGetDatum(retention);
	args[2] = TimestampTzGetDatum(GetCurrentTimestamp());
	if (v->kind == STREAMPROC_VIEW_APPEND)
	{
		char *rows = quote_qualified_identifier(get_namespace_name(get_rel_namespace(v->rows_table)),
												get_rel_name(v->rows_table));

		ret = SPI_execute_with_args(psprintf("INSERT INTO streamproc.changes (view, position, changed_at, old, new)"
											 " SELECT $1, pg_catalog.row_number() OVER (ORDER BY r.ctid), $2, NULL,"
											 " pg_catalog.to_jsonb(r) FROM %s r",
											 rows),
									2, (Oid[]){OIDOID, TIMESTAMPTZOID}, (Datum[]){args[0], args[2]},
									NULL, false, 0);
		if (ret != SPI_OK_INSERT)
			elog(ERROR, "could not insert the changes of continuous view %u: %s", viewid,
				 SPI_result_code_string(ret));
		args[2] = Int64GetDatum((int64)SPI_processed);
		ret = SPI_execute(psprintf("CREATE TRIGGER %s AFTER INSERT ON %s REFERENCING NEW TABLE AS %s"
								   " FOR EACH STATEMENT EXECUTE FUNCTION streamproc._change_rows()",
								   CHANGES_TRIGGER, rows, CHANGES_NEW_TABLE),
						  false, 0);
		if (ret != SPI_OK_UTILITY)
			elog(ERROR, "could not create the trigger of a change log: %s", SPI_result_code_string(ret));
	}
	else if (v->window_kind == 0 || logs_window_updates(v))
		args[2] = Int64GetDatum(start_group_log(v, DatumGetTimestampTz(args[2])));
	else
		args[2] = Int64GetDatum(0);
	ret = SPI_execute_with_args(psprintf("INSERT INTO streamproc.change_logs"
										 " (view, retention, last_position, trimmed_to, windows_done)"
										 " VALUES ($1, $2, $3, 0, %s)",
										 v->window_kind == 0 || logs_window_updates(v) ? "NULL" : "'-infinity'"),
								3, (Oid[]){OIDOID, INTERVALOID, INT8OID}, args, NULL, false, 0);
	if (ret != SPI_OK_INSERT)
		elog(ERROR, "could not insert into streamproc.change_logs: %s", SPI_result_code_string(ret));
	streamproc_spi_as_owner_end(&saved);
	return true;
}

/*
 * streamproc.alter_change_log(view regclass, retention interval)
 */
Datum
streamproc_alter_change_log(PG_FUNCTION_ARGS)
{
	Oid viewid = PG_GETARG_OID(0);
	Interval *retention = PG_GETARG_INTERVAL_P(1);
	StreamprocAsOwner saved;
	Datum args[2];
	int ret;

	LockRelationOid(viewid, ShareUpdateExclusiveLock);
	(void)followed_view(viewid, true);
	check_retention(retention);
	streamproc_spi_as_owner_begin(&saved);
	args[0] = ObjectIdGetDatum(viewid);
	args[1] = IntervalPGetDatum(retention);
	ret = SPI_execute_with_args("UPDATE streamproc.change_logs SET retention = $2 WHERE view = $1",
								2, (Oid[]){OIDOID, INTERVALOID}, args, NULL, false, 0);
	if (ret != SPI_OK_UPDATE)
		elog(ERROR, "could not update streamproc.change_logs: %s", SPI_result_code_string(ret));
	if (SPI_processed == 0)
		ereport(ERROR,
				(errcode(ERRCODE_UNDEFINED_OBJECT),
				 errmsg("continuous view \"%s\" has no change log", get_rel_name(viewid)),
				 errhint("Create one with streamproc.create_change_log().")));
	streamproc_spi_as_owner_end(&saved);
	PG_RETURN_VOID();
}

/*
 * streamproc.drop_change_log(view regclass)
 *		Stop keeping the view's changes, and forget those kept.
 */
Datum
streamproc_drop_change_log(PG_FUNCTION_ARGS)
{
	Oid viewid = PG_GETARG_OID(0);
	StreamprocView *v;
	StreamprocAsOwner saved;
	Datum args[1];
	int ret;

	LockRelationOid(viewid, ShareUpdateExclusiveLock);
	v = streamproc_view_load(viewid, true);
	if (v == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_WRONG_OBJECT_TYPE),
				 errmsg("\"%s\" is not a continuous view", get_rel_name(viewid))));
	if (!pg_class_ownercheck(viewid, GetUserId()))
		aclcheck_error(ACLCHECK_NOT_OWNER, OBJECT_VIEW, get_rel_name(viewid));

	streamproc_spi_as_owner_begin(&saved);
	args[0] = ObjectIdGetDatum(viewid);
	if (OidIsValid(get_relname_relid("sinks", get_namespace_oid("streamproc", false))))
	{
		ret = SPI_execute_with_args("SELECT pg_catalog.string_agg(pg_catalog.quote_literal(name), ', ' ORDER BY name)"
									" FROM streamproc.sinks WHERE view = $1",
									1, (Oid[]){OIDOID}, args, NULL, false, 0);
		if (ret != SPI_OK_SELECT)
			elog(ERROR, "could not read streamproc.sinks: %s", SPI_result_code_string(ret));
		if (SPI_getvalue(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1) != NULL)
			ereport(ERROR,
					(errcode(ERRCODE_DEPENDENT_OBJECTS_STILL_EXIST),
					 errmsg("cannot drop the change log of continuous view \"%s\"", get_rel_name(viewid)),
					 errdetail("Kafka sinks produce it: %s.",
							   SPI_getvalue(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1)),
					 errhint("Drop them first with streamproc.drop_kafka_sink().")));
	}
	{
		char *followers = streamproc_feed_followers(viewid);

		if (followers != NULL)
			ereport(ERROR,
					(errcode(ERRCODE_DEPENDENT_OBJECTS_STILL_EXIST),
					 errmsg("cannot drop the change log of continuous view \"%s\"", get_rel_name(viewid)),
					 errdetail("Continuous views read its changes: %s.", followers),
					 errhint("Drop those views first.")));
	}
	ret = SPI_execute_with_args("DELETE FROM streamproc.change_logs WHERE view = $1",
								1, (Oid[]){OIDOID}, args, NULL, false, 0);
	if (ret != SPI_OK_DELETE)
		elog(ERROR, "could not delete from streamproc.change_logs: %s", SPI_result_code_string(ret));
	if (SPI_processed == 0)
		ereport(ERROR,
				(errcode(ERRCODE_UNDEFINED_OBJECT),
				 errmsg("continuous view \"%s\" has no change log", get_rel_name(viewid))));
	ret = SPI_execute_with_args("DELETE FROM streamproc.changes WHERE view = $1",
								1, (Oid[]){OIDOID}, args, NULL, false, 0);
	if (ret != SPI_OK_DELETE)
		elog(ERROR, "could not delete from streamproc.changes: %s", SPI_result_code_string(ret));
	ret = SPI_execute_with_args("DELETE FROM streamproc.change_rows WHERE view = $1",
								1, (Oid[]){OIDOID}, args, NULL, false, 0);
	if (ret != SPI_OK_DELETE)
		elog(ERROR, "could not delete from streamproc.change_rows: %s", SPI_result_code_string(ret));
	if (v->kind == STREAMPROC_VIEW_APPEND)
	{
		ret = SPI_execute(psprintf("DROP TRIGGER IF EXISTS %s ON %s", CHANGES_TRIGGER,
								   quote_qualified_identifier(get_namespace_name(get_rel_namespace(v->rows_table)),
															  get_rel_name(v->rows_table))),
						  false, 0);
		if (ret != SPI_OK_UTILITY)
			elog(ERROR, "could not drop the trigger of a change log: %s", SPI_result_code_string(ret));
	}
	streamproc_spi_as_owner_end(&saved);
	PG_RETURN_VOID();
}

/*
 * streamproc.changes(view regclass, after bigint, max_changes bigint)
 *		The changes of a view after a position, in order: position,
 *		changed_at, key, old, new.  One snapshot for the checks and the rows.
 */
Datum
streamproc_changes(PG_FUNCTION_ARGS)
{
	ReturnSetInfo *rsinfo = (ReturnSetInfo *)fcinfo->resultinfo;
	Oid viewid;
	int64 after;
	int64 limit;
	int64 last;
	int64 trimmed;
	Interval *retention;
	StreamprocAsOwner saved;
	Datum args[3];
	char nulls[3] = {' ', ' ', ' '};
	bool isnull;
	Portal portal;
	int ret;

	if (PG_ARGISNULL(0) || PG_ARGISNULL(1))
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("the view and the position of streamproc.changes() must not be null"),
				 errhint("Start with after => 0: the first change of a log is at position 1.")));
	viewid = PG_GETARG_OID(0);
	after = PG_GETARG_INT64(1);
	limit = PG_ARGISNULL(2) ? -1 : PG_GETARG_INT64(2);
	if (after < 0 || (!PG_ARGISNULL(2) && limit < 0))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("the position and max_changes of streamproc.changes() cannot be negative")));
	if (get_rel_name(viewid) == NULL || !streamproc_is_continuous_view(viewid))
		ereport(ERROR,
				(errcode(ERRCODE_WRONG_OBJECT_TYPE),
				 errmsg("\"%s\" is not a continuous view", get_rel_name(viewid) ? get_rel_name(viewid) : "?")));
	if (pg_class_aclcheck(viewid, GetUserId(), ACL_SELECT) != ACLCHECK_OK)
		aclcheck_error(ACLCHECK_NO_PRIV, OBJECT_VIEW, get_rel_name(viewid));

	InitMaterializedSRF(fcinfo, 0);
	streamproc_spi_as_owner_begin(&saved);
	args[0] = ObjectIdGetDatum(viewid);
	ret = SPI_execute_with_args("SELECT last_position, trimmed_to, retention FROM streamproc.change_logs"
								" WHERE view = $1",
								1, (Oid[]){OIDOID}, args, NULL, true, 0);
	if (ret != SPI_OK_SELECT)
		elog(ERROR, "could not read streamproc.change_logs: %s", SPI_result_code_string(ret));
	if (SPI_processed == 0)
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("continuous view \"%s\" has no change log", get_rel_name(viewid)),
				 errhint("Create one with streamproc.create_change_log('%s', retention => '1 day').",
						 get_rel_name(viewid))));
	last = DatumGetInt64(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull));
	trimmed = DatumGetInt64(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 2, &isnull));
	retention = DatumGetIntervalP(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 3, &isnull));
	if (after < trimmed)
		ereport(ERROR,
				(errcode(ERRCODE_SNAPSHOT_TOO_OLD),
				 errmsg("the changes of continuous view \"%s\" after position " INT64_FORMAT " are no longer kept",
						get_rel_name(viewid), after),
				 errdetail("Changes up to position " INT64_FORMAT " were removed: they are kept for %s.",
						   trimmed,
						   DatumGetCString(DirectFunctionCall1(interval_out, IntervalPGetDatum(retention)))),
				 errhint("Read the view again with SELECT and follow its changes from streamproc.changes_position(), or keep them longer with streamproc.alter_change_log().")));
	if (after > last)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("position " INT64_FORMAT " is after the last change of continuous view \"%s\"",
						after, get_rel_name(viewid)),
				 errdetail("The last change is at position " INT64_FORMAT ".", last),
				 errhint("Use a position returned by streamproc.changes() or streamproc.changes_position() for this view.")));

	args[1] = Int64GetDatum(after);
	args[2] = Int64GetDatum(limit);
	if (limit < 0)
		nulls[2] = 'n';
	portal = SPI_cursor_open_with_args(NULL,
									   "SELECT position, changed_at, key, old, new FROM streamproc.changes"
									   " WHERE view = $1 AND position > $2 ORDER BY position LIMIT $3",
									   3, (Oid[]){OIDOID, INT8OID, INT8OID}, args, nulls, true, 0);
	for (;;)
	{
		uint64 i;

		SPI_cursor_fetch(portal, true, 1000);
		if (SPI_processed == 0)
			break;
		for (i = 0; i < SPI_processed; i++)
		{
			Datum values[5];
			bool rnulls[5];
			int c;

			for (c = 0; c < 5; c++)
				values[c] = SPI_getbinval(SPI_tuptable->vals[i], SPI_tuptable->tupdesc, c + 1, &rnulls[c]);
			tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, values, rnulls);
		}
		SPI_freetuptable(SPI_tuptable);
	}
	SPI_cursor_close(portal);
	streamproc_spi_as_owner_end(&saved);
	return (Datum)0;
}

/*
 * streamproc.changes_channel(view regclass)
 *		The channel to LISTEN on for a view's changes.
 */
Datum
streamproc_changes_channel(PG_FUNCTION_ARGS)
{
	Oid viewid = PG_GETARG_OID(0);

	if (!streamproc_is_continuous_view(viewid))
		ereport(ERROR,
				(errcode(ERRCODE_WRONG_OBJECT_TYPE),
				 errmsg("\"%s\" is not a continuous view", get_rel_name(viewid) ? get_rel_name(viewid) : "?")));
	PG_RETURN_TEXT_P(cstring_to_text(channel_name(viewid)));
}

/*
 * streamproc._change_rows() trigger
 *		AFTER INSERT ... FOR EACH STATEMENT on an append view's rows table:
 *		the statement's new rows are changes of the view.
 */
Datum
streamproc_change_rows(PG_FUNCTION_ARGS)
{
	TriggerData *td = (TriggerData *)fcinfo->context;
	Oid rows;
	Oid viewid;
	StreamprocView *v;
	int64 n;
	int64 last;
	bool found;
	TimestampTz now;
	StreamprocAsOwner saved;
	Datum args[3];
	int ret;

	if (!CALLED_AS_TRIGGER(fcinfo))
		ereport(ERROR,
				(errcode(ERRCODE_E_R_I_E_TRIGGER_PROTOCOL_VIOLATED),
				 errmsg("function streamproc._change_rows() was not called by the trigger manager")));
	if (!TRIGGER_FIRED_AFTER(td->tg_event) || !TRIGGER_FIRED_FOR_STATEMENT(td->tg_event) ||
		!TRIGGER_FIRED_BY_INSERT(td->tg_event) || td->tg_newtable == NULL ||
		strcmp(td->tg_trigger->tgnewtable, CHANGES_NEW_TABLE) != 0)
		ereport(ERROR,
				(errcode(ERRCODE_E_R_I_E_TRIGGER_PROTOCOL_VIOLATED),
				 errmsg("function streamproc._change_rows() must be fired AFTER INSERT FOR EACH STATEMENT, with NEW TABLE AS %s",
						CHANGES_NEW_TABLE)));

	/* Only the rows table of the view whose log it writes. */
	rows = RelationGetRelid(td->tg_relation);
	viewid = streamproc_owning_view(rows);
	v = OidIsValid(viewid) ? streamproc_view_load(viewid, true) : NULL;
	if (v == NULL || v->rows_table != rows)
		ereport(ERROR,
				(errcode(ERRCODE_WRONG_OBJECT_TYPE),
				 errmsg("\"%s\" is not the rows table of a continuous view",
						RelationGetRelationName(td->tg_relation))));
	n = (int64)tuplestore_tuple_count(td->tg_newtable);
	if (n == 0)
		return PointerGetDatum(NULL);

	streamproc_spi_as_owner_begin(&saved);
	if (SPI_register_trigger_data(td) != SPI_OK_TD_REGISTER)
		elog(ERROR, "SPI_register_trigger_data failed");
	last = take_positions(viewid, n, NULL, &found);
	if (found)
	{
		now = GetCurrentTimestamp();
		args[0] = ObjectIdGetDatum(viewid);
		args[1] = Int64GetDatum(last - n);
		args[2] = TimestampTzGetDatum(now);
		ret = SPI_execute_with_args("INSERT INTO streamproc.changes (view, position, changed_at, old, new)"
									" SELECT $1, $2 + pg_catalog.row_number() OVER (), $3, NULL,"
									" pg_catalog.to_jsonb(r) FROM " CHANGES_NEW_TABLE " r",
									3, (Oid[]){OIDOID, INT8OID, TIMESTAMPTZOID}, args, NULL, false, 0);
		if (ret != SPI_OK_INSERT || (int64)SPI_processed != n)
			elog(ERROR, "could not insert the changes of continuous view %u: %s", viewid,
				 SPI_result_code_string(ret));
		notify(viewid, last);
	}
	streamproc_spi_as_owner_end(&saved);
	return PointerGetDatum(NULL);
}

/*
 * streamproc_changes_after_checkpoint
 *		See changes.h.
 */
void
streamproc_changes_after_checkpoint(void)
{
	ListCell *lc;
	ErrorData *edata;
	AfterCheckpoint work;

	/* The logs of final windows, and the trimming of every log. */
	work.cxt = CurrentMemoryContext;
	work.windowed = NIL;
	edata = streamproc_run_xact(list_and_trim, &work);
	if (edata != NULL)
	{
		ereport(LOG,
				(errmsg("could not trim the change logs: %s", edata->message ? edata->message : ""),
				 errdetail("SQLSTATE %s.  Nothing was lost: they are trimmed after the next checkpoint.",
						   unpack_sql_state(edata->sqlerrcode))));
		FreeErrorData(edata);
	}

	if (trimmed_rows >= CHANGES_VACUUM_MIN_ROWS && OidIsValid(changes_relid))
	{
		streamproc_vacuum_relation(changes_relid);
		trimmed_rows = 0;
	}
	if (replaced_rows >= CHANGES_VACUUM_MIN_ROWS && OidIsValid(change_rows_relid))
	{
		streamproc_vacuum_relation(change_rows_relid);
		replaced_rows = 0;
	}

	foreach (lc, work.windowed)
	{
		Oid viewid = lfirst_oid(lc);

		/* On error nothing moved: the next call passes the same windows on. */
		edata = streamproc_run_xact(emit_windows_as_owner, &viewid);
		if (edata != NULL)
		{
			ereport(LOG,
					(errmsg("could not write the closed windows of continuous view %u to its change log: %s",
							viewid, edata->message ? edata->message : ""),
					 errdetail("SQLSTATE %s.  Nothing was lost: they are written after the next checkpoint.",
							   unpack_sql_state(edata->sqlerrcode))));
			FreeErrorData(edata);
		}
	}
	list_free(work.windowed);
}

/*
 * streamproc_changes_after_checkpoint()'s first transaction: list the
 * final-windows logs into work->windowed (in work->cxt), and trim every log.
 */
static void
list_and_trim(void *arg)
{
	AfterCheckpoint *work = arg;
	MemoryContext cxt = work->cxt;
	StreamprocAsOwner saved;
	uint64 i;
	int ret;

	streamproc_spi_as_owner_begin(&saved);
	/* Nothing before version 0.6 of the extension. */
	if (log_installed())
	{
		Oid nsp = get_namespace_oid("streamproc", false);

		changes_relid = get_relname_relid("changes", nsp);
		change_rows_relid = get_relname_relid("change_rows", nsp);
		ret = SPI_execute("SELECT l.view::pg_catalog.oid FROM streamproc.change_logs l"
						  " JOIN streamproc.views v ON v.view = l.view"
						  " WHERE v.rows_table IS NULL ORDER BY 1",
						  true, 0);
		if (ret != SPI_OK_SELECT)
			elog(ERROR, "could not list the change logs: %s", SPI_result_code_string(ret));
		for (i = 0; i < SPI_processed; i++)
		{
			bool isnull;
			Oid viewid = DatumGetObjectId(SPI_getbinval(SPI_tuptable->vals[i],
														SPI_tuptable->tupdesc, 1, &isnull));
			MemoryContext old = MemoryContextSwitchTo(cxt);

			work->windowed = lappend_oid(work->windowed, viewid);
			MemoryContextSwitchTo(old);
		}
		trim();
	}
	streamproc_spi_as_owner_end(&saved);
}

static void
emit_windows_as_owner(void *arg)
{
	StreamprocAsOwner saved;

	streamproc_spi_as_owner_begin(&saved);
	emit_windows(*(Oid *)arg);
	streamproc_spi_as_owner_end(&saved);
}

/*
 * One final-windows log's turn: its windows that every slot closed since
 * windows_done become changes.  Connected to SPI as the schema's owner.
 */
static void
emit_windows(Oid viewid)
{
	StreamprocView *v = streamproc_view_load(viewid, true);
	TimestampTz bound;
	TimestampTz done;
	char *start;
	int64 last;
	int64 added;
	bool found;
	Datum args[5];
	int ret;

	if (v == NULL || v->window_kind == 0 || logs_window_updates(v) ||
		!streamproc_final_windows_bound(v, &bound))
		return;

	/* Our turn: the log's row, locked until we commit. */
	last = take_positions(viewid, 0, &done, &found);
	if (!found || bound <= done)
		return;
	/* The rows of the windows that end in (done, bound], by their start. */
	start = streamproc_window_start_column(v);
	if (start == NULL)
		elog(ERROR, "continuous view %u no longer shows the start of its windows", viewid);
	args[0] = ObjectIdGetDatum(viewid);
	args[1] = Int64GetDatum(last);
	args[2] = TimestampTzGetDatum(GetCurrentTimestamp());
	args[3] = TimestampTzGetDatum(done == DT_NOBEGIN ? DT_NOBEGIN : done - v->window_size);
	args[4] = TimestampTzGetDatum(bound - v->window_size);
	ret = SPI_execute_with_args(psprintf("INSERT INTO streamproc.changes (view, position, changed_at, old, new)"
										 " SELECT $1, $2 + pg_catalog.row_number() OVER (ORDER BY w.%s), $3, NULL,"
										 " pg_catalog.to_jsonb(w) FROM %s w WHERE w.%s > $4 AND w.%s <= $5",
										 quote_identifier(start),
										 quote_qualified_identifier(get_namespace_name(get_rel_namespace(viewid)),
																	get_rel_name(viewid)),
										 quote_identifier(start), quote_identifier(start)),
								5, (Oid[]){OIDOID, INT8OID, TIMESTAMPTZOID, TIMESTAMPTZOID, TIMESTAMPTZOID},
								args, NULL, false, 0);
	if (ret != SPI_OK_INSERT)
		elog(ERROR, "could not insert the changes of continuous view %u: %s", viewid,
			 SPI_result_code_string(ret));
	added = (int64)SPI_processed;
	args[1] = Int64GetDatum(last + added);
	args[2] = TimestampTzGetDatum(bound);
	ret = SPI_execute_with_args("UPDATE streamproc.change_logs SET last_position = $2, windows_done = $3"
								" WHERE view = $1",
								3, (Oid[]){OIDOID, INT8OID, TIMESTAMPTZOID}, args, NULL, false, 0);
	if (ret != SPI_OK_UPDATE)
		elog(ERROR, "could not update streamproc.change_logs: %s", SPI_result_code_string(ret));
	if (added > 0)
		notify(viewid, last + added);
}

/* When change position of a log was numbered, or DT_NOEND: no such change. */
static TimestampTz
changed_at(Oid viewid, int64 position)
{
	Datum args[2];
	bool isnull;
	int ret;

	args[0] = ObjectIdGetDatum(viewid);
	args[1] = Int64GetDatum(position);
	ret = SPI_execute_with_args("SELECT changed_at FROM streamproc.changes WHERE view = $1 AND position = $2",
								2, (Oid[]){OIDOID, INT8OID}, args, NULL, true, 1);
	if (ret != SPI_OK_SELECT)
		elog(ERROR, "could not read streamproc.changes: %s", SPI_result_code_string(ret));
	if (SPI_processed == 0)
		return DT_NOEND;
	return DatumGetTimestampTz(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull));
}

/*
 * Delete the changes older than their log's retention, a prefix of each
 * log, and record how far.  changed_at rises with the position (writers
 * take it under the log's row lock), so the end of the prefix is found by
 * a binary search over the positions, which have no gaps after trimmed_to:
 * a few primary-key look-ups, and no index on changed_at to maintain.  A
 * log whose row a writer holds is trimmed next time.
 */
static void
trim(void)
{
	int64 *logs;
	uint64 nlogs;
	uint64 i;
	int ret;

	/* A Kafka sink (0.7 on) holds back what it has not produced (sink.c). */
	if (OidIsValid(get_relname_relid("sinks", get_namespace_oid("streamproc", false))))
		ret = SPI_execute("SELECT view::pg_catalog.oid, trimmed_to,"
						  " LEAST(last_position, (SELECT pg_catalog.min(s.position)"
						  " FROM streamproc.sinks s WHERE s.view = l.view)),"
						  " pg_catalog.now() - retention"
						  " FROM streamproc.change_logs l WHERE trimmed_to < last_position"
						  " FOR UPDATE OF l SKIP LOCKED",
						  false, 0);
	else
		ret = SPI_execute("SELECT view::pg_catalog.oid, trimmed_to, last_position, pg_catalog.now() - retention"
						  " FROM streamproc.change_logs WHERE trimmed_to < last_position"
						  " FOR UPDATE SKIP LOCKED",
						  false, 0);
	if (ret != SPI_OK_SELECT)
		elog(ERROR, "could not read streamproc.change_logs: %s", SPI_result_code_string(ret));
	nlogs = SPI_processed;
	logs = palloc(sizeof(int64) * 4 * Max(nlogs, 1));
	for (i = 0; i < nlogs; i++)
	{
		HeapTuple tup = SPI_tuptable->vals[i];
		TupleDesc desc = SPI_tuptable->tupdesc;
		bool isnull;

		logs[4 * i] = DatumGetObjectId(SPI_getbinval(tup, desc, 1, &isnull));
		logs[4 * i + 1] = DatumGetInt64(SPI_getbinval(tup, desc, 2, &isnull));
		logs[4 * i + 2] = DatumGetInt64(SPI_getbinval(tup, desc, 3, &isnull));
		logs[4 * i + 3] = DatumGetTimestampTz(SPI_getbinval(tup, desc, 4, &isnull));
	}
	for (i = 0; i < nlogs; i++)
	{
		Oid viewid = (Oid)logs[4 * i];
		int64 lo = logs[4 * i + 1] + 1;
		int64 hi = logs[4 * i + 2];
		TimestampTz cutoff = (TimestampTz)logs[4 * i + 3];
		Datum args[2];

		/* The largest position changed before the cutoff, if any. */
		if (lo > hi || changed_at(viewid, lo) >= cutoff)
			continue;
		while (lo < hi)
		{
			int64 mid = lo + (hi - lo + 1) / 2;

			if (changed_at(viewid, mid) < cutoff)
				lo = mid;
			else
				hi = mid - 1;
		}
		args[0] = ObjectIdGetDatum(viewid);
		args[1] = Int64GetDatum(lo);
		ret = SPI_execute_with_args("DELETE FROM streamproc.changes WHERE view = $1 AND position <= $2",
									2, (Oid[]){OIDOID, INT8OID}, args, NULL, false, 0);
		if (ret != SPI_OK_DELETE)
			elog(ERROR, "could not trim streamproc.changes: %s", SPI_result_code_string(ret));
		trimmed_rows += (int64)SPI_processed;
		ret = SPI_execute_with_args("UPDATE streamproc.change_logs SET trimmed_to = $2 WHERE view = $1",
									2, (Oid[]){OIDOID, INT8OID}, args, NULL, false, 0);
		if (ret != SPI_OK_UPDATE)
			elog(ERROR, "could not update streamproc.change_logs: %s", SPI_result_code_string(ret));
		CHECK_FOR_INTERRUPTS();
	}
	pfree(logs);
}

/*
 * Lock a view's log and add n to its last position; returns the new last
 * position (*found false: the view keeps no log), and its windows_done.
 */
static int64
take_positions(Oid viewid, int64 n, TimestampTz *done, bool *found)
{
	Datum args[2];
	bool isnull;
	Datum d;
	int ret;

	args[0] = ObjectIdGetDatum(viewid);
	args[1] = Int64GetDatum(n);
	ret = SPI_execute_with_args("UPDATE streamproc.change_logs SET last_position = last_position + $2"
								" WHERE view = $1 RETURNING last_position, windows_done",
								2, (Oid[]){OIDOID, INT8OID}, args, NULL, false, 0);
	if (ret != SPI_OK_UPDATE_RETURNING)
		elog(ERROR, "could not update streamproc.change_logs: %s", SPI_result_code_string(ret));
	*found = SPI_processed == 1;
	if (!*found)
		return 0;
	if (done != NULL)
	{
		d = SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 2, &isnull);
		*done = isnull ? DT_NOEND : DatumGetTimestampTz(d);
	}
	return DatumGetInt64(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull));
}

/* Tell the view's listeners, at commit, the last position. */
static void
notify(Oid viewid, int64 last)
{
	char payload[32];

	snprintf(payload, sizeof(payload), INT64_FORMAT, last);
	Async_Notify(channel_name(viewid), payload);
}

static char *
channel_name(Oid viewid)
{
	return psprintf("streamproc_changes_%u", viewid);
}

/*
 * The continuous view that a change log is created for (owner: the caller
 * must own it), with the shapes that can keep one.
 */
static StreamprocView *
followed_view(Oid viewid, bool owner)
{
	StreamprocView *v = streamproc_view_load(viewid, true);
	const char *name = get_rel_name(viewid);

	if (v == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_WRONG_OBJECT_TYPE),
				 errmsg("\"%s\" is not a continuous view", name ? name : "?"),
				 errhint("Change logs follow continuous views (CREATE VIEW ... WITH (continuous)).")));
	if (owner && !pg_class_ownercheck(viewid, GetUserId()))
		aclcheck_error(ACLCHECK_NOT_OWNER, OBJECT_VIEW, name);
	if (v->kind == STREAMPROC_VIEW_APPEND || v->window_kind == 0)
		return v;
	if (((v->window_kind == WINDOW_TUMBLE || v->window_kind == WINDOW_HOP) && v->emit == 'f') ||
		logs_window_updates(v))
	{
		if (streamproc_window_start_column(v) == NULL)
			ereport(ERROR,
					(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
					 errmsg("continuous view \"%s\" cannot keep a change log", name),
					 errdetail("It does not show the start of its windows, by which its closed windows are passed on."),
					 errhint("Select the window's start (window_start) in \"%s\".", name)));
		return v;
	}
	ereport(ERROR,
			(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
			 errmsg("continuous view \"%s\" cannot keep a change log yet", name),
			 errdetail("%s", v->window_kind == WINDOW_HOP
								 ? "Its hopping windows change until they close; change logs follow them once closed (emit = 'final')."
								 : "Change logs follow views without windows, tumbling windows, and hopping windows with emit = 'final'."),
			 errhint("%s", v->window_kind == WINDOW_HOP
							   ? "Create the view WITH (continuous, emit = 'final') to follow its closed windows, or use tumbling windows."
							   : "Follow a view of tumbling windows over the same stream, or read this view with SELECT.")));
	return NULL; /* keep compiler quiet */
}

static void
check_retention(Interval *retention)
{
	if (retention->month < 0 || retention->day < 0 || retention->time < 0 ||
		(retention->month == 0 && retention->day == 0 && retention->time == 0))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("the retention of a change log must be positive"),
				 errhint("For example retention => '1 day'.")));
}

/*
 * streamproc_spi_as_owner_begin
 *		Connect to SPI as the owner of schema streamproc (changes.h);
 *		streamproc_spi_as_owner_end() goes back.
 */
void
streamproc_spi_as_owner_begin(StreamprocAsOwner *saved)
{
	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");
	GetUserIdAndSecContext(&saved->userid, &saved->sec_context);
	SetUserIdAndSecContext(streamproc_schema_owner(),
						   saved->sec_context | SECURITY_LOCAL_USERID_CHANGE);
}

void
streamproc_spi_as_owner_end(StreamprocAsOwner *saved)
{
	SetUserIdAndSecContext(saved->userid, saved->sec_context);
	SPI_finish();
}

/* ----------------------------------------------------------------
 * Views whose groups change
 * ----------------------------------------------------------------
 */

/*
 * The view's query over its groups table with the group columns appended
 * as "$k1".."$kn": its rows keyed by their group.
 */
static char *
group_query(StreamprocView *v)
{
	Relation rel = relation_open(v->view, AccessShareLock);
	Query *query = copyObject(get_view_query(rel));
	Index rti = 0;
	Index i;
	int k;

	relation_close(rel, AccessShareLock);
	for (i = 1; i <= list_length(query->rtable); i++)
		if (rt_fetch(i, query->rtable)->rtekind == RTE_RELATION &&
			rt_fetch(i, query->rtable)->relid == v->groups_table)
			rti = i;
	if (rti == 0)
		elog(ERROR, "continuous view %u does not read its groups table", v->view);
	for (k = 1; k <= v->ngroups; k++)
	{
		Oid type;
		int32 typmod;
		Oid coll;

		get_atttypetypmodcoll(v->groups_table, k, &type, &typmod, &coll);
		query->targetList = lappend(query->targetList,
									makeTargetEntry((Expr *)makeVar(rti, k, type, typmod, coll, 0),
													list_length(query->targetList) + 1,
													psprintf("$k%d", k), false));
	}
	return pg_get_querydef(query, false);
}

/* The expression of a row of group_query() x as the view shows it. */
static char *
group_row_sql(int ngroups)
{
	StringInfoData buf;
	int k;

	initStringInfo(&buf);
	appendStringInfoString(&buf, "pg_catalog.to_jsonb(x)");
	if (ngroups > 0)
	{
		appendStringInfoString(&buf, " OPERATOR(pg_catalog.-) ARRAY[");
		for (k = 1; k <= ngroups; k++)
			appendStringInfo(&buf, "%s'$k%d'", k > 1 ? ", " : "", k);
		appendStringInfoString(&buf, "]::pg_catalog.text[]");
	}
	return buf.data;
}

/* The key of a group of group_query() x, or of parameters $1..$n. */
static char *
group_key_sql(int ngroups, bool params)
{
	StringInfoData buf;
	int k;

	initStringInfo(&buf);
	appendStringInfoString(&buf, "pg_catalog.jsonb_build_array(");
	for (k = 1; k <= ngroups; k++)
	{
		if (params)
			appendStringInfo(&buf, "%s$%d", k > 1 ? ", " : "", k);
		else
			appendStringInfo(&buf, "%sx.\"$k%d\"", k > 1 ? ", " : "", k);
	}
	appendStringInfoChar(&buf, ')');
	return buf.data;
}

/*
 * The statement that logs a checkpoint's changes of an aggregating view:
 * cur (SQL returning key, row, i, h: each changed group's key, its row now
 * or NULL, its order, the key's hash) compared with the rows logged last;
 * those that differ are numbered after $4, logged, and become the rows
 * logged last.  $1 is the view.  Returns the number of changes.
 */
static char *
diff_sql(const char *cur)
{
	return psprintf("WITH cur AS (%s),"
					" diff AS (SELECT c.i, c.key, c.h, m.row AS old, c.row AS new FROM cur c"
					"          LEFT JOIN streamproc.change_rows m"
					"            ON m.view = $1 AND m.key_hash = c.h AND m.key OPERATOR(pg_catalog.=) c.key"
					"          WHERE m.row IS DISTINCT FROM c.row),"
					" numbered AS (SELECT d.*, $4 + pg_catalog.row_number() OVER (ORDER BY d.i) AS position FROM diff d),"
					" logged AS (INSERT INTO streamproc.changes (view, position, changed_at, key, old, new)"
					"            SELECT $1, position, pg_catalog.clock_timestamp(), key, old, new FROM numbered),"
					" gone AS (DELETE FROM streamproc.change_rows m USING numbered n"
					"          WHERE m.view = $1 AND m.key_hash = n.h AND m.key OPERATOR(pg_catalog.=) n.key),"
					" kept AS (INSERT INTO streamproc.change_rows (view, key_hash, key, row)"
					"          SELECT $1, h, key, new FROM numbered WHERE new IS NOT NULL)"
					" SELECT pg_catalog.count(*) FROM numbered",
					cur);
}

/*
 * create_change_log() of a view whose groups change: its rows are the
 * first changes, and the rows last logged (streamproc.change_rows).
 * Connected to SPI as the schema's owner.
 */
static int64
start_group_log(StreamprocView *v, TimestampTz now)
{
	Datum args[2];
	int ret;

	/* Checkpoints of the view log after our commit (see log_groups()). */
	LockRelationOid(v->groups_table, ShareLock);
	args[0] = ObjectIdGetDatum(v->view);
	args[1] = TimestampTzGetDatum(now);
	ret = SPI_execute_with_args("DELETE FROM streamproc.change_rows WHERE view = $1",
								1, (Oid[]){OIDOID}, args, NULL, false, 0);
	if (ret != SPI_OK_DELETE)
		elog(ERROR, "could not clean streamproc.change_rows: %s", SPI_result_code_string(ret));
	ret = SPI_execute_with_args(psprintf("WITH g AS (SELECT %s AS key, %s AS row FROM (%s) x),"
										 " r AS (INSERT INTO streamproc.change_rows (view, key_hash, key, row)"
										 "       SELECT $1, pg_catalog.jsonb_hash_extended(key, 0), key, row FROM g)"
										 " INSERT INTO streamproc.changes (view, position, changed_at, key, old, new)"
										 " SELECT $1, pg_catalog.row_number() OVER (), $2, key, NULL, row FROM g",
										 group_key_sql(v->ngroups, false), group_row_sql(v->ngroups),
										 group_query(v)),
								2, (Oid[]){OIDOID, TIMESTAMPTZOID}, args, NULL, false, 0);
	if (ret != SPI_OK_INSERT)
		elog(ERROR, "could not insert the changes of continuous view %u: %s", v->view,
			 SPI_result_code_string(ret));
	return (int64)SPI_processed;
}

/* Reading the rows of an aggregating view's groups by key (log_groups). */
typedef struct GroupReader
{
	StreamprocView *view;
	GroupKeyCodec *codec;
	char *query; /* group_query() */
	Oid *types;
	Datum *values;
	bool *isnull;
	char *nulls;
	SPIPlanPtr keyed;    /* WHERE x."$k1" = $1 AND ... */
	SPIPlanPtr nullsafe; /* IS NOT DISTINCT FROM: keys with a NULL */
	MemoryContext cxt;   /* where results are copied */
	List *keys;          /* jsonb key of each group read */
	List *rows;          /* its row, or NULL: the view does not show it */
	int failed;          /* groups left out: their row failed */
	Datum *key_values;   /* windows: the ordinary key columns decoded */
	bool *key_isnull;
} GroupReader;

/*
 * The group columns of a tumbling window's group key: the window's start
 * and end where the view shows them (their roles), the ordinary group key
 * in the other columns.
 */
static void
window_key_values(GroupReader *r, const char *key, uint32 keylen)
{
	int n = r->view->ngroups;
	Datum *kv = r->key_values;
	bool *kn = r->key_isnull;
	TimestampTz start;
	TimestampTz end;
	int j = 0;
	int k;

	streamproc_window_key_decode(key, keylen, &start, &end);
	groupkey_decode(r->codec, key + WINDOW_KEY_PREFIX, keylen - WINDOW_KEY_PREFIX, kv, kn);
	for (k = 0; k < n; k++)
	{
		r->isnull[k] = false;
		if (r->view->window_roles[k] == WINDOW_ROLE_START)
			r->values[k] = TimestampTzGetDatum(start);
		else if (r->view->window_roles[k] == WINDOW_ROLE_END)
			r->values[k] = TimestampTzGetDatum(start + r->view->window_size);
		else
		{
			r->values[k] = kv[j];
			r->isnull[k] = kn[j];
			j++;
		}
	}
}

/*
 * Read the view's row of one group, by a keyed read of the view (all slots
 * combined, finalized, the view's expressions and HAVING applied), and add
 * the key and row to r->keys and r->rows.
 */
static void
read_group_row(GroupReader *r, const char *key, uint32 keylen)
{
	int n = r->view->ngroups;
	bool anynull = false;
	SPIPlanPtr plan;
	MemoryContext old;
	bool rnull;
	Datum d;
	int ret;
	int k;

	if (r->view->window_kind != 0)
		window_key_values(r, key, keylen);
	else
		groupkey_decode(r->codec, key, keylen, r->values, r->isnull);
	for (k = 0; k < n; k++)
	{
		r->nulls[k] = r->isnull[k] ? 'n' : ' ';
		anynull |= r->isnull[k];
	}
	plan = anynull ? r->nullsafe : r->keyed;
	if (plan == NULL)
	{
		StringInfoData sql;

		initStringInfo(&sql);
		appendStringInfo(&sql, "SELECT %s, (SELECT %s FROM (%s) x", group_key_sql(n, true),
						 group_row_sql(n), r->query);
		for (k = 1; k <= n; k++)
			appendStringInfo(&sql, " %s x.\"$k%d\" %s $%d", k == 1 ? "WHERE" : "AND", k,
							 anynull ? "IS NOT DISTINCT FROM" : "=", k);
		appendStringInfoChar(&sql, ')');
		plan = SPI_prepare(sql.data, n, r->types);
		if (plan == NULL)
			elog(ERROR, "could not prepare the rows of a change log: %s",
				 SPI_result_code_string(SPI_result));
		if (SPI_keepplan(plan) != 0)
			elog(ERROR, "could not keep the plan of a change log");
		if (anynull)
			r->nullsafe = plan;
		else
			r->keyed = plan;
	}
	/*
	 * Not read-only: a fresh snapshot, which sees the runs this checkpoint
	 * just wrote.  Until every worker has loaded its slot the view is read
	 * from the checkpoint (viewscan.c), and the transaction's first
	 * snapshot would show the groups as they were before it (found by the
	 * sanitized CI run, whose slower workers loaded a new view 14 ms apart:
	 * the first checkpoint logged nothing).
	 */
	ret = SPI_execute_plan(plan, r->values, r->nulls, false, 1);
	if (ret != SPI_OK_SELECT || SPI_processed != 1)
		elog(ERROR, "could not read the rows of a change log: %s", SPI_result_code_string(ret));
	old = MemoryContextSwitchTo(r->cxt);
	d = SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &rnull);
	r->keys = lappend(r->keys, DatumGetPointer(datumCopy(d, false, -1)));
	d = SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 2, &rnull);
	r->rows = lappend(r->rows, rnull ? NULL : DatumGetPointer(datumCopy(d, false, -1)));
	MemoryContextSwitchTo(old);
	SPI_freetuptable(SPI_tuptable);
}

/* A changed group of a windowed view: its window's start, and its key. */
typedef struct WindowDirty
{
	TimestampTz start;
	const char *key;
	uint32 keylen;
} WindowDirty;

static int
window_dirty_cmp(const void *a, const void *b)
{
	TimestampTz x = ((const WindowDirty *)a)->start;
	TimestampTz y = ((const WindowDirty *)b)->start;

	return x < y ? -1 : (x > y ? 1 : 0);
}

/*
 * read_group_rows() of a windowed view: one read per window rather than
 * per group.  A keyed read of a window that some slot closed reads the
 * whole window (its runs, viewscan.c), so a checkpoint that closes a window
 * of thousands of changed groups spent seconds on each of them, holding the
 * log's row.  Here each window's changed groups are read in one statement
 * that reads the window once and picks them by key.
 */
static void
read_window_rows(GroupReader *r, const char *dirty, int64 len)
{
	int n = r->view->ngroups;
	int startcol = -1;
	int64 count = 0;
	int64 pos;
	WindowDirty *d;
	SPIPlanPtr plan;
	StringInfoData sql;
	Oid *argtypes = palloc(sizeof(Oid) * (n + 1));
	Datum *args = palloc(sizeof(Datum) * (n + 1));
	int16 *typlen = palloc(sizeof(int16) * Max(n, 1));
	bool *typbyval = palloc(sizeof(bool) * Max(n, 1));
	char *typalign = palloc(Max(n, 1));
	int64 i;
	int k;

	for (pos = 0; pos < len; count++)
	{
		uint32 keylen;

		memcpy(&keylen, dirty + pos + sizeof(uint32), sizeof(uint32));
		pos += 2 * sizeof(uint32) + keylen;
	}
	d = palloc(sizeof(WindowDirty) * Max(count, 1));
	for (pos = 0, i = 0; pos < len; i++)
	{
		TimestampTz end;

		memcpy(&d[i].keylen, dirty + pos + sizeof(uint32), sizeof(uint32));
		d[i].key = dirty + pos + 2 * sizeof(uint32);
		streamproc_window_key_decode(d[i].key, d[i].keylen, &d[i].start, &end);
		pos += 2 * sizeof(uint32) + d[i].keylen;
	}
	qsort(d, count, sizeof(WindowDirty), window_dirty_cmp);

	/*
	 * WITH w AS (the window's rows by key) SELECT each changed key, its
	 * row: $1 the window's start (or end, as the view shows it), $2.. the
	 * changed groups' key columns as arrays.
	 */
	for (k = 0; k < n; k++)
	{
		if (startcol < 0 && (r->view->window_roles[k] == WINDOW_ROLE_START ||
							 r->view->window_roles[k] == WINDOW_ROLE_END))
			startcol = k;
		argtypes[k + 1] = get_array_type(r->types[k]);
		if (!OidIsValid(argtypes[k + 1]))
			break; /* no array type: one read per group */
		get_typlenbyvalalign(r->types[k], &typlen[k], &typbyval[k], &typalign[k]);
	}
	if (startcol < 0 || k < n)
	{
		for (i = 0; i < count; i++)
			read_group_row(r, d[i].key, d[i].keylen);
		return;
	}
	argtypes[0] = TIMESTAMPTZOID;
	initStringInfo(&sql);
	appendStringInfo(&sql, "WITH w AS MATERIALIZED (SELECT %s AS key, %s AS row FROM (%s) x WHERE x.\"$k%d\" = $1)"
						   " SELECT c.key, w.row FROM (SELECT pg_catalog.jsonb_build_array(",
					 group_key_sql(n, false), group_row_sql(n), r->query, startcol + 1);
	for (k = 0; k < n; k++)
		appendStringInfo(&sql, "%su.c%d", k > 0 ? ", " : "", k + 1);
	appendStringInfoString(&sql, ") AS key, u.i FROM ROWS FROM (");
	for (k = 0; k < n; k++)
		appendStringInfo(&sql, "%spg_catalog.unnest($%d)", k > 0 ? ", " : "", k + 2);
	appendStringInfoString(&sql, ") WITH ORDINALITY AS u(");
	for (k = 0; k < n; k++)
		appendStringInfo(&sql, "c%d, ", k + 1);
	appendStringInfoString(&sql, "i)) c LEFT JOIN w ON w.key OPERATOR(pg_catalog.=) c.key ORDER BY c.i");
	plan = SPI_prepare(sql.data, n + 1, argtypes);
	if (plan == NULL)
		elog(ERROR, "could not prepare the rows of a change log: %s", SPI_result_code_string(SPI_result));

	for (i = 0; i < count;)
	{
		int64 first = i;
		int64 m;
		Datum **cols = palloc(sizeof(Datum *) * Max(n, 1));
		bool **colnulls = palloc(sizeof(bool *) * Max(n, 1));
		int dims[1];
		int lbs[1] = {1};
		uint64 j;
		int ret;

		while (i < count && d[i].start == d[first].start)
			i++;
		m = i - first;
		for (k = 0; k < n; k++)
		{
			cols[k] = palloc(sizeof(Datum) * m);
			colnulls[k] = palloc(sizeof(bool) * m);
		}
		for (j = 0; j < (uint64)m; j++)
		{
			window_key_values(r, d[first + j].key, d[first + j].keylen);
			for (k = 0; k < n; k++)
			{
				cols[k][j] = r->values[k];
				colnulls[k][j] = r->isnull[k];
			}
		}
		args[0] = TimestampTzGetDatum(r->view->window_roles[startcol] == WINDOW_ROLE_START
										  ? d[first].start
										  : d[first].start + r->view->window_size);
		dims[0] = (int)m;
		for (k = 0; k < n; k++)
			args[k + 1] = PointerGetDatum(construct_md_array(cols[k], colnulls[k], 1, dims, lbs,
															 r->types[k], typlen[k], typbyval[k],
															 typalign[k]));
		/* Not read-only: see read_group_row(). */
		ret = SPI_execute_plan(plan, args, NULL, false, 0);
		if (ret != SPI_OK_SELECT || SPI_processed != (uint64)m)
			elog(ERROR, "could not read the rows of a change log: %s", SPI_result_code_string(ret));
		for (j = 0; j < SPI_processed; j++)
		{
			MemoryContext old = MemoryContextSwitchTo(r->cxt);
			bool rnull;
			Datum v;

			v = SPI_getbinval(SPI_tuptable->vals[j], SPI_tuptable->tupdesc, 1, &rnull);
			r->keys = lappend(r->keys, DatumGetPointer(datumCopy(v, false, -1)));
			v = SPI_getbinval(SPI_tuptable->vals[j], SPI_tuptable->tupdesc, 2, &rnull);
			r->rows = lappend(r->rows, rnull ? NULL : DatumGetPointer(datumCopy(v, false, -1)));
			MemoryContextSwitchTo(old);
		}
		SPI_freetuptable(SPI_tuptable);
		CHECK_FOR_INTERRUPTS();
	}
	SPI_freeplan(plan);
}

/*
 * Read the rows of every group of the dirty list, in a subtransaction.
 * When some group's row fails with an error of its data (a view expression
 * that fails for it: division by zero...), read them again one by one,
 * each in a subtransaction, and leave out those that fail: the log keeps
 * their last row until theirs can be computed (the view's readers get the
 * error for them), and the view's other groups and checkpoints go on.
 */
static void
read_group_rows(GroupReader *r, const char *dirty, int64 len)
{
	MemoryContext cxt = CurrentMemoryContext;
	ResourceOwner owner = CurrentResourceOwner;
	bool each = false;
	int64 pos;

	BeginInternalSubTransaction(NULL);
	PG_TRY();
	{
		if (r->view->window_kind != 0)
			read_window_rows(r, dirty, len);
		else
		{
			for (pos = 0; pos < len;)
			{
				uint32 keylen;

				memcpy(&keylen, dirty + pos + sizeof(uint32), sizeof(uint32));
				read_group_row(r, dirty + pos + 2 * sizeof(uint32), keylen);
				pos += 2 * sizeof(uint32) + keylen;
				CHECK_FOR_INTERRUPTS();
			}
		}
		ReleaseCurrentSubTransaction();
	}
	PG_CATCH();
	{
		ErrorData *edata;

		MemoryContextSwitchTo(cxt);
		edata = CopyErrorData();
		FlushErrorState();
		RollbackAndReleaseCurrentSubTransaction();
		MemoryContextSwitchTo(cxt);
		CurrentResourceOwner = owner;
		if (streamproc_error_kind(edata) != STREAMPROC_ERROR_DATA)
			ReThrowError(edata);
		FreeErrorData(edata);
		each = true;
	}
	PG_END_TRY();
	MemoryContextSwitchTo(cxt);
	CurrentResourceOwner = owner;
	if (!each)
		return;

	r->keys = NIL;
	r->rows = NIL;
	for (pos = 0; pos < len;)
	{
		uint32 keylen;
		const char *key;

		memcpy(&keylen, dirty + pos + sizeof(uint32), sizeof(uint32));
		key = dirty + pos + 2 * sizeof(uint32);
		pos += 2 * sizeof(uint32) + keylen;
		BeginInternalSubTransaction(NULL);
		PG_TRY();
		{
			read_group_row(r, key, keylen);
			ReleaseCurrentSubTransaction();
		}
		PG_CATCH();
		{
			ErrorData *edata;

			MemoryContextSwitchTo(cxt);
			edata = CopyErrorData();
			FlushErrorState();
			RollbackAndReleaseCurrentSubTransaction();
			MemoryContextSwitchTo(cxt);
			CurrentResourceOwner = owner;
			if (streamproc_error_kind(edata) != STREAMPROC_ERROR_DATA)
				ReThrowError(edata);
			if (r->failed++ == 0)
				ereport(LOG,
						(errmsg("continuous view \"%s\": the row of a changed group could not be computed for its change log: %s",
								get_rel_name(r->view->view), edata->message ? edata->message : ""),
						 errdetail("SQLSTATE %s.  The log keeps the group's last row until its row can be computed; reading the group gives the same error.",
								   unpack_sql_state(edata->sqlerrcode)),
						 errhint("Change the view's expressions so that they do not fail for any group.")));
			FreeErrorData(edata);
		}
		PG_END_TRY();
		MemoryContextSwitchTo(cxt);
		CurrentResourceOwner = owner;
		CHECK_FOR_INTERRUPTS();
	}
}

/*
 * streamproc_changes_log_groups
 *		See changes.h.
 */
void
streamproc_changes_log_groups(Oid viewid, Oid groups_table, GroupKeyCodec *codec,
							  const char *dirty, int64 len)
{
	GroupReader r;
	MemoryContext old;
	StreamprocAsOwner saved;
	Datum args[4];
	int64 last;
	int64 added;
	bool found;
	bool qnull;
	int ret;
	int n;
	int k;

	if (!log_installed())
		return;

	/*
	 * After a create_change_log() of the view that is in progress, which
	 * reads its rows; and one checkpoint of the view at a time (the log's
	 * row lock, taken before the rows are read), so each compares with the
	 * rows the one before logged.
	 */
	if (!may_have_log(viewid, groups_table))
		return;
	LockRelationOid(viewid, AccessShareLock); /* as DROP VIEW: the view first */
	if (get_rel_name(viewid) == NULL)
		return;
	LockRelationOid(groups_table, RowExclusiveLock);
	streamproc_spi_as_owner_begin(&saved);
	last = take_positions(viewid, 0, NULL, &found);
	memset(&r, 0, sizeof(r));
	r.view = found ? streamproc_view_load(viewid, true) : NULL;
	if (r.view == NULL || (r.view->window_kind != 0 && !logs_window_updates(r.view)) ||
		(len == 0 && r.view->window_kind == 0))
	{
		streamproc_spi_as_owner_end(&saved);
		return;
	}
	n = r.view->ngroups;
	r.codec = codec;
	r.cxt = AllocSetContextCreate(CurrentMemoryContext, "streamproc change log", ALLOCSET_DEFAULT_SIZES);
	old = MemoryContextSwitchTo(r.cxt);
	r.types = palloc(sizeof(Oid) * Max(n, 1));
	r.values = palloc(sizeof(Datum) * Max(n, 1));
	r.isnull = palloc(sizeof(bool) * Max(n, 1));
	r.nulls = palloc(Max(n, 1) + 1);
	r.key_values = palloc(sizeof(Datum) * Max(n, 1));
	r.key_isnull = palloc(sizeof(bool) * Max(n, 1));
	for (k = 0; k < n; k++)
		r.types[k] = r.view->group_types[k];
	r.query = group_query(r.view);
	MemoryContextSwitchTo(old);

	/*
	 * The view's current row of each changed group (NULL: not shown), one
	 * keyed read each: most of the time goes to the read itself (combining
	 * the slots, finalizing, jsonb), about 6 us a group, as much as a scan
	 * for many keys at once takes per key.
	 */
	PG_TRY();
	{
		read_group_rows(&r, dirty, len);
	}
	PG_FINALLY();
	{
		if (r.keyed)
			SPI_freeplan(r.keyed);
		if (r.nullsafe)
			SPI_freeplan(r.nullsafe);
	}
	PG_END_TRY();

	/* Those that differ from the rows logged last: old and new, numbered. */
	{
		int count = list_length(r.keys);
		Datum *kd = palloc(sizeof(Datum) * Max(count, 1));
		Datum *rd = palloc(sizeof(Datum) * Max(count, 1));
		bool *rn = palloc(sizeof(bool) * Max(count, 1));
		int dims[1] = {count};
		int lbs[1] = {1};
		int i = 0;
		ListCell *kc;
		ListCell *rc;

		forboth(kc, r.keys, rc, r.rows)
		{
			kd[i] = PointerGetDatum(lfirst(kc));
			rn[i] = lfirst(rc) == NULL;
			rd[i] = rn[i] ? (Datum)0 : PointerGetDatum(lfirst(rc));
			i++;
		}
		args[0] = ObjectIdGetDatum(viewid);
		args[1] = PointerGetDatum(construct_array(kd, count, JSONBOID, -1, false, TYPALIGN_INT));
		args[2] = PointerGetDatum(construct_md_array(rd, rn, 1, dims, lbs, JSONBOID, -1, false, TYPALIGN_INT));
		args[3] = Int64GetDatum(last);
	}
	ret = SPI_execute_with_args(
		diff_sql("SELECT c.key, c.row, c.i, pg_catalog.jsonb_hash_extended(c.key, 0) AS h"
				 " FROM ROWS FROM (pg_catalog.unnest($2), pg_catalog.unnest($3)) WITH ORDINALITY AS c(key, row, i)"),
		4, (Oid[]){OIDOID, JSONBARRAYOID, JSONBARRAYOID, INT8OID}, args, NULL, false, 0);
	if (ret != SPI_OK_SELECT || SPI_processed != 1)
		elog(ERROR, "could not log the changes of continuous view %u: %s", viewid,
			 SPI_result_code_string(ret));
	added = DatumGetInt64(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &qnull));
	replaced_rows += added;
	if (r.view->window_kind != 0)
		added += log_retention(r.view, last + added);
	if (added > 0)
	{
		args[1] = Int64GetDatum(last + added);
		ret = SPI_execute_with_args("UPDATE streamproc.change_logs SET last_position = $2 WHERE view = $1",
									2, (Oid[]){OIDOID, INT8OID}, args, NULL, false, 0);
		if (ret != SPI_OK_UPDATE)
			elog(ERROR, "could not update streamproc.change_logs: %s", SPI_result_code_string(ret));
		notify(viewid, last + added);
		streamproc_feed_changes(viewid, last, last + added);
	}
	MemoryContextDelete(r.cxt);
	streamproc_spi_as_owner_end(&saved);
}

/*
 * Whether a checkpoint must go on to log the view's changes: most views
 * keep no log, and a checkpoint should not hold their locks to the end of
 * its transaction (a DROP VIEW of an upstream locks the views over it, so
 * a checkpoint holding a view over it and waiting for the upstream's lock
 * deadlocked with it: t/150).  Look with the groups table's lock held, so
 * that no create_change_log() is half done (it holds ShareLock there),
 * then let it go (a log that exists stays until the caller's locks, which
 * take the view first, as DROP VIEW does; one dropped meanwhile is found
 * missing); if the lock cannot be had at once, take the full path, which
 * waits.
 */
static bool
may_have_log(Oid viewid, Oid groups_table)
{
	StreamprocAsOwner saved;
	Datum arg = ObjectIdGetDatum(viewid);
	bool found;
	int ret;

	if (!ConditionalLockRelationOid(groups_table, RowExclusiveLock))
		return true;
	streamproc_spi_as_owner_begin(&saved);
	ret = SPI_execute_with_args("SELECT 1 FROM streamproc.change_logs WHERE view = $1",
								1, (Oid[]){OIDOID}, &arg, NULL, false, 0);
	if (ret != SPI_OK_SELECT)
		elog(ERROR, "could not read streamproc.change_logs: %s", SPI_result_code_string(ret));
	found = SPI_processed > 0;
	streamproc_spi_as_owner_end(&saved);
	/* The caller locks again, the view first, as DROP VIEW does. */
	UnlockRelationOid(groups_table, RowExclusiveLock);
	return found;
}

/*
 * Whether a windowed view's groups are logged as they change: tumbling
 * windows with emit = 'updates' (final windows are logged once closed,
 * by emit_windows()).
 */
static bool
logs_window_updates(StreamprocView *v)
{
	return v->window_kind == WINDOW_TUMBLE && v->emit != 'f';
}

/*
 * Windows with emit = 'updates': the groups of the windows that the view's
 * retention no longer shows (window_end before the view's watermark minus
 * its retention, as readers decide, viewscan.c) leave the log: a change
 * with old = the row logged last and new = NULL each, numbered after last.
 * Returns how many.  The view's change_rows are scanned only when the
 * bound moved since this backend last looked.
 */
static int64
log_retention(StreamprocView *v, int64 last)
{
	static Oid seen_view = InvalidOid;
	static TimestampTz seen_bound = DT_NOBEGIN;
	ViewStateInfo info;
	TimestampTz bound;
	Datum args[3];
	bool isnull;
	int start = -1;
	int ret;
	int k;

	if (v->retention <= 0 || !streamproc_state_info(MyDatabaseId, v->view, &info) ||
		TIMESTAMP_NOT_FINITE(info.watermark) || info.watermark == WATERMARK_NONE)
		return 0;
	for (k = 0; k < v->ngroups; k++)
		if (v->window_roles[k] == WINDOW_ROLE_START)
			start = k;
	if (start < 0)
		return 0;
	/* window_end < watermark - retention: window_start < that - size */
	bound = info.watermark - v->retention - v->window_size;
	if (seen_view == v->view && bound <= seen_bound)
		return 0;

	args[0] = ObjectIdGetDatum(v->view);
	args[1] = TimestampTzGetDatum(bound);
	args[2] = Int64GetDatum(last);
	ret = SPI_execute_with_args(psprintf("WITH gone AS (DELETE FROM streamproc.change_rows m"
										 "   WHERE m.view = $1 AND (m.key OPERATOR(pg_catalog.->>) %d)::pg_catalog.timestamptz < $2"
										 "   RETURNING m.key, m.row),"
										 " logged AS (INSERT INTO streamproc.changes (view, position, changed_at, key, old, new)"
										 "   SELECT $1, $3 + pg_catalog.row_number() OVER (ORDER BY g.key), pg_catalog.clock_timestamp(),"
										 "          g.key, g.row, NULL FROM gone g)"
										 " SELECT pg_catalog.count(*) FROM gone",
										 start),
								3, (Oid[]){OIDOID, TIMESTAMPTZOID, INT8OID}, args, NULL, false, 0);
	if (ret != SPI_OK_SELECT || SPI_processed != 1)
		elog(ERROR, "could not log the windows that continuous view %u no longer keeps: %s", v->view,
			 SPI_result_code_string(ret));
	seen_view = v->view;
	seen_bound = bound;
	return DatumGetInt64(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull));
}

/* Whether the extension has change logs (version 0.6 on). */
static bool
log_installed(void)
{
	return OidIsValid(get_relname_relid("change_logs", get_namespace_oid("streamproc", false)));
}
