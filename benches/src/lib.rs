//! Shared fixtures of the criterion benchmarks (`cargo bench -p amplitude-benches`) and of the
//! side-by-side comparison (`benches/compare.sh`): realistic upload bodies, a mock
//! configuration whose limits never trip (so throughput, not throttling, is measured), and a
//! reader of criterion's estimates so a bench can print ratios of its own results.
//!
//! Results and how to reproduce them: `docs/benchmarks.md`.

use amplitude_mock::{Limits, MockConfig};
use std::path::{Path, PathBuf};

/// API key every benchmark uses.
pub const API_KEY: &str = "bench0123456789abcdef0123456789ab";

/// Virtual time every benchmark event carries (2023-11-14T22:13:20Z), ms since the epoch.
pub const T0_MS: i64 = 1_700_000_000_000;

/// Width of the run stamp written into each `insert_id` by [`BodyTemplate::stamp`].
const STAMP_WIDTH: usize = 12;

/// One realistic event (about 330 bytes): user and device ids from a pool of `identities`,
/// a few event and user properties, `insert_id` `b-<stamp>-<i>` where `<stamp>` is
/// [`STAMP_WIDTH`] zeros (rewritten in place by [`BodyTemplate::stamp`]). Every 20th event
/// carries a `$set` of user properties, as SDK traffic does.
pub fn event_json(i: usize, identities: usize) -> String {
    let who = i % identities.max(1);
    let props = if i % 20 == 0 {
        r#","user_properties":{"$set":{"plan":"pro","cohort":"2023-11"}}"#
    } else {
        ""
    };
    format!(
        concat!(
            r#"{{"user_id":"user-{who:06}","device_id":"device-{who:06}-a1b2c3","event_type":"Button Clicked","#,
            r#""time":{t},"insert_id":"b-{stamp}-{i:08}","platform":"Web","os_name":"Chrome","os_version":"119","#,
            r#""app_version":"2.31.0","language":"en-US","ip":"127.0.0.1","session_id":{t},"#,
            r#""event_properties":{{"button":"signup","page":"/pricing","experiment":"B","value":12.5,"conformance_seq":{i}}}{props}}}"#
        ),
        who = who,
        t = T0_MS,
        stamp = "0".repeat(STAMP_WIDTH),
        i = i,
        props = props
    )
}

/// An HTTP V2 / Batch upload body of `n` events from [`event_json`].
pub fn upload_body(n: usize, identities: usize) -> Vec<u8> {
    let events: Vec<String> = (0..n).map(|i| event_json(i, identities)).collect();
    format!(
        r#"{{"api_key":"{API_KEY}","events":[{}]}}"#,
        events.join(",")
    )
    .into_bytes()
}

/// An upload body whose `insert_id`s can be made fresh for each request in O(events), so
/// repeated requests are neither deduplicated nor re-allocated.
#[derive(Debug, Clone)]
pub struct BodyTemplate {
    bytes: Vec<u8>,
    /// Offset of each `insert_id`'s stamp.
    slots: Vec<usize>,
    /// Events in the body.
    pub events: usize,
}

impl BodyTemplate {
    /// A body of `n` events from `identities` users/devices.
    pub fn new(n: usize, identities: usize) -> Self {
        let bytes = upload_body(n, identities);
        let needle = format!("\"insert_id\":\"b-{}", "0".repeat(STAMP_WIDTH));
        let prefix = "\"insert_id\":\"b-".len();
        let slots = find_all(&bytes, needle.as_bytes())
            .into_iter()
            .map(|p| p + prefix)
            .collect();
        Self {
            bytes,
            slots,
            events: n,
        }
    }

    /// The body with every `insert_id` carrying `round` (mod 10^12): distinct rounds give
    /// distinct ids.
    pub fn stamp(&mut self, round: u64) -> &[u8] {
        let mut digits = [b'0'; STAMP_WIDTH];
        let mut r = round;
        for d in digits.iter_mut().rev() {
            *d = b'0' + (r % 10) as u8;
            r /= 10;
        }
        for &s in &self.slots {
            if let Some(dst) = self.bytes.get_mut(s..s + STAMP_WIDTH) {
                dst.copy_from_slice(&digits);
            }
        }
        &self.bytes
    }

    /// The current bytes.
    pub fn bytes(&self) -> &[u8] {
        &self.bytes
    }
}

fn find_all(hay: &[u8], needle: &[u8]) -> Vec<usize> {
    let mut out = Vec::new();
    let mut i = 0;
    while i + needle.len() <= hay.len() {
        if hay.get(i..i + needle.len()) == Some(needle) {
            out.push(i);
            i += needle.len();
        } else {
            i += 1;
        }
    }
    out
}

/// The mock configuration of the socket-free benchmarks (a `MockState` built directly): the
/// mock's benchmark limits ([`Limits::unthrottled`]: throughput is measured, not Amplitude's
/// throttling, which `compare.sh`'s drain test measures separately), and a ledger capped at
/// `max_events` stored events (the oldest are evicted, as in a long-running mock). A
/// `MockServer` gets the same with `MockServer::builder().profile_for_benchmarks()`.
pub fn bench_config(max_events: usize) -> MockConfig {
    let mut cfg = MockConfig {
        limits: Limits::default().unthrottled(),
        ..MockConfig::default()
    };
    cfg.ledger.max_events = max_events;
    cfg
}

/// Where criterion writes its results: `$CRITERION_HOME`, else `$CARGO_TARGET_DIR/criterion`,
/// else `<workspace>/target/criterion`.
pub fn criterion_dir() -> PathBuf {
    if let Some(h) = std::env::var_os("CRITERION_HOME") {
        return PathBuf::from(h);
    }
    if let Some(t) = std::env::var_os("CARGO_TARGET_DIR") {
        return PathBuf::from(t).join("criterion");
    }
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("..")
        .join("target")
        .join("criterion")
}

/// Mean time per iteration, ns, of the benchmark `group/id` of the latest `cargo bench` run
/// (criterion's `new/estimates.json`), if it ran.
pub fn mean_ns(group: &str, id: &str) -> Option<f64> {
    let path = criterion_dir()
        .join(group)
        .join(id)
        .join("new")
        .join("estimates.json");
    let text = std::fs::read_to_string(path).ok()?;
    let v: serde_json::Value = serde_json::from_str(&text).ok()?;
    v.pointer("/mean/point_estimate")?.as_f64()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn template_bodies_are_valid_json_with_fresh_insert_ids() {
        let mut t = BodyTemplate::new(25, 7);
        assert_eq!(t.slots.len(), 25);
        let a: serde_json::Value = serde_json::from_slice(t.stamp(1)).unwrap();
        let b: serde_json::Value = serde_json::from_slice(t.stamp(2)).unwrap();
        assert_eq!(a["events"].as_array().unwrap().len(), 25);
        assert_ne!(a["events"][3]["insert_id"], b["events"][3]["insert_id"]);
        assert_eq!(a["events"][3]["device_id"], b["events"][3]["device_id"]);
    }

    #[test]
    fn the_mock_stores_a_template_body() {
        let state = amplitude_mock::MockState::new(
            bench_config(1_000),
            amplitude_mock::MockClock::virtual_at(T0_MS),
        );
        let mut t = BodyTemplate::new(10, 3);
        let body = bytes::Bytes::copy_from_slice(t.stamp(9));
        let out = amplitude_mock::bench_internals::ingest(
            &state,
            amplitude_mock::bench_internals::Api::HttpV2,
            amplitude_mock::Region::Us,
            &body,
            body.len(),
            1,
        );
        assert_eq!(out.body.code, 200, "{:?}", out.body);
        assert_eq!(out.stored, 10);
    }
}
