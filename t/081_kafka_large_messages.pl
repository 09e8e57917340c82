# Large Kafka messages end to end: a 10 MB message produced into the
# devbroker is consumed by a Kafka source into a stream with continuous
# views (one of them grouped by the 10 MB body: a poison message for the
# old engine, which stopped the worker for good) and counted exactly once,
# also across an immediate restart; a
# message over streamproc.max_message_bytes goes to streamproc.errors and
# the messages after it are processed.
#
# The devbroker refuses produced batches over 2.5 MiB (see
# tools/devbroker/README.md, Limits), so the messages are produced with
# zstd compression: bodies of repeated text make batches of a few hundred
# bytes, and the source decompresses them into messages of their full size.
#
# Runs in about 15 s.
use strict;
use warnings;

use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use Digest::MD5 qw(md5_hex);

use Devbroker;
use KafkaCrash ();

$SIG{PIPE} = 'IGNORE';

KafkaCrash::check_prerequisites();
my $kcat = KafkaCrash::kcat_binary();

my $limit = 12 * 1024 * 1024;    # streamproc.max_message_bytes below

my $broker = Devbroker->start(topics => { large => 1 });
my $bs = $broker->bootstrap;

my $node = KafkaCrash::new_node('large', qq{
streamproc.checkpoint_interval = '200ms'
streamproc.max_message_bytes = '12MB'
});
$node->start;

my $tmp = PostgreSQL::Test::Utils::tempdir();

sub sql { return $node->safe_psql('postgres', $_[0]); }

sub sync_all { sql("SELECT streamproc.sync('60s')"); }

$node->safe_psql('postgres', qq{
CREATE EXTENSION streamproc;
CREATE FOREIGN TABLE large_s (id int, tag text, body text) SERVER streamproc;
CREATE VIEW large_counts WITH (continuous) AS
    SELECT tag, count(*) AS n, sum(octet_length(body)) AS bytes, sum(id) AS ids
    FROM large_s GROUP BY tag;
CREATE VIEW large_rows WITH (continuous) AS
    SELECT id, octet_length(body) AS len, md5(body) AS md5 FROM large_s;
-- The 10 MB body is a group key here: once a poison message that stopped
-- the worker for good, now a group like any other.
CREATE VIEW large_by_body WITH (continuous) AS
    SELECT body, count(*) AS n FROM large_s GROUP BY body;
SELECT streamproc.create_kafka_source('large_src', 'large_s', 'large', '$bs');
});

# One message per kcat run, so that each is a batch of its own, in order.
my %sent;    # id => [tag, body]

sub produce
{
	my ($id, $tag, $body) = @_;
	my $path = "$tmp/msg-$id.json";
	open(my $fh, '>:raw', $path) or die "cannot write $path: $!";
	print $fh qq({"id": $id, "tag": "$tag", "body": "$body"});
	close($fh) or die "cannot write $path: $!";
	my ($rc, $out, $err) = KafkaCrash::run_cmd(
		[
			$kcat, '-P', '-b', $bs, '-t', 'large', '-p', '0', '-z', 'zstd',
			'-X', 'message.max.bytes=20000000', '-X', 'message.timeout.ms=30000',
			$path
		]);
	die "kcat could not produce message $id (status $rc): $err" unless $rc == 0;
	$sent{$id} = [ $tag, $body ];
}

# What the views must hold: every message sent except the oversized ones
sub expected_rows
{
	my @ids = sort { $a <=> $b } grep { $sent{$_}[0] ne 'oversized' } keys %sent;
	return join("\n",
		map { join('|', $_, length($sent{$_}[1]), md5_hex($sent{$_}[1])) } @ids);
}

sub expected_counts
{
	my %g;
	for my $id (keys %sent)
	{
		my ($tag, $body) = @{ $sent{$id} };
		next if $tag eq 'oversized';
		$g{$tag}[0]++;
		$g{$tag}[1] += length($body);
		$g{$tag}[2] += $id;
	}
	return join("\n", map { join('|', $_, @{ $g{$_} }) } sort keys %g);
}

sub check_views
{
	my ($when) = @_;
	is(sql('SELECT id, len, md5 FROM large_rows ORDER BY id'),
		expected_rows(), "$when: each message once, whole (length and md5)");
	is(sql('SELECT tag, n, bytes, ids FROM large_counts ORDER BY tag'),
		expected_counts(), "$when: the aggregating view counted each once");
	my %bodies;
	$bodies{ $_->[1] }++ for grep { $_->[0] ne 'oversized' } values %sent;
	is(sql('SELECT md5(body) || \' \' || n FROM large_by_body ORDER BY 1'),
		join("\n", sort map { md5_hex($_) . " $bodies{$_}" } keys %bodies),
		"$when: a 10 MB group key is a group like any other");
}

# 10,000,000 bytes of body: a JSON message of about 10 MB
my $ten_mb = 'abcdefghij' x 1_000_000;
my $oversized = 'z' x ($limit + 1);

produce(1, 'small', 'first');
produce(2, 'big', $ten_mb);
produce(3, 'small', 'after the big one');
produce(4, 'oversized', $oversized);
produce(5, 'small', 'after the oversized one');
sync_all();

check_views('after sync');
my $oversized_len = length(qq({"id": 4, "tag": "oversized", "body": "$oversized"}));
is( sql(q{SELECT "offset", sqlstate, message, view IS NULL FROM streamproc.errors
          WHERE source = 'large_src'}),
	"3|54000|message of $oversized_len bytes exceeds the limit of $limit bytes|t",
	'the oversized message is in streamproc.errors, as a parse error');
is(sql(q{SELECT "offset" FROM streamproc.kafka_offsets WHERE source = 'large_src'}),
	'5', 'the source committed past all five messages');

# Exactly once across a crash: the checkpoint holds the state and the
# offsets, nothing is consumed twice.
$node->stop('immediate');
$node->start;
produce(6, 'big', $ten_mb);
produce(7, 'small', 'after the restart');
sync_all();
check_views('after an immediate restart');
is(sql(q{SELECT count(*) FROM streamproc.errors WHERE source = 'large_src'}),
	'1', 'still one error');

$node->stop;
$broker->stop;
done_testing();
