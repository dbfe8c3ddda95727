#!/usr/bin/env bash
# Throughput of the three agent SDKs appending signed records in batches
# (Go client.Agent.Add, Python Agent.add, TypeScript Agent.add; 100 records
# a request, 4 requests in flight), side by side against one server, in
# one run, two rounds: the figures of docs/benchmarks.md.
#   docs/sdk-bench.sh [N]   (records per run, default 20000)
# Needs Go, Node 20 with npm (client/typescript is built with npm ci) and
# Python 3.10+ with cryptography (PYTHON, default /usr/bin/python3).
set -euo pipefail
cd "$(dirname "$0")/.."
n=${1:-20000}
py=${PYTHON:-/usr/bin/python3}
work=$(mktemp -d)
server=
trap '[ -n "$server" ] && kill "$server" 2>/dev/null && wait "$server" 2>/dev/null; rm -rf "$work"' EXIT

echo "== machine"
uname -srm; nproc; grep -m1 'model name' /proc/cpuinfo || true; go version; node --version; "$py" --version

go build -o "$work/agentlog" ./cmd/agentlog
go build -o "$work/sdkbench" ./client/examples/sdkbench
(cd client/typescript && npm ci --no-audit --no-fund --loglevel=error && npx tsc -p .)

"$work/agentlog" serve --data "$work/data" --listen 127.0.0.1:0 --log-level warn --ntp 127.0.0.1:1 >"$work/serve.out" 2>&1 &
server=$!
for _ in $(seq 100); do grep -q "listening on" "$work/serve.out" && break; sleep 0.1; done
url=$(awk '/listening on/ {print $4; exit}' "$work/serve.out")
for a in go py ts; do
  "$work/agentlog" agent register --server "$url" --admin-token-file "$work/data/admin.token" --id "$a-bench" --key-out "$work/$a.key" >/dev/null
done

echo "== $n signed records, batches of 100, 4 in flight (go, python, typescript; two rounds)"
for round in 1 2; do
  "$work/sdkbench" -key "$work/go.key" -server "$url" -n "$n"
  PYTHONPATH=client/python "$py" client/python/examples/bench.py "$work/py.key" "$url" "$n"
  node client/typescript/dist/examples/bench.js "$work/ts.key" "$url" "$n"
done
