//! When each logical event left the sender's hands, as the checker classifies it: the event
//! flow the HTML report draws (produced, stored, and the backlog still waiting).

use super::classify::Index;
use super::observation::Observation;

/// One logical event's life: produced, then settled (stored, or refused for good, or
/// reported dropped), or never settled.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EventLife {
    /// When the application produced it, ms on the mock clock.
    pub produced_at_ms: i64,
    /// When the mock first stored it.
    pub stored_at_ms: Option<i64>,
    /// When it stopped being the sender's business without being stored: Amplitude refused
    /// it for good, or the sender reported it dropped; the time is the last request that
    /// carried it (its production time when it was never sent).
    pub given_up_at_ms: Option<i64>,
}

/// Every logical event's life, in application order.
pub fn event_lives(obs: &Observation) -> Vec<EventLife> {
    let idx = Index::new(obs);
    idx.attempted
        .iter()
        .map(|(&seq, a)| {
            let stored_at_ms = idx
                .stored
                .get(&seq)
                .and_then(|s| s.iter().map(|s| s.at_ms).min());
            let dropped = matches!(idx.outcome.get(&seq), Some(("dropped", _)));
            let given_up_at_ms = (stored_at_ms.is_none()
                && (idx.refused.contains_key(&seq) || dropped))
                .then(|| {
                    idx.attempts
                        .get(&seq)
                        .and_then(|v| v.last())
                        .and_then(|&(ri, _)| obs.requests.get(ri))
                        .map_or(a.produced_at_ms, |r| r.at_ms)
                });
            EventLife {
                produced_at_ms: a.produced_at_ms,
                stored_at_ms,
                given_up_at_ms,
            }
        })
        .collect()
}
