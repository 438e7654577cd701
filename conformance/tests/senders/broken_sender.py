#!/usr/bin/env python3
"""Deliberately broken senders for the conformance checker's tests.

Speaks the third-party sender contract (env AMPLITUDE_API_KEY, AMPLITUDE_SERVER_URL,
AMPLITUDE_BATCH_URL; JSON Lines events on stdin; exit at end of input) and misbehaves
in one way, chosen by the first argument:

  no-retry         sends each batch once and forgets it, whatever the answer
  fresh-insert-id  retries failures, but gives every event a new insert_id on each attempt
  hammer           ignores throttled_events: resends a 429'd batch at once, up to 40 times
"""
import json
import sys
import time
import urllib.error
import urllib.request
import uuid

MODE = sys.argv[1] if len(sys.argv) > 1 else "no-retry"
import os

KEY = os.environ["AMPLITUDE_API_KEY"]
URL = os.environ["AMPLITUDE_BATCH_URL"] if os.environ.get("AMPLITUDE_USE_BATCH") == "1" else os.environ["AMPLITUDE_SERVER_URL"]
BATCH = 50


def post(events):
    body = json.dumps({"api_key": KEY, "events": events}).encode()
    req = urllib.request.Request(URL, data=body, headers={"content-type": "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=10) as r:
            return r.status
    except urllib.error.HTTPError as e:
        return e.code
    except Exception:  # reset, refused, timeout
        return 0


def send(events):
    if MODE == "no-retry":
        post(events)
        return
    if MODE == "fresh-insert-id":
        for _ in range(30):
            for e in events:
                e["insert_id"] = str(uuid.uuid4())
            status = post(events)
            if status == 200 or 400 <= status < 500 and status != 429:
                return
            time.sleep(0.2)
        return
    if MODE == "hammer":
        for _ in range(40):
            status = post(events)
            if status != 429:
                return
            time.sleep(0.005)


def main():
    pending = []
    last = time.monotonic()
    for line in sys.stdin:
        line = line.strip()
        if not line:
            continue
        try:
            pending.append(json.loads(line))
        except ValueError:
            continue
        if len(pending) >= BATCH or time.monotonic() - last > 0.2:
            send(pending)
            pending = []
            last = time.monotonic()
    if pending:
        send(pending)


if __name__ == "__main__":
    main()
