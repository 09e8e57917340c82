/*-------------------------------------------------------------------------
 *
 * packed.h
 *	  Packed states: the partial states of all of a view's aggregates for
 *	  one group and one state slot, as one byte string (see packed.c).
 *
 *-------------------------------------------------------------------------
 */
#ifndef STREAMPROC_PACKED_H
#define STREAMPROC_PACKED_H

#include "postgres.h"

#include "lib/stringinfo.h"

/* One aggregate's partial state inside a packed value. */
typedef struct PackedState
{
	const char *data; /* its bytes (not terminated); NULL when isnull */
	uint32 len;
	bool isnull; /* no state: the aggregate had no input */
} PackedState;

/*
 * Split the packed value [data, data + len) into the states of its nagg
 * aggregates, pointing into the value.  Returns false when the bytes are
 * not a packed value of nagg states.
 */
extern bool packed_split(const char *data, size_t len, int nagg,
						 PackedState *states);

/* Append the packed value of nagg states to buf. */
extern void packed_append(StringInfo buf, int nagg, const PackedState *states);

/* Bytes packed_append() would append. */
extern size_t packed_size(int nagg, const PackedState *states);

#endif /* STREAMPROC_PACKED_H */
