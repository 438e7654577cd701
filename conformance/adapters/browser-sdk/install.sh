#!/usr/bin/env bash
# Installs what the browser adapters (browser-sdk, amplitude-js) need:
# - Debian's `chromium` (/usr/bin/chromium) with `apt-get install -y chromium` when it is
#   missing (as root; else it says what to run). Nothing here ever downloads a browser build.
# - the pinned @amplitude/analytics-browser, amplitude-js and puppeteer-core
#   (package-lock.json) into ./node_modules with `npm ci`, browser downloads switched off.
# Idempotent: does nothing (fast) when chromium is there and node_modules matches the lock file.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
cd "$here"
chromium="${CHROMIUM_BIN:-/usr/bin/chromium}"
if [[ ! -x "$chromium" ]]; then
    if [[ "$(id -u)" -ne 0 ]]; then
        echo "browser adapters: $chromium is missing; install Debian's chromium (sudo apt-get install -y chromium)" >&2
        exit 1
    fi
    echo "browser adapters: installing Debian's chromium (apt-get)" >&2
    export DEBIAN_FRONTEND=noninteractive
    apt-get install -y -q chromium >&2 || { apt-get update -q >&2 && apt-get install -y -q chromium >&2; }
fi
stamp="node_modules/.package-lock.installed"
if [[ -f "$stamp" ]] && cmp -s package-lock.json "$stamp"; then
    echo "browser adapters: already installed" >&2
    exit 0
fi
# puppeteer-core downloads nothing by itself; these make sure no install script does either.
export PUPPETEER_SKIP_DOWNLOAD=1 PUPPETEER_SKIP_CHROMIUM_DOWNLOAD=1 PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD=1
npm ci --no-audit --no-fund --loglevel=error >&2
cp package-lock.json "$stamp"
echo "browser adapters: installed @amplitude/analytics-browser $(node -p "require('@amplitude/analytics-browser/package.json').version"), amplitude-js $(node -p "require('amplitude-js/package.json').version"), puppeteer-core $(node -p "require('puppeteer-core/package.json').version") into $here/node_modules; $("$chromium" --version 2>/dev/null || echo chromium)" >&2
