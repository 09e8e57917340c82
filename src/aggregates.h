/*-------------------------------------------------------------------------
 *
 * aggregates.h
 *	  Partial aggregate states: catalog lookup, combine, finalize, and the
 *	  planner support behind streamproc.partial().
 *
 * The design (state format, memory contexts, how support functions get an
 * aggregate call context) is described at the top of aggregates.c.
 *
 *-------------------------------------------------------------------------
 */
#ifndef STREAMPROC_AGGREGATES_H
#define STREAMPROC_AGGREGATES_H

#include "postgres.h"

#include "executor/nodeAgg.h"
#include "fmgr.h"
#include "lib/stringinfo.h"
#include "nodes/execnodes.h"
#include "nodes/primnodes.h"

/*
 * Everything needed to combine and finalize the partial states of one
 * aggregate called with one list of argument types and one collation.
 *
 * Built by streamproc_agg_lookup().  The fields above "private" may be
 * read by callers; none may be written.  The struct and everything it
 * points to live in its own memory context (cxt), a child of the context
 * that was current at lookup; streamproc_agg_release() or deleting that
 * parent frees it.  It caches catalog data: when the aggregate or its
 * support functions may have changed (DDL, invalidation), look it up again.
 */
typedef struct StreamprocAggInfo
{
	Oid aggfnoid;    /* pg_proc OID of the aggregate */
	Oid inputcollid; /* collation its support functions get */
	int nargs;       /* number of aggregated arguments */
	Oid *argtypes;   /* their actual (non-polymorphic) types */
	char *signature; /* "sum(numeric)", for messages */

	Oid transtype; /* resolved transition type */
	int16 transtypeLen;
	bool transtypeByVal;
	Oid resulttype; /* resolved result type */
	int16 resulttypeLen;
	bool resulttypeByVal;

	Oid combinefn_oid;
	Oid serialfn_oid;   /* valid only for internal transtypes */
	Oid deserialfn_oid; /* valid only for internal transtypes */
	Oid finalfn_oid;    /* may be InvalidOid */
	bool finalextra;    /* finalfn takes the input arguments too */
	bool initValueIsNull;
	Datum initValue; /* initcond, in cxt (copied before use) */

	/* private */
	MemoryContext cxt; /* holds all of this */
	FmgrInfo combinefn;
	FmgrInfo serialfn;
	FmgrInfo deserialfn;
	FmgrInfo finalfn;
	FmgrInfo sendfn; /* transtype's send, non-internal only */
	FmgrInfo recvfn; /* transtype's receive, non-internal only */
	Oid recv_typioparam;
	Aggref *aggref;                /* what AggGetAggref() reports */
	AggStatePerTransData pertrans; /* curpertrans of callstate */
	AggState *callstate;           /* passed as fcinfo->context */
	ExprContext *scratch;          /* per-call memory ("tmpcontext") */
	ExprContext *transient;        /* states of combine() and final() */
	char fastcodec;                /* AGG_FAST_*: read states without recv */
} StreamprocAggInfo;

/*
 * An accumulator: one transition value being built by combining partial
 * states, as nodeAgg's per-group state is in AGGSPLIT_FINAL_DESERIAL mode.
 * Opaque; see streamproc_agg_accum_create().
 */
typedef struct StreamprocAggAccum StreamprocAggAccum;

/* Module setup, from _PG_init: the streamproc.partial() planner hooks. */
extern void streamproc_aggregates_init(void);

/* Catalog lookup and the incremental-maintenance check. */
extern StreamprocAggInfo *streamproc_agg_lookup(Oid aggfnoid, Oid inputcollid,
												int nargs, Oid *argtypes);
extern void streamproc_agg_release(StreamprocAggInfo *info);
extern void streamproc_agg_check_combinable(Aggref *aggref);

/* Two states in, one state out; and finalizing one state. */
extern bytea *streamproc_agg_combine(StreamprocAggInfo *info, bytea *a,
									 bytea *b, MemoryContext result_cxt);
extern Datum streamproc_agg_final(StreamprocAggInfo *info, bytea *state,
								  bool *isnull);

/* Many states in: combine them without serializing in between. */
extern StreamprocAggAccum *streamproc_agg_accum_create(StreamprocAggInfo *info,
													   MemoryContext cxt);
extern void streamproc_agg_accum_add(StreamprocAggAccum *acc, bytea *state);
extern bytea *streamproc_agg_accum_serialize(StreamprocAggAccum *acc,
											 MemoryContext result_cxt);
extern Datum streamproc_agg_accum_final(StreamprocAggAccum *acc, bool *isnull);
extern void streamproc_agg_accum_free(StreamprocAggAccum *acc);

/*
 * The same on states given as byte ranges (the contents of a bytea, as
 * packed values hold them; len -1 is "no state").  Results are appended to
 * out without a varlena header; the functions return false, appending
 * nothing, when the result is "no state".
 */
extern bool streamproc_agg_combine_raw(StreamprocAggInfo *info,
									   const char *a, int alen,
									   const char *b, int blen,
									   StringInfo out);
extern Datum streamproc_agg_final_raw(StreamprocAggInfo *info,
									  const char *data, int len, bool *isnull);
extern void streamproc_agg_accum_add_raw(StreamprocAggAccum *acc,
										 const char *data, int len);
extern bool streamproc_agg_accum_serialize_raw(StreamprocAggAccum *acc,
											   StringInfo out);

#endif /* STREAMPROC_AGGREGATES_H */
