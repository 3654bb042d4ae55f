#!/usr/bin/env bash
# The monitor's processing per event at scale, without an AWS account: simulates EVENTS Cognito events
# ending now, has `authwatch monitor --follow` read them (no AWS call), waits on /metrics until every event
# has been given to the detectors, and prints a markdown table: the engine time per event from the
# `authwatch_event_processing_ns` histogram (p50/p90/p99/p99.9/max, mean), against the offline baseline of
# `authwatch replay` CPU seconds per event on the same file; the event-to-notification latency when
# notifications were sent; the daemon's peak RSS and CPU; the machine. docs/performance.md holds a run.
#
# Usage: scripts/monitor-latency.sh     (needs: cargo, curl, /usr/bin/time)
# Knobs (environment):
#   EVENTS=1000000            target event count (`simulate --events`: the benign rate is scaled to it)
#   USERS=200000              users in the simulated pool (as scripts/compare.sh)
#   WORK=/tmp/authwatch-monlat  scratch directory (about 800 bytes an event), removed at the end unless KEEP=1
#   TIMEOUT=1800              seconds to wait for the daemon to process every event
#   AUTHWATCH=path            use this binary instead of building target/release/authwatch
set -euo pipefail

EVENTS=${EVENTS:-1000000}
USERS=${USERS:-200000}
WORK=${WORK:-/tmp/authwatch-monlat}
TIMEOUT=${TIMEOUT:-1800}
KEEP=${KEEP:-}
SEED=1
# A simulated day that ends MARGIN_S before now: sessions that start just before the end run up to 21
# minutes past it (MAX_SESSION_SPAN in src/simulate/benign.rs), and events stamped in the future would wait
# in the hold buffer for the clock. The daemon reads the whole file only if its first-start backfill
# reaches back past the start: 25h covers 24h and the margin.
DURATION=24h
DURATION_S=86400
MARGIN_S=1800
BACKFILL=25h
# The hold buffer waits this long for late events; short, so the last events reach the engine soon.
ALLOWED_DELAY=2s
# The per-event target of performance issue #6, in nanoseconds.
TARGET_P99_NS=1000000

root=$(cd "$(dirname "$0")/.." && pwd)
if [[ -z ${AUTHWATCH:-} ]]; then
    (cd "$root" && cargo build --release --quiet)
    AUTHWATCH=${CARGO_TARGET_DIR:-$root/target}/release/authwatch
fi

log() { echo "monitor-latency.sh: $*" >&2; }

daemon=""
cleanup() {
    if [[ -n $daemon ]] && kill -0 "$daemon" 2>/dev/null; then
        kill -TERM "$daemon" 2>/dev/null || true
        wait "$daemon" 2>/dev/null || true
    fi
    [[ -n $KEEP ]] || rm -rf "$WORK"
}
trap cleanup EXIT

rm -rf "$WORK"
mkdir -p "$WORK/state"
file=$WORK/sim.jsonl
cpu_model=$(awk -F': ' '/model name/ { print $2; exit }' /proc/cpuinfo)
load_before=$(cut -d' ' -f1-3 /proc/loadavg)

start=$(date -u -d "@$(($(date +%s) - DURATION_S - MARGIN_S))" +%Y-%m-%dT%H:%M:00Z)
log "simulating $EVENTS events ($USERS users, $DURATION from $start)"
"$AUTHWATCH" simulate --events "$EVENTS" --users "$USERS" --duration "$DURATION" --start "$start" --seed "$SEED" \
    -o "$file" >&2
records=$(wc -l <"$file")

# metric NAME: one sample's value from the last scrape ("" when absent).
metric() { awk -v n="$1" '$1 == n { print $2; exit }' "$WORK/metrics.txt"; }
scrape() { curl -fsS --max-time 10 "http://$addr/metrics" -o "$WORK/metrics.txt"; }

log "monitor --follow: waiting until all $records records are processed"
started=$(date +%s.%N)
"$AUTHWATCH" monitor --follow "$file" --state-dir "$WORK/state" --output "$WORK/findings.jsonl" \
    --backfill "$BACKFILL" --allowed-delay "$ALLOWED_DELAY" --metrics-addr 127.0.0.1:0 --status-interval 30s \
    2>"$WORK/monitor.log" &
daemon=$!
for _ in $(seq 600); do
    [[ -s $WORK/state/metrics.addr ]] && break
    kill -0 "$daemon" 2>/dev/null || { log "the daemon exited:"; cat "$WORK/monitor.log" >&2; exit 1; }
    sleep 0.1
done
addr=$(cat "$WORK/state/metrics.addr")
deadline=$(($(date +%s) + TIMEOUT))
# Done when every line was read and each was given to the detectors, skipped, rejected or found older than
# the start: events still held for ordering are in none of these counters.
while :; do
    kill -0 "$daemon" 2>/dev/null || { log "the daemon exited:"; cat "$WORK/monitor.log" >&2; exit 1; }
    if scrape 2>/dev/null; then
        read_n=$(metric authwatch_records_total)
        accounted=$(($(metric authwatch_events_total) + $(metric authwatch_skipped_total) +
            $(metric authwatch_rejected_total) + $(metric authwatch_before_start_total)))
        [[ $read_n -eq $records && $accounted -eq $records ]] && break
    fi
    if (($(date +%s) > deadline)); then
        log "timed out after ${TIMEOUT}s: read ${read_n:-0}, accounted ${accounted:-0} of $records"
        exit 1
    fi
    sleep 0.5
done
wall=$(awk -v s="$started" -v e="$(date +%s.%N)" 'BEGIN { printf "%.1f", e - s }')
# Counters first, peak memory and CPU just after, then stop: nothing else runs in between.
scrape
hwm_kb=$(awk '/^VmHWM:/ { print $2 }' "/proc/$daemon/status")
daemon_cpu=$(awk -v hz="$(getconf CLK_TCK)" '{ printf "%.2f", ($14 + $15) / hz }' "/proc/$daemon/stat")
load_after=$(cut -d' ' -f1-3 /proc/loadavg)
kill -TERM "$daemon"
status=0
wait "$daemon" || status=$?
daemon=""
[[ $status -eq 0 ]] || { log "the daemon exited with $status on SIGTERM:"; cat "$WORK/monitor.log" >&2; exit 1; }

# cpu_per_event NAME ARGS...: runs `authwatch ARGS` under /usr/bin/time; prints "events cpu_s".
cpu_run() {
    /usr/bin/time -v -o "$WORK/time.txt" "$AUTHWATCH" "$@" >/dev/null 2>"$WORK/replay.txt" || true
    local events cpu
    events=$(awk '/decoded/ { print $2; exit }' "$WORK/replay.txt")
    cpu=$(awk -F': ' '/User time/ { u = $2 } /System time/ { s = $2 } END { printf "%.2f", u + s }' "$WORK/time.txt")
    echo "${events:-0} $cpu"
}
log "baseline: authwatch replay on the same file"
read -r replay_events replay_cpu < <(cpu_run replay --no-progress -o /dev/null "$file")
log "baseline: authwatch replay --decode-only on the same file"
read -r _ decode_cpu < <(cpu_run replay --no-progress --decode-only "$file")

events=$(metric authwatch_events_total)
q() { metric "authwatch_event_processing_ns{quantile=\"$1\"}"; }
p50=$(q 0.5) p90=$(q 0.9) p99=$(q 0.99) p999=$(q 0.999) pmax=$(q 1)
psum=$(metric authwatch_event_processing_ns_sum)
pcount=$(metric authwatch_event_processing_ns_count)
notified=$(metric authwatch_event_to_notification_ms_count)
# us NANOSECONDS: microseconds, or milliseconds from 1 ms up.
us() { awk -v ns="$1" 'BEGIN { if (ns < 1e6) printf "%.2f µs", ns / 1e3; else printf "%.1f ms", ns / 1e6 }'; }
per_event_us() { awk -v s="$1" -v n="$2" 'BEGIN { printf "%.2f µs", n ? 1e6 * s / n : 0 }'; }
mean_ns=$(awk -v s="$psum" -v n="$pcount" 'BEGIN { printf "%.0f", n ? s / n : 0 }')
replay_ns=$(awk -v s="$replay_cpu" -v n="$replay_events" 'BEGIN { printf "%.0f", n ? 1e9 * s / n : 0 }')
verdict=$(awk -v p="$p99" -v t="$TARGET_P99_NS" 'BEGIN { if (p <= t) printf "**met** (p99 is %.2f %% of the budget)", 100 * p / t; else printf "**missed** (p99 is %.1fx the budget)", p / t }')

echo "## Monitor processing per event: $records simulated Cognito events ($(du -m "$file" | cut -f1) MB), followed from a file"
echo
echo "| figure | value |"
echo "|---|---|"
echo "| events given to the detectors | $events (replay decodes $replay_events from the same file; late $(metric authwatch_late_events_total), before start $(metric authwatch_before_start_total), rejected $(metric authwatch_rejected_total)) |"
echo "| engine time per event (\`authwatch_event_processing_ns\`) p50 / p90 / p99 / p99.9 / max | $(us "$p50") / $(us "$p90") / $(us "$p99") / $(us "$p999") / $(us "$pmax") |"
echo "| engine time per event, mean (\`_sum / _count\`) | $(us "$mean_ns") |"
echo "| baseline: \`authwatch replay\` CPU per event (decode + detect, all threads; $replay_cpu CPU s) | $(per_event_us "$replay_cpu" "$replay_events") |"
echo "| baseline: \`replay --decode-only\` CPU per event ($decode_cpu CPU s) | $(per_event_us "$decode_cpu" "$replay_events") |"
echo "| monitor p99 / replay CPU per event | $(awk -v a="$p99" -v b="$replay_ns" 'BEGIN { printf "%.2fx", b ? a / b : 0 }') |"
echo "| target: p99 <= 1 ms | $verdict |"
if [[ ${notified:-0} -gt 0 ]]; then
    nq() { metric "authwatch_event_to_notification_ms{quantile=\"$1\"}"; }
    echo "| event-to-notification latency p50 / p99 / max ($notified notifications) | $(nq 0.5) / $(nq 0.99) / $(nq 1) ms |"
else
    echo "| event-to-notification latency | none: no notification was sent (no \`--sns-topic-arn\`; \`--follow\` alone makes no AWS call) |"
fi
echo "| monitor wall time, start to the last event processed | $wall s |"
echo "| monitor CPU (whole daemon: read, decode, order, detect, write) | $daemon_cpu s, $(per_event_us "$daemon_cpu" "$events") per event |"
echo "| monitor peak RSS (VmHWM) | $((hwm_kb / 1024)) MB |"
echo "| findings closed by the monitor / open at the end | $(metric authwatch_findings_closed_total) / $(metric authwatch_open_incidents) |"
echo
echo "Machine: nproc $(nproc), $cpu_model; load average $load_before before the run, $load_after when the last event was processed."
echo "authwatch $(git -C "$root" describe --always --dirty 2>/dev/null || echo '?'); monitor flags: --follow --backfill $BACKFILL --allowed-delay $ALLOWED_DELAY (others default)."
