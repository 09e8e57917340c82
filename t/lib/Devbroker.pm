package Devbroker;

# Devbroker - start and control tools/devbroker/devbroker from Perl tests.
#
#   use Devbroker;
#   my $b = Devbroker->start(topics => { clicks => 8, other => 1 },
#                            brokers => 1, dir => $tmpdir);
#   $b->bootstrap;   # "127.0.0.1:port"
#   $b->pid;
#   $b->down;        # SIGUSR1, waits until the state file says "down"
#   $b->up;          # SIGUSR2, waits until the state file says "up"
#   $b->stop;        # SIGTERM, waits for exit, returns the exit status
#
# Further start() options: default_partitions => N, control_file => PATH,
# quiet => 1, args => [ extra command-line arguments ], timeout => seconds
# (default 30, for every wait).  Accessors: logfile, dir, bootstrap_file,
# state_file, pid_file, log_contents, state (current content of the state
# file), wait_state(STATE).
#
# The binary is $ENV{STREAMPROC_DEVBROKER}, or else
# <dir of this file>/../../tools/devbroker/devbroker.  Its stdout and
# stderr go to $b->logfile.  A broker still running when its object is
# destroyed (or when the test script ends) is stopped.

use strict;
use warnings;

use Carp qw(croak);
use File::Basename qw(dirname);
use File::Spec;
use File::Temp ();
use POSIX qw(WNOHANG _exit);
use Scalar::Util qw(weaken);
use Time::HiRes qw(sleep time);

our $DEFAULT_TIMEOUT = 30;
our $POLL_INTERVAL   = 0.05;

# Live brokers, weakly held, so that END can stop whatever is left
my %live;

# Numbers the brokers started by this process
my $seq = 0;

sub binary
{
	return $ENV{STREAMPROC_DEVBROKER}
	  if defined $ENV{STREAMPROC_DEVBROKER} && $ENV{STREAMPROC_DEVBROKER} ne '';
	my $here = dirname(File::Spec->rel2abs(__FILE__));
	return File::Spec->catfile($here, '..', '..', 'tools', 'devbroker',
		'devbroker');
}

sub _slurp
{
	my ($path) = @_;
	open(my $fh, '<', $path) or return undef;
	local $/;
	my $content = <$fh>;
	close($fh);
	return $content;
}

sub start
{
	my ($class, %opts) = @_;
	my $self = bless {}, $class;

	my $timeout = $opts{timeout} // $DEFAULT_TIMEOUT;
	$self->{timeout} = $timeout;

	if (defined $opts{dir})
	{
		$self->{dir} = $opts{dir};
	}
	else
	{
		# Kept in the object so the directory outlives the broker
		$self->{tmpdir_obj} = File::Temp->newdir('devbroker-XXXXXX',
			TMPDIR => 1, CLEANUP => 1);
		$self->{dir} = $self->{tmpdir_obj}->dirname;
	}
	croak "Devbroker: directory $self->{dir} does not exist"
	  unless -d $self->{dir};

	# Unique names, so that several brokers can share a directory
	my $tag = sprintf('devbroker-%d-%d', $$, ++$seq);
	$self->{bootstrap_file} = File::Spec->catfile($self->{dir}, "$tag.bootstrap");
	$self->{state_file}     = "$self->{bootstrap_file}.state";
	$self->{pid_file}       = File::Spec->catfile($self->{dir}, "$tag.pid");
	$self->{logfile}        = File::Spec->catfile($self->{dir}, "$tag.log");
	unlink($self->{bootstrap_file}, $self->{state_file}, $self->{pid_file});

	my $bin = binary();
	croak "Devbroker: $bin is not executable (build it with "
	  . "'make -C tools/devbroker' or set STREAMPROC_DEVBROKER)"
	  unless -x $bin;

	my @args = ('--bootstrap-file', $self->{bootstrap_file},
		'--pid-file', $self->{pid_file});
	push @args, '--brokers', $opts{brokers} if defined $opts{brokers};
	my $topics = $opts{topics} // {};
	push @args, '--topic', "$_:$topics->{$_}" for sort keys %$topics;
	push @args, '--default-partitions', $opts{default_partitions}
	  if defined $opts{default_partitions};
	if (defined $opts{control_file})
	{
		push @args, '--control-file', $opts{control_file};
		$self->{control_file} = $opts{control_file};
	}
	push @args, '--quiet' if $opts{quiet};
	push @args, @{ $opts{args} } if $opts{args};
	$self->{args} = [@args];

	open(my $log, '>', $self->{logfile})
	  or croak "Devbroker: cannot create $self->{logfile}: $!";

	my $pid = fork();
	croak "Devbroker: fork failed: $!" unless defined $pid;
	if ($pid == 0)
	{
		# Child: no Perl cleanup code may run here, hence _exit
		open(STDIN, '<', '/dev/null');
		open(STDOUT, '>&', $log);
		open(STDERR, '>&', $log);
		{ no warnings q{exec}; exec { $bin } $bin, @args; }
		print STDERR "Devbroker: exec $bin failed: $!\n";
		_exit(127);
	}
	close($log);

	$self->{pid}       = $pid;
	$self->{owner_pid} = $$;
	$live{"$self"} = $self;
	weaken($live{"$self"});

	# Wait for the bootstrap file, which devbroker writes last and atomically
	my $deadline = time() + $timeout;
	while (1)
	{
		my $bs = _slurp($self->{bootstrap_file});
		if (defined $bs && $bs =~ /\n\z/)
		{
			chomp $bs;
			$self->{bootstrap} = $bs;
			last;
		}
		if (!$self->_alive)
		{
			my $st = $self->{exit_status};
			croak "Devbroker: devbroker exited (status $st) before it was "
			  . "ready; log:\n" . (_slurp($self->{logfile}) // '');
		}
		if (time() > $deadline)
		{
			$self->_kill_hard;
			croak "Devbroker: devbroker not ready after ${timeout}s; log:\n"
			  . (_slurp($self->{logfile}) // '');
		}
		sleep($POLL_INTERVAL);
	}

	return $self;
}

sub bootstrap      { return $_[0]->{bootstrap}; }
sub pid            { return $_[0]->{pid}; }
sub logfile        { return $_[0]->{logfile}; }
sub dir            { return $_[0]->{dir}; }
sub bootstrap_file { return $_[0]->{bootstrap_file}; }
sub state_file     { return $_[0]->{state_file}; }
sub pid_file       { return $_[0]->{pid_file}; }
sub log_contents   { return _slurp($_[0]->{logfile}) // q{}; }

# Current content of the state file ("up", "down"), or undef
sub state
{
	my ($self) = @_;
	my $s = _slurp($self->{state_file});
	return undef unless defined $s;
	chomp $s;
	return $s;
}

# Is the process still running?  Reaps it (recording the status) if not.
sub _alive
{
	my ($self) = @_;
	return 0 if defined $self->{exit_status};
	my $r = waitpid($self->{pid}, WNOHANG);
	return 1 if $r == 0;
	if ($r == $self->{pid})
	{
		$self->{exit_status} = _decode_status($?);
	}
	else
	{
		$self->{exit_status} = -1;    # not our child any more
	}
	return 0;
}

# Exit code, or 128 + signal number if killed by a signal
sub _decode_status
{
	my ($st) = @_;
	return 128 + ($st & 127) if $st & 127;
	return $st >> 8;
}

sub _signal_and_wait_state
{
	my ($self, $signal, $want) = @_;
	croak "Devbroker: devbroker is not running" unless $self->_alive;
	kill($signal, $self->{pid})
	  or croak "Devbroker: cannot send $signal to $self->{pid}: $!";
	return $self->wait_state($want);
}

# Wait (bounded) until the state file says $want
sub wait_state
{
	my ($self, $want, $timeout) = @_;
	$timeout //= $self->{timeout};
	my $deadline = time() + $timeout;
	while (1)
	{
		my $s = $self->state;
		return 1 if defined $s && $s eq $want;
		croak "Devbroker: devbroker exited while waiting for state '$want'; "
		  . "log:\n" . $self->log_contents
		  unless $self->_alive;
		croak "Devbroker: state not '$want' after ${timeout}s (it is '"
		  . ($s // 'missing') . "'); log:\n" . $self->log_contents
		  if time() > $deadline;
		sleep($POLL_INTERVAL);
	}
}

sub down { my ($self) = @_; return $self->_signal_and_wait_state('USR1', 'down'); }
sub up   { my ($self) = @_; return $self->_signal_and_wait_state('USR2', 'up'); }

# Wait (bounded) for the process to exit; returns its status or undef
sub _wait_exit
{
	my ($self, $timeout) = @_;
	my $deadline = time() + $timeout;
	while ($self->_alive)
	{
		return undef if time() > $deadline;
		sleep($POLL_INTERVAL);
	}
	return $self->{exit_status};
}

sub _kill_hard
{
	my ($self) = @_;
	return unless $self->_alive;
	kill('KILL', $self->{pid});
	$self->_wait_exit(10);
}

# SIGTERM, wait for exit; returns the exit status (0 for a clean stop)
sub stop
{
	my ($self, $signal) = @_;
	$signal //= 'TERM';
	if ($self->_alive)
	{
		kill($signal, $self->{pid});
		if (!defined $self->_wait_exit($self->{timeout}))
		{
			warn "Devbroker: devbroker $self->{pid} ignored SIG$signal for "
			  . "$self->{timeout}s, killing it\n";
			$self->_kill_hard;
		}
	}
	delete $live{"$self"};
	return $self->{exit_status};
}

sub DESTROY
{
	my ($self) = @_;
	local ($., $@, $!, $^E, $?);
	return unless $self->{pid} && defined $self->{owner_pid};
	return unless $$ == $self->{owner_pid};    # not in forked children
	$self->stop unless defined $self->{exit_status};
}

END
{
	local $?;
	for my $b (values %live)
	{
		next unless defined $b && $$ == $b->{owner_pid};
		$b->stop unless defined $b->{exit_status};
	}
}

1;
