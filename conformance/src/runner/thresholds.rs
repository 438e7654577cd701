//! The scenario's `[thresholds]` on the conformance suite's own counts (`lost = 0`,
//! `duplicate_stored = 0`, `requests_per_event = "< 0.2"`, ...). Names that only
//! `amplitude-loadgen run` measures (latencies, rates) are left to it.

use crate::check::{CheckResult, Verdict};
use amplitude_loadgen::Thresholds;

/// Every metric the suite measures, by its `[thresholds]` name: the event classes of
/// [`crate::check::EventCounts`], the request counts of [`crate::check::Efficiency`], and
/// `requests` (every request on the ingestion routes).
pub fn metric(v: &Verdict, requests: usize, name: &str) -> Option<f64> {
    if name == "requests" {
        return Some(requests as f64);
    }
    let counts = serde_json::to_value(&v.events).ok()?;
    let eff = serde_json::to_value(&v.efficiency).ok()?;
    counts
        .get(name)
        .or_else(|| eff.get(name))
        .and_then(serde_json::Value::as_f64)
}

/// The `scenario_thresholds` check: each threshold on a metric the suite measures holds.
pub fn check(thresholds: &Thresholds, v: &Verdict, requests: usize) -> CheckResult {
    let mut examples = Vec::new();
    let mut count = 0;
    for (name, t) in thresholds {
        let Some(actual) = metric(v, requests, name) else {
            continue;
        };
        if !t.check(actual) {
            count += 1;
            if examples.len() < 5 {
                examples.push(format!("[thresholds] {name} {t}: measured {actual}"));
            }
        }
    }
    CheckResult {
        name: "scenario_thresholds",
        description: "the scenario's [thresholds] on the suite's counts held",
        passed: count == 0,
        count,
        examples,
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use crate::check::{Efficiency, EventCounts};

    /// Issue 21, fault 1: `[thresholds] lost = 0` is honoured by the suite (it was ignored),
    /// with the efficiency figures and `requests` too; loadgen-only names are left alone.
    #[test]
    fn suite_thresholds_are_checked() {
        let v = Verdict {
            events: EventCounts {
                attempted: 10,
                stored: 8,
                lost: 2,
                ..Default::default()
            },
            checks: vec![],
            efficiency: Efficiency {
                requests_per_event: 0.5,
                ..Default::default()
            },
        };
        let t: Thresholds = toml::from_str(
            "lost = 0\nduplicate_stored = 0\nrequests_per_event = \"< 0.2\"\nrequests = \"<= 5\"\np99_latency_ms = \"< 1\"",
        )
        .unwrap();
        let c = check(&t, &v, 5);
        assert!(!c.passed);
        assert_eq!(c.count, 2);
        assert_eq!(
            c.examples,
            vec![
                "[thresholds] lost <= 0: measured 2".to_owned(),
                "[thresholds] requests_per_event < 0.2: measured 0.5".to_owned()
            ]
        );
        let t: Thresholds = toml::from_str("lost = 2\nrequests = \"<= 5\"").unwrap();
        assert!(check(&t, &v, 5).passed);
    }
}
