//! An accepted event as the sender keeps it: serialized once, with its `insert_id` and the
//! identities it is partitioned and paced by (spec §3.2, §9).

use amplitude_wire::Event;
use serde_json::Value;

/// Position of an event in the durable queue; increases in acceptance order and survives
/// restarts (it is written in the log).
pub type EventKey = u64;

/// One accepted event, ready to be batched: its JSON bytes (with `insert_id`) and what the
/// sender needs to know without parsing them again.
#[derive(Debug, Clone, PartialEq)]
pub struct QueuedEvent {
    /// Queue position (see [`EventKey`]).
    pub key: EventKey,
    /// The event serialized as JSON, with its `insert_id` (spec §9). Sent verbatim.
    pub json: Vec<u8>,
    /// Deduplication key, stable across retries and restarts (spec §9).
    pub insert_id: String,
    /// `device_id`, if any (spec §3.2).
    pub device_id: Option<String>,
    /// `user_id`, if any (spec §3.2).
    pub user_id: Option<String>,
    /// `event_properties.conformance_seq`, the ground-truth identity of the conformance
    /// runner's events (architecture.md "third-party sender contract").
    pub seq: Option<i64>,
    /// True when the event updates user properties (`$identify`, or non-empty
    /// `user_properties`), which counts against the 1,800/hour budget (spec §8.1).
    pub property_update: bool,
}

/// The error of [`QueuedEvent::prepare`] and [`QueuedEvent::from_json`].
pub type PrepareError = serde_json::Error;

impl QueuedEvent {
    /// Gives `event` an `insert_id` (a UUID v4) unless it has a non-empty one, and serializes
    /// it (spec §9: keep the `insert_id` stable across retries).
    pub fn prepare(key: EventKey, mut event: Event) -> Result<Self, PrepareError> {
        if event.insert_id.as_deref().map_or(true, str::is_empty) {
            event.insert_id = Some(uuid::Uuid::new_v4().to_string());
        }
        let json = serde_json::to_vec(&event)?;
        Ok(Self::describe(key, &event, json))
    }

    /// Rebuilds the entry of an event read back from the durable log (already prepared).
    pub fn from_json(key: EventKey, json: Vec<u8>) -> Result<Self, PrepareError> {
        let event: Event = serde_json::from_slice(&json)?;
        Ok(Self::describe(key, &event, json))
    }

    fn describe(key: EventKey, event: &Event, json: Vec<u8>) -> Self {
        let seq = event
            .event_properties
            .as_ref()
            .and_then(|p| p.get("conformance_seq"))
            .and_then(Value::as_i64);
        let is_identify = event.event_type.as_deref() == Some("$identify");
        let props = event.user_properties.as_ref().filter(|p| !p.is_empty());
        Self {
            key,
            json,
            insert_id: event.insert_id.clone().unwrap_or_default(),
            device_id: event.device_id.clone(),
            user_id: event.user_id.clone(),
            seq,
            property_update: is_identify || props.is_some(),
        }
    }

    /// The identity the sender partitions by: `device_id`, else `user_id`, else `""`
    /// (spec §9: per-device order; spec §8.1: limits per device and per user).
    pub fn partition_key(&self) -> &str {
        self.device_id
            .as_deref()
            .or(self.user_id.as_deref())
            .unwrap_or("")
    }

    /// The "Amplitude ID" approximation the property budget is counted by: `user_id`, else
    /// `device_id` (spec §8.1).
    pub fn property_owner(&self) -> &str {
        self.user_id
            .as_deref()
            .or(self.device_id.as_deref())
            .unwrap_or("")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn insert_id_is_added_once_and_kept_if_present() {
        // spec §9: a stable insert_id
        let e: Event = serde_json::from_str(
            r#"{"event_type":"A","device_id":"dev-1","event_properties":{"conformance_seq":7}}"#,
        )
        .unwrap();
        let q = QueuedEvent::prepare(1, e).unwrap();
        assert_eq!(q.insert_id.len(), 36);
        assert_eq!(q.seq, Some(7));
        assert_eq!(q.partition_key(), "dev-1");
        let back = QueuedEvent::from_json(1, q.json.clone()).unwrap();
        assert_eq!(back, q);
        let kept = QueuedEvent::prepare(2, Event::new("B").with_user_id("user-1").with_insert_id("ins-1")).unwrap();
        assert_eq!(kept.insert_id, "ins-1");
        assert_eq!(kept.partition_key(), "user-1");
    }

    #[test]
    fn property_updates_are_recognized() {
        // spec §8.1: user-property updates count against 1,800/hour
        let e: Event = serde_json::from_str(
            r#"{"event_type":"$identify","user_id":"user-1","user_properties":{"$set":{"a":1}}}"#,
        )
        .unwrap();
        let q = QueuedEvent::prepare(1, e).unwrap();
        assert!(q.property_update);
        let plain = QueuedEvent::prepare(2, Event::new("x").with_user_id("user-1")).unwrap();
        assert!(!plain.property_update);
    }
}
