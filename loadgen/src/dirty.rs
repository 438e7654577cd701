//! Dirty data: shares of events made invalid on purpose (spec §3.4) or re-sent.
//!
//! Each synthesized event gets at most one defect: one uniform draw is compared against the
//! shares laid end to end in the order of [`Dirty`]'s fields. A defective event (other than
//! a re-send) carries `event_properties.conformance_defect` naming its defect.

use crate::random::{filler, unit};
use crate::units::format_iso8601_ms;
use amplitude_wire::limits::{INVALID_ID_VALUES, MAX_STRING_LENGTH};
use amplitude_wire::Event;
use rand::RngCore;
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// The `[dirty]` table: shares (0..=1) of events with each defect; their sum must be ≤ 1.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Dirty {
    /// `user_id` (or `device_id` when there is no user) shorter than 5 characters.
    pub short_id: f64,
    /// `user_id` (or `device_id`) set to a value Amplitude rejects, e.g. `"null"`.
    pub reserved_id: f64,
    /// `time` as an ISO-8601 string instead of integer ms.
    pub iso_time: f64,
    /// No `event_type`.
    pub missing_event_type: f64,
    /// A property string longer than 1,024 characters.
    pub oversized_string: f64,
    /// A byte-identical re-send of a recent event that has an `insert_id` (same
    /// `conformance_seq`, same `insert_id`): Amplitude should deduplicate it (spec §9).
    pub resend: f64,
}

/// The defect of one generated event.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "kind")]
pub enum Defect {
    /// Id shorter than the minimum length (spec §3.4): the request gets a 400.
    ShortId,
    /// Id in the invalid-values list (spec §3.4): the request gets a 400.
    ReservedId,
    /// `time` is a string (spec §3.4): the request gets a 400.
    IsoTime,
    /// `event_type` missing (spec §3.2): the request gets a 400.
    MissingEventType,
    /// A string over 1,024 characters (spec §3.4; server behaviour UNCERTAIN).
    OversizedString,
    /// A re-send of the event at stream position `of_index`.
    Resend {
        /// Stream position ([`crate::GeneratedEvent::index`]) of the original.
        of_index: u64,
    },
}

impl Defect {
    /// Short name, as written into `event_properties.conformance_defect`.
    pub fn name(self) -> &'static str {
        match self {
            Defect::ShortId => "short_id",
            Defect::ReservedId => "reserved_id",
            Defect::IsoTime => "iso_time",
            Defect::MissingEventType => "missing_event_type",
            Defect::OversizedString => "oversized_string",
            Defect::Resend { .. } => "resend",
        }
    }

    /// True when Amplitude rejects an event with this defect with a 400 (spec §3.4):
    /// short or reserved ids, ISO `time`, missing `event_type`.
    pub fn is_invalid(self) -> bool {
        matches!(
            self,
            Defect::ShortId | Defect::ReservedId | Defect::IsoTime | Defect::MissingEventType
        )
    }
}

/// What one draw decided.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Draw {
    Clean,
    Mutate(Defect),
    Resend,
}

impl Dirty {
    pub(crate) fn validate(&self) -> Result<(), (String, String)> {
        let fields = [
            ("short_id", self.short_id),
            ("reserved_id", self.reserved_id),
            ("iso_time", self.iso_time),
            ("missing_event_type", self.missing_event_type),
            ("oversized_string", self.oversized_string),
            ("resend", self.resend),
        ];
        for (name, v) in fields {
            if !(0.0..=1.0).contains(&v) {
                return Err((
                    name.into(),
                    format!("must be a share between 0 and 1, got {v}"),
                ));
            }
        }
        let sum: f64 = fields.iter().map(|f| f.1).sum();
        if sum > 1.0 + 1e-9 {
            return Err((
                "resend".into(),
                format!("the dirty shares add up to {sum} > 1"),
            ));
        }
        Ok(())
    }

    /// True when no defect has a positive share.
    pub fn is_clean(&self) -> bool {
        self.short_id
            + self.reserved_id
            + self.iso_time
            + self.missing_event_type
            + self.oversized_string
            + self.resend
            == 0.0
    }

    /// One draw from `rng` (always consumes exactly one `u64`).
    pub(crate) fn draw(&self, rng: &mut impl RngCore) -> Draw {
        let u = unit(rng);
        let table = [
            (self.short_id, Draw::Mutate(Defect::ShortId)),
            (self.reserved_id, Draw::Mutate(Defect::ReservedId)),
            (self.iso_time, Draw::Mutate(Defect::IsoTime)),
            (
                self.missing_event_type,
                Draw::Mutate(Defect::MissingEventType),
            ),
            (self.oversized_string, Draw::Mutate(Defect::OversizedString)),
            (self.resend, Draw::Resend),
        ];
        let mut acc = 0.0;
        for (share, d) in table {
            acc += share;
            if u < acc {
                return d;
            }
        }
        Draw::Clean
    }
}

/// Applies `defect` to `event` (never `Resend`, which the generator handles).
pub(crate) fn apply(event: &mut Event, defect: Defect, epoch_ms: i64, rng: &mut impl RngCore) {
    match defect {
        Defect::ShortId => {
            let short = format!("u{}", rng.next_u64() % 1_000);
            if event.user_id.is_some() {
                event.user_id = Some(short);
            } else {
                event.device_id = Some(short);
            }
        }
        Defect::ReservedId => {
            let v = INVALID_ID_VALUES[(rng.next_u64() % INVALID_ID_VALUES.len() as u64) as usize];
            if event.user_id.is_some() {
                event.user_id = Some(v.to_owned());
            } else {
                event.device_id = Some(v.to_owned());
            }
        }
        Defect::IsoTime => {
            event.time = None;
            event
                .extra
                .insert("time".into(), Value::String(format_iso8601_ms(epoch_ms)));
        }
        Defect::MissingEventType => event.event_type = None,
        Defect::OversizedString => {
            let len = MAX_STRING_LENGTH + 1 + (rng.next_u64() % 1_024) as usize;
            let s = filler(rng, len);
            event
                .event_properties
                .get_or_insert_with(Default::default)
                .insert("oversized".into(), Value::String(s));
        }
        Defect::Resend { .. } => {}
    }
    event
        .event_properties
        .get_or_insert_with(Default::default)
        .insert(
            "conformance_defect".into(),
            Value::String(defect.name().into()),
        );
}
