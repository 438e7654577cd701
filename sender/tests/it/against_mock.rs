//! The reference sender against the project's Amplitude mock: faults, validation 400s and
//! per-identity limits, checked on what the mock stored.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use crate::common;
use amplitude_mock::{Fault, Limits, MockServer};
use amplitude_sender::queue::read_dead_letters;
use amplitude_sender::{Endpoint, OutcomeKind, Sender, SenderConfig, SenderReport};
use amplitude_wire::Event;
use serde_json::json;
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

fn state_dir() -> PathBuf {
    common::state_dir("sender-mock")
}

fn event(seq: i64, device: &str) -> Event {
    common::seq_event(seq, device)
}

fn config(mock: &MockServer, dir: &std::path::Path) -> SenderConfig {
    let mut c = SenderConfig::new(
        "KEY",
        Endpoint::HttpV2,
        format!("{}/2/httpapi", mock.uri()),
        dir,
    );
    c.core.flush_interval_ms = 20;
    c.core.batch_size = 100;
    c.core.backoff.base_ms = 10;
    c.core.backoff.cap_ms = 100;
    c.core.seed = 11;
    c.request_timeout_ms = 1_000;
    c
}

/// seq -> how many times the mock stored it.
fn stored(mock: &MockServer) -> BTreeMap<i64, usize> {
    let mut out = BTreeMap::new();
    for e in mock.events() {
        let v: serde_json::Value = serde_json::from_str(e.event.get()).unwrap();
        *out.entry(v["event_properties"]["conformance_seq"].as_i64().unwrap())
            .or_default() += 1;
    }
    out
}

async fn run(cfg: SenderConfig, events: Vec<Event>) -> (SenderReport, BTreeMap<i64, OutcomeKind>) {
    let (sender, mut rx) = Sender::start(cfg).await.unwrap();
    sender.send(events).await.unwrap();
    let report = sender.shutdown(Duration::from_secs(30)).await.unwrap();
    let mut out = BTreeMap::new();
    while let Ok(o) = rx.try_recv() {
        assert!(out.insert(o.seq.unwrap(), o.kind).is_none());
    }
    (report, out)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn faults_never_lose_an_event_and_resends_are_only_deduplicated() {
    // spec §5.5 (503 never committed, 500 maybe committed), §5.6 resets, §9 dedup on insert_id
    let mock = MockServer::builder()
        .api_key("KEY")
        .seed(5)
        .fault(Fault::status(503).count(2))
        .fault(Fault::status(500).committed(true).count(2))
        .fault(Fault::reset().count(1))
        .fault(Fault::truncate().count(1))
        .fault(Fault::html(502).count(1))
        .fault(Fault::status(504).committed(true).probability(0.1))
        .start()
        .await;
    let dir = state_dir();
    let events = (0..1_000)
        .map(|i| event(i, &format!("device-{:02}", i % 10)))
        .collect();
    let (report, out) = run(config(&mock, &dir), events).await;
    let got = stored(&mock);
    assert_eq!(got.len(), 1_000, "every event stored");
    assert!(got.values().all(|n| *n == 1), "stored once each");
    assert!(out.values().all(|k| *k == OutcomeKind::Delivered));
    assert_eq!(report.stats.delivered, 1_000);
    assert!(
        report.stats.retries >= 7,
        "retries: {}",
        report.stats.retries
    );
    assert!(
        mock.stats().events_deduplicated > 0,
        "committed faults were re-sent with their insert_id"
    );
    assert!(read_dead_letters(&dir).unwrap().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn events_the_mock_rejects_are_dead_lettered_and_the_rest_stored() {
    // spec §5.1 / §6: 400 with event indexes; the valid events are resent and stored
    let mock = MockServer::builder().api_key("KEY").start().await;
    let dir = state_dir();
    let mut events: Vec<Event> = (0..60)
        .map(|i| event(i, &format!("device-{}", i % 3)))
        .collect();
    events[7].event_type = None; // events_with_missing_fields
    events[21].time = None;
    events[21].extra.insert("time".into(), json!("2024-01-01")); // invalid field
    events[40].device_id = Some("null".into()); // invalid id value
    let (report, out) = run(config(&mock, &dir), events).await;
    let dropped: Vec<i64> = out
        .iter()
        .filter(|(_, k)| matches!(k, OutcomeKind::DeadLettered(_)))
        .map(|(s, _)| *s)
        .collect();
    assert_eq!(dropped, vec![7, 21, 40]);
    let got = stored(&mock);
    assert_eq!(got.len(), 57);
    assert!(got.values().all(|n| *n == 1));
    assert_eq!(report.stats.dead_lettered, 3);
    let dl = read_dead_letters(&dir).unwrap();
    assert_eq!(dl.len(), 3);
    assert!(dl.iter().all(|(_, r)| r.starts_with("400")), "{dl:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_invalid_key_is_reported_and_nothing_is_stored() {
    // spec §5.1 invalid key
    let mock = MockServer::builder().api_key("KEY").start().await;
    let dir = state_dir();
    let mut cfg = config(&mock, &dir);
    cfg.core.api_key = "WRONG".into();
    let (report, out) = run(cfg, (0..5).map(|i| event(i, "device-1")).collect()).await;
    assert!(report
        .stopped
        .is_some_and(|r| r.contains("Invalid API key")));
    assert_eq!(out.len(), 5);
    assert!(mock.events().is_empty());
    assert_eq!(read_dead_letters(&dir).unwrap().len(), 5);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hot_device_is_paced_while_a_cold_one_stays_fast() {
    // spec §8.1 / §8.3 with a small window (100 events/s over 3 s) so the test takes seconds
    let limits = Limits {
        eps_threshold_http_v2: 100,
        eps_window_ms: 3_000,
        ..Limits::default()
    };
    let mock = MockServer::builder()
        .api_key("KEY")
        .limits(limits)
        .start()
        .await;
    let dir = state_dir();
    let mut cfg = config(&mock, &dir);
    cfg.core.identity_eps_limit = Some(100);
    cfg.core.eps_window_ms = 3_000;
    cfg.core.throttle_pause_ms = 3_000;
    cfg.core.batch_size = 1_000;
    let (sender, mut rx) = Sender::start(cfg).await.unwrap();
    let t0 = epoch_ms();
    sender
        .send((0..600).map(|i| event(i, "hot-device")).collect())
        .await
        .unwrap();
    let mut cold_sent = BTreeMap::new();
    for i in 0..15 {
        cold_sent.insert(1_000 + i, epoch_ms());
        sender
            .send(vec![event(1_000 + i, "cold-device")])
            .await
            .unwrap();
        tokio::time::sleep(Duration::from_millis(200)).await; // load shape, not a wait
    }
    let report = sender.shutdown(Duration::from_secs(30)).await.unwrap();
    while let Ok(o) = rx.try_recv() {
        assert_eq!(o.kind, OutcomeKind::Delivered);
    }
    let got = stored(&mock);
    assert_eq!(got.len(), 615);
    assert!(got.values().all(|n| *n == 1));
    assert_eq!(report.stats.delivered, 615);
    // timing from the mock's ledger (server upload times, ms since the epoch)
    let mut last_hot = 0i64;
    let mut worst_cold = 0i64;
    for e in mock.events() {
        let v: serde_json::Value = serde_json::from_str(e.event.get()).unwrap();
        let seq = v["event_properties"]["conformance_seq"].as_i64().unwrap();
        match cold_sent.get(&seq) {
            Some(sent) => worst_cold = worst_cold.max(e.server_upload_time - sent),
            None => last_hot = last_hot.max(e.server_upload_time),
        }
    }
    let hot_done = last_hot - t0;
    // 600 events at 100/s over a 3 s sliding window: 300 now, 300 after 3 s
    assert!(
        hot_done >= 2_900,
        "faster than the limit allows: {hot_done} ms"
    );
    assert!(hot_done <= 6_600, "hot drained in {hot_done} ms");
    // cold events were stored soon after they were sent, while the hot device waited
    assert!(worst_cold <= 1_000, "cold latency {worst_cold} ms");
}

fn epoch_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}
