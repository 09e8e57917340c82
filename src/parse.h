/*-------------------------------------------------------------------------
 *
 * parse.h
 *	  Message parsers: turn one Kafka message (json, csv or COPY text,
 *	  plus its metadata) into one row of a stream, without SQL.
 *
 * A parser is prepared once per (stream, format, options) and then
 * called per message; see src/parse.c for the formats, the mapping rules
 * and the error design.  Bad messages never throw: they come back as
 * false plus a StreamprocParseError.
 *
 *-------------------------------------------------------------------------
 */
#ifndef STREAMPROC_PARSE_H
#define STREAMPROC_PARSE_H

#include "postgres.h"

#include "utils/jsonb.h"
#include "utils/relcache.h"

#include "msgscan.h" /* StreamprocFormat, StreamprocParseError */

/* guc.c: streamproc.max_message_bytes, the default message size limit */
extern int streamproc_max_message_bytes;

/* Kafka metadata a stream column can be filled from. */
typedef enum StreamprocMetaKind
{
	STREAMPROC_META_PARTITION, /* int32, through the column's input function */
	STREAMPROC_META_OFFSET,    /* int64, likewise */
	STREAMPROC_META_KEY,       /* bytes: bytea as is, other types as UTF-8 text */
	STREAMPROC_META_TIMESTAMP, /* ms since 1970: timestamptz, or the number */
	STREAMPROC_META_HEADERS,   /* all headers as a JSON object {name: value} */
	STREAMPROC_META_HEADER     /* the value of one header (the last of that name) */
} StreamprocMetaKind;

/* One metadata -> column mapping. */
typedef struct StreamprocMetaMap
{
	StreamprocMetaKind kind;
	const char *header; /* STREAMPROC_META_HEADER: the header's name */
	const char *column; /* stream column name, exact */
} StreamprocMetaMap;

/*
 * Parser options.  Zero-initialize, then set what differs from the
 * defaults.  Strings are copied by streamproc_parser_create.
 */
typedef struct StreamprocParserOptions
{
	char delimiter;        /* csv: 0 means ','; text: 0 means tab */
	char quote;            /* csv: 0 means '"' */
	int max_message_bytes; /* 0: streamproc.max_message_bytes, read per call */
	int nmeta;
	const StreamprocMetaMap *meta;
} StreamprocParserOptions;

/* One Kafka header; value NULL is a null header value. */
typedef struct StreamprocHeader
{
	const char *name; /* NUL-terminated */
	const char *value;
	size_t value_len;
} StreamprocHeader;

/* The metadata of one message, as the consumer got it. */
typedef struct StreamprocMessageMeta
{
	int32 partition;
	int64 offset;
	const char *key; /* NULL: no key */
	size_t key_len;
	int64 timestamp_ms; /* -1: none */
	int nheaders;
	const StreamprocHeader *headers;
} StreamprocMessageMeta;

/* One message of a batch. */
typedef struct StreamprocMessage
{
	const char *data;
	size_t len;
	const StreamprocMessageMeta *meta; /* may be NULL: metadata columns NULL */
} StreamprocMessage;

typedef struct StreamprocParser StreamprocParser;

/*
 * streamproc_format_from_name
 *		"json", "csv" or "text" -> format; false for anything else.
 */
extern bool streamproc_format_from_name(const char *name,
										StreamprocFormat *format);

/*
 * streamproc_parser_options_from_jsonb
 *		Read parser options from jsonb (source creation time, not the hot
 *		path): {"delimiter": ";", "quote": "'", "max_message_bytes": n,
 *		"metadata": {"partition": "col", "offset": "col", "key": "col",
 *		"timestamp": "col", "headers": "col", "header:NAME": "col"}}.
 *		Unknown keys are errors.  Strings are allocated in the current
 *		memory context.  Throws on invalid options.
 */
extern void streamproc_parser_options_from_jsonb(Jsonb *options,
												 StreamprocParserOptions *opts);

/*
 * streamproc_parser_create
 *		Prepare a parser for the stream's current columns.  Allocates
 *		everything in a child of cxt; the stream may be closed afterwards
 *		(the parser must be rebuilt when its columns change).  Throws on
 *		invalid options (unknown column, bad delimiter).  Needs a
 *		transaction (catalog lookups).
 */
extern StreamprocParser *streamproc_parser_create(Relation stream,
												  StreamprocFormat format,
												  const StreamprocParserOptions *opts,
												  MemoryContext cxt);

/*
 * streamproc_parser_max_message_bytes
 *		The size limit the parser applies now: its max_message_bytes option,
 *		else streamproc.max_message_bytes.
 */
extern int streamproc_parser_max_message_bytes(const StreamprocParser *p);

/*
 * streamproc_parser_parse
 *		Parse one message into values/nulls (the stream's natts entries).
 *		Returns true, or false with *err filled; never throws for a bad
 *		message.  It throws only what must not be swallowed (cancel,
 *		shutdown, out of memory, internal errors).  By-reference values
 *		live in the parser's per-message memory until the next call.
 *		Costs one internal subtransaction when the message has values to
 *		convert; batches should use streamproc_parser_parse_batch.
 */
extern bool streamproc_parser_parse(StreamprocParser *p, const char *data,
									size_t len,
									const StreamprocMessageMeta *meta,
									Datum *values, bool *nulls,
									StreamprocParseError *err);

/*
 * streamproc_parser_parse_batch
 *		Parse n messages: row i goes to values[i * natts ...] and
 *		nulls[i * natts ...], ok[i] says whether it parsed, errs[i] why
 *		not.  By-reference values are allocated in the caller's current
 *		memory context.  Returns the number of rows parsed.  Uses one
 *		internal subtransaction for the whole batch plus one more after
 *		each message whose conversion failed.  The caller must not be
 *		inside a subtransaction it expects to see rolled back by us: the
 *		function begins and ends its own before returning.
 */
extern int streamproc_parser_parse_batch(StreamprocParser *p, int n,
										 const StreamprocMessage *msgs,
										 Datum *values, bool *nulls,
										 bool *ok, StreamprocParseError *errs);

/* Number of attributes of the rows the parser produces. */
extern int streamproc_parser_natts(StreamprocParser *p);

/* Free the parser. */
extern void streamproc_parser_destroy(StreamprocParser *p);

#endif /* STREAMPROC_PARSE_H */
