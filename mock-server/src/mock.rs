//! `MockServer`: the mock in a test, in the spirit of wiremock-rs. Starts on a random
//! loopback port, exposes the ledger and the clock, shuts down on drop.

use crate::clock::MockClock;
use crate::config::MockConfig;
use crate::ledger::{EventFilter, JournalEntry, Stats, StoredEvent};
use crate::profile::{FidelityProfile, Limits};
use crate::projects::{ProjectConfig, Region};
use crate::state::MockState;
use std::net::SocketAddr;
use std::sync::Arc;
use tokio::net::TcpListener;
use tokio::sync::oneshot;

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
    shutdown: Option<oneshot::Sender<()>>,
}

/// Builder for [`MockServer`]: projects, profile, limits, clock.
#[derive(Default)]
pub struct MockServerBuilder {
    config: MockConfig,
    clock: Option<MockClock>,
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

    /// Binds `127.0.0.1:0` and starts serving.
    pub async fn start(self) -> std::io::Result<MockServer> {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        self.start_on(listener).await
    }

    /// Starts serving on an already-bound listener.
    pub async fn start_on(self, listener: TcpListener) -> std::io::Result<MockServer> {
        let addr = listener.local_addr()?;
        let state = Arc::new(MockState::new(self.config, self.clock.unwrap_or_default()));
        let (tx, rx) = oneshot::channel::<()>();
        let serve_state = state.clone();
        tokio::spawn(async move {
            let stop = async {
                let _ = rx.await;
            };
            if let Err(e) = crate::server::serve(listener, serve_state, None, stop).await {
                tracing::error!(error = %e, "mock server stopped");
            }
        });
        Ok(MockServer {
            state,
            addr,
            shutdown: Some(tx),
        })
    }
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

    /// Forgets events, requests, counters and rule state (see `POST /__mock/reset`).
    pub fn reset(&self) {
        self.state.reset();
    }
}

impl Drop for MockServer {
    fn drop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
    }
}
