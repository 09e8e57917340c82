/*-------------------------------------------------------------------------
 *
 * text.c
 *	  Fuzz target: the COPY text scanner of src/msgscan.c.
 *
 * Each input is one message, scanned with three setups: sql/parse.sql's
 * pdef (4 columns, tab), its ptypes (13 columns, '|'), and one column
 * (',').  Beyond what fuzz_scan checks:
 *
 * - the scanner accepts exactly what a naive model of the format
 *   (model_text, written from the description in src/msgscan.c) accepts,
 *   and finds the same fields;
 * - a line that scans survives a round trip: written back as COPY would
 *   write it (backslash, line breaks and the delimiter escaped, NULL as
 *   \N) it scans to the same fields.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include <stdint.h>

#include "mb/pg_wchar.h"

#include "msgscan_fuzz.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* Write the payload fields of sc as one line of COPY text into out. */
static void
write_text(const MsgScanner *sc, StringInfo out)
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

			for (i = 0; i < f->len; i++)
			{
				if (s[i] == '\n')
					appendStringInfoString(out, "\\n");
				else if (s[i] == '\r')
					appendStringInfoString(out, "\\r");
				else
				{
					if (s[i] == '\\' || s[i] == sc->delimiter)
						appendStringInfoChar(out, '\\');
					appendStringInfoChar(out, s[i]);
				}
			}
		}
		else
			appendStringInfoString(out, "\\N");
	}
}

#define MAX_FIELDS 16

static int
hexdigit(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

/*
 * The format, one byte at a time: fields separated by the delimiter d,
 * ending at a line break; a backslash takes the next byte: b f n r t v
 * are control characters, 1 to 3 octal digits or x and 1 or 2 hex digits
 * a byte, anything else (the delimiter, a backslash, a line break) itself;
 * a backslash at the very end is bad; the raw field \N is NULL; a field
 * with bytes from octal or hex escapes must be valid UTF-8 without NUL;
 * one line break may end the line, nothing may follow it.  Fills the first
 * MAX_FIELDS fields and returns the number of fields, or -1 for a bad
 * line.
 */
static int
model_text(const char *s, size_t len, char d, FuzzModelField *fields)
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
		size_t start = i;
		bool bytes = false;

		resetStringInfo(out);
		while (i < len && s[i] != d && s[i] != '\n' && s[i] != '\r')
		{
			char c = s[i++];

			if (c == '\\')
			{
				int v;
				int k;

				if (i >= len)
					return -1;
				c = s[i++];
				if (c >= '0' && c <= '7')
				{
					v = c - '0';
					for (k = 0; k < 2 && i < len && s[i] >= '0' && s[i] <= '7'; k++)
						v = v * 8 + (s[i++] - '0');
					c = (char)(v & 0xff);
					bytes = true;
				}
				else if (c == 'x' && i < len && hexdigit(s[i]) >= 0)
				{
					v = hexdigit(s[i++]);
					if (i < len && hexdigit(s[i]) >= 0)
						v = v * 16 + hexdigit(s[i++]);
					c = (char)v;
					bytes = true;
				}
				else if (c == 'b')
					c = '\b';
				else if (c == 'f')
					c = '\f';
				else if (c == 'n')
					c = '\n';
				else if (c == 'r')
					c = '\r';
				else if (c == 't')
					c = '\t';
				else if (c == 'v')
					c = '\v';
			}
			appendStringInfoChar(out, c);
		}
		if (f)
		{
			f->isnull = i - start == 2 && s[start] == '\\' && s[start + 1] == 'N';
			if (!f->isnull && bytes &&
				pg_encoding_verifymbstr(PG_UTF8, out->data, out->len) != out->len)
				return -1;
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
run(const char *data, size_t size, char delimiter, FuzzColumns columns)
{
	static StringInfoData again;
	static FuzzModelField model[MAX_FIELDS];
	MsgScanner *sc = fuzz_scanner(STREAMPROC_FORMAT_TEXT, delimiter, '\0',
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
			   model_text(data, size, delimiter, model) == sc->npayload;
	if (ok != model_ok)
		fuzz_fail("text: the scanner %s, the model %s (%s)",
				  ok ? "accepts" : "refuses", model_ok ? "accepts" : "refuses",
				  ok ? "" : err.message);
	if (!ok)
		return;
	fuzz_same_as_model(sc, model, "text model");
	if (again.data == NULL)
		initStringInfo(&again);
	write_text(sc, &again);
	sc2 = fuzz_scanner(STREAMPROC_FORMAT_TEXT, delimiter, '\0', columns, 1);
	if (!fuzz_scan(sc2, again.data, again.len, &err))
		fuzz_fail("text round trip: \"%s\" does not scan: %s", again.data,
				  err.message);
	fuzz_same_fields(sc, sc2, "text round trip");
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	run((const char *)data, size, '\t', FUZZ_COLS_PDEF);
	run((const char *)data, size, '|', FUZZ_COLS_PTYPES);
	run((const char *)data, size, ',', FUZZ_COLS_ONE);
	return 0;
}
