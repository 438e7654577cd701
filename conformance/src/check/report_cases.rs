//! Verdicts on the publicly reported SDK bugs rebuilt as small runs: each case asserts the
//! exact verdict for a sender that should fail and for one that behaves well
//! (`docs/conformance/checks.md` gives each check's rule).

use super::*;
use amplitude_wire::ResponseBody;

const T: i64 = 1_000_000;
const V2: &str = "/2/httpapi";

fn attempted(seq: u64, dev: &str) -> Attempted {
    Attempted {
        seq,
        produced_at_ms: T,
        device_id: Some(dev.to_owned()),
        user_id: None,
        invalid: false,
        has_user_properties: false,
        bytes: 100,
    }
}

fn sent(seq: u64, dev: &str) -> SentEvent {
    SentEvent {
        seq: Some(seq),
        insert_id: Some(format!("ins-{seq}")),
        device_id: Some(dev.to_owned()),
        user_id: None,
    }
}

fn request(id: u64, at_ms: i64, status: u16, events: Vec<SentEvent>) -> Request {
    let response = match status {
        200 => ResponseBody::success(events.len() as u64, 100, at_ms),
        400 => ResponseBody::error(400, "Invalid request body"),
        s => ResponseBody::error(s, "error"),
    };
    Request {
        id,
        at_ms,
        path: V2.into(),
        status,
        events,
        response: Some(response),
        ..Default::default()
    }
}

fn stored(storage_seq: u64, r: &Request, e: &SentEvent) -> Stored {
    Stored {
        storage_seq,
        request_id: r.id,
        at_ms: r.at_ms,
        seq: e.seq,
        insert_id: e.insert_id.clone(),
        device_id: e.device_id.clone(),
        user_id: e.user_id.clone(),
    }
}

/// An observation of `n` events of `dev` produced at T, made of `requests`; every event of
/// every 200 is stored (the first copy; later copies deduplicated).
fn run(n: u64, dev: &str, requests: Vec<Request>) -> Observation {
    let mut obs = Observation {
        attempted: (0..n).map(|s| attempted(s, dev)).collect(),
        endpoint_path: V2.into(),
        sender_exited: true,
        ..Observation::default()
    };
    let mut seen = std::collections::HashSet::new();
    for r in &requests {
        if r.status != 200 {
            continue;
        }
        for (i, e) in r.events.iter().enumerate() {
            if seen.insert(e.seq) {
                obs.stored.push(stored(obs.stored.len() as u64 + 1, r, e));
            } else {
                obs.deduplicated.push(Deduplicated {
                    request_id: r.id,
                    index: i,
                });
            }
        }
    }
    obs.requests = requests;
    obs
}

fn failing(v: &Verdict) -> Vec<&'static str> {
    v.failed()
}

fn batch(n: u64, dev: &str) -> Vec<SentEvent> {
    (0..n).map(|s| sent(s, dev)).collect()
}

/// Issue 12, fault 1: for 8 s every request gets a 400 naming no event; a sender that
/// resends each failed request at once (every 2 ms) fails `no_hot_loop`, on both rules.
#[test]
fn resending_at_once_after_400s_naming_nothing_is_a_hot_loop() {
    let mut requests: Vec<Request> = (0..4_000)
        .map(|i| request(i + 1, T + 2 * i as i64, 400, batch(10, "d")))
        .collect();
    requests.push(request(4_001, T + 8_000, 200, batch(10, "d")));
    let v = check(&run(10, "d", requests), &CheckOptions::default());
    assert_eq!(failing(&v), vec!["no_hot_loop"], "{v:#?}");
    let c = v.check("no_hot_loop").unwrap();
    // Per event: 10 events, each one finding. Per endpoint: every resend past the 10th
    // within a window (the 4,000 requests at 2 ms span 8 s: 3,999 resends, 500 per window).
    assert_eq!(c.count, 10 + (3_999 - 10));
    assert!(
        c.examples[0].contains("400 \"Invalid request body\""),
        "{:?}",
        c.examples
    );
}

/// The same 8 s of 400s, with a sender that backs off (250 ms doubling): no alarm.
#[test]
fn backing_off_after_400s_naming_nothing_passes() {
    let times = [0, 250, 750, 1_750, 3_750, 7_750, 8_100];
    let requests: Vec<Request> = times
        .iter()
        .enumerate()
        .map(|(i, &t)| {
            let status = if t < 8_000 { 400 } else { 200 };
            request(i as u64 + 1, T + t, status, batch(10, "d"))
        })
        .collect();
    let v = check(&run(10, "d", requests), &CheckOptions::default());
    assert_eq!(failing(&v), Vec::<&str>::new(), "{v:#?}");
    assert_eq!(v.events.stored, 10);
    assert_eq!(v.check("no_hot_loop").unwrap().count, 0);
}

/// The per-endpoint rule: 11 identities each resent once within a second after a 503 trips
/// it (no event alone is a streak); 10 do not.
#[test]
fn failing_resend_rate_is_judged_per_endpoint() {
    let obs_for = |identities: u64| {
        let mut requests = Vec::new();
        let mut attempted_all = Vec::new();
        for k in 0..identities {
            let dev = format!("d{k}");
            attempted_all.push(attempted(k, &dev));
            requests.push(request(k + 1, T + k as i64, 503, vec![sent(k, &dev)]));
        }
        for k in 0..identities {
            let dev = format!("d{k}");
            requests.push(request(
                100 + k,
                T + 500 + k as i64,
                503,
                vec![sent(k, &dev)],
            ));
            requests.push(request(
                200 + k,
                T + 5_000 + k as i64,
                200,
                vec![sent(k, &dev)],
            ));
        }
        requests.sort_by_key(|r| r.at_ms);
        let mut obs = run(0, "x", requests);
        obs.attempted = attempted_all;
        obs
    };
    let v = check(&obs_for(11), &CheckOptions::default());
    assert_eq!(failing(&v), vec!["no_hot_loop"], "{v:#?}");
    assert_eq!(v.check("no_hot_loop").unwrap().count, 1);
    let v = check(&obs_for(10), &CheckOptions::default());
    assert_eq!(failing(&v), Vec::<&str>::new(), "{v:#?}");
    // The threshold is tunable.
    let opts = CheckOptions {
        max_failing_resends: 20,
        ..CheckOptions::default()
    };
    assert_eq!(failing(&check(&obs_for(11), &opts)), Vec::<&str>::new());
}

/// Issue 12, fault 4: 503 for 80 s and no 429 at all; a sender that waits the outage out
/// delivers everything late. Not a cold-identity delay.
#[test]
fn an_outage_for_everyone_is_not_a_cold_delay() {
    let mut requests: Vec<Request> = (0..8)
        .map(|i| request(i + 1, T + i as i64 * 10_000, 503, batch(100, "d")))
        .collect();
    requests.push(request(9, T + 80_500, 200, batch(100, "d")));
    let v = check(&run(100, "d", requests.clone()), &CheckOptions::default());
    assert_eq!(failing(&v), Vec::<&str>::new(), "{v:#?}");
    // A stalled server (200 after 60 s, no 429): not blamed either.
    let v = check(
        &run(100, "d", vec![request(1, T + 60_000, 200, batch(100, "d"))]),
        &CheckOptions::default(),
    );
    assert_eq!(failing(&v), Vec::<&str>::new(), "{v:#?}");
}

/// The other direction: a 429 that named only device "hot" came first, and "cold"'s event
/// then waited 30 s with no outage: blamed.
#[test]
fn a_delay_after_another_identitys_429_is_blamed() {
    let mut throttle = ResponseBody::too_many_requests(30);
    throttle.throttled_devices = Some([("hot".to_owned(), 31)].into_iter().collect());
    throttle.throttled_events = Some(vec![0]);
    let mut r429 = request(1, T + 100, 429, vec![sent(0, "hot"), sent(1, "cold")]);
    r429.response = Some(throttle);
    let ok = request(2, T + 30_200, 200, vec![sent(0, "hot"), sent(1, "cold")]);
    let mut obs = run(2, "hot", vec![r429, ok]);
    obs.attempted[1].device_id = Some("cold".into());
    obs.stored[1].device_id = Some("cold".into());
    let v = check(&obs, &CheckOptions::default());
    assert_eq!(
        failing(&v),
        vec![
            "non_throttled_resent_promptly",
            "cold_identities_not_delayed"
        ],
        "{v:#?}"
    );
    let c = v.check("cold_identities_not_delayed").unwrap();
    assert_eq!(c.count, 1);
    assert!(
        c.examples[0].contains("throttled only hot"),
        "{:?}",
        c.examples
    );
}

/// Issue 12, fault 5: the first two requests are stored and answered `200 {}`; the sender
/// reports all 100 events dropped. A false drop report, a failure by default.
#[test]
fn reporting_stored_events_as_dropped_fails() {
    let mut a = request(1, T + 10, 200, (0..50).map(|s| sent(s, "d")).collect());
    let mut b = request(2, T + 20, 200, (50..100).map(|s| sent(s, "d")).collect());
    a.response = serde_json::from_str("{}").ok();
    b.response = serde_json::from_str("{}").ok();
    let mut obs = run(100, "d", vec![a, b]);
    obs.outcomes = (0..100)
        .map(|seq| SenderOutcome {
            seq,
            outcome: "dropped".into(),
            reason: Some("code 0".into()),
        })
        .collect();
    let v = check(&obs, &CheckOptions::default());
    assert_eq!(failing(&v), vec!["no_false_drop_reports"], "{v:#?}");
    assert_eq!(v.events.false_drop_reports, 100);
    assert_eq!(v.events.stored, 100);
    // Reported "delivered": no alarm.
    for o in &mut obs.outcomes {
        o.outcome = "delivered".into();
    }
    let v = check(&obs, &CheckOptions::default());
    assert_eq!(failing(&v), Vec::<&str>::new());
    assert_eq!(v.events.false_drop_reports, 0);
}

fn invalid_key(id: u64, at_ms: i64, events: Vec<SentEvent>) -> Request {
    let mut r = request(id, at_ms, 400, events);
    r.response = Some(ResponseBody::error(400, "Invalid API key: bad"));
    r
}

/// Issue 12, fault 6: every request answered `Invalid API key`. A sender that reports each
/// event dropped and resends nothing passes; the events are expected rejections.
#[test]
fn invalid_key_run_judged_on_reports_and_resends() {
    let requests = vec![
        invalid_key(1, T + 10, batch(5, "d")),
        // new events after the 400 are not retries
        invalid_key(2, T + 2_000, (5..10).map(|s| sent(s, "d")).collect()),
    ];
    let mut obs = run(10, "d", requests);
    obs.expect = Expectation::AllRejectedInvalidKey;
    obs.outcomes = (0..10)
        .map(|seq| SenderOutcome {
            seq,
            outcome: "dropped".into(),
            reason: Some("invalid key".into()),
        })
        .collect();
    let v = check(&obs, &CheckOptions::default());
    assert_eq!(failing(&v), Vec::<&str>::new(), "{v:#?}");
    assert_eq!((v.events.expected_rejection, v.events.lost), (10, 0));

    // Resending a refused event: one offending request.
    obs.requests.push(invalid_key(3, T + 3_000, batch(5, "d")));
    let v = check(&obs, &CheckOptions::default());
    assert_eq!(failing(&v), vec!["invalid_key_not_retried"], "{v:#?}");
    assert_eq!(v.check("invalid_key_not_retried").unwrap().count, 1);

    // Silent about the events: each one a silent drop of a refused event.
    obs.requests.pop();
    obs.outcomes.clear();
    let v = check(&obs, &CheckOptions::default());
    assert_eq!(failing(&v), vec!["refused_events_reported"], "{v:#?}");
    assert_eq!(v.events.refused_silently, 10);
}

/// Without a declared expectation, the events an invalid-key 400 answered are still
/// expected rejections (the mock's own answer); the explanation names them as sent.
#[test]
fn invalid_key_answers_make_their_events_expected_rejections() {
    let mut obs = run(5, "d", vec![invalid_key(1, T + 10, batch(5, "d"))]);
    obs.outcomes = (0..5)
        .map(|seq| SenderOutcome {
            seq,
            outcome: "dropped".into(),
            reason: None,
        })
        .collect();
    let v = check(&obs, &CheckOptions::default());
    assert_eq!(failing(&v), Vec::<&str>::new(), "{v:#?}");
    assert_eq!(v.events.expected_rejection, 5);
}

/// Issue 21, fault 1: 20 events, 2 without any id, named by the mock's 400 in
/// `events_with_missing_fields`. Reporting exactly those 2 and delivering 18 passes.
#[test]
fn events_a_400_names_are_expected_rejections() {
    let mut bad = request(1, T + 10, 400, batch(20, "d"));
    let mut body = ResponseBody::error(400, "Request missing required field");
    body.events_with_missing_fields =
        Some([("device_id".to_owned(), vec![3, 7])].into_iter().collect());
    bad.response = Some(body);
    let good: Vec<SentEvent> = (0..20)
        .filter(|s| *s != 3 && *s != 7)
        .map(|s| sent(s, "d"))
        .collect();
    let mut obs = run(20, "d", vec![bad, request(2, T + 20, 200, good)]);
    obs.outcomes = [3, 7]
        .iter()
        .map(|&seq| SenderOutcome {
            seq,
            outcome: "dropped".into(),
            reason: Some("missing id".into()),
        })
        .collect();
    let v = check(&obs, &CheckOptions::default());
    assert_eq!(failing(&v), Vec::<&str>::new(), "{v:#?}");
    assert_eq!(
        (v.events.stored, v.events.expected_rejection, v.events.lost),
        (18, 2, 0)
    );
    // Dropped without a word: a silent drop of a refused event.
    obs.outcomes.clear();
    let v = check(&obs, &CheckOptions::default());
    assert_eq!(failing(&v), vec!["refused_events_reported"]);
    assert_eq!(v.events.refused_silently, 2);
    // Resent anyway: flagged.
    obs.requests
        .push(request(3, T + 5_000, 400, vec![sent(3, "d"), sent(7, "d")]));
    let v = check(&obs, &CheckOptions::default());
    assert!(
        failing(&v).contains(&"invalid_events_not_retried"),
        "{v:#?}"
    );
}

/// A single event over the 1 MB body limit, refused by the sender before sending and
/// reported: an expected rejection, not a loss.
#[test]
fn an_event_alone_over_the_size_limit_is_an_expected_rejection() {
    let mut obs = run(2, "d", vec![request(1, T + 10, 200, vec![sent(0, "d")])]);
    obs.attempted[1].bytes = 1_100_000;
    obs.outcomes = vec![SenderOutcome {
        seq: 1,
        outcome: "dropped".into(),
        reason: Some("too large".into()),
    }];
    let v = check(&obs, &CheckOptions::default());
    assert_eq!(failing(&v), Vec::<&str>::new(), "{v:#?}");
    assert_eq!((v.events.expected_rejection, v.events.lost), (1, 0));
    // Just under the limit it can be delivered: losing it is a loss.
    obs.attempted[1].bytes = 900_000;
    let v = check(&obs, &CheckOptions::default());
    assert_eq!(failing(&v), vec!["no_lost_events"]);
}

/// Events over the daily quota (a 429 with `exceeded_daily_quota_devices`): reported drops
/// pass; resending them is flagged.
#[test]
fn events_over_the_daily_quota_are_expected_rejections() {
    let mut r = request(1, T + 10, 429, batch(3, "d"));
    let mut body = ResponseBody::too_many_requests(30);
    body.exceeded_daily_quota_devices = Some([("d".to_owned(), 500_001)].into_iter().collect());
    body.throttled_events = Some(vec![0, 1, 2]);
    r.response = Some(body);
    let mut obs = run(3, "d", vec![r]);
    obs.outcomes = (0..3)
        .map(|seq| SenderOutcome {
            seq,
            outcome: "dropped".into(),
            reason: Some("quota".into()),
        })
        .collect();
    let v = check(&obs, &CheckOptions::default());
    assert_eq!(failing(&v), Vec::<&str>::new(), "{v:#?}");
    assert_eq!(v.events.expected_rejection, 3);
    let again = Request {
        id: 2,
        at_ms: T + 40_000,
        ..obs.requests[0].clone()
    };
    obs.requests.push(again);
    let v = check(&obs, &CheckOptions::default());
    assert_eq!(failing(&v), vec!["invalid_events_not_retried"], "{v:#?}");
    assert_eq!(v.check("invalid_events_not_retried").unwrap().count, 3);
}

/// Issue 21, fault 2: events a durable sender reports as held at exit are their own class,
/// not a loss.
#[test]
fn held_events_are_not_losses() {
    let mut obs = run(4, "d", vec![request(1, T + 10, 200, batch(2, "d"))]);
    obs.outcomes = [2, 3]
        .iter()
        .map(|&seq| SenderOutcome {
            seq,
            outcome: "held".into(),
            reason: Some("in the durable queue at exit".into()),
        })
        .collect();
    let v = check(&obs, &CheckOptions::default());
    assert_eq!(failing(&v), Vec::<&str>::new(), "{v:#?}");
    assert_eq!(
        (v.events.held_at_exit, v.events.lost, v.events.lost_silently),
        (2, 0, 0)
    );
    obs.outcomes.clear();
    let v = check(&obs, &CheckOptions::default());
    assert_eq!(failing(&v), vec!["no_lost_events"]);
    assert_eq!((v.events.lost, v.events.lost_silently), (2, 2));
}

/// Issue 21, fault 5: three 413s early, then a healthy server. A sender whose batches stay
/// at 1 event makes 200 requests for 200 events produced over 10 s (efficient minimum:
/// 10): fails. One that grows back to 20-event batches passes.
#[test]
fn batch_sizes_must_recover_after_413s() {
    let build = |per_request: u64| {
        let mut obs = Observation {
            endpoint_path: V2.into(),
            sender_exited: true,
            ..Observation::default()
        };
        obs.attempted = (0..200)
            .map(|s| Attempted {
                produced_at_ms: T + (s as i64) * 50,
                ..attempted(s, "d")
            })
            .collect();
        // 413s injected by a fault, as the public reports reproduce them.
        let mut requests: Vec<Request> = (0..3)
            .map(|i| Request {
                fault: Some("status".into()),
                ..request(i + 1, T + i as i64, 413, batch(10, "d"))
            })
            .collect();
        let mut id = 10;
        for chunk in (0..200).collect::<Vec<u64>>().chunks(per_request as usize) {
            id += 1;
            let at = T + chunk[0] as i64 * 50 + 60;
            requests.push(request(
                id,
                at,
                200,
                chunk.iter().map(|&s| sent(s, "d")).collect(),
            ));
        }
        let mut o = run(0, "d", requests);
        o.attempted = std::mem::take(&mut obs.attempted);
        o
    };
    let v = check(&build(1), &CheckOptions::default());
    assert_eq!(failing(&v), vec!["batch_size_recovers"], "{v:#?}");
    assert_eq!(v.efficiency.requests_with_events, 203);
    assert_eq!(v.efficiency.efficient_minimum_requests, 10);
    assert!(
        v.check("batch_size_recovers").unwrap().examples[0].contains("200 requests for 200 events")
    );
    let v = check(&build(20), &CheckOptions::default());
    assert_eq!(failing(&v), Vec::<&str>::new(), "{v:#?}");
    assert_eq!(v.efficiency.mean_events_per_request, 230.0 / 13.0);
}

/// Issue 21, fault 1, as the Python SDK does it: an event with neither id is refused before
/// it is sent, so no 400 names it. It is still an expected rejection; unreported, a silent
/// drop of a refused event.
#[test]
fn an_event_without_ids_refused_before_sending_is_an_expected_rejection() {
    let mut obs = run(2, "d", vec![request(1, T + 10, 200, vec![sent(0, "d")])]);
    obs.attempted[1].device_id = None;
    let v = check(&obs, &CheckOptions::default());
    assert_eq!(failing(&v), vec!["refused_events_reported"], "{v:#?}");
    assert_eq!(
        (
            v.events.expected_rejection,
            v.events.refused_silently,
            v.events.lost
        ),
        (1, 1, 0)
    );
    obs.outcomes = vec![SenderOutcome {
        seq: 1,
        outcome: "dropped".into(),
        reason: Some("missing ids".into()),
    }];
    let v = check(&obs, &CheckOptions::default());
    assert_eq!(failing(&v), Vec::<&str>::new(), "{v:#?}");
}
