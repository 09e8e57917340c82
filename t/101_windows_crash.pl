# Event-time windows across crashes.  A stream with tumble, hop, session and
# emit 'final' views (each with a late_events table) is fed by a background
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
#   - the late rows are exactly the complement: late EXCEPT ALL events is
#     empty and counted + late = all events (nothing dropped, nothing twice);
#   - some events were late; window_state holds no window twice;
#   - the persisted watermarks never went back, the live one never went
#     below the persisted one, and ends at max(ts) - watermark_delay;
#   - the server log shows the kills and no other crash.
use strict;
use warnings;

use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use IPC::Run ();
use Time::HiRes qw(time sleep);

use KafkaCrash ();

$SIG{PIPE} = 'IGNORE';

my $seed = $ENV{STREAMPROC_TEST_SEED} // 101;
srand($seed);
diag("random seed $seed (STREAMPROC_TEST_SEED)");

my $t_start = time();
my $loadgen = KafkaCrash::loadgen_binary();
if (!-x $loadgen)
{
	fail("prerequisite missing: loadgen binary $loadgen (make tools, or set STREAMPROC_LOADGEN)");
	done_testing();
	exit 1;
}

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

my $cols = '(user_id int, url text, amount numeric, ts timestamptz)';
sql(qq{
CREATE EXTENSION streamproc;
CREATE FOREIGN TABLE clicks $cols SERVER streamproc
    OPTIONS (event_time 'ts', watermark_delay '2 seconds');
CREATE TABLE events $cols;
CREATE VIEW tumble_url WITH (continuous, late_events = 'late_tumble') AS
    SELECT w.window_start, w.window_end, url, count(*) AS n, sum(amount) AS total
      FROM clicks, streamproc.tumble(ts, interval '10 seconds') AS w
     GROUP BY w.window_start, w.window_end, url;
CREATE VIEW hop_url WITH (continuous, late_events = 'late_hop') AS
    SELECT w.window_start, w.window_end, url, count(*) AS n
      FROM clicks, streamproc.hop(ts, interval '2 seconds', interval '10 seconds') AS w
     GROUP BY w.window_start, w.window_end, url;
CREATE VIEW sess_user WITH (continuous, late_events = 'late_sess') AS
    SELECT w.window_start, w.window_end, user_id, count(*) AS n, sum(amount) AS total
      FROM clicks, streamproc.session(ts, interval '3 seconds') AS w
     GROUP BY w.window_start, w.window_end, user_id;
CREATE VIEW final_url WITH (continuous, emit = 'final', allowed_lateness = '1 second',
                            late_events = 'late_final') AS
    SELECT w.window_start, url, count(*) AS n
      FROM clicks, streamproc.tumble(ts, interval '10 seconds') AS w
     GROUP BY w.window_start, url;
});
my @views = qw(tumble_url hop_url sess_user final_url);
my %late = (
	tumble_url => 'late_tumble',
	hop_url    => 'late_hop',
	sess_user  => 'late_sess',
	final_url  => 'late_final');
my $owner = sql(q{SELECT 'clicks'::regclass::oid::bigint % current_setting('streamproc.workers')::int});
note("the stream belongs to worker $owner");

# ---------------------------------------------------------------------
# Events: one loadgen run, cut into chunks whose boundaries make late
# events (see t/100_windows_oracle.pl): chunk ends at 10 m + 2.05 s or
# 10 m + 3.05 s of event time.
# ---------------------------------------------------------------------
my ($rc, $csv, $err) = KafkaCrash::run_cmd(
	[
		$loadgen,         '--count',   $count1 + $count2, '--seed', 101,
		'--format',       'csv',       '--users', 200,
		'--interval-ms',  10,          '--disorder', '0.1',
		'--max-delay-ms', 4000,        '--quiet'
	]);
die "loadgen failed ($rc): $err" unless $rc == 0;
my @lines = split /^/m, $csv;
is(scalar(@lines), $count1 + $count2, 'loadgen generated the events');

sub write_chunk
{
	my ($name, $from, $to) = @_;
	my $path = "$tmp/$name.csv";
	open(my $fh, '>', $path) or die "cannot write $path: $!";
	print $fh @lines[ $from .. $to - 1 ];
	close($fh) or die "cannot write $path: $!";
	return $path;
}

my @chunks1;
{
	my ($pos, $m, $i) = (0, 0, 0);
	while ($pos < $count1)
	{
		$m += 1 + $i % 3;
		my $end = 1000 * $m + ($i % 2 ? 306 : 206);
		$end = $count1 if $end > $count1;
		push @chunks1, write_chunk("p1-$i", $pos, $end);
		$pos = $end;
		$i++;
	}
}
my @chunks2 = map { write_chunk("p2-$_", $count1 + $size2 * $_, $count1 + $size2 * ($_ + 1)) }
  0 .. $rounds2 - 1;

my $copy = sub {
	my ($path) = @_;
	return "BEGIN; COPY clicks FROM '$path' (FORMAT csv); COPY events FROM '$path' (FORMAT csv); COMMIT;";
};

# ---------------------------------------------------------------------
# Watermark samples
# ---------------------------------------------------------------------
my %persisted;    # "view slot" => epoch, the last persisted watermark seen
my %live;         # view => epoch, the last live watermark seen
my @wm_errors;
my $live_dips = 0;
my $recovering = 0;    # a kill since the last sample after a sync()

# One sample.  After a kill, until a sync() has replayed the log, the live
# watermark may lag behind the greatest live value seen before (the state
# reloads from the checkpoint), but never below the persisted one; after
# a sync() (synced => 1) it must have caught up.  Returns 0 while the
# server is down.
sub sample
{
	my ($when, %o) = @_;
	$recovering = 0 if $o{synced};
	my $tolerant = $recovering;
	my $out = KafkaCrash::try_query($node, q{
SELECT 'p ' || v.view || ' ' || w.slot || ' ' || extract(epoch FROM w.watermark)
  FROM streamproc.view_watermarks w JOIN streamproc.stat_views v ON v.view::oid = w.view
UNION ALL
SELECT 'l ' || view || ' ' || coalesce(extract(epoch FROM watermark)::text, 'null')
  FROM streamproc.stat_views});
	return 0 unless defined $out;
	my (%p, %l);
	for (split /\n/, $out)
	{
		my @f = split / /;
		if ($f[0] eq 'p') { $p{"$f[1] $f[2]"} = $f[3]; }
		else { $l{ $f[1] } = $f[2]; }
	}
	for my $k (sort keys %p)
	{
		push @wm_errors, "$when: persisted watermark of $k went back from $persisted{$k} to $p{$k}"
		  if defined $persisted{$k} && $p{$k} < $persisted{$k};
		$persisted{$k} = $p{$k};
	}
	for my $k (sort keys %persisted)
	{
		push @wm_errors, "$when: persisted watermark of $k disappeared" unless defined $p{$k};
	}
	for my $v (sort keys %l)
	{
		next if $l{$v} eq 'null' && !defined $live{$v};
		my ($floor) = sort { $b <=> $a } map { $persisted{$_} } grep { /^\Q$v\E / } keys %persisted;
		if ($l{$v} eq 'null')
		{
			push @wm_errors, "$when: live watermark of $v is NULL after it was $live{$v}"
			  unless $tolerant;
			next;
		}
		push @wm_errors, "$when: live watermark of $v ($l{$v}) is below the persisted one ($floor)"
		  if defined $floor && $l{$v} < $floor;
		if (defined $live{$v} && $l{$v} < $live{$v})
		{
			if ($tolerant) { $live_dips++; note("$when: live watermark of $v behind its last value: $live{$v} -> $l{$v}"); }
			else { push @wm_errors, "$when: live watermark of $v went back from $live{$v} to $l{$v}"; }
		}
		$live{$v} = $l{$v} if !defined $live{$v} || $l{$v} > $live{$v};
	}
	return 1;
}

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
	$recovering = 1;
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
	my $sql = $copy->($chunks1[$c]);
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
cmp_ok(sql(q{SELECT count(*) FROM streamproc.window_state}), '>', 1000,
	'phase 1: windows closed');

# ---------------------------------------------------------------------
# Phase 2: kills while many windows close
# ---------------------------------------------------------------------
# Where a kill landed: the closed windows right after the crash (the
# checkpointed ones) against those before the chunk.
my %landed;
my $landed = sub {
	my ($label, $before) = @_;
	my $now = sql('SELECT count(*) FROM streamproc.window_state');
	my $where = $now == $before ? 'before any of its windows closed' : 'after some windows closed';
	$landed{$where}++;
	note("$label: the kill landed $where ($before -> $now closed windows)");
};
for my $r (0 .. $rounds2 - 1)
{
	my $label = "phase 2 round $r";
	my $closed = sql('SELECT count(*) FROM streamproc.window_state');
	sql($copy->($chunks2[$r]));
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
		cmp_ok(sql('SELECT count(*) FROM streamproc.window_state'), '>', $closed + 10000,
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
is(join("\n", @wm_errors), '', 'the watermarks never went back');
note("the live watermark was behind its pre-kill value right after a crash $live_dips times");

my $n_events = sql('SELECT count(*) FROM events');
cmp_ok($n_events, '>=', $count1 + $count2, "the oracle holds every event ($n_events; a chunk resent after a crash is in both)");
my $wm = sql(q{SELECT max(ts) - interval '2 seconds' FROM events});
is(sql(q{SELECT string_agg(DISTINCT coalesce(watermark::text, 'null'), ',') FROM streamproc.stat_views}),
	$wm, "every view's watermark is max(ts) - watermark_delay");
is(sql(q{SELECT string_agg(DISTINCT watermark::text, ',') FROM streamproc.view_watermarks}),
	$wm, 'view_watermarks too');

sub compare
{
	my ($name, $view, $oracle) = @_;
	my $r = sql("SELECT (SELECT count(*) FROM (($view) EXCEPT ALL ($oracle)) a) || ' ' ||"
		  . " (SELECT count(*) FROM (($oracle) EXCEPT ALL ($view)) b) || ' ' ||"
		  . " (SELECT count(*) FROM ($oracle) c)");
	my ($extra, $missing, $rows) = split / /, $r;
	my $ok = is("$extra $missing", '0 0', "$name ($rows rows; extra and missing rows)");
	if (!$ok)
	{
		diag(sql("SELECT 'view-only', * FROM (($view) EXCEPT ALL ($oracle) LIMIT 10) a"));
		diag(sql("SELECT 'oracle-only', * FROM (($oracle) EXCEPT ALL ($view) LIMIT 10) b"));
	}
	return $rows;
}

sub ok_events
{
	my ($view) = @_;
	return "(SELECT user_id, url, amount, ts FROM events EXCEPT ALL"
	  . " SELECT user_id, url, amount, ts FROM $late{$view})";
}

my $final_c = sql(q{SELECT watermark - interval '1 second' FROM streamproc.stat_views
                     WHERE view = 'final_url'::regclass});
my %oracle = (
	tumble_url => 'SELECT w.window_start, w.window_end, url, count(*), sum(amount) FROM '
	  . ok_events('tumble_url')
	  . q{ e, streamproc.tumble(e.ts, interval '10 seconds') w GROUP BY 1, 2, 3},
	hop_url => 'SELECT w.window_start, w.window_end, url, count(*) FROM '
	  . ok_events('hop_url')
	  . q{ e, streamproc.hop(e.ts, interval '2 seconds', interval '10 seconds') w GROUP BY 1, 2, 3},
	sess_user => q{
SELECT min(ts), max(ts) + interval '3 seconds', user_id, count(*), sum(amount)
  FROM (SELECT *, sum(brk) OVER (PARTITION BY user_id ORDER BY ts ROWS UNBOUNDED PRECEDING) AS sid
          FROM (SELECT *, CASE WHEN ts - lag(ts) OVER (PARTITION BY user_id ORDER BY ts)
                                    < interval '3 seconds' THEN 0 ELSE 1 END AS brk
                  FROM } . ok_events('sess_user') . q{ e) b) s
 GROUP BY user_id, sid},
	final_url => 'SELECT w.window_start, url, count(*) FROM '
	  . ok_events('final_url')
	  . qq{ e, streamproc.tumble(e.ts, interval '10 seconds') w
	        WHERE w.window_end <= '$final_c' GROUP BY 1, 2});
my %per_event = (hop_url => 5);

for my $view (@views)
{
	my $rows = compare("$view equals the oracle over all events except $late{$view}",
		"SELECT * FROM $view", $oracle{$view});
	cmp_ok($rows, '>', 1000, "$view: the oracle has rows");
	my ($nlate, $stray) = split /\|/, sql(qq{
SELECT (SELECT count(*) FROM $late{$view}),
       (SELECT count(*) FROM (SELECT user_id, url, amount, ts FROM $late{$view}
                              EXCEPT ALL SELECT user_id, url, amount, ts FROM events) x)});
	cmp_ok($nlate, '>', 0, "$view: some events were late ($nlate)");
	is($stray, 0, "$view: $late{$view} holds only events of the stream, none twice");
	next if $view eq 'final_url';
	my $f = $per_event{$view} // 1;
	is(sql("SELECT (SELECT sum(n) FROM $view) + $f * (SELECT count(*) FROM $late{$view})"),
		$f * $n_events, "$view: counted events + late events = all events");
}
is(sql(q{SELECT count(*) FROM (SELECT w.window_end FROM events e,
               streamproc.tumble(e.ts, interval '10 seconds') w
         GROUP BY 1 HAVING w.window_end > (SELECT watermark - interval '1 second'
                                             FROM streamproc.stat_views WHERE view = 'final_url'::regclass)) x}),
	'1', "emit 'final' leaves out the one window that is still open");

is(sql(q{SELECT count(*) FROM (SELECT view, key FROM streamproc.window_state
                                GROUP BY 1, 2 HAVING count(*) > 1) d}),
	'0', 'window_state has no window twice (in any slot)');
is(sql(q{SELECT count(*) FROM streamproc.window_state WHERE view = 'tumble_url'::regclass}),
	sql(qq{SELECT count(*) FROM tumble_url WHERE window_end <= '$wm'}),
	'window_state holds exactly the closed tumble windows');
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
