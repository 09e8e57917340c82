# Kafka sinks produce every change of a view's change log to a topic exactly
# once, across SIGKILLs, an immediate restart, a broker outage and a sink
# that restarts between Kafka's acknowledgment and its own commit.
#
# Two sinks against a devbroker: per_user (an aggregating view, keyed by
# its group key, json) and big (an append view, keyed by url, csv).
# Events arrive in transactions that also write an oracle table, while
# the test disrupts the sinks in rounds, each once the sinks are producing
# (some of the log not yet acknowledged):
#   1, 4. SIGKILL of the worker that runs per_user's sink (the postmaster
#      reinitializes, the workers and sinks start again);
#   2. an immediate restart of the server;
#   3. every broker down for a few seconds: stat_sinks shows 'waiting'
#      with the broker's error, and the queued messages go out after;
#   5. a restart between acknowledgment and commit, made deterministic:
#      both sinks' committed positions are moved back by hand and their
#      worker terminated, so that their producers start with changes
#      Kafka holds already (only the partitions' tails can tell).
# Afterwards, read back with kcat, for each sink: every position of the log
# exactly once, in order within each partition, each message equal to its
# change; per_user's topic folded by key equals the view and the batch
# query; big's messages equal the batch query's rows.
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use Time::HiRes qw(time sleep);

use Devbroker;
use KafkaCrash;

KafkaCrash::check_prerequisites();

my $broker = Devbroker->start(topics => { users_out => 4, big_out => 3 }, quiet => 1);
my $node   = KafkaCrash::new_node('kafka_sink', q{
streamproc.checkpoint_interval = '200ms'
restart_after_crash = on
});
$node->start;

sub sql { return $node->safe_psql('postgres', $_[0]); }

my $bootstrap = $broker->bootstrap;
sql(qq{
CREATE EXTENSION streamproc;
CREATE FOREIGN TABLE clicks (user_id int, url text, amount int) SERVER streamproc;
CREATE TABLE clicks_oracle (user_id int, url text, amount int);
CREATE VIEW per_user WITH (continuous) AS
    SELECT user_id, count(*) AS n, sum(amount) AS total FROM clicks GROUP BY user_id;
CREATE VIEW big WITH (continuous) AS
    SELECT user_id, url, amount FROM clicks WHERE amount >= 900;
SELECT streamproc.create_kafka_sink('users_sink', 'per_user', 'users_out', '$bootstrap');
SELECT streamproc.create_kafka_sink('big_sink', 'big', 'big_out', '$bootstrap',
                                    format => 'csv', key => ARRAY['url']);
});

# A transaction of events, written to the stream and the oracle together:
# either both have it or neither does, whatever is killed when.
my $batch = 0;
sub insert_batch
{
	$batch++;
	my $q = "SELECT ((g * 7919 + $batch * 104729) % 2000), '/u/' || (g % 37), ((g * 31 + $batch) % 1000)"
	  . " FROM generate_series(1, 500) g";
	return KafkaCrash::try_query($node, "BEGIN; INSERT INTO clicks $q; INSERT INTO clicks_oracle $q; COMMIT");
}

sub sink_row
{
	my ($sink) = @_;
	return KafkaCrash::try_query($node,
		"SELECT state || ' ' || position || ' ' || coalesce(log_position, -1) FROM streamproc.stat_sinks WHERE sink = '$sink'")
	  // '';
}

# Insert until both sinks have acknowledged something more and still have
# changes to produce: the disruption then hits running sinks mid-stream.
sub produce_until_busy
{
	my ($round) = @_;
	my %start = map { $_ => (split / /, sink_row($_))[1] // 0 } qw(users_sink big_sink);
	my $deadline = time() + 120;
	while (time() < $deadline)
	{
		insert_batch();
		my $busy = 1;
		for my $sink (qw(users_sink big_sink))
		{
			my ($state, $pos, $log) = split / /, sink_row($sink);
			$busy = 0 unless defined $log && $pos > ($start{$sink} // 0) && $log > $pos;
		}
		return 1 if $busy;
	}
	diag("round $round: the sinks did not get busy: " . sink_row('users_sink') . ' / ' . sink_row('big_sink'));
	return 0;
}

sub sink_worker_pid
{
	my ($sink) = @_;
	my $deadline = time() + 120;
	while (time() < $deadline)
	{
		my $pid = KafkaCrash::try_query($node, qq{
SELECT pid FROM streamproc.stat_workers
 WHERE worker = (hashtext('$sink')::int8 + 2147483648) % current_setting('streamproc.workers')::int
   AND pid IS NOT NULL});
		return $pid if defined $pid && $pid =~ /^\d+$/;
		sleep(0.1);
	}
	return undef;
}

# --- the disruptions
for my $round (1 .. 5)
{
	ok(produce_until_busy($round), "round $round: both sinks are producing");
	if ($round == 1 || $round == 4)
	{
		my $pid = sink_worker_pid('users_sink');
		ok(defined $pid && kill('KILL', $pid), "round $round: SIGKILLed the worker of users_sink");
		KafkaCrash::wait_server($node, $pid);
	}
	elsif ($round == 2)
	{
		$node->stop('immediate');
		$node->start;
		pass('round 2: restarted the server in immediate mode');
	}
	elsif ($round == 3)
	{
		$broker->down;
		insert_batch() for 1 .. 3;
		my $took = KafkaCrash::wait_until(sub {
			(KafkaCrash::try_query($node,
				"SELECT count(*) FROM streamproc.stat_sinks WHERE state IN ('waiting', 'retrying') AND last_error IS NOT NULL") // 0) >= 1
		}, 60);
		ok(defined $took, 'round 3: with the brokers down, stat_sinks says why a sink waits')
		  or diag(sql('SELECT * FROM streamproc.stat_sinks'));
		note(sql("SELECT sink || ': ' || state || ', ' || last_error FROM streamproc.stat_sinks"));
		$broker->up;
	}
	else
	{
		sql(q{SELECT streamproc.sync()});
		ok(defined KafkaCrash::wait_until(sub {
			sql(q{SELECT count(*) FROM streamproc.stat_sinks WHERE lag = 0 AND state = 'running'}) == 2 }, 120),
			'round 5: both sinks produced everything');
		sql(q{UPDATE streamproc.sinks SET position = position / 2});
		my @pids = map { sink_worker_pid($_) } qw(users_sink big_sink);
		sql("SELECT pg_terminate_backend($_)") for grep { defined } @pids;
		pass('round 5: moved the committed positions back and terminated the sinks\' workers');
	}
}

# --- everything produced
insert_batch() for 1 .. 3;
sql(q{SELECT streamproc.sync()});
my $took = KafkaCrash::wait_until(sub {
	sql(q{SELECT count(*) FROM streamproc.stat_sinks WHERE lag = 0 AND state = 'running'}) == 2 }, 180);
ok(defined $took, 'both sinks caught up with their change logs')
  or diag(sql('SELECT * FROM streamproc.stat_sinks'));
note(sql(q{SELECT sink || ': ' || position || ' changes, ' || messages || ' messages counted' FROM streamproc.stat_sinks ORDER BY 1}));

# The messages of a sink's topic that carry its identity, as
# [partition, offset, key, value, position].
sub read_topic
{
	my ($sink) = @_;
	my ($topic, $identity) = split / /, sql(qq{
SELECT topic || ' ' || name || '/' || (date_part('epoch', created_at) * 1000000)::int8
  FROM streamproc.sinks WHERE name = '$sink'});
	my ($rc, $out, $err) = KafkaCrash::run_cmd(
		[ KafkaCrash::kcat_binary(), '-C', '-q', '-e', '-Z', '-o', 'beginning', '-b', $bootstrap,
		  '-t', $topic, '-f', "%p\t%o\t%k\t%s\t%h\n" ], timeout => 120);
	is($rc, 0, "kcat read topic $topic") or diag($err);
	my @msgs;
	for my $line (split /\n/, $out)
	{
		my ($p, $o, $k, $v, $h) = split /\t/, $line, 5;
		next unless defined $h && $h =~ /streamproc-sink=\Q$identity\E(,|$)/;
		my ($pos) = $h =~ /streamproc-position=(\d+)/;
		push @msgs, [ $p, $o, $k eq 'NULL' ? undef : $k, $v eq 'NULL' ? undef : $v, $pos ];
	}
	return \@msgs;
}

for my $sink (qw(users_sink big_sink))
{
	my $msgs = read_topic($sink);
	my $view = $sink eq 'users_sink' ? 'per_user' : 'big';
	my $last = sql("SELECT last_position FROM streamproc.change_logs WHERE view = '$view'::regclass");

	# Every position once.
	my %seen;
	$seen{ $_->[4] }++ for @$msgs;
	my @dups    = grep { $seen{$_} > 1 } sort { $a <=> $b } keys %seen;
	my @missing = grep { !$seen{$_} } 1 .. $last;
	is(scalar(@$msgs), $last, "$sink: as many messages as changes ($last)");
	is(scalar(@dups), 0, "$sink: no change twice") or diag("twice: @dups[0 .. ($#dups < 9 ? $#dups : 9)]");
	is(scalar(@missing), 0, "$sink: no change missing")
	  or diag("missing: @missing[0 .. ($#missing < 9 ? $#missing : 9)]");

	# In position order within each partition, a key in one partition.
	my (%prev, %part_of, $disorder, $split_keys);
	for my $m (sort { $a->[0] <=> $b->[0] || $a->[1] <=> $b->[1] } @$msgs)
	{
		$disorder++ if defined $prev{ $m->[0] } && $prev{ $m->[0] } >= $m->[4];
		$prev{ $m->[0] } = $m->[4];
		next unless defined $m->[2];
		$split_keys++ if defined $part_of{ $m->[2] } && $part_of{ $m->[2] } != $m->[0];
		$part_of{ $m->[2] } = $m->[0];
	}
	ok(!$disorder, "$sink: every partition holds its changes in position order");
	ok(!$split_keys, "$sink: each key's messages are in one partition");

	# Each message is its change: load them and compare in SQL.
	sql("CREATE TABLE msgs_$sink (part int, position bigint, key text, value text)");
	my $copy = join('', map {
		join("\t", $_->[0], $_->[4], map { defined $_ ? do { (my $x = $_) =~ s/\\/\\\\/g; $x } : '\N' } @$_[2, 3]) . "\n"
	} @$msgs);
	$node->safe_psql('postgres', "COPY msgs_$sink FROM STDIN;\n$copy\\.\n");
	my $key   = $sink eq 'users_sink' ? q{c.key->>0} : q{c.new->>'url'};
	my $value = $sink eq 'users_sink' ? q{m.value::jsonb} : q{m.value};
	my $csv   = q{concat_ws(',', c.new->>'user_id', c.new->>'url', c.new->>'amount')};
	my $new   = $sink eq 'users_sink' ? q{c.new} : $csv;
	is(sql(qq{SELECT count(*) FROM msgs_$sink m
                 JOIN streamproc.changes c ON c.view = '$view'::regclass AND c.position = m.position
                WHERE m.key IS DISTINCT FROM $key OR $value IS DISTINCT FROM $new}),
		0, "$sink: every message is its change (key and value)");
}

# per_user's topic folded by key is the view, which is the batch query.
my $diff = sql(q{
WITH latest AS (SELECT DISTINCT ON (key) key, value::jsonb AS row FROM msgs_users_sink ORDER BY key, position DESC),
     batch AS (SELECT to_jsonb(o) AS row FROM (SELECT user_id, count(*) AS n, sum(amount) AS total
                                                 FROM clicks_oracle GROUP BY user_id) o),
     view AS (SELECT to_jsonb(v) AS row FROM per_user v)
SELECT (SELECT count(*) FROM ((SELECT row FROM latest EXCEPT ALL SELECT row FROM view)
                              UNION ALL (SELECT row FROM view EXCEPT ALL SELECT row FROM latest)) a)
       || ' ' ||
       (SELECT count(*) FROM ((SELECT row FROM view EXCEPT ALL SELECT row FROM batch)
                              UNION ALL (SELECT row FROM batch EXCEPT ALL SELECT row FROM view)) b)
       || ' ' || (SELECT count(*) FROM batch)});
like($diff, qr/^0 0 [1-9]\d*$/, "users_out folded by key equals per_user, which equals the batch query ($diff)");

# big's messages are the batch query's rows.
is(sql(q{
SELECT count(*) FROM ((SELECT value FROM msgs_big_sink
                       EXCEPT ALL SELECT concat_ws(',', user_id, url, amount) FROM clicks_oracle WHERE amount >= 900)
                      UNION ALL
                      (SELECT concat_ws(',', user_id, url, amount) FROM clicks_oracle WHERE amount >= 900
                       EXCEPT ALL SELECT value FROM msgs_big_sink)) d}),
	0, 'big_out holds the batch query\'s rows, each once');
note(sql(q{SELECT count(*) || ' events in ' || } . $batch . q{ || ' transactions' FROM clicks_oracle}));

is(scalar(KafkaCrash::crash_lines($node)), 0, 'no crash but the SIGKILLs');

done_testing();
