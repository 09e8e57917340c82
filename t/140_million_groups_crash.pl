# Exactly-once at a million groups, with keys of any size.
#
# A view with 1,000,000 groups (count and sum per key) is fed by an
# inserter that updates every group again in chunks, while the test
# SIGKILLs an ingest worker twice during ingest and once while a worker's
# checkpoint transaction is writing state runs (caught by its lock on
# streamproc.state_runs).  A second stream carries keys of 100 kB, 1 MB and
# of 8 columns through the same crashes.  Afterwards every view equals its
# query run as a batch over a plain table filled in the same transactions,
# also after a clean restart; a keyed read finds its group.
#
# Under the sanitizers (STREAMPROC_TEST_TIME_SCALE) the view has 200,000
# groups: the same paths, in a time CI can afford.
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use IPC::Run;

my $groups = $ENV{STREAMPROC_TEST_TIME_SCALE} ? 200_000 : 1_000_000;
my $chunk = $groups / 5;

my $node = PostgreSQL::Test::Cluster->new('million');
$node->init;
$node->append_conf('postgresql.conf', q{
shared_preload_libraries = 'streamproc'
max_worker_processes = 16
streamproc.workers = 2
streamproc.checkpoint_interval = '200ms'
streamproc.state_memory = '2GB'
restart_after_crash = on
});
$node->start;

sub sql { return $node->safe_psql('postgres', $_[0]); }

sql(q{
CREATE EXTENSION streamproc;
CREATE FOREIGN TABLE ev (k int, v int) SERVER streamproc;
CREATE TABLE ev_oracle (k int, v int);
CREATE VIEW per_k WITH (continuous) AS SELECT k, count(*) AS n, sum(v) AS s FROM ev GROUP BY k;
CREATE FOREIGN TABLE bk (t text, a int, b int, c int, d text, e date, f bool, g numeric, h int) SERVER streamproc;
CREATE TABLE bk_oracle (t text, a int, b int, c int, d text, e date, f bool, g numeric, h int);
CREATE VIEW per_t WITH (continuous) AS SELECT t, count(*) AS n FROM bk GROUP BY t;
CREATE VIEW per_8 WITH (continuous) AS
    SELECT a, b, c, d, e, f, g, h, count(*) AS n FROM bk GROUP BY a, b, c, d, e, f, g, h;
});

# Round $r of updates: every group once, in five chunks (one transaction
# each, into the stream and the oracle), and a few keys of every size.
sub round_sql
{
	my ($r, $part) = @_;
	my $from = $part * $chunk;
	my $to = $from + $chunk - 1;
	my $rows = "SELECT g, g % 1000 + $r FROM generate_series($from, $to) g";
	my $keys = "SELECT CASE g % 3 WHEN 0 THEN repeat('x', 100 * 1024) WHEN 1 THEN repeat(md5(g::text), 32768)"
	  . " ELSE 'k' || g END, g, g * 2, NULL, repeat('d', g), date '2026-01-01' + g, g % 2 = 0, g / 3.0, $r"
	  . " FROM generate_series(1, 3) g";
	return "BEGIN; INSERT INTO ev $rows; INSERT INTO ev_oracle $rows;"
	  . ($part == 0 ? " INSERT INTO bk $keys; INSERT INTO bk_oracle $keys;" : '')
	  . ' COMMIT;';
}

# Round 0 builds the million groups.
sql(round_sql(0, $_)) for 0 .. 4;
sql(q{SELECT streamproc.sync('300s')});
is(sql('SELECT groups FROM streamproc.stat_views WHERE view = \'per_k\'::regclass'), $groups,
	"the view has $groups groups");

# Rounds 1 to 3 by a background inserter; a chunk whose connection broke
# is sent again (if it had committed, stream and oracle both get it twice).
my $script = '';
for my $r (1 .. 3)
{
	for my $p (0 .. 4)
	{
		my $s = round_sql($r, $p);
		$script .= "until psql -X -q -v ON_ERROR_STOP=1 -d postgres -c \"$s\" >/dev/null 2>&1; do sleep 0.2; done\n";
	}
}
$script .= "echo inserter done\n";
my ($in, $out, $err) = ('', '', '');
local $ENV{PGHOST} = $node->host;
local $ENV{PGPORT} = $node->port;
my $inserter = IPC::Run::start([ 'bash', '-c', $script ], \$in, \$out, \$err);

# Two workers again, neither of them the one killed: until the postmaster
# has noticed the kill, the killed worker's slot still shows its pid (and
# the server still answers), so "two workers" alone could be seen before
# the crash restart and the next statement would meet it.
sub server_back
{
	my ($killed) = @_;
	for my $try (1 .. 600)
	{
		my $ok = eval {
			$node->poll_query_until('postgres',
				"SELECT count(*) = 2 AND bool_and(pid <> $killed) FROM streamproc.stat_workers WHERE pid IS NOT NULL");
		};
		return 1 if $ok;
		select(undef, undef, undef, 0.1);
	}
	return 0;
}

sub kill_worker
{
	my ($pid, $label) = @_;
	ok($pid =~ /^\d+$/ && kill('KILL', $pid), "SIGKILLed worker pid $pid $label");
	ok(server_back($pid), "the server and its workers came back after the kill $label");
}

# Two kills during ingest, at progress points of the oracle.
for my $k (1 .. 2)
{
	my $min = $groups + $k * 2 * $chunk;
	$node->poll_query_until('postgres', "SELECT count(*) >= $min FROM ev_oracle", 't')
	  or die "no progress past $min events";
	kill_worker(sql('SELECT pid FROM streamproc.stat_workers WHERE pid IS NOT NULL ORDER BY random() LIMIT 1'),
		"during ingest ($min+ events committed)");
}

# One kill while a checkpoint transaction writes state runs: a session
# waits (polling pg_locks every millisecond) for a worker that holds a
# lock on streamproc.state_runs in a transaction that wrote to it.
my $pid = sql(q{
DO $$
DECLARE
    p int;
BEGIN
    FOR i IN 1 .. 600000 LOOP
        SELECT l.pid INTO p FROM pg_catalog.pg_locks l
          JOIN pg_catalog.pg_stat_activity a ON a.pid = l.pid
         WHERE l.relation = 'streamproc.state_runs'::regclass AND l.mode = 'RowExclusiveLock'
           AND l.granted AND a.backend_type = 'streamproc worker'
         LIMIT 1;
        EXIT WHEN p IS NOT NULL;
        PERFORM pg_sleep(0.001);
    END LOOP;
    PERFORM set_config('million.pid', p::text, false);
END $$;
SELECT current_setting('million.pid', true);
});
kill_worker($pid, 'while its checkpoint wrote state runs');

$inserter->finish;
like($out, qr/inserter done/, 'every chunk was inserted');
sql(q{SELECT streamproc.sync('600s')});

sub check_views
{
	my ($when) = @_;
	is(sql(q{SELECT (SELECT count(*) FROM (SELECT * FROM per_k EXCEPT ALL
                      SELECT k, count(*), sum(v) FROM ev_oracle GROUP BY k) a) || ' ' ||
                    (SELECT count(*) FROM (SELECT k, count(*), sum(v) FROM ev_oracle GROUP BY k
                      EXCEPT ALL SELECT * FROM per_k) b)}),
		'0 0', "per_k ($groups groups) equals its oracle $when");
	is(sql(q{SELECT (SELECT count(*) FROM (SELECT * FROM per_t EXCEPT ALL
                      SELECT t, count(*) FROM bk_oracle GROUP BY t) a) || ' ' ||
                    (SELECT count(*) FROM (SELECT t, count(*) FROM bk_oracle GROUP BY t
                      EXCEPT ALL SELECT * FROM per_t) b)}),
		'0 0', "per_t (keys of 100 kB and 1 MB) equals its oracle $when");
	is(sql(q{SELECT (SELECT count(*) FROM (SELECT * FROM per_8 EXCEPT ALL
                      SELECT a, b, c, d, e, f, g, h, count(*) FROM bk_oracle GROUP BY a, b, c, d, e, f, g, h) a) || ' ' ||
                    (SELECT count(*) FROM (SELECT a, b, c, d, e, f, g, h, count(*) FROM bk_oracle
                      GROUP BY a, b, c, d, e, f, g, h EXCEPT ALL SELECT * FROM per_8) b)}),
		'0 0', "per_8 (a key of 8 columns) equals its oracle $when");
}
check_views('after three kills');
is(sql(q{SELECT max(length(t)) FROM per_t}), 1024 * 1024, 'the 1 MB key is a group');
is(sql('SELECT count(*) FROM streamproc.errors'), '0', 'no event went to streamproc.errors');

$node->restart;
sql(q{SELECT streamproc.sync('600s')});
check_views('after a clean restart');
is(sql(q{SELECT n || ' ' || s FROM per_k WHERE k = 4242}),
	sql(q{SELECT count(*) || ' ' || sum(v) FROM ev_oracle WHERE k = 4242}),
	'a keyed read finds its group');

my $log = slurp_file($node->logfile);
my @crashes = $log =~ /(terminated by signal (?!9\b)\d+.*|TRAP:.*|PANIC:.*)/g;
is(scalar(@crashes), 0, 'no other crash in the server log') or diag(join("\n", @crashes));

$node->stop;
done_testing();
