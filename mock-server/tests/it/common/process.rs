//! Running a command (a script, pip, npm, pytest, node) from a test: its output captured and,
//! when it fails or outlives its deadline, shown whole in the panic message. Shared with
//! `tests/packages.rs` through `#[path]`.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test helpers: failing loudly is the point
#![allow(dead_code)] // each test binary uses its own part

use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

/// What a finished command left.
pub struct Ran {
    /// Its stdout.
    pub stdout: String,
    /// Its stderr.
    pub stderr: String,
    /// Wall time it took.
    pub took: Duration,
}

fn describe(cmd: &Command) -> String {
    let mut s = cmd.get_program().to_string_lossy().into_owned();
    for a in cmd.get_args() {
        s.push(' ');
        s.push_str(&a.to_string_lossy());
    }
    if let Some(dir) = cmd.get_current_dir() {
        s.push_str(&format!(" (in {})", dir.display()));
    }
    s
}

/// Runs `cmd` in a process group of its own, stdin closed, stdout and stderr captured, and
/// panics with both (and `what`) unless it exits 0 within `deadline`. Past the deadline the
/// whole group is killed (so no grandchild, such as a mock a script started, survives).
pub fn run(what: &str, cmd: &mut Command, deadline: Duration) -> Ran {
    let shown = describe(cmd);
    let started = Instant::now();
    let child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0)
        .spawn()
        .unwrap_or_else(|e| panic!("{what}: cannot run {shown}: {e}"));
    let pgid = child.id();
    let (done_tx, done_rx) = mpsc::channel::<()>();
    let watchdog = std::thread::spawn(move || {
        // Not a sleep to wait for something: the deadline of a command that should be done.
        if done_rx.recv_timeout(deadline) == Err(mpsc::RecvTimeoutError::Timeout) {
            let _ = Command::new("kill")
                .args(["-s", "KILL", "--", &format!("-{pgid}")])
                .status();
            true
        } else {
            false
        }
    });
    let output: Output = child
        .wait_with_output()
        .unwrap_or_else(|e| panic!("{what}: waiting for {shown}: {e}"));
    let _ = done_tx.send(());
    let timed_out = watchdog.join().unwrap_or(false);
    let took = started.elapsed();
    let ran = Ran {
        stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
        took,
    };
    eprintln!("{what}: {:.1} s", took.as_secs_f64());
    if timed_out || !output.status.success() {
        let why = if timed_out {
            format!("killed after its deadline of {} s", deadline.as_secs())
        } else {
            format!("failed ({})", output.status)
        };
        panic!(
            "{what} {why}: {shown}\n--- stdout ---\n{}\n--- stderr ---\n{}",
            ran.stdout, ran.stderr
        );
    }
    ran
}

/// The repository's root.
pub fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("mock-server/ has a parent")
        .to_path_buf()
}

/// The `amplitude-mock` binary cargo built for these tests.
pub fn mock_binary() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_amplitude-mock"))
}

/// The cargo target directory these tests were built in: the ancestor of the mock binary that
/// holds cargo's `CACHEDIR.TAG` (`target/` or `$CARGO_TARGET_DIR`).
pub fn target_dir() -> PathBuf {
    let exe = mock_binary();
    exe.ancestors()
        .find(|d| d.join("CACHEDIR.TAG").is_file())
        .map(Path::to_path_buf)
        .unwrap_or_else(|| {
            exe.parent()
                .and_then(Path::parent)
                .expect("the binary is in <target>/<profile>/")
                .to_path_buf()
        })
}
