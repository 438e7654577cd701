//! `amplitude-loadgen`: generate or send a scenario's traffic.
//!
//! Exit codes: 0 success, 1 error (bad scenario, unreachable generator, I/O), 2 usage error,
//! 99 a threshold of the scenario failed.

use amplitude_loadgen::{render_html, run, ProgressMode, RunOptions, Scenario};
use anyhow::Context;
use clap::{Parser, Subcommand, ValueEnum};
use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

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
enum Progress {
    Auto,
    Bar,
    Lines,
    Off,
}

#[derive(Subcommand)]
enum Command {
    /// Send the scenario's events to an Amplitude-compatible endpoint and report.
    Run {
        /// Scenario file (TOML).
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
        progress: Progress,
    },
    /// Write the scenario's event stream as JSON Lines (one Amplitude event per line).
    Generate {
        /// Scenario file (TOML).
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
    },
    /// Validate scenario files and print a one-line summary of each.
    Check {
        /// Scenario files.
        #[arg(required = true)]
        scenarios: Vec<PathBuf>,
    },
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
        } => {
            let sc = Scenario::from_path(&scenario)?;
            let stream = sc.events(seed.unwrap_or(sc.seed))?;
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
        Command::Check { scenarios } => {
            let mut failed = false;
            for path in scenarios {
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
                            path.display(),
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
        } => {
            let sc = Scenario::from_path(&scenario)?;
            let opts = RunOptions {
                target,
                api_key,
                seed,
                max_in_flight,
                progress: match progress {
                    Progress::Auto => ProgressMode::Auto,
                    Progress::Bar => ProgressMode::Bar,
                    Progress::Lines => ProgressMode::Lines,
                    Progress::Off => ProgressMode::Off,
                },
            };
            let rt = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .enable_all()
                .build()
                .context("cannot start the tokio runtime")?;
            let report = rt.block_on(run(&sc, &opts))?;
            print!("{}", report.to_terminal());
            if let Some(p) = report_json {
                let json = serde_json::to_vec_pretty(&report)?;
                std::fs::write(&p, json)
                    .with_context(|| format!("cannot write {}", p.display()))?;
            }
            if let Some(p) = report_html {
                let html = render_html(&report)?;
                std::fs::write(&p, html)
                    .with_context(|| format!("cannot write {}", p.display()))?;
            }
            Ok(if report.passed {
                ExitCode::SUCCESS
            } else {
                ExitCode::from(EXIT_THRESHOLDS_FAILED)
            })
        }
    }
}
