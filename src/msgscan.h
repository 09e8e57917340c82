/*-------------------------------------------------------------------------
 *
 * msgscan.h
 *	  Message scanners: phase 1 of the message parsers (src/parse.c) for
 *	  the json, csv and COPY text formats, in pure C.
 *
 * A scanner checks one payload (UTF-8, syntax, field count) and splits it
 * into fields: NUL-terminated texts in one arena, one MsgField per stream
 * column.  It never throws and calls no SQL, so the same file is built
 * into the extension and into the fuzz targets of fuzz/ (see "Pure C
 * files" in src/msgscan.c and docs/development.md).  src/parse.c owns the
 * rest: metadata, NOT NULL, and phase 2 (type input functions).
 *
 *-------------------------------------------------------------------------
 */
#ifndef STREAMPROC_MSGSCAN_H
#define STREAMPROC_MSGSCAN_H

#include "postgres.h"

#include "access/attnum.h"
#include "datatype/timestamp.h"
#include "lib/stringinfo.h"

/* Message formats. */
typedef enum StreamprocFormat
{
	STREAMPROC_FORMAT_JSON,
	STREAMPROC_FORMAT_CSV,
	STREAMPROC_FORMAT_TEXT
} StreamprocFormat;

#define STREAMPROC_PARSE_ERROR_LEN 512

/* Why a message was rejected. */
typedef struct StreamprocParseError
{
	int sqlerrcode;                           /* ERRCODE_* (syntax: 22P02/22P04; type input: its own) */
	int offset;                               /* byte of the payload where the error is, or -1 */
	AttrNumber attnum;                        /* column concerned, or InvalidAttrNumber */
	char message[STREAMPROC_PARSE_ERROR_LEN]; /* lower case, no period */
} StreamprocParseError;

/* What phase 1 found for a column. */
typedef enum MsgFieldState
{
	FIELD_MISSING = 0, /* not in the message: default or NULL */
	FIELD_NULL,        /* explicitly null */
	FIELD_VALUE,       /* text at arena + off, to the input function */
	FIELD_BYTES,       /* raw bytes at arena + off, to a bytea column (metadata) */
	FIELD_TIMESTAMP    /* tsval, to a timestamptz column (metadata) */
} MsgFieldState;

/* One column's field in the current message. */
typedef struct MsgField
{
	int off;
	int len;
	MsgFieldState state;
	TimestampTz tsval;
} MsgField;

/* What a scanner knows of a column. */
typedef struct MsgScanColumn
{
	const char *name; /* exact name; NULL for a dropped column */
	int namelen;
	bool is_json;  /* json or jsonb (or a domain over them): raw JSON text */
	bool is_array; /* an array type other than json: JSON arrays become array literals */
} MsgScanColumn;

/*
 * A scanner, set up once per parser by msgscan_init and reused for every
 * message.  fields and arena hold the result of the last message until
 * the next msgscan_begin.
 */
typedef struct MsgScanner
{
	StreamprocFormat format;
	char delimiter; /* csv, text */
	char quote;     /* csv */
	int ncols;
	const MsgScanColumn *cols; /* ncols, by attno - 1; not copied */
	int npayload;              /* columns read from the payload ... */
	int *payload;              /* ... their indexes, in column order */
	int *hash;                 /* name lookup: payload column index or -1 */
	uint32 hashmask;
	MsgField *fields;     /* ncols */
	StringInfoData arena; /* the fields' texts, NUL-terminated */
	StringInfoData keybuf;
	StringInfoData scratch;
} MsgScanner;

/*
 * msgscan_init
 *		Set up sc for a stream's columns: cols has ncols entries (which
 *		must outlive sc), payload the indexes of the npayload columns read
 *		from the payload, in order (the others are filled by the caller,
 *		from metadata).  delimiter and quote are used as given (the caller
 *		applies defaults and checks them).  Allocates in the current
 *		memory context.
 */
extern void msgscan_init(MsgScanner *sc, StreamprocFormat format,
						 char delimiter, char quote, int ncols,
						 const MsgScanColumn *cols, int npayload,
						 const int *payload);

/* Start a new message: every field missing, the arena empty. */
extern void msgscan_begin(MsgScanner *sc);

/*
 * msgscan_payload
 *		Scan one payload (data non-NULL even when len is 0) into the
 *		fields of the payload columns: UTF-8 validity without NUL bytes,
 *		then the format's syntax and field count.  Returns true, or false
 *		with *err filled.  Never throws for bad input; the caller bounds
 *		len (streamproc.max_message_bytes).
 */
extern bool msgscan_payload(MsgScanner *sc, const char *data, size_t len,
							StreamprocParseError *err);

/* Fill *err; returns false so that callers can "return msgscan_error(...)". */
extern bool msgscan_error(StreamprocParseError *err, int code, int offset,
						  AttrNumber attnum, const char *fmt, ...)
	pg_attribute_printf(5, 6);

/* Start a field's text in the arena. */
static inline void
msgscan_field_begin(MsgScanner *sc, MsgField *f)
{
	f->off = sc->arena.len;
}

/* End a field's text: NUL-terminate it. */
static inline void
msgscan_field_end(MsgScanner *sc, MsgField *f, MsgFieldState state)
{
	f->len = sc->arena.len - f->off;
	appendStringInfoChar(&sc->arena, '\0');
	f->state = state;
}

/* Store a field's text from a span of bytes. */
static inline void
msgscan_field_store(MsgScanner *sc, MsgField *f, const char *s, int len)
{
	msgscan_field_begin(sc, f);
	appendBinaryStringInfo(&sc->arena, s, len);
	msgscan_field_end(sc, f, FIELD_VALUE);
}

#endif /* STREAMPROC_MSGSCAN_H */
