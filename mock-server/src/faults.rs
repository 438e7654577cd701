//! Seeded fault injection (spec §5.2, §5.5, §5.6; prior art: WireMock faults, MockServer
//! chaos). A [`Fault`] says what goes wrong (a status, an HTML error page, a stall, a reset
//! connection, ...) and for which requests (a route filter, the next `count` requests, a
//! `probability` drawn from the mock's seed, a window of the mock clock).
//!
//! # Matching rule
//!
//! Faults are kept in scheduling order. For each request on an ingestion route (never
//! `/__mock/`, `/metrics` or a CORS preflight) the mock walks the list and the **first**
//! fault that is active takes the request:
//!
//! 1. a fault whose `count` is used up is gone; a `refuse` fault never takes a request (it
//!    closes the listeners for its window, see `refuse.rs`);
//! 2. its `route` (exact path, e.g. `/2/httpapi`) must equal the request's path, when set;
//! 3. the mock clock must be within `[from_ms, until_ms)`, when set;
//! 4. its `device_id` / `user_id` scope, when set: the request must be a `/2/httpapi` or
//!    `/batch` upload carrying at least one event with that `device_id` (as sent) and, when
//!    both are set, at least one event with that `user_id` (not necessarily the same event).
//!    A `throttle` fault only takes `/2/httpapi` and `/batch` requests. While a scoped fault
//!    is scheduled, every ingestion request's body is read before matching;
//! 5. a `probability` fault draws one number from the seeded generator (ChaCha8 seeded with
//!    `--seed`): it takes the request when the draw is below `probability`, otherwise the walk
//!    goes on to the next fault (a draw happens only for a request that passed 1-4);
//! 6. the fault that takes the request uses up one of its `count`.
//!
//! So one JSON array `[503 x2, committed 500, reset, 3 s delay]`, each with a `count`, plays
//! in that order on the next five requests; the same seed and the same request sequence give
//! the same pattern of probabilistic faults. A fault with neither `count` nor `probability`
//! takes every matching request (an outage, usually with a time window).
//!
//! # What a fault does to the ledger (spec §5.5, §6)
//!
//! * Uncommitted (`committed: false`, the default for `status`, `html`, `empty_400`, `reset`,
//!   `close`, `hang`): the body is read, nothing is stored; the request's events count as
//!   received and rejected with reason `fault`.
//! * `throttle`: the request runs through the pipeline with the fault's identity forced over
//!   its threshold; the pipeline's own 429 follows (nothing stored, events rejected as
//!   `throttled`, counted toward the EPS window per `count_rejected_toward_eps`).
//! * Committed (`committed: true`; always for `delay`, and for `truncate`/`dribble` without a
//!   `status`): the request runs through the normal pipeline first (stored, deduplicated,
//!   rejected as usual), then the response is replaced, held, cut or trickled.
//!
//! Every injected fault is journaled (`fault` = kind) and counted in `/__mock/stats`
//! `faults` by kind, with how many were committed (the pipeline answered 200).

use amplitude_wire::{error_text, ResponseBody};
use bytes::Bytes;
use parking_lot::Mutex;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rand_distr::Distribution;
use serde::{Deserialize, Serialize};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

/// What a fault does (the `kind` field).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FaultKind {
    /// Answer `status` with a JSON body (`{"code":N,"error":"..."}`; 403 is the WAF body of
    /// spec §5.2). `committed` (default false) stores the events first (spec §5.5: a
    /// 500/502/504 may have been committed; a 503 never is, so `committed: true` with 503 is
    /// refused, as with any 4xx, spec §6).
    Status,
    /// An HTML error page as a load balancer sends it (spec §2 "Non-JSON error bodies");
    /// `status` defaults to 502.
    Html,
    /// 400 with body `{}`.
    #[serde(rename = "empty_400")]
    Empty400,
    /// Process the request normally (events stored), then hold the response for a delay:
    /// `ms` (fixed), `min_ms`+`max_ms` (uniform) or `median_ms`+`sigma` (log-normal). Sleeps
    /// on tokio time, not the mock clock.
    Delay,
    /// Reset the connection (TCP RST, `SO_LINGER` 0) before any response.
    Reset,
    /// Close the connection (FIN) without a response.
    Close,
    /// Send the response's head and half its body, then cut the connection.
    Truncate,
    /// Trickle the response in `chunks` pieces (default 10) over `ms` milliseconds.
    Dribble,
    /// Never answer: the connection stays open until the client gives up, `ms` passes (when
    /// set), or the mock shuts down.
    Hang,
    /// Answer exactly the 429 the mock's own EPS limiter builds for this request, as if the
    /// fault's `device_id` / `user_id` were over its threshold: `eps_threshold`,
    /// `throttled_devices` / `throttled_users` `{id: events/s}` and `throttled_events` = the
    /// indexes of this request's events of that identity. Only `/2/httpapi` and `/batch`
    /// requests carrying such events; the pipeline runs (a 400 for invalid events still
    /// wins), nothing is stored, the events count as `throttled`.
    Throttle,
    /// Connection refused: during `[from_ms, until_ms)` of the mock clock every listener is
    /// closed (the kernel answers `ECONNREFUSED`), then reopened on the same address. Takes
    /// no request; `until_ms` is required; `count`, `probability`, `route`, `device_id` and
    /// `user_id` are refused.
    Refuse,
}

impl FaultKind {
    /// The snake_case name (stats keys, the journal's `fault`).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Status => "status",
            Self::Html => "html",
            Self::Empty400 => "empty_400",
            Self::Delay => "delay",
            Self::Reset => "reset",
            Self::Close => "close",
            Self::Truncate => "truncate",
            Self::Dribble => "dribble",
            Self::Hang => "hang",
            Self::Throttle => "throttle",
            Self::Refuse => "refuse",
        }
    }
}

/// One fault, as `POST /__mock/faults`, the config file's `[[faults]]` and
/// [`crate::MockServerBuilder::fault`] take it. JSON examples (spec §5.2, §5.5):
///
/// ```json
/// {"kind":"status","status":503,"count":3}
/// {"kind":"status","status":500,"committed":true,"count":1}
/// {"kind":"html","status":502,"count":1}
/// {"kind":"delay","ms":2500,"count":1}
/// {"kind":"delay","median_ms":200,"sigma":0.5,"probability":0.1,"route":"/batch"}
/// {"kind":"dribble","ms":3000,"chunks":10,"count":1}
/// {"kind":"reset","probability":0.05,"from_ms":1700000000000,"until_ms":1700000060000}
/// {"kind":"status","status":503,"device_id":"D","count":2}
/// {"kind":"throttle","device_id":"D","from_ms":1700000002000,"until_ms":1700000022000}
/// {"kind":"refuse","until_ms":1700000005000}
/// ```
///
/// Fields that do not apply to the kind are refused ([`Fault::validate`]).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Fault {
    /// What happens.
    pub kind: FaultKind,
    /// HTTP status (`status`: required; `html`: default 502; `truncate`/`dribble`: answer
    /// this status instead of the pipeline's response).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<u16>,
    /// Store the request's events before answering (spec §5.5). Defaults: false, except
    /// `delay` and `truncate`/`dribble` without `status` (always the pipeline).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub committed: Option<bool>,
    /// Response body replacing the default one (`status`, `html`), UTF-8.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub body: Option<String>,
    /// Milliseconds: the fixed delay (`delay`), the trickle duration (`dribble`), the most a
    /// `hang` lasts.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ms: Option<u64>,
    /// Uniform delay: lower bound, ms (with `max_ms`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min_ms: Option<u64>,
    /// Uniform delay: upper bound, ms, inclusive (with `min_ms`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_ms: Option<u64>,
    /// Log-normal delay: median, ms (with `sigma`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub median_ms: Option<f64>,
    /// Log-normal delay: standard deviation of the log (with `median_ms`; 0 = always the
    /// median).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sigma: Option<f64>,
    /// `dribble`: number of pieces (default 10, at most the body length).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub chunks: Option<u32>,
    /// Only requests to this exact path (e.g. `/2/httpapi`, `/batch`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub route: Option<String>,
    /// Only `/2/httpapi` and `/batch` requests carrying at least one event with this
    /// `device_id` (as sent); `throttle`: the device to throttle.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub device_id: Option<String>,
    /// Only `/2/httpapi` and `/batch` requests carrying at least one event with this
    /// `user_id` (as sent); `throttle`: the user to throttle.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user_id: Option<String>,
    /// The next `count` matching requests (with `probability`: at most `count` times).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub count: Option<u64>,
    /// Each matching request with this probability (0..=1), drawn from the seeded generator.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub probability: Option<f64>,
    /// Active from this mock-clock time, ms since the epoch (inclusive).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub from_ms: Option<i64>,
    /// Active until this mock-clock time, ms since the epoch (exclusive).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub until_ms: Option<i64>,
}

/// A fault that cannot be scheduled: which field is wrong and why. Displays as
/// `invalid <kind> fault: <field>: <message>`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid {kind} fault: {field}: {message}")]
pub struct FaultError {
    /// The fault's kind.
    pub kind: &'static str,
    /// The field at fault (`status`, `committed`, `count`, ...; `kind` when the kind itself
    /// needs a field that is missing).
    pub field: &'static str,
    /// What is wrong.
    pub message: String,
}

impl Fault {
    fn new(kind: FaultKind) -> Self {
        Self {
            kind,
            status: None,
            committed: None,
            body: None,
            ms: None,
            min_ms: None,
            max_ms: None,
            median_ms: None,
            sigma: None,
            chunks: None,
            route: None,
            device_id: None,
            user_id: None,
            count: None,
            probability: None,
            from_ms: None,
            until_ms: None,
        }
    }

    /// `{"kind":"status","status":N}`: answer `status` with a JSON body (spec §5.2, §5.5).
    pub fn status(status: u16) -> Self {
        Self {
            status: Some(status),
            ..Self::new(FaultKind::Status)
        }
    }

    /// `{"kind":"html","status":N}`: a load balancer's HTML error page (spec §2).
    pub fn html(status: u16) -> Self {
        Self {
            status: Some(status),
            ..Self::new(FaultKind::Html)
        }
    }

    /// `{"kind":"empty_400"}`: 400 with body `{}`.
    pub fn empty_400() -> Self {
        Self::new(FaultKind::Empty400)
    }

    /// `{"kind":"delay","ms":N}`: hold the response `ms` milliseconds.
    pub fn delay_ms(ms: u64) -> Self {
        Self {
            ms: Some(ms),
            ..Self::new(FaultKind::Delay)
        }
    }

    /// `{"kind":"delay","min_ms":A,"max_ms":B}`: a delay uniform in `[min_ms, max_ms]` ms.
    pub fn delay_uniform(min_ms: u64, max_ms: u64) -> Self {
        Self {
            min_ms: Some(min_ms),
            max_ms: Some(max_ms),
            ..Self::new(FaultKind::Delay)
        }
    }

    /// `{"kind":"delay","median_ms":M,"sigma":S}`: a log-normal delay, median `M` ms.
    pub fn delay_lognormal(median_ms: f64, sigma: f64) -> Self {
        Self {
            median_ms: Some(median_ms),
            sigma: Some(sigma),
            ..Self::new(FaultKind::Delay)
        }
    }

    /// `{"kind":"reset"}`: TCP reset before any response.
    pub fn reset() -> Self {
        Self::new(FaultKind::Reset)
    }

    /// `{"kind":"close"}`: close the connection without a response.
    pub fn close() -> Self {
        Self::new(FaultKind::Close)
    }

    /// `{"kind":"truncate"}`: a response cut in the middle of its body.
    pub fn truncate() -> Self {
        Self::new(FaultKind::Truncate)
    }

    /// `{"kind":"dribble","ms":N}`: the response trickled over `ms` milliseconds.
    pub fn dribble(ms: u64) -> Self {
        Self {
            ms: Some(ms),
            ..Self::new(FaultKind::Dribble)
        }
    }

    /// `{"kind":"hang"}`: never answer (until the client gives up or the mock stops).
    pub fn hang() -> Self {
        Self::new(FaultKind::Hang)
    }

    /// `{"kind":"throttle","device_id":D}`: the limiter's real 429 for device `D` (add a
    /// window, `count` or `probability`).
    pub fn throttle_device(device_id: impl Into<String>) -> Self {
        Self {
            device_id: Some(device_id.into()),
            ..Self::new(FaultKind::Throttle)
        }
    }

    /// `{"kind":"throttle","user_id":U}`: the limiter's real 429 for user `U`.
    pub fn throttle_user(user_id: impl Into<String>) -> Self {
        Self {
            user_id: Some(user_id.into()),
            ..Self::new(FaultKind::Throttle)
        }
    }

    /// `{"kind":"refuse","from_ms":A,"until_ms":B}`: every listener closed (connections
    /// refused) during `[from_ms, until_ms)` of the mock clock, ms since the epoch; `None`
    /// for `from_ms` means "from the start".
    pub fn refuse(from_ms: Option<i64>, until_ms: i64) -> Self {
        Self {
            from_ms,
            until_ms: Some(until_ms),
            ..Self::new(FaultKind::Refuse)
        }
    }

    /// Sets the `device_id` scope: only requests carrying an event of this device.
    pub fn device_id(mut self, id: impl Into<String>) -> Self {
        self.device_id = Some(id.into());
        self
    }

    /// Sets the `user_id` scope: only requests carrying an event of this user.
    pub fn user_id(mut self, id: impl Into<String>) -> Self {
        self.user_id = Some(id.into());
        self
    }

    /// Sets `committed` (spec §5.5).
    pub fn committed(mut self, committed: bool) -> Self {
        self.committed = Some(committed);
        self
    }

    /// Sets `count`: the next `n` matching requests.
    pub fn count(mut self, n: u64) -> Self {
        self.count = Some(n);
        self
    }

    /// Sets `probability` (0..=1), drawn from the mock's seed.
    pub fn probability(mut self, p: f64) -> Self {
        self.probability = Some(p);
        self
    }

    /// Sets the `route` filter (exact path, e.g. `/batch`).
    pub fn route(mut self, path: impl Into<String>) -> Self {
        self.route = Some(path.into());
        self
    }

    /// Sets the mock-clock window `[from_ms, until_ms)`, ms since the epoch.
    pub fn window(mut self, from_ms: Option<i64>, until_ms: Option<i64>) -> Self {
        self.from_ms = from_ms;
        self.until_ms = until_ms;
        self
    }

    /// Sets the response body (`status`, `html`).
    pub fn body(mut self, body: impl Into<String>) -> Self {
        self.body = Some(body.into());
        self
    }

    /// Sets `chunks` (`dribble`).
    pub fn chunks(mut self, n: u32) -> Self {
        self.chunks = Some(n);
        self
    }

    /// Checks the fault: the first problem [`Fault::problems`] finds.
    pub fn validate(&self) -> Result<(), FaultError> {
        match self.problems().into_iter().next() {
            Some(e) => Err(e),
            None => Ok(()),
        }
    }

    /// Every problem of the fault, each naming its field: required fields present, fields
    /// of other kinds absent, values in range, spec §5.5/§6 respected (a 503 or a 4xx is
    /// never committed), scopes and windows that can match something. Empty when valid.
    pub fn problems(&self) -> Vec<FaultError> {
        use FaultKind as K;
        let kind = self.kind.as_str();
        let mut out = Vec::new();
        let mut err = |field: &'static str, message: String| {
            out.push(FaultError {
                kind,
                field,
                message,
            });
        };
        let present: [(&'static str, bool); 14] = [
            ("status", self.status.is_some()),
            ("committed", self.committed.is_some()),
            ("body", self.body.is_some()),
            ("ms", self.ms.is_some()),
            ("min_ms", self.min_ms.is_some()),
            ("max_ms", self.max_ms.is_some()),
            ("median_ms", self.median_ms.is_some()),
            ("sigma", self.sigma.is_some()),
            ("chunks", self.chunks.is_some()),
            ("route", self.route.is_some()),
            ("device_id", self.device_id.is_some()),
            ("user_id", self.user_id.is_some()),
            ("count", self.count.is_some()),
            ("probability", self.probability.is_some()),
        ];
        const SCOPE: [&str; 5] = ["route", "device_id", "user_id", "count", "probability"];
        let own: &[&str] = match self.kind {
            K::Status | K::Html => &["status", "committed", "body"],
            K::Empty400 => &["status", "committed"],
            K::Delay => &["ms", "min_ms", "max_ms", "median_ms", "sigma"],
            K::Reset | K::Close => &["committed"],
            K::Hang => &["committed", "ms"],
            K::Truncate => &["status", "committed"],
            K::Dribble => &["status", "committed", "ms", "chunks"],
            K::Throttle => &[],
            K::Refuse => &[],
        };
        for (name, _) in present.iter().filter(|(_, p)| *p) {
            let scope = SCOPE.contains(name);
            if self.kind == K::Refuse && scope {
                err(
                    name,
                    format!("`{name}` makes no sense for refuse: it takes no request, it closes the listener for its window"),
                );
            } else if !scope && !own.contains(name) {
                err(name, format!("`{name}` does not apply to a {kind} fault"));
            }
        }
        match self.status {
            Some(s) if !(200..=599).contains(&s) => {
                err("status", format!("{s} is not in 200..=599"));
            }
            None if self.kind == K::Status => err("status", "required".to_owned()),
            _ => {}
        }
        if self.committed == Some(true) {
            let status = match self.kind {
                K::Empty400 => Some(400),
                K::Html => Some(self.status.unwrap_or(502)),
                _ => self.status,
            };
            if status == Some(503) {
                err(
                    "committed",
                    "a 503 is never committed (spec §5.5)".to_owned(),
                );
            }
            if let Some(s) = status.filter(|s| (400..500).contains(s)) {
                err("committed", format!("a {s} is never committed (spec §6)"));
            }
        }
        if self.kind == K::Empty400 && self.status.is_some_and(|s| s != 400) {
            err("status", "empty_400 answers 400".to_owned());
        }
        if matches!(self.kind, K::Truncate | K::Dribble)
            && self.status.is_none()
            && self.committed == Some(false)
        {
            err(
                "committed",
                "without `status` it cuts or trickles the real response, which commits; give a `status` for an uncommitted one".to_owned(),
            );
        }
        if self.kind == K::Delay {
            let forms = [
                self.ms.is_some(),
                self.min_ms.is_some() || self.max_ms.is_some(),
                self.median_ms.is_some() || self.sigma.is_some(),
            ];
            if forms.iter().filter(|f| **f).count() != 1 {
                err(
                    "ms",
                    "give exactly one of `ms`, `min_ms`+`max_ms`, `median_ms`+`sigma`".to_owned(),
                );
            }
            if forms[1] {
                match (self.min_ms, self.max_ms) {
                    (Some(a), Some(b)) if a <= b => {}
                    _ => err(
                        "min_ms",
                        "`min_ms` and `max_ms` are both required, min_ms <= max_ms".to_owned(),
                    ),
                }
            }
            if forms[2] {
                match (self.median_ms, self.sigma) {
                    (Some(m), Some(s)) if m.is_finite() && m > 0.0 && s.is_finite() && s >= 0.0 => {
                    }
                    _ => err(
                        "median_ms",
                        "`median_ms` > 0 and `sigma` >= 0 are both required".to_owned(),
                    ),
                }
            }
        }
        if self.kind == K::Dribble && self.ms.is_none() {
            err("ms", "required (the trickle duration)".to_owned());
        }
        if self.chunks == Some(0) {
            err("chunks", "must be at least 1".to_owned());
        }
        if self.count == Some(0) {
            err("count", "must be at least 1".to_owned());
        }
        if let Some(p) = self.probability {
            if !(0.0..=1.0).contains(&p) {
                err("probability", format!("{p} is not within 0..=1"));
            }
        }
        if let (Some(a), Some(b)) = (self.from_ms, self.until_ms) {
            if a >= b {
                err(
                    "from_ms",
                    format!("{a} is not before `until_ms` {b}: the window is empty"),
                );
            }
        }
        if let Some(r) = self.route.as_deref() {
            if !r.starts_with('/') {
                err("route", format!("`{r}` is not a path starting with `/`"));
            } else if r == "/metrics" || r == "/__mock" || r.starts_with("/__mock/") {
                err(
                    "route",
                    format!("`{r}` is never faulted (only ingestion routes are)"),
                );
            } else if (self.kind == K::Throttle || self.is_scoped())
                && r != "/2/httpapi"
                && r != "/batch"
            {
                err(
                    "route",
                    format!("`{r}` carries no events: a device_id/user_id scope or a throttle only matches `/2/httpapi` and `/batch`"),
                );
            }
        }
        for (name, v) in [("device_id", &self.device_id), ("user_id", &self.user_id)] {
            if v.as_deref().is_some_and(str::is_empty) {
                err(name, "is empty".to_owned());
            }
        }
        if self.kind == K::Throttle && !self.is_scoped() {
            err(
                "kind",
                "throttle needs `device_id` or `user_id` (the identity to throttle)".to_owned(),
            );
        }
        if self.kind == K::Refuse && self.until_ms.is_none() {
            err(
                "until_ms",
                "required for refuse: the listener must reopen (the admin routes are on it too)"
                    .to_owned(),
            );
        }
        out
    }

    /// True when the fault has a `device_id` or `user_id` scope.
    fn is_scoped(&self) -> bool {
        self.device_id.is_some() || self.user_id.is_some()
    }

    fn matches(&self, req: &FaultRequest<'_>) -> bool {
        let upload = req.path == "/2/httpapi" || req.path == "/batch";
        self.kind != FaultKind::Refuse
            && (self.kind != FaultKind::Throttle || upload)
            && self.route.as_deref().is_none_or(|r| r == req.path)
            && self.from_ms.is_none_or(|f| req.now_ms >= f)
            && self.until_ms.is_none_or(|u| req.now_ms < u)
            && self
                .device_id
                .as_deref()
                .is_none_or(|d| upload && req.ids.has_device(d))
            && self
                .user_id
                .as_deref()
                .is_none_or(|u| upload && req.ids.has_user(u))
    }

    /// Whether the request's events go through the pipeline first.
    fn runs_pipeline(&self) -> bool {
        match self.kind {
            FaultKind::Delay | FaultKind::Throttle => true,
            FaultKind::Truncate | FaultKind::Dribble if self.status.is_none() => true,
            _ => self.committed.unwrap_or(false),
        }
    }

    fn synthetic(&self) -> Option<Synthetic> {
        let json = |status: u16, body: Option<Bytes>| Synthetic {
            status,
            body,
            content_type: "application/json",
        };
        let own = self.body.clone().map(Bytes::from);
        match self.kind {
            FaultKind::Empty400 => Some(json(400, Some(Bytes::from_static(b"{}")))),
            FaultKind::Html => {
                let status = self.status.unwrap_or(502);
                Some(Synthetic {
                    status,
                    body: Some(own.unwrap_or_else(|| Bytes::from(html_page(status)))),
                    content_type: "text/html",
                })
            }
            FaultKind::Status | FaultKind::Truncate | FaultKind::Dribble => {
                self.status.map(|s| json(s, own))
            }
            _ => None,
        }
    }

    fn delivery(&self, rng: &mut ChaCha8Rng) -> Delivery {
        match self.kind {
            FaultKind::Status
            | FaultKind::Html
            | FaultKind::Empty400
            | FaultKind::Throttle
            | FaultKind::Refuse => Delivery::Normal,
            FaultKind::Delay => Delivery::Delay(Duration::from_millis(self.draw_delay_ms(rng))),
            FaultKind::Reset => Delivery::Reset,
            FaultKind::Close => Delivery::Close,
            FaultKind::Hang => Delivery::Hang(self.ms.map(Duration::from_millis)),
            FaultKind::Truncate => Delivery::Truncate,
            FaultKind::Dribble => Delivery::Dribble {
                total: Duration::from_millis(self.ms.unwrap_or(0)),
                chunks: self.chunks.unwrap_or(10),
            },
        }
    }

    fn draw_delay_ms(&self, rng: &mut ChaCha8Rng) -> u64 {
        if let Some(ms) = self.ms {
            return ms;
        }
        if let (Some(a), Some(b)) = (self.min_ms, self.max_ms) {
            return rng.random_range(a..=b.max(a));
        }
        if let (Some(m), Some(s)) = (self.median_ms, self.sigma) {
            if let Ok(d) = rand_distr::LogNormal::new(m.max(f64::MIN_POSITIVE).ln(), s) {
                let v: f64 = d.sample(rng);
                // At most 10 minutes: a heavy tail must not hold a connection forever.
                return v.clamp(0.0, 600_000.0).round() as u64;
            }
        }
        0
    }
}

/// Statuses whose canned body (a `status`, `truncate` or `dribble` fault without `body`) is
/// the mock's own real body for that status, built by the same code: 200 the success body
/// of the request (its event count, `payload_size_bytes`, the mock clock; spec §4), 400
/// `Invalid JSON request body`, 403 the WAF body (spec §5.2), 408 the body read timeout's,
/// 413 `Payload too large` (spec §5.3), 429 the limiter's EPS-only body with no identity
/// (spec §5.4; a `throttle` fault gives the per-request one). Any other status answers
/// `{"code":N,"error":"<reason phrase>"}` (5xx bodies are undocumented, spec §5.5).
pub const REAL_BODY_STATUSES: [u16; 6] = [200, 400, 403, 408, 413, 429];

/// What a canned body depends on (see [`canned_body`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CannedContext {
    /// The request's endpoint threshold, events/s (`eps_threshold` of a 429).
    pub eps_threshold: u64,
    /// Events in the request (`events_ingested` of a 200).
    pub events: u64,
    /// `payload_size_bytes` of a 200, bytes (per the profile's
    /// `payload_size_is_compressed`).
    pub payload_size_bytes: u64,
    /// Mock-clock now, ms since the epoch (`server_upload_time` of a 200).
    pub now_ms: i64,
}

/// The canned JSON body of a synthetic `status` (see [`REAL_BODY_STATUSES`]).
pub fn canned_body(status: u16, ctx: &CannedContext) -> ResponseBody {
    match status {
        200 => ResponseBody::success(ctx.events, ctx.payload_size_bytes, ctx.now_ms),
        400 => ResponseBody::error(400, error_text::INVALID_JSON),
        403 => ResponseBody::forbidden(),
        408 => ResponseBody::request_timeout(),
        413 => ResponseBody::payload_too_large(),
        429 => crate::limits::limited_body(
            ctx.eps_threshold,
            Default::default(),
            Default::default(),
            Vec::new(),
        ),
        s => {
            let reason = http::StatusCode::from_u16(s)
                .ok()
                .and_then(|s| s.canonical_reason())
                .unwrap_or("Error");
            ResponseBody::error(s, reason)
        }
    }
}

/// An nginx-style error page, as a load balancer in front of Amplitude sends (spec §2).
fn html_page(status: u16) -> String {
    let reason = http::StatusCode::from_u16(status)
        .ok()
        .and_then(|s| s.canonical_reason())
        .unwrap_or("Error");
    format!(
        "<html>\r\n<head><title>{status} {reason}</title></head>\r\n<body>\r\n<center><h1>{status} {reason}</h1></center>\r\n<hr><center>nginx</center>\r\n</body>\r\n</html>\r\n"
    )
}

/// A response that replaces the pipeline's.
#[derive(Debug, Clone)]
pub(crate) struct Synthetic {
    pub status: u16,
    /// `None`: the canned body of `status` ([`canned_body`]), built once the request is read.
    pub body: Option<Bytes>,
    pub content_type: &'static str,
}

/// The `device_id`s and `user_id`s (as sent) of an upload's events, for the scopes.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct RequestIds {
    devices: Vec<String>,
    users: Vec<String>,
}

impl RequestIds {
    /// The ids of an HTTP V2 / Batch body (decompressed); none when it does not parse.
    pub(crate) fn of_upload(body: &[u8]) -> Self {
        #[derive(Deserialize)]
        struct Ev {
            #[serde(default)]
            device_id: Option<serde_json::Value>,
            #[serde(default)]
            user_id: Option<serde_json::Value>,
        }
        #[derive(Deserialize)]
        struct Up {
            #[serde(default)]
            events: Option<Vec<serde_json::Value>>,
        }
        let mut ids = Self::default();
        let Ok(up) = serde_json::from_slice::<Up>(body) else {
            return ids;
        };
        for ev in up.events.unwrap_or_default() {
            let Ok(ev) = serde_json::from_value::<Ev>(ev) else {
                continue;
            };
            let text = |v: Option<serde_json::Value>| v.and_then(|v| v.as_str().map(str::to_owned));
            ids.devices.extend(text(ev.device_id));
            ids.users.extend(text(ev.user_id));
        }
        for v in [&mut ids.devices, &mut ids.users] {
            v.sort_unstable();
            v.dedup();
        }
        ids
    }

    fn has_device(&self, id: &str) -> bool {
        self.devices
            .binary_search_by(|d| d.as_str().cmp(id))
            .is_ok()
    }

    fn has_user(&self, id: &str) -> bool {
        self.users.binary_search_by(|u| u.as_str().cmp(id)).is_ok()
    }
}

/// A request as the matching rule sees it.
#[derive(Debug, Clone, Copy)]
pub(crate) struct FaultRequest<'a> {
    /// Path, without the query string.
    pub path: &'a str,
    /// Mock-clock now, ms since the epoch.
    pub now_ms: i64,
    /// Ids of its events (empty unless a scoped fault is scheduled).
    pub ids: &'a RequestIds,
}

/// How the response reaches the client.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Delivery {
    Normal,
    Delay(Duration),
    Reset,
    Close,
    Hang(Option<Duration>),
    Truncate,
    Dribble { total: Duration, chunks: u32 },
}

/// What to do with one request, decided by [`Faults::pick`].
#[derive(Debug, Clone)]
pub(crate) struct Plan {
    pub kind: FaultKind,
    pub run_pipeline: bool,
    pub synthetic: Option<Synthetic>,
    pub delivery: Delivery,
    /// `throttle`: the `(device_id, user_id)` to throttle.
    pub throttle: Option<(Option<String>, Option<String>)>,
}

/// A scheduled fault as `GET /__mock/faults` lists it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ScheduledFault {
    /// Id, from 1, in scheduling order.
    pub id: u64,
    /// Requests it can still take (`None`: unlimited).
    pub remaining: Option<u64>,
    /// Times it took a request.
    pub injected: u64,
    /// The fault.
    pub fault: Fault,
}

struct Inner {
    list: Vec<ScheduledFault>,
    rng: ChaCha8Rng,
    next_id: u64,
}

/// The mock's fault schedule. `Send + Sync`; every method takes `&self`. When nothing is
/// scheduled a request costs one relaxed atomic load.
pub struct Faults {
    armed: AtomicBool,
    /// Some scheduled fault has a `device_id` / `user_id` scope: requests' ids are read.
    scoped: AtomicBool,
    seed: u64,
    inner: Mutex<Inner>,
    /// Bumped on every change of the schedule (wakes the listeners' refuse check).
    changed: tokio::sync::watch::Sender<u64>,
}

/// The listeners' state a `refuse` schedule asks for at some mock time, ms since the epoch.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(crate) struct RefuseGate {
    /// Closed now, until this time (the end of the chain of overlapping windows).
    pub closed_until: Option<i64>,
    /// Open now; the next window starts then.
    pub next_start: Option<i64>,
}

impl std::fmt::Debug for Faults {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Faults")
            .field("seed", &self.seed)
            .finish_non_exhaustive()
    }
}

impl Faults {
    /// An empty schedule whose probabilities and delay distributions draw from ChaCha8
    /// seeded with `seed` (the mock's `--seed`).
    pub(crate) fn new(seed: u64) -> Self {
        Self {
            armed: AtomicBool::new(false),
            scoped: AtomicBool::new(false),
            changed: tokio::sync::watch::channel(0).0,
            seed,
            inner: Mutex::new(Inner {
                list: Vec::new(),
                rng: ChaCha8Rng::seed_from_u64(seed),
                next_id: 1,
            }),
        }
    }

    /// Schedules `fault` after the ones already scheduled; returns its id.
    pub fn push(&self, fault: Fault) -> Result<u64, FaultError> {
        self.push_all(vec![fault])
            .map(|ids| ids.first().copied().unwrap_or(0))
    }

    /// Schedules `faults` in order, all or none (the first invalid one is returned with
    /// nothing scheduled); returns their ids.
    pub fn push_all(&self, faults: Vec<Fault>) -> Result<Vec<u64>, FaultError> {
        for f in &faults {
            f.validate()?;
        }
        let mut g = self.inner.lock();
        let mut ids = Vec::with_capacity(faults.len());
        for fault in faults {
            let id = g.next_id;
            g.next_id += 1;
            ids.push(id);
            g.list.push(ScheduledFault {
                id,
                remaining: fault.count,
                injected: 0,
                fault,
            });
        }
        self.rearm(&g.list);
        Ok(ids)
    }

    /// Updates the flags after the list changed and wakes whoever watches the schedule.
    fn rearm(&self, list: &[ScheduledFault]) {
        self.armed.store(!list.is_empty(), Ordering::Release);
        self.scoped
            .store(list.iter().any(|f| f.fault.is_scoped()), Ordering::Release);
        self.changed.send_modify(|g| *g = g.wrapping_add(1));
    }

    /// True when some fault is scheduled (a request must be matched).
    pub(crate) fn armed(&self) -> bool {
        self.armed.load(Ordering::Acquire)
    }

    /// True when some scheduled fault has a `device_id` / `user_id` scope (a request's ids
    /// must be read before matching).
    pub(crate) fn scoped(&self) -> bool {
        self.scoped.load(Ordering::Acquire)
    }

    /// A receiver that changes whenever the schedule does.
    pub(crate) fn subscribe(&self) -> tokio::sync::watch::Receiver<u64> {
        self.changed.subscribe()
    }

    /// What the `refuse` faults ask of the listeners at `now_ms`: closed until when, or the
    /// next time they close.
    pub(crate) fn refuse_gate(&self, now_ms: i64) -> RefuseGate {
        if !self.armed() {
            return RefuseGate::default();
        }
        let g = self.inner.lock();
        let windows: Vec<(i64, i64)> = g
            .list
            .iter()
            .filter(|f| f.fault.kind == FaultKind::Refuse)
            .filter_map(|f| {
                f.fault
                    .until_ms
                    .map(|u| (f.fault.from_ms.unwrap_or(i64::MIN), u))
            })
            .collect();
        drop(g);
        let mut gate = RefuseGate::default();
        let mut until = None::<i64>;
        // Chain overlapping or touching windows from `now_ms`.
        loop {
            let t = until.unwrap_or(now_ms);
            let next = windows
                .iter()
                .filter(|(a, b)| *a <= t && t < *b)
                .map(|(_, b)| *b)
                .max();
            match next {
                Some(b) if until.is_none_or(|u| b > u) => until = Some(b),
                _ => break,
            }
        }
        gate.closed_until = until;
        if until.is_none() {
            gate.next_start = windows
                .iter()
                .filter(|(a, b)| *a > now_ms && a < b)
                .map(|(a, _)| *a)
                .min();
        }
        gate
    }

    /// Marks the `refuse` windows open at `now_ms` as entered (once each, whatever the
    /// number of listeners); returns how many were newly entered (to count in the stats).
    pub(crate) fn enter_refuse(&self, now_ms: i64) -> u64 {
        let mut g = self.inner.lock();
        let mut n = 0;
        for slot in g.list.iter_mut().filter(|f| {
            f.fault.kind == FaultKind::Refuse
                && f.injected == 0
                && f.fault.from_ms.is_none_or(|a| a <= now_ms)
                && f.fault.until_ms.is_some_and(|b| now_ms < b)
        }) {
            slot.injected = 1;
            n += 1;
        }
        n
    }

    /// Removes every fault and re-seeds the generator, so a script replayed after `clear`
    /// gives the same pattern as on a fresh mock. Returns how many were removed.
    pub fn clear(&self) -> usize {
        let mut g = self.inner.lock();
        let n = g.list.len();
        g.list.clear();
        g.rng = ChaCha8Rng::seed_from_u64(self.seed);
        self.rearm(&g.list);
        n
    }

    /// The faults still scheduled, in scheduling order.
    pub fn list(&self) -> Vec<ScheduledFault> {
        self.inner.lock().list.clone()
    }

    /// The seed in force.
    pub fn seed(&self) -> u64 {
        self.seed
    }

    /// Picks the fault for a request (see the module docs for the rule), using it up;
    /// `None` when no fault takes it.
    pub(crate) fn pick(&self, req: &FaultRequest<'_>) -> Option<Plan> {
        if !self.armed() {
            return None;
        }
        let mut g = self.inner.lock();
        let Inner { list, rng, .. } = &mut *g;
        let mut plan = None;
        for slot in list.iter_mut() {
            if slot.remaining == Some(0) || !slot.fault.matches(req) {
                continue;
            }
            if let Some(p) = slot.fault.probability {
                let u: f64 = rng.random();
                if u >= p {
                    continue;
                }
            }
            if let Some(r) = &mut slot.remaining {
                *r -= 1;
            }
            slot.injected += 1;
            let f = &slot.fault;
            plan = Some(Plan {
                kind: f.kind,
                run_pipeline: f.runs_pipeline(),
                synthetic: f.synthetic(),
                delivery: f.delivery(rng),
                throttle: (f.kind == FaultKind::Throttle)
                    .then(|| (f.device_id.clone(), f.user_id.clone())),
            });
            break;
        }
        if plan.is_some() && list.iter().any(|s| s.remaining == Some(0)) {
            list.retain(|s| s.remaining != Some(0));
            self.rearm(list);
        }
        plan
    }
}

/// Parses `POST /__mock/faults` JSON (one fault object or an array of them).
pub fn parse_faults_json(bytes: &[u8]) -> Result<Vec<Fault>, String> {
    // Try the precise forms first so that serde's message names the bad field.
    let trimmed = bytes
        .iter()
        .skip_while(|b| b.is_ascii_whitespace())
        .copied()
        .next();
    let parsed = if trimmed == Some(b'[') {
        serde_json::from_slice::<Vec<Fault>>(bytes)
    } else {
        serde_json::from_slice::<Fault>(bytes).map(|f| vec![f])
    };
    parsed.map_err(|e| format!("invalid fault JSON: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    static NO_IDS: std::sync::LazyLock<RequestIds> = std::sync::LazyLock::new(RequestIds::default);

    fn at(path: &'static str, now_ms: i64) -> FaultRequest<'static> {
        FaultRequest {
            path,
            now_ms,
            ids: &NO_IDS,
        }
    }

    #[test]
    fn issue_json_forms_parse_and_validate() {
        // spec §5.2, §5.5: the exact forms of the issue
        for text in [
            r#"{"kind":"status","status":503,"count":3}"#,
            r#"{"kind":"status","status":500,"committed":true,"count":1}"#,
            r#"{"kind":"status","status":500,"committed":false,"count":1}"#,
            r#"{"kind":"html","status":502,"count":1}"#,
            r#"{"kind":"status","status":403,"count":1}"#,
            r#"{"kind":"empty_400","count":1}"#,
            r#"{"kind":"delay","ms":2500,"count":1}"#,
            r#"{"kind":"delay","min_ms":10,"max_ms":20,"probability":0.5}"#,
            r#"{"kind":"delay","median_ms":200,"sigma":0.5}"#,
            r#"{"kind":"reset","count":1}"#,
            r#"{"kind":"close","count":1}"#,
            r#"{"kind":"truncate","count":1}"#,
            r#"{"kind":"dribble","ms":3000,"count":1}"#,
            r#"{"kind":"hang","count":1}"#,
        ] {
            let f = parse_faults_json(text.as_bytes()).unwrap();
            assert_eq!(f.len(), 1, "{text}");
            f[0].validate().unwrap_or_else(|e| panic!("{text}: {e}"));
        }
        let many = parse_faults_json(
            br#"[{"kind":"status","status":503,"count":2},{"kind":"reset","count":1}]"#,
        )
        .unwrap();
        assert_eq!(many.len(), 2);
    }

    #[test]
    fn refuses_what_the_spec_forbids() {
        // spec §5.5: 503 is never committed; spec §6: 4xx never commit
        assert!(Fault::status(503).committed(true).validate().is_err());
        assert!(Fault::status(403).committed(true).validate().is_err());
        assert!(Fault::status(502).committed(true).validate().is_ok());
        let e = Fault {
            ms: Some(5),
            ..Fault::status(500)
        }
        .validate()
        .unwrap_err();
        assert!(e.to_string().contains("`ms`"), "{e}");
        assert!(
            parse_faults_json(br#"{"kind":"status","status":500,"cuont":1}"#)
                .unwrap_err()
                .contains("cuont")
        );
        assert!(Fault::delay_uniform(5, 1).validate().is_err());
        assert!(Fault::status(503).probability(1.5).validate().is_err());
    }

    #[test]
    fn count_faults_play_in_scheduling_order() {
        let f = Faults::new(1);
        f.push_all(vec![
            Fault::status(503).count(2),
            Fault::status(500).committed(true).count(1),
            Fault::reset().count(1),
            Fault::delay_ms(3000).count(1),
        ])
        .unwrap();
        let kinds: Vec<_> = (0..6)
            .map(|_| {
                f.pick(&at("/2/httpapi", 0))
                    .map(|p| (p.kind, p.run_pipeline, p.synthetic.map(|s| s.status)))
            })
            .collect();
        assert_eq!(
            kinds,
            vec![
                Some((FaultKind::Status, false, Some(503))),
                Some((FaultKind::Status, false, Some(503))),
                Some((FaultKind::Status, true, Some(500))),
                Some((FaultKind::Reset, false, None)),
                Some((FaultKind::Delay, true, None)),
                None,
            ]
        );
        assert!(f.list().is_empty());
    }

    #[test]
    fn route_and_window_filter() {
        let f = Faults::new(1);
        f.push(Fault::close().route("/batch").window(Some(100), Some(200)))
            .unwrap();
        assert!(f.pick(&at("/2/httpapi", 150)).is_none());
        assert!(f.pick(&at("/batch", 99)).is_none());
        assert!(f.pick(&at("/batch", 200)).is_none());
        assert!(f.pick(&at("/batch", 150)).is_some());
        assert!(
            f.pick(&at("/batch", 150)).is_some(),
            "no count: every matching request"
        );
    }

    #[test]
    fn lognormal_with_zero_sigma_is_the_median() {
        let mut rng = ChaCha8Rng::seed_from_u64(3);
        assert_eq!(
            Fault::delay_lognormal(250.0, 0.0).draw_delay_ms(&mut rng),
            250
        );
        let d = Fault::delay_uniform(10, 20).draw_delay_ms(&mut rng);
        assert!((10..=20).contains(&d));
    }
}
