# A Kafka source rides out a broker outage.  loadgen produces 100,000 json
# events at 5000/s into a 4-partition topic of a devbroker; a few seconds
# in, every broker goes down for 10 seconds, then comes back.
#   - while down: stat_sources shows the source 'backing off' with the last
#     error; the ingest worker does not busy-loop (its CPU time over a
#     5-second window stays well under a second) and the server log grows
#     by a few lines only (no line per retry);
#   - after up: loadgen, which buffers and retries, delivers everything;
#     sync() returns, every view equals the batch oracle, every malformed
#     message is in streamproc.errors once, kafka_offsets equals the end
#     offsets (and adds up to the messages produced), stat_sources says
#     'running' again and the log says so.
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use Time::HiRes qw(time sleep);

use Devbroker;
use KafkaCrash;

KafkaCrash::check_prerequisites();

my $t_start    = time();
my $source     = 'outage_src';
my $topic      = 'clicks';
my $partitions = 4;
my $outage     = 10;        # seconds the brokers stay down
my $cpu_window = 5;         # seconds of CPU accounting while down
my %content    = (
	count      => 100_000,
	seed       => 9191,
	malformed  => '0.001',
	duplicates => '0.01');

my $tmp    = PostgreSQL::Test::Utils::tempdir();
my $broker = Devbroker->start(topics => { $topic => $partitions }, quiet => 1);

my $node = KafkaCrash::new_node('kafka_outage', q{
streamproc.checkpoint_interval = '200ms'
});
$node->start;
KafkaCrash::create_schema($node,
	source  => $source,
	topic   => $topic,
	brokers => $broker->bootstrap);

# Deliveries must outlive the outage and librdkafka's reconnect backoff.
my $lg = KafkaCrash::start_loadgen(%content,
	dir              => $tmp,
	brokers          => $broker->bootstrap,
	topic            => $topic,
	rate             => 5000,
	flush_timeout_ms => 180000,
	extra            => [ '-X', 'message.timeout.ms=300000' ]);

# The consumer is running and has committed a good part of what arrived.
KafkaCrash::wait_committed($node, $source, 10_000)
  or die('the source did not start consuming');
my ($pid, $worker) = KafkaCrash::source_worker_pid($node, $source);
ok($pid, "ingest worker $worker (pid $pid) consumes the source");

# --- outage
my $log_pos = -s $node->logfile;
$broker->down;
my $t_down = time();
ok(KafkaCrash::loadgen_running($lg), 'the brokers went down while loadgen produces');

ok($node->poll_query_until('postgres', qq{
SELECT count(*) > 0 AND bool_and(state = 'backing off' AND last_error <> '')
  FROM streamproc.stat_sources WHERE source = '$source'}),
	'stat_sources shows the source backing off, with the last error');
diag(sprintf('backing off shown %.1f s after the brokers went down', time() - $t_down));
note($node->safe_psql('postgres', qq{
SELECT partition, state, last_error FROM streamproc.stat_sources WHERE source = '$source'}));

# No busy loop: CPU time (all threads) of the worker over a window.
my $cpu0 = KafkaCrash::cpu_seconds($pid);
my $w0   = time();
sleep($cpu_window);
my $cpu1 = KafkaCrash::cpu_seconds($pid);
my $w1   = time();
ok(defined $cpu0 && defined $cpu1, "read the worker's CPU time from /proc/$pid/stat");
my $cpu = ($cpu1 // 0) - ($cpu0 // 0);
cmp_ok($cpu, '<', 1.0,
	sprintf('the worker used %.2f s of CPU in %.1f s while the brokers were down', $cpu, $w1 - $w0));
is($broker->state, 'down', 'the brokers were down for the whole window');
is($node->safe_psql('postgres', qq{
SELECT bool_and(state = 'backing off') FROM streamproc.stat_sources WHERE source = '$source'}),
	't', 'the source is still backing off at the end of the window');
is($node->safe_psql('postgres', qq{
SELECT count(*) FROM streamproc.stat_workers WHERE pid = $pid}),
	'1', 'the same worker process still runs');

my $rest = $t_down + $outage - time();
sleep($rest) if $rest > 0;

# The server log during the outage: a few lines, not one per retry.
my $during = substr(slurp_file($node->logfile), $log_pos);
my @lines  = grep { $_ ne '' } split /\n/, $during;
my @about  = grep { /\Q$source\E/ } @lines;
cmp_ok(scalar(@about), '<', 10,
	scalar(@about) . " server log lines mention the source during the ${outage}-second outage");
# Every line the source's consumer logs names the source (librdkafka's
# own lines too); the total is a coarse bound against other per-retry
# noise.
cmp_ok(scalar(@lines), '<', 30,
	scalar(@lines) . ' server log lines in all during the outage');
is(scalar(grep { /Kafka source "\Q$source\E" is backing off/ } @lines), 1,
	'the log says once that the source is backing off');
my $log_report = "server log during the outage:\n" . join("\n", @lines);
if (@about < 10 && @lines < 30) { note($log_report); } else { diag($log_report); }

$broker->up;
my $t_up = time();

# --- recovery
my $summary = KafkaCrash::finish_loadgen($lg);
ok($summary, 'loadgen delivered every message despite the outage (exit 0)')
  or die 'loadgen failed';
is($summary->{events}, $content{count}, "loadgen produced $content{count} events");
diag(sprintf('loadgen: %d events (%d well-formed, %d duplicates, %d malformed) in %.1f s',
	@$summary{qw(events well_formed duplicates malformed)}, $lg->{elapsed}));

$node->safe_psql('postgres', "SELECT streamproc.sync('120s')");
diag(sprintf('sync returned %.1f s after the brokers came back', time() - $t_up));

ok($node->poll_query_until('postgres', qq{
SELECT count(*) = $partitions AND bool_and(state = 'running')
  FROM streamproc.stat_sources WHERE source = '$source'}),
	'stat_sources shows every partition running again');
is($node->safe_psql('postgres', qq{
SELECT count(*) FILTER (WHERE lag = 0) FROM streamproc.stat_sources WHERE source = '$source'}),
	$partitions, 'no partition lags');
# (A librdkafka error queued before the brokers came back can flip the
# state back once more, so this checks presence, not an exact count.)
my $after = substr(slurp_file($node->logfile), $log_pos);
my $again = () = $after =~ /Kafka source "\Q$source\E" is running again/g;
ok($again >= 1 && $again <= 3, "the log says the source is running again ($again times)");

# The topic holds exactly what loadgen produced: the producer's retries
# duplicated nothing (else the oracle below could not be the truth).
my $expected = KafkaCrash::expected_messages(%content,
	partitions    => $partitions,
	malformed_log => $lg->{malformed_log});
my $end = KafkaCrash::broker_offsets($broker->bootstrap, $topic, $partitions, 'end');
is_deeply($end, $expected->{per_partition},
	'the broker holds exactly as many messages per partition as loadgen produced');

# The views equal the batch oracle.
my $oracle_n = KafkaCrash::load_oracle($node, $lg->{oracle_csv});
is($oracle_n, $summary->{well_formed}, 'the oracle holds every well-formed message');
KafkaCrash::check_views($node, 'after the outage');
is($node->safe_psql('postgres', 'SELECT n FROM totals'), $summary->{well_formed},
	'the total count is exact');

# Offsets.
my $committed = KafkaCrash::committed_offsets($node, $source, $partitions);
is_deeply($committed, $end, 'kafka_offsets equals the end offset of every partition');
my $sum = 0;
$sum += $_ // 0 for @$committed;
is($sum, $summary->{events}, 'the committed offsets add up to the messages produced');

# Malformed messages, once each.
is($node->safe_psql('postgres', qq{
SELECT count(*), count(DISTINCT (partition, "offset")), count(*) FILTER (WHERE view IS NULL)
  FROM streamproc.errors WHERE source = '$source'}),
	join('|', ($summary->{malformed}) x 3),
	"each of the $summary->{malformed} malformed messages is in streamproc.errors once");
my @error_rows = split /\n/, $node->safe_psql('postgres',
	q{SELECT key || E'\t' || event FROM streamproc.errors ORDER BY 1});
ok(join("\n", sort @error_rows) eq join("\n", @{ $expected->{malformed} }),
	'streamproc.errors holds the keys and payloads of exactly the malformed messages');

my @crashes = KafkaCrash::crash_lines($node);
is(scalar(@crashes), 0, 'no segfault, abort, PANIC or TRAP in the server log')
  or diag(join("\n", @crashes));

$node->stop;
$broker->stop;
diag(sprintf('total run time %.1f s', time() - $t_start));
done_testing();
