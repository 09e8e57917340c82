--
-- Event-time windows: the window functions over plain values and tables,
-- the checks of CREATE VIEW, and windowed continuous views (tumble, hop,
-- session) against their batch oracle: watermarks, closing, late events,
-- emit = 'final', allowed_lateness, retention, NULL event times, DROP.
--
-- Deterministic: one INSERT (one transaction, so one micro-batch) per
-- streamproc.sync(), which processes it and then checkpoints.  So each
-- batch is judged late or not against the watermark W0 of the checkpoint
-- after the previous batch (W0 = greatest event time so far - the stream's
-- watermark_delay), and closes windows at its own watermark.
--
SET timezone = 'UTC';
SET datestyle = 'ISO, YMD';
SET intervalstyle = 'postgres';
CREATE SCHEMA window_test;
SET search_path = window_test, public;

--
-- 1. The window functions over plain values.
--
-- tumble: the window of the given size that contains ts, aligned like
-- date_bin() on the origin (default: the Unix epoch).  Start inclusive,
-- end exclusive.
SELECT * FROM streamproc.tumble('2026-03-01 10:17:42+00', interval '5 minutes');
SELECT * FROM streamproc.tumble('2026-03-01 10:15:00+00', interval '5 minutes');
SELECT * FROM streamproc.tumble('2026-03-01 10:17:42+00', interval '5 minutes', '2026-03-01 00:01:00+00');
SELECT * FROM streamproc.tumble('2026-03-01 10:17:42+00', interval '1 hour', '2030-01-01 00:30:00+00');
SELECT * FROM streamproc.tumble('1969-12-31 23:59:59+00', interval '1 hour');
-- A day counts 24 hours; sizes below a second work.
SELECT * FROM streamproc.tumble('2026-03-01 10:17:42+00', interval '1 day 2 hours');
SELECT * FROM streamproc.tumble('2026-03-01 10:17:42.6+00', interval '0.25 seconds');
-- Agreement with date_bin() over 200 times and three sizes and origins.
SELECT count(*) AS checked,
       count(*) FILTER (WHERE w.window_start <> date_bin(s.size, g.ts, s.origin)
                           OR w.window_end <> w.window_start + s.size) AS mismatches
  FROM generate_series(timestamptz '2026-03-01 00:00+00', '2026-03-02 00:00+00',
                       interval '7 minutes 13 seconds') AS g(ts),
       (VALUES (interval '1 minute', timestamptz '1970-01-01 00:00+00'),
               (interval '17 minutes', timestamptz '2026-02-28 23:59:59.5+00'),
               (interval '1 day', timestamptz '2030-01-01 06:00+00')) AS s(size, origin),
       streamproc.tumble(g.ts, s.size, s.origin) AS w;

-- hop(ts, slide, size): every window of size starting at origin + k * slide
-- that contains ts (size / slide of them), earliest first.
SELECT * FROM streamproc.hop('2026-03-01 10:17:42+00', interval '20 seconds', interval '1 minute');
SELECT * FROM streamproc.hop('2026-03-01 10:17:40+00', interval '20 seconds', interval '1 minute');
SELECT * FROM streamproc.hop('2026-03-01 10:17:40+00', interval '20 seconds', interval '1 minute',
                             '2026-03-01 00:00:05+00');
-- slide = size: the tumbling window.
SELECT * FROM streamproc.hop('2026-03-01 10:17:42+00', interval '1 minute', interval '1 minute');
-- Over 200 times and three shapes: the n-th window (in the order returned)
-- starts at date_bin(slide, ts, origin) - size + n * slide, and there are
-- size / slide of them: 200 * (3 + 60 + 1) = 12800 windows.
SELECT count(DISTINCT g.ts) AS times, count(*) AS windows,
       count(*) FILTER (WHERE w.window_start <> date_bin(s.slide, g.ts, s.origin) - s.size + w.n * s.slide
                           OR w.window_end <> w.window_start + s.size
                           OR NOT (w.window_start <= g.ts AND g.ts < w.window_end)
                           OR w.n > extract(epoch FROM s.size) / extract(epoch FROM s.slide)) AS mismatches
  FROM generate_series(timestamptz '2026-03-01 00:00+00', '2026-03-02 00:00+00',
                       interval '7 minutes 13 seconds') AS g(ts),
       (VALUES (interval '20 seconds', interval '1 minute', timestamptz '1970-01-01 00:00+00'),
               (interval '1 minute', interval '1 hour', timestamptz '2026-01-01 00:00:07+00'),
               (interval '5 minutes', interval '5 minutes', timestamptz '1970-01-01 00:00+00')) AS s(slide, size, origin),
       ROWS FROM (streamproc.hop(g.ts, s.slide, s.size, s.origin)) WITH ORDINALITY AS w(window_start, window_end, n);

-- session(ts, gap): one event's session [ts, ts + gap).
SELECT * FROM streamproc.session('2026-03-01 10:17:42+00', interval '30 seconds');

-- STRICT: NULL in, NULL out (hop, a set-returning function: no rows).
SELECT streamproc.tumble(NULL, interval '1 minute') IS NULL AS tumble_null_ts,
       streamproc.tumble('2026-03-01', NULL) IS NULL AS tumble_null_size,
       streamproc.tumble('2026-03-01', interval '1 minute', NULL) IS NULL AS tumble_null_origin,
       streamproc.session(NULL, interval '1 minute') IS NULL AS session_null_ts,
       streamproc.session('2026-03-01', NULL) IS NULL AS session_null_gap;
SELECT * FROM streamproc.tumble(NULL, interval '1 minute');
SELECT count(*) AS hop_rows FROM streamproc.hop(NULL, interval '1 minute', interval '2 minutes');
SELECT count(*) AS hop_rows FROM streamproc.hop('2026-03-01', interval '1 minute', NULL);

-- Errors: sizes must be positive and without months; hop sizes a multiple
-- of the slide; event times finite.
SELECT * FROM streamproc.tumble('2026-03-01', interval '0');
SELECT * FROM streamproc.tumble('2026-03-01', interval '-1 minute');
SELECT * FROM streamproc.tumble('2026-03-01', interval '1 month');
SELECT * FROM streamproc.tumble('2026-03-01', interval '1 year');
SELECT * FROM streamproc.hop('2026-03-01', interval '0', interval '1 minute');
SELECT * FROM streamproc.hop('2026-03-01', interval '1 minute', interval '-2 minutes');
SELECT * FROM streamproc.hop('2026-03-01', interval '1 month', interval '2 months');
SELECT * FROM streamproc.hop('2026-03-01', interval '25 seconds', interval '1 minute');
SELECT * FROM streamproc.hop('2026-03-01', interval '2 minutes', interval '1 minute');
SELECT * FROM streamproc.session('2026-03-01', interval '0');
SELECT * FROM streamproc.session('2026-03-01', interval '-5 seconds');
SELECT * FROM streamproc.session('2026-03-01', interval '1 month');
SELECT * FROM streamproc.tumble('infinity', interval '1 minute');
SELECT * FROM streamproc.hop('-infinity', interval '1 minute', interval '2 minutes');
SELECT * FROM streamproc.session('infinity', interval '1 minute');
-- An infinite origin is refused, as by date_bin() (and by CREATE VIEW below).
SELECT * FROM streamproc.tumble('2026-03-01', interval '1 minute', 'infinity');
SELECT * FROM streamproc.hop('2026-03-01', interval '1 minute', interval '2 minutes', '-infinity');
-- A window past the end of the timestamp range.
SELECT * FROM streamproc.tumble('294276-12-31 23:59:59+00', interval '1 day');

--
-- 2. CREATE VIEW checks, each with its message and hint.
--
CREATE FOREIGN TABLE no_time (user_id int, url text, ts timestamptz) SERVER streamproc;
CREATE FOREIGN TABLE missing_time (user_id int, ts timestamptz) SERVER streamproc
    OPTIONS (event_time 'happened_at');
CREATE FOREIGN TABLE wrong_type (user_id int, ts timestamp) SERVER streamproc
    OPTIONS (event_time 'ts');
CREATE FOREIGN TABLE ev (user_id int, url text, amount numeric, ts timestamptz, ts2 timestamptz)
    SERVER streamproc OPTIONS (event_time 'ts', watermark_delay '5 seconds');

-- A window function needs the stream's event_time: set, existing, timestamptz.
CREATE VIEW bad WITH (continuous) AS
    SELECT w.window_start, count(*) FROM no_time, streamproc.tumble(ts, interval '1 minute') AS w
     GROUP BY w.window_start;
CREATE VIEW bad WITH (continuous) AS
    SELECT w.window_start, count(*) FROM missing_time, streamproc.session(ts, interval '1 minute') AS w
     GROUP BY w.window_start;
CREATE VIEW bad WITH (continuous) AS
    SELECT w.window_start, count(*) FROM wrong_type, streamproc.tumble(ts, interval '1 minute') AS w
     GROUP BY w.window_start;
-- Its first argument is the event_time column itself.
CREATE VIEW bad WITH (continuous) AS
    SELECT w.window_start, count(*) FROM ev, streamproc.tumble(ts2, interval '1 minute') AS w
     GROUP BY w.window_start;
CREATE VIEW bad WITH (continuous) AS
    SELECT w.window_start, count(*) FROM ev, streamproc.hop(ts + interval '1 second', interval '1 minute', interval '2 minutes') AS w
     GROUP BY w.window_start;
-- Sizes and origins are constants, not null, valid.
CREATE VIEW bad WITH (continuous) AS
    SELECT w.window_start, count(*) FROM ev, streamproc.tumble(ts, make_interval(secs => user_id)) AS w
     GROUP BY w.window_start;
CREATE VIEW bad WITH (continuous) AS
    SELECT w.window_start, count(*) FROM ev, streamproc.tumble(ts, NULL::interval) AS w
     GROUP BY w.window_start;
CREATE VIEW bad WITH (continuous) AS
    SELECT w.window_start, count(*) FROM ev, streamproc.tumble(ts, interval '1 minute', now()) AS w
     GROUP BY w.window_start;
CREATE VIEW bad WITH (continuous) AS
    SELECT w.window_start, count(*) FROM ev, streamproc.tumble(ts, interval '1 minute', 'infinity') AS w
     GROUP BY w.window_start;
CREATE VIEW bad WITH (continuous) AS
    SELECT w.window_start, count(*) FROM ev, streamproc.tumble(ts, interval '1 month') AS w
     GROUP BY w.window_start;
CREATE VIEW bad WITH (continuous) AS
    SELECT w.window_start, count(*) FROM ev, streamproc.hop(ts, interval '25 seconds', interval '1 minute') AS w
     GROUP BY w.window_start;
CREATE VIEW bad WITH (continuous) AS
    SELECT w.window_start, count(*) FROM ev, streamproc.session(ts, interval '0') AS w
     GROUP BY w.window_start;
-- One window function per view.
CREATE VIEW bad WITH (continuous) AS
    SELECT w.window_start, h.window_end, count(*)
      FROM ev, streamproc.tumble(ts, interval '1 minute') AS w,
           streamproc.hop(ts, interval '1 minute', interval '2 minutes') AS h
     GROUP BY w.window_start, h.window_end;
-- The view groups by the window.
CREATE VIEW bad WITH (continuous) AS
    SELECT url, count(*) FROM ev, streamproc.tumble(ts, interval '1 minute') AS w GROUP BY url;
CREATE VIEW bad WITH (continuous) AS
    SELECT count(*) FROM ev, streamproc.tumble(ts, interval '1 minute') AS w;
CREATE VIEW bad WITH (continuous) AS
    SELECT url, ts FROM ev, streamproc.tumble(ts, interval '1 minute') AS w;
-- The window's columns appear only as GROUP BY items.
CREATE VIEW bad WITH (continuous) AS
    SELECT w.window_start, count(w.window_start) FROM ev, streamproc.tumble(ts, interval '1 minute') AS w
     GROUP BY w.window_start;
CREATE VIEW bad WITH (continuous) AS
    SELECT w.window_start, count(*) FILTER (WHERE ts > w.window_start)
      FROM ev, streamproc.tumble(ts, interval '1 minute') AS w
     GROUP BY w.window_start;
CREATE VIEW bad WITH (continuous) AS
    SELECT w.window_start, count(*) FROM ev, streamproc.tumble(ts, interval '1 minute') AS w
     WHERE w.window_start > '2026-03-01' GROUP BY w.window_start;
-- Also in a join condition (the engine keeps hop state per slide, so such a
-- filter would see the slice, not the window).
CREATE VIEW bad_on WITH (continuous) AS
    SELECT w.window_start, w.window_end, count(*)
      FROM ev JOIN streamproc.hop(ts, interval '10 seconds', interval '30 seconds') AS w
           ON w.window_start >= '2026-03-01 00:00:10+00'
     GROUP BY w.window_start, w.window_end;
DROP VIEW IF EXISTS bad_on;  -- it does not exist
CREATE VIEW bad WITH (continuous) AS
    SELECT w.window_start + interval '1 hour' AS later, count(*)
      FROM ev, streamproc.tumble(ts, interval '1 minute') AS w
     GROUP BY w.window_start + interval '1 hour';
-- Window options need a window function.
CREATE VIEW bad WITH (continuous, allowed_lateness = '1 minute') AS
    SELECT url, count(*) FROM ev GROUP BY url;
CREATE VIEW bad WITH (continuous, emit = 'final') AS
    SELECT url, count(*) FROM no_time GROUP BY url;
CREATE VIEW bad WITH (continuous, late_events = 'late_bad') AS
    SELECT url, count(*) FROM ev GROUP BY url;
-- Window options with invalid values.
CREATE VIEW bad WITH (continuous, emit = 'sometimes') AS
    SELECT w.window_start, count(*) FROM ev, streamproc.tumble(ts, interval '1 minute') AS w
     GROUP BY w.window_start;
CREATE VIEW bad WITH (continuous, allowed_lateness = '-1 second') AS
    SELECT w.window_start, count(*) FROM ev, streamproc.tumble(ts, interval '1 minute') AS w
     GROUP BY w.window_start;
CREATE VIEW bad WITH (continuous, allowed_lateness = '1 month') AS
    SELECT w.window_start, count(*) FROM ev, streamproc.tumble(ts, interval '1 minute') AS w
     GROUP BY w.window_start;
CREATE VIEW bad WITH (continuous, retention = '0') AS
    SELECT w.window_start, count(*) FROM ev, streamproc.tumble(ts, interval '1 minute') AS w
     GROUP BY w.window_start;
-- An existing late_events table must have the stream's columns and view,
-- watermark, reason; and be a table.
CREATE TABLE late_no_reason (user_id int, url text, amount numeric, ts timestamptz, ts2 timestamptz,
                             view regclass, watermark timestamptz);
CREATE VIEW bad WITH (continuous, late_events = 'late_no_reason') AS
    SELECT w.window_start, count(*) FROM ev, streamproc.tumble(ts, interval '1 minute') AS w
     GROUP BY w.window_start;
CREATE TABLE late_no_amount (user_id int, url text, ts timestamptz, ts2 timestamptz,
                             view regclass, watermark timestamptz, reason text);
CREATE VIEW bad WITH (continuous, late_events = 'late_no_amount') AS
    SELECT w.window_start, count(*) FROM ev, streamproc.tumble(ts, interval '1 minute') AS w
     GROUP BY w.window_start;
CREATE VIEW bad WITH (continuous, late_events = 'no_time') AS
    SELECT w.window_start, count(*) FROM ev, streamproc.tumble(ts, interval '1 minute') AS w
     GROUP BY w.window_start;
-- Nothing was created, not even a late_events table.
SELECT relname FROM pg_class WHERE relnamespace = 'window_test'::regnamespace ORDER BY relname;
DROP FOREIGN TABLE no_time, missing_time, wrong_type, ev;
DROP TABLE late_no_reason, late_no_amount;

--
-- 3. Windowed views against the batch oracle.
--
-- A stream with a 5-second watermark delay, and a plain table that gets the
-- same events (ins() writes both in one statement, so one transaction).
CREATE FOREIGN TABLE clicks (user_id int, url text, amount numeric, ts timestamptz)
    SERVER streamproc OPTIONS (event_time 'ts', watermark_delay '5 seconds');
CREATE TABLE clicks_all (user_id int, url text, amount numeric, ts timestamptz);
CREATE FUNCTION ins(VARIADIC r clicks_all[]) RETURNS void LANGUAGE sql AS $$
    INSERT INTO clicks SELECT * FROM unnest(r);
    INSERT INTO clicks_all SELECT * FROM unnest(r);
$$;

-- An existing late_events table: other column order, an extra column.
CREATE TABLE late_session (reason text, watermark timestamptz, view regclass, ts timestamptz,
                           amount numeric, url text, user_id int, noted_at timestamptz DEFAULT now());

-- Tumbling windows of 1 minute per url.
CREATE VIEW tumble_v WITH (continuous, late_events = 'late_tumble') AS
    SELECT w.window_start, w.window_end, url, count(*) AS n, sum(amount) AS total
      FROM clicks, streamproc.tumble(ts, interval '1 minute') AS w
     GROUP BY w.window_start, w.window_end, url;
-- Hopping windows of 1 minute every 20 seconds per url.
CREATE VIEW hop_v WITH (continuous, late_events = 'late_hop') AS
    SELECT w.window_start, w.window_end, url, count(*) AS n, sum(amount) AS total
      FROM clicks, streamproc.hop(ts, interval '20 seconds', interval '1 minute') AS w
     GROUP BY w.window_start, w.window_end, url;
-- Sessions with a 30-second gap per user.
CREATE VIEW session_v WITH (continuous, late_events = 'late_session') AS
    SELECT user_id, w.window_start, w.window_end, count(*) AS n, sum(amount) AS total
      FROM clicks, streamproc.session(ts, interval '30 seconds') AS w
     GROUP BY user_id, w.window_start, w.window_end;
-- Only closed windows.  Same windows as tumble_v, so the same late events.
CREATE VIEW final_v WITH (continuous, emit = 'final') AS
    SELECT w.window_start, w.window_end, count(*) AS n, sum(amount) AS total
      FROM clicks, streamproc.tumble(ts, interval '1 minute') AS w
     GROUP BY w.window_start, w.window_end;
-- Windows stay open 30 seconds longer.
CREATE VIEW lateness_v WITH (continuous, allowed_lateness = '30 seconds', late_events = 'late_lateness') AS
    SELECT w.window_start, w.window_end, count(*) AS n
      FROM clicks, streamproc.tumble(ts, interval '1 minute') AS w
     GROUP BY w.window_start, w.window_end;
-- Closed windows are kept 1 minute (grouped by window_end only).  Same
-- windows as tumble_v, so the same late events.
CREATE VIEW retention_v WITH (continuous, retention = '1 minute') AS
    SELECT w.window_end, count(*) AS n
      FROM clicks, streamproc.tumble(ts, interval '1 minute') AS w
     GROUP BY w.window_end;
-- Tumbling windows aligned on :30 (grouped by window_start only).
CREATE VIEW origin_v WITH (continuous, emit = 'updates', late_events = 'late_origin') AS
    SELECT w.window_start, count(*) AS n
      FROM clicks, streamproc.tumble(ts, interval '1 minute', '2026-03-01 00:00:30+00') AS w
     GROUP BY w.window_start;
-- Not windowed: every event, also those without an event time.
CREATE VIEW plain_v WITH (continuous) AS
    SELECT count(*) AS n, count(ts) AS with_ts FROM clicks;

-- The late_events tables that did not exist were created in the current
-- schema, with the stream's columns and view, watermark, reason.
SELECT c.relname, c.relnamespace::regnamespace AS schema,
       string_agg(a.attname || ' ' || format_type(a.atttypid, a.atttypmod), ', ' ORDER BY a.attnum) AS columns
  FROM pg_class c JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped
 WHERE c.relname LIKE 'late\_%'
 GROUP BY c.relname, c.relnamespace ORDER BY c.relname;
SELECT view, window_kind, window_size, window_slide, window_origin, window_roles,
       allowed_lateness, retention, emit, late_events
  FROM streamproc.views WHERE view::oid IN (SELECT oid FROM pg_class WHERE relnamespace = 'window_test'::regnamespace)
 ORDER BY view::text;

-- Per view: events merged, groups in shared memory, watermark, late events.
CREATE VIEW stats AS
    SELECT s.view, s.events, s.groups, s.watermark, s.late_events
      FROM streamproc.stat_views s JOIN pg_class c ON c.oid = s.view
     WHERE c.relnamespace = 'window_test'::regnamespace;
-- Closed windows (in streamproc.window_runs), per view and window end.
CREATE VIEW closed AS
    SELECT c.relname AS view, s.window_end, count(*) AS rows
      FROM streamproc.views v JOIN pg_class c ON c.oid = v.view,
           streamproc._closed_windows(v.view) s
     WHERE c.relnamespace = 'window_test'::regnamespace AND v.window_kind IS NOT NULL
     GROUP BY c.relname, s.window_end;

-- No watermark before any event (sync(): the workers have loaded the views).
SELECT streamproc.sync();
SELECT * FROM stats ORDER BY view::text;

-- Step 1.  Greatest event time 12:00:50: W = 12:00:45.
SELECT ins((1, '/a', 1, '2026-03-01 12:00:05+00'), (2, '/b', 2, '2026-03-01 12:00:10+00'),
           (1, '/a', 3, '2026-03-01 12:00:25+00'), (3, '/a', 4, '2026-03-01 12:00:40+00'),
           (2, '/b', 5, '2026-03-01 12:00:50+00'));
SELECT streamproc.sync();
-- tumble_v: window [12:00, 12:01) is open (2 groups).  hop_v: 5 slices of
-- 20 s per url; the windows ending 12:00:20 and 12:00:40 closed.  session_v:
-- user 2's first session [12:00:10, 12:00:40) closed, 3 open.  origin_v:
-- [11:59:30, 12:00:30) closed.
SELECT * FROM stats ORDER BY view::text;
SELECT * FROM tumble_v ORDER BY window_start, url;
SELECT * FROM hop_v ORDER BY window_start, url;
SELECT * FROM session_v ORDER BY user_id, window_start;
SELECT * FROM origin_v ORDER BY window_start;
-- emit = 'final': nothing closed yet.
SELECT * FROM final_v ORDER BY window_start;
SELECT * FROM closed ORDER BY view, window_end;
SELECT c.relname AS view, max(w.watermark) AS watermark
  FROM streamproc.view_watermarks w JOIN pg_class c ON c.oid = w.view
 WHERE c.relnamespace = 'window_test'::regnamespace
 GROUP BY c.relname ORDER BY c.relname;

-- Step 2.  W0 = 12:00:45.  Event 8 at 12:00:30 is late for hop_v (its
-- first window [11:59:40, 12:00:40) closed: before date_bin(20 s, W0) =
-- 12:00:40) and for session_v (before W0), not for the tumbling views
-- (window [12:00, 12:01) is open) nor origin_v (window [12:00:30, 12:01:30)
-- is open).  Then W = 12:01:25: window [12:00, 12:01) closes.
SELECT ins((1, '/a', 6, '2026-03-01 12:01:10+00'), (3, '/b', 7, '2026-03-01 12:01:30+00'),
           (4, '/c', 8, '2026-03-01 12:00:30+00'));
SELECT streamproc.sync();
SELECT * FROM stats ORDER BY view::text;
SELECT * FROM tumble_v ORDER BY window_start, url;
SELECT * FROM session_v ORDER BY user_id, window_start;
-- emit = 'final': now window [12:00, 12:01), with event 8.
SELECT * FROM final_v ORDER BY window_start;
-- allowed_lateness: C = 12:00:55, [12:00, 12:01) is still open.
SELECT * FROM lateness_v ORDER BY window_start;
SELECT * FROM origin_v ORDER BY window_start;
SELECT * FROM closed ORDER BY view, window_end;
-- The late events, with the watermark W0 they were judged against.
SELECT user_id, url, amount, ts, view, watermark, reason FROM late_hop ORDER BY amount;
SELECT user_id, url, amount, ts, view, watermark, reason FROM late_session ORDER BY amount;
SELECT count(*) AS late_tumble FROM late_tumble;

-- Step 3.  W0 = 12:01:25: tumble cutoff date_bin(1 min, W0) = 12:01:00, so
-- event 9 (12:00:59) is late for tumble_v, final_v and retention_v; not for
-- lateness_v (C0 = 12:00:55, cutoff 12:00:00: it joins [12:00, 12:01)) nor
-- origin_v (cutoff 12:00:30).  Events 9 and 10 (12:01:01) are late for
-- hop_v (cutoff 12:01:20) and session_v (cutoff 12:01:25).  Event 11
-- extends user 1's open session [12:01:10, 12:01:40); user 6's three
-- events make one session.  Then W = 12:02:35.
SELECT ins((5, '/a', 9, '2026-03-01 12:00:59+00'), (5, '/a', 10, '2026-03-01 12:01:01+00'),
           (1, '/a', 11, '2026-03-01 12:01:35+00'), (6, '/c', 12, '2026-03-01 12:02:00+00'),
           (6, '/c', 13, '2026-03-01 12:02:40+00'), (6, '/c', 14, '2026-03-01 12:02:20+00'));
SELECT streamproc.sync();
SELECT * FROM stats ORDER BY view::text;
SELECT * FROM tumble_v ORDER BY window_start, url;
SELECT * FROM session_v ORDER BY user_id, window_start;
SELECT * FROM final_v ORDER BY window_start;
-- C = 12:02:05: [12:00, 12:01) (with event 9) and [12:01, 12:02) closed.
SELECT * FROM lateness_v ORDER BY window_start;
-- retention: closed windows ending before W - 1 minute = 12:01:35 are gone.
SELECT * FROM retention_v ORDER BY window_end;
SELECT * FROM origin_v ORDER BY window_start;
SELECT user_id, url, amount, ts, view, watermark, reason FROM late_tumble ORDER BY amount;
SELECT user_id, url, amount, ts, view, watermark, reason FROM late_hop ORDER BY amount;
SELECT user_id, url, amount, ts, view, watermark, reason FROM late_session ORDER BY amount;
SELECT count(*) AS late_lateness FROM late_lateness;
SELECT count(*) AS late_origin FROM late_origin;

-- Step 4.  An event without event time goes to streamproc.errors once per
-- windowed view and is counted only by plain_v.  W = 12:03:25.
SELECT ins((7, '/a', 15, NULL), (7, '/d', 16, '2026-03-01 12:03:30+00'));
SELECT streamproc.sync();
SELECT e.view, e.sqlstate, e.message, e.event
  FROM streamproc.errors e JOIN pg_class c ON c.oid = e.view
 WHERE c.relnamespace = 'window_test'::regnamespace
 ORDER BY e.view::text;
SELECT * FROM plain_v;
SELECT * FROM stats ORDER BY view::text;
-- retention: now only windows ending at or after 12:02:25.
SELECT * FROM retention_v ORDER BY window_end;
SELECT * FROM session_v ORDER BY user_id, window_start;

-- Step 5.  An old event: late for every view (for lateness_v too: C0 =
-- 12:02:55, cutoff 12:02:00); the watermark does not go back.
SELECT ins((8, '/e', 17, '2026-03-01 11:00:00+00'));
SELECT streamproc.sync();
SELECT * FROM stats ORDER BY view::text;
SELECT user_id, url, amount, ts, view, watermark, reason FROM late_lateness ORDER BY amount;
SELECT user_id, url, amount, ts, view, watermark, reason FROM late_origin ORDER BY amount;
SELECT c.relname AS view, max(w.watermark) AS watermark
  FROM streamproc.view_watermarks w JOIN pg_class c ON c.oid = w.view
 WHERE c.relnamespace = 'window_test'::regnamespace
 GROUP BY c.relname ORDER BY c.relname;

-- The whole hop view, checked by hand against the events above.
SELECT * FROM hop_v ORDER BY window_start, url;

-- The oracle: each view equals the same query over the events of
-- clicks_all that have an event time and are not in its late table (EXCEPT
-- ALL both ways: 0, 0).
CREATE FUNCTION oracle_diff(view_sql text, batch_sql text, OUT view_only bigint, OUT batch_only bigint)
LANGUAGE plpgsql AS $$
BEGIN
    EXECUTE format('SELECT count(*) FROM ((%s) EXCEPT ALL (%s)) x', view_sql, batch_sql) INTO view_only;
    EXECUTE format('SELECT count(*) FROM ((%s) EXCEPT ALL (%s)) x', batch_sql, view_sql) INTO batch_only;
END
$$;
-- The events a view counted: all with an event time minus its late table's.
CREATE FUNCTION counted(late regclass, events regclass DEFAULT 'window_test.clicks_all')
RETURNS SETOF clicks_all LANGUAGE plpgsql AS $$
BEGIN
    RETURN QUERY EXECUTE format(
        'SELECT user_id, url, amount, ts FROM %s WHERE ts IS NOT NULL
         EXCEPT ALL SELECT user_id, url, amount, ts FROM %s', events, late);
END
$$;
-- Sessions of a set of events as a batch: gaps and islands.
CREATE FUNCTION batch_sessions(late regclass, gap interval, events regclass DEFAULT 'window_test.clicks_all',
    OUT user_id int, OUT window_start timestamptz, OUT window_end timestamptz, OUT n bigint, OUT total numeric)
RETURNS SETOF record LANGUAGE sql AS $$
    SELECT user_id, min(ts), max(ts) + gap, count(*), sum(amount)
      FROM (SELECT *, sum(new_session) OVER (PARTITION BY user_id ORDER BY ts) AS session
              FROM (SELECT *, CASE WHEN ts - lag(ts) OVER (PARTITION BY user_id ORDER BY ts) < gap
                                   THEN 0 ELSE 1 END AS new_session
                      FROM window_test.counted(late, events)) e) s
     GROUP BY user_id, session
$$;

SELECT 'tumble' AS view, * FROM oracle_diff(
    'SELECT * FROM tumble_v',
    'SELECT w.window_start, w.window_end, e.url, count(*), sum(e.amount)
       FROM counted(''late_tumble'') e, streamproc.tumble(e.ts, interval ''1 minute'') w
      GROUP BY 1, 2, 3');
SELECT 'hop' AS view, * FROM oracle_diff(
    'SELECT * FROM hop_v',
    'SELECT w.window_start, w.window_end, e.url, count(*), sum(e.amount)
       FROM counted(''late_hop'') e, streamproc.hop(e.ts, interval ''20 seconds'', interval ''1 minute'') w
      GROUP BY 1, 2, 3');
SELECT 'session' AS view, * FROM oracle_diff(
    'SELECT * FROM session_v',
    'SELECT * FROM batch_sessions(''late_session'', interval ''30 seconds'')');
-- emit = 'final': the closed windows only, window_end <= W.
SELECT 'final' AS view, * FROM oracle_diff(
    'SELECT * FROM final_v',
    'SELECT w.window_start, w.window_end, count(*), sum(e.amount)
       FROM counted(''late_tumble'') e, streamproc.tumble(e.ts, interval ''1 minute'') w
      WHERE w.window_end <= (SELECT watermark FROM stats WHERE view = ''final_v''::regclass)
      GROUP BY 1, 2');
SELECT 'lateness' AS view, * FROM oracle_diff(
    'SELECT * FROM lateness_v',
    'SELECT w.window_start, w.window_end, count(*)
       FROM counted(''late_lateness'') e, streamproc.tumble(e.ts, interval ''1 minute'') w
      GROUP BY 1, 2');
-- retention: the windows ending at or after W - 1 minute.
SELECT 'retention' AS view, * FROM oracle_diff(
    'SELECT * FROM retention_v',
    'SELECT w.window_end, count(*)
       FROM counted(''late_tumble'') e, streamproc.tumble(e.ts, interval ''1 minute'') w
      WHERE w.window_end >= (SELECT watermark FROM stats WHERE view = ''retention_v''::regclass) - interval ''1 minute''
      GROUP BY 1');
SELECT 'origin' AS view, * FROM oracle_diff(
    'SELECT * FROM origin_v',
    'SELECT w.window_start, count(*)
       FROM counted(''late_origin'') e, streamproc.tumble(e.ts, interval ''1 minute'', ''2026-03-01 00:00:30+00'') w
      GROUP BY 1');
-- Every event with an event time is either counted or late, once; the
-- late tables agree with stat_views; closed windows are in window_runs.
SELECT (SELECT sum(n) FROM tumble_v) AS tumble_counted,
       (SELECT count(*) FROM late_tumble) AS tumble_late,
       (SELECT sum(n) FROM hop_v)::bigint / 3 AS hop_counted,
       (SELECT count(*) FROM late_hop) AS hop_late,
       (SELECT sum(n) FROM session_v) AS session_counted,
       (SELECT count(*) FROM late_session) AS session_late,
       (SELECT count(*) FROM clicks_all WHERE ts IS NOT NULL) AS with_event_time;
SELECT s.view, s.late_events, s.events,
       s.late_events = (SELECT count(*) FROM late_tumble) AS late_matches,
       s.events = (SELECT count(*) FROM counted('late_tumble')) AS events_match
  FROM stats s WHERE s.view IN ('tumble_v'::regclass, 'final_v', 'retention_v')
UNION ALL
SELECT s.view, s.late_events, s.events,
       s.late_events = (SELECT count(*) FROM late_hop), s.events = (SELECT count(*) FROM counted('late_hop'))
  FROM stats s WHERE s.view = 'hop_v'::regclass
UNION ALL
SELECT s.view, s.late_events, s.events,
       s.late_events = (SELECT count(*) FROM late_session), s.events = (SELECT count(*) FROM counted('late_session'))
  FROM stats s WHERE s.view = 'session_v'::regclass
UNION ALL
SELECT s.view, s.late_events, s.events,
       s.late_events = (SELECT count(*) FROM late_lateness), s.events = (SELECT count(*) FROM counted('late_lateness'))
  FROM stats s WHERE s.view = 'lateness_v'::regclass
UNION ALL
SELECT s.view, s.late_events, s.events,
       s.late_events = (SELECT count(*) FROM late_origin), s.events = (SELECT count(*) FROM counted('late_origin'))
  FROM stats s WHERE s.view = 'origin_v'::regclass
ORDER BY 1;
SELECT (SELECT rows FROM closed WHERE view = 'tumble_v' AND window_end = '2026-03-01 12:03:00+00') AS tumble_closed_1203,
       (SELECT sum(rows) FROM closed WHERE view = 'hop_v') AS hop_closed_rows,
       (SELECT count(*) FROM hop_v WHERE window_end <= '2026-03-01 12:03:25+00') AS hop_closed_windows,
       (SELECT sum(rows) FROM closed WHERE view = 'session_v') AS session_closed_rows,
       (SELECT count(*) FROM session_v WHERE window_end <= '2026-03-01 12:03:25+00') AS session_closed_windows;

--
-- 4. Many events with disorder: 8 batches of 250 events, each batch 30 s
-- of event time, one event in four up to 12 s (more than twice the
-- watermark delay) early.  The views must equal the oracle over the events
-- that were not late, and some events must be late.
--
CREATE FOREIGN TABLE events (user_id int, url text, amount numeric, ts timestamptz)
    SERVER streamproc OPTIONS (event_time 'ts', watermark_delay '5 seconds');
CREATE TABLE events_all (LIKE clicks_all);
CREATE FUNCTION events_batch(b int) RETURNS void LANGUAGE sql AS $$
    WITH e AS MATERIALIZED (
        SELECT (g * 13 + b) % 20 AS user_id, '/p' || (g % 5) AS url, (g % 17)::numeric AS amount,
               timestamptz '2026-04-01 00:00:07+00' + b * interval '30 seconds' + g * interval '120 milliseconds'
                 - CASE WHEN g % 4 = 1 THEN ((g * 7) % 13) * interval '1 second' ELSE interval '0' END AS ts
          FROM generate_series(1, 250) g),
    s AS (INSERT INTO window_test.events SELECT * FROM e)
    INSERT INTO window_test.events_all SELECT * FROM e;
$$;
CREATE VIEW d_tumble WITH (continuous, late_events = 'd_late_tumble') AS
    SELECT w.window_start, w.window_end, url, count(*) AS n, sum(amount) AS total
      FROM events, streamproc.tumble(ts, interval '10 seconds') AS w
     GROUP BY w.window_start, w.window_end, url;
CREATE VIEW d_hop WITH (continuous, late_events = 'd_late_hop') AS
    SELECT w.window_start, w.window_end, url, count(*) AS n, sum(amount) AS total
      FROM events, streamproc.hop(ts, interval '2 seconds', interval '6 seconds') AS w
     GROUP BY w.window_start, w.window_end, url;
CREATE VIEW d_session WITH (continuous, late_events = 'd_late_session') AS
    SELECT user_id, w.window_start, w.window_end, count(*) AS n, sum(amount) AS total
      FROM events, streamproc.session(ts, interval '5 seconds') AS w
     GROUP BY user_id, w.window_start, w.window_end;
CREATE VIEW d_final WITH (continuous, emit = 'final', allowed_lateness = '3 seconds', late_events = 'd_late_final') AS
    SELECT w.window_start, w.window_end, url, count(*) AS n, sum(amount) AS total
      FROM events, streamproc.tumble(ts, interval '2 seconds') AS w
     GROUP BY w.window_start, w.window_end, url;
SELECT streamproc.sync();
SELECT events_batch(1);
SELECT streamproc.sync();
SELECT events_batch(2);
SELECT streamproc.sync();
SELECT events_batch(3);
SELECT streamproc.sync();
SELECT events_batch(4);
SELECT streamproc.sync();
SELECT events_batch(5);
SELECT streamproc.sync();
SELECT events_batch(6);
SELECT streamproc.sync();
SELECT events_batch(7);
SELECT streamproc.sync();
SELECT events_batch(8);
SELECT streamproc.sync();
SELECT 'd_tumble' AS view, * FROM oracle_diff(
    'SELECT * FROM d_tumble',
    'SELECT w.window_start, w.window_end, e.url, count(*), sum(e.amount)
       FROM counted(''d_late_tumble'', ''events_all'') e, streamproc.tumble(e.ts, interval ''10 seconds'') w
      GROUP BY 1, 2, 3');
SELECT 'd_hop' AS view, * FROM oracle_diff(
    'SELECT * FROM d_hop',
    'SELECT w.window_start, w.window_end, e.url, count(*), sum(e.amount)
       FROM counted(''d_late_hop'', ''events_all'') e, streamproc.hop(e.ts, interval ''2 seconds'', interval ''6 seconds'') w
      GROUP BY 1, 2, 3');
SELECT 'd_session' AS view, * FROM oracle_diff(
    'SELECT * FROM d_session',
    'SELECT * FROM batch_sessions(''d_late_session'', interval ''5 seconds'', ''events_all'')');
-- emit = 'final': the windows ending at or before W - allowed_lateness.
SELECT 'd_final' AS view, * FROM oracle_diff(
    'SELECT * FROM d_final',
    'SELECT w.window_start, w.window_end, e.url, count(*), sum(e.amount)
       FROM counted(''d_late_final'', ''events_all'') e, streamproc.tumble(e.ts, interval ''2 seconds'') w
      WHERE w.window_end <= (SELECT watermark FROM stats WHERE view = ''d_final''::regclass) - interval ''3 seconds''
      GROUP BY 1, 2, 3');
-- The views hold many windows; the watermark is the greatest event time
-- minus 5 seconds; some events were late, each counted once: as many rows
-- in the late table as stat_views says, each an event of the stream, for
-- its view, and the rest merged.
SELECT (SELECT count(*) FROM d_tumble) > 100 AS d_tumble_windows,
       (SELECT count(*) FROM d_hop) > 500 AS d_hop_windows,
       (SELECT count(*) FROM d_session) > 20 AS d_sessions,
       (SELECT count(*) FROM d_final) > 500 AS d_final_windows;
CREATE VIEW d_late AS
    SELECT 'd_tumble'::regclass AS for_view, * FROM d_late_tumble
    UNION ALL SELECT 'd_hop', * FROM d_late_hop
    UNION ALL SELECT 'd_session', * FROM d_late_session
    UNION ALL SELECT 'd_final', * FROM d_late_final;
SELECT s.view, s.watermark = (SELECT max(ts) - interval '5 seconds' FROM events_all) AS watermark_ok,
       s.late_events > 0 AS some_late, s.late_events < 500 AS few_late,
       s.late_events = (SELECT count(*) FROM d_late l WHERE l.for_view = s.view) AS late_table_matches,
       (SELECT count(*) FROM d_late l WHERE l.for_view = s.view AND l.view = s.view AND l.reason = 'window closed'
           AND EXISTS (SELECT 1 FROM events_all a
                        WHERE (a.user_id, a.url, a.amount, a.ts) = (l.user_id, l.url, l.amount, l.ts))) = s.late_events
         AS late_rows_ok,
       s.events + s.late_events = 2000 AS all_events_accounted
  FROM stats s
 WHERE s.view::text LIKE 'd\_%'
 ORDER BY s.view::text;

--
-- 5. DROP VIEW: its rows of window_runs, state_runs and view_watermarks
-- are deleted by the workers when they reload the catalog, which sync()
-- waits for.  The late_events table stays.
--
SELECT 'hop_v'::regclass::oid AS hop_oid, 'tumble_v'::regclass::oid AS tumble_oid \gset
SELECT (SELECT count(*) > 0 FROM streamproc.window_runs WHERE view = :hop_oid) AS window_runs,
       (SELECT count(*) > 0 FROM streamproc.view_watermarks WHERE view = :hop_oid) AS view_watermarks;
DROP VIEW hop_v;
SELECT streamproc.sync();
SELECT (SELECT count(*) FROM streamproc.window_runs WHERE view = :hop_oid) AS window_runs,
       (SELECT count(*) FROM streamproc.view_watermarks WHERE view = :hop_oid) AS view_watermarks,
       (SELECT count(*) FROM streamproc.state_runs WHERE view = :hop_oid) AS state_runs;
SELECT count(*) AS late_hop_rows FROM late_hop;
-- A late_events table: the view depends on it.
DROP TABLE late_tumble;
DROP TABLE late_tumble CASCADE;
SELECT count(*) AS tumble_v_left FROM streamproc.views WHERE view::oid = :tumble_oid;
SELECT streamproc.sync();
SELECT (SELECT count(*) FROM streamproc.window_runs WHERE view = :tumble_oid) AS window_runs,
       (SELECT count(*) FROM streamproc.view_watermarks WHERE view = :tumble_oid) AS view_watermarks;
-- Everything else.
SET client_min_messages = warning;
DROP SCHEMA window_test CASCADE;
RESET client_min_messages;
SELECT streamproc.sync();
SELECT (SELECT count(*) FROM streamproc.window_runs s
         WHERE NOT EXISTS (SELECT 1 FROM streamproc.views v WHERE v.view::oid = s.view)) AS window_runs,
       (SELECT count(*) FROM streamproc.view_watermarks s
         WHERE NOT EXISTS (SELECT 1 FROM streamproc.views v WHERE v.view::oid = s.view)) AS view_watermarks,
       (SELECT count(*) FROM streamproc.state_runs s
         WHERE NOT EXISTS (SELECT 1 FROM streamproc.views v WHERE v.view::oid = s.view)) AS state_runs;

--
-- Named arguments; a late_events table renamed, then altered so that it no
-- longer fits: late events follow the rename, then go to streamproc.errors
-- (the worker reloads its catalog at every DDL on a continuous view).
--
CREATE FOREIGN TABLE wev (v int, ts timestamptz) SERVER streamproc
    OPTIONS (event_time 'ts');
CREATE VIEW wev_hourly WITH (continuous, late_events = 'wev_late') AS
    SELECT w.window_start, count(*) AS n
      FROM wev, streamproc.tumble(ts => ts, size => interval '1 hour',
                                 origin => '2026-01-01 00:15+00') AS w
     GROUP BY w.window_start;
INSERT INTO wev VALUES (1, '2026-01-01 10:00+00');
SELECT streamproc.sync();
SELECT * FROM wev_hourly;
ALTER TABLE wev_late RENAME TO wev_late_renamed;
CREATE VIEW wev_count WITH (continuous) AS SELECT count(*) FROM wev;
INSERT INTO wev VALUES (2, '2026-01-01 08:00+00');
SELECT streamproc.sync();
SELECT v, ts, view, reason FROM wev_late_renamed;
ALTER TABLE wev_late_renamed DROP COLUMN reason;
DROP VIEW wev_count;
INSERT INTO wev VALUES (3, '2026-01-01 08:30+00');
SELECT streamproc.sync();
SELECT view, position, sqlstate, message, event FROM streamproc.errors
 WHERE view = 'wev_hourly'::regclass;
SELECT * FROM wev_hourly;
DROP FOREIGN TABLE wev CASCADE;
DROP TABLE wev_late_renamed;

--
-- Stream options change under windowed views: watermark_delay and
-- idle_timeout take effect at once (the workers reload), event_time cannot
-- change while windowed views read the stream.
--
CREATE FOREIGN TABLE wopt (v int, ts timestamptz, other timestamptz) SERVER streamproc
    OPTIONS (event_time 'ts', watermark_delay '1 hour');
CREATE VIEW wopt_minutes WITH (continuous) AS
    SELECT w.window_start, count(*) AS n
      FROM wopt, streamproc.tumble(ts, interval '1 minute') AS w
     GROUP BY w.window_start;
INSERT INTO wopt VALUES (1, '2026-01-01 10:00+00', NULL);
SELECT streamproc.sync();
SELECT watermark FROM streamproc.stat_views WHERE view = 'wopt_minutes'::regclass;
ALTER FOREIGN TABLE wopt OPTIONS (SET watermark_delay '0');
INSERT INTO wopt VALUES (2, '2026-01-01 10:00:30+00', NULL);
SELECT streamproc.sync();
SELECT watermark FROM streamproc.stat_views WHERE view = 'wopt_minutes'::regclass;
ALTER FOREIGN TABLE wopt OPTIONS (SET event_time 'other');
ALTER FOREIGN TABLE wopt OPTIONS (DROP event_time);
ALTER FOREIGN TABLE wopt OPTIONS (ADD idle_timeout '-1 second');
ALTER FOREIGN TABLE wopt OPTIONS (ADD idle_timeout '10 seconds');
DROP VIEW wopt_minutes;
ALTER FOREIGN TABLE wopt OPTIONS (SET event_time 'other');
DROP FOREIGN TABLE wopt;
