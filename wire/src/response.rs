//! Response bodies of HTTP V2 and Batch: success (spec §4) and errors (spec §5).

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// Field name -> event indexes, e.g. `{"event_type": [1, 3]}` (spec §5.1).
pub type IndexMap = BTreeMap<String, Vec<usize>>;

/// Identity (`device_id` or `user_id`) -> events/s or event count (spec §5.4).
pub type RateMap = BTreeMap<String, u64>;

/// The `error` strings Amplitude uses (spec §5).
pub mod error_text {
    /// Empty body (spec §5.1).
    pub const MISSING_REQUEST_BODY: &str = "Missing request body";
    /// Unparsable JSON (spec §5.1, §14.1 #2).
    pub const INVALID_JSON: &str = "Invalid JSON request body";
    /// An element of `events` is not an object (spec §5.1, trigger UNCERTAIN).
    pub const INVALID_EVENT_JSON: &str = "Invalid event JSON";
    /// Request- or event-level required field missing (spec §5.1).
    pub const MISSING_FIELD: &str = "Request missing required field";
    /// Type or format errors in events (spec §5.1).
    pub const INVALID_FIELDS: &str = "Invalid field values on some events";
    /// `user_id`/`device_id` shorter than `min_id_length` (spec §5.1, UNCERTAIN-strong).
    pub const INVALID_ID_LENGTH: &str = "Invalid id length for user_id or device_id";
    /// Silenced devices (spec §5.1).
    pub const SILENCED: &str = "Events silenced for device_id";
    /// Prefix of the unknown-key error; the key follows (spec §5.1, §15 #11).
    pub const INVALID_API_KEY_PREFIX: &str = "Invalid API key: ";
    /// Wrong path on the ingestion host (spec §5.1).
    pub const INVALID_PATH: &str = "Invalid request path";
    /// 403 from the WAF (spec §5.2).
    pub const FORBIDDEN: &str = "Forbidden";
    /// 408 when a request body does not arrive in time (spec §5.6).
    pub const REQUEST_TIMEOUT: &str = "Request Timeout";
    /// 413 (spec §5.3).
    pub const PAYLOAD_TOO_LARGE: &str = "Payload too large";
    /// 429 (spec §5.4).
    pub const TOO_MANY_REQUESTS: &str = "Too many requests for some devices and users";
}

/// Any JSON body HTTP V2 or Batch answers with: one struct for every variant, so a client can
/// parse whatever arrives. `code` always equals the HTTP status (spec §4, §14 item 5).
///
/// Use the constructors to build a body with exactly the keys Amplitude sends for that case:
/// a 200 always has the four integer fields (spec §4); a 429 always has an integer
/// `eps_threshold`, the `throttled_devices` / `throttled_users` objects and the
/// `throttled_events` array (each possibly empty), and the two `exceeded_daily_quota_*`
/// objects only when some identity is over its daily quota (then both, one possibly empty):
/// an EPS-only 429 has exactly the keys of the documented V2 example (spec §5.4). A client
/// must accept either form: every map is an `Option`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
#[allow(missing_docs)] // field names are Amplitude's own; spec §4 and §5 document each
pub struct ResponseBody {
    pub code: u16,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub events_ingested: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub payload_size_bytes: Option<u64>,
    /// ms since the epoch (spec §4).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub server_upload_time: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub missing_field: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub events_with_missing_fields: Option<IndexMap>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub events_with_invalid_fields: Option<IndexMap>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub events_with_invalid_id_lengths: Option<IndexMap>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub silenced_devices: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub silenced_events: Option<Vec<usize>>,
    /// events/s threshold of the project (spec §5.4, §8.2).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub eps_threshold: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub throttled_devices: Option<RateMap>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub throttled_users: Option<RateMap>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub throttled_events: Option<Vec<usize>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exceeded_daily_quota_users: Option<RateMap>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exceeded_daily_quota_devices: Option<RateMap>,
}

impl ResponseBody {
    /// 200 (spec §4): `payload_size_bytes` is the raw body length, `server_upload_time` in ms.
    pub fn success(events_ingested: u64, payload_size_bytes: u64, server_upload_time: i64) -> Self {
        Self {
            code: 200,
            events_ingested: Some(events_ingested),
            payload_size_bytes: Some(payload_size_bytes),
            server_upload_time: Some(server_upload_time),
            ..Self::default()
        }
    }

    /// A body with only `code` and `error`.
    pub fn error(code: u16, error: impl Into<String>) -> Self {
        Self {
            code,
            error: Some(error.into()),
            ..Self::default()
        }
    }

    /// 400 `Request missing required field` with `missing_field` (spec §5.1, §14.1 #3-4).
    pub fn missing_field(field: &str) -> Self {
        Self {
            missing_field: Some(field.to_owned()),
            ..Self::error(400, error_text::MISSING_FIELD)
        }
    }

    /// 400 `Invalid API key: <key>` (spec §5.1, §14.1 #5).
    pub fn invalid_api_key(key: &str) -> Self {
        Self::error(400, format!("{}{key}", error_text::INVALID_API_KEY_PREFIX))
    }

    /// 413 `Payload too large` (spec §5.3).
    pub fn payload_too_large() -> Self {
        Self::error(413, error_text::PAYLOAD_TOO_LARGE)
    }

    /// 408 of a body that did not arrive in time (spec §5.6):
    /// `{"code":408,"error":"Request Timeout"}`.
    pub fn request_timeout() -> Self {
        Self::error(408, error_text::REQUEST_TIMEOUT)
    }

    /// 403 `Forbidden` from the WAF (spec §5.2).
    pub fn forbidden() -> Self {
        Self::error(403, error_text::FORBIDDEN)
    }

    /// 429 of EPS throttling with the keys of the documented V2 example (spec §5.4):
    /// integer `eps_threshold` (events/s), empty `throttled_devices` / `throttled_users`
    /// objects and `throttled_events` array to fill in, no `exceeded_daily_quota_*` objects
    /// (add them with [`Self::with_exceeded_daily_quota`] when an identity is over quota).
    pub fn too_many_requests(eps_threshold: u64) -> Self {
        Self {
            eps_threshold: Some(eps_threshold),
            throttled_devices: Some(RateMap::new()),
            throttled_users: Some(RateMap::new()),
            throttled_events: Some(Vec::new()),
            ..Self::error(429, error_text::TOO_MANY_REQUESTS)
        }
    }

    /// This 429 with both `exceeded_daily_quota_devices` and `exceeded_daily_quota_users`
    /// (id → rolling-24-h event count, spec §5.4, §8.1) when either is non-empty, as the
    /// documented Batch example; unchanged (no such keys) when both are empty.
    pub fn with_exceeded_daily_quota(self, devices: RateMap, users: RateMap) -> Self {
        if devices.is_empty() && users.is_empty() {
            return self;
        }
        Self {
            exceeded_daily_quota_devices: Some(devices),
            exceeded_daily_quota_users: Some(users),
            ..self
        }
    }

    /// True when the body names an invalid API key, by prefix (spec §7 "Invalid-key detection").
    pub fn is_invalid_api_key(&self) -> bool {
        self.error
            .as_deref()
            .is_some_and(|e| e.starts_with("Invalid API key"))
    }

    /// Every event index this body names as invalid: the union of the `events_with_*` maps
    /// and `silenced_events`, sorted and without repeats (spec §5.1).
    pub fn invalid_event_indexes(&self) -> Vec<usize> {
        let mut out: Vec<usize> = [
            &self.events_with_missing_fields,
            &self.events_with_invalid_fields,
            &self.events_with_invalid_id_lengths,
        ]
        .into_iter()
        .flatten()
        .flat_map(|m| m.values().flatten().copied())
        .chain(self.silenced_events.iter().flatten().copied())
        .collect();
        out.sort_unstable();
        out.dedup();
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn success_has_four_integer_fields() {
        // spec §4: all four keys, integers
        let v = serde_json::to_value(ResponseBody::success(1, 58, 1_396_381_378_123)).unwrap();
        assert_eq!(
            v,
            json!({"code":200,"events_ingested":1,"payload_size_bytes":58,"server_upload_time":1_396_381_378_123_i64})
        );
    }

    #[test]
    fn too_many_requests_has_the_v2_example_keys_and_quota_maps_only_when_over() {
        // spec §5.4: integer eps_threshold, throttled_* objects possibly empty; the
        // exceeded_daily_quota_* objects only when an identity is over its quota.
        let v = serde_json::to_value(ResponseBody::too_many_requests(30)).unwrap();
        assert_eq!(
            v,
            json!({"code":429,"error":"Too many requests for some devices and users","eps_threshold":30,
                   "throttled_devices":{},"throttled_users":{},"throttled_events":[]})
        );
        let empty = ResponseBody::too_many_requests(30)
            .with_exceeded_daily_quota(RateMap::new(), RateMap::new());
        assert_eq!(empty, ResponseBody::too_many_requests(30));
        let over = ResponseBody::too_many_requests(1_000).with_exceeded_daily_quota(
            [("d".to_owned(), 500_900)].into_iter().collect(),
            RateMap::new(),
        );
        let v = serde_json::to_value(over).unwrap();
        assert_eq!(v["exceeded_daily_quota_devices"], json!({"d": 500_900}));
        assert_eq!(v["exceeded_daily_quota_users"], json!({}));
    }

    #[test]
    fn parses_documented_examples() {
        // spec §5.1 batch doc variant
        let b: ResponseBody = serde_json::from_value(json!({"code":400,"error":"Request missing required field","missing_field":"api_key","events_with_invalid_fields":{"time":[3,4,7]},"events_with_missing_fields":{"event_type":[3,4,7]}})).unwrap();
        assert_eq!(b.invalid_event_indexes(), vec![3, 4, 7]);
        assert!(ResponseBody::invalid_api_key("k").is_invalid_api_key());
        assert_eq!(
            ResponseBody::invalid_api_key("k").error.as_deref(),
            Some("Invalid API key: k")
        );
    }
}
