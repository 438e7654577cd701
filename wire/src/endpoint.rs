//! The two event-ingestion endpoints (spec §1.1) and their request limits (spec §3.4, §8.1),
//! the one vocabulary of the mock, loadgen, the sender and the conformance runner; and the
//! five ingestion APIs ([`Api`]: the two endpoints plus Identify, Group Identify and
//! Attribution), the one list of the mock's ingestion routes.

use crate::limits;
use serde::{Deserialize, Serialize};

/// An Amplitude event-ingestion endpoint. Written `http_v2` / `batch` in scenario files and
/// in the mock's JSON.
///
/// **Body limit, stated once.** The documented limit is [`Endpoint::body_limit_mb`]
/// megabytes ("< 1 MB" for HTTP V2, "≤ 20 MB" for Batch, spec §3.4); whether a MB is 10^6
/// or 2^20 bytes is UNCERTAIN (spec §15 #7). [`Endpoint::max_body_bytes`] reads it as
/// decimal and **inclusive**: a body of exactly `max_body_bytes()` bytes is within the limit,
/// one byte more is over. The mock's fidelity profile may read the MB as binary (it calls
/// `megabytes(body_limit_mb())`); the checker and loadgen use `max_body_bytes()`; the sender
/// posts at most [`Endpoint::max_sendable_body_bytes`], one byte less, which is within the
/// limit under every reading.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Endpoint {
    /// `POST /2/httpapi`: 1 MB bodies, 30 events/s per device or user, per-device order kept
    /// (spec §3.4, §8.1, §9).
    #[default]
    HttpV2,
    /// `POST /batch`: 20 MB bodies, 1,000 events/s per device or user (spec §3.4, §8.1).
    Batch,
}

impl Endpoint {
    /// Both endpoints, HTTP V2 first.
    pub const ALL: [Endpoint; 2] = [Endpoint::HttpV2, Endpoint::Batch];

    /// URL path: `/2/httpapi` or `/batch` (spec §1.1).
    pub const fn path(self) -> &'static str {
        match self {
            Self::HttpV2 => limits::HTTP_V2_PATH,
            Self::Batch => limits::BATCH_PATH,
        }
    }

    /// The endpoint served at URL path `path`, if any.
    pub fn from_path(path: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|e| e.path() == path)
    }

    /// Name as written in scenario files and JSON: `http_v2` or `batch`.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::HttpV2 => "http_v2",
            Self::Batch => "batch",
        }
    }

    /// Documented body limit, megabytes: 1 (HTTP V2) or 20 (Batch) (spec §3.4).
    pub const fn body_limit_mb(self) -> usize {
        match self {
            Self::HttpV2 => 1,
            Self::Batch => 20,
        }
    }

    /// Largest body within the limit, bytes, inclusive, decimal MB: 1,000,000 or 20,000,000
    /// (see the type's documentation).
    pub const fn max_body_bytes(self) -> usize {
        match self {
            Self::HttpV2 => limits::HTTP_V2_MAX_BODY_BYTES,
            Self::Batch => limits::BATCH_MAX_BODY_BYTES,
        }
    }

    /// Largest body a careful sender posts, bytes: `max_body_bytes() - 1`, within the limit
    /// whether "1 MB" means 10^6 or 2^20 bytes and whether "<" or "≤" is meant.
    pub const fn max_sendable_body_bytes(self) -> usize {
        self.max_body_bytes() - 1
    }

    /// Most events in one request, inclusive: 2,000 (spec §3.4; the mock's profile decides
    /// whether exactly 2,000 is accepted).
    pub const fn max_events(self) -> usize {
        limits::MAX_EVENTS_PER_REQUEST
    }

    /// Documented per-device / per-user threshold, events/s averaged over
    /// [`limits::EPS_WINDOW_MS`] (spec §8.1): 30 (HTTP V2) or 1,000 (Batch).
    pub const fn eps_threshold(self) -> u32 {
        match self {
            Self::HttpV2 => limits::HTTP_V2_EPS_THRESHOLD,
            Self::Batch => limits::BATCH_EPS_THRESHOLD,
        }
    }
}

/// An Amplitude ingestion API (spec §1.1): the two event endpoints and the three
/// property / attribution APIs. Written `http_v2`, `batch`, `identify`, `group_identify`,
/// `attribution` in the mock's JSON (`/__mock/events`, `/__mock/requests`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Api {
    /// `POST /2/httpapi`.
    HttpV2,
    /// `POST /batch`.
    Batch,
    /// `GET|POST /identify`.
    Identify,
    /// `POST /groupidentify`.
    GroupIdentify,
    /// `POST /attribution`.
    Attribution,
}

impl Api {
    /// The five APIs, in this order (the event endpoints first).
    pub const ALL: [Api; 5] = [
        Api::HttpV2,
        Api::Batch,
        Api::Identify,
        Api::GroupIdentify,
        Api::Attribution,
    ];

    /// URL path: `/2/httpapi`, `/batch`, `/identify`, `/groupidentify` or `/attribution`.
    pub const fn path(self) -> &'static str {
        match self {
            Self::HttpV2 => limits::HTTP_V2_PATH,
            Self::Batch => limits::BATCH_PATH,
            Self::Identify => "/identify",
            Self::GroupIdentify => "/groupidentify",
            Self::Attribution => "/attribution",
        }
    }

    /// The API served at URL path `path`, if any.
    pub fn from_path(path: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|a| a.path() == path)
    }

    /// Name as written in the mock's JSON: `http_v2`, `batch`, `identify`, `group_identify`
    /// or `attribution`.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::HttpV2 => "http_v2",
            Self::Batch => "batch",
            Self::Identify => "identify",
            Self::GroupIdentify => "group_identify",
            Self::Attribution => "attribution",
        }
    }

    /// The event endpoint this API is, if it is one (HTTP V2 or Batch).
    pub const fn endpoint(self) -> Option<Endpoint> {
        match self {
            Self::HttpV2 => Some(Endpoint::HttpV2),
            Self::Batch => Some(Endpoint::Batch),
            Self::Identify | Self::GroupIdentify | Self::Attribution => None,
        }
    }

    /// Position in [`Api::ALL`].
    pub const fn index(self) -> usize {
        match self {
            Self::HttpV2 => 0,
            Self::Batch => 1,
            Self::Identify => 2,
            Self::GroupIdentify => 3,
            Self::Attribution => 4,
        }
    }
}

impl From<Endpoint> for Api {
    fn from(e: Endpoint) -> Self {
        match e {
            Endpoint::HttpV2 => Self::HttpV2,
            Endpoint::Batch => Self::Batch,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_paths_and_limits() {
        for e in Endpoint::ALL {
            assert_eq!(Endpoint::from_path(e.path()), Some(e));
            let json = format!("\"{}\"", e.as_str());
            assert_eq!(
                serde_json::to_string(&e).ok().as_deref(),
                Some(json.as_str())
            );
            assert_eq!(e.max_body_bytes(), e.body_limit_mb() * 1_000_000);
            assert!(e.max_sendable_body_bytes() < e.max_body_bytes());
        }
        assert_eq!(Endpoint::from_path("/identify"), None);
        assert_eq!(Endpoint::HttpV2.eps_threshold(), 30);
        assert_eq!(Endpoint::default(), Endpoint::HttpV2);
    }

    #[test]
    fn apis_names_paths_and_endpoints() {
        for (i, a) in Api::ALL.into_iter().enumerate() {
            assert_eq!(a.index(), i);
            assert_eq!(Api::from_path(a.path()), Some(a));
            let json = format!("\"{}\"", a.as_str());
            assert_eq!(
                serde_json::to_string(&a).ok().as_deref(),
                Some(json.as_str())
            );
            if let Some(e) = a.endpoint() {
                assert_eq!(Api::from(e), a);
                assert_eq!(e.path(), a.path());
                assert_eq!(e.as_str(), a.as_str());
            }
        }
        assert_eq!(Api::from_path("/__mock/events"), None);
        assert_eq!(Api::Identify.endpoint(), None);
    }
}
