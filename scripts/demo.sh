#!/usr/bin/env bash
# The main job on the bundled example (examples/churn.csv), in a fresh workspace under examples/demo/.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/bootstrap.sh
LOOM="$PWD/build/loom"
WS="${LOOM_DEMO_DIR:-$PWD/examples/demo}"
rm -rf "$WS" && mkdir -p "$WS" && cd "$WS"
pathspec() { sed -n 's/.*"pathspec":"\([^"]*\)".*/\1/p'; }

echo "== ingest the bundled example" >&2
DS=$("$LOOM" ingest --source ../churn.csv --name churn --json | pathspec)
"$LOOM" datasets
echo "== done: data object $DS in $WS/.loom (plain Metaflow: METAFLOW_DATASTORE_SYSROOT_LOCAL=$WS/.loom)" >&2
