//! Sends 100 events to a local amplitude-mock (started in-process on port 0) and prints each
//! outcome as it arrives, then the mock's count of stored events.
//!
//! Run: `cargo run -p amplitude-sender --example send_to_mock`. To send to Amplitude itself,
//! drop `.url(..)`: the builder posts over HTTPS to the region's host.

use amplitude_mock::MockServer;
use amplitude_sender::{OutcomeKind, Sender};
use amplitude_wire::Event;
use std::time::Duration;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let mock = MockServer::builder()
        .api_key("example-key")
        .try_start()
        .await?;
    let state_dir =
        std::env::temp_dir().join(format!("amplitude-sender-example-{}", std::process::id()));

    let (sender, mut outcomes) = Sender::builder("example-key")
        .url(format!("{}/2/httpapi", mock.uri()))
        .state_dir(&state_dir)
        .flush_interval(Duration::from_millis(100))
        .build()
        .await?;

    let printer = tokio::spawn(async move {
        let (mut delivered, mut other) = (0, 0);
        while let Some(o) = outcomes.recv().await {
            match o.kind {
                OutcomeKind::Delivered => delivered += 1,
                kind => {
                    other += 1;
                    println!("{}: {kind:?}", o.insert_id);
                }
            }
        }
        (delivered, other)
    });

    for i in 0..100 {
        // track() returns once the event is on disk: from here on it is never lost.
        sender
            .track(
                Event::new("Button Clicked")
                    .with_user_id(format!("user-{:05}", i % 10))
                    .with_device_id(format!("device-{:05}", i % 10)),
            )
            .await?;
    }
    sender.flush().await?; // every event above has its final outcome
    let report = sender.shutdown(Duration::from_secs(10)).await?;
    let (delivered, other) = printer.await?;
    println!(
        "delivered {delivered}, other outcomes {other}, left in queue {}, mock stored {}",
        report.left_in_queue,
        mock.events().len()
    );
    std::fs::remove_dir_all(&state_dir)?;
    Ok(())
}
