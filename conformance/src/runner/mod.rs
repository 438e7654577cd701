//! The conformance runner: for each scenario, start the embedded mock with the scenario's
//! `[mock]` profile and faults, generate the events (loadgen), feed them to the sender under
//! test at their intended times, then read the mock's ledger and journal and check every
//! event (see [`crate::check`]).

mod adapter;
mod command;
mod html;
mod observe;
mod process;
mod report;
mod settings;
mod thresholds;
mod timeline;
mod validate;

pub use adapter::{materialise_adapter, prepare_adapter, Adapter, ADAPTERS};
pub use command::{resolve_scenario, SuiteCommand};
pub use html::{check_well_formed, MAX_LANES};
pub use process::{
    parse_outcome_line, ProcessError, SenderSpec, NOT_OUTCOME_EXAMPLES, RESTART_ENV, STATE_DIR_ENV,
};
pub use report::{RestartReport, ScenarioReport, SuiteReport, REPORT_SCHEMA};
pub use settings::{ConformanceSettings, Control, ControlAt};
pub use timeline::{
    FaultWindow, FlowPoint, LanePause, LaneRequest, ThrottleLane, Timeline, TimelineRequest,
    FLOW_POINTS,
};
pub use validate::{prepare, Prepared};

/// Version of the third-party sender contract the runner speaks (`AMPLITUDE_SENDER_CONTRACT`;
/// `docs/sender-contract.md`). Version 2 added control lines, `held` outcome lines and
/// `AMPLITUDE_DRAIN_DEADLINE_MS`; version 3 crash-restarts, `AMPLITUDE_SENDER_STATE_DIR` and
/// `AMPLITUDE_SENDER_RESTART`.
pub const CONTRACT_VERSION: u32 = 3;

use crate::check::check;
use amplitude_loadgen::Scenario;
use amplitude_mock::{Clock, MockClock, MockConfig, MockState, ProjectConfig, Region};
use process::{event_feed, run_sender, FeedKind, FeedLine};
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// API key of the embedded mock's project.
pub const API_KEY: &str = "c0nf0rmance0000000000000000000key";

/// Why a scenario could not be run (as opposed to a sender failing it).
#[derive(Debug, thiserror::Error)]
pub enum RunnerError {
    /// The scenario file is invalid.
    #[error(transparent)]
    Scenario(#[from] amplitude_loadgen::ScenarioError),
    /// Its `[mock]` or `[conformance]` table is invalid.
    #[error("{0}")]
    Settings(String),
    /// Part of the scenario file is invalid: `FILE:LINE: [table] field: why`.
    #[error("{0}")]
    Invalid(String),
    /// The sender could not be started.
    #[error(transparent)]
    Process(#[from] ProcessError),
    /// Binding the mock or creating the state dir failed.
    #[error(transparent)]
    Io(#[from] std::io::Error),
    /// A directory of scenarios could not be read.
    #[error("reading the scenarios directory {}: {error}", dir.display())]
    ScenariosDir {
        /// The directory.
        dir: PathBuf,
        /// Why (in the message, not a separate source: shown once).
        error: std::io::Error,
    },
}

/// How to run scenarios.
#[derive(Debug, Clone)]
pub struct RunnerOptions {
    /// The sender under test.
    pub sender: SenderSpec,
    /// Overrides each scenario's seed.
    pub seed: Option<u64>,
    /// How many scenarios [`run_suite`] runs at once (0 counts as 1). Each scenario has its
    /// own mock and its own sender process either way; more than one shortens the suite's
    /// wall time but shares the CPU between senders, which stretches their timings (keep 1
    /// for published tables).
    pub jobs: usize,
}

/// Adds the runner's project (registered in `key_region`, default the scenario's region),
/// a journal that keeps every request's events, and the seed.
fn runner_config(
    mut cfg: MockConfig,
    scenario: &Scenario,
    key_region: Option<amplitude_loadgen::Region>,
) -> MockConfig {
    cfg.projects.push(ProjectConfig {
        api_key: API_KEY.to_owned(),
        region: key_region.unwrap_or(scenario.region),
        limits: None,
    });
    cfg.ledger.journal_bodies = true;
    cfg.ledger.journal_capacity = cfg.ledger.journal_capacity.max(1_000_000);
    cfg.ledger.journal_max_body_bytes = cfg.ledger.journal_max_body_bytes.max(1 << 30);
    if scenario
        .mock
        .get("seed")
        .and_then(toml::Value::as_integer)
        .is_none()
    {
        cfg.seed = scenario.seed;
    }
    cfg
}

/// The lines the sender gets: the events up to the first `exit` control (the application
/// produces nothing after it), merged with the control lines by time.
fn feed(
    events: &[amplitude_loadgen::GeneratedEvent],
    settings: &ConformanceSettings,
) -> Vec<FeedLine> {
    let exit_at = settings.exit_at_us();
    let mut lines: Vec<FeedLine> = event_feed(events)
        .into_iter()
        .filter(|l| exit_at.is_none_or(|x| l.offset_us < x))
        .collect();
    for c in &settings.controls {
        let offset_us = c.at.0 * 1_000;
        if exit_at.is_some_and(|x| offset_us > x) {
            continue;
        }
        let kind = match c.control {
            Control::Flush => FeedKind::Flush,
            Control::Exit => FeedKind::Exit,
        };
        // After the events of the same instant, before later ones.
        let pos = lines.partition_point(|l| l.offset_us <= offset_us);
        lines.insert(
            pos,
            FeedLine {
                offset_us,
                line: c.control.line().to_owned(),
                kind,
                seq: None,
            },
        );
        if kind == FeedKind::Exit {
            break;
        }
    }
    lines
}

/// Requests on the ingestion routes by status; a request that got no response (a cut
/// connection) counts under `"cut"`, so the buckets add up to every request.
fn requests_by_status(
    requests: &[crate::check::Request],
) -> std::collections::BTreeMap<String, u64> {
    let mut out = std::collections::BTreeMap::new();
    for r in requests {
        let key = if r.status == 0 {
            "cut".to_owned()
        } else {
            r.status.to_string()
        };
        *out.entry(key).or_insert(0) += 1;
    }
    out
}

/// A scenario cannot know the wall-clock time it will run at, so the `from_ms` / `until_ms`
/// of its `[mock]` faults are milliseconds since the start of the run (the moment the runner
/// starts the mock, a few ms before the first event is fed); this turns them into the mock
/// clock's epoch milliseconds.
fn shift_fault_windows(config: &mut MockConfig, start_ms: i64) {
    for f in &mut config.faults {
        f.from_ms = f.from_ms.map(|m| m.saturating_add(start_ms));
        f.until_ms = f.until_ms.map(|m| m.saturating_add(start_ms));
    }
}

/// Runs one scenario file against the sender. The whole file is checked first
/// ([`prepare`]): an invalid part is an error before anything runs.
pub async fn run_scenario(
    path: &Path,
    opts: &RunnerOptions,
) -> Result<ScenarioReport, RunnerError> {
    let Prepared {
        scenario,
        settings,
        mock,
    } = prepare(path)?;
    let mut config = runner_config(mock, &scenario, settings.key_region);
    let max_events_per_request = config.limits.max_events_per_request;
    let clock = MockClock::system();
    let faults = config.faults.clone();
    let run_start_ms = clock.now_ms();
    shift_fault_windows(&mut config, run_start_ms);
    let state = Arc::new(
        MockState::try_new(config, clock)
            .map_err(|e| RunnerError::Invalid(format!("{}: [mock]: {e}", path.display())))?,
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let uri = format!("http://{}", listener.local_addr()?);
    // An EU project gets an EU-only listener: the sender cannot set the Host header (spec §1.1).
    let region = (scenario.region == amplitude_loadgen::Region::Eu).then_some(Region::Eu);
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(amplitude_mock::serve(
        listener,
        state.clone(),
        region,
        async {
            let _ = stop_rx.await;
        },
    ));

    let seed = opts.seed.unwrap_or(scenario.seed);
    let events: Vec<_> = scenario.events(seed)?.collect();
    let feed = feed(&events, &settings);
    let produced: Vec<_> = match settings.exit_at_us() {
        Some(x) => events.iter().filter(|g| g.offset_us < x).cloned().collect(),
        None => events,
    };
    let drain_budget = settings.drain_budget_ms();
    let api_key = settings
        .sender_api_key
        .clone()
        .unwrap_or_else(|| API_KEY.to_owned());
    let mut env = vec![
        ("AMPLITUDE_API_KEY".to_owned(), api_key),
        (
            "AMPLITUDE_SERVER_URL".to_owned(),
            format!("{uri}/2/httpapi"),
        ),
        ("AMPLITUDE_BATCH_URL".to_owned(), format!("{uri}/batch")),
        (
            "AMPLITUDE_USE_BATCH".to_owned(),
            if scenario.endpoint.path() == "/batch" {
                "1"
            } else {
                "0"
            }
            .to_owned(),
        ),
        (
            "AMPLITUDE_SENDER_CONTRACT".to_owned(),
            CONTRACT_VERSION.to_string(),
        ),
        (
            "AMPLITUDE_DRAIN_DEADLINE_MS".to_owned(),
            drain_budget.to_string(),
        ),
    ];
    env.extend(settings.sender_env.clone());
    let state_dir = tempfile::tempdir()?;
    let start_ms = state.clock().now_ms();
    let sender = match &opts.sender {
        SenderSpec::Reference { exe, args } => {
            // The endpoint comes from AMPLITUDE_USE_BATCH, as for any sender; only the drain
            // budget is the reference sender's own flag.
            let mut args = args.clone();
            args.extend(["--drain-deadline-ms".to_owned(), drain_budget.to_string()]);
            SenderSpec::Reference {
                exe: exe.clone(),
                args,
            }
        }
        other => other.clone(),
    };
    let run = run_sender(
        &sender,
        &env,
        feed,
        state_dir.path(),
        settings.deadline_ms(),
        &settings.restarts_ms(),
    )
    .await?;
    let _ = stop_tx.send(());
    let _ = server.await;
    // A command the shell could not run is not a sender losing every event.
    if let Some(e) = process::could_not_run(&sender, &run) {
        return Err(e.into());
    }

    let endpoint_path = scenario.endpoint.path();
    let mut obs = observe::observe(
        &state,
        observe::attempted(&produced, start_ms),
        endpoint_path,
    );
    obs.outcomes = run.outcomes.clone();
    obs.sender_exited = run.exited;
    obs.expect = settings.expect;
    obs.max_events_per_request = max_events_per_request;
    obs.restarts = run
        .restarts
        .iter()
        .map(|r| crate::check::Restart {
            number: r.number,
            at_ms: start_ms.saturating_add(i64::try_from(r.killed_ms).unwrap_or(i64::MAX)),
            at_run_ms: r.at_ms,
            fed: r.fed.clone(),
            had_exited: r.had_exited,
        })
        .collect();
    let mut verdict = check(&obs, &settings.checks);
    let timeline = Timeline::new(
        &obs,
        &settings.checks,
        &faults,
        run_start_ms,
        run.duration_ms,
    );
    let held = verdict.events.held_at_exit;
    let mut examples = Vec::new();
    if !run.exited {
        examples.push(format!(
            "killed {} ms after its last input line (its drain budget was {drain_budget} ms)",
            settings.deadline_ms()
        ));
    }
    if held > 0 {
        examples.push(format!(
            "{held} event(s) were still held in the sender's queue when it exited"
        ));
    }
    verdict.checks.push(crate::check::CheckResult {
        name: "drained_before_deadline",
        description:
            "the sender delivered or dropped everything and exited by itself before the deadline",
        passed: examples.is_empty(),
        count: u64::from(!run.exited) + held,
        examples,
    });
    let threshold_check = thresholds::check(&scenario.thresholds, &verdict, obs.requests.len());
    verdict.checks.push(threshold_check);
    Ok(ScenarioReport {
        scenario: scenario.name.clone(),
        description: scenario.description.clone(),
        file: path.display().to_string(),
        sender: opts.sender.label(),
        seed,
        endpoint: endpoint_path.to_owned(),
        passed: verdict.passed(),
        sender_exited: run.exited,
        sender_exit_code: run.exit_code,
        events_fed: run.fed,
        duration_ms: run.duration_ms,
        requests: obs.requests.len(),
        requests_by_status: requests_by_status(&obs.requests),
        verdict,
        stderr_tail: run.stderr_tail,
        stderr_head: run.stderr_head,
        stdout_not_outcome_lines: run.not_outcome_lines,
        stdout_not_outcome_examples: run.not_outcome_examples,
        sender_env: settings.sender_env.clone(),
        timeline,
        restarts: run
            .restarts
            .iter()
            .map(|r| RestartReport {
                number: r.number,
                at_ms: r.at_ms,
                events_fed: r.fed.len(),
                outcome_lines: r.outcomes,
                had_exited: r.had_exited,
            })
            .collect(),
    })
}

/// The scenario files of the default suite: every `*.toml` directly in `dir`, sorted, except
/// those whose `[conformance]` says `default_suite = false`.
///
/// # Errors
/// [`RunnerError::ScenariosDir`] (naming `dir`) when it cannot be read; an invalid scenario.
pub fn default_suite(dir: &Path) -> Result<Vec<PathBuf>, RunnerError> {
    let mut files = scenario_files(dir)?;
    files.sort();
    let mut out = Vec::new();
    for f in files {
        let settings = prepare(&f)?.settings;
        if settings.default_suite.unwrap_or(true) {
            out.push(f);
        }
    }
    Ok(out)
}

/// Every `*.toml` directly in `dir`, in directory order.
fn scenario_files(dir: &Path) -> Result<Vec<PathBuf>, RunnerError> {
    let named = |error| RunnerError::ScenariosDir {
        dir: dir.to_path_buf(),
        error,
    };
    let mut files = Vec::new();
    for entry in std::fs::read_dir(dir).map_err(named)? {
        let path = entry.map_err(named)?.path();
        if path.extension().is_some_and(|x| x == "toml") {
            files.push(path);
        }
    }
    Ok(files)
}

/// Why [`default_suite`] of `dir` is empty: "no scenarios in DIR", and when it has scenario
/// files, that each says `default_suite = false`.
pub fn empty_suite_message(dir: &Path) -> String {
    let n = scenario_files(dir).map_or(0, |f| f.len());
    if n == 0 {
        format!("no scenarios in {} (no *.toml file)", dir.display())
    } else {
        format!(
            "no scenarios in {}: its {n} *.toml file(s) all say `[conformance] default_suite = false` (run one with --scenario FILE)",
            dir.display()
        )
    }
}

/// Where [`run_suite`] (and [`SuiteCommand::run`]) is: given to their progress callback.
/// Its `Display` is the progress line the command line shows on stderr.
#[derive(Debug, Clone, Copy)]
pub enum SuiteProgress<'a> {
    /// An SDK adapter's dependencies are being installed (before any scenario runs).
    InstallingAdapter {
        /// The adapter (a name in [`ADAPTERS`]).
        name: &'a str,
    },
    /// Scenario `number` of `total` (1-based) starts.
    Started {
        /// 1-based position in the suite.
        number: usize,
        /// Scenarios in the suite.
        total: usize,
        /// The scenario file.
        file: &'a Path,
    },
    /// Scenario `number` of `total` ran (passed or failed).
    Finished {
        /// 1-based position in the suite.
        number: usize,
        /// Scenarios in the suite.
        total: usize,
        /// Its report.
        report: &'a ScenarioReport,
    },
    /// Scenario `number` of `total` could not be run.
    Failed {
        /// 1-based position in the suite.
        number: usize,
        /// Scenarios in the suite.
        total: usize,
        /// The scenario file.
        file: &'a Path,
        /// Why.
        error: &'a RunnerError,
    },
}

impl std::fmt::Display for SuiteProgress<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::InstallingAdapter { name } => write!(f, "installing adapter {name} ..."),
            Self::Started {
                number,
                total,
                file,
            } => write!(f, "[{number}/{total}] {} ...", file.display()),
            Self::Finished {
                number,
                total,
                report: r,
            } => write!(
                f,
                "[{number}/{total}] {}: {} ({} events, {:.1} s)",
                r.scenario,
                if r.passed { "pass" } else { "FAIL" },
                r.verdict.events.attempted,
                r.duration_ms as f64 / 1000.0
            ),
            Self::Failed {
                number,
                total,
                file,
                error,
            } => write!(f, "[{number}/{total}] {}: ERROR {error}", file.display()),
        }
    }
}

/// Runs `files`, at most `opts.jobs` at a time, telling `progress` when each starts and
/// ends (in the order that happens); prints nothing. The report lists the scenarios in the
/// order of `files`, whatever order they finished in. A scenario whose task panicked is
/// reported as an error of that file.
pub async fn run_suite(
    files: &[PathBuf],
    opts: &RunnerOptions,
    mut progress: impl FnMut(SuiteProgress<'_>),
) -> SuiteReport {
    let total = files.len();
    let jobs = opts.jobs.max(1);
    let shared = std::sync::Arc::new(opts.clone());
    let mut outcomes: Vec<Option<Result<ScenarioReport, String>>> = vec![None; total];
    let mut tasks = tokio::task::JoinSet::new();
    let mut task_index = std::collections::HashMap::new();
    let mut next = 0;
    loop {
        while tasks.len() < jobs && next < total {
            let (index, file) = (next, files[next].clone());
            progress(SuiteProgress::Started {
                number: index + 1,
                total,
                file: &files[index],
            });
            let opts = std::sync::Arc::clone(&shared);
            let handle = tasks.spawn(async move { (index, run_scenario(&file, &opts).await) });
            task_index.insert(handle.id(), index);
            next += 1;
        }
        let Some(joined) = tasks.join_next_with_id().await else {
            break;
        };
        let (index, result) = match joined {
            Ok((_, (index, result))) => (index, result),
            Err(join_error) => {
                let Some(&index) = task_index.get(&join_error.id()) else {
                    continue;
                };
                let error = RunnerError::Settings(format!("the run stopped: {join_error}"));
                (index, Err(error))
            }
        };
        let (number, file) = (index + 1, &files[index]);
        let outcome = match result {
            Ok(report) => {
                progress(SuiteProgress::Finished {
                    number,
                    total,
                    report: &report,
                });
                Ok(report)
            }
            Err(error) => {
                progress(SuiteProgress::Failed {
                    number,
                    total,
                    file,
                    error: &error,
                });
                Err(error.to_string())
            }
        };
        outcomes[index] = Some(outcome);
    }
    let mut reports = Vec::new();
    let mut errors = Vec::new();
    for (file, outcome) in files.iter().zip(outcomes) {
        match outcome {
            Some(Ok(report)) => reports.push(report),
            Some(Err(error)) => errors.push((file.display().to_string(), error)),
            None => errors.push((file.display().to_string(), "not run".to_owned())),
        }
    }
    SuiteReport::new(opts.sender.label(), reports, errors)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use amplitude_loadgen::DurationMs;

    /// Issue 12, fault 8: a request that got no response counts under "cut", so the buckets
    /// add up to every request.
    #[test]
    fn requests_without_a_response_count_as_cut() {
        let r = |status| crate::check::Request {
            status,
            ..Default::default()
        };
        let by = requests_by_status(&[r(200), r(0), r(503), r(0), r(0)]);
        assert_eq!(
            by.into_iter().collect::<Vec<_>>(),
            vec![
                ("200".to_owned(), 1),
                ("503".to_owned(), 1),
                ("cut".to_owned(), 3)
            ]
        );
    }

    #[test]
    fn control_lines_are_merged_by_time_and_nothing_follows_exit() {
        let sc = Scenario::from_toml_str(
            "name = \"x\"\nduration = \"1s\"\narrival = { kind = \"constant\", rate = 4.0 }\n",
            Path::new("x.toml"),
        )
        .unwrap();
        let events: Vec<_> = sc.events(1).unwrap().collect();
        assert_eq!(events.len(), 4); // at 125, 375, 625, 875 ms
        let settings = ConformanceSettings {
            controls: vec![
                ControlAt {
                    at: DurationMs(375),
                    control: Control::Flush,
                },
                ControlAt {
                    at: DurationMs(500),
                    control: Control::Exit,
                },
            ],
            ..Default::default()
        };
        let kinds: Vec<(u64, FeedKind)> = feed(&events, &settings)
            .iter()
            .map(|l| (l.offset_us / 1_000, l.kind))
            .collect();
        assert_eq!(
            kinds,
            vec![
                (125, FeedKind::Event),
                (375, FeedKind::Event),
                (375, FeedKind::Flush),
                (500, FeedKind::Exit)
            ]
        );
        assert_eq!(settings.exit_at_us(), Some(500_000));
    }

    #[test]
    fn the_drain_budget_ends_before_the_kill() {
        let s = |ms| ConformanceSettings {
            deadline: Some(DurationMs(ms)),
            ..Default::default()
        };
        assert_eq!(s(120_000).drain_budget_ms(), 110_000);
        assert_eq!(s(60_000).drain_budget_ms(), 54_000);
        assert_eq!(s(20_000).drain_budget_ms(), 18_000);
        assert_eq!(s(3_000).drain_budget_ms(), 1_500);
    }
}
