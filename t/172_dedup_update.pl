# ALTER EXTENSION streamproc UPDATE from 0.3 to 0.4 with claimed keys:
# 0.3 kept one row per claim in the table streamproc.dedup_keys, 0.4 keeps
# runs in streamproc.dedup_runs (src/dedup.c) and dedup_keys is a view.
#
# The extension is created at 0.3 with a stream with dedup_key 'id' and a
# view; the claims a 0.3 worker would have written (ids 1..1000, 200 of
# them twice with an older claim too, 50 of a stream since dropped) are
# put into the 0.3 table.  With this library the workers cannot run the
# stream until the update and say so.  Then:
#   - the update converts the claims: the view streamproc.dedup_keys holds
#     exactly the rows the table held (the dropped stream's left behind),
#     in runs of streamproc.dedup_runs, which pg_extension_config_dump
#     marks;
#   - the workers load the converted claims: copies of ids 1..1000 are
#     dropped, new ids count, the view equals its batch query, also after
#     a restart.
#
# streamproc.sync() is the only barrier; polling waits for a state only.
use strict;
use warnings;

use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;

use KafkaCrash ();

my $node = KafkaCrash::new_node('dedup_update', q{
streamproc.workers = 2
streamproc.checkpoint_interval = 200
});
$node->start;

sub sql { return $node->safe_psql('postgres', $_[0]); }

sql(q{CREATE EXTENSION streamproc VERSION '0.3'});
sql(q{
CREATE FOREIGN TABLE ev (id int, v int) SERVER streamproc
    OPTIONS (dedup_key 'id', dedup_window '7 days');
CREATE VIEW per_v WITH (continuous) AS SELECT v, count(*) AS n FROM ev GROUP BY v;
CREATE FOREIGN TABLE gone (id int) SERVER streamproc OPTIONS (dedup_key 'id');
});
my $gone = sql(q{SELECT 'gone'::regclass::oid});
sql('DROP FOREIGN TABLE gone');

# The claims of 0.3: key = groupkey.c's encoding of an int4 (a value byte,
# its length, int4send), claim = a Kafka message ('k' and 16 bytes).
sql(qq{
INSERT INTO streamproc.dedup_keys (stream, key, claim, xid, ts)
SELECT 'ev'::regclass, '\\x0104'::bytea || int4send(g),
       '\\x6b'::bytea || int8send(g) || int8send(g * 7), NULL, now() - interval '1 hour'
  FROM generate_series(1, 1000) g;
INSERT INTO streamproc.dedup_keys (stream, key, claim, xid, ts)
SELECT 'ev'::regclass, '\\x0104'::bytea || int4send(g),
       '\\x6b'::bytea || int8send(g) || int8send(0), NULL, now() - interval '2 hours'
  FROM generate_series(1, 200) g;
INSERT INTO streamproc.dedup_keys (stream, key, claim, xid, ts)
SELECT $gone, '\\x0104'::bytea || int4send(g), '\\x6b'::bytea || int8send(g) || int8send(g), NULL, now()
  FROM generate_series(1, 50) g;
});
my $claims_q = q{SELECT string_agg(format('%s %s %s %s %s', stream::oid, key, claim, xid, ts), ',' ORDER BY key, ts)
                   FROM streamproc.dedup_keys WHERE stream = 'ev'::regclass};
my $before = sql($claims_q);
is(sql(q{SELECT count(*) FROM streamproc.dedup_keys WHERE stream = 'ev'::regclass}), '1200',
	'0.3: 1200 claims of ev in the table');

# The workers wait for the update, and say why.
ok($node->poll_query_until('postgres', q{SELECT true}), 'the server runs');
my $said = 0;
for (1 .. 300)
{
	$said = 1, last
	  if slurp_file($node->logfile) =~ /stream "ev" has a dedup_key, and extension "streamproc" is older than its library/;
	select(undef, undef, undef, 0.1);
}
ok($said, 'a worker says that the extension is older than its library');
like(slurp_file($node->logfile), qr/HINT:  Run ALTER EXTENSION streamproc UPDATE/, '... with the hint to update it');

# The update.
sql('ALTER EXTENSION streamproc UPDATE');
is(sql(q{SELECT extversion FROM pg_extension WHERE extname = 'streamproc'}), '0.7', 'the extension is at the current version, 0.7');
is(sql(q{SELECT relkind FROM pg_class WHERE oid = 'streamproc.dedup_keys'::regclass}), 'v',
	'streamproc.dedup_keys is a view');
is(sql($claims_q), $before, 'the view holds exactly the claims the table held');
is(sql(q{SELECT count(*) || ' ' || sum(entries) FROM streamproc.dedup_runs WHERE stream = 'ev'::regclass}), '1 1200',
	'... in one run of 1200 entries');
is(sql(qq{SELECT count(*) FROM streamproc.dedup_runs WHERE stream = $gone}), '0',
	'the claims of a dropped stream are left behind');
my $marked = sql(q{SELECT string_agg(c::regclass::text, ',') FROM pg_extension, unnest(extconfig) c WHERE extname = 'streamproc'});
like($marked, qr/streamproc\.dedup_runs/, 'pg_extension_config_dump marks streamproc.dedup_runs');
unlike($marked, qr/(^|,)\d+(,|$)/, '... and no dropped table')
  or diag($marked);

# The workers run the stream with the converted claims.
sql(q{INSERT INTO ev SELECT g, g % 5 FROM generate_series(1, 1500) g});
sql(q{SELECT streamproc.sync('60s')});
my $oracle = q{SELECT count(*) FROM ((SELECT g % 5 AS v, count(*) AS n FROM generate_series(1001, 1500) g GROUP BY 1)
                                     EXCEPT ALL (SELECT v, n FROM per_v)) x};
is(sql($oracle), '0', 'copies of the claimed ids are dropped, the 500 new ids count');
is(sql('SELECT sum(n) FROM per_v'), '500', 'per_v counts 500 events');
is(sql(q{SELECT dedup_keys || ' ' || duplicates FROM streamproc.stat_streams WHERE stream = 'ev'::regclass}),
	'1500 1000', 'stat_streams: 1500 keys held, 1000 duplicates');
is(sql(q{SELECT count(DISTINCT key) FROM streamproc.dedup_keys WHERE stream = 'ev'::regclass}), '1500',
	'the new claims are durable');

$node->restart;
sql(q{INSERT INTO ev SELECT g, g % 5 FROM generate_series(1, 1600) g});
sql(q{SELECT streamproc.sync('60s')});
$oracle =~ s/1001, 1500/1001, 1600/;
is(sql($oracle), '0', 'after a restart: copies dropped, the 100 new ids count');
is(sql('SELECT sum(n) FROM per_v'), '600', 'per_v counts 600 events');

done_testing();
