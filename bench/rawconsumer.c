/*-------------------------------------------------------------------------
 *
 * rawconsumer.c
 *		A plain librdkafka consumer: the reference rate that streamproc's
 *		Kafka benchmarks compare themselves against.
 *
 * Usage:
 *		rawconsumer --brokers HOST:PORT --topic T [--expect N] [--timeout-s S]
 *					[--api poll|batch] [--watermarks] [-X key=value]...
 *		rawconsumer --brokers HOST:PORT --topic T --follow PATH [--sample-ms MS]
 *					[--timeout-s S] [--api poll|batch] [-X key=value]...
 *
 *		--watermarks only sums (high - low) over the partitions, prints that
 *		on stdout and exits without consuming (checked against --expect):
 *		a cheap way for benchmarks to verify what a producer delivered.
 *		It also lists every partition on stderr as
 *		"rawconsumer: partition P low L high H".
 *
 * Design
 * ------
 * The program reads one topic from beginning to end exactly once, as fast
 * as a plain librdkafka consumer can, and reports how long that took.
 *
 * 1. The topic's partitions come from a metadata request, and each
 *	  partition's low and high watermarks from
 *	  rd_kafka_query_watermark_offsets().  The high watermarks captured here
 *	  define "the end": messages produced after the start are not read and
 *	  not counted, so the figure is well defined even while a producer is
 *	  still writing.
 *
 * 2. All non-empty partitions are assigned at their low watermark with
 *	  rd_kafka_assign().  There is no subscription and thus no consumer
 *	  group rebalancing; group.id is set only because the KafkaConsumer API
 *	  requires one, and enable.auto.commit / enable.auto.offset.store are
 *	  off, so nothing is ever committed.  auto.offset.reset=error: if the
 *	  broker has deleted part of the range while we read it (the dev
 *	  broker keeps only the newest part of each partition), we fail loudly
 *	  rather than silently reading fewer messages.
 *
 * 3. Messages are consumed until every partition has delivered the message
 *	  at (high watermark - 1), or has reported partition EOF at an offset
 *	  at or past the captured high watermark (this covers offset gaps, e.g.
 *	  transaction control records).  Messages and payload bytes (key plus
 *	  value) are counted.  The clock runs from just before rd_kafka_assign()
 *	  to the moment the last partition is complete; metadata and watermark
 *	  queries are excluded.
 *
 * 4. Output: "rawconsumer: N messages, B bytes in S.sss s, R events/s" on
 *	  stderr and N alone on stdout.  The exit status is non-zero when
 *	  --expect is given and differs from N, when --timeout-s elapses before
 *	  the end is reached, or on any consumer error that loses data.
 *
 * Follow mode (--follow PATH): freshness baseline
 * ----------------------------------------------
 * For bench/kafka_ingest.sh's freshness figure.  Every partition is
 * assigned at its high watermark (only messages produced from now on are
 * read), and the consumer follows the topic until SIGTERM/SIGINT.  It
 * parses the "ts" field of each json message (loadgen's
 * "YYYY-MM-DDTHH:MM:SS.mmmZ"; produced with loadgen --ts now, the wall
 * clock at production) and keeps the newest ts seen; every --sample-ms
 * (default 10) it appends "EPOCH STALENESS_MS" to PATH: the wall clock of
 * the sample (seconds) and the age of the newest message seen, in ms --
 * the same measure the benchmark takes of a continuous view's max(ts).
 * The consume call's timeout ends at the next sample, so a sample sees
 * every message delivered to the consumer queue until then.  At the
 * first SIGTERM/SIGINT it stops sampling, reads the partitions' high
 * watermarks and consumes up to them (bounded by --timeout-s from then),
 * then reports "rawconsumer: follow: N messages, B bytes, K samples in
 * S s" on stderr and N on stdout; N is every message produced between
 * the start and the signal (--expect checks it).
 *
 * Poll versus batch API
 * ---------------------
 * Two ways of taking messages off the consumer queue are implemented:
 * rd_kafka_consumer_poll() (one message per call) and
 * rd_kafka_consume_batch_queue() on the consumer queue (up to
 * BATCH_SIZE messages per call).  Both were measured on this project's
 * dev broker (librdkafka 2.0.2 mock cluster, 1,000,000 loadgen events of
 * ~80 bytes, 64 partitions, 2 cores, alternating runs): the batch API was
 * never slower and was faster on a loaded machine (medians of 9 runs,
 * idle: 2.88 M vs 2.80 M events/s; under load: about 2.0 M vs 1.6 M).
 * It takes the queue lock and wakes the application thread once per batch
 * instead of once per message, which is what matters when the two
 * librdkafka threads and the broker share two cores.  Batch is therefore
 * the default; --api poll remains for re-measuring.
 *
 * Tuning
 * ------
 * The settings below are the ones a careful operator would pick for a
 * throughput-oriented consumer, nothing exotic: a large pre-fetch queue
 * (queued.min.messages, queued.max.messages.kbytes) so the fetcher thread
 * never stalls on a slow application thread, fetch.min.bytes=1 and a short
 * fetch.wait.max.ms so an idle partition does not delay the others, and
 * the default per-partition / per-request fetch sizes.  Any property can
 * be overridden with -X key=value.
 *
 * Note on the mock cluster: it answers each Fetch with at most one
 * produced batch (MessageSet) per partition, so the consumer's rate there
 * is bounded by the size of the producer's batches times the number of
 * partitions per fetch round trip, not by fetch sizes.
 *
 * Copyright (c) streamproc authors
 *
 * IDENTIFICATION
 *		bench/rawconsumer.c
 *
 *-------------------------------------------------------------------------
 */
#include <errno.h>
#include <inttypes.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <librdkafka/rdkafka.h>

#define BATCH_SIZE      4096
#define POLL_TIMEOUT_MS 100
#define META_TIMEOUT_MS 10000 /* bound on one metadata/watermark call */
#define MAX_X_OPTIONS   64

typedef enum ConsumeApi
{
	API_POLL,
	API_BATCH
} ConsumeApi;

/* Per-partition progress. */
typedef struct PartState
{
	int64_t low;   /* low watermark at start */
	int64_t high;  /* high watermark at start: the end */
	bool assigned; /* non-empty, hence assigned */
	bool done;     /* reached high */
	int64_t next;  /* follow mode: offset after the last message read */
} PartState;

typedef struct Consumer
{
	PartState *parts; /* indexed by partition id */
	int32_t nparts;   /* size of parts[] */
	int remaining;    /* partitions not yet done */
	int64_t messages;
	int64_t bytes;
	bool failed;       /* an unrecoverable error happened */
	bool follow;       /* --follow: parse ts, track the newest */
	int64_t max_ts_ms; /* newest "ts" seen (ms since the epoch), -1: none */
	int64_t unparsed;  /* messages without a parsable "ts" */
} Consumer;

static volatile sig_atomic_t got_signal = 0;

static void
handle_signal(int signo)
{
	got_signal = signo;
}

static double
now_seconds(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* Wall clock, seconds since the epoch. */
static double
wall_seconds(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* Days since 1970-01-01 of a proleptic Gregorian date (H. Hinnant). */
static int64_t
days_from_civil(int64_t y, int64_t m, int64_t d)
{
	int64_t era;
	int64_t yoe;
	int64_t doy;
	int64_t doe;

	y -= m <= 2;
	era = (y >= 0 ? y : y - 399) / 400;
	yoe = y - era * 400;
	doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
	doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
	return era * 146097 + doe - 719468;
}

/* n decimal digits at p, or -1. */
static int64_t
digits(const char *p, int n)
{
	int64_t v = 0;
	int i;

	for (i = 0; i < n; i++)
	{
		if (p[i] < '0' || p[i] > '9')
			return -1;
		v = v * 10 + (p[i] - '0');
	}
	return v;
}

/*
 * The "ts" of a json click event, "YYYY-MM-DDTHH:MM:SS[.mmm]Z", in ms
 * since the epoch; -1 when there is none.
 */
static int64_t
message_ts_ms(const char *payload, size_t len)
{
	static const char key[] = "\"ts\":\"";
	const char *p = NULL;
	const char *end = payload + len;
	const char *q;
	int64_t y, mo, d, h, mi, sec, ms = 0;

	for (q = payload; q + sizeof(key) - 1 <= end; q++)
		if (memcmp(q, key, sizeof(key) - 1) == 0)
		{
			p = q + sizeof(key) - 1;
			break;
		}
	if (p == NULL || end - p < 20 || p[4] != '-' || p[7] != '-' ||
		p[10] != 'T' || p[13] != ':' || p[16] != ':')
		return -1;
	y = digits(p, 4);
	mo = digits(p + 5, 2);
	d = digits(p + 8, 2);
	h = digits(p + 11, 2);
	mi = digits(p + 14, 2);
	sec = digits(p + 17, 2);
	if (y < 0 || mo < 1 || mo > 12 || d < 1 || d > 31 || h < 0 || mi < 0 || sec < 0)
		return -1;
	if (end - p >= 23 && p[19] == '.')
	{
		ms = digits(p + 20, 3);
		if (ms < 0)
			return -1;
	}
	return ((days_from_civil(y, mo, d) * 24 + h) * 60 + mi) * INT64_C(60000) +
		   sec * 1000 + ms;
}

/*
 * Timeout for one blocking metadata call: what is left until the deadline,
 * at least 1 ms and at most META_TIMEOUT_MS.
 */
static int
remaining_ms(double deadline)
{
	double left = (deadline - now_seconds()) * 1000.0;

	if (left < 1.0)
		return 1;
	if (left > META_TIMEOUT_MS)
		return META_TIMEOUT_MS;
	return (int)left;
}

static void
usage(FILE *out)
{
	fprintf(out,
			"usage: rawconsumer --brokers HOST:PORT --topic T [--expect N]\n"
			"                   [--timeout-s S] [--api poll|batch]"
			" [--watermarks]\n"
			"                   [-X key=value]...\n"
			"       rawconsumer --brokers HOST:PORT --topic T --follow PATH"
			" [--sample-ms MS]\n"
			"                   [--expect N] [--timeout-s S] [--api poll|batch]"
			" [-X key=value]...\n"
			"Reads all messages of T from the low to the high watermark"
			" captured at start\n"
			"and reports the rate.  --follow reads what is produced from"
			" now on until\n"
			"SIGTERM, sampling the age of the newest \"ts\" seen into PATH"
			" every MS ms.\n");
}

static void
die(const char *fmt, const char *arg)
{
	fprintf(stderr, "rawconsumer: ");
	fprintf(stderr, fmt, arg);
	fprintf(stderr, "\n");
	exit(2);
}

static void
set_conf(rd_kafka_conf_t *conf, const char *key, const char *value)
{
	char errstr[512];

	if (rd_kafka_conf_set(conf, key, value, errstr, sizeof(errstr)) !=
		RD_KAFKA_CONF_OK)
	{
		fprintf(stderr, "rawconsumer: cannot set %s=%s: %s\n",
				key, value, errstr);
		exit(2);
	}
}

/*
 * Error callback: librdkafka reports transient broker trouble here too;
 * only fatal errors stop the run, the rest are logged.
 */
static void
error_cb(rd_kafka_t *rk, int err, const char *reason, void *opaque)
{
	Consumer *c = (Consumer *)opaque;
	char errstr[512];

	if (err == RD_KAFKA_RESP_ERR__FATAL)
	{
		rd_kafka_fatal_error(rk, errstr, sizeof(errstr));
		fprintf(stderr, "rawconsumer: fatal error: %s\n", errstr);
		c->failed = true;
		return;
	}
	fprintf(stderr, "rawconsumer: warning: %s: %s\n",
			rd_kafka_err2name((rd_kafka_resp_err_t)err), reason);
}

static void
mark_done(Consumer *c, PartState *ps)
{
	if (!ps->done)
	{
		ps->done = true;
		c->remaining--;
	}
}

/*
 * Account for one message or event taken off the consumer queue.
 */
static void
handle_message(Consumer *c, const rd_kafka_message_t *m)
{
	PartState *ps;

	if (m->partition < 0 || m->partition >= c->nparts)
	{
		if (m->err)
		{
			fprintf(stderr, "rawconsumer: consumer error: %s\n",
					rd_kafka_message_errstr(m));
			if (m->err == RD_KAFKA_RESP_ERR__AUTO_OFFSET_RESET ||
				m->err == RD_KAFKA_RESP_ERR_OFFSET_OUT_OF_RANGE ||
				m->err == RD_KAFKA_RESP_ERR_UNKNOWN_TOPIC_OR_PART ||
				m->err == RD_KAFKA_RESP_ERR__UNKNOWN_TOPIC ||
				m->err == RD_KAFKA_RESP_ERR__UNKNOWN_PARTITION)
				c->failed = true;
		}
		return;
	}
	ps = &c->parts[m->partition];

	if (m->err == RD_KAFKA_RESP_ERR__PARTITION_EOF)
	{
		if (ps->assigned && m->offset >= ps->high)
			mark_done(c, ps);
		return;
	}
	if (m->err)
	{
		fprintf(stderr, "rawconsumer: consumer error on partition %" PRId32 ": %s\n", m->partition, rd_kafka_message_errstr(m));
		/* the broker lost data we were to read: never count on silently */
		if (m->err == RD_KAFKA_RESP_ERR__AUTO_OFFSET_RESET ||
			m->err == RD_KAFKA_RESP_ERR_OFFSET_OUT_OF_RANGE ||
			m->err == RD_KAFKA_RESP_ERR_UNKNOWN_TOPIC_OR_PART ||
			m->err == RD_KAFKA_RESP_ERR__UNKNOWN_TOPIC ||
			m->err == RD_KAFKA_RESP_ERR__UNKNOWN_PARTITION)
			c->failed = true;
		return;
	}

	/* produced after we started, or a stray partition: not ours to count */
	if (!ps->assigned || m->offset >= ps->high || m->offset < ps->low)
		return;

	c->messages++;
	c->bytes += (int64_t)m->len + (int64_t)m->key_len;
	if (c->follow)
	{
		int64_t ts = m->payload ? message_ts_ms((const char *)m->payload, m->len) : -1;

		if (ts < 0)
			c->unparsed++;
		else if (ts > c->max_ts_ms)
			c->max_ts_ms = ts;
		ps->next = m->offset + 1;
	}
	if (m->offset + 1 >= ps->high)
		mark_done(c, ps);
}

int
main(int argc, char **argv)
{
	const char *brokers = NULL;
	const char *topic = NULL;
	int64_t expect = -1;
	double timeout_s = 600.0;
	ConsumeApi api = API_BATCH;
	bool watermarks_only = false;
	const char *follow_path = NULL;
	FILE *follow_out = NULL;
	double sample_s = 0.010;
	double next_sample = 0;
	int64_t samples = 0;
	bool stopping = false;
	const char *xopts[MAX_X_OPTIONS];
	int nxopts = 0;
	rd_kafka_conf_t *conf;
	rd_kafka_t *rk;
	rd_kafka_topic_t *rkt;
	const struct rd_kafka_metadata *md = NULL;
	const struct rd_kafka_metadata_topic *mdt;
	rd_kafka_topic_partition_list_t *assignment;
	rd_kafka_queue_t *queue = NULL;
	rd_kafka_message_t **batch = NULL;
	rd_kafka_resp_err_t err;
	Consumer c;
	char errstr[512];
	int64_t total_expected = 0;
	double deadline;
	double t_start;
	double t_end;
	double elapsed;
	bool timed_out = false;
	int i;

	memset(&c, 0, sizeof(c));

	for (i = 1; i < argc; i++)
	{
		const char *a = argv[i];
		const char *v = (i + 1 < argc) ? argv[i + 1] : NULL;
		char *end;

		if (strcmp(a, "-h") == 0 || strcmp(a, "--help") == 0)
		{
			usage(stdout);
			return 0;
		}
		if (strcmp(a, "--watermarks") == 0)
		{
			watermarks_only = true;
			continue;
		}
		if (strcmp(a, "--brokers") != 0 && strcmp(a, "--topic") != 0 &&
			strcmp(a, "--expect") != 0 && strcmp(a, "--timeout-s") != 0 &&
			strcmp(a, "--api") != 0 && strcmp(a, "-X") != 0 &&
			strcmp(a, "--follow") != 0 && strcmp(a, "--sample-ms") != 0)
		{
			usage(stderr);
			die("unknown option: %s", a);
		}
		if (v == NULL)
		{
			usage(stderr);
			die("missing value for %s", a);
		}
		i++;
		if (strcmp(a, "--brokers") == 0)
			brokers = v;
		else if (strcmp(a, "--topic") == 0)
			topic = v;
		else if (strcmp(a, "--expect") == 0)
		{
			errno = 0;
			expect = strtoll(v, &end, 10);
			if (errno != 0 || *end != '\0' || end == v || expect < 0)
				die("invalid --expect: %s", v);
		}
		else if (strcmp(a, "--timeout-s") == 0)
		{
			errno = 0;
			timeout_s = strtod(v, &end);
			if (errno != 0 || *end != '\0' || end == v || timeout_s <= 0)
				die("invalid --timeout-s: %s", v);
		}
		else if (strcmp(a, "--follow") == 0)
			follow_path = v;
		else if (strcmp(a, "--sample-ms") == 0)
		{
			errno = 0;
			sample_s = strtod(v, &end) / 1000.0;
			if (errno != 0 || *end != '\0' || end == v || sample_s <= 0)
				die("invalid --sample-ms: %s", v);
		}
		else if (strcmp(a, "--api") == 0)
		{
			if (strcmp(v, "poll") == 0)
				api = API_POLL;
			else if (strcmp(v, "batch") == 0)
				api = API_BATCH;
			else
				die("invalid --api: %s (poll or batch)", v);
		}
		else if (strcmp(a, "-X") == 0)
		{
			if (strchr(v, '=') == NULL)
				die("invalid -X (key=value expected): %s", v);
			if (nxopts >= MAX_X_OPTIONS)
				die("too many -X options%s", "");
			xopts[nxopts++] = v;
		}
	}
	if (brokers == NULL || topic == NULL)
	{
		usage(stderr);
		return 2;
	}
	if (follow_path != NULL && watermarks_only)
		die("--follow and --watermarks exclude each other%s", "");
	if (follow_path != NULL)
	{
		follow_out = fopen(follow_path, "w");
		if (follow_out == NULL)
			die("cannot open %s", follow_path);
		c.follow = true;
		c.max_ts_ms = -1;
	}

	deadline = now_seconds() + timeout_s;

	signal(SIGINT, handle_signal);
	signal(SIGTERM, handle_signal);

	/* configuration: a plain, throughput-minded consumer */
	conf = rd_kafka_conf_new();
	set_conf(conf, "bootstrap.servers", brokers);
	set_conf(conf, "client.id", "streamproc-rawconsumer");
	set_conf(conf, "group.id", "streamproc-rawconsumer");
	set_conf(conf, "enable.auto.commit", "false");
	set_conf(conf, "enable.auto.offset.store", "false");
	set_conf(conf, "auto.offset.reset", "error");
	set_conf(conf, "enable.partition.eof", "true");
	set_conf(conf, "fetch.min.bytes", "1");
	set_conf(conf, "fetch.wait.max.ms", "100");
	set_conf(conf, "queued.min.messages", "1000000");
	set_conf(conf, "queued.max.messages.kbytes", "262144");
	for (i = 0; i < nxopts; i++)
	{
		char key[256];
		const char *eq = strchr(xopts[i], '=');
		size_t klen = (size_t)(eq - xopts[i]);

		if (klen == 0 || klen >= sizeof(key))
			die("invalid -X key: %s", xopts[i]);
		memcpy(key, xopts[i], klen);
		key[klen] = '\0';
		set_conf(conf, key, eq + 1);
	}
	rd_kafka_conf_set_error_cb(conf, error_cb);
	rd_kafka_conf_set_opaque(conf, &c);

	rk = rd_kafka_new(RD_KAFKA_CONSUMER, conf, errstr, sizeof(errstr));
	if (rk == NULL)
		die("cannot create consumer: %s", errstr);
	rd_kafka_poll_set_consumer(rk);

	/* partitions from metadata; retry briefly while the topic settles */
	rkt = rd_kafka_topic_new(rk, topic, NULL);
	if (rkt == NULL)
		die("cannot create topic handle: %s",
			rd_kafka_err2str(rd_kafka_last_error()));
	for (;;)
	{
		err = rd_kafka_metadata(rk, 0, rkt, &md, remaining_ms(deadline));
		if (err == RD_KAFKA_RESP_ERR_NO_ERROR && md->topic_cnt == 1 &&
			md->topics[0].err == RD_KAFKA_RESP_ERR_NO_ERROR &&
			md->topics[0].partition_cnt > 0)
			break;
		if (err == RD_KAFKA_RESP_ERR_NO_ERROR && md->topic_cnt == 1)
			err = md->topics[0].err;
		if (md != NULL)
		{
			rd_kafka_metadata_destroy(md);
			md = NULL;
		}
		if (got_signal || now_seconds() > deadline)
		{
			fprintf(stderr, "rawconsumer: no metadata for topic %s: %s\n",
					topic, rd_kafka_err2str(err));
			rd_kafka_topic_destroy(rkt);
			rd_kafka_destroy(rk);
			return 1;
		}
		nanosleep(&(struct timespec){0, 200 * 1000 * 1000}, NULL);
	}
	mdt = &md->topics[0];

	for (i = 0; i < mdt->partition_cnt; i++)
		if (mdt->partitions[i].id >= c.nparts)
			c.nparts = mdt->partitions[i].id + 1;
	c.parts = calloc((size_t)c.nparts, sizeof(PartState));
	if (c.parts == NULL)
		die("out of memory%s", "");

	/* low/high watermarks: the range to read */
	assignment = rd_kafka_topic_partition_list_new(mdt->partition_cnt);
	for (i = 0; i < mdt->partition_cnt; i++)
	{
		int32_t p = mdt->partitions[i].id;
		PartState *ps = &c.parts[p];

		err = rd_kafka_query_watermark_offsets(rk, topic, p,
											   &ps->low, &ps->high,
											   remaining_ms(deadline));
		if (err != RD_KAFKA_RESP_ERR_NO_ERROR)
		{
			fprintf(stderr, "rawconsumer: cannot query watermarks of %s [%" PRId32 "]: %s\n", topic, p, rd_kafka_err2str(err));
			return 1;
		}
		if (watermarks_only)
			fprintf(stderr, "rawconsumer: partition %" PRId32 " low %" PRId64 " high %" PRId64 "\n",
					p, ps->low, ps->high);
		if (follow_path != NULL)
		{
			/* from the end on, until the stop signal sets the end */
			ps->low = ps->high;
			ps->next = ps->high;
			ps->high = INT64_MAX;
			ps->assigned = true;
			c.remaining++;
			rd_kafka_topic_partition_list_add(assignment, topic, p)->offset =
				ps->low;
		}
		else if (ps->high > ps->low)
		{
			ps->assigned = true;
			c.remaining++;
			total_expected += ps->high - ps->low;
			rd_kafka_topic_partition_list_add(assignment, topic, p)->offset =
				ps->low;
		}
	}
	if (follow_path != NULL)
		fprintf(stderr, "rawconsumer: topic %s: %d partitions, following from the end\n",
				topic, mdt->partition_cnt);
	else
		fprintf(stderr, "rawconsumer: topic %s: %d partitions, %" PRId64 " messages between the watermarks\n",
				topic, mdt->partition_cnt, total_expected);
	rd_kafka_metadata_destroy(md);
	rd_kafka_topic_destroy(rkt);

	if (watermarks_only)
	{
		rd_kafka_topic_partition_list_destroy(assignment);
		rd_kafka_destroy(rk);
		printf("%" PRId64 "\n", total_expected);
		if (expect >= 0 && total_expected != expect)
		{
			fprintf(stderr, "rawconsumer: FAILED: expected %" PRId64 " messages in %s, found %" PRId64 "\n",
					expect, topic, total_expected);
			return 1;
		}
		return 0;
	}

	if (api == API_BATCH)
	{
		queue = rd_kafka_queue_get_consumer(rk);
		batch = malloc(sizeof(rd_kafka_message_t *) * BATCH_SIZE);
		if (queue == NULL || batch == NULL)
			die("cannot set up batch consumption%s", "");
	}

	/* the timed part: assign and read up to the high watermarks */
	t_start = now_seconds();
	if (c.remaining > 0)
	{
		err = rd_kafka_assign(rk, assignment);
		if (err != RD_KAFKA_RESP_ERR_NO_ERROR)
		{
			fprintf(stderr, "rawconsumer: assign failed: %s\n",
					rd_kafka_err2str(err));
			return 1;
		}
	}
	rd_kafka_topic_partition_list_destroy(assignment);

	next_sample = now_seconds() + sample_s;
	while (c.remaining > 0 && !c.failed && (!got_signal || (c.follow && !stopping)))
	{
		int wait_ms = POLL_TIMEOUT_MS;

		if (c.follow && !stopping)
		{
			double now = now_seconds();

			if (got_signal)
			{
				/* Stop: read up to the current high watermarks. */
				got_signal = 0;
				stopping = true;
				deadline = now + timeout_s;
				for (i = 0; i < c.nparts; i++)
				{
					PartState *ps = &c.parts[i];
					int64_t low;
					int64_t high;

					if (!ps->assigned)
						continue;
					err = rd_kafka_query_watermark_offsets(rk, topic, i, &low, &high,
														   remaining_ms(deadline));
					if (err != RD_KAFKA_RESP_ERR_NO_ERROR)
					{
						fprintf(stderr, "rawconsumer: cannot query watermarks of %s [%d]: %s\n",
								topic, i, rd_kafka_err2str(err));
						c.failed = true;
						break;
					}
					ps->high = high;
					if (ps->next >= high)
						mark_done(&c, ps);
				}
				continue;
			}
			if (now >= next_sample)
			{
				if (c.max_ts_ms >= 0)
				{
					double wall = wall_seconds();

					fprintf(follow_out, "%.6f %.3f\n", wall,
							wall * 1000.0 - (double)c.max_ts_ms);
					samples++;
				}
				next_sample += sample_s;
				if (next_sample < now)
					next_sample = now + sample_s;
			}
			wait_ms = (int)((next_sample - now) * 1000.0);
			if (wait_ms < 0)
				wait_ms = 0;
			if (wait_ms > POLL_TIMEOUT_MS)
				wait_ms = POLL_TIMEOUT_MS;
		}
		if (api == API_BATCH)
		{
			ssize_t n;
			ssize_t j;

			n = rd_kafka_consume_batch_queue(queue, wait_ms,
											 batch, BATCH_SIZE);
			if (n < 0)
			{
				fprintf(stderr, "rawconsumer: consume failed: %s\n",
						rd_kafka_err2str(rd_kafka_last_error()));
				c.failed = true;
				break;
			}
			for (j = 0; j < n; j++)
			{
				handle_message(&c, batch[j]);
				rd_kafka_message_destroy(batch[j]);
			}
		}
		else
		{
			rd_kafka_message_t *m;

			m = rd_kafka_consumer_poll(rk, wait_ms);
			if (m != NULL)
			{
				handle_message(&c, m);
				rd_kafka_message_destroy(m);
			}
		}
		if (c.remaining > 0 && (!c.follow || stopping) && now_seconds() > deadline)
		{
			timed_out = true;
			break;
		}
	}
	t_end = now_seconds();
	elapsed = t_end - t_start;

	if (queue != NULL)
		rd_kafka_queue_destroy(queue);
	free(batch);
	rd_kafka_consumer_close(rk);
	rd_kafka_destroy(rk);

	if (c.follow)
	{
		if (fclose(follow_out) != 0)
		{
			fprintf(stderr, "rawconsumer: cannot write %s\n", follow_path);
			c.failed = true;
		}
		fprintf(stderr, "rawconsumer: follow: %" PRId64 " messages, %" PRId64 " bytes, %" PRId64 " samples in %.3f s%s\n",
				c.messages, c.bytes, samples, elapsed,
				c.unparsed > 0 ? " (some messages had no json \"ts\")" : "");
	}
	else
		fprintf(stderr, "rawconsumer: %" PRId64 " messages, %" PRId64 " bytes in %.3f s, %.0f events/s\n",
				c.messages, c.bytes, elapsed,
				elapsed > 0 ? (double)c.messages / elapsed : 0.0);
	printf("%" PRId64 "\n", c.messages);
	fflush(stdout);

	if (got_signal)
	{
		fprintf(stderr, "rawconsumer: interrupted by signal %d\n",
				(int)got_signal);
		return 1;
	}
	if (c.failed)
	{
		fprintf(stderr, "rawconsumer: FAILED: consumer error (see above)\n");
		return 1;
	}
	if (timed_out)
	{
		fprintf(stderr, "rawconsumer: FAILED: timeout after %g s with %d"
						" partitions not at their high watermark\n",
				timeout_s, c.remaining);
		return 1;
	}
	if (expect >= 0 && c.messages != expect)
	{
		fprintf(stderr, "rawconsumer: FAILED: expected %" PRId64 " messages, read %" PRId64 "\n", expect, c.messages);
		return 1;
	}
	return 0;
}
