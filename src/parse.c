/*-------------------------------------------------------------------------
 *
 * parse.c
 *	  Message parsers for Kafka sources: json, csv and COPY text payloads,
 *	  plus Kafka metadata, into rows of a stream, in C.
 *
 * A parser (StreamprocParser) is prepared once per stream, format and
 * options: per column, its name, type input function, typioparam, typmod,
 * NOT NULL, default expression (build_column_default, planned and
 * ExecInitExpr'd once, evaluated per message in a standalone ExprContext),
 * whether the type is json/jsonb, an array, a domain.  Per message it runs
 * two phases:
 *
 * 1. Scan (never throws for bad input).  The size limit
 *	  (streamproc.max_message_bytes, or the max_message_bytes option), then
 *	  the payload scanner of src/msgscan.c (UTF-8 validity of the whole
 *	  payload, the format's syntax, the field count), the metadata, and
 *	  NOT NULL for values that are null or missing without a default.
 *	  Each field's text is written NUL-terminated into the scanner's
 *	  per-message arena; columns point into it by offset.  No palloc per
 *	  field, no SQL.  The payload scanners are pure C, built into fuzz
 *	  targets too (fuzz/, docs/development.md).
 *
 * 2. Convert (may throw).  Each text goes through the column type's input
 *	  function, missing columns get their default, metadata columns their
 *	  value.  PostgreSQL 15 has no soft input errors (InputFunctionCallSafe
 *	  is PG 16), so errors are caught with PG_TRY, and a caught error is
 *	  only ever swallowed after rolling back a subtransaction that was open
 *	  around the failing call.  The cost of a subtransaction (begin plus
 *	  release, no xid is assigned since nothing is written) is several
 *	  microseconds, more than parsing a small JSON message, so it is
 *	  amortized: streamproc_parser_parse_batch opens one subtransaction
 *	  lazily, when the first message reaches phase 2, keeps it across the
 *	  batch's messages and releases it at the end; when a conversion
 *	  fails, that subtransaction is rolled back, the message gets its
 *	  error, and the next message opens a new one.  So a batch costs one
 *	  subtransaction plus one per message whose conversion failed; syntax
 *	  errors cost none.  Rows already converted survive a rollback: their
 *	  values are allocated in the caller's memory context, which is not a
 *	  transaction context, and input functions write nothing.  Errors that
 *	  are not about the message are re-thrown after the rollback: classes
 *	  53 (out of memory, ...), 57 (cancel, shutdown), 58 (system) and XX
 *	  (internal errors such as a cache lookup failure).
 *	  streamproc_parser_parse is a batch of one.
 *
 * Formats: json, csv and COPY text; their rules are described in
 * src/msgscan.c, which scans them.  Payload columns are the stream's
 * columns minus the metadata columns.
 *
 * Metadata (partition, offset, key, timestamp, headers, one header) maps
 * to columns through StreamprocParserOptions; those columns are not read
 * from the payload.  Timestamps (ms since 1970) become timestamptz values
 * directly; keys go to bytea columns as bytes, to others as UTF-8 text.
 *
 * Memory: the parser lives in its own context under the caller's.  Scan
 * state (arena, key buffer) is reused across messages.  Converted values
 * go to the parser's message context (parse) or the caller's context
 * (parse_batch).
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include <ctype.h>
#include <limits.h>

#include "access/htup_details.h"
#include "access/relation.h"
#include "access/xact.h"
#include "catalog/pg_type.h"
#include "executor/executor.h"
#include "funcapi.h"
#include "lib/stringinfo.h"
#include "mb/pg_wchar.h"
#include "miscadmin.h"
#include "optimizer/optimizer.h"
#include "rewrite/rewriteHandler.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/datetime.h"
#include "utils/datum.h"
#include "utils/fmgrprotos.h"
#include "utils/json.h"
#include "utils/jsonb.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"
#include "utils/rel.h"
#include "utils/resowner.h"
#include "utils/timestamp.h"

#include "errors.h"
#include "msgscan.h"
#include "parse.h"
#include "stream.h"
#include "streamproc.h"

/* Longest value text quoted in an error message, in bytes. */
#define ERROR_VALUE_MAX 64

/* A stream column, as the parser fills it. */
typedef struct ParseColumn
{
	bool dropped;
	char *name;
	Oid typid;
	int32 typmod;
	Oid typioparam;
	FmgrInfo input;
	int16 typlen;
	bool typbyval;
	bool notnull;
	bool is_domain;
	bool is_bytea;       /* exactly bytea */
	bool is_timestamptz; /* exactly timestamptz */
	ExprState *defexpr;  /* default, or NULL */
	int meta;            /* index into the metadata map, or -1 */
} ParseColumn;

/* One metadata mapping, resolved. */
typedef struct ParseMeta
{
	StreamprocMetaKind kind;
	char *header;
	int col;
} ParseMeta;

/* What is being converted, for error messages. */
typedef enum ConvertWhat
{
	CONVERT_VALUE,
	CONVERT_NULL,
	CONVERT_DEFAULT,
	CONVERT_META
} ConvertWhat;

struct StreamprocParser
{
	MemoryContext cxt;     /* everything below */
	MemoryContext msgcxt;  /* values of streamproc_parser_parse */
	int max_message_bytes; /* 0: the GUC */
	bool utf8_db;          /* database encoding is UTF-8 */
	int natts;
	ParseColumn *cols; /* natts, by attno - 1 */
	int nmeta;
	ParseMeta *meta;
	MsgScanColumn *scancols; /* natts, what the scanner knows of them */
	MsgScanner scan;         /* fields (natts) and their arena */
	StringInfoData scratch;  /* metadata: the headers' JSON */
	ExprContext *econtext;
	/* set before each call that may throw */
	int cur_col;
	ConvertWhat cur_what;
};

PG_FUNCTION_INFO_V1(streamproc_parse_message);
PG_FUNCTION_INFO_V1(streamproc_parse_messages);

static bool scan_message(StreamprocParser *p, const StreamprocMessage *msg,
						 Datum *values, bool *nulls,
						 StreamprocParseError *err);
static bool scan_meta(StreamprocParser *p, const StreamprocMessageMeta *meta,
					  StreamprocParseError *err);
static void convert_row(StreamprocParser *p, Datum *values, bool *nulls,
						MemoryContext rowcxt);
static void conversion_error(StreamprocParser *p, ErrorData *edata,
							 StreamprocParseError *err);
static int parse_messages(StreamprocParser *p, int n,
						  const StreamprocMessage *msgs, Datum *values,
						  bool *nulls, bool *ok, StreamprocParseError *errs,
						  MemoryContext rowcxt);

/* ------------------------------------------------------------------------
 * Parser setup
 * ------------------------------------------------------------------------
 */

bool
streamproc_format_from_name(const char *name, StreamprocFormat *format)
{
	if (strcmp(name, "json") == 0)
		*format = STREAMPROC_FORMAT_JSON;
	else if (strcmp(name, "csv") == 0)
		*format = STREAMPROC_FORMAT_CSV;
	else if (strcmp(name, "text") == 0)
		*format = STREAMPROC_FORMAT_TEXT;
	else
		return false;
	return true;
}

/* A one-byte option from a jsonb string. */
static char
option_byte(const char *name, JsonbValue *v)
{
	if (v->type != jbvString || v->val.string.len != 1)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("parser option \"%s\" must be a single one-byte character",
						name)));
	return v->val.string.val[0];
}

/*
 * streamproc_parser_options_from_jsonb
 *		See parse.h.
 */
void
streamproc_parser_options_from_jsonb(Jsonb *options,
									 StreamprocParserOptions *opts)
{
	JsonbIterator *it;
	JsonbIteratorToken r;
	JsonbValue v;
	char *key = NULL;
	List *maps = NIL;

	memset(opts, 0, sizeof(*opts));
	if (!JB_ROOT_IS_OBJECT(options) || JB_ROOT_IS_SCALAR(options))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("parser options must be a JSON object")));

	it = JsonbIteratorInit(&options->root);
	while ((r = JsonbIteratorNext(&it, &v, true)) != WJB_DONE)
	{
		if (r == WJB_KEY)
		{
			key = pnstrdup(v.val.string.val, v.val.string.len);
			continue;
		}
		if (r != WJB_VALUE)
			continue;
		if (strcmp(key, "delimiter") == 0)
			opts->delimiter = option_byte(key, &v);
		else if (strcmp(key, "quote") == 0)
			opts->quote = option_byte(key, &v);
		else if (strcmp(key, "max_message_bytes") == 0)
		{
			int64 n;

			if (v.type != jbvNumeric)
				ereport(ERROR,
						(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
						 errmsg("parser option \"max_message_bytes\" must be a number")));
			n = DatumGetInt64(DirectFunctionCall1(numeric_int8,
												  NumericGetDatum(v.val.numeric)));
			if (n < 1 || n > MaxAllocSize)
				ereport(ERROR,
						(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
						 errmsg("parser option \"max_message_bytes\" must be between 1 and %d",
								(int)MaxAllocSize)));
			opts->max_message_bytes = (int)n;
		}
		else if (strcmp(key, "metadata") == 0)
		{
			JsonbIterator *mit;
			JsonbValue mv;
			char *mkey = NULL;

			if (v.type != jbvBinary || !JsonContainerIsObject(v.val.binary.data))
				ereport(ERROR,
						(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
						 errmsg("parser option \"metadata\" must be a JSON object")));
			mit = JsonbIteratorInit(v.val.binary.data);
			while ((r = JsonbIteratorNext(&mit, &mv, true)) != WJB_DONE)
			{
				StreamprocMetaMap *m;

				if (r == WJB_KEY)
				{
					mkey = pnstrdup(mv.val.string.val, mv.val.string.len);
					continue;
				}
				if (r != WJB_VALUE)
					continue;
				if (mv.type != jbvString)
					ereport(ERROR,
							(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
							 errmsg("metadata \"%s\" must map to a column name", mkey)));
				m = palloc0(sizeof(StreamprocMetaMap));
				m->column = pnstrdup(mv.val.string.val, mv.val.string.len);
				if (strcmp(mkey, "partition") == 0)
					m->kind = STREAMPROC_META_PARTITION;
				else if (strcmp(mkey, "offset") == 0)
					m->kind = STREAMPROC_META_OFFSET;
				else if (strcmp(mkey, "key") == 0)
					m->kind = STREAMPROC_META_KEY;
				else if (strcmp(mkey, "timestamp") == 0)
					m->kind = STREAMPROC_META_TIMESTAMP;
				else if (strcmp(mkey, "headers") == 0)
					m->kind = STREAMPROC_META_HEADERS;
				else if (strncmp(mkey, "header:", 7) == 0 && mkey[7] != '\0')
				{
					m->kind = STREAMPROC_META_HEADER;
					m->header = pstrdup(mkey + 7);
				}
				else
					ereport(ERROR,
							(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
							 errmsg("unrecognized Kafka metadata \"%s\"", mkey),
							 errhint("Metadata are partition, offset, key, timestamp, headers and header:NAME.")));
				maps = lappend(maps, m);
			}
		}
		else
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("unrecognized parser option \"%s\"", key),
					 errhint("Parser options are delimiter, quote, max_message_bytes and metadata.")));
	}

	if (maps != NIL)
	{
		StreamprocMetaMap *arr = palloc(sizeof(StreamprocMetaMap) * list_length(maps));
		ListCell *lc;
		int i = 0;

		foreach (lc, maps)
			arr[i++] = *(StreamprocMetaMap *)lfirst(lc);
		opts->nmeta = i;
		opts->meta = arr;
	}
}

/*
 * streamproc_parser_create
 *		See parse.h.
 */
StreamprocParser *
streamproc_parser_create(Relation stream, StreamprocFormat format,
						 const StreamprocParserOptions *opts,
						 MemoryContext cxt)
{
	MemoryContext pcxt;
	MemoryContext old;
	StreamprocParser *p;
	TupleDesc desc = RelationGetDescr(stream);
	int natts = desc->natts;
	char delimiter = '\0';
	char quote = '\0';
	int npayload = 0;
	int *payload;
	int i;

	pcxt = AllocSetContextCreate(cxt, "streamproc parser",
								 ALLOCSET_DEFAULT_SIZES);
	old = MemoryContextSwitchTo(pcxt);

	p = palloc0(sizeof(StreamprocParser));
	p->cxt = pcxt;
	p->msgcxt = AllocSetContextCreate(pcxt, "streamproc parser message",
									  ALLOCSET_DEFAULT_SIZES);
	p->max_message_bytes = opts ? opts->max_message_bytes : 0;
	p->utf8_db = GetDatabaseEncoding() == PG_UTF8;

	/* delimiter and quote */
	if (format == STREAMPROC_FORMAT_CSV)
	{
		delimiter = (opts && opts->delimiter) ? opts->delimiter : ',';
		quote = (opts && opts->quote) ? opts->quote : '"';
		if (delimiter == quote)
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("CSV delimiter and quote must differ")));
	}
	else if (format == STREAMPROC_FORMAT_TEXT)
	{
		delimiter = (opts && opts->delimiter) ? opts->delimiter : '\t';
		if (opts && opts->quote)
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("parser option \"quote\" is only for format csv")));
		if (delimiter == '\\' || delimiter == '.' ||
			isalnum((unsigned char)delimiter))
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("text delimiter cannot be \"%c\"", delimiter)));
	}
	else if (opts && (opts->delimiter || opts->quote))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("parser options \"delimiter\" and \"quote\" are not for format json")));
	if (delimiter == '\n' || delimiter == '\r' ||
		quote == '\n' || quote == '\r' ||
		(unsigned char)delimiter >= 0x80 || (unsigned char)quote >= 0x80)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("delimiter and quote must be ASCII characters other than a line break")));

	/* columns */
	p->natts = natts;
	p->cols = palloc0(sizeof(ParseColumn) * Max(natts, 1));
	p->scancols = palloc0(sizeof(MsgScanColumn) * Max(natts, 1));
	for (i = 0; i < natts; i++)
	{
		Form_pg_attribute att = TupleDescAttr(desc, i);
		ParseColumn *pc = &p->cols[i];
		Oid infunc;
		Oid base;

		pc->meta = -1;
		if (att->attisdropped)
		{
			pc->dropped = true;
			continue;
		}
		if (att->attgenerated)
			ereport(ERROR,
					(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
					 errmsg("column \"%s\" of stream \"%s\" is a generated column",
							NameStr(att->attname), RelationGetRelationName(stream)),
					 errdetail("Message parsers do not compute generated columns.")));
		pc->name = pstrdup(NameStr(att->attname));
		p->scancols[i].name = pc->name;
		p->scancols[i].namelen = strlen(pc->name);
		pc->typid = att->atttypid;
		pc->typmod = att->atttypmod;
		pc->notnull = att->attnotnull;
		getTypeInputInfo(att->atttypid, &infunc, &pc->typioparam);
		fmgr_info_cxt(infunc, &pc->input, pcxt);
		get_typlenbyval(att->atttypid, &pc->typlen, &pc->typbyval);
		base = getBaseType(att->atttypid);
		pc->is_domain = base != att->atttypid;
		p->scancols[i].is_json = base == JSONOID || base == JSONBOID;
		p->scancols[i].is_array = !p->scancols[i].is_json &&
								  OidIsValid(get_element_type(base));
		pc->is_bytea = att->atttypid == BYTEAOID;
		pc->is_timestamptz = att->atttypid == TIMESTAMPTZOID;
		{
			Node *def = build_column_default(stream, i + 1);

			if (def != NULL)
				pc->defexpr = ExecInitExpr(expression_planner((Expr *)def),
										   NULL);
		}
	}

	/* metadata */
	if (opts && opts->nmeta > 0)
	{
		p->meta = palloc0(sizeof(ParseMeta) * opts->nmeta);
		for (i = 0; i < opts->nmeta; i++)
		{
			const StreamprocMetaMap *m = &opts->meta[i];
			int col = -1;
			int j;

			for (j = 0; j < natts; j++)
				if (!p->cols[j].dropped && strcmp(p->cols[j].name, m->column) == 0)
					col = j;
			if (col < 0)
				ereport(ERROR,
						(errcode(ERRCODE_UNDEFINED_COLUMN),
						 errmsg("column \"%s\" of stream \"%s\" does not exist",
								m->column, RelationGetRelationName(stream))));
			if (p->cols[col].meta >= 0)
				ereport(ERROR,
						(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
						 errmsg("column \"%s\" is mapped to Kafka metadata more than once",
								m->column)));
			p->cols[col].meta = i;
			p->meta[i].kind = m->kind;
			p->meta[i].header = m->header ? pstrdup(m->header) : NULL;
			p->meta[i].col = col;
		}
		p->nmeta = opts->nmeta;
	}

	/* payload columns, and their scanner */
	payload = palloc(sizeof(int) * Max(natts, 1));
	for (i = 0; i < natts; i++)
		if (!p->cols[i].dropped && p->cols[i].meta < 0)
			payload[npayload++] = i;
	msgscan_init(&p->scan, format, delimiter, quote, natts, p->scancols,
				 npayload, payload);
	pfree(payload);

	initStringInfo(&p->scratch);
	p->econtext = CreateStandaloneExprContext();

	MemoryContextSwitchTo(old);
	return p;
}

int
streamproc_parser_natts(StreamprocParser *p)
{
	return p->natts;
}

/*
 * streamproc_parser_max_message_bytes
 *		See parse.h.
 */
int
streamproc_parser_max_message_bytes(const StreamprocParser *p)
{
	return p->max_message_bytes > 0 ? p->max_message_bytes : streamproc_max_message_bytes;
}

void
streamproc_parser_destroy(StreamprocParser *p)
{
	FreeExprContext(p->econtext, true);
	MemoryContextDelete(p->cxt);
}

/* ------------------------------------------------------------------------
 * Metadata
 * ------------------------------------------------------------------------
 */

static bool
meta_text_ok(const char *s, size_t len)
{
	return len <= MaxAllocSize &&
		   pg_encoding_verifymbstr(PG_UTF8, s, (int)len) == (int)len;
}

/*
 * scan_meta
 *		Phase 1 for the metadata columns: their text (or bytes, or
 *		timestamp) goes to their fields.
 */
static bool
scan_meta(StreamprocParser *p, const StreamprocMessageMeta *meta,
		  StreamprocParseError *err)
{
	int i;

	for (i = 0; i < p->nmeta; i++)
	{
		ParseMeta *m = &p->meta[i];
		ParseColumn *pc = &p->cols[m->col];
		MsgField *f = &p->scan.fields[m->col];
		AttrNumber attnum = m->col + 1;

		f->state = FIELD_NULL;
		if (meta == NULL)
			continue;
		switch (m->kind)
		{
			case STREAMPROC_META_PARTITION:
				msgscan_field_begin(&p->scan, f);
				appendStringInfo(&p->scan.arena, "%d", meta->partition);
				msgscan_field_end(&p->scan, f, FIELD_VALUE);
				break;
			case STREAMPROC_META_OFFSET:
				msgscan_field_begin(&p->scan, f);
				appendStringInfo(&p->scan.arena, INT64_FORMAT, meta->offset);
				msgscan_field_end(&p->scan, f, FIELD_VALUE);
				break;
			case STREAMPROC_META_KEY:
				if (meta->key == NULL)
					break;
				if (!pc->is_bytea && !meta_text_ok(meta->key, meta->key_len))
					return msgscan_error(err, ERRCODE_CHARACTER_NOT_IN_REPERTOIRE, -1,
										 attnum,
										 "Kafka key for column \"%s\" is not valid UTF-8 text",
										 pc->name);
				if (meta->key_len > MaxAllocSize - VARHDRSZ - 1)
					return msgscan_error(err, ERRCODE_PROGRAM_LIMIT_EXCEEDED, -1,
										 attnum, "Kafka key is too long");
				msgscan_field_begin(&p->scan, f);
				appendBinaryStringInfo(&p->scan.arena, meta->key, (int)meta->key_len);
				msgscan_field_end(&p->scan, f, pc->is_bytea ? FIELD_BYTES : FIELD_VALUE);
				break;
			case STREAMPROC_META_TIMESTAMP:
				if (meta->timestamp_ms < 0)
					break;
				if (pc->is_timestamptz)
				{
					int64 epoch_ms = ((int64)(POSTGRES_EPOCH_JDATE - UNIX_EPOCH_JDATE)) *
									 SECS_PER_DAY * INT64CONST(1000);
					TimestampTz ts;

					if (meta->timestamp_ms > PG_INT64_MAX / 1000 ||
						!IS_VALID_TIMESTAMP(ts = (meta->timestamp_ms - epoch_ms) * 1000))
						return msgscan_error(err, ERRCODE_DATETIME_VALUE_OUT_OF_RANGE,
											 -1, attnum,
											 "Kafka timestamp " INT64_FORMAT " for column \"%s\" is out of range",
											 meta->timestamp_ms, pc->name);
					f->tsval = ts;
					f->state = FIELD_TIMESTAMP;
				}
				else
				{
					msgscan_field_begin(&p->scan, f);
					appendStringInfo(&p->scan.arena, INT64_FORMAT, meta->timestamp_ms);
					msgscan_field_end(&p->scan, f, FIELD_VALUE);
				}
				break;
			case STREAMPROC_META_HEADERS:
			{
				int h;

				resetStringInfo(&p->scratch);
				appendStringInfoChar(&p->scratch, '{');
				for (h = 0; h < meta->nheaders; h++)
				{
					const StreamprocHeader *hd = &meta->headers[h];

					if (!meta_text_ok(hd->name, strlen(hd->name)) ||
						(hd->value && !meta_text_ok(hd->value, hd->value_len)))
						return msgscan_error(err, ERRCODE_CHARACTER_NOT_IN_REPERTOIRE,
											 -1, attnum,
											 "Kafka header %d for column \"%s\" is not valid UTF-8 text",
											 h, pc->name);
					if (h > 0)
						appendStringInfoString(&p->scratch, ", ");
					escape_json(&p->scratch, hd->name);
					appendStringInfoString(&p->scratch, ": ");
					if (hd->value == NULL)
						appendStringInfoString(&p->scratch, "null");
					else
					{
						char *v = pnstrdup(hd->value, hd->value_len);

						escape_json(&p->scratch, v);
						pfree(v);
					}
				}
				appendStringInfoChar(&p->scratch, '}');
				msgscan_field_store(&p->scan, f, p->scratch.data, p->scratch.len);
				break;
			}
			case STREAMPROC_META_HEADER:
			{
				const StreamprocHeader *found = NULL;
				int h;

				for (h = 0; h < meta->nheaders; h++)
					if (strcmp(meta->headers[h].name, m->header) == 0)
						found = &meta->headers[h];
				if (found == NULL || found->value == NULL)
					break;
				if (!meta_text_ok(found->value, found->value_len))
					return msgscan_error(err, ERRCODE_CHARACTER_NOT_IN_REPERTOIRE,
										 -1, attnum,
										 "Kafka header \"%s\" for column \"%s\" is not valid UTF-8 text",
										 m->header, pc->name);
				msgscan_field_store(&p->scan, f, found->value, (int)found->value_len);
				break;
			}
		}
	}
	return true;
}

/* ------------------------------------------------------------------------
 * Phases
 * ------------------------------------------------------------------------
 */

/*
 * scan_message
 *		Phase 1: everything that can be checked without a type's input
 *		function.  Never throws for bad input.
 */
static bool
scan_message(StreamprocParser *p, const StreamprocMessage *msg,
			 Datum *values, bool *nulls, StreamprocParseError *err)
{
	int limit = streamproc_parser_max_message_bytes(p);
	int i;

	for (i = 0; i < p->natts; i++)
	{
		values[i] = (Datum)0;
		nulls[i] = true;
	}
	msgscan_begin(&p->scan);
	err->message[0] = '\0';

	if (msg->len > (size_t)limit)
		return msgscan_error(err, ERRCODE_PROGRAM_LIMIT_EXCEEDED, -1,
							 InvalidAttrNumber,
							 "message of %zu bytes exceeds the limit of %d bytes",
							 msg->len, limit);
	if (msg->data == NULL && msg->len > 0)
		return msgscan_error(err, ERRCODE_INVALID_PARAMETER_VALUE, -1,
							 InvalidAttrNumber, "message has no payload");

	if (!msgscan_payload(&p->scan, msg->data ? msg->data : "", msg->len, err) ||
		!scan_meta(p, msg->meta, err))
		return false;

	/* NOT NULL, where no function can change the answer */
	for (i = 0; i < p->natts; i++)
	{
		ParseColumn *pc = &p->cols[i];
		MsgField *f = &p->scan.fields[i];

		if (pc->dropped || !pc->notnull)
			continue;
		if (f->state == FIELD_NULL && pc->meta < 0)
			return msgscan_error(err, ERRCODE_NOT_NULL_VIOLATION, -1, i + 1,
								 "column \"%s\" is declared NOT NULL but its value in the message is null",
								 pc->name);
		if ((f->state == FIELD_MISSING && pc->defexpr == NULL) ||
			(f->state == FIELD_NULL && pc->meta >= 0))
			return msgscan_error(err, ERRCODE_NOT_NULL_VIOLATION, -1, i + 1,
								 "column \"%s\" is declared NOT NULL but the message has no value for it",
								 pc->name);
	}
	return true;
}

/* n digits at s as a number, or -1 if they are not all digits. */
static int
iso_digits(const char *s, int n)
{
	int v = 0;
	int i;

	for (i = 0; i < n; i++)
	{
		if (s[i] < '0' || s[i] > '9')
			return -1;
		v = v * 10 + (s[i] - '0');
	}
	return v;
}

/*
 * iso_timestamptz
 *		Fast path for the most common event-time text, ISO 8601
 *		"YYYY-MM-DD[T ]HH:MM:SS[.ffffff](Z|+HH[[:]MM]|-HH[[:]MM])": the same
 *		value as timestamptz_in(), without its general parser (which costs
 *		more than the rest of a message's parsing).  Anything else, and
 *		anything unusual within the shape (a leap second, a zone beyond
 *		15 hours, more than 6 fractional digits, a year outside 1000..9999),
 *		returns false for timestamptz_in() to handle.
 */
static bool
iso_timestamptz(const char *s, Datum *result)
{
	struct pg_tm tm;
	fsec_t fsec = 0;
	int tz = 0;
	Timestamp ts;
	const char *c;

	memset(&tm, 0, sizeof(tm));
	if ((tm.tm_year = iso_digits(s, 4)) < 1000 || s[4] != '-' ||
		(tm.tm_mon = iso_digits(s + 5, 2)) < 1 || tm.tm_mon > 12 || s[7] != '-' ||
		(tm.tm_mday = iso_digits(s + 8, 2)) < 1 ||
		tm.tm_mday > day_tab[isleap(tm.tm_year)][tm.tm_mon - 1] ||
		(s[10] != 'T' && s[10] != ' ') ||
		(tm.tm_hour = iso_digits(s + 11, 2)) < 0 || tm.tm_hour > 23 || s[13] != ':' ||
		(tm.tm_min = iso_digits(s + 14, 2)) < 0 || tm.tm_min > 59 || s[16] != ':' ||
		(tm.tm_sec = iso_digits(s + 17, 2)) < 0 || tm.tm_sec > 59)
		return false;
	c = s + 19;
	if (*c == '.')
	{
		int scale = 100000;

		c++;
		if (*c < '0' || *c > '9')
			return false;
		while (*c >= '0' && *c <= '9')
		{
			if (scale == 0)
				return false; /* more than 6 digits: let timestamptz_in round */
			fsec += (*c - '0') * scale;
			scale /= 10;
			c++;
		}
	}
	if (*c == 'Z' && c[1] == '\0')
		tz = 0;
	else if ((*c == '+' || *c == '-'))
	{
		int hh = iso_digits(c + 1, 2);
		int mm = 0;
		const char *e = c + 3;

		if (hh < 0 || hh > 15)
			return false;
		if (*e == ':')
			e++;
		if (*e != '\0')
		{
			if ((mm = iso_digits(e, 2)) < 0 || mm > 59 || e[2] != '\0')
				return false;
		}
		/* PostgreSQL's zone offsets count seconds west of UTC. */
		tz = (hh * SECS_PER_HOUR + mm * SECS_PER_MINUTE) * (*c == '+' ? -1 : 1);
	}
	else
		return false;

	if (tm2timestamp(&tm, fsec, &tz, &ts) != 0 || !IS_VALID_TIMESTAMP(ts))
		return false;
	*result = TimestampTzGetDatum(ts);
	return true;
}

/*
 * convert_row
 *		Phase 2: run the input functions and defaults.  May throw; the
 *		caller holds a subtransaction.  Values are allocated in rowcxt.
 */
static void
convert_row(StreamprocParser *p, Datum *values, bool *nulls,
			MemoryContext rowcxt)
{
	MemoryContext old = MemoryContextSwitchTo(rowcxt);
	int i;

	ResetExprContext(p->econtext);
	for (i = 0; i < p->natts; i++)
	{
		ParseColumn *pc = &p->cols[i];
		MsgField *f = &p->scan.fields[i];

		if (pc->dropped)
			continue;
		p->cur_col = i;
		p->cur_what = pc->meta >= 0 ? CONVERT_META : CONVERT_VALUE;
		switch (f->state)
		{
			case FIELD_VALUE:
			{
				char *str = p->scan.arena.data + f->off;

				if (!p->utf8_db)
					str = pg_any_to_server(str, f->len, PG_UTF8);
				if (pc->is_timestamptz && pc->typmod < 0 &&
					iso_timestamptz(str, &values[i]))
				{
					nulls[i] = false;
					break;
				}
				values[i] = InputFunctionCall(&pc->input, str, pc->typioparam,
											  pc->typmod);
				nulls[i] = false;
				break;
			}
			case FIELD_BYTES:
			{
				bytea *b = palloc(VARHDRSZ + f->len);

				SET_VARSIZE(b, VARHDRSZ + f->len);
				memcpy(VARDATA(b), p->scan.arena.data + f->off, f->len);
				values[i] = PointerGetDatum(b);
				nulls[i] = false;
				break;
			}
			case FIELD_TIMESTAMP:
				values[i] = TimestampTzGetDatum(f->tsval);
				nulls[i] = false;
				break;
			case FIELD_MISSING:
				if (pc->defexpr != NULL)
				{
					Datum d;
					bool isnull;

					p->cur_what = CONVERT_DEFAULT;
					d = ExecEvalExprSwitchContext(pc->defexpr, p->econtext,
												  &isnull);
					if (!isnull)
					{
						values[i] = datumCopy(d, pc->typbyval, pc->typlen);
						nulls[i] = false;
					}
					break;
				}
				/* FALLTHROUGH */
			case FIELD_NULL:
				/* domains check their constraints on NULL too */
				if (pc->is_domain)
				{
					p->cur_what = CONVERT_NULL;
					(void)InputFunctionCall(&pc->input, NULL, pc->typioparam,
											pc->typmod);
				}
				break;
		}
	}
	MemoryContextSwitchTo(old);
}

/*
 * conversion_error
 *		Describe an error caught in phase 2.
 */
static void
conversion_error(StreamprocParser *p, ErrorData *edata,
				 StreamprocParseError *err)
{
	ParseColumn *pc = &p->cols[p->cur_col];
	MsgField *f = &p->scan.fields[p->cur_col];
	const char *msg = edata->message ? edata->message : "unknown error";
	AttrNumber attnum = p->cur_col + 1;

	if (p->cur_what == CONVERT_DEFAULT)
		msgscan_error(err, edata->sqlerrcode, -1, attnum,
					  "default value of column \"%s\" could not be computed: %s",
					  pc->name, msg);
	else if (p->cur_what == CONVERT_NULL)
		msgscan_error(err, edata->sqlerrcode, -1, attnum,
					  "null for column \"%s\" is invalid: %s", pc->name, msg);
	else
	{
		const char *val = p->scan.arena.data + f->off;
		int cut = f->len;
		const char *kind = "value";

		if (f->state == FIELD_TIMESTAMP || f->state == FIELD_BYTES)
			val = "", cut = 0;
		if (cut > ERROR_VALUE_MAX)
			cut = pg_encoding_mbcliplen(PG_UTF8, val, cut, ERROR_VALUE_MAX);
		if (p->cur_what == CONVERT_META)
		{
			switch (p->meta[pc->meta].kind)
			{
				case STREAMPROC_META_PARTITION:
					kind = "Kafka partition";
					break;
				case STREAMPROC_META_OFFSET:
					kind = "Kafka offset";
					break;
				case STREAMPROC_META_KEY:
					kind = "Kafka key";
					break;
				case STREAMPROC_META_TIMESTAMP:
					kind = "Kafka timestamp";
					break;
				default:
					kind = "Kafka header";
					break;
			}
		}
		msgscan_error(err, edata->sqlerrcode, -1, attnum,
					  "%s \"%.*s%s\" for column \"%s\" is invalid: %s", kind, cut,
					  val, cut < f->len ? "..." : "", pc->name, msg);
	}
}

/*
 * Errors that are not about the message: never swallowed.  The views'
 * classification (errors.c), with one difference: a program limit (class
 * 54) that converting a message hits, such as a jsonb or an array too
 * large, is the message's; it would hit it again on every retry.
 */
static bool
must_rethrow(ErrorData *edata)
{
	if (edata->elevel > ERROR)
		return true;
	if (ERRCODE_TO_CATEGORY(edata->sqlerrcode) == ERRCODE_TO_CATEGORY(ERRCODE_PROGRAM_LIMIT_EXCEEDED))
		return false;
	return streamproc_error_kind(edata) != STREAMPROC_ERROR_DATA;
}

/*
 * parse_messages
 *		Both phases for n messages, with one lazily opened subtransaction
 *		around the conversions, replaced after each failure (see the file
 *		header).  On return no subtransaction of ours is open, whether the
 *		function returns or throws.
 */
static int
parse_messages(StreamprocParser *p, int n, const StreamprocMessage *msgs,
			   Datum *values, bool *nulls, bool *ok,
			   StreamprocParseError *errs, MemoryContext rowcxt)
{
	MemoryContext callercxt = CurrentMemoryContext;
	ResourceOwner callerowner = CurrentResourceOwner;
	volatile bool in_subxact = false;
	int nok = 0;
	int i;

	for (i = 0; i < n; i++)
	{
		Datum *v = values + (size_t)i * p->natts;
		bool *nl = nulls + (size_t)i * p->natts;
		StreamprocParseError *err = &errs[i];

		ok[i] = false;
		CHECK_FOR_INTERRUPTS();
		PG_TRY();
		{
			if (scan_message(p, &msgs[i], v, nl, err))
			{
				if (!in_subxact)
				{
					BeginInternalSubTransaction(NULL);
					MemoryContextSwitchTo(callercxt);
					in_subxact = true;
				}
				convert_row(p, v, nl, rowcxt);
				ok[i] = true;
			}
		}
		PG_CATCH();
		{
			ErrorData *edata;

			if (!in_subxact)
				PG_RE_THROW();
			MemoryContextSwitchTo(callercxt);
			edata = CopyErrorData();
			FlushErrorState();
			RollbackAndReleaseCurrentSubTransaction();
			MemoryContextSwitchTo(callercxt);
			CurrentResourceOwner = callerowner;
			in_subxact = false;
			if (must_rethrow(edata))
				ReThrowError(edata);
			conversion_error(p, edata, err);
			FreeErrorData(edata);
		}
		PG_END_TRY();

		/* NOT NULL for what defaults and domains produced */
		if (ok[i])
		{
			int j;

			for (j = 0; j < p->natts; j++)
				if (nl[j] && p->cols[j].notnull && !p->cols[j].dropped)
				{
					ok[i] = msgscan_error(err, ERRCODE_NOT_NULL_VIOLATION, -1, j + 1,
										  "column \"%s\" is declared NOT NULL but the message has no value for it",
										  p->cols[j].name);
					break;
				}
		}
		if (ok[i])
			nok++;
	}
	if (in_subxact)
	{
		ReleaseCurrentSubTransaction();
		MemoryContextSwitchTo(callercxt);
		CurrentResourceOwner = callerowner;
	}
	return nok;
}

/*
 * streamproc_parser_parse
 *		See parse.h.
 */
bool
streamproc_parser_parse(StreamprocParser *p, const char *data, size_t len,
						const StreamprocMessageMeta *meta, Datum *values,
						bool *nulls, StreamprocParseError *err)
{
	StreamprocMessage msg = {data, len, meta};
	bool ok;

	MemoryContextReset(p->msgcxt);
	parse_messages(p, 1, &msg, values, nulls, &ok, err, p->msgcxt);
	return ok;
}

/*
 * streamproc_parser_parse_batch
 *		See parse.h.
 */
int
streamproc_parser_parse_batch(StreamprocParser *p, int n,
							  const StreamprocMessage *msgs, Datum *values,
							  bool *nulls, bool *ok,
							  StreamprocParseError *errs)
{
	return parse_messages(p, n, msgs, values, nulls, ok, errs,
						  CurrentMemoryContext);
}

/* ------------------------------------------------------------------------
 * SQL-callable test entry points (internal)
 * ------------------------------------------------------------------------
 */

/* Metadata from jsonb {"partition", "offset", "key", "timestamp", "headers"}. */
static StreamprocMessageMeta *
meta_from_jsonb(Jsonb *j)
{
	StreamprocMessageMeta *meta;
	JsonbValue v;
	JsonbValue *r;

	if (!JB_ROOT_IS_OBJECT(j) || JB_ROOT_IS_SCALAR(j))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("message metadata must be a JSON object")));
	if (JB_ROOT_COUNT(j) == 0)
		return NULL;
	meta = palloc0(sizeof(StreamprocMessageMeta));
	meta->timestamp_ms = -1;

#define META_INT(name, field, conv)                                                     \
	if ((r = getKeyJsonValueFromContainer(&j->root, name, strlen(name), &v)) != NULL && \
		r->type == jbvNumeric)                                                          \
		meta->field = DatumGetInt64(DirectFunctionCall1(conv,                           \
														NumericGetDatum(r->val.numeric)));
	META_INT("partition", partition, numeric_int8);
	META_INT("offset", offset, numeric_int8);
	META_INT("timestamp", timestamp_ms, numeric_int8);
#undef META_INT
	if ((r = getKeyJsonValueFromContainer(&j->root, "key", 3, &v)) != NULL &&
		r->type == jbvString)
	{
		meta->key = pnstrdup(r->val.string.val, r->val.string.len);
		meta->key_len = r->val.string.len;
	}
	if ((r = getKeyJsonValueFromContainer(&j->root, "headers", 7, &v)) != NULL &&
		r->type == jbvBinary && JsonContainerIsObject(r->val.binary.data))
	{
		JsonbIterator *it = JsonbIteratorInit(r->val.binary.data);
		JsonbIteratorToken tok;
		JsonbValue hv;
		StreamprocHeader *hs = palloc0(sizeof(StreamprocHeader) *
									   JsonContainerSize(r->val.binary.data));
		int nh = 0;

		while ((tok = JsonbIteratorNext(&it, &hv, true)) != WJB_DONE)
		{
			if (tok == WJB_KEY)
				hs[nh].name = pnstrdup(hv.val.string.val, hv.val.string.len);
			else if (tok == WJB_VALUE)
			{
				if (hv.type == jbvString)
				{
					hs[nh].value = pnstrdup(hv.val.string.val, hv.val.string.len);
					hs[nh].value_len = hv.val.string.len;
				}
				nh++;
			}
		}
		meta->headers = hs;
		meta->nheaders = nh;
	}
	return meta;
}

/* Open the stream and build a parser from the SQL arguments. */
static StreamprocParser *
parser_from_args(FunctionCallInfo fcinfo, Relation *rel)
{
	Oid relid = PG_GETARG_OID(0);
	char *fmt = text_to_cstring(PG_GETARG_TEXT_PP(1));
	Jsonb *options = PG_GETARG_JSONB_P(3);
	StreamprocFormat format;
	StreamprocParserOptions opts;

	streamproc_check_preloaded();
	*rel = relation_open(relid, AccessShareLock);
	if (!streamproc_is_stream(relid))
		ereport(ERROR,
				(errcode(ERRCODE_WRONG_OBJECT_TYPE),
				 errmsg("\"%s\" is not a stream", RelationGetRelationName(*rel))));
	if (!streamproc_format_from_name(fmt, &format))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("unrecognized message format \"%s\"", fmt),
				 errhint("The formats are json, csv and text.")));
	streamproc_parser_options_from_jsonb(options, &opts);
	return streamproc_parser_create(*rel, format, &opts, CurrentMemoryContext);
}

/* The parsed row as jsonb (row_to_json, then jsonb: what to_jsonb gives). */
static Datum
row_jsonb(Relation rel, Datum *values, bool *nulls)
{
	HeapTuple tup = heap_form_tuple(RelationGetDescr(rel), values, nulls);
	Datum json = DirectFunctionCall1(row_to_json, HeapTupleGetDatum(tup));

	return DirectFunctionCall1(jsonb_in,
							   CStringGetDatum(text_to_cstring(DatumGetTextPP(json))));
}

/*
 * streamproc._parse_message(stream, format, payload, options, meta)
 *		One message through the parser: (ok, error, row as jsonb).
 */
Datum
streamproc_parse_message(PG_FUNCTION_ARGS)
{
	ReturnSetInfo *rsinfo = (ReturnSetInfo *)fcinfo->resultinfo;
	bytea *payload = PG_GETARG_BYTEA_PP(2);
	StreamprocMessageMeta *meta = meta_from_jsonb(PG_GETARG_JSONB_P(4));
	Relation rel;
	StreamprocParser *p;
	StreamprocParseError err;
	Datum *values;
	bool *nulls;
	Datum out[3];
	bool outnulls[3] = {false, false, false};
	bool ok;

	InitMaterializedSRF(fcinfo, 0);
	p = parser_from_args(fcinfo, &rel);
	values = palloc(sizeof(Datum) * Max(p->natts, 1));
	nulls = palloc(sizeof(bool) * Max(p->natts, 1));
	ok = streamproc_parser_parse(p, VARDATA_ANY(payload),
								 VARSIZE_ANY_EXHDR(payload), meta, values,
								 nulls, &err);
	out[0] = BoolGetDatum(ok);
	if (ok)
	{
		outnulls[1] = true;
		out[2] = row_jsonb(rel, values, nulls);
	}
	else
	{
		out[1] = CStringGetTextDatum(err.message);
		outnulls[2] = true;
	}
	tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, out, outnulls);
	streamproc_parser_destroy(p);
	relation_close(rel, AccessShareLock);
	return (Datum)0;
}

/*
 * streamproc._parse_messages(stream, format, payloads bytea[], options)
 *		A batch through streamproc_parser_parse_batch: one row per
 *		message (n, ok, error, row as jsonb).  NULL elements are empty
 *		messages.
 */
Datum
streamproc_parse_messages(PG_FUNCTION_ARGS)
{
	ReturnSetInfo *rsinfo = (ReturnSetInfo *)fcinfo->resultinfo;
	ArrayType *arr = PG_GETARG_ARRAYTYPE_P(2);
	Datum *elems;
	bool *elemnulls;
	int n;
	int i;
	Relation rel;
	StreamprocParser *p;
	StreamprocMessage *msgs;
	StreamprocParseError *errs;
	Datum *values;
	bool *nulls;
	bool *ok;

	InitMaterializedSRF(fcinfo, 0);
	p = parser_from_args(fcinfo, &rel);
	deconstruct_array(arr, BYTEAOID, -1, false, TYPALIGN_INT, &elems,
					  &elemnulls, &n);
	msgs = palloc0(sizeof(StreamprocMessage) * Max(n, 1));
	for (i = 0; i < n; i++)
		if (!elemnulls[i])
		{
			bytea *b = DatumGetByteaPP(elems[i]);

			msgs[i].data = VARDATA_ANY(b);
			msgs[i].len = VARSIZE_ANY_EXHDR(b);
		}
	errs = palloc0(sizeof(StreamprocParseError) * Max(n, 1));
	values = palloc(sizeof(Datum) * Max(p->natts, 1) * Max(n, 1));
	nulls = palloc(sizeof(bool) * Max(p->natts, 1) * Max(n, 1));
	ok = palloc(sizeof(bool) * Max(n, 1));
	streamproc_parser_parse_batch(p, n, msgs, values, nulls, ok, errs);
	for (i = 0; i < n; i++)
	{
		Datum out[4];
		bool outnulls[4] = {false, false, false, false};

		out[0] = Int32GetDatum(i + 1);
		out[1] = BoolGetDatum(ok[i]);
		if (ok[i])
		{
			outnulls[2] = true;
			out[3] = row_jsonb(rel, values + (size_t)i * p->natts,
							   nulls + (size_t)i * p->natts);
		}
		else
		{
			out[2] = CStringGetTextDatum(errs[i].message);
			outnulls[3] = true;
		}
		tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, out, outnulls);
	}
	streamproc_parser_destroy(p);
	relation_close(rel, AccessShareLock);
	return (Datum)0;
}
