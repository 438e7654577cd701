//! Per-identity pauses and pacing windows (spec §5.4, §8.1, §8.3): each `device_id` and
//! `user_id` has a pause (set by 429s) and a sliding window of recently sent events; each
//! user has a window of user-property updates (1,800 per hour).

use super::event::QueuedEvent;
use std::collections::{HashMap, VecDeque};

/// Id of one request in flight, assigned by [`crate::Core`].
pub type RequestId = u64;

#[derive(Debug, Clone, Copy)]
struct Entry {
    /// ms: send time while in flight, response time once accepted.
    t: u64,
    n: u32,
    req: Option<RequestId>,
}

#[derive(Debug, Default)]
struct IdState {
    paused_until: u64,
    window: VecDeque<Entry>,
    used: u32,
    warned: bool,
}

impl IdState {
    fn expire(&mut self, now: u64, window_ms: u64) {
        while let Some(e) = self.window.front() {
            if e.t.saturating_add(window_ms) > now {
                break;
            }
            self.used = self.used.saturating_sub(e.n);
            self.window.pop_front();
        }
        if self.window.is_empty() {
            self.warned = false;
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Device,
    User,
    Props,
}

/// Pauses and windows of every identity the sender has seen recently.
#[derive(Debug)]
pub struct IdentityBook {
    devices: HashMap<String, IdState>,
    users: HashMap<String, IdState>,
    props: HashMap<String, IdState>,
    eps_budget: Option<u32>,
    eps_window_ms: u64,
    props_budget: Option<u32>,
    props_window_ms: u64,
    props_warn_at: u32,
    props_hold: bool,
    by_request: HashMap<RequestId, Vec<(Kind, String)>>,
}

/// A warning raised while reserving: a user's property updates approach the hourly cap
/// (spec §8.1).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BudgetWarning {
    /// The user (or device, without a user) whose budget is nearly used.
    pub owner: String,
    /// Updates sent in the current window.
    pub used: u32,
    /// The cap (1,800 by default).
    pub budget: u32,
    /// The cap is now exceeded: Amplitude will silently drop this update (updates are sent
    /// anyway unless holding is on).
    pub over: bool,
}

impl IdentityBook {
    /// Pacing at `eps_limit` events/s over `eps_window_ms`, property budget of
    /// `props_budget` updates per `props_window_ms`, warning at `warn_ratio` of it.
    pub fn new(
        eps_limit: Option<u32>,
        eps_window_ms: u64,
        props_budget: Option<u32>,
        props_window_ms: u64,
        warn_ratio: f64,
    ) -> Self {
        let mut book = Self {
            devices: HashMap::new(),
            users: HashMap::new(),
            props: HashMap::new(),
            eps_budget: None,
            eps_window_ms,
            props_budget,
            props_window_ms,
            props_warn_at: props_budget
                .map(|b| ((f64::from(b) * warn_ratio).ceil() as u32).clamp(1, b.max(1)))
                .unwrap_or(u32::MAX),
            props_hold: true,
            by_request: HashMap::new(),
        };
        book.set_eps_limit(eps_limit);
        book
    }

    /// Sets the pacing rate, events/s (spec §8.2: a 429's `eps_threshold`).
    pub fn set_eps_limit(&mut self, eps: Option<u32>) {
        self.eps_budget = eps.map(|e| {
            let b = u64::from(e.max(1)) * self.eps_window_ms / 1_000;
            u32::try_from(b.max(1)).unwrap_or(u32::MAX)
        });
    }

    /// Current pacing rate, events/s, if pacing is on.
    pub fn eps_limit(&self) -> Option<u32> {
        self.eps_budget
            .map(|b| (u64::from(b) * 1_000 / self.eps_window_ms.max(1)) as u32)
    }

    fn map(&mut self, kind: Kind) -> &mut HashMap<String, IdState> {
        match kind {
            Kind::Device => &mut self.devices,
            Kind::User => &mut self.users,
            Kind::Props => &mut self.props,
        }
    }

    fn check(&mut self, kind: Kind, id: &str, now: u64) -> u64 {
        let (budget, window) = match kind {
            Kind::Props => (self.props_budget, self.props_window_ms),
            _ => (self.eps_budget, self.eps_window_ms),
        };
        let Some(s) = self.map(kind).get_mut(id) else {
            return 0;
        };
        s.expire(now, window);
        let mut t = if s.paused_until > now {
            s.paused_until
        } else {
            0
        };
        if let Some(b) = budget {
            if s.used.saturating_add(1) > b {
                let free_at = s
                    .window
                    .front()
                    .map(|e| e.t.saturating_add(window))
                    .unwrap_or(now + 1);
                t = t.max(free_at);
            }
        }
        t
    }

    /// Earliest time `ev` may be sent, ms; `<= now` means now. Considers the pauses of its
    /// device and user (spec §5.4), their pacing windows (spec §8.3) and, for property
    /// updates, its owner's hourly budget (spec §8.1).
    pub fn blocked_until(&mut self, ev: &QueuedEvent, now: u64) -> u64 {
        let mut t = 0;
        if let Some(d) = ev.device_id.as_deref() {
            t = t.max(self.check(Kind::Device, d, now));
        }
        if let Some(u) = ev.user_id.as_deref() {
            t = t.max(self.check(Kind::User, u, now));
        }
        if ev.property_update && self.props_budget.is_some() && self.props_hold {
            t = t.max(self.check(Kind::Props, ev.property_owner(), now));
        }
        t
    }

    fn reserve_one(&mut self, kind: Kind, id: &str, req: RequestId, now: u64) -> Option<u32> {
        let map = self.map(kind);
        if !map.contains_key(id) {
            map.insert(id.to_owned(), IdState::default());
        }
        let s = map.get_mut(id)?;
        s.used = s.used.saturating_add(1);
        let used = s.used;
        match s.window.back_mut() {
            Some(e) if e.req == Some(req) => e.n += 1,
            _ => {
                s.window.push_back(Entry {
                    t: now,
                    n: 1,
                    req: Some(req),
                });
                self.by_request
                    .entry(req)
                    .or_default()
                    .push((kind, id.to_owned()));
            }
        }
        Some(used)
    }

    /// Counts `ev` against its windows as part of request `req` sent at `now`. Returns a
    /// warning the first time in a window its owner's property updates reach the warning
    /// level (spec §8.1).
    pub fn reserve(&mut self, ev: &QueuedEvent, req: RequestId, now: u64) -> Option<BudgetWarning> {
        if self.eps_budget.is_some() {
            if let Some(d) = ev.device_id.as_deref() {
                self.reserve_one(Kind::Device, d, req, now);
            }
            if let Some(u) = ev.user_id.as_deref() {
                self.reserve_one(Kind::User, u, req, now);
            }
        }
        let budget = self.props_budget?;
        if !ev.property_update {
            return None;
        }
        let owner = ev.property_owner();
        let used = self.reserve_one(Kind::Props, owner, req, now)?;
        let s = self.props.get_mut(owner)?;
        if used >= self.props_warn_at && !s.warned {
            s.warned = true;
            return Some(BudgetWarning {
                owner: owner.to_owned(),
                used,
                budget,
                over: used > budget,
            });
        }
        if used == budget.saturating_add(1) {
            // Only reachable when not holding: say so once per window (spec §8.1).
            return Some(BudgetWarning {
                owner: owner.to_owned(),
                used,
                budget,
                over: true,
            });
        }
        None
    }

    /// Hold property updates past the budget until the window frees (true, the default of
    /// the book), or send them with a warning (false): Amplitude stores the event and drops
    /// only its property update (spec §8.1).
    pub fn set_hold_property_updates(&mut self, hold: bool) {
        self.props_hold = hold;
    }

    /// Settles request `req` at `now`: accepted events stay counted from `now` (the server
    /// counted them no later); rejected ones are released.
    pub fn settle(&mut self, req: RequestId, accepted: bool, now: u64) {
        let Some(ids) = self.by_request.remove(&req) else {
            return;
        };
        for (kind, id) in ids {
            let Some(s) = self.map(kind).get_mut(&id) else {
                continue;
            };
            let Some(pos) = s.window.iter().rposition(|e| e.req == Some(req)) else {
                continue;
            };
            let Some(e) = s.window.remove(pos) else {
                continue;
            };
            if accepted {
                s.window.push_back(Entry {
                    t: now.max(e.t),
                    n: e.n,
                    req: None,
                });
            } else {
                s.used = s.used.saturating_sub(e.n);
            }
        }
    }

    /// Pauses device `id` until `until` ms (spec §5.4: 30 s from its last 429).
    pub fn pause_device(&mut self, id: &str, until: u64) {
        self.pause(Kind::Device, id, until);
    }

    /// Pauses user `id` until `until` ms (spec §5.4).
    pub fn pause_user(&mut self, id: &str, until: u64) {
        self.pause(Kind::User, id, until);
    }

    fn pause(&mut self, kind: Kind, id: &str, until: u64) {
        let map = self.map(kind);
        if let Some(s) = map.get_mut(id) {
            s.paused_until = s.paused_until.max(until);
        } else {
            map.insert(
                id.to_owned(),
                IdState {
                    paused_until: until,
                    ..IdState::default()
                },
            );
        }
    }

    /// Forgets identities with no pause and an empty window (bounded memory).
    pub fn sweep(&mut self, now: u64) {
        let (ew, pw) = (self.eps_window_ms, self.props_window_ms);
        for (map, w) in [
            (&mut self.devices, ew),
            (&mut self.users, ew),
            (&mut self.props, pw),
        ] {
            map.retain(|_, s| {
                s.expire(now, w);
                s.paused_until > now || !s.window.is_empty()
            });
        }
    }

    /// Identities currently remembered (devices + users + property owners).
    pub fn len(&self) -> usize {
        self.devices.len() + self.users.len() + self.props.len()
    }

    /// True when no identity is remembered.
    #[cfg(test)]
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use amplitude_wire::Event;

    fn ev(key: u64, dev: &str) -> QueuedEvent {
        QueuedEvent::prepare(key, Event::new("A").with_device_id(dev)).unwrap()
    }

    #[test]
    fn window_budget_is_eps_times_window() {
        // spec §8.1/§8.3: 30 events/s averaged over 30 s = 900 events per window
        let mut b = IdentityBook::new(Some(30), 30_000, None, 3_600_000, 0.9);
        let e = ev(1, "dev-1");
        for i in 0..900 {
            assert_eq!(b.blocked_until(&e, 0), 0, "event {i}");
            b.reserve(&e, 1, 0);
        }
        assert_eq!(b.blocked_until(&e, 0), 30_000);
        // accepted at t=50: counted from the response time
        b.settle(1, true, 50);
        assert_eq!(b.blocked_until(&e, 1_000), 30_050);
        assert_eq!(b.blocked_until(&e, 30_050), 0);
        assert_eq!(b.blocked_until(&ev(2, "dev-2"), 0), 0);
    }

    #[test]
    fn rejected_requests_release_their_budget_and_pauses_hold() {
        // spec §5.4: pause 30 s from the last 429
        let mut b = IdentityBook::new(Some(1), 30_000, None, 3_600_000, 0.9);
        let e = ev(1, "dev-1");
        for _ in 0..30 {
            b.reserve(&e, 7, 0);
        }
        assert_eq!(b.blocked_until(&e, 0), 30_000);
        b.settle(7, false, 10);
        b.pause_device("dev-1", 30_010);
        assert_eq!(b.blocked_until(&e, 10), 30_010);
        assert_eq!(b.blocked_until(&e, 30_010), 0);
        b.sweep(40_000);
        assert!(b.is_empty());
    }

    #[test]
    fn property_budget_warns_then_holds() {
        // spec §8.1: 1,800 updates per hour, then silently dropped by Amplitude
        let mut b = IdentityBook::new(None, 30_000, Some(10), 3_600_000, 0.8);
        let e = QueuedEvent::prepare(
            1,
            serde_json::from_str(r#"{"event_type":"$identify","user_id":"user-1","user_properties":{"$set":{"a":1}}}"#).unwrap(),
        )
        .unwrap();
        let mut warnings = 0;
        for _ in 0..10 {
            assert_eq!(b.blocked_until(&e, 5), 0);
            warnings += usize::from(b.reserve(&e, 1, 5).is_some());
        }
        assert_eq!(warnings, 1);
        assert_eq!(b.blocked_until(&e, 5), 3_600_005);
    }

    #[test]
    fn property_budget_can_send_and_warn() {
        // spec §8.1: past the cap Amplitude stores the event and drops only the update
        let mut b = IdentityBook::new(None, 30_000, Some(10), 3_600_000, 0.8);
        b.set_hold_property_updates(false);
        let e = QueuedEvent::prepare(
            1,
            serde_json::from_str(r#"{"event_type":"$identify","user_id":"user-1","user_properties":{"$set":{"a":1}}}"#).unwrap(),
        )
        .unwrap();
        let mut warnings = Vec::new();
        for _ in 0..12 {
            assert_eq!(b.blocked_until(&e, 5), 0);
            warnings.extend(b.reserve(&e, 1, 5));
        }
        assert_eq!(
            warnings
                .iter()
                .map(|w| (w.used, w.over))
                .collect::<Vec<_>>(),
            vec![(8, false), (11, true)]
        );
    }
}
