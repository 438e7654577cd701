//! One pass over an upload body (ADR 018): validates the whole body as JSON, finds the
//! top-level `api_key`, `events` and `options`, and scans each element of `events` as it goes,
//! picking out the fields the mock's rules need (ids, `event_type`, `time`, `insert_id`,
//! property objects) as slices borrowed from the body, and measuring the longest string value
//! anywhere in the event (spec §3.4 "String length", docs/amplitude-behaviour.md §3.4).
//!
//! The grammar is RFC 8259's, checked byte by byte the way serde_json's skipping tokenizer
//! checks it (what the mock accepted before this pass replaced serde_json here): no nesting
//! limit, `\u` escapes checked for four hex digits. A string is decoded only where the mock
//! reads it (keys, picked strings, strings over the length limit); a lone surrogate escape in
//! one of those makes the event invalid (`Invalid event JSON`), or the body when it is in a
//! top-level key or the `api_key` (`Invalid JSON request body`).

use amplitude_wire::limits::MAX_STRING_LENGTH;
use std::borrow::Cow;

/// A top-level event field as scanned: its JSON kind, and the string when it is one.
#[derive(Debug, Clone, PartialEq, Default)]
pub enum Scalar<'a> {
    /// Absent (or JSON `null`, which the mock treats as absent).
    #[default]
    Absent,
    /// A string.
    Str(Cow<'a, str>),
    /// An integer that fits `i64`.
    Int(i64),
    /// A number with a fraction or an exponent, `-0`, or an integer outside `i64`
    /// (what serde_json reads as `f64`).
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

/// What the scan learned of one element of `events`.
#[derive(Debug, Default)]
pub struct ScannedEvent<'a> {
    /// The element's JSON text, as sent (a slice of the body).
    pub raw: &'a str,
    /// The element is not an object, or a key or picked string in it cannot be decoded (a
    /// lone surrogate escape): the request gets `Invalid event JSON`.
    pub invalid: bool,
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
    /// `user_properties` as sent (JSON text; `None` when absent or `null`).
    pub user_properties: Option<&'a str>,
    /// `event_properties` as sent.
    pub event_properties: Option<&'a str>,
    /// `groups` as sent.
    pub groups: Option<&'a str>,
    /// `group_properties` as sent.
    pub group_properties: Option<&'a str>,
    /// Longest string value anywhere in the event, characters, exact when over
    /// [`MAX_STRING_LENGTH`]; at most the limit otherwise (a string's byte length is an upper
    /// bound of its characters, and is what short strings are measured by). Keys are not
    /// string values; nor are strings inside an object or array given as a picked scalar
    /// field (such an event is invalid anyway).
    pub max_string_chars: usize,
    /// Name of the top-level field holding the longest string (for the 400 body).
    pub longest_field: Option<Cow<'a, str>>,
}

/// The body's `events` value.
#[derive(Debug)]
pub enum EventsField<'a> {
    /// An array: every element scanned, in order.
    List {
        /// The elements.
        events: Vec<ScannedEvent<'a>>,
        /// Some element is [`ScannedEvent::invalid`].
        any_invalid: bool,
        /// The array's text, from its `[` to its `]` (for the request journal).
        text: &'a str,
    },
    /// Any other JSON value but `null` (answered with `Invalid event JSON`).
    NotList,
}

/// What the scan learned of an upload body (spec §3.1).
#[derive(Debug, Default)]
pub struct ScannedBody<'a> {
    /// `api_key`, decoded; `None` when absent or `null`.
    pub api_key: Option<Cow<'a, str>>,
    /// `events`; `None` when absent or `null`.
    pub events: Option<EventsField<'a>>,
    /// `options.min_id_length`, when it is a non-negative integer.
    pub min_id_length: Option<u64>,
}

/// The body is not JSON the mock can read: answered `Invalid JSON request body`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("invalid JSON at byte {at}")]
pub struct Invalid {
    /// Byte offset where the scan stopped.
    pub at: usize,
}

type Scan<T> = Result<T, Invalid>;

/// Scans an upload body in one pass. Errors when `text` is not one JSON object (whitespace
/// around it allowed), when `api_key`, `events` or `options` appears twice, when `api_key`
/// is neither a string nor `null`, or when a top-level key or the `api_key` cannot be decoded.
pub fn scan_body(text: &str) -> Result<ScannedBody<'_>, Invalid> {
    let mut s = Scanner::new(text);
    let body = s.body()?;
    s.ws();
    if s.i != s.b.len() {
        return Err(s.invalid());
    }
    Ok(body)
}

/// Scans one event object on its own (the whole of `text`). Errors when `text` is not one
/// JSON value; an element that is not an object comes back [`ScannedEvent::invalid`].
#[cfg(test)]
pub fn scan_event(text: &str) -> Result<ScannedEvent<'_>, Invalid> {
    let mut s = Scanner::new(text);
    s.ws();
    let ev = s.element()?;
    s.ws();
    if s.i != s.b.len() {
        return Err(s.invalid());
    }
    Ok(ev)
}

/// A string token: its text with the quotes, and whether it holds an escape.
#[derive(Clone, Copy)]
struct Str<'a> {
    quoted: &'a str,
    escaped: bool,
}

impl<'a> Str<'a> {
    fn content(&self) -> &'a str {
        self.quoted
            .get(1..self.quoted.len().saturating_sub(1))
            .unwrap_or("")
    }

    /// The decoded string; `None` for a lone surrogate escape.
    fn decode(&self) -> Option<Cow<'a, str>> {
        if self.escaped {
            serde_json::from_str::<String>(self.quoted)
                .ok()
                .map(Cow::Owned)
        } else {
            Some(Cow::Borrowed(self.content()))
        }
    }

    /// Characters when over the limit; else the byte length of its text (an upper bound of
    /// its characters that is itself within the limit).
    fn measure(&self) -> usize {
        let content = self.content();
        if content.len() <= MAX_STRING_LENGTH {
            return content.len();
        }
        match self.decode() {
            Some(s) => s.chars().count(),
            None => content.chars().count(),
        }
    }
}

const OBJECT: u8 = b'{';
const ARRAY: u8 = b'[';

struct Scanner<'a> {
    text: &'a str,
    b: &'a [u8],
    i: usize,
    /// Open containers of the value being skipped (no nesting limit; grows on the heap).
    stack: Vec<u8>,
}

/// Position (0-7) of the first byte of eight (little-endian word) that is `"`, `\` or a
/// control character, if any (SWAR test).
fn first_special(w: u64) -> Option<usize> {
    const ONES: u64 = 0x0101_0101_0101_0101;
    const HIGHS: u64 = 0x8080_8080_8080_8080;
    let zero = |v: u64| v.wrapping_sub(ONES) & !v & HIGHS;
    let quote = zero(w ^ (ONES * u64::from(b'"')));
    let backslash = zero(w ^ (ONES * u64::from(b'\\')));
    let control = w.wrapping_sub(ONES * 0x20) & !w & HIGHS;
    let any = quote | backslash | control;
    // A borrow can flag a byte above a flagged one, never below: the lowest flag is exact.
    (any != 0).then(|| (any.trailing_zeros() / 8) as usize)
}

impl<'a> Scanner<'a> {
    fn new(text: &'a str) -> Self {
        Self {
            text,
            b: text.as_bytes(),
            i: 0,
            stack: Vec::new(),
        }
    }

    fn invalid(&self) -> Invalid {
        Invalid { at: self.i }
    }

    fn peek(&self) -> Option<u8> {
        self.b.get(self.i).copied()
    }

    fn ws(&mut self) {
        while let Some(b' ' | b'\n' | b'\r' | b'\t') = self.peek() {
            self.i += 1;
        }
    }

    fn eat(&mut self, c: u8) -> Scan<()> {
        self.ws();
        if self.peek() == Some(c) {
            self.i += 1;
            Ok(())
        } else {
            Err(self.invalid())
        }
    }

    fn slice(&self, from: usize) -> Scan<&'a str> {
        self.text.get(from..self.i).ok_or(self.invalid())
    }

    /// A string at the cursor (`"` expected).
    fn string(&mut self) -> Scan<Str<'a>> {
        let start = self.i;
        if self.peek() != Some(b'"') {
            return Err(self.invalid());
        }
        self.i += 1;
        let mut escaped = false;
        loop {
            while let Some(chunk) = self.b.get(self.i..self.i + 8) {
                let mut w = [0u8; 8];
                w.copy_from_slice(chunk);
                if let Some(at) = first_special(u64::from_le_bytes(w)) {
                    self.i += at;
                    break;
                }
                self.i += 8;
            }
            while let Some(c) = self.peek() {
                if c == b'"' || c == b'\\' || c < 0x20 {
                    break;
                }
                self.i += 1;
            }
            match self.peek() {
                Some(b'"') => {
                    self.i += 1;
                    return Ok(Str {
                        quoted: self.slice(start)?,
                        escaped,
                    });
                }
                Some(b'\\') => {
                    escaped = true;
                    self.i += 1;
                    match self.peek() {
                        Some(b'"' | b'\\' | b'/' | b'b' | b'f' | b'n' | b'r' | b't') => self.i += 1,
                        Some(b'u') => {
                            let hex = self.b.get(self.i + 1..self.i + 5).ok_or(self.invalid())?;
                            if !hex.iter().all(u8::is_ascii_hexdigit) {
                                return Err(self.invalid());
                            }
                            self.i += 5;
                        }
                        _ => return Err(self.invalid()),
                    }
                }
                // A control character in a string, or the end of the input.
                _ => return Err(self.invalid()),
            }
        }
    }

    fn digits(&mut self) -> usize {
        let from = self.i;
        while let Some(b'0'..=b'9') = self.peek() {
            self.i += 1;
        }
        self.i - from
    }

    /// A number at the cursor, classified as serde_json reads it.
    fn number(&mut self) -> Scan<Scalar<'a>> {
        let negative = self.peek() == Some(b'-');
        if negative {
            self.i += 1;
        }
        let int_start = self.i;
        match self.peek() {
            Some(b'0') => self.i += 1,
            Some(b'1'..=b'9') => {
                self.digits();
            }
            _ => return Err(self.invalid()),
        }
        let int_text = self.b.get(int_start..self.i).unwrap_or(b"");
        let mut float = false;
        if self.peek() == Some(b'.') {
            self.i += 1;
            if self.digits() == 0 {
                return Err(self.invalid());
            }
            float = true;
        }
        if let Some(b'e' | b'E') = self.peek() {
            self.i += 1;
            if let Some(b'+' | b'-') = self.peek() {
                self.i += 1;
            }
            if self.digits() == 0 {
                return Err(self.invalid());
            }
            float = true;
        }
        if float {
            return Ok(Scalar::Float);
        }
        let magnitude = int_text.iter().try_fold(0u64, |acc, d| {
            acc.checked_mul(10)?.checked_add(u64::from(d - b'0'))
        });
        Ok(match (negative, magnitude) {
            (_, None) => Scalar::Float,
            (false, Some(m)) => i64::try_from(m).map_or(Scalar::Float, Scalar::Int),
            // serde_json reads `-0` as the float -0.0
            (true, Some(0)) => Scalar::Float,
            (true, Some(m)) => i64::try_from(-i128::from(m)).map_or(Scalar::Float, Scalar::Int),
        })
    }

    fn literal(&mut self, word: &[u8]) -> Scan<()> {
        if self.b.get(self.i..self.i + word.len()) == Some(word) {
            self.i += word.len();
            Ok(())
        } else {
            Err(self.invalid())
        }
    }

    /// Skips one value at the cursor (after whitespace), raising `longest` to the measure of
    /// each string value in it (see [`Str::measure`]).
    fn skip(&mut self, longest: &mut usize) -> Scan<()> {
        let base = self.stack.len();
        loop {
            // One value.
            self.ws();
            match self.peek() {
                Some(b'"') => *longest = (*longest).max(self.string()?.measure()),
                Some(b'{') => {
                    if self.open_object()? {
                        self.key()?;
                        self.stack.push(OBJECT);
                        continue;
                    }
                }
                Some(b'[') => {
                    self.i += 1;
                    self.ws();
                    if self.peek() == Some(b']') {
                        self.i += 1;
                    } else {
                        self.stack.push(ARRAY);
                        continue;
                    }
                }
                Some(b't') => self.literal(b"true")?,
                Some(b'f') => self.literal(b"false")?,
                Some(b'n') => self.literal(b"null")?,
                Some(b'-' | b'0'..=b'9') => {
                    self.number()?;
                }
                _ => return Err(self.invalid()),
            }
            // Close what the value completed.
            loop {
                if self.stack.len() <= base {
                    return Ok(());
                }
                self.ws();
                let top = self.stack.last().copied();
                match (self.peek(), top) {
                    (Some(b','), Some(OBJECT)) => {
                        self.i += 1;
                        self.key()?;
                        break;
                    }
                    (Some(b','), Some(ARRAY)) => {
                        self.i += 1;
                        break;
                    }
                    (Some(b'}'), Some(OBJECT)) | (Some(b']'), Some(ARRAY)) => {
                        self.i += 1;
                        self.stack.pop();
                    }
                    _ => return Err(self.invalid()),
                }
            }
        }
    }

    /// A picked field's value, and the measure of its string (0 for other kinds). `None`
    /// in the string position: a string that cannot be decoded.
    fn scalar(&mut self) -> Scan<(Option<Scalar<'a>>, usize)> {
        self.ws();
        Ok(match self.peek() {
            Some(b'"') => {
                let s = self.string()?;
                (s.decode().map(Scalar::Str), s.measure())
            }
            Some(b'-' | b'0'..=b'9') => (Some(self.number()?), 0),
            Some(b't') => {
                self.literal(b"true")?;
                (Some(Scalar::Bool(true)), 0)
            }
            Some(b'f') => {
                self.literal(b"false")?;
                (Some(Scalar::Bool(false)), 0)
            }
            Some(b'n') => {
                self.literal(b"null")?;
                (Some(Scalar::Absent), 0)
            }
            _ => {
                self.skip(&mut 0)?;
                (Some(Scalar::Compound), 0)
            }
        })
    }

    /// A value's text, skipped and measured.
    fn raw_value(&mut self, longest: &mut usize) -> Scan<&'a str> {
        self.ws();
        let from = self.i;
        self.skip(longest)?;
        self.slice(from)
    }

    /// One element of `events` at the cursor (after whitespace).
    fn element(&mut self) -> Scan<ScannedEvent<'a>> {
        let start = self.i;
        if self.peek() != Some(b'{') {
            self.skip(&mut 0)?;
            return Ok(ScannedEvent {
                raw: self.slice(start)?,
                invalid: true,
                ..ScannedEvent::default()
            });
        }
        let mut ev = ScannedEvent::default();
        if !self.open_object()? {
            ev.raw = self.slice(start)?;
            return Ok(ev);
        }
        loop {
            let key = self.key()?;
            let Some(name) = key.decode() else {
                ev.invalid = true;
                self.skip(&mut 0)?;
                if self.next_member(b'}')? {
                    continue;
                }
                break;
            };
            let slot = match name.as_ref() {
                "user_id" => Some(&mut ev.user_id),
                "device_id" => Some(&mut ev.device_id),
                "event_type" => Some(&mut ev.event_type),
                "time" => Some(&mut ev.time),
                "insert_id" => Some(&mut ev.insert_id),
                "session_id" => Some(&mut ev.session_id),
                "event_id" => Some(&mut ev.event_id),
                _ => None,
            };
            let longest = if let Some(slot) = slot {
                let (value, measure) = self.scalar()?;
                match value {
                    Some(v) => *slot = v,
                    None => ev.invalid = true,
                }
                measure
            } else {
                match name.as_ref() {
                    "$skip_user_properties_sync" => {
                        let (value, _) = self.scalar()?;
                        ev.skip_user_properties_sync = value == Some(Scalar::Bool(true));
                        0
                    }
                    "user_properties" | "event_properties" | "groups" | "group_properties" => {
                        let mut longest = 0;
                        let raw = self.raw_value(&mut longest)?;
                        let raw = (raw != "null").then_some(raw);
                        match name.as_ref() {
                            "user_properties" => ev.user_properties = raw,
                            "event_properties" => ev.event_properties = raw,
                            "groups" => ev.groups = raw,
                            _ => ev.group_properties = raw,
                        }
                        longest
                    }
                    _ => {
                        let mut longest = 0;
                        self.skip(&mut longest)?;
                        longest
                    }
                }
            };
            if longest > ev.max_string_chars {
                ev.max_string_chars = longest;
                ev.longest_field = Some(name);
            }
            if !self.next_member(b'}')? {
                break;
            }
        }
        ev.raw = self.slice(start)?;
        Ok(ev)
    }

    /// After a member or element: `true` at `,` (another follows), `false` at `close`.
    fn next_member(&mut self, close: u8) -> Scan<bool> {
        self.ws();
        match self.peek() {
            Some(b',') => {
                self.i += 1;
                Ok(true)
            }
            Some(c) if c == close => {
                self.i += 1;
                Ok(false)
            }
            _ => Err(self.invalid()),
        }
    }

    /// At `{` (after whitespace): consumes it; `true` when a member follows, `false` for
    /// an empty object (consumed whole).
    fn open_object(&mut self) -> Scan<bool> {
        self.eat(b'{')?;
        self.ws();
        if self.peek() == Some(b'}') {
            self.i += 1;
            return Ok(false);
        }
        Ok(true)
    }

    /// A member's key and the colon after it.
    fn key(&mut self) -> Scan<Str<'a>> {
        self.ws();
        let key = self.string()?;
        self.eat(b':')?;
        Ok(key)
    }

    fn events(&mut self) -> Scan<Option<EventsField<'a>>> {
        self.ws();
        match self.peek() {
            Some(b'n') => {
                self.literal(b"null")?;
                Ok(None)
            }
            Some(b'[') => {
                let start = self.i;
                self.i += 1;
                let mut events = Vec::new();
                let mut any_invalid = false;
                self.ws();
                if self.peek() == Some(b']') {
                    self.i += 1;
                } else {
                    loop {
                        self.ws();
                        let ev = self.element()?;
                        any_invalid |= ev.invalid;
                        events.push(ev);
                        if !self.next_member(b']')? {
                            break;
                        }
                    }
                }
                Ok(Some(EventsField::List {
                    events,
                    any_invalid,
                    text: self.slice(start)?,
                }))
            }
            _ => {
                self.skip(&mut 0)?;
                Ok(Some(EventsField::NotList))
            }
        }
    }

    /// `options`: `min_id_length` when it is a non-negative integer.
    fn options(&mut self) -> Scan<Option<u64>> {
        self.ws();
        if self.peek() != Some(b'{') {
            self.skip(&mut 0)?;
            return Ok(None);
        }
        let mut min_id_length = None;
        if !self.open_object()? {
            return Ok(None);
        }
        loop {
            let key = self.key()?;
            if key.decode().as_deref() == Some("min_id_length") {
                min_id_length = match self.scalar()?.0 {
                    Some(Scalar::Int(n)) => u64::try_from(n).ok(),
                    _ => None,
                };
            } else {
                self.skip(&mut 0)?;
            }
            if !self.next_member(b'}')? {
                return Ok(min_id_length);
            }
        }
    }

    fn body(&mut self) -> Scan<ScannedBody<'a>> {
        let mut body = ScannedBody::default();
        let (mut seen_key, mut seen_events, mut seen_options) = (false, false, false);
        if !self.open_object()? {
            return Ok(body);
        }
        loop {
            let key = self.key()?;
            let name = key.decode().ok_or(self.invalid())?;
            let seen = match name.as_ref() {
                "api_key" => &mut seen_key,
                "events" => &mut seen_events,
                "options" => &mut seen_options,
                _ => {
                    self.skip(&mut 0)?;
                    if self.next_member(b'}')? {
                        continue;
                    }
                    return Ok(body);
                }
            };
            // A field given twice: serde's "duplicate field", not one the mock can read.
            if std::mem::replace(seen, true) {
                return Err(self.invalid());
            }
            match name.as_ref() {
                "api_key" => {
                    body.api_key = match self.scalar()?.0 {
                        Some(Scalar::Absent) => None,
                        Some(Scalar::Str(k)) => Some(k),
                        _ => return Err(self.invalid()),
                    }
                }
                "events" => body.events = self.events()?,
                _ => body.min_id_length = self.options()?,
            }
            if !self.next_member(b'}')? {
                return Ok(body);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        /// The word test finds the first `"`, `\\` or control byte of any eight bytes,
        /// whatever bytes (UTF-8 continuation bytes included) surround it.
        #[test]
        fn first_special_is_the_first_special_byte(w in any::<[u8; 8]>()) {
            let expected = w.iter().position(|&c| c == b'"' || c == b'\\' || c < 0x20);
            prop_assert_eq!(first_special(u64::from_le_bytes(w)), expected);
        }
    }

    fn list<'a>(b: &'a ScannedBody<'a>) -> (&'a [ScannedEvent<'a>], bool, &'a str) {
        match &b.events {
            Some(EventsField::List {
                events,
                any_invalid,
                text,
            }) => (events, *any_invalid, text),
            other => panic!("not a list: {other:?}"),
        }
    }

    #[test]
    fn picks_fields_and_longest_string() {
        let long = "x".repeat(1_100);
        let text = format!(
            r#"{{"user_id":"user-1","time":"2024-01-01","event_properties":{{"a":["{long}"]}},"insert_id":"i\"d","$skip_user_properties_sync":true}}"#
        );
        let e = scan_event(&text).unwrap();
        assert_eq!(e.user_id.as_str(), Some("user-1"));
        assert_eq!(e.time.as_str(), Some("2024-01-01"));
        assert_eq!(e.insert_id.as_str(), Some("i\"d"));
        assert!(e.event_type.is_absent());
        assert!(e.skip_user_properties_sync);
        assert_eq!(e.max_string_chars, 1_100);
        assert_eq!(e.longest_field.as_deref(), Some("event_properties"));
        assert_eq!(
            e.event_properties,
            Some(format!(r#"{{"a":["{long}"]}}"#).as_str())
        );
        assert_eq!(e.raw, text);
    }

    #[test]
    fn long_strings_are_measured_in_characters_wherever_they_are() {
        // 1,024 characters in a nested property: exactly the limit, not over it
        let s = "y".repeat(1_024);
        let t = format!(r#"{{"p":{{"k":["{s}"]}}}}"#);
        assert_eq!(scan_event(&t).unwrap().max_string_chars, 1_024);
        // one more: over the limit, named by its top-level field
        let s = "y".repeat(1_025);
        let t = format!(r#"{{"a":1,"p":{{"k":["{s}"]}}}}"#);
        let e = scan_event(&t).unwrap();
        assert_eq!(
            (e.max_string_chars, e.longest_field.as_deref()),
            (1_025, Some("p"))
        );
        // spec §3.4: the limit is 1,024 characters, not bytes; escapes count as one
        let s = "é".repeat(1_024);
        let t = format!(r#"{{"event_type":"{s}"}}"#);
        assert_eq!(scan_event(&t).unwrap().max_string_chars, 1_024);
        let s = "\\u00e9".repeat(1_025);
        let t = format!(r#"{{"x":"{s}"}}"#);
        assert_eq!(scan_event(&t).unwrap().max_string_chars, 1_025);
        // keys are not string values
        let k = "k".repeat(2_000);
        let t = format!(r#"{{"p":{{"{k}":1}}}}"#);
        assert!(scan_event(&t).unwrap().max_string_chars <= MAX_STRING_LENGTH);
    }

    #[test]
    fn numbers_are_classified_as_serde_json_reads_them() {
        for (n, want) in [
            ("0", Scalar::Int(0)),
            ("-0", Scalar::Float),
            ("1700000000000", Scalar::Int(1_700_000_000_000)),
            ("-1", Scalar::Int(-1)),
            ("9223372036854775807", Scalar::Int(i64::MAX)),
            ("9223372036854775808", Scalar::Float),
            ("-9223372036854775808", Scalar::Int(i64::MIN)),
            ("-9223372036854775809", Scalar::Float),
            ("99999999999999999999999", Scalar::Float),
            ("1.0", Scalar::Float),
            ("1e3", Scalar::Float),
        ] {
            let t = format!(r#"{{"time":{n}}}"#);
            assert_eq!(scan_event(&t).unwrap().time, want, "{n}");
        }
    }

    #[test]
    fn the_body_is_split_and_its_events_scanned() {
        let text = r#" {"api_key":"K","events" : [ {"a":1} ,{"b":[2, 3]}, 7  ] ,"options":{"min_id_length":3},"x":null} "#;
        let b = scan_body(text).unwrap();
        assert_eq!(b.api_key.as_deref(), Some("K"));
        assert_eq!(b.min_id_length, Some(3));
        let (events, any_invalid, events_text) = list(&b);
        assert_eq!(events_text, r#"[ {"a":1} ,{"b":[2, 3]}, 7  ]"#);
        let raws: Vec<_> = events.iter().map(|e| (e.raw, e.invalid)).collect();
        assert_eq!(
            raws,
            [
                (r#"{"a":1}"#, false),
                (r#"{"b":[2, 3]}"#, false),
                ("7", true)
            ]
        );
        assert!(any_invalid);
    }

    #[test]
    fn what_the_body_cannot_be() {
        // spec §14 item 4: missing `events` (absent or null) vs not an array
        let b = scan_body(r#"{"api_key":null,"events":null}"#).unwrap();
        assert!(b.api_key.is_none() && b.events.is_none());
        let b = scan_body(r#"{"events":{"a":[1]}}"#).unwrap();
        assert!(matches!(b.events, Some(EventsField::NotList)));
        for bad in [
            "",
            "[]",
            "\"s\"",
            r#"{"api_key":"K","events":[{"a":}]}"#,
            r#"{"api_key":"K","api_key":"L"}"#,
            r#"{"events":[],"events":[]}"#,
            r#"{"api_key":5}"#,
            r#"{"api_key":"\ud800"}"#,
            r#"{"api_key":"K"} x"#,
            r#"{"api_key":"K",}"#,
            r#"{"events":[1,]}"#,
        ] {
            assert!(scan_body(bad).is_err(), "{bad}");
        }
        // a lone surrogate in an event's picked string makes the event invalid
        let b = scan_body(r#"{"events":[{"user_id":"\udc00"}]}"#).unwrap();
        assert!(list(&b).1);
        // options that are not an object, or not an integer, are ignored
        for t in [r#"{"options":[1]}"#, r#"{"options":{"min_id_length":-1}}"#] {
            assert_eq!(scan_body(t).unwrap().min_id_length, None, "{t}");
        }
    }

    /// Random JSON-ish text: valid values and small corruptions of them.
    fn json_text() -> impl Strategy<Value = String> {
        let leaf = prop_oneof![
            Just("null".to_owned()),
            Just("true".to_owned()),
            Just("false".to_owned()),
            any::<i64>().prop_map(|n| n.to_string()),
            any::<f64>()
                .prop_filter("finite", |f| f.is_finite())
                .prop_map(|f| format!("{f:e}")),
            "[a-z\\\\\"\u{e9}\u{1}]{0,6}".prop_map(|s| format!("\"{s}\"")),
            Just("\"\\u00e9\\n\"".to_owned()),
            Just("\"\\ud800\"".to_owned()),
            Just("\"\\x\"".to_owned()),
            Just("01".to_owned()),
            Just("-".to_owned()),
            Just("1.".to_owned()),
            Just("1e+".to_owned()),
        ];
        leaf.prop_recursive(4, 24, 4, |inner| {
            prop_oneof![
                prop::collection::vec(inner.clone(), 0..4)
                    .prop_map(|v| format!("[{}]", v.join(","))),
                prop::collection::vec(("[a-z_]{1,8}", inner.clone()), 0..4).prop_map(|v| {
                    let members: Vec<String> = v
                        .into_iter()
                        .map(|(k, x)| format!("\"{k}\" : {x}"))
                        .collect();
                    format!("{{ {} }}", members.join(","))
                }),
                prop::collection::vec(inner, 1..3).prop_map(|v| format!("[{},]", v.join(","))),
            ]
        })
    }

    proptest! {
        /// The grammar the scan accepts is exactly serde_json's (its skipping tokenizer, what
        /// the mock accepted before the one-pass scan).
        #[test]
        fn accepts_exactly_what_serde_json_skips(v in json_text(), cut in 0usize..64) {
            for text in [v.clone(), v.get(..cut.min(v.len())).unwrap_or("").to_owned()] {
                let body = format!(r#"{{"api_key":"K","events":[{text}],"x":{text}}}"#);
                let ours = scan_body(&body).is_ok();
                let theirs = serde_json::from_str::<serde::de::IgnoredAny>(&body).is_ok();
                prop_assert_eq!(ours, theirs, "{}", body);
            }
        }

        /// Fields picked from an event object are what serde_json reads there.
        #[test]
        fn picked_fields_match_serde_json(
            user in proptest::option::of("[a-zA-Z0-9 \u{e9}\"\\\\]{0,12}"),
            time in proptest::option::of(any::<i64>()),
            props in proptest::option::of(prop::collection::btree_map("[a-z]{1,4}", any::<u32>(), 0..3)),
        ) {
            let mut m = serde_json::Map::new();
            if let Some(u) = &user { m.insert("user_id".into(), u.clone().into()); }
            if let Some(t) = time { m.insert("time".into(), t.into()); }
            if let Some(p) = &props { m.insert("event_properties".into(), serde_json::to_value(p).unwrap()); }
            let text = serde_json::Value::Object(m).to_string();
            let e = scan_event(&text).unwrap();
            prop_assert_eq!(e.user_id.as_str(), user.as_deref());
            prop_assert_eq!(e.time.clone(), time.map_or(Scalar::Absent, Scalar::Int));
            let got: Option<serde_json::Value> =
                e.event_properties.map(|r| serde_json::from_str(r).unwrap());
            prop_assert_eq!(got, props.map(|p| serde_json::to_value(p).unwrap()));
        }
    }
}
