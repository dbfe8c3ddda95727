#!/usr/bin/env bash
# Runs agentlog's benchmarks next to the peer (Tessera's POSIX driver) on
# this machine, in one run, and prints the figures for docs/benchmarks.md.
#   docs/bench.sh [PEER_DIR]   (default ../shared/bench/tessera-posix)
#   BASE=<git rev> docs/bench.sh   also runs the same benchmarks of that
#   revision (built in a temporary worktree), to state changes as ratios.
# Needs Go; uses wrk for a second HTTP load generator if it is installed.
# The single-entry HTTP comparison with Tessera's HTTP server (issue 11:
# ratio >= 2.0 and p99 < 25 ms) runs first and ends with a summary line,
# beside the same load generator against a server that does nothing
# (agentlog-dev bench null: the most any server gets on this machine);
# on an idle 2-core machine the whole script takes about 3 to 4 minutes
# (N=1000000 N_ROUNDS=2 for the longer library runs of earlier reports).
set -euo pipefail
cd "$(dirname "$0")/.."
peer=${1:-../shared/bench/tessera-posix}
n=${N:-200000}
rounds=${N_ROUNDS:-1}
start_time=$(date +%s)
work=$(mktemp -d)
server=
peerpid=
nullpid=
# Stop the server and wait for it before deleting its data directory: a
# server whose directory vanishes while it shuts down cannot flush and
# never exits.
trap '[ -n "$nullpid" ] && kill "$nullpid" 2>/dev/null; [ -n "$peerpid" ] && kill "$peerpid" 2>/dev/null; [ -n "$server" ] && kill "$server" 2>/dev/null && wait "$server" 2>/dev/null; rm -rf "$work"' EXIT

echo "== machine"
uname -srm; nproc; grep -m1 'model name' /proc/cpuinfo || true; go version

go build -o "$work/agentlog" ./cmd/agentlog
go build -o "$work/agentlog-dev" ./cmd/agentlog-dev
httppeer=${HTTP_PEER:-../shared/bench/tessera-http}
if [ -x "$httppeer/run.sh" ]; then
  echo "== HTTP single-entry append, 256 keep-alive clients, 512 B: ours then Tessera's POSIX conformance server (POST /add), twice, same load generator"
  data="$work/data-single"
  "$work/agentlog" serve --data "$data" --listen 127.0.0.1:18123 --log-level warn --ntp 127.0.0.1:1 >"$work/serve-single.out" 2>&1 &
  server=$!
  for _ in $(seq 100); do [ -f "$data/admin.token" ] && curl -sf http://127.0.0.1:18123/healthz >/dev/null 2>&1 && break; sleep 0.1; done
  "$httppeer/run.sh" "$work/tessera-http" 18200 >"$work/tessera-http.out" 2>&1 &
  peerpid=$!
  for _ in $(seq 3000); do curl -s -o /dev/null http://127.0.0.1:18200/ 2>/dev/null && break; sleep 0.1; done
  # CPU time (user + system) of each server from /proc/PID/stat, and of
  # the load generator from the shell's children total (times), over each
  # run: on a machine whose cores the server and the load generator share,
  # cores / (server + load generator CPU per request) is the most requests
  # per second any server of that CPU cost can answer.
  hz=$(getconf CLK_TCK)
  proccpu() { awk -v hz="$hz" '{ printf "%.6f", ($14 + $15) / hz }' "/proc/$1/stat"; }
  # times must run in this shell, not in a $(...) subshell, to count its children.
  childcpu() { tail -n 1 "$1" | awk '{ gsub(/[ms]/, " "); print $1 * 60 + $2 + $3 * 60 + $4 }'; }
  measured() { # measured NAME PID: runs the rest of the arguments, appends server_cpu_s and client_cpu_s to $work/NAME.txt
    local name=$1 pid=$2 s0
    shift 2
    s0=$(proccpu "$pid"); times >"$work/times0"
    "$@" | tee "$work/$name.txt"
    times >"$work/times1"
    echo "  server_cpu_s=$(awk -v a="$s0" -v b="$(proccpu "$pid")" 'BEGIN { print b - a }') client_cpu_s=$(awk -v a="$(childcpu "$work/times0")" -v b="$(childcpu "$work/times1")" 'BEGIN { print b - a }')" | tee -a "$work/$name.txt"
  }
  for round in 1 2; do
    measured "ours-$round" "$server" "$work/agentlog-dev" bench append --server http://127.0.0.1:18123 --token-file "$data/admin.token" --concurrency 256 --batch 1 --duration 10s --provable=false
    measured "peer-$round" "$peerpid" "$work/agentlog-dev" bench peer --url http://127.0.0.1:18200/add --concurrency 256 --size 512 --duration 10s
  done
  kill "$peerpid" 2>/dev/null; wait "$peerpid" 2>/dev/null || true
  peerpid=
  kill "$server" 2>/dev/null; wait "$server" 2>/dev/null || true
  server=
  echo "== the same load generator against a server that does nothing (agentlog-dev bench null: reads the body, answers 1)"
  "$work/agentlog-dev" bench null --listen 127.0.0.1:18201 >"$work/null.out" 2>&1 &
  nullpid=$!
  for _ in $(seq 100); do grep -q serving "$work/null.out" 2>/dev/null && break; sleep 0.1; done
  measured "null" "$nullpid" "$work/agentlog-dev" bench peer --url http://127.0.0.1:18201/add --concurrency 256 --size 512 --duration 10s
  kill "$nullpid" 2>/dev/null; wait "$nullpid" 2>/dev/null || true
  nullpid=
  echo "-- summary (issue 11 target: ratio >= 2.00 and our p99 < 25ms, same run)"
  field() { sed -n "s/.*$1=\\([0-9.]*\\).*/\\1/p" "$2" | head -n 1; }
  for round in 1 2; do
    ours=$(field requests_per_s "$work/ours-$round.txt")
    theirs=$(field requests_per_s "$work/peer-$round.txt")
    op99=$(sed -n 's/.*latency p50=[^ ]* p99=\([^ ]*\).*/\1/p' "$work/ours-$round.txt")
    pp99=$(sed -n 's/.*latency p50=[^ ]* p99=\([^ ]*\).*/\1/p' "$work/peer-$round.txt")
    awk -v r="$round" -v o="$ours" -v p="$theirs" -v op="$op99" -v pp="$pp99" 'BEGIN { printf "round %s: agentlog %s req/s (p99 %s), Tessera %s req/s (p99 %s): ratio %.2f\n", r, o, op, p, pp, (p > 0 ? o / p : 0) }'
    for who in ours peer; do
      f="$work/$who-$round.txt"
      awk -v who="$who" -v n="$(field requests "$f")" -v s="$(field server_cpu_s "$f")" -v c="$(field client_cpu_s "$f")" -v cores="$(nproc)" 'BEGIN {
        name = (who == "ours" ? "agentlog" : "Tessera")
        if (n > 0) printf "  %s: server CPU %.1f us/request, load generator %.1f us/request: %d cores answer at most %.0f req/s at that cost\n", name, s * 1e6 / n, c * 1e6 / n, cores, cores * n / (s + c) }'
    done
  done
  f="$work/null.txt"
  best=$(for round in 1 2; do field requests_per_s "$work/peer-$round.txt"; done | sort -n | tail -n 1)
  awk -v r="$(field requests_per_s "$f")" -v n="$(field requests "$f")" -v s="$(field server_cpu_s "$f")" -v c="$(field client_cpu_s "$f")" -v best="$best" 'BEGIN {
    if (n > 0) printf "do-nothing server: %s req/s (server CPU %.1f us/request, load generator %.1f us/request); 2.0x Tessera'"'"'s best round, %.0f req/s, is %s what it answered\n", r, s * 1e6 / n, c * 1e6 / n, 2 * best, (2 * best > r ? "more than" : "less than") }'
fi

go test -c -o "$work/log.test" ./log
if [ -n "${BASE:-}" ]; then
  git worktree add -q --detach "$work/base" "$BASE"
  (cd "$work/base" && go build -o "$work/agentlog-base" ./cmd/agentlog && go test -c -o "$work/log-base.test" ./log)
  # Since the move of the load generators out of the production binary,
  # the base's bench client is its agentlog-dev; before, agentlog's.
  basebench="$work/agentlog-base"
  if [ -d "$work/base/cmd/agentlog-dev" ]; then
    (cd "$work/base" && go build -o "$work/agentlog-dev-base" ./cmd/agentlog-dev)
    basebench="$work/agentlog-dev-base"
  fi
  git worktree remove --force "$work/base"
fi
if [ -d "$peer" ]; then (cd "$peer" && go build -o "$work/tessera-posix" .); fi

echo "== library append, $n x 512 B, c=4096 (ours, peer; $rounds round(s))"
for round in $(seq "$rounds"); do
  "$work/log.test" -test.run '^$' -test.bench 'BenchmarkAppend$' -test.benchtime "${n}x" | grep Benchmark
  if [ -x "$work/log-base.test" ]; then echo -n "base $BASE: "; "$work/log-base.test" -test.run '^$' -test.bench 'BenchmarkAppend$' -test.benchtime "${n}x" | grep Benchmark; fi
  if [ -x "$work/tessera-posix" ]; then "$work/tessera-posix" -n "$n" -size 512 -c 4096 2>/dev/null; fi
done

if [ -x "$work/agentlog-base" ]; then
  echo "== HTTP append, base $BASE (its own bench client)"
  "$work/agentlog-base" serve --data "$work/base-data" --listen 127.0.0.1:18124 --log-level warn --ntp 127.0.0.1:1 >"$work/base.out" 2>&1 &
  server=$!
  for _ in $(seq 100); do [ -f "$work/base-data/admin.token" ] && curl -sf http://127.0.0.1:18124/healthz >/dev/null 2>&1 && break; sleep 0.1; done
  "$basebench" bench append --server http://127.0.0.1:18124 --token-file "$work/base-data/admin.token" --concurrency 256 --batch 1 --duration 10s
  "$basebench" bench append --server http://127.0.0.1:18124 --token-file "$work/base-data/admin.token" --concurrency 16 --batch 256 --duration 10s
  kill "$server"; wait "$server" 2>/dev/null || true
fi
echo "== HTTP append (agentlog-dev bench append; server and client share the machine)"
data="$work/data"
"$work/agentlog" serve --data "$data" --listen 127.0.0.1:18123 --log-level warn --ntp 127.0.0.1:1 >"$work/serve.out" 2>&1 &
server=$!
for _ in $(seq 100); do [ -f "$data/admin.token" ] && curl -sf http://127.0.0.1:18123/healthz >/dev/null 2>&1 && break; sleep 0.1; done
"$work/agentlog-dev" bench append --server http://127.0.0.1:18123 --token-file "$data/admin.token" --concurrency 256 --batch 1 --duration 10s
"$work/agentlog-dev" bench append --server http://127.0.0.1:18123 --token-file "$data/admin.token" --concurrency 16 --batch 256 --duration 10s
if command -v wrk >/dev/null; then
  echo "== HTTP single-entry append with wrk (1 thread, 256 connections, one agent session)"
  "$work/agentlog" agent register --server http://127.0.0.1:18123 --admin-token-file "$data/admin.token" --id wrk-bot --key-out "$work/wrk-bot.key" >/dev/null
  tok=$("$work/agentlog" session open --server http://127.0.0.1:18123 --agent-key "$work/wrk-bot.key" --task bench --ttl 1h | tail -n 1)
  pad=$(head -c 448 /dev/zero | tr '\0' x)
  cat >"$work/post.lua" <<LUA
wrk.method = "POST"
wrk.body = '{"entries":[{"action":"bench.append","tool":"bench","resource":"bench/0","outcome":"success","attributes":{"pad":"$pad"}}]}'
wrk.headers["Content-Type"] = "application/json"
wrk.headers["Authorization"] = "Bearer $tok"
LUA
  wrk -t1 -c256 -d10s --latency -s "$work/post.lua" http://127.0.0.1:18123/v1/entries
fi

echo "== HTTP batched append, every agent scoped: anomaly rules on, then off (each server fresh)"
scope='actions=bench.*;tools=bench;resources=bench/*;hours=00:00-23:59;weekdays=mon-sun;rate=10000000/s'
for rules in true false; do
  kill "$server" 2>/dev/null && wait "$server" 2>/dev/null || true
  data="$work/data-rules-$rules"
  "$work/agentlog" serve --data "$data" --listen 127.0.0.1:18123 --log-level warn --ntp 127.0.0.1:1 --anomaly="$rules" >"$work/serve-$rules.out" 2>&1 &
  server=$!
  for _ in $(seq 100); do [ -f "$data/admin.token" ] && curl -sf http://127.0.0.1:18123/healthz >/dev/null 2>&1 && break; sleep 0.1; done
  echo "-- anomaly=$rules"
  "$work/agentlog-dev" bench append --server http://127.0.0.1:18123 --token-file "$data/admin.token" --concurrency 16 --batch 256 --duration 10s --provable=false --scope "$scope"
done
echo "== done in $(( $(date +%s) - start_time )) s"
