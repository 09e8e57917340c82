--
-- Kafka sources, the SQL surface (src/source.c): create, drop, pause and
-- resume, validation, privileges, masking of secrets, and what dropping a
-- stream does to its sources.  No broker is needed: creating a source
-- validates the librdkafka configuration without connecting.
--
SET TimeZone = 'UTC';
SET DateStyle = 'ISO, YMD';

CREATE FOREIGN TABLE src_clicks (user_id int, url text, ts timestamptz, part int)
    SERVER streamproc;
CREATE TABLE src_plain (x int);

-- ===================================================================
-- Creating a source
-- ===================================================================

-- Every default.
SELECT streamproc.create_kafka_source('clicks_src', 'src_clicks', 'clicks', 'localhost:9092');
SELECT name, stream, topic, brokers, format, start_offset, workers, options,
       format_options, group_id, paused,
       owner::text = current_user AS owned_by_me,
       created_at BETWEEN now() - interval '1 minute' AND now() AS created_recently
  FROM streamproc.sources;

-- Every parameter.
SELECT streamproc.create_kafka_source('clicks_csv', 'src_clicks', 'clicks.v2_x-1',
    'localhost:9092,localhost:9093',
    format => 'csv', start_offset => 'LATEST', workers => 64,
    options => '{"fetch.max.bytes": 1048576, "client.id": "regress", "check.crcs": true,
                 "sasl.username": "alice", "sasl.password": "hunter2!"}',
    format_options => '{"delimiter": ";", "metadata": {"partition": "part"}}',
    group_id => 'regress-group');
SELECT name, topic, brokers, format, start_offset, workers, options,
       format_options, group_id, paused
  FROM streamproc.sources WHERE name = 'clicks_csv';

-- The catalog rows are written by the creating transaction.
BEGIN;
SELECT streamproc.create_kafka_source('rolled_back', 'src_clicks', 'clicks', 'localhost:9092');
SELECT count(*) FROM streamproc.sources WHERE name = 'rolled_back';
ROLLBACK;
SELECT count(*) FROM streamproc.sources WHERE name = 'rolled_back';

-- Duplicate name.
SELECT streamproc.create_kafka_source('clicks_src', 'src_clicks', 'other', 'localhost:9092');

-- ===================================================================
-- start_offset: accepted forms and what is stored (UTC, canonical)
-- ===================================================================
CREATE FUNCTION start_as(start text) RETURNS text
LANGUAGE plpgsql AS $$
DECLARE
    stored text;
BEGIN
    PERFORM streamproc.create_kafka_source('start_probe', 'src_clicks', 'clicks',
                                           'localhost:9092', start_offset => start);
    SELECT s.start_offset INTO stored FROM streamproc.sources s WHERE s.name = 'start_probe';
    PERFORM streamproc.drop_kafka_source('start_probe');
    RETURN stored;
END
$$;

SELECT start, start_as(start) AS stored
  FROM (VALUES ('earliest'), ('latest'), ('Earliest'),
               ('2026-11-25 10:00:00+00'),
               ('2026-11-25 12:00:00+02'),
               ('2026-11-25T10:00:00.123456Z'),
               ('2026-11-25'),
               ('epoch'),
               ('{"3": 0, "0": 42}'),
               ('  {"10": 9223372036854775807, "2": 5}'),
               ('{"2147483647": 1}')) v(start);

-- A timestamp without a zone is read in the session's time zone.
SET TimeZone = 'Europe/Paris';
SELECT start_as('2026-11-25 10:00:00') AS paris_10am;
SET TimeZone = 'UTC';

-- Invalid forms.
SELECT start_as('beginning');
SELECT start_as('');
SELECT start_as('42');
SELECT start_as('infinity');
SELECT start_as('1969-12-31 23:59:59+00');
SELECT start_as('{"0": 1');
SELECT start_as('{"a": 1}');
SELECT start_as('{"-1": 1}');
SELECT start_as('{"2147483648": 1}');
SELECT start_as('{"0": -1}');
SELECT start_as('{"0": 1.5}');
SELECT start_as('{"0": "1"}');
SELECT start_as('{"0": [1]}');
SELECT start_as('{"0": 9223372036854775808}');
SELECT start_as('{"0": 1, "00": 2}');
SELECT start_as('{}');
SELECT count(*) AS probes_left FROM streamproc.sources WHERE name = 'start_probe';

-- ===================================================================
-- Validation errors
-- ===================================================================

-- Not a stream.
SELECT streamproc.create_kafka_source('bad', 'src_plain', 'clicks', 'localhost:9092');
SELECT streamproc.create_kafka_source('bad', 'pg_class', 'clicks', 'localhost:9092');
SELECT streamproc.create_kafka_source('bad', 4294967295::oid::regclass, 'clicks', 'localhost:9092');

-- NULLs (only group_id may be NULL).
SELECT streamproc.create_kafka_source('bad', 'src_clicks', NULL, 'localhost:9092');
SELECT streamproc.create_kafka_source(NULL, 'src_clicks', 'clicks', 'localhost:9092');
SELECT streamproc.create_kafka_source('bad', 'src_clicks', 'clicks', 'localhost:9092', options => NULL);

-- Name.
SELECT streamproc.create_kafka_source('', 'src_clicks', 'clicks', 'localhost:9092');
SELECT streamproc.create_kafka_source(repeat('n', 64), 'src_clicks', 'clicks', 'localhost:9092');

-- Topic.
SELECT streamproc.create_kafka_source('bad', 'src_clicks', 'bad topic', 'localhost:9092');
SELECT streamproc.create_kafka_source('bad', 'src_clicks', '', 'localhost:9092');
SELECT streamproc.create_kafka_source('bad', 'src_clicks', '..', 'localhost:9092');
SELECT streamproc.create_kafka_source('bad', 'src_clicks', 'clicks/1', 'localhost:9092');
SELECT streamproc.create_kafka_source('bad', 'src_clicks', repeat('t', 250), 'localhost:9092');
-- (249 characters is the limit, and it is accepted)
SELECT streamproc.create_kafka_source('long_topic', 'src_clicks', repeat('t', 249), 'localhost:9092');
SELECT streamproc.drop_kafka_source('long_topic');

-- Brokers.
SELECT streamproc.create_kafka_source('bad', 'src_clicks', 'clicks', '');
SELECT streamproc.create_kafka_source('bad', 'src_clicks', 'clicks', '   ');

-- Format.
SELECT streamproc.create_kafka_source('bad', 'src_clicks', 'clicks', 'localhost:9092', format => 'avro');

-- Workers.
SELECT streamproc.create_kafka_source('bad', 'src_clicks', 'clicks', 'localhost:9092', workers => 0);
SELECT streamproc.create_kafka_source('bad', 'src_clicks', 'clicks', 'localhost:9092', workers => 65);

-- Group.
SELECT streamproc.create_kafka_source('bad', 'src_clicks', 'clicks', 'localhost:9092', group_id => '');

-- Parser options, checked against the stream's columns.
SELECT streamproc.create_kafka_source('bad', 'src_clicks', 'clicks', 'localhost:9092',
    format_options => '{"metadata": {"partition": "no_such_column"}}');
SELECT streamproc.create_kafka_source('bad', 'src_clicks', 'clicks', 'localhost:9092',
    format_options => '{"bogus": 1}');
SELECT streamproc.create_kafka_source('bad', 'src_clicks', 'clicks', 'localhost:9092',
    format => 'json', format_options => '{"delimiter": ";"}');
SELECT streamproc.create_kafka_source('bad', 'src_clicks', 'clicks', 'localhost:9092',
    format_options => '[]');

-- librdkafka options: shape and value types.
SELECT streamproc.create_kafka_source('bad', 'src_clicks', 'clicks', 'localhost:9092',
    options => '["client.id"]');
SELECT streamproc.create_kafka_source('bad', 'src_clicks', 'clicks', 'localhost:9092',
    options => '{"client.id": null}');
SELECT streamproc.create_kafka_source('bad', 'src_clicks', 'clicks', 'localhost:9092',
    options => '{"client.id": {"a": 1}}');

-- Reserved options, each with the parameter to use instead.
SELECT streamproc.create_kafka_source('bad', 'src_clicks', 'clicks', 'localhost:9092',
    options => '{"bootstrap.servers": "elsewhere:9092"}');
SELECT streamproc.create_kafka_source('bad', 'src_clicks', 'clicks', 'localhost:9092',
    options => '{"metadata.broker.list": "elsewhere:9092"}');
SELECT streamproc.create_kafka_source('bad', 'src_clicks', 'clicks', 'localhost:9092',
    options => '{"group.id": "g"}');
SELECT streamproc.create_kafka_source('bad', 'src_clicks', 'clicks', 'localhost:9092',
    options => '{"auto.offset.reset": "earliest"}');
SELECT streamproc.create_kafka_source('bad', 'src_clicks', 'clicks', 'localhost:9092',
    options => '{"enable.auto.commit": true}');
SELECT streamproc.create_kafka_source('bad', 'src_clicks', 'clicks', 'localhost:9092',
    options => '{"enable.auto.offset.store": false}');
SELECT streamproc.create_kafka_source('bad', 'src_clicks', 'clicks', 'localhost:9092',
    options => '{"enable.partition.eof": true}');

-- Options librdkafka does not know, or whose value it rejects.
SELECT streamproc.create_kafka_source('bad', 'src_clicks', 'clicks', 'localhost:9092',
    options => '{"no.such.option": "1"}');
SELECT streamproc.create_kafka_source('bad', 'src_clicks', 'clicks', 'localhost:9092',
    options => '{"fetch.max.bytes": "abc"}');
SELECT streamproc.create_kafka_source('bad', 'src_clicks', 'clicks', 'localhost:9092',
    options => '{"security.protocol": "bogus"}');
-- A rejected secret value is not shown.
SELECT streamproc.create_kafka_source('bad', 'src_clicks', 'clicks', 'localhost:9092',
    options => '{"ssl_key": "hunter2"}');
-- The whole configuration is checked by creating a consumer.
SELECT streamproc.create_kafka_source('bad', 'src_clicks', 'clicks', 'localhost:9092',
    options => '{"security.protocol": "sasl_plaintext", "sasl.mechanisms": "PLAIN"}');

SELECT count(*) AS bad_sources FROM streamproc.sources WHERE name = 'bad';

-- ===================================================================
-- Masking secrets
-- ===================================================================
SELECT streamproc._mask_kafka_options('{"sasl.password": "p", "SSL.KEY.PEM": "k",
    "ssl.key.location": "/k", "ssl_key": "k", "ssl.keystore.password": "kp",
    "sasl.oauthbearer.client.secret": "s", "sasl.jaas.config": "j",
    "my.token": 1, "ssl.ca.pem": "c", "client.id": "visible", "fetch.max.bytes": 5,
    "sasl.username": "alice"}');
SELECT streamproc._mask_kafka_options('[1, 2]');
SELECT streamproc._mask_kafka_options('{}');

SELECT name, options FROM streamproc.kafka_sources ORDER BY name;

-- ===================================================================
-- Privileges
-- ===================================================================
CREATE ROLE regress_src_alice;
CREATE ROLE regress_src_bob;
GRANT CREATE ON SCHEMA public TO regress_src_alice;

SET ROLE regress_src_bob;
-- Not the stream's owner: cannot create, drop, pause or resume.
SELECT streamproc.create_kafka_source('bobs', 'src_clicks', 'clicks', 'localhost:9092');
SELECT streamproc.drop_kafka_source('clicks_src');
SELECT streamproc.pause_source('clicks_src');
SELECT streamproc.resume_source('clicks_src');
-- The catalog holds credentials: superusers only.
SELECT * FROM streamproc.sources;
-- The view shows every source with secrets masked.
SELECT name, stream, topic, options, group_id, paused
  FROM streamproc.kafka_sources ORDER BY name;
RESET ROLE;

SET ROLE regress_src_alice;
CREATE FOREIGN TABLE alice_stream (id int, body text) SERVER streamproc;
-- The owner of a stream may create sources for it, without any privilege
-- on the catalog table.
SELECT streamproc.create_kafka_source('alice_src', 'alice_stream', 'alice', 'localhost:9092',
    options => '{"sasl.password": "alice-pw"}');
SELECT name, stream, options, owner FROM streamproc.kafka_sources WHERE name = 'alice_src';
-- Options that load code, run programs or read server files need the
-- privileges that would allow the same in SQL.
SELECT streamproc.create_kafka_source('alice_bad', 'alice_stream', 'alice', 'localhost:9092',
    options => '{"plugin.library.paths": "libevil"}');
SELECT streamproc.create_kafka_source('alice_bad', 'alice_stream', 'alice', 'localhost:9092',
    options => '{"sasl.kerberos.kinit.cmd": "touch /tmp/pwned"}');
SELECT streamproc.create_kafka_source('alice_bad', 'alice_stream', 'alice', 'localhost:9092',
    options => '{"ssl.ca.location": "/etc/ssl/certs"}');
SELECT streamproc.pause_source('alice_src');
SELECT streamproc.pause_source('alice_src');    -- already paused: fine
SELECT paused FROM streamproc.kafka_sources WHERE name = 'alice_src';
SELECT streamproc.resume_source('alice_src');
SELECT paused FROM streamproc.kafka_sources WHERE name = 'alice_src';
SELECT streamproc.drop_kafka_source('alice_src');
SELECT count(*) FROM streamproc.kafka_sources WHERE name = 'alice_src';
-- And again, for DROP OWNED below.
SELECT streamproc.create_kafka_source('alice_src', 'alice_stream', 'alice', 'localhost:9092');
RESET ROLE;

-- Superusers own every stream.
SELECT streamproc.pause_source('alice_src');
SELECT streamproc.resume_source('alice_src');

-- A superuser may set the privileged options (checked, not used here).
SELECT streamproc.create_kafka_source('su_src', 'src_clicks', 'clicks', 'localhost:9092',
    options => '{"ssl.ca.location": "/nonexistent/ca.pem"}');
SELECT streamproc.drop_kafka_source('su_src');

-- ===================================================================
-- Pause, resume, drop
-- ===================================================================
SELECT streamproc.pause_source('clicks_src');
SELECT name, paused FROM streamproc.sources ORDER BY name;
SELECT streamproc.resume_source('clicks_src');
SELECT name, paused FROM streamproc.sources ORDER BY name;
SELECT streamproc.pause_source('no_such_source');
SELECT streamproc.resume_source('no_such_source');

-- Dropping a source deletes its committed offsets too.
INSERT INTO streamproc.kafka_offsets (source, topic, partition, "offset")
VALUES ('clicks_src', 'clicks', 0, 42), ('clicks_src', 'clicks', 1, 7),
       ('clicks_csv', 'clicks.v2_x-1', 0, 3);
SELECT streamproc.drop_kafka_source('clicks_src');
SELECT name FROM streamproc.sources ORDER BY name;
SELECT source, partition, "offset" FROM streamproc.kafka_offsets ORDER BY 1, 2;

SELECT streamproc.drop_kafka_source('clicks_src');
SELECT streamproc.drop_kafka_source('clicks_src', if_exists => true);
SELECT streamproc.drop_kafka_source('clicks_src', true);

-- ===================================================================
-- Dropping a stream that sources read into
-- ===================================================================
DROP FOREIGN TABLE src_clicks;
SELECT streamproc.create_kafka_source('clicks_more', 'src_clicks', 'clicks', 'localhost:9092');
DROP FOREIGN TABLE src_clicks;
DROP FOREIGN TABLE IF EXISTS no_such_stream, src_clicks;
DROP FOREIGN TABLE src_clicks RESTRICT;
SELECT name FROM streamproc.sources ORDER BY name;

-- With CASCADE the sources and their offsets go with the stream.
DROP FOREIGN TABLE src_clicks CASCADE;
SELECT name FROM streamproc.sources ORDER BY name;
SELECT count(*) AS offsets FROM streamproc.kafka_offsets;

-- In a transaction that rolls back, nothing is lost.
CREATE FOREIGN TABLE src_again (id int) SERVER streamproc;
SELECT streamproc.create_kafka_source('again_src', 'src_again', 'again', 'localhost:9092');
BEGIN;
DROP FOREIGN TABLE src_again CASCADE;
SELECT count(*) FROM streamproc.sources WHERE name = 'again_src';
ROLLBACK;
SELECT count(*) FROM streamproc.sources WHERE name = 'again_src';
DROP FOREIGN TABLE src_again CASCADE;

-- DROP SCHEMA ... CASCADE.
CREATE SCHEMA src_schema;
CREATE FOREIGN TABLE src_schema.events (id int) SERVER streamproc;
SELECT streamproc.create_kafka_source('schema_src', 'src_schema.events', 'events', 'localhost:9092');
INSERT INTO streamproc.kafka_offsets (source, topic, partition, "offset")
VALUES ('schema_src', 'events', 0, 1);
DROP SCHEMA src_schema;
DROP SCHEMA src_schema CASCADE;
SELECT count(*) AS sources FROM streamproc.sources WHERE name = 'schema_src';
SELECT count(*) AS offsets FROM streamproc.kafka_offsets WHERE source = 'schema_src';

-- DROP OWNED drops alice's stream, and with it her source.
SELECT name, stream FROM streamproc.sources ORDER BY name;
DROP OWNED BY regress_src_alice;
SELECT name, stream FROM streamproc.sources ORDER BY name;

-- Clean up.
DROP ROLE regress_src_alice;
DROP ROLE regress_src_bob;
DROP FUNCTION start_as(text);
DROP TABLE src_plain;
SELECT count(*) AS sources_left FROM streamproc.sources;
