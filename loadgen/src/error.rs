//! Error types of the library.

use std::path::PathBuf;

/// Why a scenario file (or a trace it references) could not be loaded.
///
/// Every variant names the file; parse errors also name the 1-based line and column and the
/// dotted path of the offending field (e.g. `phases[1].arrival.rate`).
#[derive(Debug, thiserror::Error)]
pub enum ScenarioError {
    /// The file could not be read.
    #[error("{}: cannot read: {source}", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// The TOML is malformed, a field is unknown, or a value has the wrong type.
    #[error("{}:{line}:{column}: field `{field}`: {message}", path.display())]
    Parse {
        /// The scenario file.
        path: PathBuf,
        /// 1-based line of the offending key or value (0 when unknown).
        line: usize,
        /// 1-based column (0 when unknown).
        column: usize,
        /// Dotted path of the offending field, e.g. `mix.event_types[0].weight`.
        field: String,
        /// What is wrong.
        message: String,
    },
    /// The file parses but a value is out of range or inconsistent.
    #[error("{}: field `{field}`: {message}", path.display())]
    Invalid {
        /// The scenario file.
        path: PathBuf,
        /// Dotted path of the offending field.
        field: String,
        /// What is wrong.
        message: String,
    },
    /// A trace file referenced by a `trace` phase could not be read or parsed.
    #[error("{}{}: {message}", path.display(), line.map(|l| format!(":{l}")).unwrap_or_default())]
    Trace {
        /// The trace file (or `archive.zip/member`).
        path: PathBuf,
        /// 1-based line inside the (decompressed) file, when known.
        line: Option<usize>,
        /// What is wrong.
        message: String,
    },
}

impl ScenarioError {
    /// The dotted field path this error is about, when it is about one field.
    pub fn field(&self) -> Option<&str> {
        match self {
            Self::Parse { field, .. } | Self::Invalid { field, .. } => Some(field),
            _ => None,
        }
    }
}

/// Why a direct-mode run or a report could not complete.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    /// The scenario (or its trace) failed to load.
    #[error(transparent)]
    Scenario(#[from] ScenarioError),
    /// `--target` is not an `http://HOST:PORT` base URL.
    #[error("invalid target URL {url:?}: {message}")]
    Target {
        /// The URL given.
        url: String,
        /// What is wrong.
        message: String,
    },
    /// Writing a report file failed.
    #[error("{}: cannot write report: {source}", path.display())]
    Write {
        /// The report file.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// A report could not be serialized or rendered.
    #[error("report: {0}")]
    Render(String),
    /// An internal task failed (the generator thread or the scheduler).
    #[error("internal: {0}")]
    Internal(String),
}

/// Why segment reports cannot be merged (`amplitude-loadgen merge`). Each variant names the
/// report (its file, as given) it is about.
#[derive(Debug, thiserror::Error)]
pub enum MergeError {
    /// No report was given.
    #[error("nothing to merge: give the N reports of a run with --segment K/N")]
    Empty,
    /// A report was not made with `--segment K/N` (a whole run, or already a merge).
    #[error("{name}: not a segment report (run each part with --segment K/N, then merge them)")]
    NotASegment {
        /// The report.
        name: String,
    },
    /// A report belongs to another run: another scenario, seed, number of segments or
    /// report version.
    #[error("{name}: {what} is {found}, but {first} has {expected}: these reports are not segments of one run")]
    Mismatch {
        /// The report that differs.
        name: String,
        /// The first report, against which the others are compared.
        first: String,
        /// What differs, e.g. `seed`, `scenario name`, `segment count N`.
        what: String,
        /// The first report's value.
        expected: String,
        /// This report's value.
        found: String,
    },
    /// Two reports are of the same segment.
    #[error("segment {segment} is given twice: {first} and {second}")]
    DuplicateSegment {
        /// The segment, `K/N`.
        segment: String,
        /// The first report of it.
        first: String,
        /// The second report of it.
        second: String,
    },
    /// Some segments of `0..N` have no report.
    #[error("segment(s) {} of {count} missing: give one report for each of 0..{count}", join(.missing))]
    MissingSegments {
        /// The missing indices K.
        missing: Vec<u32>,
        /// N.
        count: u32,
    },
    /// A report has no latency histograms (made before reports carried them).
    #[error("{name}: no latency histograms (a report of an older loadgen?): percentiles cannot be merged exactly")]
    NoHistograms {
        /// The report.
        name: String,
    },
    /// A report's histogram cannot be decoded, or a threshold criterion cannot be read.
    #[error("{name}: {message}")]
    Invalid {
        /// The report.
        name: String,
        /// What is wrong.
        message: String,
    },
}

fn join(v: &[u32]) -> String {
    v.iter().map(u32::to_string).collect::<Vec<_>>().join(", ")
}
