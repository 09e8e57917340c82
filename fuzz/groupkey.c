/*-------------------------------------------------------------------------
 *
 * groupkey.c
 *	  Fuzz target: the framing of group keys, groupkey_split() of
 *	  src/groupkey.c, and the varints of src/varint.h that every stored
 *	  byte format uses.
 *
 * The first byte of an input is the number of group columns (0 .. 255),
 * the rest a key, split from a buffer of exactly its size (ASan catches a
 * read past it).  Checked:
 *
 * - a split key's fields lie inside it, in order, one after the other; a
 *   NULL field has no data and length 0; written again with the format's
 *   framing (encode_key below, from the description in src/groupkey.c;
 *   the server's encoder is backend code) they give back exactly the key;
 * - the other way round, fields cut from the input, framed, split back
 *   the same; the key minus its last byte, plus a byte, or split for one
 *   column more or less, is refused;
 * - varint_get(), over the whole input read as varints, agrees with
 *   model_varint (written from the description in src/varint.h: LEB128
 *   of a uint64, in its shortest form, which is what varint_put writes),
 *   leaves *p alone when it fails, and what it reads varint_put() and
 *   varint_size() write back to the same bytes.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include <stdint.h>
#include <stdlib.h>

#include "lib/stringinfo.h"

#include "fuzz.h"
#include "groupkey.h"
#include "varint.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define MAX_COLS 256

/* Frame fields as src/groupkey.c describes. */
static void
encode_key(StringInfo buf, int ncols, const GroupKeyField *fields)
{
	int i;

	for (i = 0; i < ncols; i++)
	{
		char head[VARINT_MAX_BYTES];

		if (fields[i].isnull)
		{
			appendStringInfoChar(buf, 0);
			continue;
		}
		appendStringInfoChar(buf, 1);
		appendBinaryStringInfo(buf, head, varint_put(head, fields[i].len));
		appendBinaryStringInfo(buf, fields[i].data, fields[i].len);
	}
}

/* Check the fields that groupkey_split found in [key, key + len). */
static void
check_split(const char *key, size_t len, int ncols,
			const GroupKeyField *fields)
{
	const char *next = key;
	const char *end = key + len;
	StringInfoData buf;
	int i;

	for (i = 0; i < ncols; i++)
	{
		const GroupKeyField *f = &fields[i];

		if (f->isnull)
		{
			if (f->data != NULL || f->len != 0)
				fuzz_fail("field %d is NULL but has data or length %u", i,
						  f->len);
			continue;
		}
		if (f->data == NULL || f->data <= next || f->data > end ||
			f->len > (size_t)(end - f->data))
			fuzz_fail("field %d (%u bytes at %d) is not after the previous "
					  "one inside the key of %zu bytes",
					  i, f->len, f->data ? (int)(f->data - key) : -1, len);
		next = f->data + f->len;
	}
	initStringInfo(&buf);
	encode_key(&buf, ncols, fields);
	if ((size_t)buf.len != len || memcmp(buf.data, key, len) != 0)
		fuzz_fail("a split key of %zu bytes frames again to %d other bytes",
				  len, buf.len);
	pfree(buf.data);
}

/* Split a private copy of [data, data + len), of exactly len bytes. */
static bool
split_copy(const char *data, size_t len, int ncols, GroupKeyField *fields,
		   char **copy)
{
	*copy = malloc(len > 0 ? len : 1);
	if (*copy == NULL)
		abort();
	memcpy(*copy, data, len);
	return groupkey_split(*copy, len, ncols, fields);
}

/* Frame fields cut from the input, then split them back. */
static void
round_trip(const uint8_t *data, size_t size, int ncols)
{
	GroupKeyField in[MAX_COLS];
	GroupKeyField out[MAX_COLS + 1];
	const uint8_t *p = data;
	const uint8_t *end = data + size;
	StringInfoData buf;
	char *copy;
	int i;

	for (i = 0; i < ncols; i++)
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
		l = (*p % 8 == 1) ? 0 : (size_t)*p * (*p % 2 ? 3 : 1);
		p++;
		if (l > (size_t)(end - p))
			l = end - p;
		in[i].data = (const char *)p;
		in[i].len = (uint32)l;
		p += l;
	}

	initStringInfo(&buf);
	encode_key(&buf, ncols, in);
	if (!split_copy(buf.data, buf.len, ncols, out, &copy))
		fuzz_fail("a key of %d fields does not split", ncols);
	for (i = 0; i < ncols; i++)
	{
		if (in[i].isnull != out[i].isnull || in[i].len != out[i].len ||
			(!in[i].isnull && memcmp(in[i].data, out[i].data, in[i].len) != 0))
			fuzz_fail("field %d of %d does not split as framed", i, ncols);
	}
	check_split(copy, buf.len, ncols, out);
	free(copy);

	if (buf.len > 0 && split_copy(buf.data, buf.len - 1, ncols, out, &copy))
		fuzz_fail("a key of %d fields splits without its last byte", ncols);
	if (buf.len > 0)
		free(copy);
	appendStringInfoChar(&buf, (char)(size % 256));
	if (split_copy(buf.data, buf.len, ncols, out, &copy))
		fuzz_fail("a key of %d fields splits with a byte more", ncols);
	free(copy);
	buf.len--;
	if (ncols > 0 && split_copy(buf.data, buf.len, ncols - 1, out, &copy))
		fuzz_fail("a key of %d fields splits as %d", ncols, ncols - 1);
	if (ncols > 0)
		free(copy);
	if (split_copy(buf.data, buf.len, ncols + 1, out, &copy))
		fuzz_fail("a key of %d fields splits as %d", ncols, ncols + 1);
	free(copy);
	pfree(buf.data);
}

/*
 * The varint at [p, end): its value and its bytes, or 0 bytes when there
 * is none (the bytes end first, it is longer than its shortest form, or
 * its value needs more than 64 bits).
 */
static int
model_varint(const uint8_t *p, const uint8_t *end, uint64_t *v)
{
	uint64_t value = 0;
	int i;

	for (i = 0; i < VARINT_MAX_BYTES && p + i < end; i++)
	{
		uint64_t bits = p[i] & 0x7F;

		if (i == VARINT_MAX_BYTES - 1 && bits > 1)
			return 0; /* beyond bit 63 */
		value |= bits << (7 * i);
		if ((p[i] & 0x80) == 0)
		{
			if (i > 0 && p[i] == 0)
				return 0; /* a longer form of a shorter varint */
			*v = value;
			return i + 1;
		}
	}
	return 0;
}

/* Read [data, data + size) as varints, from every offset. */
static void
check_varints(const char *data, size_t size)
{
	const char *end = data + size;
	size_t off;

	for (off = 0; off < size; off++)
	{
		const char *p = data + off;
		uint64_t v = 0x7f7f7f7f7f7f7f7f;
		uint64_t mv = 0;
		int mlen = model_varint((const uint8_t *)p, (const uint8_t *)end, &mv);
		char again[VARINT_MAX_BYTES];

		if (!varint_get(&p, end, &v))
		{
			if (p != data + off)
				fuzz_fail("varint_get failed at %zu and moved *p", off);
			if (mlen != 0)
				fuzz_fail("varint_get failed at %zu, the model reads %d "
						  "bytes",
						  off, mlen);
			continue;
		}
		if (mlen == 0)
			fuzz_fail("varint_get read %d bytes at %zu, the model none",
					  (int)(p - (data + off)), off);
		if (p - (data + off) != mlen || v != mv)
			fuzz_fail("varint_get read %llu in %d bytes at %zu, the model "
					  "%llu in %d",
					  (unsigned long long)v, (int)(p - (data + off)), off,
					  (unsigned long long)mv, mlen);
		if (varint_size(v) != mlen || varint_put(again, v) != mlen ||
			memcmp(again, data + off, mlen) != 0)
			fuzz_fail("varint %llu read from %d bytes at %zu is written "
					  "otherwise",
					  (unsigned long long)v, mlen, off);
	}
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	GroupKeyField fields[MAX_COLS];
	char *key;
	int ncols;

	if (size < 1)
		return 0;
	ncols = data[0];
	if (split_copy((const char *)data + 1, size - 1, ncols, fields, &key))
		check_split(key, size - 1, ncols, fields);
	check_varints(key, size - 1);
	free(key);
	round_trip(data + 1, size - 1, ncols);
	return 0;
}
