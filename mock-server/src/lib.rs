//! A faithful, fast mock of Amplitude's ingestion API (`/2/httpapi`, `/batch`, ...): the same
//! limits, response bodies and silent drops, with a ledger that tells the truth about every
//! event: stored, deduplicated, rejected (why), property update dropped.
//!
//! Behaviour follows `shared/spec/amplitude-api.md` ("spec §N" in the docs); every UNCERTAIN
//! point is a knob of [`FidelityProfile`].
//!
//! In a test:
//!
//! ```
//! # async fn demo() -> std::io::Result<()> {
//! use amplitude_mock::MockServer;
//! let mock = MockServer::builder().api_key("KEY").virtual_clock(1_700_000_000_000).start().await?;
//! // ... point the sender under test at format!("{}/2/httpapi", mock.uri()) ...
//! mock.clock().advance_ms(7 * 24 * 3_600_000); // a week later, in no time
//! assert!(mock.events().is_empty());
//! # Ok(()) }
//! # tokio::runtime::Runtime::new().unwrap().block_on(demo()).unwrap();
//! ```

mod admin;
mod body;
mod clock;
mod config;
mod dedup;
mod faults;
mod identify;
mod ingest;
mod ledger;
mod limits;
mod metrics;
mod mock;
mod profile;
mod projects;
mod properties;
mod refuse;
mod scan;
mod server;
mod state;
mod tls;
mod validate;

pub use clock::{Clock, MockClock};
pub use config::{ConfigError, ConfigErrors, ConfigIssue, MockConfig};
pub use dedup::{fingerprint, DedupStore};
pub use faults::{
    canned_body, faults_problems, parse_faults_json, CannedContext, Fault, FaultBody, FaultError,
    FaultKind, Faults, ScheduledFault, REAL_BODY_STATUSES,
};
pub use ingest::Outcome;
pub use ledger::{
    DedupRecord, Endpoint, EventFilter, JournalEntry, LedgerConfig, PropertyDropRecord,
    RejectReason, Stats, StoredEvent,
};
pub use limits::{LimitConfig, Limiter, Usage};
pub use metrics::{Metrics, Route};
pub use mock::{MockServer, MockServerBuilder};
pub use profile::{
    DedupKey, FidelityProfile, IndexLists, Limits, LongStringPolicy, Megabyte, ShortIdPolicy,
};
pub use projects::{ProjectConfig, Region};
pub use properties::{PropertyConfig, PropertyOutcome, PropertyStore, UserState};
pub use refuse::ListenerView;
pub use server::{serve, serve_with, ServeOptions};
pub use state::MockState;
pub use tls::{TlsError, TlsIdentity, DEFAULT_TLS_NAMES};
