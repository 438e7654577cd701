//! The run report: what was offered, sent, dropped and answered, latency in HdrHistogram
//! summaries (corrected from the intended start time and uncorrected from the actual send),
//! a per-second time series and the threshold verdicts.
//!
//! Its JSON shape is `loadgen/schema/report.schema.json` (checked in the tests).

use crate::load_check::LoadCheck;
use crate::segment::Segment;
use crate::thresholds::Thresholds;
use hdrhistogram::Histogram;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::fmt::Write as _;

/// Version of the report's JSON shape; bumped on incompatible changes.
pub(crate) const REPORT_SCHEMA_VERSION: u32 = 1;

/// The JSON Schema of [`Report`] (draft 2020-12).
pub const REPORT_SCHEMA: &str = include_str!("../schema/report.schema.json");

/// A distribution summary, ms.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct LatencySummary {
    /// Number of samples.
    pub count: u64,
    /// Smallest sample, ms.
    pub min: f64,
    /// Mean, ms.
    pub mean: f64,
    /// Median, ms.
    pub p50: f64,
    /// 90th percentile, ms.
    pub p90: f64,
    /// 99th percentile, ms.
    pub p99: f64,
    /// 99.9th percentile, ms.
    pub p999: f64,
    /// Largest sample, ms.
    pub max: f64,
}

impl LatencySummary {
    /// Summarizes a histogram of µs values (all zeros when empty).
    pub(crate) fn from_us(h: &Histogram<u64>) -> Self {
        if h.is_empty() {
            return Self::default();
        }
        let ms = |v: u64| v as f64 / 1_000.0;
        Self {
            count: h.len(),
            min: ms(h.min()),
            mean: h.mean() / 1_000.0,
            p50: ms(h.value_at_quantile(0.50)),
            p90: ms(h.value_at_quantile(0.90)),
            p99: ms(h.value_at_quantile(0.99)),
            p999: ms(h.value_at_quantile(0.999)),
            max: ms(h.max()),
        }
    }
}

/// The run's latency distributions in full, losslessly: each field is the base64 (standard
/// alphabet, padded) of the HdrHistogram V2 serialization of a histogram of µs values with
/// 3 significant figures. `amplitude-loadgen merge` adds them, so merged percentiles are
/// exact to that precision.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct LatencyHistograms {
    /// Of [`Latencies::corrected`].
    pub corrected: String,
    /// Of [`Latencies::uncorrected`].
    pub uncorrected: String,
    /// Of [`Latencies::delivery`].
    pub delivery: String,
    /// Of [`Latencies::schedule_lag`].
    pub schedule_lag: String,
}

/// One second's latency distributions in full: base64 HdrHistogram V2 of µs values, 2
/// significant figures (as the series' percentiles).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct SeriesHistograms {
    /// Corrected latency of the requests intended in this second.
    pub corrected: String,
    /// Uncorrected latency of the requests intended in this second.
    pub uncorrected: String,
}

/// Requests and the events they carry.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Volume {
    /// HTTP requests.
    pub requests: u64,
    /// Events in them.
    pub events: u64,
}

/// What the scenario was.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ScenarioInfo {
    /// Scenario name.
    pub name: String,
    /// Scenario file.
    pub source: String,
    /// Seed used.
    pub seed: u64,
    /// `http_v2` or `batch`.
    pub endpoint: String,
    /// `us` or `eu`.
    pub region: String,
    /// Scheduled length of the run, ms.
    pub duration_ms: u64,
    /// Phases: name and `[start_ms, end_ms)`.
    pub phases: Vec<PhaseInfo>,
    /// Most events per request.
    pub batch_size: u64,
    /// Most requests in flight.
    pub max_in_flight: u64,
}

/// One phase of the schedule.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct PhaseInfo {
    /// Phase name (`phase-N` when unnamed).
    pub name: String,
    /// Start, ms after the run start.
    pub start_ms: u64,
    /// End, ms after the run start.
    pub end_ms: u64,
}

/// Identities named in 429 bodies (spec §5.4), with how many 429 responses named each.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Throttled {
    /// Requests answered 429.
    pub responses: u64,
    /// Events listed in `throttled_events` across those responses.
    pub events: u64,
    /// `device_id` -> 429 responses naming it in `throttled_devices`.
    pub devices: BTreeMap<String, u64>,
    /// `user_id` -> 429 responses naming it in `throttled_users`.
    pub users: BTreeMap<String, u64>,
}

/// Latency distributions.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Latencies {
    /// Per request, from its intended start time to the end of the response
    /// (coordinated-omission corrected), ms. Transport errors are included at the time they
    /// failed.
    pub corrected: LatencySummary,
    /// Per request, from the actual send to the end of the response, ms.
    pub uncorrected: LatencySummary,
    /// Per event answered 2xx, from the event's intended arrival to the response, ms
    /// (includes time spent waiting for its batch to fill).
    pub delivery: LatencySummary,
    /// Per sent request, how late the send was relative to the intended time, ms.
    pub schedule_lag: LatencySummary,
}

/// One second of the run (by intended time for offered/dropped/latency, by actual time
/// for sent and responses).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct SeriesPoint {
    /// Second since the run start.
    pub t_s: u64,
    /// Events whose intended arrival fell in this second.
    pub offered_events: u64,
    /// Events sent in this second.
    pub sent_events: u64,
    /// Events of this second's arrivals that were dropped (generator could not keep up).
    pub dropped_events: u64,
    /// Events answered 2xx in this second.
    pub ok_events: u64,
    /// Responses completed in this second, by HTTP status.
    pub responses: BTreeMap<String, u64>,
    /// Requests that failed without a response in this second.
    pub transport_errors: u64,
    /// Corrected latency p50 of requests intended in this second, ms.
    pub latency_p50_ms: Option<f64>,
    /// Corrected latency p99 of requests intended in this second, ms.
    pub latency_p99_ms: Option<f64>,
    /// Uncorrected latency p99 of requests intended in this second, ms.
    pub latency_p99_uncorrected_ms: Option<f64>,
    /// This second's latency histograms in full (absent when no request was intended in
    /// it, and in reports of loadgen versions before segments).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub latency_histograms: Option<SeriesHistograms>,
}

/// The verdict on one threshold.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ThresholdResult {
    /// Metric name.
    pub metric: String,
    /// The criterion, e.g. `< 60000`.
    pub criterion: String,
    /// The measured value; `null` when loadgen does not measure this metric (e.g. `lost`).
    pub actual: Option<f64>,
    /// Pass/fail; `null` when not evaluated.
    pub passed: Option<bool>,
}

/// The report of one direct-mode run.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Report {
    /// Version of the report's JSON shape (1); bumped on incompatible changes.
    pub schema_version: u32,
    /// `amplitude-loadgen <version>`.
    pub tool: String,
    /// The scenario.
    pub scenario: ScenarioInfo,
    /// The segment this run sent (`--segment K/N`); absent for a whole run and for a merge.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub segment: Option<Segment>,
    /// For a report made by `amplitude-loadgen merge`: the number of segments merged (N).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub merged_segments: Option<u32>,
    /// Full URL requests went to.
    pub target: String,
    /// Wall-clock start, ms since the Unix epoch.
    pub started_at_ms: i64,
    /// Wall time from start to the last response, ms.
    pub elapsed_ms: f64,
    /// What the scenario scheduled.
    pub offered: Volume,
    /// What was sent.
    pub sent: Volume,
    /// Arrivals not sent because the generator could not keep up (open model, as k6's
    /// `dropped_iterations`).
    pub dropped: Volume,
    /// Scheduled events per second of scheduled duration.
    pub offered_rate_eps: f64,
    /// Sent events per second of the sending window (at least the scheduled duration).
    pub achieved_rate_eps: f64,
    /// The sending window, ms: the scheduled duration plus how late the last request went
    /// out (0 in reports of loadgen versions before segments).
    #[serde(default)]
    pub sending_window_ms: f64,
    /// `|achieved - offered| / offered` (0 when nothing was offered).
    pub achieved_rate_error: f64,
    /// Responses by HTTP status (requests).
    pub status_counts: BTreeMap<String, u64>,
    /// Events in requests answered 2xx.
    pub events_2xx: u64,
    /// Requests without a response, by kind (`timeout`, `connect`, `io`).
    pub transport_errors: BTreeMap<String, u64>,
    /// Identities throttled by 429s.
    pub throttled: Throttled,
    /// Latency distributions.
    pub latency_ms: Latencies,
    /// The same distributions in full, for an exact merge (absent in reports of loadgen
    /// versions before segments).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub latency_histograms: Option<LatencyHistograms>,
    /// Per-second time series.
    pub series: Vec<SeriesPoint>,
    /// Threshold verdicts, in metric-name order.
    pub thresholds: Vec<ThresholdResult>,
    /// False when any evaluated threshold failed.
    pub passed: bool,
    /// Whether the target was loaded as asked (offered vs achieved rate, drops by cause,
    /// the bottleneck); see [`crate::LoadCheck`].
    #[serde(default)]
    pub load: LoadCheck,
}

/// Metric names [`Report::metric`] knows (thresholds on other names are left to the
/// conformance suite).
pub const METRICS: &[&str] = &[
    "achieved_rate",
    "achieved_rate_error",
    "offered_rate",
    "dropped_events",
    "dropped_requests",
    "transport_errors",
    "non_2xx_requests",
    "status_2xx",
    "status_400",
    "status_413",
    "status_429",
    "status_5xx",
    "p50_latency_ms",
    "p90_latency_ms",
    "p99_latency_ms",
    "p999_latency_ms",
    "max_latency_ms",
    "p99_latency_uncorrected_ms",
    "p50_delivery_ms",
    "p99_delivery_ms",
    "max_delivery_ms",
    "max_schedule_lag_ms",
];

impl Report {
    fn status_sum(&self, f: impl Fn(u16) -> bool) -> u64 {
        self.status_counts
            .iter()
            .filter(|(k, _)| k.parse::<u16>().is_ok_and(&f))
            .map(|(_, v)| *v)
            .sum()
    }

    /// The value of a named metric (see [`METRICS`]; units: events/s, ratio, count, ms), or
    /// `None` when loadgen does not measure it.
    pub fn metric(&self, name: &str) -> Option<f64> {
        let l = &self.latency_ms;
        Some(match name {
            "achieved_rate" => self.achieved_rate_eps,
            "achieved_rate_error" => self.achieved_rate_error,
            "offered_rate" => self.offered_rate_eps,
            "dropped_events" => self.dropped.events as f64,
            "dropped_requests" => self.dropped.requests as f64,
            "transport_errors" => self.transport_errors.values().sum::<u64>() as f64,
            "non_2xx_requests" => self.status_sum(|s| !(200..300).contains(&s)) as f64,
            "status_2xx" => self.status_sum(|s| (200..300).contains(&s)) as f64,
            "status_400" => self.status_sum(|s| s == 400) as f64,
            "status_413" => self.status_sum(|s| s == 413) as f64,
            "status_429" => self.status_sum(|s| s == 429) as f64,
            "status_5xx" => self.status_sum(|s| s >= 500) as f64,
            "p50_latency_ms" => l.corrected.p50,
            "p90_latency_ms" => l.corrected.p90,
            "p99_latency_ms" => l.corrected.p99,
            "p999_latency_ms" => l.corrected.p999,
            "max_latency_ms" => l.corrected.max,
            "p99_latency_uncorrected_ms" => l.uncorrected.p99,
            "p50_delivery_ms" => l.delivery.p50,
            "p99_delivery_ms" => l.delivery.p99,
            "max_delivery_ms" => l.delivery.max,
            "max_schedule_lag_ms" => l.schedule_lag.max,
            _ => return None,
        })
    }

    /// Evaluates `thresholds` against this report, filling [`Report::thresholds`] and
    /// [`Report::passed`]. Thresholds on metrics loadgen does not measure are listed with
    /// `passed: null` and do not fail the run.
    pub fn evaluate(&mut self, thresholds: &Thresholds) {
        self.thresholds = thresholds
            .iter()
            .map(|(name, t)| {
                let actual = self.metric(name);
                ThresholdResult {
                    metric: name.clone(),
                    criterion: t.to_string(),
                    actual,
                    passed: actual.map(|a| t.check(a)),
                }
            })
            .collect();
        // A run whose target accepted nothing did not load it (a wrong API key, a wrong
        // endpoint): it fails an implicit `status_2xx > 0` unless the scenario states its
        // own `status_2xx` threshold (one that expects every request refused says
        // `status_2xx = "== 0"`). Bounds on other statuses (`status_429 <= 0`) do not
        // count: they say nothing about whether anything was accepted.
        let sent_any = self.sent.requests > 0;
        let accepted = self.status_sum(|s| (200..300).contains(&s));
        let stated = thresholds.contains_key("status_2xx");
        if sent_any && accepted == 0 && !stated {
            self.thresholds.push(ThresholdResult {
                metric: "status_2xx".to_owned(),
                criterion: "> 0 (implicit: the target must accept something)".to_owned(),
                actual: Some(0.0),
                passed: Some(false),
            });
        }
        self.passed = self.thresholds.iter().all(|t| t.passed != Some(false));
    }

    /// When requests were sent and none was answered 2xx: why the run did not load its
    /// target, in words (what the terminal and the HTML report say first).
    pub fn accepted_nothing(&self) -> Option<String> {
        (self.sent.requests > 0 && self.status_sum(|c| (200..300).contains(&c)) == 0).then(|| {
            format!(
                "none of the {} requests sent was answered 2xx (check --api-key, --target and \
                 the scenario's endpoint)",
                self.sent.requests
            )
        })
    }

    /// A human summary for the terminal.
    pub fn to_terminal(&self) -> String {
        let mut s = String::new();
        if !self.load.loaded_as_asked && !self.load.message.is_empty() {
            let _ = writeln!(s, "{}\n", self.load.message);
        }
        if let Some(why) = self.accepted_nothing() {
            let _ = writeln!(s, "THE TARGET ACCEPTED NOTHING: {why}\n");
        }
        let sc = &self.scenario;
        let _ = writeln!(
            s,
            "scenario  {} (seed {}, {} {}, {:.1} s)",
            sc.name,
            sc.seed,
            sc.endpoint,
            sc.region,
            sc.duration_ms as f64 / 1e3
        );
        if let Some(seg) = self.segment {
            let _ = writeln!(
                s,
                "segment   {seg} (the identities of this part only; `merge` the {} reports)",
                seg.count()
            );
        }
        if let Some(n) = self.merged_segments {
            let _ = writeln!(s, "merged    {n} segment reports");
        }
        let _ = writeln!(s, "target    {}", self.target);
        let _ = writeln!(
            s,
            "offered   {} events in {} requests ({:.1} events/s)",
            self.offered.events, self.offered.requests, self.offered_rate_eps
        );
        let _ = writeln!(
            s,
            "sent      {} events in {} requests ({:.1} events/s, rate error {:.2}%)",
            self.sent.events,
            self.sent.requests,
            self.achieved_rate_eps,
            self.achieved_rate_error * 100.0
        );
        let _ = writeln!(
            s,
            "dropped   {} events in {} requests",
            self.dropped.events, self.dropped.requests
        );
        let statuses: Vec<String> = self
            .status_counts
            .iter()
            .map(|(k, v)| format!("{k}: {v}"))
            .collect();
        let _ = writeln!(
            s,
            "responses {}",
            if statuses.is_empty() {
                "none".into()
            } else {
                statuses.join(", ")
            }
        );
        if !self.transport_errors.is_empty() {
            let errs: Vec<String> = self
                .transport_errors
                .iter()
                .map(|(k, v)| format!("{k}: {v}"))
                .collect();
            let _ = writeln!(s, "errors    {}", errs.join(", "));
        }
        if self.throttled.responses > 0 {
            let mut top: Vec<(&String, &u64)> = self
                .throttled
                .devices
                .iter()
                .chain(self.throttled.users.iter())
                .collect();
            top.sort_by(|a, b| b.1.cmp(a.1).then(a.0.cmp(b.0)));
            let names: Vec<String> = top
                .iter()
                .take(5)
                .map(|(k, v)| format!("{k} ({v})"))
                .collect();
            let _ = writeln!(
                s,
                "throttled {} responses; top identities: {}",
                self.throttled.responses,
                names.join(", ")
            );
        }
        let _ = writeln!(
            s,
            "latency ms        p50      p90      p99    p99.9      max"
        );
        for (label, l) in [
            ("corrected", &self.latency_ms.corrected),
            ("uncorrected", &self.latency_ms.uncorrected),
            ("delivery", &self.latency_ms.delivery),
        ] {
            if l.count == 0 {
                let _ = writeln!(
                    s,
                    "  {label:<12} {:>8} {:>8} {:>8} {:>8} {:>8}",
                    "n/a", "n/a", "n/a", "n/a", "n/a"
                );
                continue;
            }
            let _ = writeln!(
                s,
                "  {label:<12} {:>8.1} {:>8.1} {:>8.1} {:>8.1} {:>8.1}",
                l.p50, l.p90, l.p99, l.p999, l.max
            );
        }
        if !self.thresholds.is_empty() {
            let _ = writeln!(s, "thresholds");
            for t in &self.thresholds {
                let verdict = match t.passed {
                    Some(true) => "PASS",
                    Some(false) => "FAIL",
                    None => "n/a ",
                };
                let actual = t.actual.map_or_else(
                    || "not measured by loadgen".to_owned(),
                    |a| format!("{a:.3}"),
                );
                let _ = writeln!(
                    s,
                    "  {verdict} {} {} (actual {actual})",
                    t.metric, t.criterion
                );
            }
        }
        let result = if self.load.fails_run() {
            "FAIL (target not loaded as asked; exit 98)"
        } else if self.passed {
            "PASS"
        } else {
            "FAIL"
        };
        let _ = writeln!(s, "result    {result}");
        s
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use crate::thresholds::Threshold;

    fn report(statuses: &[(&str, u64)]) -> Report {
        let mut r = Report::default();
        r.sent.requests = statuses.iter().map(|(_, n)| n).sum();
        r.status_counts = statuses
            .iter()
            .map(|(k, v)| ((*k).to_owned(), *v))
            .collect();
        r
    }

    fn thresholds(pairs: &[(&str, &str)]) -> Thresholds {
        pairs
            .iter()
            .map(|(m, t)| ((*m).to_owned(), Threshold::parse(t).unwrap()))
            .collect()
    }

    #[test]
    fn a_run_whose_target_accepted_nothing_fails_on_its_own() {
        let mut r = report(&[("400", 25)]);
        r.evaluate(&thresholds(&[("transport_errors", "== 0")]));
        assert!(!r.passed);
        let last = r.thresholds.last().unwrap();
        assert_eq!(
            (last.metric.as_str(), last.actual, last.passed),
            ("status_2xx", Some(0.0), Some(false))
        );
        let text = r.to_terminal();
        assert!(
            text.starts_with("THE TARGET ACCEPTED NOTHING: none of the 25 requests"),
            "{text}"
        );
        assert!(text.contains("status_2xx > 0 (implicit"), "{text}");
        assert!(text.contains("result    FAIL"), "{text}");
        let html = crate::html::render_html(&r).unwrap();
        assert!(
            html.contains("<b>The target accepted nothing.</b> none of the 25 requests sent"),
            "{html}"
        );
    }

    #[test]
    fn a_scenario_stating_its_own_status_2xx_decides_and_one_accepted_request_is_enough() {
        // steady-trickle's `status_429 <= 0` passes on 25 refused requests: it does not
        // excuse a target that accepted nothing.
        let mut r = report(&[("400", 25)]);
        r.evaluate(&thresholds(&[
            ("status_429", "<= 0"),
            ("status_400", "> 0"),
        ]));
        assert!(!r.passed);
        assert_eq!(r.thresholds.last().unwrap().metric, "status_2xx");
        let mut r = report(&[("400", 25)]);
        r.evaluate(&thresholds(&[("status_2xx", "== 0")]));
        assert!(r.passed);
        assert_eq!(r.thresholds.len(), 1);
        let mut r = report(&[("400", 24), ("200", 1)]);
        r.evaluate(&Thresholds::new());
        assert!(r.passed && r.thresholds.is_empty());
        assert!(!r.to_terminal().contains("ACCEPTED NOTHING"));
        assert!(!crate::html::render_html(&r)
            .unwrap()
            .contains("accepted nothing"));
        // Nothing sent (every arrival dropped): the load check judges that, not this rule.
        let mut r = report(&[]);
        r.evaluate(&Thresholds::new());
        assert!(r.passed);
    }

    #[test]
    fn an_empty_latency_summary_prints_n_a_not_zeros() {
        let r = report(&[("400", 3)]);
        let text = r.to_terminal();
        let delivery = text
            .lines()
            .find(|l| l.trim_start().starts_with("delivery"))
            .unwrap();
        assert_eq!(
            delivery.split_whitespace().collect::<Vec<_>>(),
            ["delivery", "n/a", "n/a", "n/a", "n/a", "n/a"]
        );
    }
}
