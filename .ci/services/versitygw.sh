#!/usr/bin/env bash
# An S3-compatible server with versioning and Object Lock for the mirror
# tests (log/mirror, cmd/agentlog replication and failover tests): versitygw
# (Apache 2.0) with its POSIX backend, installed from the Go module proxy,
# listening on 127.0.0.1:7070 with root credentials agentlog-test /
# agentlog-test-secret. The tests' default AGENTLOG_TEST_S3 is
# http://127.0.0.1:7070. Idempotent: installs and starts only what is missing.
set -euo pipefail
version=v1.8.0
state=${AGENTLOG_CI_STATE:-/var/lib/agentlog-ci}
bin=$state/bin/versitygw-$version
addr=127.0.0.1:7070
up() { curl -s -o /dev/null --max-time 2 "http://$addr/"; }
if up; then exit 0; fi
if [ ! -x "$bin" ]; then
	mkdir -p "$state/bin"
	GOBIN="$state/gobin" go install "github.com/versity/versitygw/cmd/versitygw@$version"
	mv "$state/gobin/versitygw" "$bin"
fi
root=$state/versitygw
mkdir -p "$root/buckets" "$root/versions"
ROOT_ACCESS_KEY=agentlog-test ROOT_SECRET_KEY=agentlog-test-secret \
	setsid nohup "$bin" --port "$addr" --quiet posix --versioning-dir "$root/versions" "$root/buckets" \
	>"$root/versitygw.log" 2>&1 </dev/null &
for _ in $(seq 1 100); do
	up && exit 0
	sleep 0.2
done
echo "versitygw did not start; its log:" >&2
cat "$root/versitygw.log" >&2
exit 1
