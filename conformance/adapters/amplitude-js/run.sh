#!/usr/bin/env bash
# The sender command for the conformance runner (`--sender-cmd`): amplitude-js 8.x in headless
# Chromium, through the browser-sdk adapter's harness (../browser-sdk). Run install.sh first.
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
harness="$here/../browser-sdk"
if [[ ! -d "$harness/node_modules/amplitude-js" ]]; then
    echo "amplitude-js adapter: not installed; run $here/install.sh" >&2
    exit 127
fi
exec node "$harness/adapter.mjs" --sdk amplitude-js "$@"
