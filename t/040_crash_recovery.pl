# Exactly-once across crashes: while a million events are inserted into a
# stream in many transactions (and views over views, four deep, follow
# it, some over aggregating views whose groups change; three are created
# mid-stream), SIGKILL an ingest worker five times (each
# time the postmaster reinitializes shared memory and the workers recover
# from their checkpoints) and restart the server once in immediate mode.
# Afterwards every view equals the batch oracle: a plain table filled in the
# same transactions as the stream.  A clean restart keeps the results, and
# counting continues.
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use IPC::Run;

my $chunks = 200;
my $chunk_size = 5000;

my $node = PostgreSQL::Test::Cluster->new('crash');
$node->init;
$node->append_conf('postgresql.conf', qq{
shared_preload_libraries = 'streamproc'
max_worker_processes = 16
streamproc.checkpoint_interval = '200ms'
restart_after_crash = on
});
$node->start;

$node->safe_psql('postgres', q{
CREATE EXTENSION streamproc;
CREATE FOREIGN TABLE clicks (user_id int, url text, amount numeric) SERVER streamproc;
CREATE TABLE clicks_oracle (user_id int, url text, amount numeric);
CREATE VIEW per_user WITH (continuous) AS
    SELECT user_id, count(*) AS n, sum(amount) AS total, avg(amount) AS mean
      FROM clicks GROUP BY user_id;
CREATE VIEW per_url WITH (continuous) AS
    SELECT url, count(*) AS n, max(amount) AS top FROM clicks WHERE amount > 5 GROUP BY url;
CREATE VIEW totals WITH (continuous) AS
    SELECT count(*) AS n, sum(amount) AS total FROM clicks;
CREATE VIEW big_clicks WITH (continuous) AS
    SELECT user_id, url, amount FROM clicks WHERE amount >= 9.99;
-- Views over views (feed.c), three deep; mid_per_url is created mid-stream.
CREATE VIEW mid_clicks WITH (continuous) AS
    SELECT user_id, url, amount FROM clicks WHERE amount >= 9;
CREATE VIEW mid_even WITH (continuous) AS
    SELECT user_id, url, amount * 2 AS doubled FROM mid_clicks WHERE user_id % 2 = 0;
CREATE VIEW even_per_user WITH (continuous) AS
    SELECT user_id, count(*) AS n, sum(doubled) AS total FROM mid_even GROUP BY user_id;
-- A change log (changes.c); mid_even gets one mid-stream.
SELECT streamproc.create_change_log('big_clicks');
SELECT streamproc.create_change_log('per_user');
-- Views over aggregating views (retract.c): users move between buckets as
-- their counts change.  by_bucket reads the log of per_user; bucket_totals
-- starts the log of by_bucket.  More are created mid-stream.
CREATE VIEW by_bucket WITH (continuous) AS
    SELECT n % 10 AS bucket, count(*) AS users, sum(n) AS n, sum(total) AS total
      FROM per_user GROUP BY 1;
CREATE VIEW bucket_totals WITH (continuous) AS
    SELECT count(*) AS buckets, sum(users) AS users, sum(n) AS n FROM by_bucket;
-- Users per count: every event moves its user to the next count, so the
-- groups of the counts everyone passed empty and are dropped (feed.c,
-- batch_group_left()), checkpoints and kills in between.
CREATE VIEW users_per_n WITH (continuous) AS
    SELECT n, count(*) AS users, sum(total) AS total FROM per_user GROUP BY n;
});

# The inserter: one transaction per chunk writes the same rows to the
# stream and to the oracle, so a crash keeps both or neither.  A chunk whose
# connection broke is sent again; if it had committed, both tables get it
# twice, which keeps them equal.
my $rows = sub {
	my ($b) = @_;
	return "SELECT (g * 7 + $b) % 1000, '/p/' || ((g + $b) % 50), ((g * 13 + $b) % 1000) / 100.0"
	  . " FROM generate_series(1, $chunk_size) g";
};
my $script = '';
for my $b (1 .. $chunks)
{
	my $sql = 'BEGIN; INSERT INTO clicks ' . $rows->($b) . '; INSERT INTO clicks_oracle ' . $rows->($b) . '; COMMIT;';
	$script .= "until psql -X -q -v ON_ERROR_STOP=1 -d postgres -c \"$sql\" >/dev/null 2>&1; do sleep 0.2; done\n";
}
$script .= "echo inserter done\n";
my ($in, $out, $err) = ('', '', '');
local $ENV{PGHOST} = $node->host;
local $ENV{PGPORT} = $node->port;
my $inserter = IPC::Run::start([ 'bash', '-c', $script ], \$in, \$out, \$err);

# Wait until the workers are running and the oracle has grown past $min.
sub wait_for_progress
{
	my ($min) = @_;
	$node->poll_query_until('postgres',
		"SELECT count(*) >= $min FROM clicks_oracle")
	  or die "no progress past $min events";
	$node->poll_query_until('postgres',
		"SELECT count(*) = 2 FROM streamproc.stat_workers WHERE pid IS NOT NULL")
	  or die "workers did not come back";
}

my $kills = 0;
for my $round (1 .. 5)
{
	wait_for_progress($round * 120_000);
	my $pid = $node->safe_psql('postgres',
		"SELECT pid FROM streamproc.stat_workers WHERE pid IS NOT NULL ORDER BY random() LIMIT 1");
	ok($pid =~ /^\d+$/, "found a worker to kill in round $round");
	$kills++ if kill('KILL', $pid);
	# A view over a view created while events and kills go on: it counts
	# what its upstream had (backfill) and everything after, once.
	if ($round == 1)
	{
		my $created = 0;
		for my $try (1 .. 100)
		{
			my ($r, $o, $e) = $node->psql('postgres',
				'CREATE VIEW mid_per_url WITH (continuous) AS'
				  . ' SELECT url, count(*) AS n, sum(amount) AS total FROM mid_clicks GROUP BY url');
			$created = 1, last if $r == 0;
			select(undef, undef, undef, 0.2);
		}
		ok($created, 'created a view over a view while ingesting, after a SIGKILL');
	}
	if ($round == 2)
	{
		my $created = 0;
		for my $try (1 .. 100)
		{
			my ($r, $o, $e) = $node->psql('postgres',
				q{SELECT streamproc.create_change_log('mid_even', retention => '1 hour')});
			$created = 1, last if $r == 0;
			select(undef, undef, undef, 0.2);
		}
		ok($created, 'created a change log while ingesting, after a SIGKILL');
	}
	if ($round == 3)
	{
		my $created = 0;
		for my $try (1 .. 100)
		{
			my ($r, $o, $e) = $node->psql('postgres', q{SELECT streamproc.create_change_log('per_url')});
			$created = 1, last if $r == 0;
			select(undef, undef, undef, 0.2);
		}
		ok($created, 'created the change log of an aggregating view while ingesting, after a SIGKILL');
	}
	# Views over aggregating views created while events and kills go on:
	# url_bands over per_url, whose log exists (round 3), and even_bands
	# over even_per_user, whose log it starts.
	if ($round == 4 || $round == 5)
	{
		my $sql = $round == 4
		  ? 'CREATE VIEW url_bands WITH (continuous) AS'
		  . ' SELECT n / 1000 AS band, count(*) AS urls, sum(n) AS n FROM per_url GROUP BY 1'
		  : 'CREATE VIEW even_bands WITH (continuous) AS'
		  . ' SELECT n % 3 AS k, count(*) AS users, sum(total) AS total FROM even_per_user GROUP BY 1';
		my $created = 0;
		for my $try (1 .. 100)
		{
			my ($r, $o, $e) = $node->psql('postgres', $sql);
			$created = 1, last if $r == 0;
			select(undef, undef, undef, 0.2);
		}
		ok($created, "created a view over an aggregating view while ingesting, after a SIGKILL (round $round)");
	}
	# The postmaster notices, reinitializes and starts over.  While it
	# does, psql can exit before reading its query (connection refused),
	# which IPC::Run reports as a broken pipe: retry those.
	my $back = 0;
	for my $try (1 .. 100)
	{
		$back = eval { $node->poll_query_until('postgres', 'SELECT 1', '1') };
		last if $back;
		select(undef, undef, undef, 0.1);
	}
	$back or die "server did not come back after SIGKILL";
}
is($kills, 5, 'SIGKILLed an ingest worker five times');

wait_for_progress(700_000);
$node->stop('immediate');
$node->start;
ok(1, 'restarted the server in immediate mode while ingesting');

$inserter->finish;
like($out, qr/inserter done/, 'every chunk was inserted');

$node->safe_psql('postgres', "SELECT streamproc.sync('180s')");

my $oracle_n = $node->safe_psql('postgres', 'SELECT count(*) FROM clicks_oracle');
cmp_ok($oracle_n, '>=', $chunks * $chunk_size, 'at least a million events committed');

my $oracle_per_user = 'SELECT user_id, count(*) AS n, sum(amount) AS total FROM clicks_oracle GROUP BY user_id';
my %checks = (
	per_user => [ 'SELECT * FROM per_user',
		'SELECT user_id, count(*), sum(amount), avg(amount) FROM clicks_oracle GROUP BY user_id' ],
	per_url => [ 'SELECT * FROM per_url',
		'SELECT url, count(*), max(amount) FROM clicks_oracle WHERE amount > 5 GROUP BY url' ],
	totals => [ 'SELECT * FROM totals',
		'SELECT count(*), sum(amount) FROM clicks_oracle' ],
	big_clicks => [ 'SELECT * FROM big_clicks',
		'SELECT user_id, url, amount FROM clicks_oracle WHERE amount >= 9.99' ],
	mid_clicks => [ 'SELECT * FROM mid_clicks',
		'SELECT user_id, url, amount FROM clicks_oracle WHERE amount >= 9' ],
	mid_even => [ 'SELECT * FROM mid_even',
		'SELECT user_id, url, amount * 2 FROM clicks_oracle WHERE amount >= 9 AND user_id % 2 = 0' ],
	even_per_user => [ 'SELECT * FROM even_per_user',
		'SELECT user_id, count(*), sum(amount * 2) FROM clicks_oracle WHERE amount >= 9 AND user_id % 2 = 0 GROUP BY user_id' ],
	mid_per_url => [ 'SELECT * FROM mid_per_url',
		'SELECT url, count(*), sum(amount) FROM clicks_oracle WHERE amount >= 9 GROUP BY url' ],
	by_bucket => [ 'SELECT * FROM by_bucket',
		"SELECT n % 10, count(*), sum(n), sum(total) FROM ($oracle_per_user) p GROUP BY 1" ],
	users_per_n => [ 'SELECT * FROM users_per_n',
		"SELECT n, count(*), sum(total) FROM ($oracle_per_user) p GROUP BY n" ],
	bucket_totals => [ 'SELECT * FROM bucket_totals',
		"SELECT count(DISTINCT n % 10), count(*), sum(n) FROM ($oracle_per_user) p" ],
	url_bands => [ 'SELECT * FROM url_bands',
		'SELECT n / 1000, count(*), sum(n) FROM'
		  . ' (SELECT url, count(*) AS n FROM clicks_oracle WHERE amount > 5 GROUP BY url) p GROUP BY 1' ],
	even_bands => [ 'SELECT * FROM even_bands',
		'SELECT n % 3, count(*), sum(total) FROM'
		  . ' (SELECT user_id, count(*) AS n, sum(amount * 2) AS total FROM clicks_oracle'
		  . '   WHERE amount >= 9 AND user_id % 2 = 0 GROUP BY user_id) p GROUP BY 1' ]);

sub check_views
{
	my ($when) = @_;
	for my $view (sort keys %checks)
	{
		my ($v, $o) = @{ $checks{$view} };
		is($node->safe_psql('postgres',
				"SELECT (SELECT count(*) FROM (($v) EXCEPT ALL ($o)) a) || ' ' ||"
				  . " (SELECT count(*) FROM (($o) EXCEPT ALL ($v)) b)"),
			'0 0', "$view equals the oracle $when");
	}
}
check_views('after crashes');

# A group whose users all left is held by no worker's slot, crashes or not.
sub check_held
{
	my ($when) = @_;
	is($node->safe_psql('postgres',
			q{SELECT groups = (SELECT count(*) FROM users_per_n) FROM streamproc.stat_views
			   WHERE view = 'users_per_n'::regclass}),
		't', "users_per_n holds only the groups it shows $when");
}
check_held('after crashes');

# The change logs hold each row of their view once, numbered without gaps.
sub check_changes
{
	my ($when) = @_;
	for my $view (qw(big_clicks mid_even))
	{
		my $c = "SELECT (pg_catalog.jsonb_populate_record(NULL::$view, new)).* FROM streamproc.changes('$view')";
		is($node->safe_psql('postgres',
				"SELECT (SELECT count(*) FROM ((SELECT * FROM $view) EXCEPT ALL ($c)) a) || ' ' ||"
				  . " (SELECT count(*) FROM (($c) EXCEPT ALL (SELECT * FROM $view)) b)"),
			'0 0', "the change log of $view holds each of its rows once $when");
		is($node->safe_psql('postgres',
				"SELECT count(*) = max(position) AND min(position) = 1 AND"
				  . " max(position) = streamproc.changes_position('$view') FROM streamproc.changes('$view')"),
			't', "... numbered from 1 without gaps $when");
	}
}
check_changes('after crashes');

# The logs of aggregating views: folded (each key's last change) they equal
# the view, and each change's old row is the row its key's change before
# it logged.
sub check_group_changes
{
	my ($when) = @_;
	for my $view (qw(per_user per_url))
	{
		my $c = "SELECT (pg_catalog.jsonb_populate_record(NULL::$view, new)).* FROM"
		  . " (SELECT DISTINCT ON (key) key, new FROM streamproc.changes('$view') ORDER BY key, position DESC) f"
		  . " WHERE new IS NOT NULL";
		is($node->safe_psql('postgres',
				"SELECT (SELECT count(*) FROM ((SELECT * FROM $view) EXCEPT ALL ($c)) a) || ' ' ||"
				  . " (SELECT count(*) FROM (($c) EXCEPT ALL (SELECT * FROM $view)) b)"),
			'0 0', "the change log of $view, folded, equals the view $when");
		is($node->safe_psql('postgres',
				"SELECT bool_and(old IS NOT DISTINCT FROM prev) AND count(*) = max(position) FROM"
				  . " (SELECT position, old, lag(new) OVER (PARTITION BY key ORDER BY position) AS prev"
				  . "    FROM streamproc.changes('$view')) x"),
			't', "... each change follows the one before of its group, numbered without gaps $when");
	}
}
check_group_changes('after crashes');
is($node->safe_psql('postgres', 'SELECT n FROM totals'), $oracle_n,
	'the total count is exact');

# Nothing failed on the way.
is($node->safe_psql('postgres', 'SELECT count(*) FROM streamproc.errors'), '0',
	'no event went to streamproc.errors');

# Clean restart: identical results, then counting continues.
my $before = $node->safe_psql('postgres', 'SELECT n, total FROM totals');
$node->restart;
$node->safe_psql('postgres', "SELECT streamproc.sync('60s')");
is($node->safe_psql('postgres', 'SELECT n, total FROM totals'), $before,
	'a clean restart keeps the results');
$node->safe_psql('postgres', 'BEGIN; INSERT INTO clicks ' . $rows->(999)
	  . '; INSERT INTO clicks_oracle ' . $rows->(999) . '; COMMIT;');
$node->safe_psql('postgres', "SELECT streamproc.sync('60s')");
check_views('after a clean restart and more events');
check_changes('after a clean restart and more events');
check_group_changes('after a clean restart and more events');
check_held('after a clean restart and more events');

# LISTEN: the transaction that adds changes notifies the view's channel
# with its last position.
my $channel = $node->safe_psql('postgres', q{SELECT streamproc.changes_channel('big_clicks')});
my $listened = $node->safe_psql('postgres', qq{LISTEN $channel;
INSERT INTO clicks VALUES (1, '/listen', 10.5);
SELECT streamproc.sync('60s');
SELECT 'listened';});
my $last = $node->safe_psql('postgres', q{SELECT streamproc.changes_position('big_clicks')});
like($listened, qr/Asynchronous notification "$channel" with payload "$last" received/,
	'LISTEN on the change log hears the new last position');

$node->stop;
done_testing();
