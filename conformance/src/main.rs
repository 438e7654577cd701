//! `amplitude-conformance`: the conformance suite (run with no subcommand), `check` of
//! scenario files, and the reference sender (`sender`). The suite's output is printed
//! here; the runner returns values and reports progress through a callback.

use amplitude_conformance::sender::{defaults, BackoffConfig, CoreConfig};
use amplitude_conformance::{run_jsonl, Endpoint, Region, SenderConfig};
use anyhow::Context;
use clap::{Args, Parser, Subcommand, ValueEnum};
use std::path::PathBuf;
use std::time::Duration;

#[derive(Parser)]
#[command(
    name = "amplitude-conformance",
    version,
    about = "Amplitude conformance suite and reference sender"
)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
    #[command(flatten)]
    suite: SuiteArgs,
}

/// With no subcommand: run the conformance suite (default: the built-in scenarios, the
/// embedded mock, the reference sender) and print the verdict table. Exit 0 only when every
/// check of every scenario passes.
#[derive(Args)]
struct SuiteArgs {
    /// List the built-in scenarios (name, the traffic it models, what it should provoke) and
    /// exit.
    #[arg(long)]
    list: bool,
    /// Run this scenario (repeatable) instead of the default suite: a built-in name (see
    /// --list) or a file (a path that exists, contains `/` or ends in .toml).
    #[arg(long = "scenario", value_name = "NAME|FILE")]
    scenarios: Vec<PathBuf>,
    /// Run the default suite of this directory (its *.toml) instead of the built-in one.
    #[arg(long, value_name = "DIR", conflicts_with = "scenarios")]
    scenarios_dir: Option<PathBuf>,
    /// Judge a third-party sender: a shell command speaking the sender contract (README).
    #[arg(long, value_name = "CMD", conflicts_with = "adapter")]
    sender_cmd: Option<String>,
    /// Judge an official SDK through its adapter (the browser ones in headless Chromium;
    /// written out to the kit's cache directory and installed there first;
    /// AMPLITUDE_KIT_CACHE_DIR overrides the cache directory).
    #[arg(long, value_name = "NAME", value_parser = adapter_names())]
    adapter: Option<String>,
    /// Override every scenario's seed.
    #[arg(long)]
    seed: Option<u64>,
    /// Run N scenarios at once, each with its own mock and sender (default 1). More is
    /// faster but shares the CPU between senders, stretching their timings; published
    /// tables are made with 1.
    #[arg(long, value_name = "N", default_value_t = 1, value_parser = clap::value_parser!(u16).range(1..=64))]
    jobs: u16,
    /// Write the JSON report (schema: conformance/report.schema.json).
    #[arg(long, value_name = "FILE")]
    report_json: Option<PathBuf>,
    /// Write JUnit XML for CI systems.
    #[arg(long, value_name = "FILE")]
    junit: Option<PathBuf>,
    /// Write a Markdown conformance table (docs/conformance/).
    #[arg(long, value_name = "FILE")]
    report_md: Option<PathBuf>,
    /// Write a self-contained HTML report: the summary table and, per scenario, a request
    /// timeline, throttle lanes, the event flow and every failed check with its examples.
    #[arg(long, value_name = "FILE")]
    report_html: Option<PathBuf>,
}

/// `--adapter`'s values: the adapters the binary carries (its help lists them, and any other
/// name is refused before anything runs).
fn adapter_names() -> clap::builder::PossibleValuesParser {
    clap::builder::PossibleValuesParser::new(
        amplitude_conformance::runner::ADAPTERS
            .iter()
            .map(|a| clap::builder::PossibleValue::new(a.name)),
    )
}

#[derive(Subcommand)]
enum Command {
    /// Check scenario files in full (the loadgen part, `[mock]` with every fault, and
    /// `[conformance]`) without running anything. Exit 0 when all are valid, 2 otherwise;
    /// each error names the file, the line, the field and why.
    Check {
        /// Scenario files, or names of built-in scenarios.
        #[arg(required = true, value_name = "NAME|FILE")]
        scenarios: Vec<PathBuf>,
    },
    /// Reference sender speaking the third-party sender contract (version 3,
    /// docs/sender-contract.md): events as JSON Lines on stdin (and control lines),
    /// `{"seq":N,"outcome":...}` lines on stdout; the environment variables it reads are
    /// listed below.
    #[command(after_help = SENDER_ENV_HELP)]
    Sender(SenderArgs),
}

/// Every environment variable of the sender contract (docs/sender-contract.md) and every one
/// `sender` reads: its help lists them all.
const SENDER_ENV_HELP: &str = "\
Environment:
  AMPLITUDE_API_KEY            API key put into every request (required)
  AMPLITUDE_SERVER_URL         URL of the HTTP V2 endpoint (default: the --region's)
  AMPLITUDE_BATCH_URL          URL of the Batch endpoint (default: the --region's)
  AMPLITUDE_USE_BATCH          1: send to the Batch endpoint (as --endpoint batch)
  AMPLITUDE_DRAIN_DEADLINE_MS  drain deadline, ms (--drain-deadline-ms wins; default 30000)
  AMPLITUDE_SENDER_CONTRACT    contract version of the runner (1 to 3)
  AMPLITUDE_SENDER_STATE_DIR   state directory when --state-dir is not given (contract 3)
  AMPLITUDE_SENDER_RESTART     restart number the runner gives (contract 3); not needed:
                               a restart resends what the state directory holds
  RUST_LOG                     log filter of the messages on stderr (default: warn)";

#[derive(Clone, Copy, ValueEnum)]
enum EndpointArg {
    /// HTTP V2 (`AMPLITUDE_SERVER_URL`), per-device order kept.
    V2,
    /// Batch (`AMPLITUDE_BATCH_URL`).
    Batch,
}

/// `--region`: the CLI's spelling of [`Region`] (clap names `us` / `eu`).
#[derive(Clone, Copy, ValueEnum)]
enum RegionArg {
    Us,
    Eu,
}

impl From<RegionArg> for Region {
    fn from(r: RegionArg) -> Self {
        match r {
            RegionArg::Us => Region::Us,
            RegionArg::Eu => Region::Eu,
        }
    }
}

/// `--endpoint`: the CLI's spelling of [`Endpoint`] (clap names `v2` / `batch`).
impl From<EndpointArg> for Endpoint {
    fn from(e: EndpointArg) -> Self {
        match e {
            EndpointArg::V2 => Endpoint::HttpV2,
            EndpointArg::Batch => Endpoint::Batch,
        }
    }
}

#[derive(Args)]
struct SenderArgs {
    /// State directory (durable queue, dead letters); reuse it to resume after a crash.
    /// Default: env AMPLITUDE_SENDER_STATE_DIR (sender contract 3: the runner keeps it
    /// across restarts), else a fresh directory under the system temp dir.
    #[arg(long)]
    state_dir: Option<PathBuf>,
    /// Endpoint to send to (env AMPLITUDE_USE_BATCH=1 picks batch).
    #[arg(long, value_enum, default_value = "v2")]
    endpoint: EndpointArg,
    /// Region used when the endpoint's URL variable is not set.
    #[arg(long, value_enum, default_value = "us")]
    region: RegionArg,
    /// Most events per request (at most 2,000).
    #[arg(long, default_value_t = defaults::BATCH_SIZE)]
    batch_size: usize,
    /// Longest wait before a queued event is sent, ms.
    #[arg(long, default_value_t = defaults::FLUSH_INTERVAL_MS)]
    flush_interval_ms: u64,
    /// Requests in flight at once.
    #[arg(long, default_value_t = defaults::MAX_IN_FLIGHT)]
    max_in_flight: usize,
    /// Per-identity pacing, events/s (0 = off). Default: the endpoint's documented threshold.
    #[arg(long)]
    eps_limit: Option<u32>,
    /// Pause of a throttled identity after a 429, ms.
    #[arg(long, default_value_t = defaults::THROTTLE_PAUSE_MS)]
    throttle_pause_ms: u64,
    /// User-property updates allowed per user per hour (0 = no budget).
    #[arg(long, default_value_t = defaults::PROPERTY_BUDGET)]
    property_budget: u32,
    /// Backoff ceiling of the first retry, ms.
    #[arg(long, default_value_t = defaults::BACKOFF_BASE_MS)]
    backoff_base_ms: u64,
    /// Largest backoff ceiling, ms.
    #[arg(long, default_value_t = defaults::BACKOFF_CAP_MS)]
    backoff_cap_ms: u64,
    /// Dead-letter an event after this many failed attempts (default: retry forever).
    #[arg(long)]
    max_attempts: Option<u32>,
    /// Per-request timeout, ms.
    #[arg(long, default_value_t = defaults::REQUEST_TIMEOUT_MS)]
    request_timeout_ms: u64,
    /// After end of input or SIGTERM, drain for at most this long, ms (exiting a little
    /// before it); the rest stays in the state directory and is reported `held`. Default:
    /// env AMPLITUDE_DRAIN_DEADLINE_MS, else 30,000.
    #[arg(long)]
    drain_deadline_ms: Option<u64>,
    /// Seed of the backoff jitter.
    #[arg(long, default_value_t = defaults::SEED)]
    seed: u64,
    /// Compact the durable queue's log past this many bytes (default 64 MiB).
    #[arg(long, default_value_t = defaults::COMPACT_LOG_BYTES)]
    compact_log_bytes: u64,
    /// Size cap of the durable queue's log, bytes: past it an append fails as on a full disk
    /// (default: none; for tests).
    #[arg(long)]
    max_log_bytes: Option<u64>,
    /// Merge consecutive `$set`-only `$identify` events of one user that are still queued
    /// (saves user-property budget; the merged-away events are reported as dropped).
    #[arg(long)]
    coalesce_set: bool,
    /// Hold user-property updates past the hourly budget until the window frees (up to an
    /// hour), instead of sending them with a warning (spec §8.1).
    #[arg(long)]
    hold_property_updates: bool,
}

/// An error that ends the binary is one `error: ...` line with its causes and exit code 1,
/// never a backtrace, whatever `RUST_BACKTRACE` says (the suite's own exit codes, 1 and 2,
/// are set where the suite decides them).
fn main() -> std::process::ExitCode {
    match real_main() {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

fn real_main() -> anyhow::Result<()> {
    use std::io::IsTerminal;
    // Colours only on a terminal: a runner or a file gets plain text.
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn")),
        )
        .init();
    let cli = Cli::parse();
    match cli.command {
        Some(Command::Sender(args)) => run_sender(args),
        Some(Command::Check { scenarios }) => check_scenarios(&scenarios),
        None if cli.suite.list => {
            list_builtins();
            Ok(())
        }
        None => run_suite(cli.suite),
    }
}

/// One line per built-in scenario: its name, its description (the traffic it models), what
/// it should provoke, and whether the default suite leaves it out.
fn list_builtins() {
    let summaries = amplitude_loadgen::builtin::summaries();
    let width = summaries.iter().map(|s| s.name.len()).max().unwrap_or(0);
    for s in summaries {
        let in_default = toml::from_str::<toml::Table>(s.text)
            .ok()
            .and_then(|t| t.get("conformance")?.get("default_suite")?.as_bool())
            .unwrap_or(true);
        let note = if in_default {
            ""
        } else {
            " (not in the default suite)"
        };
        println!(
            "{:<width$}  {} Should provoke: {}{note}",
            s.name, s.description, s.provokes
        );
    }
}

fn check_scenarios(args: &[PathBuf]) -> anyhow::Result<()> {
    let mut invalid = false;
    for arg in args {
        let checked = match amplitude_conformance::runner::resolve_scenario(arg) {
            Ok(f) => amplitude_conformance::runner::prepare(&f).map_err(|e| e.to_string()),
            Err(e) => Err(format!("{e:#}")),
        };
        match checked {
            Ok(p) => println!("ok   {} ({})", arg.display(), p.scenario.name),
            Err(e) => {
                invalid = true;
                println!("FAIL {e}");
            }
        }
    }
    if invalid {
        std::process::exit(2);
    }
    Ok(())
}

fn run_suite(a: SuiteArgs) -> anyhow::Result<()> {
    let cmd = amplitude_conformance::runner::SuiteCommand {
        scenarios: a.scenarios,
        scenarios_dir: a.scenarios_dir,
        sender_cmd: a.sender_cmd,
        adapter: a.adapter,
        seed: a.seed,
        jobs: usize::from(a.jobs),
        report_json: a.report_json,
        junit: a.junit,
        report_md: a.report_md,
        report_html: a.report_html,
    };
    let exe = std::env::current_exe().context("locating this binary")?;
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the tokio runtime")?;
    // Exit codes: 0 every check passed; 1 a check failed; 2 the suite could not run (an
    // invalid scenario, a sender that could not be started, ...).
    let report = match rt
        .block_on(cmd.run(exe, |p| eprintln!("{p}")))
        .and_then(|report| {
            print!("{}", report.to_terminal());
            cmd.write_reports(&report)?;
            Ok(report)
        }) {
        Ok(r) => r,
        Err(e) => {
            eprintln!("error: {e:#}");
            std::process::exit(2);
        }
    };
    if !report.errors.is_empty() {
        std::process::exit(2);
    }
    if !report.passed {
        std::process::exit(1);
    }
    Ok(())
}

/// Contract versions this sender speaks (AMPLITUDE_SENDER_CONTRACT).
const CONTRACT_VERSIONS: [&str; 3] = ["1", "2", "3"];

fn run_sender(a: SenderArgs) -> anyhow::Result<()> {
    let api_key = std::env::var("AMPLITUDE_API_KEY").context("AMPLITUDE_API_KEY is not set")?;
    if let Ok(v) = std::env::var("AMPLITUDE_SENDER_CONTRACT") {
        if !CONTRACT_VERSIONS.contains(&v.trim()) {
            eprintln!(
                "unsupported sender contract version: AMPLITUDE_SENDER_CONTRACT={v} (this sender speaks 1 to 3); going on with 3"
            );
        }
    }
    // The flag wins over the runner's AMPLITUDE_DRAIN_DEADLINE_MS.
    let drain_deadline_ms = match (
        a.drain_deadline_ms,
        std::env::var("AMPLITUDE_DRAIN_DEADLINE_MS"),
    ) {
        (Some(ms), _) => ms,
        (None, Ok(v)) => v.trim().parse::<u64>().with_context(|| {
            format!("AMPLITUDE_DRAIN_DEADLINE_MS={v:?} is not a number of milliseconds")
        })?,
        (None, Err(_)) => defaults::DRAIN_DEADLINE_MS,
    };
    // The contract's AMPLITUDE_USE_BATCH=1 picks /batch as well as --endpoint batch.
    let batch_env = std::env::var("AMPLITUDE_USE_BATCH").is_ok_and(|v| v == "1");
    let endpoint_arg = if batch_env {
        EndpointArg::Batch
    } else {
        a.endpoint
    };
    let endpoint = Endpoint::from(endpoint_arg);
    let var = match endpoint {
        Endpoint::HttpV2 => "AMPLITUDE_SERVER_URL",
        Endpoint::Batch => "AMPLITUDE_BATCH_URL",
    };
    let region = Region::from(a.region);
    let url = std::env::var(var).unwrap_or_else(|_| region.url(endpoint));
    let state_dir = a
        .state_dir
        .or_else(amplitude_conformance::sender::contract_state_dir)
        .unwrap_or_else(|| {
            std::env::temp_dir().join(format!("amplitude-sender-{}", uuid::Uuid::new_v4()))
        });
    let mut core = CoreConfig::new(api_key, endpoint);
    core.batch_size = a.batch_size;
    core.flush_interval_ms = a.flush_interval_ms;
    core.max_in_flight = a.max_in_flight;
    if let Some(e) = a.eps_limit {
        core.identity_eps_limit = (e > 0).then_some(e);
    }
    core.throttle_pause_ms = a.throttle_pause_ms;
    core.property_updates_per_window = (a.property_budget > 0).then_some(a.property_budget);
    core.backoff = BackoffConfig {
        base_ms: a.backoff_base_ms,
        cap_ms: a.backoff_cap_ms,
    };
    core.max_attempts = a.max_attempts;
    core.seed = a.seed;
    core.coalesce_set_identify = a.coalesce_set;
    core.hold_property_updates = a.hold_property_updates;
    let config = SenderConfig {
        core,
        url,
        state_dir: state_dir.clone(),
        request_timeout_ms: a.request_timeout_ms,
        compact_log_bytes: a.compact_log_bytes,
        max_log_bytes: a.max_log_bytes,
    };
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the tokio runtime")?;
    let report = rt.block_on(async move {
        let shutdown = amplitude_mock::shutdown_signal();
        run_jsonl(
            config,
            tokio::io::stdin(),
            tokio::io::stdout(),
            shutdown,
            Duration::from_millis(drain_deadline_ms),
        )
        .await
    });
    // tokio's stdin reads on a blocking thread that cannot be cancelled: after SIGTERM with
    // stdin still open, do not wait for it (everything is persisted by now).
    rt.shutdown_background();
    let report = report?;
    let s = &report.stats;
    eprintln!(
        "sender: accepted {} (recovered {}), delivered {}, dead-lettered {}, left in queue (held) {}, requests {}, 429s {}, splits {}, refused {}, retries {}, state dir {}",
        s.accepted,
        report.recovered,
        s.delivered,
        s.dead_lettered,
        report.left_in_queue,
        s.requests,
        s.throttled_requests,
        s.splits,
        s.refused_requests,
        s.retries,
        state_dir.display()
    );
    if let Some(reason) = &report.stopped {
        anyhow::bail!("stopped sending: {reason}");
    }
    Ok(())
}
