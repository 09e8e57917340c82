/*-------------------------------------------------------------------------
 *
 * devbroker.c
 *	  Standalone Kafka-protocol broker for development, tests, the demo
 *	  and benchmarks, built on librdkafka's mock cluster.
 *
 * Debian ships no Kafka server, so this small process plays the part of
 * one.  It speaks the real Kafka protocol over TCP on 127.0.0.1, so any
 * Kafka client (librdkafka, kcat, ...) can talk to it.
 *
 * Design
 * ------
 * The broker is librdkafka's mock cluster (rdkafka_mock.h).  A mock cluster
 * must be attached to an rd_kafka_t handle for librdkafka's internal
 * bookkeeping, so we create a producer handle that we own and never use
 * for producing (it has no bootstrap.servers), and call
 * rd_kafka_mock_cluster_new() on it with --brokers brokers (ids 1..N).
 * Each broker gets a listener on 127.0.0.1 at a port chosen by the kernel;
 * rd_kafka_mock_cluster_bootstraps() returns the resulting address list,
 * which we publish in the --bootstrap-file.  Topics given with --topic are
 * created with rd_kafka_mock_topic_create() before the cluster is
 * announced.
 *
 * Threads: the main thread is ours.  librdkafka adds the handle's own
 * threads (its main thread and an internal broker thread) and one mock
 * cluster thread, which serves the listeners and all client connections of
 * every mock broker with poll().  Control calls such as
 * rd_kafka_mock_topic_create() and rd_kafka_mock_broker_set_down() are
 * queued to the mock cluster thread and wait for it to carry them out, so
 * when such a call returns the change is in effect.
 *
 * Signals: SIGTERM and SIGINT stop the broker, SIGUSR1 takes all brokers
 * down and SIGUSR2 brings them back up.  The handlers only write the signal
 * number to a non-blocking self-pipe; every librdkafka call happens in the
 * main loop, which blocks in poll() on that pipe (with a 100 ms timeout
 * when a --control-file is watched, otherwise with no timeout).  These
 * signals are blocked while librdkafka creates its threads, so the threads
 * inherit a mask that blocks them and the signals are always delivered to
 * the main thread.  SIGPIPE is ignored.  Like all standard signals, a
 * SIGUSR1 and a SIGUSR2 pending at the same time are merged and delivered
 * in signal-number order, so senders should wait for the state file to
 * change before sending the next one.
 *
 * Control file: with --control-file, the main loop examines the file at
 * every wake-up (at least every 100 ms).  When its content, size, mtime or
 * inode changed and the trimmed content is "down" or "up", it acts as for
 * SIGUSR1 or SIGUSR2.  The content found at startup is only a baseline, so
 * a stale file cannot start the broker down.
 *
 * Readiness: the pid file (if any) and the state file
 * ("<bootstrap-file>.state", containing "up" or "down") are written first,
 * and the bootstrap file last, so that a bootstrap file that exists means
 * the broker is ready.  Every file is written atomically: to "PATH.tmp",
 * then rename()d over PATH, so no reader ever sees it half-written.  At
 * shutdown the bootstrap file is removed first, then the state and pid
 * files, then the cluster is destroyed.
 *
 * Outages: "down" calls rd_kafka_mock_broker_set_down() for every broker
 * id.  The mock broker closes all client connections and keeps its port
 * bound but not listening, so new connections are refused at once; "up"
 * listens on the same port again.  Partition data, committed offsets and
 * topics survive the outage; only connections are lost.
 *
 * Request size: every request larger than MAX_REQUEST_BYTES (2.5 MiB) is
 * refused, so that no produced batch is ever lost silently.  The mock
 * cluster keeps at most 5 MiB of batches per partition (max_size, set in
 * rd_kafka_mock_partition_init() and changed by no mock API of librdkafka
 * 2.0.2).  rd_kafka_mock_msgset_new() counts a new batch into the
 * partition's size, then drops the oldest batches until the size is back
 * within 5 MiB, and only then links the new batch in.  When that loop has
 * to drop every older batch, the last one it drops makes
 * rd_kafka_mock_msgset_destroy() set the log start to the log end, which
 * already lies past the new batch: the batch is acknowledged to the
 * producer and never readable.  That happens whenever the newest batch
 * and the new one together exceed 5 MiB: a batch over 5 MiB is lost, so
 * is the message after it, and two batches of 3 MiB lose the second.
 * Batches of at most 2.5 MiB never add up to more than 5 MiB, so we set
 * the handle's receive.message.max.bytes, which the mock cluster compares
 * with the size of every request it reads (from the 4-byte length on),
 * to 2.5 MiB: a larger request is refused before it reaches the log, the
 * mock logs "Invalid request size" at LOG_ERR (log_cb adds what it means)
 * and closes the connection, and the producer fails the message when its
 * message.timeout.ms runs out.  Compressed batches count with their
 * compressed size, so larger messages that compress well still pass.
 *
 * Limits (of librdkafka 2.0.2's mock cluster):
 *	- Each partition keeps only its newest part: the oldest message batches
 *	  are dropped once a partition holds more than about 100,000 batches or
 *	  5 MiB of batch data (hard-coded in librdkafka, approximate and subject
 *	  to change between versions).  Consumers that fall behind get
 *	  OFFSET_OUT_OF_RANGE.
 *	- Requests, hence produced batches, are limited to 2.5 MiB (above).
 *	- Fetch returns at most one message batch per partition per request,
 *	  and an empty fetch waits the whole fetch.wait.max.ms even if data
 *	  arrives meanwhile.
 *	- Transactions are accepted but read_committed isolation is not
 *	  honoured: consumers see aborted and uncommitted messages.
 *	- Topics that are not pre-created are auto-created with 4 partitions by
 *	  any Metadata request naming them (even from consumers).  The mock API
 *	  offers no way to change that default, so --default-partitions is
 *	  accepted but only 4 takes effect; other values draw a warning.
 *	- The replication factor given to rd_kafka_mock_topic_create() is
 *	  ignored: every partition gets min(3, brokers) replicas and a random
 *	  leader among them.
 *	- Nothing is persisted: all data is lost when devbroker exits.
 *	- Ports are random on every start, hence the bootstrap file.
 *
 * IDENTIFICATION
 *	  tools/devbroker/devbroker.c
 *
 *-------------------------------------------------------------------------
 */
#define _GNU_SOURCE

#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <syslog.h>
#include <unistd.h>

#include <librdkafka/rdkafka.h>
#include <librdkafka/rdkafka_mock.h>

#define PROGNAME "devbroker"

/* Limits on command-line values; generous but catching typos. */
#define MAX_BROKERS        64
#define MAX_PARTITIONS     10000
#define MAX_TOPIC_NAME_LEN 249

/* The partition count librdkafka's mock cluster uses for auto-created topics */
#define MOCK_AUTO_CREATE_PARTITIONS 4

/*
 * The largest request the mock cluster accepts: half of the 5 MiB a mock
 * partition keeps, so that no batch is lost (see the header comment).
 */
#define MAX_REQUEST_BYTES (5 * 1024 * 1024 / 2)

/* How often the control file is examined, in milliseconds */
#define CONTROL_POLL_MS 100

/* Largest control file content we look at */
#define CONTROL_BUF_SIZE 64

typedef struct TopicSpec
{
	char *name;
	int partitions;
} TopicSpec;

typedef struct Options
{
	const char *bootstrap_file;
	const char *pid_file;
	const char *control_file;
	int brokers;
	int default_partitions;
	bool quiet;
	TopicSpec *topics;
	int ntopics;
} Options;

/* What we last saw in the control file; a change triggers re-evaluation */
typedef struct ControlSnapshot
{
	bool exists;
	dev_t dev;
	ino_t ino;
	off_t size;
	struct timespec mtime;
	char content[CONTROL_BUF_SIZE];
} ControlSnapshot;

/* Self-pipe written to by the signal handlers */
static int signal_pipe[2] = {-1, -1};

/* Set by the handlers for SIGTERM and SIGINT */
static volatile sig_atomic_t got_term_signal = 0;

/* Set by --quiet and DEVBROKER_DEBUG; read by the log callback, too */
static bool quiet = false;
static bool debug_logging = false;

static void
usage(FILE *out)
{
	fprintf(out,
			"Usage: " PROGNAME " --bootstrap-file PATH [OPTION]...\n"
			"\n"
			"Run a Kafka-protocol broker (librdkafka mock cluster) on 127.0.0.1\n"
			"until SIGTERM or SIGINT.\n"
			"\n"
			"Options:\n"
			"  --bootstrap-file PATH     write the bootstrap address list here when\n"
			"                            ready (required)\n"
			"  --brokers N               number of brokers (default 1, max %d)\n"
			"  --topic NAME:PARTITIONS   pre-create a topic (repeatable)\n"
			"  --default-partitions N    partitions of auto-created topics (default 4;\n"
			"                            the mock cluster supports only 4)\n"
			"  --pid-file PATH           write the process id here\n"
			"  --control-file PATH       watch this file for \"down\" or \"up\"\n"
			"  --quiet                   print only warnings and errors\n"
			"  --help                    show this help and exit\n"
			"\n"
			"Signals: SIGUSR1 takes all brokers down, SIGUSR2 brings them up.\n"
			"The current state (\"up\" or \"down\") is kept in PATH.state.\n",
			MAX_BROKERS);
}

/*
 * Report a command-line error and exit with status 2.
 */
static void
bad_usage(const char *fmt, ...)
{
	va_list ap;

	fprintf(stderr, PROGNAME ": ");
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fprintf(stderr, "\n");
	usage(stderr);
	exit(2);
}

/*
 * Parse a decimal integer in [min, max].  Returns false if the string is
 * not entirely such a number.
 */
static bool
parse_int(const char *s, int min, int max, int *result)
{
	char *end;
	long val;

	if (*s == '\0')
		return false;
	errno = 0;
	val = strtol(s, &end, 10);
	if (errno != 0 || *end != '\0' || val < min || val > max)
		return false;
	*result = (int)val;
	return true;
}

/*
 * Is this a legal Kafka topic name?
 */
static bool
valid_topic_name(const char *name, size_t len)
{
	size_t i;

	if (len == 0 || len > MAX_TOPIC_NAME_LEN)
		return false;
	if ((len == 1 && name[0] == '.') ||
		(len == 2 && name[0] == '.' && name[1] == '.'))
		return false;
	for (i = 0; i < len; i++)
	{
		char c = name[i];

		if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
			  (c >= '0' && c <= '9') || c == '.' || c == '_' || c == '-'))
			return false;
	}
	return true;
}

/*
 * Parse a --topic NAME:PARTITIONS argument and append it to opts.
 */
static void
add_topic(Options *opts, const char *arg)
{
	const char *colon = strrchr(arg, ':');
	size_t namelen;
	int partitions;
	int i;
	TopicSpec *topics;

	if (colon == NULL)
		bad_usage("invalid --topic \"%s\": expected NAME:PARTITIONS", arg);
	namelen = colon - arg;
	if (!valid_topic_name(arg, namelen))
		bad_usage("invalid --topic \"%s\": topic names are 1 to %d characters "
				  "of [a-zA-Z0-9._-]",
				  arg, MAX_TOPIC_NAME_LEN);
	if (!parse_int(colon + 1, 1, MAX_PARTITIONS, &partitions))
		bad_usage("invalid --topic \"%s\": partition count must be an integer "
				  "from 1 to %d",
				  arg, MAX_PARTITIONS);

	for (i = 0; i < opts->ntopics; i++)
	{
		if (strlen(opts->topics[i].name) == namelen &&
			strncmp(opts->topics[i].name, arg, namelen) == 0)
			bad_usage("topic \"%.*s\" given more than once",
					  (int)namelen, arg);
	}

	topics = realloc(opts->topics, sizeof(TopicSpec) * (opts->ntopics + 1));
	if (topics == NULL)
	{
		fprintf(stderr, PROGNAME ": out of memory\n");
		exit(1);
	}
	opts->topics = topics;
	opts->topics[opts->ntopics].name = strndup(arg, namelen);
	if (opts->topics[opts->ntopics].name == NULL)
	{
		fprintf(stderr, PROGNAME ": out of memory\n");
		exit(1);
	}
	opts->topics[opts->ntopics].partitions = partitions;
	opts->ntopics++;
}

static void
parse_options(int argc, char **argv, Options *opts)
{
	static const struct option long_options[] = {
		{"bootstrap-file", required_argument, NULL, 'b'},
		{"brokers", required_argument, NULL, 'n'},
		{"topic", required_argument, NULL, 't'},
		{"default-partitions", required_argument, NULL, 'd'},
		{"pid-file", required_argument, NULL, 'p'},
		{"control-file", required_argument, NULL, 'c'},
		{"quiet", no_argument, NULL, 'q'},
		{"help", no_argument, NULL, 'h'},
		{NULL, 0, NULL, 0}};
	int c;

	memset(opts, 0, sizeof(*opts));
	opts->brokers = 1;
	opts->default_partitions = MOCK_AUTO_CREATE_PARTITIONS;

	/* Leading ':' makes getopt report a missing argument as ':' */
	opterr = 0;
	while ((c = getopt_long(argc, argv, ":", long_options, NULL)) != -1)
	{
		switch (c)
		{
			case 'b':
				if (*optarg == '\0')
					bad_usage("--bootstrap-file must not be empty");
				opts->bootstrap_file = optarg;
				break;
			case 'n':
				if (!parse_int(optarg, 1, MAX_BROKERS, &opts->brokers))
					bad_usage("invalid --brokers \"%s\": must be an integer "
							  "from 1 to %d",
							  optarg, MAX_BROKERS);
				break;
			case 't':
				add_topic(opts, optarg);
				break;
			case 'd':
				if (!parse_int(optarg, 1, MAX_PARTITIONS,
							   &opts->default_partitions))
					bad_usage("invalid --default-partitions \"%s\": must be "
							  "an integer from 1 to %d",
							  optarg, MAX_PARTITIONS);
				break;
			case 'p':
				if (*optarg == '\0')
					bad_usage("--pid-file must not be empty");
				opts->pid_file = optarg;
				break;
			case 'c':
				if (*optarg == '\0')
					bad_usage("--control-file must not be empty");
				opts->control_file = optarg;
				break;
			case 'q':
				opts->quiet = true;
				break;
			case 'h':
				usage(stdout);
				exit(0);
			case ':':
				bad_usage("option \"%s\" requires an argument",
						  argv[optind - 1]);
				break;
			default:
				bad_usage("unrecognized option \"%s\"", argv[optind - 1]);
				break;
		}
	}

	if (optind < argc)
		bad_usage("unexpected argument \"%s\"", argv[optind]);
	if (opts->bootstrap_file == NULL)
		bad_usage("--bootstrap-file is required");
}

/*
 * Return a malloc'd "<a><b>".
 */
static char *
concat(const char *a, const char *b)
{
	size_t alen = strlen(a);
	size_t blen = strlen(b);
	char *result = malloc(alen + blen + 1);

	if (result == NULL)
	{
		fprintf(stderr, PROGNAME ": out of memory\n");
		exit(1);
	}
	memcpy(result, a, alen);
	memcpy(result + alen, b, blen + 1);
	return result;
}

/*
 * Write content to path atomically: write "path.tmp", then rename it over
 * path.  Returns false (after reporting the error) on failure.
 */
static bool
write_file_atomic(const char *path, const char *content)
{
	char *tmp = concat(path, ".tmp");
	size_t len = strlen(content);
	size_t done = 0;
	int fd;

	fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	if (fd < 0)
	{
		fprintf(stderr, PROGNAME ": could not create \"%s\": %s\n",
				tmp, strerror(errno));
		free(tmp);
		return false;
	}
	while (done < len)
	{
		ssize_t n = write(fd, content + done, len - done);

		if (n < 0)
		{
			if (errno == EINTR)
				continue;
			fprintf(stderr, PROGNAME ": could not write \"%s\": %s\n",
					tmp, strerror(errno));
			close(fd);
			unlink(tmp);
			free(tmp);
			return false;
		}
		done += n;
	}
	if (close(fd) != 0)
	{
		fprintf(stderr, PROGNAME ": could not write \"%s\": %s\n",
				tmp, strerror(errno));
		unlink(tmp);
		free(tmp);
		return false;
	}
	if (rename(tmp, path) != 0)
	{
		fprintf(stderr, PROGNAME ": could not rename \"%s\" to \"%s\": %s\n",
				tmp, path, strerror(errno));
		unlink(tmp);
		free(tmp);
		return false;
	}
	free(tmp);
	return true;
}

static void
remove_file(const char *path)
{
	if (path != NULL && unlink(path) != 0 && errno != ENOENT)
		fprintf(stderr, PROGNAME ": could not remove \"%s\": %s\n",
				path, strerror(errno));
}

/*
 * Signal handler: just pass the signal number on through the self-pipe.
 * If the pipe is full, enough wake-ups are pending already; the signal is
 * dropped, which is acceptable for these idempotent requests except
 * termination, which we also remember in a flag.
 */
static void
signal_handler(int signo)
{
	int save_errno = errno;
	unsigned char b = (unsigned char)signo;

	if (signo == SIGTERM || signo == SIGINT)
		got_term_signal = 1;
	if (write(signal_pipe[1], &b, 1) < 0)
	{
		/* nothing to do: see above */
	}
	errno = save_errno;
}

/*
 * librdkafka log callback.  Called from librdkafka's threads; stdio
 * streams are thread-safe.
 */
static void
log_cb(const rd_kafka_t *rk, int level, const char *fac, const char *buf)
{
	(void)rk;
	if (level <= LOG_ERR || (level <= LOG_WARNING && !quiet) || debug_logging)
		fprintf(stderr, PROGNAME ": librdkafka %s: %s\n", fac, buf);

	/* The mock cluster refused a request over MAX_REQUEST_BYTES: say why */
	if (strstr(buf, "Invalid request size") != NULL)
		fprintf(stderr, PROGNAME ": error: refused a request larger than %d "
								 "bytes and closed the connection: a produced batch this "
								 "large could be lost by librdkafka's mock cluster (see "
								 "tools/devbroker/README.md, Limits); the producer's "
								 "messages fail when its message.timeout.ms expires\n",
				MAX_REQUEST_BYTES);
}

/*
 * Take all brokers down or bring them all up, then record the new state in
 * the state file.
 */
static bool
set_brokers_state(rd_kafka_mock_cluster_t *mcluster, int brokers,
				  bool down, const char *state_file)
{
	bool ok = true;
	int32_t id;

	for (id = 1; id <= brokers; id++)
	{
		rd_kafka_resp_err_t err;

		if (down)
			err = rd_kafka_mock_broker_set_down(mcluster, id);
		else
			err = rd_kafka_mock_broker_set_up(mcluster, id);
		if (err != RD_KAFKA_RESP_ERR_NO_ERROR)
		{
			fprintf(stderr, PROGNAME ": could not set broker %d %s: %s\n",
					(int)id, down ? "down" : "up", rd_kafka_err2str(err));
			ok = false;
		}
	}

	/* Message first: once the state file changes, the log is complete */
	if (!quiet)
		fprintf(stderr, PROGNAME ": brokers %s\n", down ? "down" : "up");
	if (!write_file_atomic(state_file, down ? "down\n" : "up\n"))
		ok = false;
	return ok;
}

/*
 * Take a snapshot of the control file.
 */
static void
read_control_file(const char *path, ControlSnapshot *snap)
{
	struct stat st;
	int fd;
	ssize_t n;

	memset(snap, 0, sizeof(*snap));
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return;
	if (fstat(fd, &st) != 0)
	{
		close(fd);
		return;
	}
	snap->exists = true;
	snap->dev = st.st_dev;
	snap->ino = st.st_ino;
	snap->size = st.st_size;
	snap->mtime = st.st_mtim;
	do
		n = read(fd, snap->content, sizeof(snap->content) - 1);
	while (n < 0 && errno == EINTR);
	if (n > 0)
		snap->content[n] = '\0';
	close(fd);
}

static bool
control_snapshot_equal(const ControlSnapshot *a, const ControlSnapshot *b)
{
	return a->exists == b->exists &&
		   a->dev == b->dev &&
		   a->ino == b->ino &&
		   a->size == b->size &&
		   a->mtime.tv_sec == b->mtime.tv_sec &&
		   a->mtime.tv_nsec == b->mtime.tv_nsec &&
		   strcmp(a->content, b->content) == 0;
}

/*
 * Strip leading and trailing whitespace in place; returns the start.
 */
static char *
trim(char *s)
{
	char *end;

	while (*s == ' ' || *s == '\t' || *s == '\n' || *s == '\r')
		s++;
	end = s + strlen(s);
	while (end > s && (end[-1] == ' ' || end[-1] == '\t' ||
					   end[-1] == '\n' || end[-1] == '\r'))
		*--end = '\0';
	return s;
}

/*
 * Examine the control file; act if it changed and says "down" or "up".
 */
static void
check_control_file(const char *path, ControlSnapshot *last,
				   rd_kafka_mock_cluster_t *mcluster, int brokers,
				   const char *state_file)
{
	ControlSnapshot now;
	char buf[CONTROL_BUF_SIZE];
	char *word;

	read_control_file(path, &now);
	if (control_snapshot_equal(&now, last))
		return;
	*last = now;

	memcpy(buf, now.content, sizeof(buf));
	word = trim(buf);
	if (strcmp(word, "down") == 0)
		set_brokers_state(mcluster, brokers, true, state_file);
	else if (strcmp(word, "up") == 0)
		set_brokers_state(mcluster, brokers, false, state_file);
	else if (*word != '\0' && !quiet)
		fprintf(stderr, PROGNAME ": ignoring control file content \"%s\" "
								 "(expected \"down\" or \"up\")\n",
				word);
}

int
main(int argc, char **argv)
{
	Options opts;
	char *state_file;
	char errstr[512];
	char pidbuf[32];
	char numbuf[32];
	char *bootstraps;
	const char *debug;
	rd_kafka_conf_t *conf;
	rd_kafka_t *rk;
	rd_kafka_mock_cluster_t *mcluster;
	struct sigaction sa;
	sigset_t sigs;
	sigset_t oldsigs;
	ControlSnapshot control_last;
	int exitcode = 0;
	int i;

	parse_options(argc, argv, &opts);
	quiet = opts.quiet;
	state_file = concat(opts.bootstrap_file, ".state");

	if (opts.default_partitions != MOCK_AUTO_CREATE_PARTITIONS)
		fprintf(stderr, PROGNAME ": warning: --default-partitions %d ignored: "
								 "librdkafka's mock cluster always auto-creates topics with %d "
								 "partitions; pre-create topics with --topic instead\n",
				opts.default_partitions, MOCK_AUTO_CREATE_PARTITIONS);

	/* Self-pipe for the signal handlers */
	if (pipe2(signal_pipe, O_NONBLOCK | O_CLOEXEC) != 0)
	{
		fprintf(stderr, PROGNAME ": could not create pipe: %s\n",
				strerror(errno));
		return 1;
	}

	/*
	 * Install the handlers, and block the signals while librdkafka starts
	 * its threads so they inherit a mask that blocks them.  Signals that
	 * arrive meanwhile stay pending until we unblock them below.
	 */
	signal(SIGPIPE, SIG_IGN);
	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = signal_handler;
	sigemptyset(&sa.sa_mask);
	sa.sa_flags = SA_RESTART;
	sigemptyset(&sigs);
	sigaddset(&sigs, SIGTERM);
	sigaddset(&sigs, SIGINT);
	sigaddset(&sigs, SIGUSR1);
	sigaddset(&sigs, SIGUSR2);
	sigprocmask(SIG_BLOCK, &sigs, &oldsigs);
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGUSR1, &sa, NULL);
	sigaction(SIGUSR2, &sa, NULL);

	/* The handle that owns the mock cluster */
	conf = rd_kafka_conf_new();
	rd_kafka_conf_set_log_cb(conf, log_cb);
	if (rd_kafka_conf_set(conf, "client.id", PROGNAME, errstr,
						  sizeof(errstr)) != RD_KAFKA_CONF_OK)
	{
		fprintf(stderr, PROGNAME ": %s\n", errstr);
		return 1;
	}
	snprintf(numbuf, sizeof(numbuf), "%d", MAX_REQUEST_BYTES);
	if (rd_kafka_conf_set(conf, "receive.message.max.bytes", numbuf, errstr,
						  sizeof(errstr)) != RD_KAFKA_CONF_OK)
	{
		fprintf(stderr, PROGNAME ": %s\n", errstr);
		return 1;
	}
	debug = getenv("DEVBROKER_DEBUG");
	debug_logging = (debug != NULL && *debug != '\0');
	if (debug_logging &&
		rd_kafka_conf_set(conf, "debug", debug, errstr,
						  sizeof(errstr)) != RD_KAFKA_CONF_OK)
	{
		fprintf(stderr, PROGNAME ": DEVBROKER_DEBUG: %s\n", errstr);
		return 1;
	}
	rk = rd_kafka_new(RD_KAFKA_PRODUCER, conf, errstr, sizeof(errstr));
	if (rk == NULL)
	{
		fprintf(stderr, PROGNAME ": could not create librdkafka handle: %s\n",
				errstr);
		return 1;
	}

	mcluster = rd_kafka_mock_cluster_new(rk, opts.brokers);
	if (mcluster == NULL)
	{
		fprintf(stderr, PROGNAME ": could not create mock cluster with %d "
								 "broker(s)\n",
				opts.brokers);
		rd_kafka_destroy(rk);
		return 1;
	}

	sigprocmask(SIG_SETMASK, &oldsigs, NULL);

	for (i = 0; i < opts.ntopics; i++)
	{
		rd_kafka_resp_err_t err;

		err = rd_kafka_mock_topic_create(mcluster, opts.topics[i].name,
										 opts.topics[i].partitions, 1);
		if (err != RD_KAFKA_RESP_ERR_NO_ERROR)
		{
			fprintf(stderr, PROGNAME ": could not create topic \"%s\": %s\n",
					opts.topics[i].name, rd_kafka_err2str(err));
			exitcode = 1;
			goto shutdown;
		}
	}

	/* Baseline for the control file: only later changes are acted upon */
	if (opts.control_file != NULL)
		read_control_file(opts.control_file, &control_last);

	/*
	 * Publish: pid and state files first, then the ready message, and the
	 * bootstrap file last, so that whoever sees it finds the rest in place.
	 */
	snprintf(pidbuf, sizeof(pidbuf), "%d\n", (int)getpid());
	if ((opts.pid_file != NULL && !write_file_atomic(opts.pid_file, pidbuf)) ||
		!write_file_atomic(state_file, "up\n"))
	{
		exitcode = 1;
		goto shutdown;
	}
	if (!quiet)
		fprintf(stderr, PROGNAME ": ready at %s\n",
				rd_kafka_mock_cluster_bootstraps(mcluster));
	bootstraps = concat(rd_kafka_mock_cluster_bootstraps(mcluster), "\n");
	if (!write_file_atomic(opts.bootstrap_file, bootstraps))
	{
		free(bootstraps);
		exitcode = 1;
		goto shutdown;
	}
	free(bootstraps);

	/* Main loop */
	while (!got_term_signal)
	{
		struct pollfd pfd;
		int rc;

		pfd.fd = signal_pipe[0];
		pfd.events = POLLIN;
		pfd.revents = 0;
		rc = poll(&pfd, 1, opts.control_file != NULL ? CONTROL_POLL_MS : -1);
		if (rc < 0 && errno != EINTR)
		{
			fprintf(stderr, PROGNAME ": poll failed: %s\n", strerror(errno));
			exitcode = 1;
			break;
		}

		if (rc > 0 && (pfd.revents & POLLIN))
		{
			unsigned char buf[64];
			ssize_t n;
			ssize_t j;
			bool stop = false;

			/* Handle the signals in the order they arrived */
			while ((n = read(signal_pipe[0], buf, sizeof(buf))) > 0)
			{
				for (j = 0; j < n && !stop; j++)
				{
					switch (buf[j])
					{
						case SIGTERM:
						case SIGINT:
							stop = true;
							break;
						case SIGUSR1:
							set_brokers_state(mcluster, opts.brokers, true,
											  state_file);
							break;
						case SIGUSR2:
							set_brokers_state(mcluster, opts.brokers, false,
											  state_file);
							break;
					}
				}
			}
			if (stop)
				break;
		}

		if (opts.control_file != NULL && !got_term_signal)
			check_control_file(opts.control_file, &control_last, mcluster,
							   opts.brokers, state_file);
	}

	if (!quiet)
		fprintf(stderr, PROGNAME ": shutting down\n");

shutdown:
	/* The bootstrap file goes first: once it is gone, nobody should connect */
	remove_file(opts.bootstrap_file);
	remove_file(state_file);
	remove_file(opts.pid_file);

	rd_kafka_mock_cluster_destroy(mcluster);
	rd_kafka_destroy(rk);

	for (i = 0; i < opts.ntopics; i++)
		free(opts.topics[i].name);
	free(opts.topics);
	free(state_file);
	close(signal_pipe[0]);
	close(signal_pipe[1]);

	return exitcode;
}
