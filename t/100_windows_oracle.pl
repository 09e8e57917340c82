# Event-time windows over a SQL stream, against a batch oracle.
#
# loadgen generates disordered events (10% moved back by up to 4 s, twice
# the stream's watermark_delay of 2 s); they are COPYed into the stream in
# 60 chunks of uneven size, whose boundaries fall just past the 10 s grid
# (see below), with streamproc.sync() after most chunks, so that windows
# close during the run and some events arrive after their window closed.
# The same rows go to a plain table, the oracle.  Afterwards, for each
# windowed view (tumble, hop, session, tumble with allowed_lateness, emit
# 'final', retention), with L its late_events table:
#   - the view equals the view's query run as a batch over
#     (all events EXCEPT ALL L) (sessions: a gaps-and-islands query);
#   - L holds only events of the stream (L EXCEPT ALL events is empty),
#     and the view counted exactly the other ones (sums of counts);
#   - L is not empty, every row of L is late by the documented rule against
#     the watermark recorded with it, stat_views.late_events counts L;
#   - the emit 'final' view shows exactly the oracle's windows with
#     window_end <= watermark - allowed_lateness, the retention view the
#     oracle's windows with window_end >= watermark - retention;
#   - the watermark is max(ts) - watermark_delay and never went back.
# Then, deterministically, on a second stream: two sessions of a user
# merged by an out-of-order event that bridges them, the session closing,
# a late event and a new session after it.
# The views, their oracle and the checks are in t/lib/WindowOracle.pm.
use strict;
use warnings;

use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use Time::HiRes qw(time);

use KafkaCrash ();
use WindowOracle ();

my $t_start = time();
WindowOracle::check_loadgen();

my $count = 120_000;    # 10 ms apart: 1200 s of event time
my $tmp   = PostgreSQL::Test::Utils::tempdir();

my $node = KafkaCrash::new_node('windows_oracle', q{
streamproc.checkpoint_interval = '200ms'
streamproc.batch_size = 2000
});
$node->start;

sub sql { return $node->safe_psql('postgres', $_[0]); }
sub sync_all { sql("SELECT streamproc.sync('60s')"); }

my @views = qw(tumble_url hop_url sess_user lat_url final_url ret_url);
WindowOracle::create_schema($node, views => \@views);

is(sql(q{SELECT count(*) FILTER (WHERE watermark IS NULL) || ' ' || count(*)
           FROM streamproc.stat_views WHERE stream = 'clicks'::regclass}),
	'6 6', 'no watermark before any event');
is(sql(q{SELECT string_agg(c.relname, ',' ORDER BY c.relname) FROM pg_class c
          WHERE c.relname LIKE 'late\_%' AND c.relkind = 'r'}),
	'late_final,late_hop,late_lat,late_ret,late_sess,late_tumble',
	'the late_events tables were created');

# ---------------------------------------------------------------------
# The events, in chunks
# ---------------------------------------------------------------------
my @lines = WindowOracle::loadgen_lines(count => $count, seed => 100, args => [ '--format', 'csv' ]);
is(scalar(@lines), $count, "loadgen generated $count events");

# Chunk boundaries just past the 10 s grid: see WindowOracle::chunk_bounds
my @bounds = WindowOracle::chunk_bounds(scalar @lines);
my @chunks = map { WindowOracle::write_chunk("$tmp/chunk$_.csv", \@lines, @{ $bounds[$_] }) } 0 .. $#bounds;
note(scalar(@chunks) . ' chunks');

# Watermark samples: stat_views and view_watermarks, per view
my $wms = WindowOracle::watermark_sampler($node, stream => 'clicks');

my $closed_midway;
for my $c (0 .. $#chunks)
{
	sql(WindowOracle::copy_sql($chunks[$c]));
	# every third chunk follows the previous one without a barrier
	sync_all() unless $c % 3 == 1;
	WindowOracle::sample_watermarks($wms, "after chunk $c");
	if ($c == int(@chunks / 2))
	{
		sync_all();
		$closed_midway = sql(qq{SELECT count(*) FROM $WindowOracle::CLOSED
		                        WHERE view = 'tumble_url'::regclass});
	}
}
sync_all();
WindowOracle::sample_watermarks($wms, 'at the end');
is(join("\n", @{ $wms->{errors} }), '', 'the watermarks sampled after each chunk never went back');
cmp_ok($closed_midway, '>', 0, "windows closed during the run ($closed_midway tumble windows half way)");

is(sql('SELECT count(*) FROM events'), $count, 'the oracle holds every event');
is(sql('SELECT count(*) FROM streamproc.errors'), '0', 'no errors');

# ---------------------------------------------------------------------
# Watermarks
# ---------------------------------------------------------------------
my $wm = WindowOracle::expected_watermark($node);
is(WindowOracle::live_watermarks($node, 'clicks'), $wm,
	"every view's watermark is max(ts) - watermark_delay ($wm)");
is(WindowOracle::persisted_watermarks($node, 'clicks'), $wm,
	'view_watermarks holds it (sync() checkpointed it)');

# ---------------------------------------------------------------------
# Oracle checks
# ---------------------------------------------------------------------

# each view against the oracle, its late rows, late by the rule
for my $view (@views)
{
	WindowOracle::check_view($node, $view, events => $count, stat => 1, watermark => $wm);
}
WindowOracle::check_late_rule($node, $_) for qw(tumble_url hop_url sess_user lat_url);

# emit 'final': only closed windows, and some windows are still open
my $final_c    = WindowOracle::cutoff($node, 'final_url');
my $fin_open   = WindowOracle::count_tumbles($node, "> '$final_c'");
my $fin_states = sql(qq{SELECT count(DISTINCT key) FROM $WindowOracle::CLOSED WHERE view = 'final_url'::regclass});
cmp_ok($fin_open, '>', 0, "emit 'final': $fin_open windows of the events are still open and not shown");
is(sql('SELECT count(*) FROM final_url'), $fin_states,
	"emit 'final': the view shows exactly the closed windows");

# retention: old windows are gone
my $ret_min = WindowOracle::cutoff($node, 'ret_url');
is(sql(qq{SELECT count(*) FROM ret_url WHERE window_start + interval '10 seconds' < '$ret_min'}),
	'0', 'retention: the view shows no closed window older than watermark - retention');
is(sql(qq{SELECT count(*) FROM streamproc.window_runs
          WHERE view = 'ret_url'::regclass AND end_hi < '$ret_min'}),
	'0', 'retention: no run whose windows are all older is kept');
cmp_ok(WindowOracle::count_tumbles($node, "< '$ret_min'"), '>', 100, 'retention: most windows were deleted');
cmp_ok(sql(qq{SELECT count(*) FROM $WindowOracle::CLOSED WHERE view = 'ret_url'::regclass}),
	'>', 0, 'retention: the recent closed windows are kept');

# closed windows are in window_runs, once
WindowOracle::check_no_duplicate_windows($node);
WindowOracle::check_none_closed_after($node, $wm, 'tumble_url');
WindowOracle::check_closed_tumbles($node, $wm);

# A restart keeps everything
my %before;
$before{$_} = sql("SELECT md5(string_agg(t::text, ',' ORDER BY t::text)) FROM $_ t") for @views;
$node->restart;
sync_all();
for my $view (@views)
{
	is(sql("SELECT md5(string_agg(t::text, ',' ORDER BY t::text)) FROM $view t"),
		$before{$view}, "$view unchanged by a restart");
}
is(WindowOracle::live_watermarks($node, 'clicks'), $wm, 'the watermark survives the restart');

# ---------------------------------------------------------------------
# Sessions, deterministic: an out-of-order event bridges two sessions
# ---------------------------------------------------------------------
sql(qq{
CREATE FOREIGN TABLE taps (user_id int, url text, amount numeric, ts timestamptz) SERVER streamproc
    OPTIONS (event_time 'ts', watermark_delay '10 seconds');
CREATE VIEW taps_sess WITH (continuous, late_events = 'late_taps') AS
    SELECT w.window_start, w.window_end, user_id, count(*) AS n, sum(amount) AS total
      FROM taps, streamproc.session(ts, interval '3 seconds') AS w
     GROUP BY w.window_start, w.window_end, user_id;
});
my $t0 = "'2026-01-01 00:00:00+00'::timestamptz";
sub tap
{
	my ($user, $sec, $amount) = @_;
	return "($user, '/t', $amount, $t0 + interval '$sec seconds')";
}
sub taps_view
{
	return sql(qq{SELECT user_id || ' ' || extract(epoch FROM window_start - $t0)::float8 || '-'
	                     || extract(epoch FROM window_end - $t0)::float8 || ' ' || n || ' ' || total
	                FROM taps_sess ORDER BY user_id, window_start});
}
sql('INSERT INTO taps VALUES ' . join(', ', tap(1, 0, 1), tap(1, 1, 2), tap(1, 6, 4), tap(1, 7, 8), tap(2, 5, 100)));
sync_all();
is(taps_view(), "1 0-4 2 3\n1 6-10 2 12\n2 5-8 1 100", 'two sessions of user 1, gap 5 s >= 3 s');
sql('INSERT INTO taps VALUES ' . tap(1, 3.5, 16));
sync_all();
is(taps_view(), "1 0-10 5 31\n2 5-8 1 100",
	'an out-of-order event 2.5 s after the first session and before the second merges them');
sql('INSERT INTO taps VALUES ' . tap(1, 10, 32));
sync_all();
is(taps_view(), "1 0-10 5 31\n1 10-13 1 32\n2 5-8 1 100",
	'an event exactly the gap after the last one starts a new session');
is(sql(qq{SELECT count(*) FROM $WindowOracle::CLOSED WHERE view = 'taps_sess'::regclass}),
	'0', 'nothing closed while the watermark (0 s) is before every session end');

sql('INSERT INTO taps VALUES ' . tap(3, 30, 64));
sync_all();
is(sql(qq{SELECT extract(epoch FROM watermark - $t0)::float8 FROM streamproc.stat_views
          WHERE view = 'taps_sess'::regclass}), '20', 'watermark 20 s');
is(sql(qq{SELECT count(*) FROM $WindowOracle::CLOSED WHERE view = 'taps_sess'::regclass}),
	'3', 'the three sessions that ended by 20 s closed');
is(taps_view(), "1 0-10 5 31\n1 10-13 1 32\n2 5-8 1 100\n3 30-33 1 64", 'the view after they closed');

# Late: before W0 = 20 s (even inside a closed session); not late: from 20 s on
sql('INSERT INTO taps VALUES ' . join(', ', tap(1, 9, 128), tap(2, 19.999, 256), tap(1, 20, 512)));
sync_all();
is(taps_view(), "1 0-10 5 31\n1 10-13 1 32\n1 20-23 1 512\n2 5-8 1 100\n3 30-33 1 64",
	'the closed sessions did not change; an event at the watermark opens a new session');
is(sql(qq{SELECT string_agg(user_id || ' ' || extract(epoch FROM ts - $t0)::float8 || ' '
                            || extract(epoch FROM watermark - $t0)::float8 || ' ' || reason, ',' ORDER BY ts)
            FROM late_taps}),
	'1 9 20 window closed,2 19.999 20 window closed', 'the two late events, with the watermark');
is(sql(q{SELECT late_events FROM streamproc.stat_views WHERE view = 'taps_sess'::regclass}),
	'2', 'stat_views counts them');

# ---------------------------------------------------------------------
# allowed_lateness, deterministic: the same 5 s windows with and without
# ---------------------------------------------------------------------
# (The run above cannot compare late counts: which events are late there
# depends on how the two workers' batches interleave.)
sql(qq{
CREATE FOREIGN TABLE lat_taps (url text, ts timestamptz) SERVER streamproc
    OPTIONS (event_time 'ts', watermark_delay '2 seconds');
CREATE VIEW lat_on WITH (continuous, allowed_lateness = '1 second', late_events = 'late_on') AS
    SELECT w.window_start, url, count(*) AS n
      FROM lat_taps, streamproc.tumble(ts, interval '5 seconds') AS w GROUP BY 1, 2;
CREATE VIEW lat_off WITH (continuous, late_events = 'late_off') AS
    SELECT w.window_start, url, count(*) AS n
      FROM lat_taps, streamproc.tumble(ts, interval '5 seconds') AS w GROUP BY 1, 2;
});
sub lat_tap { return "('/l', $t0 + interval '$_[0] seconds')"; }
sub lat_windows
{
	my ($view) = @_;
	return sql(qq{SELECT string_agg(extract(epoch FROM window_start - $t0)::float8 || ' ' || n, ','
	                                ORDER BY window_start) FROM $view});
}
# watermark 95.5 s: without lateness [90, 95) is closed; with 1 s of
# lateness the windows close by 94.5 s, and [90, 95) is still open
sql('INSERT INTO lat_taps VALUES ' . lat_tap(97.5));
sync_all();
sql('INSERT INTO lat_taps VALUES ' . join(', ', lat_tap(92), lat_tap(89.5)));
sync_all();
is(lat_windows('lat_on'), '90 1,95 1', 'allowed_lateness admits an event that is late without it');
is(lat_windows('lat_off'), '95 1', 'without allowed_lateness the same event is late');
is(sql(qq{SELECT string_agg(extract(epoch FROM ts - $t0)::float8::text, ',' ORDER BY ts) FROM late_off}),
	'89.5,92', 'both late events are in the late_events table of the view without lateness');
is(sql(qq{SELECT string_agg(extract(epoch FROM ts - $t0)::float8::text, ',' ORDER BY ts) FROM late_on}),
	'89.5', 'only the event before watermark - lateness is late with it');

is(sql('SELECT count(*) FROM streamproc.errors'), '0', 'no errors at all');

# An event without event time: one error per windowed view, not counted
sql(q{CREATE VIEW taps_n WITH (continuous) AS SELECT count(*) AS n FROM taps});
sql(q{INSERT INTO taps VALUES (4, '/t', 1, NULL), (4, '/t', 1, '2026-01-01 00:00:25+00')});
sync_all();
is(sql(q{SELECT string_agg(view::text || ': ' || message, ',') FROM streamproc.errors}),
	'taps_sess: event time column "ts" is null', 'a NULL event time is an error of the windowed view');
is(sql(q{SELECT n FROM taps_n}), '2', 'the non-windowed view of the stream counts it');
is(sql(q{SELECT sum(n) FROM taps_sess}), '10', 'the windowed view counts only the other one');
my @crashes = KafkaCrash::crash_lines($node);
is(scalar(@crashes), 0, 'no crash in the server log') or diag(join("\n", @crashes));

$node->stop;
diag(sprintf('100_windows_oracle ran for %.1f s', time() - $t_start));
done_testing();
