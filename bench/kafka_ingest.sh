#!/usr/bin/env bash
# bench/kafka_ingest.sh: Kafka sources, throughput and freshness.
#
#   bench/kafka_ingest.sh [EVENTS]      (or bench/run kafka_ingest)
#
# Throughput: loadgen produces EVENTS (BENCH_KAFKA_EVENTS, 2,000,000) json
# click events once into topic clicks_a (BENCH_PARTITIONS, 64, partitions;
# --users BENCH_KAFKA_USERS, 100,000; --malformed 0), which every phase
# then reads in full from the beginning:
#
#   kafka_ingest_w1  a Kafka source with workers => 1 feeding a stream with
#                    one continuous view (per user: count, sum, avg of
#                    amount; 100,000 groups): from create_kafka_source()
#                    until SELECT streamproc.sync('600s') returns, one psql
#                    process (its start included)
#   kafka_ingest_w2  the same with workers => 2 (a fresh source, stream and
#                    view on the same topic)
#     baseline       raw_consume: bench/rawconsumer reading every message of
#                    the topic (its whole process, as in raw_kafka)
#
# Freshness: loadgen produces BENCH_KAFKA_FRESH_RATE (50,000) events/s with
# --ts now (each event's ts is the wall clock when loadgen produced it)
# into a fresh topic of BENCH_KAFKA_FRESH_PARTITIONS (8) partitions; after
# BENCH_KAFKA_FRESH_WARMUP_S (2) s, for BENCH_KAFKA_FRESH_S (20) s, every
# BENCH_KAFKA_POLL_MS (10) ms:
#
#   kafka_staleness_p50/p99  one long-lived psql session runs
#                    SELECT clock_timestamp() - latest FROM a view
#                    SELECT max(ts) AS latest, count(*) FROM clicks_fresh
#                    fed by a source (workers => BENCH_KAFKA_FRESH_WORKERS,
#                    1): the age of the newest event visible in the view
#     baseline       rawconsumer_staleness_p50/p99: bench/rawconsumer
#                    --follow on another fresh topic fed the same way, with
#                    fetch.wait.max.ms=50 as streamproc's consumers
#                    (BENCH_KAFKA_FETCH_WAIT_MS sets it for both): the
#                    age of the newest event it has received, sampled in
#                    the process every BENCH_KAFKA_POLL_MS ms
#
# Why 8 partitions: paced at 50,000 events/s, loadgen's 5 ms linger makes
# batches of a few messages per partition, and the devbroker's cost grows
# with the number of batches a partition holds; over 64 partitions it
# used ~80% of a core and fell seconds behind within 20 s (staleness of a
# plain consumer: p50 1.3 s, p99 5.7 s), over 8 it uses ~13% and a plain
# consumer stays within ~60 ms.  The broker keeps only the newest ~5 MiB
# of a partition, so the freshness topics are checked by their high
# watermarks (the consumers must read all that was appended).
#
# Staleness is in ms, lower is better (RATIO > 1: staler than the plain
# consumer).  ts has millisecond precision (truncated), so a sample may
# overstate the age by up to 1 ms; the age includes the producer's linger
# (5 ms), the broker, the fetch, and for streamproc parsing, the view
# update in shared memory and the poll's own round trip.
#
# Checks (any mismatch fails the benchmark): the topic holds exactly EVENTS
# messages from offset 0 of every partition after producing and after
# every phase (the devbroker keeps only the newest ~5 MiB of a partition);
# rawconsumer reads exactly EVENTS; after each sync() every partition's
# committed offset (streamproc.kafka_offsets) equals its high watermark,
# the view's sum(count) equals the well-formed events loadgen reported,
# its stat_views.events equals EVENTS, and streamproc.errors is empty;
# the freshness runs read exactly what loadgen produced.
#
# Phase order alternates between repetitions (odd: raw, w1, w2; even: w2,
# w1, raw; freshness: baseline first on odd, streamproc first on even);
# every repetition uses a fresh broker and cluster; BENCH_REPEAT > 1
# reports medians.  Also printed per phase: CPU seconds used by the
# streamproc workers and the devbroker, the view's groups and state
# memory, the partitions' lag.

# shellcheck source=bench/lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

: "${BENCH_KAFKA_EVENTS:=2000000}"
: "${BENCH_KAFKA_USERS:=100000}"
: "${BENCH_KAFKA_FRESH_RATE:=50000}"
: "${BENCH_KAFKA_FRESH_S:=20}"
: "${BENCH_KAFKA_FRESH_WARMUP_S:=2}"
: "${BENCH_KAFKA_POLL_MS:=10}"
: "${BENCH_KAFKA_FRESH_WORKERS:=1}"
: "${BENCH_KAFKA_FRESH_PARTITIONS:=8}"
: "${BENCH_KAFKA_FETCH_WAIT_MS:=50}"
: "${BENCH_SEED:=42}"
if (($# > 0)); then
	BENCH_KAFKA_EVENTS=$1
fi

bench_require "$DEVBROKER" "$LOADGEN" "$RAWCONSUMER" perl timeout
for v in BENCH_KAFKA_EVENTS BENCH_KAFKA_USERS BENCH_KAFKA_FRESH_S BENCH_KAFKA_FRESH_WORKERS \
	BENCH_KAFKA_FRESH_PARTITIONS BENCH_KAFKA_FETCH_WAIT_MS BENCH_PARTITIONS BENCH_REPEAT; do
	[[ ${!v} =~ ^[1-9][0-9]*$ ]] || bench_die "$v must be a positive integer, not '${!v}'"
done
[[ $BENCH_KAFKA_FRESH_WARMUP_S =~ ^[0-9]+(\.[0-9]+)?$ ]] || bench_die "BENCH_KAFKA_FRESH_WARMUP_S must be a number"
[[ $BENCH_KAFKA_FRESH_RATE =~ ^[0-9]+(\.[0-9]+)?$ ]] || bench_die "BENCH_KAFKA_FRESH_RATE must be a number"
[[ $BENCH_KAFKA_POLL_MS =~ ^[0-9]+(\.[0-9]+)?$ ]] || bench_die "BENCH_KAFKA_POLL_MS must be a number"

N=$BENCH_KAFKA_EVENTS
P=$BENCH_PARTITIONS
FP=$BENCH_KAFKA_FRESH_PARTITIONS
U=$BENCH_KAFKA_USERS
T=$BENCH_TIMEOUT_S
TOPIC=clicks_a

# The devbroker keeps only the newest ~5 MiB (or ~100,000 batches) of each
# partition; a json click event is about 85 bytes with its key.
per_partition=$((N * 85 / P))
((per_partition < 4500000)) ||
	bench_die "$N events over $P partitions is ~$((per_partition / 1048576)) MiB per partition, more than the devbroker keeps (~5 MiB): raise BENCH_PARTITIONS or lower the events"

# window FILE START: the staleness values of the samples ("EPOCH VALUE",
# blank VALUE = nothing visible yet) taken in [START, START + FRESH_S].
window()
{
	awk -v s="$2" -v d="$BENCH_KAFKA_FRESH_S" '
		NF >= 2 && $2 != "" && $1 >= s && $1 <= s + d { print $2 }' "$1"
}

# ---------------------------------------------------------------------
# Throughput phases
# ---------------------------------------------------------------------

run_rawconsumer()
{
	timeout "$T" "$RAWCONSUMER" --brokers "$BENCH_BOOTSTRAP" --topic "$TOPIC" \
		--expect "$N" --timeout-s "$T" >"$BENCH_TMP/rawconsumer.out" \
		2>"$BENCH_TMP/rawconsumer.log"
}

phase_raw()
{
	local t rate got
	bench_log "[$r/$BENCH_REPEAT] rawconsumer reading $TOPIC"
	bench_time t run_rawconsumer || bench_fail_with_log "$BENCH_TMP/rawconsumer.log" "rawconsumer failed"
	got=$(cat "$BENCH_TMP/rawconsumer.out")
	[[ $got == "$N" ]] || bench_die "rawconsumer read $got messages, expected $N"
	bench_kafka_check_topic "$TOPIC" "$N" "after rawconsumer"
	rate=$(bench_rate "$N" "$t")
	raw_rates+=("$rate")
	bench_info "  [$r] rawconsumer            $N events in $t s: $rate events/s"
	bench_info "        (rawconsumer says: $(grep -h ' bytes in ' "$BENCH_TMP/rawconsumer.log" | tail -n1 | sed 's/^rawconsumer: //'))"
}

run_source()
{
	timeout "$T" "$PG_BINDIR/psql" -X -q -At -v ON_ERROR_STOP=1 -h "$BENCH_PG_SOCKDIR" \
		-p "$BENCH_PG_PORT" -U postgres -d postgres \
		-c "SELECT streamproc.create_kafka_source(name => 'src_w$1', stream => 'clicks_w$1',
				topic => '$TOPIC', brokers => '$BENCH_BOOTSTRAP', format => 'json',
				start_offset => 'earliest', workers => $1)" \
		-c "SELECT streamproc.sync('600s')" \
		>"$BENCH_TMP/source_w$1.out" 2>&1
}

# verify_source W: the source read the whole topic and the view counted it.
verify_source()
{
	local w=$1 v=per_user_w$1 res
	bench_kafka_check_offsets "src_w$w" "$TOPIC" "$P" "workers => $w"
	res=$(bench_psql -c "SELECT sum(clicks) FROM $v") || bench_die "cannot read view $v"
	[[ $res == "$W" ]] || bench_die "workers => $w: view $v counts $res events, expected $W (well-formed)"
	res=$(bench_psql -c "SELECT events FROM streamproc.stat_views WHERE view = '$v'::regclass") ||
		bench_die "cannot read stat_views"
	[[ $res == "$N" ]] || bench_die "workers => $w: stat_views says view $v merged $res events, expected $N"
	res=$(bench_psql -c "SELECT count(*) FROM streamproc.errors") || bench_die "cannot read streamproc.errors"
	[[ $res == 0 ]] || bench_die "workers => $w: streamproc.errors holds $res rows, expected 0"
}

phase_source()
{
	local w=$1 t rate c0 c1 b0 b1 pids
	bench_psql <<SQL || bench_die "setup of workers => $w failed"
CREATE FOREIGN TABLE clicks_w$w (user_id int, url text, amount numeric, ts timestamptz)
	SERVER streamproc;
CREATE VIEW per_user_w$w WITH (continuous) AS
	SELECT user_id, count(*) AS clicks, sum(amount) AS total, avg(amount) AS mean
	  FROM clicks_w$w GROUP BY user_id;
CHECKPOINT;
SQL
	mapfile -t pids < <(bench_worker_pids)
	((${#pids[@]} >= w)) || bench_die "only ${#pids[@]} streamproc workers run, workers => $w needs $w (streamproc.workers)"
	bench_log "[$r/$BENCH_REPEAT] source with workers => $w reading $TOPIC"
	c0=$(bench_cpu_seconds "${pids[@]}")
	b0=$(bench_cpu_seconds "$BENCH_BROKER_PID")
	bench_time t run_source "$w" || bench_fail_with_log "$BENCH_TMP/source_w$w.out" "workers => $w: create_kafka_source + sync failed"
	c1=$(bench_cpu_seconds "${pids[@]}")
	b1=$(bench_cpu_seconds "$BENCH_BROKER_PID")
	bench_kafka_check_topic "$TOPIC" "$N" "after the source with workers => $w"
	verify_source "$w"
	rate=$(bench_rate "$N" "$t")
	if ((w == 1)); then w1_rates+=("$rate"); else w2_rates+=("$rate"); fi
	bench_info "  [$r] streamproc workers => $w  $N events in $t s: $rate events/s"
	bench_info "        (CPU during the phase: streamproc workers $(awk -v a="$c0" -v b="$c1" 'BEGIN { printf "%.1f", b - a }') s, devbroker $(awk -v a="$b0" -v b="$b1" 'BEGIN { printf "%.1f", b - a }') s)"
	bench_psql -c "SELECT '      view ' || view::text || ': ' || groups || ' groups, state ' ||
			pg_size_pretty(memory_bytes) || ' (' || round(memory_bytes::numeric / greatest(groups, 1)) ||
			' bytes per group), last checkpoint ' || round(last_checkpoint_ms::numeric, 1) || ' ms'
		FROM streamproc.stat_views WHERE view = 'per_user_w$w'::regclass" |
		sed "s/^      /        /"
	bench_psql -c "SELECT '        lag after sync: ' || coalesce(sum(lag), 0) || ' messages over ' ||
			count(partition) || ' partitions (workers ' || string_agg(DISTINCT worker::text, ', ') || ')'
		FROM streamproc.stat_sources WHERE source = 'src_w$w'"
	bench_psql -c "SELECT streamproc.drop_kafka_source('src_w$w')" \
		-c "DROP VIEW per_user_w$w" -c "DROP FOREIGN TABLE clicks_w$w" >/dev/null ||
		bench_die "cleanup of workers => $w failed"
}

# ---------------------------------------------------------------------
# Freshness phases
# ---------------------------------------------------------------------

# start_loadgen_paced TOPIC LOG: unbounded, paced, wall-clock ts; sets
# lg_pid and lg_start (wall clock just before it started).
start_loadgen_paced()
{
	lg_start=$(bench_now)
	"$LOADGEN" --count 0 --rate "$BENCH_KAFKA_FRESH_RATE" --ts now --users "$U" \
		--seed "$BENCH_SEED" --format json --quiet \
		--brokers "$BENCH_BOOTSTRAP" --topic "$1" >/dev/null 2>"$2" &
	lg_pid=$!
	bench_on_exit "bench_kill_ours $lg_pid loadgen"
}

# stop_loadgen LOG WHAT: stop it (it flushes, exits 0); sets M (produced),
# MW (well-formed) and lg_rate.
stop_loadgen()
{
	local s
	kill -TERM "$lg_pid" 2>/dev/null || bench_fail_with_log "$1" "$2: loadgen died early"
	wait "$lg_pid" || bench_fail_with_log "$1" "$2: loadgen failed"
	s=$(bench_loadgen_summary "$1")
	read -r M MW lg_rate <<<"$s"
	[[ -n $M && -n $lg_rate ]] || bench_fail_with_log "$1" "$2: no loadgen summary"
}

fresh_report()
{
	# fresh_report WHO FILE: prints the line, sets fr_p50 fr_p99
	local n p50 p99 max mean
	read -r n p50 p99 max mean <<<"$(bench_percentiles "$2")"
	((n > 0)) || bench_die "$1: no staleness sample in the measurement window"
	fr_p50=$p50
	fr_p99=$p99
	bench_info "  [$r] staleness $1: p50 $p50 ms, p99 $p99 ms, max $max ms, mean $mean ms ($n samples)"
}

phase_fresh_raw()
{
	local rc_pid i s
	bench_log "[$r/$BENCH_REPEAT] freshness baseline: rawconsumer --follow on fresh_raw"
	"$RAWCONSUMER" --brokers "$BENCH_BOOTSTRAP" --topic fresh_raw --follow "$BENCH_TMP/fresh_raw.samples" \
		--sample-ms "$BENCH_KAFKA_POLL_MS" --timeout-s 120 -X "fetch.wait.max.ms=$BENCH_KAFKA_FETCH_WAIT_MS" \
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
	start_loadgen_paced fresh_raw "$BENCH_TMP/loadgen_fresh_raw.log"
	sleep "$(awk -v w="$BENCH_KAFKA_FRESH_WARMUP_S" -v d="$BENCH_KAFKA_FRESH_S" 'BEGIN { print w + d + 0.05 }')"
	stop_loadgen "$BENCH_TMP/loadgen_fresh_raw.log" "freshness baseline"
	kill -TERM "$rc_pid" 2>/dev/null || true
	wait "$rc_pid" || bench_fail_with_log "$BENCH_TMP/fresh_raw.log" "rawconsumer --follow failed"
	s=$(cat "$BENCH_TMP/fresh_raw.out")
	[[ $s == "$M" ]] || bench_die "freshness baseline: rawconsumer read $s messages, loadgen produced $M"
	bench_kafka_check_topic fresh_raw "$M" "freshness baseline" trimmed
	bench_info "  [$r] freshness baseline: loadgen produced $M events at $lg_rate events/s; rawconsumer read all"
	window "$BENCH_TMP/fresh_raw.samples" \
		"$(awk -v s="$lg_start" -v w="$BENCH_KAFKA_FRESH_WARMUP_S" 'BEGIN { printf "%.6f", s + w }')" \
		>"$BENCH_TMP/fresh_raw.values"
	fresh_report "rawconsumer" "$BENCH_TMP/fresh_raw.values"
	raw_p50s+=("$fr_p50")
	raw_p99s+=("$fr_p99")
}

phase_fresh_streamproc()
{
	local fw=$BENCH_KAFKA_FRESH_WORKERS i s poll_start lag c0 c1 b0 b1 pids fetch_wait_option=''
	# streamproc's consumers default to fetch.wait.max.ms 50
	if ((BENCH_KAFKA_FETCH_WAIT_MS != 50)); then
		fetch_wait_option=", options => '{\"fetch.wait.max.ms\": \"$BENCH_KAFKA_FETCH_WAIT_MS\"}'"
	fi
	bench_log "[$r/$BENCH_REPEAT] freshness: source (workers => $fw) on fresh_sp, polled every $BENCH_KAFKA_POLL_MS ms"
	bench_psql >/dev/null <<SQL || bench_die "freshness setup failed"
CREATE FOREIGN TABLE clicks_fresh (user_id int, url text, amount numeric, ts timestamptz)
	SERVER streamproc;
CREATE VIEW fresh_latest WITH (continuous) AS
	SELECT max(ts) AS latest, count(*) AS events FROM clicks_fresh;
SELECT streamproc.create_kafka_source(name => 'src_fresh', stream => 'clicks_fresh',
	topic => 'fresh_sp', brokers => '$BENCH_BOOTSTRAP', format => 'json',
	start_offset => 'earliest', workers => $fw$fetch_wait_option);
SQL
	for ((i = 0; i < 300; i++)); do
		s=$(bench_psql -c "SELECT count(*) FROM streamproc.stat_sources
			WHERE source = 'src_fresh' AND state = 'running' AND partition IS NOT NULL")
		[[ $s == "$FP" ]] && break
		sleep 0.1
	done
	[[ $s == "$FP" ]] || bench_die "freshness: the source runs $s of $FP partitions after 30 s"
	mapfile -t pids < <(bench_worker_pids)
	c0=$(bench_cpu_seconds "${pids[@]}")
	b0=$(bench_cpu_seconds "$BENCH_BROKER_PID")

	start_loadgen_paced fresh_sp "$BENCH_TMP/loadgen_fresh_sp.log"
	sleep "$BENCH_KAFKA_FRESH_WARMUP_S"
	poll_start=$(bench_now)
	# The view is read first, the clock after: a sample never understates.
	bench_poll "$BENCH_KAFKA_FRESH_S" "$BENCH_KAFKA_POLL_MS" "$BENCH_TMP/fresh_sp.samples" \
		"SELECT extract(epoch FROM clock_timestamp()), extract(epoch FROM clock_timestamp() - l) * 1000 FROM (SELECT max(latest) AS l FROM fresh_latest) v;" \
		>"$BENCH_TMP/poll.log" 2>&1 ||
		bench_fail_with_log "$BENCH_TMP/poll.log" "freshness: the poller failed"
	lag=$(bench_psql -c "SELECT coalesce(sum(lag), 0) || ' messages (max ' || coalesce(max(lag), 0) ||
			' in a partition)' FROM streamproc.stat_sources WHERE source = 'src_fresh'")
	stop_loadgen "$BENCH_TMP/loadgen_fresh_sp.log" "freshness"
	c1=$(bench_cpu_seconds "${pids[@]}")
	b1=$(bench_cpu_seconds "$BENCH_BROKER_PID")

	bench_psql -c "SELECT streamproc.sync('600s')" >/dev/null || bench_die "freshness: sync failed"
	bench_kafka_check_topic fresh_sp "$M" "freshness" trimmed
	s=$(bench_psql -c "SELECT events FROM fresh_latest")
	[[ $s == "$MW" ]] || bench_die "freshness: view counts $s events, loadgen produced $MW well-formed"
	bench_kafka_check_offsets src_fresh fresh_sp "$FP" "freshness"

	bench_info "  [$r] freshness: loadgen produced $M events at $lg_rate events/s; the view counted all"
	bench_info "        (poller: $(cat "$BENCH_TMP/poll.log"); CPU during production: streamproc workers $(awk -v a="$c0" -v b="$c1" 'BEGIN { printf "%.1f", b - a }') s, devbroker $(awk -v a="$b0" -v b="$b1" 'BEGIN { printf "%.1f", b - a }') s)"
	bench_info "        lag at the end of the polling: $lag"
	window "$BENCH_TMP/fresh_sp.samples" "$poll_start" >"$BENCH_TMP/fresh_sp.values"
	fresh_report "streamproc " "$BENCH_TMP/fresh_sp.values"
	sp_p50s+=("$fr_p50")
	sp_p99s+=("$fr_p99")
	bench_psql -c "SELECT '        view fresh_latest: ' || groups || ' group, state ' || pg_size_pretty(memory_bytes) ||
			', last checkpoint ' || round(last_checkpoint_ms::numeric, 1) || ' ms'
		FROM streamproc.stat_views WHERE view = 'fresh_latest'::regclass"
	bench_psql -c "SELECT streamproc.drop_kafka_source('src_fresh')" \
		-c "DROP VIEW fresh_latest" -c "DROP FOREIGN TABLE clicks_fresh" >/dev/null ||
		bench_die "freshness cleanup failed"
}

# ---------------------------------------------------------------------

raw_rates=() w1_rates=() w2_rates=() raw_p50s=() raw_p99s=() sp_p50s=() sp_p99s=()
r=0 W='' M='' MW='' lg_pid='' lg_start='' lg_rate='' fr_p50='' fr_p99=''

bench_info "kafka_ingest: $N json click events ($U users), $P partitions, ${BENCH_BROKERS:-default} broker(s), repeat $BENCH_REPEAT"
bench_info "  freshness: ${BENCH_KAFKA_FRESH_RATE} events/s into $FP partitions for ${BENCH_KAFKA_FRESH_S} s after ${BENCH_KAFKA_FRESH_WARMUP_S} s, sampled every ${BENCH_KAFKA_POLL_MS} ms, fetch.wait.max.ms $BENCH_KAFKA_FETCH_WAIT_MS;"
bench_info "  staleness = sample time - newest event ts visible (view: clock_timestamp() - max(ts); rawconsumer: newest ts received),"
bench_info "  ts = loadgen's wall clock at production (ms); lower is better"
for ((r = 1; r <= BENCH_REPEAT; r++)); do
	bench_devbroker_start "$TOPIC:$P" "fresh_raw:$FP" "fresh_sp:$FP"
	bench_pg_start

	bench_log "[$r/$BENCH_REPEAT] loadgen producing $N events into $TOPIC"
	bench_time t timeout "$T" "$LOADGEN" --count "$N" --users "$U" --seed "$BENCH_SEED" --format json \
		--malformed 0 --quiet --brokers "$BENCH_BOOTSTRAP" --topic "$TOPIC" \
		>/dev/null 2>"$BENCH_TMP/loadgen.log" ||
		bench_fail_with_log "$BENCH_TMP/loadgen.log" "loadgen producing failed"
	read -r total W _ <<<"$(bench_loadgen_summary "$BENCH_TMP/loadgen.log")"
	[[ $total == "$N" ]] || bench_fail_with_log "$BENCH_TMP/loadgen.log" "loadgen reports $total events, expected $N"
	bench_kafka_check_topic "$TOPIC" "$N" "after producing"
	bench_info "  [$r] produced $N events ($W well-formed) in $t s: $(bench_rate "$N" "$t") events/s"

	if ((r % 2 == 1)); then
		phase_raw
		phase_source 1
		phase_source 2
		phase_fresh_raw
		phase_fresh_streamproc
	else
		phase_source 2
		phase_source 1
		phase_raw
		phase_fresh_streamproc
		phase_fresh_raw
	fi

	bench_pg_stop
	bench_devbroker_stop
done

if ((BENCH_REPEAT > 1)); then
	bench_info "  medians of $BENCH_REPEAT runs:"
fi
# median FORMAT VALUE...: bench_median, printed with FORMAT
median()
{
	local f=$1
	shift
	# shellcheck disable=SC2059 # the format is the argument
	printf "$f" "$(bench_median "$@")"
}
raw=$(median %.0f "${raw_rates[@]}")
bench_figure kafka_ingest_w1 "$(median %.0f "${w1_rates[@]}")" events/s raw_consume "$raw" events/s
bench_figure kafka_ingest_w2 "$(median %.0f "${w2_rates[@]}")" events/s raw_consume "$raw" events/s
bench_figure kafka_staleness_p50 "$(median %.1f "${sp_p50s[@]}")" ms \
	rawconsumer_staleness_p50 "$(median %.1f "${raw_p50s[@]}")" ms
bench_figure kafka_staleness_p99 "$(median %.1f "${sp_p99s[@]}")" ms \
	rawconsumer_staleness_p99 "$(median %.1f "${raw_p99s[@]}")" ms
