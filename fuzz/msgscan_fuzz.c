/*-------------------------------------------------------------------------
 *
 * msgscan_fuzz.c
 *	  Scanners and invariant checks shared by the fuzz targets of
 *	  src/msgscan.c.  See msgscan_fuzz.h.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include <stdio.h>
#include <stdlib.h>

#include "mb/pg_wchar.h"

#include "msgscan_fuzz.h"

/* The columns of sql/parse.sql's streams, as the scanner sees them. */
#define COL(name, json, array)              \
	{                                       \
		name, sizeof(name) - 1, json, array \
	}

static const MsgScanColumn ptypes_cols[] = {
	COL("i2", false, false), COL("i4", false, false), COL("i8", false, false),
	COL("num", false, false), COL("f8", false, false), COL("t", false, false),
	COL("b", false, false), COL("d", false, false), COL("ts", false, false),
	COL("j", true, false), COL("jb", true, false), COL("u", false, false),
	COL("arr", false, true)};

static const MsgScanColumn pdef_cols[] = {
	COL("id", false, false), COL("name", false, false),
	COL("qty", false, false), COL("note", false, false)};

static const MsgScanColumn one_col[] = {COL("t", false, false)};

/*
 * All of them, then a dropped column (name NULL) and "kpart", which is
 * mapped to Kafka metadata: neither is a payload column, so a key "kpart"
 * must not fill it.
 */
static MsgScanColumn all_cols[lengthof(ptypes_cols) + lengthof(pdef_cols) + 2];

#define MAX_SCANNERS 32

typedef struct CachedScanner
{
	StreamprocFormat format;
	char delimiter;
	char quote;
	FuzzColumns columns;
	int instance;
	MsgScanner sc;
} CachedScanner;

static CachedScanner scanners[MAX_SCANNERS];
static int nscanners;

MsgScanner *
fuzz_scanner(StreamprocFormat format, char delimiter, char quote,
			 FuzzColumns columns, int instance)
{
	const MsgScanColumn *cols;
	int ncols;
	int payload[lengthof(all_cols)];
	int npayload = 0;
	CachedScanner *c;
	int i;

	for (i = 0; i < nscanners; i++)
	{
		c = &scanners[i];
		if (c->format == format && c->delimiter == delimiter &&
			c->quote == quote && c->columns == columns &&
			c->instance == instance)
			return &c->sc;
	}
	if (nscanners == MAX_SCANNERS)
		fuzz_fail("more than %d scanner setups", MAX_SCANNERS);

	switch (columns)
	{
		case FUZZ_COLS_PTYPES:
			cols = ptypes_cols;
			ncols = lengthof(ptypes_cols);
			break;
		case FUZZ_COLS_PDEF:
			cols = pdef_cols;
			ncols = lengthof(pdef_cols);
			break;
		case FUZZ_COLS_ONE:
			cols = one_col;
			ncols = lengthof(one_col);
			break;
		default:
			memcpy(all_cols, ptypes_cols, sizeof(ptypes_cols));
			memcpy(all_cols + lengthof(ptypes_cols), pdef_cols,
				   sizeof(pdef_cols));
			all_cols[lengthof(all_cols) - 2] = (MsgScanColumn){NULL, 0, false, false};
			all_cols[lengthof(all_cols) - 1] = (MsgScanColumn)COL("kpart", false, false);
			cols = all_cols;
			ncols = lengthof(all_cols);
			break;
	}
	/* every named column but the last of FUZZ_COLS_ALL (metadata) */
	for (i = 0; i < ncols; i++)
		if (cols[i].name != NULL &&
			!(columns == FUZZ_COLS_ALL && i == ncols - 1))
			payload[npayload++] = i;

	c = &scanners[nscanners++];
	c->format = format;
	c->delimiter = delimiter;
	c->quote = quote;
	c->columns = columns;
	c->instance = instance;
	msgscan_init(&c->sc, format, delimiter, quote, ncols, cols, npayload,
				 payload);
	return &c->sc;
}

bool
fuzz_is_payload(const MsgScanner *sc, int i)
{
	int k;

	for (k = 0; k < sc->npayload; k++)
		if (sc->payload[k] == i)
			return true;
	return false;
}

/* Check one field of a successful scan. */
static void
check_field(const MsgScanner *sc, int i)
{
	const MsgField *f = &sc->fields[i];
	const char *text;

	if (!fuzz_is_payload(sc, i))
	{
		if (f->state != FIELD_MISSING)
			fuzz_fail("column %d is not a payload column but has state %d",
					  i, (int)f->state);
		return;
	}
	switch (f->state)
	{
		case FIELD_MISSING:
			/* csv and text records have every payload column */
			if (sc->format != STREAMPROC_FORMAT_JSON)
				fuzz_fail("payload column %d missing from a %s record", i,
						  sc->format == STREAMPROC_FORMAT_CSV ? "csv" : "text");
			return;
		case FIELD_NULL:
			return;
		case FIELD_VALUE:
			break;
		default:
			fuzz_fail("payload column %d has metadata state %d", i,
					  (int)f->state);
	}
	if (f->off < 0 || f->len < 0 || f->off + f->len >= sc->arena.len)
		fuzz_fail("column %d: span %d+%d outside the arena of %d bytes", i,
				  f->off, f->len, sc->arena.len);
	text = FUZZ_FIELD_TEXT(sc, f);
	if (text[f->len] != '\0')
		fuzz_fail("column %d: text not NUL-terminated", i);
	if (memchr(text, '\0', f->len) != NULL)
		fuzz_fail("column %d: text of %d bytes has a NUL byte at %d", i,
				  f->len, (int)((const char *)memchr(text, '\0', f->len) - text));
	if (pg_encoding_verifymbstr(PG_UTF8, text, f->len) != f->len)
		fuzz_fail("column %d: text is not valid UTF-8", i);
}

bool
fuzz_scan(MsgScanner *sc, const char *data, size_t len,
		  StreamprocParseError *err)
{
	bool ok;
	int i;

	memset(err, 0x7f, sizeof(*err));
	err->message[0] = '\0';
	msgscan_begin(sc);
	ok = msgscan_payload(sc, data, len, err);
	if (!ok)
	{
		if (err->sqlerrcode == 0 || err->message[0] == '\0')
			fuzz_fail("error without a code or a message");
		if (memchr(err->message, '\0', sizeof(err->message)) == NULL)
			fuzz_fail("error message not NUL-terminated");
		if (err->offset < -1 || err->offset > (int)len)
			fuzz_fail("error offset %d outside the message of %zu bytes: %s",
					  err->offset, len, err->message);
		if (err->attnum != InvalidAttrNumber)
			fuzz_fail("scanner error names a column: %s", err->message);
		return false;
	}
	if (sc->arena.len < 0 || sc->arena.data[sc->arena.len] != '\0')
		fuzz_fail("arena not NUL-terminated");
	for (i = 0; i < sc->ncols; i++)
		check_field(sc, i);
	return true;
}

void
fuzz_same_fields(const MsgScanner *a, const MsgScanner *b, const char *what)
{
	int k;

	for (k = 0; k < a->npayload; k++)
	{
		int i = a->payload[k];
		const MsgField *fa = &a->fields[i];
		const MsgField *fb = &b->fields[i];

		if (fa->state != fb->state)
			fuzz_fail("%s: column %d has state %d, then %d", what, i,
					  (int)fa->state, (int)fb->state);
		if (fa->state == FIELD_VALUE &&
			(fa->len != fb->len ||
			 memcmp(FUZZ_FIELD_TEXT(a, fa), FUZZ_FIELD_TEXT(b, fb), fa->len) != 0))
			fuzz_fail("%s: column %d is \"%s\", then \"%s\"", what, i,
					  FUZZ_FIELD_TEXT(a, fa), FUZZ_FIELD_TEXT(b, fb));
	}
}

void
fuzz_same_as_model(const MsgScanner *sc, const FuzzModelField *model,
				   const char *what)
{
	int k;

	for (k = 0; k < sc->npayload; k++)
	{
		const MsgField *f = &sc->fields[sc->payload[k]];
		const FuzzModelField *m = &model[k];

		if (m->isnull != (f->state == FIELD_NULL))
			fuzz_fail("%s: field %d is %s for the model, state %d for the scanner",
					  what, k, m->isnull ? "NULL" : "a value", (int)f->state);
		if (!m->isnull &&
			(f->state != FIELD_VALUE || f->len != m->text.len ||
			 memcmp(FUZZ_FIELD_TEXT(sc, f), m->text.data, f->len) != 0))
			fuzz_fail("%s: field %d is \"%s\" for the model, \"%s\" for the scanner",
					  what, k, m->text.data,
					  f->state == FIELD_VALUE ? FUZZ_FIELD_TEXT(sc, f) : "");
	}
}
