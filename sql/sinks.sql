--
-- Kafka sinks (src/sink.c): the SQL surface, its errors, and the messages
-- a sink produces to the suite's devbroker, read back with kcat and
-- compared with the view and its change log.
--
SET client_min_messages = warning;
SET timezone = 'UTC';

CREATE FOREIGN TABLE snk_events (user_id int, url text, ms int) SERVER streamproc;
CREATE TABLE snk_oracle (user_id int, url text, ms int);
CREATE VIEW snk_users WITH (continuous) AS
    SELECT user_id, count(*) AS n, sum(ms) AS total FROM snk_events GROUP BY user_id
    HAVING sum(ms) < 900;
CREATE VIEW snk_urls WITH (continuous) AS
    SELECT url, user_id, count(*) AS n FROM snk_events GROUP BY url, user_id;
CREATE VIEW snk_slow WITH (continuous) AS
    SELECT user_id, url, ms FROM snk_events WHERE ms >= 95;
CREATE FOREIGN TABLE snk_timed (ts timestamptz, n int) SERVER streamproc OPTIONS (event_time 'ts');
CREATE VIEW snk_updates WITH (continuous, emit = 'updates') AS
    SELECT w.window_start, count(*) AS n
      FROM snk_timed, streamproc.hop(ts, interval '1 minute', interval '2 minutes') AS w GROUP BY 1;

-- Waits for a sink to have produced its whole log (a condition, polled).
CREATE FUNCTION snk_caught_up(s text) RETURNS text LANGUAGE plpgsql AS $$
DECLARE
    st record;
BEGIN
    FOR i IN 1 .. 6000 LOOP
        SELECT * INTO st FROM streamproc.stat_sinks WHERE sink = s;
        IF st.state = 'running' AND st.lag = 0 THEN
            RETURN 'caught up';
        END IF;
        PERFORM pg_sleep(0.01);
    END LOOP;
    RETURN format('not caught up: %s', row_to_json(st));
END
$$;

-- The messages of a sink: partition, key, value, position header (only
-- those with the sink's identity, so that a topic used before is no matter).
CREATE FUNCTION snk_read(sink text)
RETURNS TABLE (part int, key text, value text, pos bigint) LANGUAGE plpgsql AS $$
DECLARE
    s record;
BEGIN
    SELECT topic, name || '/' || (date_part('epoch', created_at) * 1000000)::int8 AS identity
      INTO STRICT s FROM streamproc.sinks WHERE name = sink;
    CREATE TEMP TABLE IF NOT EXISTS snk_raw (part int, key text, value text, headers text);
    TRUNCATE snk_raw;
    EXECUTE format('COPY snk_raw FROM PROGRAM %L',
                   'kcat -C -q -e -Z -o beginning -b ' || current_setting('streamproc_test.brokers')
                   || ' -t ' || s.topic || $f$ -f '%p\t%k\t%s\t%h\n' | sed 's/\\/\\\\/g'$f$);
    RETURN QUERY
        SELECT r.part, nullif(r.key, 'NULL'), nullif(r.value, 'NULL'),
               substring(r.headers FROM 'streamproc-position=([0-9]+)')::bigint
          FROM snk_raw r
         WHERE r.headers LIKE '%streamproc-sink=' || s.identity || '%';
END
$$;

INSERT INTO snk_events SELECT g % 10, '/p/' || (g % 3), g % 100 FROM generate_series(1, 100) g;
INSERT INTO snk_oracle SELECT g % 10, '/p/' || (g % 3), g % 100 FROM generate_series(1, 100) g;
SELECT streamproc.sync();

-- Errors: each names what is wrong and what to do.
SELECT streamproc.create_kafka_sink('', 'snk_users', 'snk_users', 'localhost:9');
SELECT streamproc.create_kafka_sink(repeat('x', 64), 'snk_users', 'snk_users', 'localhost:9');
SELECT streamproc.create_kafka_sink('s', 'snk_oracle', 'snk_users', 'localhost:9');
SELECT streamproc.create_kafka_sink('s', 'snk_users', 'bad topic', 'localhost:9');
SELECT streamproc.create_kafka_sink('s', 'snk_users', 'snk_users', ' ');
SELECT streamproc.create_kafka_sink('s', 'snk_users', 'snk_users', 'localhost:9', format => 'avro');
SELECT streamproc.create_kafka_sink('s', 'snk_users', 'snk_users', 'localhost:9', key => '{}');
SELECT streamproc.create_kafka_sink('s', 'snk_users', 'snk_users', 'localhost:9', key => '{nope}');
SELECT streamproc.create_kafka_sink('s', 'snk_users', 'snk_users', 'localhost:9', key => '{{user_id}}');
SELECT streamproc.create_kafka_sink('s', 'snk_users', 'snk_users', 'localhost:9', options => '[]');
SELECT streamproc.create_kafka_sink('s', 'snk_users', 'snk_users', 'localhost:9',
                                    options => '{"enable.idempotence": false}');
SELECT streamproc.create_kafka_sink('s', 'snk_users', 'snk_users', 'localhost:9',
                                    options => '{"acks": 1}');
SELECT streamproc.create_kafka_sink('s', 'snk_users', 'snk_users', 'localhost:9',
                                    options => '{"bootstrap.servers": "x:1"}');
SELECT streamproc.create_kafka_sink('s', 'snk_users', 'snk_users', 'localhost:9',
                                    options => '{"linger.ms": "soon"}');
SELECT streamproc.create_kafka_sink('s', 'snk_users', 'snk_users', 'localhost:9', options => NULL);
SELECT streamproc.create_kafka_sink('s', 'snk_updates', 'snk_users', 'localhost:9');
SELECT streamproc.drop_kafka_sink('nope');
SELECT streamproc.drop_kafka_sink('nope', if_exists => true);
SELECT streamproc.pause_sink('nope');
-- Nothing was created by the failures: no sink, no change log.
SELECT count(*) FROM streamproc.sinks;
SELECT count(*) FROM streamproc.change_logs;

-- A sink of an aggregating view: keyed by its group key, json rows.
SELECT streamproc.create_kafka_sink('users_out', 'snk_users', 'snk_users',
                                    current_setting('streamproc_test.brokers'));
SELECT streamproc.create_kafka_sink('users_out', 'snk_users', 'snk_users', 'localhost:9');
-- It created the view's change log, which now cannot be dropped.
SELECT view, last_position, trimmed_to FROM streamproc.change_logs;
SELECT streamproc.drop_change_log('snk_users');
SELECT name, view, topic, format, key, options, paused FROM streamproc.kafka_sinks;
SELECT snk_caught_up('users_out');
-- Events that add a group with a null key, then change some groups,
-- remove one (HAVING), add one and change the null one.
INSERT INTO snk_events VALUES (NULL, '/p/0', 1);
INSERT INTO snk_oracle VALUES (NULL, '/p/0', 1);
SELECT streamproc.sync();
INSERT INTO snk_events VALUES (1, '/p/0', 5), (2, '/p/1', 900), (10, '/p/2', 7), (NULL, '/p/1', 2);
INSERT INTO snk_oracle VALUES (1, '/p/0', 5), (2, '/p/1', 900), (10, '/p/2', 7), (NULL, '/p/1', 2);
SELECT streamproc.sync();
SELECT snk_caught_up('users_out');
SELECT sink, view, topic, state, position = log_position AS produced_all, lag,
       messages = log_position AS one_message_per_change, last_error
  FROM streamproc.stat_sinks;
CREATE TEMP TABLE users_msgs AS SELECT * FROM snk_read('users_out');
-- Every change once, in order within each partition.
SELECT count(*) AS messages, count(DISTINCT pos) AS positions, min(pos), max(pos)
  FROM users_msgs;
SELECT count(*) AS partitions_out_of_order
  FROM (SELECT part, pos, lag(pos) OVER (PARTITION BY part ORDER BY pos) AS prev FROM users_msgs) x
 WHERE prev IS NOT NULL AND prev >= pos;
-- The messages are the change log: key, new row (null: a tombstone).
SELECT count(*) AS differ
  FROM users_msgs m JOIN streamproc.changes c ON c.view = 'snk_users'::regclass AND c.position = m.pos
 WHERE m.key IS DISTINCT FROM c.key->>0 OR m.value::jsonb IS DISTINCT FROM c.new;
-- A key's messages stay in one partition (murmur2, as Kafka's clients),
-- the null key's too.
SELECT count(*) AS keys_in_two_partitions
  FROM (SELECT key FROM users_msgs GROUP BY key HAVING count(DISTINCT part) > 1) x;
SELECT count(*) AS null_key_messages FROM users_msgs WHERE key IS NULL;
-- The tombstone of group 2, which left the view.
SELECT key, value FROM users_msgs WHERE pos = (SELECT max(pos) FROM users_msgs WHERE key = '2');
-- The topic, compacted by key, is the view, which is the batch query.
WITH latest AS (
    SELECT DISTINCT ON (key) key, value FROM users_msgs ORDER BY key, pos DESC
)
SELECT (SELECT count(*) FROM latest WHERE value IS NOT NULL) AS topic_rows,
       (SELECT count(*) FROM (
            (SELECT value::jsonb FROM latest WHERE value IS NOT NULL
             EXCEPT ALL SELECT to_jsonb(v) FROM snk_users v)
            UNION ALL
            (SELECT to_jsonb(v) FROM snk_users v
             EXCEPT ALL SELECT value::jsonb FROM latest WHERE value IS NOT NULL)) d) AS topic_vs_view,
       (SELECT count(*) FROM (
            (SELECT to_jsonb(v) FROM snk_users v
             EXCEPT ALL SELECT to_jsonb(o) FROM (SELECT user_id, count(*) AS n, sum(ms) AS total
                                                   FROM snk_oracle GROUP BY user_id HAVING sum(ms) < 900) o)
            UNION ALL
            (SELECT to_jsonb(o) FROM (SELECT user_id, count(*) AS n, sum(ms) AS total
                                        FROM snk_oracle GROUP BY user_id HAVING sum(ms) < 900) o
             EXCEPT ALL SELECT to_jsonb(v) FROM snk_users v)) d) AS view_vs_batch;

-- csv, and a key of two columns.
INSERT INTO snk_events VALUES (1, 'a,"b"', 1);
INSERT INTO snk_oracle VALUES (1, 'a,"b"', 1);
SELECT streamproc.sync();
SELECT streamproc.create_kafka_sink('urls_csv', 'snk_urls', 'snk_urls',
                                    current_setting('streamproc_test.brokers'),
                                    format => 'csv', key => ARRAY['url', 'user_id']);
SELECT snk_caught_up('urls_csv');
SELECT key, value FROM snk_read('urls_csv') WHERE key LIKE '{"url" : "/p/0", "user_id" : 1}' OR key LIKE '%b%' ORDER BY pos;
SELECT count(*) AS messages, count(DISTINCT key) AS keys FROM snk_read('urls_csv');

-- An append view: each appended row once, no key unless named.
SELECT streamproc.create_kafka_sink('slow_out', 'snk_slow', 'snk_slow',
                                    current_setting('streamproc_test.brokers'), key => ARRAY['url']);
SELECT snk_caught_up('slow_out');
SELECT count(*) AS messages, count(DISTINCT pos) AS positions,
       (SELECT count(*) FROM snk_oracle WHERE ms >= 95) AS batch_rows
  FROM snk_read('slow_out');
SELECT key, value FROM snk_read('slow_out') ORDER BY value LIMIT 3;

-- A change larger than the producer's message.max.bytes: the sink says so
-- and retries; alter_kafka_sink() raises the limit and it goes on.
CREATE VIEW snk_wide WITH (continuous) AS
    SELECT user_id, repeat(url, 400) AS pad FROM snk_events WHERE ms = 42;
SELECT streamproc.create_kafka_sink('wide_out', 'snk_wide', 'snk_wide',
                                    current_setting('streamproc_test.brokers'),
                                    options => '{"message.max.bytes": 1000}');
INSERT INTO snk_events VALUES (7, '/p/wide', 42);
INSERT INTO snk_oracle VALUES (7, '/p/wide', 42);
SELECT streamproc.sync();
DO $$
BEGIN
    FOR i IN 1 .. 3000 LOOP
        EXIT WHEN EXISTS (SELECT 1 FROM streamproc.stat_sinks WHERE sink = 'wide_out' AND state = 'retrying');
        PERFORM pg_sleep(0.01);
    END LOOP;
END
$$;
SELECT sink, state, position, last_error FROM streamproc.stat_sinks WHERE sink = 'wide_out';
-- The second failure waits twice as long (1 s, then 2 s): the producer
-- starts and the first round fails, in one transaction.
CREATE TEMP TABLE snk_first AS SELECT last_error_at FROM streamproc.stat_sinks WHERE sink = 'wide_out';
DO $$
BEGIN
    FOR i IN 1 .. 3000 LOOP
        EXIT WHEN EXISTS (SELECT 1 FROM streamproc.stat_sinks s, snk_first f
                           WHERE s.sink = 'wide_out' AND s.state = 'retrying' AND s.last_error_at > f.last_error_at);
        PERFORM pg_sleep(0.01);
    END LOOP;
END
$$;
SELECT retry_at - last_error_at BETWEEN interval '1.9 s' AND interval '2.5 s' AS backed_off_twice_as_long
  FROM streamproc.stat_sinks WHERE sink = 'wide_out';
SELECT streamproc.alter_kafka_sink('wide_out', options => '{"message.max.bytes": 100000}');
SELECT streamproc.alter_kafka_sink('wide_out', options => '{"acks": 0}');
SELECT streamproc.alter_kafka_sink('wide_out', brokers => '');
SELECT streamproc.alter_kafka_sink('nope', brokers => 'x:1');
SELECT snk_caught_up('wide_out');
SELECT count(*) AS messages, min(length(value)) > 1000 AS large,
       (SELECT count(*) FROM snk_oracle WHERE ms = 42 AND url = '/p/wide') AS batch_rows
  FROM snk_read('wide_out');
SELECT options FROM streamproc.kafka_sinks WHERE name = 'wide_out';
SELECT streamproc.drop_kafka_sink('wide_out');
DROP VIEW snk_wide;

-- Pause: the sink holds its position and keeps what it has not produced
-- from the log's retention (which trims the rest); resume produces it.
SELECT streamproc.pause_sink('slow_out');
SELECT sink, state FROM streamproc.stat_sinks WHERE sink = 'slow_out';
SELECT streamproc.alter_change_log('snk_slow', retention => '1 millisecond');
INSERT INTO snk_events SELECT 3, '/p/9', 99 FROM generate_series(1, 5);
INSERT INTO snk_oracle SELECT 3, '/p/9', 99 FROM generate_series(1, 5);
SELECT pg_sleep(0.01);
SELECT streamproc.sync();
SELECT streamproc.sync();
SELECT l.trimmed_to, s.position, l.last_position - s.position AS waiting
  FROM streamproc.change_logs l JOIN streamproc.sinks s ON s.view = l.view WHERE s.name = 'slow_out';
SELECT streamproc.resume_sink('slow_out');
SELECT snk_caught_up('slow_out');
SELECT count(*) AS messages, count(DISTINCT pos) AS positions,
       (SELECT count(*) FROM snk_oracle WHERE ms >= 95) AS batch_rows
  FROM snk_read('slow_out');

-- A broker nobody listens on: the sink retries, says why, and the views go on.
SELECT streamproc.create_kafka_sink('nowhere', 'snk_users', 'snk_nowhere', '127.0.0.1:9',
                                    options => '{"socket.connection.setup.timeout.ms": 1000}');
DO $$
BEGIN
    FOR i IN 1 .. 3000 LOOP
        EXIT WHEN EXISTS (SELECT 1 FROM streamproc.stat_sinks WHERE sink = 'nowhere' AND state = 'retrying');
        PERFORM pg_sleep(0.01);
    END LOOP;
END
$$;
SELECT sink, state, last_error ~ 'could not read the partitions of topic "snk_nowhere"' AS says_why,
       retry_at > last_error_at AS backs_off
  FROM streamproc.stat_sinks WHERE sink = 'nowhere';
INSERT INTO snk_events VALUES (4, '/p/0', 1);
INSERT INTO snk_oracle VALUES (4, '/p/0', 1);
SELECT streamproc.sync();
SELECT n FROM snk_users WHERE user_id = 4;
SELECT snk_caught_up('users_out');

-- Tumbling windows with emit = 'updates': each change of a window, and a
-- tombstone when the view's retention drops the window.
CREATE VIEW snk_minutes WITH (continuous, retention = '5 minutes') AS
    SELECT w.window_start, count(*) AS n, sum(n) AS total
      FROM snk_timed, streamproc.tumble(ts, interval '1 minute') AS w GROUP BY 1;
INSERT INTO snk_timed VALUES ('2026-01-01 00:00:10', 1), ('2026-01-01 00:00:20', 2), ('2026-01-01 00:01:10', 3);
SELECT streamproc.sync();
SELECT streamproc.create_kafka_sink('minutes_out', 'snk_minutes', 'snk_minutes',
                                    current_setting('streamproc_test.brokers'));
INSERT INTO snk_timed VALUES ('2026-01-01 00:01:20', 4);
SELECT streamproc.sync();
INSERT INTO snk_timed VALUES ('2026-01-01 00:20:00', 5);
SELECT streamproc.sync();
SELECT snk_caught_up('minutes_out');
SELECT pos, key, value FROM snk_read('minutes_out') ORDER BY pos;
SELECT * FROM snk_minutes;
SELECT streamproc.drop_kafka_sink('minutes_out');
DROP VIEW snk_minutes;

-- Privileges: only the view's owner manages its sinks; everyone sees them
-- with secrets masked.
SELECT streamproc.create_kafka_sink('masked', 'snk_urls', 'snk_masked', '127.0.0.1:9',
                                    options => '{"sasl.password": "hunter2", "client.id": "x"}');
SELECT streamproc.pause_sink('masked');
CREATE ROLE snk_other;
SET ROLE snk_other;
SELECT name, options FROM streamproc.kafka_sinks WHERE name = 'masked';
SELECT * FROM streamproc.sinks;
SELECT streamproc.drop_kafka_sink('masked');
SELECT streamproc.pause_sink('users_out');
SELECT streamproc.create_kafka_sink('mine', 'snk_urls', 'x', 'localhost:9');
RESET ROLE;
DROP ROLE snk_other;

-- Drop: the sink goes, the log stays; DROP VIEW takes its sinks along.
SELECT streamproc.drop_kafka_sink('nowhere');
SELECT streamproc.drop_kafka_sink('masked');
SELECT streamproc.drop_kafka_sink('urls_csv');
SELECT name FROM streamproc.sinks ORDER BY name;
SELECT count(*) FROM streamproc.change_logs WHERE view = 'snk_urls'::regclass;
DROP VIEW snk_slow;
SELECT streamproc.sync();
SELECT name FROM streamproc.sinks ORDER BY name;
SELECT streamproc.drop_kafka_sink('users_out');

DROP VIEW snk_users, snk_urls, snk_updates;
DROP FOREIGN TABLE snk_events, snk_timed;
DROP TABLE snk_oracle;
DROP FUNCTION snk_caught_up(text);
DROP FUNCTION snk_read(text);
