#!/usr/bin/env bash
# Start a throwaway PostgreSQL server on 127.0.0.1 for the ingest tests (Debian's postgresql package).
# Prints the environment to export: LOOM_TEST_PG_URI, LOOM_TEST_PG_PASSWORD, and LOOM_TEST_PG_STOP (the command
# that stops the server and removes its data directory; test/run-all.sh runs it on exit, pass or fail).
set -euo pipefail
PORT="${LOOM_TEST_PG_PORT:-54329}"
while (exec 3<>/dev/tcp/127.0.0.1/$PORT) 2>/dev/null; do PORT=$((PORT + 1)); done  # first free port
BIN="$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -1)"
[ -x "$BIN/initdb" ] || { echo "postgresql is not installed" >&2; exit 1; }
DATA="$(mktemp -d /tmp/loom-pg.XXXXXX)"
chown postgres "$DATA"
su postgres -s /bin/bash -c "'$BIN/initdb' -D '$DATA' -A trust -U postgres >/dev/null"
su postgres -s /bin/bash -c "'$BIN/pg_ctl' -D '$DATA' -o '-p $PORT -k /tmp -c listen_addresses=127.0.0.1' -l '$DATA/log' -w start >/dev/null"
PW="loom-test-pw"
su postgres -s /bin/bash -c "psql -h /tmp -p $PORT -U postgres -q -c \"CREATE ROLE analyst LOGIN PASSWORD '$PW'\" -c 'CREATE DATABASE warehouse OWNER analyst'" >/dev/null
# password auth for TCP connections from now on
sed -i 's/^host\(.*\)trust$/host\1scram-sha-256/' "$DATA/pg_hba.conf"
su postgres -s /bin/bash -c "'$BIN/pg_ctl' -D '$DATA' reload >/dev/null"
STOP="su postgres -s /bin/bash -c \"'$BIN/pg_ctl' -D '$DATA' -m immediate stop\" >/dev/null 2>&1; rm -rf '$DATA'"
printf 'export LOOM_TEST_PG_URI=%q LOOM_TEST_PG_PASSWORD=%q LOOM_TEST_PG_STOP=%q\n' \
  "postgresql://analyst@127.0.0.1:$PORT/warehouse" "$PW" "$STOP"
