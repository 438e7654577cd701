//! The router and transport: hyper 1 on tokio, HTTP/1.1 with keep-alive, optionally over
//! TLS. Sends each request to its route family (`routes/`: the ingestion APIs, spec §1.1;
//! the identify APIs; `/metrics`; the `/__mock/` inspection routes), answers CORS preflights
//! (spec §2); every response carries `Access-Control-Allow-Origin: *`.
//!
//! Transport (see [`ServeOptions`]): one task per connection, at most `max_connections`
//! connections per listener (further clients wait in the kernel's accept queue), request
//! heads and bodies must each arrive within `read_timeout_ms` (a slowloris client is cut;
//! a body that stalls gets 408), bodies are streamed against the size limit (spec §2, §3.4).
//! Injected faults (see `faults.rs`) are applied here; with none scheduled a request pays one
//! atomic load.

use crate::clock::Clock;
use crate::faults::{canned_body, CannedContext, Delivery, FaultRequest, Plan, RequestIds};
use crate::http_util::{amplitude_response, preflight, response, FaultBody, ResponseBodyType};
use crate::ledger::{JournalEntry, RejectReason};
use crate::metrics::Route;
use crate::projects::{redact_key, Region};
use crate::routes::exchange::{new_entry, receive, upload_limit, Arrival, Handled, Received};
use crate::routes::{admin, identify, ingest};
use crate::state::MockState;
use crate::steps::ForcedThrottle;
use crate::tls::TlsIdentity;
use amplitude_wire::Api;
use amplitude_wire::{error_text, ResponseBody};
use bytes::Bytes;
use http::{header, HeaderValue, Method, Request, Response};
use http_body_util::Either;
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
/// listener); `None` picks it from the `Host` header (spec §1.1). Default transport
/// settings (30 s read timeout, 10,000 connections).
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

impl Listener {
    fn arrival(&self, remote: SocketAddr) -> Arrival {
        Arrival {
            region: self.region,
            read_timeout: self.read_timeout,
            remote,
        }
    }
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
/// responses and lets open requests finish (at most 5 s). A `refuse` fault closes
/// `listener` during its window and binds its address again afterwards (see `refuse.rs`).
pub async fn serve_with(
    listener: TcpListener,
    state: Arc<MockState>,
    options: ServeOptions,
    shutdown: impl Future<Output = ()>,
) -> std::io::Result<()> {
    let slot = register(listener, &state)?;
    serve_slot(slot, state, options, shutdown).await
}

/// A listener registered with its mock (counted in the listener view), closed at once when
/// a `refuse` window is open now.
pub(crate) struct Slot {
    listener: Option<TcpListener>,
    addr: SocketAddr,
}

/// Registers `listener` with `state`'s listener view and applies a `refuse` window open
/// now, synchronously (a client connecting right after this gets `ECONNREFUSED`).
pub(crate) fn register(listener: TcpListener, state: &MockState) -> std::io::Result<Slot> {
    let addr = listener.local_addr()?;
    state.listeners.update(|v| v.listeners += 1);
    let mut slot = Slot {
        listener: Some(listener),
        addr,
    };
    let now = state.clock.now_ms();
    if let Some(until) = state.faults.refuse_gate(now).closed_until {
        close_for_refuse(&mut slot, state, now, until);
    }
    Ok(slot)
}

/// Closes the slot's listener for a `refuse` window ending at `until_ms`.
fn close_for_refuse(slot: &mut Slot, state: &MockState, now: i64, until_ms: i64) {
    slot.listener = None;
    for _ in 0..state.faults.enter_refuse(now) {
        state.ledger.count_fault("refuse", false);
    }
    state.listeners.update(|v| v.closed += 1);
    tracing::info!(addr = %slot.addr, until_ms, "refuse fault: listener closed");
}

/// The accept loop of a registered listener.
pub(crate) async fn serve_slot(
    mut slot: Slot,
    state: Arc<MockState>,
    options: ServeOptions,
    shutdown: impl Future<Output = ()>,
) -> std::io::Result<()> {
    let graceful = hyper_util::server::graceful::GracefulShutdown::new();
    let (stop_tx, stop_rx) = watch::channel(false);
    // Bumped at each refuse window's start: the listener's connections close.
    let (down_tx, down_rx) = watch::channel(0u64);
    let permits = Arc::new(Semaphore::new(options.max_connections.max(1)));
    let acceptor = options.tls.as_ref().map(TlsIdentity::acceptor);
    let ctx = Arc::new(Listener {
        region: options.region,
        read_timeout: Duration::from_millis(options.read_timeout_ms.max(1)),
        stop: stop_rx,
    });
    let mut clock_rx = state.clock.subscribe();
    let mut faults_rx = state.faults.subscribe();
    tokio::pin!(shutdown);
    loop {
        clock_rx.borrow_and_update();
        faults_rx.borrow_and_update();
        let now = state.clock.now_ms();
        let gate = state.faults.refuse_gate(now);
        match (slot.listener.is_some(), gate.closed_until) {
            (true, Some(until)) => {
                close_for_refuse(&mut slot, &state, now, until);
                down_tx.send_modify(|g| *g = g.wrapping_add(1));
                continue;
            }
            (false, None) => match crate::refuse::rebind(slot.addr) {
                Ok(l) => {
                    slot.listener = Some(l);
                    state
                        .listeners
                        .update(|v| v.closed = v.closed.saturating_sub(1));
                    tracing::info!(addr = %slot.addr, "refuse window over: listener open again");
                    continue;
                }
                Err(e) => {
                    tracing::warn!(addr = %slot.addr, error = %e, "rebinding after a refuse window failed; retrying");
                    tokio::select! {
                        () = tokio::time::sleep(Duration::from_millis(50)) => continue,
                        () = &mut shutdown => break,
                    }
                }
            },
            _ => {}
        }
        let wake = gate.closed_until.or(gate.next_start);
        let changed = crate::refuse::changed(&state.clock, &mut clock_rx, &mut faults_rx, wake);
        tokio::pin!(changed);
        let Some(listener) = &slot.listener else {
            tokio::select! {
                () = &mut changed => continue,
                () = &mut shutdown => break,
            }
        };
        let permit = tokio::select! {
            p = permits.clone().acquire_owned() => match p {
                Ok(p) => p,
                Err(_) => break,
            },
            () = &mut changed => continue,
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
            () = &mut changed => continue,
            () = &mut shutdown => break,
        };
        let _ = stream.set_nodelay(true);
        let ctl = Arc::new(ConnCtl::default());
        let io = ConnIo {
            inner: stream,
            ctl: ctl.clone(),
        };
        let watcher = graceful.watcher();
        let mut down = down_rx.clone();
        down.borrow_and_update();
        let state = state.clone();
        let ctx = ctx.clone();
        let acceptor = acceptor.clone();
        tokio::spawn(async move {
            state.metrics.connection_opened();
            let conn = Conn {
                ctl,
                remote,
                down,
                _watcher: watcher,
            };
            match acceptor {
                None => serve_connection(TokioIo::new(io), &state, &ctx, conn).await,
                Some(acceptor) => {
                    match tokio::time::timeout(ctx.read_timeout, acceptor.accept(io)).await {
                        Ok(Ok(tls)) => {
                            serve_connection(TokioIo::new(tls), &state, &ctx, conn).await
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
    let closed = slot.listener.is_none();
    drop(slot);
    state.listeners.update(|v| {
        v.listeners = v.listeners.saturating_sub(1);
        if closed {
            v.closed = v.closed.saturating_sub(1);
        }
    });
    let _ = stop_tx.send(true);
    let _ = tokio::time::timeout(Duration::from_secs(5), graceful.shutdown()).await;
    Ok(())
}

/// One accepted connection's handles.
struct Conn {
    ctl: Arc<ConnCtl>,
    remote: SocketAddr,
    /// Changes when a `refuse` window closes the listener: the connection closes.
    down: watch::Receiver<u64>,
    /// Held while the connection lives: the listener's shutdown waits for it.
    _watcher: hyper_util::server::graceful::Watcher,
}

async fn serve_connection<I>(
    io: TokioIo<I>,
    state: &Arc<MockState>,
    ctx: &Arc<Listener>,
    conn: Conn,
) where
    I: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let Conn {
        ctl,
        remote,
        mut down,
        _watcher,
    } = conn;
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
    tokio::pin!(conn);
    let mut stop = ctx.stop.clone();
    let mut draining = false;
    let mut down_gone = false;
    loop {
        tokio::select! {
            r = conn.as_mut() => {
                if let Err(e) = r {
                    tracing::debug!(error = %e, %remote, "connection ended with an error");
                }
                break;
            }
            _ = stop.wait_for(|s| *s), if !draining => {
                conn.as_mut().graceful_shutdown();
                draining = true;
            }
            r = down.changed(), if !draining && !down_gone => {
                if r.is_ok() {
                    conn.as_mut().graceful_shutdown();
                    draining = true;
                } else {
                    down_gone = true;
                }
            }
        }
    }
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
    // 0: no (complete) response — cut, or a body a `truncate` fault cuts (metrics "cut").
    let status = match &result {
        Ok(r) if matches!(r.body(), Either::Right(b) if b.cuts()) => 0,
        Ok(r) => r.status().as_u16(),
        Err(_) => 0,
    };
    state.metrics.record_request(route, status, start.elapsed());
    result
}

/// What serves a request path.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum RouteKind {
    /// `POST /2/httpapi`, `POST /batch`: the ingestion pipeline.
    Upload(Api),
    /// `/identify`, `/groupidentify`, `/attribution`: form parameters.
    Identify(Api),
    /// Anything else: 400 `Invalid request path`.
    Invalid,
}

impl RouteKind {
    fn of(method: &Method, path: &str) -> Self {
        match (method, Api::from_path(path)) {
            (&Method::POST, Some(api @ (Api::HttpV2 | Api::Batch))) => Self::Upload(api),
            (&Method::POST | &Method::GET, Some(Api::Identify)) => Self::Identify(Api::Identify),
            (&Method::POST, Some(api @ (Api::GroupIdentify | Api::Attribution))) => {
                Self::Identify(api)
            }
            _ => Self::Invalid,
        }
    }
}

/// Most body bytes read for `route`: 1 MB (20 MB for `/batch` and for a path the mock
/// does not serve, read only when a fault takes it), spec §3.4.
fn body_limit(state: &MockState, route: RouteKind) -> usize {
    match route {
        RouteKind::Upload(endpoint) => upload_limit(state, endpoint),
        RouteKind::Identify(_) => state.config.profile.megabytes(1),
        RouteKind::Invalid => upload_limit(state, Api::Batch),
    }
}

/// A request whose body may already have been read (to match a fault's scope).
#[allow(clippy::large_enum_variant)] // one per request, on the stack; boxing either variant only moves the gap
enum Input {
    Request(Request<Incoming>),
    Received(Received),
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
    let route = RouteKind::of(req.method(), path);
    if !state.faults.armed() {
        let h = process(state, ctx, remote, route, req).await;
        return finish(state, h);
    }
    let path = path.to_owned();
    let (input, ids) = if state.faults.scoped() {
        // A `device_id` / `user_id` scope needs the request's events before matching.
        let r = match receive(state, ctx.arrival(remote), req, body_limit(state, route)).await {
            Ok(r) => r,
            Err(h) => return finish(state, h),
        };
        let ids = match (&route, &r.body) {
            (RouteKind::Upload(_), Ok(body)) => RequestIds::of_upload(body),
            _ => RequestIds::default(),
        };
        (Input::Received(r), ids)
    } else {
        (Input::Request(req), RequestIds::default())
    };
    let plan = state.faults.pick(&FaultRequest {
        path: &path,
        now_ms: state.clock.now_ms(),
        ids: &ids,
    });
    match (plan, input) {
        (Some(plan), input) => fault(state, ctx, ctl, remote, route, input, plan).await,
        (None, Input::Request(req)) => {
            let h = process(state, ctx, remote, route, req).await;
            finish(state, h)
        }
        (None, Input::Received(r)) => {
            let h = process_received(state, route, r, ForcedThrottle::default());
            finish(state, h)
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
    route: RouteKind,
    req: Request<Incoming>,
) -> Handled {
    if route == RouteKind::Invalid {
        return invalid_path(state, remote, &req);
    }
    match receive(state, ctx.arrival(remote), req, body_limit(state, route)).await {
        Ok(r) => process_received(state, route, r, ForcedThrottle::default()),
        Err(handled) => handled,
    }
}

/// The pipeline of a request whose body is in; `forced`: a `throttle` fault's identities.
fn process_received(
    state: &MockState,
    route: RouteKind,
    r: Received,
    forced: ForcedThrottle<'_>,
) -> Handled {
    match route {
        RouteKind::Upload(endpoint) => ingest::upload(state, endpoint, r, forced),
        RouteKind::Identify(endpoint) => identify::answer(state, endpoint, r),
        RouteKind::Invalid => invalid_path_entry(r.entry),
    }
}

fn invalid_path(state: &MockState, remote: SocketAddr, req: &Request<Incoming>) -> Handled {
    let id = state.ledger.next_request_id();
    let mut entry = new_entry(
        state,
        id,
        req.method().clone(),
        crate::routes::exchange::journal_path(req.uri().path()),
        remote,
    );
    entry.headers = crate::ledger::RequestHeaders::new(req.headers().clone());
    invalid_path_entry(entry)
}

/// 400 `Invalid request path` for the request begun as `entry`.
fn invalid_path_entry(entry: JournalEntry) -> Handled {
    Handled::amplitude(
        entry,
        &ResponseBody::error(400, error_text::INVALID_PATH),
        RejectReason::InvalidPath.as_str(),
    )
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

/// A request an uncommitted fault takes, once its body is in: nothing is stored; its events
/// count as received and rejected with reason `fault` (spec §5.5: never committed).
fn uncommitted(state: &MockState, route: RouteKind, received: Received) -> Handled {
    let Received {
        mut entry,
        mut params,
        raw_len,
        body,
        ..
    } = received;
    entry.body_bytes = raw_len;
    let body = body.unwrap_or_default();
    let (api_key, events, events_json) = if matches!(route, RouteKind::Upload(_)) {
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
    entry.outcome = std::borrow::Cow::Borrowed(RejectReason::Fault.as_str());
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
    route: RouteKind,
    input: Input,
    plan: Plan,
) -> Result<Response<ResponseBodyType>, Cut> {
    let kind = plan.kind.as_str();
    let received = match input {
        Input::Received(r) => Ok(r),
        Input::Request(req) => {
            // An uncommitted fault reads up to the largest limit: it refuses, never 413s.
            let limit = if plan.run_pipeline {
                body_limit(state, route)
            } else {
                upload_limit(state, Api::Batch)
            };
            receive(state, ctx.arrival(remote), req, limit).await
        }
    };
    let profile = &state.config.profile;
    let mut canned = CannedContext {
        eps_threshold: u64::from(match route {
            RouteKind::Upload(Api::Batch) => state.config.limits.eps_threshold_batch,
            _ => state.config.limits.eps_threshold_http_v2,
        }),
        events: 0,
        payload_size_bytes: 0,
        now_ms: state.clock.now_ms(),
    };
    let mut h = match received {
        Err(h) => h,
        Ok(r) => {
            let size = if profile.payload_size_is_compressed {
                r.raw_len
            } else {
                r.body.as_ref().map_or(0, Bytes::len)
            };
            canned.payload_size_bytes = size as u64;
            if plan.run_pipeline {
                let (device_id, user_id) = match &plan.throttle {
                    Some((d, u)) => (d.as_deref(), u.as_deref()),
                    None => (None, None),
                };
                process_received(state, route, r, ForcedThrottle { device_id, user_id })
            } else {
                uncommitted(state, route, r)
            }
        }
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
        canned.events = entry.events as u64;
        h.status = s.status;
        h.body = s
            .body
            .unwrap_or_else(|| Bytes::from(amplitude_response(&canned_body(s.status, &canned)).1));
        h.content_type = s.content_type;
        entry.response = h.body.clone();
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
    // No (complete) response: journaled and counted as status 0 / "cut".
    let cut = matches!(
        plan.delivery,
        Delivery::Reset | Delivery::Close | Delivery::Hang(_) | Delivery::Truncate
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
