/*-------------------------------------------------------------------------
 *
 * csv.c
 *	  Fuzz target: the csv scanner of src/msgscan.c.
 *
 * Each input is one message, scanned with three setups: sql/parse.sql's
 * pdef (4 columns, ',' and '"'), its ptypes (13 columns, ';' and '\''),
 * and one column ('|' and '"').  Beyond what fuzz_scan checks:
 *
 * - the scanner accepts exactly what a naive model of the format
 *   (model_csv, written from the description in src/msgscan.c) accepts,
 *   and finds the same fields;
 * - a record that scans survives a round trip: written back as CSV (every
 *   value quoted, NULL as an empty field) it scans to the same fields.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include <stdint.h>

#include "mb/pg_wchar.h"

#include "msgscan_fuzz.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* Write the payload fields of sc as one CSV record into out. */
static void
write_csv(const MsgScanner *sc, StringInfo out)
{
	int k;

	resetStringInfo(out);
	for (k = 0; k < sc->npayload; k++)
	{
		const MsgField *f = &sc->fields[sc->payload[k]];

		if (k > 0)
			appendStringInfoChar(out, sc->delimiter);
		if (f->state == FIELD_VALUE)
		{
			const char *s = FUZZ_FIELD_TEXT(sc, f);
			int i;

			appendStringInfoChar(out, sc->quote);
			for (i = 0; i < f->len; i++)
			{
				if (s[i] == sc->quote)
					appendStringInfoChar(out, sc->quote);
				appendStringInfoChar(out, s[i]);
			}
			appendStringInfoChar(out, sc->quote);
		}
	}
}

#define MAX_FIELDS 16

/*
 * The format, one byte at a time: one record of RFC 4180 with delimiter d
 * and quote q; a quoted field ends at a quote not followed by another
 * (a doubled quote is one quote), and must be followed by the delimiter
 * or the end; an unquoted field ends at the delimiter or a line break and
 * holds no quote, and is NULL when empty; one line break may end the
 * record, nothing may follow it.  Fills the first MAX_FIELDS fields and
 * returns the number of fields, or -1 for a bad record.
 */
static int
model_csv(const char *s, size_t len, char d, char q, FuzzModelField *fields)
{
	static StringInfoData junk; /* fields past MAX_FIELDS */
	size_t i = 0;
	int n = 0;

	if (junk.data == NULL)
		initStringInfo(&junk);
	for (;;)
	{
		FuzzModelField *f = n < MAX_FIELDS ? &fields[n] : NULL;
		StringInfo out = f ? &f->text : &junk;

		resetStringInfo(&junk);
		if (f)
		{
			resetStringInfo(&f->text);
			f->isnull = false;
		}
		if (i < len && s[i] == q)
		{
			i++;
			for (;;)
			{
				if (i >= len)
					return -1;
				if (s[i] == q)
				{
					if (i + 1 < len && s[i + 1] == q)
					{
						appendStringInfoChar(out, q);
						i += 2;
						continue;
					}
					i++;
					break;
				}
				appendStringInfoChar(out, s[i++]);
			}
		}
		else
		{
			size_t start = i;

			while (i < len && s[i] != d && s[i] != '\n' && s[i] != '\r')
			{
				if (s[i] == q)
					return -1;
				appendStringInfoChar(out, s[i++]);
			}
			if (f && i == start)
				f->isnull = true;
		}
		n++;
		if (i == len)
			return n;
		if (s[i] == d)
		{
			i++;
			continue;
		}
		if ((len - i == 1 && (s[i] == '\n' || s[i] == '\r')) ||
			(len - i == 2 && s[i] == '\r' && s[i + 1] == '\n'))
			return n;
		return -1;
	}
}

static void
run(const char *data, size_t size, char delimiter, char quote,
	FuzzColumns columns)
{
	static StringInfoData again;
	static FuzzModelField model[MAX_FIELDS];
	MsgScanner *sc = fuzz_scanner(STREAMPROC_FORMAT_CSV, delimiter, quote,
								  columns, 0);
	MsgScanner *sc2;
	StreamprocParseError err;
	bool ok;
	bool model_ok;
	int k;

	if (model[0].text.data == NULL)
		for (k = 0; k < MAX_FIELDS; k++)
			initStringInfo(&model[k].text);
	ok = fuzz_scan(sc, data, size, &err);
	model_ok = (size == 0 || pg_encoding_verifymbstr(PG_UTF8, data, (int)size) == (int)size) &&
			   model_csv(data, size, delimiter, quote, model) == sc->npayload;
	if (ok != model_ok)
		fuzz_fail("csv: the scanner %s, the model %s (%s)",
				  ok ? "accepts" : "refuses", model_ok ? "accepts" : "refuses",
				  ok ? "" : err.message);
	if (!ok)
		return;
	fuzz_same_as_model(sc, model, "csv model");
	if (again.data == NULL)
		initStringInfo(&again);
	write_csv(sc, &again);
	sc2 = fuzz_scanner(STREAMPROC_FORMAT_CSV, delimiter, quote, columns, 1);
	if (!fuzz_scan(sc2, again.data, again.len, &err))
		fuzz_fail("csv round trip: \"%s\" does not scan: %s", again.data,
				  err.message);
	fuzz_same_fields(sc, sc2, "csv round trip");
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	run((const char *)data, size, ',', '"', FUZZ_COLS_PDEF);
	run((const char *)data, size, ';', '\'', FUZZ_COLS_PTYPES);
	run((const char *)data, size, '|', '"', FUZZ_COLS_ONE);
	return 0;
}
