//! The event-level conformance suite for Amplitude senders and the reference sender.
//!
//! The runner ([`runner`]) runs each scenario against a sender started as a child process
//! (ADR 004) and an embedded mock; the checker ([`check`]) judges every event from the mock's
//! ledger and journal. Runner and checker print nothing: progress goes to a callback
//! ([`runner::SuiteProgress`]) and the binary prints.
//!
//! The reference sender ([`sender`]) persists every accepted event before acknowledging it,
//! batches per identity within the endpoint's limits, and handles every response branch of
//! Amplitude's ingestion API (spec §4-§9) without losing or duplicating an event.
//!
//! "spec §N" in this crate means section N of the repository's `docs/amplitude-behaviour.md`;
//! the checker's vocabulary is in `docs/architecture.md` and its rules in
//! `docs/conformance/checks.md`; the sender contract in `docs/sender-contract.md`.
//!
//! ```no_run
//! # async fn demo() -> Result<(), amplitude_conformance::SenderError> {
//! use amplitude_conformance::{Endpoint, Sender, SenderConfig};
//! use std::time::Duration;
//! let cfg = SenderConfig::new("KEY", Endpoint::HttpV2, "http://127.0.0.1:8080/2/httpapi", "/tmp/state");
//! let (sender, mut outcomes) = Sender::start(cfg).await?;
//! sender.send(vec![amplitude_wire::Event::new("Sign Up").with_user_id("user-12345")]).await?;
//! let report = sender.shutdown(Duration::from_secs(10)).await?;
//! assert_eq!(report.left_in_queue, 0);
//! # Ok(()) }
//! ```

#![warn(unnameable_types)]

pub mod check;
pub mod runner;
/// The reference sender, now its own crate (`amplitude-sender`), re-exported here.
pub use amplitude_sender as sender;

pub use sender::{
    run_jsonl, CoreConfig, Endpoint, Outcome, OutcomeKind, Region, Sender, SenderConfig,
    SenderError, SenderReport,
};
