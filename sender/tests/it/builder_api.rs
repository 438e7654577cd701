//! The user API (`Sender::builder`, `track`, `flush`, `shutdown`, the outcome stream) against
//! amplitude-mock on port 0.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use crate::common;
use amplitude_mock::{Fault, MockServer};
use amplitude_sender::{Endpoint, OutcomeKind, Region, Sender, SenderError};
use std::time::Duration;

async fn mock() -> MockServer {
    MockServer::builder().api_key("KEY").seed(3).start().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn track_flush_and_outcomes() {
    let mock = mock().await;
    let dir = common::state_dir("builder-track");
    let (sender, mut outcomes) = Sender::builder("KEY")
        .url(format!("{}/2/httpapi", mock.uri()))
        .state_dir(&dir)
        .flush_interval(Duration::from_secs(3_600)) // only flush() sends
        .seed(1)
        .build()
        .await
        .unwrap();
    for i in 0..10 {
        sender
            .track(common::seq_event(i, "device-1"))
            .await
            .unwrap();
    }
    // flush() resolves once every event tracked before it has its final outcome.
    sender.flush().await.unwrap();
    let mut seen = Vec::new();
    for _ in 0..10 {
        let o = outcomes
            .try_recv()
            .expect("an outcome per event before flush returns");
        assert_eq!(o.kind, OutcomeKind::Delivered);
        seen.push(o.seq.unwrap());
    }
    seen.sort_unstable();
    assert_eq!(seen, (0..10).collect::<Vec<_>>());
    assert_eq!(mock.events().len(), 10);
    let report = sender.shutdown(Duration::from_secs(5)).await.unwrap();
    assert_eq!(report.left_in_queue, 0);
    assert_eq!(report.stats.delivered, 10);
    assert!(
        outcomes.recv().await.is_none(),
        "the stream ends after shutdown"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dead_letters_are_reported_on_the_stream() {
    // A 400 naming the event as invalid (spec §5.2): dead-lettered, never resent.
    let mock = MockServer::builder()
        .api_key("KEY")
        .seed(3)
        .fault(Fault::status(403).count(1_000))
        .start()
        .await;
    let dir = common::state_dir("builder-dead");
    let (sender, mut outcomes) = Sender::builder("KEY")
        .url(format!("{}/2/httpapi", mock.uri()))
        .state_dir(&dir)
        .max_attempts(1)
        .build()
        .await
        .unwrap();
    sender
        .track(common::seq_event(7, "device-1"))
        .await
        .unwrap();
    sender.flush().await.unwrap();
    let o = outcomes.try_recv().unwrap();
    assert!(matches!(o.kind, OutcomeKind::DeadLettered(_)), "{o:?}");
    sender.shutdown(Duration::from_secs(5)).await.unwrap();
    assert_eq!(
        amplitude_sender::queue::read_dead_letters(&dir)
            .unwrap()
            .len(),
        1
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_holds_what_it_cannot_deliver_and_a_restart_sends_it() {
    let mock = MockServer::builder()
        .api_key("KEY")
        .seed(3)
        .fault(Fault::status(503).count(1_000_000))
        .start()
        .await;
    let dir = common::state_dir("builder-held");
    let url = format!("{}/2/httpapi", mock.uri());
    let (sender, mut outcomes) = Sender::builder("KEY")
        .url(&url)
        .state_dir(&dir)
        .flush_interval(Duration::from_millis(10))
        .build()
        .await
        .unwrap();
    sender
        .track(common::seq_event(1, "device-1"))
        .await
        .unwrap();
    let report = sender.shutdown(Duration::from_millis(300)).await.unwrap();
    assert_eq!(report.left_in_queue, 1);
    assert!(matches!(
        outcomes.recv().await.unwrap().kind,
        OutcomeKind::Held(_)
    ));
    // Same state directory against a healthy mock: the held event is resent and delivered.
    let healthy = mock_ok().await;
    let (sender, mut outcomes) = Sender::builder("KEY")
        .url(format!("{}/2/httpapi", healthy.uri()))
        .state_dir(&dir)
        .build()
        .await
        .unwrap();
    assert_eq!(sender.recovered(), 1);
    sender.flush().await.unwrap();
    assert_eq!(outcomes.try_recv().unwrap().kind, OutcomeKind::Delivered);
    sender.shutdown(Duration::from_secs(5)).await.unwrap();
}

async fn mock_ok() -> MockServer {
    mock().await
}

#[tokio::test]
async fn the_builder_defaults_to_https_in_the_region_and_needs_a_state_dir() {
    let b = Sender::builder("KEY");
    assert!(matches!(b.to_config(), Err(SenderError::NoStateDir)));
    let c = b.clone().state_dir("/tmp/x").to_config().unwrap();
    assert_eq!(c.url, "https://api2.amplitude.com/2/httpapi");
    let c = b
        .state_dir("/tmp/x")
        .region(Region::Eu)
        .endpoint(Endpoint::Batch)
        .to_config()
        .unwrap();
    assert_eq!(c.url, "https://api.eu.amplitude.com/batch");
    assert_eq!(c.core.endpoint, Endpoint::Batch);
}
