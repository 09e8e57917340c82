#!/usr/bin/env bash
# bench/changes.sh: what a change log (src/changes.c) costs an append view
# and an aggregating view.
#
#   logged_sync      COPY of BENCH_CHANGES_EVENTS click events (CSV file)
#                    into a stream read by an append view (amount > 500,
#                    about half the events) that keeps a change log, then
#                    SELECT streamproc.sync(): the time until the view and
#                    its log hold every event.  Each checkpoint's rows are
#                    also written as jsonb changes, numbered under the log's
#                    row lock, by the trigger on the view's rows table.
#     baseline       plain_sync: the same COPY into a second stream read by
#                    the same append view, without a log.
#   groups_logged_sync   the same COPY into a stream read by count, sum and
#                    avg per user (BENCH_CHANGES_USERS groups) with a change
#                    log: each checkpoint also reads the row of every group
#                    it changed (a keyed read of the view), compares it with
#                    the row logged last, and logs old and new.
#     baseline       groups_plain_sync: the same view without a log.
#
# Both phases run on one throwaway cluster (bench_pg_start), each after a
# CHECKPOINT with the file in the page cache; the order alternates between
# repetitions; BENCH_REPEAT > 1 reports medians.
#
# Checks: both views hold the same rows; the log holds each row of its
# view once, numbered 1..n (aggregating: the log folded by key equals the
# view); otherwise the benchmark fails.

# shellcheck source=bench/lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

: "${BENCH_CHANGES_EVENTS:=2000000}"
: "${BENCH_CHANGES_USERS:=100000}"
: "${BENCH_SEED:=42}"

bench_require "$LOADGEN" timeout
[[ $BENCH_CHANGES_EVENTS =~ ^[1-9][0-9]*$ ]] || bench_die "BENCH_CHANGES_EVENTS must be a positive integer"
[[ $BENCH_REPEAT =~ ^[1-9][0-9]*$ ]] || bench_die "BENCH_REPEAT must be a positive integer"

N=$BENCH_CHANGES_EVENTS
T=$BENCH_TIMEOUT_S
CSV=$BENCH_DATA/changes_clicks.csv

bench_log "generating $N click events to $CSV"
"$LOADGEN" --count "$N" --users "$BENCH_CHANGES_USERS" --format csv --seed "$BENCH_SEED" --quiet \
	>"$CSV" 2>"$BENCH_TMP/loadgen.log" ||
	{ cat "$BENCH_TMP/loadgen.log" >&2; bench_die "loadgen failed"; }
chmod 644 "$CSV"

setup_cluster()
{
	bench_pg_start "streamproc.state_memory=4GB"
	bench_psql <<SQL || bench_die "schema setup failed"
CREATE FOREIGN TABLE clicks_logged (user_id int, url text, amount numeric, ts timestamptz)
	SERVER streamproc;
CREATE FOREIGN TABLE clicks_plain (user_id int, url text, amount numeric, ts timestamptz)
	SERVER streamproc;
CREATE VIEW big_logged WITH (continuous) AS
	SELECT user_id, url, amount, ts FROM clicks_logged WHERE amount > 500;
CREATE VIEW big_plain WITH (continuous) AS
	SELECT user_id, url, amount, ts FROM clicks_plain WHERE amount > 500;
CREATE FOREIGN TABLE clicks_groups_logged (user_id int, url text, amount numeric, ts timestamptz)
	SERVER streamproc;
CREATE FOREIGN TABLE clicks_groups_plain (user_id int, url text, amount numeric, ts timestamptz)
	SERVER streamproc;
CREATE VIEW per_user_logged WITH (continuous) AS
	SELECT user_id, count(*) AS n, sum(amount) AS total, avg(amount) AS mean
	  FROM clicks_groups_logged GROUP BY user_id;
CREATE VIEW per_user_plain WITH (continuous) AS
	SELECT user_id, count(*) AS n, sum(amount) AS total, avg(amount) AS mean
	  FROM clicks_groups_plain GROUP BY user_id;
SELECT streamproc.create_change_log('big_logged');
SELECT streamproc.create_change_log('per_user_logged');
SQL
}

run_phase()
{
	timeout "$T" "$PG_BINDIR/psql" -X -q -At -v ON_ERROR_STOP=1 -h "$BENCH_PG_SOCKDIR" \
		-p "$BENCH_PG_PORT" -U postgres -d postgres \
		-c "COPY clicks_$1 FROM '$CSV' (FORMAT csv)" \
		-c "SELECT streamproc.sync('30 min')" \
		>"$BENCH_TMP/$1.out" 2>&1
}

verify()
{
	local diff
	diff=$(bench_psql -c "SELECT (SELECT count(*) FROM (TABLE big_logged EXCEPT ALL TABLE big_plain) a),
			(SELECT count(*) FROM (TABLE big_plain EXCEPT ALL TABLE big_logged) b),
			(SELECT count(*) FROM (TABLE big_logged EXCEPT ALL
			    SELECT (jsonb_populate_record(NULL::big_logged, new)).* FROM streamproc.changes('big_logged')) c),
			(SELECT count(*) = max(position) AND count(*) = (SELECT count(*) FROM big_logged)
			   FROM streamproc.changes('big_logged'))") ||
		bench_die "cannot compare the views"
	[[ $diff == "0|0|0|t" ]] || bench_die "the views or the log differ: $diff"
	diff=$(bench_psql -c "SELECT (SELECT count(*) FROM (TABLE per_user_logged EXCEPT ALL TABLE per_user_plain) a),
			(SELECT count(*) FROM (TABLE per_user_plain EXCEPT ALL TABLE per_user_logged) b),
			(SELECT count(*) FROM (TABLE per_user_logged EXCEPT ALL
			    SELECT (jsonb_populate_record(NULL::per_user_logged, new)).* FROM
			      (SELECT DISTINCT ON (key) key, new FROM streamproc.changes('per_user_logged')
			        ORDER BY key, position DESC) f) c)") ||
		bench_die "cannot compare the aggregating views"
	[[ $diff == "0|0|0" ]] || bench_die "the aggregating views or their log differ: $diff"
	bench_info "  correct: both views of each pair hold the same rows; the logs hold every row"
}

logged_rates=() plain_rates=() groups_logged_rates=() groups_plain_rates=()
t=
bench_info "changes: $N csv click events, append and aggregating views with a change log vs without, repeat $BENCH_REPEAT"
for ((r = 1; r <= BENCH_REPEAT; r++)); do
	setup_cluster
	if ((r % 2)); then
		order=(plain logged groups_plain groups_logged)
	else
		order=(logged plain groups_logged groups_plain)
	fi
	for phase in "${order[@]}"; do
		cat "$CSV" >/dev/null
		bench_psql -c "CHECKPOINT" >/dev/null || bench_die "checkpoint failed"
		bench_log "[$r/$BENCH_REPEAT] $phase"
		bench_time t run_phase "$phase" ||
			bench_fail_with_log "$BENCH_TMP/$phase.out" "$phase phase failed"
		rate=$(bench_rate "$N" "$t")
		case $phase in
			logged) logged_rates+=("$rate") ;;
			plain) plain_rates+=("$rate") ;;
			groups_logged) groups_logged_rates+=("$rate") ;;
			groups_plain) groups_plain_rates+=("$rate") ;;
		esac
		bench_info "  [$r] $phase: $N events in $t s: $rate events/s"
	done
	verify
	bench_pg_stop
done

if ((BENCH_REPEAT > 1)); then
	bench_info "  medians of $BENCH_REPEAT runs:"
fi
bench_figure logged_sync "$(bench_median "${logged_rates[@]}")" events/s \
	plain_sync "$(bench_median "${plain_rates[@]}")" events/s
bench_figure groups_logged_sync "$(bench_median "${groups_logged_rates[@]}")" events/s \
	groups_plain_sync "$(bench_median "${groups_plain_rates[@]}")" events/s
