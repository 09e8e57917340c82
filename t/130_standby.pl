# Continuous views on a hot standby, and after its promotion.
#
# A standby has no ingest workers: its views show the state the primary's
# checkpoints wrote, as WAL replay brings it.  stat_views says 'standby',
# streamproc.sync() refuses with a clear error, and inserting into a
# stream fails like any write.  After promotion the launcher starts the
# workers, which load the checkpointed state and go on: every view
# (grouped, windowed, append) equals its oracle, computed from plain tables
# filled in the same transactions as the streams.
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;

my $primary = PostgreSQL::Test::Cluster->new('primary');
$primary->init(allows_streaming => 1);
$primary->append_conf('postgresql.conf', q{
shared_preload_libraries = 'streamproc'
max_worker_processes = 16
streamproc.workers = 2
streamproc.checkpoint_interval = '200ms'
});
$primary->start;

$primary->safe_psql('postgres', q{
CREATE EXTENSION streamproc;
CREATE FOREIGN TABLE ev (k int, v int, ts timestamptz) SERVER streamproc
    OPTIONS (event_time 'ts', watermark_delay '0 seconds');
CREATE TABLE ev_oracle (k int, v int, ts timestamptz);
CREATE VIEW per_k WITH (continuous) AS SELECT k, count(*) AS n, sum(v) AS s FROM ev GROUP BY k;
CREATE VIEW per_min WITH (continuous) AS
    SELECT w.window_start, count(*) AS n FROM ev, streamproc.tumble(ts, interval '1 minute') AS w GROUP BY 1;
CREATE VIEW big WITH (continuous) AS SELECT k, v FROM ev WHERE v % 10 = 0;
});

my $batch = 0;
sub insert_batch
{
	my ($node) = @_;
	my $from = $batch * 10000 + 1;
	my $to = ++$batch * 10000;
	my $rows = "SELECT g % 1000, g, timestamptz '2026-01-01' + g * interval '10 ms'"
	  . " FROM generate_series($from, $to) g";
	$node->safe_psql('postgres', "BEGIN; INSERT INTO ev $rows; INSERT INTO ev_oracle $rows; COMMIT;");
}

my %oracle = (
	per_k => 'SELECT k, count(*), sum(v) FROM ev_oracle GROUP BY k',
	per_min => q{SELECT date_bin('1 minute', ts, timestamptz '2001-01-01'), count(*) FROM ev_oracle GROUP BY 1},
	big => 'SELECT k, v FROM ev_oracle WHERE v % 10 = 0');

sub check_views
{
	my ($node, $when) = @_;
	for my $view (sort keys %oracle)
	{
		my $o = $oracle{$view};
		# per_min: the view shows every window; the oracle groups the same events
		is($node->safe_psql('postgres',
				"SELECT (SELECT count(*) FROM (SELECT * FROM $view EXCEPT ALL ($o)) a) || ' ' ||"
				  . " (SELECT count(*) FROM (($o) EXCEPT ALL SELECT * FROM $view) b)"),
			'0 0', "$view equals its oracle $when");
	}
}

insert_batch($primary) for 1 .. 3;
$primary->safe_psql('postgres', 'SELECT streamproc.sync()');
check_views($primary, 'on the primary');

$primary->backup('b');
my $standby = PostgreSQL::Test::Cluster->new('standby');
$standby->init_from_backup($primary, 'b', has_streaming => 1);
$standby->start;

# More events after the backup: they reach the standby through WAL.
insert_batch($primary) for 1 .. 2;
$primary->safe_psql('postgres', 'SELECT streamproc.sync()');
$primary->wait_for_catchup($standby);

check_views($standby, 'on the standby');
is($standby->safe_psql('postgres', q{SELECT string_agg(DISTINCT state, ',') FROM streamproc.stat_views}),
	'standby', 'stat_views says standby');
is($standby->safe_psql('postgres', 'SELECT count(*) FROM streamproc.stat_workers WHERE pid IS NOT NULL'),
	'0', 'no ingest worker runs on the standby');
my ($ret, $out, $err) = $standby->psql('postgres', 'SELECT streamproc.sync()');
like($err, qr/cannot wait for continuous views on a standby/, 'sync() on the standby says why it cannot');
($ret, $out, $err) = $standby->psql('postgres', 'INSERT INTO ev VALUES (1, 1, now())');
like($err, qr/read-only transaction/, 'inserting into a stream on the standby fails as a write');
is($standby->safe_psql('postgres', 'SELECT n FROM per_k WHERE k = 7'),
	$primary->safe_psql('postgres', 'SELECT n FROM per_k WHERE k = 7'),
	'a keyed read on the standby reads the checkpoint');
# A parallel full scan of the checkpoint: one participant reads it.
my $par = 'SET parallel_setup_cost = 0; SET parallel_tuple_cost = 0; SET min_parallel_table_scan_size = 0;'
  . ' SET max_parallel_workers_per_gather = 2;';
like($standby->safe_psql('postgres', "$par EXPLAIN (ANALYZE, COSTS OFF, TIMING OFF, SUMMARY OFF) SELECT sum(n), sum(s) FROM per_k"),
	qr/Workers Launched: [12].*Parallel Foreign Scan/s, 'the standby reads per_k with a parallel scan');
is($standby->safe_psql('postgres', "$par SELECT count(*) || ' ' || sum(n) || ' ' || sum(s) FROM per_k"),
	$primary->safe_psql('postgres', q{SELECT count(DISTINCT k) || ' ' || count(*) || ' ' || sum(v) FROM ev_oracle}),
	'... which counts every group once');

# Promotion: the workers start and go on from the checkpointed state.
$primary->stop;
$standby->promote;
$standby->poll_query_until('postgres',
	'SELECT count(*) = 2 FROM streamproc.stat_workers WHERE pid IS NOT NULL')
  or die 'the workers did not start after promotion';
insert_batch($standby) for 1 .. 2;
$standby->safe_psql('postgres', 'SELECT streamproc.sync()');
check_views($standby, 'after promotion');
is($standby->safe_psql('postgres', q{SELECT string_agg(DISTINCT state, ',') FROM streamproc.stat_views}),
	'running', 'every view runs after promotion');
is($standby->safe_psql('postgres', 'SELECT count(*) FROM streamproc.errors'), '0', 'no errors');

$standby->stop;
done_testing();
