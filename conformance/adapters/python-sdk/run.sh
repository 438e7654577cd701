#!/usr/bin/env bash
# The sender command for the conformance runner (`--sender-cmd`). Run install.sh first.
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
if [[ ! -x "$here/.venv/bin/python" ]]; then
    echo "python-sdk adapter: not installed; run $here/install.sh" >&2
    exit 127
fi
exec "$here/.venv/bin/python" -u "$here/adapter.py" "$@"
