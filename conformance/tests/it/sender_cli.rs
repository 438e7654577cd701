//! `amplitude-conformance sender` speaking the third-party sender contract
//! (docs/sender-contract.md) against the project's mock: outcome lines, dead letters, SIGTERM drain and resume.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use crate::common::{reference_exe, state_dir};
use amplitude_conformance::sender::queue::read_dead_letters;
use amplitude_mock::{Fault, MockServer};
use serde_json::json;
use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

fn spawn(mock: &MockServer, dir: &Path, extra: &[&str]) -> Child {
    Command::new(reference_exe())
        .args(["sender", "--state-dir"])
        .arg(dir)
        .args([
            "--flush-interval-ms",
            "10",
            "--backoff-base-ms",
            "10",
            "--backoff-cap-ms",
            "50",
        ])
        .args(extra)
        .env("AMPLITUDE_API_KEY", "KEY")
        .env("AMPLITUDE_SERVER_URL", format!("{}/2/httpapi", mock.uri()))
        .env("AMPLITUDE_BATCH_URL", format!("{}/batch", mock.uri()))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap()
}

fn wait(
    mut child: Child,
    secs: u64,
) -> (std::process::ExitStatus, BTreeMap<i64, serde_json::Value>) {
    let stdout = child.stdout.take().unwrap();
    let reader = std::thread::spawn(move || {
        let mut out = BTreeMap::new();
        for l in BufReader::new(stdout).lines().map_while(Result::ok) {
            let v: serde_json::Value = serde_json::from_str(&l).unwrap();
            assert!(
                out.insert(v["seq"].as_i64().unwrap(), v).is_none(),
                "one line per event"
            );
        }
        out
    });
    let give_up = Instant::now() + Duration::from_secs(secs);
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        if Instant::now() > give_up {
            let _ = child.kill();
            panic!("sender did not exit");
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    (status, reader.join().unwrap())
}

fn line(seq: i64) -> String {
    format!(
        "{}\n",
        json!({"event_type":"E","device_id":format!("device-{}", seq % 4),"event_properties":{"conformance_seq":seq}})
    )
}

fn dir() -> std::path::PathBuf {
    state_dir("sender-cli")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn prints_one_outcome_per_event_and_dead_letters_what_cannot_be_sent() {
    // contract: stdout {"seq":N,"outcome":"delivered"|"dropped","reason":...}; spec §5.1 400s
    let mock = MockServer::builder().api_key("KEY").start().await;
    let d = dir();
    let mut child = spawn(&mock, &d, &[]);
    let mut input: String = (0..100).filter(|s| *s != 5).map(line).collect();
    input.push_str(&format!(
        "{}\n",
        json!({"device_id":"device-1","event_properties":{"conformance_seq":5}})
    ));
    input.push_str("this is not json\n");
    let mut stdin = child.stdin.take().unwrap();
    stdin.write_all(input.as_bytes()).unwrap();
    drop(stdin);
    let (status, out) = tokio::task::spawn_blocking(move || wait(child, 60))
        .await
        .unwrap();
    assert!(status.success());
    assert_eq!(out.len(), 100);
    assert_eq!(out[&5]["outcome"], "dropped");
    assert!(
        out[&5]["reason"].as_str().unwrap().contains("event_type"),
        "{}",
        out[&5]
    );
    assert!(out
        .iter()
        .filter(|(s, _)| **s != 5)
        .all(|(_, v)| v["outcome"] == "delivered"));
    assert_eq!(mock.events().len(), 99);
    let dl = read_dead_letters(&d).unwrap();
    assert_eq!(dl.len(), 2);
    assert!(dl
        .iter()
        .any(|(e, r)| e == &json!("this is not json") && r.contains("not an Amplitude event")));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_drains_then_keeps_the_rest_for_the_next_start() {
    // issue "Shutdown": drain within the deadline, persist the rest, resume on restart
    let mock = MockServer::builder().api_key("KEY").start().await;
    mock.faults().push(Fault::status(503)).unwrap(); // an outage: nothing can be delivered
    let d = dir();
    let mut child = spawn(&mock, &d, &["--drain-deadline-ms", "300"]);
    let mut stdin = child.stdin.take().unwrap();
    let input: String = (0..50).map(line).collect();
    stdin.write_all(input.as_bytes()).unwrap();
    stdin.flush().unwrap();
    // wait until the sender has persisted and tried to send (the mock saw a request)
    let t = Instant::now();
    while mock.requests().is_empty() {
        assert!(
            t.elapsed() < Duration::from_secs(20),
            "no request reached the mock"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let pid = child.id().to_string();
    assert!(Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .unwrap()
        .success());
    let (status, out) = tokio::task::spawn_blocking(move || wait(child, 30))
        .await
        .unwrap();
    drop(stdin);
    assert!(status.success(), "{status}");
    // nothing delivered or dropped during the outage: every event is reported held
    assert_eq!(out.len(), 50);
    for v in out.values() {
        assert_eq!(v["outcome"], "held", "{v}");
        assert!(
            v["reason"]
                .as_str()
                .unwrap()
                .starts_with("in the durable queue at exit (drain deadline of 300 ms reached; "),
            "{v}"
        );
    }
    assert!(mock.events().is_empty());
    // the outage ends; a new start on the same state directory delivers everything
    mock.faults().clear();
    let mut child = spawn(&mock, &d, &[]);
    drop(child.stdin.take());
    let (status, out) = tokio::task::spawn_blocking(move || wait(child, 60))
        .await
        .unwrap();
    assert!(status.success());
    assert_eq!(out.len(), 50);
    assert!(out.values().all(|v| v["outcome"] == "delivered"));
    assert_eq!(mock.events().len(), 50);
}

// ---- contract version 2: drain deadline from the environment, held lines, control lines ----

/// Starts the sender with explicit options, environment and piped stderr.
fn spawn_v2(mock: &MockServer, dir: &Path, args: &[&str], envs: &[(&str, &str)]) -> Child {
    let mut cmd = Command::new(reference_exe());
    cmd.args(["sender", "--state-dir"])
        .arg(dir)
        .args(args)
        .env("AMPLITUDE_API_KEY", "KEY")
        .env("AMPLITUDE_SERVER_URL", format!("{}/2/httpapi", mock.uri()))
        .env("AMPLITUDE_BATCH_URL", format!("{}/batch", mock.uri()))
        .env("AMPLITUDE_SENDER_CONTRACT", "2")
        .env_remove("AMPLITUDE_DRAIN_DEADLINE_MS")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    for (k, v) in envs {
        cmd.env(k, v);
    }
    cmd.spawn().unwrap()
}

/// Waits for the exit: (status, stdout lines in order, stderr, ms from `since` to the exit).
fn wait_lines(
    mut child: Child,
    secs: u64,
    since: Instant,
) -> (std::process::ExitStatus, Vec<String>, String, u128) {
    let stdout = child.stdout.take().unwrap();
    let stderr = child.stderr.take().unwrap();
    let out = std::thread::spawn(move || {
        BufReader::new(stdout)
            .lines()
            .map_while(Result::ok)
            .collect::<Vec<_>>()
    });
    let err = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = std::io::Read::read_to_string(&mut BufReader::new(stderr), &mut s);
        s
    });
    let give_up = Instant::now() + Duration::from_secs(secs);
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        if Instant::now() > give_up {
            let _ = child.kill();
            panic!("sender did not exit");
        }
        std::thread::sleep(Duration::from_millis(5));
    };
    let took = since.elapsed().as_millis();
    (status, out.join().unwrap(), err.join().unwrap(), took)
}

fn delivered_line(seq: i64) -> String {
    format!("{{\"seq\":{seq},\"outcome\":\"delivered\"}}")
}

fn held_line(seq: i64, reason: &str) -> String {
    format!(
        "{{\"seq\":{seq},\"outcome\":\"held\",\"reason\":{}}}",
        json!(reason)
    )
}

fn sorted(mut v: Vec<String>) -> Vec<String> {
    v.sort();
    v
}

const SLOW: [&str; 6] = [
    "--flush-interval-ms",
    "60000",
    "--backoff-base-ms",
    "10",
    "--backoff-cap-ms",
    "50",
];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_drain_deadline_from_the_environment_ends_with_held_lines_before_it() {
    // runner contract 2: AMPLITUDE_DRAIN_DEADLINE_MS; events still queued are reported held
    let mock = MockServer::builder().api_key("KEY").start().await;
    mock.faults().push(Fault::hang()).unwrap(); // the request never gets an answer
    let d = dir();
    let mut child = spawn_v2(&mock, &d, &SLOW, &[("AMPLITUDE_DRAIN_DEADLINE_MS", "400")]);
    let mut stdin = child.stdin.take().unwrap();
    stdin
        .write_all((0..6).map(line).collect::<String>().as_bytes())
        .unwrap();
    drop(stdin);
    let since = Instant::now();
    let (status, out, _, took) = tokio::task::spawn_blocking(move || wait_lines(child, 30, since))
        .await
        .unwrap();
    assert!(status.success(), "{status}");
    let reason =
        "in the durable queue at exit (drain deadline of 400 ms reached; attempt 1 in flight, no answer yet)";
    assert_eq!(
        out,
        (0..6).map(|s| held_line(s, reason)).collect::<Vec<_>>()
    );
    assert!(
        (300..1_000).contains(&took),
        "exited {took} ms after the end of input"
    );
    // the flag wins over the environment
    let mut child = spawn_v2(
        &mock,
        &d,
        &[&SLOW[..], &["--drain-deadline-ms", "200"]].concat(),
        &[("AMPLITUDE_DRAIN_DEADLINE_MS", "60000")],
    );
    drop(child.stdin.take());
    let since = Instant::now();
    let (status, out, _, took) = tokio::task::spawn_blocking(move || wait_lines(child, 30, since))
        .await
        .unwrap();
    assert!(status.success(), "{status}");
    let reason =
        "in the durable queue at exit (drain deadline of 200 ms reached; attempt 1 in flight, no answer yet)";
    assert_eq!(
        out,
        (0..6).map(|s| held_line(s, reason)).collect::<Vec<_>>()
    );
    assert!(took < 1_000, "exited {took} ms after the end of input");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flush_control_line_resolves_only_when_what_was_read_before_has_its_outcome() {
    // contract 2: {"control":"flush"} = the application awaits flush(); a 503 on the way
    let mock = MockServer::builder().api_key("KEY").start().await;
    mock.faults().push(Fault::status(503).count(1)).unwrap();
    let d = dir();
    let mut child = spawn_v2(&mock, &d, &SLOW, &[]);
    let mut stdin = child.stdin.take().unwrap();
    let mut input: String = (0..5).map(line).collect();
    input.push_str("{\"control\":\"flush\"}\n");
    input.extend((5..10).map(line));
    stdin.write_all(input.as_bytes()).unwrap();
    drop(stdin);
    let since = Instant::now();
    let (status, out, err, _) = tokio::task::spawn_blocking(move || wait_lines(child, 60, since))
        .await
        .unwrap();
    assert!(status.success(), "{status}: {err}");
    // the first five are confirmed (after a retry) before the next five are even read
    assert_eq!(
        sorted(out[..5].to_vec()),
        (0..5).map(delivered_line).collect::<Vec<_>>()
    );
    assert_eq!(
        sorted(out[5..].to_vec()),
        (5..10).map(delivered_line).collect::<Vec<_>>()
    );
    let reqs: Vec<(u16, usize)> = mock
        .requests()
        .iter()
        .map(|r| (r.status, r.events))
        .collect();
    // without the flush, the 60 s flush interval would have sent one request of 10 at the end
    assert_eq!(reqs, vec![(503, 5), (200, 5), (200, 5)]);
    assert!(!err.contains("unsupported"), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_exit_control_line_exits_at_once_and_holds_the_rest_for_the_next_start() {
    // contract 2: {"control":"exit"} right after a flush returned: no draining, held lines
    let mock = MockServer::builder().api_key("KEY").start().await;
    let d = dir();
    let mut child = spawn_v2(
        &mock,
        &d,
        &SLOW,
        &[("AMPLITUDE_DRAIN_DEADLINE_MS", "60000")],
    );
    let mut stdin = child.stdin.take().unwrap();
    let mut input: String = (0..3).map(line).collect();
    input.push_str("{\"control\":\"flush\"}\n");
    input.extend((3..5).map(line));
    input.push_str("{\"control\":\"exit\"}\n");
    input.extend((5..7).map(line)); // never read: the application is gone
    stdin.write_all(input.as_bytes()).unwrap();
    stdin.flush().unwrap();
    let since = Instant::now();
    // stdin stays open: the sender exits on its own
    let (status, out, err, took) =
        tokio::task::spawn_blocking(move || wait_lines(child, 30, since))
            .await
            .unwrap();
    drop(stdin);
    assert!(status.success(), "{status}: {err}");
    assert!(took < 5_000, "exit took {took} ms");
    let reason =
        "in the durable queue at exit (the application exited (exit control line); never sent)";
    assert_eq!(
        sorted(out[..3].to_vec()),
        (0..3).map(delivered_line).collect::<Vec<_>>()
    );
    assert_eq!(out[3..], [held_line(3, reason), held_line(4, reason)]);
    assert_eq!(mock.events().len(), 3);
    // a restart on the same state directory sends the held events
    let mut child = spawn_v2(&mock, &d, &SLOW, &[]);
    drop(child.stdin.take());
    let (status, out, _, _) =
        tokio::task::spawn_blocking(move || wait_lines(child, 30, Instant::now()))
            .await
            .unwrap();
    assert!(status.success());
    assert_eq!(sorted(out), vec![delivered_line(3), delivered_line(4)]);
    assert_eq!(mock.events().len(), 5);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unsupported_control_lines_and_contract_versions_are_reported_on_stderr() {
    // contract 2: never silently ignored; the sender goes on
    let mock = MockServer::builder().api_key("KEY").start().await;
    let d = dir();
    let mut child = spawn_v2(&mock, &d, &SLOW, &[("AMPLITUDE_SENDER_CONTRACT", "4")]);
    let mut stdin = child.stdin.take().unwrap();
    let input = [
        line(0),
        "{\"control\":\"pause\"}\n".into(),
        "{\"control\":7}\n".into(),
        "{\"control\":\"flush\",\"timeout_ms\":5}\n".into(),
        line(1),
    ]
    .concat();
    stdin.write_all(input.as_bytes()).unwrap();
    drop(stdin);
    let (status, out, err, _) =
        tokio::task::spawn_blocking(move || wait_lines(child, 30, Instant::now()))
            .await
            .unwrap();
    assert!(status.success(), "{status}: {err}");
    assert_eq!(out, vec![delivered_line(0), delivered_line(1)], "{err}");
    let lines: Vec<&str> = err
        .lines()
        .filter(|l| l.starts_with("unsupported"))
        .collect();
    assert_eq!(
        lines,
        vec![
            "unsupported sender contract version: AMPLITUDE_SENDER_CONTRACT=4 (this sender speaks 1 to 3); going on with 3",
            "unsupported control line: {\"control\":\"pause\"}",
            "unsupported control line: {\"control\":7}",
            "unsupported control line: {\"control\":\"flush\",\"timeout_ms\":5} (fields other than \"control\" ignored)",
        ]
    );
    assert!(read_dead_letters(&d).unwrap().is_empty());
    assert_eq!(
        mock.requests().iter().map(|r| r.events).collect::<Vec<_>>(),
        vec![1, 1],
        "the flush sent event 0 alone, end of input event 1"
    );
}

/// Input lines that are not events: each of the first few gets a warning on stderr (plain
/// text when stderr is not a terminal: no ANSI colour codes), the rest one line and a total,
/// and the summary's `dead-lettered` counts them all.
#[test]
fn input_lines_that_are_not_events_are_warned_about_and_counted_without_colour() {
    let d = dir();
    let output = Command::new(reference_exe())
        .args(["sender", "--state-dir"])
        .arg(&d)
        .env_remove("RUST_LOG")
        .env("AMPLITUDE_API_KEY", "KEY")
        // Never contacted: no line is an event.
        .env("AMPLITUDE_SERVER_URL", "http://127.0.0.1:9/2/httpapi")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .and_then(|mut child| {
            let mut stdin = child.stdin.take().unwrap();
            stdin.write_all(b"hello\n1\n2\n3\n4\n5\n6\n")?;
            drop(stdin);
            child.wait_with_output()
        })
        .unwrap();
    let err = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{}: {err}", output.status);
    assert!(!err.contains('\u{1b}'), "ANSI codes on a pipe: {err:?}");
    assert_eq!(
        err.matches("dead-lettered an input line").count(),
        5,
        "{err}"
    );
    assert!(err.contains(r#"input="hello""#), "{err}");
    assert!(
        err.contains(
            "further input lines that are not events are dead-lettered without a warning each"
        ),
        "{err}"
    );
    assert!(
        err.contains("7 input lines were not Amplitude events and were dead-lettered"),
        "{err}"
    );
    assert!(err.contains("delivered 0, dead-lettered 7,"), "{err}");
    assert_eq!(read_dead_letters(&d).unwrap().len(), 7);
}

/// An error that stops the sender before it starts is one `error:` line naming the cause and
/// exit code 1, with no backtrace even under `RUST_BACKTRACE=1`.
#[test]
fn a_missing_api_key_is_one_error_line_without_a_backtrace() {
    let dir = tempfile::tempdir().unwrap();
    let out = Command::new(reference_exe())
        .args(["sender", "--state-dir"])
        .arg(dir.path())
        .env_remove("AMPLITUDE_API_KEY")
        .env("RUST_BACKTRACE", "1")
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert_eq!(
        stderr
            .lines()
            .filter(|l| l.starts_with("error: "))
            .collect::<Vec<_>>(),
        ["error: AMPLITUDE_API_KEY is not set: environment variable not found"],
        "{stderr}"
    );
    assert!(!stderr.contains("backtrace"), "{stderr}");
}
