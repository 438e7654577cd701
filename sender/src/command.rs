//! The third-party sender contract (docs/sender-contract.md) spoken by the reference sender:
//! events as JSON Lines in, `{"seq":N,"outcome":...}` lines out, end of input = flush then
//! exit.
//!
//! Contract version 2 adds control lines on stdin: `{"control":"flush"}` (the application
//! awaits `flush()`: no further line is read until every event read before it is delivered
//! or dead-lettered) and `{"control":"exit"}` (the application exits now: no draining, what is
//! still queued is reported `held`). Anything else with a `control` key is reported on stderr
//! as `unsupported control line: ...` and skipped.

use super::config::SenderConfig;
use super::runtime::{Sender, SenderError, SenderReport};
use std::future::Future;
use std::time::Duration;
use tokio::io::{AsyncBufReadExt, AsyncRead, AsyncWrite, AsyncWriteExt, BufReader};

/// The environment variable of the sender contract (version 3) naming the state directory
/// the conformance runner keeps across a sender's crash-restarts.
pub const STATE_DIR_ENV: &str = "AMPLITUDE_SENDER_STATE_DIR";

/// The state directory the contract's environment gives ([`STATE_DIR_ENV`]), when it is set
/// and not empty: where a sender run as `amplitude-conformance sender` without
/// `--state-dir` keeps its durable queue, so that after a SIGKILL the next start finds it
/// (and takes the directory lock the kernel released with the killed process).
pub fn contract_state_dir() -> Option<std::path::PathBuf> {
    state_dir_from(std::env::var_os(STATE_DIR_ENV))
}

/// [`contract_state_dir`] of a given value of the variable.
fn state_dir_from(value: Option<std::ffi::OsString>) -> Option<std::path::PathBuf> {
    value
        .filter(|v| !v.is_empty())
        .map(std::path::PathBuf::from)
}

/// Most input lines persisted with one fsync (group commit).
const MAX_GROUP: usize = 2_000;

/// Runs the sender over `input` (one Amplitude event object per line, or a control line) until
/// end of input or until `shutdown` resolves (SIGTERM), then drains for at most
/// `drain_deadline` (exiting a little before it) and returns; an `exit` control line returns
/// at once. Writes one contract line per event carrying `event_properties.conformance_seq`
/// to `output` as it is delivered or dropped, and `held` lines at exit for those still in the
/// durable queue. Lines that are not events are dead-lettered, never skipped.
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
    // The same user API as any application: builder, batch `send`, `flush`, `shutdown`.
    let (sender, mut outcomes) = Sender::builder(config.core.api_key.clone())
        .config(config)
        .build()
        .await?;
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
    let mut exit = false;
    loop {
        let mut group: Vec<String> = Vec::new();
        let mut control = None;
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
            Ok(_) => control = keep(line, &mut group),
            Err(e) => {
                tracing::error!("reading input: {e}");
                eof = true;
            }
        }
        while !eof
            && control.is_none()
            && group.len() < MAX_GROUP
            && reader.buffer().contains(&b'\n')
        {
            let mut line = String::new();
            match reader.read_line(&mut line).await {
                Ok(0) => eof = true,
                Ok(_) => control = keep(line, &mut group),
                Err(_) => eof = true,
            }
        }
        if !group.is_empty() {
            for (line, err) in sender.send_lines(group).await? {
                reject(&sender, &line, &err)?;
            }
        }
        match control {
            Some(Control::Flush) => {
                let flushed = tokio::select! {
                    r = sender.flush() => r.map(|()| true),
                    () = &mut shutdown => Ok(false),
                };
                if !flushed? {
                    tracing::info!("shutdown requested during a flush; draining");
                    break;
                }
            }
            Some(Control::Exit) => {
                exit = true;
                break;
            }
            None => {}
        }
        if eof {
            break;
        }
    }
    let report = if exit {
        sender.exit().await?
    } else {
        sender.shutdown(drain_deadline).await?
    };
    let _ = writer.await;
    Ok(report)
}

/// A control line of contract version 2.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Control {
    Flush,
    Exit,
}

/// Files an event line in `group`, or returns the control it carries. Unsupported control
/// lines are reported on stderr and skipped.
fn keep(line: String, group: &mut Vec<String>) -> Option<Control> {
    let text = line.trim();
    if text.is_empty() {
        return None;
    }
    if text.contains("\"control\"") {
        if let Ok(serde_json::Value::Object(obj)) = serde_json::from_str(text) {
            if let Some(value) = obj.get("control") {
                return control_of(text, value, obj.len());
            }
        }
    }
    group.push(line);
    None
}

fn control_of(text: &str, value: &serde_json::Value, fields: usize) -> Option<Control> {
    let control = match value.as_str() {
        Some("flush") => Control::Flush,
        Some("exit") => Control::Exit,
        _ => {
            eprintln!("unsupported control line: {text}");
            return None;
        }
    };
    if fields > 1 {
        // An unknown contract element next to a known control: done, but never silently.
        eprintln!("unsupported control line: {text} (fields other than \"control\" ignored)");
    }
    Some(control)
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

#[cfg(test)]
mod reject_tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use crate::Endpoint;

    /// Input lines that are not events are dead-lettered and counted in the report's
    /// `dead_lettered` (the summary line of `amplitude-conformance sender`), with an outcome
    /// line for the one whose seq can be read.
    #[tokio::test]
    async fn input_lines_that_are_not_events_count_as_dead_lettered() {
        let dir = tempfile::tempdir().unwrap();
        // Nothing is sent: no event is valid, so the URL is never used.
        let config = SenderConfig::new(
            "KEY",
            Endpoint::HttpV2,
            "http://127.0.0.1:9/2/httpapi",
            dir.path(),
        );
        let input: &[u8] = b"hello\n[1,2]\n\"text\"\n";
        let (out_w, mut out_r) = tokio::io::duplex(1 << 16);
        let report = run_jsonl(
            config,
            input,
            out_w,
            std::future::pending(),
            Duration::from_secs(5),
        )
        .await
        .unwrap();
        assert_eq!(report.stats.dead_lettered, 3);
        assert_eq!(report.stats.accepted, 0);
        let mut out = String::new();
        tokio::io::AsyncReadExt::read_to_string(&mut out_r, &mut out)
            .await
            .unwrap();
        assert_eq!(out, "");
        let dead = crate::queue::read_dead_letters(dir.path()).unwrap();
        assert_eq!(dead.len(), 3);
    }
}

#[cfg(test)]
mod state_dir_tests {
    use super::*;

    #[test]
    fn the_contract_state_dir_is_the_variable_when_set_and_not_empty() {
        assert_eq!(
            state_dir_from(Some("/tmp/run-1/state".into())),
            Some(std::path::PathBuf::from("/tmp/run-1/state"))
        );
        assert_eq!(state_dir_from(Some("".into())), None);
        assert_eq!(state_dir_from(None), None);
    }
}
