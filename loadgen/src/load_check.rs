//! Was the target loaded as asked? An open-model run is only as good as the rate it
//! achieved: a generator that fell behind, or a target whose answers held every connection,
//! produces a report whose latencies describe a lighter load than the scenario's. k6 only
//! warns (`dropped_iterations`); loadgen says so first, in words, and fails the run with its
//! own exit code ([`EXIT_NOT_LOADED_AS_ASKED`]) unless the scenario's thresholds say what
//! shortfall they accept.

use crate::report::Volume;
use serde::{Deserialize, Serialize};

/// Default tolerance of the achieved rate: a run that achieved less than 95% of its
/// offered rate was not loaded as asked (`--rate-tolerance` changes it).
pub const DEFAULT_RATE_TOLERANCE: f64 = 0.05;

/// Exit code of `amplitude-loadgen run` when the target was not loaded as asked and the
/// scenario's thresholds do not cover it (threshold failures exit 99, errors 1).
pub const EXIT_NOT_LOADED_AS_ASKED: u8 = 98;

/// Threshold metrics through which a scenario states the shortfall it accepts: when any of
/// them is in `[thresholds]`, those thresholds decide and the load check only reports.
pub const LOAD_METRICS: &[&str] = &[
    "achieved_rate",
    "achieved_rate_error",
    "dropped_events",
    "dropped_requests",
];

/// What held the run back.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Bottleneck {
    /// The generator: requests were planned or started later than their intended time
    /// (schedule lag), so arrivals were dropped or the sending window stretched.
    Generator,
    /// The target: every connection (`run.max_in_flight`) was waiting for an answer when
    /// arrivals were due, so they could not start within `run.max_lag`.
    Target,
}

impl Bottleneck {
    /// The sentence naming it, for the terminal and the HTML report.
    pub fn describe(self) -> &'static str {
        match self {
            Self::Generator => {
                "the generator's schedule lag (loadgen could not start requests on time; \
                 try --threads, a larger batch_size, or more generator machines)"
            }
            Self::Target => {
                "the target's in-flight limit (all run.max_in_flight connections were \
                 waiting for answers; the target answered slower than the arrival rate)"
            }
        }
    }
}

/// The load verdict of one run (JSON `load`). The default (a report written before this
/// field existed) claims nothing: loaded as asked, no message.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LoadCheck {
    /// Offered rate, events/s.
    pub offered_rate_eps: f64,
    /// Achieved rate, events/s.
    pub achieved_rate_eps: f64,
    /// `(offered - achieved) / offered`, 0 when the achieved rate is not below the offered
    /// one.
    pub shortfall: f64,
    /// Largest tolerated shortfall (ratio; default [`DEFAULT_RATE_TOLERANCE`]).
    pub tolerance: f64,
    /// Arrivals dropped because their request could not start on time although a
    /// connection was free, or was already too late when planned (the generator's lag).
    pub dropped_for_schedule_lag: Volume,
    /// Arrivals dropped because every connection was busy until `run.max_lag` had passed,
    /// or because the scheduler was still held waiting for a connection when they were due.
    pub dropped_at_in_flight_limit: Volume,
    /// Largest schedule lag of a sent request, ms.
    pub max_schedule_lag_ms: f64,
    /// Loaded as asked: nothing dropped and the shortfall within the tolerance.
    pub loaded_as_asked: bool,
    /// What held the run back, when it was not loaded as asked.
    pub bottleneck: Option<Bottleneck>,
    /// The scenario's thresholds name a load metric ([`LOAD_METRICS`]): they decide, and a
    /// shortfall does not fail the run by itself.
    pub thresholds_decide: bool,
    /// The verdict in words (empty when loaded as asked).
    pub message: String,
}

impl Default for LoadCheck {
    fn default() -> Self {
        Self {
            offered_rate_eps: 0.0,
            achieved_rate_eps: 0.0,
            shortfall: 0.0,
            tolerance: DEFAULT_RATE_TOLERANCE,
            dropped_for_schedule_lag: Volume::default(),
            dropped_at_in_flight_limit: Volume::default(),
            max_schedule_lag_ms: 0.0,
            loaded_as_asked: true,
            bottleneck: None,
            thresholds_decide: false,
            message: String::new(),
        }
    }
}

impl LoadCheck {
    /// Judges a run from its rates (events/s), drops by cause and largest schedule lag (ms).
    /// `thresholds_decide`: the scenario's thresholds name one of [`LOAD_METRICS`].
    pub fn assess(
        offered_rate_eps: f64,
        achieved_rate_eps: f64,
        dropped_for_schedule_lag: Volume,
        dropped_at_in_flight_limit: Volume,
        max_schedule_lag_ms: f64,
        tolerance: f64,
        thresholds_decide: bool,
    ) -> Self {
        let shortfall = if offered_rate_eps > 0.0 && achieved_rate_eps < offered_rate_eps {
            (offered_rate_eps - achieved_rate_eps) / offered_rate_eps
        } else {
            0.0
        };
        let dropped = dropped_for_schedule_lag.events + dropped_at_in_flight_limit.events;
        let dropped_requests =
            dropped_for_schedule_lag.requests + dropped_at_in_flight_limit.requests;
        let loaded_as_asked = dropped == 0 && shortfall <= tolerance;
        let bottleneck = (!loaded_as_asked).then_some(
            if dropped_at_in_flight_limit.events > dropped_for_schedule_lag.events {
                Bottleneck::Target
            } else {
                Bottleneck::Generator
            },
        );
        let message = match bottleneck {
            None => String::new(),
            Some(b) => {
                let mut m = format!(
                    "TARGET NOT LOADED AS ASKED: offered {offered_rate_eps:.1} events/s, \
                     achieved {achieved_rate_eps:.1} events/s ({:.1}% of offered)",
                    if offered_rate_eps > 0.0 {
                        achieved_rate_eps / offered_rate_eps * 100.0
                    } else {
                        0.0
                    }
                );
                if dropped > 0 {
                    m.push_str(&format!(
                        "; dropped {dropped} events in {dropped_requests} requests \
                         ({} for schedule lag, {} at the in-flight limit)",
                        dropped_for_schedule_lag.events, dropped_at_in_flight_limit.events
                    ));
                }
                m.push_str(&format!(
                    "; bottleneck: {} (max schedule lag {max_schedule_lag_ms:.0} ms)",
                    b.describe()
                ));
                if thresholds_decide {
                    m.push_str("; the scenario's thresholds on rate and drops decide the result");
                }
                m
            }
        };
        Self {
            offered_rate_eps,
            achieved_rate_eps,
            shortfall,
            tolerance,
            dropped_for_schedule_lag,
            dropped_at_in_flight_limit,
            max_schedule_lag_ms,
            loaded_as_asked,
            bottleneck,
            thresholds_decide,
            message,
        }
    }

    /// The shortfall fails the run: not loaded as asked, and no load threshold decides.
    pub fn fails_run(&self) -> bool {
        !self.loaded_as_asked && !self.thresholds_decide
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v(events: u64, requests: u64) -> Volume {
        Volume { events, requests }
    }

    #[test]
    fn on_rate_and_nothing_dropped_is_loaded_as_asked() {
        let c = LoadCheck::assess(1_000.0, 990.0, v(0, 0), v(0, 0), 3.0, 0.05, false);
        assert!(c.loaded_as_asked && !c.fails_run());
        assert_eq!(c.bottleneck, None);
        assert!(c.message.is_empty());
        assert!((c.shortfall - 0.01).abs() < 1e-9);
    }

    #[test]
    fn a_rate_shortfall_beyond_the_tolerance_fails_and_blames_the_generator() {
        // the 8.8 M-drop run of the issue: 10% of the offered rate reached
        let c = LoadCheck::assess(
            100_000.0,
            10_000.0,
            v(8_800_000, 88_000),
            v(0, 0),
            5_000.0,
            0.05,
            false,
        );
        assert!(!c.loaded_as_asked && c.fails_run());
        assert_eq!(c.bottleneck, Some(Bottleneck::Generator));
        assert!(c.message.starts_with("TARGET NOT LOADED AS ASKED: offered 100000.0 events/s, achieved 10000.0 events/s (10.0% of offered)"), "{}", c.message);
        assert!(
            c.message
                .contains("dropped 8800000 events in 88000 requests"),
            "{}",
            c.message
        );
        assert!(c.message.contains("schedule lag"), "{}", c.message);
    }

    #[test]
    fn one_dropped_arrival_is_enough_and_in_flight_drops_blame_the_target() {
        let c = LoadCheck::assess(100.0, 99.0, v(0, 0), v(1, 1), 200.0, 0.05, false);
        assert!(!c.loaded_as_asked && c.fails_run());
        assert_eq!(c.bottleneck, Some(Bottleneck::Target));
        assert!(c.message.contains("in-flight limit"), "{}", c.message);
    }

    #[test]
    fn a_shortfall_without_drops_beyond_the_tolerance_is_the_generators() {
        let c = LoadCheck::assess(100.0, 90.0, v(0, 0), v(0, 0), 900.0, 0.05, false);
        assert!(!c.loaded_as_asked);
        assert_eq!(c.bottleneck, Some(Bottleneck::Generator));
        // a looser tolerance accepts it
        assert!(
            LoadCheck::assess(100.0, 90.0, v(0, 0), v(0, 0), 900.0, 0.15, false).loaded_as_asked
        );
    }

    #[test]
    fn load_thresholds_decide_instead() {
        let c = LoadCheck::assess(100.0, 50.0, v(0, 0), v(50, 50), 200.0, 0.05, true);
        assert!(!c.loaded_as_asked && !c.fails_run());
        assert!(
            c.message.contains("thresholds on rate and drops decide"),
            "{}",
            c.message
        );
    }
}
