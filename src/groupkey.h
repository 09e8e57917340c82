/*-------------------------------------------------------------------------
 *
 * groupkey.h
 *	  Group keys: the byte string that identifies a group of a continuous
 *	  view (see groupkey.c).
 *
 *-------------------------------------------------------------------------
 */
#ifndef STREAMPROC_GROUPKEY_H
#define STREAMPROC_GROUPKEY_H

#include "postgres.h"

#include "fmgr.h"
#include "lib/stringinfo.h"

/* One field of a key, as groupkey_split() finds it. */
typedef struct GroupKeyField
{
	const char *data; /* the value's bytes; NULL when isnull */
	uint32 len;
	bool isnull;
} GroupKeyField;

/*
 * Split the key [key, key + len) of ncols group columns into its fields,
 * pointing into the key.  Returns false when the bytes are not such a
 * key.  Pure C.
 */
extern bool groupkey_split(const char *key, size_t len, int ncols,
						   GroupKeyField *fields);

#ifndef STREAMPROC_FRONTEND

/*
 * How to encode and decode the keys of one list of group column types:
 * built once per view by groupkey_codec_create(), in a memory context that
 * must outlive its uses.
 */
typedef struct GroupKeyCodec GroupKeyCodec;

extern GroupKeyCodec *groupkey_codec_create(int ncols, const Oid *types);
extern int groupkey_codec_ncols(const GroupKeyCodec *codec);

/* Append the key of (values, isnull) to buf. */
extern void groupkey_encode(GroupKeyCodec *codec, const Datum *values,
							const bool *isnull, StringInfo buf);

/*
 * Decode a key into values and isnull (pass-by-reference values palloc'd
 * in CurrentMemoryContext).  A key that is not one of this codec's raises
 * an error.
 */
extern void groupkey_decode(GroupKeyCodec *codec, const char *key, size_t len,
							Datum *values, bool *isnull);

#endif /* STREAMPROC_FRONTEND */

#endif /* STREAMPROC_GROUPKEY_H */
