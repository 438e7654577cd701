//! The mock's injected clock: every time rule (30 s EPS window, hourly property cap, 24 h
//! quota, 7-day dedup) reads it and nothing else (architecture "Time and determinism").

use parking_lot::Mutex;
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

/// A source of "now" in ms since the Unix epoch.
pub trait Clock: Send + Sync + 'static {
    /// Current time, ms since the Unix epoch.
    fn now_ms(&self) -> i64;
}

#[derive(Debug, Clone, Copy)]
enum Mode {
    /// System time plus an offset, ms.
    System { offset_ms: i64 },
    /// Frozen virtual time that moves only when told, ms since the epoch.
    Virtual { now_ms: i64 },
}

/// The mock's clock: system time plus an offset by default, or frozen virtual time.
///
/// `advance_ms` moves either mode forward (with the system clock it grows the offset, so a
/// test can jump 7 days on a running mock); `set_ms` jumps to an absolute time. Cheap to
/// clone; clones share the same time.
#[derive(Debug, Clone)]
pub struct MockClock {
    mode: Arc<Mutex<Mode>>,
    /// Bumped by every `advance_ms` / `set_ms` (wakes the listeners' `refuse` check).
    moved: Arc<tokio::sync::watch::Sender<u64>>,
}

impl Default for MockClock {
    fn default() -> Self {
        Self::system()
    }
}

fn system_now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

impl MockClock {
    /// Follows the system clock (plus whatever `advance_ms`/`set_ms` add).
    pub fn system() -> Self {
        Self {
            mode: Arc::new(Mutex::new(Mode::System { offset_ms: 0 })),
            moved: Arc::new(tokio::sync::watch::channel(0).0),
        }
    }

    /// Frozen at `now_ms` (ms since the epoch) until advanced or set.
    pub fn virtual_at(now_ms: i64) -> Self {
        Self {
            mode: Arc::new(Mutex::new(Mode::Virtual { now_ms })),
            moved: Arc::new(tokio::sync::watch::channel(0).0),
        }
    }

    /// Moves time forward by `ms` (negative moves it back). Returns the new now, ms.
    pub fn advance_ms(&self, ms: i64) -> i64 {
        let mut mode = self.mode.lock();
        match &mut *mode {
            Mode::System { offset_ms } => *offset_ms = offset_ms.saturating_add(ms),
            Mode::Virtual { now_ms } => *now_ms = now_ms.saturating_add(ms),
        }
        drop(mode);
        self.moved.send_modify(|g| *g = g.wrapping_add(1));
        self.now_ms()
    }

    /// Jumps to `t` ms since the epoch. With the system clock this sets the offset so that
    /// time keeps flowing from `t`.
    pub fn set_ms(&self, t: i64) {
        let mut mode = self.mode.lock();
        match &mut *mode {
            Mode::System { offset_ms } => *offset_ms = t.saturating_sub(system_now_ms()),
            Mode::Virtual { now_ms } => *now_ms = t,
        }
        drop(mode);
        self.moved.send_modify(|g| *g = g.wrapping_add(1));
    }

    /// A receiver that changes whenever `advance_ms` or `set_ms` moves this clock (or a
    /// clone): something waiting for a mock-clock time wakes on it (a virtual clock moves
    /// only then; a system clock also moves by itself, so wait on tokio time too).
    pub fn subscribe(&self) -> tokio::sync::watch::Receiver<u64> {
        self.moved.subscribe()
    }

    /// True when time moves only when told.
    pub fn is_virtual(&self) -> bool {
        matches!(*self.mode.lock(), Mode::Virtual { .. })
    }

    /// Offset from the system clock, ms (0 for a virtual clock).
    pub fn offset_ms(&self) -> i64 {
        match *self.mode.lock() {
            Mode::System { offset_ms } => offset_ms,
            Mode::Virtual { .. } => 0,
        }
    }
}

impl Clock for MockClock {
    fn now_ms(&self) -> i64 {
        match *self.mode.lock() {
            Mode::System { offset_ms } => system_now_ms().saturating_add(offset_ms),
            Mode::Virtual { now_ms } => now_ms,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn virtual_time_moves_only_when_told() {
        let c = MockClock::virtual_at(1_000);
        assert_eq!(c.now_ms(), 1_000);
        assert_eq!(c.advance_ms(7 * 86_400_000), 1_000 + 7 * 86_400_000);
        c.set_ms(5);
        assert_eq!(c.now_ms(), 5);
    }

    #[test]
    fn system_clock_advance_adds_an_offset() {
        let c = MockClock::system();
        let before = c.now_ms();
        c.advance_ms(7 * 86_400_000);
        assert!(c.now_ms() >= before + 7 * 86_400_000);
        assert_eq!(c.offset_ms(), 7 * 86_400_000);
    }
}
