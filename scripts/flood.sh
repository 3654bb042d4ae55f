#!/usr/bin/env bash
# Credential stuffing at scale through the release binary: EVENTS failed sign-ins (default 20 million),
# almost every one from a new user and a new address, 20,000 a second with whole-second times, streamed
# into `authwatch replay` on standard input (nothing is written to disk). Hidden in it: one stuffing address
# (1 event in 100, each on a new user) and one account under a password burst (1 in 200).
# The built-in rules run with max_keys = MAX_KEYS (default 1000). Prints the summary, the attackers'
# findings, and the peak memory of authwatch; fails unless the stuffer and the burst are found and the
# summary reports saturation. Figures from a run are in docs/reliability.md.
#
# Usage: scripts/flood.sh [EVENTS] [MAX_KEYS]
set -euo pipefail
cd "$(dirname "$0")/.."
events=${1:-20000000}
max_keys=${2:-1000}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

cargo build --release --quiet
bin=${CARGO_TARGET_DIR:-target}/release/authwatch

mkdir "$work/filters"
for f in filters/*.toml; do
    sed "/^id = /a max_keys = $max_keys" "$f" >"$work/filters/$(basename "$f")"
done

gen() {
    python3 - "$events" <<'PY'
import random, sys
n = int(sys.argv[1])
rng = random.Random(7)
t0 = 1_721_237_155_000
out = sys.stdout
buf = []
for i in range(n):
    t = t0 + (i // 20_000) * 1000
    if i % 100 == 50:
        user, ip = f"stuffed{i}", "203.0.113.66"
    elif i % 200 == 199:
        user, ip = "victim", "198.51.100.7"
    else:
        r = rng.getrandbits(48)
        user, ip = f"u{i}-{r >> 24:x}", f"45.{(r >> 16) & 255}.{(r >> 8) & 255}.{r & 255}"
    buf.append(f'{{"eventTimestamp":"{t}","eventSource":"USER_ACTIVITY","message":{{"eventType":"SignIn",'
               f'"userName":"{user}","eventResponse":"Fail","ipAddress":"{ip}"}}}}\n')
    if len(buf) == 10_000:
        out.write("".join(buf)); buf.clear()
out.write("".join(buf))
PY
}

echo "flood: $events events, max_keys = $max_keys" >&2
set +e
gen | /usr/bin/time -v "$bin" replay --no-progress --filters "$work/filters" - >"$work/findings.jsonl" 2>"$work/stderr"
rc=$?
set -e
sed -n '/authwatch replay summary/,/Command being timed/p' "$work/stderr" | grep -v 'Command being timed'
grep -E 'Maximum resident set size|Elapsed \(wall clock\)|Percent of CPU' "$work/stderr"
echo "exit code $rc"
echo "attackers' findings:"
grep -E '"ip":"203.0.113.66"|"user":"victim"' "$work/findings.jsonl" | cut -c1-220
ok=1
grep -q '"detector":"credential_stuffing".*"ip":"203.0.113.66"' "$work/findings.jsonl" || { echo "MISSED: stuffer"; ok=0; }
grep '"rule":"failed_login_burst_user"' "$work/findings.jsonl" | grep -q '"user":"victim"' \
    || { echo "MISSED: burst on victim"; ok=0; }
grep -q 'SATURATED' "$work/stderr" || { echo "no saturation reported"; ok=0; }
others=$(grep -cvE '"ip":"(203.0.113.66|198.51.100.7)"|"user":"victim"' "$work/findings.jsonl" || true)
[ "$others" -eq 0 ] || { echo "$others finding(s) about flood keys"; ok=0; }
[ $ok -eq 1 ] && echo "flood: PASS" || { echo "flood: FAIL"; exit 1; }
