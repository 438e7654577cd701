//! What an answer from Amplitude means for the events of the request (spec §4-§7).
//!
//! The status comes from the HTTP status line and is cross-checked with the body's `code`
//! (spec §4: they are equal; spec §15 #19: a proxy once saw a 2xx carrying `code: 429`).

use amplitude_wire::ResponseBody;
use serde_json::Value;
use std::collections::BTreeMap;

/// What the transport got for one request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HttpResult {
    /// A complete response: status line and the whole body.
    Response {
        /// HTTP status code.
        status: u16,
        /// Body bytes (possibly empty, truncated or not JSON).
        body: Vec<u8>,
    },
    /// No usable response: connect error, reset, timeout, body cut short (spec §5.6).
    Transport(String),
}

/// Identities a 429 names (spec §5.4). Lists of ids, not rates: the sender only needs who.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Throttle {
    /// `throttled_events`: request indexes to hold back.
    pub events: Vec<usize>,
    /// Keys of `throttled_devices`.
    pub devices: Vec<String>,
    /// Keys of `throttled_users`.
    pub users: Vec<String>,
    /// Keys of `exceeded_daily_quota_devices`.
    pub quota_devices: Vec<String>,
    /// Keys of `exceeded_daily_quota_users`.
    pub quota_users: Vec<String>,
    /// `eps_threshold`, events/s (spec §8.2).
    pub eps_threshold: Option<u64>,
}

/// The decision for a request's events, one variant per response branch.
#[derive(Debug, Clone, PartialEq)]
pub enum ResponseAction {
    /// 200 with a matching body: every event confirmed (spec §4).
    Delivered,
    /// 400 `Invalid API key` or `missing_field`: stop sending for the project, dead-letter
    /// (spec §5.1, §7).
    StopProject(String),
    /// 400 naming event indexes: dead-letter exactly those (index -> reason), resend the
    /// rest at once (spec §5.1, §6).
    DropEvents(BTreeMap<usize, String>),
    /// 413: split the batch in half; a single event is dead-lettered (spec §5.3).
    TooLarge,
    /// A 4xx that names nothing usable (`{}`, HTML, 403): split the batch in half to isolate
    /// the cause; a single event is dead-lettered with the reason (spec §5.1, §5.2).
    Bisect(String),
    /// 429: pause the named identities, resend the others at once (spec §5.4, §6).
    Throttled(Throttle),
    /// 5xx, timeout, reset, truncated or non-JSON body, status/body mismatch: retry the same
    /// events with backoff (spec §5.5, §5.6).
    Retry(String),
}

/// Classifies one transport result (spec §4-§7).
pub fn classify(result: &HttpResult) -> ResponseAction {
    let (status, body) = match result {
        HttpResult::Transport(reason) => return ResponseAction::Retry(reason.clone()),
        HttpResult::Response { status, body } => (*status, body.as_slice()),
    };
    let value: Option<Value> = serde_json::from_slice(body).ok();
    let parsed: Option<ResponseBody> = value
        .as_ref()
        .and_then(|v| serde_json::from_value(v.clone()).ok());
    let body_code = value
        .as_ref()
        .and_then(|v| v.get("code"))
        .and_then(Value::as_u64);
    match status {
        200..=299 => match body_code {
            Some(200) if status == 200 => ResponseAction::Delivered,
            // spec §15 #19: a 2xx whose body says 429 is throttling.
            Some(429) => ResponseAction::Throttled(throttle_from(value.as_ref())),
            Some(code) => ResponseAction::Retry(format!("HTTP {status} but body code {code}")),
            None => ResponseAction::Retry(format!(
                "HTTP {status} with a body that is not Amplitude JSON"
            )),
        },
        400 => {
            let Some(v) = value.as_ref() else {
                return ResponseAction::Bisect("400 with a non-JSON body".into());
            };
            let error = v.get("error").and_then(Value::as_str).unwrap_or("");
            if let Some(b) = &parsed {
                if b.is_invalid_api_key() {
                    return ResponseAction::StopProject(format!("400 {error}"));
                }
                if let Some(f) = &b.missing_field {
                    return ResponseAction::StopProject(format!("400 {error}: missing_field {f}"));
                }
            } else if error.starts_with("Invalid API key") {
                return ResponseAction::StopProject(format!("400 {error}"));
            }
            let reasons = index_reasons(v, error);
            if reasons.is_empty() {
                ResponseAction::Bisect(format!("400 without event indexes: {}", short(body)))
            } else {
                ResponseAction::DropEvents(reasons)
            }
        }
        413 => ResponseAction::TooLarge,
        429 => ResponseAction::Throttled(throttle_from(value.as_ref())),
        408 | 500..=599 => ResponseAction::Retry(format!("HTTP {status}")),
        404 | 405 => ResponseAction::StopProject(format!("HTTP {status}: wrong endpoint URL")),
        401..=499 => ResponseAction::Bisect(format!("HTTP {status}: {}", short(body))),
        _ => ResponseAction::Retry(format!("HTTP {status}")),
    }
}

fn short(body: &[u8]) -> String {
    let s = String::from_utf8_lossy(&body[..body.len().min(120)]);
    s.replace('\n', " ")
}

/// Index -> reason for every event the 400 names (spec §5.1 field semantics).
fn index_reasons(v: &Value, error: &str) -> BTreeMap<usize, String> {
    let mut out = BTreeMap::new();
    for map in [
        "events_with_missing_fields",
        "events_with_invalid_fields",
        "events_with_invalid_id_lengths",
    ] {
        if let Some(obj) = v.get(map).and_then(Value::as_object) {
            for (field, idx) in obj {
                for i in idx
                    .as_array()
                    .into_iter()
                    .flatten()
                    .filter_map(Value::as_u64)
                {
                    let entry = out
                        .entry(i as usize)
                        .or_insert_with(|| format!("400 {error}:"));
                    entry.push_str(&format!(" {map}.{field}"));
                }
            }
        }
    }
    for i in v
        .get("silenced_events")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(Value::as_u64)
    {
        let entry = out
            .entry(i as usize)
            .or_insert_with(|| format!("400 {error}:"));
        entry.push_str(" silenced_events");
    }
    out
}

/// Reads a 429 body leniently: rates may be integers or floats, maps may be missing
/// (spec §5.4, §15 #18).
fn throttle_from(v: Option<&Value>) -> Throttle {
    let Some(v) = v else {
        return Throttle::default();
    };
    let keys = |name: &str| -> Vec<String> {
        v.get(name)
            .and_then(Value::as_object)
            .map(|m| m.keys().cloned().collect())
            .unwrap_or_default()
    };
    Throttle {
        events: v
            .get("throttled_events")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .filter_map(Value::as_u64)
            .map(|i| i as usize)
            .collect(),
        devices: keys("throttled_devices"),
        users: keys("throttled_users"),
        quota_devices: keys("exceeded_daily_quota_devices"),
        quota_users: keys("exceeded_daily_quota_users"),
        eps_threshold: v
            .get("eps_threshold")
            .and_then(Value::as_f64)
            .map(|f| f as u64),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn resp(status: u16, body: &str) -> HttpResult {
        HttpResult::Response {
            status,
            body: body.as_bytes().to_vec(),
        }
    }

    #[test]
    fn success_needs_a_matching_body() {
        // spec §4: code == HTTP status; a non-JSON 200 is retried, not trusted (spec §4 SDK notes)
        assert_eq!(
            classify(&resp(
                200,
                r#"{"code":200,"events_ingested":1,"payload_size_bytes":9,"server_upload_time":1}"#
            )),
            ResponseAction::Delivered
        );
        assert!(matches!(
            classify(&resp(200, "<html>")),
            ResponseAction::Retry(_)
        ));
        assert!(matches!(
            classify(&resp(200, r#"{"code":200,"events_ing"#)),
            ResponseAction::Retry(_)
        ));
        assert!(matches!(
            classify(&resp(200, r#"{"code":500}"#)),
            ResponseAction::Retry(_)
        ));
        // spec §15 #19: 2xx with body code 429
        assert!(
            matches!(classify(&resp(200, r#"{"code":429,"throttled_events":[0]}"#)), ResponseAction::Throttled(t) if t.events == vec![0])
        );
    }

    #[test]
    fn invalid_key_and_missing_field_stop_the_project() {
        // spec §5.1, §7 invalid-key detection
        assert!(
            matches!(classify(&resp(400, r#"{"code":400,"error":"Invalid API key: k"}"#)), ResponseAction::StopProject(r) if r.contains("Invalid API key"))
        );
        assert!(
            matches!(classify(&resp(400, r#"{"code":400,"error":"Request missing required field","missing_field":"api_key"}"#)), ResponseAction::StopProject(r) if r.contains("missing_field api_key"))
        );
    }

    #[test]
    fn indexes_name_the_events_to_drop() {
        // spec §5.1 field semantics
        let v = classify(&resp(
            400,
            r#"{"code":400,"error":"Invalid field values on some events","events_with_invalid_fields":{"time":[3,1]},"events_with_invalid_id_lengths":{"user_id":[1]},"silenced_events":[5]}"#,
        ));
        let ResponseAction::DropEvents(m) = v else {
            panic!("{v:?}")
        };
        assert_eq!(m.keys().copied().collect::<Vec<_>>(), vec![1, 3, 5]);
        assert!(
            m[&1].contains("events_with_invalid_fields.time")
                && m[&1].contains("events_with_invalid_id_lengths.user_id")
        );
        assert!(m[&5].contains("silenced_events"));
        // spec §5.1: `{}` and HTML 400 bodies name nothing
        assert!(matches!(
            classify(&resp(400, "{}")),
            ResponseAction::Bisect(_)
        ));
        assert!(matches!(
            classify(&resp(400, "<html>400 Bad Request</html>")),
            ResponseAction::Bisect(_)
        ));
        assert!(matches!(
            classify(&resp(403, r#"{"code":403,"error":"Forbidden"}"#)),
            ResponseAction::Bisect(_)
        ));
    }

    #[test]
    fn throttle_bodies_are_read_leniently() {
        // spec §5.4 examples, float rates tolerated (§15 #18)
        let v = classify(&resp(
            429,
            r#"{"code":429,"error":"Too many requests for some devices and users","eps_threshold":30,"throttled_devices":{"D":31.5},"throttled_users":{"U":32},"throttled_events":[3,4],"exceeded_daily_quota_users":{"Q":500200}}"#,
        ));
        let ResponseAction::Throttled(t) = v else {
            panic!("{v:?}")
        };
        assert_eq!(t.events, vec![3, 4]);
        assert_eq!(t.devices, vec!["D".to_string()]);
        assert_eq!(t.users, vec!["U".to_string()]);
        assert_eq!(t.quota_users, vec!["Q".to_string()]);
        assert_eq!(t.eps_threshold, Some(30));
        assert_eq!(
            classify(&resp(429, "oops")),
            ResponseAction::Throttled(Throttle::default())
        );
    }

    #[test]
    fn transient_failures_are_retried() {
        // spec §5.5, §5.6
        for s in [500, 502, 503, 504, 408] {
            assert!(
                matches!(classify(&resp(s, "")), ResponseAction::Retry(_)),
                "{s}"
            );
        }
        assert!(
            matches!(classify(&HttpResult::Transport("reset".into())), ResponseAction::Retry(r) if r == "reset")
        );
        assert_eq!(
            classify(&resp(413, r#"{"code":413,"error":"Payload too large"}"#)),
            ResponseAction::TooLarge
        );
    }
}
