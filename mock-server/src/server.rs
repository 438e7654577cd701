//! The HTTP layer: hyper 1 on tokio, HTTP/1.1 with keep-alive, optionally over TLS. Routes
//! the ingestion APIs (spec §1.1), CORS preflight (spec §2), `/metrics` and the `/__mock/`
//! inspection routes; every response carries `Access-Control-Allow-Origin: *`.
//!
//! Transport (see [`ServeOptions`]): one task per connection, at most `max_connections`
//! connections per listener (further clients wait in the kernel's accept queue), request
//! heads and bodies must each arrive within `read_timeout_ms` (a slowloris client is cut;
//! a body that stalls gets 408), bodies are streamed against the size limit (spec §2, §3.4).
//! Injected faults (see `faults.rs`) are applied here; with none scheduled a request pays one
//! atomic load.

use crate::admin;
use crate::body::{gunzip_limited, read_limited, BodyError};
use crate::clock::Clock;
use crate::faults::{Delivery, FaultBody, Plan};
use crate::ledger::{Endpoint, JournalEntry, RejectReason};
use crate::metrics::Route;
use crate::projects::{redact_key, Region};
use crate::state::MockState;
use crate::tls::TlsIdentity;
use amplitude_wire::{error_text, ResponseBody};
use bytes::Bytes;
use http::{header, HeaderValue, Method, Request, Response, StatusCode};
use http_body_util::{Either, Full};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{watch, Semaphore};

/// Body type of every response: a whole body, or a body cut or trickled by a fault.
pub type ResponseBodyType = Either<Full<Bytes>, FaultBody>;

/// Transport settings of one listener (CLI: `--read-timeout-ms`, `--max-connections`,
/// `--tls`).
#[derive(Debug, Clone)]
pub struct ServeOptions {
    /// Forces every request on this listener into a region (an EU listener); `None` picks it
    /// from the `Host` header (spec §1.1).
    pub region: Option<Region>,
    /// Most time a request head, a request body, or a TLS handshake may take, ms (default
    /// 30,000). A body that does not arrive in time is answered 408 and the connection closed.
    pub read_timeout_ms: u64,
    /// Most connections served at once on this listener (default 10,000); further clients
    /// wait in the accept queue.
    pub max_connections: usize,
    /// Serve HTTPS with this identity (spec §2 "TLS").
    pub tls: Option<TlsIdentity>,
}

impl Default for ServeOptions {
    fn default() -> Self {
        Self {
            region: None,
            read_timeout_ms: 30_000,
            max_connections: 10_000,
            tls: None,
        }
    }
}

/// Serves `state` on `listener` until `shutdown` resolves, then lets open requests finish
/// (at most 5 s). `region` forces every request on this listener into a region (an EU
/// listener); `None` picks it from the `Host` header (spec §1.1). Default [`ServeOptions`].
pub async fn serve(
    listener: TcpListener,
    state: Arc<MockState>,
    region: Option<Region>,
    shutdown: impl Future<Output = ()>,
) -> std::io::Result<()> {
    serve_with(
        listener,
        state,
        ServeOptions {
            region,
            ..ServeOptions::default()
        },
        shutdown,
    )
    .await
}

/// Per-listener context shared by its connections.
struct Listener {
    region: Option<Region>,
    read_timeout: Duration,
    /// Turns true (or closes) when the listener shuts down: ends held (`delay`, `hang`)
    /// responses.
    stop: watch::Receiver<bool>,
}

/// Per-connection control a fault can pull.
#[derive(Debug, Default)]
struct ConnCtl {
    /// Close with `SO_LINGER` 0 (a TCP RST) instead of a FIN.
    reset: AtomicBool,
}

/// The accepted TCP stream, with the connection's control: on drop it sets `SO_LINGER` 0
/// when a `reset` fault asked for it, so the close sends an RST.
struct ConnIo {
    inner: TcpStream,
    ctl: Arc<ConnCtl>,
}

impl Drop for ConnIo {
    fn drop(&mut self) {
        if self.ctl.reset.load(Ordering::Relaxed) {
            let _ = socket2::SockRef::from(&self.inner).set_linger(Some(Duration::ZERO));
        }
    }
}

impl AsyncRead for ConnIo {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_read(cx, buf)
    }
}

impl AsyncWrite for ConnIo {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.get_mut().inner).poll_write(cx, buf)
    }
    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_flush(cx)
    }
    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_shutdown(cx)
    }
    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.get_mut().inner).poll_write_vectored(cx, bufs)
    }
    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }
}

/// The service's error: the connection is closed without (the rest of) a response.
#[derive(Debug, thiserror::Error)]
#[error("connection cut: {0}")]
pub struct Cut(&'static str);

/// Serves `state` on `listener` with `options` until `shutdown` resolves, then ends held
/// responses and lets open requests finish (at most 5 s).
pub async fn serve_with(
    listener: TcpListener,
    state: Arc<MockState>,
    options: ServeOptions,
    shutdown: impl Future<Output = ()>,
) -> std::io::Result<()> {
    let graceful = hyper_util::server::graceful::GracefulShutdown::new();
    let (stop_tx, stop_rx) = watch::channel(false);
    let permits = Arc::new(Semaphore::new(options.max_connections.max(1)));
    let acceptor = options.tls.as_ref().map(TlsIdentity::acceptor);
    let ctx = Arc::new(Listener {
        region: options.region,
        read_timeout: Duration::from_millis(options.read_timeout_ms.max(1)),
        stop: stop_rx,
    });
    tokio::pin!(shutdown);
    loop {
        let permit = tokio::select! {
            p = permits.clone().acquire_owned() => match p {
                Ok(p) => p,
                Err(_) => break,
            },
            () = &mut shutdown => break,
        };
        let (stream, remote) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(x) => x,
                Err(e) => {
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(10)).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        let _ = stream.set_nodelay(true);
        let ctl = Arc::new(ConnCtl::default());
        let io = ConnIo {
            inner: stream,
            ctl: ctl.clone(),
        };
        let watcher = graceful.watcher();
        let state = state.clone();
        let ctx = ctx.clone();
        let acceptor = acceptor.clone();
        tokio::spawn(async move {
            state.metrics.connection_opened();
            match acceptor {
                None => {
                    serve_connection(TokioIo::new(io), &state, &ctx, ctl, remote, watcher).await
                }
                Some(acceptor) => {
                    match tokio::time::timeout(ctx.read_timeout, acceptor.accept(io)).await {
                        Ok(Ok(tls)) => {
                            serve_connection(TokioIo::new(tls), &state, &ctx, ctl, remote, watcher)
                                .await
                        }
                        Ok(Err(e)) => tracing::debug!(error = %e, %remote, "TLS handshake failed"),
                        Err(_) => tracing::debug!(%remote, "TLS handshake timed out"),
                    }
                }
            }
            state.metrics.connection_closed();
            drop(permit);
        });
    }
    drop(listener);
    let _ = stop_tx.send(true);
    let _ = tokio::time::timeout(Duration::from_secs(5), graceful.shutdown()).await;
    Ok(())
}

async fn serve_connection<I>(
    io: TokioIo<I>,
    state: &Arc<MockState>,
    ctx: &Arc<Listener>,
    ctl: Arc<ConnCtl>,
    remote: SocketAddr,
    watcher: hyper_util::server::graceful::Watcher,
) where
    I: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let svc_state = state.clone();
    let svc_ctx = ctx.clone();
    let svc = service_fn(move |req| {
        let state = svc_state.clone();
        let ctx = svc_ctx.clone();
        let ctl = ctl.clone();
        async move { handle(&state, &ctx, &ctl, remote, req).await }
    });
    let conn = hyper::server::conn::http1::Builder::new()
        .keep_alive(true)
        .header_read_timeout(ctx.read_timeout)
        .timer(hyper_util::rt::TokioTimer::new())
        .serve_connection(io, svc);
    if let Err(e) = watcher.watch(conn).await {
        tracing::debug!(error = %e, %remote, "connection ended with an error");
    }
}

/// A response with CORS and content-type headers (`status` out of range answers 500).
fn response(status: u16, body: Bytes, content_type: &'static str) -> Response<ResponseBodyType> {
    let mut resp = Response::new(Either::Left(Full::new(body)));
    *resp.status_mut() = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let h = resp.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    h.insert(
        header::ACCESS_CONTROL_ALLOW_ORIGIN,
        HeaderValue::from_static("*"),
    );
    resp
}

/// A JSON response with CORS and content-type headers.
pub fn json_response(status: u16, body: Vec<u8>) -> Response<ResponseBodyType> {
    response(status, Bytes::from(body), "application/json")
}

fn amplitude_response(body: &ResponseBody) -> (u16, Vec<u8>) {
    let bytes = serde_json::to_vec(body).unwrap_or_else(|_| br#"{"code":500}"#.to_vec());
    (body.code, bytes)
}

fn preflight() -> Response<ResponseBodyType> {
    let mut resp = Response::new(Either::Left(Full::new(Bytes::new())));
    *resp.status_mut() = StatusCode::NO_CONTENT;
    let h = resp.headers_mut();
    h.insert(
        header::ACCESS_CONTROL_ALLOW_ORIGIN,
        HeaderValue::from_static("*"),
    );
    h.insert(
        header::ACCESS_CONTROL_ALLOW_METHODS,
        HeaderValue::from_static("GET, POST, OPTIONS"),
    );
    h.insert(
        header::ACCESS_CONTROL_ALLOW_HEADERS,
        HeaderValue::from_static("*"),
    );
    h.insert(
        header::ACCESS_CONTROL_MAX_AGE,
        HeaderValue::from_static("86400"),
    );
    resp
}

fn header_str(req: &Request<Incoming>, name: header::HeaderName) -> Option<&str> {
    req.headers().get(name).and_then(|v| v.to_str().ok())
}

/// Handles one request and records it in the metrics (route, status, time to the head).
async fn handle(
    state: &MockState,
    ctx: &Listener,
    ctl: &ConnCtl,
    remote: SocketAddr,
    req: Request<Incoming>,
) -> Result<Response<ResponseBodyType>, Cut> {
    let start = Instant::now();
    let route = if req.method() == Method::OPTIONS {
        Route::Other
    } else {
        Route::of(req.uri().path())
    };
    let result = dispatch(state, ctx, ctl, remote, req).await;
    let status = result.as_ref().map_or(0, |r| r.status().as_u16());
    state.metrics.record_request(route, status, start.elapsed());
    result
}

async fn dispatch(
    state: &MockState,
    ctx: &Listener,
    ctl: &ConnCtl,
    remote: SocketAddr,
    req: Request<Incoming>,
) -> Result<Response<ResponseBodyType>, Cut> {
    if req.method() == Method::OPTIONS {
        return Ok(preflight());
    }
    let path = req.uri().path();
    if path.starts_with("/__mock/") || path == "/__mock" || path == "/metrics" {
        return Ok(admin::handle(state, remote, req).await);
    }
    if let Some(plan) = state.faults.pick(path, state.clock.now_ms()) {
        return fault(state, ctx, ctl, remote, req, plan).await;
    }
    let h = process(state, ctx, remote, req).await;
    finish(state, h)
}

/// A request handled but not yet answered: what to answer and what to journal.
struct Handled {
    /// HTTP status; 0 when the client went away while sending the body.
    status: u16,
    body: Bytes,
    content_type: &'static str,
    entry: Option<JournalEntry>,
    /// The pipeline answered 200 (its events were stored or deduplicated).
    committed: bool,
    /// Close the connection after the response (a body read timeout).
    close: bool,
}

impl Handled {
    fn gone() -> Self {
        Self {
            status: 0,
            body: Bytes::new(),
            content_type: "application/json",
            entry: None,
            committed: false,
            close: true,
        }
    }
}

/// Counts, journals and answers a handled request.
fn finish(state: &MockState, h: Handled) -> Result<Response<ResponseBodyType>, Cut> {
    state.ledger.count_status(h.status);
    if h.status == 0 {
        return Err(Cut("client went away"));
    }
    if let Some(entry) = h.entry {
        log_request(&entry);
        state.ledger.journal(entry);
    }
    let mut resp = response(h.status, h.body, h.content_type);
    if h.close {
        resp.headers_mut()
            .insert(header::CONNECTION, HeaderValue::from_static("close"));
    }
    Ok(resp)
}

fn log_request(entry: &JournalEntry) {
    tracing::debug!(
        id = entry.id,
        method = %entry.method,
        path = %entry.path,
        remote = %entry.remote,
        api_key = entry.api_key.as_deref().unwrap_or("-"),
        status = entry.status,
        outcome = %entry.outcome,
        events = entry.events,
        stored = entry.stored,
        fault = entry.fault.as_deref().unwrap_or("-"),
        "request"
    );
}

/// Routes one ingestion request through its pipeline (nothing counted or journaled yet).
async fn process(
    state: &MockState,
    ctx: &Listener,
    remote: SocketAddr,
    req: Request<Incoming>,
) -> Handled {
    let endpoint = match (req.method(), req.uri().path()) {
        (&Method::POST, "/2/httpapi") => Endpoint::HttpV2,
        (&Method::POST, "/batch") => Endpoint::Batch,
        (&Method::POST | &Method::GET, "/identify") => {
            return identify(state, ctx, remote, Endpoint::Identify, req).await
        }
        (&Method::POST, "/groupidentify") => {
            return identify(state, ctx, remote, Endpoint::GroupIdentify, req).await
        }
        (&Method::POST, "/attribution") => {
            return identify(state, ctx, remote, Endpoint::Attribution, req).await
        }
        _ => return invalid_path(state, remote, &req),
    };
    upload(state, ctx, remote, endpoint, req).await
}

fn new_entry(
    state: &MockState,
    id: u64,
    method: String,
    path: String,
    remote: SocketAddr,
) -> JournalEntry {
    JournalEntry {
        id,
        at_ms: state.clock.now_ms(),
        method,
        path,
        remote: remote.to_string(),
        api_key: None,
        status: 0,
        outcome: String::new(),
        events: 0,
        stored: 0,
        deduplicated: 0,
        body_bytes: 0,
        response: String::new(),
        events_json: None,
        fault: None,
    }
}

fn invalid_path(state: &MockState, remote: SocketAddr, req: &Request<Incoming>) -> Handled {
    let id = state.ledger.next_request_id();
    let body = ResponseBody::error(400, error_text::INVALID_PATH);
    let (status, bytes) = amplitude_response(&body);
    let mut entry = new_entry(
        state,
        id,
        req.method().to_string(),
        req.uri().path().to_owned(),
        remote,
    );
    entry.status = status;
    entry.outcome = RejectReason::InvalidPath.as_str().to_owned();
    entry.response = String::from_utf8_lossy(&bytes).into_owned();
    Handled {
        status,
        body: Bytes::from(bytes),
        content_type: "application/json",
        entry: Some(entry),
        committed: false,
        close: false,
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
    ctx: &Listener,
    body: Incoming,
    content_length: Option<u64>,
    limit: usize,
) -> Result<Bytes, ReadError> {
    match tokio::time::timeout(ctx.read_timeout, read_limited(body, content_length, limit)).await {
        Ok(r) => r.map_err(ReadError::Body),
        Err(_) => {
            state.metrics.body_timeout();
            Err(ReadError::Timeout)
        }
    }
}

/// The 408 of a body that did not arrive within the read timeout (spec §5.6).
fn body_timeout(mut entry: JournalEntry) -> Handled {
    let bytes = br#"{"code":408,"error":"Request Timeout"}"#.to_vec();
    entry.status = 408;
    entry.outcome = "body_timeout".to_owned();
    entry.response = String::from_utf8_lossy(&bytes).into_owned();
    Handled {
        status: 408,
        body: Bytes::from(bytes),
        content_type: "application/json",
        entry: Some(entry),
        committed: false,
        close: true,
    }
}

fn is_gzip(req: &Request<Incoming>) -> bool {
    header_str(req, header::CONTENT_ENCODING).is_some_and(|e| e.eq_ignore_ascii_case("gzip"))
}

fn content_length(req: &Request<Incoming>) -> Option<u64> {
    header_str(req, header::CONTENT_LENGTH).and_then(|v| v.parse::<u64>().ok())
}

fn upload_limit(state: &MockState, endpoint: Endpoint) -> usize {
    match endpoint {
        Endpoint::Batch => state.config.profile.megabytes(20),
        _ => state.config.profile.megabytes(1),
    }
}

/// What every body-carrying route has once its body is in: the journal entry begun for it,
/// its region, its query parameters, its raw length and the body (gunzipped when
/// `Content-Encoding: gzip`), or why the body was refused.
struct Received {
    entry: JournalEntry,
    id: u64,
    region: Region,
    params: std::collections::HashMap<String, String>,
    content_type: Option<String>,
    raw_len: usize,
    body: Result<Bytes, BodyError>,
}

/// Reads the body of `req` against `limit` bytes (spec §3.4), raw and after gzip (spec §2).
/// A body that does not arrive in time is answered 408 (spec §5.6) and a client that goes
/// away gets nothing: both come back as `Err` with the response to give.
async fn receive(
    state: &MockState,
    ctx: &Listener,
    remote: SocketAddr,
    req: Request<Incoming>,
    limit: usize,
) -> Result<Received, Handled> {
    let region = ctx
        .region
        .unwrap_or_else(|| Region::from_host(header_str(&req, header::HOST)));
    let gzip = is_gzip(&req);
    let content_type = header_str(&req, header::CONTENT_TYPE).map(str::to_ascii_lowercase);
    let params = query_params(&req);
    let content_length = content_length(&req);
    let id = state.ledger.next_request_id();
    let entry = new_entry(
        state,
        id,
        req.method().to_string(),
        req.uri().path().to_owned(),
        remote,
    );
    let raw = match read_body(state, ctx, req.into_body(), content_length, limit).await {
        Ok(raw) => Ok(raw),
        Err(ReadError::Timeout) => return Err(body_timeout(entry)),
        Err(ReadError::Body(BodyError::Io(e))) => {
            tracing::debug!(error = %e, "client went away while sending the body");
            return Err(Handled::gone());
        }
        Err(ReadError::Body(e)) => Err(e),
    };
    let raw_len = raw.as_ref().map_or(0, Bytes::len);
    let body = raw.and_then(|raw| {
        if gzip {
            gunzip_limited(&raw, limit).map(Bytes::from)
        } else {
            Ok(raw)
        }
    });
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

async fn upload(
    state: &MockState,
    ctx: &Listener,
    remote: SocketAddr,
    endpoint: Endpoint,
    req: Request<Incoming>,
) -> Handled {
    let profile = &state.config.profile;
    let Received {
        mut entry,
        id,
        region,
        content_type,
        raw_len,
        body,
        ..
    } = match receive(state, ctx, remote, req, upload_limit(state, endpoint)).await {
        Ok(r) => r,
        Err(handled) => return handled,
    };
    let content_type_ok = !profile.strict_content_type
        || content_type
            .as_deref()
            .is_some_and(|t| t.starts_with("application/json") || t.starts_with("text/plain"));
    let reject = |body: ResponseBody, reason| crate::ingest::Outcome {
        body,
        reason: Some(reason),
        events: 0,
        stored: 0,
        deduplicated: 0,
        api_key: None,
        events_json: None,
    };
    let outcome = match body {
        Err(BodyError::Io(_)) => return Handled::gone(),
        Err(BodyError::TooLarge) => reject(
            ResponseBody::payload_too_large(),
            RejectReason::PayloadTooLarge,
        ),
        Err(BodyError::BadGzip(_)) => reject(
            ResponseBody::error(400, error_text::INVALID_JSON),
            RejectReason::InvalidJson,
        ),
        Ok(_) if !content_type_ok => reject(
            ResponseBody::error(400, error_text::INVALID_JSON),
            RejectReason::InvalidJson,
        ),
        Ok(body) => {
            let size = if profile.payload_size_is_compressed {
                raw_len
            } else {
                body.len()
            };
            state.ingest(endpoint, region, &body, size, id)
        }
    };
    if outcome.body.code == 429 {
        let b = &outcome.body;
        let n = [
            &b.throttled_devices,
            &b.throttled_users,
            &b.exceeded_daily_quota_devices,
            &b.exceeded_daily_quota_users,
        ]
        .iter()
        .map(|m| m.as_ref().map_or(0, |m| m.len() as u64))
        .sum();
        state.metrics.add_throttled_identities(n);
    }
    let (status, bytes) = amplitude_response(&outcome.body);
    let api_key = outcome.api_key.as_deref();
    let redacted = api_key.map(redact_key);
    let mut response = String::from_utf8_lossy(&bytes).into_owned();
    // Only error bodies can echo the key (a 200 holds numbers only): skipping the search on
    // the hot path saves ~5% of a small request (docs/benchmarks.md).
    if let (Some(k), Some(r), true) = (api_key.filter(|k| !k.is_empty()), &redacted, status != 200)
    {
        response = response.replace(k, r);
    }
    entry.api_key = redacted;
    entry.status = status;
    entry.outcome = outcome
        .reason
        .map_or("stored", RejectReason::as_str)
        .to_owned();
    entry.events = outcome.events;
    entry.stored = outcome.stored;
    entry.deduplicated = outcome.deduplicated;
    entry.body_bytes = raw_len;
    entry.response = response;
    entry.events_json = outcome.events_json;
    Handled {
        status,
        body: Bytes::from(bytes),
        content_type: "application/json",
        entry: Some(entry),
        committed: status == 200,
        close: false,
    }
}

/// Query-string parameters of a request.
fn query_params(req: &Request<Incoming>) -> std::collections::HashMap<String, String> {
    req.uri()
        .query()
        .map(|q| form_urlencoded::parse(q.as_bytes()).into_owned().collect())
        .unwrap_or_default()
}

/// `/identify`, `/groupidentify`, `/attribution`: parameters from the query string and a
/// form-urlencoded body (spec §10-§12), at most 1 MB.
async fn identify(
    state: &MockState,
    ctx: &Listener,
    remote: SocketAddr,
    endpoint: Endpoint,
    req: Request<Incoming>,
) -> Handled {
    let limit = state.config.profile.megabytes(1);
    let Received {
        mut entry,
        id,
        region,
        mut params,
        raw_len,
        body,
        ..
    } = match receive(state, ctx, remote, req, limit).await {
        Ok(r) => r,
        Err(handled) => return handled,
    };
    let outcome = match body {
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
    let mut outcome = outcome;
    if !outcome.json && !state.config.profile.identify_text_bodies {
        // profile `identify_text_bodies = false` (spec §15 #16): the same answer as JSON
        let body = if outcome.status == 200 {
            serde_json::json!({ "code": 200 })
        } else {
            serde_json::json!({ "code": outcome.status, "error": outcome.body })
        };
        outcome.body = body.to_string();
        outcome.json = true;
    }
    let api_key = outcome.api_key.as_deref();
    let mut response = outcome.body.clone();
    if let Some(k) = api_key.filter(|k| !k.is_empty()) {
        response = response.replace(k, &redact_key(k));
    }
    entry.api_key = api_key.map(redact_key);
    entry.status = outcome.status;
    entry.outcome = outcome
        .reason
        .map_or("stored", RejectReason::as_str)
        .to_owned();
    entry.events = outcome.items;
    entry.body_bytes = raw_len;
    entry.response = response;
    Handled {
        status: outcome.status,
        body: Bytes::from(outcome.body.into_bytes()),
        content_type: if outcome.json {
            "application/json"
        } else {
            "text/plain; charset=utf-8"
        },
        entry: Some(entry),
        committed: outcome.status == 200,
        close: false,
    }
}

/// The API key, the number of events and the raw `events` array of an HTTP V2 / Batch body,
/// without running the pipeline (an uncommitted fault still accounts for what it refused, and
/// the journal keeps what was sent).
fn peek_upload(
    body: &[u8],
) -> (
    Option<String>,
    usize,
    Option<Box<serde_json::value::RawValue>>,
) {
    #[derive(serde::Deserialize)]
    struct Peek<'a> {
        #[serde(default)]
        api_key: Option<serde_json::Value>,
        #[serde(borrow, default)]
        events: Option<&'a serde_json::value::RawValue>,
    }
    match serde_json::from_slice::<Peek<'_>>(body) {
        Ok(p) => {
            let n = p
                .events
                .and_then(|e| {
                    serde_json::from_str::<Vec<&serde_json::value::RawValue>>(e.get()).ok()
                })
                .map_or(0, |e| e.len());
            (
                p.api_key.and_then(|k| k.as_str().map(str::to_owned)),
                n,
                p.events.filter(|_| n > 0).map(|e| e.to_owned()),
            )
        }
        Err(_) => (None, 0, None),
    }
}

/// Reads the body of a request an uncommitted fault takes: nothing is stored; its events
/// count as received and rejected with reason `fault` (spec §5.5: never committed).
async fn refuse(
    state: &MockState,
    ctx: &Listener,
    remote: SocketAddr,
    req: Request<Incoming>,
) -> Handled {
    let path = req.uri().path().to_owned();
    let endpoint = match path.as_str() {
        "/2/httpapi" => Some(Endpoint::HttpV2),
        "/batch" => Some(Endpoint::Batch),
        _ => None,
    };
    let limit = upload_limit(state, endpoint.unwrap_or(Endpoint::Batch));
    let Received {
        mut entry,
        mut params,
        raw_len,
        body,
        ..
    } = match receive(state, ctx, remote, req, limit).await {
        Ok(r) => r,
        Err(handled) => return handled,
    };
    entry.body_bytes = raw_len;
    let body = body.unwrap_or_default();
    let (api_key, events, events_json) = if endpoint.is_some() {
        peek_upload(&body)
    } else {
        params.extend(form_urlencoded::parse(&body).into_owned());
        (params.remove("api_key"), 0, None)
    };
    entry.events_json = events_json;
    if events > 0 {
        state.ledger.count_received(events);
        state.ledger.count_rejected(RejectReason::Fault, events);
    }
    entry.api_key = api_key.as_deref().map(redact_key);
    entry.events = events;
    entry.outcome = RejectReason::Fault.as_str().to_owned();
    Handled {
        status: 0,
        body: Bytes::new(),
        content_type: "application/json",
        entry: Some(entry),
        committed: false,
        close: false,
    }
}

/// Applies an injected fault to a request (see `faults.rs` for what each kind does).
async fn fault(
    state: &MockState,
    ctx: &Listener,
    ctl: &ConnCtl,
    remote: SocketAddr,
    req: Request<Incoming>,
    plan: Plan,
) -> Result<Response<ResponseBodyType>, Cut> {
    let kind = plan.kind.as_str();
    let mut h = if plan.run_pipeline {
        process(state, ctx, remote, req).await
    } else {
        refuse(state, ctx, remote, req).await
    };
    let Some(mut entry) = h.entry.take() else {
        // The client went away while sending the body: nothing to deliver.
        state.ledger.count_fault(kind, false);
        state.ledger.count_status(0);
        return Err(Cut("client went away"));
    };
    if h.close {
        // The body did not arrive in time: the 408 goes out as it is.
        state.ledger.count_fault(kind, false);
        h.entry = Some(entry);
        return finish(state, h);
    }
    let committed = plan.run_pipeline && h.committed;
    state.ledger.count_fault(kind, committed);
    if let Some(s) = plan.synthetic {
        h.status = s.status;
        h.body = s.body;
        h.content_type = s.content_type;
        entry.response = String::from_utf8_lossy(&h.body).into_owned();
    }
    entry.fault = Some(kind.to_owned());
    tracing::info!(
        id = entry.id,
        path = %entry.path,
        fault = kind,
        committed,
        api_key = entry.api_key.as_deref().unwrap_or("-"),
        "fault injected"
    );
    let cut = matches!(
        plan.delivery,
        Delivery::Reset | Delivery::Close | Delivery::Hang(_)
    );
    entry.status = if cut { 0 } else { h.status };
    state.ledger.count_status(entry.status);
    log_request(&entry);
    state.ledger.journal(entry);
    let mut stop = ctx.stop.clone();
    match plan.delivery {
        Delivery::Normal => Ok(response(h.status, h.body, h.content_type)),
        Delivery::Delay(d) => {
            tokio::select! {
                () = tokio::time::sleep(d) => Ok(response(h.status, h.body, h.content_type)),
                _ = stop.wait_for(|s| *s) => Err(Cut("shutting down")),
            }
        }
        Delivery::Reset => {
            ctl.reset.store(true, Ordering::Relaxed);
            Err(Cut("reset fault"))
        }
        Delivery::Close => Err(Cut("close fault")),
        Delivery::Hang(cap) => {
            let cap = cap.unwrap_or(Duration::from_secs(24 * 3600));
            tokio::select! {
                () = tokio::time::sleep(cap) => {}
                _ = stop.wait_for(|s| *s) => {}
            }
            Err(Cut("hang fault"))
        }
        Delivery::Truncate | Delivery::Dribble { .. } => {
            let len = h.body.len();
            let body = match plan.delivery {
                Delivery::Dribble { total, chunks } => FaultBody::dribble(h.body, total, chunks),
                _ => FaultBody::truncate(h.body),
            };
            let mut resp = response(h.status, Bytes::new(), h.content_type);
            *resp.body_mut() = Either::Right(body);
            resp.headers_mut()
                .insert(header::CONTENT_LENGTH, HeaderValue::from(len));
            Ok(resp)
        }
    }
}
