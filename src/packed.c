/*-------------------------------------------------------------------------
 *
 * packed.c
 *	  The byte format of packed states.
 *
 * A continuous view keeps, per group and per state slot (ingest worker),
 * the partial state of each of its aggregates (aggregates.c: the
 * serialization function's output for internal transition types, the
 * transition type's binary send output otherwise).  The states of one
 * group and slot travel together as one packed value:
 *
 *		varint  number of aggregates n
 *		n times:
 *			varint  0 when the aggregate has no state (no input yet),
 *					else the state's length + 1
 *			bytes   the state
 *
 * Packed values are what the group maps hold in shared memory
 * (groupmap.c), what checkpoint runs store (statestore.c) and what readers
 * finalize (viewscan.c); this file is the only one that knows the layout.
 * Combining packed values is combine.c's.
 *
 * The decoder is pure C and checks every length against the bytes it has:
 * packed values come back from tables, and the fuzzers feed it arbitrary
 * bytes.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "packed.h"
#include "varint.h"

bool
packed_split(const char *data, size_t len, int nagg, PackedState *states)
{
	const char *p = data;
	const char *end = data + len;
	uint64_t n;
	int i;

	if (!varint_get(&p, end, &n) || n != (uint64_t)nagg)
		return false;
	for (i = 0; i < nagg; i++)
	{
		uint64_t l;

		if (!varint_get(&p, end, &l))
			return false;
		if (l == 0)
		{
			states[i].data = NULL;
			states[i].len = 0;
			states[i].isnull = true;
			continue;
		}
		l--;
		if (l > (uint64_t)(end - p) || l > PG_UINT32_MAX)
			return false;
		states[i].data = p;
		states[i].len = (uint32)l;
		states[i].isnull = false;
		p += l;
	}
	return p == end;
}

size_t
packed_size(int nagg, const PackedState *states)
{
	size_t size = varint_size((uint64_t)nagg);
	int i;

	for (i = 0; i < nagg; i++)
	{
		if (states[i].isnull)
			size += 1;
		else
			size += varint_size((uint64_t)states[i].len + 1) + states[i].len;
	}
	return size;
}

void
packed_append(StringInfo buf, int nagg, const PackedState *states)
{
	char *p;
	int i;

	enlargeStringInfo(buf, (int)packed_size(nagg, states));
	p = buf->data + buf->len;
	p += varint_put(p, (uint64_t)nagg);
	for (i = 0; i < nagg; i++)
	{
		if (states[i].isnull)
		{
			*p++ = 0;
			continue;
		}
		p += varint_put(p, (uint64_t)states[i].len + 1);
		memcpy(p, states[i].data, states[i].len);
		p += states[i].len;
	}
	buf->len = (int)(p - buf->data);
	buf->data[buf->len] = '\0';
}
