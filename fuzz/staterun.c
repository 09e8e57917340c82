/*-------------------------------------------------------------------------
 *
 * staterun.c
 *	  Fuzz target: the checkpoint runs of src/statestore.c (the data column
 *	  of streamproc.state_runs), read with run_next().
 *
 * An input is a run, read from a buffer of exactly its size (ASan catches
 * a read past it) with run_next() until it returns false.  Checked:
 *
 * - each group read lies inside the run, right after the previous one,
 *   its key before its state; a tombstone has state NULL and length -1;
 *   run_entry_size() is the bytes the group took; *corrupt is false;
 * - run_next() returns false with *pos left alone, and with *corrupt set
 *   exactly when bytes remain (a run ends only at its end);
 * - a run read without corruption is written again by run_append() to the
 *   same bytes (one encoding per run);
 * - the other way round, groups cut from the input, appended with
 *   run_append(), read back the same; without its last byte, the run
 *   reads as corrupt at its last group.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include <stdint.h>
#include <stdlib.h>

#include "lib/stringinfo.h"

#include "fuzz.h"
#include "statestore.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define MAX_GROUPS 4096

typedef struct Group
{
	const char *key;
	uint32 keylen;
	const char *state;
	int64 statelen;
} Group;

/*
 * Read the run [data, data + len) (of exactly len bytes) into groups (at
 * most MAX_GROUPS, then only checked), checking each; write it again into
 * out unless out is NULL.  Returns the number of groups read, and whether
 * the run was corrupt.
 */
static int
read_run(const char *data, size_t len, Group *groups, StringInfo out,
		 bool *corrupt)
{
	size_t pos = 0;
	int n = 0;

	for (;;)
	{
		size_t before = pos;
		Group g;

		*corrupt = true; /* run_next must clear it */
		g.key = g.state = (const char *)&g;
		g.keylen = 0x7f7f7f7f;
		g.statelen = -2;
		if (!run_next(data, len, &pos, &g.key, &g.keylen, &g.state,
					  &g.statelen, corrupt))
		{
			if (pos != before)
				fuzz_fail("run_next moved *pos from %zu to %zu and returned "
						  "false",
						  before, pos);
			if (*corrupt != (pos < len))
				fuzz_fail("run_next returned false at %zu of %zu bytes with "
						  "corrupt %d",
						  pos, len, (int)*corrupt);
			return n;
		}
		if (*corrupt)
			fuzz_fail("run_next read a group at %zu and set corrupt", before);
		if (pos <= before || pos > len)
			fuzz_fail("run_next moved *pos from %zu to %zu in a run of %zu "
					  "bytes",
					  before, pos, len);
		if (g.key < data + before || g.keylen > (size_t)(data + pos - g.key))
			fuzz_fail("key of %u bytes at %d outside the group [%zu, %zu)",
					  g.keylen, (int)(g.key - data), before, pos);
		if (g.statelen == -1)
		{
			if (g.state != NULL)
				fuzz_fail("tombstone at %zu with a state", before);
		}
		else if (g.statelen < 0 || g.statelen > PG_UINT32_MAX ||
				 g.state == NULL || g.state < g.key + g.keylen ||
				 g.state + g.statelen != data + pos)
			fuzz_fail("state of %lld bytes at %d outside the group "
					  "[%zu, %zu)",
					  (long long)g.statelen,
					  g.state ? (int)(g.state - data) : -1, before, pos);
		if (run_entry_size(g.keylen, g.statelen) != pos - before)
			fuzz_fail("group at %zu took %zu bytes, run_entry_size says %zu",
					  before, pos - before,
					  run_entry_size(g.keylen, g.statelen));
		if (out)
			run_append(out, g.key, g.keylen, g.state, (uint32)Max(g.statelen, 0));
		if (n < MAX_GROUPS)
			groups[n] = g;
		n++;
	}
}

/* A private copy of [data, data + len), of exactly len bytes. */
static char *
copy_of(const char *data, size_t len)
{
	char *copy = malloc(len > 0 ? len : 1);

	if (copy == NULL)
		abort();
	memcpy(copy, data, len);
	return copy;
}

/* Append groups cut from the input to a run, then read them back. */
static void
round_trip(const uint8_t *data, size_t size, Group *in, Group *out)
{
	const uint8_t *p = data;
	const uint8_t *end = data + size;
	StringInfoData run;
	size_t expect = 0;
	char *copy;
	bool corrupt;
	int n = 0;
	int got;
	int i;

	initStringInfo(&run);
	while (p < end && n < MAX_GROUPS)
	{
		uint8_t b = *p++;
		size_t kl = b & 0x0f;
		size_t sl = (b >> 5) * 40; /* up to 280: two-byte varints */

		if (kl > (size_t)(end - p))
			kl = end - p;
		in[n].key = (const char *)p;
		in[n].keylen = (uint32)kl;
		p += kl;
		if (b & 0x10)
		{
			in[n].state = NULL;
			in[n].statelen = -1;
		}
		else
		{
			if (sl > (size_t)(end - p))
				sl = end - p;
			in[n].state = (const char *)p;
			in[n].statelen = (int64)sl;
			p += sl;
		}
		run_append(&run, in[n].key, in[n].keylen, in[n].state,
				   (uint32)Max(in[n].statelen, 0));
		expect += run_entry_size(in[n].keylen, in[n].statelen);
		n++;
	}
	if ((size_t)run.len != expect)
		fuzz_fail("run_append wrote %d bytes, run_entry_size says %zu",
				  run.len, expect);

	copy = copy_of(run.data, run.len);
	got = read_run(copy, run.len, out, NULL, &corrupt);
	if (corrupt || got != n)
		fuzz_fail("a run of %d groups reads as %d, corrupt %d", n, got,
				  (int)corrupt);
	for (i = 0; i < n; i++)
	{
		if (in[i].keylen != out[i].keylen ||
			memcmp(in[i].key, out[i].key, in[i].keylen) != 0 ||
			in[i].statelen != out[i].statelen ||
			(in[i].statelen > 0 &&
			 memcmp(in[i].state, out[i].state, in[i].statelen) != 0))
			fuzz_fail("group %d of %d does not read back as appended", i, n);
	}
	free(copy);

	if (n > 0)
	{
		copy = copy_of(run.data, run.len - 1);
		got = read_run(copy, run.len - 1, out, NULL, &corrupt);
		if (!corrupt || got != n - 1)
			fuzz_fail("a run of %d groups without its last byte reads as %d, "
					  "corrupt %d",
					  n, got, (int)corrupt);
		free(copy);
	}
	pfree(run.data);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static Group groups[MAX_GROUPS];
	static Group more[MAX_GROUPS];
	StringInfoData out;
	char *run = copy_of((const char *)data, size);
	bool corrupt;

	initStringInfo(&out);
	read_run(run, size, groups, &out, &corrupt);
	if (!corrupt &&
		((size_t)out.len != size || memcmp(out.data, run, size) != 0))
		fuzz_fail("a run of %zu bytes is written again as %d other bytes",
				  size, out.len);
	free(run);
	pfree(out.data);
	round_trip(data, size, groups, more);
	return 0;
}
