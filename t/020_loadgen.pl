#!/usr/bin/perl
#
# t/020_loadgen.pl - tests for tools/loadgen/loadgen, the deterministic
# "clicks" event generator.
#
#   prove -I t/lib t/020_loadgen.pl
#
# Parts, cheapest first:
#   1. determinism: same seed => same bytes (stdout, oracle CSV, malformed
#      log), different seed => different bytes, pacing changes nothing,
#      and a few pinned lines of seed 1 (the cross-machine contract);
#   2. counts and content of a 10000-message run with duplicates, malformed
#      messages and disorder, checked line by line by this script's own
#      JSON / CSV validators;
#   3. --rate pacing and SIGTERM on an unbounded run;
#   4. bad arguments exit 2;
#   5. Kafka, against tools/devbroker through t/lib/Devbroker.pm and kcat;
#   6. PostgreSQL round trip (COPY of stdout vs the oracle CSV) through
#      PostgreSQL::Test::Cluster.  initdb refuses to run as root, so this
#      part is skipped under root; the real runner is unprivileged.
#
# Environment: STREAMPROC_LOADGEN (binary, default
# <dir of this file>/../tools/loadgen/loadgen), STREAMPROC_DEVBROKER (see
# Devbroker.pm), PG_CONFIG (default: pg_config in PATH, else PG 15's).
# PATH, PG_REGRESS and the PostgreSQL::Test include path are derived from
# pg_config when not already set.

use strict;
use warnings;

use FindBin;
use File::Spec;
use File::Temp qw(tempdir);
use IPC::Run qw(run start finish timeout);
use JSON::PP;
use Scalar::Util qw(looks_like_number);
use Time::HiRes qw(time sleep);

use lib "$FindBin::RealBin/lib";
use KafkaCrash ();

my ($pg_bindir, $pg_perl_ok, $pg_perl_error);

BEGIN
{
	# Locate PostgreSQL's test modules and binaries from pg_config, so the
	# test also runs without the runner's -I and PATH.
	my $pg_config = $ENV{PG_CONFIG};
	if (!defined $pg_config || $pg_config eq '')
	{
		$pg_config = 'pg_config';
		$pg_config = '/usr/lib/postgresql/15/bin/pg_config'
		  if system('pg_config --version >/dev/null 2>&1') != 0;
	}
	my $pgxs = `$pg_config --pgxs 2>/dev/null`;
	$pg_bindir = `$pg_config --bindir 2>/dev/null`;
	chomp($pgxs, $pg_bindir);
	if ($pgxs ne '')
	{
		# .../lib/pgxs/src/makefiles/pgxs.mk -> .../lib/pgxs/src
		(my $src = $pgxs) =~ s{/makefiles/pgxs\.mk$}{};
		push @INC, "$src/test/perl" if -d "$src/test/perl";
		$ENV{PG_REGRESS} = "$src/test/regress/pg_regress"
		  if !defined $ENV{PG_REGRESS}
		  && -x "$src/test/regress/pg_regress";
	}
	$ENV{PATH} = "$pg_bindir:$ENV{PATH}"
	  if $pg_bindir ne '' && $ENV{PATH} !~ m{(^|:)\Q$pg_bindir\E(:|$)};

	# Only an unprivileged user can run a cluster.  The modules must be
	# loaded at compile time: PostgreSQL::Test::Utils sets up its log
	# directory (TESTDIR/tmp_check, or ./tmp_check) in an INIT block.
	if ($> != 0)
	{
		$pg_perl_ok = eval {
			require PostgreSQL::Test::Utils;
			require PostgreSQL::Test::Cluster;
			1;
		};
		$pg_perl_error = $@;
	}
}

use Test::More;

my $loadgen = $ENV{STREAMPROC_LOADGEN};
$loadgen = File::Spec->catfile($FindBin::RealBin, '..', 'tools', 'loadgen',
	'loadgen')
  if !defined $loadgen || $loadgen eq '';

if (!-x $loadgen)
{
	fail("loadgen binary $loadgen is executable "
		  . "(build it with 'make -C tools/loadgen' or set STREAMPROC_LOADGEN)");
	done_testing();
	exit 1;
}

my $tmp = tempdir('loadgen-XXXXXX', TMPDIR => 1, CLEANUP => 1);
my $TIMEOUT = 180;    # seconds, bound of every child process

# Run loadgen; returns (exit code, stdout, stderr).
sub lg
{
	my @args = @_;
	my ($out, $err) = ('', '');
	run([ $loadgen, @args ], '<', \undef, '>', \$out, '2>', \$err,
		timeout($TIMEOUT))
	  or 1;
	return ($? >> 8, $out, $err);
}

sub slurp
{
	my ($path) = @_;
	open(my $fh, '<', $path) or die "cannot read $path: $!";
	local $/;
	my $c = <$fh>;
	close($fh);
	return $c;
}

# Parse the summary line; returns a hashref or undef.
sub summary
{
	my ($stderr) = @_;
	return undef
	  unless $stderr =~
	  /^loadgen: (\d+) events \((\d+) well-formed, (\d+) duplicates, (\d+) malformed\) in ([0-9.]+) s, (\d+) events\/s$/m;
	return {
		n => $1,
		w => $2,
		d => $3,
		m => $4,
		secs => $5,
		rate => $6
	};
}

sub lines { my ($s) = @_; return [ split /\n/, $s, -1 ]; }

# ---------------------------------------------------------------------------
# Validators: this script's own idea of a well-formed message.
# ---------------------------------------------------------------------------

my @mdays = (31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31);

# ms since the epoch of a strict YYYY-MM-DDTHH:MM:SS.mmmZ, or undef.
sub ts_ms
{
	my ($ts) = @_;
	return undef
	  unless defined $ts
	  && !ref $ts
	  && $ts =~ /^(\d{4})-(\d\d)-(\d\d)T(\d\d):(\d\d):(\d\d)\.(\d{3})Z$/;
	my ($y, $mo, $d, $h, $mi, $s, $ms) = ($1, $2, $3, $4, $5, $6, $7);
	my $leap = ($y % 4 == 0 && $y % 100 != 0) || $y % 400 == 0;
	return undef if $mo < 1 || $mo > 12 || $d < 1;
	return undef if $d > ($mo == 2 && $leap ? 29 : $mdays[ $mo - 1 ]);
	return undef if $h > 23 || $mi > 59 || $s > 59;
	# days from civil (proleptic Gregorian)
	my $yy = $mo <= 2 ? $y - 1 : $y;
	my $era = int($yy / 400);
	my $yoe = $yy - $era * 400;
	my $doy = int((153 * ($mo > 2 ? $mo - 3 : $mo + 9) + 2) / 5) + $d - 1;
	my $doe = $yoe * 365 + int($yoe / 4) - int($yoe / 100) + $doy;
	my $days = $era * 146097 + $doe - 719468;
	return (($days * 24 + $h) * 60 + $mi) * 60000 + $s * 1000 + $ms;
}

# Classify the 4 values of an event.  Returns (undef, [fields]) when valid,
# else (reason class, undef).
sub check_fields
{
	my ($user, $url, $amount, $ts) = @_;
	return ('wrong_type_user_id', undef)
	  unless defined $user && !ref $user && $user =~ /^[1-9]\d{0,9}$/
	  && $user <= 2147483647;
	return ('bad_url', undef)
	  unless defined $url && !ref $url && $url =~ m{^/p/[1-9]\d*$};
	return ('non_numeric_amount', undef)
	  unless defined $amount && !ref $amount && $amount =~ /^\d+\.\d\d$/;
	return ('invalid_timestamp', undef) unless defined ts_ms($ts);
	return (undef, [ $user, $url, $amount, $ts ]);
}

my $json = JSON::PP->new->utf8;

# JSON message => (undef, [user, url, amount, ts]) or (reason class, undef).
# Type checks use both the decoded value and the raw text: a JSON string
# "17" is not an int, a JSON number 12.3 is not a 2-decimal amount.
sub check_json
{
	my ($line) = @_;
	my $obj = eval { $json->decode($line) };
	return ('invalid_json', undef) unless ref $obj eq 'HASH';
	return ('wrong_keys', undef)
	  unless join(',', sort keys %$obj) eq 'amount,ts,url,user_id';
	return ('wrong_type_user_id', undef)
	  unless $line =~ /"user_id":(\d+)[,}]/ && looks_like_number($obj->{user_id})
	  && $obj->{user_id} == $1;
	my $user = $1;
	return ('non_numeric_amount', undef)
	  unless $line =~ /"amount":(\d+\.\d\d)[,}]/
	  && looks_like_number($obj->{amount})
	  && $obj->{amount} == $1;
	my $amount = $1;
	return check_fields($user, $obj->{url}, $amount, $obj->{ts});
}

# RFC 4180 line => list of fields, or undef on a quoting error.
sub split_csv
{
	my ($line) = @_;
	my @f;
	while (1)
	{
		if ($line =~ s/^"((?:[^"]|"")*)"//)
		{
			(my $v = $1) =~ s/""/"/g;
			push @f, $v;
		}
		elsif ($line =~ s/^([^",]*)//)
		{
			push @f, $1;
		}
		return \@f if $line eq '';
		return undef unless $line =~ s/^,//;
	}
}

sub check_csv
{
	my ($line) = @_;
	my $f = split_csv($line);
	return ('invalid_csv', undef) unless defined $f;
	return ('too_few_columns', undef) if @$f < 4;
	return ('too_many_columns', undef) if @$f > 4;
	return check_fields(@$f);
}

sub to_csv { return join(',', @{ $_[0] }); }

# loadgen's reasons, mapped to what the validators above can tell apart
my %reason_class = (
	json => {
		truncated_json => 'invalid_json',
		invalid_json => 'invalid_json',
		non_numeric_amount => 'non_numeric_amount',
		wrong_type_user_id => 'wrong_type_user_id',
		invalid_timestamp => 'invalid_timestamp',
	},
	csv => {
		too_few_columns => 'too_few_columns',
		too_many_columns => 'too_many_columns',
		non_numeric_amount => 'non_numeric_amount',
		wrong_type_user_id => 'wrong_type_user_id',
		invalid_timestamp => 'invalid_timestamp',
	});

# ---------------------------------------------------------------------------
# 1. Determinism
# ---------------------------------------------------------------------------

my @mix = (
	'--count' => 3000, '--duplicates' => '0.1', '--malformed' => '0.05',
	'--disorder' => '0.3', '--max-delay-ms' => 2000);

for my $fmt (qw(json csv))
{
	my %run;
	for my $tag (qw(a b c))
	{
		my $seed = $tag eq 'c' ? 43 : 42;
		my ($rc, $out, $err) = lg(
			@mix, '--format' => $fmt, '--seed' => $seed,
			'--oracle-csv' => "$tmp/det-$fmt-$tag.csv",
			'--malformed-log' => "$tmp/det-$fmt-$tag.log");
		is($rc, 0, "$fmt seed $seed run $tag exits 0") or diag($err);
		$run{$tag} = {
			out => $out,
			oracle => slurp("$tmp/det-$fmt-$tag.csv"),
			log => slurp("$tmp/det-$fmt-$tag.log")
		};
	}
	ok(length($run{a}{out}) > 0, "$fmt: output is not empty");
	ok($run{a}{out} eq $run{b}{out}, "$fmt: same seed => identical stdout bytes");
	ok($run{a}{oracle} eq $run{b}{oracle},
		"$fmt: same seed => identical oracle CSV");
	ok($run{a}{log} eq $run{b}{log},
		"$fmt: same seed => identical malformed log");
	ok($run{a}{out} ne $run{c}{out}, "$fmt: different seed => different bytes");
	ok($run{a}{oracle} ne $run{c}{oracle},
		"$fmt: different seed => different oracle");

	# pacing must not change a byte
	my ($rc, $out, $err) =
	  lg(@mix, '--format' => $fmt, '--seed' => 42, '--rate' => 20000);
	is($rc, 0, "$fmt paced run exits 0");
	ok($out eq $run{a}{out}, "$fmt: --rate does not change the bytes");
}

# The contract holds across machines and versions: pin seed 1's start.
{
	my ($rc, $out) = lg('--count' => 3);
	is( $out,
		qq({"user_id":746,"url":"/p/98","amount":444.36,"ts":"2026-01-01T00:00:00.000Z"}\n)
		  . qq({"user_id":794,"url":"/p/41","amount":605.42,"ts":"2026-01-01T00:00:00.001Z"}\n)
		  . qq({"user_id":816,"url":"/p/69","amount":884.32,"ts":"2026-01-01T00:00:00.002Z"}\n),
		'seed 1 default json output is pinned');
	($rc, $out) = lg(
		'--count' => 2,
		'--format' => 'csv',
		'--seed' => '18446744073709551615',
		'--start-time' => '2024-02-29T23:59:59.999Z',
		'--interval-ms' => 86400000);
	like(
		$out,
		qr/^\d+,\/p\/\d+,\d+\.\d\d,2024-02-29T23:59:59\.999Z\n\d+,\/p\/\d+,\d+\.\d\d,2024-03-01T23:59:59\.999Z\n\z/,
		'max seed, leap day, custom start time and interval');
}

# ---------------------------------------------------------------------------
# 2. Counts and content
# ---------------------------------------------------------------------------

my $N = 10000;
my $USERS = 50;
my $START_MS = ts_ms('2026-01-01T00:00:00.000Z');

for my $fmt (qw(json csv))
{
	my ($rc, $out, $err) = lg(
		'--count' => $N, '--format' => $fmt, '--seed' => 7,
		'--users' => $USERS, '--duplicates' => '0.1',
		'--malformed' => '0.05', '--disorder' => '0.2',
		'--max-delay-ms' => 3000,
		'--oracle-csv' => "$tmp/cnt-$fmt.csv",
		'--malformed-log' => "$tmp/cnt-$fmt.log");
	is($rc, 0, "$fmt: 10000-message run exits 0") or diag($err);
	my $sum = summary($err);
	ok($sum, "$fmt: summary line printed") or diag($err);
	$sum //= { n => -1, w => -1, d => -1, m => -1 };

	my @out = @{ lines($out) };
	is(pop(@out), '', "$fmt: stdout ends with a newline");
	is(scalar(@out), $N, "$fmt: stdout has exactly $N lines");

	my @oracle = @{ lines(slurp("$tmp/cnt-$fmt.csv")) };
	is(pop(@oracle), '', "$fmt: oracle ends with a newline")
	  if @oracle;
	my %log;
	for (@{ lines(slurp("$tmp/cnt-$fmt.log")) })
	{
		next if $_ eq '';
		if (/^(\d+),([a-z_]+)$/) { $log{$1} = $2; }
		else { fail("$fmt: malformed log line '$_'"); }
	}

	# classify every line with our own validators
	my (@wellformed, %malformed, %last_seen);
	my ($min_user, $max_user) = (1e18, -1);
	my ($dups, $late, $max_ts) = (0, 0, -1e18);
	my ($bad_ts_range, $far_dups) = (0, 0);
	for my $seq (0 .. $#out)
	{
		my ($class, $f) =
		  $fmt eq 'json' ? check_json($out[$seq]) : check_csv($out[$seq]);
		if (defined $class)
		{
			$malformed{$seq} = $class;
			next;
		}
		push @wellformed, to_csv($f);
		$min_user = $f->[0] if $f->[0] < $min_user;
		$max_user = $f->[0] if $f->[0] > $max_user;
		my $prev = $last_seen{ $out[$seq] };
		$last_seen{ $out[$seq] } = $seq;
		if (defined $prev)
		{
			# a copy of one of the last 128 fresh messages
			$dups++;
			$far_dups++ if $seq - $prev > 1000;
		}
		my $ms = ts_ms($f->[3]);
		# fresh message i: start + i - [0, max delay]; copies are older
		$bad_ts_range++ if $ms > $START_MS + $seq;
		$bad_ts_range++ if !defined $prev && $ms < $START_MS + $seq - 3000;
		$late++ if $ms < $max_ts;
		$max_ts = $ms if $ms > $max_ts;
	}

	is($sum->{n}, $N, "$fmt: summary counts $N events");
	is($sum->{w} + $sum->{m}, $N, "$fmt: well-formed + malformed = total");
	is(scalar(keys %malformed), $sum->{m},
		"$fmt: the test's validators find exactly the reported malformed count ($sum->{m})"
	);
	ok($sum->{m} > 300 && $sum->{m} < 700, "$fmt: about 5% malformed");
	is_deeply(
		[ sort { $a <=> $b } keys %malformed ],
		[ sort { $a <=> $b } keys %log ],
		"$fmt: malformed log lists exactly the invalid lines");
	my @mismatch = grep {
		!defined $log{$_}
		  || ($reason_class{$fmt}{ $log{$_} } // '') ne $malformed{$_}
	} keys %malformed;
	is(scalar(@mismatch), 0,
		"$fmt: each malformed line fails for the logged reason")
	  or diag(join("\n",
			map { "$_: log=" . ($log{$_} // '-') . " found=$malformed{$_}: $out[$_]" }
			  @mismatch[ 0 .. ($#mismatch > 4 ? 4 : $#mismatch) ]));
	is(scalar(keys %{ { map { $_ => 1 } values %log } }),
		5, "$fmt: all 5 kinds of defect occur");

	is(scalar(@oracle), $N - $sum->{m},
		"$fmt: oracle has exactly the well-formed messages");
	is_deeply(\@oracle, \@wellformed,
		"$fmt: oracle = the well-formed stdout lines, in order, as CSV");
	if ($fmt eq 'csv')
	{
		my @direct = map { $out[$_] } grep { !$malformed{$_} } 0 .. $#out;
		is_deeply(\@oracle, \@direct, 'csv: oracle lines are the stdout lines');
	}

	is($dups, $sum->{d}, "$fmt: $sum->{d} exact duplicate lines, as reported");
	ok($sum->{d} > 700 && $sum->{d} < 1300, "$fmt: about 10% duplicates");
	is($far_dups, 0, "$fmt: duplicates copy recent messages");
	ok($min_user >= 1 && $max_user <= $USERS,
		"$fmt: user_id within [1, $USERS] (saw $min_user..$max_user)");
	is(scalar(keys %{ { map { (split /,/)[0] => 1 } @oracle } }),
		$USERS, "$fmt: all $USERS keys occur");
	ok($late > 100, "$fmt: disorder produces late events ($late)");
	is($bad_ts_range, 0, "$fmt: ts within [start + i - max delay, start + i]");
}

# duplicates copy a recent message of the same key, byte for byte (keyed)
{
	my ($rc, $out) = lg(
		'--count' => 2000, '--duplicates' => '0.3', '--print-key',
		'--seed' => 9);
	my $bad;
	for my $l (@{ lines($out) })
	{
		next if $l eq '';
		my ($k, $p) = split /\t/, $l, 2;
		$bad++ unless $p =~ /^\{"user_id":\Q$k\E,/;
	}
	ok(!$bad && $out ne '', '--print-key: key is the user_id of the payload');
}

# Zipf skew: user 1 is the hottest key, all in range
{
	my ($rc, $out, $err) = lg(
		'--count' => 20000, '--format' => 'csv', '--users' => 100,
		'--skew' => '1.2');
	my %n;
	$n{ (split /,/)[0] }++ for grep { $_ ne '' } @{ lines($out) };
	my @keys = sort { $n{$b} <=> $n{$a} } keys %n;
	is($rc, 0, '--skew run exits 0');
	is($keys[0], 1, '--skew: user 1 is the most frequent');
	ok(!grep({ $_ < 1 || $_ > 100 } @keys), '--skew: keys within range');
	ok($n{1} > 5 * ($n{50} // 0), '--skew: distribution is skewed');
}

# ---------------------------------------------------------------------------
# 3. Pacing and signals
# ---------------------------------------------------------------------------

{
	my $t0 = time();
	my ($rc, $out, $err) = lg('--count' => 1000, '--rate' => 2000);
	my $elapsed = time() - $t0;
	is($rc, 0, '--rate 2000 exits 0');
	ok($elapsed >= 0.45 && $elapsed < 30,
		sprintf('--rate 2000 x 1000 events takes about 0.5 s (%.3f s)', $elapsed));
	my $s = summary($err);
	ok($s && $s->{rate} >= 1900 && $s->{rate} <= 2200,
		'--rate 2000: summary rate about 2000 events/s')
	  or diag($err);
}

{
	# unbounded run: wait for output, then SIGTERM; expect a clean stop
	my $outfile = "$tmp/unbounded.out";
	my $err = '';
	my $h = start([ $loadgen, '--count' => 0, '--rate' => 5000 ],
		'<', \undef, '>', $outfile, '2>', \$err, timeout($TIMEOUT));
	my $deadline = time() + 60;
	while (time() < $deadline)
	{
		last if -s $outfile && -s $outfile > 100 * 80;
		$h->pump_nb;
		sleep(0.05);
	}
	ok(-s $outfile > 100 * 80, 'unbounded run produces output');
	$h->signal('TERM');
	finish($h);
	is($h->result(0), 0, 'unbounded run exits 0 on SIGTERM');
	my $s = summary($err);
	ok($s, 'summary printed after SIGTERM') or diag($err);
	my $content = slurp($outfile);
	my $n = () = $content =~ /\n/g;
	ok($s && $n == $s->{n} && $content =~ /\n\z/,
		'every counted message was written completely');
}

# ---------------------------------------------------------------------------
# 4. Bad arguments
# ---------------------------------------------------------------------------

for my $args (
	[],
	[qw(--count abc)],
	[qw(--count -1)],
	[qw(--count 10 --format xml)],
	[qw(--count 10 --duplicates 1.5)],
	[qw(--count 10 --duplicates 0.6 --malformed 0.6)],
	[qw(--count 10 --disorder nan)],
	[qw(--count 10 --users 0)],
	[qw(--count 10 --rate -5)],
	[qw(--count 10 --seed 18446744073709551616)],
	[qw(--count 10 --start-time yesterday)],
	[qw(--count 10 --start-time 2026-02-30T00:00:00Z)],
	[qw(--count 10 --brokers 127.0.0.1:9092)],
	[qw(--count 10 --topic clicks)],
	[qw(--count 10 -X linger.ms=1)],
	[qw(--count 10 --brokers 127.0.0.1:9092 --topic t -X novalue)],
	[qw(--count 10 --brokers 127.0.0.1:9092 --topic t -X no.such.property=1)],
	[qw(--count 10 --no-such-option)],
	[qw(--count 10 stray)],
	[qw(--count)])
{
	my ($rc, $out, $err) = lg(@$args);
	my $name = join(' ', @$args) || '(no arguments)';
	is($rc, 0 + 2, "bad arguments exit 2: $name");
	ok($err =~ /^loadgen: .+\nUsage: /s && $out eq '',
		"bad arguments: message and usage on stderr only: $name")
	  or diag($err);
}
{
	my ($rc, $out) = lg('--help');
	ok($rc == 0 && $out =~ /^Usage: /, '--help prints usage and exits 0');
}

# ---------------------------------------------------------------------------
# 5. Kafka, through the development broker
# ---------------------------------------------------------------------------

# Kafka's murmur2 partitioner: KafkaCrash::murmur2_partition (t/lib)
sub murmur2_partition { return KafkaCrash::murmur2_partition(@_); }

SKIP:
{
	my $have_devbroker = eval { require Devbroker; 1 };
	ok($have_devbroker, 't/lib/Devbroker.pm loads') or diag($@);
	my $kcat_ok = system('kcat -V >/dev/null 2>&1') == 0;
	ok($kcat_ok, 'kcat is installed');
	skip 'no Devbroker.pm or kcat', 1 unless $have_devbroker && $kcat_ok;

	my @kargs = (
		'--count' => 5000, '--seed' => 11, '--duplicates' => '0.1',
		'--malformed' => '0.05', '--disorder' => '0.2', '--users' => 200);
	my ($rc, $expected, $err) = lg(@kargs, '--print-key');
	is($rc, 0, 'kafka: reference stdout run exits 0');

	# Produce into a fresh broker, consume everything back with kcat.
	# Returns the lines "partition\toffset\tkey\tpayload", or undef.
	my $produce_consume = sub {
		my ($label) = @_;
		my $b = eval {
			Devbroker->start(topics => { clicks => 4 }, quiet => 1);
		};
		if (!$b)
		{
			fail("kafka $label: devbroker starts");
			diag($@);
			return undef;
		}
		my ($prc, $pout, $perr) = lg(@kargs, '--quiet',
			'--brokers' => $b->bootstrap, '--topic' => 'clicks',
			'--flush-timeout-ms' => 60000);
		is($prc, 0, "kafka $label: loadgen exits 0") or diag($perr);
		is($pout, '', "kafka $label: nothing on stdout");
		my $s = summary($perr);
		ok($s && $s->{n} == 5000, "kafka $label: summary reports 5000 events")
		  or diag($perr);

		my ($cout, $cerr) = ('', '');
		my $ok = run(
			[
				'kcat', '-C', '-b', $b->bootstrap, '-t', 'clicks',
				'-o', 'beginning', '-e', '-q',
				'-f', '%p\t%o\t%k\t%s\n'
			],
			'<', \undef, '>', \$cout, '2>', \$cerr,
			timeout(120));
		ok($ok, "kafka $label: kcat consumes to the end") or diag($cerr);
		$b->stop;
		return [ grep { $_ ne '' } split /\n/, $cout ];
	};

	my $got1 = $produce_consume->('run 1');
	my $got2 = $produce_consume->('run 2');
	skip 'kafka runs failed', 1 unless $got1 && $got2;

	is(scalar(@$got1), 5000, 'kafka: 5000 messages in the topic');
	my @kp1 = sort map { (split /\t/, $_, 3)[2] } @$got1;
	my @kp0 = sort grep { $_ ne '' } split /\n/, $expected;
	ok(join("\n", @kp1) eq join("\n", @kp0),
		'kafka: multiset of (key, payload) = the stdout run with the same seed');

	my (%parts_of_key, %per_part, $bad_hash);
	for (@$got1)
	{
		my ($p, $o, $k, $v) = split /\t/, $_, 4;
		$parts_of_key{$k}{$p} = 1;
		$per_part{$p}[$o] = "$k\t$v";
		$bad_hash++ if murmur2_partition($k, 4) != $p;
	}
	is(scalar(grep { keys %{ $parts_of_key{$_} } != 1 } keys %parts_of_key),
		0, 'kafka: every key lands in exactly one partition');
	is(scalar(keys %per_part), 4, 'kafka: all 4 partitions are used');
	ok(!$bad_hash, 'kafka: partition = Java murmur2(key) % 4');

	# per partition, messages are in production order
	my @order = grep { $_ ne '' } split /\n/, $expected;
	my $in_order = 1;
	for my $p (keys %per_part)
	{
		my @seq = grep { defined } @{ $per_part{$p} };
		my $j = 0;
		for my $line (@order)
		{
			$j++ if $j < @seq && $seq[$j] eq $line;
		}
		$in_order = 0 if $j != @seq;
	}
	ok($in_order, 'kafka: each partition holds its messages in production order');

	ok(join("\n", sort @$got1) eq join("\n", sort @$got2),
		'kafka: two fresh brokers, same seed => identical partition/offset/key/payload');
}

# ---------------------------------------------------------------------------
# 6. PostgreSQL round trip
# ---------------------------------------------------------------------------

SKIP:
{
	skip 'PostgreSQL part needs an unprivileged user (initdb refuses root)', 1
	  if $> == 0;
	ok($pg_perl_ok, 'PostgreSQL::Test::Cluster loads')
	  or diag("add -I <pgxs>/src/test/perl: $pg_perl_error");
	skip 'no PostgreSQL::Test::Cluster', 1 unless $pg_perl_ok;

	my $node = PostgreSQL::Test::Cluster->new('loadgen');
	$node->init;
	$node->start;
	my $connstr = $node->connstr('postgres');

	$node->safe_psql('postgres', q{
		CREATE TABLE clicks (user_id int, url text, amount numeric, ts timestamptz);
		CREATE TABLE clicks_json (user_id int, url text, amount numeric, ts timestamptz);
		CREATE TABLE oracle (user_id int, url text, amount numeric, ts timestamptz);
		CREATE TABLE raw (seq bigserial, line text);
		CREATE TABLE rejected (seq bigint);
	});

	my @pgargs = (
		'--count' => 10000, '--seed' => 5, '--duplicates' => '0.1',
		'--disorder' => '0.3', '--users' => 300);

	# csv stdout piped straight into COPY FROM STDIN, as in the demo
	my ($perr, $cerr, $cout) = ('', '', '');
	my $ok = run(
		[
			$loadgen, @pgargs, '--format' => 'csv',
			'--oracle-csv' => "$tmp/pg-oracle.csv"
		],
		'2>', \$perr, '|',
		[ 'psql', '-X', '-v', 'ON_ERROR_STOP=1', '-d', $connstr, '-c',
			'COPY clicks FROM STDIN (FORMAT csv)' ],
		'>', \$cout, '2>', \$cerr,
		timeout($TIMEOUT));
	ok($ok, 'pg: loadgen --format csv | psql COPY clicks FROM STDIN')
	  or diag("$perr\n$cerr");

	$node->safe_psql('postgres',
		"COPY oracle FROM '$tmp/pg-oracle.csv' (FORMAT csv)");

	# json stdout, same seed, loaded through jsonb
	my ($rc, $jout, $jerr) = lg(@pgargs, '--format' => 'json');
	is($rc, 0, 'pg: json run exits 0');
	$node->safe_psql('postgres',
		"COPY raw (line) FROM STDIN (FORMAT csv, QUOTE e'\\x01', DELIMITER e'\\x02');\n"
		  . $jout . "\\.\n"
		  . q{INSERT INTO clicks_json
			  SELECT (j->>'user_id')::int, j->>'url', (j->>'amount')::numeric,
					 (j->>'ts')::timestamptz
				FROM (SELECT line::jsonb AS j FROM raw ORDER BY seq) s;});

	my $q = sub { $node->safe_psql('postgres', $_[0]) };
	is($q->('SELECT count(*) FROM clicks'), 10000, 'pg: 10000 rows via COPY');
	is($q->('SELECT count(*) FROM oracle'), 10000, 'pg: 10000 oracle rows');
	is($q->('SELECT count(*) FROM clicks_json'), 10000, 'pg: 10000 json rows');
	is($q->('SELECT count(*) FROM (SELECT * FROM clicks EXCEPT ALL SELECT * FROM oracle) d'),
		0, 'pg: clicks EXCEPT ALL oracle is empty');
	is($q->('SELECT count(*) FROM (SELECT * FROM oracle EXCEPT ALL SELECT * FROM clicks) d'),
		0, 'pg: oracle EXCEPT ALL clicks is empty');
	is($q->('SELECT count(*) FROM (SELECT * FROM clicks_json EXCEPT ALL SELECT * FROM oracle) d'),
		0, 'pg: clicks_json EXCEPT ALL oracle is empty');
	is($q->('SELECT count(*) FROM (SELECT * FROM oracle EXCEPT ALL SELECT * FROM clicks_json) d'),
		0, 'pg: oracle EXCEPT ALL clicks_json is empty');
	is( $q->(q{SELECT count(*) FROM clicks
				WHERE amount::text !~ '^\d+\.\d\d$' OR user_id NOT BETWEEN 1 AND 300
				   OR ts NOT BETWEEN '2025-12-31 23:59:55+00' AND '2026-01-01 00:00:10+00'}),
		0, 'pg: amounts keep 2 decimals, keys and times in range');
	is( $q->(q{SELECT count(*) FROM (SELECT * FROM clicks GROUP BY 1,2,3,4
				HAVING count(*) > 1) d}) > 0 ? 1 : 0,
		1, 'pg: duplicates arrive as extra rows');

	# PostgreSQL itself rejects every malformed json message, and only those
	$q->('TRUNCATE raw; TRUNCATE rejected; ALTER SEQUENCE raw_seq_seq RESTART WITH 0 MINVALUE 0');
	($rc, $jout, $jerr) = lg(
		'--count' => 3000, '--seed' => 6, '--malformed' => '0.1',
		'--malformed-log' => "$tmp/pg-mal.log");
	$node->safe_psql('postgres',
		"COPY raw (line) FROM STDIN (FORMAT csv, QUOTE e'\\x01', DELIMITER e'\\x02');\n"
		  . $jout . "\\.\n"
		  . q{DO $$
			DECLARE r record;
			BEGIN
				FOR r IN SELECT seq, line FROM raw ORDER BY seq LOOP
					BEGIN
						PERFORM (j->>'user_id')::int, (j->>'amount')::numeric,
								(j->>'ts')::timestamptz
						  FROM (SELECT r.line::jsonb AS j) s;
					EXCEPTION WHEN others THEN
						INSERT INTO rejected VALUES (r.seq);
					END;
				END LOOP;
			END $$;});
	my $rejected = $q->('SELECT string_agg(seq::text, \',\' ORDER BY seq) FROM rejected');
	my $logged = join(',', map { (split /,/)[0] } grep { $_ ne '' } split /\n/,
		slurp("$tmp/pg-mal.log"));
	ok($logged ne '', 'pg: malformed run logged defects');
	is($rejected, $logged,
		'pg: PostgreSQL rejects exactly the messages in the malformed log');

	$node->stop;
}

done_testing();
