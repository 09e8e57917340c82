#!/usr/bin/env bash
# bench/chain.sh: a continuous view over a continuous view (src/feed.c)
# against the same two views both reading the stream.
#
#   chain_sync       COPY of BENCH_CHAIN_EVENTS click events (CSV file) into
#                    a stream read by an append view (big: amount > 500,
#                    about half the events) and by an aggregating view over
#                    that view (per_user: count, sum per user), then
#                    SELECT streamproc.sync(): the time until the second
#                    view holds every event.  Its events reach it through
#                    big's checkpoints, the trigger that writes them into
#                    its feed, the feed's log and a second batch.
#     baseline       direct_sync: the same COPY into a second stream read by
#                    the same append view and by the same aggregate written
#                    over the stream (WHERE amount > 500 GROUP BY user_id).
#
# What the ratio says: what a pipeline costs over computing each view from
# the stream (the second write and read of the filtered events).  Both
# phases run on one throwaway cluster (bench_pg_start), each after a
# CHECKPOINT with the file in the page cache; the order alternates between
# repetitions; BENCH_REPEAT > 1 reports medians.
#
# Checks: the chained view equals the direct one row for row (EXCEPT ALL
# both ways), and both count every event of the filter; otherwise the
# benchmark fails.

# shellcheck source=bench/lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

: "${BENCH_CHAIN_EVENTS:=2000000}"
: "${BENCH_CHAIN_USERS:=100000}"
: "${BENCH_SEED:=42}"

bench_require "$LOADGEN" timeout
[[ $BENCH_CHAIN_EVENTS =~ ^[1-9][0-9]*$ ]] || bench_die "BENCH_CHAIN_EVENTS must be a positive integer"
[[ $BENCH_REPEAT =~ ^[1-9][0-9]*$ ]] || bench_die "BENCH_REPEAT must be a positive integer"

N=$BENCH_CHAIN_EVENTS
U=$BENCH_CHAIN_USERS
CSV=$BENCH_DATA/chain_clicks.csv

bench_clicks_csv "$CSV" "$N" "$U"

setup_cluster()
{
	bench_pg_start
	bench_psql <<SQL || bench_die "schema setup failed"
CREATE FOREIGN TABLE clicks_chain (user_id int, url text, amount numeric, ts timestamptz)
	SERVER streamproc;
CREATE FOREIGN TABLE clicks_direct (user_id int, url text, amount numeric, ts timestamptz)
	SERVER streamproc;
CREATE VIEW big_chain WITH (continuous) AS
	SELECT user_id, url, amount FROM clicks_chain WHERE amount > 500;
CREATE VIEW per_user_chain WITH (continuous) AS
	SELECT user_id, count(*) AS n, sum(amount) AS total FROM big_chain GROUP BY user_id;
CREATE VIEW big_direct WITH (continuous) AS
	SELECT user_id, url, amount FROM clicks_direct WHERE amount > 500;
CREATE VIEW per_user_direct WITH (continuous) AS
	SELECT user_id, count(*) AS n, sum(amount) AS total FROM clicks_direct
	 WHERE amount > 500 GROUP BY user_id;
SQL
}

verify()
{
	local diff counts
	diff=$(bench_psql -c "SELECT (SELECT count(*) FROM (TABLE per_user_chain EXCEPT ALL TABLE per_user_direct) a),
			(SELECT count(*) FROM (TABLE per_user_direct EXCEPT ALL TABLE per_user_chain) b)") ||
		bench_die "cannot compare the views"
	[[ $diff == "0|0" ]] || bench_die "per_user_chain differs from per_user_direct: $diff rows"
	counts=$(bench_psql -c "SELECT (SELECT count(*) FROM big_chain), (SELECT sum(n) FROM per_user_chain),
			(SELECT count(*) FROM big_direct), (SELECT sum(n) FROM per_user_direct)") ||
		bench_die "cannot count the views"
	IFS='|' read -r a b c d <<<"$counts"
	[[ $a == "$b" && $b == "$c" && $c == "$d" && $a -gt 0 ]] ||
		bench_die "the views count different events: $counts"
	bench_info "  correct: per_user_chain equals per_user_direct; both count $a events of $N"
}

bench_info "chain: $N csv click events, $U users, append view + aggregate over it vs over the stream, repeat $BENCH_REPEAT"
bench_ab_copy chain direct chain_sync direct_sync "$N" "$CSV"
