#!/usr/bin/env bash
# bench/retract.sh: a continuous view over an aggregating view (retract.c),
# whose groups change, against the aggregating view alone.
#
#   retract_sync     COPY of BENCH_RETRACT_EVENTS click events (CSV file)
#                    into a stream read by per_user (count, sum per user,
#                    BENCH_RETRACT_USERS users) and by a rollup over it
#                    (users, clicks and amount per activity band n / 10),
#                    then SELECT streamproc.sync(): the time until the
#                    rollup holds every change.  Each checkpoint of
#                    per_user logs its changed users (changes.c) and passes
#                    each change to the rollup's feed as the old row taken
#                    back and the new row added.
#     baseline       plain_sync: the same COPY into a second stream read by
#                    the same per_user view, with no change log and nothing
#                    over it.
#
# What the ratio says: what following an aggregating view with another one
# costs (the change log's keyed reads and writes, and the feed).  Both
# phases run on one throwaway cluster (bench_pg_start), each after a
# CHECKPOINT with the file in the page cache; the order alternates between
# repetitions; BENCH_REPEAT > 1 reports medians.
#
# Checks: the rollup equals its query over per_user (EXCEPT ALL both
# ways), and both per_user views count every event; otherwise the
# benchmark fails.

# shellcheck source=bench/lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

: "${BENCH_RETRACT_EVENTS:=2000000}"
: "${BENCH_RETRACT_USERS:=100000}"
: "${BENCH_SEED:=42}"

bench_require "$LOADGEN" timeout
[[ $BENCH_RETRACT_EVENTS =~ ^[1-9][0-9]*$ ]] || bench_die "BENCH_RETRACT_EVENTS must be a positive integer"
[[ $BENCH_REPEAT =~ ^[1-9][0-9]*$ ]] || bench_die "BENCH_REPEAT must be a positive integer"

N=$BENCH_RETRACT_EVENTS
U=$BENCH_RETRACT_USERS
CSV=$BENCH_DATA/retract_clicks.csv

bench_clicks_csv "$CSV" "$N" "$U"

setup_cluster()
{
	bench_pg_start "streamproc.state_memory=2GB"
	bench_psql <<SQL || bench_die "schema setup failed"
CREATE FOREIGN TABLE clicks_retract (user_id int, url text, amount numeric, ts timestamptz)
	SERVER streamproc;
CREATE FOREIGN TABLE clicks_plain (user_id int, url text, amount numeric, ts timestamptz)
	SERVER streamproc;
CREATE VIEW per_user_retract WITH (continuous) AS
	SELECT user_id, count(*) AS n, sum(amount) AS total FROM clicks_retract GROUP BY user_id;
CREATE VIEW bands WITH (continuous) AS
	SELECT n / 10 AS band, count(*) AS users, sum(n) AS n, sum(total) AS total
	  FROM per_user_retract GROUP BY 1;
CREATE VIEW per_user_plain WITH (continuous) AS
	SELECT user_id, count(*) AS n, sum(amount) AS total FROM clicks_plain GROUP BY user_id;
SQL
}

verify()
{
	local diff counts
	diff=$(bench_psql -c "SELECT (SELECT count(*) FROM (TABLE bands EXCEPT ALL
			SELECT n / 10, count(*), sum(n), sum(total) FROM per_user_retract GROUP BY 1) a),
			(SELECT count(*) FROM (SELECT n / 10, count(*), sum(n), sum(total) FROM per_user_retract GROUP BY 1
			EXCEPT ALL TABLE bands) b)") ||
		bench_die "cannot compare the views"
	[[ $diff == "0|0" ]] || bench_die "bands differs from its query over per_user_retract: $diff rows"
	counts=$(bench_psql -c "SELECT (SELECT sum(n) FROM per_user_retract), (SELECT sum(n) FROM bands),
			(SELECT sum(n) FROM per_user_plain), (SELECT count(*) FROM streamproc.changes('per_user_retract'))") ||
		bench_die "cannot count the views"
	IFS='|' read -r a b c d <<<"$counts"
	[[ $a == "$N" && $b == "$N" && $c == "$N" ]] ||
		bench_die "the views count different events: $counts (expected $N)"
	bench_info "  correct: bands equals its query over per_user_retract; both per_user views count $N events; $d changes logged"
}

bench_info "retract: $N csv click events, $U users, per-user view + a rollup over it vs the per-user view alone, repeat $BENCH_REPEAT"
bench_ab_copy retract plain retract_sync plain_sync "$N" "$CSV"
