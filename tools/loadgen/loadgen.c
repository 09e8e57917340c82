/*-------------------------------------------------------------------------
 *
 * loadgen.c
 *	  Deterministic event generator for streamproc: the "clicks" workload.
 *
 * loadgen writes click events (user_id int, url text, amount numeric,
 * ts timestamptz) either to stdout, one message per line (ready for
 * COPY clicks FROM STDIN), or to a Kafka topic through librdkafka.  It can
 * inject disorder, exact duplicates and malformed messages, pace itself to
 * a target rate, and write an "oracle" CSV of every well-formed event it
 * produced so that tests can compare a consumer's result against the truth.
 *
 * Determinism contract
 * --------------------
 * With the same options (other than --rate, --quiet, output destinations
 * and librdkafka properties) and the same --seed, loadgen produces exactly
 * the same sequence of message bytes, the same Kafka keys, the same oracle
 * CSV and the same malformed log, on every run and on every machine.  The
 * only exceptions are "--start-time now", which reads the wall clock once
 * at start, "--ts now", which stamps every message with the wall clock at
 * its production, and --skew, whose Zipf table uses libm's pow() and is
 * therefore only guaranteed identical across machines sharing the same libm.
 *
 * To get there:
 *
 *	- The only source of randomness is splitmix64, implemented here (never
 *	  rand()).  Message i (0-based, counting every message: fresh,
 *	  duplicate and malformed) consumes exactly LG_DRAWS_PER_EVENT outputs,
 *	  namely outputs [8i, 8i+8) of the splitmix64 stream seeded with --seed.
 *	  Because splitmix64 is a counter-based generator, message i's draws
 *	  are computed directly from (seed, i); in particular the fresh content
 *	  of message i does not depend on the outcome of earlier messages nor
 *	  on --duplicates/--malformed, and never on timing.
 *	- Draw j of message i has a fixed purpose: 0 kind (fresh / duplicate /
 *	  malformed), 1 user_id, 2 url, 3 amount, 4 disorder yes/no, 5 disorder
 *	  delay, 6 which recent message to duplicate; 7 is reserved.
 *	- Integer ranges are mapped with a 64x64->128 bit multiply (bias below
 *	  2^-32, deterministic); probabilities compare the top 53 bits of a draw
 *	  against round(FRAC * 2^53).
 *	- Event time is integer milliseconds: start + i * interval, minus, with
 *	  probability --disorder, a uniform delay in [1, --max-delay-ms].  With
 *	  "--ts now" it is instead the wall clock (CLOCK_REALTIME, truncated to
 *	  the millisecond) when message i is generated, just before it is
 *	  written or produced, minus the same disorder delay: for measuring
 *	  end-to-end freshness, not reproducible.
 *	  Amounts are integer cents in [1, 99999] printed as "%d.%02d".  Dates
 *	  are formatted by integer civil-calendar arithmetic (no time zone,
 *	  no locale, no floating point anywhere in the output path).
 *	- A duplicate is a byte-for-byte copy (payload and key) of one of the
 *	  last LG_RING fresh well-formed messages; if there is none yet, a
 *	  fresh event is produced instead.  Duplicates are well-formed and are
 *	  written to the oracle CSV.
 *	- Malformed messages cycle through a fixed list of defects (the n-th
 *	  malformed message uses defect n % LG_NUM_DEFECTS), so even a short
 *	  run exercises every kind.  They are not in the oracle CSV; with
 *	  --malformed-log their "seq,reason" is recorded, seq being the 0-based
 *	  message number (stdout line number minus one).
 *
 * Kafka mode produces the same payloads (without the trailing newline),
 * keyed by user_id as a decimal string and partitioned with librdkafka's
 * Java-compatible murmur2_random partitioner, so a key always lands in the
 * same partition for a given partition count.  Messages are never dropped:
 * QUEUE_FULL is handled by polling and retrying, every delivery report is
 * counted, and the exit status is non-zero if any delivery failed.
 *
 * Rate pacing (--rate) sleeps with clock_nanosleep(TIMER_ABSTIME) on
 * CLOCK_MONOTONIC: message k is due at t0 + k / rate, and the generator
 * wakes up at most about once per millisecond to emit everything that is
 * due, so it never spins and stays exact over the long run.
 *
 * Exit status: 0 success (also after SIGINT/SIGTERM), 1 runtime failure
 * (I/O error, Kafka delivery failure), 2 bad arguments.
 *
 * IDENTIFICATION
 *	  tools/loadgen/loadgen.c
 *
 *-------------------------------------------------------------------------
 */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <math.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <librdkafka/rdkafka.h>

#define LG_DRAWS_PER_EVENT 8
#define LG_RING            128 /* recent messages eligible for duplication */
#define LG_MSG_MAX         512 /* bytes, bounds every generated line */
#define LG_URL_MAX         64
#define LG_NUM_DEFECTS     5
#define LG_MAX_CENTS       99999
#define LG_MAX_SKEW_USERS  10000000
#define LG_PROGRESS_NS     INT64_C(5000000000)
#define LG_MS_PER_DAY      INT64_C(86400000)
/* 0001-01-01T00:00:00Z and 10000-01-01T00:00:00Z in ms since the epoch */
#define LG_MIN_TS_MS  INT64_C(-62135596800000)
#define LG_MAX_TS_MS  INT64_C(253402300800000)
#define LG_MAX_XPROPS 64

#define SPLITMIX_GAMMA UINT64_C(0x9E3779B97F4A7C15)

typedef enum LgFormat
{
	LG_FORMAT_JSON,
	LG_FORMAT_CSV
} LgFormat;

typedef enum LgKind
{
	LG_KIND_FRESH,
	LG_KIND_DUPLICATE,
	LG_KIND_MALFORMED
} LgKind;

typedef struct LgOptions
{
	uint64_t count; /* 0 = unbounded */
	bool count_given;
	int64_t users;
	int64_t urls;
	double skew; /* 0 = uniform */
	int64_t start_ms;
	bool start_now;
	bool ts_now;   /* --ts now: ts = wall clock at generation */
	bool ts_fixed; /* --start-time or --interval-ms given */
	int64_t interval_ms;
	double disorder;
	int64_t max_delay_ms;
	double duplicates;
	double malformed;
	const char *malformed_log;
	LgFormat format;
	double rate; /* events per second, 0 = unpaced */
	uint64_t seed;
	const char *brokers;
	const char *topic;
	const char *oracle_csv;
	bool print_key;
	bool quiet;
	int64_t flush_timeout_ms;
	const char *xprops[LG_MAX_XPROPS];
	int nxprops;
} LgOptions;

/* One generated message, as written to stdout and to Kafka. */
typedef struct LgMessage
{
	char line[LG_MSG_MAX]; /* payload followed by '\n' */
	size_t len;            /* payload length, without the newline */
	char key[24];
	size_t keylen;
	char oracle[LG_MSG_MAX]; /* CSV line with '\n' (well-formed only) */
	size_t oracle_len;       /* including the newline */
} LgMessage;

/* The deterministic state of the generator (everything but the outputs). */
typedef struct LgGenerator
{
	const LgOptions *opts;
	uint64_t thr_dup; /* probability thresholds on 53-bit draws */
	uint64_t thr_mal;
	uint64_t thr_disorder;
	double *zipf_cdf;        /* users entries when --skew > 0 */
	LgMessage ring[LG_RING]; /* last fresh well-formed messages */
	int ring_next;
	int ring_filled;
	LgMessage scratch; /* malformed messages are built here */
	uint64_t n_total;
	uint64_t n_wellformed;
	uint64_t n_duplicates;
	uint64_t n_malformed;
} LgGenerator;

/* Kafka producer state. */
typedef struct LgKafka
{
	rd_kafka_t *rk;
	rd_kafka_topic_t *rkt;
	uint64_t produced;
	uint64_t delivered;
	uint64_t failed;
	char first_error[512];
	int errors_reported;
	bool fatal;
} LgKafka;

static volatile sig_atomic_t stop_requested = 0;
static const char *progname = "loadgen";


/* ---------------------------------------------------------------------
 * Small utilities
 * ---------------------------------------------------------------------
 */

static void
usage(FILE *out)
{
	fprintf(out,
			"Usage: %s --count N [OPTION]...\n"
			"Deterministic generator of \"clicks\" events "
			"(user_id int, url text, amount numeric, ts timestamptz).\n"
			"\n"
			"Workload:\n"
			"  --count N             messages to emit, including duplicates and\n"
			"                        malformed ones (required; 0 = until SIGINT/SIGTERM)\n"
			"  --seed N              PRNG seed, unsigned 64-bit (default 1)\n"
			"  --users N             user_id cardinality, ids in [1, N] (default 1000)\n"
			"  --skew S              Zipf exponent for user_id (default 0 = uniform)\n"
			"  --urls N              number of distinct urls /p/1../p/N (default 100)\n"
			"  --start-time T        ts of message 0, ISO-8601 UTC, or \"now\"\n"
			"                        (default 2026-01-01T00:00:00Z)\n"
			"  --interval-ms N       ts step between consecutive messages (default 1)\n"
			"  --ts seq|now          seq: ts = start + i * interval (default); now: ts =\n"
			"                        wall clock when each message is generated (ms)\n"
			"  --disorder FRAC       probability that ts is moved back (default 0)\n"
			"  --max-delay-ms N      maximum backward move, uniform in [1, N] (default 5000)\n"
			"  --duplicates FRAC     probability of re-emitting a recent message (default 0)\n"
			"  --malformed FRAC      probability of a malformed message (default 0)\n"
			"  --format json|csv     message format (default json)\n"
			"\n"
			"Output:\n"
			"  (default)             one message per line on stdout\n"
			"  --brokers HOST:PORT   produce to Kafka instead (requires --topic)\n"
			"  --topic T             Kafka topic; key = user_id, murmur2_random partitioner\n"
			"  -X KEY=VALUE          librdkafka property (repeatable, overrides defaults)\n"
			"  --flush-timeout-ms N  bound on the final flush (default 60000)\n"
			"  --oracle-csv PATH     write every well-formed message as CSV\n"
			"                        user_id,url,amount,ts (no header)\n"
			"  --malformed-log PATH  write \"seq,reason\" for every malformed message\n"
			"  --print-key           stdout lines are KEY<TAB>PAYLOAD (as kcat -f '%%k\\t%%s\\n')\n"
			"  --rate EPS            messages per second (default 0 = as fast as possible)\n"
			"  --quiet               no progress lines (the final summary is still printed)\n"
			"  --help                show this help and exit\n"
			"\n"
			"Exit status: 0 ok, 1 runtime or delivery failure, 2 bad arguments.\n",
			progname);
}

static void
bad_args(const char *fmt, ...)
	__attribute__((format(printf, 1, 2), noreturn));

static void
bad_args(const char *fmt, ...)
{
	va_list ap;

	fprintf(stderr, "%s: ", progname);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
	fprintf(stderr, "Usage: %s --count N [OPTION]...\n"
					"Try \"%s --help\" for more information.\n",
			progname, progname);
	exit(2);
}

static int64_t
monotonic_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * INT64_C(1000000000) + ts.tv_nsec;
}

/* Wall clock in milliseconds since the epoch, truncated. */
static int64_t
realtime_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void
handle_stop_signal(int signo)
{
	(void)signo;
	stop_requested = 1;
}

/* Strict decimal parse of an unsigned 64-bit integer. */
static bool
parse_u64(const char *s, uint64_t *out)
{
	char *end;
	unsigned long long v;

	if (*s < '0' || *s > '9')
		return false;
	errno = 0;
	v = strtoull(s, &end, 10);
	if (errno != 0 || *end != '\0')
		return false;
	*out = (uint64_t)v;
	return true;
}

static int64_t
option_int(const char *name, const char *value, int64_t min, int64_t max)
{
	uint64_t v;

	if (!parse_u64(value, &v) || v > (uint64_t)INT64_MAX ||
		(int64_t)v < min || (int64_t)v > max)
		bad_args("invalid value for --%s: \"%s\" (expected an integer in [%" PRId64 ", %" PRId64 "])",
				 name, value, min, max);
	return (int64_t)v;
}

static double
option_double(const char *name, const char *value, double min, double max)
{
	char *end;
	double v;

	errno = 0;
	v = strtod(value, &end);
	if (errno != 0 || end == value || *end != '\0' || !isfinite(v) ||
		v < min || v > max)
		bad_args("invalid value for --%s: \"%s\" (expected a number in [%g, %g])",
				 name, value, min, max);
	return v;
}

/* round(frac * 2^53): a draw's top 53 bits below this means "yes". */
static uint64_t
probability_threshold(double frac)
{
	return (uint64_t)llround(ldexp(frac, 53));
}


/* ---------------------------------------------------------------------
 * Calendar arithmetic (proleptic Gregorian, UTC, integers only)
 * ---------------------------------------------------------------------
 */

static int64_t
days_from_civil(int64_t y, int m, int d)
{
	int64_t era;
	int64_t yoe;
	int64_t doy;
	int64_t doe;

	y -= (m <= 2);
	era = (y >= 0 ? y : y - 399) / 400;
	yoe = y - era * 400;
	doy = (153 * (m > 2 ? m - 3 : m + 9) + 2) / 5 + d - 1;
	doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
	return era * 146097 + doe - 719468;
}

static void
civil_from_days(int64_t z, int64_t *year, int *month, int *day)
{
	int64_t era;
	int64_t doe;
	int64_t yoe;
	int64_t doy;
	int64_t mp;
	int m;

	z += 719468;
	era = (z >= 0 ? z : z - 146096) / 146097;
	doe = z - era * 146097;
	yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
	doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
	mp = (5 * doy + 2) / 153;
	*day = (int)(doy - (153 * mp + 2) / 5 + 1);
	m = (int)(mp < 10 ? mp + 3 : mp - 9);
	*month = m;
	*year = yoe + era * 400 + (m <= 2);
}

static int
days_in_month(int64_t y, int m)
{
	static const int mdays[12] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
	bool leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;

	return (m == 2 && leap) ? 29 : mdays[m - 1];
}

/* Read exactly n digits. */
static bool
read_digits(const char **p, int n, int *out)
{
	int v = 0;
	int i;

	for (i = 0; i < n; i++)
	{
		if ((*p)[i] < '0' || (*p)[i] > '9')
			return false;
		v = v * 10 + ((*p)[i] - '0');
	}
	*p += n;
	*out = v;
	return true;
}

/*
 * Parse YYYY-MM-DD[T ]HH:MM:SS[.f{1,3}][Z|+00:00|+0000] (UTC only) into
 * milliseconds since the Unix epoch.
 */
static bool
parse_iso8601_utc(const char *s, int64_t *ms_out)
{
	const char *p = s;
	int y,
		mo,
		d,
		h,
		mi,
		sec;
	int frac = 0;
	int ndigits = 0;

	if (!read_digits(&p, 4, &y) || *p++ != '-' ||
		!read_digits(&p, 2, &mo) || *p++ != '-' ||
		!read_digits(&p, 2, &d))
		return false;
	if (*p != 'T' && *p != 't' && *p != ' ')
		return false;
	p++;
	if (!read_digits(&p, 2, &h) || *p++ != ':' ||
		!read_digits(&p, 2, &mi) || *p++ != ':' ||
		!read_digits(&p, 2, &sec))
		return false;
	if (*p == '.')
	{
		p++;
		while (*p >= '0' && *p <= '9' && ndigits < 3)
		{
			frac = frac * 10 + (*p - '0');
			ndigits++;
			p++;
		}
		if (ndigits == 0 || (*p >= '0' && *p <= '9'))
			return false; /* no digits, or sub-millisecond precision */
		while (ndigits < 3)
		{
			frac *= 10;
			ndigits++;
		}
	}
	if (*p == 'Z' || *p == 'z')
		p++;
	else if (strcmp(p, "+00:00") == 0 || strcmp(p, "+0000") == 0)
		p += strlen(p);
	if (*p != '\0')
		return false;
	if (y < 1 || mo < 1 || mo > 12 || d < 1 || d > days_in_month(y, mo) ||
		h > 23 || mi > 59 || sec > 59)
		return false;
	*ms_out = days_from_civil(y, mo, d) * LG_MS_PER_DAY +
			  (int64_t)((h * 60 + mi) * 60 + sec) * 1000 + frac;
	return true;
}


/* ---------------------------------------------------------------------
 * Output formatting helpers (no printf in the hot path)
 * ---------------------------------------------------------------------
 */

static inline char *
put_str(char *p, const char *s)
{
	while (*s)
		*p++ = *s++;
	return p;
}

static inline char *
put_u64(char *p, uint64_t v)
{
	char tmp[20];
	int n = 0;

	do
	{
		tmp[n++] = (char)('0' + v % 10);
		v /= 10;
	} while (v != 0);
	while (n > 0)
		*p++ = tmp[--n];
	return p;
}

static inline char *
put_fixed(char *p, int v, int width)
{
	int i;

	for (i = width - 1; i >= 0; i--)
	{
		p[i] = (char)('0' + v % 10);
		v /= 10;
	}
	return p + width;
}

/* Integer cents as "%d.%02d". */
static inline char *
put_amount(char *p, int cents)
{
	p = put_u64(p, (uint64_t)(cents / 100));
	*p++ = '.';
	return put_fixed(p, cents % 100, 2);
}

/* Milliseconds since the epoch as 2026-01-01T00:00:00.123Z (24 bytes). */
static char *
put_timestamp(char *p, int64_t ms)
{
	int64_t days;
	int64_t msofday;
	int64_t year;
	int month;
	int day;

	days = ms / LG_MS_PER_DAY;
	msofday = ms % LG_MS_PER_DAY;
	if (msofday < 0)
	{
		msofday += LG_MS_PER_DAY;
		days--;
	}
	civil_from_days(days, &year, &month, &day);
	p = put_fixed(p, (int)year, 4);
	*p++ = '-';
	p = put_fixed(p, month, 2);
	*p++ = '-';
	p = put_fixed(p, day, 2);
	*p++ = 'T';
	p = put_fixed(p, (int)(msofday / 3600000), 2);
	*p++ = ':';
	p = put_fixed(p, (int)(msofday / 60000 % 60), 2);
	*p++ = ':';
	p = put_fixed(p, (int)(msofday / 1000 % 60), 2);
	*p++ = '.';
	p = put_fixed(p, (int)(msofday % 1000), 3);
	*p++ = 'Z';
	return p;
}

/* A JSON string literal, quotes included. */
static char *
put_json_string(char *p, const char *s)
{
	static const char hex[] = "0123456789abcdef";

	*p++ = '"';
	for (; *s; s++)
	{
		unsigned char c = (unsigned char)*s;

		if (c == '"' || c == '\\')
		{
			*p++ = '\\';
			*p++ = (char)c;
		}
		else if (c < 0x20)
		{
			p = put_str(p, "\\u00");
			*p++ = hex[c >> 4];
			*p++ = hex[c & 15];
		}
		else
			*p++ = (char)c;
	}
	*p++ = '"';
	return p;
}

/*
 * An RFC 4180 CSV field: quoted when it contains a comma, a quote, CR or LF,
 * when it is empty (PostgreSQL's COPY reads an unquoted empty field as
 * NULL) and when it is exactly \. (COPY's end-of-data marker).
 */
static char *
put_csv_field(char *p, const char *s)
{
	if (*s != '\0' && strpbrk(s, ",\"\r\n") == NULL && strcmp(s, "\\.") != 0)
		return put_str(p, s);
	*p++ = '"';
	for (; *s; s++)
	{
		if (*s == '"')
			*p++ = '"';
		*p++ = *s;
	}
	*p++ = '"';
	return p;
}


/* ---------------------------------------------------------------------
 * The generator
 * ---------------------------------------------------------------------
 */

static inline uint64_t
splitmix64_mix(uint64_t z)
{
	z = (z ^ (z >> 30)) * UINT64_C(0xBF58476D1CE4E5B9);
	z = (z ^ (z >> 27)) * UINT64_C(0x94D049BB133111EB);
	return z ^ (z >> 31);
}

/* Uniform integer in [lo, hi] from one 64-bit draw. */
static inline int64_t
draw_range(uint64_t r, int64_t lo, int64_t hi)
{
	uint64_t span = (uint64_t)(hi - lo) + 1;

	return lo + (int64_t)(((unsigned __int128)r * span) >> 64);
}

static inline bool
draw_chance(uint64_t r, uint64_t threshold)
{
	return (r >> 11) < threshold;
}

static double *
build_zipf_cdf(int64_t n, double s)
{
	double *cdf;
	double total = 0.0;
	int64_t k;

	cdf = malloc(sizeof(double) * (size_t)n);
	if (cdf == NULL)
	{
		fprintf(stderr, "%s: out of memory for the Zipf table\n", progname);
		exit(1);
	}
	for (k = 0; k < n; k++)
	{
		total += pow((double)(k + 1), -s);
		cdf[k] = total;
	}
	for (k = 0; k < n; k++)
		cdf[k] /= total;
	cdf[n - 1] = 1.0;
	return cdf;
}

static int64_t
draw_user(const LgGenerator *gen, uint64_t r)
{
	double u;
	int64_t lo = 0;
	int64_t hi;

	if (gen->zipf_cdf == NULL)
		return draw_range(r, 1, gen->opts->users);

	/* smallest k with u < cdf[k]; rank 1 (user_id 1) is the hottest key */
	u = (double)(r >> 11) * 0x1.0p-53;
	hi = gen->opts->users - 1;
	while (lo < hi)
	{
		int64_t mid = lo + (hi - lo) / 2;

		if (u < gen->zipf_cdf[mid])
			hi = mid;
		else
			lo = mid + 1;
	}
	return lo + 1;
}

/* Fill in the canonical well-formed payload, key and oracle line. */
static void
format_event(const LgOptions *opts, LgMessage *msg, int64_t user, const char *url,
			 int cents, int64_t ts)
{
	char *p;

	p = put_u64(msg->key, (uint64_t)user);
	msg->keylen = (size_t)(p - msg->key);
	*p = '\0';

	p = msg->oracle;
	p = put_u64(p, (uint64_t)user);
	*p++ = ',';
	p = put_csv_field(p, url);
	*p++ = ',';
	p = put_amount(p, cents);
	*p++ = ',';
	p = put_timestamp(p, ts);
	*p++ = '\n';
	msg->oracle_len = (size_t)(p - msg->oracle);

	if (opts->format == LG_FORMAT_CSV)
	{
		memcpy(msg->line, msg->oracle, msg->oracle_len);
		msg->len = msg->oracle_len - 1;
		return;
	}
	p = msg->line;
	p = put_str(p, "{\"user_id\":");
	p = put_u64(p, (uint64_t)user);
	p = put_str(p, ",\"url\":");
	p = put_json_string(p, url);
	p = put_str(p, ",\"amount\":");
	p = put_amount(p, cents);
	p = put_str(p, ",\"ts\":\"");
	p = put_timestamp(p, ts);
	p = put_str(p, "\"}");
	msg->len = (size_t)(p - msg->line);
	*p = '\n';
}

/*
 * Build malformed message number "defect_no" into msg and return its reason.
 * The key stays the event's user_id, so that keyed consumers see it too.
 */
static const char *
format_malformed(const LgOptions *opts, LgMessage *msg, uint64_t defect_no,
				 int64_t user, const char *url, int cents, int64_t ts)
{
	static const char bad_ts[] = "2026-13-45T25:61:61.000Z";
	int defect = (int)(defect_no % LG_NUM_DEFECTS);
	const char *reason;
	char *p;

	/* start from the well-formed rendering: key, and the payload to cut */
	format_event(opts, msg, user, url, cents, ts);
	msg->oracle_len = 0;
	p = msg->line;

	if (opts->format == LG_FORMAT_JSON)
	{
		switch (defect)
		{
			case 0:
				/* cut in the middle: never valid JSON */
				p = msg->line + msg->len / 2;
				reason = "truncated_json";
				break;
			case 1:
				p = put_str(p, "{\"user_id\":");
				p = put_u64(p, (uint64_t)user);
				p = put_str(p, ",\"url\":");
				p = put_json_string(p, url);
				p = put_str(p, ",\"amount\":\"abc\",\"ts\":\"");
				p = put_timestamp(p, ts);
				p = put_str(p, "\"}");
				reason = "non_numeric_amount";
				break;
			case 2:
				p = put_str(p, "{\"user_id\":\"user-");
				p = put_u64(p, (uint64_t)user);
				p = put_str(p, "\",\"url\":");
				p = put_json_string(p, url);
				p = put_str(p, ",\"amount\":");
				p = put_amount(p, cents);
				p = put_str(p, ",\"ts\":\"");
				p = put_timestamp(p, ts);
				p = put_str(p, "\"}");
				reason = "wrong_type_user_id";
				break;
			case 3:
				p = put_str(p, "{\"user_id\":");
				p = put_u64(p, (uint64_t)user);
				p = put_str(p, ",\"url\":");
				p = put_json_string(p, url);
				p = put_str(p, ",\"amount\":");
				p = put_amount(p, cents);
				p = put_str(p, ",\"ts\":\"");
				p = put_str(p, bad_ts);
				p = put_str(p, "\"}");
				reason = "invalid_timestamp";
				break;
			default:
				p = put_str(p, "not json: user_id=");
				p = put_u64(p, (uint64_t)user);
				p = put_str(p, " amount=");
				p = put_amount(p, cents);
				reason = "invalid_json";
				break;
		}
	}
	else
	{
		switch (defect)
		{
			case 0:
				p = put_u64(p, (uint64_t)user);
				*p++ = ',';
				p = put_csv_field(p, url);
				*p++ = ',';
				p = put_amount(p, cents);
				reason = "too_few_columns";
				break;
			case 1:
				p = put_u64(p, (uint64_t)user);
				*p++ = ',';
				p = put_csv_field(p, url);
				p = put_str(p, ",abc,");
				p = put_timestamp(p, ts);
				reason = "non_numeric_amount";
				break;
			case 2:
				p = put_str(p, "user-");
				p = put_u64(p, (uint64_t)user);
				*p++ = ',';
				p = put_csv_field(p, url);
				*p++ = ',';
				p = put_amount(p, cents);
				*p++ = ',';
				p = put_timestamp(p, ts);
				reason = "wrong_type_user_id";
				break;
			case 3:
				p = put_u64(p, (uint64_t)user);
				*p++ = ',';
				p = put_csv_field(p, url);
				*p++ = ',';
				p = put_amount(p, cents);
				*p++ = ',';
				p = put_str(p, bad_ts);
				reason = "invalid_timestamp";
				break;
			default:
				p = msg->line + msg->len;
				p = put_str(p, ",extra");
				reason = "too_many_columns";
				break;
		}
	}
	msg->len = (size_t)(p - msg->line);
	*p = '\n';
	return reason;
}

/*
 * Generate message number i.  Returns the message to emit (owned by the
 * generator, valid until the next call) and sets *kind; *reason is set for
 * malformed messages.
 */
static const LgMessage *
generate(LgGenerator *gen, uint64_t i, LgKind *kind, const char **reason)
{
	const LgOptions *opts = gen->opts;
	uint64_t r[LG_DRAWS_PER_EVENT];
	uint64_t state;
	int64_t user;
	int64_t urlno;
	int cents;
	int64_t ts;
	char url[LG_URL_MAX];
	char *p;
	LgMessage *msg;
	int j;

	/* outputs [8i, 8i+8) of splitmix64 seeded with --seed */
	state = opts->seed + i * (LG_DRAWS_PER_EVENT * SPLITMIX_GAMMA);
	for (j = 0; j < LG_DRAWS_PER_EVENT; j++)
	{
		state += SPLITMIX_GAMMA;
		r[j] = splitmix64_mix(state);
	}

	gen->n_total++;

	/*
	 * r[0] picks the kind: [0, dup) duplicate, [dup, dup + mal) malformed,
	 * the rest fresh.  A duplicate with nothing to copy yet becomes fresh.
	 */
	if (draw_chance(r[0], gen->thr_dup) && gen->ring_filled > 0)
	{
		int slot;

		/* slot k back from the newest, k uniform over what is filled */
		slot = (int)draw_range(r[6], 1, gen->ring_filled);
		slot = (gen->ring_next - slot + LG_RING) % LG_RING;
		gen->n_wellformed++;
		gen->n_duplicates++;
		*kind = LG_KIND_DUPLICATE;
		return &gen->ring[slot];
	}

	user = draw_user(gen, r[1]);
	urlno = draw_range(r[2], 1, opts->urls);
	cents = (int)draw_range(r[3], 1, LG_MAX_CENTS);
	if (opts->ts_now)
		ts = realtime_ms();
	else
		ts = opts->start_ms + (int64_t)i * opts->interval_ms;
	if (draw_chance(r[4], gen->thr_disorder))
		ts -= draw_range(r[5], 1, opts->max_delay_ms);

	p = put_str(url, "/p/");
	p = put_u64(p, (uint64_t)urlno);
	*p = '\0';

	if (!draw_chance(r[0], gen->thr_dup) &&
		draw_chance(r[0], gen->thr_dup + gen->thr_mal))
	{
		*reason = format_malformed(opts, &gen->scratch, gen->n_malformed,
								   user, url, cents, ts);
		gen->n_malformed++;
		*kind = LG_KIND_MALFORMED;
		return &gen->scratch;
	}

	msg = &gen->ring[gen->ring_next];
	format_event(opts, msg, user, url, cents, ts);
	gen->ring_next = (gen->ring_next + 1) % LG_RING;
	if (gen->ring_filled < LG_RING)
		gen->ring_filled++;
	gen->n_wellformed++;
	*kind = LG_KIND_FRESH;
	return msg;
}


/* ---------------------------------------------------------------------
 * Kafka
 * ---------------------------------------------------------------------
 */

static void
kafka_dr_cb(rd_kafka_t *rk, const rd_kafka_message_t *rkmessage, void *opaque)
{
	LgKafka *k = (LgKafka *)opaque;

	(void)rk;
	if (rkmessage->err == RD_KAFKA_RESP_ERR_NO_ERROR)
	{
		k->delivered++;
		return;
	}
	k->failed++;
	if (k->first_error[0] == '\0')
		snprintf(k->first_error, sizeof(k->first_error), "%s",
				 rd_kafka_err2str(rkmessage->err));
}

static void
kafka_error_cb(rd_kafka_t *rk, int err, const char *reason, void *opaque)
{
	LgKafka *k = (LgKafka *)opaque;
	char fatal[512];

	if (err == RD_KAFKA_RESP_ERR__FATAL)
	{
		rd_kafka_fatal_error(rk, fatal, sizeof(fatal));
		fprintf(stderr, "%s: kafka fatal error: %s\n", progname, fatal);
		k->fatal = true;
		return;
	}
	/*
	 * Transient: librdkafka retries by itself, and already logs transport
	 * failures; report the rest, without flooding the terminal.
	 */
	if (err != RD_KAFKA_RESP_ERR__TRANSPORT && k->errors_reported++ < 10)
		fprintf(stderr, "%s: kafka: %s: %s\n", progname,
				rd_kafka_err2name((rd_kafka_resp_err_t)err), reason);
}

static void
kafka_conf_set(rd_kafka_conf_t *conf, const char *name, const char *value)
{
	char errstr[512];

	if (rd_kafka_conf_set(conf, name, value, errstr, sizeof(errstr)) != RD_KAFKA_CONF_OK)
		bad_args("librdkafka property %s=%s: %s", name, value, errstr);
}

static void
kafka_open(LgKafka *k, const LgOptions *opts)
{
	rd_kafka_conf_t *conf = rd_kafka_conf_new();
	char errstr[512];
	int x;

	memset(k, 0, sizeof(*k));

	kafka_conf_set(conf, "bootstrap.servers", opts->brokers);
	kafka_conf_set(conf, "client.id", "streamproc-loadgen");
	/* Java-compatible key hashing: a key always maps to one partition */
	kafka_conf_set(conf, "partitioner", "murmur2_random");
	kafka_conf_set(conf, "linger.ms", "5");
	kafka_conf_set(conf, "batch.num.messages", "10000");
	kafka_conf_set(conf, "batch.size", "1000000");
	kafka_conf_set(conf, "queue.buffering.max.messages", "500000");
	kafka_conf_set(conf, "queue.buffering.max.kbytes", "1048576");
	kafka_conf_set(conf, "message.timeout.ms", "60000");

	for (x = 0; x < opts->nxprops; x++)
	{
		char name[256];
		const char *eq = strchr(opts->xprops[x], '=');
		size_t namelen = (size_t)(eq - opts->xprops[x]);

		/* format checked while parsing arguments */
		if (namelen >= sizeof(name))
			bad_args("-X property name too long: %s", opts->xprops[x]);
		memcpy(name, opts->xprops[x], namelen);
		name[namelen] = '\0';
		kafka_conf_set(conf, name, eq + 1);
	}

	rd_kafka_conf_set_opaque(conf, k);
	rd_kafka_conf_set_dr_msg_cb(conf, kafka_dr_cb);
	rd_kafka_conf_set_error_cb(conf, kafka_error_cb);

	k->rk = rd_kafka_new(RD_KAFKA_PRODUCER, conf, errstr, sizeof(errstr));
	if (k->rk == NULL)
	{
		fprintf(stderr, "%s: could not create Kafka producer: %s\n",
				progname, errstr);
		exit(1);
	}
	k->rkt = rd_kafka_topic_new(k->rk, opts->topic, NULL);
	if (k->rkt == NULL)
	{
		fprintf(stderr, "%s: could not create topic handle \"%s\": %s\n",
				progname, opts->topic, rd_kafka_err2str(rd_kafka_last_error()));
		exit(1);
	}
}

/* Enqueue one message; waits (serving delivery reports) while the queue is full. */
static bool
kafka_produce(LgKafka *k, const LgMessage *msg)
{
	for (;;)
	{
		rd_kafka_resp_err_t err;

		err = rd_kafka_producev(k->rk,
								RD_KAFKA_V_RKT(k->rkt),
								RD_KAFKA_V_PARTITION(RD_KAFKA_PARTITION_UA),
								RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY),
								RD_KAFKA_V_KEY(msg->key, msg->keylen),
								RD_KAFKA_V_VALUE((void *)msg->line, msg->len),
								RD_KAFKA_V_END);
		if (err == RD_KAFKA_RESP_ERR_NO_ERROR)
		{
			k->produced++;
			return true;
		}
		if (err != RD_KAFKA_RESP_ERR__QUEUE_FULL)
		{
			fprintf(stderr, "%s: could not produce to Kafka: %s\n",
					progname, rd_kafka_err2str(err));
			return false;
		}
		/* the queue drains as deliveries complete, or time out */
		rd_kafka_poll(k->rk, 10);
		if (k->fatal)
			return false;
	}
}

/* Flush and tear down; returns true when every produced message was delivered. */
static bool
kafka_close(LgKafka *k, int64_t flush_timeout_ms)
{
	rd_kafka_resp_err_t err;
	bool ok;

	err = rd_kafka_flush(k->rk, (int)flush_timeout_ms);
	if (err == RD_KAFKA_RESP_ERR__TIMED_OUT)
	{
		fprintf(stderr, "%s: %d messages still undelivered after %" PRId64 " ms flush timeout\n",
				progname, rd_kafka_outq_len(k->rk), flush_timeout_ms);
		rd_kafka_purge(k->rk, RD_KAFKA_PURGE_F_QUEUE | RD_KAFKA_PURGE_F_INFLIGHT);
		/* serve the purged messages' delivery reports */
		rd_kafka_flush(k->rk, 5000);
	}
	rd_kafka_poll(k->rk, 0);

	/* anything not reported either way counts as a failure */
	if (k->delivered + k->failed < k->produced)
	{
		if (k->first_error[0] == '\0')
			snprintf(k->first_error, sizeof(k->first_error),
					 "no delivery report");
		k->failed = k->produced - k->delivered;
	}
	ok = (k->failed == 0 && !k->fatal);
	if (k->failed > 0)
		fprintf(stderr, "%s: %" PRIu64 " of %" PRIu64 " Kafka deliveries failed: %s\n",
				progname, k->failed, k->produced, k->first_error);

	rd_kafka_topic_destroy(k->rkt);
	rd_kafka_destroy(k->rk);
	return ok;
}


/* ---------------------------------------------------------------------
 * Argument parsing
 * ---------------------------------------------------------------------
 */

enum
{
	OPT_COUNT = 256,
	OPT_USERS,
	OPT_URLS,
	OPT_SKEW,
	OPT_START_TIME,
	OPT_INTERVAL_MS,
	OPT_TS,
	OPT_DISORDER,
	OPT_MAX_DELAY_MS,
	OPT_DUPLICATES,
	OPT_MALFORMED,
	OPT_MALFORMED_LOG,
	OPT_FORMAT,
	OPT_RATE,
	OPT_SEED,
	OPT_BROKERS,
	OPT_TOPIC,
	OPT_ORACLE_CSV,
	OPT_PRINT_KEY,
	OPT_QUIET,
	OPT_FLUSH_TIMEOUT_MS,
	OPT_HELP
};

static void
parse_args(int argc, char **argv, LgOptions *opts)
{
	static const struct option longopts[] = {
		{"count", required_argument, NULL, OPT_COUNT},
		{"users", required_argument, NULL, OPT_USERS},
		{"urls", required_argument, NULL, OPT_URLS},
		{"skew", required_argument, NULL, OPT_SKEW},
		{"start-time", required_argument, NULL, OPT_START_TIME},
		{"interval-ms", required_argument, NULL, OPT_INTERVAL_MS},
		{"ts", required_argument, NULL, OPT_TS},
		{"disorder", required_argument, NULL, OPT_DISORDER},
		{"max-delay-ms", required_argument, NULL, OPT_MAX_DELAY_MS},
		{"duplicates", required_argument, NULL, OPT_DUPLICATES},
		{"malformed", required_argument, NULL, OPT_MALFORMED},
		{"malformed-log", required_argument, NULL, OPT_MALFORMED_LOG},
		{"format", required_argument, NULL, OPT_FORMAT},
		{"rate", required_argument, NULL, OPT_RATE},
		{"seed", required_argument, NULL, OPT_SEED},
		{"brokers", required_argument, NULL, OPT_BROKERS},
		{"topic", required_argument, NULL, OPT_TOPIC},
		{"oracle-csv", required_argument, NULL, OPT_ORACLE_CSV},
		{"print-key", no_argument, NULL, OPT_PRINT_KEY},
		{"quiet", no_argument, NULL, OPT_QUIET},
		{"flush-timeout-ms", required_argument, NULL, OPT_FLUSH_TIMEOUT_MS},
		{"help", no_argument, NULL, OPT_HELP},
		{NULL, 0, NULL, 0}};
	const char *start_time = "2026-01-01T00:00:00Z";
	int c;

	memset(opts, 0, sizeof(*opts));
	opts->users = 1000;
	opts->urls = 100;
	opts->interval_ms = 1;
	opts->max_delay_ms = 5000;
	opts->format = LG_FORMAT_JSON;
	opts->seed = 1;
	opts->flush_timeout_ms = 60000;

	opterr = 0; /* we report errors ourselves */
	while ((c = getopt_long(argc, argv, ":X:h", longopts, NULL)) != -1)
	{
		switch (c)
		{
			case OPT_COUNT:
				opts->count = (uint64_t)option_int("count", optarg, 0, INT64_MAX);
				opts->count_given = true;
				break;
			case OPT_USERS:
				opts->users = option_int("users", optarg, 1, INT32_MAX);
				break;
			case OPT_URLS:
				opts->urls = option_int("urls", optarg, 1, INT32_MAX);
				break;
			case OPT_SKEW:
				opts->skew = option_double("skew", optarg, 0.0, 100.0);
				break;
			case OPT_START_TIME:
				start_time = optarg;
				opts->ts_fixed = true;
				break;
			case OPT_INTERVAL_MS:
				opts->interval_ms = option_int("interval-ms", optarg, 0, LG_MS_PER_DAY);
				opts->ts_fixed = true;
				break;
			case OPT_TS:
				if (strcmp(optarg, "now") == 0)
					opts->ts_now = true;
				else if (strcmp(optarg, "seq") == 0)
					opts->ts_now = false;
				else
					bad_args("invalid value for --ts: \"%s\" (expected seq or now)", optarg);
				break;
			case OPT_DISORDER:
				opts->disorder = option_double("disorder", optarg, 0.0, 1.0);
				break;
			case OPT_MAX_DELAY_MS:
				opts->max_delay_ms = option_int("max-delay-ms", optarg, 1, 366 * LG_MS_PER_DAY);
				break;
			case OPT_DUPLICATES:
				opts->duplicates = option_double("duplicates", optarg, 0.0, 1.0);
				break;
			case OPT_MALFORMED:
				opts->malformed = option_double("malformed", optarg, 0.0, 1.0);
				break;
			case OPT_MALFORMED_LOG:
				opts->malformed_log = optarg;
				break;
			case OPT_FORMAT:
				if (strcmp(optarg, "json") == 0)
					opts->format = LG_FORMAT_JSON;
				else if (strcmp(optarg, "csv") == 0)
					opts->format = LG_FORMAT_CSV;
				else
					bad_args("invalid value for --format: \"%s\" (expected json or csv)", optarg);
				break;
			case OPT_RATE:
				opts->rate = option_double("rate", optarg, 0.0, 1e9);
				break;
			case OPT_SEED:
				if (!parse_u64(optarg, &opts->seed))
					bad_args("invalid value for --seed: \"%s\" (expected an unsigned 64-bit integer)", optarg);
				break;
			case OPT_BROKERS:
				opts->brokers = optarg;
				break;
			case OPT_TOPIC:
				opts->topic = optarg;
				break;
			case OPT_ORACLE_CSV:
				opts->oracle_csv = optarg;
				break;
			case OPT_PRINT_KEY:
				opts->print_key = true;
				break;
			case OPT_QUIET:
				opts->quiet = true;
				break;
			case OPT_FLUSH_TIMEOUT_MS:
				opts->flush_timeout_ms = option_int("flush-timeout-ms", optarg, 1, INT32_MAX);
				break;
			case 'X':
				if (strchr(optarg, '=') == NULL || optarg[0] == '=')
					bad_args("invalid -X argument \"%s\" (expected KEY=VALUE)", optarg);
				if (opts->nxprops >= LG_MAX_XPROPS)
					bad_args("too many -X options (at most %d)", LG_MAX_XPROPS);
				opts->xprops[opts->nxprops++] = optarg;
				break;
			case 'h':
			case OPT_HELP:
				usage(stdout);
				exit(0);
			case ':':
				bad_args("option %s requires an argument", argv[optind - 1]);
			default:
				bad_args("unrecognized option \"%s\"", argv[optind - 1]);
		}
	}
	if (optind < argc)
		bad_args("unexpected argument \"%s\"", argv[optind]);

	if (!opts->count_given)
		bad_args("--count is required (0 = unbounded)");
	if ((opts->brokers == NULL) != (opts->topic == NULL))
		bad_args("--brokers and --topic must be given together");
	if (opts->nxprops > 0 && opts->brokers == NULL)
		bad_args("-X requires --brokers and --topic");
	if (opts->print_key && opts->brokers != NULL)
		bad_args("--print-key applies to stdout output only");
	if (opts->brokers != NULL && opts->brokers[0] == '\0')
		bad_args("--brokers must not be empty");
	if (opts->topic != NULL && opts->topic[0] == '\0')
		bad_args("--topic must not be empty");
	if (opts->duplicates + opts->malformed > 1.0)
		bad_args("--duplicates + --malformed must not exceed 1");
	if (opts->skew > 0 && opts->users > LG_MAX_SKEW_USERS)
		bad_args("--skew supports at most %d users", LG_MAX_SKEW_USERS);
	if (opts->ts_now && opts->ts_fixed)
		bad_args("--ts now cannot be combined with --start-time or --interval-ms");

	if (strcmp(start_time, "now") == 0)
	{
		struct timespec now;

		clock_gettime(CLOCK_REALTIME, &now);
		opts->start_ms = (int64_t)now.tv_sec * 1000 + now.tv_nsec / 1000000;
		opts->start_now = true;
	}
	else if (!parse_iso8601_utc(start_time, &opts->start_ms))
		bad_args("invalid value for --start-time: \"%s\" "
				 "(expected e.g. 2026-01-01T00:00:00Z, UTC, or \"now\")",
				 start_time);

	/* every timestamp must stay within years 0001..9999 */
	if (opts->start_ms - opts->max_delay_ms < LG_MIN_TS_MS)
		bad_args("--start-time minus --max-delay-ms is before year 1");
	if (!opts->ts_now && opts->count > 0 && opts->interval_ms > 0 &&
		(opts->count - 1 > (uint64_t)((LG_MAX_TS_MS - 1 - opts->start_ms) / opts->interval_ms)))
		bad_args("timestamps would pass year 9999; lower --count or --interval-ms");
}


/* ---------------------------------------------------------------------
 * Main loop
 * ---------------------------------------------------------------------
 */

static FILE *
open_output(const char *path, const char *what)
{
	FILE *f = fopen(path, "w");

	if (f == NULL)
	{
		fprintf(stderr, "%s: could not open %s \"%s\": %s\n",
				progname, what, path, strerror(errno));
		exit(1);
	}
	setvbuf(f, NULL, _IOFBF, 1 << 20);
	return f;
}

static bool
close_output(FILE *f, const char *path, const char *what)
{
	bool ok = !ferror(f);

	if (fclose(f) != 0)
		ok = false;
	if (!ok)
		fprintf(stderr, "%s: could not write %s \"%s\": %s\n",
				progname, what, path, strerror(errno));
	return ok;
}

/* Sleep until the absolute CLOCK_MONOTONIC time deadline_ns (or a signal). */
static void
sleep_until(int64_t deadline_ns)
{
	struct timespec ts;

	ts.tv_sec = (time_t)(deadline_ns / INT64_C(1000000000));
	ts.tv_nsec = (long)(deadline_ns % INT64_C(1000000000));
	while (!stop_requested &&
		   clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &ts, NULL) == EINTR)
		;
}

int
main(int argc, char **argv)
{
	LgOptions opts;
	LgGenerator *gen;
	LgKafka kafka;
	bool use_kafka;
	FILE *oracle = NULL;
	FILE *mallog = NULL;
	struct sigaction sa;
	int64_t t0;
	int64_t t_end;
	int64_t next_progress;
	uint64_t progress_base = 0;
	int64_t progress_t = 0;
	uint64_t burst;
	uint64_t due = 0;
	uint64_t i;
	bool ok = true;
	double secs;

	parse_args(argc, argv, &opts);
	use_kafka = (opts.brokers != NULL);

	gen = calloc(1, sizeof(LgGenerator));
	if (gen == NULL)
	{
		fprintf(stderr, "%s: out of memory\n", progname);
		return 1;
	}
	gen->opts = &opts;
	gen->thr_dup = probability_threshold(opts.duplicates);
	gen->thr_mal = probability_threshold(opts.malformed);
	gen->thr_disorder = probability_threshold(opts.disorder);
	if (opts.skew > 0)
		gen->zipf_cdf = build_zipf_cdf(opts.users, opts.skew);

	if (opts.oracle_csv != NULL)
		oracle = open_output(opts.oracle_csv, "oracle CSV");
	if (opts.malformed_log != NULL)
		mallog = open_output(opts.malformed_log, "malformed log");
	if (use_kafka)
		kafka_open(&kafka, &opts);
	else
		setvbuf(stdout, NULL, _IOFBF, 1 << 20);

	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = handle_stop_signal;
	sigemptyset(&sa.sa_mask);
	sa.sa_flags = SA_RESETHAND; /* a second signal kills at once */
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGTERM, &sa, NULL);

	/* when paced, wake up about once a millisecond (at least one message) */
	burst = (opts.rate >= 2000.0) ? (uint64_t)(opts.rate / 1000.0) : 1;

	t0 = monotonic_ns();
	next_progress = t0 + LG_PROGRESS_NS;
	progress_t = t0;

	for (i = 0; opts.count == 0 || i < opts.count; i++)
	{
		const LgMessage *msg;
		LgKind kind;
		const char *reason = NULL;

		if (stop_requested)
			break;

		if (opts.rate > 0 && i >= due)
		{
			int64_t now = monotonic_ns();

			due = (uint64_t)((double)(now - t0) * opts.rate / 1e9) + 1;
			if (i >= due)
			{
				/* let consumers see what we have before sleeping */
				if (use_kafka)
					rd_kafka_poll(kafka.rk, 0);
				else if (fflush(stdout) != 0)
				{
					ok = false;
					break;
				}
				sleep_until(t0 + (int64_t)((double)(i + burst - 1) * 1e9 / opts.rate));
				if (stop_requested)
					break;
				due = (uint64_t)((double)(monotonic_ns() - t0) * opts.rate / 1e9) + 1;
			}
		}

		if (!opts.ts_now && opts.interval_ms > 0 &&
			i > (uint64_t)((LG_MAX_TS_MS - 1 - opts.start_ms) / opts.interval_ms))
		{
			fprintf(stderr, "%s: stopping: timestamps would pass year 9999\n", progname);
			break;
		}

		msg = generate(gen, i, &kind, &reason);

		if (use_kafka)
		{
			if (!kafka_produce(&kafka, msg))
			{
				ok = false;
				break;
			}
			if ((i & 1023) == 0)
				rd_kafka_poll(kafka.rk, 0);
		}
		else
		{
			if (opts.print_key)
			{
				fwrite(msg->key, 1, msg->keylen, stdout);
				putc('\t', stdout);
			}
			if (fwrite(msg->line, 1, msg->len + 1, stdout) != msg->len + 1)
			{
				ok = false;
				break;
			}
		}

		if (kind == LG_KIND_MALFORMED)
		{
			if (mallog != NULL)
				fprintf(mallog, "%" PRIu64 ",%s\n", i, reason);
		}
		else if (oracle != NULL)
			fwrite(msg->oracle, 1, msg->oracle_len, oracle);

		if (!opts.quiet && (i & 1023) == 0)
		{
			int64_t now = monotonic_ns();

			if (now >= next_progress)
			{
				fprintf(stderr, "%s: progress: %" PRIu64 " events, %.0f events/s\n",
						progname, i + 1,
						(double)(i + 1 - progress_base) * 1e9 / (double)(now - progress_t));
				progress_base = i + 1;
				progress_t = now;
				next_progress = now + LG_PROGRESS_NS;
			}
		}
	}

	if (use_kafka)
	{
		if (!kafka_close(&kafka, opts.flush_timeout_ms))
			ok = false;
	}
	else if (fflush(stdout) != 0 || ferror(stdout))
	{
		fprintf(stderr, "%s: could not write to stdout: %s\n", progname, strerror(errno));
		ok = false;
	}
	t_end = monotonic_ns();

	if (oracle != NULL && !close_output(oracle, opts.oracle_csv, "oracle CSV"))
		ok = false;
	if (mallog != NULL && !close_output(mallog, opts.malformed_log, "malformed log"))
		ok = false;

	secs = (double)(t_end - t0) / 1e9;
	fprintf(stderr, "%s: %" PRIu64 " events (%" PRIu64 " well-formed, %" PRIu64 " duplicates, %" PRIu64 " malformed) in %.3f s, %.0f events/s\n",
			progname, gen->n_total, gen->n_wellformed, gen->n_duplicates,
			gen->n_malformed, secs,
			secs > 0 ? (double)gen->n_total / secs : 0.0);

	free(gen->zipf_cdf);
	free(gen);
	return ok ? 0 : 1;
}
