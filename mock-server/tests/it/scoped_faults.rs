//! Faults scoped to a `device_id` / `user_id`, and the `throttle` fault: the limiter's real
//! 429 computed per request (docs/faults.md). Over HTTP, virtual time, exact bodies.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test code: failing loudly is the point

use crate::common::*;
use amplitude_mock::Fault;
use serde_json::{json, Value};

fn e(device: &str, user: Option<&str>, insert_id: &str) -> Value {
    let mut v = json!({"device_id": device, "event_type": "tick", "insert_id": insert_id});
    if let Some(u) = user {
        v["user_id"] = json!(u);
    }
    v
}

#[tokio::test]
async fn a_device_scope_takes_only_requests_carrying_that_device() {
    let mock = builder()
        .fault(Fault::status(503).device_id("device-D").count(1))
        .start()
        .await;
    let (s, _) = post(&mock, "/2/httpapi", &upload(&[e("device-E", None, "e1")])).await;
    assert_eq!(s, 200, "no device-D event: passes");
    let (s, body) = post(
        &mock,
        "/2/httpapi",
        &upload(&[e("device-E", None, "e2"), e("device-D", None, "d1")]),
    )
    .await;
    assert_eq!(
        (s, body),
        (503, json!({"code":503,"error":"Service Unavailable"}))
    );
    let (s, _) = post(&mock, "/2/httpapi", &upload(&[e("device-D", None, "d2")])).await;
    assert_eq!(s, 200, "count used up");
    assert_eq!(stored_insert_ids(&mock), vec!["e1", "d2"]);
}

#[tokio::test]
async fn a_user_scope_takes_only_requests_carrying_that_user() {
    let mock = builder()
        .fault(Fault::close().user_id("user-U"))
        .start()
        .await;
    let (s, _) = post(
        &mock,
        "/batch",
        &upload(&[e("device-E", Some("user-V"), "v1")]),
    )
    .await;
    assert_eq!(s, 200);
    let r = reqwest::Client::new()
        .post(format!("{}/batch", mock.uri()))
        .json(&upload(&[e("device-E", Some("user-U"), "u1")]))
        .send()
        .await;
    assert!(r.is_err(), "closed without a response");
    assert_eq!(stored_insert_ids(&mock), vec!["v1"]);
    assert_eq!(
        mock.stats()
            .requests_by_status
            .get(&amplitude_mock::StatusKey::Cut),
        Some(&1)
    );
}

#[tokio::test]
async fn throttle_answers_the_limiters_429_for_that_requests_events() {
    let mock = builder()
        .journal_bodies(true)
        .fault(Fault::throttle_device("device-D").window(Some(T0 + 2 * SEC), Some(T0 + 22 * SEC)))
        .start()
        .await;
    // Before the window: the device passes.
    let (s, _) = post(
        &mock,
        "/2/httpapi",
        &upload(&[e("device-D", None, "d0"), e("device-E", None, "e0")]),
    )
    .await;
    assert_eq!(s, 200);
    mock.clock().advance_ms(2 * SEC);
    // In the window: the 429 names exactly this request's events of device-D.
    let (s, body) = post(
        &mock,
        "/2/httpapi",
        &upload(&[
            e("device-E", None, "e1"),
            e("device-D", None, "d1"),
            e("device-E", None, "e2"),
            e("device-D", Some("user-U"), "d2"),
        ]),
    )
    .await;
    assert_eq!(s, 429);
    assert_eq!(
        body,
        json!({"code":429,"error":"Too many requests for some devices and users",
               "eps_threshold":30,"throttled_devices":{"device-D":31},"throttled_users":{},
               "throttled_events":[1,3]})
    );
    // Another batching of the same device: the indexes follow the request.
    let (s, body) = post(
        &mock,
        "/2/httpapi",
        &upload(&[e("device-D", None, "d3"), e("device-E", None, "e3")]),
    )
    .await;
    assert_eq!(s, 429);
    assert_eq!(body["throttled_events"], json!([0]));
    // Without the device: passes.
    let (s, _) = post(&mock, "/2/httpapi", &upload(&[e("device-E", None, "e4")])).await;
    assert_eq!(s, 200);
    // Batch: the endpoint's threshold.
    let (s, body) = post(&mock, "/batch", &upload(&[e("device-D", None, "d4")])).await;
    assert_eq!(s, 429);
    assert_eq!(body["eps_threshold"], json!(1000));
    assert_eq!(body["throttled_devices"], json!({"device-D": 1001}));
    // After the window: passes again.
    mock.clock().advance_ms(20 * SEC);
    let (s, _) = post(&mock, "/2/httpapi", &upload(&[e("device-D", None, "d5")])).await;
    assert_eq!(s, 200);

    assert_eq!(stored_insert_ids(&mock), vec!["d0", "e0", "e4", "d5"]);
    let st = mock.stats();
    assert_eq!(
        st.events_rejected
            .by_reason
            .get(&amplitude_mock::RejectReason::Throttled),
        Some(&7)
    );
    assert_eq!(
        st.faults.get("throttle").map(|c| (c.injected, c.committed)),
        Some((3, 0))
    );
    let j = mock.requests();
    let throttled: Vec<_> = j
        .iter()
        .filter(|r| r.fault.as_deref() == Some("throttle"))
        .collect();
    assert_eq!(throttled.len(), 3);
    assert_eq!(throttled[0].status, 429);
    assert_eq!(throttled[0].outcome, "throttled");
    assert_eq!(throttled[0].events, 4);
    let sent: Value =
        serde_json::from_str(throttled[0].events_json.as_ref().unwrap().get()).unwrap();
    assert_eq!(sent[1]["insert_id"], json!("d1"));
}

#[tokio::test]
async fn throttle_a_user() {
    let mock = builder()
        .fault(Fault::throttle_user("user-U").count(1))
        .start()
        .await;
    let (s, body) = post(
        &mock,
        "/2/httpapi",
        &upload(&[
            e("device-E", Some("user-V"), "v1"),
            e("device-F", Some("user-U"), "u1"),
        ]),
    )
    .await;
    assert_eq!(s, 429);
    assert_eq!(
        body,
        json!({"code":429,"error":"Too many requests for some devices and users",
               "eps_threshold":30,"throttled_devices":{},"throttled_users":{"user-U":31},
               "throttled_events":[1]})
    );
    let (s, _) = post(
        &mock,
        "/2/httpapi",
        &upload(&[e("device-F", Some("user-U"), "u2")]),
    )
    .await;
    assert_eq!(s, 200, "count used up");
    assert_eq!(stored_insert_ids(&mock), vec!["u2"]);
}

#[tokio::test]
async fn throttle_from_json_and_validation_still_wins() {
    let mock = builder().start().await;
    let (s, v) = post(
        &mock,
        "/__mock/faults",
        &json!({"kind":"throttle","device_id":"device-D","from_ms":T0,"until_ms":T0 + 1000}),
    )
    .await;
    assert_eq!(s, 200, "{v}");
    // An invalid event is a 400 before any 429, as on Amplitude (spec §14 item 4).
    let (s, body) = post(
        &mock,
        "/2/httpapi",
        &upload(&[json!({"device_id":"device-D"})]),
    )
    .await;
    assert_eq!(s, 400, "{body}");
}
