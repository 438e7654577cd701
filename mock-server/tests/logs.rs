//! API keys sent to the mock never appear in its logs (human or JSON) nor in
//! `/__mock/requests`, whether the key is valid, invalid (spec §5.1 echoes it to the client
//! only), sent to identify in a query string (spec §10), or in a request a fault took.
//!
//! The one integration test outside `tests/it/`: it installs a tracing subscriber, and
//! tracing's per-call-site interest cache is process-wide, so other tests running in
//! parallel in the same process could make it miss the mock's log lines.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test code: a failure is a panic

use amplitude_mock::MockServer;
use serde_json::json;
use std::io::Write;
use std::sync::{Arc, Mutex};

const KEY: &str = "0123456789abcdef0123456789abcdef";
const BAD_KEY: &str = "ffffeeeeddddccccbbbbaaaa99998888";

#[derive(Clone, Default)]
struct Buf(Arc<Mutex<Vec<u8>>>);

impl Write for Buf {
    fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(b);
        Ok(b.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

async fn traffic(mock: &MockServer) {
    let http = reqwest::Client::new();
    let ev = json!([{"device_id": "device-redact", "event_type": "e", "insert_id": "r1"}]);
    for key in [KEY, BAD_KEY] {
        let r = http
            .post(format!("{}/2/httpapi", mock.uri()))
            .json(&json!({"api_key": key, "events": ev}))
            .send()
            .await
            .unwrap();
        let text = r.text().await.unwrap();
        if key == BAD_KEY {
            assert!(
                text.contains(BAD_KEY),
                "spec §5.1: the client itself sees its key: {text}"
            );
        }
    }
    mock.faults()
        .push(amplitude_mock::Fault::status(500).committed(true).count(1))
        .unwrap();
    http.post(format!("{}/batch", mock.uri()))
        .json(&json!({"api_key": KEY, "events": ev}))
        .send()
        .await
        .unwrap();
    mock.faults()
        .push(amplitude_mock::Fault::status(503).count(1))
        .unwrap();
    http.post(format!("{}/2/httpapi", mock.uri()))
        .json(&json!({"api_key": BAD_KEY, "events": ev}))
        .send()
        .await
        .unwrap();
    let ident =
        json!([{"user_id": "user-redact-1", "user_properties": {"$set": {"a": 1}}}]).to_string();
    for key in [KEY, BAD_KEY] {
        http.get(format!("{}/identify", mock.uri()))
            .query(&[("api_key", key), ("identification", ident.as_str())])
            .send()
            .await
            .unwrap();
    }
}

#[tokio::test]
async fn api_keys_never_appear_in_logs_or_the_journal() {
    for json_logs in [false, true] {
        let buf = Buf::default();
        let writer = buf.clone();
        let builder = tracing_subscriber::fmt()
            .with_max_level(tracing::Level::TRACE)
            .with_writer(move || writer.clone())
            .with_ansi(false);
        let _guard = if json_logs {
            tracing::subscriber::set_default(builder.json().finish())
        } else {
            tracing::subscriber::set_default(builder.finish())
        };
        let mock = MockServer::builder()
            .api_key(KEY)
            .virtual_clock(1_700_000_000_000)
            .start()
            .await;
        traffic(&mock).await;
        let journal = reqwest::get(format!("{}/__mock/requests", mock.uri()))
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        drop(mock);
        let logs = String::from_utf8(buf.0.lock().unwrap().clone()).unwrap();
        assert!(
            logs.contains("fault injected"),
            "the logs were captured: {logs}"
        );
        assert!(logs.contains("0123…"), "keys are logged redacted: {logs}");
        let entries: serde_json::Value = serde_json::from_str(&journal).unwrap();
        assert_eq!(entries.as_array().unwrap().len(), 6, "{journal}");
        for key in [KEY, BAD_KEY] {
            assert!(
                !logs.contains(key),
                "key in the logs (json={json_logs}):\n{logs}"
            );
            assert!(
                !journal.contains(key),
                "key in /__mock/requests:\n{journal}"
            );
        }
    }
}

/// Issue 20, G: under the benchmark profile, a run that deduplicated (a repeated
/// `insert_id`) warns when the mock is dropped; a clean run does not.
#[tokio::test]
async fn a_benchmark_run_that_was_not_pure_delivery_warns_on_drop() {
    for repeat in [false, true] {
        let buf = Buf::default();
        let writer = buf.clone();
        let _guard = tracing::subscriber::set_default(
            tracing_subscriber::fmt()
                .with_max_level(tracing::Level::WARN)
                .with_writer(move || writer.clone())
                .with_ansi(false)
                .finish(),
        );
        let mock = MockServer::builder()
            .api_key(KEY)
            .profile_for_benchmarks()
            .start()
            .await;
        let http = reqwest::Client::new();
        for i in 0..2 {
            let insert_id = if repeat {
                "same".to_owned()
            } else {
                format!("fresh-{i}")
            };
            let ev =
                json!([{"device_id": "device-bench", "event_type": "e", "insert_id": insert_id}]);
            let r = http
                .post(format!("{}/2/httpapi", mock.uri()))
                .json(&json!({"api_key": KEY, "events": ev}))
                .send()
                .await
                .unwrap();
            assert_eq!(r.status(), 200);
        }
        assert_eq!(mock.stats().events_deduplicated, u64::from(repeat));
        drop(mock);
        let logs = String::from_utf8(buf.0.lock().unwrap().clone()).unwrap();
        assert_eq!(
            logs.contains("this benchmark run was not pure delivery")
                && logs.contains("deduplicated=1"),
            repeat,
            "{logs}"
        );
    }
}
