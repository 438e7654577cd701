//! Per-event classification (architecture "Checker vocabulary"), with an explanation of each
//! loss and duplicate drawn from what the sender was told.

use super::observation::{Attempted, Expectation, Observation, Request, Restart, Stored};
use super::verdict::{CheckResult, EventCounts, Finding};
use super::CheckOptions;
use std::collections::{BTreeMap, HashMap};

/// Lookups shared by the classification and the behaviour checks.
pub(crate) struct Index<'a> {
    /// seq -> the application's event (first occurrence).
    pub attempted: BTreeMap<u64, &'a Attempted>,
    /// seq -> (request position in `obs.requests`, index in its events), in arrival order.
    pub attempts: HashMap<u64, Vec<(usize, usize)>>,
    /// seq -> stored copies, in storage order.
    pub stored: HashMap<u64, Vec<&'a Stored>>,
    /// seq -> deduplicated copies.
    pub deduplicated: HashMap<u64, u64>,
    /// request id -> position in `obs.requests`.
    pub request_pos: HashMap<u64, usize>,
    /// seq -> the sender's last outcome line.
    pub outcome: HashMap<u64, (&'a str, Option<&'a str>)>,
    /// seq -> why Amplitude refuses the event for good, for any sender (first reason found).
    pub refused: HashMap<u64, String>,
}

/// Bytes of a request body around its events (`{"api_key":"...","events":[...]}`), counted
/// when judging whether one event alone is over the body-size limit.
const ENVELOPE_BYTES: usize = 64;

/// Indexes of the events a 429 refused for their identity's daily quota (spec §8.1): named
/// in `throttled_events`, with the device or user in `exceeded_daily_quota_*`.
pub(crate) fn quota_refused(r: &Request) -> Vec<usize> {
    let Some(b) = r.response.as_ref().filter(|_| r.status == 429) else {
        return Vec::new();
    };
    let over = |map: &Option<amplitude_wire::RateMap>, id: Option<&str>| {
        id.is_some_and(|id| map.as_ref().is_some_and(|m| m.contains_key(id)))
    };
    b.throttled_events
        .iter()
        .flatten()
        .copied()
        .filter(|&ei| {
            r.events.get(ei).is_some_and(|e| {
                over(&b.exceeded_daily_quota_devices, e.device_id.as_deref())
                    || over(&b.exceeded_daily_quota_users, e.user_id.as_deref())
            })
        })
        .collect()
}

/// Why each event can never be delivered by any sender, judged from the mock's own answers
/// and limits (spec §1.1, §3.4, §5.1, §8.1), the generator's markers and the scenario's
/// declared expectation.
fn refused(obs: &Observation, attempted: &BTreeMap<u64, &Attempted>) -> HashMap<u64, String> {
    let mut out: HashMap<u64, String> = HashMap::new();
    let max_body = obs.max_body_bytes();
    for (&seq, a) in attempted {
        if a.invalid {
            out.insert(seq, "invalid by the scenario's [dirty] settings".to_owned());
        } else if a.bytes + ENVELOPE_BYTES > max_body {
            out.insert(
                seq,
                format!(
                    "alone over the {max_body}-byte body limit ({} bytes)",
                    a.bytes
                ),
            );
        } else if a.device_id.as_deref().is_none_or(str::is_empty)
            && a.user_id.as_deref().is_none_or(str::is_empty)
        {
            // spec §3.4: a user_id or a device_id is required; the mock's 400 names it in
            // events_with_missing_fields, and a sender may refuse it before sending.
            out.insert(seq, "it carries neither user_id nor device_id".to_owned());
        } else if obs.expect == Expectation::AllRejectedInvalidKey {
            out.insert(seq, "the scenario's API key is invalid".to_owned());
        }
    }
    for r in &obs.requests {
        let Some(b) = &r.response else { continue };
        let mut name = |ei: usize, why: String| {
            if let Some(seq) = r.events.get(ei).and_then(|e| e.seq) {
                out.entry(seq).or_insert(why);
            }
        };
        match r.status {
            400 if b.is_invalid_api_key() => {
                for ei in 0..r.events.len() {
                    name(
                        ei,
                        format!("sent with an invalid API key (request #{})", r.id),
                    );
                }
            }
            400 => {
                for ei in b.invalid_event_indexes() {
                    name(ei, format!("named invalid by request #{}'s 400", r.id));
                }
            }
            429 => {
                for ei in quota_refused(r) {
                    name(
                        ei,
                        format!("over the daily quota (request #{}'s 429)", r.id),
                    );
                }
            }
            _ => {}
        }
    }
    out
}

impl<'a> Index<'a> {
    pub fn new(obs: &'a Observation) -> Self {
        let mut attempted = BTreeMap::new();
        for a in &obs.attempted {
            attempted.entry(a.seq).or_insert(a);
        }
        let mut attempts: HashMap<u64, Vec<(usize, usize)>> = HashMap::new();
        let mut request_pos = HashMap::new();
        for (ri, r) in obs.requests.iter().enumerate() {
            request_pos.insert(r.id, ri);
            for (ei, e) in r.events.iter().enumerate() {
                if let Some(seq) = e.seq {
                    attempts.entry(seq).or_default().push((ri, ei));
                }
            }
        }
        let mut stored: HashMap<u64, Vec<&Stored>> = HashMap::new();
        for s in &obs.stored {
            if let Some(seq) = s.seq {
                stored.entry(seq).or_default().push(s);
            }
        }
        let mut deduplicated = HashMap::new();
        for d in &obs.deduplicated {
            let seq = request_pos
                .get(&d.request_id)
                .and_then(|p| obs.requests.get(*p))
                .and_then(|r| r.events.get(d.index))
                .and_then(|e| e.seq);
            if let Some(seq) = seq {
                *deduplicated.entry(seq).or_insert(0) += 1;
            }
        }
        let outcome = obs
            .outcomes
            .iter()
            .map(|o| (o.seq, (o.outcome.as_str(), o.reason.as_deref())))
            .collect();
        let refused = refused(obs, &attempted);
        Self {
            refused,
            attempted,
            attempts,
            stored,
            deduplicated,
            request_pos,
            outcome,
        }
    }
}

/// How request `r` answered its event at `index`, in words.
pub(crate) fn told(r: &Request, index: usize) -> String {
    let fault = r
        .fault
        .as_deref()
        .map(|f| format!(" (fault {f})"))
        .unwrap_or_default();
    match r.status {
        0 => format!("connection cut without a response{fault}"),
        429 => {
            let throttled = r
                .response
                .as_ref()
                .and_then(|b| b.throttled_events.as_ref())
                .is_some_and(|t| t.contains(&index));
            if throttled {
                "429 naming it in throttled_events".to_owned()
            } else {
                "429 for other identities (it was not throttled itself)".to_owned()
            }
        }
        s if s >= 500 => {
            let c = if r.committed {
                ", committed anyway"
            } else {
                ""
            };
            format!("{s}{c}{fault}")
        }
        s => {
            let err = r
                .response
                .as_ref()
                .and_then(|b| b.error.clone())
                .map(|e| format!(" \"{e}\""))
                .unwrap_or_default();
            format!("{s}{err}{fault}")
        }
    }
}

/// The restart whose killed process took `seq` with it, when the loss is the restart's: the
/// event was written to the stdin of a process that was then SIGKILLed, no request sent
/// after that kill carried it, and no process wrote an outcome line for it (contract
/// version 3).
pub(crate) fn lost_at_restart<'a>(
    obs: &'a Observation,
    idx: &Index<'_>,
    seq: u64,
) -> Option<&'a Restart> {
    if idx.outcome.contains_key(&seq) {
        return None;
    }
    let r = obs
        .restarts
        .iter()
        .find(|r| !r.had_exited && r.fed.contains(&seq))?;
    let attempts = idx.attempts.get(&seq).map_or(&[][..], Vec::as_slice);
    let sent_after = attempts
        .iter()
        .any(|&(ri, _)| obs.requests.get(ri).is_some_and(|req| req.at_ms >= r.at_ms));
    (!sent_after).then_some(r)
}

fn explain_restart_loss(obs: &Observation, idx: &Index<'_>, seq: u64, r: &Restart) -> String {
    let attempts = idx.attempts.get(&seq).map_or(&[][..], Vec::as_slice);
    let sent = match attempts.last() {
        None => "never sent".to_owned(),
        Some(&(ri, ei)) => {
            let last = obs.requests.get(ri).map_or_else(String::new, |q| {
                format!(", the last, request #{}, got {}", q.id, told(q, ei))
            });
            format!("sent {} time(s) before the kill{last}", attempts.len())
        }
    };
    format!(
        "seq {seq} lost: in the sender's memory when it was killed at {:.1} s (restart {}): {sent}; \
         no process sent it after the kill and none wrote an outcome line for it (silent loss)",
        r.at_run_ms as f64 / 1000.0,
        r.number
    )
}

fn explain_loss(obs: &Observation, idx: &Index<'_>, seq: u64) -> String {
    if let Some(r) = lost_at_restart(obs, idx, seq) {
        return explain_restart_loss(obs, idx, seq, r);
    }
    let reported = match idx.outcome.get(&seq) {
        Some(("dropped", reason)) => format!(
            "; the sender reported the drop ({})",
            reason.unwrap_or("no reason")
        ),
        Some(("delivered", _)) => "; the sender claimed it was delivered".to_owned(),
        _ => "; the sender never reported it (silent loss)".to_owned(),
    };
    let attempts = idx.attempts.get(&seq).map_or(&[][..], Vec::as_slice);
    let Some(&(ri, ei)) = attempts.last() else {
        // A body refused for its declared size is never read, so its events are unknown.
        let unread = obs
            .requests
            .iter()
            .filter(|r| r.status == 413 && r.events.is_empty())
            .count();
        if unread > 0 {
            return format!(
                "seq {seq} lost: not in any request the mock could read; {unread} request(s) were \
                 answered 413 Payload too large before their body was read, and it was never \
                 sent again in a smaller one{reported}"
            );
        }
        let when = if obs.sender_exited {
            "before the sender exited"
        } else {
            "before the deadline (sender killed)"
        };
        return format!("seq {seq} lost: never sent {when}{reported}");
    };
    let last = obs.requests.get(ri).map_or_else(String::new, |r| {
        format!("request #{} got {}", r.id, told(r, ei))
    });
    format!(
        "seq {seq} lost: sent {} time(s); the last, {last}, was never followed by a successful retry{reported}",
        attempts.len()
    )
}

fn explain_duplicate(obs: &Observation, idx: &Index<'_>, seq: u64, copies: &[&Stored]) -> String {
    let ids: Vec<&str> = copies
        .iter()
        .map(|s| s.insert_id.as_deref().unwrap_or("<none>"))
        .collect();
    let first_req = copies
        .first()
        .and_then(|s| idx.request_pos.get(&s.request_id))
        .and_then(|p| obs.requests.get(*p));
    // When each copy was stored (a delayed answer can come after a kill; the storage does
    // not).
    let first_at = copies.first().map(|s| s.at_ms);
    let last_at = copies.last().map(|s| s.at_ms);
    let across = obs
        .restarts
        .iter()
        .find(|k| first_at.is_some_and(|a| a < k.at_ms) && last_at.is_some_and(|b| b >= k.at_ms));
    let cause = match (first_req, across) {
        (_, Some(k)) => format!(
            "stored before the sender was killed at {:.1} s (restart {}), sent again after it",
            k.at_run_ms as f64 / 1000.0,
            k.number
        ),
        (Some(r), None) if r.status != 200 => format!(
            "the first copy came in request #{} answered {} and was retried",
            r.id,
            told(r, 0)
        ),
        _ => "sent again after a 200".to_owned(),
    };
    let how = if ids.windows(2).any(|w| w[0] != w[1]) || ids.contains(&"<none>") {
        "with a new or missing insert_id"
    } else {
        "with the same insert_id under a different dedup key (device_id)"
    };
    format!(
        "seq {seq} stored {} times: {cause} {how} (insert_ids {ids:?})",
        copies.len()
    )
}

pub(crate) fn classify(
    obs: &Observation,
    idx: &Index<'_>,
    opts: &CheckOptions,
) -> (EventCounts, Vec<CheckResult>) {
    let mut counts = EventCounts {
        attempted: idx.attempted.len() as u64,
        ..EventCounts::default()
    };
    let mut lost = Finding::default();
    let mut dup = Finding::default();
    let mut claims = Finding::default();
    let mut false_drops = Finding::default();
    let mut refused_silent = Finding::default();
    for &seq in idx.attempted.keys() {
        let copies = idx.stored.get(&seq).map_or(&[][..], Vec::as_slice);
        counts.duplicate_deduplicated += idx.deduplicated.get(&seq).copied().unwrap_or(0);
        let outcome = idx.outcome.get(&seq).map(|o| o.0);
        match copies.len() {
            1 => counts.stored += 1,
            0 => {
                if outcome == Some("held") {
                    // Kept on purpose and said so (e.g. over the daily quota, waiting for
                    // the window): not silent; `drained_before_deadline` judges it.
                    counts.held_at_exit += 1;
                } else if let Some(why) = idx.refused.get(&seq) {
                    counts.expected_rejection += 1;
                    if outcome != Some("dropped") {
                        counts.refused_silently += 1;
                        refused_silent.add(|| {
                            format!("seq {seq}: refused for good ({why}), and the sender never reported the drop")
                        });
                    }
                } else {
                    counts.lost += 1;
                    if outcome != Some("dropped") {
                        counts.lost_silently += 1;
                    }
                    if lost_at_restart(obs, idx, seq).is_some() {
                        counts.lost_at_restart += 1;
                    }
                    lost.add(|| explain_loss(obs, idx, seq));
                }
            }
            _ => {
                counts.duplicate_stored += 1;
                dup.add(|| explain_duplicate(obs, idx, seq, copies));
            }
        }
        if copies.is_empty() && outcome == Some("delivered") {
            counts.false_delivery_claims += 1;
            claims
                .add(|| format!("seq {seq}: the sender said delivered, the mock never stored it"));
        }
        if !copies.is_empty() && outcome == Some("dropped") {
            counts.false_drop_reports += 1;
            let reason = idx
                .outcome
                .get(&seq)
                .and_then(|o| o.1)
                .unwrap_or("no reason");
            let at = copies.first().map_or(0, |c| c.request_id);
            false_drops.add(|| {
                format!("seq {seq}: the sender reported it dropped ({reason}), but the mock stored it from request #{at}")
            });
        }
    }
    let mut unexpected = Finding::default();
    for s in &obs.stored {
        if s.seq.is_none_or(|q| !idx.attempted.contains_key(&q)) {
            counts.unexpected += 1;
            unexpected.add(|| {
                format!(
                    "stored event #{} (seq {:?}) was never produced by the application",
                    s.storage_seq, s.seq
                )
            });
        }
    }
    // Per-device order of first copies, HTTP V2 only (spec §9: processed in order per device).
    let mut reordered = Finding::default();
    if obs.endpoint_path == amplitude_wire::limits::HTTP_V2_PATH {
        let mut highest: HashMap<&str, u64> = HashMap::new();
        let mut seen = std::collections::HashSet::new();
        for s in &obs.stored {
            let (Some(seq), Some(dev)) = (s.seq, s.device_id.as_deref().or(s.user_id.as_deref()))
            else {
                continue;
            };
            if !seen.insert(seq) {
                continue;
            }
            let h = highest.entry(dev).or_insert(seq);
            if seq < *h {
                counts.reordered += 1;
                let before = *h;
                reordered.add(|| format!("seq {seq} of {dev} was stored after seq {before}"));
            } else {
                *h = seq;
            }
        }
    }
    let mut drops = Finding::default();
    let by_storage: HashMap<u64, &Stored> = obs.stored.iter().map(|s| (s.storage_seq, s)).collect();
    for d in &obs.property_drops {
        counts.property_update_dropped += 1;
        let s = by_storage.get(d);
        drops.add(|| match s {
            Some(s) => format!(
                "seq {:?} of user {:?}: user-property update silently dropped (over 1,800/hour)",
                s.seq, s.user_id
            ),
            None => format!("stored event #{d}: user-property update silently dropped"),
        });
    }
    let checks = vec![
        lost.result(
            "no_lost_events",
            "every event the application produced that any sender could deliver was stored",
            true,
        ),
        dup.result(
            "no_duplicates_stored",
            "no event was stored more than once",
            true,
        ),
        unexpected.result(
            "no_unexpected_events",
            "nothing was stored that the application never produced",
            true,
        ),
        reordered.result(
            "per_device_order",
            "HTTP V2: each device's events were stored in the application's order",
            true,
        ),
        claims.result(
            "sender_reports_truthful",
            "no event the sender called delivered is missing",
            true,
        ),
        false_drops.result(
            "no_false_drop_reports",
            "no event the sender reported as dropped was stored",
            opts.false_drop_reports_fail,
        ),
        refused_silent.result(
            "refused_events_reported",
            "every event Amplitude refused for good was reported as dropped",
            opts.refused_silently_fail,
        ),
        drops.result(
            "property_updates_kept",
            "no user-property update was silently dropped by the 1,800/hour rule",
            opts.property_drops_fail,
        ),
    ];
    (counts, checks)
}
