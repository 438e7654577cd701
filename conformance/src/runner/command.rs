//! The suite command behind `amplitude-conformance` with no subcommand: picks the scenarios
//! and the sender, runs them and writes the requested reports. It prints nothing: the
//! binary shows the progress and the verdict table.

use super::{default_suite, run_suite, RunnerOptions, SenderSpec, SuiteProgress, SuiteReport};
use std::path::{Path, PathBuf};

/// What the command line asked for.
#[derive(Debug, Clone, Default)]
pub struct SuiteCommand {
    /// Scenario files; empty means the default suite of `scenarios_dir`.
    pub scenarios: Vec<PathBuf>,
    /// Where the default suite lives.
    pub scenarios_dir: Option<PathBuf>,
    /// A third-party sender: a shell command speaking the sender contract.
    pub sender_cmd: Option<String>,
    /// An official-SDK adapter under `conformance/adapters/` (`python-sdk`, `node-sdk`):
    /// installed, then run as the sender.
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
}

/// The repository root the binary was built from (scenarios and adapters live there).
fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn resolve_dir(given: Option<&Path>) -> PathBuf {
    match given {
        Some(p) => p.to_path_buf(),
        None if Path::new("scenarios").is_dir() => PathBuf::from("scenarios"),
        None => repo_root().join("scenarios"),
    }
}

/// Installs an adapter's dependencies (its `install.sh`, output discarded) and returns its
/// sender command.
pub fn prepare_adapter(name: &str) -> anyhow::Result<String> {
    let dir = repo_root().join("conformance/adapters").join(name);
    anyhow::ensure!(
        dir.join("run.sh").is_file(),
        "no adapter `{name}` (looked for {})",
        dir.join("run.sh").display()
    );
    let status = std::process::Command::new("bash")
        .arg(dir.join("install.sh"))
        .stdout(std::process::Stdio::null())
        .status()?;
    anyhow::ensure!(
        status.success(),
        "{}/install.sh failed ({status})",
        dir.display()
    );
    Ok(format!("exec bash '{}'", dir.join("run.sh").display()))
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
            default_suite(&resolve_dir(self.scenarios_dir.as_deref()))?
        } else {
            self.scenarios.clone()
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

    /// Writes the reports the command asked for (`report_json`, `junit`, `report_md`).
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
            std::fs::write(p, report.to_markdown(&title))?;
        }
        Ok(())
    }
}
