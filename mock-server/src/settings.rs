//! The builder's settings and how they compose into one [`MockConfig`], whatever the order
//! of the builder calls (ADR 008). Part of the embedding layer: used by `mock.rs` only.
//!
//! The rule: a whole configuration given with `.config(..)` is the base; each setter
//! overrides the base's value of its own setting, whatever the call order; lists
//! (projects, faults) are the base's followed by the setters' in call order, an exact
//! duplicate project given both ways kept once. `.config(..)` twice is refused at start.
//! The benchmark profile is applied last, over everything.

use crate::config::{ConfigIssue, MockConfig};
use crate::faults::Fault;
use crate::ledger::LedgerConfig;
use crate::profile::{FidelityProfile, Limits};
use crate::projects::ProjectConfig;

/// Settings collected by [`crate::MockServerBuilder`], resolved at start.
#[derive(Debug, Clone, Default)]
pub(crate) struct Settings {
    /// Whole configurations given with `.config(..)` (more than one is refused).
    pub configs: Vec<MockConfig>,
    pub projects: Vec<ProjectConfig>,
    pub profile: Option<FidelityProfile>,
    pub limits: Option<Limits>,
    pub max_events_per_request: Option<usize>,
    pub ledger: Option<LedgerConfig>,
    pub journal_bodies: Option<bool>,
    pub seed: Option<u64>,
    pub faults: Vec<Fault>,
    pub admin_token: Option<String>,
    /// `.profile_for_benchmarks()` / `.unthrottled()`.
    pub benchmark: bool,
}

impl Settings {
    /// The one configuration these settings make; an error names a conflict.
    pub(crate) fn resolve(&self) -> Result<MockConfig, ConfigIssue> {
        if self.configs.len() > 1 {
            return Err(ConfigIssue {
                path: "config".to_owned(),
                message: format!(
                    "given {} times; give one whole configuration and set the rest with the builder's setters",
                    self.configs.len()
                ),
            });
        }
        let mut c = self.configs.first().cloned().unwrap_or_default();
        for p in &self.projects {
            if !c.projects.contains(p) {
                c.projects.push(p.clone());
            }
        }
        if let Some(p) = &self.profile {
            c.profile = p.clone();
        }
        if let Some(l) = self.limits {
            c.limits = l;
        }
        if let Some(n) = self.max_events_per_request {
            c.limits.max_events_per_request = n;
        }
        if let Some(l) = self.ledger {
            c.ledger = l;
        }
        if let Some(b) = self.journal_bodies {
            c.ledger.journal_bodies = b;
        }
        if let Some(s) = self.seed {
            c.seed = s;
        }
        c.faults.extend(self.faults.iter().cloned());
        if let Some(t) = &self.admin_token {
            c.admin_token = Some(t.clone());
        }
        if self.benchmark {
            c.limits = c.limits.unthrottled();
            for p in &mut c.projects {
                p.limits = p.limits.map(|l| l.unthrottled());
            }
            if self.ledger.is_none() {
                c.ledger = c.ledger.capped_for_benchmarks();
            }
        }
        Ok(c)
    }
}
