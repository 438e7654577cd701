#!/usr/bin/env bash
# Builds the amplitude-mock wheel (the binary + the pytest plugin) with maturin.
#
#   packaging/python/build.sh [--debug] [--out DIR]
#
# --out DIR   where the wheel goes (default packaging/python/dist)
# --debug     cargo's dev profile instead of release, for tests: a cold build costs about the
#             same, but it is incremental (a rebuild after an edit of the mock: seconds instead of
#             about a minute), and the binary is slower (irrelevant for a test's few events)
#
# Needs python3 (venv) and cargo. maturin is installed (pinned below) into a virtualenv under
# $PACKAGING_DIR (default target/packaging of this repository), and cargo builds into
# $PACKAGING_DIR/cargo, so a concurrent `cargo build`/`cargo test` never waits on its lock
# (the binary itself is then $PACKAGING_DIR/cargo/release/amplitude-mock, or debug/ with
# --debug: packaging/npm/build.sh can pack that one).
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo="$(cd "$here/../.." && pwd)"
maturin_version="1.16.0"

out="$here/dist"
profile=(--release)
while [[ $# -gt 0 ]]; do
    case "$1" in
        # No debug info: the wheel's binary is stripped anyway, and the build is faster.
        --debug) profile=(--profile dev); export CARGO_PROFILE_DEV_DEBUG=false; shift ;;
        --out) out="$2"; shift 2 ;;
        *) echo "usage: $0 [--debug] [--out DIR]" >&2; exit 2 ;;
    esac
done
mkdir -p "$out"
out="$(cd "$out" && pwd)"

packaging="${PACKAGING_DIR:-$repo/target/packaging}"
venv="$packaging/maturin-venv"
stamp="$venv/.maturin-$maturin_version"
if [[ ! -x "$venv/bin/maturin" || ! -f "$stamp" ]]; then
    "${PYTHON:-python3}" -m venv "$venv"
    "$venv/bin/python" -m pip install --disable-pip-version-check --quiet "maturin==$maturin_version"
    touch "$stamp"
fi

cd "$here"
CARGO_TARGET_DIR="$packaging/cargo" "$venv/bin/maturin" build "${profile[@]}" --out "$out" >&2
ls "$out"/amplitude_mock-*.whl
