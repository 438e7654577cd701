//! What the checker reads: the events the application produced (ground truth), what the mock
//! stored and did (its ledger and request journal), and what the sender said about each event.
//! All times are ms on the mock's clock unless a field says otherwise.

use amplitude_wire::ResponseBody;
use serde::{Deserialize, Serialize};

/// One logical event the application produced, keyed by `conformance_seq`.
#[derive(Debug, Clone, PartialEq)]
pub struct Attempted {
    /// Ground-truth sequence number (`event_properties.conformance_seq`).
    pub seq: u64,
    /// When the application produced it, ms on the mock clock.
    pub produced_at_ms: i64,
    /// `device_id` as produced.
    pub device_id: Option<String>,
    /// `user_id` as produced.
    pub user_id: Option<String>,
    /// Amplitude rejects it with a 400 (spec §3.4): the sender must drop or dead-letter it.
    pub invalid: bool,
    /// It carries `user_properties` (counts toward the 1,800/hour cap, spec §8.1).
    pub has_user_properties: bool,
    /// Size of the event's JSON as the application produced it, bytes: an event that alone
    /// makes a request body over the endpoint's size limit can never be delivered (spec §3.4).
    pub bytes: usize,
}

/// One event the mock stored.
#[derive(Debug, Clone, PartialEq)]
pub struct Stored {
    /// Storage order in the mock.
    pub storage_seq: u64,
    /// Request it came in.
    pub request_id: u64,
    /// `server_upload_time`, ms.
    pub at_ms: i64,
    /// Its `conformance_seq`, when it has one.
    pub seq: Option<u64>,
    /// Its `insert_id`.
    pub insert_id: Option<String>,
    /// Its `device_id`.
    pub device_id: Option<String>,
    /// Its `user_id`.
    pub user_id: Option<String>,
}

/// One event inside a request the sender made.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct SentEvent {
    /// Its `conformance_seq`.
    pub seq: Option<u64>,
    /// Its `insert_id`.
    pub insert_id: Option<String>,
    /// Its `device_id`.
    pub device_id: Option<String>,
    /// Its `user_id`.
    pub user_id: Option<String>,
}

/// One request the mock received, from its journal.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Request {
    /// Journal id (increasing in arrival order).
    pub id: u64,
    /// When the mock handled it, ms.
    pub at_ms: i64,
    /// Path, e.g. `/2/httpapi`.
    pub path: String,
    /// HTTP status answered; 0 when the connection was cut (fault).
    pub status: u16,
    /// Fault injected into it, if any.
    pub fault: Option<String>,
    /// Events were stored despite a failure status (a committed 5xx, spec §5.5).
    pub committed: bool,
    /// Raw body length, bytes.
    pub body_bytes: usize,
    /// The events it carried (empty when the body did not parse).
    pub events: Vec<SentEvent>,
    /// The parsed JSON response, when it was JSON.
    pub response: Option<ResponseBody>,
}

/// A deduplicated copy: the event at `index` of request `request_id` (spec §9).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Deduplicated {
    /// The request.
    pub request_id: u64,
    /// Index in its events.
    pub index: usize,
}

/// A sender's own report on one event (the contract's optional stdout lines).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SenderOutcome {
    /// `conformance_seq`.
    pub seq: u64,
    /// `delivered`, `dropped`, or `held` (still in the sender's durable queue when it exited,
    /// contract version 2).
    pub outcome: String,
    /// Why, for drops.
    #[serde(default)]
    pub reason: Option<String>,
}

/// Everything one scenario run produced.
#[derive(Debug, Clone, Default)]
pub struct Observation {
    /// Logical events, in application order.
    pub attempted: Vec<Attempted>,
    /// Stored events, in storage order.
    pub stored: Vec<Stored>,
    /// Requests, in arrival order.
    pub requests: Vec<Request>,
    /// Deduplicated copies.
    pub deduplicated: Vec<Deduplicated>,
    /// `storage_seq` of stored events whose user-property update was silently dropped.
    pub property_drops: Vec<u64>,
    /// The sender's outcome lines.
    pub outcomes: Vec<SenderOutcome>,
    /// The sender exited by itself (false: killed at the deadline).
    pub sender_exited: bool,
    /// Path of the scenario's endpoint (`/2/httpapi` or `/batch`): ordering is checked only
    /// for HTTP V2 (spec §9).
    pub endpoint_path: String,
    /// What the scenario declares as the only possible outcome (`[conformance] expect`).
    pub expect: Expectation,
    /// The mock's body-size limit for the scenario's endpoint, bytes (0: the documented one,
    /// 1 MB for HTTP V2, 20 MB for `/batch`, spec §3.4).
    pub max_body_bytes: usize,
    /// The mock's event-count limit per request (0: the documented 2,000, spec §3.4; a
    /// scenario may lower it with the mock's `max_events_per_request` knob).
    pub max_events_per_request: usize,
    /// The sender's crash-restarts, in order (contract version 3; empty without).
    pub restarts: Vec<Restart>,
}

/// One crash-restart of the sender (contract version 3): its process group was SIGKILLed and
/// it was started again on the same state directory.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Restart {
    /// 1-based.
    pub number: u32,
    /// When the old process was killed and reaped, ms on the mock clock: the line between
    /// its requests and the next process's (at or after the due time, later on a busy
    /// machine).
    pub at_ms: i64,
    /// When the restart was due, ms since the start of the run (what explanations quote:
    /// "killed at 1.5 s").
    pub at_run_ms: u64,
    /// `conformance_seq` of every event written to the killed process's stdin.
    pub fed: Vec<u64>,
    /// The killed process had already exited by itself.
    pub had_exited: bool,
}

impl Observation {
    /// The body-size limit of the scenario's endpoint, bytes.
    pub fn max_body_bytes(&self) -> usize {
        match self.max_body_bytes {
            0 => amplitude_wire::Endpoint::from_path(&self.endpoint_path)
                .unwrap_or_default()
                .max_body_bytes(),
            n => n,
        }
    }

    /// The event-count limit per request.
    pub fn max_events_per_request(&self) -> usize {
        match self.max_events_per_request {
            0 => amplitude_wire::limits::MAX_EVENTS_PER_REQUEST,
            n => n,
        }
    }
}

/// The outcome a scenario declares for every event (`[conformance] expect`): some runs make
/// delivery impossible for any sender, and the checker then asks other questions (was each
/// event reported, was none resent).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Expectation {
    /// Every valid event can be delivered (the default).
    #[default]
    Delivered,
    /// The sender's API key is unknown to the project or belongs to the other region
    /// (spec §1.1, §5.1): every event is rejected with `Invalid API key`.
    AllRejectedInvalidKey,
}
