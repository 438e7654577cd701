//! `amplitude-loadgen`: generate or send a scenario's traffic.
//!
//! Exit codes: 0 success, 1 error (bad scenario, unreachable generator, I/O, reports that
//! do not merge), 2 usage error, 98 the target was not loaded as asked (and no threshold names
//! a load metric), 99 a threshold of the scenario failed (for `run`, unless it ran one
//! segment of several: then `merge` gives both verdicts).

use amplitude_loadgen::{
    builtin, merge, render_html, run, Progress, ProgressFn, Report, RunOptions, Scenario, Segment,
    EXIT_NOT_LOADED_AS_ASKED,
};
use anyhow::Context;
use clap::{Parser, Subcommand, ValueEnum};
use std::io::{IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;

/// Exit code when a threshold fails (distinct from errors, as k6 does).
const EXIT_THRESHOLDS_FAILED: u8 = 99;

#[derive(Parser)]
#[command(
    name = "amplitude-loadgen",
    version,
    about = "Seeded, open-model, bursty Amplitude traffic"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Clone, Copy, ValueEnum)]
enum ProgressArg {
    Auto,
    Bar,
    Lines,
    Off,
}

#[derive(Subcommand)]
enum Command {
    /// Send the scenario's events to an Amplitude-compatible endpoint and report.
    Run {
        /// Scenario file (TOML), or the name of a built-in scenario (`list` names them).
        #[arg(value_name = "SCENARIO")]
        scenario: PathBuf,
        /// Base URL, e.g. http://127.0.0.1:8080 (the scenario's endpoint picks the path).
        #[arg(long)]
        target: String,
        /// API key put into every request.
        #[arg(long)]
        api_key: String,
        /// Seed (default: the scenario's `seed`).
        #[arg(long)]
        seed: Option<u64>,
        /// Write the JSON report here.
        #[arg(long)]
        report_json: Option<PathBuf>,
        /// Write the HTML report here.
        #[arg(long)]
        report_html: Option<PathBuf>,
        /// Override the scenario's `run.max_in_flight`.
        #[arg(long)]
        max_in_flight: Option<usize>,
        /// Progress display on stderr.
        #[arg(long, value_enum, default_value = "auto")]
        progress: ProgressArg,
        /// Worker threads of the async runtime that sends the requests (default: the
        /// machine's available parallelism).
        #[arg(long, value_name = "N", value_parser = clap::value_parser!(u16).range(1..))]
        threads: Option<u16>,
        /// Largest accepted shortfall of the achieved rate below the offered one, as a
        /// ratio (overrides the scenario's `run.rate_tolerance`, default 0.05). Beyond it,
        /// or with any dropped arrival, the run exits 98 (target not loaded as asked)
        /// unless the scenario's thresholds name a load metric.
        #[arg(long, value_name = "RATIO")]
        rate_tolerance: Option<f64>,
        /// Send only the Kth of N disjoint parts of the scenario (0 <= K < N), split by
        /// identity; `merge` combines the N reports (docs/scale-out.md).
        #[arg(long, value_name = "K/N")]
        segment: Option<Segment>,
        /// Start the schedule at this wall-clock time, ms since the Unix epoch (e.g.
        /// `$(( ($(date +%s) + 60) * 1000 ))`), so that segments started at different
        /// moments send together; a time already past starts now.
        #[arg(long, value_name = "UNIX_MS")]
        start_at: Option<i64>,
    },
    /// Write the scenario's event stream as JSON Lines (one Amplitude event per line).
    Generate {
        /// Scenario file (TOML), or the name of a built-in scenario (`list` names them).
        #[arg(value_name = "SCENARIO")]
        scenario: PathBuf,
        /// Seed (default: the scenario's `seed`).
        #[arg(long)]
        seed: Option<u64>,
        /// Write here instead of stdout.
        #[arg(long, short)]
        output: Option<PathBuf>,
        /// Wrap each event: {"offset_ms":..,"seq":..,"defect":..,"event":{..}}.
        #[arg(long)]
        with_timing: bool,
        /// Write only the Kth of N disjoint parts of the stream (0 <= K < N), split by
        /// identity; the N parts together are the whole stream.
        #[arg(long, value_name = "K/N")]
        segment: Option<Segment>,
    },
    /// Merge the JSON reports of the N segments of one run (`run --segment K/N`) into one:
    /// percentiles from the summed histograms, counts summed, thresholds evaluated on the
    /// merged result (exit 99 when one fails).
    Merge {
        /// The segment reports (JSON), one per segment 0..N, in any order.
        #[arg(required = true, value_name = "REPORT")]
        reports: Vec<PathBuf>,
        /// Write the merged JSON report here.
        #[arg(long)]
        report_json: Option<PathBuf>,
        /// Write the merged HTML report here.
        #[arg(long)]
        report_html: Option<PathBuf>,
    },
    /// Validate scenario files and print a one-line summary of each.
    Check {
        /// Scenario files, or names of built-in scenarios.
        #[arg(required = true, value_name = "SCENARIO")]
        scenarios: Vec<PathBuf>,
    },
    /// List the built-in scenarios: name, the traffic it models, what it should provoke.
    List,
}

/// The file behind a scenario argument: a path as given, or a built-in scenario written out
/// to the kit's cache directory (a path that exists, contains `/` or ends in `.toml` is a
/// file; anything else is a built-in name).
fn scenario_file(arg: &Path) -> anyhow::Result<PathBuf> {
    Ok(builtin::resolve(arg)?)
}

/// One line per built-in scenario.
fn list_builtins() {
    let summaries = builtin::summaries();
    let width = summaries.iter().map(|s| s.name.len()).max().unwrap_or(0);
    for s in summaries {
        println!(
            "{:<width$}  {} Should provoke: {}",
            s.name, s.description, s.provokes
        );
    }
}

fn main() -> ExitCode {
    match real_main() {
        Ok(code) => code,
        // `generate | head` closes the pipe early: not an error.
        Err(e)
            if e.downcast_ref::<std::io::Error>()
                .is_some_and(|io| io.kind() == std::io::ErrorKind::BrokenPipe) =>
        {
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn real_main() -> anyhow::Result<ExitCode> {
    let cli = Cli::parse();
    match cli.command {
        Command::Generate {
            scenario,
            seed,
            output,
            with_timing,
            segment,
        } => {
            let sc = Scenario::from_path(scenario_file(&scenario)?)?;
            let stream = sc
                .events(seed.unwrap_or(sc.seed))?
                .segment(segment.unwrap_or(Segment::WHOLE));
            let out: Box<dyn Write> = match &output {
                Some(p) => Box::new(
                    std::fs::File::create(p)
                        .with_context(|| format!("cannot create {}", p.display()))?,
                ),
                None => Box::new(std::io::stdout().lock()),
            };
            let mut out = std::io::BufWriter::new(out);
            for ev in stream {
                if with_timing {
                    let line = serde_json::json!({
                        "offset_ms": ev.offset_ms(),
                        "seq": ev.seq,
                        "index": ev.index,
                        "phase": ev.phase,
                        "defect": ev.defect,
                        "event": ev.event,
                    });
                    serde_json::to_writer(&mut out, &line).map_err(std::io::Error::from)?;
                } else {
                    serde_json::to_writer(&mut out, &ev.event).map_err(std::io::Error::from)?;
                }
                out.write_all(b"\n")?;
            }
            out.flush()?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Merge {
            reports,
            report_json,
            report_html,
        } => {
            let mut inputs = Vec::with_capacity(reports.len());
            for p in &reports {
                let text = std::fs::read_to_string(p)
                    .with_context(|| format!("cannot read {}", p.display()))?;
                let report: Report = serde_json::from_str(&text)
                    .with_context(|| format!("{}: not a loadgen JSON report", p.display()))?;
                inputs.push((p.display().to_string(), report));
            }
            let report = merge(&inputs)?;
            write_reports(&report, report_json.as_deref(), report_html.as_deref())
        }
        Command::List => {
            list_builtins();
            Ok(ExitCode::SUCCESS)
        }
        Command::Check { scenarios } => {
            let mut failed = false;
            for arg in scenarios {
                let path = match scenario_file(&arg) {
                    Ok(p) => p,
                    Err(e) => {
                        failed = true;
                        println!("FAIL {e:#}");
                        continue;
                    }
                };
                match Scenario::from_path(&path).and_then(|sc| {
                    let stream = sc.events(sc.seed)?;
                    let ms = stream.total_duration_ms();
                    let n = stream.count();
                    Ok((sc, ms, n))
                }) {
                    Ok((sc, ms, n)) => {
                        // The opaque tables belong to the conformance suite, which checks them.
                        let unchecked = if sc.mock.is_empty() && sc.conformance.is_empty() {
                            ""
                        } else {
                            "; [mock] and [conformance] are checked by `amplitude-conformance check`"
                        };
                        println!(
                            "ok   {} ({}): {n} events over {:.1} s, {} {}{unchecked}",
                            arg.display(),
                            sc.name,
                            ms as f64 / 1e3,
                            sc.endpoint.as_str(),
                            sc.region.as_str()
                        )
                    }
                    Err(e) => {
                        failed = true;
                        println!("FAIL {e}");
                    }
                }
            }
            Ok(if failed {
                ExitCode::FAILURE
            } else {
                ExitCode::SUCCESS
            })
        }
        Command::Run {
            scenario,
            target,
            api_key,
            seed,
            report_json,
            report_html,
            max_in_flight,
            progress,
            threads,
            rate_tolerance,
            segment,
            start_at,
        } => {
            let mut sc = Scenario::from_path(scenario_file(&scenario)?)?;
            if !sc.mock.is_empty() {
                eprintln!(
                    "note: the scenario's [mock] section (limits, faults) configures the \
                     embedded mock of amplitude-conformance; `run` sends to --target as it \
                     is, so it is ignored here"
                );
            }
            if let Some(t) = rate_tolerance {
                anyhow::ensure!(
                    (0.0..=1.0).contains(&t),
                    "--rate-tolerance must be between 0 and 1, got {t}"
                );
                sc.run.rate_tolerance = t;
            }
            let opts = RunOptions {
                target,
                api_key,
                seed,
                max_in_flight,
                progress: progress_display(progress),
                segment,
                start_at_ms: start_at,
            };
            let threads = match threads {
                Some(n) => usize::from(n),
                None => std::thread::available_parallelism().map_or(1, usize::from),
            };
            let rt = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(threads)
                .enable_all()
                .build()
                .context("cannot start the tokio runtime")?;
            let report = rt.block_on(run(&sc, &opts))?;
            write_reports(&report, report_json.as_deref(), report_html.as_deref())
        }
    }
}

/// Prints the terminal summary, writes the JSON and HTML reports asked for, and returns the
/// exit code of the verdict (0 passed, 98 not loaded as asked, 99 a threshold failed).
fn write_reports(
    report: &Report,
    json: Option<&Path>,
    html: Option<&Path>,
) -> anyhow::Result<ExitCode> {
    print!("{}", report.to_terminal());
    // One segment of several sends only its identities' share: its threshold verdict is
    // not the run's (counts and rates are partial), so it exits 0 and `merge` decides.
    let deferred = report.segment.is_some_and(|s| s.count() > 1);
    if deferred && (!report.passed || report.load.fails_run()) {
        println!("(segment run: exit 0; the thresholds are decided by `amplitude-loadgen merge`)");
    }
    if let Some(p) = json {
        let bytes = serde_json::to_vec_pretty(report)?;
        std::fs::write(p, bytes).with_context(|| format!("cannot write {}", p.display()))?;
    }
    if let Some(p) = html {
        let page = render_html(report)?;
        std::fs::write(p, page).with_context(|| format!("cannot write {}", p.display()))?;
    }
    Ok(if deferred {
        ExitCode::SUCCESS
    } else if report.load.fails_run() {
        ExitCode::from(EXIT_NOT_LOADED_AS_ASKED)
    } else if report.passed {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(EXIT_THRESHOLDS_FAILED)
    })
}

/// The progress display on stderr the library reports to: an indicatif bar, one line per
/// second, or nothing.
fn progress_display(arg: ProgressArg) -> Option<ProgressFn> {
    let bar = match arg {
        ProgressArg::Off => return None,
        ProgressArg::Bar => true,
        ProgressArg::Lines => false,
        ProgressArg::Auto => std::io::stderr().is_terminal(),
    };
    if bar {
        let pb = std::sync::OnceLock::<indicatif::ProgressBar>::new();
        Some(Arc::new(move |p: &Progress| {
            let pb = pb.get_or_init(|| {
                let pb = indicatif::ProgressBar::new(p.duration_ms.max(1));
                if let Ok(style) = indicatif::ProgressStyle::with_template(
                    "{spinner} [{elapsed_precise}] {bar:30.cyan/blue} {percent:>3}% {msg}",
                ) {
                    pb.set_style(style);
                }
                pb
            });
            if p.finished {
                pb.finish_and_clear();
            } else {
                pb.set_position((p.elapsed.as_millis() as u64).min(p.duration_ms));
                pb.set_message(p.to_string());
            }
        }))
    } else {
        let next_s = std::sync::Mutex::new(1.0_f64);
        Some(Arc::new(move |p: &Progress| {
            let e = p.elapsed.as_secs_f64();
            let Ok(mut next) = next_s.lock() else { return };
            if !p.finished && e >= *next {
                eprintln!("t={e:>4.0}s {p}");
                *next += 1.0;
            }
        }))
    }
}
