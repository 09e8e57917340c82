#!/usr/bin/env bash
# bench/run: only when named
#
# bench/changes_soak.sh: change logs (src/changes.c) over a long run: with a
# retention, the log must stop growing once changes start to expire, and
# the rows logged last (streamproc.change_rows) must follow the groups.
#
#   bench/changes_soak.sh [MINUTES]   (default 10; or bench/run changes_soak)
#
# The stream and its views, each with a change log of retention
# BENCH_CHANGES_SOAK_RETENTION_S (60) s:
#
#   CREATE FOREIGN TABLE s (k int, v int) SERVER streamproc;
#   CREATE VIEW per_k WITH (continuous) AS
#       SELECT k, count(*) AS n, sum(v) AS total FROM s GROUP BY k;   -- 100,000 groups
#   CREATE VIEW big WITH (continuous) AS SELECT k, v FROM s WHERE v > 990;
#
# A feeder inserts BENCH_CHANGES_SOAK_RATE (20,000) events a second (one
# INSERT a second on an absolute schedule) for MINUTES minutes.  Samples
# every BENCH_CHANGES_SOAK_SAMPLE_S (30) s: the changes kept, their table's
# size (with TOAST and index), change_rows' size, the last and trimmed
# positions of per_k's log.
#
# Figures:
#   changes_soak_table_end      size of streamproc.changes at the end
#     baseline changes_soak_table_window: at the first sample after two
#              retentions (flat: ratio about 1)
#   changes_soak_rows_end       size of streamproc.change_rows at the end
#     baseline changes_soak_rows_window: at the same sample
#
# Checks (any mismatch fails the run): every INSERT succeeds; no worker
# restarts; after sync() each view equals the batch query over the events,
# per_k's log folded by key (change_rows) equals per_k, and each log's
# positions after trimmed_to have no gap.

# shellcheck source=bench/lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

: "${BENCH_CHANGES_SOAK_MINUTES:=10}"
: "${BENCH_CHANGES_SOAK_RATE:=20000}"
: "${BENCH_CHANGES_SOAK_RETENTION_S:=60}"
: "${BENCH_CHANGES_SOAK_SAMPLE_S:=30}"
if (($# > 0)); then
	BENCH_CHANGES_SOAK_MINUTES=$1
fi

bench_require timeout
if ! [[ $BENCH_CHANGES_SOAK_MINUTES =~ ^[0-9]+(\.[0-9]+)?$ ]] ||
	! awk -v m="$BENCH_CHANGES_SOAK_MINUTES" 'BEGIN { exit !(m > 0) }'; then
	bench_die "minutes must be a positive number, not '$BENCH_CHANGES_SOAK_MINUTES'"
fi
for var in BENCH_CHANGES_SOAK_RATE BENCH_CHANGES_SOAK_RETENTION_S BENCH_CHANGES_SOAK_SAMPLE_S; do
	[[ ${!var} =~ ^[0-9]+$ && ${!var} -gt 0 ]] || bench_die "$var must be a positive integer, not '${!var}'"
done

R=$BENCH_CHANGES_SOAK_RATE
W=$BENCH_CHANGES_SOAK_RETENTION_S
T=$BENCH_TIMEOUT_S
DURATION_S=$(awk -v m="$BENCH_CHANGES_SOAK_MINUTES" 'BEGIN { printf "%d", m * 60 + 0.5 }')
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
		psql_t -c "INSERT INTO s SELECT $EV_K, $EV_V FROM generate_series($((j * R))::bigint, $(((j + 1) * R - 1))) i" \
			>"$BENCH_TMP/feeder.out" 2>&1 || return 1
		j=$((j + 1))
		echo "$j" >"$DONE"
	done
}

# sample T: "T KEPT TABLE_BYTES ROWS_BYTES" into $SAMPLES, and a line of the table.
sample()
{
	local t=$1 res kept tbytes rbytes last trimmed
	res=$(bench_psql -F ' ' -c "SELECT (SELECT count(*) FROM streamproc.changes),
			pg_total_relation_size('streamproc.changes'), pg_total_relation_size('streamproc.change_rows'),
			last_position, trimmed_to FROM streamproc.change_logs WHERE view = 'per_k'::regclass") ||
		bench_die "cannot sample"
	read -r kept tbytes rbytes last trimmed <<<"$res"
	printf '%s %s %s %s\n' "$t" "$kept" "$tbytes" "$rbytes" >>"$SAMPLES"
	bench_info "$(printf '  %6s | %10d | %9.1f MB | %9.1f MB | %10d | %10d' "$t" "$kept" \
		"$(awk -v b="$tbytes" 'BEGIN { print b / 1048576 }')" "$(awk -v b="$rbytes" 'BEGIN { print b / 1048576 }')" \
		"$last" "$trimmed")"
}

bench_info "changes_soak: $R events/s into a stream read by per_k (100,000 groups) and an append view, change logs kept $W s, for $BENCH_CHANGES_SOAK_MINUTES min, a sample every $BENCH_CHANGES_SOAK_SAMPLE_S s"
bench_pg_start "streamproc.state_memory=2GB"
bench_psql <<SQL || bench_die "setup failed"
CREATE FOREIGN TABLE s (k int, v int) SERVER streamproc;
CREATE VIEW per_k WITH (continuous) AS SELECT k, count(*) AS n, sum(v) AS total FROM s GROUP BY k;
CREATE VIEW big WITH (continuous) AS SELECT k, v FROM s WHERE v > 990;
SELECT streamproc.create_change_log('per_k', retention => '$W seconds');
SELECT streamproc.create_change_log('big', retention => '$W seconds');
SQL
mapfile -t pids < <(bench_worker_pids)
((${#pids[@]} > 0)) || bench_die "no streamproc worker runs"

: >"$SAMPLES"
bench_info "  t(s)   | changes    | changes     | change_rows  | per_k last | trimmed_to"
sample 0
rm -f "$STOP"
feeder &
feeder_pid=$!
bench_on_exit "touch '$STOP'"
start=$(bench_now)
for ((k = 1; k * BENCH_CHANGES_SOAK_SAMPLE_S <= DURATION_S; k++)); do
	due=$(awk -v s="$start" -v k="$k" -v d="$BENCH_CHANGES_SOAK_SAMPLE_S" 'BEGIN { printf "%.3f", s + k * d }')
	while awk -v due="$due" -v now="$(bench_now)" 'BEGIN { exit !(now < due - 1) }'; do
		sleep 1
		kill -0 "$feeder_pid" 2>/dev/null ||
			bench_fail_with_log "$BENCH_TMP/feeder.out" "the feeder stopped (an INSERT failed or took more than $T s)"
	done
	sleep "$(awk -v due="$due" -v now="$(bench_now)" 'BEGIN { w = due - now; printf "%.3f", (w > 0 ? w : 0) }')"
	mapfile -t now_pids < <(bench_worker_pids)
	[[ ${now_pids[*]} == "${pids[*]}" ]] ||
		bench_die "at $((k * BENCH_CHANGES_SOAK_SAMPLE_S)) s the workers are ${now_pids[*]:-none}, were ${pids[*]} (a worker restarted)"
	sample "$((k * BENCH_CHANGES_SOAK_SAMPLE_S))"
done

touch "$STOP"
wait "$feeder_pid" || bench_fail_with_log "$BENCH_TMP/feeder.out" "the feeder failed"
batches=$(cat "$DONE")
events=$((batches * R))
((batches > 0)) || bench_die "the feeder inserted nothing"
bench_log "feeder stopped after $batches batches; sync"
bench_time t_sync psql_t -c "SELECT streamproc.sync('$T s')" >"$BENCH_TMP/sync.out" 2>&1 ||
	bench_fail_with_log "$BENCH_TMP/sync.out" "sync() failed or took more than $T s"
sample end

res=$(psql_t -F ' ' -c "SET work_mem = '256MB'" -c "WITH b AS (
		SELECT $EV_K AS k, count(*) AS n, sum($EV_V) AS total FROM generate_series(0::bigint, $((events - 1))) i GROUP BY 1)
	SELECT (SELECT count(*) FROM (TABLE per_k EXCEPT ALL TABLE b) x),
	       (SELECT count(*) FROM (TABLE b EXCEPT ALL TABLE per_k) y),
	       (SELECT count(*) FROM big) = (SELECT count(*) FROM generate_series(0::bigint, $((events - 1))) i WHERE $EV_V > 990),
	       (SELECT count(*) FROM ((SELECT to_jsonb(p) FROM per_k p)
	           EXCEPT ALL (SELECT row FROM streamproc.change_rows WHERE view = 'per_k'::regclass)) z),
	       (SELECT bool_and(n = last_position - trimmed_to) FROM streamproc.change_logs l,
	           LATERAL (SELECT count(*) AS n FROM streamproc.changes c WHERE c.view = l.view) c)") ||
	bench_die "cannot compare the views with the batch queries"
read -r only_v only_b big_ok rows_diff gapless <<<"$res"
[[ $only_v == 0 && $only_b == 0 ]] ||
	bench_die "per_k differs from the batch query: $only_v rows only in the view, $only_b only in the batch"
[[ $big_ok == t ]] || bench_die "big does not hold the events with v > 990"
[[ $rows_diff == 0 ]] || bench_die "change_rows differs from per_k in $rows_diff rows"
[[ $gapless == t ]] || bench_die "a log keeps a number of changes other than last_position - trimmed_to"
bench_info "  correct: both views equal their batch queries over the $events events; change_rows is per_k; the logs keep every change after trimmed_to; sync() took $t_sync s"

# The first sample after two retentions, and the last.
ref=$(awk -v w="$((2 * W))" '$1 != "end" && $1 >= w { print; exit }' "$SAMPLES")
[[ -n $ref ]] || bench_die "the run is shorter than two retentions ($((2 * W)) s): no reference sample"
read -r t_ref _ tbl_ref rows_ref <<<"$ref"
read -r _ _ tbl_end rows_end <<<"$(awk '$1 != "end"' "$SAMPLES" | tail -n1)"
bench_info "  reference sample at $t_ref s"
bench_figure changes_soak_table_end "$tbl_end" bytes changes_soak_table_window "$tbl_ref" bytes
bench_figure changes_soak_rows_end "$rows_end" bytes changes_soak_rows_window "$rows_ref" bytes
