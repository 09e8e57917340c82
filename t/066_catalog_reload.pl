# Catalog changes cost what changed (issue 10): creating, altering or
# dropping one view, stream or source does not reload the state of the
# other views or restart the Kafka consumers whose definition did not
# change.
#
# The workers log each load of a view's state slot ("loaded continuous
# view ...") and each start of a Kafka consumer ("starts a consumer of
# Kafka source ..."); the test counts those lines in the server log around
# each DDL statement:
#
#   - CREATE VIEW b on stream s loads b (once per worker: both load their
#     slot of every aggregating view) and nothing else; neither view a on
#     the same stream nor kv on the Kafka stream is loaded again, and the
#     consumers of source src keep running;
#   - CREATE / DROP of another stream, DROP VIEW b, pause_source() and
#     resume_source() of another source, COMMENT ON VIEW a, GRANT and
#     REVOKE on stream s: no load of a or kv, no consumer restart of src;
#   - the control: ALTER VIEW a OWNER TO another role changes a's catalog
#     row (the role its queries run as), and a is loaded again; pausing
#     src stops its consumers and resuming it starts them again;
#   - ALTER VIEW a RENAME: nothing is loaded again, and the workers log a
#     failure of the view (its checkpoint waits for a lock) under the new
#     name;
#   - after each step every view equals its oracle (plain tables filled in
#     the same transactions; the Kafka view from the messages produced).
#
# streamproc.sync() is the barrier: a worker reloads its catalog before it
# reports progress to sync(), so every load a statement causes is logged
# before sync() returns.
use strict;
use warnings;

use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;

use Devbroker;
use KafkaCrash ();

KafkaCrash::check_prerequisites();
my $kcat = KafkaCrash::kcat_binary();

my $broker = Devbroker->start(topics => { kt => 2, kt2 => 1 });
my $bs = $broker->bootstrap;

my $node = KafkaCrash::new_node('reload', q{
streamproc.workers = 2
streamproc.checkpoint_interval = '200ms'
});
$node->start;

my $nk = 0;

sub produce
{
	my ($topic, $from, $n) = @_;
	my $data = join('', map { sprintf(qq({"k": %d, "v": %d}\n), $_ % 50, $_) } ($from + 1 .. $from + $n));
	my ($rc, $out, $err) = KafkaCrash::run_cmd([ $kcat, '-P', '-b', $bs, '-t', $topic ], input => $data);
	die "kcat could not produce to $topic (status $rc): $err" unless $rc == 0;
}

my $batch = 0;

sub insert_batch
{
	my $from = $batch * 1000 + 1;
	my $to = ++$batch * 1000;
	my $rows = "SELECT g % 100, g FROM generate_series($from, $to) g";
	$node->safe_psql('postgres', "BEGIN; INSERT INTO s $rows; INSERT INTO s_oracle $rows; COMMIT;");
	produce('kt', $nk, 500);
	$nk += 500;
}

sub sync { $node->safe_psql('postgres', q{SELECT streamproc.sync('60s')}); }

sub check_views
{
	my ($when, @views) = @_;
	my %oracle = (
		a => [ 'SELECT * FROM a', 'SELECT k, count(*), sum(v) FROM s_oracle GROUP BY k' ],
		b => [ 'SELECT * FROM b', 'SELECT k % 10, max(v) FROM s_oracle WHERE v > 1000 GROUP BY 1' ],
		kv => [
			'SELECT * FROM kv',
			"SELECT g % 50, count(*) FROM generate_series(1, $nk) g GROUP BY 1"
		]);
	for my $v (@views)
	{
		my ($q, $o) = @{ $oracle{$v} };
		is($node->safe_psql('postgres', "SELECT (SELECT count(*) FROM (($q) EXCEPT ALL ($o)) x)"
			  . " || ' ' || (SELECT count(*) FROM (($o) EXCEPT ALL ($q)) y)"),
			'0 0', "$v equals its oracle $when");
	}
}

# Lines of the server log written since offset $from that match $re.
sub log_lines
{
	my ($from, $re) = @_;
	my $log = slurp_file($node->logfile, $from);
	return scalar(() = $log =~ /$re/g);
}

my $LOAD_A = qr/loaded continuous view public\.a:/;
my $LOAD_B = qr/loaded continuous view public\.b:/;
my $LOAD_KV = qr/loaded continuous view public\.kv:/;
my $START_SRC = qr/starts a consumer of Kafka source "src"/;

$node->safe_psql('postgres', qq{
CREATE EXTENSION streamproc;
CREATE ROLE other;
CREATE FOREIGN TABLE s (k int, v int) SERVER streamproc;
CREATE TABLE s_oracle (k int, v int);
CREATE VIEW a WITH (continuous) AS SELECT k, count(*) AS n, sum(v) AS t FROM s GROUP BY k;
CREATE FOREIGN TABLE ks (k int, v int) SERVER streamproc;
CREATE VIEW kv WITH (continuous) AS SELECT k, count(*) AS n FROM ks GROUP BY k;
SELECT streamproc.create_kafka_source('src', 'ks', 'kt', '$bs', workers => 2);
CREATE FOREIGN TABLE ks2 (k int, v int) SERVER streamproc;
CREATE VIEW kv2 WITH (continuous) AS SELECT count(*) AS n FROM ks2;
SELECT streamproc.create_kafka_source('src2', 'ks2', 'kt2', '$bs');
});
insert_batch();
sync();
check_views('at the start', qw(a kv));
is(log_lines(0, $START_SRC), 2, 'src runs one consumer on each of the 2 workers');

# Each step: the DDL, more events, sync(); then the lines it caused.
sub step
{
	my ($name, $sql, %expect) = @_;
	my $from = -s $node->logfile;
	$node->safe_psql('postgres', $sql);
	insert_batch();
	sync();
	my %got = (
		a => log_lines($from, $LOAD_A),
		b => log_lines($from, $LOAD_B),
		kv => log_lines($from, $LOAD_KV),
		src => log_lines($from, $START_SRC));
	for my $k (sort keys %got)
	{
		is($got{$k}, $expect{$k} // 0,
			"$name: " . ($k eq 'src' ? 'consumers of src started' : "loads of view $k"));
	}
}

step('CREATE VIEW b',
	'CREATE VIEW b WITH (continuous) AS SELECT k % 10 AS r, max(v) AS m FROM s WHERE v > 1000 GROUP BY 1',
	b => 2);
check_views('after CREATE VIEW b', qw(a b kv));

step('CREATE FOREIGN TABLE and its view',
	'CREATE FOREIGN TABLE s3 (x int) SERVER streamproc; CREATE VIEW c3 WITH (continuous) AS SELECT count(*) FROM s3');
step('DROP FOREIGN TABLE ... CASCADE of another stream', 'DROP FOREIGN TABLE s3 CASCADE');
step('pause_source of another source', q{SELECT streamproc.pause_source('src2')});
step('resume_source of another source', q{SELECT streamproc.resume_source('src2')});
step('COMMENT ON VIEW a', q{COMMENT ON VIEW a IS 'per key'});
step('GRANT and REVOKE on the stream', 'GRANT SELECT ON s TO other; REVOKE SELECT ON s FROM other');
check_views('after DDL on other objects', qw(a b kv));
step('DROP VIEW b', 'DROP VIEW b');
check_views('after DROP VIEW b', qw(a kv));

# The controls: what changes a's definition or src's consumers is reloaded.
step('ALTER VIEW a OWNER TO (its queries run as the new owner)',
	'GRANT SELECT ON s TO other; ALTER VIEW a OWNER TO other', a => 2);
check_views('after a changed owner', qw(a kv));
# ALTER VIEW ... RENAME: nothing is loaded again, and the workers take the
# new name for their messages: a checkpoint of the view that waits past
# streamproc.lock_timeout for streamproc.state_runs is logged under it.
{
	my $from = -s $node->logfile;
	$node->safe_psql('postgres', 'ALTER VIEW a RENAME TO a2');
	insert_batch();
	sync();
	my $locker = $node->background_psql('postgres');
	$locker->query_safe('BEGIN; LOCK TABLE streamproc.state_runs IN SHARE MODE');
	insert_batch();
	ok( KafkaCrash::wait_until(
			sub { log_lines($from, qr/continuous view "public\.a2" (?:failed|will retry its batch)/) > 0 }, 60),
		'after ALTER VIEW a RENAME TO a2, a failure of the view is logged under its new name');
	$locker->query_safe('COMMIT');
	$locker->quit;
	sync();
	is(log_lines($from, qr/loaded continuous view public\.a2?:/), 0, '... and no state of it was loaded again');
	$node->safe_psql('postgres', 'ALTER VIEW a2 RENAME TO a');
	sync();
	check_views('after a was renamed, failed, and renamed back', qw(a kv));
}
step('pause_source of src', q{SELECT streamproc.pause_source('src')});
step('resume_source of src', q{SELECT streamproc.resume_source('src')}, src => 2);
check_views('after src was paused and resumed', qw(a kv));

like(slurp_file($node->logfile), qr/loaded continuous view public\.a: [1-9][0-9]* groups in [0-9]+ ms/,
	'the load line says how many groups the slot holds');

$node->stop;
$broker->stop;
done_testing();
