#!/usr/bin/env bash
# Runs each fuzz target for SECONDS (default 300), one at a time, one job, with memory and time bounds, and
# prints one Markdown table row per target: target, seconds, executions, corpus files, result.
# Usage: fuzz/campaign.sh [SECONDS] [TARGET...]     (needs cargo-fuzz; see docs/reliability.md)
# SKIP_BUILD=1 runs the binaries already built (several campaigns in parallel share one build).
set -uo pipefail
cd "$(dirname "$0")/.."
secs=${1:-300}
shift || true
targets=("$@")
[ ${#targets[@]} -eq 0 ] && targets=(decode_cognito decode_cloudtrail decode_container record_reader spec_parse pattern)
mkdir -p fuzz/logs
# cargo-fuzz needs nightly rustc flags (-Zsanitizer=address); RUSTC_BOOTSTRAP=1 allows them on stable.
export RUSTC_BOOTSTRAP=1
# Build every target once (release, ASan, coverage), then run the binaries: editing src/ during a campaign
# does not change what is being fuzzed.
if [ "${SKIP_BUILD:-0}" != 1 ]; then
    cargo fuzz build -O >fuzz/logs/build.log 2>&1 || { echo "build failed: see fuzz/logs/build.log"; exit 2; }
fi
bin=fuzz/target/x86_64-unknown-linux-gnu/release
for t in "${targets[@]}"; do
    log=fuzz/logs/$t.log
    mkdir -p "fuzz/artifacts/$t"
    "$bin/$t" "fuzz/corpus/$t" -artifact_prefix="fuzz/artifacts/$t/" \
        -max_total_time="$secs" -rss_limit_mb=2048 -malloc_limit_mb=512 -timeout=10 -print_final_stats=1 \
        >"$log" 2>&1
    rc=$?
    execs=$(grep -o 'stat::number_of_executed_units: *[0-9]*' "$log" | tail -1 | grep -o '[0-9]*$')
    corpus=$(ls "fuzz/corpus/$t" | wc -l)
    found=$(ls "fuzz/artifacts/$t" | wc -l)
    peak=$(grep -o 'stat::peak_rss_mb: *[0-9]*' "$log" | tail -1 | grep -o '[0-9]*$')
    if [ $rc -eq 0 ] && [ "$found" -eq 0 ]; then result="no crash, hang or OOM (peak RSS ${peak:-?} MB)"; else
        result="FAILED (rc $rc, $found artifact(s)): $(grep -m1 -E 'ERROR: libFuzzer|panicked|deadly signal|SUMMARY' "$log")"; fi
    echo "| $t | $secs | ${execs:-?} | $corpus | $result |"
done
