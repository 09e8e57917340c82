# At the state memory budget ingestion pauses: the log and stat_views say
# so, sync() fails with a clear message, stream inserts still succeed, and
# nothing is lost: once the budget is raised, the views equal the oracle.
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
ok($node->log_contains(qr/paused ingestion: state memory budget reached/),
	'the server log says ingestion paused');

# Inserts still succeed while paused.
my ($ret, $stdout, $stderr) = $node->psql('postgres', q{
INSERT INTO ev SELECT g, 1 FROM generate_series(1, 5000) g;
INSERT INTO ev_oracle SELECT g, 1 FROM generate_series(1, 5000) g;
});
is($ret, 0, 'stream inserts succeed while ingestion is paused');

($ret, $stdout, $stderr) = $node->psql('postgres', "SELECT streamproc.sync('2s')");
isnt($ret, 0, 'sync() fails while paused');
like($stderr, qr/streamproc\.sync\(\) timed out/, 'with the timeout message');
like($stderr, qr/Ingestion is paused: the state memory budget "streamproc\.state_memory" is reached\./,
	'and says why');

# Raise the budget: ingestion resumes and nothing was lost.
$node->safe_psql('postgres', "ALTER SYSTEM SET streamproc.state_memory = '256MB'");
$node->safe_psql('postgres', 'SELECT pg_reload_conf()');
$node->safe_psql('postgres', "SELECT streamproc.sync('60s')");
ok($node->log_contains(qr/resumed ingestion/), 'the server log says ingestion resumed');
is($node->safe_psql('postgres', q{
	SELECT (SELECT count(*) FROM (SELECT * FROM per_id EXCEPT ALL
	          SELECT id, count(*), sum(v) FROM ev_oracle GROUP BY id) a) || ' ' ||
	       (SELECT count(*) FROM (SELECT id, count(*), sum(v) FROM ev_oracle GROUP BY id
	          EXCEPT ALL SELECT * FROM per_id) b)}),
	'0 0', 'the view equals the oracle after resuming');
is($node->safe_psql('postgres', "SELECT state FROM streamproc.stat_views WHERE view = 'per_id'::regclass"),
	'running', 'stat_views shows the view running again');

$node->stop;
done_testing();
