#!/usr/bin/env bash
# Regenerates docs/conformance/<sdk>-<version>.md for the official SDKs: installs each SDK into
# its adapter's cache directory (PyPI / npm, and Debian's chromium for the browser adapters;
# `--adapter`, ADR 006), runs the SDK-relevant built-in scenarios through the conformance
# suite, and writes the generated table and the HTML report of the same run beside it
# (<sdk>-<version>.html, linked from the table).
# Usage: conformance/adapters/conformance-tables.sh [ADAPTER...]
#   no argument: every adapter; else only those named (python-sdk node-sdk legacy-node-sdk
#   browser-sdk amplitude-js)
set -euo pipefail
cd "$(dirname "$0")/../.."
cargo build -q -p amplitude-conformance
target="${CARGO_TARGET_DIR:-target}"
S="steady-trickle heavy-hitter committed-500 outage-recovery dirty-data sdk-outage-outlasts-retries sdk-shutdown-5xx sdk-shutdown-429 sdk-payload-too-large sdk-one-invalid-event
   sdk-400-names-nothing sdk-empty-200-body sdk-invalid-api-key sdk-wrong-region-key sdk-events-without-ids
   sdk-flush-meets-503 sdk-flush-then-exit sdk-413-batch-recovery sdk-connection-refused sdk-server-starts-late
   sdk-one-user-failing sdk-throttled-device sdk-long-outage sdk-daily-quota-backlog"
# The crash-restart scenarios (sender contract 3), run for the server SDKs (the browser tables
# have their own restart scenario in B).
R="sdk-restart-mid-outage sdk-restart-batch-in-flight"
# The browser scenarios, run for the browser adapters only (a page to hide, a profile to keep).
B="browser-page-hide browser-offline-window browser-throttled-device browser-restart-stored-events sdk-restart-mid-outage"
# Each adapter and the SDK version its lock file pins.
ALL="python-sdk:1.3.0 node-sdk:1.5.73 legacy-node-sdk:1.10.2 browser-sdk:2.48.1 amplitude-js:8.21.10"
want=("$@")
for a in $ALL; do
  name=${a%%:*}; version=${a##*:}
  if [[ ${#want[@]} -gt 0 && " ${want[*]} " != *" $name "* ]]; then continue; fi
  list="$S $R"
  case "$name" in browser-sdk|amplitude-js) list="$S $B" ;; esac
  args=()
  for s in $list; do args+=(--scenario "$s"); done
  # exit 1 (some check failed) is the expected outcome for an SDK; anything else is an error
  "$target/debug/amplitude-conformance" --adapter "$name" "${args[@]}" \
    --report-md "docs/conformance/$name-$version.md" --report-html "docs/conformance/$name-$version.html" \
    --report-json "$target/conformance-$name.json" || [ $? -eq 1 ]
done
