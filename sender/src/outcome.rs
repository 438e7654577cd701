//! Per-event outcomes the sender reports, and their JSON Lines form of the third-party sender
//! contract (docs/sender-contract.md):
//! `{"seq":N,"outcome":"delivered"|"dropped"|"held","reason":"..."}` (a dead-lettered event is
//! `dropped` on that line).

use super::event::EventKey;

/// What finally happened to one accepted event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OutcomeKind {
    /// A 200 covered it (spec §4).
    Delivered,
    /// Not sent and not kept, with the reason: today a `$set`-only `$identify` coalesced into
    /// an earlier one (`coalesce_set_identify`). Its content lives on in the other event.
    Dropped(String),
    /// Refused for good (spec §5) or not an event at all: written with the reason to the
    /// state directory's `dead_letters.jsonl` (fsync'd) and never resent.
    DeadLettered(String),
    /// Still in the durable queue when the sender exited (drain deadline, exit control
    /// line): not lost, a restart on the same state directory sends it. The reason says why.
    Held(String),
}

/// The final outcome of one event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outcome {
    /// Queue key; `None` for an input line that never became an event.
    pub key: Option<EventKey>,
    /// `event_properties.conformance_seq`, if the event had one.
    pub seq: Option<i64>,
    /// The event's `insert_id` (empty for unparsable input).
    pub insert_id: String,
    /// Delivered, dropped or held.
    pub kind: OutcomeKind,
}

impl Outcome {
    /// The contract's stdout line (with a trailing newline), or `None` without a `seq`.
    pub fn to_line(&self) -> Option<String> {
        let seq = self.seq?;
        Some(match &self.kind {
            OutcomeKind::Delivered => format!("{{\"seq\":{seq},\"outcome\":\"delivered\"}}\n"),
            OutcomeKind::Dropped(r) | OutcomeKind::DeadLettered(r) => format!(
                "{{\"seq\":{seq},\"outcome\":\"dropped\",\"reason\":{}}}\n",
                serde_json::Value::String(r.clone())
            ),
            OutcomeKind::Held(r) => format!(
                "{{\"seq\":{seq},\"outcome\":\"held\",\"reason\":{}}}\n",
                serde_json::Value::String(r.clone())
            ),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn lines_follow_the_contract() {
        let d = Outcome {
            key: Some(1),
            seq: Some(4),
            insert_id: "i".into(),
            kind: OutcomeKind::Delivered,
        };
        assert_eq!(
            d.to_line().as_deref(),
            Some("{\"seq\":4,\"outcome\":\"delivered\"}\n")
        );
        let x = Outcome {
            key: None,
            seq: Some(5),
            insert_id: String::new(),
            kind: OutcomeKind::DeadLettered("bad".into()),
        };
        let v: serde_json::Value = serde_json::from_str(&x.to_line().unwrap()).unwrap();
        assert_eq!(v, json!({"seq":5,"outcome":"dropped","reason":"bad"}));
        let h = Outcome {
            kind: OutcomeKind::Held("in the durable queue at exit (x)".into()),
            ..x.clone()
        };
        assert_eq!(
            h.to_line().as_deref(),
            Some("{\"seq\":5,\"outcome\":\"held\",\"reason\":\"in the durable queue at exit (x)\"}\n")
        );
        assert_eq!(Outcome { seq: None, ..d }.to_line(), None);
    }
}
