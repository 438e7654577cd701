//! Runs a sender under test as a child process per the third-party sender contract
//! (docs/sender-contract.md): env vars in, events as JSON Lines on
//! stdin at their intended times, optional outcome lines on stdout, killed at the deadline.

use crate::check::SenderOutcome;
use amplitude_loadgen::GeneratedEvent;
use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::process::Command;
use tokio::time::Instant;

/// Which sender to run.
#[derive(Debug, Clone)]
pub enum SenderSpec {
    /// The reference sender: `EXE sender --state-dir DIR` (a fresh state dir per scenario).
    Reference {
        /// Path of the `amplitude-conformance` binary.
        exe: PathBuf,
        /// Extra arguments after `sender --state-dir DIR` (e.g. `--endpoint batch`).
        args: Vec<String>,
    },
    /// Any program, run with `sh -c CMD`.
    Command {
        /// The shell command.
        cmd: String,
        /// Name in reports.
        label: String,
    },
}

impl SenderSpec {
    /// Name in reports.
    pub fn label(&self) -> String {
        match self {
            Self::Reference { .. } => "reference".to_owned(),
            Self::Command { label, .. } => label.clone(),
        }
    }
}

/// What happened to the sender process.
#[derive(Debug, Clone, Default)]
pub struct SenderRun {
    /// It exited by itself before the deadline.
    pub exited: bool,
    /// Its exit code, when it exited normally.
    pub exit_code: Option<i32>,
    /// Its outcome lines.
    pub outcomes: Vec<SenderOutcome>,
    /// The last 4 KiB of its stderr.
    pub stderr_tail: String,
    /// The first line of its stderr (at most 1 KiB): the adapters print the settings used.
    pub stderr_head: String,
    /// Events written to its stdin before it closed it.
    pub fed: usize,
    /// Wall time from start to exit or kill, ms.
    pub duration_ms: u64,
}

/// Errors starting the sender.
#[derive(Debug, thiserror::Error)]
pub enum ProcessError {
    /// The program could not be started.
    #[error("starting sender `{cmd}`: {source}")]
    Spawn {
        /// What was run.
        cmd: String,
        /// Why it failed.
        source: std::io::Error,
    },
}

/// One line the runner writes on the sender's stdin: an event or a control line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FeedLine {
    /// When, µs since the sender was started.
    pub offset_us: u64,
    /// The JSON line, without its newline.
    pub line: String,
    /// What it is.
    pub kind: FeedKind,
}

/// The kind of a [`FeedLine`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FeedKind {
    /// An application event.
    Event,
    /// `{"control":"flush"}`.
    Flush,
    /// `{"control":"exit"}`: nothing is written after it, and stdin stays open (the
    /// application exited; end of input would mean "flush everything").
    Exit,
}

const STDERR_TAIL: usize = 4_096;
const STDERR_HEAD: usize = 1_024;

/// The feed of `events` (at their intended offsets) with no control lines.
pub fn event_feed(events: &[GeneratedEvent]) -> Vec<FeedLine> {
    events
        .iter()
        .map(|g| FeedLine {
            offset_us: g.offset_us,
            line: g.to_json().unwrap_or_default(),
            kind: FeedKind::Event,
        })
        .collect()
}

/// Starts the sender, writes `feed` at its offsets (from now), then closes stdin (unless the
/// feed ended with an `exit` control), and waits until the sender exits or `deadline_ms`
/// after the last line, then kills it.
pub async fn run_sender(
    spec: &SenderSpec,
    env: &[(String, String)],
    feed: Vec<FeedLine>,
    state_dir: &std::path::Path,
    deadline_ms: u64,
) -> Result<SenderRun, ProcessError> {
    let (mut cmd, shown) = match spec {
        SenderSpec::Reference { exe, args } => {
            let mut c = Command::new(exe);
            c.arg("sender").arg("--state-dir").arg(state_dir).args(args);
            (
                c,
                format!(
                    "{} sender --state-dir {}",
                    exe.display(),
                    state_dir.display()
                ),
            )
        }
        SenderSpec::Command { cmd, .. } => {
            let mut c = Command::new("sh");
            c.arg("-c").arg(cmd);
            (c, cmd.clone())
        }
    };
    cmd.envs(env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    #[cfg(unix)]
    cmd.process_group(0);
    let start = Instant::now();
    let mut child = cmd
        .spawn()
        .map_err(|source| ProcessError::Spawn { cmd: shown, source })?;
    let pgid = child.id();
    let stdin = child.stdin.take();
    let stdout = child.stdout.take();
    let stderr = child.stderr.take();

    let last_offset = feed.last().map_or(0, |l| l.offset_us);
    let feeder = tokio::spawn(async move {
        let Some(mut stdin) = stdin else {
            return (0, None);
        };
        let mut fed = 0usize;
        let mut buf = Vec::with_capacity(64 * 1024);
        let mut i = 0;
        while i < feed.len() {
            let due = start + Duration::from_micros(feed[i].offset_us);
            tokio::time::sleep_until(due).await;
            let now_us = start.elapsed().as_micros() as u64;
            buf.clear();
            let first = i;
            let mut events = 0;
            while i < feed.len() && feed[i].offset_us <= now_us {
                buf.extend_from_slice(feed[i].line.as_bytes());
                buf.push(b'\n');
                events += usize::from(feed[i].kind == FeedKind::Event);
                i += 1;
                if feed[i - 1].kind != FeedKind::Event {
                    break; // a control line goes out on its own, at its time
                }
            }
            if i == first {
                continue;
            }
            if stdin.write_all(&buf).await.is_err() || stdin.flush().await.is_err() {
                break;
            }
            fed += events;
            if feed[i - 1].kind == FeedKind::Exit {
                return (fed, Some(stdin));
            }
        }
        drop(stdin);
        (fed, None)
    });
    let reader = tokio::spawn(async move {
        let mut outcomes = Vec::new();
        let Some(out) = stdout else { return outcomes };
        let mut lines = BufReader::new(out).lines();
        while let Ok(Some(line)) = lines.next_line().await {
            if let Ok(o) = serde_json::from_str::<SenderOutcome>(&line) {
                outcomes.push(o);
            }
        }
        outcomes
    });
    let err_reader = tokio::spawn(async move {
        let mut tail: Vec<u8> = Vec::new();
        let mut head: Vec<u8> = Vec::new();
        let mut head_done = false;
        let Some(mut err) = stderr else {
            return (String::new(), String::new());
        };
        let mut chunk = [0u8; 4096];
        while let Ok(n) = err.read(&mut chunk).await {
            if n == 0 {
                break;
            }
            let got = chunk.get(..n).unwrap_or_default();
            if !head_done {
                let end = got.iter().position(|b| *b == b'\n');
                head.extend_from_slice(got.get(..end.unwrap_or(got.len())).unwrap_or_default());
                head_done = end.is_some() || head.len() >= STDERR_HEAD;
                head.truncate(STDERR_HEAD);
            }
            tail.extend_from_slice(got);
            if tail.len() > 2 * STDERR_TAIL {
                tail.drain(..tail.len() - STDERR_TAIL);
            }
        }
        let from = tail.len().saturating_sub(STDERR_TAIL);
        (
            String::from_utf8_lossy(tail.get(from..).unwrap_or_default()).into_owned(),
            String::from_utf8_lossy(&head).into_owned(),
        )
    });
    let limit = start + Duration::from_micros(last_offset) + Duration::from_millis(deadline_ms);
    let (exited, exit_code) = match tokio::time::timeout_at(limit, child.wait()).await {
        Ok(Ok(status)) => (true, status.code()),
        Ok(Err(_)) => (false, None),
        Err(_) => {
            kill_group(pgid).await;
            let _ = child.kill().await;
            (false, None)
        }
    };
    // Whatever the sender started (e.g. `sh -c` children) goes too.
    kill_group(pgid).await;
    let duration_ms = start.elapsed().as_millis() as u64;
    if !feeder.is_finished() {
        feeder.abort();
    }
    // An `exit` feed kept stdin open until now.
    let (fed, _stdin) = feeder.await.unwrap_or((0, None));
    let grace = Duration::from_secs(5);
    let outcomes = tokio::time::timeout(grace, reader)
        .await
        .ok()
        .and_then(Result::ok)
        .unwrap_or_default();
    let (stderr_tail, stderr_head) = tokio::time::timeout(grace, err_reader)
        .await
        .ok()
        .and_then(Result::ok)
        .unwrap_or_default();
    Ok(SenderRun {
        exited,
        exit_code,
        outcomes,
        stderr_tail,
        stderr_head,
        fed,
        duration_ms,
    })
}

/// SIGKILLs the process group `pgid` (the sender and anything it started). Never signals
/// group 0 or 1 (ourselves / everything).
async fn kill_group(pgid: Option<u32>) {
    #[cfg(unix)]
    if let Some(pgid) = pgid.and_then(|p| i32::try_from(p).ok()).filter(|p| *p > 1) {
        use nix::sys::signal::{killpg, Signal};
        let _ = killpg(nix::unistd::Pid::from_raw(pgid), Signal::SIGKILL);
    }
}
