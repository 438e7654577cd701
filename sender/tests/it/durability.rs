//! Reliability of the durable queue: the state directory's lock and torn log tails.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use crate::common;
use amplitude_mock::{Fault, MockServer};
use amplitude_sender::queue::{scan, LockError, QueueError, LOCK_FILE, LOG_FILE};
use amplitude_sender::{OutcomeKind, Sender, SenderError};
use rand::{Rng, SeedableRng};
use std::collections::BTreeMap;
use std::time::Duration;

async fn mock(faults: bool) -> MockServer {
    let mut b = MockServer::builder().api_key("KEY").seed(9);
    if faults {
        b = b.fault(Fault::status(503).count(1_000_000));
    }
    b.start().await
}

fn builder(mock: &MockServer, dir: &std::path::Path) -> amplitude_sender::SenderBuilder {
    Sender::builder("KEY")
        .url(format!("{}/2/httpapi", mock.uri()))
        .state_dir(dir)
        .flush_interval(Duration::from_millis(10))
        .seed(4)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_sender_on_the_same_directory_fails_naming_it_and_the_holder() {
    let mock = mock(false).await;
    let dir = common::state_dir("lock");
    let (first, _rx) = builder(&mock, &dir).build().await.unwrap();
    let err = builder(&mock, &dir).build().await.unwrap_err();
    match &err {
        SenderError::Queue(QueueError::Lock(LockError::Held { dir: d, holder })) => {
            assert_eq!(d, &dir);
            assert_eq!(holder, &std::process::id().to_string());
        }
        other => panic!("expected a lock error, got {other:?}"),
    }
    let text = err.to_string();
    assert!(text.contains(&dir.display().to_string()), "{text}");
    assert!(
        text.contains(&format!("pid {}", std::process::id())),
        "{text}"
    );
    // released on shutdown
    first.shutdown(Duration::from_secs(5)).await.unwrap();
    let (again, _rx) = builder(&mock, &dir).build().await.unwrap();
    again.shutdown(Duration::from_secs(5)).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stale_lock_file_does_not_block_a_restart() {
    // A killed holder leaves the file (with its pid) but not the flock: the kernel dropped it.
    let mock = mock(false).await;
    let dir = common::state_dir("lock-stale");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join(LOCK_FILE), "4194304\n").unwrap();
    let (s, _rx) = builder(&mock, &dir).build().await.unwrap();
    assert_eq!(
        std::fs::read_to_string(dir.join(LOCK_FILE)).unwrap().trim(),
        std::process::id().to_string()
    );
    s.shutdown(Duration::from_secs(5)).await.unwrap();
}

/// Byte offsets where each record of `log` ends (just past its newline).
fn record_ends(log: &[u8]) -> Vec<usize> {
    log.iter()
        .enumerate()
        .filter(|(_, &b)| b == b'\n')
        .map(|(i, _)| i + 1)
        .collect()
}

/// A queue log of `n` durable, undelivered events (the mock answers 503 to everything).
async fn held_log(n: i64) -> Vec<u8> {
    let mock = mock(true).await;
    let dir = common::state_dir("torn-src");
    let (s, _rx) = builder(&mock, &dir).build().await.unwrap();
    for i in 0..n {
        s.track(common::seq_event(i, "device-1")).await.unwrap();
    }
    let report = s.shutdown(Duration::from_millis(50)).await.unwrap();
    assert_eq!(report.left_in_queue, n as usize);
    std::fs::read(dir.join(LOG_FILE)).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_log_cut_at_any_byte_of_its_last_records_keeps_every_complete_record() {
    let log = held_log(8).await;
    let ends = record_ends(&log);
    assert_eq!(ends.len(), 8);
    // every offset inside the last three records
    for cut in ends[ends.len() - 4]..=log.len() {
        let r = scan(&log[..cut]);
        let complete = ends.iter().filter(|&&e| e <= cut).count();
        assert_eq!(r.pending.len(), complete, "cut at {cut}");
        let keys: Vec<u64> = r.pending.iter().map(|p| p.0).collect();
        assert_eq!(
            keys,
            (0..complete as u64).collect::<Vec<_>>(),
            "cut at {cut}"
        );
        let torn = cut
            - ends
                .iter()
                .copied()
                .filter(|&e| e <= cut)
                .max()
                .unwrap_or(0);
        assert_eq!(r.discarded_bytes, torn, "cut at {cut}");
    }
    // random garbage after the last complete record (seeded)
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(17);
    for _ in 0..200 {
        let mut bytes = log.clone();
        let len = rng.random_range(1..64);
        bytes.extend((0..len).map(|_| rng.random::<u8>()));
        let r = scan(&bytes);
        assert!(
            r.pending.len() >= 8,
            "a garbage tail never hides a durable record"
        );
        assert_eq!(
            r.pending[..8].iter().map(|p| p.0).collect::<Vec<_>>(),
            (0..8).collect::<Vec<_>>()
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restart_after_a_torn_tail_delivers_each_durable_event_once_with_its_insert_id() {
    let log = held_log(6).await;
    let ends = record_ends(&log);
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(3);
    // cut inside the last record, then append garbage
    let mut bytes = log[..ends[4] + 7].to_vec();
    bytes.extend((0..40).map(|_| rng.random::<u8>()));
    let insert_ids: BTreeMap<i64, String> = log[..ends[4]]
        .split(|&b| b == b'\n')
        .filter(|l| l.starts_with(b"A "))
        .map(|l| {
            let json = &l[l.iter().skip(2).position(|&b| b == b' ').unwrap() + 3..];
            let v: serde_json::Value = serde_json::from_slice(json).unwrap();
            (
                v["event_properties"]["conformance_seq"].as_i64().unwrap(),
                v["insert_id"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    assert_eq!(insert_ids.len(), 5);
    let dir = common::state_dir("torn-restart");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join(LOG_FILE), &bytes).unwrap();
    let mock = mock(false).await;
    let (s, mut rx) = builder(&mock, &dir).build().await.unwrap();
    assert_eq!(s.recovered(), 5);
    s.flush().await.unwrap();
    s.shutdown(Duration::from_secs(5)).await.unwrap();
    let mut delivered = 0;
    while let Some(o) = rx.recv().await {
        assert_eq!(o.kind, OutcomeKind::Delivered);
        assert_eq!(insert_ids[&o.seq.unwrap()], o.insert_id, "same insert_id");
        delivered += 1;
    }
    assert_eq!(delivered, 5);
    let stored: Vec<serde_json::Value> = mock
        .events()
        .iter()
        .map(|e| serde_json::from_str(e.event.get()).unwrap())
        .collect();
    assert_eq!(stored.len(), 5, "no second copy");
    for v in stored {
        let seq = v["event_properties"]["conformance_seq"].as_i64().unwrap();
        assert_eq!(v["insert_id"].as_str().unwrap(), insert_ids[&seq]);
    }
}
