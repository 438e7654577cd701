#!/usr/bin/env python3
"""End-to-end smoke test of one SDK adapter against the real mock.

Usage: smoke.sh ADAPTER [--events N] [--pace-ms MS] [--timeout S] [--drain-ms MS]
                 [--flush-every K] [--end eof|exit]
  ADAPTER   python-sdk | node-sdk (a directory here holding run.sh) or a path to a run.sh

Starts `amplitude-mock --bind 127.0.0.1:0 --api-key KEY`, pipes N generated events (each
with an integer event_properties.conformance_seq and ids of at least 5 characters) into
the adapter under sender contract 2 (AMPLITUDE_SENDER_CONTRACT=2, AMPLITUDE_DRAIN_DEADLINE_MS),
with a {"control":"flush"} line after every K events (--flush-every) and one unsupported
control line halfway, then checks that:
  - the adapter exits 0 within the timeout;
  - it reported the unsupported control line on stderr ("unsupported control line: ...");
  - every seq was stored by the mock exactly once (GET /__mock/events), and nothing else;
  - the adapter printed exactly one outcome line per seq, each "delivered", and nothing
    else on stdout.
--end exit ends the stream with {"control":"flush"} and {"control":"exit"} and keeps stdin
open: the adapter must exit on its own. Events the SDK had not delivered by then may be lost
(that is the SDK's flush semantics): lost and silent seqs are reported, not judged; still
judged: exit 0 (or 1 from the adapter's drain-deadline watchdog after exit, reported), nothing stored twice or unexpected, every "delivered" seq stored, no
"dropped" line.
Storage order per device is reported (not judged: the Python SDK sends batches in parallel).

Env: MOCK_BIN (default: <workspace>/target/debug/amplitude-mock, built with cargo if
missing); MOCK_ARGS (extra mock arguments, e.g. "--config limits.toml" to provoke 429s); AMPLITUDE_USE_BATCH / AMPLITUDE_FLUSH_* / AMPLITUDE_MIN_ID_LENGTH are passed on.
"""

import argparse
import json
import os
import pathlib
import shlex
import subprocess
import sys
import threading
import time
import urllib.request

HERE = pathlib.Path(__file__).resolve().parent
WORKSPACE = HERE.parent.parent
API_KEY = "0123456789abcdef0123456789abcdef"


def log(msg):
    print(f"[smoke] {msg}", file=sys.stderr, flush=True)


def mock_binary():
    path = os.environ.get("MOCK_BIN") or str(WORKSPACE / "target" / "debug" / "amplitude-mock")
    if not os.access(path, os.X_OK):
        log(f"{path} missing; running cargo build -p amplitude-mock")
        subprocess.run(["cargo", "build", "-p", "amplitude-mock"], cwd=WORKSPACE, check=True)
    return path


def start_mock(binary):
    extra = shlex.split(os.environ.get("MOCK_ARGS", ""))
    proc = subprocess.Popen([binary, "--bind", "127.0.0.1:0", "--api-key", API_KEY, *extra],
                            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    deadline = time.monotonic() + 20
    line = ""
    while time.monotonic() < deadline:
        line = proc.stdout.readline()
        if line.startswith("listening on "):
            return proc, line.split("listening on ", 1)[1].strip()
        if not line and proc.poll() is not None:
            break
    proc.kill()
    raise SystemExit(f"mock did not start (last line {line!r})")


def get_json(url):
    with urllib.request.urlopen(url, timeout=10) as res:
        return json.loads(res.read().decode("utf8"))


def make_events(n):
    now = int(time.time() * 1000)
    events = []
    for seq in range(1, n + 1):
        ev = {
            "user_id": f"smoke-user-{seq % 7:03d}",
            "device_id": f"smoke-device-{seq % 5:03d}",
            "event_type": "Smoke Test",
            "time": now + seq,
            "event_properties": {"conformance_seq": seq, "n": seq, "tag": "smoke"},
        }
        if seq % 3:  # sometimes absent: the SDK then assigns its own UUID
            ev["insert_id"] = f"smoke-{now}-{seq}"
        if seq % 10 == 0:
            ev["user_properties"] = {"$set": {"plan": "pro"}}
        events.append(ev)
    return events


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("adapter")
    ap.add_argument("--events", type=int, default=50)
    ap.add_argument("--pace-ms", type=float, default=0, help="delay between stdin lines")
    ap.add_argument("--timeout", type=float, default=120, help="seconds the adapter may run")
    ap.add_argument("--drain-ms", type=int, default=60000,
                    help="AMPLITUDE_DRAIN_DEADLINE_MS given to the adapter")
    ap.add_argument("--flush-every", type=int, default=0, metavar="K",
                    help='a {"control":"flush"} line after every K events (0: none)')
    ap.add_argument("--end", choices=("eof", "exit"), default="eof",
                    help="end with end of stdin (default) or with flush + exit control lines")
    args = ap.parse_args()

    run = pathlib.Path(args.adapter)
    if not run.is_file():
        run = (run if run.is_dir() else HERE / args.adapter) / "run.sh"
    if not run.exists():
        raise SystemExit(f"no run.sh at {run}")

    mock, base = start_mock(mock_binary())
    failures = []
    try:
        env = dict(os.environ)
        env.update({
            "AMPLITUDE_API_KEY": API_KEY,
            "AMPLITUDE_SERVER_URL": f"{base}/2/httpapi",
            "AMPLITUDE_BATCH_URL": f"{base}/batch",
            "AMPLITUDE_SENDER_CONTRACT": "2",
            "AMPLITUDE_DRAIN_DEADLINE_MS": str(args.drain_ms),
        })
        events = make_events(args.events)
        stream = []  # (line, pace after it)
        for i, ev in enumerate(events, start=1):
            stream.append((json.dumps(ev), True))
            if i == len(events) // 2:
                stream.append((json.dumps({"control": "smoke-no-such-control"}), False))
            if args.flush_every and i % args.flush_every == 0 and i < len(events):
                stream.append((json.dumps({"control": "flush"}), False))
        if args.end == "exit":
            stream.append((json.dumps({"control": "flush"}), False))
            stream.append((json.dumps({"control": "exit"}), False))
        n_control = len(stream) - len(events)
        log(f"mock at {base}; {len(events)} events + {n_control} control lines (end: {args.end}) -> {run}")
        started = time.monotonic()
        child = subprocess.Popen([str(run)], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                 stderr=subprocess.PIPE, env=env, text=True)
        out_lines, err_lines = [], []
        readers = [threading.Thread(target=lambda s=s, acc=acc: acc.extend(s), daemon=True)
                   for s, acc in ((child.stdout, out_lines), (child.stderr, err_lines))]
        for r in readers:
            r.start()
        try:
            for line, pace in stream:
                child.stdin.write(line + "\n")
                child.stdin.flush()
                if pace and args.pace_ms:
                    time.sleep(args.pace_ms / 1000)
            if args.end == "eof":
                child.stdin.close()
        except BrokenPipeError:
            if args.end == "eof":
                failures.append("adapter closed its stdin early")
        try:
            rc = child.wait(timeout=args.timeout)
        except subprocess.TimeoutExpired:
            child.kill()
            rc = child.wait()
            failures.append(f"adapter did not exit within {args.timeout:g} s (killed)")
        for r in readers:
            r.join(5)
        elapsed = time.monotonic() - started
        try:
            child.stdin.close()
        except BrokenPipeError:
            pass
        sys.stderr.write("".join("    | " + l for l in err_lines))
        lingered = args.end == "exit" and rc == 1 and any("still running" in l and "after exit" in l for l in err_lines)
        if lingered:
            log("adapter exit 1: its watchdog ended it at the drain deadline after the exit line "
                "(the SDK's exit hooks kept it alive; reported, not judged)")
        elif rc != 0:
            failures.append(f"adapter exited {rc}")
        if not any("unsupported control line: " in l and "smoke-no-such-control" in l for l in err_lines):
            failures.append("the unsupported control line was not reported on stderr")

        # What the adapter said.
        outcomes = {}
        for line in out_lines:
            try:
                o = json.loads(line)
                seq, outcome = o["seq"], o["outcome"]
            except (ValueError, KeyError, TypeError):
                failures.append(f"non-outcome line on stdout: {line.rstrip()[:200]!r}")
                continue
            outcomes.setdefault(seq, []).append(o)
        # What the mock stored.
        stored = get_json(f"{base}/__mock/events")
        stats = get_json(f"{base}/__mock/stats")
        requests = get_json(f"{base}/__mock/requests")
        counts = {}
        order = {}
        for rec in stored:
            ev = rec["event"]
            seq = (ev.get("event_properties") or {}).get("conformance_seq")
            counts[seq] = counts.get(seq, 0) + 1
            order.setdefault(ev.get("device_id"), []).append(seq)

        want = [ev["event_properties"]["conformance_seq"] for ev in events]
        lost = [s for s in want if counts.get(s, 0) == 0]
        dup = [s for s in want if counts.get(s, 0) > 1]
        unexpected = [s for s in counts if s not in set(want)]
        silent = [s for s in want if s not in outcomes]
        multi = [s for s in want if len(outcomes.get(s, [])) > 1]
        not_delivered = [(s, os_[0]) for s, os_ in outcomes.items() if os_[0].get("outcome") != "delivered"]
        reordered = [d for d, seqs in order.items() if seqs != sorted(seqs)]
        judged = [("stored more than once", dup), ("unexpected", unexpected),
                  ("several outcome lines", multi), ("outcome not delivered", not_delivered)]
        if args.end == "eof":
            judged += [("lost", lost), ("no outcome line", silent)]
        else:
            judged.append(("delivered but not stored",
                           [s for s, os_ in outcomes.items() if os_[0].get("outcome") == "delivered"
                            and counts.get(s, 0) == 0]))
            log(f"after exit (reported, not judged): lost {len(lost)} {lost[:20]}; "
                f"no outcome line {len(silent)} {silent[:20]}; "
                f"silent losses (lost, no line) {len([s for s in lost if s in silent])}")
        for name, bad in judged:
            if bad:
                failures.append(f"{name}: {bad[:20]}{' ...' if len(bad) > 20 else ''}")

        statuses = {}
        for r in requests:
            key = f"{r.get('path')} {r.get('status')}"
            statuses[key] = statuses.get(key, 0) + 1
        delivered = sum(1 for os_ in outcomes.values() if os_[0].get("outcome") == "delivered")
        log(f"adapter exit {rc} after {elapsed:.2f} s; sent {len(want)}; stored once "
            f"{sum(1 for s in want if counts.get(s) == 1)}; outcome lines {len(out_lines)} "
            f"({delivered} delivered); requests {len(requests)} by path+status {statuses}; "
            f"mock events_received={stats.get('events_received')} events_stored={stats.get('events_stored')} "
            f"events_deduplicated={stats.get('events_deduplicated')}")
        log(f"storage order per device: {'in order' if not reordered else 'REORDERED for ' + str(reordered)}")
    finally:
        mock.terminate()
        try:
            mock.wait(5)
        except subprocess.TimeoutExpired:
            mock.kill()

    if failures:
        for f in failures:
            log(f"FAIL {f}")
        print(f"smoke {args.adapter}: 0 passed, 1 failed")
        return 1
    print(f"smoke {args.adapter}: 1 passed, 0 failed")
    return 0


if __name__ == "__main__":
    sys.exit(main())
