//! Property tests over real HTTP: whatever arrives, the mock answers with one of Amplitude's
//! JSON bodies whose `code` equals the HTTP status (spec §4, §14 item 5), never crashes, and
//! accepts every valid request whole (spec §6).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use crate::common::KEY;
use amplitude_mock::{Limits, MockServer};
use proptest::prelude::*;
use serde_json::{json, Value};
use std::sync::OnceLock;

struct Fixture {
    rt: tokio::runtime::Runtime,
    mock: MockServer,
    client: reqwest::Client,
}

/// One mock for all cases; limits raised so random traffic is never throttled.
fn fixture() -> &'static Fixture {
    static F: OnceLock<Fixture> = OnceLock::new();
    F.get_or_init(|| {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap();
        let limits = Limits {
            eps_threshold_http_v2: 1_000_000,
            eps_threshold_batch: 1_000_000,
            daily_quota: u64::MAX,
            ..Limits::default()
        };
        let mock = rt.block_on(crate::common::builder().limits(limits).start());
        Fixture {
            rt,
            mock,
            client: reqwest::Client::new(),
        }
    })
}

/// POSTs `body` to `path`; returns (HTTP status, body text).
fn post(path: &str, body: Vec<u8>) -> (u16, String) {
    let f = fixture();
    f.rt.block_on(async {
        let r = f
            .client
            .post(format!("{}{path}", f.mock.uri()))
            .body(body)
            .send()
            .await
            .unwrap();
        (r.status().as_u16(), r.text().await.unwrap())
    })
}

fn assert_amplitude_body(status: u16, text: &str) {
    let v: Value = serde_json::from_str(text).unwrap_or_else(|_| panic!("non-JSON body {text:?}"));
    assert_eq!(v["code"].as_u64(), Some(u64::from(status)), "{text}");
    assert!([200, 400, 413, 429].contains(&status), "{status} {text}");
    if status == 200 {
        for k in [
            "events_ingested",
            "payload_size_bytes",
            "server_upload_time",
        ] {
            assert!(v[k].is_u64(), "{k} missing in {text}");
        }
    }
}

fn arb_json() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::from),
        any::<i64>().prop_map(Value::from),
        "[ -~]{0,12}".prop_map(Value::from),
    ];
    leaf.prop_recursive(4, 32, 6, |inner| {
        prop_oneof![
            proptest::collection::vec(inner.clone(), 0..6).prop_map(Value::from),
            proptest::collection::btree_map(
                "(api_key|events|options|user_id|device_id|event_type|time|insert_id|[a-z]{1,6})",
                inner,
                0..6
            )
            .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

fn valid_event() -> impl Strategy<Value = Value> {
    (
        "[a-z]{5,12}",
        "[A-Za-z ]{1,20}",
        proptest::option::of("[0-9a-f]{16}"),
        proptest::option::of(0i64..4_000_000_000_000),
    )
        .prop_map(|(device, event_type, insert_id, time)| {
            let mut e = json!({"device_id": format!("dev-{device}"), "event_type": event_type});
            if let Some(i) = insert_id {
                e["insert_id"] = i.into();
            }
            if let Some(t) = time {
                e["time"] = t.into();
            }
            e
        })
}

fn mutate(mut body: Vec<u8>, edits: Vec<(prop::sample::Index, u8, u8)>) -> Vec<u8> {
    for (at, byte, op) in edits {
        if body.is_empty() {
            break;
        }
        let i = at.index(body.len());
        match op % 3 {
            0 => body[i] = byte,
            1 => body.insert(i, byte),
            _ => body.truncate(i),
        }
    }
    body
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn arbitrary_bytes_get_an_amplitude_body(body in proptest::collection::vec(any::<u8>(), 0..256), batch in any::<bool>()) {
        let (status, text) = post(if batch { "/batch" } else { "/2/httpapi" }, body);
        assert_amplitude_body(status, &text);
    }

    #[test]
    fn arbitrary_json_gets_an_amplitude_body(v in arb_json()) {
        let (status, text) = post("/2/httpapi", serde_json::to_vec(&v).unwrap());
        assert_amplitude_body(status, &text);
    }

    #[test]
    fn mutated_valid_requests_get_an_amplitude_body(
        events in proptest::collection::vec(valid_event(), 1..10),
        edits in proptest::collection::vec((any::<prop::sample::Index>(), any::<u8>(), any::<u8>()), 1..6),
    ) {
        let body = serde_json::to_vec(&json!({"api_key": KEY, "events": events})).unwrap();
        let (status, text) = post("/2/httpapi", mutate(body, edits));
        assert_amplitude_body(status, &text);
    }

    #[test]
    fn valid_requests_are_accepted_whole(events in proptest::collection::vec(valid_event(), 0..40), batch in any::<bool>()) {
        // spec §4, §6: 200 with events_ingested = the number of events (duplicates included
        // by the default profile, spec §9)
        let n = events.len() as u64;
        let (status, text) = post(if batch { "/batch" } else { "/2/httpapi" }, serde_json::to_vec(&json!({"api_key": KEY, "events": events})).unwrap());
        prop_assert_eq!(status, 200, "{}", text);
        let v: Value = serde_json::from_str(&text).unwrap();
        prop_assert_eq!(v["events_ingested"].as_u64(), Some(n));
    }
}

#[test]
fn the_mock_is_still_consistent_after_the_storm() {
    // spec §6: stored + deduplicated + rejected = received, whatever came before
    let s = fixture().mock.stats();
    assert_eq!(
        s.events_received,
        s.events_stored + s.events_deduplicated + s.events_rejected.total
    );
}
