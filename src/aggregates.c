/*-------------------------------------------------------------------------
 *
 * aggregates.c
 *	  Partial aggregate states: the machinery that lets continuous views
 *	  keep any combinable aggregate, built in or from an extension, without
 *	  per-aggregate code.
 *
 * A continuous view keeps, per group, the *partial state* of each of its
 * aggregates.  Ingest workers compute partial states of a micro-batch with
 * the executor (nodeAgg in AGGSPLIT_INITIAL_SERIAL mode), merge them into
 * the stored states with the aggregate's combine function, and readers
 * finalize with its final function.  This file provides the three pieces:
 *
 *	1. streamproc.partial(agg(...)): a planner hook turns the wrapped
 *	   aggregate calls of a query into partial ones, so that nodeAgg does
 *	   the per-group transition work, and partial() returns the state.
 *	2. Combining and finalizing states, from C (the engine) and from SQL
 *	   (streamproc.combine() and streamproc.finalize(), which also let
 *	   users merge states computed on several servers).
 *	3. The check that says whether an aggregate can be maintained that way,
 *	   with the user-facing errors for those that cannot.
 *
 * State format
 * ------------
 * A partial state is a bytea holding exactly what PostgreSQL itself ships
 * between the two halves of a parallel aggregation: for an aggregate whose
 * transition type is internal, the output of its serialization function;
 * otherwise the binary send output of its (resolved) transition type.
 * Both are meant to be read back by another backend, and the send format
 * is the portable wire format, so states can travel between servers of
 * the same major version (Citus, postgres_fdw).  There is no header: the
 * reader must know the aggregate, its argument types and collation.
 *
 * A NULL state means "no input yet".  It is exactly what nodeAgg produces
 * for a group whose transition value is still NULL (sum over only NULLs:
 * the strict transition function never ran), and it is read back as
 * nodeAgg reads a NULL partial state: a strict combine function skips it,
 * a non-strict one is called with it.  Combining starts, as in nodeAgg,
 * from the aggregate's initial condition, so finalizing a NULL state gives
 * the aggregate's result over no rows (count: 0, sum: NULL).
 *
 * Calling support functions outside nodeAgg
 * -----------------------------------------
 * Combine, serialization, deserialization and final functions may insist
 * on an aggregate call context: AggCheckCallContext() fails outside one
 * (numeric_avg_combine, int8_avg_deserialize, tdigest_combine,
 * hll_deserialize...), and AggCheckCallContext's second result is the
 * memory context in which they must allocate the transition value.
 *
 * TimescaleDB's finalize_agg and Citus' coord_combine_agg solve this by
 * being aggregates themselves and passing their own AggState down.  That
 * works for SQL but not for the engine, which merges states in a worker
 * loop outside any aggregate.  We therefore build, per looked-up
 * aggregate, a minimal AggState of our own and pass it as fcinfo->context,
 * with exactly what the fmgr-level aggregate API reads (nodeAgg.c:
 * AggCheckCallContext, AggGetAggref, AggGetTempMemoryContext,
 * AggStateIsShared, AggRegisterCallback):
 *
 *	- curaggcontext: an ExprContext whose per-tuple memory holds the
 *	  transition value being built (for the SQL aggregate, the outer
 *	  aggregate's own aggcontext, so the value lives as long as its group
 *	  and callbacks run when nodeAgg resets it);
 *	- tmpcontext: an ExprContext whose per-tuple memory is scratch space,
 *	  reset after every call (deserialized inputs live there, as in nodeAgg);
 *	- curpertrans: a per-trans struct whose aggref is a synthesized Aggref
 *	  with the real argument types (AggGetAggref), not shared.
 *
 * Using one mechanism for SQL and C means the regression tests exercise
 * the code path the engine uses.  The support functions see the same
 * calling conventions as in nodeAgg's FINAL_DESERIAL mode: the
 * transition-value bookkeeping below (initial condition copied into the
 * aggregate context, strict combine functions adopting the first non-NULL
 * input, by-reference results copied into the aggregate context and the
 * old value freed) mirrors ExecAggInitGroup and ExecAggTransReparent.
 * Ordered-set and hypothetical-set aggregates, which read more of the
 * AggState, are rejected before they get here.
 *
 * Memory contexts
 * ---------------
 * A StreamprocAggInfo owns a context (child of the caller's current
 * context at lookup) holding the catalog data, FmgrInfos, the AggState
 * and two standalone ExprContexts: "scratch" (reset after each support
 * function call) and "transient" (the transition value of one
 * streamproc_agg_combine or streamproc_agg_final call, reset when it
 * returns, and again at the start of the next call in case an error
 * interrupted the previous one).  Results are copied into the context the
 * caller names.  Nothing is kept between calls, so the functions may be
 * called from any transaction; an error leaves nothing to clean up.
 *
 * Cost: a combine deserializes both inputs and serializes the result;
 * finalizing deserializes once.  For internal states that is a palloc'd
 * copy of the state per call (numeric states: a few hundred bytes; hll:
 * about 1.3 kB; tdigest: up to 10 * compression centroids of 16 bytes).
 * Callers that merge many states should use an accumulator
 * (streamproc_agg_accum_*), which keeps the deserialized value and
 * serializes once.
 *
 * Trust: deserialization functions are written for states produced by the
 * server itself.  PostgreSQL's reject truncated input, but numeric states
 * are not fully validated, and tdigest's deserializer does not check
 * lengths at all; a crafted state can crash the backend.  The SQL
 * functions that read states are therefore not granted to PUBLIC, and the
 * engine must only read states it wrote (its checkpoint tables must not be
 * writable by untrusted roles).
 *
 * The planner hook
 * ----------------
 * Before planning, every query level is checked: partial() must wrap an
 * aggregate call of its own level that can be maintained incrementally,
 * and when a level uses it, every aggregate of that level must be wrapped
 * (one Agg node runs all of a level's aggregates in one split mode).
 * After standard planning, every Agg node whose target list or qual holds
 * a partial() wrapper is switched to skip the final function and
 * serialize: AGGSPLIT_SIMPLE becomes AGGSPLIT_INITIAL_SERIAL (with
 * mark_partial_aggref on its Aggrefs), and the Finalize node of a
 * parallel or partitionwise plan becomes a combine-and-serialize node.
 * Doing it on the finished plan keeps the planner's choices (hash or
 * sort, parallelism) and setrefs' Aggref matching intact.  One planner
 * shortcut replaces aggregates instead of running them: min/max through
 * an index (MinMaxAggPath); a create_upper_paths_hook removes that path
 * for levels that use partial().  partial() itself checks at run time
 * that its argument is a partial Aggref, so a plan the hook did not see
 * can never return a final value as a state.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/htup_details.h"
#include "catalog/namespace.h"
#include "catalog/pg_aggregate.h"
#include "catalog/pg_namespace.h"
#include "catalog/pg_proc.h"
#include "catalog/pg_type.h"
#include "port/pg_bswap.h"
#include "executor/executor.h"
#include "executor/nodeAgg.h"
#include "fmgr.h"
#include "lib/stringinfo.h"
#include "miscadmin.h"
#include "nodes/makefuncs.h"
#include "nodes/nodeFuncs.h"
#include "nodes/pathnodes.h"
#include "nodes/plannodes.h"
#include "optimizer/optimizer.h"
#include "optimizer/pathnode.h"
#include "optimizer/planner.h"
#include "optimizer/prep.h"
#include "parser/parse_agg.h"
#include "parser/parse_coerce.h"
#include "utils/acl.h"
#include "utils/builtins.h"
#include "utils/datum.h"
#include "utils/expandeddatum.h"
#include "utils/inval.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"
#include "utils/regproc.h"
#include "utils/syscache.h"

#include "aggregates.h"
#include "streamproc.h"

/* Where an aggregate is being used, for the user-facing errors. */
#define WHERE_VIEW     "a continuous view"
#define WHERE_PARTIAL  "streamproc.partial()"
#define WHERE_COMBINE  "streamproc.combine()"
#define WHERE_FINALIZE "streamproc.finalize()"

/*
 * A transition value being built from partial states (the opaque type of
 * aggregates.h).  aggcontext's per-tuple memory holds the value.
 */
struct StreamprocAggAccum
{
	StreamprocAggInfo *info;
	ExprContext *aggcontext;
	bool own_aggcontext; /* created by accum_create, freed by us */
	Datum value;
	bool isnull;
	bool noTransValue; /* strict combinefn: adopt first input */
	bool finalized;    /* the final function may have consumed it */
};

/*
 * Transition types whose binary send form is a fixed-width big-endian
 * image of the value (StreamprocAggInfo.fastcodec): their states are read
 * and written here directly instead of through receive and send calls,
 * which cost more than the combine function itself for count() and sum().
 */
#define AGG_FAST_NONE 0
#define AGG_FAST_I2   '2'
#define AGG_FAST_I4   '4'
#define AGG_FAST_I8   '8'
#define AGG_FAST_F4   'f'
#define AGG_FAST_F8   'd'
#define AGG_FAST_BOOL 'b'

/* Per-call-site cache of the SQL functions (fn_extra): looked-up infos. */
typedef struct SqlAggCacheEntry
{
	Oid aggfnoid;
	Oid collid; /* as requested, before defaulting */
	StreamprocAggInfo *info;
} SqlAggCacheEntry;

/* fn_extra of streamproc.partial(): the send function of its input. */
typedef struct PartialSendCache
{
	Oid type;
	FmgrInfo sendfn;
} PartialSendCache;

/* State of the walk over one query level (check_partial_query). */
typedef struct PartialLevelContext
{
	Oid fnoid;        /* OID of streamproc.partial() */
	int sublevels_up; /* depth below the level being checked */
	List *wrapped;    /* Aggrefs of the level inside partial() */
	List *aggrefs;    /* all Aggrefs of the level */
	List *subqueries; /* Queries directly below the level */
} PartialLevelContext;

static planner_hook_type prev_planner_hook = NULL;
static create_upper_paths_hook_type prev_create_upper_paths_hook = NULL;

/* OID of streamproc.partial(any) in this database; reset by invalidation. */
static Oid partial_fn_oid = InvalidOid;
static bool partial_fn_oid_valid = false;

PG_FUNCTION_INFO_V1(streamproc_partial);
PG_FUNCTION_INFO_V1(streamproc_combine_sfunc);
PG_FUNCTION_INFO_V1(streamproc_combine_final);
PG_FUNCTION_INFO_V1(streamproc_finalize);
PG_FUNCTION_INFO_V1(streamproc_combine_pair);

static PlannedStmt *streamproc_planner(Query *parse, const char *query_string,
									   int cursorOptions,
									   ParamListInfo boundParams);
static void streamproc_upper_paths(PlannerInfo *root, UpperRelationKind stage,
								   RelOptInfo *input_rel,
								   RelOptInfo *output_rel, void *extra);
static void invalidate_partial_fn_oid(Datum arg, int cacheid,
									  uint32 hashvalue);
static Oid get_partial_fn_oid(void);
static bool check_partial_query(Query *query, Oid fnoid);
static bool partial_level_walker(Node *node, PartialLevelContext *cxt);
static void check_partial_arg(Node *arg, Oid fnoid);
static bool contains_partial_wrapper(Node *node, Oid fnoid);
static bool contains_partial_wrapper_walker(Node *node, Oid *fnoid);
static void fix_partial_plan(Plan *plan, Oid fnoid);
static void fix_partial_agg(Agg *agg, Oid fnoid);
static bool mark_partial_walker(Node *node, AggSplit *split);

static StreamprocAggInfo *agg_lookup(Oid aggfnoid, Oid inputcollid, int nargs,
									 Oid *argtypes, const char *where);
static void check_aggref(Aggref *aggref, const char *where);
static void check_agg_support(Oid aggfnoid, Form_pg_aggregate aggform,
							  Oid transtype, const char *signature,
							  const char *where);
static void check_agg_permissions(HeapTuple proctup, Form_pg_aggregate aggform);
static char *agg_name(Oid aggfnoid);
static char *aggref_signature(Aggref *aggref);
static char *hll_hash_function(Oid type);
static StreamprocAggInfo *sql_agg_info(FunctionCallInfo fcinfo, Oid aggfnoid,
									   Oid collid, const char *where);

static void accum_init(StreamprocAggAccum *acc, StreamprocAggInfo *info,
					   ExprContext *aggcontext);
static void accum_add(StreamprocAggAccum *acc, bytea *state);
static bytea *accum_serialize(StreamprocAggAccum *acc,
							  MemoryContext result_cxt);
static Datum accum_final(StreamprocAggAccum *acc, bool *isnull);
static char fast_codec(Oid transtype, Oid sendfn);
static Datum fast_decode(char codec, const char *data, int len, bool *ok);
static int fast_size(char codec);
static void fast_encode(char codec, Datum value, StringInfo out);
static void accum_add_slice(StreamprocAggAccum *acc, const char *data, int len);
static void accum_add_datum(StreamprocAggAccum *acc, Datum input, bool inputnull);
static bool accum_serialize_into(StreamprocAggAccum *acc, StringInfo out);
static Datum slice_to_datum(StreamprocAggInfo *info, const char *data, int len,
							bool *isnull);
static void state_error_callback(void *arg);
static void begin_call(StreamprocAggInfo *info, ExprContext *aggcontext);
static void end_call(StreamprocAggInfo *info);

/*
 * streamproc_aggregates_init
 *		Install the planner hooks behind streamproc.partial(); called from
 *		_PG_init while shared_preload_libraries are being loaded.
 */
void
streamproc_aggregates_init(void)
{
	prev_planner_hook = planner_hook;
	planner_hook = streamproc_planner;
	prev_create_upper_paths_hook = create_upper_paths_hook;
	create_upper_paths_hook = streamproc_upper_paths;

	/* Forget partial()'s OID whenever pg_proc changes (CREATE EXTENSION). */
	CacheRegisterSyscacheCallback(PROCOID, invalidate_partial_fn_oid,
								  (Datum)0);
}

/* ----------------------------------------------------------------
 *		Planner hooks
 * ----------------------------------------------------------------
 */

/*
 * streamproc_planner
 *		Check the uses of streamproc.partial() in the query, plan it, then
 *		switch the Agg nodes that evaluate partial() to partial mode.
 */
static PlannedStmt *
streamproc_planner(Query *parse, const char *query_string, int cursorOptions,
				   ParamListInfo boundParams)
{
	PlannedStmt *result;
	Oid fnoid = get_partial_fn_oid();
	bool uses_partial = false;
	ListCell *lc;

	if (OidIsValid(fnoid))
		uses_partial = check_partial_query(parse, fnoid);

	if (prev_planner_hook)
		result = prev_planner_hook(parse, query_string, cursorOptions,
								   boundParams);
	else
		result = standard_planner(parse, query_string, cursorOptions,
								  boundParams);

	if (uses_partial)
	{
		fix_partial_plan(result->planTree, fnoid);
		foreach (lc, result->subplans)
			fix_partial_plan((Plan *)lfirst(lc), fnoid);
	}

	return result;
}

/*
 * streamproc_upper_paths
 *		For a query level that uses partial(), drop the MinMaxAggPath that
 *		would replace min()/max() by index scans: partial() needs the Agg
 *		node to produce transition states.
 *
 * add_path may already have discarded the plain aggregation path in favour
 * of the cheaper MinMaxAggPath; then we add it back, as
 * add_paths_to_grouping_rel builds it (minmax paths only exist without
 * GROUP BY, so that is an AGG_PLAIN path over the cheapest input).
 */
static void
streamproc_upper_paths(PlannerInfo *root, UpperRelationKind stage,
					   RelOptInfo *input_rel, RelOptInfo *output_rel,
					   void *extra)
{
	GroupPathExtraData *gextra = (GroupPathExtraData *)extra;
	List *kept = NIL;
	bool has_minmax = false;
	ListCell *lc;
	Oid fnoid;

	if (prev_create_upper_paths_hook)
		prev_create_upper_paths_hook(root, stage, input_rel, output_rel,
									 extra);

	if (stage != UPPERREL_GROUP_AGG)
		return;

	foreach (lc, output_rel->pathlist)
	{
		if (IsA(lfirst(lc), MinMaxAggPath))
			has_minmax = true;
		else
			kept = lappend(kept, lfirst(lc));
	}
	if (!has_minmax)
		return;

	fnoid = get_partial_fn_oid();
	if (!OidIsValid(fnoid) ||
		(!contains_partial_wrapper((Node *)root->parse->targetList, fnoid) &&
		 !contains_partial_wrapper(root->parse->havingQual, fnoid)))
		return;

	output_rel->pathlist = kept;
	if (kept == NIL)
	{
		AggClauseCosts costs;

		get_agg_clause_costs(root, AGGSPLIT_SIMPLE, &costs);
		add_path(output_rel, (Path *)
								 create_agg_path(root, output_rel,
												 input_rel->cheapest_total_path,
												 output_rel->reltarget,
												 AGG_PLAIN, AGGSPLIT_SIMPLE, NIL,
												 gextra ? (List *)gextra->havingQual : NIL,
												 &costs, 1));
	}
}

static void
invalidate_partial_fn_oid(Datum arg, int cacheid, uint32 hashvalue)
{
	partial_fn_oid_valid = false;
}

/*
 * get_partial_fn_oid
 *		OID of streamproc.partial(any), or InvalidOid when the extension is
 *		not installed in this database.
 *
 * Looked up through the syscaches only (no permission checks: planning
 * must not fail for users without USAGE on the schema) and cached until
 * pg_proc changes.
 */
static Oid
get_partial_fn_oid(void)
{
	if (!partial_fn_oid_valid)
	{
		Oid nspid = get_namespace_oid("streamproc", true);
		Oid argtypes[1] = {ANYOID};

		partial_fn_oid = InvalidOid;
		if (OidIsValid(nspid))
			partial_fn_oid =
				GetSysCacheOid3(PROCNAMEARGSNSP, Anum_pg_proc_oid,
								CStringGetDatum("partial"),
								PointerGetDatum(buildoidvector(argtypes, 1)),
								ObjectIdGetDatum(nspid));
		partial_fn_oid_valid = true;
	}
	return partial_fn_oid;
}

/*
 * check_partial_query
 *		Check the uses of partial() in a query and all of its subqueries;
 *		true when there is at least one.
 *
 * Each query level is walked with its subqueries, so that aggregates of
 * the level that appear in a sublink (agglevelsup > 0 there) are seen.
 */
static bool
check_partial_query(Query *query, Oid fnoid)
{
	PartialLevelContext cxt;
	bool found;
	ListCell *lc;

	memset(&cxt, 0, sizeof(cxt));
	cxt.fnoid = fnoid;
	query_tree_walker(query, partial_level_walker, (void *)&cxt, 0);

	found = (cxt.wrapped != NIL);
	if (found)
	{
		foreach (lc, cxt.aggrefs)
		{
			Aggref *aggref = (Aggref *)lfirst(lc);

			if (!list_member_ptr(cxt.wrapped, aggref))
				ereport(ERROR,
						(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
						 errmsg("cannot mix streamproc.partial() and other aggregate calls in one query level"),
						 errdetail("Aggregate %s is not wrapped in streamproc.partial().",
								   aggref_signature(aggref)),
						 errhint("Wrap every aggregate call of the query level in streamproc.partial(), or compute the others in a separate subquery.")));
		}

		/*
		 * Window functions and set-returning functions make the planner
		 * evaluate the select list above the Agg node, where partial()
		 * would see a finished aggregate.
		 */
		if (query->hasWindowFuncs)
			ereport(ERROR,
					(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
					 errmsg("streamproc.partial() cannot be used in a query level with window functions"),
					 errhint("Compute the partial states in a subquery and apply the window functions outside it.")));
		if (query->hasTargetSRFs)
			ereport(ERROR,
					(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
					 errmsg("streamproc.partial() cannot be used in a query level with set-returning functions in its select list"),
					 errhint("Compute the partial states in a subquery and call the set-returning functions outside it.")));
	}

	foreach (lc, cxt.subqueries)
		found |= check_partial_query((Query *)lfirst(lc), fnoid);

	return found;
}

static bool
partial_level_walker(Node *node, PartialLevelContext *cxt)
{
	if (node == NULL)
		return false;

	if (IsA(node, Query))
	{
		bool result;

		if (cxt->sublevels_up == 0)
			cxt->subqueries = lappend(cxt->subqueries, node);
		cxt->sublevels_up++;
		result = query_tree_walker((Query *)node, partial_level_walker,
								   (void *)cxt, 0);
		cxt->sublevels_up--;
		return result;
	}

	if (IsA(node, FuncExpr) && ((FuncExpr *)node)->funcid == cxt->fnoid &&
		cxt->sublevels_up == 0)
	{
		Node *arg = (Node *)linitial(((FuncExpr *)node)->args);

		check_partial_arg(arg, cxt->fnoid);
		cxt->wrapped = lappend(cxt->wrapped, arg);
	}
	else if (IsA(node, Aggref) &&
			 ((Aggref *)node)->agglevelsup == cxt->sublevels_up)
		cxt->aggrefs = lappend(cxt->aggrefs, node);

	return expression_tree_walker(node, partial_level_walker, (void *)cxt);
}

/*
 * check_partial_arg
 *		The argument of partial() must be an aggregate call of the same
 *		query level that can be maintained incrementally.
 */
static void
check_partial_arg(Node *arg, Oid fnoid)
{
	Aggref *aggref;

	if (IsA(arg, FuncExpr) && ((FuncExpr *)arg)->funcid == fnoid)
		ereport(ERROR,
				(errcode(ERRCODE_WRONG_OBJECT_TYPE),
				 errmsg("streamproc.partial() calls cannot be nested")));
	if (!IsA(arg, Aggref))
		ereport(ERROR,
				(errcode(ERRCODE_WRONG_OBJECT_TYPE),
				 errmsg("argument of streamproc.partial() must be an aggregate call"),
				 errhint("Wrap the aggregate call itself, as in streamproc.partial(sum(x)), and apply other expressions to the finalized value.")));

	aggref = (Aggref *)arg;
	if (aggref->agglevelsup != 0)
		ereport(ERROR,
				(errcode(ERRCODE_WRONG_OBJECT_TYPE),
				 errmsg("streamproc.partial() must wrap an aggregate of its own query level"),
				 errdetail("Aggregate %s belongs to an outer query.",
						   aggref_signature(aggref))));

	check_aggref(aggref, WHERE_PARTIAL);
}

static bool
contains_partial_wrapper(Node *node, Oid fnoid)
{
	return contains_partial_wrapper_walker(node, &fnoid);
}

static bool
contains_partial_wrapper_walker(Node *node, Oid *fnoid)
{
	if (node == NULL)
		return false;
	if (IsA(node, FuncExpr) && ((FuncExpr *)node)->funcid == *fnoid &&
		IsA(linitial(((FuncExpr *)node)->args), Aggref))
		return true;
	return expression_tree_walker(node, contains_partial_wrapper_walker,
								  (void *)fnoid);
}

/*
 * fix_partial_plan
 *		Switch every Agg node of a finished plan tree that evaluates
 *		partial() to partial mode.
 */
static void
fix_partial_plan(Plan *plan, Oid fnoid)
{
	ListCell *lc;

	if (plan == NULL)
		return;
	check_stack_depth();

	if (IsA(plan, Agg))
		fix_partial_agg((Agg *)plan, fnoid);

	fix_partial_plan(plan->lefttree, fnoid);
	fix_partial_plan(plan->righttree, fnoid);

	switch (nodeTag(plan))
	{
		case T_Append:
			foreach (lc, ((Append *)plan)->appendplans)
				fix_partial_plan((Plan *)lfirst(lc), fnoid);
			break;
		case T_MergeAppend:
			foreach (lc, ((MergeAppend *)plan)->mergeplans)
				fix_partial_plan((Plan *)lfirst(lc), fnoid);
			break;
		case T_BitmapAnd:
			foreach (lc, ((BitmapAnd *)plan)->bitmapplans)
				fix_partial_plan((Plan *)lfirst(lc), fnoid);
			break;
		case T_BitmapOr:
			foreach (lc, ((BitmapOr *)plan)->bitmapplans)
				fix_partial_plan((Plan *)lfirst(lc), fnoid);
			break;
		case T_SubqueryScan:
			fix_partial_plan(((SubqueryScan *)plan)->subplan, fnoid);
			break;
		case T_CustomScan:
			foreach (lc, ((CustomScan *)plan)->custom_plans)
				fix_partial_plan((Plan *)lfirst(lc), fnoid);
			break;
		default:
			break;
	}
}

/*
 * fix_partial_agg
 *		Make an Agg node that evaluates partial() skip the final functions
 *		and serialize its transition values.
 *
 * The usual node (AGGSPLIT_SIMPLE) becomes AGGSPLIT_INITIAL_SERIAL.  The
 * Finalize node of a parallel or partitionwise plan (FINAL_DESERIAL) keeps
 * combining and deserializing its inputs, and now serializes instead of
 * finalizing; nodeAgg treats the four split flags independently.  The
 * pre-planning check guarantees that every Aggref of the node is wrapped.
 */
static void
fix_partial_agg(Agg *agg, Oid fnoid)
{
	AggSplit split;
	ListCell *lc;

	if (!contains_partial_wrapper((Node *)agg->plan.targetlist, fnoid) &&
		!contains_partial_wrapper((Node *)agg->plan.qual, fnoid))
		return;

	split = agg->aggsplit | AGGSPLITOP_SKIPFINAL | AGGSPLITOP_SERIALIZE;
	mark_partial_walker((Node *)agg->plan.targetlist, &split);
	mark_partial_walker((Node *)agg->plan.qual, &split);

	agg->aggsplit = split;
	foreach (lc, agg->chain)
		((Agg *)lfirst(lc))->aggsplit = split;
}

static bool
mark_partial_walker(Node *node, AggSplit *split)
{
	if (node == NULL)
		return false;
	if (IsA(node, Aggref))
	{
		Aggref *aggref = (Aggref *)node;

		if (aggref->aggsplit == AGGSPLIT_SIMPLE)
			mark_partial_aggref(aggref, *split);
		else if (aggref->aggsplit != *split)
		{
			/* mark_partial_aggref's rule, for an already split Aggref */
			aggref->aggsplit = *split;
			if (aggref->aggtranstype == INTERNALOID)
				aggref->aggtype = BYTEAOID;
			else
				aggref->aggtype = aggref->aggtranstype;
		}
		/* its arguments hold no Aggrefs of this level */
		return false;
	}
	return expression_tree_walker(node, mark_partial_walker, (void *)split);
}

/* ----------------------------------------------------------------
 *		SQL-callable functions
 * ----------------------------------------------------------------
 */

/*
 * streamproc.partial(aggregate call) RETURNS bytea
 *
 * Evaluated by the Agg node that the planner hook switched to partial
 * mode: the argument is then the aggregate's transition state, already
 * serialized (bytea) when the transition type is internal.  Other states
 * are converted with their type's send function.
 */
Datum
streamproc_partial(PG_FUNCTION_ARGS)
{
	FuncExpr *call = (FuncExpr *)fcinfo->flinfo->fn_expr;
	Node *arg = NULL;
	Aggref *aggref;
	PartialSendCache *cache;

	streamproc_check_preloaded();

	if (call != NULL && IsA(call, FuncExpr) && list_length(call->args) == 1)
		arg = (Node *)linitial(call->args);
	if (arg == NULL || !IsA(arg, Aggref))
		ereport(ERROR,
				(errcode(ERRCODE_WRONG_OBJECT_TYPE),
				 errmsg("argument of streamproc.partial() must be an aggregate call"),
				 errhint("Wrap the aggregate call itself, as in streamproc.partial(sum(x)), and apply other expressions to the finalized value.")));
	aggref = (Aggref *)arg;
	if (!DO_AGGSPLIT_SKIPFINAL(aggref->aggsplit) ||
		!DO_AGGSPLIT_SERIALIZE(aggref->aggsplit))
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("streamproc.partial() was not planned as a partial aggregate"),
				 errdetail("The query was planned without streamproc's planner hook.")));

	if (PG_ARGISNULL(0))
		PG_RETURN_NULL();

	if (aggref->aggtype == BYTEAOID)
		PG_RETURN_DATUM(PG_GETARG_DATUM(0));

	cache = (PartialSendCache *)fcinfo->flinfo->fn_extra;
	if (cache == NULL || cache->type != aggref->aggtype)
	{
		Oid sendfn;
		bool isvarlena;

		cache = MemoryContextAlloc(fcinfo->flinfo->fn_mcxt,
								   sizeof(PartialSendCache));
		getTypeBinaryOutputInfo(aggref->aggtype, &sendfn, &isvarlena);
		fmgr_info_cxt(sendfn, &cache->sendfn, fcinfo->flinfo->fn_mcxt);
		cache->type = aggref->aggtype;
		fcinfo->flinfo->fn_extra = cache;
	}

	PG_RETURN_BYTEA_P(SendFunctionCall(&cache->sendfn, PG_GETARG_DATUM(0)));
}

/*
 * Transition function of the aggregates
 *	 streamproc.combine(aggregate regprocedure, state bytea)
 *	 streamproc.combine(aggregate regprocedure, state bytea,
 *						collation regcollation)
 *
 * The transition state is an accumulator in the outer aggregate's memory,
 * built in its aggcontext so that it lives as long as the group.
 */
Datum
streamproc_combine_sfunc(PG_FUNCTION_ARGS)
{
	MemoryContext aggcxt;
	StreamprocAggAccum *acc;
	StreamprocAggInfo *info;
	Oid collid = InvalidOid;

	streamproc_check_preloaded();

	if (!AggCheckCallContext(fcinfo, &aggcxt))
		elog(ERROR, "streamproc_combine_sfunc called in non-aggregate context");
	if (PG_ARGISNULL(1))
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("aggregate argument of streamproc.combine() must not be null")));
	if (PG_NARGS() > 3 && !PG_ARGISNULL(3))
		collid = PG_GETARG_OID(3);

	info = sql_agg_info(fcinfo, PG_GETARG_OID(1), collid, WHERE_COMBINE);

	if (PG_ARGISNULL(0))
	{
		ExprContext *aggcontext;

		if (IsA(fcinfo->context, AggState))
			aggcontext = ((AggState *)fcinfo->context)->curaggcontext;
		else
		{
			/*
			 * A window aggregate: its memory context is all WindowAgg
			 * offers.  Callbacks registered through AggRegisterCallback
			 * would never run; no combinable aggregate registers any.
			 */
			aggcontext = (ExprContext *)MemoryContextAllocZero(aggcxt,
															   sizeof(ExprContext));
			aggcontext->type = T_ExprContext;
			aggcontext->ecxt_per_query_memory = aggcxt;
			aggcontext->ecxt_per_tuple_memory = aggcxt;
		}
		acc = (StreamprocAggAccum *)MemoryContextAllocZero(aggcxt,
														   sizeof(StreamprocAggAccum));
		accum_init(acc, info, aggcontext);
	}
	else
	{
		acc = (StreamprocAggAccum *)PG_GETARG_POINTER(0);
		if (acc->info != info)
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("streamproc.combine() must be given the same aggregate and collation for all rows of a group")));
	}

	accum_add(acc, PG_ARGISNULL(2) ? NULL : PG_GETARG_BYTEA_P(2));

	PG_RETURN_POINTER(acc);
}

/*
 * Final function of streamproc.combine(): the serialized state, NULL when
 * there were no rows.
 */
Datum
streamproc_combine_final(PG_FUNCTION_ARGS)
{
	bytea *result;

	streamproc_check_preloaded();

	if (PG_ARGISNULL(0))
		PG_RETURN_NULL();

	result = accum_serialize((StreamprocAggAccum *)PG_GETARG_POINTER(0),
							 CurrentMemoryContext);
	if (result == NULL)
		PG_RETURN_NULL();
	PG_RETURN_BYTEA_P(result);
}

/*
 * streamproc.finalize(aggregate regprocedure, state bytea,
 *					   result_type anyelement) RETURNS anyelement
 *
 * Applies the aggregate's final function to a state.  result_type only
 * carries the type (NULL::numeric) and, when collatable, the collation
 * given to the final function.  Not strict: a NULL state is finalized as
 * "no input" (count gives 0).
 */
Datum
streamproc_finalize(PG_FUNCTION_ARGS)
{
	StreamprocAggInfo *info;
	Oid restype;
	Datum result;
	bool isnull;

	streamproc_check_preloaded();

	if (PG_ARGISNULL(0))
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("aggregate argument of streamproc.finalize() must not be null")));

	restype = get_fn_expr_argtype(fcinfo->flinfo, 2);
	if (!OidIsValid(restype))
		elog(ERROR, "could not determine the result type of streamproc.finalize()");

	info = sql_agg_info(fcinfo, PG_GETARG_OID(0), PG_GET_COLLATION(),
						WHERE_FINALIZE);

	if (getBaseType(restype) != info->resulttype)
		ereport(ERROR,
				(errcode(ERRCODE_DATATYPE_MISMATCH),
				 errmsg("aggregate %s returns type %s, not %s",
						info->signature, format_type_be(info->resulttype),
						format_type_be(restype)),
				 errhint("Pass NULL::%s as the result_type argument.",
						 format_type_be(info->resulttype))));

	result = streamproc_agg_final(info,
								  PG_ARGISNULL(1) ? NULL : PG_GETARG_BYTEA_P(1),
								  &isnull);
	if (isnull)
		PG_RETURN_NULL();
	PG_RETURN_DATUM(result);
}

/*
 * streamproc._combine_pair(aggregate regprocedure, a bytea, b bytea)
 *
 * Internal: streamproc_agg_combine() for SQL, so that the regression tests
 * exercise the engine's pairwise entry point.
 */
Datum
streamproc_combine_pair(PG_FUNCTION_ARGS)
{
	StreamprocAggInfo *info;
	bytea *result;

	streamproc_check_preloaded();

	if (PG_ARGISNULL(0))
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("aggregate argument of streamproc.combine() must not be null")));

	info = sql_agg_info(fcinfo, PG_GETARG_OID(0), InvalidOid, WHERE_COMBINE);
	result = streamproc_agg_combine(info,
									PG_ARGISNULL(1) ? NULL : PG_GETARG_BYTEA_P(1),
									PG_ARGISNULL(2) ? NULL : PG_GETARG_BYTEA_P(2),
									CurrentMemoryContext);
	if (result == NULL)
		PG_RETURN_NULL();
	PG_RETURN_BYTEA_P(result);
}

/*
 * aggregate_proc_tuple
 *		The pg_proc tuple of an aggregate, or an error when aggfnoid is not
 *		a function or not an aggregate.  The caller releases it.
 */
static HeapTuple
aggregate_proc_tuple(Oid aggfnoid)
{
	HeapTuple proctup = SearchSysCache1(PROCOID, ObjectIdGetDatum(aggfnoid));

	if (!HeapTupleIsValid(proctup))
		ereport(ERROR,
				(errcode(ERRCODE_UNDEFINED_FUNCTION),
				 errmsg("function with OID %u does not exist", aggfnoid)));
	if (((Form_pg_proc)GETSTRUCT(proctup))->prokind != PROKIND_AGGREGATE)
		ereport(ERROR,
				(errcode(ERRCODE_WRONG_OBJECT_TYPE),
				 errmsg("function %s is not an aggregate",
						format_procedure(aggfnoid))));
	return proctup;
}

/*
 * sql_agg_info
 *		The info of an aggregate named by a regprocedure, cached in the
 *		calling function's fn_extra (so in its fn_mcxt).
 *
 * The argument types are the aggregate's declared ones: an aggregate with
 * polymorphic arguments cannot be resolved from its OID alone.  Without
 * an explicit collation, a collatable argument type's own collation is
 * used, as for an argument of that type without COLLATE.
 */
static StreamprocAggInfo *
sql_agg_info(FunctionCallInfo fcinfo, Oid aggfnoid, Oid collid,
			 const char *where)
{
	List *cache = (List *)fcinfo->flinfo->fn_extra;
	SqlAggCacheEntry *entry;
	MemoryContext oldcxt;
	HeapTuple proctup;
	Form_pg_proc procform;
	Oid *argtypes;
	Oid inputcollid = collid;
	int nargs;
	int i;
	ListCell *lc;

	foreach (lc, cache)
	{
		entry = (SqlAggCacheEntry *)lfirst(lc);
		if (entry->aggfnoid == aggfnoid && entry->collid == collid)
			return entry->info;
	}

	proctup = aggregate_proc_tuple(aggfnoid);
	procform = (Form_pg_proc)GETSTRUCT(proctup);

	nargs = procform->pronargs;
	argtypes = (Oid *)palloc(sizeof(Oid) * Max(nargs, 1));
	for (i = 0; i < nargs; i++)
	{
		argtypes[i] = procform->proargtypes.values[i];
		if (IsPolymorphicType(argtypes[i]))
			ereport(ERROR,
					(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
					 errmsg("aggregate %s cannot be used in %s",
							format_procedure(aggfnoid), where),
					 errdetail("Its argument types are polymorphic, so the type of its partial states is not known from its signature."),
					 errhint("streamproc.partial() and continuous views support it, because their queries give the argument types.")));
		if (!OidIsValid(inputcollid) && type_is_collatable(argtypes[i]))
			inputcollid = get_typcollation(argtypes[i]);
	}
	ReleaseSysCache(proctup);

	oldcxt = MemoryContextSwitchTo(fcinfo->flinfo->fn_mcxt);
	entry = (SqlAggCacheEntry *)palloc(sizeof(SqlAggCacheEntry));
	entry->aggfnoid = aggfnoid;
	entry->collid = collid;
	entry->info = agg_lookup(aggfnoid, inputcollid, nargs, argtypes, where);
	fcinfo->flinfo->fn_extra = lappend(cache, entry);
	MemoryContextSwitchTo(oldcxt);

	return entry->info;
}

/* ----------------------------------------------------------------
 *		C API: lookup and checks
 * ----------------------------------------------------------------
 */

/*
 * streamproc_agg_lookup
 *		Look up everything needed to combine and finalize partial states of
 *		aggregate aggfnoid called with nargs arguments of types argtypes
 *		(the actual types, which resolve polymorphic declarations) and
 *		input collation inputcollid (Aggref.inputcollid).
 *
 * The result lives in a new memory context below CurrentMemoryContext; see
 * StreamprocAggInfo.  Raises the user-facing error of
 * streamproc_agg_check_combinable when the aggregate cannot be combined,
 * and a permission error when the current user may not execute it (or
 * its owner its support functions), as nodeAgg would.
 */
StreamprocAggInfo *
streamproc_agg_lookup(Oid aggfnoid, Oid inputcollid, int nargs,
					  Oid *argtypes)
{
	return agg_lookup(aggfnoid, inputcollid, nargs, argtypes, WHERE_VIEW);
}

/*
 * streamproc_agg_release
 *		Free an info and run any callback its support functions registered.
 */
void
streamproc_agg_release(StreamprocAggInfo *info)
{
	FreeExprContext(info->scratch, true);
	FreeExprContext(info->transient, true);
	MemoryContextDelete(info->cxt);
}

static StreamprocAggInfo *
agg_lookup(Oid aggfnoid, Oid inputcollid, int nargs, Oid *argtypes,
		   const char *where)
{
	MemoryContext cxt;
	MemoryContext oldcxt;
	StreamprocAggInfo *info;
	HeapTuple proctup;
	HeapTuple aggtup;
	Form_pg_proc procform;
	Form_pg_aggregate aggform;
	Datum textInitVal;
	Expr *expr;
	Oid rettype;
	Oid transtype_arg[1];
	List *args = NIL;
	int numFinalArgs;
	int i;

	cxt = AllocSetContextCreate(CurrentMemoryContext, "streamproc aggregate",
								ALLOCSET_SMALL_SIZES);
	oldcxt = MemoryContextSwitchTo(cxt);

	info = (StreamprocAggInfo *)palloc0(sizeof(StreamprocAggInfo));
	info->cxt = cxt;
	info->aggfnoid = aggfnoid;
	info->inputcollid = inputcollid;
	info->nargs = nargs;
	info->argtypes = (Oid *)palloc(sizeof(Oid) * Max(nargs, 1));
	if (nargs > 0)
		memcpy(info->argtypes, argtypes, sizeof(Oid) * nargs);

	proctup = aggregate_proc_tuple(aggfnoid);
	procform = (Form_pg_proc)GETSTRUCT(proctup);
	if (nargs != procform->pronargs && !OidIsValid(procform->provariadic))
		elog(ERROR, "aggregate %s takes %d arguments, not %d",
			 format_procedure(aggfnoid), procform->pronargs, nargs);

	aggtup = SearchSysCache1(AGGFNOID, ObjectIdGetDatum(aggfnoid));
	if (!HeapTupleIsValid(aggtup))
		elog(ERROR, "cache lookup failed for aggregate %u", aggfnoid);
	aggform = (Form_pg_aggregate)GETSTRUCT(aggtup);

	/* "sum(numeric)", with the actual argument types */
	{
		StringInfoData buf;

		initStringInfo(&buf);
		appendStringInfo(&buf, "%s(", agg_name(aggfnoid));
		if (nargs == 0)
			appendStringInfoChar(&buf, '*');
		for (i = 0; i < nargs; i++)
			appendStringInfo(&buf, "%s%s", i > 0 ? ", " : "",
							 format_type_be(argtypes[i]));
		appendStringInfoChar(&buf, ')');
		info->signature = buf.data;
	}

	if (aggform->aggkind != AGGKIND_NORMAL)
		ereport(ERROR,
				(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
				 errmsg("%s aggregate %s cannot be used in %s",
						aggform->aggkind == AGGKIND_ORDERED_SET ? "ordered-set" : "hypothetical-set",
						format_procedure(aggfnoid), where),
				 errdetail("It needs all of its input rows at once, so partial states cannot be merged.")));

	info->transtype = resolve_aggregate_transtype(aggfnoid,
												  aggform->aggtranstype,
												  info->argtypes, nargs);
	check_agg_support(aggfnoid, aggform, info->transtype, info->signature,
					  where);
	check_agg_permissions(proctup, aggform);

	rettype = procform->prorettype;
	if (IsPolymorphicType(rettype))
		rettype = enforce_generic_type_consistency(info->argtypes,
												   procform->proargtypes.values,
												   nargs, rettype, false);
	info->resulttype = rettype;
	get_typlenbyval(info->resulttype, &info->resulttypeLen,
					&info->resulttypeByVal);
	get_typlenbyval(info->transtype, &info->transtypeLen,
					&info->transtypeByVal);

	info->combinefn_oid = aggform->aggcombinefn;
	info->finalfn_oid = aggform->aggfinalfn;
	info->finalextra = aggform->aggfinalextra;
	if (info->transtype == INTERNALOID)
	{
		info->serialfn_oid = aggform->aggserialfn;
		info->deserialfn_oid = aggform->aggdeserialfn;
	}

	/* the initial condition, as nodeAgg's GetAggInitVal reads it */
	textInitVal = SysCacheGetAttr(AGGFNOID, aggtup,
								  Anum_pg_aggregate_agginitval,
								  &info->initValueIsNull);
	if (!info->initValueIsNull)
	{
		Oid typinput;
		Oid typioparam;
		char *str = TextDatumGetCString(textInitVal);

		getTypeInputInfo(info->transtype, &typinput, &typioparam);
		info->initValue = OidInputFunctionCall(typinput, str, typioparam, -1);
	}

	ReleaseSysCache(aggtup);
	ReleaseSysCache(proctup);

	/*
	 * Function call data, with the expressions nodeAgg gives them so that
	 * get_fn_expr_argtype() works in polymorphic support functions.
	 */
	transtype_arg[0] = info->transtype;
	fmgr_info_cxt(info->combinefn_oid, &info->combinefn, cxt);
	build_aggregate_transfn_expr(transtype_arg, 1, 0, false, info->transtype,
								 inputcollid, info->combinefn_oid, InvalidOid,
								 &expr, NULL);
	fmgr_info_set_expr((Node *)expr, &info->combinefn);

	if (info->transtype == INTERNALOID)
	{
		fmgr_info_cxt(info->serialfn_oid, &info->serialfn, cxt);
		build_aggregate_serialfn_expr(info->serialfn_oid, &expr);
		fmgr_info_set_expr((Node *)expr, &info->serialfn);

		fmgr_info_cxt(info->deserialfn_oid, &info->deserialfn, cxt);
		build_aggregate_deserialfn_expr(info->deserialfn_oid, &expr);
		fmgr_info_set_expr((Node *)expr, &info->deserialfn);

		/* internal combine functions must not be strict (nodeAgg agrees) */
		if (info->combinefn.fn_strict)
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_FUNCTION_DEFINITION),
					 errmsg("combine function with transition type %s must not be declared STRICT",
							format_type_be(info->transtype))));
	}
	else
	{
		Oid sendfn;
		Oid recvfn;
		bool isvarlena;

		getTypeBinaryOutputInfo(info->transtype, &sendfn, &isvarlena);
		fmgr_info_cxt(sendfn, &info->sendfn, cxt);
		getTypeBinaryInputInfo(info->transtype, &recvfn,
							   &info->recv_typioparam);
		fmgr_info_cxt(recvfn, &info->recvfn, cxt);
		info->fastcodec = fast_codec(getBaseType(info->transtype), sendfn);
	}

	if (OidIsValid(info->finalfn_oid))
	{
		numFinalArgs = 1 + (info->finalextra ? nargs : 0);
		fmgr_info_cxt(info->finalfn_oid, &info->finalfn, cxt);
		build_aggregate_finalfn_expr(info->argtypes, numFinalArgs,
									 info->transtype, info->resulttype,
									 inputcollid, info->finalfn_oid, &expr);
		fmgr_info_set_expr((Node *)expr, &info->finalfn);
	}

	/* what AggGetAggref() returns to the support functions */
	for (i = 0; i < nargs; i++)
		args = lappend(args,
					   makeTargetEntry((Expr *)makeNullConst(info->argtypes[i],
															 -1, InvalidOid),
									   i + 1, NULL, false));
	info->aggref = makeNode(Aggref);
	info->aggref->aggfnoid = aggfnoid;
	info->aggref->aggtype = info->resulttype;
	info->aggref->aggcollid = type_is_collatable(info->resulttype) ? inputcollid : InvalidOid;
	info->aggref->inputcollid = inputcollid;
	info->aggref->aggtranstype = info->transtype;
	for (i = 0; i < nargs; i++)
		info->aggref->aggargtypes = lappend_oid(info->aggref->aggargtypes,
												info->argtypes[i]);
	info->aggref->args = args;
	info->aggref->aggstar = (nargs == 0);
	info->aggref->aggkind = AGGKIND_NORMAL;
	info->aggref->aggsplit = AGGSPLIT_FINAL_DESERIAL;
	info->aggref->location = -1;

	info->pertrans.aggref = info->aggref;
	info->pertrans.aggshared = false;
	info->pertrans.numInputs = 1;
	info->pertrans.numTransInputs = 1;
	info->pertrans.transfn_oid = info->combinefn_oid;
	info->pertrans.serialfn_oid = info->serialfn_oid;
	info->pertrans.deserialfn_oid = info->deserialfn_oid;
	info->pertrans.aggtranstype = info->transtype;
	info->pertrans.aggCollation = inputcollid;
	info->pertrans.transtypeLen = info->transtypeLen;
	info->pertrans.transtypeByVal = info->transtypeByVal;
	info->pertrans.initValue = info->initValue;
	info->pertrans.initValueIsNull = info->initValueIsNull;

	info->scratch = CreateStandaloneExprContext();
	info->transient = CreateStandaloneExprContext();

	info->callstate = makeNode(AggState);
	info->callstate->aggsplit = AGGSPLIT_FINAL_DESERIAL;
	info->callstate->numaggs = 1;
	info->callstate->numtrans = 1;
	info->callstate->pertrans = &info->pertrans;
	info->callstate->tmpcontext = info->scratch;
	info->callstate->curaggcontext = info->transient;

	MemoryContextSwitchTo(oldcxt);
	return info;
}

/*
 * streamproc_agg_check_combinable
 *		Raise the user-facing error when the aggregate call cannot be
 *		maintained incrementally in a continuous view; return otherwise.
 *
 * Works on a parser Aggref (its transition type need not be resolved).
 */
void
streamproc_agg_check_combinable(Aggref *aggref)
{
	check_aggref(aggref, WHERE_VIEW);
}

static void
check_aggref(Aggref *aggref, const char *where)
{
	HeapTuple aggtup;
	Form_pg_aggregate aggform;
	Oid inputTypes[FUNC_MAX_ARGS];
	int numArguments;
	Oid transtype;
	char *name = agg_name(aggref->aggfnoid);

	if (aggref->aggkind == AGGKIND_ORDERED_SET)
	{
		bool percentile = (strcmp(name, "percentile_cont") == 0 ||
						   strcmp(name, "percentile_disc") == 0);
		bool mode = (strcmp(name, "mode") == 0);

		ereport(ERROR,
				(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
				 errmsg("ordered-set aggregate %s cannot be used in %s",
						aggref_signature(aggref), where),
				 errdetail("An ordered-set aggregate needs all of its input rows at once, so partial states cannot be merged."),
				 percentile ? errhint("For approximate percentiles, use the tdigest extension: aggregate tdigest(x, 100) and read it with tdigest_percentile(digest, 0.95).") : 0,
				 mode ? errhint("Group by the value and count the rows instead, then pick the most frequent value when reading.") : 0));
	}
	if (aggref->aggkind == AGGKIND_HYPOTHETICAL)
		ereport(ERROR,
				(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
				 errmsg("hypothetical-set aggregate %s cannot be used in %s",
						aggref_signature(aggref), where),
				 errdetail("A hypothetical-set aggregate needs all of its input rows at once, so partial states cannot be merged."),
				 errhint("Count the rows that sort before the hypothetical row instead, with count(*) FILTER (WHERE ...).")));
	if (aggref->aggdistinct != NIL)
	{
		char *hint = NULL;

		if (strcmp(name, "count") == 0 && list_length(aggref->aggargtypes) == 1)
			hint = psprintf("For an approximate distinct count, use the hll extension: aggregate hll_add_agg(%s(x)) and read it with hll_cardinality().",
							hll_hash_function(linitial_oid(aggref->aggargtypes)));
		ereport(ERROR,
				(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
				 errmsg("aggregate %s cannot be used in %s",
						aggref_signature(aggref), where),
				 errdetail("Partial states of a DISTINCT aggregate cannot be merged, because the same value can occur in several of them."),
				 hint ? errhint("%s", hint) : 0));
	}
	if (aggref->aggorder != NIL)
		ereport(ERROR,
				(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
				 errmsg("aggregate %s cannot be used in %s",
						aggref_signature(aggref), where),
				 errdetail("The order of the input rows is lost when partial states are merged."),
				 errhint("Remove the ORDER BY from the aggregate call.")));

	aggtup = SearchSysCache1(AGGFNOID, ObjectIdGetDatum(aggref->aggfnoid));
	if (!HeapTupleIsValid(aggtup))
		elog(ERROR, "cache lookup failed for aggregate %u", aggref->aggfnoid);
	aggform = (Form_pg_aggregate)GETSTRUCT(aggtup);

	numArguments = get_aggregate_argtypes(aggref, inputTypes);
	transtype = resolve_aggregate_transtype(aggref->aggfnoid,
											aggform->aggtranstype,
											inputTypes, numArguments);
	check_agg_support(aggref->aggfnoid, aggform, transtype,
					  aggref_signature(aggref), where);

	ReleaseSysCache(aggtup);
}

/*
 * check_agg_support
 *		The support functions partial states need: a combine function, and
 *		a way to turn the transition value into bytes and back.
 */
static void
check_agg_support(Oid aggfnoid, Form_pg_aggregate aggform, Oid transtype,
				  const char *signature, const char *where)
{
	if (!OidIsValid(aggform->aggcombinefn))
		ereport(ERROR,
				(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
				 errmsg("aggregate %s cannot be used in %s", signature, where),
				 errdetail("It has no combine function, so partial states cannot be merged."),
				 errhint("Only aggregates with a combine function, such as those PostgreSQL can run in parallel, can be maintained incrementally.")));

	if (transtype == INTERNALOID)
	{
		if (!OidIsValid(aggform->aggserialfn) ||
			!OidIsValid(aggform->aggdeserialfn))
			ereport(ERROR,
					(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
					 errmsg("aggregate %s cannot be used in %s", signature, where),
					 errdetail("Its transition state has type internal and it has no serialization and deserialization functions, so partial states cannot be stored.")));
	}
	else
	{
		HeapTuple typtup;
		Form_pg_type typform;
		bool ok;

		typtup = SearchSysCache1(TYPEOID, ObjectIdGetDatum(transtype));
		if (!HeapTupleIsValid(typtup))
			elog(ERROR, "cache lookup failed for type %u", transtype);
		typform = (Form_pg_type)GETSTRUCT(typtup);
		ok = OidIsValid(typform->typsend) && OidIsValid(typform->typreceive);
		ReleaseSysCache(typtup);
		if (!ok)
			ereport(ERROR,
					(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
					 errmsg("aggregate %s cannot be used in %s", signature, where),
					 errdetail("Its transition type %s has no binary send and receive functions, so partial states cannot be stored.",
							   format_type_be(transtype))));
	}
}

/*
 * check_agg_permissions
 *		As ExecInitAgg: the current user must be allowed to execute the
 *		aggregate, and its owner its support functions.
 */
static void
check_agg_permissions(HeapTuple proctup, Form_pg_aggregate aggform)
{
	Form_pg_proc procform = (Form_pg_proc)GETSTRUCT(proctup);
	Oid fns[5];
	AclResult aclresult;
	int i;

	aclresult = pg_proc_aclcheck(procform->oid, GetUserId(), ACL_EXECUTE);
	if (aclresult != ACLCHECK_OK)
		aclcheck_error(aclresult, OBJECT_AGGREGATE,
					   NameStr(procform->proname));

	fns[0] = aggform->aggcombinefn;
	fns[1] = aggform->aggserialfn;
	fns[2] = aggform->aggdeserialfn;
	fns[3] = aggform->aggfinalfn;
	fns[4] = aggform->aggtransfn;
	for (i = 0; i < lengthof(fns); i++)
	{
		if (!OidIsValid(fns[i]))
			continue;
		aclresult = pg_proc_aclcheck(fns[i], procform->proowner, ACL_EXECUTE);
		if (aclresult != ACLCHECK_OK)
			aclcheck_error(aclresult, OBJECT_FUNCTION, get_func_name(fns[i]));
	}
}

/* The aggregate's name, schema-qualified when not visible. */
static char *
agg_name(Oid aggfnoid)
{
	HeapTuple tup;
	Form_pg_proc procform;
	char *result;

	tup = SearchSysCache1(PROCOID, ObjectIdGetDatum(aggfnoid));
	if (!HeapTupleIsValid(tup))
		elog(ERROR, "cache lookup failed for function %u", aggfnoid);
	procform = (Form_pg_proc)GETSTRUCT(tup);
	if (FunctionIsVisible(aggfnoid))
		result = pstrdup(quote_identifier(NameStr(procform->proname)));
	else
		result = quote_qualified_identifier(get_namespace_name(procform->pronamespace),
											NameStr(procform->proname));
	ReleaseSysCache(tup);
	return result;
}

/*
 * aggref_signature
 *		How the aggregate was called, with argument types instead of
 *		arguments: "count(*)", "count(DISTINCT integer)",
 *		"sum(integer ORDER BY text)", "percentile_cont(double precision)
 *		WITHIN GROUP (ORDER BY double precision)".
 */
static char *
aggref_signature(Aggref *aggref)
{
	StringInfoData buf;
	int ndirect = list_length(aggref->aggdirectargs);
	int i = 0;
	ListCell *lc;

	initStringInfo(&buf);
	appendStringInfo(&buf, "%s(", agg_name(aggref->aggfnoid));
	if (aggref->aggstar)
		appendStringInfoChar(&buf, '*');
	if (aggref->aggdistinct != NIL)
		appendStringInfoString(&buf, "DISTINCT ");
	foreach (lc, aggref->aggargtypes)
	{
		if (AGGKIND_IS_ORDERED_SET(aggref->aggkind) && i == ndirect)
			appendStringInfoString(&buf, ") WITHIN GROUP (ORDER BY ");
		else if (i > 0)
			appendStringInfoString(&buf, ", ");
		appendStringInfoString(&buf, format_type_be(lfirst_oid(lc)));
		i++;
	}
	if (aggref->aggorder != NIL && !AGGKIND_IS_ORDERED_SET(aggref->aggkind))
	{
		appendStringInfoString(&buf, " ORDER BY ");
		i = 0;
		foreach (lc, aggref->aggorder)
		{
			SortGroupClause *sgc = (SortGroupClause *)lfirst(lc);
			Node *expr = get_sortgroupclause_expr(sgc, aggref->args);

			appendStringInfo(&buf, "%s%s", i++ > 0 ? ", " : "",
							 format_type_be(exprType(expr)));
		}
	}
	appendStringInfoChar(&buf, ')');
	return buf.data;
}

/* The hll extension's hash function for a type, for the DISTINCT hint. */
static char *
hll_hash_function(Oid type)
{
	switch (type)
	{
		case BOOLOID:
			return "hll_hash_boolean";
		case INT2OID:
			return "hll_hash_smallint";
		case INT4OID:
			return "hll_hash_integer";
		case INT8OID:
			return "hll_hash_bigint";
		case BYTEAOID:
			return "hll_hash_bytea";
		case TEXTOID:
			return "hll_hash_text";
		default:
			return "hll_hash_any";
	}
}

/* ----------------------------------------------------------------
 *		C API: combining and finalizing
 * ----------------------------------------------------------------
 */

/*
 * streamproc_agg_combine
 *		Merge two partial states of info's aggregate; either may be NULL.
 *
 * Returns the merged state, palloc'd in result_cxt, or NULL (the aggregate
 * has no initial condition and both inputs were NULL, or its transition
 * value stayed NULL).  Combining starts from the initial condition, as
 * nodeAgg does, so combine(NULL, NULL) of count() is the state "0".  The
 * inputs are not modified.  Raises an error for a state that its
 * deserialization or receive function rejects.
 */
bytea *
streamproc_agg_combine(StreamprocAggInfo *info, bytea *a, bytea *b,
					   MemoryContext result_cxt)
{
	StreamprocAggAccum acc;
	bytea *result;

	ReScanExprContext(info->transient);
	accum_init(&acc, info, info->transient);
	accum_add(&acc, a);
	accum_add(&acc, b);
	result = accum_serialize(&acc, result_cxt);
	ReScanExprContext(info->transient);

	return result;
}

/*
 * streamproc_agg_final
 *		The aggregate's result for a partial state (NULL: no input).
 *
 * A pass-by-reference result is palloc'd in the caller's
 * CurrentMemoryContext.
 */
Datum
streamproc_agg_final(StreamprocAggInfo *info, bytea *state, bool *isnull)
{
	StreamprocAggAccum acc;
	Datum result;

	ReScanExprContext(info->transient);
	accum_init(&acc, info, info->transient);
	accum_add(&acc, state);
	result = accum_final(&acc, isnull);
	ReScanExprContext(info->transient);

	return result;
}

/*
 * streamproc_agg_accum_create
 *		A new accumulator for info's aggregate, holding its initial
 *		condition.  It and its transition value live in cxt (in a child
 *		context that streamproc_agg_accum_free deletes).  info must outlive
 *		it.
 */
StreamprocAggAccum *
streamproc_agg_accum_create(StreamprocAggInfo *info, MemoryContext cxt)
{
	MemoryContext oldcxt = MemoryContextSwitchTo(cxt);
	StreamprocAggAccum *acc;

	acc = (StreamprocAggAccum *)palloc0(sizeof(StreamprocAggAccum));
	accum_init(acc, info, CreateStandaloneExprContext());
	acc->own_aggcontext = true;
	MemoryContextSwitchTo(oldcxt);

	return acc;
}

/*
 * streamproc_agg_accum_add
 *		Combine a partial state (NULL: no input) into the accumulator.
 */
void
streamproc_agg_accum_add(StreamprocAggAccum *acc, bytea *state)
{
	accum_add(acc, state);
}

/*
 * streamproc_agg_accum_serialize
 *		The accumulated state, palloc'd in result_cxt, or NULL.  The
 *		accumulator is unchanged and can take more states.
 */
bytea *
streamproc_agg_accum_serialize(StreamprocAggAccum *acc,
							   MemoryContext result_cxt)
{
	return accum_serialize(acc, result_cxt);
}

/*
 * streamproc_agg_accum_final
 *		The aggregate's result for the accumulated state, by-reference
 *		results palloc'd in CurrentMemoryContext.  Final functions may
 *		modify the transition value, so afterwards the accumulator can only
 *		be freed.
 */
Datum
streamproc_agg_accum_final(StreamprocAggAccum *acc, bool *isnull)
{
	return accum_final(acc, isnull);
}

/*
 * streamproc_agg_accum_free
 *		Free an accumulator made by streamproc_agg_accum_create.
 */
void
streamproc_agg_accum_free(StreamprocAggAccum *acc)
{
	if (acc->own_aggcontext)
		FreeExprContext(acc->aggcontext, true);
	pfree(acc);
}

/*
 * streamproc_agg_combine_raw
 *		streamproc_agg_combine() on states given as bytes (len -1: no
 *		state); appends the result to out, or returns false when it is "no
 *		state".  The fixed-width by-value transition types are combined
 *		without a memory context reset or a receive or send call.
 */
bool
streamproc_agg_combine_raw(StreamprocAggInfo *info, const char *a, int alen,
						   const char *b, int blen, StringInfo out)
{
	StreamprocAggAccum acc;
	bool has;

	if (info->fastcodec != AGG_FAST_NONE)
	{
		accum_init(&acc, info, info->transient);
		accum_add_slice(&acc, a, alen);
		accum_add_slice(&acc, b, blen);
		return accum_serialize_into(&acc, out);
	}
	ReScanExprContext(info->transient);
	accum_init(&acc, info, info->transient);
	accum_add_slice(&acc, a, alen);
	accum_add_slice(&acc, b, blen);
	has = accum_serialize_into(&acc, out);
	ReScanExprContext(info->transient);
	return has;
}

/*
 * streamproc_agg_final_raw
 *		streamproc_agg_final() on a state given as bytes (len -1: none).
 */
Datum
streamproc_agg_final_raw(StreamprocAggInfo *info, const char *data, int len,
						 bool *isnull)
{
	StreamprocAggAccum acc;
	Datum result;

	if (info->fastcodec != AGG_FAST_NONE && !OidIsValid(info->finalfn_oid))
	{
		/* the state is the result: read it */
		accum_init(&acc, info, info->transient);
		accum_add_slice(&acc, data, len);
		*isnull = acc.isnull;
		return acc.value;
	}
	ReScanExprContext(info->transient);
	accum_init(&acc, info, info->transient);
	accum_add_slice(&acc, data, len);
	result = accum_final(&acc, isnull);
	ReScanExprContext(info->transient);
	return result;
}

/* streamproc_agg_accum_add() on a state given as bytes (len -1: none). */
void
streamproc_agg_accum_add_raw(StreamprocAggAccum *acc, const char *data, int len)
{
	accum_add_slice(acc, data, len);
}

/*
 * streamproc_agg_accum_serialize_raw
 *		Append the accumulated state's bytes to out; false when there is no
 *		state.  The accumulator can take more states.
 */
bool
streamproc_agg_accum_serialize_raw(StreamprocAggAccum *acc, StringInfo out)
{
	return accum_serialize_into(acc, out);
}

/*
 * accum_init
 *		Start from the initial condition, copied into the aggregate context
 *		(support functions may scribble on it, as initialize_aggregate
 *		allows).
 */
static void
accum_init(StreamprocAggAccum *acc, StreamprocAggInfo *info,
		   ExprContext *aggcontext)
{
	acc->info = info;
	acc->aggcontext = aggcontext;
	acc->finalized = false;
	if (info->initValueIsNull)
	{
		acc->value = (Datum)0;
		acc->isnull = true;
		acc->noTransValue = true;
	}
	else
	{
		MemoryContext oldcxt;

		oldcxt = MemoryContextSwitchTo(aggcontext->ecxt_per_tuple_memory);
		acc->value = datumCopy(info->initValue, info->transtypeByVal,
							   info->transtypeLen);
		MemoryContextSwitchTo(oldcxt);
		acc->isnull = false;
		acc->noTransValue = false;
	}
}

/*
 * accum_add
 *		One combine step with a partial state given as a bytea (NULL: no
 *		state).
 */
static void
accum_add(StreamprocAggAccum *acc, bytea *state)
{
	if (state == NULL)
		accum_add_slice(acc, NULL, -1);
	else
	{
		state = (bytea *)PG_DETOAST_DATUM(PointerGetDatum(state));
		accum_add_slice(acc, VARDATA_ANY(state), VARSIZE_ANY_EXHDR(state));
	}
}

/*
 * accum_add_slice
 *		One combine step with a partial state given as its bytes (len -1:
 *		no state): read it into a transition value in scratch memory, or
 *		directly for the fixed-width by-value types, then combine.
 */
static void
accum_add_slice(StreamprocAggAccum *acc, const char *data, int len)
{
	StreamprocAggInfo *info = acc->info;
	MemoryContext scratch = info->scratch->ecxt_per_tuple_memory;
	MemoryContext oldcxt;
	Datum input;
	bool inputnull;

	if (acc->finalized)
		elog(ERROR, "partial aggregate state was already finalized");

	if (info->fastcodec != AGG_FAST_NONE)
	{
		bool ok = true;

		inputnull = (len < 0);
		input = inputnull ? (Datum)0 : fast_decode(info->fastcodec, data, len, &ok);
		if (!ok)
		{
			ErrorContextCallback errcallback;

			errcallback.callback = state_error_callback;
			errcallback.arg = (void *)info;
			errcallback.previous = error_context_stack;
			error_context_stack = &errcallback;
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_BINARY_REPRESENTATION),
					 errmsg("incorrect binary data format in partial state"),
					 errdetail("A value of type %s takes %d bytes, not %d.",
							   format_type_be(info->transtype), fast_size(info->fastcodec),
							   len)));
		}
		begin_call(info, acc->aggcontext);
		accum_add_datum(acc, input, inputnull);
		end_call(info);
		return;
	}

	MemoryContextReset(scratch);
	oldcxt = MemoryContextSwitchTo(scratch);
	begin_call(info, acc->aggcontext);

	input = slice_to_datum(info, data, len, &inputnull);
	accum_add_datum(acc, input, inputnull);

	end_call(info);
	MemoryContextSwitchTo(oldcxt);
	MemoryContextReset(scratch);
}

/*
 * accum_add_datum
 *		Combine a transition value into the accumulator, exactly as nodeAgg
 *		runs a combine step for a deserialized input in FINAL_DESERIAL mode
 *		(ExecBuildAggTrans' strict checks, ExecAggInitGroup,
 *		ExecAggPlainTransByRef/ByVal).  The caller has begun the call.
 */
static void
accum_add_datum(StreamprocAggAccum *acc, Datum input, bool inputnull)
{
	StreamprocAggInfo *info = acc->info;

	if (inputnull && (info->combinefn.fn_strict ||
					  (info->transtype == INTERNALOID && info->deserialfn.fn_strict)))
	{
		/*
		 * A strict combine function skips NULL inputs; so does nodeAgg for
		 * any combine function when the deserialization function is strict
		 * (EEOP_AGG_STRICT_DESERIALIZE): numeric_avg_combine(NULL, NULL),
		 * for one, returns a NULL pointer that is not a NULL value.
		 */
	}
	else if (info->combinefn.fn_strict && acc->noTransValue)
	{
		/* the first non-NULL input becomes the transition value */
		MemoryContext oldcxt = MemoryContextSwitchTo(acc->aggcontext->ecxt_per_tuple_memory);

		acc->value = datumCopy(input, info->transtypeByVal,
							   info->transtypeLen);
		MemoryContextSwitchTo(oldcxt);
		acc->isnull = false;
		acc->noTransValue = false;
	}
	else if (info->combinefn.fn_strict && acc->isnull)
		/* a strict combine function returned NULL earlier: keep it */;
	else
	{
		LOCAL_FCINFO(fcinfo, 2);
		Datum newval;
		bool newnull;

		InitFunctionCallInfoData(*fcinfo, &info->combinefn, 2,
								 info->inputcollid,
								 (Node *)info->callstate, NULL);
		fcinfo->args[0].value = acc->value;
		fcinfo->args[0].isnull = acc->isnull;
		fcinfo->args[1].value = input;
		fcinfo->args[1].isnull = inputnull;
		newval = FunctionCallInvoke(fcinfo);
		newnull = fcinfo->isnull;

		/*
		 * A new by-reference value must move into the aggregate context,
		 * and the old one be freed (ExecAggTransReparent).
		 */
		if (!info->transtypeByVal &&
			DatumGetPointer(newval) != DatumGetPointer(acc->value))
		{
			MemoryContext aggmem = acc->aggcontext->ecxt_per_tuple_memory;

			if (newnull)
				newval = (Datum)0;
			else if (DatumIsReadWriteExpandedObject(newval, false,
													info->transtypeLen) &&
					 MemoryContextGetParent(DatumGetEOHP(newval)->eoh_context) == aggmem)
				/* adopt it */;
			else
			{
				MemoryContext oldcxt = MemoryContextSwitchTo(aggmem);

				newval = datumCopy(newval, info->transtypeByVal,
								   info->transtypeLen);
				MemoryContextSwitchTo(oldcxt);
			}
			if (!acc->isnull)
			{
				if (DatumIsReadWriteExpandedObject(acc->value, false,
												   info->transtypeLen))
					DeleteExpandedObject(acc->value);
				else
					pfree(DatumGetPointer(acc->value));
			}
		}
		acc->value = newval;
		acc->isnull = newnull;
	}
}

/*
 * accum_serialize
 *		The state of the accumulated transition value, as
 *		finalize_partialaggregate produces it, copied into result_cxt.
 */
static bytea *
accum_serialize(StreamprocAggAccum *acc, MemoryContext result_cxt)
{
	StringInfoData buf;
	bytea *result;

	initStringInfo(&buf);
	if (!accum_serialize_into(acc, &buf))
	{
		pfree(buf.data);
		return NULL;
	}
	result = (bytea *)MemoryContextAlloc(result_cxt, buf.len + VARHDRSZ);
	SET_VARSIZE(result, buf.len + VARHDRSZ);
	memcpy(VARDATA(result), buf.data, buf.len);
	pfree(buf.data);
	return result;
}

/*
 * accum_serialize_into
 *		Append the bytes of the accumulated state to out; false, appending
 *		nothing, when there is no state.
 */
static bool
accum_serialize_into(StreamprocAggAccum *acc, StringInfo out)
{
	StreamprocAggInfo *info = acc->info;
	MemoryContext scratch = info->scratch->ecxt_per_tuple_memory;
	MemoryContext oldcxt;
	bool has = false;

	if (acc->finalized)
		elog(ERROR, "partial aggregate state was already finalized");

	if (info->fastcodec != AGG_FAST_NONE)
	{
		if (acc->isnull)
			return false;
		fast_encode(info->fastcodec, acc->value, out);
		return true;
	}

	MemoryContextReset(scratch);
	oldcxt = MemoryContextSwitchTo(scratch);
	begin_call(info, acc->aggcontext);

	if (info->transtype == INTERNALOID)
	{
		if (!(acc->isnull && info->serialfn.fn_strict))
		{
			LOCAL_FCINFO(fcinfo, 1);
			Datum value;

			InitFunctionCallInfoData(*fcinfo, &info->serialfn, 1, InvalidOid,
									 (Node *)info->callstate, NULL);
			fcinfo->args[0].value = acc->value;
			fcinfo->args[0].isnull = acc->isnull;
			value = FunctionCallInvoke(fcinfo);
			if (!fcinfo->isnull)
			{
				bytea *b = DatumGetByteaPP(value);

				appendBinaryStringInfo(out, VARDATA_ANY(b), VARSIZE_ANY_EXHDR(b));
				has = true;
			}
		}
	}
	else if (!acc->isnull)
	{
		bytea *b = SendFunctionCall(&info->sendfn, acc->value);

		appendBinaryStringInfo(out, VARDATA(b), VARSIZE(b) - VARHDRSZ);
		has = true;
	}

	end_call(info);
	MemoryContextSwitchTo(oldcxt);
	MemoryContextReset(scratch);
	return has;
}

/*
 * accum_final
 *		Apply the final function as finalize_aggregate does: extra
 *		arguments (FINALFUNC_EXTRA) are NULL, a strict final function is not
 *		called with a NULL argument.  By-reference results are copied into
 *		the caller's CurrentMemoryContext.
 */
static Datum
accum_final(StreamprocAggAccum *acc, bool *isnull)
{
	StreamprocAggInfo *info = acc->info;
	MemoryContext callercxt = CurrentMemoryContext;
	MemoryContext scratch = info->scratch->ecxt_per_tuple_memory;
	Datum result;

	if (acc->finalized)
		elog(ERROR, "partial aggregate state was already finalized");

	MemoryContextReset(scratch);
	MemoryContextSwitchTo(scratch);
	begin_call(info, acc->aggcontext);

	if (OidIsValid(info->finalfn_oid))
	{
		LOCAL_FCINFO(fcinfo, FUNC_MAX_ARGS);
		int numFinalArgs = 1 + (info->finalextra ? info->nargs : 0);
		bool anynull = acc->isnull;
		int i;

		InitFunctionCallInfoData(*fcinfo, &info->finalfn, numFinalArgs,
								 info->inputcollid,
								 (Node *)info->callstate, NULL);
		fcinfo->args[0].value =
			MakeExpandedObjectReadOnly(acc->value, acc->isnull,
									   info->transtypeLen);
		fcinfo->args[0].isnull = acc->isnull;
		for (i = 1; i < numFinalArgs; i++)
		{
			fcinfo->args[i].value = (Datum)0;
			fcinfo->args[i].isnull = true;
			anynull = true;
		}
		if (fcinfo->flinfo->fn_strict && anynull)
		{
			result = (Datum)0;
			*isnull = true;
		}
		else
		{
			acc->finalized = true;
			result = FunctionCallInvoke(fcinfo);
			*isnull = fcinfo->isnull;
		}
	}
	else
	{
		result = acc->value;
		*isnull = acc->isnull;
	}

	end_call(info);
	MemoryContextSwitchTo(callercxt);
	if (!*isnull && !info->resulttypeByVal)
		result = datumCopy(result, false, info->resulttypeLen);
	MemoryContextReset(scratch);
	return result;
}

/*
 * slice_to_datum
 *		Read a partial state (len -1: none) into a transition value in the
 *		current memory context (scratch), with the deserialization function
 *		or the transition type's receive function.
 */
static Datum
slice_to_datum(StreamprocAggInfo *info, const char *data, int len, bool *isnull)
{
	ErrorContextCallback errcallback;
	Datum result;

	if (len < 0)
	{
		*isnull = true;
		return (Datum)0;
	}

	errcallback.callback = state_error_callback;
	errcallback.arg = (void *)info;
	errcallback.previous = error_context_stack;
	error_context_stack = &errcallback;

	if (info->transtype == INTERNALOID)
	{
		LOCAL_FCINFO(fcinfo, 2);
		bytea *state = palloc(len + VARHDRSZ);

		SET_VARSIZE(state, len + VARHDRSZ);
		memcpy(VARDATA(state), data, len);
		InitFunctionCallInfoData(*fcinfo, &info->deserialfn, 2, InvalidOid,
								 (Node *)info->callstate, NULL);
		fcinfo->args[0].value = PointerGetDatum(state);
		fcinfo->args[0].isnull = false;
		/* dummy second argument, for type safety, as in nodeAgg */
		fcinfo->args[1].value = PointerGetDatum(NULL);
		fcinfo->args[1].isnull = false;
		result = FunctionCallInvoke(fcinfo);
		*isnull = fcinfo->isnull;
	}
	else
	{
		StringInfoData buf;

		/* receive functions expect a terminated, private buffer */
		buf.data = palloc(len + 1);
		memcpy(buf.data, data, len);
		buf.data[len] = '\0';
		buf.len = len;
		buf.maxlen = len + 1;
		buf.cursor = 0;

		result = ReceiveFunctionCall(&info->recvfn, &buf,
									 info->recv_typioparam, -1);
		if (buf.cursor != buf.len)
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_BINARY_REPRESENTATION),
					 errmsg("incorrect binary data format in partial state"),
					 errdetail_plural("%d byte is left over after a value of type %s.",
									  "%d bytes are left over after a value of type %s.",
									  buf.len - buf.cursor,
									  buf.len - buf.cursor,
									  format_type_be(info->transtype))));
		*isnull = false;
	}

	error_context_stack = errcallback.previous;
	return result;
}

/*
 * fast_codec
 *		The AGG_FAST_* codec of a transition type (its base type) whose send
 *		function is the standard one, or AGG_FAST_NONE.
 */
static char
fast_codec(Oid transtype, Oid sendfn)
{
	Oid stdsend;
	bool varlena;

	getTypeBinaryOutputInfo(transtype, &stdsend, &varlena);
	if (sendfn != stdsend)
		return AGG_FAST_NONE;
	switch (transtype)
	{
		case INT2OID:
			return AGG_FAST_I2;
		case INT4OID:
		case OIDOID:
		case DATEOID:
			return AGG_FAST_I4;
		case INT8OID:
		case TIMESTAMPOID:
		case TIMESTAMPTZOID:
		case TIMEOID:
		case CASHOID:
			return AGG_FAST_I8;
		case FLOAT4OID:
			return AGG_FAST_F4;
		case FLOAT8OID:
			return AGG_FAST_F8;
		case BOOLOID:
			return AGG_FAST_BOOL;
		default:
			return AGG_FAST_NONE;
	}
}

/*
 * fast_decode, fast_encode
 *		What the receive and send functions of those types do: the value
 *		in network byte order (float4send and float8send send the bits).
 */
static Datum
fast_decode(char codec, const char *data, int len, bool *ok)
{
	*ok = true;
	switch (codec)
	{
		case AGG_FAST_I2:
		{
			uint16 v;

			if (len != sizeof(v))
				break;
			memcpy(&v, data, sizeof(v));
			return Int16GetDatum((int16)pg_ntoh16(v));
		}
		case AGG_FAST_I4:
		{
			uint32 v;

			if (len != sizeof(v))
				break;
			memcpy(&v, data, sizeof(v));
			return Int32GetDatum((int32)pg_ntoh32(v));
		}
		case AGG_FAST_I8:
		{
			uint64 v;

			if (len != sizeof(v))
				break;
			memcpy(&v, data, sizeof(v));
			return Int64GetDatum((int64)pg_ntoh64(v));
		}
		case AGG_FAST_F4:
		{
			union
			{
				float4 f;
				uint32 i;
			} u;

			if (len != sizeof(u.i))
				break;
			memcpy(&u.i, data, sizeof(u.i));
			u.i = pg_ntoh32(u.i);
			return Float4GetDatum(u.f);
		}
		case AGG_FAST_F8:
		{
			union
			{
				float8 f;
				uint64 i;
			} u;

			if (len != sizeof(u.i))
				break;
			memcpy(&u.i, data, sizeof(u.i));
			u.i = pg_ntoh64(u.i);
			return Float8GetDatum(u.f);
		}
		case AGG_FAST_BOOL:
			if (len != 1)
				break;
			return BoolGetDatum(data[0] != 0);
	}
	*ok = false;
	return (Datum)0;
}

/* Bytes of a value in a fast codec's form. */
static int
fast_size(char codec)
{
	switch (codec)
	{
		case AGG_FAST_I2:
			return 2;
		case AGG_FAST_I4:
		case AGG_FAST_F4:
			return 4;
		case AGG_FAST_I8:
		case AGG_FAST_F8:
			return 8;
		case AGG_FAST_BOOL:
			return 1;
	}
	return 0;
}

static void
fast_encode(char codec, Datum value, StringInfo out)
{
	switch (codec)
	{
		case AGG_FAST_I2:
		{
			uint16 v = pg_hton16((uint16)DatumGetInt16(value));

			appendBinaryStringInfo(out, (char *)&v, sizeof(v));
			break;
		}
		case AGG_FAST_I4:
		{
			uint32 v = pg_hton32((uint32)DatumGetInt32(value));

			appendBinaryStringInfo(out, (char *)&v, sizeof(v));
			break;
		}
		case AGG_FAST_I8:
		{
			uint64 v = pg_hton64((uint64)DatumGetInt64(value));

			appendBinaryStringInfo(out, (char *)&v, sizeof(v));
			break;
		}
		case AGG_FAST_F4:
		{
			union
			{
				float4 f;
				uint32 i;
			} u;

			u.f = DatumGetFloat4(value);
			u.i = pg_hton32(u.i);
			appendBinaryStringInfo(out, (char *)&u.i, sizeof(u.i));
			break;
		}
		case AGG_FAST_F8:
		{
			union
			{
				float8 f;
				uint64 i;
			} u;

			u.f = DatumGetFloat8(value);
			u.i = pg_hton64(u.i);
			appendBinaryStringInfo(out, (char *)&u.i, sizeof(u.i));
			break;
		}
		case AGG_FAST_BOOL:
			appendStringInfoChar(out, DatumGetBool(value) ? 1 : 0);
			break;
	}
}

static void
state_error_callback(void *arg)
{
	StreamprocAggInfo *info = (StreamprocAggInfo *)arg;

	errcontext("reading a partial state of aggregate %s", info->signature);
}

/*
 * begin_call, end_call
 *		Point the AggState we pass to support functions at the aggregate
 *		context of the transition value being worked on.
 */
static void
begin_call(StreamprocAggInfo *info, ExprContext *aggcontext)
{
	info->callstate->curaggcontext = aggcontext;
	info->callstate->curpertrans = &info->pertrans;
}

static void
end_call(StreamprocAggInfo *info)
{
	info->callstate->curpertrans = NULL;
}
