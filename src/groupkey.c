/*-------------------------------------------------------------------------
 *
 * groupkey.c
 *	  The byte format of group keys.
 *
 * A group of a continuous view is identified by its group key: the values
 * of its group columns as one byte string, compared byte for byte.  The
 * workers encode it from a batch query's rows, the readers from the
 * values a query looks up, and both decode it when they return rows; this
 * file is the only one that knows the layout:
 *
 *		per group column:
 *			byte    0: NULL (nothing follows), 1: a value
 *			varint  the value's length
 *			bytes   the value
 *
 * (A windowed view's key has the window's prefix first: windows.c.)
 *
 * Values that GROUP BY treats as equal must encode alike, and a value
 * must encode alike in every backend, whatever its settings:
 *	- fixed-width types (integers, floats, bool, dates and times, money,
 *	  uuid) are written as their binary send functions write them, but
 *	  without calling them; floats' -0 becomes 0 and every NaN one NaN;
 *	- numeric is written as numeric_normalize() prints it (1.0 and 1.00
 *	  are one group, shown as 1);
 *	- text, varchar and name are written as stored, in the database
 *	  encoding; bpchar without its trailing spaces, which bpchar equality
 *	  ignores;
 *	- every other type goes through its send and receive functions, with
 *	  the client encoding set to SQL_ASCII while they run: text inside
 *	  them (enum labels, json, arrays of text, records) would otherwise be
 *	  converted to the client's encoding, and a reader whose client
 *	  encoding is not the worker's would compute another key.
 * Values of types whose equal values can differ in binary form (text
 * under a nondeterministic collation, jsonb numbers) form separate groups;
 * docs/architecture.md says so.
 *
 * groupkey_split() is pure C: the fuzzers build it outside the server.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "groupkey.h"
#include "varint.h"

#ifndef STREAMPROC_FRONTEND
#include "catalog/pg_type.h"
#include "mb/pg_wchar.h"
#include "port/pg_bswap.h"
#include "utils/builtins.h"
#include "utils/float.h"
#include "utils/lsyscache.h"
#include "utils/numeric.h"
#include "utils/uuid.h"
#endif

bool
groupkey_split(const char *key, size_t len, int ncols, GroupKeyField *fields)
{
	const char *p = key;
	const char *end = key + len;
	int i;

	for (i = 0; i < ncols; i++)
	{
		uint64_t l;

		if (p >= end)
			return false;
		if (*p == 0)
		{
			p++;
			fields[i].data = NULL;
			fields[i].len = 0;
			fields[i].isnull = true;
			continue;
		}
		if (*p != 1)
			return false;
		p++;
		if (!varint_get(&p, end, &l) || l > (uint64_t)(end - p) || l > PG_UINT32_MAX)
			return false;
		fields[i].data = p;
		fields[i].len = (uint32)l;
		fields[i].isnull = false;
		p += l;
	}
	return p == end;
}

#ifndef STREAMPROC_FRONTEND

/* How one group column's values are written. */
typedef enum KeyKind
{
	KEY_FIXED2, /* int2 */
	KEY_FIXED4, /* int4, oid, date */
	KEY_FIXED8, /* int8, timestamp(tz), time, money */
	KEY_FLOAT4,
	KEY_FLOAT8,
	KEY_BOOL,
	KEY_UUID,
	KEY_NUMERIC,
	KEY_TEXT,   /* text, varchar */
	KEY_BPCHAR, /* bpchar: trailing spaces dropped */
	KEY_NAME,
	KEY_SEND /* send and receive functions */
} KeyKind;

typedef struct KeyColumn
{
	Oid type;
	KeyKind kind;
	FmgrInfo send; /* KEY_SEND only */
	FmgrInfo recv;
	Oid ioparam;
} KeyColumn;

struct GroupKeyCodec
{
	int ncols;
	bool any_send; /* some column is KEY_SEND */
	KeyColumn cols[FLEXIBLE_ARRAY_MEMBER];
};

static KeyKind
key_kind(Oid type)
{
	switch (getBaseType(type))
	{
		case INT2OID:
			return KEY_FIXED2;
		case INT4OID:
		case OIDOID:
		case DATEOID:
			return KEY_FIXED4;
		case INT8OID:
		case TIMESTAMPOID:
		case TIMESTAMPTZOID:
		case TIMEOID:
		case CASHOID:
			return KEY_FIXED8;
		case FLOAT4OID:
			return KEY_FLOAT4;
		case FLOAT8OID:
			return KEY_FLOAT8;
		case BOOLOID:
			return KEY_BOOL;
		case UUIDOID:
			return KEY_UUID;
		case NUMERICOID:
			return KEY_NUMERIC;
		case TEXTOID:
		case VARCHAROID:
			return KEY_TEXT;
		case BPCHAROID:
			return KEY_BPCHAR;
		case NAMEOID:
			return KEY_NAME;
		default:
			return KEY_SEND;
	}
}

/*
 * groupkey_codec_create
 *		A codec for keys of the given group column types, in
 *		CurrentMemoryContext.
 */
GroupKeyCodec *
groupkey_codec_create(int ncols, const Oid *types)
{
	GroupKeyCodec *codec = palloc0(offsetof(GroupKeyCodec, cols) +
								   sizeof(KeyColumn) * Max(ncols, 1));
	int i;

	codec->ncols = ncols;
	for (i = 0; i < ncols; i++)
	{
		KeyColumn *col = &codec->cols[i];

		col->type = types[i];
		col->kind = key_kind(types[i]);
		if (col->kind == KEY_SEND)
		{
			Oid sendfn;
			Oid recvfn;
			bool varlena;

			getTypeBinaryOutputInfo(types[i], &sendfn, &varlena);
			getTypeBinaryInputInfo(types[i], &recvfn, &col->ioparam);
			fmgr_info(sendfn, &col->send);
			fmgr_info(recvfn, &col->recv);
			codec->any_send = true;
		}
	}
	return codec;
}

int
groupkey_codec_ncols(const GroupKeyCodec *codec)
{
	return codec->ncols;
}

/*
 * The client encoding send and receive functions must see (see the file
 * header): returns the encoding to restore afterwards, or -1 when nothing
 * had to change.
 */
static int
binary_encoding_begin(void)
{
	int encoding = pg_get_client_encoding();

	if (encoding == PG_SQL_ASCII || encoding == GetDatabaseEncoding())
		return -1;
	if (SetClientEncoding(PG_SQL_ASCII) < 0)
		elog(ERROR, "could not switch the client encoding to SQL_ASCII");
	return encoding;
}

static void
binary_encoding_end(int saved)
{
	if (saved >= 0 && SetClientEncoding(saved) < 0)
		elog(ERROR, "could not restore client encoding %s",
			 pg_encoding_to_char(saved));
}

/* Append a field header and the value's bytes. */
static void
put_field(StringInfo buf, const char *data, uint32 len)
{
	char *p;

	enlargeStringInfo(buf, 1 + VARINT_MAX_BYTES + len);
	p = buf->data + buf->len;
	*p++ = 1;
	p += varint_put(p, len);
	memcpy(p, data, len);
	p += len;
	buf->len = (int)(p - buf->data);
	buf->data[buf->len] = '\0';
}

static void
encode_value(KeyColumn *col, Datum value, StringInfo buf)
{
	switch (col->kind)
	{
		case KEY_FIXED2:
		{
			uint16 v = pg_hton16((uint16)DatumGetInt16(value));

			put_field(buf, (char *)&v, sizeof(v));
			break;
		}
		case KEY_FIXED4:
		{
			uint32 v = pg_hton32((uint32)DatumGetInt32(value));

			put_field(buf, (char *)&v, sizeof(v));
			break;
		}
		case KEY_FIXED8:
		{
			uint64 v = pg_hton64((uint64)DatumGetInt64(value));

			put_field(buf, (char *)&v, sizeof(v));
			break;
		}
		case KEY_FLOAT4:
		{
			float4 f = DatumGetFloat4(value);
			union
			{
				float4 f;
				uint32 i;
			} u;

			u.f = isnan(f) ? get_float4_nan() : (f == 0.0f ? 0.0f : f);
			u.i = pg_hton32(u.i);
			put_field(buf, (char *)&u.i, sizeof(u.i));
			break;
		}
		case KEY_FLOAT8:
		{
			float8 f = DatumGetFloat8(value);
			union
			{
				float8 f;
				uint64 i;
			} u;

			u.f = isnan(f) ? get_float8_nan() : (f == 0.0 ? 0.0 : f);
			u.i = pg_hton64(u.i);
			put_field(buf, (char *)&u.i, sizeof(u.i));
			break;
		}
		case KEY_BOOL:
		{
			char b = DatumGetBool(value) ? 1 : 0;

			put_field(buf, &b, 1);
			break;
		}
		case KEY_UUID:
			put_field(buf, (char *)DatumGetUUIDP(value)->data, UUID_LEN);
			break;
		case KEY_NUMERIC:
		{
			char *s = numeric_normalize(DatumGetNumeric(value));

			put_field(buf, s, strlen(s));
			pfree(s);
			break;
		}
		case KEY_TEXT:
		{
			text *t = DatumGetTextPP(value);

			put_field(buf, VARDATA_ANY(t), VARSIZE_ANY_EXHDR(t));
			break;
		}
		case KEY_BPCHAR:
		{
			text *t = DatumGetTextPP(value);
			const char *s = VARDATA_ANY(t);
			int len = VARSIZE_ANY_EXHDR(t);

			while (len > 0 && s[len - 1] == ' ')
				len--;
			put_field(buf, s, len);
			break;
		}
		case KEY_NAME:
		{
			const char *s = NameStr(*DatumGetName(value));

			put_field(buf, s, strnlen(s, NAMEDATALEN));
			break;
		}
		case KEY_SEND:
		{
			bytea *out = SendFunctionCall(&col->send, value);

			put_field(buf, VARDATA(out), VARSIZE(out) - VARHDRSZ);
			pfree(out);
			break;
		}
	}
}

static void
encode_all(GroupKeyCodec *codec, const Datum *values, const bool *isnull,
		   StringInfo buf)
{
	int i;

	for (i = 0; i < codec->ncols; i++)
	{
		if (isnull[i])
			appendStringInfoChar(buf, 0);
		else
			encode_value(&codec->cols[i], values[i], buf);
	}
}

void
groupkey_encode(GroupKeyCodec *codec, const Datum *values, const bool *isnull,
				StringInfo buf)
{
	int saved;

	if (!codec->any_send || (saved = binary_encoding_begin()) < 0)
	{
		encode_all(codec, values, isnull, buf);
		return;
	}
	PG_TRY();
	{
		encode_all(codec, values, isnull, buf);
	}
	PG_FINALLY();
	{
		binary_encoding_end(saved);
	}
	PG_END_TRY();
}

static void
corrupt_key(GroupKeyCodec *codec)
{
	ereport(ERROR,
			(errcode(ERRCODE_DATA_CORRUPTED),
			 errmsg("corrupt group key in continuous view state"),
			 errdetail("The key does not hold %d group columns.", codec->ncols)));
}

static Datum
decode_value(GroupKeyCodec *codec, KeyColumn *col, const GroupKeyField *f)
{
	switch (col->kind)
	{
		case KEY_FIXED2:
		{
			uint16 v;

			if (f->len != sizeof(v))
				corrupt_key(codec);
			memcpy(&v, f->data, sizeof(v));
			return Int16GetDatum((int16)pg_ntoh16(v));
		}
		case KEY_FIXED4:
		{
			uint32 v;

			if (f->len != sizeof(v))
				corrupt_key(codec);
			memcpy(&v, f->data, sizeof(v));
			return Int32GetDatum((int32)pg_ntoh32(v));
		}
		case KEY_FIXED8:
		{
			uint64 v;

			if (f->len != sizeof(v))
				corrupt_key(codec);
			memcpy(&v, f->data, sizeof(v));
			return Int64GetDatum((int64)pg_ntoh64(v));
		}
		case KEY_FLOAT4:
		{
			union
			{
				float4 f;
				uint32 i;
			} u;

			if (f->len != sizeof(u.i))
				corrupt_key(codec);
			memcpy(&u.i, f->data, sizeof(u.i));
			u.i = pg_ntoh32(u.i);
			return Float4GetDatum(u.f);
		}
		case KEY_FLOAT8:
		{
			union
			{
				float8 f;
				uint64 i;
			} u;

			if (f->len != sizeof(u.i))
				corrupt_key(codec);
			memcpy(&u.i, f->data, sizeof(u.i));
			u.i = pg_ntoh64(u.i);
			return Float8GetDatum(u.f);
		}
		case KEY_BOOL:
			if (f->len != 1)
				corrupt_key(codec);
			return BoolGetDatum(f->data[0] != 0);
		case KEY_UUID:
		{
			pg_uuid_t *u;

			if (f->len != UUID_LEN)
				corrupt_key(codec);
			u = palloc(sizeof(pg_uuid_t));
			memcpy(u->data, f->data, UUID_LEN);
			return UUIDPGetDatum(u);
		}
		case KEY_NUMERIC:
			return DirectFunctionCall3(numeric_in,
									   CStringGetDatum(pnstrdup(f->data, f->len)),
									   ObjectIdGetDatum(InvalidOid),
									   Int32GetDatum(-1));
		case KEY_TEXT:
		case KEY_BPCHAR:
			return PointerGetDatum(cstring_to_text_with_len(f->data, f->len));
		case KEY_NAME:
		{
			Name n;

			if (f->len >= NAMEDATALEN)
				corrupt_key(codec);
			n = palloc0(NAMEDATALEN);
			memcpy(NameStr(*n), f->data, f->len);
			return NameGetDatum(n);
		}
		case KEY_SEND:
		{
			StringInfoData buf;
			Datum result;

			/* receive functions want a terminated, private buffer */
			initStringInfo(&buf);
			appendBinaryStringInfo(&buf, f->data, f->len);
			result = ReceiveFunctionCall(&col->recv, &buf, col->ioparam, -1);
			if (buf.cursor != buf.len)
				corrupt_key(codec);
			pfree(buf.data);
			return result;
		}
	}
	return (Datum)0; /* keep compiler quiet */
}

static void
decode_all(GroupKeyCodec *codec, const GroupKeyField *fields, Datum *values,
		   bool *isnull)
{
	int i;

	for (i = 0; i < codec->ncols; i++)
	{
		isnull[i] = fields[i].isnull;
		values[i] = isnull[i] ? (Datum)0 : decode_value(codec, &codec->cols[i], &fields[i]);
	}
}

void
groupkey_decode(GroupKeyCodec *codec, const char *key, size_t len,
				Datum *values, bool *isnull)
{
	GroupKeyField fields_buf[8];
	GroupKeyField *fields = fields_buf;
	int saved;

	if (codec->ncols > lengthof(fields_buf))
		fields = palloc(sizeof(GroupKeyField) * codec->ncols);
	if (!groupkey_split(key, len, codec->ncols, fields))
		corrupt_key(codec);
	if (!codec->any_send || (saved = binary_encoding_begin()) < 0)
		decode_all(codec, fields, values, isnull);
	else
	{
		PG_TRY();
		{
			decode_all(codec, fields, values, isnull);
		}
		PG_FINALLY();
		{
			binary_encoding_end(saved);
		}
		PG_END_TRY();
	}
	if (fields != fields_buf)
		pfree(fields);
}

#endif /* STREAMPROC_FRONTEND */
