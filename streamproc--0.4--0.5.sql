/* streamproc--0.4--0.5.sql */

-- complain if script is sourced in psql, rather than via ALTER EXTENSION
\echo Use "ALTER EXTENSION streamproc UPDATE TO '0.5'" to load this file. \quit

-- 0.5: continuous views over continuous views (src/feed.c).  A view that
-- reads an append view in FROM reads a stream of its own, its feed
-- (streamproc.feed_<view oid>, a stream with the option upstream_rows),
-- which a statement trigger on the upstream's rows table fills with the
-- rows each checkpoint appends, in the checkpoint's transaction.
CREATE FUNCTION streamproc._feed_rows() RETURNS trigger
    AS 'MODULE_PATHNAME', 'streamproc_feed_rows' LANGUAGE C;
REVOKE ALL ON FUNCTION streamproc._feed_rows() FROM PUBLIC;
