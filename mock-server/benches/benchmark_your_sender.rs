//! Benchmark your sender against amplitude-mock: a complete criterion benchmark to copy into
//! your own crate (`benches/`, with `[[bench]] harness = false` and dev-dependencies
//! `amplitude-mock`, `criterion`, `tokio`, `reqwest`, `serde_json`). Replace [`send`] with
//! your sender. Run it here with `cargo bench -p amplitude-mock --bench benchmark_your_sender`.
//!
//! The three rules of the guide (crate docs, "Benchmark your sender"):
//!
//! 1. `profile_for_benchmarks()`: limits lifted (no 429 at 30 events/s per device) and the
//!    ledger capped (memory stays bounded however long criterion runs).
//! 2. Fresh `insert_id`s for every event of every iteration: a repeated `insert_id` is
//!    deduplicated (answered 200, not stored) and you would measure dedup, not delivery.
//! 3. `mock.reset()` between groups, and after each group assert that nothing was throttled,
//!    deduplicated or rejected (`events_throttled`, `events_deduplicated`,
//!    `events_rejected.total` of `mock.stats()` all 0). The mock also logs a `WARN` when it
//!    is dropped after a benchmark-profile run that throttled, deduplicated or rejected.

// Benchmarks may unwrap (team rule): a failure here is a broken bench, not a product bug.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use amplitude_mock::MockServer;
use criterion::{BenchmarkId, Criterion, Throughput};
use serde_json::{json, Value};
use std::sync::atomic::{AtomicU64, Ordering};

const API_KEY: &str = "bench0123456789abcdef0123456789ab";

/// Every event gets a fresh `insert_id` from this counter (rule 2).
static NEXT_ID: AtomicU64 = AtomicU64::new(0);

/// `n` events from 1,000 devices, each with a never-used `insert_id`.
fn fresh_events(n: usize) -> Vec<Value> {
    (0..n)
        .map(|i| {
            let id = NEXT_ID.fetch_add(1, Ordering::Relaxed);
            json!({
                "device_id": format!("device-{:04}", i % 1_000),
                "event_type": "bench",
                "insert_id": format!("bench-{id}"),
                "event_properties": {"i": i},
            })
        })
        .collect()
}

/// The sender under test: here, one HTTP V2 upload per `batch` events. Replace with yours.
async fn send(client: &reqwest::Client, url: &str, events: Vec<Value>, batch: usize) {
    for chunk in events.chunks(batch) {
        let body = json!({"api_key": API_KEY, "events": chunk});
        let resp = client.post(url).json(&body).send().await.unwrap();
        assert_eq!(resp.status(), 200, "{}", resp.text().await.unwrap());
    }
}

fn bench(c: &mut Criterion) {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let mock = MockServer::builder()
        .api_key(API_KEY)
        .profile_for_benchmarks() // rule 1
        .start_blocking();
    let url = format!("{}/2/httpapi", mock.uri());
    let client = reqwest::Client::new();
    let events_per_iter = 2_000;
    for batch in [100, 1_000] {
        mock.reset(); // rule 3: each group starts from an empty ledger
        let mut g = c.benchmark_group("your_sender");
        g.sample_size(10);
        g.throughput(Throughput::Elements(events_per_iter as u64));
        g.bench_function(BenchmarkId::new("batch", batch), |b| {
            b.iter_batched(
                || fresh_events(events_per_iter), // rule 2, outside the timing
                |events| rt.block_on(send(&client, &url, events, batch)),
                criterion::BatchSize::SmallInput,
            )
        });
        g.finish();
        // Rule 3: the run measured delivery, not throttling, dedup or rejection.
        let s = mock.stats();
        assert_eq!(s.events_throttled, 0, "throttled: {s:?}");
        assert_eq!(s.events_deduplicated, 0, "deduplicated: {s:?}");
        assert_eq!(s.events_rejected.total, 0, "rejected: {s:?}");
        assert!(s.events_stored > 0);
    }
}

fn main() {
    let mut c = Criterion::default().configure_from_args();
    bench(&mut c);
    c.final_summary();
}
