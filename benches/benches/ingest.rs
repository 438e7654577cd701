//! The mock's ingest path without sockets: `bench_internals::ingest` (parse, validate, limits,
//! dedup, properties, store) plus serializing its answer, on HTTP V2 bodies of 1, 10, 100 and
//! 1,000 events with fresh `insert_id`s each request. In the same group, the baseline: serde_json
//! parsing the same bytes alone (into `serde_json::Value`, what a plain handler does; and into
//! `IgnoredAny`, the bare tokenizer, for reference). The ratios are printed at the end.
//!
//! Architecture target: at 1,000-event batches the mock's events/s is at least 50% of
//! serde_json parsing the same bytes alone.

// Benchmarks may unwrap (team rule): a failure here is a broken bench, not a product bug.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use amplitude_benches::{bench_config, mean_ns, BodyTemplate, T0_MS};
use amplitude_mock::bench_internals::{ingest, next_request_id, Api};
use amplitude_mock::{MockClock, MockState, Region};
use criterion::{black_box, BenchmarkId, Criterion, Throughput};
use std::time::Duration;

const SIZES: [usize; 4] = [1, 10, 100, 1_000];
/// Distinct users/devices in a body (bounded so the limiter's table stays warm).
const IDENTITIES: usize = 500;

fn bench(c: &mut Criterion) {
    for n in SIZES {
        let group_name = format!("ingest_batch_{n}");
        let mut g = c.benchmark_group(&group_name);
        g.throughput(Throughput::Elements(n as u64));
        g.sample_size(if n >= 100 { 20 } else { 50 });
        g.measurement_time(Duration::from_secs(4));
        g.warm_up_time(Duration::from_secs(1));

        let state = MockState::new(bench_config(200_000), MockClock::virtual_at(T0_MS));
        let mut tpl = BodyTemplate::new(n, IDENTITIES);
        let mut round = 0u64;
        g.bench_function(BenchmarkId::new("mock", n), |b| {
            b.iter(|| {
                round += 1;
                // the server's body is a `Bytes` it reads the request into: copied here too
                let body = bytes::Bytes::copy_from_slice(tpl.stamp(round));
                let id = next_request_id(&state);
                let out = ingest(&state, Api::HttpV2, Region::Us, &body, body.len(), id);
                debug_assert_eq!(out.body.code, 200);
                black_box(serde_json::to_vec(&out.body).unwrap())
            })
        });
        let mut tpl = BodyTemplate::new(n, IDENTITIES);
        let mut round = 0u64;
        g.bench_function(BenchmarkId::new("serde_json_value", n), |b| {
            b.iter(|| {
                round += 1;
                let body = tpl.stamp(round);
                black_box(serde_json::from_slice::<serde_json::Value>(body).unwrap())
            })
        });
        g.bench_function(BenchmarkId::new("serde_json_ignored_any", n), |b| {
            b.iter(|| {
                round += 1;
                let body = tpl.stamp(round);
                black_box(serde_json::from_slice::<serde::de::IgnoredAny>(body).unwrap())
            })
        });
        g.finish();
    }
}

fn print_ratios() {
    println!("\n== ingest ratios (same run) ==");
    println!(
        "{:>6} {:>14} {:>14} {:>14} {:>12} {:>12}",
        "batch", "mock ev/s", "mock req/s", "json ev/s", "mock/json", "mock/tokens"
    );
    for n in SIZES {
        let group = format!("ingest_batch_{n}");
        let mock = mean_ns(&group, &format!("mock/{n}"));
        let value = mean_ns(&group, &format!("serde_json_value/{n}"));
        let tokens = mean_ns(&group, &format!("serde_json_ignored_any/{n}"));
        let (Some(mock), Some(value), Some(tokens)) = (mock, value, tokens) else {
            continue;
        };
        let eps = |ns: f64| n as f64 * 1e9 / ns;
        let target = if n == 1_000 { "  (target >= 0.50)" } else { "" };
        println!(
            "{n:>6} {:>14.0} {:>14.0} {:>14.0} {:>12.2} {:>12.2}{target}",
            eps(mock),
            1e9 / mock,
            eps(value),
            value / mock,
            tokens / mock
        );
    }
}

fn main() {
    let mut c = Criterion::default().configure_from_args();
    bench(&mut c);
    c.final_summary();
    print_ratios();
}
