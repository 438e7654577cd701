//! The event-level checker: joins the application's events (ground truth), the mock's ledger
//! and journal, and the sender's own reports; classifies every logical event (stored, lost,
//! duplicate-stored, duplicate-deduplicated, unexpected, reordered, expected-rejection,
//! property update dropped) and checks the sender's behaviour request by request.
//! Delivery is counted from the mock's ledger only, never from `events_ingested` or the
//! sender's claims.

mod behaviour;
mod classify;
mod flow;
mod observation;
mod throttle;
mod verdict;

#[cfg(test)]
mod report_cases;
#[cfg(test)]
mod tests;

pub use flow::{event_lives, EventLife};
pub use observation::{
    Attempted, Deduplicated, Expectation, Observation, Request, Restart, SenderOutcome, SentEvent,
    Stored,
};
pub use throttle::{throttle_trace, PauseViolation, ThrottlePause, ThrottleTrace};
pub use verdict::{CheckResult, Efficiency, EventCounts, Verdict};

use serde::{Deserialize, Serialize};

/// Tunables of the behaviour checks (`[conformance.checks]` of a scenario), with defaults
/// from the spec. `docs/conformance/checks.md` gives each check's exact rule.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct CheckOptions {
    /// How long a throttled identity must pause after a 429, ms (spec §5.4, §8.1: 30 s).
    pub throttle_pause_ms: i64,
    /// Slack for clock reading differences between sender and mock, ms.
    pub tolerance_ms: i64,
    /// The non-throttled events of a 429 must be resent within this, ms (spec §6, §7).
    pub resend_within_ms: i64,
    /// A resend of one event sooner than this after a failing answer is too fast, ms
    /// (`no_hot_loop`, per-event rule).
    pub hot_loop_gap_ms: i64,
    /// This many consecutive too-fast resends of one event make a hot loop.
    pub hot_loop_retries: u32,
    /// At most this many resends answered with a failing status within any window of
    /// `failing_window_ms` (`no_hot_loop`, per-endpoint rule).
    pub max_failing_resends: u32,
    /// The sliding window of the per-endpoint rule, ms.
    pub failing_window_ms: i64,
    /// Silently dropped property updates fail the run (the scenario says the sender should
    /// have kept under 1,800/hour, spec §8.1); otherwise they are only reported.
    pub property_drops_fail: bool,
    /// Events of identities never throttled must be stored within this of being produced, ms.
    pub cold_latency_ms: i64,
    /// A "dropped" report for an event the mock stored fails the run (`no_false_drop_reports`).
    pub false_drop_reports_fail: bool,
    /// An event Amplitude refused for good that the sender never reported fails the run
    /// (`refused_events_reported`).
    pub refused_silently_fail: bool,
    /// `batch_size_recovers`: the binning interval of the efficient minimum, ms.
    pub efficient_flush_ms: i64,
    /// `batch_size_recovers`: after the last 413, requests may exceed the efficient minimum
    /// for the events first sent after it by at most this factor.
    pub batch_recovery_factor: f64,
    /// `batch_size_recovers`: ... plus this many requests (small runs, retries of a fault).
    pub batch_recovery_slack: u64,
}

impl Default for CheckOptions {
    fn default() -> Self {
        Self {
            throttle_pause_ms: amplitude_wire::limits::THROTTLE_PAUSE_MS as i64,
            tolerance_ms: 250,
            resend_within_ms: 10_000,
            hot_loop_gap_ms: 100,
            hot_loop_retries: 5,
            max_failing_resends: 10,
            failing_window_ms: 1_000,
            property_drops_fail: false,
            cold_latency_ms: 25_000,
            false_drop_reports_fail: true,
            refused_silently_fail: true,
            efficient_flush_ms: 1_000,
            batch_recovery_factor: 4.0,
            batch_recovery_slack: 5,
        }
    }
}

/// Checks one run.
pub fn check(obs: &Observation, opts: &CheckOptions) -> Verdict {
    let index = classify::Index::new(obs);
    let (events, mut checks) = classify::classify(obs, &index, opts);
    checks.extend(behaviour::checks(obs, &index, opts));
    let efficiency = behaviour::efficiency(obs, &index, opts);
    checks.push(behaviour::batch_size_recovers(obs, &index, opts));
    Verdict {
        events,
        checks,
        efficiency,
    }
}
