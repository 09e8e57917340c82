# streamproc.checkpoint_groups: a view with that many changed groups makes
# its worker checkpoint at once, however long checkpoint_interval is (a
# worker merges nothing while it checkpoints, so this bounds the pause);
# fewer changed groups wait for the interval.  Before, a slow checkpoint
# spaced the next one further apart, which made it slower still: at
# 50,000 events/s into 1M groups the pauses grew to 2.5 s.
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;

my $node = PostgreSQL::Test::Cluster->new('ckgroups');
$node->init;
$node->append_conf('postgresql.conf', qq{
shared_preload_libraries = 'streamproc'
max_worker_processes = 16
streamproc.workers = 1
streamproc.checkpoint_interval = '1h'
streamproc.checkpoint_groups = 1000
});
$node->start;

sub sql { return $node->safe_psql('postgres', $_[0]); }

sql(q{
CREATE EXTENSION streamproc;
CREATE FOREIGN TABLE ev (k int) SERVER streamproc;
CREATE VIEW per_k WITH (continuous) AS SELECT k, count(*) AS n FROM ev GROUP BY k;
});

# The position a checkpoint saves: what the view has durably seen.
sub checkpointed
{
	return sql(q{SELECT coalesce(max(last_checkpoint)::text, 'none')
	               FROM streamproc.stat_views WHERE view = 'per_k'::regclass});
}

# 999 groups: merged into shared memory, and no checkpoint for an hour.
my $before = checkpointed();
sql('INSERT INTO ev SELECT g FROM generate_series(1, 999) g');
ok($node->poll_query_until('postgres', q{SELECT count(*) = 999 FROM per_k}),
	'999 groups are in the view');
is(sql(q{SELECT count(*) FROM streamproc.state_runs WHERE view = 'per_k'::regclass}), '0',
	'999 changed groups, fewer than checkpoint_groups: nothing is checkpointed yet');
is(checkpointed(), $before, 'stat_views shows no new checkpoint');

# 1,000 more: the worker checkpoints without waiting for the interval.
sql('INSERT INTO ev SELECT g FROM generate_series(1000, 1999) g');
ok($node->poll_query_until('postgres', q{
	SELECT coalesce(sum(entries), 0) >= 1999 FROM streamproc.state_runs WHERE view = 'per_k'::regclass}),
	'with checkpoint_groups changed groups the worker checkpoints at once');
isnt(checkpointed(), $before, 'stat_views shows the checkpoint');

# 0 turns it off: then only the interval (or sync()) checkpoints.
sql(q{ALTER SYSTEM SET streamproc.checkpoint_groups = 0; SELECT pg_reload_conf()});
$node->poll_query_until('postgres', q{SELECT current_setting('streamproc.checkpoint_groups') = '0'})
  or die 'the setting did not reload';
# The postmaster signalled the worker with us; sync() makes it go round
# its loop, where it reloads the configuration.
sql(q{SELECT streamproc.sync()});
my $runs = sql(q{SELECT count(*) FROM streamproc.state_runs WHERE view = 'per_k'::regclass});
sql('INSERT INTO ev SELECT g FROM generate_series(2000, 5999) g');
ok($node->poll_query_until('postgres', q{SELECT count(*) = 5999 FROM per_k}),
	'4,000 more groups are in the view');
is(sql(q{SELECT count(*) FROM streamproc.state_runs WHERE view = 'per_k'::regclass}), $runs,
	'checkpoint_groups = 0: no checkpoint before the interval');
sql(q{SELECT streamproc.sync()});
is(sql(q{SELECT sum(entries) FROM streamproc.state_runs WHERE view = 'per_k'::regclass}), '5999',
	'sync() checkpoints them');

$node->stop;
done_testing();
