//! Disk full, in process: with a size cap on the queue's log (`max_log_bytes`), `track`
//! fails once the log is full, nothing accepted before is lost, and tracking resumes once
//! the space of delivered events is reclaimed (compaction).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use crate::common;
use amplitude_mock::{Fault, MockServer};
use amplitude_sender::{Sender, SenderError};
use amplitude_wire::Event;
use std::collections::BTreeMap;
use std::time::{Duration, Instant};

const CAP: u64 = 16 * 1024;

fn event(seq: i64) -> Event {
    let mut e = common::seq_event(seq, &format!("device-{:02}", seq % 7));
    e.insert_id = Some(format!("ins-{seq}"));
    e
}

/// seq -> insert_ids of every copy the mock stored.
fn stored(mock: &MockServer) -> BTreeMap<i64, Vec<String>> {
    let mut out: BTreeMap<i64, Vec<String>> = BTreeMap::new();
    for e in mock.events() {
        let v: serde_json::Value = serde_json::from_str(e.event.get()).unwrap();
        out.entry(v["event_properties"]["conformance_seq"].as_i64().unwrap())
            .or_default()
            .push(v["insert_id"].as_str().unwrap().to_owned());
    }
    out
}

async fn wait_stored(mock: &MockServer, n: usize) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while stored(mock).len() < n {
        assert!(
            Instant::now() < deadline,
            "the mock never stored {n} events"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_log_refuses_track_loses_nothing_and_resumes_when_space_returns() {
    let mock = MockServer::builder().api_key("KEY").seed(3).start().await;
    // nothing is delivered (503, never committed) while the log fills
    mock.faults().push(Fault::status(503)).unwrap();
    let dir = common::state_dir("disk-full");
    let (sender, _rx) = Sender::builder("KEY")
        .url(format!("{}/2/httpapi", mock.uri()))
        .state_dir(&dir)
        .flush_interval(Duration::from_millis(10))
        .seed(8)
        .max_log_bytes(CAP)
        .build()
        .await
        .unwrap();
    let mut accepted = 0i64;
    let err = loop {
        assert!(accepted < 10_000, "the capped log never filled");
        match sender.track(event(accepted)).await {
            Ok(()) => accepted += 1,
            Err(e) => break e,
        }
    };
    // the caller is told why
    assert!(matches!(err, SenderError::Queue(_)), "{err:?}");
    let msg = err.to_string();
    assert!(
        msg.contains("no space left") && msg.contains("max_log_bytes"),
        "{msg}"
    );
    assert!(accepted > 10, "only {accepted} events fit in {CAP} bytes");
    // still full: the refused event was not accepted, and neither is the next one
    assert!(sender.track(event(accepted)).await.is_err());

    // the server recovers: everything accepted before the refusal is delivered once
    mock.faults().clear();
    wait_stored(&mock, accepted as usize).await;

    // space returns (compaction drops the delivered events): tracking resumes; twice the
    // events that filled the log go through the same cap
    let total = accepted * 3;
    for seq in accepted..total {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            match sender.track(event(seq)).await {
                Ok(()) => break,
                Err(e) => {
                    assert!(Instant::now() < deadline, "tracking never resumed: {e}");
                    tokio::time::sleep(Duration::from_millis(10)).await;
                }
            }
        }
    }
    let report = sender.shutdown(Duration::from_secs(30)).await.unwrap();
    assert_eq!(report.left_in_queue, 0, "{report:?}");
    let got = stored(&mock);
    assert_eq!(got.len(), total as usize);
    for (seq, ids) in &got {
        assert_eq!(ids, &vec![format!("ins-{seq}")], "seq {seq}");
    }
    let _ = std::fs::remove_dir_all(&dir);
}
