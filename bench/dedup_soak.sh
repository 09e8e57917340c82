#!/usr/bin/env bash
# bench/run: only when named
#
# bench/dedup_soak.sh: the state of a stream with dedup_key over a long run
# (issue 13: "state is bounded by the horizon", "memory over a 10-minute
# soak must stay flat").
#
#   bench/dedup_soak.sh [MINUTES]     (default 10; or bench/run dedup_soak)
#
# The stream and its view:
#
#   CREATE FOREIGN TABLE s (id bigint, k int, v int) SERVER streamproc
#       OPTIONS (dedup_key 'id', dedup_window '<BENCH_DEDUP_SOAK_WINDOW_S> seconds');
#   CREATE VIEW v WITH (continuous) AS
#       SELECT k, count(*) AS n, sum(v) AS total FROM s GROUP BY k;
#
# A feeder inserts BENCH_DEDUP_SOAK_RATE (20,000) new events a second (one
# INSERT a second on an absolute schedule, ids never repeat) plus a copy of
# every 20th event of the second before (5% copies, about a second late),
# for MINUTES minutes.  The window is BENCH_DEDUP_SOAK_WINDOW_S (60) s of
# processing time, so the keys held should level off at about RATE x
# window after the first window and stay there.
#
# Samples every BENCH_DEDUP_SOAK_SAMPLE_S (30) s: stat_streams.dedup_keys,
# dedup_memory_bytes, duplicates, the size of streamproc.dedup_runs (table,
# TOAST and indexes) and the claims it holds.
#
# Figures:
#   dedup_soak_memory_end       dedup_memory_bytes at the end
#     baseline dedup_soak_memory_window: at the first sample after two
#              windows (flat: ratio about 1)
#   dedup_soak_table_end        size of streamproc.dedup_runs at the end
#     baseline dedup_soak_table_window: at the same sample
#
# Checks (any mismatch fails the run): every INSERT succeeds; no worker
# restarts; after sync() the view equals the batch query over the distinct
# events (each id once) and stat_streams.duplicates equals the copies.

# shellcheck source=bench/lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

: "${BENCH_DEDUP_SOAK_MINUTES:=10}"
: "${BENCH_DEDUP_SOAK_RATE:=20000}"
: "${BENCH_DEDUP_SOAK_WINDOW_S:=60}"
: "${BENCH_DEDUP_SOAK_SAMPLE_S:=30}"
if (($# > 0)); then
	BENCH_DEDUP_SOAK_MINUTES=$1
fi

bench_require timeout
if ! [[ $BENCH_DEDUP_SOAK_MINUTES =~ ^[0-9]+(\.[0-9]+)?$ ]] ||
	! awk -v m="$BENCH_DEDUP_SOAK_MINUTES" 'BEGIN { exit !(m > 0) }'; then
	bench_die "minutes must be a positive number, not '$BENCH_DEDUP_SOAK_MINUTES'"
fi
for var in BENCH_DEDUP_SOAK_RATE BENCH_DEDUP_SOAK_WINDOW_S BENCH_DEDUP_SOAK_SAMPLE_S; do
	[[ ${!var} =~ ^[0-9]+$ && ${!var} -gt 0 ]] || bench_die "$var must be a positive integer, not '${!var}'"
done

R=$BENCH_DEDUP_SOAK_RATE
W=$BENCH_DEDUP_SOAK_WINDOW_S
T=$BENCH_TIMEOUT_S
DURATION_S=$(awk -v m="$BENCH_DEDUP_SOAK_MINUTES" 'BEGIN { printf "%d", m * 60 + 0.5 }')
SAMPLES=$BENCH_TMP/samples
STOP=$BENCH_TMP/feeder.stop
DONE=$BENCH_TMP/feeder.done
export PGOPTIONS="${PGOPTIONS:-} -c client_min_messages=warning"
t_sync='' # set by bench_time

# Event i: k and v as SQL expressions of i.
EV_K="1 + (hashint8(i) & 2147483647) % 100000"
EV_V="1 + (i * 7919) % 1000"

psql_t()
{
	timeout -k 10 "$T" "$PG_BINDIR/psql" -X -q -At -v ON_ERROR_STOP=1 -h "$BENCH_PG_SOCKDIR" \
		-p "$BENCH_PG_PORT" -U postgres -d postgres "$@"
}

# insert_batch J: events J*R .. (J+1)*R - 1, and every 20th of batch J-1 again.
insert_batch()
{
	local j=$1 copies=''
	if ((j > 0)); then
		copies="UNION ALL SELECT i, $EV_K, $EV_V FROM generate_series($(((j - 1) * R))::bigint, $((j * R - 1)), 20) i"
	fi
	psql_t -c "INSERT INTO s SELECT i, $EV_K, $EV_V FROM generate_series($((j * R))::bigint, $(((j + 1) * R - 1))) i $copies"
}

feeder()
{
	local j=0 start due wait_s
	start=$(bench_now)
	echo 0 >"$DONE"
	while [[ ! -e $STOP ]]; do
		due=$(awk -v s="$start" -v j="$j" 'BEGIN { printf "%.3f", s + j }')
		wait_s=$(awk -v due="$due" -v now="$(bench_now)" 'BEGIN { w = due - now; printf "%.3f", (w > 0 ? w : 0) }')
		sleep "$wait_s"
		[[ ! -e $STOP ]] || break
		insert_batch "$j" >"$BENCH_TMP/feeder.out" 2>&1 || return 1
		j=$((j + 1))
		echo "$j" >"$DONE"
	done
}

# sample T: "T KEYS MEM TABLE_BYTES" into $SAMPLES, and a line of the table.
sample()
{
	local t=$1 res keys mem dups tbytes trows
	res=$(bench_psql -F ' ' -c "SELECT coalesce(dedup_keys, 0), coalesce(dedup_memory_bytes, 0), coalesce(duplicates, 0),
			pg_total_relation_size('streamproc.dedup_runs'), (SELECT coalesce(sum(entries), 0) FROM streamproc.dedup_runs)
		FROM streamproc.stat_streams WHERE stream = 's'::regclass") || bench_die "cannot sample"
	read -r keys mem dups tbytes trows <<<"$res"
	printf '%s %s %s %s\n' "$t" "$keys" "$mem" "$tbytes" >>"$SAMPLES"
	bench_info "$(printf '  %6s | %9d | %8.1f MB | %6.1f | %10d | %8.1f MB | %9d' "$t" "$keys" \
		"$(awk -v b="$mem" 'BEGIN { print b / 1048576 }')" "$(awk -v b="$mem" -v k="$keys" 'BEGIN { print (k > 0 ? b / k : 0) }')" \
		"$dups" "$(awk -v b="$tbytes" 'BEGIN { print b / 1048576 }')" "$trows")"
}

bench_info "dedup_soak: $R events/s (+5% copies) into a stream with dedup_window $W s for $BENCH_DEDUP_SOAK_MINUTES min, a sample every $BENCH_DEDUP_SOAK_SAMPLE_S s"
bench_pg_start
bench_psql <<SQL || bench_die "setup failed"
CREATE FOREIGN TABLE s (id bigint, k int, v int) SERVER streamproc
    OPTIONS (dedup_key 'id', dedup_window '$W seconds');
CREATE VIEW v WITH (continuous) AS SELECT k, count(*) AS n, sum(v) AS total FROM s GROUP BY k;
SQL
mapfile -t pids < <(bench_worker_pids)
((${#pids[@]} > 0)) || bench_die "no streamproc worker runs"

: >"$SAMPLES"
bench_info "  t(s)   | keys held | memory      | B/key  | duplicates | dedup_runs  | claims"
sample 0
rm -f "$STOP"
feeder &
feeder_pid=$!
bench_on_exit "touch '$STOP'"
start=$(bench_now)
for ((k = 1; k * BENCH_DEDUP_SOAK_SAMPLE_S <= DURATION_S; k++)); do
	due=$(awk -v s="$start" -v k="$k" -v d="$BENCH_DEDUP_SOAK_SAMPLE_S" 'BEGIN { printf "%.3f", s + k * d }')
	while awk -v due="$due" -v now="$(bench_now)" 'BEGIN { exit !(now < due - 1) }'; do
		sleep 1
		kill -0 "$feeder_pid" 2>/dev/null ||
			bench_fail_with_log "$BENCH_TMP/feeder.out" "the feeder stopped (an INSERT failed or took more than $T s)"
	done
	sleep "$(awk -v due="$due" -v now="$(bench_now)" 'BEGIN { w = due - now; printf "%.3f", (w > 0 ? w : 0) }')"
	mapfile -t now_pids < <(bench_worker_pids)
	[[ ${now_pids[*]} == "${pids[*]}" ]] ||
		bench_die "at $((k * BENCH_DEDUP_SOAK_SAMPLE_S)) s the workers are ${now_pids[*]:-none}, were ${pids[*]} (a worker restarted)"
	sample "$((k * BENCH_DEDUP_SOAK_SAMPLE_S))"
done

touch "$STOP"
wait "$feeder_pid" || bench_fail_with_log "$BENCH_TMP/feeder.out" "the feeder failed"
batches=$(cat "$DONE")
events=$((batches * R))
copies=$(((batches - 1) * (R / 20)))
((batches > 0)) || bench_die "the feeder inserted nothing"
bench_log "feeder stopped after $batches batches; sync"
bench_time t_sync psql_t -c "SELECT streamproc.sync('$T s')" >"$BENCH_TMP/sync.out" 2>&1 ||
	bench_fail_with_log "$BENCH_TMP/sync.out" "sync() failed or took more than $T s"
sample end

res=$(psql_t -F ' ' -c "SET work_mem = '256MB'" -c "WITH b AS (
		SELECT $EV_K AS k, count(*) AS n, sum($EV_V) AS total FROM generate_series(0::bigint, $((events - 1))) i GROUP BY 1)
	SELECT (SELECT count(*) FROM (TABLE v EXCEPT ALL TABLE b) x),
	       (SELECT count(*) FROM (TABLE b EXCEPT ALL TABLE v) y),
	       (SELECT sum(n) FROM v),
	       (SELECT duplicates FROM streamproc.stat_streams WHERE stream = 's'::regclass)") ||
	bench_die "cannot compare the view with the batch query"
read -r only_v only_b counted dups <<<"$res"
[[ $only_v == 0 && $only_b == 0 ]] ||
	bench_die "the view differs from the batch query over the distinct events: $only_v rows only in the view, $only_b only in the batch"
[[ $counted == "$events" ]] || bench_die "the view counts $counted events, $events distinct were inserted"
[[ $dups == "$copies" ]] || bench_die "stat_streams.duplicates is $dups, $copies copies were inserted"
bench_info "  correct: the view equals the batch query over the $events distinct events; $dups copies dropped; sync() took $t_sync s"

# The first sample after two windows, and the last.
ref=$(awk -v w="$((2 * W))" '$1 != "end" && $1 >= w { print; exit }' "$SAMPLES")
[[ -n $ref ]] || bench_die "the run is shorter than two windows ($((2 * W)) s): no reference sample"
read -r t_ref _ mem_ref tbl_ref <<<"$ref"
read -r _ _ mem_end tbl_end <<<"$(awk '$1 != "end"' "$SAMPLES" | tail -n1)"
bench_info "  reference sample at $t_ref s"
bench_figure dedup_soak_memory_end "$mem_end" bytes dedup_soak_memory_window "$mem_ref" bytes
bench_figure dedup_soak_table_end "$tbl_end" bytes dedup_soak_table_window "$tbl_ref" bytes
