/*-------------------------------------------------------------------------
 *
 * worker.h
 *	  Ingest worker (see worker.c): packed states shared with the reader.
 *
 *-------------------------------------------------------------------------
 */
#ifndef STREAMPROC_WORKER_H
#define STREAMPROC_WORKER_H

#include "postgres.h"

#include "utils/array.h"

#include "aggregates.h"

extern bytea **streamproc_unpack_states(bytea *packed, int n);
extern StreamprocAggInfo **streamproc_lookup_view_aggs(ArrayType *aggregates,
													   ArrayType *collations,
													   ArrayType *argtypes,
													   int *nagg);
extern bytea *streamproc_combine_packed(StreamprocAggInfo **aggs, int nagg,
										bytea *a, bytea *b);

/* Combining many packed states (see worker.c). */
typedef struct PackedAccum
{
	StreamprocAggInfo **aggs;
	int nagg;
	int count;                 /* states added */
	bytea *first;              /* the only one while count is 1 */
	StreamprocAggAccum **accs; /* per aggregate, once count > 1 */
	MemoryContext cxt;
} PackedAccum;

extern void streamproc_packed_accum_init(PackedAccum *pa, StreamprocAggInfo **aggs,
										 int nagg, MemoryContext cxt);
extern void streamproc_packed_accum_add(PackedAccum *pa, bytea *packed);
extern bytea *streamproc_packed_accum_result(PackedAccum *pa);

#endif /* STREAMPROC_WORKER_H */
