--
-- Privileges: reading a view needs SELECT on it (also through read_view);
-- a view is maintained with its owner's privileges.
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

-- The owner reads its view; another role cannot, not even through read_view.
SET ROLE sp_owner;
SELECT * FROM sp_labels ORDER BY label;
SET ROLE sp_reader;
SELECT * FROM sp_labels;
SELECT count(*) FROM streamproc.read_view('sp_labels'::regclass::oid) AS s(g1 text, a1 bigint, a2 bigint);
RESET ROLE;
GRANT SELECT ON sp_labels TO sp_reader;
SET ROLE sp_reader;
SELECT * FROM sp_labels ORDER BY label;
-- read_view() checks the caller's column definition list against the view.
SELECT * FROM streamproc.read_view('sp_labels'::regclass::oid) AS s(g1 text, a1 bigint, a2 bigint) ORDER BY g1;
SELECT * FROM streamproc.read_view('sp_labels'::regclass::oid) AS s(g1 text, a1 text, a2 bigint);
SELECT * FROM streamproc.read_view('sp_labels'::regclass::oid) AS s(g1 text);
-- Reading the view does not give access to the table it joins.
SELECT * FROM sp_secret;
RESET ROLE;

-- Maintenance runs as the owner: once the owner loses SELECT on the joined
-- table, new events fail (and go to streamproc.errors); earlier results stay.
REVOKE SELECT ON sp_secret FROM sp_owner;
INSERT INTO sp_events VALUES (1, 1000);
SELECT streamproc.sync();
SELECT * FROM sp_labels ORDER BY label;
SELECT view, sqlstate, message, event FROM streamproc.errors WHERE view = 'sp_labels'::regclass;
GRANT SELECT ON sp_secret TO sp_owner;
INSERT INTO sp_events VALUES (1, 1);
SELECT streamproc.sync();
SELECT * FROM sp_labels ORDER BY label;

DROP FOREIGN TABLE sp_events CASCADE;
DROP TABLE sp_secret;
REVOKE CREATE ON SCHEMA public FROM sp_owner;
REVOKE USAGE ON FOREIGN SERVER streamproc FROM sp_owner;
DROP ROLE sp_owner;
DROP ROLE sp_reader;
