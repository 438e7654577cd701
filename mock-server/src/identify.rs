//! The Identify, Group Identify and Attribution APIs (spec §10-§12): form-encoded or query
//! parameters `api_key` plus `identification` (or `event` for attribution), answered with
//! the short text bodies Amplitude's legacy-style endpoints use (spec §10 "Response bodies":
//! `success`, `missing_event`, `invalid_api_key`; UNCERTAIN, as observed by third parties).
//! Identify updates count toward the 1,800/hour property cap (spec §8.1) and the per-identity
//! EPS limit of HTTP V2 (spec §10 "Throttling").

use crate::clock::Clock;
use crate::ingest::limit_config;
use crate::ledger::{Endpoint, NewEvent, RejectReason};
use crate::projects::Region;
use crate::properties::{PropertyConfig, PropertyOutcome};
use crate::state::MockState;
use amplitude_wire::limits as wl;
use amplitude_wire::ResponseBody;
use serde_json::{Map, Value};
use std::collections::HashMap;

/// What an identify-style request got.
#[derive(Debug)]
pub struct TextOutcome {
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

impl MockState {
    /// Handles `/identify`, `/groupidentify` or `/attribution` with the merged query and
    /// form parameters.
    pub fn identify(
        &self,
        endpoint: Endpoint,
        region: Region,
        params: &HashMap<String, String>,
        request_id: u64,
    ) -> TextOutcome {
        let Some(api_key) = params.get("api_key").filter(|k| !k.is_empty()) else {
            return text(400, "missing_api_key", Some(RejectReason::MissingField), 0);
        };
        let Some(project) = self.projects.lookup(api_key, region) else {
            let mut o = text(400, "invalid_api_key", Some(RejectReason::InvalidApiKey), 0);
            o.api_key = Some(api_key.clone());
            return o;
        };
        let now = self.clock.now_ms();
        let mut out = match endpoint {
            Endpoint::Attribution => {
                self.attribution(&project, params.get("event"), request_id, now)
            }
            _ => {
                let Some(items) = identifications(params.get("identification")) else {
                    return TextOutcome {
                        api_key: Some(api_key.clone()),
                        ..text(400, "missing_event", Some(RejectReason::MissingField), 0)
                    };
                };
                if endpoint == Endpoint::GroupIdentify {
                    self.group_identify(project.id, &items)
                } else {
                    self.user_identify(&project, endpoint, &items, request_id, now)
                }
            }
        };
        out.api_key = Some(api_key.clone());
        out
    }

    fn user_identify(
        &self,
        project: &crate::projects::Project,
        endpoint: Endpoint,
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
        // applies): its EPS threshold, the daily quota when the profile applies it to V2, and
        // the `count_rejected_toward_eps` knob; counted in their own namespace (`i`), so
        // identify traffic and event traffic do not share windows.
        let profile = &self.config.profile;
        let quota_applies = profile.daily_quota_on_http_v2;
        let cfg = limit_config(&project.limits, endpoint);
        let mut limited = ResponseBody::too_many_requests(u64::from(cfg.eps_threshold));
        // (key, identifications naming it, flagged), in first-seen order.
        let mut idents: Vec<(u64, u64, bool)> = Vec::new();
        let mut per_item: Vec<Vec<usize>> = Vec::with_capacity(n);
        let mut any_quota = false;
        for m in items {
            let mut slots = Vec::with_capacity(2);
            for (kind, field) in [(b"d", "device_id"), (b"u", "user_id")] {
                let Some(id) = str_field(m, field) else {
                    continue;
                };
                let key = crate::dedup::fingerprint(&[
                    &project.id.to_le_bytes(),
                    b"i",
                    kind,
                    id.as_bytes(),
                ]);
                if let Some(slot) = idents.iter().position(|(k, _, _)| *k == key) {
                    if let Some(e) = idents.get_mut(slot) {
                        e.1 += 1;
                    }
                    slots.push(slot);
                    continue;
                }
                let usage = self.limiter.usage(key, now, &cfg);
                let device = kind == b"d";
                let mut flagged = false;
                if quota_applies && usage.over_daily_quota(&cfg) {
                    flagged = true;
                    any_quota = true;
                    let map = if device {
                        &mut limited.exceeded_daily_quota_devices
                    } else {
                        &mut limited.exceeded_daily_quota_users
                    };
                    if let Some(map) = map {
                        map.insert(id.to_owned(), usage.daily_events);
                    }
                } else if usage.throttled(&cfg) {
                    flagged = true;
                    let map = if device {
                        &mut limited.throttled_devices
                    } else {
                        &mut limited.throttled_users
                    };
                    if let Some(map) = map {
                        map.insert(id.to_owned(), usage.current_rate(&cfg));
                    }
                }
                idents.push((key, 1, flagged));
                slots.push(idents.len() - 1);
            }
            per_item.push(slots);
        }
        let throttled_events: Vec<usize> = per_item
            .iter()
            .enumerate()
            .filter(|(_, slots)| slots.iter().any(|s| idents.get(*s).is_some_and(|e| e.2)))
            .map(|(i, _)| i)
            .collect();
        if !throttled_events.is_empty() {
            if profile.count_rejected_toward_eps {
                for (key, count, _) in &idents {
                    self.limiter.record(*key, *count, now, &cfg);
                }
            }
            if !any_quota {
                limited.exceeded_daily_quota_users = None;
                limited.exceeded_daily_quota_devices = None;
            }
            let only_quota = any_quota
                && limited
                    .throttled_devices
                    .as_ref()
                    .is_some_and(|m| m.is_empty())
                && limited
                    .throttled_users
                    .as_ref()
                    .is_some_and(|m| m.is_empty());
            limited.throttled_events = Some(throttled_events);
            return TextOutcome {
                status: 429,
                body: serde_json::to_string(&limited).unwrap_or_default(),
                json: true,
                reason: Some(if only_quota {
                    RejectReason::DailyQuota
                } else {
                    RejectReason::Throttled
                }),
                items: n,
                api_key: None,
            };
        }
        for (key, count, _) in &idents {
            self.limiter.record(*key, *count, now, &cfg);
        }
        let pcfg = PropertyConfig {
            updates_per_hour: project.limits.property_updates_per_hour,
            window_ms: wl::USER_PROPERTY_WINDOW_MS,
        };
        for (index, m) in items.iter().enumerate() {
            let (user, device) = (str_field(m, "user_id"), str_field(m, "device_id"));
            let amplitude_id = self.properties.amplitude_id(project.id, user, device);
            let Some(Value::Object(props)) = m.get("user_properties") else {
                continue;
            };
            match self.properties.apply_user_properties(
                project.id,
                amplitude_id,
                props,
                false,
                now,
                &pcfg,
            ) {
                PropertyOutcome::Applied => self.ledger.count_property_update(true),
                PropertyOutcome::Skipped => self.ledger.count_property_update(false),
                PropertyOutcome::Dropped => {
                    let user_properties = serde_json::value::to_raw_value(props)
                        .unwrap_or_else(|_| serde_json::value::RawValue::NULL.to_owned());
                    self.ledger
                        .record_property_drop(crate::ledger::PropertyDropRecord {
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
                PropertyOutcome::NoUpdate => {}
            }
        }
        // Identify calls are not events (spec §10): nothing enters the event store.
        text(200, "success", None, n)
    }

    fn group_identify(&self, project: u32, items: &[Map<String, Value>]) -> TextOutcome {
        let n = items.len();
        if n > 1_024 {
            return text(
                413,
                "Payload too large",
                Some(RejectReason::PayloadTooLarge),
                n,
            );
        }
        for m in items {
            let (Some(gt), Some(gv)) = (str_field(m, "group_type"), str_field(m, "group_value"))
            else {
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
                self.properties.apply_group_properties(project, &groups, gp);
            }
        }
        text(200, "success", None, n)
    }

    fn attribution(
        &self,
        project: &crate::projects::Project,
        event: Option<&String>,
        request_id: u64,
        now: i64,
    ) -> TextOutcome {
        let Some(Value::Object(ev)) = event.and_then(|e| serde_json::from_str::<Value>(e).ok())
        else {
            return text(400, "missing_event", Some(RejectReason::InvalidJson), 0);
        };
        self.ledger.count_received(1);
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
            self.ledger
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
            self.ledger.store(
                request_id,
                project.id,
                &project.api_key,
                Endpoint::Attribution,
                now,
                vec![NewEvent {
                    event: raw,
                    fingerprint: None,
                }],
            );
        }
        text(200, "success", None, 1)
    }
}
