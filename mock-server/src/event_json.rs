//! [`EventJson`]: a stored event's JSON text, kept as the bytes it arrived as (ADR 018).

use bytes::Bytes;
use serde::{Serialize, Serializer};
use serde_json::value::RawValue;
use std::fmt;

/// An event's JSON text as the ledger stores it: one JSON object, UTF-8, as sent (or as the
/// profile rewrote it, spec §3.4). Usually a slice of the request body it arrived in, shared
/// with the other events of that request (no copy per event); cloning is a reference count.
///
/// Read it with [`EventJson::get`] (the same call as `serde_json::value::RawValue::get`);
/// it serializes as the JSON object itself, not as a string.
#[derive(Clone, PartialEq, Eq)]
pub struct EventJson(Bytes);

impl EventJson {
    /// `text` as a slice of `body` when it lies inside it (no copy), else a copy.
    pub(crate) fn in_body(body: &Bytes, text: &str) -> Self {
        let start = (text.as_ptr() as usize).wrapping_sub(body.as_ptr() as usize);
        match start.checked_add(text.len()) {
            Some(end) if start <= body.len() && end <= body.len() => Self(body.slice(start..end)),
            _ => Self::copied(text),
        }
    }

    /// A copy of `text` in its own buffer.
    pub(crate) fn copied(text: &str) -> Self {
        Self(Bytes::copy_from_slice(text.as_bytes()))
    }

    /// The JSON text.
    pub fn get(&self) -> &str {
        // Built only from `&str`, so always UTF-8.
        std::str::from_utf8(&self.0).unwrap_or("null")
    }

    /// Length of the JSON text, bytes.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// True for an empty text (never for a stored event).
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl From<String> for EventJson {
    fn from(s: String) -> Self {
        Self(Bytes::from(s.into_bytes()))
    }
}

impl From<Box<RawValue>> for EventJson {
    fn from(raw: Box<RawValue>) -> Self {
        Self::from(String::from(Box::<str>::from(raw)))
    }
}

impl fmt::Debug for EventJson {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.get())
    }
}

impl fmt::Display for EventJson {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.get())
    }
}

impl Serialize for EventJson {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let raw: &RawValue = serde_json::from_str(self.get()).map_err(serde::ser::Error::custom)?;
        raw.serialize(s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_slice_of_the_body_shares_its_buffer_and_serializes_as_json() {
        let body = Bytes::from_static(br#"{"events":[{"a":1},{"b":"x"}]}"#);
        let text = std::str::from_utf8(&body).unwrap();
        let inner = &text[11..18];
        let e = EventJson::in_body(&body, inner);
        assert_eq!(e.get(), r#"{"a":1}"#);
        assert_eq!(e.0.as_ptr(), inner.as_ptr(), "no copy");
        // a text from elsewhere is copied
        let other = String::from(r#"{"c":2}"#);
        let c = EventJson::in_body(&body, &other);
        assert_ne!(c.0.as_ptr(), other.as_ptr());
        assert_eq!(c.get(), other);
        assert_eq!(
            serde_json::to_string(&vec![e, c]).unwrap(),
            r#"[{"a":1},{"c":2}]"#
        );
    }
}
