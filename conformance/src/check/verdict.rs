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
    /// Lost events a crash-restart took (contract version 3; counted in `lost` too): written
    /// to a process that was then SIGKILLed, never sent after the kill, no outcome line.
    pub lost_at_restart: u64,
    /// Not stored because Amplitude refuses it for good, for any sender: invalid by the
    /// generator's `[dirty]` settings (spec §3.4), named in a 400's index lists (spec §5.1),
    /// over the daily quota (spec §8.1), alone over the body-size limit (spec §3.4), or sent
    /// with an invalid key (spec §1.1).
    pub expected_rejection: u64,
    /// Expected rejections the sender never reported as dropped (a silent drop of a refused
    /// event).
    pub refused_silently: u64,
    /// Not stored, and reported by the sender as still held in its durable queue when it
    /// exited (contract version 2): not a silent loss, but the run did not drain.
    pub held_at_exit: u64,
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
    /// The sender said "dropped" but the mock stored the event (the mirror of a false
    /// delivery claim: the application was told an event was lost that was not).
    pub false_drop_reports: u64,
}

/// How many requests the sender spent on its events.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Efficiency {
    /// Requests on the scenario's endpoint that carried at least one event.
    pub requests_with_events: u64,
    /// Events in those requests, counting every copy.
    pub events_sent: u64,
    /// `requests_with_events` / logical events attempted (0 when none).
    pub requests_per_event: f64,
    /// `events_sent` / `requests_with_events` (0 when none).
    pub mean_events_per_request: f64,
    /// The fewest requests an efficient sender needs for this run's events: the events
    /// binned by `efficient_flush_ms` of their production time, each bin split by the
    /// event-count limit (see `batch_size_recovers`).
    pub efficient_minimum_requests: u64,
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
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Verdict {
    /// Event classes.
    pub events: EventCounts,
    /// Every check, in a fixed order.
    pub checks: Vec<CheckResult>,
    /// Requests spent per event.
    pub efficiency: Efficiency,
}

impl Verdict {
    /// True when every check passed.
    pub fn passed(&self) -> bool {
        self.checks.iter().all(|c| c.passed)
    }

    /// Names of the checks that failed, in the verdict's order.
    pub fn failed(&self) -> Vec<&'static str> {
        self.checks
            .iter()
            .filter(|c| !c.passed)
            .map(|c| c.name)
            .collect()
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
