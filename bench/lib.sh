# shellcheck shell=bash
# bench/lib.sh: shared helpers for the benchmarks in bench/*.sh.
#
# Source it from a benchmark (bash):
#
#	. "$(dirname "$0")/lib.sh"
#
# It sets `set -euo pipefail`, a private temporary directory ($BENCH_TMP,
# kept on failure for its logs; bulky files go to $BENCH_DATA inside it,
# which is removed even then), and an EXIT trap that runs the registered cleanups in reverse order (the
# dev broker is always stopped, even on failure or Ctrl-C).
#
# Functions:
#	bench_devbroker_start NAME:PARTITIONS...
#		start tools/devbroker with these topics, wait (bounded) for its
#		bootstrap file; sets BENCH_BOOTSTRAP (host:port) and BENCH_BROKER_PID.
#		A running broker is stopped first, so calling it again gives a fresh
#		broker.
#	bench_devbroker_stop        stop the broker (also done at exit)
#	bench_on_exit CMD...        register a cleanup command (run at exit)
#	bench_now                   wall clock, seconds with nanoseconds
#	bench_elapsed START END     END - START in seconds (3 decimals)
#	bench_rate COUNT SECONDS    COUNT / SECONDS (integer)
#	bench_time VAR CMD...       run CMD, store its wall time (s) in VAR;
#	                            returns CMD's status
#	bench_median VALUE...       median (mean of the middle two if even)
#	bench_figure NAME VALUE UNIT BASENAME BASEVALUE BASEUNIT
#		print the one-line figure every benchmark reports:
#		FIGURE <name> <value> <unit> BASELINE <name> <value> <unit> RATIO <r>
#	bench_info TEXT...          a human-readable line on stdout
#	bench_log TEXT...           progress on stderr
#	bench_die TEXT...           report failure and exit 1
#	bench_pg_start [SETTING=VALUE...]
#		initdb and start a throwaway PostgreSQL 15 cluster that preloads
#		streamproc (data in $BENCH_DATA/pgdata, server log in
#		$BENCH_TMP/postgresql.log), reachable only through a private
#		socket directory ($BENCH_PG_SOCKDIR) on a private port
#		($BENCH_PG_PORT); extra settings go to postgresql.conf after the
#		defaults (shared_buffers 512MB, max_worker_processes 16,
#		max_wal_size 8GB, synchronous_commit and fsync left on), then
#		$BENCH_EXTRA_CONF verbatim (for example
#		BENCH_EXTRA_CONF='streamproc.checkpoint_groups = 0', to compare
#		a setting in the same hour); creates the extension in database
#		postgres.  As root the cluster runs as
#		$BENCH_PG_USER (streamproc_test, created if missing), since
#		initdb refuses root; $BENCH_TMP and $BENCH_DATA are then made
#		traversable (mode 711) so that the server can read files
#		that a benchmark makes world-readable there (COPY FROM 'file').
#		Stopped at exit.  With BENCH_PG_ADDRESS_SPACE_KB set, every
#		server process gets that soft limit on its address space (ulimit
#		-v; shared memory counts), so that a runaway backend fails with
#		"out of memory" instead of taking the machine's memory.
#	bench_pg_stop               stop the cluster (also done at exit)
#	bench_psql ARGS...          psql -X -q -At -v ON_ERROR_STOP=1 as
#	                            superuser postgres on the cluster
#	bench_fail_with_log FILE TEXT...
#		print FILE and the end of the server log, then bench_die TEXT
#	bench_kill_ours PID NAME    SIGTERM PID if it still runs NAME (for
#	                            cleanups: never a recycled pid)
#	bench_worker_pids           pids of the cluster's streamproc ingest workers
#	bench_cpu_seconds PID...    CPU seconds (user + system) used so far by
#	                            these processes (gone ones count 0)
#	bench_percentiles FILE [DECIMALS]
#		"n p50 p99 max mean" of the numbers in FILE (1 decimal unless told)
#	bench_poll DURATION_S INTERVAL_MS OUT QUERY
#		one psql session on the cluster sends QUERY every INTERVAL_MS ms
#		(absolute schedule; back to back when a query takes longer) for
#		DURATION_S s (none starts later; one in flight then ends first),
#		appending its one-line answers to OUT; prints the number of
#		queries and their round trips
#	bench_loadgen_summary LOG   "TOTAL WELLFORMED RATE" of loadgen's summary line
#	bench_kafka_check_topic TOPIC COUNT WHAT [trimmed]
#		TOPIC holds exactly COUNT messages from offset 0 of every partition
#		(the devbroker dropped none); with "trimmed", COUNT messages were
#		appended (the high watermarks sum to COUNT), the oldest may be gone.
#		Keeps the watermarks for bench_kafka_check_offsets.
#	bench_kafka_check_offsets SOURCE TOPIC PARTITIONS WHAT
#		every partition's committed offset (streamproc.kafka_offsets) of
#		SOURCE is TOPIC's high watermark as last read by
#		bench_kafka_check_topic
#
# Knobs (environment): BENCH_EVENTS (1000000), BENCH_PARTITIONS (64),
# BENCH_REPEAT (1; >1 reports medians), BENCH_BROKERS (devbroker's default
# when empty), BENCH_TIMEOUT_S (600, per command), BENCH_BROKER_WAIT_S (30),
# BENCH_KEEP_TMP (1 keeps the temporary directory), BENCH_PG_USER
# (streamproc_test; the server's user when run as root), BENCH_PG_PORT
# (20000 + PID % 10000; only names the socket, no TCP listener).

set -euo pipefail

BENCH_ROOT=${BENCH_ROOT:-$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)}
BENCH_DIR=$BENCH_ROOT/bench

: "${BENCH_EVENTS:=1000000}"
: "${BENCH_PARTITIONS:=64}"
: "${BENCH_REPEAT:=1}"
: "${BENCH_BROKERS:=}"
: "${BENCH_TIMEOUT_S:=600}"
: "${BENCH_BROKER_WAIT_S:=30}"
: "${BENCH_KEEP_TMP:=0}"
export BENCH_EVENTS BENCH_PARTITIONS BENCH_REPEAT BENCH_BROKERS \
	BENCH_TIMEOUT_S BENCH_BROKER_WAIT_S BENCH_KEEP_TMP

DEVBROKER=${DEVBROKER:-$BENCH_ROOT/tools/devbroker/devbroker}
PG_BINDIR=${PG_BINDIR:-$(pg_config --bindir 2>/dev/null || echo /usr/lib/postgresql/15/bin)}
LOADGEN=${LOADGEN:-$BENCH_ROOT/tools/loadgen/loadgen}
RAWCONSUMER=${RAWCONSUMER:-$BENCH_DIR/rawconsumer}
KCAT=${KCAT:-kcat}

BENCH_NAME=${BENCH_NAME:-$(basename "$0" .sh)}
BENCH_BOOTSTRAP=
BENCH_BROKER_PID=
BENCH_BROKER_DIR=
: "${BENCH_PG_USER:=streamproc_test}"
: "${BENCH_PG_PORT:=$((20000 + $$ % 10000))}"
BENCH_PG_DATA=
BENCH_PG_SOCKDIR=
BENCH_PG_LOG=
_bench_pg_started=0
_bench_cleanups=()
_bench_broker_seq=0

bench_log()
{
	printf '[%s %s] %s\n' "$(date +%T)" "$BENCH_NAME" "$*" >&2
}

bench_info()
{
	printf '%s\n' "$*"
}

bench_die()
{
	printf '%s: FAILED: %s\n' "$BENCH_NAME" "$*" >&2
	exit 1
}

bench_on_exit()
{
	_bench_cleanups+=("$*")
}

_bench_exit()
{
	local status=$? i
	trap - EXIT INT TERM
	for ((i = ${#_bench_cleanups[@]} - 1; i >= 0; i--)); do
		eval "${_bench_cleanups[i]}" || true
	done
	if [[ $status -ne 0 || $BENCH_KEEP_TMP == 1 ]]; then
		[[ $BENCH_KEEP_TMP == 1 ]] || rm -rf "$BENCH_DATA"
		printf '%s: temporary files kept in %s\n' "$BENCH_NAME" "$BENCH_TMP" >&2
	else
		rm -rf "$BENCH_TMP"
	fi
	exit "$status"
}

BENCH_TMP=$(mktemp -d "${TMPDIR:-/tmp}/streamproc-bench.XXXXXX")
BENCH_DATA=$BENCH_TMP/data
mkdir -p "$BENCH_DATA"
trap _bench_exit EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

bench_require()
{
	local f
	for f in "$@"; do
		if [[ $f == */* ]]; then
			[[ -x $f ]] || bench_die "$f not built (run: make bench)"
		else
			command -v "$f" >/dev/null || bench_die "$f not found in PATH"
		fi
	done
}

bench_now()
{
	date +%s.%N
}

bench_elapsed()
{
	awk -v s="$1" -v e="$2" 'BEGIN { printf "%.3f\n", e - s }'
}

bench_rate()
{
	awk -v n="$1" -v s="$2" 'BEGIN { if (s <= 0) exit 1; printf "%.0f\n", n / s }' ||
		bench_die "bench_rate: bad duration '$2'"
}

# bench_time VAR CMD...: wall time of CMD in VAR, CMD's status returned.
bench_time()
{
	local __var=$1 __s __e __rc=0
	shift
	__s=$(bench_now)
	"$@" || __rc=$?
	__e=$(bench_now)
	printf -v "$__var" '%s' "$(bench_elapsed "$__s" "$__e")"
	return $__rc
}

bench_median()
{
	(($# > 0)) || bench_die "bench_median: no values"
	printf '%s\n' "$@" | sort -g | awk '
		{ v[NR] = $1 }
		END {
			if (NR % 2) m = v[(NR + 1) / 2]
			else m = (v[NR / 2] + v[NR / 2 + 1]) / 2
			if (m == int(m)) printf "%d\n", m; else printf "%.3f\n", m
		}'
}

bench_figure()
{
	(($# == 6)) || bench_die "bench_figure: 6 arguments expected, got $#"
	local ratio
	ratio=$(awk -v v="$2" -v b="$5" 'BEGIN { if (b == 0) exit 1; printf "%.2f\n", v / b }') ||
		bench_die "bench_figure $1: baseline $4 is zero"
	printf 'FIGURE %s %s %s BASELINE %s %s %s RATIO %s\n' \
		"$1" "$2" "$3" "$4" "$5" "$6" "$ratio"
}

bench_devbroker_stop()
{
	local pid=$BENCH_BROKER_PID i
	[[ -n $pid ]] || return 0
	BENCH_BROKER_PID=
	BENCH_BOOTSTRAP=
	if kill -0 "$pid" 2>/dev/null; then
		kill -TERM "$pid" 2>/dev/null || true
		for ((i = 0; i < 100; i++)); do
			kill -0 "$pid" 2>/dev/null || break
			sleep 0.1
		done
		if kill -0 "$pid" 2>/dev/null; then
			bench_log "devbroker $pid ignored SIGTERM for 10 s, killing it"
			kill -KILL "$pid" 2>/dev/null || true
		fi
	fi
	wait "$pid" 2>/dev/null || true
}

# bench_devbroker_start NAME:PARTITIONS...
bench_devbroker_start()
{
	local args=() t i
	bench_require "$DEVBROKER"
	bench_devbroker_stop

	_bench_broker_seq=$((_bench_broker_seq + 1))
	BENCH_BROKER_DIR=$BENCH_TMP/devbroker.$_bench_broker_seq
	mkdir -p "$BENCH_BROKER_DIR"
	args=(--bootstrap-file "$BENCH_BROKER_DIR/bootstrap"
		--pid-file "$BENCH_BROKER_DIR/pid" --quiet)
	[[ -z $BENCH_BROKERS ]] || args+=(--brokers "$BENCH_BROKERS")
	for t in "$@"; do
		[[ $t == ?*:[0-9]* ]] || bench_die "bench_devbroker_start: NAME:PARTITIONS expected, got '$t'"
		args+=(--topic "$t")
	done

	"$DEVBROKER" "${args[@]}" >"$BENCH_BROKER_DIR/log" 2>&1 &
	BENCH_BROKER_PID=$!
	if ((_bench_broker_seq == 1)); then
		bench_on_exit bench_devbroker_stop
	fi

	for ((i = 0; i < BENCH_BROKER_WAIT_S * 10; i++)); do
		if [[ -s $BENCH_BROKER_DIR/bootstrap ]]; then
			BENCH_BOOTSTRAP=$(head -n1 "$BENCH_BROKER_DIR/bootstrap")
			[[ -n $BENCH_BOOTSTRAP ]] && break
		fi
		if ! kill -0 "$BENCH_BROKER_PID" 2>/dev/null; then
			cat "$BENCH_BROKER_DIR/log" >&2 || true
			BENCH_BROKER_PID=
			bench_die "devbroker exited before it was ready"
		fi
		sleep 0.1
	done
	if [[ -z $BENCH_BOOTSTRAP ]]; then
		cat "$BENCH_BROKER_DIR/log" >&2 || true
		bench_die "devbroker not ready after ${BENCH_BROKER_WAIT_S} s"
	fi
	bench_log "devbroker $BENCH_BROKER_PID at $BENCH_BOOTSTRAP (topics: $*)"
}

# Run a command as the cluster's owner: $BENCH_PG_USER when root, else us.
_bench_as_pg_user()
{
	if ((EUID == 0)); then
		runuser -u "$BENCH_PG_USER" -- "$@"
	else
		"$@"
	fi
}

bench_psql()
{
	[[ -n $BENCH_PG_SOCKDIR ]] || bench_die "bench_psql: no cluster (call bench_pg_start)"
	"$PG_BINDIR/psql" -X -q -At -v ON_ERROR_STOP=1 -h "$BENCH_PG_SOCKDIR" \
		-p "$BENCH_PG_PORT" -U postgres -d postgres "$@"
}

bench_pg_stop()
{
	[[ -n $BENCH_PG_DATA && -f $BENCH_PG_DATA/postmaster.pid ]] || return 0
	_bench_as_pg_user "$PG_BINDIR/pg_ctl" -D "$BENCH_PG_DATA" -m fast -w -t 60 \
		stop >/dev/null 2>&1 ||
		bench_log "pg_ctl stop failed (see $BENCH_PG_LOG)"
}

# bench_pg_start [SETTING=VALUE...]
bench_pg_start()
{
	local kv
	bench_require "$PG_BINDIR/initdb" "$PG_BINDIR/pg_ctl" "$PG_BINDIR/psql"
	[[ -f $(pg_config --pkglibdir)/streamproc.so ]] ||
		bench_die "streamproc is not installed (run: make && make install)"
	if [[ -f $BENCH_ROOT/streamproc.so ]] &&
		! cmp -s "$BENCH_ROOT/streamproc.so" "$(pg_config --pkglibdir)/streamproc.so"; then
		bench_log "warning: the installed streamproc.so differs from the tree's (run: make install)"
	fi
	bench_pg_stop

	BENCH_PG_DATA=$BENCH_DATA/pgdata
	BENCH_PG_SOCKDIR=$BENCH_TMP/pgsock
	BENCH_PG_LOG=$BENCH_TMP/postgresql.log
	rm -rf "$BENCH_PG_DATA" "$BENCH_PG_SOCKDIR"
	mkdir -p "$BENCH_PG_SOCKDIR"
	if ((EUID == 0)); then
		if ! id "$BENCH_PG_USER" >/dev/null 2>&1; then
			useradd --system --create-home --shell /bin/bash "$BENCH_PG_USER" ||
				bench_die "cannot create user $BENCH_PG_USER"
		fi
		chmod 711 "$BENCH_TMP" "$BENCH_DATA"
		install -d -o "$BENCH_PG_USER" -m 700 "$BENCH_PG_DATA"
		chown "$BENCH_PG_USER" "$BENCH_PG_SOCKDIR"
		: >"$BENCH_PG_LOG"
		chown "$BENCH_PG_USER" "$BENCH_PG_LOG"
	fi

	_bench_as_pg_user "$PG_BINDIR/initdb" -D "$BENCH_PG_DATA" -A trust -U postgres \
		--no-sync >"$BENCH_TMP/initdb.log" 2>&1 ||
		{ cat "$BENCH_TMP/initdb.log" >&2; bench_die "initdb failed"; }
	{
		echo "# bench/lib.sh"
		echo "shared_preload_libraries = 'streamproc'"
		echo "max_worker_processes = 16"
		echo "port = $BENCH_PG_PORT"
		echo "listen_addresses = ''"
		echo "unix_socket_directories = '$BENCH_PG_SOCKDIR'"
		echo "shared_buffers = 512MB"
		echo "max_wal_size = 8GB"
		echo "checkpoint_timeout = 30min"
		echo "synchronous_commit = on"
		echo "autovacuum = on"
		echo "log_min_messages = warning"
		[[ -n ${BENCH_EXTRA_CONF:-} ]] && echo "$BENCH_EXTRA_CONF"
		for kv in "$@"; do
			[[ $kv == ?*=* ]] || bench_die "bench_pg_start: SETTING=VALUE expected, got '$kv'"
			echo "${kv%%=*} = ${kv#*=}"
		done
	} >>"$BENCH_PG_DATA/postgresql.conf"

	if ((_bench_pg_started == 0)); then
		_bench_pg_started=1
		bench_on_exit bench_pg_stop
	fi
	local limit=()
	if [[ -n ${BENCH_PG_ADDRESS_SPACE_KB:-} ]]; then
		# shellcheck disable=SC2016 # for the inner shell
		limit=(bash -c 'ulimit -S -v "$1" && exec "${@:2}"' _ "$BENCH_PG_ADDRESS_SPACE_KB")
	fi
	_bench_as_pg_user "${limit[@]}" "$PG_BINDIR/pg_ctl" -D "$BENCH_PG_DATA" -l "$BENCH_PG_LOG" \
		-w -t 60 start >/dev/null 2>&1 ||
		{ tail -n 30 "$BENCH_PG_LOG" >&2; bench_die "PostgreSQL did not start"; }
	bench_psql -c "CREATE EXTENSION streamproc" ||
		{ tail -n 30 "$BENCH_PG_LOG" >&2; bench_die "CREATE EXTENSION streamproc failed"; }
	bench_log "PostgreSQL $(bench_psql -c 'SHOW server_version') on socket $BENCH_PG_SOCKDIR port $BENCH_PG_PORT (log $BENCH_PG_LOG)"
}

bench_fail_with_log()
{
	local f=$1
	shift
	cat "$f" >&2 || true
	[[ -z $BENCH_PG_LOG ]] || tail -n 20 "$BENCH_PG_LOG" >&2 || true
	bench_die "$@"
}

bench_kill_ours()
{
	[[ -r /proc/$1/cmdline ]] && tr '\0' ' ' <"/proc/$1/cmdline" | grep -q -- "$2" &&
		kill -TERM "$1" 2>/dev/null
	return 0
}

bench_worker_pids()
{
	bench_psql -c "SELECT pid FROM pg_stat_activity
		WHERE backend_type = 'streamproc worker' AND datname = current_database() ORDER BY pid"
}

bench_cpu_seconds()
{
	local pid ticks=0 t
	for pid in "$@"; do
		t=$(awk '{ print $14 + $15 }' "/proc/$pid/stat" 2>/dev/null) || t=0
		ticks=$((ticks + ${t:-0}))
	done
	awk -v t="$ticks" -v hz="$(getconf CLK_TCK)" 'BEGIN { printf "%.2f\n", t / hz }'
}

bench_percentiles()
{
	sort -g "$1" | awk -v d="${2:-1}" '
		{ v[NR] = $1; s += $1 }
		function pct(p,   i) { i = int(p / 100 * NR); if (i < p / 100 * NR) i++; if (i < 1) i = 1; return v[i] }
		END {
			if (NR == 0) { print "0 0 0 0 0"; exit }
			f = "%d %." d "f %." d "f %." d "f %." d "f\n"
			printf f, NR, pct(50), pct(99), v[NR], s / NR
		}'
}

bench_loadgen_summary()
{
	sed -n 's/^loadgen: \([0-9]*\) events (\([0-9]*\) well-formed, .* \([0-9]*\) events\/s$/\1 \2 \3/p' "$1" | tail -n1
}

# shellcheck disable=SC2016 # perl, not shell
_BENCH_POLL_PL='
use strict;
use warnings;
use IPC::Open2;
use Time::HiRes qw(time sleep);

# poll DURATION_S INTERVAL_MS OUT QUERY PSQL-COMMAND...: one psql session,
# QUERY sent every INTERVAL_MS ms (absolute schedule), its one-line answers
# appended to OUT; no query starts after DURATION_S.
my ($duration, $interval_ms, $outpath, $query, @psql) = @ARGV;
open(my $out, ">", $outpath) or die "poll: cannot open $outpath: $!\n";
my $pid = open2(my $from, my $to, @psql);
$to->autoflush(1);
my $interval = $interval_ms / 1000.0;
my ($n, $rtt_sum, $rtt_max) = (0, 0, 0);
my $start = time;
my $next = $start;
while (time - $start < $duration)
{
	my $now = time;
	my $until = $next < $start + $duration ? $next : $start + $duration;
	sleep($until - $now) if $until > $now;
	last if time - $start >= $duration;
	my $t0 = time;
	print $to "$query\n";
	my $line = <$from>;
	die "poll: psql ended\n" unless defined $line;
	my $rtt = time - $t0;
	$rtt_sum += $rtt;
	$rtt_max = $rtt if $rtt > $rtt_max;
	$n++;
	print $out $line;
	$next += $interval;
	$next = time + $interval if $next < time;
}
close $to;
waitpid($pid, 0);
close $out or die "poll: cannot write $outpath: $!\n";
printf "%d queries in %.1f s, round trip mean %.2f ms, max %.1f ms\n",
	$n, time - $start, $n ? 1000 * $rtt_sum / $n : 0, 1000 * $rtt_max;
exit($? == 0 ? 0 : 1);
'

bench_poll()
{
	perl -e "$_BENCH_POLL_PL" "$1" "$2" "$3" "$4" \
		"$PG_BINDIR/psql" -X -q -At -F ' ' -v ON_ERROR_STOP=1 -h "$BENCH_PG_SOCKDIR" \
		-p "$BENCH_PG_PORT" -U postgres -d postgres
}

bench_kafka_check_topic()
{
	local got
	got=$("$RAWCONSUMER" --brokers "$BENCH_BOOTSTRAP" --topic "$1" --watermarks \
		2>"$BENCH_TMP/watermarks.$1") ||
		bench_fail_with_log "$BENCH_TMP/watermarks.$1" "cannot read the watermarks of $1"
	if [[ ${4:-} == trimmed ]]; then
		got=$(awk '$2 == "partition" { n += $7 } END { print n + 0 }' "$BENCH_TMP/watermarks.$1")
		[[ $got == "$2" ]] || bench_die "$3: $got messages were appended to topic $1, expected $2"
		return 0
	fi
	[[ $got == "$2" ]] || bench_die "$3: topic $1 holds $got messages, expected $2"
	awk '$2 == "partition" && $5 != 0 { bad = 1 } END { exit bad }' "$BENCH_TMP/watermarks.$1" ||
		bench_die "$3: the broker dropped the oldest messages of topic $1 (a low watermark is not 0; retention)"
}

bench_kafka_check_offsets()
{
	bench_psql -F ' ' -c "SELECT partition, \"offset\" FROM streamproc.kafka_offsets
		WHERE source = '$1' ORDER BY partition" >"$BENCH_TMP/offsets.$1" ||
		bench_die "$4: cannot read streamproc.kafka_offsets"
	awk -v np="$3" '
		FNR == NR { if ($2 == "partition") high[$3] = $7; next }
		{ n++; if (!($1 in high) || high[$1] != $2) { printf "partition %s: committed %s, high watermark %s\n", $1, $2, high[$1]; bad = 1 } }
		END { if (n != np) { printf "%d partitions committed, expected %d\n", n, np; bad = 1 }; exit bad }' \
		"$BENCH_TMP/watermarks.$2" "$BENCH_TMP/offsets.$1" >"$BENCH_TMP/offsets.$1.diff" ||
		bench_fail_with_log "$BENCH_TMP/offsets.$1.diff" "$4: the committed offsets are not the high watermarks"
}

# bench_clicks_csv FILE EVENTS USERS: loadgen click events as CSV, readable
# by the benchmark cluster's server.
bench_clicks_csv()
{
	bench_log "generating $2 click events of $3 users to $1"
	"$LOADGEN" --count "$2" --users "$3" --format csv --seed "${BENCH_SEED:-42}" --quiet \
		>"$1" 2>"$BENCH_TMP/loadgen.log" ||
		{ cat "$BENCH_TMP/loadgen.log" >&2; bench_die "loadgen failed"; }
	chmod 644 "$1"
}

# bench_copy_sync STREAM FILE: COPY of FILE (CSV) into STREAM, then
# streamproc.sync(), bounded by BENCH_TIMEOUT_S; output in $BENCH_TMP.
bench_copy_sync()
{
	timeout "$BENCH_TIMEOUT_S" "$PG_BINDIR/psql" -X -q -At -v ON_ERROR_STOP=1 -h "$BENCH_PG_SOCKDIR" \
		-p "$BENCH_PG_PORT" -U postgres -d postgres \
		-c "COPY $1 FROM '$2' (FORMAT csv)" \
		-c "SELECT streamproc.sync('30 min')" \
		>"$BENCH_TMP/$1.out" 2>&1
}

# bench_ab_copy A B FIGURE_A FIGURE_B EVENTS FILE: BENCH_REPEAT rounds, each
# on a new cluster made by the caller's setup_cluster, of a COPY + sync()
# of FILE (EVENTS events) into streams clicks_A and clicks_B, in an order
# that alternates between rounds, each after a CHECKPOINT with the file in
# the page cache; the caller's verify checks the views after each round.
# Prints FIGURE_A against the baseline FIGURE_B (events/s, medians).  Its
# locals are prefixed: the callbacks' variables are bash's dynamic scope.
bench_ab_copy()
{
	local ab_a=$1 ab_b=$2 ab_fig_a=$3 ab_fig_b=$4 ab_n=$5 ab_file=$6
	local -a ab_rates_a=() ab_rates_b=() ab_order
	local ab_r ab_phase ab_t ab_rate

	for ((ab_r = 1; ab_r <= BENCH_REPEAT; ab_r++)); do
		setup_cluster
		if ((ab_r % 2)); then ab_order=("$ab_b" "$ab_a"); else ab_order=("$ab_a" "$ab_b"); fi
		for ab_phase in "${ab_order[@]}"; do
			cat "$ab_file" >/dev/null
			bench_psql -c "CHECKPOINT" >/dev/null || bench_die "checkpoint failed"
			bench_log "[$ab_r/$BENCH_REPEAT] $ab_phase"
			bench_time ab_t bench_copy_sync "clicks_$ab_phase" "$ab_file" ||
				bench_fail_with_log "$BENCH_TMP/clicks_$ab_phase.out" "$ab_phase phase failed"
			ab_rate=$(bench_rate "$ab_n" "$ab_t")
			if [[ $ab_phase == "$ab_a" ]]; then ab_rates_a+=("$ab_rate"); else ab_rates_b+=("$ab_rate"); fi
			bench_info "  [$ab_r] $ab_phase: $ab_n events in $ab_t s: $ab_rate events/s"
		done
		verify
		bench_pg_stop
	done
	if ((BENCH_REPEAT > 1)); then
		bench_info "  medians of $BENCH_REPEAT runs:"
	fi
	bench_figure "$ab_fig_a" "$(bench_median "${ab_rates_a[@]}")" events/s \
		"$ab_fig_b" "$(bench_median "${ab_rates_b[@]}")" events/s
}
