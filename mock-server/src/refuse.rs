//! The listener side of the `refuse` fault (connection refused windows, see `faults.rs`):
//! during a window of the mock clock every listener serving the mock is **closed** (dropped:
//! the kernel answers new connections with a RST, `ECONNREFUSED`), then bound again on the
//! same address (`SO_REUSEADDR`, tokio's `TcpSocket`) when the window ends.
//!
//! # Waking
//!
//! Each listener's accept loop asks [`crate::faults::Faults`] what the schedule wants at the
//! mock clock's now (closed until when, or when the next window opens) and then waits for
//! whichever comes first: a connection, the mock clock being moved (`MockClock::advance_ms`
//! / `set_ms` / `POST /__mock/clock` notify a watch channel), the fault schedule changing
//! (another watch channel), or, for a system clock only, the tokio timer reaching the next
//! window edge. A virtual clock never arms a timer: the windows follow it exactly and
//! deterministically. Nothing polls.
//!
//! # Existing connections
//!
//! At the window's start every connection of the closed listener is shut down gracefully
//! (hyper's per-connection graceful shutdown): idle keep-alive connections are closed at once
//! (the client sees its pooled connection closed, as when a server goes down); a request
//! already in flight is answered, then its connection is closed. A `hang` or `delay` in
//! flight is not cut short by the window.

use crate::clock::{Clock, MockClock};
use std::net::SocketAddr;
use std::time::Duration;
use tokio::net::{TcpListener, TcpSocket};
use tokio::sync::watch;

/// How many listeners serve a mock and how many of them a `refuse` window has closed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ListenerView {
    /// Listeners serving the mock (`serve`, `serve_with`, `MockServer`'s HTTP and HTTPS).
    pub listeners: u32,
    /// Of which closed now by a `refuse` window.
    pub closed: u32,
}

/// The shared [`ListenerView`] of a mock, with a way to wait for a state.
#[derive(Debug)]
pub(crate) struct ListenerGate {
    view: watch::Sender<ListenerView>,
}

impl Default for ListenerGate {
    fn default() -> Self {
        Self {
            view: watch::channel(ListenerView::default()).0,
        }
    }
}

impl ListenerGate {
    /// Applies `f` to the view and wakes the waiters.
    pub(crate) fn update(&self, f: impl FnOnce(&mut ListenerView)) {
        self.view.send_modify(f);
    }

    /// The view now.
    pub(crate) fn view(&self) -> ListenerView {
        *self.view.borrow()
    }

    /// Waits until every listener is closed (`refusing`, and at least one listener) or none
    /// is (`!refusing`).
    pub(crate) async fn wait(&self, refusing: bool) {
        let mut rx = self.view.subscribe();
        let _ = rx
            .wait_for(|v| {
                if refusing {
                    v.listeners > 0 && v.closed == v.listeners
                } else {
                    v.closed == 0
                }
            })
            .await;
    }
}

/// Binds a listener on `addr` again after a `refuse` window (`SO_REUSEADDR`, backlog 1024).
pub(crate) fn rebind(addr: SocketAddr) -> std::io::Result<TcpListener> {
    let socket = if addr.is_ipv4() {
        TcpSocket::new_v4()?
    } else {
        TcpSocket::new_v6()?
    };
    socket.set_reuseaddr(true)?;
    socket.bind(addr)?;
    socket.listen(1024)
}

/// Longest single tokio sleep while waiting for a window edge of a system clock, ms (the
/// wait is re-armed after it).
const MAX_SLEEP_MS: i64 = 3_600_000;

/// Resolves when the mock clock is moved, the fault schedule changes, or (system clock only)
/// the clock reaches `wake_ms`. The receivers must have been marked seen
/// (`borrow_and_update`) before the state they guard was read.
pub(crate) async fn changed(
    clock: &MockClock,
    clock_rx: &mut watch::Receiver<u64>,
    faults_rx: &mut watch::Receiver<u64>,
    wake_ms: Option<i64>,
) {
    let timer = async {
        match wake_ms {
            Some(t) if !clock.is_virtual() => {
                let ms = t.saturating_sub(clock.now_ms()).clamp(0, MAX_SLEEP_MS);
                tokio::time::sleep(Duration::from_millis(u64::try_from(ms).unwrap_or(0))).await;
            }
            _ => std::future::pending::<()>().await,
        }
    };
    tokio::select! {
        r = clock_rx.changed() => if r.is_err() { std::future::pending::<()>().await },
        r = faults_rx.changed() => if r.is_err() { std::future::pending::<()>().await },
        () = timer => {}
    }
}
