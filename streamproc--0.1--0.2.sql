/* streamproc--0.1--0.2.sql */

-- complain if script is sourced in psql, rather than via ALTER EXTENSION
\echo Use "ALTER EXTENSION streamproc UPDATE TO '0.2'" to load this file. \quit

-- 0.2: pg_dump and restore (src/restore.c).  A new installation runs
-- streamproc--0.1.sql and then this script, so that an update and a fresh
-- install cannot drift apart.  Neither file changes once released: every
-- later schema change is a new streamproc--A--B.sql.

-- References to views become regclass, which pg_dump writes as names: the
-- restored rows point at the restored objects (binary-compatible with oid,
-- so nothing is rewritten).  Aggregates and collations become names
-- (text[]): pg_upgrade refuses tables with reg* columns other than
-- regclass, regrole and regtype, since it does not keep the oids of
-- functions and collations; the engine reads them with regprocedurein()
-- and regcollationin().
ALTER TABLE streamproc.state_runs ALTER COLUMN view TYPE regclass;
ALTER TABLE streamproc.window_runs ALTER COLUMN view TYPE regclass;
ALTER TABLE streamproc.positions ALTER COLUMN view TYPE regclass;
ALTER TABLE streamproc.view_watermarks ALTER COLUMN view TYPE regclass;

CREATE FUNCTION streamproc._procedure_names(procs regprocedure[])
RETURNS text[]
LANGUAGE sql STABLE STRICT
SET search_path = pg_catalog
AS $$
SELECT coalesce(array_agg(p::text ORDER BY n), '{}')
  FROM unnest(procs) WITH ORDINALITY AS u(p, n)
$$;

CREATE FUNCTION streamproc._collation_names(colls oid[])
RETURNS text[]
LANGUAGE sql STABLE STRICT
SET search_path = pg_catalog
AS $$
SELECT coalesce(array_agg(c::regcollation::text ORDER BY n), '{}')
  FROM unnest(colls) WITH ORDINALITY AS u(c, n)
$$;

ALTER TABLE streamproc.views
    ALTER COLUMN aggregates DROP DEFAULT,
    ALTER COLUMN aggregates TYPE text[] USING streamproc._procedure_names(aggregates),
    ALTER COLUMN aggregates SET DEFAULT '{}',
    ALTER COLUMN agg_collations DROP DEFAULT,
    ALTER COLUMN agg_collations TYPE text[] USING streamproc._collation_names(agg_collations),
    ALTER COLUMN agg_collations SET DEFAULT '{}';

DROP FUNCTION streamproc._procedure_names(regprocedure[]);
DROP FUNCTION streamproc._collation_names(oid[]);

-- pg_dump writes the rows of the catalog with the database.
SELECT pg_catalog.pg_extension_config_dump('streamproc.streams', '');
SELECT pg_catalog.pg_extension_config_dump('streamproc.views', '');
SELECT pg_catalog.pg_extension_config_dump('streamproc.positions', '');
SELECT pg_catalog.pg_extension_config_dump('streamproc.state_runs', '');
SELECT pg_catalog.pg_extension_config_dump('streamproc.window_runs', '');
SELECT pg_catalog.pg_extension_config_dump('streamproc.view_watermarks', '');
SELECT pg_catalog.pg_extension_config_dump('streamproc.errors', '');
SELECT pg_catalog.pg_extension_config_dump('streamproc.errors_id_seq', '');
SELECT pg_catalog.pg_extension_config_dump('streamproc.sources', '');
SELECT pg_catalog.pg_extension_config_dump('streamproc.kafka_offsets', '');

-- Restoring a dump: run pre_restore() in the new database after CREATE
-- EXTENSION, then pg_restore or psql, then post_restore().  post_restore()
-- is also run after pg_upgrade.
CREATE FUNCTION streamproc.pre_restore()
RETURNS void
LANGUAGE C VOLATILE
AS 'MODULE_PATHNAME', 'streamproc_pre_restore';

CREATE FUNCTION streamproc.post_restore()
RETURNS void
LANGUAGE C VOLATILE
AS 'MODULE_PATHNAME', 'streamproc_post_restore';

REVOKE ALL ON FUNCTION streamproc.pre_restore() FROM PUBLIC;
REVOKE ALL ON FUNCTION streamproc.post_restore() FROM PUBLIC;

-- Only a restore inserts into these tables with SQL (the extension's code
-- uses the heap functions): refuse it unless pre_restore() prepared the
-- database, before the restored rows mix with what the DDL hooks made.
CREATE FUNCTION streamproc._restore_guard()
RETURNS trigger
LANGUAGE plpgsql
AS $$
BEGIN
    IF NOT pg_catalog.current_setting('streamproc.restoring')::boolean THEN
        RAISE EXCEPTION 'cannot restore table %.% without streamproc.pre_restore()',
            TG_TABLE_SCHEMA, TG_TABLE_NAME
            USING ERRCODE = 'object_not_in_prerequisite_state',
                  DETAIL = 'streamproc''s catalog is restored only into a database prepared for it.',
                  HINT = 'Restore into a new database after CREATE EXTENSION streamproc; '
                         'SELECT streamproc.pre_restore(); and run SELECT '
                         'streamproc.post_restore(); after the restore.';
    END IF;
    RETURN NULL;
END
$$;

REVOKE ALL ON FUNCTION streamproc._restore_guard() FROM PUBLIC;

CREATE TRIGGER restore_guard BEFORE INSERT ON streamproc.streams
    FOR EACH STATEMENT EXECUTE FUNCTION streamproc._restore_guard();
CREATE TRIGGER restore_guard BEFORE INSERT ON streamproc.views
    FOR EACH STATEMENT EXECUTE FUNCTION streamproc._restore_guard();
CREATE TRIGGER restore_guard BEFORE INSERT ON streamproc.sources
    FOR EACH STATEMENT EXECUTE FUNCTION streamproc._restore_guard();

-- The slot of xid x among the sorted values marks that snapshots name:
-- each mark has its own, the xids between two marks share one.
CREATE FUNCTION streamproc._rebase_xid(x xid8, marks numeric[], base numeric)
RETURNS xid8
LANGUAGE sql IMMUTABLE STRICT
AS $$
SELECT (base + 2 * (SELECT count(*) FROM pg_catalog.unnest(marks) m
                     WHERE m < x::text::numeric)
        + CASE WHEN x::text::numeric = ANY (marks) THEN 1 ELSE 0 END)::text::xid8
$$;

-- Move the xids of positions and log rows below this transaction's xmin,
-- keeping their order (src/restore.c explains why); nothing when they are
-- there already.
CREATE FUNCTION streamproc._rebase_xids()
RETURNS void
LANGUAGE plpgsql
SET search_path = pg_catalog
AS $$
DECLARE
    horizon numeric := pg_snapshot_xmin(pg_current_snapshot())::text::numeric;
    marks numeric[];
    top numeric;
    shard_top numeric;
    base numeric;
    shard regclass;
BEGIN
    SELECT array_agg(DISTINCT x ORDER BY x) INTO marks
      FROM (SELECT pg_snapshot_xmin(p.position::pg_snapshot)::text::numeric
              FROM streamproc.positions p WHERE p.input LIKE 'log %'
            UNION ALL
            SELECT pg_snapshot_xmax(p.position::pg_snapshot)::text::numeric
              FROM streamproc.positions p WHERE p.input LIKE 'log %'
            UNION ALL
            SELECT pg_snapshot_xip(p.position::pg_snapshot)::text::numeric
              FROM streamproc.positions p WHERE p.input LIKE 'log %') AS v(x);
    top := marks[array_length(marks, 1)];
    FOR shard IN SELECT unnest(s.shard_logs) FROM streamproc.streams s LOOP
        EXECUTE format('SELECT max(%I::text::numeric) FROM %s', '$xid', shard)
           INTO shard_top;
        top := greatest(top, shard_top);
    END LOOP;
    IF top IS NULL OR top < horizon THEN
        RETURN;
    END IF;

    marks := coalesce(marks, '{}');
    base := horizon - 2 * cardinality(marks) - 1;
    IF base < 3 THEN
        RAISE EXCEPTION 'cannot rebase % transaction ids below %', 2 * cardinality(marks) + 1, horizon
            USING HINT = 'Run more transactions in this server, then streamproc.post_restore() again.';
    END IF;

    UPDATE streamproc.positions p
       SET position = format('%s:%s:%s',
                             streamproc._rebase_xid(pg_snapshot_xmin(p.position::pg_snapshot), marks, base),
                             streamproc._rebase_xid(pg_snapshot_xmax(p.position::pg_snapshot), marks, base),
                             (SELECT coalesce(string_agg(streamproc._rebase_xid(x, marks, base)::text,
                                                         ',' ORDER BY x), '')
                                FROM pg_snapshot_xip(p.position::pg_snapshot) x))
     WHERE p.input LIKE 'log %';
    FOR shard IN SELECT unnest(s.shard_logs) FROM streamproc.streams s LOOP
        EXECUTE format('UPDATE %s SET %I = streamproc._rebase_xid(%I, $1, $2)',
                       shard, '$xid', '$xid')
          USING marks, base;
    END LOOP;
    RAISE NOTICE 'transaction ids of positions and log rows rebased below %', horizon;
END
$$;

REVOKE ALL ON FUNCTION streamproc._rebase_xid(xid8, numeric[], numeric) FROM PUBLIC;
REVOKE ALL ON FUNCTION streamproc._rebase_xids() FROM PUBLIC;
