/*-------------------------------------------------------------------------
 *
 * json.c
 *	  Fuzz target: the JSON scanner of src/msgscan.c, checked against
 *	  PostgreSQL's own JSON parser.
 *
 * Each input is one message, scanned with the columns of sql/parse.sql's
 * ptypes and pdef together (plain, json, jsonb and array columns), a
 * dropped column and a metadata column.  Beyond what fuzz_scan checks,
 * pg_parse_json (libpgcommon's, with de-escaping) is the oracle:
 *
 * - A message is accepted by the scanner if and only if pg_parse_json
 *   accepts it, except where the scanner is stricter by design: the
 *   message must be an object; values nest at most 256 levels below it;
 *   and where pg_parse_json refuses any \u0000, the scanner refuses it
 *   only where it de-escapes (keys, and string values of columns other
 *   than json/jsonb), so it may accept what pg_parse_json refused for
 *   that reason alone.
 * - For each payload column, the last top-level key of its name decides
 *   the field: absent is missing, null is NULL, a string is its
 *   de-escaped text (its raw JSON text for json/jsonb columns), a number,
 *   true or false its literal text, an object or array its raw JSON text,
 *   except that a JSON array for an array column is the array literal
 *   built from pg_parse_json's elements (strings quoted, null NULL),
 *   when it holds no object.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include <limits.h>
#include <stdint.h>

#include "common/jsonapi.h"
#include "mb/pg_wchar.h"

#include "msgscan_fuzz.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
const char *__lsan_default_suppressions(void);
const char *__lsan_default_options(void);

/*
 * pg_parse_json leaks the key or scalar it copied for a callback when the
 * parse fails right after it (frontend code, whose callers exit soon):
 * not the scanner's leaks.  Its static functions are named, since they are
 * inlined into each other and the recursion hides pg_parse_json itself
 * beyond the stack depth a leak report keeps.
 */
const char *
__lsan_default_suppressions(void)
{
	return "leak:pg_parse_json\n"
		   "leak:parse_object_field\n"
		   "leak:parse_object\n"
		   "leak:parse_array_element\n"
		   "leak:parse_array\n"
		   "leak:parse_scalar\n";
}

const char *
__lsan_default_options(void)
{
	return "print_suppressions=0";
}

/* How deep values may nest below the message's object (src/msgscan.c). */
#define SCAN_MAX_DEPTH 256

/* What pg_parse_json says the field of a column is. */
typedef enum OracleState
{
	ORACLE_ABSENT = 0,
	ORACLE_NULL,
	ORACLE_SCALAR,
	ORACLE_NESTED
} OracleState;

typedef struct OracleField
{
	OracleState state;
	JsonTokenType tok;  /* ORACLE_SCALAR */
	char open;          /* ORACLE_NESTED: '{' or '[' */
	StringInfoData val; /* ORACLE_SCALAR: the token; array column: literal */
	bool literal;       /* val holds an array literal */
} OracleField;

#define MAX_LEVELS 8192

typedef struct Oracle
{
	JsonLexContext *lex;
	MsgScanner *sc;
	int maxdepth; /* deepest nesting, the message's object being 1 */
	int col;      /* the column of the current top-level key, or -1 */
	OracleField *fields;
	/* array literal of an array column, while inside its array */
	bool in_array;
	bool array_has_object;
	bool first[MAX_LEVELS]; /* no element yet at this level */
} Oracle;

static int
oracle_lookup(Oracle *o, const char *name)
{
	int k;

	for (k = 0; k < o->sc->npayload; k++)
	{
		const MsgScanColumn *c = &o->sc->cols[o->sc->payload[k]];

		if ((size_t)c->namelen == strlen(name) &&
			memcmp(c->name, name, c->namelen) == 0)
			return o->sc->payload[k];
	}
	return -1;
}

static void
note_depth(Oracle *o)
{
	/* called before the parser enters the new level */
	if (o->lex->lex_level + 1 > o->maxdepth)
		o->maxdepth = o->lex->lex_level + 1;
}

static void
o_field_start(void *state, char *fname, bool isnull)
{
	Oracle *o = state;

	if (o->lex->lex_level == 1)
	{
		o->col = oracle_lookup(o, fname);
		if (o->col >= 0)
		{
			OracleField *f = &o->fields[o->col];

			f->state = isnull ? ORACLE_NULL : ORACLE_ABSENT;
			f->literal = false;
			resetStringInfo(&f->val);
		}
	}
	pfree(fname);
}

static void
o_nested_start(Oracle *o, char open)
{
	note_depth(o);
	if (o->lex->lex_level == 1 && o->col >= 0)
	{
		OracleField *f = &o->fields[o->col];

		f->state = ORACLE_NESTED;
		f->open = open;
		if (open == '[' && o->sc->cols[o->col].is_array)
		{
			o->in_array = true;
			o->array_has_object = false;
			f->literal = true;
		}
	}
	if (o->in_array)
	{
		if (open == '{')
			o->array_has_object = true;
		else
		{
			appendStringInfoChar(&o->fields[o->col].val, '{');
			if (o->lex->lex_level + 1 < MAX_LEVELS)
				o->first[o->lex->lex_level + 1] = true;
		}
	}
}

static void
o_object_start(void *state)
{
	o_nested_start(state, '{');
}

static void
o_array_start(void *state)
{
	o_nested_start(state, '[');
}

static void
o_array_end(void *state)
{
	Oracle *o = state;

	if (!o->in_array)
		return;
	appendStringInfoChar(&o->fields[o->col].val, '}');
	if (o->lex->lex_level == 1)
		o->in_array = false;
}

static void
o_element_start(void *state, bool isnull)
{
	Oracle *o = state;
	int level = o->lex->lex_level;

	if (!o->in_array || level >= MAX_LEVELS)
		return;
	if (!o->first[level])
		appendStringInfoChar(&o->fields[o->col].val, ',');
	o->first[level] = false;
}

static void
o_scalar(void *state, char *token, JsonTokenType tokentype)
{
	Oracle *o = state;

	if (o->in_array)
	{
		StringInfo v = &o->fields[o->col].val;

		if (tokentype == JSON_TOKEN_NULL)
			appendStringInfoString(v, "NULL");
		else if (tokentype == JSON_TOKEN_STRING)
		{
			char *s;

			appendStringInfoChar(v, '"');
			for (s = token; *s; s++)
			{
				if (*s == '"' || *s == '\\')
					appendStringInfoChar(v, '\\');
				appendStringInfoChar(v, *s);
			}
			appendStringInfoChar(v, '"');
		}
		else
			appendStringInfoString(v, token);
	}
	else if (o->lex->lex_level == 1 && o->col >= 0)
	{
		OracleField *f = &o->fields[o->col];

		if (tokentype == JSON_TOKEN_NULL)
			f->state = ORACLE_NULL;
		else
		{
			f->state = ORACLE_SCALAR;
			f->tok = tokentype;
			appendStringInfoString(&f->val, token);
		}
	}
	pfree(token);
}

/* Compare the scanner's field of column i with the oracle's. */
static void
compare_field(Oracle *o, int i)
{
	const MsgScanColumn *c = &o->sc->cols[i];
	const MsgField *f = &o->sc->fields[i];
	const OracleField *of = &o->fields[i];
	const char *text = f->state == FIELD_VALUE ? FUZZ_FIELD_TEXT(o->sc, f) : "";

	switch (of->state)
	{
		case ORACLE_ABSENT:
			if (f->state != FIELD_MISSING)
				fuzz_fail("column \"%s\": absent from the message, but state %d",
						  c->name, (int)f->state);
			return;
		case ORACLE_NULL:
			if (f->state != FIELD_NULL)
				fuzz_fail("column \"%s\": null in the message, but state %d",
						  c->name, (int)f->state);
			return;
		default:
			break;
	}
	if (f->state != FIELD_VALUE)
		fuzz_fail("column \"%s\": a value in the message, but state %d",
				  c->name, (int)f->state);
	if (of->state == ORACLE_NESTED)
	{
		if (of->literal && !o->array_has_object)
		{
			if (strcmp(text, of->val.data) != 0)
				fuzz_fail("column \"%s\": array literal \"%s\", expected \"%s\"",
						  c->name, text, of->val.data);
		}
		else if (text[0] != (of->literal ? '{' : of->open))
			fuzz_fail("column \"%s\": nested value \"%s\" does not start with '%c'",
					  c->name, text, of->literal ? '{' : of->open);
		return;
	}
	if (of->tok == JSON_TOKEN_STRING && c->is_json)
	{
		if (text[0] != '"')
			fuzz_fail("column \"%s\": raw JSON string \"%s\" is not quoted",
					  c->name, text);
		return;
	}
	if (strcmp(text, of->val.data) != 0)
		fuzz_fail("column \"%s\": \"%s\", pg_parse_json says \"%s\"", c->name,
				  text, of->val.data);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static Oracle o;
	static char *copy;
	static size_t copysize;
	MsgScanner *sc = fuzz_scanner(STREAMPROC_FORMAT_JSON, '\0', '\0',
								  FUZZ_COLS_ALL, 0);
	StreamprocParseError err;
	JsonSemAction sem;
	JsonParseErrorType pgerr;
	bool ok;
	size_t i;
	int k;

	ok = fuzz_scan(sc, (const char *)data, size, &err);

	/* The oracle only sees what passed the UTF-8 check: no NUL bytes. */
	if (size > INT_MAX / 2 ||
		(size > 0 && pg_encoding_verifymbstr(PG_UTF8, (const char *)data,
											 (int)size) != (int)size))
	{
		if (ok)
			fuzz_fail("invalid UTF-8 or a NUL byte accepted");
		return 0;
	}

	if (o.fields == NULL)
	{
		o.fields = palloc0(sizeof(OracleField) * sc->ncols);
		for (k = 0; k < sc->ncols; k++)
			initStringInfo(&o.fields[k].val);
	}
	for (k = 0; k < sc->ncols; k++)
	{
		o.fields[k].state = ORACLE_ABSENT;
		o.fields[k].literal = false;
		resetStringInfo(&o.fields[k].val);
	}
	o.sc = sc;
	o.maxdepth = 0;
	o.col = -1;
	o.in_array = false;
	o.array_has_object = false;

	/* pg_parse_json wants a writable buffer */
	if (copysize < size + 1)
	{
		free(copy);
		copysize = size + 1;
		copy = malloc(copysize);
		if (copy == NULL)
			abort();
	}
	memcpy(copy, data, size);
	copy[size] = '\0';

	memset(&sem, 0, sizeof(sem));
	sem.semstate = &o;
	sem.object_start = o_object_start;
	sem.array_start = o_array_start;
	sem.array_end = o_array_end;
	sem.object_field_start = o_field_start;
	sem.array_element_start = o_element_start;
	sem.scalar = o_scalar;
	o.lex = makeJsonLexContextCstringLen(copy, (int)size, PG_UTF8, true);
	pgerr = pg_parse_json(o.lex, &sem);
	pfree(o.lex->strval->data);
	pfree(o.lex->strval);
	pfree(o.lex);
	o.lex = NULL;

	if (pgerr != JSON_SUCCESS)
	{
		if (ok && pgerr != JSON_UNICODE_CODE_POINT_ZERO)
			fuzz_fail("accepted, but pg_parse_json reports error %d", (int)pgerr);
		return 0;
	}
	if (!ok)
	{
		for (i = 0; i < size && (data[i] == ' ' || data[i] == '\t' ||
								 data[i] == '\n' || data[i] == '\r');
			 i++)
			;
		if (i < size && data[i] != '{')
			return 0; /* not an object: refused by design */
		if (o.maxdepth > SCAN_MAX_DEPTH + 1)
			return 0; /* nests too deep: refused by design */
		fuzz_fail("refused (%s), but pg_parse_json accepts it", err.message);
	}
	if (o.maxdepth > SCAN_MAX_DEPTH + 1)
		fuzz_fail("accepted a message nesting %d levels", o.maxdepth);
	for (k = 0; k < sc->npayload; k++)
		compare_field(&o, sc->payload[k]);
	return 0;
}
