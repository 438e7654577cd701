//! The `[conformance]` table of a scenario file: how the runner treats the scenario.

use crate::check::{CheckOptions, Expectation};
use amplitude_loadgen::{DurationMs, Scenario};
use serde::Deserialize;
use std::collections::BTreeMap;

/// Default time the sender may take after its last event, ms.
pub const DEFAULT_DEADLINE_MS: u64 = 120_000;

/// `[conformance]` settings. Unknown keys are an error naming the scenario.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ConformanceSettings {
    /// How long the sender may take after its last event is fed (or after an `exit`
    /// control), e.g. `"60s"` (default 120 s); then it is killed and judged on what the mock
    /// stored. The sender is told a drain budget a margin shorter
    /// ([`ConformanceSettings::drain_budget_ms`]).
    pub deadline: Option<DurationMs>,
    /// Run this scenario in the default suite (default true).
    pub default_suite: Option<bool>,
    /// Tunables of the behaviour checks (`[conformance.checks]`).
    pub checks: CheckOptions,
    /// Extra environment for the sender (e.g. `AMPLITUDE_FLUSH_QUEUE_SIZE = "10"`).
    pub sender_env: BTreeMap<String, String>,
    /// The only outcome any sender can reach (`"delivered"`, the default, or
    /// `"all_rejected_invalid_key"`): the checker then asks whether each event was reported
    /// and none resent, not whether it was stored.
    pub expect: Expectation,
    /// The API key the sender is given instead of the project's (an unknown key: every
    /// request gets `400 Invalid API key`, spec §5.1).
    pub sender_api_key: Option<String>,
    /// The region the runner's project is registered in (`"us"` or `"eu"`; default the
    /// scenario's `region`). A project of the other region makes the sender's key a
    /// wrong-region key (spec §1.1).
    pub key_region: Option<amplitude_loadgen::Region>,
    /// Control lines written on the sender's stdin at given times (contract version 2):
    /// `controls = [{ at = "2s", control = "flush" }, { at = "2.5s", control = "exit" }]`.
    /// Events the application would have produced after an `exit` are never produced.
    pub controls: Vec<ControlAt>,
    /// Crash-restarts of the sender (contract version 3): at each of these times since the
    /// start of the run, e.g. `restarts = ["1.5s", "4s"]`, the runner SIGKILLs the sender's
    /// process group and starts it again with the same environment
    /// (`AMPLITUDE_SENDER_RESTART` incremented) and the same `AMPLITUDE_SENDER_STATE_DIR`,
    /// and feeds it the lines not yet written to the killed process. Strictly increasing,
    /// each after 0, before the first `exit` control and before the scenario's duration plus
    /// its deadline (checked by [`super::prepare`]).
    pub restarts: Vec<DurationMs>,
}

/// One control line of the application, at a time since the start of the run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ControlAt {
    /// When, since the start of the run.
    pub at: DurationMs,
    /// What the application does.
    pub control: Control,
}

/// What the application does at a control line (sender contract version 2).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Control {
    /// `{"control":"flush"}`: the application calls the sender's flush and waits for it.
    Flush,
    /// `{"control":"exit"}`: the application exits now, right after the last flush returned.
    Exit,
}

impl Control {
    /// The JSON line the runner writes (without the newline).
    pub fn line(self) -> &'static str {
        match self {
            Self::Flush => r#"{"control":"flush"}"#,
            Self::Exit => r#"{"control":"exit"}"#,
        }
    }
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
        self.deadline.map_or(DEFAULT_DEADLINE_MS, |d| d.0)
    }

    /// The margin between the sender's drain budget and the runner's kill, ms: a tenth of
    /// the deadline, at least 2 s and at most 10 s (never more than half the deadline).
    pub fn drain_margin_ms(&self) -> u64 {
        let d = self.deadline_ms();
        (d / 10).clamp(2_000, 10_000).min(d / 2)
    }

    /// The drain budget the sender is told (`AMPLITUDE_DRAIN_DEADLINE_MS`, and the reference
    /// sender's `--drain-deadline-ms`): the deadline minus [`Self::drain_margin_ms`], so a
    /// sender that honours it exits by itself before the runner kills it.
    pub fn drain_budget_ms(&self) -> u64 {
        self.deadline_ms() - self.drain_margin_ms()
    }

    /// The restart times, ms since the start of the run.
    pub fn restarts_ms(&self) -> Vec<u64> {
        self.restarts.iter().map(|d| d.0).collect()
    }

    /// The time of the first `exit` control, µs since the start of the run.
    pub fn exit_at_us(&self) -> Option<u64> {
        self.controls
            .iter()
            .filter(|c| c.control == Control::Exit)
            .map(|c| c.at.0 * 1_000)
            .min()
    }
}
