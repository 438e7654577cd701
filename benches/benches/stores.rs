//! The mock's per-event state: the `insert_id` dedup store (insert and lookup, ns/op, and
//! bytes per remembered id at 1 and 10 million ids) and the per-identity limiter (one
//! `usage` + `record` update, ns/op, with 10 and 100,000 active identities).
//!
//! The dedup store is measured in steady state: a 7-second window of virtual time, and a
//! clock that advances so that the store holds about `size` live ids while new ones arrive
//! and whole generations expire (memory stays bounded however long criterion runs).
//!
//! Architecture target: at most 24 bytes per remembered `insert_id` at 10 million ids.

// Benchmarks may unwrap (team rule): a failure here is a broken bench, not a product bug.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use amplitude_benches::T0_MS;
use amplitude_mock::bench_internals::{fingerprint, DedupStore, LimitConfig, Limiter};
use criterion::{black_box, BenchmarkId, Criterion, Throughput};
use std::time::Duration;

/// Dedup window of the steady-state store, ms of virtual time.
const WINDOW_MS: u64 = 7_000;
/// Generation length the store derives from it (window / 7), ms.
const GEN_MS: u64 = 1_000;

/// A steady-state insert schedule: id `i` is recorded at `T0 + i / per_ms`, so about
/// `per_ms * (WINDOW_MS + GEN_MS / 2)` ids are live.
struct Schedule {
    per_ms: u64,
    next: u64,
}

impl Schedule {
    fn for_live(size: u64) -> Self {
        Self {
            per_ms: (size / (WINDOW_MS + GEN_MS / 2)).max(1),
            next: 0,
        }
    }
    fn now(&self, i: u64) -> i64 {
        T0_MS + (i / self.per_ms) as i64
    }
    fn fp(i: u64) -> u64 {
        fingerprint(&[b"project-1", b"d", b"device-000042", &i.to_le_bytes()])
    }
    fn insert_next(&mut self, store: &DedupStore) -> Option<i64> {
        let i = self.next;
        self.next += 1;
        store.check_and_insert(Self::fp(i), self.now(i))
    }
}

fn dedup(c: &mut Criterion) {
    let mut memory = Vec::new();
    for size in [1_000_000u64, 10_000_000] {
        let label = format!("{}M", size / 1_000_000);
        let store = DedupStore::new(WINDOW_MS);
        let mut sched = Schedule::for_live(size);
        // Fill until the store holds `size` live ids.
        while (sched.next as usize) < size as usize {
            sched.insert_next(&store);
        }
        let (len, bytes) = (store.len(), store.heap_bytes());
        memory.push((label.clone(), len, bytes));

        let mut g = c.benchmark_group("dedup");
        g.throughput(Throughput::Elements(1));
        g.sample_size(30);
        g.measurement_time(Duration::from_secs(3));
        g.warm_up_time(Duration::from_millis(500));
        g.bench_function(BenchmarkId::new("insert_new", &label), |b| {
            b.iter(|| black_box(sched.insert_next(&store)))
        });
        // Lookups of ids recorded in the last few virtual seconds: live hits.
        let mut k = 0u64;
        g.bench_function(BenchmarkId::new("lookup_hit", &label), |b| {
            b.iter(|| {
                k = (k + 7_919) % (size / 2);
                let i = sched.next - 1 - k;
                black_box(store.contains(Schedule::fp(i), sched.now(sched.next)))
            })
        });
        let mut m = 0u64;
        g.bench_function(BenchmarkId::new("lookup_miss", &label), |b| {
            b.iter(|| {
                m += 1;
                black_box(store.contains(Schedule::fp(u64::MAX - m), sched.now(sched.next)))
            })
        });
        // A retry of an id seen a moment ago: the duplicate path of `check_and_insert`.
        let mut d = 0u64;
        g.bench_function(BenchmarkId::new("check_duplicate", &label), |b| {
            b.iter(|| {
                d = (d + 104_729) % (size / 2);
                let i = sched.next - 1 - d;
                black_box(store.check_and_insert(Schedule::fp(i), sched.now(sched.next)))
            })
        });
        g.finish();
        let (len, bytes) = (store.len(), store.heap_bytes());
        memory.push((format!("{label} after benches"), len, bytes));
        drop(store);
    }
    println!("\n== dedup memory (heap bytes / live ids) ==");
    for (label, len, bytes) in memory {
        let per = bytes as f64 / len.max(1) as f64;
        let target = if label.starts_with("10M") {
            "  (target <= 24)"
        } else {
            ""
        };
        println!("{label:>18}: {len:>10} ids  {bytes:>12} B  {per:>6.2} B/id{target}");
    }
}

fn limiter(c: &mut Criterion) {
    let cfg = LimitConfig::http_v2();
    let mut g = c.benchmark_group("limiter");
    // One element = one 1-event request (two identities).
    g.throughput(Throughput::Elements(1));
    g.sample_size(30);
    g.measurement_time(Duration::from_secs(3));
    g.warm_up_time(Duration::from_millis(500));
    for active in [10u64, 100_000] {
        let limiter = Limiter::new();
        let keys: Vec<u64> = (0..active)
            .map(|i| fingerprint(&[b"v", b"d", &i.to_le_bytes()]))
            .collect();
        // Warm: every identity active in the current window.
        for &k in &keys {
            limiter.record(k, 1, T0_MS, &cfg);
        }
        let mut i = 0u64;
        // A 1-event request's two identities (its device and its user) as the ingest path
        // did it before `judge`: read both usages, then record both.
        let pick = |i: u64| keys[(i.wrapping_mul(2_654_435_761) % active) as usize];
        g.bench_function(BenchmarkId::new("usage_and_record", active), |b| {
            b.iter(|| {
                i += 1;
                let (device, user) = (pick(i), pick(i + 7));
                // 1 ms of virtual time per 1,000 updates: windows roll as they would live.
                let now = T0_MS + (i / 1_000) as i64;
                let u = [
                    limiter.usage(device, now, &cfg),
                    limiter.usage(user, now, &cfg),
                ];
                limiter.record(device, 1, now, &cfg);
                limiter.record(user, 1, now, &cfg);
                black_box(u)
            })
        });
        // The same update as the ingest path does it now: one locked step (`Limiter::judge`),
        // on a fresh limiter warmed the same way.
        let judged = Limiter::new();
        for &k in &keys {
            judged.record(k, 1, T0_MS, &cfg);
        }
        let mut j = 0u64;
        g.bench_function(BenchmarkId::new("judge", active), |b| {
            b.iter(|| {
                j += 1;
                let (device, user) = (pick(j), pick(j + 7));
                let now = T0_MS + (j / 1_000) as i64;
                black_box(judged.judge(&[(device, 1), (user, 1)], now, &cfg, |u| {
                    (true, [u[0], u[1]])
                }))
            })
        });
        println!(
            "limiter: {} active identities held",
            limiter.active_identities()
        );
    }
    g.finish();
}

fn main() {
    let mut c = Criterion::default().configure_from_args();
    dedup(&mut c);
    limiter(&mut c);
    c.final_summary();
}
