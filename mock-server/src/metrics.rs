//! `GET /metrics`: Prometheus text exposition format 0.0.4. Request counters and the latency
//! histogram are recorded here with relaxed atomics (no lock, no allocation per request);
//! everything else (events by outcome, faults, dedup store size, ...) is read from the
//! ledger and the rule stores when scraped, so the two views never disagree.

use crate::state::MockState;
use std::fmt::Write as _;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering::Relaxed};
use std::time::Duration;

/// Route label of a request (bounded set: unknown paths are `other`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Route {
    /// `/2/httpapi`.
    HttpV2,
    /// `/batch`.
    Batch,
    /// `/identify`.
    Identify,
    /// `/groupidentify`.
    GroupIdentify,
    /// `/attribution`.
    Attribution,
    /// `/__mock/...`.
    Admin,
    /// `/metrics`.
    Metrics,
    /// Anything else (answered 400 `invalid path`), and CORS preflights.
    Other,
}

const ROUTES: [Route; 8] = [
    Route::HttpV2,
    Route::Batch,
    Route::Identify,
    Route::GroupIdentify,
    Route::Attribution,
    Route::Admin,
    Route::Metrics,
    Route::Other,
];

impl Route {
    /// The route of `path`.
    pub fn of(path: &str) -> Self {
        match path {
            "/2/httpapi" => Self::HttpV2,
            "/batch" => Self::Batch,
            "/identify" => Self::Identify,
            "/groupidentify" => Self::GroupIdentify,
            "/attribution" => Self::Attribution,
            "/metrics" => Self::Metrics,
            p if p == "/__mock" || p.starts_with("/__mock/") => Self::Admin,
            _ => Self::Other,
        }
    }

    /// The label value.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::HttpV2 => "/2/httpapi",
            Self::Batch => "/batch",
            Self::Identify => "/identify",
            Self::GroupIdentify => "/groupidentify",
            Self::Attribution => "/attribution",
            Self::Admin => "/__mock",
            Self::Metrics => "/metrics",
            Self::Other => "other",
        }
    }

    fn index(self) -> usize {
        self as usize
    }
}

/// Upper bounds of the latency histogram's buckets, µs (0.5 ms .. 10 s, then +Inf).
const BUCKETS_US: [u64; 14] = [
    500, 1_000, 2_500, 5_000, 10_000, 25_000, 50_000, 100_000, 250_000, 500_000, 1_000_000,
    2_500_000, 5_000_000, 10_000_000,
];
const STATUSES: usize = 600;

/// Request counters, latency histogram and connection gauges.
pub struct Metrics {
    /// `[route][status]`, status 0 = cut without a response.
    requests: Box<[AtomicU64]>,
    /// `[route][bucket]` (non-cumulative; the last is +Inf).
    latency: Box<[AtomicU64]>,
    latency_sum_us: [AtomicU64; 8],
    throttled_identities: AtomicU64,
    connections_open: AtomicI64,
    connections_total: AtomicU64,
    body_timeouts: AtomicU64,
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Metrics").finish_non_exhaustive()
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    /// Zeroed metrics (about 40 KiB of counters).
    pub fn new() -> Self {
        Self {
            requests: (0..ROUTES.len() * STATUSES)
                .map(|_| AtomicU64::new(0))
                .collect(),
            latency: (0..ROUTES.len() * (BUCKETS_US.len() + 1))
                .map(|_| AtomicU64::new(0))
                .collect(),
            latency_sum_us: std::array::from_fn(|_| AtomicU64::new(0)),
            throttled_identities: AtomicU64::new(0),
            connections_open: AtomicI64::new(0),
            connections_total: AtomicU64::new(0),
            body_timeouts: AtomicU64::new(0),
        }
    }

    /// Records one request: its route, the status answered (0 = no complete response,
    /// rendered `status="cut"`) and the time from the
    /// request head to the response head.
    pub fn record_request(&self, route: Route, status: u16, elapsed: Duration) {
        let r = route.index();
        let s = usize::from(status).min(STATUSES - 1);
        if let Some(c) = self.requests.get(r * STATUSES + s) {
            c.fetch_add(1, Relaxed);
        }
        let us = u64::try_from(elapsed.as_micros()).unwrap_or(u64::MAX);
        let b = BUCKETS_US
            .iter()
            .position(|ub| us <= *ub)
            .unwrap_or(BUCKETS_US.len());
        if let Some(c) = self.latency.get(r * (BUCKETS_US.len() + 1) + b) {
            c.fetch_add(1, Relaxed);
        }
        if let Some(c) = self.latency_sum_us.get(r) {
            c.fetch_add(us, Relaxed);
        }
    }

    /// Counts identities listed in a 429 body (`throttled_*`, `exceeded_daily_quota_*`,
    /// spec §5.4).
    pub fn add_throttled_identities(&self, n: u64) {
        if n > 0 {
            self.throttled_identities.fetch_add(n, Relaxed);
        }
    }

    /// A connection was accepted.
    pub fn connection_opened(&self) {
        self.connections_open.fetch_add(1, Relaxed);
        self.connections_total.fetch_add(1, Relaxed);
    }

    /// A connection ended.
    pub fn connection_closed(&self) {
        self.connections_open.fetch_sub(1, Relaxed);
    }

    /// Connections open now.
    pub fn connections_open(&self) -> i64 {
        self.connections_open.load(Relaxed)
    }

    /// A request body did not arrive within the read timeout.
    pub fn body_timeout(&self) {
        self.body_timeouts.fetch_add(1, Relaxed);
    }

    /// Requests counted for `route` and `status` so far.
    pub fn requests(&self, route: Route, status: u16) -> u64 {
        self.requests
            .get(route.index() * STATUSES + usize::from(status).min(STATUSES - 1))
            .map_or(0, |c| c.load(Relaxed))
    }

    /// Zeroes the request counters and the histogram (`POST /__mock/reset`); the connection
    /// gauges stay.
    pub fn reset(&self) {
        for c in self
            .requests
            .iter()
            .chain(self.latency.iter())
            .chain(self.latency_sum_us.iter())
        {
            c.store(0, Relaxed);
        }
        self.throttled_identities.store(0, Relaxed);
        self.body_timeouts.store(0, Relaxed);
    }
}

fn header(out: &mut String, name: &str, kind: &str, help: &str) {
    let _ = writeln!(out, "# HELP {name} {help}");
    let _ = writeln!(out, "# TYPE {name} {kind}");
}

/// Renders every metric of `state` in the Prometheus text format (version 0.0.4).
pub fn render(state: &MockState) -> String {
    let m = &state.metrics;
    let stats = state.ledger.stats();
    let mut out = String::with_capacity(8 * 1024);

    header(
        &mut out,
        "amplitude_mock_requests_total",
        "counter",
        "Requests by route and HTTP status answered (status \"cut\": no complete response).",
    );
    for route in ROUTES {
        for status in 0..STATUSES {
            let n = m
                .requests
                .get(route.index() * STATUSES + status)
                .map_or(0, |c| c.load(Relaxed));
            if n > 0 {
                let label = if status == 0 {
                    "cut".to_owned()
                } else {
                    status.to_string()
                };
                let _ = writeln!(
                    out,
                    "amplitude_mock_requests_total{{route=\"{}\",status=\"{label}\"}} {n}",
                    route.as_str()
                );
            }
        }
    }

    header(
        &mut out,
        "amplitude_mock_request_duration_seconds",
        "histogram",
        "Time from request head to response head, by route.",
    );
    for route in ROUTES {
        let base = route.index() * (BUCKETS_US.len() + 1);
        let counts: Vec<u64> = (0..=BUCKETS_US.len())
            .map(|b| m.latency.get(base + b).map_or(0, |c| c.load(Relaxed)))
            .collect();
        let total: u64 = counts.iter().sum();
        if total == 0 {
            continue;
        }
        let r = route.as_str();
        let mut cum = 0;
        for (ub, n) in BUCKETS_US.iter().zip(&counts) {
            cum += n;
            let _ = writeln!(
                out,
                "amplitude_mock_request_duration_seconds_bucket{{route=\"{r}\",le=\"{}\"}} {cum}",
                *ub as f64 / 1e6
            );
        }
        let _ = writeln!(
            out,
            "amplitude_mock_request_duration_seconds_bucket{{route=\"{r}\",le=\"+Inf\"}} {total}"
        );
        let sum = m
            .latency_sum_us
            .get(route.index())
            .map_or(0, |c| c.load(Relaxed));
        let _ = writeln!(
            out,
            "amplitude_mock_request_duration_seconds_sum{{route=\"{r}\"}} {}",
            sum as f64 / 1e6
        );
        let _ = writeln!(
            out,
            "amplitude_mock_request_duration_seconds_count{{route=\"{r}\"}} {total}"
        );
    }

    header(&mut out, "amplitude_mock_events_received_total", "counter", "Events in requests parsed far enough to count them (= stored + deduplicated + rejected, spec §6).");
    let _ = writeln!(
        out,
        "amplitude_mock_events_received_total {}",
        stats.events_received
    );
    header(
        &mut out,
        "amplitude_mock_events_total",
        "counter",
        "Events by outcome: stored, deduplicated (spec §9), rejected (spec §5).",
    );
    let _ = writeln!(
        out,
        "amplitude_mock_events_total{{outcome=\"stored\"}} {}",
        stats.events_stored
    );
    let _ = writeln!(
        out,
        "amplitude_mock_events_total{{outcome=\"deduplicated\"}} {}",
        stats.events_deduplicated
    );
    let _ = writeln!(
        out,
        "amplitude_mock_events_total{{outcome=\"rejected\"}} {}",
        stats.events_rejected.total
    );
    header(
        &mut out,
        "amplitude_mock_events_rejected_total",
        "counter",
        "Rejected events by reason.",
    );
    for (reason, n) in &stats.events_rejected.by_reason {
        let _ = writeln!(
            out,
            "amplitude_mock_events_rejected_total{{reason=\"{reason}\"}} {n}"
        );
    }

    header(
        &mut out,
        "amplitude_mock_throttled_identities_total",
        "counter",
        "Devices and users listed in 429 bodies (spec §5.4).",
    );
    let _ = writeln!(
        out,
        "amplitude_mock_throttled_identities_total {}",
        m.throttled_identities.load(Relaxed)
    );
    header(
        &mut out,
        "amplitude_mock_limiter_identities",
        "gauge",
        "Identities the EPS/daily-quota limiter holds (spec §8).",
    );
    let _ = writeln!(
        out,
        "amplitude_mock_limiter_identities {}",
        state.limiter.active_identities()
    );
    header(
        &mut out,
        "amplitude_mock_dedup_store_ids",
        "gauge",
        "insert_ids remembered by the 7-day dedup store (spec §9).",
    );
    let _ = writeln!(out, "amplitude_mock_dedup_store_ids {}", state.dedup.len());
    header(
        &mut out,
        "amplitude_mock_dedup_store_bytes",
        "gauge",
        "Heap bytes of the dedup store.",
    );
    let _ = writeln!(
        out,
        "amplitude_mock_dedup_store_bytes {}",
        state.dedup.heap_bytes()
    );

    header(
        &mut out,
        "amplitude_mock_property_updates_total",
        "counter",
        "User-property updates by outcome (dropped: over 1,800/hour, spec §8.1).",
    );
    let _ = writeln!(
        out,
        "amplitude_mock_property_updates_total{{outcome=\"applied\"}} {}",
        stats.property_updates_applied
    );
    let _ = writeln!(
        out,
        "amplitude_mock_property_updates_total{{outcome=\"dropped\"}} {}",
        stats.property_updates_dropped
    );
    let _ = writeln!(
        out,
        "amplitude_mock_property_updates_total{{outcome=\"skipped\"}} {}",
        stats.property_updates_skipped
    );

    header(
        &mut out,
        "amplitude_mock_faults_injected_total",
        "counter",
        "Injected faults by kind and whether the request's events were committed (spec §5.5).",
    );
    for (kind, c) in &stats.faults {
        let _ = writeln!(
            out,
            "amplitude_mock_faults_injected_total{{kind=\"{kind}\",committed=\"true\"}} {}",
            c.committed
        );
        let _ = writeln!(
            out,
            "amplitude_mock_faults_injected_total{{kind=\"{kind}\",committed=\"false\"}} {}",
            c.injected.saturating_sub(c.committed)
        );
    }
    header(
        &mut out,
        "amplitude_mock_faults_scheduled",
        "gauge",
        "Faults still scheduled.",
    );
    let _ = writeln!(
        out,
        "amplitude_mock_faults_scheduled {}",
        state.faults.list().len()
    );

    header(
        &mut out,
        "amplitude_mock_connections_open",
        "gauge",
        "Open client connections.",
    );
    let _ = writeln!(
        out,
        "amplitude_mock_connections_open {}",
        m.connections_open.load(Relaxed)
    );
    header(
        &mut out,
        "amplitude_mock_connections_total",
        "counter",
        "Connections accepted.",
    );
    let _ = writeln!(
        out,
        "amplitude_mock_connections_total {}",
        m.connections_total.load(Relaxed)
    );
    header(
        &mut out,
        "amplitude_mock_body_read_timeouts_total",
        "counter",
        "Request bodies that did not arrive within the read timeout (answered 408).",
    );
    let _ = writeln!(
        out,
        "amplitude_mock_body_read_timeouts_total {}",
        m.body_timeouts.load(Relaxed)
    );
    out
}

/// The `GET /metrics` response.
pub(crate) fn response(state: &MockState) -> http::Response<crate::server::ResponseBodyType> {
    let mut resp = crate::server::json_response(200, render(state).into_bytes());
    resp.headers_mut().insert(
        http::header::CONTENT_TYPE,
        http::HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8"),
    );
    resp
}
