//! Expectations on what a sender sends, in the spirit of wiremock-rs's `expect`: registered
//! on a running [`crate::MockServer`], checked by `verify()` or when the mock is dropped.
//! Part of the embedding layer; reads only the request journal ([`ReceivedRequest`]).

use crate::received::ReceivedRequest;
use parking_lot::Mutex;
use std::fmt;
use std::ops::{Range, RangeFrom, RangeInclusive};

/// How many times something is expected: `3` (exactly), `1..4`, `1..=3`, `2..` (at least).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Times {
    /// Fewest allowed.
    pub min: u64,
    /// Most allowed (`None`: no bound).
    pub max: Option<u64>,
}

impl Times {
    fn contains(self, n: u64) -> bool {
        n >= self.min && self.max.is_none_or(|m| n <= m)
    }
}

impl From<u64> for Times {
    fn from(n: u64) -> Self {
        Self {
            min: n,
            max: Some(n),
        }
    }
}

impl From<Range<u64>> for Times {
    fn from(r: Range<u64>) -> Self {
        Self {
            min: r.start,
            max: Some(r.end.saturating_sub(1)),
        }
    }
}

impl From<RangeInclusive<u64>> for Times {
    fn from(r: RangeInclusive<u64>) -> Self {
        Self {
            min: *r.start(),
            max: Some(*r.end()),
        }
    }
}

impl From<RangeFrom<u64>> for Times {
    fn from(r: RangeFrom<u64>) -> Self {
        Self {
            min: r.start,
            max: None,
        }
    }
}

impl fmt::Display for Times {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.max {
            Some(m) if m == self.min => write!(f, "exactly {m}"),
            Some(m) => write!(f, "between {} and {m}", self.min),
            None => write!(f, "at least {}", self.min),
        }
    }
}

/// What an expectation is checked against.
pub(crate) struct Seen<'a> {
    /// The journal, oldest first.
    pub requests: &'a [ReceivedRequest],
    /// Requests the journal evicted (an expectation over them cannot be checked).
    pub evicted: u64,
    /// The EPS window throttled identities must wait out, ms (spec §8).
    pub throttle_window_ms: u64,
}

type Check = Box<dyn Fn(&Seen<'_>) -> Result<(), String> + Send + Sync>;

/// One registered expectation: what it asks for and its check (`Err`: what was seen).
struct Expectation {
    what: String,
    check: Check,
}

/// The expectations of one mock.
#[derive(Default)]
pub(crate) struct Expectations(Mutex<Vec<Expectation>>);

impl Expectations {
    fn push(&self, what: String, check: Check) {
        self.0.lock().push(Expectation { what, check });
    }

    /// Forgets them all.
    pub(crate) fn clear(&self) {
        self.0.lock().clear();
    }

    /// Every unmet expectation as one message (`None` when all are met or none exist).
    pub(crate) fn unmet(&self, seen: &Seen<'_>) -> Option<String> {
        let list = self.0.lock();
        let mut failures: Vec<String> = list
            .iter()
            .filter_map(|e| {
                (e.check)(seen)
                    .err()
                    .map(|got| format!("  - expected {}\n    got: {got}", e.what))
            })
            .collect();
        if failures.is_empty() {
            return None;
        }
        if seen.evicted > 0 {
            failures.push(format!(
                "  (the journal evicted {} requests past its caps; raise LedgerConfig::journal_capacity / journal_max_body_bytes)",
                seen.evicted
            ));
        }
        Some(format!(
            "amplitude-mock: {} of {} expectations not met:\n{}",
            failures.len() - usize::from(seen.evicted > 0),
            list.len(),
            failures.join("\n")
        ))
    }

    /// `times` upload requests (`POST /2/httpapi` or `/batch`).
    pub(crate) fn uploads(&self, times: Times) {
        self.push(
            format!("{times} upload requests (POST /2/httpapi or /batch)"),
            Box::new(move |s| {
                let ids: Vec<u64> = s
                    .requests
                    .iter()
                    .filter(|r| r.is_upload())
                    .map(|r| r.id)
                    .collect();
                let n = ids.len() as u64 + s.evicted;
                if times.contains(n) {
                    Ok(())
                } else {
                    Err(format!("{n} (request ids {ids:?})"))
                }
            }),
        );
    }

    /// Every upload request gzipped (`Content-Encoding: gzip`, spec §2).
    pub(crate) fn every_upload_gzip(&self) {
        self.push(
            "every upload request with Content-Encoding: gzip".to_owned(),
            Box::new(|s| {
                let plain: Vec<String> = s
                    .requests
                    .iter()
                    .filter(|r| r.is_upload() && !r.is_gzip())
                    .map(|r| {
                        let enc = r.header("content-encoding").unwrap_or("none");
                        format!("request {} {} (content-encoding: {enc})", r.id, r.path)
                    })
                    .collect();
                if plain.is_empty() {
                    Ok(())
                } else {
                    Err(format!("{} not gzipped: {}", plain.len(), plain.join(", ")))
                }
            }),
        );
    }

    /// No request handled after `at_ms` (mock clock).
    pub(crate) fn no_request_after(&self, at_ms: i64) {
        self.push(
            format!("no request after {at_ms} ms (mock clock)"),
            Box::new(move |s| {
                let late: Vec<String> = s
                    .requests
                    .iter()
                    .filter(|r| r.at_ms > at_ms)
                    .map(|r| {
                        format!(
                            "request {} {} at {} ms (+{} ms)",
                            r.id,
                            r.path,
                            r.at_ms,
                            r.at_ms - at_ms
                        )
                    })
                    .collect();
                if late.is_empty() {
                    Ok(())
                } else {
                    Err(late.join(", "))
                }
            }),
        );
    }

    /// After a 429 naming `device` in `throttled_devices` (spec §5.4), no upload carries an
    /// event of `device` before the throttle window (spec §8: 30 s) has passed.
    pub(crate) fn device_waits_out_throttling(&self, device: String) {
        self.push(
            format!("device {device:?} never sent inside a throttle window after a 429 naming it"),
            Box::new(move |s| {
                let mut throttled_at: Option<(u64, i64)> = None;
                let mut early = Vec::new();
                for r in s.requests.iter().filter(|r| r.is_upload()) {
                    if let Some((id, t)) = throttled_at {
                        let window = i64::try_from(s.throttle_window_ms).unwrap_or(i64::MAX);
                        let since = r.at_ms - t;
                        let carries = r.events().iter().any(|e| {
                            e.get("device_id").and_then(|d| d.as_str()) == Some(device.as_str())
                        });
                        if carries && since < window {
                            early.push(format!(
                                "request {} sent it {since} ms after the 429 of request {id} (window {window} ms)",
                                r.id
                            ));
                        }
                    }
                    if r.status == 429 {
                        let names = r.response_json().is_some_and(|v| {
                            v.get("throttled_devices")
                                .and_then(|d| d.get(device.as_str()))
                                .is_some()
                        });
                        if names {
                            throttled_at = Some((r.id, r.at_ms));
                        }
                    }
                }
                if early.is_empty() {
                    Ok(())
                } else {
                    Err(early.join("; "))
                }
            }),
        );
    }
}
