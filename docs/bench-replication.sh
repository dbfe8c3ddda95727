#!/usr/bin/env bash
# Measures replication to object storage (docs/replication.md) in one run on
# this machine, against the local-only log as the peer: HTTP append
# throughput and ack latency with no mirror, with --mirror in durability
# local and in durability replicated, the mirror's lag under that load, and
# the failover time of TestFailover. Needs the test services running
# (bash .ci/services/versitygw.sh; bash .ci/services/postgres.sh).
#   docs/bench-replication.sh [DURATION]   (default 15s per configuration)
# CLIENTS (default 64) sets the concurrent clients, ROUNDS (default 2) the
# rounds, INTERVAL (default 1s) every server's --checkpoint-interval, and
# SKIP_TAKEOVER=1 leaves out the takeover test.
set -euo pipefail
cd "$(dirname "$0")/.."
dur=${1:-15s}
clients=${CLIENTS:-64}
interval=${INTERVAL:-1s}
work=$(mktemp -d)
server=
trap '[ -n "$server" ] && kill "$server" 2>/dev/null && wait "$server" 2>/dev/null; rm -rf "$work"' EXIT
export AWS_ENDPOINT_URL=${AGENTLOG_TEST_S3:-http://127.0.0.1:7070} AWS_REGION=us-east-1
export AWS_ACCESS_KEY_ID=agentlog-test AWS_SECRET_ACCESS_KEY=agentlog-test-secret

echo "== machine (shared with other engineers' work: compare ratios within this run)"
uname -srm; nproc; grep -m1 'model name' /proc/cpuinfo || true; go version
go build -o "$work/agentlog" ./cmd/agentlog
go build -o "$work/agentlog-dev" ./cmd/agentlog-dev

bucket=bench-$(date +%s)
aws_put() { curl -s -o /dev/null -w '%{http_code}' -H 'x-amz-content-sha256: UNSIGNED-PAYLOAD' --aws-sigv4 "aws:amz:us-east-1:s3" --user "$AWS_ACCESS_KEY_ID:$AWS_SECRET_ACCESS_KEY" "$@"; }
code=$(aws_put -X PUT -H 'x-amz-bucket-object-lock-enabled: true' "$AWS_ENDPOINT_URL/$bucket")
[ "$code" = 200 ] || { echo "creating bucket $bucket: HTTP $code" >&2; exit 1; }
code=$(aws_put -X PUT --data '<VersioningConfiguration xmlns="http://s3.amazonaws.com/doc/2006-03-01/"><Status>Enabled</Status></VersioningConfiguration>' "$AWS_ENDPOINT_URL/$bucket?versioning")
# (a bucket created with Object Lock has versioning on; serve checks both)

port=18190
run() { # name, extra serve flags...
  local name=$1; shift
  local data="$work/$name"
  "$work/agentlog" serve --data "$data" --listen 127.0.0.1:$port --log-level warn --ntp 127.0.0.1:1 \
    --anomaly=false --checkpoint-interval "$interval" --origin "bench.example/$name" "$@" >"$work/$name.out" 2>"$work/$name.err" &
  server=$!
  for _ in $(seq 1 100); do curl -s -o /dev/null "http://127.0.0.1:$port/healthz" && break; sleep 0.1; done
  # Sample the mirror's lag during the load.
  ( maxlag=0; maxent=0
    while kill -0 "$server" 2>/dev/null; do
      h=$(curl -s "http://127.0.0.1:$port/healthz" || true)
      l=$(echo "$h" | sed -n 's/.*"lag_seconds":\([0-9.e+-]*\).*/\1/p'); e=$(echo "$h" | sed -n 's/.*"lag_entries":\([0-9]*\).*/\1/p')
      [ -n "$l" ] && maxlag=$(awk -v a="$maxlag" -v b="$l" 'BEGIN{print (b>a)?b:a}')
      [ -n "$e" ] && [ "$e" -gt "$maxent" ] && maxent=$e
      echo "$maxlag $maxent" > "$work/$name.lag"
      sleep 0.5
    done ) &
  local sampler=$!
  for b in 1 100; do
    echo "== $name, batch $b, $clients clients, checkpoint interval $interval, $dur"
    "$work/agentlog-dev" bench append --server "http://127.0.0.1:$port" --token-file "$data/admin.token" \
      --agents 8 --concurrency "$clients" --batch $b --duration "$dur" | sed 's/^/  /'
  done
  kill "$server"; wait "$server" 2>/dev/null || true; server=
  wait "$sampler" 2>/dev/null || true
  [ -s "$work/$name.lag" ] && read -r lag ent < "$work/$name.lag" && case "$*" in *--mirror*) echo "  mirror lag under this load: at most ${lag}s, ${ent} entries (sampled every 0.5s)";; esac
  port=$((port+1))
}

for round in $(seq 1 "${ROUNDS:-2}"); do
  run "local-only-$round"
  run "mirror-local-$round" --mirror "s3://$bucket/local-$round" --mirror-retention 1d --mirror-lock governance --durability local
  run "mirror-replicated-$round" --mirror "s3://$bucket/replicated-$round" --mirror-retention 1d --mirror-lock governance --durability replicated
done

[ -n "${SKIP_TAKEOVER:-}" ] && exit 0
echo "== takeover (TestFailover: SIGKILL of the active under load, --lease 2s)"
go test -count=1 -run '^TestFailover$' -v ./cmd/agentlog 2>&1 | grep -E 'takeover:|checkpoint versions|^(ok|FAIL|---)' | sed 's/^/  /'
