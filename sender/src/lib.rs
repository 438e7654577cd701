//! `amplitude-sender`: the reference Amplitude sender as a library: durable, per-identity
//! batching and backoff that loses nothing.
//!
//! - [`Core`] is the pure state machine (batching per endpoint, response handling, pauses,
//!   pacing, backoff) driven by an injected clock (ms) and a seeded RNG.
//! - [`Sender`] is the async shell: durable queue (ADR 002), keep-alive HTTP, several
//!   requests in flight across identities, dead letters, drain on shutdown.
//! - [`run_jsonl`] speaks the third-party sender contract (docs/sender-contract.md).

mod backoff;
mod batcher;
mod builder;
mod command;
mod config;
mod core;
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
pub use command::run_jsonl;
pub use config::{CoreConfig, Endpoint, Region, SenderConfig};
pub use event::{EventKey, QueuedEvent};
pub use outcome::{Outcome, OutcomeKind};
pub use pacing::RequestId;
pub use response::{HttpResult, ResponseAction, Throttle};
pub use runtime::{Sender, SenderError, SenderReport};
