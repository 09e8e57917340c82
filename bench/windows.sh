#!/usr/bin/env bash
# bench/windows.sh: event-time windows (tumbling, hopping, session) against
# a plain GROUP BY view, the same events in the same run; then the state
# memory of a tumbling view under a steady paced load.
#
# Throughput.  loadgen writes BENCH_WIN_EVENTS (2,000,000) csv click events
# once (--users BENCH_WIN_USERS (10,000), --urls BENCH_WIN_URLS (100),
# --interval-ms BENCH_WIN_INTERVAL_MS (1): event time spans 33 minutes, so
# windows keep closing during the run).  Each phase creates a fresh stream
#
#	stream_P (user_id int, url text, amount numeric, ts timestamptz)
#	    OPTIONS (event_time 'ts', watermark_delay BENCH_WIN_DELAY (5 seconds))
#
# with one continuous view, takes a CHECKPOINT (untimed), and times one psql
# process running COPY stream_P FROM 'file' (FORMAT csv) and then
# SELECT streamproc.sync('30 min'): until every event is in the view and
# checkpointed.  The views (count(*) AS clicks in each):
#
#	plain     url                              GROUP BY url (the baseline)
#	tumble    tumble(ts, '1 minute'), url      ~34 windows x urls
#	hop       hop(ts, '2 seconds', '10 seconds'), url   (Nexmark q5 shape)
#	session   session(ts, '30 seconds'), user_id
#	plain_user  user_id GROUP BY user_id (not a figure: printed next to
#	            the session rate, since sessions group by user)
#
# Figures: windows_tumble, windows_hop, windows_session, each against
# plain_group_by (events/s).  Goals (printed, not enforced): tumble >= 0.8 of
# the plain view, hop >= 0.5.  Phase order alternates between repetitions
# (odd: plain first, even: reversed); every repetition has a fresh cluster;
# BENCH_REPEAT > 1 reports medians.
#
# Checks (after each phase; any failure fails the benchmark): the events
# the view merged (stat_views.events) plus its late events
# (stat_views.late_events, equal to the rows of its late_events table) are
# BENCH_WIN_EVENTS, and so are the sum of its clicks plus the late events
# (for hop, the sum of its clicks is size / slide times the events that
# were not late); with BENCH_WIN_DISORDER 0 nothing is late; and the view
# equals its batch query (EXCEPT ALL both ways: 0 rows) over a plain table
# holding the same events minus the late ones: for plain, tumble and hop the same SELECT over the table; for
# sessions a gaps-and-islands query (per user_id by ts, a session starts
# when ts - previous ts >= gap, and is [first ts, last ts + gap)).
#
# Windowed views name their late events table 'public.late_P' (created by
# CREATE VIEW).
#
# Steady state.  On a fresh cluster, BENCH_WIN_STEADY_S (120; 0 skips it)
# seconds of BENCH_WIN_STEADY_RATE (20,000) events/s with current
# timestamps (each second one COPY of loadgen --ts now events, paced on
# an absolute schedule) into a stream with watermark_delay BENCH_WIN_DELAY
# and the view
#
#	SELECT w.window_start, w.window_end, user_id, count(*), sum(amount)
#	  FROM clicks_live, streamproc.tumble(ts, interval '1 minute') AS w ...
#
# (BENCH_WIN_STEADY_USERS (10,000) users: up to that many groups per
# window).  stat_views is read every second; every BENCH_WIN_SAMPLE_S (5)
# seconds a line shows events, groups, state memory (largest since the
# previous line), watermark lag and closed windows.  Figure: the largest
# state memory of the second half against that of the first half (RATIO
# 1.00: flat).  Each half should span a full window (>= 60 s) so that both
# see a window close; hence 120 s.  Checks: after sync() the view's clicks
# plus its late events equal the events fed, nothing is late, and the view
# equals the batch query over the same events COPYed into a plain table.

# shellcheck source=bench/lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

: "${BENCH_WIN_EVENTS:=2000000}"
: "${BENCH_WIN_USERS:=10000}"
: "${BENCH_WIN_URLS:=100}"
: "${BENCH_WIN_INTERVAL_MS:=1}"
: "${BENCH_WIN_DISORDER:=0}"
: "${BENCH_WIN_MAX_DELAY_MS:=5000}"
: "${BENCH_WIN_DELAY:=5 seconds}"
: "${BENCH_WIN_TUMBLE:=1 minute}"
: "${BENCH_WIN_HOP_SLIDE:=2 seconds}"
: "${BENCH_WIN_HOP_SIZE:=10 seconds}"
: "${BENCH_WIN_GAP:=30 seconds}"
: "${BENCH_WIN_STEADY_S:=120}"
: "${BENCH_WIN_STEADY_RATE:=20000}"
: "${BENCH_WIN_STEADY_USERS:=10000}"
: "${BENCH_WIN_SAMPLE_S:=5}"
: "${BENCH_SEED:=42}"

bench_require "$LOADGEN" timeout
for v in BENCH_WIN_EVENTS BENCH_WIN_USERS BENCH_WIN_URLS BENCH_WIN_INTERVAL_MS \
	BENCH_WIN_MAX_DELAY_MS BENCH_WIN_STEADY_RATE BENCH_WIN_STEADY_USERS \
	BENCH_WIN_SAMPLE_S BENCH_REPEAT; do
	[[ ${!v} =~ ^[1-9][0-9]*$ ]] || bench_die "$v must be a positive integer, not '${!v}'"
done
[[ $BENCH_WIN_STEADY_S =~ ^[0-9]+$ ]] || bench_die "BENCH_WIN_STEADY_S must be an integer"
[[ $BENCH_WIN_DISORDER =~ ^(0|1|0?\.[0-9]+)$ ]] || bench_die "BENCH_WIN_DISORDER must be in [0, 1]"
for v in BENCH_WIN_DELAY BENCH_WIN_TUMBLE BENCH_WIN_HOP_SLIDE BENCH_WIN_HOP_SIZE BENCH_WIN_GAP; do
	[[ ${!v} =~ ^[0-9a-z\ .:]+$ ]] || bench_die "$v must be an interval such as '5 seconds', not '${!v}'"
done

# No NOTICEs from DROP ... CASCADE and the like.
export PGOPTIONS="${PGOPTIONS:+$PGOPTIONS }-c client_min_messages=warning"

N=$BENCH_WIN_EVENTS
T=$BENCH_TIMEOUT_S
CSV=$BENCH_DATA/clicks.csv
DISORDERED=$(awk -v d="$BENCH_WIN_DISORDER" 'BEGIN { print (d > 0) ? 1 : 0 }')

STREAM_OPTS="event_time 'ts', watermark_delay '$BENCH_WIN_DELAY'"

# The views' queries: @S@ is the stream or the plain table.
declare -A QUERY=(
	[plain]="SELECT url, count(*) AS clicks FROM @S@ GROUP BY url"
	[tumble]="SELECT w.window_start, w.window_end, url, count(*) AS clicks
	FROM @S@, streamproc.tumble(ts, interval '$BENCH_WIN_TUMBLE') AS w
	GROUP BY w.window_start, w.window_end, url"
	[hop]="SELECT w.window_start, w.window_end, url, count(*) AS clicks
	FROM @S@, streamproc.hop(ts, interval '$BENCH_WIN_HOP_SLIDE', interval '$BENCH_WIN_HOP_SIZE') AS w
	GROUP BY w.window_start, w.window_end, url"
	[session]="SELECT w.window_start, w.window_end, user_id, count(*) AS clicks
	FROM @S@, streamproc.session(ts, interval '$BENCH_WIN_GAP') AS w
	GROUP BY w.window_start, w.window_end, user_id"
	[plain_user]="SELECT user_id, count(*) AS clicks FROM @S@ GROUP BY user_id"
)
# Batch oracles: the same query over a table, except for sessions, which a
# batch query has to merge itself (gaps and islands).
declare -A ORACLE=(
	[plain]=${QUERY[plain]}
	[tumble]=${QUERY[tumble]}
	[hop]=${QUERY[hop]}
	[session]="SELECT min(ts) AS window_start, max(ts) + interval '$BENCH_WIN_GAP' AS window_end,
	       user_id, count(*) AS clicks
	  FROM (SELECT user_id, ts,
	               sum(CASE WHEN ts - prev < interval '$BENCH_WIN_GAP' THEN 0 ELSE 1 END)
	                   OVER (PARTITION BY user_id ORDER BY ts ROWS UNBOUNDED PRECEDING) AS session
	          FROM (SELECT user_id, ts, lag(ts) OVER (PARTITION BY user_id ORDER BY ts) AS prev
	                  FROM @S@) e) s
	 GROUP BY user_id, session"
	[plain_user]=${QUERY[plain_user]}
)
PHASES=(plain tumble hop session plain_user)
# Hop windows per event: size / slide (the extension requires a multiple).
HOP_WINDOWS=$(awk -v a="$(date -u -d "1970-01-01 + $BENCH_WIN_HOP_SIZE" +%s)" \
	-v b="$(date -u -d "1970-01-01 + $BENCH_WIN_HOP_SLIDE" +%s)" \
	'BEGIN { if (b > 0 && a % b == 0) print a / b }')
[[ -n $HOP_WINDOWS ]] || bench_die "BENCH_WIN_HOP_SIZE must be a multiple of BENCH_WIN_HOP_SLIDE (whole seconds)"

declare -A WINDOWED=([tumble]=1 [hop]=1 [session]=1)

q()
{
	local s=$2
	s=${s//@S@/$3}
	printf -v "$1" '%s' "$s"
}

psql_timed()
{
	timeout "$T" "$PG_BINDIR/psql" -X -q -At -v ON_ERROR_STOP=1 -h "$BENCH_PG_SOCKDIR" \
		-p "$BENCH_PG_PORT" -U postgres -d postgres "$@"
}

fail_with_log()
{
	cat "$1" >&2 || true
	tail -n 20 "$BENCH_PG_LOG" >&2 || true
	bench_die "$2"
}

mb()
{
	awk -v b="$1" 'BEGIN { printf "%.2f MB", b / 1048576 }'
}

# ---------------------------------------------------------------- events

bench_log "generating $N click events to $CSV"
lg_args=(--count "$N" --users "$BENCH_WIN_USERS" --urls "$BENCH_WIN_URLS"
	--interval-ms "$BENCH_WIN_INTERVAL_MS" --seed "$BENCH_SEED" --format csv --quiet)
if ((DISORDERED)); then
	lg_args+=(--disorder "$BENCH_WIN_DISORDER" --max-delay-ms "$BENCH_WIN_MAX_DELAY_MS")
fi
"$LOADGEN" "${lg_args[@]}" >"$CSV" 2>"$BENCH_TMP/loadgen.log" ||
	{ cat "$BENCH_TMP/loadgen.log" >&2; bench_die "loadgen failed"; }
lines=$(wc -l <"$CSV")
((lines == N)) || bench_die "loadgen wrote $lines events, expected $N"
chmod 644 "$CSV"
csv_mb=$(awk -v b="$(stat -c %s "$CSV")" 'BEGIN { printf "%.1f", b / 1048576 }')
span_min=$(awk -v n="$N" -v i="$BENCH_WIN_INTERVAL_MS" 'BEGIN { printf "%.1f", n * i / 60000 }')

# ---------------------------------------------------------------- phases

setup_cluster()
{
	# shellcheck disable=SC2119 # no extra settings
	bench_pg_start
	bench_psql <<SQL || bench_die "setup failed"
CREATE TABLE clicks_plain (user_id int, url text, amount numeric, ts timestamptz);
COPY clicks_plain FROM '$CSV' (FORMAT csv);
ANALYZE clicks_plain;
SQL
}

# create_phase P: a fresh stream stream_P and view v_P (late events of
# windowed views go to the table late_P).
create_phase()
{
	local p=$1 sql with="continuous"
	q sql "${QUERY[$p]}" "stream_$p"
	[[ -z ${WINDOWED[$p]:-} ]] || with+=", late_events = 'public.late_$p'"
	bench_psql >/dev/null <<SQL || bench_die "creating the $p stream and view failed"
CREATE FOREIGN TABLE stream_$p (user_id int, url text, amount numeric, ts timestamptz)
	SERVER streamproc OPTIONS ($STREAM_OPTS);
CREATE VIEW v_$p WITH ($with) AS $sql;
SQL
}

drop_phase()
{
	local p=$1
	bench_psql -c "DROP FOREIGN TABLE stream_$p CASCADE" >/dev/null ||
		bench_die "dropping stream_$p failed"
	if [[ -n ${WINDOWED[$p]:-} ]]; then
		bench_psql -c "DROP TABLE IF EXISTS late_$p" >/dev/null 2>&1 || true
	fi
}

# Untimed, before each phase: the file in the page cache, no dirty buffers.
prepare_phase()
{
	cat "$CSV" >/dev/null
	bench_psql -c "CHECKPOINT" >/dev/null || bench_die "CHECKPOINT failed"
}

run_phase()
{
	psql_timed -c "COPY stream_$1 FROM '$CSV' (FORMAT csv)" \
		-c "SELECT 'mark ' || extract(epoch FROM clock_timestamp())" \
		-c "SELECT streamproc.sync('30 min')" >"$BENCH_TMP/$1.out" 2>&1
}

# split START END OUTFILE: "COPY X s, then Y s in sync"
split()
{
	local mark
	mark=$(sed -n 's/^mark //p' "$3")
	[[ -n $mark ]] || return 0
	printf 'COPY %s s, then %s s in sync' "$(bench_elapsed "$1" "$mark")" "$(bench_elapsed "$mark" "$2")"
}

# verify P: the checks of the header; prints one line on the view's state.
verify()
{
	local p=$1 events late total late_rows src sql diff stats
	read -r events late <<<"$(bench_psql -F ' ' -c "SELECT events, coalesce(late_events, 0)
		FROM streamproc.stat_views WHERE view = 'v_$p'::regclass")" ||
		bench_die "cannot read stat_views for v_$p"
	((events + late == N)) ||
		bench_die "view v_$p merged $events events and $late were late, expected $N in all"
	total=$(bench_psql -c "SELECT coalesce(sum(clicks), 0) FROM v_$p") || bench_die "cannot read v_$p"
	late_rows=0
	if [[ -n ${WINDOWED[$p]:-} ]]; then
		late_rows=$(bench_psql -c "SELECT count(*) FROM late_$p") ||
			bench_die "cannot read the late events table late_$p"
	fi
	[[ $late_rows == "$late" ]] ||
		bench_die "v_$p: stat_views.late_events is $late, its late_events table holds $late_rows rows"
	# An event counts once in every hop window that contains it.
	copies=1
	[[ $p != hop ]] || copies=$HOP_WINDOWS
	((total == (N - late) * copies)) ||
		bench_die "v_$p counts $total clicks and $late late events, expected $N events in all ($copies windows each)"
	((DISORDERED || late == 0)) ||
		bench_die "v_$p: $late events late although the events are in order"

	src=clicks_plain
	if ((late > 0)); then
		src=ontime_$p
		bench_psql -c "CREATE TABLE $src AS
			SELECT user_id, url, amount, ts FROM clicks_plain
			EXCEPT ALL SELECT user_id, url, amount, ts FROM late_$p" >/dev/null ||
			bench_die "cannot build the events of v_$p that were not late"
	fi
	q sql "${ORACLE[$p]}" "$src"
	bench_psql -c "CREATE TABLE batch_$p AS $sql" >/dev/null ||
		bench_die "the batch query of $p failed"
	diff=$(bench_psql -c "SELECT (SELECT count(*) FROM (TABLE v_$p EXCEPT ALL TABLE batch_$p) a),
			(SELECT count(*) FROM (TABLE batch_$p EXCEPT ALL TABLE v_$p) b),
			(SELECT count(*) FROM batch_$p)") ||
		bench_die "cannot compare v_$p with its batch query"
	[[ $diff == 0\|0\|* ]] ||
		bench_die "v_$p differs from its batch query: ${diff%|*} rows (view-only|batch-only)"
	stats=$(bench_psql -c "SELECT groups || ' groups in memory, state ' || pg_size_pretty(memory_bytes) ||
			', watermark ' || coalesce(to_char(watermark AT TIME ZONE 'UTC', 'HH24:MI:SS'), '-') ||
			', last checkpoint ' || round(last_checkpoint_ms::numeric, 1) || ' ms'
		FROM streamproc.stat_views WHERE view = 'v_$p'::regclass") ||
		bench_die "cannot read stat_views for v_$p"
	bench_info "        correct: ${diff##*|} rows = batch query, $late late; $stats"
	bench_psql -c "DROP TABLE batch_$p" -c "DROP TABLE IF EXISTS ontime_$p" >/dev/null
}

declare -A RATES=()

bench_info "windows: $N csv click events ($csv_mb MiB), $BENCH_WIN_USERS users, $BENCH_WIN_URLS urls, event time $span_min min (--interval-ms $BENCH_WIN_INTERVAL_MS, disorder $BENCH_WIN_DISORDER), watermark_delay '$BENCH_WIN_DELAY', repeat $BENCH_REPEAT"
bench_info "  views: tumble '$BENCH_WIN_TUMBLE', hop slide '$BENCH_WIN_HOP_SLIDE' size '$BENCH_WIN_HOP_SIZE' (count per url); session gap '$BENCH_WIN_GAP' (count per user_id); baseline plain GROUP BY url"
t=
for ((r = 1; r <= BENCH_REPEAT; r++)); do
	setup_cluster
	if ((r % 2)); then
		order=("${PHASES[@]}")
	else
		order=()
		for ((i = ${#PHASES[@]} - 1; i >= 0; i--)); do order+=("${PHASES[i]}"); done
	fi
	for p in "${order[@]}"; do
		create_phase "$p"
		prepare_phase
		bench_log "[$r/$BENCH_REPEAT] $p"
		s=$(bench_now)
		bench_time t run_phase "$p" || fail_with_log "$BENCH_TMP/$p.out" "$p: COPY + sync failed"
		rate=$(bench_rate "$N" "$t")
		RATES[$p]+=" $rate"
		bench_info "  [$r] $(printf '%-10s' "$p") $N events in $t s: $rate events/s ($(split "$s" "$(bench_now)" "$BENCH_TMP/$p.out"))"
		verify "$p"
		drop_phase "$p"
	done
	bench_pg_stop
done

median_of()
{
	# shellcheck disable=SC2086 # the rates are space-separated integers
	bench_median ${RATES[$1]}
}

goal()
{
	awk -v v="$1" -v b="$2" -v g="$3" 'BEGIN { r = v / b; printf "%.2f of the plain view, goal >= %s: %s", r, g, (r >= g) ? "met" : "NOT met" }'
}

if ((BENCH_REPEAT > 1)); then
	bench_info "  medians of $BENCH_REPEAT runs:"
fi
plain=$(median_of plain)
tumble=$(median_of tumble)
hop=$(median_of hop)
session=$(median_of session)
plain_user=$(median_of plain_user)
bench_info "  tumble: $(goal "$tumble" "$plain" 0.8); hop: $(goal "$hop" "$plain" 0.5)"
bench_info "  session: $(awk -v v="$session" -v b="$plain_user" 'BEGIN { printf "%.2f", v / b }') of a plain GROUP BY user_id view ($plain_user events/s)"
bench_figure windows_tumble "$tumble" events/s plain_group_by "$plain" events/s
bench_figure windows_hop "$hop" events/s plain_group_by "$plain" events/s
bench_figure windows_session "$session" events/s plain_group_by "$plain" events/s

# ---------------------------------------------------------------- steady state

((BENCH_WIN_STEADY_S > 0)) || exit 0

S=$BENCH_WIN_STEADY_S
R=$BENCH_WIN_STEADY_RATE
LIVE_CSV=$BENCH_DATA/live.csv
SAMPLES=$BENCH_TMP/steady_samples
Q_LIVE="SELECT w.window_start, w.window_end, user_id, count(*) AS clicks, sum(amount) AS total
	FROM @S@, streamproc.tumble(ts, interval '1 minute') AS w
	GROUP BY w.window_start, w.window_end, user_id"

bench_info "windows steady state: $R events/s with current timestamps for $S s, $BENCH_WIN_STEADY_USERS users, 1-minute tumbling view per user_id, watermark_delay '$BENCH_WIN_DELAY'"
# shellcheck disable=SC2119 # no extra settings
bench_pg_start
q sql "$Q_LIVE" clicks_live
bench_psql >/dev/null <<SQL || bench_die "steady-state setup failed"
CREATE FOREIGN TABLE clicks_live (user_id int, url text, amount numeric, ts timestamptz)
	SERVER streamproc OPTIONS ($STREAM_OPTS);
CREATE VIEW live_per_minute WITH (continuous, late_events = 'public.live_late') AS $sql;
SQL

: >"$LIVE_CSV"
: >"$SAMPLES"
fed=0
start=$(bench_now)
bench_info "  t(s) | events fed | merged | groups | state memory (max since last line) | now - watermark | closed window rows | late"
for ((i = 1; i <= S; i++)); do
	"$LOADGEN" --count "$R" --ts now --users "$BENCH_WIN_STEADY_USERS" --urls "$BENCH_WIN_URLS" \
		--seed "$((BENCH_SEED + i))" --format csv --quiet 2>>"$BENCH_TMP/loadgen_live.log" |
		tee -a "$LIVE_CSV" |
		bench_psql -c "COPY clicks_live FROM STDIN (FORMAT csv)" ||
		fail_with_log "$BENCH_TMP/loadgen_live.log" "steady state: COPY $i failed"
	fed=$((fed + R))
	# elapsed events merged groups memory watermark_lag_s closed_rows late
	sample=$(bench_psql -F ' ' -c "SELECT round(extract(epoch FROM clock_timestamp()) - $start, 1),
			coalesce(events, 0), coalesce(groups, 0), coalesce(memory_bytes, 0),
			coalesce(round(extract(epoch FROM clock_timestamp() - watermark)::numeric, 1)::text, '-'),
			(SELECT coalesce(sum(wr.entries), 0) FROM streamproc.window_runs wr WHERE wr.view = 'live_per_minute'::regclass::oid),
			coalesce(late_events, 0)
		FROM streamproc.stat_views WHERE view = 'live_per_minute'::regclass") ||
		bench_die "steady state: cannot read stat_views"
	echo "$sample" >>"$SAMPLES"
	if ((i % BENCH_WIN_SAMPLE_S == 0 || i == S)); then
		awk -v fed="$fed" -v n="$BENCH_WIN_SAMPLE_S" '
			{ l[NR] = $0 }
			END {
				m = 0
				for (k = NR - n + 1; k <= NR; k++) if (k >= 1) { split(l[k], f, " "); if (f[4] > m) m = f[4] }
				split(l[NR], f, " ")
				printf "  %5.1f | %d | %d | %d | %.2f MB (%.2f MB) | %s s | %d | %d\n",
					f[1], fed, f[2], f[3], f[4] / 1048576, m / 1048576, f[5], f[6], f[7]
			}' "$SAMPLES"
	fi
	wait_s=$(awk -v s="$start" -v i="$i" -v now="$(bench_now)" \
		'BEGIN { w = s + i - now; printf "%.3f", (w > 0 ? w : 0) }')
	sleep "$wait_s"
done
elapsed=$(bench_elapsed "$start" "$(bench_now)")
bench_time t bench_psql -c "SELECT streamproc.sync('10 min')" >/dev/null || bench_die "steady state: sync failed"

read -r events late <<<"$(bench_psql -F ' ' -c "SELECT events, coalesce(late_events, 0)
	FROM streamproc.stat_views WHERE view = 'live_per_minute'::regclass")"
total=$(bench_psql -c "SELECT coalesce(sum(clicks), 0) FROM live_per_minute")
late_rows=$(bench_psql -c "SELECT count(*) FROM live_late")
[[ $events == "$fed" ]] || bench_die "steady state: the view merged $events events, $fed were fed"
[[ $late == 0 && $late_rows == 0 ]] ||
	bench_die "steady state: $late late events ($late_rows rows in live_late), expected none"
[[ $total == "$fed" ]] || bench_die "steady state: the view counts $total clicks, $fed were fed"
q sql "$Q_LIVE" live_plain
bench_psql -c "CREATE TABLE live_plain (user_id int, url text, amount numeric, ts timestamptz)" >/dev/null
bench_psql -c "COPY live_plain FROM STDIN (FORMAT csv)" <"$LIVE_CSV" || bench_die "steady state: loading live_plain failed"
bench_psql -c "CREATE TABLE batch_live AS $sql" >/dev/null || bench_die "steady state: batch query failed"
diff=$(bench_psql -c "SELECT (SELECT count(*) FROM (TABLE live_per_minute EXCEPT ALL TABLE batch_live) a),
		(SELECT count(*) FROM (TABLE batch_live EXCEPT ALL TABLE live_per_minute) b),
		(SELECT count(*) FROM batch_live), (SELECT count(DISTINCT window_start) FROM batch_live)")
[[ $diff == 0\|0\|* ]] ||
	bench_die "steady state: the view differs from its batch query: ${diff%|*|*} rows (view-only|batch-only)"
IFS='|' read -r _ _ rows windows <<<"$diff"

# Largest memory and groups in each half (by the sample's elapsed time).
read -r mem1 mem2 grp1 grp2 <<<"$(awk -v h="$(awk -v s="$S" 'BEGIN { print s / 2 }')" '
	{ if ($1 <= h) { if ($4 > m1) m1 = $4; if ($3 > g1) g1 = $3 }
	  else { if ($4 > m2) m2 = $4; if ($3 > g2) g2 = $3 } }
	END { print m1 + 0, m2 + 0, g1 + 0, g2 + 0 }' "$SAMPLES")"
((mem1 > 0)) || bench_die "steady state: no state memory in the first half"
bench_info "  $fed events in $elapsed s ($(bench_rate "$fed" "$elapsed") events/s), sync() $t s after the last COPY; correct: $rows rows in $windows windows = batch query, 0 late"
bench_info "  largest state memory: first half $(mb "$mem1") ($grp1 groups), second half $(mb "$mem2") ($grp2 groups)"
bench_info "  state memory $(awk -v a="$mem1" -v b="$mem2" 'BEGIN { r = b / a; if (r <= 1.10) print "stays flat (second half / first half " sprintf("%.2f", r) ")"; else print "GREW (second half / first half " sprintf("%.2f", r) ")" }')"
bench_figure windows_steady_memory "$mem2" bytes windows_steady_memory_first_half "$mem1" bytes
