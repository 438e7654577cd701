//! The sender's async shell against wiremock with exact scripted responses: every response
//! branch end to end (HTTP, durable queue, dead-letter file, outcomes), and restart on the
//! same state directory.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use crate::common;
use amplitude_sender::queue::read_dead_letters;
use amplitude_sender::{Endpoint, Outcome, OutcomeKind, Sender, SenderConfig, SenderReport};
use amplitude_wire::{Event, UploadRequest};
use serde_json::json;
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};

use std::time::Duration;
use wiremock::matchers::{method, path};
use wiremock::{Mock, MockServer, Request, Respond, ResponseTemplate};

fn state_dir() -> PathBuf {
    common::state_dir("sender-wiremock")
}

fn event(seq: i64, device: &str) -> Event {
    common::seq_event(seq, device)
}

fn ok_body(n: usize) -> ResponseTemplate {
    ResponseTemplate::new(200).set_body_json(
        json!({"code":200,"events_ingested":n,"payload_size_bytes":1,"server_upload_time":1}),
    )
}

fn upload(req: &Request) -> UploadRequest {
    serde_json::from_slice(&req.body).unwrap()
}

fn seqs(req: &UploadRequest) -> Vec<i64> {
    req.events
        .as_ref()
        .unwrap()
        .iter()
        .map(|e| {
            e.event_properties.as_ref().unwrap()["conformance_seq"]
                .as_i64()
                .unwrap()
        })
        .collect()
}

/// Answers the n-th request with `f(n, request)`.
struct Scripted<F>(AtomicUsize, F);

impl<F: Fn(usize, &UploadRequest) -> ResponseTemplate + Send + Sync> Respond for Scripted<F> {
    fn respond(&self, req: &Request) -> ResponseTemplate {
        let n = self.0.fetch_add(1, Ordering::SeqCst);
        (self.1)(n, &upload(req))
    }
}

async fn server<F>(f: F) -> MockServer
where
    F: Fn(usize, &UploadRequest) -> ResponseTemplate + Send + Sync + 'static,
{
    let s = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/2/httpapi"))
        .respond_with(Scripted(AtomicUsize::new(0), f))
        .mount(&s)
        .await;
    s
}

fn config(s: &MockServer, dir: &std::path::Path) -> SenderConfig {
    let mut c = SenderConfig::new(
        "KEY",
        Endpoint::HttpV2,
        format!("{}/2/httpapi", s.uri()),
        dir,
    );
    c.core.flush_interval_ms = 20;
    c.core.throttle_pause_ms = 300;
    c.core.backoff.base_ms = 10;
    c.core.backoff.cap_ms = 40;
    c.core.seed = 7;
    c.request_timeout_ms = 2_000;
    c
}

async fn run(cfg: SenderConfig, events: Vec<Event>) -> (SenderReport, BTreeMap<i64, OutcomeKind>) {
    let (sender, mut rx) = Sender::start(cfg).await.unwrap();
    sender.send(events).await.unwrap();
    let report = sender.shutdown(Duration::from_secs(20)).await.unwrap();
    let mut out = BTreeMap::new();
    while let Ok(Outcome { seq, kind, .. }) = rx.try_recv() {
        assert!(
            out.insert(seq.unwrap(), kind).is_none(),
            "one outcome per event"
        );
    }
    (report, out)
}

#[tokio::test]
async fn a_200_confirms_every_event_and_the_queue_ends_empty() {
    // spec §4
    let s = server(|_, r| ok_body(r.events.as_ref().unwrap().len())).await;
    let dir = state_dir();
    let (report, out) = run(
        config(&s, &dir),
        (0..50)
            .map(|i| event(i, &format!("dev-{}", i % 5)))
            .collect(),
    )
    .await;
    assert_eq!(report.stats.delivered, 50);
    assert_eq!(report.left_in_queue, 0);
    assert!(out.values().all(|k| *k == OutcomeKind::Delivered));
    assert_eq!(out.len(), 50);
    let reqs = s.received_requests().await.unwrap();
    let mut sent: Vec<i64> = reqs.iter().flat_map(|r| seqs(&upload(r))).collect();
    sent.sort_unstable();
    assert_eq!(sent, (0..50).collect::<Vec<_>>());
    for r in &reqs {
        assert_eq!(r.headers.get("content-type").unwrap(), "application/json");
        assert!(upload(r)
            .events
            .unwrap()
            .iter()
            .all(|e| e.insert_id.as_ref().is_some_and(|i| i.len() == 36)));
    }
    // a restart finds nothing to resend
    let (again, _) = run(config(&s, &dir), vec![]).await;
    assert_eq!(again.recovered, 0);
}

#[tokio::test]
async fn an_invalid_api_key_stops_the_project_and_dead_letters_with_the_reason() {
    // spec §5.1, §7 invalid-key detection
    let s = server(|_, _| {
        ResponseTemplate::new(400).set_body_json(json!({"code":400,"error":"Invalid API key: KEY"}))
    })
    .await;
    let dir = state_dir();
    let (report, out) = run(
        config(&s, &dir),
        (0..10).map(|i| event(i, "dev-1")).collect(),
    )
    .await;
    assert!(report
        .stopped
        .as_deref()
        .is_some_and(|r| r.contains("Invalid API key: KEY")));
    assert_eq!(report.stats.dead_lettered, 10);
    assert!(out
        .values()
        .all(|k| matches!(k, OutcomeKind::DeadLettered(r) if r.contains("Invalid API key"))));
    let dl = read_dead_letters(&dir).unwrap();
    assert_eq!(dl.len(), 10);
    assert!(dl
        .iter()
        .all(|(e, r)| r.contains("Invalid API key")
            && e["event_properties"]["conformance_seq"].is_i64()));
    assert_eq!(
        s.received_requests().await.unwrap().len(),
        1,
        "stopped after the first 400"
    );
}

#[tokio::test]
async fn a_400_with_indexes_dead_letters_exactly_those_and_resends_the_rest() {
    // spec §5.1 / §6: the request was rejected whole; drop the named events, resend the rest
    let s = server(|n, r| {
        let seqs = seqs(r);
        if n == 0 {
            let bad: Vec<usize> = seqs.iter().enumerate().filter(|(_, s)| **s % 4 == 1).map(|(i, _)| i).collect();
            ResponseTemplate::new(400).set_body_json(json!({"code":400,"error":"Invalid id length for user_id or device_id","events_with_invalid_id_lengths":{"device_id":bad}}))
        } else {
            ok_body(seqs.len())
        }
    })
    .await;
    let dir = state_dir();
    let (report, out) = run(
        config(&s, &dir),
        (0..12).map(|i| event(i, "dev-1")).collect(),
    )
    .await;
    let dropped: Vec<i64> = out
        .iter()
        .filter(|(_, k)| matches!(k, OutcomeKind::DeadLettered(_)))
        .map(|(s, _)| *s)
        .collect();
    assert_eq!(dropped, vec![1, 5, 9]);
    assert_eq!(report.stats.delivered, 9);
    let dl = read_dead_letters(&dir).unwrap();
    assert_eq!(dl.len(), 3);
    assert!(dl
        .iter()
        .all(|(_, r)| r.contains("events_with_invalid_id_lengths.device_id")));
    let reqs = s.received_requests().await.unwrap();
    assert_eq!(reqs.len(), 2);
    assert_eq!(seqs(&upload(&reqs[1])), vec![0, 2, 3, 4, 6, 7, 8, 10, 11]);
}

#[tokio::test]
async fn a_413_splits_the_batch_in_half_and_a_lone_event_is_dead_lettered() {
    // spec §5.3
    let s = server(|_, r| {
        let seqs = seqs(r);
        if seqs.len() > 2 || seqs.contains(&3) {
            ResponseTemplate::new(413)
                .set_body_json(json!({"code":413,"error":"Payload too large"}))
        } else {
            ok_body(seqs.len())
        }
    })
    .await;
    let dir = state_dir();
    let (report, out) = run(
        config(&s, &dir),
        (0..8).map(|i| event(i, "dev-1")).collect(),
    )
    .await;
    assert!(matches!(&out[&3], OutcomeKind::DeadLettered(r) if r.contains("413")));
    assert_eq!(report.stats.delivered, 7);
    let sizes: Vec<usize> = s
        .received_requests()
        .await
        .unwrap()
        .iter()
        .map(|r| seqs(&upload(r)).len())
        .collect();
    assert_eq!(sizes[..3], [8, 4, 2], "halving: {sizes:?}");
    assert_eq!(read_dead_letters(&dir).unwrap().len(), 1);
}

#[tokio::test]
async fn a_429_pauses_the_hot_device_and_resends_the_cold_one_at_once() {
    // spec §5.4 / §6: throttled_events wait (300 ms here, 30 s by default); others go now
    let s = server(|n, r| {
        let evs = r.events.as_ref().unwrap();
        if n == 0 {
            let hot: Vec<usize> = evs.iter().enumerate().filter(|(_, e)| e.device_id.as_deref() == Some("hot")).map(|(i, _)| i).collect();
            ResponseTemplate::new(429).set_body_json(json!({"code":429,"error":"Too many requests for some devices and users","eps_threshold":30,
                "throttled_devices":{"hot":45},"throttled_users":{},"throttled_events":hot,"exceeded_daily_quota_users":{},"exceeded_daily_quota_devices":{}}))
        } else {
            ok_body(evs.len())
        }
    })
    .await;
    let dir = state_dir();
    let evs = (0..10)
        .map(|i| event(i, if i % 2 == 0 { "hot" } else { "cold" }))
        .collect();
    let t0 = std::time::Instant::now();
    let (report, out) = run(config(&s, &dir), evs).await;
    assert_eq!(report.stats.delivered, 10);
    assert!(out.values().all(|k| *k == OutcomeKind::Delivered));
    let reqs: Vec<UploadRequest> = s
        .received_requests()
        .await
        .unwrap()
        .iter()
        .map(upload)
        .collect();
    assert_eq!(reqs.len(), 3);
    assert_eq!(seqs(&reqs[1]), vec![1, 3, 5, 7, 9], "cold resent at once");
    assert_eq!(
        seqs(&reqs[2]),
        vec![0, 2, 4, 6, 8],
        "hot after its pause, in order"
    );
    assert!(
        t0.elapsed() >= Duration::from_millis(300),
        "the pause was honoured"
    );
    assert_eq!(report.stats.throttled_events, 5);
}

#[tokio::test]
async fn server_errors_timeouts_and_bad_bodies_are_retried_with_the_same_insert_ids() {
    // spec §5.5, §5.6, §4 (a 200 must carry JSON): retry, never drop
    let s = server(|n, r| match n {
        0 => ResponseTemplate::new(503).set_body_string("<html>unavailable</html>"),
        1 => ResponseTemplate::new(500).set_body_json(json!({"code":500})),
        2 => ResponseTemplate::new(200).set_body_string("{\"code\":200,\"events_ingest"),
        3 => ResponseTemplate::new(200).set_body_json(json!({"code":503})),
        4 => ok_body(1).set_delay(Duration::from_millis(700)),
        _ => ok_body(r.events.as_ref().unwrap().len()),
    })
    .await;
    let dir = state_dir();
    let mut cfg = config(&s, &dir);
    cfg.request_timeout_ms = 300;
    let (report, out) = run(cfg, (0..4).map(|i| event(i, "dev-1")).collect()).await;
    assert!(out.values().all(|k| *k == OutcomeKind::Delivered));
    assert_eq!(report.stats.retries, 5);
    let reqs: Vec<UploadRequest> = s
        .received_requests()
        .await
        .unwrap()
        .iter()
        .map(upload)
        .collect();
    assert_eq!(reqs.len(), 6);
    let ids = |r: &UploadRequest| {
        r.events
            .as_ref()
            .unwrap()
            .iter()
            .map(|e| e.insert_id.clone().unwrap())
            .collect::<Vec<_>>()
    };
    for r in &reqs[1..] {
        assert_eq!(ids(r), ids(&reqs[0]));
    }
}

#[tokio::test]
async fn undelivered_events_survive_a_restart_with_their_insert_ids() {
    // issue: persisted before acknowledged; after a restart, resent with the original insert_id
    let failing = server(|_, _| ResponseTemplate::new(503)).await;
    let dir = state_dir();
    let (first, out) = run_with_deadline(
        config(&failing, &dir),
        (0..20)
            .map(|i| event(i, &format!("dev-{}", i % 3)))
            .collect(),
        200,
    )
    .await;
    assert_eq!(first.left_in_queue, 20);
    // neither delivered nor dropped: still queued, reported held
    assert_eq!(out.len(), 20);
    assert!(
        out.iter().all(|o| matches!(&o.kind, OutcomeKind::Held(r)
            if r.starts_with("in the durable queue at exit (drain deadline of 200 ms reached; "))),
        "{out:?}"
    );
    let first_ids: BTreeMap<i64, String> = failing
        .received_requests()
        .await
        .unwrap()
        .iter()
        .flat_map(|r| {
            upload(r).events.unwrap().into_iter().map(|e| {
                (
                    e.event_properties.unwrap()["conformance_seq"]
                        .as_i64()
                        .unwrap(),
                    e.insert_id.unwrap(),
                )
            })
        })
        .collect();
    assert!(!first_ids.is_empty());
    let good = server(|_, r| ok_body(r.events.as_ref().unwrap().len())).await;
    let (second, out) = run(config(&good, &dir), vec![]).await;
    assert_eq!(second.recovered, 20);
    assert_eq!(out.len(), 20);
    let resent: BTreeMap<i64, String> = good
        .received_requests()
        .await
        .unwrap()
        .iter()
        .flat_map(|r| {
            upload(r).events.unwrap().into_iter().map(|e| {
                (
                    e.event_properties.unwrap()["conformance_seq"]
                        .as_i64()
                        .unwrap(),
                    e.insert_id.unwrap(),
                )
            })
        })
        .collect();
    assert_eq!(resent.len(), 20);
    for (seq, id) in &first_ids {
        assert_eq!(&resent[seq], id, "seq {seq} kept its insert_id");
    }
    // per-device order after the restart (spec §9)
    for r in good.received_requests().await.unwrap() {
        let u = upload(&r);
        let mut last: BTreeMap<String, i64> = BTreeMap::new();
        for e in u.events.unwrap() {
            let s = e.event_properties.unwrap()["conformance_seq"]
                .as_i64()
                .unwrap();
            if let Some(p) = last.insert(e.device_id.unwrap(), s) {
                assert!(p < s);
            }
        }
    }
}

async fn run_with_deadline(
    cfg: SenderConfig,
    events: Vec<Event>,
    ms: u64,
) -> (SenderReport, Vec<Outcome>) {
    let (sender, mut rx) = Sender::start(cfg).await.unwrap();
    sender.send(events).await.unwrap();
    let report = sender.shutdown(Duration::from_millis(ms)).await.unwrap();
    let mut out = Vec::new();
    while let Ok(o) = rx.try_recv() {
        out.push(o);
    }
    (report, out)
}
