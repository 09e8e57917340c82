--
-- CREATE VIEW ... WITH (continuous): accepted and rejected shapes, the
-- catalog rows and view definitions it writes, DDL on continuous views,
-- privileges, and the batch query checked against its batch oracle.
-- (Maintenance by the workers is tested in views_shapes and views_oracle.)
--
CREATE FOREIGN TABLE clicks (user_id int, url text, amount numeric, ts timestamptz)
    SERVER streamproc;
CREATE FOREIGN TABLE orders (id int, amount numeric) SERVER streamproc;
CREATE TABLE users (id int PRIMARY KEY, country text);
INSERT INTO users VALUES (1, 'fr'), (2, 'de'), (3, NULL);

--
-- Rejected shapes: one statement each, with its message and hint.
--
CREATE VIEW r WITH (continuous) AS SELECT user_id FROM clicks ORDER BY user_id;
CREATE VIEW r WITH (continuous) AS SELECT user_id FROM clicks LIMIT 10;
CREATE VIEW r WITH (continuous) AS SELECT user_id FROM clicks OFFSET 1;
CREATE VIEW r WITH (continuous) AS SELECT user_id, row_number() OVER () FROM clicks;
CREATE VIEW r WITH (continuous) AS SELECT user_id FROM clicks UNION SELECT id FROM users;
CREATE VIEW r WITH (continuous) AS WITH c AS (SELECT * FROM clicks) SELECT count(*) FROM c;
CREATE VIEW r WITH (continuous) AS SELECT user_id, (SELECT max(id) FROM users) FROM clicks;
CREATE VIEW r WITH (continuous) AS SELECT user_id FROM clicks WHERE user_id IN (SELECT id FROM users);
CREATE VIEW r WITH (continuous) AS SELECT u.c FROM clicks, (SELECT count(*) AS c FROM users) u;
CREATE VIEW r WITH (continuous) AS SELECT c.user_id FROM clicks c JOIN clicks d ON c.user_id = d.user_id;
CREATE VIEW r WITH (continuous) AS SELECT c.user_id FROM clicks c, orders o;
CREATE VIEW r WITH (continuous) AS SELECT country, count(*) FROM users GROUP BY country;
CREATE VIEW r WITH (continuous) AS SELECT 1 AS one;
CREATE VIEW r WITH (continuous) AS SELECT random() > 0.5 AS coin, count(*) FROM clicks GROUP BY 1;
CREATE VIEW r WITH (continuous) AS SELECT user_id::bit(8)::varbit AS b, count(*) FROM clicks GROUP BY 1;
CREATE VIEW r WITH (continuous) AS SELECT DISTINCT user_id FROM clicks;
CREATE VIEW r WITH (continuous) AS SELECT DISTINCT ON (user_id) user_id, url FROM clicks;
CREATE VIEW r WITH (continuous) AS SELECT user_id, url, count(*) FROM clicks GROUP BY GROUPING SETS ((user_id), (url));
CREATE VIEW r WITH (continuous) AS SELECT user_id, count(*) FROM clicks GROUP BY ROLLUP (user_id);
CREATE VIEW r WITH (continuous) AS SELECT user_id, count(*) FROM clicks GROUP BY CUBE (user_id);
CREATE VIEW r WITH (continuous) AS SELECT user_id, GROUPING(user_id) FROM clicks GROUP BY user_id;
CREATE VIEW r WITH (continuous) AS SELECT user_id FROM clicks FOR UPDATE;
CREATE VIEW r WITH (continuous) AS SELECT u.country FROM users u LEFT JOIN clicks c ON c.user_id = u.id;
CREATE VIEW r WITH (continuous) AS SELECT u.country FROM clicks c RIGHT JOIN users u ON c.user_id = u.id;
CREATE VIEW r WITH (continuous) AS SELECT u.country FROM clicks c FULL JOIN users u ON c.user_id = u.id;
CREATE VIEW r WITH (continuous) AS SELECT user_id, g FROM clicks, generate_series(1, 3) AS g;
CREATE VIEW r WITH (continuous) AS SELECT user_id, x FROM clicks, LATERAL unnest(ARRAY[url]) AS x;
CREATE TEMP VIEW r WITH (continuous) AS SELECT user_id FROM clicks;
CREATE VIEW pg_temp.r WITH (continuous) AS SELECT user_id FROM clicks;
CREATE TEMP TABLE tmp_users (id int);
CREATE VIEW r WITH (continuous) AS SELECT c.user_id FROM clicks c JOIN tmp_users t ON t.id = c.user_id;
CREATE VIEW r WITH (continuous) AS SELECT user_id FROM clicks WITH CHECK OPTION;
CREATE VIEW r WITH (continuous, check_option = local) AS SELECT user_id FROM clicks;
CREATE VIEW r WITH (continuous, security_invoker) AS SELECT user_id FROM clicks;
CREATE VIEW r WITH (continuous) AS SELECT user_id, array_agg(url ORDER BY ts) FROM clicks GROUP BY user_id;
CREATE VIEW r WITH (continuous) AS SELECT count(DISTINCT url) FROM clicks;
CREATE VIEW r WITH (continuous) AS SELECT percentile_cont(0.5) WITHIN GROUP (ORDER BY amount) FROM clicks;
CREATE VIEW r WITH (continuous) AS SELECT c FROM clicks c;
CREATE VIEW r WITH (continuous) AS SELECT count(c.*) FROM clicks c;
CREATE VIEW r WITH (continuous) AS SELECT tableoid FROM clicks;
CREATE VIEW r WITH (continuous) AS SELECT u.id, u.country, count(*) FROM clicks c JOIN users u ON u.id = c.user_id GROUP BY u.id;
CREATE VIEW clicks_view AS SELECT * FROM clicks;
CREATE VIEW r WITH (continuous) AS SELECT count(*) FROM clicks_view;
DROP VIEW clicks_view;
CREATE VIEW r WITH (continuous) AS SELECT user_id INTO x FROM clicks;
-- nothing was left behind
SELECT count(*) FROM streamproc.views;
SELECT count(*) FROM pg_class
 WHERE relname = 'r' OR relnamespace = 'streamproc'::regnamespace AND relname LIKE 'rows\_%';

--
-- Accepted shapes.
--
CREATE SCHEMA app;
-- grouped, with WHERE, an expression over aggregates and HAVING
CREATE VIEW app.by_user WITH (continuous) AS
    SELECT user_id, count(*), sum(amount) / count(*) AS avg2 FROM clicks
     WHERE url <> '/x' GROUP BY user_id HAVING count(*) > 1;
-- no GROUP BY: one row
CREATE VIEW app.totals WITH (continuous = true) AS
    SELECT count(*) AS n, sum(amount) AS total, max(ts) AS last_ts FROM clicks;
-- FILTER, and group keys that may be NULL
CREATE VIEW app.by_url WITH (continuous) AS
    SELECT url, count(*) FILTER (WHERE amount > 5) AS big, count(*) AS n
      FROM clicks GROUP BY url;
-- expressions as group keys
CREATE VIEW app.buckets WITH (continuous) AS
    SELECT user_id % 2 AS parity, upper(url) AS u, min(amount) FROM clicks
     GROUP BY user_id % 2, upper(url);
-- inner join with a table, other reloptions kept
CREATE VIEW app.by_country WITH (continuous, security_barrier) AS
    SELECT u.country, sum(c.amount) FROM clicks c JOIN users u ON u.id = c.user_id
     GROUP BY u.country;
-- left join, column names given with the view name, GROUP BY position
CREATE VIEW app.by_country_left (country, n) WITH (continuous) AS
    SELECT u.country, count(*) FROM clicks c LEFT JOIN users u ON u.id = c.user_id
     GROUP BY 1;
-- append view: filter, map, enrich
CREATE VIEW app.enriched WITH (continuous) AS
    SELECT c.user_id, u.country, c.amount * 2 AS doubled
      FROM clicks c LEFT JOIN users u ON u.id = c.user_id WHERE c.url LIKE '/a%';
-- continuous = false: an ordinary view
CREATE VIEW app.ordinary WITH (continuous = false) AS SELECT 1 AS one;

SELECT view, stream, kind, group_types, aggregates, agg_collations,
       rows_table::text IS NOT DISTINCT FROM
         CASE kind WHEN 'p' THEN format('streamproc.rows_%s', view::oid) END AS rows_table_ok
  FROM streamproc.views ORDER BY view::text;
SELECT relname, relkind FROM pg_class WHERE oid = 'app.ordinary'::regclass;
SELECT c.relname, c.reloptions FROM pg_class c WHERE c.oid = 'app.by_country'::regclass;

-- Generated definitions (oids masked).
CREATE FUNCTION masked(t text) RETURNS text LANGUAGE sql AS $$
    SELECT regexp_replace(t, '(log|rows|groups)_\d+', '\1_<oid>', 'g')
$$;
SELECT masked(pg_get_viewdef('app.by_user'::regclass));
SELECT masked(pg_get_viewdef('app.totals'::regclass));
SELECT masked(pg_get_viewdef('app.by_country_left'::regclass));
SELECT masked(pg_get_viewdef('app.enriched'::regclass));
SELECT masked(batch_query) AS batch_query, masked(event_query) AS event_query, definition
  FROM streamproc.views WHERE view = 'app.by_user'::regclass;
SELECT masked(batch_query) AS batch_query FROM streamproc.views
 WHERE view = 'app.enriched'::regclass;
-- the view reads its own state
SELECT pg_get_viewdef('app.by_user'::regclass) LIKE
       format('%%FROM streamproc.groups_%s s%%', 'app.by_user'::regclass::oid) AS reads_own_state;
-- its groups: a foreign table that belongs to the view
SELECT c.relkind, s.srvname, d.deptype
  FROM pg_class c JOIN pg_foreign_table f ON f.ftrelid = c.oid
       JOIN pg_foreign_server s ON s.oid = f.ftserver
       JOIN pg_depend d ON d.classid = 'pg_class'::regclass AND d.objid = c.oid
                       AND d.refobjid = 'app.by_user'::regclass
 WHERE c.oid = format('streamproc.groups_%s', 'app.by_user'::regclass::oid)::regclass;
-- \d+ app.by_user
SELECT attname, format_type(atttypid, atttypmod) FROM pg_attribute
 WHERE attrelid = 'app.by_user'::regclass AND attnum > 0 ORDER BY attnum;
-- the generated texts mean the same under any search_path
SET search_path = app;
SELECT public.masked(pg_get_viewdef('by_user'::regclass)) = public.masked(pg_get_viewdef('app.by_user'::regclass, false)) AS same;
RESET search_path;

--
-- The batch query computes the same SELECT as a batch over the events:
-- insert events (in one transaction, so that no worker consumes them
-- meanwhile), run the batch query over exactly this transaction's events
-- ($1 sees our xid, $2 sees everything before it), finalize the partial
-- states and compare with the same SELECT over a table holding the same
-- rows, with EXCEPT ALL both ways.
--
CREATE TABLE clicks_oracle (user_id int, url text, amount numeric, ts timestamptz);
INSERT INTO clicks_oracle
SELECT CASE WHEN i % 7 = 0 THEN NULL ELSE i % 5 END, CASE WHEN i % 11 = 0 THEN NULL ELSE '/' || chr(97 + i % 4) END,
       (i % 13) * 1.5, timestamptz '2024-01-01' + i * interval '1 minute'
  FROM generate_series(1, 500) i;
INSERT INTO clicks_oracle VALUES (9, '/x', 1, now()), (9, '/x', 2, now());
-- run_batch(view, $1, $2, table): the view's batch query over every shard
-- of its stream's log (the workers run it per shard and per range of
-- blocks; here each shard is read whole), into a temporary table.
CREATE FUNCTION run_batch(v regclass, this_batch pg_snapshot, before_batch pg_snapshot, tbl text)
RETURNS void LANGUAGE plpgsql AS $$
DECLARE
    q text;
    n int;
BEGIN
    SELECT w.batch_query, s.shards INTO q, n
      FROM streamproc.views w JOIN streamproc.streams s ON s.stream = w.stream
     WHERE w.view = v;
    EXECUTE format('CREATE TEMP TABLE %I ON COMMIT DROP AS SELECT * FROM (%s) b WITH NO DATA', tbl, q)
      USING this_batch, before_batch, 0::int2, '(0,0)'::tid, '(4294967295,0)'::tid;
    FOR k IN 0 .. n - 1 LOOP
        EXECUTE format('INSERT INTO %I %s', tbl, q)
          USING this_batch, before_batch, k::int2, '(0,0)'::tid, '(4294967295,0)'::tid;
    END LOOP;
END
$$;
SELECT shards > 1 AS several_shards FROM streamproc.streams WHERE stream = 'clicks'::regclass;
BEGIN;
INSERT INTO clicks SELECT * FROM clicks_oracle;
SELECT format('%1$s:%2$s:', pg_current_xact_id(), pg_current_xact_id()::text::bigint + 1) AS this_batch,
       format('%1$s:%1$s:', pg_current_xact_id()) AS before_batch \gset
-- the events went to more than one shard, so the partial states of a group
-- come in several rows: combine them, as the workers do
SELECT log AS clicks_log FROM streamproc.streams WHERE stream = 'clicks'::regclass \gset
SELECT count(DISTINCT "$shard") > 1 AS spread FROM :clicks_log WHERE "$xid" = pg_current_xact_id();
-- app.by_user
SELECT run_batch('app.by_user', :'this_batch', :'before_batch', 'p');
CREATE TEMP VIEW got AS
    SELECT g1 AS user_id, streamproc.finalize('count()', a1, NULL::bigint) AS count,
           streamproc.finalize('sum(numeric)', a2, NULL::numeric)
             / streamproc.finalize('count()', a1, NULL::bigint) AS avg2
      FROM (SELECT g1, streamproc.combine('count()', a1) AS a1, streamproc.combine('sum(numeric)', a2) AS a2
              FROM p GROUP BY g1) c
     WHERE streamproc.finalize('count()', a1, NULL::bigint) > 1;
CREATE TEMP VIEW want AS
    SELECT user_id, count(*), sum(amount) / count(*) AS avg2 FROM clicks_oracle
     WHERE url <> '/x' GROUP BY user_id HAVING count(*) > 1;
SELECT (SELECT count(*) FROM want) AS groups,
       (SELECT count(*) FROM (TABLE got EXCEPT ALL TABLE want) x) AS got_only,
       (SELECT count(*) FROM (TABLE want EXCEPT ALL TABLE got) x) AS want_only;
DROP VIEW got, want; DROP TABLE p;
-- app.by_url (FILTER, NULL keys)
SELECT run_batch('app.by_url', :'this_batch', :'before_batch', 'p');
CREATE TEMP VIEW got AS
    SELECT g1 AS url, streamproc.finalize('count()', streamproc.combine('count()', a1), NULL::bigint) AS big,
           streamproc.finalize('count()', streamproc.combine('count()', a2), NULL::bigint) AS n
      FROM p GROUP BY g1;
CREATE TEMP VIEW want AS
    SELECT url, count(*) FILTER (WHERE amount > 5) AS big, count(*) AS n
      FROM clicks_oracle GROUP BY url;
SELECT (SELECT count(*) FROM want) AS groups,
       (SELECT count(*) FROM (TABLE got EXCEPT ALL TABLE want) x) AS got_only,
       (SELECT count(*) FROM (TABLE want EXCEPT ALL TABLE got) x) AS want_only;
DROP VIEW got, want; DROP TABLE p;
-- app.totals (no GROUP BY)
SELECT run_batch('app.totals', :'this_batch', :'before_batch', 'p');
CREATE TEMP VIEW got AS
    SELECT streamproc.finalize('count()', streamproc.combine('count()', a1), NULL::bigint) AS n,
           streamproc.finalize('sum(numeric)', streamproc.combine('sum(numeric)', a2), NULL::numeric) AS total,
           streamproc.finalize('max(timestamptz)', streamproc.combine('max(timestamptz)', a3), NULL::timestamptz) AS last_ts
      FROM p;
CREATE TEMP VIEW want AS
    SELECT count(*) AS n, sum(amount) AS total, max(ts) AS last_ts FROM clicks_oracle;
SELECT (SELECT count(*) FROM want) AS groups,
       (SELECT count(*) FROM (TABLE got EXCEPT ALL TABLE want) x) AS got_only,
       (SELECT count(*) FROM (TABLE want EXCEPT ALL TABLE got) x) AS want_only;
DROP VIEW got, want; DROP TABLE p;
-- app.by_country (inner join)
SELECT run_batch('app.by_country', :'this_batch', :'before_batch', 'p');
CREATE TEMP VIEW got AS
    SELECT g1 AS country, streamproc.finalize('sum(numeric)', streamproc.combine('sum(numeric)', a1), NULL::numeric) AS sum
      FROM p GROUP BY g1;
CREATE TEMP VIEW want AS
    SELECT u.country, sum(c.amount) FROM clicks_oracle c JOIN users u ON u.id = c.user_id
     GROUP BY u.country;
SELECT (SELECT count(*) FROM want) AS groups,
       (SELECT count(*) FROM (TABLE got EXCEPT ALL TABLE want) x) AS got_only,
       (SELECT count(*) FROM (TABLE want EXCEPT ALL TABLE got) x) AS want_only;
DROP VIEW got, want; DROP TABLE p;
-- app.enriched (append view, left join)
SELECT run_batch('app.enriched', :'this_batch', :'before_batch', 'got');
CREATE TEMP VIEW want AS
    SELECT c.user_id, u.country, c.amount * 2 AS doubled
      FROM clicks_oracle c LEFT JOIN users u ON u.id = c.user_id WHERE c.url LIKE '/a%';
SELECT (SELECT count(*) FROM want) AS rows,
       (SELECT count(*) FROM (TABLE got EXCEPT ALL TABLE want) x) AS got_only,
       (SELECT count(*) FROM (TABLE want EXCEPT ALL TABLE got) x) AS want_only;
DROP VIEW want; DROP TABLE got;
-- the batch before this one is empty; a range of blocks limits a batch
SELECT batch_query AS totals_batch FROM streamproc.views WHERE view = 'app.totals'::regclass \gset
PREPARE totals_b(pg_snapshot, pg_snapshot, int2, tid, tid) AS :totals_batch;
EXECUTE totals_b(:'before_batch', NULL, 0, '(0,0)', '(4294967295,0)');
CREATE TEMP TABLE b ON COMMIT DROP AS EXECUTE totals_b(:'this_batch', :'before_batch', 0, '(0,0)', '(1,0)');
SELECT streamproc.finalize('count()', a1, NULL::bigint) =
         (SELECT count(*) FROM :clicks_log WHERE "$shard" = 0 AND ctid < '(1,0)') AS block_counted,
       streamproc.finalize('count()', a1, NULL::bigint) <
         (SELECT count(*) FROM :clicks_log WHERE "$shard" = 0) AS only_the_block
  FROM b;
-- the event query reads one event, given its shard and ctid
SELECT event_query AS totals_event FROM streamproc.views WHERE view = 'app.totals'::regclass \gset
PREPARE totals_e(tid, int2) AS :totals_event;
CREATE TEMP TABLE e ON COMMIT DROP AS EXECUTE totals_e('(0,1)', 1);
SELECT streamproc.finalize('count()', a1, NULL::bigint) AS n FROM e;
ROLLBACK;
DEALLOCATE ALL;

--
-- DDL on continuous views.
--
CREATE OR REPLACE VIEW app.by_user AS SELECT 1 AS user_id;
CREATE OR REPLACE VIEW app.by_user WITH (continuous) AS
    SELECT user_id FROM clicks GROUP BY user_id;
CREATE OR REPLACE VIEW app.ordinary WITH (continuous) AS SELECT 1 AS one FROM clicks;
ALTER VIEW app.by_user SET (check_option = local);
ALTER VIEW app.by_user SET (security_invoker = true);
ALTER VIEW app.by_user SET (security_barrier = true);
-- rename and set schema keep the catalog row (keyed by oid)
ALTER VIEW app.by_user RENAME TO per_user;
CREATE SCHEMA app2;
ALTER VIEW app.per_user SET SCHEMA app2;
SELECT view, kind FROM streamproc.views WHERE view = 'app2.per_user'::regclass;
-- the rows table of an append view belongs to the view
DO $$
BEGIN
    EXECUTE format('DROP TABLE streamproc.rows_%s', 'app.enriched'::regclass::oid);
EXCEPTION WHEN dependent_objects_still_exist THEN
    RAISE NOTICE '%', regexp_replace(SQLERRM, 'rows_\d+', 'rows_<oid>');
END
$$;
-- ... and stays in schema streamproc (its queries name it there)
DO $$
BEGIN
    EXECUTE format('ALTER TABLE streamproc.rows_%s SET SCHEMA app', 'app.enriched'::regclass::oid);
EXCEPTION WHEN wrong_object_type THEN
    RAISE NOTICE '%', regexp_replace(SQLERRM, 'rows_\d+', 'rows_<oid>');
END
$$;
-- DROP VIEW removes the catalog row (and the rows table)
SELECT rows_table AS enriched_rows FROM streamproc.views WHERE view = 'app.enriched'::regclass \gset
DROP VIEW app2.per_user, app.enriched;
SELECT count(*) FROM streamproc.views;
SELECT to_regclass(:'enriched_rows') IS NULL AS rows_table_dropped;
-- a stream (or a column it reads) cannot go while views read it
DROP FOREIGN TABLE clicks;
ALTER FOREIGN TABLE clicks DROP COLUMN amount;
DROP TABLE users;
DROP FOREIGN TABLE clicks CASCADE;
SELECT count(*) FROM streamproc.views;
SELECT relname FROM pg_class WHERE relnamespace = 'app'::regnamespace ORDER BY 1;

-- Changing a column that a view reads gives the stream's errors (SQLSTATE
-- 2BP01), not PostgreSQL's about the view's dependency on the column.
CREATE FOREIGN TABLE app.s (k int, v int) SERVER streamproc;
CREATE VIEW app.cv WITH (continuous) AS SELECT k, sum(v) FROM app.s GROUP BY k;
ALTER FOREIGN TABLE app.s ALTER COLUMN v TYPE bigint;
\echo :LAST_ERROR_SQLSTATE
ALTER FOREIGN TABLE app.s DROP COLUMN v;
\echo :LAST_ERROR_SQLSTATE
ALTER FOREIGN TABLE app.s RENAME COLUMN v TO w;
\echo :LAST_ERROR_SQLSTATE
-- columns that do not exist: PostgreSQL's messages
ALTER FOREIGN TABLE app.s DROP COLUMN IF EXISTS nope;
ALTER FOREIGN TABLE app.s ALTER COLUMN nope TYPE bigint;
-- DROP COLUMN ... CASCADE drops the views that read the column, and is
-- refused (rolled back, views kept) while other views read the stream.
CREATE VIEW app.cv_count WITH (continuous) AS SELECT count(*) FROM app.s;
ALTER FOREIGN TABLE app.s DROP COLUMN v CASCADE;
SELECT view FROM streamproc.views WHERE stream = 'app.s'::regclass ORDER BY 1;
DROP VIEW app.cv_count;
ALTER FOREIGN TABLE app.s DROP COLUMN v CASCADE;
SELECT count(*) AS views FROM streamproc.views WHERE stream = 'app.s'::regclass;
SELECT attname FROM pg_attribute
 WHERE attrelid = (SELECT log FROM streamproc.streams WHERE stream = 'app.s'::regclass)
   AND attnum > 0 AND NOT attisdropped
 ORDER BY attnum;
-- So does dropping the column's type with CASCADE: the views go with the
-- column of the stream and of its log, with their groups and rows tables.
-- Without CASCADE the views are named.  A collation likewise.
SELECT count(*) AS tables_before FROM pg_class
 WHERE relnamespace = 'streamproc'::regnamespace AND relname ~ '^(groups|rows)_' \gset
CREATE TYPE app.mood AS ENUM ('ok', 'meh');
CREATE COLLATION app.coll (provider = libc, locale = 'C');
ALTER FOREIGN TABLE app.s ADD COLUMN m app.mood, ADD COLUMN t text;
CREATE VIEW app.by_mood WITH (continuous) AS SELECT m, count(*) FROM app.s GROUP BY m;
CREATE VIEW app.moods WITH (continuous) AS SELECT k, m FROM app.s;
CREATE VIEW app.by_t WITH (continuous) AS SELECT t COLLATE app.coll AS t, max(t COLLATE app.coll) FROM app.s GROUP BY 1;
\set VERBOSITY terse
DROP TYPE app.mood;
DROP COLLATION app.coll;
DROP TYPE app.mood CASCADE;
DROP COLLATION app.coll CASCADE;
\set VERBOSITY default
SELECT count(*) = :tables_before AS tables_gone FROM pg_class
 WHERE relnamespace = 'streamproc'::regnamespace AND relname ~ '^(groups|rows)_';
SELECT count(*) AS views FROM streamproc.views WHERE stream = 'app.s'::regclass;
SELECT attname FROM pg_attribute
 WHERE attrelid = (SELECT log FROM streamproc.streams WHERE stream = 'app.s'::regclass)
   AND attnum > 0 AND NOT attisdropped
 ORDER BY attnum;
DROP FOREIGN TABLE app.s;

--
-- Privileges: the creating user must be able to read the stream and every
-- table; the rows table belongs to the view's owner and follows it.
--
CREATE FOREIGN TABLE clicks (user_id int, url text, amount numeric, ts timestamptz)
    SERVER streamproc;
CREATE ROLE sp_view_owner;
CREATE ROLE sp_view_other;
CREATE SCHEMA owned AUTHORIZATION sp_view_owner;
SET ROLE sp_view_owner;
CREATE VIEW owned.v WITH (continuous) AS SELECT count(*) FROM clicks;
RESET ROLE;
GRANT SELECT ON clicks TO sp_view_owner;
SET ROLE sp_view_owner;
CREATE VIEW owned.v WITH (continuous) AS
    SELECT u.country, count(*) FROM clicks c JOIN users u ON u.id = c.user_id GROUP BY 1;
RESET ROLE;
GRANT SELECT (id) ON users TO sp_view_owner;
SET ROLE sp_view_owner;
CREATE VIEW owned.v WITH (continuous) AS
    SELECT u.country, count(*) FROM clicks c JOIN users u ON u.id = c.user_id GROUP BY 1;
RESET ROLE;
GRANT SELECT ON users TO sp_view_owner;
SET ROLE sp_view_owner;
CREATE VIEW owned.v WITH (continuous) AS
    SELECT u.country, count(*) FROM clicks c JOIN users u ON u.id = c.user_id GROUP BY 1;
CREATE VIEW owned.a WITH (continuous) AS SELECT user_id, url FROM clicks WHERE amount > 1;
RESET ROLE;
SELECT regexp_replace(c.relname, '\d+', '<oid>') AS relname, c.relowner::regrole
  FROM streamproc.views v JOIN pg_class c ON c.oid IN (v.view, v.rows_table)
 ORDER BY c.relname ~ '^rows_', 1;
ALTER VIEW owned.a OWNER TO sp_view_other;
SELECT c.relowner::regrole FROM streamproc.views v JOIN pg_class c ON c.oid = v.rows_table;
DROP SCHEMA owned CASCADE;
REVOKE ALL ON users FROM sp_view_owner;
REVOKE ALL ON clicks FROM sp_view_owner;
DROP ROLE sp_view_owner, sp_view_other;

--
-- DROP EXTENSION: refused while continuous views exist, CASCADE drops them.
--
CREATE VIEW v WITH (continuous) AS SELECT count(*) FROM clicks;
\set VERBOSITY terse
DROP EXTENSION streamproc;
DROP EXTENSION streamproc CASCADE;
\set VERBOSITY default
SELECT count(*) FROM pg_class WHERE relname IN ('v', 'clicks');
CREATE EXTENSION streamproc;
SELECT count(*) FROM streamproc.views;
DROP TABLE users, clicks_oracle;
DROP FUNCTION masked(text);
DROP FUNCTION run_batch(regclass, pg_snapshot, pg_snapshot, text);
DROP VIEW app.ordinary;
DROP SCHEMA app, app2;
