//! The counters behind `GET /metrics` (rendered by `routes::metrics`): request counters and
//! the latency histogram, recorded with relaxed atomics (no lock, no allocation per
//! request). Everything else the route shows (events by outcome, faults, dedup store size,
//! ...) is read from the ledger and the rule stores when scraped, so the two views never
//! disagree.

use amplitude_wire::Api;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering::Relaxed};
use std::time::Duration;

/// Route label of a request (bounded set: unknown paths are `other`). The ingestion routes
/// are [`amplitude_wire::Api`]'s, one list of paths for the mock and its clients.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Route {
    /// An ingestion API: `/2/httpapi`, `/batch`, `/identify`, `/groupidentify`,
    /// `/attribution`.
    Api(Api),
    /// `/__mock/...`.
    Admin,
    /// `/metrics`.
    Metrics,
    /// Anything else (answered 400 `invalid path`), and CORS preflights.
    Other,
}

pub(crate) const ROUTES: [Route; 8] = [
    Route::Api(Api::ALL[0]),
    Route::Api(Api::ALL[1]),
    Route::Api(Api::ALL[2]),
    Route::Api(Api::ALL[3]),
    Route::Api(Api::ALL[4]),
    Route::Admin,
    Route::Metrics,
    Route::Other,
];

impl Route {
    /// The route of `path`.
    pub fn of(path: &str) -> Self {
        if let Some(api) = Api::from_path(path) {
            return Self::Api(api);
        }
        match path {
            "/metrics" => Self::Metrics,
            p if p == "/__mock" || p.starts_with("/__mock/") => Self::Admin,
            _ => Self::Other,
        }
    }

    /// The label value: the API's path, `/__mock`, `/metrics` or `other`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Api(api) => api.path(),
            Self::Admin => "/__mock",
            Self::Metrics => "/metrics",
            Self::Other => "other",
        }
    }

    /// Position in `ROUTES`.
    pub(crate) fn index(self) -> usize {
        match self {
            Self::Api(api) => api.index(),
            Self::Admin => Api::ALL.len(),
            Self::Metrics => Api::ALL.len() + 1,
            Self::Other => Api::ALL.len() + 2,
        }
    }
}

/// Upper bounds of the latency histogram's buckets, µs (0.5 ms .. 10 s, then +Inf).
pub(crate) const BUCKETS_US: [u64; 14] = [
    500, 1_000, 2_500, 5_000, 10_000, 25_000, 50_000, 100_000, 250_000, 500_000, 1_000_000,
    2_500_000, 5_000_000, 10_000_000,
];
pub(crate) const STATUSES: usize = 600;

/// Request counters, latency histogram and connection gauges.
pub struct Metrics {
    /// `[route][status]`, status 0 = cut without a response.
    pub(crate) requests: Box<[AtomicU64]>,
    /// `[route][bucket]` (non-cumulative; the last is +Inf).
    pub(crate) latency: Box<[AtomicU64]>,
    pub(crate) latency_sum_us: [AtomicU64; 8],
    pub(crate) throttled_identities: AtomicU64,
    pub(crate) connections_open: AtomicI64,
    pub(crate) connections_total: AtomicU64,
    pub(crate) body_timeouts: AtomicU64,
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

    /// A request body did not arrive within the read timeout.
    pub fn body_timeout(&self) {
        self.body_timeouts.fetch_add(1, Relaxed);
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn routes_are_indexed_in_order_and_ingest_labels_are_the_api_paths() {
        for (i, r) in ROUTES.into_iter().enumerate() {
            assert_eq!(r.index(), i);
            assert_eq!(Route::of(r.as_str()), r);
        }
        for api in Api::ALL {
            assert_eq!(Route::of(api.path()), Route::Api(api));
        }
        assert_eq!(Route::of("/__mock/events"), Route::Admin);
        assert_eq!(Route::of("/nope"), Route::Other);
    }
}
