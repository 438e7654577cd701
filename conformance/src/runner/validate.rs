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
struct RestartSpans {
    #[serde(default)]
    conformance: Option<ConformanceSpans>,
}

#[derive(Deserialize)]
struct ConformanceSpans {
    #[serde(default)]
    restarts: Vec<toml::Spanned<toml::Value>>,
}

/// Checks `[conformance] restarts` (contract version 3): each after 0, strictly increasing,
/// before the first `exit` control (nothing runs after the application exits) and before the
/// scenario's duration plus its deadline (the sender is killed for good then). Errors are
/// `FILE:LINE: [conformance] restarts[i]: why`, one line each.
fn check_restarts(
    path: &Path,
    text: &str,
    scenario: &Scenario,
    settings: &ConformanceSettings,
) -> Result<(), RunnerError> {
    let spans = toml::from_str::<RestartSpans>(text)
        .ok()
        .and_then(|d| d.conformance)
        .map(|c| c.restarts)
        .unwrap_or_default();
    let fallback = text
        .lines()
        .position(|l| l.trim_start().starts_with("restarts"))
        .map_or(0, |i| i + 1);
    let end_ms = scenario
        .declared_duration_ms()
        .saturating_add(settings.deadline_ms());
    let exit_ms = settings.exit_at_us().map(|us| us / 1_000);
    let mut errors = Vec::new();
    for (i, at) in settings.restarts.iter().enumerate() {
        let at = at.0;
        let why = if at == 0 {
            Some("a restart must come after the start of the run (> 0)".to_owned())
        } else if i > 0 && settings.restarts[i - 1].0 >= at {
            Some(format!(
                "restarts must be in increasing time order ({} ms is not after {} ms)",
                at,
                settings.restarts[i - 1].0
            ))
        } else if exit_ms.is_some_and(|x| at >= x) {
            Some(format!(
                "{at} ms is not before the exit control at {} ms (nothing runs after the application exits)",
                exit_ms.unwrap_or_default()
            ))
        } else if at >= end_ms {
            Some(format!(
                "{at} ms is not before the deadline (the scenario's duration plus `deadline`: {end_ms} ms)"
            ))
        } else {
            None
        };
        if let Some(why) = why {
            let line = spans
                .get(i)
                .map_or(fallback, |s| line_of(text, s.span().start));
            errors.push(format!(
                "{}:{line}: [conformance] restarts[{i}]: {why}",
                path.display()
            ));
        }
    }
    if errors.is_empty() {
        Ok(())
    } else {
        Err(RunnerError::Invalid(errors.join("\n")))
    }
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
    if let Err(errors) = mock.validate() {
        let mock_line = text
            .lines()
            .position(|l| l.trim_start().starts_with("[mock"))
            .map_or(0, |i| i + 1);
        let lines: Vec<String> = errors
            .0
            .iter()
            .map(|issue| {
                let line = issue
                    .path
                    .strip_prefix("faults[")
                    .and_then(|rest| rest.split(']').next())
                    .and_then(|i| i.parse::<usize>().ok())
                    .and_then(|i| spans.get(i))
                    .map_or(mock_line, |s| line_of(&text, s.span().start));
                format!("{}:{line}: [mock] {issue}", path.display())
            })
            .collect();
        return Err(RunnerError::Invalid(lines.join("\n")));
    }
    for (i, c) in settings.controls.iter().enumerate() {
        if settings.controls.iter().take(i).any(|p| p.at.0 > c.at.0) {
            return Err(RunnerError::Invalid(format!(
                "{}: [conformance] controls[{i}]: controls must be in time order",
                path.display()
            )));
        }
    }
    check_restarts(path, &text, &scenario, &settings)?;
    Ok(Prepared {
        scenario,
        settings,
        mock,
    })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn write(text: &str) -> (tempfile::TempDir, std::path::PathBuf) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("bad.toml");
        std::fs::write(&path, text).unwrap();
        (dir, path)
    }

    const HEAD: &str =
        "name = \"x\"\nduration = \"1s\"\narrival = { kind = \"constant\", rate = 1.0 }\n";

    /// Issue 12, fault 3: an invalid fault is an error naming the file, the line, the fault
    /// and why, before anything runs (it used to be logged and the scenario PASSed).
    #[test]
    fn an_invalid_fault_is_refused_with_its_line() {
        let text = format!(
            "{HEAD}\n[mock]\nfaults = [\n  {{ kind = \"status\", status = 503, count = 1 }},\n  {{ kind = \"status\", status = 503, committed = true }},\n]\n"
        );
        let (_d, path) = write(&text);
        let e = prepare(&path).unwrap_err().to_string();
        assert_eq!(
            e,
            format!(
                "{}:8: [mock] faults[1].committed: status fault: a 503 is never committed (spec §5.5)",
                path.display(),
            )
        );
    }

    #[test]
    fn an_unknown_field_is_refused_with_its_line_and_path() {
        let (_d, path) = write(&format!(
            "{HEAD}\n[mock]\nfaults = [{{ kind = \"status\", status = 503, cuont = 3 }}]\n"
        ));
        let e = prepare(&path).unwrap_err().to_string();
        assert!(
            e.starts_with(&format!(
                "{}:6: [mock] faults[0].cuont: unknown field `cuont`",
                path.display()
            )),
            "{e}"
        );
        let (_d, path) = write(&format!(
            "{HEAD}\n[conformance]\ndeadline = \"10s\"\ncontrols = [{{ at = \"1s\", control = \"pause\" }}]\n"
        ));
        let e = prepare(&path).unwrap_err().to_string();
        assert!(
            e.starts_with(&format!(
                "{}:7: [conformance] controls[0].control: unknown variant `pause`",
                path.display()
            )),
            "{e}"
        );
    }

    /// Contract 3: restart times are checked like the other fields, each error with its line.
    #[test]
    fn restart_times_are_validated_with_their_lines() {
        let (_d, path) = write(&format!(
            "{HEAD}\n[conformance]\ndeadline = \"10s\"\nrestarts = [\n  \"2s\",\n  \"1s\",\n  \"0s\",\n  \"12s\",\n]\n"
        ));
        let e = prepare(&path).unwrap_err().to_string();
        let p = path.display();
        assert_eq!(
            e,
            format!(
                "{p}:9: [conformance] restarts[1]: restarts must be in increasing time order (1000 ms is not after 2000 ms)\n\
                 {p}:10: [conformance] restarts[2]: a restart must come after the start of the run (> 0)\n\
                 {p}:11: [conformance] restarts[3]: 12000 ms is not before the deadline (the scenario's duration plus `deadline`: 11000 ms)"
            )
        );
        let (_d, path) = write(&format!(
            "{HEAD}\n[conformance]\nrestarts = [\"1s\"]\ncontrols = [{{ at = \"500ms\", control = \"exit\" }}]\n"
        ));
        let e = prepare(&path).unwrap_err().to_string();
        assert_eq!(
            e,
            format!(
                "{}:6: [conformance] restarts[0]: 1000 ms is not before the exit control at 500 ms (nothing runs after the application exits)",
                path.display()
            )
        );
        let (_d, path) = write(&format!(
            "{HEAD}\n[conformance]\nrestarts = [\"300ms\", \"1.5s\"]\n"
        ));
        let p = prepare(&path).unwrap();
        assert_eq!(p.settings.restarts_ms(), vec![300, 1_500]);
        let (_d, path) = write(&format!("{HEAD}\n[conformance]\nrestarts = [\"soon\"]\n"));
        let e = prepare(&path).unwrap_err().to_string();
        assert!(
            e.starts_with(&format!("{}:6: [conformance] restarts[0]", path.display())),
            "{e}"
        );
    }

    #[test]
    fn a_valid_file_is_prepared() {
        let (_d, path) = write(&format!(
            "{HEAD}\n[mock]\nfaults = [{{ kind = \"status\", status = 503, count = 3 }}]\n[conformance]\nexpect = \"all_rejected_invalid_key\"\n"
        ));
        let p = prepare(&path).unwrap();
        assert_eq!(p.mock.faults.len(), 1);
        assert_eq!(
            p.settings.expect,
            crate::check::Expectation::AllRejectedInvalidKey
        );
    }
}
