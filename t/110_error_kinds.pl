# Only an event's own data sends it to streamproc.errors.  A view's
# function that raises out of memory (53200), disk full (53100), a lock
# timeout (55P03), a cancel (57014), a serialization failure (40001) or an
# internal error (XX000) for a while must not turn good events into dead
# letters: once the fault stops, every event is counted exactly once and
# streamproc.errors holds only the events whose data was bad.  Both inputs:
# SQL inserts (the stream log) and a Kafka source.
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use File::Temp ();

use lib 't/lib';
use Devbroker;
use KafkaCrash;

my $tmp    = File::Temp->newdir('errkinds-XXXXXX', TMPDIR => 1, CLEANUP => 1);
my $broker = Devbroker->start(topics => { kev => 2 }, dir => "$tmp", quiet => 1);
my $bs     = $broker->bootstrap;
my $kcat   = KafkaCrash::kcat_binary();

my $node = PostgreSQL::Test::Cluster->new('errkinds');
$node->init;
$node->append_conf('postgresql.conf', qq{
shared_preload_libraries = 'streamproc'
max_worker_processes = 16
streamproc.checkpoint_interval = '200ms'
});
$node->start;

# faulty(v, input) raises the SQLSTATE that table fault has for the input
# ('sql' or 'kafka'), and counts that it did in sequence met_<input>
# (nextval() is not rolled back); a negative v is bad data (22023) whatever
# the fault.  Each input meets the fault in turn.
$node->safe_psql('postgres', qq{
CREATE EXTENSION streamproc;
CREATE TABLE fault (input text, code text);
CREATE SEQUENCE met_sql;
CREATE SEQUENCE met_kafka;
CREATE FUNCTION faulty(v int, input text) RETURNS int LANGUAGE plpgsql AS \$\$
DECLARE c text;
BEGIN
  SELECT f.code INTO c FROM public.fault f WHERE f.input = faulty.input;
  IF c IS NOT NULL THEN
    PERFORM pg_catalog.nextval(('public.met_' || input)::regclass);
    RAISE EXCEPTION 'simulated failure %', c USING ERRCODE = c;
  END IF;
  IF v < 0 THEN
    RAISE EXCEPTION 'negative value %', v USING ERRCODE = '22023';
  END IF;
  RETURN v;
END \$\$;
CREATE FOREIGN TABLE ev (k int, v int) SERVER streamproc;
CREATE TABLE ev_oracle (k int, v int);
CREATE VIEW per_k WITH (continuous) AS
    SELECT k, count(*) AS n, sum(faulty(v, 'sql')) AS s FROM ev GROUP BY k;
CREATE VIEW rows_out WITH (continuous) AS SELECT k, faulty(v, 'sql') AS v FROM ev;
CREATE FOREIGN TABLE kev (k int, v int) SERVER streamproc;
CREATE TABLE kev_oracle (k int, v int);
CREATE VIEW kper_k WITH (continuous) AS
    SELECT k, count(*) AS n, sum(faulty(v, 'kafka')) AS s FROM kev GROUP BY k;
SELECT streamproc.create_kafka_source('ksrc', 'kev', 'kev', '$bs', format => 'csv');
});

# A view equals its query over the oracle table: 0 rows differ either way.
sub exact
{
	my ($view, $oracle, $query) = @_;
	return $node->safe_psql('postgres', qq{
SELECT (SELECT count(*) FROM (SELECT * FROM $view EXCEPT ALL $query) a) || ' ' ||
       (SELECT count(*) FROM ($query EXCEPT ALL SELECT * FROM $view) b)});
}

my $per_k_query = 'SELECT k, count(*), sum(v) FROM %s WHERE v >= 0 GROUP BY k';

sub produce
{
	my ($lines) = @_;
	my ($rc, $out, $err) = KafkaCrash::run_cmd(
		[ $kcat, '-P', '-b', $bs, '-t', 'kev', '-X', 'socket.timeout.ms=10000' ],
		input => $lines);
	die "kcat could not produce: $err" unless $rc == 0;
}

# How many times a sequence gave a value.
sub met
{
	my ($input) = @_;
	return $node->safe_psql('postgres',
		"SELECT CASE WHEN is_called THEN last_value ELSE 0 END FROM met_$input");
}

# Turn the fault on for one input, run events through it, check that no
# event is dead-lettered while the fault lasts, turn it off and wait until
# the events are processed.
sub with_fault
{
	my ($input, $code, $run_events) = @_;
	my $met = met($input);

	$node->safe_psql('postgres', "INSERT INTO fault VALUES ('$input', '$code')");
	my $errors_before = $node->safe_psql('postgres', 'SELECT count(*) FROM streamproc.errors');
	$run_events->();
	$node->poll_query_until('postgres',
		"SELECT CASE WHEN is_called THEN last_value ELSE 0 END > $met FROM met_$input")
	  or die "the worker did not meet fault $code on the $input input";
	is($node->safe_psql('postgres', 'SELECT count(*) FROM streamproc.errors'),
		$errors_before, "$code, $input input: no event dead-lettered while the fault lasts");
	$node->safe_psql('postgres', 'DELETE FROM fault');
	$node->safe_psql('postgres', "SELECT streamproc.sync('120 s')");
}

my ($first, $bad_sql, $bad_kafka) = (1, 0, 0);
foreach my $code (qw(53200 53100 55P03 57014 40001 XX000))
{
	my $last = $first + 199;

	# 200 events per input, every 50th with bad data (dead-lettered by
	# both views of ev, by the one view of kev).
	with_fault('sql', $code, sub {
		$node->safe_psql('postgres', qq{
BEGIN;
INSERT INTO ev SELECT g % 7, CASE WHEN g % 50 = 0 THEN -g ELSE g END
  FROM generate_series($first, $last) g;
INSERT INTO ev_oracle SELECT g % 7, CASE WHEN g % 50 = 0 THEN -g ELSE g END
  FROM generate_series($first, $last) g;
COMMIT;});
	});
	with_fault('kafka', $code, sub {
		produce(join('',
			map { sprintf("%d,%d\n", $_ % 5, $_ % 50 == 0 ? -$_ : $_) } ($first .. $last)));
		$node->safe_psql('postgres', qq{
INSERT INTO kev_oracle SELECT g % 5, CASE WHEN g % 50 = 0 THEN -g ELSE g END
  FROM generate_series($first, $last) g;});
	});
	$bad_sql   += 4;
	$bad_kafka += 4;

	is(exact('per_k', 'ev_oracle', sprintf($per_k_query, 'ev_oracle')), '0 0',
		"$code: SQL view exact after the fault");
	is(exact('kper_k', 'kev_oracle', sprintf($per_k_query, 'kev_oracle')), '0 0',
		"$code: Kafka view exact after the fault");
	is(exact('rows_out', 'ev_oracle', 'SELECT k, v FROM ev_oracle WHERE v >= 0'), '0 0',
		"$code: append view exact after the fault");
	is($node->safe_psql('postgres', qq{
SELECT count(*) FILTER (WHERE sqlstate = '22023') || ' ' ||
       count(*) FILTER (WHERE sqlstate <> '22023')
  FROM streamproc.errors}),
		($bad_sql * 2 + $bad_kafka) . ' 0',
		"$code: only the events with bad data are in streamproc.errors");
	$first = $last + 1;
}

$node->stop;
$broker->stop;
done_testing();
