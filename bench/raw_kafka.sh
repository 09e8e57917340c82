#!/usr/bin/env bash
# bench/raw_kafka.sh: the raw Kafka ceiling of this machine.
#
# How fast can plain Kafka clients move the benchmark's click events
# through the dev broker (librdkafka's mock cluster), with no PostgreSQL
# involved?  Every streamproc Kafka figure is bounded by these.
#
#   raw_produce  loadgen producing BENCH_EVENTS json events into a fresh
#                topic of BENCH_PARTITIONS partitions, keyed by user_id
#     baseline   kcat_produce: kcat -P producing the same events with the
#                same keys and partitioner (murmur2_random, as loadgen), so
#                the partitions hold the same messages; the events are
#                pre-generated with loadgen to a file (untimed); another
#                fresh topic on the same broker
#   raw_consume  bench/rawconsumer reading every message of the loadgen topic
#     baseline   kcat_consume: kcat -C -e -o beginning reading the same topic
#                to /dev/null (without -q: see run_kcat_consume)
#
# Rates are events / wall time of the whole command (process start to
# exit), measured the same way for a tool and its baseline.  Both
# producers' topics are checked to hold exactly BENCH_EVENTS messages and
# both consumers to have read exactly BENCH_EVENTS messages; any mismatch
# fails the benchmark.  With BENCH_REPEAT > 1 every repetition uses a fresh
# broker and the medians are reported.

# shellcheck source=bench/lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

: "${BENCH_SEED:=42}"

bench_require "$DEVBROKER" "$LOADGEN" "$RAWCONSUMER" "$KCAT" perl timeout
[[ $BENCH_EVENTS =~ ^[1-9][0-9]*$ ]] || bench_die "BENCH_EVENTS must be a positive integer"
[[ $BENCH_PARTITIONS =~ ^[1-9][0-9]*$ ]] || bench_die "BENCH_PARTITIONS must be a positive integer"
[[ $BENCH_REPEAT =~ ^[1-9][0-9]*$ ]] || bench_die "BENCH_REPEAT must be a positive integer"

N=$BENCH_EVENTS
P=$BENCH_PARTITIONS
T=$BENCH_TIMEOUT_S
LOADGEN_ARGS=(--count "$N" --seed "$BENCH_SEED" --format json --quiet)

# The events, pre-generated (untimed) for kcat -P as "key<TAB>value" lines,
# the key being the event's user_id, which is what loadgen keys by.
bench_log "generating $N events for kcat"
"$LOADGEN" "${LOADGEN_ARGS[@]}" >"$BENCH_DATA/events.json" 2>"$BENCH_TMP/loadgen-file.log" ||
	{ cat "$BENCH_TMP/loadgen-file.log" >&2; bench_die "loadgen (to file) failed"; }
perl -ne '
	/"user_id"\s*:\s*"?([^",}\s]*)/ or die "no user_id in line $.: $_";
	print "$1\t$_";
' "$BENCH_DATA/events.json" >"$BENCH_DATA/events.keyed" ||
	bench_die "cannot extract user_id keys from loadgen output"
lines=$(wc -l <"$BENCH_DATA/events.keyed")
((lines == N)) || bench_die "loadgen wrote $lines events to the file, expected $N"
rm -f "$BENCH_DATA/events.json"

# check_topic TOPIC WHO: TOPIC must hold exactly N messages between its
# watermarks; the per-partition watermarks are kept in watermarks.TOPIC.
check_topic()
{
	local got
	got=$("$RAWCONSUMER" --brokers "$BENCH_BOOTSTRAP" --topic "$1" --watermarks \
		2>"$BENCH_TMP/watermarks.$1") ||
		{ cat "$BENCH_TMP/watermarks.$1" >&2; bench_die "cannot read watermarks of $1"; }
	[[ $got == "$N" ]] || bench_die "$2 left $got messages in topic $1, expected $N"
}

run_loadgen()
{
	timeout "$T" "$LOADGEN" "${LOADGEN_ARGS[@]}" --brokers "$BENCH_BOOTSTRAP" \
		--topic clicks_loadgen >/dev/null 2>"$BENCH_TMP/loadgen.log"
}

run_kcat_produce()
{
	timeout "$T" "$KCAT" -P -b "$BENCH_BOOTSTRAP" -t clicks_kcat -K $'\t' \
		-X partitioner=murmur2_random \
		-l "$BENCH_DATA/events.keyed" >/dev/null 2>"$BENCH_TMP/kcat-produce.log"
}

run_rawconsumer()
{
	timeout "$T" "$RAWCONSUMER" --brokers "$BENCH_BOOTSTRAP" --topic clicks_loadgen \
		--expect "$N" --timeout-s "$T" >"$BENCH_TMP/rawconsumer.out" \
		2>"$BENCH_TMP/rawconsumer.log"
}

# kcat's output goes to /dev/null: counting it through a pipe (| wc -l)
# made kcat 2-4 times slower on the reference machine, which would misstate
# the baseline.  Instead kcat runs without -q, so that it reports on stderr
# the offset at which each partition ended ("Reached end of topic T [P] at
# offset O"); kcat reads each partition sequentially from the beginning and
# exits non-zero on any consume error, so the messages it read are
# sum(O - low watermark), and every O must equal its partition's high
# watermark (kcat_read_count checks both).
run_kcat_consume()
{
	timeout "$T" "$KCAT" -C -b "$BENCH_BOOTSTRAP" -t clicks_loadgen -e -o beginning \
		>/dev/null 2>"$BENCH_TMP/kcat-consume.log"
}

# kcat_read_count TOPIC: messages kcat read, from its end-of-partition
# report and the watermarks; fails unless every partition was read to its
# high watermark.
kcat_read_count()
{
	"$RAWCONSUMER" --brokers "$BENCH_BOOTSTRAP" --topic "$1" --watermarks \
		>/dev/null 2>"$BENCH_TMP/watermarks.log" ||
		fail_with_log "$BENCH_TMP/watermarks.log" "cannot read watermarks of $1"
	awk -v topic="$1" '
		FNR == NR {
			if ($2 == "partition") { low[$3] = $5; high[$3] = $7; np++ }
			next
		}
		$0 ~ ("^% Reached end of topic " topic " \\[") {
			p = $7; gsub(/[][]/, "", p); o = $10; sub(/:$/, "", o)
			if (p in eof) { print "partition " p " reported twice" > "/dev/stderr"; bad = 1 }
			eof[p] = o
		}
		END {
			for (p in high) {
				if (!(p in eof)) { print "partition " p ": no end reported" > "/dev/stderr"; bad = 1; continue }
				if (eof[p] != high[p]) { print "partition " p ": ended at " eof[p] ", high watermark " high[p] > "/dev/stderr"; bad = 1 }
				n += eof[p] - low[p]
			}
			if (np == 0 || bad) exit 1
			print n
		}' "$BENCH_TMP/watermarks.log" "$BENCH_TMP/kcat-consume.log"
}

fail_with_log()
{
	cat "$1" >&2 || true
	bench_die "$2"
}

prod_raw=() prod_kcat=() cons_raw=() cons_kcat=()
t=  # set by bench_time

bench_info "raw_kafka: $N json click events, $P partitions, ${BENCH_BROKERS:-default} broker(s), repeat $BENCH_REPEAT"
for ((r = 1; r <= BENCH_REPEAT; r++)); do
	bench_devbroker_start "clicks_loadgen:$P" "clicks_kcat:$P"

	bench_log "[$r/$BENCH_REPEAT] loadgen producing"
	bench_time t run_loadgen || fail_with_log "$BENCH_TMP/loadgen.log" "loadgen producing failed"
	check_topic clicks_loadgen loadgen
	rate=$(bench_rate "$N" "$t")
	prod_raw+=("$rate")
	bench_info "  [$r] produce  loadgen      $N events in $t s: $rate events/s"
	bench_info "        (loadgen says: $(grep -h '^loadgen:' "$BENCH_TMP/loadgen.log" | tail -n1 | sed 's/^loadgen: //'))"

	bench_log "[$r/$BENCH_REPEAT] kcat producing"
	bench_time t run_kcat_produce || fail_with_log "$BENCH_TMP/kcat-produce.log" "kcat -P failed"
	check_topic clicks_kcat "kcat -P"
	# same events, keys and partitioner: the partitions must match one to one
	cmp -s <(grep ' partition ' "$BENCH_TMP/watermarks.clicks_loadgen") \
		<(grep ' partition ' "$BENCH_TMP/watermarks.clicks_kcat") ||
		bench_die "kcat -P spread the events over the partitions unlike loadgen (keys or partitioner differ)"
	rate=$(bench_rate "$N" "$t")
	prod_kcat+=("$rate")
	bench_info "  [$r] produce  kcat -P      $N events in $t s: $rate events/s"

	bench_log "[$r/$BENCH_REPEAT] rawconsumer consuming"
	bench_time t run_rawconsumer || fail_with_log "$BENCH_TMP/rawconsumer.log" "rawconsumer failed"
	got=$(cat "$BENCH_TMP/rawconsumer.out")
	[[ $got == "$N" ]] || bench_die "rawconsumer read $got messages, expected $N"
	rate=$(bench_rate "$N" "$t")
	cons_raw+=("$rate")
	bench_info "  [$r] consume  rawconsumer  $N events in $t s: $rate events/s"
	bench_info "        (rawconsumer says: $(grep -h ' bytes in ' "$BENCH_TMP/rawconsumer.log" | tail -n1 | sed 's/^rawconsumer: //'))"

	bench_log "[$r/$BENCH_REPEAT] kcat consuming"
	bench_time t run_kcat_consume || fail_with_log "$BENCH_TMP/kcat-consume.log" "kcat -C failed"
	got=$(kcat_read_count clicks_loadgen) ||
		fail_with_log "$BENCH_TMP/kcat-consume.log" "kcat -C did not read every partition to its end"
	[[ $got == "$N" ]] || fail_with_log "$BENCH_TMP/kcat-consume.log" "kcat -C read $got messages, expected $N"
	rate=$(bench_rate "$N" "$t")
	cons_kcat+=("$rate")
	bench_info "  [$r] consume  kcat -C      $N events in $t s: $rate events/s"

	bench_devbroker_stop
done

if ((BENCH_REPEAT > 1)); then
	bench_info "  medians of $BENCH_REPEAT runs:"
fi
bench_figure raw_produce "$(bench_median "${prod_raw[@]}")" events/s \
	kcat_produce "$(bench_median "${prod_kcat[@]}")" events/s
bench_figure raw_consume "$(bench_median "${cons_raw[@]}")" events/s \
	kcat_consume "$(bench_median "${cons_kcat[@]}")" events/s
