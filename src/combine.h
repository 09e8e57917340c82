/*-------------------------------------------------------------------------
 *
 * combine.h
 *	  Combining packed states of a view's aggregates (see combine.c).
 *
 *-------------------------------------------------------------------------
 */
#ifndef STREAMPROC_COMBINE_H
#define STREAMPROC_COMBINE_H

#include "postgres.h"

#include "lib/stringinfo.h"
#include "utils/array.h"

#include "aggregates.h"
#include "packed.h"

/* A view's aggregates, as its states need them. */
typedef struct ViewAggs
{
	int nagg;
	StreamprocAggInfo **aggs;
} ViewAggs;

extern ViewAggs *streamproc_view_aggs(ArrayType *aggregates,
									  ArrayType *collations,
									  ArrayType *argtypes);

/*
 * Combine the packed values a and b (a NULL pointer: none) and append the
 * packed result to out.
 */
extern void streamproc_combine_packed(ViewAggs *va, const char *a, size_t alen,
									  const char *b, size_t blen,
									  StringInfo out);

/* The same on values already split (packed.h). */
extern void streamproc_combine_states(ViewAggs *va, const PackedState *a,
									  const PackedState *b, StringInfo out);

/*
 * Combining many packed values (a merged session, a window from its
 * slices, the slots of a group): one accumulator per aggregate, so each
 * state is deserialized once and the result serialized once.  A single
 * value is passed through untouched.
 */
typedef struct PackedAccum
{
	ViewAggs *va;
	int count;         /* values added */
	const char *first; /* the only one while count is 1 (not copied) */
	size_t firstlen;
	StreamprocAggAccum **accs; /* per aggregate, once count > 1 */
	MemoryContext cxt;
} PackedAccum;

extern void streamproc_packed_accum_init(PackedAccum *pa, ViewAggs *va,
										 MemoryContext cxt);
/* Add a value; it must stay valid until the result is taken. */
extern void streamproc_packed_accum_add(PackedAccum *pa, const char *data,
										size_t len);
/* Append the combined value to out (false: nothing was added); resets pa. */
extern bool streamproc_packed_accum_result(PackedAccum *pa, StringInfo out);

/* The final value of each aggregate of a packed value (NULL: none). */
extern void streamproc_packed_final(ViewAggs *va, const char *data, size_t len,
									Datum *values, bool *isnull);

#endif /* STREAMPROC_COMBINE_H */
