# pg_dump and restore of a database with streams, continuous views and a
# Kafka source: the restore procedure of the operations guide,
#
#   createdb new
#   psql -d new -c 'CREATE EXTENSION streamproc' -c 'SELECT streamproc.pre_restore()'
#   pg_restore -d new --exit-on-error dump.custom   (or psql -v ON_ERROR_STOP=1 -f dump.sql)
#   psql -d new -c 'SELECT streamproc.post_restore()'
#
# The source database (server A) has a stream with an event-time column and
# three views over it (aggregating, append, tumbling windows with
# allowed_lateness and a late_events table), and a second stream fed by a
# Kafka source (a devbroker) with its own view.  Events not consumed yet go
# into the dump: streamproc.pre_restore() on the source stops its workers,
# events are inserted (in-order ones and late ones), the database is dumped,
# and streamproc.post_restore() resumes it.  Server A has burnt 3000
# transaction ids before those inserts, so that they are far ahead of the
# transaction ids of server B.
#
#  1. plain dump restored with psql into a new database of server A
#     (copy_a); custom dump restored with pg_restore into a new database of
#     a freshly initialized server B (copy_b: the xid rebase);
#  2. each copy after post_restore and sync(): every view equals its
#     oracle (plain tables filled in the same transactions as the streams,
#     dumped with them); windows, closed windows, the late events, the
#     catalog, stat_views and the dependencies in pg_depend (with the oids
#     in internal relations' names masked) are those of the source; the
#     Kafka offsets are the dumped ones;
#  3. ingestion goes on exactly once in every database (more events, more
#     Kafka messages, a new continuous view), also after a restart of both
#     servers;
#  4. DDL on restored objects: DROP of the stream or of the late_events
#     table without CASCADE is refused, DROP VIEW removes the groups table,
#     DROP FOREIGN TABLE ... CASCADE removes the log, its views and the
#     Kafka source;
#  5. a restore without pre_restore() fails, naming streamproc.pre_restore()
#     (psql into a database with the extension; pg_restore into one
#     without);
#  6. the source database goes on after its own post_restore.
#
# streamproc.sync() is the only barrier; polling only waits for a state
# (the workers stopped, the views running).  Runs in about 35 s.
use strict;
use warnings;

use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use Time::HiRes qw(time);

use Devbroker;
use KafkaCrash ();

# A child that exits early must not kill the test through SIGPIPE
$SIG{PIPE} = 'IGNORE';

KafkaCrash::check_prerequisites();
my $kcat = KafkaCrash::kcat_binary();
my $started = time();
my $tmp = PostgreSQL::Test::Utils::tempdir();

my $broker = Devbroker->start(topics => { kt => 2 });
my $bs = $broker->bootstrap;

sub new_node
{
	my ($name) = @_;
	my $node = KafkaCrash::new_node($name, q{
streamproc.workers = 2
streamproc.checkpoint_interval = '200ms'
});
	$node->start;
	return $node;
}

my $node_a = new_node('a');

# ---------------------------------------------------------------------
# Helpers
# ---------------------------------------------------------------------

# Stop at a failed step that the rest of the test needs.
sub fatal
{
	my ($msg) = @_;
	fail($msg);
	done_testing();
	exit 1;
}

sub run_tool { return KafkaCrash::run_cmd($_[0], timeout => 180); }

sub tool_ok
{
	my ($name, $cmd) = @_;
	my ($rc, $out, $err) = run_tool($cmd);
	ok($rc == 0, $name) or diag("command: @$cmd\nexit status $rc\nstderr:\n$err");
	return $rc == 0;
}

sub sync_db { $_[0]->safe_psql($_[1], q{SELECT streamproc.sync('60s')}); }

my $T0 = q{timestamptz '2026-01-01 00:00:00+00'};

# Batch $b: 10,000 in-order events, event g at T0 + g * 10 ms (100 s of
# event time per batch), over 1000 keys.
sub batch_rows
{
	my ($b) = @_;
	my $from = ($b - 1) * 10000 + 1;
	my $to = $b * 10000;
	return "SELECT g % 1000, g, $T0 + g * interval '10 ms', $b FROM generate_series($from, $to) g";
}

# Late set $s: 20 events with v < 0 in the first minute of event time,
# whose window closed long ago (after two batches the watermark minus the
# allowed lateness of per_min is past it).  b = 100 + $s.
sub late_rows
{
	my ($s) = @_;
	my $from = ($s - 1) * 20 + 1;
	my $to = $s * 20;
	return "SELECT j, -j, $T0 + j * interval '500 ms', 100 + $s FROM generate_series($from, $to) j";
}

# Insert into the stream and its oracle in one transaction; returns the
# transaction's id.
sub insert_rows
{
	my ($node, $db, $rows) = @_;
	return $node->safe_psql($db,
		"BEGIN; INSERT INTO ev $rows; INSERT INTO ev_oracle $rows; SELECT pg_current_xact_id(); COMMIT;");
}

# Kafka: message i is {"k": i % 50, "v": i}; $nk messages were produced.
my $nk = 0;
sub produce
{
	my ($n) = @_;
	my $data = join('', map { sprintf(qq({"k": %d, "v": %d}\n), $_ % 50, $_) } ($nk + 1 .. $nk + $n));
	my ($rc, $out, $err) = KafkaCrash::run_cmd(
		[
			$kcat, '-P', '-b', $bs, '-t', 'kt', '-X', 'socket.timeout.ms=10000',
			'-X', 'reconnect.backoff.max.ms=500'
		],
		input => $data);
	die "kcat could not produce to kt (status $rc): $err" unless $rc == 0;
	$nk += $n;
}

# Each view (and the late events) with its oracle, a query run in the same
# database.
my $date_bin = q{date_bin('1 minute', ts, timestamptz '1970-01-01 00:00+00')};
my %ORACLE = (
	per_k => [
		'SELECT * FROM per_k',
		'SELECT k, count(*), sum(v), avg(v), min(v), max(v) FROM ev_oracle GROUP BY k'
	],
	big => [ 'SELECT * FROM big', 'SELECT k, v, v * 2 + k, ts FROM ev_oracle WHERE v % 10 = 0' ],
	per_min => [
		'SELECT * FROM per_min',
		# the view's query as a batch over the events that were not late
		"SELECT $date_bin, $date_bin + interval '1 minute', k % 10, count(*), sum(v)"
		  . ' FROM (SELECT k, v, ts FROM ev_oracle EXCEPT ALL SELECT k, v, ts FROM late_ev) e'
		  . ' GROUP BY 1, 2, 3'
	],
	# exactly the events of the late sets are late
	late_ev => [
		q{SELECT k, v, ts, view::text, reason FROM late_ev},
		q{SELECT k, v, ts, 'per_min', 'window closed' FROM ev_oracle WHERE v < 0}
	],
	# created after the restore, before batch 5 and late set 3 (b = 103)
	per_b => [
		'SELECT * FROM per_b',
		'SELECT k % 7, count(*), sum(v) FROM ev_oracle WHERE b >= 5 AND b NOT IN (101, 102) GROUP BY 1'
	],
	# an enum: group keys and a max() over it, by oid in the catalog
	per_mood => [ 'SELECT * FROM per_mood', q{SELECT ((ARRAY['low', 'mid', 'high'])[k % 3 + 1])::mood AS m, count(*) AS n, max(((ARRAY['low', 'mid', 'high'])[abs(v) % 3 + 1])::mood) AS top FROM ev_oracle GROUP BY 1} ],
	kper => [ 'SELECT * FROM kper', undef ],
	# views over views (feed.c): an aggregate and an append view over big,
	# and an aggregate over that one
	big_per_r => [ 'SELECT * FROM big_per_r',
		'SELECT (k / 10) % 7, count(*), sum(v * 2 + k) FROM ev_oracle WHERE v % 10 = 0 GROUP BY 1' ],
	big_odd => [ 'SELECT * FROM big_odd', 'SELECT k, v * 2 + k FROM ev_oracle WHERE v % 10 = 0 AND (k / 10) % 2 = 1' ],
	# a view over final windows (feed.c): its position in them is restored
	final_hours => [ 'SELECT * FROM final_hours',
		q{SELECT date_trunc('hour', window_start), sum(n), sum(s), count(*) FROM min_final GROUP BY 1} ],
	# a view over an aggregating view (retract.c): fed by per_k's change log
	k_bands => [ 'SELECT * FROM k_bands',
		'SELECT n % 4, count(*), sum(n), sum(s) FROM'
		  . ' (SELECT k, count(*) AS n, sum(v) AS s FROM ev_oracle GROUP BY k) p GROUP BY 1' ],
	'per_k log' => [ q{SELECT (jsonb_populate_record(NULL::per_k, new)).* FROM
	    (SELECT DISTINCT ON (key) key, new FROM streamproc.changes('per_k') ORDER BY key, position DESC) f
	  WHERE new IS NOT NULL}, 'SELECT * FROM per_k' ],
	odd_per_k => [ 'SELECT * FROM odd_per_k',
		'SELECT k, count(*), max(v * 2 + k) FROM ev_oracle WHERE v % 10 = 0 AND (k / 10) % 2 = 1 GROUP BY k' ],
);

sub check_oracles
{
	my ($node, $db, $when, @views) = @_;
	for my $view (@views)
	{
		my ($q, $o) = @{ $ORACLE{$view} };
		$o //= "SELECT i % 50, count(*), sum(i) FROM generate_series(1, $nk) i GROUP BY 1";
		my $r = $node->safe_psql($db,
			    "SELECT (SELECT count(*) FROM (($q) EXCEPT ALL ($o)) a) || ' ' ||"
			  . " (SELECT count(*) FROM (($o) EXCEPT ALL ($q)) b) || ' ' ||"
			  . " (SELECT count(*) FROM ($o) c)");
		my ($extra, $missing, $rows) = split / /, $r;
		is("$extra $missing", '0 0', "$db: $view equals its oracle $when ($rows rows; extra, missing)")
		  or diag("$view and its oracle differ:\n$q EXCEPT ALL oracle:\n"
			  . $node->safe_psql($db, "($q) EXCEPT ALL ($o) LIMIT 10")
			  . "\noracle EXCEPT ALL $q:\n" . $node->safe_psql($db, "($o) EXCEPT ALL ($q) LIMIT 10"));
	}
}

my @ALL = (qw(per_k big per_min late_ev per_mood kper big_per_r big_odd odd_per_k final_hours k_bands), 'per_k log');

# What must be equal between the source and a copy of it
my %SAME = (
	'windows of per_min'  => 'SELECT * FROM per_min ORDER BY 1, 2, 3',
	'closed windows'      => q{SELECT DISTINCT window_start, window_end
	                             FROM streamproc._closed_windows('per_min') ORDER BY 1, 2},
	'late events'         => q{SELECT k, v, ts, view::text, reason FROM late_ev ORDER BY v},
	'per_k'               => 'SELECT * FROM per_k ORDER BY k',
	'odd_per_k'           => 'SELECT * FROM odd_per_k ORDER BY k',
	'feed triggers'       => q{SELECT regexp_replace(tgrelid::regclass || ' ' || tgname || ' ' || encode(tgargs, 'escape'), '_[0-9]+', '_N', 'g')
	                             FROM pg_trigger WHERE tgname LIKE 'streamproc\_feed\_%' ORDER BY 1},
	'kper'                => 'SELECT * FROM kper ORDER BY k',
	# Not per_k's log (started by k_bands): an aggregating view logs each
	# group once per checkpoint that changed it, so its positions follow
	# how each database's workers batch the dumped log rows; its log
	# folded by key equals the view instead (%ORACLE, 'per_k log').
	'change logs'         => q{SELECT view::text, retention, last_position, trimmed_to, windows_done
	                             FROM streamproc.change_logs WHERE view::text <> 'per_k' ORDER BY 1},
	# Not the positions: the events in the dump are logged in the order
	# each database's workers consume them.
	'changes'             => q{SELECT view::text, new::text FROM streamproc.changes
	                             WHERE view::text <> 'per_k' ORDER BY 1, 2},
	'change triggers'     => q{SELECT regexp_replace(tgrelid::regclass || ' ' || tgname, '_[0-9]+', '_N', 'g')
	                             FROM pg_trigger WHERE tgname = 'streamproc_changes' ORDER BY 1},
	'views in the catalog' => 'SELECT count(*) FROM streamproc.views',
	'the continuous views' => q{SELECT view::text, stream::text, kind, group_types, aggregates,
	                                   window_kind, allowed_lateness, late_events::text
	                              FROM streamproc.views ORDER BY 1},
	'the streams'         => 'SELECT stream::text, shards FROM streamproc.streams ORDER BY 1',
	'stat_views'          => q{SELECT string_agg(view::text || ' ' || stream::text || ' ' || kind || ' ' || state,
	                                             ', ' ORDER BY view::text) FROM streamproc.stat_views},
	'the Kafka sources'   => q{SELECT name, stream::text, topic, brokers, format, workers, paused
	                             FROM streamproc.kafka_sources},
	'the Kafka sinks'     => q{SELECT name, view::text, topic, brokers, format, key, options, paused,
	                                  created_at, position FROM streamproc.sinks ORDER BY 1},
	'the Kafka offsets'   => q{SELECT source, topic, partition, "offset" FROM streamproc.kafka_offsets ORDER BY 1, 2, 3},
	# The dependencies of and on the relations of both schemas, with the
	# oids in internal relations' names (log_N, groups_N, rows_N) masked:
	# those pg_dump carries and those post_restore() records.
	'dependencies' => q{
WITH rels AS (SELECT oid FROM pg_class WHERE relnamespace IN ('public'::regnamespace, 'streamproc'::regnamespace))
SELECT regexp_replace(pg_describe_object(classid, objid, objsubid), '_[0-9]+', '_N', 'g') || ' -> ' ||
       regexp_replace(pg_describe_object(refclassid, refobjid, refobjsubid), '_[0-9]+', '_N', 'g') || ' (' || deptype::text || ')'
  FROM pg_depend
 WHERE (classid = 'pg_class'::regclass AND objid IN (SELECT oid FROM rels))
    OR (refclassid = 'pg_class'::regclass AND refobjid IN (SELECT oid FROM rels))
 ORDER BY 1},
);

# Two outputs, line by line; on a difference, the lines only one has.
sub same_lines
{
	my ($got, $expected, $name) = @_;
	return 1 if ok($got eq $expected, $name);
	my %n;
	$n{$_}++ for split /\n/, $got;
	$n{$_}-- for split /\n/, $expected;
	diag(join("\n", 'only in the copy:', (grep { $n{$_} > 0 } sort keys %n),
			'only in the source:', (grep { $n{$_} < 0 } sort keys %n)));
	return 0;
}

# ---------------------------------------------------------------------
# The source database
# ---------------------------------------------------------------------
$node_a->safe_psql('postgres', 'CREATE DATABASE src');
$node_a->safe_psql('src', qq{
CREATE EXTENSION streamproc;
CREATE FOREIGN TABLE ev (k int, v int, ts timestamptz, b int) SERVER streamproc
    OPTIONS (event_time 'ts', watermark_delay '0 seconds');
CREATE TABLE ev_oracle (k int, v int, ts timestamptz, b int);
CREATE VIEW per_k WITH (continuous) AS
    SELECT k, count(*) AS n, sum(v) AS s, avg(v) AS a, min(v) AS lo, max(v) AS hi FROM ev GROUP BY k;
CREATE VIEW k_bands WITH (continuous) AS
    SELECT n % 4 AS band, count(*) AS keys, sum(n) AS n, sum(s) AS s FROM per_k GROUP BY 1;
CREATE VIEW big WITH (continuous) AS SELECT k, v, v * 2 + k AS x, ts FROM ev WHERE v % 10 = 0;
CREATE VIEW big_per_r WITH (continuous) AS SELECT (k / 10) % 7 AS r, count(*) AS n, sum(x) AS sx FROM big GROUP BY 1;
CREATE VIEW big_odd WITH (continuous) AS SELECT k, x FROM big WHERE (k / 10) % 2 = 1;
CREATE VIEW odd_per_k WITH (continuous) AS SELECT k, count(*) AS n, max(x) AS top FROM big_odd GROUP BY k;
CREATE VIEW per_min WITH (continuous, allowed_lateness = '2 minutes', late_events = 'late_ev') AS
    SELECT w.window_start, w.window_end, k % 10 AS kk, count(*) AS n, sum(v) AS s
      FROM ev, streamproc.tumble(ts, interval '1 minute') AS w
     GROUP BY w.window_start, w.window_end, k % 10;
CREATE VIEW min_final WITH (continuous, emit = 'final') AS
    SELECT w.window_start, count(*) AS n, sum(v) AS s
      FROM ev, streamproc.tumble(ts, interval '1 minute') AS w GROUP BY 1;
CREATE VIEW final_hours WITH (continuous) AS
    SELECT date_trunc('hour', window_start) AS h, sum(n) AS n, sum(s) AS s, count(*) AS minutes
      FROM min_final GROUP BY 1;
CREATE TYPE mood AS ENUM ('low', 'mid', 'high');
CREATE VIEW per_mood WITH (continuous) AS
    SELECT ((ARRAY['low', 'mid', 'high'])[k % 3 + 1])::mood AS m, count(*) AS n, max(((ARRAY['low', 'mid', 'high'])[abs(v) % 3 + 1])::mood) AS top FROM ev GROUP BY 1;
CREATE FOREIGN TABLE kev (k int, v int) SERVER streamproc;
CREATE VIEW kper WITH (continuous) AS SELECT k, count(*) AS n, sum(v) AS s FROM kev GROUP BY k;
SELECT streamproc.create_kafka_source('ksrc', 'kev', 'kt', '$bs', workers => 2);
SELECT streamproc.create_change_log('big');
SELECT streamproc.create_change_log('min_final');
});

# One batch at a time, synced: a worker is never more than one batch (100 s
# of event time) ahead of the other, less than the allowed lateness, so
# no in-order event is late.
for my $b (1 .. 3)
{
	insert_rows($node_a, 'src', batch_rows($b));
	sync_db($node_a, 'src');
}
insert_rows($node_a, 'src', late_rows(1));
produce(3000);
sync_db($node_a, 'src');
check_oracles($node_a, 'src', 'before the dump', @ALL);
my $n_dumped_k = $node_a->safe_psql('src', 'SELECT sum(n) FROM kper');
is($n_dumped_k, $nk, "the Kafka view counts the $nk messages before the dump");
# A Kafka sink of big, paused once it produced the log (the copies restore
# it paused, with its identity and position).
$node_a->safe_psql('src', "SELECT streamproc.create_kafka_sink('big_out', 'big', 'big_out', '$bs')");
ok($node_a->poll_query_until('src', q{SELECT state = 'running' AND lag = 0 AND position > 0
                                       FROM streamproc.stat_sinks WHERE sink = 'big_out'}),
	'the sink of big produced its change log');
$node_a->safe_psql('src', "SELECT streamproc.pause_sink('big_out')");

# ---------------------------------------------------------------------
# Unconsumed events into the dump: pre_restore() on the source
# ---------------------------------------------------------------------
my ($ret, $out, $err) = $node_a->psql('src', 'SELECT streamproc.pre_restore()');
fatal("streamproc.pre_restore() on the source: $err") if $ret != 0;
ok($node_a->poll_query_until('src', 'SELECT count(*) = 0 FROM streamproc.stat_workers WHERE pid IS NOT NULL'),
	'no worker runs in the source after pre_restore()');
is($node_a->safe_psql('src', q{SELECT current_setting('streamproc.restoring')}), 'on',
	'streamproc.restoring is on in the source');
($ret, $out, $err) = $node_a->psql('src', q{SELECT streamproc.sync('60s')});
ok($ret != 0 && $err =~ /being restored/, 'sync() fails at once while the database is being restored')
  or diag("exit $ret, stderr: $err");

# Server A's transaction ids far ahead of those of server B
$node_a->safe_psql('src',
	'DO $$ BEGIN FOR i IN 1..3000 LOOP PERFORM pg_current_xact_id(); COMMIT; END LOOP; END $$;');
my $xid4 = insert_rows($node_a, 'src', batch_rows(4));
insert_rows($node_a, 'src', late_rows(2));
diag("source: batch 4 inserted by transaction $xid4");

my $log = $node_a->safe_psql('src', q{SELECT log::text FROM streamproc.streams WHERE stream = 'ev'::regclass});
is($node_a->safe_psql('src', "SELECT count(*) FROM $log WHERE b IN (4, 102)"), '10020',
	'the 10020 new events are in the log of the source');
is($node_a->safe_psql('src', 'SELECT sum(n) FROM per_k'),
	$node_a->safe_psql('src', 'SELECT count(*) FROM ev_oracle WHERE b NOT IN (4, 102)'),
	'and no view has consumed them');

# ---------------------------------------------------------------------
# Dumps, plain and custom, then the source goes on
# ---------------------------------------------------------------------
my $plain = "$tmp/src.sql";
my $custom = "$tmp/src.custom";
tool_ok('pg_dump, plain format', [ 'pg_dump', '-d', $node_a->connstr('src'), '-f', $plain ])
  or fatal('no plain dump');
tool_ok('pg_dump, custom format', [ 'pg_dump', '-Fc', '-d', $node_a->connstr('src'), '-f', $custom ])
  or fatal('no custom dump');

($ret, $out, $err) = $node_a->psql('src', 'SELECT streamproc.post_restore()');
is($ret, 0, 'post_restore() on the source') or diag($err);
is($node_a->safe_psql('src', q{SELECT current_setting('streamproc.restoring')}), 'off',
	'streamproc.restoring is off again in the source');
sync_db($node_a, 'src');
check_oracles($node_a, 'src', 'after its post_restore()', @ALL);
is($node_a->safe_psql('src', q{SELECT count(*) FROM late_ev WHERE v < -20}), '20',
	'the late events of the dump are late in the source');

# The source's results, which each copy must have after its restore
my %expect;
$expect{$_} = $node_a->safe_psql('src', $SAME{$_}) for keys %SAME;
like($expect{stat_views}, qr/^(\S+ \S+ \S+ running(, |$))+$/, 'every view of the source is running')
  or diag($expect{stat_views});

# ---------------------------------------------------------------------
# The restore procedure
# ---------------------------------------------------------------------
sub psql_cmd
{
	my ($node, $db, @args) = @_;
	return [ 'psql', '-X', '-d', $node->connstr($db), @args ];
}

sub restore
{
	my ($node, $db, $how) = @_;
	$node->safe_psql('postgres', "CREATE DATABASE $db");
	tool_ok("$db: CREATE EXTENSION and pre_restore()",
		psql_cmd($node, $db, '-c', 'CREATE EXTENSION streamproc', '-c', 'SELECT streamproc.pre_restore()'))
	  or fatal("$db: pre_restore");
	if ($how eq 'plain')
	{
		tool_ok("$db: psql -v ON_ERROR_STOP=1 -f of the plain dump",
			psql_cmd($node, $db, '-q', '-v', 'ON_ERROR_STOP=1', '-f', $plain))
		  or fatal("$db: restore");
	}
	else
	{
		tool_ok("$db: pg_restore --exit-on-error of the custom dump",
			[ 'pg_restore', '-d', $node->connstr($db), '--exit-on-error', $custom ])
		  or fatal("$db: restore");
	}
}

sub post_restore
{
	my ($node, $db) = @_;
	tool_ok("$db: post_restore()", psql_cmd($node, $db, '-c', 'SELECT streamproc.post_restore()'))
	  or fatal("$db: post_restore");
	is($node->safe_psql($db, q{SELECT current_setting('streamproc.restoring')}), 'off',
		"$db: streamproc.restoring is off after post_restore()");
	sync_db($node, $db);
}

# The checks of a copy just after its restore
sub check_copy
{
	my ($node, $db) = @_;
	check_oracles($node, $db, 'after the restore', @ALL);
	for my $what (sort keys %SAME)
	{
		same_lines($node->safe_psql($db, $SAME{$what}), $expect{$what}, "$db: $what as in the source");
	}
	is($node->safe_psql($db, 'SELECT sum(n) FROM kper'), $n_dumped_k,
		"$db: the Kafka view counts the $n_dumped_k dumped messages");
	is($node->safe_psql($db, q{SELECT sum("offset") FROM streamproc.kafka_offsets}), $n_dumped_k,
		"$db: the Kafka offsets are the dumped ones");
	is($node->safe_psql($db, 'SELECT count(*) FROM streamproc.errors'), '0', "$db: no errors");
}

# Plain dump into a new database of the same server
restore($node_a, 'copy_a', 'plain');
post_restore($node_a, 'copy_a');
check_copy($node_a, 'copy_a');

# Custom dump into a new database of a new server, far behind in xids
my $node_b = new_node('b');
restore($node_b, 'copy_b', 'custom');
my $xid_b = $node_b->safe_psql('copy_b', 'SELECT pg_current_xact_id()');
cmp_ok($xid_b, '<', $xid4, "server B (xid $xid_b) is behind the dumped log rows (xid $xid4)");
is($node_b->safe_psql('copy_b', 'SELECT count(*) FROM streamproc.stat_workers WHERE pid IS NOT NULL'),
	'0', 'copy_b: no worker runs during the restore');
($ret, $out, $err) = $node_b->psql('copy_b', q{SELECT streamproc.sync('60s')});
ok($ret != 0 && $err =~ /being restored/, 'copy_b: sync() fails at once during the restore')
  or diag("exit $ret, stderr: $err");
post_restore($node_b, 'copy_b');
check_copy($node_b, 'copy_b');

# ---------------------------------------------------------------------
# A restore without pre_restore() fails and says why
# ---------------------------------------------------------------------
$node_a->safe_psql('postgres', 'CREATE DATABASE bad_a');
$node_a->safe_psql('bad_a', 'CREATE EXTENSION streamproc');
($ret, $out, $err) = run_tool(psql_cmd($node_a, 'bad_a', '-q', '-v', 'ON_ERROR_STOP=1', '-f', $plain));
isnt($ret, 0, 'psql -v ON_ERROR_STOP=1 without pre_restore() fails');
like($err, qr/streamproc\.pre_restore\(\)/, 'its error names streamproc.pre_restore()') or diag($err);

$node_b->safe_psql('postgres', 'CREATE DATABASE bad_b');
($ret, $out, $err) = run_tool([ 'pg_restore', '-d', $node_b->connstr('bad_b'), '--exit-on-error', $custom ]);
isnt($ret, 0, 'pg_restore --exit-on-error into a database without the extension fails');
like($err, qr/streamproc\.pre_restore\(\)/, 'its error names streamproc.pre_restore()') or diag($err);

for my $bad ([ $node_a, 'bad_a' ], [ $node_b, 'bad_b' ])
{
	my ($r, $o, $e) = $bad->[0]->psql('postgres', "DROP DATABASE $bad->[1] WITH (FORCE)");
	diag("could not drop $bad->[1]: $e") if $r != 0;
}

# ---------------------------------------------------------------------
# Ingestion goes on, exactly once, in the copies and in the source
# ---------------------------------------------------------------------
my @dbs = ([ $node_a, 'src' ], [ $node_a, 'copy_a' ], [ $node_b, 'copy_b' ]);
my @copies = @dbs[ 1, 2 ];

# A new continuous view in each copy counts the events from now on
for my $c (@copies)
{
	my ($node, $db) = @$c;
	$node->safe_psql($db,
		'CREATE VIEW per_b WITH (continuous) AS SELECT k % 7 AS r, count(*) AS n, sum(v) AS s FROM ev GROUP BY 1');
}
for my $d (@dbs)
{
	my ($node, $db) = @$d;
	insert_rows($node, $db, batch_rows(5));
	insert_rows($node, $db, late_rows(3));
}
produce(1000);
for my $d (@dbs)
{
	my ($node, $db) = @$d;
	sync_db($node, $db);
	check_oracles($node, $db, 'after more events', @ALL, $db eq 'src' ? () : 'per_b');
	is($node->safe_psql($db, 'SELECT sum(n) FROM kper'), $nk,
		"$db: the Kafka view counts the dumped messages and the new ones ($nk)");
}

# Restart both servers
$node_a->restart;
$node_b->restart;
for my $d (@dbs)
{
	my ($node, $db) = @$d;
	sync_db($node, $db);
	check_oracles($node, $db, 'after a restart', @ALL, $db eq 'src' ? () : 'per_b');
	insert_rows($node, $db, batch_rows(6));
}
produce(500);
for my $d (@dbs)
{
	my ($node, $db) = @$d;
	sync_db($node, $db);
	check_oracles($node, $db, 'after a restart and more events', @ALL, $db eq 'src' ? () : 'per_b');
	# The change logs go on where the dump left them: each row once, in
	# positions without gaps.
	for my $v (qw(big min_final))
	{
		my $c = "SELECT (jsonb_populate_record(NULL::$v, new)).* FROM streamproc.changes('$v')";
		is($node->safe_psql($db,
				"SELECT (SELECT count(*) FROM ((SELECT * FROM $v) EXCEPT ALL ($c)) a) || ' ' ||"
				  . " (SELECT count(*) FROM (($c) EXCEPT ALL (SELECT * FROM $v)) b) || ' ' ||"
				  . " (SELECT count(*) = max(position) AND max(position) = streamproc.changes_position('$v')"
				  . "    FROM streamproc.changes('$v'))"),
			'0 0 true', "$db: the change log of $v holds each of its rows once, numbered");
	}
	ok($node->poll_query_until($db,
			q{SELECT bool_and(state = 'running') AND count(*) = (SELECT count(*) FROM streamproc.views)
			    FROM streamproc.stat_views}),
		"$db: every view is running");
	is($node->safe_psql($db, 'SELECT count(*) FROM streamproc.errors'), '0', "$db: no errors");
}

# ---------------------------------------------------------------------
# DDL on restored objects
# ---------------------------------------------------------------------
for my $c (@copies)
{
	my ($node, $db) = @$c;
	my $sql = sub { return $node->safe_psql($db, $_[0]); };

	my ($r, $o, $e) = $node->psql($db, 'DROP FOREIGN TABLE ev');
	ok($r != 0 && $e =~ /depend/, "$db: DROP FOREIGN TABLE ev without CASCADE is refused: its views depend on it")
	  or diag("exit $r, stderr: $e");
	($r, $o, $e) = $node->psql($db, 'DROP TABLE late_ev');
	ok($r != 0 && $e =~ /depend/, "$db: DROP TABLE late_ev without CASCADE is refused: per_min depends on it")
	  or diag("exit $r, stderr: $e");

	my $groups = $sql->(q{SELECT groups::oid FROM streamproc.views WHERE view = 'per_k'::regclass});
	like($groups, qr/^\d+$/, "$db: per_k has a groups table");
	# A DROP that meets a worker's checkpoint in the chain can get 40P01
	# (docs/operations.md, "DROP VIEW of a chain while ingesting"): again.
	for my $try (1 .. 20)
	{
		($r, $o, $e) = $node->psql($db, 'DROP VIEW per_k');
		last unless $e =~ /deadlock detected/;
	}
	ok($r != 0 && $e =~ /k_bands depends on view per_k/,
		"$db: DROP VIEW per_k without CASCADE is refused: k_bands reads its changes")
	  or diag("exit $r, stderr: $e");
	for my $try (1 .. 20)
	{
		($r, $o, $e) = $node->psql($db, 'DROP VIEW per_k CASCADE');
		last unless $e =~ /deadlock detected/;
	}
	is($r, 0, "$db: DROP VIEW per_k CASCADE") or diag("stderr: $e");
	is($sql->("SELECT count(*) FROM pg_class WHERE oid = $groups"), '0',
		"$db: DROP VIEW of a restored view drops its groups table");
	is($sql->(q{SELECT count(*) FROM streamproc.views WHERE view::text = 'k_bands'}), '0',
		"$db: ... and k_bands, which read its changes");
	$groups = $sql->(q{SELECT groups::oid FROM streamproc.views WHERE view = 'per_mood'::regclass});
	$sql->('DROP TYPE mood CASCADE');
	is($sql->("SELECT count(*) FROM pg_class WHERE oid = $groups OR relname = 'per_mood'"), '0',
		"$db: DROP TYPE ... CASCADE drops a restored view over the type, and its groups table");
	is($sql->(q{SELECT string_agg(view::text, ',' ORDER BY view::text) FROM streamproc.views}),
		'big,big_odd,big_per_r,final_hours,kper,min_final,odd_per_k,per_b,per_min', "$db: per_k left the catalog");

	# The relations of stream ev: its log, its shards, its views' tables
	my $rels = $sql->(q{
SELECT string_agg(r::oid::text, ',') FROM (
    SELECT log AS r FROM streamproc.streams WHERE stream = 'ev'::regclass
    UNION ALL SELECT unnest(shard_logs) FROM streamproc.streams WHERE stream = 'ev'::regclass
    UNION ALL SELECT groups FROM streamproc.views WHERE stream = 'ev'::regclass AND groups IS NOT NULL
    UNION ALL SELECT rows_table FROM streamproc.views WHERE stream = 'ev'::regclass AND rows_table IS NOT NULL
    UNION ALL SELECT view FROM streamproc.views WHERE stream = 'ev'::regclass) x});
	my @rels = split /,/, $rels;
	is(scalar(@rels), 1 + 2 + 4 + 4, "$db: ev has a log, 2 shards, 4 views and their 4 tables");
	$sql->('DROP FOREIGN TABLE ev CASCADE');
	is($sql->("SELECT count(*) FROM pg_class WHERE oid IN ($rels)"), '0',
		"$db: DROP FOREIGN TABLE ev CASCADE drops its log, its shards, its views and their tables");
	is($sql->(q{SELECT string_agg(stream::text, ',') FROM streamproc.streams}), 'kev',
		"$db: ev left streamproc.streams");
	is($sql->(q{SELECT string_agg(view::text, ',') FROM streamproc.views}), 'kper',
		"$db: its views left streamproc.views");
	is($sql->('SELECT count(*) FROM late_ev'), '60', "$db: the late_events table stays");
}

# Dropping the Kafka stream of copy_b drops its source; copy_a and the
# source go on consuming the same topic.
$node_b->safe_psql('copy_b', 'DROP FOREIGN TABLE kev CASCADE');
is($node_b->safe_psql('copy_b',
		q{SELECT (SELECT count(*) FROM streamproc.kafka_sources) || ' ' || (SELECT count(*) FROM streamproc.kafka_offsets)
		    || ' ' || (SELECT count(*) FROM streamproc.streams) || ' ' || (SELECT count(*) FROM streamproc.views)}),
	'0 0 0 0', 'copy_b: DROP FOREIGN TABLE kev CASCADE drops the Kafka source and its offsets');
produce(500);
for my $d (@dbs)
{
	my ($node, $db) = @$d;
	sync_db($node, $db);
}
check_oracles($node_a, 'src', 'at the end', @ALL);
check_oracles($node_a, 'copy_a', 'at the end', 'kper');

for my $node ($node_a, $node_b)
{
	my @crashes = KafkaCrash::crash_lines($node);
	is(scalar(@crashes), 0, 'no crash in the log of server ' . $node->name) or diag(join("\n", @crashes));
}

$node_a->stop;
$node_b->stop;
$broker->stop;
diag(sprintf('150_dump_restore ran for %.1f s', time() - $started));
done_testing();
