//! Documented limits of Amplitude's ingestion API, each with the spec section it comes from.
//!
//! Where the spec marks a value UNCERTAIN, the constant is the default the mock's fidelity
//! profile starts from; the profile can change it.

/// Most events one HTTP V2 or Batch request may carry (spec §3.4, §15 #6). Whether exactly
/// 2,000 is allowed is UNCERTAIN; the mock's profile decides (default: allowed).
pub const MAX_EVENTS_PER_REQUEST: usize = 2_000;

/// Largest HTTP V2 body, bytes (spec §3.4: "< 1 MB"; 10^6 or 2^20 is UNCERTAIN, §15 #7).
pub const HTTP_V2_MAX_BODY_BYTES: usize = 1_000_000;

/// Largest Batch body, bytes (spec §3.4: "≤ 20 MB"; units UNCERTAIN, §15 #7).
pub const BATCH_MAX_BODY_BYTES: usize = 20_000_000;

/// Default minimum length of `user_id` / `device_id`, characters (spec §3.4); a request
/// overrides it with `options.min_id_length`.
pub const DEFAULT_MIN_ID_LENGTH: usize = 5;

/// Longest string value Amplitude keeps, characters (spec §3.4 "String length").
pub const MAX_STRING_LENGTH: usize = 1_024;

/// Deepest nesting of property objects (spec §3.2 `event_properties`).
pub const MAX_PROPERTY_DEPTH: usize = 40;

/// Per-device and per-user events/s threshold of HTTP V2 (spec §8.1; 10 in older docs).
pub const HTTP_V2_EPS_THRESHOLD: u32 = 30;

/// Per-device and per-user events/s threshold of Batch (spec §8.1 "EPDS and EPUS").
pub const BATCH_EPS_THRESHOLD: u32 = 1_000;

/// Window over which the events/s rate is averaged, ms (spec §8.1, §8.3).
pub const EPS_WINDOW_MS: u64 = 30_000;

/// How long a sender should pause a throttled identity after a 429, ms (spec §8.1, §15 #10:
/// 30 s for HTTP V2; the Batch doc says 15 s).
pub const THROTTLE_PAUSE_MS: u64 = 30_000;

/// Events per device and per user in a rolling 24 h before the daily quota 429 (spec §8.1).
pub const DAILY_QUOTA_EVENTS: u64 = 500_000;

/// Rolling window of the daily quota, ms (spec §8.1).
pub const DAILY_QUOTA_WINDOW_MS: u64 = 24 * 3_600_000;

/// Granularity at which the daily quota is evaluated, ms (spec §8.1 "1-hour intervals").
pub const DAILY_QUOTA_BUCKET_MS: u64 = 3_600_000;

/// How long an `insert_id` is remembered for deduplication, ms (spec §9: 7 days).
pub const DEDUP_WINDOW_MS: u64 = 7 * 24 * 3_600_000;

/// User-property updates per Amplitude ID per hour before updates are silently dropped
/// (spec §8.1).
pub const USER_PROPERTY_UPDATES_PER_HOUR: u32 = 1_800;

/// Window of the user-property update cap, ms (spec §8.1).
pub const USER_PROPERTY_WINDOW_MS: u64 = 3_600_000;

/// Most group identifications one `/groupidentify` request may carry; more are answered 413
/// (spec §11 "Limits": "≤ 1024 group identifies per request").
pub const MAX_GROUP_IDENTIFIES_PER_REQUEST: usize = 1_024;

/// Most group types per event; more are silently not tracked (spec §3.4 "Groups").
pub const MAX_GROUP_TYPES: usize = 5;

/// Most group values per event (spec §3.4 "Groups").
pub const MAX_GROUP_VALUES: usize = 10;

/// `user_id` / `device_id` values Amplitude answers with a 400 (spec §3.4 "Invalid ID values").
/// Matching is case-insensitive in the mock by default (case handling is UNCERTAIN).
pub const INVALID_ID_VALUES: &[&str] = &[
    "anonymous",
    "nil",
    "none",
    "null",
    "n/a",
    "na",
    "undefined",
    "unknown",
    "",
    "\"\"",
    "00000000-0000-0000-0000-000000000000",
    "{}",
    "lmy47d",
    "0",
    "-1",
];

/// Event types reserved for Amplitude's own use (spec §3.2 `event_type`).
pub const RESERVED_EVENT_TYPES: &[&str] = &[
    "[Amplitude] Start Session",
    "[Amplitude] End Session",
    "[Amplitude] Revenue",
    "[Amplitude] Revenue (Verified)",
    "[Amplitude] Revenue (Unverified)",
    "[Amplitude] Merged User",
];

/// Host of the US ingestion endpoints (spec §1.1).
pub const US_HOST: &str = "api2.amplitude.com";

/// Host of the EU ingestion endpoints (spec §1.1).
pub const EU_HOST: &str = "api.eu.amplitude.com";

/// Path of the HTTP V2 API (spec §1.1).
pub const HTTP_V2_PATH: &str = "/2/httpapi";

/// Path of the Batch Event Upload API (spec §1.1).
pub const BATCH_PATH: &str = "/batch";

/// True when `id` is one of [`INVALID_ID_VALUES`], compared case-insensitively.
pub fn is_invalid_id_value(id: &str) -> bool {
    id.len() <= 36 && INVALID_ID_VALUES.iter().any(|v| v.eq_ignore_ascii_case(id))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn invalid_ids_match_case_insensitively() {
        // spec §3.4 "Invalid ID values"
        assert!(is_invalid_id_value("NULL"));
        assert!(is_invalid_id_value("00000000-0000-0000-0000-000000000000"));
        assert!(is_invalid_id_value(""));
        assert!(!is_invalid_id_value("user-12345"));
    }
}
