# An ingest worker terminated with pg_terminate_backend() comes back by
# itself (the launcher restarts it after a second); it recovers from its
# checkpoint and the views stay exact.  DROP EXTENSION and CREATE
# EXTENSION back to back always leave the database with its workers.
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;

my $node = PostgreSQL::Test::Cluster->new('restart');
$node->init;
$node->append_conf('postgresql.conf', qq{
shared_preload_libraries = 'streamproc'
max_worker_processes = 16
});
$node->start;

$node->safe_psql('postgres', q{
CREATE EXTENSION streamproc;
CREATE FOREIGN TABLE ev (k int, v int) SERVER streamproc;
CREATE TABLE ev_oracle (k int, v int);
CREATE VIEW per_k WITH (continuous) AS SELECT k, count(*) AS n, sum(v) AS s FROM ev GROUP BY k;
});

my $insert = sub {
	my ($from, $to) = @_;
	$node->safe_psql('postgres', qq{
BEGIN;
INSERT INTO ev SELECT g % 10, g FROM generate_series($from, $to) g;
INSERT INTO ev_oracle SELECT g % 10, g FROM generate_series($from, $to) g;
COMMIT;});
};
my $exact = sub {
	return $node->safe_psql('postgres', q{
SELECT (SELECT count(*) FROM (SELECT * FROM per_k EXCEPT ALL
          SELECT k, count(*), sum(v) FROM ev_oracle GROUP BY k) a) || ' ' ||
       (SELECT count(*) FROM (SELECT k, count(*), sum(v) FROM ev_oracle GROUP BY k
          EXCEPT ALL SELECT * FROM per_k) b)});
};

$insert->(1, 10000);
$node->safe_psql('postgres', 'SELECT streamproc.sync()');
is($exact->(), '0 0', 'view exact before terminating the workers');

my $pids = $node->safe_psql('postgres',
	'SELECT string_agg(pid::text, \',\' ORDER BY worker) FROM streamproc.stat_workers');
$insert->(10001, 20000);
is($node->safe_psql('postgres',
		'SELECT count(*) FROM streamproc.stat_workers w WHERE pg_terminate_backend(w.pid)'),
	'2', 'terminated both workers');
$insert->(20001, 30000);

$node->poll_query_until('postgres', qq{
SELECT count(*) = 2 AND string_agg(pid::text, ',' ORDER BY worker) <> '$pids'
  FROM streamproc.stat_workers WHERE pid IS NOT NULL})
  or die 'workers did not come back';
ok(1, 'the launcher restarted the workers');

$node->safe_psql('postgres', 'SELECT streamproc.sync()');
is($exact->(), '0 0', 'view exact after the workers came back');
is($node->safe_psql('postgres', 'SELECT sum(n) FROM per_k'), '30000', 'every event counted once');

# DROP EXTENSION and CREATE EXTENSION back to back: the workers stopped by
# the DROP may still be exiting when the CREATE asks for new ones; the
# launcher must start them once they are gone.  Nothing here calls sync(),
# which would ask for missing workers itself.  Each round waits until both
# workers of the new extension run.
my $missing = 0;
{
	# a worker that is not started stays missing: 10 s tells
	local $PostgreSQL::Test::Utils::timeout_default = 10;
	for my $round (1 .. 20)
	{
		$node->safe_psql('postgres', 'DROP EXTENSION streamproc CASCADE');
		$node->safe_psql('postgres', 'CREATE EXTENSION streamproc');
		$missing++
		  unless $node->poll_query_until('postgres',
			'SELECT count(*) = 2 FROM streamproc.stat_workers WHERE pid IS NOT NULL');
	}
}
is($missing, 0, 'after 20 rounds of DROP and CREATE EXTENSION both workers run every time');

$node->stop;
done_testing();
