# At the state memory budget a view whose batch does not fit pauses: the
# log and stat_views say so, sync() fails at once with a clear message,
# stream inserts still succeed, another view that fits goes on, and nothing
# is lost: once the budget is raised, the views equal the oracle.
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;

my $node = PostgreSQL::Test::Cluster->new('budget');
$node->init;
$node->append_conf('postgresql.conf', qq{
shared_preload_libraries = 'streamproc'
max_worker_processes = 16
streamproc.state_memory = '1MB'
});
$node->start;

$node->safe_psql('postgres', q{
CREATE EXTENSION streamproc;
CREATE FOREIGN TABLE ev (id int, v int) SERVER streamproc;
CREATE TABLE ev_oracle (id int, v int);
CREATE VIEW per_id WITH (continuous) AS SELECT id, count(*) AS n, sum(v) AS total FROM ev GROUP BY id;
CREATE VIEW per_v WITH (continuous) AS SELECT v, count(*) AS n FROM ev GROUP BY v;
});

# 100,000 groups need more than 1MB of state.
$node->safe_psql('postgres', q{
INSERT INTO ev SELECT g, g % 7 FROM generate_series(1, 100000) g;
INSERT INTO ev_oracle SELECT g, g % 7 FROM generate_series(1, 100000) g;
});
$node->poll_query_until('postgres',
	"SELECT state = 'paused' FROM streamproc.stat_views WHERE view = 'per_id'::regclass")
  or die 'ingestion did not pause';
ok(1, 'stat_views shows the view paused');
ok($node->log_contains(qr/continuous view "public\.per_id" paused: state memory budget reached/),
	'the server log says the view paused');
$node->poll_query_until('postgres', "SELECT sum(n) = 100000 FROM per_v")
  or die 'per_v did not go on';
ok(1, 'a view whose batches fit goes on');

# The budget is hard: one INSERT of 100,000 new groups did not take the
# state past it (the worker reserves a piece's memory before applying it,
# and pauses the view when the reservation fails).
cmp_ok($node->safe_psql('postgres', 'SELECT sum(memory_bytes) FROM streamproc.stat_views'),
	'<=', 1024 * 1024, 'the views\' state stays within streamproc.state_memory');

# Inserts still succeed while paused.
my ($ret, $stdout, $stderr) = $node->psql('postgres', q{
INSERT INTO ev SELECT g, 1 FROM generate_series(1, 5000) g;
INSERT INTO ev_oracle SELECT g, 1 FROM generate_series(1, 5000) g;
});
is($ret, 0, 'stream inserts succeed while ingestion is paused');

($ret, $stdout, $stderr) = $node->psql('postgres', "SELECT streamproc.sync('2s')");
isnt($ret, 0, 'sync() fails while paused');
like($stderr, qr/continuous view "per_id" cannot catch up: the state memory budget is reached/,
	'at once, naming the view');
like($stderr, qr/HINT:  Increase "streamproc\.state_memory" or drop continuous views\./,
	'and says what to do');

# The budget is the server's, but a database without state is not paused
# by another's: its workers say so, its stream takes inserts and sync()
# returns.
$node->safe_psql('postgres', 'CREATE DATABASE other');
$node->safe_psql('other', q{
CREATE EXTENSION streamproc;
CREATE FOREIGN TABLE ev2 (k int) SERVER streamproc;
INSERT INTO ev2 VALUES (1);
});
($ret, $stdout, $stderr) = $node->psql('other', "SELECT streamproc.sync('60s')");
is($ret, 0, 'sync() returns in a database without state while another is paused');
is($node->safe_psql('other', 'SELECT count(*) || \' \' || count(*) FILTER (WHERE paused) FROM streamproc.stat_workers'),
	'2 0', 'its workers run and are not paused');
$node->safe_psql('postgres', 'DROP DATABASE other');

# Raise the budget: ingestion resumes and nothing was lost.
$node->safe_psql('postgres', "ALTER SYSTEM SET streamproc.state_memory = '256MB'");
$node->safe_psql('postgres', 'SELECT pg_reload_conf()');
$node->safe_psql('postgres', "SELECT streamproc.sync('60s')");
ok($node->log_contains(qr/continuous view "public\.per_id" resumed/), 'the server log says the view resumed');
is($node->safe_psql('postgres', q{
	SELECT (SELECT count(*) FROM (SELECT * FROM per_id EXCEPT ALL
	          SELECT id, count(*), sum(v) FROM ev_oracle GROUP BY id) a) || ' ' ||
	       (SELECT count(*) FROM (SELECT id, count(*), sum(v) FROM ev_oracle GROUP BY id
	          EXCEPT ALL SELECT * FROM per_id) b)}),
	'0 0', 'the view equals the oracle after resuming');
is($node->safe_psql('postgres', "SELECT state FROM streamproc.stat_views WHERE view = 'per_id'::regclass"),
	'running', 'stat_views shows the view running again');
is($node->safe_psql('postgres', q{
	SELECT (SELECT count(*) FROM (SELECT * FROM per_v EXCEPT ALL
	          SELECT v, count(*) FROM ev_oracle GROUP BY v) a) || ' ' ||
	       (SELECT count(*) FROM (SELECT v, count(*) FROM ev_oracle GROUP BY v
	          EXCEPT ALL SELECT * FROM per_v) b)}),
	'0 0', 'the other view counted every event once');

# The keys of a stream with dedup_key count in the same budget and are
# never refused: at the budget its views pause, and the messages say how
# much the keys take and that dedup_window is a way out.
my $used = $node->safe_psql('postgres', 'SELECT sum(memory_bytes) FROM streamproc.stat_views');
my $budget_kb = int($used / 1024) + 4096;
$node->safe_psql('postgres', "ALTER SYSTEM SET streamproc.state_memory = '${budget_kb}kB'");
$node->safe_psql('postgres', 'SELECT pg_reload_conf()');
$node->safe_psql('postgres', q{
CREATE FOREIGN TABLE dd (id int) SERVER streamproc OPTIONS (dedup_key 'id');
CREATE VIEW dd_n WITH (continuous) AS SELECT id % 10 AS r, count(*) AS n FROM dd GROUP BY 1;
});
my $from = -s $node->logfile;
$node->safe_psql('postgres', 'INSERT INTO dd SELECT g FROM generate_series(1, 100000) g');
ok( $node->poll_query_until('postgres',
		"SELECT state = 'paused' FROM streamproc.stat_views WHERE view = 'dd_n'::regclass"),
	'a view of a stream whose keys fill the budget pauses');
cmp_ok($node->safe_psql('postgres', q{SELECT dedup_memory_bytes FROM streamproc.stat_streams WHERE stream = 'dd'::regclass}),
	'>', 4096 * 1024, 'the keys are held beyond the budget (never refused)');
like(slurp_file($node->logfile, $from),
	qr/DETAIL:  Continuous views use \d+ bytes of shared memory \(\d+ of them for the keys of streams with dedup_key\)/,
	'the server log says how much of the budget the keys take');
($ret, $stdout, $stderr) = $node->psql('postgres', "SELECT streamproc.sync('2s')");
like($stderr, qr/continuous view "dd_n" cannot catch up: the state memory budget is reached/,
	'sync() fails at once');
like($stderr, qr/HINT:  Increase "streamproc\.state_memory", shorten the dedup_window of streams with dedup_key, or drop continuous views\./,
	'... and names dedup_window among the ways out');
$node->safe_psql('postgres', "ALTER SYSTEM SET streamproc.state_memory = '256MB'");
$node->safe_psql('postgres', 'SELECT pg_reload_conf()');
$node->safe_psql('postgres', "SELECT streamproc.sync('60s')");
is($node->safe_psql('postgres', 'SELECT sum(n) FROM dd_n'), '100000', 'with the budget raised the view counts every event');

$node->stop;
done_testing();
