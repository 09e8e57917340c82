/*-------------------------------------------------------------------------
 *
 * varint.h
 *	  Unsigned variable-length integers (LEB128) for the engine's byte
 *	  formats: group keys (groupkey.c), packed states (packed.c) and
 *	  checkpoint runs (statestore.c).
 *
 * Seven bits per byte, least significant first, high bit set on every
 * byte but the last: lengths below 128 take one byte.  Pure C, so that the
 * fuzzers build the decoders as the server does.
 *
 *-------------------------------------------------------------------------
 */
#ifndef STREAMPROC_VARINT_H
#define STREAMPROC_VARINT_H

#include <stddef.h>
#include <stdint.h>

/* Most bytes a varint of a uint64 takes. */
#define VARINT_MAX_BYTES 10

/* Write v at buf (which has room for VARINT_MAX_BYTES); return bytes used. */
static inline int
varint_put(char *buf, uint64_t v)
{
	int n = 0;

	while (v >= 0x80)
	{
		buf[n++] = (char)((v & 0x7F) | 0x80);
		v >>= 7;
	}
	buf[n++] = (char)v;
	return n;
}

/* Bytes varint_put() would write for v. */
static inline int
varint_size(uint64_t v)
{
	int n = 1;

	while (v >= 0x80)
	{
		v >>= 7;
		n++;
	}
	return n;
}

/*
 * Read a varint from [*p, end).  Returns false, leaving *p alone, when the
 * bytes end before the varint does, it does not fit in 64 bits, or it is
 * not in its shortest form (a last byte of 0 after others): varint_put()
 * writes only that, and group keys are compared byte for byte, so every
 * value must have one encoding.
 */
static inline bool
varint_get(const char **p, const char *end, uint64_t *v)
{
	const unsigned char *s = (const unsigned char *)*p;
	uint64_t result = 0;
	int shift = 0;

	while ((const char *)s < end)
	{
		unsigned char b = *s++;

		if (shift == 63 && b > 1)
			return false;
		result |= (uint64_t)(b & 0x7F) << shift;
		if ((b & 0x80) == 0)
		{
			if (b == 0 && shift > 0)
				return false;
			*p = (const char *)s;
			*v = result;
			return true;
		}
		shift += 7;
		if (shift > 63)
			return false;
	}
	return false;
}

#endif /* STREAMPROC_VARINT_H */
