#!/usr/bin/env bash
# Seeds fuzz/corpus/<target>/ from tests/fixtures/ and filters/. Safe to re-run: files are named by content
# hash, so nothing is duplicated and corpora grown by earlier campaigns are kept.
set -euo pipefail
cd "$(dirname "$0")/.."
corpus=fuzz/corpus
mkdir -p "$corpus"/{decode_cognito,decode_cloudtrail,decode_container,record_reader,spec_parse,pattern}

put() { # put TARGET FILE-OR-STDIN: store under the content's hash
    local target=$1 tmp
    tmp=$(mktemp)
    cat >"$tmp"
    mv "$tmp" "$corpus/$target/$(sha1sum "$tmp" | cut -c1-40)"
}

# Decoders: every fixture line on its own, and every fixture file whole.
for f in tests/fixtures/decode/*.json tests/fixtures/decode/*.jsonl tests/fixtures/travel/*.jsonl; do
    while IFS= read -r line || [ -n "$line" ]; do
        [ -z "$line" ] && continue
        printf '%s' "$line" | put decode_cognito
        printf '%s' "$line" | put decode_cloudtrail
        { printf '\000'; printf '%s' "$line"; } | put decode_container
    done <"$f"
    put record_reader <"$f"
    { printf '\000'; cat "$f"; } | put decode_container
    gzip -c <"$f" | put record_reader
    { printf '\000'; gzip -c <"$f"; } | put decode_container
    { printf '\000'; gzip -c <"$f" | base64 -w0; } | put decode_container
done

# Detector specs.
for f in filters/*.toml; do put spec_parse <"$f"; done

# Filter patterns: pattern NUL message, from the fixture table.
python3 - "$corpus/pattern" <<'PY'
import hashlib, json, pathlib, sys
out = pathlib.Path(sys.argv[1])
for case in json.load(open("tests/fixtures/pattern/cases.json")):
    data = (case["pattern"] + "\0" + case.get("message", "")).encode()
    (out / hashlib.sha1(data).hexdigest()).write_bytes(data)
PY
for t in "$corpus"/*; do echo "$(basename "$t"): $(ls "$t" | wc -l) seeds"; done
