package WindowOracle;

# WindowOracle - shared pieces of the event-time window tests
# (t/100_windows_oracle.pl, t/101_windows_crash.pl, t/102_windows_kafka.pl):
# the clicks stream and its windowed views, each with a late_events table;
# the oracle, each view's query run as a batch over the events table minus
# the view's late rows (sessions: a gaps-and-islands query); loadgen's
# disordered events and the chunks they are sent in; the EXCEPT ALL
# comparison; the checks of the late rows; a sampler of the watermarks.
#
#   use WindowOracle ();
#   my $loadgen = WindowOracle::check_loadgen();
#   WindowOracle::create_schema($node, views => [qw(tumble_url hop_url sess_user)]);
#   my @lines = WindowOracle::loadgen_lines(count => N, seed => S, args => [ '--format', 'csv' ]);
#   for my $c (WindowOracle::chunk_bounds(scalar @lines)) { my ($from, $to) = @$c; ... }
#   $node->safe_psql('postgres', WindowOracle::copy_sql($path));   # stream and oracle
#   my $wms = WindowOracle::watermark_sampler($node, stream => 'clicks');
#   WindowOracle::sample_watermarks($wms, 'after chunk 3');
#   WindowOracle::check_view($node, 'tumble_url', events => N, stat => 1, watermark => $wm);
#   WindowOracle::check_late_rule($node, 'tumble_url');
#   WindowOracle::compare($node, $name, $view_query, WindowOracle::oracle($node, $view));
#   WindowOracle::define_view('noidle_url', like => 'tumble_url', stream => ..., late => ...);
#
# The stream is clicks (user_id, url, amount, ts) with event_time 'ts' and
# watermark_delay '2 seconds'; the oracle table is events, with the same
# columns.  The views are named after %VIEWS; define_view() adds variants.
# Each check is one test (check_view: several), as Test::More assertions.

use strict;
use warnings;

use Carp qw(croak);
use Test::More;

use KafkaCrash ();

our $COLS  = '(user_id int, url text, amount numeric, ts timestamptz)';
our $DELAY = '2 seconds';    # the stream's watermark_delay

# The closed windows of every windowed view (streamproc.window_runs,
# decoded), with the columns view, slot, closed, window_start, window_end
# and key: a FROM item.
our $CLOSED = q{(SELECT v.view::oid AS view, c.* FROM streamproc.views v,
                        streamproc._closed_windows(v.view) c
                  WHERE v.window_kind IS NOT NULL) closed_windows};

# The windowed views.  Each has its late_events table (late), its other
# options (with), its query (select, window over ts, group) over a stream
# (default clicks) and:
#   - shows: [ op, interval ] when the view shows only the windows with
#     window_end op (watermark - interval): emit 'final' (<=, the allowed
#     lateness), retention (>=, the retention);
#   - per_event: how many of its windows an event falls into (default 1);
#   - late_rule: [ condition, description ]: a late row that matches the
#     condition was not late by the documented rule;
#   - oracle: a sub that makes the oracle of a set of events, when the
#     view's query cannot be run as a batch (sessions).
our %VIEWS = (
	tumble_url => {
		late      => 'late_tumble',
		select    => 'w.window_start, w.window_end, url, count(*) AS n, sum(amount) AS total',
		window    => q{streamproc.tumble(ts, interval '10 seconds')},
		group     => 'w.window_start, w.window_end, url',
		late_rule => [
			q{ts >= date_bin('10 seconds', watermark, '1970-01-01 00:00+00')},
			'tumble: every late event is before the first open window'
		],
	},
	hop_url => {
		late      => 'late_hop',
		select    => 'w.window_start, w.window_end, url, count(*) AS n',
		window    => q{streamproc.hop(ts, interval '2 seconds', interval '10 seconds')},
		group     => 'w.window_start, w.window_end, url',
		per_event => 5,
		late_rule => [
			q{ts >= date_bin('2 seconds', watermark, '1970-01-01 00:00+00')},
			'hop: every late event is before the first open slice'
		],
	},
	sess_user => {
		late      => 'late_sess',
		select    => 'w.window_start, w.window_end, user_id, count(*) AS n, sum(amount) AS total',
		window    => q{streamproc.session(ts, interval '3 seconds')},
		group     => 'w.window_start, w.window_end, user_id',
		oracle    => \&sessions_of,
		late_rule => [ 'ts >= watermark', 'session: every late event is before the watermark' ],
	},
	lat_url => {
		late      => 'late_lat',
		with      => q{allowed_lateness = '1 second'},
		select    => 'w.window_start, w.window_end, url, count(*) AS n, max(amount) AS top',
		window    => q{streamproc.tumble(ts, interval '5 seconds')},
		group     => 'w.window_start, w.window_end, url',
		late_rule => [
			q{ts >= date_bin('5 seconds', watermark - interval '1 second', '1970-01-01 00:00+00')},
			'allowed_lateness: every late event is before the first open window of watermark - lateness'
		],
	},
	final_url => {
		late   => 'late_final',
		with   => q{emit = 'final', allowed_lateness = '1 second'},
		select => 'w.window_end, url, count(*) AS n, sum(amount) AS total',
		window => q{streamproc.tumble(ts, interval '10 seconds')},
		group  => 'w.window_end, url',
		shows  => [ '<=', '1 second' ],
	},
	ret_url => {
		late   => 'late_ret',
		with   => q{retention = '60 seconds'},
		select => 'w.window_start, url, count(*) AS n',
		window => q{streamproc.tumble(ts, interval '10 seconds')},
		group  => 'w.window_start, url',
		shows  => [ '>=', '60 seconds' ],
	});

# Add (or replace) a view: like => an existing one, and what differs.
sub define_view
{
	my ($name, %o) = @_;
	my $like = delete $o{like};
	croak "define_view $name: no view $like" if defined $like && !$VIEWS{$like};
	$VIEWS{$name} = { %{ defined $like ? $VIEWS{$like} : {} }, %o };
	return $VIEWS{$name};
}

sub _view
{
	my ($view) = @_;
	return $VIEWS{$view} // croak "no windowed view $view in WindowOracle::%VIEWS";
}

sub late_table { return _view($_[0])->{late}; }

# A stream of the clicks columns; $options: more OPTIONS after event_time
# and watermark_delay.
sub stream_sql
{
	my ($stream, $options) = @_;
	my $opt = "event_time 'ts', watermark_delay '$DELAY'";
	$opt .= ", $options" if defined $options && $options ne '';
	return "CREATE FOREIGN TABLE $stream $COLS SERVER streamproc\n    OPTIONS ($opt);\n";
}

sub view_sql
{
	my ($view) = @_;
	my $v = _view($view);
	my $with = join(', ', 'continuous', grep { defined } ($v->{with}, "late_events = '$v->{late}'"));
	return "CREATE VIEW $view WITH ($with) AS\n"
	  . "    SELECT $v->{select}\n"
	  . '      FROM ' . ($v->{stream} // 'clicks') . ", $v->{window} AS w\n"
	  . "     GROUP BY $v->{group};\n";
}

# The extension, the stream clicks (stream_options: more of its OPTIONS),
# the oracle table events and the views, in the order given.
sub create_schema
{
	my ($node, %o) = @_;
	my $sql = "CREATE EXTENSION streamproc;\n"
	  . stream_sql('clicks', $o{stream_options})
	  . "CREATE TABLE events $COLS;\n";
	$sql .= view_sql($_) for @{ $o{views} // croak 'create_schema: views' };
	$node->safe_psql('postgres', $sql);
}

# ---------------------------------------------------------------------
# The events
# ---------------------------------------------------------------------

# The loadgen binary, or a failure and exit (not a skip) without it.
sub check_loadgen
{
	my $loadgen = KafkaCrash::loadgen_binary();
	if (!-x $loadgen)
	{
		fail("prerequisite missing: loadgen binary $loadgen (make tools, or set STREAMPROC_LOADGEN)");
		done_testing();
		exit 1;
	}
	return $loadgen;
}

# loadgen's disordered events, 10 ms apart, 10% moved back by up to 4 s
# (twice the watermark_delay), 200 users; args: how to print them.  Returns
# the lines of its stdout.
sub loadgen_lines
{
	my (%o) = @_;
	my ($rc, $out, $err) = KafkaCrash::run_cmd(
		[
			KafkaCrash::loadgen_binary(),
			'--count'        => $o{count},
			'--seed'         => $o{seed},
			'--users'        => 200,
			'--interval-ms'  => 10,
			'--disorder'     => '0.1',
			'--max-delay-ms' => 4000,
			@{ $o{args} // [] },
			'--quiet'
		]);
	die "loadgen failed ($rc): $err" unless $rc == 0;
	return split /^/m, $out;
}

# Chunk boundaries, [from, to) pairs over $count events.  Event i has
# ts = i * 10 ms (before disorder), so a chunk ending before event
# 1000 m + 206 ends at T = 10 m + 2.05 s: after a sync(), the watermark
# T - 2 s is just past a 10 s boundary, and the moved-back events at the
# start of the next chunk are late for the 10 s tumbles (and the 2 s hop
# slices).  Ending before 1000 m + 306 does the same for the tumbles with
# allowed_lateness 1 s (C = T - 3 s = 10 m + 0.05 s; the 5 s tumble too).
# Sessions get late events at every boundary.
sub chunk_bounds
{
	my ($count) = @_;
	my @bounds;
	my ($pos, $m, $i) = (0, 0, 0);
	while ($pos < $count)
	{
		$m += 1 + $i % 3;
		my $end = 1000 * $m + ($i % 2 ? 306 : 206);
		$end = $count if $end > $count;
		push @bounds, [ $pos, $end ];
		$pos = $end;
		$i++;
	}
	return @bounds;
}

# Write lines $from .. $to - 1 of @$lines to $path; returns $path.
sub write_chunk
{
	my ($path, $lines, $from, $to) = @_;
	open(my $fh, '>', $path) or die "cannot write $path: $!";
	print $fh @{$lines}[ $from .. $to - 1 ];
	close($fh) or die "cannot write $path: $!";
	return $path;
}

# One transaction that COPYs a CSV file into the stream and the oracle.
sub copy_sql
{
	my ($path) = @_;
	return "BEGIN; COPY clicks FROM '$path' (FORMAT csv); COPY events FROM '$path' (FORMAT csv); COMMIT;";
}

# ---------------------------------------------------------------------
# The oracle
# ---------------------------------------------------------------------

# The events a view counted: all of them except its late rows
sub ok_events
{
	my ($view) = @_;
	my $late = late_table($view);
	return "(SELECT user_id, url, amount, ts FROM events EXCEPT ALL"
	  . " SELECT user_id, url, amount, ts FROM $late)";
}

# The sessions (gap 3 s) per user of a set of events: gaps and islands
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

# The bound of the windows a view with "shows" keeps: its watermark minus
# the allowed lateness (emit 'final') or the retention.
sub cutoff
{
	my ($node, $view) = @_;
	my $shows = _view($view)->{shows} // croak "$view shows every window";
	return $node->safe_psql('postgres', qq{SELECT watermark - interval '$shows->[1]' FROM streamproc.stat_views
                     WHERE view = '$view'::regclass});
}

# The view's query as a batch over $o{events} (default: the events it
# counted), restricted like the view to the windows it shows.
sub oracle
{
	my ($node, $view, %o) = @_;
	my $v = _view($view);
	my $events = $o{events} // ok_events($view);
	return $v->{oracle}->($events) if $v->{oracle};
	my $where = '';
	$where = " WHERE w.window_end $v->{shows}[0] '" . cutoff($node, $view) . "'" if $v->{shows};
	return "SELECT $v->{select} FROM $events e, $v->{window} w$where GROUP BY $v->{group}";
}

# Rows of $view vs $oracle (queries): one test, no extra and no missing
# rows (EXCEPT ALL both ways; a sample of each on failure).  Returns the
# oracle's row count.
sub compare
{
	my ($node, $name, $view, $oracle) = @_;
	my $r = $node->safe_psql('postgres',
		"SELECT (SELECT count(*) FROM (($view) EXCEPT ALL ($oracle)) a) || ' ' ||"
		  . " (SELECT count(*) FROM (($oracle) EXCEPT ALL ($view)) b) || ' ' ||"
		  . " (SELECT count(*) FROM ($oracle) c)");
	my ($extra, $missing, $rows) = split / /, $r;
	my $ok = is("$extra $missing", '0 0', "$name ($rows rows; extra and missing rows)");
	if (!$ok)
	{
		diag($node->safe_psql('postgres', "SELECT 'view-only', * FROM (($view) EXCEPT ALL ($oracle) LIMIT 10) a"));
		diag($node->safe_psql('postgres', "SELECT 'oracle-only', * FROM (($oracle) EXCEPT ALL ($view) LIMIT 10) b"));
	}
	return $rows;
}

# ---------------------------------------------------------------------
# The checks
# ---------------------------------------------------------------------

# The checks of one windowed view, after sync():
#   - it equals its oracle, which has more than min_rows (default 0) rows;
#   - its late rows are events of the stream (none twice), and some;
#   - stat => 1: stat_views.late_events counts them;
#   - watermark => W: each names the view, the reason and a watermark not
#     after W;
#   - events => N (views that show every window): the events it counted
#     and the late ones add up to the N events.
sub check_view
{
	my ($node, $view, %o) = @_;
	my $v    = _view($view);
	my $late = $v->{late};
	my $min  = $o{min_rows} // 0;
	my $rows = compare($node, "$view equals the oracle over all events except $late",
		"SELECT * FROM $view", oracle($node, $view));
	cmp_ok($rows, '>', $min, "$view: the oracle has more than $min rows");

	my ($nlate, $stray, $stat) = split /\|/, $node->safe_psql('postgres', qq{
SELECT (SELECT count(*) FROM $late),
       (SELECT count(*) FROM (SELECT user_id, url, amount, ts FROM $late
                              EXCEPT ALL SELECT user_id, url, amount, ts FROM events) x),
       (SELECT late_events FROM streamproc.stat_views WHERE view = '$view'::regclass)});
	cmp_ok($nlate, '>', 0, "$view: some events were late ($nlate)");
	is($stray, 0, "$view: every row of $late is an event of the stream, no duplicates");
	is($stat, $nlate, "$view: stat_views.late_events counts them") if $o{stat};
	is($node->safe_psql('postgres', qq{SELECT count(*) FROM $late
	           WHERE view <> '$view'::regclass OR reason <> 'window closed'
	              OR watermark IS NULL OR watermark > '$o{watermark}'}),
		'0', "$view: late rows name the view, the reason and a past watermark")
	  if defined $o{watermark};
	if (defined $o{events} && !$v->{shows})
	{
		my $f = $v->{per_event} // 1;
		is($node->safe_psql('postgres', "SELECT (SELECT sum(n) FROM $view) + $f * (SELECT count(*) FROM $late)"),
			$f * $o{events}, "$view: counted events + late events = all events");
	}
}

# Late by the rule, against the watermark of the checkpoint that judged it
sub check_late_rule
{
	my ($node, $view) = @_;
	my $v = _view($view);
	my ($cond, $desc) = @{ $v->{late_rule} // croak "no late rule for $view" };
	is($node->safe_psql('postgres', "SELECT count(*) FROM $v->{late} WHERE $cond"), '0', $desc);
}

# The number of the events' 10 s tumbling windows whose end matches $cond
# (e.g. "> '...'"), whether anything closed them or not.
sub count_tumbles
{
	my ($node, $cond) = @_;
	return $node->safe_psql('postgres', qq{SELECT count(DISTINCT w.window_end) FROM events e,
               streamproc.tumble(e.ts, interval '10 seconds') w WHERE w.window_end $cond});
}

# window_runs hold no window twice in a slot.  Every ingest worker closes
# its own part of a window (its slot), so a window can be in several.
sub check_no_duplicate_windows
{
	my ($node) = @_;
	is($node->safe_psql('postgres', qq{SELECT count(*) FROM (SELECT view, slot, key FROM $WindowOracle::CLOSED
                                GROUP BY 1, 2, 3 HAVING count(*) > 1) d}),
		'0', 'no window closed twice in a slot');
}

# No window after the watermark $wm is closed (of $view, or of any view)
sub check_none_closed_after
{
	my ($node, $wm, $view) = @_;
	my $and = defined $view ? "view = '$view'::regclass AND " : '';
	is($node->safe_psql('postgres', qq{SELECT count(*) FROM $WindowOracle::CLOSED
          WHERE ${and}window_end > '$wm'}),
		'0', 'no window after the watermark is closed');
}

# Every tumble_url window that ended by the watermark $wm is closed
sub check_closed_tumbles
{
	my ($node, $wm) = @_;
	is($node->safe_psql('postgres', qq{SELECT count(DISTINCT key) FROM $WindowOracle::CLOSED WHERE view = 'tumble_url'::regclass}),
		$node->safe_psql('postgres', qq{SELECT count(*) FROM tumble_url WHERE window_end <= '$wm'}),
		'window_runs hold every tumble window that ended by the watermark');
}

# ---------------------------------------------------------------------
# Watermarks
# ---------------------------------------------------------------------

# What the watermark must end at: the greatest event time minus the delay
sub expected_watermark
{
	my ($node) = @_;
	return $node->safe_psql('postgres', "SELECT max(ts) - interval '$DELAY' FROM events");
}

sub _stream_filter
{
	my ($stream, $col) = @_;
	return defined $stream ? " WHERE $col = '$stream'::regclass" : '';
}

# The distinct live watermarks (stat_views) of the views of $stream (all
# views without it), comma-separated, NULL as 'null'
sub live_watermarks
{
	my ($node, $stream) = @_;
	return $node->safe_psql('postgres',
		q{SELECT string_agg(DISTINCT coalesce(watermark::text, 'null'), ',') FROM streamproc.stat_views}
		  . _stream_filter($stream, 'stream'));
}

# The same for the persisted ones (view_watermarks, every slot; all rows
# without $stream)
sub persisted_watermarks
{
	my ($node, $stream) = @_;
	my $from = 'streamproc.view_watermarks w';
	$from .= ' JOIN streamproc.stat_views v ON v.view::oid = w.view' . _stream_filter($stream, 'v.stream')
	  if defined $stream;
	return $node->safe_psql('postgres', "SELECT string_agg(DISTINCT w.watermark::text, ',') FROM $from");
}

# A watermark sampler (of the views of $o{stream}, or all views):
#   my $wms = watermark_sampler($node, stream => 'clicks');
#   sample_watermarks($wms, $when, synced => 1);
#   $wms->{recovering} = 1;    # after a crash
#   is(join("\n", @{ $wms->{errors} }), '', 'the watermarks never went back');
# A persisted watermark (per view and slot) must never go back nor
# disappear, a live one never go back, become NULL or fall below the
# persisted ones.  After a crash ($wms->{recovering}), until a sample
# after a sync() (synced => 1) that has replayed the log, the live one
# may lag behind the greatest value seen before (the state reloads from
# the checkpoint; counted in $wms->{live_dips}), but not below the
# persisted one.
sub watermark_sampler
{
	my ($node, %o) = @_;
	return {
		node       => $node,
		stream     => $o{stream},
		persisted  => {},    # "view slot" => epoch, the last persisted watermark seen
		live       => {},    # view => epoch, the greatest live watermark seen
		errors     => [],
		live_dips  => 0,
		recovering => 0,
	};
}

# One sample; returns 0 while the server is down.
sub sample_watermarks
{
	my ($wms, $when, %o) = @_;
	$wms->{recovering} = 0 if $o{synced};
	my $tolerant = $wms->{recovering};
	my ($persisted, $live, $errors) = @{$wms}{qw(persisted live errors)};
	my $out = KafkaCrash::try_query($wms->{node}, q{
SELECT 'p ' || v.view || ' ' || w.slot || ' ' || extract(epoch FROM w.watermark)
  FROM streamproc.view_watermarks w JOIN streamproc.stat_views v ON v.view::oid = w.view}
		  . _stream_filter($wms->{stream}, 'v.stream') . q{
UNION ALL
SELECT 'l ' || view || ' ' || coalesce(extract(epoch FROM watermark)::text, 'null')
  FROM streamproc.stat_views} . _stream_filter($wms->{stream}, 'stream'));
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
		push @$errors, "$when: persisted watermark of $k went back from $persisted->{$k} to $p{$k}"
		  if defined $persisted->{$k} && $p{$k} < $persisted->{$k};
		$persisted->{$k} = $p{$k};
	}
	for my $k (sort keys %$persisted)
	{
		push @$errors, "$when: persisted watermark of $k disappeared" unless defined $p{$k};
	}
	for my $v (sort keys %l)
	{
		next if $l{$v} eq 'null' && !defined $live->{$v};
		my ($floor) = sort { $b <=> $a } map { $persisted->{$_} } grep { /^\Q$v\E / } keys %$persisted;
		if ($l{$v} eq 'null')
		{
			push @$errors, "$when: live watermark of $v is NULL after it was $live->{$v}"
			  unless $tolerant;
			next;
		}
		push @$errors, "$when: live watermark of $v ($l{$v}) is below the persisted one ($floor)"
		  if defined $floor && $l{$v} < $floor;
		if (defined $live->{$v} && $l{$v} < $live->{$v})
		{
			if ($tolerant)
			{
				$wms->{live_dips}++;
				note("$when: live watermark of $v behind its last value: $live->{$v} -> $l{$v}");
			}
			else { push @$errors, "$when: live watermark of $v went back from $live->{$v} to $l{$v}"; }
		}
		$live->{$v} = $l{$v} if !defined $live->{$v} || $l{$v} > $live->{$v};
	}
	return 1;
}

1;
