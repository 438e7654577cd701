//! A faithful, fast mock of Amplitude's ingestion API (`/2/httpapi`, `/batch`, ...): the same
//! limits, response bodies and silent drops, with a ledger that tells the truth about every
//! event: stored, deduplicated, rejected (why), property update dropped.
//!
//! A user guide in the spirit of wiremock-rs: [start](#start-a-mock-in-a-test),
//! [assert](#assert-what-the-sender-sent), [faults](#faults),
//! [throttling and the clock](#throttling-and-the-clock), [dedup](#deduplication),
//! [configuration](#configuration), [benchmark your sender](#benchmark-your-sender). Every
//! example below is compiled and run by `cargo test -p amplitude-mock --doc`.
//!
//! # Start a mock in a test
//!
//! [`MockServer::start`] (any API key accepted) or [`MockServer::builder`] `...start().await`
//! returns the running mock and panics naming the cause if it cannot start (as wiremock-rs
//! does; [`MockServerBuilder::try_start`] returns the `io::Result`). The mock serves from a
//! thread and tokio runtime of its own, so it answers any client: async, or blocking inside a
//! current-thread `#[tokio::test]`. A plain `#[test]` without a runtime uses
//! [`MockServerBuilder::start_blocking`]. Dropping the mock stops it (its port is closed when
//! `drop` returns) and checks its expectations.
//!
//! ```
//! use amplitude_mock::MockServer;
//! use serde_json::json;
//! # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(async {
//! // in a #[tokio::test] async fn:
//! let mock = MockServer::builder()
//!     .api_key("KEY")
//!     .virtual_clock(1_700_000_000_000) // time moves only when the test says so
//!     .start()
//!     .await;
//! let url = format!("{}/2/httpapi", mock.uri()); // point the sender under test here
//! let body = json!({"api_key": "KEY", "events": [
//!     {"device_id": "device-1", "event_type": "A", "insert_id": "i-1"}]});
//! let resp = reqwest::Client::new().post(&url).json(&body).send().await.unwrap();
//! assert_eq!(resp.status(), 200);
//! assert_eq!(mock.stats().events_stored, 1);
//! # });
//!
//! // in a plain #[test]:
//! let mock = MockServer::builder().api_key("KEY").start_blocking();
//! assert!(mock.uri().starts_with("http://127.0.0.1:"));
//! ```
//!
//! # Assert what the sender sent
//!
//! - [`MockServer::stats`]: exact counters ([`Stats`]: received, stored, deduplicated,
//!   rejected by [`RejectReason`], requests by [`StatusKey`]); `GET /__mock/stats` is the same
//!   JSON and deserializes into [`Stats`].
//! - [`MockServer::events`]: the stored events ([`StoredEvent`], with
//!   [`StoredEvent::insert_id`], [`StoredEvent::device_id`], [`StoredEvent::user_id`],
//!   [`StoredEvent::json`]); [`MockServer::duplicates`]; [`MockServer::property_drops`].
//! - [`MockServer::received_requests`]: every request with its headers (key headers
//!   redacted), raw and decoded body, status and response ([`ReceivedRequest`]; the journal
//!   is bounded by [`LedgerConfig`]).
//! - Expectations, checked by [`MockServer::verify`] or when the mock is dropped (a panic
//!   listing every unmet expectation and what was seen; none while the test is already
//!   panicking): [`MockServer::expect_uploads`] (`3`, `1..=3`, `2..`: [`Times`]),
//!   [`MockServer::expect_every_request_gzip`], [`MockServer::expect_no_request_after`],
//!   [`MockServer::expect_device_never_sent_inside_throttle_window`];
//!   [`MockServer::check_expectations`] returns the message instead of panicking.
//!
//! ```
//! use amplitude_mock::MockServer;
//! use serde_json::json;
//! # tokio::runtime::Runtime::new().unwrap().block_on(async {
//! let mock = MockServer::builder().api_key("KEY").start().await;
//! mock.expect_uploads(1);
//! mock.expect_every_request_gzip();
//! let body = json!({"api_key": "KEY", "events": [{"device_id": "device-1", "event_type": "A"}]});
//! reqwest::Client::new()
//!     .post(format!("{}/2/httpapi", mock.uri()))
//!     .header("x-sdk", "my-sender/1.0")
//!     .json(&body)
//!     .send()
//!     .await
//!     .unwrap();
//! let sent = &mock.received_requests()[0];
//! assert_eq!(sent.header("x-sdk"), Some("my-sender/1.0"));
//! assert_eq!(sent.events()[0]["device_id"], "device-1");
//! // This sender did not gzip: the expectation says so.
//! let unmet = mock.check_expectations().unwrap_err();
//! assert!(unmet.contains("1 not gzipped: request 1 /2/httpapi"), "{unmet}");
//! mock.clear_expectations(); // or the drop would panic with that message
//! # });
//! ```
//!
//! # Faults
//!
//! Seeded, replayable misbehaviour ([`Fault`], `docs/faults.md`): 5xx (optionally committed:
//! stored, then answered 500, spec §5.5), HTML error pages, delays, resets, truncated or
//! trickled answers, refused connections, forced throttling of one identity. Schedule them at
//! start with [`MockServerBuilder::fault`] or on the running mock with
//! [`MockServer::faults`]; [`Stats::faults`] counts them.
//!
//! ```
//! use amplitude_mock::{Fault, MockServer};
//! use serde_json::json;
//! # tokio::runtime::Runtime::new().unwrap().block_on(async {
//! let mock = MockServer::builder()
//!     .seed(7)
//!     .fault(Fault::status(503).count(1)) // the first upload gets a 503
//!     .start()
//!     .await;
//! mock.faults().push(Fault::status(500).committed(true).count(1)).unwrap(); // then this
//! let url = format!("{}/2/httpapi", mock.uri());
//! let body = json!({"api_key": "KEY", "events": [{"device_id": "device-1", "event_type": "A", "insert_id": "i-1"}]});
//! let http = reqwest::Client::new();
//! let mut got = Vec::new();
//! for _ in 0..3 {
//!     got.push(http.post(&url).json(&body).send().await.unwrap().status().as_u16());
//! }
//! assert_eq!(got, [503, 500, 200]);
//! // The committed 500 stored the event; the retry's insert_id was deduplicated.
//! let s = mock.stats();
//! assert_eq!((s.events_stored, s.events_deduplicated), (1, 1));
//! assert_eq!(s.faults["status"].injected, 2);
//! # });
//! ```
//!
//! # Throttling and the clock
//!
//! Every time rule (EPS throttling per device and per user over a 30 s window, spec §8; the
//! daily quota, §8.1; the dedup window, §9; property-update rates) reads one [`MockClock`].
//! With [`MockServerBuilder::virtual_clock`] time stands still until the test moves it with
//! [`MockClock::advance_ms`] (or `POST /__mock/clock`): a test storms, then waits out a
//! window in no wall time. Lower [`Limits`] to trigger rules with small numbers.
//!
//! ```
//! use amplitude_mock::{Limits, MockServer};
//! use serde_json::json;
//! # tokio::runtime::Runtime::new().unwrap().block_on(async {
//! let mock = MockServer::builder()
//!     .virtual_clock(1_700_000_000_000)
//!     .limits(Limits { eps_threshold_http_v2: 1, ..Limits::default() }) // 30 events / 30 s
//!     .start()
//!     .await;
//! mock.expect_device_never_sent_inside_throttle_window("device-hot");
//! let url = format!("{}/2/httpapi", mock.uri());
//! let upload = |n: usize, tag: &str| {
//!     let events: Vec<_> = (0..n)
//!         .map(|i| json!({"device_id": "device-hot", "event_type": "A", "insert_id": format!("{tag}-{i}")}))
//!         .collect();
//!     json!({"api_key": "KEY", "events": events})
//! };
//! let http = reqwest::Client::new();
//! let post = |body| http.post(&url).json(&body).send();
//! assert_eq!(post(upload(31, "a")).await.unwrap().status(), 200);
//! let r = post(upload(1, "b")).await.unwrap();
//! assert_eq!(r.status(), 429); // spec §5.4: {"throttled_devices": {"device-hot": 2}, ...}
//! mock.clock().advance_ms(30_000); // the sender waits out the window: accepted again
//! assert_eq!(post(upload(1, "b")).await.unwrap().status(), 200);
//! mock.verify();
//! # });
//! ```
//!
//! # Deduplication
//!
//! An event whose `insert_id` (with its `device_id`) was stored in the last 7 days is
//! answered 200 and not stored (spec §9); [`MockServer::duplicates`] names the stored event
//! it duplicated. A sender that retries with the same `insert_id`s never stores twice.
//!
//! ```
//! use amplitude_mock::MockServer;
//! use serde_json::json;
//! # tokio::runtime::Runtime::new().unwrap().block_on(async {
//! let mock = MockServer::start().await;
//! let body = json!({"api_key": "KEY", "events": [{"device_id": "device-1", "event_type": "A", "insert_id": "once"}]});
//! for _ in 0..2 {
//!     let url = format!("{}/2/httpapi", mock.uri());
//!     reqwest::Client::new().post(url).json(&body).send().await.unwrap();
//! }
//! let stored = mock.events();
//! assert_eq!(stored.len(), 1);
//! assert_eq!(stored[0].insert_id().as_deref(), Some("once"));
//! assert_eq!(mock.duplicates()[0].duplicate_of, Some(stored[0].seq));
//! # });
//! ```
//!
//! # Configuration
//!
//! The builder's settings compose whatever the call order (ADR 008): a whole
//! [`MockConfig`] given with [`MockServerBuilder::config`] (e.g. a `mock.toml` read with
//! [`MockConfig::from_path`]) is a base; each setter overrides its own setting of it;
//! projects and faults add up; `.config` twice is refused at start;
//! [`MockServerBuilder::profile_for_benchmarks`] applies last.
//! [`MockServerBuilder::resolved_config`] shows the result.
//!
//! ```
//! use amplitude_mock::{MockConfig, MockServer};
//! let file = MockConfig::from_toml_str("seed = 1\n[ledger]\nmax_events = 5000\n", "mock.toml").unwrap();
//! let a = MockServer::builder().api_key("KEY").seed(7).config(file.clone());
//! let b = MockServer::builder().config(file).seed(7).api_key("KEY");
//! assert_eq!(a.resolved_config().unwrap(), b.resolved_config().unwrap());
//! let c = a.resolved_config().unwrap();
//! assert_eq!((c.seed, c.ledger.max_events, c.projects.len()), (7, 5000, 1));
//! ```
//!
//! # Benchmark your sender
//!
//! Measuring a sender's throughput against the mock takes three rules; a complete criterion
//! benchmark to copy is `mock-server/benches/benchmark_your_sender.rs`
//! (`cargo bench -p amplitude-mock --bench benchmark_your_sender`).
//!
//! 1. Build the mock with [`MockServerBuilder::profile_for_benchmarks`] (= `.unthrottled()`):
//!    the default limits measure Amplitude's 30 events/s per-device throttle, not your
//!    sender; the profile lifts every rate and volume limit ([`Limits::unthrottled`]) and caps
//!    the ledger ([`LedgerConfig::capped_for_benchmarks`]: 100,000 events, 1,000 requests,
//!    16 MiB of bodies) so memory stays bounded however long criterion runs.
//! 2. Give every event of every iteration a fresh `insert_id`: repeated ones are
//!    deduplicated (answered 200, not stored) and you would measure dedup.
//! 3. Call [`MockServer::reset`] between groups, and after each group assert that the run was
//!    pure delivery: `events_throttled`, `events_deduplicated` and `events_rejected.total` of
//!    [`MockServer::stats`] all 0. When a benchmark-profile mock is dropped after a run that
//!    throttled, deduplicated or rejected events, it also logs a `WARN`
//!    (`amplitude-mock: this benchmark run was not pure delivery ...`) with the counts.
//!
//! ```
//! use amplitude_mock::MockServer;
//! use serde_json::json;
//! # tokio::runtime::Runtime::new().unwrap().block_on(async {
//! let mock = MockServer::builder().api_key("KEY").profile_for_benchmarks().start().await;
//! let url = format!("{}/2/httpapi", mock.uri());
//! let http = reqwest::Client::new();
//! for group in 0..2 {
//!     mock.reset();
//!     for iteration in 0..3 {
//!         // 100 events of ONE device in one instant: a 429 without the profile.
//!         let events: Vec<_> = (0..100)
//!             .map(|i| json!({"device_id": "device-1", "event_type": "A",
//!                             "insert_id": format!("g{group}-it{iteration}-{i}")}))
//!             .collect();
//!         let body = json!({"api_key": "KEY", "events": events});
//!         assert_eq!(http.post(&url).json(&body).send().await.unwrap().status(), 200);
//!     }
//!     let s = mock.stats();
//!     assert_eq!((s.events_throttled, s.events_deduplicated, s.events_rejected.total), (0, 0, 0));
//!     assert_eq!(s.events_stored, 300);
//! }
//! # });
//! ```
//!
//! Behaviour follows the repository's `docs/amplitude-behaviour.md`: "spec §N" in the docs and
//! comments of this crate means section N of that page. Every UNCERTAIN point there is a knob
//! of [`FidelityProfile`].

// Layers, top to bottom (docs/architecture.md "amplitude-mock layers"); a module imports
// only from the layers below it.
//
// 1. embedding: the MockServer, its builder and the builder's settings
mod expect;
mod mock;
mod received;
mod settings;
// 2. router and transport: listeners, connections, fault delivery
mod server;
// 3. route families, and what they share about one request
mod routes;
// 4. rule steps shared by route families (per-identity throttling, user properties)
mod steps;
// 5. the state: one MockState holding the rules
mod state;
// 6. stateful rules and their configuration
mod clock;
pub mod config;
mod dedup;
mod event_json;
pub mod faults;
pub mod ledger;
mod limits;
mod metrics;
pub mod profile;
mod projects;
mod properties;
mod refuse;
mod scan;
mod validate;
// 7. leaves: HTTP plumbing and TLS
mod http_util;
pub mod tls;

pub use clock::{Clock, MockClock};
pub use config::{ConfigError, ConfigErrors, MockConfig};
pub use event_json::EventJson;
pub use expect::Times;
pub use faults::{Fault, FaultError, Faults};
pub use ledger::{
    DedupRecord, EventFilter, FaultCount, JournalEntry, Ledger, LedgerConfig, PropertyDropRecord,
    RejectReason, RejectedStats, RequestHeaders, Stats, StatusKey, StoredEvent,
};
pub use mock::{shutdown_signal, MockServer, MockServerBuilder};
pub use profile::{FidelityProfile, Limits};
pub use projects::{ProjectConfig, Region};
pub use received::ReceivedRequest;
pub use refuse::ListenerView;
pub use server::serve;
pub use state::MockState;
pub use tls::TlsError;

/// The repository's README, whose Rust snippets are compiled and run as doc tests.
#[cfg(doctest)]
#[doc = include_str!("../../README.md")]
pub struct ReadmeDoctests;

/// This crate's README, whose Rust snippets are compiled and run as doc tests too.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
pub struct CrateReadmeDoctests;

/// The mock's internals for its benchmarks and tests (the rule stores and the socket-free
/// pipeline). Not a stable API.
#[doc(hidden)]
pub mod bench_internals {
    pub use crate::dedup::{fingerprint, DedupStore};
    pub use crate::limits::{LimitConfig, Limiter, Usage};
    pub use crate::routes::ingest::Outcome;
    pub use amplitude_wire::Api;

    use crate::projects::Region;
    use crate::state::MockState;

    /// Runs one HTTP V2 or Batch upload through the pipeline without a socket (what
    /// `POST /2/httpapi` and `POST /batch` do once the body is in): `body` decompressed
    /// (stored events are slices of it),
    /// `payload_size_bytes` as the 200 reports it, `request_id` from [`next_request_id`].
    pub fn ingest(
        state: &MockState,
        endpoint: Api,
        region: Region,
        body: &bytes::Bytes,
        payload_size_bytes: usize,
        request_id: u64,
    ) -> Outcome {
        crate::routes::ingest::ingest(
            state,
            endpoint,
            region,
            body,
            payload_size_bytes,
            request_id,
            crate::steps::ForcedThrottle::default(),
        )
    }

    /// A fresh request id of `state`'s journal.
    pub fn next_request_id(state: &MockState) -> u64 {
        state.ledger.next_request_id()
    }
}
