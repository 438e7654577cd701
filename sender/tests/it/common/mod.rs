//! Helpers shared by the integration tests.

#![allow(clippy::unwrap_used)] // test helpers

use amplitude_wire::Event;
use serde_json::json;
use std::path::PathBuf;

/// A fresh state directory under the system temp dir, named after `prefix`.
pub fn state_dir(prefix: &str) -> PathBuf {
    std::env::temp_dir().join(format!("{prefix}-{}", uuid::Uuid::new_v4()))
}

/// An event of `device` carrying ground-truth sequence number `seq`.
pub fn seq_event(seq: i64, device: &str) -> Event {
    serde_json::from_value(
        json!({"event_type":"E","device_id":device,"event_properties":{"conformance_seq":seq}}),
    )
    .unwrap()
}
