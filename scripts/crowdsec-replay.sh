#!/usr/bin/env bash
# CrowdSec in replay mode (-dsn file://... -no-api) on a Cognito user-activity file, with the local parsers
# and scenario of scripts/crowdsec/ (no hub download): counts failed sign-ins per IP.
# Usage: scripts/crowdsec-replay.sh [--check] WORKDIR [FILE]
#   --check WORKDIR   set up WORKDIR and replay a two-line file; exit status says whether CrowdSec runs here.
set -euo pipefail
check=false
if [[ ${1:-} == --check ]]; then check=true; shift; fi
work=$1
here=$(cd "$(dirname "$0")" && pwd)
mkdir -p "$work/data" "$work/hub" "$work/config"
port=${CROWDSEC_PORT:-18080}
cp -r "$here/crowdsec/parsers" "$here/crowdsec/scenarios" "$work/config/"
cp /etc/crowdsec/simulation.yaml "$work/config/" 2>/dev/null || echo "simulation: off" >"$work/config/simulation.yaml"
[[ -d /etc/crowdsec/patterns ]] && cp -r /etc/crowdsec/patterns "$work/config/"
# An empty hub index: every parser and scenario used is a local file.
echo '{"parsers": {}, "scenarios": {}, "postoverflows": {}, "collections": {}}' >"$work/hub/.index.json"
cat >"$work/config/config.yaml" <<YAML
common:
  daemonize: false
  log_media: stdout
  log_level: info
  working_dir: .
config_paths:
  config_dir: $work/config/
  data_dir: $work/data/
  simulation_path: $work/config/simulation.yaml
  hub_dir: $work/hub/
  index_path: $work/hub/.index.json
crowdsec_service:
  acquisition_path: $work/config/acquis.yaml
  parser_routines: $(nproc)
  buckets_routines: 1
db_config:
  type: sqlite
  db_path: $work/data/crowdsec.db
api:
  client:
    credentials_path: $work/config/local_api_credentials.yaml
  server:
    listen_uri: 127.0.0.1:$port
    profiles_path: $work/config/profiles.yaml
prometheus:
  enabled: false
YAML
cp /etc/crowdsec/profiles.yaml "$work/config/"
: >"$work/config/acquis.yaml"
# With -no-api the agent still logs in to a local API to hand over its alerts, and stops when none
# answers; so the replay runs this config's own API on loopback, with a machine registered offline.
if [[ ! -s $work/config/local_api_credentials.yaml ]]; then
    cscli -c "$work/config/config.yaml" machines add replay --password replay-offline -f "$work/config/local_api_credentials.yaml" --force >/dev/null
fi
file=${2:-}
if $check; then
    file=$work/check.jsonl
    # Twelve failures from one address in twelve seconds: over the scenario's capacity of 10.
    for i in $(seq 10 21); do
        echo '{"eventTimestamp":"17723232'$i'000","eventSource":"USER_ACTIVITY","message":{"eventType":"SignIn","eventResponse":"Fail","ipAddress":"203.0.113.7"}}'
    done >"$file"
fi
crowdsec -c "$work/config/config.yaml" -dsn "file://$file" -type cognito
