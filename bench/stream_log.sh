#!/usr/bin/env bash
# bench/stream_log.sh: the stream log stays small while events flow.
#
# Inserts BENCH_LOG_EVENTS (default 10,000,000) click events into a stream
# that feeds one continuous view, in transactions of BENCH_LOG_CHUNK
# (default 50,000) events paced at BENCH_LOG_RATE events/s (default
# 200,000, below what one worker sustains here, so the log holds no growing
# backlog and its size shows bloat, not lag; 0 = as fast as possible),
# while the ingest workers consume the log; after
# every chunk it records the log's size, and at the end (after sync()) the
# view is checked against the number of events.  Figures: the largest log
# size seen, against the size of a plain table holding the same events
# (measured in the same run: the log is what a stream would cost if it
# kept its events); and the log's size after the run.
#
# The log is trimmed by every checkpoint (TRUNCATE when only consumed rows
# are left and no insert is running, else DELETE plus autovacuum), so its
# size is bounded by what arrives between two checkpoints, not by the
# total.

. "$(dirname "$0")/lib.sh"

: "${BENCH_LOG_EVENTS:=10000000}"
: "${BENCH_LOG_CHUNK:=50000}"
: "${BENCH_LOG_RATE:=200000}"
N=$BENCH_LOG_EVENTS
C=$BENCH_LOG_CHUNK
((N % C == 0)) || bench_die "BENCH_LOG_EVENTS must be a multiple of BENCH_LOG_CHUNK"

bench_pg_start
bench_psql <<'SQL' || bench_die "setup failed"
CREATE EXTENSION IF NOT EXISTS streamproc;
CREATE FOREIGN TABLE clicks (user_id int, url text, amount numeric, ts timestamptz) SERVER streamproc;
CREATE VIEW per_url WITH (continuous) AS
    SELECT url, count(*) AS n, sum(amount) AS total FROM clicks GROUP BY url;
SQL
log=$(bench_psql -c "SELECT log::text FROM streamproc.streams WHERE stream = 'clicks'::regclass")

max_bytes=0
start=$(bench_now)
for ((i = 0; i < N / C; i++)); do
	bench_psql -c "INSERT INTO clicks SELECT g % 100000, '/p/' || (g % 100), (g % 10000) / 100.0, now()
		FROM generate_series($((i * C + 1)), $(((i + 1) * C))) g" ||
		bench_die "insert $i failed"
	bytes=$(bench_psql -c "SELECT pg_total_relation_size('$log')")
	((bytes > max_bytes)) && max_bytes=$bytes
	if ((BENCH_LOG_RATE > 0)); then
		# Pace: chunk i+1 is due (i+1)*C/rate seconds after the start.
		wait_s=$(awk -v s="$start" -v now="$(bench_now)" -v due="$(((i + 1) * C))" -v r="$BENCH_LOG_RATE" \
			'BEGIN { w = s + due / r - now; printf "%.3f", (w > 0 ? w : 0) }')
		sleep "$wait_s"
	fi
	if ((i % 40 == 39)); then
		bench_log "$(((i + 1) * C)) events, log $((bytes / 1024)) kB (max $((max_bytes / 1024)) kB)"
	fi
done
bench_psql -c "SELECT streamproc.sync('30 min')" >/dev/null || bench_die "sync failed"
elapsed=$(bench_elapsed "$start" "$(bench_now)")
final_bytes=$(bench_psql -c "SELECT pg_total_relation_size('$log')")

total=$(bench_psql -c "SELECT sum(n) FROM per_url")
[[ $total == "$N" ]] || bench_die "the view counts $total events, expected $N"
bench_info "stream_log: $N events in $((N / C)) transactions of $C in $elapsed s ($(bench_rate "$N" "$elapsed") events/s, paced at ${BENCH_LOG_RATE:-0}/s), view exact"

# Baseline: the same events kept in a plain table.
bench_psql -c "CREATE TABLE clicks_plain (user_id int, url text, amount numeric, ts timestamptz)" >/dev/null
bench_psql -c "INSERT INTO clicks_plain SELECT g % 100000, '/p/' || (g % 100), (g % 10000) / 100.0, now()
	FROM generate_series(1, $N) g" || bench_die "baseline insert failed"
plain_bytes=$(bench_psql -c "SELECT pg_total_relation_size('clicks_plain')")

bench_info "  log size: max $((max_bytes / 1024)) kB during the run, $((final_bytes / 1024)) kB after sync; plain table $((plain_bytes / 1024)) kB"
bench_figure stream_log_max_bytes "$max_bytes" bytes plain_table_bytes "$plain_bytes" bytes
bench_figure stream_log_final_bytes "$final_bytes" bytes plain_table_bytes "$plain_bytes" bytes
