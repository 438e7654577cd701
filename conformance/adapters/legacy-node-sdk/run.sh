#!/usr/bin/env bash
# The sender command for the conformance runner (`--sender-cmd`). Run install.sh first.
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
if [[ ! -d "$here/node_modules/@amplitude/node" ]]; then
    echo "legacy-node-sdk adapter: not installed; run $here/install.sh" >&2
    exit 127
fi
exec node "$here/adapter.mjs" "$@"
