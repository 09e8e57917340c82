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

#endif /* STREAMPROC_WORKER_H */
