--
-- Privileges: reading a view needs SELECT on it (its groups table, which
-- the view reads as its owner, is not readable by others); a view is
-- maintained with its owner's privileges.
--
CREATE ROLE sp_owner;
CREATE ROLE sp_reader;
GRANT USAGE ON FOREIGN SERVER streamproc TO sp_owner;
GRANT CREATE ON SCHEMA public TO sp_owner;
CREATE TABLE sp_secret (id int PRIMARY KEY, label text);
INSERT INTO sp_secret VALUES (1, 'one'), (2, 'two');
GRANT SELECT ON sp_secret TO sp_owner;

SET ROLE sp_owner;
CREATE FOREIGN TABLE sp_events (id int, v int) SERVER streamproc;
CREATE VIEW sp_labels WITH (continuous) AS
    SELECT s.label, count(*) AS n, sum(e.v) AS total
      FROM sp_events e JOIN sp_secret s ON s.id = e.id GROUP BY s.label;
INSERT INTO sp_events VALUES (1, 10), (2, 20), (2, 5);
RESET ROLE;
SELECT streamproc.sync();

-- The owner reads its view and its groups table; another role neither.
-- (try() shows errors with the groups table's oid masked.)
SELECT format('streamproc.groups_%s', 'sp_labels'::regclass::oid) AS groups \gset
CREATE FUNCTION try(stmt text) RETURNS void LANGUAGE plpgsql AS $$
BEGIN
    EXECUTE stmt;
EXCEPTION WHEN OTHERS THEN
    RAISE NOTICE '%: %', SQLSTATE, regexp_replace(SQLERRM, '(groups|log)_\d+', '\1_<oid>', 'g');
END
$$;
GRANT EXECUTE ON FUNCTION try(text) TO PUBLIC;
SET ROLE sp_owner;
SELECT * FROM sp_labels ORDER BY label;
SELECT g1, a1, a2 FROM :groups ORDER BY g1;
SET ROLE sp_reader;
SELECT * FROM sp_labels;
SELECT try(format('SELECT count(*) FROM %s', :'groups'));
RESET ROLE;
GRANT SELECT ON sp_labels TO sp_reader;
SET ROLE sp_reader;
SELECT * FROM sp_labels ORDER BY label;
SELECT * FROM sp_labels WHERE label = 'two';
-- Reading the view gives access neither to its groups table nor to the
-- table it joins.
SELECT try(format('SELECT count(*) FROM %s', :'groups'));
SELECT * FROM sp_secret;
RESET ROLE;
-- The groups table cannot be written, altered or given away on its own; it
-- follows its view's owner.
SELECT try(format('INSERT INTO %s VALUES (''x'', 1, 1)', :'groups'));
SELECT try(format('ALTER FOREIGN TABLE %s OWNER TO sp_reader', :'groups'));
SELECT try(format('ALTER FOREIGN TABLE %s ADD COLUMN x int', :'groups'));
SELECT try(format('ALTER FOREIGN TABLE %s RENAME TO mine', :'groups'));
ALTER VIEW sp_labels OWNER TO sp_reader;
SELECT relowner::regrole FROM pg_class WHERE oid = :'groups'::regclass;
ALTER VIEW sp_labels OWNER TO sp_owner;
SELECT relowner::regrole FROM pg_class WHERE oid = :'groups'::regclass;

-- Maintenance runs as the owner: once the owner loses SELECT on the joined
-- table, the view stops (the fault is no event's: nothing is dead-lettered)
-- and sync() says so; earlier results stay and other views go on.
CREATE VIEW sp_count WITH (continuous) AS SELECT count(*) AS n FROM sp_events;
REVOKE SELECT ON sp_secret FROM sp_owner;
INSERT INTO sp_events VALUES (1, 1000);
SELECT streamproc.sync();
SELECT * FROM sp_labels ORDER BY label;
SELECT view, state, last_error FROM streamproc.stat_views
 WHERE view IN ('sp_labels'::regclass, 'sp_count'::regclass) ORDER BY view::text;
SELECT count(*) AS dead_letters FROM streamproc.errors WHERE view = 'sp_labels'::regclass;
-- Once the owner may read the table again, the next sync() retries the view
-- at once: the events it held back count, none twice.
GRANT SELECT ON sp_secret TO sp_owner;
INSERT INTO sp_events VALUES (1, 1);
SELECT streamproc.sync();
SELECT * FROM sp_labels ORDER BY label;
SELECT * FROM sp_count;
SELECT view, state, last_error FROM streamproc.stat_views WHERE view = 'sp_labels'::regclass;

-- A view's owner need not own the stream: SELECT on the stream is enough
-- (GRANT and REVOKE on a stream apply to its log, which the batches read).
CREATE ROLE sp_other;
GRANT CREATE ON SCHEMA public TO sp_other;
GRANT SELECT ON sp_events TO sp_other;
SET ROLE sp_other;
CREATE VIEW sp_other_n WITH (continuous) AS SELECT count(*) AS n, sum(v) AS total FROM sp_events;
RESET ROLE;
INSERT INTO sp_events VALUES (2, 7);
SELECT streamproc.sync();
SET ROLE sp_other;
SELECT * FROM sp_other_n;
RESET ROLE;
REVOKE SELECT ON sp_events FROM sp_other;
INSERT INTO sp_events VALUES (2, 8);
SELECT try('SELECT streamproc.sync()');
GRANT SELECT ON sp_events TO sp_other;
SELECT streamproc.sync();
SET ROLE sp_other;
SELECT * FROM sp_other_n;
RESET ROLE;
DROP VIEW sp_other_n;
REVOKE CREATE ON SCHEMA public FROM sp_other;
REVOKE SELECT ON sp_events FROM sp_other;
DROP ROLE sp_other;

-- A stopped view keeps the log's rows.  An append view of the same stream
-- that the workers load again meanwhile (the stream's options changed)
-- resumes at its own positions: it appends no row twice (it appended the
-- rows still in the log again before the fix).
CREATE VIEW sp_rows WITH (continuous) AS SELECT id, v FROM sp_events;
INSERT INTO sp_events VALUES (1, 100), (2, 200);
SELECT streamproc.sync();
REVOKE SELECT ON sp_secret FROM sp_owner;
INSERT INTO sp_events VALUES (1, 101), (2, 201);
SELECT try('SELECT streamproc.sync()');
ALTER FOREIGN TABLE sp_events OPTIONS (ADD watermark_delay '1 second');
INSERT INTO sp_events VALUES (2, 202);
SELECT try('SELECT streamproc.sync()');
SELECT * FROM sp_rows ORDER BY id, v;
GRANT SELECT ON sp_secret TO sp_owner;
SELECT streamproc.sync();
SELECT * FROM sp_rows ORDER BY id, v;
SELECT * FROM sp_labels ORDER BY label;

DROP FOREIGN TABLE sp_events CASCADE;
DROP FUNCTION try(text);
DROP TABLE sp_secret;
REVOKE CREATE ON SCHEMA public FROM sp_owner;
REVOKE USAGE ON FOREIGN SERVER streamproc FROM sp_owner;
DROP ROLE sp_owner;
DROP ROLE sp_reader;
