#!/usr/bin/env bash
# Regenerates the README's screenshot of the HTML conformance report
# (docs/conformance/report.png): runs the deliberately broken `hammer` sender (it ignores
# 429s) through two built-in scenarios, writes the HTML report, and renders it with a
# headless Chromium (Debian's `chromium` package; nothing downloads a browser).
#
# Usage: conformance/scripts/report-screenshot.sh [OUT.png [OUT.html]]   (from anywhere)
set -euo pipefail
root="$(cd "$(dirname "$0")/../.." && pwd)"
out="${1:-$root/docs/conformance/report.png}"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
command -v chromium >/dev/null || { echo "chromium not found (apt-get install chromium)" >&2; exit 1; }
cd "$root"
# The hammer sender fails the run on purpose: exit code 1 is the expected verdict.
cargo run --quiet -p amplitude-conformance -- \
  --sender-cmd "exec python3 conformance/tests/senders/broken_sender.py hammer" \
  --scenario heavy-hitter --scenario outage-recovery \
  --report-html "$work/report.html" >/dev/null || true
test -s "$work/report.html" || { echo "no report written" >&2; exit 1; }
chromium --headless --no-sandbox --disable-gpu --hide-scrollbars \
  --window-size=1120,1900 --screenshot="$out" "file://$work/report.html" 2>/dev/null
if [ -n "${2:-}" ]; then cp "$work/report.html" "$2"; fi
echo "wrote $out"
