#!/usr/bin/env bash
# Regenerates docs/conformance/<sdk>-<version>.md for the official SDKs: installs each SDK into
# its adapter's cache directory (PyPI / npm; `--adapter`, ADR 006), runs the SDK-relevant
# built-in scenarios through the conformance suite, and writes the generated table and the
# HTML report of the same run beside it (<sdk>-<version>.html, linked from the table).
# Usage: conformance/adapters/conformance-tables.sh [ADAPTER...]
#   no argument: every adapter below; else only those named (e.g. `legacy-node-sdk`).
set -euo pipefail
cd "$(dirname "$0")/../.."
ADAPTERS="python-sdk:1.3.0 node-sdk:1.5.73 legacy-node-sdk:1.10.2"
if [[ $# -gt 0 ]]; then
  chosen=""
  for want in "$@"; do
    found=""
    for a in $ADAPTERS; do
      if [[ "${a%%:*}" == "$want" ]]; then found=$a; fi
    done
    if [[ -z "$found" ]]; then
      echo "conformance-tables.sh: no adapter '$want'; the adapters are: $ADAPTERS" >&2
      exit 2
    fi
    chosen="$chosen $found"
  done
  ADAPTERS=$chosen
fi
cargo build -q -p amplitude-conformance
target="${CARGO_TARGET_DIR:-target}"
S="steady-trickle heavy-hitter committed-500 outage-recovery dirty-data sdk-outage-outlasts-retries sdk-shutdown-5xx sdk-shutdown-429 sdk-payload-too-large sdk-one-invalid-event
   sdk-400-names-nothing sdk-empty-200-body sdk-invalid-api-key sdk-wrong-region-key sdk-events-without-ids
   sdk-flush-meets-503 sdk-flush-then-exit sdk-413-batch-recovery sdk-connection-refused sdk-server-starts-late
   sdk-one-user-failing sdk-throttled-device sdk-long-outage sdk-daily-quota-backlog
   sdk-restart-mid-outage sdk-restart-batch-in-flight"
args=()
for s in $S; do args+=(--scenario "$s"); done
for a in $ADAPTERS; do
  name=${a%%:*}; version=${a##*:}
  # exit 1 (some check failed) is the expected outcome for an SDK; anything else is an error
  "$target/debug/amplitude-conformance" --adapter "$name" "${args[@]}" \
    --report-md "docs/conformance/$name-$version.md" --report-html "docs/conformance/$name-$version.html" \
    --report-json "$target/conformance-$name.json" || [ $? -eq 1 ]
done
