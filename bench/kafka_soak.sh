#!/usr/bin/env bash
# bench/kafka_soak.sh: memory of the ingest workers under continuous Kafka load.
# bench/run: only when named (takes BENCH_SOAK_MINUTES; not part of `make bench`)
#
#   bench/kafka_soak.sh [MINUTES]       (or bench/run kafka_soak)
#
# loadgen produces BENCH_SOAK_RATE (50,000) json click events/s, --ts now,
# --users BENCH_SOAK_USERS (100,000), for MINUTES (BENCH_SOAK_MINUTES, 10;
# may be fractional) into a topic of BENCH_SOAK_PARTITIONS (16) partitions,
# read by a Kafka source with workers => BENCH_SOAK_WORKERS (2) into a
# stream with two continuous views:
#
#   per_user  user_id, count(*), sum(amount), avg(amount) GROUP BY user_id
#   latest    max(ts), count(*)             (one group: freshness and count)
#
# Every BENCH_SOAK_SAMPLE_S (10) s it records, for each streamproc ingest
# worker (pg_stat_activity.backend_type = 'streamproc worker'), VmRSS,
# RssAnon (private memory: what a leak grows) and RssShmem (shared memory
# the process has touched: shared_buffers, the views' state; grows until
# every page was touched once) from /proc/PID/status, and the source's lag,
# the events counted and the staleness of the newest event
# (clock_timestamp() - max(ts)).  At the end: first / last / max per
# worker and the growth from minute 1 (the first sample at or after 60 s)
# to the end; the views' state memory (stat_views); the size of
# streamproc.state_runs; the WAL written.
#
# Figures (sums over the workers): RSS and RssAnon at the end against their
# value at minute 1 (RATIO 1.00 = no growth).
#
# Checks: after stopping loadgen and sync(), the view counted every
# well-formed event loadgen produced, and every partition's committed
# offset is its high watermark; a worker restart (a new pid) fails the
# run.  The devbroker keeps only the newest ~5 MiB of a partition (about
# 20 s at the default rate and partitions): a source lagging further
# behind loses events and fails the count check.  16 partitions rather than
# 64 because the devbroker's cost grows with the number of small batches a
# partition holds (see kafka_ingest.sh).

# shellcheck source=bench/lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

: "${BENCH_SOAK_MINUTES:=10}"
: "${BENCH_SOAK_RATE:=50000}"
: "${BENCH_SOAK_USERS:=100000}"
: "${BENCH_SOAK_PARTITIONS:=16}"
: "${BENCH_SOAK_WORKERS:=2}"
: "${BENCH_SOAK_SAMPLE_S:=10}"
: "${BENCH_SEED:=42}"
if (($# > 0)); then
	BENCH_SOAK_MINUTES=$1
fi

bench_require "$DEVBROKER" "$LOADGEN" "$RAWCONSUMER" timeout
if ! [[ $BENCH_SOAK_MINUTES =~ ^[0-9]+(\.[0-9]+)?$ ]] ||
	! awk -v m="$BENCH_SOAK_MINUTES" 'BEGIN { exit !(m > 0) }'; then
	bench_die "minutes must be a positive number, not '$BENCH_SOAK_MINUTES'"
fi
for v in BENCH_SOAK_USERS BENCH_SOAK_PARTITIONS BENCH_SOAK_WORKERS BENCH_SOAK_SAMPLE_S; do
	[[ ${!v} =~ ^[1-9][0-9]*$ ]] || bench_die "$v must be a positive integer, not '${!v}'"
done
[[ $BENCH_SOAK_RATE =~ ^[0-9]+(\.[0-9]+)?$ ]] || bench_die "BENCH_SOAK_RATE must be a number"

P=$BENCH_SOAK_PARTITIONS
DURATION_S=$(awk -v m="$BENCH_SOAK_MINUTES" 'BEGIN { printf "%d", m * 60 + 0.5 }')
SAMPLES=$BENCH_TMP/samples
t_sync=''

# status_kb PID FIELD: a "FIELD: N kB" line of /proc/PID/status, or -1.
status_kb()
{
	awk -v f="$2:" '$1 == f { print $2; found = 1 } END { if (!found) print -1 }' \
		"/proc/$1/status" 2>/dev/null || echo -1
}

bench_info "kafka_soak: $BENCH_SOAK_RATE events/s for $BENCH_SOAK_MINUTES min ($DURATION_S s), $P partitions, source workers => $BENCH_SOAK_WORKERS, $BENCH_SOAK_USERS users, sample every $BENCH_SOAK_SAMPLE_S s"

bench_devbroker_start "soak:$P"
bench_pg_start
bench_psql >/dev/null <<SQL || bench_die "setup failed"
CREATE FOREIGN TABLE clicks (user_id int, url text, amount numeric, ts timestamptz)
	SERVER streamproc;
CREATE VIEW per_user WITH (continuous) AS
	SELECT user_id, count(*) AS clicks, sum(amount) AS total, avg(amount) AS mean
	  FROM clicks GROUP BY user_id;
CREATE VIEW latest WITH (continuous) AS
	SELECT max(ts) AS latest, count(*) AS events FROM clicks;
SELECT streamproc.create_kafka_source(name => 'soak', stream => 'clicks', topic => 'soak',
	brokers => '$BENCH_BOOTSTRAP', format => 'json', start_offset => 'earliest',
	workers => $BENCH_SOAK_WORKERS);
SQL
for ((i = 0; i < 300; i++)); do
	s=$(bench_psql -c "SELECT count(*) FROM streamproc.stat_sources
		WHERE source = 'soak' AND state = 'running' AND partition IS NOT NULL")
	[[ $s == "$P" ]] && break
	sleep 0.1
done
[[ $s == "$P" ]] || bench_die "the source runs $s of $P partitions after 30 s"
mapfile -t pids < <(bench_worker_pids)
((${#pids[@]} > 0)) || bench_die "no streamproc worker runs"
wal_start=$(bench_psql -c "SELECT pg_current_wal_lsn()")
bench_info "  workers: ${pids[*]} (pids); source partitions per worker: $(bench_psql -c "SELECT string_agg(worker || ': ' || n, ', ') FROM (SELECT worker, count(*) n FROM streamproc.stat_sources WHERE source = 'soak' GROUP BY worker ORDER BY worker) w")"

start=$(bench_now)
"$LOADGEN" --count 0 --rate "$BENCH_SOAK_RATE" --ts now --users "$BENCH_SOAK_USERS" \
	--seed "$BENCH_SEED" --format json --quiet \
	--brokers "$BENCH_BOOTSTRAP" --topic soak >/dev/null 2>"$BENCH_TMP/loadgen.log" &
lg_pid=$!
bench_on_exit "bench_kill_ours $lg_pid loadgen"

# One line per sample and worker: t pid VmRSS RssAnon RssShmem (kB).
: >"$SAMPLES"
header_done=0
for ((k = 1; k * BENCH_SOAK_SAMPLE_S <= DURATION_S; k++)); do
	due=$(awk -v s="$start" -v k="$k" -v d="$BENCH_SOAK_SAMPLE_S" 'BEGIN { printf "%.3f", s + k * d }')
	wait_s=$(awk -v due="$due" -v now="$(bench_now)" 'BEGIN { w = due - now; printf "%.3f", (w > 0 ? w : 0) }')
	sleep "$wait_s"
	kill -0 "$lg_pid" 2>/dev/null || { cat "$BENCH_TMP/loadgen.log" >&2; bench_die "loadgen exited early"; }
	t=$((k * BENCH_SOAK_SAMPLE_S))
	mapfile -t now_pids < <(bench_worker_pids)
	[[ ${now_pids[*]} == "${pids[*]}" ]] ||
		{ tail -n 30 "$BENCH_PG_LOG" >&2; bench_die "at $t s the workers are ${now_pids[*]:-none}, were ${pids[*]} (a worker restarted)"; }
	line=""
	for pid in "${pids[@]}"; do
		rss=$(status_kb "$pid" VmRSS)
		anon=$(status_kb "$pid" RssAnon)
		shm=$(status_kb "$pid" RssShmem)
		echo "$t $pid $rss $anon $shm" >>"$SAMPLES"
		line+=" $pid: RSS $((rss / 1024)) MB (anon $((anon / 1024)), shmem $((shm / 1024)));"
	done
	stats=$(bench_psql -F ' ' -c "SELECT (SELECT coalesce(sum(lag), 0) FROM streamproc.stat_sources WHERE source = 'soak'),
			(SELECT events FROM latest),
			(SELECT round((extract(epoch FROM clock_timestamp() - latest) * 1000)::numeric) FROM latest),
			pg_total_relation_size('streamproc.state_runs') / 1048576") ||
		bench_die "cannot read the statistics"
	read -r lag events stale vs_mb <<<"$stats"
	if ((header_done == 0)); then
		bench_info "  t(s) | per worker: VmRSS (RssAnon, RssShmem) | source lag | events counted | staleness | state_runs"
		header_done=1
	fi
	bench_info "  ${t}s |$line lag $lag | $events events | ${stale:-?} ms | $vs_mb MB"
done

kill -TERM "$lg_pid" 2>/dev/null || { cat "$BENCH_TMP/loadgen.log" >&2; bench_die "loadgen died early"; }
wait "$lg_pid" || { cat "$BENCH_TMP/loadgen.log" >&2; bench_die "loadgen failed"; }
read -r M MW lg_rate <<<"$(sed -n 's/^loadgen: \([0-9]*\) events (\([0-9]*\) well-formed, .* \([0-9]*\) events\/s$/\1 \2 \3/p' "$BENCH_TMP/loadgen.log" | tail -n1)"
[[ -n $M ]] || { cat "$BENCH_TMP/loadgen.log" >&2; bench_die "no loadgen summary"; }
bench_log "loadgen stopped after $M events; sync"
bench_time t_sync bench_psql -c "SELECT streamproc.sync('600s')" >/dev/null || bench_die "sync failed"

# Checks.
"$RAWCONSUMER" --brokers "$BENCH_BOOTSTRAP" --topic soak --watermarks >/dev/null 2>"$BENCH_TMP/watermarks" ||
	{ cat "$BENCH_TMP/watermarks" >&2; bench_die "cannot read the watermarks"; }
appended=$(awk '$2 == "partition" { n += $7 } END { print n + 0 }' "$BENCH_TMP/watermarks")
[[ $appended == "$M" ]] || bench_die "$appended messages were appended to the topic, loadgen produced $M"
counted=$(bench_psql -c "SELECT events FROM latest")
per_user=$(bench_psql -c "SELECT sum(clicks) FROM per_user")
[[ $counted == "$MW" && $per_user == "$MW" ]] ||
	bench_die "the views count $counted and $per_user events, loadgen produced $MW well-formed (lost to the broker's retention if the source lagged)"
bench_psql -F ' ' -c "SELECT partition, \"offset\" FROM streamproc.kafka_offsets WHERE source = 'soak'" >"$BENCH_TMP/offsets"
awk -v np="$P" 'FNR == NR { if ($2 == "partition") high[$3] = $7; next }
	{ n++; if (high[$1] != $2) bad = 1 } END { exit bad || n != np }' "$BENCH_TMP/watermarks" "$BENCH_TMP/offsets" ||
	bench_die "the committed offsets are not the high watermarks"
errors=$(bench_psql -c "SELECT count(*) FROM streamproc.errors")

bench_info "  loadgen produced $M events at $lg_rate events/s; after stopping it, sync() took $t_sync s; the views counted all $MW, $errors errors"

# Summary per worker.
summary_field()
{
	# summary_field COLUMN NAME: per worker first/last/max and growth from minute 1
	awk -v col="$1" -v name="$2" '
		{
			t = $1; pid = $2; v = $col
			if (!(pid in first)) { first[pid] = v; order[++np] = pid }
			last[pid] = v
			if (v > max[pid]) max[pid] = v
			if (t >= 60 && !(pid in m1)) { m1[pid] = v; m1t[pid] = t }
		}
		END {
			for (i = 1; i <= np; i++) {
				pid = order[i]
				if (!(pid in m1)) { m1[pid] = first[pid]; m1t[pid] = "first sample" } else m1t[pid] = m1t[pid] " s"
				printf "  worker %s %-8s first %.1f MB, last %.1f MB, max %.1f MB; growth since %s: %+.1f MB\n",
					pid, name, first[pid] / 1024, last[pid] / 1024, max[pid] / 1024, m1t[pid], (last[pid] - m1[pid]) / 1024
			}
		}' "$SAMPLES"
	# The values jitter by tens of MB between samples (per-batch memory,
	# librdkafka buffers): also compare the means of minute 2 and of the
	# last minute.
	awk -v col="$1" -v name="$2" -v end="$DURATION_S" '
		{
			pid = $2
			if (!(pid in seen)) { seen[pid] = 1; order[++np] = pid }
			if ($1 >= 60 && $1 < 120) { a[pid] += $col; na[pid]++ }
			if ($1 > end - 60) { b[pid] += $col; nb[pid]++ }
		}
		END {
			if (end < 180) exit
			for (i = 1; i <= np; i++) {
				pid = order[i]
				if (!na[pid] || !nb[pid]) continue
				printf "  worker %s %-8s mean of minute 2 %.1f MB, of the last minute %.1f MB: %+.1f MB\n",
					pid, name, a[pid] / na[pid] / 1024, b[pid] / nb[pid] / 1024, (b[pid] / nb[pid] - a[pid] / na[pid]) / 1024
			}
		}' "$SAMPLES"
}
summary_field 3 VmRSS
summary_field 4 RssAnon
summary_field 5 RssShmem

bench_psql -c "SELECT '  view ' || rpad(view::text, 8) || ' ' || groups || ' groups, state ' ||
		pg_size_pretty(memory_bytes) || ', last checkpoint ' || round(last_checkpoint_ms::numeric, 1) || ' ms'
	FROM streamproc.stat_views ORDER BY view::text"
bench_psql -c "SELECT '  streamproc.state_runs ' || pg_size_pretty(pg_total_relation_size('streamproc.state_runs')) ||
		', WAL written during the run ' || pg_size_pretty(pg_current_wal_lsn() - '$wal_start'::pg_lsn)"

# Figures: sums over the workers, end against minute 1.
sums()
{
	# sums COLUMN: "AT_MINUTE_1 AT_END" summed over the workers
	awk -v col="$1" '
		{ t = $1; s[t] += $col; if (!(t in seen)) { seen[t] = 1; ts[++n] = t } }
		END {
			m1 = ts[1]
			for (i = 1; i <= n; i++) if (ts[i] >= 60) { m1 = ts[i]; break }
			print s[m1], s[ts[n]]
		}' "$SAMPLES"
}
read -r rss1 rss2 <<<"$(sums 3)"
read -r anon1 anon2 <<<"$(sums 4)"
bench_figure kafka_soak_rss_end "$rss2" kB kafka_soak_rss_minute1 "$rss1" kB
bench_figure kafka_soak_anon_end "$anon2" kB kafka_soak_anon_minute1 "$anon1" kB
