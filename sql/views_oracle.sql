--
-- Continuous views against their batch oracle: every aggregate family and
-- input type, over events inserted in many statements and transactions.
-- Each view must equal the same query run on a plain table holding the
-- same rows (EXCEPT ALL both ways: zero rows each way).
--
-- Float aggregates whose partial states combine with rounding (variance,
-- regression) are compared after rounding to 6 significant digits; every
-- other value is compared exactly.  Inputs are multiples of 0.25 so that
-- float sums are exact.
--
SET extra_float_digits = 0;

CREATE FOREIGN TABLE ev (
    k int, i2 int2, i4 int4, i8 int8, f4 float4, f8 float8, n numeric,
    iv interval, m money, t text, d date, tm time, ttz timetz,
    ts timestamp, tstz timestamptz, b bool, bits bit(8), y float8
) SERVER streamproc;
CREATE TABLE ev_oracle (LIKE ev);

-- Deterministic events: row g of batch s.
CREATE FUNCTION ev_rows(s int, cnt int) RETURNS SETOF ev_oracle LANGUAGE sql AS $$
    SELECT CASE WHEN g % 17 = 0 THEN NULL ELSE (g * 31 + s) % 23 END,
           CASE WHEN g % 11 = 0 THEN NULL ELSE ((g * 7 + s) % 200 - 100)::int2 END,
           CASE WHEN g % 13 = 0 THEN NULL ELSE (g * 7919 + s) % 100000 - 50000 END,
           CASE WHEN g % 7 = 0 THEN NULL ELSE ((g::int8 * 104729 + s) % 10000000000) - 5000000000 END,
           CASE WHEN g % 5 = 0 THEN NULL ELSE (((g * 13 + s) % 400) - 200) * 0.25 END,
           CASE WHEN g % 9 = 0 THEN NULL ELSE (((g * 17 + s) % 4000) - 2000) * 0.25 END,
           CASE WHEN g % 6 = 0 THEN NULL ELSE (((g * 19 + s) % 100000) - 50000) / 100.0 END,
           CASE WHEN g % 8 = 0 THEN NULL ELSE make_interval(days => g % 40, secs => (g * 37 + s) % 86400) END,
           CASE WHEN g % 10 = 0 THEN NULL ELSE (((g * 23 + s) % 100000) / 100.0)::numeric::money END,
           CASE WHEN g % 12 = 0 THEN NULL ELSE 'text ' || ((g * 29 + s) % 997) END,
           CASE WHEN g % 14 = 0 THEN NULL ELSE date '2026-01-01' + (g * 3 + s) % 500 END,
           CASE WHEN g % 15 = 0 THEN NULL ELSE time '00:00' + make_interval(secs => (g * 41 + s) % 86400) END,
           CASE WHEN g % 16 = 0 THEN NULL ELSE (time '00:00' + make_interval(secs => (g * 43 + s) % 86400))::timetz END,
           CASE WHEN g % 18 = 0 THEN NULL ELSE timestamp '2026-01-01' + make_interval(secs => (g * 47 + s) % 10000000) END,
           CASE WHEN g % 19 = 0 THEN NULL ELSE timestamptz '2026-01-01 00:00+00' + make_interval(secs => (g * 53 + s) % 10000000) END,
           CASE WHEN g % 20 = 0 THEN NULL ELSE (g + s) % 3 <> 0 END,
           CASE WHEN g % 21 = 0 THEN NULL ELSE ((g * 59 + s) % 256)::bit(8) END,
           CASE WHEN g % 22 = 0 THEN NULL ELSE (((g * 61 + s) % 800) - 400) * 0.25 END
      FROM generate_series(1, cnt) g
$$;

CREATE VIEW v_count WITH (continuous) AS
    SELECT k, count(*) AS c, count(i4) AS c_i4, count(t) AS c_t, count(b) AS c_b
      FROM ev GROUP BY k;
CREATE VIEW v_sum WITH (continuous) AS
    SELECT k, sum(i2) AS s_i2, sum(i4) AS s_i4, sum(i8) AS s_i8, sum(f4) AS s_f4,
           sum(f8) AS s_f8, sum(n) AS s_n, sum(iv) AS s_iv, sum(m) AS s_m
      FROM ev GROUP BY k;
CREATE VIEW v_avg WITH (continuous) AS
    SELECT k, avg(i2) AS a_i2, avg(i4) AS a_i4, avg(i8) AS a_i8, avg(f4) AS a_f4,
           avg(f8) AS a_f8, avg(n) AS a_n, avg(iv) AS a_iv
      FROM ev GROUP BY k;
CREATE VIEW v_minmax WITH (continuous) AS
    SELECT k, min(i2) AS min_i2, max(i2) AS max_i2, min(i4) AS min_i4, max(i4) AS max_i4,
           min(i8) AS min_i8, max(i8) AS max_i8, min(f4) AS min_f4, max(f4) AS max_f4,
           min(f8) AS min_f8, max(f8) AS max_f8, min(n) AS min_n, max(n) AS max_n,
           min(iv) AS min_iv, max(iv) AS max_iv, min(m) AS min_m, max(m) AS max_m,
           min(t) AS min_t, max(t) AS max_t, min(t COLLATE "C") AS min_tc,
           min(d) AS min_d, max(d) AS max_d, min(tm) AS min_tm, max(tm) AS max_tm,
           min(ttz) AS min_ttz, max(ttz) AS max_ttz, min(ts) AS min_ts, max(ts) AS max_ts,
           min(tstz) AS min_tstz, max(tstz) AS max_tstz
      FROM ev GROUP BY k;
CREATE VIEW v_stats WITH (continuous) AS
    SELECT k, stddev(i2) AS sd_i2, variance(i4) AS var_i4, stddev_pop(i8) AS sdp_i8,
           var_samp(n) AS vs_n, var_pop(f4) AS vp_f4, stddev_samp(f8) AS sds_f8,
           variance(f8) AS var_f8, stddev(n) AS sd_n
      FROM ev GROUP BY k;
CREATE VIEW v_bool WITH (continuous) AS
    SELECT k, bool_and(b) AS band, bool_or(b) AS bor, every(b) AS bevery,
           bit_and(i2) AS ba_i2, bit_or(i4) AS bo_i4, bit_xor(i8) AS bx_i8,
           bit_and(bits) AS ba_bits, bit_or(bits) AS bo_bits, bit_xor(bits) AS bx_bits
      FROM ev GROUP BY k;
CREATE VIEW v_regr WITH (continuous) AS
    SELECT k, corr(y, f8) AS corr, covar_pop(y, f8) AS cp, covar_samp(y, f8) AS cs,
           regr_avgx(y, f8) AS rax, regr_avgy(y, f8) AS ray, regr_count(y, f8) AS rc,
           regr_intercept(y, f8) AS ri, regr_r2(y, f8) AS rr2, regr_slope(y, f8) AS rs,
           regr_sxx(y, f8) AS rsxx, regr_sxy(y, f8) AS rsxy, regr_syy(y, f8) AS rsyy
      FROM ev GROUP BY k;

-- Events in many statements and transactions, some rolled back.
DO $$
BEGIN
    FOR s IN 1..20 LOOP
        INSERT INTO ev SELECT * FROM ev_rows(s, 300);
        INSERT INTO ev_oracle SELECT * FROM ev_rows(s, 300);
        COMMIT;
    END LOOP;
END
$$;
BEGIN;
INSERT INTO ev SELECT * FROM ev_rows(99, 500);
ROLLBACK;
BEGIN;
INSERT INTO ev SELECT * FROM ev_rows(21, 200);
INSERT INTO ev_oracle SELECT * FROM ev_rows(21, 200);
SAVEPOINT a;
INSERT INTO ev SELECT * FROM ev_rows(98, 300);
ROLLBACK TO SAVEPOINT a;
INSERT INTO ev SELECT * FROM ev_rows(22, 100);
INSERT INTO ev_oracle SELECT * FROM ev_rows(22, 100);
COMMIT;

SELECT streamproc.sync();

SELECT count(*) AS oracle_events FROM ev_oracle;

-- Each comparison returns the number of rows that differ each way: 0, 0.
CREATE FUNCTION oracle_diff(view_sql text, batch_sql text, OUT view_only bigint, OUT batch_only bigint)
LANGUAGE plpgsql AS $$
BEGIN
    EXECUTE format('SELECT count(*) FROM ((%s) EXCEPT ALL (%s)) x', view_sql, batch_sql) INTO view_only;
    EXECUTE format('SELECT count(*) FROM ((%s) EXCEPT ALL (%s)) x', batch_sql, view_sql) INTO batch_only;
END
$$;

SELECT 'count' AS family, * FROM oracle_diff(
    'SELECT * FROM v_count',
    'SELECT k, count(*), count(i4), count(t), count(b) FROM ev_oracle GROUP BY k');
SELECT 'sum' AS family, * FROM oracle_diff(
    'SELECT * FROM v_sum',
    'SELECT k, sum(i2), sum(i4), sum(i8), sum(f4), sum(f8), sum(n), sum(iv), sum(m) FROM ev_oracle GROUP BY k');
SELECT 'avg' AS family, * FROM oracle_diff(
    'SELECT * FROM v_avg',
    'SELECT k, avg(i2), avg(i4), avg(i8), avg(f4), avg(f8), avg(n), avg(iv) FROM ev_oracle GROUP BY k');
SELECT 'minmax' AS family, * FROM oracle_diff(
    'SELECT * FROM v_minmax',
    'SELECT k, min(i2), max(i2), min(i4), max(i4), min(i8), max(i8), min(f4), max(f4),
            min(f8), max(f8), min(n), max(n), min(iv), max(iv), min(m), max(m),
            min(t), max(t), min(t COLLATE "C"), min(d), max(d), min(tm), max(tm),
            min(ttz), max(ttz), min(ts), max(ts), min(tstz), max(tstz)
       FROM ev_oracle GROUP BY k');
SELECT 'stats' AS family, * FROM oracle_diff(
    'SELECT k, round(sd_i2, 10), round(var_i4, 10), round(sdp_i8, 10), round(vs_n, 10),
            round(vp_f4::numeric, 6), round(sds_f8::numeric, 6), round(var_f8::numeric, 6), round(sd_n, 10)
       FROM v_stats',
    'SELECT k, round(stddev(i2), 10), round(variance(i4), 10), round(stddev_pop(i8), 10), round(var_samp(n), 10),
            round(var_pop(f4)::numeric, 6), round(stddev_samp(f8)::numeric, 6), round(variance(f8)::numeric, 6), round(stddev(n), 10)
       FROM ev_oracle GROUP BY k');
SELECT 'bool and bit' AS family, * FROM oracle_diff(
    'SELECT * FROM v_bool',
    'SELECT k, bool_and(b), bool_or(b), every(b), bit_and(i2), bit_or(i4), bit_xor(i8),
            bit_and(bits), bit_or(bits), bit_xor(bits) FROM ev_oracle GROUP BY k');
SELECT 'regression' AS family, * FROM oracle_diff(
    'SELECT k, round(corr::numeric, 6), round(cp::numeric, 6), round(cs::numeric, 6), round(rax::numeric, 6),
            round(ray::numeric, 6), rc, round(ri::numeric, 6), round(rr2::numeric, 6), round(rs::numeric, 6),
            round(rsxx::numeric, 6), round(rsxy::numeric, 6), round(rsyy::numeric, 6)
       FROM v_regr',
    'SELECT k, round(corr(y, f8)::numeric, 6), round(covar_pop(y, f8)::numeric, 6), round(covar_samp(y, f8)::numeric, 6),
            round(regr_avgx(y, f8)::numeric, 6), round(regr_avgy(y, f8)::numeric, 6), regr_count(y, f8),
            round(regr_intercept(y, f8)::numeric, 6), round(regr_r2(y, f8)::numeric, 6), round(regr_slope(y, f8)::numeric, 6),
            round(regr_sxx(y, f8)::numeric, 6), round(regr_sxy(y, f8)::numeric, 6), round(regr_syy(y, f8)::numeric, 6)
       FROM ev_oracle GROUP BY k');

-- The views are not trivially empty: they hold every group of the oracle.
SELECT (SELECT count(*) FROM v_count) AS view_groups,
       (SELECT count(DISTINCT k) + 1 FROM ev_oracle) AS oracle_groups_with_null;
