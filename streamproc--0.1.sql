/* streamproc--0.1.sql */

-- complain if script is sourced in psql, rather than via CREATE EXTENSION
\echo Use "CREATE EXTENSION streamproc" to load this file. \quit

-- All of streamproc's objects live in this schema, which belongs to the
-- extension: DROP EXTENSION removes it.
CREATE SCHEMA streamproc;
GRANT USAGE ON SCHEMA streamproc TO PUBLIC;

-- Refuse to install unless the library was loaded at server start: the
-- engine needs shared memory and background workers.
CREATE FUNCTION streamproc._assert_preloaded()
RETURNS void
LANGUAGE C STRICT
AS 'MODULE_PATHNAME', 'streamproc_assert_preloaded';

SELECT streamproc._assert_preloaded();

REVOKE ALL ON FUNCTION streamproc._assert_preloaded() FROM PUBLIC;

CREATE FUNCTION streamproc.info(
    OUT library_version text,
    OUT librdkafka_version text,
    OUT started_at timestamptz,
    OUT worker_slots int)
RETURNS record
LANGUAGE C STRICT STABLE
AS 'MODULE_PATHNAME', 'streamproc_info';

COMMENT ON FUNCTION streamproc.info() IS
    'version of the loaded streamproc library and of librdkafka, and when its shared memory was created';

--
-- Engine catalog (internal).  Written by the DDL handlers in the same
-- transaction as the objects they describe; read by the ingest workers.
-- docs/architecture.md describes each table's role.
--

-- One row per stream: a foreign table on server streamproc, and the log
-- table its inserts append to.  The log has the stream's columns (by name),
-- "$xid" xid8: the inserting top-level transaction, which bounds
-- micro-batches by snapshots, and "$shard" int2: the log is partitioned
-- into one shard per ingest worker (shard_logs), so that every worker takes
-- part of the stream's events (see src/stream.c).
CREATE TABLE streamproc.streams (
    stream     regclass PRIMARY KEY,
    log        regclass NOT NULL UNIQUE,
    shards     int NOT NULL,
    shard_logs regclass[] NOT NULL
);

-- One row per continuous view (see src/view.c).
--  kind 'a': aggregating.  batch_query yields the group-key columns g1..gn
--            then one partial state (bytea) per aggregate a1..am, for the
--            log rows of one micro-batch; the worker merges them into the
--            view's state.
--  kind 'p': append (filter, map, enrich).  batch_query yields the view's
--            output rows, which the worker appends to rows_table.
-- batch_query's parameters: $1 pg_snapshot of this batch, $2 pg_snapshot
-- of the previous batch or NULL: the batch is the log rows whose "$xid" is
-- visible in $1 and not in $2.  event_query is the same query restricted
-- to the one log row whose ctid is $1 (tid), used to isolate an event that
-- makes the batch fail.  source_query is the same query over the rows
-- of a Kafka batch that the ingest worker holds in memory
-- (streamproc._source_batch()).  agg_argtypes holds each aggregate's actual
-- argument types, which resolve polymorphic aggregates (max(anyarray)).
CREATE TABLE streamproc.views (
    view           regclass PRIMARY KEY,
    stream         regclass NOT NULL,
    kind           "char" NOT NULL CHECK (kind IN ('a', 'p')),
    batch_query    text NOT NULL,
    event_query    text NOT NULL,
    group_types    regtype[] NOT NULL DEFAULT '{}',
    aggregates     regprocedure[] NOT NULL DEFAULT '{}',
    agg_collations oid[] NOT NULL DEFAULT '{}',
    rows_table     regclass,
    definition     text NOT NULL,
    agg_argtypes   oidvector[] NOT NULL DEFAULT '{}',
    source_query   text NOT NULL,
    -- Windowed views (src/windows.c); window_kind is NULL for the others.
    --  window_kind 't' tumble, 'h' hop, 's' session, 'c' count
    --  window_size, window_slide: microseconds (tumble: slide = size;
    --      hop: state is kept per slide; session: size is the gap;
    --      count: size is the number of events)
    --  window_roles: per group column, 0 an ordinary key, 1 the window's
    --      start, 2 its end
    window_kind      "char" CHECK (window_kind IN ('t', 'h', 's', 'c')),
    window_size      bigint,
    window_slide     bigint,
    window_origin    timestamptz,
    window_roles     int2[],
    allowed_lateness bigint NOT NULL DEFAULT 0,
    retention        bigint,
    emit             "char" NOT NULL DEFAULT 'u' CHECK (emit IN ('u', 'f')),
    late_events      regclass,
    -- Aggregating views: the foreign table the view reads (src/viewscan.c).
    groups           regclass
);

-- Checkpointed state of aggregating views (src/statestore.c): runs of the
-- groups of one bucket of one state slot (ingest worker), each written by
-- one checkpoint; a later run of a bucket overrides an earlier one, key by
-- key, and compaction rewrites a bucket as one run.  Written only by the
-- ingest workers' checkpoints, in the transaction that also commits the
-- views' positions.
CREATE TABLE streamproc.state_runs (
    view    oid NOT NULL,
    slot    int NOT NULL,
    bucket  int NOT NULL,
    run     bigint NOT NULL,
    entries int NOT NULL,
    data    bytea NOT NULL,
    PRIMARY KEY (view, slot, bucket, run)
);

-- Closed windows of windowed views: runs of the windows one checkpoint
-- closed (at watermark "closed"), with the range of window starts they
-- hold (start_lo, start_hi: the start's microseconds; count windows: the
-- window id) and their latest end (retention).  Never changed afterwards.
CREATE TABLE streamproc.window_runs (
    view     oid NOT NULL,
    slot     int NOT NULL,
    closed   timestamptz NOT NULL,
    start_lo bigint NOT NULL,
    start_hi bigint NOT NULL,
    end_hi   timestamptz NOT NULL,
    entries  int NOT NULL,
    data     bytea NOT NULL
);
CREATE INDEX ON streamproc.window_runs (view, start_hi);
CREATE INDEX ON streamproc.window_runs (view, slot, end_hi);

-- Where each view is in each of its inputs (src/positions.c): "log <shard>"
-- a pg_snapshot, "kafka <source> <partition>" an offset (only for views
-- behind their source).
CREATE TABLE streamproc.positions (
    view     oid NOT NULL,
    input    text NOT NULL,
    position text NOT NULL,
    PRIMARY KEY (view, input)
);

-- The closed windows of a view, decoded: for tests and inspection.
CREATE FUNCTION streamproc._closed_windows(view regclass,
    OUT slot int, OUT closed timestamptz, OUT window_start timestamptz,
    OUT window_end timestamptz, OUT key bytea)
RETURNS SETOF record
LANGUAGE C STRICT VOLATILE
AS 'MODULE_PATHNAME', 'streamproc_closed_windows';

REVOKE ALL ON FUNCTION streamproc._closed_windows(regclass) FROM PUBLIC;

-- lz4 where the server has it: runs compress well and are TOASTed.
DO $$
BEGIN
    IF EXISTS (SELECT 1 FROM pg_catalog.pg_settings
                WHERE name = 'default_toast_compression' AND 'lz4' = ANY (enumvals)) THEN
        ALTER TABLE streamproc.state_runs ALTER COLUMN data SET COMPRESSION lz4;
        ALTER TABLE streamproc.window_runs ALTER COLUMN data SET COMPRESSION lz4;
    END IF;
END
$$;

-- The watermark up to which each state slot of a windowed view has closed
-- its windows, written by the checkpoint that closes them: the view's
-- watermark never goes back, also across restarts.
CREATE TABLE streamproc.view_watermarks (
    view      oid NOT NULL,
    slot      int NOT NULL,
    watermark timestamptz NOT NULL,
    PRIMARY KEY (view, slot)
);

-- Events whose processing raised an error: the rest of their batch was
-- processed; each failed event is recorded once, by the checkpoint that
-- consumes it.
CREATE TABLE streamproc.errors (
    id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    occurred_at timestamptz NOT NULL DEFAULT now(),
    source      text NOT NULL,
    view        regclass,
    position    text,
    event       text,
    topic       text,
    partition   int,
    "offset"    bigint,
    key         text,
    sqlstate    text NOT NULL,
    message     text NOT NULL,
    detail      text
);

GRANT SELECT ON streamproc.streams, streamproc.views TO PUBLIC;

-- Aggregating views read their groups through a foreign table of this
-- wrapper (src/viewscan.c): keyed lookups, parameterized paths, estimates.
CREATE FUNCTION streamproc.view_fdw_handler()
RETURNS fdw_handler
LANGUAGE C STRICT
AS 'MODULE_PATHNAME', 'streamproc_view_fdw_handler';

CREATE FOREIGN DATA WRAPPER streamproc_view HANDLER streamproc.view_fdw_handler;
CREATE SERVER streamproc_view FOREIGN DATA WRAPPER streamproc_view;

CREATE FUNCTION streamproc.sync(timeout interval DEFAULT '60 seconds')
RETURNS void
LANGUAGE C STRICT VOLATILE
AS 'MODULE_PATHNAME', 'streamproc_sync';

COMMENT ON FUNCTION streamproc.sync(interval) IS
    'wait until every stream event committed before the call is reflected in every continuous view';

CREATE FUNCTION streamproc._view_stats(
    OUT view oid, OUT events bigint, OUT groups bigint, OUT memory_bytes bigint,
    OUT ready boolean, OUT last_checkpoint timestamptz, OUT last_checkpoint_ms float8,
    OUT watermark timestamptz, OUT late_events bigint, OUT status text,
    OUT last_error text)
RETURNS SETOF record
LANGUAGE C STRICT VOLATILE
AS 'MODULE_PATHNAME', 'streamproc_view_stats';

CREATE FUNCTION streamproc._workers(
    OUT worker int, OUT pid int, OUT paused boolean, OUT sync_generation bigint)
RETURNS SETOF record
LANGUAGE C STRICT VOLATILE
AS 'MODULE_PATHNAME', 'streamproc_workers_status';

-- Ingest workers of the current database.
CREATE VIEW streamproc.stat_workers AS
    SELECT * FROM streamproc._workers();

-- Per continuous view: events merged, groups and state memory in shared
-- memory, failed events, last checkpoint, and what it is doing: running,
-- loading (a worker is loading its slot), retrying (a transient error),
-- failed (an error of the view: retried until the cause is gone), paused
-- (waiting for streamproc.state_memory), standby (a hot standby: reads
-- show the last checkpoint the primary wrote).
CREATE VIEW streamproc.stat_views AS
    SELECT v.view,
           v.stream,
           CASE v.kind WHEN 'a' THEN 'aggregate' ELSE 'append' END AS kind,
           s.events,
           s.groups,
           s.memory_bytes,
           (SELECT count(*) FROM streamproc.errors e WHERE e.view = v.view) AS errors,
           s.last_checkpoint,
           s.last_checkpoint_ms,
           s.watermark,
           s.late_events,
           CASE
               WHEN pg_catalog.pg_is_in_recovery() THEN 'standby'
               WHEN v.kind = 'a' AND NOT coalesce(s.ready, false) THEN 'loading'
               ELSE coalesce(s.status, 'running')
           END AS state,
           s.last_error
      FROM streamproc.views v
      LEFT JOIN streamproc._view_stats() s ON s.view = v.view::oid;

-- Per stream: the log's backlog (rows not yet removed by a checkpoint),
-- summed over its shards.
CREATE VIEW streamproc.stat_streams AS
    SELECT s.stream,
           s.log,
           (SELECT sum(pg_total_relation_size(k))::bigint FROM unnest(s.shard_logs) k) AS log_bytes,
           (SELECT sum(st.n_live_tup)::bigint FROM pg_stat_all_tables st
             WHERE st.relid = ANY (s.shard_logs::oid[])) AS log_rows_estimate,
           (SELECT sum(st.n_dead_tup)::bigint FROM pg_stat_all_tables st
             WHERE st.relid = ANY (s.shard_logs::oid[])) AS log_dead_rows_estimate
      FROM streamproc.streams s;

GRANT SELECT ON streamproc.stat_views, streamproc.stat_streams, streamproc.stat_workers TO PUBLIC;

--
-- Streams (src/stream.c): foreign tables on server streamproc.  Inserting
-- into one appends to its log table streamproc.log_<stream oid>, which the
-- DDL hooks create, alter and drop with the stream.
--
CREATE FUNCTION streamproc.fdw_handler()
RETURNS fdw_handler
LANGUAGE C STRICT
AS 'MODULE_PATHNAME', 'streamproc_fdw_handler';

CREATE FUNCTION streamproc.fdw_validator(text[], oid)
RETURNS void
LANGUAGE C STRICT
AS 'MODULE_PATHNAME', 'streamproc_fdw_validator';

CREATE FOREIGN DATA WRAPPER streamproc
    HANDLER streamproc.fdw_handler
    VALIDATOR streamproc.fdw_validator;

CREATE SERVER streamproc FOREIGN DATA WRAPPER streamproc;

-- Any user who may create tables in some schema may create streams.
GRANT USAGE ON FOREIGN SERVER streamproc TO PUBLIC;
GRANT USAGE ON FOREIGN SERVER streamproc_view TO PUBLIC;

-- ---------------------------------------------------------------------
-- Message parsers for Kafka sources (src/parse.c).  Internal test entry
-- points: they run one message (or one batch) through the C parsers that
-- Kafka sources use and return the row as to_jsonb would show it.  Not a
-- user interface; revoked from PUBLIC.  docs/sql-reference.md.
-- ---------------------------------------------------------------------
CREATE FUNCTION streamproc._parse_message(
    stream regclass, format text, payload bytea,
    options jsonb DEFAULT '{}', meta jsonb DEFAULT '{}')
RETURNS TABLE(ok boolean, error text, row_json jsonb)
LANGUAGE C STRICT VOLATILE
AS 'MODULE_PATHNAME', 'streamproc_parse_message';

CREATE FUNCTION streamproc._parse_messages(
    stream regclass, format text, payloads bytea[],
    options jsonb DEFAULT '{}')
RETURNS TABLE(n integer, ok boolean, error text, row_json jsonb)
LANGUAGE C STRICT VOLATILE
AS 'MODULE_PATHNAME', 'streamproc_parse_messages';

REVOKE ALL ON FUNCTION streamproc._parse_message(regclass, text, bytea, jsonb, jsonb) FROM PUBLIC;
REVOKE ALL ON FUNCTION streamproc._parse_messages(regclass, text, bytea[], jsonb) FROM PUBLIC;

-- ---------------------------------------------------------------------
-- Kafka sources (src/source.c: the SQL surface; src/kafka.c: the
-- consumers, run by the ingest workers).
--
-- A source feeds one stream from one topic.  Its partitions are split
-- across `workers` ingest workers; each parses its messages in C and runs
-- the stream's continuous views over them, and commits the partitions'
-- next offsets (kafka_offsets) in the checkpoint transaction that commits
-- the state they produced: exactly once.  options holds librdkafka
-- settings, which may include credentials: the table is readable by
-- superusers only; streamproc.kafka_sources shows it with secrets masked.
-- ---------------------------------------------------------------------
CREATE TABLE streamproc.sources (
    name           text PRIMARY KEY,
    stream         regclass NOT NULL,
    topic          text NOT NULL,
    brokers        text NOT NULL,
    format         text NOT NULL CHECK (format IN ('json', 'csv', 'text')),
    start_offset   text NOT NULL,
    workers        int NOT NULL CHECK (workers BETWEEN 1 AND 64),
    options        jsonb NOT NULL DEFAULT '{}',
    format_options jsonb NOT NULL DEFAULT '{}',
    group_id       text,
    paused         boolean NOT NULL DEFAULT false,
    owner          regrole NOT NULL,
    created_at     timestamptz NOT NULL DEFAULT now()
);

REVOKE ALL ON streamproc.sources FROM PUBLIC;

-- Committed position of each partition of each source: the offset of the
-- next message to consume.  Written by the ingest workers' checkpoints
-- (and once when a partition is first assigned, with the resolved
-- start_offset); deleted with the source.
CREATE TABLE streamproc.kafka_offsets (
    source     text NOT NULL REFERENCES streamproc.sources (name) ON DELETE CASCADE,
    topic      text NOT NULL,
    partition  int NOT NULL,
    "offset"   bigint NOT NULL,
    updated_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (source, partition)
);

GRANT SELECT ON streamproc.kafka_offsets TO PUBLIC;

-- Internal: the rows of the Kafka batch an ingest worker is processing;
-- continuous views' source_query reads it.  Elsewhere it raises an error.
CREATE FUNCTION streamproc._source_batch()
RETURNS SETOF record
LANGUAGE C VOLATILE
AS 'MODULE_PATHNAME', 'streamproc_source_batch';

-- BEGIN source.c functions (create/drop/pause/resume, kafka_sources)

-- Sources are managed through these functions, which write
-- streamproc.sources directly (callers need no privilege on it) and check
-- that the caller owns the stream.  They validate every field, the parser
-- options against the stream's columns, and the librdkafka options by
-- building a consumer; no broker is contacted.
CREATE FUNCTION streamproc.create_kafka_source(
    name text,
    stream regclass,
    topic text,
    brokers text,
    format text DEFAULT 'json',
    start_offset text DEFAULT 'earliest',
    workers int DEFAULT 1,
    options jsonb DEFAULT '{}',
    format_options jsonb DEFAULT '{}',
    group_id text DEFAULT NULL)
RETURNS void
LANGUAGE C VOLATILE
AS 'MODULE_PATHNAME', 'streamproc_create_kafka_source';

CREATE FUNCTION streamproc.drop_kafka_source(name text, if_exists boolean DEFAULT false)
RETURNS void
LANGUAGE C STRICT VOLATILE
AS 'MODULE_PATHNAME', 'streamproc_drop_kafka_source';

CREATE FUNCTION streamproc.pause_source(name text)
RETURNS void
LANGUAGE C STRICT VOLATILE
AS 'MODULE_PATHNAME', 'streamproc_pause_source';

CREATE FUNCTION streamproc.resume_source(name text)
RETURNS void
LANGUAGE C STRICT VOLATILE
AS 'MODULE_PATHNAME', 'streamproc_resume_source';

COMMENT ON FUNCTION streamproc.create_kafka_source(text, regclass, text, text, text, text, int, jsonb, jsonb, text) IS
    'create a Kafka source: the ingest workers consume topic into stream';
COMMENT ON FUNCTION streamproc.drop_kafka_source(text, boolean) IS
    'drop a Kafka source and its committed offsets';
COMMENT ON FUNCTION streamproc.pause_source(text) IS
    'stop consuming a Kafka source, keeping its offsets';
COMMENT ON FUNCTION streamproc.resume_source(text) IS
    'resume consuming a paused Kafka source from its committed offsets';

-- The value of every secret option (password, secret, jaas, token, *.pem,
-- ssl.key*) replaced by '********'; the rule lives in C
-- (streamproc_kafka_option_is_secret), shared with the error messages.
CREATE FUNCTION streamproc._mask_kafka_options(options jsonb)
RETURNS jsonb
LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE
AS 'MODULE_PATHNAME', 'streamproc_mask_kafka_options';

-- Every source, for every role, with secrets masked.
CREATE VIEW streamproc.kafka_sources AS
    SELECT name,
           stream,
           topic,
           brokers,
           format,
           start_offset,
           workers,
           streamproc._mask_kafka_options(options) AS options,
           format_options,
           group_id,
           paused,
           owner,
           created_at
      FROM streamproc.sources;

GRANT SELECT ON streamproc.kafka_sources TO PUBLIC;

-- END source.c functions

-- Consumers' statistics in shared memory (src/kafka.c): one row per
-- partition being consumed (partition NULL: the source before its
-- partitions are known).
CREATE FUNCTION streamproc._source_stats(
    OUT source text, OUT partition int, OUT worker int, OUT committed_offset bigint,
    OUT next_offset bigint, OUT high_watermark bigint, OUT events bigint, OUT bytes bigint,
    OUT events_per_second float8, OUT bytes_per_second float8, OUT errors bigint,
    OUT state text, OUT last_error text, OUT last_checkpoint timestamptz)
RETURNS SETOF record
LANGUAGE C STRICT VOLATILE
AS 'MODULE_PATHNAME', 'streamproc_source_stats';

-- Per source and partition: committed offset, high watermark and lag,
-- recent rates, errors, state.  A partition not being consumed (paused
-- source, worker restarting) shows its committed offset, with the
-- source's state; a source whose partitions are not known yet (its
-- brokers were never reached) has one row with partition NULL.
CREATE VIEW streamproc.stat_sources AS
    SELECT s.name AS source,
           s.topic,
           p.partition,
           p.worker,
           p.committed_offset,
           p.high_watermark,
           CASE WHEN p.high_watermark IS NOT NULL
                THEN greatest(p.high_watermark - coalesce(p.next_offset, p.committed_offset), 0)
           END AS lag,
           coalesce(p.events, 0) AS events,
           coalesce(p.bytes, 0) AS bytes,
           coalesce(p.events_per_second, 0) AS events_per_second,
           coalesce(p.bytes_per_second, 0) AS bytes_per_second,
           (SELECT count(*) FROM streamproc.errors e
             WHERE e.source = s.name
               AND (p.partition IS NULL OR e.partition = p.partition)) AS errors,
           CASE WHEN s.paused THEN 'paused'
                ELSE coalesce(p.state, src.state, 'starting') END AS state,
           coalesce(p.last_error, src.last_error) AS last_error,
           p.last_checkpoint
      FROM streamproc.sources s
      LEFT JOIN LATERAL (
          SELECT x.state, x.last_error
            FROM streamproc._source_stats() x
           WHERE x.source = s.name AND x.partition IS NULL
           ORDER BY x.state = 'running', x.worker
           LIMIT 1
      ) src ON true
      LEFT JOIN LATERAL (
          SELECT coalesce(st.partition, o.partition) AS partition,
                 st.worker,
                 coalesce(o."offset", st.committed_offset) AS committed_offset,
                 st.next_offset,
                 st.high_watermark,
                 st.events, st.bytes, st.events_per_second, st.bytes_per_second,
                 st.state, st.last_error,
                 coalesce(st.last_checkpoint, o.updated_at) AS last_checkpoint
            FROM (SELECT * FROM streamproc._source_stats() x
                   WHERE x.source = s.name AND x.partition IS NOT NULL) st
            FULL JOIN (SELECT * FROM streamproc.kafka_offsets k WHERE k.source = s.name) o
              ON o.partition = st.partition
      ) p ON true;

GRANT SELECT ON streamproc.stat_sources TO PUBLIC;

-- Last: at commit, ask the launcher to start this database's workers.
CREATE FUNCTION streamproc._launch_workers()
RETURNS void
LANGUAGE C STRICT VOLATILE
AS 'MODULE_PATHNAME', 'streamproc_launch_workers';

SELECT streamproc._launch_workers();

REVOKE ALL ON FUNCTION streamproc._launch_workers() FROM PUBLIC;

-- ---------------------------------------------------------------------
-- Partial aggregate states (src/aggregates.c).
--
-- A partial state is a bytea: the serialization function's output for an
-- aggregate whose transition type is internal, the transition type's
-- binary send output otherwise; NULL means "no input".  partial() computes
-- states with the executor's partial aggregation, combine() merges them,
-- finalize() applies the final function.  docs/sql-reference.md.
-- ---------------------------------------------------------------------

-- streamproc.partial(agg(...)): the partial state of the wrapped aggregate
-- call, per group; a planner hook makes the Agg node skip the final step.
CREATE FUNCTION streamproc.partial("any")
RETURNS bytea
LANGUAGE C IMMUTABLE PARALLEL SAFE
AS 'MODULE_PATHNAME', 'streamproc_partial';

COMMENT ON FUNCTION streamproc.partial("any") IS
    'partial (not finalized) state of the aggregate call it wraps, as bytea';

CREATE FUNCTION streamproc._combine_sfunc(internal, regprocedure, bytea)
RETURNS internal
LANGUAGE C PARALLEL SAFE
AS 'MODULE_PATHNAME', 'streamproc_combine_sfunc';

CREATE FUNCTION streamproc._combine_sfunc(internal, regprocedure, bytea, regcollation)
RETURNS internal
LANGUAGE C PARALLEL SAFE
AS 'MODULE_PATHNAME', 'streamproc_combine_sfunc';

CREATE FUNCTION streamproc._combine_final(internal)
RETURNS bytea
LANGUAGE C PARALLEL SAFE
AS 'MODULE_PATHNAME', 'streamproc_combine_final';

-- streamproc.combine('sum(numeric)', state): merge states of one aggregate.
CREATE AGGREGATE streamproc.combine(aggregate regprocedure, state bytea) (
    SFUNC = streamproc._combine_sfunc,
    STYPE = internal,
    FINALFUNC = streamproc._combine_final,
    PARALLEL = SAFE
);

-- The same with the collation the aggregate's support functions get
-- (min/max of text); the two-argument form uses the argument type's own.
CREATE AGGREGATE streamproc.combine(aggregate regprocedure, state bytea,
                                    collation regcollation) (
    SFUNC = streamproc._combine_sfunc,
    STYPE = internal,
    FINALFUNC = streamproc._combine_final,
    PARALLEL = SAFE
);

-- streamproc.finalize('avg(integer)', state, NULL::numeric): the result.
CREATE FUNCTION streamproc.finalize(aggregate regprocedure, state bytea,
                                    result_type anyelement)
RETURNS anyelement
LANGUAGE C STABLE PARALLEL SAFE
AS 'MODULE_PATHNAME', 'streamproc_finalize';

-- Internal: the engine's pairwise combine, for tests.
CREATE FUNCTION streamproc._combine_pair(aggregate regprocedure, a bytea, b bytea)
RETURNS bytea
LANGUAGE C STABLE PARALLEL SAFE
AS 'MODULE_PATHNAME', 'streamproc_combine_pair';

COMMENT ON AGGREGATE streamproc.combine(regprocedure, bytea) IS
    'merges partial states of the given aggregate into one';
COMMENT ON AGGREGATE streamproc.combine(regprocedure, bytea, regcollation) IS
    'merges partial states of the given aggregate into one, with a collation';
COMMENT ON FUNCTION streamproc.finalize(regprocedure, bytea, anyelement) IS
    'result of the given aggregate for a partial state';

-- Reading a state runs the aggregate's deserialization or receive
-- function on it, and not all of them validate their input (numeric's
-- and tdigest's do not fully): a crafted state can crash the server.
-- Only roles trusted with that may read states; grant them EXECUTE.
REVOKE ALL ON FUNCTION streamproc.combine(regprocedure, bytea) FROM PUBLIC;
REVOKE ALL ON FUNCTION streamproc.combine(regprocedure, bytea, regcollation) FROM PUBLIC;
REVOKE ALL ON FUNCTION streamproc.finalize(regprocedure, bytea, anyelement) FROM PUBLIC;
REVOKE ALL ON FUNCTION streamproc._combine_pair(regprocedure, bytea, bytea) FROM PUBLIC;

--
-- Event-time windows (src/windows.c).  Used in the FROM clause of a
-- continuous view, grouped by their columns; they work as well over a
-- table, which is how a window query is checked as a batch query.
--
CREATE FUNCTION streamproc.tumble(ts timestamptz, size interval,
    origin timestamptz DEFAULT '1970-01-01 00:00:00+00',
    OUT window_start timestamptz, OUT window_end timestamptz)
RETURNS record
LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE
AS 'MODULE_PATHNAME', 'streamproc_tumble';

COMMENT ON FUNCTION streamproc.tumble(timestamptz, interval, timestamptz) IS
    'the tumbling window of the given size that contains ts';

CREATE FUNCTION streamproc.hop(ts timestamptz, slide interval, size interval,
    origin timestamptz DEFAULT '1970-01-01 00:00:00+00',
    OUT window_start timestamptz, OUT window_end timestamptz)
RETURNS SETOF record
LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE ROWS 5
AS 'MODULE_PATHNAME', 'streamproc_hop';

COMMENT ON FUNCTION streamproc.hop(timestamptz, interval, interval, timestamptz) IS
    'every hopping window of the given size, starting every slide, that contains ts';

CREATE FUNCTION streamproc.session(ts timestamptz, gap interval,
    OUT window_start timestamptz, OUT window_end timestamptz)
RETURNS record
LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE
AS 'MODULE_PATHNAME', 'streamproc_session';

COMMENT ON FUNCTION streamproc.session(timestamptz, interval) IS
    'the session window [ts, ts + gap) of one event; continuous views merge the windows of a group that overlap';

CREATE FUNCTION streamproc.count_window(size bigint, OUT window_id bigint)
RETURNS bigint
LANGUAGE C IMMUTABLE PARALLEL SAFE
AS 'MODULE_PATHNAME', 'streamproc_count_window';

COMMENT ON FUNCTION streamproc.count_window(bigint) IS
    'count windows: window_id numbers every size events of a group, in processing order (continuous views only)';
