# Quoted whole in README.md ("Use the mock in your CI", Python), from the line after this comment;
# mock-server/tests/it/readme.rs checks that the two stay byte-identical.
from amplitude import Amplitude, BaseEvent, Config


def test_every_event_is_stored_once(amplitude_mock):
    client = Amplitude("KEY", Config(server_url=amplitude_mock.http_v2_url, flush_interval_millis=100))
    for n in range(3):
        client.track(BaseEvent("Song Played", user_id="user-12345", event_properties={"n": n}))
    client.shutdown()  # flushes, and waits for the upload

    stored = [e["event"] for e in amplitude_mock.events()]
    assert [(e["event_type"], e["event_properties"]["n"]) for e in stored] == [
        ("Song Played", 0),
        ("Song Played", 1),
        ("Song Played", 2),
    ]
    assert amplitude_mock.stats()["events_stored"] == 3
