#!/usr/bin/env bash
# bench/groups_fresh.sh: freshness of a view with 1,000,000 groups under
# Kafka load (issue 10).
#
#   bench/groups_fresh.sh       (or bench/run groups_fresh)
#
# loadgen produces BENCH_GROUPS_FRESH_RATE (50,000) json click events/s
# over BENCH_GROUPS_FRESH_USERS (1,000,000) user_ids, each stamped with the
# wall clock when produced (--ts now), into a topic of
# BENCH_GROUPS_FRESH_PARTITIONS (8) partitions, while a Kafka source
# (workers => BENCH_GROUPS_FRESH_WORKERS, 1) consumes it into a stream
#
#   clicks (user_id int, url text, amount numeric, ts timestamptz)
#
# with two continuous views:
#
#   per_user  SELECT user_id, count(*) AS n, sum(amount) AS total,
#                    max(ts) AS latest FROM clicks GROUP BY user_id
#   latest    SELECT max(ts) AS latest, count(*) AS events FROM clicks
#
# Before, per_user is filled with one event per user (ts in the past), by
# INSERT + sync(), so that it holds every group from the start
# (BENCH_GROUPS_FRESH_PREFILL=0 starts empty).  After a warm-up of
# BENCH_GROUPS_FRESH_WARMUP_S (5) s, for BENCH_GROUPS_FRESH_S (60) s, two
# pollers (one psql session each, absolute schedule) sample the age of the
# newest event visible, clock_timestamp() read after the view:
#
#   groups_staleness_p50/p99        SELECT max(latest) FROM per_user, every
#                                   BENCH_GROUPS_FRESH_SCAN_MS (1000) ms, or
#                                   back to back when a read takes longer:
#                                   the view as its readers see it (every
#                                   sample reads all its groups)
#   groups_staleness_latest_p50/p99 SELECT latest FROM latest, every
#                                   BENCH_GROUPS_FRESH_POLL_MS (10) ms: the
#                                   ingest path alone (the same batches
#                                   update both views)
#     baseline  rawconsumer_staleness_p50/p99: bench/rawconsumer --follow on
#               another topic fed the same way, the age of the newest event
#               it has received, sampled every BENCH_GROUPS_FRESH_POLL_MS ms
#               (fetch.wait.max.ms BENCH_GROUPS_FRESH_FETCH_WAIT_MS, 50, as
#               streamproc's consumers)
#
# Staleness is in ms; lower is better.  The source's lag is sampled every
# second and its maximum printed.
#
# Checks (any mismatch fails the run): the topics received exactly what
# loadgen reports having produced; after stopping loadgen and sync(), every
# committed offset is its partition's high watermark, streamproc.errors is
# empty, and both views equal their batch queries over the same events in
# a plain table (loadgen's --oracle-csv, plus the prefill): EXCEPT ALL both
# ways, 0 rows.  The devbroker keeps only the newest ~5 MiB of a partition
# (~60,000 events, about 10 s of production over 8 partitions at 50,000
# events/s), so produce and consume at the same time; a source that lags
# further loses events, and the run fails saying so (after printing the
# staleness it measured, which then is not a figure).
#
# Why 8 partitions (as kafka_ingest.sh): the devbroker's cost grows with
# the number of small batches a partition holds; at 16 partitions on a
# loaded 2-core machine it fell behind by seconds (a plain consumer's
# staleness p50 1.4 s), which measures the broker, not the view.
#
# Phase order alternates between repetitions (odd: baseline first); each
# repetition uses a fresh broker and cluster; BENCH_REPEAT > 1 reports
# medians.

# shellcheck source=bench/lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

: "${BENCH_GROUPS_FRESH_USERS:=1000000}"
: "${BENCH_GROUPS_FRESH_RATE:=50000}"
: "${BENCH_GROUPS_FRESH_S:=60}"
: "${BENCH_GROUPS_FRESH_WARMUP_S:=5}"
: "${BENCH_GROUPS_FRESH_PARTITIONS:=8}"
: "${BENCH_GROUPS_FRESH_WORKERS:=1}"
: "${BENCH_GROUPS_FRESH_POLL_MS:=10}"
: "${BENCH_GROUPS_FRESH_SCAN_MS:=1000}"
: "${BENCH_GROUPS_FRESH_PREFILL:=1}"
: "${BENCH_GROUPS_FRESH_READ_TIMEOUT_S:=120}"
: "${BENCH_GROUPS_FRESH_FETCH_WAIT_MS:=50}"
: "${BENCH_GROUPS_STATE_MEMORY:=4GB}"
: "${BENCH_SEED:=42}"

bench_require "$DEVBROKER" "$LOADGEN" "$RAWCONSUMER" perl timeout
for var in BENCH_GROUPS_FRESH_USERS BENCH_GROUPS_FRESH_S BENCH_GROUPS_FRESH_PARTITIONS BENCH_GROUPS_FRESH_READ_TIMEOUT_S \
	BENCH_GROUPS_FRESH_WORKERS BENCH_GROUPS_FRESH_FETCH_WAIT_MS BENCH_REPEAT; do
	[[ ${!var} =~ ^[1-9][0-9]*$ ]] || bench_die "$var must be a positive integer, not '${!var}'"
done
for var in BENCH_GROUPS_FRESH_RATE BENCH_GROUPS_FRESH_WARMUP_S BENCH_GROUPS_FRESH_POLL_MS \
	BENCH_GROUPS_FRESH_SCAN_MS; do
	[[ ${!var} =~ ^[0-9]+(\.[0-9]+)?$ ]] || bench_die "$var must be a number, not '${!var}'"
done
[[ $BENCH_GROUPS_FRESH_PREFILL =~ ^[01]$ ]] || bench_die "BENCH_GROUPS_FRESH_PREFILL must be 0 or 1"

U=$BENCH_GROUPS_FRESH_USERS
FP=$BENCH_GROUPS_FRESH_PARTITIONS
FS=$BENCH_GROUPS_FRESH_S
WARMUP=$BENCH_GROUPS_FRESH_WARMUP_S
T=$BENCH_TIMEOUT_S
ORACLE=$BENCH_DATA/oracle.csv
export PGOPTIONS="${PGOPTIONS:-} -c client_min_messages=warning"

# window FILE START: the staleness values of the samples ("EPOCH VALUE",
# blank VALUE = nothing visible yet) taken in [START, START + FS].
window()
{
	awk -v s="$2" -v d="$FS" 'NF >= 2 && $2 != "" && $1 >= s && $1 <= s + d { print $2 }' "$1"
}

# start_loadgen TOPIC LOG [ARGS...]: unbounded, paced, wall-clock ts; sets
# lg_pid and lg_start.
start_loadgen()
{
	local topic=$1 log=$2
	shift 2
	lg_start=$(bench_now)
	"$LOADGEN" --count 0 --rate "$BENCH_GROUPS_FRESH_RATE" --ts now --users "$U" \
		--seed "$BENCH_SEED" --format json --malformed 0 --quiet \
		--brokers "$BENCH_BOOTSTRAP" --topic "$topic" "$@" >/dev/null 2>"$log" &
	lg_pid=$!
	bench_on_exit "bench_kill_ours $lg_pid loadgen"
}

# stop_loadgen LOG WHAT: sets M (produced), MW (well-formed), lg_rate.
stop_loadgen()
{
	kill -TERM "$lg_pid" 2>/dev/null || bench_fail_with_log "$1" "$2: loadgen died early"
	wait "$lg_pid" || bench_fail_with_log "$1" "$2: loadgen failed"
	read -r M MW lg_rate <<<"$(bench_loadgen_summary "$1")"
	[[ -n $M && -n $lg_rate ]] || bench_fail_with_log "$1" "$2: no loadgen summary"
}

# report WHO FILE: prints the line, sets p50 and p99.
report()
{
	local n max mean
	read -r n p50 p99 max mean <<<"$(bench_percentiles "$2")"
	((n > 0)) || bench_die "$1: no staleness sample in the measurement window"
	bench_info "  [$r] staleness $1: p50 $p50 ms, p99 $p99 ms, max $max ms, mean $mean ms ($n samples)"
}

setup_cluster()
{
	bench_pg_start "streamproc.state_memory=$BENCH_GROUPS_STATE_MEMORY"
	bench_psql <<SQL || bench_die "setup failed"
CREATE FOREIGN TABLE clicks (user_id int, url text, amount numeric, ts timestamptz)
	SERVER streamproc;
CREATE TABLE clicks_plain (user_id int, url text, amount numeric, ts timestamptz);
CREATE VIEW per_user WITH (continuous) AS
	SELECT user_id, count(*) AS n, sum(amount) AS total, max(ts) AS latest
	  FROM clicks GROUP BY user_id;
CREATE VIEW latest WITH (continuous) AS
	SELECT max(ts) AS latest, count(*) AS events FROM clicks;
SQL
	prefilled=0
	if ((BENCH_GROUPS_FRESH_PREFILL)); then
		bench_log "[$r/$BENCH_REPEAT] prefill: one event for each of $U users"
		bench_time t timeout "$T" "$PG_BINDIR/psql" -X -q -At -v ON_ERROR_STOP=1 -h "$BENCH_PG_SOCKDIR" \
			-p "$BENCH_PG_PORT" -U postgres -d postgres \
			-c "CREATE TEMP TABLE pre AS SELECT i AS user_id, '/p/' || (1 + i % 100) AS url,
					(1 + i % 99999) / 100.0 AS amount, timestamptz '2026-01-01 00:00:00+00' AS ts
				FROM generate_series(1, $U) i" \
			-c "INSERT INTO clicks TABLE pre" -c "INSERT INTO clicks_plain TABLE pre" \
			-c "SELECT streamproc.sync('$T s')" >"$BENCH_TMP/prefill.out" 2>&1 ||
			bench_fail_with_log "$BENCH_TMP/prefill.out" "prefill failed or took more than $T s"
		prefilled=$U
		bench_info "  [$r] prefill: $U events (one per user) inserted and synced in $t s"
	fi
}

phase_raw()
{
	local rc_pid i s
	bench_log "[$r/$BENCH_REPEAT] baseline: rawconsumer --follow on fresh_raw"
	"$RAWCONSUMER" --brokers "$BENCH_BOOTSTRAP" --topic fresh_raw --follow "$BENCH_TMP/fresh_raw.samples" \
		--sample-ms "$BENCH_GROUPS_FRESH_POLL_MS" --timeout-s "$((FS + 120))" \
		-X "fetch.wait.max.ms=$BENCH_GROUPS_FRESH_FETCH_WAIT_MS" \
		>"$BENCH_TMP/fresh_raw.out" 2>"$BENCH_TMP/fresh_raw.log" &
	rc_pid=$!
	bench_on_exit "bench_kill_ours $rc_pid rawconsumer"
	for ((i = 0; i < 300; i++)); do
		grep -q 'following from the end' "$BENCH_TMP/fresh_raw.log" && break
		kill -0 "$rc_pid" 2>/dev/null || bench_fail_with_log "$BENCH_TMP/fresh_raw.log" "rawconsumer --follow exited"
		sleep 0.1
	done
	grep -q 'following from the end' "$BENCH_TMP/fresh_raw.log" ||
		bench_fail_with_log "$BENCH_TMP/fresh_raw.log" "rawconsumer --follow not ready after 30 s"
	sleep 1 # assigned and fetching
	start_loadgen fresh_raw "$BENCH_TMP/loadgen_raw.log"
	sleep "$(awk -v w="$WARMUP" -v d="$FS" 'BEGIN { print w + d + 0.05 }')"
	stop_loadgen "$BENCH_TMP/loadgen_raw.log" "baseline"
	kill -TERM "$rc_pid" 2>/dev/null || true
	wait "$rc_pid" || bench_fail_with_log "$BENCH_TMP/fresh_raw.log" "rawconsumer --follow failed"
	s=$(cat "$BENCH_TMP/fresh_raw.out")
	[[ $s == "$M" ]] || bench_die "baseline: rawconsumer read $s messages, loadgen produced $M"
	bench_kafka_check_topic fresh_raw "$M" "baseline" trimmed
	bench_info "  [$r] baseline: loadgen produced $M events at $lg_rate events/s; rawconsumer read all"
	window "$BENCH_TMP/fresh_raw.samples" \
		"$(awk -v s="$lg_start" -v w="$WARMUP" 'BEGIN { printf "%.6f", s + w }')" >"$BENCH_TMP/raw.values"
	report "rawconsumer       " "$BENCH_TMP/raw.values"
	raw_p50s+=("$p50")
	raw_p99s+=("$p99")
}

# check_views: both views equal their batch queries over clicks_plain.
check_views()
{
	local res
	res=$(timeout "$T" "$PG_BINDIR/psql" -X -q -At -F ' ' -v ON_ERROR_STOP=1 -h "$BENCH_PG_SOCKDIR" \
		-p "$BENCH_PG_PORT" -U postgres -d postgres -c "SELECT
		(SELECT count(*) FROM (TABLE per_user EXCEPT ALL
			SELECT user_id, count(*), sum(amount), max(ts) FROM clicks_plain GROUP BY user_id) a),
		(SELECT count(*) FROM (SELECT user_id, count(*), sum(amount), max(ts) FROM clicks_plain
			GROUP BY user_id EXCEPT ALL TABLE per_user) b),
		(SELECT count(*) FROM (TABLE latest EXCEPT ALL SELECT max(ts), count(*) FROM clicks_plain) c),
		(SELECT count(*) FROM (SELECT max(ts), count(*) FROM clicks_plain EXCEPT ALL TABLE latest) d)") ||
		bench_die "cannot compare the views with their batch queries"
	[[ $res == "0 0 0 0" ]] ||
		bench_die "the views differ from their batch queries: $res rows (per_user only, batch only; latest only, batch only)"
}

phase_sp()
{
	local i s pids c0 c1 b0 b1 poll_start scan_pid latest_pid lag_pid counted options=''
	if ((BENCH_GROUPS_FRESH_FETCH_WAIT_MS != 50)); then
		options=", options => '{\"fetch.wait.max.ms\": \"$BENCH_GROUPS_FRESH_FETCH_WAIT_MS\"}'"
	fi
	bench_log "[$r/$BENCH_REPEAT] streamproc: source (workers => $BENCH_GROUPS_FRESH_WORKERS) on fresh_sp"
	bench_psql -c "SELECT streamproc.create_kafka_source(name => 'src', stream => 'clicks',
		topic => 'fresh_sp', brokers => '$BENCH_BOOTSTRAP', format => 'json',
		start_offset => 'earliest', workers => $BENCH_GROUPS_FRESH_WORKERS$options)" >/dev/null ||
		bench_die "create_kafka_source failed"
	for ((i = 0; i < 300; i++)); do
		s=$(bench_psql -c "SELECT count(*) FROM streamproc.stat_sources
			WHERE source = 'src' AND state = 'running' AND partition IS NOT NULL")
		[[ $s == "$FP" ]] && break
		sleep 0.1
	done
	[[ $s == "$FP" ]] || bench_die "the source runs $s of $FP partitions after 30 s"
	mapfile -t pids < <(bench_worker_pids)
	c0=$(bench_cpu_seconds "${pids[@]}")
	b0=$(bench_cpu_seconds "$BENCH_BROKER_PID")

	start_loadgen fresh_sp "$BENCH_TMP/loadgen_sp.log" --oracle-csv "$ORACLE"
	sleep "$WARMUP"
	poll_start=$(bench_now)
	# The view is read first, the clock after: a sample never understates.
	# A read of per_user is bounded by statement_timeout, so is the poller.
	PGOPTIONS="$PGOPTIONS -c statement_timeout=${BENCH_GROUPS_FRESH_READ_TIMEOUT_S}s" \
		bench_poll "$FS" "$BENCH_GROUPS_FRESH_SCAN_MS" "$BENCH_TMP/scan.samples" \
		"SELECT extract(epoch FROM clock_timestamp()), extract(epoch FROM clock_timestamp() - l) * 1000 FROM (SELECT max(latest) AS l FROM per_user) x;" \
		>"$BENCH_TMP/scan.log" 2>&1 &
	scan_pid=$!
	bench_poll "$FS" "$BENCH_GROUPS_FRESH_POLL_MS" "$BENCH_TMP/latest.samples" \
		"SELECT extract(epoch FROM clock_timestamp()), extract(epoch FROM clock_timestamp() - l) * 1000 FROM (SELECT max(latest) AS l FROM latest) x;" \
		>"$BENCH_TMP/latest.log" 2>&1 &
	latest_pid=$!
	bench_poll "$FS" 1000 "$BENCH_TMP/lag.samples" \
		"SELECT extract(epoch FROM clock_timestamp()), coalesce(sum(lag), 0) FROM streamproc.stat_sources WHERE source = 'src';" \
		>"$BENCH_TMP/lag.log" 2>&1 &
	lag_pid=$!
	wait "$latest_pid" || bench_fail_with_log "$BENCH_TMP/latest.log" "the poller of latest failed"
	wait "$lag_pid" || bench_fail_with_log "$BENCH_TMP/lag.log" "the lag poller failed"
	wait "$scan_pid" || bench_fail_with_log "$BENCH_TMP/scan.log" "the poller of per_user failed (a read took more than $BENCH_GROUPS_FRESH_READ_TIMEOUT_S s?)"
	stop_loadgen "$BENCH_TMP/loadgen_sp.log" "streamproc"
	c1=$(bench_cpu_seconds "${pids[@]}")
	b1=$(bench_cpu_seconds "$BENCH_BROKER_PID")

	# What was measured, before the checks say whether it counts.
	bench_info "  [$r] streamproc: source lag sampled every second: largest $(awk '{ if ($2 > m) m = $2 } END { print m + 0 }' "$BENCH_TMP/lag.samples"), at the end $(tail -n1 "$BENCH_TMP/lag.samples" | awk '{ print $2 }') messages"
	bench_info "        (per_user poller: $(cat "$BENCH_TMP/scan.log"); latest poller: $(cat "$BENCH_TMP/latest.log"))"
	window "$BENCH_TMP/scan.samples" "$poll_start" >"$BENCH_TMP/scan.values"
	report "per_user (read)   " "$BENCH_TMP/scan.values"
	sp_scan_p50=$p50 sp_scan_p99=$p99
	window "$BENCH_TMP/latest.samples" "$poll_start" >"$BENCH_TMP/latest.values"
	report "latest (1 group)  " "$BENCH_TMP/latest.values"
	sp_latest_p50=$p50 sp_latest_p99=$p99

	bench_time t timeout "$T" "$PG_BINDIR/psql" -X -q -At -v ON_ERROR_STOP=1 -h "$BENCH_PG_SOCKDIR" \
		-p "$BENCH_PG_PORT" -U postgres -d postgres -c "SELECT streamproc.sync('$T s')" \
		>"$BENCH_TMP/sync.out" 2>&1 || bench_fail_with_log "$BENCH_TMP/sync.out" "sync() after loadgen stopped failed or took more than $T s"
	bench_kafka_check_topic fresh_sp "$M" "streamproc" trimmed
	counted=$(bench_psql -c "SELECT events FROM latest")
	if [[ $counted != "$((prefilled + MW))" ]]; then
		bench_die "the view counts $((counted - prefilled)) of the $MW events produced: the source lagged more than the devbroker keeps (~5 MiB per partition) and events were dropped before it read them (largest lag sampled: $(awk '{ if ($2 > m) m = $2 } END { print m + 0 }' "$BENCH_TMP/lag.samples") messages)"
	fi
	bench_kafka_check_offsets src fresh_sp "$FP" "streamproc"
	s=$(bench_psql -c "SELECT count(*) FROM streamproc.errors")
	[[ $s == 0 ]] || bench_die "streamproc.errors holds $s rows"
	chmod 644 "$ORACLE"
	bench_psql -c "COPY clicks_plain FROM '$ORACLE' (FORMAT csv)" || bench_die "loading the oracle failed"
	check_views

	bench_info "  [$r] streamproc: loadgen produced $M events at $lg_rate events/s; sync() after it stopped took $t s; both views equal their batch queries"
	bench_info "        (CPU during production: streamproc workers $(awk -v a="$c0" -v b="$c1" 'BEGIN { printf "%.1f", b - a }') s, devbroker $(awk -v a="$b0" -v b="$b1" 'BEGIN { printf "%.1f", b - a }') s)"
	bench_psql -c "SELECT '        view ' || rpad(view::text, 8) || ' ' || groups || ' groups, state ' ||
			pg_size_pretty(memory_bytes) || ', last checkpoint ' || round(last_checkpoint_ms::numeric, 1) || ' ms'
		FROM streamproc.stat_views ORDER BY view::text"
	# Checked: the figures count.
	scan_p50s+=("$sp_scan_p50")
	scan_p99s+=("$sp_scan_p99")
	latest_p50s+=("$sp_latest_p50")
	latest_p99s+=("$sp_latest_p99")
}

raw_p50s=() raw_p99s=() scan_p50s=() scan_p99s=() latest_p50s=() latest_p99s=()
M='' MW='' lg_pid='' lg_start='' lg_rate='' p50='' p99='' prefilled=0 t='' sp_scan_p50='' sp_scan_p99='' sp_latest_p50='' sp_latest_p99=''

bench_info "groups_fresh: $BENCH_GROUPS_FRESH_RATE events/s over $U users into $FP partitions for $FS s after $WARMUP s; per_user read every $BENCH_GROUPS_FRESH_SCAN_MS ms, latest every $BENCH_GROUPS_FRESH_POLL_MS ms; prefill $BENCH_GROUPS_FRESH_PREFILL; repeat $BENCH_REPEAT"
bench_info "  staleness = sample time - newest event ts visible (ts = loadgen's wall clock at production, ms); lower is better"
for ((r = 1; r <= BENCH_REPEAT; r++)); do
	bench_devbroker_start "fresh_raw:$FP" "fresh_sp:$FP"
	setup_cluster
	if ((r % 2)); then
		phase_raw
		phase_sp
	else
		phase_sp
		phase_raw
	fi
	bench_pg_stop
	bench_devbroker_stop
done

if ((BENCH_REPEAT > 1)); then
	bench_info "  medians of $BENCH_REPEAT runs:"
fi
median()
{
	printf '%.1f' "$(bench_median "$@")"
}
bench_figure groups_staleness_p50 "$(median "${scan_p50s[@]}")" ms \
	rawconsumer_staleness_p50 "$(median "${raw_p50s[@]}")" ms
bench_figure groups_staleness_p99 "$(median "${scan_p99s[@]}")" ms \
	rawconsumer_staleness_p99 "$(median "${raw_p99s[@]}")" ms
bench_figure groups_staleness_latest_p50 "$(median "${latest_p50s[@]}")" ms \
	rawconsumer_staleness_p50 "$(median "${raw_p50s[@]}")" ms
bench_figure groups_staleness_latest_p99 "$(median "${latest_p99s[@]}")" ms \
	rawconsumer_staleness_p99 "$(median "${raw_p99s[@]}")" ms
