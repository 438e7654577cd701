//! Reads a scenario file in full and refuses any invalid part of it before anything runs:
//! the loadgen tables, `[conformance]`, and `[mock]` (its fields, and each fault's
//! combination of fields). Errors name the file, the line, the field and why.

use super::settings::ConformanceSettings;
use super::RunnerError;
use amplitude_loadgen::Scenario;
use amplitude_mock::MockConfig;
use serde::Deserialize;
use std::path::Path;

/// A scenario file that passed every check.
#[derive(Debug, Clone)]
pub struct Prepared {
    /// The loadgen part.
    pub scenario: Scenario,
    /// Its `[conformance]` table.
    pub settings: ConformanceSettings,
    /// Its `[mock]` table, without the runner's additions.
    pub mock: MockConfig,
}

#[derive(Deserialize)]
struct MockDoc {
    #[serde(default)]
    mock: Option<MockConfig>,
}

#[derive(Deserialize)]
struct ConformanceDoc {
    #[serde(default)]
    conformance: Option<ConformanceSettings>,
}

#[derive(Deserialize)]
struct FaultSpans {
    #[serde(default)]
    mock: Option<MockSpans>,
}

#[derive(Deserialize)]
struct MockSpans {
    #[serde(default)]
    faults: Vec<toml::Spanned<toml::Value>>,
}

/// 1-based line of byte `offset` in `text`.
fn line_of(text: &str, offset: usize) -> usize {
    text.as_bytes()
        .get(..offset.min(text.len()))
        .map_or(0, |b| b.iter().filter(|c| **c == b'\n').count())
        + 1
}

/// `FILE:LINE: [table] field: why` for a serde error of one table.
fn table_error(
    path: &Path,
    text: &str,
    table: &str,
    e: serde_path_to_error::Error<toml::de::Error>,
) -> RunnerError {
    let field = e.path().to_string();
    let inner = e.into_inner();
    let line = inner.span().map_or(0, |s| line_of(text, s.start));
    let field = field
        .strip_prefix(table)
        .map(|f| f.trim_start_matches('.'))
        .unwrap_or(&field)
        .to_owned();
    let field = if field.is_empty() || field == "." {
        String::new()
    } else {
        format!(" {field}")
    };
    RunnerError::Invalid(format!(
        "{}:{line}: [{table}]{field}: {}",
        path.display(),
        inner.message().trim()
    ))
}

/// Reads and checks the scenario at `path`.
///
/// # Errors
/// [`RunnerError::Scenario`] for the loadgen part, [`RunnerError::Invalid`] for
/// `[conformance]` and `[mock]`, [`RunnerError::Io`] when the file is unreadable.
pub fn prepare(path: &Path) -> Result<Prepared, RunnerError> {
    let scenario = Scenario::from_path(path)?;
    let text = std::fs::read_to_string(path)?;
    let de = toml::Deserializer::new(&text);
    let settings = serde_path_to_error::deserialize::<_, ConformanceDoc>(de)
        .map_err(|e| table_error(path, &text, "conformance", e))?
        .conformance
        .unwrap_or_default();
    let de = toml::Deserializer::new(&text);
    let mock = serde_path_to_error::deserialize::<_, MockDoc>(de)
        .map_err(|e| table_error(path, &text, "mock", e))?
        .mock
        .unwrap_or_default();
    let spans = toml::from_str::<FaultSpans>(&text)
        .ok()
        .and_then(|d| d.mock)
        .map(|m| m.faults)
        .unwrap_or_default();
    for (i, f) in mock.faults.iter().enumerate() {
        if let Err(e) = f.validate() {
            let line = spans.get(i).map_or(0, |s| line_of(&text, s.span().start));
            return Err(RunnerError::Invalid(format!(
                "{}:{line}: [mock] faults[{i}]: {e}",
                path.display()
            )));
        }
    }
    for (i, c) in settings.controls.iter().enumerate() {
        if settings.controls.iter().take(i).any(|p| p.at.0 > c.at.0) {
            return Err(RunnerError::Invalid(format!(
                "{}: [conformance] controls[{i}]: controls must be in time order",
                path.display()
            )));
        }
    }
    Ok(Prepared {
        scenario,
        settings,
        mock,
    })
}
