# A client that follows a view's change log: tools/follow-changes (the
# user guide's example, psycopg 3), against a real server.  It listens on
# the view's channel before any event; events then arrive in several
# transactions, and each transaction that adds changes wakes it.  Once it
# has printed the last position, SIGTERM makes it print the rows it holds,
# which must be the view's rows: an aggregating view (groups that change,
# and one that HAVING hides) and an append view.
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use IPC::Run;
use File::Basename qw(dirname);
use Cwd qw(abs_path);

my $client = abs_path(dirname(__FILE__) . '/../tools/follow-changes');

my $node = PostgreSQL::Test::Cluster->new('follow');
$node->init;
$node->append_conf('postgresql.conf', qq{
shared_preload_libraries = 'streamproc'
max_worker_processes = 16
});
$node->start;
sub sql { return $node->safe_psql('postgres', $_[0]); }

sql(q{
CREATE EXTENSION streamproc;
CREATE FOREIGN TABLE ev (k int, v int) SERVER streamproc;
CREATE VIEW per_k WITH (continuous) AS
    SELECT k, count(*) AS n, sum(v) AS total FROM ev GROUP BY k HAVING max(v) < 900;
CREATE VIEW big WITH (continuous) AS SELECT k, v FROM ev WHERE v >= 500;
SELECT streamproc.create_change_log('per_k');
SELECT streamproc.create_change_log('big');
});

my %run;
for my $view (qw(per_k big))
{
	my ($in, $out, $err) = ('', '', '');
	my $h = IPC::Run::start([ '/usr/bin/python3', $client, '--dsn', $node->connstr('postgres'), $view ],
		\$in, \$out, \$err, IPC::Run::timeout(180));
	$run{$view} = { h => $h, out => \$out, err => \$err };
	ok(eval { $h->pump until $out =~ /^listening$/m; 1 }, "the client of $view listens")
	  or diag("stderr: $err");
}

# Events in five transactions, each waited for; k = 3 leaves per_k when a
# value of 900 arrives.
for my $b (1 .. 5)
{
	sql("INSERT INTO ev SELECT (g * $b) % 7, (g * 37 + $b) % 850 FROM generate_series(1, 200) g");
	sql('INSERT INTO ev VALUES (3, 900)') if $b == 4;
	sql('SELECT streamproc.sync()');
}

for my $view (qw(per_k big))
{
	my $r = $run{$view};
	my $last = sql("SELECT streamproc.changes_position('$view')");
	cmp_ok($last, '>', 0, "$view has changes ($last)");
	ok(eval { $r->{h}->pump until ${ $r->{out} } =~ /"position": $last\}/; 1 },
		"the client of $view printed position $last")
	  or diag('stderr: ' . ${ $r->{err} });
	$r->{h}->signal('TERM');
	$r->{h}->finish;
	my @rows = ${ $r->{out} } =~ /^\{"row": (.*)\}$/mg;
	my $got = join(', ', map { "\$j\$$_\$j\$::jsonb" } @rows) || 'NULL::jsonb';
	is(sql("SELECT (SELECT count(*) FROM (SELECT pg_catalog.to_jsonb(r) FROM $view r"
			  . " EXCEPT ALL SELECT unnest(ARRAY[$got])) a) || ' ' ||"
			  . " (SELECT count(*) FROM (SELECT unnest(ARRAY[$got])"
			  . " EXCEPT ALL SELECT pg_catalog.to_jsonb(r) FROM $view r) b)"),
		'0 0', "the rows the client of $view holds are the view's (" . scalar(@rows) . ' rows)');
	my @changes = ${ $r->{out} } =~ /^(\{"key".*)$/mg;
	is(scalar(@changes), $last, "it printed every change of $view once");
}
like(${ $run{per_k}{out} }, qr/^\{"key": \[3\], "new": null, "old": \{/m,
	'the client saw k = 3 leave per_k');

$node->stop;
done_testing();
