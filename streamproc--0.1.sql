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
