#!/usr/bin/env bash
# amplitude-js shares the browser harness of ../browser-sdk (one package-lock.json pins
# amplitude-js, @amplitude/analytics-browser and puppeteer-core): install that.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
exec bash "$here/../browser-sdk/install.sh"
