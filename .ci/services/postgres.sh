#!/usr/bin/env bash
# PostgreSQL on loopback for the lock backend tests (log/mirror, cmd/agentlog
# failover tests). Debian's cluster "main" of the newest installed version,
# listening on 127.0.0.1:5432, with role agentlog (password agentlog) owning
# database agentlog_test: the tests' default AGENTLOG_TEST_POSTGRES is
#   postgres://agentlog:agentlog@127.0.0.1:5432/agentlog_test?sslmode=disable
# Idempotent: creates and starts only what is missing.
set -euo pipefail
ver=$(ls /usr/lib/postgresql | sort -n | tail -1)
if ! pg_lsclusters -h | awk '{print $1"/"$2}' | grep -qx "$ver/main"; then
	pg_createcluster "$ver" main
fi
if ! pg_ctlcluster "$ver" main status >/dev/null 2>&1; then
	pg_ctlcluster "$ver" main start
fi
for _ in $(seq 1 60); do
	pg_isready -q -h 127.0.0.1 -p 5432 && break
	sleep 0.5
done
pg_isready -h 127.0.0.1 -p 5432
psql_su() { runuser -u postgres -- psql -v ON_ERROR_STOP=1 -tAq "$@"; }
if [ -z "$(psql_su -c "SELECT 1 FROM pg_roles WHERE rolname = 'agentlog'")" ]; then
	psql_su -c "CREATE ROLE agentlog LOGIN PASSWORD 'agentlog'"
fi
if [ -z "$(psql_su -c "SELECT 1 FROM pg_database WHERE datname = 'agentlog_test'")" ]; then
	psql_su -c "CREATE DATABASE agentlog_test OWNER agentlog"
fi
