//! Bounded overload on loopback: many concurrent clients, flat out, for a fixed number of
//! requests (and at most a few seconds), mixing valid, invalid, duplicate and throttled
//! events with probabilistic faults. The mock must survive, keep its journal within its
//! capacity, stay under a memory ceiling, and keep its accounting exact:
//! received = stored + deduplicated + rejected, rejected = sum by reason (spec §6).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test code: a failure is a panic

use amplitude_mock::ledger::LedgerConfig;
use amplitude_mock::{Fault, Limits, MockConfig, MockServer, ProjectConfig, Region};
use serde_json::{json, Value};
use std::time::{Duration, Instant};

const KEY: &str = "0123456789abcdef0123456789abcdef";

/// Resident set size of this process, bytes (Linux).
fn rss_bytes() -> u64 {
    let statm = std::fs::read_to_string("/proc/self/statm").unwrap_or_default();
    statm
        .split_whitespace()
        .nth(1)
        .and_then(|p| p.parse::<u64>().ok())
        .unwrap_or(0)
        * 4096
}

fn request(client: usize, i: usize) -> Value {
    let events: Vec<Value> = (0..10)
        .map(|j| match (i + j) % 10 {
            // a hot device: throttled once over its EPS (spec §5.4)
            0 => json!({"device_id": "device-hot", "event_type": "e", "insert_id": format!("hot-{client}-{i}-{j}")}),
            // a retried event: deduplicated (spec §9)
            1 => json!({"device_id": format!("device-{client}"), "event_type": "e", "insert_id": format!("dup-{client}-{}", i % 7)}),
            _ => json!({"device_id": format!("device-{client}-{}", i % 50), "event_type": "e", "insert_id": format!("u-{client}-{i}-{j}")}),
        })
        .collect();
    if i % 13 == 0 {
        // an invalid event: the whole request is rejected (spec §6)
        return json!({"api_key": KEY, "events": [{"device_id": "device-x"}]});
    }
    json!({"api_key": KEY, "events": events})
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn overload_keeps_accounting_exact_and_memory_bounded() {
    let mut config = MockConfig {
        projects: vec![ProjectConfig {
            api_key: KEY.into(),
            region: Region::Us,
            limits: None,
        }],
        limits: Limits {
            eps_threshold_http_v2: 5,
            ..Limits::default()
        },
        ledger: LedgerConfig {
            journal_capacity: 500,
            max_events: 20_000,
            ..LedgerConfig::default()
        },
        seed: 99,
        ..MockConfig::default()
    };
    config.faults = vec![
        Fault::status(503).probability(0.03),
        Fault::status(500).committed(true).probability(0.03),
        Fault::reset().probability(0.01),
        Fault::empty_400().probability(0.01),
    ];
    let mock = MockServer::builder()
        .config(config)
        .virtual_clock(1_700_000_000_000)
        .start()
        .await;
    let rss_before = rss_bytes();
    const CLIENTS: usize = 16;
    const REQUESTS: usize = 250;
    let deadline = Instant::now() + Duration::from_secs(8);
    let mut tasks = Vec::new();
    for c in 0..CLIENTS {
        let url = format!("{}/2/httpapi", mock.uri());
        tasks.push(tokio::spawn(async move {
            let http = reqwest::Client::new();
            let (mut sent, mut failed) = (0usize, 0usize);
            for i in 0..REQUESTS {
                if Instant::now() > deadline {
                    break;
                }
                match http.post(&url).json(&request(c, i)).send().await {
                    Ok(r) => {
                        let _ = r.bytes().await;
                    }
                    Err(_) => failed += 1,
                }
                sent += 1;
            }
            (sent, failed)
        }));
    }
    let mut sent = 0;
    for t in tasks {
        sent += t.await.unwrap().0;
    }
    assert!(sent >= CLIENTS * 10, "the load ran: {sent} requests");
    let s = mock.stats();
    // spec §6: exact accounting
    assert_eq!(
        s.events_received,
        s.events_stored + s.events_deduplicated + s.events_rejected.total,
        "{s:?}"
    );
    assert_eq!(
        s.events_rejected.total,
        s.events_rejected.by_reason.values().sum::<u64>()
    );
    assert!(s.events_stored > 0 && s.events_deduplicated > 0, "{s:?}");
    use amplitude_mock::RejectReason;
    for reason in [
        RejectReason::Fault,
        RejectReason::Throttled,
        RejectReason::MissingEventFields,
    ] {
        assert!(
            s.events_rejected
                .by_reason
                .get(&reason)
                .is_some_and(|n| *n > 0),
            "no {reason}: {s:?}"
        );
    }
    // Every request is accounted for: answered or cut (the "cut" bucket).
    assert_eq!(
        s.requests_by_status
            .get(&amplitude_mock::StatusKey::Cut)
            .copied()
            .unwrap_or(0),
        s.requests_cut
    );
    let answered: u64 = s.requests_by_status.values().sum::<u64>();
    assert_eq!(answered, sent as u64, "{s:?}");
    // Bounded memory: journal and events within their caps, RSS under a generous ceiling.
    assert!(mock.requests().len() <= 500);
    assert!(mock.events().len() <= 20_000);
    let growth = rss_bytes().saturating_sub(rss_before);
    assert!(growth < 256 << 20, "RSS grew {} MiB", growth >> 20);
    // Still serving.
    let r = reqwest::get(format!("{}/__mock/stats", mock.uri()))
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 200);
}
