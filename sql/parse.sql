--
-- Message parsers for Kafka sources (src/parse.c), through the internal
-- entry points streamproc._parse_message and streamproc._parse_messages.
--
SET TimeZone = 'UTC';
SET DateStyle = 'ISO, YMD';
SET extra_float_digits = 0;

CREATE FOREIGN TABLE ptypes (
    i2 int2, i4 int4, i8 int8, num numeric, f8 float8, t text, b bool,
    d date, ts timestamptz, j json, jb jsonb, u uuid, arr int[]
) SERVER streamproc;

CREATE FOREIGN TABLE pdef (
    id int NOT NULL,
    name text DEFAULT 'anon',
    qty int DEFAULT 7,
    note text
) SERVER streamproc;

-- Helper: parse a text payload.
CREATE FUNCTION p(stream regclass, fmt text, payload text,
                  options jsonb DEFAULT '{}', meta jsonb DEFAULT '{}')
RETURNS TABLE(ok boolean, error text, row_json jsonb)
LANGUAGE sql AS $$
    SELECT * FROM streamproc._parse_message(stream, fmt,
        convert_to(payload, 'UTF8'), options, meta)
$$;

-- ===================================================================
-- json
-- ===================================================================

-- Every type, well formed.
SELECT * FROM p('ptypes', 'json', '{"i2": 1, "i4": -2147483648, "i8": 9223372036854775807,
  "num": 12345.678900, "f8": 1.5e3, "t": "hello", "b": true, "d": "2024-02-29",
  "ts": "2024-01-02T03:04:05.123456Z", "j": {"a": [1, 2, {"b": null}]},
  "jb": [1, "x", {"k": false}], "u": "a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11",
  "arr": [1, 2, 3]}');

-- Round trip: to_jsonb of a row parses back to the same row.
CREATE TABLE ptypes_rows (LIKE ptypes);
INSERT INTO ptypes_rows VALUES
  (1, 2, 3, 4.50, 0.25, 'x "quoted" \ back', false, '2000-01-01',
   '1999-12-31 23:59:59.999999+00', '{"nested": {"x": 1}}', '{"k": [1, 2]}',
   '00000000-0000-0000-0000-000000000000', '{-1,0,1}'),
  (-32768, 0, -9223372036854775808, -0.000001, -1e300, E'tab\there\nnewline é 😀',
   true, '0001-01-01', 'infinity', '[]', 'null', 'ffffffff-ffff-ffff-ffff-ffffffffffff', '{}'),
  (NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL),
  (7, 7, 7, 'NaN', 'Infinity', '', true, '2024-06-30', '2024-06-30 12:00:00+00',
   '"a string"', '12.5', 'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11', '{{1,2},{3,4}}');
SELECT count(*) AS rows,
       count(*) FILTER (WHERE r.ok AND r.row_json = to_jsonb(src)) AS round_tripped
  FROM ptypes_rows src,
       LATERAL p('ptypes', 'json', to_jsonb(src)::text) r;
-- (NaN and Infinity are JSON strings in to_jsonb and still parse.)
SELECT r.row_json->'num' AS num, r.row_json->'f8' AS f8, r.row_json->'arr' AS arr
  FROM ptypes_rows src, LATERAL p('ptypes', 'json', to_jsonb(src)::text) r
 WHERE src.i2 = 7;

-- String escapes, including \u escapes and surrogate pairs.
SELECT row_json->>'t' AS t, length(row_json->>'t') AS len
  FROM p('ptypes', 'json', '{"t": "q\" b\\ s\/ \b\f\n\r\t end"}');
SELECT row_json->>'t' AS t
  FROM p('ptypes', 'json', '{"t": "\u0041\u00e9\u20AC\ud83d\ude00 \uD834\uDD1E"}');
SELECT row_json->>'t' = E'A\u00e9\u20ac\U0001F600 \U0001D11E' AS same
  FROM p('ptypes', 'json', '{"t": "\u0041\u00e9\u20AC\ud83d\ude00 \uD834\uDD1E"}');
-- Escapes in keys too.
SELECT row_json->>'t' AS t FROM p('ptypes', 'json', '{"\u0074": "via escaped key"}');
-- Invalid escapes.
SELECT ok, error FROM p('ptypes', 'json', '{"t": "\ud83d"}');
SELECT ok, error FROM p('ptypes', 'json', '{"t": "\ud83d\u0041"}');
SELECT ok, error FROM p('ptypes', 'json', '{"t": "\ude00"}');
SELECT ok, error FROM p('ptypes', 'json', '{"t": "\u00g1"}');
SELECT ok, error FROM p('ptypes', 'json', '{"t": "\u12"}');
SELECT ok, error FROM p('ptypes', 'json', '{"t": "\x41"}');
SELECT ok, error FROM p('ptypes', 'json', '{"t": "\u0000"}');
-- \u0000 is fine inside nested raw text (json, text), not in jsonb.
SELECT ok, error, row_json->'t' AS t FROM p('ptypes', 'json', '{"t": {"s": "\u0000"}}');
SELECT ok, error FROM p('ptypes', 'json', '{"jb": {"s": "\u0000"}}');
-- Raw control characters must be escaped.
SELECT ok, error FROM p('ptypes', 'json', E'{"t": "a\tb"}');

-- Nested values go to json/jsonb columns as their text; scalars too.
SELECT row_json->'j' AS j, row_json->'jb' AS jb
  FROM p('ptypes', 'json', '{"j": {"a":  [1,2] , "b": {"c": "d"}}, "jb": {"z": 1, "a": [true, null]}}');
SELECT row_json->'j' AS j, row_json->'jb' AS jb
  FROM p('ptypes', 'json', '{"j": "just a string", "jb": 42}');
SELECT row_json->'j' AS j, row_json->'jb' AS jb
  FROM p('ptypes', 'json', '{"j": null, "jb": null}');
-- Nested values for other types are their JSON text, for the input function.
SELECT ok, error, row_json->'t' AS t FROM p('ptypes', 'json', '{"t": {"a": [1, "x"]}}');
SELECT ok, error FROM p('ptypes', 'json', '{"i4": [1]}');
-- JSON arrays for array columns become array literals.
SELECT row_json->'arr' AS arr FROM p('ptypes', 'json', '{"arr": [[1, 2], [3, null]]}');
SELECT row_json->'arr' AS arr FROM p('ptypes', 'json', '{"arr": []}');
SELECT row_json->'arr' AS arr FROM p('ptypes', 'json', '{"arr": "{4,5}"}');
SELECT ok, error FROM p('ptypes', 'json', '{"arr": [1, "two"]}');
SELECT ok, error FROM p('ptypes', 'json', '{"arr": [[1], 2]}');

-- Numbers, booleans and null as literal text.
SELECT row_json->'num' AS num, row_json->'t' AS t, row_json->'b' AS b
  FROM p('ptypes', 'json', '{"num": -0.10e-2, "t": 1.50, "b": false}');
SELECT row_json->'t' AS t FROM p('ptypes', 'json', '{"t": true}');
SELECT row_json->'i4' AS i4, row_json->'t' AS t FROM p('ptypes', 'json', '{"i4": null, "t": null}');

-- Missing keys: column default, else NULL; unknown keys ignored;
-- duplicate keys: the last wins; key match is exact (case sensitive).
SELECT ok, error, row_json FROM p('pdef', 'json', '{"id": 1}');
SELECT ok, error, row_json FROM p('pdef', 'json',
  '{"id": 2, "unknown": {"deep": [1, 2, {"x": "y"}]}, "other": null, "note": "n"}');
SELECT ok, error, row_json FROM p('pdef', 'json', '{"id": 3, "name": "a", "name": "b"}');
SELECT ok, error, row_json FROM p('pdef', 'json', '{"ID": 4, "id": 5, "Name": "x"}');
-- An explicit null is NULL, not the default.
SELECT ok, error, row_json FROM p('pdef', 'json', '{"id": 6, "qty": null}');

-- NOT NULL.
SELECT ok, error FROM p('pdef', 'json', '{"name": "x"}');
SELECT ok, error FROM p('pdef', 'json', '{"id": null}');

-- Wrong types: the input function's error, with the value and column.
SELECT ok, error FROM p('ptypes', 'json', '{"num": "abc"}');
SELECT ok, error FROM p('ptypes', 'json', '{"i2": 70000}');
SELECT ok, error FROM p('ptypes', 'json', '{"i4": 1.5}');
SELECT ok, error FROM p('ptypes', 'json', '{"b": "maybe"}');
SELECT ok, error FROM p('ptypes', 'json', '{"d": "2023-02-29"}');
SELECT ok, error FROM p('ptypes', 'json', '{"u": "not-a-uuid"}');
SELECT ok, error FROM p('ptypes', 'json', '{"ts": "yesterday-ish"}');
SELECT ok, error FROM p('ptypes', 'json',
  '{"i8": "' || repeat('9', 100) || '"}');

-- Syntax errors, with the byte offset.
SELECT ok, error FROM p('ptypes', 'json', '{"i4" 1}');
SELECT ok, error FROM p('ptypes', 'json', '{"i4": 1,}');
SELECT ok, error FROM p('ptypes', 'json', '{"i4": 1 "t": "x"}');
SELECT ok, error FROM p('ptypes', 'json', '{i4: 1}');
SELECT ok, error FROM p('ptypes', 'json', '{"i4": 01}');
SELECT ok, error FROM p('ptypes', 'json', '{"i4": -}');
SELECT ok, error FROM p('ptypes', 'json', '{"i4": 1.}');
SELECT ok, error FROM p('ptypes', 'json', '{"i4": 1e}');
SELECT ok, error FROM p('ptypes', 'json', '{"b": tru}');
SELECT ok, error FROM p('ptypes', 'json', '{"b": True}');
SELECT ok, error FROM p('ptypes', 'json', '{"t": "unterminated');
SELECT ok, error FROM p('ptypes', 'json', '{"j": [1, 2}');
SELECT ok, error FROM p('ptypes', 'json', '{"j": {"a" 1}}');
SELECT ok, error FROM p('ptypes', 'json', '{"x": [1, 2}');
SELECT ok, error FROM p('ptypes', 'json', '{"i4": 1}}');
SELECT ok, error FROM p('ptypes', 'json', '{"i4": 1} {"i4": 2}');
SELECT ok, error FROM p('ptypes', 'json', '{"i4": 1');
SELECT ok, error FROM p('ptypes', 'json', '');
SELECT ok, error FROM p('ptypes', 'json', '   ');
SELECT ok, error FROM p('ptypes', 'json', '[{"i4": 1}]');
SELECT ok, error FROM p('ptypes', 'json', '"str"');
SELECT ok, error FROM p('ptypes', 'json', '42');
SELECT ok, error FROM p('ptypes', 'json', 'null');
SELECT ok, error FROM p('ptypes', 'json', 'true');
SELECT ok, error FROM p('ptypes', 'json', '<xml/>');
-- Whitespace around is fine, and an empty object.
SELECT ok, error, row_json->'i4' AS i4 FROM p('ptypes', 'json', E' \n\t{ "i4" : 5 }\r\n ');
SELECT ok, error FROM p('pdef', 'json', '{}');
-- Depth limit (256), also in ignored keys.
SELECT ok, error FROM p('ptypes', 'json',
  '{"j": ' || repeat('[', 256) || repeat(']', 256) || '}');
SELECT ok, error FROM p('ptypes', 'json',
  '{"j": ' || repeat('[', 257) || repeat(']', 257) || '}');
SELECT ok, error FROM p('ptypes', 'json',
  '{"zz": ' || repeat('{"a":', 300) || '1' || repeat('}', 300) || '}');

-- Garbage bytes and invalid UTF-8: clean errors.
SELECT ok, error FROM streamproc._parse_message('ptypes', 'json', '\x7b2274223a2022ff227d');
SELECT ok, error FROM streamproc._parse_message('ptypes', 'json', '\x7b2274223a2022c3227d');
SELECT ok, error FROM streamproc._parse_message('ptypes', 'json', '\x7b2274223a2022eda0bd227d');
SELECT ok, error FROM streamproc._parse_message('ptypes', 'json', '\x7b227422003a2231227d');
SELECT ok, error FROM streamproc._parse_message('ptypes', 'json', '\x00');
SELECT ok, error FROM streamproc._parse_message('ptypes', 'csv', '\xfffe');
SELECT ok, error FROM streamproc._parse_message('ptypes', 'text', '\x80');

-- ===================================================================
-- csv
-- ===================================================================

SELECT ok, error, row_json FROM p('ptypes', 'csv',
  '1,2,3,4.5,0.25,hello,t,2024-02-29,2024-01-02 03:04:05+00,"{""a"": [1,2]}","{""b"": null}",a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11,"{1,2,3}"');
-- Round trip through CSV (every field quoted, NULL as an empty field).
CREATE FUNCTION quote_csv(v text) RETURNS text LANGUAGE sql IMMUTABLE AS
$$ SELECT CASE WHEN v IS NULL THEN '' ELSE '"' || replace(v, '"', '""') || '"' END $$;
SELECT count(*) AS rows,
       count(*) FILTER (WHERE r.ok AND r.row_json = to_jsonb(src)) AS round_tripped
  FROM ptypes_rows src,
       LATERAL (SELECT concat_ws(',',
            quote_csv(src.i2::text), quote_csv(src.i4::text), quote_csv(src.i8::text),
            quote_csv(src.num::text), quote_csv(src.f8::text), quote_csv(src.t),
            quote_csv(src.b::text), quote_csv(src.d::text), quote_csv(src.ts::text),
            quote_csv(src.j::text), quote_csv(src.jb::text), quote_csv(src.u::text),
            quote_csv(src.arr::text)) AS line) l,
       LATERAL p('ptypes', 'csv', l.line) r;

-- Quoting: embedded quotes, delimiters, newlines; empty vs NULL.
SELECT ok, error, row_json FROM p('pdef', 'csv', E'1,"say ""hi"", then go",5,"multi\nline\r\nvalue"');
SELECT ok, error, row_json FROM p('pdef', 'csv', '2,"",,""""');
SELECT ok, error, row_json FROM p('pdef', 'csv', E'3,a,4,b\n');
SELECT ok, error, row_json FROM p('pdef', 'csv', E'3,a,4,b\r\n');
-- Unquoted empty for a defaulted column is NULL (the field is present).
SELECT ok, error, row_json FROM p('pdef', 'csv', '4,,,');
-- Custom delimiter and quote.
SELECT ok, error, row_json FROM p('pdef', 'csv', $$5;'it''s; fine';8;"dq"$$,
  '{"delimiter": ";", "quote": "''"}');
SELECT ok, error, row_json FROM p('pdef', 'csv', E'6|x|9|\'q\'', '{"delimiter": "|"}');
-- Errors.
SELECT ok, error FROM p('pdef', 'csv', '1,2');
SELECT ok, error FROM p('pdef', 'csv', '1,a,2,b,c');
SELECT ok, error FROM p('pdef', 'csv', '');
SELECT ok, error FROM p('pdef', 'csv', '1,"unterminated,2,3');
SELECT ok, error FROM p('pdef', 'csv', '1,"closed"junk,2,3');
SELECT ok, error FROM p('pdef', 'csv', '1,ab"c,2,3');
SELECT ok, error FROM p('pdef', 'csv', E'1,a,2,b\n1,a,2,b');
SELECT ok, error FROM p('pdef', 'csv', E'1,a,2,b\n\n');
SELECT ok, error FROM p('pdef', 'csv', ',a,2,b');
SELECT ok, error FROM p('pdef', 'csv', 'x,a,2,b');
SELECT ok, error FROM p('pdef', 'csv', '1,a,2,b', '{"delimiter": ";;"}');
SELECT ok, error FROM p('pdef', 'csv', '1,a,2,b', '{"delimiter": ",", "quote": ","}');
SELECT ok, error FROM p('pdef', 'csv', '1,a,2,b', '{"delimiter": "\n"}');

-- ===================================================================
-- text (COPY text format)
-- ===================================================================

SELECT ok, error, row_json FROM p('pdef', 'text', E'1\tplain\t3\t\\N');
SELECT ok, error, row_json FROM p('pdef', 'text',
  E'2\ttab\\there\\nnl\\rcr\\\\bs\\b\\f\\v\t4\toct\\101\\60x\\x41\\x4a\\xg');
SELECT row_json->>'name' = E'tab\there\nnl\rcr\\bs\b\f' || chr(11) AS escapes_ok,
       row_json->>'note' AS note
  FROM p('pdef', 'text', E'2\ttab\\there\\nnl\\rcr\\\\bs\\b\\f\\v\t4\toct\\101\\60x\\x41\\x4a\\xg');
-- Escaped delimiter, other escaped characters, empty string vs \N.
SELECT ok, error, row_json FROM p('pdef', 'text', E'3\ta\\\tb\t5\t');
SELECT ok, error, row_json FROM p('pdef', 'text', E'4\t\\N\t\\N\t\\\\N');
SELECT ok, error, row_json FROM p('pdef', 'text', E'5\t\\.\\q\t6\tx\n');
-- UTF-8 through escapes (é is \303\251), and raw.
SELECT ok, error, row_json FROM p('pdef', 'text', E'6\tcaf\\303\\251\t7\tcafé');
-- Custom delimiter.
SELECT ok, error, row_json FROM p('pdef', 'text', '7|a\|b|8|\N', '{"delimiter": "|"}');
-- Round trip of COPY text output.
SELECT count(*) AS rows,
       count(*) FILTER (WHERE r.ok AND r.row_json = to_jsonb(src)) AS round_tripped
  FROM ptypes_rows src,
       LATERAL (SELECT concat_ws(E'\t', VARIADIC (
           SELECT array_agg(coalesce(replace(replace(replace(replace(v, '\', '\\'),
                      E'\t', '\t'), E'\n', '\n'), E'\r', '\r'), '\N') ORDER BY o)
             FROM unnest(ARRAY[src.i2::text, src.i4::text, src.i8::text, src.num::text,
                               src.f8::text, src.t, src.b::text, src.d::text, src.ts::text,
                               src.j::text, src.jb::text, src.u::text, src.arr::text])
                  WITH ORDINALITY AS x(v, o))) AS line) l,
       LATERAL p('ptypes', 'text', l.line) r;
-- Errors.
SELECT ok, error FROM p('pdef', 'text', E'1\ta');
SELECT ok, error FROM p('pdef', 'text', E'1\ta\t2\tb\tc');
SELECT ok, error FROM p('pdef', 'text', E'1\ta\t2\tb\\');
SELECT ok, error FROM p('pdef', 'text', E'1\ta\t2\tb\n2\ta\t2\tb');
SELECT ok, error FROM p('pdef', 'text', E'1\ta\\000b\t2\tb');
SELECT ok, error FROM p('pdef', 'text', E'1\ta\\377b\t2\tb');
SELECT ok, error FROM p('pdef', 'text', E'\\N\ta\t2\tb');
SELECT ok, error FROM p('pdef', 'text', E'1\ta\tzwei\tb');
SELECT ok, error FROM p('pdef', 'text', '1', '{"delimiter": "\\"}');
SELECT ok, error FROM p('pdef', 'text', '1', '{"quote": "x"}');

-- ===================================================================
-- Kafka metadata mapped into columns
-- ===================================================================

CREATE FOREIGN TABLE pmeta (
    kpart int, koff bigint, kkey text, kts timestamptz,
    hdrs jsonb, trace text, v int, kbin bytea, tsms bigint
) SERVER streamproc;

SELECT ok, error, row_json FROM p('pmeta', 'json',
  '{"v": 1, "kpart": 99, "koff": 99, "kkey": "from payload"}',
  '{"metadata": {"partition": "kpart", "offset": "koff", "key": "kkey",
                 "timestamp": "kts", "headers": "hdrs", "header:trace-id": "trace"}}',
  '{"partition": 3, "offset": 1234567890123, "key": "user-42",
    "timestamp": 1700000000123, "headers": {"trace-id": "abc", "n": null, "q\"": "x"}}');
-- The same key as bytes, the timestamp as a number.
SELECT ok, error, row_json->'kbin' AS kbin, row_json->'tsms' AS tsms FROM p('pmeta', 'json', '{"v": 2}',
  '{"metadata": {"key": "kbin", "timestamp": "tsms"}}',
  '{"key": "k\u00e9y", "timestamp": 0}');
-- Absent metadata is NULL: no key, no timestamp, no header, no metadata.
SELECT ok, error, row_json FROM p('pmeta', 'json', '{"v": 3}',
  '{"metadata": {"key": "kkey", "timestamp": "kts", "header:trace-id": "trace", "headers": "hdrs"}}',
  '{"partition": 0, "offset": 0, "key": null, "timestamp": -1}');
SELECT ok, error, row_json FROM p('pmeta', 'json', '{"v": 4}',
  '{"metadata": {"partition": "kpart"}}');
-- In csv and text, metadata columns are not payload fields.
SELECT ok, error, row_json FROM p('pmeta', 'csv', ',,5,,',
  '{"metadata": {"partition": "kpart", "offset": "koff", "key": "kkey", "timestamp": "kts"}}',
  '{"partition": 1, "offset": 2, "key": "k", "timestamp": 86400000}');
SELECT ok, error FROM p('pmeta', 'csv', ',,5,,',
  '{"metadata": {"partition": "kpart"}}');
SELECT ok, error, row_json->'kpart' AS kpart, row_json->'v' AS v
  FROM p('pmeta', 'text', E'\\N\t\\N\t\\N\t\\N\t\\N\t6\t\\N\t\\N',
  '{"metadata": {"partition": "kpart"}}', '{"partition": 7}');
-- A key the column type rejects; a NOT NULL metadata column without a key.
CREATE FOREIGN TABLE pmeta2 (k int NOT NULL, v int) SERVER streamproc;
SELECT ok, error FROM p('pmeta2', 'json', '{"v": 1}', '{"metadata": {"key": "k"}}', '{"key": "x1"}');
SELECT ok, error FROM p('pmeta2', 'json', '{"v": 1}', '{"metadata": {"key": "k"}}', '{"partition": 1}');
SELECT ok, error, row_json FROM p('pmeta2', 'json', '{"v": 1, "k": 5}', '{"metadata": {"key": "k"}}', '{"key": "12"}');
-- Bad mappings and options fail when the parser is created.
SELECT * FROM p('pmeta', 'json', '{}', '{"metadata": {"partition": "nope"}}');
SELECT * FROM p('pmeta', 'json', '{}', '{"metadata": {"partition": "v", "offset": "v"}}');
SELECT * FROM p('pmeta', 'json', '{}', '{"metadata": {"color": "v"}}');
SELECT * FROM p('pmeta', 'json', '{}', '{"metadata": {"partition": 1}}');
SELECT * FROM p('pmeta', 'json', '{}', '{"colour": 1}');
SELECT * FROM p('pmeta', 'json', '{}', '{"delimiter": ","}');
SELECT * FROM p('pmeta', 'json', '{}', '[]');
SELECT * FROM p('pmeta', 'xml', '{}');
SELECT * FROM streamproc._parse_message('pg_class', 'json', '\x7b7d');

-- ===================================================================
-- Size limit (streamproc.max_message_bytes, or the option)
-- ===================================================================

SHOW streamproc.max_message_bytes;
SELECT ok, error FROM p('pdef', 'json', '{"id": 1, "note": "' || repeat('x', 1048576) || '"}');
SELECT ok, length(row_json->>'note') AS len
  FROM p('pdef', 'json', '{"id": 1, "note": "' || repeat('x', 1048576 - 22) || '"}');
SELECT ok, error FROM p('pdef', 'json', '{"id": 12345}', '{"max_message_bytes": 10}');
SELECT ok, error FROM p('pdef', 'json', '{"id": 1234}', '{"max_message_bytes": 12}');
SELECT * FROM p('pdef', 'json', '{}', '{"max_message_bytes": 0}');

-- ===================================================================
-- Defaults, domains, errors from defaults
-- ===================================================================

CREATE DOMAIN posint AS int CHECK (VALUE > 0);
CREATE DOMAIN nn_text AS text NOT NULL;
CREATE SEQUENCE pseq;
CREATE FOREIGN TABLE pdom (
    a posint, b nn_text DEFAULT 'dflt', c int DEFAULT nextval('pseq'),
    d int DEFAULT 1 / (random() * 0)::int, e timestamptz DEFAULT '2020-01-01'
) SERVER streamproc;
SELECT ok, error, row_json FROM p('pdom', 'json', '{"a": 1, "d": 0}');
SELECT ok, error, row_json FROM p('pdom', 'json', '{"a": 2, "d": 0}');
SELECT ok, error FROM p('pdom', 'json', '{"a": -1, "d": 0}');
SELECT ok, error FROM p('pdom', 'json', '{"a": 1, "b": null, "d": 0}');
SELECT ok, error FROM p('pdom', 'json', '{"a": 1}');

-- Dropped columns are skipped; their names no longer match.
ALTER FOREIGN TABLE pdef DROP COLUMN qty;
SELECT ok, error, row_json FROM p('pdef', 'json', '{"id": 1, "qty": 5, "note": "n"}');
SELECT ok, error, row_json FROM p('pdef', 'csv', '1,a,b');
ALTER FOREIGN TABLE pdef ADD COLUMN qty int DEFAULT 8;

-- ===================================================================
-- Batches: one failing message does not affect the others
-- ===================================================================

SELECT n, ok, error, row_json FROM streamproc._parse_messages('pdef', 'json', ARRAY[
    convert_to('{"id": 1}', 'UTF8'),
    convert_to('{"id": "one"}', 'UTF8'),
    convert_to('{"id": 3, "note": "x"}', 'UTF8'),
    convert_to('{"id": 4', 'UTF8'),
    convert_to('{"id": 99999999999}', 'UTF8'),
    NULL,
    convert_to('{"id": 7, "name": null}', 'UTF8')]);
-- The failures rolled back only their own subtransactions: defaults that
-- consumed a sequence value in a successful message keep it.
SELECT n, ok, error, row_json->'c' AS c FROM streamproc._parse_messages('pdom', 'json', ARRAY[
    convert_to('{"a": 1, "d": 0}', 'UTF8'),
    convert_to('{"a": 0, "d": 0}', 'UTF8'),
    convert_to('{"a": 1}', 'UTF8'),
    convert_to('{"a": 1, "d": 0}', 'UTF8')]);
-- The caller's transaction is intact afterwards.
SELECT txid_current_if_assigned() IS NULL AS no_xid;
BEGIN;
CREATE TEMP TABLE inside (x int);
INSERT INTO inside VALUES (1);
SELECT count(*) FROM streamproc._parse_messages('pdef', 'json', ARRAY[
    convert_to('{"id": "bad"}', 'UTF8'), convert_to('{"id": 1}', 'UTF8')]) WHERE ok;
INSERT INTO inside VALUES (2);
SELECT * FROM inside;
COMMIT;

-- ===================================================================
-- Robustness: mutated and truncated messages give ok or a clean error
-- ===================================================================

SELECT setseed(0.42);
CREATE TEMP TABLE seeds (fmt text, payload bytea);
INSERT INTO seeds VALUES
  ('json', convert_to('{"i2": 1, "num": 2.5, "t": "a\"\\\u00e9\ud83d\ude00", "j": {"x": [1, {"y": null}]}, "arr": [1, 2], "b": true}', 'UTF8')),
  ('csv', convert_to('1,2,3,4.5,0.25,"he said ""hi""",t,2024-02-29,2024-01-02 03:04:05+00,"{}","[1]",a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11,"{1,2}"', 'UTF8')),
  ('text', convert_to(E'1\t2\t3\t4.5\t0.25\ta\\tb\\\\c\\101\tt\t2024-02-29\t\\N\t{}\t[1]\ta0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11\t{1,2}', 'UTF8'));
-- (g makes every call distinct: the planner may not reuse a result per seed)
CREATE FUNCTION mutate(b bytea, g int) RETURNS bytea LANGUAGE plpgsql AS $$
DECLARE
    n int := 1 + floor(random() * 4)::int;
    pos int;
BEGIN
    FOR k IN 1..n LOOP
        EXIT WHEN length(b) = 0;
        pos := floor(random() * length(b))::int;
        CASE floor(random() * 4)::int
            WHEN 0 THEN b := set_byte(b, pos, floor(random() * 256)::int);
            WHEN 1 THEN b := substring(b from 1 for pos);
            WHEN 2 THEN b := overlay(b placing substring(b from pos + 1 for 3) from pos + 1 for 0);
            ELSE b := overlay(b placing '' from pos + 1 for 1);
        END CASE;
    END LOOP;
    RETURN b;
END $$;
CREATE TEMP TABLE fuzz AS
  SELECT s.fmt, r.*
    FROM seeds s, generate_series(1, 170) g,
         LATERAL streamproc._parse_message('ptypes', s.fmt, mutate(s.payload, g)) r;
SELECT count(*) AS messages,
       count(*) FILTER (WHERE ok AND error IS NULL AND row_json IS NOT NULL) +
       count(*) FILTER (WHERE NOT ok AND error <> '' AND row_json IS NULL) AS clean
  FROM fuzz;
-- Random bytes, in one batch per format.
SELECT s.fmt, count(*) AS messages,
       count(*) FILTER (WHERE r.ok = (r.error IS NULL)) AS clean
  FROM (VALUES ('json'), ('csv'), ('text')) s(fmt),
       LATERAL streamproc._parse_messages('ptypes', s.fmt,
           ARRAY(SELECT decode(string_agg(lpad(to_hex(floor(random() * 256)::int), 2, '0'), ''), 'hex')
                   FROM generate_series(1, 200) m, generate_series(1, 1 + (m % 40)) b
                  GROUP BY m)) r
 GROUP BY s.fmt ORDER BY s.fmt;

-- ISO 8601 timestamps take a fast path in C (parse.c, iso_timestamptz):
-- it must give exactly what timestamptz_in gives, for every shape it
-- accepts, in any session time zone, and leave everything else to it.
CREATE FOREIGN TABLE pts (ts timestamptz, ts3 timestamptz(3)) SERVER streamproc;
SET timezone = 'America/New_York';
WITH src AS (
  SELECT to_char(t, 'YYYY-MM-DD') || (CASE WHEN g % 2 = 0 THEN 'T' ELSE ' ' END) ||
         to_char(t, 'HH24:MI:SS') ||
         (CASE g % 4 WHEN 0 THEN '' WHEN 1 THEN '.' || to_char(t, 'US')
                     WHEN 2 THEN '.' || substr(to_char(t, 'US'), 1, 3) ELSE '.5' END) ||
         (CASE g % 7 WHEN 0 THEN 'Z' WHEN 1 THEN '+02:00' WHEN 2 THEN '-0530' WHEN 3 THEN '+14'
                     WHEN 4 THEN '-12:45' WHEN 5 THEN '+00:00' ELSE '-03' END) AS txt
    FROM generate_series(1, 5000) g,
         LATERAL (SELECT timestamp '1000-01-01 00:00:00' +
                         g * interval '1 day 17 hours 3 minutes 5.123457 seconds' * 349 AS t) r
)
SELECT count(*) AS checked,
       count(*) FILTER (WHERE NOT p.ok
                           OR (p.row_json->>'ts')::timestamptz <> src.txt::timestamptz
                           OR (p.row_json->>'ts3')::timestamptz <> src.txt::timestamptz(3)) AS differ
  FROM src,
       LATERAL streamproc._parse_message('pts', 'json',
           convert_to(json_build_object('ts', src.txt, 'ts3', src.txt)::text, 'UTF8')) p;
SELECT x, p.ok, coalesce(p.row_json->>'ts', p.error) AS parsed
  FROM unnest(ARRAY['2024-02-29T12:00:00Z', '2023-02-29T12:00:00Z', '2024-12-31T23:59:60Z',
                    '2024-01-01T00:00:00.1234567Z', '2024-01-01T00:00:00+16:00',
                    '2024-01-01T24:00:00Z', '2024-01-01T00:00:00', '2024-01-01 00:00:00 UTC',
                    '0999-01-01T00:00:00Z', '2024-06-01T12:00:00.5+05:30']) x,
       LATERAL streamproc._parse_message('pts', 'json',
           convert_to(json_build_object('ts', x)::text, 'UTF8')) p;
RESET timezone;
DROP FOREIGN TABLE pts;

-- Internal: not for PUBLIC.
SELECT has_function_privilege('public', 'streamproc._parse_message(regclass, text, bytea, jsonb, jsonb)', 'EXECUTE') AS public_single,
       has_function_privilege('public', 'streamproc._parse_messages(regclass, text, bytea[], jsonb)', 'EXECUTE') AS public_batch;

DROP FOREIGN TABLE ptypes, pdef, pmeta, pmeta2, pdom;
DROP TABLE ptypes_rows;
DROP FUNCTION p, quote_csv, mutate;
DROP DOMAIN posint, nn_text;
DROP SEQUENCE pseq;
