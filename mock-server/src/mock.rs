//! `MockServer`: the mock in a test, in the spirit of wiremock-rs. Starts on a random
//! loopback port, exposes the ledger and the clock, shuts down on drop.

use crate::clock::MockClock;
use crate::config::MockConfig;
use crate::faults::{Fault, Faults};
use crate::ledger::{EventFilter, JournalEntry, Stats, StoredEvent};
use crate::profile::{FidelityProfile, Limits};
use crate::projects::{ProjectConfig, Region};
use crate::server::ServeOptions;
use crate::state::MockState;
use crate::tls::TlsIdentity;
use std::net::SocketAddr;
use std::sync::Arc;
use tokio::net::TcpListener;
use tokio::sync::watch;

/// A running mock of Amplitude's ingestion API.
///
/// ```
/// # async fn demo() -> std::io::Result<()> {
/// use amplitude_mock::MockServer;
/// let mock = MockServer::builder().api_key("KEY").start().await?;
/// let url = format!("{}/2/httpapi", mock.uri()); // point the sender here
/// assert!(url.starts_with("http://127.0.0.1:"));
/// assert_eq!(mock.stats().events_stored, 0);
/// # Ok(()) }
/// # tokio::runtime::Runtime::new().unwrap().block_on(demo()).unwrap();
/// ```
pub struct MockServer {
    state: Arc<MockState>,
    addr: SocketAddr,
    tls: Option<(SocketAddr, TlsIdentity)>,
    shutdown: watch::Sender<bool>,
}

/// Builder for [`MockServer`]: projects, profile, limits, clock, seed, faults, transport.
#[derive(Default)]
pub struct MockServerBuilder {
    config: MockConfig,
    clock: Option<MockClock>,
    options: ServeOptions,
    tls: bool,
}

impl MockServerBuilder {
    /// Adds a US project with this API key. With no key added, any key is accepted.
    pub fn api_key(mut self, key: impl Into<String>) -> Self {
        self.config.projects.push(ProjectConfig {
            api_key: key.into(),
            region: Region::Us,
            limits: None,
        });
        self
    }

    /// Adds an EU project with this API key (spec §1.1).
    pub fn eu_api_key(mut self, key: impl Into<String>) -> Self {
        self.config.projects.push(ProjectConfig {
            api_key: key.into(),
            region: Region::Eu,
            limits: None,
        });
        self
    }

    /// Adds a project as configured.
    pub fn project(mut self, project: ProjectConfig) -> Self {
        self.config.projects.push(project);
        self
    }

    /// Sets the fidelity profile (UNCERTAIN behaviours).
    pub fn profile(mut self, profile: FidelityProfile) -> Self {
        self.config.profile = profile;
        self
    }

    /// Sets the default limits (lower them to trigger 429s and drops with small numbers).
    pub fn limits(mut self, limits: Limits) -> Self {
        self.config.limits = limits;
        self
    }

    /// Sets the default limits' `max_events_per_request` (default 2,000): a request with
    /// more events is answered 413 `Payload too large` (spec §3.4). Call after
    /// [`Self::limits`], which replaces every limit.
    pub fn max_events_per_request(mut self, n: usize) -> Self {
        self.config.limits.max_events_per_request = n;
        self
    }

    /// Replaces the whole configuration (projects, profile, limits, ledger bounds).
    pub fn config(mut self, config: MockConfig) -> Self {
        self.config = config;
        self
    }

    /// Keeps each request's events in the journal (for behaviour checks).
    pub fn journal_bodies(mut self, on: bool) -> Self {
        self.config.ledger.journal_bodies = on;
        self
    }

    /// Freezes time at `start_ms` (ms since the epoch); it moves only through
    /// [`MockServer::clock`] or `POST /__mock/clock`.
    pub fn virtual_clock(mut self, start_ms: i64) -> Self {
        self.clock = Some(MockClock::virtual_at(start_ms));
        self
    }

    /// Seeds every random choice (probabilistic faults, delay distributions): the same seed
    /// and the same request sequence give the same fault pattern.
    pub fn seed(mut self, seed: u64) -> Self {
        self.config.seed = seed;
        self
    }

    /// Schedules a fault at start, after those already added (see [`Fault`] and
    /// `docs/faults.md`). An invalid configuration ([`MockConfig::validate`]) makes
    /// [`Self::start`] fail with `InvalidInput`, naming every problem.
    pub fn fault(mut self, fault: Fault) -> Self {
        self.config.faults.push(fault);
        self
    }

    /// Token the `/__mock/` routes and `/metrics` require from non-loopback clients (header
    /// `x-mock-admin-token`).
    pub fn admin_token(mut self, token: impl Into<String>) -> Self {
        self.config.admin_token = Some(token.into());
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
        self.tls = on;
        self
    }

    /// Binds `127.0.0.1:0` and starts serving.
    pub async fn start(self) -> std::io::Result<MockServer> {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        self.start_on(listener).await
    }

    /// Starts serving on an already-bound listener.
    pub async fn start_on(self, listener: TcpListener) -> std::io::Result<MockServer> {
        let addr = listener.local_addr()?;
        let state = MockState::try_new(self.config, self.clock.unwrap_or_default())
            .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidInput, e))?;
        let state = Arc::new(state);
        let (tx, rx) = watch::channel(false);
        let tls = if self.tls {
            let identity = TlsIdentity::self_signed(&[])
                .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidInput, e))?;
            let tls_listener = TcpListener::bind("127.0.0.1:0").await?;
            let tls_addr = tls_listener.local_addr()?;
            let options = ServeOptions {
                tls: Some(identity.clone()),
                ..self.options.clone()
            };
            spawn_serve(tls_listener, state.clone(), options, rx.clone())?;
            Some((tls_addr, identity))
        } else {
            None
        };
        spawn_serve(listener, state.clone(), self.options, rx)?;
        Ok(MockServer {
            state,
            addr,
            tls,
            shutdown: tx,
        })
    }
}

/// Registers `listener` now (a `refuse` window open at start closes it before this returns)
/// and serves it on a task.
fn spawn_serve(
    listener: TcpListener,
    state: Arc<MockState>,
    options: ServeOptions,
    mut stop: watch::Receiver<bool>,
) -> std::io::Result<()> {
    let slot = crate::server::register(listener, &state)?;
    tokio::spawn(async move {
        let stop = async move {
            let _ = stop.wait_for(|s| *s).await;
        };
        if let Err(e) = crate::server::serve_slot(slot, state, options, stop).await {
            tracing::error!(error = %e, "mock server stopped");
        }
    });
    Ok(())
}

impl MockServer {
    /// A builder; see [`MockServerBuilder`].
    pub fn builder() -> MockServerBuilder {
        MockServerBuilder::default()
    }

    /// Starts a zero-config mock (any API key accepted) on a random loopback port.
    pub async fn start() -> std::io::Result<Self> {
        Self::builder().start().await
    }

    /// Base URL, e.g. `http://127.0.0.1:40123` (append `/2/httpapi` or `/batch`).
    pub fn uri(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// The bound address.
    pub fn address(&self) -> SocketAddr {
        self.addr
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
        crate::metrics::render(&self.state)
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

    /// The request journal, oldest first.
    pub fn requests(&self) -> Vec<JournalEntry> {
        self.state.ledger.requests(None)
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
}

impl Drop for MockServer {
    fn drop(&mut self) {
        let _ = self.shutdown.send(true);
    }
}
