//! Per-event validation of HTTP V2 / Batch uploads (spec §3.4, §5.1, §14 item 4). Every
//! offending index is collected (or only the first, per the profile), and the request is
//! rejected whole (spec §6).

use crate::ledger::RejectReason;
use crate::profile::{FidelityProfile, IndexLists, LongStringPolicy, ShortIdPolicy};
use crate::scan::{Scalar, ScannedEvent};
use amplitude_wire::limits::{self as wl, INVALID_ID_VALUES, RESERVED_EVENT_TYPES};
use amplitude_wire::{error_text, IndexMap, ResponseBody};

/// What the mock must change in an accepted event before storing it.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Fixes {
    /// Cut strings to 1,024 characters (spec §3.4, profile `long_strings = "truncate"`).
    pub truncate: bool,
    /// Remove a too-short `user_id` (profile `short_id_policy = "strip"`).
    pub strip_user_id: bool,
    /// Remove a too-short `device_id`.
    pub strip_device_id: bool,
}

impl Fixes {
    /// True when the event is stored exactly as sent.
    pub fn none(&self) -> bool {
        !(self.truncate || self.strip_user_id || self.strip_device_id)
    }
}

/// Offending event indexes of one request, by body field.
#[derive(Debug, Default)]
pub struct Issues {
    missing: IndexMap,
    invalid: IndexMap,
    id_lengths: IndexMap,
}

fn push(map: &mut IndexMap, field: &str, index: usize, lists: IndexLists) {
    let v = map.entry(field.to_owned()).or_default();
    if lists == IndexLists::All || v.is_empty() {
        v.push(index);
    }
}

fn is_object(raw: Option<&str>) -> bool {
    raw.is_none_or(|r| r.starts_with('{'))
}

/// True when `id` has fewer than `min_id_length` characters (spec §3.4 `min_id_length`).
/// Counts characters only when the byte length leaves it open: a character is 1 to 4 bytes.
fn is_short(id: &str, min_id_length: usize) -> bool {
    if id.len() < min_id_length {
        return true;
    }
    id.len() < min_id_length.saturating_mul(4) && id.chars().count() < min_id_length
}

fn invalid_id(id: &str, profile: &FidelityProfile) -> bool {
    if profile.invalid_ids_case_insensitive {
        wl::is_invalid_id_value(id)
    } else {
        INVALID_ID_VALUES.contains(&id)
    }
}

impl Issues {
    /// Checks event `index` against the rules; records its problems and returns the fixes it
    /// needs if the request is accepted. `min_id_length` is the request's
    /// `options.min_id_length` or 5 (spec §3.4).
    pub fn check(
        &mut self,
        index: usize,
        ev: &ScannedEvent<'_>,
        min_id_length: usize,
        profile: &FidelityProfile,
    ) -> Fixes {
        let lists = profile.index_lists;
        let mut fixes = Fixes::default();
        match &ev.event_type {
            Scalar::Absent => push(&mut self.missing, "event_type", index, lists),
            Scalar::Str(t) => {
                if profile.reject_reserved_event_types && RESERVED_EVENT_TYPES.contains(&t.as_ref())
                {
                    push(&mut self.invalid, "event_type", index, lists);
                }
            }
            _ => push(&mut self.invalid, "event_type", index, lists),
        }
        let mut has_id = false;
        let mut id_issue = false;
        for (name, id, strip) in [
            ("user_id", &ev.user_id, &mut fixes.strip_user_id),
            ("device_id", &ev.device_id, &mut fixes.strip_device_id),
        ] {
            let Scalar::Str(s) = id else {
                if !id.is_absent() {
                    id_issue = true;
                    push(&mut self.invalid, name, index, lists);
                }
                continue;
            };
            if invalid_id(s, profile) {
                id_issue = true;
                push(&mut self.invalid, name, index, lists);
            } else if is_short(s, min_id_length) {
                match profile.short_id_policy {
                    ShortIdPolicy::Reject => {
                        id_issue = true;
                        push(&mut self.id_lengths, name, index, lists);
                    }
                    ShortIdPolicy::Strip => *strip = true,
                }
            } else {
                has_id = true;
            }
        }
        if !has_id && !id_issue {
            // spec §3.2: one of user_id or device_id is required (§3.4: a stripped short id
            // leaves the event without one)
            push(&mut self.missing, "device_id", index, lists);
        }
        for (name, v) in [
            ("time", &ev.time),
            ("session_id", &ev.session_id),
            ("event_id", &ev.event_id),
        ] {
            if !matches!(v, Scalar::Absent | Scalar::Int(_)) {
                push(&mut self.invalid, name, index, lists);
            }
        }
        if !matches!(ev.insert_id, Scalar::Absent | Scalar::Str(_)) {
            push(&mut self.invalid, "insert_id", index, lists);
        }
        for (name, raw) in [
            ("user_properties", ev.user_properties),
            ("event_properties", ev.event_properties),
            ("groups", ev.groups),
            ("group_properties", ev.group_properties),
        ] {
            if !is_object(raw) {
                push(&mut self.invalid, name, index, lists);
            }
        }
        if ev.max_string_chars > wl::MAX_STRING_LENGTH {
            match profile.long_strings {
                LongStringPolicy::Truncate => fixes.truncate = true,
                LongStringPolicy::Reject => {
                    let field = ev.longest_field.as_deref().unwrap_or("event_properties");
                    push(&mut self.invalid, field, index, lists);
                }
            }
        }
        fixes
    }

    /// The 400 body for these issues, or `None` when every event passed (spec §5.1).
    pub fn into_response(self) -> Option<(ResponseBody, RejectReason)> {
        let (text, reason) = if !self.missing.is_empty() {
            (error_text::MISSING_FIELD, RejectReason::MissingEventFields)
        } else if !self.invalid.is_empty() {
            (error_text::INVALID_FIELDS, RejectReason::InvalidFields)
        } else if !self.id_lengths.is_empty() {
            (error_text::INVALID_ID_LENGTH, RejectReason::InvalidIdLength)
        } else {
            return None;
        };
        let nonempty = |m: IndexMap| (!m.is_empty()).then_some(m);
        Some((
            ResponseBody {
                events_with_missing_fields: nonempty(self.missing),
                events_with_invalid_fields: nonempty(self.invalid),
                events_with_invalid_id_lengths: nonempty(self.id_lengths),
                ..ResponseBody::error(400, text)
            },
            reason,
        ))
    }
}

/// Applies `fixes` to an event, returning the JSON to store (spec §3.4).
pub fn apply_fixes(raw: &str, fixes: Fixes) -> Result<String, serde_json::Error> {
    let mut v: serde_json::Value = serde_json::from_str(raw)?;
    if let serde_json::Value::Object(m) = &mut v {
        if fixes.strip_user_id {
            m.remove("user_id");
        }
        if fixes.strip_device_id {
            m.remove("device_id");
        }
    }
    if fixes.truncate {
        truncate_strings(&mut v, wl::MAX_STRING_LENGTH);
    }
    serde_json::to_string(&v)
}

fn truncate_strings(v: &mut serde_json::Value, max: usize) {
    match v {
        serde_json::Value::String(s) => {
            if let Some((at, _)) = s.char_indices().nth(max) {
                s.truncate(at);
            }
        }
        serde_json::Value::Array(a) => a.iter_mut().for_each(|x| truncate_strings(x, max)),
        serde_json::Value::Object(m) => m.values_mut().for_each(|x| truncate_strings(x, max)),
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::is_short;

    #[test]
    fn short_ids_are_counted_in_characters_not_bytes() {
        // spec §3.4 `min_id_length` counts characters: "éééé" is 8 bytes but 4 characters.
        assert!(is_short("éééé", 5));
        assert!(!is_short("ééééé", 5));
        assert!(is_short("abcd", 5));
        assert!(!is_short("abcde", 5));
        // 4-byte characters: 16 bytes, 4 characters.
        assert!(is_short("😀😀😀😀", 5));
        // Long enough in bytes that no count is needed, and long enough in characters.
        assert!(!is_short("device-000000000001", 5));
        assert!(!is_short("x", 0));
    }
}
