//! The suite command behind `amplitude-conformance` with no subcommand: picks the scenarios
//! and the sender, runs them and writes the requested reports. It prints nothing: the
//! binary shows the progress and the verdict table.

use super::adapter::{adapter, prepare_adapter};
use super::{
    default_suite, empty_suite_message, run_suite, RunnerOptions, SenderSpec, SuiteProgress,
    SuiteReport,
};
use amplitude_loadgen::builtin;
use std::path::{Path, PathBuf};

/// What the command line asked for.
#[derive(Debug, Clone, Default)]
pub struct SuiteCommand {
    /// Scenario files or built-in scenario names ([`resolve_scenario`]); empty means the
    /// default suite.
    pub scenarios: Vec<PathBuf>,
    /// The directory of the default suite; `None` means the built-in scenarios.
    pub scenarios_dir: Option<PathBuf>,
    /// A third-party sender: a shell command speaking the sender contract.
    pub sender_cmd: Option<String>,
    /// An official-SDK adapter (a name in [`super::ADAPTERS`]): written out to the kit's
    /// cache directory, installed there, then run as the sender. An unknown name is an error
    /// before anything runs.
    pub adapter: Option<String>,
    /// Overrides every scenario's seed.
    pub seed: Option<u64>,
    /// Scenarios run at once (`--jobs`; 0 counts as 1): see [`RunnerOptions::jobs`].
    pub jobs: usize,
    /// Write the JSON report here.
    pub report_json: Option<PathBuf>,
    /// Write JUnit XML here.
    pub junit: Option<PathBuf>,
    /// Write a Markdown conformance table here.
    pub report_md: Option<PathBuf>,
    /// Write the HTML report here ([`SuiteReport::to_html`]).
    pub report_html: Option<PathBuf>,
}

/// The default suite's directory: the one given, else the built-in scenarios written out to
/// the kit's cache directory.
fn suite_dir(given: Option<&Path>) -> anyhow::Result<PathBuf> {
    match given {
        Some(p) => Ok(p.to_path_buf()),
        None => Ok(builtin::materialise_scenarios(&builtin::kit_cache_dir()?)?),
    }
}

/// The file behind a `--scenario` argument: a path as given, or a built-in scenario written
/// out to the kit's cache directory. A path that exists, contains `/` or ends in `.toml` is a
/// file; anything else is a built-in name.
///
/// # Errors
/// An unknown name (the error lists the built-in names), or a cache that cannot be written.
pub fn resolve_scenario(arg: &Path) -> anyhow::Result<PathBuf> {
    Ok(builtin::resolve(arg)?)
}

impl SuiteCommand {
    /// Runs the suite and returns its report, telling `progress` what it does (installing
    /// an adapter, each scenario starting and ending). Writes no files and prints nothing:
    /// see [`SuiteCommand::write_reports`] and [`SuiteReport::to_terminal`].
    ///
    /// # Errors
    /// Before anything runs: an unknown adapter, a scenario that cannot be found or is
    /// invalid, a scenarios directory that cannot be read or holds no scenario of the
    /// default suite; then an adapter that cannot be installed.
    pub async fn run(
        &self,
        reference_exe: PathBuf,
        mut progress: impl FnMut(SuiteProgress<'_>),
    ) -> anyhow::Result<SuiteReport> {
        // An unknown adapter is an error before anything is done.
        if let Some(name) = &self.adapter {
            adapter(name)?;
        }
        let files = if self.scenarios.is_empty() {
            let dir = suite_dir(self.scenarios_dir.as_deref())?;
            let files = default_suite(&dir)?;
            anyhow::ensure!(!files.is_empty(), "{}", empty_suite_message(&dir));
            files
        } else {
            self.scenarios
                .iter()
                .map(|s| resolve_scenario(s))
                .collect::<anyhow::Result<Vec<_>>>()?
        };
        // Every part of every scenario is checked before anything runs.
        let invalid: Vec<String> = files
            .iter()
            .filter_map(|f| super::prepare(f).err().map(|e| e.to_string()))
            .collect();
        if !invalid.is_empty() {
            return Err(super::RunnerError::Invalid(invalid.join("\n")).into());
        }
        let sender = match (&self.sender_cmd, &self.adapter) {
            (Some(cmd), _) => SenderSpec::Command {
                cmd: cmd.clone(),
                label: cmd.clone(),
            },
            (None, Some(name)) => {
                progress(SuiteProgress::InstallingAdapter { name });
                SenderSpec::Command {
                    cmd: prepare_adapter(name)?,
                    label: name.clone(),
                }
            }
            (None, None) => SenderSpec::Reference {
                exe: reference_exe,
                args: Vec::new(),
            },
        };
        let opts = RunnerOptions {
            sender,
            seed: self.seed,
            jobs: self.jobs,
        };
        Ok(run_suite(&files, &opts, progress).await)
    }

    /// Writes the reports the command asked for (`report_json`, `junit`, `report_md`,
    /// `report_html`).
    pub fn write_reports(&self, report: &SuiteReport) -> anyhow::Result<()> {
        if let Some(p) = &self.report_json {
            std::fs::write(p, serde_json::to_vec_pretty(report)?)?;
        }
        if let Some(p) = &self.junit {
            std::fs::write(p, report.to_junit()?)?;
        }
        if let Some(p) = &self.report_md {
            let title = match report.sender_version() {
                Some(v) if self.adapter.is_some() => {
                    format!("Conformance of {v} (adapter `{}`)", report.sender)
                }
                _ => format!("Conformance of {}", report.sender),
            };
            // Written together, the table links the HTML report: by file name when both are in
            // the same directory, else by the path as given.
            let link = self.report_html.as_ref().map(|h| {
                let same_dir = h.parent().map(Path::to_path_buf).unwrap_or_default()
                    == p.parent().map(Path::to_path_buf).unwrap_or_default();
                match h.file_name() {
                    Some(name) if same_dir => name.to_string_lossy().into_owned(),
                    _ => h.display().to_string(),
                }
            });
            std::fs::write(p, report.to_markdown_with_html(&title, link.as_deref()))?;
        }
        if let Some(p) = &self.report_html {
            std::fs::write(p, report.to_html())?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn trickle() -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../loadgen/scenarios/steady-trickle.toml")
    }

    /// Runs `cmd`, returning its error and the progress lines it reported.
    async fn fails(cmd: &SuiteCommand) -> (String, Vec<String>) {
        let mut seen = Vec::new();
        let err = cmd
            .run(PathBuf::from("/nonexistent"), |p| seen.push(p.to_string()))
            .await
            .unwrap_err();
        (format!("{err:#}"), seen)
    }

    /// An unknown adapter is an error before anything is done: no "installing adapter".
    #[tokio::test]
    async fn an_unknown_adapter_is_an_error_before_installing() {
        let cmd = SuiteCommand {
            scenarios: vec![trickle()],
            adapter: Some("bogus".into()),
            ..Default::default()
        };
        let (err, seen) = fails(&cmd).await;
        assert!(
            err.starts_with("no adapter `bogus`; the adapters are: "),
            "{err}"
        );
        assert!(seen.is_empty(), "{seen:?}");
    }

    /// A scenarios directory that does not exist is named; one with no scenario of the
    /// default suite is an error, not "0 of 0 scenarios passed".
    #[tokio::test]
    async fn a_missing_or_empty_scenarios_dir_is_an_error_naming_it() {
        let root = tempfile::tempdir().unwrap();
        let missing = root.path().join("nonexist");
        let cmd = |dir: &Path| SuiteCommand {
            scenarios_dir: Some(dir.to_path_buf()),
            ..Default::default()
        };
        let (err, _) = fails(&cmd(&missing)).await;
        assert_eq!(
            err,
            format!(
                "reading the scenarios directory {}: No such file or directory (os error 2)",
                missing.display()
            )
        );
        let (err, seen) = fails(&cmd(root.path())).await;
        assert_eq!(
            err,
            format!("no scenarios in {} (no *.toml file)", root.path().display())
        );
        assert!(seen.is_empty(), "{seen:?}");
        let text = "name = \"mine\"\nduration = \"1s\"\narrival = { kind = \"constant\", rate = 4.0 }\n\n[conformance]\ndefault_suite = false\n";
        std::fs::write(root.path().join("mine.toml"), text).unwrap();
        let (err, _) = fails(&cmd(root.path())).await;
        assert!(
            err.starts_with(&format!(
                "no scenarios in {}: its 1 *.toml file(s) all say `[conformance] default_suite = false`",
                root.path().display()
            )),
            "{err}"
        );
    }
}
