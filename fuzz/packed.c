/*-------------------------------------------------------------------------
 *
 * packed.c
 *	  Fuzz target: the packed states of src/packed.c, which come back from
 *	  tables (checkpoint runs, closed windows).
 *
 * The first byte of an input is the number of aggregates (0 .. 255), the
 * rest a packed value, split with packed_split() from a buffer of exactly
 * its size (ASan catches a read past it).  Checked:
 *
 * - a split value's states lie inside it, in order, one after the other;
 *   a state without data is NULL with length 0; and packed_size() and
 *   packed_append() give back exactly the bytes that were split (the
 *   format has one encoding per value);
 * - the other way round, states cut from the input bytes, packed with
 *   packed_append(), split back to the same states, with packed_size()
 *   bytes; the value minus its last byte, plus a byte, or split for one
 *   aggregate more or less, is refused.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include <stdint.h>
#include <stdlib.h>

#include "lib/stringinfo.h"

#include "fuzz.h"
#include "packed.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define MAX_AGGS 256

/* Check the states that packed_split found in [value, value + len). */
static void
check_split(const char *value, size_t len, int nagg, const PackedState *states)
{
	const char *next = value;
	const char *end = value + len;
	StringInfoData buf;
	int i;

	for (i = 0; i < nagg; i++)
	{
		const PackedState *s = &states[i];

		if (s->isnull)
		{
			if (s->data != NULL || s->len != 0)
				fuzz_fail("state %d is NULL but has data or length %u", i,
						  s->len);
			continue;
		}
		if (s->data == NULL || s->data < next || s->data > end ||
			s->len > (size_t)(end - s->data))
			fuzz_fail("state %d (%u bytes at %d) is not after the previous "
					  "one inside the value of %zu bytes",
					  i, s->len, s->data ? (int)(s->data - value) : -1, len);
		next = s->data + s->len;
	}
	if (packed_size(nagg, states) != len)
		fuzz_fail("packed_size %zu for a split value of %zu bytes",
				  packed_size(nagg, states), len);
	initStringInfo(&buf);
	packed_append(&buf, nagg, states);
	if ((size_t)buf.len != len || memcmp(buf.data, value, len) != 0)
		fuzz_fail("a split value of %zu bytes packs again to %d other bytes",
				  len, buf.len);
	pfree(buf.data);
}

/* Split a private copy of [data, data + len), of exactly len bytes. */
static bool
split_copy(const char *data, size_t len, int nagg, PackedState *states,
		   char **copy)
{
	*copy = malloc(len > 0 ? len : 1);
	if (*copy == NULL)
		abort();
	memcpy(*copy, data, len);
	return packed_split(*copy, len, nagg, states);
}

/* Pack states cut from the input, then split them back. */
static void
round_trip(const uint8_t *data, size_t size, int nagg)
{
	PackedState in[MAX_AGGS];
	PackedState out[MAX_AGGS + 1];
	const uint8_t *p = data;
	const uint8_t *end = data + size;
	StringInfoData buf;
	char *copy;
	int i;

	for (i = 0; i < nagg; i++)
	{
		size_t l;

		in[i].isnull = p >= end || *p % 8 == 0;
		if (in[i].isnull)
		{
			in[i].data = NULL;
			in[i].len = 0;
			if (p < end)
				p++;
			continue;
		}
		/* lengths up to 255 * 3, so that some take a two-byte varint */
		l = (*p % 8 == 1) ? 0 : (size_t)*p * (*p % 2 ? 3 : 1);
		p++;
		if (l > (size_t)(end - p))
			l = end - p;
		in[i].data = (const char *)p;
		in[i].len = (uint32)l;
		p += l;
	}

	initStringInfo(&buf);
	packed_append(&buf, nagg, in);
	if ((size_t)buf.len != packed_size(nagg, in))
		fuzz_fail("packed_append wrote %d bytes, packed_size says %zu",
				  buf.len, packed_size(nagg, in));
	if (!split_copy(buf.data, buf.len, nagg, out, &copy))
		fuzz_fail("a packed value of %d states does not split", nagg);
	for (i = 0; i < nagg; i++)
	{
		if (in[i].isnull != out[i].isnull || in[i].len != out[i].len ||
			(!in[i].isnull && memcmp(in[i].data, out[i].data, in[i].len) != 0))
			fuzz_fail("state %d of %d does not split as packed", i, nagg);
	}
	check_split(copy, buf.len, nagg, out);
	free(copy);

	if (split_copy(buf.data, buf.len - 1, nagg, out, &copy))
		fuzz_fail("a packed value of %d states splits without its last byte",
				  nagg);
	free(copy);
	appendStringInfoChar(&buf, (char)(size % 256));
	if (split_copy(buf.data, buf.len, nagg, out, &copy))
		fuzz_fail("a packed value of %d states splits with a byte more", nagg);
	free(copy);
	buf.len--;
	if (nagg > 0 && split_copy(buf.data, buf.len, nagg - 1, out, &copy))
		fuzz_fail("a packed value of %d states splits as %d", nagg, nagg - 1);
	if (nagg > 0)
		free(copy);
	if (split_copy(buf.data, buf.len, nagg + 1, out, &copy))
		fuzz_fail("a packed value of %d states splits as %d", nagg, nagg + 1);
	free(copy);
	pfree(buf.data);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	PackedState states[MAX_AGGS];
	char *value;
	int nagg;

	if (size < 1)
		return 0;
	nagg = data[0];
	if (split_copy((const char *)data + 1, size - 1, nagg, states, &value))
		check_split(value, size - 1, nagg, states);
	free(value);
	round_trip(data + 1, size - 1, nagg);
	return 0;
}
