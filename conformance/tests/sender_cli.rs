//! `amplitude-conformance sender` speaking the third-party sender contract (architecture.md)
//! against the project's mock: outcome lines, dead letters, SIGTERM drain and resume.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use amplitude_conformance::sender::queue::dead_letter::read_dead_letters;
use amplitude_mock::{Fault, MockServer};
use serde_json::json;
use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

fn spawn(mock: &MockServer, dir: &Path, extra: &[&str]) -> Child {
    Command::new(env!("CARGO_BIN_EXE_amplitude-conformance"))
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
    std::env::temp_dir().join(format!("sender-cli-{}", uuid::Uuid::new_v4()))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn prints_one_outcome_per_event_and_dead_letters_what_cannot_be_sent() {
    // contract: stdout {"seq":N,"outcome":"delivered"|"dropped","reason":...}; spec §5.1 400s
    let mock = MockServer::builder().api_key("KEY").start().await.unwrap();
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
    let mock = MockServer::builder().api_key("KEY").start().await.unwrap();
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
    assert!(
        out.is_empty(),
        "nothing delivered or dropped during the outage"
    );
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
