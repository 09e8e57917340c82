# pg_upgrade of a cluster with streamproc (PostgreSQL 15 to 15, the same
# binaries), then streamproc.post_restore().
#
# Old cluster: streamproc 0.7 (the current version) with a stream (event time), an aggregating
# view (count, sum, avg, min, max per key, 1000 keys), an append view and
# an aggregating view over it (feed.c: its feed, log and trigger), a
# tumbling windowed view (late events kept in a table; some windows closed)
# and a Kafka source (devbroker) feeding a stream of its own with an
# aggregating view.  Events go in through SQL (each transaction also fills
# a plain oracle table) and Kafka (the expected rows follow from the
# messages produced).  After sync(), every view equals its oracle; the
# views' content, the Kafka offsets, the closed windows and the
# dependencies between the streams, their logs, the views and their
# groups and rows tables are copied into plain tables, which pg_upgrade
# carries over like any table.
#
# New cluster: initdb with the same settings, pg_upgrade --check, then
# pg_upgrade.  Started, SELECT streamproc.post_restore(); then:
#   - the extension is at 0.7; the dependencies equal those of the old
#     cluster (pg_upgrade's schema dump does not carry the ones streamproc
#     records itself); a second post_restore() changes nothing;
#   - every view equals its content in the old cluster, and its oracle;
#     the committed Kafka offsets, closed windows and watermarks are those
#     of the old cluster; the views run;
#   - more events (SQL and Kafka): every view equals its oracle; the Kafka
#     view continues from the committed offsets (exactly as many messages
#     as produced in all, offsets at the brokers' end offsets);
#   - DROP VIEW of the aggregating view removes its groups table, of the
#     append view (CASCADE: the view over it reads it) its rows table, the
#     view over it, its feed and the trigger; the stream cannot be dropped while views
#     read it, nor its log alone; DROP FOREIGN TABLE ... CASCADE drops the
#     windowed view, the log and its shards.
#
# streamproc.sync() is the only barrier; polling waits for a state only.
use strict;
use warnings;

use Cwd ();
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use IPC::Run ();
use Time::HiRes qw(time);

use Devbroker;
use KafkaCrash ();

$SIG{PIPE} = 'IGNORE';

KafkaCrash::check_prerequisites();

my $t0   = time();
my $kcat = KafkaCrash::kcat_binary();
my $tmp  = PostgreSQL::Test::Utils::tempdir();

my $broker = Devbroker->start(topics => { kev => 2 }, quiet => 1);
my $bs = $broker->bootstrap;

my $conf = q{
streamproc.workers = 2
streamproc.checkpoint_interval = '200ms'
};

my $old = KafkaCrash::new_node('old', $conf);
$old->start;

my $node = $old;    # the cluster the helpers talk to
sub sql { return $node->safe_psql('postgres', $_[0]); }
sub sync_all { sql(q{SELECT streamproc.sync('60s')}); }

# ---------------------------------------------------------------------
# The old cluster
# ---------------------------------------------------------------------
sql(qq{
CREATE EXTENSION streamproc;
CREATE FOREIGN TABLE ev (k int, v int, amount numeric, ts timestamptz) SERVER streamproc
    OPTIONS (event_time 'ts', watermark_delay '15 minutes');
CREATE TABLE ev_oracle (k int, v int, amount numeric, ts timestamptz);
CREATE VIEW per_k WITH (continuous) AS
    SELECT k, count(*) AS n, sum(v) AS s, avg(amount) AS mean, min(v) AS lo, max(amount) AS hi
      FROM ev GROUP BY k;
CREATE VIEW big WITH (continuous) AS SELECT k, v, ts FROM ev WHERE v % 7 = 0;
CREATE VIEW big_per_r WITH (continuous) AS SELECT k % 10 AS r, count(*) AS n, sum(v) AS s FROM big GROUP BY 1;
CREATE VIEW per_min WITH (continuous, late_events = 'ev_late') AS
    SELECT w.window_start, w.window_end, count(*) AS n, sum(v) AS s, max(amount) AS hi
      FROM ev, streamproc.tumble(ts, interval '1 minute') AS w
     GROUP BY w.window_start, w.window_end;
CREATE FOREIGN TABLE kev (k int, v int) SERVER streamproc;
CREATE TABLE kev_oracle (k int, v int);
CREATE VIEW kper_k WITH (continuous) AS SELECT k, count(*) AS n, sum(v) AS s FROM kev GROUP BY k;
SELECT streamproc.create_kafka_source('ksrc', 'kev', 'kev', '$bs');
});
is(sql(q{SELECT extversion FROM pg_extension WHERE extname = 'streamproc'}), '0.7',
	'the old cluster has streamproc 0.7');

# The view's query over the oracle tables.  Windowed: over the events that
# were not late (they would be in ev_late; none is expected: event time
# grows with the event number, 50 ms apart, and the watermark stays 15
# minutes, 18000 events, behind the greatest event time).
my %oracle = (
	per_k => 'SELECT k, count(*), sum(v), avg(amount), min(v), max(amount) FROM ev_oracle GROUP BY k',
	big   => 'SELECT k, v, ts FROM ev_oracle WHERE v % 7 = 0',
	# a view over big (feed.c): its feed, log and trigger go through pg_upgrade
	big_per_r => 'SELECT k % 10, count(*), sum(v) FROM ev_oracle WHERE v % 7 = 0 GROUP BY 1',
	per_min => q{
WITH on_time AS (SELECT k, v, amount, ts FROM ev_oracle
                 EXCEPT ALL
                 SELECT k, v, amount, ts FROM ev_late WHERE view = 'per_min'::regclass)
SELECT w.window_start, w.window_end, count(*), sum(v), max(amount)
  FROM on_time e, streamproc.tumble(e.ts, interval '1 minute') AS w
 GROUP BY w.window_start, w.window_end},
	kper_k => 'SELECT k, count(*), sum(v) FROM kev_oracle GROUP BY k');

# Events: event g has key g % 1000, value g, time 2026-01-01 + g * 50 ms.
my $next_ev = 1;
sub insert_ev
{
	my ($n) = @_;
	my ($from, $to) = ($next_ev, $next_ev + $n - 1);
	$next_ev = $to + 1;
	my $rows = "SELECT g % 1000, g, (g % 400)::numeric / 8, timestamptz '2026-01-01 00:00+00' + g * interval '50 ms'"
	  . " FROM generate_series($from, $to) g";
	sql("BEGIN; INSERT INTO ev $rows; INSERT INTO ev_oracle $rows; COMMIT;");
}

# Kafka messages: message m is {"k": m % 37, "v": m}; kev_oracle gets the
# same rows once kcat has produced them.
my @kcat_opts = ('-X', 'socket.timeout.ms=10000', '-X', 'reconnect.backoff.max.ms=500');
my $next_msg = 1;
my $produced = 0;
sub produce
{
	my ($n) = @_;
	my ($from, $to) = ($next_msg, $next_msg + $n - 1);
	$next_msg = $to + 1;
	my $data = join('', map { sprintf(qq({"k": %d, "v": %d}\n), $_ % 37, $_) } $from .. $to);
	my ($rc, $out, $err) = KafkaCrash::run_cmd([ $kcat, '-P', '-b', $bs, '-t', 'kev', @kcat_opts ],
		input => $data);
	die "kcat could not produce (status $rc): $err" unless $rc == 0;
	$produced += $n;
	sql("INSERT INTO kev_oracle SELECT g % 37, g FROM generate_series($from, $to) g");
}

# Multisets of rows $a and $b: "extra missing" counts (both 0: equal).
sub compare
{
	my ($name, $a, $b) = @_;
	my $r = sql(qq{
SELECT (SELECT count(*) FROM (($a) EXCEPT ALL ($b)) x) || ' ' ||
       (SELECT count(*) FROM (($b) EXCEPT ALL ($a)) y) || ' ' ||
       (SELECT count(*) FROM ($b) z)});
	my ($extra, $missing, $rows) = split / /, $r;
	my $ok = is("$extra $missing", '0 0', "$name ($rows rows; extra and missing rows)");
	diag(sql(qq{
SELECT 'only in the first: ' || x::text FROM (($a) EXCEPT ALL ($b) LIMIT 10) x
UNION ALL SELECT 'only in the second: ' || y::text FROM (($b) EXCEPT ALL ($a) LIMIT 10) y}))
	  unless $ok;
	return $rows;
}

sub check_views
{
	my ($when) = @_;
	compare("$_ equals its oracle $when", "SELECT * FROM $_", $oracle{$_}) for sort keys %oracle;
	is(sql('SELECT count(*) FROM streamproc.errors'), '0', "no row in streamproc.errors $when");
	is(sql('SELECT count(*) FROM ev_late'), '0', "no late event $when");
	is(sql(q{SELECT coalesce(sum("offset"), 0) FROM streamproc.kafka_offsets WHERE source = 'ksrc'}),
		$produced, "the committed Kafka offsets add up to the $produced messages produced $when");
}

# The dependencies that involve a stream, its log and shards, a continuous
# view (and its rewrite rule), its groups, rows or late_events table.
my $deps_query = q{
WITH s AS (SELECT stream AS r FROM streamproc.streams
           UNION SELECT log FROM streamproc.streams
           UNION SELECT unnest(shard_logs) FROM streamproc.streams
           UNION SELECT view FROM streamproc.views
           UNION SELECT groups FROM streamproc.views WHERE groups IS NOT NULL
           UNION SELECT rows_table FROM streamproc.views WHERE rows_table IS NOT NULL
           UNION SELECT late_events FROM streamproc.views WHERE late_events IS NOT NULL)
SELECT format('%s -> %s (%s)', pg_describe_object(classid, objid, objsubid),
              pg_describe_object(refclassid, refobjid, refobjsubid), deptype) AS dep
  FROM pg_depend d
 WHERE (d.classid = 'pg_class'::regclass AND d.objid IN (SELECT r FROM s))
    OR (d.refclassid = 'pg_class'::regclass AND d.refobjid IN (SELECT r FROM s))
    OR (d.classid = 'pg_rewrite'::regclass
        AND d.objid IN (SELECT oid FROM pg_rewrite WHERE ev_class IN (SELECT r FROM s)))};

insert_ev(5000) for 1 .. 5;
produce(3000);
sync_all();
check_views('in the old cluster');
cmp_ok(sql('SELECT count(*) FROM streamproc.window_runs'), '>', 0, 'some windows of per_min are closed');

# What pg_upgrade must keep, in plain tables that it carries over.
sql(qq{
CREATE TABLE old_per_k AS SELECT * FROM per_k;
CREATE TABLE old_big AS SELECT * FROM big;
CREATE TABLE old_per_min AS SELECT * FROM per_min;
CREATE TABLE old_kper_k AS SELECT * FROM kper_k;
CREATE TABLE old_offsets AS SELECT source, topic, partition, "offset" FROM streamproc.kafka_offsets;
CREATE TABLE old_window_runs AS SELECT view::oid AS view, slot, closed, start_lo, start_hi, end_hi, entries, md5(data) AS data
  FROM streamproc.window_runs;
CREATE TABLE old_watermarks AS SELECT view::oid AS view, slot, watermark FROM streamproc.view_watermarks;
CREATE TABLE old_catalog AS
    SELECT view::oid AS view, stream::oid AS stream, kind, groups::oid AS groups, rows_table::oid AS rows_table,
           late_events::oid AS late_events, definition FROM streamproc.views;
CREATE TABLE old_deps AS $deps_query;
});
my %old_rows = map { $_ => sql("SELECT count(*) FROM $_") } qw(per_k big per_min kper_k);
note('dependencies in the old cluster: ' . sql('SELECT count(*) FROM old_deps'));
my $groups_per_k = sql(q{SELECT groups FROM streamproc.views WHERE view = 'per_k'::regclass});
my $rows_big     = sql(q{SELECT rows_table FROM streamproc.views WHERE view = 'big'::regclass});
my $log_ev       = sql(q{SELECT log FROM streamproc.streams WHERE stream = 'ev'::regclass});
my $shards_ev    = sql(q{SELECT array_to_string(shard_logs, ',') FROM streamproc.streams WHERE stream = 'ev'::regclass});
my $per_k_oid    = sql(q{SELECT 'per_k'::regclass::oid});

# pg_upgrade refuses tables with columns of the reg* types whose oids it
# does not preserve (src/bin/pg_upgrade/check.c,
# check_for_reg_data_type_usage: regclass, regrole and regtype are fine),
# in arrays, domains, composites and ranges too: the same query.
is(sql(q{
WITH RECURSIVE oids AS (
    SELECT oid FROM pg_type WHERE typnamespace = 'pg_catalog'::regnamespace
       AND typname IN ('regcollation', 'regconfig', 'regdictionary', 'regnamespace', 'regoper',
                       'regoperator', 'regproc', 'regprocedure')
    UNION ALL
    SELECT * FROM (WITH x AS (SELECT oid FROM oids)
        SELECT t.oid FROM pg_type t, x WHERE typbasetype = x.oid AND typtype = 'd'
        UNION ALL SELECT t.oid FROM pg_type t, x WHERE typelem = x.oid AND typtype = 'b'
        UNION ALL SELECT t.oid FROM pg_type t, pg_class c, pg_attribute a, x
                   WHERE t.typtype = 'c' AND t.oid = c.reltype AND c.oid = a.attrelid
                     AND NOT a.attisdropped AND a.atttypid = x.oid
        UNION ALL SELECT t.oid FROM pg_type t, pg_range r, x
                   WHERE t.typtype = 'r' AND r.rngtypid = t.oid AND r.rngsubtype = x.oid) foo)
SELECT coalesce(string_agg(format('%s.%s (%s)', c.oid::regclass, a.attname, format_type(a.atttypid, a.atttypmod)),
                           ', ' ORDER BY 1), '')
  FROM pg_class c JOIN pg_attribute a ON a.attrelid = c.oid
 WHERE NOT a.attisdropped AND a.atttypid IN (SELECT oid FROM oids) AND c.relkind IN ('r', 'm', 'i')
   AND c.relnamespace NOT IN ('pg_catalog'::regnamespace, 'information_schema'::regnamespace)}),
	'', 'no table column has a reg* type that pg_upgrade refuses');
$old->stop;

# ---------------------------------------------------------------------
# pg_upgrade
# ---------------------------------------------------------------------
my $new = KafkaCrash::new_node('new', $conf);

my $bindir = $old->config_data('--bindir');
my $updir  = PostgreSQL::Test::Utils::tempdir();
my $cwd    = Cwd::getcwd();

# Runs pg_upgrade in a directory of its own (it writes its logs there and
# in the new data directory); returns whether it succeeded, with its
# output and, on failure, the reports it left.
sub run_pg_upgrade
{
	my ($name, @extra) = @_;
	my @cmd = (
		"$bindir/pg_upgrade", '--no-sync',
		'-d', $old->data_dir, '-D', $new->data_dir,
		'-b', $bindir, '-B', $bindir,
		'-s', $new->host, '-p', $old->port, '-P', $new->port, @extra);
	chdir $updir or die "cannot chdir to $updir: $!";
	my ($out, $err) = ('', '');
	my $t = time();
	my $ok = IPC::Run::run(\@cmd, '<', \undef, '>', \$out, '2>', \$err, IPC::Run::timeout(180));
	chdir $cwd;
	ok($ok, sprintf('%s succeeds (%.1f s)', $name, time() - $t)) and return 1;
	diag("@cmd\nstdout:\n$out\nstderr:\n$err");
	# pg_upgrade_output.d/<timestamp>/ holds the reports (tables_using_reg.txt,
	# ...) and logs/ the output of the commands it ran.
	for my $f (sort glob($new->data_dir . '/pg_upgrade_output.d/*/*.txt'),
		glob($new->data_dir . '/pg_upgrade_output.d/*/log/pg_upgrade_{internal,dump_*}.log'))
	{
		my $c = slurp_file($f);
		$c = '...' . substr($c, -4000) if length($c) > 4000;
		diag("$f:\n$c");
	}
	return 0;
}

if (!run_pg_upgrade('pg_upgrade --check', '--check') || !run_pg_upgrade('pg_upgrade'))
{
	$broker->stop;
	done_testing();
	exit 1;
}

# ---------------------------------------------------------------------
# The new cluster
# ---------------------------------------------------------------------
$new->start;
$node = $new;
is(sql(q{SELECT extversion FROM pg_extension WHERE extname = 'streamproc'}), '0.7',
	'the new cluster has streamproc 0.7');
note('dependencies missing before post_restore(): '
	  . sql("SELECT count(*) FROM (TABLE old_deps EXCEPT ALL ($deps_query)) a") . '; extra: '
	  . sql("SELECT count(*) FROM (($deps_query) EXCEPT ALL TABLE old_deps) a"));

my ($ret, $out, $err) = $new->psql('postgres', 'SELECT streamproc.post_restore()');
is($ret, 0, 'SELECT streamproc.post_restore() succeeds') or diag($err);
note("post_restore(): $err") if $err ne '';
compare('the dependencies equal those of the old cluster after post_restore()', $deps_query, 'TABLE old_deps');
($ret, $out, $err) = $new->psql('postgres', 'SELECT streamproc.post_restore()');
is($ret, 0, 'a second post_restore() succeeds') or diag($err);
compare('the dependencies (distinct) are unchanged by a second post_restore()',
	"SELECT DISTINCT * FROM ($deps_query) d", 'SELECT DISTINCT * FROM old_deps');

ok($new->poll_query_until('postgres', q{
SELECT count(*) = 5 AND bool_and(state = 'running') FROM streamproc.stat_views}),
	'the five views are running in the new cluster')
  or diag(sql('SELECT view, state, last_error FROM streamproc.stat_views'));

for my $view (sort keys %old_rows)
{
	is(compare("$view equals its content in the old cluster", "SELECT * FROM $view", "TABLE old_$view"),
		$old_rows{$view}, "$view: as many rows as in the old cluster");
}
compare('the committed Kafka offsets are those of the old cluster',
	'SELECT source, topic, partition, "offset" FROM streamproc.kafka_offsets', 'TABLE old_offsets');
compare('the closed windows (window_runs) are those of the old cluster',
	'SELECT view::oid, slot, closed, start_lo, start_hi, end_hi, entries, md5(data) FROM streamproc.window_runs',
	'TABLE old_window_runs');
compare('the watermarks are those of the old cluster',
	'SELECT view::oid, slot, watermark FROM streamproc.view_watermarks', 'TABLE old_watermarks');
compare('the catalog of views is that of the old cluster',
	'SELECT view::oid, stream::oid, kind, groups::oid, rows_table::oid, late_events::oid, definition FROM streamproc.views',
	'TABLE old_catalog');
check_views('in the new cluster');

# More events, through SQL and Kafka.
insert_ev(5000) for 1 .. 2;
produce(2000);
sync_all();
check_views('in the new cluster, with more events');
is(sql('SELECT sum(n) FROM kper_k'), $produced,
	"the Kafka view counts exactly the $produced messages produced (it continued from the committed offsets)");
my $end = KafkaCrash::broker_offsets($bs, 'kev', 2);
is(sql(q{SELECT string_agg("offset"::text, ',' ORDER BY partition) FROM streamproc.kafka_offsets WHERE source = 'ksrc'}),
	join(',', @$end), 'the committed offsets are the brokers\' end offsets (' . join(',', @$end) . ')');
is(sql(q{SELECT string_agg(DISTINCT state, ',') FROM streamproc.stat_views}), 'running',
	'every view runs in the new cluster');

# ---------------------------------------------------------------------
# Dependencies at work
# ---------------------------------------------------------------------
($ret, $out, $err) = $new->psql('postgres', 'DROP FOREIGN TABLE ev');
isnt($ret, 0, 'the stream cannot be dropped while views read it');
like($err, qr/depend/, '... because views depend on it') or diag($err);
($ret, $out, $err) = $new->psql('postgres', "DROP TABLE $log_ev");
isnt($ret, 0, 'the log cannot be dropped alone');
like($err, qr/requires it|cannot drop/, '... it belongs to its stream') or diag($err);
($ret, $out, $err) = $new->psql('postgres', "DROP FOREIGN TABLE $groups_per_k");
isnt($ret, 0, 'the groups table of per_k cannot be dropped alone');
like($err, qr/requires it/, '... it belongs to its view') or diag($err);

sql('DROP VIEW per_k');
is(sql("SELECT to_regclass('$groups_per_k') IS NULL"), 't', "DROP VIEW per_k removes its groups table $groups_per_k");
is(sql(q{SELECT count(*) FROM streamproc.views WHERE view::oid = } . $per_k_oid), '0', '... and its catalog row');
($ret, $out, $err) = $new->psql('postgres', 'DROP VIEW big');
like($err, qr/view big_per_r depends on view big/, 'big cannot be dropped while big_per_r reads it') or diag($err);
my $feed = sql(q{SELECT stream FROM streamproc.views WHERE view = 'big_per_r'::regclass});
sql('DROP VIEW big CASCADE');
is(sql("SELECT to_regclass('$rows_big') IS NULL"), 't', "DROP VIEW big removes its rows table $rows_big");
is(sql("SELECT to_regclass('$feed') IS NULL AND NOT EXISTS (SELECT FROM pg_trigger WHERE tgname LIKE 'streamproc\\_feed\\_%')"),
	't', "... and CASCADE drops big_per_r, its feed $feed and the trigger");
delete $oracle{big_per_r};
insert_ev(1000);
sync_all();
is(sql(qq{SELECT count(*) FROM streamproc.state_runs WHERE view::oid = $per_k_oid}), '0',
	'the state of per_k is gone after sync()');
compare('per_min equals its oracle after the drops', 'SELECT * FROM per_min', $oracle{per_min});

sql('DROP FOREIGN TABLE ev CASCADE');
is(sql(q{SELECT count(*) FROM streamproc.views WHERE stream::text = 'ev'}), '0', 'DROP FOREIGN TABLE ev CASCADE drops per_min');
is(sql("SELECT to_regclass('$log_ev') IS NULL"), 't', "... and the log $log_ev");
is(sql(qq{SELECT count(*) FROM unnest(string_to_array('$shards_ev', ',')) s WHERE to_regclass(s) IS NOT NULL}), '0',
	"... and its shards $shards_ev");
is(sql('SELECT count(*) FROM streamproc.streams'), '1', '... and its row of streamproc.streams');

produce(500);
sync_all();
compare('kper_k equals its oracle at the end', 'SELECT * FROM kper_k', $oracle{kper_k});

my @crashes = KafkaCrash::crash_lines($new);
is(scalar(@crashes), 0, 'no crash in the new cluster\'s log') or diag(join("\n", @crashes));

$new->stop;
$broker->stop;
note(sprintf('ran in %.1f s', time() - $t0));
done_testing();
