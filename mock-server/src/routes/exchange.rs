//! What the route families share about one request: reading its body against the limits
//! (`Received`), the journal entry begun for it, and the answer not yet sent (`Handled`).
//! Below the route families and the router; above the state and the HTTP leaf.

use crate::clock::Clock;
use crate::http_util::body::{gunzip_limited, read_limited, BodyError};
use crate::http_util::{amplitude_response, content_length, header_str, is_gzip, query_params};
use crate::ledger::{JournalEntry, RequestHeaders};
use crate::projects::Region;
use crate::state::MockState;
use amplitude_wire::Api;
use amplitude_wire::ResponseBody;
use bytes::Bytes;
use http::{header, Request};
use hyper::body::Incoming;
use std::borrow::Cow;
use std::collections::HashMap;
use std::net::SocketAddr;
use std::time::Duration;

/// Where a request arrived: its listener's settings.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Arrival {
    /// The listener forces this region (an EU listener); `None`: from the `Host` header.
    pub region: Option<Region>,
    /// Most time the body may take.
    pub read_timeout: Duration,
    /// The client.
    pub remote: SocketAddr,
}

/// What every body-carrying route has once its body is in: the journal entry begun for it,
/// its region, its query parameters, its raw length and the body (gunzipped when
/// `Content-Encoding: gzip`), or why the body was refused.
pub(crate) struct Received {
    pub entry: JournalEntry,
    pub id: u64,
    pub region: Region,
    pub params: HashMap<String, String>,
    pub content_type: Option<String>,
    pub raw_len: usize,
    pub body: Result<Bytes, BodyError>,
}

/// Reads the body of `req` against `limit` bytes (spec §3.4), raw and after gzip (spec §2).
/// A body that does not arrive in time is answered 408 (spec §5.6) and a client that goes
/// away gets nothing: both come back as `Err` with the response to give.
pub(crate) async fn receive(
    state: &MockState,
    at: Arrival,
    req: Request<Incoming>,
    limit: usize,
) -> Result<Received, Handled> {
    let region = at
        .region
        .unwrap_or_else(|| Region::from_host(header_str(&req, header::HOST)));
    let gzip = is_gzip(&req);
    let content_type = header_str(&req, header::CONTENT_TYPE).map(str::to_ascii_lowercase);
    let params = query_params(&req);
    let content_length = content_length(&req);
    let id = state.ledger.next_request_id();
    let mut entry = new_entry(
        state,
        id,
        req.method().clone(),
        journal_path(req.uri().path()),
        at.remote,
    );
    let (parts, body) = req.into_parts();
    entry.headers = RequestHeaders::new(parts.headers);
    let raw = match read_body(state, at.read_timeout, body, content_length, limit).await {
        Ok(raw) => Ok(raw),
        Err(ReadError::Timeout) => return Err(body_timeout(entry)),
        Err(ReadError::Body(BodyError::Io(e))) => {
            tracing::debug!(error = %e, "client went away while sending the body");
            return Err(Handled::gone());
        }
        Err(ReadError::Body(e)) => Err(e),
    };
    let raw_len = raw.as_ref().map_or(0, Bytes::len);
    let raw_kept = raw.as_ref().ok().cloned();
    let body = raw.and_then(|raw| {
        if gzip {
            gunzip_limited(&raw, limit).map(Bytes::from)
        } else {
            Ok(raw)
        }
    });
    entry.raw_body = raw_kept;
    entry.body = body.as_ref().ok().cloned();
    Ok(Received {
        entry,
        id,
        region,
        params,
        content_type,
        raw_len,
        body,
    })
}

/// A request handled but not yet answered: what to answer and what to journal.
pub(crate) struct Handled {
    /// HTTP status; 0 when the client went away while sending the body.
    pub status: u16,
    pub body: Bytes,
    pub content_type: &'static str,
    pub entry: Option<JournalEntry>,
    /// The pipeline answered 200 (its events were stored or deduplicated).
    pub committed: bool,
    /// Close the connection after the response (a body read timeout).
    pub close: bool,
}

impl Handled {
    /// The client went away: nothing to answer.
    pub(crate) fn gone() -> Self {
        Self {
            status: 0,
            body: Bytes::new(),
            content_type: "application/json",
            entry: None,
            committed: false,
            close: true,
        }
    }

    /// An Amplitude JSON answer for the request begun as `entry`: its status and body are
    /// journaled, `outcome` names what happened.
    pub(crate) fn amplitude(
        mut entry: JournalEntry,
        body: &ResponseBody,
        outcome: &'static str,
    ) -> Self {
        let (status, bytes) = amplitude_response(body);
        let bytes = Bytes::from(bytes);
        entry.status = status;
        entry.outcome = Cow::Borrowed(outcome);
        entry.response = bytes.clone();
        Self {
            status,
            body: bytes,
            content_type: "application/json",
            entry: Some(entry),
            committed: false,
            close: false,
        }
    }
}

/// The journal's copy of a request path: the route's static name for Amplitude's own paths
/// (no allocation on the hot path), else the path as sent.
pub(crate) fn journal_path(path: &str) -> Cow<'static, str> {
    match Api::from_path(path) {
        Some(api) => Cow::Borrowed(api.path()),
        None => Cow::Owned(path.to_owned()),
    }
}

/// The journal entry of a request, before its outcome is known.
pub(crate) fn new_entry(
    state: &MockState,
    id: u64,
    method: http::Method,
    path: Cow<'static, str>,
    remote: SocketAddr,
) -> JournalEntry {
    JournalEntry {
        id,
        at_ms: state.clock.now_ms(),
        method,
        path,
        remote,
        api_key: None,
        status: 0,
        outcome: Cow::Borrowed(""),
        events: 0,
        stored: 0,
        deduplicated: 0,
        body_bytes: 0,
        response: Bytes::new(),
        events_json: None,
        fault: None,
        headers: RequestHeaders::default(),
        raw_body: None,
        body: None,
    }
}

/// Why a body could not be read in time.
enum ReadError {
    Body(BodyError),
    Timeout,
}

/// Reads a body against the size `limit` (bytes) and the listener's read timeout.
async fn read_body(
    state: &MockState,
    read_timeout: Duration,
    body: Incoming,
    content_length: Option<u64>,
    limit: usize,
) -> Result<Bytes, ReadError> {
    match tokio::time::timeout(read_timeout, read_limited(body, content_length, limit)).await {
        Ok(r) => r.map_err(ReadError::Body),
        Err(_) => {
            state.metrics.body_timeout();
            Err(ReadError::Timeout)
        }
    }
}

/// The 408 of a body that did not arrive within the read timeout (spec §5.6); the
/// connection closes after it.
fn body_timeout(entry: JournalEntry) -> Handled {
    Handled {
        close: true,
        ..Handled::amplitude(entry, &ResponseBody::request_timeout(), "body_timeout")
    }
}

/// Most body bytes of an upload to `endpoint` (spec §3.4): 20 MB for `/batch`, else 1 MB.
pub(crate) fn upload_limit(state: &MockState, endpoint: Api) -> usize {
    let wire = endpoint
        .endpoint()
        .unwrap_or(amplitude_wire::Endpoint::HttpV2);
    state.config.profile.megabytes(wire.body_limit_mb())
}
