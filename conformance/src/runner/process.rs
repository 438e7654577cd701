//! Runs a sender under test as a child process per the third-party sender contract
//! (docs/sender-contract.md): env vars in, events as JSON Lines on
//! stdin at their intended times, optional outcome lines on stdout, killed at the deadline.

use crate::check::SenderOutcome;
use amplitude_loadgen::GeneratedEvent;
use std::path::PathBuf;
use std::process::Stdio;
use std::sync::Arc;
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

    /// What is run, for messages: the shell command, or `EXE sender`.
    pub fn command_line(&self) -> String {
        match self {
            Self::Reference { exe, .. } => format!("{} sender", exe.display()),
            Self::Command { cmd, .. } => cmd.clone(),
        }
    }
}

/// What happened to the sender process (its last one, when the scenario restarts it).
#[derive(Debug, Clone, Default)]
pub struct SenderRun {
    /// Its last process exited by itself before the deadline.
    pub exited: bool,
    /// The exit code of its last process, when it exited normally.
    pub exit_code: Option<i32>,
    /// Its outcome lines, from every process in order (a killed process's lines count).
    pub outcomes: Vec<SenderOutcome>,
    /// The last 4 KiB of its stderr (every process's, a `[runner] restart N` line between
    /// two).
    pub stderr_tail: String,
    /// The first line of its first process's stderr (at most 1 KiB): the adapters print the
    /// settings used.
    pub stderr_head: String,
    /// The start of its first process's stderr, whole lines (at most 1 KiB): what a sender
    /// that could not run said ([`could_not_run`]).
    pub stderr_start: String,
    /// Lines on its stdout (every process's) that were not outcome lines
    /// ([`parse_outcome_line`]): ignored, counted here.
    pub not_outcome_lines: usize,
    /// The first [`NOT_OUTCOME_EXAMPLES`] of them, each with why it is not an outcome line.
    pub not_outcome_examples: Vec<String>,
    /// Events written to its stdin (to every process together).
    pub fed: usize,
    /// Wall time from the first start to the last exit or kill, ms.
    pub duration_ms: u64,
    /// Each crash-restart, in order (contract version 3; empty without restarts).
    pub restarts: Vec<RestartRun>,
}

/// One crash-restart: the process that was SIGKILLed and what it had been given.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RestartRun {
    /// 1-based: the new process got `AMPLITUDE_SENDER_RESTART=number`.
    pub number: u32,
    /// When the restart was due (the scenario's `restarts` entry), ms since the first start.
    pub at_ms: u64,
    /// When the killed process group was gone (its pipes closed) and the next process was
    /// about to start, ms since the first start: at or after `at_ms`, later on a busy
    /// machine. No later process sent anything before this instant, so the checker draws
    /// the line between the old process's requests and the new one's here, not at `at_ms`.
    pub killed_ms: u64,
    /// `conformance_seq` of every event written to the killed process's stdin.
    pub fed: Vec<u64>,
    /// Outcome lines read from the killed process.
    pub outcomes: usize,
    /// The killed process had already exited by itself (nothing was left to kill).
    pub had_exited: bool,
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
    /// The sender's shell said it could not run the command: it exited with 126 (found but
    /// not executable) or 127 (not found) without writing an outcome line.
    #[error(
        "sender `{cmd}` could not run: it exited with code {code} ({}) without writing an outcome line; {}",
        shell_meaning(*code),
        stderr_lines(stderr)
    )]
    CouldNotRun {
        /// What was run.
        cmd: String,
        /// Its exit code (126 or 127).
        code: i32,
        /// The first lines of its stderr.
        stderr: String,
    },
}

/// What the shell means by exit code `code` (126 or 127).
fn shell_meaning(code: i32) -> &'static str {
    match code {
        126 => "the shell's \"found but not executable\"",
        _ => "the shell's \"command not found\"",
    }
}

/// The first stderr lines of a sender that could not run, indented under the message.
fn stderr_lines(stderr: &str) -> String {
    let lines: Vec<&str> = stderr
        .lines()
        .filter(|l| !l.trim().is_empty())
        .take(STDERR_START_LINES)
        .collect();
    if lines.is_empty() {
        "it wrote nothing on stderr".to_owned()
    } else {
        format!("its stderr began:\n  {}", lines.join("\n  "))
    }
}

/// Stderr lines a [`ProcessError::CouldNotRun`] quotes.
const STDERR_START_LINES: usize = 5;

/// The exit codes of `sh` for a command it could not run: 126 (found but not executable),
/// 127 (not found).
const SHELL_COULD_NOT_RUN: [i32; 2] = [126, 127];

/// [`ProcessError::CouldNotRun`] when `run`'s last process exited with 126 or 127 (the
/// shell's "not executable" / "not found") and no process wrote an outcome line: the
/// command never ran, and its events are not the sender's losses.
pub fn could_not_run(spec: &SenderSpec, run: &SenderRun) -> Option<ProcessError> {
    let code = run.exit_code.filter(|c| SHELL_COULD_NOT_RUN.contains(c))?;
    if !run.outcomes.is_empty() {
        return None;
    }
    Some(ProcessError::CouldNotRun {
        cmd: spec.command_line(),
        code,
        stderr: run.stderr_start.clone(),
    })
}

/// How many lines that were not outcome lines a [`SenderRun`] keeps as examples.
pub const NOT_OUTCOME_EXAMPLES: usize = 3;

/// Longest part of a stdout line an example quotes, in characters.
const EXAMPLE_CHARS: usize = 120;

/// Reads one line of a sender's stdout: `Ok(Some(_))` an outcome line
/// (`{"seq":N,"outcome":"delivered"|"dropped"|"held",...}`), `Ok(None)` a blank line
/// (ignored), `Err(why)` anything else (counted and ignored: docs/sender-contract.md).
pub fn parse_outcome_line(line: &str) -> Result<Option<SenderOutcome>, String> {
    let text = line.trim();
    if text.is_empty() {
        return Ok(None);
    }
    let o: SenderOutcome = serde_json::from_str(text).map_err(|e| e.to_string())?;
    match o.outcome.as_str() {
        "delivered" | "dropped" | "held" => Ok(Some(o)),
        other => Err(format!(
            "outcome {other:?} is not \"delivered\", \"dropped\" or \"held\""
        )),
    }
}

/// What a sender's stdout held: its outcome lines and the lines that were not.
#[derive(Debug, Clone, Default)]
struct Stdout {
    outcomes: Vec<SenderOutcome>,
    not_outcomes: usize,
    examples: Vec<String>,
}

impl Stdout {
    /// Files one stdout line.
    fn read(&mut self, line: &str) {
        match parse_outcome_line(line) {
            Ok(Some(o)) => self.outcomes.push(o),
            Ok(None) => {}
            Err(why) => {
                self.not_outcomes += 1;
                if self.examples.len() < NOT_OUTCOME_EXAMPLES {
                    let mut shown: String = line.trim().chars().take(EXAMPLE_CHARS).collect();
                    if shown.len() < line.trim().len() {
                        shown.push_str(" …");
                    }
                    self.examples.push(format!("`{shown}` ({why})"));
                }
            }
        }
    }
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
    /// An event's `conformance_seq`.
    pub seq: Option<u64>,
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

/// The state directory every process of a run gets (contract version 3).
pub const STATE_DIR_ENV: &str = "AMPLITUDE_SENDER_STATE_DIR";
/// 0 for the first process of a run, `n` for the one started at the `n`th restart
/// (contract version 3).
pub const RESTART_ENV: &str = "AMPLITUDE_SENDER_RESTART";

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
            seq: Some(g.seq),
        })
        .collect()
}

/// A started sender process and the tasks reading its output.
struct Running {
    child: tokio::process::Child,
    pgid: Option<u32>,
    stdin: Option<tokio::process::ChildStdin>,
    outcomes: tokio::task::JoinHandle<Stdout>,
    stderr: tokio::task::JoinHandle<Stderr>,
}

/// What a process wrote on stderr.
#[derive(Debug, Clone, Default)]
struct Stderr {
    /// The last [`STDERR_TAIL`] bytes.
    tail: String,
    /// Its first line (at most [`STDERR_HEAD`] bytes).
    head: String,
    /// Its first [`STDERR_HEAD`] bytes, cut after the last whole line when there is one.
    start: String,
}

/// Where feeding one process stopped.
struct Fed {
    /// Index of the first line not written.
    next: usize,
    /// Seqs of the events written.
    seqs: Vec<u64>,
    /// Events written (with or without a seq).
    events: usize,
    /// Stdin, still open (an `exit` control was written, or a restart comes next).
    stdin: Option<tokio::process::ChildStdin>,
}

/// Starts process number `restart` (0: the first) of the sender in its own process group.
fn spawn(
    spec: &SenderSpec,
    env: &[(String, String)],
    state_dir: &std::path::Path,
    restart: u32,
) -> Result<Running, ProcessError> {
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
        .env(STATE_DIR_ENV, state_dir)
        .env(RESTART_ENV, restart.to_string())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    #[cfg(unix)]
    cmd.process_group(0);
    let mut child = cmd
        .spawn()
        .map_err(|source| ProcessError::Spawn { cmd: shown, source })?;
    let pgid = child.id();
    let stdin = child.stdin.take();
    let stdout = child.stdout.take();
    let stderr = child.stderr.take();
    let outcomes = tokio::spawn(async move {
        let mut read = Stdout::default();
        let Some(out) = stdout else { return read };
        let mut lines = BufReader::new(out).lines();
        while let Ok(Some(line)) = lines.next_line().await {
            read.read(&line);
        }
        read
    });
    let stderr = tokio::spawn(async move {
        let mut tail: Vec<u8> = Vec::new();
        let mut start: Vec<u8> = Vec::new();
        let Some(mut err) = stderr else {
            return Stderr::default();
        };
        let mut chunk = [0u8; 4096];
        while let Ok(n) = err.read(&mut chunk).await {
            if n == 0 {
                break;
            }
            let got = chunk.get(..n).unwrap_or_default();
            if start.len() < STDERR_HEAD {
                let room = STDERR_HEAD - start.len();
                start.extend_from_slice(got.get(..room.min(got.len())).unwrap_or_default());
            }
            tail.extend_from_slice(got);
            if tail.len() > 2 * STDERR_TAIL {
                tail.drain(..tail.len() - STDERR_TAIL);
            }
        }
        let from = tail.len().saturating_sub(STDERR_TAIL);
        let head_end = start
            .iter()
            .position(|b| *b == b'\n')
            .unwrap_or(start.len());
        let whole = match start.iter().rposition(|b| *b == b'\n') {
            Some(last) if start.len() >= STDERR_HEAD => last,
            _ => start.len(),
        };
        Stderr {
            tail: String::from_utf8_lossy(tail.get(from..).unwrap_or_default()).into_owned(),
            head: String::from_utf8_lossy(start.get(..head_end).unwrap_or_default()).into_owned(),
            start: String::from_utf8_lossy(start.get(..whole).unwrap_or_default()).into_owned(),
        }
    });
    Ok(Running {
        child,
        pgid,
        stdin,
        outcomes,
        stderr,
    })
}

/// Writes `feed[from..]` to `stdin` at the lines' offsets from `start`, stopping before the
/// first line due at or after `until_us` (a restart) or after an `exit` control, or when a
/// write fails (the process is gone: that line and the rest are left for the next one).
async fn feed_lines(
    stdin: Option<tokio::process::ChildStdin>,
    feed: Arc<Vec<FeedLine>>,
    from: usize,
    start: Instant,
    until_us: Option<u64>,
) -> Fed {
    let mut out = Fed {
        next: from,
        seqs: Vec::new(),
        events: 0,
        stdin: None,
    };
    let Some(mut stdin) = stdin else {
        return out;
    };
    let mut buf = Vec::with_capacity(64 * 1024);
    let mut i = from;
    let due_here = |l: &FeedLine| until_us.is_none_or(|u| l.offset_us < u);
    while i < feed.len() && due_here(&feed[i]) {
        let due = start + Duration::from_micros(feed[i].offset_us);
        tokio::time::sleep_until(due).await;
        let now_us = start.elapsed().as_micros() as u64;
        buf.clear();
        let first = i;
        let mut seqs = Vec::new();
        let mut events = 0;
        while i < feed.len() && feed[i].offset_us <= now_us && due_here(&feed[i]) {
            buf.extend_from_slice(feed[i].line.as_bytes());
            buf.push(b'\n');
            if feed[i].kind == FeedKind::Event {
                events += 1;
                seqs.extend(feed[i].seq);
            }
            i += 1;
            if feed[i - 1].kind != FeedKind::Event {
                break; // a control line goes out on its own, at its time
            }
        }
        if i == first {
            continue;
        }
        if stdin.write_all(&buf).await.is_err() || stdin.flush().await.is_err() {
            return out; // `next` stays at the first line of this write
        }
        out.next = i;
        out.events += events;
        out.seqs.extend(seqs);
        if feed[i - 1].kind == FeedKind::Exit {
            out.stdin = Some(stdin);
            return out;
        }
    }
    if until_us.is_some() {
        // A restart comes next: stdin stays open until the kill, even when every line was
        // written (closing it would be end of input, which asks the sender to drain and
        // exit: the application crashed while running, it did not shut down).
        out.stdin = Some(stdin);
    }
    out
}

/// Collects what a process's reader tasks read, waiting at most a grace period after the
/// process died (a grandchild outside the group could keep a pipe open).
async fn collect(r: Running) -> (Stdout, Stderr) {
    let grace = Duration::from_secs(5);
    let outcomes = tokio::time::timeout(grace, r.outcomes)
        .await
        .ok()
        .and_then(Result::ok)
        .unwrap_or_default();
    let stderr = tokio::time::timeout(grace, r.stderr)
        .await
        .ok()
        .and_then(Result::ok)
        .unwrap_or_default();
    (outcomes, stderr)
}

impl SenderRun {
    /// Adds what one process wrote on stdout.
    fn add_stdout(&mut self, stdout: Stdout) {
        self.outcomes.extend(stdout.outcomes);
        self.not_outcome_lines += stdout.not_outcomes;
        let room = NOT_OUTCOME_EXAMPLES.saturating_sub(self.not_outcome_examples.len());
        self.not_outcome_examples
            .extend(stdout.examples.into_iter().take(room));
    }
}

/// `tail` plus `more`, keeping the last [`STDERR_TAIL`] bytes (on a char boundary).
fn append_tail(tail: &mut String, more: &str) {
    tail.push_str(more);
    if tail.len() > STDERR_TAIL {
        let mut cut = tail.len() - STDERR_TAIL;
        while !tail.is_char_boundary(cut) {
            cut += 1;
        }
        tail.drain(..cut);
    }
}

/// Starts the sender, writes `feed` at its offsets (from now), then closes stdin (unless the
/// feed ended with an `exit` control), and waits until the sender exits or `deadline_ms`
/// after the last line, then kills it.
///
/// With `restarts` (ms since the start, increasing; contract version 3): at each time the
/// sender's whole process group is SIGKILLed (unless it already exited) and the sender is
/// started again with the same environment, `AMPLITUDE_SENDER_RESTART` incremented, and fed
/// the lines not yet written to the killed process. The deadline then applies to the last
/// process, from the later of its start and the last line. Every process gets
/// `AMPLITUDE_SENDER_STATE_DIR=state_dir`.
///
/// # Errors
/// [`ProcessError::Spawn`] when a process cannot be started.
pub async fn run_sender(
    spec: &SenderSpec,
    env: &[(String, String)],
    feed: Vec<FeedLine>,
    state_dir: &std::path::Path,
    deadline_ms: u64,
    restarts: &[u64],
) -> Result<SenderRun, ProcessError> {
    let start = Instant::now();
    let feed = Arc::new(feed);
    let mut run = SenderRun::default();
    let mut next = 0usize;
    let mut first: Option<Stderr> = None;
    let mut tail = String::new();
    let mut number = 0u32;
    for &kill_ms in restarts {
        let mut p = spawn(spec, env, state_dir, number)?;
        let feeder = tokio::spawn(feed_lines(
            p.stdin.take(),
            feed.clone(),
            next,
            start,
            Some(kill_ms * 1_000),
        ));
        let kill_at = start + Duration::from_millis(kill_ms);
        let had_exited = tokio::time::timeout_at(kill_at, p.child.wait())
            .await
            .is_ok();
        tokio::time::sleep_until(kill_at).await;
        kill_group(p.pgid).await;
        let _ = p.child.kill().await;
        // The feeder wrote nothing due at or after the kill; a write blocked on a full pipe
        // fails now that the reader is gone.
        let fed = feeder.await.unwrap_or(Fed {
            next,
            seqs: Vec::new(),
            events: 0,
            stdin: None,
        });
        drop(fed.stdin);
        next = fed.next;
        run.fed += fed.events;
        let (stdout, err) = collect(p).await;
        // Its pipes are closed: every process of its group is gone, and the next one is
        // started right after this instant.
        let killed_ms = u64::try_from(start.elapsed().as_millis()).unwrap_or(u64::MAX);
        number += 1;
        run.restarts.push(RestartRun {
            number,
            at_ms: kill_ms,
            killed_ms,
            fed: fed.seqs,
            outcomes: stdout.outcomes.len(),
            had_exited,
        });
        run.add_stdout(stdout);
        append_tail(&mut tail, &err.tail);
        first.get_or_insert(err);
        append_tail(
            &mut tail,
            &format!(
                "\n[runner] restart {number} at {:.1} s: {}; started the sender again with {RESTART_ENV}={number}\n",
                kill_ms as f64 / 1000.0,
                if had_exited {
                    "the sender had already exited"
                } else {
                    "SIGKILLed the sender's process group"
                }
            ),
        );
    }
    let mut p = spawn(spec, env, state_dir, number)?;
    let last_offset = feed.last().map_or(0, |l| l.offset_us);
    let from_us = last_offset.max(restarts.last().map_or(0, |r| r * 1_000));
    let feeder = tokio::spawn(feed_lines(p.stdin.take(), feed.clone(), next, start, None));
    let limit = start + Duration::from_micros(from_us) + Duration::from_millis(deadline_ms);
    let (exited, exit_code) = match tokio::time::timeout_at(limit, p.child.wait()).await {
        Ok(Ok(status)) => (true, status.code()),
        Ok(Err(_)) => (false, None),
        Err(_) => {
            kill_group(p.pgid).await;
            let _ = p.child.kill().await;
            (false, None)
        }
    };
    // Whatever the sender started (e.g. `sh -c` children) goes too.
    kill_group(p.pgid).await;
    run.duration_ms = start.elapsed().as_millis() as u64;
    if !feeder.is_finished() {
        feeder.abort();
    }
    // An `exit` feed kept stdin open until now.
    if let Ok(fed) = feeder.await {
        run.fed += fed.events;
    }
    let (stdout, err) = collect(p).await;
    run.add_stdout(stdout);
    append_tail(&mut tail, &err.tail);
    let first = first.unwrap_or(err);
    run.stderr_head = first.head;
    run.stderr_start = first.start;
    run.stderr_tail = tail;
    run.exited = exited;
    run.exit_code = exit_code;
    Ok(run)
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

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn line(offset_ms: u64, seq: u64) -> FeedLine {
        FeedLine {
            offset_us: offset_ms * 1_000,
            line: format!(r#"{{"seq":{seq},"outcome":"delivered"}}"#),
            kind: FeedKind::Event,
            seq: Some(seq),
        }
    }

    /// Contract 3: at each restart time the process is killed and a new one started with
    /// `AMPLITUDE_SENDER_RESTART` incremented and the same `AMPLITUDE_SENDER_STATE_DIR`; each
    /// gets exactly the lines due before its kill (and after the previous one), stdin stays
    /// open until the kill, and the killed processes' outcome lines count. The test sender
    /// is `tee`: it appends what it reads to a file named after its restart number and echoes
    /// it on stdout (the lines are outcome lines).
    #[tokio::test]
    async fn restarts_kill_the_sender_and_feed_the_next_one_the_rest() {
        let dir = tempfile::tempdir().unwrap();
        let spec = SenderSpec::Command {
            cmd: r#"echo "start $AMPLITUDE_SENDER_RESTART"; echo "start $AMPLITUDE_SENDER_RESTART" >&2; exec tee -a "$AMPLITUDE_SENDER_STATE_DIR/got-$AMPLITUDE_SENDER_RESTART""#.to_owned(),
            label: "tee".to_owned(),
        };
        let feed = vec![line(0, 0), line(50, 1), line(700, 2), line(1_300, 3)];
        let run = run_sender(&spec, &[], feed, dir.path(), 10_000, &[500, 1_000])
            .await
            .unwrap();
        let got = |n: u32| {
            std::fs::read_to_string(dir.path().join(format!("got-{n}")))
                .unwrap_or_default()
                .lines()
                .map(|l| serde_json::from_str::<SenderOutcome>(l).unwrap().seq)
                .collect::<Vec<_>>()
        };
        assert_eq!((got(0), got(1), got(2)), (vec![0, 1], vec![2], vec![3]));
        // Each kill is measured after it was due (the process is reaped then), not before.
        assert!(
            run.restarts.iter().all(|r| r.killed_ms >= r.at_ms),
            "{:?}",
            run.restarts
        );
        let restarts: Vec<RestartRun> = run
            .restarts
            .iter()
            .map(|r| RestartRun {
                killed_ms: 0,
                ..r.clone()
            })
            .collect();
        assert_eq!(
            restarts,
            vec![
                RestartRun {
                    number: 1,
                    at_ms: 500,
                    killed_ms: 0,
                    fed: vec![0, 1],
                    outcomes: 2,
                    had_exited: false
                },
                RestartRun {
                    number: 2,
                    at_ms: 1_000,
                    killed_ms: 0,
                    fed: vec![2],
                    outcomes: 1,
                    had_exited: false
                },
            ]
        );
        let seqs: Vec<u64> = run.outcomes.iter().map(|o| o.seq).collect();
        assert_eq!(seqs, vec![0, 1, 2, 3]);
        assert_eq!((run.fed, run.exited, run.exit_code), (4, true, Some(0)));
        assert_eq!(run.stderr_head, "start 0");
        assert!(
            run.stderr_tail.contains("start 0\n\n[runner] restart 1 at 0.5 s: SIGKILLed the sender's process group; started the sender again with AMPLITUDE_SENDER_RESTART=1\nstart 1\n"),
            "{}",
            run.stderr_tail
        );
        assert!(
            run.stderr_tail.ends_with("start 2\n"),
            "{}",
            run.stderr_tail
        );
        assert!(run.duration_ms >= 1_300, "{}", run.duration_ms);
    }

    /// A command the shell cannot find (127) or cannot execute (126), with no outcome line,
    /// could not run: the error names the command, the code and the shell's message.
    #[tokio::test]
    async fn a_command_the_shell_cannot_run_is_named_with_its_code_and_stderr() {
        let dir = tempfile::tempdir().unwrap();
        let not_exec = dir.path().join("not-executable.sh");
        std::fs::write(&not_exec, "#!/bin/sh\n").unwrap();
        for (cmd, code, says) in [
            ("no-such-sender-7f3a".to_owned(), 127, "not found"),
            (not_exec.display().to_string(), 126, "ermission denied"),
        ] {
            let spec = SenderSpec::Command {
                cmd: cmd.clone(),
                label: "x".to_owned(),
            };
            let run = run_sender(&spec, &[], vec![line(0, 0)], dir.path(), 10_000, &[])
                .await
                .unwrap();
            assert_eq!(run.exit_code, Some(code));
            let err = could_not_run(&spec, &run).unwrap().to_string();
            assert!(
                err.starts_with(&format!(
                    "sender `{cmd}` could not run: it exited with code {code} (the shell's"
                )),
                "{err}"
            );
            assert!(err.contains("its stderr began:\n  "), "{err}");
            assert!(err.contains(says), "{err}");
            assert!(err.contains(&cmd), "{err}");
        }
    }

    /// 127 after an outcome line, or another code with none, is the sender's own exit: judged
    /// on the events, not a "could not run".
    #[tokio::test]
    async fn exit_127_after_an_outcome_line_is_not_could_not_run() {
        let dir = tempfile::tempdir().unwrap();
        for cmd in [
            r#"echo '{"seq":0,"outcome":"delivered"}'; exit 127"#,
            "echo oops >&2; exit 1",
        ] {
            let spec = SenderSpec::Command {
                cmd: cmd.to_owned(),
                label: "x".to_owned(),
            };
            let run = run_sender(&spec, &[], vec![line(0, 0)], dir.path(), 10_000, &[])
                .await
                .unwrap();
            assert!(run.exit_code.is_some());
            assert!(could_not_run(&spec, &run).is_none(), "{cmd}");
        }
    }

    /// Lines on stdout that are not outcome lines (not JSON, a seq that is not a number, an
    /// unknown outcome such as a typo) are counted and the first ones kept with why; blank
    /// lines are ignored; they never become outcomes.
    #[tokio::test]
    async fn stdout_lines_that_are_not_outcome_lines_are_counted_with_examples() {
        let dir = tempfile::tempdir().unwrap();
        let spec = SenderSpec::Command {
            cmd: r#"printf '%s\n' hello '{"seq":"x"}' '' '{"seq":3,"outcome":"maybe"}' '{"seq":1,"outcome":"delivered"}' '{"seq":2,"outcome":"deliverd"}'"#.to_owned(),
            label: "x".to_owned(),
        };
        let run = run_sender(&spec, &[], Vec::new(), dir.path(), 10_000, &[])
            .await
            .unwrap();
        let seqs: Vec<u64> = run.outcomes.iter().map(|o| o.seq).collect();
        assert_eq!(seqs, vec![1]);
        assert_eq!(run.not_outcome_lines, 4);
        assert_eq!(run.not_outcome_examples.len(), NOT_OUTCOME_EXAMPLES);
        let ex = &run.not_outcome_examples;
        assert!(ex[0].starts_with("`hello` ("), "{ex:?}");
        assert!(
            ex[1].starts_with(r#"`{"seq":"x"}` (invalid type"#),
            "{ex:?}"
        );
        assert_eq!(
            ex[2],
            r#"`{"seq":3,"outcome":"maybe"}` (outcome "maybe" is not "delivered", "dropped" or "held")"#
        );
    }

    #[test]
    fn outcome_lines_are_read_by_the_contract() {
        let ok = parse_outcome_line(r#"{"seq":2,"outcome":"held","reason":"r"}"#).unwrap();
        assert_eq!(ok.map(|o| (o.seq, o.outcome)), Some((2, "held".to_owned())));
        assert_eq!(parse_outcome_line("  ").unwrap().map(|o| o.seq), None);
        assert!(parse_outcome_line(r#"{"outcome":"delivered"}"#).is_err());
        assert!(parse_outcome_line(r#"{"seq":-1,"outcome":"delivered"}"#).is_err());
    }

    /// A restart after every line was written still kills a running sender (its stdin was
    /// kept open: the application crashed, it did not shut down); the last process then gets
    /// end of input at once.
    #[tokio::test]
    async fn a_restart_after_the_last_line_kills_a_sender_still_reading() {
        let dir = tempfile::tempdir().unwrap();
        let spec = SenderSpec::Command {
            cmd: r#"exec tee -a "$AMPLITUDE_SENDER_STATE_DIR/got-$AMPLITUDE_SENDER_RESTART""#
                .to_owned(),
            label: "tee".to_owned(),
        };
        let run = run_sender(&spec, &[], vec![line(0, 7)], dir.path(), 10_000, &[300])
            .await
            .unwrap();
        assert_eq!(run.restarts.len(), 1);
        assert!(!run.restarts[0].had_exited);
        assert_eq!(run.restarts[0].fed, vec![7]);
        assert!(dir.path().join("got-1").is_file());
        assert_eq!(
            std::fs::read_to_string(dir.path().join("got-1")).unwrap(),
            ""
        );
        assert!(run.exited);
    }
}
