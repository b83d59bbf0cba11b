#!/usr/bin/env bash
# Set up from nothing and run every suite: bun unit tests, integration tests that drive build/loom
# against real Metaflow runs, and pytest for py/. Ends with one line: "N passed, N failed".
set -uo pipefail
cd "$(dirname "$0")/.."
ROOT="$PWD"
export LOOM_HOME="${LOOM_HOME:-$ROOT/.loom-home}"
bash scripts/bootstrap.sh || { echo "0 passed, 1 failed"; exit 1; }
PY="$LOOM_HOME/venv/bin/python"
"$PY" -m pip install --disable-pip-version-check -q -r py/requirements-test.txt || { echo "0 passed, 1 failed"; exit 1; }

# a real PostgreSQL server for the ingest tests, where Debian's package is installed
if [ -z "${LOOM_TEST_PG_URI:-}" ] && ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 && [ "$(id -u)" = 0 ]; then
  eval "$(bash test/pg-start.sh)" || echo "(could not start PostgreSQL; its tests will be skipped)" >&2
fi
# every server this script started stops when it ends, whether the suites passed, failed or were interrupted
cleanup() { [ -n "${LOOM_TEST_PG_STOP:-}" ] && eval "$LOOM_TEST_PG_STOP"; return 0; }
trap cleanup EXIT
trap 'exit 130' INT TERM

LOG="$(mktemp -d)"
passed=0; failed=0; rc=0

echo "== bun test (unit + integration)" >&2
node_modules/.bin/bun test --timeout 300000 test/ 2>&1 | tee "$LOG/bun.txt"
[ "${PIPESTATUS[0]}" = 0 ] || rc=1
p=$(grep -E '^ *[0-9]+ pass$' "$LOG/bun.txt" | tail -1 | tr -dc 0-9); f=$(grep -E '^ *[0-9]+ fail$' "$LOG/bun.txt" | tail -1 | tr -dc 0-9)
passed=$((passed + ${p:-0})); failed=$((failed + ${f:-0}))

echo "== pytest (py/)" >&2
(cd py && "$PY" -m pytest -q -p no:cacheprovider tests 2>&1) | tee "$LOG/py.txt"
prc=${PIPESTATUS[0]}
[ "$prc" = 0 ] || [ "$prc" = 5 ] || rc=1
line=$(grep -E '[0-9]+ (passed|failed)' "$LOG/py.txt" | tail -1)
p=$(echo "$line" | grep -oE '[0-9]+ passed' | tr -dc 0-9); f=$(echo "$line" | grep -oE '[0-9]+ (failed|error|errors)' | tr -dc 0-9 | head -c 6)
passed=$((passed + ${p:-0})); failed=$((failed + ${f:-0}))

echo "== examples eval bed (examples/*/assertions.json through build/loom)" >&2
node_modules/.bin/bun test/evalbed.ts 2>&1 | tee "$LOG/evalbed.txt"
[ "${PIPESTATUS[0]}" = 0 ] || rc=1
line=$(grep -E '^evalbed: [0-9]+ passed, [0-9]+ failed' "$LOG/evalbed.txt" | tail -1)
p=$(echo "$line" | grep -oE '[0-9]+ passed' | tr -dc 0-9); f=$(echo "$line" | grep -oE '[0-9]+ failed' | tr -dc 0-9)
[ -n "$line" ] || f=1
passed=$((passed + ${p:-0})); failed=$((failed + ${f:-0}))

[ "$failed" = 0 ] || rc=1
echo "$passed passed, $failed failed"
exit $rc
