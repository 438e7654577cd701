//! User-property and group-property state: Amplitude IDs, the property operations
//! (`$set`, `$add`, …) in the server's order, and the silent cap of 1,800 user-property
//! updates per Amplitude ID per hour.
//!
//! Models spec §3.2 (`user_properties`, `groups`, `group_properties`,
//! `$skip_user_properties_sync`), §3.3 (operations and their server order), §8.1
//! (1,800 updates/hour, dropped silently), §10 (Identify) and §11 (Group Identify).
//!
//! The pipeline calls, for every event it stores:
//! 1. [`PropertyStore::amplitude_id`] to resolve `(user_id, device_id)` to an Amplitude ID;
//! 2. [`PropertyStore::apply_user_properties`] with the event's `user_properties`;
//! 3. for `$groupidentify` events only, [`PropertyStore::apply_group_properties`].
//!
//! Time is never read here: every time-dependent method takes `now_ms` (ms since the Unix
//! epoch, from the mock's injected clock). The clock may jump forward or backwards; nothing
//! panics and the window rule below says what happens.
//!
//! # Choices the spec leaves open (UNCERTAIN)
//! - **Amplitude ID assignment** — see [`PropertyStore::amplitude_id`]: a new user adopts the
//!   anonymous ID of the device it is first seen with; a known user does not merge with a
//!   device's anonymous history (Amplitude's real user merging is not modelled).
//! - **Cap window** — Amplitude's exact windowing is unknown. The mock uses a fixed window of
//!   `window_ms` anchored at the first update that falls outside the previous window; an
//!   update whose `now_ms` is before the window start (clock went backwards) also opens a
//!   new window. Every event with a non-empty `user_properties` object counts as one update,
//!   whatever its operations do (even if they all turn out to be invalid).
//! - **Bad input is skipped, never rejected** — an operation whose value is not an object
//!   is ignored; inside an operation, an entry with the wrong type (e.g. `$add` of a string,
//!   or `$add` onto an existing non-number) is ignored while the other entries apply.
//!   Unknown `$`-keys (`$foo`) are ignored.
//! - **Plain keys mixed with operations** (the spec says they cannot be mixed) are applied as
//!   a `$set` at the `$set` step, just before the explicit `$set` (which wins on conflict).
//! - **`$clearAll` with other operations** is honoured in server order: every property is
//!   removed first, then the other operations of the same object apply. Its value is ignored.
//! - `$setOnce` sets a property only if it is currently absent (a property that was `$unset`
//!   can be `$setOnce` again).
//! - `$append`/`$prepend`/`$preInsert`/`$postInsert`: an array argument contributes its
//!   elements in their order (so `$prepend [a, b]` onto `[x]` gives `[a, b, x]`); an empty
//!   array argument changes nothing. `$remove` on a scalar equal to a removed value leaves an
//!   empty array. Value equality is JSON equality (`1` ≠ `1.0`).
//! - `$add` keeps integers as integers (i64/u64; falls back to f64 beyond that) and skips a
//!   result that is not a finite number.
//! - Groups: at most [`MAX_GROUP_TYPES`] (5) group types and [`MAX_GROUP_VALUES`] (10) group
//!   values per event are updated, in the `groups` map's iteration order; the rest are
//!   silently not tracked (spec §3.4 "Groups"). Group values that are not strings are ignored.

use std::sync::atomic::{AtomicU64, Ordering};

use amplitude_wire::limits::{
    MAX_GROUP_TYPES, MAX_GROUP_VALUES, USER_PROPERTY_UPDATES_PER_HOUR, USER_PROPERTY_WINDOW_MS,
};
use hashbrown::{Equivalent, HashMap};
use parking_lot::Mutex;
use serde_json::{Map, Number, Value};
use xxhash_rust::xxh3::{xxh3_64, xxh3_64_with_seed};

/// Number of lock shards per table (power of two).
const SHARDS: usize = 64;

/// Limits of the user-property update cap (spec §8.1).
///
/// `Default` is Amplitude's documented limit: 1,800 updates per Amplitude ID per hour
/// (`amplitude_wire::limits::{USER_PROPERTY_UPDATES_PER_HOUR, USER_PROPERTY_WINDOW_MS}`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PropertyConfig {
    /// Updates accepted per Amplitude ID per window; later ones are dropped silently.
    /// `0` drops every update.
    pub updates_per_hour: u32,
    /// Length of the window, in ms (3,600,000 = one hour).
    pub window_ms: u64,
}

impl Default for PropertyConfig {
    fn default() -> Self {
        Self {
            updates_per_hour: USER_PROPERTY_UPDATES_PER_HOUR,
            window_ms: USER_PROPERTY_WINDOW_MS,
        }
    }
}

/// What [`PropertyStore::apply_user_properties`] did with one event's `user_properties`.
///
/// Serializes as `"no_update"`, `"applied"`, `"dropped"`, `"skipped"`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum PropertyOutcome {
    /// The event carried no (or an empty) `user_properties` object; nothing counted.
    NoUpdate,
    /// The update was counted against the cap and its operations were applied (entries with
    /// bad types inside it were skipped).
    Applied,
    /// Over the 1,800/hour cap: the update was silently dropped, state unchanged (spec §8.1).
    Dropped,
    /// `$skip_user_properties_sync` was true: the stored properties were neither read nor
    /// updated and nothing counted against the cap (spec §3.2).
    Skipped,
}

/// Read-back of one Amplitude ID's state, for `GET /__mock/users` (spec §3.2, §3.3, §8.1).
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct UserState {
    /// The Amplitude ID (small integer assigned by the mock, starting at 1).
    pub amplitude_id: u64,
    /// The `user_id` attached to this Amplitude ID, if any (anonymous devices have none).
    pub user_id: Option<String>,
    /// Every `device_id` that [`PropertyStore::amplitude_id`] resolved to this ID, in the
    /// order first seen. A device later linked to a user stays listed under its earlier
    /// anonymous ID too.
    pub device_ids: Vec<String>,
    /// Current user properties (the result of every applied operation).
    pub user_properties: Map<String, Value>,
    /// Updates counted in the current cap window, as of the last update (not re-evaluated
    /// at read time). `0` before the first update.
    pub updates_in_window: u32,
    /// Start of the current cap window, ms since epoch; `0` before the first update.
    pub window_start_ms: i64,
    /// Updates applied since the ID was created.
    pub updates_applied: u64,
    /// Updates dropped by the 1,800/hour cap since the ID was created (spec §8.1).
    pub updates_dropped: u64,
}

/// Store-wide counters of [`PropertyStore::apply_user_properties`] outcomes since start (or
/// the last [`PropertyStore::clear`]).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct PropertyTotals {
    /// Updates applied ([`PropertyOutcome::Applied`]).
    pub applied: u64,
    /// Updates dropped by the cap ([`PropertyOutcome::Dropped`], spec §8.1).
    pub dropped: u64,
    /// Updates skipped by `$skip_user_properties_sync` ([`PropertyOutcome::Skipped`], spec §3.2).
    pub skipped: u64,
}

/// Owned key of the `user_id` / `device_id` indexes.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct IdKey {
    project: u32,
    id: String,
}

/// Borrowed lookup key; hashes exactly like [`IdKey`] (same field order, `str` ≡ `String`).
#[derive(Hash)]
struct IdQuery<'a> {
    project: u32,
    id: &'a str,
}

impl Equivalent<IdKey> for IdQuery<'_> {
    fn equivalent(&self, key: &IdKey) -> bool {
        self.project == key.project && self.id == key.id
    }
}

/// Owned key of the group table.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct GroupKey {
    project: u32,
    group_type: String,
    group_value: String,
}

/// Borrowed lookup key; hashes exactly like [`GroupKey`].
#[derive(Hash)]
struct GroupQuery<'a> {
    project: u32,
    group_type: &'a str,
    group_value: &'a str,
}

impl Equivalent<GroupKey> for GroupQuery<'_> {
    fn equivalent(&self, key: &GroupKey) -> bool {
        self.project == key.project
            && self.group_type == key.group_type
            && self.group_value == key.group_value
    }
}

/// Where a device's anonymous events go.
#[derive(Debug, Clone, Copy)]
struct DeviceLink {
    amplitude_id: u64,
    /// True once the device has been seen together with a `user_id`.
    linked_to_user: bool,
}

/// Per-Amplitude-ID state.
#[derive(Debug, Default)]
struct UserRecord {
    user_id: Option<String>,
    device_ids: Vec<String>,
    properties: Map<String, Value>,
    /// Whether a cap window has been opened (first update seen).
    window_open: bool,
    window_start_ms: i64,
    updates_in_window: u32,
    updates_applied: u64,
    updates_dropped: u64,
}

impl UserRecord {
    fn add_device(&mut self, device_id: &str) {
        if !self.device_ids.iter().any(|d| d == device_id) {
            self.device_ids.push(device_id.to_owned());
        }
    }
}

type Shards<K, V> = Box<[Mutex<HashMap<K, V>>]>;

fn new_shards<K, V>() -> Shards<K, V> {
    (0..SHARDS).map(|_| Mutex::new(HashMap::new())).collect()
}

/// Sharded, thread-safe store of Amplitude IDs, user properties and group properties
/// (spec §3.2, §3.3, §8.1, §10, §11).
///
/// All methods take `&self`; the store is `Send + Sync` and meant to be shared in an `Arc`.
/// Work per event is O(1) apart from the size of the property objects involved.
///
/// Locking: every table is split into 64 `parking_lot::Mutex` shards chosen by an xxh3 hash
/// of the key. A call locks at most one shard of each table, always in the order
/// user index → device index → user records (group shards are independent), so calls
/// cannot deadlock; [`PropertyStore::clear`] locks every shard in that same order.
pub struct PropertyStore {
    /// `(project, user_id)` → Amplitude ID.
    users: Shards<IdKey, u64>,
    /// `(project, device_id)` → link.
    devices: Shards<IdKey, DeviceLink>,
    /// `(project, amplitude_id)` → state.
    records: Shards<(u32, u64), UserRecord>,
    /// `(project, group_type, group_value)` → group properties.
    groups: Shards<GroupKey, Map<String, Value>>,
    /// Next Amplitude ID to hand out (starts at 1).
    next_id: AtomicU64,
    applied: AtomicU64,
    dropped: AtomicU64,
    skipped: AtomicU64,
}

impl Default for PropertyStore {
    fn default() -> Self {
        Self::new()
    }
}

impl std::fmt::Debug for PropertyStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PropertyStore")
            .field("next_id", &self.next_id.load(Ordering::Relaxed))
            .field("totals", &self.totals())
            .finish_non_exhaustive()
    }
}

impl PropertyStore {
    /// An empty store; the first Amplitude ID handed out is 1.
    pub fn new() -> Self {
        Self {
            users: new_shards(),
            devices: new_shards(),
            records: new_shards(),
            groups: new_shards(),
            next_id: AtomicU64::new(1),
            applied: AtomicU64::new(0),
            dropped: AtomicU64::new(0),
            skipped: AtomicU64::new(0),
        }
    }

    fn id_shard(project: u32, id: &str) -> usize {
        (xxh3_64_with_seed(id.as_bytes(), u64::from(project)) as usize) & (SHARDS - 1)
    }

    fn record_shard(amplitude_id: u64) -> usize {
        (xxh3_64(&amplitude_id.to_le_bytes()) as usize) & (SHARDS - 1)
    }

    fn group_shard(project: u32, group_type: &str, group_value: &str) -> usize {
        let seed = xxh3_64_with_seed(group_type.as_bytes(), u64::from(project));
        (xxh3_64_with_seed(group_value.as_bytes(), seed) as usize) & (SHARDS - 1)
    }

    fn next_id(&self) -> u64 {
        self.next_id.fetch_add(1, Ordering::Relaxed)
    }

    /// Runs `f` on the record of `(project, amplitude_id)`, creating an empty one if needed.
    fn with_record<R>(
        &self,
        project: u32,
        amplitude_id: u64,
        f: impl FnOnce(&mut UserRecord) -> R,
    ) -> R {
        let mut shard = self.records[Self::record_shard(amplitude_id)].lock();
        f(shard.entry((project, amplitude_id)).or_default())
    }

    /// Resolves the Amplitude ID of an event's `(user_id, device_id)` in `project`, creating
    /// IDs and links as needed (spec §3.2 `user_id`/`device_id`, §10 "New user rule").
    ///
    /// IDs are small integers handed out in call order from one counter shared by all
    /// projects, starting at 1, so the same sequence of calls always yields the same IDs.
    /// Rules (the real service's merging is UNCERTAIN; this is the mock's model):
    /// - `user_id` only: one Amplitude ID per `(project, user_id)`, created on first sight.
    /// - `device_id` only: the ID the device is linked to; a new device gets its own
    ///   (anonymous) ID.
    /// - both: the user's ID wins. The first time a device is seen with a `user_id` it is
    ///   linked to that user, and its later anonymous events resolve to the user:
    ///   - unknown user + anonymous device: the user adopts the device's anonymous ID (its
    ///     properties become the user's, as when Amplitude first sets a user_id on a device);
    ///   - known user + anonymous device: the device is re-linked to the user's ID; the
    ///     anonymous ID keeps its properties (no merge);
    ///   - device already linked to another user: the link stays (first link wins); an
    ///     unknown user gets a new ID ("changing the user_id creates a new user", spec §10).
    /// - neither (the pipeline rejects such events with a 400): a fresh ID that nothing refers
    ///   to, so nothing can be read back for it.
    ///
    /// Empty strings are treated like any other ID (validation is the pipeline's job).
    pub fn amplitude_id(
        &self,
        project: u32,
        user_id: Option<&str>,
        device_id: Option<&str>,
    ) -> u64 {
        match (user_id, device_id) {
            (None, None) => self.next_id(),
            (Some(user), None) => {
                let mut users = self.users[Self::id_shard(project, user)].lock();
                if let Some(&id) = users.get(&IdQuery { project, id: user }) {
                    return id;
                }
                let id = self.next_id();
                users.insert(
                    IdKey {
                        project,
                        id: user.to_owned(),
                    },
                    id,
                );
                self.with_record(project, id, |rec| rec.user_id = Some(user.to_owned()));
                id
            }
            (None, Some(device)) => {
                let mut devices = self.devices[Self::id_shard(project, device)].lock();
                if let Some(link) = devices.get(&IdQuery {
                    project,
                    id: device,
                }) {
                    return link.amplitude_id;
                }
                let id = self.next_id();
                let link = DeviceLink {
                    amplitude_id: id,
                    linked_to_user: false,
                };
                devices.insert(
                    IdKey {
                        project,
                        id: device.to_owned(),
                    },
                    link,
                );
                self.with_record(project, id, |rec| rec.add_device(device));
                id
            }
            (Some(user), Some(device)) => self.resolve_both(project, user, device),
        }
    }

    fn resolve_both(&self, project: u32, user: &str, device: &str) -> u64 {
        // Lock order: user index, then device index, then (inside with_record) a record shard.
        let mut users = self.users[Self::id_shard(project, user)].lock();
        let mut devices = self.devices[Self::id_shard(project, device)].lock();
        let user_query = IdQuery { project, id: user };
        let device_query = IdQuery {
            project,
            id: device,
        };
        let known_user = users.get(&user_query).copied();
        let link = devices.get_mut(&device_query);
        match (known_user, link) {
            (Some(id), Some(link)) => {
                if link.linked_to_user {
                    if link.amplitude_id != id {
                        // Shared device, first link wins; still remember the pairing (rare path).
                        self.with_record(project, id, |rec| rec.add_device(device));
                    }
                } else {
                    link.amplitude_id = id;
                    link.linked_to_user = true;
                    self.with_record(project, id, |rec| rec.add_device(device));
                }
                id
            }
            (Some(id), None) => {
                let link = DeviceLink {
                    amplitude_id: id,
                    linked_to_user: true,
                };
                devices.insert(
                    IdKey {
                        project,
                        id: device.to_owned(),
                    },
                    link,
                );
                self.with_record(project, id, |rec| rec.add_device(device));
                id
            }
            (None, Some(link)) if !link.linked_to_user => {
                let id = link.amplitude_id;
                link.linked_to_user = true;
                users.insert(
                    IdKey {
                        project,
                        id: user.to_owned(),
                    },
                    id,
                );
                self.with_record(project, id, |rec| {
                    rec.user_id = Some(user.to_owned());
                    rec.add_device(device);
                });
                id
            }
            (None, Some(_linked_to_other_user)) => {
                let id = self.next_id();
                users.insert(
                    IdKey {
                        project,
                        id: user.to_owned(),
                    },
                    id,
                );
                self.with_record(project, id, |rec| {
                    rec.user_id = Some(user.to_owned());
                    rec.add_device(device);
                });
                id
            }
            (None, None) => {
                let id = self.next_id();
                users.insert(
                    IdKey {
                        project,
                        id: user.to_owned(),
                    },
                    id,
                );
                let link = DeviceLink {
                    amplitude_id: id,
                    linked_to_user: true,
                };
                devices.insert(
                    IdKey {
                        project,
                        id: device.to_owned(),
                    },
                    link,
                );
                self.with_record(project, id, |rec| {
                    rec.user_id = Some(user.to_owned());
                    rec.add_device(device);
                });
                id
            }
        }
    }

    /// Applies one event's `user_properties` object to Amplitude ID `amplitude_id` of
    /// `project` at `now_ms` (ms since epoch) — spec §3.2, §3.3, §8.1.
    ///
    /// - Empty object (or the pipeline passing an empty map for an absent one): `NoUpdate`.
    /// - `skip_sync` (the event's `$skip_user_properties_sync`, spec §3.2): `Skipped`; the
    ///   stored state is neither read nor updated and nothing counts against the cap.
    ///   (An empty object with `skip_sync` is `NoUpdate`.)
    /// - Otherwise the event is one update for the cap of `cfg.updates_per_hour` per
    ///   `cfg.window_ms`: past the cap it is dropped silently (spec §8.1) — `Dropped`, state
    ///   unchanged, the ID's `updates_dropped` incremented. Under the cap the operations are
    ///   applied in the server's order (`$clearAll`, `$unset`, `$set`, `$setOnce`, `$add`,
    ///   `$append`, `$prepend`, `$preInsert`, `$postInsert`, `$remove`, spec §3.3) whatever
    ///   the key order in the JSON: `Applied`. An object without any `$`-key is a plain
    ///   `$set` of all its keys.
    ///
    /// Window (UNCERTAIN): a fixed window of `cfg.window_ms` anchored at the first update
    /// whose `now_ms` falls outside the current `[start, start + window_ms)` (this includes
    /// a clock that went backwards). Creates the ID's record if [`Self::amplitude_id`] never
    /// did. Bad entries are skipped as described in the module docs.
    pub fn apply_user_properties(
        &self,
        project: u32,
        amplitude_id: u64,
        user_properties: &Map<String, Value>,
        skip_sync: bool,
        now_ms: i64,
        cfg: &PropertyConfig,
    ) -> PropertyOutcome {
        if user_properties.is_empty() {
            return PropertyOutcome::NoUpdate;
        }
        if skip_sync {
            self.skipped.fetch_add(1, Ordering::Relaxed);
            return PropertyOutcome::Skipped;
        }
        let window = i64::try_from(cfg.window_ms).unwrap_or(i64::MAX);
        self.with_record(project, amplitude_id, |rec| {
            let in_window = rec.window_open
                && now_ms >= rec.window_start_ms
                && now_ms < rec.window_start_ms.saturating_add(window);
            if !in_window {
                rec.window_open = true;
                rec.window_start_ms = now_ms;
                rec.updates_in_window = 0;
            }
            if rec.updates_in_window >= cfg.updates_per_hour {
                rec.updates_dropped = rec.updates_dropped.saturating_add(1);
                self.dropped.fetch_add(1, Ordering::Relaxed);
                return PropertyOutcome::Dropped;
            }
            rec.updates_in_window = rec.updates_in_window.saturating_add(1);
            rec.updates_applied = rec.updates_applied.saturating_add(1);
            apply_ops(&mut rec.properties, user_properties, &USER_OPS);
            self.applied.fetch_add(1, Ordering::Relaxed);
            PropertyOutcome::Applied
        })
    }

    /// Applies a `$groupidentify` event's `group_properties` to every group named in its
    /// `groups` object (spec §3.2 `groups`/`group_properties`, §11).
    ///
    /// `groups` is `{group_type: group_value | [group_value, …]}`; non-string values are
    /// ignored, a value repeated in one call is applied once, and at most
    /// `MAX_GROUP_TYPES` (5) types / `MAX_GROUP_VALUES` (10) values are updated, in the map's
    /// iteration order (spec §3.4 "Groups": extras silently not tracked). Only the group ops
    /// `$unset`, `$set`, `$setOnce`, `$add`, `$append`, `$prepend` are honoured, in server
    /// order (spec §11; `$prepend` per the group-identify doc, §15 #17); other `$`-keys are
    /// ignored, plain keys are a `$set`. Not subject to the user-property cap. A group is
    /// created (possibly empty) when first named with a non-empty `group_properties`.
    ///
    /// Returns how many groups' properties actually changed. The caller decides whether the
    /// event is a `$groupidentify` (group_properties are ignored on other events).
    pub fn apply_group_properties(
        &self,
        project: u32,
        groups: &Map<String, Value>,
        group_properties: &Map<String, Value>,
    ) -> usize {
        if group_properties.is_empty() {
            return 0;
        }
        let mut changed = 0;
        let mut types_used = 0usize;
        let mut values_used = 0usize;
        for (group_type, value) in groups {
            if types_used >= MAX_GROUP_TYPES || values_used >= MAX_GROUP_VALUES {
                break;
            }
            let values: Vec<&str> = match value {
                Value::String(s) => vec![s.as_str()],
                Value::Array(items) => items.iter().filter_map(Value::as_str).collect(),
                _ => Vec::new(),
            };
            let mut seen: Vec<&str> = Vec::new();
            for group_value in values {
                if values_used >= MAX_GROUP_VALUES {
                    break;
                }
                if seen.contains(&group_value) {
                    continue;
                }
                seen.push(group_value);
                values_used += 1;
                let shard = Self::group_shard(project, group_type, group_value);
                let mut table = self.groups[shard].lock();
                let query = GroupQuery {
                    project,
                    group_type,
                    group_value,
                };
                let props = match table.get_mut(&query) {
                    Some(props) => props,
                    None => table
                        .entry(GroupKey {
                            project,
                            group_type: group_type.clone(),
                            group_value: group_value.to_owned(),
                        })
                        .or_default(),
                };
                if apply_ops(props, group_properties, &GROUP_OPS) {
                    changed += 1;
                }
            }
            if !seen.is_empty() {
                types_used += 1;
            }
        }
        changed
    }

    /// Read-back for `GET /__mock/users`: the state of the Amplitude ID an event carrying
    /// these IDs would resolve to (see [`Self::amplitude_id`]), without creating anything.
    ///
    /// A known `user_id` wins; otherwise a `device_id` not yet linked to a user gives its
    /// anonymous ID; with only a `device_id`, the ID the device is linked to. `None` if no
    /// such ID exists (an unknown user with a device linked to someone else is `None`).
    pub fn user(
        &self,
        project: u32,
        user_id: Option<&str>,
        device_id: Option<&str>,
    ) -> Option<UserState> {
        let by_user = user_id.and_then(|user| {
            let users = self.users[Self::id_shard(project, user)].lock();
            users.get(&IdQuery { project, id: user }).copied()
        });
        let id = match by_user {
            Some(id) => id,
            None => {
                let device = device_id?;
                let devices = self.devices[Self::id_shard(project, device)].lock();
                let link = devices.get(&IdQuery {
                    project,
                    id: device,
                })?;
                if user_id.is_some() && link.linked_to_user {
                    return None;
                }
                link.amplitude_id
            }
        };
        let shard = self.records[Self::record_shard(id)].lock();
        let rec = shard.get(&(project, id))?;
        Some(UserState {
            amplitude_id: id,
            user_id: rec.user_id.clone(),
            device_ids: rec.device_ids.clone(),
            user_properties: rec.properties.clone(),
            updates_in_window: rec.updates_in_window,
            window_start_ms: rec.window_start_ms,
            updates_applied: rec.updates_applied,
            updates_dropped: rec.updates_dropped,
        })
    }

    /// Current properties of group `(group_type, group_value)` in `project` (spec §11), or
    /// `None` if no `$groupidentify` ever named it.
    pub fn group(
        &self,
        project: u32,
        group_type: &str,
        group_value: &str,
    ) -> Option<Map<String, Value>> {
        let table = self.groups[Self::group_shard(project, group_type, group_value)].lock();
        table
            .get(&GroupQuery {
                project,
                group_type,
                group_value,
            })
            .cloned()
    }

    /// Counts of applied / dropped / skipped user-property updates since start or the last
    /// [`Self::clear`].
    pub fn totals(&self) -> PropertyTotals {
        PropertyTotals {
            applied: self.applied.load(Ordering::Relaxed),
            dropped: self.dropped.load(Ordering::Relaxed),
            skipped: self.skipped.load(Ordering::Relaxed),
        }
    }

    /// Forgets everything: IDs, links, user and group properties, totals; the next Amplitude
    /// ID is 1 again (so a run after `clear` is as deterministic as one on a new store).
    pub fn clear(&self) {
        let mut users: Vec<_> = self.users.iter().map(|s| s.lock()).collect();
        let mut devices: Vec<_> = self.devices.iter().map(|s| s.lock()).collect();
        let mut records: Vec<_> = self.records.iter().map(|s| s.lock()).collect();
        let mut groups: Vec<_> = self.groups.iter().map(|s| s.lock()).collect();
        users.iter_mut().for_each(|m| m.clear());
        devices.iter_mut().for_each(|m| m.clear());
        records.iter_mut().for_each(|m| m.clear());
        groups.iter_mut().for_each(|m| m.clear());
        self.next_id.store(1, Ordering::Relaxed);
        self.applied.store(0, Ordering::Relaxed);
        self.dropped.store(0, Ordering::Relaxed);
        self.skipped.store(0, Ordering::Relaxed);
    }
}

// ---------------------------------------------------------------------------------------
// Operations (spec §3.3, §11)
// ---------------------------------------------------------------------------------------

/// A property operation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Op {
    ClearAll,
    Unset,
    Set,
    SetOnce,
    Add,
    Append,
    Prepend,
    PreInsert,
    PostInsert,
    Remove,
}

impl Op {
    fn key(self) -> &'static str {
        match self {
            Op::ClearAll => "$clearAll",
            Op::Unset => "$unset",
            Op::Set => "$set",
            Op::SetOnce => "$setOnce",
            Op::Add => "$add",
            Op::Append => "$append",
            Op::Prepend => "$prepend",
            Op::PreInsert => "$preInsert",
            Op::PostInsert => "$postInsert",
            Op::Remove => "$remove",
        }
    }
}

/// User-property operations in the server's order (spec §3.3).
const USER_OPS: [Op; 10] = [
    Op::ClearAll,
    Op::Unset,
    Op::Set,
    Op::SetOnce,
    Op::Add,
    Op::Append,
    Op::Prepend,
    Op::PreInsert,
    Op::PostInsert,
    Op::Remove,
];

/// Group-property operations (spec §11), in the same server order.
const GROUP_OPS: [Op; 6] = [
    Op::Unset,
    Op::Set,
    Op::SetOnce,
    Op::Add,
    Op::Append,
    Op::Prepend,
];

/// Applies the operations of `props` that are in `ops` (given in server order) to `target`.
/// Plain (non-`$`) keys are a `$set` applied at the `$set` step, before the explicit `$set`.
/// Returns whether `target` changed.
fn apply_ops(target: &mut Map<String, Value>, props: &Map<String, Value>, ops: &[Op]) -> bool {
    let mut changed = false;
    for &op in ops {
        if op == Op::Set {
            for (key, value) in props.iter().filter(|(k, _)| !k.starts_with('$')) {
                changed |= set(target, key, value);
            }
        }
        let Some(arg) = props.get(op.key()) else {
            continue;
        };
        if op == Op::ClearAll {
            // Value ignored (SDKs send "-").
            changed |= !target.is_empty();
            target.clear();
            continue;
        }
        // Every other op takes an object {property: argument}; anything else is skipped.
        let Value::Object(entries) = arg else {
            continue;
        };
        for (key, value) in entries {
            changed |= match op {
                Op::ClearAll => false,
                Op::Unset => target.remove(key).is_some(),
                Op::Set => set(target, key, value),
                Op::SetOnce => {
                    if target.contains_key(key) {
                        false
                    } else {
                        target.insert(key.clone(), value.clone());
                        true
                    }
                }
                Op::Add => add(target, key, value),
                Op::Append => insert_list(target, key, value, End::Back, false),
                Op::Prepend => insert_list(target, key, value, End::Front, false),
                Op::PreInsert => insert_list(target, key, value, End::Front, true),
                Op::PostInsert => insert_list(target, key, value, End::Back, true),
                Op::Remove => remove(target, key, value),
            };
        }
    }
    changed
}

fn set(target: &mut Map<String, Value>, key: &str, value: &Value) -> bool {
    if target.get(key) == Some(value) {
        return false;
    }
    target.insert(key.to_owned(), value.clone());
    true
}

/// `$add`: numeric increment; an absent property counts as 0. Skips a non-number argument,
/// a non-number existing value and a non-finite result.
fn add(target: &mut Map<String, Value>, key: &str, value: &Value) -> bool {
    let Value::Number(delta) = value else {
        return false;
    };
    let sum = match target.get(key) {
        None => Some(delta.clone()),
        Some(Value::Number(current)) => add_numbers(current, delta),
        Some(_) => None,
    };
    match sum {
        Some(sum) => {
            let sum = Value::Number(sum);
            let changed = target.get(key) != Some(&sum);
            target.insert(key.to_owned(), sum);
            changed
        }
        None => false,
    }
}

fn number_as_i128(n: &Number) -> Option<i128> {
    n.as_i64()
        .map(i128::from)
        .or_else(|| n.as_u64().map(i128::from))
}

/// Sum of two JSON numbers: exact for integers that fit i64/u64, else f64; `None` if the
/// result is not finite.
fn add_numbers(a: &Number, b: &Number) -> Option<Number> {
    if let (Some(x), Some(y)) = (number_as_i128(a), number_as_i128(b)) {
        // Both fit in 64 bits, so the i128 sum cannot overflow.
        let sum = x + y;
        if let Ok(v) = i64::try_from(sum) {
            return Some(Number::from(v));
        }
        if let Ok(v) = u64::try_from(sum) {
            return Some(Number::from(v));
        }
    }
    Number::from_f64(a.as_f64()? + b.as_f64()?)
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum End {
    Front,
    Back,
}

/// `$append` / `$prepend` (`unique = false`) and `$postInsert` / `$preInsert`
/// (`unique = true`: only values not already present, each once). An array argument
/// contributes its elements in order; a scalar existing value becomes a one-element array.
fn insert_list(
    target: &mut Map<String, Value>,
    key: &str,
    value: &Value,
    end: End,
    unique: bool,
) -> bool {
    let incoming: Vec<&Value> = match value {
        Value::Array(items) => items.iter().collect(),
        other => vec![other],
    };
    let existing: &[Value] = match target.get(key) {
        Some(Value::Array(items)) => items,
        Some(other) => std::slice::from_ref(other),
        None => &[],
    };
    let mut new_items: Vec<Value> = Vec::with_capacity(incoming.len());
    for item in incoming {
        if unique && (existing.contains(item) || new_items.contains(item)) {
            continue;
        }
        new_items.push(item.clone());
    }
    if new_items.is_empty() {
        return false;
    }
    let mut list = match target.remove(key) {
        Some(Value::Array(items)) => items,
        Some(other) => vec![other],
        None => Vec::new(),
    };
    match end {
        End::Back => list.extend(new_items),
        End::Front => {
            new_items.extend(list);
            list = new_items;
        }
    }
    target.insert(key.to_owned(), Value::Array(list));
    true
}

/// `$remove`: removes every instance of the value(s) from the array property. A scalar
/// existing value equal to a removed value leaves an empty array; absent → nothing.
fn remove(target: &mut Map<String, Value>, key: &str, value: &Value) -> bool {
    let removed: &[Value] = match value {
        Value::Array(items) => items,
        other => std::slice::from_ref(other),
    };
    match target.get_mut(key) {
        Some(Value::Array(items)) => {
            let before = items.len();
            items.retain(|item| !removed.contains(item));
            items.len() != before
        }
        Some(scalar) if removed.contains(scalar) => {
            *scalar = Value::Array(Vec::new());
            true
        }
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const P: u32 = 7;
    const HOUR: i64 = 3_600_000;
    const T0: i64 = 1_767_225_600_000; // 2026-01-01T00:00:00Z

    fn obj(v: Value) -> Map<String, Value> {
        match v {
            Value::Object(m) => m,
            other => panic!("not an object: {other}"),
        }
    }

    /// Applies `props` to a fresh user and returns the resulting properties.
    fn props_after(steps: &[Value]) -> Value {
        let store = PropertyStore::new();
        let id = store.amplitude_id(P, Some("user-1"), None);
        for step in steps {
            let out = store.apply_user_properties(
                P,
                id,
                &obj(step.clone()),
                false,
                T0,
                &PropertyConfig::default(),
            );
            assert_eq!(out, PropertyOutcome::Applied);
        }
        Value::Object(store.user(P, Some("user-1"), None).unwrap().user_properties)
    }

    // ---- config -------------------------------------------------------------------------

    #[test]
    fn default_config_is_documented_limit() {
        // spec §8.1: 1,800 per hour
        assert_eq!(
            PropertyConfig::default(),
            PropertyConfig {
                updates_per_hour: 1_800,
                window_ms: 3_600_000
            }
        );
    }

    #[test]
    fn outcome_serializes_snake_case() {
        assert_eq!(
            serde_json::to_value(PropertyOutcome::NoUpdate).unwrap(),
            json!("no_update")
        );
        assert_eq!(
            serde_json::to_value(PropertyOutcome::Dropped).unwrap(),
            json!("dropped")
        );
    }

    // ---- operations (spec §3.3) -----------------------------------------------------------

    #[test]
    fn plain_object_is_set() {
        // spec §3.3: ops vs plain keys; plain object = $set
        assert_eq!(
            props_after(&[json!({"plan": "pro", "age": 30})]),
            json!({"plan": "pro", "age": 30})
        );
        assert_eq!(
            props_after(&[json!({"a": 1}), json!({"a": 2, "b": [1]})]),
            json!({"a": 2, "b": [1]})
        );
    }

    #[test]
    fn set_then_add_in_server_order() {
        // spec §3.3: $set runs before $add regardless of JSON key order
        assert_eq!(
            props_after(&[json!({"$add": {"n": 1}, "$set": {"n": 5}})]),
            json!({"n": 6})
        );
    }

    #[test]
    fn set_once_does_not_overwrite() {
        // spec §3.3 $setOnce
        let got = props_after(&[
            json!({"$setOnce": {"first_seen": "a"}}),
            json!({"$setOnce": {"first_seen": "b", "other": 1}}),
            json!({"$set": {"x": 1}, "$setOnce": {"x": 2}}),
        ]);
        assert_eq!(got, json!({"first_seen": "a", "other": 1, "x": 1}));
    }

    #[test]
    fn set_once_after_unset_sets_again() {
        // spec §3.3; UNCERTAIN choice: "never set" = currently absent
        let got = props_after(&[
            json!({"$set": {"a": 1}}),
            json!({"$unset": {"a": "-"}}),
            json!({"$setOnce": {"a": 2}}),
        ]);
        assert_eq!(got, json!({"a": 2}));
    }

    #[test]
    fn add_numbers_only() {
        // spec §3.3 $add: numbers only, absent counts as 0
        let got = props_after(&[
            json!({"$add": {"n": 3}}),
            json!({"$add": {"n": -5, "f": 1.5}}),
            json!({"$add": {"f": 1}}),
            json!({"$set": {"s": "x"}}),
            json!({"$add": {"s": 1, "n": "7", "m": true}}),
        ]);
        assert_eq!(got, json!({"n": -2, "f": 2.5, "s": "x"}));
    }

    #[test]
    fn add_large_integers_stay_exact_or_fall_back_to_float() {
        // spec §3.3 $add
        let got = props_after(&[
            json!({"$set": {"a": i64::MAX, "b": u64::MAX}}),
            json!({"$add": {"a": 1, "b": 1}}),
        ]);
        assert_eq!(got["a"], json!(9_223_372_036_854_775_808_u64));
        assert_eq!(got["b"], json!(18_446_744_073_709_551_616.0_f64));
        let huge = props_after(&[
            json!({"$set": {"f": f64::MAX}}),
            json!({"$add": {"f": f64::MAX}}),
        ]);
        assert_eq!(huge, json!({"f": f64::MAX}), "non-finite result skipped");
    }

    #[test]
    fn append_and_prepend() {
        // spec §3.3 $append / $prepend
        let got = props_after(&[
            json!({"$append": {"l": "a"}}),
            json!({"$append": {"l": ["b", "a"]}}),
            json!({"$prepend": {"l": ["y", "z"]}}),
            json!({"$set": {"s": 1}}),
            json!({"$append": {"s": 2}, "$prepend": {"t": 0}}),
        ]);
        assert_eq!(
            got,
            json!({"l": ["y", "z", "a", "b", "a"], "s": [1, 2], "t": [0]})
        );
    }

    #[test]
    fn pre_and_post_insert_only_new_values() {
        // spec §3.3 $preInsert / $postInsert: only values not present, order preserved
        let got = props_after(&[
            json!({"$set": {"l": ["b"]}}),
            json!({"$postInsert": {"l": ["b", "c", "d", "c"]}}),
            json!({"$preInsert": {"l": ["a", "d", "0"]}}),
            json!({"$set": {"s": "x"}}),
            json!({"$postInsert": {"s": "x", "new": [1, 1, 2]}}),
        ]);
        assert_eq!(
            got,
            json!({"l": ["a", "0", "b", "c", "d"], "s": "x", "new": [1, 2]})
        );
    }

    #[test]
    fn remove_all_instances() {
        // spec §3.3 $remove: all instances of the value(s)
        let got = props_after(&[
            json!({"$set": {"l": ["a", "b", "a", "c", 1], "s": "x", "k": "keep"}}),
            json!({"$remove": {"l": "a", "s": "x", "k": "other", "absent": 1}}),
            json!({"$remove": {"l": ["c", 1]}}),
        ]);
        assert_eq!(got, json!({"l": ["b"], "s": [], "k": "keep"}));
    }

    #[test]
    fn unset_and_clear_all() {
        // spec §3.3 $unset, $clearAll
        assert_eq!(
            props_after(&[json!({"a": 1, "b": 2}), json!({"$unset": {"a": "-"}})]),
            json!({"b": 2})
        );
        assert_eq!(
            props_after(&[json!({"a": 1, "b": 2}), json!({"$clearAll": "-"})]),
            json!({})
        );
    }

    #[test]
    fn clear_all_runs_first_then_other_ops() {
        // spec §3.3 server order: $clearAll first (UNCERTAIN: mixing isn't sent by SDKs)
        let got = props_after(&[
            json!({"a": 1, "b": 2}),
            json!({"$set": {"c": 3}, "$clearAll": "-"}),
        ]);
        assert_eq!(got, json!({"c": 3}));
    }

    #[test]
    fn full_server_order() {
        // spec §3.3: $clearAll, $unset, $set, $setOnce, $add, $append, $prepend, $preInsert,
        // $postInsert, $remove — all on one property, keys deliberately in reverse order
        let got = props_after(&[
            json!({"n": 1, "l": "old"}),
            json!({
                "$remove": {"l": "p"},
                "$postInsert": {"l": ["q", "z"]},
                "$preInsert": {"l": "p"},
                "$prepend": {"l": "y"},
                "$append": {"l": "z"},
                "$add": {"n": 10},
                "$setOnce": {"n": 100, "l": "ignored"},
                "$set": {"l": "x", "n": 2},
                "$unset": {"n": "-"},
            }),
        ]);
        // unset n; set l=x,n=2; setOnce no-op; add n=12; append [x,z]; prepend [y,x,z];
        // preInsert [p,y,x,z]; postInsert [p,y,x,z,q]; remove p → [y,x,z,q]
        assert_eq!(got, json!({"n": 12, "l": ["y", "x", "z", "q"]}));
    }

    #[test]
    fn plain_keys_mixed_with_ops_are_set_before_explicit_set() {
        // spec §3.3 says ops and plain keys can't be mixed; mock treats plain keys as $set
        let got = props_after(&[json!({"a": 1, "b": 1, "$set": {"b": 2}, "$add": {"a": 1}})]);
        assert_eq!(got, json!({"a": 2, "b": 2}));
    }

    #[test]
    fn bad_input_is_skipped_not_fatal() {
        // spec §3.3 (bad op values skipped, other ops keep going)
        let got = props_after(&[
            json!({"a": 1}),
            json!({"$set": "notanobject", "$add": [1], "$unset": "a", "$foo": {"x": 1}, "$append": {"l": 1}}),
            json!({"$add": {"a": "2"}, "$remove": 5, "$postInsert": {"l": []}}),
        ]);
        assert_eq!(got, json!({"a": 1, "l": [1]}));
    }

    // ---- skip sync (spec §3.2) -------------------------------------------------------------

    #[test]
    fn skip_sync_neither_reads_nor_updates() {
        // spec §3.2 $skip_user_properties_sync
        let store = PropertyStore::new();
        let cfg = PropertyConfig {
            updates_per_hour: 1,
            window_ms: 3_600_000,
        };
        let id = store.amplitude_id(P, Some("user-1"), None);
        assert_eq!(
            store.apply_user_properties(P, id, &obj(json!({"a": 1})), true, T0, &cfg),
            PropertyOutcome::Skipped
        );
        let st = store.user(P, Some("user-1"), None).unwrap();
        assert_eq!(st.user_properties, Map::new());
        assert_eq!(
            (st.updates_in_window, st.updates_applied, st.updates_dropped),
            (0, 0, 0)
        );
        // a skipped update did not use the single allowed update
        assert_eq!(
            store.apply_user_properties(P, id, &obj(json!({"a": 2})), false, T0, &cfg),
            PropertyOutcome::Applied
        );
        assert_eq!(
            store.totals(),
            PropertyTotals {
                applied: 1,
                dropped: 0,
                skipped: 1
            }
        );
        assert_eq!(
            store.apply_user_properties(P, id, &Map::new(), true, T0, &cfg),
            PropertyOutcome::NoUpdate
        );
        assert_eq!(
            store.apply_user_properties(P, id, &Map::new(), false, T0, &cfg),
            PropertyOutcome::NoUpdate
        );
        assert_eq!(
            store.totals(),
            PropertyTotals {
                applied: 1,
                dropped: 0,
                skipped: 1
            }
        );
    }

    // ---- the 1,800/hour cap (spec §8.1) ----------------------------------------------------

    #[test]
    fn cap_1800_per_hour_then_dropped_then_new_window() {
        // spec §8.1: 1,800 updates per hour per Amplitude ID, excess silently dropped
        let store = PropertyStore::new();
        let cfg = PropertyConfig::default();
        let id = store.amplitude_id(P, Some("user-1"), Some("device-1"));
        for i in 0..1_800_i64 {
            let now = T0 + i * 1_000; // spread over 30 minutes
            let out = store.apply_user_properties(
                P,
                id,
                &obj(json!({"$add": {"n": 1}})),
                false,
                now,
                &cfg,
            );
            assert_eq!(out, PropertyOutcome::Applied, "update {i}");
        }
        let before = store.user(P, Some("user-1"), None).unwrap();
        assert_eq!(before.user_properties, obj(json!({"n": 1800})));
        assert_eq!(
            (before.updates_in_window, before.window_start_ms),
            (1_800, T0)
        );

        let out = store.apply_user_properties(
            P,
            id,
            &obj(json!({"$set": {"n": 0, "x": 1}})),
            false,
            T0 + HOUR - 1,
            &cfg,
        );
        assert_eq!(out, PropertyOutcome::Dropped);
        let after = store.user(P, None, Some("device-1")).unwrap();
        assert_eq!(
            after.user_properties,
            obj(json!({"n": 1800})),
            "state unchanged"
        );
        assert_eq!((after.updates_applied, after.updates_dropped), (1_800, 1));

        let out = store.apply_user_properties(
            P,
            id,
            &obj(json!({"$add": {"n": 1}})),
            false,
            T0 + HOUR,
            &cfg,
        );
        assert_eq!(
            out,
            PropertyOutcome::Applied,
            "first update at window_start + 1 h"
        );
        let st = store.user(P, Some("user-1"), None).unwrap();
        assert_eq!(st.user_properties, obj(json!({"n": 1801})));
        assert_eq!((st.updates_in_window, st.window_start_ms), (1, T0 + HOUR));
        assert_eq!(
            store.totals(),
            PropertyTotals {
                applied: 1_801,
                dropped: 1,
                skipped: 0
            }
        );
    }

    #[test]
    fn window_anchors_at_first_update_after_previous_window() {
        // spec §8.1 (windowing UNCERTAIN: fixed window anchored at first update)
        let store = PropertyStore::new();
        let cfg = PropertyConfig {
            updates_per_hour: 2,
            window_ms: 1_000,
        };
        let id = store.amplitude_id(P, None, Some("device-1"));
        let up =
            |now| store.apply_user_properties(P, id, &obj(json!({"a": now})), false, now, &cfg);
        assert_eq!(up(500), PropertyOutcome::Applied);
        assert_eq!(up(1_400), PropertyOutcome::Applied);
        assert_eq!(up(1_499), PropertyOutcome::Dropped);
        // window [500, 1500) over; the next window opens at 5_000, not 1_500
        assert_eq!(up(5_000), PropertyOutcome::Applied);
        assert_eq!(up(5_999), PropertyOutcome::Applied);
        assert_eq!(up(5_999), PropertyOutcome::Dropped);
        let st = store.user(P, None, Some("device-1")).unwrap();
        assert_eq!((st.window_start_ms, st.updates_in_window), (5_000, 2));
        assert_eq!(st.user_properties, obj(json!({"a": 5_999})));
    }

    #[test]
    fn clock_jumps_never_panic() {
        // spec §8.1; a backwards jump out of the window opens a new window (mock choice)
        let store = PropertyStore::new();
        let cfg = PropertyConfig {
            updates_per_hour: 1,
            window_ms: u64::MAX,
        };
        let id = store.amplitude_id(P, Some("user-1"), None);
        let up = |now| store.apply_user_properties(P, id, &obj(json!({"a": 1})), false, now, &cfg);
        assert_eq!(up(i64::MAX - 1), PropertyOutcome::Applied);
        assert_eq!(
            up(i64::MAX - 1),
            PropertyOutcome::Dropped,
            "window end saturates at i64::MAX"
        );
        assert_eq!(up(i64::MIN), PropertyOutcome::Applied);
        assert_eq!(up(-2), PropertyOutcome::Dropped, "window [i64::MIN, -1)");
        let cfg = PropertyConfig {
            updates_per_hour: 1,
            window_ms: 3_600_000,
        };
        let up = |now| store.apply_user_properties(P, id, &obj(json!({"a": 1})), false, now, &cfg);
        assert_eq!(up(T0), PropertyOutcome::Applied);
        assert_eq!(
            up(T0 - 1),
            PropertyOutcome::Applied,
            "backwards out of the window"
        );
        assert_eq!(
            up(T0 + 10 * 24 * HOUR),
            PropertyOutcome::Applied,
            "jump forward 10 days"
        );
    }

    #[test]
    fn zero_cap_drops_everything() {
        // spec §8.1 (config knob)
        let store = PropertyStore::new();
        let cfg = PropertyConfig {
            updates_per_hour: 0,
            window_ms: 1,
        };
        let out = store.apply_user_properties(P, 42, &obj(json!({"a": 1})), false, T0, &cfg);
        assert_eq!(out, PropertyOutcome::Dropped);
        assert_eq!(
            store.totals(),
            PropertyTotals {
                applied: 0,
                dropped: 1,
                skipped: 0
            }
        );
    }

    #[test]
    fn cap_is_per_amplitude_id() {
        // spec §8.1 "per Amplitude ID"
        let store = PropertyStore::new();
        let cfg = PropertyConfig {
            updates_per_hour: 1,
            window_ms: 3_600_000,
        };
        let a = store.amplitude_id(P, Some("user-a"), None);
        let b = store.amplitude_id(P, Some("user-b"), None);
        assert_eq!(
            store.apply_user_properties(P, a, &obj(json!({"x": 1})), false, T0, &cfg),
            PropertyOutcome::Applied
        );
        assert_eq!(
            store.apply_user_properties(P, a, &obj(json!({"x": 2})), false, T0, &cfg),
            PropertyOutcome::Dropped
        );
        assert_eq!(
            store.apply_user_properties(P, b, &obj(json!({"x": 3})), false, T0, &cfg),
            PropertyOutcome::Applied
        );
    }

    // ---- Amplitude IDs (spec §3.2, §10) ----------------------------------------------------

    #[test]
    fn ids_are_small_and_in_order() {
        // spec §3.2 user_id/device_id
        let store = PropertyStore::new();
        assert_eq!(store.amplitude_id(P, Some("user-1"), None), 1);
        assert_eq!(store.amplitude_id(P, None, Some("device-1")), 2);
        assert_eq!(store.amplitude_id(P, Some("user-1"), None), 1);
        assert_eq!(
            store.amplitude_id(P + 1, Some("user-1"), None),
            3,
            "per project"
        );
        assert_eq!(store.amplitude_id(P, None, Some("device-1")), 2);
        assert_eq!(
            store.amplitude_id(P, None, None),
            4,
            "no identity: fresh unused ID"
        );
        store.clear();
        assert_eq!(
            store.amplitude_id(P, None, Some("device-9")),
            1,
            "clear resets the counter"
        );
        assert_eq!(store.user(P, Some("user-1"), None), None);
    }

    #[test]
    fn new_user_adopts_anonymous_device_id() {
        // spec §10 "New user rule": setting user_id from null does not create a new user
        let store = PropertyStore::new();
        let cfg = PropertyConfig::default();
        let anon = store.amplitude_id(P, None, Some("device-1"));
        store.apply_user_properties(P, anon, &obj(json!({"referrer": "ad"})), false, T0, &cfg);
        let id = store.amplitude_id(P, Some("user-1"), Some("device-1"));
        assert_eq!(id, anon);
        assert_eq!(store.amplitude_id(P, None, Some("device-1")), anon);
        assert_eq!(store.amplitude_id(P, Some("user-1"), None), anon);
        let st = store.user(P, Some("user-1"), None).unwrap();
        assert_eq!(st.user_id.as_deref(), Some("user-1"));
        assert_eq!(st.device_ids, vec!["device-1".to_owned()]);
        assert_eq!(st.user_properties, obj(json!({"referrer": "ad"})));
    }

    #[test]
    fn known_user_links_anonymous_device_without_merging() {
        // spec §3.2 / §10; UNCERTAIN: no property merge
        let store = PropertyStore::new();
        let user = store.amplitude_id(P, Some("user-1"), Some("device-1"));
        let anon = store.amplitude_id(P, None, Some("device-2"));
        assert_ne!(user, anon);
        assert_eq!(
            store.amplitude_id(P, Some("user-1"), Some("device-2")),
            user
        );
        assert_eq!(
            store.amplitude_id(P, None, Some("device-2")),
            user,
            "later anonymous events go to the user"
        );
        let st = store.user(P, None, Some("device-2")).unwrap();
        assert_eq!(st.amplitude_id, user);
        assert_eq!(
            st.device_ids,
            vec!["device-1".to_owned(), "device-2".to_owned()]
        );
        let old = store.user(P, Some("nobody"), Some("device-3"));
        assert_eq!(old, None);
    }

    #[test]
    fn first_link_wins_and_new_user_id_is_new_user() {
        // spec §10: changing the user_id creates a new user
        let store = PropertyStore::new();
        let a = store.amplitude_id(P, Some("user-a"), Some("device-1"));
        let b = store.amplitude_id(P, Some("user-b"), Some("device-1"));
        assert_ne!(a, b);
        assert_eq!(
            store.amplitude_id(P, None, Some("device-1")),
            a,
            "device stays with its first user"
        );
        assert_eq!(store.amplitude_id(P, Some("user-b"), Some("device-1")), b);
        let c = store.amplitude_id(P, Some("user-c"), None);
        assert_eq!(store.amplitude_id(P, Some("user-c"), Some("device-1")), c);
        assert_eq!(
            store.user(P, Some("user-c"), None).unwrap().device_ids,
            vec!["device-1".to_owned()]
        );
        assert_eq!(
            store.user(P, Some("user-b"), None).unwrap().device_ids,
            vec!["device-1".to_owned()]
        );
        // unknown user with a device linked to someone else: would be a new user → nothing yet
        assert_eq!(store.user(P, Some("user-d"), Some("device-1")), None);
        assert_eq!(
            store
                .user(P, None, Some("device-1"))
                .unwrap()
                .user_id
                .as_deref(),
            Some("user-a")
        );
    }

    #[test]
    fn ids_deterministic_for_same_sequence() {
        // spec §3.2 (mock determinism)
        let run = || {
            let store = PropertyStore::new();
            let calls: [(Option<&str>, Option<&str>); 6] = [
                (None, Some("d1")),
                (Some("u1"), None),
                (Some("u1"), Some("d1")),
                (Some("u2"), Some("d1")),
                (None, Some("d2")),
                (Some("u2"), Some("d2")),
            ];
            calls
                .iter()
                .map(|(u, d)| store.amplitude_id(P, *u, *d))
                .collect::<Vec<_>>()
        };
        assert_eq!(run(), vec![1, 2, 2, 3, 4, 3]);
        assert_eq!(run(), run());
    }

    #[test]
    fn concurrent_resolution_yields_one_id_per_user() {
        // spec §3.2: one Amplitude ID per user_id
        let store = std::sync::Arc::new(PropertyStore::new());
        let handles: Vec<_> = (0..4)
            .map(|t| {
                let store = store.clone();
                std::thread::spawn(move || {
                    (0..500)
                        .map(|i| {
                            let user = format!("user-{}", i % 50);
                            let device = format!("device-{t}-{i}");
                            let id = store.amplitude_id(P, Some(&user), Some(&device));
                            store.apply_user_properties(
                                P,
                                id,
                                &obj(json!({"$add": {"n": 1}})),
                                false,
                                T0,
                                &PropertyConfig::default(),
                            );
                            (user, id)
                        })
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        let mut seen: std::collections::HashMap<String, u64> = std::collections::HashMap::new();
        for h in handles {
            for (user, id) in h.join().unwrap() {
                assert_eq!(*seen.entry(user).or_insert(id), id);
            }
        }
        assert_eq!(seen.len(), 50);
        for i in 0..50 {
            let st = store.user(P, Some(&format!("user-{i}")), None).unwrap();
            assert_eq!(st.user_properties, obj(json!({"n": 40})));
            assert_eq!(st.device_ids.len(), 40);
        }
        assert_eq!(store.totals().applied, 2_000);
    }

    #[test]
    fn store_is_send_sync() {
        fn assert_send_sync<T: Send + Sync>() {}
        assert_send_sync::<PropertyStore>();
    }

    // ---- groups (spec §3.2, §11) -------------------------------------------------------------

    #[test]
    fn group_identify_ops() {
        // spec §11: $set, $setOnce, $add, $append, $prepend, $unset
        let store = PropertyStore::new();
        let groups = obj(json!({"company": "acme"}));
        let n = store.apply_group_properties(
            P,
            &groups,
            &obj(json!({"$set": {"plan": "pro", "tmp": 1}, "$add": {"seats": 5}})),
        );
        assert_eq!(n, 1);
        let n = store.apply_group_properties(
            P,
            &groups,
            &obj(json!({
                "$setOnce": {"plan": "free", "since": 2020},
                "$add": {"seats": 2},
                "$append": {"tags": "b"},
                "$prepend": {"tags": "a"},
                "$unset": {"tmp": "-"},
                "$preInsert": {"tags": "z"},
                "$postInsert": {"tags": "z"},
                "$remove": {"tags": "a"},
                "$clearAll": "-",
            })),
        );
        assert_eq!(n, 1);
        assert_eq!(
            store.group(P, "company", "acme").unwrap(),
            obj(json!({"plan": "pro", "since": 2020, "seats": 7, "tags": ["a", "b"]})),
            "ops outside spec §11 ignored"
        );
        assert_eq!(store.group(P, "company", "other"), None);
        assert_eq!(store.group(P + 1, "company", "acme"), None);
    }

    #[test]
    fn group_values_string_or_array_and_changed_count() {
        // spec §3.2 groups: value or [values]
        let store = PropertyStore::new();
        let groups = obj(json!({"org": ["a", "b", "a", 5], "team": "t1", "bad": {"x": 1}}));
        let props = obj(json!({"$set": {"k": 1}}));
        assert_eq!(store.apply_group_properties(P, &groups, &props), 3);
        assert_eq!(
            store.apply_group_properties(P, &groups, &props),
            0,
            "no change the second time"
        );
        assert_eq!(store.group(P, "org", "b").unwrap(), obj(json!({"k": 1})));
        assert_eq!(store.group(P, "team", "t1").unwrap(), obj(json!({"k": 1})));
        assert_eq!(store.apply_group_properties(P, &groups, &Map::new()), 0);
        // plain keys are a $set
        assert_eq!(
            store.apply_group_properties(P, &obj(json!({"team": "t1"})), &obj(json!({"k": 2}))),
            1
        );
        assert_eq!(store.group(P, "team", "t1").unwrap(), obj(json!({"k": 2})));
    }

    #[test]
    fn group_limits_five_types_ten_values() {
        // spec §3.4 "Groups": ≤ 5 group types, ≤ 10 values per event; extras not tracked
        let store = PropertyStore::new();
        let many: Vec<String> = (0..12).map(|i| format!("v{i:02}")).collect();
        let groups = obj(json!({"a": many}));
        assert_eq!(
            store.apply_group_properties(P, &groups, &obj(json!({"k": 1}))),
            10
        );
        assert!(store.group(P, "a", "v09").is_some());
        assert_eq!(store.group(P, "a", "v10"), None);
        let groups = obj(json!({"t1": "x", "t2": "x", "t3": "x", "t4": "x", "t5": "x", "t6": "x"}));
        assert_eq!(
            store.apply_group_properties(P, &groups, &obj(json!({"k": 1}))),
            5
        );
        assert_eq!(store.group(P, "t6", "x"), None);
    }

    #[test]
    fn groups_not_subject_to_user_cap_and_cleared() {
        // spec §8.1 cap is per user; §11
        let store = PropertyStore::new();
        let groups = obj(json!({"org": "a"}));
        for i in 0..2_000 {
            assert_eq!(
                store.apply_group_properties(P, &groups, &obj(json!({"$add": {"n": 1}}))),
                1,
                "{i}"
            );
        }
        assert_eq!(store.group(P, "org", "a").unwrap(), obj(json!({"n": 2000})));
        assert_eq!(store.totals(), PropertyTotals::default());
        store.clear();
        assert_eq!(store.group(P, "org", "a"), None);
    }

    // ---- never panics on arbitrary input ---------------------------------------------------

    mod fuzz {
        use super::*;
        use proptest::prelude::*;

        fn leaf() -> impl Strategy<Value = Value> {
            prop_oneof![
                Just(Value::Null),
                any::<bool>().prop_map(Value::from),
                any::<i64>().prop_map(Value::from),
                any::<u64>().prop_map(Value::from),
                any::<f64>().prop_map(Value::from), // NaN/inf become null
                Just(json!(i64::MAX)),
                Just(json!(f64::MAX)),
                "[a-c$]{0,3}".prop_map(Value::from),
            ]
        }

        fn value() -> impl Strategy<Value = Value> {
            leaf().prop_recursive(3, 24, 4, |inner| {
                prop_oneof![
                    prop::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
                    prop::collection::btree_map(key(), inner, 0..4)
                        .prop_map(|m| Value::Object(m.into_iter().collect())),
                ]
            })
        }

        fn key() -> impl Strategy<Value = String> {
            prop_oneof![
                prop::sample::select(vec![
                    "$set",
                    "$setOnce",
                    "$add",
                    "$append",
                    "$prepend",
                    "$preInsert",
                    "$postInsert",
                    "$remove",
                    "$unset",
                    "$clearAll",
                    "$foo",
                    "a",
                    "b",
                ])
                .prop_map(str::to_owned),
                "[a-b$]{0,2}",
            ]
        }

        fn props() -> impl Strategy<Value = Map<String, Value>> {
            prop::collection::btree_map(key(), value(), 0..6).prop_map(|m| m.into_iter().collect())
        }

        proptest! {
            #[test]
            fn arbitrary_maps_never_panic(
                steps in prop::collection::vec((props(), any::<bool>(), any::<i64>()), 1..8),
                groups in props(),
                cap in 0u32..3,
            ) {
                // spec §3.3 / §8.1 / §11: bad input skipped, never a panic; drops change nothing
                let store = PropertyStore::new();
                let cfg = PropertyConfig { updates_per_hour: cap, window_ms: 3_600_000 };
                let id = store.amplitude_id(P, Some("user-1"), Some("device-1"));
                for (props, skip, now) in &steps {
                    let before = store.user(P, Some("user-1"), None).unwrap().user_properties;
                    let out = store.apply_user_properties(P, id, props, *skip, *now, &cfg);
                    let after = store.user(P, Some("user-1"), None).unwrap().user_properties;
                    if out != PropertyOutcome::Applied {
                        prop_assert_eq!(before, after);
                    }
                    store.apply_group_properties(P, &groups, props);
                }
                let t = store.totals();
                prop_assert!(t.applied + t.dropped + t.skipped <= steps.len() as u64);
            }
        }
    }
}
