//! Per-identity EPS throttling over real HTTP (spec §5.4, §6, §8.1-§8.3, §14.1 #11), in
//! virtual time: no test sleeps.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test code: failing loudly is the point

use crate::common::*;
use amplitude_mock::{FidelityProfile, Limits, MockServer, ProjectConfig, Region};
use serde_json::{json, Value};

const TOO_MANY: &str = "Too many requests for some devices and users";

/// Limits small enough for a handful of events to trip them.
fn small(eps_v2: u32, eps_batch: u32) -> Limits {
    Limits {
        eps_threshold_http_v2: eps_v2,
        eps_threshold_batch: eps_batch,
        ..Limits::default()
    }
}

fn user_ev(user: &str, device: Option<&str>, insert_id: &str) -> Value {
    let mut e = json!({"user_id": user, "event_type": "tick", "insert_id": insert_id});
    if let Some(d) = device {
        e["device_id"] = json!(d);
    }
    e
}

#[tokio::test]
async fn v11_device_over_30_eps_gets_the_exact_429_and_nothing_is_stored() {
    // spec §14.1 #11, §5.4 (exact V2 body), §8.2 (rate = ceil(count / 30)), §6 (nothing stored)
    let mock = mock().await;
    let (s, v) = post(&mock, "/2/httpapi", &upload(&events(901, "device-hot"))).await;
    assert_eq!((s, v["events_ingested"].clone()), (200, json!(901)));
    let req = upload(&[
        ev("device-a", "a-0"),
        ev("device-b", "b-0"),
        ev("device-c", "c-0"),
        ev("device-hot", "hot-x"),
    ]);
    let (s, v) = post(&mock, "/2/httpapi", &req).await;
    assert_eq!(s, 429);
    assert_eq!(
        v,
        json!({
            "code": 429,
            "error": TOO_MANY,
            "eps_threshold": 30,
            "throttled_devices": {"device-hot": 31},
            "throttled_users": {},
            "throttled_events": [3]
        })
    );
    assert_eq!(mock.events().len(), 901);
    let stats = mock.stats();
    assert_eq!(stats.events_throttled, 4);
    assert_eq!(
        stats
            .events_rejected
            .by_reason
            .get(&amplitude_mock::RejectReason::Throttled),
        Some(&4)
    );
    assert_eq!(
        stats
            .requests_by_status
            .get(&amplitude_mock::StatusKey::Status(429)),
        Some(&1)
    );
    assert_eq!(stats.events_stored, 901);
}

#[tokio::test]
async fn exactly_30_eps_is_not_throttled() {
    // spec §8.3: throttled only when the 30-s average *exceeds* the threshold (900 events
    // in 30 s is exactly 30 events/s)
    let mock = mock().await;
    let (s, _) = post(&mock, "/2/httpapi", &upload(&events(900, "device-edge"))).await;
    assert_eq!(s, 200);
    let (s, v) = post(&mock, "/2/httpapi", &upload(&[ev("device-edge", "edge-x")])).await;
    assert_eq!((s, v["events_ingested"].clone()), (200, json!(1)));
    // Now 901 in the window: the next one is throttled at rate 31.
    let (s, v) = post(&mock, "/2/httpapi", &upload(&[ev("device-edge", "edge-y")])).await;
    assert_eq!(
        (s, v["throttled_devices"].clone()),
        (429, json!({"device-edge": 31}))
    );
}

#[tokio::test]
async fn throttled_device_is_accepted_once_its_30s_window_has_drained() {
    // spec §8.1 (pause 30 s), §8.3 (sliding 30-s window of 1-s buckets); time moved by the
    // library clock and once by `POST /__mock/clock`
    let mock = mock().await;
    assert_eq!(
        post(&mock, "/2/httpapi", &upload(&events(901, "device-hot")))
            .await
            .0,
        200
    );
    mock.clock().advance_ms(30 * SEC - 1);
    let (s, v) = post(&mock, "/2/httpapi", &upload(&[ev("device-hot", "late-1")])).await;
    assert_eq!(
        (
            s,
            v["throttled_devices"].clone(),
            v["throttled_events"].clone()
        ),
        (429, json!({"device-hot": 31}), json!([0]))
    );
    let (s, clock) = post_clock(&mock, json!({"advance_ms": 1})).await;
    assert_eq!(s, 200);
    assert_eq!(
        clock,
        json!({"now_ms": T0 + 30 * SEC, "virtual_time": true, "offset_ms": 0})
    );
    let (s, clock) = get_json(&mock, "/__mock/clock").await;
    assert_eq!((s, clock["now_ms"].clone()), (200, json!(T0 + 30 * SEC)));
    // The 901 events of second 0 have left the window; only the rejected event of second 29
    // (counted by default, `count_rejected_toward_eps`) is left.
    let (s, v) = post(&mock, "/2/httpapi", &upload(&[ev("device-hot", "late-2")])).await;
    assert_eq!(
        (s, v["server_upload_time"].clone()),
        (200, json!(T0 + 30 * SEC))
    );
    assert_eq!(
        stored_insert_ids(&mock).last().map(String::as_str),
        Some("late-2")
    );
}

#[tokio::test]
async fn rejected_events_keep_a_storming_sender_throttled_by_default() {
    // spec §8.3: whether rejected events count toward the window is UNCERTAIN; profile knob
    // `count_rejected_toward_eps` (default true: spammy clients stay throttled)
    for count_rejected in [true, false] {
        let profile = FidelityProfile {
            count_rejected_toward_eps: count_rejected,
            ..FidelityProfile::default()
        };
        let mock = builder()
            .limits(small(1, 1_000))
            .profile(profile)
            .start()
            .await;
        // 31 events in second 0: over 1 event/s averaged over 30 s.
        assert_eq!(
            post(&mock, "/2/httpapi", &upload(&events(31, "device-storm")))
                .await
                .0,
            200
        );
        // The sender retries 2 events every second (still over 1/s): all 429 for 29 s.
        for i in 1..30 {
            mock.clock().advance_ms(SEC);
            let batch = [
                ev("device-storm", &format!("r{i}a")),
                ev("device-storm", &format!("r{i}b")),
            ];
            let (s, v) = post(&mock, "/2/httpapi", &upload(&batch)).await;
            assert_eq!(
                (s, v["throttled_events"].clone()),
                (429, json!([0, 1])),
                "second {i}"
            );
        }
        // Second 30: the original 31 left the window.
        mock.clock().advance_ms(SEC);
        let (s, v) = post(&mock, "/2/httpapi", &upload(&[ev("device-storm", "r30")])).await;
        if count_rejected {
            // 29 s x 2 rejected events = 58 > 30 still in the window: rate ceil(58 / 30) = 2.
            assert_eq!(
                (s, v["throttled_devices"].clone()),
                (429, json!({"device-storm": 2}))
            );
        } else {
            assert_eq!(s, 200);
        }
        assert_eq!(
            mock.stats().events_throttled,
            58 + u64::from(count_rejected)
        );
    }
}

#[tokio::test]
async fn a_hot_device_is_throttled_while_other_devices_keep_getting_200() {
    // spec §8.1: limits are per device_id; other identities are unaffected, even one sending
    // exactly at the threshold (1 event/s here)
    let mock = builder().limits(small(1, 1_000)).start().await;
    let mut hot_statuses = Vec::new();
    for second in 0..60 {
        let hot: Vec<Value> = (0..10)
            .map(|i| ev("device-hot", &format!("hot-{second}-{i}")))
            .collect();
        hot_statuses.push(post(&mock, "/2/httpapi", &upload(&hot)).await.0);
        let other = ev(
            &format!("device-other-{second}"),
            &format!("other-{second}"),
        );
        assert_eq!(
            post(&mock, "/2/httpapi", &upload(&[other])).await.0,
            200,
            "second {second}"
        );
        let steady = ev("device-steady", &format!("steady-{second}"));
        assert_eq!(
            post(&mock, "/2/httpapi", &upload(&[steady])).await.0,
            200,
            "second {second}"
        );
        mock.clock().advance_ms(SEC);
    }
    // 0, 10, 20, 30 events in the window: accepted; from 40 on (> 30): throttled, and the
    // rejected events keep it there.
    assert_eq!(&hot_statuses[..4], &[200, 200, 200, 200]);
    assert!(
        hot_statuses[4..].iter().all(|s| *s == 429),
        "{hot_statuses:?}"
    );
    let stats = mock.stats();
    assert_eq!(stats.events_stored, 40 + 60 + 60);
    assert_eq!(stats.events_throttled, 56 * 10);
}

#[tokio::test]
async fn throttled_user_flags_every_event_of_that_user_and_the_rest_is_resent() {
    // spec §5.4: throttled_events lists every index whose user_id OR device_id is throttled;
    // §6: the non-throttled events of a 429 are not stored either; §7: SDKs resend them
    let mock = builder().limits(small(1, 1_000)).start().await;
    let burst: Vec<Value> = (0..31)
        .map(|i| {
            user_ev(
                "user-hot",
                Some(&format!("device-{i:02}")),
                &format!("b{i}"),
            )
        })
        .collect();
    assert_eq!(post(&mock, "/2/httpapi", &upload(&burst)).await.0, 200);
    let mixed = [
        user_ev("user-cold", Some("device-c1"), "m0"),
        user_ev("user-hot", Some("device-c2"), "m1"),
        json!({"device_id": "device-c3", "event_type": "tick", "insert_id": "m2"}),
        user_ev("user-hot", None, "m3"),
    ];
    let (s, v) = post(&mock, "/2/httpapi", &upload(&mixed)).await;
    assert_eq!(s, 429);
    assert_eq!(
        v,
        json!({
            "code": 429,
            "error": TOO_MANY,
            "eps_threshold": 1,
            "throttled_devices": {},
            "throttled_users": {"user-hot": 2},
            "throttled_events": [1, 3]
        })
    );
    assert_eq!(mock.events().len(), 31);
    let rest = [mixed[0].clone(), mixed[2].clone()];
    let (s, v) = post(&mock, "/2/httpapi", &upload(&rest)).await;
    assert_eq!((s, v["events_ingested"].clone()), (200, json!(2)));
    assert_eq!(&stored_insert_ids(&mock)[31..], &["m0", "m2"]);
}

#[tokio::test]
async fn device_and_user_throttled_together_are_both_reported() {
    // spec §5.4 V2 example: throttled_devices and throttled_users in one body
    let mock = builder().limits(small(1, 1_000)).start().await;
    let a: Vec<Value> = (0..31)
        .map(|i| ev("device-hot", &format!("a{i}")))
        .collect();
    let b: Vec<Value> = (0..45)
        .map(|i| user_ev("user-hot", None, &format!("b{i}")))
        .collect();
    assert_eq!(post(&mock, "/2/httpapi", &upload(&a)).await.0, 200);
    assert_eq!(post(&mock, "/2/httpapi", &upload(&b)).await.0, 200);
    let req = [
        user_ev("user-hot", Some("device-hot"), "c0"),
        ev("device-cool", "c1"),
    ];
    let (s, v) = post(&mock, "/2/httpapi", &upload(&req)).await;
    assert_eq!(s, 429);
    assert_eq!(v["throttled_devices"], json!({"device-hot": 2}));
    assert_eq!(v["throttled_users"], json!({"user-hot": 2}));
    assert_eq!(v["throttled_events"], json!([0]));
}

#[tokio::test]
async fn batch_has_its_own_threshold() {
    // spec §8.1: Batch 1,000 events/s per device (configurable; 3 here) vs HTTP V2 30 (1 here)
    let mock = builder().limits(small(1, 3)).start().await;
    // 61 events: over V2's 1/s but not over Batch's 3/s (90 per 30 s).
    assert_eq!(
        post(&mock, "/batch", &upload(&events(61, "device-b")))
            .await
            .0,
        200
    );
    assert_eq!(
        post(&mock, "/batch", &upload(&events(30, "device-b")))
            .await
            .0,
        200
    );
    let (s, v) = post(&mock, "/batch", &upload(&[ev("device-b", "x")])).await;
    assert_eq!(s, 429);
    assert_eq!(
        v,
        json!({
            "code": 429,
            "error": TOO_MANY,
            "eps_threshold": 3,
            "throttled_devices": {"device-b": 4},
            "throttled_users": {},
            "throttled_events": [0]
        })
    );
    // Same traffic on HTTP V2 is judged against V2's threshold.
    assert_eq!(
        post(&mock, "/2/httpapi", &upload(&events(31, "device-v")))
            .await
            .0,
        200
    );
    let (s, v) = post(&mock, "/2/httpapi", &upload(&[ev("device-v", "y")])).await;
    assert_eq!(
        (
            s,
            v["eps_threshold"].clone(),
            v["throttled_devices"].clone()
        ),
        (429, json!(1), json!({"device-v": 2}))
    );
}

#[tokio::test]
async fn thresholds_are_configurable_per_project() {
    // spec §8.3: thresholds configurable per project
    let mock = MockServer::builder()
        .api_key(KEY)
        .project(ProjectConfig {
            api_key: "project-b-key".into(),
            region: Region::Us,
            limits: Some(small(1, 1_000)),
        })
        .virtual_clock(T0)
        .start()
        .await;
    let to_b = |events: &[Value]| json!({"api_key": "project-b-key", "events": events});
    assert_eq!(
        post(&mock, "/2/httpapi", &upload(&events(31, "device-1")))
            .await
            .0,
        200
    );
    assert_eq!(
        post(&mock, "/2/httpapi", &to_b(&events(31, "device-1")))
            .await
            .0,
        200
    );
    // Same device id, different projects: independent counters and thresholds.
    assert_eq!(
        post(&mock, "/2/httpapi", &upload(&[ev("device-1", "k")]))
            .await
            .0,
        200
    );
    let (s, v) = post(&mock, "/2/httpapi", &to_b(&[ev("device-1", "b")])).await;
    assert_eq!((s, v["eps_threshold"].clone()), (429, json!(1)));
}

#[tokio::test]
async fn a_429_storm_is_fully_accounted_in_the_ledger() {
    // spec §6 + issue item 7: stored + deduplicated = events of all 200 responses;
    // events_throttled = events of all 429 responses
    let mock = builder().limits(small(1, 1_000)).start().await;
    let (mut ok_events, mut throttled_events) = (0u64, 0u64);
    for i in 0..100u64 {
        let n = 1 + (i % 7) as usize;
        let batch: Vec<Value> = (0..n)
            .map(|j| ev("device-storm", &format!("s{}-{j}", i % 40)))
            .collect();
        let (s, v) = post(&mock, "/2/httpapi", &upload(&batch)).await;
        match s {
            200 => ok_events += v["events_ingested"].as_u64().unwrap(),
            429 => throttled_events += n as u64,
            other => panic!("unexpected {other}: {v}"),
        }
        mock.clock().advance_ms(700);
    }
    let stats = mock.stats();
    assert!(
        throttled_events > 0 && ok_events > 0,
        "{ok_events} / {throttled_events}"
    );
    assert_eq!(stats.events_stored + stats.events_deduplicated, ok_events);
    assert_eq!(stats.events_throttled, throttled_events);
    assert_eq!(stats.events_received, ok_events + throttled_events);
    let (_, http_stats) = get_json(&mock, "/__mock/stats").await;
    assert_eq!(http_stats["events_throttled"], json!(throttled_events));
    assert_eq!(
        http_stats["events_deduplicated"],
        json!(stats.events_deduplicated)
    );
}
