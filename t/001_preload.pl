# The library must be preloaded: CREATE EXTENSION and every function say so
# with a hint when it is not; shared memory is created at server start and
# sized by streamproc.workers; misspelt settings in postgresql.conf are
# reported; binary-upgrade mode sets nothing up.
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;

my $node = PostgreSQL::Test::Cluster->new('preload');
$node->init;
$node->start;

my $msg  = qr/ERROR:  streamproc must be loaded via "shared_preload_libraries"/;
my $hint = qr/HINT:  Add streamproc to "shared_preload_libraries" in postgresql.conf and restart the server\./;

# Without preloading, CREATE EXTENSION fails and leaves nothing behind.
my ($ret, $stdout, $stderr) =
  $node->psql('postgres', 'CREATE EXTENSION streamproc');
isnt($ret, 0, 'CREATE EXTENSION fails without preloading');
like($stderr, $msg,  'with the preload error');
like($stderr, $hint, 'and a hint that says what to do');
is($node->safe_psql('postgres',
		"SELECT count(*) FROM pg_extension WHERE extname = 'streamproc'"),
	'0', 'no extension left behind');

# Preloaded: it installs and the shared block reflects streamproc.workers.
$node->append_conf('postgresql.conf', "shared_preload_libraries = 'streamproc'");
$node->append_conf('postgresql.conf', "streamproc.workers = 3");
$node->restart;
$node->safe_psql('postgres', 'CREATE EXTENSION streamproc');
is($node->safe_psql('postgres', 'SELECT worker_slots FROM streamproc.info()'),
	'3', 'worker slots sized from streamproc.workers at startup');
my $started1 = $node->safe_psql('postgres',
	'SELECT extract(epoch FROM started_at) FROM streamproc.info()');

# Shared memory is created anew by each server start.
$node->restart;
my $started2 = $node->safe_psql('postgres',
	'SELECT extract(epoch FROM started_at) FROM streamproc.info()');
cmp_ok($started2, '>', $started1, 'a restart creates the shared block anew');

# A misspelt setting under the reserved prefix is reported in the log.
my $log_offset = -s $node->logfile;
$node->append_conf('postgresql.conf', "streamproc.batchsize = 10");
$node->restart;
ok( $node->log_contains(
		qr/invalid configuration parameter name "streamproc\.batchsize", removing it/,
		$log_offset),
	'misspelt streamproc setting is reported at startup');
is($node->safe_psql('postgres', "SELECT count(*) FROM pg_settings WHERE name = 'streamproc.batchsize'"),
	'0', 'and is not kept as a placeholder');

# Library removed from shared_preload_libraries after the extension was
# created: its functions refuse to run, with the hint.
$node->append_conf('postgresql.conf', "shared_preload_libraries = ''");
$node->restart;
($ret, $stdout, $stderr) =
  $node->psql('postgres', 'SELECT * FROM streamproc.info()');
isnt($ret, 0, 'functions fail when the library is no longer preloaded');
like($stderr, $msg,  'with the preload error');
like($stderr, $hint, 'and the hint');
$node->stop;

# Binary-upgrade mode (as pg_upgrade starts the server): the library is
# preloaded but defines nothing, so its settings are unknown.
$node->append_conf('postgresql.conf', "shared_preload_libraries = 'streamproc'");
$node->command_ok(
	[
		'pg_ctl', '-D', $node->data_dir, '-l', $node->logfile,
		'-o', '-b', '-w', 'start'
	],
	'server starts in binary-upgrade mode with streamproc preloaded');
($ret, $stdout, $stderr) = $node->psql('postgres', 'SHOW streamproc.batch_size');
like($stderr, qr/unrecognized configuration parameter "streamproc\.batch_size"/,
	'no settings are defined in binary-upgrade mode');
$node->command_ok([ 'pg_ctl', '-D', $node->data_dir, '-w', 'stop' ],
	'binary-upgrade server stops');

# Back to normal: settings are defined again.
$node->start;
is($node->safe_psql('postgres', 'SHOW streamproc.batch_size'),
	'10000', 'settings defined again after a normal start');
$node->stop;

done_testing();
