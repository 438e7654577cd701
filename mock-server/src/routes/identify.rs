//! The identify route family: the Identify, Group Identify and Attribution APIs (spec §10-§12): form-encoded or query
//! parameters `api_key` plus `identification` (or `event` for attribution), answered with
//! the short text bodies Amplitude's legacy-style endpoints use (spec §10 "Response bodies":
//! `success`, `missing_event`, `invalid_api_key`; UNCERTAIN, as observed by third parties).
//! Identify updates count toward the 1,800/hour property cap (spec §8.1) and the per-identity
//! EPS limit of HTTP V2 (spec §10 "Throttling").

use crate::clock::Clock;
use crate::ledger::{NewEvent, PropertyDropRecord, RejectReason};
use crate::projects::{redact_key, Project, Region};
use crate::routes::exchange::{Handled, Received};
use crate::state::MockState;
use crate::steps::{apply_user_properties, property_config, throttle, ForcedThrottle};
use amplitude_wire::limits as wl;
use amplitude_wire::Api;
use bytes::Bytes;
use serde_json::{Map, Value};
use std::collections::HashMap;

/// What an identify-style request got.
#[derive(Debug)]
pub(crate) struct TextOutcome {
    /// HTTP status.
    pub status: u16,
    /// Response body (text, or JSON for a 429).
    pub body: String,
    /// True when `body` is JSON.
    pub json: bool,
    /// `None` on success, else why.
    pub reason: Option<RejectReason>,
    /// Identifications / events in the request.
    pub items: usize,
    /// The API key as sent.
    pub api_key: Option<String>,
}

fn text(status: u16, body: &str, reason: Option<RejectReason>, items: usize) -> TextOutcome {
    TextOutcome {
        status,
        body: body.to_owned(),
        json: false,
        reason,
        items,
        api_key: None,
    }
}

/// Parses `identification`: one JSON object or an array of objects.
fn identifications(raw: Option<&String>) -> Option<Vec<Map<String, Value>>> {
    match serde_json::from_str::<Value>(raw?).ok()? {
        Value::Object(m) => Some(vec![m]),
        Value::Array(a) => a
            .into_iter()
            .map(|v| match v {
                Value::Object(m) => Some(m),
                _ => None,
            })
            .collect(),
        _ => None,
    }
}

fn str_field<'a>(m: &'a Map<String, Value>, k: &str) -> Option<&'a str> {
    m.get(k).and_then(Value::as_str).filter(|s| !s.is_empty())
}

/// Handles `/identify`, `/groupidentify` or `/attribution` with the merged query and
/// form parameters.
pub(crate) fn identify(
    state: &MockState,
    endpoint: Api,
    region: Region,
    params: &HashMap<String, String>,
    request_id: u64,
) -> TextOutcome {
    let Some(api_key) = params.get("api_key").filter(|k| !k.is_empty()) else {
        return text(400, "missing_api_key", Some(RejectReason::MissingField), 0);
    };
    let Some(project) = state.projects.lookup(api_key, region) else {
        let mut o = text(400, "invalid_api_key", Some(RejectReason::InvalidApiKey), 0);
        o.api_key = Some(api_key.clone());
        return o;
    };
    let now = state.clock.now_ms();
    let mut out = match endpoint {
        Api::Attribution => attribution(state, &project, params.get("event"), request_id, now),
        _ => {
            let Some(items) = identifications(params.get("identification")) else {
                return TextOutcome {
                    api_key: Some(api_key.clone()),
                    ..text(400, "missing_event", Some(RejectReason::MissingField), 0)
                };
            };
            if endpoint == Api::GroupIdentify {
                group_identify(state, project.id, &items)
            } else {
                user_identify(state, &project, endpoint, &items, request_id, now)
            }
        }
    };
    out.api_key = Some(api_key.clone());
    out
}

fn user_identify(
    state: &MockState,
    project: &Project,
    endpoint: Api,
    items: &[Map<String, Value>],
    request_id: u64,
    now: i64,
) -> TextOutcome {
    // Identifications are not events (spec §10): they never enter the event counters.
    let n = items.len();
    if items
        .iter()
        .any(|m| str_field(m, "user_id").is_none() && str_field(m, "device_id").is_none())
    {
        return text(
            400,
            "missing_event",
            Some(RejectReason::MissingEventFields),
            n,
        );
    }
    // Same per-identity limits as HTTP V2 (spec §10 "Throttling": the V2 guidance
    // applies), counted in the identify family's own windows.
    let ids: Vec<[Option<&str>; 2]> = items
        .iter()
        .map(|m| [str_field(m, "device_id"), str_field(m, "user_id")])
        .collect();
    if let Some(limited) = throttle(
        state,
        project,
        endpoint,
        &ids,
        ForcedThrottle::default(),
        now,
    ) {
        return TextOutcome {
            status: 429,
            body: serde_json::to_string(&limited.body).unwrap_or_default(),
            json: true,
            reason: Some(limited.reason),
            items: n,
            api_key: None,
        };
    }
    let pcfg = property_config(project);
    for (index, m) in items.iter().enumerate() {
        let (user, device) = (str_field(m, "user_id"), str_field(m, "device_id"));
        let amplitude_id = state.properties.amplitude_id(project.id, user, device);
        let Some(Value::Object(props)) = m.get("user_properties") else {
            continue;
        };
        if apply_user_properties(state, project, amplitude_id, props, false, now, &pcfg) {
            let user_properties = serde_json::value::to_raw_value(props)
                .unwrap_or_else(|_| serde_json::value::RawValue::NULL.to_owned());
            state.ledger.record_property_drop(PropertyDropRecord {
                seq: None,
                request_id,
                endpoint,
                index,
                amplitude_id,
                user_id: user.map(str::to_owned),
                device_id: device.map(str::to_owned),
                user_properties,
                at_ms: now,
            });
        }
    }
    // Identify calls are not events (spec §10): nothing enters the event store.
    text(200, "success", None, n)
}

fn group_identify(state: &MockState, project: u32, items: &[Map<String, Value>]) -> TextOutcome {
    let n = items.len();
    if n > wl::MAX_GROUP_IDENTIFIES_PER_REQUEST {
        return text(
            413,
            "Payload too large",
            Some(RejectReason::PayloadTooLarge),
            n,
        );
    }
    for m in items {
        let (Some(gt), Some(gv)) = (str_field(m, "group_type"), str_field(m, "group_value")) else {
            return text(
                400,
                "missing_event",
                Some(RejectReason::MissingEventFields),
                n,
            );
        };
        let mut groups = Map::new();
        groups.insert(gt.to_owned(), Value::String(gv.to_owned()));
        if let Some(Value::Object(gp)) = m.get("group_properties") {
            state
                .properties
                .apply_group_properties(project, &groups, gp);
        }
    }
    text(200, "success", None, n)
}

fn attribution(
    state: &MockState,
    project: &Project,
    event: Option<&String>,
    request_id: u64,
    now: i64,
) -> TextOutcome {
    let Some(Value::Object(ev)) = event.and_then(|e| serde_json::from_str::<Value>(e).ok()) else {
        return text(400, "missing_event", Some(RejectReason::InvalidJson), 0);
    };
    state.ledger.count_received(1);
    let has = |k: &str| str_field(&ev, k).is_some();
    // spec §12: event_type and platform required; iOS needs idfa|idfv, Android adid|android_app_set_id
    let ok = has("event_type")
        && match str_field(&ev, "platform")
            .map(str::to_ascii_lowercase)
            .as_deref()
        {
            Some("ios") => has("idfa") || has("idfv"),
            Some("android") => has("adid") || has("android_app_set_id"),
            _ => false,
        };
    if !ok {
        state
            .ledger
            .count_rejected(RejectReason::MissingEventFields, 1);
        return text(
            400,
            "missing_event",
            Some(RejectReason::MissingEventFields),
            1,
        );
    }
    let raw = serde_json::value::to_raw_value(&Value::Object(ev));
    if let Ok(raw) = raw {
        state.ledger.store(
            request_id,
            project.id,
            &project.api_key,
            Api::Attribution,
            now,
            vec![NewEvent {
                event: raw.into(),
                fingerprint: None,
            }],
        );
    }
    text(200, "success", None, 1)
}

/// `/identify`, `/groupidentify`, `/attribution`: parameters from the query string and a
/// form-urlencoded body (spec §10-§12), at most 1 MB; once the body is in.
pub(crate) fn answer(state: &MockState, endpoint: Api, received: Received) -> Handled {
    let Received {
        mut entry,
        id,
        region,
        mut params,
        raw_len,
        body,
        ..
    } = received;
    let outcome = match body {
        Ok(body) => {
            params.extend(form_urlencoded::parse(&body).into_owned());
            identify(state, endpoint, region, &params, id)
        }
        Err(_) => TextOutcome {
            status: 413,
            body: "Payload too large".to_owned(),
            json: false,
            reason: Some(RejectReason::PayloadTooLarge),
            items: 0,
            api_key: None,
        },
    };
    let mut outcome = outcome;
    if !outcome.json && !state.config.profile.identify_text_bodies {
        // profile `identify_text_bodies = false` (spec §15 #16): the same answer as JSON
        let body = if outcome.status == 200 {
            serde_json::json!({ "code": 200 })
        } else {
            serde_json::json!({ "code": outcome.status, "error": outcome.body })
        };
        outcome.body = body.to_string();
        outcome.json = true;
    }
    let api_key = outcome.api_key.as_deref();
    let mut response = outcome.body.clone();
    if let Some(k) = api_key.filter(|k| !k.is_empty()) {
        response = response.replace(k, &redact_key(k));
    }
    entry.api_key = api_key.map(redact_key);
    entry.status = outcome.status;
    entry.outcome =
        std::borrow::Cow::Borrowed(outcome.reason.map_or("stored", RejectReason::as_str));
    entry.events = outcome.items;
    entry.body_bytes = raw_len;
    entry.response = Bytes::from(response.into_bytes());
    Handled {
        status: outcome.status,
        body: Bytes::from(outcome.body.into_bytes()),
        content_type: if outcome.json {
            "application/json"
        } else {
            "text/plain; charset=utf-8"
        },
        entry: Some(entry),
        committed: outcome.status == 200,
        close: false,
    }
}
