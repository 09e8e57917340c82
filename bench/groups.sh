#!/usr/bin/env bash
# bench/groups.sh: a continuous view with many groups (issue 10).
#
#   bench/groups.sh            (or bench/run groups)  1,000,000 groups
#   bench/groups.sh big        (or BENCH_GROUPS_MODE=big)  10,000,000 groups
#
# One stream s (k int, v int) and one continuous view
#
#   CREATE VIEW v WITH (continuous) AS
#       SELECT k, count(*) AS n, sum(v) AS total FROM s GROUP BY k;
#
# against the same events in a plain table s_plain (k int, v int) and the
# same rows in a plain table v_plain (k int PRIMARY KEY, n bigint, total
# bigint), all in one throwaway cluster (bench_pg_start, with
# streamproc.state_memory = BENCH_GROUPS_STATE_MEMORY so that the state
# fits).  The events: k = 1 + i % G, v = 1 + (i * 7919) % 1000 for event
# number i, in an order shuffled by hashint8(i # seed): every key occurs
# equally often (the first COPY of 2G events creates exactly G groups, the
# second of G events updates each of them once), in random order.
#
# Figures (mode default; big runs the ones marked *):
#
#  * groups_copy_sync       COPY of BENCH_GROUPS_EVENTS (2,000,000) events
#                           into G (1,000,000) groups (a CSV file) + SELECT
#                           streamproc.sync(), in events/s
#      baseline             plain_copy_batch: COPY of the same file into
#                           s_plain + CREATE TABLE AS the batch GROUP BY
#    groups_copy2_sync      then BENCH_GROUPS_EVENTS2 (1,000,000) more
#                           events into the same groups, the same way
#      baseline             plain_copy2_batch: COPY into s_plain (now holding
#                           both files) + the batch GROUP BY over all of it
#    groups_checkpoint_ms   stat_views.last_checkpoint_ms after the first
#                           COPY (the checkpoint that writes every group)
#      baseline             plain_insert_groups_ms: INSERT of the same rows
#                           into v_plain (primary key), psql \timing
#    groups_checkpoint2_ms  the same after the second COPY (rewrites every
#                           group)
#      baseline             plain_upsert_groups_ms: INSERT ... ON CONFLICT
#                           (k) DO UPDATE of every row into v_plain
#  * groups_checkpoint_small_ms  after BENCH_GROUPS_SMALL (1,000) events into
#                           as many existing groups + sync(): cost follows
#                           change?
#      baseline             plain_upsert_small_ms: upsert of those rows
#  * groups_state_disk_bytes  on-disk size of the checkpointed state after the
#                           first COPY: every table of schema streamproc
#                           but the stream logs (log_*) and append views'
#                           rows (rows_*), indexes and TOAST included
#                           (BENCH_GROUPS_STATE_SIZE_SQL overrides the query)
#      baseline             groups_state_memory_bytes: stat_views.memory_bytes
#  * groups_memory_per_group  memory_bytes / groups
#      baseline             plain_bytes_per_row: v_plain's size (heap,
#                           primary key) / rows
#  * groups_read_memory_kb  peak resident memory (VmHWM) of a new backend
#                           after SELECT * FROM v WHERE k = G/2
#      baseline             plain_read_memory_kb: the same on v_plain
#  * groups_read_cC_mean_ms, groups_read_cC_p99_ms   for C in
#                           BENCH_GROUPS_CLIENTS (1 8): pgbench -M prepared
#                           -c C -T BENCH_GROUPS_READ_S (10) of
#                           \set k random(1, G); SELECT * FROM v WHERE k = :k
#                           mean and 99th percentile latency from the
#                           per-transaction log (--log); what was done (the
#                           transactions, pgbench's own time) is printed
#      baseline             plain_read_cC_mean_ms, _p99_ms: the same on v_plain
#    groups_join_mean_ms    SELECT count(*), sum(v.n), sum(v.total) FROM probe
#                           p JOIN v ON v.k = p.k (probe: 1,000 keys);
#                           EXPLAIN printed once
#    groups_top10_mean_ms   SELECT * FROM v ORDER BY total DESC LIMIT 10
#    groups_count_mean_ms   SELECT count(*) FROM v
#    groups_scan_mean_ms    SELECT sum(n), sum(total) FROM v (every group)
#    groups_in_mean_ms      SELECT * FROM v WHERE k IN (100 constants)
#    groups_any_mean_ms     SELECT * FROM v WHERE k = ANY($1), 100 keys as
#                           one int[] parameter (pgbench -D)
#      baselines            plain_join_mean_ms ...: the same queries on
#                           v_plain; every one pgbench -c 1 -T
#                           BENCH_GROUPS_READ_S, mean latency
#    groups_crash_resume_s  the view's state checkpointed, SIGKILL of the
#                           ingest worker that used the most CPU (PostgreSQL
#                           then restarts every process): from the kill until
#                           an event inserted into s after the restart is
#                           visible (INSERT, then sync() returns)
#      baseline             pg_crash_ready_s: from the kill until an INSERT
#                           into a plain table commits (PostgreSQL's own
#                           crash restart), measured in the same crash
#
# Mode big (BENCH_GROUPS_MODE=big or the argument): G 10,000,000, 20,000,000
# events in COPYs of BENCH_GROUPS_CHUNK (500,000) events, each followed by
# sync() (the baseline COPYs the same pieces, then runs the batch query
# once), no second COPY, reads with 1 client and no other queries, no
# crash, state_memory 8GB, BENCH_GROUPS_BACKEND_MEMORY 8GB, bound
# BENCH_GROUPS_TIMEOUT_S 3600 (each knob can still be set).  In pieces
# because today's worker needs ~2.5-4 kB of memory per group changed in a
# batch: one COPY of 20M events into 10M groups would need ~25 GB.  With
# pieces, the checkpoint figures after the COPY would time only the last
# piece; they are printed, not recorded.
#
# Memory: BENCH_GROUPS_BACKEND_MEMORY (default mode: none) is every server
# process's address-space limit (ulimit -v; shared memory counts): a read
# that needs more fails with "out of memory" instead of taking the
# machine's memory (today a read of the view allocates ~1.5 kB per group).
#
# Bounds: every COPY + sync and every batch query runs under timeout
# BENCH_GROUPS_TIMEOUT_S (BENCH_TIMEOUT_S, 600); every pgbench run lasts
# BENCH_GROUPS_READ_S plus the transactions in flight, with
# statement_timeout BENCH_GROUPS_QUERY_TIMEOUT_S (120) and an outer timeout;
# each wait of the crash is bounded by BENCH_GROUPS_TIMEOUT_S.  A read or a
# crash step that does not finish in time (or runs out of memory) is
# reported ("not measured: ...") and the run goes on; its figure is left
# out.  A COPY that does not finish fails the run.
#
# Checks (any mismatch fails the run): after every change (each COPY, the
# small update, the crash) the view, read once into a table, equals the
# batch query over s_plain (EXCEPT ALL both ways: 0 rows), sum(n) equals the
# events inserted, stat_views.groups the groups and, before the crash,
# stat_views.events the events; v_plain equals the view before the reads;
# each read query returns the same rows from v as from v_plain, and so do
# three single-key reads (a query whose result cannot be checked is not
# timed).  When the view cannot be read at all for a check (timeout, out of
# memory), the run goes on, but at the end no FIGURE line is printed and
# the run fails: figures of an unverified view are not reported.
#
# BENCH_REPEAT > 1 repeats everything on a fresh cluster and reports the
# medians; the order of the COPY phases (and of each read pair) alternates
# (odd repetitions: baseline first).

# shellcheck source=bench/lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

MODE=${1:-${BENCH_GROUPS_MODE:-default}}
case $MODE in
	default)
		: "${BENCH_GROUPS:=1000000}"
		: "${BENCH_GROUPS_EVENTS:=2000000}"
		: "${BENCH_GROUPS_EVENTS2:=1000000}"
		: "${BENCH_GROUPS_CLIENTS=1 8}"
		: "${BENCH_GROUPS_QUERIES=join top10 count scan in any}"
		: "${BENCH_GROUPS_CRASH:=1}"
		: "${BENCH_GROUPS_STATE_MEMORY:=4GB}"
		: "${BENCH_GROUPS_TIMEOUT_S:=$BENCH_TIMEOUT_S}"
		: "${BENCH_GROUPS_BACKEND_MEMORY=}"
		: "${BENCH_GROUPS_CHUNK:=0}"
		;;
	big)
		: "${BENCH_GROUPS:=10000000}"
		: "${BENCH_GROUPS_EVENTS:=20000000}"
		: "${BENCH_GROUPS_EVENTS2:=0}"
		: "${BENCH_GROUPS_CLIENTS=1}"
		: "${BENCH_GROUPS_QUERIES=}"
		: "${BENCH_GROUPS_CRASH:=0}"
		: "${BENCH_GROUPS_STATE_MEMORY:=8GB}"
		: "${BENCH_GROUPS_TIMEOUT_S:=3600}"
		: "${BENCH_GROUPS_BACKEND_MEMORY=8GB}"
		: "${BENCH_GROUPS_CHUNK:=500000}"
		;;
	*) bench_die "unknown mode '$MODE' (default or big)" ;;
esac
: "${BENCH_GROUPS_SMALL:=1000}"
: "${BENCH_GROUPS_READ_S:=10}"
: "${BENCH_GROUPS_QUERY_TIMEOUT_S:=120}"
: "${BENCH_GROUPS_PROBES:=1000}"
: "${BENCH_GROUPS_LIST:=100}"
: "${BENCH_SEED:=42}"
DEFAULT_STATE_SIZE_SQL="SELECT coalesce(sum(pg_total_relation_size(c.oid)), 0)
	FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
	WHERE n.nspname = 'streamproc' AND c.relkind IN ('r', 'm')
	  AND c.relname NOT LIKE 'log\\_%' AND c.relname NOT LIKE 'rows\\_%'"
: "${BENCH_GROUPS_STATE_SIZE_SQL:=$DEFAULT_STATE_SIZE_SQL}"

bench_require "$PG_BINDIR/pgbench" timeout
for var in BENCH_GROUPS BENCH_GROUPS_EVENTS BENCH_GROUPS_READ_S BENCH_GROUPS_QUERY_TIMEOUT_S \
	BENCH_GROUPS_TIMEOUT_S BENCH_GROUPS_PROBES BENCH_GROUPS_LIST BENCH_REPEAT; do
	[[ ${!var} =~ ^[1-9][0-9]*$ ]] || bench_die "$var must be a positive integer, not '${!var}'"
done
for var in BENCH_GROUPS_EVENTS2 BENCH_GROUPS_SMALL BENCH_GROUPS_CRASH BENCH_GROUPS_CHUNK BENCH_SEED; do
	[[ ${!var} =~ ^[0-9]+$ ]] || bench_die "$var must be a non-negative integer, not '${!var}'"
done
case $BENCH_GROUPS_BACKEND_MEMORY in
	'') BACKEND_MEM_KB=0 ;;
	*[0-9]kB) BACKEND_MEM_KB=${BENCH_GROUPS_BACKEND_MEMORY%kB} ;;
	*[0-9]MB) BACKEND_MEM_KB=$((${BENCH_GROUPS_BACKEND_MEMORY%MB} * 1024)) ;;
	*[0-9]GB) BACKEND_MEM_KB=$((${BENCH_GROUPS_BACKEND_MEMORY%GB} * 1048576)) ;;
	*) bench_die "BENCH_GROUPS_BACKEND_MEMORY must be empty or NkB, NMB, NGB, not '$BENCH_GROUPS_BACKEND_MEMORY'" ;;
esac
for c in $BENCH_GROUPS_CLIENTS; do
	[[ $c =~ ^[1-9][0-9]*$ ]] || bench_die "BENCH_GROUPS_CLIENTS must list positive integers, not '$c'"
done
for q in $BENCH_GROUPS_QUERIES; do
	[[ $q =~ ^(join|top10|count|scan|in|any)$ ]] ||
		bench_die "BENCH_GROUPS_QUERIES: unknown query '$q' (join top10 count scan in any)"
done

G=$BENCH_GROUPS
N1=$BENCH_GROUPS_EVENTS
N2=$BENCH_GROUPS_EVENTS2
SMALL=$BENCH_GROUPS_SMALL
CHUNK=$BENCH_GROUPS_CHUNK
T=$BENCH_GROUPS_TIMEOUT_S
QT=$BENCH_GROUPS_QUERY_TIMEOUT_S
READ_S=$BENCH_GROUPS_READ_S
NPROC=$(nproc)
((N1 >= G)) || bench_die "BENCH_GROUPS_EVENTS ($N1) must be at least BENCH_GROUPS ($G): the first COPY creates every group"
((SMALL <= G)) || bench_die "BENCH_GROUPS_SMALL ($SMALL) must be at most BENCH_GROUPS ($G)"
PROBES=$((BENCH_GROUPS_PROBES < G ? BENCH_GROUPS_PROBES : G))
LIST=$((BENCH_GROUPS_LIST < G ? BENCH_GROUPS_LIST : G))
CSV1=$BENCH_DATA/events1.csv
CSV2=$BENCH_DATA/events2.csv
FIGS=$BENCH_TMP/figures
: >"$FIGS"
not_measured=()
unverified=()
snap_ok=0
peak_why='' peak_kb=''


# No NOTICEs from DROP ... IF EXISTS.
export PGOPTIONS="${PGOPTIONS:-} -c client_min_messages=warning"

BATCH_Q="SELECT k, count(*) AS n, sum(v) AS total FROM s_plain GROUP BY k"

# ---------------------------------------------------------------------
# Helpers
# ---------------------------------------------------------------------

# psql_t ARGS...: bench_psql's psql under timeout T.
psql_t()
{
	timeout -k 10 "$T" "$PG_BINDIR/psql" -X -q -At -v ON_ERROR_STOP=1 -h "$BENCH_PG_SOCKDIR" \
		-p "$BENCH_PG_PORT" -U postgres -d postgres "$@"
}

# fig NAME VALUE UNIT BASENAME BASEVALUE BASEUNIT: record a figure of this
# repetition; printed (medians) at the end.
fig()
{
	(($# == 6)) || bench_die "fig: 6 arguments expected, got $#"
	echo "$*" >>"$FIGS"
	bench_info "        -> $1 $2 $3 vs $4 $5 $6"
}

# skip NAME WHY: a figure that could not be measured in this repetition.
skip()
{
	not_measured+=("[$r] $1: $2")
	bench_info "  [$r] $1: not measured: $2"
}

# ms_of FILE: the last "Time: X ms" line psql's \timing wrote to FILE.
ms_of()
{
	sed -n 's/^Time: \([0-9.]*\) ms.*/\1/p' "$1" | tail -n1
}

# timed_sql VAR WHAT SQL: run SQL (one statement) in one psql session with
# \timing; its round trip in ms (commit included) in VAR.
timed_sql()
{
	local __var=$1 what=$2 out=$BENCH_TMP/timed.out ms
	psql_t -c '\timing on' -c "$3" >"$out" 2>&1 || bench_fail_with_log "$out" "$what failed"
	ms=$(ms_of "$out")
	[[ -n $ms ]] || bench_fail_with_log "$out" "$what: no timing"
	printf -v "$__var" '%s' "$ms"
}

view_stat()
{
	bench_psql -c "SELECT $1 FROM streamproc.stat_views WHERE view = 'v'::regclass" ||
		bench_die "cannot read stat_views"
}

state_disk_bytes()
{
	bench_psql -c "$BENCH_GROUPS_STATE_SIZE_SQL" || bench_die "cannot measure the state's size on disk"
}

print_state()
{
	local what=$1
	bench_psql -c "SELECT '  [$r] $what: view v ' || groups || ' groups, events ' || events ||
			', state ' || pg_size_pretty(memory_bytes) || ' in memory (' ||
			round(memory_bytes::numeric / greatest(groups, 1)) || ' bytes per group), ' ||
			pg_size_pretty(($BENCH_GROUPS_STATE_SIZE_SQL)) || ' on disk, last checkpoint ' ||
			round(last_checkpoint_ms::numeric, 1) || ' ms, ' || state
		FROM streamproc.stat_views WHERE view = 'v'::regclass" || bench_die "cannot read stat_views"
	bench_info "        (dynamic shared memory mapped by the ingest workers: $(($(dsm_bytes) / 1048576)) MB)"
}

print_state_tables()
{
	bench_psql -c "SELECT '        ' || c.relname || ' ' || pg_size_pretty(pg_total_relation_size(c.oid)) ||
			' (heap ' || pg_size_pretty(pg_relation_size(c.oid)) || ', ~' || c.reltuples::bigint || ' rows)'
		FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
		WHERE n.nspname = 'streamproc' AND c.relkind IN ('r', 'm')
		  AND c.relname NOT LIKE 'log\\_%' AND c.relname NOT LIKE 'rows\\_%'
		  AND pg_total_relation_size(c.oid) > 1048576
		ORDER BY pg_total_relation_size(c.oid) DESC"
}

# unreadable ERRFILE: why a read of the view failed, if the engine gave up
# (timeout, statement_timeout, out of memory), else nothing.
unreadable()
{
	if grep -q 'out of memory' "$1"; then
		echo "out of memory$( ((BACKEND_MEM_KB)) && echo " (backends capped at $BENCH_GROUPS_BACKEND_MEMORY)")"
	elif grep -q 'statement timeout' "$1"; then
		echo "statement_timeout ($QT s)"
	elif [[ ! -s $1 ]] || grep -q -i 'terminated\|timeout' "$1"; then
		echo "no answer within $T s"
	fi
}

# check_view EVENTS WHAT [noevents]: the view (read once, into a table)
# equals the batch query over s_plain, which holds EVENTS events;
# stat_views agrees (its events counter unless noevents).  A view that
# cannot be read (unreadable) leaves the run unverified: its figures are
# withheld.
check_view()
{
	local events=$1 what=$2 res why plain viewsum only_v only_b
	bench_psql -c "DROP TABLE IF EXISTS snap" || bench_die "DROP TABLE snap failed"
	if ! psql_t -c "CREATE TABLE snap AS TABLE v" >"$BENCH_TMP/snap.err" 2>&1; then
		why=$(unreadable "$BENCH_TMP/snap.err")
		[[ -n $why ]] || bench_fail_with_log "$BENCH_TMP/snap.err" "$what: reading the view failed"
		unverified+=("[$r] after $what: the view could not be read: $why")
		snap_ok=0
		bench_info "  [$r] NOT VERIFIED after $what: the view could not be read ($why)"
		return 0
	fi
	res=$(psql_t -F ' ' -c "SELECT (SELECT count(*) FROM s_plain),
			(SELECT coalesce(sum(n), 0) FROM snap),
			(SELECT count(*) FROM (TABLE snap EXCEPT ALL $BATCH_Q) a),
			(SELECT count(*) FROM ($BATCH_Q EXCEPT ALL TABLE snap) b)") ||
		bench_die "$what: cannot compare the view with the batch query (timeout ${T}s?)"
	read -r plain viewsum only_v only_b <<<"$res"
	[[ $plain == "$events" ]] || bench_die "$what: s_plain holds $plain events, expected $events"
	[[ $viewsum == "$events" ]] || bench_die "$what: the view counts $viewsum events, expected $events"
	[[ $only_v == 0 && $only_b == 0 ]] ||
		bench_die "$what: the view differs from the batch query: $only_v rows only in the view, $only_b only in the batch"
	res=$(view_stat groups)
	[[ $res == "$G" ]] || bench_die "$what: stat_views.groups is $res, expected $G"
	if [[ ${3:-} != noevents ]]; then
		res=$(view_stat events)
		[[ $res == "$events" ]] || bench_die "$what: stat_views.events is $res, expected $events"
	fi
	snap_ok=1
	bench_info "  [$r] correct after $what: the view equals the batch query ($events events, $G groups)"
}

# check_plain WHAT: v_plain holds the view's rows (as last read into snap).
check_plain()
{
	local res
	res=$(psql_t -F ' ' -c "SELECT (SELECT count(*) FROM (TABLE snap EXCEPT ALL TABLE v_plain) a),
			(SELECT count(*) FROM (TABLE v_plain EXCEPT ALL TABLE snap) b)") ||
		bench_die "$1: cannot compare v_plain with the view"
	[[ $res == "0 0" ]] || bench_die "$1: v_plain differs from the view: $res rows (view-only, plain-only)"
}

# gen_events FILE COUNT FIRST: events FIRST .. FIRST+COUNT-1 as CSV, shuffled.
gen_events()
{
	bench_psql -c "SET work_mem = '1GB'" \
		-c "COPY (SELECT 1 + i % $G, 1 + (i * 7919) % 1000
			FROM generate_series($3::bigint, $3::bigint + $2 - 1) i
			ORDER BY hashint8(i # $BENCH_SEED), i) TO STDOUT (FORMAT csv)" >"$1" ||
		bench_die "generating $1 failed"
	local lines
	lines=$(wc -l <"$1")
	((lines == $2)) || bench_die "$1 has $lines events, expected $2"
	chmod 644 "$1"
}

# ---------------------------------------------------------------------
# COPY phases
# ---------------------------------------------------------------------

prepare_phase()
{
	cat "$1" >/dev/null
	bench_psql -c "CHECKPOINT" || bench_die "CHECKPOINT failed"
}

# copy_split START END OUTFILE: "COPY X s, then Y s", from the mark printed after
# the COPY.
copy_split()
{
	local mark
	mark=$(sed -n 's/^mark //p' "$3")
	[[ -n $mark ]] || return 0
	printf 'COPY %s s, then %s s' "$(bench_elapsed "$1" "$mark")" "$(bench_elapsed "$mark" "$2")"
}

# chunks FILE: the files one phase COPYs: FILE itself, or with
# BENCH_GROUPS_CHUNK its pieces of that many events (made once).
chunks()
{
	local n
	n=$(wc -l <"$1")
	if ((CHUNK == 0 || n <= CHUNK)); then
		echo "$1"
		return 0
	fi
	if [[ ! -e $1.chunks ]]; then
		split -l "$CHUNK" -d -a 4 "$1" "$1.part." || bench_die "split $1 failed"
		chmod 644 "$1".part.*
		ls "$1".part.* >"$1.chunks"
	fi
	cat "$1.chunks"
}

# worker_memory: the ingest workers' peak resident memory so far.
worker_memory()
{
	local pid out=''
	for pid in $(bench_worker_pids); do
		out+=" $pid $(awk '$1 == "VmHWM:" { printf "%.0f MB", $2 / 1024 }' "/proc/$pid/status" 2>/dev/null)"
	done
	echo "${out# }"
}

# dsm_bytes: dynamic shared memory mapped by the ingest workers (each
# segment once): the view's state area as the operating system sees it,
# whatever memory_bytes counts.
dsm_bytes()
{
	local pid range path start end total=0
	declare -A seen=()
	for pid in $(bench_worker_pids); do
		while read -r range _ _ _ _ path; do
			[[ $path == /dev/shm/PostgreSQL.* && -z ${seen[$path]:-} ]] || continue
			seen[$path]=1
			start=$((16#${range%-*}))
			end=$((16#${range#*-}))
			total=$((total + end - start))
		done <"/proc/$pid/maps"
	done
	echo "$total"
}

# copy_phase TAG FILE EVENTS: the timed stream and baseline phases of one
# COPY (or, with BENCH_GROUPS_CHUNK, of one COPY + sync() per chunk), in
# alternating order; records TAG's figure.
copy_phase()
{
	local tag=$1 csv=$2 n=$3 phase s t ck0 ck1 order f nchunks
	local stream_rate='' base_rate='' base_args=() stream_args=() files=()
	mapfile -t files < <(chunks "$csv")
	nchunks=${#files[@]}
	for f in "${files[@]}"; do
		base_args+=(-c "COPY s_plain FROM '$f' (FORMAT csv)")
		stream_args+=(-c "COPY s FROM '$f' (FORMAT csv)")
		((nchunks == 1)) || stream_args+=(-c "SELECT streamproc.sync('$T s')")
	done
	base_args+=(-c "SELECT 'mark ' || extract(epoch FROM clock_timestamp())" -c "CREATE TABLE batch AS $BATCH_Q")
	((nchunks > 1)) || stream_args+=(-c "SELECT 'mark ' || extract(epoch FROM clock_timestamp())" \
		-c "SELECT streamproc.sync('$T s')")
	if ((r % 2)); then order=(baseline stream); else order=(stream baseline); fi
	bench_psql -c "DROP TABLE IF EXISTS batch" || bench_die "DROP TABLE batch failed"
	for phase in "${order[@]}"; do
		prepare_phase "$csv"
		bench_log "[$r/$BENCH_REPEAT] $tag: $phase ($nchunks COPY)"
		s=$(bench_now)
		if [[ $phase == baseline ]]; then
			bench_time t psql_t "${base_args[@]}" >"$BENCH_TMP/$tag.baseline.out" 2>&1 ||
				bench_fail_with_log "$BENCH_TMP/$tag.baseline.out" "$tag: baseline (COPY + batch query) failed or took more than $T s"
			base_rate=$(bench_rate "$n" "$t")
			bench_info "  [$r] $tag plain COPY + batch GROUP BY  $n events in $t s: $base_rate events/s ($(copy_split "$s" "$(bench_now)" "$BENCH_TMP/$tag.baseline.out") of batch query)"
		else
			ck0=$(view_stat "coalesce(last_checkpoint::text, 'none')")
			bench_time t psql_t "${stream_args[@]}" >"$BENCH_TMP/$tag.stream.out" 2>&1 ||
				bench_fail_with_log "$BENCH_TMP/$tag.stream.out" "$tag: stream COPY + sync failed or took more than $T s"
			ck1=$(view_stat "coalesce(last_checkpoint::text, 'none')")
			[[ $ck1 != "$ck0" ]] || bench_die "$tag: no checkpoint of the view during sync()"
			stream_rate=$(bench_rate "$n" "$t")
			if ((nchunks == 1)); then
				bench_info "  [$r] $tag stream COPY + sync             $n events in $t s: $stream_rate events/s ($(copy_split "$s" "$(bench_now)" "$BENCH_TMP/$tag.stream.out") in sync)"
			else
				bench_info "  [$r] $tag stream $nchunks x (COPY + sync)     $n events in $t s: $stream_rate events/s"
			fi
			bench_info "        (ingest workers' peak memory, pid and VmHWM: $(worker_memory))"
		fi
	done
	fig "groups_${tag}_sync" "$stream_rate" events/s "plain_${tag}_batch" "$base_rate" events/s
}

# ---------------------------------------------------------------------
# Reads
# ---------------------------------------------------------------------

# pgb NAME CLIENTS SCRIPT [PGBENCH-ARGS...]: pgbench -M prepared for READ_S
# seconds; sets pg_n pg_mean pg_p50 pg_p99 pg_max (latencies in ms, from the
# per-transaction log) and pg_wall; returns 1 with pg_why set if it failed
# or was cut off.
pgb()
{
	local name=$1 c=$2 script=$3 j rc=0 dir s
	dir=$BENCH_TMP/pgbench.$name
	shift 3
	j=$((c < NPROC ? c : NPROC))
	rm -rf "$dir"
	mkdir -p "$dir"
	s=$(bench_now)
	PGOPTIONS="$PGOPTIONS -c statement_timeout=${QT}s" timeout -k 10 $((READ_S + QT + 60)) \
		"$PG_BINDIR/pgbench" -n -M prepared -c "$c" -j "$j" -T "$READ_S" -f "$script" \
		--log --log-prefix="$dir/log" -h "$BENCH_PG_SOCKDIR" -p "$BENCH_PG_PORT" -U postgres \
		"$@" postgres >"$dir/out" 2>&1 || rc=$?
	pg_wall=$(bench_elapsed "$s" "$(bench_now)")
	if ((rc == 124 || rc == 137)); then
		pg_why="pgbench did not end within $((READ_S + QT + 60)) s"
		return 1
	elif ((rc != 0)); then
		pg_why="pgbench failed (exit $rc: $(grep -m1 -E 'abort|ERROR|error' "$dir/out" | tr -s ' ' | cut -c1-160))"
		return 1
	fi
	cat "$dir"/log.* 2>/dev/null | awk '$3 ~ /^[0-9]+$/ { print $3 / 1000 }' >"$dir/latencies"
	read -r pg_n pg_p50 pg_p99 pg_max pg_mean <<<"$(bench_percentiles "$dir/latencies" 3)"
	if ((pg_n == 0)); then
		pg_why="no transaction completed"
		return 1
	fi
	return 0
}

pgb_line()
{
	printf '%s transactions in %s s (-T %s, %s clients): mean %s ms, p50 %s, p99 %s, max %s' \
		"$pg_n" "$pg_wall" "$READ_S" "$1" "$pg_mean" "$pg_p50" "$pg_p99" "$pg_max"
}

# read_pair NAME CLIENTS VIEW-SCRIPT PLAIN-SCRIPT [PGBENCH-ARGS...]: both runs
# (alternating order); records groups_NAME_mean_ms (and _p99_ms when
# CLIENTS names the keyed reads) against plain_NAME_*.
read_pair()
{
	local name=$1 c=$2 vs=$3 ps=$4 order which vmean vp99 pmean pp99 ok=1
	shift 4
	if ((r % 2)); then order=(plain view); else order=(view plain); fi
	for which in "${order[@]}"; do
		bench_log "[$r/$BENCH_REPEAT] reads $name: $which"
		if [[ $which == view ]]; then
			if pgb "v_$name" "$c" "$vs" "$@"; then
				vmean=$pg_mean vp99=$pg_p99
				bench_info "  [$r] $name on v:       $(pgb_line "$c")"
			else
				skip "groups_$name" "$pg_why"
				ok=0
			fi
		else
			if pgb "p_$name" "$c" "$ps" "$@"; then
				pmean=$pg_mean pp99=$pg_p99
				bench_info "  [$r] $name on v_plain: $(pgb_line "$c")"
			else
				skip "plain_$name" "$pg_why"
				ok=0
			fi
		fi
	done
	((ok)) || return 0
	fig "groups_${name}_mean_ms" "$vmean" ms "plain_${name}_mean_ms" "$pmean" ms
	if [[ $name == read_c* ]]; then
		fig "groups_${name}_p99_ms" "$vp99" ms "plain_${name}_p99_ms" "$pp99" ms
	fi
}

# same_result WHAT QUERY: QUERY (with @V@) returns the same rows from v and
# from v_plain.  Returns 1 (the caller skips the timing: no unchecked
# figure) when the view could not be read (unreadable).
same_result()
{
	local a b q=$2 why
	if ! a=$(PGOPTIONS="$PGOPTIONS -c statement_timeout=${QT}s" psql_t -c "${q//@V@/v}" 2>"$BENCH_TMP/same.err"); then
		why=$(unreadable "$BENCH_TMP/same.err")
		[[ -n $why ]] || bench_fail_with_log "$BENCH_TMP/same.err" "$1 on v failed"
		skip "groups_$1" "its result could not be checked: $why"
		return 1
	fi
	b=$(bench_psql -c "${q//@V@/v_plain}") || bench_die "$1 on v_plain failed"
	[[ -n $a && $a == "$b" ]] || bench_die "$1: v and v_plain differ:
v:       $(head -c 300 <<<"$a")
v_plain: $(head -c 300 <<<"$b")"
}

# read_peak QUERY: peak_kb = the peak resident memory (VmHWM, kB) of a new
# backend that ran QUERY once (shared memory it touched included); returns
# 1 with peak_why set when the query failed.
read_peak()
{
	local out
	peak_kb=''
	if ! out=$(PGOPTIONS="$PGOPTIONS -c statement_timeout=${QT}s" psql_t -c "$1" \
		-c "SELECT substring(pg_read_file('/proc/self/status') from 'VmHWM:\s*(\d+) kB')" \
		2>"$BENCH_TMP/peak.err"); then
		peak_why=$(unreadable "$BENCH_TMP/peak.err")
		[[ -n $peak_why ]] || bench_fail_with_log "$BENCH_TMP/peak.err" "$1 failed"
		return 1
	fi
	peak_kb=$(tail -n1 <<<"$out")
}

# write_script FILE LINES...: a pgbench script.
write_script()
{
	local f=$1
	shift
	printf '%s\n' "$@" >"$f"
}

reads()
{
	local c q keys pv pp sdir=$BENCH_TMP/scripts
	mkdir -p "$sdir"
	bench_psql <<SQL || bench_die "probe tables failed"
VACUUM ANALYZE v_plain;
DROP TABLE IF EXISTS probe;
CREATE TABLE probe (k int PRIMARY KEY);
INSERT INTO probe SELECT 1 + (j * 999983) % $G FROM generate_series(1::bigint, $PROBES) j;
ANALYZE probe;
SQL
	keys=$(bench_psql -c "SELECT string_agg((1 + (j * 15485863) % $G)::text, ',' ORDER BY j)
		FROM generate_series(1::bigint, $LIST) j") || bench_die "key list failed"

	# Results first (untimed): the keyed path, and every query below.
	if [[ -n $BENCH_GROUPS_CLIENTS ]] &&
		same_result "read" "SELECT * FROM @V@ WHERE k = 1 UNION ALL SELECT * FROM @V@ WHERE k = $G
			UNION ALL SELECT * FROM @V@ WHERE k = $((G / 2 + 1))"; then
		if read_peak "SELECT * FROM v WHERE k = $((G / 2))"; then
			pv=$peak_kb
			read_peak "SELECT * FROM v_plain WHERE k = $((G / 2))" || bench_die "read_peak on v_plain failed"
			pp=$peak_kb
			bench_info "  [$r] peak memory of a backend that read one group: $((pv / 1024)) MB from v, $((pp / 1024)) MB from v_plain"
			fig groups_read_memory_kb "$pv" kB plain_read_memory_kb "$pp" kB
		else
			skip groups_read_memory_kb "$peak_why"
		fi
		write_script "$sdir/read_v.sql" "\\set k random(1, $G)" "SELECT * FROM v WHERE k = :k;"
		write_script "$sdir/read_p.sql" "\\set k random(1, $G)" "SELECT * FROM v_plain WHERE k = :k;"
		for c in $BENCH_GROUPS_CLIENTS; do
			read_pair "read_c$c" "$c" "$sdir/read_v.sql" "$sdir/read_p.sql"
		done
	fi

	for q in $BENCH_GROUPS_QUERIES; do
		case $q in
			join)
				bench_info "  [$r] EXPLAIN of the join to the view:"
				bench_psql -c "EXPLAIN SELECT count(*), sum(v.n), sum(v.total) FROM probe p JOIN v ON v.k = p.k" |
					sed 's/^/        /'
				same_result join "SELECT count(*), sum(x.n), sum(x.total) FROM probe p JOIN @V@ x ON x.k = p.k" || continue
				write_script "$sdir/join_v.sql" "SELECT count(*), sum(v.n), sum(v.total) FROM probe p JOIN v ON v.k = p.k;"
				write_script "$sdir/join_p.sql" "SELECT count(*), sum(v.n), sum(v.total) FROM probe p JOIN v_plain v ON v.k = p.k;"
				read_pair join 1 "$sdir/join_v.sql" "$sdir/join_p.sql"
				;;
			top10)
				same_result top10 "SELECT * FROM @V@ ORDER BY total DESC, k LIMIT 10" || continue
				write_script "$sdir/top10_v.sql" "SELECT * FROM v ORDER BY total DESC LIMIT 10;"
				write_script "$sdir/top10_p.sql" "SELECT * FROM v_plain ORDER BY total DESC LIMIT 10;"
				read_pair top10 1 "$sdir/top10_v.sql" "$sdir/top10_p.sql"
				;;
			count)
				same_result count "SELECT count(*) FROM @V@" || continue
				write_script "$sdir/count_v.sql" "SELECT count(*) FROM v;"
				write_script "$sdir/count_p.sql" "SELECT count(*) FROM v_plain;"
				read_pair count 1 "$sdir/count_v.sql" "$sdir/count_p.sql"
				;;
			scan)
				same_result scan "SELECT sum(n), sum(total) FROM @V@" || continue
				write_script "$sdir/scan_v.sql" "SELECT sum(n), sum(total) FROM v;"
				write_script "$sdir/scan_p.sql" "SELECT sum(n), sum(total) FROM v_plain;"
				read_pair scan 1 "$sdir/scan_v.sql" "$sdir/scan_p.sql"
				;;
			in)
				same_result in "SELECT * FROM @V@ WHERE k IN ($keys) ORDER BY k" || continue
				write_script "$sdir/in_v.sql" "SELECT * FROM v WHERE k IN ($keys);"
				write_script "$sdir/in_p.sql" "SELECT * FROM v_plain WHERE k IN ($keys);"
				read_pair in 1 "$sdir/in_v.sql" "$sdir/in_p.sql"
				;;
			any)
				same_result any "SELECT * FROM @V@ WHERE k = ANY('{$keys}'::int[]) ORDER BY k" || continue
				write_script "$sdir/any_v.sql" "SELECT * FROM v WHERE k = ANY(:keys);"
				write_script "$sdir/any_p.sql" "SELECT * FROM v_plain WHERE k = ANY(:keys);"
				read_pair any 1 "$sdir/any_v.sql" "$sdir/any_p.sql" -D "keys={$keys}"
				;;
		esac
	done
}

# ---------------------------------------------------------------------
# Crash
# ---------------------------------------------------------------------

# The ingest worker that used the most CPU (it merged the COPYs).
busiest_worker()
{
	local pid ticks best='' best_ticks=-1
	for pid in $(bench_psql -c "SELECT pid FROM streamproc.stat_workers WHERE pid IS NOT NULL AND pid <> 0"); do
		ticks=$(awk '{ print $14 + $15 }' "/proc/$pid/stat" 2>/dev/null) || continue
		if ((ticks > best_ticks)); then
			best=$pid best_ticks=$ticks
		fi
	done
	echo "$best"
}

restarts_in_log()
{
	grep -c 'all server processes terminated; reinitializing' "$BENCH_PG_LOG" || true
}

# crash EVENTS: sets events to the events after the crash's marker event.
crash()
{
	local pid n0 t0 i deadline t_pg='' t_view='' t_run='' st key=1
	bench_psql -c "SELECT streamproc.sync('$T s')" -c "CHECKPOINT" >/dev/null ||
		bench_die "crash: sync + CHECKPOINT before the crash failed"
	pid=$(busiest_worker)
	[[ -n $pid ]] || bench_die "crash: no ingest worker found"
	n0=$(restarts_in_log)
	bench_log "[$r/$BENCH_REPEAT] crash: SIGKILL of ingest worker $pid"
	t0=$(bench_now)
	kill -KILL "$pid" || bench_die "crash: cannot kill worker $pid"
	deadline=$(awk -v s="$t0" -v t="$T" 'BEGIN { printf "%d", s + t }')

	# PostgreSQL terminates every process and reinitializes.
	while (($(restarts_in_log) <= n0)); do
		(($(date +%s) < deadline)) || { skip groups_crash_resume_s "PostgreSQL did not restart within $T s"; return 0; }
		sleep 0.02
	done
	# The baseline: a plain INSERT commits.
	while :; do
		if PGCONNECT_TIMEOUT=2 bench_psql -c "INSERT INTO s_plain VALUES ($key, 1)" 2>/dev/null; then
			t_pg=$(bench_elapsed "$t0" "$(bench_now)")
			break
		fi
		(($(date +%s) < deadline)) || bench_die "crash: PostgreSQL not accepting inserts within $T s"
		sleep 0.02
	done
	events=$((events + 1))
	# The same event into the stream, visible once sync() returns.
	if psql_t -c "INSERT INTO s VALUES ($key, 1)" -c "SELECT streamproc.sync('$T s')" \
		>"$BENCH_TMP/crash.out" 2>&1; then
		t_view=$(bench_elapsed "$t0" "$(bench_now)")
	else
		cat "$BENCH_TMP/crash.out" >&2
		bench_psql -c "SELECT count(*) FROM s_plain" >/dev/null 2>&1 || true
		skip groups_crash_resume_s "INSERT + sync() after the crash failed or took more than $T s"
	fi
	for ((i = 0; ; i++)); do
		st=$(bench_psql -c "SELECT state FROM streamproc.stat_views WHERE view = 'v'::regclass" 2>/dev/null) || st=''
		if [[ $st == running ]]; then
			t_run=$(bench_elapsed "$t0" "$(bench_now)")
			break
		fi
		(($(date +%s) < deadline + T)) || break
		sleep 0.05
	done
	bench_info "  [$r] crash: SIGKILL of worker $pid; plain INSERT committed after ${t_pg} s, stream event visible (sync) after ${t_view:-?} s, stat_views 'running' after ${t_run:-never (${st:-?})} s"
	bench_psql -c "SELECT '        workers after the crash: ' || string_agg(worker || ' pid ' || pid, ', ' ORDER BY worker)
		FROM streamproc.stat_workers"
	[[ -n $t_view ]] || return 0
	fig groups_crash_resume_s "$t_view" s pg_crash_ready_s "$t_pg" s
}

# ---------------------------------------------------------------------
# One repetition
# ---------------------------------------------------------------------

# start_cluster: bench_pg_start with the state memory we need, and
# BENCH_GROUPS_BACKEND_MEMORY as every server process's address-space
# limit (shared memory included), so that a read that needs more fails
# ("out of memory") instead of taking the machine's memory.
start_cluster()
{
	if ((BACKEND_MEM_KB > 0)); then
		BENCH_PG_ADDRESS_SPACE_KB=$BACKEND_MEM_KB
	fi
	bench_pg_start "streamproc.state_memory=$BENCH_GROUPS_STATE_MEMORY"
}

run_once()
{
	local ms base disk mem groups plainsz ck0 ck1 nck

	start_cluster
	bench_psql <<SQL || bench_die "schema setup failed"
CREATE FOREIGN TABLE s (k int, v int) SERVER streamproc;
CREATE VIEW v WITH (continuous) AS SELECT k, count(*) AS n, sum(v) AS total FROM s GROUP BY k;
CREATE TABLE s_plain (k int, v int);
CREATE TABLE v_plain (k int PRIMARY KEY, n bigint, total bigint);
SQL
	if [[ ! -s $CSV1 ]]; then
		bench_log "generating $N1 events over $G keys (and $N2 more)"
		gen_events "$CSV1" "$N1" 0
		((N2 == 0)) || gen_events "$CSV2" "$N2" "$N1"
	fi

	# 1. The first COPY: every group created.
	copy_phase copy "$CSV1" "$N1"
	events=$N1
	check_view "$events" "the first COPY"
	print_state "after the first COPY"
	print_state_tables

	# 3. Checkpoint and state size.
	ms=$(view_stat last_checkpoint_ms)
	prepare_phase "$CSV1"
	timed_sql base "INSERT INTO v_plain" "INSERT INTO v_plain TABLE batch"
	if ((CHUNK == 0 || N1 <= CHUNK)); then
		fig groups_checkpoint_ms "$ms" ms plain_insert_groups_ms "$base" ms
	else
		bench_info "  [$r] last checkpoint (of the last chunk only) $ms ms; INSERT of every group into v_plain $base ms"
	fi
	disk=$(state_disk_bytes)
	mem=$(view_stat memory_bytes)
	groups=$(view_stat groups)
	fig groups_state_disk_bytes "$disk" bytes groups_state_memory_bytes "$mem" bytes
	plainsz=$(bench_psql -c "SELECT pg_total_relation_size('v_plain')")
	fig groups_memory_per_group "$(awk -v m="$mem" -v g="$groups" 'BEGIN { printf "%.1f", m / g }')" bytes \
		plain_bytes_per_row "$(awk -v m="$plainsz" -v g="$groups" 'BEGIN { printf "%.1f", m / g }')" bytes

	# 1b. The second COPY: every group updated.
	if ((N2 > 0)); then
		copy_phase copy2 "$CSV2" "$N2"
		events=$((events + N2))
		check_view "$events" "the second COPY"
		print_state "after the second COPY"
		ms=$(view_stat last_checkpoint_ms)
		prepare_phase "$CSV2"
		timed_sql base "upsert into v_plain" \
			"INSERT INTO v_plain TABLE batch ON CONFLICT (k) DO UPDATE SET n = excluded.n, total = excluded.total"
		if ((CHUNK == 0 || N2 <= CHUNK)); then
			fig groups_checkpoint2_ms "$ms" ms plain_upsert_groups_ms "$base" ms
		else
			bench_info "  [$r] last checkpoint (of the last chunk only) $ms ms; upsert of every group into v_plain $base ms"
		fi
	fi

	# 3b. A small change: does the checkpoint cost what changed?
	if ((SMALL > 0)); then
		# Both sides after a CHECKPOINT: both pay the full-page writes of
		# the pages they touch first.
		ck0=$(view_stat "last_checkpoint")
		bench_psql -c "CHECKPOINT" \
			-c "CREATE TEMP TABLE x AS SELECT 1 + (j * 7919) % $G AS k, 1 AS v FROM generate_series(1::bigint, $SMALL) j" \
			-c "INSERT INTO s TABLE x" -c "INSERT INTO s_plain TABLE x" >/dev/null ||
			bench_die "small update failed"
		psql_t -c "SELECT streamproc.sync('$T s')" >/dev/null || bench_die "sync after the small update failed"
		ck1=$(view_stat "last_checkpoint")
		[[ $ck1 != "$ck0" ]] || bench_die "no checkpoint of the view after the small update"
		ms=$(view_stat last_checkpoint_ms)
		events=$((events + SMALL))
		# v_plain vacuumed first, as the workers vacuum view_state after
		# rewriting it: the baseline is a keyed table, not the dead rows
		# of the full upsert above.
		bench_psql -c "DROP TABLE IF EXISTS small_new" \
			-c "CREATE TABLE small_new AS SELECT k, count(*) AS n, sum(v) AS total FROM s_plain
				WHERE k IN (SELECT 1 + (j * 7919) % $G FROM generate_series(1::bigint, $SMALL) j) GROUP BY k" \
			-c "VACUUM v_plain" -c "CHECKPOINT" >/dev/null || bench_die "small_new failed"
		timed_sql base "small upsert into v_plain" \
			"INSERT INTO v_plain TABLE small_new ON CONFLICT (k) DO UPDATE SET n = excluded.n, total = excluded.total"
		bench_info "  [$r] $SMALL events into $SMALL existing groups: checkpoint $ms ms, upsert of the $SMALL rows into v_plain $base ms"
		fig groups_checkpoint_small_ms "$ms" ms plain_upsert_small_ms "$base" ms
		check_view "$events" "the small update"
	fi
	disk=$(state_disk_bytes)
	bench_info "  [$r] state on disk before the reads: $disk bytes ($(bench_psql -c "SELECT pg_size_pretty($disk::bigint)"))"
	((snap_ok == 0)) || check_plain "before the reads"

	# 2. Reads.
	reads

	# 6. Crash.
	if ((BENCH_GROUPS_CRASH)); then
		crash
		check_view "$events" "the crash" noevents
		nck=$(view_stat events)
		bench_info "  [$r] after the crash stat_views.events is $nck (the view counts $events)"
	fi
	print_state "at the end"
	bench_pg_stop
}

bench_info "groups ($MODE): view SELECT k, count(*), sum(v) FROM s GROUP BY k; $G groups, $N1 + $N2 events by COPY, $SMALL-event update; reads ${READ_S} s each (clients: $BENCH_GROUPS_CLIENTS; queries: ${BENCH_GROUPS_QUERIES:-none}); crash: $BENCH_GROUPS_CRASH; state_memory $BENCH_GROUPS_STATE_MEMORY; repeat $BENCH_REPEAT"
events=0
for ((r = 1; r <= BENCH_REPEAT; r++)); do
	run_once
done

if ((${#not_measured[@]} > 0)); then
	bench_info "  not measured (a timeout, or the memory limit):"
	printf '    %s\n' "${not_measured[@]}"
fi
if ((${#unverified[@]} > 0)); then
	bench_info "  NOT VERIFIED (the figures are withheld; measured values above, after '->'):"
	printf '    %s\n' "${unverified[@]}"
	bench_die "the view could not be verified"
fi
if ((BENCH_REPEAT > 1)); then
	bench_info "  medians of $BENCH_REPEAT runs:"
fi
# One figure line per name, medians over the repetitions that measured it.
while read -r name; do
	mapfile -t vals < <(awk -v n="$name" '$1 == n { print $2 }' "$FIGS")
	mapfile -t bases < <(awk -v n="$name" '$1 == n { print $5 }' "$FIGS")
	read -r _ _ unit bname _ bunit <<<"$(awk -v n="$name" '$1 == n { print; exit }' "$FIGS")"
	bench_figure "$name" "$(bench_median "${vals[@]}")" "$unit" "$bname" "$(bench_median "${bases[@]}")" "$bunit"
done < <(awk '!seen[$1]++ { print $1 }' "$FIGS")
