//! Crash points for the crash tests: with `AMPLITUDE_SENDER_CRASH_AT=<point>:<n>` in the
//! environment, the process aborts (no destructor, no buffer flush: as a SIGKILL) the n-th
//! time (from 1) it passes the named point. Without the variable (production) each point is
//! one load of a cached `None`. Points: `append` (records buffered, not yet fsync'd),
//! `appended` (fsync'd, not yet acknowledged), `response` (a response's status received, its
//! body not yet read), `delivered` (a 200 handled, its confirmation not yet logged), `mark`
//! (confirmation marks buffered), `dead_letter` (dead letters fsync'd, their `D` mark not
//! written), `compact` (at open: the rewritten log fsync'd under its temporary name, not yet
//! renamed), `compact_runtime` (the same during a compaction of the running writer, past
//! `compact_log_bytes`), `compacted_runtime` (that rewrite renamed over the log, the
//! directory not yet fsync'd).

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::OnceLock;

/// Environment variable naming the crash point and the pass to abort at.
pub const CRASH_AT_ENV: &str = "AMPLITUDE_SENDER_CRASH_AT";

static SPEC: OnceLock<Option<(String, u64)>> = OnceLock::new();
static PASSES: AtomicU64 = AtomicU64::new(0);

fn spec() -> &'static Option<(String, u64)> {
    SPEC.get_or_init(|| {
        let v = std::env::var(CRASH_AT_ENV).ok()?;
        let (name, n) = v.rsplit_once(':')?;
        Some((name.to_owned(), n.trim().parse().ok()?))
    })
}

/// Aborts the process if this is the configured pass of crash point `name`.
pub(crate) fn point(name: &str) {
    if let Some((at, n)) = spec() {
        if at == name && PASSES.fetch_add(1, Ordering::SeqCst) + 1 == *n {
            eprintln!("crash point {name} pass {n}: aborting");
            std::process::abort();
        }
    }
}
