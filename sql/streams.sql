--
-- Streams: foreign tables on server streamproc whose inserts append to a
-- log table, streamproc.log_<stream oid>.
--
-- The ingest workers consume the logs of streams that continuous views read
-- and trim them at every checkpoint, and a stream that no view reads
-- discards its events.  So each stream whose log this test inspects has a
-- continuous view, and the test reads log rows (as superuser) only inside
-- the transaction that inserted them: uncommitted rows are invisible to the
-- workers, so nothing is trimmed under the test.
--
CREATE SCHEMA stream_test;
SET search_path = stream_test, public;

-- The wrapper and its server come with the extension.
SELECT fdwname, fdwhandler::regproc, fdwvalidator::regproc
  FROM pg_foreign_data_wrapper WHERE fdwname = 'streamproc';
SELECT srvname, has_server_privilege('public', oid, 'USAGE') AS public_usage
  FROM pg_foreign_server WHERE srvname = 'streamproc';

CREATE FOREIGN TABLE clicks (
    user_id int, url text, amount numeric(10,2), ts timestamptz
) SERVER streamproc;

CREATE VIEW clicks_count WITH (continuous) AS SELECT count(*) FROM clicks;

-- The catalog row, and the log's columns: the stream's plus "$xid".
SELECT stream, log::text = 'streamproc.log_' || stream::oid AS log_named_after_stream
  FROM streamproc.streams;
SELECT log AS clicks_log FROM streamproc.streams WHERE stream = 'clicks'::regclass \gset
SELECT attname, format_type(atttypid, atttypmod), attnotnull, atthasdef
  FROM pg_attribute
 WHERE attrelid = :'clicks_log'::regclass AND attnum > 0 AND NOT attisdropped
 ORDER BY attnum;
-- No constraints, no indexes, owned by the stream's owner, no privileges
-- for anyone else, and an internal part of the stream.
SELECT (SELECT count(*) FROM pg_constraint WHERE conrelid = :'clicks_log'::regclass) AS constraints,
       (SELECT count(*) FROM pg_index WHERE indrelid = :'clicks_log'::regclass) AS indexes,
       (SELECT relowner = (SELECT relowner FROM pg_class WHERE oid = 'clicks'::regclass)
          FROM pg_class WHERE oid = :'clicks_log'::regclass) AS same_owner,
       (SELECT relacl IS NULL FROM pg_class WHERE oid = :'clicks_log'::regclass) AS default_acl,
       (SELECT deptype FROM pg_depend
         WHERE classid = 'pg_class'::regclass AND objid = :'clicks_log'::regclass
           AND refobjid = 'clicks'::regclass) AS deptype;

--
-- Writing: every way of inserting appends to the log.
--
BEGIN;
INSERT INTO clicks VALUES (1, '/a', 9.5, '2024-01-01 00:00:00+00');
INSERT INTO clicks VALUES (2, '/b', 1, '2024-01-01 00:00:01+00'),
                          (3, '/c', 2, '2024-01-01 00:00:02+00'),
                          (4, NULL, NULL, NULL);
INSERT INTO clicks (url, user_id) VALUES ('/only-two', 5);
INSERT INTO clicks SELECT 100 + g, '/gen', g, '2024-01-02 00:00:00+00'
  FROM generate_series(1, 250) g;
PREPARE ins(int, text) AS INSERT INTO clicks (user_id, url) VALUES ($1, $2);
EXECUTE ins(6, '/prepared');
EXECUTE ins(7, '/prepared');
DEALLOCATE ins;
COPY clicks FROM STDIN;
8	/copy-text	3.25	2024-01-03 00:00:00+00
9	\N	\N	\N
\.
COPY clicks (ts, user_id, url) FROM STDIN (FORMAT csv, HEADER true);
ts,user_id,url
2024-01-04 00:00:00+00,10,"/copy,csv"
,11,
\.
-- RETURNING shows the events as inserted.
INSERT INTO clicks VALUES (12, '/ret', 1.5, NULL), (13, '/ret', 2.5, NULL)
  RETURNING user_id, url, amount;

SELECT user_id, url, amount, ts FROM :clicks_log
 WHERE "$xid" = pg_current_xact_id() AND (user_id < 100 OR user_id IS NULL)
 ORDER BY user_id;
SELECT count(*), min(user_id), max(user_id), sum(amount)
  FROM :clicks_log WHERE "$xid" = pg_current_xact_id() AND url = '/gen';
SELECT count(*) AS rows_of_this_xact FROM :clicks_log
 WHERE "$xid" = pg_current_xact_id();
COMMIT;

-- "$xid" is the inserting top-level transaction, also in subtransactions.
BEGIN;
INSERT INTO clicks (user_id) VALUES (20);
SAVEPOINT s1;
INSERT INTO clicks (user_id) SELECT 21 FROM generate_series(1, 3);
RELEASE SAVEPOINT s1;
SELECT count(*) AS rows_of_this_xact, bool_and("$xid" = pg_current_xact_id()) AS xid_is_top
  FROM :clicks_log WHERE "$xid" = pg_current_xact_id();
SELECT count(*) AS rows_20_21, count(DISTINCT "$xid") AS xids
  FROM :clicks_log WHERE user_id IN (20, 21);
COMMIT;

-- Each statement outside a block is its own transaction.  An AFTER
-- STATEMENT trigger on the stream records, in the inserting transaction,
-- the log rows of that transaction.
CREATE TABLE stmt_xids (xid xid8, events bigint);
CREATE FUNCTION note_xid() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    EXECUTE format('INSERT INTO stream_test.stmt_xids SELECT "$xid", count(*)'
                   ' FROM %s WHERE "$xid" = pg_current_xact_id() GROUP BY 1',
                   TG_ARGV[0]);
    RETURN NULL;
END $$;
CREATE TRIGGER note_xid AFTER INSERT ON clicks
    FOR EACH STATEMENT EXECUTE FUNCTION note_xid(:'clicks_log');
INSERT INTO clicks (user_id) VALUES (1);
INSERT INTO clicks (user_id) VALUES (2), (3), (4);
SELECT count(*) AS statements, count(DISTINCT xid) AS xids, sum(events) AS events
  FROM stmt_xids;
DROP TRIGGER note_xid ON clicks;
DROP FUNCTION note_xid();
DROP TABLE stmt_xids;

-- A rollback leaves nothing.
BEGIN;
INSERT INTO clicks (user_id) VALUES (30);
COPY clicks (user_id) FROM STDIN;
31
\.
SELECT user_id FROM :clicks_log WHERE "$xid" = pg_current_xact_id() ORDER BY 1;
ROLLBACK;
SELECT count(*) AS rolled_back_rows FROM :clicks_log WHERE user_id IN (30, 31);
-- A rolled-back savepoint removes exactly its rows.
BEGIN;
INSERT INTO clicks (user_id) VALUES (40);
SAVEPOINT s1;
INSERT INTO clicks (user_id) VALUES (41), (42);
SELECT user_id FROM :clicks_log WHERE "$xid" = pg_current_xact_id() ORDER BY 1;
ROLLBACK TO SAVEPOINT s1;
SELECT user_id FROM :clicks_log WHERE "$xid" = pg_current_xact_id() ORDER BY 1;
INSERT INTO clicks (user_id) VALUES (43);
SAVEPOINT s2;
INSERT INTO clicks (user_id) VALUES (44);
RELEASE SAVEPOINT s2;
SELECT user_id FROM :clicks_log WHERE "$xid" = pg_current_xact_id() ORDER BY 1;
COMMIT;

-- INSERT ... ON CONFLICT is refused.
INSERT INTO clicks (user_id) VALUES (50) ON CONFLICT DO NOTHING;

--
-- Reading: a stream is read through a continuous view.
--
SELECT * FROM clicks;
SELECT count(*) FROM clicks;
SELECT c.url FROM clicks c JOIN pg_class p ON p.oid = c.user_id;
EXPLAIN (COSTS OFF) SELECT * FROM clicks;
UPDATE clicks SET url = '/x';
DELETE FROM clicks;
COPY clicks TO STDOUT;
COPY (SELECT url FROM clicks) TO STDOUT;
TRUNCATE clicks;
-- A plain view over a stream is insertable, not readable.
CREATE VIEW clicks_v AS SELECT user_id, url FROM clicks;
BEGIN;
INSERT INTO clicks_v VALUES (60, '/through-view');
SELECT user_id, url FROM :clicks_log WHERE "$xid" = pg_current_xact_id();
COMMIT;
SELECT * FROM clicks_v;
DROP VIEW clicks_v;

-- Streams take only the event-time options, with valid intervals.
CREATE FOREIGN TABLE bad_opt (a int) SERVER streamproc OPTIONS (partitions '4');
CREATE FOREIGN TABLE bad_opt (a int) SERVER streamproc OPTIONS (watermark_delay 'soon');
CREATE FOREIGN TABLE bad_opt (a int) SERVER streamproc OPTIONS (watermark_delay '-1 second');
CREATE FOREIGN TABLE bad_opt (a int) SERVER streamproc OPTIONS (idle_timeout '0');
CREATE FOREIGN TABLE bad_opt (a int) SERVER streamproc OPTIONS (idle_timeout '1 month');
CREATE FOREIGN TABLE bad_opt (a int) SERVER streamproc OPTIONS (event_time '');
CREATE FOREIGN TABLE bad_col_opt (a int OPTIONS (x '1')) SERVER streamproc;
CREATE SERVER bad_server FOREIGN DATA WRAPPER streamproc OPTIONS (host 'x');
-- "$xid" is reserved.
CREATE FOREIGN TABLE bad_name (a int, "$xid" int) SERVER streamproc;
-- Streams are neither partitions nor inheritance children.
CREATE TABLE parent_t (a int);
CREATE FOREIGN TABLE bad_child () INHERITS (parent_t) SERVER streamproc;
CREATE TABLE parted (a int) PARTITION BY LIST (a);
CREATE FOREIGN TABLE bad_part PARTITION OF parted FOR VALUES IN (1) SERVER streamproc;
CREATE FOREIGN TABLE loose (a int) SERVER streamproc;
ALTER TABLE parted ATTACH PARTITION loose FOR VALUES IN (1);
ALTER FOREIGN TABLE loose INHERIT parent_t;
DROP TABLE parent_t, parted;
DROP FOREIGN TABLE loose;
SELECT count(*) AS streams FROM streamproc.streams;

--
-- At most 1598 columns: the log has two more, "$xid" and "$shard", and
-- tables have at most 1600.  Dropped columns count, as they do for tables.  The long
-- statements are built by wide_sql() and run in DO blocks whose context
-- (the statement) is not shown.
--
CREATE FUNCTION wide_sql(stmt text, n int) RETURNS text LANGUAGE sql AS $$
    SELECT format(stmt, string_agg(format('c%s int', i), ', ' ORDER BY i))
      FROM generate_series(1, n) i
$$;
\set SHOW_CONTEXT never
DO $$ BEGIN EXECUTE wide_sql('CREATE FOREIGN TABLE wide (%s) SERVER streamproc', 1598); END $$;
SELECT count(*) AS log_columns FROM pg_attribute
 WHERE attrelid = (SELECT log FROM streamproc.streams WHERE stream = 'wide'::regclass)
   AND attnum > 0 AND NOT attisdropped;
ALTER FOREIGN TABLE wide ADD COLUMN one_more int;
\echo :LAST_ERROR_SQLSTATE
ALTER FOREIGN TABLE wide ADD COLUMN IF NOT EXISTS c2 int;
ALTER FOREIGN TABLE wide DROP COLUMN c1;
ALTER FOREIGN TABLE wide ADD COLUMN c1 int;
\echo :LAST_ERROR_SQLSTATE
DROP FOREIGN TABLE wide;
DO $$ BEGIN EXECUTE wide_sql('CREATE FOREIGN TABLE wide (%s) SERVER streamproc', 1599); END $$;
\echo :LAST_ERROR_SQLSTATE
DO $$ BEGIN EXECUTE wide_sql('CREATE FOREIGN TABLE wide (%s) SERVER streamproc', 1600); END $$;
\echo :LAST_ERROR_SQLSTATE
-- Beyond 1600, the stream's limit is what is reported.
DO $$ BEGIN EXECUTE wide_sql('CREATE FOREIGN TABLE wide (%s) SERVER streamproc', 1601); END $$;
\echo :LAST_ERROR_SQLSTATE
\set SHOW_CONTEXT errors
DROP FUNCTION wide_sql(text, int);
SELECT count(*) AS streams FROM streamproc.streams;

--
-- ALTER: the log follows the stream's columns.
--
-- ADD COLUMN works while views read the stream; rows inserted before it
-- read NULL in the new column.
BEGIN;
INSERT INTO clicks VALUES (69, '/before', 9.5, '2024-01-01 00:00:00+00');
ALTER FOREIGN TABLE clicks ADD COLUMN country varchar(2) COLLATE "C";
INSERT INTO clicks (user_id, country) VALUES (70, 'fr');
SELECT attname, format_type(atttypid, atttypmod), attcollation::regcollation
  FROM pg_attribute
 WHERE attrelid = :'clicks_log'::regclass AND attnum > 0 AND NOT attisdropped
 ORDER BY attnum;
SELECT user_id, url, country FROM :clicks_log
 WHERE "$xid" = pg_current_xact_id() ORDER BY 1;
COMMIT;
-- Without views the rest works.  ALTER TABLE works on foreign tables too,
-- several subcommands at once; rows already in the log are converted.
-- (The view is dropped and created again in the same transaction; in
-- between, the stream has no view and discards its events.)
BEGIN;
INSERT INTO clicks VALUES (68, '/before', 9.5, '2024-01-01 00:00:00+00', 'de');
DROP VIEW clicks_count;
ALTER TABLE clicks DROP COLUMN ts, ADD COLUMN ts timestamp, ALTER COLUMN amount TYPE numeric;
ALTER FOREIGN TABLE clicks RENAME COLUMN url TO path;
INSERT INTO clicks (user_id, path) VALUES (73, '/no-view');
CREATE VIEW clicks_count WITH (continuous) AS SELECT count(*) FROM clicks;
INSERT INTO clicks (user_id, path, amount, ts) VALUES (71, '/renamed', 1.125, '2024-05-01 10:00');
SELECT attname, format_type(atttypid, atttypmod)
  FROM pg_attribute
 WHERE attrelid = :'clicks_log'::regclass AND attnum > 0 AND NOT attisdropped
 ORDER BY attnum;
SELECT user_id, path, amount, ts, country FROM :clicks_log
 WHERE "$xid" = pg_current_xact_id() ORDER BY 1;
COMMIT;
-- Renaming the stream or moving it to another schema keeps its log, also
-- while views read it.
BEGIN;
ALTER FOREIGN TABLE clicks RENAME TO clicks2;
CREATE SCHEMA stream_test2;
ALTER FOREIGN TABLE clicks2 SET SCHEMA stream_test2;
INSERT INTO stream_test2.clicks2 (user_id) VALUES (72);
SELECT stream, log = :'clicks_log'::regclass AS same_log FROM streamproc.streams;
ALTER FOREIGN TABLE stream_test2.clicks2 SET SCHEMA stream_test;
ALTER FOREIGN TABLE clicks2 RENAME TO clicks;
SELECT user_id FROM :clicks_log WHERE "$xid" = pg_current_xact_id();
COMMIT;

-- With a continuous view, only ADD COLUMN is allowed.
ALTER FOREIGN TABLE clicks DROP COLUMN country;
ALTER FOREIGN TABLE clicks RENAME COLUMN path TO url;
ALTER FOREIGN TABLE clicks ALTER COLUMN user_id TYPE bigint;
ALTER FOREIGN TABLE clicks ADD COLUMN referrer text;
SELECT attname FROM pg_attribute
 WHERE attrelid = :'clicks_log'::regclass AND attnum > 0 AND NOT attisdropped
 ORDER BY attnum;

-- The log and its shards cannot be changed or dropped on their own (the
-- error names the log, whose name varies: show only the message's shape).
DO $$
DECLARE
    log regclass := (SELECT log FROM streamproc.streams WHERE stream = 'stream_test.clicks'::regclass);
    shard regclass := (SELECT shard_logs[2] FROM streamproc.streams WHERE stream = 'stream_test.clicks'::regclass);
    stmt text;
BEGIN
    FOREACH stmt IN ARRAY ARRAY['DROP TABLE %1$s', 'ALTER TABLE %1$s DROP COLUMN url',
                                'ALTER TABLE %1$s ADD COLUMN z int',
                                'ALTER TABLE %1$s RENAME COLUMN url TO z',
                                'ALTER TABLE %1$s DETACH PARTITION %2$s',
                                'DROP TABLE %2$s', 'ALTER TABLE %2$s OWNER TO CURRENT_USER']
    LOOP
        BEGIN
            EXECUTE format(stmt, log, shard);
            RAISE NOTICE '%: succeeded', stmt;
        EXCEPTION WHEN OTHERS THEN
            RAISE NOTICE '%: %', stmt, regexp_replace(SQLERRM, 'log_\d+', 'log_N', 'g');
        END;
    END LOOP;
END $$;

--
-- Privileges.
--
CREATE ROLE regress_stream_owner;
CREATE ROLE regress_stream_other;
CREATE SCHEMA stream_owned AUTHORIZATION regress_stream_owner;
SET ROLE regress_stream_owner;
CREATE FOREIGN TABLE stream_owned.events (id int, body text) SERVER streamproc;
CREATE VIEW stream_owned.events_count WITH (continuous) AS
    SELECT count(*) FROM stream_owned.events;
RESET ROLE;
SELECT log AS events_log FROM streamproc.streams
 WHERE stream = 'stream_owned.events'::regclass \gset
SELECT pg_get_userbyid(relowner) AS log_owner FROM pg_class WHERE oid = :'events_log'::regclass;
BEGIN;
SET LOCAL ROLE regress_stream_owner;
INSERT INTO stream_owned.events VALUES (1, 'one'), (2, 'two');
ALTER FOREIGN TABLE stream_owned.events ADD COLUMN extra int;
INSERT INTO stream_owned.events VALUES (3, 'three', 3);
RESET ROLE;
SELECT id, body, extra FROM :events_log WHERE "$xid" = pg_current_xact_id() ORDER BY id;
COMMIT;
-- Others: no INSERT on the stream, no access to the log.
GRANT USAGE ON SCHEMA stream_owned TO regress_stream_other;
SET ROLE regress_stream_other;
INSERT INTO stream_owned.events VALUES (4, 'four');
ALTER FOREIGN TABLE stream_owned.events ADD COLUMN nope int;
RESET ROLE;
SELECT has_table_privilege('regress_stream_other', log, 'SELECT') AS other_reads_log,
       has_table_privilege('regress_stream_other', log, 'INSERT') AS other_inserts_log
  FROM streamproc.streams WHERE stream = 'stream_owned.events'::regclass;
SELECT has_table_privilege('public', log, 'SELECT') AS public_reads_log
  FROM streamproc.streams;
-- INSERT granted on the stream is enough: the log is written without
-- checking its own privileges.
GRANT INSERT ON stream_owned.events TO regress_stream_other;
BEGIN;
SET LOCAL ROLE regress_stream_other;
INSERT INTO stream_owned.events (id, body) VALUES (4, 'four');
RESET ROLE;
SELECT id, body FROM :events_log WHERE "$xid" = pg_current_xact_id();
COMMIT;
-- The log follows the stream's owner.  (The view goes first: its owner
-- would lose access to the log.)
DROP VIEW stream_owned.events_count;
ALTER FOREIGN TABLE stream_owned.events OWNER TO regress_stream_other;
SELECT pg_get_userbyid(relowner) AS log_owner FROM pg_class WHERE oid = :'events_log'::regclass;

--
-- Dropping a stream removes its log and its catalog row.
--
SELECT count(*) AS streams FROM streamproc.streams;
DROP FOREIGN TABLE clicks;
DROP FOREIGN TABLE clicks CASCADE;
SELECT count(*) AS views FROM streamproc.views;
SELECT to_regclass(:'clicks_log') AS clicks_log_left;
SELECT stream FROM streamproc.streams;
-- Rolled back, a drop keeps both.
BEGIN;
DROP FOREIGN TABLE stream_owned.events;
SELECT count(*) AS streams_in_xact FROM streamproc.streams;
ROLLBACK;
SELECT stream, to_regclass(:'events_log') IS NOT NULL AS log_kept FROM streamproc.streams;
-- DROP SCHEMA ... CASCADE.
CREATE FOREIGN TABLE stream_owned.more (a int) SERVER streamproc;
DROP SCHEMA stream_owned CASCADE;
SELECT count(*) AS streams FROM streamproc.streams;
SELECT count(*) AS logs_left FROM pg_class
 WHERE relnamespace = 'streamproc'::regnamespace AND relname ~ '^log_\d+(_\d+)?$';
DROP ROLE regress_stream_owner;
DROP ROLE regress_stream_other;

--
-- Foreign tables of other wrappers are not streams.
--
CREATE EXTENSION file_fdw;
CREATE SERVER files FOREIGN DATA WRAPPER file_fdw;
CREATE FOREIGN TABLE not_a_stream (a int) SERVER files OPTIONS (filename '/dev/null');
ALTER FOREIGN TABLE not_a_stream ADD COLUMN b text;
ALTER FOREIGN TABLE not_a_stream RENAME COLUMN b TO c;
SELECT * FROM not_a_stream;
COPY not_a_stream TO STDOUT;
SELECT count(*) AS streams FROM streamproc.streams;
DROP FOREIGN TABLE not_a_stream;
DROP EXTENSION file_fdw CASCADE;

--
-- A stream in a transaction that rolls back leaves nothing.
--
BEGIN;
CREATE FOREIGN TABLE gone (a int) SERVER streamproc;
INSERT INTO gone VALUES (1);
ROLLBACK;
SELECT count(*) AS streams FROM streamproc.streams;
SELECT count(*) AS logs_left FROM pg_class
 WHERE relnamespace = 'streamproc'::regnamespace AND relname ~ '^log_\d+(_\d+)?$';

-- A zero-column stream works (its events carry only "$xid").
CREATE FOREIGN TABLE ticks () SERVER streamproc;
CREATE VIEW ticks_count WITH (continuous) AS SELECT count(*) FROM ticks;
SELECT log AS ticks_log FROM streamproc.streams WHERE stream = 'ticks'::regclass \gset
BEGIN;
INSERT INTO ticks DEFAULT VALUES;
SELECT count(*) FROM :ticks_log WHERE "$xid" = pg_current_xact_id();
COMMIT;
DROP FOREIGN TABLE ticks CASCADE;

--
-- A stream that no continuous view reads discards its events: every way of
-- inserting succeeds and reports its rows, and the log stays empty (the
-- transaction does not even get an xid).  Each statement decides when it
-- starts, so a view created or dropped in the same transaction counts
-- from the next statement on, prepared statements included.
--
CREATE FOREIGN TABLE quiet (a int, b text) SERVER streamproc;
SELECT log AS quiet_log FROM streamproc.streams WHERE stream = 'quiet'::regclass \gset
BEGIN;
INSERT INTO quiet VALUES (1, 'one');
INSERT INTO quiet VALUES (2, 'two'), (3, 'three');
DO $$
DECLARE
    n bigint;
BEGIN
    INSERT INTO stream_test.quiet SELECT g, 'gen' FROM generate_series(1, 250) g;
    GET DIAGNOSTICS n = ROW_COUNT;
    RAISE NOTICE 'INSERT ... SELECT reported % rows', n;
END $$;
COPY quiet FROM STDIN;
4	copied
5	copied
\.
INSERT INTO quiet VALUES (6, 'ret') RETURNING *;
PREPARE ins_quiet(int, text) AS INSERT INTO quiet VALUES ($1, $2);
EXECUTE ins_quiet(7, 'prepared');
SELECT count(*) AS log_rows, pg_current_xact_id_if_assigned() IS NULL AS no_xid
  FROM :quiet_log;
CREATE VIEW quiet_count WITH (continuous) AS SELECT count(*) FROM quiet;
EXECUTE ins_quiet(8, 'kept');
INSERT INTO quiet VALUES (9, 'kept');
DROP VIEW quiet_count;
EXECUTE ins_quiet(10, 'discarded');
INSERT INTO quiet VALUES (11, 'discarded');
SELECT a, b FROM :quiet_log ORDER BY a;
ROLLBACK;
DEALLOCATE ins_quiet;
DROP FOREIGN TABLE quiet;

-- DROP EXTENSION needs CASCADE while streams exist, and then drops them
-- with their logs (rolled back here: later tests need the extension).
CREATE FOREIGN TABLE last_stream (a int) SERVER streamproc;
DROP EXTENSION streamproc;
BEGIN;
DROP EXTENSION streamproc CASCADE;
SELECT count(*) AS logs_left FROM pg_class
 WHERE relname ~ '^log_\d+(_\d+)?$' OR relname = 'last_stream';
ROLLBACK;
SELECT stream FROM streamproc.streams;
DROP FOREIGN TABLE last_stream;

DROP SCHEMA stream_test, stream_test2 CASCADE;
