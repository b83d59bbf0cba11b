#!/bin/sh
# Install loom: pick the binary for this machine from a release (loom-<version>-<os>-<arch> next to a
# SHA256SUMS file), verify its checksum, put it on the PATH and run `loom doctor`.
#
#   sh install.sh [--base URL|DIR] [--version X] [--dir BINDIR] [--no-doctor]
#
#   --base     where the release lives: a directory, file:///dir, or an http(s):// URL
#              (default: $LOOM_BASE_URL, else the directory this script is in)
#   --version  which version (default: the newest in SHA256SUMS)
#   --dir      where to put `loom` (default: $LOOM_INSTALL_DIR, else ~/.local/bin)
#   LOOM_INSTALL_OS / LOOM_INSTALL_ARCH override the detected platform (linux|darwin, x64|arm64).
# A checksum mismatch is refused: nothing is installed and the exit status is 1.
set -eu

die() { echo "install.sh: $1" >&2; exit "${2:-1}"; }

BASE="${LOOM_BASE_URL:-}"
VERSION=""
BINDIR="${LOOM_INSTALL_DIR:-${HOME:-}/.local/bin}"
DOCTOR=1
while [ $# -gt 0 ]; do
  case "$1" in
    --base) [ $# -ge 2 ] || die "--base needs a URL or directory" 2; BASE="$2"; shift 2 ;;
    --base=*) BASE="${1#*=}"; shift ;;
    --version) [ $# -ge 2 ] || die "--version needs a value" 2; VERSION="$2"; shift 2 ;;
    --version=*) VERSION="${1#*=}"; shift ;;
    --dir) [ $# -ge 2 ] || die "--dir needs a directory" 2; BINDIR="$2"; shift 2 ;;
    --dir=*) BINDIR="${1#*=}"; shift ;;
    --no-doctor) DOCTOR=0; shift ;;
    -h|--help) sed -n '2,13p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) die "unknown option '$1' (see --help)" 2 ;;
  esac
done
if [ -z "$BASE" ]; then
  here=$(cd "$(dirname "$0")" 2>/dev/null && pwd) || here=""
  [ -n "$here" ] && [ -f "$here/SHA256SUMS" ] || die "no release given: pass --base URL (or set LOOM_BASE_URL) to the directory holding SHA256SUMS" 2
  BASE="$here"
fi
BASE="${BASE%/}"

# platform
os="${LOOM_INSTALL_OS:-}"
if [ -z "$os" ]; then
  case "$(uname -s)" in
    Linux) os=linux ;;
    Darwin) os=darwin ;;
    MINGW*|MSYS*|CYGWIN*) die "Windows is not supported natively (Metaflow needs a POSIX system): install WSL2 and run this script inside it" ;;
    *) die "unsupported operating system '$(uname -s)' (linux and darwin are built)" ;;
  esac
fi
arch="${LOOM_INSTALL_ARCH:-}"
if [ -z "$arch" ]; then
  case "$(uname -m)" in
    x86_64|amd64) arch=x64 ;;
    aarch64|arm64) arch=arm64 ;;
    *) die "unsupported CPU '$(uname -m)' (x64 and arm64 are built)" ;;
  esac
  # an x64 shell under Rosetta on Apple silicon: take the native binary
  if [ "$os" = darwin ] && [ "$arch" = x64 ] && [ "$(sysctl -n sysctl.proc_translated 2>/dev/null || echo 0)" = 1 ]; then arch=arm64; fi
fi

# fetch URL-or-path to a local file
fetch() {
  case "$1" in
    http://*|https://*)
      if command -v curl >/dev/null 2>&1; then curl -fsSL --retry 2 -o "$2" "$1"
      elif command -v wget >/dev/null 2>&1; then wget -q -O "$2" "$1"
      else die "neither curl nor wget is installed: install one, or download the release and pass --base DIR"; fi ;;
    file://*) cp "${1#file://}" "$2" ;;
    *) cp "$1" "$2" ;;
  esac
}
sha256() {
  if command -v sha256sum >/dev/null 2>&1; then sha256sum "$1" | cut -d' ' -f1
  elif command -v shasum >/dev/null 2>&1; then shasum -a 256 "$1" | cut -d' ' -f1
  elif command -v openssl >/dev/null 2>&1; then openssl dgst -sha256 -r "$1" | cut -d' ' -f1
  else die "no sha256sum, shasum or openssl to verify the download with"; fi
}

TMP=$(mktemp -d "${TMPDIR:-/tmp}/loom-install.XXXXXX")
trap 'rm -rf "$TMP"' EXIT INT TERM
fetch "$BASE/SHA256SUMS" "$TMP/SHA256SUMS" || die "could not read $BASE/SHA256SUMS: check --base"

suffix="-$os-$arch"
if [ -z "$VERSION" ]; then
  VERSION=$(awk '{print $2}' "$TMP/SHA256SUMS" | sed 's/^\*//' | grep -E "^loom-[0-9][^ ]*$suffix\$" \
    | sed -e 's/^loom-//' -e "s/$suffix\$//" | sort -t. -k1,1n -k2,2n -k3,3n | tail -1) || true
  [ -n "$VERSION" ] || die "$BASE/SHA256SUMS lists no loom build for $os-$arch"
fi
name="loom-$VERSION$suffix"
want=$(awk -v n="$name" '{f=$2; sub(/^\*/, "", f); if (f == n) print $1}' "$TMP/SHA256SUMS" | head -1)
[ -n "$want" ] || die "$BASE/SHA256SUMS lists no $name (this machine is $os-$arch)"

echo "› downloading $name from $BASE" >&2
fetch "$BASE/$name" "$TMP/loom" || die "could not download $BASE/$name"
got=$(sha256 "$TMP/loom")
if [ "$got" != "$want" ]; then
  die "checksum mismatch for $name: expected $want, got $got; the download is corrupt or was tampered with, nothing was installed"
fi
echo "› sha256 verified ($want)" >&2

mkdir -p "$BINDIR" || die "cannot create $BINDIR: choose another with --dir"
chmod 755 "$TMP/loom"
mv "$TMP/loom" "$BINDIR/loom.new.$$" && mv -f "$BINDIR/loom.new.$$" "$BINDIR/loom" || die "cannot write $BINDIR/loom: choose another with --dir"
echo "› installed $BINDIR/loom ($("$BINDIR/loom" --version 2>/dev/null || echo "does not start on this machine"))" >&2

case ":${PATH:-}:" in
  *":$BINDIR:"*) ;;
  *) echo "› $BINDIR is not on your PATH: add  export PATH=\"$BINDIR:\$PATH\"  to your shell profile" >&2 ;;
esac

if [ "$DOCTOR" = 1 ]; then
  echo "› loom doctor" >&2
  "$BINDIR/loom" doctor || echo "› next: \`loom setup\` makes Loom's Python environment (or \`loom setup --wheelhouse DIR\` offline)" >&2
fi
