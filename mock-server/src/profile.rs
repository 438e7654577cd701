//! The fidelity profile: every behaviour of Amplitude the spec marks UNCERTAIN, as a named
//! knob with a documented default, plus the numeric limits. Loaded from the `[profile]` and
//! `[limits]` tables of the mock's TOML config (see `docs/fidelity.md`).

use amplitude_wire::limits as wl;
use serde::{Deserialize, Serialize};

/// What to do with a `user_id`/`device_id` shorter than `min_id_length` (spec §3.4, §15 #1).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum ShortIdPolicy {
    /// Observed: 400 `Invalid id length for user_id or device_id` with
    /// `events_with_invalid_id_lengths` (default).
    #[default]
    Reject,
    /// Documented: drop the short id from the event; 400 only if no id is left.
    Strip,
}

/// What to do with a string value over 1,024 characters (spec §3.4, §15 #15).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum LongStringPolicy {
    /// Store the event with such strings cut to 1,024 characters (default; what SDKs do).
    #[default]
    Truncate,
    /// 400 `Invalid field values on some events`, field name as the key.
    Reject,
}

/// How many bytes "1 MB" / "20 MB" are (spec §3.4, §15 #7).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum Megabyte {
    /// 10^6 bytes (default).
    #[default]
    Decimal,
    /// 2^20 bytes.
    Binary,
}

/// Which events an `events_with_*` index list names (spec §5.1, §15 #2).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum IndexLists {
    /// Every offending index (default; what SDKs assume).
    #[default]
    All,
    /// Only the first offending index per field (current doc wording).
    First,
}

/// Which fields form the deduplication key (spec §9, §15 #8).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum DedupKey {
    /// `insert_id` + `device_id` (HTTP V2 doc; default).
    #[default]
    InsertIdAndDeviceId,
    /// `insert_id` alone (Batch doc wording).
    InsertId,
}

/// Every UNCERTAIN behaviour as a knob. `Default` gives the documented defaults; each field
/// names its spec section. Unknown keys in a config file are an error.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct FidelityProfile {
    /// Too-short ids: reject (observed) or strip (documented). spec §3.4, §15 #1.
    pub short_id_policy: ShortIdPolicy,
    /// Strings over 1,024 characters: truncate or reject. spec §3.4, §15 #15.
    pub long_strings: LongStringPolicy,
    /// `"events": []` gets 200 with `events_ingested: 0` (true, observed 2020) or 400
    /// `missing_field: events` (false, old doc). spec §3.1, §15 #3.
    pub accept_empty_events: bool,
    /// Exactly `max_events_per_request` (2,000) events is allowed (true) or 413 (false).
    /// spec §3.4, §15 #6.
    pub max_events_inclusive: bool,
    /// Size of a "MB" in the body limits. spec §3.4, §15 #7.
    pub megabyte: Megabyte,
    /// `payload_size_bytes` of a gzip body is the compressed length (true) or the
    /// decompressed length (false). spec §4, §15 #7.
    pub payload_size_is_compressed: bool,
    /// `events_with_*` lists name every offending event or only the first. spec §5.1, §15 #2.
    pub index_lists: IndexLists,
    /// Reserved id values (`null`, `none`, ...) match case-insensitively. spec §3.4.
    pub invalid_ids_case_insensitive: bool,
    /// Reject `Content-Type`s other than JSON and `text/plain` (beacon) with 400
    /// `Invalid JSON request body`. spec §2, §15 #13.
    pub strict_content_type: bool,
    /// Reject reserved `event_type`s (`[Amplitude] Start Session`, ...) as invalid fields.
    /// spec §3.2, §15 #14.
    pub reject_reserved_event_types: bool,
    /// Events of a rejected (429) request count toward the EPS window. spec §8.3.
    pub count_rejected_toward_eps: bool,
    /// Fields of the dedup key. spec §9, §15 #8.
    pub dedup_key: DedupKey,
    /// Deduplicated events count in `events_ingested`. spec §9, §15 #8.
    pub duplicates_count_as_ingested: bool,
    /// The daily quota also applies to HTTP V2 (true) or only to Batch (false). spec §8.1, §15 #9.
    pub daily_quota_on_http_v2: bool,
    /// `/identify`, `/groupidentify` and `/attribution` answer with short text bodies
    /// (`success`, `missing_event`, `invalid_api_key`; true, as third parties observe) or with
    /// JSON `{"code":N}` / `{"code":N,"error":"<token>"}` (false). spec §10, §15 #16.
    pub identify_text_bodies: bool,
    /// A request's own events count toward its identities' EPS window before it is judged
    /// (true: throttled iff `window_events + request_events > eps_threshold * window_ms /
    /// 1000`) or only the events before it do (false, default). UNCERTAIN, spec §8.3.
    pub eps_count_request_events: bool,
}

impl Default for FidelityProfile {
    fn default() -> Self {
        Self {
            short_id_policy: ShortIdPolicy::Reject,
            long_strings: LongStringPolicy::Truncate,
            accept_empty_events: true,
            max_events_inclusive: true,
            megabyte: Megabyte::Decimal,
            payload_size_is_compressed: true,
            index_lists: IndexLists::All,
            invalid_ids_case_insensitive: true,
            strict_content_type: false,
            reject_reserved_event_types: false,
            count_rejected_toward_eps: true,
            dedup_key: DedupKey::InsertIdAndDeviceId,
            duplicates_count_as_ingested: true,
            daily_quota_on_http_v2: true,
            identify_text_bodies: true,
            eps_count_request_events: false,
        }
    }
}

impl FidelityProfile {
    /// Bytes in `mb` megabytes under this profile's definition of a MB.
    pub fn megabytes(&self, mb: usize) -> usize {
        match self.megabyte {
            Megabyte::Decimal => mb.saturating_mul(1_000_000),
            Megabyte::Binary => mb.saturating_mul(1 << 20),
        }
    }

    /// True when `n` events exceed the per-request count limit `max` (spec §3.4; `max` is
    /// [`Limits::max_events_per_request`]): `n > max`, or `n >= max` when
    /// `max_events_inclusive` is false.
    pub fn too_many_events(&self, n: usize, max: usize) -> bool {
        if self.max_events_inclusive {
            n > max
        } else {
            n >= max
        }
    }
}

/// Numeric limits of a project (spec §8.1, §9). Every one can be lowered so tests trigger
/// the rule with small numbers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Limits {
    /// Per-device / per-user threshold of `/2/httpapi` and `/identify` (spec §10: the V2
    /// throttling guidance applies), events/s (spec §8.1; default 30).
    pub eps_threshold_http_v2: u32,
    /// Per-device / per-user threshold of `/batch`, events/s (spec §8.1; default 1,000).
    pub eps_threshold_batch: u32,
    /// Window the rate is averaged over, ms (spec §8.1; default 30,000).
    pub eps_window_ms: u64,
    /// Events per device and per user in a rolling 24 h (spec §8.1; default 500,000).
    pub daily_quota: u64,
    /// User-property updates per Amplitude ID per hour (spec §8.1; default 1,800).
    pub property_updates_per_hour: u32,
    /// How long an `insert_id` is remembered, ms (spec §9; default 7 days).
    pub dedup_window_ms: u64,
    /// Most events one `/2/httpapi` or `/batch` request may carry (spec §3.4; default 2,000):
    /// more is answered 413 `Payload too large`, like the size limit. At least 1.
    pub max_events_per_request: usize,
}

impl Limits {
    /// These limits with every rate and volume rule lifted out of reach, for benchmarking a
    /// sender: the EPS thresholds of `/2/httpapi` and `/batch` (spec §8.1) and the
    /// property-update rate become 2^31 - 1 events (updates) per second (hour), the daily
    /// quota 2^62 events. Unchanged: the EPS window, the dedup window (spec §9) and
    /// `max_events_per_request` (spec §3.4), which a sender must still respect.
    pub fn unthrottled(self) -> Self {
        Self {
            eps_threshold_http_v2: u32::MAX / 2,
            eps_threshold_batch: u32::MAX / 2,
            daily_quota: u64::MAX / 4,
            property_updates_per_hour: u32::MAX / 2,
            ..self
        }
    }
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            eps_threshold_http_v2: wl::HTTP_V2_EPS_THRESHOLD,
            eps_threshold_batch: wl::BATCH_EPS_THRESHOLD,
            eps_window_ms: wl::EPS_WINDOW_MS,
            daily_quota: wl::DAILY_QUOTA_EVENTS,
            property_updates_per_hour: wl::USER_PROPERTY_UPDATES_PER_HOUR,
            dedup_window_ms: wl::DEDUP_WINDOW_MS,
            max_events_per_request: wl::MAX_EVENTS_PER_REQUEST,
        }
    }
}
