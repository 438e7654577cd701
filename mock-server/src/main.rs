//! `amplitude-mock`: the mock as a standalone server.

use amplitude_mock::{serve, MockClock, MockConfig, MockState, ProjectConfig, Region};
use anyhow::Context;
use clap::{Parser, ValueEnum};
use std::io::Write;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

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
    /// Log format on stderr.
    #[arg(long, value_enum, default_value = "human")]
    log_format: LogFormat,
}

async fn shutdown_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = tokio::signal::ctrl_c() => {}
                    _ = term.recv() => {}
                }
            }
            Err(_) => {
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let sub = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr);
    match args.log_format {
        LogFormat::Json => sub.json().init(),
        LogFormat::Human => sub.init(),
    }
    let mut config = match &args.config {
        Some(p) => MockConfig::from_path(p)?,
        None => MockConfig::default(),
    };
    for (keys, region) in [(&args.api_keys, Region::Us), (&args.eu_api_keys, Region::Eu)] {
        config.projects.extend(keys.iter().map(|k| ProjectConfig {
            api_key: k.clone(),
            region,
            limits: None,
        }));
    }
    if let Some(seed) = args.seed {
        config.seed = seed;
    }
    if config.projects.is_empty() {
        tracing::info!("no --api-key given: any API key is accepted as a US project");
    }
    let clock = args.virtual_clock.map_or_else(MockClock::system, MockClock::virtual_at);
    let state = Arc::new(MockState::new(config, clock));
    let listener = tokio::net::TcpListener::bind(args.bind)
        .await
        .with_context(|| format!("binding {}", args.bind))?;
    let addr = listener.local_addr()?;
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let mut eu_task = None;
    if let Some(eu) = args.eu_bind {
        let eu_listener = tokio::net::TcpListener::bind(eu)
            .await
            .with_context(|| format!("binding {eu}"))?;
        tracing::info!(addr = %eu_listener.local_addr()?, "EU listener");
        let mut rx = stop_rx.clone();
        let st = state.clone();
        eu_task = Some(tokio::spawn(async move {
            serve(eu_listener, st, Some(Region::Eu), async move {
                let _ = rx.changed().await;
            })
            .await
        }));
    }
    {
        let mut out = std::io::stdout().lock();
        writeln!(out, "listening on http://{addr}")?;
        out.flush()?;
    }
    let mut rx = stop_rx.clone();
    let main = tokio::spawn(serve(listener, state, None, async move {
        let _ = rx.changed().await;
    }));
    shutdown_signal().await;
    tracing::info!("shutting down");
    let _ = stop_tx.send(true);
    main.await??;
    if let Some(t) = eu_task {
        t.await??;
    }
    Ok(())
}
