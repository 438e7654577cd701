//! The sender's pure state machine, one test per response branch, in virtual time.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use amplitude_sender::{Core, CoreConfig, Effect, Endpoint, HttpResult, OutRequest, QueuedEvent};
use amplitude_wire::{Event, UploadRequest};
use serde_json::json;

fn ev(key: u64, dev: &str) -> QueuedEvent {
    QueuedEvent::prepare(key, Event::new("A").with_device_id(dev)).unwrap()
}

fn cfg() -> CoreConfig {
    let mut c = CoreConfig::new("KEY", Endpoint::HttpV2);
    c.flush_interval_ms = 100;
    c.identity_eps_limit = None;
    c
}

fn resp(status: u16, body: serde_json::Value) -> HttpResult {
    HttpResult::Response {
        status,
        body: body.to_string().into_bytes(),
    }
}

fn ok() -> HttpResult {
    resp(
        200,
        json!({"code":200,"events_ingested":1,"payload_size_bytes":1,"server_upload_time":1}),
    )
}

/// Polls at `now`, then at each wakeup, until the core sends: (send time, request).
fn next_request(core: &mut Core, mut now: u64) -> (u64, OutRequest) {
    for _ in 0..1_000 {
        if let Some(r) = core.poll_send(now) {
            return (now, r);
        }
        let next = core
            .next_wakeup()
            .expect("queued events but nothing scheduled");
        assert!(next > now, "time must move forward");
        now = next;
    }
    panic!("no request after 1,000 wakeups");
}

fn parsed(req: &OutRequest) -> UploadRequest {
    serde_json::from_slice(&req.body).unwrap()
}

fn devices(req: &OutRequest) -> Vec<String> {
    parsed(req)
        .events
        .unwrap()
        .into_iter()
        .map(|e| e.device_id.unwrap())
        .collect()
}

fn insert_ids(req: &OutRequest) -> Vec<String> {
    parsed(req)
        .events
        .unwrap()
        .into_iter()
        .map(|e| e.insert_id.unwrap())
        .collect()
}

fn delivered(effects: &[Effect]) -> Vec<u64> {
    effects
        .iter()
        .flat_map(|e| match e {
            Effect::Delivered(v) => v.iter().map(|q| q.key).collect(),
            _ => vec![],
        })
        .collect()
}

fn dead(effects: &[Effect]) -> Vec<(u64, String)> {
    effects
        .iter()
        .flat_map(|e| match e {
            Effect::DeadLettered(v) => v.iter().map(|(q, r)| (q.key, r.clone())).collect(),
            _ => vec![],
        })
        .collect()
}

#[test]
fn waits_for_the_flush_interval_then_sends_and_confirms_on_200() {
    // spec §4: a 200 confirms every event of the request
    let mut core = Core::new(cfg());
    for k in 0..5 {
        core.enqueue(ev(k, "dev-1"), 0);
    }
    assert!(core.poll_send(0).is_none());
    assert_eq!(core.next_wakeup(), Some(100));
    let req = core.poll_send(100).unwrap();
    assert_eq!(req.keys, vec![0, 1, 2, 3, 4]);
    assert_eq!(parsed(&req).api_key.as_deref(), Some("KEY"));
    core.on_response(req.id, &ok(), 120);
    assert_eq!(delivered(&core.drain_effects()), vec![0, 1, 2, 3, 4]);
    assert!(core.is_idle());
    assert_eq!(core.stats().delivered, 5);
}

#[test]
fn batches_respect_the_count_and_byte_limits_of_the_endpoint() {
    // spec §3.4: at most 2,000 events and under 1 MB for /2/httpapi, under 20 MB for /batch
    let mut c = cfg();
    c.batch_size = 5_000; // clamped to 2,000
    let mut core = Core::new(c.clone());
    core.set_flushing();
    for k in 0..2_500 {
        core.enqueue(ev(k, &format!("dev-{}", k % 50)), 0);
    }
    let first = core.poll_send(0).unwrap();
    assert_eq!(first.keys.len(), 2_000);
    assert!(first.body.len() < 1_000_000);
    // big events: ~900 bytes each, so bytes bind before the count
    let pad = "x".repeat(850);
    let big = |k: u64| {
        let mut e = Event::new("A").with_device_id(format!("dev-{}", k % 7));
        e.event_properties = Some(serde_json::from_value(json!({ "pad": pad })).unwrap());
        QueuedEvent::prepare(k, e).unwrap()
    };
    let mut core = Core::new(c.clone());
    core.set_flushing();
    for k in 0..3_000 {
        core.enqueue(big(k), 0);
    }
    let r = core.poll_send(0).unwrap();
    assert!(r.body.len() < 1_000_000, "{}", r.body.len());
    assert!(
        r.body.len() > 990_000,
        "batch should be nearly full: {}",
        r.body.len()
    );
    assert_eq!(parsed(&r).events.unwrap().len(), r.keys.len());
    // the same events on /batch fit 2,000 per request (under 20 MB)
    let mut b = CoreConfig::new("KEY", Endpoint::Batch);
    b.batch_size = 2_000;
    b.identity_eps_limit = None;
    let mut core = Core::new(b);
    core.set_flushing();
    for k in 0..3_000 {
        core.enqueue(big(k), 0);
    }
    let r = core.poll_send(0).unwrap();
    assert_eq!(r.keys.len(), 2_000);
    assert!(r.body.len() < 20_000_000);
}

#[test]
fn an_event_too_large_for_any_request_is_dead_lettered_unsent() {
    // spec §3.4: never post a body of 1 MB or more
    let mut core = Core::new(cfg());
    let mut e = Event::new("A").with_device_id("dev-1");
    e.event_properties =
        Some(serde_json::from_value(json!({ "pad": "y".repeat(1_000_000) })).unwrap());
    core.enqueue(QueuedEvent::prepare(9, e).unwrap(), 0);
    let d = dead(&core.drain_effects());
    assert_eq!(d.len(), 1);
    assert!(d[0].1.contains("spec §3.4"));
    assert!(core.is_idle());
}

#[test]
fn invalid_api_key_stops_the_project_and_dead_letters_everything() {
    // spec §5.1 / §7: invalid key -> stop sending for the project, dead-letter with the reason
    let mut c = cfg();
    c.batch_size = 2;
    let mut core = Core::new(c);
    for k in 0..5 {
        core.enqueue(ev(k, &format!("dev-{k}")), 0);
    }
    let req = core.poll_send(0).unwrap();
    core.on_response(
        req.id,
        &resp(400, json!({"code":400,"error":"Invalid API key: KEY"})),
        10,
    );
    let effects = core.drain_effects();
    assert!(effects
        .iter()
        .any(|e| matches!(e, Effect::ProjectStopped(r) if r.contains("Invalid API key"))));
    let d = dead(&effects);
    assert_eq!(d.len(), 5, "the request's and the queued events");
    assert!(d.iter().all(|(_, r)| r.contains("Invalid API key: KEY")));
    assert!(core.poll_send(1_000).is_none());
    core.enqueue(ev(10, "dev-x"), 20);
    assert_eq!(dead(&core.drain_effects()).len(), 1);
    assert!(core.stopped().is_some());
    assert!(core.is_idle());
}

#[test]
fn missing_field_stops_the_project() {
    // spec §5.1: request-level missing_field
    let mut core = Core::new(cfg());
    core.enqueue(ev(0, "dev-1"), 0);
    let req = core.poll_send(100).unwrap();
    core.on_response(
        req.id,
        &resp(
            400,
            json!({"code":400,"error":"Request missing required field","missing_field":"api_key"}),
        ),
        110,
    );
    let d = dead(&core.drain_effects());
    assert_eq!(d.len(), 1);
    assert!(d[0].1.contains("missing_field api_key"));
}

#[test]
fn a_400_with_indexes_dead_letters_exactly_those_and_resends_the_rest_at_once() {
    // spec §5.1 / §6: remove the listed events and resend the rest
    let mut core = Core::new(cfg());
    for k in 0..6 {
        core.enqueue(ev(k, &format!("dev-{}", k % 2)), 0);
    }
    let req = core.poll_send(100).unwrap();
    let ids_before = insert_ids(&req);
    let body = json!({"code":400,"error":"Invalid field values on some events",
        "events_with_invalid_fields":{"time":[req.keys.iter().position(|&k| k == 1).unwrap()]},
        "events_with_missing_fields":{"event_type":[req.keys.iter().position(|&k| k == 4).unwrap()]},
        "events_with_invalid_id_lengths":{"user_id":[]},
        "silenced_events":[req.keys.iter().position(|&k| k == 5).unwrap()]});
    core.on_response(req.id, &resp(400, body), 150);
    let mut d = dead(&core.drain_effects());
    d.sort();
    assert_eq!(d.iter().map(|x| x.0).collect::<Vec<_>>(), vec![1, 4, 5]);
    assert!(d[0].1.contains("events_with_invalid_fields.time"));
    assert!(d[1].1.contains("events_with_missing_fields.event_type"));
    assert!(d[2].1.contains("silenced_events"));
    let again = core.poll_send(150).expect("resent at once, no backoff");
    let mut keys = again.keys.clone();
    keys.sort();
    assert_eq!(keys, vec![0, 2, 3]);
    for id in insert_ids(&again) {
        assert!(
            ids_before.contains(&id),
            "same insert_id on resend (spec §9)"
        );
    }
}

#[test]
fn a_413_halves_the_batch_and_a_lone_event_is_retried_then_dead_lettered() {
    // spec §5.3: split and retry at once; a single event that is still refused is resent with
    // backoff 3 times (it fits the documented limit, so the 413 may be transient), then dropped
    let mut core = Core::new(cfg());
    for k in 0..8 {
        core.enqueue(ev(k, "dev-1"), 0);
    }
    let too_large = resp(413, json!({"code":413,"error":"Payload too large"}));
    let r = core.poll_send(100).unwrap();
    assert_eq!(r.keys.len(), 8);
    core.on_response(r.id, &too_large, 110);
    let r = core.poll_send(110).unwrap();
    assert_eq!(r.keys, vec![0, 1, 2, 3], "first half, in order");
    core.on_response(r.id, &too_large, 120);
    let r = core.poll_send(120).unwrap();
    assert_eq!(r.keys, vec![0, 1]);
    core.on_response(r.id, &ok(), 130);
    let r = core.poll_send(130).unwrap();
    assert_eq!(r.keys, vec![2, 3]);
    core.on_response(r.id, &too_large, 140);
    let r = core.poll_send(140).unwrap();
    assert_eq!(r.keys, vec![2]);
    core.on_response(r.id, &too_large, 150);
    let mut now = 150;
    let mut sent_at = vec![];
    for _ in 0..3 {
        assert!(dead(&core.drain_effects()).is_empty());
        assert!(
            core.poll_send(now + 149).is_none(),
            "backoff of at least 150 ms"
        );
        let (t, r) = next_request(&mut core, now);
        assert_eq!(r.keys, vec![2], "the lone event again, not its successors");
        sent_at.push(t - now);
        now = t + 10;
        core.on_response(r.id, &too_large, now);
    }
    assert_eq!(
        sent_at,
        vec![150, 186, 560],
        "backoff: at least 150 ms, full jitter"
    );
    let d = dead(&core.drain_effects());
    assert_eq!(d.iter().map(|x| x.0).collect::<Vec<_>>(), vec![2]);
    assert_eq!(
        d[0].1,
        "413 Payload too large; refused 4 times alone in its request (1 + 3 retries with backoff)"
    );
    let (now, r) = next_request(&mut core, now);
    assert_eq!(r.keys, vec![3], "event 3 kept its halved cap");
    core.on_response(r.id, &ok(), now + 10);
    let r = core.poll_send(now + 10).unwrap();
    assert_eq!(
        r.keys,
        vec![4, 5, 6, 7],
        "events never split keep the full cap"
    );
    assert_eq!(core.stats().splits, 3);
    assert_eq!(core.stats().refused_requests, 4);
}

#[test]
fn a_429_pauses_only_the_throttled_identity_and_resends_the_others_at_once() {
    // spec §5.4 / §6: throttled_events wait 30 s from the identity's last 429; others resend now
    let mut core = Core::new(cfg());
    for k in 0..4 {
        core.enqueue(
            ev(
                k,
                if k % 2 == 0 {
                    "hot-device"
                } else {
                    "cold-device"
                },
            ),
            0,
        );
    }
    let r = core.poll_send(100).unwrap();
    let hot_idx: Vec<usize> = devices(&r)
        .iter()
        .enumerate()
        .filter(|(_, d)| *d == "hot-device")
        .map(|(i, _)| i)
        .collect();
    let mut body = json!({"code":429,"error":"Too many requests for some devices and users","eps_threshold":30,
        "throttled_devices":{"hot-device":31},"throttled_users":{},"throttled_events":hot_idx,
        "exceeded_daily_quota_users":{},"exceeded_daily_quota_devices":{}});
    core.on_response(r.id, &resp(429, body.clone()), 1_000);
    let r2 = core.poll_send(1_000).expect("cold events resent at once");
    assert_eq!(devices(&r2), vec!["cold-device", "cold-device"]);
    assert!(core.poll_send(1_000).is_none());
    core.on_response(r2.id, &ok(), 1_050);
    assert!(core.poll_send(30_999).is_none(), "hot device paused 30 s");
    assert_eq!(core.next_wakeup(), Some(31_000));
    let r3 = core.poll_send(31_000).unwrap();
    assert_eq!(r3.keys, vec![0, 2]);
    // a second 429 restarts the 30 s from this one
    body["throttled_events"] = json!([0, 1]);
    core.on_response(r3.id, &resp(429, body), 31_500);
    assert!(core.poll_send(61_499).is_none());
    let r4 = core.poll_send(61_500).unwrap();
    core.on_response(r4.id, &ok(), 61_600);
    assert_eq!(delivered(&core.drain_effects()), vec![1, 3, 0, 2]);
    assert_eq!(core.stats().throttled_events, 4);
}

#[test]
fn a_429_by_user_pauses_that_users_events_on_every_device() {
    // spec §5.4: throttled_users keys are raw user_ids
    let mut core = Core::new(cfg());
    let mk = |k: u64, dev: &str, user: &str| {
        QueuedEvent::prepare(k, Event::new("A").with_device_id(dev).with_user_id(user)).unwrap()
    };
    core.enqueue(mk(0, "dev-a", "user-hot"), 0);
    core.enqueue(mk(1, "dev-b", "user-hot"), 0);
    core.enqueue(mk(2, "dev-c", "user-cold"), 0);
    let r = core.poll_send(100).unwrap();
    core.on_response(r.id, &resp(429, json!({"code":429,"eps_threshold":30,"throttled_users":{"user-hot":40},"throttled_devices":{},"throttled_events":[]})), 200);
    let r2 = core.poll_send(200).unwrap();
    assert_eq!(r2.keys, vec![2]);
    assert!(core.poll_send(30_199).is_none());
    assert_eq!(core.poll_send(30_200).unwrap().keys.len(), 2);
}

#[test]
fn daily_quota_identities_wait_for_the_quota_window_instead_of_being_dropped() {
    // spec §5.4, §8.1: exceeded_daily_quota_* -> wait (SDKs drop, spec §7)
    let mut core = Core::new(cfg());
    core.enqueue(ev(0, "dev-q"), 0);
    let r = core.poll_send(100).unwrap();
    core.on_response(r.id, &resp(429, json!({"code":429,"eps_threshold":1000,"throttled_devices":{},"throttled_users":{},
        "exceeded_daily_quota_devices":{"dev-q":500900},"exceeded_daily_quota_users":{},"throttled_events":[0]})), 100);
    let effects = core.drain_effects();
    assert!(dead(&effects).is_empty());
    assert!(effects
        .iter()
        .any(|e| matches!(e, Effect::Warning(w) if w.contains("daily quota"))));
    assert!(core.poll_send(3_600_099).is_none());
    assert_eq!(core.poll_send(3_600_100).unwrap().keys, vec![0]);
}

#[test]
fn a_429_naming_nothing_holds_the_whole_request() {
    // spec §5.4; spec §7 notes Go loops tightly without throttled_events
    let mut core = Core::new(cfg());
    core.enqueue(ev(0, "dev-1"), 0);
    let r = core.poll_send(100).unwrap();
    core.on_response(r.id, &resp(429, json!({"code":429})), 100);
    assert!(core.poll_send(30_099).is_none());
    assert!(core.poll_send(30_100).is_some());
}

#[test]
fn transient_failures_retry_with_capped_jittered_backoff_and_the_same_insert_ids() {
    // spec §5.5 / §5.6: 5xx, timeouts, resets, bad bodies -> retry, same insert_id
    let mut c = cfg();
    c.backoff.base_ms = 100;
    c.backoff.cap_ms = 800;
    let mut core = Core::new(c);
    core.enqueue(ev(0, "dev-1"), 0);
    let mut now = 100;
    let first = core.poll_send(now).unwrap();
    let ids = insert_ids(&first);
    let failures = [
        resp(500, json!({"code":500})),
        resp(503, json!({})),
        HttpResult::Transport("connection reset".into()),
        HttpResult::Response {
            status: 502,
            body: b"<html>bad gateway</html>".to_vec(),
        },
        HttpResult::Response {
            status: 200,
            body: b"{\"code\":200,\"events_in".to_vec(),
        },
        resp(504, json!({"code":504})),
    ];
    let mut req = first;
    let mut waits = vec![];
    for (n, f) in failures.iter().enumerate() {
        core.on_response(req.id, f, now);
        let (wake, r) = next_request(&mut core, now);
        // full jitter under the ceiling, never under the 150 ms floor
        let ceiling = (100u64 << n).clamp(150, 800);
        assert!(
            wake >= now + 150 && wake <= now + ceiling,
            "attempt {n}: {wake} vs {now}+{ceiling}"
        );
        waits.push(wake - now);
        now = wake;
        req = r;
        assert_eq!(insert_ids(&req), ids);
    }
    assert_eq!(waits, vec![150, 150, 352, 749, 643, 705]);
    core.on_response(req.id, &ok(), now);
    assert_eq!(delivered(&core.drain_effects()), vec![0]);
    assert_eq!(core.stats().retries, 6);
}

#[test]
fn a_retry_limit_only_moves_events_to_the_dead_letters() {
    // issue: a limit never loses events, it dead-letters them with the reason
    let mut c = cfg();
    c.max_attempts = Some(3);
    let mut core = Core::new(c);
    core.enqueue(ev(0, "dev-1"), 0);
    let mut now = 100;
    for _ in 0..3 {
        let (t, r) = next_request(&mut core, now);
        core.on_response(r.id, &resp(503, json!({"code":503})), t);
        now = t;
    }
    let d = dead(&core.drain_effects());
    assert_eq!(d.len(), 1);
    assert!(
        d[0].1.contains("gave up after 3 attempts") && d[0].1.contains("503"),
        "{}",
        d[0].1
    );
    assert!(core.is_idle());
}

#[test]
fn one_device_never_has_two_requests_in_flight_and_keeps_its_order() {
    // spec §9: HTTP V2 processes a device's events in the order received
    let mut c = cfg();
    c.batch_size = 3;
    let mut core = Core::new(c);
    core.set_flushing();
    for k in 0..7 {
        core.enqueue(ev(k, "dev-1"), 0);
    }
    core.enqueue(ev(7, "dev-2"), 0);
    let a = core.poll_send(0).unwrap();
    let b = core.poll_send(0).unwrap();
    assert_eq!(a.keys, vec![0, 1, 2]);
    assert_eq!(
        b.keys,
        vec![7],
        "other identity flows while dev-1 is in flight"
    );
    assert!(core.poll_send(0).is_none());
    core.on_response(a.id, &resp(503, json!({})), 10);
    core.on_response(b.id, &ok(), 10);
    let mut now = 10;
    let c2 = loop {
        if let Some(r) = core.poll_send(now) {
            break r;
        }
        now = core.next_wakeup().unwrap();
    };
    assert!(now <= 10 + 200, "first backoff is at most base_ms");
    assert_eq!(c2.keys, vec![0, 1, 2]);
}

#[test]
fn pacing_keeps_a_device_under_its_documented_rate() {
    // spec §8.1 / §8.3: 30 events/s per device averaged over 30 s -> at most 900 per window
    let mut c = cfg();
    c.identity_eps_limit = Some(30);
    c.batch_size = 2_000;
    let mut core = Core::new(c);
    core.set_flushing();
    for k in 0..2_000 {
        core.enqueue(ev(k, "hot"), 0);
    }
    let r = core.poll_send(0).unwrap();
    assert_eq!(r.keys.len(), 900);
    core.on_response(r.id, &ok(), 40);
    assert!(core.poll_send(30_039).is_none());
    let r = core.poll_send(30_040).unwrap();
    assert_eq!(r.keys.len(), 900);
    // a lower eps_threshold in a 429 lowers the pace (spec §8.2)
    core.on_response(r.id, &resp(429, json!({"code":429,"eps_threshold":10,"throttled_devices":{"hot":40},"throttled_events":[0]})), 30_100);
    assert_eq!(core.eps_limit(), Some(10));
    let r = core.poll_send(60_100).unwrap();
    assert_eq!(r.keys.len(), 300);
}

#[test]
fn property_updates_past_the_hourly_budget_are_held_when_asked() {
    // spec §8.1: 1,800 user-property updates per hour; past it Amplitude drops them silently
    let mut c = cfg();
    c.property_updates_per_window = Some(10);
    c.property_warn_ratio = 0.8;
    c.hold_property_updates = true;
    let mut core = Core::new(c);
    core.set_flushing();
    for k in 0..12 {
        let e: Event = serde_json::from_value(json!({"event_type":"$identify","user_id":"user-1","device_id":"dev-1","user_properties":{"$set":{"n":k}}})).unwrap();
        core.enqueue(QueuedEvent::prepare(k, e).unwrap(), 0);
    }
    core.enqueue(ev(12, "dev-2"), 0);
    let r = core.poll_send(0).unwrap();
    assert_eq!(r.keys.len(), 11, "10 updates + the other device's event");
    let effects = core.drain_effects();
    assert_eq!(
        effects
            .iter()
            .filter(|e| matches!(e, Effect::Warning(w) if w.contains("user-1")))
            .count(),
        1
    );
    assert_eq!(core.stats().property_budget_warnings, 1);
    core.on_response(r.id, &ok(), 100);
    assert!(core.poll_send(3_600_099).is_none());
    assert_eq!(core.poll_send(3_600_100).unwrap().keys, vec![10, 11]);
}

#[test]
fn property_updates_past_the_hourly_budget_are_sent_with_a_warning_by_default() {
    // spec §8.1: past the cap Amplitude stores the event and drops only its update, so the
    // default sends it (no hour-long delay) and says so
    let mut c = cfg();
    c.property_updates_per_window = Some(10);
    c.property_warn_ratio = 0.8;
    let mut core = Core::new(c);
    core.set_flushing();
    for k in 0..12 {
        let e: Event = serde_json::from_value(json!({"event_type":"$identify","user_id":"user-1","device_id":"dev-1","user_properties":{"$set":{"n":k}}})).unwrap();
        core.enqueue(QueuedEvent::prepare(k, e).unwrap(), 0);
    }
    let r = core.poll_send(0).unwrap();
    assert_eq!(r.keys.len(), 12);
    let warnings: Vec<String> = core
        .drain_effects()
        .into_iter()
        .filter_map(|e| match e {
            Effect::Warning(w) if w.contains("user-1") => Some(w),
            _ => None,
        })
        .collect();
    assert_eq!(warnings.len(), 2, "{warnings:?}");
    assert!(warnings[1].contains("silently drop"), "{warnings:?}");
    assert_eq!(core.stats().property_budget_warnings, 2);
}

#[test]
fn consecutive_set_identifies_of_one_user_can_be_coalesced() {
    // spec §8.1: fewer property updates per hour; spec §3.3: later $set values win
    let mut c = cfg();
    c.coalesce_set_identify = true;
    let mut core = Core::new(c);
    let identify = |k: u64, set: serde_json::Value| {
        let e: Event = serde_json::from_value(json!({"event_type":"$identify","user_id":"user-1","device_id":"dev-1","user_properties":{"$set":set}})).unwrap();
        QueuedEvent::prepare(k, e).unwrap()
    };
    core.enqueue(identify(0, json!({"a":1,"b":1})), 0);
    core.enqueue(identify(1, json!({"b":2})), 0);
    core.enqueue(identify(2, json!({"c":3})), 0);
    core.enqueue(ev(3, "dev-1"), 0); // not a $set identify: breaks the run
    core.enqueue(identify(4, json!({"d":4})), 0);
    let effects = core.drain_effects();
    let absorbed: Vec<u64> = effects
        .iter()
        .filter_map(|e| match e {
            Effect::Coalesced { into, absorbed } => {
                assert_eq!(into.key, 0);
                Some(absorbed.key)
            }
            _ => None,
        })
        .collect();
    assert_eq!(absorbed, vec![1, 2]);
    let r = core.poll_send(100).unwrap();
    assert_eq!(r.keys, vec![0, 3, 4]);
    let sent = parsed(&r).events.unwrap();
    assert_eq!(
        serde_json::to_value(&sent[0].user_properties).unwrap(),
        json!({"$set":{"a":1,"b":2,"c":3}})
    );
    // an event already sent once is never changed (its insert_id may be stored)
    core.on_response(r.id, &resp(503, json!({})), 100);
    core.enqueue(identify(5, json!({"e":5})), 100);
    assert!(core
        .drain_effects()
        .iter()
        .all(|e| !matches!(e, Effect::Coalesced { .. })));
    assert_eq!(core.stats().coalesced, 2);
}

#[test]
fn a_400_naming_no_event_is_retried_whole_then_bisected_with_backoff_down_to_the_culprit() {
    // spec §5.1: a 400 that names nothing may be transient: resend the whole batch 3 times with
    // backoff, then bisect one step per refusal (with backoff), and dead-letter an event only
    // when it is refused alone 1 + 3 times; the others are delivered
    let mut core = Core::new(cfg());
    core.set_flushing();
    for k in 0..8 {
        core.enqueue(ev(k, "dev-1"), 0);
    }
    let refused = resp(400, json!({"code":400,"error":"Invalid request body"}));
    let mut now = 0;
    let mut sent = Vec::new();
    let mut answered_at: Option<(u64, bool)> = None;
    while !core.is_idle() {
        let (t, r) = next_request(&mut core, now);
        if let Some((at, true)) = answered_at {
            assert!(t >= at + 150, "resent {} ms after a refusal", t - at);
        }
        let bad = r.keys.contains(&5);
        now = t + 20;
        let answer = if bad { refused.clone() } else { ok() };
        core.on_response(r.id, &answer, now);
        answered_at = Some((now, bad));
        sent.push(r.keys);
    }
    let all: Vec<u64> = (0..8).collect();
    assert_eq!(
        sent,
        vec![
            all.clone(),
            all.clone(),
            all.clone(),
            all,
            vec![0, 1, 2, 3],
            vec![4, 5, 6, 7],
            vec![4, 5],
            vec![4],
            vec![5],
            vec![5],
            vec![5],
            vec![5],
            vec![6, 7],
        ]
    );
    let effects = core.drain_effects();
    assert_eq!(delivered(&effects), vec![0, 1, 2, 3, 4, 6, 7]);
    assert_eq!(
        dead(&effects),
        vec![(
            5,
            "400 without event indexes: {\"code\":400,\"error\":\"Invalid request body\"}; refused 4 times alone in its request (1 + 3 retries with backoff)".to_owned()
        )]
    );
    assert_eq!(core.stats().refused_requests, 10);
    assert_eq!(core.stats().splits, 3);
}
