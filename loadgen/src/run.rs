//! Direct mode: send a scenario's events straight to an Amplitude-compatible endpoint.
//!
//! Open model: a generator thread turns the event stream into request bodies ahead of time;
//! a scheduler sends each request at its intended time, never waiting for earlier
//! responses. At most `max_in_flight` requests are outstanding, one per connection slot
//! (`connection.rs`: a long-lived task per keep-alive connection, no task per request). A
//! request that cannot start within `max_lag` of its intended time is counted as dropped
//! (as k6 counts `dropped_iterations`), never silently delayed. Latency is recorded in
//! HdrHistogram both from the intended start time (coordinated-omission corrected) and from
//! the actual send.
//!
//! Batching: consecutive events form one request until it holds `batch_size` events, its
//! body would exceed the endpoint's limit, or its first event has waited `max_batch_wait`.
//! The request's intended start is the arrival of its last event, or the first event's
//! arrival plus `max_batch_wait` when the wait ran out first.

use crate::connection::{OnAnswer, Slots, Target};
use crate::error::RunError;
use crate::generate::EventStream;
use crate::histogram::encode;
use crate::load_check::{LoadCheck, LOAD_METRICS};
use crate::report::{
    Latencies, LatencyHistograms, LatencySummary, PhaseInfo, Report, ScenarioInfo,
    SeriesHistograms, SeriesPoint, Throttled, Volume, REPORT_SCHEMA_VERSION,
};
use crate::scenario::{Region, Scenario};
use crate::segment::Segment;
use amplitude_wire::ResponseBody;
use bytes::Bytes;
use hdrhistogram::Histogram;
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::mpsc;
use tokio::time::Instant;

/// A snapshot of a direct-mode run, given to [`RunOptions::progress`] about every 100 ms
/// while requests go out, and once more with `finished` set when the last one is answered.
/// Its `Display` is the one-line status the binary shows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Progress {
    /// Time since the first request was due.
    pub elapsed: Duration,
    /// Scheduled length of the run, ms.
    pub duration_ms: u64,
    /// Events sent so far.
    pub sent_events: u64,
    /// Events answered with a 2xx.
    pub ok_events: u64,
    /// Requests answered with anything but a 2xx.
    pub non_2xx_requests: u64,
    /// Requests that got no answer (transport errors, timeouts).
    pub errors: u64,
    /// Events of requests that could not start in time (dropped arrivals).
    pub dropped_events: u64,
    /// The run is over (the last call).
    pub finished: bool,
}

impl std::fmt::Display for Progress {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "sent {} ok {} non-2xx req {} errors {} dropped {}",
            self.sent_events,
            self.ok_events,
            self.non_2xx_requests,
            self.errors,
            self.dropped_events
        )
    }
}

/// Receives the [`Progress`] of a run (called from a tokio task; must not block).
pub type ProgressFn = Arc<dyn Fn(&Progress) + Send + Sync>;

/// Options of a direct-mode run.
#[derive(Clone, Default)]
pub struct RunOptions {
    /// Base URL, e.g. `http://127.0.0.1:8080`; the scenario's endpoint path is appended.
    pub target: String,
    /// Project API key put into every request body.
    pub api_key: String,
    /// Overrides the scenario's seed.
    pub seed: Option<u64>,
    /// Progress reports (`None`: none). The library prints nothing itself.
    pub progress: Option<ProgressFn>,
    /// Overrides `run.max_in_flight`.
    pub max_in_flight: Option<usize>,
    /// Send only this segment's events (`--segment K/N`; `None`: all of them). The report
    /// names the segment and its offered rate is the segment's share.
    pub segment: Option<Segment>,
    /// Wall-clock start of the schedule, ms since the Unix epoch (`--start-at`): the run
    /// waits until then, so segments started at different moments send together. `None`
    /// or a time already past: start now.
    pub start_at_ms: Option<i64>,
}

impl std::fmt::Debug for RunOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RunOptions")
            .field("target", &self.target)
            .field("api_key", &self.api_key)
            .field("seed", &self.seed)
            .field("progress", &self.progress.as_ref().map(|_| "Fn(&Progress)"))
            .field("max_in_flight", &self.max_in_flight)
            .field("segment", &self.segment)
            .field("start_at_ms", &self.start_at_ms)
            .finish()
    }
}

/// Planned requests per hand-off from the generator thread to the scheduler.
const PLAN_BATCH: usize = 64;
/// Hand-offs the channel holds (64 x 64 = 4,096 requests planned ahead at most).
const PLAN_QUEUE_BATCHES: usize = 64;

/// The intended arrival of each event of one request, µs: a range of the offsets buffer its
/// hand-off ([`PlanBatch`]) shares among its requests, so the bookkeeping of a request
/// costs no allocation (one buffer per [`PLAN_BATCH`] requests). Derefs to `[u64]`.
#[derive(Clone)]
struct EventOffsets {
    all: Arc<[u64]>,
    start: usize,
    end: usize,
}

impl std::ops::Deref for EventOffsets {
    type Target = [u64];
    fn deref(&self) -> &[u64] {
        self.all.get(self.start..self.end).unwrap_or_default()
    }
}

/// One request, ready to send.
struct Planned {
    intended_us: u64,
    body: Bytes,
    /// Intended arrival of each event, µs.
    event_offsets_us: EventOffsets,
}

/// A request as the generator plans it: its events' offsets are `start..end` of its
/// hand-off's buffer.
struct PlannedRequest {
    intended_us: u64,
    body: Bytes,
    start: usize,
    end: usize,
}

/// One hand-off from the generator to the scheduler: up to [`PLAN_BATCH`] requests and one
/// buffer of their events' offsets. Iterates as [`Planned`] requests.
struct PlanBatch {
    offsets: Arc<[u64]>,
    requests: Vec<PlannedRequest>,
}

impl IntoIterator for PlanBatch {
    type Item = Planned;
    type IntoIter = PlanIter;
    fn into_iter(self) -> PlanIter {
        PlanIter {
            offsets: self.offsets,
            requests: self.requests.into_iter(),
        }
    }
}

/// The requests of a [`PlanBatch`], each sharing its offsets buffer.
struct PlanIter {
    offsets: Arc<[u64]>,
    requests: std::vec::IntoIter<PlannedRequest>,
}

impl Iterator for PlanIter {
    type Item = Planned;
    fn next(&mut self) -> Option<Planned> {
        let r = self.requests.next()?;
        Some(Planned {
            intended_us: r.intended_us,
            body: r.body,
            event_offsets_us: EventOffsets {
                all: Arc::clone(&self.offsets),
                start: r.start,
                end: r.end,
            },
        })
    }
}

enum Msg {
    Dropped {
        intended_us: u64,
        events: u64,
        /// Dropped for the generator's lag (nothing waited for a connection when it was
        /// due), rather than for the target's in-flight limit (every connection was busy
        /// when it was due, or the scheduler was held waiting for one).
        schedule_lag: bool,
    },
    Sent {
        sent_us: u64,
        events: u64,
        lag_us: u64,
    },
    /// A finished request (by value: no allocation per request for the bookkeeping).
    Done(Done),
}

struct Done {
    intended_us: u64,
    sent_us: u64,
    done_us: u64,
    event_offsets_us: EventOffsets,
    outcome: Result<(u16, Bytes), &'static str>,
}

#[derive(Default)]
struct Live {
    sent_events: AtomicU64,
    ok_events: AtomicU64,
    non_2xx: AtomicU64,
    errors: AtomicU64,
    dropped_events: AtomicU64,
    finished: std::sync::atomic::AtomicBool,
}

/// Runs `scenario` against `opts.target` and returns the report (thresholds evaluated).
///
/// Must be called inside a multi-threaded tokio runtime.
///
/// # Errors
/// [`RunError::Target`] for a bad URL, [`RunError::Scenario`] when a trace fails to load,
/// [`RunError::Internal`] if the generator thread fails. HTTP failures are not errors: they
/// are counted in the report.
pub async fn run(scenario: &Scenario, opts: &RunOptions) -> Result<Report, RunError> {
    let seed = opts.seed.unwrap_or(scenario.seed);
    let url = target_url(&opts.target, scenario.endpoint.path())?;
    // Parsed once: each request clones it (shared bytes) instead of parsing the string.
    let uri: hyper::Uri = url
        .parse()
        .map_err(|e: http::uri::InvalidUri| RunError::Target {
            url: url.clone(),
            message: e.to_string(),
        })?;
    let stream = scenario
        .events(seed)?
        .segment(opts.segment.unwrap_or(Segment::WHOLE));
    let duration_ms = stream.total_duration_ms();
    let phases: Vec<PhaseInfo> = stream
        .phase_bounds_ms()
        .into_iter()
        .enumerate()
        .map(|(i, (start_ms, end_ms))| PhaseInfo {
            name: scenario
                .phases
                .get(i)
                .and_then(|p| p.name.clone())
                .unwrap_or_else(|| format!("phase-{i}")),
            start_ms,
            end_ms,
        })
        .collect();
    let settings = scenario.run.clone();
    let max_in_flight = opts.max_in_flight.unwrap_or(settings.max_in_flight).max(1);

    // Generator thread: events -> request bodies, ahead of time.
    let (plan_tx, mut plan_rx) = mpsc::channel::<PlanBatch>(PLAN_QUEUE_BATCHES);
    let api_key = opts.api_key.clone();
    let max_body = scenario.endpoint.max_body_bytes();
    let batch_size = settings.batch_size;
    let wait_us = settings.max_batch_wait.ms() * 1_000;
    let producer = std::thread::Builder::new()
        .name("loadgen-generator".into())
        .spawn(move || plan_requests(stream, &api_key, batch_size, wait_us, max_body, &plan_tx))
        .map_err(|e| RunError::Internal(format!("cannot start generator thread: {e}")))?;

    let target = Target {
        addr: target_addr(&uri),
        // The URL's path (a base path included) in origin form.
        path: uri
            .path_and_query()
            .cloned()
            .map_or_else(|| hyper::Uri::from_static("/"), hyper::Uri::from),
        host: match scenario.region {
            Region::Eu => hyper::header::HeaderValue::from_static(Region::Eu.host()),
            Region::Us => authority_header(&uri, &url)?,
        },
    };
    let (msg_tx, msg_rx) = mpsc::unbounded_channel::<Msg>();
    let live = Arc::new(Live::default());
    let collector = tokio::spawn(collect(msg_rx, Arc::clone(&live), Aggregate::new()?));
    let wall_ms = || {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_millis() as i64)
    };
    // A common wall-clock start for the segments of one run (the generator thread fills
    // the plan channel meanwhile). A time already past starts now.
    if let Some(at) = opts.start_at_ms {
        let wait = at.saturating_sub(wall_ms());
        if wait > 0 {
            tokio::time::sleep(Duration::from_millis(wait.unsigned_abs())).await;
        }
    }
    let started_at_ms = wall_ms();
    let start = Instant::now();
    let progress = spawn_progress(opts.progress.clone(), start, duration_ms, Arc::clone(&live));

    let max_lag = Duration::from_millis(settings.max_lag.ms());
    let timeout = Duration::from_millis(settings.request_timeout.ms());
    let slots = Slots::<Pending>::new(target, max_in_flight, timeout);
    let mut offered = Volume::default();
    let mut offered_series: BTreeMap<u64, u64> = BTreeMap::new();
    // Until when the scheduler was held waiting for a free connection: a request due before
    // then was delayed by the target's in-flight limit, not by the generator.
    let mut held_for_connection_until: Option<Instant> = None;
    while let Some(batch) = plan_rx.recv().await {
        for p in batch {
            let events = p.event_offsets_us.len() as u64;
            offered.requests += 1;
            offered.events += events;
            for o in p.event_offsets_us.iter() {
                *offered_series.entry(o / 1_000_000).or_default() += 1;
            }
            let due = start + Duration::from_micros(p.intended_us);
            // A request already due skips the timer (no timer entry registered and fired).
            if due > Instant::now() {
                tokio::time::sleep_until(due).await;
            }
            let mut waited_for_connection = false;
            let slot = match slots.try_acquire() {
                Some(slot) => Some(slot),
                None => {
                    waited_for_connection = true;
                    let budget =
                        max_lag.saturating_sub(Instant::now().saturating_duration_since(due));
                    let got = slots.acquire_within(budget).await;
                    held_for_connection_until = Some(Instant::now());
                    got
                }
            };
            let now = Instant::now();
            let lag = now.saturating_duration_since(due);
            let Some(slot) = slot.filter(|_| lag <= max_lag) else {
                let target_held_it =
                    waited_for_connection || held_for_connection_until.is_some_and(|t| due <= t);
                let _ = msg_tx.send(Msg::Dropped {
                    intended_us: p.intended_us,
                    events,
                    schedule_lag: !target_held_it,
                });
                continue;
            };
            let sent_us = micros(now, start);
            let _ = msg_tx.send(Msg::Sent {
                sent_us,
                events,
                lag_us: lag.as_micros() as u64,
            });
            slots.send(
                slot,
                p.body,
                Pending {
                    tx: msg_tx.clone(),
                    start,
                    intended_us: p.intended_us,
                    sent_us,
                    event_offsets_us: p.event_offsets_us,
                },
            );
        }
    }
    // Wait for every in-flight request.
    slots.finish().await;
    let elapsed_ms = start.elapsed().as_secs_f64() * 1_000.0;
    drop(msg_tx);
    live.finished.store(true, Ordering::Relaxed);
    if let Some(p) = progress {
        let _ = p.await;
    }
    let produced = producer
        .join()
        .map_err(|_| RunError::Internal("generator thread panicked".into()))?;
    produced?;
    let mut agg = collector
        .await
        .map_err(|e| RunError::Internal(format!("collector failed: {e}")))?;

    let duration_s = duration_ms as f64 / 1_000.0;
    let offered_rate = if duration_s > 0.0 {
        offered.events as f64 / duration_s
    } else {
        0.0
    };
    // The sending window is the schedule, stretched by how late the last request went out
    // (a generator that falls behind finishes late and so achieves a lower rate).
    let window_s = duration_s + agg.last_lag_us as f64 / 1e6;
    let achieved_rate = if window_s > 0.0 {
        agg.sent.events as f64 / window_s
    } else {
        0.0
    };
    let achieved_rate_error = if offered_rate > 0.0 {
        (achieved_rate - offered_rate).abs() / offered_rate
    } else {
        0.0
    };
    for (s, n) in offered_series {
        agg.bucket(s).offered_events += n;
    }
    let series = agg.series()?;
    let latency_histograms = LatencyHistograms {
        corrected: encode(&agg.corrected).map_err(RunError::Render)?,
        uncorrected: encode(&agg.uncorrected).map_err(RunError::Render)?,
        delivery: encode(&agg.delivery).map_err(RunError::Render)?,
        schedule_lag: encode(&agg.lag).map_err(RunError::Render)?,
    };
    let mut report = Report {
        schema_version: REPORT_SCHEMA_VERSION,
        tool: format!("amplitude-loadgen {}", env!("CARGO_PKG_VERSION")),
        scenario: ScenarioInfo {
            name: scenario.name.clone(),
            source: scenario.source.display().to_string(),
            seed,
            endpoint: scenario.endpoint.as_str().into(),
            region: scenario.region.as_str().into(),
            duration_ms,
            phases,
            batch_size: batch_size as u64,
            max_in_flight: max_in_flight as u64,
        },
        segment: opts.segment,
        merged_segments: None,
        target: url,
        started_at_ms,
        elapsed_ms,
        offered,
        sent: agg.sent,
        dropped: agg.dropped,
        offered_rate_eps: offered_rate,
        achieved_rate_eps: achieved_rate,
        sending_window_ms: window_s * 1_000.0,
        achieved_rate_error,
        status_counts: agg
            .status
            .iter()
            .map(|(k, v)| (k.to_string(), *v))
            .collect(),
        events_2xx: agg.events_2xx,
        transport_errors: agg
            .errors
            .iter()
            .map(|(k, v)| ((*k).to_owned(), *v))
            .collect(),
        throttled: agg.throttled.clone(),
        latency_ms: Latencies {
            corrected: LatencySummary::from_us(&agg.corrected),
            uncorrected: LatencySummary::from_us(&agg.uncorrected),
            delivery: LatencySummary::from_us(&agg.delivery),
            schedule_lag: LatencySummary::from_us(&agg.lag),
        },
        latency_histograms: Some(latency_histograms),
        series,
        thresholds: Vec::new(),
        passed: true,
        load: LoadCheck::default(),
    };
    report.evaluate(&scenario.thresholds);
    report.load = LoadCheck::assess(
        report.offered_rate_eps,
        report.achieved_rate_eps,
        agg.dropped_for_lag,
        agg.dropped_in_flight,
        report.latency_ms.schedule_lag.max,
        settings.rate_tolerance,
        scenario
            .thresholds
            .iter()
            .any(|(name, _)| LOAD_METRICS.contains(&name.as_str())),
    );
    Ok(report)
}

fn micros(t: Instant, start: Instant) -> u64 {
    t.saturating_duration_since(start).as_micros() as u64
}

/// `base` + `path`, checked to be an `http://host[:port]` URL.
fn target_url(base: &str, path: &str) -> Result<String, RunError> {
    let bad = |m: &str| RunError::Target {
        url: base.to_owned(),
        message: m.to_owned(),
    };
    let uri: http::Uri = base.parse().map_err(|_| bad("not a URL"))?;
    match uri.scheme_str() {
        Some("http") => {}
        Some("https") => return Err(bad("https is not supported; use the mock's http listener")),
        _ => return Err(bad("expected http://HOST:PORT")),
    }
    if uri.authority().is_none() {
        return Err(bad("missing host"));
    }
    Ok(format!("{}{}", base.trim_end_matches('/'), path))
}

/// `host:port` of an `http://` URL (port 80 when it names none).
fn target_addr(uri: &hyper::Uri) -> String {
    let host = uri.host().unwrap_or("127.0.0.1");
    format!("{host}:{}", uri.port_u16().unwrap_or(80))
}

/// The `Host` header of an `http://` URL: its authority.
fn authority_header(uri: &hyper::Uri, url: &str) -> Result<hyper::header::HeaderValue, RunError> {
    let authority = uri.authority().map_or("", |a| a.as_str());
    hyper::header::HeaderValue::from_str(authority).map_err(|e| RunError::Target {
        url: url.to_owned(),
        message: e.to_string(),
    })
}

/// A request on its slot: what the collector needs once the answer is in.
struct Pending {
    tx: mpsc::UnboundedSender<Msg>,
    start: Instant,
    intended_us: u64,
    sent_us: u64,
    event_offsets_us: EventOffsets,
}

impl OnAnswer for Pending {
    fn answered(self, outcome: crate::connection::Answer) {
        let done_us = micros(Instant::now(), self.start);
        let _ = self.tx.send(Msg::Done(Done {
            intended_us: self.intended_us,
            sent_us: self.sent_us,
            done_us,
            event_offsets_us: self.event_offsets_us,
            outcome,
        }));
    }
}

/// Turns the event stream into requests; runs on its own thread.
fn plan_requests(
    mut stream: EventStream,
    api_key: &str,
    batch_size: usize,
    wait_us: u64,
    max_body: usize,
    tx: &mpsc::Sender<PlanBatch>,
) -> Result<(), RunError> {
    let prefix = format!(
        "{{\"api_key\":{},\"events\":[",
        serde_json::to_string(api_key).map_err(|e| RunError::Internal(e.to_string()))?
    );
    let suffix = "]}";
    // One body buffer and one event buffer for the whole run: each request's body is copied
    // out once, at its final size (no growth reallocations, no per-event Vec). Events are
    // written straight into the event buffer as JSON (`EventStream::next_into`).
    let mut body = Vec::<u8>::with_capacity(64 * 1024);
    let mut json = Vec::<u8>::with_capacity(1024);
    // Planned requests go to the scheduler PLAN_BATCH at a time (one channel hand-off per
    // batch, not per request); the generator runs ahead of the schedule, so this delays
    // nothing that is due. The offsets of the batch's events go into one buffer, the open
    // request's are its tail from `first_offset`.
    let mut batch = Planner {
        offsets: Vec::with_capacity(PLAN_BATCH * batch_size.min(64)),
        requests: Vec::with_capacity(PLAN_BATCH),
        first_offset: 0,
    };
    let flush = |body: &mut Vec<u8>, batch: &mut Planner, intended_us: u64| -> bool {
        if batch.open().is_empty() {
            return true;
        }
        body.extend_from_slice(suffix.as_bytes());
        batch.requests.push(PlannedRequest {
            intended_us,
            body: Bytes::copy_from_slice(body),
            start: batch.first_offset,
            end: batch.offsets.len(),
        });
        batch.first_offset = batch.offsets.len();
        body.clear();
        if batch.requests.len() < PLAN_BATCH {
            return true;
        }
        tx.blocking_send(batch.take()).is_ok()
    };
    loop {
        json.clear();
        let Some(ev) = stream
            .next_into(&mut json)
            .map_err(|e| RunError::Internal(e.to_string()))?
        else {
            break;
        };
        if let Some(first) = batch.open().first().copied() {
            if ev.offset_us > first + wait_us {
                if !flush(&mut body, &mut batch, first + wait_us) {
                    return Ok(());
                }
            } else if body.len() + json.len() + 1 + suffix.len() > max_body {
                let last = batch.open().last().copied().unwrap_or(first);
                if !flush(&mut body, &mut batch, last) {
                    return Ok(());
                }
            }
        }
        if batch.open().is_empty() {
            body.extend_from_slice(prefix.as_bytes());
        } else {
            body.push(b',');
        }
        body.extend_from_slice(&json);
        batch.offsets.push(ev.offset_us);
        if batch.open().len() >= batch_size && !flush(&mut body, &mut batch, ev.offset_us) {
            return Ok(());
        }
    }
    if let Some(first) = batch.open().first().copied() {
        let _ = flush(&mut body, &mut batch, first + wait_us);
    }
    if !batch.requests.is_empty() {
        let _ = tx.blocking_send(batch.take());
    }
    Ok(())
}

/// The hand-off being filled by [`plan_requests`].
struct Planner {
    /// Offsets of the events of the batch's requests, then of the open request, µs.
    offsets: Vec<u64>,
    requests: Vec<PlannedRequest>,
    /// Where the open request's offsets start in `offsets`.
    first_offset: usize,
}

impl Planner {
    /// Offsets of the events of the request being filled, µs.
    fn open(&self) -> &[u64] {
        self.offsets.get(self.first_offset..).unwrap_or_default()
    }

    /// The closed requests as one hand-off (the open request, if any, stays, moved to the
    /// start of the buffer). One allocation for the shared offsets, one for the next
    /// batch's request list.
    fn take(&mut self) -> PlanBatch {
        let closed = self.offsets.get(..self.first_offset).unwrap_or_default();
        let offsets: Arc<[u64]> = Arc::from(closed);
        self.offsets.drain(..self.first_offset);
        self.first_offset = 0;
        PlanBatch {
            offsets,
            requests: std::mem::replace(&mut self.requests, Vec::with_capacity(PLAN_BATCH)),
        }
    }
}

#[derive(Default)]
struct Bucket {
    sent_events: u64,
    dropped_events: u64,
    ok_events: u64,
    offered_events: u64,
    responses: BTreeMap<u16, u64>,
    errors: u64,
    corrected: Option<Histogram<u64>>,
    uncorrected: Option<Histogram<u64>>,
}

struct Aggregate {
    sent: Volume,
    dropped: Volume,
    dropped_for_lag: Volume,
    dropped_in_flight: Volume,
    last_sent_us: u64,
    last_lag_us: u64,
    status: BTreeMap<u16, u64>,
    events_2xx: u64,
    errors: BTreeMap<&'static str, u64>,
    throttled: Throttled,
    corrected: Histogram<u64>,
    uncorrected: Histogram<u64>,
    delivery: Histogram<u64>,
    lag: Histogram<u64>,
    buckets: Vec<Bucket>,
}

/// Most distinct throttled identities kept in the report.
const MAX_THROTTLED_IDS: usize = 10_000;

fn hist(sigfig: u8) -> Result<Histogram<u64>, RunError> {
    Histogram::new(sigfig).map_err(|e| RunError::Internal(format!("histogram: {e:?}")))
}

/// Records `v` into an auto-resizing histogram (`saturating_record` would clamp instead of
/// resizing, hiding exactly the outliers this tool exists to show).
fn rec(h: &mut Histogram<u64>, v: u64) {
    if h.record(v).is_err() {
        h.saturating_record(v);
    }
}

fn record(h: &mut Option<Histogram<u64>>, v: u64) {
    if h.is_none() {
        *h = Histogram::new(2).ok();
    }
    if let Some(h) = h.as_mut() {
        rec(h, v);
    }
}

impl Aggregate {
    fn new() -> Result<Self, RunError> {
        Ok(Self {
            sent: Volume::default(),
            dropped: Volume::default(),
            dropped_for_lag: Volume::default(),
            dropped_in_flight: Volume::default(),
            last_sent_us: 0,
            last_lag_us: 0,
            status: BTreeMap::new(),
            events_2xx: 0,
            errors: BTreeMap::new(),
            throttled: Throttled::default(),
            corrected: hist(3)?,
            uncorrected: hist(3)?,
            delivery: hist(3)?,
            lag: hist(3)?,
            buckets: Vec::new(),
        })
    }

    fn bucket(&mut self, second: u64) -> &mut Bucket {
        let i = second as usize;
        if self.buckets.len() <= i {
            self.buckets.resize_with(i + 1, Bucket::default);
        }
        &mut self.buckets[i]
    }

    fn series(&self) -> Result<Vec<SeriesPoint>, RunError> {
        let q = |h: &Option<Histogram<u64>>, p: f64| {
            h.as_ref()
                .filter(|h| !h.is_empty())
                .map(|h| h.value_at_quantile(p) as f64 / 1_000.0)
        };
        self.buckets
            .iter()
            .enumerate()
            .map(|(i, b)| {
                let latency_histograms = match (&b.corrected, &b.uncorrected) {
                    (Some(c), Some(u)) => Some(SeriesHistograms {
                        corrected: encode(c).map_err(RunError::Render)?,
                        uncorrected: encode(u).map_err(RunError::Render)?,
                    }),
                    _ => None,
                };
                Ok(SeriesPoint {
                    t_s: i as u64,
                    offered_events: b.offered_events,
                    sent_events: b.sent_events,
                    dropped_events: b.dropped_events,
                    ok_events: b.ok_events,
                    responses: b
                        .responses
                        .iter()
                        .map(|(k, v)| (k.to_string(), *v))
                        .collect(),
                    transport_errors: b.errors,
                    latency_p50_ms: q(&b.corrected, 0.5),
                    latency_p99_ms: q(&b.corrected, 0.99),
                    latency_p99_uncorrected_ms: q(&b.uncorrected, 0.99),
                    latency_histograms,
                })
            })
            .collect()
    }

    fn done(&mut self, d: Done) {
        let corrected = d.done_us.saturating_sub(d.intended_us);
        let uncorrected = d.done_us.saturating_sub(d.sent_us);
        rec(&mut self.corrected, corrected);
        rec(&mut self.uncorrected, uncorrected);
        let b = self.bucket(d.intended_us / 1_000_000);
        record(&mut b.corrected, corrected);
        record(&mut b.uncorrected, uncorrected);
        let events = d.event_offsets_us.len() as u64;
        let done_s = d.done_us / 1_000_000;
        match d.outcome {
            Ok((status, body)) => {
                *self.status.entry(status).or_default() += 1;
                *self.bucket(done_s).responses.entry(status).or_default() += 1;
                if (200..300).contains(&status) {
                    self.events_2xx += events;
                    self.bucket(done_s).ok_events += events;
                    for o in d.event_offsets_us.iter() {
                        rec(&mut self.delivery, d.done_us.saturating_sub(*o));
                    }
                } else if status == 429 {
                    self.throttled.responses += 1;
                    if let Ok(rb) = serde_json::from_slice::<ResponseBody>(&body) {
                        self.throttled.events +=
                            rb.throttled_events.as_ref().map_or(0, |v| v.len() as u64);
                        for (map, out) in [
                            (&rb.throttled_devices, &mut self.throttled.devices),
                            (&rb.throttled_users, &mut self.throttled.users),
                        ] {
                            for id in map.iter().flat_map(|m| m.keys()) {
                                if out.len() < MAX_THROTTLED_IDS || out.contains_key(id) {
                                    *out.entry(id.clone()).or_default() += 1;
                                }
                            }
                        }
                    }
                }
            }
            Err(kind) => {
                *self.errors.entry(kind).or_default() += 1;
                self.bucket(done_s).errors += 1;
            }
        }
    }
}

async fn collect(
    mut rx: mpsc::UnboundedReceiver<Msg>,
    live: Arc<Live>,
    mut agg: Aggregate,
) -> Aggregate {
    while let Some(m) = rx.recv().await {
        match m {
            Msg::Dropped {
                intended_us,
                events,
                schedule_lag,
            } => {
                agg.dropped.requests += 1;
                agg.dropped.events += events;
                let cause = if schedule_lag {
                    &mut agg.dropped_for_lag
                } else {
                    &mut agg.dropped_in_flight
                };
                cause.requests += 1;
                cause.events += events;
                agg.bucket(intended_us / 1_000_000).dropped_events += events;
                live.dropped_events.fetch_add(events, Ordering::Relaxed);
            }
            Msg::Sent {
                sent_us,
                events,
                lag_us,
            } => {
                agg.sent.requests += 1;
                agg.sent.events += events;
                if sent_us >= agg.last_sent_us {
                    agg.last_sent_us = sent_us;
                    agg.last_lag_us = lag_us;
                }
                rec(&mut agg.lag, lag_us);
                agg.bucket(sent_us / 1_000_000).sent_events += events;
                live.sent_events.fetch_add(events, Ordering::Relaxed);
            }
            Msg::Done(d) => {
                match &d.outcome {
                    Ok((s, _)) if (200..300).contains(s) => {
                        live.ok_events
                            .fetch_add(d.event_offsets_us.len() as u64, Ordering::Relaxed);
                    }
                    Ok(_) => {
                        live.non_2xx.fetch_add(1, Ordering::Relaxed);
                    }
                    Err(_) => {
                        live.errors.fetch_add(1, Ordering::Relaxed);
                    }
                }
                agg.done(d);
            }
        }
    }
    agg
}

fn spawn_progress(
    report: Option<ProgressFn>,
    start: Instant,
    duration_ms: u64,
    live: Arc<Live>,
) -> Option<tokio::task::JoinHandle<()>> {
    let report = report?;
    Some(tokio::spawn(async move {
        let snapshot = |finished: bool| Progress {
            elapsed: start.elapsed(),
            duration_ms,
            sent_events: live.sent_events.load(Ordering::Relaxed),
            ok_events: live.ok_events.load(Ordering::Relaxed),
            non_2xx_requests: live.non_2xx.load(Ordering::Relaxed),
            errors: live.errors.load(Ordering::Relaxed),
            dropped_events: live.dropped_events.load(Ordering::Relaxed),
            finished,
        };
        while !live.finished.load(Ordering::Relaxed) {
            tokio::time::sleep(Duration::from_millis(100)).await;
            report(&snapshot(false));
        }
        report(&snapshot(true));
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn plan(wait: &str, batch: usize) -> Vec<(u64, Vec<u64>, amplitude_wire::UploadRequest)> {
        let sc = Scenario::from_toml_str(
            &format!("duration = \"1s\"\narrival = {{ kind = \"constant\", rate = 10.0 }}\n[run]\nbatch_size = {batch}\nmax_batch_wait = \"{wait}\"\n"),
            "p.toml",
        )
        .unwrap();
        let (tx, mut rx) = mpsc::channel(100);
        plan_requests(
            sc.events(1).unwrap(),
            "KEY",
            sc.run.batch_size,
            sc.run.max_batch_wait.ms() * 1_000,
            1_000_000,
            &tx,
        )
        .unwrap();
        drop(tx);
        let mut out = Vec::new();
        while let Ok(batch) = rx.try_recv() {
            for p in batch {
                let req: amplitude_wire::UploadRequest = serde_json::from_slice(&p.body).unwrap();
                out.push((
                    p.intended_us / 1_000,
                    p.event_offsets_us.iter().map(|o| o / 1_000).collect(),
                    req,
                ));
            }
        }
        out
    }

    #[test]
    fn batches_close_when_full_or_when_the_first_event_waited_long_enough() {
        // Arrivals at 50, 150, ..., 950 ms.
        let full = plan("250ms", 3);
        let shape: Vec<(u64, Vec<u64>)> = full.iter().map(|(t, o, _)| (*t, o.clone())).collect();
        assert_eq!(
            shape,
            vec![
                (250, vec![50, 150, 250]),
                (550, vec![350, 450, 550]),
                (850, vec![650, 750, 850]),
                (1_200, vec![950])
            ]
        );
        let timed = plan("150ms", 10);
        let shape: Vec<(u64, Vec<u64>)> = timed.iter().map(|(t, o, _)| (*t, o.clone())).collect();
        assert_eq!(
            shape,
            vec![
                (200, vec![50, 150]),
                (400, vec![250, 350]),
                (600, vec![450, 550]),
                (800, vec![650, 750]),
                (1_000, vec![850, 950])
            ]
        );
        // Bodies are upload requests with the key and the events in order.
        let req = &timed[1].2;
        assert_eq!(req.api_key.as_deref(), Some("KEY"));
        let seqs: Vec<u64> = req
            .events
            .as_ref()
            .unwrap()
            .iter()
            .map(|e| {
                e.event_properties.as_ref().unwrap()["conformance_seq"]
                    .as_u64()
                    .unwrap()
            })
            .collect();
        assert_eq!(seqs, vec![2, 3]);
    }

    #[test]
    fn offsets_stay_exact_across_many_hand_offs() {
        // 1,000 events, 3 per request: 334 requests over 6 hand-offs sharing offset
        // buffers. Each request's offsets are its events' intended times, in stream order,
        // and its body holds exactly those events.
        let sc = Scenario::from_toml_str(
            "duration = \"1s\"\narrival = { kind = \"poisson\", rate = 1000.0 }\n[dirty]\nresend = 0.1\nshort_id = 0.05\n[run]\nbatch_size = 3\nmax_batch_wait = \"10s\"\n",
            "p.toml",
        )
        .unwrap();
        let want: Vec<u64> = sc.events(3).unwrap().map(|e| e.offset_us).collect();
        let json: Vec<String> = sc
            .events(3)
            .unwrap()
            .map(|e| e.to_json().unwrap())
            .collect();
        let (tx, mut rx) = mpsc::channel(100);
        plan_requests(sc.events(3).unwrap(), "KEY", 3, 10_000_000, 1_000_000, &tx).unwrap();
        drop(tx);
        let (mut got, mut bodies, mut hand_offs) = (Vec::new(), Vec::new(), 0);
        while let Ok(batch) = rx.try_recv() {
            hand_offs += 1;
            for p in batch {
                assert!(!p.event_offsets_us.is_empty() && p.event_offsets_us.len() <= 3);
                // Full: due at its last event; the last, partial one: its first plus the wait.
                let (first, last) = (p.event_offsets_us[0], *p.event_offsets_us.last().unwrap());
                assert!(p.intended_us == last || p.intended_us == first + 10_000_000);
                let v: serde_json::Value = serde_json::from_slice(&p.body).unwrap();
                let n = v["events"].as_array().unwrap().len();
                assert_eq!(n, p.event_offsets_us.len());
                got.extend_from_slice(&p.event_offsets_us);
                bodies.push(p.body);
            }
        }
        assert!(
            want.len() > 900 && hand_offs >= 5,
            "{} {hand_offs}",
            want.len()
        );
        assert_eq!(got, want);
        // The bodies are the iterator's JSON, three events at a time.
        let expected: Vec<String> = json
            .chunks(3)
            .map(|c| format!("{{\"api_key\":\"KEY\",\"events\":[{}]}}", c.join(",")))
            .collect();
        let bodies: Vec<String> = bodies
            .iter()
            .map(|b| String::from_utf8(b.to_vec()).unwrap())
            .collect();
        assert_eq!(bodies, expected);
    }

    #[test]
    fn target_urls_are_checked() {
        assert_eq!(
            target_url("http://127.0.0.1:8080/", "/batch").unwrap(),
            "http://127.0.0.1:8080/batch"
        );
        assert!(matches!(
            target_url("127.0.0.1:8080", "/batch"),
            Err(RunError::Target { .. })
        ));
        assert!(matches!(
            target_url("https://x", "/batch"),
            Err(RunError::Target { .. })
        ));
    }
}
