//! The third-party sender contract (architecture.md) spoken by the reference sender: events as
//! JSON Lines in, `{"seq":N,"outcome":...}` lines out, end of input = flush then exit.

use super::config::SenderConfig;
use super::runtime::{Sender, SenderError, SenderReport};
use std::future::Future;
use std::time::Duration;
use tokio::io::{AsyncBufReadExt, AsyncRead, AsyncWrite, AsyncWriteExt, BufReader};

/// Most input lines persisted with one fsync (group commit).
const MAX_GROUP: usize = 2_000;

/// Runs the sender over `input` (one Amplitude event object per line) until end of input or
/// until `shutdown` resolves (SIGTERM), then drains for at most `drain_deadline` and returns.
/// Writes one contract line per event carrying `event_properties.conformance_seq` to `output`
/// as it is delivered or dropped. Lines that are not events are dead-lettered, never skipped.
pub async fn run_jsonl<R, W, S>(
    config: SenderConfig,
    input: R,
    output: W,
    shutdown: S,
    drain_deadline: Duration,
) -> Result<SenderReport, SenderError>
where
    R: AsyncRead + Unpin,
    W: AsyncWrite + Unpin + Send + 'static,
    S: Future<Output = ()>,
{
    let (sender, mut outcomes) = Sender::start(config).await?;
    let writer = tokio::spawn(async move {
        let mut out = tokio::io::BufWriter::with_capacity(1 << 16, output);
        while let Some(o) = outcomes.recv().await {
            if let Some(line) = o.to_line() {
                if out.write_all(line.as_bytes()).await.is_err() {
                    break;
                }
            }
            if outcomes.is_empty() && out.flush().await.is_err() {
                break;
            }
        }
        let _ = out.flush().await;
    });
    let mut reader = BufReader::with_capacity(1 << 20, input);
    tokio::pin!(shutdown);
    loop {
        let mut group: Vec<String> = Vec::new();
        let mut eof = false;
        // Wait for one line (or SIGTERM), then take every complete line already buffered.
        let mut line = String::new();
        let read = tokio::select! {
            r = reader.read_line(&mut line) => r,
            () = &mut shutdown => {
                tracing::info!("shutdown requested; draining");
                break;
            }
        };
        match read {
            Ok(0) => eof = true,
            Ok(_) => keep(line, &mut group),
            Err(e) => {
                tracing::error!("reading input: {e}");
                eof = true;
            }
        }
        while !eof && group.len() < MAX_GROUP && reader.buffer().contains(&b'\n') {
            let mut line = String::new();
            match reader.read_line(&mut line).await {
                Ok(0) => eof = true,
                Ok(_) => keep(line, &mut group),
                Err(_) => eof = true,
            }
        }
        if !group.is_empty() {
            for (line, err) in sender.send_lines(group).await? {
                reject(&sender, &line, &err)?;
            }
        }
        if eof {
            break;
        }
    }
    let report = sender.shutdown(drain_deadline).await?;
    let _ = writer.await;
    Ok(report)
}

fn keep(line: String, group: &mut Vec<String>) {
    if !line.trim().is_empty() {
        group.push(line);
    }
}

/// Dead-letters a line that is not an event object, with its seq when one can be read.
fn reject(sender: &Sender, line: &str, err: &serde_json::Error) -> Result<(), SenderError> {
    let text = line.trim();
    let value: Option<serde_json::Value> = serde_json::from_str(text).ok();
    let seq = value
        .as_ref()
        .and_then(|v| v.pointer("/event_properties/conformance_seq"))
        .and_then(serde_json::Value::as_i64);
    let raw = match value {
        Some(v) => v.to_string().into_bytes(),
        None => serde_json::Value::String(text.to_owned())
            .to_string()
            .into_bytes(),
    };
    sender.reject(
        raw,
        seq,
        format!("input line is not an Amplitude event: {err}"),
    )
}
