# Event-time windows across crashes.  A stream with tumble, hop, session and
# emit 'final' views (each with a late_events table), and a view over the
# final windows, is fed by a background
# inserter (disordered loadgen events, one COPY per chunk into the stream and
# into a plain oracle table in the same transaction, a sync() after most
# chunks so that windows close all the time) while the test SIGKILLs the
# ingest worker that owns the stream:
#   - phase 1: five times at moments given by the inserter's progress;
#   - phase 2: in a loop, each round committing a chunk that moves the
#     watermark by 200 s (tens of thousands of windows close: 2000 tumble,
#     10000 hop slices and thousands of sessions) and killing the worker
#     0-500 ms later, or right after a sync() that closed them, or twice:
#     during the closing and as soon as the restarted worker shows up
#     (recovering).
# Around every kill the watermarks are sampled (stat_views.watermark and
# streamproc.view_watermarks).  Afterwards, after sync():
#   - each view equals its query as a batch over the oracle's events
#     EXCEPT ALL the view's late rows (sessions: gaps and islands), the
#     emit 'final' one restricted to window_end <= watermark - lateness;
#   - the view over the final windows equals its query over them;
#   - the late rows are exactly the complement: late EXCEPT ALL events is
#     empty and counted + late = all events (nothing dropped, nothing twice);
#   - some events were late; window_runs hold no window twice;
#   - the persisted watermarks never went back, the live one never went
#     below the persisted one, and ends at max(ts) - watermark_delay;
#   - the server log shows the kills and no other crash.
# The views, their oracle and the checks are in t/lib/WindowOracle.pm.
use strict;
use warnings;

use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use IPC::Run ();
use Time::HiRes qw(time sleep);

use KafkaCrash ();
use WindowOracle ();

$SIG{PIPE} = 'IGNORE';

my $seed = $ENV{STREAMPROC_TEST_SEED} // 101;
srand($seed);
diag("random seed $seed (STREAMPROC_TEST_SEED)");

my $t_start = time();
WindowOracle::check_loadgen();

my $count1  = 80_000;    # phase 1, 10 ms apart: 800 s of event time
my $rounds2 = 6;         # phase 2 rounds
my $size2   = 20_000;    # events (200 s) per round of phase 2
my $count2  = $size2 * $rounds2;
my $tmp = PostgreSQL::Test::Utils::tempdir();

my $node = KafkaCrash::new_node('windows_crash', q{
streamproc.checkpoint_interval = '200ms'
streamproc.batch_size = 2000
restart_after_crash = on
});
$node->start;

sub sql { return $node->safe_psql('postgres', $_[0]); }

# emit 'final' here groups by window_start (t/100_windows_oracle.pl: window_end)
WindowOracle::define_view('final_url', like => 'final_url',
	select => 'w.window_start, url, count(*) AS n', group => 'w.window_start, url');
my @views = qw(tumble_url hop_url sess_user final_url);
WindowOracle::create_schema($node, views => \@views);
# A view over the final windows (feed.c): each window that closes reaches it
# once, whatever is killed when.
my $rollup_q = q{SELECT date_bin('10 minutes', window_start, '2000-01-01') AS ten, url,
       sum(n) AS n, count(*) AS minutes FROM final_url GROUP BY 1, 2};
sql("CREATE VIEW final_rollup WITH (continuous) AS $rollup_q");
# And its change log (changes.c): each closed window once, numbered.
sql(q{SELECT streamproc.create_change_log('final_url', retention => '1 day')});
# A view over windows that change until they close (retract.c): each change
# of tumble_url's windows reaches it as the old row taken back and the new
# one added, through tumble_url's change log, which creating it starts.
my $live_q = q{SELECT date_bin('1 minute', window_start, '2000-01-01') AS minute, url,
       sum(n) AS n, sum(total) AS total, count(*) AS windows FROM tumble_url GROUP BY 1, 2};
sql("CREATE VIEW live_rollup WITH (continuous) AS $live_q");
my $owner = sql(q{SELECT 'clicks'::regclass::oid::bigint % current_setting('streamproc.workers')::int});
note("the stream belongs to worker $owner");

# ---------------------------------------------------------------------
# Events: one loadgen run, cut into chunks whose boundaries make late
# events (see WindowOracle::chunk_bounds): chunk ends at 10 m + 2.05 s or
# 10 m + 3.05 s of event time.
# ---------------------------------------------------------------------
my @lines = WindowOracle::loadgen_lines(count => $count1 + $count2, seed => 101, args => [ '--format', 'csv' ]);
is(scalar(@lines), $count1 + $count2, 'loadgen generated the events');

sub write_chunk
{
	my ($name, $from, $to) = @_;
	return WindowOracle::write_chunk("$tmp/$name.csv", \@lines, $from, $to);
}

my @bounds1 = WindowOracle::chunk_bounds($count1);
my @chunks1 = map { write_chunk("p1-$_", @{ $bounds1[$_] }) } 0 .. $#bounds1;
my @chunks2 = map { write_chunk("p2-$_", $count1 + $size2 * $_, $count1 + $size2 * ($_ + 1)) }
  0 .. $rounds2 - 1;

# ---------------------------------------------------------------------
# Watermark samples
# ---------------------------------------------------------------------
# Around every kill, and after each sync(): see WindowOracle::sample_watermarks
my $wms = WindowOracle::watermark_sampler($node);
sub sample { return WindowOracle::sample_watermarks($wms, @_); }

# The pid of the worker that owns the stream, once it runs (bounded wait)
sub owner_pid
{
	my $deadline = time() + 120;
	while (time() < $deadline)
	{
		my $pid = KafkaCrash::try_query($node,
			"SELECT pid FROM streamproc.stat_workers WHERE worker = $owner AND pid IS NOT NULL");
		return $pid if defined $pid && $pid =~ /^\d+$/;
		sleep(0.05);
	}
	return undef;
}

my $kills = 0;
my %pids_killed;
sub kill_owner
{
	my ($label, $pid) = @_;
	$pid //= owner_pid();
	die "$label: no worker owns the stream" unless $pid;
	sample("$label, before the kill") or die "$label: server down before the kill";
	ok(kill('KILL', $pid), "$label: SIGKILLed worker $owner (pid $pid)");
	$wms->{recovering} = 1;
	$kills++;
	$pids_killed{$pid} = 1;
	# The postmaster reinitializes and the launcher starts a new worker:
	# wait for it (a query may still reach the old server first).
	KafkaCrash::wait_until(
		sub {
			my $new = KafkaCrash::try_query($node,
				"SELECT pid FROM streamproc.stat_workers WHERE worker = $owner AND pid IS NOT NULL");
			return defined $new && $new =~ /^\d+$/ && $new != $pid;
		},
		120) or die "$label: the server and its workers did not come back";
	KafkaCrash::wait_server($node) or die "$label: the server did not come back";
	sample("$label, after the server came back");
}

# ---------------------------------------------------------------------
# Phase 1: a background inserter, five kills at progress points
# ---------------------------------------------------------------------
my $script = '';
for my $c (0 .. $#chunks1)
{
	my $sql = WindowOracle::copy_sql($chunks1[$c]);
	$script .= "until psql -X -q -v ON_ERROR_STOP=1 -d postgres -c \"$sql\" >/dev/null 2>&1; do sleep 0.2; done\n";
	# most chunks are followed by a sync(), which closes windows (it fails
	# when a kill interrupts it: the next one will do)
	$script .= "psql -X -q -d postgres -c \"SELECT streamproc.sync('30s')\" >/dev/null 2>&1\n"
	  unless $c % 4 == 3;
}
$script .= "echo inserter done\n";
my ($in, $out, $ierr) = ('', '', '');
my $inserter;
{
	local $ENV{PGHOST} = $node->host;
	local $ENV{PGPORT} = $node->port;
	$inserter = IPC::Run::start([ 'bash', '-c', $script ], \$in, \$out, \$ierr,
		IPC::Run::timeout(300));
}

for my $round (1 .. 5)
{
	my $target = int($round * $count1 / 6.5);
	KafkaCrash::wait_until(
		sub {
			my $n = KafkaCrash::try_query($node, 'SELECT count(*) FROM events');
			return defined $n && $n =~ /^\d+$/ && $n >= $target;
		},
		120) or die "phase 1 round $round: the inserter did not get past $target events";
	my $pid = owner_pid();
	sleep(rand(0.3));
	kill_owner("phase 1 round $round ($target+ events committed)", $pid);
}
$inserter->finish;
like($out, qr/inserter done/, 'phase 1: the inserter committed every chunk');

$node->safe_psql('postgres', "SELECT streamproc.sync('120s')");
sample('after phase 1', synced => 1);
cmp_ok(sql(qq{SELECT count(*) FROM $WindowOracle::CLOSED}), '>', 1000,
	'phase 1: windows closed');

# ---------------------------------------------------------------------
# Phase 2: kills while many windows close
# ---------------------------------------------------------------------
# Where a kill landed: the closed windows right after the crash (the
# checkpointed ones) against those before the chunk.
my %landed;
my $landed = sub {
	my ($label, $before) = @_;
	my $now = sql("SELECT count(*) FROM $WindowOracle::CLOSED");
	my $where = $now == $before ? 'before any of its windows closed' : 'after some windows closed';
	$landed{$where}++;
	note("$label: the kill landed $where ($before -> $now closed windows)");
};
for my $r (0 .. $rounds2 - 1)
{
	my $label = "phase 2 round $r";
	my $closed = sql("SELECT count(*) FROM $WindowOracle::CLOSED");
	sql(WindowOracle::copy_sql($chunks2[$r]));
	my $mode = $r % 3;
	if ($mode == 0)
	{
		# during the batches and checkpoints that close 200 s of windows
		my $pid = owner_pid();
		sleep(rand(0.5));
		kill_owner("$label (0-500 ms after committing 200 s of events)", $pid);
		$landed->($label, $closed);
	}
	elsif ($mode == 1)
	{
		# right after the checkpoint that closed them
		sql("SELECT streamproc.sync('60s')");
		cmp_ok(sql("SELECT count(*) FROM $WindowOracle::CLOSED"), '>', $closed + 10000,
			"$label: the sync closed windows");
		kill_owner("$label (right after a sync that closed windows)");
	}
	else
	{
		# twice: then again as soon as the restarted worker runs (recovering)
		my $pid = owner_pid();
		sleep(rand(0.2));
		kill_owner("$label (during closing)", $pid);
		$landed->($label, $closed);
		kill_owner("$label (the restarted worker, at once)");
	}
	$node->safe_psql('postgres', "SELECT streamproc.sync('120s')");
	sample("$label, after sync", synced => 1);
}

is(scalar(keys %pids_killed), $kills, "$kills kills, each of a new worker process");
diag('phase 2 kills: ' . join(', ', map { "$landed{$_} $_" } sort keys %landed));

# ---------------------------------------------------------------------
# Checks
# ---------------------------------------------------------------------
$node->safe_psql('postgres', "SELECT streamproc.sync('120s')");
sample('at the end', synced => 1);
is(join("\n", @{ $wms->{errors} }), '', 'the watermarks never went back');
note("the live watermark was behind its pre-kill value right after a crash $wms->{live_dips} times");

my $n_events = sql('SELECT count(*) FROM events');
cmp_ok($n_events, '>=', $count1 + $count2, "the oracle holds every event ($n_events; a chunk resent after a crash is in both)");
my $wm = WindowOracle::expected_watermark($node);
is(WindowOracle::live_watermarks($node, 'clicks'), $wm, "every windowed view's watermark is max(ts) - watermark_delay");
is(WindowOracle::persisted_watermarks($node), $wm, 'view_watermarks too');

# stat_views.late_events counts since the server started: the crashes
# reset it, so it is not compared with the late rows here
WindowOracle::check_view($node, $_, min_rows => 1000, events => $n_events) for @views;
my $final_c = WindowOracle::cutoff($node, 'final_url');
is(WindowOracle::count_tumbles($node, "> '$final_c'"),
	'1', "emit 'final' leaves out the one window that is still open");

WindowOracle::check_no_duplicate_windows($node);
WindowOracle::check_closed_tumbles($node, $wm);
is(sql("SELECT (SELECT count(*) FROM (SELECT * FROM final_rollup EXCEPT ALL $rollup_q) a)"
		  . " || ' ' || (SELECT count(*) FROM ($rollup_q EXCEPT ALL SELECT * FROM final_rollup) b)"),
	'0 0', 'final_rollup equals its query over the closed windows of final_url')
  or diag("missing from final_rollup:\n"
	  . sql("SELECT * FROM ($rollup_q EXCEPT ALL SELECT * FROM final_rollup) b ORDER BY 1, 2 LIMIT 30")
	  . "\nits position: " . sql(q{SELECT position FROM streamproc.positions WHERE input = 'upstream windows'})
	  . "\nfinal_url: " . sql('SELECT min(window_start), max(window_start), count(*) FROM final_url'));
cmp_ok(sql('SELECT sum(minutes) FROM final_rollup'), '>=', 1000, '... which are many');
is(sql("SELECT (SELECT count(*) FROM (SELECT * FROM live_rollup EXCEPT ALL $live_q) a)"
		  . " || ' ' || (SELECT count(*) FROM ($live_q EXCEPT ALL SELECT * FROM live_rollup) b)"),
	'0 0', 'live_rollup equals its query over the windows of tumble_url (emit updates)')
  or diag("live_rollup only:\n" . sql("SELECT * FROM (SELECT * FROM live_rollup EXCEPT ALL $live_q) a LIMIT 20")
	  . "\nquery only:\n" . sql("SELECT * FROM ($live_q EXCEPT ALL SELECT * FROM live_rollup) b LIMIT 20"));
my $folded_q = q{SELECT (pg_catalog.jsonb_populate_record(NULL::tumble_url, new)).* FROM
  (SELECT DISTINCT ON (key) key, new FROM streamproc.changes('tumble_url') ORDER BY key, position DESC) f
  WHERE new IS NOT NULL};
is(sql("SELECT (SELECT count(*) FROM (SELECT * FROM tumble_url EXCEPT ALL $folded_q) a)"
		  . " || ' ' || (SELECT count(*) FROM ($folded_q EXCEPT ALL SELECT * FROM tumble_url) b)"),
	'0 0', 'the change log of tumble_url, folded by key, equals the view');
is(sql(q{SELECT bool_and(old IS NOT DISTINCT FROM prev) AND count(*) = max(position) FROM
  (SELECT position, old, lag(new) OVER (PARTITION BY key ORDER BY position) AS prev
     FROM streamproc.changes('tumble_url')) x}),
	't', '... each change follows the one before of its group, numbered without gaps');
my $changes_q = q{SELECT (pg_catalog.jsonb_populate_record(NULL::final_url, new)).*
  FROM streamproc.changes('final_url')};
is(sql("SELECT (SELECT count(*) FROM (SELECT * FROM final_url EXCEPT ALL $changes_q) a)"
		  . " || ' ' || (SELECT count(*) FROM ($changes_q EXCEPT ALL SELECT * FROM final_url) b)"),
	'0 0', 'the change log of final_url holds each of its closed windows once');
is(sql(q{SELECT count(*) = max(position) AND min(position) = 1 AND
                max(position) = streamproc.changes_position('final_url')
           FROM streamproc.changes('final_url')}),
	't', '... numbered from 1 without gaps');
is(sql(q{SELECT count(*) FROM streamproc.errors}), '0', 'no errors');

my @crashes = KafkaCrash::crash_lines($node);
is(scalar(@crashes), 0, 'no segfault, abort, PANIC or TRAP in the server log')
  or diag(join("\n", @crashes[ 0 .. ($#crashes < 19 ? $#crashes : 19) ]));
my $log = slurp_file($node->logfile);
my $sigkills = () = $log =~ /\(PID \d+\) was terminated by signal 9/g;
is($sigkills, $kills, "the server log shows the $kills SIGKILLs");

$node->stop;
diag(sprintf('101_windows_crash ran for %.1f s', time() - $t_start));
done_testing();
