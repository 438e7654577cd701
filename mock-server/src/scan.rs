//! A one-pass, allocation-light scan of an event object: picks out the fields the mock's
//! rules need (ids, `event_type`, `time`, `insert_id`, property objects) as borrowed slices
//! and measures the longest string value anywhere in the event (spec §3.4 "String length").

use serde::de::{self, DeserializeSeed, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde_json::value::RawValue;
use std::borrow::Cow;
use std::fmt;

/// A top-level event field as scanned: its JSON kind, and the string when it is one.
#[derive(Debug, Clone, PartialEq, Default)]
pub enum Scalar<'a> {
    /// Absent (or JSON `null`, which the mock treats as absent).
    #[default]
    Absent,
    /// A string.
    Str(Cow<'a, str>),
    /// An integer.
    Int(i64),
    /// A non-integer number, or an integer outside i64.
    Float,
    /// `true` / `false`.
    Bool(bool),
    /// An object or array.
    Compound,
}

impl<'a> Scalar<'a> {
    /// The string, when the field is one.
    pub fn as_str(&self) -> Option<&str> {
        match self {
            Self::Str(s) => Some(s),
            _ => None,
        }
    }

    /// True when absent or null.
    pub fn is_absent(&self) -> bool {
        matches!(self, Self::Absent)
    }
}

/// What the scan learned of one event.
#[derive(Debug, Default)]
pub struct ScannedEvent<'a> {
    /// `user_id`.
    pub user_id: Scalar<'a>,
    /// `device_id`.
    pub device_id: Scalar<'a>,
    /// `event_type`.
    pub event_type: Scalar<'a>,
    /// `time` (must be an integer, ms; spec §3.2).
    pub time: Scalar<'a>,
    /// `insert_id`.
    pub insert_id: Scalar<'a>,
    /// `session_id` (integer ms or -1).
    pub session_id: Scalar<'a>,
    /// `event_id` (integer).
    pub event_id: Scalar<'a>,
    /// `$skip_user_properties_sync` is `true` (spec §3.2).
    pub skip_user_properties_sync: bool,
    /// `user_properties` as sent.
    pub user_properties: Option<&'a RawValue>,
    /// `event_properties` as sent.
    pub event_properties: Option<&'a RawValue>,
    /// `groups` as sent.
    pub groups: Option<&'a RawValue>,
    /// `group_properties` as sent.
    pub group_properties: Option<&'a RawValue>,
    /// Longest string value anywhere in the event, characters.
    pub max_string_chars: usize,
    /// Name of the top-level field holding the longest string (for the 400 body).
    pub longest_field: Option<Cow<'a, str>>,
}

/// Scans one event. Errors when `raw` is not a JSON object.
///
/// The longest string is measured only when one could exceed the limit: an event whose
/// whole text is at most two bytes longer than
/// [`MAX_STRING_LENGTH`](amplitude_wire::limits::MAX_STRING_LENGTH) holds no string over the
/// limit, so its other fields and property objects are skipped, not walked
/// (`max_string_chars` then counts the picked fields only; the check of spec §3.4 reads it
/// only above the limit). Most events are far below it.
pub fn scan_event(raw: &RawValue) -> Result<ScannedEvent<'_>, serde_json::Error> {
    let walk = raw.get().len() > amplitude_wire::limits::MAX_STRING_LENGTH + 2;
    let mut de = serde_json::Deserializer::from_str(raw.get());
    de.deserialize_map(EventVisitor { walk })
}

/// Characters in `s` when it may exceed the 1,024 limit; else its byte length (an upper
/// bound that is itself within the limit).
fn chars(s: &str) -> usize {
    if s.len() <= amplitude_wire::limits::MAX_STRING_LENGTH {
        s.len()
    } else {
        s.chars().count()
    }
}

/// `walk`: measure the longest string in every field (see [`scan_event`]).
struct EventVisitor {
    walk: bool,
}

impl<'de> Visitor<'de> for EventVisitor {
    type Value = ScannedEvent<'de>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("an event object")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let mut ev = ScannedEvent::default();
        while let Some(key) = map.next_key_seed(KeySeed)? {
            let (slot, longest) = match key.as_ref() {
                "user_id" => (Some(&mut ev.user_id), 0),
                "device_id" => (Some(&mut ev.device_id), 0),
                "event_type" => (Some(&mut ev.event_type), 0),
                "time" => (Some(&mut ev.time), 0),
                "insert_id" => (Some(&mut ev.insert_id), 0),
                "session_id" => (Some(&mut ev.session_id), 0),
                "event_id" => (Some(&mut ev.event_id), 0),
                "$skip_user_properties_sync" => {
                    ev.skip_user_properties_sync =
                        map.next_value::<Option<bool>>().ok().flatten() == Some(true);
                    (None, 0)
                }
                "user_properties" | "event_properties" | "groups" | "group_properties" => {
                    let raw: &'de RawValue = map.next_value()?;
                    let longest = if self.walk {
                        walk_raw(raw).map_err(de::Error::custom)?
                    } else {
                        0
                    };
                    let raw = (raw.get() != "null").then_some(raw);
                    match key.as_ref() {
                        "user_properties" => ev.user_properties = raw,
                        "event_properties" => ev.event_properties = raw,
                        "groups" => ev.groups = raw,
                        _ => ev.group_properties = raw,
                    }
                    (None, longest)
                }
                _ if self.walk => (None, map.next_value_seed(Walk)?),
                _ => {
                    map.next_value::<IgnoredAny>()?;
                    (None, 0)
                }
            };
            let longest = match slot {
                Some(slot) => {
                    let v = map.next_value_seed(ScalarSeed)?;
                    let len = match &v {
                        Scalar::Str(s) => chars(s),
                        Scalar::Compound => 0,
                        _ => 0,
                    };
                    *slot = v;
                    len
                }
                None => longest,
            };
            if longest > ev.max_string_chars {
                ev.max_string_chars = longest;
                ev.longest_field = Some(key);
            }
        }
        Ok(ev)
    }
}

/// An object key, borrowed from the input when it has no escape (serde's own `Cow<str>`
/// always allocates: one `String` per key per event, docs/benchmarks.md).
struct KeySeed;

impl<'de> DeserializeSeed<'de> for KeySeed {
    type Value = Cow<'de, str>;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Cow<'de, str>, D::Error> {
        d.deserialize_str(KeyVisitor)
    }
}

struct KeyVisitor;

impl<'de> Visitor<'de> for KeyVisitor {
    type Value = Cow<'de, str>;
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("an object key")
    }
    fn visit_borrowed_str<E>(self, s: &'de str) -> Result<Cow<'de, str>, E> {
        Ok(Cow::Borrowed(s))
    }
    fn visit_str<E>(self, s: &str) -> Result<Cow<'de, str>, E> {
        Ok(Cow::Owned(s.to_owned()))
    }
    fn visit_string<E>(self, s: String) -> Result<Cow<'de, str>, E> {
        Ok(Cow::Owned(s))
    }
}

fn walk_raw(raw: &RawValue) -> Result<usize, serde_json::Error> {
    let mut de = serde_json::Deserializer::from_str(raw.get());
    Walk.deserialize(&mut de)
}

/// Walks any JSON value; yields the longest string value, characters.
struct Walk;

impl<'de> DeserializeSeed<'de> for Walk {
    type Value = usize;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<usize, D::Error> {
        d.deserialize_any(WalkVisitor)
    }
}

struct WalkVisitor;

impl<'de> Visitor<'de> for WalkVisitor {
    type Value = usize;
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("any JSON value")
    }
    fn visit_bool<E>(self, _: bool) -> Result<usize, E> {
        Ok(0)
    }
    fn visit_i64<E>(self, _: i64) -> Result<usize, E> {
        Ok(0)
    }
    fn visit_u64<E>(self, _: u64) -> Result<usize, E> {
        Ok(0)
    }
    fn visit_f64<E>(self, _: f64) -> Result<usize, E> {
        Ok(0)
    }
    fn visit_str<E>(self, s: &str) -> Result<usize, E> {
        Ok(chars(s))
    }
    fn visit_unit<E>(self) -> Result<usize, E> {
        Ok(0)
    }
    fn visit_none<E>(self) -> Result<usize, E> {
        Ok(0)
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<usize, A::Error> {
        let mut m = 0;
        while let Some(n) = seq.next_element_seed(Walk)? {
            m = m.max(n);
        }
        Ok(m)
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<usize, A::Error> {
        let mut m = 0;
        while map.next_key::<IgnoredAny>()?.is_some() {
            m = m.max(map.next_value_seed(Walk)?);
        }
        Ok(m)
    }
}

struct ScalarSeed;

impl<'de> DeserializeSeed<'de> for ScalarSeed {
    type Value = Scalar<'de>;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Scalar<'de>, D::Error> {
        d.deserialize_any(ScalarVisitor)
    }
}

struct ScalarVisitor;

impl<'de> Visitor<'de> for ScalarVisitor {
    type Value = Scalar<'de>;
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("any JSON value")
    }
    fn visit_bool<E>(self, b: bool) -> Result<Scalar<'de>, E> {
        Ok(Scalar::Bool(b))
    }
    fn visit_i64<E>(self, n: i64) -> Result<Scalar<'de>, E> {
        Ok(Scalar::Int(n))
    }
    fn visit_u64<E>(self, n: u64) -> Result<Scalar<'de>, E> {
        Ok(i64::try_from(n).map_or(Scalar::Float, Scalar::Int))
    }
    fn visit_f64<E>(self, _: f64) -> Result<Scalar<'de>, E> {
        Ok(Scalar::Float)
    }
    fn visit_borrowed_str<E>(self, s: &'de str) -> Result<Scalar<'de>, E> {
        Ok(Scalar::Str(Cow::Borrowed(s)))
    }
    fn visit_str<E>(self, s: &str) -> Result<Scalar<'de>, E> {
        Ok(Scalar::Str(Cow::Owned(s.to_owned())))
    }
    fn visit_string<E>(self, s: String) -> Result<Scalar<'de>, E> {
        Ok(Scalar::Str(Cow::Owned(s)))
    }
    fn visit_unit<E>(self) -> Result<Scalar<'de>, E> {
        Ok(Scalar::Absent)
    }
    fn visit_none<E>(self) -> Result<Scalar<'de>, E> {
        Ok(Scalar::Absent)
    }
    fn visit_seq<A: SeqAccess<'de>>(self, seq: A) -> Result<Scalar<'de>, A::Error> {
        WalkVisitor.visit_seq(seq).map(|_| Scalar::Compound)
    }
    fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Scalar<'de>, A::Error> {
        WalkVisitor.visit_map(map).map(|_| Scalar::Compound)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn raw(s: &str) -> Box<RawValue> {
        RawValue::from_string(s.to_owned()).unwrap()
    }

    #[test]
    fn picks_fields_and_longest_string() {
        let long = "x".repeat(1_100);
        let r = raw(&format!(
            r#"{{"user_id":"user-1","time":"2024-01-01","event_properties":{{"a":["{long}"]}},"insert_id":"i\"d","$skip_user_properties_sync":true}}"#
        ));
        let e = scan_event(&r).unwrap();
        assert_eq!(e.user_id.as_str(), Some("user-1"));
        assert_eq!(e.time.as_str(), Some("2024-01-01"));
        assert_eq!(e.insert_id.as_str(), Some("i\"d"));
        assert!(e.event_type.is_absent());
        assert!(e.skip_user_properties_sync);
        assert_eq!(e.max_string_chars, 1_100);
        assert_eq!(e.longest_field.as_deref(), Some("event_properties"));
    }

    #[test]
    fn short_events_skip_the_walk_and_long_ones_are_measured() {
        // 1,024 characters in a nested property: the event is longer than the limit, so the
        // walk runs and finds exactly the limit (not over it)
        let s = "y".repeat(1_024);
        let r1 = raw(&format!(r#"{{"p":{{"k":["{s}"]}}}}"#));
        let e = scan_event(&r1).unwrap();
        assert_eq!(e.max_string_chars, 1_024);
        // one more: over the limit, named by its top-level field
        let s = "y".repeat(1_025);
        let r2 = raw(&format!(r#"{{"a":1,"p":{{"k":["{s}"]}}}}"#));
        let e = scan_event(&r2).unwrap();
        assert_eq!(
            (e.max_string_chars, e.longest_field.as_deref()),
            (1_025, Some("p"))
        );
        // a short event: nothing in it can be over the limit; its fields are still picked
        let r3 = raw(r#"{"user_id":"u-1","x":{"k":"v"},"event_properties":{"b":"c"}}"#);
        let e = scan_event(&r3).unwrap();
        assert_eq!(e.user_id.as_str(), Some("u-1"));
        assert!(e.event_properties.is_some());
        assert!(e.max_string_chars <= amplitude_wire::limits::MAX_STRING_LENGTH);
    }

    #[test]
    fn counts_characters_not_bytes() {
        // spec §3.4: the limit is 1,024 characters
        let s = "é".repeat(1_024);
        let r = raw(&format!(r#"{{"event_type":"{s}"}}"#));
        assert_eq!(scan_event(&r).unwrap().max_string_chars, 1_024);
    }

    #[test]
    fn keys_are_borrowed_unless_escaped() {
        let r = raw(r#"{"user_id":"u","x\u0041":"long enough"}"#);
        let mut de = serde_json::Deserializer::from_str(r.get());
        struct Keys;
        impl<'de> Visitor<'de> for Keys {
            type Value = Vec<(bool, String)>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("map")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut m: A) -> Result<Self::Value, A::Error> {
                let mut out = Vec::new();
                while let Some(k) = m.next_key_seed(KeySeed)? {
                    m.next_value::<IgnoredAny>()?;
                    out.push((matches!(k, Cow::Borrowed(_)), k.into_owned()));
                }
                Ok(out)
            }
        }
        let keys = de.deserialize_map(Keys).unwrap();
        assert_eq!(
            keys,
            vec![(true, "user_id".to_owned()), (false, "xA".to_owned())]
        );
    }

    #[test]
    fn non_object_is_an_error() {
        assert!(scan_event(&raw("[1,2]")).is_err());
        assert!(scan_event(&raw("\"s\"")).is_err());
    }
}
