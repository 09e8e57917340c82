# Event-time windows over a Kafka source with an idle partition.
#
# A devbroker topic of 4 partitions; disordered loadgen events (10% moved
# back by up to 4 s) are produced, keyed, only to partitions 0, 1 and 2 (a
# Perl partitioner: user_id mod 3, kcat -p N), in chunks with sync() after
# each, so that windows close during the run and some events are late.
# Partition 3 never gets a message.
#
# Two streams consume the topic (start_offset earliest):
#   - clicks: event_time 'ts', watermark_delay '2 seconds', idle_timeout
#     '3 seconds', consumed by two workers (the view's watermark is the
#     minimum over both).  Partition 3 holds the watermark at -infinity
#     until it has been idle for 3 s; from then on windows close.  Checks:
#     no watermark before that (when sync() returned early enough), the
#     watermark appears by itself (polled), windows close (window_runs),
#     each view (tumble per url, session per user, hop per url) equals the
#     batch query over loadgen's oracle CSV EXCEPT ALL its late rows, the
#     late rows are exactly the complement, some events were late, and
#     the watermark ends between min and max over the partitions of their
#     greatest event time, minus the delay.
#   - clicks_noidle: the same without idle_timeout.  Partition 3 holds the
#     watermark at -infinity for good: no watermark, no window closes, no
#     event is late, and the view equals the oracle over all events.
# Last, on another topic, the same for a source whose second worker is
# busy when the source is created: until that worker has assigned its
# partitions (among them the empty one), the first worker's partitions
# alone must not move the watermark.
# The views, their oracle and the checks are in t/lib/WindowOracle.pm.
use strict;
use warnings;

use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use Time::HiRes qw(time sleep);

use Devbroker;
use KafkaCrash ();
use WindowOracle ();

$SIG{PIPE} = 'IGNORE';

KafkaCrash::check_prerequisites();

my $t_start = time();
my $kcat    = KafkaCrash::kcat_binary();
my $count   = 60_000;    # 10 ms apart: 600 s of event time
my $topic   = 'wclicks';
my $tmp     = PostgreSQL::Test::Utils::tempdir();

my $broker = Devbroker->start(topics => { $topic => 4, slowmember => 4 }, quiet => 1);
my $bs = $broker->bootstrap;

my $node = KafkaCrash::new_node('windows_kafka', q{
streamproc.checkpoint_interval = '200ms'
});
$node->start;

sub sql { return $node->safe_psql('postgres', $_[0]); }
sub sync_all { sql("SELECT streamproc.sync('60s')"); }

# ---------------------------------------------------------------------
# The events and the oracle
# ---------------------------------------------------------------------
my @lines = WindowOracle::loadgen_lines(count => $count, seed => 102,
	args => [ '--print-key', '--oracle-csv', "$tmp/oracle.csv" ]);
is(scalar(@lines), $count, "loadgen generated $count keyed events");

# Chunks end at 10 m + 2.05 s or 10 m + 3.05 s of event time (see
# WindowOracle::chunk_bounds): the moved-back events that open the next
# chunk are late for the 10 s tumbles.
my @chunks = map { [ @lines[ $_->[0] .. $_->[1] - 1 ] ] } WindowOracle::chunk_bounds($count);

# Produce a chunk: partition = user_id (the key) mod 3, never 3.
my @kcat_opts = ('-X', 'socket.timeout.ms=10000', '-X', 'reconnect.backoff.max.ms=500');
my @per_partition = (0, 0, 0, 0);
sub produce_chunk
{
	my ($chunk) = @_;
	my @part = ('', '', '');
	for my $line (@$chunk)
	{
		my ($key) = $line =~ /^(\d+)\t/ or die "no key in $line";
		$part[ $key % 3 ] .= $line;
		$per_partition[ $key % 3 ]++;
	}
	for my $p (0 .. 2)
	{
		next if $part[$p] eq '';
		my ($rc, $out, $err) = KafkaCrash::run_cmd(
			[ $kcat, '-P', '-b', $bs, '-t', $topic, '-p', $p, '-K', "\t", @kcat_opts ],
			input => $part[$p]);
		die "kcat could not produce to $topic [$p] (status $rc): $err" unless $rc == 0;
	}
}

# ---------------------------------------------------------------------
# Schema
# ---------------------------------------------------------------------
# clicks_noidle: the same tumbles as tumble_url, over a stream without
# idle_timeout; its oracle is over all events (none is late)
WindowOracle::define_view('noidle_url', like => 'tumble_url', stream => 'clicks_noidle', late => 'late_noidle');
WindowOracle::create_schema($node, views => [qw(tumble_url sess_user hop_url)],
	stream_options => q{idle_timeout '3 seconds'});
sql(WindowOracle::stream_sql('clicks_noidle') . WindowOracle::view_sql('noidle_url'));
my $t_source = time();
sql(qq{
SELECT streamproc.create_kafka_source('src', 'clicks', '$topic', '$bs', workers => 2);
SELECT streamproc.create_kafka_source('src_noidle', 'clicks_noidle', '$topic', '$bs');
});

my $wm_query = q{SELECT coalesce(extract(epoch FROM watermark)::text, 'null') FROM streamproc.stat_views
                  WHERE view = 'tumble_url'::regclass};

# ---------------------------------------------------------------------
# Partition 3 holds the watermark until it is idle.  Chunks keep
# partitions 0-2 active (an event at most every second or so) while the
# test waits, a bounded poll after each chunk, for the watermark.
# ---------------------------------------------------------------------
my $c = 0;
my ($first_since, $first_wm, $appeared_since, $appeared_chunk);
my @wm_seen;
while ($c <= $#chunks)
{
	produce_chunk($chunks[$c]);
	sync_all();
	my $since = time() - $t_source;
	my $w = sql($wm_query);
	($first_since, $first_wm) = ($since, $w) if $c == 0;
	$c++;
	if ($w eq 'null')
	{
		last if $since > 30;
		KafkaCrash::wait_until(sub { sql($wm_query) ne 'null' }, 0.5);
		$w = sql($wm_query);
		$since = time() - $t_source;
	}
	push @wm_seen, $w;
	if ($w ne 'null')
	{
		($appeared_since, $appeared_chunk) = ($since, $c);
		last;
	}
}
is(sql(q{SELECT count(*) FROM streamproc.stat_sources WHERE source = 'src'}), '4',
	'the source has 4 partitions');
if ($first_since < 2.5)
{
	is($first_wm, 'null',
		sprintf('no watermark %.1f s after the source was created, the first chunk consumed (partition 3 holds it)',
			$first_since));
}
else
{
	note(sprintf('the first sync returned %.1f s after the source was created: '
		  . 'too late to see partition 3 hold the watermark (it is %s)', $first_since, $first_wm));
}
ok(defined $appeared_since, 'the watermark appears once partition 3 is idle')
  or BAIL_OUT('no watermark: ' . sql($wm_query));
cmp_ok($appeared_since, '>=', 3,
	"not before idle_timeout (3 s) after the source was created (after $appeared_chunk chunks)");
note('watermark when it appeared: ' . sql($wm_query));
cmp_ok($c, '<', scalar(@chunks) / 2, 'most chunks are left for closing windows');

# ---------------------------------------------------------------------
# The other chunks, a sync() after each
# ---------------------------------------------------------------------
my $closed_before = sql(qq{SELECT count(*) FROM $WindowOracle::CLOSED WHERE view = 'tumble_url'::regclass});
for (; $c <= $#chunks; $c++)
{
	produce_chunk($chunks[$c]);
	sync_all();
	push @wm_seen, sql($wm_query);
}
my @back = grep { $wm_seen[ $_ - 1 ] ne 'null' && ($wm_seen[$_] eq 'null' || $wm_seen[$_] < $wm_seen[ $_ - 1 ]) }
  1 .. $#wm_seen;
is(scalar(@back), 0, 'the watermark sampled after each chunk never went back');
cmp_ok(sql(qq{SELECT count(*) FROM $WindowOracle::CLOSED WHERE view = 'tumble_url'::regclass}),
	'>', $closed_before + 1000, 'windows closed while partition 3 is idle');
is(join(' ', @per_partition), join(' ', map { sql(
	"SELECT \"offset\" FROM streamproc.kafka_offsets WHERE source = 'src' AND partition = $_") || 0 } 0 .. 3),
	"src consumed every message of every partition (@per_partition)");

# ---------------------------------------------------------------------
# The oracle
# ---------------------------------------------------------------------
sql("COPY events FROM '$tmp/oracle.csv' (FORMAT csv)");
is(sql('SELECT count(*) FROM events'), $count, 'the oracle holds every event');
is(sql('SELECT count(*) FROM streamproc.errors'), '0', 'no errors');

my ($wm, $lo, $hi) = split /\|/, sql(q{
SELECT (SELECT watermark FROM streamproc.stat_views WHERE view = 'tumble_url'::regclass),
       min(m) - interval '2 seconds', max(m) - interval '2 seconds'
  FROM (SELECT max(ts) AS m FROM events GROUP BY user_id % 3) p});
is(sql("SELECT '$wm'::timestamptz BETWEEN '$lo' AND '$hi'"), 't',
	"the watermark ($wm) is between the partitions' least and greatest max(ts) - 2 s");
is(sql(q{SELECT count(DISTINCT coalesce(watermark::text, 'null')) FROM streamproc.stat_views
          WHERE stream = 'clicks'::regclass}), '1', 'the three views share it');

for my $view (qw(tumble_url hop_url sess_user))
{
	WindowOracle::check_view($node, $view, min_rows => 1000, events => $count, stat => 1, watermark => $wm);
}
WindowOracle::check_late_rule($node, $_) for qw(tumble_url sess_user);
WindowOracle::check_no_duplicate_windows($node);
WindowOracle::check_none_closed_after($node, $wm);

# ---------------------------------------------------------------------
# Without idle_timeout the idle partition holds the watermark for good
# ---------------------------------------------------------------------
is(sql(q{SELECT sum("offset") FROM streamproc.kafka_offsets WHERE source = 'src_noidle'}), $count,
	'src_noidle consumed every message');
is(sql(q{SELECT coalesce(watermark::text, 'null') || ' ' || late_events FROM streamproc.stat_views
          WHERE view = 'noidle_url'::regclass}) =~ /^(null|-infinity) 0$/ ? 1 : 0,
	1, 'without idle_timeout: no watermark (partition 3 holds it at -infinity), no late event');
is(sql(qq{SELECT count(*) FROM $WindowOracle::CLOSED WHERE view = 'noidle_url'::regclass}) . ' '
	  . sql(q{SELECT count(*) FROM late_noidle}),
	'0 0', 'without idle_timeout: no window closed, the late table is empty');
cmp_ok(time() - $t_source, '>', 6, 'although partition 3 has been idle for more than twice idle_timeout');
WindowOracle::compare($node, 'noidle_url equals the oracle over all events', 'SELECT * FROM noidle_url',
	WindowOracle::oracle($node, 'noidle_url', events => 'events'));

# ---------------------------------------------------------------------
# A source read by two workers, the second one busy when the source is
# created (a 2-million-row INSERT into a stream it owns): until it has
# assigned its partitions (1 and 3; partition 3 never gets a message and
# there is no idle_timeout), the watermark must not move, and the old
# events of partition 1 must not be late.
# ---------------------------------------------------------------------
my $produce_to = sub {
	my ($t, $p, $lines) = @_;
	my ($rc, $out, $err) = KafkaCrash::run_cmd(
		[ $kcat, '-P', '-b', $bs, '-t', $t, '-p', $p, '-K', "\t", @kcat_opts ], input => $lines);
	die "kcat could not produce to $t [$p] (status $rc): $err" unless $rc == 0;
};
my $msgs = sub {
	my ($p, $time, $n) = @_;
	return join('', map { sprintf(qq{%d\t{"k":%d,"ts":"2026-01-01T%s.%03dZ"}\n}, $p, $p, $time, $_) } 1 .. $n);
};
$produce_to->('slowmember', 0, $msgs->(0, '01:00:00', 100));
$produce_to->('slowmember', 1, $msgs->(1, '00:00:00', 100));
$produce_to->('slowmember', 2, $msgs->(2, '01:00:00', 100));
sql(q{
CREATE FOREIGN TABLE sm (k int, ts timestamptz) SERVER streamproc
    OPTIONS (event_time 'ts', watermark_delay '2 seconds');
CREATE VIEW sm_k WITH (continuous, late_events = 'late_sm') AS
    SELECT w.window_start, k, count(*) AS n
      FROM sm, streamproc.tumble(ts, interval '10 seconds') AS w GROUP BY 1, 2;
});
my $base = sql(q{SELECT 'sm'::regclass::oid::bigint % current_setting('streamproc.workers')::int});
my $busy;
for my $i (1 .. 20)
{
	sql("CREATE FOREIGN TABLE busy$i (a int, b text) SERVER streamproc");
	if (sql("SELECT 'busy$i'::regclass::oid::bigint % current_setting('streamproc.workers')::int") != $base)
	{
		$busy = "busy$i";
		last;
	}
	# A stream takes an even number of oids: a function takes one.
	sql("CREATE FUNCTION pad$i() RETURNS int LANGUAGE sql AS 'SELECT 1'");
}
die 'no stream for the other worker' unless $busy;
sql("CREATE VIEW busy_b WITH (continuous) AS SELECT b, count(*) AS n FROM $busy GROUP BY b");
sql("INSERT INTO $busy SELECT g, (g % 1000)::text FROM generate_series(1, 2000000) g");
sql("SELECT streamproc.create_kafka_source('src_sm', 'sm', 'slowmember', '$bs', workers => 2)");
sql("SELECT streamproc.sync('120s')");
$produce_to->('slowmember', 1, $msgs->(1, '00:00:05', 50));
sql("SELECT streamproc.sync('120s')");
is(sql(q{SELECT string_agg(partition || ':' || worker || ':' || committed_offset, ' ' ORDER BY partition)
           FROM streamproc.stat_sources WHERE source = 'src_sm'}),
	"0:$base:100 1:" . (1 - $base) . ":150 2:$base:100 3:" . (1 - $base) . ':0',
	'slow member: every message consumed, partitions 1 and 3 by the second worker');
is(sql(q{SELECT coalesce(watermark::text, 'null') FROM streamproc.stat_views WHERE view = 'sm_k'::regclass})
	  =~ /^(null|-infinity)$/ ? 'no watermark' : 'watermark '
	  . sql(q{SELECT watermark FROM streamproc.stat_views WHERE view = 'sm_k'::regclass}),
	'no watermark',
	'slow member: partition 3 (no message, no idle_timeout) holds the watermark although its worker started late');
is(sql(qq{SELECT count(*) FROM late_sm}) . ' late, ' . sql(qq{SELECT count(*) FROM $WindowOracle::CLOSED
                                                          WHERE view = 'sm_k'::regclass}) . ' closed',
	'0 late, 0 closed', 'slow member: no event late, no window closed');
is(sql(q{SELECT string_agg(k || ':' || n, ' ' ORDER BY k) FROM sm_k}), '0:100 1:150 2:100',
	'slow member: the view counts every event');

my @crashes = KafkaCrash::crash_lines($node);
is(scalar(@crashes), 0, 'no crash in the server log') or diag(join("\n", @crashes));

$node->stop;
$broker->stop;
diag(sprintf('102_windows_kafka ran for %.1f s', time() - $t_start));
done_testing();
