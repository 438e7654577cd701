//! The daily quota and silenced devices over real HTTP (spec §5.1, §5.4, §8.1, §14.1 #12),
//! in virtual time.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test code: failing loudly is the point

use crate::common::*;
use amplitude_mock::{FidelityProfile, Limits, MockConfig, MockServer};
use serde_json::{json, Value};

const TOO_MANY: &str = "Too many requests for some devices and users";
/// Start of the UTC hour holding `T0` (T0 is 13 min 20 s into it).
const H0: i64 = T0 - T0.rem_euclid(HOUR);

fn quota(n: u64) -> Limits {
    Limits {
        daily_quota: n,
        ..Limits::default()
    }
}

fn user_only(user: &str, insert_id: &str) -> Value {
    json!({"user_id": user, "event_type": "tick", "insert_id": insert_id})
}

#[tokio::test]
async fn v12_user_over_daily_quota_on_batch() {
    // spec §14.1 #12, §5.4 (Batch body with exceeded_daily_quota_users; the user's indexes
    // also in throttled_events), §8.1 (quota per user, configurable: 5 here)
    let mock = builder().limits(quota(5)).start().await;
    let five: Vec<Value> = (0..5)
        .map(|i| user_only("user-quota", &format!("q{i}")))
        .collect();
    assert_eq!(post(&mock, "/batch", &upload(&five)).await.0, 200);
    let req = [
        user_only("user-other", "o0"),
        user_only("user-quota", "q5"),
        user_only("user-quota", "q6"),
    ];
    let (s, v) = post(&mock, "/batch", &upload(&req)).await;
    assert_eq!(s, 429);
    assert_eq!(
        v,
        json!({
            "code": 429,
            "error": TOO_MANY,
            "eps_threshold": 1000,
            "throttled_devices": {},
            "throttled_users": {},
            "throttled_events": [1, 2],
            "exceeded_daily_quota_users": {"user-quota": 5},
            "exceeded_daily_quota_devices": {}
        })
    );
    assert_eq!(mock.events().len(), 5);
    let stats = mock.stats();
    assert_eq!(
        stats
            .events_rejected
            .by_reason
            .get(&amplitude_mock::RejectReason::DailyQuota),
        Some(&3)
    );
    assert_eq!(stats.events_throttled, 3);
}

#[tokio::test]
async fn device_over_daily_quota_reports_the_current_daily_count() {
    // spec §5.4: exceeded_daily_quota_devices maps the device to its rolling 24 h count,
    // which includes the rejected events by default (count_rejected_toward_eps)
    let mock = builder().limits(quota(5)).start().await;
    assert_eq!(
        post(&mock, "/batch", &upload(&events(5, "device-q")))
            .await
            .0,
        200
    );
    let (s, v) = post(&mock, "/batch", &upload(&events(2, "device-q"))).await;
    assert_eq!(
        (s, v["exceeded_daily_quota_devices"].clone()),
        (429, json!({"device-q": 5}))
    );
    mock.clock().advance_ms(HOUR);
    let (s, v) = post(&mock, "/batch", &upload(&events(1, "device-q"))).await;
    assert_eq!(
        (
            s,
            v["exceeded_daily_quota_devices"].clone(),
            v["throttled_events"].clone()
        ),
        (429, json!({"device-q": 7}), json!([0]))
    );
}

#[tokio::test]
async fn daily_quota_resets_on_the_rolling_window_of_utc_hours() {
    // spec §8.1: rolling 24 h evaluated in 1-hour intervals; events of hour h count until
    // the start of hour h + 24 (so events sent at T0 leave 23 h 46 min 40 s later)
    let profile = FidelityProfile {
        count_rejected_toward_eps: false,
        ..FidelityProfile::default()
    };
    let mock = builder().limits(quota(5)).profile(profile).start().await;
    assert_eq!(
        post(
            &mock,
            "/batch",
            &upload(&[user_only("user-roll", "a0"), user_only("user-roll", "a1")])
        )
        .await
        .0,
        200
    );
    mock.clock().set_ms(H0 + 5 * HOUR);
    let three: Vec<Value> = (0..3)
        .map(|i| user_only("user-roll", &format!("b{i}")))
        .collect();
    assert_eq!(post(&mock, "/batch", &upload(&three)).await.0, 200);
    mock.clock().set_ms(H0 + 24 * HOUR - 1);
    let (s, v) = post(&mock, "/batch", &upload(&[user_only("user-roll", "c0")])).await;
    assert_eq!(
        (s, v["exceeded_daily_quota_users"].clone()),
        (429, json!({"user-roll": 5}))
    );
    // Hour 0 (2 events) leaves the window: 3 left, under the quota.
    mock.clock().set_ms(H0 + 24 * HOUR);
    assert_eq!(
        post(
            &mock,
            "/batch",
            &upload(&[user_only("user-roll", "c1"), user_only("user-roll", "c2")])
        )
        .await
        .0,
        200
    );
    // 5 again in the window (hours 5 and 24).
    let (s, _) = post(&mock, "/batch", &upload(&[user_only("user-roll", "c3")])).await;
    assert_eq!(s, 429);
    // Hour 5 leaves at H0 + 29 h.
    mock.clock().set_ms(H0 + 29 * HOUR);
    assert_eq!(
        post(&mock, "/batch", &upload(&[user_only("user-roll", "c4")]))
            .await
            .0,
        200
    );
    assert_eq!(
        stored_insert_ids(&mock),
        ["a0", "a1", "b0", "b1", "b2", "c1", "c2", "c4"]
    );
}

#[tokio::test]
async fn daily_quota_on_http_v2_is_a_profile_knob() {
    // spec §8.1, §15 #9: documented for Batch only; SDKs expect it on V2 too (default on)
    for on in [true, false] {
        let profile = FidelityProfile {
            daily_quota_on_http_v2: on,
            ..FidelityProfile::default()
        };
        let mock = builder().limits(quota(3)).profile(profile).start().await;
        let three: Vec<Value> = (0..3)
            .map(|i| user_only("user-v2q", &format!("x{i}")))
            .collect();
        assert_eq!(post(&mock, "/2/httpapi", &upload(&three)).await.0, 200);
        let (s, v) = post(&mock, "/2/httpapi", &upload(&[user_only("user-v2q", "x3")])).await;
        if on {
            assert_eq!(s, 429);
            assert_eq!(v["exceeded_daily_quota_users"], json!({"user-v2q": 3}));
            assert_eq!(v["eps_threshold"], json!(30));
        } else {
            assert_eq!(s, 200);
        }
    }
}

#[tokio::test]
async fn quota_and_eps_in_one_body() {
    // spec §5.4 Batch example: throttled_* and exceeded_daily_quota_* in one 429
    let limits = Limits {
        daily_quota: 4,
        eps_threshold_batch: 1,
        ..Limits::default()
    };
    let mock = builder().limits(limits).start().await;
    let q: Vec<Value> = (0..4)
        .map(|i| user_only("user-quota", &format!("q{i}")))
        .collect();
    assert_eq!(post(&mock, "/batch", &upload(&q)).await.0, 200);
    mock.clock().advance_ms(HOUR);
    // 31 events of one device in one request: judged on the usage before it (0), so all
    // are accepted; afterwards the device is over both the quota and 1 event/s.
    let hot = events(31, "device-hot");
    assert_eq!(post(&mock, "/batch", &upload(&hot)).await.0, 200);
    let req = [
        ev("device-calm", "c0"),
        user_only("user-quota", "q4"),
        ev("device-hot", "device-hot-31"),
    ];
    let (s, v) = post(&mock, "/batch", &upload(&req)).await;
    assert_eq!(s, 429);
    // device-hot is over the quota (31 >= 4) as well as over the EPS threshold: it is
    // reported under the quota only (the quota is checked first).
    assert_eq!(
        v,
        json!({
            "code": 429,
            "error": TOO_MANY,
            "eps_threshold": 1,
            "throttled_devices": {},
            "throttled_users": {},
            "throttled_events": [1, 2],
            "exceeded_daily_quota_users": {"user-quota": 4},
            "exceeded_daily_quota_devices": {"device-hot": 31}
        })
    );
}

#[tokio::test]
async fn silenced_devices_get_the_documented_400_and_admin_can_change_them() {
    // spec §5.1 silenced-device body; §14 item 4: silenced is checked before the 429 rules;
    // silenced devices come from the config and from POST/DELETE /__mock/silenced
    let config = MockConfig {
        silenced_devices: vec!["device-silenced".into()],
        ..MockConfig::default()
    };
    let mock = MockServer::builder()
        .config(config)
        .api_key(KEY)
        .virtual_clock(T0)
        .start()
        .await;
    let req = [
        ev("device-ok-1", "a"),
        ev("device-silenced", "b"),
        ev("device-ok-2", "c"),
    ];
    let (s, v) = post(&mock, "/2/httpapi", &upload(&req)).await;
    assert_eq!(s, 400);
    assert_eq!(
        v,
        json!({
            "code": 400,
            "error": "Events silenced for device_id",
            "silenced_devices": ["device-silenced"],
            "silenced_events": [1],
            "eps_threshold": 30,
            "throttled_devices": {},
            "throttled_events": [],
            "exceeded_daily_quota_devices": {}
        })
    );
    assert!(mock.events().is_empty());
    let (s, v) = post(
        &mock,
        "/__mock/silenced",
        &json!({"device_ids": ["device-ok-2"]}),
    )
    .await;
    assert_eq!((s, v), (200, json!({"silenced": 2})));
    let (s, v) = post(&mock, "/batch", &upload(&req)).await;
    assert_eq!(
        (s, v["silenced_events"].clone(), v["eps_threshold"].clone()),
        (400, json!([1, 2]), json!(1000))
    );
    let resp = reqwest::Client::new()
        .delete(format!("{}/__mock/silenced", mock.uri()))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 200);
    assert_eq!(post(&mock, "/2/httpapi", &upload(&req)).await.0, 200);
    assert_eq!(
        mock.stats()
            .events_rejected
            .by_reason
            .get(&amplitude_mock::RejectReason::Silenced),
        Some(&6)
    );
}
