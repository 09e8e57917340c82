/*-------------------------------------------------------------------------
 *
 * stream.c
 *	  Streams: the streamproc foreign data wrapper, the stream log tables,
 *	  and the DDL that keeps them in step.
 *
 * A stream is a foreign table on a server of the foreign data wrapper
 * "streamproc" (the extension creates server "streamproc").  It stores
 * nothing itself.  Every event inserted into it (INSERT, COPY FROM,
 * prepared statements, INSERT ... SELECT) while a continuous view reads
 * it becomes one row of the stream's log table, streamproc.log_<stream
 * oid>, written with the table access method inside the inserting
 * transaction:
 *
 *	- the log has the stream's live columns (same names, types, typmods and
 *	  collations; no constraints, no defaults) plus "$xid" xid8 NOT NULL,
 *	  the inserting top-level transaction (GetTopFullTransactionId), and
 *	  "$shard" int2 NOT NULL: the log is LIST-partitioned by it into one
 *	  shard, streamproc.log_<stream oid>_<k>, per ingest worker
 *	  (streamproc.workers when the stream is created), which each worker
 *	  consumes its part of.  An inserting statement writes into the shards
 *	  in turn, blocks of STREAM_SHARD_BLOCK rows each, continuing where the
 *	  session's previous statement stopped, so that one COPY feeds every
 *	  worker;
 *	- values go from stream to log BY NAME: the map is computed once per
 *	  statement, so dropped columns of either relation do not matter;
 *	- the insert is an ordinary WAL-logged heap insert that fires no
 *	  triggers: a crash after commit keeps the row, a rollback (or a
 *	  rolled-back savepoint) leaves it invisible, exactly as heap
 *	  visibility says;
 *	- the user needs INSERT on the stream, which the executor checks; the
 *	  log's own privileges are not checked (it is owned by the stream's
 *	  owner).  GRANT and REVOKE of SELECT on the stream apply to its log as
 *	  well (mirror_select_grant): a view is maintained as its owner, and
 *	  its batch queries read the log.
 *
 * A stream that no continuous view reads discards its events; a view sees
 * the events committed after it was created (as in PipelineDB).  Each
 * inserting statement decides once, when it starts (BeginForeignModify,
 * BeginForeignInsert): if streamproc.views has no row for the stream, the
 * statement writes nothing to the log, yet reports (and RETURNING shows)
 * every row as inserted, and fires the stream's triggers as usual.  The
 * answer is not cached across statements: it is read with a fresh catalog
 * snapshot (the latest committed state plus this transaction's own
 * changes, whatever the isolation level), taken while the statement holds
 * the stream's RowExclusiveLock.  So a view whose creation committed before
 * the statement started gets its events, and a view dropped before it
 * started costs no log rows; rows written for a view that is dropped
 * meanwhile are consumed and trimmed by the workers like any others (they
 * serve every stream of streamproc.streams, with or without views).
 * CREATE VIEW locks the stream in ShareLock mode until it commits (view.c):
 * it waits for in-flight inserting transactions, and later ones wait for
 * the view's commit, so every event committed after the view is kept.
 *
 * Ingest workers consume a log in micro-batches bounded by transaction
 * snapshots, as PgQ does: a batch is the log rows whose "$xid" is visible
 * in the batch's pg_snapshot and not in the previous batch's.  Because a
 * transaction's rows all carry its top-level xid, and a snapshot says for
 * every xid whether it had committed, each committed row falls in exactly
 * one batch whatever the commit order.  Rows are removed by the workers'
 * checkpoints.
 *
 * Any scan of a stream (SELECT, a join, the target of UPDATE or DELETE,
 * COPY TO) fails at plan time: a stream is read through a continuous view.
 *
 * DDL, in a ProcessUtility hook and an object access hook:
 *	- CREATE FOREIGN TABLE ... SERVER <a streamproc server> creates the log
 *	  in the same transaction (as the bootstrap superuser, so that any user
 *	  who may create foreign tables on the server can create streams; the
 *	  log is then given to the stream's owner), records it in
 *	  streamproc.streams, and records an internal dependency of the log on
 *	  the stream: DROP of the stream drops the log, and the log cannot be
 *	  dropped alone.
 *	- ALTER FOREIGN TABLE / ALTER TABLE / RENAME COLUMN on a stream: the
 *	  stream's columns are read before and after the statement and the
 *	  difference (by attribute number: drops, renames, type changes, adds,
 *	  owner) is applied to the log in the same transaction.  Drops, renames
 *	  and type changes are refused while the stream has continuous views;
 *	  type changes and drops without CASCADE before PostgreSQL runs them
 *	  (check_column_changes), since the views' dependencies on the columns
 *	  they read would make PostgreSQL fail first with other errors.
 *	- A stream has at most 1598 columns, dropped ones included, because
 *	  its log has two more ("$xid", "$shard") and a table at most 1600: CREATE and
 *	  ALTER ... ADD COLUMN are refused beyond that before PostgreSQL runs
 *	  them (SQLSTATE 54011), not by the log's own DDL.
 *	- Changing the columns or owner of a log directly is refused.
 *	- Dropping a stream (directly, by DROP ... CASCADE, DROP SCHEMA ...
 *	  CASCADE, DROP OWNED, DROP EXTENSION ... CASCADE) removes its row of
 *	  streamproc.streams from the OAT_DROP object access hook, which every
 *	  dependency-driven deletion goes through.
 *	- Streams cannot be partitions or inheritance children: their columns
 *	  would change through their parent's DDL, which this file does not
 *	  see.
 *
 * Locking: inserting holds RowExclusiveLock on the stream (executor) and
 * on the log (here).  DDL on a stream takes AccessExclusiveLock on it
 * before reading its columns, so the columns read before the statement
 * are the ones the statement changes, and no insert runs with a stale
 * map.  streamproc.streams is read with a fresh catalog snapshot (it is
 * treated as a catalog), and written by the DDL transaction, which holds
 * AccessExclusiveLock on the stream.  streamproc.views is read the same
 * way, under AccessShareLock, once per inserting statement.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/genam.h"
#include "access/heapam.h"
#include "access/htup_details.h"
#include "access/reloptions.h"
#include "access/relation.h"
#include "access/table.h"
#include "access/tableam.h"
#include "access/xact.h"
#include "catalog/dependency.h"
#include "catalog/indexing.h"
#include "catalog/namespace.h"
#include "catalog/objectaccess.h"
#include "catalog/pg_authid.h"
#include "catalog/pg_class.h"
#include "catalog/pg_collation.h"
#include "catalog/pg_foreign_server.h"
#include "catalog/pg_foreign_table.h"
#include "catalog/pg_user_mapping.h"
#include "catalog/partition.h"
#include "catalog/pg_type.h"
#include "commands/defrem.h"
#include "executor/executor.h"
#include "executor/spi.h"
#include "foreign/fdwapi.h"
#include "foreign/foreign.h"
#include "lib/stringinfo.h"
#include "miscadmin.h"
#include "nodes/makefuncs.h"
#include "nodes/parsenodes.h"
#include "nodes/pathnodes.h"
#include "storage/lmgr.h"
#include "tcop/utility.h"
#include "utils/acl.h"
#include "utils/builtins.h"
#include "utils/fmgroids.h"
#include "utils/guc.h"
#include "utils/hsearch.h"
#include "utils/inval.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"
#include "utils/rel.h"
#include "utils/syscache.h"
#include "utils/timestamp.h"
#include "utils/varlena.h"
#include "utils/xid8.h"

#include "feed.h"
#include "launcher.h"
#include "source.h"
#include "stream.h"
#include "streamproc.h"
#include "windows.h"

/* Name of the foreign data wrapper whose foreign tables are streams. */
#define STREAM_FDW_NAME "streamproc"

/* Schema and table of the stream catalog. */
#define STREAMPROC_SCHEMA       "streamproc"
#define STREAMS_TABLE           "streams"
#define Anum_streams_stream     1
#define Anum_streams_log        2
#define Anum_streams_shards     3
#define Anum_streams_shard_logs 4
#define Natts_streams           4

/* The continuous view catalog (view.c) and its stream column. */
#define VIEWS_TABLE       "views"
#define Anum_views_stream 2

/*
 * The most columns a stream can have: its log has two more, "$xid" and
 * "$shard", and a table at most MaxHeapAttributeNumber.  Dropped columns
 * count, as they do for tables: the log drops and adds columns with the
 * stream.
 */
#define STREAM_MAX_COLUMNS (MaxHeapAttributeNumber - 2)

/*
 * Rows an insert writes to one shard before it moves to the next one: big
 * enough for bulk inserts, small enough that one COPY feeds every worker.
 */
#define STREAM_SHARD_BLOCK 256

/*
 * Rows per ExecForeignBatchInsert call (multi-row INSERT, INSERT ...
 * SELECT).  The executor keeps that many row copies before handing them
 * over; heap_multi_insert gains little beyond a hundred.
 */
#define STREAM_INSERT_BATCH_SIZE 100

/*
 * One live column of a stream, as DDL compares them before and after a
 * statement.
 */
typedef struct StreamColumn
{
	AttrNumber attnum;
	NameData name;
	Oid typid;
	int32 typmod;
	Oid collid;
} StreamColumn;

/* The columns, owner and event-time options of a stream at one point in time. */
typedef struct StreamShape
{
	Oid relid;
	Oid owner;
	int natts; /* attributes, dropped columns included */
	int ncols;
	StreamColumn *cols;
	StreamOptions opts;
} StreamShape;

/*
 * Per-statement insert state of one stream (ResultRelInfo->ri_FdwState),
 * built by BeginForeignModify or BeginForeignInsert.
 */
typedef struct ShardInsert
{
	Relation rel;                 /* the shard's log partition, or NULL */
	ResultRelInfo *rri;           /* for its indexes, if any */
	TupleTableSlot *slot;         /* for single inserts */
	TupleTableSlot **batch_slots; /* for batches */
	int nbatch_slots;
	BulkInsertState bistate; /* for COPY and batches, else NULL */
	int64 written;           /* events appended to it by this statement */
} ShardInsert;

typedef struct StreamInsertState
{
	Relation log; /* the (partitioned) log, RowExclusiveLock held */
	bool discard; /* no view reads the stream: write nothing */
	bool bulk;    /* COPY: bulk insert states */
	Oid stream;   /* the stream's oid */
	int nshards;
	Oid *shard_logs;
	ShardInsert *shards;
	int nmap;               /* stream's natts */
	AttrNumber *map;        /* stream attno-1 -> log attno, 0: none */
	AttrNumber xid_attno;   /* log attno of "$xid" */
	AttrNumber shard_attno; /* log attno of "$shard" */
	bool have_xid;          /* xid computed yet? */
	Datum xid;              /* GetTopFullTransactionId() as xid8 */
	MemoryContext tmpcxt;   /* reset after every insert call */
} StreamInsertState;

/* Backend-local cache: stream OID -> its log and shards (positive answers only). */
typedef struct StreamLogCacheEntry
{
	Oid stream; /* hash key */
	Oid log;
	int nshards;
	Oid shard_logs[STREAMPROC_MAX_SHARDS];
} StreamLogCacheEntry;

/* Saved state of internal DDL (see internal_begin). */
typedef struct InternalContext
{
	Oid save_userid;
	int save_sec_context;
	int save_nestlevel;
} InternalContext;

static ProcessUtility_hook_type prev_ProcessUtility = NULL;
static object_access_hook_type prev_object_access = NULL;
static HTAB *stream_log_cache = NULL;

/* > 0 while this file runs DDL on a log: lifts the log's protection. */
static int internal_ddl_depth = 0;

PG_FUNCTION_INFO_V1(streamproc_fdw_handler);
PG_FUNCTION_INFO_V1(streamproc_fdw_validator);

/* FDW callbacks */
static void stream_GetForeignRelSize(PlannerInfo *root, RelOptInfo *baserel,
									 Oid foreigntableid);
static void stream_GetForeignPaths(PlannerInfo *root, RelOptInfo *baserel,
								   Oid foreigntableid);
static ForeignScan *stream_GetForeignPlan(PlannerInfo *root,
										  RelOptInfo *baserel,
										  Oid foreigntableid,
										  ForeignPath *best_path, List *tlist,
										  List *scan_clauses,
										  Plan *outer_plan);
static void stream_BeginForeignScan(ForeignScanState *node, int eflags);
static TupleTableSlot *stream_IterateForeignScan(ForeignScanState *node);
static void stream_ReScanForeignScan(ForeignScanState *node);
static void stream_EndForeignScan(ForeignScanState *node);
static List *stream_PlanForeignModify(PlannerInfo *root, ModifyTable *plan,
									  Index resultRelation,
									  int subplan_index);
static void stream_BeginForeignModify(ModifyTableState *mtstate,
									  ResultRelInfo *rinfo, List *fdw_private,
									  int subplan_index, int eflags);
static TupleTableSlot *stream_ExecForeignInsert(EState *estate,
												ResultRelInfo *rinfo,
												TupleTableSlot *slot,
												TupleTableSlot *planSlot);
static TupleTableSlot **stream_ExecForeignBatchInsert(EState *estate,
													  ResultRelInfo *rinfo,
													  TupleTableSlot **slots,
													  TupleTableSlot **planSlots,
													  int *numSlots);
static int stream_GetForeignModifyBatchSize(ResultRelInfo *rinfo);
static void stream_EndForeignModify(EState *estate, ResultRelInfo *rinfo);
static void stream_BeginForeignInsert(ModifyTableState *mtstate,
									  ResultRelInfo *rinfo);
static void stream_EndForeignInsert(EState *estate, ResultRelInfo *rinfo);
static int stream_IsForeignRelUpdatable(Relation rel);

/* hooks */
static void stream_ProcessUtility(PlannedStmt *pstmt, const char *queryString,
								  bool readOnlyTree,
								  ProcessUtilityContext context,
								  ParamListInfo params,
								  QueryEnvironment *queryEnv,
								  DestReceiver *dest, QueryCompletion *qc);
static void stream_object_access(ObjectAccessType access, Oid classId,
								 Oid objectId, int subId, void *arg);

/* helpers */
static void refuse_read(Oid relid) pg_attribute_noreturn();
static bool server_is_stream_server(Oid serverid);
static Oid streams_relid(void);
static Oid lookup_streams_row(AttrNumber keycol, Oid key, AttrNumber resultcol);
static bool stream_has_views(Oid stream);
static void stream_log_cache_invalidate(Datum arg, Oid relid);
static StreamLogCacheEntry *stream_log_entry(Oid stream_relid);
static StreamInsertState *begin_insert(ResultRelInfo *rinfo, bool bulk);
static void end_insert(ResultRelInfo *rinfo);
static void fill_log_slot(StreamInsertState *st, int shard, TupleTableSlot *src,
						  TupleTableSlot *dst);
static StreamShape *read_shape(Oid relid);
static void check_stream_columns(int natts, bool dropped);
static int added_columns(Oid relid, AlterTableStmt *stmt);
static void create_stream_log(Oid relid);
static void set_log_owner(Oid log, int nshards, Datum *shards, Oid owner);
static void sync_log(StreamShape *before, StreamShape *after);
static Oid first_continuous_view(Oid stream, bool windowed);
static void check_log_alter(Oid relid, Node *stmt);
static void refuse_column_change(Oid stream, Oid view, const char *change,
								 const char *column) pg_attribute_noreturn();
static void check_column_changes(Oid relid, AlterTableStmt *stmt);
static void mirror_select_grant(GrantStmt *stmt);
static void internal_begin(InternalContext *ic, Oid userid);
static void internal_end(InternalContext *ic);
static void exec_internal(Oid userid, const char *sql, int nargs,
						  Oid *argtypes, Datum *values);

/*
 * streamproc_stream_init
 *		Install the hooks; see stream.h.
 */
void
streamproc_stream_init(void)
{
	prev_ProcessUtility = ProcessUtility_hook;
	ProcessUtility_hook = stream_ProcessUtility;
	prev_object_access = object_access_hook;
	object_access_hook = stream_object_access;
}

/* ------------------------------------------------------------------------
 * The foreign data wrapper
 * ------------------------------------------------------------------------
 */

/*
 * streamproc_fdw_handler
 *		The FdwRoutine of streams: inserts only.
 */
Datum
streamproc_fdw_handler(PG_FUNCTION_ARGS)
{
	FdwRoutine *routine = makeNode(FdwRoutine);

	streamproc_check_preloaded();

	routine->GetForeignRelSize = stream_GetForeignRelSize;
	routine->GetForeignPaths = stream_GetForeignPaths;
	routine->GetForeignPlan = stream_GetForeignPlan;
	routine->BeginForeignScan = stream_BeginForeignScan;
	routine->IterateForeignScan = stream_IterateForeignScan;
	routine->ReScanForeignScan = stream_ReScanForeignScan;
	routine->EndForeignScan = stream_EndForeignScan;

	routine->PlanForeignModify = stream_PlanForeignModify;
	routine->BeginForeignModify = stream_BeginForeignModify;
	routine->ExecForeignInsert = stream_ExecForeignInsert;
	routine->ExecForeignBatchInsert = stream_ExecForeignBatchInsert;
	routine->GetForeignModifyBatchSize = stream_GetForeignModifyBatchSize;
	routine->EndForeignModify = stream_EndForeignModify;
	routine->BeginForeignInsert = stream_BeginForeignInsert;
	routine->EndForeignInsert = stream_EndForeignInsert;
	routine->IsForeignRelUpdatable = stream_IsForeignRelUpdatable;

	PG_RETURN_POINTER(routine);
}

/* An interval option's value in microseconds (zero allowed: zero_ok). */
static int64
interval_option(DefElem *def, bool zero_ok)
{
	Datum value = DirectFunctionCall3(interval_in, CStringGetDatum(defGetString(def)),
									  ObjectIdGetDatum(InvalidOid), Int32GetDatum(-1));

	return streamproc_interval_usecs(DatumGetIntervalP(value), def->defname, zero_ok);
}

/*
 * dedup_key_columns
 *		The column names of a dedup_key option (a comma-separated list of
 *		identifiers, quoted where needed), or an error.
 */
static List *
dedup_key_columns(const char *value)
{
	char *copy = pstrdup(value);
	List *names = NIL;

	if (!SplitIdentifierString(copy, ',', &names) || names == NIL)
		ereport(ERROR,
				(errcode(ERRCODE_FDW_INVALID_OPTION_NAME),
				 errmsg("invalid value for option \"dedup_key\": \"%s\"", value),
				 errhint("Name one or more columns of the stream, separated by commas, such as 'event_id' or 'user_id, ts'.")));
	if (list_length(names) > STREAM_DEDUP_MAX_COLUMNS)
		ereport(ERROR,
				(errcode(ERRCODE_FDW_INVALID_OPTION_NAME),
				 errmsg("option \"dedup_key\" names more than %d columns",
						STREAM_DEDUP_MAX_COLUMNS)));
	return names;
}

/*
 * parse_options
 *		A stream's options (DefElem *, as the validator gets them or from
 *		pg_foreign_table), checked, into *opts; the only place that reads
 *		them.  Unknown names are the validator's to refuse.
 */
static void
parse_options(List *options, StreamOptions *opts)
{
	ListCell *lc;

	memset(opts, 0, sizeof(StreamOptions));
	opts->idle_timeout = -1;
	opts->dedup_window = USECS_PER_HOUR;
	foreach (lc, options)
	{
		DefElem *def = lfirst_node(DefElem, lc);

		if (strcmp(def->defname, "event_time") == 0)
		{
			opts->event_time = pstrdup(defGetString(def));
			if (opts->event_time[0] == '\0')
				ereport(ERROR,
						(errcode(ERRCODE_FDW_INVALID_OPTION_NAME),
						 errmsg("option \"event_time\" must name a column of the stream")));
		}
		else if (strcmp(def->defname, "watermark_delay") == 0)
			opts->watermark_delay = interval_option(def, true);
		else if (strcmp(def->defname, "idle_timeout") == 0)
			opts->idle_timeout = interval_option(def, false);
		else if (strcmp(def->defname, "dedup_key") == 0)
		{
			opts->dedup_key = pstrdup(defGetString(def));
			opts->dedup_columns = dedup_key_columns(opts->dedup_key);
		}
		else if (strcmp(def->defname, "dedup_window") == 0)
		{
			opts->dedup_window = interval_option(def, false);
			opts->dedup_window_set = true;
		}
		else if (strcmp(def->defname, STREAMPROC_FEED_OPTION) == 0)
			opts->upstream_rows = pstrdup(defGetString(def));
		else if (strcmp(def->defname, STREAMPROC_FEED_WINDOWS_OPTION) == 0)
			opts->upstream_groups = pstrdup(defGetString(def));
		else if (strcmp(def->defname, STREAMPROC_FEED_CHANGES_OPTION) == 0)
			opts->upstream_changes = pstrdup(defGetString(def));
	}
}

/*
 * streamproc_stream_options
 *		The options of stream relid (false and the defaults: not a foreign
 *		table).
 */
bool
streamproc_stream_options(Oid relid, StreamOptions *opts)
{
	if (get_rel_relkind(relid) != RELKIND_FOREIGN_TABLE)
	{
		parse_options(NIL, opts);
		return false;
	}
	parse_options(GetForeignTable(relid)->options, opts);
	return true;
}

/*
 * streamproc_fdw_validator
 *		Foreign tables (streams) take the event-time options event_time,
 *		watermark_delay and idle_timeout (windows.c) and the deduplication
 *		options dedup_key and dedup_window (dedup.c); the wrapper, its
 *		servers, user mappings and columns take none.
 *
 * PostgreSQL calls the validator even when no option is given, so this is
 * also where creating a stream fails when the library is not preloaded
 * (the hooks that create its log would be missing).  That event_time names
 * a timestamptz column is checked when a windowed view is created: the
 * validator does not see the columns.
 */
Datum
streamproc_fdw_validator(PG_FUNCTION_ARGS)
{
	List *options = untransformRelOptions(PG_GETARG_DATUM(0));
	Oid catalog = PG_GETARG_OID(1);
	ListCell *lc;

	/* pg_upgrade recreates streams while the module is not set up. */
	if (!IsBinaryUpgrade)
		streamproc_check_preloaded();

	foreach (lc, options)
	{
		DefElem *def = lfirst_node(DefElem, lc);
		bool known = strcmp(def->defname, "event_time") == 0 ||
					 strcmp(def->defname, "watermark_delay") == 0 ||
					 strcmp(def->defname, "idle_timeout") == 0 ||
					 strcmp(def->defname, "dedup_key") == 0 ||
					 strcmp(def->defname, "dedup_window") == 0 ||
					 strcmp(def->defname, STREAMPROC_FEED_OPTION) == 0 ||
					 strcmp(def->defname, STREAMPROC_FEED_WINDOWS_OPTION) == 0 ||
					 strcmp(def->defname, STREAMPROC_FEED_CHANGES_OPTION) == 0;

		if (!known || catalog != ForeignTableRelationId)
			ereport(ERROR,
					(errcode(ERRCODE_FDW_INVALID_OPTION_NAME),
					 errmsg("option \"%s\" is not supported for %s",
							def->defname,
							catalog == ForeignTableRelationId    ? "streams"
							: catalog == AttributeRelationId     ? "stream columns"
							: catalog == ForeignServerRelationId ? "streamproc servers"
							: catalog == UserMappingRelationId   ? "streamproc user mappings"
																 : "the streamproc foreign-data wrapper"),
					 errhint("Streams take the options event_time, watermark_delay, idle_timeout, dedup_key and dedup_window.")));

		/* Only feed.c makes feeds (and a restore brings them back). */
		if ((strcmp(def->defname, STREAMPROC_FEED_OPTION) == 0 ||
			 strcmp(def->defname, STREAMPROC_FEED_WINDOWS_OPTION) == 0 ||
			 strcmp(def->defname, STREAMPROC_FEED_CHANGES_OPTION) == 0) &&
			!streamproc_feed_creating && !streamproc_database_restoring() &&
			!IsBinaryUpgrade)
			ereport(ERROR,
					(errcode(ERRCODE_FDW_INVALID_OPTION_NAME),
					 errmsg("option \"%s\" is set only by streamproc", def->defname),
					 errdetail("It marks the stream that feeds a continuous view from another continuous view."),
					 errhint("Create a continuous view that reads the other view in FROM.  To restore a dump, run SELECT streamproc.pre_restore() first.")));
	}
	/* The values. */
	{
		StreamOptions opts;

		parse_options(options, &opts);
	}

	PG_RETURN_VOID();
}

/*
 * refuse_read
 *		The error for any attempt to read a stream.
 */
static void
refuse_read(Oid relid)
{
	char *name = get_rel_name(relid);

	ereport(ERROR,
			(errcode(ERRCODE_WRONG_OBJECT_TYPE),
			 errmsg("cannot read from stream \"%s\"", name),
			 errdetail("A stream does not store its events."),
			 errhint("A stream is read through a continuous view: CREATE VIEW ... WITH (continuous) AS SELECT ... FROM %s.",
					 quote_identifier(name))));
}

/*
 * stream_GetForeignRelSize
 *		Planning any scan of a stream fails here, the first FDW callback
 *		the planner makes for a scanned foreign table.  A stream that is
 *		the target of UPDATE or DELETE gets its own message.
 */
static void
stream_GetForeignRelSize(PlannerInfo *root, RelOptInfo *baserel,
						 Oid foreigntableid)
{
	Query *parse = root->parse;

	if (parse->resultRelation == baserel->relid &&
		(parse->commandType == CMD_UPDATE || parse->commandType == CMD_DELETE))
		ereport(ERROR,
				(errcode(ERRCODE_WRONG_OBJECT_TYPE),
				 parse->commandType == CMD_UPDATE
					 ? errmsg("cannot update stream \"%s\"",
							  get_rel_name(foreigntableid))
					 : errmsg("cannot delete from stream \"%s\"",
							  get_rel_name(foreigntableid)),
				 errdetail("A stream does not store its events: it accepts INSERT and COPY FROM only.")));

	refuse_read(foreigntableid);
}

/* The remaining scan callbacks are never reached: planning fails first. */
static void
stream_GetForeignPaths(PlannerInfo *root, RelOptInfo *baserel,
					   Oid foreigntableid)
{
	refuse_read(foreigntableid);
}

static ForeignScan *
stream_GetForeignPlan(PlannerInfo *root, RelOptInfo *baserel,
					  Oid foreigntableid, ForeignPath *best_path, List *tlist,
					  List *scan_clauses, Plan *outer_plan)
{
	refuse_read(foreigntableid);
}

static void
stream_BeginForeignScan(ForeignScanState *node, int eflags)
{
	refuse_read(RelationGetRelid(node->ss.ss_currentRelation));
}

static TupleTableSlot *
stream_IterateForeignScan(ForeignScanState *node)
{
	refuse_read(RelationGetRelid(node->ss.ss_currentRelation));
}

static void
stream_ReScanForeignScan(ForeignScanState *node)
{
	refuse_read(RelationGetRelid(node->ss.ss_currentRelation));
}

static void
stream_EndForeignScan(ForeignScanState *node)
{
}

/*
 * stream_PlanForeignModify
 *		Only INSERT reaches here (scans fail earlier); refuse ON CONFLICT.
 */
static List *
stream_PlanForeignModify(PlannerInfo *root, ModifyTable *plan,
						 Index resultRelation, int subplan_index)
{
	if (plan->onConflictAction != ONCONFLICT_NONE)
		ereport(ERROR,
				(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
				 errmsg("INSERT with ON CONFLICT is not supported for streams"),
				 errdetail("Events are appended to a stream and never conflict.")));
	return NIL;
}

static void
stream_BeginForeignModify(ModifyTableState *mtstate, ResultRelInfo *rinfo,
						  List *fdw_private, int subplan_index, int eflags)
{
	if (eflags & EXEC_FLAG_EXPLAIN_ONLY)
		return;
	rinfo->ri_FdwState = begin_insert(rinfo, false);
}

/*
 * stream_BeginForeignInsert
 *		COPY FROM (and tuple routing, which streams do not take part in):
 *		many rows, so use a bulk insert state.
 */
static void
stream_BeginForeignInsert(ModifyTableState *mtstate, ResultRelInfo *rinfo)
{
	rinfo->ri_FdwState = begin_insert(rinfo, true);
}

static void
stream_EndForeignModify(EState *estate, ResultRelInfo *rinfo)
{
	end_insert(rinfo);
}

static void
stream_EndForeignInsert(EState *estate, ResultRelInfo *rinfo)
{
	end_insert(rinfo);
}

/*
 * stream_IsForeignRelUpdatable
 *		Streams accept INSERT only; also what makes a simple view over a
 *		stream insertable but not updatable.
 */
static int
stream_IsForeignRelUpdatable(Relation rel)
{
	return (1 << CMD_INSERT);
}

/*
 * stream_GetForeignModifyBatchSize
 *		Batch unless something must see each row as it is inserted
 *		(RETURNING, WITH CHECK OPTION, row triggers), as postgres_fdw does.
 */
static int
stream_GetForeignModifyBatchSize(ResultRelInfo *rinfo)
{
	if (rinfo->ri_projectReturning != NULL ||
		rinfo->ri_WithCheckOptions != NIL ||
		(rinfo->ri_TrigDesc &&
		 (rinfo->ri_TrigDesc->trig_insert_before_row ||
		  rinfo->ri_TrigDesc->trig_insert_after_row)))
		return 1;
	return STREAM_INSERT_BATCH_SIZE;
}

/*
 * begin_insert
 *		Open the stream's log, map the stream's columns to the log's by
 *		name, and decide whether this statement's events are kept (some
 *		continuous view reads the stream) or discarded.  The log is opened
 *		and checked either way, so a broken stream fails the same whether
 *		it has views or not; its shards are opened as rows go to them.
 *		Allocates in the current (per-query) memory context.
 */
static StreamInsertState *
begin_insert(ResultRelInfo *rinfo, bool bulk)
{
	Relation stream = rinfo->ri_RelationDesc;
	TupleDesc sdesc = RelationGetDescr(stream);
	TupleDesc ldesc;
	StreamInsertState *st;
	StreamLogCacheEntry *entry;
	int i;

	/* A feed holds its upstream's rows: only its upstream writes it. */
	if (!streamproc_feeding && streamproc_is_feed(RelationGetRelid(stream)))
		ereport(ERROR,
				(errcode(ERRCODE_WRONG_OBJECT_TYPE),
				 errmsg("cannot insert into stream \"%s\"", RelationGetRelationName(stream)),
				 errdetail("It feeds a continuous view the rows of another continuous view, and only that view writes it."),
				 errhint("Insert into the stream of the upstream view.")));

	entry = stream_log_entry(RelationGetRelid(stream));
	st = palloc0(sizeof(StreamInsertState));
	if (entry != NULL)
		st->log = try_relation_open(entry->log, RowExclusiveLock);
	if (st->log == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("stream \"%s\" has no log table",
						RelationGetRelationName(stream)),
				 errdetail("The stream has no row in streamproc.streams, or its log table is missing."),
				 errhint("Drop the stream and create it again.")));
	ldesc = RelationGetDescr(st->log);
	st->nshards = entry->nshards;
	st->shard_logs = palloc(sizeof(Oid) * st->nshards);
	memcpy(st->shard_logs, entry->shard_logs, sizeof(Oid) * st->nshards);
	st->shards = palloc0(sizeof(ShardInsert) * st->nshards);
	st->bulk = bulk;

	st->nmap = sdesc->natts;
	st->map = palloc0(sizeof(AttrNumber) * sdesc->natts);
	for (i = 0; i < sdesc->natts; i++)
	{
		Form_pg_attribute sattr = TupleDescAttr(sdesc, i);
		int j;

		if (sattr->attisdropped)
			continue;
		for (j = 0; j < ldesc->natts; j++)
		{
			Form_pg_attribute lattr = TupleDescAttr(ldesc, j);

			if (!lattr->attisdropped &&
				strcmp(NameStr(lattr->attname), NameStr(sattr->attname)) == 0)
			{
				if (lattr->atttypid != sattr->atttypid)
					ereport(ERROR,
							(errcode(ERRCODE_DATATYPE_MISMATCH),
							 errmsg("column \"%s\" of the log of stream \"%s\" has type %s instead of %s",
									NameStr(sattr->attname),
									RelationGetRelationName(stream),
									format_type_be(lattr->atttypid),
									format_type_be(sattr->atttypid))));
				st->map[i] = lattr->attnum;
				break;
			}
		}
		if (st->map[i] == 0)
			ereport(ERROR,
					(errcode(ERRCODE_UNDEFINED_COLUMN),
					 errmsg("the log of stream \"%s\" has no column \"%s\"",
							RelationGetRelationName(stream),
							NameStr(sattr->attname))));
	}
	for (i = 0; i < ldesc->natts; i++)
	{
		Form_pg_attribute lattr = TupleDescAttr(ldesc, i);

		if (lattr->attisdropped)
			continue;
		if (strcmp(NameStr(lattr->attname), STREAM_XID_COLUMN) == 0)
			st->xid_attno = lattr->attnum;
		if (strcmp(NameStr(lattr->attname), STREAM_SHARD_COLUMN) == 0)
			st->shard_attno = lattr->attnum;
	}
	if (st->xid_attno == 0 || st->shard_attno == 0)
		ereport(ERROR,
				(errcode(ERRCODE_UNDEFINED_COLUMN),
				 errmsg("the log of stream \"%s\" has no column \"%s\"",
						RelationGetRelationName(stream),
						st->xid_attno == 0 ? STREAM_XID_COLUMN : STREAM_SHARD_COLUMN)));

	/* Decided once per statement; see the header comment. */
	st->discard = !stream_has_views(RelationGetRelid(stream));
	st->stream = RelationGetRelid(stream);
	st->tmpcxt = AllocSetContextCreate(CurrentMemoryContext,
									   "streamproc stream insert",
									   ALLOCSET_DEFAULT_SIZES);
	return st;
}

/*
 * The shard the next n rows go to.  A backend moves to the next shard
 * every STREAM_SHARD_BLOCK rows, starting at a shard of its own, so that a
 * big insert feeds every worker and small inserts from many sessions
 * spread over them.
 */
static ShardInsert *
next_shard(StreamInsertState *st, int n, int *shardno)
{
	static uint64 counter = 0;
	static bool started = false;
	ShardInsert *sh;
	int k;

	if (!started)
	{
		counter = (uint64)MyProcPid * STREAM_SHARD_BLOCK;
		started = true;
	}
	k = (int)((counter / STREAM_SHARD_BLOCK) % (uint64)st->nshards);
	counter += n;
	sh = &st->shards[k];
	if (sh->rel == NULL)
	{
		MemoryContext old = MemoryContextSwitchTo(GetMemoryChunkContext(st));

		sh->rel = relation_open(st->shard_logs[k], RowExclusiveLock);
		if (RelationGetDescr(sh->rel)->natts != RelationGetDescr(st->log)->natts)
			elog(ERROR, "shard %d of the log of stream %u does not have the log's columns",
				 k, st->stream);
		sh->slot = table_slot_create(sh->rel, NULL);
		sh->rri = makeNode(ResultRelInfo);
		InitResultRelInfo(sh->rri, sh->rel, 0, NULL, 0);
		ExecOpenIndices(sh->rri, false);
		sh->bistate = st->bulk ? GetBulkInsertState() : NULL;
		MemoryContextSwitchTo(old);
	}
	*shardno = k;
	return sh;
}

/*
 * end_insert
 *		Release what begin_insert acquired; the logs' locks are kept until
 *		the end of the transaction.
 */
static void
end_insert(ResultRelInfo *rinfo)
{
	StreamInsertState *st = (StreamInsertState *)rinfo->ri_FdwState;
	int k;
	int i;

	if (st == NULL)
		return;
	for (k = 0; k < st->nshards; k++)
	{
		ShardInsert *sh = &st->shards[k];

		if (sh->rel == NULL)
			continue;
		/* At commit, these events wake the shard's worker (launcher.c). */
		if (sh->written > 0)
			streamproc_note_stream_insert(st->stream, k, sh->written);
		ExecCloseIndices(sh->rri);
		if (sh->bistate)
			FreeBulkInsertState(sh->bistate);
		table_finish_bulk_insert(sh->rel, 0);
		ExecDropSingleTupleTableSlot(sh->slot);
		for (i = 0; i < sh->nbatch_slots; i++)
			ExecDropSingleTupleTableSlot(sh->batch_slots[i]);
		relation_close(sh->rel, NoLock);
	}
	relation_close(st->log, NoLock);
	MemoryContextDelete(st->tmpcxt);
	rinfo->ri_FdwState = NULL;
}

/*
 * fill_log_slot
 *		Store in dst (a log slot) the event in src (a stream slot) plus
 *		"$xid" and "$shard".  dst references src's values until it is
 *		materialized.
 */
static void
fill_log_slot(StreamInsertState *st, int shard, TupleTableSlot *src, TupleTableSlot *dst)
{
	int i;

	if (!st->have_xid)
	{
		/* Assigns the top-level xid if the transaction has none yet. */
		st->xid = FullTransactionIdGetDatum(GetTopFullTransactionId());
		st->have_xid = true;
	}

	ExecClearTuple(dst);
	slot_getallattrs(src);
	memset(dst->tts_isnull, true,
		   sizeof(bool) * dst->tts_tupleDescriptor->natts);
	for (i = 0; i < st->nmap; i++)
	{
		AttrNumber l = st->map[i];

		if (l == 0)
			continue;
		dst->tts_values[l - 1] = src->tts_values[i];
		dst->tts_isnull[l - 1] = src->tts_isnull[i];
	}
	dst->tts_values[st->xid_attno - 1] = st->xid;
	dst->tts_isnull[st->xid_attno - 1] = false;
	dst->tts_values[st->shard_attno - 1] = Int16GetDatum((int16)shard);
	dst->tts_isnull[st->shard_attno - 1] = false;
	ExecStoreVirtualTuple(dst);
}

/*
 * stream_ExecForeignInsert
 *		Append one event to the log (unless the statement discards its
 *		events).  Returns the stream slot unchanged, so RETURNING shows the
 *		event as inserted and the row counts.
 */
static TupleTableSlot *
stream_ExecForeignInsert(EState *estate, ResultRelInfo *rinfo,
						 TupleTableSlot *slot, TupleTableSlot *planSlot)
{
	StreamInsertState *st = (StreamInsertState *)rinfo->ri_FdwState;
	MemoryContext oldcxt;
	ShardInsert *sh;
	int k;

	if (st->discard)
		return slot;

	sh = next_shard(st, 1, &k);
	fill_log_slot(st, k, slot, sh->slot);
	oldcxt = MemoryContextSwitchTo(st->tmpcxt);
	table_tuple_insert(sh->rel, sh->slot, estate->es_output_cid, 0, sh->bistate);
	sh->written++;
	if (sh->rri->ri_NumIndices > 0)
		ExecInsertIndexTuples(sh->rri, sh->slot, estate, false, false, NULL, NIL);
	MemoryContextSwitchTo(oldcxt);
	MemoryContextReset(st->tmpcxt);
	ExecClearTuple(sh->slot);
	return slot;
}

/*
 * stream_ExecForeignBatchInsert
 *		Append *numSlots events with one multi-insert into one shard (none
 *		when the statement discards its events; all of them count as
 *		inserted).
 */
static TupleTableSlot **
stream_ExecForeignBatchInsert(EState *estate, ResultRelInfo *rinfo,
							  TupleTableSlot **slots,
							  TupleTableSlot **planSlots, int *numSlots)
{
	StreamInsertState *st = (StreamInsertState *)rinfo->ri_FdwState;
	int n = *numSlots;
	MemoryContext oldcxt;
	ShardInsert *sh;
	int k;
	int i;

	if (st->discard)
		return slots;

	sh = next_shard(st, n, &k);
	if (n > sh->nbatch_slots)
	{
		oldcxt = MemoryContextSwitchTo(GetMemoryChunkContext(st));
		if (sh->batch_slots == NULL)
			sh->batch_slots = palloc(sizeof(TupleTableSlot *) * n);
		else
			sh->batch_slots = repalloc(sh->batch_slots, sizeof(TupleTableSlot *) * n);
		for (i = sh->nbatch_slots; i < n; i++)
			sh->batch_slots[i] = table_slot_create(sh->rel, NULL);
		sh->nbatch_slots = n;
		if (sh->bistate == NULL)
			sh->bistate = GetBulkInsertState();
		MemoryContextSwitchTo(oldcxt);
	}

	for (i = 0; i < n; i++)
		fill_log_slot(st, k, slots[i], sh->batch_slots[i]);

	oldcxt = MemoryContextSwitchTo(st->tmpcxt);
	table_multi_insert(sh->rel, sh->batch_slots, n, estate->es_output_cid, 0,
					   sh->bistate);
	sh->written += n;
	if (sh->rri->ri_NumIndices > 0)
	{
		for (i = 0; i < n; i++)
			ExecInsertIndexTuples(sh->rri, sh->batch_slots[i], estate,
								  false, false, NULL, NIL);
	}
	MemoryContextSwitchTo(oldcxt);
	MemoryContextReset(st->tmpcxt);
	for (i = 0; i < n; i++)
		ExecClearTuple(sh->batch_slots[i]);
	return slots;
}

/* ------------------------------------------------------------------------
 * The stream catalog
 * ------------------------------------------------------------------------
 */

/*
 * server_is_stream_server
 *		Is serverid a server of the streamproc foreign data wrapper?
 */
static bool
server_is_stream_server(Oid serverid)
{
	ForeignServer *server = GetForeignServer(serverid);
	ForeignDataWrapper *fdw = GetForeignDataWrapper(server->fdwid);

	return strcmp(fdw->fdwname, STREAM_FDW_NAME) == 0;
}

/*
 * streams_relid
 *		OID of streamproc.streams, InvalidOid when the extension is not
 *		installed (or is being dropped) in this database.
 */
static Oid
streams_relid(void)
{
	Oid nsp = get_namespace_oid(STREAMPROC_SCHEMA, true);

	if (!OidIsValid(nsp))
		return InvalidOid;
	return get_relname_relid(STREAMS_TABLE, nsp);
}

/*
 * lookup_streams_row
 *		Probe streamproc.streams for the row whose column keycol is key and
 *		return its column resultcol, or InvalidOid when there is no row.
 *		Reads with a fresh catalog snapshot.  By stream the primary key
 *		index is used; by log it is a sequential scan (the table is small,
 *		and only DDL on tables in schema streamproc asks by log).
 */
static Oid
lookup_streams_row(AttrNumber keycol, Oid key, AttrNumber resultcol)
{
	Oid streams = streams_relid();
	Relation rel;
	ScanKeyData skey;
	SysScanDesc scan;
	HeapTuple tup;
	Oid result = InvalidOid;
	Oid index = InvalidOid;

	if (!OidIsValid(streams))
		return InvalidOid;
	rel = table_open(streams, AccessShareLock);
	if (keycol == Anum_streams_stream)
		index = RelationGetPrimaryKeyIndex(rel);
	ScanKeyInit(&skey, keycol, BTEqualStrategyNumber, F_OIDEQ,
				ObjectIdGetDatum(key));
	scan = systable_beginscan(rel, index, OidIsValid(index), NULL, 1, &skey);
	tup = systable_getnext(scan);
	if (HeapTupleIsValid(tup))
	{
		bool isnull;
		Datum d = heap_getattr(tup, resultcol, RelationGetDescr(rel), &isnull);

		if (!isnull)
			result = DatumGetObjectId(d);
	}
	systable_endscan(scan);
	table_close(rel, AccessShareLock);
	return result;
}

/*
 * stream_has_views
 *		Does some continuous view read stream?  A scan of streamproc.views
 *		(small, no index on its stream column) with a fresh catalog
 *		snapshot: PostgreSQL takes a new one for every scan of a table that
 *		is not a system catalog, so the answer includes every view committed
 *		so far and this transaction's own, whatever the isolation level.
 *		Nothing is cached.  False when the extension is being dropped.
 */
static bool
stream_has_views(Oid stream)
{
	Oid nsp = get_namespace_oid(STREAMPROC_SCHEMA, true);
	Oid views;
	Relation rel;
	ScanKeyData key;
	SysScanDesc scan;
	bool found;

	if (!OidIsValid(nsp))
		return false;
	views = get_relname_relid(VIEWS_TABLE, nsp);
	if (!OidIsValid(views))
		return false;
	rel = table_open(views, AccessShareLock);
	ScanKeyInit(&key, Anum_views_stream, BTEqualStrategyNumber, F_OIDEQ,
				ObjectIdGetDatum(stream));
	scan = systable_beginscan(rel, InvalidOid, false, NULL, 1, &key);
	found = HeapTupleIsValid(systable_getnext(scan));
	systable_endscan(scan);
	table_close(rel, AccessShareLock);
	return found;
}

/*
 * stream_log_cache_invalidate
 *		Relcache invalidation callback: forget the entry of relid, or all
 *		of them.  Dropping a stream (or rolling back its creation)
 *		invalidates its relcache entry, so no stale entry survives it.
 */
static void
stream_log_cache_invalidate(Datum arg, Oid relid)
{
	HASH_SEQ_STATUS status;
	StreamLogCacheEntry *entry;

	if (stream_log_cache == NULL)
		return;
	if (OidIsValid(relid))
	{
		hash_search(stream_log_cache, &relid, HASH_REMOVE, NULL);
		return;
	}
	hash_seq_init(&status, stream_log_cache);
	while ((entry = hash_seq_search(&status)) != NULL)
		hash_search(stream_log_cache, &entry->stream, HASH_REMOVE, NULL);
}

/*
 * stream_log_entry
 *		The cached log and shards of a stream, or NULL when relid is not a
 *		stream.  Same cost and visibility as streamproc_is_stream.
 */
static StreamLogCacheEntry *
stream_log_entry(Oid stream_relid)
{
	StreamLogCacheEntry *entry;
	Oid streams;
	Relation rel;
	ScanKeyData skey;
	SysScanDesc scan;
	HeapTuple tup;

	if (get_rel_relkind(stream_relid) != RELKIND_FOREIGN_TABLE)
		return NULL;

	if (stream_log_cache == NULL)
	{
		HASHCTL ctl;

		ctl.keysize = sizeof(Oid);
		ctl.entrysize = sizeof(StreamLogCacheEntry);
		ctl.hcxt = CacheMemoryContext;
		stream_log_cache = hash_create("streamproc stream logs", 64, &ctl,
									   HASH_ELEM | HASH_BLOBS | HASH_CONTEXT);
		CacheRegisterRelcacheCallback(stream_log_cache_invalidate,
									  (Datum)0);
	}

	entry = hash_search(stream_log_cache, &stream_relid, HASH_FIND, NULL);
	if (entry != NULL)
		return entry;

	streams = streams_relid();
	if (!OidIsValid(streams))
		return NULL;
	rel = table_open(streams, AccessShareLock);
	ScanKeyInit(&skey, Anum_streams_stream, BTEqualStrategyNumber, F_OIDEQ,
				ObjectIdGetDatum(stream_relid));
	scan = systable_beginscan(rel, RelationGetPrimaryKeyIndex(rel), true, NULL, 1, &skey);
	tup = systable_getnext(scan);
	if (HeapTupleIsValid(tup))
	{
		Datum values[Natts_streams];
		bool nulls[Natts_streams];
		ArrayType *arr;
		Datum *elems;
		int n;
		int i;

		if (RelationGetDescr(rel)->natts != Natts_streams)
			elog(ERROR, "catalog table streamproc.streams has an unexpected shape");
		heap_deform_tuple(tup, RelationGetDescr(rel), values, nulls);
		arr = DatumGetArrayTypeP(values[Anum_streams_shard_logs - 1]);
		deconstruct_array(arr, REGCLASSOID, sizeof(Oid), true, TYPALIGN_INT, &elems, NULL, &n);
		if (n < 1 || n > STREAMPROC_MAX_SHARDS)
			elog(ERROR, "stream %u has %d log shards", stream_relid, n);
		entry = hash_search(stream_log_cache, &stream_relid, HASH_ENTER, NULL);
		entry->log = DatumGetObjectId(values[Anum_streams_log - 1]);
		entry->nshards = n;
		for (i = 0; i < n; i++)
			entry->shard_logs[i] = DatumGetObjectId(elems[i]);
	}
	systable_endscan(scan);
	table_close(rel, AccessShareLock);
	return entry;
}

int
streamproc_stream_shards(Oid stream_relid)
{
	StreamLogCacheEntry *entry = stream_log_entry(stream_relid);

	return entry ? entry->nshards : 0;
}

Oid
streamproc_stream_log(Oid stream_relid)
{
	StreamLogCacheEntry *entry = stream_log_entry(stream_relid);

	return entry ? entry->log : InvalidOid;
}

/*
 * streamproc_stream_list
 *		Every stream of the database, as StreamprocStream *, with a
 *		signature that changes when the stream's definition does (its
 *		name, columns or options; not its privileges or owner, which the
 *		views' queries check when they run).  Needs a transaction and SPI.
 */
List *
streamproc_stream_list(void)
{
	List *result = NIL;
	uint64 i;
	int ret;

	ret = SPI_execute("SELECT s.stream::oid, s.stream::text, s.log::oid, s.shard_logs::oid[],"
					  " c.relnamespace::text || '.' || c.relname || ':' || ft.xmin::text || ':' || s.xmin::text || ':' ||"
					  " COALESCE((SELECT pg_catalog.md5(pg_catalog.string_agg(a.attname || ' ' || a.atttypid || ' ' || a.attisdropped,"
					  "   ',' ORDER BY a.attnum)) FROM pg_catalog.pg_attribute a"
					  "   WHERE a.attrelid = s.stream AND a.attnum > 0), '')"
					  " FROM streamproc.streams s"
					  " JOIN pg_catalog.pg_class c ON c.oid = s.stream"
					  " JOIN pg_catalog.pg_foreign_table ft ON ft.ftrelid = s.stream"
					  " ORDER BY 1",
					  true, 0);
	if (ret != SPI_OK_SELECT)
		elog(ERROR, "could not read streamproc.streams: %s", SPI_result_code_string(ret));
	for (i = 0; i < SPI_processed; i++)
	{
		HeapTuple tup = SPI_tuptable->vals[i];
		TupleDesc desc = SPI_tuptable->tupdesc;
		StreamprocStream *s = palloc0(sizeof(StreamprocStream));
		bool isnull;
		Datum *elems;
		int n;
		int k;

		s->stream = DatumGetObjectId(SPI_getbinval(tup, desc, 1, &isnull));
		s->name = SPI_getvalue(tup, desc, 2);
		s->log = DatumGetObjectId(SPI_getbinval(tup, desc, 3, &isnull));
		deconstruct_array(DatumGetArrayTypeP(SPI_getbinval(tup, desc, 4, &isnull)),
						  OIDOID, sizeof(Oid), true, TYPALIGN_INT, &elems, NULL, &n);
		s->nshards = Min(n, STREAMPROC_MAX_SHARDS);
		for (k = 0; k < s->nshards; k++)
			s->shard_logs[k] = DatumGetObjectId(elems[k]);
		s->signature = SPI_getvalue(tup, desc, 5);
		result = lappend(result, s);
	}
	return result;
}

bool
streamproc_is_stream(Oid relid)
{
	return OidIsValid(streamproc_stream_log(relid));
}

/* ------------------------------------------------------------------------
 * DDL
 * ------------------------------------------------------------------------
 */

/*
 * internal_begin
 *		Run the following SQL as userid, in a security-restricted context,
 *		with search_path pg_catalog, pg_temp.  Undone by internal_end, or
 *		by transaction (or subtransaction) abort.
 */
static void
internal_begin(InternalContext *ic, Oid userid)
{
	GetUserIdAndSecContext(&ic->save_userid, &ic->save_sec_context);
	SetUserIdAndSecContext(userid, ic->save_sec_context |
									   SECURITY_LOCAL_USERID_CHANGE |
									   SECURITY_RESTRICTED_OPERATION);
	ic->save_nestlevel = NewGUCNestLevel();
	(void)set_config_option("search_path", "pg_catalog, pg_temp",
							PGC_USERSET, PGC_S_SESSION, GUC_ACTION_SAVE,
							true, 0, false);
}

static void
internal_end(InternalContext *ic)
{
	AtEOXact_GUC(true, ic->save_nestlevel);
	SetUserIdAndSecContext(ic->save_userid, ic->save_sec_context);
}

/*
 * exec_internal
 *		Run one SQL statement through SPI as userid (see internal_begin),
 *		with the protection of logs lifted.  The caller is connected to
 *		SPI.  Every identifier in sql must be quoted and qualified.
 */
static void
exec_internal(Oid userid, const char *sql, int nargs, Oid *argtypes,
			  Datum *values)
{
	InternalContext ic;
	int rc;

	internal_begin(&ic, userid);
	internal_ddl_depth++;
	PG_TRY();
	{
		if (nargs > 0)
			rc = SPI_execute_with_args(sql, nargs, argtypes, values, NULL,
									   false, 0);
		else
			rc = SPI_execute(sql, false, 0);
		if (rc < 0)
			elog(ERROR, "SPI_execute failed: %s: %s", SPI_result_code_string(rc),
				 sql);
	}
	PG_FINALLY();
	{
		internal_ddl_depth--;
	}
	PG_END_TRY();
	internal_end(&ic);
	CommandCounterIncrement();
}

/*
 * streamproc_column_type_sql
 *		"type [COLLATE collation]" of a column, fully qualified: see stream.h.
 */
char *
streamproc_column_type_sql(Oid typid, int32 typmod, Oid collid)
{
	StringInfoData buf;

	initStringInfo(&buf);
	appendStringInfoString(&buf,
						   format_type_extended(typid, typmod,
												FORMAT_TYPE_TYPEMOD_GIVEN |
													FORMAT_TYPE_FORCE_QUALIFY));
	if (OidIsValid(collid))
	{
		HeapTuple tup = SearchSysCache1(COLLOID, ObjectIdGetDatum(collid));
		Form_pg_collation coll;

		if (!HeapTupleIsValid(tup))
			elog(ERROR, "cache lookup failed for collation %u", collid);
		coll = (Form_pg_collation)GETSTRUCT(tup);
		appendStringInfo(&buf, " COLLATE %s",
						 quote_qualified_identifier(
							 get_namespace_name(coll->collnamespace),
							 NameStr(coll->collname)));
		ReleaseSysCache(tup);
	}
	return buf.data;
}

/*
 * forget_dedup_keys
 *		Delete a stream's claimed keys (streamproc.dedup_runs, dedup.c): it
 *		is dropped or its key changed.  The caller is connected to SPI.
 */
static void
forget_dedup_keys(Oid stream)
{
	Oid nsp = get_namespace_oid(STREAMPROC_SCHEMA, true);
	Datum arg = ObjectIdGetDatum(stream);
	InternalContext ic;

	if (!OidIsValid(nsp) || !OidIsValid(get_relname_relid("dedup_runs", nsp)))
		return;
	internal_begin(&ic, BOOTSTRAP_SUPERUSERID);
	if (SPI_execute_with_args("DELETE FROM streamproc.dedup_runs WHERE stream = $1",
							  1, (Oid[]){OIDOID}, &arg, NULL, false, 0) != SPI_OK_DELETE)
		elog(ERROR, "could not delete from streamproc.dedup_runs");
	internal_end(&ic);
}

/*
 * check_dedup_key
 *		A stream's dedup_key must name live columns whose types have a
 *		binary output (the keys are compared by it), and with an
 *		event_time, that must be a timestamptz column.
 */
static void
check_dedup_key(StreamShape *shape)
{
	ListCell *lc;
	int i;

	if (shape->opts.dedup_key == NULL)
	{
		if (shape->opts.dedup_window_set)
			ereport(ERROR,
					(errcode(ERRCODE_FDW_INVALID_OPTION_NAME),
					 errmsg("option \"dedup_window\" needs option \"dedup_key\""),
					 errhint("Name the columns that identify an event with dedup_key, for example OPTIONS (dedup_key 'event_id', dedup_window '1 hour').")));
		return;
	}
	/* dedup_keys: a table in 0.3 (the workers wait for the update), a view since. */
	if (!OidIsValid(get_relname_relid("dedup_keys", get_namespace_oid(STREAMPROC_SCHEMA, false))))
		ereport(ERROR,
				(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
				 errmsg("option \"dedup_key\" needs version 0.3 of extension \"streamproc\""),
				 errhint("Run ALTER EXTENSION streamproc UPDATE.")));
	foreach (lc, shape->opts.dedup_columns)
	{
		const char *name = lfirst(lc);
		StreamColumn *col = NULL;

		for (i = 0; i < shape->ncols; i++)
			if (strcmp(NameStr(shape->cols[i].name), name) == 0)
				col = &shape->cols[i];
		if (col == NULL)
			ereport(ERROR,
					(errcode(ERRCODE_UNDEFINED_COLUMN),
					 errmsg("dedup_key column \"%s\" of stream \"%s\" does not exist",
							name, get_rel_name(shape->relid)),
					 errhint("dedup_key names columns of the stream; to drop or rename a key column, change dedup_key first.")));
		{
			Oid send;
			bool varlena;

			getTypeBinaryOutputInfo(col->typid, &send, &varlena);
		}
	}
	if (shape->opts.event_time != NULL)
	{
		for (i = 0; i < shape->ncols; i++)
			if (strcmp(NameStr(shape->cols[i].name), shape->opts.event_time) == 0 &&
				shape->cols[i].typid != TIMESTAMPTZOID)
				ereport(ERROR,
						(errcode(ERRCODE_DATATYPE_MISMATCH),
						 errmsg("event_time column \"%s\" of a stream with dedup_key must be of type timestamp with time zone",
								shape->opts.event_time)));
	}
}

/*
 * read_shape
 *		The live columns and owner of relation relid.  Raises an error if
 *		a column uses the log's reserved name.  The caller holds a lock.
 */
static StreamShape *
read_shape(Oid relid)
{
	Relation rel = relation_open(relid, NoLock);
	TupleDesc desc = RelationGetDescr(rel);
	StreamShape *shape = palloc0(sizeof(StreamShape));
	int i;

	shape->relid = relid;
	shape->owner = rel->rd_rel->relowner;
	shape->natts = desc->natts;
	(void)streamproc_stream_options(relid, &shape->opts);
	shape->cols = palloc0(sizeof(StreamColumn) * Max(desc->natts, 1));
	for (i = 0; i < desc->natts; i++)
	{
		Form_pg_attribute att = TupleDescAttr(desc, i);
		StreamColumn *col;

		if (att->attisdropped)
			continue;
		if (strcmp(NameStr(att->attname), STREAM_XID_COLUMN) == 0 ||
			strcmp(NameStr(att->attname), STREAM_SHARD_COLUMN) == 0)
			ereport(ERROR,
					(errcode(ERRCODE_RESERVED_NAME),
					 errmsg("column name \"%s\" is reserved in streams",
							NameStr(att->attname)),
					 errdetail("The log of a stream uses \"%s\" for the inserting transaction's id and \"%s\" for its shard.",
							   STREAM_XID_COLUMN, STREAM_SHARD_COLUMN)));
		col = &shape->cols[shape->ncols++];
		col->attnum = att->attnum;
		col->name = att->attname;
		col->typid = att->atttypid;
		col->typmod = att->atttypmod;
		col->collid = att->attcollation;
	}
	relation_close(rel, NoLock);
	return shape;
}

/*
 * check_stream_columns
 *		Refuse a stream of natts columns, dropped ones included (dropped:
 *		whether it has any), beyond what its log can hold.  Called before
 *		PostgreSQL runs CREATE or ALTER on a stream, from the statement, so
 *		that PostgreSQL's own limit for the foreign table, 1600, does not
 *		speak first; and before the log is created, from the new stream's
 *		columns, so that the log's CREATE TABLE never fails.
 */
static void
check_stream_columns(int natts, bool dropped)
{
	if (natts <= STREAM_MAX_COLUMNS)
		return;
	ereport(ERROR,
			(errcode(ERRCODE_TOO_MANY_COLUMNS),
			 errmsg("streams can have at most %d columns", STREAM_MAX_COLUMNS),
			 errdetail("The log table of a stream has the stream's columns and two more, \"%s\" and \"%s\", and tables can have at most %d columns.",
					   STREAM_XID_COLUMN, STREAM_SHARD_COLUMN, MaxHeapAttributeNumber),
			 dropped ? errhint("Dropped columns count until the stream is created again.") : 0));
}

/*
 * added_columns
 *		How many columns ALTER TABLE stmt adds to relid: its ADD COLUMN
 *		subcommands, but for ADD COLUMN IF NOT EXISTS of a column that
 *		exists.
 */
static int
added_columns(Oid relid, AlterTableStmt *stmt)
{
	ListCell *lc;
	int n = 0;

	foreach (lc, stmt->cmds)
	{
		AlterTableCmd *cmd = lfirst_node(AlterTableCmd, lc);

		if (cmd->subtype != AT_AddColumn)
			continue;
		if (cmd->missing_ok && IsA(cmd->def, ColumnDef) &&
			get_attnum(relid, ((ColumnDef *)cmd->def)->colname) != InvalidAttrNumber)
			continue;
		n++;
	}
	return n;
}

/*
 * set_log_owner
 *		Give a log and its shards to owner (ALTER TABLE OWNER does not
 *		recurse to partitions).  The caller is connected to SPI.
 */
static void
set_log_owner(Oid log, int nshards, Datum *shards, Oid owner)
{
	const char *role = quote_identifier(GetUserNameFromId(owner, false));
	int k;

	exec_internal(BOOTSTRAP_SUPERUSERID,
				  psprintf("ALTER TABLE %s OWNER TO %s",
						   quote_qualified_identifier(get_namespace_name(get_rel_namespace(log)),
													  get_rel_name(log)),
						   role),
				  0, NULL, NULL);
	for (k = 0; k < nshards; k++)
	{
		Oid shard = DatumGetObjectId(shards[k]);

		exec_internal(BOOTSTRAP_SUPERUSERID,
					  psprintf("ALTER TABLE %s OWNER TO %s",
							   quote_qualified_identifier(get_namespace_name(get_rel_namespace(shard)),
														  get_rel_name(shard)),
							   role),
					  0, NULL, NULL);
	}
}

/*
 * create_stream_log
 *		Create the log of the new stream relid, record it in
 *		streamproc.streams and make it an internal part of the stream.
 *
 * The log is created by the bootstrap superuser (the creator of the
 * stream need not own schema streamproc) and then given to the stream's
 * owner.  No user code runs meanwhile: CREATE TABLE and ALTER OWNER call
 * no functions of the column types.
 */
static void
create_stream_log(Oid relid)
{
	StreamShape *shape;
	StringInfoData sql;
	char *logname;
	Oid nsp;
	Oid logid;
	Datum values[4];
	bool nulls[4] = {false, false, false, false};
	Relation rel;
	HeapTuple tuple;
	Datum *shard_logs;
	int nshards;
	ObjectAddress logaddr;
	ObjectAddress streamaddr;
	int i;
	int k;

	nsp = get_namespace_oid(STREAMPROC_SCHEMA, true);
	if (!OidIsValid(nsp) || !OidIsValid(streams_relid()))
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("extension \"streamproc\" is not installed in this database")));

	shape = read_shape(relid);
	check_stream_columns(shape->ncols, false);
	check_dedup_key(shape);
	nshards = Min(streamproc_workers, STREAMPROC_MAX_SHARDS);
	logname = streamproc_internal_relname("log", relid, nshards);

	/* The log, partitioned by shard: one partition per ingest worker. */
	initStringInfo(&sql);
	appendStringInfo(&sql, "CREATE TABLE %s.%s (",
					 quote_identifier(STREAMPROC_SCHEMA), logname);
	for (i = 0; i < shape->ncols; i++)
		appendStringInfo(&sql, "%s %s, ",
						 quote_identifier(NameStr(shape->cols[i].name)),
						 streamproc_column_type_sql(shape->cols[i].typid, shape->cols[i].typmod, shape->cols[i].collid));
	appendStringInfo(&sql, "%s pg_catalog.xid8 NOT NULL, %s pg_catalog.int2 NOT NULL)"
						   " PARTITION BY LIST (%s)",
					 quote_identifier(STREAM_XID_COLUMN), quote_identifier(STREAM_SHARD_COLUMN),
					 quote_identifier(STREAM_SHARD_COLUMN));

	/* Outlives SPI_finish: used for the dependencies below. */
	shard_logs = palloc(sizeof(Datum) * nshards);
	SPI_connect();
	exec_internal(BOOTSTRAP_SUPERUSERID, sql.data, 0, NULL, NULL);
	logid = get_relname_relid(logname, nsp);
	if (!OidIsValid(logid))
		elog(ERROR, "could not find the new log table \"%s\"", logname);
	for (k = 0; k < nshards; k++)
	{
		char *shardname = psprintf("%s_%d", logname, k);
		Oid shardid;

		resetStringInfo(&sql);
		appendStringInfo(&sql, "CREATE TABLE %s.%s PARTITION OF %s.%s FOR VALUES IN (%d) USING heap",
						 quote_identifier(STREAMPROC_SCHEMA), shardname,
						 quote_identifier(STREAMPROC_SCHEMA), logname, k);
		exec_internal(BOOTSTRAP_SUPERUSERID, sql.data, 0, NULL, NULL);
		shardid = get_relname_relid(shardname, nsp);
		if (!OidIsValid(shardid))
			elog(ERROR, "could not find the new log shard \"%s\"", shardname);
		shard_logs[k] = ObjectIdGetDatum(shardid);
	}

	if (shape->owner != BOOTSTRAP_SUPERUSERID)
		set_log_owner(logid, nshards, shard_logs, shape->owner);

	SPI_finish();

	/*
	 * The catalog row, with the heap functions as view.c does: SQL inserts
	 * into streamproc.streams are refused outside a restore (a guard
	 * trigger of the install script, see restore.c).
	 */
	values[0] = ObjectIdGetDatum(relid);
	values[1] = ObjectIdGetDatum(logid);
	values[2] = Int32GetDatum(nshards);
	values[3] = PointerGetDatum(construct_array(shard_logs, nshards, REGCLASSOID, sizeof(Oid), true, TYPALIGN_INT));
	rel = table_open(streams_relid(), RowExclusiveLock);
	tuple = heap_form_tuple(RelationGetDescr(rel), values, nulls);
	CatalogTupleInsert(rel, tuple);
	heap_freetuple(tuple);
	table_close(rel, RowExclusiveLock);

	ObjectAddressSet(logaddr, RelationRelationId, logid);
	ObjectAddressSet(streamaddr, RelationRelationId, relid);
	recordDependencyOn(&logaddr, &streamaddr, DEPENDENCY_INTERNAL);
	/* So are its shards: none can be dropped alone either. */
	for (k = 0; k < nshards; k++)
	{
		ObjectAddress shardaddr;

		ObjectAddressSet(shardaddr, RelationRelationId, DatumGetObjectId(shard_logs[k]));
		recordDependencyOn(&shardaddr, &streamaddr, DEPENDENCY_INTERNAL);
	}
	CommandCounterIncrement();

	streamproc_catalog_changed();
}

/*
 * first_continuous_view
 *		A continuous view reading stream (the first by OID; windowed: a
 *		windowed one), or InvalidOid.
 *		The caller is connected to SPI.  Not read-only, so that SPI
 *		increments the command counter and the query sees what the current
 *		command did: views that ALTER ... DROP COLUMN ... CASCADE has just
 *		dropped are gone (a read-only query would use the command's
 *		snapshot, which still has them).
 */
static Oid
first_continuous_view(Oid stream, bool windowed)
{
	Oid argtypes[1] = {REGCLASSOID};
	Datum values[1];
	Oid view = InvalidOid;
	InternalContext ic;
	int rc;

	values[0] = ObjectIdGetDatum(stream);
	internal_begin(&ic, BOOTSTRAP_SUPERUSERID);
	rc = SPI_execute_with_args(windowed
								   ? "SELECT view::pg_catalog.oid FROM streamproc.views"
									 " WHERE stream = $1 AND window_kind IS NOT NULL ORDER BY 1 LIMIT 1"
								   : "SELECT view::pg_catalog.oid FROM streamproc.views"
									 " WHERE stream = $1 ORDER BY 1 LIMIT 1",
							   1, argtypes, values, NULL, false, 1);
	if (rc != SPI_OK_SELECT)
		elog(ERROR, "could not read streamproc.views: %s",
			 SPI_result_code_string(rc));
	if (SPI_processed > 0)
	{
		bool isnull;
		Datum d = SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc,
								1, &isnull);

		if (!isnull)
			view = DatumGetObjectId(d);
	}
	internal_end(&ic);
	return view;
}

/*
 * sync_log
 *		Apply to the stream's log the difference between the stream's
 *		columns and owner before and after a DDL statement.
 *
 * Columns are matched by attribute number: a column that kept its number
 * but changed name was renamed, one that changed type was altered, a
 * number that disappeared was dropped (even if a column of the same name
 * was added back), a new number was added.  Drops, renames and type
 * changes are refused while the stream has continuous views, whose stored
 * queries name the log's columns.  Column changes run as the log's owner,
 * so a USING cast runs with the privileges of whoever owns the stream.
 */
static void
sync_log(StreamShape *before, StreamShape *after)
{
	StringInfoData renames;
	StringInfoData alter;
	const char *changed_col = NULL;
	const char *change = NULL;
	char *stream_name = get_rel_name(after->relid);
	char *logname;
	Oid logid;
	int i;
	int j;

	logid = streamproc_stream_log(after->relid);
	if (!OidIsValid(logid))
		return;
	logname = psprintf("%s.%s",
					   quote_identifier(get_namespace_name(
						   get_rel_namespace(logid))),
					   quote_identifier(get_rel_name(logid)));

	initStringInfo(&renames);
	initStringInfo(&alter);

	/* drops (and drop + add of the same name) */
	for (i = 0; i < before->ncols; i++)
	{
		StreamColumn *b = &before->cols[i];
		bool found = false;

		for (j = 0; j < after->ncols; j++)
			if (after->cols[j].attnum == b->attnum)
				found = true;
		if (found)
			continue;
		appendStringInfo(&alter, "%sDROP COLUMN %s", alter.len ? ", " : "",
						 quote_identifier(NameStr(b->name)));
		if (change == NULL)
		{
			change = "drop";
			changed_col = NameStr(b->name);
		}
	}

	/* renames and type changes */
	for (i = 0; i < after->ncols; i++)
	{
		StreamColumn *a = &after->cols[i];
		StreamColumn *b = NULL;

		for (j = 0; j < before->ncols; j++)
			if (before->cols[j].attnum == a->attnum)
				b = &before->cols[j];
		if (b == NULL)
		{
			appendStringInfo(&alter, "%sADD COLUMN %s %s",
							 alter.len ? ", " : "",
							 quote_identifier(NameStr(a->name)),
							 streamproc_column_type_sql(a->typid, a->typmod, a->collid));
			continue;
		}
		if (strcmp(NameStr(a->name), NameStr(b->name)) != 0)
		{
			appendStringInfo(&renames, "ALTER TABLE %s RENAME COLUMN %s TO %s;",
							 logname, quote_identifier(NameStr(b->name)),
							 quote_identifier(NameStr(a->name)));
			if (change == NULL)
			{
				change = "rename";
				changed_col = NameStr(b->name);
			}
		}
		if (a->typid != b->typid || a->typmod != b->typmod ||
			a->collid != b->collid)
		{
			char *qname = pstrdup(quote_identifier(NameStr(a->name)));

			appendStringInfo(&alter, "%sALTER COLUMN %s TYPE %s USING %s::%s",
							 alter.len ? ", " : "", qname,
							 streamproc_column_type_sql(a->typid, a->typmod, a->collid), qname,
							 format_type_extended(a->typid, a->typmod,
												  FORMAT_TYPE_TYPEMOD_GIVEN |
													  FORMAT_TYPE_FORCE_QUALIFY));
			if (change == NULL)
			{
				change = "type";
				changed_col = NameStr(a->name);
			}
		}
	}

	/*
	 * Event-time options: workers read them when they load the catalog.  The
	 * event-time column of windowed views cannot change under them.
	 */
	if ((before->opts.event_time == NULL) != (after->opts.event_time == NULL) ||
		(before->opts.event_time && strcmp(before->opts.event_time, after->opts.event_time) != 0))
	{
		Oid view;

		SPI_connect();
		view = first_continuous_view(after->relid, true);
		SPI_finish();
		if (OidIsValid(view))
			ereport(ERROR,
					(errcode(ERRCODE_DEPENDENT_OBJECTS_STILL_EXIST),
					 errmsg("cannot change the event_time of stream \"%s\"", stream_name),
					 errdetail("Windowed continuous view \"%s\" reads stream \"%s\".",
							   get_rel_name(view), stream_name),
					 errhint("Drop the windowed views of the stream first.")));
		streamproc_catalog_changed();
	}
	if (before->opts.watermark_delay != after->opts.watermark_delay ||
		before->opts.idle_timeout != after->opts.idle_timeout)
		streamproc_catalog_changed();

	/*
	 * Deduplication: the views' log queries pass the key and the event
	 * time to streamproc._dedup() (view.c), so neither changes under them;
	 * the keys seen under another key mean nothing and are forgotten.
	 */
	check_dedup_key(after);
	if ((before->opts.dedup_key == NULL) != (after->opts.dedup_key == NULL) ||
		(before->opts.dedup_key && strcmp(before->opts.dedup_key, after->opts.dedup_key) != 0) ||
		(after->opts.dedup_key != NULL &&
		 ((before->opts.event_time == NULL) != (after->opts.event_time == NULL) ||
		  (before->opts.event_time && strcmp(before->opts.event_time, after->opts.event_time) != 0))))
	{
		Oid view;

		SPI_connect();
		view = first_continuous_view(after->relid, false);
		if (OidIsValid(view))
			ereport(ERROR,
					(errcode(ERRCODE_DEPENDENT_OBJECTS_STILL_EXIST),
					 errmsg("cannot change the dedup_key or event_time of stream \"%s\" while continuous views read it",
							stream_name),
					 errdetail("Continuous view \"%s\" reads stream \"%s\".",
							   get_rel_name(view), stream_name),
					 errhint("Drop the stream's continuous views first; their queries deduplicate by the stream's key.")));
		forget_dedup_keys(after->relid);
		SPI_finish();
		streamproc_catalog_changed();
	}
	else if (before->opts.dedup_window != after->opts.dedup_window)
		streamproc_catalog_changed();

	if (renames.len == 0 && alter.len == 0 && before->owner == after->owner)
		return;

	SPI_connect();

	if (change != NULL)
	{
		Oid view = first_continuous_view(after->relid, false);

		if (OidIsValid(view))
			refuse_column_change(after->relid, view, change, changed_col);
	}

	if (before->owner != after->owner)
	{
		StreamLogCacheEntry *entry = stream_log_entry(after->relid);
		Datum shards[STREAMPROC_MAX_SHARDS];
		int k;

		if (entry == NULL)
			elog(ERROR, "stream %u has no log", after->relid);
		for (k = 0; k < entry->nshards; k++)
			shards[k] = ObjectIdGetDatum(entry->shard_logs[k]);
		set_log_owner(entry->log, entry->nshards, shards, after->owner);
	}
	if (renames.len > 0)
		exec_internal(after->owner, renames.data, 0, NULL, NULL);
	if (alter.len > 0)
	{
		char *sql = psprintf("ALTER TABLE %s %s", logname, alter.data);

		exec_internal(after->owner, sql, 0, NULL, NULL);
	}

	SPI_finish();
	streamproc_catalog_changed();
}

/*
 * refuse_column_change
 *		The error for a change ("drop", "rename" or "type") of column of
 *		stream while continuous view reads the stream.
 */
static void
refuse_column_change(Oid stream, Oid view, const char *change, const char *column)
{
	char *stream_name = get_rel_name(stream);

	ereport(ERROR,
			(errcode(ERRCODE_DEPENDENT_OBJECTS_STILL_EXIST),
			 strcmp(change, "drop") == 0
				 ? errmsg("cannot drop column \"%s\" of stream \"%s\"", column, stream_name)
			 : strcmp(change, "rename") == 0
				 ? errmsg("cannot rename column \"%s\" of stream \"%s\"", column, stream_name)
				 : errmsg("cannot alter type of column \"%s\" of stream \"%s\"", column,
						  stream_name),
			 errdetail("Continuous view \"%s\" reads stream \"%s\".", get_rel_name(view),
					   stream_name),
			 errhint("Drop the continuous views of the stream first, or add a new column instead.")));
}

/*
 * check_column_changes
 *		Before PostgreSQL runs ALTER TABLE on stream relid: refuse a type
 *		change or a DROP COLUMN without CASCADE of an existing column while
 *		continuous views read the stream, with the error sync_log() gives
 *		afterwards.  For the columns a view reads, PostgreSQL would speak
 *		first, because view.c records the view's dependencies on them:
 *		"unexpected object depending on column" (XX000) for a type change,
 *		its generic dependency error for a drop.  Those dependencies stay:
 *		they make DROP COLUMN ... CASCADE (let through here) and DROP TYPE
 *		... CASCADE drop the views that read the column, and sync_log() then
 *		refuses the drop only if other views still read the stream.
 *		Renames pass PostgreSQL's checks and are refused by sync_log().
 */
static void
check_column_changes(Oid relid, AlterTableStmt *stmt)
{
	ListCell *lc;

	foreach (lc, stmt->cmds)
	{
		AlterTableCmd *cmd = lfirst_node(AlterTableCmd, lc);
		Oid view;

		if (!((cmd->subtype == AT_DropColumn && cmd->behavior != DROP_CASCADE) ||
			  cmd->subtype == AT_AlterColumnType) ||
			cmd->name == NULL || get_attnum(relid, cmd->name) == InvalidAttrNumber)
			continue;
		SPI_connect();
		view = first_continuous_view(relid, false);
		SPI_finish();
		if (OidIsValid(view))
			refuse_column_change(relid, view,
								 cmd->subtype == AT_DropColumn ? "drop" : "type", cmd->name);
		return;
	}
}

/*
 * check_log_alter
 *		Refuse a statement that would change the columns, constraints or
 *		owner of a stream's log other than through the stream.
 */
static void
check_log_alter(Oid relid, Node *stmt)
{
	Oid stream;
	bool changes_shape = false;

	if (internal_ddl_depth > 0 ||
		get_rel_namespace(relid) != get_namespace_oid(STREAMPROC_SCHEMA, true))
		return;

	if (IsA(stmt, RenameStmt))
		changes_shape = true;
	else
	{
		ListCell *lc;

		foreach (lc, ((AlterTableStmt *)stmt)->cmds)
		{
			AlterTableCmd *cmd = lfirst_node(AlterTableCmd, lc);

			switch (cmd->subtype)
			{
				case AT_AddColumn:
				case AT_DropColumn:
				case AT_AlterColumnType:
				case AT_AddConstraint:
				case AT_SetNotNull:
				case AT_ColumnDefault:
				case AT_AddIdentity:
				case AT_ChangeOwner:
				case AT_AddInherit:
				case AT_AttachPartition:
				case AT_DetachPartition:
				case AT_DetachPartitionFinalize:
					changes_shape = true;
					break;
				default:
					break;
			}
		}
	}
	if (!changes_shape)
		return;

	stream = lookup_streams_row(Anum_streams_log, relid, Anum_streams_stream);
	if (OidIsValid(stream))
		ereport(ERROR,
				(errcode(ERRCODE_WRONG_OBJECT_TYPE),
				 errmsg("cannot alter log table \"%s\"", get_rel_name(relid)),
				 errdetail("It is the log of stream \"%s\" and follows its columns and owner.",
						   get_rel_name(stream)),
				 errhint("Alter the stream instead.")));
	if (get_rel_relispartition(relid))
	{
		stream = lookup_streams_row(Anum_streams_log, get_partition_parent(relid, true),
									Anum_streams_stream);
		if (OidIsValid(stream))
			ereport(ERROR,
					(errcode(ERRCODE_WRONG_OBJECT_TYPE),
					 errmsg("cannot alter log table \"%s\"", get_rel_name(relid)),
					 errdetail("It is a shard of the log of stream \"%s\" and follows its columns and owner.",
							   get_rel_name(stream)),
					 errhint("Alter the stream instead.")));
	}
}

/*
 * check_log_drop
 *		DROP TABLE of a stream's log or of one of its shards: the error
 *		PostgreSQL's dependencies would give, raised before the statement
 *		locks the table.  Taking the shard's lock first and the log's or the
 *		stream's next would be the reverse of the order an ingest worker
 *		takes them in (log, then shard), and deadlock with it.
 */
static void
check_log_drop(DropStmt *stmt)
{
	ListCell *lc;

	if (internal_ddl_depth > 0 || stmt->removeType != OBJECT_TABLE)
		return;
	foreach (lc, stmt->objects)
	{
		Oid relid = RangeVarGetRelid(makeRangeVarFromNameList(lfirst(lc)), NoLock, true);
		Oid log = relid;
		Oid stream;
		ObjectAddress table;
		ObjectAddress owner;

		if (!OidIsValid(relid) ||
			get_rel_namespace(relid) != get_namespace_oid(STREAMPROC_SCHEMA, true))
			continue;
		if (get_rel_relispartition(relid))
			log = get_partition_parent(relid, true);
		stream = lookup_streams_row(Anum_streams_log, log, Anum_streams_stream);
		if (!OidIsValid(stream))
			continue;
		ObjectAddressSet(table, RelationRelationId, relid);
		ObjectAddressSet(owner, RelationRelationId, stream);
		ereport(ERROR,
				(errcode(ERRCODE_DEPENDENT_OBJECTS_STILL_EXIST),
				 errmsg("cannot drop %s because %s requires it",
						getObjectDescription(&table, false),
						getObjectDescription(&owner, false)),
				 errhint("You can drop %s instead.", getObjectDescription(&owner, false))));
	}
}

/*
 * stream_ProcessUtility
 *		Create, alter and protect logs around the statements that concern
 *		streams; everything else passes through untouched.
 */
static void
stream_ProcessUtility(PlannedStmt *pstmt, const char *queryString,
					  bool readOnlyTree, ProcessUtilityContext context,
					  ParamListInfo params, QueryEnvironment *queryEnv,
					  DestReceiver *dest, QueryCompletion *qc)
{
	Node *parsetree = pstmt->utilityStmt;
	Oid create_server = InvalidOid;
	CreateForeignTableStmt *create = NULL;
	Oid altered = InvalidOid;
	StreamShape *before = NULL;
	GrantStmt *grant = NULL;

	/*
	 * A dump being restored recreates streams, logs and their grants as
	 * they were, and streamproc.post_restore() links them (restore.c).
	 */
	if (streamproc_restoring)
	{
		if (prev_ProcessUtility)
			prev_ProcessUtility(pstmt, queryString, readOnlyTree, context,
								params, queryEnv, dest, qc);
		else
			standard_ProcessUtility(pstmt, queryString, readOnlyTree, context,
									params, queryEnv, dest, qc);
		return;
	}

	switch (nodeTag(parsetree))
	{
		case T_CreateForeignTableStmt:
		{
			ForeignServer *server;
			ListCell *lc;
			int ncols = 0;

			create = (CreateForeignTableStmt *)parsetree;
			server = GetForeignServerByName(create->servername, true);
			if (server == NULL || !server_is_stream_server(server->serverid))
			{
				create = NULL;
				break;
			}
			create_server = server->serverid;
			if (create->base.inhRelations != NIL ||
				create->base.partbound != NULL)
				ereport(ERROR,
						(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
						 errmsg("a stream cannot be a partition or an inheritance child")));
			foreach (lc, create->base.tableElts)
				if (IsA(lfirst(lc), ColumnDef))
					ncols++;
			check_stream_columns(ncols, false);
			break;
		}
		case T_AlterTableStmt:
		case T_RenameStmt:
		{
			RangeVar *rv;
			Oid relid;

			if (IsA(parsetree, AlterTableStmt))
			{
				AlterTableStmt *stmt = (AlterTableStmt *)parsetree;
				ListCell *lc;

				rv = stmt->relation;
				foreach (lc, stmt->cmds)
				{
					AlterTableCmd *cmd = lfirst_node(AlterTableCmd, lc);

					if (cmd->subtype == AT_AttachPartition &&
						cmd->def && IsA(cmd->def, PartitionCmd))
					{
						Oid part = RangeVarGetRelid(
							((PartitionCmd *)cmd->def)->name, NoLock,
							true);

						if (OidIsValid(part) && streamproc_is_stream(part))
							ereport(ERROR,
									(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
									 errmsg("cannot attach stream \"%s\" as a partition",
											get_rel_name(part))));
					}
				}
			}
			else
			{
				RenameStmt *stmt = (RenameStmt *)parsetree;

				if (stmt->renameType != OBJECT_COLUMN || stmt->relation == NULL)
					break;
				rv = stmt->relation;
			}

			relid = RangeVarGetRelid(rv, NoLock, true);
			if (!OidIsValid(relid))
				break;
			if (get_rel_relkind(relid) != RELKIND_FOREIGN_TABLE)
			{
				check_log_alter(relid, parsetree);
				break;
			}
			/* Non-owners get the usual error from PostgreSQL. */
			if (!streamproc_is_stream(relid) ||
				!pg_class_ownercheck(relid, GetUserId()))
				break;
			if (IsA(parsetree, AlterTableStmt))
			{
				ListCell *lc;

				foreach (lc, ((AlterTableStmt *)parsetree)->cmds)
				{
					AlterTableCmd *cmd = lfirst_node(AlterTableCmd, lc);

					if (cmd->subtype == AT_AddInherit)
						ereport(ERROR,
								(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
								 errmsg("a stream cannot be an inheritance child")));
				}
			}
			LockRelationOid(relid, AccessExclusiveLock);
			if (!streamproc_is_stream(relid))
				break;
			altered = relid;
			before = read_shape(relid);
			if (IsA(parsetree, AlterTableStmt))
			{
				check_column_changes(relid, (AlterTableStmt *)parsetree);
				check_stream_columns(before->natts +
										 added_columns(relid, (AlterTableStmt *)parsetree),
									 before->natts > before->ncols);
			}
			break;
		}
		case T_DropStmt:
		{
			DropStmt *stmt = (DropStmt *)parsetree;
			ListCell *lc;

			check_log_drop(stmt);

			/* Refuse to drop a stream that Kafka sources read into. */
			if (stmt->removeType != OBJECT_FOREIGN_TABLE ||
				stmt->behavior != DROP_RESTRICT)
				break;
			foreach (lc, stmt->objects)
			{
				Oid relid = RangeVarGetRelid(makeRangeVarFromNameList((List *)lfirst(lc)),
											 NoLock, true);

				if (OidIsValid(relid))
					streamproc_sources_check_drop(relid);
			}
			break;
		}
		case T_GrantStmt:
			grant = (GrantStmt *)parsetree;
			break;
		case T_CopyStmt:
		{
			CopyStmt *stmt = (CopyStmt *)parsetree;
			Oid relid;

			if (stmt->is_from || stmt->relation == NULL)
				break;
			relid = RangeVarGetRelid(stmt->relation, NoLock, true);
			if (OidIsValid(relid) && streamproc_is_stream(relid))
				refuse_read(relid);
			break;
		}
		default:
			break;
	}

	if (prev_ProcessUtility)
		prev_ProcessUtility(pstmt, queryString, readOnlyTree, context, params,
							queryEnv, dest, qc);
	else
		standard_ProcessUtility(pstmt, queryString, readOnlyTree, context,
								params, queryEnv, dest, qc);

	if (create != NULL)
	{
		RangeVar *rv = create->base.relation;
		Oid relid;

		CommandCounterIncrement();
		relid = get_relname_relid(rv->relname,
								  RangeVarGetCreationNamespace(rv));
		/* IF NOT EXISTS may have found another relation, or a stream. */
		if (OidIsValid(relid) &&
			get_rel_relkind(relid) == RELKIND_FOREIGN_TABLE &&
			GetForeignServerIdByRelId(relid) == create_server &&
			!streamproc_is_stream(relid))
			create_stream_log(relid);
	}
	else if (OidIsValid(altered))
	{
		CommandCounterIncrement();
		sync_log(before, read_shape(altered));
	}
	else if (grant != NULL)
		mirror_select_grant(grant);
}

/*
 * mirror_select_grant
 *		GRANT or REVOKE of SELECT (or ALL) on streams applies SELECT on their
 *		logs too: a view is maintained as its owner, whose batch queries
 *		read the log, so whoever may read a stream may read its log.  Run as
 *		the logs' owner (the stream's), who holds the privileges to give.
 */
static void
mirror_select_grant(GrantStmt *stmt)
{
	GrantStmt *copy;
	ListCell *lc;
	bool select = (stmt->privileges == NIL);
	List *logs = NIL;

	if (stmt->targtype != ACL_TARGET_OBJECT ||
		(stmt->objtype != OBJECT_TABLE && stmt->objtype != OBJECT_FOREIGN_TABLE))
		return;
	foreach (lc, stmt->privileges)
	{
		AccessPriv *priv = lfirst_node(AccessPriv, lc);

		if (priv->priv_name != NULL && strcmp(priv->priv_name, "select") == 0 &&
			priv->cols == NIL)
			select = true;
	}
	if (!select)
		return;
	foreach (lc, stmt->objects)
	{
		Oid relid = RangeVarGetRelid(lfirst_node(RangeVar, lc), NoLock, true);
		Oid log = OidIsValid(relid) ? streamproc_stream_log(relid) : InvalidOid;

		if (OidIsValid(log))
			logs = lappend_oid(logs, log);
	}
	foreach (lc, logs)
	{
		Oid log = lfirst_oid(lc);
		Oid save_userid;
		int save_sec;
		HeapTuple tup;
		Oid owner;

		copy = copyObject(stmt);
		copy->objtype = OBJECT_TABLE;
		copy->objects = list_make1(makeRangeVar(get_namespace_name(get_rel_namespace(log)),
												get_rel_name(log), -1));
		copy->privileges = list_make1(makeNode(AccessPriv));
		((AccessPriv *)linitial(copy->privileges))->priv_name = pstrdup("select");
		copy->grantor = NULL;
		tup = SearchSysCache1(RELOID, ObjectIdGetDatum(log));
		if (!HeapTupleIsValid(tup))
			elog(ERROR, "cache lookup failed for relation %u", log);
		owner = ((Form_pg_class)GETSTRUCT(tup))->relowner;
		ReleaseSysCache(tup);
		GetUserIdAndSecContext(&save_userid, &save_sec);
		SetUserIdAndSecContext(owner, save_sec | SECURITY_LOCAL_USERID_CHANGE);
		ExecuteGrantStmt(copy);
		SetUserIdAndSecContext(save_userid, save_sec);
	}
}

/*
 * stream_object_access
 *		When a stream is dropped, by whatever path, delete its row of
 *		streamproc.streams in the same transaction.  The log itself goes
 *		through its internal dependency.
 *
 * OAT_DROP runs just before the object is deleted, with the catalog as
 * the earlier deletions of the same command left it: during DROP
 * EXTENSION ... CASCADE streamproc.streams may already be gone, and then
 * there is nothing to do.
 */
static void
stream_object_access(ObjectAccessType access, Oid classId, Oid objectId,
					 int subId, void *arg)
{
	if (prev_object_access)
		prev_object_access(access, classId, objectId, subId, arg);

	if (access == OAT_DROP && classId == RelationRelationId && subId == 0 &&
		get_rel_relkind(objectId) == RELKIND_FOREIGN_TABLE)
	{
		Oid streams = streams_relid();
		Relation rel;
		Oid index;
		ScanKeyData key;
		SysScanDesc scan;
		HeapTuple tup;
		bool found = false;

		if (!OidIsValid(streams))
			return;
		rel = table_open(streams, RowExclusiveLock);
		index = RelationGetPrimaryKeyIndex(rel);
		ScanKeyInit(&key, Anum_streams_stream, BTEqualStrategyNumber,
					F_OIDEQ, ObjectIdGetDatum(objectId));
		scan = systable_beginscan(rel, index, OidIsValid(index), NULL, 1,
								  &key);
		while (HeapTupleIsValid(tup = systable_getnext(scan)))
		{
			simple_heap_delete(rel, &tup->t_self);
			found = true;
		}
		systable_endscan(scan);
		table_close(rel, NoLock);

		if (found)
		{
			CommandCounterIncrement();
			streamproc_sources_forget_stream(objectId);
			SPI_connect();
			forget_dedup_keys(objectId);
			SPI_finish();
			streamproc_catalog_changed();
		}
	}
}
