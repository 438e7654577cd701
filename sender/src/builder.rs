//! The user API's entry point: [`SenderBuilder`], from [`crate::Sender::builder`].

use crate::config::{Endpoint, Region, SenderConfig};
use crate::outcome::Outcome;
use crate::runtime::{Sender, SenderError};
use std::path::PathBuf;
use std::time::Duration;
use tokio::sync::mpsc;

/// The stream of per-event outcomes of a [`Sender`]: one [`Outcome`] per tracked event
/// (delivered, dropped, dead-lettered, or held at exit). Unbounded: read it, or drop it to
/// ignore the outcomes (sending is never blocked by an unread receiver).
pub type Outcomes = mpsc::UnboundedReceiver<Outcome>;

/// Builds a [`Sender`]: `Sender::builder(api_key).region(..).state_dir(..).build().await?`.
///
/// Defaults: [`Region::Us`], [`Endpoint::HttpV2`], HTTPS to the region's host, every knob
/// from [`crate::defaults`]. The state directory has no default: it is where accepted events
/// live until they are delivered, so the application picks a persistent one.
#[derive(Debug, Clone)]
pub struct SenderBuilder {
    api_key: String,
    region: Region,
    endpoint: Endpoint,
    url: Option<String>,
    state_dir: Option<PathBuf>,
    config: Option<SenderConfig>,
    batch_size: Option<usize>,
    flush_interval: Option<Duration>,
    request_timeout: Option<Duration>,
    max_attempts: Option<u32>,
    seed: Option<u64>,
    max_log_bytes: Option<u64>,
}

impl SenderBuilder {
    pub(crate) fn new(api_key: String) -> Self {
        Self {
            api_key,
            region: Region::default(),
            endpoint: Endpoint::HttpV2,
            url: None,
            state_dir: None,
            config: None,
            batch_size: None,
            flush_interval: None,
            request_timeout: None,
            max_attempts: None,
            seed: None,
            max_log_bytes: None,
        }
    }

    /// Data region of the project (default US): picks the host of the default URL.
    pub fn region(mut self, region: Region) -> Self {
        self.region = region;
        self
    }

    /// Endpoint to post to (default HTTP V2): decides the path, the body and event limits
    /// and the per-identity pacing threshold.
    pub fn endpoint(mut self, endpoint: Endpoint) -> Self {
        self.endpoint = endpoint;
        self
    }

    /// Full URL to post to instead of the region's (a proxy, a local amplitude-mock), e.g.
    /// `http://127.0.0.1:8080/2/httpapi`. The endpoint's limits still apply.
    pub fn url(mut self, url: impl Into<String>) -> Self {
        self.url = Some(url.into());
        self
    }

    /// Directory of the durable queue and the dead letters (required); created if missing.
    /// Reuse it across restarts: what was not confirmed is resent with the same `insert_id`.
    /// One sender at a time per directory.
    pub fn state_dir(mut self, dir: impl Into<PathBuf>) -> Self {
        self.state_dir = Some(dir.into());
        self
    }

    /// Most events per request, clamped to 1..=2,000 (default 1,000).
    pub fn batch_size(mut self, n: usize) -> Self {
        self.batch_size = Some(n);
        self
    }

    /// Longest wait of a tracked event before a request is formed (default 1 s).
    pub fn flush_interval(mut self, d: Duration) -> Self {
        self.flush_interval = Some(d);
        self
    }

    /// Whole-request timeout (default 10 s).
    pub fn request_timeout(mut self, d: Duration) -> Self {
        self.request_timeout = Some(d);
        self
    }

    /// Dead-letter an event after this many failed attempts (default: retry forever).
    pub fn max_attempts(mut self, n: u32) -> Self {
        self.max_attempts = Some(n);
        self
    }

    /// Seed of the backoff jitter (default 0).
    pub fn seed(mut self, seed: u64) -> Self {
        self.seed = Some(seed);
        self
    }

    /// Caps the durable queue's log at `bytes` (default: no cap): past it `track` fails as
    /// on a full disk, until delivered events' space is reclaimed. For testing the
    /// disk-full path (see [`SenderConfig::max_log_bytes`]).
    pub fn max_log_bytes(mut self, bytes: u64) -> Self {
        self.max_log_bytes = Some(bytes);
        self
    }

    /// The full configuration this builder would start with (every knob of
    /// [`crate::CoreConfig`] can then be changed and passed to [`SenderBuilder::config`]).
    /// Errors with [`SenderError::NoStateDir`] when no state directory was given.
    pub fn to_config(&self) -> Result<SenderConfig, SenderError> {
        if let Some(c) = &self.config {
            return Ok(c.clone());
        }
        let state_dir = self.state_dir.clone().ok_or(SenderError::NoStateDir)?;
        let url = self
            .url
            .clone()
            .unwrap_or_else(|| self.region.url(self.endpoint));
        let mut c = SenderConfig::new(self.api_key.clone(), self.endpoint, url, state_dir);
        if let Some(n) = self.batch_size {
            c.core.batch_size = n;
        }
        if let Some(d) = self.flush_interval {
            c.core.flush_interval_ms = millis(d);
        }
        if let Some(d) = self.request_timeout {
            c.request_timeout_ms = millis(d);
        }
        if let Some(n) = self.max_attempts {
            c.core.max_attempts = Some(n);
        }
        if let Some(s) = self.seed {
            c.core.seed = s;
        }
        if let Some(n) = self.max_log_bytes {
            c.max_log_bytes = Some(n);
        }
        Ok(c)
    }

    /// Starts from a complete configuration instead (every other setting is ignored).
    pub fn config(mut self, config: SenderConfig) -> Self {
        self.config = Some(config);
        self
    }

    /// Opens the state directory (resending what a previous run left there) and starts
    /// sending. Returns the sender and the stream of its outcomes.
    pub async fn build(self) -> Result<(Sender, Outcomes), SenderError> {
        Sender::start(self.to_config()?).await
    }
}

fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}
