//! Per-identity EPS throttling and the daily quota (spec §8.1-§8.3).
//!
//! The pipeline computes one `u64` key per identity (project + endpoint + "device"/"user" +
//! the id), asks [`Limiter::usage`] before accepting a request's events and calls
//! [`Limiter::record`] for the events it counts: accepted ones, and rejected ones too when
//! the profile's `count_rejected_toward_eps` knob is on (spec §8.3 leaves it open; that
//! choice is the caller's).
//!
//! # Model (spec §8.3 "Recommended mock model"; the exact algorithm Amplitude uses is
//! UNCERTAIN, these are the mock's documented choices)
//!
//! * **EPS window.** A sliding window of `window_ms` (30 s, spec §8.1) kept as a ring of
//!   buckets aligned to the epoch: 1-second buckets, `ceil(window_ms / 1000)` of them (30).
//!   `window_events(now)` is the sum of the bucket holding `now` and the buckets before it,
//!   `n` buckets in all, i.e. events recorded in `[floor(now / 1 s) - 29 s, now]`. An event
//!   recorded at `t` therefore counts until `floor(t / 1 s) * 1 s + 30 s`, exclusive: between
//!   29.001 and 30 s. Windows longer than 30 s use 30 wider buckets
//!   (`ceil(window_ms / 30)` ms each).
//! * **Throttled** when `window_events > eps_threshold * window_ms / 1000` (the 30-s average
//!   rate exceeds the threshold: 901 events in 30 s trips HTTP V2's 30 events/s, 900 does
//!   not). The **current rate** reported in `throttled_devices` / `throttled_users`
//!   (spec §8.2) is `ceil(window_events * 1000 / window_ms)` events/s (901 → 31).
//! * **Daily quota.** Rolling 24 h evaluated in 1-hour buckets (spec §8.1): a ring of 24
//!   hour buckets aligned to the epoch (UTC hours); events recorded during hour `h` count
//!   until the start of hour `h + 24`. **Over quota** when `daily_events >= daily_quota`
//!   (spec §8.1: "retry when < 500k in the previous 24 h"); the reported value is
//!   `daily_events`. The ring holds at most 24 buckets: a configuration asking for more is
//!   served with `ceil(daily_window_ms / 24)`-ms buckets.
//! * **Clock going backwards** (a test set it): events already recorded "in the future" have
//!   a negative age, counted as age 0 (still in both windows). Events recorded at a time
//!   earlier than the newest bucket go to their own bucket when the ring still covers it,
//!   else to the oldest bucket the ring holds. Nothing panics at any `i64` time.
//! * **Counts** saturate at `u32::MAX` per bucket.
//! * A key must always be used with the same window geometry (`window_ms`,
//!   `daily_window_ms`, `daily_bucket_ms`); thresholds and quotas may change between calls.
//!
//! # Memory and concurrency
//!
//! 64 shards (chosen from bits 40..46 of a mixed key), each a `parking_lot::Mutex` padded to
//! its own cache lines, holding a `hashbrown::HashTable` of 248-byte entries (two rings, their
//! newest bucket numbers and an expiry time). An identity whose windows have both drained
//! is idle and gets purged: each shard sweeps itself once it has seen as many operations as
//! it held identities at its previous sweep (at least 64), and only when some entry may have
//! expired, so purging is O(1) amortized; [`Limiter::purge_idle`] sweeps everything at once.
//!
//! Time is never read here: every method takes `now_ms` (ms since the epoch) from the mock's
//! injected clock (architecture "Time and determinism").

use amplitude_wire::limits as wl;
use amplitude_wire::{RateMap, ResponseBody};
use hashbrown::HashTable;
use parking_lot::Mutex;

/// Number of shards; a power of two.
const SHARDS: usize = 64;
/// Most EPS buckets a ring holds.
const EPS_BUCKETS: usize = 30;
/// Most daily buckets a ring holds.
const DAILY_BUCKETS: usize = 24;
/// Narrowest EPS bucket, ms.
const EPS_BUCKET_MS: u64 = 1_000;
/// A shard sweeps after at least this many operations since its previous sweep.
const SWEEP_MIN_OPS: u64 = 64;
/// Largest window or bucket length accepted, ms (about 146,000 years); larger values are
/// clamped so bucket arithmetic cannot overflow.
const MAX_SPAN_MS: u64 = 1 << 62;

/// The limits one identity is checked against (spec §8.1): an events/s threshold averaged
/// over a window, and a rolling daily quota.
///
/// The mock's profile builds one per project and endpoint; every value may be lowered so
/// CI can trigger a 429 with small numbers (spec §8.3).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LimitConfig {
    /// Events per second per device or user, averaged over `window_ms` (spec §8.1: 30 for
    /// HTTP V2, 1,000 for Batch). Reported as `eps_threshold` in 429 bodies (spec §8.2).
    pub eps_threshold: u32,
    /// Length of the EPS averaging window, ms (spec §8.1: 30,000). 0 is treated as 1.
    pub window_ms: u64,
    /// Events per identity in `daily_window_ms` at which the daily quota applies (spec §8.1:
    /// 500,000).
    pub daily_quota: u64,
    /// Length of the rolling quota window, ms (spec §8.1: 24 h). 0 is treated as 1.
    pub daily_window_ms: u64,
    /// Granularity of the quota window, ms (spec §8.1: 1 h). Widened to
    /// `ceil(daily_window_ms / 24)` when smaller.
    pub daily_bucket_ms: u64,
}

impl LimitConfig {
    /// HTTP V2 defaults (spec §8.1): 30 events/s over 30 s; 500,000 events per rolling 24 h
    /// in 1-hour buckets.
    pub const fn http_v2() -> Self {
        Self {
            eps_threshold: wl::HTTP_V2_EPS_THRESHOLD,
            window_ms: wl::EPS_WINDOW_MS,
            daily_quota: wl::DAILY_QUOTA_EVENTS,
            daily_window_ms: wl::DAILY_QUOTA_WINDOW_MS,
            daily_bucket_ms: wl::DAILY_QUOTA_BUCKET_MS,
        }
    }

    /// Batch defaults (spec §8.1 "EPDS and EPUS"): 1,000 events/s over 30 s; 500,000 events
    /// per rolling 24 h in 1-hour buckets.
    pub const fn batch() -> Self {
        Self {
            eps_threshold: wl::BATCH_EPS_THRESHOLD,
            ..Self::http_v2()
        }
    }
}

/// One identity's counts at a given time (spec §8.2, §8.3).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Usage {
    /// Events recorded in the EPS window ending now (see the module docs for the bucket
    /// boundaries), events.
    pub window_events: u64,
    /// Events recorded in the rolling daily window ending now, events.
    pub daily_events: u64,
}

impl Usage {
    /// True when the identity's average rate over the window exceeds the threshold:
    /// `window_events * 1000 > eps_threshold * window_ms` (spec §8.3). Such an identity's
    /// events get the 429 and appear in `throttled_devices` / `throttled_users`.
    pub fn throttled(&self, cfg: &LimitConfig) -> bool {
        u128::from(self.window_events) * 1_000
            > u128::from(cfg.eps_threshold) * u128::from(cfg.window_ms.max(1))
    }

    /// Current rate reported for a throttled identity (spec §8.2), events/s:
    /// `ceil(window_events * 1000 / window_ms)`, saturating at `u64::MAX`.
    pub fn current_rate(&self, cfg: &LimitConfig) -> u64 {
        let rate =
            (u128::from(self.window_events) * 1_000).div_ceil(u128::from(cfg.window_ms.max(1)));
        u64::try_from(rate).unwrap_or(u64::MAX)
    }

    /// True when `daily_events >= daily_quota` (spec §8.1 "Daily limit"): the identity goes
    /// into `exceeded_daily_quota_devices` / `_users` with `daily_events` as its value.
    pub fn over_daily_quota(&self, cfg: &LimitConfig) -> bool {
        self.daily_events >= cfg.daily_quota
    }
}

/// The 429 body of the limiter (spec §5.4): `eps_threshold`, the throttled identities with
/// their current rate (events/s), the identities over the daily quota with their daily
/// count, and `throttled_events` (ascending indexes). The `exceeded_daily_quota_*` objects
/// appear only when some identity is over its quota: an EPS-only 429 has exactly the keys of
/// the documented V2 example (spec §5.4, §14.1 #11). `rates` and `quotas` are
/// `[devices, users]`. The only builder of a 429 body: the throttling step (`steps.rs`, for
/// `/2/httpapi`, `/batch`, `/identify` and the `throttle` fault) and the canned 429 of a
/// `status` fault use it.
pub(crate) fn limited_body(
    eps_threshold: u64,
    rates: [RateMap; 2],
    quotas: [RateMap; 2],
    throttled_events: Vec<usize>,
) -> ResponseBody {
    let [throttled_devices, throttled_users] = rates;
    let [quota_devices, quota_users] = quotas;
    ResponseBody {
        throttled_devices: Some(throttled_devices),
        throttled_users: Some(throttled_users),
        throttled_events: Some(throttled_events),
        ..ResponseBody::too_many_requests(eps_threshold)
    }
    .with_exceeded_daily_quota(quota_devices, quota_users)
}

/// Bucket geometry derived from a [`LimitConfig`], all in ms / bucket counts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Geometry {
    /// EPS bucket width, ms (>= 1000).
    eps_width: i64,
    /// EPS buckets in the window, `1..=EPS_BUCKETS`.
    eps_n: i64,
    /// Daily bucket width, ms (>= 1).
    day_width: i64,
    /// Daily buckets in the window, `1..=DAILY_BUCKETS`.
    day_n: i64,
}

/// Width and count of the buckets covering `window` ms with at most `max_n` buckets of at
/// least `min_width` ms each.
fn buckets(window: u64, min_width: u64, max_n: usize) -> (i64, i64) {
    let window = window.clamp(1, MAX_SPAN_MS);
    let width = min_width
        .max(window.div_ceil(max_n as u64))
        .clamp(1, MAX_SPAN_MS);
    let n = window.div_ceil(width).clamp(1, max_n as u64);
    (
        i64::try_from(width).unwrap_or(i64::MAX),
        i64::try_from(n).unwrap_or(1),
    )
}

impl Geometry {
    fn of(cfg: &LimitConfig) -> Self {
        let (eps_width, eps_n) = buckets(cfg.window_ms, EPS_BUCKET_MS, EPS_BUCKETS);
        let (day_width, day_n) = buckets(cfg.daily_window_ms, cfg.daily_bucket_ms, DAILY_BUCKETS);
        Self {
            eps_width,
            eps_n,
            day_width,
            day_n,
        }
    }
}

/// A ring of `N` bucket counts; bucket number `b` (time / width, floored) lives at
/// `b mod n`, and the ring holds buckets `newest - n + 1 ..= newest`.
#[derive(Debug, Clone, Copy)]
struct Ring<const N: usize> {
    counts: [u32; N],
    /// Bucket number of the newest bucket (`i64::MIN` when nothing was recorded).
    newest: i64,
    /// Sum of `counts[..total_n]`, kept by [`Ring::add`]: the window's sum whenever the
    /// query is not past the newest bucket (the common case: no bucket has expired since).
    total: u64,
    /// The window size `total` was kept for (0: none yet).
    total_n: i64,
}

impl<const N: usize> Ring<N> {
    const EMPTY: Self = Self {
        counts: [0; N],
        newest: i64::MIN,
        total: 0,
        total_n: 0,
    };

    #[inline]
    fn pos(bucket: i64, n: i64) -> usize {
        bucket.rem_euclid(n) as usize
    }

    /// Sum of the buckets numbered `> cur - n` (future buckets count: age 0).
    fn sum(&self, cur: i64, n: i64) -> u64 {
        if self.newest == i64::MIN {
            return 0;
        }
        if cur <= self.newest && n == self.total_n {
            // The window holds buckets `newest - n + 1 ..= newest`: every slot of the ring.
            return self.total;
        }
        let lo = self
            .newest
            .saturating_sub(n - 1)
            .max(cur.saturating_sub(n - 1));
        // At most `n` buckets; counted so that `newest == i64::MAX` cannot overflow.
        let count = self.newest.saturating_sub(lo).clamp(-1, n - 1);
        let Ok(len) = usize::try_from(count + 1) else {
            return 0;
        };
        // The buckets lie at positions pos(lo), pos(lo) + 1, ... of the ring's first n
        // slots, wrapping once at most: sum two contiguous slices (one division, not one per
        // bucket; the hot path of every identity check, docs/benchmarks.md).
        let used = &self.counts[..usize::try_from(n).unwrap_or(N).min(N)];
        let start = Self::pos(lo, n).min(used.len());
        let head = len.min(used.len() - start);
        let total = |s: &[u32]| s.iter().map(|&c| u64::from(c)).sum::<u64>();
        total(used.get(start..start + head).unwrap_or(&[]))
            + total(used.get(..len - head).unwrap_or(&[]))
    }

    /// Adds `events` at bucket `cur` (see the module docs for a clock that went back).
    fn add(&mut self, cur: i64, n: i64, events: u32) {
        if n != self.total_n {
            let used = usize::try_from(n).unwrap_or(N).min(N);
            self.total = self.counts.iter().take(used).map(|&c| u64::from(c)).sum();
            self.total_n = n;
        }
        let target = if cur > self.newest {
            let steps = cur.saturating_sub(self.newest);
            if steps >= n {
                self.counts = [0; N];
                self.total = 0;
            } else {
                for i in 1..=steps {
                    if let Some(c) = self.counts.get_mut(Self::pos(self.newest + i, n)) {
                        self.total = self.total.saturating_sub(u64::from(*c));
                        *c = 0;
                    }
                }
            }
            self.newest = cur;
            cur
        } else {
            cur.max(self.newest.saturating_sub(n - 1))
        };
        if let Some(c) = self.counts.get_mut(Self::pos(target, n)) {
            let before = *c;
            *c = c.saturating_add(events);
            self.total += u64::from(*c - before);
        }
    }

    /// First ms at which every recorded bucket has left a window of `n` buckets of `width`.
    fn drained_at(&self, n: i64, width: i64) -> i64 {
        if self.newest == i64::MIN {
            return i64::MIN;
        }
        self.newest.saturating_add(n).saturating_mul(width)
    }
}

/// Counters of one identity.
#[derive(Debug, Clone, Copy)]
struct Entry {
    key: u64,
    eps: Ring<EPS_BUCKETS>,
    day: Ring<DAILY_BUCKETS>,
    /// When both rings will have drained, ms; the entry is idle (purgeable) from then on.
    idle_at: i64,
}

impl Entry {
    fn new(key: u64) -> Self {
        Self {
            key,
            eps: Ring::EMPTY,
            day: Ring::EMPTY,
            idle_at: i64::MIN,
        }
    }

    fn usage(&self, now: i64, geo: &Geometry) -> Usage {
        Usage {
            window_events: self.eps.sum(now.div_euclid(geo.eps_width), geo.eps_n),
            daily_events: self.day.sum(now.div_euclid(geo.day_width), geo.day_n),
        }
    }

    fn record(&mut self, events: u32, now: i64, geo: &Geometry) {
        self.eps
            .add(now.div_euclid(geo.eps_width), geo.eps_n, events);
        self.day
            .add(now.div_euclid(geo.day_width), geo.day_n, events);
        self.idle_at = self
            .eps
            .drained_at(geo.eps_n, geo.eps_width)
            .max(self.day.drained_at(geo.day_n, geo.day_width));
    }
}

/// Bijective 64-bit mixer (murmur3 fmix64), so weak keys still spread over shards and slots.
#[inline]
fn mix(mut x: u64) -> u64 {
    x ^= x >> 33;
    x = x.wrapping_mul(0xff51_afd7_ed55_8ccd);
    x ^= x >> 33;
    x = x.wrapping_mul(0xc4ce_b9fe_1a85_ec53);
    x ^= x >> 33;
    x
}

/// One shard's identities and its sweep bookkeeping.
struct Shard {
    table: HashTable<Entry>,
    /// Operations since the previous sweep.
    ops: u64,
    /// Identities held right after the previous sweep.
    swept_len: usize,
    /// Lower bound of the entries' `idle_at`, ms: no sweep is useful before it.
    earliest_idle: i64,
}

impl Default for Shard {
    fn default() -> Self {
        Self {
            table: HashTable::new(),
            ops: 0,
            swept_len: 0,
            earliest_idle: i64::MAX,
        }
    }
}

impl Shard {
    /// Counts one operation and sweeps when the amortization budget allows and something
    /// may be idle.
    #[inline]
    fn tick(&mut self, now: i64) {
        self.ops += 1;
        if self.ops >= SWEEP_MIN_OPS.max(self.swept_len as u64) && now >= self.earliest_idle {
            self.sweep(now);
        }
    }

    /// Counts `events` (0 does nothing) for identity `key` (mixed: `h`) at `now` in both rings.
    fn record(&mut self, key: u64, h: u64, events: u64, now: i64, geo: &Geometry) {
        if events == 0 {
            return;
        }
        let events = u32::try_from(events).unwrap_or(u32::MAX);
        let entry = match self.table.find_mut(h, |e| e.key == key) {
            Some(e) => e,
            None => self
                .table
                .insert_unique(h, Entry::new(key), |e| mix(e.key))
                .into_mut(),
        };
        entry.record(events, now, geo);
        let idle_at = entry.idle_at;
        self.earliest_idle = self.earliest_idle.min(idle_at);
        self.tick(now);
    }

    /// Removes the entries idle at `now`; returns how many. O(entries).
    fn sweep(&mut self, now: i64) -> usize {
        let before = self.table.len();
        let mut earliest = i64::MAX;
        self.table.retain(|e| {
            let keep = e.idle_at > now;
            if keep {
                earliest = earliest.min(e.idle_at);
            }
            keep
        });
        let len = self.table.len();
        if len < self.table.capacity() / 4 {
            self.table.shrink_to(len * 2, |e| mix(e.key));
        }
        self.earliest_idle = earliest;
        self.swept_len = len;
        self.ops = 0;
        before - len
    }
}

/// The shard of mixed key `h` among `guards` (locked shards, ascending by index).
fn guard_of<'a>(
    guards: &'a mut [(usize, parking_lot::MutexGuard<'_, Shard>)],
    h: u64,
) -> Option<&'a mut Shard> {
    let i = Limiter::shard_index(h);
    let at = guards.binary_search_by_key(&i, |g| g.0).ok()?;
    guards.get_mut(at).map(|g| &mut *g.1)
}

/// A shard padded to two cache lines so neighbouring locks do not false-share.
#[derive(Default)]
#[repr(align(128))]
struct Padded(Mutex<Shard>);

/// Per-identity EPS and daily-quota counters (spec §8.1-§8.3), sharded over 64
/// `parking_lot::Mutex`es; `Send + Sync`, every method takes `&self` and is O(1)
/// (amortized, for the idle purge) except [`Limiter::purge_idle`],
/// [`Limiter::active_identities`] and [`Limiter::clear`]. See the module docs for the model.
pub struct Limiter {
    shards: Box<[Padded]>,
}

impl std::fmt::Debug for Limiter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Limiter")
            .field("shards", &self.shards.len())
            .finish_non_exhaustive()
    }
}

impl Default for Limiter {
    fn default() -> Self {
        Self::new()
    }
}

impl Limiter {
    /// An empty limiter (64 empty shards, about 8 KiB).
    pub fn new() -> Self {
        Self {
            shards: (0..SHARDS).map(|_| Padded::default()).collect(),
        }
    }

    /// The shard of mixed key `h` (bits 40..46: hashbrown uses the low bits for the slot and
    /// the top 7 for its tag).
    #[inline]
    fn shard(&self, h: u64) -> &Mutex<Shard> {
        &self.shards[Self::shard_index(h)].0
    }

    /// Index of the shard of mixed key `h`.
    #[inline]
    fn shard_index(h: u64) -> usize {
        ((h >> 40) as usize) & (SHARDS - 1)
    }

    /// Counts of identity `key` at `now_ms` (ms since the epoch) under `cfg`'s window
    /// geometry (spec §8.3): events in the EPS window and in the rolling daily window. An
    /// unknown identity has zero usage. Records nothing; O(buckets) = O(1).
    pub fn usage(&self, key: u64, now_ms: i64, cfg: &LimitConfig) -> Usage {
        let geo = Geometry::of(cfg);
        let h = mix(key);
        let mut shard = self.shard(h).lock();
        let usage = shard
            .table
            .find(h, |e| e.key == key)
            .map(|e| e.usage(now_ms, &geo))
            .unwrap_or_default();
        shard.tick(now_ms);
        usage
    }

    /// Counts `events` events for identity `key` at `now_ms` (ms since the epoch) in both
    /// windows (spec §8.3). Call it for accepted events, and for rejected ones when the
    /// profile counts them. `events == 0` does nothing. Bucket counts saturate at
    /// `u32::MAX`. O(1) amortized.
    pub fn record(&self, key: u64, events: u64, now_ms: i64, cfg: &LimitConfig) {
        if events == 0 {
            return;
        }
        let geo = Geometry::of(cfg);
        let h = mix(key);
        self.shard(h).lock().record(key, h, events, now_ms, &geo);
    }

    /// Judges and records one request's identities in a single locked step (spec §8.1-§8.3):
    /// `identities` are `(key, events)` pairs, distinct keys, `events` the request's items
    /// naming each. Every shard they fall in is locked once, in ascending shard order (so two
    /// requests never deadlock and no other request's counts move in between), `decide` gets
    /// their [`Usage`] at `now_ms` in the same order, and when it answers `(true, _)` each
    /// identity's `events` are recorded before the locks are released. Returns `decide`'s
    /// second value. Equivalent to [`Limiter::usage`] for each identity, then
    /// [`Limiter::record`] for each when recording, but atomic: two concurrent requests of
    /// one identity are judged one after the other, never both on the counts before either.
    pub fn judge<R>(
        &self,
        identities: &[(u64, u64)],
        now_ms: i64,
        cfg: &LimitConfig,
        decide: impl FnOnce(&[Usage]) -> (bool, R),
    ) -> R {
        let geo = Geometry::of(cfg);
        let mut mask = 0u64;
        for &(key, _) in identities {
            mask |= 1u64 << Self::shard_index(mix(key));
        }
        // The touched shards' guards, ascending by shard index (the lock order).
        let mut guards = Vec::with_capacity(mask.count_ones() as usize);
        let mut rest = mask;
        while rest != 0 {
            let i = rest.trailing_zeros() as usize;
            rest &= rest - 1;
            if let Some(shard) = self.shards.get(i) {
                guards.push((i, shard.0.lock()));
            }
        }
        // Most requests name 1 to 4 identities: their usages stay on the stack.
        let mut few = [Usage::default(); 4];
        let mut many = Vec::new();
        let usages: &mut [Usage] = match few.get_mut(..identities.len()) {
            Some(few) => few,
            None => {
                many.resize(identities.len(), Usage::default());
                &mut many
            }
        };
        for (&(key, _), usage) in identities.iter().zip(usages.iter_mut()) {
            let h = mix(key);
            if let Some(shard) = guard_of(&mut guards, h) {
                if let Some(e) = shard.table.find(h, |e| e.key == key) {
                    *usage = e.usage(now_ms, &geo);
                }
                shard.tick(now_ms);
            }
        }
        let (record, answer) = decide(usages);
        if record {
            for &(key, events) in identities {
                let h = mix(key);
                if let Some(shard) = guard_of(&mut guards, h) {
                    shard.record(key, h, events, now_ms, &geo);
                }
            }
        }
        answer
    }

    /// Removes every identity idle at `now_ms` (both windows drained, as of the geometry it
    /// was last recorded with) from all shards; returns how many were removed. O(identities):
    /// for a periodic or inspection call; the hot path purges by itself.
    pub fn purge_idle(&self, now_ms: i64) -> usize {
        self.shards.iter().map(|s| s.0.lock().sweep(now_ms)).sum()
    }

    /// Identities currently held (recorded and not yet purged). O(shards).
    pub fn active_identities(&self) -> usize {
        self.shards.iter().map(|s| s.0.lock().table.len()).sum()
    }

    /// Forgets every identity and frees the memory (the mock's `POST /__mock/reset`).
    pub fn clear(&self) {
        for s in self.shards.iter() {
            *s.0.lock() = Shard::default();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::collections::HashMap;

    const SEC: i64 = 1_000;
    const HOUR: i64 = 3_600_000;
    /// 2023-11-14T00:00:00Z: aligned to seconds and hours.
    const T0: i64 = 1_699_920_000_000;

    /// The ring's sum as first written: one `rem_euclid` per bucket.
    fn sum_reference<const N: usize>(r: &Ring<N>, cur: i64, n: i64) -> u64 {
        if r.newest == i64::MIN {
            return 0;
        }
        let lo = r
            .newest
            .saturating_sub(n - 1)
            .max(cur.saturating_sub(n - 1));
        let count = r.newest.saturating_sub(lo).clamp(-1, n - 1);
        (0..=count)
            .map(|i| {
                u64::from(
                    r.counts
                        .get(Ring::<N>::pos(lo + i, n))
                        .copied()
                        .unwrap_or(0),
                )
            })
            .sum()
    }

    proptest! {
        /// The two-slice sum equals the per-bucket sum for any history of adds and any
        /// query time, window size and clock that goes back.
        #[test]
        fn ring_sum_equals_the_per_bucket_sum(
            n in 1i64..=30,
            ops in proptest::collection::vec((-40i64..200, 0u32..1_000), 0..60),
            queries in proptest::collection::vec(-40i64..260, 1..20),
        ) {
            let mut r = Ring::<EPS_BUCKETS>::EMPTY;
            for (cur, events) in ops {
                r.add(cur, n, events);
                for &q in &queries {
                    prop_assert_eq!(r.sum(q, n), sum_reference(&r, q, n));
                }
            }
        }

        /// The kept total stays the window's sum when the window size changes between
        /// adds (a project's limits changed) and when bucket counts saturate.
        #[test]
        fn ring_sum_holds_across_window_changes_and_saturation(
            ops in proptest::collection::vec(
                (-40i64..200, prop_oneof![0u32..1_000, Just(u32::MAX)], 1i64..=30),
                0..60,
            ),
            queries in proptest::collection::vec((-40i64..260, 1i64..=30), 1..20),
        ) {
            let mut r = Ring::<EPS_BUCKETS>::EMPTY;
            for (cur, events, n) in ops {
                r.add(cur, n, events);
                for &(q, qn) in &queries {
                    prop_assert_eq!(r.sum(q, qn), sum_reference(&r, q, qn));
                }
            }
        }
    }

    #[test]
    fn presets_match_the_documented_numbers() {
        // spec §8.1
        let v2 = LimitConfig::http_v2();
        assert_eq!(
            (
                v2.eps_threshold,
                v2.window_ms,
                v2.daily_quota,
                v2.daily_window_ms,
                v2.daily_bucket_ms
            ),
            (30, 30_000, 500_000, 86_400_000, 3_600_000)
        );
        let batch = LimitConfig::batch();
        assert_eq!(batch.eps_threshold, 1_000);
        assert_eq!(batch.window_ms, 30_000);
        assert_eq!(
            Geometry::of(&v2),
            Geometry {
                eps_width: 1_000,
                eps_n: 30,
                day_width: 3_600_000,
                day_n: 24
            }
        );
    }

    #[test]
    fn geometry_for_other_windows() {
        // spec §8.3: windows are configurable
        let mut cfg = LimitConfig::http_v2();
        cfg.window_ms = 10_000;
        assert_eq!(Geometry::of(&cfg).eps_width, 1_000);
        assert_eq!(Geometry::of(&cfg).eps_n, 10);
        cfg.window_ms = 60_000;
        assert_eq!(
            (Geometry::of(&cfg).eps_width, Geometry::of(&cfg).eps_n),
            (2_000, 30)
        );
        cfg.window_ms = 1_500;
        assert_eq!(
            (Geometry::of(&cfg).eps_width, Geometry::of(&cfg).eps_n),
            (1_000, 2)
        );
        cfg.window_ms = 0;
        assert_eq!(
            (Geometry::of(&cfg).eps_width, Geometry::of(&cfg).eps_n),
            (1_000, 1)
        );
        cfg.daily_window_ms = 60_000;
        cfg.daily_bucket_ms = 1_000;
        assert_eq!(
            (Geometry::of(&cfg).day_width, Geometry::of(&cfg).day_n),
            (2_500, 24)
        );
        cfg.daily_bucket_ms = 0;
        cfg.daily_window_ms = 0;
        assert_eq!(
            (Geometry::of(&cfg).day_width, Geometry::of(&cfg).day_n),
            (1, 1)
        );
        cfg.window_ms = u64::MAX;
        cfg.daily_window_ms = u64::MAX;
        cfg.daily_bucket_ms = u64::MAX;
        let geo = Geometry::of(&cfg);
        assert!(geo.eps_width > 0 && geo.day_width > 0);
    }

    #[test]
    fn burst_of_901_in_one_second_is_throttled_at_rate_31() {
        // spec §8.3: throttle when count_in_window / 30 > 30; §8.2: report ceil(count / 30)
        let cfg = LimitConfig::http_v2();
        let limiter = Limiter::new();
        limiter.record(1, 901, T0 + 200, &cfg);
        let u = limiter.usage(1, T0 + 800, &cfg);
        assert_eq!(
            u,
            Usage {
                window_events: 901,
                daily_events: 901
            }
        );
        assert!(u.throttled(&cfg));
        assert_eq!(u.current_rate(&cfg), 31);
        assert!(!u.over_daily_quota(&cfg));
    }

    #[test]
    fn burst_of_900_is_not_throttled() {
        // spec §8.3: 900 events in 30 s is exactly 30 events/s, not above it
        let cfg = LimitConfig::http_v2();
        let limiter = Limiter::new();
        limiter.record(1, 900, T0, &cfg);
        let u = limiter.usage(1, T0, &cfg);
        assert_eq!(u.window_events, 900);
        assert!(!u.throttled(&cfg));
        assert_eq!(u.current_rate(&cfg), 30);
    }

    #[test]
    fn batch_threshold_trips_above_30000_in_30s() {
        // spec §8.1: Batch 1,000 EPDS averaged over 30 s => 30,000 events trip it
        let cfg = LimitConfig::batch();
        let limiter = Limiter::new();
        limiter.record(5, 30_000, T0, &cfg);
        assert!(!limiter.usage(5, T0, &cfg).throttled(&cfg));
        limiter.record(5, 1, T0 + 29 * SEC, &cfg);
        let u = limiter.usage(5, T0 + 29 * SEC, &cfg);
        assert!(u.throttled(&cfg));
        assert_eq!(u.current_rate(&cfg), 1_001);
    }

    #[test]
    fn window_drains_after_30_seconds() {
        // spec §8.1: pause the identity 30 s; spec §8.3: sliding 30-s window
        let cfg = LimitConfig::http_v2();
        let limiter = Limiter::new();
        limiter.record(1, 901, T0, &cfg);
        let u = limiter.usage(1, T0 + 30 * SEC - 1, &cfg);
        assert_eq!(u.window_events, 901);
        assert!(u.throttled(&cfg));
        let u = limiter.usage(1, T0 + 30 * SEC, &cfg);
        assert_eq!(u.window_events, 0);
        assert!(!u.throttled(&cfg));
        assert_eq!(u.current_rate(&cfg), 0);
        // The daily window still holds them.
        assert_eq!(u.daily_events, 901);
    }

    #[test]
    fn buckets_expire_one_second_at_a_time() {
        // spec §8.3: sliding 30-s window over 1-s buckets; events spread over 40 s
        let cfg = LimitConfig::http_v2();
        let limiter = Limiter::new();
        for i in 0..40i64 {
            limiter.record(9, (i + 1) as u64, T0 + i * SEC + 500, &cfg);
        }
        // At second 39: seconds 10..=39 hold 11..=40 events.
        assert_eq!(
            limiter.usage(9, T0 + 39 * SEC + 999, &cfg).window_events,
            765
        );
        // At second 45: seconds 16..=39 hold 17..=40 events.
        assert_eq!(limiter.usage(9, T0 + 45 * SEC, &cfg).window_events, 684);
        // At second 68 only second 39 (40 events) is left; at 69 nothing.
        assert_eq!(
            limiter.usage(9, T0 + 68 * SEC + 999, &cfg).window_events,
            40
        );
        assert_eq!(limiter.usage(9, T0 + 69 * SEC, &cfg).window_events, 0);
        assert_eq!(limiter.usage(9, T0 + 69 * SEC, &cfg).daily_events, 820);
    }

    #[test]
    fn daily_quota_rolls_over_hourly() {
        // spec §8.1: 500,000 per rolling 24 h evaluated in 1-hour intervals; retry when
        // < 500k in the previous 24 h
        let cfg = LimitConfig::http_v2();
        let limiter = Limiter::new();
        limiter.record(3, 400_000, T0 + 10 * SEC, &cfg);
        limiter.record(3, 100_000, T0 + HOUR + 5 * SEC, &cfg);
        let u = limiter.usage(3, T0 + HOUR + 10 * SEC, &cfg);
        assert_eq!(u.daily_events, 500_000);
        assert!(u.over_daily_quota(&cfg));
        assert!(u.throttled(&cfg)); // 100,000 in the last 30 s as well
        let u = limiter.usage(3, T0 + 24 * HOUR - 1, &cfg);
        assert_eq!(
            u,
            Usage {
                window_events: 0,
                daily_events: 500_000
            }
        );
        assert!(u.over_daily_quota(&cfg));
        // Hour 0 drops out at the start of hour 24.
        let u = limiter.usage(3, T0 + 24 * HOUR, &cfg);
        assert_eq!(u.daily_events, 100_000);
        assert!(!u.over_daily_quota(&cfg));
        assert_eq!(limiter.usage(3, T0 + 25 * HOUR, &cfg).daily_events, 0);
    }

    #[test]
    fn identities_are_independent() {
        // spec §8.1: limits are per device_id and per user_id
        let cfg = LimitConfig::http_v2();
        let limiter = Limiter::new();
        limiter.record(100, 2_000, T0, &cfg);
        limiter.record(101, 10, T0, &cfg);
        let a = limiter.usage(100, T0 + SEC, &cfg);
        let b = limiter.usage(101, T0 + SEC, &cfg);
        assert!(a.throttled(&cfg));
        assert_eq!(a.current_rate(&cfg), 67);
        assert_eq!(
            b,
            Usage {
                window_events: 10,
                daily_events: 10
            }
        );
        assert!(!b.throttled(&cfg));
        assert_eq!(limiter.usage(102, T0 + SEC, &cfg), Usage::default());
        assert_eq!(limiter.active_identities(), 2);
    }

    #[test]
    fn explicit_purge_removes_idle_identities() {
        // spec §8.3: counters are per identity; idle ones must not hold memory forever
        let cfg = LimitConfig::http_v2();
        let limiter = Limiter::new();
        for k in 0..100u64 {
            limiter.record(k, 1, T0, &cfg);
        }
        assert_eq!(limiter.active_identities(), 100);
        assert_eq!(limiter.purge_idle(T0 + 24 * HOUR - 1), 0);
        assert_eq!(limiter.active_identities(), 100);
        assert_eq!(limiter.purge_idle(T0 + 24 * HOUR), 100);
        assert_eq!(limiter.active_identities(), 0);
    }

    #[test]
    fn hot_path_purges_idle_identities_by_itself() {
        // spec §8.3 + architecture "Performance targets": amortized O(1) purge
        let cfg = LimitConfig::http_v2();
        let limiter = Limiter::new();
        for k in 0..1_000u64 {
            limiter.record(k, 1, T0, &cfg);
        }
        assert_eq!(limiter.active_identities(), 1_000);
        // A day later, 6,400 other identities send (about 100 per shard, >= 64 each).
        let later = T0 + 24 * HOUR + SEC;
        for k in 10_000..16_400u64 {
            limiter.record(k, 1, later, &cfg);
        }
        assert_eq!(limiter.active_identities(), 6_400);
        for k in 0..1_000u64 {
            assert_eq!(limiter.usage(k, later, &cfg), Usage::default());
        }
        limiter.clear();
        assert_eq!(limiter.active_identities(), 0);
    }

    #[test]
    fn clock_going_backwards_never_panics() {
        // architecture "Time and determinism": tests may set the clock back; negative ages
        // count as age 0
        let cfg = LimitConfig::http_v2();
        let limiter = Limiter::new();
        limiter.record(1, 10, T0 + HOUR, &cfg);
        limiter.record(1, 5, T0, &cfg);
        // At T0 the "future" events count (age 0); the late 5 went to the oldest EPS bucket
        // still held and to their own hour bucket.
        assert_eq!(
            limiter.usage(1, T0, &cfg),
            Usage {
                window_events: 15,
                daily_events: 15
            }
        );
        assert_eq!(
            limiter.usage(1, T0 + HOUR, &cfg),
            Usage {
                window_events: 15,
                daily_events: 15
            }
        );
        assert_eq!(
            limiter.usage(1, T0 + HOUR + 29 * SEC, &cfg),
            Usage {
                window_events: 10,
                daily_events: 15
            }
        );
        assert_eq!(limiter.usage(1, T0 + 24 * HOUR, &cfg).daily_events, 10);
        for now in [i64::MIN, i64::MIN + 1, -1, 0, 1, i64::MAX - 1, i64::MAX, T0] {
            for cfg in [
                cfg,
                LimitConfig {
                    window_ms: 0,
                    daily_window_ms: 0,
                    daily_bucket_ms: 0,
                    ..cfg
                },
            ] {
                limiter.record(2, u64::MAX, now, &cfg);
                let u = limiter.usage(2, now, &cfg);
                assert!(u.window_events >= u64::from(u32::MAX));
                let _ = u.current_rate(&cfg);
            }
        }
        let _ = limiter.purge_idle(i64::MIN);
        let _ = limiter.purge_idle(i64::MAX);
        assert_eq!(limiter.active_identities(), 0);
    }

    #[test]
    fn rate_and_throttle_edge_values() {
        // spec §8.2: current rate is an integer, rounded up
        let cfg = LimitConfig::http_v2();
        let u = |n| Usage {
            window_events: n,
            daily_events: n,
        };
        assert_eq!(u(0).current_rate(&cfg), 0);
        assert_eq!(u(1).current_rate(&cfg), 1);
        assert_eq!(u(930).current_rate(&cfg), 31);
        assert_eq!(u(931).current_rate(&cfg), 32);
        assert_eq!(u(120_000).current_rate(&cfg), 4_000);
        assert!(!u(499_999).over_daily_quota(&cfg));
        assert!(u(500_000).over_daily_quota(&cfg));
        assert_eq!(u(u64::MAX).current_rate(&cfg), u64::MAX.div_ceil(30));
        let zero = LimitConfig {
            window_ms: 0,
            eps_threshold: 0,
            ..cfg
        };
        assert!(u(1).throttled(&zero));
        assert!(!u(0).throttled(&zero));
    }

    #[test]
    fn concurrent_judges_of_one_identity_never_both_pass_on_the_same_counts() {
        // spec §8.3: a request is judged on the counts including every request judged
        // before it. With `judge`, 2 threads x 200 requests of 10 events each for one device
        // under a 900-event window: exactly 90 requests pass, whatever the interleaving
        // (usage-then-record in two steps let two requests pass on the same counts).
        let cfg = LimitConfig::http_v2();
        let limiter = Limiter::new();
        let passed = std::sync::atomic::AtomicU64::new(0);
        std::thread::scope(|s| {
            for _ in 0..2 {
                s.spawn(|| {
                    for _ in 0..200 {
                        let ok = limiter.judge(&[(7, 10), (8, 10)], T0, &cfg, |u| {
                            let after = Usage {
                                window_events: u[0].window_events + 10,
                                ..u[0]
                            };
                            let ok = !after.throttled(&cfg);
                            (ok, ok)
                        });
                        if ok {
                            passed.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                        }
                    }
                });
            }
        });
        assert_eq!(passed.into_inner(), 90);
        assert_eq!(limiter.usage(7, T0, &cfg).window_events, 900);
        assert_eq!(limiter.usage(8, T0, &cfg).window_events, 900);
    }

    #[test]
    fn concurrent_records_all_count() {
        // spec §8.3: counters shared by all request handlers
        let cfg = LimitConfig::batch();
        let limiter = Limiter::new();
        std::thread::scope(|s| {
            for _ in 0..2 {
                s.spawn(|| {
                    for i in 0..5_000u64 {
                        limiter.record(i % 50, 1, T0, &cfg);
                    }
                });
            }
        });
        for k in 0..50u64 {
            assert_eq!(limiter.usage(k, T0, &cfg).window_events, 200);
        }
    }

    #[test]
    fn is_send_and_sync() {
        fn assert_send_sync<T: Send + Sync>() {}
        assert_send_sync::<Limiter>();
    }

    /// The naive model: every record kept as (time, events); sums recomputed from the
    /// documented bucket rule with independently derived geometry.
    #[derive(Default)]
    struct Reference {
        records: HashMap<u64, Vec<(i64, u64)>>,
    }

    impl Reference {
        fn usage(&self, key: u64, now: i64, cfg: &LimitConfig) -> Usage {
            // Documented geometry: 1-s EPS buckets, ceil(window / 1 s) of them, at most 30;
            // daily buckets of max(bucket, ceil(window / 24)), at most 24.
            let eps_w = 1_000i64.max(cfg.window_ms.div_ceil(30) as i64);
            let eps_n = (cfg.window_ms as i64 + eps_w - 1) / eps_w;
            let day_w = (cfg.daily_bucket_ms as i64).max(cfg.daily_window_ms.div_ceil(24) as i64);
            let day_n = (cfg.daily_window_ms as i64 + day_w - 1) / day_w;
            let in_window = |t: i64, w: i64, n: i64| t.div_euclid(w) > now.div_euclid(w) - n;
            let recs = self.records.get(&key).map(Vec::as_slice).unwrap_or(&[]);
            Usage {
                window_events: recs
                    .iter()
                    .filter(|r| in_window(r.0, eps_w, eps_n))
                    .map(|r| r.1)
                    .sum(),
                daily_events: recs
                    .iter()
                    .filter(|r| in_window(r.0, day_w, day_n))
                    .map(|r| r.1)
                    .sum(),
            }
        }
    }

    #[derive(Debug, Clone)]
    enum Op {
        Record(u64, u64),
        Usage(u64),
        /// `judge` of (key, events) pairs (distinct keys), recording when `record`.
        Judge(Vec<(u64, u64)>, bool),
        Advance(i64),
        Purge,
    }

    fn op() -> impl Strategy<Value = Op> {
        prop_oneof![
            5 => ((0u64..5), (1u64..1_500)).prop_map(|(k, n)| Op::Record(k, n)),
            4 => (0u64..5).prop_map(Op::Usage),
            3 => (proptest::collection::btree_map(0u64..5, 0u64..1_500, 1..4), any::<bool>())
                .prop_map(|(m, record)| Op::Judge(m.into_iter().collect(), record)),
            4 => prop_oneof![
                0i64..1_500,
                0i64..40_000,
                0i64..(2 * HOUR),
                0i64..(30 * HOUR),
            ].prop_map(Op::Advance),
            1 => Just(Op::Purge),
        ]
    }

    fn config() -> impl Strategy<Value = LimitConfig> {
        prop_oneof![
            Just(LimitConfig::http_v2()),
            Just(LimitConfig::batch()),
            (
                1u32..50,
                1_000u64..40_000,
                1u64..5_000,
                1_000u64..200_000,
                1u64..20_000
            )
                .prop_map(
                    |(eps_threshold, window_ms, daily_quota, daily_window_ms, daily_bucket_ms)| {
                        LimitConfig {
                            eps_threshold,
                            window_ms,
                            daily_quota,
                            daily_window_ms,
                            daily_bucket_ms,
                        }
                    }
                ),
        ]
    }

    proptest! {
        #![proptest_config(ProptestConfig { failure_persistence: None, ..ProptestConfig::default() })]
        #[test]
        fn matches_a_naive_reference(cfg in config(),
                                     start in 0i64..(10 * HOUR),
                                     ops in proptest::collection::vec(op(), 1..300)) {
            // spec §8.3: sliding-window EPS and rolling daily quota, bucketed
            let limiter = Limiter::new();
            let mut reference = Reference::default();
            let mut now = T0 + start;
            for op in ops {
                match op {
                    Op::Advance(ms) => now += ms,
                    Op::Record(k, n) => {
                        limiter.record(k, n, now, &cfg);
                        reference.records.entry(k).or_default().push((now, n));
                    }
                    Op::Usage(k) => {
                        let got = limiter.usage(k, now, &cfg);
                        let want = reference.usage(k, now, &cfg);
                        prop_assert_eq!(got, want);
                        prop_assert_eq!(got.throttled(&cfg),
                            want.window_events as f64 * 1000.0
                                > f64::from(cfg.eps_threshold) * cfg.window_ms as f64);
                        prop_assert_eq!(got.over_daily_quota(&cfg), want.daily_events >= cfg.daily_quota);
                    }
                    Op::Judge(pairs, record) => {
                        // the usages `judge` shows are the reference's before recording
                        let seen = limiter.judge(&pairs, now, &cfg, |u| (record, u.to_vec()));
                        let want: Vec<Usage> =
                            pairs.iter().map(|(k, _)| reference.usage(*k, now, &cfg)).collect();
                        prop_assert_eq!(seen, want);
                        if record {
                            for (k, n) in pairs.iter().filter(|(_, n)| *n > 0) {
                                reference.records.entry(*k).or_default().push((now, *n));
                            }
                        }
                    }
                    Op::Purge => {
                        limiter.purge_idle(now);
                    }
                }
                let busy = (0..5u64).filter(|&k| reference.usage(k, now, &cfg) != Usage::default()).count();
                prop_assert!(limiter.active_identities() >= busy);
                prop_assert!(limiter.active_identities() <= reference.records.len());
            }
            for k in 0..5u64 {
                prop_assert_eq!(limiter.usage(k, now, &cfg), reference.usage(k, now, &cfg));
            }
        }
    }
}
