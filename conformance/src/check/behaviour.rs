//! Behaviour checks over the request journal: what the sender did after each answer
//! (spec §5-§8, architecture "Behaviour checks per request").

use super::classify::{told, Index};
use super::observation::{Observation, Request};
use super::verdict::{CheckResult, Finding};
use super::CheckOptions;
use amplitude_wire::limits as wl;
use std::collections::{HashMap, HashSet};

fn failed(r: &Request) -> bool {
    r.status == 0 || r.status >= 500 || r.status == 408
}

fn throttle_pause(obs: &Observation, opts: &CheckOptions) -> Finding {
    // spec §5.4, §8.1: pause a throttled user/device for 30 s after the 429.
    let mut f = Finding::default();
    let mut paused_until: HashMap<(bool, &str), (i64, u64)> = HashMap::new();
    for r in &obs.requests {
        for e in &r.events {
            for key in [
                (true, e.device_id.as_deref()),
                (false, e.user_id.as_deref()),
            ] {
                let (dev, Some(id)) = key else { continue };
                if let Some(&(until, by)) = paused_until.get(&(dev, id)) {
                    if r.at_ms + opts.tolerance_ms < until {
                        let left = until - r.at_ms;
                        f.add(|| {
                            format!(
                                "request #{} sent {} {id} {left} ms before its pause after request #{by}'s 429 ended",
                                r.id,
                                if dev { "device" } else { "user" }
                            )
                        });
                        break;
                    }
                }
            }
        }
        if r.status == 429 {
            if let Some(b) = &r.response {
                for (dev, map) in [(true, &b.throttled_devices), (false, &b.throttled_users)] {
                    for id in map.iter().flat_map(|m| m.keys()) {
                        paused_until
                            .insert((dev, id.as_str()), (r.at_ms + opts.throttle_pause_ms, r.id));
                    }
                }
            }
        }
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
        let max_bytes = if r.path == wl::BATCH_PATH {
            wl::BATCH_MAX_BODY_BYTES
        } else {
            wl::HTTP_V2_MAX_BODY_BYTES
        };
        let over = r.events.len() > wl::MAX_EVENTS_PER_REQUEST
            || r.body_bytes > max_bytes
            || (r.status == 413 && r.fault.is_none());
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
    // spec §5.1, §6: events named invalid in a 400 must be dropped or dead-lettered.
    let mut f = Finding::default();
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
    // spec §5.1, §7: an invalid API key stops sending.
    let mut f = Finding::default();
    let mut after = 0u64;
    let mut first = None;
    for r in &obs.requests {
        if first.is_some() {
            after += 1;
        }
        if r.status == 400
            && r.response.as_ref().is_some_and(|b| b.is_invalid_api_key())
            && first.is_none()
        {
            first = Some(r.id);
        }
    }
    if let Some(id) = first {
        if after > 3 {
            f.add(|| format!("{after} requests followed request #{id}'s invalid-key 400"));
        }
    }
    f
}

fn hot_loop(obs: &Observation, idx: &Index<'_>, opts: &CheckOptions) -> Finding {
    // spec §5.5: retry with backoff, not in a tight loop.
    let mut f = Finding::default();
    for (seq, attempts) in &idx.attempts {
        let mut streak = 0u32;
        for w in attempts.windows(2) {
            let (Some(a), Some(b)) = (obs.requests.get(w[0].0), obs.requests.get(w[1].0)) else {
                continue;
            };
            if (failed(a) || a.status == 429) && b.at_ms - a.at_ms < opts.hot_loop_gap_ms {
                streak += 1;
                if streak >= opts.hot_loop_retries {
                    f.add(|| format!("seq {seq} was retried {streak} times less than {} ms apart (last in request #{})", opts.hot_loop_gap_ms, b.id));
                    break;
                }
            } else {
                streak = 0;
            }
        }
    }
    f
}

/// Identities the application itself drove over the endpoint's per-identity budget (more
/// than threshold x window events within one 30 s window, spec §8.1): a sender may rightly
/// pace them without ever being throttled, so they are not "cold".
fn over_budget<'a>(obs: &Observation, idx: &'a Index<'_>) -> HashSet<&'a str> {
    let threshold = if obs.endpoint_path == wl::BATCH_PATH {
        wl::BATCH_EPS_THRESHOLD
    } else {
        wl::HTTP_V2_EPS_THRESHOLD
    };
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
    // spec §8: throttling is per identity, so identities never throttled (and never over
    // their own budget) should not wait.
    let mut hot: HashSet<&str> = over_budget(obs, idx);
    for r in &obs.requests {
        if let Some(b) = &r.response {
            for m in [
                &b.throttled_devices,
                &b.throttled_users,
                &b.exceeded_daily_quota_devices,
                &b.exceeded_daily_quota_users,
            ] {
                hot.extend(m.iter().flat_map(|m| m.keys().map(String::as_str)));
            }
        }
    }
    let troubled: HashSet<u64> = obs
        .requests
        .iter()
        .filter(|r| r.status != 200 && r.status != 429)
        .flat_map(|r| r.events.iter().filter_map(|e| e.seq))
        .collect();
    let mut f = Finding::default();
    for (&seq, a) in &idx.attempted {
        let is_hot = [a.device_id.as_deref(), a.user_id.as_deref()]
            .iter()
            .flatten()
            .any(|id| hot.contains(id));
        if is_hot || troubled.contains(&seq) {
            continue;
        }
        let Some(first) = idx.stored.get(&seq).and_then(|c| c.first()) else {
            continue;
        };
        let waited = first.at_ms - a.produced_at_ms;
        if waited > opts.cold_latency_ms {
            f.add(|| format!("seq {seq} (never throttled) waited {waited} ms to be stored"));
        }
    }
    f
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
            "events a 400 named invalid were dropped or dead-lettered, not resent",
            true,
        ),
        invalid_key_not_retried(obs).result(
            "invalid_key_not_retried",
            "sending stopped after an invalid-API-key 400",
            true,
        ),
        hot_loop(obs, idx, opts).result(
            "no_hot_loop",
            "failed requests were retried with backoff, not in a tight loop",
            true,
        ),
    ]
}
