//! Identify, Group Identify and Attribution over real HTTP (spec §10-§12): form-encoded or
//! query parameters, text bodies (spec §10 "Response bodies", UNCERTAIN), the V2 limits and
//! the shared property cap (spec §8.1).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test code: failing loudly is the point

use crate::common::*;
use amplitude_mock::Limits;
use serde_json::{json, Value};

const TEXT: &str = "text/plain; charset=utf-8";

#[tokio::test]
async fn identify_by_form_and_by_query_updates_user_properties() {
    // spec §10: POST form body or GET query; `identification` is one object or an array;
    // 200 text body `success`; identifications are not events
    let mock = mock().await;
    let one =
        json!({"user_id": "user-ident", "user_properties": {"$set": {"plan": "pro"}}}).to_string();
    assert_eq!(
        post_form(
            &mock,
            "/identify",
            &[("api_key", KEY), ("identification", &one)]
        )
        .await,
        (200, TEXT.into(), "success".into())
    );
    let many = json!([
        {"user_id": "user-ident", "user_properties": {"$add": {"logins": 2}}},
        {"device_id": "device-ident", "user_properties": {"city": "Paris"}}
    ])
    .to_string();
    assert_eq!(
        get_text(
            &mock,
            "/identify",
            &[("api_key", KEY), ("identification", &many)]
        )
        .await
        .0,
        200
    );
    let (_, user) = get_json(&mock, "/__mock/users?user_id=user-ident").await;
    assert_eq!(user["user_properties"], json!({"plan": "pro", "logins": 2}));
    let (_, device) = get_json(&mock, "/__mock/users?device_id=device-ident").await;
    // An api_key the mock does not know is an error, not another project's users.
    for route in [
        "users?user_id=user-ident",
        "groups?group_type=t&group_value=v",
    ] {
        let (status, body) =
            get_json(&mock, &format!("/__mock/{route}&api_key=not-a-project-key")).await;
        assert_eq!(status, 400, "{route}: {body}");
        assert!(
            body["error"].as_str().unwrap().contains("unknown api_key"),
            "{route}: {body}"
        );
    }
    let (status, _) = get_json(
        &mock,
        &format!("/__mock/users?user_id=user-ident&api_key={KEY}"),
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(device["user_properties"], json!({"city": "Paris"}));
    // Params in the query string of a POST (the group-identify doc's raw example) work too.
    let q = format!("/identify?api_key={KEY}");
    assert_eq!(
        post_form(&mock, &q, &[("identification", &one)]).await.0,
        200
    );
    assert!(mock.events().is_empty());
    let stats = mock.stats();
    assert_eq!(
        (stats.events_received, stats.property_updates_applied),
        (0, 4)
    );
    assert_eq!(
        stats
            .requests_by_status
            .get(&amplitude_mock::StatusKey::Status(200)),
        Some(&3)
    );
}

#[tokio::test]
async fn identify_errors_are_text_tokens() {
    // spec §10: 400 `missing_event` when `identification` is missing or malformed; unknown
    // key answered `invalid_api_key` (legacy text convention, spec §1.3, UNCERTAIN)
    let mock = mock().await;
    let ok = json!({"user_id": "user-x"}).to_string();
    assert_eq!(
        post_form(&mock, "/identify", &[("api_key", KEY)]).await,
        (400, TEXT.into(), "missing_event".into())
    );
    assert_eq!(
        post_form(
            &mock,
            "/identify",
            &[("api_key", KEY), ("identification", "{nope")]
        )
        .await
        .2,
        "missing_event"
    );
    let no_id = json!({"user_properties": {"a": 1}}).to_string();
    assert_eq!(
        post_form(
            &mock,
            "/identify",
            &[("api_key", KEY), ("identification", &no_id)]
        )
        .await,
        (400, TEXT.into(), "missing_event".into())
    );
    assert_eq!(
        post_form(
            &mock,
            "/identify",
            &[("api_key", "K2"), ("identification", &ok)]
        )
        .await,
        (400, TEXT.into(), "invalid_api_key".into())
    );
    assert_eq!(
        post_form(&mock, "/identify", &[("identification", &ok)])
            .await
            .0,
        400
    );
    assert!(get_json(&mock, "/__mock/users?user_id=user-x").await.0 == 404);
}

#[tokio::test]
async fn identify_bodies_can_be_json_by_profile() {
    // spec §10, §15 #16: the bodies are UNCERTAIN, so `identify_text_bodies = false` answers
    // the same outcomes as JSON with `code` equal to the status
    let profile = amplitude_mock::FidelityProfile {
        identify_text_bodies: false,
        ..Default::default()
    };
    let mock = builder().profile(profile).start().await;
    let ok = json!({"user_id": "user-x"}).to_string();
    let (s, ct, body) = post_form(
        &mock,
        "/identify",
        &[("api_key", KEY), ("identification", &ok)],
    )
    .await;
    assert_eq!((s, ct.as_str()), (200, "application/json"));
    assert_eq!(
        serde_json::from_str::<Value>(&body).unwrap(),
        json!({"code": 200})
    );
    let (s, _, body) = post_form(&mock, "/identify", &[("api_key", KEY)]).await;
    assert_eq!(s, 400);
    assert_eq!(
        serde_json::from_str::<Value>(&body).unwrap(),
        json!({"code": 400, "error": "missing_event"})
    );
}

#[tokio::test]
async fn identify_is_throttled_like_http_v2_with_a_json_429() {
    // spec §10 "Throttling": the V2 throttling guidance applies (threshold 1 here); the
    // 429 body is the §5.4 JSON body
    let limits = Limits {
        eps_threshold_http_v2: 1,
        ..Limits::default()
    };
    let mock = builder().limits(limits).start().await;
    let burst: Vec<Value> = (0..31)
        .map(|i| json!({"device_id": "device-id-hot", "user_properties": {"$set": {"i": i}}}))
        .collect();
    let burst = Value::Array(burst).to_string();
    assert_eq!(
        post_form(
            &mock,
            "/identify",
            &[("api_key", KEY), ("identification", &burst)]
        )
        .await
        .0,
        200
    );
    let next = json!([{"device_id": "device-cold", "user_id": "user-cold"}, {"device_id": "device-id-hot"}]).to_string();
    let (s, ct, body) = post_form(
        &mock,
        "/identify",
        &[("api_key", KEY), ("identification", &next)],
    )
    .await;
    assert_eq!((s, ct.as_str()), (429, "application/json"));
    let v: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(
        v,
        json!({
            "code": 429,
            "error": "Too many requests for some devices and users",
            "eps_threshold": 1,
            "throttled_devices": {"device-id-hot": 2},
            "throttled_users": {},
            "throttled_events": [1]
        })
    );
    // Nothing of the 429'd request applied; after the window drains it is accepted.
    assert_eq!(
        get_json(&mock, "/__mock/users?user_id=user-cold").await.0,
        404
    );
    mock.clock().advance_ms(30 * SEC);
    assert_eq!(
        post_form(
            &mock,
            "/identify",
            &[("api_key", KEY), ("identification", &next)]
        )
        .await
        .0,
        200
    );
    assert_eq!(
        get_json(&mock, "/__mock/users?user_id=user-cold").await.0,
        200
    );
    // Identify traffic has its own counters: the device is not throttled on /2/httpapi.
    assert_eq!(
        post(&mock, "/2/httpapi", &upload(&[ev("device-id-hot", "e")]))
            .await
            .0,
        200
    );
}

#[tokio::test]
async fn identify_applies_the_daily_quota_like_http_v2() {
    // issue item 6 "the same limits": daily quota (spec §8.1) on /identify
    let limits = Limits {
        daily_quota: 2,
        ..Limits::default()
    };
    let mock = builder().limits(limits).start().await;
    let two = json!([{"user_id": "user-q"}, {"user_id": "user-q"}]).to_string();
    assert_eq!(
        post_form(
            &mock,
            "/identify",
            &[("api_key", KEY), ("identification", &two)]
        )
        .await
        .0,
        200
    );
    let one = json!({"user_id": "user-q"}).to_string();
    let (s, _, body) = post_form(
        &mock,
        "/identify",
        &[("api_key", KEY), ("identification", &one)],
    )
    .await;
    assert_eq!(s, 429);
    let v: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(
        (
            v["exceeded_daily_quota_users"].clone(),
            v["throttled_events"].clone()
        ),
        (json!({"user-q": 2}), json!([0]))
    );
    assert_eq!(
        mock.stats().events_rejected.total,
        0,
        "identifications are not events"
    );
}

#[tokio::test]
async fn identify_shares_the_property_cap_and_the_ledger_names_the_lost_update() {
    // spec §8.1: the cap is per Amplitude ID whatever the API; spec §10: /identify stores
    // no event, so the drop record has no seq but names request, index and properties
    let limits = Limits {
        property_updates_per_hour: 2,
        ..Limits::default()
    };
    let mock = builder().limits(limits).start().await;
    let ev = json!({"user_id": "user-cap", "event_type": "$identify", "user_properties": {"$set": {"a": 1}}});
    assert_eq!(post(&mock, "/2/httpapi", &upload(&[ev])).await.0, 200);
    let two = json!([
        {"user_id": "user-cap", "user_properties": {"$set": {"b": 2}}},
        {"user_id": "user-cap", "user_properties": {"$set": {"c": 3}}}
    ])
    .to_string();
    assert_eq!(
        post_form(
            &mock,
            "/identify",
            &[("api_key", KEY), ("identification", &two)]
        )
        .await
        .0,
        200
    );
    let (_, user) = get_json(&mock, "/__mock/users?user_id=user-cap").await;
    assert_eq!(user["user_properties"], json!({"a": 1, "b": 2}));
    let request_id = mock.requests()[1].id;
    let (_, drops) = get_json(&mock, "/__mock/property_drops").await;
    assert_eq!(
        drops,
        json!([{
            "seq": null,
            "request_id": request_id,
            "endpoint": "identify",
            "index": 1,
            "amplitude_id": user["amplitude_id"],
            "user_id": "user-cap",
            "device_id": null,
            "user_properties": {"$set": {"c": 3}},
            "at_ms": T0
        }])
    );
    assert_eq!(mock.stats().property_updates_dropped, 1);
}

#[tokio::test]
async fn groupidentify_by_form_and_by_query() {
    // spec §11: form-urlencoded api_key + identification (object or array), or both in the
    // query string; group ops incl. $prepend (§15 #17)
    let mock = mock().await;
    let one = json!({"group_type": "org", "group_value": "acme", "group_properties": {"$set": {"plan": "pro", "tags": ["b"]}}}).to_string();
    assert_eq!(
        post_form(
            &mock,
            "/groupidentify",
            &[("api_key", KEY), ("identification", &one)]
        )
        .await,
        (200, TEXT.into(), "success".into())
    );
    let more = json!([{"group_type": "org", "group_value": "acme", "group_properties": {"$prepend": {"tags": "a"}}}]).to_string();
    let path = format!(
        "/groupidentify?api_key={KEY}&identification={}",
        urlencode(&more)
    );
    assert_eq!(post_form(&mock, &path, &[]).await.0, 200);
    let (_, g) = get_json(&mock, "/__mock/groups?group_type=org&group_value=acme").await;
    assert_eq!(
        g["group_properties"],
        json!({"plan": "pro", "tags": ["a", "b"]})
    );
    let bad = json!({"group_type": "org"}).to_string();
    assert_eq!(
        post_form(
            &mock,
            "/groupidentify",
            &[("api_key", KEY), ("identification", &bad)]
        )
        .await,
        (400, TEXT.into(), "missing_event".into())
    );
    assert!(mock.events().is_empty());
}

#[tokio::test]
async fn attribution_stores_a_valid_event_and_rejects_a_bad_one() {
    // spec §12: event_type and platform required; iOS needs idfa or idfv, Android adid or
    // android_app_set_id; 400 when the JSON is wrong
    let mock = mock().await;
    let ios = json!({"event_type": "[Acme] Install", "platform": "ios", "idfa": "AEBE52E7-03EE-455A-B3C4-E57283966239"}).to_string();
    assert_eq!(
        post_form(&mock, "/attribution", &[("api_key", KEY), ("event", &ios)]).await,
        (200, TEXT.into(), "success".into())
    );
    let android_without_id =
        json!({"event_type": "[Acme] Install", "platform": "android"}).to_string();
    assert_eq!(
        post_form(
            &mock,
            "/attribution",
            &[("api_key", KEY), ("event", &android_without_id)]
        )
        .await
        .0,
        400
    );
    assert_eq!(
        post_form(
            &mock,
            "/attribution",
            &[("api_key", KEY), ("event", "not json")]
        )
        .await
        .0,
        400
    );
    let stored = mock.events();
    assert_eq!(stored.len(), 1);
    assert_eq!(stored[0].endpoint, amplitude_wire::Api::Attribution);
    let stats = mock.stats();
    assert_eq!(
        (
            stats.events_received,
            stats.events_stored,
            stats.events_rejected.total
        ),
        (2, 1, 1)
    );
}

fn urlencode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}
