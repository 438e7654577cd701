//! The mock's shared state: configuration, projects, clock, ledger and the stateful rules
//! (limiter, dedup store, property store, faults, metrics). One instance per running mock,
//! behind an `Arc`. Holds the rules and imports nothing above them: the route families
//! (`routes/`) and the shared steps (`steps.rs`) act on it.

use crate::clock::MockClock;
use crate::config::{ConfigErrors, ConfigIssue, MockConfig};
use crate::dedup::DedupStore;
use crate::faults::Faults;
use crate::ledger::Ledger;
use crate::limits::Limiter;
use crate::metrics::Metrics;
use crate::projects::Projects;
use crate::properties::PropertyStore;
use parking_lot::RwLock;
use std::collections::HashSet;

/// Everything a running mock holds. Build with [`MockState::try_new`]; the route families
/// read and update it. From outside the mock it is read through accessors ([`Self::ledger`],
/// [`Self::clock`], [`Self::faults`], [`Self::config`]): only the pipeline writes the ledger.
pub struct MockState {
    pub(crate) config: MockConfig,
    pub(crate) projects: Projects,
    /// The ledger of events, requests and counters.
    pub(crate) ledger: Ledger,
    /// The clock every time rule reads.
    pub(crate) clock: MockClock,
    pub(crate) limiter: Limiter,
    pub(crate) dedup: DedupStore,
    pub(crate) properties: PropertyStore,
    pub(crate) silenced: RwLock<HashSet<String>>,
    /// The fault schedule (`/__mock/faults`), seeded with the config's `seed`.
    pub(crate) faults: Faults,
    /// Request counters and latency histogram of `GET /metrics`.
    pub(crate) metrics: Metrics,
    config_errors: Vec<ConfigIssue>,
    /// Open and closed (`refuse` fault) listeners serving this state.
    pub(crate) listeners: crate::refuse::ListenerGate,
}

impl MockState {
    /// A fresh mock state for `config`, reading time from `clock`. Prefer
    /// [`MockState::try_new`], which refuses an invalid configuration; this one cannot fail:
    /// the config's valid faults are scheduled in order, and every problem
    /// ([`MockConfig::validate`]) is logged at error level, kept in
    /// [`MockState::config_errors`] and listed by `GET /__mock/faults` as `config_errors`
    /// (an invalid fault is not scheduled).
    pub fn new(config: MockConfig, clock: MockClock) -> Self {
        let problems = config.validate().err().map(|e| e.0).unwrap_or_default();
        for p in &problems {
            tracing::error!(problem = %p, "invalid mock configuration (use MockState::try_new to refuse it)");
        }
        let faults: Vec<_> = config
            .faults
            .iter()
            .filter(|f| f.validate().is_ok())
            .cloned()
            .collect();
        let mut state = Self::empty(config, clock);
        if let Err(e) = state.faults.push_all(faults) {
            tracing::error!(error = %e, "config faults not scheduled");
        }
        state.config_errors = problems;
        state
    }

    /// A fresh mock state for `config`, reading time from `clock`, after
    /// [`MockConfig::validate`]: any problem refuses the whole configuration (all problems
    /// returned, with their paths); otherwise the config's faults are scheduled in order.
    pub fn try_new(config: MockConfig, clock: MockClock) -> Result<Self, ConfigErrors> {
        config.validate()?;
        let faults = config.faults.clone();
        let state = Self::empty(config, clock);
        state.faults.push_all(faults).map_err(|e| {
            ConfigErrors(vec![ConfigIssue {
                path: format!("faults.{}", e.field),
                message: e.to_string(),
            }])
        })?;
        Ok(state)
    }

    /// Problems of the configuration [`MockState::new`] was given (empty when valid, and
    /// always with [`MockState::try_new`]).
    pub fn config_errors(&self) -> &[ConfigIssue] {
        &self.config_errors
    }

    fn empty(config: MockConfig, clock: MockClock) -> Self {
        Self {
            config_errors: Vec::new(),
            listeners: crate::refuse::ListenerGate::default(),
            projects: Projects::new(&config.projects, config.limits),
            ledger: Ledger::new(config.ledger),
            clock,
            limiter: Limiter::new(),
            dedup: DedupStore::new(config.limits.dedup_window_ms),
            properties: PropertyStore::new(),
            silenced: RwLock::new(config.silenced_devices.iter().cloned().collect()),
            faults: Faults::new(config.seed),
            metrics: Metrics::new(),
            config,
        }
    }

    /// The configuration in force.
    pub fn config(&self) -> &MockConfig {
        &self.config
    }

    /// The ledger (events, duplicates, property drops, request journal, counters),
    /// read-only.
    pub fn ledger(&self) -> &Ledger {
        &self.ledger
    }

    /// The clock every time rule reads (advance a virtual clock to jump windows).
    pub fn clock(&self) -> &MockClock {
        &self.clock
    }

    /// The fault schedule: `push`, `push_all`, `clear`, `list` (same as `/__mock/faults`).
    pub fn faults(&self) -> &Faults {
        &self.faults
    }

    /// How many listeners serve this state and how many a `refuse` window has closed now.
    pub fn listener_view(&self) -> crate::refuse::ListenerView {
        self.listeners.view()
    }

    /// Waits until every listener serving this state is closed by a `refuse` window
    /// (`refusing`; at least one listener) or until none is (`!refusing`): a test moves the
    /// mock clock, then awaits this instead of sleeping.
    pub async fn wait_refusing(&self, refusing: bool) {
        self.listeners.wait(refusing).await;
    }

    /// Forgets all events, requests, counters (including `/metrics` request counters),
    /// limiter windows, remembered `insert_id`s and user properties. The clock,
    /// configuration and scheduled faults stay.
    pub fn reset(&self) {
        self.ledger.reset();
        self.metrics.reset();
        self.limiter.clear();
        self.dedup.clear();
        self.properties.clear();
    }
}
