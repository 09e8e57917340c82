/*-------------------------------------------------------------------------
 *
 * combine.c
 *	  Combining and finalizing packed states: what the ingest workers do to
 *	  merge a batch into a group, and readers to merge the slots of a group
 *	  and finalize it.
 *
 * A packed value (packed.c) holds one partial state per aggregate of a
 * view; everything here works aggregate by aggregate through
 * aggregates.c, on the states' bytes where they are (in a packed value,
 * in shared memory copied out, in a checkpoint run), without copying them
 * into bytea values first.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "catalog/pg_type.h"
#include "utils/memutils.h"

#include "combine.h"
#include "packed.h"

/* Scratch space for one combine call, kept for the process's lifetime. */
static StringInfoData scratch;
static PackedState *scratch_states;
static int scratch_nstates;

static void
corrupt_state(void)
{
	ereport(ERROR,
			(errcode(ERRCODE_DATA_CORRUPTED),
			 errmsg("corrupt partial state in continuous view state")));
}

/* Room for n states in the scratch arrays. */
static PackedState *
scratch_for(int n)
{
	if (scratch.data == NULL)
	{
		MemoryContext old = MemoryContextSwitchTo(TopMemoryContext);

		initStringInfo(&scratch);
		MemoryContextSwitchTo(old);
	}
	if (n * 3 > scratch_nstates)
	{
		scratch_nstates = Max(n * 3, 16);
		if (scratch_states)
			pfree(scratch_states);
		scratch_states = MemoryContextAlloc(TopMemoryContext,
											sizeof(PackedState) * scratch_nstates);
	}
	return scratch_states;
}

/*
 * streamproc_view_aggs
 *		Look up a view's aggregates from its catalog row's aggregates
 *		(regprocedure[]), agg_collations (oid[]) and agg_argtypes
 *		(oidvector[]: the actual argument types, which resolve polymorphic
 *		aggregates), in CurrentMemoryContext.
 */
ViewAggs *
streamproc_view_aggs(ArrayType *aggregates, ArrayType *collations,
					 ArrayType *argtypes)
{
	ViewAggs *va = palloc0(sizeof(ViewAggs));
	Datum *aggs;
	Datum *colls;
	Datum *types;
	int ncolls;
	int ntypes;
	int i;

	deconstruct_array(collations, OIDOID, sizeof(Oid), true, TYPALIGN_INT,
					  &colls, NULL, &ncolls);
	deconstruct_array(argtypes, OIDVECTOROID, -1, false, TYPALIGN_INT,
					  &types, NULL, &ntypes);
	deconstruct_array(aggregates, OIDOID, sizeof(Oid), true, TYPALIGN_INT,
					  &aggs, NULL, &va->nagg);
	if (ncolls != va->nagg || ntypes != va->nagg)
		elog(ERROR, "streamproc.views row has %d aggregates, %d collations and %d argument type lists",
			 va->nagg, ncolls, ntypes);
	va->aggs = palloc0(sizeof(StreamprocAggInfo *) * Max(va->nagg, 1));
	for (i = 0; i < va->nagg; i++)
	{
		oidvector *args = (oidvector *)DatumGetPointer(types[i]);

		va->aggs[i] = streamproc_agg_lookup(DatumGetObjectId(aggs[i]),
											DatumGetObjectId(colls[i]),
											args->dim1, args->values);
	}
	return va;
}

void
streamproc_combine_packed(ViewAggs *va, const char *a, size_t alen,
						  const char *b, size_t blen, StringInfo out)
{
	PackedState *sa;
	PackedState *sb;

	if (a == NULL && b == NULL)
		elog(ERROR, "nothing to combine");
	if (a == NULL || b == NULL)
	{
		if (a == NULL)
			appendBinaryStringInfo(out, b, blen);
		else
			appendBinaryStringInfo(out, a, alen);
		return;
	}
	sa = scratch_for(va->nagg);
	sb = sa + va->nagg;
	if (!packed_split(a, alen, va->nagg, sa) || !packed_split(b, blen, va->nagg, sb))
		corrupt_state();
	streamproc_combine_states(va, sa, sb, out);
}

void
streamproc_combine_states(ViewAggs *va, const PackedState *sa,
						  const PackedState *sb, StringInfo out)
{
	PackedState res[16];
	PackedState *r = va->nagg <= lengthof(res) ? res : palloc(sizeof(PackedState) * va->nagg);
	int offsets_buf[16];
	int *offsets = va->nagg <= lengthof(offsets_buf) ? offsets_buf : palloc(sizeof(int) * va->nagg);
	int i;

	(void)scratch_for(va->nagg);
	resetStringInfo(&scratch);
	for (i = 0; i < va->nagg; i++)
	{
		offsets[i] = scratch.len;
		r[i].isnull = !streamproc_agg_combine_raw(va->aggs[i],
												  sa[i].data, sa[i].isnull ? -1 : (int)sa[i].len,
												  sb[i].data, sb[i].isnull ? -1 : (int)sb[i].len,
												  &scratch);
		r[i].len = scratch.len - offsets[i];
	}
	/* (scratch may have moved while it grew) */
	for (i = 0; i < va->nagg; i++)
		r[i].data = r[i].isnull ? NULL : scratch.data + offsets[i];
	packed_append(out, va->nagg, r);
	if (r != res)
		pfree(r);
	if (offsets != offsets_buf)
		pfree(offsets);
}

void
streamproc_packed_accum_init(PackedAccum *pa, ViewAggs *va, MemoryContext cxt)
{
	memset(pa, 0, sizeof(PackedAccum));
	pa->va = va;
	pa->cxt = cxt;
}

static void
accum_add_states(PackedAccum *pa, const char *data, size_t len)
{
	PackedState *states = scratch_for(pa->va->nagg);
	int i;

	if (!packed_split(data, len, pa->va->nagg, states))
		corrupt_state();
	for (i = 0; i < pa->va->nagg; i++)
		streamproc_agg_accum_add_raw(pa->accs[i], states[i].data,
									 states[i].isnull ? -1 : (int)states[i].len);
}

void
streamproc_packed_accum_add(PackedAccum *pa, const char *data, size_t len)
{
	int i;

	if (data == NULL)
		return;
	if (pa->count == 0)
	{
		pa->first = data;
		pa->firstlen = len;
		pa->count = 1;
		return;
	}
	if (pa->count == 1)
	{
		pa->accs = MemoryContextAlloc(pa->cxt, sizeof(StreamprocAggAccum *) * Max(pa->va->nagg, 1));
		for (i = 0; i < pa->va->nagg; i++)
			pa->accs[i] = streamproc_agg_accum_create(pa->va->aggs[i], pa->cxt);
		accum_add_states(pa, pa->first, pa->firstlen);
	}
	accum_add_states(pa, data, len);
	pa->count++;
}

bool
streamproc_packed_accum_result(PackedAccum *pa, StringInfo out)
{
	PackedState *res;
	int *offsets;
	int i;

	if (pa->count == 0)
		return false;
	if (pa->count == 1)
	{
		appendBinaryStringInfo(out, pa->first, pa->firstlen);
		pa->count = 0;
		pa->first = NULL;
		return true;
	}
	res = scratch_for(pa->va->nagg);
	offsets = palloc(sizeof(int) * Max(pa->va->nagg, 1));
	resetStringInfo(&scratch);
	for (i = 0; i < pa->va->nagg; i++)
	{
		offsets[i] = scratch.len;
		res[i].isnull = !streamproc_agg_accum_serialize_raw(pa->accs[i], &scratch);
		res[i].len = scratch.len - offsets[i];
		streamproc_agg_accum_free(pa->accs[i]);
	}
	for (i = 0; i < pa->va->nagg; i++)
		res[i].data = res[i].isnull ? NULL : scratch.data + offsets[i];
	packed_append(out, pa->va->nagg, res);
	pfree(offsets);
	pfree(pa->accs);
	pa->accs = NULL;
	pa->count = 0;
	pa->first = NULL;
	return true;
}

void
streamproc_packed_final(ViewAggs *va, const char *data, size_t len,
						Datum *values, bool *isnull)
{
	PackedState *states = scratch_for(va->nagg);
	int i;

	if (data == NULL)
	{
		/* no state in any slot: the aggregates over no rows */
		for (i = 0; i < va->nagg; i++)
			values[i] = streamproc_agg_final_raw(va->aggs[i], NULL, -1, &isnull[i]);
		return;
	}
	if (!packed_split(data, len, va->nagg, states))
		corrupt_state();
	for (i = 0; i < va->nagg; i++)
		values[i] = streamproc_agg_final_raw(va->aggs[i], states[i].data,
											 states[i].isnull ? -1 : (int)states[i].len,
											 &isnull[i]);
}
