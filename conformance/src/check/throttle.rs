//! The throttle pauses of a run, as `throttle_pause_respected` sees them: every identity a
//! 429 named in `throttled_devices` / `throttled_users`, the pause that followed, and each
//! event sent for it before the pause ended (spec §5.4, §8.1). The check counts exactly
//! [`ThrottleTrace::violations`]; the HTML report draws the same data.

use super::observation::Observation;
use super::CheckOptions;
use serde::{Deserialize, Serialize};
use std::collections::HashMap;

/// One pause: a 429 named the identity, which had to wait until `until_ms`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ThrottlePause {
    /// A device (`device_id`), else a user (`user_id`).
    pub device: bool,
    /// The identity.
    pub id: String,
    /// The request answered 429.
    pub request_id: u64,
    /// When the mock answered it, ms on the mock clock.
    pub at_ms: i64,
    /// When the pause ends, ms on the mock clock.
    pub until_ms: i64,
}

/// One event sent for an identity before its pause ended: one offender of
/// `throttle_pause_respected`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PauseViolation {
    /// The offending request.
    pub request_id: u64,
    /// Its index among the request's events.
    pub event_index: usize,
    /// When the mock received it, ms on the mock clock.
    pub at_ms: i64,
    /// The paused identity is a device, else a user.
    pub device: bool,
    /// The paused identity.
    pub id: String,
    /// How long the pause still had to run, ms.
    pub left_ms: i64,
    /// The request whose 429 started the pause.
    pub by_request: u64,
}

/// Every pause and every event sent inside one, in request order.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ThrottleTrace {
    /// Pauses, in the order the 429s came (an identity throttled again gets a new one).
    pub pauses: Vec<ThrottlePause>,
    /// Events sent inside a pause (at most one per event, its device checked first).
    pub violations: Vec<PauseViolation>,
}

/// Walks the journal in arrival order: an event carrying an identity whose pause (plus
/// `tolerance_ms`) has not ended is a violation; a 429 starts or restarts the pause of every
/// identity it names.
pub fn throttle_trace(obs: &Observation, opts: &CheckOptions) -> ThrottleTrace {
    let mut trace = ThrottleTrace::default();
    let mut paused_until: HashMap<(bool, &str), (i64, u64)> = HashMap::new();
    for r in &obs.requests {
        for (ei, e) in r.events.iter().enumerate() {
            for key in [
                (true, e.device_id.as_deref()),
                (false, e.user_id.as_deref()),
            ] {
                let (dev, Some(id)) = key else { continue };
                if let Some(&(until, by)) = paused_until.get(&(dev, id)) {
                    if r.at_ms + opts.tolerance_ms < until {
                        trace.violations.push(PauseViolation {
                            request_id: r.id,
                            event_index: ei,
                            at_ms: r.at_ms,
                            device: dev,
                            id: id.to_owned(),
                            left_ms: until - r.at_ms,
                            by_request: by,
                        });
                        break;
                    }
                }
            }
        }
        if r.status == 429 {
            if let Some(b) = &r.response {
                for (dev, map) in [(true, &b.throttled_devices), (false, &b.throttled_users)] {
                    let mut ids: Vec<&String> = map.iter().flat_map(|m| m.keys()).collect();
                    ids.sort();
                    for id in ids {
                        let until = r.at_ms + opts.throttle_pause_ms;
                        paused_until.insert((dev, id.as_str()), (until, r.id));
                        trace.pauses.push(ThrottlePause {
                            device: dev,
                            id: id.clone(),
                            request_id: r.id,
                            at_ms: r.at_ms,
                            until_ms: until,
                        });
                    }
                }
            }
        }
    }
    trace
}
