--
-- Continuous views over aggregating views (src/retract.c, src/feed.c): the
-- upstream's groups change, so each change reaches the view below as the
-- old row taken back and the new row added.  Each view is checked against
-- its batch oracle, the same query over the upstream view's current rows,
-- after rounds of events that change groups, add them and (through HAVING)
-- hide them; then what is refused, and what DROP and drop_change_log() do.
--
CREATE OR REPLACE FUNCTION retract_diff(view_sql text, batch_sql text, OUT view_only bigint, OUT batch_only bigint)
LANGUAGE plpgsql AS $$
BEGIN
    EXECUTE format('SELECT count(*) FROM ((%s) EXCEPT ALL (%s)) x', view_sql, batch_sql) INTO view_only;
    EXECUTE format('SELECT count(*) FROM ((%s) EXCEPT ALL (%s)) x', batch_sql, view_sql) INTO batch_only;
END
$$;

CREATE FOREIGN TABLE retract_events (user_id int, url text, ms int, big bigint, amount numeric)
    SERVER streamproc;
CREATE TABLE retract_users (user_id int PRIMARY KEY, country text);
INSERT INTO retract_users SELECT u, CASE WHEN u % 3 = 0 THEN 'fr' ELSE 'de' END FROM generate_series(0, 40) u;

-- Level 1: per user and url; a second view shows only the busy groups.
CREATE VIEW retract_per_user_url WITH (continuous) AS
    SELECT user_id, url, count(*) AS n, sum(ms) AS ms, sum(big) AS big, sum(amount) AS amount,
           max(ms) AS top
      FROM retract_events GROUP BY user_id, url;
CREATE VIEW retract_busy WITH (continuous) AS
    SELECT user_id, count(*) AS n, sum(ms) AS ms FROM retract_events GROUP BY user_id HAVING count(*) > 12;

-- Events before any view reads them: they reach the views below through
-- the change log that creating the first of them starts.
INSERT INTO retract_events
    SELECT g % 37, '/p/' || (g % 5), CASE WHEN g % 11 = 0 THEN NULL ELSE g % 500 END,
           g * 1000000000000, (g % 100) / 8.0
      FROM generate_series(1, 2000) g;
SELECT streamproc.sync();

-- Level 2 over retract_per_user_url: count, sum and avg (with NULLs and
-- FILTER), a HAVING, no GROUP BY, GROUP BY without aggregates, a join with
-- a table.
CREATE VIEW retract_per_url WITH (continuous) AS
    SELECT url, count(*) AS users, sum(n) AS n, sum(ms) AS ms, avg(ms) AS mean, count(ms) AS with_ms,
           sum(big) AS big, avg(n) AS mean_n, sum(amount) AS amount,
           count(*) FILTER (WHERE n > 10) AS busy, sum(top) FILTER (WHERE top > 400) AS tops
      FROM retract_per_user_url GROUP BY url;
CREATE VIEW retract_total WITH (continuous) AS
    SELECT count(*) AS groups, sum(n) AS n, avg(n) AS mean, sum(ms) AS ms FROM retract_per_user_url;
CREATE VIEW retract_bands WITH (continuous) AS
    SELECT n / 10 AS band FROM retract_per_user_url GROUP BY 1;
CREATE VIEW retract_per_country WITH (continuous) AS
    SELECT u.country, count(*) AS groups, sum(p.n) AS n
      FROM retract_per_user_url p JOIN retract_users u USING (user_id)
     WHERE p.url <> '/p/4' GROUP BY u.country HAVING sum(p.n) > 5;
-- Over the busy groups: a group hidden by the upstream's HAVING leaves.
CREATE VIEW retract_busy_bands WITH (continuous) AS
    SELECT n / 20 AS band, count(*) AS users, sum(n) AS n, sum(ms) AS ms FROM retract_busy GROUP BY 1;
-- Level 3: over level 2, whose groups change too.
CREATE VIEW retract_url_total WITH (continuous) AS
    SELECT count(*) AS urls, sum(users) AS users, sum(n) AS n FROM retract_per_url;

-- Creating a view over an aggregating view started its change log.
SELECT view, retention FROM streamproc.change_logs WHERE view::text LIKE 'retract\_%' ORDER BY 1::text;

CREATE VIEW retract_oracle_per_url AS
    SELECT url, count(*) AS users, sum(n) AS n, sum(ms) AS ms, avg(ms) AS mean, count(ms) AS with_ms,
           sum(big) AS big, avg(n) AS mean_n, sum(amount) AS amount,
           count(*) FILTER (WHERE n > 10) AS busy, sum(top) FILTER (WHERE top > 400) AS tops
      FROM retract_per_user_url GROUP BY url;

CREATE FUNCTION retract_check() RETURNS TABLE (view text, view_only bigint, batch_only bigint)
LANGUAGE sql AS $$
    SELECT 'per_url', * FROM retract_diff('SELECT * FROM retract_per_url', 'SELECT * FROM retract_oracle_per_url')
    UNION ALL
    SELECT 'total', * FROM retract_diff('SELECT * FROM retract_total',
        'SELECT count(*), sum(n), avg(n), sum(ms) FROM retract_per_user_url')
    UNION ALL
    SELECT 'bands', * FROM retract_diff('SELECT * FROM retract_bands',
        'SELECT n / 10 FROM retract_per_user_url GROUP BY 1')
    UNION ALL
    SELECT 'per_country', * FROM retract_diff('SELECT * FROM retract_per_country',
        $q$SELECT u.country, count(*), sum(p.n) FROM retract_per_user_url p JOIN retract_users u USING (user_id)
           WHERE p.url <> '/p/4' GROUP BY u.country HAVING sum(p.n) > 5$q$)
    UNION ALL
    SELECT 'busy_bands', * FROM retract_diff('SELECT * FROM retract_busy_bands',
        'SELECT n / 20, count(*), sum(n), sum(ms) FROM retract_busy GROUP BY 1')
    UNION ALL
    SELECT 'url_total', * FROM retract_diff('SELECT * FROM retract_url_total',
        'SELECT count(*), sum(users), sum(n) FROM retract_oracle_per_url')
$$;

SELECT streamproc.sync();
SELECT * FROM retract_check();
SELECT * FROM retract_total;
SELECT count(*) AS busy_users FROM retract_busy;

-- Rounds of events: groups change, new ones appear, busy ones pass the
-- HAVING; each sync() carries it all down the chain.
INSERT INTO retract_events
    SELECT g % 41, '/p/' || (g % 7), g % 300, -g, 1.25
      FROM generate_series(1, 1500) g;
SELECT streamproc.sync();
SELECT * FROM retract_check();
COPY retract_events FROM STDIN;
40	/p/9	7	\N	0.5
40	/p/9	\N	5	\N
0	/p/0	499	1	100
\.
SELECT streamproc.sync();
SELECT * FROM retract_check();
SELECT * FROM retract_per_url WHERE url = '/p/9';
SELECT * FROM retract_url_total;

-- A view created over an upstream whose change log exists starts from the
-- rows the log last logged.
CREATE VIEW retract_late WITH (continuous) AS
    SELECT url, count(*) AS users, sum(n) AS n FROM retract_per_user_url GROUP BY url;
INSERT INTO retract_events SELECT g % 3, '/p/late', g, g, g FROM generate_series(1, 30) g;
SELECT streamproc.sync();
SELECT * FROM retract_diff('SELECT * FROM retract_late',
    'SELECT url, count(*), sum(n) FROM retract_per_user_url GROUP BY url');

-- The feed of changes carries "$sign"; the view's definition is the user's.
SELECT o.option_name, o.option_value LIKE 'streamproc.groups\_%' AS groups_table
  FROM streamproc.views v JOIN pg_foreign_table f ON f.ftrelid = v.stream,
       pg_options_to_table(f.ftoptions) o
 WHERE v.view = 'retract_per_url'::regclass;
SELECT attname, format_type(atttypid, atttypmod) FROM pg_attribute
 WHERE attrelid = (SELECT stream FROM streamproc.views WHERE view = 'retract_total'::regclass) AND attnum > 0
 ORDER BY attnum;
SELECT definition FROM streamproc.views WHERE view = 'retract_total'::regclass;
-- Nobody but the trigger writes a feed.
DO $$
DECLARE feed regclass := (SELECT stream FROM streamproc.views WHERE view = 'retract_total'::regclass);
BEGIN
    EXECUTE format('INSERT INTO %s VALUES (1, %L, 1, 1, 1, 1, 1, -1)', feed, '/p/x');
EXCEPTION WHEN OTHERS THEN
    RAISE NOTICE '%', regexp_replace(SQLERRM, '[0-9]+', 'N', 'g');
END
$$;

-- Groups whose every row left are dropped, not only hidden: each user's
-- events move the user from one count to the next, emptying the groups of
-- the counts every user passed.  Thousands of users, so that the feed's rows
-- span all its shards: a user's row and its retraction still meet in one
-- worker's slot (feed.c routes them by the upstream group), whose group is
-- then empty and removed; stat_views counts the groups still held.
CREATE FOREIGN TABLE retract_moves (user_id int, ms int) SERVER streamproc;
CREATE VIEW retract_user_n WITH (continuous) AS
    SELECT user_id, count(*) AS n, sum(ms) AS ms FROM retract_moves GROUP BY user_id;
CREATE VIEW retract_n_users WITH (continuous) AS
    SELECT n, count(*) AS users, sum(ms) AS ms FROM retract_user_n GROUP BY n;
-- And over a view without GROUP BY (its one group's key is empty): the
-- thousands moves its row to the next band.
CREATE VIEW retract_all_n WITH (continuous) AS
    SELECT count(*) AS n, sum(ms) AS ms FROM retract_moves;
CREATE VIEW retract_all_bands WITH (continuous) AS
    SELECT n / 1000 AS thousands, count(*) AS rows, sum(ms) AS ms FROM retract_all_n GROUP BY 1;
INSERT INTO retract_moves SELECT u, u FROM generate_series(1, 3000) u;
SELECT streamproc.sync();
INSERT INTO retract_moves SELECT u, 1 FROM generate_series(1, 3000) u;
SELECT streamproc.sync();
INSERT INTO retract_moves SELECT u, 2 FROM generate_series(1, 3000, 2) u;
SELECT streamproc.sync();
SELECT * FROM retract_diff('SELECT * FROM retract_n_users',
    'SELECT n, count(*), sum(ms) FROM retract_user_n GROUP BY n');
SELECT * FROM retract_n_users ORDER BY n;
SELECT groups FROM streamproc.stat_views WHERE view = 'retract_n_users'::regclass;
SELECT * FROM retract_all_bands;
SELECT groups FROM streamproc.stat_views WHERE view = 'retract_all_bands'::regclass;
-- A user into a new group, another into a group that has users.
INSERT INTO retract_moves VALUES (7, 5), (8, 5);
SELECT streamproc.sync();
SELECT * FROM retract_diff('SELECT * FROM retract_n_users',
    'SELECT n, count(*), sum(ms) FROM retract_user_n GROUP BY n');
SELECT groups FROM streamproc.stat_views WHERE view = 'retract_n_users'::regclass;
DROP VIEW retract_user_n CASCADE;
DROP VIEW retract_all_n CASCADE;
DROP FOREIGN TABLE retract_moves;

-- Refused, each with its reason.
\set VERBOSITY default
CREATE VIEW retract_bad WITH (continuous) AS SELECT url, max(n) FROM retract_per_user_url GROUP BY url;
CREATE VIEW retract_bad WITH (continuous) AS SELECT url, sum(n::float8) FROM retract_per_user_url GROUP BY url;
CREATE VIEW retract_bad WITH (continuous) AS SELECT url, avg(amount) FROM retract_per_user_url GROUP BY url;
CREATE VIEW retract_bad WITH (continuous) AS SELECT url, count(DISTINCT user_id) FROM retract_per_user_url GROUP BY url;
CREATE VIEW retract_bad WITH (continuous) AS SELECT url, string_agg(url, ',' ORDER BY url) FROM retract_per_user_url GROUP BY url;
CREATE VIEW retract_bad WITH (continuous) AS SELECT url, n FROM retract_per_user_url WHERE n > 3;
CREATE VIEW retract_bad WITH (continuous, allowed_lateness = '1 day') AS
    SELECT w.window_start, count(*) FROM retract_per_user_url p, retract_users u,
           streamproc.tumble(now(), interval '1 minute') AS w WHERE u.user_id = p.user_id GROUP BY 1;
SELECT streamproc.drop_change_log('retract_per_user_url');
DROP VIEW retract_per_user_url;
-- An upstream column named like the feed's sign column.
CREATE VIEW retract_signed WITH (continuous) AS
    SELECT user_id, count(*) AS "$sign" FROM retract_events GROUP BY user_id;
CREATE VIEW retract_bad WITH (continuous) AS SELECT sum("$sign") FROM retract_signed;
DROP VIEW retract_signed;
\set VERBOSITY terse

-- DROP of a view below lets the log go once no view reads it.
DROP VIEW retract_busy_bands;
SELECT streamproc.drop_change_log('retract_busy');
SELECT streamproc.changes_position('retract_busy') IS NULL AS no_log;
DROP VIEW retract_per_user_url CASCADE;
SELECT string_agg(view::text, ', ') AS views FROM streamproc.views WHERE view::text LIKE 'retract\_%';
DROP VIEW retract_busy;
DROP FUNCTION retract_check();
DROP FUNCTION retract_diff(text, text);
DROP FOREIGN TABLE retract_events;
DROP TABLE retract_users;
