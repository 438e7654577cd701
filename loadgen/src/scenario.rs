//! The scenario file: TOML describing seeded, bursty Amplitude traffic.
//!
//! Documented field by field in `scenarios/README.md`. Unknown fields are rejected with an
//! error naming the file, line, column and dotted field path ([`ScenarioError::Parse`]).

use crate::arrival::Arrival;
use crate::dirty::Dirty;
use crate::error::ScenarioError;
use crate::mix::Mix;
use crate::population::Population;
use crate::thresholds::Thresholds;
use crate::units::DurationMs;
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

/// Default `start_time_ms`: 2026-01-01T00:00:00Z, ms since the Unix epoch.
pub(crate) const DEFAULT_START_TIME_MS: i64 = 1_767_225_600_000;

/// Which ingestion API the events go to (spec §1.1): `http_v2` or `batch` in scenario
/// files; shared with the mock, the sender and the runner.
pub use amplitude_wire::Endpoint;

/// Data-residency region of the project (spec §1.1); shared with the mock.
pub use amplitude_wire::Region;

/// One phase of a scenario: an arrival process over a duration. Phases chain: phase `i`
/// starts when phase `i - 1` ends.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Phase {
    /// Label used in reports.
    #[serde(default)]
    pub name: Option<String>,
    /// Length of the phase. Required except for `trace` arrivals, whose length defaults to
    /// the trace's span divided by its speed-up.
    #[serde(default)]
    pub duration: Option<DurationMs>,
    /// How events arrive during the phase (events/s).
    pub arrival: Arrival,
}

/// Settings of direct mode (`amplitude-loadgen run`): how arrivals become requests.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RunSettings {
    /// Most events per request (default 10; at most 2,000, spec §3.4).
    pub batch_size: usize,
    /// Longest an arrived event waits for its batch to fill before the batch is sent
    /// (default `"100ms"`; `"0ms"` sends each batch as soon as no further event arrives at
    /// the same instant).
    pub max_batch_wait: DurationMs,
    /// Most requests in flight at once, i.e. the connection pool size (default 128).
    pub max_in_flight: usize,
    /// How late a request may start, relative to its intended time, before it is counted as
    /// a dropped arrival instead of being sent (default `"5s"`).
    pub max_lag: DurationMs,
    /// Timeout of one request, from send to full response body (default `"30s"`).
    pub request_timeout: DurationMs,
    /// Largest accepted shortfall of the achieved rate below the offered one, as a ratio
    /// (default 0.05): beyond it, or with any dropped arrival, the target was not loaded as
    /// asked and the run fails with exit code 98 unless `[thresholds]` name a load metric
    /// (`crate::LoadCheck`).
    pub rate_tolerance: f64,
}

impl Default for RunSettings {
    fn default() -> Self {
        Self {
            batch_size: 10,
            max_batch_wait: DurationMs(100),
            max_in_flight: 128,
            max_lag: DurationMs(5_000),
            request_timeout: DurationMs(30_000),
            rate_tolerance: crate::load_check::DEFAULT_RATE_TOLERANCE,
        }
    }
}

/// A parsed, validated scenario.
///
/// Build one with [`Scenario::from_path`] or [`Scenario::from_toml_str`]; generate its
/// events with [`Scenario::events`]. After loading, the top-level `duration` + `arrival`
/// shorthand has been turned into a single entry of [`Scenario::phases`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Scenario {
    /// Short name (default: the file stem).
    #[serde(default)]
    pub name: String,
    /// What the scenario models and what it should provoke.
    #[serde(default)]
    pub description: String,
    /// Default seed of the generator; `--seed` overrides it.
    #[serde(default)]
    pub seed: u64,
    /// Target API (`http_v2` | `batch`).
    #[serde(default)]
    pub endpoint: Endpoint,
    /// Project region (`us` | `eu`).
    #[serde(default)]
    pub region: Region,
    /// Epoch ms of virtual time 0; events' `time` is `start_time_ms + intended offset`.
    #[serde(default = "default_start_time_ms")]
    pub start_time_ms: i64,
    /// Single-phase shorthand: duration (use with `arrival`, not with `phases`).
    #[serde(default, skip_serializing)]
    pub duration: Option<DurationMs>,
    /// Single-phase shorthand: arrival process (use with `duration`, not with `phases`).
    #[serde(default, skip_serializing)]
    pub arrival: Option<Arrival>,
    /// The phases, in order.
    #[serde(default)]
    pub phases: Vec<Phase>,
    /// Who sends: users, devices, popularity.
    #[serde(default)]
    pub population: Population,
    /// What is sent: event types, payload sizes, identify share, `insert_id` share.
    #[serde(default)]
    pub mix: Mix,
    /// Shares of deliberately invalid or re-sent events.
    #[serde(default)]
    pub dirty: Dirty,
    /// Direct-mode request shaping.
    #[serde(default)]
    pub run: RunSettings,
    /// Pass/fail criteria, e.g. `p99_delivery_ms = "< 60000"`, `lost = 0`.
    #[serde(default)]
    pub thresholds: Thresholds,
    /// Opaque settings for the embedded mock (limits profile, fault schedule); validated by
    /// the mock crate, not here.
    #[serde(default)]
    pub mock: toml::Table,
    /// Opaque settings for the conformance runner (deadline, sender settings).
    #[serde(default)]
    pub conformance: toml::Table,
    /// Directory of the scenario file; relative trace paths resolve against it.
    #[serde(skip)]
    pub base_dir: PathBuf,
    /// The file the scenario came from (empty for in-memory scenarios).
    #[serde(skip)]
    pub source: PathBuf,
}

fn default_start_time_ms() -> i64 {
    DEFAULT_START_TIME_MS
}

impl Scenario {
    /// Reads and validates the scenario file at `path`.
    ///
    /// # Errors
    /// [`ScenarioError::Io`] when unreadable, [`ScenarioError::Parse`] (with line, column and
    /// field) when malformed or carrying an unknown field, [`ScenarioError::Invalid`] when a
    /// value is out of range.
    pub fn from_path(path: impl AsRef<Path>) -> Result<Self, ScenarioError> {
        let path = path.as_ref();
        let text = std::fs::read_to_string(path).map_err(|source| ScenarioError::Io {
            path: path.to_path_buf(),
            source,
        })?;
        Self::from_toml_str(&text, path)
    }

    /// Parses and validates scenario TOML. `origin` is the file name used in errors, as the
    /// default `name` (its stem) and as the base of relative trace paths (its parent).
    ///
    /// # Errors
    /// As [`Scenario::from_path`], minus I/O.
    pub fn from_toml_str(text: &str, origin: impl AsRef<Path>) -> Result<Self, ScenarioError> {
        let origin = origin.as_ref();
        let de = toml::Deserializer::new(text);
        let mut sc: Scenario =
            serde_path_to_error::deserialize(de).map_err(|e| parse_error(origin, text, e))?;
        sc.source = origin.to_path_buf();
        sc.base_dir = origin.parent().map(Path::to_path_buf).unwrap_or_default();
        if sc.name.is_empty() {
            sc.name = origin
                .file_stem()
                .map(|s| s.to_string_lossy().into_owned())
                .unwrap_or_else(|| "scenario".to_owned());
        }
        sc.normalize()?;
        Ok(sc)
    }

    fn invalid(&self, field: impl Into<String>, message: impl Into<String>) -> ScenarioError {
        ScenarioError::Invalid {
            path: self.source.clone(),
            field: field.into(),
            message: message.into(),
        }
    }

    /// Folds the single-phase shorthand into `phases` and checks every range.
    fn normalize(&mut self) -> Result<(), ScenarioError> {
        match (self.arrival.take(), self.duration.take()) {
            (Some(arrival), duration) => {
                if !self.phases.is_empty() {
                    return Err(self.invalid(
                        "arrival",
                        "use either top-level `duration` + `arrival` or `[[phases]]`, not both",
                    ));
                }
                self.phases.push(Phase {
                    name: None,
                    duration,
                    arrival,
                });
            }
            (None, Some(_)) => {
                if self.phases.is_empty() {
                    return Err(self.invalid("arrival", "`duration` needs an `arrival` process"));
                }
                return Err(self.invalid(
                    "duration",
                    "top-level `duration` is for the single-phase shorthand; give each phase its own",
                ));
            }
            (None, None) => {}
        }
        if self.phases.is_empty() {
            return Err(self.invalid(
                "phases",
                "a scenario needs `arrival` + `duration` or at least one `[[phases]]`",
            ));
        }
        for (i, p) in self.phases.iter().enumerate() {
            let field = format!("phases[{i}]");
            if p.duration.is_none() && !matches!(p.arrival, Arrival::Trace { .. }) {
                return Err(self.invalid(
                    format!("{field}.duration"),
                    "missing (required unless the arrival is a trace)",
                ));
            }
            if let Some(d) = p.duration {
                if d.ms() == 0 {
                    return Err(self.invalid(format!("{field}.duration"), "must be > 0"));
                }
            }
            p.arrival
                .validate(p.duration)
                .map_err(|(f, m)| self.invalid(format!("{field}.arrival.{f}"), m))?;
        }
        self.population
            .validate()
            .map_err(|(f, m)| self.invalid(format!("population.{f}"), m))?;
        self.mix
            .validate()
            .map_err(|(f, m)| self.invalid(format!("mix.{f}"), m))?;
        self.dirty
            .validate()
            .map_err(|(f, m)| self.invalid(format!("dirty.{f}"), m))?;
        let r = &self.run;
        if r.batch_size == 0 || r.batch_size > amplitude_wire::limits::MAX_EVENTS_PER_REQUEST {
            return Err(self.invalid("run.batch_size", "must be between 1 and 2000 (spec §3.4)"));
        }
        if r.max_in_flight == 0 || r.max_in_flight > 65_536 {
            return Err(self.invalid("run.max_in_flight", "must be between 1 and 65536"));
        }
        if r.request_timeout.ms() == 0 {
            return Err(self.invalid("run.request_timeout", "must be > 0"));
        }
        if !(0.0..=1.0).contains(&r.rate_tolerance) {
            return Err(self.invalid("run.rate_tolerance", "must be between 0 and 1"));
        }
        Ok(())
    }

    /// Length of phase `index`, ms, resolving trace phases without a `duration` (which
    /// needs the trace to be loaded; see [`crate::EventStream::phase_bounds_ms`]). `None` for a trace
    /// phase without a duration.
    pub fn phase_duration_ms(&self, index: usize) -> Option<u64> {
        self.phases
            .get(index)
            .and_then(|p| p.duration)
            .map(DurationMs::ms)
    }

    /// Sum of the phases' declared durations, ms. A trace phase without a duration counts 0;
    /// [`crate::EventStream::total_duration_ms`] gives the exact figure once traces are loaded.
    pub fn declared_duration_ms(&self) -> u64 {
        self.phases
            .iter()
            .filter_map(|p| p.duration)
            .map(DurationMs::ms)
            .sum()
    }
}

/// Turns a toml/serde error into [`ScenarioError::Parse`] with line, column and field path.
fn parse_error(
    origin: &Path,
    text: &str,
    e: serde_path_to_error::Error<toml::de::Error>,
) -> ScenarioError {
    let mut field = e.path().to_string();
    if field == "." {
        field.clear();
    }
    let inner = e.into_inner();
    let message = inner.message().trim().to_owned();
    // Name the unknown or missing field itself, not only its parent.
    for marker in ["unknown field `", "missing field `", "unknown variant `"] {
        if let Some(start) = message.find(marker) {
            let rest = &message[start + marker.len()..];
            if let Some(end) = rest.find('`') {
                let name = &rest[..end];
                if marker != "unknown variant `" && !field.ends_with(name) {
                    field = if field.is_empty() {
                        name.to_owned()
                    } else {
                        format!("{field}.{name}")
                    };
                }
            }
            break;
        }
    }
    let (line, column) = match inner.span() {
        Some(span) => line_col(text, span.start),
        None => (0, 0),
    };
    if field.is_empty() {
        field = "(document)".to_owned();
    }
    ScenarioError::Parse {
        path: origin.to_path_buf(),
        line,
        column,
        field,
        message,
    }
}

/// 1-based (line, column) of byte `offset` in `text`.
fn line_col(text: &str, offset: usize) -> (usize, usize) {
    let offset = offset.min(text.len());
    let before = &text.as_bytes()[..offset];
    let line = before.iter().filter(|b| **b == b'\n').count() + 1;
    let col = offset
        - before
            .iter()
            .rposition(|b| *b == b'\n')
            .map_or(0, |p| p + 1)
        + 1;
    (line, col)
}

#[cfg(test)]
mod tests {
    use super::*;

    const MIN: &str = r#"
seed = 7
duration = "2s"
arrival = { kind = "constant", rate = 10.0 }
"#;

    #[test]
    fn shorthand_becomes_one_phase() {
        let sc = Scenario::from_toml_str(MIN, "dir/min.toml").unwrap();
        assert_eq!(sc.name, "min");
        assert_eq!(sc.phases.len(), 1);
        assert_eq!(sc.declared_duration_ms(), 2_000);
        assert_eq!(sc.base_dir, PathBuf::from("dir"));
        assert_eq!(sc.endpoint, Endpoint::HttpV2);
    }

    #[test]
    fn unknown_top_level_field_is_named_with_line() {
        let text = "seed = 1\nduration = \"1s\"\narrival = { kind = \"constant\", rate = 1.0 }\nsede = 3\n";
        let err = Scenario::from_toml_str(text, "x.toml").unwrap_err();
        match &err {
            ScenarioError::Parse {
                line, field, path, ..
            } => {
                assert_eq!(field, "sede");
                assert_eq!(*line, 4);
                assert_eq!(path, &PathBuf::from("x.toml"));
            }
            other => panic!("unexpected {other:?}"),
        }
        let shown = err.to_string();
        assert!(shown.starts_with("x.toml:4:"), "{shown}");
        assert!(shown.contains("sede"), "{shown}");
    }

    #[test]
    fn unknown_nested_field_is_named_with_its_path() {
        let text = "[[phases]]\nduration = \"1s\"\narrival = { kind = \"constant\", rate = 1.0 }\n\n[[phases]]\nduration = \"1s\"\narrival = { kind = \"poisson\", rate = 1.0, burst = 2 }\n";
        let err = Scenario::from_toml_str(text, "y.toml").unwrap_err();
        assert_eq!(err.field(), Some("phases[1].arrival.burst"), "{err}");
        assert!(err.to_string().starts_with("y.toml:7:"), "{err}");

        let text = "duration = \"1s\"\narrival = { kind = \"constant\", rate = 1.0 }\n[population]\nusers = 10\nzipf = 2\n";
        let err = Scenario::from_toml_str(text, "z.toml").unwrap_err();
        assert_eq!(err.field(), Some("population.zipf"), "{err}");
        assert!(err.to_string().starts_with("z.toml:5:"), "{err}");
    }

    #[test]
    fn wrong_type_and_range_errors_name_the_field() {
        let text = "duration = \"1s\"\narrival = { kind = \"constant\", rate = \"fast\" }\n";
        let err = Scenario::from_toml_str(text, "t.toml").unwrap_err();
        assert!(
            err.field().is_some_and(|f| f.starts_with("arrival")),
            "{err}"
        );

        let text = "duration = \"1s\"\narrival = { kind = \"constant\", rate = -1.0 }\n";
        let err = Scenario::from_toml_str(text, "t.toml").unwrap_err();
        assert_eq!(err.field(), Some("phases[0].arrival.rate"), "{err}");

        let text = "duration = \"1s\"\narrival = { kind = \"constant\", rate = 1.0 }\n[run]\nbatch_size = 5000\n";
        let err = Scenario::from_toml_str(text, "t.toml").unwrap_err();
        assert_eq!(err.field(), Some("run.batch_size"), "{err}");

        let text = "duration = \"1s\"\narrival = { kind = \"warp\", rate = 1.0 }\n";
        let err = Scenario::from_toml_str(text, "t.toml").unwrap_err();
        assert!(err.to_string().contains("warp"), "{err}");
    }

    #[test]
    fn opaque_mock_and_conformance_tables_are_kept() {
        let text = r#"
duration = "1s"
arrival = { kind = "constant", rate = 1.0 }
[mock]
eps_threshold = 30
faults = [{ kind = "status", status = 503, count = 3 }]
[conformance]
deadline = "60s"
"#;
        let sc = Scenario::from_toml_str(text, "m.toml").unwrap();
        assert_eq!(
            sc.mock.get("eps_threshold").and_then(|v| v.as_integer()),
            Some(30)
        );
        let faults = sc.mock.get("faults").and_then(|v| v.as_array()).unwrap();
        assert_eq!(
            faults[0].get("status").and_then(|v| v.as_integer()),
            Some(503)
        );
        assert_eq!(
            sc.conformance.get("deadline").and_then(|v| v.as_str()),
            Some("60s")
        );
    }
}
