//! What a sender sent, as a test asserts on it: [`ReceivedRequest`], a view of one journal
//! entry with its headers and bodies (wiremock-rs's `received_requests`). Part of the
//! embedding layer.

use crate::ledger::JournalEntry;
use bytes::Bytes;
use serde_json::Value;

/// One request the mock received on an Amplitude route (`/2/httpapi`, `/batch`,
/// `/identify`, `/groupidentify`, `/attribution`, or a path it answers 400; not the
/// `/__mock/` and `/metrics` routes), from [`crate::MockServer::received_requests`].
///
/// Bounded: the journal keeps the last [`crate::LedgerConfig::journal_capacity`] requests
/// (default 10,000) and at most [`crate::LedgerConfig::journal_max_body_bytes`] of bodies
/// (default 64 MiB, raw and decoded counted), evicting the oldest first;
/// [`crate::Ledger::requests_evicted`] says how many went.
#[derive(Debug, Clone, PartialEq)]
pub struct ReceivedRequest {
    /// Request id, from 1 (the `request_id` of the events it stored).
    pub id: u64,
    /// When the mock handled it, ms since the epoch (mock clock).
    pub at_ms: i64,
    /// HTTP method, e.g. `POST`.
    pub method: String,
    /// Path without the query string, e.g. `/2/httpapi`.
    pub path: String,
    /// Headers in arrival order, names lowercase; `authorization` and any header whose name
    /// contains `api-key` / `api_key` redacted (the body's `api_key` is as sent).
    pub headers: Vec<(String, String)>,
    /// The body as received (gzipped when the sender gzipped it); empty when it was not read
    /// (over the size limit, cut, late).
    pub raw_body: Bytes,
    /// The body after `Content-Encoding: gzip` decoding; empty when it could not be read or
    /// decoded.
    pub body: Bytes,
    /// HTTP status answered; 0 when the connection was cut without a (complete) response.
    pub status: u16,
    /// The response body (API key redacted).
    pub response: String,
}

impl From<JournalEntry> for ReceivedRequest {
    fn from(e: JournalEntry) -> Self {
        Self {
            id: e.id,
            at_ms: e.at_ms,
            method: e.method.as_str().to_owned(),
            path: e.path.into_owned(),
            headers: e.headers.redacted(),
            raw_body: e.raw_body.unwrap_or_default(),
            body: e.body.unwrap_or_default(),
            status: e.status,
            response: String::from_utf8_lossy(&e.response).into_owned(),
        }
    }
}

impl ReceivedRequest {
    /// The first value of header `name` (case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// The request said `Content-Encoding: gzip` (spec §2).
    pub fn is_gzip(&self) -> bool {
        self.header("content-encoding")
            .is_some_and(|v| v.trim().eq_ignore_ascii_case("gzip"))
    }

    /// `POST /2/httpapi` or `POST /batch` (spec §1.1).
    pub fn is_upload(&self) -> bool {
        self.method == "POST" && (self.path == "/2/httpapi" || self.path == "/batch")
    }

    /// The decoded body parsed as JSON, if it is JSON.
    pub fn json(&self) -> Option<Value> {
        serde_json::from_slice(&self.body).ok()
    }

    /// The `events` array of an upload's decoded body (empty when there is none).
    pub fn events(&self) -> Vec<Value> {
        match self.json() {
            Some(Value::Object(mut o)) => match o.remove("events") {
                Some(Value::Array(a)) => a,
                _ => Vec::new(),
            },
            _ => Vec::new(),
        }
    }

    /// The response body parsed as JSON, if it is JSON.
    pub fn response_json(&self) -> Option<Value> {
        serde_json::from_str(&self.response).ok()
    }
}
