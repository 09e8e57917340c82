# t/010_devbroker.pl - tests for tools/devbroker (the development Kafka
# broker) and its Perl helper t/lib/Devbroker.pm, using kcat as the client.
#
# Run from the top of the tree: prove -I t/lib t/010_devbroker.pl
# The binary is $ENV{STREAMPROC_DEVBROKER} or tools/devbroker/devbroker.

use strict;
use warnings;

use Test::More;
use File::Temp ();
use File::Spec;
use IO::Socket::INET;
use IPC::Run ();
use Time::HiRes qw(sleep time);

use Devbroker;

# Missing prerequisites are failures, not skips: a skip would hide them
my $bin = Devbroker::binary();
BAIL_OUT("devbroker binary $bin not built (make -C tools/devbroker, "
	  . "or set STREAMPROC_DEVBROKER)")
  unless -x $bin;
my $kcat = $ENV{KCAT} // 'kcat';
BAIL_OUT("kcat not found (apt-get install kcat, or set KCAT)")
  unless system("$kcat -V >/dev/null 2>&1") == 0;

# A child that exits early must not kill the test through SIGPIPE
$SIG{PIPE} = 'IGNORE';

my $tmp = File::Temp->newdir('devbroker-test-XXXXXX', TMPDIR => 1,
	CLEANUP => 1);

# Options that make kcat give up or reconnect quickly
my @kcat_fast = ('-X', 'socket.timeout.ms=5000',
	'-X', 'reconnect.backoff.max.ms=500');

# Run a command with a bound on its run time.
# Returns (exit status, stdout, stderr); status is -1 on timeout.
sub run_cmd
{
	my ($cmd, %o) = @_;
	my $in = $o{input} // '';
	my ($out, $err) = ('', '');
	my $h = IPC::Run::start($cmd, '<', \$in, '>', \$out, '2>', \$err,
		IPC::Run::timeout($o{timeout} // 60));
	my $ok = eval { $h->finish; 1 };
	if (!$ok)
	{
		$h->kill_kill(grace => 2);
		return (-1, $out, "$err\n(timed out: $@)");
	}
	return ($h->result(0), $out, $err);
}

# Poll $cond every 50 ms until it returns true or $timeout seconds pass
sub wait_for
{
	my ($cond, $timeout) = @_;
	my $deadline = time() + ($timeout // 30);
	while (time() < $deadline)
	{
		return 1 if $cond->();
		sleep(0.05);
	}
	return $cond->() ? 1 : 0;
}

sub slurp
{
	my ($path) = @_;
	open(my $fh, '<', $path) or return undef;
	local $/;
	my $c = <$fh>;
	return $c;
}

# Write a file in one go (not atomically: devbroker must cope)
sub spew
{
	my ($path, $content) = @_;
	open(my $fh, '>', $path) or die "cannot write $path: $!";
	print $fh $content;
	close($fh) or die "cannot write $path: $!";
}

sub produce
{
	my ($bs, $topic, @lines) = @_;
	my ($rc, $out, $err) = run_cmd(
		[ $kcat, '-P', '-b', $bs, '-t', $topic, '-K:', @kcat_fast ],
		input => join('', map { "$_\n" } @lines));
	is($rc, 0, "kcat produced " . scalar(@lines) . " messages to $topic")
	  or diag($err);
}

# All messages of a topic as "partition key value" lines
sub consume
{
	my ($bs, $topic) = @_;
	my ($rc, $out, $err) = run_cmd(
		[
			$kcat, '-C', '-b', $bs, '-t', $topic, '-o', 'beginning', '-e',
			'-q', '-f', '%p %k %s\n', @kcat_fast
		]);
	return undef if $rc != 0;
	return [ split /\n/, $out ];
}

# Topic name => partition count, from kcat -L
sub metadata
{
	my ($bs, $timeout_s) = @_;
	my ($rc, $out, $err) = run_cmd(
		[ $kcat, '-L', '-b', $bs, '-m', $timeout_s // 10, @kcat_fast ],
		timeout => 60);
	return (undef, $err) if $rc != 0;
	my %parts = $out =~ /^\s*topic "([^"]+)" with (\d+) partitions:/mg;
	my ($nbrokers) = $out =~ /^\s*(\d+) brokers:/m;
	return ({ topics => \%parts, brokers => $nbrokers }, $out);
}

sub tcp_connects
{
	my ($hostport) = @_;
	my $s = IO::Socket::INET->new(PeerAddr => $hostport, Timeout => 5);
	return 0 unless $s;
	close($s);
	return 1;
}

# ---------------------------------------------------------------------
# 1. Round trip through kcat.
# ---------------------------------------------------------------------
subtest 'round trip with kcat' => sub {
	my $b = Devbroker->start(topics => { rt => 3 }, dir => "$tmp");
	like($b->bootstrap, qr/^127\.0\.0\.1:\d+$/, 'bootstrap is 127.0.0.1:port');
	is(slurp($b->bootstrap_file), $b->bootstrap . "\n",
		'bootstrap file holds the address and a newline');
	is(slurp($b->pid_file), $b->pid . "\n", 'pid file holds the pid');
	is($b->state, 'up', 'state file says up');

	my @sent = map { sprintf('key%04d:value-%04d', $_, $_ * 7) } 1 .. 1000;
	produce($b->bootstrap, 'rt', @sent);

	my $got = consume($b->bootstrap, 'rt');
	ok($got, 'kcat consumed') or return;
	is(scalar(@$got), 1000, 'exactly 1000 messages came back');
	my (%partitions, @kv);
	for my $line (@$got)
	{
		my ($p, $k, $v) = split / /, $line, 3;
		$partitions{$p}++;
		push @kv, "$k:$v";
	}
	is_deeply([ sort @kv ], [ sort @sent ], 'the same 1000 keyed lines');
	is_deeply([ sort keys %partitions ], [ 0, 1, 2 ], 'all 3 partitions used');

	my ($md, $raw) = metadata($b->bootstrap);
	ok($md, 'kcat -L works') or diag($raw);
	is($md->{topics}{rt}, 3, 'metadata shows 3 partitions for rt');

	is($b->stop, 0, 'stopped cleanly');
};

# ---------------------------------------------------------------------
# 2. Pre-created topics, several brokers, auto-created topics.
# ---------------------------------------------------------------------
subtest 'pre-created topics and brokers' => sub {
	my $b = Devbroker->start(
		topics  => { two => 2, seven => 7 },
		brokers => 3,
		dir     => "$tmp");
	my @addrs = split /,/, $b->bootstrap;
	is(scalar(@addrs), 3, 'bootstrap lists 3 brokers');
	like($_, qr/^127\.0\.0\.1:\d+$/, "broker address $_") for @addrs;

	my ($md, $raw) = metadata($b->bootstrap);
	ok($md, 'kcat -L works') or diag($raw);
	is($md->{brokers}, 3, 'metadata shows 3 brokers');
	is($md->{topics}{two},   2, 'topic two has 2 partitions');
	is($md->{topics}{seven}, 7, 'topic seven has 7 partitions');

	# Metadata requests for unknown topics auto-create them (4 partitions)
	my ($rc, $out, $err) = run_cmd(
		[ $kcat, '-L', '-b', $b->bootstrap, '-t', 'autotopic', '-m', 10,
			@kcat_fast ]);
	is($rc, 0, 'kcat -L -t autotopic works') or diag($err);
	like($out, qr/topic "autotopic" with 4 partitions/,
		'auto-created topic has the mock default of 4 partitions');

	# Down and up affect every broker
	$b->down;
	ok(!tcp_connects($_), "broker $_ refuses connections while down")
	  for @addrs;
	$b->up;
	ok(tcp_connects($_), "broker $_ accepts connections again") for @addrs;

	is($b->stop, 0, 'stopped cleanly');
};

# ---------------------------------------------------------------------
# 3. Outage without data loss.
# ---------------------------------------------------------------------
subtest 'outage via signals' => sub {
	my $b  = Devbroker->start(topics => { out => 2 }, dir => "$tmp");
	my $bs = $b->bootstrap;
	my ($addr) = split /,/, $bs;

	# A: before the outage
	produce($bs, 'out', map { "a$_:A$_" } 1 .. 100);
	my $got = consume($bs, 'out');
	is($got && scalar(@$got), 100, '100 messages stored before the outage');

	$b->down;
	is($b->state, 'down', 'state file says down');
	like($b->log_contents, qr/devbroker: brokers down/, 'log says down');
	ok(!tcp_connects($addr), 'TCP connections are refused while down');
	my $t0 = time();
	my ($md, $raw) = metadata($bs, 3);
	ok(!$md, 'kcat -L fails while down');
	cmp_ok(time() - $t0, '<', 30, 'and gives up in bounded time');
	my ($rc, $out, $err) = run_cmd(
		[ $kcat, '-P', '-b', $bs, '-t', 'out', '-K:', @kcat_fast ],
		input => "lost:while-down\n");
	isnt($rc, 0, 'kcat -P fails while down');

	$b->up;
	is($b->state, 'up', 'state file says up');
	like($b->log_contents, qr/devbroker: brokers up/, 'log says up');
	ok(tcp_connects($addr), 'TCP connections accepted again');
	($md, $raw) = metadata($bs, 10);
	ok($md, 'kcat -L works again') or diag($raw);
	is($md && $md->{topics}{out}, 2, 'topic survived the outage');

	# B: after the outage; then a second outage, and C after it
	produce($bs, 'out', map { "b$_:B$_" } 1 .. 100);
	$b->down;
	ok(!tcp_connects($addr), 'second outage: connections refused');
	$b->up;
	produce($bs, 'out', map { "c$_:C$_" } 1 .. 100);

	$got = consume($bs, 'out');
	ok($got, 'kcat consumed') or return;
	my (%by_batch, %seen);
	for my $line (@$got)
	{
		my (undef, $k, $v) = split / /, $line, 3;
		$seen{$k}++;
		$by_batch{ substr($k, 0, 1) }++;
	}
	is(scalar(@$got), 300, 'exactly 300 messages stored');
	is_deeply(\%by_batch, { a => 100, b => 100, c => 100 },
		'100 of each batch: nothing lost across two outages');
	is(scalar(grep { $seen{$_} != 1 } keys %seen), 0, 'no duplicates');

	is($b->stop, 0, 'stopped cleanly');
};

# ---------------------------------------------------------------------
# 4. Control file (and signals mixed in), starting the binary directly.
# ---------------------------------------------------------------------
subtest 'control file' => sub {
	my $dir     = File::Temp->newdir('ctl-XXXXXX', DIR => "$tmp");
	my $bsfile  = "$dir/bootstrap";
	my $pidfile = "$dir/pid";
	my $ctl     = "$dir/control";
	my $log     = "$dir/log";
	my $h       = IPC::Run::start(
		[
			$bin, '--bootstrap-file', $bsfile, '--pid-file', $pidfile,
			'--control-file', $ctl, '--topic', 'c:1'
		],
		'<', '/dev/null', '>&', $log, IPC::Run::timeout(120));

	ok(wait_for(sub { my $c = slurp($bsfile); defined $c && $c =~ /\n\z/ }),
		'bootstrap file appears') or diag(slurp($log));
	my $bs = slurp($bsfile) // '';
	chomp $bs;
	my $pid = slurp($pidfile) // '';
	chomp $pid;
	like($pid, qr/^\d+$/, 'pid file written');
	my $state = sub { my $s = slurp("$bsfile.state") // ''; chomp $s; $s };
	is($state->(), 'up', 'initial state is up');

	spew($ctl, "down\n");
	ok(wait_for(sub { $state->() eq 'down' }), 'control file "down" works');
	ok(!tcp_connects($bs), 'connections refused');
	my ($md, $raw) = metadata($bs, 3);
	ok(!$md, 'kcat -L fails while down');

	spew($ctl, "up");
	ok(wait_for(sub { $state->() eq 'up' }), 'control file "up" works');
	($md, $raw) = metadata($bs, 10);
	ok($md, 'kcat -L works again') or diag($raw);
	is($md && $md->{topics}{c}, 1, 'topic c survived');

	# Signals and the control file can be mixed
	kill('USR1', $pid);
	ok(wait_for(sub { $state->() eq 'down' }), 'SIGUSR1 takes it down');
	spew($ctl, "up\n");
	ok(wait_for(sub { $state->() eq 'up' }),
		'rewriting the control file with "up" brings it up');

	# Unknown content is ignored with a message
	spew($ctl, "sideways\n");
	ok(wait_for(sub { (slurp($log) // '') =~ /ignoring control file/ }),
		'unknown content is reported');
	is($state->(), 'up', 'and the state is unchanged');

	kill('INT', $pid);
	my $ok = eval { $h->finish; 1 };
	$h->kill_kill(grace => 2) unless $ok;
	ok($ok, 'exits after SIGINT');
	is($ok && $h->result(0), 0, 'with status 0');
	ok(!-e $bsfile,          'bootstrap file removed');
	ok(!-e "$bsfile.state",  'state file removed');
	ok(!-e $pidfile,         'pid file removed');
	my $l = slurp($log) // '';
	like($l, qr/devbroker: ready at \Q$bs\E/, 'log has the ready line');
	like($l, qr/devbroker: brokers down.*devbroker: brokers up/s,
		'log has the down and up lines');
};

# ---------------------------------------------------------------------
# 5. Bad arguments.
# ---------------------------------------------------------------------
subtest 'bad arguments' => sub {
	my $bsf = "$tmp/never";
	my @cases = (
		[ 'no arguments', [], qr/--bootstrap-file is required/ ],
		[ 'unknown option', [ '--bootstrap-file', $bsf, '--bogus' ],
			qr/unrecognized option "--bogus"/ ],
		[ 'missing value', [ '--bootstrap-file', $bsf, '--brokers' ],
			qr/requires an argument/ ],
		[ 'brokers 0', [ '--bootstrap-file', $bsf, '--brokers', '0' ],
			qr/invalid --brokers "0"/ ],
		[ 'brokers not a number', [ '--bootstrap-file', $bsf, '--brokers', '2x' ],
			qr/invalid --brokers "2x"/ ],
		[ 'topic without count', [ '--bootstrap-file', $bsf, '--topic', 'foo' ],
			qr/invalid --topic "foo"/ ],
		[ 'topic with 0 partitions',
			[ '--bootstrap-file', $bsf, '--topic', 'foo:0' ],
			qr/invalid --topic "foo:0"/ ],
		[ 'topic without name', [ '--bootstrap-file', $bsf, '--topic', ':3' ],
			qr/invalid --topic ":3"/ ],
		[ 'topic with a bad name',
			[ '--bootstrap-file', $bsf, '--topic', 'a b:3' ],
			qr/invalid --topic "a b:3"/ ],
		[ 'duplicate topic',
			[ '--bootstrap-file', $bsf, '--topic', 'x:1', '--topic', 'x:2' ],
			qr/topic "x" given more than once/ ],
		[ 'bad default partitions',
			[ '--bootstrap-file', $bsf, '--default-partitions', '-1' ],
			qr/invalid --default-partitions "-1"/ ],
		[ 'stray argument', [ '--bootstrap-file', $bsf, 'extra' ],
			qr/unexpected argument "extra"/ ],
	);
	for my $c (@cases)
	{
		my ($name, $args, $re) = @$c;
		my ($rc, $out, $err) = run_cmd([ $bin, @$args ], timeout => 30);
		is($rc, 2, "$name: exit status 2");
		like($err, qr/^devbroker: /, "$name: message starts with devbroker:");
		like($err, $re,       "$name: says what is wrong");
		like($err, qr/Usage:/, "$name: shows usage");
	}
	ok(!-e $bsf, 'no bootstrap file was written');

	my ($rc, $out, $err) = run_cmd([ $bin, '--help' ], timeout => 30);
	is($rc, 0, '--help exits 0');
	like($out, qr/Usage: devbroker --bootstrap-file PATH/, '--help shows usage');
};

# ---------------------------------------------------------------------
# 6. Large batches: refused loudly, never lost.
#
# librdkafka's mock cluster hides a new batch when it and the newest
# batch of its partition exceed 5 MiB together, and the message after it
# too (see devbroker.c); devbroker refuses every request over 2.5 MiB.
# ---------------------------------------------------------------------
subtest 'large batches' => sub {
	my $b = Devbroker->start(topics => { big => 1 }, dir => "$tmp", quiet => 1);
	my $bs = $b->bootstrap;
	my $limit = 5 * 1024 * 1024 / 2;
	my %file;
	for my $m (
		[ near  => 'n' x ($limit - 512) ],
		[ over  => 'o' x (3 * 1024 * 1024) ],
		[ after => 'after' ],
		[ json10m => '{"k": 1, "v": "' . ('x' x 10_000_000) . '"}' ])
	{
		$file{ $m->[0] } = "$tmp/msg-$m->[0]";
		spew($file{ $m->[0] }, $m->[1]);
	}
	my $send = sub {
		my ($name, @x) = @_;
		return run_cmd(
			[
				$kcat, '-P', '-b', $bs, '-t', 'big', '-p', '0',
				'-X', 'message.max.bytes=20000000',
				'-X', 'message.timeout.ms=5000', @kcat_fast, @x,
				$file{$name}
			]);
	};

	my ($rc, $out, $err) = $send->('near');
	is($rc, 0, 'a batch just under 2.5 MiB is accepted') or diag($err);
	($rc, $out, $err) = $send->('near');
	is($rc, 0, 'and a second one') or diag($err);

	($rc, $out, $err) = $send->('over');
	isnt($rc, 0, 'a 3 MiB batch makes the producer fail');
	ok( wait_for(
			sub {
				($b->log_contents // '') =~
				  /error: refused a request larger than $limit bytes/;
			}),
		'devbroker says so, even with --quiet')
	  or diag($b->log_contents);

	($rc, $out, $err) = $send->('after');
	is($rc, 0, 'the next message is accepted') or diag($err);

	# A 10 MB message compressed to a small batch passes
	($rc, $out, $err) = $send->('json10m', '-X', 'compression.codec=zstd');
	is($rc, 0, 'a 10 MB message compressed with zstd is accepted')
	  or diag($err);

	my $consume = sub {
		my ($offset, $format) = @_;
		my ($rc, $out, $err) = run_cmd(
			[
				$kcat, '-C', '-b', $bs, '-t', 'big', '-p', '0', '-o',
				$offset, '-e', '-q', '-f', $format, @kcat_fast
			]);
		diag($err) if $rc != 0;
		return $out;
	};
	my $near = $limit - 512;
	is( $consume->('beginning', '%o %S\n'),
		"0 $near\n1 $near\n2 5\n3 10000017\n",
		'every accepted message is there, at consecutive offsets');
	is($consume->(3, '%s'), slurp($file{json10m}),
		'the 10 MB message came back whole');

	is($b->stop, 0, 'stopped cleanly');
};

# ---------------------------------------------------------------------
# 7. SIGTERM.
# ---------------------------------------------------------------------
subtest 'SIGTERM' => sub {
	my $b = Devbroker->start(topics => { t => 1 }, dir => "$tmp", quiet => 1);
	ok(-e $b->bootstrap_file, 'bootstrap file exists while running');
	ok(kill(0, $b->pid), 'process is running');
	is($b->stop, 0, 'exits 0 after SIGTERM');
	ok(!-e $b->bootstrap_file, 'bootstrap file removed');
	ok(!-e $b->state_file,     'state file removed');
	ok(!-e $b->pid_file,       'pid file removed');
	ok(!-e $b->bootstrap_file . '.tmp', 'no temporary file left');
	is($b->log_contents, '', '--quiet printed nothing');
};

done_testing();
