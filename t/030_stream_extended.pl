# Streams under the ingest workers: inserts through the extended query
# protocol (pgbench -M simple, extended and prepared, two clients) reach a
# continuous view exactly once each; after a crash (immediate shutdown) the
# view holds exactly the committed events, and rolled-back or in-flight ones
# never reach it.
#
# The workers consume and trim the logs, so nothing here counts log rows
# after a commit: every check compares a continuous view, after
# streamproc.sync(), with an oracle table filled in the same transactions
# (EXCEPT ALL both ways).  Log rows are read only inside the transaction
# that wrote them.
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;

my $node = PostgreSQL::Test::Cluster->new('streams');
$node->init;
$node->append_conf('postgresql.conf', "shared_preload_libraries = 'streamproc'");
$node->append_conf('postgresql.conf', "max_worker_processes = 16");
$node->start;

$node->safe_psql('postgres', q{
	CREATE EXTENSION streamproc;
	CREATE FOREIGN TABLE ev (client int, n int, body text) SERVER streamproc;
	CREATE TABLE ev_oracle (client int, n int, body text);
	CREATE VIEW ev_totals WITH (continuous) AS
		SELECT count(*) AS events, sum(n) AS total FROM ev;
	CREATE VIEW ev_by_body WITH (continuous) AS
		SELECT body, client, count(*) AS events, sum(n) AS total FROM ev
		 GROUP BY body, client;
});
my $log = $node->safe_psql('postgres',
	"SELECT log FROM streamproc.streams WHERE stream = 'ev'::regclass");
like($log, qr/^streamproc\.log_\d+$/, 'the stream has a log');

# The view equals the oracle: the same query over the oracle table, compared
# with EXCEPT ALL both ways (0 rows each way), plus the exact totals.
sub view_matches_oracle
{
	my ($view, $query, $name) = @_;
	my $diff = $node->safe_psql(
		'postgres', qq{
		SELECT (SELECT count(*) FROM (SELECT * FROM $view EXCEPT ALL $query) a),
		       (SELECT count(*) FROM ($query EXCEPT ALL SELECT * FROM $view) b)});
	is($diff, '0|0', $name);
}

# Each transaction inserts 3 events: one single-row INSERT with parameters
# and one multi-row INSERT (a batch insert), and the same rows into the
# oracle.  Inside the transaction it checks that its log rows are exactly
# 3, all under its own top-level xid; otherwise it fails (division by
# zero) and pgbench reports the failure.
my $script = qq{
\\set n random(1, 1000000)
BEGIN;
INSERT INTO ev VALUES (:client_id, :n, 'one');
INSERT INTO ev VALUES (:client_id, :n, 'two'), (:client_id, :n, 'three');
INSERT INTO ev_oracle VALUES (:client_id, :n, 'one'), (:client_id, :n, 'two'), (:client_id, :n, 'three');
SELECT 1 / (count(*) = 3)::int FROM $log WHERE "\$xid" = pg_current_xact_id();
END;
};

my $expected = 0;
for my $mode ('simple', 'extended', 'prepared')
{
	$node->pgbench(
		"--no-vacuum --client=2 --transactions=200 --protocol=$mode",
		0,
		[qr{number of transactions actually processed: 400/400}],
		[qr{^$}],
		"pgbench -M $mode inserts into a stream, 3 log rows per transaction",
		{ "stream_insert_$mode" => $script });
	$expected += 2 * 200 * 3;
	$node->safe_psql('postgres', 'SELECT streamproc.sync(\'180 seconds\')');
	is( $node->safe_psql(
			'postgres',
			'SELECT events, total = (SELECT sum(n) FROM ev_oracle) FROM ev_totals'),
		"$expected|t",
		"every event of -M $mode reaches the view once");
}
view_matches_oracle('ev_by_body',
	'SELECT body, client, count(*), sum(n) FROM ev_oracle GROUP BY body, client',
	'the grouped view equals the oracle after pgbench');

# Crash durability.  A second stream, so that the oracle starts empty.  50
# committed transactions (checkpointed by a sync), then more committed
# ones that the workers may not have checkpointed when the server dies: a
# COPY, a rollback, a rolled-back savepoint, a rollback after a COPY, and
# one transaction still open.
$node->safe_psql('postgres', q{
	CREATE FOREIGN TABLE cr (n int, body text) SERVER streamproc;
	CREATE TABLE cr_oracle (n int, body text);
	CREATE VIEW cr_by_body WITH (continuous) AS
		SELECT body, count(*) AS events, sum(n) AS total FROM cr GROUP BY body;
	CREATE VIEW cr_totals WITH (continuous) AS
		SELECT count(*) AS events, sum(n) AS total FROM cr;
});
my $sql = '';
$sql .=
    "BEGIN; INSERT INTO cr VALUES ($_, 'committed');"
  . " INSERT INTO cr_oracle VALUES ($_, 'committed'); COMMIT;\n"
  for 1 .. 50;
$sql .= "SELECT streamproc.sync('180 seconds');\n";
$sql .= "BEGIN; INSERT INTO cr VALUES (100, 'rolled back');"
  . " INSERT INTO cr_oracle VALUES (100, 'rolled back'); ROLLBACK;\n";
$sql .= "BEGIN; INSERT INTO cr VALUES (101, 'kept');"
  . " INSERT INTO cr_oracle VALUES (101, 'kept');"
  . " SAVEPOINT s; INSERT INTO cr VALUES (102, 'rolled back');"
  . " INSERT INTO cr_oracle VALUES (102, 'rolled back');"
  . " ROLLBACK TO s; COMMIT;\n";
my $copy = join('', map { "$_\tcopied\n" } 200 .. 249);
$sql .= "BEGIN;\nCOPY cr FROM STDIN;\n$copy\\.\nCOPY cr_oracle FROM STDIN;\n$copy\\.\nCOMMIT;\n";
$sql .= "BEGIN;\nCOPY cr FROM STDIN;\n250\trolled back\n\\.\nROLLBACK;\n";
$sql .= "BEGIN; INSERT INTO cr VALUES (251, 'last'); INSERT INTO cr_oracle VALUES (251, 'last'); COMMIT;\n";
$node->safe_psql('postgres', $sql);

my $open = $node->background_psql('postgres');
$open->query_safe('BEGIN');
$open->query_safe("INSERT INTO cr VALUES (300, 'in flight')");
$open->query_safe("INSERT INTO cr_oracle VALUES (300, 'in flight')");

$node->stop('immediate');
eval { $open->quit; };
$node->start;

$node->safe_psql('postgres', 'SELECT streamproc.sync(\'180 seconds\')');
is( $node->safe_psql(
		'postgres',
		'SELECT body, events, total FROM cr_by_body ORDER BY body'),
	"committed|50|1275\ncopied|50|11225\nkept|1|101\nlast|1|251",
	'after a crash the view holds exactly the committed events');
is($node->safe_psql('postgres', 'SELECT events, total FROM cr_totals'),
	'102|12852', 'after a crash the totals are exact');
view_matches_oracle('cr_by_body',
	'SELECT body, count(*), sum(n) FROM cr_oracle GROUP BY body',
	'after a crash the view equals the oracle');
view_matches_oracle('ev_by_body',
	'SELECT body, client, count(*), sum(n) FROM ev_oracle GROUP BY body, client',
	'the pgbench view survives the crash unchanged');

# The stream still takes inserts after recovery.
$node->safe_psql('postgres', q{
	BEGIN;
	INSERT INTO cr VALUES (400, 'after');
	INSERT INTO cr_oracle VALUES (400, 'after');
	COMMIT;
	SELECT streamproc.sync('180 seconds');
});
view_matches_oracle('cr_by_body',
	'SELECT body, count(*), sum(n) FROM cr_oracle GROUP BY body',
	'inserts work after recovery');

$node->stop;
done_testing();
