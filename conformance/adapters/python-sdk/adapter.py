#!/usr/bin/env python3
"""Drives the official Amplitude Python SDK (`amplitude-analytics`) through the
conformance kit's third-party sender contract (docs/sender-contract.md).

stdin:  JSON Lines, one Amplitude HTTP V2 event object a line, in application order, and
        (contract 2) control lines: {"control":"flush"} -> client.flush(), then the next line;
        {"control":"exit"} -> sys.exit(0) (the interpreter's normal exit, atexit hooks included).
        End of stdin -> client.shutdown(), bounded by AMPLITUDE_DRAIN_DEADLINE_MS.
stdout: JSON Lines `{"seq":N,"outcome":"delivered"|"dropped","reason":"..."}`, one per
        SDK callback. Nothing else is written to stdout.
stderr: logs (settings used, skipped lines, SDK logs, events the SDK never reported).

Only the SDK's public API is used, and nothing is retried or deduplicated here: every
delivery decision is the SDK's own.
"""

import atexit
import json
import logging
import os
import sys
import threading
import time

from amplitude import Amplitude, BaseEvent, Config
from amplitude import constants as sdk_constants
from amplitude.event import IngestionMetadata, Plan

ADAPTER = "python-sdk-adapter"
# The newest sender contract this adapter speaks (control lines, drain deadline).
CONTRACT = 2

# Wire key -> BaseEvent constructor argument (the SDK renames two revenue keys).
RENAMED = {"productId": "product_id", "revenueType": "revenue_type"}
# Keys BaseEvent() accepts besides event_type (BaseEvent.__init__ of amplitude-analytics 1.3.0).
CTOR_KEYS = {
    "user_id", "device_id", "time", "event_properties", "user_properties", "groups",
    "group_properties", "app_version", "platform", "os_name", "os_version", "device_brand",
    "device_manufacturer", "device_model", "carrier", "country", "region", "city", "dma",
    "language", "price", "quantity", "revenue", "product_id", "revenue_type", "currency",
    "location_lat", "location_lng", "ip", "idfa", "idfv", "adid", "android_id", "event_id",
    "session_id", "insert_id", "partner_id", "user_agent",
}
# Keys the SDK sends but only accepts by item assignment (`event["version_name"] = ...`).
ITEM_KEYS = {"version_name"}
# The SDK type-checks these as `float`; JSON has one number type, so `5` means 5.0.
FLOAT_KEYS = {"price", "revenue", "location_lat", "location_lng"}
# Set by the SDK itself (ContextPlugin overwrites it).
SDK_OWNED = {"library"}


def log(msg):
    sys.stderr.write(f"[{ADAPTER}] {msg}\n")
    sys.stderr.flush()


_out_lock = threading.Lock()


def emit(obj):
    line = json.dumps(obj, separators=(",", ":")) + "\n"
    with _out_lock:
        sys.stdout.write(line)
        sys.stdout.flush()


def env_int(name):
    raw = os.environ.get(name)
    if raw is None or raw.strip() == "":
        return None
    try:
        return int(raw)
    except ValueError:
        log(f"ignoring {name}={raw!r}: not an integer")
        return None


def drain_budget_s():
    """Seconds the final shutdown may take after end of stdin (or after an `exit` line).

    AMPLITUDE_DRAIN_DEADLINE_MS (contract 2) wins, less a margin of min(200 ms, 10 %) so the
    process is gone before the runner's own deadline; else ADAPTER_SHUTDOWN_TIMEOUT_S (60).
    """
    ms = env_int("AMPLITUDE_DRAIN_DEADLINE_MS")
    if ms is not None and ms >= 0:
        return max(0.0, (ms - min(200, ms // 10)) / 1000), f"drain_deadline_ms={ms}"
    raw = os.environ.get("ADAPTER_SHUTDOWN_TIMEOUT_S", "60")
    try:
        secs = float(raw)
    except ValueError:
        log(f"ignoring ADAPTER_SHUTDOWN_TIMEOUT_S={raw!r}: not a number")
        secs = 60.0
    return secs, f"shutdown_timeout_s={secs:g} (no AMPLITUDE_DRAIN_DEADLINE_MS)"


def seq_of(event_properties):
    if isinstance(event_properties, dict):
        seq = event_properties.get("conformance_seq")
        if isinstance(seq, int) and not isinstance(seq, bool):
            return seq
    return None


class Tracker:
    """Remembers which seqs were handed to the SDK and which got a callback."""

    def __init__(self):
        self.lock = threading.Lock()
        self.tracked = []
        self.reported = {}

    def add(self, seq):
        with self.lock:
            self.tracked.append(seq)

    def callback(self, event, code, message=None):
        seq = seq_of(getattr(event, "event_properties", None))
        if seq is None:
            log(f"SDK callback for an event without conformance_seq: code={code} message={message!r}")
            return
        if 200 <= code < 300:  # the SDK counts any 2xx as success
            out = {"seq": seq, "outcome": "delivered"}
        else:
            out = {"seq": seq, "outcome": "dropped", "reason": f"{code} {message}"}
        with self.lock:
            self.reported[seq] = self.reported.get(seq, 0) + 1
            if self.reported[seq] > 1:
                log(f"SDK reported seq {seq} {self.reported[seq]} times (code={code})")
        emit(out)

    def unreported(self):
        with self.lock:
            return [s for s in self.tracked if s is not None and s not in self.reported]


def to_event(obj):
    """Builds a BaseEvent from one wire event, passing every field through as given."""
    if not isinstance(obj, dict):
        raise ValueError("not a JSON object")
    # A missing or mistyped field (even event_type or the ids) is passed on as it is: the
    # SDK's own validation decides (it logs, and drops an event without callback).
    kwargs = {}
    items = {}
    for key, value in obj.items():
        if key == "event_type":
            continue
        name = RENAMED.get(key, key)
        if name in FLOAT_KEYS and isinstance(value, int) and not isinstance(value, bool):
            value = float(value)
        if name == "plan" and isinstance(value, dict):
            kwargs["plan"] = Plan(branch=value.get("branch"), source=value.get("source"),
                                  version=value.get("version"), version_id=value.get("versionId"))
        elif name == "ingestion_metadata" and isinstance(value, dict):
            kwargs["ingestion_metadata"] = IngestionMetadata(
                source_name=value.get("source_name"), source_version=value.get("source_version"))
        elif name in CTOR_KEYS:
            kwargs[name] = value
        elif name in ITEM_KEYS:
            items[name] = value
        elif name in SDK_OWNED:
            pass
        else:
            log(f"field {key!r} has no counterpart in the SDK's BaseEvent; not sent")
    # BaseEvent type-checks each field and logs (amplitude logger) + omits a mistyped one.
    event = BaseEvent(event_type=obj.get("event_type"), **kwargs)
    for name, value in items.items():
        event[name] = value
    return event


def main():
    api_key = os.environ.get("AMPLITUDE_API_KEY", "")
    server_url = os.environ.get("AMPLITUDE_SERVER_URL")
    batch_url = os.environ.get("AMPLITUDE_BATCH_URL")
    use_batch = os.environ.get("AMPLITUDE_USE_BATCH", "") == "1"

    logging.basicConfig(stream=sys.stderr, level=logging.WARNING,
                        format="[amplitude-python] %(levelname)s %(message)s")

    tracker = Tracker()
    settings = {
        "flush_queue_size": env_int("AMPLITUDE_FLUSH_QUEUE_SIZE"),
        "flush_interval_millis": env_int("AMPLITUDE_FLUSH_INTERVAL_MS"),
        "flush_max_retries": env_int("AMPLITUDE_FLUSH_MAX_RETRIES"),
        "min_id_length": env_int("AMPLITUDE_MIN_ID_LENGTH"),
    }
    # Unset -> the SDK's own server defaults (200 events, 10 s, 12 attempts, id length 5).
    for key, default in (("flush_queue_size", sdk_constants.FLUSH_QUEUE_SIZE),
                         ("flush_interval_millis", sdk_constants.FLUSH_INTERVAL_MILLIS),
                         ("flush_max_retries", sdk_constants.FLUSH_MAX_RETRIES)):
        if settings[key] is None:
            settings[key] = default
    url = (batch_url if use_batch else server_url) or None
    config = Config(
        server_url=url,
        use_batch=use_batch,
        flush_queue_size=settings["flush_queue_size"],
        flush_interval_millis=settings["flush_interval_millis"],
        flush_max_retries=settings["flush_max_retries"],
        min_id_length=settings["min_id_length"],
        callback=tracker.callback,
    )
    client = Amplitude(api_key, config)
    contract = os.environ.get("AMPLITUDE_SENDER_CONTRACT", "").strip() or "1"
    budget_s, budget_desc = drain_budget_s()
    log(f"amplitude-analytics {sdk_constants.SDK_VERSION}; "
        f"contract={contract} (adapter speaks {CONTRACT}); server_url={config.server_url} "
        f"use_batch={use_batch} flush_queue_size={settings['flush_queue_size']} "
        f"flush_interval_millis={settings['flush_interval_millis']} "
        f"flush_max_retries={settings['flush_max_retries']} "
        f"min_id_length={settings['min_id_length']} (None = SDK/server default 5) "
        f"{budget_desc}; exit control = sys.exit(0)")
    if contract not in ("1", str(CONTRACT)):
        log(f"AMPLITUDE_SENDER_CONTRACT={contract!r}: this adapter speaks contract {CONTRACT}")
    if not api_key:
        log("AMPLITUDE_API_KEY is empty: the SDK will refuse to send")
    if not url:
        log("no AMPLITUDE_SERVER_URL/AMPLITUDE_BATCH_URL: the SDK would use Amplitude's real host")

    def report_unreported(when):
        missing = tracker.unreported()
        if missing:
            shown = ", ".join(str(s) for s in missing[:50])
            more = f" (+{len(missing) - 50} more)" if len(missing) > 50 else ""
            log(f"{len(missing)} events got no callback from the SDK {when}: seq {shown}{more}")

    lines = 0
    skipped = 0
    controls = 0
    flushes = 0
    # readline() rather than `for raw in sys.stdin`: no read-ahead, each line is handled as
    # soon as it arrives, and nothing past a control line is read before it is done.
    lineno = 0
    while True:
        raw = sys.stdin.readline()
        if not raw:
            break
        lineno += 1
        text = raw.strip()
        if not text:
            continue
        lines += 1
        try:
            obj = json.loads(text)
        except ValueError as exc:
            skipped += 1
            log(f"stdin line {lineno} skipped: {exc}: {text[:200]!r}")
            continue
        if isinstance(obj, dict) and "control" in obj:
            controls += 1
            control = obj["control"]
            if control == "flush":
                # The SDK's flush: it takes what is queued, submits it to its thread pool and
                # returns at once (a list of futures for the first attempt). We do not wait on
                # them: an application calling client.flush() goes on right away. Their
                # completion is only logged.
                flushes += 1
                n = flushes
                started = time.monotonic()
                futures = [f for f in (client.flush() or []) if f is not None]
                log(f"flush #{n} (stdin line {lineno}): client.flush() returned after "
                    f"{(time.monotonic() - started) * 1000:.1f} ms with {len(futures)} future(s); "
                    f"{len(tracker.unreported())} events without callback so far")
                for fut in futures:
                    fut.add_done_callback(
                        lambda f, n=n, t=started: log(
                            f"flush #{n}: a future resolved after {(time.monotonic() - t) * 1000:.1f} ms"
                            + (f" with {f.exception()!r}" if not f.cancelled() and f.exception() else "")))
                continue
            if control == "exit":
                # The application exits now: sys.exit(0) is a normal interpreter exit, which
                # runs what an exiting app runs: the SDK's own exit hook (client.shutdown() via
                # threading._register_atexit, i.e. flush + wait for its thread pool) and the
                # join of its non-daemon consumer thread. Nothing is added here; a watchdog
                # only bounds that exit by the drain deadline.
                log(f"exit (stdin line {lineno}): sys.exit(0) after {lines} lines "
                    f"({controls} control); {len(tracker.unreported())} events without callback so far")
                atexit.register(report_unreported, "before exit")
                arm_watchdog(budget_s, "exit", report_unreported)
                sys.stdout.flush()
                sys.exit(0)
            log(f"unsupported control line: {text}")
            continue
        try:
            event = to_event(obj)
        except (ValueError, TypeError) as exc:
            skipped += 1
            log(f"stdin line {lineno} skipped: {exc}: {text[:200]!r}")
            continue
        tracker.add(seq_of(obj.get("event_properties")))
        client.track(event)

    log(f"stdin closed after {lines} lines ({lines - skipped - controls} tracked, {controls} control, "
        f"{skipped} skipped); calling shutdown() (budget {budget_s:g} s)")
    started = time.monotonic()
    done = threading.Event()

    def shut():
        try:
            client.shutdown()
        except Exception as exc:  # the SDK's own failure; report and go on exiting
            log(f"shutdown() raised {exc!r}")
        finally:
            done.set()

    threading.Thread(target=shut, name="adapter-shutdown", daemon=True).start()
    finished = done.wait(budget_s)
    elapsed = time.monotonic() - started
    report_unreported("by the end")
    sys.stdout.flush()
    sys.stderr.flush()
    if not finished:
        log(f"shutdown() did not return within {budget_s:g} s ({budget_desc}); exiting 1")
        os._exit(1)
    log(f"shutdown() returned after {elapsed:.2f} s")
    # After shutdown() the SDK's thread pool is closed, so nothing more can be sent; skip
    # the interpreter's wait for the SDK's consumer thread (and its atexit shutdown hook).
    os._exit(0)


def arm_watchdog(budget_s, why, report):
    """Ends the process after budget_s even if the SDK's exit hooks are still busy."""

    def fire():
        time.sleep(budget_s)
        report(f"within the {budget_s:g} s drain budget after {why}")
        log(f"still running {budget_s:g} s after {why} (SDK exit hooks); exiting 1")
        try:
            sys.stdout.flush()
        finally:
            os._exit(1)

    threading.Thread(target=fire, name="adapter-watchdog", daemon=True).start()


if __name__ == "__main__":
    main()
