//! Crash test: the `amplitude-conformance sender` binary runs as a child process under load,
//! is killed with SIGKILL at seeded points, and is restarted on the same state directory. In
//! the end every event reached the server, and every re-send carried the original
//! `insert_id` (spec §9: a duplicate is only a deduplicated re-send).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use crate::common::{reference_exe, state_dir};
use amplitude_conformance::sender::queue::read_dead_letters;
use amplitude_conformance::sender::queue::{scan, LOG_FILE};
use amplitude_wire::UploadRequest;
use rand::{Rng, SeedableRng};
use serde_json::json;
use std::collections::{BTreeMap, BTreeSet};
use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc;
use std::time::{Duration, Instant};
use wiremock::matchers::method;
use wiremock::{Mock, MockServer, Request, Respond, ResponseTemplate};

const EVENTS: i64 = 2_000;

/// Seeded SIGKILL points of the first crash test (restart after each).
const ROUNDS: i64 = 24;

/// 200 for most requests, 503 for every 7th (retry path under crashes), after 3 ms.
struct Flaky(AtomicUsize);

impl Respond for Flaky {
    fn respond(&self, req: &Request) -> ResponseTemplate {
        let n = self.0.fetch_add(1, Ordering::SeqCst);
        let events = serde_json::from_slice::<UploadRequest>(&req.body)
            .ok()
            .and_then(|r| r.events)
            .map_or(0, |e| e.len());
        let t = if n % 7 == 6 {
            ResponseTemplate::new(503).set_body_json(json!({"code":503}))
        } else {
            ResponseTemplate::new(200).set_body_json(json!({"code":200,"events_ingested":events,"payload_size_bytes":req.body.len(),"server_upload_time":1}))
        };
        t.set_delay(Duration::from_millis(3))
    }
}

fn line(seq: i64) -> String {
    format!(
        "{}\n",
        json!({"event_type":"crash-test","device_id":format!("device-{:02}", seq % 17),
               "event_properties":{"conformance_seq":seq}})
    )
}

/// seq -> insert_ids of every copy the server received.
async fn received(server: &MockServer) -> BTreeMap<i64, BTreeSet<String>> {
    let mut out: BTreeMap<i64, BTreeSet<String>> = BTreeMap::new();
    for r in server.received_requests().await.unwrap_or_default() {
        let Ok(u) = serde_json::from_slice::<UploadRequest>(&r.body) else {
            continue;
        };
        for e in u.events.unwrap_or_default() {
            let seq = e
                .event_properties
                .as_ref()
                .and_then(|p| p["conformance_seq"].as_i64())
                .unwrap();
            out.entry(seq).or_default().insert(e.insert_id.unwrap());
        }
    }
    out
}

fn pending_in_log(dir: &Path) -> BTreeSet<i64> {
    let bytes = std::fs::read(dir.join(LOG_FILE)).unwrap_or_default();
    scan(&bytes)
        .pending
        .iter()
        .map(|(_, json)| {
            let v: serde_json::Value = serde_json::from_slice(json).unwrap();
            v["event_properties"]["conformance_seq"].as_i64().unwrap()
        })
        .collect()
}

/// Runs one child on `dir` fed with `seqs`. With `kill_after = Some(k)`, SIGKILLs it once k
/// outcome lines were printed (or all fed events are out); else closes stdin and waits.
fn round(url: &str, dir: &Path, seqs: &[i64], kill_after: Option<usize>) -> usize {
    let mut child = Command::new(reference_exe())
        .args(["sender", "--state-dir"])
        .arg(dir)
        .args([
            "--batch-size",
            "40",
            "--flush-interval-ms",
            "5",
            "--max-in-flight",
            "3",
        ])
        .args([
            "--eps-limit",
            "0",
            "--backoff-base-ms",
            "5",
            "--backoff-cap-ms",
            "20",
        ])
        .env("AMPLITUDE_API_KEY", "KEY")
        .env("AMPLITUDE_SERVER_URL", url)
        .env("AMPLITUDE_BATCH_URL", url)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    let stdout = child.stdout.take().unwrap();
    let (tx, rx) = mpsc::channel::<()>();
    let reader = std::thread::spawn(move || {
        for l in BufReader::new(stdout).lines() {
            let Ok(l) = l else { break };
            if l.contains("\"delivered\"") {
                let _ = tx.send(());
            }
        }
    });
    let body: String = seqs.iter().map(|s| line(*s)).collect();
    let final_round = kill_after.is_none();
    let writer = std::thread::spawn(move || {
        let _ = stdin.write_all(body.as_bytes());
        if final_round {
            drop(stdin);
        } else {
            // keep stdin open until the kill
            std::thread::park_timeout(Duration::from_secs(60));
        }
    });
    let mut outcomes = 0;
    let deadline = Instant::now() + Duration::from_secs(60);
    let target = kill_after.unwrap_or(usize::MAX).min(seqs.len());
    while outcomes < target {
        match rx.recv_timeout(deadline.saturating_duration_since(Instant::now())) {
            Ok(()) => outcomes += 1,
            Err(_) => break,
        }
    }
    if final_round {
        let give_up = Instant::now() + Duration::from_secs(60);
        let status = loop {
            if let Some(st) = child.try_wait().unwrap() {
                break st;
            }
            if Instant::now() > give_up {
                let _ = child.kill();
                panic!("final run did not exit");
            }
            std::thread::sleep(Duration::from_millis(20));
        };
        assert!(status.success(), "final run exited with {status}");
    } else {
        child.kill().unwrap(); // SIGKILL
        let _ = child.wait();
        writer.thread().unpark();
    }
    let _ = writer.join();
    let _ = reader.join();
    outcomes
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_at_seeded_points_loses_nothing_and_duplicates_only_by_insert_id() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(Flaky(AtomicUsize::new(0)))
        .mount(&server)
        .await;
    let url = format!("{}/2/httpapi", server.uri());
    let dir = state_dir("sender-crash");
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(20_261_129);
    let mut accepted: BTreeSet<i64> = BTreeSet::new();
    let mut kills = 0i64;
    let mut interrupted = 0;
    for round_no in 0..ROUNDS {
        // each round brings 100 new events plus whatever the last one had not accepted; the
        // seeded kill lands after k delivered outcomes: k = 0 kills while the input is still
        // being appended, small k mid-request or between a 200 and its log mark, larger k
        // during retries of the 503s and after the queue emptied
        let todo: Vec<i64> = (0..(round_no + 1) * (EVENTS / ROUNDS))
            .filter(|s| !accepted.contains(s))
            .collect();
        let k = rng.random_range(0..120usize);
        let url2 = url.clone();
        let dir2 = dir.clone();
        let todo2 = todo.clone();
        tokio::task::spawn_blocking(move || round(&url2, &dir2, &todo2, Some(k)))
            .await
            .unwrap();
        kills += 1;
        // what the sender had accepted before it died: persisted (pending), or already sent
        let pending = pending_in_log(&dir);
        interrupted += pending.len();
        accepted.extend(pending);
        accepted.extend(received(&server).await.keys());
        accepted.extend(
            read_dead_letters(&dir)
                .unwrap()
                .iter()
                .filter_map(|(e, _)| e["event_properties"]["conformance_seq"].as_i64()),
        );
    }
    assert_eq!(kills, ROUNDS, "the seeded schedule kills at every round");
    assert!(
        interrupted > 0,
        "some kills left unconfirmed events in the queue"
    );
    let todo: Vec<i64> = (0..EVENTS).filter(|s| !accepted.contains(s)).collect();
    let url2 = url.clone();
    let dir2 = dir.clone();
    tokio::task::spawn_blocking(move || round(&url2, &dir2, &todo, None))
        .await
        .unwrap();

    let got = received(&server).await;
    let missing: Vec<i64> = (0..EVENTS).filter(|s| !got.contains_key(s)).collect();
    assert!(missing.is_empty(), "lost: {missing:?}");
    let reinvented: Vec<(&i64, &BTreeSet<String>)> =
        got.iter().filter(|(_, ids)| ids.len() > 1).collect();
    assert!(
        reinvented.is_empty(),
        "re-sent with a new insert_id: {reinvented:?}"
    );
    assert!(read_dead_letters(&dir).unwrap().is_empty());
    assert!(
        pending_in_log(&dir).is_empty(),
        "the final run drained the queue"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_into_the_mock_stores_every_event_exactly_once() {
    // the project's mock: faults (503, committed 500) and insert_id dedup (spec §5.5, §9)
    use amplitude_mock::{Fault, MockServer as Amp};
    let mock = Amp::builder()
        .api_key("KEY")
        .seed(3)
        .fault(Fault::status(503).probability(0.1))
        .fault(Fault::status(500).committed(true).probability(0.1))
        .start()
        .await;
    let stored = |mock: &Amp| -> BTreeMap<i64, usize> {
        let mut out = BTreeMap::new();
        for e in mock.events() {
            let v: serde_json::Value = serde_json::from_str(e.event.get()).unwrap();
            *out.entry(v["event_properties"]["conformance_seq"].as_i64().unwrap())
                .or_default() += 1;
        }
        out
    };
    let url = format!("{}/2/httpapi", mock.uri());
    let dir = state_dir("sender-crash-mock");
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(7);
    let mut accepted: BTreeSet<i64> = BTreeSet::new();
    for round_no in 0..4i64 {
        let todo: Vec<i64> = (0..(round_no + 1) * 400)
            .filter(|s| !accepted.contains(s))
            .collect();
        let k = rng.random_range(1..300usize);
        let (u, d) = (url.clone(), dir.clone());
        tokio::task::spawn_blocking(move || round(&u, &d, &todo, Some(k)))
            .await
            .unwrap();
        accepted.extend(pending_in_log(&dir));
        accepted.extend(stored(&mock).keys());
    }
    let todo: Vec<i64> = (0..EVENTS).filter(|s| !accepted.contains(s)).collect();
    let (u, d) = (url.clone(), dir.clone());
    tokio::task::spawn_blocking(move || round(&u, &d, &todo, None))
        .await
        .unwrap();
    let got = stored(&mock);
    let missing: Vec<i64> = (0..EVENTS).filter(|s| !got.contains_key(s)).collect();
    assert!(missing.is_empty(), "lost: {missing:?}");
    let twice: Vec<(&i64, &usize)> = got.iter().filter(|(_, n)| **n > 1).collect();
    assert!(twice.is_empty(), "stored twice: {twice:?}");
    assert!(read_dead_letters(&dir).unwrap().is_empty());
}

/// Crash points of the sender (amplitude_sender::crash) with the pass to abort at.
const POINTS: [&str; 7] = [
    "append",
    "appended",
    "response",
    "delivered",
    "mark",
    "dead_letter",
    "compact",
];

/// Runs one child on `dir` fed with `seqs` (plus two lines that are not events, which are
/// dead-lettered) and stdin closed; with `crash`, the child aborts at that crash point.
/// Returns whether it died by a signal.
fn crash_round(url: &str, dir: &Path, seqs: &[i64], crash: Option<(&str, u64)>) -> bool {
    crash_round_with(url, dir, seqs, crash, &[])
}

/// [`crash_round`] with extra command-line arguments for the child.
fn crash_round_with(
    url: &str,
    dir: &Path,
    seqs: &[i64],
    crash: Option<(&str, u64)>,
    extra: &[&str],
) -> bool {
    let mut cmd = Command::new(reference_exe());
    cmd.args(["sender", "--state-dir"])
        .arg(dir)
        .args(["--batch-size", "25", "--flush-interval-ms", "5"])
        .args(extra)
        .args([
            "--eps-limit",
            "0",
            "--backoff-base-ms",
            "5",
            "--backoff-cap-ms",
            "20",
        ])
        .env("AMPLITUDE_API_KEY", "KEY")
        .env("AMPLITUDE_SERVER_URL", url)
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    match crash {
        Some((point, n)) => cmd.env(
            amplitude_conformance::sender::crash::CRASH_AT_ENV,
            format!("{point}:{n}"),
        ),
        None => cmd.env_remove(amplitude_conformance::sender::crash::CRASH_AT_ENV),
    };
    let mut child = cmd.spawn().unwrap();
    let mut stdin = child.stdin.take().unwrap();
    let mut body: String = seqs.iter().map(|s| line(*s)).collect();
    body.push_str("not an event\n[1,2]\n");
    let writer = std::thread::spawn(move || {
        let _ = stdin.write_all(body.as_bytes());
    });
    let status = child.wait().unwrap();
    let _ = writer.join();
    if crash.is_none() {
        assert!(status.success(), "final run exited with {status}");
    }
    status.code().is_none()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn aborts_at_named_crash_points_lose_nothing_and_duplicate_only_by_insert_id() {
    // 28 seeded (point, pass) pairs covering every crash point: the append before and after
    // its fsync, mid-request, after a 200 before its mark, the mark, dead-lettering, and the
    // log rewrite at start (a restart after a crash always rewrites the log).
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(Flaky(AtomicUsize::new(0)))
        .mount(&server)
        .await;
    let url = format!("{}/2/httpapi", server.uri());
    let dir = state_dir("sender-crash-points");
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(20_261_201);
    let mut accepted: BTreeSet<i64> = BTreeSet::new();
    let mut crashed: BTreeMap<&str, usize> = BTreeMap::new();
    const PER_ROUND: i64 = 60;
    for round_no in 0..28i64 {
        let point = POINTS[(round_no as usize) % POINTS.len()];
        // the log rewrite runs once per start and the two non-event lines are dead-lettered
        // in one group: those points are passed once per run
        let pass = match point {
            "compact" | "dead_letter" => 1,
            _ => rng.random_range(1..=3u64),
        };
        let todo: Vec<i64> = (0..(round_no + 1) * PER_ROUND)
            .filter(|s| !accepted.contains(s))
            .collect();
        let (u, d) = (url.clone(), dir.clone());
        let died =
            tokio::task::spawn_blocking(move || crash_round(&u, &d, &todo, Some((point, pass))))
                .await
                .unwrap();
        if died {
            *crashed.entry(point).or_default() += 1;
        }
        accepted.extend(pending_in_log(&dir));
        accepted.extend(received(&server).await.keys());
    }
    for p in POINTS {
        assert!(
            crashed.get(p).copied().unwrap_or(0) > 0,
            "never crashed at {p}: {crashed:?}"
        );
    }
    let total = 28 * PER_ROUND;
    let todo: Vec<i64> = (0..total).filter(|s| !accepted.contains(s)).collect();
    let (u, d) = (url.clone(), dir.clone());
    tokio::task::spawn_blocking(move || crash_round(&u, &d, &todo, None))
        .await
        .unwrap();
    let got = received(&server).await;
    let missing: Vec<i64> = (0..total).filter(|s| !got.contains_key(s)).collect();
    assert!(missing.is_empty(), "lost: {missing:?}");
    let reinvented: Vec<(&i64, &BTreeSet<String>)> =
        got.iter().filter(|(_, ids)| ids.len() > 1).collect();
    assert!(
        reinvented.is_empty(),
        "re-sent with a new insert_id: {reinvented:?}"
    );
    assert!(
        pending_in_log(&dir).is_empty(),
        "the final run drained the queue"
    );
    // only the lines that were not events are dead letters
    assert!(read_dead_letters(&dir)
        .unwrap()
        .iter()
        .all(|(e, _)| e.get("event_properties").is_none()));
}

/// Crash points of the runtime compaction: the rewritten log fsync'd under its temporary
/// name, and renamed over the log (directory not yet fsync'd).
const COMPACTION_POINTS: [&str; 2] = ["compact_runtime", "compacted_runtime"];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn aborts_during_runtime_compaction_lose_nothing_and_duplicate_only_by_insert_id() {
    // a 4 KiB compaction threshold makes the writer compact the log at runtime (not only the
    // rewrite at start: each run appends 150+ events, ~20 KiB); 12 rounds abort in the first
    // runtime compaction of the run, before or after its rename, alternately
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(Flaky(AtomicUsize::new(0)))
        .mount(&server)
        .await;
    let url = format!("{}/2/httpapi", server.uri());
    let dir = state_dir("sender-crash-compaction");
    let mut accepted: BTreeSet<i64> = BTreeSet::new();
    let mut crashed: BTreeMap<&str, usize> = BTreeMap::new();
    const PER_ROUND: i64 = 150;
    const ROUNDS: i64 = 12;
    let extra = ["--compact-log-bytes", "4096"];
    for round_no in 0..ROUNDS {
        let point = COMPACTION_POINTS[(round_no as usize) % COMPACTION_POINTS.len()];
        // after the first compaction the threshold is twice the compacted size: one per run
        let pass = 1;
        let todo: Vec<i64> = (0..(round_no + 1) * PER_ROUND)
            .filter(|s| !accepted.contains(s))
            .collect();
        let (u, d) = (url.clone(), dir.clone());
        let died = tokio::task::spawn_blocking(move || {
            crash_round_with(&u, &d, &todo, Some((point, pass)), &extra)
        })
        .await
        .unwrap();
        if died {
            *crashed.entry(point).or_default() += 1;
        }
        accepted.extend(pending_in_log(&dir));
        accepted.extend(received(&server).await.keys());
    }
    for p in COMPACTION_POINTS {
        assert!(
            crashed.get(p).copied().unwrap_or(0) > 0,
            "never crashed at {p}: {crashed:?}"
        );
    }
    let total = ROUNDS * PER_ROUND;
    let todo: Vec<i64> = (0..total).filter(|s| !accepted.contains(s)).collect();
    let (u, d) = (url.clone(), dir.clone());
    tokio::task::spawn_blocking(move || crash_round_with(&u, &d, &todo, None, &extra))
        .await
        .unwrap();
    let got = received(&server).await;
    let missing: Vec<i64> = (0..total).filter(|s| !got.contains_key(s)).collect();
    assert!(missing.is_empty(), "lost: {missing:?}");
    let reinvented: Vec<(&i64, &BTreeSet<String>)> =
        got.iter().filter(|(_, ids)| ids.len() > 1).collect();
    assert!(
        reinvented.is_empty(),
        "re-sent with a new insert_id: {reinvented:?}"
    );
    assert!(
        pending_in_log(&dir).is_empty(),
        "the final run drained the queue"
    );
}
