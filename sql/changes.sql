--
-- Change logs (src/changes.c): the changes of append views and of final
-- windows, numbered without gaps, read after a position; each log checked
-- against its oracle (the view's rows, and the batch query over the events
-- inserted after a position).  What is refused, retention, dropping.
--
SET timezone = 'UTC';
CREATE FOREIGN TABLE chg_events (ts timestamptz, user_id int, url text, ms int)
    SERVER streamproc OPTIONS (event_time 'ts');
CREATE TABLE chg_oracle (ts timestamptz, user_id int, url text, ms int);

CREATE VIEW chg_slow WITH (continuous) AS
    SELECT ts, user_id, url, ms * 2 AS ms2 FROM chg_events WHERE ms > 100;
CREATE VIEW chg_minutes WITH (continuous, emit = 'final', allowed_lateness = '30 seconds') AS
    SELECT w.window_start, url, count(*) AS n, sum(ms) AS total
      FROM chg_events, streamproc.tumble(ts, interval '1 minute') AS w GROUP BY 1, 2;
CREATE VIEW chg_hops WITH (continuous, emit = 'final') AS
    SELECT w.window_start, count(*) AS n
      FROM chg_events, streamproc.hop(ts, interval '1 minute', interval '3 minutes') AS w GROUP BY 1;

-- Events before the logs exist: a log starts with the view's rows.
INSERT INTO chg_events
    SELECT '2026-01-01'::timestamptz + g * interval '1 second', g % 10, '/p/' || (g % 7), g % 500
      FROM generate_series(1, 1000) g;
INSERT INTO chg_oracle
    SELECT '2026-01-01'::timestamptz + g * interval '1 second', g % 10, '/p/' || (g % 7), g % 500
      FROM generate_series(1, 1000) g;
SELECT streamproc.sync();

SELECT streamproc.create_change_log('chg_slow', retention => '1 day');
SELECT streamproc.create_change_log('chg_minutes');
SELECT streamproc.create_change_log('chg_hops');
SELECT view, retention, last_position > 0 AS has_rows, trimmed_to FROM streamproc.change_logs ORDER BY 1::text;

-- More events, in several transactions, out of order, and one rolled back.
INSERT INTO chg_events
    SELECT '2026-01-01'::timestamptz + g * interval '1 second', g % 10, '/p/' || (g % 7), g % 500
      FROM generate_series(1001, 2000) g ORDER BY g DESC;
INSERT INTO chg_oracle
    SELECT '2026-01-01'::timestamptz + g * interval '1 second', g % 10, '/p/' || (g % 7), g % 500
      FROM generate_series(1001, 2000) g;
BEGIN;
INSERT INTO chg_events VALUES ('2026-01-01 00:20', 1, '/rolled/back', 400);
ROLLBACK;
COPY chg_events FROM STDIN;
2026-01-01 00:33:21+00	3	/p/copy	300
2026-01-01 00:33:22+00	4	/p/copy	50
\.
INSERT INTO chg_oracle VALUES ('2026-01-01 00:33:21+00', 3, '/p/copy', 300), ('2026-01-01 00:33:22+00', 4, '/p/copy', 50);
SELECT streamproc.sync();

-- Each log holds each row of its view once, numbered 1..n.
CREATE FUNCTION chg_check(v regclass, OUT view_only bigint, OUT log_only bigint, OUT numbered boolean)
LANGUAGE plpgsql AS $$
DECLARE
    c text := format('SELECT (pg_catalog.jsonb_populate_record(NULL::%s, new)).* FROM streamproc.changes(%L)', v, v);
BEGIN
    EXECUTE format('SELECT count(*) FROM ((SELECT * FROM %s) EXCEPT ALL (%s)) x', v, c) INTO view_only;
    EXECUTE format('SELECT count(*) FROM ((%s) EXCEPT ALL (SELECT * FROM %s)) x', c, v) INTO log_only;
    SELECT count(*) = max(position) AND min(position) = 1 AND max(position) = streamproc.changes_position(v)
           AND bool_and(old IS NULL)
      INTO numbered FROM streamproc.changes(v);
END
$$;
SELECT 'chg_slow' AS v, * FROM chg_check('chg_slow')
UNION ALL SELECT 'chg_minutes', * FROM chg_check('chg_minutes')
UNION ALL SELECT 'chg_hops', * FROM chg_check('chg_hops');
-- ... and the views equal their batch queries (the final windows: those
-- that closed; the watermark is 00:33:22, minus the lateness 30 s).
SELECT count(*) AS slow_rows,
       (SELECT count(*) FROM ((SELECT * FROM chg_slow)
            EXCEPT ALL (SELECT ts, user_id, url, ms * 2 FROM chg_oracle WHERE ms > 100)) x) AS diff
  FROM chg_slow;
SELECT count(*) AS windows,
       (SELECT count(*) FROM ((SELECT * FROM chg_minutes) EXCEPT ALL
            (SELECT date_bin('1 minute', ts, '2000-01-01'), url, count(*), sum(ms) FROM chg_oracle
              WHERE date_bin('1 minute', ts, '2000-01-01') + interval '1 minute' <= '2026-01-01 00:32:52+00'
              GROUP BY 1, 2)) x) AS diff
  FROM chg_minutes;
SELECT max(window_start) FROM chg_hops;

-- Following: the changes after a remembered position are the rows of the
-- events inserted since.
SELECT streamproc.changes_position('chg_slow') AS slow_pos,
       streamproc.changes_position('chg_minutes') AS minutes_pos \gset
INSERT INTO chg_events
    SELECT '2026-01-01 01:00'::timestamptz + g * interval '1 second', 100 + g, '/new/' || (g % 3), 150 + g
      FROM generate_series(1, 50) g;
INSERT INTO chg_oracle
    SELECT '2026-01-01 01:00'::timestamptz + g * interval '1 second', 100 + g, '/new/' || (g % 3), 150 + g
      FROM generate_series(1, 50) g;
SELECT streamproc.sync();
SELECT count(*) AS new_changes,
       (SELECT count(*) FROM ((SELECT (jsonb_populate_record(NULL::chg_slow, new)).* FROM streamproc.changes('chg_slow', after => :slow_pos))
            EXCEPT ALL (SELECT '2026-01-01 01:00'::timestamptz + g * interval '1 second', 100 + g, '/new/' || (g % 3), (150 + g) * 2
                          FROM generate_series(1, 50) g)) x) AS diff,
       min(position) = :slow_pos + 1 AS contiguous
  FROM streamproc.changes('chg_slow', after => :slow_pos);
-- The windows that closed since (the watermark went from 00:33:22 to
-- 01:00:50): those that end in (00:32:52, 01:00:20], in order.
SELECT count(*) AS closed_since,
       (SELECT count(*) FROM ((SELECT (jsonb_populate_record(NULL::chg_minutes, new)).* FROM streamproc.changes('chg_minutes', after => :minutes_pos))
            EXCEPT ALL (SELECT date_bin('1 minute', ts, '2000-01-01'), url, count(*), sum(ms) FROM chg_oracle
                         WHERE date_bin('1 minute', ts, '2000-01-01') + interval '1 minute' > '2026-01-01 00:32:52+00'
                           AND date_bin('1 minute', ts, '2000-01-01') + interval '1 minute' <= '2026-01-01 01:00:20+00'
                         GROUP BY 1, 2)) x) AS diff,
       min(position) = :minutes_pos + 1 AS contiguous,
       array_agg(DISTINCT new->>'window_start') AS windows
  FROM streamproc.changes('chg_minutes', after => :minutes_pos);
SELECT bool_and(a.new->>'window_start' <= b.new->>'window_start') AS in_window_order
  FROM streamproc.changes('chg_minutes') a JOIN streamproc.changes('chg_minutes') b ON b.position = a.position + 1;

-- Reading in pages gives the same changes.
SELECT (SELECT array_agg(position ORDER BY position) FROM streamproc.changes('chg_slow', after => 0))
     = (SELECT array_agg(position ORDER BY position) FROM
          (SELECT * FROM streamproc.changes('chg_slow', after => 0, max_changes => 400)
           UNION ALL SELECT * FROM streamproc.changes('chg_slow', after => 400, max_changes => 400)
           UNION ALL SELECT * FROM streamproc.changes('chg_slow', after => 800)) p) AS pages_equal;
SELECT count(*) FROM streamproc.changes('chg_slow', after => 3, max_changes => 0);

-- The channel to LISTEN on (the TAP test t/040 listens).
SELECT streamproc.changes_channel('chg_slow') = 'streamproc_changes_' || 'chg_slow'::regclass::oid AS channel;

-- Views whose groups change: a change per changed group, with its key,
-- the row logged before (old) and the row now (new); a group the view
-- stops showing (HAVING) has new null, one it starts showing old null.
CREATE VIEW chg_per_user WITH (continuous) AS
    SELECT user_id, count(*) AS n, sum(ms) AS total, avg(ms) AS mean, max(url) AS top
      FROM chg_events GROUP BY user_id;
CREATE VIEW chg_small WITH (continuous) AS
    SELECT user_id % 3 AS bucket, url, count(*) AS n FROM chg_events
     GROUP BY 1, 2 HAVING max(ms) < 498;
CREATE VIEW chg_count WITH (continuous) AS SELECT count(*) AS n, sum(ms) AS total FROM chg_events;
SELECT streamproc.create_change_log('chg_per_user');
SELECT streamproc.create_change_log('chg_small');
SELECT streamproc.create_change_log('chg_count');
SELECT streamproc.changes_position('chg_per_user') AS per_user_pos \gset
INSERT INTO chg_events VALUES
    ('2026-01-01 01:10', 1, '/p/1', 10), ('2026-01-01 01:10', 1, '/zz', 20),
    ('2026-01-01 01:10', 500, '/new', 30), ('2026-01-01 01:10', NULL, '/p/2', 40),
    ('2026-01-01 01:10', 2, '/p/3', 100);
SELECT streamproc.sync();
INSERT INTO chg_events VALUES ('2026-01-01 01:11', NULL, NULL, 50), ('2026-01-01 01:11', 1, '/p/1', 60),
    ('2026-01-01 01:11', 2, '/p/3', 499);
SELECT streamproc.sync();
-- The changes after a position, as a client sees them (by key: the order
-- of the groups one checkpoint changed depends on which worker read what).
SELECT key, old, new FROM streamproc.changes('chg_per_user', after => :per_user_pos)
 ORDER BY key::text, position;
SELECT key, old->'n' AS old_n, new->'n' AS new_n FROM streamproc.changes('chg_count') ORDER BY position;
-- chg_small: /p/3 of bucket 2 came, then left the view (max(ms) reached 499).
SELECT key, old IS NOT NULL AS had, new IS NOT NULL AS has FROM streamproc.changes('chg_small')
 WHERE key = '[2, "/p/3"]' ORDER BY position;
-- Each log, folded (the last change of each key), equals its view, and
-- each change's old row is the new row of the key's change before it.
CREATE FUNCTION chg_fold(v regclass, OUT view_only bigint, OUT log_only bigint, OUT chained boolean)
LANGUAGE plpgsql AS $$
DECLARE
    c text := format('SELECT (pg_catalog.jsonb_populate_record(NULL::%s, new)).* FROM'
                     ' (SELECT DISTINCT ON (key) key, new FROM streamproc.changes(%L) ORDER BY key, position DESC) f'
                     ' WHERE new IS NOT NULL', v, v);
BEGIN
    EXECUTE format('SELECT count(*) FROM ((SELECT * FROM %s) EXCEPT ALL (%s)) x', v, c) INTO view_only;
    EXECUTE format('SELECT count(*) FROM ((%s) EXCEPT ALL (SELECT * FROM %s)) x', c, v) INTO log_only;
    SELECT bool_and(old IS NOT DISTINCT FROM prev)
      INTO chained
      FROM (SELECT old, lag(new) OVER (PARTITION BY key ORDER BY position) AS prev FROM streamproc.changes(v)) x;
END
$$;
SELECT 'chg_per_user' AS v, * FROM chg_fold('chg_per_user')
UNION ALL SELECT 'chg_small', * FROM chg_fold('chg_small')
UNION ALL SELECT 'chg_count', * FROM chg_fold('chg_count');
-- ... after many more events, in several transactions.
INSERT INTO chg_events
    SELECT '2026-01-01 02:00'::timestamptz + g * interval '1 second', g % 37, '/q/' || (g % 11), g % 500
      FROM generate_series(1, 3000) g;
INSERT INTO chg_events
    SELECT '2026-01-01 03:00'::timestamptz + g * interval '1 second', g % 53, '/q/' || (g % 13), g % 497
      FROM generate_series(1, 3000) g;
SELECT streamproc.sync();
SELECT 'chg_per_user' AS v, * FROM chg_fold('chg_per_user')
UNION ALL SELECT 'chg_small', * FROM chg_fold('chg_small')
UNION ALL SELECT 'chg_count', * FROM chg_fold('chg_count');
SELECT count(*) = max(position) AS numbered FROM streamproc.changes('chg_per_user');
SELECT streamproc.drop_change_log('chg_small');
SELECT count(*) FROM streamproc.change_rows WHERE view = 'chg_small'::regclass;
DROP VIEW chg_per_user, chg_small, chg_count;
DROP FUNCTION chg_fold(regclass);

-- A group whose row fails (here a division by zero while it has one
-- event) is left out of the log until its row can be computed; the other
-- groups are logged and the view's checkpoints go on.
CREATE VIEW chg_ratio WITH (continuous) AS
    SELECT user_id, 100 / (count(*) - 1) AS r FROM chg_events GROUP BY user_id;
SELECT streamproc.create_change_log('chg_ratio');
INSERT INTO chg_events VALUES ('2026-01-01 04:00', 1, '/r', 1), ('2026-01-01 04:00', 2, '/r', 1),
    ('2026-01-01 04:00', 2, '/r', 1);
SELECT streamproc.sync();
SELECT key, old, new FROM streamproc.changes('chg_ratio') ORDER BY key::text, position;
SELECT * FROM chg_ratio WHERE user_id = 1;
SELECT state FROM streamproc.stat_views WHERE view = 'chg_ratio'::regclass;
INSERT INTO chg_events VALUES ('2026-01-01 04:01', 1, '/r', 1), ('2026-01-01 04:01', 2, '/r', 1);
SELECT streamproc.sync();
SELECT key, old, new FROM streamproc.changes('chg_ratio') ORDER BY key::text, position;
DROP VIEW chg_ratio;

-- A group key of 100 kB: logged whole (change_rows finds it by a hash).
CREATE VIEW chg_long WITH (continuous) AS SELECT url, count(*) AS n FROM chg_events GROUP BY url;
SELECT streamproc.create_change_log('chg_long');
INSERT INTO chg_events VALUES ('2026-01-01 04:02', 1, repeat('x', 100000), 1);
SELECT streamproc.sync();
INSERT INTO chg_events VALUES ('2026-01-01 04:03', 1, repeat('x', 100000), 1);
SELECT streamproc.sync();
SELECT length(key->>0) AS key_length, old->'n' AS old_n, new->'n' AS new_n
  FROM streamproc.changes('chg_long') WHERE length(key->>0) > 1000 ORDER BY position;
DROP VIEW chg_long;

-- Refused, with what to do.
CREATE VIEW chg_per_user WITH (continuous) AS SELECT user_id, count(*) FROM chg_events GROUP BY 1;
CREATE VIEW chg_updates WITH (continuous) AS
    SELECT w.window_start, count(*) FROM chg_events, streamproc.hop(ts, interval '1 minute', interval '2 minutes') AS w GROUP BY 1;
CREATE VIEW chg_sessions WITH (continuous, emit = 'final') AS
    SELECT w.window_start, user_id, count(*) FROM chg_events, streamproc.session(ts, interval '1 minute') AS w GROUP BY 1, 2;
CREATE VIEW chg_no_start WITH (continuous, emit = 'final') AS
    SELECT w.window_end, count(*) FROM chg_events, streamproc.tumble(ts, interval '1 minute') AS w GROUP BY 1;
SELECT streamproc.create_change_log('chg_updates');
SELECT streamproc.create_change_log('chg_sessions');
SELECT streamproc.create_change_log('chg_no_start');
SELECT streamproc.create_change_log('chg_oracle');
SELECT streamproc.create_change_log('chg_slow');
SELECT streamproc.create_change_log('chg_per_user', retention => '0 seconds');
SELECT * FROM streamproc.changes('chg_per_user');
SELECT streamproc.create_change_log('chg_per_user', retention => '-1 day');
SELECT * FROM streamproc.changes('chg_slow', after => 1000000);
SELECT * FROM streamproc.changes('chg_slow', after => -1);
SELECT * FROM streamproc.changes('chg_slow', after => NULL);
SELECT streamproc.alter_change_log('chg_per_user', '1 hour');
DROP VIEW chg_per_user, chg_updates, chg_sessions, chg_no_start;

-- Privileges: the owner creates a log; readers need SELECT on the view.
CREATE ROLE chg_reader;
SET ROLE chg_reader;
SELECT count(*) FROM streamproc.changes('chg_slow');
SELECT streamproc.drop_change_log('chg_slow');
RESET ROLE;
GRANT SELECT ON chg_slow TO chg_reader;
SET ROLE chg_reader;
SELECT count(*) > 0 AS reads FROM streamproc.changes('chg_slow');
SELECT count(*) FROM streamproc.changes;
RESET ROLE;
REVOKE SELECT ON chg_slow FROM chg_reader;
DROP ROLE chg_reader;

-- Retention: changes older than it go, and a reader behind them is told.
SELECT streamproc.alter_change_log('chg_slow', retention => '1 microsecond');
INSERT INTO chg_events VALUES ('2026-01-01 02:00', 7, '/late/reader', 200);
SELECT streamproc.sync();
SELECT trimmed_to = last_position AS all_trimmed FROM streamproc.change_logs WHERE view = 'chg_slow'::regclass;
SELECT * FROM streamproc.changes('chg_slow', after => :slow_pos);
SELECT count(*) FROM streamproc.changes('chg_slow', after => streamproc.changes_position('chg_slow'));
SELECT streamproc.alter_change_log('chg_slow', retention => '1 day');

-- Dropping a log: the view goes on, its changes are forgotten.
SELECT streamproc.drop_change_log('chg_slow');
SELECT streamproc.drop_change_log('chg_slow');
INSERT INTO chg_events VALUES ('2026-01-01 02:00:01', 7, '/after/drop', 300);
SELECT streamproc.sync();
SELECT count(*) FROM chg_slow WHERE url = '/after/drop';
SELECT count(*) FROM streamproc.changes WHERE view = 'chg_slow'::regclass;
-- ... and a new one starts with the view's rows.
SELECT streamproc.create_change_log('chg_slow');
SELECT count(*) = (SELECT count(*) FROM chg_slow) AS backfilled FROM streamproc.changes('chg_slow');

-- Dropping the view drops its log (the workers clean the rows up).
DROP VIEW chg_slow;
SELECT streamproc.sync();
SELECT count(*) FROM streamproc.change_logs WHERE view::text NOT IN ('chg_minutes', 'chg_hops');
DROP VIEW chg_minutes, chg_hops;
DROP FOREIGN TABLE chg_events;
DROP TABLE chg_oracle;
DROP FUNCTION chg_check(regclass);
