#!/usr/bin/env bash
# Side-by-side throughput and memory of authwatch replay (all rules, and the peers' question alone:
# failed sign-ins per address), its decode ceiling, fail2ban-regex and CrowdSec replay mode
# (scripts/crowdsec-replay.sh, offline), on one simulated Cognito user-activity file; then scaling with the
# input length, memory per tracked key, and a flood of distinct addresses and users. Prints markdown tables
# (docs/performance.md holds a run of it).
#
# Usage: scripts/compare.sh            (needs: cargo, /usr/bin/time, python3; optional: fail2ban, crowdsec)
# Knobs (environment):
#   EVENTS=2000000        events in the side-by-side file (at least 2 million for the published table)
#   USERS=200000          users in the simulated pool
#   REPEAT=3              runs of each authwatch measurement; the median by events/s is reported
#   SCALES="1000000 4000000 16000000"   input lengths for the scaling table ("" skips it)
#   KEY_EVENTS=250000     distinct failing (address, user) pairs of the middle of three floods (half, it, twice)
#                         whose slope gives the memory-per-key figure ("" skips)
#   FLOOD=10000000        distinct addresses and users in the flood ("" skips)
#   WORK=/tmp/authwatch-compare          scratch directory (large: the 16M file is ~13 GB, removed after use)
#   AUTHWATCH=path        use this binary instead of building target/release/authwatch
set -euo pipefail

EVENTS=${EVENTS:-2000000}
USERS=${USERS:-200000}
REPEAT=${REPEAT:-3}
SCALES=${SCALES-1000000 4000000 16000000}
KEY_EVENTS=${KEY_EVENTS-250000}
FLOOD=${FLOOD-10000000}
WORK=${WORK:-/tmp/authwatch-compare}
# A fixed start and seed: every run of the script replays byte-identical input.
START=2026-03-01T00:00:00Z
SEED=1
FAILREGEX='"eventType":"SignIn",.*"eventResponse":"Fail",.*"ipAddress":"<HOST>"'
# eventTimestamp is epoch milliseconds in a JSON string: fail2ban's {LEPOCH} reads long epochs.
DATEPATTERN='"eventTimestamp":"{LEPOCH}'

root=$(cd "$(dirname "$0")/.." && pwd)
mkdir -p "$WORK"
if [[ -z ${AUTHWATCH:-} ]]; then
    (cd "$root" && cargo build --release --quiet)
    AUTHWATCH=${CARGO_TARGET_DIR:-$root/target}/release/authwatch
fi

log() { echo "compare.sh: $*" >&2; }

# measure NAME EVENTS_FROM CMD... : runs CMD under /usr/bin/time -v, appends one line to $WORK/results:
# name events wall_s cpu_s rss_kb. EVENTS_FROM is a number, or "summary" (authwatch's own count), or
# "fail2ban" (its "Lines:" count).
measure() {
    local name=$1 from=$2
    shift 2
    local t=$WORK/time.txt out=$WORK/out.txt
    /usr/bin/time -v -o "$t" "$@" >"$out" 2>&1 || true
    local wall cpu rss events
    wall=$(awk -F': ' '/Elapsed \(wall clock\)/ { n = split($2, p, ":"); s = 0; for (i = 1; i <= n; i++) s = s * 60 + p[i]; print s }' "$t")
    cpu=$(awk -F': ' '/User time/ { u = $2 } /System time/ { s = $2 } END { printf "%.2f", u + s }' "$t")
    rss=$(awk -F': ' '/Maximum resident set size/ { print $2 }' "$t")
    case $from in
        summary) events=$(awk '/decoded/ { print $2; exit }' "$out") ;;
        fail2ban) events=$(awk '/^Lines:/ { print $2; exit }' "$out") ;;
        *) events=$from ;;
    esac
    echo "$name ${events:-0} $wall $cpu $rss" >>"${RESULTS:-$WORK/results}"
    cp "$out" "$WORK/last-$name.txt"
}

# median_run NAME CMD... : REPEAT measurements, keeps the median by events/s.
median_run() {
    local name=$1
    shift
    : >"$WORK/runs"
    for _ in $(seq "$REPEAT"); do
        RESULTS=$WORK/runs measure "$name" summary "$@"
    done
    awk '{ print $2 / $3, $0 }' "$WORK/runs" | sort -g |
        awk -v n="$REPEAT" 'NR == int((n + 1) / 2) { $1 = ""; sub(/^ /, ""); print }' >>"$WORK/results"
    awk '{ printf "%.0f ", $2 / $3 } END { print "" }' "$WORK/runs" >"$WORK/spread-$name"
}

row() { # NAME LABEL: one table row, with ratios to fail2ban and to the decode ceiling
    awk -v n="$1" -v label="$2" '
        { ev[$1] = $2; w[$1] = $3; c[$1] = $4; r[$1] = $5 }
        END {
            if (!(n in ev)) exit
            rate = ev[n] / w[n]
            vsref = ("fail2ban" in ev) ? sprintf("%.1fx", rate / (ev["fail2ban"] / w["fail2ban"])) : "-"
            memref = ("fail2ban" in ev) ? sprintf("%.2fx", r[n] / r["fail2ban"]) : "-"
            vsceil = ("ceiling" in ev) ? sprintf("%.0f %%", 100 * rate / (ev["ceiling"] / w["ceiling"])) : "-"
            printf "| %s | %d | %.2f | %.2f | %.0f | %.0f | %s | %s | %s |\n", label, ev[n], w[n], c[n], r[n] / 1024, rate, vsref, memref, vsceil
        }' "$WORK/results"
}

sim() { # EVENTS FILE [DURATION]
    "$AUTHWATCH" simulate --events "$1" --users "$USERS" --duration "${3:-24h}" --seed "$SEED" --start "$START" \
        -o "$2" >&2
}

# flood N FILE [SPAN_MS]: N failed sign-ins within SPAN_MS (default ten minutes), each from a new address
# for a new user.
flood() {
    python3 - "$1" "$2" "${3:-600000}" <<'EOF'
import sys
n, path, span = int(sys.argv[1]), sys.argv[2], int(sys.argv[3])
start = 1772323200000  # 2026-03-01T00:00:00Z
with open(path, "w", buffering=1 << 20) as f:
    for i in range(n):
        a = 11 + (i >> 24)
        ip = f"{a}.{(i >> 16) & 255}.{(i >> 8) & 255}.{i & 255}"
        f.write(
            '{"eventTimestamp":"%d","eventSource":"USER_ACTIVITY","logLevel":"INFO",'
            '"logSourceId":{"userPoolId":"us-east-1_Flood"},"message":{"eventId":"flood-%d",'
            '"eventType":"SignIn","userName":"flood%d","userPoolId":"us-east-1_Flood",'
            '"eventResponse":"Fail","ipAddress":"%s"}}\n' % (start + (i * span) // n, i, i, ip)
        )
EOF
}

: >"$WORK/results"
cpu_model=$(awk -F': ' '/model name/ { print $2; exit }' /proc/cpuinfo)
echo "## Machine"
echo
echo "nproc $(nproc), $cpu_model, $(free -g | awk '/Mem:/ { print $2 }') GB RAM; load average before the run: $(cut -d' ' -f1-3 /proc/loadavg)"
echo "authwatch $(git -C "$root" rev-parse --short HEAD 2>/dev/null || echo '?'), $("$AUTHWATCH" --version)"
echo

file=$WORK/sim-$EVENTS.jsonl
[[ -s $file ]] || { log "simulating $EVENTS events"; sim "$EVENTS" "$file"; }
failed=$(grep -c '"eventType":"SignIn",.*"eventResponse":"Fail",' "$file" || true)
log "authwatch replay x$REPEAT"
median_run replay "$AUTHWATCH" replay --no-progress -o "$WORK/findings.jsonl" "$file"
log "authwatch replay, one detection thread (--shards 1), x$REPEAT"
median_run oneshard "$AUTHWATCH" replay --no-progress --shards 1 -o "$WORK/findings-oneshard.jsonl" "$file"
log "authwatch replay, one thread for everything (--threads 1), x$REPEAT"
median_run onethread "$AUTHWATCH" replay --no-progress --threads 1 -o "$WORK/findings-onethread.jsonl" "$file"
log "decode ceiling x$REPEAT"
median_run ceiling "$AUTHWATCH" replay --no-progress --decode-only "$file"
# The peers' question alone: failed sign-ins per address. The built-in failed_login_burst_ip spec with its
# failure-share condition off counts failures only, as fail2ban's failregex and CrowdSec's scenario do.
question=$WORK/filters-failed-per-ip
mkdir -p "$question"
sed 's/^failure_share_above = .*/failure_share_above = 0.0/' "$root/filters/failed_login_burst_ip.toml" \
    >"$question/failed_login_burst_ip.toml"
grep -q '^failure_share_above = 0.0$' "$question/failed_login_burst_ip.toml" ||
    { log "filters/failed_login_burst_ip.toml has no failure_share_above line to turn off"; exit 1; }
log "authwatch replay, failed sign-ins per address only, x$REPEAT"
median_run question "$AUTHWATCH" replay --no-progress --filters "$question" -o "$WORK/findings-question.jsonl" "$file"

f2b_note=""
if command -v fail2ban-regex >/dev/null; then
    log "fail2ban-regex"
    measure fail2ban fail2ban fail2ban-regex --datepattern "$DATEPATTERN" "$file" "$FAILREGEX"
    matched=$(awk '/^Lines:/ { print $6; exit }' "$WORK/last-fail2ban.txt")
    f2b_note="fail2ban-regex matched $matched failed sign-ins (grep counts $failed)."
else
    f2b_note="fail2ban-regex not installed (apt-get install -y fail2ban): no fail2ban row."
fi

crowdsec_note=""
if command -v crowdsec >/dev/null && command -v cscli >/dev/null; then
    log "crowdsec (replay mode, local parsers and scenario from scripts/crowdsec/)"
    if "$root/scripts/crowdsec-replay.sh" --check "$WORK/crowdsec" >"$WORK/crowdsec-check.txt" 2>&1; then
        measure crowdsec "$EVENTS" "$root/scripts/crowdsec-replay.sh" "$WORK/crowdsec" "$file"
        overflows=$(grep -c "performed 'authwatch/cognito-failed-signins'" "$WORK/last-crowdsec.txt" || true)
        crowdsec_note="crowdsec raised $overflows overflow(s) of the failed-sign-ins-per-IP scenario; CrowdSec 1.4's ParseDate cannot read epoch-millisecond times, so its buckets ran on read time, not event time (docs/performance.md)."
    else
        crowdsec_note="CrowdSec not measured: $(grep -m1 -E 'fatal|error' "$WORK/crowdsec-check.txt" || tail -n1 "$WORK/crowdsec-check.txt")"
    fi
else
    crowdsec_note="CrowdSec not measured: crowdsec/cscli not installed (apt-get install -y crowdsec)."
fi

echo "## Side by side: $EVENTS simulated Cognito user-activity events ($(du -m "$file" | cut -f1) MB, $failed failed sign-ins)"
echo
echo "| tool | events | wall s | CPU s | peak RSS MB | events/s | vs fail2ban | RSS vs fail2ban | of decode ceiling |"
echo "|---|---|---|---|---|---|---|---|---|"
row replay "authwatch replay (all rules)"
row oneshard "authwatch replay (all rules, --shards 1)"
row onethread "authwatch replay (all rules, --threads 1)"
row question "authwatch replay (failed sign-ins per IP only)"
row ceiling "decode ceiling (replay --decode-only)"
row fail2ban "fail2ban-regex (failed sign-ins per IP)"
row crowdsec "crowdsec -dsn (failed sign-ins per IP)"
echo
echo "authwatch events/s of each run: replay $(cat "$WORK/spread-replay"); --shards 1 $(cat "$WORK/spread-oneshard"); --threads 1 $(cat "$WORK/spread-onethread"); failed per IP only $(cat "$WORK/spread-question"); ceiling $(cat "$WORK/spread-ceiling")"
echo "$f2b_note"
echo "$crowdsec_note"
same=identical
cmp -s "$WORK/findings.jsonl" "$WORK/findings-oneshard.jsonl" && cmp -s "$WORK/findings.jsonl" "$WORK/findings-onethread.jsonl" ||
    same="DIFFERENT"
echo "findings: $(wc -l <"$WORK/findings.jsonl"), $same with --shards 1 and with --threads 1"
echo

if [[ -n $SCALES ]]; then
    # Same pool, same rate of sign-ins ($EVENTS a day): a longer input is a longer time span, which is what
    # replaying a month instead of a day means. Memory should not follow the length.
    echo "## Scaling with input length (users fixed at $USERS, $EVENTS events a day: longer inputs span more days)"
    echo
    echo "| events | days | wall s | CPU s | peak RSS MB | events/s | tracked keys at end |"
    echo "|---|---|---|---|---|---|---|"
    for n in $SCALES; do
        f=$WORK/sim-$n.jsonl
        [[ -s $f ]] || { log "simulating $n events"; sim "$n" "$f" "$((1440 * n / EVENTS))m"; }
        log "replay $n"
        measure "scale$n" summary "$AUTHWATCH" replay --no-progress -o /dev/null "$f"
        keys=$(awk '/^  state/ { print $2 }' "$WORK/last-scale$n.txt")
        awk -v n="scale$n" -v k="$keys" -v d="$(awk -v n="$n" -v e="$EVENTS" 'BEGIN { printf "%g", n / e }')" \
            '$1 == n { printf "| %d | %s | %.2f | %.2f | %.0f | %.0f | %s |\n", $2, d, $3, $4, $5 / 1024, $2 / $3, k }' "$WORK/results"
        [[ $f == "$file" ]] || rm -f "$f"
    done
    echo
fi

if [[ -n $KEY_EVENTS ]]; then
    # Bytes per tracked key, as the slope of peak RSS over tracked keys across three floods of new
    # (user, address) pairs: what the fixed costs (threads, buffers, the gazetteer) do not depend on.
    # Every rule keeps up to max_keys keys; the cap is raised so none is evicted. The floods last four
    # minutes, shorter than every rule's window, so no key expires and the keys tracked at the end are the
    # peak; --lateness 1s keeps the orderer from holding a share of the events that grows with the rate.
    specs=$WORK/specs-unbounded
    rm -rf "$specs" && mkdir -p "$specs"
    for s in "$root"/filters/*.toml; do
        awk '/^\[/ && !done { print "max_keys = 100000000"; done = 1 } { print }' "$s" >"$specs/$(basename "$s")"
    done
    echo "## Memory per tracked key"
    echo
    echo "| failing pairs | tracked keys (every rule, caps lifted) | peak RSS MB |"
    echo "|---|---|---|"
    : >"$WORK/perkey"
    for n in $((KEY_EVENTS / 2)) "$KEY_EVENTS" $((KEY_EVENTS * 2)); do
        f=$WORK/keys-$n.jsonl
        log "memory per key: $n distinct failing pairs in four minutes"
        flood "$n" "$f" 240000
        measure "keys$n" summary "$AUTHWATCH" replay --no-progress --no-cases --lateness 1s --filters "$specs" -o /dev/null "$f"
        keys=$(awk '/^  state/ { print $2 }' "$WORK/last-keys$n.txt")
        rss=$(awk -v n="keys$n" '$1 == n { print $5 }' "$WORK/results")
        echo "$n $keys $rss" >>"$WORK/perkey"
        awk -v n="$n" -v k="$keys" -v r="$rss" 'BEGIN { printf "| %d | %d | %.0f |\n", n, k, r / 1024 }'
        rm -f "$f"
    done
    echo
    awk '{ k[NR] = $2; r[NR] = $3 } END {
        printf "%.0f bytes per tracked key (slope from the smallest to the largest flood; %.0f and %.0f between neighbours)\n",
            (r[3] - r[1]) * 1024 / (k[3] - k[1]), (r[2] - r[1]) * 1024 / (k[2] - k[1]), (r[3] - r[2]) * 1024 / (k[3] - k[2]) }' "$WORK/perkey"
    echo
fi

if [[ -n $FLOOD ]]; then
    f=$WORK/flood-$FLOOD.jsonl
    log "flood: $FLOOD distinct addresses and users"
    flood "$FLOOD" "$f"
    measure flood summary "$AUTHWATCH" replay --no-progress -o /dev/null "$f"
    echo "## Flood: $FLOOD failed sign-ins, each from a new address for a new user, within ten minutes"
    echo
    awk '$1 == "flood" { printf "wall %.2f s, CPU %.2f s, peak RSS %.0f MB, %.0f events/s (default max_keys per rule)\n", $3, $4, $5 / 1024, $2 / $3 }' "$WORK/results"
    echo
    echo '```'
    grep -E '^  (state|SATURATED|decoded)' "$WORK/last-flood.txt" || true
    echo '```'
    rm -f "$f"
fi
