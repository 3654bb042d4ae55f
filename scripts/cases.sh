#!/usr/bin/env bash
# Cases on simulated days: recall, pages per attack and joined cases, for 3 formats x 2 pool sizes x seeds.
# Usage: cargo build --release && SEEDS="1 2 3 4 5" scripts/cases.sh   (about 15 min on 2 cores)
BIN=${BIN:-target/release/authwatch}
SEEDS=${SEEDS:-"1 2 3"}
D=$(mktemp -d)
for fmt in cognito cloudtrail mixed; do
for users in 2000 20000; do
  for seed in $SEEDS; do
    "$BIN" simulate --users $users --duration 24h --seed $seed --attacks all --log-format $fmt --start 2026-11-20T00:00:00Z -o $D/l.jsonl --truth $D/t.json 2>/dev/null
    out=$("$BIN" replay $D/l.jsonl --no-progress --truth $D/t.json -o /dev/null 2>&1)
    score=$(echo "$out" | grep '^score' | sed 's/score *//')
    pages=$(echo "$out" | grep '^pages' | sed 's/pages *//')
    echo "$fmt users=$users seed=$seed: $score | $pages"
    echo "$out" | grep -E "^  (missed|false alarm|case |.*cases opened)" | sed 's/^/    /'
  done
done
done
rm -rf $D
