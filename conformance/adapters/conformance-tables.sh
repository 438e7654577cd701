#!/usr/bin/env bash
# Regenerates docs/conformance/<sdk>-<version>.md for the official SDKs: installs each SDK into
# its adapter folder (PyPI / npm), runs the SDK-relevant scenarios through the conformance
# suite, and writes the generated table. Usage: conformance/adapters/conformance-tables.sh
set -euo pipefail
cd "$(dirname "$0")/../.."
cargo build -q -p amplitude-conformance
S="steady-trickle heavy-hitter committed-500 outage-recovery dirty-data sdk-outage-outlasts-retries sdk-shutdown-5xx sdk-shutdown-429 sdk-payload-too-large sdk-one-invalid-event"
args=()
for s in $S; do args+=(--scenario "scenarios/$s.toml"); done
for a in python-sdk:1.3.0 node-sdk:1.5.73; do
  name=${a%%:*}; version=${a##*:}
  # exit 1 (some check failed) is the expected outcome for an SDK; anything else is an error
  target/debug/amplitude-conformance --adapter "$name" "${args[@]}" \
    --report-md "docs/conformance/$name-$version.md" --report-json "target/conformance-$name.json" || [ $? -eq 1 ]
done
