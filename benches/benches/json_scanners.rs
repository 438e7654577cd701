//! Faster JSON scanners beside the mock's ingest, on the same 1,000-event HTTP V2 bodies as
//! `ingest.rs` (fresh `insert_id`s each request). One criterion group, `json_scanners_1000`:
//!
//! - `mock`: `bench_internals::ingest` plus serializing its answer (as in `ingest.rs`);
//! - `serde_json_ignored_any`: serde_json's bare tokenizer (`IgnoredAny`), the reference;
//! - `serde_json_split_borrowed`: serde_json into `{api_key, events: Vec<&RawValue>}`, the
//!   borrowed split of the body into raw events (the mock's pass 1 does this);
//! - `sonic_rs_skip`: sonic-rs skipping the whole body with full validation
//!   (`sonic_rs::from_slice::<IgnoredAny>`);
//! - `sonic_rs_split`: sonic-rs iterating the body's object and the `events` array lazily,
//!   reading each event's `insert_id` and `device_id` (the object iterator validates the
//!   `events` array to hand it out, then the array iterator walks it again);
//! - `simd_json_tape`: simd-json's tape of the body. simd-json parses in place, so each
//!   iteration first copies the body into a reused buffer: the copy is included.
//!
//! Opt-in: `cargo bench -p amplitude-benches --features json-scanners --bench json_scanners`
//! (the two scanners are optional dependencies; ADR 016). The ratios are printed at the end.

// Benchmarks may unwrap (team rule): a failure here is a broken bench, not a product bug.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use amplitude_benches::{bench_config, mean_ns, BodyTemplate, T0_MS};
use amplitude_mock::bench_internals::{ingest, next_request_id, Api};
use amplitude_mock::{MockClock, MockState, Region};
use criterion::{black_box, Criterion, Throughput};
use serde::Deserialize;
use serde_json::value::RawValue;
use sonic_rs::JsonValueTrait;
use std::borrow::Cow;
use std::time::Duration;

const EVENTS: usize = 1_000;
/// Distinct users/devices in a body (as in `ingest.rs`).
const IDENTITIES: usize = 500;
const GROUP: &str = "json_scanners_1000";
/// Every function of the group, in the order of the ratio table.
const FUNCTIONS: [&str; 6] = [
    "mock",
    "serde_json_ignored_any",
    "serde_json_split_borrowed",
    "sonic_rs_skip",
    "sonic_rs_split",
    "simd_json_tape",
];

/// The body split into raw events, borrowed (what the mock's pass 1 builds).
#[derive(Deserialize)]
struct Split<'a> {
    #[serde(borrow)]
    #[allow(dead_code)]
    api_key: Cow<'a, str>,
    #[serde(borrow)]
    events: Vec<&'a RawValue>,
}

/// Bytes of each event's `insert_id` and `device_id` (so the reads are not optimized away),
/// and the number of events, via sonic-rs's lazy iterators.
fn sonic_split(body: &[u8]) -> (usize, usize) {
    let mut events = 0;
    let mut touched = 0;
    for entry in sonic_rs::to_object_iter(body) {
        let (key, value) = entry.unwrap();
        if key != "events" {
            continue;
        }
        for ev in value.into_array_iter().unwrap() {
            let ev = ev.unwrap();
            events += 1;
            touched += ev
                .get("insert_id")
                .and_then(|v| v.as_str().map(str::len))
                .unwrap_or(0);
            touched += ev
                .get("device_id")
                .and_then(|v| v.as_str().map(str::len))
                .unwrap_or(0);
        }
    }
    (events, touched)
}

/// Checks, once, that every scanner sees the same 1,000 events.
fn check(tpl: &mut BodyTemplate) {
    let body = tpl.stamp(1).to_vec();
    let split: Split<'_> = serde_json::from_slice(&body).unwrap();
    assert_eq!(split.events.len(), EVENTS);
    let (events, touched) = sonic_split(&body);
    assert_eq!(events, EVENTS);
    assert!(touched > EVENTS * 20, "insert_id and device_id were read");
    sonic_rs::from_slice::<serde::de::IgnoredAny>(&body).unwrap();
    let mut copy = body.clone();
    let tape = simd_json::to_tape(&mut copy).unwrap();
    let root = tape.as_value();
    assert_eq!(
        root.get("events")
            .and_then(|e| e.as_array())
            .map(|a| a.len()),
        Some(EVENTS)
    );
}

fn bench(c: &mut Criterion) {
    let mut g = c.benchmark_group(GROUP);
    g.throughput(Throughput::Elements(EVENTS as u64));
    g.sample_size(20);
    g.measurement_time(Duration::from_secs(4));
    g.warm_up_time(Duration::from_secs(1));

    let mut tpl = BodyTemplate::new(EVENTS, IDENTITIES);
    check(&mut tpl);
    let mut round = 0u64;

    let state = MockState::new(bench_config(200_000), MockClock::virtual_at(T0_MS));
    g.bench_function("mock", |b| {
        b.iter(|| {
            round += 1;
            let body = bytes::Bytes::copy_from_slice(tpl.stamp(round));
            let id = next_request_id(&state);
            let out = ingest(&state, Api::HttpV2, Region::Us, &body, body.len(), id);
            debug_assert_eq!(out.body.code, 200);
            black_box(serde_json::to_vec(&out.body).unwrap())
        })
    });
    g.bench_function("serde_json_ignored_any", |b| {
        b.iter(|| {
            round += 1;
            let body = tpl.stamp(round);
            black_box(serde_json::from_slice::<serde::de::IgnoredAny>(body).unwrap())
        })
    });
    g.bench_function("serde_json_split_borrowed", |b| {
        b.iter(|| {
            round += 1;
            let body = tpl.stamp(round);
            let split: Split<'_> = serde_json::from_slice(body).unwrap();
            black_box(split.events.len())
        })
    });
    g.bench_function("sonic_rs_skip", |b| {
        b.iter(|| {
            round += 1;
            let body = tpl.stamp(round);
            black_box(sonic_rs::from_slice::<serde::de::IgnoredAny>(body).unwrap())
        })
    });
    g.bench_function("sonic_rs_split", |b| {
        b.iter(|| {
            round += 1;
            let body = tpl.stamp(round);
            black_box(sonic_split(body))
        })
    });
    // simd-json rewrites its input: a copy into a reused buffer (no allocation, but the
    // memcpy is measured), and reused simd-json buffers.
    let mut copy: Vec<u8> = Vec::with_capacity(tpl.bytes().len());
    let mut buffers = simd_json::Buffers::new(tpl.bytes().len());
    g.bench_function("simd_json_tape", |b| {
        b.iter(|| {
            round += 1;
            let body = tpl.stamp(round);
            copy.clear();
            copy.extend_from_slice(body);
            let tape = simd_json::to_tape_with_buffers(&mut copy, &mut buffers).unwrap();
            black_box(tape.0.len())
        })
    });
    g.finish();
}

fn print_ratios() {
    println!("\n== json scanner ratios, 1,000-event bodies (same run) ==");
    println!(
        "{:>26} {:>14} {:>16} {:>10}",
        "function", "events/s", "vs IgnoredAny", "vs mock"
    );
    let mean = |f: &str| mean_ns(GROUP, f);
    let (Some(tokens), Some(mock)) = (mean("serde_json_ignored_any"), mean("mock")) else {
        println!("(criterion results missing: run the whole group)");
        return;
    };
    for f in FUNCTIONS {
        let Some(ns) = mean(f) else {
            continue;
        };
        // Speed relative to the reference: > 1 is faster than it.
        println!(
            "{f:>26} {:>14.0} {:>16.2} {:>10.2}",
            EVENTS as f64 * 1e9 / ns,
            tokens / ns,
            mock / ns
        );
    }
    println!("(ratios are speeds: reference time / function time; > 1 is faster)");
}

fn main() {
    let mut c = Criterion::default().configure_from_args();
    bench(&mut c);
    c.final_summary();
    print_ratios();
}
