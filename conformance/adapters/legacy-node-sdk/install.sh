#!/usr/bin/env bash
# Installs the pinned, deprecated @amplitude/node (package-lock.json) into ./node_modules with
# `npm ci`. Idempotent: does nothing (fast) when node_modules already matches the lock file.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
cd "$here"
stamp="node_modules/.package-lock.installed"
if [[ -f "$stamp" ]] && cmp -s package-lock.json "$stamp"; then
    echo "legacy-node-sdk adapter: already installed" >&2
    exit 0
fi
npm ci --no-audit --no-fund --loglevel=error >&2
cp package-lock.json "$stamp"
echo "legacy-node-sdk adapter: installed @amplitude/node $(node -p "require('@amplitude/node/package.json').version") into $here/node_modules" >&2
