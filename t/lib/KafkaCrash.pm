package KafkaCrash;

# KafkaCrash - shared pieces of the Kafka source tests (t/090_kafka_crash.pl,
# t/091_kafka_outage.pl): the clicks stream and its continuous views, the
# batch oracle, loadgen and kcat, partition arithmetic and the checks.
#
#   use KafkaCrash;
#   my $node = KafkaCrash::new_node('name', 'extra = conf');
#   KafkaCrash::create_schema($node, source => 'src', brokers => $bs, topic => 'clicks');
#   my $lg = KafkaCrash::start_loadgen(count => N, brokers => $bs, ...);
#   my $summary = KafkaCrash::finish_loadgen($lg);
#   my $expected = KafkaCrash::expected_messages(count => N, seed => S, ...);
#   KafkaCrash::load_oracle($node, $lg->{oracle_csv});
#   KafkaCrash::check_views($node, 'after ...');
#   KafkaCrash::wait_server($node, $pid); # after a SIGKILL of $pid
#   KafkaCrash::try_query($node, $sql);  # undef while the server is down
#   ...
#
# Binaries: $STREAMPROC_LOADGEN, else tools/loadgen/loadgen relative to
# this file; $KCAT, else kcat in PATH.  Missing prerequisites are failures
# (a failed test and exit), not skips.

use strict;
use warnings;

use Carp qw(croak);
use File::Basename qw(dirname);
use File::Spec;
use IPC::Run ();
use POSIX ();
use Test::More;
use Time::HiRes qw(time sleep);

use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;

use Devbroker;

# A child that exits early must not kill the test through SIGPIPE
$SIG{PIPE} = 'IGNORE';

sub loadgen_binary
{
	return $ENV{STREAMPROC_LOADGEN}
	  if defined $ENV{STREAMPROC_LOADGEN} && $ENV{STREAMPROC_LOADGEN} ne '';
	my $here = dirname(File::Spec->rel2abs(__FILE__));
	return File::Spec->catfile($here, '..', '..', 'tools', 'loadgen', 'loadgen');
}

sub kcat_binary { return $ENV{KCAT} // 'kcat'; }

# Stop early, clearly, when a tool is missing: a failure, not a skip.
sub check_prerequisites
{
	my $lg   = loadgen_binary();
	my $kcat = kcat_binary();
	my $db   = Devbroker::binary();

	for my $missing (
		[ !-x $lg, "loadgen binary $lg (make tools, or set STREAMPROC_LOADGEN)" ],
		[ !-x $db, "devbroker binary $db (make tools, or set STREAMPROC_DEVBROKER)" ],
		[ system("$kcat -V >/dev/null 2>&1") != 0, "kcat ($kcat: apt-get install kcat, or set KCAT)" ])
	{
		next unless $missing->[0];
		fail("prerequisite missing: $missing->[1]");
		done_testing();
		exit 1;
	}
}

# A node that preloads streamproc.  Statement and connection logging are
# off: the tests read the server log and want only the server's own lines.
sub new_node
{
	my ($name, $extra) = @_;
	my $node = PostgreSQL::Test::Cluster->new($name);
	$node->init;
	$node->append_conf('postgresql.conf', qq{
shared_preload_libraries = 'streamproc'
max_worker_processes = 16
log_statement = none
log_connections = off
log_disconnections = off
} . ($extra // ''));
	return $node;
}

# The views every test checks, and the same queries over the oracle table.
# The append view's filter keeps about 5% of the events; big_per_url reads
# the append view.
our %VIEWS = (
	per_user => [
		'SELECT user_id, count(*) AS n, sum(amount) AS total, avg(amount) AS mean FROM clicks GROUP BY user_id',
		'SELECT * FROM per_user',
		'SELECT user_id, count(*), sum(amount), avg(amount) FROM clicks_oracle GROUP BY user_id'
	],
	per_url => [
		'SELECT url, count(*) AS n, max(amount) AS top FROM clicks WHERE amount > 500 GROUP BY url',
		'SELECT * FROM per_url',
		'SELECT url, count(*), max(amount) FROM clicks_oracle WHERE amount > 500 GROUP BY url'
	],
	totals => [
		'SELECT count(*) AS n, sum(amount) AS total, min(ts) AS first_ts, max(ts) AS last_ts FROM clicks',
		'SELECT * FROM totals',
		'SELECT count(*), sum(amount), min(ts), max(ts) FROM clicks_oracle'
	],
	big_clicks => [
		'SELECT user_id, url, amount, ts FROM clicks WHERE amount >= 950',
		'SELECT * FROM big_clicks',
		'SELECT user_id, url, amount, ts FROM clicks_oracle WHERE amount >= 950'
	],
	# a view over the append view (feed.c), created after it (sorted names)
	big_per_url => [
		'SELECT url, count(*) AS n, sum(amount) AS total FROM big_clicks GROUP BY url',
		'SELECT * FROM big_per_url',
		'SELECT url, count(*), sum(amount) FROM clicks_oracle WHERE amount >= 950 GROUP BY url'
	]);

# The stream, its views, the (empty) oracle table and the Kafka source.
sub create_schema
{
	my ($node, %o) = @_;
	my $sql = q{
CREATE EXTENSION streamproc;
CREATE FOREIGN TABLE clicks (user_id int, url text, amount numeric, ts timestamptz)
    SERVER streamproc;
CREATE TABLE clicks_oracle (user_id int, url text, amount numeric, ts timestamptz);
};
	$sql .= "CREATE VIEW $_ WITH (continuous) AS $VIEWS{$_}[0];\n" for sort keys %VIEWS;
	$sql .= "SELECT streamproc.create_kafka_source('$o{source}', 'clicks', '$o{topic}', '$o{brokers}');\n";
	$node->safe_psql('postgres', $sql);
}

# loadgen arguments that decide the messages (not how they are sent)
sub _content_args
{
	my (%o) = @_;
	my @a = ('--count' => $o{count}, '--seed' => $o{seed});
	push @a, '--malformed', $o{malformed} if $o{malformed};
	push @a, '--duplicates', $o{duplicates} if $o{duplicates};
	return @a;
}

# Start loadgen producing to Kafka in the background.  Returns a hash:
# handle, oracle_csv, malformed_log, and the stderr buffer (err).
sub start_loadgen
{
	my (%o) = @_;
	my $dir = $o{dir} // croak 'start_loadgen: dir';
	my $lg = {
		oracle_csv    => "$dir/oracle.csv",
		malformed_log => "$dir/malformed.log",
		out           => '',
		err           => '',
	};
	my @cmd = (
		loadgen_binary(), _content_args(%o),
		'--brokers' => $o{brokers}, '--topic' => $o{topic},
		'--rate' => $o{rate},
		'--oracle-csv' => $lg->{oracle_csv},
		'--malformed-log' => $lg->{malformed_log},
		'--flush-timeout-ms' => $o{flush_timeout_ms} // 120000,
		@{ $o{extra} // [] });
	note('loadgen: ' . join(' ', @cmd));
	$lg->{started} = time();
	$lg->{handle} = IPC::Run::start(\@cmd, '<', \undef, '>', \$lg->{out},
		'2>', \$lg->{err}, IPC::Run::timeout($o{timeout} // 600));
	return $lg;
}

# Is loadgen still running?
sub loadgen_running
{
	my ($lg) = @_;
	return 0 if $lg->{finished};
	$lg->{handle}->pump_nb;
	return $lg->{handle}->pumpable ? 1 : 0;
}

# Wait for loadgen; returns the parsed summary (events, well_formed,
# duplicates, malformed), undef on failure (with diagnostics).
sub finish_loadgen
{
	my ($lg) = @_;
	my $ok = eval { $lg->{handle}->finish; 1 };
	$lg->{finished} = 1;
	if (!$ok)
	{
		diag("loadgen failed: $@\n$lg->{err}");
		return undef;
	}
	$lg->{elapsed} = time() - $lg->{started};
	my $rc = $lg->{handle}->result(0);
	if ($rc != 0)
	{
		diag("loadgen exited with $rc:\n$lg->{err}");
		return undef;
	}
	if ($lg->{err} =~ /^loadgen: (\d+) events \((\d+) well-formed, (\d+) duplicates, (\d+) malformed\)/m)
	{
		return { events => $1, well_formed => $2, duplicates => $3, malformed => $4 };
	}
	diag("no loadgen summary in:\n$lg->{err}");
	return undef;
}

# Kafka's (Java client's) murmur2, as librdkafka's murmur2_random uses it:
# the partition of a keyed message.
sub murmur2_partition
{
	my ($key, $partitions) = @_;
	my $m = 0x5bd1e995;
	my @b = unpack('C*', $key);
	my $len = @b;
	my $h = (0x9747b28c ^ $len) & 0xffffffff;
	my $mul = sub {
		my ($x, $y) = @_;
		return ((($x & 0xffff) * $y) + (((($x >> 16) * $y) & 0xffff) << 16))
		  & 0xffffffff;
	};
	my $i = 0;
	for (; $i + 4 <= $len; $i += 4)
	{
		my $k = $b[$i] | ($b[ $i + 1 ] << 8) | ($b[ $i + 2 ] << 16) | ($b[ $i + 3 ] << 24);
		$k = $mul->($k, $m);
		$k ^= $k >> 24;
		$k = $mul->($k, $m);
		$h = $mul->($h, $m);
		$h ^= $k;
	}
	my $rem = $len % 4;
	$h ^= $b[ $i + 2 ] << 16 if $rem >= 3;
	$h ^= $b[ $i + 1 ] << 8 if $rem >= 2;
	if ($rem >= 1)
	{
		$h ^= $b[$i];
		$h = $mul->($h, $m);
	}
	$h ^= $h >> 13;
	$h = $mul->($h, $m);
	$h ^= $h >> 15;
	return ($h & 0x7fffffff) % $partitions;
}

# What loadgen sends, from its deterministic stdout run with the same
# content options: per-partition message counts (murmur2 of the key) and
# the malformed messages as "key<TAB>payload" lines (by the malformed log's
# sequence numbers).  Returns { per_partition => [..], malformed => [..],
# total => N }.
sub expected_messages
{
	my (%o) = @_;
	my $partitions = $o{partitions};
	my %malformed_seq;
	open(my $ml, '<', $o{malformed_log})
	  or croak "cannot read $o{malformed_log}: $!";
	while (<$ml>)
	{
		$malformed_seq{$1} = 1 if /^(\d+),/;
	}
	close($ml);

	my @cmd = (loadgen_binary(), _content_args(%o), '--print-key', '--quiet');
	open(my $fh, '-|', @cmd) or croak "cannot run loadgen: $!";
	my (%per_key, @malformed);
	my $seq = 0;
	while (my $line = <$fh>)
	{
		chomp $line;
		my $tab = index($line, "\t");
		my $key = substr($line, 0, $tab);
		$per_key{$key}++;
		push @malformed, $line if $malformed_seq{$seq};
		$seq++;
	}
	close($fh) or croak "loadgen stdout run failed: $?";

	my @per_partition = (0) x $partitions;
	$per_partition[ murmur2_partition($_, $partitions) ] += $per_key{$_}
	  for keys %per_key;
	return {
		per_partition => \@per_partition,
		malformed     => [ sort @malformed ],
		total         => $seq,
		malformed_n   => scalar(keys %malformed_seq),
	};
}

# The broker's end offsets (high watermarks) of partitions 0..n-1, as a
# list, from kcat -Q (ListOffsets with timestamp -1 = end; -2 = beginning).
sub broker_offsets
{
	my ($bootstrap, $topic, $partitions, $which) = @_;
	my $ts = ($which // 'end') eq 'end' ? -1 : -2;
	my ($out, $err) = ('', '');
	my @cmd = (kcat_binary(), '-Q', '-b', $bootstrap,
		map { ('-t', "$topic:$_:$ts") } 0 .. $partitions - 1);
	IPC::Run::run(\@cmd, '<', \undef, '>', \$out, '2>', \$err, IPC::Run::timeout(60))
	  or croak "kcat -Q failed: $err";
	my @off;
	while ($out =~ /^\s*\Q$topic\E \[(\d+)\] offset (-?\d+)/mg)
	{
		$off[$1] = $2;
	}
	return \@off;
}

# Poll $cond (a Perl sub) every 20 ms for at most $timeout seconds;
# returns the seconds it took, or undef.
sub wait_until
{
	my ($cond, $timeout) = @_;
	my $t0 = time();
	while (time() - $t0 < $timeout)
	{
		return time() - $t0 if $cond->();
		sleep(0.02);
	}
	return $cond->() ? time() - $t0 : undef;
}

# Run a command with a bound on its run time: (status, stdout, stderr),
# status -1 on timeout.
sub run_cmd
{
	my ($cmd, %o) = @_;
	my $in = $o{input} // '';
	my ($out, $err) = ('', '');
	my $h = IPC::Run::start($cmd, '<', \$in, '>', \$out, '2>', \$err,
		IPC::Run::timeout($o{timeout} // 120));
	my $ok = eval { $h->finish; 1 };
	if (!$ok)
	{
		$h->kill_kill(grace => 2);
		return (-1, $out, "$err\n(timed out: $@)");
	}
	return ($h->result(0), $out, $err);
}

# Run one query with psql -c (nothing is written to psql's stdin, so a
# server that drops the connection at once cannot make IPC::Run die of a
# broken pipe, as poll_query_until and psql can while the postmaster
# reinitializes).  Returns the output, or undef when the query failed.
sub try_query
{
	my ($node, $sql) = @_;
	my ($out, $err) = ('', '');
	my $ok = eval {
		IPC::Run::run(
			[ $node->installed_command('psql'), '-XAtq', '-v', 'ON_ERROR_STOP=1', '-d', $node->connstr('postgres'), '-c', $sql ],
			'<', \undef, '>', \$out, '2>', \$err, IPC::Run::timeout(60));
	};
	return undef unless $ok;
	chomp $out;
	return $out;
}

# committed offsets of a source from streamproc.kafka_offsets, as a list
sub committed_offsets
{
	my ($node, $source, $partitions) = @_;
	my @off = (undef) x $partitions;
	for my $row (split /\n/, $node->safe_psql('postgres',
		"SELECT partition, \"offset\" FROM streamproc.kafka_offsets WHERE source = '$source' ORDER BY 1"))
	{
		my ($p, $o) = split /\|/, $row;
		$off[$p] = $o;
	}
	return \@off;
}

# Sum of the committed offsets (-1 when the query fails, e.g. the server
# is restarting): how many messages are durably processed.
sub committed_sum
{
	my ($node, $source) = @_;
	my $out = try_query($node,
		"SELECT coalesce(sum(\"offset\"), 0) FROM streamproc.kafka_offsets WHERE source = '$source'");
	return defined $out && $out =~ /^\d+$/ ? $out : -1;
}

# Wait (bounded) until the committed offsets of a source add up to $min.
sub wait_committed
{
	my ($node, $source, $min, $timeout) = @_;
	my $deadline = time() + ($timeout // 180);
	while (time() < $deadline)
	{
		return 1 if committed_sum($node, $source) >= $min;
		sleep(0.1);
	}
	diag("committed offsets of $source did not reach $min");
	return 0;
}

# The pid (and, in list context, the index) of the ingest worker that
# consumes $source, once stat_sources shows its partitions in $state
# (default 'running'); cross-checked with pg_stat_activity's
# application_name "streamproc worker N".  Waits (bounded); undef if none.
sub source_worker_pid
{
	my ($node, $source, $state) = @_;
	$state //= 'running';
	my $query = qq{
SELECT w.pid || ' ' || w.worker
  FROM streamproc.stat_workers w
  JOIN pg_stat_activity a ON a.pid = w.pid
 WHERE a.application_name = 'streamproc worker ' || w.worker
   AND w.worker IN (SELECT worker FROM streamproc.stat_sources
                     WHERE source = '$source' AND state = '$state')
 LIMIT 1};
	my $deadline = time() + 180;
	while (time() < $deadline)
	{
		my $out = try_query($node, $query);
		return wantarray ? split(/ /, $out) : (split(/ /, $out))[0]
		  if defined $out && $out =~ /^\d+ \d+$/;
		sleep(0.1);
	}
	diag("no running ingest worker found for source $source");
	return undef;
}

# Wait (bounded) until the server accepts queries again (after a crash
# restart).  With the pid of a SIGKILLed ingest worker: until no worker
# slot shows that pid any more, since until the postmaster has noticed the
# kill the old server still answers, and the crash restart would meet the
# caller's next statement.
sub wait_server
{
	my ($node, $killed) = @_;
	my $query = defined $killed
	  ? "SELECT count(*) FROM streamproc.stat_workers WHERE pid = $killed"
	  : 'SELECT 1';
	my $want = defined $killed ? '0' : '1';
	my $deadline = time() + 180;
	while (time() < $deadline)
	{
		my $out = try_query($node, $query);
		return 1 if defined $out && $out eq $want;
		sleep(0.1);
	}
	diag('the server did not accept queries again');
	return 0;
}

# Load the loadgen oracle CSV into clicks_oracle.
sub load_oracle
{
	my ($node, $csv) = @_;
	$node->safe_psql('postgres', "TRUNCATE clicks_oracle; COPY clicks_oracle FROM '$csv' (FORMAT csv)");
	return $node->safe_psql('postgres', 'SELECT count(*) FROM clicks_oracle');
}

# Every view equals the oracle: EXCEPT ALL in both directions, row counts.
sub check_views
{
	my ($node, $when) = @_;
	for my $view (sort keys %VIEWS)
	{
		my (undef, $v, $o) = @{ $VIEWS{$view} };
		my $r = $node->safe_psql('postgres', qq{
SELECT (SELECT count(*) FROM (($v) EXCEPT ALL ($o)) a) || ' ' ||
       (SELECT count(*) FROM (($o) EXCEPT ALL ($v)) b) || ' ' ||
       CASE WHEN (SELECT count(*) FROM ($v) c) = (SELECT count(*) FROM ($o) d)
            THEN 'same-count' ELSE 'count-differs' END});
		is($r, '0 0 same-count', "$view equals the oracle $when")
		  or diag($node->safe_psql('postgres', qq{
SELECT 'view-only', * FROM (($v) EXCEPT ALL ($o) LIMIT 5) a
UNION ALL SELECT 'oracle-only', * FROM (($o) EXCEPT ALL ($v) LIMIT 5) b}));
	}
}

# Lines of the server log that show a crash nobody asked for (the same
# pattern as scripts/run-tests).
sub crash_lines
{
	my ($node) = @_;
	my $log = PostgreSQL::Test::Utils::slurp_file($node->logfile);
	return grep { /terminated by signal (4|6|7|8|11)\b|PANIC:|TRAP:/ } split /\n/, $log;
}

# CPU time (user + system, seconds) a process has used, from /proc.
sub cpu_seconds
{
	my ($pid) = @_;
	open(my $fh, '<', "/proc/$pid/stat") or return undef;
	my $stat = <$fh>;
	close($fh);
	# the command name may hold spaces: split after its closing paren
	$stat =~ s/^.*\)\s+//s;
	my @f = split /\s+/, $stat;
	# fields 14 and 15 of the full line; 12 and 13 after pid and comm
	my $ticks = POSIX::sysconf(POSIX::_SC_CLK_TCK()) || 100;
	return ($f[11] + $f[12]) / $ticks;
}

1;
