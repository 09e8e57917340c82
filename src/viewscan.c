/*-------------------------------------------------------------------------
 *
 * viewscan.c
 *	  Reading continuous views: the foreign-data wrapper "streamproc_view".
 *
 * An aggregating continuous view is a plain view over its foreign table
 * streamproc.groups_<view oid> (view.c), whose columns are the view's
 * group keys g1..gn and the final values of its aggregates a1..am; the
 * view applies the user's expressions and HAVING on top.  Through the FDW
 * API the planner and executor read it the way a table with a primary key
 * on its group columns is read:
 *
 *	- GetForeignRelSize: the view's number of groups (from shared memory),
 *	  and one row per key when every group column is bound by equality;
 *	- GetForeignPaths: a scan that takes key conditions (k = 42, k = $1,
 *	  k IN (...), k = ANY($1)) and, for join clauses on every group
 *	  column, parameterized paths, so that a nested loop probes the view
 *	  per outer row (as postgres_fdw's parameterized paths do);
 *	- the scan: a keyed scan hashes each key and copies one group out of
 *	  the view's group map (groupmap.c), combining its slots (one per
 *	  ingest worker) and applying the final functions (combine.c); a full
 *	  scan copies one partition of the map at a time and finalizes as it
 *	  returns rows;
 *	- parallel full scans: the participants of a Parallel Foreign Scan
 *	  take the map's partitions from a shared counter (in the DSM segment
 *	  of the query), so each group is read once; the leader decides
 *	  whether they read shared memory or the checkpoint, which only the
 *	  participant that takes the first "partition" reads.  Offered when
 *	  the view has group columns, is not windowed, and its aggregates'
 *	  support functions are parallel safe;
 *	- EXPLAIN says which.
 *
 * Until every worker has loaded its slot (after a restart), and on a
 * standby (no workers), the scan reads the checkpoint instead
 * (statestore.c): a keyed scan reads only its keys' buckets.
 *
 * Windowed views are read whole (open windows from shared memory, closed
 * ones from streamproc.window_runs, hop windows combined from their
 * slices), pruned by the conditions on the window's start.
 *
 * Privileges: the executor checks SELECT on the foreign table (the view's
 * owner owns it, so readers of the view get through).  Partial states
 * never leave C code: deserialization functions trust their input.
 *
 * Locking: shared partition locks while copying groups (groupmap.c); for
 * windowed views the view's windows lock while reading shared memory and
 * the closing bounds (state.c).  Nothing is held between rows.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/htup_details.h"
#include "access/parallel.h"
#include "access/table.h"
#include "catalog/pg_collation.h"
#include "catalog/pg_aggregate.h"
#include "catalog/pg_operator.h"
#include "catalog/pg_proc.h"
#include "catalog/pg_type.h"
#include "commands/explain.h"
#include "executor/executor.h"
#include "executor/spi.h"
#include "foreign/fdwapi.h"
#include "miscadmin.h"
#include "nodes/makefuncs.h"
#include "nodes/nodeFuncs.h"
#include "optimizer/cost.h"
#include "optimizer/optimizer.h"
#include "optimizer/pathnode.h"
#include "optimizer/paths.h"
#include "optimizer/planmain.h"
#include "optimizer/restrictinfo.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/hsearch.h"
#include "utils/datum.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"
#include "utils/pg_locale.h"
#include "utils/syscache.h"
#include "utils/timestamp.h"
#include "utils/tuplestore.h"
#include "utils/typcache.h"

#include "combine.h"
#include "groupkey.h"
#include "groupmap.h"
#include "packed.h"
#include "state.h"
#include "statestore.h"
#include "streamproc.h"
#include "view.h"
#include "windows.h"

PG_FUNCTION_INFO_V1(streamproc_view_fdw_handler);

/* Keys looked up per scan at most before a keyed scan reads everything. */
#define MAX_KEYS 100000

/* Rows a parameter list of unknown length (k = ANY($1)) is guessed at. */
#define ARRAY_PARAM_ROWS 10

/* What the scan needs to know about a view; cached per backend. */
typedef struct ViewMeta
{
	Oid ft; /* hash key: the foreign table */
	Oid viewid;
	char *name;
	uint64 generation; /* catalog generation it was read at */
	int ngroup;        /* group columns g1..gn */
	Oid *group_types;
	Oid *group_colls;
	int16 *roles; /* WINDOW_ROLE_* per group column (windowed) */
	int nkeys;    /* ordinary group columns ... */
	int *key_col; /* ... and which g each is */
	GroupKeyCodec *codec;
	ViewAggs *aggs;
	WindowSpec window; /* kind 0: not windowed */
	bool parallel_ok;  /* a full scan may be parallel (see the header) */
	MemoryContext cxt;
} ViewMeta;

static HTAB *meta_cache = NULL;

/* The planner's findings, in RelOptInfo.fdw_private. */
typedef struct ScanPlanInfo
{
	ViewMeta *meta;
	double groups;
	bool keyed;               /* every group column bound by the base quals */
	RestrictInfo **key_rinfo; /* per group column, or NULL */
	Node **key_expr;          /* ... the other side */
	bool *key_array;          /* ... an array (= ANY) */
	double nkeys;
} ScanPlanInfo;

/* Kinds of scan (fdw_private of the plan). */
#define SCAN_FULL  0
#define SCAN_KEYED 1

/* The columns a plan reads (fdw_private of the plan). */
#define NEED_KEYS 0x1
#define NEED_AGGS 0x2

/* A parallel full scan's shared state, in the query's DSM segment. */
typedef struct ParallelScanShared
{
	pg_atomic_uint32 next_partition; /* the next one to take */
	bool memory;                     /* the leader's choice */
	uint64 load_generation;          /* ... and what it saw */
} ParallelScanShared;

/* The executor's state. */
typedef struct ViewScanState
{
	ViewMeta *meta;
	int mode;
	List *key_states;   /* ExprState * per group column (keyed) */
	List *key_cols;     /* IntList: the group column of each key expression */
	List *key_arrays;   /* IntList: whether each key expression is an array */
	List *range_states; /* windowed: window start conditions */
	List *range_ops;    /* ... their strategies (IntList) */
	ViewStateInfo info;
	bool memory;    /* read shared memory (else the checkpoint) */
	bool need_keys; /* the plan reads a group column */
	bool need_aggs; /* ... an aggregate */
	GroupMap *map;
	/* keyed: the keys, built at (re)scan */
	int nlookups;
	Datum **lookup_values; /* per key: per group column */
	bool **lookup_nulls;
	int next_lookup;
	bool lookups_ready; /* the keys were evaluated for this (re)scan */
	/* full scan of shared memory */
	ParallelScanShared *parallel; /* a parallel scan's, or NULL */
	int partition;
	StringInfoData buf;
	int pos;
	int remaining;
	/* materialized results (checkpoint reads, windowed views) */
	Tuplestorestate *store;
	TupleTableSlot *store_slot; /* reads the store (minimal tuples) */
	bool done;
	int64 emitted;
	/* scratch */
	StringInfoData combined;
	Datum *values;
	bool *nulls;
	MemoryContext rowcxt;
	MemoryContext lookupcxt; /* the keys of a keyed scan, reset at each rescan */
	MemoryContext scancxt;   /* the executor's per-query context */
} ViewScanState;

static void viewscan_GetForeignRelSize(PlannerInfo *root, RelOptInfo *baserel,
									   Oid foreigntableid);
static void viewscan_GetForeignPaths(PlannerInfo *root, RelOptInfo *baserel,
									 Oid foreigntableid);
static ForeignScan *viewscan_GetForeignPlan(PlannerInfo *root, RelOptInfo *baserel,
											Oid foreigntableid, ForeignPath *best_path,
											List *tlist, List *scan_clauses,
											Plan *outer_plan);
static void viewscan_BeginForeignScan(ForeignScanState *node, int eflags);
static TupleTableSlot *viewscan_IterateForeignScan(ForeignScanState *node);
static void viewscan_ReScanForeignScan(ForeignScanState *node);
static void viewscan_EndForeignScan(ForeignScanState *node);
static void viewscan_ExplainForeignScan(ForeignScanState *node, ExplainState *es);
static void lookup_key(ViewScanState *vss, int i, StringInfo key);
static void dedup_lookups(ViewScanState *vss);
static bool viewscan_IsForeignScanParallelSafe(PlannerInfo *root, RelOptInfo *rel,
											   RangeTblEntry *rte);
static Size viewscan_EstimateDSMForeignScan(ForeignScanState *node, ParallelContext *pcxt);
static void viewscan_InitializeDSMForeignScan(ForeignScanState *node, ParallelContext *pcxt,
											  void *coordinate);
static void viewscan_ReInitializeDSMForeignScan(ForeignScanState *node, ParallelContext *pcxt,
												void *coordinate);
static void viewscan_InitializeWorkerForeignScan(ForeignScanState *node, shm_toc *toc,
												 void *coordinate);

static ViewMeta *view_meta(Oid ft);
static int columns_needed(ViewMeta *m, RelOptInfo *baserel, List *quals);
static void start_scan(ViewScanState *vss, ExprContext *econtext);

Datum
streamproc_view_fdw_handler(PG_FUNCTION_ARGS)
{
	FdwRoutine *routine = makeNode(FdwRoutine);

	routine->GetForeignRelSize = viewscan_GetForeignRelSize;
	routine->GetForeignPaths = viewscan_GetForeignPaths;
	routine->GetForeignPlan = viewscan_GetForeignPlan;
	routine->BeginForeignScan = viewscan_BeginForeignScan;
	routine->IterateForeignScan = viewscan_IterateForeignScan;
	routine->ReScanForeignScan = viewscan_ReScanForeignScan;
	routine->EndForeignScan = viewscan_EndForeignScan;
	routine->ExplainForeignScan = viewscan_ExplainForeignScan;
	routine->IsForeignScanParallelSafe = viewscan_IsForeignScanParallelSafe;
	routine->EstimateDSMForeignScan = viewscan_EstimateDSMForeignScan;
	routine->InitializeDSMForeignScan = viewscan_InitializeDSMForeignScan;
	routine->ReInitializeDSMForeignScan = viewscan_ReInitializeDSMForeignScan;
	routine->InitializeWorkerForeignScan = viewscan_InitializeWorkerForeignScan;
	PG_RETURN_POINTER(routine);
}

/* ----------------------------------------------------------------
 * View metadata
 * ----------------------------------------------------------------
 */

/*
 * view_meta
 *		The metadata of the view whose foreign table is ft, from a backend
 *		cache that forgets an entry when the engine's catalog changed since
 *		it was read.
 */
/* A type's binary input and output functions are parallel safe. */
static bool
type_io_parallel_safe(Oid type)
{
	Oid fn;
	Oid ioparam;
	bool varlena;

	getTypeBinaryInputInfo(type, &fn, &ioparam);
	if (func_parallel(fn) != PROPARALLEL_SAFE)
		return false;
	getTypeBinaryOutputInfo(type, &fn, &varlena);
	return func_parallel(fn) == PROPARALLEL_SAFE;
}

/*
 * Whether what a scan calls in C is parallel safe: the aggregates' combine,
 * serialization and final functions, and the binary I/O of the group
 * columns and of transition values.
 */
static bool
functions_parallel_safe(ViewMeta *m)
{
	int i;

	for (i = 0; i < m->ngroup; i++)
		if (!type_io_parallel_safe(m->group_types[i]))
			return false;
	for (i = 0; i < m->aggs->nagg; i++)
	{
		StreamprocAggInfo *a = m->aggs->aggs[i];
		Oid fns[4] = {a->combinefn_oid, a->serialfn_oid, a->deserialfn_oid, a->finalfn_oid};
		int j;

		for (j = 0; j < 4; j++)
			if (OidIsValid(fns[j]) && func_parallel(fns[j]) != PROPARALLEL_SAFE)
				return false;
		if (a->transtype != INTERNALOID && !type_io_parallel_safe(a->transtype))
			return false;
	}
	return true;
}

static ViewMeta *
view_meta(Oid ft)
{
	uint64 generation = pg_atomic_read_u64(&streamproc_shared->catalog_generation);
	ViewMeta *m;
	bool found;
	List *views;
	StreamprocView *def = NULL;
	ListCell *lc;
	MemoryContext old;
	ViewMeta built;
	int i;

	streamproc_check_preloaded();
	if (meta_cache == NULL)
	{
		HASHCTL ctl;

		ctl.keysize = sizeof(Oid);
		ctl.entrysize = sizeof(ViewMeta);
		ctl.hcxt = TopMemoryContext;
		meta_cache = hash_create("streamproc view metadata", 64, &ctl,
								 HASH_ELEM | HASH_BLOBS | HASH_CONTEXT);
	}
	m = hash_search(meta_cache, &ft, HASH_FIND, NULL);
	if (m != NULL && m->generation == generation)
		return m;
	if (m != NULL)
	{
		/*
		 * A scan of this query may still use the old metadata (the catalog
		 * changed between two of its scans): it goes with the transaction.
		 */
		MemoryContextSetParent(m->cxt, TopTransactionContext);
		hash_search(meta_cache, &ft, HASH_REMOVE, NULL);
	}

	views = streamproc_view_list(InvalidOid);
	foreach (lc, views)
		if (((StreamprocView *)lfirst(lc))->groups_table == ft)
			def = lfirst(lc);
	if (def == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_WRONG_OBJECT_TYPE),
				 errmsg("foreign table \"%s\" is not the groups of a continuous view",
						get_rel_name(ft)),
				 errhint("Read continuous views through the view itself.")));

	/*
	 * Built aside and entered in the cache only when complete: an error on
	 * the way (a catalog row naming a type that is gone) must not leave a
	 * half-built entry for the next query.
	 */
	memset(&built, 0, sizeof(ViewMeta));
	m = &built;
	m->ft = ft;
	m->cxt = AllocSetContextCreate(CurrentMemoryContext, "streamproc view metadata",
								   ALLOCSET_SMALL_SIZES);
	old = MemoryContextSwitchTo(m->cxt);
	m->viewid = def->view;
	m->name = pstrdup(def->name);
	m->generation = generation;
	m->ngroup = def->ngroups;
	m->group_types = palloc(sizeof(Oid) * Max(m->ngroup, 1));
	m->group_colls = palloc(sizeof(Oid) * Max(m->ngroup, 1));
	m->roles = palloc0(sizeof(int16) * Max(m->ngroup, 1));
	m->key_col = palloc(sizeof(int) * Max(m->ngroup, 1));
	for (i = 0; i < m->ngroup; i++)
	{
		m->group_types[i] = def->group_types[i];
		m->group_colls[i] = get_attnum(ft, psprintf("g%d", i + 1)) != InvalidAttrNumber
								? get_typcollation(def->group_types[i])
								: InvalidOid;
		if (def->window_kind != 0)
			m->roles[i] = def->window_roles[i];
		if (m->roles[i] == WINDOW_ROLE_KEY)
			m->key_col[m->nkeys++] = i;
	}
	{
		Oid *keytypes = palloc(sizeof(Oid) * Max(m->nkeys, 1));
		Datum *elems = palloc(sizeof(Datum) * Max(def->naggs, 1));
		ArrayType *aggs;
		ArrayType *colls;

		for (i = 0; i < m->nkeys; i++)
			keytypes[i] = m->group_types[m->key_col[i]];
		m->codec = groupkey_codec_create(m->nkeys, keytypes);
		for (i = 0; i < def->naggs; i++)
			elems[i] = ObjectIdGetDatum(def->aggregates[i]);
		aggs = construct_array(elems, def->naggs, OIDOID, sizeof(Oid), true, TYPALIGN_INT);
		for (i = 0; i < def->naggs; i++)
			elems[i] = ObjectIdGetDatum(def->agg_collations[i]);
		colls = construct_array(elems, def->naggs, OIDOID, sizeof(Oid), true, TYPALIGN_INT);
		m->aggs = streamproc_view_aggs(aggs, colls, DatumGetArrayTypeP(def->agg_argtypes));
	}
	if (def->window_kind != 0)
	{
		m->window.kind = def->window_kind;
		m->window.size = def->window_size;
		m->window.slide = def->window_slide;
		m->window.origin = def->window_origin;
		m->window.lateness = def->allowed_lateness;
		m->window.retention = def->retention;
		m->window.emit = def->emit;
	}
	m->parallel_ok = m->ngroup > 0 && m->window.kind == 0 && functions_parallel_safe(m);
	MemoryContextSwitchTo(old);

	MemoryContextSetParent(built.cxt, TopMemoryContext);
	m = hash_search(meta_cache, &ft, HASH_ENTER, &found);
	*m = built;
	return m;
}

/* ----------------------------------------------------------------
 * Planning
 * ----------------------------------------------------------------
 */

/* The group column a Var of the scanned relation is, or -1. */
static int
group_column(ViewMeta *m, Index relid, Node *node)
{
	Var *var;

	while (node && IsA(node, RelabelType))
		node = (Node *)((RelabelType *)node)->arg;
	if (node == NULL || !IsA(node, Var))
		return -1;
	var = (Var *)node;
	if (var->varno != relid || var->varlevelsup != 0 ||
		var->varattno < 1 || var->varattno > m->ngroup)
		return -1;
	return var->varattno - 1;
}

/*
 * Can a lookup find the groups that operator opno says equal to values of
 * the column's type?  Only the type's own equality, and only under a
 * deterministic collation: keys are compared by their bytes (groupkey.c).
 */
static bool
key_equality(ViewMeta *m, int col, Oid opno, Oid valuetype)
{
	TypeCacheEntry *tc = lookup_type_cache(m->group_types[col], TYPECACHE_EQ_OPR);

	if (!OidIsValid(tc->eq_opr) || tc->eq_opr != opno ||
		getBaseType(valuetype) != getBaseType(m->group_types[col]))
		return false;
	if (OidIsValid(m->group_colls[col]) &&
		!get_collation_isdeterministic(m->group_colls[col]))
		return false;
	return true;
}

/* A column that a lookup binds: an ordinary key, or a tumbling window's start. */
static bool
lookup_column(ViewMeta *m, int col)
{
	if (m->window.kind == 0)
		return true;
	if (m->window.kind != WINDOW_TUMBLE)
		return false;
	return m->roles[col] == WINDOW_ROLE_KEY || m->roles[col] == WINDOW_ROLE_START;
}

/*
 * match_key_clause
 *		Is clause "group column = value" (or "= ANY (array)") with value not
 *		referencing the scanned relation nor volatile?  Sets *col, *value,
 *		*is_array.
 */
static bool
match_key_clause(ViewMeta *m, Index relid, Expr *clause, int *col, Node **value,
				 bool *is_array)
{
	Node *left;
	Node *right;
	Oid opno;

	if (IsA(clause, OpExpr) && list_length(((OpExpr *)clause)->args) == 2)
	{
		left = linitial(((OpExpr *)clause)->args);
		right = lsecond(((OpExpr *)clause)->args);
		opno = ((OpExpr *)clause)->opno;
		*is_array = false;
		if (group_column(m, relid, left) < 0)
		{
			Node *t = left;

			left = right;
			right = t;
			opno = get_commutator(opno);
		}
	}
	else if (IsA(clause, ScalarArrayOpExpr) && ((ScalarArrayOpExpr *)clause)->useOr)
	{
		left = linitial(((ScalarArrayOpExpr *)clause)->args);
		right = lsecond(((ScalarArrayOpExpr *)clause)->args);
		opno = ((ScalarArrayOpExpr *)clause)->opno;
		*is_array = true;
	}
	else
		return false;

	*col = group_column(m, relid, left);
	if (*col < 0 || !lookup_column(m, *col))
		return false;
	if (bms_is_member(relid, pull_varnos(NULL, right)) || contain_volatile_functions(right))
		return false;
	if (!key_equality(m, *col, opno,
					  *is_array ? get_element_type(exprType(right)) : exprType(right)))
		return false;
	*value = right;
	return true;
}

/* Keys a value stands for: 1, an array constant's length, or a guess. */
static double
value_rows(Node *value, bool is_array)
{
	if (!is_array)
		return 1;
	if (IsA(value, Const) && !((Const *)value)->constisnull)
		return ArrayGetNItems(ARR_NDIM(DatumGetArrayTypeP(((Const *)value)->constvalue)),
							  ARR_DIMS(DatumGetArrayTypeP(((Const *)value)->constvalue)));
	return ARRAY_PARAM_ROWS;
}

/* Every column a lookup needs is bound in key_rinfo. */
static bool
all_bound(ViewMeta *m, RestrictInfo **key_rinfo)
{
	bool any = false;
	int i;

	if (m->window.kind != 0 && m->window.kind != WINDOW_TUMBLE)
		return false;
	for (i = 0; i < m->ngroup; i++)
	{
		if (!lookup_column(m, i))
			continue;
		if (key_rinfo[i] == NULL)
			return false;
		any = true;
	}
	return any;
}

static double
estimate_groups(ViewMeta *m)
{
	ViewStateInfo info;

	if (streamproc_state_info(MyDatabaseId, m->viewid, &info) && info.groups > 0)
		return (double)info.groups;
	return 1000;
}

static void
viewscan_GetForeignRelSize(PlannerInfo *root, RelOptInfo *baserel, Oid foreigntableid)
{
	ScanPlanInfo *pi = palloc0(sizeof(ScanPlanInfo));
	ViewMeta *m = view_meta(foreigntableid);
	List *other = NIL;
	ListCell *lc;

	pi->meta = m;
	pi->groups = m->ngroup == 0 ? 1 : estimate_groups(m);
	pi->key_rinfo = palloc0(sizeof(RestrictInfo *) * Max(m->ngroup, 1));
	pi->key_expr = palloc0(sizeof(Node *) * Max(m->ngroup, 1));
	pi->key_array = palloc0(sizeof(bool) * Max(m->ngroup, 1));
	foreach (lc, baserel->baserestrictinfo)
	{
		RestrictInfo *rinfo = lfirst_node(RestrictInfo, lc);
		int col;
		Node *value;
		bool is_array;

		if (match_key_clause(m, baserel->relid, rinfo->clause, &col, &value, &is_array) &&
			pi->key_rinfo[col] == NULL)
		{
			pi->key_rinfo[col] = rinfo;
			pi->key_expr[col] = value;
			pi->key_array[col] = is_array;
		}
		else
			other = lappend(other, rinfo);
	}
	pi->keyed = all_bound(m, pi->key_rinfo);
	if (pi->keyed)
	{
		int i;

		pi->nkeys = 1;
		for (i = 0; i < m->ngroup; i++)
			if (pi->key_rinfo[i] != NULL)
				pi->nkeys *= value_rows(pi->key_expr[i], pi->key_array[i]);
		baserel->rows = clamp_row_est(Min(pi->nkeys, pi->groups) *
									  clauselist_selectivity(root, other, baserel->relid,
															 JOIN_INNER, NULL));
	}
	else
		baserel->rows = clamp_row_est(pi->groups *
									  clauselist_selectivity(root, baserel->baserestrictinfo,
															 baserel->relid, JOIN_INNER, NULL));
	baserel->tuples = pi->groups;
	baserel->fdw_private = pi;
}

/* The cost of reading n groups of a view, each a lookup or part of a scan. */
static void
scan_costs(double n, bool keyed, Cost *startup, Cost *total)
{
	*startup = 0;
	if (keyed)
		*total = n * (cpu_operator_cost * 20 + cpu_tuple_cost);
	else
		*total = n * (cpu_operator_cost * 10 + cpu_tuple_cost);
}

/* Callback of generate_implied_equalities_for_column: is em our column? */
typedef struct ColumnMatch
{
	Index relid;
	AttrNumber attno;
} ColumnMatch;

static bool
ec_member_is_column(PlannerInfo *root, RelOptInfo *rel, EquivalenceClass *ec,
					EquivalenceMember *em, void *arg)
{
	ColumnMatch *cm = arg;
	Node *expr = (Node *)em->em_expr;

	while (expr && IsA(expr, RelabelType))
		expr = (Node *)((RelabelType *)expr)->arg;
	return expr && IsA(expr, Var) && ((Var *)expr)->varno == cm->relid &&
		   ((Var *)expr)->varattno == cm->attno && ((Var *)expr)->varlevelsup == 0;
}

/*
 * Join clauses "group column = expression of other relations", per
 * column, from the join clauses and the equivalence classes.
 */
static List *
join_key_clauses(PlannerInfo *root, RelOptInfo *baserel, ViewMeta *m, int col)
{
	List *result = NIL;
	ListCell *lc;
	ColumnMatch cm;

	foreach (lc, baserel->joininfo)
	{
		RestrictInfo *rinfo = lfirst_node(RestrictInfo, lc);
		int c;
		Node *value;
		bool is_array;

		if (match_key_clause(m, baserel->relid, rinfo->clause, &c, &value, &is_array) &&
			c == col && !is_array && !bms_is_empty(rinfo->clause_relids))
			result = lappend(result, rinfo);
	}
	cm.relid = baserel->relid;
	cm.attno = col + 1;
	foreach (lc, generate_implied_equalities_for_column(root, baserel, ec_member_is_column,
														&cm, baserel->lateral_referencers))
	{
		RestrictInfo *rinfo = lfirst_node(RestrictInfo, lc);
		int c;
		Node *value;
		bool is_array;

		if (match_key_clause(m, baserel->relid, rinfo->clause, &c, &value, &is_array) &&
			c == col && !is_array)
			result = lappend(result, rinfo);
	}
	return result;
}

/*
 * A partial path for a parallel full scan (see the header): its workers
 * follow the view's size in memory as a table's follow its pages, and its
 * rows and CPU cost are divided among the participants as the planner's
 * own parallel sequential scans are.
 */
static void
add_partial_full_scan(PlannerInfo *root, RelOptInfo *baserel, ScanPlanInfo *pi)
{
	ViewMeta *m = pi->meta;
	ViewStateInfo info;
	double pages;
	int workers;
	double divisor;
	double leader;
	Cost startup;
	Cost total;
	ForeignPath *path;

	if (!baserel->consider_parallel || !m->parallel_ok)
		return;
	pages = pi->groups * 100.0 / BLCKSZ;
	if (streamproc_state_info(MyDatabaseId, m->viewid, &info) && info.memory > 0)
		pages = (double)info.memory / BLCKSZ;
	workers = compute_parallel_worker(baserel, pages, -1, max_parallel_workers_per_gather);
	if (workers <= 0)
		return;
	divisor = workers;
	leader = 1.0 - 0.3 * workers;
	if (parallel_leader_participation && leader > 0)
		divisor += leader;
	scan_costs(pi->groups, false, &startup, &total);
	path = create_foreignscan_path(root, baserel, NULL, clamp_row_est(baserel->rows / divisor),
								   startup, total / divisor, NIL, NULL, NULL, NIL);
	path->path.parallel_aware = true;
	path->path.parallel_safe = true;
	path->path.parallel_workers = workers;
	add_partial_path(baserel, (Path *)path);
}

static void
viewscan_GetForeignPaths(PlannerInfo *root, RelOptInfo *baserel, Oid foreigntableid)
{
	ScanPlanInfo *pi = baserel->fdw_private;
	ViewMeta *m = pi->meta;
	Cost startup;
	Cost total;
	List **candidates;
	ListCell *lc;
	int i;

	scan_costs(pi->keyed ? Min(pi->nkeys, pi->groups) : pi->groups, pi->keyed, &startup, &total);
	add_path(baserel, (Path *)create_foreignscan_path(root, baserel, NULL, baserel->rows,
													  startup, total, NIL, NULL, NULL, NIL));
	if (pi->keyed)
		return;
	add_partial_full_scan(root, baserel, pi);

	/*
	 * Parameterized paths: every column a lookup needs bound by a join
	 * clause with the same outer relations.
	 */
	if (m->window.kind != 0 && m->window.kind != WINDOW_TUMBLE)
		return;
	candidates = palloc0(sizeof(List *) * Max(m->ngroup, 1));
	for (i = 0; i < m->ngroup; i++)
	{
		if (!lookup_column(m, i))
			continue;
		if (pi->key_rinfo[i] == NULL)
		{
			candidates[i] = join_key_clauses(root, baserel, m, i);
			if (candidates[i] == NIL)
				return;
		}
	}
	for (i = 0; i < m->ngroup; i++)
	{
		if (candidates[i] == NIL)
			continue;
		foreach (lc, candidates[i])
		{
			RestrictInfo *first = lfirst(lc);
			Relids outer = bms_difference(first->clause_relids, bms_make_singleton(baserel->relid));
			List *chosen = NIL;
			bool complete = true;
			ParamPathInfo *ppi;
			int j;

			for (j = 0; j < m->ngroup && complete; j++)
			{
				ListCell *lc2;
				bool found = false;

				if (candidates[j] == NIL)
					continue;
				foreach (lc2, candidates[j])
				{
					RestrictInfo *r = lfirst(lc2);

					if (bms_is_subset(bms_difference(r->clause_relids,
													 bms_make_singleton(baserel->relid)),
									  outer))
					{
						chosen = lappend(chosen, r);
						found = true;
						break;
					}
				}
				complete = found;
			}
			if (!complete || bms_is_empty(outer) ||
				bms_overlap(outer, baserel->relids))
				continue;
			ppi = get_baserel_parampathinfo(root, baserel, outer);
			scan_costs(1, true, &startup, &total);
			add_path(baserel, (Path *)create_foreignscan_path(root, baserel, NULL, 1,
															  startup, total, NIL, outer,
															  NULL, chosen));
			(void)ppi;
		}
		break; /* the first column's candidates enumerate the choices */
	}
}

/*
 * viewscan_GetForeignPlan
 *		The key conditions become fdw_exprs (evaluated by the scan); the
 *		other conditions stay quals of the plan.
 */
static ForeignScan *
viewscan_GetForeignPlan(PlannerInfo *root, RelOptInfo *baserel, Oid foreigntableid,
						ForeignPath *best_path, List *tlist, List *scan_clauses,
						Plan *outer_plan)
{
	ScanPlanInfo *pi = baserel->fdw_private;
	ViewMeta *m = pi->meta;
	List *keyclauses = NIL;
	List *fdw_exprs = NIL;
	List *cols = NIL;
	List *arrays = NIL;
	List *ranges = NIL;
	List *range_ops = NIL;
	List *local = NIL;
	int mode = SCAN_FULL;
	ListCell *lc;
	int i;

	if (best_path->path.param_info != NULL)
	{
		/* The join clauses the path chose, plus the base key clauses. */
		keyclauses = list_copy(best_path->fdw_private);
		for (i = 0; i < m->ngroup; i++)
			if (pi->key_rinfo[i] != NULL)
				keyclauses = lappend(keyclauses, pi->key_rinfo[i]);
		mode = SCAN_KEYED;
	}
	else if (pi->keyed)
	{
		for (i = 0; i < m->ngroup; i++)
			if (pi->key_rinfo[i] != NULL)
				keyclauses = lappend(keyclauses, pi->key_rinfo[i]);
		mode = SCAN_KEYED;
	}

	if (mode == SCAN_KEYED)
	{
		foreach (lc, keyclauses)
		{
			RestrictInfo *rinfo = lfirst_node(RestrictInfo, lc);
			int col;
			Node *value;
			bool is_array;

			if (!match_key_clause(m, baserel->relid, rinfo->clause, &col, &value, &is_array))
				elog(ERROR, "continuous view key clause does not match");
			if (list_member_int(cols, col))
				continue;
			cols = lappend_int(cols, col);
			arrays = lappend_int(arrays, is_array);
			fdw_exprs = lappend(fdw_exprs, value);
		}
	}

	/*
	 * What the lookup does not enforce stays a qual of the plan.  A lookup
	 * of a windowed view reads its windows by their start (read_windowed()),
	 * every group of them: the conditions on its other key columns stay.
	 */
	foreach (lc, scan_clauses)
	{
		RestrictInfo *rinfo = lfirst_node(RestrictInfo, lc);

		if (list_member_ptr(keyclauses, rinfo))
		{
			int col;
			Node *value;
			bool is_array;

			if (m->window.kind == 0 ||
				(match_key_clause(m, baserel->relid, rinfo->clause, &col, &value, &is_array) &&
				 m->roles[col] == WINDOW_ROLE_START))
				continue;
		}
		local = lappend(local, rinfo);

		/* Windowed views: conditions on the window's start prune closed windows. */
		if (m->window.kind != 0 && IsA(rinfo->clause, OpExpr) &&
			list_length(((OpExpr *)rinfo->clause)->args) == 2)
		{
			OpExpr *op = (OpExpr *)rinfo->clause;
			Node *l = linitial(op->args);
			Node *r = lsecond(op->args);
			Oid opno = op->opno;
			int col = group_column(m, baserel->relid, l);
			int strategy;
			Oid lefttype;
			Oid righttype;

			if (col < 0)
			{
				col = group_column(m, baserel->relid, r);
				r = l;
				opno = get_commutator(opno);
			}
			if (col >= 0 && m->roles[col] == WINDOW_ROLE_START && OidIsValid(opno) &&
				exprType(r) == TIMESTAMPTZOID &&
				!bms_is_member(baserel->relid, pull_varnos(root, r)) &&
				!contain_volatile_functions(r) &&
				get_op_btree_interpretation(opno) != NIL)
			{
				OpBtreeInterpretation *obi = linitial(get_op_btree_interpretation(opno));

				strategy = obi->strategy;
				lefttype = obi->oplefttype;
				righttype = obi->oprighttype;
				if (lefttype == TIMESTAMPTZOID && righttype == TIMESTAMPTZOID)
				{
					ranges = lappend(ranges, r);
					range_ops = lappend_int(range_ops, strategy);
				}
			}
		}
	}
	local = extract_actual_clauses(local, false);
	fdw_exprs = list_concat(fdw_exprs, ranges);

	return make_foreignscan(tlist, local, baserel->relid, fdw_exprs,
							lappend(list_make5(makeInteger(mode), cols, arrays, range_ops,
											   makeInteger(list_length(cols))),
									makeInteger(columns_needed(m, baserel, local))),
							NIL, NIL, outer_plan);
}

/*
 * Which columns the plan reads from the scan (its target list and the
 * quals it evaluates): NEED_KEYS for a group column, NEED_AGGS for an
 * aggregate.  count(*) needs neither, and the scan then neither decodes
 * keys nor combines and finalizes states.
 */
static int
columns_needed(ViewMeta *m, RelOptInfo *baserel, List *quals)
{
	Bitmapset *attrs = NULL;
	int need = 0;
	int x = -1;

	pull_varattnos((Node *)baserel->reltarget->exprs, baserel->relid, &attrs);
	pull_varattnos((Node *)quals, baserel->relid, &attrs);
	while ((x = bms_next_member(attrs, x)) >= 0)
	{
		AttrNumber attno = x + FirstLowInvalidHeapAttributeNumber;

		if (attno >= 1 && attno <= m->ngroup)
			need |= NEED_KEYS;
		else if (attno > m->ngroup && attno <= m->ngroup + m->aggs->nagg)
			need |= NEED_AGGS;
		else
			need |= NEED_KEYS | NEED_AGGS; /* a whole row, a system column */
	}
	return need;
}

/* ----------------------------------------------------------------
 * Execution
 * ----------------------------------------------------------------
 */

static void
viewscan_BeginForeignScan(ForeignScanState *node, int eflags)
{
	ForeignScan *plan = (ForeignScan *)node->ss.ps.plan;
	ViewScanState *vss = palloc0(sizeof(ViewScanState));
	List *priv = plan->fdw_private;
	List *cols = lsecond(priv);
	List *arrays = lthird(priv);
	int nkeyexprs = intVal(list_nth(priv, 4));
	int need = intVal(list_nth(priv, 5));
	ListCell *lc;
	int i = 0;

	node->fdw_state = vss;
	vss->meta = view_meta(RelationGetRelid(node->ss.ss_currentRelation));
	vss->mode = intVal(linitial(priv));
	vss->key_arrays = arrays;
	vss->range_ops = lfourth(priv);
	vss->need_keys = (need & NEED_KEYS) != 0;
	vss->need_aggs = (need & NEED_AGGS) != 0;
	foreach (lc, plan->fdw_exprs)
	{
		ExprState *es = ExecInitExpr(lfirst(lc), (PlanState *)node);

		if (i++ < nkeyexprs)
			vss->key_states = lappend(vss->key_states, es);
		else
			vss->range_states = lappend(vss->range_states, es);
	}
	vss->key_cols = cols;
	initStringInfo(&vss->buf);
	initStringInfo(&vss->combined);
	vss->values = palloc0(sizeof(Datum) * (vss->meta->ngroup + vss->meta->aggs->nagg + 1));
	vss->nulls = palloc0(sizeof(bool) * (vss->meta->ngroup + vss->meta->aggs->nagg + 1));
	vss->rowcxt = AllocSetContextCreate(CurrentMemoryContext, "streamproc view row",
										ALLOCSET_DEFAULT_SIZES);
	vss->lookupcxt = AllocSetContextCreate(CurrentMemoryContext, "streamproc view keys",
										   ALLOCSET_SMALL_SIZES);
	vss->scancxt = node->ss.ps.state->es_query_cxt;
	if (eflags & EXEC_FLAG_EXPLAIN_ONLY)
		return;
	start_scan(vss, node->ss.ps.ps_ExprContext);
}

/* Decode a group key (windowed: with its prefix) into values of g1..gn. */
static void
decode_group(ViewMeta *m, const char *key, uint32 keylen, Datum *values, bool *nulls)
{
	if (m->window.kind == 0)
	{
		groupkey_decode(m->codec, key, keylen, values, nulls);
		return;
	}
	else
	{
		Datum *kvalues = palloc0(sizeof(Datum) * Max(m->nkeys, 1));
		bool *knulls = palloc0(sizeof(bool) * Max(m->nkeys, 1));
		TimestampTz start;
		TimestampTz end;
		int i;

		streamproc_window_key_decode(key, keylen, &start, &end);
		groupkey_decode(m->codec, key + WINDOW_KEY_PREFIX, keylen - WINDOW_KEY_PREFIX,
						kvalues, knulls);
		for (i = 0; i < m->nkeys; i++)
		{
			values[m->key_col[i]] = kvalues[i];
			nulls[m->key_col[i]] = knulls[i];
		}
		for (i = 0; i < m->ngroup; i++)
		{
			if (m->roles[i] == WINDOW_ROLE_START)
				values[i] = TimestampTzGetDatum(start), nulls[i] = false;
			else if (m->roles[i] == WINDOW_ROLE_END)
				values[i] = TimestampTzGetDatum(end), nulls[i] = false;
		}
	}
}

/* Fill the scan slot with a group: its key and its (combined) packed state. */
static TupleTableSlot *
store_group(ForeignScanState *node, const char *key, uint32 keylen, const char *state,
			uint32 statelen)
{
	ViewScanState *vss = node->fdw_state;
	ViewMeta *m = vss->meta;
	TupleTableSlot *slot = node->ss.ss_ScanTupleSlot;

	ExecClearTuple(slot);
	if (vss->need_keys)
		decode_group(m, key, keylen, slot->tts_values, slot->tts_isnull);
	else
		memset(slot->tts_isnull, true, sizeof(bool) * m->ngroup);
	if (vss->need_aggs)
		streamproc_packed_final(m->aggs, state, statelen, slot->tts_values + m->ngroup,
								slot->tts_isnull + m->ngroup);
	else
		memset(slot->tts_isnull + m->ngroup, true, sizeof(bool) * m->aggs->nagg);
	vss->emitted++;
	return ExecStoreVirtualTuple(slot);
}

/*
 * Combine a group's slots into vss->combined; false: no state at all.  A
 * scan that reads no aggregate only needs to know that there is one.
 */
static bool
combine_slots(ViewScanState *vss, GroupCopy *g)
{
	PackedAccum acc;
	int i;

	resetStringInfo(&vss->combined);
	if (!vss->need_aggs)
		return g->nstates > 0;
	if (g->nstates == 1)
	{
		appendBinaryStringInfo(&vss->combined, g->states[0].data, g->states[0].len);
		return true;
	}
	if (g->nstates == 2)
	{
		/* The common case of two workers: one pairwise combine, no accumulators. */
		streamproc_combine_packed(vss->meta->aggs, g->states[0].data, g->states[0].len,
								  g->states[1].data, g->states[1].len, &vss->combined);
		return true;
	}
	streamproc_packed_accum_init(&acc, vss->meta->aggs, CurrentMemoryContext);
	for (i = 0; i < g->nstates; i++)
		streamproc_packed_accum_add(&acc, g->states[i].data, g->states[i].len);
	return streamproc_packed_accum_result(&acc, &vss->combined);
}

/* ---- reading the checkpoint ---- */


typedef struct DiskRead
{
	GroupTable *table;
	const char *key; /* a keyed read: only this key */
	uint32 keylen;
} DiskRead;

static void
disk_read_callback(int slot, const char *key, uint32 keylen, const char *state,
				   uint32 statelen, void *arg)
{
	DiskRead *dr = arg;

	if (dr->key != NULL && (keylen != dr->keylen || memcmp(key, dr->key, keylen) != 0))
		return;
	streamproc_group_table_add(dr->table, key, keylen, state, statelen);
}

typedef struct StoreArg
{
	ForeignScanState *node;
} StoreArg;

static void
store_callback(const char *key, uint32 keylen, const char *state, uint32 statelen,
			   void *arg)
{
	ForeignScanState *node = ((StoreArg *)arg)->node;
	ViewScanState *vss = node->fdw_state;
	TupleTableSlot *slot = store_group(node, key, keylen, state, statelen);

	tuplestore_puttupleslot(vss->store, slot);
}

/* Read from the checkpoint (all groups, or one key) into the tuple store. */
static void
read_checkpoint(ForeignScanState *node, const char *key, uint32 keylen)
{
	ViewScanState *vss = node->fdw_state;
	DiskRead dr;
	StoreArg sa;

	dr.table = streamproc_group_table_create(vss->meta->aggs, CurrentMemoryContext);
	dr.key = key;
	dr.keylen = keylen;
	SPI_connect();
	statestore_read(vss->meta->viewid,
					key ? GROUPMAP_PARTITION(groupmap_hash(key, keylen)) : -1,
					disk_read_callback, &dr);
	SPI_finish();
	sa.node = node;
	streamproc_group_table_emit(dr.table, store_callback, &sa);
}

/* ---- keys ---- */

/*
 * Evaluate the key expressions into the list of keys to look up (the
 * cartesian product of the values of each column).
 */
static void
build_lookups(ViewScanState *vss, ExprContext *econtext)
{
	ViewMeta *m = vss->meta;
	List *cols = vss->key_cols;
	int n = list_length(cols);
	Datum **vals;
	int *counts;
	int total = 1;
	int i;
	ListCell *lc;
	MemoryContext old;

	/*
	 * The keys live until the next rescan, in their own context: the
	 * expression results are in per-tuple memory, which the scan resets at
	 * every row.
	 */
	MemoryContextReset(vss->lookupcxt);
	old = MemoryContextSwitchTo(vss->lookupcxt);
	vals = palloc0(sizeof(Datum *) * Max(n, 1));
	counts = palloc0(sizeof(int) * Max(n, 1));
	i = 0;
	foreach (lc, vss->key_states)
	{
		ExprState *es = lfirst(lc);
		bool is_array = list_nth_int(vss->key_arrays, i);
		Oid type = m->group_types[list_nth_int(cols, i)];
		int16 typlen;
		bool typbyval;
		bool isnull;
		Datum d = ExecEvalExpr(es, econtext, &isnull);

		get_typlenbyval(type, &typlen, &typbyval);
		if (isnull)
			counts[i] = 0; /* = NULL finds nothing */
		else if (!is_array)
		{
			vals[i] = palloc(sizeof(Datum));
			vals[i][0] = datumCopy(d, typbyval, typlen);
			counts[i] = 1;
		}
		else
		{
			ArrayType *arr = DatumGetArrayTypeP(d);
			int16 elmlen;
			bool elmbyval;
			char elmalign;
			Datum *elems;
			bool *enulls;
			int ne;
			int k;

			get_typlenbyvalalign(ARR_ELEMTYPE(arr), &elmlen, &elmbyval, &elmalign);
			deconstruct_array(arr, ARR_ELEMTYPE(arr), elmlen, elmbyval, elmalign,
							  &elems, &enulls, &ne);
			vals[i] = palloc(sizeof(Datum) * Max(ne, 1));
			counts[i] = 0;
			for (k = 0; k < ne; k++)
				if (!enulls[k])
					vals[i][counts[i]++] = datumCopy(elems[k], elmbyval, elmlen);
		}
		total *= counts[i];
		if (total > MAX_KEYS)
			total = MAX_KEYS + 1;
		i++;
	}
	if (total > MAX_KEYS)
		ereport(ERROR,
				(errcode(ERRCODE_PROGRAM_LIMIT_EXCEEDED),
				 errmsg("a lookup of continuous view \"%s\" asks for more than %d keys", m->name, MAX_KEYS),
				 errhint("Ask for fewer keys at once.")));

	vss->nlookups = total;
	vss->lookup_values = palloc(sizeof(Datum *) * Max(total, 1));
	vss->lookup_nulls = palloc(sizeof(bool *) * Max(total, 1));
	for (i = 0; i < total; i++)
	{
		int rest = i;
		int c;

		vss->lookup_values[i] = palloc0(sizeof(Datum) * Max(m->ngroup, 1));
		vss->lookup_nulls[i] = palloc0(sizeof(bool) * Max(m->ngroup, 1));
		for (c = 0; c < n; c++)
		{
			int col = list_nth_int(cols, c);

			vss->lookup_values[i][col] = vals[c][rest % counts[c]];
			rest /= counts[c];
		}
	}
	dedup_lookups(vss);
	vss->next_lookup = 0;
	MemoryContextSwitchTo(old);
}

/* A lookup's key bytes and its index (dedup_lookups). */
typedef struct LookupKey
{
	StringInfoData key;
	int i;
} LookupKey;

static int
lookup_key_cmp(const void *a, const void *b)
{
	const LookupKey *x = a;
	const LookupKey *y = b;
	int c = memcmp(x->key.data, y->key.data, Min(x->key.len, y->key.len));

	if (c != 0)
		return c;
	if (x->key.len != y->key.len)
		return x->key.len < y->key.len ? -1 : 1;
	return x->i < y->i ? -1 : (x->i > y->i ? 1 : 0);
}

/*
 * Each group once: k IN (7, 7, 3) and k = ANY('{7,7}') name group 7 twice,
 * and a filter never repeats a row.  Keys equal as group keys (their bytes,
 * as the group map compares them) are one lookup.
 */
static void
dedup_lookups(ViewScanState *vss)
{
	LookupKey *keys;
	int n = 0;
	int i;

	if (vss->nlookups < 2)
		return;
	keys = palloc(sizeof(LookupKey) * vss->nlookups);
	for (i = 0; i < vss->nlookups; i++)
	{
		initStringInfo(&keys[i].key);
		lookup_key(vss, i, &keys[i].key);
		keys[i].i = i;
	}
	qsort(keys, vss->nlookups, sizeof(LookupKey), lookup_key_cmp);
	for (i = 0; i < vss->nlookups; i++)
	{
		if (i > 0 && keys[i].key.len == keys[i - 1].key.len &&
			memcmp(keys[i].key.data, keys[i - 1].key.data, keys[i].key.len) == 0)
			continue;
		keys[n++].i = keys[i].i;
	}
	if (n < vss->nlookups)
	{
		Datum **values = palloc(sizeof(Datum *) * n);
		bool **nulls = palloc(sizeof(bool *) * n);

		for (i = 0; i < n; i++)
		{
			values[i] = vss->lookup_values[keys[i].i];
			nulls[i] = vss->lookup_nulls[keys[i].i];
		}
		vss->lookup_values = values;
		vss->lookup_nulls = nulls;
		vss->nlookups = n;
	}
}

/* The key bytes of lookup i. */
static void
lookup_key(ViewScanState *vss, int i, StringInfo key)
{
	ViewMeta *m = vss->meta;
	Datum *kvalues = palloc(sizeof(Datum) * Max(m->nkeys, 1));
	bool *knulls = palloc0(sizeof(bool) * Max(m->nkeys, 1));
	int c;

	resetStringInfo(key);
	if (m->window.kind != 0)
	{
		TimestampTz start = 0;

		for (c = 0; c < m->ngroup; c++)
			if (m->roles[c] == WINDOW_ROLE_START)
				start = DatumGetTimestampTz(vss->lookup_values[i][c]);
		enlargeStringInfo(key, WINDOW_KEY_PREFIX);
		streamproc_window_key_prefix(key->data, start, start + m->window.size);
		key->len = WINDOW_KEY_PREFIX;
	}
	for (c = 0; c < m->nkeys; c++)
	{
		kvalues[c] = vss->lookup_values[i][m->key_col[c]];
		knulls[c] = vss->lookup_nulls[i][m->key_col[c]];
	}
	groupkey_encode(m->codec, kvalues, knulls, key);
}

/* ---- windowed views ---- */

/* The window start range the scan's conditions allow. */
static void
window_range(ViewScanState *vss, ExprContext *econtext, TimestampTz *lo, TimestampTz *hi)
{
	ListCell *lc;
	ListCell *oc;

	*lo = DT_NOBEGIN;
	*hi = DT_NOEND;
	forboth(lc, vss->range_states, oc, vss->range_ops)
	{
		bool isnull;
		TimestampTz t = DatumGetTimestampTz(ExecEvalExpr(lfirst(lc), econtext, &isnull));

		if (isnull)
			continue;
		switch (lfirst_int(oc))
		{
			case BTLessStrategyNumber:
			case BTLessEqualStrategyNumber:
				*hi = Min(*hi, t);
				break;
			case BTEqualStrategyNumber:
				*lo = Max(*lo, t);
				*hi = Min(*hi, t);
				break;
			case BTGreaterEqualStrategyNumber:
			case BTGreaterStrategyNumber:
				*lo = Max(*lo, t);
				break;
		}
	}
}

typedef struct WindowRead
{
	ViewMeta *m;
	GroupTable *table;
	TimestampTz bounds[STREAMPROC_MAX_SLOTS];
	TimestampTz lo;
	TimestampTz hi;
} WindowRead;

/* An open window (tumble, session, count) or slice (hop) of a slot. */
static void
add_open(WindowRead *wr, const char *key, uint32 keylen, int slot, const char *state,
		 uint32 statelen)
{
	TimestampTz start;
	TimestampTz end;

	streamproc_window_key_decode(key, keylen, &start, &end);
	if (wr->m->window.kind == WINDOW_HOP)
	{
		/*
		 * A slice feeds the windows that start up to size - slide before
		 * it (lo may be -infinity: no subtraction then).
		 */
		if ((wr->lo != DT_NOBEGIN && start < wr->lo - wr->m->window.size) || start > wr->hi)
			return;
		streamproc_group_table_add_slice(wr->table, &wr->m->window, key, keylen, state,
										 statelen, wr->bounds[slot], DT_NOEND);
	}
	else if (wr->m->window.kind == WINDOW_COUNT || end > wr->bounds[slot])
	{
		if (wr->m->window.kind != WINDOW_COUNT && (start < wr->lo || start > wr->hi))
			return;
		streamproc_group_table_add(wr->table, key, keylen, state, statelen);
	}
}

static void
disk_open_callback(int slot, const char *key, uint32 keylen, const char *state,
				   uint32 statelen, void *arg)
{
	WindowRead *wr = arg;

	if (slot >= 0 && slot < STREAMPROC_MAX_SLOTS)
		add_open(wr, key, keylen, slot, state, statelen);
}

/*
 * Read a windowed view into the tuple store: open windows from shared
 * memory (else the checkpoint), then closed windows from window_runs up
 * to each slot's closing bound; see window_worker.c for why the windows
 * lock makes the two agree.
 */
static void
read_windowed(ForeignScanState *node, TimestampTz lo, TimestampTz hi)
{
	ViewScanState *vss = node->fdw_state;
	ViewMeta *m = vss->meta;
	WindowRead wr;
	TimestampTz final_bound = DT_NOEND;
	TimestampTz retained_from = DT_NOBEGIN;
	StoreArg sa;
	InternalRead ir;
	Datum args[3];
	uint64 i;
	int ret;
	int s;

	memset(&wr, 0, sizeof(wr));
	wr.m = m;
	wr.table = streamproc_group_table_create(m->aggs, CurrentMemoryContext);
	wr.lo = lo;
	wr.hi = hi;

	SPI_connect();
	if (m->window.emit != 'f')
	{
		streamproc_state_lock_windows(MyDatabaseId, m->viewid);
		PG_TRY();
		{
			(void)streamproc_state_info(MyDatabaseId, m->viewid, &vss->info);
			for (s = 0; s < STREAMPROC_MAX_SLOTS; s++)
				wr.bounds[s] = streamproc_window_close_bound(&m->window, vss->info.closed[s]);
			if (vss->info.found && vss->info.ready)
			{
				GroupMap *map = streamproc_state_read_map(&vss->info);
				int p;

				for (p = 0; p < GROUPMAP_PARTITIONS; p++)
				{
					int pos = 0;
					int n;

					resetStringInfo(&vss->buf);
					n = groupmap_copy_partition(map, p, &vss->buf);
					while (n-- > 0)
					{
						GroupCopy g;
						int k;

						groupmap_parse(&vss->buf, &pos, &g);
						for (k = 0; k < g.nstates; k++)
							add_open(&wr, g.key, g.keylen, g.states[k].slot, g.states[k].data,
									 g.states[k].len);
					}
				}
				groupmap_detach(map);
			}
		}
		PG_FINALLY();
		{
			streamproc_state_unlock_windows();
		}
		PG_END_TRY();
	}
	else
	{
		/* emit = 'final': only closed windows, up to every writer's bound. */
		(void)streamproc_state_info(MyDatabaseId, m->viewid, &vss->info);
		for (s = 0; s < STREAMPROC_MAX_SLOTS; s++)
			wr.bounds[s] = streamproc_window_close_bound(&m->window, vss->info.closed[s]);
	}
	if (!vss->info.found || !vss->info.ready)
	{
		/* The slots' closing watermarks and open windows, from the checkpoint. */
		for (s = 0; s < STREAMPROC_MAX_SLOTS; s++)
			vss->info.closed[s] = WATERMARK_NONE;
		vss->info.writers = 0;
		args[0] = ObjectIdGetDatum(m->viewid);
		streamproc_internal_read_begin(&ir);
		ret = SPI_execute_with_args("SELECT slot, watermark FROM streamproc.view_watermarks WHERE view = $1",
									1, (Oid[]){OIDOID}, args, NULL, true, 0);
		streamproc_internal_read_end(&ir);
		if (ret != SPI_OK_SELECT)
			elog(ERROR, "could not read streamproc.view_watermarks: %s", SPI_result_code_string(ret));
		for (i = 0; i < SPI_processed; i++)
		{
			bool isnull;
			int slot = DatumGetInt32(SPI_getbinval(SPI_tuptable->vals[i], SPI_tuptable->tupdesc, 1, &isnull));

			if (slot >= 0 && slot < STREAMPROC_MAX_SLOTS)
			{
				vss->info.closed[slot] = DatumGetTimestampTz(SPI_getbinval(SPI_tuptable->vals[i],
																		   SPI_tuptable->tupdesc, 2, &isnull));
				vss->info.writers |= UINT64CONST(1) << slot;
			}
		}
		for (s = 0; s < STREAMPROC_MAX_SLOTS; s++)
			wr.bounds[s] = streamproc_window_close_bound(&m->window, vss->info.closed[s]);
		if (m->window.emit != 'f')
			statestore_read(m->viewid, -1, disk_open_callback, &wr);
	}
	for (s = 0; s < STREAMPROC_MAX_SLOTS; s++)
		if (vss->info.writers & (UINT64CONST(1) << s))
			final_bound = Min(final_bound, wr.bounds[s]);

	/* Closed windows that retention keeps: window_end >= W - retention. */
	if (m->window.retention > 0 && !TIMESTAMP_NOT_FINITE(vss->info.watermark) &&
		vss->info.watermark != WATERMARK_NONE)
		retained_from = vss->info.watermark - m->window.retention;

	/* Closed windows (not read_only: a snapshot taken after the bounds). */
	args[0] = ObjectIdGetDatum(m->viewid);
	args[1] = Int64GetDatum(lo);
	args[2] = Int64GetDatum(hi);
	streamproc_internal_read_begin(&ir);
	ret = SPI_execute_with_args("SELECT slot, closed, data FROM streamproc.window_runs"
								" WHERE view = $1 AND start_hi >= $2 AND start_lo <= $3",
								3, (Oid[]){OIDOID, INT8OID, INT8OID}, args, NULL, false, 0);
	streamproc_internal_read_end(&ir);
	if (ret != SPI_OK_SELECT)
		elog(ERROR, "could not read streamproc.window_runs: %s", SPI_result_code_string(ret));
	for (i = 0; i < SPI_processed; i++)
	{
		HeapTuple tup = SPI_tuptable->vals[i];
		bool isnull;
		int slot = DatumGetInt32(SPI_getbinval(tup, SPI_tuptable->tupdesc, 1, &isnull));
		TimestampTz closed = DatumGetTimestampTz(SPI_getbinval(tup, SPI_tuptable->tupdesc, 2, &isnull));
		bytea *data = DatumGetByteaPP(SPI_getbinval(tup, SPI_tuptable->tupdesc, 3, &isnull));
		size_t pos = 0;
		const char *key;
		uint32 keylen;
		const char *state;
		int64 statelen;
		bool corrupt;

		if (slot < 0 || slot >= STREAMPROC_MAX_SLOTS || closed > vss->info.closed[slot])
			continue; /* closed by a checkpoint whose bound is not published yet */
		while (run_next(VARDATA_ANY(data), VARSIZE_ANY_EXHDR(data), &pos, &key, &keylen,
						&state, &statelen, &corrupt))
		{
			TimestampTz start;
			TimestampTz end;

			streamproc_window_key_decode(key, keylen, &start, &end);
			if (m->window.kind != WINDOW_COUNT && (start < lo || start > hi))
				continue;
			if (m->window.emit == 'f' && m->window.kind != WINDOW_COUNT && end > final_bound)
				continue;
			/* Retention deletes whole runs: a run may hold some windows past it. */
			if (m->window.kind != WINDOW_COUNT && end < retained_from)
				continue;
			if (statelen >= 0)
				streamproc_group_table_add(wr.table, key, keylen, state, (uint32)statelen);
		}
		if (corrupt)
			ereport(ERROR,
					(errcode(ERRCODE_DATA_CORRUPTED),
					 errmsg("corrupt closed windows of continuous view \"%s\"", m->name)));
	}
	SPI_finish();
	sa.node = node;
	streamproc_group_table_emit(wr.table, store_callback, &sa);
}

/* ---- the scan ---- */

static void
start_scan(ViewScanState *vss, ExprContext *econtext)
{
	ViewMeta *m = vss->meta;

	vss->done = false;
	vss->emitted = 0;
	vss->partition = 0;
	vss->remaining = 0;
	vss->pos = 0;
	if (vss->store)
		tuplestore_end(vss->store);
	vss->store = NULL;
	(void)streamproc_state_info(MyDatabaseId, m->viewid, &vss->info);
	vss->memory = vss->info.found && vss->info.ready;
	if (vss->map)
		groupmap_detach(vss->map);
	if (vss->memory)
	{
		MemoryContext old = MemoryContextSwitchTo(vss->scancxt);

		vss->map = streamproc_state_read_map(&vss->info);
		MemoryContextSwitchTo(old);
	}
	else
		vss->map = NULL;
	/*
	 * The keys are evaluated at the first row, not here: they may use the
	 * value of an initplan, which runs only when the query runs.
	 */
	vss->lookups_ready = false;
	vss->nlookups = 0;
}

static int
window_start_cmp(const void *a, const void *b)
{
	TimestampTz x = *(const TimestampTz *)a;
	TimestampTz y = *(const TimestampTz *)b;

	return x < y ? -1 : (x > y ? 1 : 0);
}

/* Sort lookup keys by their bytes (probe_open_windows). */
static int
key_bytes_cmp(const void *a, const void *b)
{
	const StringInfoData *x = a;
	const StringInfoData *y = b;
	int c = memcmp(x->data, y->data, Min(x->len, y->len));

	return c != 0 ? c : (x->len < y->len ? -1 : (x->len > y->len ? 1 : 0));
}

/*
 * The keys of a keyed read of a tumbling window view with emit = 'updates'
 * whose window no slot has closed: every state of such a group is in shared
 * memory, so a hash probe finds it (as for views without windows), instead
 * of reading every group of the view for its window (read_windowed()): a
 * change log reads each changed group of a checkpoint so, thousands per
 * window.  Stores what the probes find; returns in starts the windows of
 * the other keys, which read_windowed() reads, and their number.  Under the
 * windows lock, as read_windowed(): a window a checkpoint closes meanwhile
 * is either still in memory for every slot or read from its runs.
 */
static int
probe_open_windows(ForeignScanState *node, TimestampTz *starts)
{
	ViewScanState *vss = node->fdw_state;
	ViewMeta *m = vss->meta;
	StringInfoData *keys = palloc(sizeof(StringInfoData) * Max(vss->nlookups, 1));
	TimestampTz bounds[STREAMPROC_MAX_SLOTS];
	StringInfoData found;
	int nfound = 0;
	int pos = 0;
	int n = 0;
	int i;
	int s;

	for (i = 0; i < vss->nlookups; i++)
	{
		initStringInfo(&keys[i]);
		lookup_key(vss, i, &keys[i]);
	}
	if (m->window.kind != WINDOW_TUMBLE || m->window.emit == 'f')
	{
		for (i = 0; i < vss->nlookups; i++)
		{
			TimestampTz end;

			streamproc_window_key_decode(keys[i].data, keys[i].len, &starts[n++], &end);
		}
		return n;
	}

	/* Each key once: a lookup of k = ANY('{7,7}') shows the group once. */
	qsort(keys, vss->nlookups, sizeof(StringInfoData), key_bytes_cmp);
	initStringInfo(&found);
	streamproc_state_lock_windows(MyDatabaseId, m->viewid);
	PG_TRY();
	{
		GroupMap *map = NULL;

		(void)streamproc_state_info(MyDatabaseId, m->viewid, &vss->info);
		for (s = 0; s < STREAMPROC_MAX_SLOTS; s++)
			bounds[s] = streamproc_window_close_bound(&m->window, vss->info.closed[s]);
		if (vss->info.found && vss->info.ready)
			map = streamproc_state_read_map(&vss->info);
		for (i = 0; i < vss->nlookups; i++)
		{
			TimestampTz start;
			TimestampTz end;
			bool open = map != NULL;

			if (i > 0 && key_bytes_cmp(&keys[i], &keys[i - 1]) == 0)
				continue;
			streamproc_window_key_decode(keys[i].data, keys[i].len, &start, &end);
			for (s = 0; s < STREAMPROC_MAX_SLOTS && open; s++)
				open = end > bounds[s];
			if (!open)
			{
				starts[n++] = start;
				continue;
			}
			/* Copies only under the lock; combined and stored after it. */
			if (groupmap_lookup(map, groupmap_hash(keys[i].data, keys[i].len),
								keys[i].data, keys[i].len, &vss->buf))
			{
				appendBinaryStringInfo(&found, vss->buf.data, vss->buf.len);
				nfound++;
			}
		}
		if (map != NULL)
			groupmap_detach(map);
	}
	PG_FINALLY();
	{
		streamproc_state_unlock_windows();
	}
	PG_END_TRY();
	while (nfound-- > 0)
	{
		GroupCopy g;

		groupmap_parse(&found, &pos, &g);
		if (combine_slots(vss, &g))
			tuplestore_puttupleslot(vss->store, store_group(node, g.key, g.keylen,
															vss->combined.data,
															vss->combined.len));
	}
	return n;
}

/*
 * Keyed scans without shared memory (the checkpoint) or of a tumbling
 * window: read what the keys need into the tuple store, each bucket or
 * window once; the plan's quals check the other columns.
 */
static void
materialize_keyed(ForeignScanState *node)
{
	ViewScanState *vss = node->fdw_state;
	ViewMeta *m = vss->meta;
	MemoryContext old = MemoryContextSwitchTo(vss->scancxt);
	StringInfoData key;
	int i;

	vss->store = tuplestore_begin_heap(false, false, work_mem);
	initStringInfo(&key);
	if (m->window.kind != 0)
	{
		TimestampTz *starts = palloc(sizeof(TimestampTz) * Max(vss->nlookups, 1));
		int n;

		n = probe_open_windows(node, starts);
		qsort(starts, n, sizeof(TimestampTz), window_start_cmp);
		for (i = 0; i < n; i++)
			if (i == 0 || starts[i] != starts[i - 1])
				read_windowed(node, starts[i], starts[i]);
	}
	else
	{
		for (i = 0; i < vss->nlookups; i++)
		{
			lookup_key(vss, i, &key);
			read_checkpoint(node, key.data, key.len);
		}
	}
	vss->next_lookup = vss->nlookups;
	MemoryContextSwitchTo(old);
}

/* Keyed scans of shared memory: the next key that finds a group. */
static TupleTableSlot *
next_keyed(ForeignScanState *node)
{
	ViewScanState *vss = node->fdw_state;
	StringInfoData key;

	initStringInfo(&key);
	while (vss->next_lookup < vss->nlookups)
	{
		int i = vss->next_lookup++;
		GroupCopy g;
		int pos = 0;

		lookup_key(vss, i, &key);
		if (!groupmap_lookup(vss->map, groupmap_hash(key.data, key.len), key.data, key.len,
							 &vss->buf))
			continue;
		groupmap_parse(&vss->buf, &pos, &g);
		if (!combine_slots(vss, &g))
			continue;
		return store_group(node, g.key, g.keylen, vss->combined.data, vss->combined.len);
	}
	return NULL;
}

/* Full scans of shared memory: the next group, a partition at a time. */
static TupleTableSlot *
next_full(ForeignScanState *node)
{
	ViewScanState *vss = node->fdw_state;

	for (;;)
	{
		GroupCopy g;

		if (vss->remaining == 0)
		{
			if (vss->parallel)
				vss->partition = (int)pg_atomic_fetch_add_u32(&vss->parallel->next_partition, 1);
			if (vss->partition >= GROUPMAP_PARTITIONS)
				return NULL;
			if (streamproc_state_load_generation(MyDatabaseId, vss->meta->viewid) !=
				vss->info.load_generation)
				ereport(ERROR,
						(errcode(ERRCODE_T_R_SERIALIZATION_FAILURE),
						 errmsg("continuous view \"%s\" was reloaded while it was read", vss->meta->name),
						 errdetail("An ingest worker reloaded its state from the checkpoint (it restarted)."),
						 errhint("Run the query again.")));
			resetStringInfo(&vss->buf);
			vss->remaining = groupmap_copy_partition(vss->map, vss->partition, &vss->buf);
			if (!vss->parallel)
				vss->partition++;
			vss->pos = 0;
			continue;
		}
		vss->remaining--;
		MemoryContextReset(vss->rowcxt);
		groupmap_parse(&vss->buf, &vss->pos, &g);
		if (!combine_slots(vss, &g))
			continue;
		return store_group(node, g.key, g.keylen, vss->combined.data, vss->combined.len);
	}
}

static TupleTableSlot *
viewscan_IterateForeignScan(ForeignScanState *node)
{
	ViewScanState *vss = node->fdw_state;
	TupleTableSlot *slot = NULL;
	MemoryContext old;

	if (vss->mode == SCAN_KEYED && !vss->lookups_ready)
	{
		build_lookups(vss, node->ss.ps.ps_ExprContext);
		vss->lookups_ready = true;
	}
	if (vss->store == NULL && !vss->done)
	{
		if (vss->mode == SCAN_KEYED && (!vss->memory || vss->meta->window.kind != 0))
			materialize_keyed(node);
		else if (vss->mode == SCAN_KEYED)
		{
			MemoryContextReset(vss->rowcxt);
			old = MemoryContextSwitchTo(vss->rowcxt);
			slot = next_keyed(node);
			MemoryContextSwitchTo(old);
			if (slot != NULL)
				return slot;
			vss->done = true;
		}
		else if (vss->meta->window.kind != 0 || !vss->memory)
		{
			old = MemoryContextSwitchTo(vss->scancxt);
			vss->store = tuplestore_begin_heap(false, false, work_mem);
			if (vss->meta->window.kind != 0)
			{
				TimestampTz lo;
				TimestampTz hi;

				window_range(vss, node->ss.ps.ps_ExprContext, &lo, &hi);
				read_windowed(node, lo, hi);
			}
			else if (vss->parallel == NULL ||
					 pg_atomic_fetch_add_u32(&vss->parallel->next_partition, 1) == 0)
				read_checkpoint(node, NULL, 0);
			MemoryContextSwitchTo(old);
		}
		else
		{
			old = MemoryContextSwitchTo(vss->rowcxt);
			slot = next_full(node);
			MemoryContextSwitchTo(old);
			if (slot != NULL)
				return slot;
			vss->done = true;
		}
	}
	if (vss->store != NULL)
	{
		bool got;

		if (vss->store_slot == NULL)
		{
			/* Not in the per-tuple context that ForeignNext calls us in. */
			old = MemoryContextSwitchTo(vss->scancxt);
			vss->store_slot = MakeSingleTupleTableSlot(RelationGetDescr(node->ss.ss_currentRelation),
													   &TTSOpsMinimalTuple);
			MemoryContextSwitchTo(old);
		}

		/*
		 * In the per-query context: a tuple read back from a spilled store
		 * is palloc'd in the current one, and the slot frees it when the
		 * next one comes, after ExecScan has reset the per-tuple context.
		 */
		old = MemoryContextSwitchTo(vss->scancxt);
		got = tuplestore_gettupleslot(vss->store, true, false, vss->store_slot);
		MemoryContextSwitchTo(old);
		if (got)
			return ExecCopySlot(node->ss.ss_ScanTupleSlot, vss->store_slot);
		tuplestore_end(vss->store);
		vss->store = NULL;
		vss->done = true;
	}

	/* Without GROUP BY an aggregate query returns one row, even over nothing. */
	if (vss->meta->ngroup == 0 && vss->emitted == 0)
		return store_group(node, "", 0, NULL, 0);
	return ExecClearTuple(node->ss.ss_ScanTupleSlot);
}

static void
viewscan_ReScanForeignScan(ForeignScanState *node)
{
	ViewScanState *vss = node->fdw_state;

	start_scan(vss, node->ss.ps.ps_ExprContext);
}

static void
viewscan_EndForeignScan(ForeignScanState *node)
{
	ViewScanState *vss = node->fdw_state;

	if (vss == NULL)
		return;
	if (vss->store)
		tuplestore_end(vss->store);
	if (vss->store_slot)
		ExecDropSingleTupleTableSlot(vss->store_slot);
	if (vss->map)
		groupmap_detach(vss->map);
}

/* ---- parallel full scans ---- */

static bool
viewscan_IsForeignScanParallelSafe(PlannerInfo *root, RelOptInfo *rel, RangeTblEntry *rte)
{
	return view_meta(rte->relid)->parallel_ok;
}

static Size
viewscan_EstimateDSMForeignScan(ForeignScanState *node, ParallelContext *pcxt)
{
	return sizeof(ParallelScanShared);
}

/* The leader: its choice of memory or checkpoint is everyone's. */
static void
viewscan_InitializeDSMForeignScan(ForeignScanState *node, ParallelContext *pcxt,
								  void *coordinate)
{
	ViewScanState *vss = node->fdw_state;
	ParallelScanShared *shared = coordinate;

	pg_atomic_init_u32(&shared->next_partition, 0);
	shared->memory = vss->memory;
	shared->load_generation = vss->info.load_generation;
	vss->parallel = shared;
}

/* A rescan: the leader decided again (start_scan()); the same as at first. */
static void
viewscan_ReInitializeDSMForeignScan(ForeignScanState *node, ParallelContext *pcxt,
									void *coordinate)
{
	viewscan_InitializeDSMForeignScan(node, pcxt, coordinate);
}

/*
 * A worker: read what the leader reads.  Shared memory the leader found
 * complete is read from its map; a reload since then fails the scan (the
 * load generation, as for a serial scan).
 */
static void
viewscan_InitializeWorkerForeignScan(ForeignScanState *node, shm_toc *toc, void *coordinate)
{
	ViewScanState *vss = node->fdw_state;
	ParallelScanShared *shared = coordinate;

	vss->parallel = shared;
	if (shared->memory && (!vss->memory || vss->info.load_generation != shared->load_generation))
		ereport(ERROR,
				(errcode(ERRCODE_T_R_SERIALIZATION_FAILURE),
				 errmsg("continuous view \"%s\" was reloaded while it was read", vss->meta->name),
				 errdetail("An ingest worker reloaded its state from the checkpoint (it restarted)."),
				 errhint("Run the query again.")));
	if (!shared->memory && vss->memory)
	{
		groupmap_detach(vss->map);
		vss->map = NULL;
		vss->memory = false;
	}
}

static void
viewscan_ExplainForeignScan(ForeignScanState *node, ExplainState *es)
{
	ViewScanState *vss = node->fdw_state;
	ForeignScan *plan = (ForeignScan *)node->ss.ps.plan;
	ViewMeta *m = vss->meta;

	ExplainPropertyText("Continuous View", m->name, es);
	if (vss->mode == SCAN_KEYED)
	{
		StringInfoData cols;
		ListCell *lc;

		initStringInfo(&cols);
		foreach (lc, (List *)lsecond(plan->fdw_private))
			appendStringInfo(&cols, "%sg%d", cols.len > 0 ? ", " : "", lfirst_int(lc) + 1);
		ExplainPropertyText("Group Lookup", cols.data, es);
	}
	else if (m->window.kind != 0)
		ExplainPropertyText("Window Scan",
							list_length(vss->range_states) > 0 ? "by window start" : "all windows",
							es);
	else
		ExplainPropertyText("Group Scan", "all groups", es);
}
