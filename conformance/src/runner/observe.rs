//! Turns the mock's ledger and journal into the checker's [`Observation`].

use crate::check::{Attempted, Deduplicated, Observation, Request, SentEvent, Stored};
use amplitude_loadgen::GeneratedEvent;
use amplitude_mock::{JournalEntry, MockState, StoredEvent};
use amplitude_wire::ResponseBody;
use serde::Deserialize;
use serde_json::value::RawValue;

#[derive(Deserialize, Default)]
struct Ids {
    #[serde(default)]
    insert_id: Option<serde_json::Value>,
    #[serde(default)]
    device_id: Option<serde_json::Value>,
    #[serde(default)]
    user_id: Option<serde_json::Value>,
    #[serde(default)]
    event_properties: Option<Props>,
}

#[derive(Deserialize, Default)]
struct Props {
    #[serde(default)]
    conformance_seq: Option<serde_json::Value>,
}

fn string(v: Option<serde_json::Value>) -> Option<String> {
    match v? {
        serde_json::Value::String(s) => Some(s),
        _ => None,
    }
}

fn sent_event(raw: &str) -> SentEvent {
    let ids: Ids = serde_json::from_str(raw).unwrap_or_default();
    SentEvent {
        seq: ids
            .event_properties
            .and_then(|p| p.conformance_seq)
            .and_then(|v| v.as_u64()),
        insert_id: string(ids.insert_id),
        device_id: string(ids.device_id),
        user_id: string(ids.user_id),
    }
}

fn stored(e: &StoredEvent) -> Stored {
    let s = sent_event(e.event.get());
    Stored {
        storage_seq: e.seq,
        request_id: e.request_id,
        at_ms: e.server_upload_time,
        seq: s.seq,
        insert_id: s.insert_id,
        device_id: s.device_id,
        user_id: s.user_id,
    }
}

fn request(j: &JournalEntry) -> Request {
    let events = j
        .events_json
        .as_ref()
        .and_then(|raw| serde_json::from_str::<Vec<&RawValue>>(raw.get()).ok())
        .map(|evs| evs.iter().map(|e| sent_event(e.get())).collect())
        .unwrap_or_default();
    Request {
        id: j.id,
        at_ms: j.at_ms,
        path: j.path.clone().into_owned(),
        status: j.status,
        fault: j.fault.clone(),
        committed: j.fault.is_some() && j.stored > 0,
        body_bytes: j.body_bytes,
        events,
        response: serde_json::from_slice::<ResponseBody>(&j.response).ok(),
    }
}

/// The application's events as ground truth; `start_ms` is the mock-clock time of offset 0.
pub fn attempted(events: &[GeneratedEvent], start_ms: i64) -> Vec<Attempted> {
    events
        .iter()
        .map(|g| Attempted {
            seq: g.seq,
            produced_at_ms: start_ms + g.offset_ms() as i64,
            device_id: g.event.device_id.clone(),
            user_id: g.event.user_id.clone(),
            invalid: g.defect.is_some_and(|d| d.is_invalid()),
            has_user_properties: g.event.user_properties.is_some(),
            bytes: g.to_json().map_or(0, |j| j.len()),
        })
        .collect()
}

/// Reads everything the mock knows about the run.
pub fn observe(state: &MockState, attempted: Vec<Attempted>, endpoint_path: &str) -> Observation {
    let ledger = state.ledger();
    let requests: Vec<Request> = ledger
        .requests(None)
        .iter()
        .filter(|j| j.path == endpoint_path || j.path == "/2/httpapi" || j.path == "/batch")
        .map(request)
        .collect();
    Observation {
        attempted,
        stored: ledger
            .events(&amplitude_mock::EventFilter::default())
            .iter()
            .map(stored)
            .collect(),
        requests,
        deduplicated: ledger
            .duplicates()
            .iter()
            .map(|d| Deduplicated {
                request_id: d.request_id,
                index: d.index,
            })
            .collect(),
        property_drops: ledger
            .property_drops()
            .iter()
            .filter_map(|d| d.seq)
            .collect(),
        outcomes: Vec::new(),
        sender_exited: true,
        endpoint_path: endpoint_path.to_owned(),
        expect: crate::check::Expectation::Delivered,
        max_body_bytes: 0,
        max_events_per_request: 0,
        restarts: Vec::new(),
    }
}
