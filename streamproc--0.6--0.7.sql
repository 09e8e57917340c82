/* streamproc--0.6--0.7.sql */

-- complain if script is sourced in psql, rather than via ALTER EXTENSION
\echo Use "ALTER EXTENSION streamproc UPDATE TO '0.7'" to load this file. \quit

-- 0.7: Kafka sinks (src/sink.c).  A sink produces every change of a
-- continuous view's change log to a Kafka topic, exactly once: each
-- message carries its change's position in a header, and a sink that
-- restarts reads its partitions' last messages to resume after the last
-- change Kafka holds.

-- options holds librdkafka settings, which may include credentials: the
-- table is readable by superusers only; streamproc.kafka_sinks shows it
-- with secrets masked.  The ingest workers write position, messages,
-- produced_at, state, last_error, last_error_at and retry_at.
CREATE TABLE streamproc.sinks (
    name          text PRIMARY KEY,
    view          regclass NOT NULL,
    topic         text NOT NULL,
    brokers       text NOT NULL,
    format        text NOT NULL CHECK (format IN ('json', 'csv')),
    key           text[],                   -- columns of the message key; NULL: the group key
    options       jsonb NOT NULL DEFAULT '{}',
    paused        boolean NOT NULL DEFAULT false,
    owner         regrole NOT NULL,
    created_at    timestamptz NOT NULL DEFAULT now(),
    position      bigint NOT NULL,          -- the last change Kafka acknowledged
    messages      bigint NOT NULL DEFAULT 0,
    produced_at   timestamptz,
    state         text NOT NULL DEFAULT 'starting',
    last_error    text,
    last_error_at timestamptz,
    retry_at      timestamptz
);

REVOKE ALL ON streamproc.sinks FROM PUBLIC;
SELECT pg_catalog.pg_extension_config_dump('streamproc.sinks', '');

CREATE FUNCTION streamproc.create_kafka_sink(
    name text,
    view regclass,
    topic text,
    brokers text,
    format text DEFAULT 'json',
    key text[] DEFAULT NULL,
    options jsonb DEFAULT '{}')
RETURNS void
LANGUAGE C VOLATILE
AS 'MODULE_PATHNAME', 'streamproc_create_kafka_sink';

CREATE FUNCTION streamproc.alter_kafka_sink(name text, brokers text DEFAULT NULL,
                                            options jsonb DEFAULT NULL)
RETURNS void
LANGUAGE C VOLATILE
AS 'MODULE_PATHNAME', 'streamproc_alter_kafka_sink';

CREATE FUNCTION streamproc.drop_kafka_sink(name text, if_exists boolean DEFAULT false)
RETURNS void
LANGUAGE C STRICT VOLATILE
AS 'MODULE_PATHNAME', 'streamproc_drop_kafka_sink';

CREATE FUNCTION streamproc.pause_sink(name text)
RETURNS void
LANGUAGE C STRICT VOLATILE
AS 'MODULE_PATHNAME', 'streamproc_pause_sink';

CREATE FUNCTION streamproc.resume_sink(name text)
RETURNS void
LANGUAGE C STRICT VOLATILE
AS 'MODULE_PATHNAME', 'streamproc_resume_sink';

COMMENT ON FUNCTION streamproc.create_kafka_sink(text, regclass, text, text, text, text[], jsonb) IS
    'create a Kafka sink: the ingest workers produce every change of view to topic, exactly once';
COMMENT ON FUNCTION streamproc.alter_kafka_sink(text, text, jsonb) IS
    'change the brokers or librdkafka options of a Kafka sink; it goes on after the last change its topic holds';
COMMENT ON FUNCTION streamproc.drop_kafka_sink(text, boolean) IS
    'drop a Kafka sink (the view''s change log stays)';
COMMENT ON FUNCTION streamproc.pause_sink(text) IS
    'stop producing a Kafka sink, keeping its position (the change log keeps what it has not produced)';
COMMENT ON FUNCTION streamproc.resume_sink(text) IS
    'resume producing a paused Kafka sink after its position';

-- Every sink, for every role, with secrets masked.
CREATE VIEW streamproc.kafka_sinks AS
    SELECT name, view, topic, brokers, format, key,
           streamproc._mask_kafka_options(options) AS options,
           paused, owner, created_at
      FROM streamproc.sinks;

GRANT SELECT ON streamproc.kafka_sinks TO PUBLIC;

-- Per sink: where it is in its view's change log, and how it is doing.
CREATE VIEW streamproc.stat_sinks AS
    SELECT s.name AS sink,
           s.view,
           s.topic,
           CASE WHEN s.paused THEN 'paused' ELSE s.state END AS state,
           s.position,
           l.last_position AS log_position,
           greatest(coalesce(l.last_position, s.position) - s.position, 0) AS lag,
           s.messages,
           s.produced_at,
           s.last_error,
           s.last_error_at,
           s.retry_at
      FROM streamproc.sinks s
      LEFT JOIN streamproc.change_logs l ON l.view = s.view;

GRANT SELECT ON streamproc.stat_sinks TO PUBLIC;
