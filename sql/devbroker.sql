--
-- The suite's devbroker (started by scripts/run-tests, address in the
-- streamproc_test.brokers setting of the temporary instance) is reachable
-- from the server: a message produced to it with kcat comes back.
--
SELECT current_setting('streamproc_test.brokers') ~ '^127\.0\.0\.1:[0-9]+' AS broker_configured;

CREATE TEMP TABLE sent (line text);
INSERT INTO sent SELECT 'k' || g || ':message ' || g FROM generate_series(1, 20) g;

DO $$
BEGIN
    EXECUTE format('COPY sent TO PROGRAM %L',
                   'kcat -P -b ' || current_setting('streamproc_test.brokers')
                   || ' -t regress_rt -K:');
END
$$;

CREATE TEMP TABLE received (part int, key text, payload text);
DO $$
BEGIN
    EXECUTE format('COPY received FROM PROGRAM %L',
                   'kcat -C -q -e -o beginning -b '
                   || current_setting('streamproc_test.brokers')
                   || $f$ -t regress_rt -f '%p\t%k\t%s\n'$f$);
END
$$;

-- Exactly what was sent, over both partitions of the topic.
SELECT count(*) AS received, count(DISTINCT key) AS keys,
       count(DISTINCT part) AS partitions
  FROM received;
(SELECT key || ':' || payload FROM received EXCEPT ALL SELECT line FROM sent)
UNION ALL
(SELECT line FROM sent EXCEPT ALL SELECT key || ':' || payload FROM received);
