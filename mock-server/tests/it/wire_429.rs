//! One truth about the 429 body (issue 20, F): each 429 the behaviour reference documents
//! (spec §5.4: the V2 example, EPS only; the Batch example, with daily quota), built with
//! `amplitude-wire`'s constructors, equals what the mock sends for the same situation: the
//! `exceeded_daily_quota_*` objects appear only when an identity is over its quota.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test code: a failure is a panic

use crate::common::{builder, post, upload};
use amplitude_mock::Limits;
use amplitude_wire::{RateMap, ResponseBody};
use serde_json::{json, Value};

fn device(d: &str, insert_id: &str) -> Value {
    json!({"device_id": d, "event_type": "tick", "insert_id": insert_id})
}

fn user(u: &str, insert_id: &str) -> Value {
    json!({"user_id": u, "event_type": "tick", "insert_id": insert_id})
}

fn many(n: usize, f: fn(&str, &str) -> Value, id: &str) -> Vec<Value> {
    (0..n).map(|i| f(id, &format!("{id}-{i}"))).collect()
}

fn rates(pairs: &[(&str, u64)]) -> RateMap {
    pairs.iter().map(|(k, v)| ((*k).to_owned(), *v)).collect()
}

#[tokio::test]
async fn the_v2_example_429_eps_only_has_no_quota_maps() {
    // spec §5.4, V2 example: a throttled device and a throttled user; no quota keys.
    let limits = Limits {
        eps_threshold_http_v2: 1,
        ..Limits::default()
    };
    let mock = builder().limits(limits).start().await;
    let mut warm = many(45, device, "device-hot");
    warm.extend(many(45, user, "user-hot"));
    assert_eq!(post(&mock, "/2/httpapi", &upload(&warm)).await.0, 200);
    let req = [
        device("device-hot", "x-0"),
        user("user-hot", "x-1"),
        device("device-cold", "x-2"),
    ];
    let (status, got) = post(&mock, "/2/httpapi", &upload(&req)).await;
    assert_eq!(status, 429, "{got}");
    let want = ResponseBody {
        throttled_devices: Some(rates(&[("device-hot", 2)])),
        throttled_users: Some(rates(&[("user-hot", 2)])),
        throttled_events: Some(vec![0, 1]),
        ..ResponseBody::too_many_requests(1)
    };
    assert_eq!(got, serde_json::to_value(&want).unwrap());
    assert!(got.get("exceeded_daily_quota_users").is_none());
    assert_eq!(serde_json::from_value::<ResponseBody>(got).unwrap(), want);
}

#[tokio::test]
async fn the_batch_example_429_with_quota_has_both_quota_maps() {
    // spec §5.4, Batch example: a throttled device and a user over the daily quota (§8.1);
    // both exceeded_daily_quota_* objects, the devices one empty.
    let limits = Limits {
        eps_threshold_batch: 1,
        daily_quota: 35,
        ..Limits::default()
    };
    let mock = builder().limits(limits).start().await;
    let mut warm = many(31, device, "device-hot");
    warm.extend(many(40, user, "user-quota"));
    assert_eq!(post(&mock, "/batch", &upload(&warm)).await.0, 200);
    let req = [
        device("device-hot", "x-0"),
        user("user-quota", "x-1"),
        device("device-cold", "x-2"),
    ];
    let (status, got) = post(&mock, "/batch", &upload(&req)).await;
    assert_eq!(status, 429, "{got}");
    let want = ResponseBody {
        throttled_devices: Some(rates(&[("device-hot", 2)])),
        throttled_users: Some(RateMap::new()),
        throttled_events: Some(vec![0, 1]),
        ..ResponseBody::too_many_requests(1)
    }
    .with_exceeded_daily_quota(RateMap::new(), rates(&[("user-quota", 40)]));
    assert_eq!(got, serde_json::to_value(&want).unwrap());
    assert_eq!(got["exceeded_daily_quota_devices"], json!({}));
}

#[tokio::test]
async fn a_canned_429_of_a_status_fault_is_the_empty_v2_body() {
    let mock = builder()
        .fault(amplitude_mock::Fault::status(429).count(1))
        .start()
        .await;
    let (status, got) = post(&mock, "/2/httpapi", &upload(&[device("device-1", "a")])).await;
    assert_eq!(status, 429);
    assert_eq!(
        got,
        serde_json::to_value(ResponseBody::too_many_requests(30)).unwrap()
    );
}
