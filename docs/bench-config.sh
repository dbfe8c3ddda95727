#!/usr/bin/env bash
# Issue 12's criterion: appends under sessions that declare a configuration
# (every leaf carries its digest) against appends without one, on one
# machine in one run, the modes alternating. Prints entries/s and the
# server's CPU time per entry (utime+stime from /proc/PID/stat over the run).
#   docs/bench-config.sh          (ROUNDS=3 DUR=10s by default)
set -euo pipefail
cd "$(dirname "$0")/.."
rounds=${ROUNDS:-3}
dur=${DUR:-10s}
work=$(mktemp -d)
server=
trap '[ -n "$server" ] && kill "$server" 2>/dev/null && wait "$server" 2>/dev/null; rm -rf "$work"' EXIT
uname -srm; nproc; go version; uptime
go build -o "$work/agentlog" ./cmd/agentlog
go build -o "$work/agentlog-dev" ./cmd/agentlog-dev
cat >"$work/config.json" <<'JSON'
{"model": {"provider": "anthropic", "name": "claude-sonnet", "version": "4.5"},
 "prompts": {"system": {"sha256": "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08"}},
 "scope": {"actions": ["bench.*"]}, "framework": {"name": "bench", "version": "1.0"},
 "parameters": {"temperature": 0.2}}
JSON
start() {
  rm -rf "$work/data"
  "$work/agentlog" serve --data "$work/data" --listen 127.0.0.1:18340 --log-level warn --ntp 127.0.0.1:1 >"$work/serve.out" 2>&1 &
  server=$!
  for _ in $(seq 300); do [ -f "$work/data/admin.token" ] && curl -sf http://127.0.0.1:18340/healthz >/dev/null 2>&1 && return; sleep 0.1; done
  echo "server did not start"; cat "$work/serve.out"; exit 1
}
stop() { kill "$server"; wait "$server" 2>/dev/null || true; server=; }
cpu() { awk '{print $14+$15}' "/proc/$server/stat"; }
run() { # run MODE BATCH CONCURRENCY
  local extra=()
  [ "$1" = config ] && extra=(--config "$work/config.json")
  start
  local c0 out c1 n
  c0=$(cpu)
  out=$("$work/agentlog-dev" bench append --server http://127.0.0.1:18340 --token-file "$work/data/admin.token" --concurrency "$3" --batch "$2" --duration "$dur" --provable=false "${extra[@]}")
  c1=$(cpu)
  n=$(echo "$out" | sed -n 's/.* entries=\([0-9]*\) .*/\1/p')
  echo "$out" | grep -o 'entries_per_s=[0-9]*' | tr '\n' ' '
  echo "$out" | grep -o 'p99=[^ ]*' | head -1 | tr '\n' ' '
  python3 -c "print('cpu_us_per_entry=%.2f' % (($c1-$c0)*1e6/$(getconf CLK_TCK)/$n))"
  stop
}
for shape in "256 16" "1 256"; do
  set -- $shape
  echo "== batch $1, $2 clients"
  for round in $(seq "$rounds"); do
    for mode in plain config; do
      echo -n "round $round $mode: "; run "$mode" "$1" "$2"
    done
  done
done
uptime
