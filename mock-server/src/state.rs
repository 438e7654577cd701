//! The mock's shared state: configuration, projects, clock, ledger and the stateful rules
//! (limiter, dedup store, property store). One instance per running mock, behind an `Arc`.

use crate::clock::MockClock;
use crate::config::MockConfig;
use crate::dedup::DedupStore;
use crate::ledger::Ledger;
use crate::limits::Limiter;
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
}

impl MockState {
    /// A fresh mock state for `config`, reading time from `clock`.
    pub fn new(config: MockConfig, clock: MockClock) -> Self {
        Self {
            projects: Projects::new(&config.projects, config.limits),
            ledger: Ledger::new(config.ledger),
            clock,
            limiter: Limiter::new(),
            dedup: DedupStore::new(config.limits.dedup_window_ms),
            properties: PropertyStore::new(),
            silenced: RwLock::new(config.silenced_devices.iter().cloned().collect()),
            config,
        }
    }

    /// The configuration in force.
    pub fn config(&self) -> &MockConfig {
        &self.config
    }

    /// Forgets all events, requests, counters, limiter windows, remembered `insert_id`s and
    /// user properties. The clock and configuration stay.
    pub fn reset(&self) {
        self.ledger.reset();
        self.limiter.clear();
        self.dedup.clear();
        self.properties.clear();
    }
}
