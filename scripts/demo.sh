#!/usr/bin/env bash
# The main job on the bundled example (examples/churn.csv), in a fresh workspace under examples/demo/:
# ingest → datasets → eda → features (asserting eda's leakage flags) → the AIDE search (offline,
# keyless) → validate the best solution (VERDICT) → report (model card).
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
EDA=$(step eda --dataset "$DS" --target churned)
FEAT=$(step features --dataset "$DS" --target churned --from "$EDA" --recipe standard)
OPT=$(step run --dataset "$FEAT" --target churned --goal "Predict which customers churn." \
  --metric "Maximize ROC-AUC on a held-out split." --steps 10 --model-provider offline)
VAL=$(step validate --dataset "$FEAT" --target churned --model "$OPT")
step report --run "$VAL" >/dev/null
echo >&2
echo "== done. Runs live in $WS/.loom; plain Metaflow reads them with METAFLOW_DATASTORE_SYSROOT_LOCAL=$WS/.loom" >&2
