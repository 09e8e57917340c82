/*-------------------------------------------------------------------------
 *
 * msgscan.c
 *	  Message scanners: phase 1 of the message parsers for the json, csv
 *	  and COPY text formats (see src/parse.c for the parsers as a whole,
 *	  their two phases and the error design).
 *
 * A scanner takes one payload, untrusted bytes from Kafka, and checks
 * everything that needs no type input function: UTF-8 validity of the
 * whole payload (Kafka payloads are UTF-8; NUL bytes are rejected, as COPY
 * does), the format's syntax and the field count.  Each field's text is
 * written NUL-terminated into one per-message arena (a StringInfo reused
 * across messages); MsgFields point into it by offset.  No palloc per
 * field.  Errors come back as false plus a StreamprocParseError with the
 * byte offset; nothing throws.
 *
 * Formats
 *
 * json: one object per message (RFC 8259).  A hand-written, single-pass,
 * non-recursive scanner (objects, arrays, strings with every escape,
 * \uXXXX with surrogate pairs to UTF-8, numbers, true/false/null, depth
 * limit JSON_MAX_DEPTH, trailing data rejected).  pg_parse_json was not
 * used: its lexer allocates every key and de-escaped string with palloc
 * and calls back per token, and its errors do not give a position; ours
 * copies each used value once into the arena and skips unused values
 * without copying.  Keys match column names exactly (byte-wise, so case
 * sensitive: an unquoted column name is stored in lower case, so key
 * "UserId" does not fill column userid); keys that match no payload
 * column (metadata columns are not payload columns) are ignored; a
 * repeated key: the last one wins.  Values: strings de-escaped, numbers
 * and true/false as their literal text, null is NULL; objects and arrays
 * as their raw JSON text.  json/jsonb columns get the raw JSON text of any
 * value (a string stays a JSON string), null gives SQL NULL.  A JSON array
 * for an array column becomes an array literal ([1,[2]] -> {1,{2}},
 * strings quoted, objects quoted as JSON text), so int[] columns accept
 * JSON arrays.  Then the input function accepts or rejects the text.
 *
 * csv: RFC 4180, one record per message, fields in the order of the
 * payload columns.  Delimiter and quote are single bytes; a quote inside
 * a quoted field is doubled; a quote in an unquoted field is an error;
 * line breaks only inside quotes, plus one optional trailing \n or \r\n.
 * Empty unquoted field: NULL; "" : the empty string.
 *
 * text: PostgreSQL COPY text format, one line: delimiter (tab by
 * default), \N for NULL (the whole raw field), escapes \b \f \n \r \t \v
 * \\, octal \NNN, hex \xHH, a backslash before any other byte gives that
 * byte; a de-escaped field that contains bytes from escapes is validated
 * as UTF-8 (so \000 is an error, as in COPY).
 *
 * Pure C files
 *
 * This file is built twice: into streamproc.so, and by fuzz/Makefile into
 * standalone libFuzzer targets (fuzz/json.c, fuzz/csv.c, fuzz/text.c),
 * without a server.  So it keeps to what exists outside the backend: it
 * includes postgres.h for the types and macros, and calls only functions
 * of libpgcommon and libpgport (StringInfo, the pg_wchar encoding
 * functions, snprintf, palloc, which fe_memutils provides there) plus the
 * few backend functions that fuzz/shim.c stands in for (check_stack_depth,
 * ExceptionalCondition).  No ereport, no catalog, no SQL, no GUC: a call
 * to anything else fails to link in `make fuzz`, which CI runs.  Other
 * decoders of untrusted bytes follow the same pattern (docs/development.md,
 * "Fuzzing").
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "lib/stringinfo.h"
#include "mb/pg_wchar.h"
#include "miscadmin.h"

#include "msgscan.h"

/*
 * Deepest nesting of JSON arrays and objects accepted in a value of the
 * message's object (the object itself is not counted: a message nests at
 * most JSON_MAX_DEPTH + 1 levels).
 */
#define JSON_MAX_DEPTH 256

/* Cursor of the JSON scanner. */
typedef struct JsonCursor
{
	const char *start;
	const char *p;
	const char *end;
	StreamprocParseError *err;
} JsonCursor;

/* JSON scalar kinds. */
typedef enum JsonKind
{
	JSON_BAD = -1,
	JSON_STRING,
	JSON_NUMBER,
	JSON_TRUE,
	JSON_FALSE,
	JSON_NULL
} JsonKind;

static bool scan_json(MsgScanner *sc, const char *data, size_t len,
					  StreamprocParseError *err);
static bool scan_csv(MsgScanner *sc, const char *data, size_t len,
					 StreamprocParseError *err);
static bool scan_text(MsgScanner *sc, const char *data, size_t len,
					  StreamprocParseError *err);

/* ------------------------------------------------------------------------
 * Setup and entry points
 * ------------------------------------------------------------------------
 */

static uint32 name_hash(const char *name, int len);

/*
 * msgscan_init
 *		See msgscan.h.
 */
void
msgscan_init(MsgScanner *sc, StreamprocFormat format, char delimiter,
			 char quote, int ncols, const MsgScanColumn *cols, int npayload,
			 const int *payload)
{
	uint32 hsize;
	int i;

	memset(sc, 0, sizeof(*sc));
	sc->format = format;
	sc->delimiter = delimiter;
	sc->quote = quote;
	sc->ncols = ncols;
	sc->cols = cols;
	sc->fields = palloc0(sizeof(MsgField) * Max(ncols, 1));
	sc->npayload = npayload;
	sc->payload = palloc(sizeof(int) * Max(npayload, 1));
	if (npayload > 0)
		memcpy(sc->payload, payload, sizeof(int) * npayload);

	/* name lookup of the payload columns: open addressing, load <= 1/2 */
	for (hsize = 8; hsize < (uint32)npayload * 2; hsize <<= 1)
		;
	sc->hash = palloc(sizeof(int) * hsize);
	sc->hashmask = hsize - 1;
	memset(sc->hash, -1, sizeof(int) * hsize);
	for (i = 0; i < npayload; i++)
	{
		const MsgScanColumn *pc = &cols[payload[i]];
		uint32 h = name_hash(pc->name, pc->namelen) & sc->hashmask;

		while (sc->hash[h] >= 0)
			h = (h + 1) & sc->hashmask;
		sc->hash[h] = payload[i];
	}

	initStringInfo(&sc->arena);
	initStringInfo(&sc->keybuf);
	initStringInfo(&sc->scratch);
}

/*
 * msgscan_begin
 *		See msgscan.h.
 */
void
msgscan_begin(MsgScanner *sc)
{
	memset(sc->fields, 0, sizeof(MsgField) * sc->ncols);
	resetStringInfo(&sc->arena);
}

/*
 * msgscan_payload
 *		See msgscan.h.
 */
bool
msgscan_payload(MsgScanner *sc, const char *data, size_t len,
				StreamprocParseError *err)
{
	int valid;

	valid = len > 0 ? pg_encoding_verifymbstr(PG_UTF8, data, (int)len) : 0;
	if (valid < (int)len)
	{
		if (data[valid] == '\0')
			return msgscan_error(err, ERRCODE_CHARACTER_NOT_IN_REPERTOIRE, valid,
								 InvalidAttrNumber,
								 "message contains a NUL byte at byte %d", valid);
		return msgscan_error(err, ERRCODE_CHARACTER_NOT_IN_REPERTOIRE, valid,
							 InvalidAttrNumber,
							 "message is not valid UTF-8: invalid byte sequence at byte %d",
							 valid);
	}

	switch (sc->format)
	{
		case STREAMPROC_FORMAT_JSON:
			return scan_json(sc, data, len, err);
		case STREAMPROC_FORMAT_CSV:
			return scan_csv(sc, data, len, err);
		default:
			return scan_text(sc, data, len, err);
	}
}

/*
 * msgscan_error
 *		See msgscan.h.
 */
bool
msgscan_error(StreamprocParseError *err, int code, int offset,
			  AttrNumber attnum, const char *fmt, ...)
{
	va_list ap;

	err->sqlerrcode = code;
	err->offset = offset;
	err->attnum = attnum;
	va_start(ap, fmt);
	vsnprintf(err->message, sizeof(err->message), fmt, ap);
	va_end(ap);
	return false;
}

/* ------------------------------------------------------------------------
 * Small helpers
 * ------------------------------------------------------------------------
 */

static uint32
name_hash(const char *name, int len)
{
	uint32 h = 2166136261u;
	int i;

	for (i = 0; i < len; i++)
		h = (h ^ (unsigned char)name[i]) * 16777619u;
	return h;
}

/*
 * lookup_column
 *		Index of the payload column named name (exact match), or -1.
 */
static int
lookup_column(MsgScanner *sc, const char *name, int len)
{
	uint32 h = name_hash(name, len) & sc->hashmask;

	while (sc->hash[h] >= 0)
	{
		const MsgScanColumn *pc = &sc->cols[sc->hash[h]];

		if (pc->namelen == len && memcmp(pc->name, name, len) == 0)
			return sc->hash[h];
		h = (h + 1) & sc->hashmask;
	}
	return -1;
}

/* Is s..end exactly one line terminator (\n, \r or \r\n)? */
static inline bool
final_newline(const char *s, const char *end)
{
	if (s + 1 == end)
		return *s == '\n' || *s == '\r';
	return s + 2 == end && s[0] == '\r' && s[1] == '\n';
}

/* ------------------------------------------------------------------------
 * JSON scanner
 * ------------------------------------------------------------------------
 */

#define JPEEK(c) ((c)->p < (c)->end ? *(c)->p : '\0')

static inline void
json_ws(JsonCursor *c)
{
	while (c->p < c->end &&
		   (*c->p == ' ' || *c->p == '\t' || *c->p == '\n' || *c->p == '\r'))
		c->p++;
}

/* Error at byte at. */
static bool
json_fail_at(JsonCursor *c, const char *at, const char *what)
{
	return msgscan_error(c->err, ERRCODE_INVALID_TEXT_REPRESENTATION,
						 (int)(at - c->start), InvalidAttrNumber,
						 "invalid JSON at byte %d: %s", (int)(at - c->start), what);
}

/* "expected X" at the cursor, or "unexpected end of input". */
static bool
json_expected(JsonCursor *c, const char *what)
{
	char buf[128];

	if (c->p >= c->end)
		snprintf(buf, sizeof(buf), "unexpected end of input, expected %s", what);
	else
		snprintf(buf, sizeof(buf), "expected %s", what);
	return json_fail_at(c, c->p, buf);
}

static int
hex4(const char *s)
{
	int v = 0;
	int i;

	for (i = 0; i < 4; i++)
	{
		char ch = s[i];

		v <<= 4;
		if (ch >= '0' && ch <= '9')
			v |= ch - '0';
		else if (ch >= 'a' && ch <= 'f')
			v |= ch - 'a' + 10;
		else if (ch >= 'A' && ch <= 'F')
			v |= ch - 'A' + 10;
		else
			return -1;
	}
	return v;
}

/*
 * json_string
 *		Scan the string at the cursor (on its opening quote); de-escape it
 *		into out unless out is NULL (validation only).  The payload is
 *		known to be valid UTF-8 without NUL bytes.
 */
static bool
json_string(JsonCursor *c, StringInfo out)
{
	c->p++;
	for (;;)
	{
		const char *run = c->p;
		const char *esc;
		char ch;

		while (c->p < c->end && (unsigned char)*c->p >= 0x20 &&
			   *c->p != '"' && *c->p != '\\')
			c->p++;
		if (out && c->p > run)
			appendBinaryStringInfo(out, run, c->p - run);
		if (c->p >= c->end)
			return json_fail_at(c, c->p, "unterminated string");
		ch = *c->p;
		if (ch == '"')
		{
			c->p++;
			return true;
		}
		if (ch != '\\')
			return json_fail_at(c, c->p, "control character in a string must be escaped");
		esc = c->p++;
		if (c->p >= c->end)
			return json_fail_at(c, c->p, "unterminated string");
		ch = *c->p++;
		switch (ch)
		{
			case '"':
			case '\\':
			case '/':
				break;
			case 'b':
				ch = '\b';
				break;
			case 'f':
				ch = '\f';
				break;
			case 'n':
				ch = '\n';
				break;
			case 'r':
				ch = '\r';
				break;
			case 't':
				ch = '\t';
				break;
			case 'u':
			{
				int cp;
				unsigned char utf8[8];

				if (c->end - c->p < 4 || (cp = hex4(c->p)) < 0)
					return json_fail_at(c, esc, "invalid \\u escape: expected four hexadecimal digits");
				c->p += 4;
				if (cp >= 0xD800 && cp <= 0xDBFF)
				{
					int lo;

					if (c->end - c->p < 6 || c->p[0] != '\\' || c->p[1] != 'u' ||
						(lo = hex4(c->p + 2)) < 0xDC00 || lo > 0xDFFF)
						return json_fail_at(c, esc, "Unicode high surrogate must be followed by a low surrogate");
					c->p += 6;
					cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00);
				}
				else if (cp >= 0xDC00 && cp <= 0xDFFF)
					return json_fail_at(c, esc, "Unicode low surrogate must follow a high surrogate");
				if (out)
				{
					if (cp == 0)
						return msgscan_error(c->err, ERRCODE_UNTRANSLATABLE_CHARACTER,
											 (int)(esc - c->start), InvalidAttrNumber,
											 "invalid JSON at byte %d: \\u0000 cannot be converted to text",
											 (int)(esc - c->start));
					unicode_to_utf8((pg_wchar)cp, utf8);
					appendBinaryStringInfo(out, (char *)utf8, pg_utf_mblen(utf8));
				}
				continue;
			}
			default:
				return json_fail_at(c, esc, "invalid escape sequence");
		}
		if (out)
			appendStringInfoChar(out, ch);
	}
}

/* Scan a number at the cursor (RFC 8259 grammar). */
static bool
json_number(JsonCursor *c)
{
	const char *start = c->p;

#define JDIGIT() (c->p < c->end && *c->p >= '0' && *c->p <= '9')
	if (JPEEK(c) == '-')
		c->p++;
	if (JPEEK(c) == '0')
		c->p++;
	else if (JDIGIT())
	{
		while (JDIGIT())
			c->p++;
	}
	else
		return json_fail_at(c, start, "invalid number");
	if (JPEEK(c) == '.')
	{
		c->p++;
		if (!JDIGIT())
			return json_fail_at(c, start, "invalid number");
		while (JDIGIT())
			c->p++;
	}
	if (JPEEK(c) == 'e' || JPEEK(c) == 'E')
	{
		c->p++;
		if (JPEEK(c) == '+' || JPEEK(c) == '-')
			c->p++;
		if (!JDIGIT())
			return json_fail_at(c, start, "invalid number");
		while (JDIGIT())
			c->p++;
	}
#undef JDIGIT
	return true;
}

/* Scan a scalar at the cursor; out as in json_string for strings. */
static JsonKind
json_scalar(JsonCursor *c, StringInfo out)
{
	switch (JPEEK(c))
	{
		case '"':
			return json_string(c, out) ? JSON_STRING : JSON_BAD;
		case '-':
		case '0':
		case '1':
		case '2':
		case '3':
		case '4':
		case '5':
		case '6':
		case '7':
		case '8':
		case '9':
			return json_number(c) ? JSON_NUMBER : JSON_BAD;
		case 't':
			if (c->end - c->p >= 4 && memcmp(c->p, "true", 4) == 0)
			{
				c->p += 4;
				return JSON_TRUE;
			}
			break;
		case 'f':
			if (c->end - c->p >= 5 && memcmp(c->p, "false", 5) == 0)
			{
				c->p += 5;
				return JSON_FALSE;
			}
			break;
		case 'n':
			if (c->end - c->p >= 4 && memcmp(c->p, "null", 4) == 0)
			{
				c->p += 4;
				return JSON_NULL;
			}
			break;
		default:
			break;
	}
	json_expected(c, "a JSON value");
	return JSON_BAD;
}

/* An object key and its colon, at the cursor. */
static bool
json_key(JsonCursor *c, StringInfo out)
{
	if (JPEEK(c) != '"')
		return json_expected(c, "a string (an object key)");
	if (!json_string(c, out))
		return false;
	json_ws(c);
	if (JPEEK(c) != ':')
		return json_expected(c, "':'");
	c->p++;
	return true;
}

/*
 * json_skip_value
 *		Validate the value at the cursor and move past it, without
 *		recursion.
 */
static bool
json_skip_value(JsonCursor *c)
{
	char stack[JSON_MAX_DEPTH];
	int depth = 0;

	for (;;)
	{
		char ch;

		json_ws(c);
		ch = JPEEK(c);
		if (ch == '{' || ch == '[')
		{
			if (depth >= JSON_MAX_DEPTH)
			{
				char buf[64];

				snprintf(buf, sizeof(buf), "nesting deeper than %d levels",
						 JSON_MAX_DEPTH);
				return json_fail_at(c, c->p, buf);
			}
			stack[depth++] = ch;
			c->p++;
			json_ws(c);
			if (JPEEK(c) == (ch == '{' ? '}' : ']'))
			{
				c->p++;
				depth--;
			}
			else if (ch == '{')
			{
				if (!json_key(c, NULL))
					return false;
				continue;
			}
			else
				continue;
		}
		else if (json_scalar(c, NULL) == JSON_BAD)
			return false;

		/* after a value */
		for (;;)
		{
			char close;

			if (depth == 0)
				return true;
			json_ws(c);
			close = stack[depth - 1] == '{' ? '}' : ']';
			ch = JPEEK(c);
			if (ch == close)
			{
				c->p++;
				depth--;
				continue;
			}
			if (ch != ',')
				return json_expected(c, close == '}' ? "',' or '}'" : "',' or ']'");
			c->p++;
			if (close == '}')
			{
				json_ws(c);
				if (!json_key(c, NULL))
					return false;
			}
			break;
		}
	}
}

/* Append s as a double-quoted element of an array literal. */
static void
append_array_quoted(StringInfo out, const char *s, int len)
{
	int i;

	appendStringInfoChar(out, '"');
	for (i = 0; i < len; i++)
	{
		if (s[i] == '"' || s[i] == '\\')
			appendStringInfoChar(out, '\\');
		appendStringInfoChar(out, s[i]);
	}
	appendStringInfoChar(out, '"');
}

/*
 * json_array_to_pg
 *		Append the array literal for the (already validated) JSON array at
 *		the cursor: [1,"a",null,[2]] -> {1,"a",NULL,{2}}.  Fails only for
 *		strings that cannot be text (\u0000).
 */
static bool
json_array_to_pg(MsgScanner *sc, JsonCursor *c, StringInfo out)
{
	check_stack_depth();
	c->p++; /* '[' */
	appendStringInfoChar(out, '{');
	json_ws(c);
	if (JPEEK(c) == ']')
	{
		c->p++;
		appendStringInfoChar(out, '}');
		return true;
	}
	for (;;)
	{
		const char *start;
		char ch;

		json_ws(c);
		ch = JPEEK(c);
		start = c->p;
		if (ch == '[')
		{
			if (!json_array_to_pg(sc, c, out))
				return false;
		}
		else if (ch == '{')
		{
			if (!json_skip_value(c))
				return false;
			append_array_quoted(out, start, c->p - start);
		}
		else if (ch == '"')
		{
			resetStringInfo(&sc->scratch);
			if (!json_string(c, &sc->scratch))
				return false;
			append_array_quoted(out, sc->scratch.data, sc->scratch.len);
		}
		else
		{
			JsonKind k = json_scalar(c, NULL);

			if (k == JSON_BAD)
				return false;
			if (k == JSON_NULL)
				appendStringInfoString(out, "NULL");
			else
				appendBinaryStringInfo(out, start, c->p - start);
		}
		json_ws(c);
		if (JPEEK(c) == ',')
		{
			c->p++;
			appendStringInfoChar(out, ',');
			continue;
		}
		c->p++; /* ']' */
		appendStringInfoChar(out, '}');
		return true;
	}
}

/* Store the value at the cursor for column col. */
static bool
json_store_value(MsgScanner *sc, JsonCursor *c, int col)
{
	const MsgScanColumn *pc = &sc->cols[col];
	MsgField *f = &sc->fields[col];
	const char *start = c->p;
	char ch = JPEEK(c);

	if (ch == '{' || ch == '[')
	{
		if (!json_skip_value(c))
			return false;
		if (ch == '[' && pc->is_array)
		{
			JsonCursor sub = {c->start, start, c->p, c->err};

			msgscan_field_begin(sc, f);
			if (!json_array_to_pg(sc, &sub, &sc->arena))
				return false;
			msgscan_field_end(sc, f, FIELD_VALUE);
		}
		else
			msgscan_field_store(sc, f, start, c->p - start);
	}
	else if (ch == '"' && !pc->is_json)
	{
		msgscan_field_begin(sc, f);
		if (!json_string(c, &sc->arena))
			return false;
		msgscan_field_end(sc, f, FIELD_VALUE);
	}
	else
	{
		JsonKind k = json_scalar(c, NULL);

		if (k == JSON_BAD)
			return false;
		if (k == JSON_NULL)
			f->state = FIELD_NULL;
		else
			msgscan_field_store(sc, f, start, c->p - start);
	}
	return true;
}

/*
 * scan_json
 *		Phase 1 for one JSON object.
 */
static bool
scan_json(MsgScanner *sc, const char *data, size_t len,
		  StreamprocParseError *err)
{
	JsonCursor c = {data, data, data + len, err};
	char ch;

	json_ws(&c);
	ch = JPEEK(&c);
	if (ch != '{')
	{
		const char *what = NULL;

		if (ch == '[')
			what = "an array";
		else if (ch == '"')
			what = "a string";
		else if (ch == '-' || (ch >= '0' && ch <= '9'))
			what = "a number";
		else if (ch == 't' || ch == 'f')
			what = "a boolean";
		else if (ch == 'n')
			what = "null";
		if (c.p >= c.end)
			return json_fail_at(&c, c.p, "the message is empty");
		if (what != NULL)
			return msgscan_error(err, ERRCODE_INVALID_TEXT_REPRESENTATION,
								 (int)(c.p - data), InvalidAttrNumber,
								 "a JSON message must be an object, not %s", what);
		return json_expected(&c, "'{'");
	}
	c.p++;
	json_ws(&c);
	if (JPEEK(&c) == '}')
		c.p++;
	else
		for (;;)
		{
			int col;

			resetStringInfo(&sc->keybuf);
			if (!json_key(&c, &sc->keybuf))
				return false;
			col = lookup_column(sc, sc->keybuf.data, sc->keybuf.len);
			json_ws(&c);
			if (col < 0)
			{
				if (!json_skip_value(&c))
					return false;
			}
			else if (!json_store_value(sc, &c, col))
				return false;
			json_ws(&c);
			ch = JPEEK(&c);
			if (ch == ',')
			{
				c.p++;
				json_ws(&c);
				continue;
			}
			if (ch == '}')
			{
				c.p++;
				break;
			}
			return json_expected(&c, "',' or '}'");
		}
	json_ws(&c);
	if (c.p < c.end)
		return json_fail_at(&c, c.p, "expected end of message after the object");
	return true;
}

/* ------------------------------------------------------------------------
 * CSV and COPY text scanners
 * ------------------------------------------------------------------------
 */

static bool
delimited_error(StreamprocParseError *err, const char *fmt_name,
				const char *data, const char *at, const char *what)
{
	return msgscan_error(err, ERRCODE_BAD_COPY_FILE_FORMAT, (int)(at - data),
						 InvalidAttrNumber, "invalid %s at byte %d: %s", fmt_name,
						 (int)(at - data), what);
}

static bool
field_count_error(MsgScanner *sc, StreamprocParseError *err, int found)
{
	return msgscan_error(err, ERRCODE_BAD_COPY_FILE_FORMAT, -1, InvalidAttrNumber,
						 "wrong number of fields: expected %d, found %d",
						 sc->npayload, found);
}

/*
 * scan_csv
 *		Phase 1 for one RFC 4180 record.
 */
static bool
scan_csv(MsgScanner *sc, const char *data, size_t len,
		 StreamprocParseError *err)
{
	const char *s = data;
	const char *end = data + len;
	char d = sc->delimiter;
	char q = sc->quote;
	int nfields = 0;

	for (;;)
	{
		MsgField *f = nfields < sc->npayload ? &sc->fields[sc->payload[nfields]] : NULL;
		const char *fstart = s;

		if (s < end && *s == q)
		{
			s++;
			if (f)
				msgscan_field_begin(sc, f);
			for (;;)
			{
				const char *run = s;

				while (s < end && *s != q)
					s++;
				if (f)
					appendBinaryStringInfo(&sc->arena, run, s - run);
				if (s >= end)
					return delimited_error(err, "CSV", data, fstart,
										   "unterminated quoted field");
				s++;
				if (s < end && *s == q)
				{
					if (f)
						appendStringInfoChar(&sc->arena, q);
					s++;
					continue;
				}
				break;
			}
			if (f)
				msgscan_field_end(sc, f, FIELD_VALUE);
		}
		else
		{
			while (s < end && *s != d && *s != q && *s != '\n' && *s != '\r')
				s++;
			if (s < end && *s == q)
				return delimited_error(err, "CSV", data, s,
									   "quote character in an unquoted field");
			if (f)
			{
				if (s == fstart)
					f->state = FIELD_NULL;
				else
					msgscan_field_store(sc, f, fstart, s - fstart);
			}
		}
		nfields++;
		if (s >= end)
			break;
		if (*s == d)
		{
			s++;
			continue;
		}
		if (*s == '\n' || *s == '\r')
		{
			if (final_newline(s, end))
				break;
			return delimited_error(err, "CSV", data, s,
								   "line break outside quotes (a message holds one record)");
		}
		return delimited_error(err, "CSV", data, s,
							   "expected a delimiter or the end of the record after a closing quote");
	}
	if (nfields != sc->npayload)
		return field_count_error(sc, err, nfields);
	return true;
}

static inline int
hexval(char ch)
{
	if (ch >= '0' && ch <= '9')
		return ch - '0';
	if (ch >= 'a' && ch <= 'f')
		return ch - 'a' + 10;
	if (ch >= 'A' && ch <= 'F')
		return ch - 'A' + 10;
	return -1;
}

/*
 * scan_text
 *		Phase 1 for one line of COPY text format.
 */
static bool
scan_text(MsgScanner *sc, const char *data, size_t len,
		  StreamprocParseError *err)
{
	const char *s = data;
	const char *end = data + len;
	char d = sc->delimiter;
	int nfields = 0;

	for (;;)
	{
		MsgField *f = nfields < sc->npayload ? &sc->fields[sc->payload[nfields]] : NULL;
		const char *fstart = s;
		bool escaped_bytes = false;

		if (f)
			msgscan_field_begin(sc, f);
		for (;;)
		{
			const char *run = s;
			char ch;

			while (s < end && *s != d && *s != '\\' && *s != '\n' && *s != '\r')
				s++;
			if (f)
				appendBinaryStringInfo(&sc->arena, run, s - run);
			if (s >= end || *s != '\\')
				break;
			if (s + 1 >= end)
				return delimited_error(err, "text", data, s,
									   "backslash at the end of the message");
			s++;
			ch = *s++;
			switch (ch)
			{
				case '0':
				case '1':
				case '2':
				case '3':
				case '4':
				case '5':
				case '6':
				case '7':
				{
					int val = ch - '0';

					if (s < end && *s >= '0' && *s <= '7')
					{
						val = (val << 3) + (*s++ - '0');
						if (s < end && *s >= '0' && *s <= '7')
							val = (val << 3) + (*s++ - '0');
					}
					ch = (char)(val & 0377);
					escaped_bytes = true;
					break;
				}
				case 'x':
					if (s < end && hexval(*s) >= 0)
					{
						int val = hexval(*s++);

						if (s < end && hexval(*s) >= 0)
							val = (val << 4) + hexval(*s++);
						ch = (char)(val & 0xff);
						escaped_bytes = true;
					}
					break;
				case 'b':
					ch = '\b';
					break;
				case 'f':
					ch = '\f';
					break;
				case 'n':
					ch = '\n';
					break;
				case 'r':
					ch = '\r';
					break;
				case 't':
					ch = '\t';
					break;
				case 'v':
					ch = '\v';
					break;
				default:
					break;
			}
			if (f)
				appendStringInfoChar(&sc->arena, ch);
		}
		if (f)
		{
			if (s - fstart == 2 && fstart[0] == '\\' && fstart[1] == 'N')
			{
				sc->arena.len = f->off;
				sc->arena.data[sc->arena.len] = '\0';
				f->state = FIELD_NULL;
			}
			else
			{
				msgscan_field_end(sc, f, FIELD_VALUE);
				if (escaped_bytes &&
					pg_encoding_verifymbstr(PG_UTF8, sc->arena.data + f->off,
											f->len) != f->len)
					return msgscan_error(err, ERRCODE_CHARACTER_NOT_IN_REPERTOIRE,
										 (int)(fstart - data), InvalidAttrNumber,
										 "invalid text at byte %d: escapes give a byte sequence that is not valid UTF-8 (or a NUL byte)",
										 (int)(fstart - data));
			}
		}
		nfields++;
		if (s >= end)
			break;
		if (*s == d)
		{
			s++;
			continue;
		}
		/* a line break */
		if (final_newline(s, end))
			break;
		return delimited_error(err, "text", data, s,
							   "line break in the message (a message holds one line; write \\n)");
	}
	if (nfields != sc->npayload)
		return field_count_error(sc, err, nfields);
	return true;
}
