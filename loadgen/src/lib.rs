//! Seeded, open-model, bursty Amplitude traffic: scenario files, deterministic event
//! generation, and a direct-mode load runner with coordinated-omission-correct latency.
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

mod arrival;
mod dirty;
mod error;
mod generate;
mod html;
mod mix;
mod population;
mod report;
mod run;
mod scenario;
mod thresholds;
mod trace;
mod units;

pub use arrival::{sample_offsets_us, Arrival, Step, TraceFormat};
pub use dirty::{Defect, Dirty};
pub use error::{RunError, ScenarioError};
pub use generate::{EventStream, GeneratedEvent, SEQ_PROPERTY};
pub use html::render_html;
pub use mix::{EventTypeWeight, Mix, SizeDist};
pub use population::{Identity, IdentitySampler, Popularity, Population};
pub use report::{
    Latencies, LatencySummary, PhaseInfo, Report, ScenarioInfo, SeriesPoint, ThresholdResult,
    Throttled, Volume, METRICS, REPORT_SCHEMA, REPORT_SCHEMA_VERSION,
};
pub use run::{run, ProgressMode, RunOptions};
pub use scenario::{Endpoint, Phase, Region, RunSettings, Scenario, DEFAULT_START_TIME_MS};
pub use thresholds::{CmpOp, Threshold, Thresholds};
pub use trace::{export_to_ingestion, load_trace, parse_record, TraceRecord};
pub use units::{format_iso8601_ms, parse_iso8601_ms, DurationMs};
