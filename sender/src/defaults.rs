//! Every default of the sender, defined once: [`crate::CoreConfig::new`],
//! [`crate::SenderConfig::new`], [`crate::BackoffConfig::default`], the builder and the
//! `amplitude-conformance sender` command's flags all read these constants.

use amplitude_wire::limits;

/// Most events per request (clamped to 1..=2,000, spec §3.4): 1,000.
pub const BATCH_SIZE: usize = 1_000;
/// Longest wait of a queued event before a request is formed, ms: 1,000.
pub const FLUSH_INTERVAL_MS: u64 = 1_000;
/// Requests in flight at once, across disjoint identities: 4.
pub const MAX_IN_FLIGHT: usize = 4;
/// Pause of a throttled identity from its last 429, ms (spec §5.4, §8.1): 30,000.
pub const THROTTLE_PAUSE_MS: u64 = limits::THROTTLE_PAUSE_MS;
/// Pause of an identity over its daily quota, ms (spec §8.1, 1-hour buckets): 3,600,000.
pub const DAILY_QUOTA_PAUSE_MS: u64 = limits::DAILY_QUOTA_BUCKET_MS;
/// Window of the per-identity pacing average, ms (spec §8.1): 30,000.
pub const EPS_WINDOW_MS: u64 = limits::EPS_WINDOW_MS;
/// User-property updates allowed per user per [`PROPERTY_WINDOW_MS`] (spec §8.1): 1,800.
pub const PROPERTY_BUDGET: u32 = limits::USER_PROPERTY_UPDATES_PER_HOUR;
/// Window of the property-update budget, ms (spec §8.1): 3,600,000 (1 h).
pub const PROPERTY_WINDOW_MS: u64 = limits::USER_PROPERTY_WINDOW_MS;
/// Fraction of the property budget at which a warning is logged: 0.9.
pub const PROPERTY_WARN_RATIO: f64 = 0.9;
/// Ceiling of the first retry's backoff delay, ms: 200.
pub const BACKOFF_BASE_MS: u64 = 200;
/// Largest backoff ceiling, ms: 30,000.
pub const BACKOFF_CAP_MS: u64 = 30_000;
/// Resends of a request refused without a usable reason before it is bisected: 3.
pub const REFUSED_RETRIES: u32 = 3;
/// Floor of every backoff delay after a failing answer, ms: 150 (above the checker's 100 ms
/// hot-loop gap).
pub const MIN_RETRY_GAP_MS: u64 = 150;
/// Most failing resends in any 1,000 ms: 8 (the checker allows 10).
pub const MAX_FAILING_RESENDS_PER_S: u32 = 8;
/// Whole-request timeout (connect, send, read the body), ms: 10,000 (the SDKs' value,
/// spec §2 "Client timeouts").
pub const REQUEST_TIMEOUT_MS: u64 = 10_000;
/// Drain deadline of a shutdown at end of input or SIGTERM, ms: 30,000.
pub const DRAIN_DEADLINE_MS: u64 = 30_000;
/// The durable queue's log is compacted (rewritten with only its pending events) when it
/// grows past this many bytes and twice its size after the last compaction: 64 MiB.
pub const COMPACT_LOG_BYTES: u64 = 64 << 20;
/// Seed of the backoff jitter: 0.
pub const SEED: u64 = 0;

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{BackoffConfig, Endpoint, SenderConfig};

    #[test]
    fn configs_take_their_defaults_from_here() {
        let c = SenderConfig::new("k", Endpoint::HttpV2, "http://x/2/httpapi", "/tmp/x");
        assert_eq!(c.core.batch_size, BATCH_SIZE);
        assert_eq!(c.core.flush_interval_ms, FLUSH_INTERVAL_MS);
        assert_eq!(c.core.max_in_flight, MAX_IN_FLIGHT);
        assert_eq!(c.core.throttle_pause_ms, THROTTLE_PAUSE_MS);
        assert_eq!(c.core.property_updates_per_window, Some(PROPERTY_BUDGET));
        assert_eq!(c.core.min_retry_gap_ms, MIN_RETRY_GAP_MS);
        assert_eq!(c.request_timeout_ms, REQUEST_TIMEOUT_MS);
        assert_eq!(
            BackoffConfig::default(),
            BackoffConfig {
                base_ms: BACKOFF_BASE_MS,
                cap_ms: BACKOFF_CAP_MS
            }
        );
    }
}
