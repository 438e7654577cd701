//! Bytes the mock keeps per stored event at 1,000,000 stored events (issue 16): the
//! ledger's copy of each event (its raw bytes as sent, in one allocation), its record (seq,
//! request, project, upload time, endpoint, key, fingerprint), the fingerprint index and the
//! dedup store's entry for its `insert_id`. Measured as the growth of the process's resident
//! set (Linux `/proc/self/status`; allocator overhead included, which is what a user pays)
//! while 1,000 requests of 1,000 realistic events (~400 bytes each, fresh `insert_id`s,
//! 1,000 identities) go through the socket-free pipeline, divided by the events stored. The
//! journal is cut to one entry so that request bodies do not count. Prints one line:
//! `cargo bench -p amplitude-benches --bench ledger_memory`.

// Benchmarks may unwrap (team rule): a failure here is a broken bench, not a product bug.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use amplitude_benches::{bench_config, BodyTemplate, T0_MS};
use amplitude_mock::bench_internals::{ingest, next_request_id, Api};
use amplitude_mock::{MockClock, MockState, Region};
/// Resident set size of this process, bytes (Linux `/proc/self/status` `VmRSS`).
fn rss_bytes() -> Option<i64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let kb: i64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))?
        .trim()
        .trim_end_matches("kB")
        .trim()
        .parse()
        .ok()?;
    Some(kb * 1024)
}

const EVENTS: usize = 1_000_000;
const PER_REQUEST: usize = 1_000;

fn main() {
    // `cargo test --benches` runs bench targets with --test-ish args; only measure under
    // `cargo bench` (criterion's convention: a `--bench` argument).
    if !std::env::args().any(|a| a == "--bench") {
        return;
    }
    let mut cfg = bench_config(EVENTS);
    cfg.ledger.journal_capacity = 1;
    let state = MockState::new(cfg, MockClock::virtual_at(T0_MS));
    let mut body = BodyTemplate::new(PER_REQUEST, 1_000);
    let mut event_bytes = 0usize;
    let Some(before) = rss_bytes() else {
        println!("ledger memory: n/a (needs /proc/self/status)");
        return;
    };
    let mut stored = 0usize;
    for round in 0..(EVENTS / PER_REQUEST) as u64 {
        let b = &bytes::Bytes::copy_from_slice(body.stamp(round + 1));
        event_bytes += b.len();
        let id = next_request_id(&state);
        let out = ingest(&state, Api::HttpV2, Region::Us, b, b.len(), id);
        stored += out.stored;
    }
    let after = rss_bytes().unwrap_or(before);
    assert_eq!(stored, EVENTS, "every event stored");
    let per_event = (after - before) as f64 / stored as f64;
    let raw = event_bytes as f64 / stored as f64;
    println!(
        "ledger memory: {stored} events stored, {:.1} MB resident growth, {per_event:.0} bytes per stored event (raw event ~{raw:.0} bytes as sent, so {:.0} bytes of record, indexes and dedup entry)",
        (after - before) as f64 / 1e6,
        per_event - raw
    );
}
