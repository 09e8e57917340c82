# ALTER EXTENSION streamproc UPDATE from 0.1 to the current version (0.7,
# through 0.2, 0.3, 0.4 and 0.5) on a live server.
#
# One server (streamproc preloaded, two ingest workers, checkpoints every
# 200 ms) and one devbroker.  The extension is created at version 0.1 with
# a stream (event time), an aggregating view (count, sum, avg, min, max per
# key, 1000 keys), an append view, a tumbling windowed view (its late events
# kept in a table) and a Kafka source feeding a stream of its own with an
# aggregating view.  Events go in through SQL (each transaction also fills
# a plain oracle table) and Kafka (the expected rows are computed from the
# messages produced).  Then:
#
#  1. at 0.1: every view equals its oracle;
#  2. ALTER EXTENSION streamproc UPDATE runs while a transaction that
#     inserted is open (it commits once the update has started), while
#     another session keeps inserting in small transactions (10 before the
#     update starts, then during it, until 20 of them have committed after
#     it), and while the workers consume Kafka messages produced just
#     before;
#  3. at 0.7 (pre_restore() and post_restore() exist): more events; every
#     view equals its oracle exactly (nothing lost or counted twice across
#     the update);
#  4. ALTER EXTENSION ... UPDATE at 0.7 is a no-op;
#  5. after a restart: the views are running and equal their oracles,
#     before and after more events;
#  6. CREATE EXTENSION streamproc in another database gives 0.7 with the
#     same objects as the updated one: the columns of
#     information_schema.columns, the members, constraints, indexes,
#     functions, views, privileges and pg_extension_config_dump marks.
#
# streamproc.sync() is the only barrier; polling waits for a state only.
use strict;
use warnings;

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

my $node = KafkaCrash::new_node('ext_update', q{
streamproc.workers = 2
streamproc.checkpoint_interval = '200ms'
});
$node->start;

sub sql { return $node->safe_psql($_[1] // 'postgres', $_[0]); }
sub sync_all { sql(q{SELECT streamproc.sync('60s')}); }

# ---------------------------------------------------------------------
# The extension at 0.1, its objects
# ---------------------------------------------------------------------
sql(q{CREATE EXTENSION streamproc VERSION '0.1'});
is(sql(q{SELECT extversion FROM pg_extension WHERE extname = 'streamproc'}), '0.1',
	'CREATE EXTENSION ... VERSION 0.1 installs 0.1');
is(sql(q{SELECT count(*) FROM pg_proc WHERE pronamespace = 'streamproc'::regnamespace
          AND proname IN ('pre_restore', 'post_restore')}), '0',
	'0.1 has neither pre_restore() nor post_restore()');

sql(qq{
CREATE FOREIGN TABLE ev (k int, v int, amount numeric, ts timestamptz) SERVER streamproc
    OPTIONS (event_time 'ts', watermark_delay '15 minutes');
CREATE TABLE ev_oracle (k int, v int, amount numeric, ts timestamptz);
CREATE VIEW per_k WITH (continuous) AS
    SELECT k, count(*) AS n, sum(v) AS s, avg(amount) AS mean, min(v) AS lo, max(amount) AS hi
      FROM ev GROUP BY k;
CREATE VIEW big WITH (continuous) AS SELECT k, v, ts FROM ev WHERE v % 7 = 0;
CREATE VIEW per_min WITH (continuous, late_events = 'ev_late') AS
    SELECT w.window_start, w.window_end, count(*) AS n, sum(v) AS s, max(amount) AS hi
      FROM ev, streamproc.tumble(ts, interval '1 minute') AS w
     GROUP BY w.window_start, w.window_end;
CREATE FOREIGN TABLE kev (k int, v int) SERVER streamproc;
CREATE TABLE kev_oracle (k int, v int);
CREATE VIEW kper_k WITH (continuous) AS SELECT k, count(*) AS n, sum(v) AS s FROM kev GROUP BY k;
SELECT streamproc.create_kafka_source('ksrc', 'kev', 'kev', '$bs');
CREATE TABLE inserter_ctl (stop boolean);
});

# The view's query over the oracle tables.  Windowed: over the events that
# were not late (they would be in ev_late).  None is expected: event time
# grows with the event number, 50 ms apart, and the watermark stays 15
# minutes (18000 events) behind the greatest event time; the transaction
# that stays open across the update is at most 1000 events behind.
my %oracle = (
	per_k => 'SELECT k, count(*), sum(v), avg(amount), min(v), max(amount) FROM ev_oracle GROUP BY k',
	big   => 'SELECT k, v, ts FROM ev_oracle WHERE v % 7 = 0',
	per_min => q{
WITH on_time AS (SELECT k, v, amount, ts FROM ev_oracle
                 EXCEPT ALL
                 SELECT k, v, amount, ts FROM ev_late WHERE view = 'per_min'::regclass)
SELECT w.window_start, w.window_end, count(*), sum(v), max(amount)
  FROM on_time e, streamproc.tumble(e.ts, interval '1 minute') AS w
 GROUP BY w.window_start, w.window_end},
	kper_k => 'SELECT k, count(*), sum(v) FROM kev_oracle GROUP BY k');

# Events: event g has key g % 1000, value g, time 2026-01-01 + g * 50 ms.
sub ev_rows
{
	my ($from, $to) = @_;
	return "SELECT g % 1000, g, (g % 400)::numeric / 8, timestamptz '2026-01-01 00:00+00' + g * interval '50 ms'"
	  . " FROM generate_series($from, $to) g";
}

sub ev_insert_sql
{
	my ($from, $to) = @_;
	my $rows = ev_rows($from, $to);
	return "INSERT INTO ev $rows; INSERT INTO ev_oracle $rows;";
}

my $next_ev = 1;
sub insert_ev
{
	my ($n) = @_;
	my ($from, $to) = ($next_ev, $next_ev + $n - 1);
	$next_ev = $to + 1;
	sql('BEGIN; ' . ev_insert_sql($from, $to) . ' COMMIT;');
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

sub check_views
{
	my ($when) = @_;
	for my $view (sort keys %oracle)
	{
		my $v = "SELECT * FROM $view";
		my $o = $oracle{$view};
		my $r = sql(qq{
SELECT (SELECT count(*) FROM (($v) EXCEPT ALL ($o)) a) || ' ' ||
       (SELECT count(*) FROM (($o) EXCEPT ALL ($v)) b) || ' ' ||
       (SELECT count(*) FROM ($o) c)});
		my ($extra, $missing, $rows) = split / /, $r;
		is("$extra $missing", '0 0', "$view equals its oracle $when ($rows rows; extra and missing rows)")
		  or diag(sql(qq{
SELECT 'view-only', * FROM (($v) EXCEPT ALL ($o) LIMIT 5) a
UNION ALL SELECT 'oracle-only', * FROM (($o) EXCEPT ALL ($v) LIMIT 5) b}));
	}
	is(sql('SELECT count(*) FROM streamproc.errors'), '0', "no row in streamproc.errors $when");
	is(sql(q{SELECT coalesce(sum("offset"), 0) FROM streamproc.kafka_offsets WHERE source = 'ksrc'}),
		$produced, "the committed Kafka offsets add up to the $produced messages produced $when");
	is(sql('SELECT count(*) FROM ev_late'), '0', "no late event $when");
}

# ---------------------------------------------------------------------
# 1. At 0.1
# ---------------------------------------------------------------------
insert_ev(5000) for 1 .. 5;
produce(3000);
sync_all();
check_views('at 0.1');
cmp_ok(sql(q{SELECT count(*) FROM per_k}), '==', 1000, 'per_k has 1000 keys');
cmp_ok(sql(q{SELECT count(*) FROM streamproc.window_runs}), '>', 0,
	'some windows of per_min are closed (window_runs) before the update');

# ---------------------------------------------------------------------
# 2. The update, while events arrive
# ---------------------------------------------------------------------
# Kafka messages the workers consume during the update.
produce(2000);

# A transaction that inserted before the update starts and commits after.
# Until it ends it holds advisory lock 4242, the inserting session's gate.
my $open = $node->background_psql('postgres');
{
	my ($from, $to) = ($next_ev, $next_ev + 999);
	$next_ev = $to + 1;
	$open->query_safe('BEGIN; SELECT pg_advisory_xact_lock(4242); ' . ev_insert_sql($from, $to));
}

# A session that inserts in small transactions: 10 before the update
# starts, then (once the open transaction has committed, which releases
# the gate) while it runs, until 20 of them have committed after the
# update committed (inserter_ctl says when).  A transaction that fails (a
# deadlock with the update's DDL, say) rolls back its stream and oracle
# rows together; such failures are reported below.
my $ins_base = $next_ev;
my $ins_rows = 100;
my $ins_max  = 2000;
my $script = "\\set after 0\n";
for my $i (0 .. $ins_max - 1)
{
	my $from = $ins_base + $i * $ins_rows;
	$script .= 'BEGIN; ' . ev_insert_sql($from, $from + $ins_rows - 1) . " COMMIT;\n"
	  . "SELECT :after + (SELECT count(*) FROM inserter_ctl) AS after \\gset\n"
	  . "SELECT :after >= 20 AS stop \\gset\n"
	  . "\\if :stop\n\\q\n\\endif\n";
	$script .= "SELECT pg_advisory_xact_lock_shared(4242);\n" if $i == 9;
}
# psql reads the script from a file and writes to files: IPC::Run needs
# no pumping meanwhile.
my $script_file = "$tmp/inserter.sql";
open(my $sfh, '>', $script_file) or die "cannot write $script_file: $!";
print $sfh $script;
close($sfh) or die "cannot write $script_file: $!";
my $inserter = IPC::Run::start(
	[
		$node->installed_command('psql'), '-XAtq', '-v', 'ON_ERROR_STOP=0',
		'-d', $node->connstr('postgres'), '-f', $script_file
	],
	'<', \undef, '>', "$tmp/inserter.out", '2>', "$tmp/inserter.err", IPC::Run::timeout(180));
sub ins_err { return -e "$tmp/inserter.err" ? slurp_file("$tmp/inserter.err") : ''; }
if (!$node->poll_query_until('postgres', qq{
SELECT count(*) = 1000 AND EXISTS (SELECT 1 FROM pg_locks WHERE locktype = 'advisory' AND NOT granted)
  FROM ev_oracle WHERE v >= $ins_base}))
{
	diag('inserting session: ' . ins_err() . "\n"
		  . sql(q{SELECT pid, state, wait_event_type, wait_event, left(query, 60) FROM pg_stat_activity}));
	die 'the inserting session did not start';
}

# The update, in a session of its own; once its backend has started the
# statement, the open transaction commits.
my $update = $node->background_psql('postgres', on_error_stop => 0);
my $update_pid = $update->query_safe('SELECT pg_backend_pid()');
$update->query_until(qr/start/, "\\echo start\nALTER EXTENSION streamproc UPDATE;\n");
$node->poll_query_until('postgres',
	"SELECT query LIKE 'ALTER EXTENSION%' FROM pg_stat_activity WHERE pid = $update_pid")
  or die 'ALTER EXTENSION did not start';
$open->query_safe('COMMIT');
$open->quit;

# Wait for the update (psql runs the query after it).
$update->query('SELECT 1');
my $update_err = $update->{stderr};
$update->quit;
unlike($update_err, qr/ERROR/, 'ALTER EXTENSION streamproc UPDATE succeeds while events arrive')
  or diag($update_err);
my $during = sql("SELECT count(*) FROM ev_oracle WHERE v >= $ins_base");
sql('INSERT INTO inserter_ctl VALUES (true)');
my $ins_ok = eval { $inserter->finish; 1 };
ok($ins_ok && $inserter->result(0) == 0, 'the inserting session ran to its end')
  or diag("psql: $@ " . ins_err());
my $ins_err = ins_err();
# The next events follow the last one the session committed.
$next_ev = sql('SELECT max(v) + 1 FROM ev_oracle');
my @ins_errors = grep { /ERROR/ } split /\n/, $ins_err;
my @ins_other = grep { !/deadlock detected|current transaction is aborted/ } @ins_errors;
is(scalar(@ins_other), 0, 'the inserting session had no error other than deadlocks')
  or diag($ins_err);
note(sprintf('inserting session: 1000 rows before ALTER EXTENSION started, %d when it ended, %d in all; %d errors',
		$during, sql("SELECT count(*) FROM ev_oracle WHERE v >= $ins_base"),
		scalar(@ins_errors)));
diag("inserting session errors:\n" . join("\n", @ins_errors)) if @ins_errors;

# ---------------------------------------------------------------------
# 3. At 0.7
# ---------------------------------------------------------------------
is(sql(q{SELECT extversion FROM pg_extension WHERE extname = 'streamproc'}), '0.7',
	'the extension is at 0.7 after the update');
is(sql(q{SELECT string_agg(proname, ',' ORDER BY proname) FROM pg_proc
          WHERE pronamespace = 'streamproc'::regnamespace AND proname IN ('pre_restore', 'post_restore')}),
	'post_restore,pre_restore', 'the update adds pre_restore() and post_restore()');
my $marked = sql(q{SELECT string_agg(c::regclass::text, ',' ORDER BY c::regclass::text)
                     FROM pg_extension, unnest(extconfig) c WHERE extname = 'streamproc'});
note("tables marked with pg_extension_config_dump: $marked");
for my $t (qw(streamproc.streams streamproc.views streamproc.sources streamproc.dedup_runs
              streamproc.change_logs streamproc.changes streamproc.sinks))
{
	like(",$marked,", qr/,\Q$t\E,/, "the update marks $t with pg_extension_config_dump");
}
note('columns of extension tables still of type oid: '
	  . sql(q{SELECT coalesce(string_agg(attrelid::regclass || '.' || attname, ', '), 'none')
                FROM pg_attribute a JOIN pg_depend d ON d.objid = a.attrelid AND d.classid = 'pg_class'::regclass
               WHERE d.refclassid = 'pg_extension'::regclass AND d.deptype = 'e'
                 AND d.refobjid = (SELECT oid FROM pg_extension WHERE extname = 'streamproc')
                 AND a.attnum > 0 AND NOT a.attisdropped AND a.atttypid IN ('oid'::regtype, 'oid[]'::regtype)}));

insert_ev(5000) for 1 .. 2;
produce(2000);
sync_all();
check_views('after the update (exactly once across it)');
is(sql(q{SELECT string_agg(DISTINCT state, ',') FROM streamproc.stat_views}), 'running',
	'every view runs after the update');

# ---------------------------------------------------------------------
# 4. ALTER EXTENSION UPDATE at 0.7
# ---------------------------------------------------------------------
my $fp_before = sql(q{SELECT count(*) || ' ' || max(objid) FROM pg_depend WHERE refclassid = 'pg_extension'::regclass});
my ($ret, $out, $err) = $node->psql('postgres', 'ALTER EXTENSION streamproc UPDATE');
is($ret, 0, 'ALTER EXTENSION streamproc UPDATE at 0.7 succeeds');
like($err, qr/version "0\.7" of extension "streamproc" is already installed/, '... and says 0.7 is already installed');
($ret, $out, $err) = $node->psql('postgres', q{ALTER EXTENSION streamproc UPDATE TO '0.7'});
like($err, qr/already installed/, q{ALTER EXTENSION streamproc UPDATE TO '0.7' too});
is(sql(q{SELECT extversion FROM pg_extension WHERE extname = 'streamproc'}), '0.7', 'the extension stays at 0.7');
is(sql(q{SELECT count(*) || ' ' || max(objid) FROM pg_depend WHERE refclassid = 'pg_extension'::regclass}),
	$fp_before, 'the no-op update changes no extension member');

# ---------------------------------------------------------------------
# 5. Restart
# ---------------------------------------------------------------------
my @exits_before = slurp_file($node->logfile) =~ /(background worker "streamproc worker" \(PID \d+\) (?:exited with exit code [1-9]|was terminated by signal \d+).*)/g;
is(scalar(@exits_before), 0, 'no ingest worker exited with an error before the restart')
  or diag(join("\n", @exits_before));
$node->restart;
ok($node->poll_query_until('postgres', q{
SELECT count(*) = 4 AND bool_and(state = 'running') FROM streamproc.stat_views}),
	'after a restart the four views are running')
  or diag(sql('SELECT view, state, last_error FROM streamproc.stat_views'));
note('library_version: ' . sql('SELECT library_version FROM streamproc.info()'));
check_views('after a restart');
insert_ev(5000);
produce(1000);
sync_all();
check_views('after the restart, with more events');
is(sql(q{SELECT string_agg(DISTINCT state, ',') FROM streamproc.stat_views}), 'running',
	'every view runs after the restart');

# ---------------------------------------------------------------------
# 6. A fresh CREATE EXTENSION gives the same objects as the update
# ---------------------------------------------------------------------
sql('CREATE DATABASE fresh');
sql('CREATE EXTENSION streamproc', 'fresh');
is(sql(q{SELECT extversion FROM pg_extension WHERE extname = 'streamproc'}, 'fresh'), '0.7',
	'CREATE EXTENSION streamproc installs 0.7');

my $members = q{
WITH m AS (SELECT classid, objid, objsubid FROM pg_depend
            WHERE refclassid = 'pg_extension'::regclass AND deptype = 'e'
              AND refobjid = (SELECT oid FROM pg_extension WHERE extname = 'streamproc'))};
my $rels = "SELECT objid FROM m WHERE classid = 'pg_class'::regclass";
my %schema = (
	'information_schema.columns' => qq{$members
SELECT (to_jsonb(c) - 'table_catalog' - 'udt_catalog' - 'collation_catalog' - 'domain_catalog'
        - 'scope_catalog' - 'dtd_identifier')::text
  FROM information_schema.columns c
  JOIN pg_class r ON r.relname = c.table_name AND r.relnamespace = 'streamproc'::regnamespace
 WHERE c.table_schema = 'streamproc' AND r.oid IN ($rels)
 ORDER BY c.table_name, c.ordinal_position},
	'pg_attribute of member relations' => qq{$members
SELECT format('%s %s %s %s notnull=%s hasdef=%s identity=%s generated=%s storage=%s compression=%s acl=%s',
              attrelid::regclass, attnum, attname, format_type(atttypid, atttypmod), attnotnull, atthasdef,
              attidentity, attgenerated, attstorage, attcompression, attacl)
  FROM pg_attribute WHERE attrelid IN ($rels) AND attnum > 0 AND NOT attisdropped
 ORDER BY attrelid::regclass::text, attnum},
	'extension members' => qq{$members
SELECT pg_describe_object(classid, objid, objsubid) FROM m ORDER BY 1},
	'relations' => qq{$members
SELECT format('%s kind=%s acl=%s options=%s persistence=%s', c.oid::regclass, c.relkind, c.relacl,
              c.reloptions, c.relpersistence)
  FROM pg_class c WHERE c.oid IN ($rels) ORDER BY 1},
	'constraints' => qq{$members
SELECT format('%s %s %s', conrelid::regclass, conname, pg_get_constraintdef(oid))
  FROM pg_constraint WHERE conrelid IN ($rels) ORDER BY 1},
	'indexes' => qq{$members
SELECT pg_get_indexdef(indexrelid) FROM pg_index WHERE indrelid IN ($rels) ORDER BY 1},
	'views' => qq{$members
SELECT oid::regclass || ': ' || pg_get_viewdef(oid) FROM pg_class
 WHERE oid IN ($rels) AND relkind = 'v' ORDER BY 1},
	'functions' => qq{$members
SELECT format('%s -> %s kind=%s volatile=%s parallel=%s strict=%s secdef=%s cost=%s rows=%s acl=%s bin=%s src=%s',
              p.oid::regprocedure, pg_get_function_result(p.oid), p.prokind, p.provolatile, p.proparallel,
              p.proisstrict, p.prosecdef, p.procost, p.prorows, p.proacl, p.probin, p.prosrc)
  FROM pg_proc p WHERE p.oid IN (SELECT objid FROM m WHERE classid = 'pg_proc'::regclass) ORDER BY 1},
	'pg_extension_config_dump' => q{
SELECT format('config=%s conditions=%s relocatable=%s schema=%s', extconfig::regclass[], extcondition,
              extrelocatable, extnamespace::regnamespace)
  FROM pg_extension WHERE extname = 'streamproc'});

for my $what (sort keys %schema)
{
	my $updated = sql($schema{$what});
	my $fresh   = sql($schema{$what}, 'fresh');
	my $ok = is($updated, $fresh, "$what: the same after the update and after CREATE EXTENSION");
	next if $ok;
	my %u = map { $_ => 1 } split /\n/, $updated;
	my %f = map { $_ => 1 } split /\n/, $fresh;
	diag("only after the update:\n" . join("\n", grep { !$f{$_} } split /\n/, $updated));
	diag("only after CREATE EXTENSION:\n" . join("\n", grep { !$u{$_} } split /\n/, $fresh));
}
cmp_ok(scalar(split /\n/, sql($schema{'information_schema.columns'})), '>', 50,
	'information_schema.columns lists the columns of the extension\'s relations');

my @crashes = KafkaCrash::crash_lines($node);
is(scalar(@crashes), 0, 'no crash in the server log') or diag(join("\n", @crashes));
my @exits = slurp_file($node->logfile) =~ /(background worker "streamproc worker" \(PID \d+\) (?:exited with exit code [1-9]|was terminated by signal \d+).*)/g;
note("ingest worker exits in the server log (the restart included):\n" . join("\n", @exits)) if @exits;

$node->stop;
$broker->stop;
note(sprintf('ran in %.1f s', time() - $t0));
done_testing();
