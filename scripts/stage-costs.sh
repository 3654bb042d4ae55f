#!/usr/bin/env bash
# Cost per event by stage, in instructions (valgrind's callgrind: the same count on every run of the same
# binary and input, whatever else the machine does, unlike seconds). One thread for everything
# (--threads 1 --shards 1), so each stage is counted once; startup work is left out (the built-in
# gazetteer's parse, counted apart).
#
# Usage: scripts/stage-costs.sh FILE [BINARY]   (BINARY: target/release/authwatch)
# Prints a markdown table: reading and decoding, the engine with no rule (ordering, keys), each rule
# alone over that, the correlation stage, and every rule together.
set -euo pipefail
file=$1
bin=${2:-target/release/authwatch}
root=$(cd "$(dirname "$0")/.." && pwd)
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
command -v valgrind >/dev/null || { echo "needs valgrind (apt-get install -y valgrind)" >&2; exit 1; }

# instructions LABEL ARGS...: total instructions of one replay, less the gazetteer's one-time parse.
instructions() {
    local label=$1
    shift
    valgrind --tool=callgrind --callgrind-out-file="$work/$label.cg" "$bin" replay -q --no-progress \
        --threads 1 --shards 1 -o /dev/null "$@" "$file" 2>/dev/null
    callgrind_annotate --inclusive=yes "$work/$label.cg" 2>/dev/null | awk '
        /PROGRAM TOTALS/ { gsub(",", "", $1); total = $1 }
        /Gazetteer::load_builtin \[/ && !seen { gsub(",", "", $1); gaz = $1; seen = 1 }
        END { printf "%.0f %.0f\n", total - gaz, gaz }'
}

events=$(grep -c . "$file")
# A directory of specs holding one rule, or none enabled (the engine alone).
only() {
    local dir=$work/only-$1
    mkdir -p "$dir"
    for s in "$root"/filters/*.toml; do
        if [[ $(basename "$s" .toml) == "$1" ]]; then
            cp "$s" "$dir/"
        else
            awk '/^\[/ && !done { print "enabled = false"; done = 1 } { print }' "$s" >"$dir/$(basename "$s")"
        fi
    done
    echo "$dir"
}

read -r decode _ < <(instructions decode --decode-only)
read -r engine _ < <(instructions engine --filters "$(only none)" --no-cases)
read -r all gazetteer < <(instructions all)
read -r nocases _ < <(instructions nocases --no-cases)
per() { awk -v a="$1" -v n="$events" 'BEGIN { printf "%.0f", a / n }'; }

echo "$events events of $(basename "$file"), $(git -C "$root" rev-parse --short HEAD 2>/dev/null || echo '?');"
echo "instructions per event (callgrind, --threads 1 --shards 1; the gazetteer's one-time parse,"
echo "$(per "$gazetteer") per event here, left out)"
echo
echo "| stage | instructions per event | share of all |"
echo "|---|---|---|"
row() { awk -v l="$1" -v a="$2" -v n="$events" -v t="$all" 'BEGIN { printf "| %s | %.0f | %.0f %% |\n", l, a / n, 100 * a / t }'; }
row "reading and decoding (--decode-only)" "$decode"
row "engine, no rule: ordering, user and address keys, hand-off" "$((engine - decode))"
for s in "$root"/filters/*.toml; do
    rule=$(basename "$s" .toml)
    read -r alone _ < <(instructions "$rule" --filters "$(only "$rule")" --no-cases)
    row "rule $rule" "$((alone - engine))"
done
row "correlation stage (cases)" "$((all - nocases))"
row "**all together**" "$all"
