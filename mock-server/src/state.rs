//! The mock's shared state: configuration, projects, clock, ledger and the stateful rules
//! (limiter, dedup store, property store). One instance per running mock, behind an `Arc`.

use crate::clock::MockClock;
use crate::config::MockConfig;
use crate::dedup::DedupStore;
use crate::faults::Faults;
use crate::ledger::Ledger;
use crate::limits::Limiter;
use crate::metrics::Metrics;
use crate::projects::Projects;
use crate::properties::PropertyStore;
use parking_lot::RwLock;
use std::collections::HashSet;

/// Everything a running mock holds. Build with [`MockState::new`]; the HTTP layer and the
/// library both call into it.
pub struct MockState {
    pub(crate) config: MockConfig,
    pub(crate) projects: Projects,
    /// The ledger of events, requests and counters.
    pub ledger: Ledger,
    /// The clock every time rule reads.
    pub clock: MockClock,
    pub(crate) limiter: Limiter,
    pub(crate) dedup: DedupStore,
    pub(crate) properties: PropertyStore,
    pub(crate) silenced: RwLock<HashSet<String>>,
    /// The fault schedule (`/__mock/faults`), seeded with the config's `seed`.
    pub faults: Faults,
    /// Request counters and latency histogram of `GET /metrics`.
    pub metrics: Metrics,
}

impl MockState {
    /// A fresh mock state for `config`, reading time from `clock`. The config's `faults` are
    /// scheduled in order; an invalid one is logged and skipped (use
    /// [`MockState::try_new`] to refuse it).
    pub fn new(config: MockConfig, clock: MockClock) -> Self {
        let faults = config.faults.clone();
        let state = Self::empty(config, clock);
        for f in faults {
            if let Err(e) = state.faults.push(f) {
                tracing::error!(error = %e, "config fault skipped");
            }
        }
        state
    }

    /// Like [`MockState::new`], but an invalid fault in the config is an error.
    pub fn try_new(
        config: MockConfig,
        clock: MockClock,
    ) -> Result<Self, crate::faults::FaultError> {
        let faults = config.faults.clone();
        let state = Self::empty(config, clock);
        state.faults.push_all(faults)?;
        Ok(state)
    }

    fn empty(config: MockConfig, clock: MockClock) -> Self {
        Self {
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
