//! Disk full: the `sender` command runs with a file-size limit (RLIMIT_FSIZE through bash's
//! `ulimit -f`, SIGXFSZ ignored so a write past it fails with EFBIG as on a full disk). The
//! append that does not fit is refused and the command fails with the error; everything
//! persisted before it stays, and a run with the space back delivers all of it.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use crate::common::{reference_exe, state_dir};
use amplitude_conformance::sender::queue::{scan, LOG_FILE};
use amplitude_mock::{Fault, MockServer};
use serde_json::json;
use std::collections::BTreeSet;
use std::io::Write;
use std::path::Path;
use std::process::{Command, Output, Stdio};

fn input(seqs: std::ops::Range<i64>) -> String {
    seqs.map(|seq| {
        format!(
            "{}\n",
            json!({"event_type":"disk-full","device_id":format!("device-{:02}", seq % 7),
                   "event_properties":{"conformance_seq":seq,"pad":"x".repeat(200)}})
        )
    })
    .collect()
}

/// Runs the command on `dir` with `stdin`; with `fsize_kib`, under that file-size limit.
fn run(url: &str, dir: &Path, stdin: &str, fsize_kib: Option<u32>) -> Output {
    let exe = reference_exe();
    let mut cmd = match fsize_kib {
        Some(kib) => {
            let mut c = Command::new("bash");
            c.arg("-c")
                .arg(format!("trap '' XFSZ; ulimit -f {kib}; exec \"$0\" \"$@\""))
                .arg(&exe);
            c
        }
        None => Command::new(&exe),
    };
    let mut child = cmd
        .args([
            "sender",
            "--flush-interval-ms",
            "5",
            "--drain-deadline-ms",
            "400",
        ])
        .arg("--state-dir")
        .arg(dir)
        .env("AMPLITUDE_API_KEY", "KEY")
        .env("AMPLITUDE_SERVER_URL", url)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut w = child.stdin.take().unwrap();
    let body = stdin.to_owned();
    let writer = std::thread::spawn(move || {
        let _ = w.write_all(body.as_bytes());
    });
    let out = child.wait_with_output().unwrap();
    let _ = writer.join();
    out
}

fn pending(dir: &Path) -> BTreeSet<i64> {
    let bytes = std::fs::read(dir.join(LOG_FILE)).unwrap_or_default();
    scan(&bytes)
        .pending
        .iter()
        .map(|(_, j)| {
            let v: serde_json::Value = serde_json::from_slice(j).unwrap();
            v["event_properties"]["conformance_seq"].as_i64().unwrap()
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_disk_refuses_the_append_loses_nothing_queued_and_resumes() {
    // Every request fails: the queue only grows, until the 128 KiB limit.
    let down = MockServer::builder()
        .api_key("KEY")
        .fault(Fault::status(503).count(u64::MAX))
        .start()
        .await;
    let dir = state_dir("sender-disk-full");
    let (u, d) = (format!("{}/2/httpapi", down.uri()), dir.clone());
    let out = tokio::task::spawn_blocking(move || run(&u, &d, &input(0..2_000), Some(128)))
        .await
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "the command fails: {stderr}");
    assert!(
        stderr.contains("File too large") || stderr.contains("os error 27"),
        "the error says why: {stderr}"
    );
    let kept = pending(&dir);
    assert!(
        !kept.is_empty() && kept.len() < 2_000,
        "a prefix was persisted: {}",
        kept.len()
    );
    let log_len = std::fs::metadata(dir.join(LOG_FILE)).unwrap().len();
    assert!(log_len <= 128 * 1024);
    assert_eq!(
        scan(&std::fs::read(dir.join(LOG_FILE)).unwrap()).discarded_bytes,
        0,
        "no half-written record was left behind"
    );

    // Space is back: the same state directory delivers everything it kept, plus new input.
    let up = MockServer::builder().api_key("KEY").start().await;
    let (u, d) = (format!("{}/2/httpapi", up.uri()), dir.clone());
    let out = tokio::task::spawn_blocking(move || run(&u, &d, &input(5_000..5_010), None))
        .await
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stored: BTreeSet<i64> = up
        .events()
        .iter()
        .map(|e| {
            let v: serde_json::Value = serde_json::from_str(e.event.get()).unwrap();
            v["event_properties"]["conformance_seq"].as_i64().unwrap()
        })
        .collect();
    for seq in &kept {
        assert!(stored.contains(seq), "lost {seq}");
    }
    assert!((5_000..5_010).all(|s| stored.contains(&s)));
    assert_eq!(up.events().len(), kept.len() + 10, "each exactly once");
}
