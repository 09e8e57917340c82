/*-------------------------------------------------------------------------
 *
 * retract.c
 *	  Views over aggregating views: rewrite the downstream view's aggregates
 *	  so that a change of an upstream group takes its old row back.
 *
 * A continuous view over an aggregating view without windows (feed.c)
 * reads a feed of the upstream's changes: for each change of a group, its
 * old row with "$sign" = -1 and its new row with "$sign" = +1.  The
 * downstream view must equal its query over the upstream's current rows,
 * so every aggregate must count a row with sign -1 as that row leaving.
 * Before view.c checks the query, we rewrite each aggregate call into
 * combinable aggregates that do, keeping its result type and its value
 * exactly:
 *
 *	count(*)     -> coalesce(sum($sign), 0)
 *	count(x)     -> coalesce(sum($sign) FILTER (WHERE x IS NOT NULL), 0)
 *	sum(x)       -> CASE WHEN n <> 0 THEN sum(x * $sign) END, where
 *	                n = sum($sign) FILTER (WHERE x IS NOT NULL) counts the
 *	                rows with an x (sum of no value is NULL);
 *	                x of int2/int4 sums as int8 and the result is cast back
 *	                to int8, x of int8 as numeric (the type of sum(int8)),
 *	                numeric as numeric
 *	avg(x)       -> CASE WHEN n <> 0 THEN sum(x::numeric * $sign) / n END,
 *	                for integers: what avg() of integers computes
 *
 * keeping each call's FILTER (ANDed).  A grouped view also gets HAVING
 * sum($sign) > 0, so a group whose every row left is no longer shown, as
 * the query over the upstream's rows would not show it.  A view without
 * GROUP BY keeps its one row (count 0, sums NULL), as the batch query.
 *
 * Refused, with an error that says which aggregate: aggregates that cannot
 * take a row back (min, max, string_agg, ...), DISTINCT or ORDER BY in an
 * aggregate, sums and averages of floating-point types (a sum that takes
 * values back drifts from the batch sum) and avg(numeric) (its result
 * scale follows the largest scale among the rows ever summed, so a taken
 * back row could change its rounding).  sum(numeric) is exact, but its
 * display scale is the largest among the rows ever summed (10.50 - 0.50
 * shows 10.00).  Views without aggregates are refused too: their rows
 * cannot leave (append views only ever append).
 *
 * The view's definition, as pg_dump and \d+ show it, stays the user's
 * query; only the queries the workers run and the view's body read the
 * rewritten one.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "catalog/pg_aggregate.h"
#include "catalog/pg_namespace.h"
#include "catalog/pg_type.h"
#include "nodes/makefuncs.h"
#include "nodes/nodeFuncs.h"
#include "parser/parse_coerce.h"
#include "parser/parse_func.h"
#include "parser/parse_node.h"
#include "parser/parse_oper.h"
#include "parser/parsetree.h"
#include "utils/builtins.h"
#include "utils/lsyscache.h"
#include "utils/regproc.h"

#include "feed.h"
#include "retract.h"

typedef struct RetractContext
{
	ParseState *pstate;
	Var *sign;    /* the feed's "$sign" */
	Oid upstream; /* for messages */
} RetractContext;

static Node *retract_mutator(Node *node, RetractContext *ctx);
static Node *retract_aggref(Aggref *agg, RetractContext *ctx);
static Aggref *make_sum(Expr *arg, Expr *filter);
static Expr *and_filter(Expr *a, Expr *b);
static Expr *not_null(Expr *arg);
static Expr *coerce_to(RetractContext *ctx, Expr *expr, Oid type);
static Expr *op(RetractContext *ctx, const char *name, Expr *l, Expr *r);
static Expr *int8_const(int64 value);

/*
 * streamproc_retract_rewrite
 *		See retract.h.
 */
void
streamproc_retract_rewrite(Query *query, Index rti, Oid upstream)
{
	RangeTblEntry *rte = rt_fetch(rti, query->rtable);
	AttrNumber attno = get_attnum(rte->relid, STREAMPROC_FEED_SIGN_COLUMN);
	RetractContext ctx;

	if (attno == InvalidAttrNumber)
		elog(ERROR, "feed %u has no column \"%s\"", rte->relid, STREAMPROC_FEED_SIGN_COLUMN);
	if (!query->hasAggs && query->groupClause == NIL)
		ereport(ERROR,
				(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
				 errmsg("a continuous view without aggregates cannot read continuous view \"%s\"",
						get_rel_name(upstream)),
				 errdetail("The groups of \"%s\" change as events arrive, and the rows of a view without aggregates can only be added.",
						   get_rel_name(upstream)),
				 errhint("Aggregate the rows of \"%s\" with GROUP BY, or read its stream instead.",
						 get_rel_name(upstream))));

	/* The feed's column list (the range table entry was the upstream's). */
	rte->eref->colnames = lappend(rte->eref->colnames,
								  makeString(pstrdup(STREAMPROC_FEED_SIGN_COLUMN)));

	ctx.pstate = make_parsestate(NULL);
	ctx.sign = makeVar(rti, attno, INT2OID, -1, InvalidOid, 0);
	ctx.upstream = upstream;
	query->targetList = (List *)retract_mutator((Node *)query->targetList, &ctx);
	query->havingQual = retract_mutator(query->havingQual, &ctx);

	/* A group whose every row left is not shown. */
	if (query->groupClause != NIL)
	{
		Expr *shown = op(&ctx, ">", (Expr *)make_sum((Expr *)ctx.sign, NULL), int8_const(0));

		query->havingQual = query->havingQual == NULL
								? (Node *)shown
								: (Node *)makeBoolExpr(AND_EXPR,
													   list_make2(query->havingQual, shown), -1);
		query->hasAggs = true;
	}
	free_parsestate(ctx.pstate);
}

static Node *
retract_mutator(Node *node, RetractContext *ctx)
{
	if (node == NULL)
		return NULL;
	if (IsA(node, Aggref))
		return retract_aggref((Aggref *)node, ctx);
	return expression_tree_mutator(node, retract_mutator, ctx);
}

/* One aggregate call, rewritten as the file header says, or an error. */
static Node *
retract_aggref(Aggref *agg, RetractContext *ctx)
{
	char *name = get_func_name(agg->aggfnoid);
	Oid nsp = get_func_namespace(agg->aggfnoid);
	Oid argtype = list_length(agg->args) == 1 ? exprType((Node *)linitial_node(TargetEntry, agg->args)->expr)
											  : InvalidOid;
	Expr *arg = argtype != InvalidOid ? linitial_node(TargetEntry, agg->args)->expr : NULL;
	Expr *filter = agg->aggfilter;
	Expr *n;
	Expr *sum;
	CaseWhen *when;
	CaseExpr *result;
	CoalesceExpr *count;

	if (agg->aggdistinct != NIL || agg->aggorder != NIL)
		ereport(ERROR,
				(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
				 errmsg("aggregate %s with %s cannot take a row of continuous view \"%s\" back",
						format_procedure(agg->aggfnoid),
						agg->aggdistinct != NIL ? "DISTINCT" : "ORDER BY", get_rel_name(ctx->upstream)),
				 errdetail("The groups of \"%s\" change as events arrive: a changed group's old row must leave this view.",
						   get_rel_name(ctx->upstream)),
				 errhint("Use count(), sum() or avg() without DISTINCT or ORDER BY, or read the stream of \"%s\" instead.",
						 get_rel_name(ctx->upstream))));

	if (nsp == PG_CATALOG_NAMESPACE && agg->aggkind == AGGKIND_NORMAL &&
		strcmp(name, "count") == 0)
	{
		/* count(*): the rows in; count(x): those with an x. */
		if (arg != NULL)
			filter = and_filter(not_null(arg), filter);
		count = makeNode(CoalesceExpr);
		count->coalescetype = INT8OID;
		count->args = list_make2(make_sum((Expr *)ctx->sign, filter), int8_const(0));
		count->location = -1;
		return (Node *)count;
	}

	if (nsp == PG_CATALOG_NAMESPACE && agg->aggkind == AGGKIND_NORMAL &&
		(strcmp(name, "sum") == 0 || strcmp(name, "avg") == 0) &&
		(argtype == INT2OID || argtype == INT4OID || argtype == INT8OID ||
		 (argtype == NUMERICOID && strcmp(name, "sum") == 0)))
	{
		bool is_avg = strcmp(name, "avg") == 0;
		Oid sumtype = (argtype == INT8OID || argtype == NUMERICOID || is_avg) ? NUMERICOID : INT8OID;

		/* n: the rows with an x. */
		n = (Expr *)make_sum((Expr *)ctx->sign, and_filter(not_null(arg), filter));

		/* x * $sign, summed in a type that holds every product exactly. */
		sum = (Expr *)make_sum(op(ctx, "*", coerce_to(ctx, copyObject(arg), sumtype),
								  coerce_to(ctx, (Expr *)ctx->sign, sumtype)),
							   filter);
		if (is_avg)
			sum = op(ctx, "/", sum, coerce_to(ctx, copyObject(n), NUMERICOID));
		else
			sum = coerce_to(ctx, sum, agg->aggtype);

		when = makeNode(CaseWhen);
		when->expr = op(ctx, "<>", n, int8_const(0));
		when->result = sum;
		when->location = -1;
		result = makeNode(CaseExpr);
		result->casetype = agg->aggtype;
		result->casecollid = InvalidOid;
		result->arg = NULL;
		result->args = list_make1(when);
		result->defresult = (Expr *)makeNullConst(agg->aggtype, -1, InvalidOid);
		result->location = -1;
		Assert(exprType((Node *)sum) == agg->aggtype);
		return (Node *)result;
	}

	if (nsp == PG_CATALOG_NAMESPACE && (strcmp(name, "sum") == 0 || strcmp(name, "avg") == 0))
		ereport(ERROR,
				(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
				 errmsg("aggregate %s cannot take a row of continuous view \"%s\" back exactly",
						format_procedure(agg->aggfnoid), get_rel_name(ctx->upstream)),
				 errdetail("The groups of \"%s\" change as events arrive: a changed group's old row must leave this view, and %s drifts or changes its rounding when rows leave.",
						   get_rel_name(ctx->upstream), format_procedure(agg->aggfnoid)),
				 errhint("Cast the argument to bigint or numeric (sum) or to bigint (avg), or read the stream of \"%s\" instead.",
						 get_rel_name(ctx->upstream))));
	ereport(ERROR,
			(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
			 errmsg("aggregate %s cannot take a row of continuous view \"%s\" back",
					format_procedure(agg->aggfnoid), get_rel_name(ctx->upstream)),
			 errdetail("The groups of \"%s\" change as events arrive: a changed group's old row must leave this view, and only count(), sum() and avg() can take a row back.",
					   get_rel_name(ctx->upstream)),
			 errhint("Compute %s in \"%s\" itself, or read the stream of \"%s\" instead.",
					 name, get_rel_name(ctx->upstream), get_rel_name(ctx->upstream))));
	return NULL; /* not reached */
}

/* pg_catalog.sum(arg) [FILTER (WHERE filter)], as parse analysis makes it. */
static Aggref *
make_sum(Expr *arg, Expr *filter)
{
	Oid argtype = exprType((Node *)arg);
	Oid fn = LookupFuncName(list_make2(makeString("pg_catalog"), makeString("sum")), 1,
							&argtype, false);
	Aggref *agg = makeNode(Aggref);

	agg->aggfnoid = fn;
	agg->aggtype = get_func_rettype(fn);
	agg->aggcollid = InvalidOid;
	agg->inputcollid = InvalidOid;
	agg->aggtranstype = InvalidOid; /* the planner fills it in */
	agg->aggargtypes = list_make1_oid(argtype);
	agg->args = list_make1(makeTargetEntry((Expr *)copyObject(arg), 1, NULL, false));
	agg->aggfilter = copyObject(filter);
	agg->aggkind = AGGKIND_NORMAL;
	agg->aggsplit = AGGSPLIT_SIMPLE;
	agg->aggno = -1;
	agg->aggtransno = -1;
	agg->location = -1;
	return agg;
}

/* arg IS NOT NULL (of the datum, as count(arg) counts it). */
static Expr *
not_null(Expr *arg)
{
	NullTest *test = makeNode(NullTest);

	test->arg = copyObject(arg);
	test->nulltesttype = IS_NOT_NULL;
	test->argisrow = false;
	test->location = -1;
	return (Expr *)test;
}

static Expr *
and_filter(Expr *a, Expr *b)
{
	if (b == NULL)
		return a;
	return makeBoolExpr(AND_EXPR, list_make2(a, copyObject(b)), -1);
}

static Expr *
coerce_to(RetractContext *ctx, Expr *expr, Oid type)
{
	Node *result;

	if (exprType((Node *)expr) == type)
		return expr;
	result = coerce_to_target_type(ctx->pstate, (Node *)expr, exprType((Node *)expr), type, -1,
								   COERCION_EXPLICIT, COERCE_EXPLICIT_CAST, -1);
	if (result == NULL)
		elog(ERROR, "cannot cast type %s to %s", format_type_be(exprType((Node *)expr)),
			 format_type_be(type));
	return (Expr *)result;
}

/* l <name> r with pg_catalog's operator. */
static Expr *
op(RetractContext *ctx, const char *name, Expr *l, Expr *r)
{
	return make_op(ctx->pstate, list_make2(makeString("pg_catalog"), makeString(pstrdup(name))),
				   (Node *)l, (Node *)r, NULL, -1);
}

static Expr *
int8_const(int64 value)
{
	return (Expr *)makeConst(INT8OID, -1, InvalidOid, sizeof(int64), Int64GetDatum(value),
							 false, FLOAT8PASSBYVAL);
}
