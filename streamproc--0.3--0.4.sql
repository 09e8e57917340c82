/* streamproc--0.3--0.4.sql */

-- complain if script is sourced in psql, rather than via ALTER EXTENSION
\echo Use "ALTER EXTENSION streamproc UPDATE TO '0.4'" to load this file. \quit

-- 0.4: the claimed keys of streams with dedup_key are kept as runs, one
-- row per checkpoint and 8 MB of claims (src/dedup.c), instead of one row
-- per key: a row and its index entries cost each claim more than the rest
-- of deduplication together.

-- A run is a sequence of entries, in network byte order: int4 key length,
-- the key, the claim (17 bytes: the event that claimed the key, a log row
-- or a Kafka message), int8 time (the event time, or when the event was
-- first processed).  A key may be in several runs; its latest claim holds.
-- A run is deleted once max_ts is older than the stream's dedup_window.
-- Compressed with lz4 where the server has it (about 2:1, and cheaper than
-- writing the bytes), else stored uncompressed (pglz costs more than it
-- saves).
CREATE TABLE streamproc.dedup_runs (
    stream  regclass NOT NULL,
    entries integer NOT NULL,
    min_ts  timestamptz NOT NULL,
    max_ts  timestamptz NOT NULL,
    data    bytea NOT NULL
);
DO $$
BEGIN
    IF EXISTS (SELECT 1 FROM pg_catalog.pg_settings
                WHERE name = 'default_toast_compression' AND 'lz4' = ANY (enumvals)) THEN
        ALTER TABLE streamproc.dedup_runs ALTER COLUMN data SET COMPRESSION lz4;
    ELSE
        ALTER TABLE streamproc.dedup_runs ALTER COLUMN data SET STORAGE EXTERNAL;
    END IF;
END
$$;
CREATE INDEX ON streamproc.dedup_runs (stream, max_ts);
SELECT pg_catalog.pg_extension_config_dump('streamproc.dedup_runs', '');

-- The claims of a run; xid is the inserting transaction of a claim by a
-- log row (for restores, which rebase transaction ids), else NULL.
CREATE FUNCTION streamproc._dedup_run_entries(data bytea,
    OUT key bytea, OUT claim bytea, OUT xid bigint, OUT ts timestamptz)
RETURNS SETOF record
LANGUAGE C STRICT IMMUTABLE
AS 'MODULE_PATHNAME', 'streamproc_dedup_run_entries';

-- Write runs of a stream's claims, the rows (key, claim, ts) of a query,
-- in chunks of 100,000 claims.  Used by the conversion below and by
-- _restore_dedup_claims().
CREATE FUNCTION streamproc._dedup_write_runs(stream regclass, claims text)
RETURNS void
LANGUAGE plpgsql
SET search_path = pg_catalog
AS $$
BEGIN
    EXECUTE format('INSERT INTO streamproc.dedup_runs (stream, entries, min_ts, max_ts, data)'
                   ' SELECT $1, count(*)::integer, min(c.ts), max(c.ts),'
                   '        string_agg(int4send(length(c.key)) || c.key || c.claim'
                   '                   || timestamptz_send(c.ts), ''''::bytea)'
                   '   FROM (SELECT q.key, q.claim, q.ts,'
                   '                (row_number() OVER () - 1) / 100000 AS chunk'
                   '           FROM (%s) q) c'
                   '  GROUP BY c.chunk', claims)
      USING stream;
END
$$;
REVOKE ALL ON FUNCTION streamproc._dedup_write_runs(regclass, text) FROM PUBLIC;

-- The claims of 0.3, one row each, become runs.
DO $$
DECLARE
    s regclass;
BEGIN
    -- Claims of dropped streams (a 0.4 library does not delete them from
    -- the 0.3 table) are left behind.
    FOR s IN SELECT DISTINCT d.stream FROM streamproc.dedup_keys d
              WHERE EXISTS (SELECT 1 FROM streamproc.streams st WHERE st.stream = d.stream) LOOP
        PERFORM streamproc._dedup_write_runs(s,
            format('SELECT key, claim, ts FROM streamproc.dedup_keys WHERE stream = %s', s::oid));
    END LOOP;
END
$$;
ALTER EXTENSION streamproc DROP TABLE streamproc.dedup_keys;
DROP TABLE streamproc.dedup_keys;

-- Every claim, as streamproc.dedup_keys was in 0.3 (a key may have
-- several rows; the latest ts holds).
CREATE VIEW streamproc.dedup_keys AS
    SELECT r.stream, e.key, e.claim, e.xid, e.ts
      FROM streamproc.dedup_runs r,
           LATERAL streamproc._dedup_run_entries(r.data) e;

-- post_restore() (src/restore.c), before the transaction ids of the logs
-- are rebased: a claim of a log row names it by transaction id and ctid,
-- which a restore changes.  Rows still in a log are read again and claim
-- their keys again, so their claims go; the other claims name rows that
-- are gone and now match no event ('x'), yet still hold their keys.  Each
-- stream's runs are written again.
CREATE OR REPLACE FUNCTION streamproc._restore_dedup_claims()
RETURNS void
LANGUAGE plpgsql
SET search_path = pg_catalog
AS $$
DECLARE
    s record;
    shard regclass;
    gone text;
BEGIN
    FOR s IN SELECT st.stream, st.shard_logs FROM streamproc.streams st
              WHERE EXISTS (SELECT 1 FROM streamproc.dedup_runs r WHERE r.stream = st.stream) LOOP
        gone := 'true';
        FOREACH shard IN ARRAY s.shard_logs LOOP
            gone := gone || format(' AND NOT EXISTS (SELECT 1 FROM %s l WHERE l.%I::text::bigint = e.xid)',
                                   shard, '$xid');
        END LOOP;
        CREATE TEMP TABLE streamproc_restored_claims AS
            SELECT e.key, e.claim, e.xid, e.ts
              FROM streamproc.dedup_runs r, streamproc._dedup_run_entries(r.data) e
             WHERE r.stream = s.stream;
        DELETE FROM streamproc.dedup_runs WHERE stream = s.stream;
        PERFORM streamproc._dedup_write_runs(s.stream,
            'SELECT e.key, CASE WHEN e.xid IS NULL THEN e.claim'
            '              ELSE ''\x78''::bytea || substr(e.claim, 2) END AS claim, e.ts'
            '  FROM streamproc_restored_claims e'
            ' WHERE e.xid IS NULL OR (' || gone || ')');
        DROP TABLE streamproc_restored_claims;
    END LOOP;
END
$$;
