--
-- Deduplication by key: the stream options dedup_key and dedup_window.
-- Each view is compared with its query run as a batch over the distinct
-- events (the oracle table keeps every copy, dedup_oracle_distinct one per
-- key); the copies of a key are equal, so which one wins does not matter.
--

-- Options are checked.
CREATE FOREIGN TABLE dd_bad (id int, v int) SERVER streamproc OPTIONS (dedup_key '');
CREATE FOREIGN TABLE dd_bad (id int, v int) SERVER streamproc OPTIONS (dedup_key 'id,');
CREATE FOREIGN TABLE dd_bad (id int, v int) SERVER streamproc OPTIONS (dedup_key 'nope');
CREATE FOREIGN TABLE dd_bad (id int, v int) SERVER streamproc OPTIONS (dedup_key 'id', dedup_window '1 month');
CREATE FOREIGN TABLE dd_bad (id int, v int) SERVER streamproc OPTIONS (dedup_key 'id', dedup_window '0 seconds');
CREATE FOREIGN TABLE dd_bad (id int, v int) SERVER streamproc OPTIONS (dedup_window '1 hour');
CREATE FOREIGN TABLE dd_bad (id int, v int) SERVER streamproc OPTIONS (dedup_key 'id', event_time 'v');

-- A stream with a two-column key; the oracle keeps every copy.
CREATE FOREIGN TABLE dd_orders (shop text, order_no int, amount int, note text)
    SERVER streamproc OPTIONS (dedup_key 'shop, order_no', dedup_window '1 day');
CREATE TABLE dd_orders_oracle (shop text, order_no int, amount int, note text);
CREATE VIEW dd_orders_distinct AS
    SELECT DISTINCT ON (shop, order_no) * FROM dd_orders_oracle
     WHERE shop IS NOT NULL AND order_no IS NOT NULL
    UNION ALL
    SELECT * FROM dd_orders_oracle WHERE shop IS NULL OR order_no IS NULL;

CREATE VIEW dd_per_shop WITH (continuous) AS
    SELECT shop, count(*) AS n, sum(amount) AS total FROM dd_orders GROUP BY shop;
CREATE VIEW dd_big WITH (continuous) AS
    SELECT shop, order_no, amount FROM dd_orders WHERE amount >= 50;
CREATE VIEW dd_three WITH (continuous) AS
    SELECT w.window_id, shop, count(*) AS n FROM dd_orders, streamproc.count_window(3) AS w
     GROUP BY w.window_id, shop;

CREATE FUNCTION dd_put(rows text) RETURNS void LANGUAGE plpgsql AS $$
BEGIN
    EXECUTE format('INSERT INTO dd_orders VALUES %s', rows);
    EXECUTE format('INSERT INTO dd_orders_oracle VALUES %s', rows);
END
$$;

CREATE VIEW dd_check AS
    SELECT 'dd_per_shop' AS view,
           (SELECT count(*) FROM ((SELECT shop, count(*) AS n, sum(amount) AS total FROM dd_orders_distinct GROUP BY shop)
                                  EXCEPT ALL (SELECT * FROM dd_per_shop)) d) AS missing,
           (SELECT count(*) FROM ((SELECT * FROM dd_per_shop)
                                  EXCEPT ALL (SELECT shop, count(*), sum(amount) FROM dd_orders_distinct GROUP BY shop)) d) AS extra
    UNION ALL
    SELECT 'dd_big',
           (SELECT count(*) FROM ((SELECT shop, order_no, amount FROM dd_orders_distinct WHERE amount >= 50)
                                  EXCEPT ALL (SELECT * FROM dd_big)) d),
           (SELECT count(*) FROM ((SELECT * FROM dd_big)
                                  EXCEPT ALL (SELECT shop, order_no, amount FROM dd_orders_distinct WHERE amount >= 50)) d)
    UNION ALL
    SELECT 'dd_three', 0, 0 WHERE (SELECT sum(n) FROM dd_three) = (SELECT count(*) FROM dd_orders_distinct);

-- Copies within one statement, across statements, and keys with a NULL
-- (never duplicates, as in a UNIQUE constraint).
SELECT dd_put($$('a', 1, 10, 'x'), ('a', 1, 10, 'x'), ('a', 2, 60, 'y'), ('b', 1, 70, 'z')$$);
SELECT dd_put($$('a', 1, 10, 'x'), ('b', 1, 70, 'z'), (NULL, 1, 5, 'n'), (NULL, 1, 5, 'n'), ('c', NULL, 80, 'm'), ('c', NULL, 80, 'm')$$);
SELECT streamproc.sync();
SELECT * FROM dd_per_shop ORDER BY shop;
SELECT * FROM dd_big ORDER BY shop, order_no, amount;
SELECT * FROM dd_check ORDER BY view;
SELECT dedup_keys, duplicates FROM streamproc.stat_streams WHERE stream = 'dd_orders'::regclass;
-- The durable claims (a key may have several rows: two workers that read
-- its event may both write it).
SELECT count(DISTINCT key) FROM streamproc.dedup_keys WHERE stream = 'dd_orders'::regclass;

-- A rolled-back insert claims nothing: its key counts when it comes back.
BEGIN;
INSERT INTO dd_orders VALUES ('d', 1, 99, 'rolled back');
ROLLBACK;
BEGIN;
INSERT INTO dd_orders VALUES ('d', 2, 98, 'savepoint');
SAVEPOINT s;
INSERT INTO dd_orders VALUES ('d', 3, 97, 'rolled back to savepoint');
ROLLBACK TO SAVEPOINT s;
COMMIT;
INSERT INTO dd_orders_oracle VALUES ('d', 2, 98, 'savepoint');
SELECT streamproc.sync();
SELECT dd_put($$('d', 1, 99, 'again'), ('d', 3, 97, 'again')$$);
SELECT streamproc.sync();
SELECT * FROM dd_per_shop WHERE shop = 'd';
SELECT * FROM dd_check ORDER BY view;

-- Many copies of many keys, in one COPY-sized insert and its repetition:
-- the rows spread over every log shard, so every worker sees copies.
SELECT dd_put(string_agg(format('(%L, %s, %s, NULL)', 's' || (g % 5), g % 3000, g % 100), ', '))
  FROM generate_series(1, 9000) g;
SELECT dd_put(string_agg(format('(%L, %s, %s, NULL)', 's' || (g % 5), g % 3000, g % 100), ', '))
  FROM generate_series(1, 9000) g;
SELECT streamproc.sync();
SELECT * FROM dd_check ORDER BY view;
SELECT sum(n) AS events, (SELECT count(*) FROM dd_orders_distinct) AS distinct_events FROM dd_per_shop;
SELECT duplicates FROM streamproc.stat_streams WHERE stream = 'dd_orders'::regclass;

-- The key and the event time cannot change under the views' queries; the
-- window can.
ALTER FOREIGN TABLE dd_orders OPTIONS (SET dedup_key 'order_no');
ALTER FOREIGN TABLE dd_orders OPTIONS (DROP dedup_key);
ALTER FOREIGN TABLE dd_orders DROP COLUMN order_no;
ALTER FOREIGN TABLE dd_orders OPTIONS (SET dedup_window '2 days');
ALTER FOREIGN TABLE dd_orders OPTIONS (DROP dedup_window);
SELECT dd_put($$('a', 1, 10, 'x'), ('e', 1, 1, 'new')$$);
SELECT streamproc.sync();
SELECT * FROM dd_check ORDER BY view;

-- Only the ingest workers run streamproc._dedup().
SELECT streamproc._dedup(0, '(0,1)', '1', NULL, 1);

-- Without views the key can change: the keys seen so far are forgotten.
DROP VIEW dd_check;
DROP VIEW dd_per_shop, dd_big, dd_three;
ALTER FOREIGN TABLE dd_orders OPTIONS (SET dedup_key 'shop');
SELECT count(*) FROM streamproc.dedup_keys WHERE stream = 'dd_orders'::regclass;
CREATE VIEW dd_per_shop WITH (continuous) AS
    SELECT shop, count(*) AS n FROM dd_orders GROUP BY shop;
SELECT dd_put($$('a', 1, 10, 'x'), ('a', 2, 10, 'x'), ('z', 1, 10, 'x')$$);
SELECT streamproc.sync();
SELECT * FROM dd_per_shop ORDER BY shop;

-- With event time, a windowed view over the distinct events.
CREATE FOREIGN TABLE dd_pings (id int, host text, ts timestamptz)
    SERVER streamproc OPTIONS (event_time 'ts', dedup_key 'id', dedup_window '1 hour');
CREATE VIEW dd_pings_per_minute WITH (continuous) AS
    SELECT w.window_start, host, count(*) AS n
      FROM dd_pings, streamproc.tumble(ts, interval '1 minute') AS w
     GROUP BY w.window_start, host;
INSERT INTO dd_pings SELECT g % 50, 'h' || (g % 50 % 3), '2026-01-01 00:00:00+00'::timestamptz + (g % 50) * interval '10 seconds'
  FROM generate_series(1, 200) g;
SELECT streamproc.sync();
SELECT window_start, host, n FROM dd_pings_per_minute ORDER BY 1, 2;
SELECT sum(n) FROM dd_pings_per_minute;

-- Keys of any size: 100 kB and 1 MB keys are claimed and their copies
-- dropped (the claims are durable: the table holds them whole); the window
-- can change while events come in.
CREATE FOREIGN TABLE dd_big_keys (k text, v int) SERVER streamproc OPTIONS (dedup_key 'k');
CREATE VIEW dd_big_keys_n WITH (continuous) AS SELECT count(*) AS n, sum(v) AS s FROM dd_big_keys;
INSERT INTO dd_big_keys SELECT repeat('x', 100000) || g % 3, 1 FROM generate_series(1, 9) g;
INSERT INTO dd_big_keys SELECT repeat('y', 1000000), 1 FROM generate_series(1, 2);
SELECT streamproc.sync();
SELECT * FROM dd_big_keys_n;
SELECT dedup_keys, duplicates FROM streamproc.stat_streams WHERE stream = 'dd_big_keys'::regclass;
SELECT count(DISTINCT key), max(length(key)) > 1000000 AS whole
  FROM streamproc.dedup_keys WHERE stream = 'dd_big_keys'::regclass;
ALTER FOREIGN TABLE dd_big_keys OPTIONS (ADD dedup_window '5 minutes');
INSERT INTO dd_big_keys SELECT repeat('x', 100000) || g % 3, 1 FROM generate_series(1, 3) g;
INSERT INTO dd_big_keys VALUES (repeat('y', 1000000), 1), ('z', 1);
SELECT streamproc.sync();
SELECT * FROM dd_big_keys_n;
DROP FOREIGN TABLE dd_big_keys CASCADE;

-- Dropping a stream forgets its keys.
DROP FOREIGN TABLE dd_orders CASCADE;
DROP FOREIGN TABLE dd_pings CASCADE;
SELECT count(*) FROM streamproc.dedup_keys;
DROP FUNCTION dd_put(text);
DROP TABLE dd_orders_oracle CASCADE;
