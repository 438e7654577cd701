//! The `[conformance]` table of a scenario file: how the runner treats the scenario.

use crate::check::CheckOptions;
use amplitude_loadgen::{DurationMs, Scenario};
use serde::Deserialize;
use std::collections::BTreeMap;

/// `[conformance]` settings. Unknown keys are an error naming the scenario.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ConformanceSettings {
    /// How long the sender may take after its last event is fed, e.g. `"60s"` (default 120 s);
    /// then it is killed and judged on what the mock stored.
    pub deadline: Option<DurationMs>,
    /// Run this scenario in the default suite (default true).
    pub default_suite: Option<bool>,
    /// Tunables of the behaviour checks (`[conformance.checks]`).
    pub checks: CheckOptions,
    /// Extra environment for the sender (e.g. `AMPLITUDE_FLUSH_QUEUE_SIZE = "10"`).
    pub sender_env: BTreeMap<String, String>,
}

impl ConformanceSettings {
    /// Reads the scenario's `[conformance]` table.
    pub fn of(scenario: &Scenario) -> Result<Self, String> {
        toml::Value::Table(scenario.conformance.clone())
            .try_into()
            .map_err(|e| format!("{}: [conformance]: {e}", scenario.source.display()))
    }

    /// The deadline after the last event is fed, ms.
    pub fn deadline_ms(&self) -> u64 {
        self.deadline.map_or(120_000, |d| d.0)
    }
}
