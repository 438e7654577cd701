//! The event-level checker: joins the application's events (ground truth), the mock's ledger
//! and journal, and the sender's own reports; classifies every logical event (stored, lost,
//! duplicate-stored, duplicate-deduplicated, unexpected, reordered, expected-rejection,
//! property update dropped) and checks the sender's behaviour request by request.
//! Delivery is counted from the mock's ledger only, never from `events_ingested` or the
//! sender's claims.

mod behaviour;
mod classify;
mod observation;
mod verdict;

#[cfg(test)]
mod tests;

pub use observation::{
    Attempted, Deduplicated, Observation, Request, SenderOutcome, SentEvent, Stored,
};
pub use verdict::{CheckResult, EventCounts, Verdict};

use serde::{Deserialize, Serialize};

/// Tunables of the behaviour checks, with defaults from the spec.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct CheckOptions {
    /// How long a throttled identity must pause after a 429, ms (spec §5.4, §8.1: 30 s).
    pub throttle_pause_ms: i64,
    /// Slack for clock reading differences between sender and mock, ms.
    pub tolerance_ms: i64,
    /// The non-throttled events of a 429 must be resent within this, ms (spec §6, §7).
    pub resend_within_ms: i64,
    /// Retries of one event closer together than this count toward a hot loop, ms.
    pub hot_loop_gap_ms: i64,
    /// This many consecutive too-fast retries of one event make a hot loop.
    pub hot_loop_retries: u32,
    /// Silently dropped property updates fail the run (the scenario says the sender should
    /// have kept under 1,800/hour, spec §8.1); otherwise they are only reported.
    pub property_drops_fail: bool,
    /// Events of identities never throttled must be stored within this of being produced, ms.
    pub cold_latency_ms: i64,
}

impl Default for CheckOptions {
    fn default() -> Self {
        Self {
            throttle_pause_ms: amplitude_wire::limits::THROTTLE_PAUSE_MS as i64,
            tolerance_ms: 250,
            resend_within_ms: 10_000,
            hot_loop_gap_ms: 50,
            hot_loop_retries: 5,
            property_drops_fail: false,
            cold_latency_ms: 25_000,
        }
    }
}

/// Checks one run.
pub fn check(obs: &Observation, opts: &CheckOptions) -> Verdict {
    let index = classify::Index::new(obs);
    let (events, mut checks) = classify::classify(obs, &index, opts);
    checks.extend(behaviour::checks(obs, &index, opts));
    Verdict { events, checks }
}
