//! Configuration of the reference sender: endpoint, region, batching, retry and pacing knobs.

use std::path::PathBuf;

use super::backoff::BackoffConfig;
use crate::defaults;

/// The endpoint and region vocabulary shared with the mock, loadgen and the runner.
pub use amplitude_wire::{Endpoint, Region};

/// Knobs of the pure sending state machine ([`crate::Core`]). All times are ms of the
/// injected clock; sizes are bytes of the serialized JSON body.
#[derive(Debug, Clone)]
pub struct CoreConfig {
    /// Project API key, written into every body (spec §3.1).
    pub api_key: String,
    /// Endpoint whose limits the batches honour (spec §3.4).
    pub endpoint: Endpoint,
    /// Most events per request; clamped to 1..=2,000 (spec §3.4). Default 1,000.
    pub batch_size: usize,
    /// Largest body, bytes; clamped to [`Endpoint::max_sendable_body_bytes`] (one byte under
    /// the documented limit). Default: that.
    pub max_body_bytes: usize,
    /// A queued event waits at most this long before a request is formed, ms. Default 1,000.
    pub flush_interval_ms: u64,
    /// Requests in flight at once, across disjoint identities. Default 4.
    pub max_in_flight: usize,
    /// Pause of a throttled identity from its last 429, ms (spec §5.4, §8.1: 30 s).
    pub throttle_pause_ms: u64,
    /// Pause of an identity over its daily quota, ms (spec §8.1: the quota is evaluated in
    /// 1-hour intervals). Default 1 h.
    pub daily_quota_pause_ms: u64,
    /// Exponential backoff with full jitter for 5xx, timeouts, resets, bad bodies (spec §5.5).
    pub backoff: BackoffConfig,
    /// Attempts after which an event is dead-lettered instead of retried; `None` (default)
    /// retries forever. A limit never loses an event: it moves it to the dead-letter file.
    pub max_attempts: Option<u32>,
    /// Sender-side pacing of each `device_id` and `user_id`, events/s averaged over
    /// `eps_window_ms` (spec §8.1, §8.3); `None` disables it. Default: the endpoint's
    /// threshold (30 for HTTP V2). A 429's lower `eps_threshold` lowers it.
    pub identity_eps_limit: Option<u32>,
    /// Window of the pacing average, ms (spec §8.1: 30 s).
    pub eps_window_ms: u64,
    /// User-property updates allowed per user per `property_window_ms` (spec §8.1: 1,800/h);
    /// past it every update is reported (warning + `property_updates_over_budget`), and held
    /// back when `hold_property_updates` is on. `None` disables.
    pub property_updates_per_window: Option<u32>,
    /// Hold updates past the budget until the window frees (up to an hour of delay) instead
    /// of sending them with a warning. Default off: Amplitude still stores the event and
    /// drops only its property update (spec §8.1), so holding would delay the event itself.
    pub hold_property_updates: bool,
    /// Window of the property-update budget, ms (spec §8.1: 1 h).
    pub property_window_ms: u64,
    /// Fraction of the property budget at which a warning is logged and counted. Default 0.9.
    pub property_warn_ratio: f64,
    /// Coalesce a `$set`-only `$identify` into the previous queued, never-sent one of the
    /// same user and device (spec §8.1 budget). The absorbed event is reported as dropped
    /// with reason `coalesced into ...`. Default off.
    pub coalesce_set_identify: bool,
    /// `options.min_id_length` sent with each request (spec §3.1); `None` sends no options.
    pub min_id_length: Option<u32>,
    /// A request refused without a usable reason (a 400 naming no event, `{}`, HTML, 403,
    /// another 4xx; a 413 of a single event) is resent unchanged this many times, with backoff,
    /// before it is bisected; a lone event is dead-lettered only after it was refused alone
    /// `1 + refused_retries` times. Default 3.
    pub refused_retries: u32,
    /// Floor of every backoff delay after an answer that does not ask for a prompt resend
    /// (5xx, timeouts, refusals), per identity and for the whole endpoint, ms. Default 150:
    /// above the checker's 100 ms hot-loop gap whatever the backoff knobs say.
    pub min_retry_gap_ms: u64,
    /// Most resend requests (carrying an event sent before) in flight or answered with a
    /// failing status within any 1,000 ms; clamped to >= 1. Default 8 (the checker allows 10).
    pub max_failing_resends_per_s: u32,
    /// Seed of the jitter RNG: the same seed and the same responses give the same decisions.
    pub seed: u64,
}

impl CoreConfig {
    /// Defaults for `api_key` on `endpoint`, as documented on each field.
    pub fn new(api_key: impl Into<String>, endpoint: Endpoint) -> Self {
        Self {
            api_key: api_key.into(),
            endpoint,
            batch_size: defaults::BATCH_SIZE,
            max_body_bytes: endpoint.max_sendable_body_bytes(),
            flush_interval_ms: defaults::FLUSH_INTERVAL_MS,
            max_in_flight: defaults::MAX_IN_FLIGHT,
            throttle_pause_ms: defaults::THROTTLE_PAUSE_MS,
            daily_quota_pause_ms: defaults::DAILY_QUOTA_PAUSE_MS,
            backoff: BackoffConfig::default(),
            max_attempts: None,
            identity_eps_limit: Some(endpoint.eps_threshold()),
            eps_window_ms: defaults::EPS_WINDOW_MS,
            property_updates_per_window: Some(defaults::PROPERTY_BUDGET),
            property_window_ms: defaults::PROPERTY_WINDOW_MS,
            property_warn_ratio: defaults::PROPERTY_WARN_RATIO,
            coalesce_set_identify: false,
            hold_property_updates: false,
            min_id_length: None,
            refused_retries: defaults::REFUSED_RETRIES,
            min_retry_gap_ms: defaults::MIN_RETRY_GAP_MS,
            max_failing_resends_per_s: defaults::MAX_FAILING_RESENDS_PER_S,
            seed: defaults::SEED,
        }
    }
}

/// Everything [`crate::Sender`] needs: the core's knobs plus where to send and where
/// to keep state.
#[derive(Debug, Clone)]
pub struct SenderConfig {
    /// Batching, retry and pacing knobs.
    pub core: CoreConfig,
    /// Full URL requests are posted to, e.g. `http://127.0.0.1:PORT/2/httpapi`.
    pub url: String,
    /// Directory of the durable queue (`queue.log`) and the dead letters
    /// (`dead_letters.jsonl`); reused on restart to resend what was not confirmed.
    pub state_dir: PathBuf,
    /// Whole-request timeout (connect, send, read the body), ms. Default 10,000 (the SDKs'
    /// value, spec §2 "Client timeouts").
    pub request_timeout_ms: u64,
    /// Compact the durable queue's log when it grows past this many bytes (and twice its
    /// size after the last compaction). Default [`defaults::COMPACT_LOG_BYTES`] (64 MiB).
    pub compact_log_bytes: u64,
    /// Size cap of the durable queue's log, bytes (default none). An append that would
    /// pass it fails as a full disk would (`ErrorKind::StorageFull`): `track` returns the
    /// error, nothing queued is lost, and appends succeed again once compaction has freed
    /// the space confirmed events took. Meant for testing the disk-full path.
    pub max_log_bytes: Option<u64>,
}

impl SenderConfig {
    /// Defaults for `api_key`, posting to `url` on `endpoint`, state in `state_dir`.
    pub fn new(
        api_key: impl Into<String>,
        endpoint: Endpoint,
        url: impl Into<String>,
        state_dir: impl Into<PathBuf>,
    ) -> Self {
        Self {
            core: CoreConfig::new(api_key, endpoint),
            url: url.into(),
            state_dir: state_dir.into(),
            request_timeout_ms: defaults::REQUEST_TIMEOUT_MS,
            compact_log_bytes: defaults::COMPACT_LOG_BYTES,
            max_log_bytes: None,
        }
    }
}
