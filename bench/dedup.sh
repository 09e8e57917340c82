#!/usr/bin/env bash
# bench/dedup.sh: deduplication by key (the stream option dedup_key, see
# src/dedup.c) against the same stream without it, the same events in the
# same run, through SQL (COPY) and through a Kafka source.
#
# The events: BENCH_DEDUP_EVENTS (BENCH_EVENTS, 1,000,000) loadgen click
# events, --users BENCH_DEDUP_USERS (100,000) --duplicates
# BENCH_DEDUP_DUPLICATES (0.05) --seed BENCH_SEED (42): a duplicate is a
# byte-for-byte copy of one of the last 128 fresh events, and the fresh
# events all differ in ts (start + i ms), so the key (user_id, url, ts) is
# unique but for the duplicates: D duplicates (loadgen's summary), N - D
# distinct events.  Each phase creates a fresh stream
#
#	clicks_P (user_id int, url text, amount numeric, ts timestamptz)
#	    dedup: OPTIONS (dedup_key 'user_id, url, ts')  (dedup_window: 1 hour,
#	    the default, or BENCH_DEDUP_WINDOW; no event_time, so a key's age is
#	    the time it was first processed and nothing expires during the run;
#	    a window shorter than a phase makes the key-count checks fail)
#
# with one continuous view (100,000 groups)
#
#	SELECT user_id, count(*) AS clicks, sum(amount) AS total
#	  FROM clicks_P GROUP BY user_id
#
# SQL (figure dedup_copy_sync, baseline plain_copy_sync, events/s): one
# psql process runs COPY clicks_P FROM 'file' (FORMAT csv) of the N events
# (csv, written before timing and read once untimed so that it is in the
# page cache), then SELECT streamproc.sync('30 min'), after a CHECKPOINT
# (untimed).  Every view's log query calls streamproc._dedup() per row.
#
# Kafka (figure dedup_kafka, baseline plain_kafka, events/s): loadgen
# produces the same N events as json (--malformed 0) once into topic
# dd_clicks (BENCH_PARTITIONS, 64, partitions); each phase times one psql
# process running create_kafka_source(start_offset => 'earliest', workers
# => BENCH_DEDUP_KAFKA_WORKERS (2)) and SELECT streamproc.sync('600s'),
# after a CHECKPOINT (untimed).  The worker checks each parsed row once
# per batch.  When N does not fit the devbroker's retention (~5 MiB per
# partition), each phase produces into its own fresh topic while its
# source consumes (the source is created first; loadgen paced at
# BENCH_DEDUP_KAFKA_RATE events/s, 0 = as fast as it can; the time runs
# from the source's creation to the end of sync(), which starts once
# loadgen is done); BENCH_DEDUP_KAFKA_MODE = auto (default), preload or
# concurrent forces one; BENCH_DEDUP_KAFKA = 0 skips the Kafka part.
#
# Rates are N (every event, duplicates included) / wall time, for both, so
# RATIO = plain time / dedup time: the dedup stream's throughput as a
# fraction of the plain stream's (goal, printed not enforced: >= 0.7).
#
# Checks (after each phase, untimed; a failed check lets the run go on, so
# that the output shows what was measured, but then no FIGURE line is
# printed and the benchmark fails; a check that cannot run fails it at
# once): a plain table holding the N events (the csv file, or loadgen's oracle of
# the Kafka events) has N - D distinct rows and N - D distinct keys (so one
# copy per key is one distinct row, whichever copy wins); the plain view's
# sum(clicks) and stat_views.events are N and it equals its batch query
# over the plain table, the dedup view's sum(clicks) is N - D and it
# equals the batch query over SELECT DISTINCT * of the plain table
# (EXCEPT ALL both ways: 0 rows); stat_streams.duplicates is D and
# stat_streams.dedup_keys N - D; streamproc.dedup_keys (the claims in
# streamproc.dedup_runs) holds N - D keys of the stream after sync() (sync
# checkpoints); Kafka: the topic holds
# exactly N messages from offset 0 (or N were appended, concurrent mode),
# the committed offsets are the high watermarks and streamproc.errors is
# empty.  An ingest worker that exits during a phase (and is restarted) is
# reported with the server log's lines.
#
# State, printed after each dedup phase: stat_streams.dedup_keys and
# dedup_memory_bytes (per key), and streamproc.dedup_runs' size (heap,
# TOAST and indexes; per claim), its runs, and the claims' average key and
# claim lengths.
#
# Each part (SQL, Kafka) of each repetition has a fresh cluster (and
# broker); phase order alternates (odd: plain first; even: dedup first);
# a phase's stream and view are dropped after its checks (and dedup_runs
# vacuumed), so the next phase starts clean.  BENCH_REPEAT > 1 reports
# medians.  Also printed per phase: the COPY / sync split (SQL), the CPU
# seconds of the ingest workers (and the devbroker), stat_views.events.
#
# Profiling: BENCH_DEDUP_PERF=1 runs perf record (-g, 999 Hz) on the
# ingest workers during every timed phase and prints the top symbols
# (perf report --no-children); the rates of such a run include perf's
# overhead.  With BENCH_KEEP_TMP=1 the perf.*.data files are kept.

# shellcheck source=bench/lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

: "${BENCH_DEDUP_EVENTS:=$BENCH_EVENTS}"
: "${BENCH_DEDUP_USERS:=100000}"
: "${BENCH_DEDUP_DUPLICATES:=0.05}"
: "${BENCH_DEDUP_WINDOW:=}"
: "${BENCH_DEDUP_KAFKA:=1}"
: "${BENCH_DEDUP_KAFKA_WORKERS:=2}"
: "${BENCH_DEDUP_KAFKA_MODE:=auto}"
: "${BENCH_DEDUP_KAFKA_RATE:=0}"
: "${BENCH_DEDUP_PERF:=0}"
: "${BENCH_DEDUP_PERF_TOP:=25}"
: "${BENCH_SEED:=42}"

bench_require "$LOADGEN" timeout
for v in BENCH_DEDUP_EVENTS BENCH_DEDUP_USERS BENCH_DEDUP_KAFKA_WORKERS BENCH_PARTITIONS BENCH_REPEAT; do
	[[ ${!v} =~ ^[1-9][0-9]*$ ]] || bench_die "$v must be a positive integer, not '${!v}'"
done
[[ $BENCH_DEDUP_DUPLICATES =~ ^0(\.[0-9]+)?$ ]] || bench_die "BENCH_DEDUP_DUPLICATES must be a fraction in [0, 1)"
[[ $BENCH_DEDUP_KAFKA_RATE =~ ^[0-9]+(\.[0-9]+)?$ ]] || bench_die "BENCH_DEDUP_KAFKA_RATE must be a number"
[[ $BENCH_DEDUP_KAFKA_MODE =~ ^(auto|preload|concurrent)$ ]] ||
	bench_die "BENCH_DEDUP_KAFKA_MODE must be auto, preload or concurrent"
((BENCH_DEDUP_KAFKA == 0)) || bench_require "$DEVBROKER" "$RAWCONSUMER"
((BENCH_DEDUP_PERF == 0)) || bench_require perf

N=$BENCH_DEDUP_EVENTS
U=$BENCH_DEDUP_USERS
P=$BENCH_PARTITIONS
T=$BENCH_TIMEOUT_S
KEY='user_id, url, ts'
CSV=$BENCH_DATA/clicks.csv
ORACLE=$BENCH_DATA/oracle.csv
TOPIC=dd_clicks
KMODE=$BENCH_DEDUP_KAFKA_MODE
if [[ $KMODE == auto ]]; then
	# A json click event is about 85 bytes with its key.
	if ((N * 85 / P < 4500000)); then KMODE=preload; else KMODE=concurrent; fi
fi
STREAM_OPTIONS="OPTIONS (dedup_key '$KEY'"
[[ -z $BENCH_DEDUP_WINDOW ]] || STREAM_OPTIONS+=", dedup_window '$BENCH_DEDUP_WINDOW'"
STREAM_OPTIONS+=")"

# The view, FROM placeholder @S@.
Q_VIEW='SELECT user_id, count(*) AS clicks, sum(amount) AS total FROM @S@ GROUP BY user_id'
q()
{
	printf '%s' "${Q_VIEW//@S@/$1}"
}

# duplicates_of LOG: D of loadgen's summary line.
duplicates_of()
{
	sed -n 's/^loadgen: [0-9]* events ([0-9]* well-formed, \([0-9]*\) duplicates, .*/\1/p' "$1" | tail -n1
}

sub()
{
	awk -v a="$1" -v b="$2" 'BEGIN { printf "%.1f", b - a }'
}

# ---------------------------------------------------------------------
# The reference: the events in a plain table, and the batch queries.
# ---------------------------------------------------------------------

# load_reference FILE: ref_events, ref_plain (every event) and
# ref_dedup (distinct events); checks the distinct counts.
load_reference()
{
	local res
	chmod 644 "$1"
	bench_psql <<SQL >/dev/null || bench_die "loading the reference table failed"
CREATE TABLE ref_events (user_id int, url text, amount numeric, ts timestamptz);
COPY ref_events FROM '$1' (FORMAT csv);
CREATE TABLE ref_plain AS $(q ref_events);
CREATE TABLE ref_dedup AS $(q "(SELECT DISTINCT * FROM ref_events) d");
ANALYZE ref_events;
SQL
	res=$(bench_psql -c "SELECT count(*), (SELECT count(*) FROM (SELECT DISTINCT * FROM ref_events) a),
			(SELECT count(*) FROM (SELECT DISTINCT $KEY FROM ref_events) b) FROM ref_events") ||
		bench_die "cannot count the reference table"
	[[ $res == "$N|$DISTINCT|$DISTINCT" ]] ||
		bench_die "reference: rows|distinct rows|distinct keys = $res, expected $N|$DISTINCT|$DISTINCT"
}

# ---------------------------------------------------------------------
# Phases
# ---------------------------------------------------------------------

# setup_phase P: stream clicks_P and view per_user_P.
setup_phase()
{
	local opts=''
	[[ $1 == dedup ]] && opts=$STREAM_OPTIONS
	bench_psql <<SQL || bench_die "setup of phase $1 failed"
CREATE FOREIGN TABLE clicks_$1 (user_id int, url text, amount numeric, ts timestamptz)
	SERVER streamproc $opts;
CREATE VIEW per_user_$1 WITH (continuous) AS $(q "clicks_$1");
SQL
}

drop_phase()
{
	bench_psql -c "DROP VIEW per_user_$1" -c "DROP FOREIGN TABLE clicks_$1" \
		-c "VACUUM streamproc.dedup_runs" >/dev/null || bench_die "cleanup of phase $1 failed"
}

perf_pid=''
perf_start()
{
	((BENCH_DEDUP_PERF != 0)) || return 0
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
	((BENCH_DEDUP_PERF != 0)) || return 0
	kill -INT "$perf_pid" 2>/dev/null || true
	wait "$perf_pid" || true
	bench_info "        perf of the ingest workers ($1, top $BENCH_DEDUP_PERF_TOP symbols, --no-children):"
	perf report -i "$BENCH_TMP/perf.$1.data" --no-children --sort dso,symbol -g none --stdio \
		2>/dev/null >"$BENCH_TMP/perf.$1.txt" || true
	awk -v n="$BENCH_DEDUP_PERF_TOP" '/^ +[0-9.]+%/ && k++ < n { printf "          %7s  %-22s %s\n", $1, $2, $4 }' \
		"$BENCH_TMP/perf.$1.txt"
	((BENCH_KEEP_TMP != 0)) || rm -f "$BENCH_TMP/perf.$1.data"
}

# unverified WHAT: a failed check; the run goes on (so that the output
# shows what it measured) but prints no FIGURE line and fails at the end.
unverified()
{
	unverified_list+=("[$r] $*")
	bench_info "        CHECK FAILED: $*"
}

# verify_phase P KIND: the view counted every (plain) or every distinct
# (dedup) event, equals its batch query, and the dedup state is complete.
verify_phase()
{
	local p=$1 v=per_user_$1 expect=$N batch=ref_plain res
	if [[ $p == dedup ]]; then
		expect=$DISTINCT
		batch=ref_dedup
	fi
	res=$(bench_psql -c "SELECT sum(clicks) FROM $v") || bench_die "cannot read view $v"
	[[ $res == "$expect" ]] || unverified "$2 $p: view $v counts $res events, expected $expect"
	res=$(bench_psql -c "SELECT (SELECT count(*) FROM (TABLE $v EXCEPT ALL TABLE $batch) a),
			(SELECT count(*) FROM (TABLE $batch EXCEPT ALL TABLE $v) b)") ||
		bench_die "cannot compare view $v with its batch query"
	[[ $res == "0|0" ]] ||
		unverified "$2 $p: view $v differs from its batch query: $res rows (view-only|batch-only)"
	view_events=$(bench_psql -c "SELECT events FROM streamproc.stat_views WHERE view = '$v'::regclass") ||
		bench_die "cannot read stat_views"
	if [[ $p == plain ]]; then
		[[ $view_events == "$N" ]] || unverified "$2 $p: stat_views says $v merged $view_events events, expected $N"
		return 0
	fi
	res=$(bench_psql -c "SELECT coalesce(dedup_keys, -1) || '|' || coalesce(duplicates, -1)
			FROM streamproc.stat_streams WHERE stream = 'clicks_dedup'::regclass") ||
		bench_die "cannot read stat_streams"
	[[ $res == "$DISTINCT|$D" ]] ||
		unverified "$2 dedup: stat_streams says dedup_keys|duplicates = $res, expected $DISTINCT|$D"
	res=$(bench_psql -c "SELECT count(DISTINCT key) FROM streamproc.dedup_keys WHERE stream = 'clicks_dedup'::regclass") ||
		bench_die "cannot count streamproc.dedup_keys"
	[[ $res == "$DISTINCT" ]] ||
		unverified "$2 dedup: streamproc.dedup_keys holds $res keys of the stream after sync(), expected $DISTINCT (claims not durable)"
}

# restarts: worker exits logged so far (a worker that fails is restarted).
restarts()
{
	grep -c 'background worker "streamproc worker" (PID [0-9]*) exited' "$BENCH_PG_LOG" || true
}

# restart_note BEFORE: a line if workers exited during the phase.
restart_note()
{
	local n
	n=$(($(restarts) - $1))
	((n > 0)) || return 0
	bench_info "        WARNING: $n ingest worker exit(s) during the phase (restarted; the time includes it); server log:"
	grep -E 'ERROR|exited with exit code|restarting streamproc worker' "$BENCH_PG_LOG" |
		tail -n $((3 * n)) | sed 's/^/          /'
}

# report_state WHAT: the dedup state after a dedup phase.
report_state()
{
	bench_psql -c "SELECT '        state: ' || dedup_keys || ' keys, ' || duplicates || ' duplicates dropped; shared memory ' ||
			pg_size_pretty(dedup_memory_bytes) || ' (' || round(dedup_memory_bytes::numeric / greatest(dedup_keys, 1)) ||
			' bytes per key)'
		FROM streamproc.stat_streams WHERE stream = 'clicks_dedup'::regclass" ||
		bench_die "cannot read stat_streams"
	bench_psql -c "WITH k AS (SELECT count(*) AS n, avg(length(key)) AS key, avg(length(claim)) AS claim
				FROM streamproc.dedup_keys),
			s AS (SELECT pg_table_size('streamproc.dedup_runs') AS heap,
				pg_indexes_size('streamproc.dedup_runs') AS idx,
				pg_total_relation_size('streamproc.dedup_runs') AS total,
				(SELECT count(*) FROM streamproc.dedup_runs) AS runs)
		SELECT '        streamproc.dedup_runs: ' || n || ' claims in ' || runs || ' runs, ' || pg_size_pretty(total) || ' (' ||
			round(total::numeric / greatest(n, 1)) || ' bytes per claim: heap and TOAST ' || round(heap::numeric / greatest(n, 1)) ||
			', indexes ' || round(idx::numeric / greatest(n, 1)) || '); key ' || round(key, 1) ||
			' bytes, claim ' || round(claim, 1) || ' bytes on average'
		FROM k, s" || bench_die "cannot measure streamproc.dedup_runs"
	bench_psql -c "SELECT '        view per_user_dedup: ' || groups || ' groups, state ' || pg_size_pretty(memory_bytes) ||
			', last checkpoint ' || round(last_checkpoint_ms::numeric, 1) || ' ms'
		FROM streamproc.stat_views WHERE view = 'per_user_dedup'::regclass"
	if [[ $1 == SQL ]]; then
		sql_key_mem+=("$(bench_psql -c "SELECT round(dedup_memory_bytes::numeric / greatest(dedup_keys, 1))
			FROM streamproc.stat_streams WHERE stream = 'clicks_dedup'::regclass")")
		sql_key_disk+=("$(bench_psql -c "SELECT round(pg_total_relation_size('streamproc.dedup_runs')::numeric /
			greatest((SELECT count(*) FROM streamproc.dedup_keys), 1))")")
	fi
}

run_copy()
{
	timeout "$T" "$PG_BINDIR/psql" -X -q -At -v ON_ERROR_STOP=1 -h "$BENCH_PG_SOCKDIR" \
		-p "$BENCH_PG_PORT" -U postgres -d postgres \
		-c "COPY clicks_$1 FROM '$CSV' (FORMAT csv)" \
		-c "SELECT 'mark ' || extract(epoch FROM clock_timestamp())" \
		-c "SELECT streamproc.sync('30 min')" \
		>"$BENCH_TMP/copy_$1.out" 2>&1
}

phase_sql()
{
	local p=$1 t s e mark rate c0 c1 pids x0
	setup_phase "$p"
	cat "$CSV" >/dev/null
	bench_psql -c "CHECKPOINT" || bench_die "CHECKPOINT failed"
	mapfile -t pids < <(bench_worker_pids)
	((${#pids[@]} > 0)) || bench_die "no streamproc worker runs"
	bench_log "[$r/$BENCH_REPEAT] SQL $p: COPY + sync"
	perf_start "sql_$p.$r"
	x0=$(restarts)
	c0=$(bench_cpu_seconds "${pids[@]}")
	s=$(bench_now)
	bench_time t run_copy "$p" || bench_fail_with_log "$BENCH_TMP/copy_$p.out" "SQL $p: COPY + sync failed"
	e=$(bench_now)
	c1=$(bench_cpu_seconds "${pids[@]}")
	perf_stop "sql_$p.$r"
	rate=$(bench_rate "$N" "$t")
	if [[ $p == dedup ]]; then sql_dedup+=("$rate"); else sql_plain+=("$rate"); fi
	mark=$(sed -n 's/^mark //p' "$BENCH_TMP/copy_$p.out")
	bench_info "  [$r] SQL $(printf '%-5s' "$p") COPY + sync  $N events in $t s: $rate events/s"
	bench_info "        (COPY $(bench_elapsed "$s" "$mark") s, then $(bench_elapsed "$mark" "$e") s in sync; CPU of the ingest workers $(sub "$c0" "$c1") s)"
	restart_note "$x0"
	verify_phase "$p" SQL
	bench_info "        (stat_views.events $view_events)"
	[[ $p == plain ]] || report_state SQL
	drop_phase "$p"
}

run_source()
{
	timeout "$T" "$PG_BINDIR/psql" -X -q -At -v ON_ERROR_STOP=1 -h "$BENCH_PG_SOCKDIR" \
		-p "$BENCH_PG_PORT" -U postgres -d postgres \
		-c "SELECT streamproc.create_kafka_source(name => 'src_$1', stream => 'clicks_$1',
				topic => '$2', brokers => '$BENCH_BOOTSTRAP', format => 'json',
				start_offset => 'earliest', workers => $BENCH_DEDUP_KAFKA_WORKERS)" \
		-c "SELECT streamproc.sync('600s')" \
		>"$BENCH_TMP/source_$1.out" 2>&1
}

produce()
{
	timeout "$T" "$LOADGEN" --count "$N" --users "$U" --duplicates "$BENCH_DEDUP_DUPLICATES" \
		--seed "$BENCH_SEED" --format json --malformed 0 --rate "$BENCH_DEDUP_KAFKA_RATE" --quiet \
		--brokers "$BENCH_BOOTSTRAP" --topic "$1" "${@:3}" >/dev/null 2>"$2"
}

# Concurrent mode: the source first, loadgen into its topic, then sync.
run_source_concurrent()
{
	timeout "$T" "$PG_BINDIR/psql" -X -q -At -v ON_ERROR_STOP=1 -h "$BENCH_PG_SOCKDIR" \
		-p "$BENCH_PG_PORT" -U postgres -d postgres \
		-c "SELECT streamproc.create_kafka_source(name => 'src_$1', stream => 'clicks_$1',
				topic => '$2', brokers => '$BENCH_BOOTSTRAP', format => 'json',
				start_offset => 'earliest', workers => $BENCH_DEDUP_KAFKA_WORKERS)" \
		>"$BENCH_TMP/source_$1.out" 2>&1 || return 1
	produce "$2" "$BENCH_TMP/loadgen_$1.log" || return 1
	timeout "$T" "$PG_BINDIR/psql" -X -q -At -v ON_ERROR_STOP=1 -h "$BENCH_PG_SOCKDIR" \
		-p "$BENCH_PG_PORT" -U postgres -d postgres -c "SELECT streamproc.sync('600s')" \
		>>"$BENCH_TMP/source_$1.out" 2>&1
}

phase_kafka()
{
	local p=$1 topic=$TOPIC t rate c0 c1 b0 b1 pids res x0
	[[ $KMODE == concurrent ]] && topic=dd_$p
	setup_phase "$p"
	bench_psql -c "CHECKPOINT" || bench_die "CHECKPOINT failed"
	mapfile -t pids < <(bench_worker_pids)
	((${#pids[@]} >= BENCH_DEDUP_KAFKA_WORKERS)) ||
		bench_die "only ${#pids[@]} streamproc workers run, workers => $BENCH_DEDUP_KAFKA_WORKERS needs as many"
	bench_log "[$r/$BENCH_REPEAT] Kafka $p: source ($KMODE) on $topic + sync"
	perf_start "kafka_$p.$r"
	x0=$(restarts)
	c0=$(bench_cpu_seconds "${pids[@]}")
	b0=$(bench_cpu_seconds "$BENCH_BROKER_PID")
	if [[ $KMODE == preload ]]; then
		bench_time t run_source "$p" "$topic" ||
			bench_fail_with_log "$BENCH_TMP/source_$p.out" "Kafka $p: create_kafka_source + sync failed"
	else
		bench_time t run_source_concurrent "$p" "$topic" ||
			bench_fail_with_log "$BENCH_TMP/source_$p.out" "Kafka $p: source + loadgen + sync failed (loadgen: $(cat "$BENCH_TMP/loadgen_$p.log" 2>/dev/null))"
	fi
	c1=$(bench_cpu_seconds "${pids[@]}")
	b1=$(bench_cpu_seconds "$BENCH_BROKER_PID")
	perf_stop "kafka_$p.$r"
	if [[ $KMODE == preload ]]; then
		bench_kafka_check_topic "$topic" "$N" "Kafka $p"
	else
		res=$(duplicates_of "$BENCH_TMP/loadgen_$p.log")
		[[ $res == "$D" ]] || bench_fail_with_log "$BENCH_TMP/loadgen_$p.log" "Kafka $p: loadgen reports $res duplicates, expected $D"
		bench_kafka_check_topic "$topic" "$N" "Kafka $p" trimmed
	fi
	bench_kafka_check_offsets "src_$p" "$topic" "$P" "Kafka $p"
	rate=$(bench_rate "$N" "$t")
	if [[ $p == dedup ]]; then kafka_dedup+=("$rate"); else kafka_plain+=("$rate"); fi
	bench_info "  [$r] Kafka $(printf '%-5s' "$p") source + sync  $N events in $t s: $rate events/s"
	bench_info "        (CPU of the ingest workers $(sub "$c0" "$c1") s, devbroker $(sub "$b0" "$b1") s)"
	restart_note "$x0"
	res=$(bench_psql -c "SELECT count(*) FROM streamproc.errors") || bench_die "cannot read streamproc.errors"
	[[ $res == 0 ]] || unverified "Kafka $p: streamproc.errors holds $res rows, expected 0"
	verify_phase "$p" Kafka
	bench_info "        (stat_views.events $view_events)"
	[[ $p == plain ]] || report_state Kafka
	bench_psql -c "SELECT streamproc.drop_kafka_source('src_$p')" >/dev/null ||
		bench_die "cannot drop source src_$p"
	drop_phase "$p"
}

# ---------------------------------------------------------------------

sql_dedup=() sql_plain=() kafka_dedup=() kafka_plain=() sql_key_mem=() sql_key_disk=()
unverified_list=()
r=0 t='' D='' DISTINCT='' view_events='' res=''

bench_log "generating $N csv click events to $CSV"
"$LOADGEN" --count "$N" --users "$U" --duplicates "$BENCH_DEDUP_DUPLICATES" --format csv \
	--seed "$BENCH_SEED" --quiet >"$CSV" 2>"$BENCH_TMP/loadgen_csv.log" ||
	bench_fail_with_log "$BENCH_TMP/loadgen_csv.log" "loadgen failed"
lines=$(wc -l <"$CSV")
((lines == N)) || bench_die "loadgen wrote $lines events, expected $N"
D=$(duplicates_of "$BENCH_TMP/loadgen_csv.log")
[[ -n $D ]] || bench_fail_with_log "$BENCH_TMP/loadgen_csv.log" "no duplicate count in loadgen's summary"
DISTINCT=$((N - D))
chmod 644 "$CSV"
csv_mb=$(awk -v b="$(stat -c %s "$CSV")" 'BEGIN { printf "%.1f", b / 1048576 }')

bench_info "dedup: $N click events ($csv_mb MiB csv), $D duplicates (--duplicates $BENCH_DEDUP_DUPLICATES), $DISTINCT distinct keys ($KEY), $U users; repeat $BENCH_REPEAT"
# shellcheck disable=SC2016 # @S@ is no shell expansion
bench_info "  stream option dedup_key '$KEY'${BENCH_DEDUP_WINDOW:+, dedup_window '$BENCH_DEDUP_WINDOW'}; view: $(q 'clicks_P')"
so=$(pg_config --pkglibdir)/streamproc.so
bench_info "  installed $so: $(date -u -r "$so" '+%Y-%m-%d %H:%M:%S UTC'), sha256 $(sha256sum "$so" | cut -c1-12)"
if ((BENCH_DEDUP_KAFKA != 0)); then
	kinfo="Kafka: $P partitions, workers => $BENCH_DEDUP_KAFKA_WORKERS, mode $KMODE"
	[[ $KMODE == preload ]] || kinfo+=" (loadgen --rate $BENCH_DEDUP_KAFKA_RATE)"
	bench_info "  $kinfo"
fi
((BENCH_DEDUP_PERF == 0)) || bench_info "  (perf record runs on the workers during every timed phase: rates include its overhead)"

for ((r = 1; r <= BENCH_REPEAT; r++)); do
	if ((r % 2)); then order=(plain dedup); else order=(dedup plain); fi

	# SQL
	# shellcheck disable=SC2119 # no extra settings
	bench_pg_start
	load_reference "$CSV"
	for phase in "${order[@]}"; do
		phase_sql "$phase"
	done
	bench_pg_stop

	# Kafka
	((BENCH_DEDUP_KAFKA != 0)) || continue
	if [[ $KMODE == preload ]]; then
		bench_devbroker_start "$TOPIC:$P"
	else
		bench_devbroker_start "dd_plain:$P" "dd_dedup:$P"
	fi
	# shellcheck disable=SC2119 # no extra settings
	bench_pg_start
	if [[ $KMODE == preload ]]; then
		bench_log "[$r/$BENCH_REPEAT] loadgen producing $N events into $TOPIC"
		bench_time t produce "$TOPIC" "$BENCH_TMP/loadgen_kafka.log" --oracle-csv "$ORACLE" ||
			bench_fail_with_log "$BENCH_TMP/loadgen_kafka.log" "loadgen producing failed"
		bench_kafka_check_topic "$TOPIC" "$N" "after producing"
		bench_info "  [$r] produced $N events in $t s: $(bench_rate "$N" "$t") events/s"
		res=$(duplicates_of "$BENCH_TMP/loadgen_kafka.log")
	else
		# The same events, for the reference only.
		"$LOADGEN" --count "$N" --users "$U" --duplicates "$BENCH_DEDUP_DUPLICATES" --format json \
			--malformed 0 --seed "$BENCH_SEED" --quiet --oracle-csv "$ORACLE" \
			>/dev/null 2>"$BENCH_TMP/loadgen_kafka.log" ||
			bench_fail_with_log "$BENCH_TMP/loadgen_kafka.log" "loadgen (oracle) failed"
		res=$(duplicates_of "$BENCH_TMP/loadgen_kafka.log")
	fi
	[[ $res == "$D" ]] || bench_fail_with_log "$BENCH_TMP/loadgen_kafka.log" "loadgen (json) reports $res duplicates, expected $D"
	load_reference "$ORACLE"
	for phase in "${order[@]}"; do
		phase_kafka "$phase"
	done
	bench_pg_stop
	bench_devbroker_stop
done

# goal WHAT DEDUP PLAIN
goal()
{
	awk -v v="$2" -v b="$3" -v w="$1" 'BEGIN { r = v / b; printf "  %s: dedup at %.2f of the plain stream, goal >= 0.7: %s\n", w, r, (r >= 0.7) ? "met" : "NOT met" }'
}

# ratios NAME DEDUP[@] PLAIN[@]: the ratio of each repetition
ratios()
{
	local -n a=$2 b=$3
	local i out=''
	for ((i = 0; i < ${#a[@]}; i++)); do
		out+=$(awk -v v="${a[i]}" -v w="${b[i]}" 'BEGIN { printf " %.2f", v / w }')
	done
	bench_info "  $1 ratio of each run:$out"
}
if ((BENCH_REPEAT > 1)); then
	ratios SQL sql_dedup sql_plain
	((BENCH_DEDUP_KAFKA == 0)) || ratios Kafka kafka_dedup kafka_plain
	bench_info "  medians of $BENCH_REPEAT runs:"
fi
sd=$(printf %.0f "$(bench_median "${sql_dedup[@]}")")
sp=$(printf %.0f "$(bench_median "${sql_plain[@]}")")
goal SQL "$sd" "$sp"
if ((BENCH_DEDUP_KAFKA != 0)); then
	kd=$(printf %.0f "$(bench_median "${kafka_dedup[@]}")")
	kp=$(printf %.0f "$(bench_median "${kafka_plain[@]}")")
	goal Kafka "$kd" "$kp"
fi
bench_info "  SQL dedup state: $(bench_median "${sql_key_mem[@]}") bytes of shared memory and $(bench_median "${sql_key_disk[@]}") bytes of streamproc.dedup_runs per key"
if ((${#unverified_list[@]} > 0)); then
	bench_info "  NOT VERIFIED (no FIGURE line; the rates above are what was measured):"
	printf '    %s\n' "${unverified_list[@]}"
	bench_die "${#unverified_list[@]} check(s) failed"
fi
bench_figure dedup_copy_sync "$sd" events/s plain_copy_sync "$sp" events/s
if ((BENCH_DEDUP_KAFKA != 0)); then
	bench_figure dedup_kafka "$kd" events/s plain_kafka "$kp" events/s
fi
