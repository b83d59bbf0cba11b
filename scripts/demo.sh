#!/usr/bin/env bash
# The main job on the bundled example (examples/churn.csv), in a fresh workspace under examples/demo/:
# ingest → datasets → `loom pipeline` (eda → features asserting eda's leakage flags → the AIDE search,
# offline and keyless → validate the best solution, the VERDICT → report, the model card) → PipelineFlow/N.
set -euo pipefail
cd "$(dirname "$0")/.."
# LOOM_BIN: run the main job with an installed binary instead (no npm, no build; `loom setup` done)
[ -n "${LOOM_BIN:-}" ] || bash scripts/bootstrap.sh
LOOM="${LOOM_BIN:-$PWD/build/loom}"
EXAMPLE="$PWD/examples/churn.csv"
WS="${LOOM_DEMO_DIR:-$PWD/examples/demo}"
rm -rf "$WS" && mkdir -p "$WS" && cd "$WS"

# run a verb with its human output on the terminal; print the run it made
step() {
  echo >&2
  echo "\$ loom $*" >&2
  local out
  out=$("$LOOM" "$@") || { rc=$?; echo "$out" >&2; [ "$rc" = 1 ] || exit "$rc"; }
  echo "$out" >&2
  echo "$out" | sed -n 's/^run *: //p' | head -1
}

DS=$(step ingest --source "$EXAMPLE" --name churn)
step datasets >/dev/null
# the whole lifecycle as one gated run: eda → features (dropping eda's leakage flags) → the AIDE search
# (offline, keyless; the rows validate seals are left out) → validate the best solution (VERDICT) → report
PIPE=$(step pipeline --dataset "$DS" --target churned --goal "Predict which customers churn." \
  --metric "Maximize ROC-AUC on a held-out split." --steps 10 --recipe standard --model-provider offline)
echo >&2
echo "== done: $PIPE. Runs live in $WS/.loom; plain Metaflow reads them with METAFLOW_DATASTORE_SYSROOT_LOCAL=$WS/.loom" >&2
