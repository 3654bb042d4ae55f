#!/usr/bin/env bash
# Before/after: replays one file with several authwatch binaries (e.g. builds of two commits), REPEAT
# times each, interleaved so machine load hits all alike; prints the median run of each (by events/s),
# its events/s as a ratio of the first binary's, and whether its findings are byte-identical to the first
# binary's. With CEILING=1 each round also runs every binary's decode ceiling (`replay --decode-only`),
# interleaved the same way, and a second table compares those.
# Usage: REPEAT=3 [CEILING=1] scripts/before-after.sh FILE LABEL=BINARY [LABEL=BINARY...]
set -euo pipefail
REPEAT=${REPEAT:-3}
CEILING=${CEILING:-0}
file=$1
shift
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

# run LABEL BINARY MODE: one measured run; MODE "replay" (findings kept) or "ceiling" (--decode-only).
run() {
    local label=$1 bin=$2 mode=$3
    local args=(-o "$work/$label.findings")
    [[ $mode == ceiling ]] && args=(--decode-only)
    /usr/bin/time -v -o "$work/time" "$bin" replay --no-progress "${args[@]}" "$file" 2>"$work/$label.$mode.err" || true
    awk -v l="$label" -F': ' '
        /Elapsed \(wall clock\)/ { n = split($2, p, ":"); w = 0; for (i = 1; i <= n; i++) w = w * 60 + p[i] }
        /User time/ { u = $2 } /System time/ { s = $2 } /Maximum resident set size/ { r = $2 }
        END { printf "%s %.2f %.2f %d\n", l, w, u + s, r }' "$work/time" >>"$work/runs.$mode"
}

for _ in $(seq "$REPEAT"); do
    for arg in "$@"; do
        run "${arg%%=*}" "${arg#*=}" replay
        [[ $CEILING == 1 ]] && run "${arg%%=*}" "${arg#*=}" ceiling
    done
done
first=${1%%=*}
events=$(awk '/decoded/ { print $2; exit }' "$work/$first.replay.err")

# table MODE: the median run of each binary, with its events/s over the first binary's median.
table() {
    local mode=$1 base=""
    shift
    echo "| build | wall s | CPU s | peak RSS MB | events/s | vs $first |$([[ $mode == replay ]] && echo " findings vs $first |")"
    echo "|---|---|---|---|---|---|$([[ $mode == replay ]] && echo "---|")"
    for arg in "$@"; do
        label=${arg%%=*}
        same=""
        if [[ $mode == replay ]]; then
            same=" $(cmp -s "$work/$first.findings" "$work/$label.findings" && echo "identical" || echo "DIFFERENT") |"
        fi
        median=$(awk -v l="$label" -v e="$events" '$1 == l { print e / $2, $0 }' "$work/runs.$mode" | sort -g |
            awk -v n="$REPEAT" 'NR == int((n + 1) / 2) { print }')
        rate=${median%% *}
        base=${base:-$rate}
        echo "$median" | awk -v e="$events" -v base="$base" -v same="$same" '{
            printf "| %s | %.2f | %.2f | %.0f | %.0f | %.2fx |%s\n", $2, $3, $4, $5 / 1024, e / $3, $1 / base, same }'
    done
}

echo "$events events from $(basename "$file"); median of $REPEAT runs each, interleaved"
echo
table replay "$@"
if [[ $CEILING == 1 ]]; then
    echo
    echo "Decode ceiling (replay --decode-only), same rounds:"
    echo
    table ceiling "$@"
fi
