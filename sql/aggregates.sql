--
-- Partial aggregate states (src/aggregates.c): streamproc.partial(),
-- streamproc.combine(), streamproc.finalize().
--
-- The oracle: for every combinable aggregate of pg_catalog over every
-- argument type, partial states computed per (group, split) and then
-- combined and finalized must equal the plain aggregate per group
-- (EXCEPT ALL both ways).
--
SET client_min_messages = warning;
CREATE EXTENSION IF NOT EXISTS streamproc;
CREATE EXTENSION IF NOT EXISTS hll;
CREATE EXTENSION IF NOT EXISTS tdigest;
RESET client_min_messages;

CREATE TYPE agg_mood AS ENUM ('sad', 'ok', 'happy');

-- 2000 rows, deterministic.  g: 5 groups and a NULL group key; group 4
-- has only NULL values (strict transition functions never run there);
-- other values are NULL on every 7th row.  v is a scrambled -1000..1000;
-- float columns hold quarters, so that their sums are exact whatever the
-- order of addition.  No autovacuum: a vacuum sets the visibility map,
-- which makes the plans of the EXPLAINs below depend on when it ran.
CREATE TABLE agg_data WITH (autovacuum_enabled = false) AS
SELECT i,
       CASE WHEN i % 11 = 0 THEN NULL ELSE i % 5 END AS g,
       n.v,
       n.v::int2 AS c_int2,
       n.v * 100003 AS c_int4,
       n.v::int8 * 10000000019 AS c_int8,
       (n.v / 4.0)::float4 AS c_float4,
       n.v / 4.0::float8 AS c_float8,
       (((i * 104729) % 801) - 400) / 4.0::float8 AS c_float8b,
       n.v / 100.0 AS c_numeric,
       make_interval(days => n.v, secs => i % 60) AS c_interval,
       (n.v * 3 / 100.0)::money AS c_money,
       (ARRAY['apple', 'Apple', 'Banana', 'cherry', 'Zebra', 'yak'])[1 + (n.v + 1000) % 6]
           || repeat('s', i % 3) AS c_text,
       date '2024-01-01' + n.v AS c_date,
       time '12:00' + n.v * interval '37 seconds' AS c_time,
       ((time '12:00' + n.v * interval '37 seconds')::text
           || CASE WHEN i % 2 = 0 THEN '+02' ELSE '-05' END)::timetz AS c_timetz,
       timestamp '2024-01-01' + n.v * interval '67 minutes' AS c_timestamp,
       timestamptz '2024-01-01 00:00+00' + n.v * interval '67 minutes' AS c_timestamptz,
       (n.v % 3 <> 0 OR i % 5 = 2) AS c_bool,
       ((n.v + 1000) % 256)::bit(8) AS c_bit,
       (n.v + 1000)::oid AS c_oid,
       ('x' || (n.v % 10))::char(3) AS c_bpchar,
       ('10.0.' || (n.v + 1000) % 256 || '.' || i % 256)::inet AS c_inet,
       (to_hex(n.v + 1000) || '/' || to_hex(i))::pg_lsn AS c_pg_lsn,
       ('(' || (n.v + 1000) || ',' || i % 100 || ')')::tid AS c_tid,
       (n.v + 1000)::text::xid8 AS c_xid8,
       ARRAY[n.v % 10, i % 3] AS c_arr,
       (enum_range(NULL::agg_mood))[1 + (n.v + 1000) % 3] AS c_enum,
       int4range(n.v - 600, n.v + 600) AS c_range,
       int4multirange(int4range(n.v - 600, n.v + 600)) AS c_multirange
  FROM generate_series(1, 2000) AS i,
       LATERAL (SELECT ((i * 7919) % 2001) - 1000 AS v) AS n;

-- NULLs: every 7th row, and all of group 4.
DO $$
DECLARE
    col text;
BEGIN
    FOR col IN SELECT attname FROM pg_attribute
                WHERE attrelid = 'agg_data'::regclass AND attname LIKE 'c\_%'
    LOOP
        EXECUTE format('UPDATE agg_data SET %I = NULL WHERE i %% 7 = 0 OR g = 4', col);
    END LOOP;
END
$$;

SELECT g, count(*) AS rows, count(c_int4) AS non_null, count(DISTINCT i % 4) AS splits
  FROM agg_data GROUP BY g ORDER BY g;

-- Which column feeds which argument type.
CREATE TABLE agg_columns (type regtype, col text);
INSERT INTO agg_columns
SELECT atttypid::regtype, attname FROM pg_attribute
 WHERE attrelid = 'agg_data'::regclass AND attname LIKE 'c\_%' AND attname <> 'c_float8b';
-- count("any") over a few types
INSERT INTO agg_columns VALUES ('"any"', 'c_int4'), ('"any"', 'c_text'), ('"any"', 'c_interval');

-- Every combinable aggregate of pg_catalog with the calls that test it.
-- Two-argument aggregates (corr, covar_*, regr_*) get (c_float8b, c_float8).
CREATE TABLE agg_cases AS
SELECT p.oid::regprocedure AS agg,
       p.proname || '(' ||
           CASE p.pronargs WHEN 0 THEN '*'
                           WHEN 2 THEN 'c_float8b, c_float8'
                           ELSE c.col END || ')' AS call,
       format_type(p.prorettype, NULL) AS restype,
       -- float variance-like aggregates divide while accumulating, so their
       -- results depend on how the rows were split: compare with a relative
       -- tolerance of 1e-10.  Sums, averages and counts of quarters are exact.
       (p.proargtypes[0] IN ('real'::regtype, 'double precision'::regtype)
        AND p.proname NOT IN ('sum', 'avg', 'min', 'max',
                              'regr_count', 'regr_avgx', 'regr_avgy')) AS approx,
       EXISTS (SELECT FROM unnest(p.proargtypes::oid[]) t
                WHERE t IN ('anyelement'::regtype, 'anyarray'::regtype,
                            'anyenum'::regtype, 'anyrange'::regtype,
                            'anymultirange'::regtype)) AS polymorphic
  FROM pg_aggregate a
  JOIN pg_proc p ON p.oid = a.aggfnoid
  LEFT JOIN agg_columns c
         ON c.type = p.proargtypes[0]
         OR (p.proargtypes[0] = 'anyarray'::regtype AND c.col = 'c_arr')
         OR (p.proargtypes[0] = 'anyenum'::regtype AND c.col = 'c_enum')
         OR (p.proargtypes[0] = 'anyrange'::regtype AND c.col = 'c_range')
         OR (p.proargtypes[0] = 'anymultirange'::regtype AND c.col = 'c_multirange')
 WHERE p.pronamespace = 'pg_catalog'::regnamespace
   AND a.aggkind = 'n' AND a.aggcombinefn <> 0
   AND (p.pronargs <> 1 OR c.col IS NOT NULL);

-- Every combinable aggregate of pg_catalog has a case.
SELECT a.aggfnoid::regprocedure AS untested
  FROM pg_aggregate a JOIN pg_proc p ON p.oid = a.aggfnoid
 WHERE p.pronamespace = 'pg_catalog'::regnamespace
   AND a.aggkind = 'n' AND a.aggcombinefn <> 0
   AND a.aggfnoid NOT IN (SELECT agg FROM agg_cases);
SELECT count(*) AS cases, count(DISTINCT agg) AS aggregates,
       count(*) FILTER (WHERE approx) AS approx,
       count(*) FILTER (WHERE polymorphic) AS polymorphic
  FROM agg_cases;

-- The engine's pairwise combine, as an aggregate (it folds left).
CREATE FUNCTION agg_fold_step(acc bytea, agg regprocedure, state bytea)
RETURNS bytea LANGUAGE sql
AS $$ SELECT streamproc._combine_pair(agg, acc, state) $$;
CREATE AGGREGATE agg_fold(regprocedure, bytea) (
    SFUNC = agg_fold_step, STYPE = bytea);

-- agg_oracle(case, method): compare the plain aggregate per group with
-- partial states over disjoint splits of each group's rows, merged by
-- method:
--   split   split i % 4, streamproc.combine()
--   row     one state per row, streamproc.combine()
--   pair    split i % 4, the engine's pairwise combine (agg_fold)
--   twice   split i % 4, combined per (g, i % 2), then those combined
-- Returns 'ok', or what differs.  Polymorphic aggregates cannot be named
-- by their signature alone, so combine() and finalize() refuse them (see
-- the errors below); for them the partial state of each whole group is
-- checked against the plain aggregate's value instead (they have no final
-- function: the state is the result's send output).
CREATE FUNCTION agg_oracle(c agg_cases, method text)
RETURNS text LANGUAGE plpgsql AS $$
DECLARE
    parts text;
    got text;
    q text;
    extra bigint;
    missing bigint;
    groups bigint;
BEGIN
    IF c.polymorphic THEN
        EXECUTE format($q$
            SELECT 0, count(*) FILTER (WHERE s IS DISTINCT FROM expected), count(*)
              FROM (SELECT g, streamproc.partial(%1$s) AS s FROM agg_data GROUP BY g) p
              FULL JOIN (SELECT g, %2$s AS expected FROM agg_data GROUP BY g) e
                ON coalesce(p.g, -1) = coalesce(e.g, -1)$q$,
            c.call,
            CASE c.restype
                WHEN 'anyarray' THEN 'array_send(' || c.call || ')'
                WHEN 'anyenum' THEN 'enum_send(' || c.call || ')'
                WHEN 'anyrange' THEN 'range_send(' || c.call || ')'
                ELSE 'multirange_send(' || c.call || ')' END)
            INTO extra, missing, groups;
    ELSE
        parts := CASE method
            WHEN 'row' THEN format(
                'SELECT g, i AS split, streamproc.partial(%s) AS s FROM agg_data GROUP BY g, i',
                c.call)
            WHEN 'twice' THEN format(
                'SELECT g, split %% 2 AS split, streamproc.combine(%L, s) AS s
                   FROM (SELECT g, i %% 4 AS split, streamproc.partial(%s) AS s
                           FROM agg_data GROUP BY g, i %% 4) p
                  GROUP BY g, split %% 2',
                c.agg, c.call)
            ELSE format(
                'SELECT g, i %% 4 AS split, streamproc.partial(%s) AS s FROM agg_data GROUP BY g, i %% 4',
                c.call) END;
        got := format(
            'SELECT g, streamproc.finalize(%L, %s(%L, s), NULL::%s) AS v FROM (%s) p GROUP BY g',
            c.agg, CASE method WHEN 'pair' THEN 'agg_fold' ELSE 'streamproc.combine' END,
            c.agg, c.restype, parts);
        IF c.approx THEN
            q := format($q$
                WITH got AS (SELECT g, v, true AS present FROM (%s) x),
                     want AS (SELECT g, %s AS v, true AS present FROM agg_data GROUP BY g)
                SELECT count(*) FILTER (WHERE got.present AND want.present IS NULL
                                        OR got.present AND want.present
                                           AND ((got.v IS NULL) <> (want.v IS NULL)
                                                OR abs(got.v - want.v) > 1e-10 * greatest(1, abs(want.v)))),
                       count(*) FILTER (WHERE want.present AND got.present IS NULL),
                       count(want.present)
                  FROM got FULL JOIN want ON coalesce(got.g, -1) = coalesce(want.g, -1)$q$,
                got, c.call);
        ELSE
            q := format($q$
                WITH got AS (%s), want AS (SELECT g, %s AS v FROM agg_data GROUP BY g)
                SELECT (SELECT count(*) FROM (SELECT * FROM got EXCEPT ALL SELECT * FROM want) d),
                       (SELECT count(*) FROM (SELECT * FROM want EXCEPT ALL SELECT * FROM got) d),
                       (SELECT count(*) FROM want)$q$,
                got, c.call);
        END IF;
        EXECUTE q INTO extra, missing, groups;
    END IF;
    IF extra = 0 AND missing = 0 AND groups = 6 THEN
        RETURN 'ok';
    END IF;
    RETURN format('%s wrong, %s missing, %s groups', extra, missing, groups);
END
$$;

-- Sorted aggregation everywhere.
SET enable_hashagg = off;
SELECT agg, call,
       agg_oracle(c, 'split') AS split,
       CASE WHEN polymorphic THEN '-' ELSE agg_oracle(c, 'row') END AS row,
       CASE WHEN polymorphic THEN '-' ELSE agg_oracle(c, 'pair') END AS pair,
       CASE WHEN polymorphic THEN '-' ELSE agg_oracle(c, 'twice') END AS twice
  FROM agg_cases c
 ORDER BY agg::text, call;

-- Hashed aggregation everywhere: every case, one line per method.
SET enable_hashagg = on;
SET enable_sort = off;
SELECT m.method, count(*) AS cases,
       count(*) FILTER (WHERE agg_oracle(c, m.method) = 'ok') AS ok
  FROM agg_cases c, unnest(ARRAY['split', 'row', 'pair', 'twice']) AS m(method)
 WHERE NOT c.polymorphic OR m.method = 'split'
 GROUP BY m.method ORDER BY m.method;
RESET enable_hashagg;
RESET enable_sort;

-- The plans: the Agg node under partial() skips the final step
-- ("Partial"), hashed or sorted as the planner likes.
CREATE TEMP TABLE agg_small AS SELECT g, c_numeric FROM agg_data;
SET enable_sort = off;
EXPLAIN (COSTS OFF, VERBOSE)
SELECT g, streamproc.partial(sum(c_numeric)), streamproc.partial(count(*))
  FROM agg_small GROUP BY g;
RESET enable_sort;
SET enable_hashagg = off;
EXPLAIN (COSTS OFF)
SELECT g, streamproc.partial(sum(c_numeric)) FROM agg_data GROUP BY g;
RESET enable_hashagg;

--
-- States, one by one.
--
-- Group 4 has only NULLs: sum's state stays NULL (its strict transition
-- function never ran), count's is 0, avg(integer)'s is its initial
-- condition {0,0} (a bigint[]: count and sum).
SELECT g, streamproc.partial(sum(c_int4)) AS sum_int4,
       streamproc.partial(count(c_int4)) AS count_int4,
       streamproc.partial(avg(c_int4)) AS avg_int4
  FROM agg_data WHERE g IN (3, 4) AND i < 40 GROUP BY g ORDER BY g;
SELECT g,
       streamproc.finalize('sum(integer)', streamproc.partial(sum(c_int4)), NULL::bigint) AS sum,
       streamproc.finalize('count("any")', streamproc.partial(count(c_int4)), NULL::bigint) AS count,
       streamproc.finalize('avg(integer)', streamproc.partial(avg(c_int4)), NULL::numeric) AS avg,
       streamproc.finalize('bool_and(boolean)', streamproc.partial(bool_and(c_bool)), NULL::boolean) AS bool_and
  FROM agg_data WHERE g IN (3, 4) GROUP BY g ORDER BY g;

-- No rows and no GROUP BY: one row, with count's state 0 and sum's NULL.
SELECT streamproc.partial(count(*)) AS count_state,
       streamproc.partial(sum(c_int4)) IS NULL AS sum_state_is_null,
       streamproc.finalize('count()', streamproc.partial(count(*)), NULL::bigint) AS count,
       streamproc.finalize('sum(integer)', streamproc.partial(sum(c_int4)), NULL::bigint) AS sum,
       streamproc.finalize('avg(numeric)', streamproc.partial(avg(c_numeric)), NULL::numeric) AS avg
  FROM agg_data WHERE false;
-- A NULL state is "no input": finalizing it gives the result over no rows.
SELECT streamproc.finalize('count()', NULL, NULL::bigint) AS count,
       streamproc.finalize('sum(integer)', NULL, NULL::bigint) AS sum,
       streamproc.finalize('avg(numeric)', NULL, NULL::numeric) AS avg;
-- Combining no rows gives NULL; combining NULL states starts from the
-- initial condition, as nodeAgg does.
SELECT streamproc.combine('count()', s) FROM (SELECT NULL::bytea AS s WHERE false) z;
SELECT streamproc.combine('count()', NULL) AS count,
       streamproc.combine('sum(integer)', NULL) AS sum;
SELECT streamproc._combine_pair('count()', NULL, NULL) AS count,
       streamproc._combine_pair('sum(integer)', NULL, '\x0000000000000007') AS sum;

-- The state format: the transition type's send output, or the
-- serialization function's output for internal transition types.
SELECT (SELECT streamproc.partial(sum(c_int4)) FROM agg_data WHERE g = 1) =
       (SELECT int8send(sum(c_int4)) FROM agg_data WHERE g = 1) AS sum_int4_is_int8send,
       (SELECT streamproc.partial(max(c_text)) FROM agg_data WHERE g = 1) =
       (SELECT textsend(max(c_text)) FROM agg_data WHERE g = 1) AS max_text_is_textsend,
       (SELECT streamproc.partial(max(c_arr)) FROM agg_data WHERE g = 1) =
       (SELECT array_send(max(c_arr)) FROM agg_data WHERE g = 1) AS max_array_is_array_send;

-- FILTER, GROUP BY on expressions, HAVING, ORDER BY.
SELECT i % 3 * 2 AS k,
       streamproc.finalize('sum(numeric)',
                           streamproc.partial(sum(c_numeric) FILTER (WHERE c_bool)),
                           NULL::numeric) AS filtered
  FROM agg_data GROUP BY i % 3 * 2 ORDER BY 1;
SELECT k, streamproc.finalize('sum(numeric)', s, NULL::numeric) AS sum
  FROM (SELECT i % 3 * 2 AS k, streamproc.partial(sum(c_numeric) FILTER (WHERE c_bool)) AS s
          FROM agg_data GROUP BY i % 3 * 2
        HAVING streamproc.partial(count(*)) <> int8send(0)
         ORDER BY streamproc.partial(count(*)) DESC) z
 ORDER BY k;
SELECT i % 3 * 2 AS k, sum(c_numeric) FILTER (WHERE c_bool) AS expected
  FROM agg_data GROUP BY i % 3 * 2 ORDER BY 1;

-- min/max of text combine with the collation of the query that computed
-- the states: the three-argument combine() takes it.
SELECT g,
       streamproc.finalize('min(text)', streamproc.combine('min(text)', s_c, '"C"'), NULL::text) AS min_c,
       streamproc.finalize('min(text)', streamproc.combine('min(text)', s_icu, '"en-x-icu"'), NULL::text) AS min_icu,
       streamproc.finalize('max(text)', streamproc.combine('max(text)', x_c, '"C"'), NULL::text) AS max_c,
       streamproc.finalize('max(text)', streamproc.combine('max(text)', x_icu, '"en-x-icu"'), NULL::text) AS max_icu
  FROM (SELECT g, i % 4 AS split,
               streamproc.partial(min(c_text COLLATE "C")) AS s_c,
               streamproc.partial(min(c_text COLLATE "en-x-icu")) AS s_icu,
               streamproc.partial(max(c_text COLLATE "C")) AS x_c,
               streamproc.partial(max(c_text COLLATE "en-x-icu")) AS x_icu
          FROM agg_data GROUP BY g, i % 4) p
 GROUP BY g ORDER BY g;
SELECT g, min(c_text COLLATE "C") AS min_c, min(c_text COLLATE "en-x-icu") AS min_icu,
       max(c_text COLLATE "C") AS max_c, max(c_text COLLATE "en-x-icu") AS max_icu
  FROM agg_data GROUP BY g ORDER BY g;

-- min()/max() through an index would bypass the Agg node; with partial()
-- the plan keeps it.
CREATE INDEX agg_data_c_int4 ON agg_data (c_int4);
ANALYZE agg_data;
EXPLAIN (COSTS OFF) SELECT min(c_int4) FROM agg_data;
EXPLAIN (COSTS OFF) SELECT streamproc.partial(min(c_int4)) FROM agg_data;
SELECT streamproc.finalize('min(integer)', streamproc.partial(min(c_int4)), NULL::int) AS min,
       streamproc.finalize('max(integer)', streamproc.partial(max(c_int4)), NULL::int) AS max,
       (SELECT min(c_int4) FROM agg_data) AS expected_min,
       (SELECT max(c_int4) FROM agg_data) AS expected_max
  FROM agg_data;
DROP INDEX agg_data_c_int4;

-- Parallel plans: the Finalize node above Gather combines and, under
-- partial(), serializes instead of finalizing.
CREATE TABLE agg_big AS SELECT i, i % 10 AS g, i / 7.0 AS x FROM generate_series(1, 100000) i;
ANALYZE agg_big;
SET parallel_setup_cost = 0;
SET parallel_tuple_cost = 0;
SET min_parallel_table_scan_size = 0;
SET max_parallel_workers_per_gather = 2;
SET enable_hashagg = off;
EXPLAIN (COSTS OFF)
SELECT g, streamproc.partial(sum(x)), streamproc.partial(avg(i)) FROM agg_big GROUP BY g;
CREATE TEMP TABLE agg_big_states AS
SELECT g, streamproc.partial(sum(x)) AS s, streamproc.partial(avg(i)) AS a,
       streamproc.partial(stddev(x)) AS sd
  FROM agg_big GROUP BY g;
RESET parallel_setup_cost;
RESET parallel_tuple_cost;
RESET min_parallel_table_scan_size;
RESET max_parallel_workers_per_gather;
RESET enable_hashagg;
SELECT count(*) AS groups,
       count(*) FILTER (WHERE streamproc.finalize('sum(numeric)', s, NULL::numeric) = sum_x
                          AND streamproc.finalize('avg(integer)', a, NULL::numeric) = avg_i
                          AND streamproc.finalize('stddev(numeric)', sd, NULL::numeric) = sd_x) AS equal
  FROM agg_big_states
  JOIN (SELECT g, sum(x) AS sum_x, avg(i) AS avg_i, stddev(x) AS sd_x
          FROM agg_big GROUP BY g) o USING (g);

-- Grouping sets: every set's states.
SELECT count(*) AS wrong FROM (
    (SELECT g, i % 2 AS h, streamproc.finalize('sum(numeric)', streamproc.partial(sum(c_numeric)), NULL::numeric) AS s
       FROM agg_data GROUP BY CUBE (g, i % 2)
     EXCEPT ALL
     SELECT g, i % 2, sum(c_numeric) FROM agg_data GROUP BY CUBE (g, i % 2))
    UNION ALL
    (SELECT g, i % 2, sum(c_numeric) FROM agg_data GROUP BY CUBE (g, i % 2)
     EXCEPT ALL
     SELECT g, i % 2 AS h, streamproc.finalize('sum(numeric)', streamproc.partial(sum(c_numeric)), NULL::numeric)
       FROM agg_data GROUP BY CUBE (g, i % 2))) d;

-- combine() as a window aggregate: running states.
SELECT i, streamproc.finalize('sum(integer)',
                              streamproc.combine('sum(integer)', s) OVER (ORDER BY i),
                              NULL::bigint) AS running_sum
  FROM (SELECT i, streamproc.partial(sum(i)) AS s
          FROM generate_series(1, 5) i GROUP BY i) z
 ORDER BY i;

--
-- hll and tdigest.
--
-- hll: merging registers is exact, so the combined hll is the plain one.
SELECT count(*) AS groups,
       count(*) FILTER (WHERE got::text IS NOT DISTINCT FROM want::text) AS equal,
       count(*) FILTER (WHERE got IS NOT NULL) AS not_null
  FROM (SELECT g, streamproc.finalize('hll_add_agg(hll_hashval)',
                                      streamproc.combine('hll_add_agg(hll_hashval)', s),
                                      NULL::hll) AS got
          FROM (SELECT g, i % 4, streamproc.partial(hll_add_agg(hll_hash_integer(c_int4))) AS s
                  FROM agg_data GROUP BY g, i % 4) p
         GROUP BY g) got
  FULL JOIN (SELECT g, hll_add_agg(hll_hash_integer(c_int4)) AS want
               FROM agg_data GROUP BY g) want
    ON coalesce(got.g, -1) = coalesce(want.g, -1);
-- hll_union_agg over hll values: the distinct count it estimates is
-- within 5% of the exact one (hll's error is about 2% here).
SELECT abs(hll_cardinality(streamproc.finalize('hll_union_agg(hll)',
                                               streamproc.combine('hll_union_agg(hll)', s),
                                               NULL::hll))
           / (SELECT count(DISTINCT c_int4) FROM agg_data) - 1) < 0.05 AS within_5pct
  FROM (SELECT i % 4, streamproc.partial(hll_union_agg(h)) AS s
          FROM (SELECT i, hll_add_agg(hll_hash_integer(c_int4)) AS h
                  FROM agg_data GROUP BY i) per_row
         GROUP BY i % 4) p;

-- tdigest is approximate, and its result depends on how the values were
-- merged (PostgreSQL's own parallel plans show the same).  Its count must
-- be exact, and its percentiles within 1% in rank of the exact ones, for
-- splits that each cover a different range of values (a lost or doubled
-- split would move them by 10%).
CREATE TABLE agg_td AS
SELECT i, (i * 7919) % 20000 AS x FROM generate_series(1, 20000) i;
CREATE TEMP TABLE agg_td_digest AS
SELECT streamproc.finalize('tdigest(double precision, integer)',
                           streamproc.combine('tdigest(double precision, integer)', s),
                           NULL::tdigest) AS d
  FROM (SELECT x / 2000 AS split, streamproc.partial(tdigest(x, 100)) AS s
          FROM agg_td GROUP BY x / 2000) p;
SELECT tdigest_count(d) AS count FROM agg_td_digest;
SELECT p.q,
       abs((SELECT count(*) FROM agg_td WHERE x <= tdigest_percentile) / 20000.0 - p.q) < 0.01 AS within_1pct
  FROM (VALUES (0.05), (0.5), (0.95)) p(q),
       LATERAL (SELECT tdigest_percentile(d, p.q::float8) FROM agg_td_digest) t
 ORDER BY p.q;
-- tdigest_percentile() as the aggregate itself, its state carrying the
-- percentile asked for.
SELECT abs((SELECT count(*) FROM agg_td WHERE x <= v) / 20000.0 - 0.9) < 0.01 AS within_1pct
  FROM (SELECT streamproc.finalize('tdigest_percentile(double precision, integer, double precision)',
                                   streamproc.combine('tdigest_percentile(double precision, integer, double precision)', s),
                                   NULL::float8) AS v
          FROM (SELECT x / 2000, streamproc.partial(tdigest_percentile(x, 100, 0.9)) AS s
                  FROM agg_td GROUP BY x / 2000) p) z;

--
-- Errors.
--
-- partial() around something else than an aggregate call of its level.
SELECT streamproc.partial(1);
SELECT streamproc.partial(sum(c_int4) + 1) FROM agg_data;
SELECT streamproc.partial(streamproc.partial(sum(c_int4))) FROM agg_data;
SELECT g, (SELECT streamproc.partial(sum(a.c_int4)) FROM agg_data b LIMIT 1)
  FROM agg_data a GROUP BY g;
SELECT streamproc.partial(sum(c_int4)), max(c_int4) FROM agg_data;
SELECT streamproc.partial(sum(c_int4)) FROM agg_data ORDER BY sum(c_int4);
SELECT streamproc.partial(sum(c_int4)), rank() OVER () FROM agg_data;
SELECT streamproc.partial(sum(c_int4)), generate_series(1, 2) FROM agg_data;
-- Aggregates that cannot be maintained incrementally.
SELECT streamproc.partial(array_agg(c_int4)) FROM agg_data;
SELECT streamproc.partial(string_agg(c_text, ',')) FROM agg_data;
SELECT streamproc.partial(count(DISTINCT c_int4)) FROM agg_data;
SELECT streamproc.partial(count(DISTINCT c_text)) FROM agg_data;
SELECT streamproc.partial(count(DISTINCT c_date)) FROM agg_data;
SELECT streamproc.partial(sum(DISTINCT c_int4)) FROM agg_data;
SELECT streamproc.partial(sum(c_int4 ORDER BY c_text)) FROM agg_data;
SELECT streamproc.partial(percentile_cont(0.5) WITHIN GROUP (ORDER BY c_float8)) FROM agg_data;
SELECT streamproc.partial(percentile_disc(ARRAY[0.5, 0.9]) WITHIN GROUP (ORDER BY c_int4)) FROM agg_data;
SELECT streamproc.partial(mode() WITHIN GROUP (ORDER BY c_int4)) FROM agg_data;
SELECT streamproc.partial(rank(3) WITHIN GROUP (ORDER BY c_int4)) FROM agg_data;
SELECT streamproc.partial(percent_rank(3) WITHIN GROUP (ORDER BY c_int4)) FROM agg_data;
-- A user aggregate without a combine function, and one whose internal
-- state has no serialization functions.
CREATE AGGREGATE agg_no_combine(int) (SFUNC = int4pl, STYPE = int);
SELECT streamproc.partial(agg_no_combine(c_int4)) FROM agg_data;
CREATE AGGREGATE agg_no_serial(numeric) (
    SFUNC = numeric_avg_accum, STYPE = internal, FINALFUNC = numeric_sum,
    COMBINEFUNC = numeric_avg_combine);
SELECT streamproc.partial(agg_no_serial(c_numeric)) FROM agg_data;
SELECT streamproc.combine('agg_no_serial(numeric)', NULL);

-- combine() and finalize() inputs.
SELECT streamproc.finalize('lower(text)', NULL, NULL::text);
SELECT streamproc.combine('lower(text)', NULL);
SELECT streamproc.finalize(NULL, '\x00', NULL::numeric);
SELECT streamproc.combine(NULL, '\x00');
SELECT streamproc.finalize('sum(integer)', NULL, NULL::int);
SELECT streamproc.finalize('max(anyarray)', NULL, NULL::int[]);
SELECT streamproc.combine('array_agg(anynonarray)', NULL);
SELECT streamproc.combine('string_agg(text, text)', NULL);
SELECT streamproc.combine(agg, s)
  FROM (VALUES ('sum(integer)'::regprocedure, NULL::bytea), ('sum(bigint)', NULL)) v(agg, s);
-- Corrupt states are errors.
SELECT streamproc.finalize('sum(integer)', '\x01', NULL::bigint);
SELECT streamproc.finalize('sum(integer)', '\x000000000000000101', NULL::bigint);
SELECT streamproc.finalize('avg(integer)', '\x00000001', NULL::numeric);
SELECT streamproc.finalize('avg(double precision)', array_send(ARRAY[1, 2]::float8[]), NULL::float8);
SELECT streamproc.finalize('sum(numeric)', '\x0001', NULL::numeric);
SELECT streamproc.finalize('avg(bigint)', '\x00000000000000010000', NULL::numeric);
SELECT streamproc.finalize('stddev(numeric)', '\xffffffff', NULL::numeric);
SELECT streamproc.combine('max(text)', '\xff'::bytea);
SELECT streamproc.finalize('max(date)', '\x0102', NULL::date);
-- A state of one aggregate read as another's is caught when the formats
-- differ.
SELECT streamproc.finalize('sum(bigint)', int8send(42), NULL::numeric);

-- Reading states is not for everybody: a crafted state can crash a
-- deserialization function that trusts its input.
CREATE ROLE agg_regress_user;
SET ROLE agg_regress_user;
SELECT streamproc.finalize('sum(integer)', NULL, NULL::bigint);
SELECT streamproc.combine('sum(integer)', NULL);
SELECT streamproc.partial(count(*)) FROM generate_series(1, 3);
RESET ROLE;
DROP ROLE agg_regress_user;

DROP FUNCTION agg_oracle(agg_cases, text);
DROP AGGREGATE agg_fold(regprocedure, bytea);
DROP FUNCTION agg_fold_step(bytea, regprocedure, bytea);
DROP AGGREGATE agg_no_combine(int);
DROP AGGREGATE agg_no_serial(numeric);
DROP TABLE agg_data, agg_columns, agg_cases, agg_big, agg_td, agg_td_digest,
    agg_big_states, agg_small;
DROP TYPE agg_mood;
DROP EXTENSION hll;
DROP EXTENSION tdigest;
