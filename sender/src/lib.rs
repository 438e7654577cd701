//! `amplitude-sender`: a durable sender of events to Amplitude's HTTP V2 and Batch APIs that
//! loses nothing: every event is on disk before [`Sender::track`] returns, and from then on
//! it is delivered (a 200 covered it) or dead-lettered with its reason, across crashes and
//! restarts. The conformance suite's reference sender (`amplitude-conformance sender`) is
//! this library behind the sender contract.
//!
//! # User guide
//!
//! ```no_run
//! # async fn demo() -> Result<(), amplitude_sender::SenderError> {
//! use amplitude_sender::{OutcomeKind, Region, Sender};
//! use amplitude_wire::Event;
//! use std::time::Duration;
//!
//! let (sender, mut outcomes) = Sender::builder("YOUR_API_KEY")
//!     .region(Region::Eu)                       // default: US; HTTPS to the region's host
//!     .state_dir("/var/lib/myapp/amplitude")   // required: the durable queue lives here
//!     .build()
//!     .await?;                                  // resends what a previous run left
//! tokio::spawn(async move {
//!     while let Some(o) = outcomes.recv().await {
//!         if let OutcomeKind::DeadLettered(reason) = &o.kind {
//!             eprintln!("{} dead-lettered: {reason}", o.insert_id);
//!         }
//!     }
//! });
//! sender.track(Event::new("Sign Up").with_user_id("user-12345")).await?; // durable now
//! sender.flush().await?;          // every event tracked so far has its final outcome
//! let report = sender.shutdown(Duration::from_secs(10)).await?; // drain, then stop
//! assert_eq!(report.left_in_queue, 0);
//! # Ok(()) }
//! ```
//!
//! - [`Sender::builder`] → [`SenderBuilder`]: region, endpoint ([`Endpoint::HttpV2`] or
//!   [`Endpoint::Batch`]), a URL override (a proxy, a local `amplitude-mock`), the state
//!   directory, batch size, flush interval, request timeout, max attempts, seed; every other
//!   knob through [`SenderBuilder::config`] with a [`SenderConfig`]. Defaults: [`defaults`].
//! - [`Sender::track`] / [`Sender::send`]: accept events (an `insert_id` is added when
//!   missing); return once persisted (one fsync shared by concurrent calls). An error (disk
//!   full) means not accepted; nothing accepted before is affected.
//! - [`Sender::flush`]: resolves when everything accepted before it is delivered or
//!   dead-lettered. [`Sender::shutdown`]: drains until a deadline; what is left stays in the
//!   state directory and is reported [`OutcomeKind::Held`].
//! - [`Outcomes`]: one [`Outcome`] per event: [`OutcomeKind::Delivered`],
//!   [`OutcomeKind::Dropped`] (coalesced into another event), [`OutcomeKind::DeadLettered`]
//!   (refused for good; also in `dead_letters.jsonl`), [`OutcomeKind::Held`] (at exit).
//! - One sender per state directory: a second one fails at start with
//!   [`queue::LockError::Held`] naming the directory and the holder's pid.
//!
//! Guarantees, the durability model, the on-disk format and tuning: the crate's README.md.
//!
//! # Layers
//!
//! - [`Core`] is the pure state machine (batching per endpoint, response handling, pauses,
//!   pacing, backoff) driven by an injected clock (ms) and a seeded RNG.
//! - [`Sender`] is the async shell: durable queue (ADR 002, ADR 009), keep-alive HTTP(S),
//!   several requests in flight across identities, dead letters, drain on shutdown.
//! - [`run_jsonl`] speaks the third-party sender contract (docs/sender-contract.md).
//!
//! "spec §N" means section N of the repository's `docs/amplitude-behaviour.md`.

mod backoff;
mod batcher;
mod builder;
mod command;
mod config;
mod core;
#[doc(hidden)]
pub mod crash;
pub mod defaults;
mod event;
mod outcome;
mod pacing;
pub mod queue; // the state directory: file names, dead letters, its error
mod response;
mod runtime;

pub use self::core::{Core, CoreStats, Effect, OutRequest};
pub use backoff::BackoffConfig;
pub use builder::{Outcomes, SenderBuilder};
pub use command::{contract_state_dir, run_jsonl, STATE_DIR_ENV};
pub use config::{CoreConfig, Endpoint, Region, SenderConfig};
pub use event::{EventKey, QueuedEvent};
pub use outcome::{Outcome, OutcomeKind};
pub use pacing::RequestId;
pub use response::{HttpResult, ResponseAction, Throttle};
pub use runtime::{Sender, SenderError, SenderReport};
