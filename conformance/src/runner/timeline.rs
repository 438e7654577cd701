//! What a sender did over a scenario's run, for the HTML report: every request with its send
//! time, status and event count, the scenario's fault windows, the throttled identities'
//! pauses with the requests the checker counted inside them, and the event flow. Times are
//! ms since the start of the run (the moment the runner starts the mock, the origin of the
//! scenario's `[mock]` fault windows).

use crate::check::{event_lives, throttle_trace, CheckOptions, Observation};
use amplitude_mock::Fault;
use serde::Serialize;
use std::collections::BTreeMap;

/// How many points the event-flow series has (fixed, so the report's size does not grow
/// with the run's length).
pub const FLOW_POINTS: usize = 200;

/// One request the mock received.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TimelineRequest {
    /// Journal id (`#N` in the checker's examples).
    pub id: u64,
    /// When the mock received it, ms since the run's start.
    pub at_ms: i64,
    /// HTTP status answered; 0 when the connection was cut.
    pub status: u16,
    /// Events it carried.
    pub events: usize,
}

/// A `[mock]` fault of the scenario, with its window.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct FaultWindow {
    /// The fault's kind (`status`, `reset`, `delay`, ...).
    pub kind: String,
    /// Its status, when it answers one.
    pub status: Option<u16>,
    /// Start of its window, ms since the run's start (`None`: from the start).
    pub from_ms: Option<i64>,
    /// End of its window (`None`: to the end, or until its `count` is used up).
    pub until_ms: Option<i64>,
    /// At most this many requests (`count`).
    pub count: Option<u64>,
    /// Each matching request with this probability.
    pub probability: Option<f64>,
    /// The first and last request the journal shows hit by a fault of this kind (and
    /// status): where a fault without a window actually struck.
    pub hits_ms: Option<(i64, i64)>,
}

/// One pause of a throttled identity.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct LanePause {
    /// The request answered 429.
    pub request_id: u64,
    /// When, ms since the run's start.
    pub from_ms: i64,
    /// When the pause ends.
    pub until_ms: i64,
}

/// A later request carrying a throttled identity.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct LaneRequest {
    /// Journal id.
    pub id: u64,
    /// When, ms since the run's start.
    pub at_ms: i64,
    /// Its events `throttle_pause_respected` counted for this identity.
    pub in_pause: u64,
    /// Sent inside one of this identity's pauses (by the check's rule, tolerance included),
    /// even when the check counted its events under another identity they carry (an event's
    /// device is looked at before its user, and counted once).
    pub in_window: bool,
}

/// A device or user named in a 429: its pauses and every request carrying it from its first
/// 429 on.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ThrottleLane {
    /// A device, else a user.
    pub device: bool,
    /// The identity.
    pub id: String,
    /// Its pauses, in order.
    pub pauses: Vec<LanePause>,
    /// Requests carrying it after its first 429 (the 429s included).
    pub requests: Vec<LaneRequest>,
    /// Events `throttle_pause_respected` counted for it (the sum of `in_pause`).
    pub counted: u64,
}

/// Events over time, sampled at [`FLOW_POINTS`] instants.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct FlowPoint {
    /// Instant, ms since the run's start.
    pub at_ms: i64,
    /// Events the application had produced.
    pub produced: u64,
    /// Events the mock had stored (first copies).
    pub stored: u64,
    /// Produced minus stored, refused for good or reported dropped.
    pub backlog: u64,
}

/// The run of one scenario over time.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Timeline {
    /// The run's length as drawn, ms (the last request, event or the sender's exit).
    pub end_ms: i64,
    /// Every request, in arrival order.
    pub requests: Vec<TimelineRequest>,
    /// The scenario's faults.
    pub faults: Vec<FaultWindow>,
    /// One lane per throttled identity, in the order of their first 429.
    pub throttle_lanes: Vec<ThrottleLane>,
    /// Produced, stored and backlog over time.
    pub flow: Vec<FlowPoint>,
}

impl Timeline {
    /// Builds the timeline of a run that started at `start_ms` (mock clock) and lasted at
    /// least `duration_ms`; `faults` are the scenario's, with windows relative to the start.
    pub fn new(
        obs: &Observation,
        opts: &CheckOptions,
        faults: &[Fault],
        start_ms: i64,
        duration_ms: u64,
    ) -> Self {
        let rel = |t: i64| t.saturating_sub(start_ms).max(0);
        let requests: Vec<TimelineRequest> = obs
            .requests
            .iter()
            .map(|r| TimelineRequest {
                id: r.id,
                at_ms: rel(r.at_ms),
                status: r.status,
                events: r.events.len(),
            })
            .collect();
        let faults = faults
            .iter()
            .map(|f| {
                let kind = f.kind.as_str();
                let mut hits = obs.requests.iter().filter(|r| {
                    r.fault.as_deref() == Some(kind) && f.status.is_none_or(|s| s == r.status)
                });
                let first = hits.next().map(|r| rel(r.at_ms));
                let last = hits.next_back().map(|r| rel(r.at_ms));
                FaultWindow {
                    kind: kind.to_owned(),
                    status: f.status,
                    from_ms: f.from_ms,
                    until_ms: f.until_ms,
                    count: f.count,
                    probability: f.probability,
                    hits_ms: first.map(|a| (a, last.unwrap_or(a))),
                }
            })
            .collect();
        let trace = throttle_trace(obs, opts);
        let mut lanes: Vec<ThrottleLane> = Vec::new();
        for p in &trace.pauses {
            let pause = LanePause {
                request_id: p.request_id,
                from_ms: rel(p.at_ms),
                until_ms: rel(p.until_ms),
            };
            match lanes
                .iter_mut()
                .find(|l| l.device == p.device && l.id == p.id)
            {
                Some(l) => l.pauses.push(pause),
                None => lanes.push(ThrottleLane {
                    device: p.device,
                    id: p.id.clone(),
                    pauses: vec![pause],
                    requests: Vec::new(),
                    counted: 0,
                }),
            }
        }
        let mut counted: BTreeMap<(bool, &str, u64), u64> = BTreeMap::new();
        for v in &trace.violations {
            *counted
                .entry((v.device, v.id.as_str(), v.request_id))
                .or_insert(0) += 1;
        }
        for lane in &mut lanes {
            let first = lane.pauses.first().map_or(u64::MAX, |p| p.request_id);
            for r in obs.requests.iter().filter(|r| r.id >= first) {
                let carries = r.events.iter().any(|e| {
                    let id = if lane.device {
                        e.device_id.as_deref()
                    } else {
                        e.user_id.as_deref()
                    };
                    id == Some(lane.id.as_str())
                });
                if !carries {
                    continue;
                }
                let in_pause = counted
                    .get(&(lane.device, lane.id.as_str(), r.id))
                    .copied()
                    .unwrap_or(0);
                let at = rel(r.at_ms);
                let in_window = lane.pauses.iter().any(|p| {
                    p.request_id < r.id && at.saturating_add(opts.tolerance_ms) < p.until_ms
                });
                lane.counted += in_pause;
                lane.requests.push(LaneRequest {
                    id: r.id,
                    at_ms: at,
                    in_pause,
                    in_window,
                });
            }
        }
        let lives = event_lives(obs);
        let mut produced: Vec<i64> = lives.iter().map(|l| rel(l.produced_at_ms)).collect();
        let mut stored: Vec<i64> = lives
            .iter()
            .filter_map(|l| l.stored_at_ms.map(rel))
            .collect();
        let mut settled: Vec<i64> = lives
            .iter()
            .filter_map(|l| l.stored_at_ms.or(l.given_up_at_ms).map(rel))
            .collect();
        produced.sort_unstable();
        stored.sort_unstable();
        settled.sort_unstable();
        let end_ms = [
            requests.last().map_or(0, |r| r.at_ms),
            produced.last().copied().unwrap_or(0),
            settled.last().copied().unwrap_or(0),
            i64::try_from(duration_ms).unwrap_or(i64::MAX),
        ]
        .into_iter()
        .max()
        .unwrap_or(0)
        .max(1);
        let upto = |v: &[i64], t: i64| v.partition_point(|&x| x <= t) as u64;
        let flow = (0..=FLOW_POINTS)
            .map(|k| {
                let t = end_ms * k as i64 / FLOW_POINTS as i64;
                let p = upto(&produced, t);
                FlowPoint {
                    at_ms: t,
                    produced: p,
                    stored: upto(&stored, t),
                    backlog: p.saturating_sub(upto(&settled, t)),
                }
            })
            .collect();
        Self {
            end_ms,
            requests,
            faults,
            throttle_lanes: lanes,
            flow,
        }
    }
}
