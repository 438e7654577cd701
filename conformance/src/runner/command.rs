//! The suite command behind `amplitude-conformance` with no subcommand: picks the scenarios
//! and the sender, runs them and writes the requested reports. It prints nothing: the
//! binary shows the progress and the verdict table.

use super::adapter::prepare_adapter;
use super::{default_suite, run_suite, RunnerOptions, SenderSpec, SuiteProgress, SuiteReport};
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
    /// An official-SDK adapter (`python-sdk`, `node-sdk`, `browser-sdk`, `amplitude-js`): written out to the kit's cache
    /// directory, installed there, then run as the sender.
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
    pub async fn run(
        &self,
        reference_exe: PathBuf,
        mut progress: impl FnMut(SuiteProgress<'_>),
    ) -> anyhow::Result<SuiteReport> {
        let files = if self.scenarios.is_empty() {
            default_suite(&suite_dir(self.scenarios_dir.as_deref())?)?
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
