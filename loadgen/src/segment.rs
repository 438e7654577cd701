//! Segments: the Kth of N disjoint parts of a scenario (`--segment K/N`), for running one
//! scenario from N generators at once (docs/scale-out.md, ADR 011).
//!
//! Events are partitioned by identity: an event belongs to segment
//! `xxh3_64(key) mod N`, where the key is its `user_id` when it has one, else its
//! `device_id`, else its ground-truth sequence number. For synthesized events the key is the
//! population identity drawn for the event, before any dirty-data defect rewrites its ids, so
//! all events of one user (and of each of its devices) stay in one segment. A re-send carries
//! its original's key. Every segment generates the whole deterministic stream and keeps its
//! own events (ADR 011), so the union of the N segments is exactly the unsharded stream: same
//! events, `insert_id`s, `seq`s, stream positions and intended times.

use serde::{Deserialize, Serialize};
use std::fmt;
use std::str::FromStr;

/// Most segments a scenario may be split into.
pub const MAX_SEGMENTS: u32 = 100_000;

/// The Kth of N disjoint parts of a scenario: `index` K in `0..count`, `count` N ≥ 1.
/// Parses from and displays as `K/N` (e.g. `2/7`); serializes as `{"index":K,"count":N}`.
/// `0/1` is the whole scenario.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "SegmentRepr", into = "SegmentRepr")]
pub struct Segment {
    index: u32,
    count: u32,
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct SegmentRepr {
    index: u32,
    count: u32,
}

impl TryFrom<SegmentRepr> for Segment {
    type Error = SegmentError;
    fn try_from(r: SegmentRepr) -> Result<Self, SegmentError> {
        Segment::new(r.index, r.count)
    }
}

impl From<Segment> for SegmentRepr {
    fn from(s: Segment) -> Self {
        SegmentRepr {
            index: s.index,
            count: s.count,
        }
    }
}

/// Why a segment is invalid: `K/N` needs `0 <= K < N` and `1 <= N <= 100,000`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid segment {text:?}: {message} (expected K/N with 0 <= K < N, e.g. 0/4)")]
pub struct SegmentError {
    /// The text or numbers given.
    pub text: String,
    /// What is wrong.
    pub message: String,
}

impl Segment {
    /// The whole scenario, `0/1`.
    pub const WHOLE: Segment = Segment { index: 0, count: 1 };

    /// Segment `index` of `count`.
    ///
    /// # Errors
    /// [`SegmentError`] unless `index < count` and `1 <= count <= MAX_SEGMENTS`.
    pub fn new(index: u32, count: u32) -> Result<Self, SegmentError> {
        let bad = |m: String| SegmentError {
            text: format!("{index}/{count}"),
            message: m,
        };
        if count == 0 {
            return Err(bad("N must be at least 1".into()));
        }
        if count > MAX_SEGMENTS {
            return Err(bad(format!("N must be at most {MAX_SEGMENTS}")));
        }
        if index >= count {
            return Err(bad(format!("K must be below N ({count})")));
        }
        Ok(Self { index, count })
    }

    /// K, 0-based.
    pub fn index(self) -> u32 {
        self.index
    }

    /// N.
    pub fn count(self) -> u32 {
        self.count
    }

    /// True when an event with partition key `key` (see [`partition_key`]) belongs here.
    pub(crate) fn owns(self, key: u64) -> bool {
        self.count == 1 || key % u64::from(self.count) == u64::from(self.index)
    }
}

impl fmt::Display for Segment {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.index, self.count)
    }
}

impl FromStr for Segment {
    type Err = SegmentError;

    /// Parses `K/N`, e.g. `0/4` (surrounding spaces allowed).
    fn from_str(s: &str) -> Result<Self, SegmentError> {
        let bad = |m: &str| SegmentError {
            text: s.to_owned(),
            message: m.to_owned(),
        };
        let (k, n) = s.trim().split_once('/').ok_or_else(|| bad("no `/`"))?;
        let k: u32 = k.trim().parse().map_err(|_| bad("K is not a number"))?;
        let n: u32 = n.trim().parse().map_err(|_| bad("N is not a number"))?;
        Segment::new(k, n).map_err(|e| SegmentError {
            text: s.to_owned(),
            message: e.message,
        })
    }
}

/// The partition key of an event: `xxh3_64` of `u:<user_id>` when there is a user, else of
/// `d:<device_id>`, else of `s:<seq>` (an event without ids stays with its re-sends).
pub(crate) fn partition_key(user_id: Option<&str>, device_id: Option<&str>, seq: u64) -> u64 {
    let mut num = itoa::Buffer::new();
    let (tag, text): (&[u8; 2], &[u8]) = match (user_id, device_id) {
        (Some(u), _) => (b"u:", u.as_bytes()),
        (None, Some(d)) => (b"d:", d.as_bytes()),
        (None, None) => (b"s:", num.format(seq).as_bytes()),
    };
    // Computed for every generated event: the text goes into a stack buffer, not a String.
    let mut buf = [0u8; 128];
    match buf.get_mut(..2 + text.len()) {
        Some(dst) => {
            let (head, rest) = dst.split_at_mut(2);
            head.copy_from_slice(tag);
            rest.copy_from_slice(text);
            xxhash_rust::xxh3::xxh3_64(dst)
        }
        None => xxhash_rust::xxh3::xxh3_64(&[tag.as_slice(), text].concat()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_checks_and_displays() {
        let s: Segment = "2/7".parse().unwrap();
        assert_eq!((s.index(), s.count()), (2, 7));
        assert_eq!(s.to_string(), "2/7");
        assert_eq!(" 0/1 ".parse::<Segment>().unwrap(), Segment::WHOLE);
        for bad in ["7/7", "1/0", "x/2", "1", "1/2/3", "-1/2", "0/100001"] {
            let e = bad.parse::<Segment>().unwrap_err();
            assert!(e.to_string().contains("expected K/N"), "{bad}: {e}");
        }
        let json = serde_json::to_string(&s).unwrap();
        assert_eq!(json, r#"{"index":2,"count":7}"#);
        assert_eq!(serde_json::from_str::<Segment>(&json).unwrap(), s);
        assert!(serde_json::from_str::<Segment>(r#"{"index":3,"count":3}"#).is_err());
    }

    #[test]
    fn partition_keys_hash_the_tagged_id() {
        let long = "x".repeat(300);
        for (u, d, seq, text) in [
            (
                Some("user-000001"),
                Some("device-1"),
                0,
                "u:user-000001".to_owned(),
            ),
            (None, Some("anon-000002"), 5, "d:anon-000002".to_owned()),
            (None, None, 1_234_567, "s:1234567".to_owned()),
            (Some(long.as_str()), None, 0, format!("u:{long}")),
        ] {
            assert_eq!(
                partition_key(u, d, seq),
                xxhash_rust::xxh3::xxh3_64(text.as_bytes())
            );
        }
    }

    #[test]
    fn every_key_has_exactly_one_owner() {
        for n in [1u32, 2, 3, 7] {
            for key in [
                0u64,
                1,
                6,
                7,
                u64::MAX,
                partition_key(Some("user-000001"), None, 0),
            ] {
                let owners = (0..n)
                    .filter(|k| Segment::new(*k, n).unwrap().owns(key))
                    .count();
                assert_eq!(owners, 1, "key {key} n {n}");
            }
        }
        // The user decides, not the device; no ids: the sequence number.
        assert_eq!(
            partition_key(Some("u1xxxx"), Some("d1"), 1),
            partition_key(Some("u1xxxx"), Some("d2"), 2)
        );
        assert_ne!(partition_key(None, None, 1), partition_key(None, None, 2));
    }
}
