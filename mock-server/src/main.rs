//! `amplitude-mock`: the mock as a standalone server. Parses the arguments, builds a
//! [`MockServer`] and serves until Ctrl-C / SIGTERM.

use amplitude_mock::faults::parse_faults_json;
use amplitude_mock::{shutdown_signal, MockClock, MockConfig, MockServer};
use anyhow::Context;
use clap::{Parser, ValueEnum};
use std::io::Write;
use std::net::SocketAddr;
use std::path::PathBuf;

#[derive(Debug, Clone, Copy, ValueEnum)]
enum LogFormat {
    Human,
    Json,
}

/// A faithful mock of Amplitude's ingestion API (HTTP V2, Batch) with a ledger of every event.
///
/// Prints `listening on http://HOST:PORT` on stdout when ready; logs go to stderr.
/// Inspect it under /__mock/ (stats, events, requests, clock, reset, users).
#[derive(Debug, Parser)]
#[command(version)]
struct Args {
    /// Address to listen on (port 0 picks a free port).
    #[arg(long, default_value = "127.0.0.1:8080")]
    bind: SocketAddr,
    /// API key of a US project (repeatable). With no key at all, any key is accepted.
    #[arg(long = "api-key", value_name = "KEY")]
    api_keys: Vec<String>,
    /// API key of an EU project (repeatable); accepted on Host api.eu.amplitude.com or --eu-bind.
    #[arg(long = "eu-api-key", value_name = "KEY")]
    eu_api_keys: Vec<String>,
    /// A second listener whose requests all count as EU-region (spec §1.1).
    #[arg(long)]
    eu_bind: Option<SocketAddr>,
    /// TOML config: [[projects]], [profile], [limits], [ledger] (see docs/fidelity.md).
    #[arg(long)]
    config: Option<PathBuf>,
    /// Seed of every random choice the mock makes (overrides the config's).
    #[arg(long)]
    seed: Option<u64>,
    /// Freeze time at this many ms since the epoch; move it with POST /__mock/clock.
    #[arg(long, value_name = "MS")]
    virtual_clock: Option<i64>,
    /// Log format on stderr (`RUST_LOG` sets the level; API keys are always redacted).
    #[arg(long, value_enum, default_value = "human")]
    log_format: LogFormat,
    /// Also serve HTTPS here with a self-signed certificate generated at start (spec §2: the
    /// Java SDK needs https).
    #[arg(long, value_name = "BIND")]
    tls: Option<SocketAddr>,
    /// Write the HTTPS certificate (PEM) to this file, for clients to trust.
    #[arg(long, value_name = "FILE", requires = "tls")]
    tls_cert_out: Option<PathBuf>,
    /// Write the HTTPS private key (PKCS#8 PEM) to this file.
    #[arg(long, value_name = "FILE", requires = "tls")]
    tls_key_out: Option<PathBuf>,
    /// A DNS name or IP address the certificate covers (repeatable; default localhost,
    /// 127.0.0.1, ::1).
    #[arg(long = "tls-name", value_name = "NAME", requires = "tls")]
    tls_names: Vec<String>,
    /// Most time a request head, a request body or a TLS handshake may take, ms.
    #[arg(long, value_name = "MS", default_value_t = 30_000)]
    read_timeout_ms: u64,
    /// Most connections served at once per listener; more wait in the accept queue.
    #[arg(long, value_name = "N", default_value_t = 10_000)]
    max_connections: usize,
    /// Token non-loopback clients must send as `x-mock-admin-token` to use /__mock/ and
    /// /metrics (without it those routes serve loopback clients only).
    #[arg(long, value_name = "TOKEN")]
    admin_token: Option<String>,
    /// A fault to schedule at start, JSON (one object or an array; repeatable; after the
    /// config file's), e.g. '{"kind":"status","status":503,"count":2}'. See docs/faults.md.
    #[arg(long = "fault", value_name = "JSON")]
    faults: Vec<String>,
}

/// Runs the mock; a startup error (a port in use, a bad config file) is one `error: ...` line
/// with its causes and exit code 1, never a backtrace, whatever `RUST_BACKTRACE` says.
fn main() -> std::process::ExitCode {
    match run(Args::parse()) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

#[tokio::main]
async fn run(args: Args) -> anyhow::Result<()> {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let sub = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()));
    match args.log_format {
        LogFormat::Json => sub.json().init(),
        LogFormat::Human => sub.init(),
    }
    let mut config = match &args.config {
        Some(p) => MockConfig::from_path(p)?,
        None => MockConfig::default(),
    };
    for text in &args.faults {
        let faults = parse_faults_json(text.as_bytes())
            .map_err(anyhow::Error::msg)
            .context("--fault")?;
        config.faults.extend(faults);
    }
    if config.projects.is_empty() && args.api_keys.is_empty() && args.eu_api_keys.is_empty() {
        tracing::info!("no --api-key given: any API key is accepted as a US project");
    }
    let mut builder = MockServer::builder()
        .config(config)
        .bind(args.bind)
        .read_timeout_ms(args.read_timeout_ms)
        .max_connections(args.max_connections)
        .worker_threads(std::thread::available_parallelism().map_or(2, |n| n.get()))
        .clock(
            args.virtual_clock
                .map_or_else(MockClock::system, MockClock::virtual_at),
        );
    builder = args.api_keys.iter().fold(builder, |b, k| b.api_key(k));
    builder = args
        .eu_api_keys
        .iter()
        .fold(builder, |b, k| b.eu_api_key(k));
    if let Some(seed) = args.seed {
        builder = builder.seed(seed);
    }
    if let Some(token) = &args.admin_token {
        builder = builder.admin_token(token);
    }
    if let Some(eu) = args.eu_bind {
        builder = builder.eu_bind(eu);
    }
    if let Some(tls) = args.tls {
        builder = builder.tls_bind(tls).tls_names(args.tls_names.clone());
    }
    let mock = builder.try_start().await.context("starting the mock")?;
    if let Some((_, identity)) = mock.tls_identity() {
        for (path, pem) in [
            (&args.tls_cert_out, &identity.cert_pem),
            (&args.tls_key_out, &identity.key_pem),
        ] {
            if let Some(path) = path {
                std::fs::write(path, pem).with_context(|| format!("writing {}", path.display()))?;
            }
        }
    }
    {
        let mut out = std::io::stdout().lock();
        writeln!(out, "listening on {}", mock.uri())?;
        out.flush()?;
    }
    shutdown_signal().await;
    tracing::info!("shutting down");
    mock.shutdown().await?;
    Ok(())
}
