# Exactly-once for Kafka sources across crashes.  loadgen produces a million
# json events (with malformed messages and duplicates) into an 8-partition
# topic of a devbroker while the test SIGKILLs the ingest worker that
# consumes the source five times at random moments (each time the
# postmaster reinitializes shared memory and the workers recover from their
# checkpoints) and restarts the server once in immediate mode, all
# mid-stream.  Afterwards:
#   - every continuous view (aggregating per user, per url with a WHERE, a
#     global total, and an append-only view) equals the same query over the
#     batch oracle (loadgen's CSV of the well-formed messages, duplicates
#     included, loaded with COPY);
#   - every malformed message is in streamproc.errors exactly once (count,
#     distinct offsets, key and payload, partition of its key);
#   - streamproc.kafka_offsets equals the partitions' end offsets on the
#     broker, and the per-partition message counts loadgen produced;
#   - the server log shows no crash other than the SIGKILLs;
#   - a clean restart keeps the results.
#
# The random moments come from srand(STREAMPROC_TEST_SEED, default 90),
# printed at the start.  The devbroker keeps only the newest ~5 MiB per
# partition, so loadgen is paced (--rate) and the consumer stays close
# behind it; the offset checks would show any message lost to retention.
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use Time::HiRes qw(time sleep);

use Devbroker;
use KafkaCrash;

KafkaCrash::check_prerequisites();

my $seed = $ENV{STREAMPROC_TEST_SEED} // 90;
srand($seed);
diag("random seed $seed (STREAMPROC_TEST_SEED)");

my $t_start    = time();
my $source     = 'clicks_src';
my $topic      = 'clicks';
my $partitions = 8;
# (slower under sanitizers: scripts/run-tests --sanitize scales time, and
# the consumer must keep up with loadgen for the six rounds)
my $scale      = $ENV{STREAMPROC_TEST_TIME_SCALE} // 1;    # sanitizers: 5
my $rate       = int(25_000 / $scale);
my %content    = (
	count      => 1_000_000,
	seed       => 4242,
	malformed  => '0.001',
	duplicates => '0.01');

my $tmp    = PostgreSQL::Test::Utils::tempdir();
my $broker = Devbroker->start(topics => { $topic => $partitions }, quiet => 1);

my $node = KafkaCrash::new_node('kafka_crash', q{
streamproc.checkpoint_interval = '200ms'
restart_after_crash = on
});
$node->start;
KafkaCrash::create_schema($node,
	source  => $source,
	topic   => $topic,
	brokers => $broker->bootstrap);

my $lg = KafkaCrash::start_loadgen(%content,
	dir     => $tmp,
	brokers => $broker->bootstrap,
	topic   => $topic,
	rate    => $rate);

# Six disruptions while loadgen produces: five SIGKILLs of the worker that
# consumes the source and one immediate restart, at a random position
# among them.  Before each, the consumer must have committed another 12%
# of the messages (so each disruption hits a running, checkpointing
# consumer), then a random pause of up to 1.5 s picks the moment.
my $disruptions = 6;
my $restart_at  = 2 + int(rand(4));
my $kills       = 0;
my %pids_killed;
for my $round (1 .. $disruptions)
{
	my $target = int($round * 0.12 * $content{count});
	KafkaCrash::wait_committed($node, $source, $target)
	  or die("no progress past $target committed messages in round $round");
	my ($pid, $worker) = KafkaCrash::source_worker_pid($node, $source);
	die("no ingest worker consumes $source in round $round") unless $pid;
	my $pause = rand(1.5);
	sleep($pause);

	ok(KafkaCrash::loadgen_running($lg), "round $round: loadgen is still producing");
	my $committed = KafkaCrash::committed_sum($node, $source);
	if ($round == $restart_at)
	{
		$node->stop('immediate');
		$node->start;
		ok(1, "round $round: restarted the server in immediate mode "
			  . sprintf('(%.3f s after %d committed; %d now)', $pause, $target, $committed));
	}
	else
	{
		ok(kill('KILL', $pid),
			"round $round: SIGKILLed ingest worker $worker (pid $pid) "
			  . sprintf('%.3f s after %d committed; %d now', $pause, $target, $committed));
		$kills++;
		$pids_killed{$pid} = 1;
		KafkaCrash::wait_server($node, $pid) or die('server did not come back after SIGKILL');
	}
}
is($kills, 5, 'SIGKILLed the ingest worker five times');
is(scalar(keys %pids_killed), 5, 'each kill hit a new worker process');

my $summary = KafkaCrash::finish_loadgen($lg);
ok($summary, 'loadgen produced every message (exit 0)')
  or die 'loadgen failed';
is($summary->{events}, $content{count}, "loadgen produced $content{count} events");
diag(sprintf('loadgen: %d events (%d well-formed, %d duplicates, %d malformed) in %.1f s',
	@$summary{qw(events well_formed duplicates malformed)}, $lg->{elapsed}));

my $t_sync = time();
$node->safe_psql('postgres', "SELECT streamproc.sync('" . 120 * $scale . "s')");
diag(sprintf('sync returned after %.1f s', time() - $t_sync));

# --- the views equal the batch oracle
my $oracle_n = KafkaCrash::load_oracle($node, $lg->{oracle_csv});
is($oracle_n, $summary->{well_formed}, 'the oracle holds every well-formed message');
KafkaCrash::check_views($node, 'after the crashes');
is($node->safe_psql('postgres', 'SELECT n FROM totals'), $summary->{well_formed},
	'the total count is exact');

# --- the offsets equal the broker's end offsets and what loadgen produced
my $expected = KafkaCrash::expected_messages(%content,
	partitions    => $partitions,
	malformed_log => $lg->{malformed_log});
is($expected->{total}, $content{count}, 'loadgen stdout run: same message count');
my $end       = KafkaCrash::broker_offsets($broker->bootstrap, $topic, $partitions, 'end');
my $committed = KafkaCrash::committed_offsets($node, $source, $partitions);
is_deeply($end, $expected->{per_partition},
	'the broker holds exactly the messages loadgen produced, per partition');
is_deeply($committed, $end,
	'kafka_offsets equals the end offset of every partition');
my $sum = 0;
$sum += $_ // 0 for @$committed;
is($sum, $summary->{events}, 'the committed offsets add up to the messages produced');
my $begin = KafkaCrash::broker_offsets($broker->bootstrap, $topic, $partitions, 'beginning');
note('broker low watermarks (retention): ' . join(' ', @$begin));

# --- every malformed message is in streamproc.errors exactly once
my $errors = $node->safe_psql('postgres', qq{
SELECT count(*), count(DISTINCT (partition, "offset")), count(*) FILTER (WHERE view IS NULL),
       count(*) FILTER (WHERE source = '$source' AND topic = '$topic')
  FROM streamproc.errors});
is($errors, join('|', ($summary->{malformed}) x 4),
	"each of the $summary->{malformed} malformed messages is in streamproc.errors once, as a parse error of the source");
my @error_rows = split /\n/, $node->safe_psql('postgres',
	q{SELECT key || E'\t' || event FROM streamproc.errors ORDER BY 1});
ok(join("\n", sort @error_rows) eq join("\n", @{ $expected->{malformed} }),
	'streamproc.errors holds the keys and payloads of exactly the malformed messages');
my $misplaced = 0;
for my $row (split /\n/, $node->safe_psql('postgres',
	'SELECT key, partition, "offset" FROM streamproc.errors'))
{
	my ($k, $p, $o) = split /\|/, $row;
	$misplaced++
	  if KafkaCrash::murmur2_partition($k, $partitions) != $p || $o >= $end->[$p];
}
is($misplaced, 0, 'every error row names the partition of its key and an offset below the end');

# --- statistics after sync
is($node->safe_psql('postgres', qq{
SELECT count(*), count(*) FILTER (WHERE state = 'running' AND lag = 0)
  FROM streamproc.stat_sources WHERE source = '$source'}),
	"$partitions|$partitions", 'stat_sources: every partition running without lag');
is($node->safe_psql('postgres', qq{
SELECT sum(errors) FROM streamproc.stat_sources WHERE source = '$source'}),
	$summary->{malformed}, 'stat_sources counts the errors');

# --- the server log: the kills, nothing else
my @crashes = KafkaCrash::crash_lines($node);
is(scalar(@crashes), 0, 'no segfault, abort, PANIC or TRAP in the server log')
  or diag(join("\n", @crashes[ 0 .. ($#crashes < 19 ? $#crashes : 19) ]));
my $log = slurp_file($node->logfile);
my $sigkills = () = $log =~ /\(PID \d+\) was terminated by signal 9/g;
is($sigkills, 5, 'the server log shows the five SIGKILLs');

# --- a clean restart keeps the results
my $before = $node->safe_psql('postgres', 'SELECT n, total FROM totals');
$node->restart;
$node->safe_psql('postgres', "SELECT streamproc.sync('" . 60 * $scale . "s')");
is($node->safe_psql('postgres', 'SELECT n, total FROM totals'), $before,
	'a clean restart keeps the results');
is($node->safe_psql('postgres', 'SELECT count(*) FROM streamproc.errors'),
	$summary->{malformed}, 'and records no error twice');

$node->stop;
$broker->stop;
diag(sprintf('total run time %.1f s', time() - $t_start));
done_testing();
