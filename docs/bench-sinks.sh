#!/usr/bin/env bash
# Appends per second with a sink that is down against no sink, in one
# run, alternating, and how the sink catches up once its destination is
# back; prints the figures for docs/benchmarks.md.
#   docs/bench-sinks.sh            (ROUNDS=2 DURATION=10s by default)
# The down sink is a webhook to a loopback port nothing listens on; once
# a receiver is up, appends are measured again while the sink catches up;
# a working file sink is measured too. Needs Go, curl and python3 (the
# webhook receiver brought up for the catch-up).
set -euo pipefail
cd "$(dirname "$0")/.."
rounds=${ROUNDS:-2}
dur=${DURATION:-10s}
work=$(mktemp -d)
server=
receiver=
trap '[ -n "$server" ] && kill "$server" 2>/dev/null && wait "$server" 2>/dev/null; [ -n "$receiver" ] && kill "$receiver" 2>/dev/null; rm -rf "$work"' EXIT

echo "== machine"
uname -srm; nproc; grep -m1 'model name' /proc/cpuinfo || true; go version; uptime
go build -o "$work/agentlog" ./cmd/agentlog
go build -o "$work/agentlog-dev" ./cmd/agentlog-dev
port=18331 # the webhook's port: closed while the sink is down
cat >"$work/down.json" <<EOF
{"sinks": [{"name": "hook", "type": "webhook", "url": "http://127.0.0.1:$port/ingest", "batch_events": 1000}]}
EOF
cat >"$work/file.json" <<EOF
{"sinks": [{"name": "archive", "type": "file", "path": "$work/events.jsonl", "batch_events": 1000}]}
EOF

health() { curl -sf http://127.0.0.1:18330/healthz; }
start() { # start DATA [--sinks FILE]
  "$work/agentlog" serve --data "$1" --listen 127.0.0.1:18330 --log-level warn --ntp 127.0.0.1:1 "${@:2}" >"$work/serve.out" 2>&1 &
  server=$!
  for _ in $(seq 300); do [ -f "$1/admin.token" ] && health >/dev/null 2>&1 && return; sleep 0.1; done
  echo "server did not start"; cat "$work/serve.out"; exit 1
}
stop() { kill "$server"; wait "$server" 2>/dev/null || true; server=; }
bench() { "$work/agentlog-dev" bench append --server http://127.0.0.1:18330 --token-file "$1/admin.token" --concurrency 16 --batch 256 --duration "$dur" --provable=false | grep entries_per_s; }

for round in $(seq "$rounds"); do
  modes="none down file"
  if [ $((round % 2)) = 0 ]; then modes="file down none"; fi
  for mode in $modes; do
    # The previous run's files removed and the page cache written back
    # first: its writeback would slow the next run's fsyncs.
    rm -rf "$work/data" "$work/events.jsonl"*
    sync
    case $mode in
      none) start "$work/data" ;;
      down) start "$work/data" --sinks "$work/down.json" ;;
      file) start "$work/data" --sinks "$work/file.json" ;;
    esac
    echo -n "round $round, sink $mode: "; bench "$work/data"
    if [ "$mode" = down ]; then
      health | python3 -c 'import json,sys; h=json.load(sys.stdin); s=h["sinks"][0]; print("  down: tree size %d, sink next %d, lag %d, failures %d" % (h["tree_size"], s["next_index"], s["lag_entries"], s["consecutive_failures"]))'
      # Bring the destination up and time the catch-up (the sink retries
      # with backoff: up to a minute after a long outage).
      python3 -c '
import http.server, sys
class H(http.server.BaseHTTPRequestHandler):
    def do_POST(self):
        self.rfile.read(int(self.headers["Content-Length"]))
        self.send_response(200); self.end_headers()
    def log_message(self, *a): pass
http.server.ThreadingHTTPServer(("127.0.0.1", int(sys.argv[1])), H).serve_forever()' "$port" &
      receiver=$!
      t0=$(date +%s.%N)
      # Appends while the sink catches up: from its first delivery on.
      until health | python3 -c 'import json,sys; sys.exit(0 if json.load(sys.stdin)["sinks"][0]["next_index"] > 0 else 1)'; do sleep 0.1; done
      echo -n "round $round, sink catching up: "; bench "$work/data"
      health | python3 -c 'import json,sys; h=json.load(sys.stdin); s=h["sinks"][0]; print("  after it: tree size %d, sink next %d, lag %d" % (h["tree_size"], s["next_index"], s["lag_entries"]))'
      until health | python3 -c 'import json,sys; h=json.load(sys.stdin); sys.exit(0 if h["sinks"][0]["lag_entries"] == 0 else 1)'; do sleep 0.2; done
      t1=$(date +%s.%N)
      n=$(health | python3 -c 'import json,sys; print(json.load(sys.stdin)["sinks"][0]["next_index"])')
      echo "  caught up: $n entries delivered $(python3 -c "print(round($t1-$t0, 1))") s after the receiver started (including the wait for the sink's next retry: $(python3 -c "print(round($n/($t1-$t0)))") entries/s)"
      kill "$receiver"; wait "$receiver" 2>/dev/null || true; receiver=
    fi
    stop
  done
done
uptime
