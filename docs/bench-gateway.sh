#!/usr/bin/env bash
# Measures the latency agentlog gateway adds to a tool call: "agentlog-dev
# bench gateway" serves a small upstream and calls it at RATE calls/s, open loop,
# both directly and through a gateway route to it (record=after, then
# record=before), the two interleaved in one run. Prints the figures for
# docs/benchmarks.md.
#   docs/bench-gateway.sh        RATE=2000 DURATION=20s by default; DIRECT_RATE
# samples the direct baseline at a lower rate (default: RATE), so that it
# adds less load of its own
set -euo pipefail
cd "$(dirname "$0")/.."
rate=${RATE:-2000}
dur=${DURATION:-20s}
drate=${DIRECT_RATE:-$rate}
work=$(mktemp -d)
pids=()
trap 'for p in "${pids[@]}"; do kill "$p" 2>/dev/null; wait "$p" 2>/dev/null; done; rm -rf "$work"' EXIT

echo "== machine"
uname -srm; nproc; grep -m1 'model name' /proc/cpuinfo || true; go version
go build -o "$work/agentlog" ./cmd/agentlog
go build -o "$work/agentlog-dev" ./cmd/agentlog-dev
log=http://127.0.0.1:18133
"$work/agentlog" serve --data "$work/data" --listen 127.0.0.1:18133 --log-level warn --ntp 127.0.0.1:1 >"$work/serve.out" 2>&1 &
pids+=($!)
for _ in $(seq 100); do [ -f "$work/data/admin.token" ] && curl -sf $log/healthz >/dev/null 2>&1 && break; sleep 0.1; done
"$work/agentlog" agent register --server $log --admin-token-file "$work/data/admin.token" --id bench-bot --key-out "$work/bench-bot.key" >/dev/null
"$work/agentlog" session open --server $log --agent-key "$work/bench-bot.key" --task bench --ttl 1h --out "$work/session" >/dev/null
for mode in after before; do
  echo "{\"routes\": {\"bench\": {\"upstream\": \"http://127.0.0.1:19100\", \"record\": \"$mode\"}}}" >"$work/gw-$mode.json"
  "$work/agentlog" gateway --log $log --listen 127.0.0.1:18134 --config "$work/gw-$mode.json" --log-level warn >"$work/gw.out" 2>&1 &
  gw=$!
  pids+=($gw)
  for _ in $(seq 100); do curl -sf http://127.0.0.1:18134/healthz >/dev/null 2>&1 && break; sleep 0.1; done
  echo "== gateway record=$mode, $rate calls/s through the gateway, $drate/s direct, $dur (gateway, log, upstream and load on one machine)"
  "$work/agentlog-dev" bench gateway --gateway http://127.0.0.1:18134/bench --upstream-listen 127.0.0.1:19100 \
    --session-token-file "$work/session" --rate "$rate" --direct-rate "$drate" --duration "$dur"
  # Where the added time goes, from the gateway's own metrics: the log's
  # append round trip (the wait for a durable commit) against the whole.
  curl -sf http://127.0.0.1:18134/metrics | awk '
    /^agentlog_gateway_log_append_seconds_sum/ {as=$2} /^agentlog_gateway_log_append_seconds_count/ {ac=$2}
    /^agentlog_gateway_log_append_entries_sum/ {es=$2}
    /^agentlog_gateway_added_seconds_sum/ {gs+=$2} /^agentlog_gateway_added_seconds_count/ {gc+=$2}
    END { if (ac > 0 && gc > 0) printf "gateway metrics: %d appends to the log, %.1f entries each, round trip mean %.2f ms; added time per call mean %.2f ms (warm-up included)\n", ac, es/ac, 1000*as/ac, 1000*gs/gc }'
  kill $gw; wait $gw 2>/dev/null || true
done
