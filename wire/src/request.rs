//! The upload request of HTTP V2 and Batch (spec §3.1) and the event object (spec §3.2).

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

/// Body of `POST /2/httpapi` and `POST /batch` (spec §3.1). Both endpoints share it.
///
/// `api_key` and `events` are required by Amplitude; they are `Option` here so a request
/// missing them can still be represented and answered with `missing_field` (spec §5.1).
/// Unknown top-level keys (`client_upload_time`, `request_metadata`, ...) are kept in `extra`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
pub struct UploadRequest {
    /// Project API key (spec §3.1).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub api_key: Option<String>,
    /// The events, at most [`crate::limits::MAX_EVENTS_PER_REQUEST`] (spec §3.4).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub events: Option<Vec<Event>>,
    /// Request options; only `min_id_length` is documented (spec §3.1).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub options: Option<UploadOptions>,
    /// Any other top-level key, e.g. `client_upload_time`, `request_metadata` (spec §2, §3.1).
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

impl UploadRequest {
    /// A request for `api_key` carrying `events`, with no options.
    pub fn new(api_key: impl Into<String>, events: Vec<Event>) -> Self {
        Self {
            api_key: Some(api_key.into()),
            events: Some(events),
            options: None,
            extra: Map::new(),
        }
    }
}

/// `options` of an upload request (spec §3.1).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct UploadOptions {
    /// Minimum length of `user_id`/`device_id`, characters; default 5 (spec §3.4).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min_id_length: Option<u32>,
    /// Any other option key.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// One Amplitude event with every documented field (spec §3.2). Unknown keys are kept in
/// `extra`, never rejected, because official SDKs send undocumented ones (`library`, ...).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
#[allow(missing_docs)] // field names are Amplitude's own; spec §3.2 documents each
pub struct Event {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub device_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub event_type: Option<String>,
    /// Event time, ms since the Unix epoch; default: the upload time (spec §3.2).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub time: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub event_properties: Option<Map<String, Value>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user_properties: Option<Map<String, Value>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub groups: Option<Map<String, Value>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub group_properties: Option<Map<String, Value>>,
    #[serde(
        rename = "$skip_user_properties_sync",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub skip_user_properties_sync: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub app_version: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub platform: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub os_name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub os_version: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub device_brand: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub device_manufacturer: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub device_model: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub carrier: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub country: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub region: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub city: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dma: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub language: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub price: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub quantity: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub revenue: Option<f64>,
    #[serde(rename = "productId", default, skip_serializing_if = "Option::is_none")]
    pub product_id: Option<String>,
    #[serde(
        rename = "revenueType",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub revenue_type: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub currency: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub location_lat: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub location_lng: Option<f64>,
    /// Client IP, or `"$remote"` for the request's source address (spec §3.2).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ip: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub idfa: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub idfv: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub adid: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub android_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub android_app_set_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user_agent: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub event_id: Option<i64>,
    /// Session start, ms since the epoch; `-1` means no session (spec §3.2).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub session_id: Option<i64>,
    /// Deduplication key, kept for 7 days (spec §9).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub insert_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub plan: Option<Map<String, Value>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub partner_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub library: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version_name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ingestion_metadata: Option<Map<String, Value>>,
    /// Every key not listed above, kept as sent.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

impl Event {
    /// An event of type `event_type` with no identity yet.
    pub fn new(event_type: impl Into<String>) -> Self {
        Self {
            event_type: Some(event_type.into()),
            ..Self::default()
        }
    }

    /// Sets `user_id`.
    pub fn with_user_id(mut self, user_id: impl Into<String>) -> Self {
        self.user_id = Some(user_id.into());
        self
    }

    /// Sets `device_id`.
    pub fn with_device_id(mut self, device_id: impl Into<String>) -> Self {
        self.device_id = Some(device_id.into());
        self
    }

    /// Sets `insert_id`.
    pub fn with_insert_id(mut self, insert_id: impl Into<String>) -> Self {
        self.insert_id = Some(insert_id.into());
        self
    }

    /// The identity Amplitude partitions on: `device_id`, else `user_id` (spec §9).
    pub fn partition_key(&self) -> Option<&str> {
        self.device_id.as_deref().or(self.user_id.as_deref())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unknown_keys_survive_a_round_trip() {
        // spec §3.2: SDKs send undocumented keys (library, ingestion_metadata, ...)
        let raw = r#"{"event_type":"A","user_id":"user-1","library":"x/1","weird":{"a":1},"$skip_user_properties_sync":true,"productId":"p"}"#;
        let e: Event = serde_json::from_str(raw).unwrap();
        assert_eq!(e.library.as_deref(), Some("x/1"));
        assert_eq!(e.extra.get("weird"), Some(&serde_json::json!({"a":1})));
        assert_eq!(e.skip_user_properties_sync, Some(true));
        assert_eq!(e.product_id.as_deref(), Some("p"));
        let back: Value = serde_json::to_value(&e).unwrap();
        assert_eq!(back, serde_json::from_str::<Value>(raw).unwrap());
    }

    #[test]
    fn request_extras_are_tolerated() {
        // spec §2 "Extra top-level body fields"
        let raw = r#"{"api_key":"k","events":[],"options":{"min_id_length":1},"client_upload_time":"2026-01-01T00:00:00.000Z"}"#;
        let r: UploadRequest = serde_json::from_str(raw).unwrap();
        assert_eq!(r.options.and_then(|o| o.min_id_length), Some(1));
        assert!(r.extra.contains_key("client_upload_time"));
    }
}
