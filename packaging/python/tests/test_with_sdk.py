"""The amplitude-mock wheel's pytest plugin driving the official Python SDK (amplitude-analytics,
the version of conformance/adapters/python-sdk/requirements.txt).

Run by mock-server/tests/packages.rs in a fresh virtualenv where only the wheel, pytest and the
SDK are installed: the `amplitude_mock` fixture comes from the wheel's `pytest11` entry point.
The simplest use, quoted in README.md, is test_readme.py.
"""

import os
import sysconfig
import threading

import pytest
from amplitude import Amplitude, BaseEvent, Config

T0 = 1_700_000_000_000  # a virtual start time, ms since the epoch


class Outcomes:
    """The SDK's per-event callbacks; `wait(n)` blocks until n of them arrived."""

    def __init__(self):
        self.cond = threading.Condition()
        self.seen = []

    def __call__(self, event, code, message=None):
        with self.cond:
            self.seen.append((event.insert_id, code, message))
            self.cond.notify_all()

    def wait(self, n, timeout=30):
        with self.cond:
            if not self.cond.wait_for(lambda: len(self.seen) >= n, timeout):
                raise AssertionError(f"{n} SDK callbacks expected within {timeout} s, got {self.seen}")
            return list(self.seen)


@pytest.fixture
def sdk(amplitude_mock):
    """An SDK client sending to the mock with short timers, and its callbacks."""
    outcomes = Outcomes()
    clients = []

    def make(**config):
        config.setdefault("flush_interval_millis", 100)
        client = Amplitude("KEY", Config(server_url=amplitude_mock.http_v2_url, callback=outcomes, **config))
        clients.append(client)
        return client

    yield make, outcomes
    for client in clients:
        client.shutdown()


def test_the_plugin_and_the_binary_come_from_the_wheel(amplitude_mock):
    import amplitude_mock as package

    site = sysconfig.get_path("purelib")
    assert os.path.commonpath([package.__file__, site]) == site, package.__file__
    binary = package.binary_path()
    assert os.path.dirname(binary) == sysconfig.get_path("scripts"), binary
    assert amplitude_mock.url.startswith("http://127.0.0.1:")
    assert not amplitude_mock.url.endswith(":0")
    assert amplitude_mock.batch_url == amplitude_mock.url + "/batch"
    assert amplitude_mock.clock()["virtual_time"] is False


@pytest.mark.amplitude_mock(
    # 1 event/s per device over a 1 s window: the second request of a device is throttled.
    config={"limits": {"eps_threshold_http_v2": 1, "eps_window_ms": 1000}},
    virtual_clock=T0,
)
def test_a_lowered_eps_limit_answers_429(amplitude_mock, sdk):
    make, outcomes = sdk
    # One attempt per event: the 429 reaches the callback at once instead of a 30 s retry.
    client = make(flush_max_retries=1)
    for n in range(2):
        client.track(BaseEvent("Tick", device_id="device-1", event_properties={"n": n}))
    client.flush()
    assert [code for _, code, _ in outcomes.wait(2)] == [200, 200]

    client.track(BaseEvent("Tick", device_id="device-1", event_properties={"n": 2}))
    client.flush()
    assert outcomes.wait(3)[2][1] == 429

    last = amplitude_mock.requests()[-1]
    assert (last["status"], last["outcome"], last["stored"]) == (429, "throttled", 0)
    assert '"throttled_devices":{"device-1"' in last["response"]
    stats = amplitude_mock.stats()
    assert (stats["events_stored"], stats["events_throttled"]) == (2, 1)
    assert stats["requests_by_status"].get("429") == 1

    # The window drains when the mock's clock moves, not the wall clock.
    amplitude_mock.advance_clock(1_000)
    client.track(BaseEvent("Tick", device_id="device-1", event_properties={"n": 3}))
    client.flush()
    assert outcomes.wait(4)[3][1] == 200
    assert amplitude_mock.stats()["events_stored"] == 3


def test_a_retry_after_a_committed_500_is_deduplicated(amplitude_mock, sdk):
    make, outcomes = sdk
    # The first upload is stored, then answered 500: the SDK retries the same events.
    amplitude_mock.add_fault(kind="status", status=500, committed=True, count=1)
    client = make()
    for n in range(2):
        client.track(BaseEvent("Purchase", user_id="user-12345", event_properties={"n": n}))
    client.flush()
    seen = outcomes.wait(2)
    assert [code for _, code, _ in seen] == [200, 200]

    assert [(r["status"], r["stored"], r["deduplicated"]) for r in amplitude_mock.requests()] == [
        (500, 2, 0),
        (200, 0, 2),
    ]
    stats = amplitude_mock.stats()
    assert (stats["events_stored"], stats["events_deduplicated"]) == (2, 2)
    assert stats["faults"]["status"] == {"injected": 1, "committed": 1}
    stored = {e["event"]["insert_id"]: e["seq"] for e in amplitude_mock.events()}
    duplicates = {d["insert_id"]: d["duplicate_of"] for d in amplitude_mock.duplicates()}
    assert duplicates == stored == {insert_id: stored[insert_id] for insert_id, _, _ in seen}


def test_reset_forgets_the_events(amplitude_mock, sdk):
    make, outcomes = sdk
    client = make()
    client.track(BaseEvent("Tick", user_id="user-12345"))
    client.flush()
    outcomes.wait(1)
    assert len(amplitude_mock.events()) == 1
    amplitude_mock.reset()
    assert amplitude_mock.events() == []
    assert amplitude_mock.stats()["events_stored"] == 0


def test_a_failing_test_shows_the_mock_stderr(pytester):
    # An inner pytest run (the plugin loads from its entry point there too): the failure report
    # carries the mock's stderr, here its start-up log line.
    pytester.makepyfile(
        """
        def test_fails(amplitude_mock):
            assert amplitude_mock.stats()["events_stored"] == 1
        """
    )
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider")
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(
        [
            "*amplitude-mock stderr (call; *amplitude-mock.stderr.log)*",
            "*no --api-key given: any API key is accepted*",
        ]
    )


def test_options_fixture_and_marker(pytester):
    # amplitude_mock_options (overridden in a conftest) applies to every test; a marker on a
    # test adds to it, the closest marker winning.
    pytester.makeconftest(
        """
        import pytest

        @pytest.fixture
        def amplitude_mock_options():
            return {"api_keys": ["KEY-A"], "virtual_clock": 1_700_000_000_000}
        """
    )
    pytester.makepyfile(
        """
        import pytest

        pytestmark = pytest.mark.amplitude_mock(virtual_clock=1_600_000_000_000)

        def test_module_marker(amplitude_mock):
            assert amplitude_mock.clock()["now_ms"] == 1_600_000_000_000

        @pytest.mark.amplitude_mock(virtual_clock=1_500_000_000_000, seed=7)
        def test_closest_marker_wins(amplitude_mock):
            assert amplitude_mock.clock()["now_ms"] == 1_500_000_000_000
            assert amplitude_mock.faults()["seed"] == 7

        def test_unknown_key_is_refused(amplitude_mock):
            import json, urllib.request, urllib.error
            body = json.dumps({"api_key": "KEY-B", "events": [{"user_id": "user-12345", "event_type": "e"}]})
            req = urllib.request.Request(amplitude_mock.http_v2_url, data=body.encode(), headers={"content-type": "application/json"})
            opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
            try:
                opener.open(req)
                raise AssertionError("KEY-B accepted")
            except urllib.error.HTTPError as e:
                assert e.code == 400
            amplitude_mock.advance_clock(5)
            assert amplitude_mock.clock()["now_ms"] == 1_600_000_000_005
        """
    )
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider")
    result.assert_outcomes(passed=3)
