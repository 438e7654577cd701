//! The ingestion route family, `POST /2/httpapi` and `POST /batch`: [`upload`] answers a
//! received request; [`ingest`] is the pipeline, socket-free: body bytes in, Amplitude's
//! status and body out, the ledger updated. Validation order of spec §14 item 4:
//! body present → JSON valid → `api_key` present → key known → `events` present → count
//! (413) → per-event validation → silenced devices (400) → daily quota / EPS (429) → accept.
//! On any non-200 nothing is stored (spec §6).

use crate::clock::Clock;
use crate::dedup::fingerprint;
use crate::event_json::EventJson;
use crate::http_util::amplitude_response;
use crate::http_util::body::BodyError;
use crate::ledger::{NewEvent, PropertyDropRecord, RejectReason};
use crate::profile::DedupKey;
use crate::projects::{redact_key, Project, Region};
use crate::properties::PropertyConfig;
use crate::routes::exchange::{Handled, Received};
use crate::scan::{scan_body, EventsField, ScannedBody, ScannedEvent};
use crate::state::MockState;
use crate::steps::{
    apply_user_properties, limit_config, property_config, throttle, ForcedThrottle,
};
use crate::validate::{apply_fixes, Fixes, Issues};
use amplitude_wire::Api;
use amplitude_wire::{error_text, limits as wl, ResponseBody};
use bytes::Bytes;
use serde_json::value::RawValue;
use std::collections::BTreeSet;
use std::sync::Arc;

/// What the pipeline decided for one request.
#[derive(Debug)]
pub struct Outcome {
    /// The body to answer with; its `code` is the HTTP status.
    pub body: ResponseBody,
    /// Why the request was rejected, when it was.
    pub reason: Option<RejectReason>,
    /// Events in the request (0 when not parsed that far).
    pub events: usize,
    /// Events stored.
    pub stored: usize,
    /// Events deduplicated.
    pub deduplicated: usize,
    /// The API key as sent, when there was one (redact before logging).
    pub api_key: Option<String>,
    /// The request's `events` array, for the journal.
    pub events_json: Option<Box<RawValue>>,
}

impl Outcome {
    fn reject(body: ResponseBody, reason: RejectReason, events: usize) -> Self {
        Self {
            body,
            reason: Some(reason),
            events,
            stored: 0,
            deduplicated: 0,
            api_key: None,
            events_json: None,
        }
    }
}

/// The event's `(user_id, device_id)` after any stripping.
fn id_of<'a>(ev: &'a ScannedEvent<'_>, fixes: &Fixes) -> (Option<&'a str>, Option<&'a str>) {
    let user = (!fixes.strip_user_id)
        .then(|| ev.user_id.as_str())
        .flatten();
    let device = (!fixes.strip_device_id)
        .then(|| ev.device_id.as_str())
        .flatten();
    (user, device)
}

/// The request's `events` array as sent, for the journal (when `journal_bodies` is on).
fn journal_text(state: &MockState, events: Option<&EventsField<'_>>) -> Option<Box<RawValue>> {
    match events {
        Some(EventsField::List { text, .. }) if state.ledger.config().journal_bodies => {
            serde_json::from_str::<&RawValue>(text)
                .ok()
                .map(RawValue::to_owned)
        }
        _ => None,
    }
}

/// Runs one HTTP V2 or Batch upload through the pipeline, socket-free. `body` is the
/// decompressed body (stored events are slices of it, ADR 018); `payload_size_bytes` what
/// the 200 reports (spec §4); `forced`: the identities a `throttle` fault forces into the 429.
pub(crate) fn ingest(
    state: &MockState,
    endpoint: Api,
    region: Region,
    body: &Bytes,
    payload_size_bytes: usize,
    request_id: u64,
    forced: ForcedThrottle<'_>,
) -> Outcome {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Outcome::reject(
            ResponseBody::error(400, error_text::MISSING_REQUEST_BODY),
            RejectReason::MissingBody,
            0,
        );
    }
    let invalid_json = || {
        Outcome::reject(
            ResponseBody::error(400, error_text::INVALID_JSON),
            RejectReason::InvalidJson,
            0,
        )
    };
    let Ok(text) = std::str::from_utf8(body) else {
        return invalid_json();
    };
    // The one pass over the body (ADR 018): everything below reads its result.
    let Ok(upload) = scan_body(text) else {
        return invalid_json();
    };
    // A request refused before its events are read still journals them (nothing is
    // stored or counted): a checker can tell what was sent.
    let Some(api_key) = upload.api_key.as_deref() else {
        let mut o = Outcome::reject(
            ResponseBody::missing_field("api_key"),
            RejectReason::MissingField,
            0,
        );
        o.events_json = journal_text(state, upload.events.as_ref());
        return o;
    };
    let Some(project) = state.projects.lookup(api_key, region) else {
        let mut o = Outcome::reject(
            ResponseBody::invalid_api_key(api_key),
            RejectReason::InvalidApiKey,
            0,
        );
        o.api_key = Some(api_key.to_owned());
        o.events_json = journal_text(state, upload.events.as_ref());
        return o;
    };
    let api_key = api_key.to_owned();
    let mut out = ingest_events(
        state,
        endpoint,
        &project,
        body,
        upload,
        (payload_size_bytes, request_id),
        forced,
    );
    out.api_key = Some(api_key);
    out
}

fn ingest_events(
    state: &MockState,
    endpoint: Api,
    project: &Arc<Project>,
    body: &Bytes,
    upload: ScannedBody<'_>,
    (payload_size_bytes, request_id): (usize, u64),
    forced: ForcedThrottle<'_>,
) -> Outcome {
    let profile = &state.config.profile;
    let mut journal = journal_text(state, upload.events.as_ref());
    let (scanned, any_invalid) = match upload.events {
        None => {
            return Outcome::reject(
                ResponseBody::missing_field("events"),
                RejectReason::MissingField,
                0,
            )
        }
        Some(EventsField::NotList) => {
            return Outcome::reject(
                ResponseBody::error(400, error_text::INVALID_EVENT_JSON),
                RejectReason::InvalidEventJson,
                0,
            )
        }
        Some(EventsField::List {
            events,
            any_invalid,
            ..
        }) => (events, any_invalid),
    };
    let n = scanned.len();
    state.ledger.count_received(n);
    let mut reject = |body, reason| {
        state.ledger.count_rejected(reason, n);
        let mut o = Outcome::reject(body, reason, n);
        o.events_json = journal.take();
        o
    };
    if n == 0 && !profile.accept_empty_events {
        return reject(
            ResponseBody::missing_field("events"),
            RejectReason::MissingField,
        );
    }
    if profile.too_many_events(n, project.limits.max_events_per_request) {
        return reject(
            ResponseBody::payload_too_large(),
            RejectReason::PayloadTooLarge,
        );
    }
    if any_invalid {
        return reject(
            ResponseBody::error(400, error_text::INVALID_EVENT_JSON),
            RejectReason::InvalidEventJson,
        );
    }
    let min_id_length = upload.min_id_length.map_or(wl::DEFAULT_MIN_ID_LENGTH, |v| {
        usize::try_from(v).unwrap_or(usize::MAX)
    });

    // Per-event validation (spec §3.4), on what the scan found.
    let mut issues = Issues::default();
    let fixes: Vec<Fixes> = scanned
        .iter()
        .enumerate()
        .map(|(i, ev)| issues.check(i, ev, min_id_length, profile))
        .collect();
    if let Some((body, reason)) = issues.into_response() {
        return reject(body, reason);
    }

    // Silenced devices (spec §5.1).
    {
        let silenced = state.silenced.read();
        if !silenced.is_empty() {
            let mut devices = BTreeSet::new();
            let mut idx = Vec::new();
            for (i, (ev, fixes)) in scanned.iter().zip(&fixes).enumerate() {
                if let (_, Some(d)) = id_of(ev, fixes) {
                    if silenced.contains(d) {
                        devices.insert(d.to_owned());
                        idx.push(i);
                    }
                }
            }
            if !idx.is_empty() {
                let cfg = limit_config(&project.limits, endpoint);
                let body = ResponseBody {
                    silenced_devices: Some(devices.into_iter().collect()),
                    silenced_events: Some(idx),
                    eps_threshold: Some(u64::from(cfg.eps_threshold)),
                    throttled_devices: Some(Default::default()),
                    throttled_events: Some(Vec::new()),
                    exceeded_daily_quota_devices: Some(Default::default()),
                    ..ResponseBody::error(400, error_text::SILENCED)
                };
                return reject(body, RejectReason::Silenced);
            }
        }
    }

    // Per-identity EPS and daily quota (spec §8, §5.4).
    let now = state.clock.now_ms();
    let ids: Vec<[Option<&str>; 2]> = scanned
        .iter()
        .zip(&fixes)
        .map(|(ev, fixes)| {
            let (user, device) = id_of(ev, fixes);
            [device, user]
        })
        .collect();
    if let Some(limited) = throttle(state, project, endpoint, &ids, forced, now) {
        return reject(limited.body, limited.reason);
    }

    // Accept: dedup (spec §9), user properties (spec §3.3, §8.1), store.
    let pcfg = property_config(project);
    // (text as sent, fingerprint, rewritten text) of each event to store.
    let mut to_store: Vec<(&str, Option<u64>, Option<String>)> = Vec::with_capacity(n);
    let mut drops = Vec::new();
    // (index, insert_id, fingerprint) of the duplicates, recorded once this request's
    // events are stored so that a duplicate of an earlier event of the same request
    // names that event's `seq` (spec §9).
    let mut duplicates: Vec<(usize, &str, u64)> = Vec::new();
    for (i, (ev, fixes)) in scanned.iter().zip(&fixes).enumerate() {
        let (user, device) = id_of(ev, fixes);
        let fp = ev.insert_id.as_str().map(|insert_id| {
            let pid = project.id.to_le_bytes();
            match profile.dedup_key {
                DedupKey::InsertId => fingerprint(&[&pid, insert_id.as_bytes()]),
                DedupKey::InsertIdAndDeviceId => match device {
                    Some(d) => fingerprint(&[&pid, b"d", d.as_bytes(), insert_id.as_bytes()]),
                    None => fingerprint(&[
                        &pid,
                        b"u",
                        user.unwrap_or("").as_bytes(),
                        insert_id.as_bytes(),
                    ]),
                },
            }
        });
        if let (Some(fp), Some(insert_id)) = (fp, ev.insert_id.as_str()) {
            if state.dedup.check_and_insert(fp, now).is_some() {
                duplicates.push((i, insert_id, fp));
                continue;
            }
        }
        apply_properties(
            state,
            project,
            ev,
            user,
            device,
            now,
            &pcfg,
            &mut drops,
            (to_store.len(), i),
        );
        let fixed = if fixes.none() {
            None
        } else {
            apply_fixes(ev.raw, *fixes).ok()
        };
        to_store.push((ev.raw, fp, fixed));
    }
    // Events are kept as slices of the body (no copy each) unless that would pin a body
    // mostly of events not kept (duplicates, rewrites): then each is copied (ADR 018).
    let kept_bytes: usize = to_store
        .iter()
        .filter(|(_, _, fixed)| fixed.is_none())
        .map(|(raw, _, _)| raw.len())
        .sum();
    let share_body = kept_bytes.saturating_mul(2) >= body.len();
    let to_store: Vec<NewEvent> = to_store
        .into_iter()
        .map(|(raw, fingerprint, fixed)| {
            let event = match fixed {
                Some(text) => EventJson::from(text),
                None if share_body => EventJson::in_body(body, raw),
                None => EventJson::copied(raw),
            };
            NewEvent { event, fingerprint }
        })
        .collect();
    let stored = to_store.len();
    let deduplicated = duplicates.len();
    let first_seq = state.ledger.store(
        request_id,
        project.id,
        &project.api_key,
        endpoint,
        now,
        to_store,
    );
    for (i, insert_id, fp) in duplicates {
        state
            .ledger
            .record_duplicate(request_id, i, insert_id, fp, now);
    }
    for (pos, i, amplitude_id) in drops {
        let (Some(ev), Some(fixes)) = (scanned.get(i), fixes.get(i)) else {
            continue;
        };
        let Some(user_properties) = ev
            .user_properties
            .and_then(|up| serde_json::from_str::<&RawValue>(up).ok())
        else {
            continue;
        };
        let (user, device) = id_of(ev, fixes);
        state.ledger.record_property_drop(PropertyDropRecord {
            seq: Some(first_seq + pos as u64),
            request_id,
            endpoint,
            index: i,
            amplitude_id,
            user_id: user.map(str::to_owned),
            device_id: device.map(str::to_owned),
            user_properties: user_properties.to_owned(),
            at_ms: now,
        });
    }
    let ingested = if profile.duplicates_count_as_ingested {
        n
    } else {
        stored
    };
    Outcome {
        body: ResponseBody::success(ingested as u64, payload_size_bytes as u64, now),
        reason: None,
        events: n,
        stored,
        deduplicated,
        api_key: None,
        events_json: journal,
    }
}

#[allow(clippy::too_many_arguments)]
fn apply_properties(
    state: &MockState,
    project: &Project,
    ev: &ScannedEvent<'_>,
    user: Option<&str>,
    device: Option<&str>,
    now: i64,
    pcfg: &PropertyConfig,
    drops: &mut Vec<(usize, usize, u64)>,
    (position, index): (usize, usize),
) {
    let event_type = ev.event_type.as_str();
    if event_type == Some("$groupidentify") {
        if let (Some(g), Some(gp)) = (ev.groups, ev.group_properties) {
            if let (Ok(g), Ok(gp)) = (
                serde_json::from_str::<serde_json::Map<String, serde_json::Value>>(g),
                serde_json::from_str::<serde_json::Map<String, serde_json::Value>>(gp),
            ) {
                state.properties.apply_group_properties(project.id, &g, &gp);
            }
        }
    }
    if user.is_none() && device.is_none() {
        return;
    }
    // Every event teaches the mock which device belongs to which user (spec §10).
    let amplitude_id = state.properties.amplitude_id(project.id, user, device);
    let Some(up) = ev.user_properties else { return };
    let Ok(props) = serde_json::from_str::<serde_json::Map<String, serde_json::Value>>(up) else {
        return;
    };
    if props.is_empty() {
        return;
    }
    if apply_user_properties(
        state,
        project,
        amplitude_id,
        &props,
        ev.skip_user_properties_sync,
        now,
        pcfg,
    ) {
        drops.push((position, index, amplitude_id));
    }
}

/// `/2/httpapi`, `/batch` once the body is in.
pub(crate) fn upload(
    state: &MockState,
    endpoint: Api,
    received: Received,
    forced: ForcedThrottle<'_>,
) -> Handled {
    let profile = &state.config.profile;
    let Received {
        mut entry,
        id,
        region,
        content_type,
        raw_len,
        body,
        ..
    } = received;
    let content_type_ok = !profile.strict_content_type
        || content_type
            .as_deref()
            .is_some_and(|t| t.starts_with("application/json") || t.starts_with("text/plain"));
    let reject = |body: ResponseBody, reason| Outcome {
        body,
        reason: Some(reason),
        events: 0,
        stored: 0,
        deduplicated: 0,
        api_key: None,
        events_json: None,
    };
    let outcome = match body {
        Err(BodyError::Io(_)) => return Handled::gone(),
        Err(BodyError::TooLarge) => reject(
            ResponseBody::payload_too_large(),
            RejectReason::PayloadTooLarge,
        ),
        Err(BodyError::BadGzip(_)) => reject(
            ResponseBody::error(400, error_text::INVALID_JSON),
            RejectReason::InvalidJson,
        ),
        Ok(_) if !content_type_ok => reject(
            ResponseBody::error(400, error_text::INVALID_JSON),
            RejectReason::InvalidJson,
        ),
        Ok(body) => {
            let size = if profile.payload_size_is_compressed {
                raw_len
            } else {
                body.len()
            };
            ingest(state, endpoint, region, &body, size, id, forced)
        }
    };
    let (status, bytes) = amplitude_response(&outcome.body);
    let bytes = Bytes::from(bytes);
    let api_key = outcome.api_key.as_deref();
    let redacted = api_key.map(redact_key);
    // Only error bodies can echo the key (a 200 holds numbers only): the journal shares the
    // answer's buffer unless the key must be redacted out of it (docs/benchmarks.md).
    entry.response = match (api_key.filter(|k| !k.is_empty()), &redacted, status != 200) {
        (Some(k), Some(r), true) => {
            Bytes::from(String::from_utf8_lossy(&bytes).replace(k, r).into_bytes())
        }
        _ => bytes.clone(),
    };
    entry.api_key = redacted;
    entry.status = status;
    entry.outcome =
        std::borrow::Cow::Borrowed(outcome.reason.map_or("stored", RejectReason::as_str));
    entry.events = outcome.events;
    entry.stored = outcome.stored;
    entry.deduplicated = outcome.deduplicated;
    entry.body_bytes = raw_len;
    entry.events_json = outcome.events_json;
    Handled {
        status,
        body: bytes,
        content_type: "application/json",
        entry: Some(entry),
        committed: status == 200,
        close: false,
    }
}
