#!/usr/bin/env bash
# Before/after: replays one file with several authwatch binaries (e.g. builds of two commits), REPEAT
# times each, interleaved so machine load hits all alike; prints the median run of each (by events/s)
# and whether its findings are byte-identical to the first binary's.
# Usage: REPEAT=3 scripts/before-after.sh FILE LABEL=BINARY [LABEL=BINARY...]
set -euo pipefail
REPEAT=${REPEAT:-3}
file=$1
shift
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
for _ in $(seq "$REPEAT"); do
    for arg in "$@"; do
        label=${arg%%=*} bin=${arg#*=}
        /usr/bin/time -v -o "$work/time" "$bin" replay --no-progress -o "$work/$label.findings" "$file" 2>"$work/$label.err" || true
        awk -v l="$label" -F': ' '
            /Elapsed \(wall clock\)/ { n = split($2, p, ":"); w = 0; for (i = 1; i <= n; i++) w = w * 60 + p[i] }
            /User time/ { u = $2 } /System time/ { s = $2 } /Maximum resident set size/ { r = $2 }
            END { printf "%s %.2f %.2f %d\n", l, w, u + s, r }' "$work/time" >>"$work/runs"
    done
done
first=${1%%=*}
events=$(awk '/decoded/ { print $2; exit }' "$work/$first.err")
echo "$events events from $(basename "$file"); median of $REPEAT runs each, interleaved"
echo
echo "| build | wall s | CPU s | peak RSS MB | events/s | findings vs $first |"
echo "|---|---|---|---|---|---|"
for arg in "$@"; do
    label=${arg%%=*}
    same=$(cmp -s "$work/$first.findings" "$work/$label.findings" && echo "identical" || echo "DIFFERENT")
    awk -v l="$label" -v e="$events" '$1 == l { print e / $2, $0 }' "$work/runs" | sort -g |
        awk -v n="$REPEAT" -v e="$events" -v same="$same" 'NR == int((n + 1) / 2) {
            printf "| %s | %.2f | %.2f | %.0f | %.0f | %s |\n", $2, $3, $4, $5 / 1024, e / $3, same }'
done
