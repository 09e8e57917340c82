# Kafka sources, functional: one server (streamproc preloaded, checkpoints
# every 200 ms) consuming topics of one devbroker.
#
# Every result is compared with an oracle: the same events loaded into a
# plain table (loadgen's --oracle-csv, the file that was produced, or the
# topic's messages read back with kcat -J) and the view's query run over it
# as a batch.  streamproc.sync() is the only barrier; polling is used only
# to wait for a state (a source paused, a consumer gone, start offsets
# resolved).
#
#  1. json end to end: views, malformed messages in streamproc.errors,
#     kafka_offsets, stat_sources
#  2. csv and text formats, csv with delimiter ';' and quote "'"
#  3. metadata columns (partition, offset, key, timestamp, headers, header)
#  4. per-message errors: bad value, NOT NULL, oversized (GUC)
#  5. a view expression failing for some events
#  7. pause_source / resume_source
#  8. start_offset: latest, per-partition offsets, a future timestamp
#  9. drop_kafka_source while producing; DROP FOREIGN TABLE [CASCADE]
# 10. credentials: masking, privileges, nothing in stats, errors or the log
# 11. partitions added later (skipped: the devbroker cannot add partitions)
# 12. group_id: offsets also committed to Kafka for lag tools
#  6. restarts: fast (messages produced while down) and immediate (while
#     consuming, with malformed messages and a failing view expression),
#     a source paused across them; last, so that it also rechecks every
#     view and error count of the other parts
#
# Runs in about 20 s (45 s on a loaded 2-core machine).
use strict;
use warnings;

use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use FindBin;
use IPC::Run ();
use Time::HiRes qw(time sleep);

use Devbroker;
use KafkaCrash ();

# A child that exits early must not kill the test through SIGPIPE
$SIG{PIPE} = 'IGNORE';

my $loadgen = KafkaCrash::loadgen_binary();
my $kcat    = KafkaCrash::kcat_binary();

KafkaCrash::check_prerequisites();

my $broker = Devbroker->start(
	topics => {
		json1    => 4,
		csv2     => 2,
		text2    => 1,
		csvq2    => 1,
		meta3    => 2,
		err4     => 1,
		expr5    => 2,
		restart6 => 4,
		pause7   => 2,
		group12  => 2,
		latest8  => 2,
		offsets8 => 4,
		seq8     => 1,
		future8  => 2,
		drop9    => 4,
		drop9b   => 1,
		cred10   => 1,
	});
my $bs = $broker->bootstrap;

my $node = PostgreSQL::Test::Cluster->new('kafka');
$node->init(extra => [ '--encoding=UTF8', '--locale=C' ]);
$node->append_conf('postgresql.conf', q{
shared_preload_libraries = 'streamproc'
max_worker_processes = 16
streamproc.checkpoint_interval = '200ms'
});
$node->start;
$node->safe_psql('postgres', 'CREATE EXTENSION streamproc');

my $tmp = PostgreSQL::Test::Utils::tempdir();
my $started = time();

# ---------------------------------------------------------------------
# Helpers
# ---------------------------------------------------------------------

sub sql { return $node->safe_psql('postgres', $_[0]); }

sub sync_all { sql("SELECT streamproc.sync('60s')"); }

# run_cmd: KafkaCrash::run_cmd (t/lib/KafkaCrash.pm)
sub run_cmd { return KafkaCrash::run_cmd(@_); }

my @kcat_opts = ('-X', 'socket.timeout.ms=10000', '-X', 'reconnect.backoff.max.ms=500');

sub loadgen_args
{
	my (%o) = @_;
	my @a = ($loadgen, '--count', $o{count}, '--seed', $o{seed}, '--quiet');
	push @a, '--brokers', $bs, '--topic', $o{topic} if $o{topic};
	push @a, '--oracle-csv', $o{oracle} if $o{oracle};
	push @a, '--malformed', $o{malformed} if $o{malformed};
	push @a, '--malformed-log', $o{malformed_log} if $o{malformed_log};
	push @a, '--duplicates', $o{duplicates} if $o{duplicates};
	push @a, '--format', $o{format} if $o{format};
	push @a, '--rate', $o{rate} if $o{rate};
	return \@a;
}

# loadgen to a topic (with topic =>) or to stdout, which is returned
sub loadgen
{
	my (%o) = @_;
	my ($rc, $out, $err) = run_cmd(loadgen_args(%o));
	die "loadgen failed (status $rc): $err" unless $rc == 0;
	return $out;
}

# kcat -P: one message per line of $data
sub produce
{
	my ($topic, $data, @opts) = @_;
	my ($rc, $out, $err) = run_cmd(
		[ $kcat, '-P', '-b', $bs, '-t', $topic, @kcat_opts, @opts ],
		input => $data);
	die "kcat could not produce to $topic (status $rc): $err" unless $rc == 0;
}

my $nfile = 0;

sub spew
{
	my ($name, $content) = @_;
	my $path = "$tmp/$name";
	open(my $fh, '>:raw', $path) or die "cannot write $path: $!";
	print $fh $content;
	close($fh) or die "cannot write $path: $!";
	return $path;
}

sub csv_field
{
	my ($v) = @_;
	return '' unless defined $v;
	$v =~ s/"/""/g;
	return "\"$v\"";
}

# COPY rows (array refs, undef = NULL) into a table
sub copy_rows
{
	my ($table, $rows) = @_;
	my $path = spew('rows-' . ++$nfile . '.csv',
		join('', map { join(',', map { csv_field($_) } @$_) . "\n" } @$rows));
	sql("COPY $table FROM '$path' (FORMAT csv)");
}

# Every message of a topic, as kcat -J envelopes (partition, offset, ts,
# headers as [name, value, ...], key, payload), into a new table (j jsonb).
sub dump_topic
{
	my ($topic, $table) = @_;
	my ($rc, $out, $err) = run_cmd(
		[
			$kcat, '-C', '-b', $bs, '-t', $topic, '-o', 'beginning', '-e', '-q',
			'-J', @kcat_opts
		]);
	die "kcat could not consume $topic (status $rc): $err" unless $rc == 0;
	my $path = spew("dump-$topic-" . ++$nfile . '.jsonl', $out);
	# csv with quote and delimiter that never occur: each line as is
	sql("CREATE TABLE $table (j jsonb);"
		  . " COPY $table FROM '$path' (FORMAT csv, QUOTE E'\\x01', DELIMITER E'\\x02')");
	return sql("SELECT count(*) FROM $table");
}

# The multiset of rows of $view equals that of $oracle.  Views rechecked
# after the restarts of part 6 are remembered.
my @rechecks;

sub check_oracle
{
	my ($name, $view, $oracle, %o) = @_;
	my $r = sql("SELECT (SELECT count(*) FROM (($view) EXCEPT ALL ($oracle)) a) || ' ' ||"
		  . " (SELECT count(*) FROM (($oracle) EXCEPT ALL ($view)) b) || ' ' ||"
		  . " (SELECT count(*) FROM ($oracle) c)");
	my ($extra, $missing, $rows) = split / /, $r;
	my $ok = is("$extra $missing", '0 0',
		"$name equals the oracle ($rows rows; counts of extra and missing rows)");
	cmp_ok($rows, '>=', $o{min_rows}, "$name: the oracle has at least $o{min_rows} rows")
	  if defined $o{min_rows};
	push @rechecks, [ $name, $view, $oracle ] if $o{recheck};
	return $ok;
}

sub log_since
{
	my ($pos) = @_;
	my $log = slurp_file($node->logfile);
	return substr($log, $pos);
}

# wait_until: KafkaCrash::wait_until (t/lib/KafkaCrash.pm)
sub wait_until { return KafkaCrash::wait_until(@_); }

my $clicks_cols = '(user_id int, url text, amount numeric, ts timestamptz)';

# ---------------------------------------------------------------------
# 1. json end to end
# ---------------------------------------------------------------------
my $nmal1;
subtest '1. json end to end: views, errors, offsets, stat_sources' => sub {
	sql(qq{
CREATE FOREIGN TABLE clicks1 $clicks_cols SERVER streamproc;
CREATE TABLE oracle1 $clicks_cols;
CREATE VIEW per_user1 WITH (continuous) AS
    SELECT user_id, count(*) AS n, sum(amount) AS total, avg(amount) AS mean, max(ts) AS last_ts
      FROM clicks1 GROUP BY user_id;
CREATE VIEW big1 WITH (continuous) AS
    SELECT user_id, url, amount, ts FROM clicks1 WHERE amount >= 900;
SELECT streamproc.create_kafka_source('src1', 'clicks1', 'json1', '$bs');
});
	# Produced while the source consumes.
	my %lg = (count => 20000, seed => 11, malformed => 0.02, duplicates => 0.01);
	loadgen(%lg, topic => 'json1', oracle => "$tmp/oracle1.csv",
		malformed_log => "$tmp/malformed1.log");
	sync_all();

	sql("COPY oracle1 FROM '$tmp/oracle1.csv' (FORMAT csv)");
	check_oracle('per_user1', 'SELECT * FROM per_user1',
		'SELECT user_id, count(*), sum(amount), avg(amount), max(ts) FROM oracle1 GROUP BY user_id',
		min_rows => 900, recheck => 1);
	check_oracle('big1 (append view)', 'SELECT * FROM big1',
		'SELECT * FROM oracle1 WHERE amount >= 900', min_rows => 100, recheck => 1);

	# The malformed messages, with their payloads from the same run on
	# stdout (same seed: same bytes).
	my @lines = split /\n/, loadgen(%lg);
	is(scalar(@lines), 20000, 'loadgen on stdout gives the same 20000 messages');
	my @mal = map { [ split /,/, $_, 2 ] } split /\n/, slurp_file("$tmp/malformed1.log");
	$nmal1 = scalar(@mal);
	cmp_ok($nmal1, '>', 300, "loadgen produced $nmal1 malformed messages");
	sql('CREATE TABLE malformed1 (seq int, reason text, payload text)');
	copy_rows('malformed1', [ map { [ $_->[0], $_->[1], $lines[ $_->[0] ] ] } @mal ]);
	is(dump_topic('json1', 'kafka1'), 20000, 'the topic holds 20000 messages');

	is(sql(q{SELECT count(*) FROM streamproc.errors WHERE source = 'src1'}),
		$nmal1, 'as many rows in streamproc.errors as malformed messages');
	is(sql(q{SELECT count(*) FROM streamproc.errors
	          WHERE source = 'src1' AND view IS NULL AND topic = 'json1'
	            AND partition BETWEEN 0 AND 3 AND "offset" >= 0
	            AND key ~ '^[0-9]+$' AND sqlstate ~ '^22' AND message <> ''
	            AND position = 'partition ' || partition || ' offset ' || "offset"}),
		$nmal1,
		'each with view NULL, topic, partition, offset, key, a data-exception SQLSTATE and a message');
	is(sql(q{SELECT count(DISTINCT (partition, "offset")) FROM streamproc.errors WHERE source = 'src1'}),
		$nmal1, 'each malformed message is recorded once');
	is(sql(q{SELECT count(*) FROM streamproc.errors e JOIN kafka1 k
	            ON (k.j->>'partition')::int = e.partition AND (k.j->>'offset')::bigint = e."offset"
	         WHERE e.source = 'src1' AND e.event = k.j->>'payload' AND e.key = k.j->>'key'}),
		$nmal1, 'each error holds the payload and key of the message at its partition and offset');
	check_oracle('the failed payloads of src1',
		q{SELECT event FROM streamproc.errors WHERE source = 'src1'},
		'SELECT payload FROM malformed1');
	diag('sqlstates of malformed messages: '
		  . sql(q{SELECT string_agg(reason || '=' || sqlstate, ' ' ORDER BY reason)
		            FROM (SELECT DISTINCT m.reason, e.sqlstate FROM streamproc.errors e
		                    JOIN malformed1 m ON m.payload = e.event WHERE e.source = 'src1') x}));

	# Offsets: the next offset of every partition is its end.
	is(sql(q{SELECT string_agg(partition || ':' || "offset", ' ' ORDER BY partition)
	           FROM streamproc.kafka_offsets WHERE source = 'src1' AND topic = 'json1'}),
		sql(q{SELECT string_agg(p || ':' || e, ' ' ORDER BY p)
	           FROM (SELECT (j->>'partition')::int AS p, max((j->>'offset')::bigint) + 1 AS e
	                   FROM kafka1 GROUP BY 1) x}),
		"kafka_offsets holds each partition's end offset");
	is(sql(q{SELECT sum("offset") FROM streamproc.kafka_offsets WHERE source = 'src1'}),
		20000, 'kafka_offsets adds up to the 20000 messages produced');

	is(sql(q{SELECT count(*) || ' ' || bool_and(state = 'running') || ' ' || sum(lag) || ' ' ||
	                sum(events) || ' ' || sum(committed_offset) || ' ' || sum(errors) || ' ' ||
	                bool_and(worker IS NOT NULL AND high_watermark IS NOT NULL)
	           FROM streamproc.stat_sources WHERE source = 'src1'}),
		"4 true 0 20000 20000 $nmal1 true",
		'stat_sources: 4 partitions running, lag 0, 20000 events, offsets, errors');
	# DDL elsewhere in the database makes the workers reload their catalog
	# (and recreate their consumers): the source's counters stay.
	sql(q{CREATE FOREIGN TABLE other1 (x int) SERVER streamproc;
	      CREATE VIEW other1_n WITH (continuous) AS SELECT count(*) FROM other1;
	      DROP FOREIGN TABLE other1 CASCADE});
	sql(q{SELECT streamproc.sync('60s')});
	is(sql(q{SELECT sum(events) || ' ' || bool_and(state = 'running')
	           FROM streamproc.stat_sources WHERE source = 'src1'}),
		'20000 true', 'stat_sources counters survive a catalog reload');
	is(sql(q{SELECT string_agg(view::text || ':' || errors, ' ' ORDER BY view::text)
	           FROM streamproc.stat_views WHERE stream = 'clicks1'::regclass}),
		'big1:0 per_user1:0', 'stat_views: parse errors belong to no view');
};

# ---------------------------------------------------------------------
# 2. csv and text
# ---------------------------------------------------------------------
subtest '2. csv and text formats' => sub {
	# csv, default dialect: loadgen's csv lines, produced with kcat
	my $csv = loadgen(count => 3000, seed => 21, format => 'csv', oracle => "$tmp/oracle2.csv");
	sql(qq{
CREATE FOREIGN TABLE clicks2 $clicks_cols SERVER streamproc;
CREATE TABLE oracle2 $clicks_cols;
CREATE VIEW per_url2 WITH (continuous) AS
    SELECT url, count(*) AS n, sum(amount) AS total, min(ts) AS first_ts, max(user_id) AS top_user
      FROM clicks2 GROUP BY url;
SELECT streamproc.create_kafka_source('src2', 'clicks2', 'csv2', '$bs', format => 'csv');
});
	produce('csv2', $csv);

	# text: COPY text format, written here with escapes, \N and empty strings
	my @names = (
		'plain', 'tab\\there', 'back\\\\slash', 'new\\nline',
		"caf\xc3\xa9", 'oct\\101', '\\\\N', 'semi;colon,comma "q" \'s\'');
	my $text = '';
	for my $i (1 .. 400)
	{
		$text .= join("\t",
			$i,
			$names[ $i % @names ],
			$i % 7 == 0 ? '\\N' : sprintf('%d.%02d', $i, $i % 100),
			$i % 3 == 0 ? '\\N' : $i % 5 == 0 ? '' : "note $i") . "\n";
	}
	my $text_path = spew('text2.txt', $text);
	sql(qq{
CREATE FOREIGN TABLE texts2 (id int, name text, amount numeric, note text) SERVER streamproc;
CREATE TABLE otext2 (id int, name text, amount numeric, note text);
CREATE VIEW text_rows2 WITH (continuous) AS SELECT id, name, amount, note FROM texts2;
CREATE VIEW text_names2 WITH (continuous) AS
    SELECT name, count(*) AS n, count(amount) AS amounts, sum(amount) AS total, count(note) AS notes
      FROM texts2 GROUP BY name;
SELECT streamproc.create_kafka_source('src2t', 'texts2', 'text2', '$bs', format => 'text');
});
	produce('text2', $text);

	# csv with delimiter ';' and quote "'"
	my @qnames = (
		'plain', q{'semi;colon'}, q{'it''s'}, q{"dq"}, q{''}, '',
		q{'multi ''q'' ;x'}, q{'a,b'});
	my $csvq = '';
	for my $i (1 .. 300)
	{
		$csvq .= join(';',
			$i,
			$qnames[ $i % @qnames ],
			$i % 11 == 0 ? '' : sprintf('%d.%02d', $i, $i % 100),
			$i % 4 == 0 ? q{''} : "n$i") . "\n";
	}
	my $csvq_path = spew('csvq2.csv', $csvq);
	sql(qq{
CREATE FOREIGN TABLE csvq2 (id int, name text, amount numeric, note text) SERVER streamproc;
CREATE TABLE ocsvq2 (id int, name text, amount numeric, note text);
CREATE VIEW csvq_rows2 WITH (continuous) AS SELECT id, name, amount, note FROM csvq2;
CREATE VIEW csvq_names2 WITH (continuous) AS
    SELECT name, count(*) AS n, sum(amount) AS total, count(note) AS notes FROM csvq2 GROUP BY name;
SELECT streamproc.create_kafka_source('src2q', 'csvq2', 'csvq2', '$bs', format => 'csv',
    format_options => '{"delimiter": ";", "quote": "''"}');
});
	produce('csvq2', $csvq);
	sync_all();

	sql("COPY oracle2 FROM '$tmp/oracle2.csv' (FORMAT csv)");
	check_oracle('per_url2 (csv)', 'SELECT * FROM per_url2',
		'SELECT url, count(*), sum(amount), min(ts), max(user_id) FROM oracle2 GROUP BY url',
		min_rows => 90, recheck => 1);

	sql("COPY otext2 FROM '$text_path' (FORMAT text)");
	check_oracle('text_rows2 (text)', 'SELECT * FROM text_rows2', 'SELECT * FROM otext2',
		min_rows => 400, recheck => 1);
	check_oracle('text_names2 (text)', 'SELECT * FROM text_names2',
		'SELECT name, count(*), count(amount), sum(amount), count(note) FROM otext2 GROUP BY name',
		min_rows => 8);
	is(sql(q{SELECT count(*) FILTER (WHERE name = E'tab\there') || ' ' ||
	                count(*) FILTER (WHERE name = 'back\slash') || ' ' ||
	                count(*) FILTER (WHERE name = '\N') || ' ' ||
	                count(*) FILTER (WHERE name = 'octA') || ' ' ||
	                count(*) FILTER (WHERE note = '') || ' ' ||
	                count(*) FILTER (WHERE note IS NULL)
	           FROM text_rows2}),
		'50 50 50 50 54 133', 'text escapes, \N and empty strings decoded');

	sql("COPY ocsvq2 FROM '$csvq_path' (FORMAT csv, DELIMITER ';', QUOTE '''')");
	check_oracle(q{csvq_rows2 (csv, ';' and "'")}, 'SELECT * FROM csvq_rows2',
		'SELECT * FROM ocsvq2', min_rows => 300, recheck => 1);
	check_oracle(q{csvq_names2 (csv, ';' and "'")}, 'SELECT * FROM csvq_names2',
		'SELECT name, count(*), sum(amount), count(note) FROM ocsvq2 GROUP BY name',
		min_rows => 8);
	is(sql(q{SELECT string_agg(coalesce(name, '<null>'), '|' ORDER BY id) FROM csvq_rows2 WHERE id <= 8}),
		q{semi;colon|it's|"dq"||<null>|multi 'q' ;x|a,b|plain},
		'quoting with \' and the ; delimiter');

	is(sql(q{SELECT count(*) FROM streamproc.errors WHERE source IN ('src2', 'src2t', 'src2q')}),
		'0', 'no errors for csv and text');
};

# ---------------------------------------------------------------------
# 3. Metadata columns
# ---------------------------------------------------------------------
subtest '3. metadata columns' => sub {
	sql(qq{
CREATE FOREIGN TABLE meta3 (v int, body text, kpart int, koff bigint, kkey text,
                            kts timestamptz, hdrs jsonb, trace text) SERVER streamproc;
CREATE VIEW meta_rows3 WITH (continuous) AS
    SELECT v, body, kpart, koff, kkey, kts, hdrs, trace FROM meta3;
SELECT streamproc.create_kafka_source('src3', 'meta3', 'meta3', '$bs',
    format_options => '{"metadata": {"partition": "kpart", "offset": "koff", "key": "kkey",
                                     "timestamp": "kts", "headers": "hdrs",
                                     "header:trace-id": "trace"}}');
});
	# Payload keys named like metadata columns are ignored.
	my $msg = sub {
		my ($v) = @_;
		return '{"v":' . $v . ',"body":"b' . $v . ' \\"q\\" \\\\ \\u0041 caf' . "\xc3\xa9"
		  . '","kpart":999,"koff":-1,"kkey":"from payload","hdrs":{"x":1},"trace":"payload"}';
	};
	my $t_before = sql('SELECT now()');
	produce('meta3', join('', map { "user-$_|" . $msg->($_) . "\n" } 1 .. 50),
		'-K', '|', '-H', 'trace-id=abc', '-H', 'env=test');
	produce('meta3', join('', map { "user-$_|" . $msg->($_) . "\n" } 51 .. 80),
		'-K', '|', '-H', 'trace-id=first', '-H', 'trace-id=xyz');
	produce('meta3', join('', map { $msg->($_) . "\n" } 81 .. 100));
	sync_all();
	my $t_after = sql('SELECT now()');

	is(dump_topic('meta3', 'kafka3'), 100, 'the topic holds 100 messages');
	check_oracle('meta_rows3', 'SELECT * FROM meta_rows3', q{
SELECT (p->>'v')::int, p->>'body', (j->>'partition')::int, (j->>'offset')::bigint, j->>'key',
       'epoch'::timestamptz + (j->>'ts')::bigint * interval '1 millisecond',
       h, h->>'trace-id'
  FROM (SELECT j, (j->>'payload')::json AS p,
               coalesce((SELECT jsonb_object_agg(j->'headers'->>(2 * i), j->'headers'->>(2 * i + 1) ORDER BY i)
                           FROM generate_series(0, jsonb_array_length(j->'headers') / 2 - 1) i),
                        '{}') AS h
          FROM kafka3) k}, min_rows => 100, recheck => 1);

	# The same facts by hand.
	is(sql(q{SELECT count(*) FROM meta_rows3 WHERE kpart IN (0, 1) AND koff >= 0 AND trace IS DISTINCT FROM 'payload'}),
		'100', 'partition and offset come from Kafka, not from the payload');
	is(sql(q{SELECT count(DISTINCT (kpart, koff)) FROM meta_rows3}), '100', 'positions are distinct');
	is(sql("SELECT count(*) FROM meta_rows3 WHERE kts BETWEEN '$t_before'::timestamptz - interval '5 s' AND '$t_after'"),
		'100', 'timestamps are the production times');
	is(sql(q{SELECT hdrs::text || ' ' || trace || ' ' || kkey FROM meta_rows3 WHERE v = 7}),
		'{"env": "test", "trace-id": "abc"} abc user-7', 'headers, one header and the key');
	is(sql(q{SELECT trace || ' ' || kkey FROM meta_rows3 WHERE v = 60}),
		'xyz user-60', 'a repeated header: the last value');
	is(sql(q{SELECT coalesce(kkey, '<null>') || ' ' || hdrs::text || ' ' || coalesce(trace, '<null>') FROM meta_rows3 WHERE v = 90}),
		'<null> {} <null>', 'no key and no headers: NULL key, empty headers, NULL header');
	is(sql(q{SELECT body FROM meta_rows3 WHERE v = 1}), qq{b1 "q" \\ A caf\xc3\xa9},
		'JSON string escapes decoded');
	is(sql(q{SELECT count(*) FROM streamproc.errors WHERE source = 'src3'}), '0', 'no errors');
};

# ---------------------------------------------------------------------
# 4. Bad values, NOT NULL, oversized messages
# ---------------------------------------------------------------------
subtest '4. per-message errors: bad value, NOT NULL, oversized' => sub {
	# Streams may have NOT NULL columns (sql/parse.sql, sql/streams.sql).
	sql(qq{
CREATE FOREIGN TABLE err4 (id int NOT NULL, amount numeric, note text) SERVER streamproc;
CREATE VIEW err_rows4 WITH (continuous) AS SELECT id, amount, note FROM err4;
CREATE VIEW err_sum4 WITH (continuous) AS SELECT count(*) AS n, sum(amount) AS total, max(id) AS top FROM err4;
CREATE TABLE err4_plain (id int NOT NULL, amount numeric, note text);
CREATE TABLE err4_msgs (off bigint, payload text);
-- The oracle: what PostgreSQL itself accepts, within the size limit
CREATE FUNCTION err4_try(p text, lim int) RETURNS boolean LANGUAGE plpgsql AS \$\$
BEGIN
    IF octet_length(p) > lim THEN RETURN false; END IF;
    INSERT INTO err4_plain SELECT * FROM json_populate_record(NULL::err4_plain, p::json);
    RETURN true;
EXCEPTION WHEN others THEN
    RETURN false;
END \$\$;
SELECT streamproc.create_kafka_source('src4', 'err4', 'err4', '$bs');
});
	my @msgs = map { sprintf('{"id":%d,"amount":%d.%02d,"note":"n%d"}', $_, $_, $_ % 100, $_) } 0 .. 199;
	my $big = '{"id":120,"amount":1,"note":"' . ('x' x 300) . '"}';
	my %bad = (
		13  => [ '{"id":13,"amount":"abc"}',          '22P02' ],
		50  => [ '{"amount":3.5,"note":"no id"}',     '23502' ],
		77  => [ '{"id":null,"amount":4}',            '23502' ],
		120 => [ $big,                                '54000' ],
		150 => [ '{"id":"15O","amount":2}',           '22P02' ],
		199 => [ '{"id":199,"amount":1e999999}',      '22003' ]);
	$msgs[$_] = $bad{$_}[0] for keys %bad;

	# A small streamproc.max_message_bytes, seen by the workers before
	# the messages arrive (reload, then a new session sees it, then sync).
	sql("ALTER SYSTEM SET streamproc.max_message_bytes = 200; SELECT pg_reload_conf();");
	$node->poll_query_until('postgres',
		q{SELECT setting = '200' FROM pg_settings WHERE name = 'streamproc.max_message_bytes'})
	  or die 'the new streamproc.max_message_bytes was not loaded';
	sync_all();

	produce('err4', join('', map { "$_\n" } @msgs));
	sync_all();
	copy_rows('err4_msgs', [ map { [ $_, $msgs[$_] ] } 0 .. $#msgs ]);
	sql('CREATE TABLE err4_bad AS SELECT off FROM (SELECT off, err4_try(payload, 200) AS ok FROM err4_msgs ORDER BY off) s WHERE NOT ok');
	is(sql('SELECT string_agg(off::text, \',\' ORDER BY off) FROM err4_bad'),
		join(',', sort { $a <=> $b } keys %bad), 'the oracle rejects the six bad messages');

	check_oracle('err_rows4', 'SELECT * FROM err_rows4', 'SELECT * FROM err4_plain',
		min_rows => 194, recheck => 1);
	check_oracle('err_sum4', 'SELECT * FROM err_sum4',
		'SELECT count(*), sum(amount), max(id) FROM err4_plain', recheck => 1);
	check_oracle('the failed offsets of src4',
		q{SELECT "offset" FROM streamproc.errors WHERE source = 'src4'},
		'SELECT off FROM err4_bad');
	is(sql(q{SELECT string_agg("offset" || ':' || sqlstate, ',' ORDER BY "offset") FROM streamproc.errors
	          WHERE source = 'src4' AND view IS NULL AND topic = 'err4' AND partition = 0}),
		join(',', map { "$_:$bad{$_}[1]" } sort { $a <=> $b } keys %bad),
		'each bad message once, as a parse error (view NULL), with its SQLSTATE');
	is(sql(q{SELECT count(*) FROM streamproc.errors e JOIN err4_msgs m ON m.off = e."offset"
	          WHERE e.source = 'src4' AND e.event = m.payload}),
		'6', 'each error holds its payload');
	diag('errors of src4: ' . sql(q{SELECT string_agg("offset" || ': ' || message, ' | ' ORDER BY "offset")
	                                  FROM streamproc.errors WHERE source = 'src4'}));

	# Back to the default: the same big message is accepted now.
	sql("ALTER SYSTEM RESET streamproc.max_message_bytes; SELECT pg_reload_conf();");
	$node->poll_query_until('postgres',
		q{SELECT setting = '1048576' FROM pg_settings WHERE name = 'streamproc.max_message_bytes'})
	  or die 'the default streamproc.max_message_bytes was not loaded';
	sync_all();
	produce('err4', "$big\n");
	sync_all();
	copy_rows('err4_msgs', [ [ 200, $big ] ]);
	is(sql('SELECT err4_try(payload, 1048576) FROM err4_msgs WHERE off = 200'), 't',
		'the oracle accepts the big message without the limit');
	check_oracle('err_rows4 after the limit was reset', 'SELECT * FROM err_rows4',
		'SELECT * FROM err4_plain', min_rows => 195);
	is(sql(q{SELECT count(*) FROM streamproc.errors WHERE source = 'src4'}), '6',
		'no new error after the limit was reset');
};

# ---------------------------------------------------------------------
# 5. A view expression that fails for some events
# ---------------------------------------------------------------------
subtest '5. view expression failing for some events' => sub {
	sql(qq{
CREATE FOREIGN TABLE clicks5 $clicks_cols SERVER streamproc;
CREATE TABLE oracle5 $clicks_cols;
CREATE VIEW div5 WITH (continuous) AS
    SELECT user_id, count(*) AS n, sum(100 / ((amount * 100)::int % 7)) AS s FROM clicks5 GROUP BY user_id;
CREATE VIEW all5 WITH (continuous) AS
    SELECT user_id, count(*) AS n, sum(amount) AS total FROM clicks5 GROUP BY user_id;
CREATE VIEW divrows5 WITH (continuous) AS
    SELECT user_id, url, amount, 100 / ((amount * 100)::int % 7) AS q FROM clicks5 WHERE amount > 500;
SELECT streamproc.create_kafka_source('src5', 'clicks5', 'expr5', '$bs');
});
	loadgen(topic => 'expr5', count => 5000, seed => 51, oracle => "$tmp/oracle5.csv");
	sync_all();
	sql("COPY oracle5 FROM '$tmp/oracle5.csv' (FORMAT csv)");
	is(dump_topic('expr5', 'kafka5'), 5000, 'the topic holds 5000 messages');

	check_oracle('div5', 'SELECT * FROM div5',
		'SELECT user_id, count(*), sum(100 / ((amount * 100)::int % 7)) FROM oracle5
		  WHERE (amount * 100)::int % 7 <> 0 GROUP BY user_id', min_rows => 900, recheck => 1);
	check_oracle('all5', 'SELECT * FROM all5',
		'SELECT user_id, count(*), sum(amount) FROM oracle5 GROUP BY user_id', recheck => 1);
	check_oracle('divrows5 (append view)', 'SELECT * FROM divrows5',
		'SELECT user_id, url, amount, 100 / ((amount * 100)::int % 7) FROM oracle5
		  WHERE amount > 500 AND (amount * 100)::int % 7 <> 0', min_rows => 1000, recheck => 1);

	my $pos = q{SELECT (j->>'partition')::int, (j->>'offset')::bigint FROM kafka5
	             WHERE (((j->>'payload')::json->>'amount')::numeric * 100)::int % 7 = 0};
	check_oracle('the positions of the errors of div5',
		q{SELECT partition, "offset" FROM streamproc.errors WHERE source = 'src5' AND view = 'div5'::regclass},
		$pos, min_rows => 500);
	check_oracle('the positions of the errors of divrows5',
		q{SELECT partition, "offset" FROM streamproc.errors WHERE source = 'src5' AND view = 'divrows5'::regclass},
		$pos . q{ AND ((j->>'payload')::json->>'amount')::numeric > 500}, min_rows => 250);
	is(sql(q{SELECT count(*) FILTER (WHERE view IS NULL OR view = 'all5'::regclass) || ' ' ||
	                count(*) FILTER (WHERE sqlstate <> '22012' OR topic <> 'expr5')
	           FROM streamproc.errors WHERE source = 'src5'}),
		'0 0', 'no parse errors, none for all5, all division by zero');
	is(sql(q{SELECT bool_and(((event::json->>'amount')::numeric * 100)::int % 7 = 0)
	           FROM streamproc.errors WHERE source = 'src5' AND view = 'div5'::regclass}),
		't', 'the errors of div5 hold the failing events');
	# Append views fail at the checkpoint, when the payload is gone
	# (src/worker.c, checkpoint_pending_rows): the parsed row stands for
	# the event, and it is the failing one.
	is(sql(q{SELECT count(*) FILTER (WHERE event IS NULL) || ' ' ||
	                count(*) FILTER (WHERE ((event::json->>'amount')::numeric * 100)::int % 7 <> 0)
	           FROM streamproc.errors WHERE view = 'divrows5'::regclass}),
		'0 0', 'the errors of divrows5 (append view) hold the failing rows as JSON');
	is(sql(q{SELECT string_agg(view::text || ':' || errors, ' ' ORDER BY view::text)
	           FROM streamproc.stat_views WHERE stream = 'clicks5'::regclass}),
		sql(q{SELECT 'all5:0 div5:' || count(*) || ' divrows5:' || count(*) FILTER (WHERE amount > 500)
	           FROM oracle5 WHERE (amount * 100)::int % 7 = 0}),
		'stat_views counts the errors per view');
};

# ---------------------------------------------------------------------
# 7. Pause and resume
# ---------------------------------------------------------------------
subtest '7. pause_source and resume_source' => sub {
	sql(qq{
CREATE FOREIGN TABLE clicks7 $clicks_cols SERVER streamproc;
CREATE TABLE oracle7 $clicks_cols;
CREATE VIEW per_user7 WITH (continuous) AS
    SELECT user_id, count(*) AS n, sum(amount) AS total FROM clicks7 GROUP BY user_id;
SELECT streamproc.create_kafka_source('src7', 'clicks7', 'pause7', '$bs');
});
	my $oracle = 'SELECT user_id, count(*), sum(amount) FROM oracle7 GROUP BY user_id';
	loadgen(topic => 'pause7', count => 2000, seed => 71, oracle => "$tmp/oracle7a.csv");
	sync_all();
	sql("COPY oracle7 FROM '$tmp/oracle7a.csv' (FORMAT csv)");
	check_oracle('per_user7 before the pause', 'SELECT * FROM per_user7', $oracle, min_rows => 800);

	sql(q{SELECT streamproc.pause_source('src7')});
	# The consumer stops (its statistics entries go)
	ok($node->poll_query_until('postgres',
			q{SELECT count(*) = 0 FROM streamproc._source_stats() WHERE source = 'src7'}),
		'the consumer of the paused source stopped');
	is(sql(q{SELECT count(*) || ' ' || bool_and(state = 'paused') || ' ' || sum(committed_offset)
	           FROM streamproc.stat_sources WHERE source = 'src7'}),
		'2 true 2000', "stat_sources shows both partitions 'paused' with their offsets");
	sql('CREATE TABLE snap7 AS SELECT * FROM per_user7');
	my $offsets = sql(q{SELECT string_agg(partition || ':' || "offset", ' ' ORDER BY partition)
	                      FROM streamproc.kafka_offsets WHERE source = 'src7'});

	loadgen(topic => 'pause7', count => 1000, seed => 72, oracle => "$tmp/oracle7b.csv");
	my $t0 = time();
	sync_all();
	cmp_ok(time() - $t0, '<', 10, 'sync() returns while the source is paused');
	check_oracle('per_user7 while paused (unchanged)', 'SELECT * FROM per_user7', 'SELECT * FROM snap7');
	is(sql(q{SELECT string_agg(partition || ':' || "offset", ' ' ORDER BY partition)
	           FROM streamproc.kafka_offsets WHERE source = 'src7'}),
		$offsets, 'kafka_offsets unchanged while paused');
	is(sql(q{SELECT count(*) || ' ' || bool_and(state = 'paused') FROM streamproc.stat_sources WHERE source = 'src7'}),
		'2 true', "still 'paused'");

	sql(q{SELECT streamproc.resume_source('src7')});
	sync_all();
	sql("COPY oracle7 FROM '$tmp/oracle7b.csv' (FORMAT csv)");
	check_oracle('per_user7 after resume', 'SELECT * FROM per_user7', $oracle, recheck => 1);
	is(sql(q{SELECT count(*) || ' ' || bool_and(state = 'running') || ' ' || sum(lag) || ' ' || sum(committed_offset)
	           FROM streamproc.stat_sources WHERE source = 'src7'}),
		'2 true 0 3000', 'running again, lag 0, all 3000 messages committed');
};

# ---------------------------------------------------------------------
# 12. group_id
subtest '12. group_id: offsets also committed to Kafka' => sub {
	sql(qq{
CREATE FOREIGN TABLE clicks12 $clicks_cols SERVER streamproc;
CREATE VIEW n12 WITH (continuous) AS SELECT count(*) AS n FROM clicks12;
SELECT streamproc.create_kafka_source('src12', 'clicks12', 'group12', '$bs',
                                      group_id => 'lagtools12');
});
	loadgen(topic => 'group12', count => 1000, seed => 121);
	sync_all();
	is(sql('SELECT n FROM n12'), '1000', 'the source consumed 1000 messages');

	# Paused, the source consumes and commits nothing more: a consumer
	# starting at the group's committed offsets must read exactly the 300
	# messages produced after the pause.  kcat reads the group's offsets
	# without joining the group (-o stored, not -G): librdkafka 2.0.2's mock
	# cluster aborts (rd_kafka_mock_cgrp_member_sync_set) when consumers
	# join a group again and again, as this poll would make them.  The
	# commit to Kafka is asynchronous (after the database commit): poll.
	sql(q{SELECT streamproc.pause_source('src12')});
	ok($node->poll_query_until('postgres',
			q{SELECT count(*) = 0 FROM streamproc._source_stats() WHERE source = 'src12'}),
		'the consumer of the paused source stopped');
	loadgen(topic => 'group12', count => 300, seed => 122);
	my $got;
	my $took = wait_until(
		sub {
			my ($rc, $out, $err) = run_cmd(
				[
					$kcat, '-C', '-b', $bs, '-t', 'group12', '-o', 'stored', '-e', '-q',
					'-X', 'group.id=lagtools12', '-X', 'enable.auto.commit=false',
					'-X', 'auto.offset.reset=latest', '-f', '%o\n', @kcat_opts
				],
				timeout => 30);
			$got = ($rc == 0) ? scalar(() = $out =~ /\n/g) : "kcat failed: $err";
			return $got eq '300';
		},
		60);
	ok(defined $took, "a consumer at the offsets of group_id 'lagtools12' starts where the source is (read $got)");
	sql(q{SELECT streamproc.drop_kafka_source('src12')});
};

# ---------------------------------------------------------------------
# 8. start_offset
# ---------------------------------------------------------------------
subtest '8. start_offset variants' => sub {
	my $view = sub {
		my ($n) = @_;
		sql(qq{
CREATE FOREIGN TABLE clicks$n $clicks_cols SERVER streamproc;
CREATE TABLE oracle$n $clicks_cols;
CREATE VIEW per_user$n WITH (continuous) AS
    SELECT user_id, count(*) AS n, sum(amount) AS total FROM clicks$n GROUP BY user_id;
CREATE VIEW total$n WITH (continuous) AS SELECT count(*) AS n FROM clicks$n;
});
	};

	# latest: what is in the topic when the partitions are first seen is
	# skipped; wait for the resolved start offsets before producing.
	loadgen(topic => 'latest8', count => 1000, seed => 81);
	$view->('8a');
	sql(qq{SELECT streamproc.create_kafka_source('src8a', 'clicks8a', 'latest8', '$bs', start_offset => 'latest')});
	ok($node->poll_query_until('postgres',
			q{SELECT count(*) = 2 FROM streamproc.kafka_offsets WHERE source = 'src8a'}),
		'latest: start offsets resolved');
	is(sql(q{SELECT sum("offset") FROM streamproc.kafka_offsets WHERE source = 'src8a'}), '1000',
		'latest: the start offsets are the ends of the partitions');
	loadgen(topic => 'latest8', count => 500, seed => 82, oracle => "$tmp/oracle8a.csv");
	sync_all();
	sql("COPY oracle8a FROM '$tmp/oracle8a.csv' (FORMAT csv)");
	is(sql('SELECT n FROM total8a'), '500', 'latest: exactly the 500 later messages');
	check_oracle('per_user8a (latest)', 'SELECT * FROM per_user8a',
		'SELECT user_id, count(*), sum(amount) FROM oracle8a GROUP BY user_id', recheck => 1);

	# Per-partition offsets on 4 partitions; unlisted partitions start at
	# the beginning.  The oracle reads the topic back.
	loadgen(topic => 'offsets8', count => 2000, seed => 83);
	is(dump_topic('offsets8', 'kafka8b'), 2000, 'offsets: the topic holds 2000 messages');
	$view->('8b');
	sql(qq{SELECT streamproc.create_kafka_source('src8b', 'clicks8b', 'offsets8', '$bs',
	           start_offset => '{"0": 5, "2": 10}')});
	sync_all();
	my $kept = q{FROM (SELECT (j->>'payload')::json AS p, (j->>'partition')::int AS part,
	                          (j->>'offset')::bigint AS off FROM kafka8b) k
	              WHERE NOT ((part = 0 AND off < 5) OR (part = 2 AND off < 10))};
	is(sql('SELECT n FROM total8b'), sql("SELECT count(*) $kept"),
		'offsets: the messages at or after the given offsets');
	is(sql('SELECT n FROM total8b'), '1985', 'offsets: 2000 - 5 - 10 messages');
	check_oracle('per_user8b (per-partition offsets)', 'SELECT * FROM per_user8b',
		"SELECT (p->>'user_id')::int, count(*), sum((p->>'amount')::numeric) $kept GROUP BY 1",
		recheck => 1);

	# Per-partition offsets on 1 partition: offsets are sequence numbers.
	loadgen(topic => 'seq8', count => 100, seed => 84, oracle => "$tmp/oracle8c.csv");
	sql(qq{
CREATE FOREIGN TABLE clicks8c $clicks_cols SERVER streamproc;
CREATE TABLE oracle8c (user_id int, url text, amount numeric, ts timestamptz,
                       seq bigint GENERATED ALWAYS AS IDENTITY (MINVALUE 0 START 0));
CREATE VIEW rows8c WITH (continuous) AS SELECT user_id, url, amount, ts FROM clicks8c;
SELECT streamproc.create_kafka_source('src8c', 'clicks8c', 'seq8', '$bs', start_offset => '{"0": 37}');
COPY oracle8c (user_id, url, amount, ts) FROM '$tmp/oracle8c.csv' (FORMAT csv);
});
	sync_all();
	check_oracle('rows8c (offset 37 of 100)', 'SELECT * FROM rows8c',
		'SELECT user_id, url, amount, ts FROM oracle8c WHERE seq >= 37', min_rows => 63, recheck => 1);
	is(sql('SELECT count(*) FROM rows8c'), '63', 'offset 37 of 100: 63 messages');

	# A timestamp in the future: the end of each partition, like latest.
	loadgen(topic => 'future8', count => 300, seed => 85);
	$view->('8d');
	sql(qq{SELECT streamproc.create_kafka_source('src8d', 'clicks8d', 'future8', '$bs',
	           start_offset => '2100-01-01 00:00:00+00')});
	ok($node->poll_query_until('postgres',
			q{SELECT count(*) = 2 FROM streamproc.kafka_offsets WHERE source = 'src8d'}),
		'future timestamp: start offsets resolved');
	is(sql(q{SELECT sum("offset") FROM streamproc.kafka_offsets WHERE source = 'src8d'}), '300',
		'future timestamp: the start offsets are the ends of the partitions');
	loadgen(topic => 'future8', count => 200, seed => 86, oracle => "$tmp/oracle8d.csv");
	sync_all();
	sql("COPY oracle8d FROM '$tmp/oracle8d.csv' (FORMAT csv)");
	is(sql('SELECT n FROM total8d'), '200', 'future timestamp: exactly the 200 later messages');
	check_oracle('per_user8d (future timestamp)', 'SELECT * FROM per_user8d',
		'SELECT user_id, count(*), sum(amount) FROM oracle8d GROUP BY user_id', recheck => 1);

	is(sql(q{SELECT count(*) FROM streamproc.errors WHERE source LIKE 'src8%'}), '0', 'no errors');
};

# ---------------------------------------------------------------------
# 9. Dropping sources and streams while producing
# ---------------------------------------------------------------------
subtest '9. drop_kafka_source while producing; DROP FOREIGN TABLE' => sub {
	sql(qq{
CREATE FOREIGN TABLE clicks9 $clicks_cols SERVER streamproc;
CREATE VIEW total9 WITH (continuous) AS SELECT count(*) AS n FROM clicks9;
SELECT streamproc.create_kafka_source('src9', 'clicks9', 'drop9', '$bs');
CREATE FOREIGN TABLE clicks9c $clicks_cols SERVER streamproc;
CREATE VIEW total9c WITH (continuous) AS SELECT count(*) AS n FROM clicks9c;
SELECT streamproc.create_kafka_source('src9c', 'clicks9c', 'drop9', '$bs');
CREATE FOREIGN TABLE clicks9b $clicks_cols SERVER streamproc;
SELECT streamproc.create_kafka_source('src9b', 'clicks9b', 'drop9b', '$bs');
});
	my $logpos = length(slurp_file($node->logfile));

	# Unbounded producer, stopped at the end
	my ($lin, $lout, $lerr) = ('', '', '');
	my $producer = IPC::Run::start(
		loadgen_args(topic => 'drop9', count => 0, rate => 2000, seed => 91),
		'<', \$lin, '>', \$lout, '2>', \$lerr, IPC::Run::timeout(120));
	ok($node->poll_query_until('postgres',
			q{SELECT coalesce((SELECT n FROM total9), 0) > 0 AND coalesce((SELECT n FROM total9c), 0) > 0}),
		'both sources consume the live topic');

	my $stats = sub {
		my ($src) = @_;
		return sql("SELECT count(*) FROM streamproc._source_stats() WHERE source = '$src'");
	};
	isnt($stats->('src9'), '0', 'src9 has a consumer');

	# A stopped source's consumer goes within a second; sanitizer builds
	# (scripts/run-tests --sanitize) are slower and scale the bound.
	my $stop_bound = 1.0 * ($ENV{STREAMPROC_TEST_TIME_SCALE} // 1);

	sql(q{SELECT streamproc.drop_kafka_source('src9')});
	my $t0 = time();
	is(sql(q{SELECT count(*) FROM streamproc.kafka_offsets WHERE source = 'src9'}) . ' '
		  . sql(q{SELECT count(*) FROM streamproc.stat_sources WHERE source = 'src9'}),
		'0 0', 'the offsets and the stat_sources rows of src9 are gone');
	my $took = wait_until(sub { $stats->('src9') eq '0' }, 30);
	$took = time() - $t0 if defined $took;
	ok(defined $took && $took <= $stop_bound,
		sprintf('the consumer of src9 stopped within %g s (%s s)', $stop_bound,
			defined $took ? sprintf('%.2f', $took) : 'not after 30'));
	sync_all();
	my $n1 = sql('SELECT n FROM total9');
	my $c1 = sql('SELECT n FROM total9c');
	# An observation window while messages keep coming (not a barrier)
	sleep(1);
	sync_all();
	is(sql('SELECT n FROM total9'), $n1, 'nothing more reaches the view of the dropped source');
	cmp_ok(sql('SELECT n FROM total9c'), '>', $c1, 'the other source of the topic goes on');

	# DROP FOREIGN TABLE of a stream that a source reads into
	my ($rc, $out, $err) = $node->psql('postgres', 'DROP FOREIGN TABLE clicks9b');
	isnt($rc, 0, 'DROP FOREIGN TABLE of a stream with a source fails');
	like($err, qr/cannot drop stream "clicks9b" because Kafka source "src9b" reads into it/,
		'... saying which source');
	like($err, qr/HINT:.*drop_kafka_source\(\).*CASCADE/, '... and what to do');
	is(sql(q{SELECT count(*) FROM streamproc.sources WHERE name = 'src9b'}), '1', 'src9b is still there');

	# CASCADE, while the producer runs
	($rc, $out, $err) = $node->psql('postgres', 'DROP FOREIGN TABLE clicks9c CASCADE');
	$t0 = time();
	is($rc, 0, 'DROP FOREIGN TABLE ... CASCADE of a stream with a running source');
	like($err, qr/drop cascades to Kafka source "src9c"/, '... says that the source goes');
	is(sql(q{SELECT count(*) FROM streamproc.sources WHERE name = 'src9c'}) . ' '
		  . sql(q{SELECT count(*) FROM streamproc.kafka_offsets WHERE source = 'src9c'}) . ' '
		  . sql(q{SELECT to_regclass('total9c') IS NULL}),
		'0 0 t', 'the source, its offsets and the view are gone');
	$took = wait_until(sub { $stats->('src9c') eq '0' }, 30);
	$took = time() - $t0 if defined $took;
	ok(defined $took && $took <= $stop_bound,
		sprintf('the consumer of src9c stopped within %g s (%s s)', $stop_bound,
			defined $took ? sprintf('%.2f', $took) : 'not after 30'));
	($rc, $out, $err) = $node->psql('postgres', 'DROP FOREIGN TABLE clicks9b CASCADE');
	$t0 = time();
	is($rc, 0, 'DROP FOREIGN TABLE ... CASCADE of a stream with an idle source');
	like($err, qr/drop cascades to Kafka source "src9b"/, '... says that the source goes');
	is(sql(q{SELECT count(*) FROM streamproc.sources WHERE name = 'src9b'}) . ' '
		  . sql(q{SELECT count(*) FROM streamproc.kafka_offsets WHERE source = 'src9b'}),
		'0 0', 'src9b and its offsets are gone');
	$took = wait_until(sub { $stats->('src9b') eq '0' }, 30);
	$took = time() - $t0 if defined $took;
	ok(defined $took && $took <= $stop_bound,
		sprintf('the consumer of src9b stopped within %g s (%s s)', $stop_bound,
			defined $took ? sprintf('%.2f', $took) : 'not after 30'));
	sync_all();

	$producer->signal('TERM');
	my $pok = eval { $producer->finish; 1 };
	ok($pok && $producer->result(0) == 0, 'the producer stopped cleanly') or diag($lerr);

	my @alarming = grep { /\b(WARNING|ERROR|FATAL|PANIC):|terminated by signal|TRAP:/ }
	  split /\n/, log_since($logpos);
	# Our own failing DROP is expected.
	@alarming = grep { !/cannot drop stream "clicks9b"|STATEMENT:\s+DROP FOREIGN TABLE clicks9b$/ } @alarming;
	is(join("\n", @alarming), '', 'the server log says nothing alarming about the drops');
	# What the workers (not our sessions) said about the dropped sources
	my @worker_lines = grep { /src9/ && !/080_kafka_source/ } split /\n/, log_since($logpos);
	diag("worker log lines about src9*:\n" . join("\n", @worker_lines)) if @worker_lines;
};

# ---------------------------------------------------------------------
# 10. Credentials
# ---------------------------------------------------------------------
subtest '10. credentials' => sub {
	sql(qq{
CREATE ROLE reader10 LOGIN;
CREATE FOREIGN TABLE clicks10 $clicks_cols SERVER streamproc;
CREATE TABLE oracle10 $clicks_cols;
CREATE VIEW per_user10 WITH (continuous) AS
    SELECT user_id, count(*) AS n, sum(amount) AS total FROM clicks10 GROUP BY user_id;
});
	# PostgreSQL::Test::Cluster logs every statement; keep this one out
	# (statement logging is the server's, not the extension's).
	sql(qq{SET log_statement = 'none';
SELECT streamproc.create_kafka_source('src10', 'clicks10', 'cred10', '$bs',
    options => '{"sasl.password": "hunter2", "security.protocol": "plaintext"}');});
	loadgen(topic => 'cred10', count => 500, seed => 101, oracle => "$tmp/oracle10.csv");
	sync_all();
	sql("COPY oracle10 FROM '$tmp/oracle10.csv' (FORMAT csv)");
	check_oracle('per_user10 (source with a password option)', 'SELECT * FROM per_user10',
		'SELECT user_id, count(*), sum(amount) FROM oracle10 GROUP BY user_id', recheck => 1);

	my @as_reader = (extra_params => [ '-U', 'reader10' ]);
	my ($rc, $out, $err) = $node->psql('postgres',
		q{SELECT options FROM streamproc.kafka_sources WHERE name = 'src10'}, @as_reader);
	is($out, '{"sasl.password": "********", "security.protocol": "plaintext"}',
		'a non-superuser sees the password masked in kafka_sources');
	($rc, $out, $err) = $node->psql('postgres', 'SELECT * FROM streamproc.sources', @as_reader);
	like($err, qr/permission denied for table sources/,
		'a non-superuser gets permission denied on streamproc.sources');
	($rc, $out, $err) = $node->psql('postgres',
		q{SELECT s::text FROM streamproc.stat_sources s WHERE source = 'src10'}, @as_reader);
	like($out, qr/src10/, 'a non-superuser sees the stat_sources row');
	unlike($out, qr/hunter2/, '... without the password');

	# (spelled backwards in queries: statements are logged)
	is(sql(q{SELECT count(*) FROM streamproc.stat_sources s WHERE strpos(s::text, reverse('2retnuh')) > 0}) . ' '
		  . sql(q{SELECT count(*) FROM streamproc.errors e WHERE strpos(e::text, reverse('2retnuh')) > 0}) . ' '
		  . sql(q{SELECT count(*) FROM streamproc.kafka_sources k WHERE strpos(k::text, reverse('2retnuh')) > 0}),
		'0 0 0', 'the password is in none of stat_sources, errors, kafka_sources');
	is(sql(q{SELECT count(*) FROM streamproc.sources WHERE options->>'sasl.password' = reverse('2retnuh')}),
		'1', '... while streamproc.sources holds it');
	is(join("\n", grep { /hunter2/ } split /\n/, slurp_file($node->logfile)), '',
		'the password is not in the server log');
};

# ---------------------------------------------------------------------
# 11. Partitions added later
# ---------------------------------------------------------------------
SKIP:
{
	skip 'partitions added to a topic later: the devbroker (librdkafka 2.0.2 mock cluster) '
	  . 'cannot add partitions to an existing topic (no CreatePartitions, no mock API, '
	  . 'see tools/devbroker/README.md, Limits)', 1;
}

# ---------------------------------------------------------------------
# 6. Restarts: fast and immediate, producing while down / while consuming
# ---------------------------------------------------------------------
subtest '6. restart resume: fast and immediate' => sub {
	sql(qq{
CREATE FOREIGN TABLE clicks6 $clicks_cols SERVER streamproc;
CREATE TABLE oracle6 $clicks_cols;
CREATE VIEW per_user6 WITH (continuous) AS
    SELECT user_id, count(*) AS n, sum(amount) AS total, avg(amount) AS mean FROM clicks6 GROUP BY user_id;
CREATE VIEW big6 WITH (continuous) AS SELECT user_id, url, amount, ts FROM clicks6 WHERE amount >= 950;
CREATE VIEW div6 WITH (continuous) AS
    SELECT url, count(*) AS n, sum(100 / ((amount * 100)::int % 7)) AS s FROM clicks6 GROUP BY url;
SELECT streamproc.create_kafka_source('src6', 'clicks6', 'restart6', '$bs');
});
	my $nmal = 0;
	my $check = sub {
		my ($when) = @_;
		check_oracle("per_user6 $when", 'SELECT * FROM per_user6',
			'SELECT user_id, count(*), sum(amount), avg(amount) FROM oracle6 GROUP BY user_id');
		check_oracle("big6 $when", 'SELECT * FROM big6',
			'SELECT * FROM oracle6 WHERE amount >= 950');
		check_oracle("div6 $when", 'SELECT * FROM div6',
			'SELECT url, count(*), sum(100 / ((amount * 100)::int % 7)) FROM oracle6
			  WHERE (amount * 100)::int % 7 <> 0 GROUP BY url');
		# Failed events: each once, whatever was replayed
		is(sql(q{SELECT count(*) FILTER (WHERE view IS NULL) || ' ' ||
		                count(DISTINCT (partition, "offset")) FILTER (WHERE view IS NULL) || ' ' ||
		                count(*) FILTER (WHERE view = 'div6'::regclass) || ' ' ||
		                count(DISTINCT (partition, "offset")) FILTER (WHERE view = 'div6'::regclass) || ' ' ||
		                count(*) FILTER (WHERE view IS NOT NULL AND view <> 'div6'::regclass)
		           FROM streamproc.errors WHERE source = 'src6'}),
			sql("SELECT '$nmal $nmal ' || count(*) || ' ' || count(*) || ' 0' FROM oracle6 WHERE (amount * 100)::int % 7 = 0"),
			"errors of src6 $when: each malformed message and each division by zero once");
	};
	my $batch = sub {
		my ($seed, %o) = @_;
		return (topic => 'restart6', count => 5000, seed => $seed, malformed => 0.01,
			oracle => "$tmp/oracle6-$seed.csv", malformed_log => "$tmp/malformed6-$seed.log", %o);
	};
	my $loaded = sub {
		my ($seed) = @_;
		sql("COPY oracle6 FROM '$tmp/oracle6-$seed.csv' (FORMAT csv)");
		$nmal += scalar(split /\n/, slurp_file("$tmp/malformed6-$seed.log"));
	};
	loadgen($batch->(61, duplicates => 0.02));
	sync_all();
	$loaded->(61);
	$check->('before the restarts');

	# A source paused across the restarts stays paused.
	sql(q{SELECT streamproc.pause_source('src7')});
	ok($node->poll_query_until('postgres',
			q{SELECT count(*) = 0 FROM streamproc._source_stats() WHERE source = 'src7'}),
		'src7 paused');
	sql('CREATE TABLE snap7b AS SELECT * FROM per_user7');
	loadgen(topic => 'pause7', count => 500, seed => 73, oracle => "$tmp/oracle7c.csv");

	# Fast stop; messages produced while the server is down
	$node->stop('fast');
	loadgen($batch->(62));
	$node->start;
	sync_all();
	$loaded->(62);
	$check->('after a fast restart');
	is(sql(q{SELECT sum("offset") FROM streamproc.kafka_offsets WHERE source = 'src6'}), '10000',
		'offsets after a fast restart');

	# Immediate stop while consuming
	my ($lin, $lout, $lerr) = ('', '', '');
	my $producer = IPC::Run::start(loadgen_args($batch->(63, count => 30000, rate => 10000)),
		'<', \$lin, '>', \$lout, '2>', \$lerr, IPC::Run::timeout(120));
	ok($node->poll_query_until('postgres', 'SELECT sum(n) > 15000 FROM per_user6'),
		'consuming the third batch');
	my $seen = sql('SELECT sum(n) FROM per_user6');
	$node->stop('immediate');
	my $pok = eval { $producer->finish; 1 };
	ok($pok && $producer->result(0) == 0, 'the producer finished') or diag($lerr);
	$node->start;
	diag("immediate stop: the view had seen $seen well-formed events; offsets committed then: "
		  . sql(q{SELECT sum("offset") FROM streamproc.kafka_offsets WHERE source = 'src6'})
		  . ' of 40000 messages');
	sync_all();
	$loaded->(63);
	$check->('after an immediate stop while consuming');
	is(sql(q{SELECT sum("offset") FROM streamproc.kafka_offsets WHERE source = 'src6'}), '40000',
		'offsets after an immediate restart');
	is(sql(q{SELECT count(*) || ' ' || bool_and(state = 'running') || ' ' || sum(lag)
	           FROM streamproc.stat_sources WHERE source = 'src6'}),
		'4 true 0', 'stat_sources after the restarts');

	# Everything else survived the restarts, nothing counted twice
	for my $c (@rechecks)
	{
		check_oracle("$c->[0] after the restarts", $c->[1], $c->[2]);
	}
	is(sql(q{SELECT count(*) FROM streamproc.errors WHERE source = 'src1'}), $nmal1,
		'the malformed messages of src1 are still recorded once');
	is(sql(q{SELECT count(*) FROM streamproc.errors WHERE source = 'src4'}), '6',
		'the bad messages of src4 are still recorded once');

	# The paused source: unchanged, still paused; then resumed
	check_oracle('per_user7 paused across the restarts', 'SELECT * FROM per_user7', 'SELECT * FROM snap7b');
	is(sql(q{SELECT count(*) || ' ' || bool_and(state = 'paused') || ' ' || sum(committed_offset)
	           FROM streamproc.stat_sources WHERE source = 'src7'}),
		'2 true 3000', 'src7 is still paused after the restarts');
	sql(q{SELECT streamproc.resume_source('src7')});
	sync_all();
	sql("COPY oracle7 FROM '$tmp/oracle7c.csv' (FORMAT csv)");
	check_oracle('per_user7 resumed after the restarts', 'SELECT * FROM per_user7',
		'SELECT user_id, count(*), sum(amount) FROM oracle7 GROUP BY user_id');
};

# ---------------------------------------------------------------------
# The whole log
# ---------------------------------------------------------------------
my $log = slurp_file($node->logfile);
is(join("\n", grep { /hunter2/ } split /\n/, $log), '',
	'the password never appears in the server log, restarts included');
my @crashes = grep { /terminated by signal (4|6|7|8|11)|PANIC:|TRAP:/ } split /\n/, $log;
is(join("\n", @crashes), '', 'no crash in the server log');

$node->stop;
$broker->stop;
diag(sprintf('080_kafka_source ran for %.1f s', time() - $started));
done_testing();
