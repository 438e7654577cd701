//! A long fuzz run over the request path, kept out of the default test run (`#[ignore]`):
//!
//! ```sh
//! PROPTEST_CASES=200000 cargo test -p amplitude-mock --test it fuzz:: -- --ignored
//! ```
//!
//! Arbitrary bytes and mutated valid uploads go through `bench_internals::ingest` (the pipeline of
//! `/2/httpapi` and `/batch`) and raw bytes through a real socket; nothing may panic, every
//! answer must be one of Amplitude's statuses (spec §4, §5), and the accounting identity
//! received = stored + deduplicated + rejected (spec §6) must hold after every input.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test code: a failure is a panic

use amplitude_mock::bench_internals::{ingest, Api};
use amplitude_mock::{MockClock, MockConfig, MockServer, MockState, ProjectConfig, Region};
use proptest::prelude::*;
use proptest::strategy::ValueTree;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const KEY: &str = "0123456789abcdef0123456789abcdef";

fn state() -> MockState {
    let config = MockConfig {
        projects: vec![ProjectConfig {
            api_key: KEY.into(),
            region: Region::Us,
            limits: None,
        }],
        ..MockConfig::default()
    };
    MockState::new(config, MockClock::virtual_at(1_700_000_000_000))
}

fn valid_upload() -> impl Strategy<Value = Vec<u8>> {
    let event = (
        proptest::option::of("[a-z0-9@._-]{0,12}"),
        proptest::option::of("[a-z0-9-]{0,12}"),
        proptest::option::of("[ -~]{0,10}"),
        proptest::option::of("[a-z0-9]{0,8}"),
        proptest::option::of(any::<i64>()),
    )
        .prop_map(|(user, device, event_type, insert_id, time)| {
            let mut m = serde_json::Map::new();
            if let Some(u) = user {
                m.insert("user_id".into(), u.into());
            }
            if let Some(d) = device {
                m.insert("device_id".into(), d.into());
            }
            if let Some(t) = event_type {
                m.insert("event_type".into(), t.into());
            }
            if let Some(i) = insert_id {
                m.insert("insert_id".into(), i.into());
            }
            if let Some(t) = time {
                m.insert("time".into(), t.into());
            }
            serde_json::Value::Object(m)
        });
    (proptest::collection::vec(event, 0..20), any::<bool>()).prop_map(|(events, good_key)| {
        let key = if good_key { KEY } else { "nope" };
        serde_json::to_vec(&serde_json::json!({"api_key": key, "events": events}))
            .unwrap_or_default()
    })
}

/// A valid upload with a few bytes flipped, inserted or cut.
fn mutated() -> impl Strategy<Value = Vec<u8>> {
    (
        valid_upload(),
        proptest::collection::vec((any::<prop::sample::Index>(), any::<u8>(), 0u8..3), 0..6),
    )
        .prop_map(|(mut body, edits)| {
            for (at, byte, op) in edits {
                if body.is_empty() {
                    break;
                }
                let i = at.index(body.len());
                match op {
                    0 => body[i] = byte,
                    1 => body.insert(i, byte),
                    _ => body.truncate(i),
                }
            }
            body
        })
}

fn check(state: &MockState, body: &[u8], id: u64) {
    let bytes = bytes::Bytes::copy_from_slice(body);
    for endpoint in [Api::HttpV2, Api::Batch] {
        let out = ingest(state, endpoint, Region::Us, &bytes, body.len(), id);
        assert!(
            [200, 400, 413, 429].contains(&out.body.code),
            "status {} for {:?}",
            out.body.code,
            String::from_utf8_lossy(body)
        );
        assert_eq!(out.reason.is_none(), out.body.code == 200);
    }
    let s = state.ledger().stats();
    assert_eq!(
        s.events_received,
        s.events_stored + s.events_deduplicated + s.events_rejected.total
    );
}

proptest! {
    #![proptest_config(ProptestConfig { cases: std::env::var("PROPTEST_CASES").ok().and_then(|v| v.parse().ok()).unwrap_or(2_000), failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    #[ignore = "long fuzz run: cargo test -p amplitude-mock --test it fuzz:: -- --ignored"]
    fn arbitrary_bytes(body in proptest::collection::vec(any::<u8>(), 0..512)) {
        check(&state(), &body, 1);
    }

    #[test]
    #[ignore = "long fuzz run: cargo test -p amplitude-mock --test it fuzz:: -- --ignored"]
    fn valid_and_mutated_uploads(bodies in proptest::collection::vec(prop_oneof![valid_upload(), mutated()], 1..8)) {
        let st = state();
        for (i, b) in bodies.iter().enumerate() {
            check(&st, b, i as u64 + 1);
        }
    }
}

#[tokio::test]
#[ignore = "long fuzz run: cargo test -p amplitude-mock --test it fuzz:: -- --ignored"]
async fn raw_bytes_on_the_socket_never_kill_the_mock() {
    let mock = MockServer::builder()
        .api_key(KEY)
        .read_timeout_ms(200)
        .start()
        .await;
    let mut runner = proptest::test_runner::TestRunner::deterministic();
    let strategy = proptest::collection::vec(any::<u8>(), 0..300);
    let cases: usize = std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(300);
    for _ in 0..cases {
        let junk = strategy.new_tree(&mut runner).unwrap().current();
        let mut s = tokio::net::TcpStream::connect(mock.address())
            .await
            .unwrap();
        let mut req = b"POST /2/httpapi HTTP/1.1\r\nHost: x\r\nConnection: close\r\n".to_vec();
        req.extend_from_slice(&junk);
        let _ = s.write_all(&req).await;
        let _ = s.shutdown().await;
        let mut out = Vec::new();
        let _ = s.read_to_end(&mut out).await;
    }
    let r = reqwest::get(format!("{}/__mock/stats", mock.uri()))
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 200, "still serving");
    let s = mock.stats();
    assert_eq!(
        s.events_received,
        s.events_stored + s.events_deduplicated + s.events_rejected.total
    );
}
