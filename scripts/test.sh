#!/usr/bin/env bash
# The test command of the README: installs the test tools (moto's AWS emulator and friends, from PyPI),
# starts the emulator on a free loopback port, runs every test, and stops the emulator.
set -euo pipefail
cd "$(dirname "$0")/.."

PY=${PYTHON:-python3}
# Pinned so results do not drift; moto 5.2.5 is the version whose behaviour the tests rely on.
"$PY" -m pip install --quiet --disable-pip-version-check -r scripts/test-requirements.txt </dev/null

# The report's browser test (tests/report.rs) opens a page in Debian's headless Chromium, and fails rather
# than skips when it cannot (AUTHWATCH_REQUIRE_BROWSER below). As root, apt installs it when missing; the
# package lists are refreshed only when the first try fails.
if ! command -v chromium >/dev/null 2>&1 && [ "$(id -u)" = 0 ]; then
  export DEBIAN_FRONTEND=noninteractive
  apt-get install -y --no-install-recommends chromium </dev/null >/dev/null 2>&1 \
    || { apt-get update </dev/null >/dev/null 2>&1 && apt-get install -y --no-install-recommends chromium </dev/null >/dev/null; } \
    || echo "could not install chromium: the report's browser test will fail"
fi
export AUTHWATCH_REQUIRE_BROWSER=1

PORT=$("$PY" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
LOG=$(mktemp -t moto.XXXXXX.log)
moto_server -H 127.0.0.1 -p "$PORT" >"$LOG" 2>&1 </dev/null &
MOTO_PID=$!
trap 'kill "$MOTO_PID" 2>/dev/null || true; wait "$MOTO_PID" 2>/dev/null || true' EXIT
for _ in $(seq 1 100); do
  if curl -fsS "http://127.0.0.1:$PORT/moto-api/" >/dev/null 2>&1; then break; fi
  if ! kill -0 "$MOTO_PID" 2>/dev/null; then echo "moto_server failed to start:"; cat "$LOG"; exit 1; fi
  sleep 0.2
done

export AWS_ENDPOINT_URL="http://127.0.0.1:$PORT"
export AWS_ACCESS_KEY_ID=testing AWS_SECRET_ACCESS_KEY=testing AWS_SESSION_TOKEN=testing
export AWS_REGION=us-east-1 AWS_DEFAULT_REGION=us-east-1
export AUTHWATCH_REQUIRE_EMULATOR=1

OUT=$(mktemp -t authwatch-tests.XXXXXX.log)
status=0
# Every target, unless the arguments pick some (`./scripts/test.sh --test monitor` runs that one only).
targets=(--all-targets)
for a in "$@"; do
  case "$a" in --test|--test=*|--lib|--bin|--bin=*|--bins|--bench|--bench=*|--benches|--example|--examples|--doc|--tests|--all-targets) targets=() ;; esac
done
cargo test --locked "${targets[@]}" "$@" </dev/null 2>&1 | tee "$OUT" || status=$?
# One closing line for every test binary together (criterion's bench smoke runs print last otherwise).
awk '/^test result:/ { for (i = 1; i <= NF; i++) { if ($(i) ~ /^passed;?$/) p += $(i-1); if ($(i) ~ /^failed;?$/) f += $(i-1) } }
     END { printf "tests: %d passed, %d failed\n", p, f }' "$OUT"
rm -f "$OUT"
exit "$status"
