#!/usr/bin/env bash
# bench/sink.sh: a Kafka sink (src/sink.c) against a plain librdkafka
# producer sending the same messages (issue 12; goal: ratio >= 0.5).
#
# Setup (untimed, per repetition, on a fresh cluster and devbroker):
# BENCH_SINK_EVENTS (200,000) loadgen click events (csv, --users
# BENCH_SINK_USERS, 100,000) are COPYed into a stream read by an append
# view that keeps a change log,
#
#	CREATE VIEW ev_all WITH (continuous) AS SELECT user_id, url, amount FROM ev;
#	SELECT streamproc.create_change_log('ev_all');
#
# and SELECT streamproc.sync() makes the log hold N changes (one per
# event, positions 1..N) before any sink exists.  The changes are then
# dumped, in position order, as KEY<TAB>VALUE lines: the key
# new->>'user_id', the value new::text, which is what the sink sends.
# Then VACUUM ANALYZE and CHECKPOINT, so that the phases start quiet.
#
#   sink_produce     one psql process runs
#                    streamproc.create_kafka_sink('s_ev', 'ev_all', 'sink_ev',
#                    brokers, key => ARRAY['user_id']), then, in one
#                    statement, polls streamproc.stat_sinks every
#                    BENCH_SINK_POLL_MS (10) ms until position =
#                    log_position (the last change acknowledged by Kafka
#                    and committed); the wall time of that process.  The
#                    time includes the sink's start: the worker notices a
#                    new sink at its next sink tick (up to 1 s when it had
#                    none) and its producer reads the topic's partitions
#                    and their tails.  Each message has the headers
#                    streamproc-sink and streamproc-position; the producer
#                    is idempotent; the partition is murmur2 of the key.
#     baseline       kcat_produce: kcat -P -K '\t' -l FILE of the dumped
#                    lines into topic raw_ev, with -X enable.idempotence=true
#                    (the sink's delivery guarantee), -X partitioner=murmur2
#                    (the sink's partitions) and two static headers of the
#                    sink's names and sizes (kcat cannot vary a header per
#                    message); the wall time of the kcat process.
#
# Rates are N / wall time, so RATIO = kcat's time / the sink's time.
#
# Partitions: BENCH_SINK_PARTITIONS, both topics; auto (the default): 16,
# or for larger N the fewest (a power of two) that keep 30,000 messages a
# partition (1,000,000: 64).  Not 4: a sink message takes about 130 bytes
# on the devbroker, which keeps only the newest ~5 MiB of a partition
# (~40,000 such messages), so 200,000 messages over 4 partitions lose
# their oldest 40,000 and complete delivery could not be shown.
#
# Why kcat: raw_kafka measures kcat -P at about loadgen's rate (a plain C
# librdkafka producer generating its events in the process), and here it
# sends the sink's keys, values, partitions and header sizes with the
# sink's idempotence, from a file in the page cache; a C producer of our
# own would measure the same librdkafka.
#
# Also printed per repetition: when the sink first made progress (the
# first position acknowledged and committed, seconds after
# create_kafka_sink()) and its rate after that; CPU seconds of the ingest
# workers and the devbroker during each phase.
#
# Checks (untimed; any mismatch fails the benchmark): the log holds N
# changes; after the sink, stat_sinks says N messages and the topic holds
# exactly N messages from offset 0 of every partition (watermarks, and
# kcat -C -e reading them all back); every message carries the sink's
# identity, the positions are 1..N, each once, increasing within each
# partition, and the messages' keys and values equal the dumped changes;
# the baseline's topic holds N messages from offset 0, as many in each
# partition as the sink's.
#
# Phase order alternates (odd: kcat first; even: the sink first), both on
# the same broker; medians of BENCH_SINK_REPEAT repetitions (default:
# BENCH_REPEAT, at least 3, as one run is short and its start noisy).
# BENCH_SINK_PERF=1 runs perf record -g on the ingest workers during the
# sink phase and prints the top symbols (the sink's rate then includes
# perf's overhead).

# shellcheck source=bench/lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

: "${BENCH_SINK_EVENTS:=200000}"
: "${BENCH_SINK_USERS:=100000}"
: "${BENCH_SINK_PARTITIONS:=auto}"
: "${BENCH_SINK_POLL_MS:=10}"
: "${BENCH_SINK_PERF:=0}"
: "${BENCH_SINK_PERF_TOP:=25}"
: "${BENCH_SEED:=42}"
[[ $BENCH_REPEAT =~ ^[1-9][0-9]*$ ]] || bench_die "BENCH_REPEAT must be a positive integer"
: "${BENCH_SINK_REPEAT:=$((BENCH_REPEAT > 3 ? BENCH_REPEAT : 3))}"

bench_require "$DEVBROKER" "$LOADGEN" "$RAWCONSUMER" "$KCAT" timeout
[[ $BENCH_SINK_EVENTS =~ ^[1-9][0-9]*$ ]] || bench_die "BENCH_SINK_EVENTS must be a positive integer"
if [[ $BENCH_SINK_PARTITIONS == auto ]]; then
	# 16, or the fewest (a power of two) that keep 30,000 messages a partition.
	BENCH_SINK_PARTITIONS=16
	while ((BENCH_SINK_EVENTS / BENCH_SINK_PARTITIONS > 30000)); do
		BENCH_SINK_PARTITIONS=$((BENCH_SINK_PARTITIONS * 2))
	done
fi
for v in BENCH_SINK_USERS BENCH_SINK_PARTITIONS BENCH_SINK_POLL_MS BENCH_SINK_REPEAT; do
	[[ ${!v} =~ ^[1-9][0-9]*$ ]] || bench_die "$v must be a positive integer, not '${!v}'"
done
((BENCH_SINK_PERF == 0)) || bench_require perf

N=$BENCH_SINK_EVENTS
R=$BENCH_SINK_REPEAT
P=$BENCH_SINK_PARTITIONS
T=$BENCH_TIMEOUT_S
CSV=$BENCH_DATA/sink_clicks.csv
DUMP=$BENCH_DATA/changes.tsv # position, key, value
KEYED=$BENCH_DATA/changes.keyed # key, value: kcat's input
SINK=s_ev

if ((N / P > 30000)); then
	bench_log "warning: $N messages over $P partitions may not fit the devbroker (~5 MiB, ~40,000 sink messages a partition); raise BENCH_SINK_PARTITIONS"
fi

bench_log "generating $N click events to $CSV"
"$LOADGEN" --count "$N" --users "$BENCH_SINK_USERS" --format csv --seed "$BENCH_SEED" --quiet \
	>"$CSV" 2>"$BENCH_TMP/loadgen.log" ||
	{ cat "$BENCH_TMP/loadgen.log" >&2; bench_die "loadgen failed"; }
chmod 644 "$CSV"

setup()
{
	local got
	bench_devbroker_start "sink_ev:$P" "raw_ev:$P"
	bench_pg_start
	bench_psql >/dev/null <<SQL || bench_die "schema setup failed"
CREATE FOREIGN TABLE ev (user_id int, url text, amount numeric, ts timestamptz)
	SERVER streamproc;
CREATE VIEW ev_all WITH (continuous) AS SELECT user_id, url, amount FROM ev;
SELECT streamproc.create_change_log('ev_all');
-- Polls the sink every poll_ms ms (a fresh snapshot per query) until its
-- position reaches the log's; fails when the sink fails.  first_s: when
-- its position first moved (first_position); done_s: when it caught up.
CREATE FUNCTION wait_sink(sink_name text, poll_ms int,
		OUT first_s float8, OUT done_s float8, OUT first_position bigint, OUT messages bigint)
LANGUAGE plpgsql AS \$\$
DECLARE
	t0 timestamptz := clock_timestamp();
	r record;
BEGIN
	LOOP
		SELECT s.state, s.position, s.log_position, s.messages AS n, s.last_error
		  INTO r FROM streamproc.stat_sinks s WHERE s.sink = sink_name;
		IF NOT FOUND THEN
			RAISE EXCEPTION 'sink % does not exist', sink_name;
		END IF;
		IF r.state = 'retrying' THEN
			RAISE EXCEPTION 'sink % failed: %', sink_name, r.last_error;
		END IF;
		IF first_s IS NULL AND r.position > 0 THEN
			first_s := extract(epoch FROM clock_timestamp() - t0);
			first_position := r.position;
		END IF;
		IF r.position >= r.log_position THEN
			done_s := extract(epoch FROM clock_timestamp() - t0);
			messages := r.n;
			RETURN;
		END IF;
		PERFORM pg_sleep(poll_ms / 1000.0);
	END LOOP;
END
\$\$;
SQL
	bench_log "[$r/$R] COPY of $N events into ev + sync"
	timeout "$T" "$PG_BINDIR/psql" -X -q -At -v ON_ERROR_STOP=1 -h "$BENCH_PG_SOCKDIR" \
		-p "$BENCH_PG_PORT" -U postgres -d postgres \
		-c "COPY ev FROM '$CSV' (FORMAT csv)" -c "SELECT streamproc.sync('30 min')" \
		>"$BENCH_TMP/copy.out" 2>&1 || bench_fail_with_log "$BENCH_TMP/copy.out" "COPY + sync failed"
	got=$(bench_psql -c "SELECT streamproc.changes_position('ev_all'),
			(SELECT count(*) FROM streamproc.changes WHERE view = 'ev_all'::regclass)") ||
		bench_die "cannot read the change log"
	[[ $got == "$N|$N" ]] || bench_die "the change log holds (last position|changes) $got, expected $N|$N"
	# What the sink sends, in position order; jsonb's text has no raw tab
	# or newline, so the lines split unambiguously.
	bench_psql -F $'\t' -v FETCH_COUNT=50000 \
		-c "SELECT position, new->>'user_id', new::text FROM streamproc.changes
			 WHERE view = 'ev_all'::regclass ORDER BY position" >"$DUMP" ||
		bench_die "cannot dump the changes"
	cut -f2- "$DUMP" >"$KEYED"
	got=$(wc -l <"$KEYED")
	((got == N)) || bench_die "dumped $got changes, expected $N"
	# Nothing left for autovacuum to do during the timed phases.
	bench_psql -c "VACUUM ANALYZE" -c "CHECKPOINT" || bench_die "vacuum and checkpoint failed"
}

run_sink()
{
	timeout "$T" "$PG_BINDIR/psql" -X -q -At -F ' ' -v ON_ERROR_STOP=1 -h "$BENCH_PG_SOCKDIR" \
		-p "$BENCH_PG_PORT" -U postgres -d postgres \
		-c "SELECT streamproc.create_kafka_sink('$SINK', 'ev_all', 'sink_ev', '$BENCH_BOOTSTRAP',
				key => ARRAY['user_id'])" \
		-c "SELECT * FROM wait_sink('$SINK', $BENCH_SINK_POLL_MS)" \
		>"$BENCH_TMP/sink.out" 2>&1
}

run_kcat()
{
	# The sink's headers: its identity (name/creation time in µs) and a
	# position of N's width.
	timeout "$T" "$KCAT" -P -b "$BENCH_BOOTSTRAP" -t raw_ev -K $'\t' \
		-X enable.idempotence=true -X partitioner=murmur2 \
		-H "streamproc-sink=$SINK/$(date +%s%6N)" -H "streamproc-position=$N" \
		-l "$KEYED" >/dev/null 2>"$BENCH_TMP/kcat-produce.log"
}

perf_pid=''
perf_start()
{
	((BENCH_SINK_PERF != 0)) || return 0
	local pids
	pids=$(bench_worker_pids | paste -sd, -)
	[[ -n $pids ]] || bench_die "perf: no streamproc worker found"
	perf record -q -F 999 -g -p "$pids" -o "$BENCH_TMP/perf.$1.data" \
		>"$BENCH_TMP/perf.$1.log" 2>&1 &
	perf_pid=$!
	bench_on_exit "bench_kill_ours $perf_pid perf"
	sleep 0.5 # attached
}

perf_stop()
{
	((BENCH_SINK_PERF != 0)) || return 0
	kill -INT "$perf_pid" 2>/dev/null || true
	wait "$perf_pid" || true
	bench_info "        perf of the ingest workers ($1, top $BENCH_SINK_PERF_TOP symbols, --no-children):"
	perf report -i "$BENCH_TMP/perf.$1.data" --no-children --sort dso,symbol -g none --stdio \
		2>/dev/null >"$BENCH_TMP/perf.$1.txt" || true
	awk -v n="$BENCH_SINK_PERF_TOP" '/^ +[0-9.]+%/ && k++ < n { printf "          %7s  %-22s %s\n", $1, $2, $4 }' \
		"$BENCH_TMP/perf.$1.txt"
	((BENCH_KEEP_TMP != 0)) || rm -f "$BENCH_TMP/perf.$1.data"
}

cpu_delta()
{
	awk -v a="$1" -v b="$2" 'BEGIN { printf "%.1f", b - a }'
}

phase_sink()
{
	local t rate c0 c1 b0 b1 pids res first_s done_s first_pos msgs got rest
	mapfile -t pids < <(bench_worker_pids)
	((${#pids[@]} > 0)) || bench_die "no streamproc worker runs"
	perf_start "sink.$r"
	bench_log "[$r/$R] sink producing $N changes to sink_ev"
	c0=$(bench_cpu_seconds "${pids[@]}")
	b0=$(bench_cpu_seconds "$BENCH_BROKER_PID")
	bench_time t run_sink || bench_fail_with_log "$BENCH_TMP/sink.out" "create_kafka_sink + wait failed"
	c1=$(bench_cpu_seconds "${pids[@]}")
	b1=$(bench_cpu_seconds "$BENCH_BROKER_PID")
	res=$(tail -n1 "$BENCH_TMP/sink.out")
	read -r first_s done_s first_pos msgs <<<"$res"
	[[ $msgs == "$N" ]] || bench_die "stat_sinks says the sink produced '$msgs' messages, expected $N ($res)"
	rate=$(bench_rate "$N" "$t")
	sink_rates+=("$rate")
	sink_times+=("$t")
	bench_info "  [$r] sink           $N messages in $t s: $rate messages/s"
	rest=$(awk -v a="$first_s" -v b="$done_s" 'BEGIN { printf "%.3f", b - a }')
	if ((first_pos < N)) && awk -v d="$rest" 'BEGIN { exit !(d > 0) }'; then
		rest="the other $((N - first_pos)) in $rest s: $(bench_rate $((N - first_pos)) "$rest") messages/s"
	else
		rest="all of them"
	fi
	bench_info "        (first progress: position $first_pos acknowledged $(printf '%.3f' "$first_s") s after create_kafka_sink(), $rest;"
	bench_info "         CPU: streamproc workers $(cpu_delta "$c0" "$c1") s, devbroker $(cpu_delta "$b0" "$b1") s)"
	perf_stop "sink.$r"
	sink_first+=("$first_s")
	bench_kafka_check_topic sink_ev "$N" "after the sink"
	# Every message, as kcat reads it back: partition, offset, headers, key, value.
	timeout "$T" "$KCAT" -C -b "$BENCH_BOOTSTRAP" -t sink_ev -o beginning -e -q \
		-f '%p\t%o\t%h\t%k\t%s\n' >"$BENCH_DATA/sink_ev.read" 2>"$BENCH_TMP/kcat-consume.log" ||
		bench_fail_with_log "$BENCH_TMP/kcat-consume.log" "kcat -C of sink_ev failed"
	got=$(wc -l <"$BENCH_DATA/sink_ev.read")
	[[ $got == "$N" ]] || bench_die "kcat -C read $got messages of sink_ev, expected $N"
	sink_read+=("$got")
	awk -F '\t' -v id="streamproc-sink=$SINK/" '
		function fail(msg) { print msg > "/dev/stderr"; bad = 1; exit }
		{
			if (index($3, id) != 1) fail("partition " $1 " offset " $2 ": headers " $3)
			if (!match($3, /streamproc-position=[0-9]+/)) fail("partition " $1 " offset " $2 ": no position")
			pos = substr($3, RSTART + 20, RLENGTH - 20) + 0
			if (($1 in last) && pos <= last[$1]) fail("partition " $1 ": position " pos " after " last[$1])
			last[$1] = pos
			printf "%d\t%s\t%s\n", pos, $4, $5
		}
		END { exit bad }' "$BENCH_DATA/sink_ev.read" >"$BENCH_DATA/sink_ev.msgs" 2>"$BENCH_TMP/sink_ev.check" ||
		bench_fail_with_log "$BENCH_TMP/sink_ev.check" "the sink's messages are not its changes in order"
	sort -n -k1,1 -t $'\t' -o "$BENCH_DATA/sink_ev.msgs" "$BENCH_DATA/sink_ev.msgs"
	cmp -s "$BENCH_DATA/sink_ev.msgs" "$DUMP" ||
		{ diff "$DUMP" "$BENCH_DATA/sink_ev.msgs" | head -n 10 >&2
		  bench_die "the sink's messages (by position) differ from the log's changes"; }
	rm -f "$BENCH_DATA/sink_ev.read" "$BENCH_DATA/sink_ev.msgs"
}

phase_kcat()
{
	local t rate b0 b1
	bench_log "[$r/$R] kcat -P producing $N messages to raw_ev"
	b0=$(bench_cpu_seconds "$BENCH_BROKER_PID")
	bench_time t run_kcat || bench_fail_with_log "$BENCH_TMP/kcat-produce.log" "kcat -P failed"
	b1=$(bench_cpu_seconds "$BENCH_BROKER_PID")
	bench_kafka_check_topic raw_ev "$N" "after kcat -P"
	rate=$(bench_rate "$N" "$t")
	kcat_rates+=("$rate")
	kcat_times+=("$t")
	bench_info "  [$r] kcat -P        $N messages in $t s: $rate messages/s"
	bench_info "        (CPU: devbroker $(cpu_delta "$b0" "$b1") s)"
}

sink_rates=() kcat_rates=() sink_times=() kcat_times=() sink_first=() sink_read=()
t=
bench_info "sink: $N changes of an append view, a Kafka sink vs kcat -P (idempotent), $P partitions, ${BENCH_BROKERS:-default} broker(s), repeat $R"
bench_info "  installed streamproc.so: md5 $(md5sum "$(pg_config --pkglibdir)/streamproc.so" | cut -c1-12), $(date -u -r "$(pg_config --pkglibdir)/streamproc.so" '+%Y-%m-%d %H:%M:%S UTC')"
for ((r = 1; r <= R; r++)); do
	setup
	if ((r % 2)); then
		order=(kcat sink)
	else
		order=(sink kcat)
	fi
	for phase in "${order[@]}"; do
		"phase_$phase"
	done
	# Same keys and partitioner: the same number of messages per partition.
	cmp -s <(grep ' partition ' "$BENCH_TMP/watermarks.sink_ev") \
		<(grep ' partition ' "$BENCH_TMP/watermarks.raw_ev") ||
		bench_die "kcat -P spread the messages over the partitions unlike the sink"
	bench_info "  [$r] correct: both topics hold $N messages from offset 0 (kcat -C read $N of the sink's), positions 1..$N in order per partition, keys and values as logged"
	bench_pg_stop
	bench_devbroker_stop
done

if ((R > 1)); then
	bench_info "  medians of $R runs (sink's first progress after $(bench_median "${sink_first[@]}") s):"
fi
sink_median=$(bench_median "${sink_rates[@]}")
kcat_median=$(bench_median "${kcat_rates[@]}")
bench_info "  sink time: $(bench_median "${sink_times[@]}") s, $sink_median messages/s"
bench_info "  raw producer (kcat -P) time: $(bench_median "${kcat_times[@]}") s, $kcat_median messages/s"
bench_info "  messages in the sink's topic (kcat -C): $(bench_median "${sink_read[@]}") of $N"
bench_info "  ratio (sink rate / raw producer rate): $(awk -v a="$sink_median" -v b="$kcat_median" 'BEGIN { printf "%.2f", a / b }') (goal >= 0.5)"
bench_figure sink_produce "$sink_median" messages/s kcat_produce "$kcat_median" messages/s
