//! Reference sender throughput, events/s: `Sender` (durable queue with group fsync, batching,
//! keep-alive HTTP, responses fed back) delivering N events from 1,000 users/devices into an
//! in-process mock over loopback, on both endpoints, for batch sizes 1, 10, 100, 1,000 and
//! 2,000. One iteration = hand over N JSON lines (in groups of 2,000, like the CLI) and shut
//! down, i.e. until every event is confirmed by a 200.
//!
//! The mock's limits are raised and the sender's pacing is off: this measures the sender's
//! machinery, not Amplitude's throttling (see `compare.sh` for the drain under throttling).

// Benchmarks may unwrap (team rule): a failure here is a broken bench, not a product bug.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use amplitude_mock::MockServer;
use amplitude_sender::{Endpoint, Sender, SenderConfig};
use criterion::{BenchmarkId, Criterion, Throughput};
use std::time::{Duration, Instant};

/// API key of the benchmark project.
const API_KEY: &str = "bench0123456789abcdef0123456789ab";

/// One realistic event (about 330 bytes), as `amplitude_benches::event_json` writes it (copied
/// here: this crate does not depend on the benches crate).
fn event_json(i: usize, identities: usize) -> String {
    let who = i % identities.max(1);
    let props = if i % 20 == 0 {
        r#","user_properties":{"$set":{"plan":"pro","cohort":"2023-11"}}"#
    } else {
        ""
    };
    format!(
        concat!(
            r#"{{"user_id":"user-{who:06}","device_id":"device-{who:06}-a1b2c3","event_type":"Button Clicked","#,
            r#""time":{t},"insert_id":"b-000000000000-{i:08}","platform":"Web","os_name":"Chrome","os_version":"119","#,
            r#""app_version":"2.31.0","language":"en-US","ip":"127.0.0.1","session_id":{t},"#,
            r#""event_properties":{{"button":"signup","page":"/pricing","experiment":"B","value":12.5,"conformance_seq":{i}}}{props}}}"#
        ),
        who = who,
        t = 1_700_000_000_000i64,
        i = i,
        props = props,
    )
}

const BATCH_SIZES: [usize; 5] = [1, 10, 100, 1_000, 2_000];
const IDENTITIES: usize = 1_000;

/// Events per iteration: enough requests to reach steady state, bounded in time.
fn events_for(batch: usize) -> usize {
    (batch * 20).clamp(2_000, 40_000)
}

fn lines(n: usize, round: u64) -> Vec<String> {
    let stamp = format!("{round:012}");
    (0..n)
        .map(|i| event_json(i, IDENTITIES).replacen("b-000000000000", &format!("b-{stamp}"), 1))
        .collect()
}

async fn deliver(url: &str, endpoint: Endpoint, batch: usize, lines: Vec<String>) -> Duration {
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = SenderConfig::new(API_KEY, endpoint, url, dir.path());
    cfg.core.batch_size = batch;
    cfg.core.flush_interval_ms = 5;
    cfg.core.identity_eps_limit = None;
    cfg.core.property_updates_per_window = None;
    let n = lines.len() as u64;
    let (sender, mut outcomes) = Sender::start(cfg).await.unwrap();
    let drain = tokio::spawn(async move { while outcomes.recv().await.is_some() {} });
    let start = Instant::now();
    let mut lines = lines;
    while !lines.is_empty() {
        let rest = lines.split_off(lines.len().min(2_000));
        let rejected = sender.send_lines(lines).await.unwrap();
        assert!(rejected.is_empty());
        lines = rest;
    }
    let report = sender.shutdown(Duration::from_secs(120)).await.unwrap();
    let took = start.elapsed();
    assert_eq!(report.stats.delivered, n, "{report:?}");
    let _ = drain.await;
    took
}

fn bench(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    let mock = rt.block_on(MockServer::builder().profile_for_benchmarks().start());
    let mut round = 0u64;
    for (endpoint, name) in [(Endpoint::HttpV2, "http_v2"), (Endpoint::Batch, "batch")] {
        let url = format!("{}{}", mock.uri(), endpoint.path());
        let mut g = c.benchmark_group(format!("sender_{name}"));
        g.sample_size(10);
        g.measurement_time(Duration::from_secs(5));
        g.warm_up_time(Duration::from_secs(1));
        for batch in BATCH_SIZES {
            let n = events_for(batch);
            g.throughput(Throughput::Elements(n as u64));
            g.bench_function(BenchmarkId::new("batch", batch), |b| {
                b.iter_custom(|iters| {
                    let mut total = Duration::ZERO;
                    for _ in 0..iters {
                        round += 1;
                        let input = lines(n, round);
                        total += rt.block_on(deliver(&url, endpoint, batch, input));
                    }
                    total
                })
            });
        }
        g.finish();
    }
    let s = mock.stats();
    println!(
        "mock: {} events stored, {} deduplicated, {} rejected",
        s.events_stored, s.events_deduplicated, s.events_rejected.total
    );
}

fn main() {
    let mut c = Criterion::default().configure_from_args();
    bench(&mut c);
    c.final_summary();
}
