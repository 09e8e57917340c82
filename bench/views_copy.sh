#!/usr/bin/env bash
# bench/views_copy.sh: continuous views maintained during a bulk COPY, against
# loading the same events into a plain table and running the same queries as
# batch queries afterwards.
#
#   views_copy_sync   COPY of BENCH_VIEW_EVENTS click events (CSV file) into
#                     a stream that feeds three continuous views, followed by
#                     SELECT streamproc.sync('30 min'): the time until every
#                     event is reflected in every view
#     baseline        plain_copy_batch: COPY of the same file into a plain
#                     table, then the three queries materialized as batch
#                     queries (CREATE TABLE AS), from COPY start to the end of
#                     the last query
#
# The three queries (the same text for both, over clicks / clicks_plain):
#   per_user     user_id, count(*), sum(amount), avg(amount) GROUP BY user_id
#   per_country  joined with users (100,000 rows): country, sum(amount),
#                count(*) GROUP BY country
#   per_url      url, count(*) FILTER (WHERE amount > 500),
#                sum(amount) FILTER (WHERE user_id <= 1000) GROUP BY url
#
# Both phases run on the same throwaway cluster (bench_pg_start: 512MB
# shared_buffers, synchronous_commit on, fsync on, streamproc defaults),
# read the same server-side file, which is read once untimed first so that
# both find it in the page cache, and start after a CHECKPOINT, so neither
# pays for the other's dirty buffers.  The phase order alternates between
# repetitions (odd: baseline first; even: streaming first), and every
# repetition uses a fresh cluster; BENCH_REPEAT > 1 reports medians.
#
# Checks (after the timing): every view holds exactly BENCH_VIEW_EVENTS
# events (stat_views.events, and sum of its counts) and equals its batch
# query's table row for row (EXCEPT ALL both ways, 0 rows); otherwise the
# benchmark fails.  Also printed: the stream log's size after the run
# (streamproc.stat_streams) and the views' state memory (stat_views).

# shellcheck source=bench/lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

: "${BENCH_VIEW_EVENTS:=2000000}"
: "${BENCH_VIEW_USERS:=100000}"
: "${BENCH_SEED:=42}"

bench_require "$LOADGEN" timeout
[[ $BENCH_VIEW_EVENTS =~ ^[1-9][0-9]*$ ]] || bench_die "BENCH_VIEW_EVENTS must be a positive integer"
[[ $BENCH_REPEAT =~ ^[1-9][0-9]*$ ]] || bench_die "BENCH_REPEAT must be a positive integer"

N=$BENCH_VIEW_EVENTS
U=$BENCH_VIEW_USERS
T=$BENCH_TIMEOUT_S
CSV=$BENCH_DATA/clicks.csv

bench_log "generating $N click events to $CSV"
"$LOADGEN" --count "$N" --users "$U" --format csv --seed "$BENCH_SEED" --quiet \
	>"$CSV" 2>"$BENCH_TMP/loadgen.log" ||
	{ cat "$BENCH_TMP/loadgen.log" >&2; bench_die "loadgen failed"; }
lines=$(wc -l <"$CSV")
((lines == N)) || bench_die "loadgen wrote $lines events, expected $N"
chmod 644 "$CSV"
csv_mb=$(awk -v b="$(stat -c %s "$CSV")" 'BEGIN { printf "%.1f", b / 1048576 }')

# The queries, FROM placeholder @CLICKS@.
Q_USER='SELECT user_id, count(*) AS clicks, sum(amount) AS total, avg(amount) AS mean
	FROM @CLICKS@ GROUP BY user_id'
Q_COUNTRY='SELECT u.country, sum(c.amount) AS total, count(*) AS clicks
	FROM @CLICKS@ c JOIN users u ON u.id = c.user_id GROUP BY u.country'
Q_URL='SELECT url, count(*) FILTER (WHERE amount > 500) AS big_clicks,
	sum(amount) FILTER (WHERE user_id <= 1000) AS top_users_total, count(*) AS clicks
	FROM @CLICKS@ GROUP BY url'
VIEWS=(per_user per_country per_url)
declare -A QUERY=([per_user]=$Q_USER [per_country]=$Q_COUNTRY [per_url]=$Q_URL)

q()
{
	local s=${QUERY[$1]}
	printf '%s' "${s//@CLICKS@/$2}"
}

setup_cluster()
{
	bench_pg_start
	bench_psql <<SQL || bench_die "schema setup failed"
CREATE TABLE users (id int PRIMARY KEY, country text NOT NULL);
INSERT INTO users
	SELECT g, (ARRAY['de','fr','us','uk','jp','br','in','it','es','nl','se','pl',
	                 'ca','au','mx','kr','ch','at','be','no'])[1 + g % 20]
	  FROM generate_series(1, $U) g;
ANALYZE users;
CREATE TABLE clicks_plain (user_id int, url text, amount numeric, ts timestamptz);
CREATE FOREIGN TABLE clicks (user_id int, url text, amount numeric, ts timestamptz)
	SERVER streamproc;
CREATE VIEW per_user WITH (continuous) AS $(q per_user clicks);
CREATE VIEW per_country WITH (continuous) AS $(q per_country clicks);
CREATE VIEW per_url WITH (continuous) AS $(q per_url clicks);
SQL
}

# Untimed, before each phase: the file and users in cache, a clean slate of
# dirty buffers.
prepare_phase()
{
	cat "$CSV" >/dev/null
	bench_psql -c "SELECT count(*) FROM users" -c "CHECKPOINT" >/dev/null ||
		bench_die "prepare failed"
}

run_baseline()
{
	timeout "$T" "$PG_BINDIR/psql" -X -q -At -v ON_ERROR_STOP=1 -h "$BENCH_PG_SOCKDIR" \
		-p "$BENCH_PG_PORT" -U postgres -d postgres \
		-c "COPY clicks_plain FROM '$CSV' (FORMAT csv)" \
		-c "SELECT 'mark ' || extract(epoch FROM clock_timestamp())" \
		-c "CREATE TABLE batch_per_user AS $(q per_user clicks_plain)" \
		-c "CREATE TABLE batch_per_country AS $(q per_country clicks_plain)" \
		-c "CREATE TABLE batch_per_url AS $(q per_url clicks_plain)" \
		>"$BENCH_TMP/baseline.out" 2>&1
}

run_stream()
{
	timeout "$T" "$PG_BINDIR/psql" -X -q -At -v ON_ERROR_STOP=1 -h "$BENCH_PG_SOCKDIR" \
		-p "$BENCH_PG_PORT" -U postgres -d postgres \
		-c "COPY clicks FROM '$CSV' (FORMAT csv)" \
		-c "SELECT 'mark ' || extract(epoch FROM clock_timestamp())" \
		-c "SELECT streamproc.sync('30 min')" \
		>"$BENCH_TMP/stream.out" 2>&1
}

# split START END OUTFILE: "COPY X s, then Y s", from the mark the phase
# printed after its COPY.
split()
{
	local mark
	mark=$(sed -n 's/^mark //p' "$3")
	[[ -n $mark ]] || return 0
	printf 'COPY %s s, then %s s' "$(bench_elapsed "$1" "$mark")" "$(bench_elapsed "$mark" "$2")"
}

fail_with_log()
{
	cat "$1" >&2 || true
	tail -n 20 "$BENCH_PG_LOG" >&2 || true
	bench_die "$2"
}

verify()
{
	local v n diff total
	for v in "${VIEWS[@]}"; do
		n=$(bench_psql -c "SELECT events FROM streamproc.stat_views WHERE view = '$v'::regclass") ||
			bench_die "cannot read stat_views for $v"
		[[ $n == "$N" ]] || bench_die "view $v merged $n events, expected $N"
		total=$(bench_psql -c "SELECT sum(clicks) FROM $v") || bench_die "cannot read view $v"
		[[ $total == "$N" ]] || bench_die "view $v counts $total clicks, expected $N"
		diff=$(bench_psql -c "SELECT (SELECT count(*) FROM (TABLE $v EXCEPT ALL TABLE batch_$v) a),
				(SELECT count(*) FROM (TABLE batch_$v EXCEPT ALL TABLE $v) b)") ||
			bench_die "cannot compare view $v with its batch query"
		[[ $diff == "0|0" ]] ||
			bench_die "view $v differs from its batch query: $diff rows (view-only|batch-only)"
	done
}

stream_rates=() base_rates=()
t=  # set by bench_time

bench_info "views_copy: $N csv click events ($csv_mb MiB), $U users, 3 views, repeat $BENCH_REPEAT"
for ((r = 1; r <= BENCH_REPEAT; r++)); do
	setup_cluster
	if ((r % 2)); then order=(baseline stream); else order=(stream baseline); fi
	for phase in "${order[@]}"; do
		prepare_phase
		bench_log "[$r/$BENCH_REPEAT] $phase"
		s=$(bench_now)
		if [[ $phase == baseline ]]; then
			bench_time t run_baseline ||
				fail_with_log "$BENCH_TMP/baseline.out" "baseline (COPY + batch queries) failed"
			rate=$(bench_rate "$N" "$t")
			base_rates+=("$rate")
			bench_info "  [$r] plain COPY + 3 batch queries  $N events in $t s: $rate events/s"
			bench_info "        ($(split "$s" "$(bench_now)" "$BENCH_TMP/baseline.out") of batch queries)"
		else
			bench_time t run_stream ||
				fail_with_log "$BENCH_TMP/stream.out" "stream COPY + sync failed"
			rate=$(bench_rate "$N" "$t")
			stream_rates+=("$rate")
			bench_info "  [$r] stream COPY + sync (3 views)  $N events in $t s: $rate events/s"
			bench_info "        ($(split "$s" "$(bench_now)" "$BENCH_TMP/stream.out") in sync)"
		fi
	done

	n=$(bench_psql -c "SELECT count(*) FROM clicks_plain") || bench_die "cannot count clicks_plain"
	[[ $n == "$N" ]] || bench_die "clicks_plain holds $n rows, expected $N"
	verify
	bench_info "  [$r] correct: every view equals its batch query (EXCEPT ALL both ways: 0 rows)"

	bench_psql -F ' ' -c "SELECT 'stream ' || stream::text || ': log ' || log::text || ' ' ||
			pg_size_pretty(log_bytes) || ' after the run (pgstat estimates, may lag: ' ||
			coalesce(log_rows_estimate, 0) || ' live, ' || coalesce(log_dead_rows_estimate, 0) ||
			' dead rows)'
		FROM streamproc.stat_streams" | sed "s/^/  [$r] /"
	bench_psql -c "SELECT 'view ' || rpad(view::text, 12) || ' ' || groups || ' groups, state ' ||
			pg_size_pretty(memory_bytes) || ' (' || round(memory_bytes::numeric / greatest(groups, 1)) ||
			' bytes per group), last checkpoint ' ||
			round(last_checkpoint_ms::numeric, 1) || ' ms, ' || state
		FROM streamproc.stat_views ORDER BY view::text" | sed "s/^/  [$r] /"
	bench_psql -c "SELECT 'plain table clicks_plain ' || pg_size_pretty(pg_total_relation_size('clicks_plain'))" |
		sed "s/^/  [$r] /"
	bench_pg_stop
done

if ((BENCH_REPEAT > 1)); then
	bench_info "  medians of $BENCH_REPEAT runs:"
fi
bench_figure views_copy_sync "$(bench_median "${stream_rates[@]}")" events/s \
	plain_copy_batch "$(bench_median "${base_rates[@]}")" events/s
