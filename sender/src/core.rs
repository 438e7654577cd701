//! The pure sending state machine: queues per identity, batches, and decides what every
//! response means for every event (spec §5-§9). No I/O and no clock of its own: callers pass
//! `now` in ms and feed back what the transport got, so tests drive it in virtual time.
//!
//! Guarantees (checked by the property test): every enqueued event leaves exactly once, as
//! [`Effect::Delivered`] (a 200 covered it) or [`Effect::DeadLettered`] (with a reason); an
//! event is never in two requests at once; events of one partition (`device_id`, else
//! `user_id`) are sent and confirmed in enqueue order (spec §9 "V2 ordering").

use super::batcher::BodyBuilder;
use super::config::CoreConfig;
use super::event::{EventKey, QueuedEvent};
use super::pacing::{IdentityBook, RequestId};
use super::response::{classify, HttpResult, ResponseAction, Throttle};
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use std::collections::{BTreeSet, HashMap, HashSet, VecDeque};
use std::sync::Arc;

/// Something the I/O shell must do because of a decision of the core.
#[derive(Debug, Clone, PartialEq)]
pub enum Effect {
    /// A 200 confirmed these events (spec §4): mark them done in the durable queue.
    Delivered(Vec<QueuedEvent>),
    /// These events will never be sent again: write them to the dead-letter file with their
    /// reasons (spec §5.1, §5.3, §5.4).
    DeadLettered(Vec<(QueuedEvent, String)>),
    /// The project is stopped (invalid API key or `missing_field`, spec §5.1): report loudly.
    ProjectStopped(String),
    /// A condition an operator should see (property budget near its cap, daily quota).
    Warning(String),
    /// `absorbed` (a `$set`-only `$identify`) was merged into the queued `into`, whose JSON
    /// changed: persist `into` again, mark `absorbed` done (option `coalesce_set_identify`).
    Coalesced {
        /// The earlier event, with the merged `$set`.
        into: Box<QueuedEvent>,
        /// The later event, now part of `into`.
        absorbed: Box<QueuedEvent>,
    },
}

/// One request to post: `body` is the exact JSON sent, `keys` its events in body order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutRequest {
    /// Id to pass back to [`Core::on_response`].
    pub id: RequestId,
    /// The serialized upload request (spec §3.1), under the endpoint's size limit (§3.4).
    pub body: Vec<u8>,
    /// Keys of the events, in the order of the body's `events` array.
    pub keys: Vec<EventKey>,
}

/// Counters of the core's decisions since it was created.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CoreStats {
    /// Events enqueued.
    pub accepted: u64,
    /// Events confirmed by a 200.
    pub delivered: u64,
    /// Events dead-lettered.
    pub dead_lettered: u64,
    /// Requests formed.
    pub requests: u64,
    /// Responses that were 200.
    pub delivered_requests: u64,
    /// 429 responses (spec §5.4).
    pub throttled_requests: u64,
    /// Events held back by 429s.
    pub throttled_events: u64,
    /// 400 responses naming event indexes (spec §5.1).
    pub rejected_requests: u64,
    /// Batches split after a 413 or a repeated unexplained refusal (spec §5.3).
    pub splits: u64,
    /// Requests refused without a usable reason (a 4xx naming no event, a 413 of one event):
    /// retried with backoff, bisected after `refused_retries` (spec §5.1, §5.2).
    pub refused_requests: u64,
    /// Failing answers that grew the shared "endpoint is failing" backoff.
    pub endpoint_backoffs: u64,
    /// Retries after 5xx, timeouts, resets, bad bodies (spec §5.5).
    pub retries: u64,
    /// Warnings that a user's property updates approach the hourly cap (spec §8.1).
    pub property_budget_warnings: u64,
    /// `$set`-only `$identify` events merged into an earlier one (option).
    pub coalesced: u64,
}

#[derive(Debug)]
struct Slot {
    ev: QueuedEvent,
    part: usize,
    enqueued_at: u64,
    attempts: u32,
    max_events: usize,
    /// Consecutive unexplained refusals of requests carrying this event.
    refused: u32,
    /// Of those, refusals while alone in its request.
    lone_refused: u32,
    /// The last answer asked for a prompt resend of this event (413 split, a 429 not naming
    /// it, a 400 naming other events): exempt from the shared endpoint backoff.
    prompt: bool,
    /// The last failure seen for it (reported in `held` lines).
    last_failure: Option<Arc<str>>,
}

#[derive(Debug, Default)]
struct Partition {
    key: String,
    queue: VecDeque<EventKey>,
    busy: bool,
    scheduled: bool,
    retry_at: u64,
    failures: u32,
}

#[derive(Debug)]
struct InFlight {
    keys: Vec<EventKey>,
    parts: Vec<usize>,
    /// Carries an event resent after an answer that did not ask for a prompt resend.
    np: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Stop {
    Blocked(u64),
    Gated,
    Full,
}

/// Why resends wait for the endpoint (see [`Core::endpoint_gate`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Gate {
    Until(u64),
    Answer,
}

/// Window of the failing-resend limit, ms (the checker's sliding second).
const RESEND_WINDOW_MS: u64 = 1_000;

/// The sender's deterministic core (see the module docs).
#[derive(Debug)]
pub struct Core {
    cfg: CoreConfig,
    body: BodyBuilder,
    rng: ChaCha8Rng,
    events: HashMap<EventKey, Slot>,
    parts: Vec<Partition>,
    part_ids: HashMap<String, usize>,
    free_parts: Vec<usize>,
    ready: VecDeque<usize>,
    sleeping: BTreeSet<(u64, usize)>,
    ids: IdentityBook,
    in_flight: HashMap<RequestId, InFlight>,
    next_req: RequestId,
    unsent: usize,
    since_build: usize,
    tick_at: Option<u64>,
    flush_pending: bool,
    flushing: bool,
    stopped: Option<String>,
    last_sweep: u64,
    effects: Vec<Effect>,
    stats: CoreStats,
    /// Consecutive failing answers of the endpoint (reset by a 2xx).
    ep_failures: u32,
    /// No non-prompt resend before this, ms (shared by every partition).
    ep_retry_at: u64,
    /// Requests in flight that carry non-prompt resends.
    np_in_flight: usize,
    /// Partitions waiting for the answer of the endpoint's probe request.
    gated: Vec<usize>,
    /// (send time, request) of resends in flight or answered with a failing status, in the
    /// last [`RESEND_WINDOW_MS`].
    resend_log: VecDeque<(u64, RequestId)>,
}

impl Core {
    /// A core with `cfg`; `batch_size` and `max_body_bytes` are clamped to the endpoint's
    /// documented limits (spec §3.4).
    pub fn new(mut cfg: CoreConfig) -> Self {
        cfg.batch_size = cfg.batch_size.clamp(1, cfg.endpoint.max_events());
        cfg.max_body_bytes = cfg
            .max_body_bytes
            .min(cfg.endpoint.max_sendable_body_bytes());
        cfg.max_in_flight = cfg.max_in_flight.max(1);
        let mut ids = IdentityBook::new(
            cfg.identity_eps_limit,
            cfg.eps_window_ms,
            cfg.property_updates_per_window,
            cfg.property_window_ms,
            cfg.property_warn_ratio,
        );
        ids.set_hold_property_updates(cfg.hold_property_updates);
        Self {
            body: BodyBuilder::new(&cfg.api_key, cfg.min_id_length),
            rng: ChaCha8Rng::seed_from_u64(cfg.seed),
            cfg,
            events: HashMap::new(),
            parts: Vec::new(),
            part_ids: HashMap::new(),
            free_parts: Vec::new(),
            ready: VecDeque::new(),
            sleeping: BTreeSet::new(),
            ids,
            in_flight: HashMap::new(),
            next_req: 1,
            unsent: 0,
            since_build: 0,
            tick_at: None,
            flush_pending: false,
            flushing: false,
            stopped: None,
            last_sweep: 0,
            effects: Vec::new(),
            stats: CoreStats::default(),
            ep_failures: 0,
            ep_retry_at: 0,
            np_in_flight: 0,
            gated: Vec::new(),
            resend_log: VecDeque::new(),
        }
    }

    /// The configuration in force (after clamping).
    pub fn config(&self) -> &CoreConfig {
        &self.cfg
    }

    /// Adds an accepted (already persisted) event at `now` ms. An event that cannot fit any
    /// request (spec §3.4) or arrives after the project stopped is dead-lettered at once.
    pub fn enqueue(&mut self, ev: QueuedEvent, now: u64) {
        self.stats.accepted += 1;
        if let Some(reason) = self.stopped.clone() {
            self.stats.dead_lettered += 1;
            self.effects.push(Effect::DeadLettered(vec![(ev, reason)]));
            return;
        }
        let single = self.body.body_len(1, ev.json.len());
        if single > self.cfg.max_body_bytes {
            let reason = format!(
                "event needs a {single}-byte request, over the {}-byte limit of {} (spec §3.4)",
                self.cfg.max_body_bytes,
                self.cfg.endpoint.path()
            );
            self.stats.dead_lettered += 1;
            self.effects.push(Effect::DeadLettered(vec![(ev, reason)]));
            return;
        }
        if self.events.contains_key(&ev.key) {
            self.effects.push(Effect::Warning(format!(
                "event key {} enqueued twice; ignored",
                ev.key
            )));
            return;
        }
        let pid = self.partition_for(ev.partition_key());
        if self.cfg.coalesce_set_identify && ev.set_only_identify {
            if let Some(ev) = self.try_coalesce(pid, ev) {
                self.push_new(pid, ev, now);
            }
            return;
        }
        self.push_new(pid, ev, now);
    }

    /// Merges `ev` into the last queued event of partition `pid` when both are `$set`-only
    /// `$identify`s of the same user and device and that one was never sent (a sent one
    /// may be stored already; a changed body under its `insert_id` would be deduplicated).
    fn try_coalesce(&mut self, pid: usize, ev: QueuedEvent) -> Option<QueuedEvent> {
        let Some(&back) = self.parts[pid].queue.back() else {
            return Some(ev);
        };
        let max = self.cfg.max_body_bytes;
        let Some(slot) = self.events.get_mut(&back) else {
            return Some(ev);
        };
        if slot.attempts > 0 || slot.ev.user_id != ev.user_id || slot.ev.device_id != ev.device_id {
            return Some(ev);
        }
        match slot.ev.merge_set(&ev) {
            Some(json) if self.body.body_len(1, json.len()) <= max => {
                slot.ev.json = json;
                let into = Box::new(slot.ev.clone());
                self.stats.coalesced += 1;
                self.effects.push(Effect::Coalesced {
                    into,
                    absorbed: Box::new(ev),
                });
                None
            }
            _ => Some(ev),
        }
    }

    fn push_new(&mut self, pid: usize, ev: QueuedEvent, now: u64) {
        let key = ev.key;
        self.parts[pid].queue.push_back(key);
        self.events.insert(
            key,
            Slot {
                ev,
                part: pid,
                enqueued_at: now,
                attempts: 0,
                max_events: usize::MAX,
                refused: 0,
                lone_refused: 0,
                prompt: false,
                last_failure: None,
            },
        );
        self.unsent += 1;
        self.since_build += 1;
        self.schedule(pid);
        if self.since_build >= self.cfg.batch_size || self.flushing {
            self.flush_pending = true;
        }
        self.arm_tick(now.saturating_add(self.cfg.flush_interval_ms));
    }

    /// Flush mode (end of input, shutdown): send everything sendable without waiting for the
    /// flush interval. Pauses and pacing still hold.
    pub fn set_flushing(&mut self) {
        self.flushing = true;
        self.flush_pending = true;
    }

    /// Leaves flush mode (an application `flush()` returned): batches wait for the flush
    /// interval again.
    pub fn stop_flushing(&mut self) {
        self.flushing = false;
    }

    /// The next request to post at `now`, if one is due: several can be in flight, over
    /// disjoint partitions, up to `max_in_flight`. Call until it returns `None`.
    pub fn poll_send(&mut self, now: u64) -> Option<OutRequest> {
        self.advance(now);
        if self.stopped.is_some()
            || !self.flush_pending
            || self.in_flight.len() >= self.cfg.max_in_flight
        {
            return None;
        }
        let req = self.next_req;
        let resend_cap = self.resend_limit_until(now);
        let gate = self.endpoint_gate(now);
        let max_bytes = self.cfg.max_body_bytes;
        let mut cap = self.cfg.batch_size;
        let mut keys: Vec<EventKey> = Vec::new();
        let mut taken_parts = Vec::new();
        let mut bytes = 0usize;
        let mut deferred = None;
        let mut warnings = Vec::new();
        let mut visits = self.ready.len();
        let mut full = false;
        while visits > 0 && !full {
            visits -= 1;
            let Some(pid) = self.ready.pop_front() else {
                break;
            };
            self.parts[pid].scheduled = false;
            if self.parts[pid].busy || self.parts[pid].queue.is_empty() {
                self.maybe_free(pid);
                continue;
            }
            if self.parts[pid].retry_at > now {
                let t = self.parts[pid].retry_at;
                self.sleep(pid, t);
                continue;
            }
            let mut taken = 0usize;
            let mut stop = None;
            for &k in self.parts[pid].queue.iter() {
                let Some(slot) = self.events.get(&k) else {
                    continue;
                };
                if slot.attempts > 0 {
                    if let Some(t) = resend_cap {
                        stop = Some(Stop::Blocked(t));
                        break;
                    }
                    match (slot.prompt, gate) {
                        (false, Some(Gate::Until(t))) => {
                            stop = Some(Stop::Blocked(t));
                            break;
                        }
                        (false, Some(Gate::Answer)) => {
                            stop = Some(Stop::Gated);
                            break;
                        }
                        _ => {}
                    }
                }
                let blocked = self.ids.blocked_until(&slot.ev, now);
                if blocked > now {
                    stop = Some(Stop::Blocked(blocked));
                    break;
                }
                let n = keys.len() + 1;
                let c = cap.min(slot.max_events);
                let len = self.body.body_len(n, bytes + slot.ev.json.len());
                if !keys.is_empty() && (n > c || len > max_bytes) {
                    stop = Some(Stop::Full);
                    break;
                }
                if let Some(w) = self.ids.reserve(&slot.ev, req, now) {
                    warnings.push(w);
                }
                keys.push(k);
                bytes += slot.ev.json.len();
                cap = c.max(1);
                taken += 1;
                if keys.len() >= cap {
                    stop = Some(Stop::Full);
                    break;
                }
            }
            if taken == 0 {
                match stop {
                    Some(Stop::Blocked(t)) => self.sleep(pid, t),
                    Some(Stop::Gated) => {
                        self.parts[pid].scheduled = true;
                        self.gated.push(pid);
                    }
                    _ => {
                        deferred = Some(pid);
                        full = true;
                    }
                }
                continue;
            }
            let part = &mut self.parts[pid];
            part.queue.drain(..taken);
            part.busy = true;
            taken_parts.push(pid);
            if stop == Some(Stop::Full) {
                full = true;
            }
        }
        if let Some(pid) = deferred {
            self.parts[pid].scheduled = true;
            self.ready.push_front(pid);
        }
        for w in warnings {
            self.stats.property_budget_warnings += 1;
            let then = match (w.over, self.cfg.hold_property_updates) {
                (_, true) => "further updates are held back until the window frees",
                (false, false) => "updates past the cap will be sent, and Amplitude will silently drop them",
                (true, false) => "this and further updates in the window are sent, and Amplitude will silently drop them",
            };
            self.effects.push(Effect::Warning(format!(
                "user-property updates of {} reached {} of the {} allowed per window (spec §8.1); {then}",
                w.owner, w.used, w.budget
            )));
        }
        if keys.is_empty() {
            self.flush_pending = false;
            return None;
        }
        self.next_req += 1;
        let (mut resend, mut np) = (false, false);
        for k in &keys {
            if let Some(s) = self.events.get_mut(k) {
                if s.attempts > 0 {
                    resend = true;
                    np |= !s.prompt;
                }
                s.attempts += 1;
                s.prompt = false;
            }
        }
        if resend {
            self.resend_log.push_back((now, req));
        }
        if np {
            self.np_in_flight += 1;
        }
        let len = self.body.body_len(keys.len(), bytes);
        let body = self.body.build(
            keys.iter()
                .filter_map(|k| self.events.get(k))
                .map(|s| s.ev.json.as_slice()),
            len,
        );
        self.unsent -= keys.len();
        self.since_build = 0;
        self.stats.requests += 1;
        self.in_flight.insert(
            req,
            InFlight {
                keys: keys.clone(),
                parts: taken_parts,
                np,
            },
        );
        Some(OutRequest {
            id: req,
            body,
            keys,
        })
    }

    /// Feeds back what the transport got for request `req` at `now` (spec §4-§7).
    pub fn on_response(&mut self, req: RequestId, result: &HttpResult, now: u64) {
        self.on_verdict(req, classify(result), now);
    }

    /// Applies an already classified response to request `req` at `now`.
    pub fn on_verdict(&mut self, req: RequestId, verdict: ResponseAction, now: u64) {
        let Some(fl) = self.in_flight.remove(&req) else {
            return;
        };
        if fl.np {
            self.np_in_flight = self.np_in_flight.saturating_sub(1);
        }
        // The checker's failing statuses (0, 408, 5xx, 4xx but 413, 429 and a 400 naming
        // indexes); a 2xx with a bad body counts too, to be safe.
        let failing = match &verdict {
            ResponseAction::Delivered | ResponseAction::TooLarge | ResponseAction::Throttled(_) => {
                false
            }
            ResponseAction::DropEvents(m) => !m.keys().any(|&i| i < fl.keys.len()),
            _ => true,
        };
        if !failing {
            self.resend_log.retain(|&(_, id)| id != req);
        }
        self.ids
            .settle(req, verdict == ResponseAction::Delivered, now);
        self.apply(fl, verdict, now);
        self.ungate();
    }

    fn apply(&mut self, fl: InFlight, verdict: ResponseAction, now: u64) {
        match verdict {
            ResponseAction::Delivered => {
                let evs: Vec<QueuedEvent> = fl
                    .keys
                    .iter()
                    .filter_map(|k| self.events.remove(k))
                    .map(|s| s.ev)
                    .collect();
                self.stats.delivered += evs.len() as u64;
                self.stats.delivered_requests += 1;
                self.effects.push(Effect::Delivered(evs));
                self.ep_failures = 0;
                self.ep_retry_at = 0;
                for &p in &fl.parts {
                    self.parts[p].failures = 0;
                    self.parts[p].retry_at = 0;
                }
                self.release(&fl.parts, now, false);
            }
            ResponseAction::StopProject(reason) => {
                let reason = format!("project stopped: {reason}");
                self.stopped = Some(reason.clone());
                self.effects.push(Effect::ProjectStopped(reason.clone()));
                let dead = fl.keys.iter().map(|&k| (k, reason.clone())).collect();
                self.dead_letter(dead);
                self.release(&fl.parts, now, false);
                self.drop_all_unsent(&reason);
            }
            ResponseAction::DropEvents(reasons) => {
                let mut dead = Vec::new();
                let mut keep = Vec::new();
                for (i, &k) in fl.keys.iter().enumerate() {
                    match reasons.get(&i) {
                        Some(r) => dead.push((k, r.clone())),
                        None => keep.push(k),
                    }
                }
                if dead.is_empty() {
                    let reason = "400 naming only indexes outside the request".to_owned();
                    self.refuse(fl, reason, now, true);
                    return;
                }
                self.stats.rejected_requests += 1;
                self.dead_letter(dead);
                self.mark_prompt(&keep);
                self.requeue(&keep);
                self.release(&fl.parts, now, true);
            }
            ResponseAction::TooLarge if fl.keys.len() > 1 => self.split(fl, now),
            ResponseAction::TooLarge => self.refuse(fl, "413 Payload too large".into(), now, false),
            ResponseAction::Bisect(reason) => self.refuse(fl, reason, now, true),
            ResponseAction::Throttled(t) => self.throttle(fl, &t, now),
            ResponseAction::Retry(reason) => self.retry(fl, &reason, now),
        }
    }

    /// Takes the effects decided since the last call, in order.
    pub fn drain_effects(&mut self) -> Vec<Effect> {
        std::mem::take(&mut self.effects)
    }

    /// Events accepted and not yet delivered or dead-lettered, in acceptance order, each with
    /// what it is waiting for (never sent, in flight, or its last failure): what a sender
    /// exiting now keeps in its durable queue.
    pub fn pending_events(&self) -> Vec<(&QueuedEvent, String)> {
        let flying: HashSet<EventKey> = self
            .in_flight
            .values()
            .flat_map(|f| f.keys.iter().copied())
            .collect();
        let mut out: Vec<(&QueuedEvent, String)> = self
            .events
            .iter()
            .map(|(k, s)| {
                let state = match (flying.contains(k), s.attempts, &s.last_failure) {
                    (_, 0, _) => "never sent".to_owned(),
                    (true, n, _) => format!("attempt {n} in flight, no answer yet"),
                    (false, n, Some(r)) => format!("sent {n} times, last answer: {r}"),
                    (false, n, None) => format!("sent {n} times, waiting to be resent"),
                };
                (&s.ev, state)
            })
            .collect();
        out.sort_by_key(|(e, _)| e.key);
        out
    }

    /// Earliest future time (ms) at which [`Core::poll_send`] may have something new to do
    /// without any input: a flush tick or the end of a pause, backoff or pacing window.
    /// Meaningful after [`Core::poll_send`] returned `None` (it files blocked partitions).
    pub fn next_wakeup(&self) -> Option<u64> {
        let sleep = self.sleeping.first().map(|&(t, _)| t);
        match (self.tick_at.filter(|_| self.unsent > 0), sleep) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    /// True when nothing is queued or in flight.
    pub fn is_idle(&self) -> bool {
        self.events.is_empty() && self.in_flight.is_empty()
    }

    /// Events accepted and not yet delivered or dead-lettered (queued or in flight).
    pub fn pending(&self) -> usize {
        self.events.len()
    }

    /// Requests in flight.
    pub fn in_flight(&self) -> usize {
        self.in_flight.len()
    }

    /// Why the project stopped, if it did (spec §5.1).
    pub fn stopped(&self) -> Option<&str> {
        self.stopped.as_deref()
    }

    /// Counters so far.
    pub fn stats(&self) -> &CoreStats {
        &self.stats
    }

    /// Identities (devices, users, property owners) with a live pause or window.
    pub fn tracked_identities(&self) -> usize {
        self.ids.len()
    }

    /// Current per-identity pacing rate, events/s (lowered by a 429's `eps_threshold`).
    pub fn eps_limit(&self) -> Option<u32> {
        self.ids.eps_limit()
    }

    // ---- internals ----

    fn partition_for(&mut self, key: &str) -> usize {
        if let Some(&p) = self.part_ids.get(key) {
            return p;
        }
        let p = match self.free_parts.pop() {
            Some(p) => p,
            None => {
                self.parts.push(Partition::default());
                self.parts.len() - 1
            }
        };
        self.parts[p] = Partition {
            key: key.to_owned(),
            ..Partition::default()
        };
        self.part_ids.insert(key.to_owned(), p);
        p
    }

    fn maybe_free(&mut self, pid: usize) {
        let p = &self.parts[pid];
        if p.queue.is_empty() && !p.busy && !p.scheduled && p.retry_at == 0 {
            let key = std::mem::take(&mut self.parts[pid].key);
            self.part_ids.remove(&key);
            self.free_parts.push(pid);
        }
    }

    fn schedule(&mut self, pid: usize) {
        let p = &mut self.parts[pid];
        if !p.busy && !p.scheduled && !p.queue.is_empty() {
            p.scheduled = true;
            self.ready.push_back(pid);
        }
    }

    fn sleep(&mut self, pid: usize, until: u64) {
        self.parts[pid].scheduled = true;
        self.sleeping.insert((until, pid));
    }

    fn arm_tick(&mut self, at: u64) {
        self.tick_at = Some(self.tick_at.map_or(at, |t| t.min(at)));
    }

    fn advance(&mut self, now: u64) {
        if self.tick_at.is_some_and(|t| t <= now) {
            self.tick_at = None;
            if self.unsent > 0 {
                self.flush_pending = true;
            }
        }
        while let Some(&(t, pid)) = self.sleeping.first() {
            if t > now {
                break;
            }
            self.sleeping.pop_first();
            self.ready.push_back(pid);
            self.flush_pending = true;
        }
        if self.flushing && self.unsent > 0 && !self.ready.is_empty() {
            self.flush_pending = true;
        }
        self.ungate();
        if now >= self.last_sweep.saturating_add(60_000) {
            self.ids.sweep(now);
            self.last_sweep = now;
        }
    }

    /// Partitions of a finished request become free; their remaining events are due now
    /// (`urgent`), or when full or old enough, else at their flush tick.
    fn release(&mut self, parts: &[usize], now: u64, urgent: bool) {
        for &pid in parts {
            self.parts[pid].busy = false;
            if self.parts[pid].queue.is_empty() {
                if self.parts[pid].retry_at <= now {
                    self.parts[pid].retry_at = 0;
                }
                self.maybe_free(pid);
                continue;
            }
            let retry_at = self.parts[pid].retry_at;
            if retry_at > now {
                if !self.parts[pid].scheduled {
                    self.sleep(pid, retry_at);
                }
                continue;
            }
            self.schedule(pid);
            let head_at = self.parts[pid]
                .queue
                .front()
                .and_then(|k| self.events.get(k))
                .map_or(now, |s| s.enqueued_at);
            let due = head_at.saturating_add(self.cfg.flush_interval_ms);
            if urgent
                || self.flushing
                || due <= now
                || self.parts[pid].queue.len() >= self.cfg.batch_size
            {
                self.flush_pending = true;
            } else {
                self.arm_tick(due);
            }
        }
    }

    /// Puts the events of a failed request back at the front of their partitions, in order.
    fn requeue(&mut self, keys: &[EventKey]) {
        if let Some(reason) = self.stopped.clone() {
            let dead = keys.iter().map(|&k| (k, reason.clone())).collect();
            self.dead_letter(dead);
            return;
        }
        for &k in keys.iter().rev() {
            if let Some(slot) = self.events.get(&k) {
                self.parts[slot.part].queue.push_front(k);
                self.unsent += 1;
            }
        }
    }

    fn dead_letter(&mut self, list: Vec<(EventKey, String)>) {
        let out: Vec<(QueuedEvent, String)> = list
            .into_iter()
            .filter_map(|(k, r)| self.events.remove(&k).map(|s| (s.ev, r)))
            .collect();
        if !out.is_empty() {
            self.stats.dead_lettered += out.len() as u64;
            self.effects.push(Effect::DeadLettered(out));
        }
    }

    fn drop_all_unsent(&mut self, reason: &str) {
        let mut dead = Vec::new();
        for p in &mut self.parts {
            dead.extend(p.queue.drain(..).map(|k| (k, reason.to_owned())));
            p.scheduled = false;
        }
        self.unsent = 0;
        self.ready.clear();
        self.sleeping.clear();
        self.gated.clear();
        self.dead_letter(dead);
    }

    /// 413 of several events: halve the batch and resend at once (spec §5.3), a prompt
    /// resend. A 413 of a lone event goes to [`Core::refuse`].
    fn split(&mut self, fl: InFlight, now: u64) {
        self.stats.splits += 1;
        let half = fl.keys.len().div_ceil(2);
        let why: Arc<str> = Arc::from("413 Payload too large");
        for k in &fl.keys {
            if let Some(s) = self.events.get_mut(k) {
                s.max_events = s.max_events.min(half);
                s.prompt = true;
                s.last_failure = Some(why.clone());
            }
        }
        self.requeue(&fl.keys);
        self.release(&fl.parts, now, true);
    }

    /// A refusal that names nothing usable (a 400 naming no event, `{}`, HTML, 403, another
    /// 4xx; a 413 of one event). It may be transient (a bad deploy, a proxy), so no event is
    /// given up early: the request is resent unchanged `refused_retries` times with backoff,
    /// then bisected one step per refusal, with backoff between the steps; an event alone in
    /// its request is dead-lettered once refused alone `1 + refused_retries` times.
    /// `endpoint`: the answer counts as a failing endpoint (the shared backoff grows).
    fn refuse(&mut self, fl: InFlight, reason: String, now: u64, endpoint: bool) {
        self.stats.refused_requests += 1;
        if endpoint {
            self.endpoint_failed(now);
        }
        self.back_off(&fl.parts, now);
        let why: Arc<str> = Arc::from(reason.as_str());
        let n = fl.keys.len();
        let retries = self.cfg.refused_retries;
        let refused = fl
            .keys
            .iter()
            .filter_map(|k| self.events.get(k))
            .map(|s| s.refused)
            .max()
            .unwrap_or(0)
            .saturating_add(1);
        let bisect = n > 1 && refused > retries;
        if bisect {
            self.stats.splits += 1;
        }
        let mut dead = Vec::new();
        let mut keep = Vec::new();
        for &k in &fl.keys {
            let Some(s) = self.events.get_mut(&k) else {
                continue;
            };
            s.refused = refused;
            s.last_failure = Some(why.clone());
            if n == 1 {
                s.lone_refused = s.lone_refused.saturating_add(1);
                if s.lone_refused > retries {
                    dead.push((
                        k,
                        format!(
                            "{reason}; refused {} times alone in its request (1 + {retries} retries with backoff)",
                            s.lone_refused
                        ),
                    ));
                    continue;
                }
            }
            if bisect {
                s.max_events = s.max_events.min(n.div_ceil(2));
            }
            keep.push(k);
        }
        self.dead_letter(dead);
        self.requeue_or_give_up(&keep, &reason);
        self.release(&fl.parts, now, true);
    }

    /// Grows the backoff of `parts` after a failure: full jitter, at least `min_retry_gap_ms`.
    fn back_off(&mut self, parts: &[usize], now: u64) {
        let failures = parts
            .iter()
            .map(|&p| self.parts[p].failures)
            .max()
            .unwrap_or(0)
            .saturating_add(1);
        let delay = self
            .cfg
            .backoff
            .delay_ms(failures, &mut self.rng)
            .max(self.cfg.min_retry_gap_ms);
        for &p in parts {
            self.parts[p].failures = failures;
            self.parts[p].retry_at = now.saturating_add(delay).max(1);
        }
    }

    /// A failing answer: the shared "endpoint is failing" backoff grows (full jitter from the
    /// one seeded RNG, at least `min_retry_gap_ms`); until it elapses no partition resends an
    /// event that did not get a prompt-resend answer, and while it is failing such resends
    /// go one request at a time (a probe). A 2xx resets it.
    fn endpoint_failed(&mut self, now: u64) {
        self.stats.endpoint_backoffs += 1;
        self.ep_failures = self.ep_failures.saturating_add(1);
        let delay = self
            .cfg
            .backoff
            .delay_ms(self.ep_failures, &mut self.rng)
            .max(self.cfg.min_retry_gap_ms);
        self.ep_retry_at = self.ep_retry_at.max(now.saturating_add(delay));
    }

    /// Whether non-prompt resends must wait, and for what.
    fn endpoint_gate(&self, now: u64) -> Option<Gate> {
        if self.ep_failures == 0 {
            None
        } else if self.np_in_flight > 0 {
            Some(Gate::Answer)
        } else if self.ep_retry_at > now {
            Some(Gate::Until(self.ep_retry_at))
        } else {
            None
        }
    }

    /// The hard cap on failing resends: a resend request may start at `now` only while fewer
    /// than `max_failing_resends_per_s` resends sent in `[now - 1000, now]` are in flight or
    /// got a failing answer. Returns when the next one may start, if not now.
    fn resend_limit_until(&mut self, now: u64) -> Option<u64> {
        while self
            .resend_log
            .front()
            .is_some_and(|&(t, _)| t.saturating_add(RESEND_WINDOW_MS) < now)
        {
            self.resend_log.pop_front();
        }
        let cap = self.cfg.max_failing_resends_per_s.max(1) as usize;
        let len = self.resend_log.len();
        if len < cap {
            return None;
        }
        self.resend_log
            .get(len - cap)
            .map(|&(t, _)| t.saturating_add(RESEND_WINDOW_MS + 1))
    }

    /// Partitions waiting for the probe's answer are due again once it came.
    fn ungate(&mut self) {
        if self.np_in_flight > 0 || self.gated.is_empty() {
            return;
        }
        for pid in std::mem::take(&mut self.gated) {
            self.ready.push_back(pid);
        }
        self.flush_pending = true;
    }

    fn mark_prompt(&mut self, keys: &[EventKey]) {
        for k in keys {
            if let Some(s) = self.events.get_mut(k) {
                s.prompt = true;
            }
        }
    }

    /// Requeues `keys`, dead-lettering those that reached `max_attempts`.
    fn requeue_or_give_up(&mut self, keys: &[EventKey], reason: &str) {
        let mut dead = Vec::new();
        let mut keep = Vec::new();
        for &k in keys {
            let attempts = self.events.get(&k).map_or(0, |s| s.attempts);
            match self.cfg.max_attempts {
                Some(m) if attempts >= m => dead.push((
                    k,
                    format!("gave up after {attempts} attempts; last failure: {reason}"),
                )),
                _ => keep.push(k),
            }
        }
        self.dead_letter(dead);
        self.requeue(&keep);
    }

    /// 429: pause the named identities from now, resend the others at once (spec §5.4, §6).
    fn throttle(&mut self, fl: InFlight, t: &Throttle, now: u64) {
        self.stats.throttled_requests += 1;
        let pause_until = now.saturating_add(self.cfg.throttle_pause_ms);
        let quota_until = now.saturating_add(self.cfg.daily_quota_pause_ms);
        for d in &t.devices {
            self.ids.pause_device(d, pause_until);
        }
        for u in &t.users {
            self.ids.pause_user(u, pause_until);
        }
        for d in &t.quota_devices {
            self.ids.pause_device(d, quota_until);
        }
        for u in &t.quota_users {
            self.ids.pause_user(u, quota_until);
        }
        if !t.quota_devices.is_empty() || !t.quota_users.is_empty() {
            self.effects.push(Effect::Warning(format!(
                "daily quota exceeded (spec §8.1) by devices {:?} users {:?}; their events wait {} ms",
                t.quota_devices, t.quota_users, self.cfg.daily_quota_pause_ms
            )));
        }
        let devices: HashSet<&str> = t
            .devices
            .iter()
            .chain(&t.quota_devices)
            .map(String::as_str)
            .collect();
        let users: HashSet<&str> = t
            .users
            .iter()
            .chain(&t.quota_users)
            .map(String::as_str)
            .collect();
        let listed: HashSet<usize> = t.events.iter().copied().collect();
        let mut held = 0u64;
        let mut unnamed_parts = Vec::new();
        let why: Arc<str> = Arc::from("429 Too many requests");
        let mut prompt = Vec::new();
        for (i, k) in fl.keys.iter().enumerate() {
            let Some(s) = self.events.get_mut(k) else {
                continue;
            };
            let by_id =
                s.ev.device_id
                    .as_deref()
                    .is_some_and(|d| devices.contains(d))
                    || s.ev.user_id.as_deref().is_some_and(|u| users.contains(u));
            if by_id || listed.contains(&i) {
                held += 1;
                s.last_failure = Some(why.clone());
            } else {
                prompt.push(*k);
            }
            if listed.contains(&i) && !by_id {
                unnamed_parts.push(s.part);
            }
        }
        if held == 0 {
            // A 429 naming nothing: hold the whole request back (spec §7: Go loops otherwise).
            unnamed_parts.extend(fl.parts.iter().copied());
            held = fl.keys.len() as u64;
            prompt.clear();
            for k in &fl.keys {
                if let Some(s) = self.events.get_mut(k) {
                    s.last_failure = Some(why.clone());
                }
            }
        }
        self.mark_prompt(&prompt);
        for p in unnamed_parts {
            self.parts[p].retry_at = self.parts[p].retry_at.max(pause_until);
        }
        // Learn the project's threshold (spec §8.2): pace at it from now on, even if pacing
        // was off (else a request over the window's budget would be throttled forever).
        let learned = t
            .eps_threshold
            .and_then(|e| u32::try_from(e).ok())
            .filter(|&e| e > 0);
        match (learned, self.ids.eps_limit()) {
            (Some(e), Some(cur)) if e < cur => self.ids.set_eps_limit(Some(e)),
            (Some(e), None) => self.ids.set_eps_limit(Some(e)),
            (None, None) => self
                .ids
                .set_eps_limit(Some(self.cfg.endpoint.eps_threshold())),
            _ => {}
        }
        self.stats.throttled_events += held;
        self.requeue(&fl.keys);
        self.release(&fl.parts, now, true);
    }

    /// 5xx, timeouts, resets, bad bodies: same events, backoff with full jitter (spec §5.5),
    /// at least `min_retry_gap_ms`, and the shared endpoint backoff grows.
    fn retry(&mut self, fl: InFlight, reason: &str, now: u64) {
        self.stats.retries += 1;
        self.endpoint_failed(now);
        self.back_off(&fl.parts, now);
        let why: Arc<str> = Arc::from(reason);
        for k in &fl.keys {
            if let Some(s) = self.events.get_mut(k) {
                s.last_failure = Some(why.clone());
            }
        }
        self.requeue_or_give_up(&fl.keys, reason);
        self.release(&fl.parts, now, true);
    }
}
