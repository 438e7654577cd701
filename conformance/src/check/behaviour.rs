//! Behaviour checks over the request journal: what the sender did after each answer
//! (spec §5-§8, architecture "Behaviour checks per request").

use super::classify::{quota_refused, told, Index};
use super::observation::{Observation, Request};
use super::throttle::throttle_trace;
use super::verdict::{CheckResult, Efficiency, Finding};
use super::CheckOptions;
use amplitude_wire::limits as wl;
use std::collections::{HashMap, HashSet};

fn failed(r: &Request) -> bool {
    r.status == 0 || r.status >= 500 || r.status == 408
}

/// The answer asked for this event to be resent at once: a 413 (split and resend, spec
/// §5.3), a 429 that did not name it in `throttled_events` (spec §6, §7), or a 400 that
/// names other events' indexes but not this one (spec §5.1).
fn prompt_resend_asked(r: &Request, index: usize) -> bool {
    match r.status {
        413 => true,
        429 => !r
            .response
            .as_ref()
            .and_then(|b| b.throttled_events.as_ref())
            .is_some_and(|t| t.contains(&index)),
        400 => r.response.as_ref().is_some_and(|b| {
            let named = b.invalid_event_indexes();
            !named.is_empty() && !named.contains(&index)
        }),
        _ => false,
    }
}

/// A failing answer for the per-endpoint rule of `no_hot_loop`: no response, 408, any 5xx,
/// and any 4xx except 413, 429 and a 400 that names event indexes (those ask for a prompt,
/// changed resend).
fn failing_answer(r: &Request) -> bool {
    match r.status {
        0 | 408 => true,
        s if s >= 500 => true,
        413 | 429 => false,
        400 => r
            .response
            .as_ref()
            .is_none_or(|b| b.invalid_event_indexes().is_empty()),
        s => (400..500).contains(&s),
    }
}

fn throttle_pause(obs: &Observation, opts: &CheckOptions) -> Finding {
    // spec §5.4, §8.1: pause a throttled user/device for 30 s after the 429.
    let mut f = Finding::default();
    for v in throttle_trace(obs, opts).violations {
        f.add(|| {
            format!(
                "request #{} sent {} {} {} ms before its pause after request #{}'s 429 ended",
                v.request_id,
                if v.device { "device" } else { "user" },
                v.id,
                v.left_ms,
                v.by_request
            )
        });
    }
    f
}

fn next_attempt_after<'a>(
    idx: &Index<'_>,
    obs: &'a Observation,
    seq: u64,
    ri: usize,
) -> Option<&'a Request> {
    idx.attempts
        .get(&seq)?
        .iter()
        .find(|(r, _)| *r > ri)
        .and_then(|(r, _)| obs.requests.get(*r))
}

fn non_throttled_resent(obs: &Observation, idx: &Index<'_>, opts: &CheckOptions) -> Finding {
    // spec §6, §7: a 429 stores nothing; events not in throttled_events should be resent at once.
    let mut f = Finding::default();
    for (ri, r) in obs.requests.iter().enumerate() {
        if r.status != 429 {
            continue;
        }
        let throttled: HashSet<usize> = r
            .response
            .as_ref()
            .and_then(|b| b.throttled_events.clone())
            .unwrap_or_default()
            .into_iter()
            .collect();
        for (ei, e) in r.events.iter().enumerate() {
            let Some(seq) = e.seq else { continue };
            if throttled.contains(&ei) {
                continue;
            }
            match next_attempt_after(idx, obs, seq, ri) {
                Some(n) if n.at_ms - r.at_ms <= opts.resend_within_ms => {}
                Some(n) => {
                    let gap = n.at_ms - r.at_ms;
                    f.add(|| format!("seq {seq} was not throttled in request #{}'s 429 but waited {gap} ms to be resent", r.id));
                }
                None => f.add(|| {
                    format!(
                        "seq {seq} was not throttled in request #{}'s 429 and was never resent",
                        r.id
                    )
                }),
            }
        }
    }
    f
}

fn request_limits(obs: &Observation) -> Finding {
    // spec §3.4: at most 2,000 events; < 1 MB (HTTP V2) / 20 MB (batch).
    let mut f = Finding::default();
    for r in &obs.requests {
        let max_bytes = amplitude_wire::Endpoint::from_path(&r.path)
            .unwrap_or_default()
            .max_body_bytes();
        let over = r.events.len() > wl::MAX_EVENTS_PER_REQUEST
            || r.body_bytes > max_bytes
            || (r.status == 413
                && r.fault.is_none()
                && r.events.len() <= obs.max_events_per_request());
        if over {
            f.add(|| {
                if r.status == 413 && r.events.is_empty() {
                    format!("request #{} was answered 413 Payload too large: its body was over the size limit (1 MB for HTTP V2, 20 MB for batch), so the mock kept none of it", r.id)
                } else {
                    format!("request #{}: {} events, {} bytes, answered {}", r.id, r.events.len(), r.body_bytes, r.status)
                }
            });
        }
    }
    f
}

fn retries_keep_insert_id(obs: &Observation, idx: &Index<'_>) -> Finding {
    // spec §5.5, §9: a retry after a 5xx or timeout must carry the same insert_id.
    let mut f = Finding::default();
    for (seq, attempts) in &idx.attempts {
        let mut failed_with: Option<(&Request, Option<&str>)> = None;
        for &(ri, ei) in attempts {
            let Some(r) = obs.requests.get(ri) else {
                continue;
            };
            let id = r.events.get(ei).and_then(|e| e.insert_id.as_deref());
            if let Some((p, pid)) = failed_with {
                if pid != id || id.is_none() {
                    f.add(|| format!("seq {seq}: request #{} got {}, the retry in request #{} carried insert_id {id:?} instead of {pid:?}", p.id, told(p, ei), r.id));
                    break;
                }
            } else if failed(r) {
                failed_with = Some((r, id));
            }
        }
    }
    f
}

fn invalid_not_retried(obs: &Observation, idx: &Index<'_>) -> Finding {
    // spec §5.1, §6: events named invalid in a 400 must be dropped or dead-lettered; spec
    // §8.1: events over the daily quota likewise.
    let mut f = Finding::default();
    for (ri, r) in obs.requests.iter().enumerate() {
        for ei in quota_refused(r) {
            let Some(seq) = r.events.get(ei).and_then(|e| e.seq) else {
                continue;
            };
            if let Some(n) = next_attempt_after(idx, obs, seq, ri) {
                f.add(|| format!("seq {seq} was over the daily quota in request #{}'s 429 and sent again in request #{}", r.id, n.id));
            }
        }
    }
    for (ri, r) in obs.requests.iter().enumerate() {
        if r.status != 400 {
            continue;
        }
        let Some(b) = &r.response else { continue };
        for ei in b.invalid_event_indexes() {
            let Some(seq) = r.events.get(ei).and_then(|e| e.seq) else {
                continue;
            };
            if let Some(n) = next_attempt_after(idx, obs, seq, ri) {
                f.add(|| format!("seq {seq} was named invalid by request #{}'s 400 and sent again in request #{}", r.id, n.id));
            }
        }
    }
    f
}

fn invalid_key_not_retried(obs: &Observation) -> Finding {
    // spec §5.1, §7: an invalid API key cannot be fixed by resending. Counts requests that
    // resend an event an invalid-key 400 already answered (new events are not retries).
    let mut f = Finding::default();
    let mut refused: HashMap<u64, u64> = HashMap::new();
    for r in &obs.requests {
        if let Some((seq, by)) = r
            .events
            .iter()
            .filter_map(|e| e.seq)
            .find_map(|q| refused.get(&q).map(|by| (q, *by)))
        {
            f.add(|| format!("request #{} resent seq {seq}, which request #{by}'s invalid-key 400 had refused", r.id));
        }
        if r.status == 400 && r.response.as_ref().is_some_and(|b| b.is_invalid_api_key()) {
            for q in r.events.iter().filter_map(|e| e.seq) {
                refused.entry(q).or_insert(r.id);
            }
        }
    }
    f
}

fn hot_loop(obs: &Observation, idx: &Index<'_>, opts: &CheckOptions) -> Finding {
    // spec §5.5: retry with backoff, not in a tight loop. Per event: a resend sooner than
    // hot_loop_gap_ms after any answer that did not ask for a prompt resend is too fast;
    // hot_loop_retries of them in a row fail.
    let mut f = Finding::default();
    for (seq, attempts) in &idx.attempts {
        let mut streak = 0u32;
        for w in attempts.windows(2) {
            let (Some(a), Some(b)) = (obs.requests.get(w[0].0), obs.requests.get(w[1].0)) else {
                continue;
            };
            let after_failure = !(200..300).contains(&a.status) && !prompt_resend_asked(a, w[0].1);
            if after_failure && b.at_ms - a.at_ms < opts.hot_loop_gap_ms {
                streak += 1;
                if streak >= opts.hot_loop_retries {
                    let gap = opts.hot_loop_gap_ms;
                    f.add(|| format!("seq {seq} was resent {streak} times in a row less than {gap} ms after a failing answer (request #{} got {}, resent in request #{})", a.id, told(a, w[0].1), b.id));
                    break;
                }
            } else {
                streak = 0;
            }
        }
    }
    // Per endpoint: resends (requests carrying an event sent before) that got a failing
    // answer, at most max_failing_resends within any failing_window_ms.
    let mut seen: HashSet<u64> = HashSet::new();
    let mut resends: Vec<&Request> = Vec::new();
    for r in &obs.requests {
        let resend = r
            .events
            .iter()
            .filter_map(|e| e.seq)
            .any(|q| seen.contains(&q));
        seen.extend(r.events.iter().filter_map(|e| e.seq));
        if resend && failing_answer(r) {
            resends.push(r);
        }
    }
    let limit = opts.max_failing_resends as usize;
    let mut lo = 0;
    for hi in 0..resends.len() {
        while resends[hi].at_ms - resends[lo].at_ms >= opts.failing_window_ms {
            lo += 1;
        }
        if hi - lo + 1 > limit {
            let (first, last) = (resends[lo], resends[hi]);
            let window = opts.failing_window_ms;
            f.add(|| format!("{} resends were answered with failures within {window} ms (requests #{} to #{}, the last got {}): more than the {limit} allowed", hi - lo + 1, first.id, last.id, told(last, 0)));
        }
    }
    f
}

/// Identities the application itself drove over the endpoint's per-identity budget (more
/// than threshold x window events within one 30 s window, spec §8.1): a sender may rightly
/// pace them without ever being throttled, so they are not "cold".
fn over_budget<'a>(obs: &Observation, idx: &'a Index<'_>) -> HashSet<&'a str> {
    let threshold = amplitude_wire::Endpoint::from_path(&obs.endpoint_path)
        .unwrap_or_default()
        .eps_threshold();
    let budget = u64::from(threshold) * wl::EPS_WINDOW_MS / 1000;
    let window = wl::EPS_WINDOW_MS as i64;
    let mut times: HashMap<&str, Vec<i64>> = HashMap::new();
    for a in idx.attempted.values() {
        for id in [a.device_id.as_deref(), a.user_id.as_deref()]
            .into_iter()
            .flatten()
        {
            times.entry(id).or_default().push(a.produced_at_ms);
        }
    }
    let mut out = HashSet::new();
    for (id, mut t) in times {
        if (t.len() as u64) <= budget {
            continue;
        }
        t.sort_unstable();
        let mut lo = 0;
        for hi in 0..t.len() {
            while t[hi] - t[lo] >= window {
                lo += 1;
            }
            if (hi - lo + 1) as u64 > budget {
                out.insert(id);
                break;
            }
        }
    }
    out
}

fn cold_latency(obs: &Observation, idx: &Index<'_>, opts: &CheckOptions) -> Finding {
    // spec §8: throttling is per identity, so one identity's 429 must not hold back others.
    // A delay is blamed only on a 429 that exists, names other identities, and came before
    // the delay ended (from one pause before the event was produced); a delay during which
    // the endpoint failed for everyone (no response, 408, 5xx, a 4xx naming nothing) is an
    // outage, not this check's business.
    let mut hot: HashSet<&str> = over_budget(obs, idx);
    let mut throttles: Vec<(&Request, HashSet<&str>)> = Vec::new();
    for r in &obs.requests {
        let Some(b) = &r.response else { continue };
        let mut named: HashSet<&str> = HashSet::new();
        for m in [
            &b.throttled_devices,
            &b.throttled_users,
            &b.exceeded_daily_quota_devices,
            &b.exceeded_daily_quota_users,
        ] {
            named.extend(m.iter().flat_map(|m| m.keys().map(String::as_str)));
        }
        hot.extend(named.iter().copied());
        if r.status == 429 && !named.is_empty() {
            throttles.push((r, named));
        }
    }
    let failures: Vec<i64> = obs
        .requests
        .iter()
        .filter(|r| failing_answer(r))
        .map(|r| r.at_ms)
        .collect();
    let troubled: HashSet<u64> = obs
        .requests
        .iter()
        .filter(|r| r.status != 200 && r.status != 429)
        .flat_map(|r| r.events.iter().filter_map(|e| e.seq))
        .collect();
    let mut f = Finding::default();
    for (&seq, a) in &idx.attempted {
        let ids: Vec<&str> = [a.device_id.as_deref(), a.user_id.as_deref()]
            .into_iter()
            .flatten()
            .collect();
        if ids.iter().any(|id| hot.contains(id)) || troubled.contains(&seq) {
            continue;
        }
        let Some(first) = idx.stored.get(&seq).and_then(|c| c.first()) else {
            continue;
        };
        let (from, until) = (a.produced_at_ms, first.at_ms);
        let waited = until - from;
        if waited <= opts.cold_latency_ms {
            continue;
        }
        let outage = failures.iter().any(|&t| t >= from && t < until);
        if outage {
            continue;
        }
        let blame = throttles.iter().find(|(r, named)| {
            r.at_ms >= from - opts.throttle_pause_ms
                && r.at_ms < until
                && !ids.iter().any(|id| named.contains(id))
        });
        if let Some((r, named)) = blame {
            let mut who: Vec<&str> = named.iter().copied().collect();
            who.sort_unstable();
            who.truncate(3);
            f.add(|| format!("seq {seq} (never throttled) waited {waited} ms to be stored, after request #{}'s 429 throttled only {}", r.id, who.join(", ")));
        }
    }
    f
}

/// Requests spent on the run's events, and the efficient minimum (events binned by
/// `efficient_flush_ms` of production time, each bin split by the event-count limit).
pub(crate) fn efficiency(obs: &Observation, idx: &Index<'_>, opts: &CheckOptions) -> Efficiency {
    let with_events = obs.requests.iter().filter(|r| !r.events.is_empty());
    let (mut requests, mut events) = (0u64, 0u64);
    for r in with_events {
        requests += 1;
        events += r.events.len() as u64;
    }
    let attempted = idx.attempted.len() as u64;
    let times = idx.attempted.values().map(|a| a.produced_at_ms);
    Efficiency {
        requests_with_events: requests,
        events_sent: events,
        requests_per_event: if attempted == 0 {
            0.0
        } else {
            requests as f64 / attempted as f64
        },
        mean_events_per_request: if requests == 0 {
            0.0
        } else {
            events as f64 / requests as f64
        },
        efficient_minimum_requests: efficient_minimum(times, opts, obs.max_events_per_request()),
    }
}

/// The fewest requests for events produced at `times` (ms): one per `efficient_flush_ms`
/// bin, more where a bin holds more than `cap` events.
fn efficient_minimum(times: impl Iterator<Item = i64>, opts: &CheckOptions, cap: usize) -> u64 {
    let bin = opts.efficient_flush_ms.max(1);
    let mut bins: HashMap<i64, u64> = HashMap::new();
    for t in times {
        *bins.entry(t.div_euclid(bin)).or_insert(0) += 1;
    }
    let cap = cap.max(1) as u64;
    bins.values().map(|n| n.div_ceil(cap)).sum()
}

/// `batch_size_recovers`: after the last 413, the requests that carried events stay within
/// `batch_recovery_factor` x the efficient minimum for those events, plus
/// `batch_recovery_slack` (a sender that splits after a 413 must grow its batches again).
pub(crate) fn batch_size_recovers(
    obs: &Observation,
    idx: &Index<'_>,
    opts: &CheckOptions,
) -> CheckResult {
    let mut f = Finding::default();
    let last = obs.requests.iter().rposition(|r| r.status == 413);
    if let Some(pos) = last {
        let after: Vec<&Request> = obs
            .requests
            .iter()
            .skip(pos + 1)
            .filter(|r| !r.events.is_empty())
            .collect();
        let seqs: HashSet<u64> = after
            .iter()
            .flat_map(|r| r.events.iter().filter_map(|e| e.seq))
            .collect();
        let times = seqs
            .iter()
            .filter_map(|q| idx.attempted.get(q))
            .map(|a| a.produced_at_ms);
        let minimum = efficient_minimum(times, opts, obs.max_events_per_request());
        let allowed =
            (minimum as f64 * opts.batch_recovery_factor).ceil() as u64 + opts.batch_recovery_slack;
        let made = after.len() as u64;
        if made > allowed {
            let id = obs.requests.get(pos).map_or(0, |r| r.id);
            let events: usize = after.iter().map(|r| r.events.len()).sum();
            f.add(|| format!("after the last 413 (request #{id}) the sender made {made} requests for {} events ({:.1} events per request); an efficient sender needs about {minimum}, and {allowed} are allowed ({}x + {})", seqs.len(), events as f64 / made as f64, opts.batch_recovery_factor, opts.batch_recovery_slack));
        }
    }
    f.result(
        "batch_size_recovers",
        "after a 413, batch sizes recovered: requests stayed near the efficient minimum",
        true,
    )
}

pub(crate) fn checks(obs: &Observation, idx: &Index<'_>, opts: &CheckOptions) -> Vec<CheckResult> {
    vec![
        throttle_pause(obs, opts).result(
            "throttle_pause_respected",
            "no throttled device/user was sent again before its 30 s pause ended",
            true,
        ),
        non_throttled_resent(obs, idx, opts).result(
            "non_throttled_resent_promptly",
            "events of a 429 that were not throttled were resent promptly",
            true,
        ),
        cold_latency(obs, idx, opts).result(
            "cold_identities_not_delayed",
            "identities never throttled were not held back by another's 429",
            true,
        ),
        request_limits(obs).result(
            "request_limits_respected",
            "no request exceeded 2,000 events or 1 MB (HTTP V2) / 20 MB (batch)",
            true,
        ),
        retries_keep_insert_id(obs, idx).result(
            "retries_keep_insert_id",
            "events retried after a 5xx, reset or timeout kept their insert_id",
            true,
        ),
        invalid_not_retried(obs, idx).result(
            "invalid_events_not_retried",
            "events a 400 named invalid, or over the daily quota, were dropped, not resent",
            true,
        ),
        invalid_key_not_retried(obs).result(
            "invalid_key_not_retried",
            "no event an invalid-API-key 400 refused was sent again",
            true,
        ),
        hot_loop(obs, idx, opts).result(
            "no_hot_loop",
            "resends after failing answers were spaced by backoff, per event and per endpoint",
            true,
        ),
    ]
}
