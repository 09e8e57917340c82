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
-- table its inserts append to.  The log has the stream's columns (by name)
-- and "$xid" xid8: the inserting top-level transaction, which bounds
-- micro-batches by snapshots (see src/stream.c).
CREATE TABLE streamproc.streams (
    stream regclass PRIMARY KEY,
    log    regclass NOT NULL UNIQUE
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
-- makes the batch fail.  agg_argtypes holds each aggregate's actual
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
    agg_argtypes   oidvector[] NOT NULL DEFAULT '{}'
);

-- Checkpointed state of aggregating views: one row per (view, state slot,
-- group); state packs the partial state of each aggregate (src/worker.c).
-- Written only by the ingest workers' checkpoints, in the transaction that
-- also removes the log rows the state includes.
CREATE TABLE streamproc.view_state (
    view  oid NOT NULL,
    slot  int NOT NULL,
    key   bytea NOT NULL,
    state bytea NOT NULL,
    PRIMARY KEY (view, slot, key)
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
    sqlstate    text NOT NULL,
    message     text NOT NULL,
    detail      text
);

GRANT SELECT ON streamproc.streams, streamproc.views TO PUBLIC;

CREATE FUNCTION streamproc.read_view(view oid)
RETURNS SETOF record
LANGUAGE C STRICT STABLE
AS 'MODULE_PATHNAME', 'streamproc_read_view';

COMMENT ON FUNCTION streamproc.read_view(oid) IS
    'groups of an aggregating continuous view with the final value of each aggregate (used by the view''s definition)';

CREATE FUNCTION streamproc.sync(timeout interval DEFAULT '60 seconds')
RETURNS void
LANGUAGE C STRICT VOLATILE
AS 'MODULE_PATHNAME', 'streamproc_sync';

COMMENT ON FUNCTION streamproc.sync(interval) IS
    'wait until every stream event committed before the call is reflected in every continuous view';

CREATE FUNCTION streamproc._view_stats(
    OUT view oid, OUT events bigint, OUT groups bigint, OUT memory_bytes bigint,
    OUT ready boolean, OUT last_checkpoint timestamptz, OUT last_checkpoint_ms float8)
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
-- memory, failed events, last checkpoint.
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
           CASE
               WHEN EXISTS (SELECT 1 FROM streamproc._workers() w WHERE w.paused) THEN 'paused'
               WHEN v.kind = 'a' AND NOT coalesce(s.ready, false) THEN 'loading'
               ELSE 'running'
           END AS state
      FROM streamproc.views v
      LEFT JOIN streamproc._view_stats() s ON s.view = v.view::oid;

-- Per stream: the log's backlog (rows not yet removed by a checkpoint).
CREATE VIEW streamproc.stat_streams AS
    SELECT s.stream,
           s.log,
           pg_total_relation_size(s.log) AS log_bytes,
           st.n_live_tup AS log_rows_estimate,
           st.n_dead_tup AS log_dead_rows_estimate
      FROM streamproc.streams s
      LEFT JOIN pg_stat_all_tables st ON st.relid = s.log::oid;

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
