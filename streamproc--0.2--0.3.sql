/* streamproc--0.2--0.3.sql */

-- complain if script is sourced in psql, rather than via ALTER EXTENSION
\echo Use "ALTER EXTENSION streamproc UPDATE TO '0.3'" to load this file. \quit

-- 0.3: deduplication by key, the stream options dedup_key and dedup_window
-- (src/dedup.c).

-- The keys a stream's events claimed, appended by the ingest workers'
-- checkpoints with the positions they go with.  claim names the event
-- that claimed the key (a log row or a Kafka message); xid is the log
-- row's inserting transaction (for restores, which rebase transaction
-- ids); ts is the event time, or when the event was first processed.
-- Rows older than the stream's dedup_window are deleted.  No unique key:
-- a key claimed again after it expired, or written by two workers, may
-- have several rows, and the one with the latest ts holds (a B-tree on the
-- key made each write cost six times as much).  Rows are appended in
-- about the order of ts, which a BRIN index serves for the deletes.
CREATE TABLE streamproc.dedup_keys (
    stream regclass NOT NULL,
    key    bytea NOT NULL,
    claim  bytea NOT NULL,
    xid    bigint,
    ts     timestamptz NOT NULL
);
CREATE INDEX ON streamproc.dedup_keys USING brin (ts);
SELECT pg_catalog.pg_extension_config_dump('streamproc.dedup_keys', '');

-- In the log queries of streams with dedup_key: whether a log row is
-- admitted.  Runs in the ingest workers only (anywhere else it raises an
-- error), as the view's owner: executable by everyone, like
-- _source_batch().
CREATE FUNCTION streamproc._dedup(tableoid oid, row_ctid tid, row_xid xid8,
    ts timestamptz, VARIADIC keys "any")
RETURNS boolean
LANGUAGE C VOLATILE
AS 'MODULE_PATHNAME', 'streamproc_dedup';

CREATE FUNCTION streamproc._dedup_stats(OUT stream oid, OUT keys bigint,
    OUT duplicates bigint, OUT memory_bytes bigint)
RETURNS SETOF record
LANGUAGE C STRICT VOLATILE
AS 'MODULE_PATHNAME', 'streamproc_dedup_stats';

-- stat_streams: the deduplication columns at the end.
CREATE OR REPLACE VIEW streamproc.stat_streams AS
    SELECT s.stream,
           s.log,
           (SELECT sum(pg_total_relation_size(k))::bigint FROM unnest(s.shard_logs) k) AS log_bytes,
           (SELECT sum(st.n_live_tup)::bigint FROM pg_stat_all_tables st
             WHERE st.relid = ANY (s.shard_logs::oid[])) AS log_rows_estimate,
           (SELECT sum(st.n_dead_tup)::bigint FROM pg_stat_all_tables st
             WHERE st.relid = ANY (s.shard_logs::oid[])) AS log_dead_rows_estimate,
           d.keys AS dedup_keys,
           d.duplicates,
           d.memory_bytes AS dedup_memory_bytes
      FROM streamproc.streams s
      LEFT JOIN streamproc._dedup_stats() d ON d.stream = s.stream::oid;

-- post_restore() (src/restore.c), before the transaction ids of the logs
-- are rebased: a claim of a log row names it by transaction id and ctid,
-- which a restore changes.  Rows still in a log are read again and claim
-- their keys again, so their claims go; the other claims name rows that
-- are gone and now match no event ('x'), yet still hold their keys.
CREATE FUNCTION streamproc._restore_dedup_claims()
RETURNS void
LANGUAGE plpgsql
SET search_path = pg_catalog
AS $$
DECLARE
    s record;
    shard regclass;
BEGIN
    FOR s IN SELECT stream, shard_logs FROM streamproc.streams LOOP
        FOREACH shard IN ARRAY s.shard_logs LOOP
            EXECUTE format('DELETE FROM streamproc.dedup_keys d WHERE d.stream = $1'
                           ' AND d.xid IS NOT NULL'
                           ' AND EXISTS (SELECT 1 FROM %s l WHERE l.%I::text::bigint = d.xid)',
                           shard, '$xid')
              USING s.stream;
        END LOOP;
    END LOOP;
    UPDATE streamproc.dedup_keys
       SET claim = '\x78'::bytea || substr(claim, 2), xid = NULL
     WHERE xid IS NOT NULL;
END
$$;

REVOKE ALL ON FUNCTION streamproc._restore_dedup_claims() FROM PUBLIC;
