//! The checker's findings: per-event classes (Jepsen's vocabulary) and per-check results.

use serde::Serialize;

/// Counts of logical events by class (architecture "Checker vocabulary").
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct EventCounts {
    /// Logical events the application produced.
    pub attempted: u64,
    /// Stored exactly once.
    pub stored: u64,
    /// Valid, attempted, never stored.
    pub lost: u64,
    /// Lost without the sender reporting a drop.
    pub lost_silently: u64,
    /// Invalid (spec §3.4) and not stored, as Amplitude requires.
    pub expected_rejection: u64,
    /// Stored more than once.
    pub duplicate_stored: u64,
    /// Extra copies dropped by the mock's `insert_id` dedup (allowed, spec §9).
    pub duplicate_deduplicated: u64,
    /// Stored but never produced by the application.
    pub unexpected: u64,
    /// Stored out of the application's order for their device (HTTP V2, spec §9).
    pub reordered: u64,
    /// Stored, but their user-property update silently dropped (spec §8.1).
    pub property_update_dropped: u64,
    /// The sender said "delivered" but the event was not stored.
    pub false_delivery_claims: u64,
}

/// One check's result.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CheckResult {
    /// Stable name, e.g. `no_lost_events`.
    pub name: &'static str,
    /// What it checks, one line.
    pub description: &'static str,
    /// Passed.
    pub passed: bool,
    /// Offending events or requests.
    pub count: u64,
    /// Up to 5 explained examples.
    pub examples: Vec<String>,
}

/// The checker's verdict on one run.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Verdict {
    /// Event classes.
    pub events: EventCounts,
    /// Every check, in a fixed order.
    pub checks: Vec<CheckResult>,
}

impl Verdict {
    /// True when every check passed.
    pub fn passed(&self) -> bool {
        self.checks.iter().all(|c| c.passed)
    }

    /// The check called `name`.
    pub fn check(&self, name: &str) -> Option<&CheckResult> {
        self.checks.iter().find(|c| c.name == name)
    }
}

/// Collects offenders for one check.
#[derive(Debug, Default)]
pub(crate) struct Finding {
    pub count: u64,
    pub examples: Vec<String>,
}

impl Finding {
    pub fn add(&mut self, example: impl FnOnce() -> String) {
        self.count += 1;
        if self.examples.len() < 5 {
            let e = example();
            if !self.examples.contains(&e) {
                self.examples.push(e);
            }
        }
    }

    pub fn result(self, name: &'static str, description: &'static str, fails: bool) -> CheckResult {
        CheckResult {
            name,
            description,
            passed: !(fails && self.count > 0),
            count: self.count,
            examples: self.examples,
        }
    }
}
