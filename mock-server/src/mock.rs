//! `MockServer`: the mock in a test, in the spirit of wiremock-rs, and in the binary. Binds
//! its listeners (a random loopback port by default; an EU listener and an HTTPS listener on
//! request), exposes the ledger and the clock, shuts down on drop or [`MockServer::shutdown`].

use crate::clock::MockClock;
use crate::config::MockConfig;
use crate::expect::{Expectations, Seen, Times};
use crate::faults::{Fault, Faults};
use crate::ledger::LedgerConfig;
use crate::ledger::{
    DedupRecord, EventFilter, JournalEntry, PropertyDropRecord, Stats, StoredEvent,
};
use crate::profile::{FidelityProfile, Limits};
use crate::projects::{ProjectConfig, Region};
use crate::received::ReceivedRequest;
use crate::server::ServeOptions;
use crate::state::MockState;
use crate::tls::TlsIdentity;
use std::net::SocketAddr;
use std::sync::Arc;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinHandle;

/// Resolves on Ctrl-C, or on SIGTERM on Unix: what a binary serving the mock awaits before
/// shutting it down.
pub async fn shutdown_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = tokio::signal::ctrl_c() => {}
                    _ = term.recv() => {}
                }
            }
            Err(_) => {
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}

/// A running mock of Amplitude's ingestion API.
///
/// ```
/// # async fn demo() -> std::io::Result<()> {
/// use amplitude_mock::MockServer;
/// let mock = MockServer::builder().api_key("KEY").start().await;
/// let url = format!("{}/2/httpapi", mock.uri()); // point the sender here
/// assert!(url.starts_with("http://127.0.0.1:"));
/// assert_eq!(mock.stats().events_stored, 0);
/// # Ok(()) }
/// # tokio::runtime::Runtime::new().unwrap().block_on(demo()).unwrap();
/// ```
pub struct MockServer {
    state: Arc<MockState>,
    addr: SocketAddr,
    eu_addr: Option<SocketAddr>,
    tls: Option<(SocketAddr, TlsIdentity)>,
    shutdown: watch::Sender<bool>,
    /// The mock's own thread (it runs the mock's tokio runtime); joined on drop.
    thread: Option<std::thread::JoinHandle<()>>,
    /// What the thread's listeners ended with.
    done: Option<tokio::sync::oneshot::Receiver<std::io::Result<()>>>,
    /// Checked by [`MockServer::verify`] and on drop.
    expectations: Expectations,
    /// Built with [`MockServerBuilder::profile_for_benchmarks`]: warn on drop if the run
    /// throttled, deduplicated or rejected events.
    benchmark: bool,
}

/// Builder for [`MockServer`]: projects, profile, limits, clock, seed, faults, transport.
#[derive(Default)]
pub struct MockServerBuilder {
    settings: crate::settings::Settings,
    clock: Option<MockClock>,
    options: ServeOptions,
    bind: Option<SocketAddr>,
    eu_bind: Option<SocketAddr>,
    /// `Some`: serve HTTPS there (`None` inside: a random loopback port).
    tls: Option<Option<SocketAddr>>,
    tls_names: Vec<String>,
    worker_threads: Option<usize>,
}

/// An I/O error of kind `InvalidInput` carrying `e`.
fn invalid_input(e: impl Into<Box<dyn std::error::Error + Send + Sync>>) -> std::io::Error {
    std::io::Error::new(std::io::ErrorKind::InvalidInput, e)
}

/// Binds `addr`, naming it in the error.
async fn bind(addr: SocketAddr) -> std::io::Result<TcpListener> {
    TcpListener::bind(addr)
        .await
        .map_err(|e| std::io::Error::new(e.kind(), format!("binding {addr}: {e}")))
}

/// The loopback address on a port the system picks.
const LOOPBACK_ANY_PORT: SocketAddr =
    SocketAddr::new(std::net::IpAddr::V4(std::net::Ipv4Addr::LOCALHOST), 0);

impl MockServerBuilder {
    /// Adds a US project with this API key. With no key added (here or in
    /// [`Self::config`]), any key is accepted.
    pub fn api_key(mut self, key: impl Into<String>) -> Self {
        self.settings.projects.push(ProjectConfig {
            api_key: key.into(),
            region: Region::Us,
            limits: None,
        });
        self
    }

    /// Adds an EU project with this API key (spec §1.1).
    pub fn eu_api_key(mut self, key: impl Into<String>) -> Self {
        self.settings.projects.push(ProjectConfig {
            api_key: key.into(),
            region: Region::Eu,
            limits: None,
        });
        self
    }

    /// Adds a project as configured.
    pub fn project(mut self, project: ProjectConfig) -> Self {
        self.settings.projects.push(project);
        self
    }

    /// Sets the fidelity profile (UNCERTAIN behaviours); overrides [`Self::config`]'s.
    pub fn profile(mut self, profile: FidelityProfile) -> Self {
        self.settings.profile = Some(profile);
        self
    }

    /// Sets the default limits (lower them to trigger 429s and drops with small numbers);
    /// overrides [`Self::config`]'s.
    pub fn limits(mut self, limits: Limits) -> Self {
        self.settings.limits = Some(limits);
        self
    }

    /// Sets the default limits' `max_events_per_request` (default 2,000): a request with
    /// more events is answered 413 `Payload too large` (spec §3.4). Applies over
    /// [`Self::limits`] and [`Self::config`], whatever the call order.
    pub fn max_events_per_request(mut self, n: usize) -> Self {
        self.settings.max_events_per_request = Some(n);
        self
    }

    /// A whole configuration (a `mock.toml` through [`MockConfig::from_path`], or built in
    /// code) as the base the other settings compose with, whatever the call order (ADR
    /// 008):
    ///
    /// - each setter ([`Self::profile`], [`Self::limits`], [`Self::ledger`],
    ///   [`Self::seed`], [`Self::admin_token`], [`Self::max_events_per_request`],
    ///   [`Self::journal_bodies`]) overrides that setting of the configuration;
    /// - projects and faults add up: the configuration's first, then the setters' in call
    ///   order; a project given both ways, identical, is kept once; the same key with other
    ///   settings is refused at start (`InvalidInput`, `projects[i].api_key`);
    /// - [`Self::profile_for_benchmarks`] applies last, over everything;
    /// - `.config(..)` given twice is refused at start (`InvalidInput`, naming `config`).
    pub fn config(mut self, config: MockConfig) -> Self {
        self.settings.configs.push(config);
        self
    }

    /// Memory bounds of the ledger: stored events, journal entries and bytes (default:
    /// [`LedgerConfig::default`]). Overrides [`Self::config`]'s and the benchmark profile's
    /// cap; [`Self::journal_bodies`] applies over it.
    pub fn ledger(mut self, ledger: LedgerConfig) -> Self {
        self.settings.ledger = Some(ledger);
        self
    }

    /// Keeps each request's events in the journal's `/__mock/requests` JSON (for behaviour
    /// checks); [`MockServer::received_requests`] has the bodies regardless.
    pub fn journal_bodies(mut self, on: bool) -> Self {
        self.settings.journal_bodies = Some(on);
        self
    }

    /// The profile for benchmarking a sender (ADR 008), applied after every other setting,
    /// whatever the call order:
    ///
    /// - limits lifted ([`Limits::unthrottled`]): no 429 for EPS or daily quota, no dropped
    ///   property update, on the default limits and on every project's own; the dedup window
    ///   and `max_events_per_request` (2,000) stay, as a sender must still respect them;
    /// - the ledger capped ([`LedgerConfig::capped_for_benchmarks`]: 100,000 stored events,
    ///   1,000 journal entries, 16 MiB of journalled bodies) unless [`Self::ledger`] is
    ///   given; counters stay exact.
    ///
    /// Deduplication stays on: benchmark with fresh `insert_id`s, and assert
    /// `mock.stats().events_deduplicated == 0` (the guide in the crate docs shows how).
    pub fn profile_for_benchmarks(mut self) -> Self {
        self.settings.benchmark = true;
        self
    }

    /// Same as [`Self::profile_for_benchmarks`].
    pub fn unthrottled(self) -> Self {
        self.profile_for_benchmarks()
    }

    /// Freezes time at `start_ms` (ms since the epoch); it moves only through
    /// [`MockServer::clock`] or `POST /__mock/clock`.
    pub fn virtual_clock(mut self, start_ms: i64) -> Self {
        self.clock = Some(MockClock::virtual_at(start_ms));
        self
    }

    /// Seeds every random choice (probabilistic faults, delay distributions): the same seed
    /// and the same request sequence give the same fault pattern. Overrides
    /// [`Self::config`]'s.
    pub fn seed(mut self, seed: u64) -> Self {
        self.settings.seed = Some(seed);
        self
    }

    /// Schedules a fault at start, after [`Self::config`]'s and those already added (see
    /// [`Fault`] and `docs/faults.md`). An invalid configuration ([`MockConfig::validate`])
    /// makes [`Self::try_start`] fail with `InvalidInput`, naming every problem.
    pub fn fault(mut self, fault: Fault) -> Self {
        self.settings.faults.push(fault);
        self
    }

    /// The configuration the settings given so far make (ADR 008), before validation; an
    /// error names a conflict (`.config` given twice).
    pub fn resolved_config(&self) -> Result<MockConfig, crate::config::ConfigIssue> {
        self.settings.resolve()
    }

    /// Token the `/__mock/` routes and `/metrics` require from non-loopback clients (header
    /// `x-mock-admin-token`).
    pub fn admin_token(mut self, token: impl Into<String>) -> Self {
        self.settings.admin_token = Some(token.into());
        self
    }

    /// Most time a request head, a request body or a TLS handshake may take, ms (default
    /// 30,000).
    pub fn read_timeout_ms(mut self, ms: u64) -> Self {
        self.options.read_timeout_ms = ms;
        self
    }

    /// Most connections served at once per listener (default 10,000).
    pub fn max_connections(mut self, n: usize) -> Self {
        self.options.max_connections = n;
        self
    }

    /// Also serves HTTPS on another loopback port with a fresh self-signed certificate
    /// (spec §2 "TLS"); see [`MockServer::tls_uri`] and [`MockServer::tls_identity`].
    pub fn tls(mut self, on: bool) -> Self {
        self.tls = on.then_some(None);
        self
    }

    /// Serves HTTPS on `addr` with a fresh self-signed certificate (spec §2 "TLS").
    pub fn tls_bind(mut self, addr: SocketAddr) -> Self {
        self.tls = Some(Some(addr));
        self
    }

    /// DNS names or IP addresses the HTTPS certificate covers (default: localhost,
    /// 127.0.0.1, ::1).
    pub fn tls_names(mut self, names: Vec<String>) -> Self {
        self.tls_names = names;
        self
    }

    /// Reads time from `clock` (default: the system clock).
    pub fn clock(mut self, clock: MockClock) -> Self {
        self.clock = Some(clock);
        self
    }

    /// Listens on `addr` (default `127.0.0.1:0`, a free loopback port).
    pub fn bind(mut self, addr: SocketAddr) -> Self {
        self.bind = Some(addr);
        self
    }

    /// Also listens on `addr` for EU-region requests: every request there counts as EU,
    /// whatever its `Host` (spec §1.1); see [`MockServer::eu_address`].
    pub fn eu_bind(mut self, addr: SocketAddr) -> Self {
        self.eu_bind = Some(addr);
        self
    }

    /// Threads of the mock's own tokio runtime (default: the machine's cores, at most 4).
    /// The mock always serves from a thread and runtime of its own (as wiremock-rs does), so
    /// a blocking client works from any test, with or without a runtime.
    pub fn worker_threads(mut self, n: usize) -> Self {
        self.worker_threads = Some(n.max(1));
        self
    }

    /// Binds the listeners (see [`Self::bind`]) and starts serving on a thread and tokio
    /// runtime of the mock's own; returns the running [`MockServer`].
    ///
    /// # Panics
    ///
    /// When the mock cannot start (as wiremock-rs's `start` does): an address that cannot
    /// be bound, or an invalid configuration; the message names the cause. Use
    /// [`Self::try_start`] to handle these as an error.
    #[allow(clippy::panic)] // the documented contract, as in wiremock-rs
    pub async fn start(self) -> MockServer {
        match self.try_start().await {
            Ok(mock) => mock,
            Err(e) => panic!("amplitude-mock: the mock server could not start: {e}"),
        }
    }

    /// Binds the listeners (see [`Self::bind`]) and starts serving. An invalid
    /// configuration fails with `InvalidInput`, naming every problem; an address that cannot
    /// be bound fails with the bind error, naming the address.
    pub async fn try_start(self) -> std::io::Result<MockServer> {
        self.try_start_with(None).await
    }

    /// [`Self::start`] for a test without a runtime (a plain `#[test]`): blocks until the
    /// mock is listening. Do not call it from async code (use [`Self::start`]).
    ///
    /// # Panics
    ///
    /// As [`Self::start`].
    #[allow(clippy::panic)] // the documented contract, as in wiremock-rs
    pub fn start_blocking(self) -> MockServer {
        match self.try_start_blocking() {
            Ok(mock) => mock,
            Err(e) => panic!("amplitude-mock: the mock server could not start: {e}"),
        }
    }

    /// [`Self::start_blocking`], returning the error instead of panicking.
    pub fn try_start_blocking(self) -> std::io::Result<MockServer> {
        let (tx, rx) = std::sync::mpsc::channel();
        let parts = self.spawn_thread(
            None,
            Box::new(move |r| {
                let _ = tx.send(r);
            }),
        )?;
        let started = rx.recv().map_err(|_| thread_gone())??;
        Ok(parts.running(started))
    }

    /// Starts serving on an already-bound listener (the EU and HTTPS listeners, when asked,
    /// are bound here), on the mock's own thread and runtime.
    pub async fn start_on(self, listener: TcpListener) -> std::io::Result<MockServer> {
        self.try_start_with(Some(listener.into_std()?)).await
    }

    async fn try_start_with(
        self,
        listener: Option<std::net::TcpListener>,
    ) -> std::io::Result<MockServer> {
        let (tx, rx) = tokio::sync::oneshot::channel();
        let parts = self.spawn_thread(
            listener,
            Box::new(move |r| {
                let _ = tx.send(r);
            }),
        )?;
        let started = rx.await.map_err(|_| thread_gone())??;
        Ok(parts.running(started))
    }

    /// Spawns the mock's thread: it builds the runtime, binds, reports through `ready`, then
    /// serves until the shutdown signal.
    fn spawn_thread(
        self,
        listener: Option<std::net::TcpListener>,
        ready: Ready,
    ) -> std::io::Result<Spawned> {
        let (stop_tx, stop_rx) = watch::channel(false);
        let (done_tx, done_rx) = tokio::sync::oneshot::channel();
        let threads = self
            .worker_threads
            .unwrap_or_else(|| std::thread::available_parallelism().map_or(2, |n| n.get().min(4)));
        // The caller's tracing subscriber, also a thread-local one (`set_default`, as log
        // capturing test helpers use), goes with the mock onto its threads.
        let dispatch = tracing::dispatcher::get_default(|d| d.clone());
        let thread = std::thread::Builder::new()
            .name("amplitude-mock".to_owned())
            .spawn(move || {
                let _logs = tracing::dispatcher::set_default(&dispatch);
                let rt = tokio::runtime::Builder::new_multi_thread()
                    .worker_threads(threads)
                    .thread_name("amplitude-mock-worker")
                    .on_thread_start(move || {
                        // Kept for the worker thread's whole life.
                        std::mem::forget(tracing::dispatcher::set_default(&dispatch));
                    })
                    .enable_all()
                    .build();
                let rt = match rt {
                    Ok(rt) => rt,
                    Err(e) => return ready(Err(e)),
                };
                let served = rt.block_on(async move {
                    let listener = match listener {
                        Some(l) => TcpListener::from_std(l),
                        None => bind(self.bind.unwrap_or(LOOPBACK_ANY_PORT)).await,
                    };
                    match listener {
                        Ok(l) => match self.serve_on(l, stop_rx).await {
                            Ok((started, tasks)) => {
                                ready(Ok(started));
                                let mut out = Ok(());
                                for task in tasks {
                                    let r = task.await.map_err(std::io::Error::other);
                                    if let (Ok(()), Err(e) | Ok(Err(e))) = (&out, r) {
                                        out = Err(e);
                                    }
                                }
                                out
                            }
                            Err(e) => {
                                ready(Err(e));
                                Ok(())
                            }
                        },
                        Err(e) => {
                            ready(Err(e));
                            Ok(())
                        }
                    }
                });
                rt.shutdown_timeout(std::time::Duration::from_secs(1));
                let _ = done_tx.send(served);
            })?;
        Ok(Spawned {
            stop: stop_tx,
            thread,
            done: done_rx,
        })
    }

    /// Builds the state and serves it on `listener` (and the EU and HTTPS listeners, when
    /// asked) on the current runtime until `stop` turns true.
    async fn serve_on(
        self,
        listener: TcpListener,
        rx: watch::Receiver<bool>,
    ) -> std::io::Result<(Started, Vec<JoinHandle<std::io::Result<()>>>)> {
        let addr = listener.local_addr()?;
        let config = self.settings.resolve().map_err(invalid_input)?;
        let state =
            MockState::try_new(config, self.clock.unwrap_or_default()).map_err(invalid_input)?;
        let state = Arc::new(state);
        let mut tasks = Vec::new();
        let eu_addr = match self.eu_bind {
            Some(eu) => {
                let eu_listener = bind(eu).await?;
                let eu_addr = eu_listener.local_addr()?;
                tracing::info!(addr = %eu_addr, "EU listener");
                let options = ServeOptions {
                    region: Some(Region::Eu),
                    ..self.options.clone()
                };
                tasks.push(spawn_serve(
                    eu_listener,
                    state.clone(),
                    options,
                    rx.clone(),
                )?);
                Some(eu_addr)
            }
            None => None,
        };
        let tls = match self.tls {
            Some(tls_bind) => {
                let identity = TlsIdentity::self_signed(&self.tls_names).map_err(invalid_input)?;
                let tls_listener = bind(tls_bind.unwrap_or(LOOPBACK_ANY_PORT)).await?;
                let tls_addr = tls_listener.local_addr()?;
                tracing::info!(addr = %tls_addr, "HTTPS listener");
                let options = ServeOptions {
                    tls: Some(identity.clone()),
                    ..self.options.clone()
                };
                tasks.push(spawn_serve(
                    tls_listener,
                    state.clone(),
                    options,
                    rx.clone(),
                )?);
                Some((tls_addr, identity))
            }
            None => None,
        };
        tasks.push(spawn_serve(listener, state.clone(), self.options, rx)?);
        Ok((
            Started {
                benchmark: self.settings.benchmark,
                state,
                addr,
                eu_addr,
                tls,
            },
            tasks,
        ))
    }
}

/// Reports the outcome of binding from the mock's thread to the caller.
type Ready = Box<dyn FnOnce(std::io::Result<Started>) + Send>;

/// What the mock's thread reports once it listens.
struct Started {
    benchmark: bool,
    state: Arc<MockState>,
    addr: SocketAddr,
    eu_addr: Option<SocketAddr>,
    tls: Option<(SocketAddr, TlsIdentity)>,
}

/// The handles of a spawned mock thread.
struct Spawned {
    stop: watch::Sender<bool>,
    thread: std::thread::JoinHandle<()>,
    done: tokio::sync::oneshot::Receiver<std::io::Result<()>>,
}

impl Spawned {
    fn running(self, s: Started) -> MockServer {
        MockServer {
            state: s.state,
            addr: s.addr,
            eu_addr: s.eu_addr,
            tls: s.tls,
            shutdown: self.stop,
            thread: Some(self.thread),
            done: Some(self.done),
            expectations: Expectations::default(),
            benchmark: s.benchmark,
        }
    }
}

/// The mock's thread ended before reporting (it panicked).
fn thread_gone() -> std::io::Error {
    std::io::Error::other("the mock server's thread ended before it was listening")
}

/// Registers `listener` now (a `refuse` window open at start closes it before this returns)
/// and serves it on a task.
fn spawn_serve(
    listener: TcpListener,
    state: Arc<MockState>,
    options: ServeOptions,
    mut stop: watch::Receiver<bool>,
) -> std::io::Result<JoinHandle<std::io::Result<()>>> {
    let slot = crate::server::register(listener, &state)?;
    Ok(tokio::spawn(async move {
        let stop = async move {
            let _ = stop.wait_for(|s| *s).await;
        };
        let served = crate::server::serve_slot(slot, state, options, stop).await;
        if let Err(e) = &served {
            tracing::error!(error = %e, "mock server stopped");
        }
        served
    }))
}

impl MockServer {
    /// A builder; see [`MockServerBuilder`].
    pub fn builder() -> MockServerBuilder {
        MockServerBuilder::default()
    }

    /// Starts a zero-config mock (any API key accepted) on a random loopback port.
    ///
    /// # Panics
    ///
    /// When no loopback port can be bound (as wiremock-rs's `MockServer::start` does); see
    /// [`Self::try_start`].
    pub async fn start() -> Self {
        Self::builder().start().await
    }

    /// [`Self::start`], returning the error instead of panicking.
    pub async fn try_start() -> std::io::Result<Self> {
        Self::builder().try_start().await
    }

    /// Base URL, e.g. `http://127.0.0.1:40123` (append `/2/httpapi` or `/batch`).
    pub fn uri(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// The bound address.
    pub fn address(&self) -> SocketAddr {
        self.addr
    }

    /// The EU listener's address, when built with [`MockServerBuilder::eu_bind`].
    pub fn eu_address(&self) -> Option<SocketAddr> {
        self.eu_addr
    }

    /// HTTPS base URL, e.g. `https://localhost:40124`, when built with
    /// [`MockServerBuilder::tls`].
    pub fn tls_uri(&self) -> Option<String> {
        self.tls
            .as_ref()
            .map(|(a, _)| format!("https://localhost:{}", a.port()))
    }

    /// The HTTPS listener's address and certificate, when built with
    /// [`MockServerBuilder::tls`].
    pub fn tls_identity(&self) -> Option<(SocketAddr, &TlsIdentity)> {
        self.tls.as_ref().map(|(a, id)| (*a, id))
    }

    /// The fault schedule: `push`, `push_all`, `clear`, `list` (same as `/__mock/faults`).
    pub fn faults(&self) -> &Faults {
        &self.state.faults
    }

    /// `GET /metrics` as text (Prometheus format 0.0.4).
    pub fn metrics_text(&self) -> String {
        crate::routes::metrics::render(&self.state)
    }

    /// Counters (see `GET /__mock/stats`).
    pub fn stats(&self) -> Stats {
        self.state.ledger.stats()
    }

    /// Every stored event, in storage order.
    pub fn events(&self) -> Vec<StoredEvent> {
        self.state.ledger.events(&EventFilter::default())
    }

    /// Stored events matching `filter`.
    pub fn events_matching(&self, filter: &EventFilter) -> Vec<StoredEvent> {
        self.state.ledger.events(filter)
    }

    /// Events answered 200 but not stored because their `insert_id` was seen before (spec
    /// §9), oldest first, each with the `seq` of the event it duplicated (same as
    /// `GET /__mock/duplicates`).
    pub fn duplicates(&self) -> Vec<DedupRecord> {
        self.state.ledger.duplicates()
    }

    /// User-property updates silently dropped (over 1,800 an hour per Amplitude ID, spec
    /// §8.1), oldest first (same as `GET /__mock/property_drops`).
    pub fn property_drops(&self) -> Vec<PropertyDropRecord> {
        self.state.ledger.property_drops()
    }

    /// The request journal, oldest first.
    pub fn requests(&self) -> Vec<JournalEntry> {
        self.state.ledger.requests(None)
    }

    /// Every request received on an Amplitude route, oldest first: method, path, headers
    /// (key headers redacted), raw and decoded body, status and response (see
    /// [`ReceivedRequest`] for the bounds).
    pub fn received_requests(&self) -> Vec<ReceivedRequest> {
        self.state
            .ledger
            .requests(None)
            .into_iter()
            .map(ReceivedRequest::from)
            .collect()
    }

    /// Expects `times` upload requests (`POST /2/httpapi` or `/batch`) in all: `3`, `1..=3`,
    /// `2..`. Checked by [`Self::verify`] and on drop.
    pub fn expect_uploads(&self, times: impl Into<Times>) {
        self.expectations.uploads(times.into());
    }

    /// Expects every upload request to be gzipped (`Content-Encoding: gzip`, spec §2).
    /// Checked by [`Self::verify`] and on drop.
    pub fn expect_every_request_gzip(&self) {
        self.expectations.every_upload_gzip();
    }

    /// Expects no request handled after `at_ms` (ms since the epoch, mock clock): e.g. a
    /// sender that must stop after `shutdown()`. Checked by [`Self::verify`] and on drop.
    pub fn expect_no_request_after(&self, at_ms: i64) {
        self.expectations.no_request_after(at_ms);
    }

    /// Expects that after any 429 naming `device_id` in `throttled_devices` (spec §5.4), no
    /// upload carries an event of that device until the EPS window (`Limits::eps_window_ms`,
    /// 30 s by default, spec §8) has passed on the mock clock. Checked by [`Self::verify`]
    /// and on drop.
    pub fn expect_device_never_sent_inside_throttle_window(&self, device_id: impl Into<String>) {
        self.expectations
            .device_waits_out_throttling(device_id.into());
    }

    /// Every unmet expectation, one message listing each with what was seen instead
    /// (`Ok` when all are met).
    pub fn check_expectations(&self) -> Result<(), String> {
        let requests = self.received_requests();
        let seen = Seen {
            requests: &requests,
            evicted: self.state.ledger.requests_evicted(),
            throttle_window_ms: self.state.config.limits.eps_window_ms,
        };
        self.expectations.unmet(&seen).map_or(Ok(()), Err)
    }

    /// Under the benchmark profile, a `WARN` naming what the run measured besides delivery:
    /// events throttled, deduplicated (a repeated `insert_id`) or rejected since the last
    /// reset.
    fn warn_if_benchmark_was_not_clean(&self) {
        let s = self.stats();
        if s.events_throttled > 0 || s.events_deduplicated > 0 || s.events_rejected.total > 0 {
            tracing::warn!(
                throttled = s.events_throttled,
                deduplicated = s.events_deduplicated,
                rejected = s.events_rejected.total,
                stored = s.events_stored,
                "amplitude-mock: this benchmark run was not pure delivery: events were throttled, deduplicated (repeated insert_ids) or rejected; see the crate docs, \"Benchmark your sender\""
            );
        }
    }

    /// Forgets every expectation registered so far (nothing is checked on drop).
    pub fn clear_expectations(&self) {
        self.expectations.clear();
    }

    /// Checks the expectations now (they are also checked on drop).
    ///
    /// # Panics
    ///
    /// When one is unmet, with every unmet expectation and what was seen instead.
    #[allow(clippy::panic)] // the documented contract, as wiremock-rs's verify
    pub fn verify(&self) {
        if let Err(msg) = self.check_expectations() {
            panic!("{msg}");
        }
    }

    /// The clock every time rule reads; advance it to jump windows.
    pub fn clock(&self) -> &MockClock {
        &self.state.clock
    }

    /// The shared state (ledger, config), for inspection beyond the shortcuts above.
    pub fn state(&self) -> &Arc<MockState> {
        &self.state
    }

    /// Waits until the mock's listeners are all closed by a `refuse` fault (`true`) or all
    /// open (`false`); see [`MockState::wait_refusing`].
    pub async fn wait_refusing(&self, refusing: bool) {
        self.state.wait_refusing(refusing).await;
    }

    /// Forgets events, requests, counters and rule state (see `POST /__mock/reset`).
    pub fn reset(&self) {
        self.state.reset();
    }

    /// Stops accepting, ends held responses and waits for open requests to finish (at most
    /// 5 s per listener), then for the mock's thread to end.
    pub async fn shutdown(mut self) -> std::io::Result<()> {
        let _ = self.shutdown.send(true);
        let served = match self.done.take() {
            Some(done) => done.await.map_err(|_| thread_gone())?,
            None => Ok(()),
        };
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
        served
    }
}

impl Drop for MockServer {
    /// Stops the mock and joins its thread: once `drop` returns, the ports are closed. Open
    /// requests get at most 5 s to finish; held (`delay`, `hang`) responses end at once.
    ///
    /// # Panics
    ///
    /// When an expectation ([`MockServer::expect_uploads`], ...) is unmet, unless the thread
    /// is already panicking (a failed assertion earlier in the test).
    #[allow(clippy::panic)] // the documented contract, as wiremock-rs's drop
    fn drop(&mut self) {
        let _ = self.shutdown.send(true);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
        if self.benchmark {
            self.warn_if_benchmark_was_not_clean();
        }
        if !std::thread::panicking() {
            if let Err(msg) = self.check_expectations() {
                panic!("{msg}");
            }
        }
    }
}
