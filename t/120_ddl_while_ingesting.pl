# DDL on every kind of object while the workers ingest: no worker exits,
# a view that a statement breaks (its joined table renamed away) shows as
# failed and recovers once the table is back, and at the end every view
# equals its oracle: nothing lost, nothing counted twice.
#
# Each round inserts a chunk of events (mirrored into a plain table in the
# same transaction) and then runs one DDL statement, without waiting for
# the workers, which ingest the chunk meanwhile.
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;

my $node = PostgreSQL::Test::Cluster->new('ddl');
$node->init;
$node->append_conf('postgresql.conf', qq{
shared_preload_libraries = 'streamproc'
max_worker_processes = 16
streamproc.workers = 2
streamproc.max_batch_delay = 10
});
$node->start;

sub sql { return $node->safe_psql('postgres', $_[0]); }

sql(q{
CREATE EXTENSION streamproc;
CREATE FOREIGN TABLE ev (k int, v int) SERVER streamproc;
CREATE TABLE ev_oracle (k int, v int);
CREATE TABLE dim (k int PRIMARY KEY, name text);
INSERT INTO dim SELECT g, 'n' || g FROM generate_series(0, 99) g;
CREATE VIEW per_k WITH (continuous) AS SELECT k, count(*) AS n, sum(v) AS s FROM ev GROUP BY k;
CREATE VIEW per_name WITH (continuous) AS
    SELECT d.name, count(*) AS n FROM ev e JOIN dim d ON d.k = e.k GROUP BY d.name;
CREATE VIEW rows_big WITH (continuous) AS SELECT k, v FROM ev WHERE v % 97 = 0;
});

my $next = 1;
sub insert_chunk
{
	my $from = $next;
	my $to = $next + 1999;
	$next = $to + 1;
	sql(qq{
BEGIN;
INSERT INTO ev (k, v) SELECT g % 100, g FROM generate_series($from, $to) g;
INSERT INTO ev_oracle SELECT g % 100, g FROM generate_series($from, $to) g;
COMMIT;});
}

# One statement per round, in this order, each run while the workers
# ingest the chunk inserted just before it.
my @ddl = (
	q{CREATE VIEW tmp1 WITH (continuous) AS SELECT v % 3 AS m, count(*) FROM ev GROUP BY 1},
	q{ALTER FOREIGN TABLE ev ADD COLUMN extra1 text},
	q{CREATE INDEX dim_name ON dim (name)},
	q{VACUUM FULL dim},
	q{ALTER TABLE dim ADD COLUMN note text},
	q{DROP VIEW tmp1},
	q{CREATE FOREIGN TABLE ev2 (a int) SERVER streamproc},
	q{CREATE VIEW ev2_n WITH (continuous) AS SELECT count(*) FROM ev2},
	q{INSERT INTO ev2 SELECT generate_series(1, 5000)},
	q{DROP FOREIGN TABLE ev2 CASCADE},
	q{ALTER VIEW per_k RENAME TO per_k2},
	q{ALTER VIEW per_k2 RENAME TO per_k},
	q{DROP INDEX dim_name},
	q{COMMENT ON COLUMN ev.extra1 IS 'unused'},
	q{CLUSTER dim USING dim_pkey},
	q{ANALYZE dim},
	q{CREATE VIEW tmp2 WITH (continuous) AS SELECT k FROM ev WHERE k = 7},
	q{DROP VIEW tmp2},
	q{ALTER TABLE dim RENAME TO dim_away},
	q{ALTER TABLE dim_away RENAME TO dim},
	q{CREATE SCHEMA other; ALTER TABLE ev_oracle SET SCHEMA other; ALTER TABLE other.ev_oracle SET SCHEMA public; DROP SCHEMA other},
	q{REINDEX TABLE dim},
);

foreach my $stmt (@ddl)
{
	insert_chunk();
	sql($stmt);
}
insert_chunk();

# Columns of a stream with views are never dropped, even unread ones.
my ($ret, $stdout, $stderr) = $node->psql('postgres', 'ALTER FOREIGN TABLE ev DROP COLUMN extra1');
like($stderr, qr/cannot drop column "extra1" of stream "ev"/,
	'a column of a stream that views read cannot be dropped');

# A lock held on the table a view joins: after streamproc.lock_timeout
# that view retries later, and the worker's other views go on.
my $locker = $node->background_psql('postgres');
$locker->query_safe('BEGIN');
$locker->query_safe('LOCK TABLE dim IN ACCESS EXCLUSIVE MODE');
insert_chunk();
ok($node->poll_query_until('postgres', q{
	SELECT state = 'retrying' AND last_error LIKE '55P03:%'
	  FROM streamproc.stat_views WHERE view = 'per_name'::regclass}),
	'a view blocked by a lock on the table it joins retries later');
ok($node->poll_query_until('postgres', q{
	SELECT (SELECT sum(n) FROM per_k) = (SELECT count(*) FROM ev_oracle)}),
	'the worker\'s other views go on meanwhile');
$locker->query_safe('COMMIT');
$locker->quit;

# The view broken by the rename may have failed meanwhile: it recovers,
# and sync() retries it at once.
sql('SELECT streamproc.sync()');
is(sql(q{SELECT count(*) FROM streamproc.stat_views WHERE state <> 'running'}), '0',
	'every view runs again');

# A view whose checkpoint cannot write (its rows table locked): after
# streamproc.lock_timeout it retries later, the worker's other views
# checkpoint meanwhile, and sync() waits for it instead of returning with
# the view behind.
my $rows_table = sql(q{SELECT rows_table FROM streamproc.views WHERE view = 'rows_big'::regclass});
my $per_k_checkpoint = sql(q{SELECT last_checkpoint FROM streamproc.stat_views WHERE view = 'per_k'::regclass});
$locker = $node->background_psql('postgres');
$locker->query_safe('BEGIN');
$locker->query_safe("LOCK TABLE $rows_table IN ACCESS EXCLUSIVE MODE");
insert_chunk();
ok($node->poll_query_until('postgres', q{
	SELECT state = 'retrying' AND last_error LIKE '55P03:%'
	  FROM streamproc.stat_views WHERE view = 'rows_big'::regclass}),
	'an append view whose checkpoint waits for a lock on its rows table retries later');
ok($node->poll_query_until('postgres', qq{
	SELECT last_checkpoint > '$per_k_checkpoint' AND
	       (SELECT sum(n) FROM per_k) = (SELECT count(*) FROM ev_oracle)
	  FROM streamproc.stat_views WHERE view = 'per_k'::regclass}),
	'the other views checkpoint meanwhile');
($ret, $stdout, $stderr) = $node->psql('postgres', q{SELECT streamproc.sync('3 s')});
like($stderr, qr/streamproc\.sync\(\) timed out/, 'sync() waits for the view that retries its checkpoint');
$locker->query_safe('COMMIT');
$locker->quit;
sql('SELECT streamproc.sync()');
is(sql(q{SELECT state FROM streamproc.stat_views WHERE view = 'rows_big'::regclass}), 'running',
	'once the lock is gone the view checkpoints again');

is(sql(q{
SELECT (SELECT count(*) FROM (SELECT * FROM per_k EXCEPT ALL
          SELECT k, count(*), sum(v) FROM ev_oracle GROUP BY k) a) || ' ' ||
       (SELECT count(*) FROM (SELECT k, count(*), sum(v) FROM ev_oracle GROUP BY k
          EXCEPT ALL SELECT * FROM per_k) b)}), '0 0', 'per_k equals its oracle');
is(sql(q{
SELECT (SELECT count(*) FROM (SELECT * FROM per_name EXCEPT ALL
          SELECT d.name, count(*) FROM ev_oracle e JOIN dim d ON d.k = e.k GROUP BY d.name) a) || ' ' ||
       (SELECT count(*) FROM (SELECT d.name, count(*) FROM ev_oracle e JOIN dim d ON d.k = e.k GROUP BY d.name
          EXCEPT ALL SELECT * FROM per_name) b)}), '0 0', 'per_name (joins dim) equals its oracle');
is(sql(q{
SELECT (SELECT count(*) FROM (SELECT * FROM rows_big EXCEPT ALL
          SELECT k, v FROM ev_oracle WHERE v % 97 = 0) a) || ' ' ||
       (SELECT count(*) FROM (SELECT k, v FROM ev_oracle WHERE v % 97 = 0
          EXCEPT ALL SELECT * FROM rows_big) b)}), '0 0', 'the append view equals its oracle');
is(sql(q{SELECT count(*) FROM streamproc.errors}), '0', 'no event was dead-lettered');

my $log = slurp_file($node->logfile);
my @exits = $log =~ /(background worker "streamproc worker" \(PID \d+\) (?:exited with exit code [1-9]|was terminated by signal \d+).*)/g;
is(scalar(@exits), 0, 'no ingest worker exited') or diag(join("\n", @exits));

$node->stop;
done_testing();
