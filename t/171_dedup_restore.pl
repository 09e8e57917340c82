# pg_dump and restore of a stream with dedup_key (src/dedup.c), with events
# in the dump that some view has not consumed yet, from server A into a
# database of a fresh server B.
#
# A claim names a log row by its inserting transaction and ctid, which a
# restore changes (post_restore() rebases the transaction ids).  The source
# database has a stream with dedup_key 'id' and two views: per_v, always
# running, and lagging, whose owner loses SELECT on the table it joins, so
# that it stops and keeps the log's rows.  Events inserted then are
# consumed (and their keys claimed, durably) by per_v only.  The dump
# carries those rows, their claims and the claims of rows long gone.
#
# In the copy, after post_restore() and the privilege given back:
#   - lagging counts every distinct event, the ones it had not seen
#     included (their claims named the source's rows: before post_restore()
#     dropped them, lagging took its own rows for copies and lost them);
#   - per_v counts each distinct event once;
#   - copies of events consumed before the dump are still dropped, new
#     events count, also after a restart;
#   - no claim in the copy names a log row of the source.
# The source goes on after its own post_restore().
#
# streamproc.sync() is the only barrier.
use strict;
use warnings;

use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;

use KafkaCrash ();

my $tmp = PostgreSQL::Test::Utils::tempdir();
my $conf = qq{
streamproc.workers = 2
streamproc.checkpoint_interval = 200
};
my $node_a = KafkaCrash::new_node('dedup_src', $conf);
my $node_b = KafkaCrash::new_node('dedup_copy', $conf);
$node_a->start;
$node_b->start;

# Database src is on server A, copy on server B.
sub node_of { return $_[0] eq 'copy' ? $node_b : $node_a; }
sub sql { my $db = $_[1] // 'src'; return node_of($db)->safe_psql($db, $_[0]); }
sub sync_db { sql(q{SELECT streamproc.sync('60s')}, $_[0]); }

# Events id in [lo, hi], v = id % 7, into the stream and the oracle.
sub put
{
	my ($db, $lo, $hi) = @_;
	sql("INSERT INTO ev SELECT g, g % 7 FROM generate_series($lo, $hi) g;"
		  . " INSERT INTO ev_oracle SELECT g, g % 7 FROM generate_series($lo, $hi) g;", $db);
}

sub check_views
{
	my ($db, $what) = @_;
	is(sql(q{SELECT count(*) FROM ((SELECT v, count(*) FROM (SELECT DISTINCT id, v FROM ev_oracle) d GROUP BY v)
	                               EXCEPT ALL (SELECT v, n FROM per_v)) x}, $db)
		  . ' ' . sql(q{SELECT count(*) FROM ((SELECT v, n FROM per_v)
	                               EXCEPT ALL (SELECT v, count(*) FROM (SELECT DISTINCT id, v FROM ev_oracle) d GROUP BY v)) x}, $db),
		'0 0', "$db: per_v equals its query over the distinct events ($what)");
	is(sql('SELECT n FROM lagging', $db), sql('SELECT count(DISTINCT id) FROM ev_oracle', $db),
		"$db: lagging counts each distinct event once ($what)");
}

$node_a->safe_psql('postgres', 'CREATE DATABASE src; CREATE ROLE lag_owner;');
$node_b->safe_psql('postgres', 'CREATE ROLE lag_owner;');
sql(q{
CREATE EXTENSION streamproc;
CREATE FOREIGN TABLE ev (id int, v int) SERVER streamproc OPTIONS (dedup_key 'id');
CREATE TABLE ev_oracle (id int, v int);
CREATE TABLE gate (one int);
INSERT INTO gate VALUES (1);
CREATE VIEW per_v WITH (continuous) AS SELECT v, count(*) AS n FROM ev GROUP BY v;
GRANT CREATE ON SCHEMA public TO lag_owner;
GRANT SELECT ON ev, gate TO lag_owner;
SET ROLE lag_owner;
CREATE VIEW lagging WITH (continuous) AS SELECT count(*) AS n FROM ev JOIN gate ON gate.one = 1;
RESET ROLE;
});

put('src', 1, 500);
put('src', 1, 50);
sync_db('src');
check_views('src', 'before the lag');

# Transaction ids of server A far ahead of those of server B: the rows
# below are renumbered by post_restore() in the copy.
sql('DO $$ BEGIN FOR i IN 1..3000 LOOP PERFORM pg_current_xact_id(); COMMIT; END LOOP; END $$;');

# lagging stops; per_v consumes (and claims) 501 .. 800 and copies of 401 .. 500.
sql('REVOKE SELECT ON gate FROM lag_owner');
put('src', 401, 800);
my ($ret, $out, $err) = $node_a->psql('src', q{SELECT streamproc.sync('60s')});
like($err, qr/continuous view "lagging" cannot catch up/, 'sync() reports the stopped view');
is(sql('SELECT sum(n) FROM per_v'), '800', 'per_v counts 800 distinct events');
is(sql('SELECT n FROM lagging'), '500', 'lagging is behind at 500');
ok(sql(q{SELECT count(*) FROM streamproc.dedup_keys WHERE stream = 'ev'::regclass AND xid IS NOT NULL}) >= 800,
	'the claims of the log rows are durable');

# The dump, with the workers stopped.
($ret, $out, $err) = $node_a->psql('src', 'SELECT streamproc.pre_restore()');
is($ret, 0, 'pre_restore() on the source') or diag($err);
ok($node_a->poll_query_until('src', 'SELECT count(*) = 0 FROM streamproc.stat_workers WHERE pid IS NOT NULL'),
	'no worker runs in the source');
my $dump = "$tmp/src.sql";
my ($rc, $dout, $derr) = KafkaCrash::run_cmd([ 'pg_dump', '-d', $node_a->connstr('src'), '-f', $dump ], timeout => 120);
is($rc, 0, 'pg_dump') or diag($derr);
($ret, $out, $err) = $node_a->psql('src', 'SELECT streamproc.post_restore()');
is($ret, 0, 'post_restore() on the source') or diag($err);

# The restore procedure of the operations guide, on server B.
$node_b->safe_psql('postgres', 'CREATE DATABASE copy');
sql('CREATE EXTENSION streamproc; SELECT streamproc.pre_restore();', 'copy');
($rc, $dout, $derr) = KafkaCrash::run_cmd(
	[ 'psql', '-X', '-q', '-v', 'ON_ERROR_STOP=1', '-d', $node_b->connstr('copy'), '-f', $dump ], timeout => 120);
is($rc, 0, 'the dump restores') or diag($derr);
($ret, $out, $err) = $node_b->psql('copy', 'SELECT streamproc.post_restore()');
is($ret, 0, 'post_restore() on the copy') or diag($err);
is(sql(q{SELECT count(*) FROM streamproc.dedup_keys d WHERE d.xid IS NOT NULL}, 'copy'), '0',
	'no claim in the copy names a log row of the source');
is(sql(q{SELECT count(DISTINCT key) FROM streamproc.dedup_keys WHERE get_byte(claim, 0) = ascii('x')}, 'copy'), '500',
	'the keys of the 500 events consumed everywhere are still held');

sql('GRANT SELECT ON gate TO lag_owner', 'copy');
sync_db('copy');
check_views('copy', 'after the restore');
is(sql('SELECT n FROM lagging', 'copy'), '800', 'copy: lagging caught up with the 300 events it had not seen');

# Copies of old events are dropped, new events count.
put('copy', 1, 100);
put('copy', 501, 520);
put('copy', 801, 850);
put('copy', 801, 810);
sync_db('copy');
check_views('copy', 'with copies and new events after the restore');
is(sql('SELECT sum(n) FROM per_v', 'copy'), '850', 'copy: 850 distinct events');

$node_b->restart;
put('copy', 1, 20);
put('copy', 840, 860);
sync_db('copy');
check_views('copy', 'after a restart');
is(sql('SELECT sum(n) FROM per_v', 'copy'), '860', 'copy: 860 distinct events after the restart');

# The source goes on.
sql('GRANT SELECT ON gate TO lag_owner');
put('src', 790, 900);
sync_db('src');
check_views('src', 'after its own post_restore()');

$node_a->stop;
$node_b->stop;
done_testing();
