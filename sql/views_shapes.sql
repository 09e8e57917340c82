--
-- View shapes against their batch oracle: WHERE, FILTER, HAVING,
-- expressions over aggregates, no GROUP BY, NULL keys, many groups, joins
-- with tables (inner, left, with and without an index, the table changed
-- mid-stream), append-only views, COPY, prepared statements, failing
-- expressions.
--
CREATE OR REPLACE FUNCTION oracle_diff(view_sql text, batch_sql text, OUT view_only bigint, OUT batch_only bigint)
LANGUAGE plpgsql AS $$
BEGIN
    EXECUTE format('SELECT count(*) FROM ((%s) EXCEPT ALL (%s)) x', view_sql, batch_sql) INTO view_only;
    EXECUTE format('SELECT count(*) FROM ((%s) EXCEPT ALL (%s)) x', batch_sql, view_sql) INTO batch_only;
END
$$;

CREATE FOREIGN TABLE clicks (user_id int, url text, amount numeric, ts timestamptz) SERVER streamproc;
CREATE TABLE clicks_oracle (user_id int, url text, amount numeric, ts timestamptz);

CREATE VIEW shape_where WITH (continuous) AS
    SELECT url, count(*) AS n, sum(amount) AS total FROM clicks WHERE amount > 50 GROUP BY url;
CREATE VIEW shape_filter WITH (continuous) AS
    SELECT url, count(*) FILTER (WHERE amount > 90) AS big, count(*) AS n,
           sum(amount) FILTER (WHERE user_id % 2 = 0) AS even_total
      FROM clicks GROUP BY url;
CREATE VIEW shape_having WITH (continuous) AS
    SELECT user_id, count(*) AS n FROM clicks GROUP BY user_id HAVING count(*) > 12;
CREATE VIEW shape_expr WITH (continuous) AS
    SELECT url || '!' AS u, sum(amount) / count(*) AS mean, max(amount) - min(amount) AS spread,
           count(*) * 2 AS twice
      FROM clicks GROUP BY url || '!';
CREATE VIEW shape_total WITH (continuous) AS
    SELECT count(*) AS n, sum(amount) AS total, avg(amount) AS mean FROM clicks;
CREATE VIEW shape_empty_total WITH (continuous) AS
    SELECT count(*) AS n, sum(amount) AS total FROM clicks WHERE url = 'nowhere';
CREATE VIEW shape_nullkey WITH (continuous) AS
    SELECT user_id % 3 AS bucket, url IS NULL AS no_url, count(*) AS n FROM clicks GROUP BY 1, 2;
CREATE VIEW shape_many WITH (continuous) AS
    SELECT user_id, count(*) AS n, sum(amount) AS total FROM clicks GROUP BY user_id;
-- Aggregates of other extensions: hll (distinct counts) and tdigest.
CREATE EXTENSION IF NOT EXISTS hll;
CREATE EXTENSION IF NOT EXISTS tdigest;
CREATE VIEW shape_ext WITH (continuous) AS
    SELECT url, hll_cardinality(hll_add_agg(hll_hash_integer(user_id))) AS users,
           tdigest_percentile(amount::float8, 100, 0.5) AS median
      FROM clicks GROUP BY url;
CREATE VIEW shape_append WITH (continuous) AS
    SELECT user_id, upper(url) AS url, amount * 2 AS doubled FROM clicks WHERE amount < 10;

-- Events: NULL urls, 100,000 distinct users in all.
INSERT INTO clicks
SELECT g, CASE WHEN g % 10 = 0 THEN NULL ELSE '/p/' || (g % 7) END, (g % 10000) / 100.0,
       timestamptz '2026-01-01 00:00+00' + g * interval '1 second'
  FROM generate_series(1, 100000) g;
INSERT INTO clicks_oracle
SELECT g, CASE WHEN g % 10 = 0 THEN NULL ELSE '/p/' || (g % 7) END, (g % 10000) / 100.0,
       timestamptz '2026-01-01 00:00+00' + g * interval '1 second'
  FROM generate_series(1, 100000) g;

-- COPY, text and csv.
COPY clicks FROM STDIN;
7	/p/1	12.50	2026-02-01 00:00:00+00
7	\N	1.25	2026-02-01 00:00:01+00
\.
COPY clicks FROM STDIN (FORMAT csv);
8,/p/2,99.99,2026-02-01 00:00:02+00
8,"/p/,3",5.00,2026-02-01 00:00:03+00
\.
INSERT INTO clicks_oracle VALUES
    (7, '/p/1', 12.50, '2026-02-01 00:00:00+00'), (7, NULL, 1.25, '2026-02-01 00:00:01+00'),
    (8, '/p/2', 99.99, '2026-02-01 00:00:02+00'), (8, '/p/,3', 5.00, '2026-02-01 00:00:03+00');

-- Prepared statements (server-side PREPARE; the extended protocol is tested in TAP).
PREPARE ins(int, text, numeric) AS INSERT INTO clicks VALUES ($1, $2, $3, now());
EXECUTE ins(9, '/p/4', 42);
EXECUTE ins(9, '/p/4', 43);
INSERT INTO clicks_oracle VALUES (9, '/p/4', 42, now()), (9, '/p/4', 43, now());

-- Repeat users so that HAVING keeps some groups.
INSERT INTO clicks SELECT g % 50, '/p/9', g % 100, now() FROM generate_series(1, 1000) g;
INSERT INTO clicks_oracle SELECT g % 50, '/p/9', g % 100, now() FROM generate_series(1, 1000) g;

SELECT streamproc.sync();

SELECT 'where' AS shape, * FROM oracle_diff('SELECT * FROM shape_where',
    'SELECT url, count(*), sum(amount) FROM clicks_oracle WHERE amount > 50 GROUP BY url');
SELECT 'filter' AS shape, * FROM oracle_diff('SELECT * FROM shape_filter',
    'SELECT url, count(*) FILTER (WHERE amount > 90), count(*), sum(amount) FILTER (WHERE user_id % 2 = 0)
       FROM clicks_oracle GROUP BY url');
SELECT 'having' AS shape, * FROM oracle_diff('SELECT * FROM shape_having',
    'SELECT user_id, count(*) FROM clicks_oracle GROUP BY user_id HAVING count(*) > 12');
SELECT 'expressions' AS shape, * FROM oracle_diff('SELECT * FROM shape_expr',
    'SELECT url || ''!'', sum(amount) / count(*), max(amount) - min(amount), count(*) * 2
       FROM clicks_oracle GROUP BY url || ''!''');
SELECT 'no group by' AS shape, * FROM oracle_diff('SELECT * FROM shape_total',
    'SELECT count(*), sum(amount), avg(amount) FROM clicks_oracle');
SELECT 'no group by, no rows' AS shape, * FROM oracle_diff('SELECT * FROM shape_empty_total',
    'SELECT count(*), sum(amount) FROM clicks_oracle WHERE url = ''nowhere''');
SELECT 'null keys' AS shape, * FROM oracle_diff('SELECT * FROM shape_nullkey',
    'SELECT user_id % 3, url IS NULL, count(*) FROM clicks_oracle GROUP BY 1, 2');
SELECT 'many groups' AS shape, * FROM oracle_diff('SELECT * FROM shape_many',
    'SELECT user_id, count(*), sum(amount) FROM clicks_oracle GROUP BY user_id');
-- hll merges exactly; a t-digest depends on the order it merged in, so
-- its median is compared within 1% of the range.
SELECT 'hll' AS shape, * FROM oracle_diff('SELECT url, users FROM shape_ext',
    'SELECT url, hll_cardinality(hll_add_agg(hll_hash_integer(user_id))) FROM clicks_oracle GROUP BY url');
SELECT count(*) AS groups,
       count(*) FILTER (WHERE abs(v.median - o.median) <= 1.0) AS medians_within_1pct
  FROM shape_ext v
  JOIN (SELECT url, percentile_cont(0.5) WITHIN GROUP (ORDER BY amount::float8) AS median
          FROM clicks_oracle GROUP BY url) o ON o.url IS NOT DISTINCT FROM v.url;
SELECT 'append' AS shape, * FROM oracle_diff('SELECT * FROM shape_append',
    'SELECT user_id, upper(url), amount * 2 FROM clicks_oracle WHERE amount < 10');
SELECT count(*) AS groups FROM shape_many;
SELECT * FROM shape_empty_total;
SELECT count(*) > 0 AS having_kept_some FROM shape_having;

--
-- Joins with tables: the table as it is when the event is processed.
--
CREATE TABLE users (id int PRIMARY KEY, country text);
CREATE TABLE segments (id int, segment text);   -- no index
INSERT INTO users SELECT g, CASE WHEN g % 3 = 0 THEN 'fr' WHEN g % 3 = 1 THEN 'de' ELSE 'it' END
  FROM generate_series(1, 80) g;
INSERT INTO segments SELECT g, 'seg' || (g % 4) FROM generate_series(1, 60) g;

CREATE FOREIGN TABLE orders (customer_id int, amount numeric) SERVER streamproc;
CREATE TABLE orders_joined_oracle (country text, segment text, amount numeric);

CREATE VIEW revenue_by_country WITH (continuous) AS
    SELECT u.country, sum(o.amount) AS revenue, count(*) AS n
      FROM orders o JOIN users u ON u.id = o.customer_id GROUP BY u.country;
CREATE VIEW revenue_by_segment WITH (continuous) AS
    SELECT s.segment, sum(o.amount) AS revenue, count(*) AS n
      FROM orders o LEFT JOIN segments s ON s.id = o.customer_id GROUP BY s.segment;
CREATE VIEW orders_enriched WITH (continuous) AS
    SELECT o.customer_id, u.country, o.amount
      FROM orders o LEFT JOIN users u ON u.id = o.customer_id WHERE o.amount > 5;

INSERT INTO orders SELECT g % 100, g FROM generate_series(1, 500) g;
SELECT streamproc.sync();
INSERT INTO orders_joined_oracle
SELECT u.country, s.segment, o.amount
  FROM (SELECT g % 100 AS customer_id, g::numeric AS amount FROM generate_series(1, 500) g) o
  LEFT JOIN users u ON u.id = o.customer_id LEFT JOIN segments s ON s.id = o.customer_id;
CREATE TABLE orders_enriched_oracle AS
SELECT o.customer_id, u.country, o.amount
  FROM (SELECT g % 100 AS customer_id, g::numeric AS amount FROM generate_series(1, 500) g) o
  LEFT JOIN users u ON u.id = o.customer_id WHERE o.amount > 5;

-- The tables change; only later events see the change.
UPDATE users SET country = 'es' WHERE id % 3 = 0;
DELETE FROM segments WHERE id > 30;
INSERT INTO orders SELECT g % 100, g FROM generate_series(501, 800) g;
SELECT streamproc.sync();
INSERT INTO orders_joined_oracle
SELECT u.country, s.segment, o.amount
  FROM (SELECT g % 100 AS customer_id, g::numeric AS amount FROM generate_series(501, 800) g) o
  LEFT JOIN users u ON u.id = o.customer_id LEFT JOIN segments s ON s.id = o.customer_id;
INSERT INTO orders_enriched_oracle
SELECT o.customer_id, u.country, o.amount
  FROM (SELECT g % 100 AS customer_id, g::numeric AS amount FROM generate_series(501, 800) g) o
  LEFT JOIN users u ON u.id = o.customer_id WHERE o.amount > 5;

SELECT 'inner join, index' AS shape, * FROM oracle_diff('SELECT * FROM revenue_by_country',
    'SELECT country, sum(amount), count(*) FROM orders_joined_oracle WHERE country IS NOT NULL GROUP BY country');
SELECT 'left join, no index' AS shape, * FROM oracle_diff('SELECT * FROM revenue_by_segment',
    'SELECT segment, sum(amount), count(*) FROM orders_joined_oracle GROUP BY segment');
SELECT 'append, left join' AS shape, * FROM oracle_diff('SELECT * FROM orders_enriched',
    'SELECT * FROM orders_enriched_oracle');
SELECT * FROM revenue_by_country ORDER BY country;

-- The batch query joins the table through its index.
CREATE TABLE big_users (id int PRIMARY KEY, country text);
INSERT INTO big_users SELECT g, 'c' || (g % 20) FROM generate_series(1, 100000) g;
ANALYZE big_users;
CREATE VIEW revenue_big WITH (continuous) AS
    SELECT u.country, sum(o.amount) AS revenue FROM orders o JOIN big_users u ON u.id = o.customer_id
     GROUP BY u.country;
CREATE FUNCTION batch_plan_matches(v regclass, pattern text) RETURNS boolean
LANGUAGE plpgsql AS $$
DECLARE
    q text;
    line text;
    found boolean := false;
BEGIN
    SELECT batch_query INTO q FROM streamproc.views WHERE view = v;
    PERFORM set_config('search_path', 'pg_catalog', true);
    EXECUTE 'PREPARE sp_batch(pg_snapshot, pg_snapshot, int2, tid, tid) AS ' || q;
    FOR line IN EXECUTE 'EXPLAIN (COSTS OFF) EXECUTE sp_batch(pg_current_snapshot(), NULL, 0, ''(0,0)'', ''(4294967295,0)'')' LOOP
        found := found OR line ~ pattern;
    END LOOP;
    DEALLOCATE sp_batch;
    RETURN found;
END
$$;
SELECT batch_plan_matches('revenue_big', 'Index Scan using big_users_pkey') AS uses_index;
DROP VIEW revenue_big;

--
-- An event whose processing fails goes to streamproc.errors; the rest of
-- its batch is processed.
--
CREATE FOREIGN TABLE ratios (k int, num int, den int) SERVER streamproc;
CREATE VIEW ratio_sums WITH (continuous) AS
    SELECT k, sum(num / den) AS q, count(*) AS n FROM ratios GROUP BY k;
INSERT INTO ratios SELECT g % 3, g * 10, CASE WHEN g % 25 = 0 THEN 0 ELSE g END
  FROM generate_series(1, 100) g;
SELECT streamproc.sync();
SELECT * FROM ratio_sums ORDER BY k;
SELECT k, sum(num / den), count(*)
  FROM (SELECT g % 3 AS k, g * 10 AS num, g AS den FROM generate_series(1, 100) g WHERE g % 25 <> 0) x
 GROUP BY k ORDER BY k;
SELECT source, view, sqlstate, message, event::jsonb - 'k' AS event
  FROM streamproc.errors WHERE view = 'ratio_sums'::regclass ORDER BY id;

-- Polymorphic aggregates resolve with the actual argument types.
CREATE FOREIGN TABLE arrs (k int, a int[]) SERVER streamproc;
CREATE VIEW arr_v WITH (continuous) AS
    SELECT k, max(a) AS hi, min(a) AS lo, count(a) AS n FROM arrs GROUP BY k;
INSERT INTO arrs SELECT g % 3, ARRAY[g % 7, g % 5] FROM generate_series(1, 100) g;
SELECT streamproc.sync();
SELECT 'polymorphic' AS shape, * FROM oracle_diff('SELECT * FROM arr_v',
    'SELECT g % 3, max(ARRAY[g % 7, g % 5]), min(ARRAY[g % 7, g % 5]), count(*)
       FROM generate_series(1, 100) g GROUP BY 1');
SELECT * FROM arr_v ORDER BY k;

-- Values GROUP BY treats as equal form one group across batches, even
-- when their binary forms differ: numeric scale, float -0 and NaNs.
CREATE FOREIGN TABLE nums (n numeric, f float8) SERVER streamproc;
CREATE TABLE nums_oracle (n numeric, f float8);
CREATE VIEW nums_by_n WITH (continuous) AS SELECT n, count(*) AS c FROM nums GROUP BY n;
CREATE VIEW nums_by_f WITH (continuous) AS SELECT f, count(*) AS c FROM nums GROUP BY f;
INSERT INTO nums VALUES (1.0, 0.0);
SELECT streamproc.sync();
INSERT INTO nums VALUES (1.00, '-0');
SELECT streamproc.sync();
INSERT INTO nums VALUES (1, 'NaN');
SELECT streamproc.sync();
INSERT INTO nums VALUES (2.50, 'NaN'), (2.5, 1.5);
SELECT streamproc.sync();
INSERT INTO nums_oracle VALUES (1.0, 0.0), (1.00, '-0'), (1, 'NaN'), (2.50, 'NaN'), (2.5, 1.5);
SELECT 'numeric keys' AS shape, * FROM oracle_diff('SELECT * FROM nums_by_n',
    'SELECT n, count(*) FROM nums_oracle GROUP BY n');
SELECT 'float keys' AS shape, * FROM oracle_diff('SELECT * FROM nums_by_f',
    'SELECT f, count(*) FROM nums_oracle GROUP BY f');
SELECT * FROM nums_by_n ORDER BY n;
SELECT * FROM nums_by_f ORDER BY f;

-- Statistics.
SELECT view, kind, events, groups > 0 AS has_groups, errors, state
  FROM streamproc.stat_views ORDER BY view::text;

-- The extensions' objects go, so that later tests can drop the extensions.
DROP VIEW shape_ext;

-- A view sees every event committed after it was created, even when the
-- events follow its creation at once (the worker must load the view before
-- it processes them).
CREATE FOREIGN TABLE race (v int) SERVER streamproc;
CREATE VIEW race_base WITH (continuous) AS SELECT count(*) AS n FROM race;
DO $$
DECLARE
    missed int := 0;
    n bigint;
BEGIN
    FOR i IN 1..30 LOOP
        EXECUTE format('CREATE VIEW race_%s WITH (continuous) AS SELECT count(*) AS n FROM race', i);
        COMMIT;
        INSERT INTO race SELECT g FROM generate_series(1, 100) g;
        COMMIT;
        PERFORM streamproc.sync();
        EXECUTE format('SELECT n FROM race_%s', i) INTO n;
        IF n <> 100 THEN
            missed := missed + 1;
        END IF;
        EXECUTE format('DROP VIEW race_%s', i);
        COMMIT;
    END LOOP;
    RAISE NOTICE 'views that missed events committed after their creation: %', missed;
END
$$;
SELECT n AS all_events FROM race_base;
