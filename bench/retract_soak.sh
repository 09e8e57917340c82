#!/usr/bin/env bash
# bench/run: only when named
#
# bench/retract_soak.sh: the state of a rollup over live windows over a long
# run (issue 12, views over aggregating views; "state is bounded": a group
# whose rows all left must leave memory, not only the view).
#
#   bench/retract_soak.sh [MINUTES]     (default 5; or bench/run retract_soak)
#
# The stream and its views: per-user counts in tumbling windows of
# BENCH_RETRACT_SOAK_WINDOW_S (5) s that update as events arrive and leave
# after BENCH_RETRACT_SOAK_RETENTION_S (20) s, and a rollup per window and
# cohort over them (the "hourly rollup of live minutes" of the user guide):
#
#   CREATE FOREIGN TABLE ev (user_id int, amount int, ts timestamptz)
#       SERVER streamproc OPTIONS (event_time 'ts');
#   CREATE VIEW per_user WITH (continuous, emit = 'updates', retention = '<R> s') AS
#       SELECT w.window_start, user_id, count(*) AS n, sum(amount) AS amount
#         FROM ev, streamproc.tumble(ts, '<W> s') w GROUP BY 1, 2;
#   CREATE VIEW cohorts WITH (continuous) AS
#       SELECT window_start, user_id % 200 AS cohort, count(*) AS users,
#              sum(n) AS events, sum(amount) AS amount
#         FROM per_user GROUP BY 1, 2;
#
# A feeder inserts BENCH_RETRACT_SOAK_RATE (10,000) events a second (one
# INSERT a second on an absolute schedule, event time now(), users spread
# over BENCH_RETRACT_SOAK_USERS, 20,000) for MINUTES minutes.  When the
# retention drops a window of per_user, its change log takes every user's
# row of it back, so each cohort of that window empties: the cohorts held
# should level off at 200 x the windows retention keeps, and the memory
# with them.  Before groups whose rows all left were dropped (7f82ab2),
# they stayed hidden in memory: 200 more groups each window, for ever.
#
# Samples every BENCH_RETRACT_SOAK_SAMPLE_S (15) s: stat_views.groups and
# memory_bytes of cohorts, and the rows it shows.
#
# Figures:
#   retract_soak_memory_end      cohorts' memory_bytes at the end
#     baseline retract_soak_memory_ref: at the first sample after twice the
#              retention (flat: ratio about 1)
#   retract_soak_groups_end      cohorts' groups held at the end
#     baseline retract_soak_groups_ref: at the same sample
#
# Checks (any mismatch fails the run): every INSERT succeeds; no worker
# restarts; after sync() cohorts equals its query over per_user, and holds
# no group it does not show.

# shellcheck source=bench/lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

: "${BENCH_RETRACT_SOAK_MINUTES:=5}"
: "${BENCH_RETRACT_SOAK_RATE:=10000}"
: "${BENCH_RETRACT_SOAK_USERS:=20000}"
: "${BENCH_RETRACT_SOAK_WINDOW_S:=5}"
: "${BENCH_RETRACT_SOAK_RETENTION_S:=20}"
: "${BENCH_RETRACT_SOAK_SAMPLE_S:=15}"
if (($# > 0)); then
	BENCH_RETRACT_SOAK_MINUTES=$1
fi

bench_require timeout
if ! [[ $BENCH_RETRACT_SOAK_MINUTES =~ ^[0-9]+(\.[0-9]+)?$ ]] ||
	! awk -v m="$BENCH_RETRACT_SOAK_MINUTES" 'BEGIN { exit !(m > 0) }'; then
	bench_die "minutes must be a positive number, not '$BENCH_RETRACT_SOAK_MINUTES'"
fi
for var in BENCH_RETRACT_SOAK_RATE BENCH_RETRACT_SOAK_USERS BENCH_RETRACT_SOAK_WINDOW_S \
	BENCH_RETRACT_SOAK_RETENTION_S BENCH_RETRACT_SOAK_SAMPLE_S; do
	[[ ${!var} =~ ^[0-9]+$ && ${!var} -gt 0 ]] || bench_die "$var must be a positive integer, not '${!var}'"
done

R=$BENCH_RETRACT_SOAK_RATE
U=$BENCH_RETRACT_SOAK_USERS
W=$BENCH_RETRACT_SOAK_WINDOW_S
KEEP=$BENCH_RETRACT_SOAK_RETENTION_S
T=$BENCH_TIMEOUT_S
DURATION_S=$(awk -v m="$BENCH_RETRACT_SOAK_MINUTES" 'BEGIN { printf "%d", m * 60 + 0.5 }')
SAMPLES=$BENCH_TMP/samples
STOP=$BENCH_TMP/feeder.stop
DONE=$BENCH_TMP/feeder.done
export PGOPTIONS="${PGOPTIONS:-} -c client_min_messages=warning"
t_sync='' # set by bench_time

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
		psql_t -c "INSERT INTO ev SELECT (hashint8(i) & 2147483647) % $U, i % 100, now()
			FROM generate_series($((j * R))::bigint, $(((j + 1) * R - 1))) i" >"$BENCH_TMP/feeder.out" 2>&1 || return 1
		j=$((j + 1))
		echo "$j" >"$DONE"
	done
}

sample()
{
	local t=$1 res groups mem shown
	res=$(bench_psql -F ' ' -c "SELECT groups, memory_bytes, (SELECT count(*) FROM cohorts)
		FROM streamproc.stat_views WHERE view = 'cohorts'::regclass") || bench_die "cannot sample"
	read -r groups mem shown <<<"$res"
	printf '%s %s %s %s\n' "$t" "$groups" "$mem" "$shown" >>"$SAMPLES"
	bench_info "$(printf '  %6s | %8d | %8.1f kB | %8d' "$t" "$groups" \
		"$(awk -v b="$mem" 'BEGIN { print b / 1024 }')" "$shown")"
}

bench_info "retract_soak: $R events/s of $U users into $W s windows kept $KEEP s, a rollup per window and cohort over them, for $BENCH_RETRACT_SOAK_MINUTES min, a sample every $BENCH_RETRACT_SOAK_SAMPLE_S s"
bench_pg_start
bench_psql <<SQL || bench_die "setup failed"
CREATE FOREIGN TABLE ev (user_id int, amount int, ts timestamptz) SERVER streamproc OPTIONS (event_time 'ts');
CREATE VIEW per_user WITH (continuous, emit = 'updates', retention = '$KEEP seconds') AS
    SELECT w.window_start, user_id, count(*) AS n, sum(amount) AS amount
      FROM ev, streamproc.tumble(ts, interval '$W seconds') w GROUP BY 1, 2;
CREATE VIEW cohorts WITH (continuous) AS
    SELECT window_start, user_id % 200 AS cohort, count(*) AS users, sum(n) AS events, sum(amount) AS amount
      FROM per_user GROUP BY 1, 2;
SQL
mapfile -t pids < <(bench_worker_pids)
((${#pids[@]} > 0)) || bench_die "no streamproc worker runs"

: >"$SAMPLES"
bench_info "  t(s)   | groups   | memory      | shown"
sample 0
rm -f "$STOP"
feeder &
feeder_pid=$!
bench_on_exit "touch '$STOP'"
start=$(bench_now)
for ((k = 1; k * BENCH_RETRACT_SOAK_SAMPLE_S <= DURATION_S; k++)); do
	due=$(awk -v s="$start" -v k="$k" -v d="$BENCH_RETRACT_SOAK_SAMPLE_S" 'BEGIN { printf "%.3f", s + k * d }')
	while awk -v due="$due" -v now="$(bench_now)" 'BEGIN { exit !(now < due - 1) }'; do
		sleep 1
		kill -0 "$feeder_pid" 2>/dev/null ||
			bench_fail_with_log "$BENCH_TMP/feeder.out" "the feeder stopped (an INSERT failed or took more than $T s)"
	done
	sleep "$(awk -v due="$due" -v now="$(bench_now)" 'BEGIN { w = due - now; printf "%.3f", (w > 0 ? w : 0) }')"
	mapfile -t now_pids < <(bench_worker_pids)
	[[ ${now_pids[*]} == "${pids[*]}" ]] ||
		bench_die "at $((k * BENCH_RETRACT_SOAK_SAMPLE_S)) s the workers are ${now_pids[*]:-none}, were ${pids[*]} (a worker restarted)"
	sample "$((k * BENCH_RETRACT_SOAK_SAMPLE_S))"
done

touch "$STOP"
wait "$feeder_pid" || bench_fail_with_log "$BENCH_TMP/feeder.out" "the feeder failed"
batches=$(cat "$DONE")
((batches > 0)) || bench_die "the feeder inserted nothing"
bench_log "feeder stopped after $batches batches; sync"
bench_time t_sync psql_t -c "SELECT streamproc.sync('$T s')" >"$BENCH_TMP/sync.out" 2>&1 ||
	bench_fail_with_log "$BENCH_TMP/sync.out" "sync() failed or took more than $T s"
sample end

res=$(psql_t -F ' ' -c "WITH b AS (SELECT window_start, user_id % 200, count(*), sum(n), sum(amount) FROM per_user GROUP BY 1, 2)
	SELECT (SELECT count(*) FROM (TABLE cohorts EXCEPT ALL TABLE b) x),
	       (SELECT count(*) FROM (TABLE b EXCEPT ALL TABLE cohorts) y)") ||
	bench_die "cannot compare cohorts with its query over per_user"
read -r only_v only_b <<<"$res"
[[ $only_v == 0 && $only_b == 0 ]] ||
	bench_die "cohorts differs from its query over per_user: $only_v rows only in the view, $only_b only in the query"
read -r _ groups_end _ shown_end <<<"$(tail -n1 "$SAMPLES")"
[[ $groups_end == "$shown_end" ]] ||
	bench_die "after sync() cohorts holds $groups_end groups and shows $shown_end: groups whose rows all left stayed"
bench_info "  correct: cohorts equals its query over per_user after $batches s of events and holds only the $shown_end groups it shows; sync() took $t_sync s"

ref=$(awk -v w="$((2 * KEEP))" '$1 != "end" && $1 >= w { print; exit }' "$SAMPLES")
[[ -n $ref ]] || bench_die "the run is shorter than twice the retention ($((2 * KEEP)) s): no reference sample"
read -r t_ref groups_ref mem_ref _ <<<"$ref"
read -r _ groups_last mem_last _ <<<"$(awk '$1 != "end"' "$SAMPLES" | tail -n1)"
bench_info "  reference sample at $t_ref s"
bench_figure retract_soak_memory_end "$mem_last" bytes retract_soak_memory_ref "$mem_ref" bytes
bench_figure retract_soak_groups_end "$groups_last" groups retract_soak_groups_ref "$groups_ref" groups
