#!/usr/bin/env bash
# Packs the two npm packages: `amplitude-mock` (the helper) and `@amplitude-mock/linux-x64`
# (the binary; os/cpu fields, an optional dependency of the helper: the esbuild pattern).
#
#   packaging/npm/build.sh [BINARY] [OUT_DIR]
#
# BINARY   the amplitude-mock binary for Linux x64 (default target/release/amplitude-mock;
#          `cargo build --release -p amplitude-mock` builds it); copied stripped of its debug
#          info into the platform package
# OUT_DIR  where the two .tgz go (default packaging/npm/dist); prints their paths
#
# Needs node/npm. The package folders of the repository are not modified: they are copied
# into OUT_DIR/stage first.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo="$(cd "$here/../.." && pwd)"
binary="${1:-$repo/target/release/amplitude-mock}"
out="${2:-$here/dist}"

if [[ ! -x "$binary" ]]; then
    echo "no executable $binary: build it with cargo build --release -p amplitude-mock" >&2
    exit 1
fi
mkdir -p "$out"
out="$(cd "$out" && pwd)"
stage="$out/stage"
rm -rf "$stage"
mkdir -p "$stage"
cp -R "$here/amplitude-mock" "$stage/amplitude-mock"
cp -R "$here/amplitude-mock-linux-x64" "$stage/amplitude-mock-linux-x64"
mkdir -p "$stage/amplitude-mock-linux-x64/bin"
if command -v strip >/dev/null; then
    strip --strip-debug -o "$stage/amplitude-mock-linux-x64/bin/amplitude-mock" "$binary"
else
    cp "$binary" "$stage/amplitude-mock-linux-x64/bin/amplitude-mock"
fi
chmod 755 "$stage/amplitude-mock-linux-x64/bin/amplitude-mock"

for pkg in amplitude-mock-linux-x64 amplitude-mock; do
    (cd "$stage/$pkg" && npm pack --silent --pack-destination "$out" >/dev/null)
done
rm -rf "$stage"
ls "$out"/amplitude-mock-*.tgz
