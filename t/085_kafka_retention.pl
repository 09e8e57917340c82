# Kafka sources and the broker's retention: messages deleted before they
# were consumed, and the timestamps of kafka_offsets and streamproc.errors.
# One server (streamproc preloaded, checkpoints every 200 ms) and one
# devbroker, whose mock cluster keeps only the newest part of a partition
# (tools/devbroker/README.md, Limits): 10,000 messages, then 150,000 more
# while the source is paused, move the partition's low watermark L far
# beyond 10,000 (about 100,000; the exact value depends on the producer's
# batches, so it is read from the broker with kcat -Q).
#
#  1. A paused source falls off the front of its 1-partition topic: after
#     resume_source and sync, exactly one row in streamproc.errors
#     (sqlstate 22000, partition 0, offset 10000, position and message
#     naming offsets 10000 to L-1), the view counts 10000 + (160000 - L)
#     messages, kafka_offsets is at the end (160000), stat_sources says
#     what was lost and runs, the server log says it once.  A fast restart
#     records nothing again.
#  2. The same with the ingest worker SIGKILLed after it found the gap but
#     before a checkpoint could commit it (checkpoint_interval 10 s for
#     this part): the gap is recorded exactly once, the count is right.
#  3. kafka_offsets.updated_at and streamproc.errors.occurred_at are the
#     time of the checkpoint that wrote them, not a frozen one.
#
# streamproc.sync() is the only barrier; polling is used only to wait for
# a state (a source paused, a setting reloaded, the clock advanced, the
# gap found in memory, the server back after the SIGKILL).
#
# Runs in about 9 s (14 s on a 2-core machine with 3 busy loops).
use strict;
use warnings;

use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use IPC::Run ();
use Time::HiRes qw(time sleep);

use Devbroker;
use KafkaCrash;

my $started = time();
my $loadgen = KafkaCrash::loadgen_binary();
my $kcat    = KafkaCrash::kcat_binary();

KafkaCrash::check_prerequisites();

my $broker = Devbroker->start(topics => { ret1 => 1, ret2 => 1, ts3 => 1 });
my $bs = $broker->bootstrap;

# (PostgreSQL::Test::Cluster turns restart_after_crash off; part 2 needs it)
my $node = KafkaCrash::new_node('retention', q{
streamproc.checkpoint_interval = '200ms'
restart_after_crash = on
});
$node->start;
$node->safe_psql('postgres', 'CREATE EXTENSION streamproc');

# ---------------------------------------------------------------------
# Helpers
# ---------------------------------------------------------------------

sub sql { return $node->safe_psql('postgres', $_[0]); }

sub sync_all { sql(q{SELECT streamproc.sync('120s')}); }

my $clicks_cols = '(user_id int, url text, amount numeric, ts timestamptz)';

# run_cmd: KafkaCrash::run_cmd (t/lib/KafkaCrash.pm)
sub run_cmd { return KafkaCrash::run_cmd(@_); }

# loadgen: $count well-formed json messages to $topic
sub loadgen
{
	my ($topic, $count, $seed) = @_;
	my ($rc, $out, $err) = run_cmd([
		$loadgen, '--count', $count, '--seed', $seed, '--quiet',
		'--brokers', $bs, '--topic', $topic ]);
	die "loadgen failed (status $rc): $err" unless $rc == 0;
	die "loadgen did not produce $count messages: $err"
	  unless $err =~ /^loadgen: $count events \($count well-formed/m;
}

# kcat -P: one message per line of $data
sub produce
{
	my ($topic, $data) = @_;
	my ($rc, $out, $err) = run_cmd(
		[ $kcat, '-P', '-b', $bs, '-t', $topic, '-X', 'socket.timeout.ms=10000' ],
		input => $data);
	die "kcat could not produce to $topic (status $rc): $err" unless $rc == 0;
}

# The low (earliest) and high (end) watermarks of partition 0, from
# kcat -Q -t topic:0:-2 / topic:0:-1 ("topic [0] offset N").  One query
# each: kcat keeps only one entry per partition in a query.
sub watermarks
{
	my ($topic) = @_;
	my $low  = KafkaCrash::broker_offsets($bs, $topic, 1, 'beginning')->[0];
	my $high = KafkaCrash::broker_offsets($bs, $topic, 1, 'end')->[0];
	die "kcat -Q gave no watermarks for $topic" unless defined $low && defined $high;
	return ($low, $high);
}

sub log_since
{
	my ($pos) = @_;
	return substr(slurp_file($node->logfile), $pos);
}

sub log_pos { return length(slurp_file($node->logfile)); }

# wait_until: KafkaCrash::wait_until (t/lib/KafkaCrash.pm)
sub wait_until { return KafkaCrash::wait_until(@_); }

# Wait until the source's consumer is gone (pause_source took effect).
sub wait_paused
{
	my ($source) = @_;
	ok($node->poll_query_until('postgres',
			"SELECT count(*) = 0 FROM streamproc._source_stats() WHERE source = '$source'"),
		"$source paused: its consumer is gone");
}

# The gap rows of a source in streamproc.errors (view NULL, the deleted
# messages' message), as "sqlstate|partition|offset|position|message"
sub gap_rows
{
	my ($source) = @_;
	return sql(qq{SELECT string_agg(sqlstate || '|' || partition || '|' || "offset" || '|' ||
	                                position || '|' || message, E'\\n' ORDER BY id)
	                FROM streamproc.errors
	               WHERE source = '$source' AND view IS NULL
	                 AND message LIKE '%deleted by the broker%'});
}

# Set streamproc.checkpoint_interval with ALTER SYSTEM (undef: RESET) and
# reload; wait until a new session sees $show, i.e. the postmaster has
# reloaded and signalled the workers.
sub set_checkpoint_interval
{
	my ($value, $show) = @_;
	sql(defined $value
		? "ALTER SYSTEM SET streamproc.checkpoint_interval = '$value'"
		: 'ALTER SYSTEM RESET streamproc.checkpoint_interval');
	sql('SELECT pg_reload_conf()');
	ok($node->poll_query_until('postgres', 'SHOW streamproc.checkpoint_interval', $show),
		"streamproc.checkpoint_interval reloaded: $show");
}

# The retention scenario up to the gap: stream, count(*) view, source;
# 10,000 messages consumed; paused; 150,000 more.  Returns L, the low
# watermark after that.
sub setup_gap
{
	my ($n, $source, $topic, $seed) = @_;
	sql(qq{
CREATE FOREIGN TABLE clicks$n $clicks_cols SERVER streamproc;
CREATE VIEW total$n WITH (continuous) AS SELECT count(*) AS n FROM clicks$n;
SELECT streamproc.create_kafka_source('$source', 'clicks$n', '$topic', '$bs');
});
	loadgen($topic, 10000, $seed);
	sync_all();
	is(sql("SELECT n FROM total$n") . ' '
		  . sql(qq{SELECT "offset" FROM streamproc.kafka_offsets WHERE source = '$source' AND partition = 0}),
		'10000 10000', "$source: the first 10000 messages are consumed and committed");

	sql("SELECT streamproc.pause_source('$source')");
	wait_paused($source);
	loadgen($topic, 150000, $seed + 1);
	my ($low, $high) = watermarks($topic);
	is($high, 160000, "$topic: the broker holds offsets up to 160000");
	# The premise: retention deleted messages the source has not consumed.
	cmp_ok($low, '>', 10000,
		"$topic: retention moved the low watermark beyond the committed offset 10000 (it is $low)")
	  or BAIL_OUT('the devbroker did not apply retention; nothing to test');
	diag("$topic: low watermark L = $low after 160000 messages");
	return $low;
}

# ---------------------------------------------------------------------
# 1. Messages deleted by retention before they were consumed
# ---------------------------------------------------------------------
my ($L1, $count1);
subtest '1. paused source behind the retention: one gap, once' => sub {
	$L1 = setup_gap(1, 'src1', 'ret1', 11);
	my $last = $L1 - 1;
	$count1 = 10000 + (160000 - $L1);
	my $logpos = log_pos();

	sql(q{SELECT streamproc.resume_source('src1')});
	sync_all();

	is(sql(q{SELECT count(*) FROM streamproc.errors WHERE source = 'src1'}), '1',
		'exactly one row in streamproc.errors for src1');
	is(sql(q{SELECT (view IS NULL) || '|' || sqlstate || '|' || topic || '|' || partition || '|' ||
	                "offset" || '|' || position || '|' || message || '|' || (event IS NULL) || '|' || (key IS NULL)
	           FROM streamproc.errors WHERE source = 'src1'}),
		"true|22000|ret1|0|10000|partition 0 offsets 10000 to $last|"
		  . "messages 10000 to $last of partition 0 were deleted by the broker before they were consumed|true|true",
		"the row: view NULL, 22000, partition 0, offset 10000, offsets 10000 to $last");
	is(sql('SELECT n FROM total1'), $count1,
		"the view counts 10000 + (160000 - $L1) = $count1 messages");
	is(sql(q{SELECT partition || ':' || "offset" FROM streamproc.kafka_offsets WHERE source = 'src1'}),
		'0:160000', 'kafka_offsets: partition 0 at 160000');
	is(sql(q{SELECT state || '|' || committed_offset || '|' || lag || '|' || events || '|' || errors
	           FROM streamproc.stat_sources WHERE source = 'src1'}),
		'running|160000|0|' . $count1 . '|1',
		'stat_sources: running, committed 160000, lag 0, the events consumed (before and after the pause), one error');
	like(sql(q{SELECT last_error FROM streamproc.stat_sources WHERE source = 'src1'}),
		qr/^messages 10000 to $last of partition 0 were deleted by the broker before they were consumed$/,
		'stat_sources.last_error names the deleted messages');

	my @lines = grep { /Kafka source "src1" lost messages/ } split /\n/, log_since($logpos);
	is(scalar(@lines), 1, 'the server log says once that src1 lost messages');
	like($lines[0] // '', qr/LOG:\s+streamproc: Kafka source "src1" lost messages 10000 to $last of partition 0$/,
		"... messages 10000 to $last of partition 0");

	# Recorded once across restarts
	$logpos = log_pos();
	$node->restart;    # pg_ctl restart: fast mode
	sync_all();
	is(sql(q{SELECT count(*) FROM streamproc.errors WHERE source = 'src1'}), '1',
		'after a fast restart: still exactly one error row for src1');
	is(gap_rows('src1'),
		"22000|0|10000|partition 0 offsets 10000 to $last|"
		  . "messages 10000 to $last of partition 0 were deleted by the broker before they were consumed",
		'... the same gap row');
	is(sql('SELECT n FROM total1'), $count1, '... the count is unchanged');
	is(sql(q{SELECT "offset" FROM streamproc.kafka_offsets WHERE source = 'src1'}), '160000',
		'... kafka_offsets unchanged');
	is(join("\n", grep { /lost messages/ } split /\n/, log_since($logpos)), '',
		'... and the log says nothing about lost messages again');
};

# ---------------------------------------------------------------------
# 2. The gap found, the worker SIGKILLed before the checkpoint
# ---------------------------------------------------------------------
subtest '2. SIGKILL after the gap was found, before its checkpoint' => sub {
	# Checkpoints 10 s apart: the window between finding the gap and
	# committing it is wide enough to kill the worker in.
	set_checkpoint_interval('10s', '10s');

	my $L2 = setup_gap(2, 'src2', 'ret2', 21);
	my $last = $L2 - 1;
	my $count2 = 10000 + (160000 - $L2);
	my $logpos = log_pos();

	sql(q{SELECT streamproc.resume_source('src2')});
	# The state: the worker has found the gap (in memory) ...
	my $took = wait_until(sub { log_since($logpos) =~ /Kafka source "src2" lost messages/ }, 30);
	ok(defined $took, sprintf('the worker found the gap of src2 (%s s after resume)',
		defined $took ? sprintf('%.2f', $took) : 'not within 30'));
	my ($pid, $worker) = KafkaCrash::source_worker_pid($node, 'src2');
	ok(defined $pid, 'the ingest worker of src2 is running') or return;
	# ... and not committed it
	is(sql(q{SELECT count(*) FROM streamproc.errors WHERE source = 'src2'}) . ' '
		  . sql(q{SELECT "offset" FROM streamproc.kafka_offsets WHERE source = 'src2'}),
		'0 10000', 'before the kill: no error row for src2, kafka_offsets still at 10000');
	ok(kill('KILL', $pid), "SIGKILL the ingest worker $worker (pid $pid)");
	ok(KafkaCrash::wait_server($node, $pid), 'the server accepts queries again after the crash restart');

	# The new worker checkpoints no earlier than 10 s after it started:
	# the kill did beat the checkpoint.
	is(KafkaCrash::try_query($node, q{SELECT count(*) FROM streamproc.errors WHERE source = 'src2'}) . ' '
		  . KafkaCrash::try_query($node, q{SELECT "offset" FROM streamproc.kafka_offsets WHERE source = 'src2'}),
		'0 10000', 'after the crash: the gap was not committed, kafka_offsets at 10000');

	sync_all();
	is(sql(q{SELECT count(*) FROM streamproc.errors WHERE source = 'src2'}), '1',
		'exactly one row in streamproc.errors for src2');
	is(gap_rows('src2'),
		"22000|0|10000|partition 0 offsets 10000 to $last|"
		  . "messages 10000 to $last of partition 0 were deleted by the broker before they were consumed",
		"the gap row: 22000, partition 0, offset 10000, offsets 10000 to $last");
	is(sql('SELECT n FROM total2'), $count2,
		"the view counts 10000 + (160000 - $L2) = $count2 messages");
	is(sql(q{SELECT "offset" FROM streamproc.kafka_offsets WHERE source = 'src2'}), '160000',
		'kafka_offsets of src2 at 160000');
	my $nlog = () = log_since($logpos) =~ /Kafka source "src2" lost messages 10000 to $last of partition 0$/mg;
	diag("the server log says $nlog times that src2 lost messages 10000 to $last "
		  . '(once before the kill, once by the restarted worker)');

	# src1 through the crash
	is(sql(q{SELECT count(*) FROM streamproc.errors WHERE source = 'src1'}) . ' ' . sql('SELECT n FROM total1'),
		"1 $count1", 'src1 after the crash: one error row, the count unchanged');

	set_checkpoint_interval(undef, '200ms');
};

# ---------------------------------------------------------------------
# 3. updated_at and occurred_at move
# ---------------------------------------------------------------------
subtest '3. kafka_offsets.updated_at and errors.occurred_at move' => sub {
	sql(qq{
CREATE FOREIGN TABLE clicks3 $clicks_cols SERVER streamproc;
CREATE VIEW total3 WITH (continuous) AS SELECT count(*) AS n FROM clicks3;
SELECT streamproc.create_kafka_source('src3', 'clicks3', 'ts3', '$bs');
});
	my $updated = sub {
		return sql(q{SELECT "offset" || '|' || updated_at FROM streamproc.kafka_offsets WHERE source = 'src3'});
	};
	my $wait_clock = sub {
		my ($ts, $what) = @_;
		ok($node->poll_query_until('postgres',
				"SELECT clock_timestamp() > '$ts'::timestamptz + interval '1 second'"),
			"the clock is 1 s past $what");
	};

	loadgen('ts3', 100, 31);
	sync_all();
	my ($o1, $u1) = split /\|/, $updated->();
	is($o1, '100', 'src3 committed offset 100');
	$wait_clock->($u1, 'the first updated_at');

	loadgen('ts3', 100, 32);
	sync_all();
	my ($o2, $u2) = split /\|/, $updated->();
	is($o2, '200', 'src3 committed offset 200');
	is(sql("SELECT '$u2'::timestamptz >= '$u1'::timestamptz + interval '1 second'"), 't',
		"kafka_offsets.updated_at moved by at least 1 s ($u1 -> $u2)");

	produce('ts3', "not json 1\n");
	sync_all();
	my $e1 = sql(q{SELECT occurred_at FROM streamproc.errors WHERE source = 'src3'});
	is(sql(q{SELECT count(*) || ' ' || min("offset") FROM streamproc.errors WHERE source = 'src3'}), '1 200',
		'the first malformed message is recorded');
	$wait_clock->($e1, 'the first occurred_at');

	produce('ts3', "not json 2\n");
	sync_all();
	is(sql(q{SELECT count(*) || ' ' || string_agg("offset"::text, ',' ORDER BY "offset")
	           FROM streamproc.errors WHERE source = 'src3'}),
		'2 200,201', 'the second malformed message is recorded');
	my $e2 = sql(q{SELECT occurred_at FROM streamproc.errors WHERE source = 'src3' AND "offset" = 201});
	is(sql("SELECT '$e2'::timestamptz >= '$e1'::timestamptz + interval '1 second'"), 't',
		"errors.occurred_at of messages produced 1 s apart are at least 1 s apart ($e1 -> $e2)");
	my (undef, $u3) = split /\|/, $updated->();
	is(sql("SELECT '$u3'::timestamptz >= '$e1'::timestamptz + interval '1 second'"), 't',
		"kafka_offsets.updated_at moved again ($u3)");
	is(sql('SELECT n FROM total3'), '200', 'the view counts the 200 well-formed messages');
};

# ---------------------------------------------------------------------
# The whole log
# ---------------------------------------------------------------------
my $sigkills = () = slurp_file($node->logfile) =~ /\(PID \d+\) was terminated by signal 9/g;
is($sigkills, 1, 'the server log shows the one SIGKILL');
is(join("\n", KafkaCrash::crash_lines($node)), '', 'no crash in the server log');

$node->stop;
$broker->stop;
diag(sprintf('085_kafka_retention ran for %.1f s', time() - $started));
done_testing();
