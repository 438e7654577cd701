//! Seeded, open-model, bursty Amplitude traffic: scenario files, deterministic event
//! generation, and a direct-mode load runner with coordinated-omission-correct latency.
//! "spec §N" in this crate means section N of the repository's `docs/amplitude-behaviour.md`.
//!
//! Generation needs no network and no clock:
//!
//! ```
//! use amplitude_loadgen::Scenario;
//! let sc = Scenario::from_toml_str(r#"
//! seed = 7
//! duration = "1s"
//! arrival = { kind = "poisson", rate = 50.0 }
//! [population]
//! users = 10
//! "#, "inline.toml").unwrap();
//! let events: Vec<_> = sc.events(sc.seed).unwrap().collect();
//! assert!(!events.is_empty());
//! // Same seed, same bytes.
//! let again: Vec<_> = sc.events(sc.seed).unwrap().collect();
//! assert_eq!(events, again);
//! // Each event carries its ground-truth sequence number.
//! let seq = &events[0].event.event_properties.as_ref().unwrap()["conformance_seq"];
//! assert_eq!(seq, 0);
//! ```

#![warn(unnameable_types)]

// Layers, top to bottom (docs/architecture.md): run, html, merge > generate, report >
// scenario > arrival, dirty, mix, population, trace > builtin, error, histogram, random,
// segment, thresholds, units. A module imports only from layers below its own.
mod arrival;
pub mod builtin;
mod connection;
mod dirty;
mod error;
mod generate;
mod histogram;
mod html;
mod load_check;
mod merge;
mod mix;
mod population;
mod random;
mod report;
mod run;
mod scenario;
mod segment;
mod thresholds;
mod trace;
mod units;

// The scenario and the events it generates.
pub use dirty::Defect;
pub use error::ScenarioError;
pub use generate::{EventMeta, EventStream, GeneratedEvent, SEQ_PROPERTY};
pub use scenario::{Endpoint, Region, Scenario};
pub use segment::{Segment, SegmentError, MAX_SEGMENTS};
pub use units::DurationMs;

// Direct mode and its report.
pub use error::{MergeError, RunError};
pub use html::render_html;
pub use load_check::{
    Bottleneck, LoadCheck, DEFAULT_RATE_TOLERANCE, EXIT_NOT_LOADED_AS_ASKED, LOAD_METRICS,
};
pub use merge::merge;
pub use report::{
    Latencies, LatencyHistograms, LatencySummary, PhaseInfo, Report, ScenarioInfo,
    SeriesHistograms, SeriesPoint, ThresholdResult, Throttled, Volume, METRICS, REPORT_SCHEMA,
};
pub use run::{run, Progress, ProgressFn, RunOptions};
pub use thresholds::{CmpOp, Threshold, Thresholds};

/// The tables of a scenario file as [`Scenario`]'s fields hold them (format:
/// `scenarios/README.md`). Needed only to read or build a scenario field by field.
pub mod parts {
    pub use crate::arrival::{Arrival, Step, TraceFormat};
    pub use crate::dirty::Dirty;
    pub use crate::mix::{EventTypeWeight, Mix, SizeDist};
    pub use crate::population::{Popularity, Population};
    pub use crate::scenario::{Phase, RunSettings};
}

/// Internals for this crate's own tests; not part of the API.
#[doc(hidden)]
pub mod __internal {
    pub use crate::trace::{load_trace, TraceRecord};
    pub use crate::units::parse_iso8601_ms;
}
