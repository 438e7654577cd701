#!/usr/bin/env bash
# Creates conformance/adapters/python-sdk/.venv and installs requirements.txt into it.
# Idempotent: does nothing (fast) when the pinned requirements are already installed.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
venv="$here/.venv"
python="${PYTHON:-python3}"
stamp="$venv/.requirements.installed"

if [[ -x "$venv/bin/python" && -f "$stamp" ]] && cmp -s "$here/requirements.txt" "$stamp"; then
    echo "python-sdk adapter: already installed ($(tr '\n' ' ' < "$stamp"))" >&2
    exit 0
fi
if [[ ! -x "$venv/bin/python" ]]; then
    "$python" -m venv "$venv"
fi
"$venv/bin/python" -m pip install --disable-pip-version-check --quiet -r "$here/requirements.txt"
cp "$here/requirements.txt" "$stamp"
echo "python-sdk adapter: installed $(tr '\n' ' ' < "$here/requirements.txt")into $venv" >&2
