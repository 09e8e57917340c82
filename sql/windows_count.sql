--
-- Count windows: streamproc.count_window(n) numbers every n events of a
-- group in processing order.  Checked against row_number() over the same
-- events in the order they were inserted (one INSERT per step, so the
-- processing order within a step is the order of the log rows).
--
CREATE FOREIGN TABLE taps (id int, player text, points int) SERVER streamproc;
CREATE TABLE taps_oracle (id int, player text, points int);

CREATE VIEW taps_by_three WITH (continuous) AS
    SELECT w.window_id, player, count(*) AS taps, sum(points) AS points, max(id) AS last_id
      FROM taps, streamproc.count_window(3) AS w
     GROUP BY w.window_id, player;
CREATE VIEW full_threes WITH (continuous, emit = 'final') AS
    SELECT w.window_id, player, count(*) AS taps, sum(points) AS points
      FROM taps, streamproc.count_window(3) AS w
     GROUP BY w.window_id, player;

-- The oracle: windows of three by insertion order (id) per player.
CREATE VIEW taps_expected AS
    SELECT (row_number() OVER (PARTITION BY player ORDER BY id) - 1) / 3 AS window_id,
           player, id, points
      FROM taps_oracle;

CREATE FUNCTION tap(first int, last int) RETURNS void LANGUAGE sql AS $$
    INSERT INTO taps SELECT g, CASE WHEN g % 3 = 0 THEN 'ann' ELSE 'bob' END, g FROM generate_series(first, last) g;
    INSERT INTO taps_oracle SELECT g, CASE WHEN g % 3 = 0 THEN 'ann' ELSE 'bob' END, g FROM generate_series(first, last) g;
$$;

-- Step 1: ann gets 1 tap (id 3), bob 3 (ids 1, 2, 4): bob's window 0 is full.
SELECT tap(1, 4);
SELECT streamproc.sync();
SELECT * FROM taps_by_three ORDER BY player, window_id;
SELECT * FROM full_threes ORDER BY player, window_id;

-- Step 2: windows fill across steps and several fill in one step.
SELECT tap(5, 20);
SELECT streamproc.sync();
SELECT * FROM taps_by_three ORDER BY player, window_id;
SELECT * FROM full_threes ORDER BY player, window_id;

-- Both views equal the oracle (the final one: full windows only).
SELECT count(*) AS differences FROM (
    (SELECT window_id, player, count(*) AS taps, sum(points) AS points, max(id) AS last_id
       FROM taps_expected GROUP BY 1, 2
     EXCEPT ALL SELECT * FROM taps_by_three)
    UNION ALL
    (SELECT * FROM taps_by_three
     EXCEPT ALL SELECT window_id, player, count(*), sum(points), max(id) FROM taps_expected GROUP BY 1, 2)) d;
SELECT count(*) AS differences FROM (
    (SELECT window_id, player, count(*) AS taps, sum(points) AS points
       FROM taps_expected GROUP BY 1, 2 HAVING count(*) = 3
     EXCEPT ALL SELECT * FROM full_threes)
    UNION ALL
    (SELECT * FROM full_threes
     EXCEPT ALL SELECT window_id, player, count(*), sum(points) FROM taps_expected GROUP BY 1, 2 HAVING count(*) = 3)) d;

-- Full windows left shared memory: one open window per player remains.
SELECT view, groups FROM streamproc.stat_views
 WHERE view IN ('taps_by_three'::regclass, 'full_threes'::regclass) ORDER BY 1;

-- Outside a continuous view there is no processing order.
SELECT * FROM streamproc.count_window(3);

-- Errors.
CREATE VIEW bad WITH (continuous) AS
    SELECT w.window_id, count(*) FROM taps, streamproc.count_window(0) AS w GROUP BY 1;
CREATE VIEW bad WITH (continuous) AS
    SELECT w.window_id, count(*) FROM taps, streamproc.count_window(id) AS w GROUP BY 1;
CREATE VIEW bad WITH (continuous) AS
    SELECT player, count(*) FROM taps, streamproc.count_window(3) AS w GROUP BY player;
CREATE VIEW bad WITH (continuous, allowed_lateness = '1 second') AS
    SELECT w.window_id, count(*) FROM taps, streamproc.count_window(3) AS w GROUP BY 1;
CREATE VIEW bad WITH (continuous) AS
    SELECT w.window_id, count(*) FROM taps JOIN streamproc.count_window(3) AS w ON true GROUP BY 1;

DROP VIEW taps_by_three, full_threes, taps_expected;
DROP FUNCTION tap(int, int);
DROP TABLE taps_oracle;
DROP FOREIGN TABLE taps;
