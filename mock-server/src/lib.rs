//! A faithful, fast mock of Amplitude's ingestion API (`/2/httpapi`, `/batch`, ...): the same
//! limits, response bodies and silent drops, with a ledger that tells the truth about every
//! event: stored, deduplicated, rejected (why), property update dropped.
//!
//! Behaviour follows the repository's `docs/amplitude-behaviour.md`: "spec §N" in the docs and
//! comments of this crate means section N of that page. Every UNCERTAIN point there is a knob
//! of [`FidelityProfile`].
//!
//! In a test:
//!
//! ```
//! # async fn demo() -> std::io::Result<()> {
//! use amplitude_mock::MockServer;
//! let mock = MockServer::builder().api_key("KEY").virtual_clock(1_700_000_000_000).start().await;
//! // ... point the sender under test at format!("{}/2/httpapi", mock.uri()) ...
//! mock.clock().advance_ms(7 * 24 * 3_600_000); // a week later, in no time
//! assert!(mock.events().is_empty());
//! # Ok(()) }
//! # tokio::runtime::Runtime::new().unwrap().block_on(demo()).unwrap();
//! ```

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
pub use faults::{Fault, FaultError, Faults};
pub use ledger::{
    DedupRecord, EventFilter, FaultCount, JournalEntry, Ledger, LedgerConfig, PropertyDropRecord,
    RejectReason, RejectedStats, Stats, StatusKey, StoredEvent,
};
pub use expect::Times;
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

/// The mock's internals for its benchmarks and tests (the rule stores and the socket-free
/// pipeline). Not a stable API.
#[doc(hidden)]
pub mod bench_internals {
    pub use crate::dedup::{fingerprint, DedupStore};
    pub use crate::ledger::Endpoint;
    pub use crate::limits::{LimitConfig, Limiter, Usage};
    pub use crate::routes::ingest::Outcome;

    use crate::projects::Region;
    use crate::state::MockState;

    /// Runs one HTTP V2 or Batch upload through the pipeline without a socket (what
    /// `POST /2/httpapi` and `POST /batch` do once the body is in): `body` decompressed,
    /// `payload_size_bytes` as the 200 reports it, `request_id` from [`next_request_id`].
    pub fn ingest(
        state: &MockState,
        endpoint: Endpoint,
        region: Region,
        body: &[u8],
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
