/* streamproc--0.5--0.6.sql */

-- complain if script is sourced in psql, rather than via ALTER EXTENSION
\echo Use "ALTER EXTENSION streamproc UPDATE TO '0.6'" to load this file. \quit

-- 0.6: change logs (src/changes.c).  A continuous view with a change log
-- has the changes of its checkpoints numbered in streamproc.changes, which
-- clients read with streamproc.changes() and follow with LISTEN.

-- One row per view that keeps a change log.
CREATE TABLE streamproc.change_logs (
    view          regclass PRIMARY KEY,
    retention     interval NOT NULL,        -- changes older than this are deleted
    last_position bigint NOT NULL,          -- position of the last change written
    trimmed_to    bigint NOT NULL,          -- changes up to here were deleted
    windows_done  timestamptz               -- final windows: passed on up to this closing bound
);

CREATE TABLE streamproc.changes (
    view       regclass NOT NULL,
    position   bigint NOT NULL,
    changed_at timestamptz NOT NULL,
    key        jsonb,                      -- views whose groups change: the group's key columns
    old        jsonb,
    new        jsonb,
    PRIMARY KEY (view, position)
);

-- Views whose groups change: the row each group had at its last change
-- (a group the view does not show has none), by group key.
CREATE TABLE streamproc.change_rows (
    view     regclass NOT NULL,
    key_hash bigint NOT NULL,               -- jsonb_hash_extended(key, 0)
    key      jsonb NOT NULL,                -- the group's key columns, as an array
    row      jsonb NOT NULL
);
CREATE INDEX change_rows_key ON streamproc.change_rows (view, key_hash);

SELECT pg_catalog.pg_extension_config_dump('streamproc.change_logs', '');
SELECT pg_catalog.pg_extension_config_dump('streamproc.change_rows', '');
SELECT pg_catalog.pg_extension_config_dump('streamproc.changes', '');
GRANT SELECT ON streamproc.change_logs TO PUBLIC;

CREATE FUNCTION streamproc.create_change_log(view regclass, retention interval DEFAULT '1 day')
RETURNS void
LANGUAGE C VOLATILE STRICT
AS 'MODULE_PATHNAME', 'streamproc_create_change_log';

CREATE FUNCTION streamproc.alter_change_log(view regclass, retention interval)
RETURNS void
LANGUAGE C VOLATILE STRICT
AS 'MODULE_PATHNAME', 'streamproc_alter_change_log';

CREATE FUNCTION streamproc.drop_change_log(view regclass)
RETURNS void
LANGUAGE C VOLATILE STRICT
AS 'MODULE_PATHNAME', 'streamproc_drop_change_log';

CREATE FUNCTION streamproc.changes(view regclass, after bigint DEFAULT 0,
                                   max_changes bigint DEFAULT NULL)
RETURNS TABLE ("position" bigint, changed_at timestamptz, key jsonb, old jsonb, new jsonb)
LANGUAGE C STABLE
AS 'MODULE_PATHNAME', 'streamproc_changes';

-- The position of a view's last change: follow it from there.
CREATE FUNCTION streamproc.changes_position(view regclass)
RETURNS bigint
LANGUAGE sql STABLE STRICT
AS $$ SELECT last_position FROM streamproc.change_logs WHERE view = $1 $$;

CREATE FUNCTION streamproc.changes_channel(view regclass)
RETURNS text
LANGUAGE C STABLE STRICT
AS 'MODULE_PATHNAME', 'streamproc_changes_channel';

CREATE FUNCTION streamproc._change_rows() RETURNS trigger
    AS 'MODULE_PATHNAME', 'streamproc_change_rows' LANGUAGE C;
REVOKE ALL ON FUNCTION streamproc._change_rows() FROM PUBLIC;
