#!/usr/bin/env bash
# Build the release: one self-contained `loom` per platform, named loom-<version>-<os>-<arch>, with
# SHA256SUMS and install.sh next to them.
#
#   scripts/release.sh [--version X] [--out DIR] [--targets linux-x64,linux-arm64,darwin-x64,darwin-arm64]
#
# Cross-compiling needs the target's Bun runtime. They come from the npm registry (npm's own client,
# integrity-checked: @oven/bun-linux-x64, -linux-aarch64, -darwin-x64, -darwin-aarch64, the same version
# as the Bun in node_modules) and are kept under build/cache/bun-runtimes/, so a second release is offline.
# Windows is not a target: Metaflow does not run natively on Windows; use WSL2 with the linux-x64 binary.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT="$PWD"
[ -x node_modules/.bin/bun ] || { echo "release: node_modules/.bin/bun is missing: run \`npm ci\`" >&2; exit 2; }
BUN="$ROOT/node_modules/.bin/bun"
BUN_VERSION="$("$BUN" --version)"

VERSION=""
OUT=""
TARGETS="linux-x64,linux-arm64,darwin-x64,darwin-arm64"
while [ $# -gt 0 ]; do
  case "$1" in
    --version) VERSION="$2"; shift 2 ;;
    --version=*) VERSION="${1#*=}"; shift ;;
    --out) OUT="$2"; shift 2 ;;
    --out=*) OUT="${1#*=}"; shift ;;
    --targets) TARGETS="$2"; shift 2 ;;
    --targets=*) TARGETS="${1#*=}"; shift ;;
    -h|--help) sed -n '2,11p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "release: unknown option '$1' (see --help)" >&2; exit 2 ;;
  esac
done
[ -n "$VERSION" ] || VERSION="$("$BUN" -e 'console.log(require("./package.json").version)')"
OUT="${OUT:-$ROOT/build/release/$VERSION}"
CACHE="$ROOT/build/cache/bun-runtimes/$BUN_VERSION"

# the Bun runtime for one target, fetched once through npm
runtime() {
  local os="$1" arch="$2" npmarch="$2"
  [ "$arch" = arm64 ] && npmarch=aarch64
  local pkg="@oven/bun-$os-$npmarch" dir="$CACHE/$os-$arch"
  if [ ! -x "$dir/bun" ]; then
    local host="$ROOT/node_modules/$pkg/bin/bun"
    mkdir -p "$dir"
    if [ -x "$host" ] && [ "$("$host" --version 2>/dev/null)" = "$BUN_VERSION" ]; then
      cp "$host" "$dir/bun.tmp"
    else
      echo "› npm pack $pkg@$BUN_VERSION" >&2
      local tmp
      tmp="$(mktemp -d)"
      (cd "$tmp" && npm pack --silent --no-audit --no-fund "$pkg@$BUN_VERSION" >/dev/null) \
        || { echo "release: could not fetch $pkg@$BUN_VERSION from the npm registry (needed once to cross-compile for $os-$arch)" >&2; rm -rf "$tmp"; exit 1; }
      tar -xzf "$tmp"/*.tgz -C "$tmp" package/bin/bun
      mv "$tmp/package/bin/bun" "$dir/bun.tmp"
      rm -rf "$tmp"
    fi
    chmod +x "$dir/bun.tmp" && mv "$dir/bun.tmp" "$dir/bun"
  fi
  echo "$dir/bun"
}

args=()
names=()
IFS=, read -r -a list <<<"$TARGETS"
for t in "${list[@]}"; do
  case "$t" in
    linux-x64|linux-arm64|darwin-x64|darwin-arm64) ;;
    windows-*) echo "release: $t is not a target: Metaflow does not run natively on Windows (use WSL2 with linux-x64)" >&2; exit 2 ;;
    *) echo "release: unknown target '$t' (linux-x64, linux-arm64, darwin-x64, darwin-arm64)" >&2; exit 2 ;;
  esac
  os="${t%-*}"; arch="${t#*-}"
  exe="$(runtime "$os" "$arch")"
  name="loom-$VERSION-$os-$arch"
  names+=("$name")
  args+=(--target "bun-$os-$arch" --outfile "$OUT/$name" --compile-executable-path "$exe")
done

rm -rf "$OUT" && mkdir -p "$OUT"
echo "› build $VERSION for $TARGETS (Bun $BUN_VERSION) into $OUT" >&2
"$BUN" build/build.ts --version "$VERSION" "${args[@]}" >&2
"$BUN" build/build.ts --embed-only >/dev/null 2>&1 # src/generated back to package.json's version
cp install.sh "$OUT/install.sh"
(cd "$OUT" && sha256sum "${names[@]}" >SHA256SUMS)

# the binary for this machine, if built, must say what was built
case "$(uname -s)-$(uname -m)" in
  Linux-x86_64) here=linux-x64 ;;
  Linux-aarch64) here=linux-arm64 ;;
  *) here="" ;;
esac
if [ -n "$here" ] && [ -x "$OUT/loom-$VERSION-$here" ]; then
  got="$("$OUT/loom-$VERSION-$here" --version)"
  case "$got" in
    "loom $VERSION (runtime "*) echo "› $got" >&2 ;;
    *) echo "release: loom-$VERSION-$here --version printed '$got', not version $VERSION" >&2; exit 1 ;;
  esac
fi
echo "› wrote $OUT:" >&2
(cd "$OUT" && ls -l "${names[@]}" SHA256SUMS install.sh | awk '{printf "    %-36s %6.1f MB\n", $9, $5/1e6}') >&2
echo "$OUT"
