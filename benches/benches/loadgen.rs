//! Loadgen's event generation rate (events/s): the seeded stream of a scenario
//! (`Scenario::events(seed)`: arrivals, identities, payloads, ground-truth seq), alone and
//! with each event serialized to the JSON line that is sent: through the iterator
//! (`events_to_json`: an `Event` per event, `serde_json::to_string`) and in byte mode
//! (`events_into_json`: `EventStream::next_into` into one reused buffer, what a run does).
//! Generation must never be the bottleneck of a run (prior-art: lading).

// Benchmarks may unwrap (team rule): a failure here is a broken bench, not a product bug.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use amplitude_loadgen::Scenario;
use criterion::{black_box, BenchmarkId, Criterion, Throughput};
use std::time::Duration;

/// A scenario of 20,000 events: Poisson 20,000 events/s for 1 s from 10,000 Zipf users.
const SYNTHETIC: &str = r#"
name = "bench-generation"
seed = 7
endpoint = "http_v2"
duration = "1s"
arrival = { kind = "poisson", rate = 20000.0 }
[population]
users = 10000
devices_per_user = 2
popularity = "zipf"
zipf_s = 1.1
[mix]
payload_bytes = { kind = "lognormal", median = 200.0, sigma = 0.6, max = 4000 }
user_properties_share = 0.05
"#;

fn count(sc: &Scenario) -> u64 {
    sc.events(sc.seed).map(|s| s.count() as u64).unwrap_or(0)
}

fn bench(c: &mut Criterion) {
    let mut scenarios = vec![(
        "synthetic".to_owned(),
        Scenario::from_toml_str(SYNTHETIC, "bench-generation.toml").unwrap(),
    )];
    for name in ["steady-trickle", "launch-spike", "property-storm"] {
        // Built-in scenarios without trace files: parsed in memory.
        if let Some(f) = amplitude_loadgen::builtin::scenario(name) {
            if let Ok(sc) = Scenario::from_toml_str(f.contents, f.path) {
                scenarios.push((name.to_owned(), sc));
            }
        }
    }
    let mut g = c.benchmark_group("loadgen_generate");
    g.sample_size(10);
    g.measurement_time(Duration::from_secs(5));
    g.warm_up_time(Duration::from_millis(500));
    for (name, sc) in &scenarios {
        let n = count(sc);
        if n == 0 {
            continue;
        }
        g.throughput(Throughput::Elements(n));
        g.bench_function(BenchmarkId::new("events", name), |b| {
            b.iter(|| {
                let mut k = 0u64;
                for e in sc.events(sc.seed).unwrap() {
                    k = k.wrapping_add(black_box(&e).seq);
                }
                k
            })
        });
        g.bench_function(BenchmarkId::new("events_to_json", name), |b| {
            b.iter(|| {
                let mut bytes = 0usize;
                for e in sc.events(sc.seed).unwrap() {
                    bytes += e.to_json().unwrap().len();
                }
                bytes
            })
        });
        g.bench_function(BenchmarkId::new("events_into_json", name), |b| {
            b.iter(|| {
                let mut stream = sc.events(sc.seed).unwrap();
                let mut json = Vec::with_capacity(1024);
                let mut bytes = 0usize;
                loop {
                    json.clear();
                    if stream.next_into(&mut json).unwrap().is_none() {
                        break;
                    }
                    bytes += black_box(&json).len();
                }
                bytes
            })
        });
    }
    g.finish();
}

fn main() {
    let mut c = Criterion::default().configure_from_args();
    bench(&mut c);
    c.final_summary();
}
