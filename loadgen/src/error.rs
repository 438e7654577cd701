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
