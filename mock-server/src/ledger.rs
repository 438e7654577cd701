//! The ledger: the truth about every event the mock saw. Stored events in storage order,
//! deduplicated events with the event they duplicated, silently dropped property updates,
//! exact counters, and a bounded journal of requests with their outcomes.
//!
//! Memory is bounded by [`LedgerConfig`]: the oldest stored events and journal entries are
//! evicted past the configured caps; the counters stay exact.

use crate::dedup::FingerprintMap;
use crate::event_json::EventJson;
use amplitude_wire::Api;
use parking_lot::Mutex;
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;
use std::borrow::Cow;
use std::collections::{BTreeMap, VecDeque};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::Arc;

/// Bounds of the ledger's memory.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LedgerConfig {
    /// Stored events kept for `/__mock/events` (oldest evicted first; default 2,000,000).
    pub max_events: usize,
    /// Requests kept in the journal (default 10,000).
    pub journal_capacity: usize,
    /// Show each request's `events` array in the `/__mock/requests` JSON (default false;
    /// the conformance suite turns it on to check sender behaviour). The raw and decoded
    /// bodies are journalled regardless (`MockServer::received_requests`).
    pub journal_bodies: bool,
    /// Most bytes of request bodies the journal keeps, raw and decoded (a body that was not
    /// gzipped counted once), bytes (default 64 MiB); the oldest entries are evicted first,
    /// the newest is always kept.
    pub journal_max_body_bytes: usize,
}

impl Default for LedgerConfig {
    fn default() -> Self {
        Self {
            max_events: 2_000_000,
            journal_capacity: 10_000,
            journal_bodies: false,
            journal_max_body_bytes: 64 << 20,
        }
    }
}

impl LedgerConfig {
    /// Stored events the benchmark profile keeps (the oldest evicted first).
    pub const BENCHMARK_MAX_EVENTS: usize = 100_000;
    /// Requests the benchmark profile keeps in the journal.
    pub const BENCHMARK_JOURNAL_CAPACITY: usize = 1_000;
    /// Most request-body bytes the benchmark profile keeps in the journal, bytes (16 MiB).
    pub const BENCHMARK_JOURNAL_MAX_BODY_BYTES: usize = 16 << 20;

    /// These bounds capped for a benchmark: at most [`Self::BENCHMARK_MAX_EVENTS`] stored
    /// events (and as many dedup and property-drop records),
    /// [`Self::BENCHMARK_JOURNAL_CAPACITY`] journal entries and
    /// [`Self::BENCHMARK_JOURNAL_MAX_BODY_BYTES`] of journalled bodies: about 100 MB at
    /// most for 1 kB events, however long the run. Counters stay exact.
    pub fn capped_for_benchmarks(self) -> Self {
        Self {
            max_events: self.max_events.min(Self::BENCHMARK_MAX_EVENTS),
            journal_capacity: self.journal_capacity.min(Self::BENCHMARK_JOURNAL_CAPACITY),
            journal_max_body_bytes: self
                .journal_max_body_bytes
                .min(Self::BENCHMARK_JOURNAL_MAX_BODY_BYTES),
            ..self
        }
    }
}

/// One stored event as `/__mock/events` returns it.
#[derive(Debug, Clone, Serialize)]
pub struct StoredEvent {
    /// Storage order, from 1.
    pub seq: u64,
    /// Id of the request it came in (see `/__mock/requests`).
    pub request_id: u64,
    /// Project id (1-based, configuration order).
    pub project_id: u32,
    /// ms since the epoch at which the mock accepted the request (spec §4).
    pub server_upload_time: i64,
    /// The API it came through.
    pub endpoint: Api,
    /// The event as stored: the JSON object as sent, except strings truncated and short
    /// ids stripped per the profile (spec §3.4). Read it with `event.get()`.
    pub event: EventJson,
    /// Project API key, for filtering; never serialized.
    #[serde(skip)]
    pub api_key: Arc<str>,
    /// Dedup fingerprint, if the event had an `insert_id`.
    #[serde(skip)]
    pub fingerprint: Option<u64>,
}

impl StoredEvent {
    /// The event as a JSON value (parsed from [`Self::event`]; `Null` if it were not JSON,
    /// which the pipeline never stores).
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(self.event.get()).unwrap_or(serde_json::Value::Null)
    }

    /// The event's `insert_id` (spec §9), if it has one.
    pub fn insert_id(&self) -> Option<String> {
        self.ids().and_then(|i| i.insert_id.map(|c| c.into_owned()))
    }

    /// The event's `device_id` (spec §3.1), if it has one.
    pub fn device_id(&self) -> Option<String> {
        self.ids().and_then(|i| i.device_id.map(|c| c.into_owned()))
    }

    /// The event's `user_id` (spec §3.1), if it has one.
    pub fn user_id(&self) -> Option<String> {
        self.ids().and_then(|i| i.user_id.map(|c| c.into_owned()))
    }

    fn ids(&self) -> Option<Ids<'_>> {
        serde_json::from_str(self.event.get()).ok()
    }
}

/// An event answered 200 but not stored because its `insert_id` was seen before (spec §9).
#[derive(Debug, Clone, Serialize)]
pub struct DedupRecord {
    /// The request it came in.
    pub request_id: u64,
    /// Its index in that request's `events`.
    pub index: usize,
    /// The `insert_id`.
    pub insert_id: String,
    /// `seq` of the stored event it duplicated, when still in the ledger.
    pub duplicate_of: Option<u64>,
    /// ms since the epoch.
    pub at_ms: i64,
}

/// A user-property update Amplitude would silently drop (over 1,800 per hour per Amplitude
/// ID, spec §8.1): the event (if any) was stored and answered 200, but its
/// `user_properties` were not applied. Read with `GET /__mock/property_drops`.
#[derive(Debug, Clone, Serialize)]
pub struct PropertyDropRecord {
    /// `seq` of the stored event whose update was dropped; `None` for an `/identify` call,
    /// which stores no event (spec §10).
    pub seq: Option<u64>,
    /// The request it came in (see `/__mock/requests`).
    pub request_id: u64,
    /// The API it came through.
    pub endpoint: Api,
    /// Its index in that request's `events` (or `identification` array).
    pub index: usize,
    /// Amplitude ID the mock assigned (see `/__mock/users`).
    pub amplitude_id: u64,
    /// The event's `user_id`, if any.
    pub user_id: Option<String>,
    /// The event's `device_id`, if any.
    pub device_id: Option<String>,
    /// The `user_properties` object that was not applied, as sent.
    pub user_properties: Box<RawValue>,
    /// When it was dropped, ms since the epoch (mock clock).
    pub at_ms: i64,
}

/// Why events were rejected (the `events_rejected.by_reason` keys of `/__mock/stats`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[allow(missing_docs)] // each names the 4xx/5xx body it answers with (spec §5)
pub enum RejectReason {
    MissingBody,
    InvalidJson,
    InvalidEventJson,
    MissingField,
    InvalidApiKey,
    PayloadTooLarge,
    MissingEventFields,
    InvalidFields,
    InvalidIdLength,
    Silenced,
    Throttled,
    DailyQuota,
    InvalidPath,
    Fault,
}

impl RejectReason {
    const ALL: [RejectReason; 14] = [
        Self::MissingBody,
        Self::InvalidJson,
        Self::InvalidEventJson,
        Self::MissingField,
        Self::InvalidApiKey,
        Self::PayloadTooLarge,
        Self::MissingEventFields,
        Self::InvalidFields,
        Self::InvalidIdLength,
        Self::Silenced,
        Self::Throttled,
        Self::DailyQuota,
        Self::InvalidPath,
        Self::Fault,
    ];

    /// The snake_case name used in stats and the journal.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::MissingBody => "missing_body",
            Self::InvalidJson => "invalid_json",
            Self::InvalidEventJson => "invalid_event_json",
            Self::MissingField => "missing_field",
            Self::InvalidApiKey => "invalid_api_key",
            Self::PayloadTooLarge => "payload_too_large",
            Self::MissingEventFields => "missing_event_fields",
            Self::InvalidFields => "invalid_fields",
            Self::InvalidIdLength => "invalid_id_length",
            Self::Silenced => "silenced",
            Self::Throttled => "throttled",
            Self::DailyQuota => "daily_quota",
            Self::InvalidPath => "invalid_path",
            Self::Fault => "fault",
        }
    }
}

impl std::fmt::Display for RejectReason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A key of [`Stats::requests_by_status`]: the HTTP status answered, or [`StatusKey::Cut`]
/// for a request that got no (complete) response. Serialized as the status as a string
/// (`"200"`, `"429"`) or `"cut"`, the keys of `GET /__mock/stats`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum StatusKey {
    /// Answered with this HTTP status (100..=599).
    Status(u16),
    /// No (complete) response: a `reset`, `close`, `hang` or `truncate` fault, or a client
    /// gone while sending.
    Cut,
}

impl From<u16> for StatusKey {
    /// `0` (the journal's "no response") is [`StatusKey::Cut`].
    fn from(status: u16) -> Self {
        if status == 0 {
            Self::Cut
        } else {
            Self::Status(status)
        }
    }
}

impl std::fmt::Display for StatusKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Status(s) => write!(f, "{s}"),
            Self::Cut => f.write_str("cut"),
        }
    }
}

impl std::str::FromStr for StatusKey {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "cut" => Ok(Self::Cut),
            _ => s
                .parse::<u16>()
                .ok()
                .filter(|n| (100..=599).contains(n))
                .map(Self::Status)
                .ok_or_else(|| format!("not an HTTP status or \"cut\": {s:?}")),
        }
    }
}

impl Serialize for StatusKey {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for StatusKey {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = std::borrow::Cow::<'de, str>::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

/// The headers of a journaled request, kept as they arrived (moved out of the request, not
/// copied: nothing is allocated per request to journal them) and only read redacted: the
/// value of a header that can carry a key (`authorization`, any name containing `api-key`
/// or `api_key`) reads as [`crate::redact_key`] shows it, in `Debug` too.
#[derive(Clone, Default)]
pub struct RequestHeaders(http::HeaderMap);

impl RequestHeaders {
    /// Wraps the headers of a request.
    pub fn new(headers: http::HeaderMap) -> Self {
        Self(headers)
    }

    /// `(name, value)` in arrival order (names lowercase, values lossily UTF-8), redacted.
    pub fn redacted(&self) -> Vec<(String, String)> {
        self.0
            .iter()
            .map(|(name, value)| {
                let n = name.as_str();
                let v = String::from_utf8_lossy(value.as_bytes());
                let secret = n == "authorization" || n.contains("api-key") || n.contains("api_key");
                let v = if secret {
                    crate::projects::redact_key(&v)
                } else {
                    v.into_owned()
                };
                (n.to_owned(), v)
            })
            .collect()
    }

    /// Number of header lines.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// No header at all.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl std::fmt::Debug for RequestHeaders {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list().entries(self.redacted()).finish()
    }
}

/// One request as the journal keeps it. API keys appear only redacted.
#[derive(Debug, Clone, Serialize)]
pub struct JournalEntry {
    /// Request id, from 1.
    pub id: u64,
    /// ms since the epoch (mock clock) when the request was handled.
    pub at_ms: i64,
    /// HTTP method (JSON: its name, e.g. `"POST"`).
    #[serde(serialize_with = "serialize_method")]
    pub method: http::Method,
    /// Path, without the query string (the route's static name for Amplitude's paths).
    pub path: Cow<'static, str>,
    /// Client address (JSON: `"ip:port"`).
    pub remote: SocketAddr,
    /// Redacted API key, when one was sent.
    pub api_key: Option<String>,
    /// HTTP status answered (0 when the connection was cut without a response).
    pub status: u16,
    /// `stored`, a reject reason, or a fault kind.
    pub outcome: Cow<'static, str>,
    /// Events in the request (0 when not parsed).
    pub events: usize,
    /// Events stored from it.
    pub stored: usize,
    /// Events deduplicated from it.
    pub deduplicated: usize,
    /// Raw body length, bytes.
    pub body_bytes: usize,
    /// The response body as sent (API key redacted; JSON: a string). Shares the answer's
    /// buffer: journaling it copies nothing.
    #[serde(serialize_with = "serialize_text")]
    pub response: bytes::Bytes,
    /// The request's `events` array, when `journal_bodies` is on.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub events_json: Option<Box<RawValue>>,
    /// The fault injected, if any.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fault: Option<String>,
    /// Request headers as received, read redacted (see [`RequestHeaders`]). Not in the
    /// `/__mock/requests` JSON.
    #[serde(skip)]
    pub headers: RequestHeaders,
    /// The body as received (before gzip decoding), when it was read (none for a body over
    /// the limit, cut or late). Kept for every request, bounded by the journal's caps
    /// ([`LedgerConfig::journal_capacity`], [`LedgerConfig::journal_max_body_bytes`]). Not in
    /// the `/__mock/requests` JSON.
    #[serde(skip)]
    pub raw_body: Option<bytes::Bytes>,
    /// The body after `Content-Encoding: gzip` decoding (= `raw_body` when not gzipped), when
    /// it could be read and decoded. Same bounds as `raw_body`.
    #[serde(skip)]
    pub body: Option<bytes::Bytes>,
}

fn serialize_method<S: serde::Serializer>(m: &http::Method, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(m.as_str())
}

fn serialize_text<S: serde::Serializer>(b: &bytes::Bytes, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&String::from_utf8_lossy(b))
}

impl JournalEntry {
    /// The response body as text (lossy UTF-8).
    pub fn response_text(&self) -> Cow<'_, str> {
        String::from_utf8_lossy(&self.response)
    }

    /// Bytes of request bodies this entry holds (counted against
    /// [`LedgerConfig::journal_max_body_bytes`]).
    fn held_bytes(&self) -> usize {
        let raw = self.raw_body.as_ref().map_or(0, bytes::Bytes::len);
        // A body that was not gzipped shares the raw body's buffer.
        let decoded = match (&self.body, &self.raw_body) {
            (Some(b), Some(r)) if b.as_ptr() == r.as_ptr() => 0,
            (Some(b), _) => b.len(),
            (None, _) => 0,
        };
        raw + decoded + self.events_json.as_ref().map_or(0, |b| b.get().len())
    }
}

/// Counters of `/__mock/stats`. Exact, lock-free.
#[derive(Debug)]
pub(crate) struct Counters {
    requests_by_status: [AtomicU64; 600],
    requests_cut: AtomicU64,
    events_received: AtomicU64,
    events_stored: AtomicU64,
    events_deduplicated: AtomicU64,
    events_rejected: [AtomicU64; 14],
    property_updates_applied: AtomicU64,
    property_updates_dropped: AtomicU64,
    property_updates_skipped: AtomicU64,
    faults: Mutex<BTreeMap<String, FaultCount>>,
}

impl Default for Counters {
    fn default() -> Self {
        Self {
            requests_by_status: std::array::from_fn(|_| AtomicU64::new(0)),
            requests_cut: AtomicU64::new(0),
            events_received: AtomicU64::new(0),
            events_stored: AtomicU64::new(0),
            events_deduplicated: AtomicU64::new(0),
            events_rejected: std::array::from_fn(|_| AtomicU64::new(0)),
            property_updates_applied: AtomicU64::new(0),
            property_updates_dropped: AtomicU64::new(0),
            property_updates_skipped: AtomicU64::new(0),
            faults: Mutex::new(BTreeMap::new()),
        }
    }
}

/// Injected faults of one kind.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct FaultCount {
    /// Times injected.
    pub injected: u64,
    /// Of which the request's events were stored first ("committed", spec §5.5).
    pub committed: u64,
}

/// `GET /__mock/stats`. Invariant: `events_received = events_stored + events_deduplicated +
/// events_rejected.total` (events of a committed fault count as stored). Deserializes from
/// the JSON of `GET /__mock/stats`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Stats {
    /// Requests by HTTP status answered, and [`StatusKey::Cut`] for those that got no
    /// (complete) response (`reset`, `close`, `hang`, `truncate` faults, a client gone while
    /// sending): the buckets sum to the requests handled. JSON keys: `"200"`, ..., `"cut"`.
    pub requests_by_status: BTreeMap<StatusKey, u64>,
    /// Requests that got no (complete) response (= `requests_by_status["cut"]`).
    pub requests_cut: u64,
    /// Events in requests that were parsed far enough to count them.
    pub events_received: u64,
    /// Events stored.
    pub events_stored: u64,
    /// Events answered 200 but not stored as duplicates (spec §9).
    pub events_deduplicated: u64,
    /// Events of rejected requests.
    pub events_rejected: RejectedStats,
    /// Events of requests answered 429 (also counted in `events_rejected`).
    pub events_throttled: u64,
    /// User-property updates applied (spec §3.3).
    pub property_updates_applied: u64,
    /// User-property updates silently dropped (spec §8.1).
    pub property_updates_dropped: u64,
    /// Updates skipped by `$skip_user_properties_sync` (spec §3.2).
    pub property_updates_skipped: u64,
    /// Faults injected, by kind.
    pub faults: BTreeMap<String, FaultCount>,
}

/// Rejected events, total and by reason.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RejectedStats {
    /// All rejected events.
    pub total: u64,
    /// By reason (only reasons that occurred); JSON keys are the snake_case reasons.
    pub by_reason: BTreeMap<RejectReason, u64>,
}

struct Events {
    list: VecDeque<StoredEvent>,
    next_seq: u64,
    by_fingerprint: FingerprintMap<u64>,
    dedups: VecDeque<DedupRecord>,
    drops: VecDeque<PropertyDropRecord>,
}

struct Journal {
    entries: VecDeque<JournalEntry>,
    body_bytes: usize,
    /// Requests evicted since the last reset (their ids are below the oldest kept).
    evicted: u64,
}

/// The ledger. All methods take `&self`; shared behind an `Arc`. Outside the mock it is
/// read-only ([`crate::MockState::ledger`]): only the pipeline writes to it.
pub struct Ledger {
    config: LedgerConfig,
    events: Mutex<Events>,
    journal: Mutex<Journal>,
    next_request_id: AtomicU64,
    /// Exact counters.
    pub(crate) counters: Counters,
}

/// An event ready to store, built by the ingest path.
#[derive(Debug)]
pub(crate) struct NewEvent {
    /// The event JSON.
    pub event: EventJson,
    /// Dedup fingerprint, when the event has an `insert_id`.
    pub fingerprint: Option<u64>,
}

impl Ledger {
    /// An empty ledger bounded by `config`.
    pub(crate) fn new(config: LedgerConfig) -> Self {
        Self {
            config,
            events: Mutex::new(Events {
                list: VecDeque::new(),
                next_seq: 1,
                by_fingerprint: FingerprintMap::default(),
                dedups: VecDeque::new(),
                drops: VecDeque::new(),
            }),
            journal: Mutex::new(Journal {
                entries: VecDeque::new(),
                body_bytes: 0,
                evicted: 0,
            }),
            next_request_id: AtomicU64::new(1),
            counters: Counters::default(),
        }
    }

    /// The bounds in force.
    pub fn config(&self) -> &LedgerConfig {
        &self.config
    }

    /// A fresh request id.
    pub(crate) fn next_request_id(&self) -> u64 {
        self.next_request_id.fetch_add(1, Relaxed)
    }

    /// Stores `events` of one accepted request in order; returns the `seq` of the first.
    pub(crate) fn store(
        &self,
        request_id: u64,
        project_id: u32,
        api_key: &Arc<str>,
        endpoint: Api,
        server_upload_time: i64,
        events: Vec<NewEvent>,
    ) -> u64 {
        let n = events.len() as u64;
        let mut ev = self.events.lock();
        let first = ev.next_seq;
        for e in events {
            let seq = ev.next_seq;
            ev.next_seq += 1;
            if let Some(fp) = e.fingerprint {
                ev.by_fingerprint.insert(fp, seq);
            }
            ev.list.push_back(StoredEvent {
                seq,
                request_id,
                project_id,
                server_upload_time,
                endpoint,
                event: e.event,
                api_key: api_key.clone(),
                fingerprint: e.fingerprint,
            });
        }
        while ev.list.len() > self.config.max_events {
            if let Some(old) = ev.list.pop_front() {
                if let Some(fp) = old.fingerprint {
                    if ev.by_fingerprint.get(&fp) == Some(&old.seq) {
                        ev.by_fingerprint.remove(&fp);
                    }
                }
            }
        }
        drop(ev);
        self.counters.events_stored.fetch_add(n, Relaxed);
        first
    }

    /// Records a deduplicated event (spec §9).
    pub(crate) fn record_duplicate(
        &self,
        request_id: u64,
        index: usize,
        insert_id: &str,
        fingerprint: u64,
        at_ms: i64,
    ) {
        let mut ev = self.events.lock();
        let duplicate_of = ev.by_fingerprint.get(&fingerprint).copied();
        ev.dedups.push_back(DedupRecord {
            request_id,
            index,
            insert_id: insert_id.to_owned(),
            duplicate_of,
            at_ms,
        });
        while ev.dedups.len() > self.config.max_events {
            ev.dedups.pop_front();
        }
        drop(ev);
        self.counters.events_deduplicated.fetch_add(1, Relaxed);
    }

    /// Records a silently dropped user-property update (spec §8.1).
    pub(crate) fn record_property_drop(&self, rec: PropertyDropRecord) {
        let mut ev = self.events.lock();
        ev.drops.push_back(rec);
        while ev.drops.len() > self.config.max_events {
            ev.drops.pop_front();
        }
        drop(ev);
        self.counters.property_updates_dropped.fetch_add(1, Relaxed);
    }

    /// Counts a property update applied or skipped.
    pub(crate) fn count_property_update(&self, applied: bool) {
        if applied {
            self.counters.property_updates_applied.fetch_add(1, Relaxed);
        } else {
            self.counters.property_updates_skipped.fetch_add(1, Relaxed);
        }
    }

    /// Counts `n` events received.
    pub(crate) fn count_received(&self, n: usize) {
        self.counters.events_received.fetch_add(n as u64, Relaxed);
    }

    /// Counts `n` events rejected for `reason`.
    pub(crate) fn count_rejected(&self, reason: RejectReason, n: usize) {
        if let Some(i) = RejectReason::ALL.iter().position(|r| *r == reason) {
            self.counters.events_rejected[i].fetch_add(n as u64, Relaxed);
        }
    }

    /// Counts a response with HTTP `status` (0 = no (complete) response: the `"cut"` bucket).
    pub(crate) fn count_status(&self, status: u16) {
        if status == 0 {
            self.counters.requests_cut.fetch_add(1, Relaxed);
        } else if let Some(c) = self.counters.requests_by_status.get(usize::from(status)) {
            c.fetch_add(1, Relaxed);
        }
    }

    /// Counts an injected fault of `kind`, `committed` when its events were stored.
    pub(crate) fn count_fault(&self, kind: &str, committed: bool) {
        let mut f = self.counters.faults.lock();
        let c = f.entry(kind.to_owned()).or_default();
        c.injected += 1;
        c.committed += u64::from(committed);
    }

    /// Appends a request to the journal, evicting the oldest past the caps.
    pub(crate) fn journal(&self, mut entry: JournalEntry) {
        if !self.config.journal_bodies {
            entry.events_json = None;
        }
        let bytes = entry.held_bytes();
        let mut j = self.journal.lock();
        j.body_bytes += bytes;
        j.entries.push_back(entry);
        while j.entries.len() > self.config.journal_capacity
            || (j.body_bytes > self.config.journal_max_body_bytes && j.entries.len() > 1)
        {
            if let Some(old) = j.entries.pop_front() {
                j.body_bytes -= old.held_bytes();
                j.evicted += 1;
            }
        }
    }

    /// Stored events matching `filter`, in storage order.
    pub fn events(&self, filter: &EventFilter) -> Vec<StoredEvent> {
        let ev = self.events.lock();
        let limit = filter.limit.unwrap_or(usize::MAX);
        ev.list
            .iter()
            .filter(|e| filter.matches(e))
            .take(limit)
            .cloned()
            .collect()
    }

    /// Deduplication records, oldest first.
    pub fn duplicates(&self) -> Vec<DedupRecord> {
        self.events.lock().dedups.iter().cloned().collect()
    }

    /// Dropped property updates, oldest first.
    pub fn property_drops(&self) -> Vec<PropertyDropRecord> {
        self.events.lock().drops.iter().cloned().collect()
    }

    /// The journal, oldest first; at most the last `limit` entries.
    pub fn requests(&self, limit: Option<usize>) -> Vec<JournalEntry> {
        let j = self.journal.lock();
        let skip = limit.map_or(0, |l| j.entries.len().saturating_sub(l));
        j.entries.iter().skip(skip).cloned().collect()
    }

    /// Requests evicted from the journal (past its caps) since the start or the last reset.
    pub fn requests_evicted(&self) -> u64 {
        self.journal.lock().evicted
    }

    /// A snapshot of the counters.
    pub fn stats(&self) -> Stats {
        let c = &self.counters;
        let requests_cut = c.requests_cut.load(Relaxed);
        let requests_by_status = c
            .requests_by_status
            .iter()
            .enumerate()
            .filter_map(|(s, n)| {
                let n = n.load(Relaxed);
                (n > 0).then(|| (StatusKey::from(s as u16), n))
            })
            .chain((requests_cut > 0).then_some((StatusKey::Cut, requests_cut)))
            .collect();
        let by_reason: BTreeMap<RejectReason, u64> = RejectReason::ALL
            .iter()
            .zip(&c.events_rejected)
            .filter_map(|(r, n)| {
                let n = n.load(Relaxed);
                (n > 0).then_some((*r, n))
            })
            .collect();
        let throttled = by_reason
            .get(&RejectReason::Throttled)
            .copied()
            .unwrap_or(0)
            + by_reason
                .get(&RejectReason::DailyQuota)
                .copied()
                .unwrap_or(0);
        Stats {
            requests_by_status,
            requests_cut,
            events_received: c.events_received.load(Relaxed),
            events_stored: c.events_stored.load(Relaxed),
            events_deduplicated: c.events_deduplicated.load(Relaxed),
            events_rejected: RejectedStats {
                total: by_reason.values().sum(),
                by_reason,
            },
            events_throttled: throttled,
            property_updates_applied: c.property_updates_applied.load(Relaxed),
            property_updates_dropped: c.property_updates_dropped.load(Relaxed),
            property_updates_skipped: c.property_updates_skipped.load(Relaxed),
            faults: c.faults.lock().clone(),
        }
    }

    /// Forgets everything: events, journal, counters.
    pub(crate) fn reset(&self) {
        let mut ev = self.events.lock();
        ev.list.clear();
        ev.by_fingerprint.clear();
        ev.dedups.clear();
        ev.drops.clear();
        drop(ev);
        let mut j = self.journal.lock();
        j.entries.clear();
        j.body_bytes = 0;
        j.evicted = 0;
        drop(j);
        let c = &self.counters;
        for a in c.requests_by_status.iter().chain(&c.events_rejected) {
            a.store(0, Relaxed);
        }
        for a in [
            &c.requests_cut,
            &c.events_received,
            &c.events_stored,
            &c.events_deduplicated,
            &c.property_updates_applied,
            &c.property_updates_dropped,
            &c.property_updates_skipped,
        ] {
            a.store(0, Relaxed);
        }
        c.faults.lock().clear();
    }
}

/// Filters of `GET /__mock/events` (all optional, combined with AND).
#[derive(Debug, Clone, Default, Deserialize)]
pub struct EventFilter {
    /// Only this project's events.
    pub api_key: Option<String>,
    /// Only events with this `user_id`.
    pub user_id: Option<String>,
    /// Only events with this `device_id`.
    pub device_id: Option<String>,
    /// Only events with this `insert_id`.
    pub insert_id: Option<String>,
    /// At most this many events.
    pub limit: Option<usize>,
}

#[derive(Deserialize)]
struct Ids<'a> {
    #[serde(borrow, default)]
    user_id: Option<std::borrow::Cow<'a, str>>,
    #[serde(borrow, default)]
    device_id: Option<std::borrow::Cow<'a, str>>,
    #[serde(borrow, default)]
    insert_id: Option<std::borrow::Cow<'a, str>>,
}

impl EventFilter {
    fn matches(&self, e: &StoredEvent) -> bool {
        if self.api_key.as_deref().is_some_and(|k| k != &*e.api_key) {
            return false;
        }
        if self.user_id.is_none() && self.device_id.is_none() && self.insert_id.is_none() {
            return true;
        }
        let Ok(ids) = serde_json::from_str::<Ids<'_>>(e.event.get()) else {
            return false;
        };
        let eq = |want: &Option<String>, got: &Option<std::borrow::Cow<'_, str>>| {
            want.as_deref().is_none_or(|w| got.as_deref() == Some(w))
        };
        eq(&self.user_id, &ids.user_id)
            && eq(&self.device_id, &ids.device_id)
            && eq(&self.insert_id, &ids.insert_id)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn request_headers_read_redacted_in_order_and_in_debug() {
        let mut h = http::HeaderMap::new();
        h.insert("content-type", "application/json".parse().unwrap());
        h.insert(
            "authorization",
            "Bearer secret-token-0123456789".parse().unwrap(),
        );
        h.insert(
            "x-api-key",
            "0123456789abcdef0123456789abcdef".parse().unwrap(),
        );
        let headers = RequestHeaders::new(h);
        let r = headers.redacted();
        assert_eq!(r.len(), 3);
        assert_eq!(r[0], ("content-type".into(), "application/json".into()));
        assert_eq!(
            r[1].1,
            crate::projects::redact_key("Bearer secret-token-0123456789")
        );
        assert_eq!(
            r[2].1,
            crate::projects::redact_key("0123456789abcdef0123456789abcdef")
        );
        let debug = format!("{headers:?}");
        assert!(
            !debug.contains("secret-token") && !debug.contains("0123456789abcdef0123"),
            "{debug}"
        );
        assert!(debug.contains("application/json"), "{debug}");
    }
}
