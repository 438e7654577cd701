//! The 7-day `insert_id` deduplication store (spec §9).
//!
//! Amplitude ignores an event whose `insert_id` (on the same `device_id`, in the same project)
//! was seen within the past 7 days (spec §9). The pipeline hashes the identifying fields with
//! [`fingerprint`] and asks [`DedupStore::check_and_insert`] once per event.
//!
//! # Semantics (exact to the millisecond)
//!
//! A fingerprint recorded at time `t` (ms since the epoch) is a duplicate at `now` iff
//! `age < window_ms`, where `age = max(0, now - t)`: an id recorded at `t0` is a duplicate at
//! `t0 + window - 1` and no longer one at `t0 + window`. A clock that went backwards (a test
//! set it) gives negative ages, which count as age 0, so the id is still a duplicate. A
//! duplicate changes nothing (the first-seen time is kept, so retries do not extend the
//! window); a non-duplicate is recorded at `now`, replacing any expired record.
//!
//! # Memory model (architecture "Performance targets": at most 24 bytes per id at 10 M ids)
//!
//! * 64 shards, chosen from the low 6 bits of a mixed fingerprint, each a
//!   `parking_lot::Mutex` padded to its own cache lines: two cores rarely contend.
//! * Each shard keeps time-bucketed *generations*: generation `g` holds the ids recorded in
//!   `[g * G, (g + 1) * G)` with `G = ceil(window / 7)` (one day for the default 7-day
//!   window), so at most 8 generations are live. A generation is dropped whole, without
//!   touching its entries, as soon as its newest possible entry has expired
//!   (`now >= start + G - 1 + window`); memory is therefore bounded by the ids recorded in
//!   the last `window + G` of virtual time, whatever the traffic.
//! * A generation is an insert-only open-addressing table (linear probing) of 12-byte
//!   entries `[u32; 3]` = fingerprint (low, high) + ms offset from the generation start;
//!   an offset of `u32::MAX` marks an empty slot. There is no per-slot control byte. The
//!   table grows by 1.5x when it would pass a load of 0.8, so its load stays within
//!   0.53..0.8 and it costs 15..22.5 bytes per id (plus a few hundred bytes per generation),
//!   unlike a power-of-two table whose cost swings between 15 and 30 bytes per id.
//! * All methods are O(1) (expected) except [`DedupStore::len`] and
//!   [`DedupStore::heap_bytes`], which are inspection calls that visit every shard.
//!
//! # Time
//!
//! Time is never read here: every hot-path method takes `now_ms` from the mock's injected
//! clock (architecture "Time and determinism"). [`DedupStore::len`] and
//! [`DedupStore::heap_bytes`] take no time; they evaluate expiry at the most recent `now_ms`
//! passed to any method (before the first call, every id counts as live).

use std::sync::atomic::{AtomicI64, Ordering};

use amplitude_wire::limits::DEDUP_WINDOW_MS;
use parking_lot::Mutex;

/// Number of shards; a power of two (the shard is `mix(fingerprint) & (SHARDS - 1)`).
const SHARDS: usize = 64;

/// Generations per window: `G = ceil(window / GENERATIONS_PER_WINDOW)`.
const GENERATIONS_PER_WINDOW: u64 = 7;

/// Largest generation length, ms, so that offsets fit in a `u32` below [`TOMBSTONE`].
const MAX_GENERATION_MS: u64 = 1 << 31;

/// Offset value marking an empty slot (real offsets are `< MAX_GENERATION_MS`).
const EMPTY_OFFSET: u32 = u32::MAX;

/// Offset value marking a superseded record: an expired record of an id that has since been
/// re-recorded in a later generation. It keeps its slot (probe chains stay intact) but is
/// never live, so an id is never counted twice even if the clock is later set back.
const TOMBSTONE: u32 = u32::MAX - 1;

/// One table slot: `[fingerprint low 32 bits, fingerprint high 32 bits, ms offset]`.
type Slot = [u32; 3];

/// An empty slot.
const EMPTY_SLOT: Slot = [0, 0, EMPTY_OFFSET];

/// Smallest table allocated, slots.
const MIN_CAPACITY: usize = 16;

/// Maximum load before growing: `len * LOAD_DEN > cap * LOAD_NUM` triggers growth.
const LOAD_NUM: usize = 4;
/// See [`LOAD_NUM`].
const LOAD_DEN: usize = 5;

/// Stable 64-bit fingerprint of an ordered list of byte strings (spec §9: the dedup key is
/// `(project, [device_id,] insert_id)`; the profile decides which fields are passed).
///
/// `parts`: the key fields in a fixed order, e.g. `&[api_key, device_id, insert_id]`.
/// Each part is prefixed with its length (8 bytes, little endian) before hashing with xxh3-64,
/// so part boundaries matter: `["ab", "c"]`, `["a", "bc"]` and `["abc"]` all differ. Never
/// fails; the result is the same on every platform and run.
pub fn fingerprint(parts: &[&[u8]]) -> u64 {
    // Short keys (the common case) are packed into a stack buffer and hashed in one shot;
    // longer ones stream. Both paths hash the same bytes, so they agree.
    let mut buf = [0u8; 256];
    let mut used = 0usize;
    for part in parts {
        let end = used + 8 + part.len();
        if end > buf.len() {
            return fingerprint_streaming(parts);
        }
        let len_bytes = (part.len() as u64).to_le_bytes();
        buf[used..used + 8].copy_from_slice(&len_bytes);
        buf[used + 8..end].copy_from_slice(part);
        used = end;
    }
    xxhash_rust::xxh3::xxh3_64(&buf[..used])
}

/// A hash map keyed by [`fingerprint`]s (or other xxh3 outputs): the key is already a
/// well-mixed 64-bit hash, so it is its own hash (no second hashing per lookup).
pub(crate) type FingerprintMap<V> =
    std::collections::HashMap<u64, V, std::hash::BuildHasherDefault<PassThrough>>;

/// The hasher of [`FingerprintMap`]: a `u64` key hashes to itself. Other writes (never made
/// by a `u64` key) fold their bytes in, so it stays a valid `Hasher`.
#[derive(Default)]
pub(crate) struct PassThrough(u64);

impl std::hash::Hasher for PassThrough {
    fn write(&mut self, bytes: &[u8]) {
        for b in bytes {
            self.0 = self.0.rotate_left(8) ^ u64::from(*b);
        }
    }

    fn write_u64(&mut self, n: u64) {
        self.0 = n;
    }

    fn finish(&self) -> u64 {
        self.0
    }
}

/// [`fingerprint`] for keys longer than the stack buffer.
fn fingerprint_streaming(parts: &[&[u8]]) -> u64 {
    let mut hasher = xxhash_rust::xxh3::Xxh3::new();
    for part in parts {
        hasher.update(&(part.len() as u64).to_le_bytes());
        hasher.update(part);
    }
    hasher.digest()
}

/// Bijective 64-bit mixer (murmur3 fmix64): callers may pass weak fingerprints such as
/// sequential integers, so the shard and the slot come from mixed bits.
#[inline]
fn mix(mut x: u64) -> u64 {
    x ^= x >> 33;
    x = x.wrapping_mul(0xff51_afd7_ed55_8ccd);
    x ^= x >> 33;
    x = x.wrapping_mul(0xc4ce_b9fe_1a85_ec53);
    x ^= x >> 33;
    x
}

/// Home slot of mixed hash `h` in a table of `cap` slots (multiply-high, so `cap` need not be
/// a power of two; it uses the high bits, independent of the shard's low bits).
#[inline]
fn home(h: u64, cap: usize) -> usize {
    ((u128::from(h) * cap as u128) >> 64) as usize
}

/// Age of a record made at `t`, seen at `now`, ms; negative ages (clock moved back) are 0.
#[inline]
fn age(now: i64, t: i64) -> i64 {
    now.saturating_sub(t).max(0)
}

/// Insert-only open-addressing table of [`Slot`]s with linear probing.
#[derive(Debug, Default)]
struct Table {
    /// Slots; `slots.len()` is the capacity (0 before the first insert).
    slots: Vec<Slot>,
    /// Occupied slots (tombstones included).
    len: usize,
    /// Tombstoned slots.
    dead: usize,
}

impl Table {
    /// Slot index holding `fp` (whose mixed hash is `h`), if any.
    #[inline]
    fn find(&self, fp: u64, h: u64) -> Option<usize> {
        let cap = self.slots.len();
        if self.len == 0 || cap == 0 {
            return None;
        }
        let (lo, hi) = (fp as u32, (fp >> 32) as u32);
        let mut i = home(h, cap);
        // Terminates: the load never exceeds 0.8, so an empty slot exists.
        loop {
            let slot = self.slots.get(i)?;
            if slot[2] == EMPTY_OFFSET {
                return None;
            }
            if slot[0] == lo && slot[1] == hi {
                return Some(i);
            }
            i += 1;
            if i == cap {
                i = 0;
            }
        }
    }

    /// Offset stored in slot `si` ([`EMPTY_OFFSET`] if out of range).
    #[inline]
    fn offset(&self, si: usize) -> u32 {
        self.slots.get(si).map_or(EMPTY_OFFSET, |s| s[2])
    }

    /// Stores `offset` in occupied slot `si`, keeping the tombstone count right.
    fn set_offset(&mut self, si: usize, offset: u32) {
        if let Some(slot) = self.slots.get_mut(si) {
            if slot[2] == EMPTY_OFFSET {
                return;
            }
            match (slot[2] == TOMBSTONE, offset == TOMBSTONE) {
                (false, true) => self.dead += 1,
                (true, false) => self.dead -= 1,
                _ => {}
            }
            slot[2] = offset;
        }
    }

    /// Inserts `fp` (known to be absent) with `offset`, growing first when needed.
    fn insert_new(&mut self, fp: u64, h: u64, offset: u32) {
        let cap = self.slots.len();
        if (self.len + 1) * LOAD_DEN > cap * LOAD_NUM {
            self.grow();
        }
        Self::place(&mut self.slots, fp, h, offset);
        self.len += 1;
    }

    /// Writes the entry in the first empty slot of its probe sequence.
    fn place(slots: &mut [Slot], fp: u64, h: u64, offset: u32) {
        let cap = slots.len();
        if cap == 0 {
            return;
        }
        let mut i = home(h, cap);
        for _ in 0..cap {
            if let Some(slot) = slots.get_mut(i) {
                if slot[2] == EMPTY_OFFSET {
                    *slot = [fp as u32, (fp >> 32) as u32, offset];
                    return;
                }
            }
            i += 1;
            if i == cap {
                i = 0;
            }
        }
    }

    /// Grows the capacity by 1.5x (at least [`MIN_CAPACITY`]) and reinserts every entry.
    fn grow(&mut self) {
        let cap = self.slots.len();
        let new_cap = (cap + cap / 2).max(MIN_CAPACITY);
        let mut slots = vec![EMPTY_SLOT; new_cap];
        for slot in &self.slots {
            if slot[2] != EMPTY_OFFSET {
                let fp = u64::from(slot[0]) | (u64::from(slot[1]) << 32);
                Self::place(&mut slots, fp, mix(fp), slot[2]);
            }
        }
        self.slots = slots;
    }

    /// Heap bytes of the slot array (capacity-based).
    fn heap_bytes(&self) -> usize {
        self.slots.capacity() * std::mem::size_of::<Slot>()
    }
}

/// The ids recorded in `[start, start + G)`.
#[derive(Debug)]
struct Generation {
    /// First ms of the generation (a multiple of `G`), ms since the epoch.
    start: i64,
    /// Entries, with offsets relative to `start`.
    table: Table,
}

/// One shard: generations sorted by `start`, ascending.
#[derive(Debug)]
struct Shard {
    /// Live (and not yet dropped) generations, ascending by `start`.
    gens: Vec<Generation>,
    /// Earliest time at which some generation may be dropped (a lower bound), ms.
    next_drop_ms: i64,
}

impl Default for Shard {
    fn default() -> Self {
        Self {
            gens: Vec::new(),
            next_drop_ms: i64::MAX,
        }
    }
}

/// Time geometry shared by all shards.
#[derive(Debug, Clone, Copy)]
struct Geometry {
    /// Dedup window, ms (clamped to `i64::MAX`).
    window: i64,
    /// Generation length `G`, ms, in `1..=MAX_GENERATION_MS`.
    gen_ms: i64,
}

impl Geometry {
    /// Time at which generation `start` may be dropped (saturating lower bound), ms.
    fn drop_at(&self, start: i64) -> i64 {
        start
            .saturating_add(self.gen_ms - 1)
            .saturating_add(self.window)
    }

    /// True when every entry generation `start` can hold has expired at `now` (exact).
    fn expired(&self, start: i64, now: i64) -> bool {
        let newest = i128::from(start) + i128::from(self.gen_ms) - 1;
        i128::from(now) - newest >= i128::from(self.window)
    }
}

impl Shard {
    /// Drops the generations whose entries have all expired at `now`.
    #[inline]
    fn purge(&mut self, now: i64, geo: &Geometry) {
        if now < self.next_drop_ms {
            return;
        }
        self.gens.retain(|g| !geo.expired(g.start, now));
        if self.gens.is_empty() {
            self.gens = Vec::new();
        }
        self.next_drop_ms = self
            .gens
            .iter()
            .map(|g| geo.drop_at(g.start))
            .min()
            .unwrap_or(i64::MAX);
    }

    /// Ids live at `now` (after [`Shard::purge`]). Scans only generations straddling the
    /// expiry boundary.
    fn live_len(&self, now: i64, geo: &Geometry) -> usize {
        let mut n = 0;
        for g in &self.gens {
            if age(now, g.start) < geo.window {
                n += g.table.len - g.table.dead;
            } else {
                n += g
                    .table
                    .slots
                    .iter()
                    .filter(|s| {
                        s[2] < TOMBSTONE && age(now, g.start + i64::from(s[2])) < geo.window
                    })
                    .count();
            }
        }
        n
    }

    /// Heap bytes held by this shard (capacity-based).
    fn heap_bytes(&self) -> usize {
        self.gens.capacity() * std::mem::size_of::<Generation>()
            + self
                .gens
                .iter()
                .map(|g| g.table.heap_bytes())
                .sum::<usize>()
    }
}

/// A shard padded to two cache lines so neighbouring locks do not false-share.
#[derive(Debug, Default)]
#[repr(align(128))]
struct Padded(Mutex<Shard>);

/// The insert_id deduplication store (spec §9): remembers 64-bit fingerprints for
/// `window_ms` of virtual time, exactly to the millisecond.
///
/// Sharded (64 `parking_lot::Mutex`es), `Send + Sync`, all methods take `&self`. See the
/// module docs for the expiry rule, the memory model (at most ~22.5 bytes per id) and how
/// a clock that moves backwards is handled.
pub struct DedupStore {
    /// The shards (always [`SHARDS`] of them).
    shards: Box<[Padded]>,
    /// Window and generation length.
    geo: Geometry,
    /// The window as configured, ms.
    window_ms: u64,
    /// Most recent `now_ms` passed to a method (`i64::MIN` before any), for `len`/`heap_bytes`.
    last_now_ms: AtomicI64,
}

impl std::fmt::Debug for DedupStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DedupStore")
            .field("window_ms", &self.window_ms)
            .field("generation_ms", &self.geo.gen_ms)
            .field("shards", &self.shards.len())
            .finish_non_exhaustive()
    }
}

impl Default for DedupStore {
    /// A store with the documented 7-day window ([`DEDUP_WINDOW_MS`], spec §9).
    fn default() -> Self {
        Self::new(DEDUP_WINDOW_MS)
    }
}

impl DedupStore {
    /// An empty store remembering each id for `window_ms` ms (spec §9: 7 days, i.e.
    /// `amplitude_wire::limits::DEDUP_WINDOW_MS`; the profile may shorten it for tests).
    ///
    /// `window_ms = 0` disables deduplication (nothing is ever a duplicate). Windows beyond
    /// `i64::MAX` ms are clamped. Allocates only the 64 empty shards (about 8 KiB).
    pub fn new(window_ms: u64) -> Self {
        let window = i64::try_from(window_ms).unwrap_or(i64::MAX);
        let gen_ms = window_ms
            .div_ceil(GENERATIONS_PER_WINDOW)
            .clamp(1, MAX_GENERATION_MS);
        let gen_ms = i64::try_from(gen_ms).unwrap_or(1);
        let shards = (0..SHARDS).map(|_| Padded::default()).collect();
        Self {
            shards,
            geo: Geometry { window, gen_ms },
            window_ms,
            last_now_ms: AtomicI64::new(i64::MIN),
        }
    }

    /// Remembers `now_ms` for [`Self::len`] / [`Self::heap_bytes`]; writes the shared atomic
    /// only when the value changes, so cores do not bounce its cache line per call.
    #[inline]
    fn observe(&self, now_ms: i64) {
        if self.last_now_ms.load(Ordering::Relaxed) != now_ms {
            self.last_now_ms.store(now_ms, Ordering::Relaxed);
        }
    }

    /// The shard of mixed hash `h`.
    #[inline]
    fn shard(&self, h: u64) -> &Mutex<Shard> {
        &self.shards[(h as usize) & (SHARDS - 1)].0
    }

    /// Checks `fingerprint` and records it if it is not a live duplicate (spec §9).
    ///
    /// `fingerprint`: a 64-bit hash of `(project, [device_id,] insert_id)` computed by the
    /// caller (see [`fingerprint`]). `now_ms`: the mock clock, ms since the epoch.
    ///
    /// Returns `Some(first_seen_ms)` when the fingerprint was recorded at `t` with
    /// `max(0, now_ms - t) < window_ms`: a duplicate, and nothing changes. Otherwise records
    /// it at `now_ms` and returns `None`. Never fails; expected O(1).
    pub fn check_and_insert(&self, fingerprint: u64, now_ms: i64) -> Option<i64> {
        self.observe(now_ms);
        let geo = self.geo;
        let h = mix(fingerprint);
        let mut shard = self.shard(h).lock();
        shard.purge(now_ms, &geo);

        // The generation of `now_ms` (saturating: near `i64::MIN` the first generation
        // starts at `i64::MIN`, still holding offsets below `gen_ms`).
        let target_start = now_ms.saturating_sub(now_ms.rem_euclid(geo.gen_ms));
        // An expired or superseded record of the same id in the target generation, to
        // overwrite.
        let mut stale: Option<(usize, usize)> = None;
        // Newest generation first. A record's age only grows with its generation's age, so
        // once one expired record is met every older one is expired too: each is
        // tombstoned right away (the id is about to be re-recorded).
        for (gi, g) in shard.gens.iter_mut().enumerate().rev() {
            let Some(si) = g.table.find(fingerprint, h) else {
                continue;
            };
            let offset = g.table.offset(si);
            if offset < TOMBSTONE {
                let t = g.start + i64::from(offset);
                if age(now_ms, t) < geo.window {
                    return Some(t);
                }
            }
            if g.start == target_start {
                stale = Some((gi, si));
            } else {
                g.table.set_offset(si, TOMBSTONE);
            }
        }

        // `now_ms - target_start` is in `0..gen_ms <= 2^31`.
        let offset = u32::try_from(now_ms.saturating_sub(target_start)).unwrap_or(TOMBSTONE - 1);
        if let Some((gi, si)) = stale {
            if let Some(g) = shard.gens.get_mut(gi) {
                g.table.set_offset(si, offset);
            }
            return None;
        }
        let gi = match shard.gens.binary_search_by_key(&target_start, |g| g.start) {
            Ok(gi) => gi,
            Err(gi) => {
                // Exact growth: a shard holds ~8 generations, one new one per day.
                shard.gens.reserve_exact(1);
                shard.gens.insert(
                    gi,
                    Generation {
                        start: target_start,
                        table: Table::default(),
                    },
                );
                shard.next_drop_ms = shard.next_drop_ms.min(geo.drop_at(target_start));
                gi
            }
        };
        if let Some(g) = shard.gens.get_mut(gi) {
            g.table.insert_new(fingerprint, h, offset);
        }
        None
    }

    /// True when `fingerprint` is a live duplicate at `now_ms` (same rule as
    /// [`Self::check_and_insert`], spec §9), without recording anything. Expected O(1).
    pub fn contains(&self, fingerprint: u64, now_ms: i64) -> bool {
        self.observe(now_ms);
        let geo = self.geo;
        let h = mix(fingerprint);
        let mut shard = self.shard(h).lock();
        shard.purge(now_ms, &geo);
        shard.gens.iter().rev().any(|g| {
            g.table.find(fingerprint, h).is_some_and(|si| {
                let offset = g.table.offset(si);
                offset < TOMBSTONE && age(now_ms, g.start + i64::from(offset)) < geo.window
            })
        })
    }

    /// Number of ids currently remembered, i.e. live at the most recent `now_ms` passed to
    /// any method (all recorded ids before the first call). Expired generations are dropped
    /// first; expired ids in a generation that straddles the expiry boundary are not counted.
    /// O(ids in boundary generations + shards): an inspection call, not for the hot path.
    pub fn len(&self) -> usize {
        let now = self.last_now_ms.load(Ordering::Relaxed);
        let geo = self.geo;
        self.shards
            .iter()
            .map(|s| {
                let mut shard = s.0.lock();
                shard.purge(now, &geo);
                shard.live_len(now, &geo)
            })
            .sum()
    }

    /// True when [`Self::len`] is 0.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Heap bytes held by the store's shards, capacity-based (what the allocator really
    /// holds for slot arrays and generation lists), after dropping expired generations as of
    /// the most recent `now_ms`. Excludes the fixed 64 shard headers (8 KiB). Divide by
    /// [`Self::len`] for the bytes-per-id figure (architecture "Performance targets").
    pub fn heap_bytes(&self) -> usize {
        let now = self.last_now_ms.load(Ordering::Relaxed);
        let geo = self.geo;
        self.shards
            .iter()
            .map(|s| {
                let mut shard = s.0.lock();
                shard.purge(now, &geo);
                shard.heap_bytes()
            })
            .sum()
    }

    /// Forgets every id and frees the memory (the mock's `POST /__mock/reset`).
    pub fn clear(&self) {
        for s in self.shards.iter() {
            *s.0.lock() = Shard::default();
        }
        self.last_now_ms.store(i64::MIN, Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::collections::HashMap;

    const DAY: i64 = 86_400_000;
    const WEEK: i64 = 7 * DAY;
    /// 2023-11-14T00:00:00Z, a day boundary (so generation boundaries are predictable).
    const T0: i64 = 1_699_920_000_000;

    #[test]
    fn default_window_is_seven_days() {
        // spec §9: "within the past 7 days"
        assert_eq!(DEDUP_WINDOW_MS, 604_800_000);
        let store = DedupStore::default();
        assert_eq!(store.window_ms, 604_800_000);
        assert_eq!(store.geo.gen_ms, DAY);
    }

    #[test]
    fn expiry_is_exact_to_the_millisecond() {
        // spec §9: duplicates are ignored within the past 7 days
        let store = DedupStore::new(DEDUP_WINDOW_MS);
        let fp = fingerprint(&[b"proj", b"device-1", b"insert-1"]);
        assert_eq!(store.check_and_insert(fp, T0 + 1234), None);
        assert_eq!(store.check_and_insert(fp, T0 + 1234), Some(T0 + 1234));
        // Duplicate up to the last millisecond of the window; a duplicate changes nothing.
        assert_eq!(
            store.check_and_insert(fp, T0 + 1234 + WEEK - 1),
            Some(T0 + 1234)
        );
        assert!(store.contains(fp, T0 + 1234 + WEEK - 1));
        // Exactly one window later it has expired.
        assert!(!store.contains(fp, T0 + 1234 + WEEK));
        // 1 ms after that: not a duplicate, and re-recorded at the new time.
        let t1 = T0 + 1234 + WEEK + 1;
        assert_eq!(store.check_and_insert(fp, t1), None);
        assert_eq!(store.check_and_insert(fp, t1 + 5), Some(t1));
        assert_eq!(store.check_and_insert(fp, t1 + WEEK - 1), Some(t1));
        assert_eq!(store.check_and_insert(fp, t1 + WEEK), None);
        assert_eq!(store.len(), 1);
    }

    #[test]
    fn expired_record_in_same_generation_is_replaced() {
        // spec §9: a 10 ms window (G = 2 ms) to re-record inside one generation
        let store = DedupStore::new(10);
        assert_eq!(store.geo.gen_ms, 2);
        assert_eq!(store.check_and_insert(7, 0), None);
        assert_eq!(store.check_and_insert(7, 9), Some(0));
        assert_eq!(store.check_and_insert(7, 10), None);
        assert_eq!(store.check_and_insert(7, 11), Some(10));
        assert_eq!(store.len(), 1);
    }

    #[test]
    fn distinct_fingerprints_are_independent() {
        // spec §9: the key is (project, device_id, insert_id)
        let store = DedupStore::default();
        let a = fingerprint(&[b"p", b"dev-a", b"same-insert-id"]);
        let b = fingerprint(&[b"p", b"dev-b", b"same-insert-id"]);
        let c = fingerprint(&[b"q", b"dev-a", b"same-insert-id"]);
        assert_ne!(a, b);
        assert_ne!(a, c);
        assert_eq!(store.check_and_insert(a, T0), None);
        assert_eq!(store.check_and_insert(b, T0 + 1), None);
        assert_eq!(store.check_and_insert(c, T0 + 2), None);
        assert_eq!(store.check_and_insert(b, T0 + 3), Some(T0 + 1));
        assert_eq!(store.len(), 3);
    }

    #[test]
    fn fingerprint_separates_parts() {
        // spec §9: fields of the dedup key must not run into each other
        let ab_c = fingerprint(&[b"ab", b"c"]);
        let a_bc = fingerprint(&[b"a", b"bc"]);
        let abc = fingerprint(&[b"abc"]);
        let abc_empty = fingerprint(&[b"abc", b""]);
        assert_ne!(ab_c, a_bc);
        assert_ne!(ab_c, abc);
        assert_ne!(abc, abc_empty);
        // Stable: xxh3-64 of the length-prefixed bytes.
        let mut bytes = Vec::new();
        bytes.extend_from_slice(&2u64.to_le_bytes());
        bytes.extend_from_slice(b"ab");
        bytes.extend_from_slice(&1u64.to_le_bytes());
        bytes.extend_from_slice(b"c");
        assert_eq!(ab_c, xxhash_rust::xxh3::xxh3_64(&bytes));
    }

    #[test]
    fn long_keys_stream_to_the_same_hash() {
        // spec §9: insert_id may be long (up to the string limit); the streaming path must
        // hash exactly the same bytes as the one-shot path.
        let long = vec![b'x'; 1_000];
        let parts: [&[u8]; 3] = [b"project", b"device", &long];
        let mut bytes = Vec::new();
        for p in parts {
            bytes.extend_from_slice(&(p.len() as u64).to_le_bytes());
            bytes.extend_from_slice(p);
        }
        assert_eq!(fingerprint(&parts), xxhash_rust::xxh3::xxh3_64(&bytes));
        assert_eq!(fingerprint_streaming(&parts), fingerprint(&parts));
        // Right at the buffer boundary (8 + 248 = 256 bytes) and one past it.
        let fits = vec![b'y'; 248];
        let over = vec![b'y'; 249];
        assert_eq!(fingerprint(&[&fits]), fingerprint_streaming(&[&fits]));
        assert_eq!(fingerprint(&[&over]), fingerprint_streaming(&[&over]));
    }

    #[test]
    fn generations_are_dropped_whole_and_memory_is_freed() {
        // spec §9 (7-day window) + architecture "Performance targets" (bounded memory)
        let store = DedupStore::default();
        for i in 0..1_000u64 {
            assert_eq!(store.check_and_insert(i, T0 + 1_000), None);
        }
        assert_eq!(store.len(), 1_000);
        assert!(store.heap_bytes() > 12 * 1_000);
        // One day later, a second day's generation.
        for i in 1_000..1_500u64 {
            assert_eq!(store.check_and_insert(i, T0 + DAY), None);
        }
        assert_eq!(store.len(), 1_500);
        // At T0 + 1000 + 7 days the first ids are expired but their generation (which
        // could hold ids up to T0 + DAY - 1) is not dropped yet: len counts only live ids.
        assert!(!store.contains(0, T0 + 1_000 + WEEK));
        assert_eq!(store.len(), 500);
        // Once the newest possible id of day 0 has expired, day 0 is dropped whole.
        let before = store.heap_bytes();
        assert!(!store.contains(0, T0 + DAY - 1 + WEEK));
        let after = store.heap_bytes();
        assert!(after < before, "{after} < {before}");
        assert_eq!(store.len(), 500);
        // A clock jump of 30 days drops everything and frees all heap memory.
        assert!(!store.contains(1_000, T0 + 30 * DAY));
        assert_eq!(store.len(), 0);
        assert!(store.is_empty());
        assert_eq!(store.heap_bytes(), 0);
    }

    #[test]
    fn len_before_any_clock_counts_everything_and_clear_frees() {
        // spec §9
        let store = DedupStore::new(1_000);
        for i in 0..100u64 {
            store.check_and_insert(i, 5);
        }
        assert_eq!(store.len(), 100);
        store.clear();
        assert_eq!(store.len(), 0);
        assert_eq!(store.heap_bytes(), 0);
        assert_eq!(store.check_and_insert(3, 6), None);
        assert_eq!(store.check_and_insert(3, 7), Some(6));
    }

    #[test]
    fn clock_going_backwards_keeps_ids_and_never_panics() {
        // spec §9 + architecture "Time and determinism": the test clock may be set back;
        // negative ages count as age 0.
        let store = DedupStore::default();
        assert_eq!(store.check_and_insert(42, T0 + 3 * DAY), None);
        // Three days earlier: still a duplicate, first seen "in the future".
        assert_eq!(store.check_and_insert(42, T0), Some(T0 + 3 * DAY));
        // A new id recorded in an earlier generation than the newest one.
        assert_eq!(store.check_and_insert(43, T0), None);
        assert_eq!(store.check_and_insert(43, T0 + 3 * DAY), Some(T0));
        assert_eq!(store.check_and_insert(43, T0 + WEEK - 1), Some(T0));
        assert_eq!(store.check_and_insert(43, T0 + WEEK), None);
        assert_eq!(store.len(), 2);
        // Extreme clocks.
        for now in [i64::MIN, -1, 0, i64::MAX, i64::MIN + 1, i64::MAX - 1] {
            let _ = store.check_and_insert(7, now);
            let _ = store.contains(7, now);
            let _ = store.len();
            let _ = store.heap_bytes();
        }
        let huge = DedupStore::new(u64::MAX);
        assert_eq!(huge.check_and_insert(1, i64::MIN), None);
        // The true age, 2^64 - 1 ms, exceeds even the largest window.
        assert_eq!(huge.check_and_insert(1, i64::MAX), None);
        assert_eq!(huge.check_and_insert(1, 0), Some(i64::MAX));
        let tiny = DedupStore::new(3);
        assert_eq!(tiny.check_and_insert(9, i64::MIN), None);
        assert_eq!(tiny.check_and_insert(9, i64::MIN + 2), Some(i64::MIN));
        assert_eq!(tiny.check_and_insert(9, i64::MIN + 3), None);
    }

    #[test]
    fn zero_window_disables_dedup() {
        // spec §9 (window configurable per profile; 0 = off)
        let store = DedupStore::new(0);
        assert_eq!(store.check_and_insert(1, T0), None);
        assert_eq!(store.check_and_insert(1, T0), None);
        assert!(!store.contains(1, T0));
        assert_eq!(store.len(), 0);
    }

    #[test]
    fn concurrent_inserts_record_each_id_exactly_once() {
        // spec §9: a retried batch racing its original must store each id once
        let store = std::sync::Arc::new(DedupStore::default());
        let firsts: usize = std::thread::scope(|s| {
            let handles: Vec<_> = (0..2)
                .map(|_| {
                    let store = &store;
                    s.spawn(move || {
                        (0..20_000u64)
                            .filter(|&i| store.check_and_insert(i, T0).is_none())
                            .count()
                    })
                })
                .collect();
            handles.into_iter().map(|h| h.join().unwrap()).sum()
        });
        assert_eq!(firsts, 20_000);
        assert_eq!(store.len(), 20_000);
    }

    #[test]
    fn is_send_and_sync() {
        fn assert_send_sync<T: Send + Sync>() {}
        assert_send_sync::<DedupStore>();
    }

    /// Inserts `n` distinct fingerprints at one instant and returns heap bytes per id.
    fn bytes_per_id(n: u64) -> f64 {
        let store = DedupStore::default();
        for i in 0..n {
            let fp = fingerprint(&[b"project", &i.to_le_bytes(), b"insert"]);
            assert_eq!(store.check_and_insert(fp, T0 + (i % 1_000) as i64), None);
        }
        assert_eq!(store.len() as u64, n);
        store.heap_bytes() as f64 / store.len() as f64
    }

    #[test]
    fn memory_at_100k_ids_is_at_most_24_bytes_per_id() {
        // architecture "Performance targets": <= 24 bytes per remembered insert_id
        let ratio = bytes_per_id(100_000);
        println!("dedup: {ratio:.2} heap bytes per id at 100k ids");
        assert!(ratio <= 24.0, "{ratio}");
        assert!(ratio >= 12.0, "{ratio}");
    }

    #[test]
    fn memory_stays_under_24_bytes_per_id_at_any_fill() {
        // architecture "Performance targets": the 1.5x growth keeps the load in 0.53..0.8
        // whatever the count, unlike power-of-two growth.
        let store = DedupStore::default();
        let mut worst: f64 = 0.0;
        for i in 0..60_000u64 {
            store.check_and_insert(mix(i ^ 0x5555), T0);
            if i >= 5_000 && i % 997 == 0 {
                let ratio = store.heap_bytes() as f64 / (i + 1) as f64;
                worst = worst.max(ratio);
            }
        }
        println!("dedup: worst {worst:.2} bytes per id between 5k and 60k ids");
        assert!(worst <= 24.0, "{worst}");
    }

    #[test]
    #[ignore = "inserts 10 million ids (~200 MB, tens of seconds in debug)"]
    fn memory_at_10m_ids() {
        // architecture "Performance targets": <= 24 bytes per id at 10 million ids
        let ratio = bytes_per_id(10_000_000);
        println!("dedup: {ratio:.2} heap bytes per id at 10M ids");
        assert!(ratio <= 24.0, "{ratio}");
    }

    #[derive(Debug, Clone)]
    enum Op {
        Check(u64),
        Contains(u64),
        Advance(i64),
        Back(i64),
    }

    fn op() -> impl Strategy<Value = Op> {
        prop_oneof![
            4 => (0u64..40).prop_map(Op::Check),
            1 => (0u64..40).prop_map(Op::Contains),
            2 => prop_oneof![0i64..50, 0i64..2_000, 0i64..20_000].prop_map(Op::Advance),
            1 => (0i64..300).prop_map(Op::Back),
        ]
    }

    proptest! {
        #![proptest_config(ProptestConfig { failure_persistence: None, ..ProptestConfig::default() })]
        #[test]
        fn matches_a_naive_reference(ops in proptest::collection::vec(op(), 1..300),
                                     window in prop_oneof![Just(1_000u64), 1u64..5_000]) {
            // spec §9: duplicate iff recorded at t with max(0, now - t) < window. The
            // reference keeps the latest recording of every id forever, plus whether the
            // clock has ever passed its expiry: after that, moving the clock back may or may
            // not resurrect it (the store may have dropped its generation), so either answer
            // is accepted for such ids.
            let store = DedupStore::new(window);
            let mut reference: HashMap<u64, (i64, bool)> = HashMap::new();
            let w = window as i64;
            let mut now = T0;
            // The last time the store was told (len() evaluates expiry then).
            let mut seen = i64::MIN;
            for op in ops {
                if matches!(op, Op::Check(_) | Op::Contains(_)) {
                    seen = now;
                }
                match op {
                    Op::Advance(ms) => now += ms,
                    Op::Back(ms) => now -= ms,
                    Op::Check(fp) => {
                        let got = store.check_and_insert(fp, now);
                        match reference.get(&fp).copied() {
                            Some((t, false)) if age(now, t) < w => prop_assert_eq!(got, Some(t)),
                            Some((t, true)) if age(now, t) < w && got == Some(t) => {}
                            _ => {
                                prop_assert_eq!(got, None);
                                reference.insert(fp, (now, false));
                            }
                        }
                    }
                    Op::Contains(fp) => {
                        let got = store.contains(fp, now);
                        match reference.get(&fp).copied() {
                            Some((t, false)) => prop_assert_eq!(got, age(now, t) < w),
                            Some((t, true)) => prop_assert!(!got || age(now, t) < w),
                            None => prop_assert!(!got),
                        }
                    }
                }
                for v in reference.values_mut() {
                    if age(seen, v.0) >= w {
                        v.1 = true;
                    }
                }
                let definite = reference.values().filter(|v| !v.1 && age(seen, v.0) < w).count();
                let maybe = reference.values().filter(|v| v.1 && age(seen, v.0) < w).count();
                let len = store.len();
                prop_assert!(definite <= len && len <= definite + maybe,
                             "len {} definite {} maybe {}", len, definite, maybe);
            }
        }
    }
}
