/*-------------------------------------------------------------------------
 *
 * msgscan_fuzz.h
 *	  What the fuzz targets of the message scanners (fuzz/json.c,
 *	  fuzz/csv.c, fuzz/text.c) share: scanners set up like the parsers of
 *	  sql/parse.sql, and the checks that hold after every scan.
 *
 *-------------------------------------------------------------------------
 */
#ifndef STREAMPROC_MSGSCAN_FUZZ_H
#define STREAMPROC_MSGSCAN_FUZZ_H

#include "postgres.h"

#include "fuzz.h"
#include "msgscan.h"

/* The columns a scanner is set up with. */
typedef enum FuzzColumns
{
	FUZZ_COLS_PTYPES, /* the 13 columns of sql/parse.sql's ptypes */
	FUZZ_COLS_PDEF,   /* the 4 columns of its pdef */
	FUZZ_COLS_ONE,    /* a single column */
	FUZZ_COLS_ALL     /* both sets, a dropped column and a metadata column */
} FuzzColumns;

/*
 * A scanner for format, delimiter, quote and columns, set up on first use
 * and reused by every input afterwards, as a parser reuses its scanner
 * across messages.  instance (0 or 1) tells apart two scanners of the same
 * setup, for round trips.
 */
extern MsgScanner *fuzz_scanner(StreamprocFormat format, char delimiter,
								char quote, FuzzColumns columns,
								int instance);

/*
 * Scan data with sc and check what must hold whatever the input: on
 * failure a complete error; on success fields only for payload columns,
 * each a NUL-terminated text without NUL bytes inside that is valid UTF-8
 * (what an input function is given).  Aborts on a violation.
 */
extern bool fuzz_scan(MsgScanner *sc, const char *data, size_t len,
					  StreamprocParseError *err);

/* Is column i of sc read from the payload? */
extern bool fuzz_is_payload(const MsgScanner *sc, int i);

/* The text of a FIELD_VALUE field. */
#define FUZZ_FIELD_TEXT(sc, f) ((sc)->arena.data + (f)->off)

/*
 * What a reference model of a format found for one payload column: the
 * fuzz targets of csv and text compare the scanner with a naive model
 * written from the format's description (byte at a time, no speed).
 */
typedef struct FuzzModelField
{
	bool isnull;
	StringInfoData text;
} FuzzModelField;

/*
 * Compare a successful scan with a model's npayload fields; aborts on a
 * difference.
 */
extern void fuzz_same_as_model(const MsgScanner *sc,
							   const FuzzModelField *model, const char *what);

/*
 * Compare the payload fields of two scanners that scanned the same
 * record (round trips); aborts on a difference.
 */
extern void fuzz_same_fields(const MsgScanner *a, const MsgScanner *b,
							 const char *what);

#endif /* STREAMPROC_MSGSCAN_FUZZ_H */
