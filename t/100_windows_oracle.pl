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
use strict;
use warnings;

use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use Time::HiRes qw(time);

use KafkaCrash ();

my $t_start = time();
my $loadgen = KafkaCrash::loadgen_binary();
if (!-x $loadgen)
{
	fail("prerequisite missing: loadgen binary $loadgen (make tools, or set STREAMPROC_LOADGEN)");
	done_testing();
	exit 1;
}

my $count = 120_000;    # 10 ms apart: 1200 s of event time
my $tmp   = PostgreSQL::Test::Utils::tempdir();

my $node = KafkaCrash::new_node('windows_oracle', q{
streamproc.checkpoint_interval = '200ms'
streamproc.batch_size = 2000
});
$node->start;

sub sql { return $node->safe_psql('postgres', $_[0]); }
sub sync_all { sql("SELECT streamproc.sync('60s')"); }

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
CREATE VIEW lat_url WITH (continuous, allowed_lateness = '1 second', late_events = 'late_lat') AS
    SELECT w.window_start, w.window_end, url, count(*) AS n, max(amount) AS top
      FROM clicks, streamproc.tumble(ts, interval '5 seconds') AS w
     GROUP BY w.window_start, w.window_end, url;
CREATE VIEW final_url WITH (continuous, emit = 'final', allowed_lateness = '1 second',
                            late_events = 'late_final') AS
    SELECT w.window_end, url, count(*) AS n, sum(amount) AS total
      FROM clicks, streamproc.tumble(ts, interval '10 seconds') AS w
     GROUP BY w.window_end, url;
CREATE VIEW ret_url WITH (continuous, retention = '60 seconds', late_events = 'late_ret') AS
    SELECT w.window_start, url, count(*) AS n
      FROM clicks, streamproc.tumble(ts, interval '10 seconds') AS w
     GROUP BY w.window_start, url;
});

my @views = qw(tumble_url hop_url sess_user lat_url final_url ret_url);
my %late  = (
	tumble_url => 'late_tumble',
	hop_url    => 'late_hop',
	sess_user  => 'late_sess',
	lat_url    => 'late_lat',
	final_url  => 'late_final',
	ret_url    => 'late_ret');

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
my ($rc, $csv, $err) = KafkaCrash::run_cmd(
	[
		$loadgen,         '--count',   $count, '--seed', 100,
		'--format',       'csv',       '--users', 200,
		'--interval-ms',  10,          '--disorder', '0.1',
		'--max-delay-ms', 4000,        '--quiet'
	]);
die "loadgen failed ($rc): $err" unless $rc == 0;
my @lines = split /^/m, $csv;
is(scalar(@lines), $count, "loadgen generated $count events");

# Chunk boundaries.  Event i has ts = i * 10 ms (before disorder), so a
# chunk ending before event 1000 m + 206 ends at T = 10 m + 2.05 s: after
# the sync, the watermark T - 2 s is just past a 10 s boundary, and the
# moved-back events at the start of the next chunk are late for the 10 s
# tumbles (and the 2 s hop slices).  Ending before 1000 m + 306 does the
# same for the tumbles with allowed_lateness 1 s (C = T - 3 s = 10 m + 0.05
# s; the 5 s tumble too).  Sessions get late events at every boundary.
my @chunks;
my $pos = 0;
my $m   = 0;
my $i   = 0;
while ($pos < @lines)
{
	$m += 1 + $i % 3;
	my $end = 1000 * $m + ($i % 2 ? 306 : 206);
	$end = scalar(@lines) if $end > @lines;
	my $path = "$tmp/chunk$i.csv";
	open(my $fh, '>', $path) or die "cannot write $path: $!";
	print $fh @lines[ $pos .. $end - 1 ];
	close($fh) or die "cannot write $path: $!";
	push @chunks, $path;
	$pos = $end;
	$i++;
}
note(scalar(@chunks) . ' chunks');

# Watermark samples: (stat_views watermark, max view_watermarks) per view.
my %last_wm;
my $went_back = 0;
sub sample_watermarks
{
	my ($when) = @_;
	for my $row (split /\n/, sql(q{
SELECT v.view || '|' || coalesce(extract(epoch FROM v.watermark)::text, '') || '|' ||
       coalesce((SELECT extract(epoch FROM max(w.watermark))::text FROM streamproc.view_watermarks w
                  WHERE w.view = v.view::oid), '')
  FROM streamproc.stat_views v WHERE v.stream = 'clicks'::regclass}))
	{
		my ($view, $wm, $vw) = split /\|/, $row, -1;
		for my $k ([ "$view stat", $wm ], [ "$view persisted", $vw ])
		{
			next if $k->[1] eq '';
			if (defined $last_wm{ $k->[0] } && $k->[1] < $last_wm{ $k->[0] })
			{
				$went_back++;
				diag("$k->[0] watermark went back $when: $last_wm{$k->[0]} -> $k->[1]");
			}
			$last_wm{ $k->[0] } = $k->[1];
		}
	}
}

my $closed_midway;
for my $c (0 .. $#chunks)
{
	sql("BEGIN; COPY clicks FROM '$chunks[$c]' (FORMAT csv);"
		  . " COPY events FROM '$chunks[$c]' (FORMAT csv); COMMIT;");
	# every third chunk follows the previous one without a barrier
	sync_all() unless $c % 3 == 1;
	sample_watermarks("after chunk $c");
	if ($c == int(@chunks / 2))
	{
		sync_all();
		$closed_midway = sql(q{SELECT count(*) FROM streamproc.window_state
		                        WHERE view = 'tumble_url'::regclass});
	}
}
sync_all();
sample_watermarks('at the end');
is($went_back, 0, 'the watermarks sampled after each chunk never went back');
cmp_ok($closed_midway, '>', 0, "windows closed during the run ($closed_midway tumble windows half way)");

is(sql('SELECT count(*) FROM events'), $count, 'the oracle holds every event');
is(sql('SELECT count(*) FROM streamproc.errors'), '0', 'no errors');

# ---------------------------------------------------------------------
# Watermarks
# ---------------------------------------------------------------------
my $wm = sql(q{SELECT max(ts) - interval '2 seconds' FROM events});
is(sql(q{SELECT string_agg(DISTINCT watermark::text, ',') FROM streamproc.stat_views
          WHERE stream = 'clicks'::regclass}),
	$wm, "every view's watermark is max(ts) - watermark_delay ($wm)");
is(sql(q{SELECT string_agg(DISTINCT w.watermark::text, ',') FROM streamproc.view_watermarks w
          JOIN streamproc.stat_views v ON v.view::oid = w.view
         WHERE v.stream = 'clicks'::regclass}),
	$wm, 'view_watermarks holds it (sync() checkpointed it)');

# ---------------------------------------------------------------------
# Oracle checks
# ---------------------------------------------------------------------

# rows of $view vs $oracle: "extra missing rows"
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

# the events a view counted: all of them except its late rows
sub ok_events
{
	my ($view) = @_;
	return "(SELECT user_id, url, amount, ts FROM events EXCEPT ALL"
	  . " SELECT user_id, url, amount, ts FROM $late{$view})";
}

sub sessions_of
{
	my ($events) = @_;
	return qq{
SELECT min(ts) AS window_start, max(ts) + interval '3 seconds' AS window_end, user_id,
       count(*) AS n, sum(amount) AS total
  FROM (SELECT *, sum(brk) OVER (PARTITION BY user_id ORDER BY ts ROWS UNBOUNDED PRECEDING) AS sid
          FROM (SELECT *, CASE WHEN ts - lag(ts) OVER (PARTITION BY user_id ORDER BY ts)
                                    < interval '3 seconds' THEN 0 ELSE 1 END AS brk
                  FROM $events e) b) s
 GROUP BY user_id, sid};
}

my $final_c = sql(q{SELECT watermark - interval '1 second' FROM streamproc.stat_views
                     WHERE view = 'final_url'::regclass});
my $ret_min = sql(q{SELECT watermark - interval '60 seconds' FROM streamproc.stat_views
                     WHERE view = 'ret_url'::regclass});
my %oracle = (
	tumble_url => 'SELECT w.window_start, w.window_end, url, count(*), sum(amount) FROM '
	  . ok_events('tumble_url')
	  . q{ e, streamproc.tumble(e.ts, interval '10 seconds') w GROUP BY 1, 2, 3},
	hop_url => 'SELECT w.window_start, w.window_end, url, count(*) FROM '
	  . ok_events('hop_url')
	  . q{ e, streamproc.hop(e.ts, interval '2 seconds', interval '10 seconds') w GROUP BY 1, 2, 3},
	sess_user => sessions_of(ok_events('sess_user')),
	lat_url   => 'SELECT w.window_start, w.window_end, url, count(*), max(amount) FROM '
	  . ok_events('lat_url')
	  . q{ e, streamproc.tumble(e.ts, interval '5 seconds') w GROUP BY 1, 2, 3},
	final_url => 'SELECT w.window_end, url, count(*), sum(amount) FROM '
	  . ok_events('final_url')
	  . qq{ e, streamproc.tumble(e.ts, interval '10 seconds') w
	        WHERE w.window_end <= '$final_c' GROUP BY 1, 2},
	ret_url => 'SELECT w.window_start, url, count(*) FROM '
	  . ok_events('ret_url')
	  . qq{ e, streamproc.tumble(e.ts, interval '10 seconds') w
	        WHERE w.window_end >= '$ret_min' GROUP BY 1, 2});

# sum of the view's counts over the events it counted (hop: 5 windows each)
my %per_event = (hop_url => 5);

for my $view (@views)
{
	my $rows = compare("$view equals the oracle over all events except $late{$view}",
		"SELECT * FROM $view", $oracle{$view});
	cmp_ok($rows, '>', 0, "$view: the oracle is not empty");

	my ($nlate, $stray, $stat) = split /\|/, sql(qq{
SELECT (SELECT count(*) FROM $late{$view}),
       (SELECT count(*) FROM (SELECT user_id, url, amount, ts FROM $late{$view}
                              EXCEPT ALL SELECT user_id, url, amount, ts FROM events) x),
       (SELECT late_events FROM streamproc.stat_views WHERE view = '$view'::regclass)});
	cmp_ok($nlate, '>', 0, "$view: some events were late ($nlate)");
	is($stray, 0, "$view: every row of $late{$view} is an event of the stream, no duplicates");
	is($stat, $nlate, "$view: stat_views.late_events counts them");
	is(sql(qq{SELECT count(*) FROM $late{$view}
	           WHERE view <> '$view'::regclass OR reason <> 'window closed'
	              OR watermark IS NULL OR watermark > '$wm'}),
		'0', "$view: late rows name the view, the reason and a past watermark");
	next if $view eq 'final_url' || $view eq 'ret_url';
	my $f = $per_event{$view} // 1;
	is(sql("SELECT (SELECT sum(n) FROM $view) + $f * (SELECT count(*) FROM $late{$view})"),
		$f * $count, "$view: counted events + late events = all events");
}

# Late by the rule, against the watermark of the checkpoint that judged it
is(sql(q{SELECT count(*) FROM late_tumble
          WHERE ts >= date_bin('10 seconds', watermark, '1970-01-01 00:00+00')}),
	'0', 'tumble: every late event is before the first open window');
is(sql(q{SELECT count(*) FROM late_hop
          WHERE ts >= date_bin('2 seconds', watermark, '1970-01-01 00:00+00')}),
	'0', 'hop: every late event is before the first open slice');
is(sql(q{SELECT count(*) FROM late_sess WHERE ts >= watermark}),
	'0', 'session: every late event is before the watermark');
is(sql(q{SELECT count(*) FROM late_lat
          WHERE ts >= date_bin('5 seconds', watermark - interval '1 second', '1970-01-01 00:00+00')}),
	'0', 'allowed_lateness: every late event is before the first open window of watermark - lateness');
cmp_ok(sql('SELECT count(*) FROM late_lat'), '<', sql('SELECT count(*) FROM late_tumble'),
	'allowed_lateness admits events that were late without it');

# emit 'final': only closed windows, and some windows are still open
my ($fin_open, $fin_states) = split /\|/, sql(qq{
SELECT (SELECT count(DISTINCT w.window_end) FROM events e,
               streamproc.tumble(e.ts, interval '10 seconds') w WHERE w.window_end > '$final_c'),
       (SELECT count(*) FROM streamproc.window_state WHERE view = 'final_url'::regclass)});
cmp_ok($fin_open, '>', 0, "emit 'final': $fin_open windows of the events are still open and not shown");
is(sql('SELECT count(*) FROM final_url'), $fin_states,
	"emit 'final': the view shows exactly the rows of window_state");

# retention: old windows are gone
is(sql(qq{SELECT count(*) FROM streamproc.window_state
          WHERE view = 'ret_url'::regclass AND window_end < '$ret_min'}),
	'0', 'retention: no closed window older than watermark - retention is kept');
cmp_ok(sql(qq{SELECT count(DISTINCT w.window_end) FROM events e,
               streamproc.tumble(e.ts, interval '10 seconds') w WHERE w.window_end < '$ret_min'}),
	'>', 100, 'retention: most windows were deleted');
cmp_ok(sql(q{SELECT count(*) FROM streamproc.window_state WHERE view = 'ret_url'::regclass}),
	'>', 0, 'retention: the recent closed windows are kept');

# closed windows are in window_state, once
is(sql(q{SELECT count(*) FROM (SELECT view, slot, key FROM streamproc.window_state
                                GROUP BY 1, 2, 3 HAVING count(*) > 1) d}),
	'0', 'window_state has no duplicate windows');
is(sql(qq{SELECT count(*) FROM streamproc.window_state
          WHERE view = 'tumble_url'::regclass AND window_end > '$wm'}),
	'0', 'no window after the watermark is closed');
is(sql(q{SELECT count(*) FROM streamproc.window_state WHERE view = 'tumble_url'::regclass}),
	sql(qq{SELECT count(*) FROM tumble_url WHERE window_end <= '$wm'}),
	'every tumble window that ended by the watermark is closed');

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
is(sql(q{SELECT string_agg(DISTINCT watermark::text, ',') FROM streamproc.stat_views
          WHERE stream = 'clicks'::regclass}),
	$wm, 'the watermark survives the restart');

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
is(sql(q{SELECT count(*) FROM streamproc.window_state WHERE view = 'taps_sess'::regclass}),
	'0', 'nothing closed while the watermark (0 s) is before every session end');

sql('INSERT INTO taps VALUES ' . tap(3, 30, 64));
sync_all();
is(sql(qq{SELECT extract(epoch FROM watermark - $t0)::float8 FROM streamproc.stat_views
          WHERE view = 'taps_sess'::regclass}), '20', 'watermark 20 s');
is(sql(q{SELECT count(*) FROM streamproc.window_state WHERE view = 'taps_sess'::regclass}),
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
