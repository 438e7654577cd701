//! The rule steps the route families share, each in one place:
//!
//! * [`throttle`]: the per-identity EPS and daily-quota step (spec §8, §5.4) of `/2/httpapi`,
//!   `/batch` and `/identify` (spec §10 "Throttling": the V2 guidance applies). It decides,
//!   builds the 429 body and records usage in the limiter.
//! * [`apply_user_properties`]: one user-property update against the 1,800/hour cap
//!   (spec §8.1), counted in the ledger.

use crate::dedup::{fingerprint, FingerprintMap};
use crate::ledger::RejectReason;
use crate::limits::{limited_body, LimitConfig};
use crate::profile::Limits;
use crate::projects::Project;
use crate::properties::{PropertyConfig, PropertyOutcome};
use crate::state::MockState;
use amplitude_wire::Api;
use amplitude_wire::{limits as wl, RateMap, ResponseBody};
use serde_json::{Map, Value};

/// The limiter settings of `endpoint` for a project (spec §8.1): Batch has its own EPS
/// threshold; HTTP V2 and the identify APIs share V2's (spec §10 "Throttling").
pub(crate) fn limit_config(limits: &Limits, endpoint: Api) -> LimitConfig {
    let eps_threshold = match endpoint {
        Api::Batch => limits.eps_threshold_batch,
        _ => limits.eps_threshold_http_v2,
    };
    LimitConfig {
        eps_threshold,
        window_ms: limits.eps_window_ms,
        daily_quota: limits.daily_quota,
        daily_window_ms: wl::DAILY_QUOTA_WINDOW_MS,
        daily_bucket_ms: wl::DAILY_QUOTA_BUCKET_MS,
    }
}

/// Identities a `throttle` fault forces into the 429 (see `faults.rs`): the pipeline runs as
/// usual and, at the throttling step, these are throttled whatever their counts.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct ForcedThrottle<'a> {
    /// This `device_id` is throttled.
    pub device_id: Option<&'a str>,
    /// This `user_id` is throttled.
    pub user_id: Option<&'a str>,
}

impl ForcedThrottle<'_> {
    fn covers(&self, device: bool, id: &str) -> bool {
        let want = if device { self.device_id } else { self.user_id };
        want == Some(id)
    }
}

/// Key of an identity's limiter counters: project, counter family, kind, id. Each endpoint
/// family counts in its own windows: Batch, HTTP V2, and the identify APIs (identify traffic
/// and event traffic do not share windows).
fn identity_key(project: u32, endpoint: Api, device: bool, id: &str) -> u64 {
    let family: &[u8] = match endpoint {
        Api::Batch => b"b",
        Api::HttpV2 => b"v",
        Api::Identify | Api::GroupIdentify | Api::Attribution => b"i",
    };
    let kind: &[u8] = if device { b"d" } else { b"u" };
    fingerprint(&[&project.to_le_bytes(), family, kind, id.as_bytes()])
}

/// Requests of at most this many items find their identities by a linear search (no map).
const SMALL_REQUEST_ITEMS: usize = 8;

/// One identity of a request and its counts.
struct Identity<'a> {
    key: u64,
    device: bool,
    id: &'a str,
    /// Items (events, identifications) of the request naming it.
    events: u64,
}

/// A request the throttling step refused: the 429 body and why.
#[derive(Debug)]
pub(crate) struct Limited {
    /// The 429 body (spec §5.4).
    pub body: ResponseBody,
    /// [`RejectReason::DailyQuota`] when only daily quotas are exceeded, else
    /// [`RejectReason::Throttled`].
    pub reason: RejectReason,
}

/// The per-identity throttling step (spec §8, §5.4). `items` are the request's events or
/// identifications as `[device_id, user_id]` (after any stripping). Every identity is judged
/// on its limiter counts in `endpoint`'s family (profile `eps_count_request_events`: with
/// this request's items added), over the daily quota first (when it applies: always on
/// Batch, per `daily_quota_on_http_v2` on HTTP V2 and identify), else over the EPS
/// threshold or forced by a `throttle` fault.
///
/// `None`: the request passes and its items are recorded. `Some`: the 429 (every item naming
/// a flagged identity is in `throttled_events`), recorded per `count_rejected_toward_eps`,
/// and the listed identities counted in `/metrics`.
pub(crate) fn throttle(
    state: &MockState,
    project: &Project,
    endpoint: Api,
    items: &[[Option<&str>; 2]],
    forced: ForcedThrottle<'_>,
    now: i64,
) -> Option<Limited> {
    let profile = &state.config.profile;
    let cfg = limit_config(&project.limits, endpoint);
    let quota_applies = endpoint == Api::Batch || profile.daily_quota_on_http_v2;
    // At most two identities per item. A small request finds an identity's slot by a
    // linear search; a larger one through a map keyed by the identity's fingerprint.
    let mut identities: Vec<Identity<'_>> = Vec::with_capacity(items.len());
    let mut slots: Option<FingerprintMap<usize>> = (items.len() > SMALL_REQUEST_ITEMS).then(|| {
        FingerprintMap::with_capacity_and_hasher(items.len().saturating_mul(2), Default::default())
    });
    let mut item_slots: Vec<[Option<usize>; 2]> = Vec::with_capacity(items.len());
    for ids in items {
        let mut pair = [None, None];
        for (j, id) in ids.iter().enumerate() {
            let Some(id) = *id else { continue };
            let device = j == 0;
            let key = identity_key(project.id, endpoint, device, id);
            // A new identity takes the next slot.
            let next = identities.len();
            let slot = match &mut slots {
                Some(map) => *map.entry(key).or_insert(next),
                None => identities.iter().position(|i| i.key == key).unwrap_or(next),
            };
            if slot == next {
                identities.push(Identity {
                    key,
                    device,
                    id,
                    events: 0,
                });
            }
            if let Some(ident) = identities.get_mut(slot) {
                ident.events += 1;
            }
            if let Some(p) = pair.get_mut(j) {
                *p = Some(slot);
            }
        }
        item_slots.push(pair);
    }
    let threshold = u64::from(cfg.eps_threshold);
    let keys: Vec<(u64, u64)> = identities.iter().map(|i| (i.key, i.events)).collect();
    // One locked step (limits.rs `Limiter::judge`): the verdict and the recording are atomic
    // per request, so a concurrent request of the same identity is judged after this one.
    let flagged = state.limiter.judge(&keys, now, &cfg, |usages| {
        let mut flagged = vec![false; identities.len()];
        let mut rates: [RateMap; 2] = Default::default();
        let mut quotas: [RateMap; 2] = Default::default();
        for ((ident, flag), usage) in identities.iter().zip(flagged.iter_mut()).zip(usages) {
            let mut usage = *usage;
            if profile.eps_count_request_events {
                // profile `eps_count_request_events`: judged as if this request's items were
                // already in the window (docs/fidelity.md)
                usage.window_events = usage.window_events.saturating_add(ident.events);
            }
            let side = usize::from(!ident.device);
            if quota_applies && usage.over_daily_quota(&cfg) {
                *flag = true;
                if let Some(m) = quotas.get_mut(side) {
                    m.insert(ident.id.to_owned(), usage.daily_events);
                }
            } else if usage.throttled(&cfg) || forced.covers(ident.device, ident.id) {
                *flag = true;
                // A forced (`throttle` fault) identity reports at least threshold + 1: a
                // throttled identity is over the threshold by definition.
                let mut rate = usage.current_rate(&cfg);
                if !usage.throttled(&cfg) {
                    rate = rate.max(threshold.saturating_add(1));
                }
                if let Some(m) = rates.get_mut(side) {
                    m.insert(ident.id.to_owned(), rate);
                }
            }
        }
        if !flagged.iter().any(|f| *f) {
            return (true, None);
        }
        (
            profile.count_rejected_toward_eps,
            Some((flagged, rates, quotas)),
        )
    });
    let (flagged, rates, quotas) = flagged?;
    let throttled_events: Vec<usize> = item_slots
        .iter()
        .enumerate()
        .filter(|(_, pair)| {
            pair.iter()
                .flatten()
                .any(|s| flagged.get(*s) == Some(&true))
        })
        .map(|(i, _)| i)
        .collect();
    let reason = if rates.iter().all(RateMap::is_empty) {
        RejectReason::DailyQuota
    } else {
        RejectReason::Throttled
    };
    let listed = rates.iter().chain(&quotas).map(|m| m.len() as u64).sum();
    state.metrics.add_throttled_identities(listed);
    Some(Limited {
        body: limited_body(threshold, rates, quotas, throttled_events),
        reason,
    })
}

/// The user-property cap of `project` (spec §8.1).
pub(crate) fn property_config(project: &Project) -> PropertyConfig {
    PropertyConfig {
        updates_per_hour: project.limits.property_updates_per_hour,
        window_ms: wl::USER_PROPERTY_WINDOW_MS,
    }
}

/// Applies one event's or identification's `user_properties` to `amplitude_id` (spec §3.3,
/// §8.1) and counts the update (applied or skipped) in the ledger. True when the update was
/// dropped by the hourly cap: the caller records the drop, which it can name.
pub(crate) fn apply_user_properties(
    state: &MockState,
    project: &Project,
    amplitude_id: u64,
    props: &Map<String, Value>,
    skip_sync: bool,
    now: i64,
    pcfg: &PropertyConfig,
) -> bool {
    match state.properties.apply_user_properties(
        project.id,
        amplitude_id,
        props,
        skip_sync,
        now,
        pcfg,
    ) {
        PropertyOutcome::Applied => state.ledger.count_property_update(true),
        PropertyOutcome::Skipped => state.ledger.count_property_update(false),
        PropertyOutcome::Dropped => return true,
        PropertyOutcome::NoUpdate => {}
    }
    false
}
