#!/usr/bin/env bash
# Install everything from nothing: npm packages (Bun included, from the npm registry), build
# build/loom, and provision Loom's Python environment (`loom setup`) under LOOM_HOME.
set -euo pipefail
cd "$(dirname "$0")/.."
if [ ! -x node_modules/.bin/bun ] || [ package-lock.json -nt node_modules/.package-lock.json ]; then
  echo "› npm ci" >&2
  npm ci --no-audit --no-fund --loglevel=error >&2
fi
echo "› build build/loom" >&2
node_modules/.bin/bun build/build.ts >&2
echo "› loom setup (LOOM_HOME=${LOOM_HOME:-default})" >&2
build/loom setup >&2
