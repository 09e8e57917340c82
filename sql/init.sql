--
-- Installing the extension: objects, schema, the info function.
--
CREATE EXTENSION streamproc;

SELECT extname, extversion, extrelocatable, extnamespace::regnamespace
  FROM pg_extension WHERE extname = 'streamproc';

-- Every function lives in schema streamproc.
SELECT p.proname, p.pronargs, p.provolatile, p.proisstrict
  FROM pg_proc p
 WHERE p.pronamespace = 'streamproc'::regnamespace
 ORDER BY 1, 2;

-- The loaded library, the librdkafka it links, and its shared memory.
SELECT library_version,
       librdkafka_version ~ '^\d+\.\d+\.\d+$' AS librdkafka_version_ok,
       started_at <= now() AS started_before_now,
       started_at >= pg_postmaster_start_time() - interval '1 minute' AS started_with_server,
       worker_slots
  FROM streamproc.info();

-- The library version and the extension version agree.
SELECT (SELECT library_version FROM streamproc.info()) =
       (SELECT extversion FROM pg_extension WHERE extname = 'streamproc') AS versions_match;

-- The internal preload check is not for ordinary users.
CREATE ROLE streamproc_regress_user;
SET ROLE streamproc_regress_user;
SELECT streamproc._assert_preloaded();
RESET ROLE;
DROP ROLE streamproc_regress_user;

-- The extension cannot move to another schema.
CREATE SCHEMA elsewhere;
ALTER EXTENSION streamproc SET SCHEMA elsewhere;
DROP SCHEMA elsewhere;

-- Dropping and creating again works.
DROP EXTENSION streamproc;
SELECT count(*) FROM pg_namespace WHERE nspname = 'streamproc';
CREATE EXTENSION streamproc;
SELECT library_version FROM streamproc.info();
