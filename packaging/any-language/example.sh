#!/usr/bin/env bash
# The mock from any language: start the binary on port 0, read the port from its first stdout
# line, send, inspect, stop. Needs bash, curl and `amplitude-mock` on PATH.
# Run by mock-server/tests/it/readme.rs; the part between the markers is quoted in README.md.
set -euo pipefail
work="$(mktemp -d)"
cd "$work"
# Whatever fails below, the mock does not outlive the script, and its log is shown.
cleanup() {
    local status=$?
    if [[ -n "${MOCK_PID:-}" ]]; then kill "$MOCK_PID" 2>/dev/null || true; fi
    if [[ $status -ne 0 && -f mock.log ]]; then echo "--- mock.log ---" >&2; cat mock.log >&2; fi
    rm -rf "$work"
}
trap cleanup EXIT

# --- README: any language ---
coproc MOCK { exec amplitude-mock --bind 127.0.0.1:0 --api-key KEY 2>mock.log; }
read -r _ _ url <&"${MOCK[0]}"   # blocks until "listening on http://127.0.0.1:PORT"

# Point the sender under test at "$url/2/httpapi" (or "$url/batch"); here, curl:
curl -sf "$url/2/httpapi" -H 'content-type: application/json' \
  -d '{"api_key":"KEY","events":[{"user_id":"user-12345","event_type":"Song Played"}]}'
curl -sf "$url/__mock/stats"     # {"requests_by_status":{"200":1},...,"events_stored":1,...}
curl -sf "$url/__mock/events"    # the stored events, each with its request and upload time

kill "$MOCK_PID" && wait "$MOCK_PID"   # SIGTERM: the mock shuts down gracefully, exit code 0
# --- end ---
