--
-- Change logs of tumbling windows with emit = 'updates' (src/changes.c):
-- every change of a window's group is logged (old and new), and a window
-- that the view's retention drops leaves the log (new NULL, a tombstone
-- for Kafka sinks).  Folded by key, the log equals the view; views over
-- the windows (retract.c) equal their batch query over the view's rows.
--
SET timezone = 'UTC';
CREATE FOREIGN TABLE cw_events (ts timestamptz, url text, ms int)
    SERVER streamproc OPTIONS (event_time 'ts');
CREATE VIEW cw_minutes WITH (continuous, allowed_lateness = '1 minute', retention = '10 minutes') AS
    SELECT w.window_start, w.window_end, url, count(*) AS n, sum(ms) AS total
      FROM cw_events, streamproc.tumble(ts, interval '1 minute') AS w GROUP BY 1, 2, 3;

-- Events before the log exists: the log starts with the view's rows.
INSERT INTO cw_events
    SELECT '2026-01-01'::timestamptz + g * interval '1 second', '/p/' || (g % 3), g % 100
      FROM generate_series(1, 300) g;
SELECT streamproc.sync();
SELECT streamproc.create_change_log('cw_minutes');
SELECT count(*) AS changes, bool_and(old IS NULL) AS all_new FROM streamproc.changes('cw_minutes');

-- Views over the windows: a rollup per hour and one per url.
CREATE VIEW cw_hours WITH (continuous) AS
    SELECT date_trunc('hour', window_start) AS hour, count(*) AS windows, sum(n) AS n, sum(total) AS total
      FROM cw_minutes GROUP BY 1;
CREATE VIEW cw_per_url WITH (continuous) AS
    SELECT url, count(*) AS windows, sum(n) AS n FROM cw_minutes GROUP BY 1;

CREATE FUNCTION cw_check() RETURNS TABLE (what text, view_only bigint, other_only bigint)
LANGUAGE plpgsql AS $$
DECLARE
    folded text := 'SELECT (pg_catalog.jsonb_populate_record(NULL::cw_minutes, new)).* FROM'
                   ' (SELECT DISTINCT ON (key) key, new FROM streamproc.changes(''cw_minutes'')'
                   '   ORDER BY key, position DESC) f WHERE new IS NOT NULL';
    pairs text[][] := ARRAY[
        ARRAY['log folded', 'SELECT * FROM cw_minutes', folded],
        ARRAY['cw_hours', 'SELECT * FROM cw_hours',
              'SELECT date_trunc(''hour'', window_start), count(*), sum(n), sum(total) FROM cw_minutes GROUP BY 1'],
        ARRAY['cw_per_url', 'SELECT * FROM cw_per_url',
              'SELECT url, count(*), sum(n) FROM cw_minutes GROUP BY 1']];
    a bigint;
    b bigint;
BEGIN
    FOR i IN 1 .. array_length(pairs, 1) LOOP
        EXECUTE format('SELECT count(*) FROM ((%s) EXCEPT ALL (%s)) x', pairs[i][2], pairs[i][3]) INTO a;
        EXECUTE format('SELECT count(*) FROM ((%s) EXCEPT ALL (%s)) x', pairs[i][3], pairs[i][2]) INTO b;
        what := pairs[i][1]; view_only := a; other_only := b;
        RETURN NEXT;
    END LOOP;
END
$$;

SELECT streamproc.sync();
SELECT * FROM cw_check();

-- Events into the open window and a new one: their groups change.
INSERT INTO cw_events
    SELECT '2026-01-01 00:04:00+00'::timestamptz + g * interval '1 second', '/p/' || (g % 4), 1
      FROM generate_series(1, 90) g;
SELECT streamproc.sync();
SELECT * FROM cw_check();
-- Each change's old row is the row its group's change before it logged.
SELECT bool_and(old IS NOT DISTINCT FROM prev) AS follows,
       count(*) FILTER (WHERE old IS NOT NULL AND new IS NOT NULL) > 0 AS updated
  FROM (SELECT position, old, new, lag(new) OVER (PARTITION BY key ORDER BY position) AS prev
          FROM streamproc.changes('cw_minutes')) x;

-- Twenty minutes later: the retention drops the first windows, which
-- leave the log (new NULL) and the views over them.
INSERT INTO cw_events VALUES ('2026-01-01 00:25:00+00', '/p/late', 5), ('2026-01-01 00:25:30+00', '/p/late', 6);
SELECT streamproc.sync();
SELECT min(window_start) AS first_kept, count(*) AS groups FROM cw_minutes;
SELECT count(*) AS dropped, bool_and(old IS NOT NULL) AS with_old,
       max((old->>'window_end')::timestamptz) AS last_dropped_end
  FROM streamproc.changes('cw_minutes') WHERE new IS NULL;
SELECT * FROM cw_check();
SELECT * FROM cw_hours;
SELECT count(*) = max(position) AND max(position) = streamproc.changes_position('cw_minutes') AS numbered
  FROM streamproc.changes('cw_minutes');

-- Hopping windows with emit = 'updates' keep no log and feed no view yet.
\set VERBOSITY default
CREATE VIEW cw_hops WITH (continuous) AS
    SELECT w.window_start, count(*) FROM cw_events, streamproc.hop(ts, interval '1 minute', interval '3 minutes') AS w GROUP BY 1;
SELECT streamproc.create_change_log('cw_hops');
CREATE VIEW cw_bad WITH (continuous) AS SELECT sum(count) FROM cw_hops;
\set VERBOSITY terse

SELECT streamproc.drop_change_log('cw_minutes');
DROP VIEW cw_hours, cw_per_url;
SELECT streamproc.drop_change_log('cw_minutes');
DROP VIEW cw_minutes, cw_hops;
DROP FUNCTION cw_check();
DROP FOREIGN TABLE cw_events;
