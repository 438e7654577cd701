//! Exact merge of segment reports (`amplitude-loadgen merge`): the N reports of one run
//! made with `--segment K/N` become one report, as if one generator had sent everything.
//!
//! - Latency percentiles come from the sum of the segments' full HdrHistograms
//!   ([`crate::LatencyHistograms`]), never from averaging percentiles.
//! - Counts (offered, sent, dropped, statuses, transport errors, 429s) are summed.
//! - The time series is aligned on intended time: second `t_s` of every segment is second
//!   `t_s` after its own start, which is intended time `t_s` of the schedule (so `sent` and
//!   `responses`, counted by each segment's own clock, line up as far as the segments
//!   started together).
//! - Rates: offered = all offered events / scheduled duration; achieved = all sent events /
//!   the longest sending window.
//! - The thresholds the segments carry (the scenario's) are evaluated on the merged report.
//! - `scenario.max_in_flight` is the segments' sum (requests that could be in flight at
//!   once); `target` lists the distinct targets, space-separated.
//!
//! Refused: reports that are not segments, or of another scenario, seed, N, report version,
//! loadgen version or threshold set, a segment given twice, or a segment missing.

use crate::error::MergeError;
use crate::histogram::{decode, encode};
use crate::load_check::{LoadCheck, LOAD_METRICS};
use crate::report::{
    Latencies, LatencyHistograms, LatencySummary, Report, SeriesHistograms, SeriesPoint, Volume,
};
use crate::thresholds::{Threshold, Thresholds};
use hdrhistogram::Histogram;
use std::collections::BTreeMap;

/// Merges the N segment reports of one run into one report (see the module docs). Each
/// input is `(name, report)`; the name (e.g. the file it came from) is used in errors only.
/// The result has `segment: None`, `merged_segments: Some(N)`, full histograms of its own,
/// and its thresholds evaluated.
///
/// # Errors
/// [`MergeError`]: no input, an input that is not a segment report, a mismatch (scenario
/// name, seed, endpoint, region, schedule, batch size, thresholds, N, report or loadgen
/// version), a duplicate or missing segment, or a missing or unreadable histogram.
pub fn merge(inputs: &[(String, Report)]) -> Result<Report, MergeError> {
    let (first_name, first) = inputs.first().ok_or(MergeError::Empty)?;
    let count = first
        .segment
        .ok_or_else(|| MergeError::NotASegment {
            name: first_name.clone(),
        })?
        .count();
    let mut owners: BTreeMap<u32, &str> = BTreeMap::new();
    for (name, r) in inputs {
        let seg = r
            .segment
            .ok_or_else(|| MergeError::NotASegment { name: name.clone() })?;
        let differs = |what: &str, expected: String, found: String| {
            if expected == found {
                Ok(())
            } else {
                Err(MergeError::Mismatch {
                    name: name.clone(),
                    first: first_name.clone(),
                    what: what.to_owned(),
                    expected,
                    found,
                })
            }
        };
        let (a, b) = (&first.scenario, &r.scenario);
        differs(
            "segment count N",
            count.to_string(),
            seg.count().to_string(),
        )?;
        differs("scenario name", a.name.clone(), b.name.clone())?;
        differs("seed", a.seed.to_string(), b.seed.to_string())?;
        differs("endpoint", a.endpoint.clone(), b.endpoint.clone())?;
        differs("region", a.region.clone(), b.region.clone())?;
        differs(
            "scheduled duration (ms)",
            a.duration_ms.to_string(),
            b.duration_ms.to_string(),
        )?;
        differs(
            "phases",
            format!("{:?}", a.phases),
            format!("{:?}", b.phases),
        )?;
        differs(
            "batch size",
            a.batch_size.to_string(),
            b.batch_size.to_string(),
        )?;
        differs(
            "schema version",
            first.schema_version.to_string(),
            r.schema_version.to_string(),
        )?;
        // Another version may generate or partition differently: its part is not a part
        // of this run.
        differs("loadgen version", first.tool.clone(), r.tool.clone())?;
        differs("thresholds", criteria(first), criteria(r))?;
        if let Some(prev) = owners.insert(seg.index(), name) {
            return Err(MergeError::DuplicateSegment {
                segment: seg.to_string(),
                first: prev.to_owned(),
                second: name.clone(),
            });
        }
    }
    let missing: Vec<u32> = (0..count).filter(|k| !owners.contains_key(k)).collect();
    if !missing.is_empty() {
        return Err(MergeError::MissingSegments { missing, count });
    }

    let mut out = first.clone();
    out.segment = None;
    out.merged_segments = Some(count);
    out.scenario.max_in_flight = inputs.iter().map(|(_, r)| r.scenario.max_in_flight).sum();
    let mut targets: Vec<&str> = inputs.iter().map(|(_, r)| r.target.as_str()).collect();
    targets.sort_unstable();
    targets.dedup();
    out.target = targets.join(" ");
    out.started_at_ms = inputs
        .iter()
        .map(|(_, r)| r.started_at_ms)
        .min()
        .unwrap_or(first.started_at_ms);
    let end_ms = inputs
        .iter()
        .map(|(_, r)| r.started_at_ms as f64 + r.elapsed_ms)
        .fold(f64::MIN, f64::max);
    out.elapsed_ms = (end_ms - out.started_at_ms as f64).max(0.0);

    out.offered = Default::default();
    out.sent = Default::default();
    out.dropped = Default::default();
    out.status_counts.clear();
    out.transport_errors.clear();
    out.events_2xx = 0;
    out.throttled = Default::default();
    out.sending_window_ms = 0.0;
    for (_, r) in inputs {
        for (sum, v) in [
            (&mut out.offered, r.offered),
            (&mut out.sent, r.sent),
            (&mut out.dropped, r.dropped),
        ] {
            sum.requests += v.requests;
            sum.events += v.events;
        }
        add_counts(&mut out.status_counts, &r.status_counts);
        add_counts(&mut out.transport_errors, &r.transport_errors);
        out.events_2xx += r.events_2xx;
        out.throttled.responses += r.throttled.responses;
        out.throttled.events += r.throttled.events;
        add_counts(&mut out.throttled.devices, &r.throttled.devices);
        add_counts(&mut out.throttled.users, &r.throttled.users);
        out.sending_window_ms = out.sending_window_ms.max(r.sending_window_ms);
    }
    let duration_s = out.scenario.duration_ms as f64 / 1_000.0;
    out.offered_rate_eps = if duration_s > 0.0 {
        out.offered.events as f64 / duration_s
    } else {
        0.0
    };
    let window_s = (out.sending_window_ms / 1_000.0).max(duration_s);
    out.achieved_rate_eps = if window_s > 0.0 {
        out.sent.events as f64 / window_s
    } else {
        0.0
    };
    out.achieved_rate_error = if out.offered_rate_eps > 0.0 {
        (out.achieved_rate_eps - out.offered_rate_eps).abs() / out.offered_rate_eps
    } else {
        0.0
    };

    let hists = |pick: fn(&LatencyHistograms) -> &String| -> Result<Histogram<u64>, MergeError> {
        let mut sum = new_hist(3)?;
        for (name, r) in inputs {
            let h = r
                .latency_histograms
                .as_ref()
                .ok_or_else(|| MergeError::NoHistograms { name: name.clone() })?;
            add(&mut sum, pick(h), name)?;
        }
        Ok(sum)
    };
    let corrected = hists(|h| &h.corrected)?;
    let uncorrected = hists(|h| &h.uncorrected)?;
    let delivery = hists(|h| &h.delivery)?;
    let lag = hists(|h| &h.schedule_lag)?;
    out.latency_ms = Latencies {
        corrected: LatencySummary::from_us(&corrected),
        uncorrected: LatencySummary::from_us(&uncorrected),
        delivery: LatencySummary::from_us(&delivery),
        schedule_lag: LatencySummary::from_us(&lag),
    };
    let enc = |h: &Histogram<u64>, name: &str| {
        encode(h).map_err(|message| MergeError::Invalid {
            name: name.to_owned(),
            message,
        })
    };
    out.latency_histograms = Some(LatencyHistograms {
        corrected: enc(&corrected, "merged report")?,
        uncorrected: enc(&uncorrected, "merged report")?,
        delivery: enc(&delivery, "merged report")?,
        schedule_lag: enc(&lag, "merged report")?,
    });
    out.series = merge_series(inputs)?;

    let mut thresholds = Thresholds::new();
    for t in &first.thresholds {
        let parsed = Threshold::parse(&t.criterion).map_err(|message| MergeError::Invalid {
            name: first_name.clone(),
            message,
        })?;
        thresholds.insert(t.metric.clone(), parsed);
    }
    out.evaluate(&thresholds);
    // Whether the whole run loaded the target as asked: the merged rates, the segments'
    // drops by cause summed, the tolerance they ran with (issue 16, item 5).
    let (mut for_lag, mut in_flight) = (Volume::default(), Volume::default());
    for (_, r) in inputs {
        for (sum, part) in [
            (&mut for_lag, r.load.dropped_for_schedule_lag),
            (&mut in_flight, r.load.dropped_at_in_flight_limit),
        ] {
            sum.events += part.events;
            sum.requests += part.requests;
        }
    }
    out.load = LoadCheck::assess(
        out.offered_rate_eps,
        out.achieved_rate_eps,
        for_lag,
        in_flight,
        out.latency_ms.schedule_lag.max,
        first.load.tolerance,
        thresholds
            .keys()
            .any(|name| LOAD_METRICS.contains(&name.as_str())),
    );
    Ok(out)
}

/// The thresholds a report carries, as `metric criterion; ...` (to compare reports).
fn criteria(r: &Report) -> String {
    let v: Vec<String> = r
        .thresholds
        .iter()
        .map(|t| format!("{} {}", t.metric, t.criterion))
        .collect();
    if v.is_empty() {
        "none".into()
    } else {
        v.join("; ")
    }
}

fn add_counts(sum: &mut BTreeMap<String, u64>, more: &BTreeMap<String, u64>) {
    for (k, v) in more {
        *sum.entry(k.clone()).or_default() += v;
    }
}

fn new_hist(sigfig: u8) -> Result<Histogram<u64>, MergeError> {
    Histogram::new(sigfig).map_err(|e| MergeError::Invalid {
        name: "merged report".into(),
        message: format!("histogram: {e:?}"),
    })
}

/// Decodes `text` (a report's histogram) and adds it to `sum`.
fn add(sum: &mut Histogram<u64>, text: &str, name: &str) -> Result<(), MergeError> {
    let invalid = |message: String| MergeError::Invalid {
        name: name.to_owned(),
        message,
    };
    let h = decode(text).map_err(invalid)?;
    sum.add(&h)
        .map_err(|e| invalid(format!("cannot add histogram: {e:?}")))
}

#[derive(Default)]
struct Second {
    point: SeriesPoint,
    corrected: Option<Histogram<u64>>,
    uncorrected: Option<Histogram<u64>>,
}

/// The segments' series summed second by second (seconds of intended time), with
/// percentiles from the summed per-second histograms.
fn merge_series(inputs: &[(String, Report)]) -> Result<Vec<SeriesPoint>, MergeError> {
    let mut seconds: BTreeMap<u64, Second> = BTreeMap::new();
    for (name, r) in inputs {
        for p in &r.series {
            let s = seconds.entry(p.t_s).or_default();
            let q = &mut s.point;
            q.offered_events += p.offered_events;
            q.sent_events += p.sent_events;
            q.dropped_events += p.dropped_events;
            q.ok_events += p.ok_events;
            q.transport_errors += p.transport_errors;
            add_counts(&mut q.responses, &p.responses);
            match &p.latency_histograms {
                Some(h) => {
                    for (slot, text) in [
                        (&mut s.corrected, &h.corrected),
                        (&mut s.uncorrected, &h.uncorrected),
                    ] {
                        if slot.is_none() {
                            *slot = Some(new_hist(2)?);
                        }
                        if let Some(sum) = slot.as_mut() {
                            add(sum, text, name)?;
                        }
                    }
                }
                None if p.latency_p50_ms.is_some() => {
                    return Err(MergeError::NoHistograms { name: name.clone() });
                }
                None => {}
            }
        }
    }
    let last = seconds.keys().next_back().copied();
    let Some(last) = last else {
        return Ok(Vec::new());
    };
    let q = |h: &Option<Histogram<u64>>, p: f64| {
        h.as_ref()
            .filter(|h| !h.is_empty())
            .map(|h| h.value_at_quantile(p) as f64 / 1_000.0)
    };
    (0..=last)
        .map(|t| {
            let s = seconds.remove(&t).unwrap_or_default();
            let mut point = s.point;
            point.t_s = t;
            point.latency_p50_ms = q(&s.corrected, 0.5);
            point.latency_p99_ms = q(&s.corrected, 0.99);
            point.latency_p99_uncorrected_ms = q(&s.uncorrected, 0.99);
            point.latency_histograms = match (&s.corrected, &s.uncorrected) {
                (Some(c), Some(u)) => {
                    let enc = |h| {
                        encode(h).map_err(|message| MergeError::Invalid {
                            name: "merged report".into(),
                            message,
                        })
                    };
                    Some(SeriesHistograms {
                        corrected: enc(c)?,
                        uncorrected: enc(u)?,
                    })
                }
                _ => None,
            };
            Ok(point)
        })
        .collect()
}
