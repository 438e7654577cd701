//! The checker's self-tests: a correct run raises no alarm, and each planted fault is caught
//! by exactly the check meant for it (architecture "Checker vocabulary": a checker needs
//! tests that plant each fault on purpose).

use super::*;
use amplitude_wire::ResponseBody;

const T: i64 = 1_000_000;

fn sent(seq: u64, dev: &str) -> SentEvent {
    SentEvent {
        seq: Some(seq),
        insert_id: Some(format!("ins-{seq}")),
        device_id: Some(dev.to_owned()),
        user_id: None,
    }
}

/// A correct HTTP V2 run: 6 events over devices A and B; the first request is throttled for
/// device A (429), B's event resent at once, A's after 30 s; one invalid event dead-lettered.
fn correct_run() -> Observation {
    let dev = |s: u64| if s % 2 == 0 { "device-A" } else { "device-B" };
    let attempted = (0..6)
        .map(|seq| Attempted {
            seq,
            produced_at_ms: T,
            device_id: Some(dev(seq).to_owned()),
            user_id: None,
            invalid: seq == 5,
            has_user_properties: false,
            bytes: 100,
        })
        .collect();
    let mut throttle = ResponseBody::too_many_requests(30);
    throttle.throttled_devices = Some([("device-A".to_owned(), 31)].into_iter().collect());
    throttle.throttled_events = Some(vec![0]);
    let mut invalid = ResponseBody::error(400, "Invalid field values on some events");
    invalid.events_with_invalid_fields = Some([("time".to_owned(), vec![1])].into_iter().collect());
    let ok = |n| Some(ResponseBody::success(n, 10, T));
    let requests = vec![
        Request {
            id: 1,
            at_ms: T + 10,
            path: "/2/httpapi".into(),
            status: 429,
            events: vec![sent(0, "device-A"), sent(1, "device-B")],
            response: Some(throttle),
            ..Default::default()
        },
        Request {
            id: 2,
            at_ms: T + 20,
            path: "/2/httpapi".into(),
            status: 200,
            events: vec![sent(1, "device-B"), sent(3, "device-B")],
            response: ok(2),
            ..Default::default()
        },
        Request {
            id: 3,
            at_ms: T + 30,
            path: "/2/httpapi".into(),
            status: 400,
            events: vec![sent(3, "device-B"), sent(5, "device-B")],
            response: Some(invalid),
            ..Default::default()
        },
        Request {
            id: 4,
            at_ms: T + 30_020,
            path: "/2/httpapi".into(),
            status: 200,
            events: vec![
                sent(0, "device-A"),
                sent(2, "device-A"),
                sent(4, "device-A"),
            ],
            response: ok(3),
            ..Default::default()
        },
        Request {
            id: 5,
            at_ms: T + 30_040,
            path: "/2/httpapi".into(),
            status: 200,
            events: vec![sent(3, "device-B")],
            response: ok(1),
            ..Default::default()
        },
    ];
    let stored = [(1u64, 2u64, 1u64), (2, 4, 0), (3, 4, 2), (4, 4, 4)]
        .iter()
        .map(|&(storage_seq, request_id, seq)| Stored {
            storage_seq,
            request_id,
            at_ms: if request_id == 2 { T + 20 } else { T + 30_020 },
            seq: Some(seq),
            insert_id: Some(format!("ins-{seq}")),
            device_id: Some(dev(seq).to_owned()),
            user_id: None,
        })
        .collect();
    // seq 3 was stored by request 2, then its copy in request 5 was deduplicated.
    let mut obs = Observation {
        attempted,
        stored,
        requests,
        deduplicated: vec![Deduplicated {
            request_id: 5,
            index: 0,
        }],
        property_drops: vec![],
        outcomes: vec![SenderOutcome {
            seq: 5,
            outcome: "dropped".into(),
            reason: Some("400 invalid time".into()),
        }],
        sender_exited: true,
        endpoint_path: "/2/httpapi".into(),
        ..Observation::default()
    };
    obs.stored.insert(
        1,
        Stored {
            storage_seq: 9,
            request_id: 2,
            at_ms: T + 20,
            seq: Some(3),
            insert_id: Some("ins-3".into()),
            device_id: Some("device-B".into()),
            user_id: None,
        },
    );
    obs
}

fn failing(v: &Verdict) -> Vec<&'static str> {
    v.failed()
}

#[test]
fn correct_run_raises_no_alarm() {
    let v = check(&correct_run(), &CheckOptions::default());
    assert_eq!(failing(&v), Vec::<&str>::new(), "{v:#?}");
    assert_eq!(v.events.attempted, 6);
    assert_eq!(v.events.stored, 5);
    assert_eq!(v.events.expected_rejection, 1);
    assert_eq!(v.events.duplicate_deduplicated, 1);
    assert_eq!(v.events.lost, 0);
}

#[test]
fn planted_loss_is_caught_and_explained() {
    let mut obs = correct_run();
    obs.stored.retain(|s| s.seq != Some(2));
    let v = check(&obs, &CheckOptions::default());
    assert_eq!(failing(&v), vec!["no_lost_events"]);
    assert_eq!((v.events.lost, v.events.lost_silently), (1, 1));
    let ex = &v.check("no_lost_events").unwrap().examples[0];
    assert!(ex.contains("seq 2") && ex.contains("silent"), "{ex}");
}

#[test]
fn planted_duplicate_with_new_insert_id_is_caught() {
    let mut obs = correct_run();
    let mut copy = obs.stored[0].clone();
    copy.storage_seq = 99;
    copy.insert_id = Some("fresh-uuid".into());
    obs.stored.push(copy);
    let v = check(&obs, &CheckOptions::default());
    assert_eq!(failing(&v), vec!["no_duplicates_stored"]);
    assert_eq!(v.events.duplicate_stored, 1);
    assert!(
        v.check("no_duplicates_stored").unwrap().examples[0].contains("new or missing insert_id")
    );
}

#[test]
fn planted_reordering_is_caught() {
    let mut obs = correct_run();
    // swap the storage order of device A's seq 2 and seq 4
    let (i2, i4) = (
        obs.stored.iter().position(|s| s.seq == Some(2)).unwrap(),
        obs.stored.iter().position(|s| s.seq == Some(4)).unwrap(),
    );
    obs.stored.swap(i2, i4);
    let v = check(&obs, &CheckOptions::default());
    assert_eq!(failing(&v), vec!["per_device_order"]);
    assert_eq!(v.events.reordered, 1);
}

#[test]
fn planted_unexpected_event_is_caught() {
    let mut obs = correct_run();
    let mut extra = obs.stored[0].clone();
    extra.storage_seq = 100;
    extra.seq = Some(77);
    obs.stored.push(extra);
    let v = check(&obs, &CheckOptions::default());
    assert_eq!(failing(&v), vec!["no_unexpected_events"]);
    assert_eq!(v.events.unexpected, 1);
}

#[test]
fn planted_early_resend_of_throttled_device_is_caught() {
    let mut obs = correct_run();
    obs.requests[3].at_ms = T + 5_000; // device A resent 5 s after its 429
    for s in &mut obs.stored {
        s.at_ms = s.at_ms.min(T + 5_000);
    }
    let v = check(&obs, &CheckOptions::default());
    assert_eq!(failing(&v), vec!["throttle_pause_respected"]);
}

#[test]
fn planted_retry_of_invalid_event_is_caught() {
    let mut obs = correct_run();
    obs.requests[4].events.push(sent(5, "device-B"));
    let v = check(&obs, &CheckOptions::default());
    assert_eq!(failing(&v), vec!["invalid_events_not_retried"]);
}

#[test]
fn planted_new_insert_id_on_5xx_retry_is_caught() {
    let mut obs = correct_run();
    obs.requests[1].status = 503;
    obs.requests[1].response = None;
    obs.requests[4].events[0].insert_id = Some("new-id".into());
    // storage stays as it was: seq 3 first stored from request 2 is now impossible, so move it
    obs.stored.retain(|s| s.storage_seq != 9);
    obs.stored.retain(|s| s.seq != Some(1));
    obs.requests.push(Request {
        id: 6,
        at_ms: T + 31_000,
        path: "/2/httpapi".into(),
        status: 200,
        events: vec![sent(1, "device-B")],
        response: None,
        ..Default::default()
    });
    obs.stored.push(Stored {
        storage_seq: 10,
        request_id: 6,
        at_ms: T + 31_000,
        seq: Some(1),
        insert_id: Some("ins-1".into()),
        device_id: Some("device-B".into()),
        user_id: None,
    });
    obs.stored.push(Stored {
        storage_seq: 11,
        request_id: 5,
        at_ms: T + 30_040,
        seq: Some(3),
        insert_id: Some("new-id".into()),
        device_id: Some("device-B".into()),
        user_id: None,
    });
    obs.deduplicated.clear();
    let v = check(&obs, &CheckOptions::default());
    assert!(
        failing(&v).contains(&"retries_keep_insert_id"),
        "{:?}",
        failing(&v)
    );
}

#[test]
fn planted_hold_back_of_non_throttled_event_is_caught() {
    let mut obs = correct_run();
    obs.requests[1].at_ms = T + 30_010; // device B's event waited for A's pause
    obs.requests[2].at_ms = T + 30_015;
    let v = check(&obs, &CheckOptions::default());
    assert!(
        failing(&v).contains(&"non_throttled_resent_promptly"),
        "{:?}",
        failing(&v)
    );
}

#[test]
fn planted_false_delivery_claim_is_caught() {
    let mut obs = correct_run();
    obs.outcomes[0].outcome = "delivered".into();
    let v = check(&obs, &CheckOptions::default());
    // The invalid event claimed delivered was also never reported as dropped.
    assert_eq!(
        failing(&v),
        vec!["sender_reports_truthful", "refused_events_reported"]
    );
}

/// A device the application drove past 900 events in 30 s (spec §8.1) may be paced by the
/// sender without a 429; its wait is not a cold identity's delay. One event of a quiet
/// device held back as long still is.
#[test]
fn pacing_an_over_budget_device_is_not_a_cold_delay() {
    let hot = |seq| Attempted {
        seq,
        produced_at_ms: T + seq as i64,
        device_id: Some("device-hot".into()),
        user_id: None,
        invalid: false,
        has_user_properties: false,
        bytes: 100,
    };
    let mut attempted: Vec<Attempted> = (0..901).map(hot).collect();
    attempted.push(Attempted {
        device_id: Some("device-cold".into()),
        ..hot(901)
    });
    let store = |seq: u64, dev: &str, at_ms| Stored {
        storage_seq: seq,
        request_id: 1,
        at_ms,
        seq: Some(seq),
        insert_id: Some(format!("ins-{seq}")),
        device_id: Some(dev.to_owned()),
        user_id: None,
    };
    let mut stored: Vec<Stored> = (0..900)
        .map(|s| store(s, "device-hot", T + 1_000))
        .collect();
    stored.push(store(900, "device-hot", T + 31_000));
    let ok_req = Request {
        id: 1,
        at_ms: T + 1_000,
        path: "/2/httpapi".into(),
        status: 200,
        ..Default::default()
    };
    let mut obs = Observation {
        attempted,
        stored,
        requests: vec![ok_req],
        deduplicated: vec![],
        property_drops: vec![],
        outcomes: vec![],
        sender_exited: true,
        endpoint_path: "/2/httpapi".into(),
        ..Observation::default()
    };
    obs.stored.push(store(901, "device-cold", T + 1_000));
    let v = check(&obs, &CheckOptions::default());
    assert!(
        v.check("cold_identities_not_delayed")
            .is_some_and(|c| c.passed && c.count == 0),
        "{v:#?}"
    );
    // The quiet device held back 30 s after a 429 that named only the hot device is still
    // caught.
    if let Some(s) = obs.stored.last_mut() {
        s.at_ms = T + 31_000;
    }
    let mut throttle = ResponseBody::too_many_requests(30);
    throttle.throttled_devices = Some([("device-hot".to_owned(), 31)].into_iter().collect());
    throttle.throttled_events = Some(vec![0]);
    obs.requests.insert(
        0,
        Request {
            id: 0,
            at_ms: T + 500,
            path: "/2/httpapi".into(),
            status: 429,
            events: vec![SentEvent {
                seq: Some(0),
                insert_id: Some("ins-0".into()),
                device_id: Some("device-hot".into()),
                user_id: None,
            }],
            response: Some(throttle),
            ..Default::default()
        },
    );
    let v = check(&obs, &CheckOptions::default());
    assert_eq!(failing(&v), vec!["cold_identities_not_delayed"], "{v:#?}");
}

/// Contract 3: a crash-restart. Seqs 0-3 were fed to the process killed at 2.2 s (restart 1):
/// 0 was delivered before the kill, 1 was never sent, 2 got a 503 before the kill and was
/// never sent again, 3 was sent again by the next process and failed there. Seq 4 was fed to
/// the new process and delivered. Only 1 and 2 are the restart's losses; 3 is an ordinary
/// loss; the run fails `no_lost_events` with the restart named.
#[test]
fn a_loss_a_restart_caused_is_explained_and_counted() {
    let attempted = (0..5)
        .map(|seq| Attempted {
            seq,
            produced_at_ms: T + seq as i64 * 100,
            device_id: Some("device-A".into()),
            user_id: None,
            invalid: false,
            has_user_properties: false,
            bytes: 100,
        })
        .collect();
    let req = |id, at_ms, status, seqs: &[u64]| Request {
        id,
        at_ms,
        path: "/2/httpapi".into(),
        status,
        events: seqs.iter().map(|s| sent(*s, "device-A")).collect(),
        response: Some(if status == 200 {
            ResponseBody::success(seqs.len() as u64, 10, T)
        } else {
            ResponseBody::error(status, "Service unavailable")
        }),
        ..Default::default()
    };
    let store = |seq: u64, request_id| Stored {
        storage_seq: seq,
        request_id,
        at_ms: T,
        seq: Some(seq),
        insert_id: Some(format!("ins-{seq}")),
        device_id: Some("device-A".into()),
        user_id: None,
    };
    let kill = T + 2_200;
    let mut obs = Observation {
        attempted,
        stored: vec![store(0, 1), store(4, 4)],
        requests: vec![
            req(1, T + 100, 200, &[0]),
            req(2, T + 2_000, 503, &[2]),
            req(3, kill + 100, 503, &[3]),
            req(4, kill + 500, 200, &[4]),
        ],
        outcomes: vec![SenderOutcome {
            seq: 0,
            outcome: "delivered".into(),
            reason: None,
        }],
        sender_exited: true,
        endpoint_path: "/2/httpapi".into(),
        restarts: vec![Restart {
            number: 1,
            at_ms: kill,
            at_run_ms: 2_200,
            fed: vec![0, 1, 2, 3],
            had_exited: false,
        }],
        ..Observation::default()
    };
    let v = check(&obs, &CheckOptions::default());
    assert_eq!(failing(&v), vec!["no_lost_events"], "{v:#?}");
    let e = &v.events;
    assert_eq!(
        (e.stored, e.lost, e.lost_silently, e.lost_at_restart),
        (2, 3, 3, 2)
    );
    let lost = v.check("no_lost_events").unwrap();
    assert_eq!(
        lost.examples,
        vec![
            "seq 1 lost: in the sender's memory when it was killed at 2.2 s (restart 1): never \
             sent; no process sent it after the kill and none wrote an outcome line for it \
             (silent loss)",
            "seq 2 lost: in the sender's memory when it was killed at 2.2 s (restart 1): sent 1 \
             time(s) before the kill, the last, request #2, got 503; no process \
              sent it after the kill and none wrote an outcome line for it (silent loss)",
            "seq 3 lost: sent 1 time(s); the last, request #3 got 503, was never \
              followed by a successful retry; the sender never reported it (silent loss)",
        ]
    );
    // An outcome line from the killed process makes it the sender's own report, not the
    // restart's loss.
    obs.outcomes.push(SenderOutcome {
        seq: 1,
        outcome: "dropped".into(),
        reason: Some("gave up".into()),
    });
    let v = check(&obs, &CheckOptions::default());
    assert_eq!(v.events.lost_at_restart, 1);
    // Without the restart record the same losses are plain ones.
    obs.restarts.clear();
    let v = check(&obs, &CheckOptions::default());
    assert_eq!((v.events.lost, v.events.lost_at_restart), (3, 0));
}

/// Contract 3: an event stored before a kill and sent again by the restarted sender with a
/// new insert_id is stored twice, and the explanation names the restart.
#[test]
fn a_resend_with_a_new_insert_id_after_a_restart_is_a_duplicate() {
    let attempted = vec![Attempted {
        seq: 0,
        produced_at_ms: T,
        device_id: Some("device-A".into()),
        user_id: None,
        invalid: false,
        has_user_properties: false,
        bytes: 100,
    }];
    let req = |id, at_ms, insert_id: &str| Request {
        id,
        at_ms,
        path: "/batch".into(),
        status: 200,
        events: vec![SentEvent {
            insert_id: Some(insert_id.into()),
            ..sent(0, "device-A")
        }],
        response: Some(ResponseBody::success(1, 10, T)),
        ..Default::default()
    };
    let store = |storage_seq, request_id, at_ms, insert_id: &str| Stored {
        storage_seq,
        request_id,
        at_ms,
        seq: Some(0),
        insert_id: Some(insert_id.into()),
        device_id: Some("device-A".into()),
        user_id: None,
    };
    let kill = T + 2_200;
    let obs = Observation {
        attempted,
        stored: vec![store(1, 1, T + 100, "a"), store(2, 2, kill + 50, "b")],
        requests: vec![req(1, T + 100, "a"), req(2, kill + 50, "b")],
        sender_exited: true,
        endpoint_path: "/batch".into(),
        restarts: vec![Restart {
            number: 1,
            at_ms: kill,
            at_run_ms: 2_200,
            fed: vec![0],
            had_exited: false,
        }],
        ..Observation::default()
    };
    let v = check(&obs, &CheckOptions::default());
    assert_eq!(failing(&v), vec!["no_duplicates_stored"], "{v:#?}");
    assert_eq!(
        v.check("no_duplicates_stored").unwrap().examples,
        vec![
            "seq 0 stored 2 times: stored before the sender was killed at 2.2 s (restart 1), sent \
             again after it with a new or missing insert_id (insert_ids [\"a\", \"b\"])"
        ]
    );
    assert_eq!((v.events.lost, v.events.lost_at_restart), (0, 0));
}
