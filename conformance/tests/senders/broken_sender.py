#!/usr/bin/env python3
"""Deliberately broken senders for the conformance checker's tests.

Speaks the third-party sender contract (env AMPLITUDE_API_KEY, AMPLITUDE_SERVER_URL,
AMPLITUDE_BATCH_URL; JSON Lines events on stdin; exit at end of input) and misbehaves
in one way, chosen by the first argument:

  no-retry         sends each batch once and forgets it, whatever the answer
  fresh-insert-id  retries failures, but gives every event a new insert_id on each attempt
  hammer           ignores throttled_events: resends a 429'd batch at once, up to 40 times
  resend-at-once   resends a batch at once after any non-2xx or transport error, until a 2xx
                   (for the first 12 s of the run; then once) (public reports of SDKs storming
                   on a 400 that names no event)
  report-dropped   sends each batch once and reports every event "dropped", whatever the
                   answer (public reports of SDKs that read `200 {}` as a failure)
  flush-early      contract v2: a `flush` control returns at once without sending, an `exit`
                   control exits at once (public reports of flush() resolving before delivery)
  memory-queue     contract v3: a correct in-memory sender (a reader thread queues events, a
                   sender thread retries each batch until a 2xx or a 4xx other than 429, with
                   the same insert_id), but nothing survives a restart (the SDKs without
                   persistence)
  fresh-after-restart
                   contract v3: appends every event to AMPLITUDE_SENDER_STATE_DIR/events.jsonl
                   as it reads it, and after a restart (AMPLITUDE_SENDER_RESTART > 0) resends
                   every event of that file with a fresh insert_id, delivered or not
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
START = time.monotonic()


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
    if MODE in ("no-retry", "flush-early"):
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
    if MODE == "resend-at-once":
        while time.monotonic() - START < 12:
            status = post(events)
            if 200 <= status < 300:
                return
        post(events)
        return
    if MODE == "report-dropped":
        post(events)
        for e in events:
            seq = (e.get("event_properties") or {}).get("conformance_seq")
            if seq is not None:
                print(json.dumps({"seq": seq, "outcome": "dropped", "reason": "code 0"}), flush=True)
        return
    if MODE == "hammer":
        for _ in range(40):
            status = post(events)
            if status != 429:
                return
            time.sleep(0.005)


def threaded(persist):
    """memory-queue / fresh-after-restart: reader thread + sender loop."""
    import threading

    state = os.environ.get("AMPLITUDE_SENDER_STATE_DIR", "")
    restart = int(os.environ.get("AMPLITUDE_SENDER_RESTART", "0") or "0")
    path = os.path.join(state, "events.jsonl") if state else None
    pending = []
    lock = threading.Lock()
    if persist and restart > 0 and path and os.path.exists(path):
        with open(path) as f:
            for line in f:
                try:
                    e = json.loads(line)
                except ValueError:
                    continue
                e["insert_id"] = str(uuid.uuid4())
                pending.append(e)
    done = threading.Event()

    def reader():
        log = open(path, "a") if persist and path else None
        for line in sys.stdin:
            line = line.strip()
            if not line:
                continue
            try:
                obj = json.loads(line)
            except ValueError:
                continue
            if "control" in obj:
                continue
            if log:
                log.write(line + "\n")
                log.flush()
                os.fsync(log.fileno())
            with lock:
                pending.append(obj)
        done.set()

    threading.Thread(target=reader, daemon=True).start()
    while True:
        time.sleep(0.2)
        with lock:
            batch = pending[:BATCH]
            del pending[:BATCH]
            finished = done.is_set() and not batch
        if finished:
            return
        while batch:
            status = post(batch)
            if 200 <= status < 300 or (400 <= status < 500 and status != 429):
                break
            time.sleep(0.3)


def main():
    if MODE in ("memory-queue", "fresh-after-restart"):
        threaded(MODE == "fresh-after-restart")
        return
    pending = []
    last = time.monotonic()
    for line in sys.stdin:
        line = line.strip()
        if not line:
            continue
        try:
            obj = json.loads(line)
        except ValueError:
            continue
        if "control" in obj:
            if MODE == "flush-early" and obj["control"] == "exit":
                os._exit(0)
            continue  # flush-early: a flush that returns at once, sending nothing
        pending.append(obj)
        if MODE == "flush-early":
            continue  # batches only at end of input (a long flush interval)
        if len(pending) >= BATCH or time.monotonic() - last > 0.2:
            send(pending)
            pending = []
            last = time.monotonic()
    if pending:
        send(pending)


if __name__ == "__main__":
    main()
