//! The Rust example of README.md ("Use the mock in your CI"): everything below the line
//! `// --- README: Rust ---` is quoted there byte for byte (checked by `readme.rs`).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test code: failing loudly is the point

// --- README: Rust ---
use amplitude_mock::{Fault, MockServer};
use serde_json::json;

/// The sender under test (yours batches, retries, backs off): one POST, one retry on a 5xx.
async fn send(url: &str, body: &serde_json::Value) -> reqwest::Result<u16> {
    let http = reqwest::Client::new();
    let status = http.post(url).json(body).send().await?.status();
    if status.is_server_error() {
        return Ok(http.post(url).json(body).send().await?.status().as_u16());
    }
    Ok(status.as_u16())
}

#[tokio::test]
async fn a_retried_batch_is_stored_once() -> Result<(), Box<dyn std::error::Error>> {
    let mock = MockServer::builder()
        .api_key("KEY")
        .virtual_clock(1_700_000_000_000)
        .start()
        .await;
    // The first upload is stored, then answered 500: the sender retries the same events.
    let committed_500 = Fault::status(500).committed(true).count(1);
    mock.faults().push(committed_500)?;

    let events: Vec<_> = (0..3)
        .map(|n| json!({"user_id": "user-12345", "event_type": "Song Played", "insert_id": format!("song-{n}")}))
        .collect();
    let body = json!({"api_key": "KEY", "events": events});
    let url = format!("{}/2/httpapi", mock.uri());
    assert_eq!(send(&url, &body).await?, 200);

    let stats = mock.stats();
    assert_eq!((stats.events_stored, stats.events_deduplicated), (3, 3));
    assert_eq!(mock.events().len(), 3);

    mock.clock().advance_ms(7 * 24 * 3_600_000); // a week later, in no time:
    assert_eq!(send(&url, &body).await?, 200); // the insert_ids are forgotten
    assert_eq!(mock.stats().events_stored, 6);
    Ok(())
}
