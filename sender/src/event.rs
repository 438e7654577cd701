//! An accepted event as the sender keeps it: serialized once, with its `insert_id` and the
//! identities it is partitioned and paced by (spec §3.2, §9).

use amplitude_wire::Event;
use serde::Deserialize;
use serde_json::value::RawValue;
use serde_json::Value;
use std::borrow::Cow;

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
    /// runner's events (docs/sender-contract.md).
    pub seq: Option<i64>,
    /// True when the event updates user properties (`$identify`, or non-empty
    /// `user_properties`), which counts against the 1,800/hour budget (spec §8.1).
    pub property_update: bool,
    /// True for a `$identify` whose `user_properties` hold only a `$set` object: such
    /// consecutive events of one user can be coalesced (spec §3.3, §8.1).
    pub set_only_identify: bool,
}

/// Just the fields the sender reads, borrowed from the line (see [`QueuedEvent::from_line`]).
#[derive(Deserialize)]
struct Peek<'a> {
    #[serde(default, borrow)]
    device_id: Option<Cow<'a, str>>,
    #[serde(default, borrow)]
    user_id: Option<Cow<'a, str>>,
    /// `Some("null")` for an explicit null, `None` only when absent.
    #[serde(default, borrow, deserialize_with = "raw_some")]
    insert_id: Option<&'a RawValue>,
    #[serde(default, borrow)]
    event_type: Option<Cow<'a, str>>,
    #[serde(default, borrow)]
    user_properties: Option<&'a RawValue>,
    #[serde(default, borrow)]
    event_properties: Option<&'a RawValue>,
}

fn raw_some<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<&'de RawValue>, D::Error> {
    <&'de RawValue>::deserialize(d).map(Some)
}

#[derive(Deserialize)]
struct PeekProps {
    #[serde(default)]
    conformance_seq: Option<i64>,
}

/// The error of [`QueuedEvent::prepare`] and [`QueuedEvent::from_json`].
pub type PrepareError = serde_json::Error;

impl QueuedEvent {
    /// Gives `event` an `insert_id` (a UUID v4) unless it has a non-empty one, and serializes
    /// it (spec §9: keep the `insert_id` stable across retries).
    pub fn prepare(key: EventKey, mut event: Event) -> Result<Self, PrepareError> {
        if event.insert_id.as_deref().is_none_or(str::is_empty) {
            event.insert_id = Some(uuid::Uuid::new_v4().to_string());
        }
        let json = serde_json::to_vec(&event)?;
        Ok(Self::describe(key, &event, json))
    }

    /// Rebuilds the entry of an event read back from the durable log (already prepared).
    pub fn from_json(key: EventKey, json: Vec<u8>) -> Result<Self, PrepareError> {
        let text = std::str::from_utf8(&json).map_err(serde::de::Error::custom)?;
        match Self::from_line(key, text)? {
            q if q.json == json => Ok(q),
            // no usable insert_id was stored (cannot happen for prepared events): keep it
            _ => Self::prepare(key, serde_json::from_slice(&json)?),
        }
    }

    /// The fast path for one input line holding an event object: the event is kept
    /// byte-for-byte as given (unknown keys, number formats), only `"insert_id"` is
    /// prepended when it is absent (spec §9). Only the fields the sender needs are decoded;
    /// the whole line must still be valid JSON.
    pub fn from_line(key: EventKey, line: &str) -> Result<Self, PrepareError> {
        let text = line.trim();
        let peek: Peek<'_> = serde_json::from_str(text)?;
        let kept = match peek.insert_id {
            None => None,
            Some(raw) => match serde_json::from_str::<Cow<'_, str>>(raw.get()) {
                Ok(id) if !id.is_empty() => Some(id.into_owned()),
                // null, "" or not a string: rebuild through the typed event
                _ => return Self::prepare(key, serde_json::from_str(text)?),
            },
        };
        let (json, insert_id) = match kept {
            Some(id) => (text.as_bytes().to_vec(), id),
            None => {
                let id = uuid::Uuid::new_v4().to_string();
                let rest = text.get(1..).unwrap_or("").trim_start();
                let json = if rest.starts_with('}') {
                    format!("{{\"insert_id\":\"{id}\"}}")
                } else {
                    format!("{{\"insert_id\":\"{id}\",{rest}")
                };
                (json.into_bytes(), id)
            }
        };
        let seq = peek
            .event_properties
            .filter(|r| r.get().starts_with('{'))
            .and_then(|r| serde_json::from_str::<PeekProps>(r.get()).ok())
            .and_then(|p| p.conformance_seq);
        let props = peek
            .user_properties
            .map(|r| r.get().trim())
            .filter(|r| r.starts_with('{') && r[1..].trim_start() != "}");
        let is_identify = peek.event_type.as_deref() == Some("$identify");
        let set_only = is_identify
            && props.is_some_and(|p| {
                serde_json::from_str::<serde_json::Map<String, Value>>(p)
                    .is_ok_and(|m| m.len() == 1 && m.get("$set").is_some_and(Value::is_object))
            });
        Ok(Self {
            key,
            json,
            insert_id,
            device_id: peek.device_id.map(Cow::into_owned),
            user_id: peek.user_id.map(Cow::into_owned),
            seq,
            property_update: is_identify || props.is_some(),
            set_only_identify: set_only,
        })
    }

    fn describe(key: EventKey, event: &Event, json: Vec<u8>) -> Self {
        let seq = event
            .event_properties
            .as_ref()
            .and_then(|p| p.get("conformance_seq"))
            .and_then(Value::as_i64);
        let is_identify = event.event_type.as_deref() == Some("$identify");
        let props = event.user_properties.as_ref().filter(|p| !p.is_empty());
        let set_only = is_identify
            && props.is_some_and(|p| p.len() == 1 && p.get("$set").is_some_and(Value::is_object));
        Self {
            key,
            json,
            insert_id: event.insert_id.clone().unwrap_or_default(),
            device_id: event.device_id.clone(),
            user_id: event.user_id.clone(),
            seq,
            property_update: is_identify || props.is_some(),
            set_only_identify: set_only,
        }
    }

    /// This `$set`-only `$identify` with `newer`'s `$set` merged in (newer values win), as
    /// JSON; `None` if either is not such an event (spec §3.3: `$set` sets each value).
    pub fn merge_set(&self, newer: &QueuedEvent) -> Option<Vec<u8>> {
        if !self.set_only_identify || !newer.set_only_identify {
            return None;
        }
        let mut base: Value = serde_json::from_slice(&self.json).ok()?;
        let add: Value = serde_json::from_slice(&newer.json).ok()?;
        let add = add.pointer("/user_properties/$set")?.as_object()?.clone();
        let set = base.pointer_mut("/user_properties/$set")?.as_object_mut()?;
        set.extend(add);
        serde_json::to_vec(&base).ok()
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
        let kept = QueuedEvent::prepare(
            2,
            Event::new("B")
                .with_user_id("user-1")
                .with_insert_id("ins-1"),
        )
        .unwrap();
        assert_eq!(kept.insert_id, "ins-1");
        assert_eq!(kept.partition_key(), "user-1");
    }

    #[test]
    fn lines_are_kept_byte_for_byte_with_an_insert_id_added_once() {
        // spec §9: insert_id added before the first persist, kept if present
        let line = r#" {"event_type":"A","device_id":"dev-1","price":1.50,"x":{"y":[1]},"event_properties":{"conformance_seq":3}} "#;
        let q = QueuedEvent::from_line(4, line).unwrap();
        let text = String::from_utf8(q.json.clone()).unwrap();
        assert!(text.starts_with(&format!("{{\"insert_id\":\"{}\",", q.insert_id)));
        assert!(text
            .ends_with(r#""price":1.50,"x":{"y":[1]},"event_properties":{"conformance_seq":3}}"#));
        assert_eq!((q.seq, q.partition_key()), (Some(3), "dev-1"));
        let again = QueuedEvent::from_json(4, q.json.clone()).unwrap();
        assert_eq!(again, q);
        let kept = QueuedEvent::from_line(
            5,
            r#"{"insert_id":"ins-1","user_id":"user-1","event_type":"$identify"}"#,
        )
        .unwrap();
        assert_eq!(
            (kept.insert_id.as_str(), kept.property_update),
            ("ins-1", true)
        );
        let empty = QueuedEvent::from_line(6, "{}").unwrap();
        let v: Value = serde_json::from_slice(&empty.json).unwrap();
        assert_eq!(v["insert_id"].as_str(), Some(empty.insert_id.as_str()));
        // null insert_id: rebuilt, one key only
        let n = QueuedEvent::from_line(7, r#"{"insert_id":null,"device_id":"dev-9"}"#).unwrap();
        let v: Value = serde_json::from_slice(&n.json).unwrap();
        assert_eq!(v["insert_id"].as_str(), Some(n.insert_id.as_str()));
        assert_eq!(
            String::from_utf8(n.json)
                .unwrap()
                .matches("insert_id")
                .count(),
            1
        );
        assert!(QueuedEvent::from_line(8, "[1,2]").is_err());
        assert!(QueuedEvent::from_line(8, "{\"device_id\":").is_err());
        let up =
            QueuedEvent::from_line(9, r#"{"user_id":"u-12345","user_properties":{ }}"#).unwrap();
        assert!(!up.property_update);
    }

    #[test]
    fn property_updates_are_recognized() {
        // spec §8.1: user-property updates count against 1,800/hour
        let e: Event = serde_json::from_str(
            r#"{"event_type":"$identify","user_id":"user-1","user_properties":{"$set":{"a":1}}}"#,
        )
        .unwrap();
        let q = QueuedEvent::prepare(1, e).unwrap();
        assert!(q.property_update && q.set_only_identify);
        let line = QueuedEvent::from_line(3, r#"{"event_type":"$identify","user_id":"user-1","user_properties":{"$set":{"b":2,"a":0}}}"#).unwrap();
        assert!(line.set_only_identify);
        let merged: Value = serde_json::from_slice(&q.merge_set(&line).unwrap()).unwrap();
        assert_eq!(
            merged["user_properties"]["$set"],
            serde_json::json!({"a":0,"b":2})
        );
        assert_eq!(merged["insert_id"].as_str(), Some(q.insert_id.as_str()));
        let plain = QueuedEvent::prepare(2, Event::new("x").with_user_id("user-1")).unwrap();
        assert!(!plain.property_update);
    }
}
