//! The HTTP layer: hyper 1 on tokio, HTTP/1.1 with keep-alive. Routes the ingestion APIs
//! (spec §1.1), CORS preflight (spec §2), and the `/__mock/` inspection routes; every
//! response carries `Access-Control-Allow-Origin: *`.

use crate::admin;
use crate::body::{gunzip_limited, read_limited, BodyError};
use crate::ledger::{Endpoint, JournalEntry, RejectReason};
use crate::projects::{redact_key, Region};
use crate::state::MockState;
use crate::clock::Clock;
use amplitude_wire::{error_text, ResponseBody};
use bytes::Bytes;
use http::{header, HeaderValue, Method, Request, Response, StatusCode};
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;

/// Body type of every response.
pub type ResponseBodyType = Full<Bytes>;

/// Serves `state` on `listener` until `shutdown` resolves, then lets open requests finish
/// (at most 5 s). `region` forces every request on this listener into a region (an EU
/// listener); `None` picks it from the `Host` header (spec §1.1).
pub async fn serve(
    listener: TcpListener,
    state: Arc<MockState>,
    region: Option<Region>,
    shutdown: impl Future<Output = ()>,
) -> std::io::Result<()> {
    let graceful = hyper_util::server::graceful::GracefulShutdown::new();
    tokio::pin!(shutdown);
    loop {
        tokio::select! {
            accepted = listener.accept() => {
                let (stream, remote) = match accepted {
                    Ok(x) => x,
                    Err(e) => {
                        tracing::warn!(error = %e, "accept failed");
                        tokio::time::sleep(Duration::from_millis(10)).await;
                        continue;
                    }
                };
                let _ = stream.set_nodelay(true);
                let state = state.clone();
                let svc = service_fn(move |req| {
                    let state = state.clone();
                    async move { Ok::<_, Infallible>(handle(&state, region, remote, req).await) }
                });
                let conn = hyper::server::conn::http1::Builder::new()
                    .keep_alive(true)
                    .header_read_timeout(Duration::from_secs(30))
                    .timer(hyper_util::rt::TokioTimer::new())
                    .serve_connection(TokioIo::new(stream), svc);
                let conn = graceful.watch(conn);
                tokio::spawn(async move {
                    if let Err(e) = conn.await {
                        tracing::debug!(error = %e, "connection ended with an error");
                    }
                });
            }
            () = &mut shutdown => break,
        }
    }
    drop(listener);
    let _ = tokio::time::timeout(Duration::from_secs(5), graceful.shutdown()).await;
    Ok(())
}

/// A JSON response with CORS and content-type headers.
pub fn json_response(status: u16, body: Vec<u8>) -> Response<ResponseBodyType> {
    let mut resp = Response::new(Full::new(Bytes::from(body)));
    *resp.status_mut() = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let h = resp.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
    h.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, HeaderValue::from_static("*"));
    resp
}

fn amplitude_response(body: &ResponseBody) -> (u16, Vec<u8>) {
    let bytes = serde_json::to_vec(body).unwrap_or_else(|_| br#"{"code":500}"#.to_vec());
    (body.code, bytes)
}

fn preflight() -> Response<ResponseBodyType> {
    let mut resp = Response::new(Full::new(Bytes::new()));
    *resp.status_mut() = StatusCode::NO_CONTENT;
    let h = resp.headers_mut();
    h.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, HeaderValue::from_static("*"));
    h.insert(header::ACCESS_CONTROL_ALLOW_METHODS, HeaderValue::from_static("GET, POST, OPTIONS"));
    h.insert(header::ACCESS_CONTROL_ALLOW_HEADERS, HeaderValue::from_static("*"));
    h.insert(header::ACCESS_CONTROL_MAX_AGE, HeaderValue::from_static("86400"));
    resp
}

fn header_str<'a>(req: &'a Request<Incoming>, name: header::HeaderName) -> Option<&'a str> {
    req.headers().get(name).and_then(|v| v.to_str().ok())
}

/// Routes one request.
pub async fn handle(
    state: &MockState,
    region: Option<Region>,
    remote: SocketAddr,
    req: Request<Incoming>,
) -> Response<ResponseBodyType> {
    if req.method() == Method::OPTIONS {
        return preflight();
    }
    let path = req.uri().path();
    if path.starts_with("/__mock/") || path == "/__mock" || path == "/metrics" {
        return admin::handle(state, remote, req).await;
    }
    let endpoint = match (req.method(), path) {
        (&Method::POST, "/2/httpapi") => Endpoint::HttpV2,
        (&Method::POST, "/batch") => Endpoint::Batch,
        (&Method::POST | &Method::GET, "/identify") => {
            return identify(state, region, remote, Endpoint::Identify, req).await
        }
        (&Method::POST, "/groupidentify") => {
            return identify(state, region, remote, Endpoint::GroupIdentify, req).await
        }
        (&Method::POST, "/attribution") => {
            return identify(state, region, remote, Endpoint::Attribution, req).await
        }
        _ => {
            let id = state.ledger.next_request_id();
            let body = ResponseBody::error(400, error_text::INVALID_PATH);
            let (status, bytes) = amplitude_response(&body);
            state.ledger.count_status(status);
            state.ledger.journal(JournalEntry {
                id,
                at_ms: state.clock.now_ms(),
                method: req.method().to_string(),
                path: path.to_owned(),
                remote: remote.to_string(),
                api_key: None,
                status,
                outcome: RejectReason::InvalidPath.as_str().to_owned(),
                events: 0,
                stored: 0,
                deduplicated: 0,
                body_bytes: 0,
                response: String::from_utf8_lossy(&bytes).into_owned(),
                events_json: None,
                fault: None,
            });
            return json_response(status, bytes);
        }
    };
    let (status, bytes) = upload(state, region, remote, endpoint, req).await;
    json_response(status, bytes)
}

async fn upload(
    state: &MockState,
    region: Option<Region>,
    remote: SocketAddr,
    endpoint: Endpoint,
    req: Request<Incoming>,
) -> (u16, Vec<u8>) {
    let profile = &state.config.profile;
    let region = region.unwrap_or_else(|| Region::from_host(header_str(&req, header::HOST)));
    let limit = match endpoint {
        Endpoint::Batch => profile.megabytes(20),
        _ => profile.megabytes(1),
    };
    let gzip = header_str(&req, header::CONTENT_ENCODING).is_some_and(|e| e.eq_ignore_ascii_case("gzip"));
    let content_type_ok = !profile.strict_content_type
        || header_str(&req, header::CONTENT_TYPE).is_some_and(|t| {
            let t = t.to_ascii_lowercase();
            t.starts_with("application/json") || t.starts_with("text/plain")
        });
    let content_length = header_str(&req, header::CONTENT_LENGTH).and_then(|v| v.parse::<u64>().ok());
    let method = req.method().to_string();
    let path = req.uri().path().to_owned();
    let id = state.ledger.next_request_id();
    let raw = read_limited(req.into_body(), content_length, limit).await;
    let raw_len = raw.as_ref().map_or(0, Bytes::len);
    let body = raw.and_then(|raw| {
        if gzip {
            gunzip_limited(&raw, limit).map(Bytes::from)
        } else {
            Ok(raw)
        }
    });
    let outcome = match body {
        Err(BodyError::Io(e)) => {
            tracing::debug!(error = %e, "client went away while sending the body");
            state.ledger.count_status(0);
            return (0, Vec::new());
        }
        Err(BodyError::TooLarge) => crate::ingest::Outcome {
            body: ResponseBody::payload_too_large(),
            reason: Some(RejectReason::PayloadTooLarge),
            events: 0,
            stored: 0,
            deduplicated: 0,
            api_key: None,
            events_json: None,
        },
        Err(BodyError::BadGzip(_)) => crate::ingest::Outcome {
            body: ResponseBody::error(400, error_text::INVALID_JSON),
            reason: Some(RejectReason::InvalidJson),
            events: 0,
            stored: 0,
            deduplicated: 0,
            api_key: None,
            events_json: None,
        },
        Ok(_) if !content_type_ok => crate::ingest::Outcome {
            body: ResponseBody::error(400, error_text::INVALID_JSON),
            reason: Some(RejectReason::InvalidJson),
            events: 0,
            stored: 0,
            deduplicated: 0,
            api_key: None,
            events_json: None,
        },
        Ok(body) => {
            let size = if profile.payload_size_is_compressed { raw_len } else { body.len() };
            state.ingest(endpoint, region, &body, size, id)
        }
    };
    let (status, bytes) = amplitude_response(&outcome.body);
    state.ledger.count_status(status);
    let api_key = outcome.api_key.as_deref();
    let mut response = String::from_utf8_lossy(&bytes).into_owned();
    if let Some(k) = api_key.filter(|k| !k.is_empty()) {
        response = response.replace(k, &redact_key(k));
    }
    state.ledger.journal(JournalEntry {
        id,
        at_ms: state.clock.now_ms(),
        method,
        path,
        remote: remote.to_string(),
        api_key: api_key.map(redact_key),
        status,
        outcome: outcome.reason.map_or("stored", RejectReason::as_str).to_owned(),
        events: outcome.events,
        stored: outcome.stored,
        deduplicated: outcome.deduplicated,
        body_bytes: raw_len,
        response,
        events_json: outcome.events_json,
        fault: None,
    });
    (status, bytes)
}

/// `/identify`, `/groupidentify`, `/attribution`: parameters from the query string and a
/// form-urlencoded body (spec §10-§12), at most 1 MB.
async fn identify(
    state: &MockState,
    region: Option<Region>,
    remote: SocketAddr,
    endpoint: Endpoint,
    req: Request<Incoming>,
) -> Response<ResponseBodyType> {
    let region = region.unwrap_or_else(|| Region::from_host(header_str(&req, header::HOST)));
    let limit = state.config.profile.megabytes(1);
    let content_length = header_str(&req, header::CONTENT_LENGTH).and_then(|v| v.parse::<u64>().ok());
    let mut params: std::collections::HashMap<String, String> = req
        .uri()
        .query()
        .map(|q| form_urlencoded::parse(q.as_bytes()).into_owned().collect())
        .unwrap_or_default();
    let method = req.method().to_string();
    let path = req.uri().path().to_owned();
    let id = state.ledger.next_request_id();
    let raw = read_limited(req.into_body(), content_length, limit).await;
    let raw_len = raw.as_ref().map_or(0, Bytes::len);
    let outcome = match raw {
        Ok(body) => {
            params.extend(form_urlencoded::parse(&body).into_owned());
            state.identify(endpoint, region, &params, id)
        }
        Err(_) => crate::identify::TextOutcome {
            status: 413,
            body: "Payload too large".to_owned(),
            json: false,
            reason: Some(RejectReason::PayloadTooLarge),
            items: 0,
            api_key: None,
        },
    };
    state.ledger.count_status(outcome.status);
    let api_key = outcome.api_key.as_deref();
    state.ledger.journal(JournalEntry {
        id,
        at_ms: state.clock.now_ms(),
        method,
        path,
        remote: remote.to_string(),
        api_key: api_key.map(redact_key),
        status: outcome.status,
        outcome: outcome.reason.map_or("stored", RejectReason::as_str).to_owned(),
        events: outcome.items,
        stored: 0,
        deduplicated: 0,
        body_bytes: raw_len,
        response: outcome.body.clone(),
        events_json: None,
        fault: None,
    });
    let mut resp = json_response(outcome.status, outcome.body.into_bytes());
    if !outcome.json {
        resp.headers_mut()
            .insert(header::CONTENT_TYPE, HeaderValue::from_static("text/plain; charset=utf-8"));
    }
    resp
}
