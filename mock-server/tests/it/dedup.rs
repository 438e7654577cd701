//! 7-day `insert_id` deduplication over real HTTP (spec §6, §9, §14.1 #13), in virtual time
//! and once with the system clock plus an offset.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test code: failing loudly is the point

use crate::common::*;
use amplitude_mock::profile::DedupKey;
use amplitude_mock::{FidelityProfile, MockServer};
use serde_json::{json, Value};

#[tokio::test]
async fn v13_same_insert_id_and_device_within_7_days_is_200_but_not_stored() {
    // spec §14.1 #13, §9: second copy answered 200, not stored; the ledger names the
    // duplicated event; events_ingested counts it by default (profile knob)
    let mock = mock().await;
    let (s, v) = post(&mock, "/2/httpapi", &upload(&[ev("device-1", "iid-1")])).await;
    assert_eq!((s, v["events_ingested"].clone()), (200, json!(1)));
    mock.clock().advance_ms(DAY);
    let (s, v) = post(
        &mock,
        "/2/httpapi",
        &upload(&[ev("device-1", "iid-1"), ev("device-1", "iid-2")]),
    )
    .await;
    assert_eq!(s, 200);
    assert_eq!(v["events_ingested"], json!(2));
    assert_eq!(stored_insert_ids(&mock), ["iid-1", "iid-2"]);
    let dups = mock.state().ledger().duplicates();
    assert_eq!(dups.len(), 1);
    assert_eq!(
        (
            dups[0].index,
            dups[0].insert_id.as_str(),
            dups[0].duplicate_of,
            dups[0].at_ms
        ),
        (0, "iid-1", Some(1), T0 + DAY)
    );
    let (s, http) = get_json(&mock, "/__mock/duplicates").await;
    assert_eq!(s, 200);
    assert_eq!(http[0]["duplicate_of"], json!(1));
    assert_eq!(http[0]["request_id"], json!(dups[0].request_id));
    let stats = mock.stats();
    assert_eq!((stats.events_stored, stats.events_deduplicated), (2, 1));
    let journal = mock.requests();
    assert_eq!(
        (journal[1].stored, journal[1].deduplicated, journal[1].id),
        (1, 1, dups[0].request_id)
    );
}

#[tokio::test]
async fn dedup_holds_at_7_days_minus_1ms_and_expires_at_7_days_plus_1ms() {
    // spec §9: "within the past 7 days", exact to the millisecond; a duplicate does not
    // extend the window
    let mock = mock().await;
    assert_eq!(
        post(&mock, "/2/httpapi", &upload(&[ev("device-1", "week")]))
            .await
            .0,
        200
    );
    mock.clock().advance_ms(WEEK - 1);
    let (s, v) = post(&mock, "/2/httpapi", &upload(&[ev("device-1", "week")])).await;
    assert_eq!(
        (s, v["server_upload_time"].clone()),
        (200, json!(T0 + WEEK - 1))
    );
    assert_eq!(mock.events().len(), 1);
    mock.clock().advance_ms(2);
    assert_eq!(
        post(&mock, "/2/httpapi", &upload(&[ev("device-1", "week")]))
            .await
            .0,
        200
    );
    let stored = mock.events();
    assert_eq!(stored.len(), 2);
    assert_eq!(stored[1].server_upload_time, T0 + WEEK + 1);
    // The re-stored copy starts a new 7-day window.
    mock.clock().advance_ms(WEEK - 1);
    assert_eq!(
        post(&mock, "/2/httpapi", &upload(&[ev("device-1", "week")]))
            .await
            .0,
        200
    );
    assert_eq!(mock.events().len(), 2);
    assert_eq!(mock.stats().events_deduplicated, 2);
}

#[tokio::test]
async fn system_clock_jumps_a_week_through_post_mock_clock() {
    // issue item 1: with the default system clock, advancing adds an offset, so a test can
    // jump 7 days on a running mock; spec §9
    let mock = MockServer::builder().api_key(KEY).start().await;
    let (s, before) = get_json(&mock, "/__mock/clock").await;
    assert_eq!(
        (
            s,
            before["virtual_time"].clone(),
            before["offset_ms"].clone()
        ),
        (200, json!(false), json!(0))
    );
    assert_eq!(
        post(&mock, "/2/httpapi", &upload(&[ev("device-1", "sys")]))
            .await
            .0,
        200
    );
    assert_eq!(
        post(&mock, "/2/httpapi", &upload(&[ev("device-1", "sys")]))
            .await
            .0,
        200
    );
    assert_eq!(mock.events().len(), 1);
    let (s, after) = post_clock(&mock, json!({"advance_ms": WEEK})).await;
    assert_eq!(
        (s, after["virtual_time"].clone(), after["offset_ms"].clone()),
        (200, json!(false), json!(WEEK))
    );
    assert!(after["now_ms"].as_i64().unwrap() >= before["now_ms"].as_i64().unwrap() + WEEK);
    let (s, v) = post(&mock, "/2/httpapi", &upload(&[ev("device-1", "sys")])).await;
    assert_eq!(s, 200);
    assert!(v["server_upload_time"].as_i64().unwrap() >= before["now_ms"].as_i64().unwrap() + WEEK);
    assert_eq!(mock.events().len(), 2);
    // set_ms works too, and bad commands are refused.
    let (s, v) = post_clock(&mock, json!({"set_ms": T0})).await;
    assert_eq!(s, 200);
    assert!((v["now_ms"].as_i64().unwrap() - T0).abs() < 60_000, "{v}");
    assert_eq!(
        post_clock(&mock, json!({"advance_ms": 1, "set_ms": 2}))
            .await
            .0,
        400
    );
    assert_eq!(post_clock(&mock, json!({"advance": 1})).await.0, 400);
}

#[tokio::test]
async fn dedup_key_is_insert_id_and_device_id_by_default() {
    // spec §9, §15 #8: V2 doc keys on insert_id + device_id; the Batch doc on insert_id
    // alone (profile knob `dedup_key`)
    for key in [DedupKey::InsertIdAndDeviceId, DedupKey::InsertId] {
        let profile = FidelityProfile {
            dedup_key: key,
            ..FidelityProfile::default()
        };
        let mock = builder().profile(profile).start().await;
        let req = [ev("device-a", "shared"), ev("device-b", "shared")];
        assert_eq!(post(&mock, "/2/httpapi", &upload(&req)).await.0, 200);
        // Events without a device_id are keyed by their user_id (the server would derive the
        // device_id from it, spec §3.2).
        let users = [
            json!({"user_id": "user-1", "event_type": "t", "insert_id": "u"}),
            json!({"user_id": "user-1", "event_type": "t", "insert_id": "u"}),
            json!({"user_id": "user-2", "event_type": "t", "insert_id": "u"}),
        ];
        assert_eq!(post(&mock, "/2/httpapi", &upload(&users)).await.0, 200);
        let want: &[&str] = match key {
            DedupKey::InsertIdAndDeviceId => &["shared", "shared", "u", "u"],
            DedupKey::InsertId => &["shared", "u"],
        };
        assert_eq!(stored_insert_ids(&mock), want, "{key:?}");
    }
}

#[tokio::test]
async fn duplicate_inside_one_request_names_the_event_stored_from_that_request() {
    // spec §9: the second copy in the same request is deduplicated; the ledger's
    // duplicate_of points at the copy stored from that same request
    let mock = mock().await;
    assert_eq!(
        post(&mock, "/2/httpapi", &upload(&[ev("device-0", "first")]))
            .await
            .0,
        200
    );
    let req = [
        ev("device-1", "x"),
        ev("device-1", "y"),
        ev("device-1", "x"),
    ];
    let (s, v) = post(&mock, "/2/httpapi", &upload(&req)).await;
    assert_eq!((s, v["events_ingested"].clone()), (200, json!(3)));
    assert_eq!(stored_insert_ids(&mock), ["first", "x", "y"]);
    let dups = mock.state().ledger().duplicates();
    assert_eq!(dups.len(), 1);
    assert_eq!((dups[0].index, dups[0].duplicate_of), (2, Some(2)));
}

#[tokio::test]
async fn duplicate_of_an_expired_copy_points_at_the_newest_copy() {
    // spec §9: after expiry the id is stored again; later duplicates name the new copy
    let mock = mock().await;
    assert_eq!(
        post(&mock, "/2/httpapi", &upload(&[ev("device-1", "x")]))
            .await
            .0,
        200
    );
    mock.clock().advance_ms(WEEK);
    let req = [ev("device-1", "x"), ev("device-1", "x")];
    assert_eq!(post(&mock, "/2/httpapi", &upload(&req)).await.0, 200);
    let dups = mock.state().ledger().duplicates();
    assert_eq!(mock.events().len(), 2);
    assert_eq!((dups.len(), dups[0].duplicate_of), (1, Some(2)));
}

#[tokio::test]
async fn duplicates_count_in_events_ingested_is_a_profile_knob() {
    // spec §9, §15 #8: whether duplicates count in events_ingested is UNCERTAIN
    for count in [true, false] {
        let profile = FidelityProfile {
            duplicates_count_as_ingested: count,
            ..FidelityProfile::default()
        };
        let mock = builder().profile(profile).start().await;
        let req = [
            ev("device-1", "a"),
            ev("device-1", "a"),
            ev("device-1", "b"),
        ];
        let (s, v) = post(&mock, "/2/httpapi", &upload(&req)).await;
        assert_eq!(
            (s, v["events_ingested"].clone()),
            (200, json!(if count { 3 } else { 2 }))
        );
    }
}

#[tokio::test]
async fn rejected_requests_remember_no_insert_id() {
    // spec §6: on a non-200 nothing is stored, so the corrected resend is not a duplicate
    let mock = builder()
        .limits(amplitude_mock::Limits {
            eps_threshold_http_v2: 1,
            ..Default::default()
        })
        .start()
        .await;
    let bad = [
        ev("device-1", "keep"),
        json!({"device_id": "device-1", "insert_id": "no-type"}),
    ];
    assert_eq!(post(&mock, "/2/httpapi", &upload(&bad)).await.0, 400);
    assert_eq!(
        post(&mock, "/2/httpapi", &upload(&[ev("device-1", "keep")]))
            .await
            .0,
        200
    );
    // A 429'd request remembers nothing either.
    assert_eq!(
        post(&mock, "/2/httpapi", &upload(&events(31, "device-2")))
            .await
            .0,
        200
    );
    assert_eq!(
        post(&mock, "/2/httpapi", &upload(&[ev("device-2", "later")]))
            .await
            .0,
        429
    );
    mock.clock().advance_ms(31 * SEC);
    assert_eq!(
        post(&mock, "/2/httpapi", &upload(&[ev("device-2", "later")]))
            .await
            .0,
        200
    );
    let ids = stored_insert_ids(&mock);
    assert_eq!(
        (
            ids.first().map(String::as_str),
            ids.last().map(String::as_str),
            ids.len()
        ),
        (Some("keep"), Some("later"), 33)
    );
    assert_eq!(mock.stats().events_deduplicated, 0);
}

#[tokio::test]
async fn stored_plus_deduplicated_equals_events_of_all_200_responses() {
    // issue item 7 + spec §9: the ledger accounts for every event of every 200
    let mock = mock().await;
    let mut ok_events = 0;
    for round in 0..20i64 {
        let batch: Vec<Value> = (0..5)
            .map(|i| {
                ev(
                    &format!("device-{}", i % 2),
                    &format!("id-{}", (round + i) % 9),
                )
            })
            .collect();
        let (s, v) = post(&mock, "/batch", &upload(&batch)).await;
        assert_eq!(s, 200);
        ok_events += v["events_ingested"].as_u64().unwrap();
        mock.clock().advance_ms(HOUR * 9);
    }
    let (_, stats) = get_json(&mock, "/__mock/stats").await;
    let (stored, dedup) = (
        stats["events_stored"].as_u64().unwrap(),
        stats["events_deduplicated"].as_u64().unwrap(),
    );
    assert!(dedup > 0 && stored > 0);
    assert_eq!(stored + dedup, ok_events);
    assert_eq!(stats["events_received"], json!(100));
}

#[tokio::test]
async fn reset_forgets_remembered_ids() {
    // architecture "Contracts": POST /__mock/reset forgets rule state, keeps the clock
    let mock = mock().await;
    assert_eq!(
        post(&mock, "/2/httpapi", &upload(&[ev("device-1", "r")]))
            .await
            .0,
        200
    );
    assert_eq!(post(&mock, "/__mock/reset", &json!({})).await.0, 200);
    assert_eq!(
        post(&mock, "/2/httpapi", &upload(&[ev("device-1", "r")]))
            .await
            .0,
        200
    );
    assert_eq!(stored_insert_ids(&mock), ["r"]);
    assert_eq!(mock.stats().events_deduplicated, 0);
    assert_eq!(
        get_json(&mock, "/__mock/clock").await.1["now_ms"],
        json!(T0)
    );
}
