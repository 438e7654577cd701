//! User and group properties over real HTTP: server order of operations (spec §3.3), the
//! silent 1,800/hour cap per Amplitude ID (spec §8.1, §6), `$skip_user_properties_sync`
//! (spec §3.2) and `$groupidentify` (spec §3.2, §11). Virtual time; no sleeps.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test code: failing loudly is the point

use crate::common::*;
use amplitude_mock::Limits;
use serde_json::{json, Value};

fn identify(user: &str, props: Value) -> Value {
    json!({"user_id": user, "event_type": "$identify", "user_properties": props})
}

async fn user_state(mock: &amplitude_mock::MockServer, query: &str) -> Value {
    let (s, v) = get_json(mock, &format!("/__mock/users?{query}")).await;
    assert_eq!(s, 200, "{v}");
    v
}

#[tokio::test]
async fn the_1801st_update_in_an_hour_is_dropped_and_the_first_after_the_hour_applies() {
    // spec §8.1: 1,800 user-property updates per hour per Amplitude ID, later ones dropped
    // silently (event stored, 200); the ledger says exactly which update was lost
    let mock = mock().await;
    let adds: Vec<Value> = (0..1_801)
        .map(|_| identify("user-cap", json!({"$add": {"n": 1}})))
        .collect();
    let (s, v) = post(&mock, "/batch", &upload(&adds)).await;
    assert_eq!((s, v["events_ingested"].clone()), (200, json!(1_801)));
    assert_eq!(mock.events().len(), 1_801);
    let state = user_state(&mock, "user_id=user-cap").await;
    assert_eq!(state["user_properties"], json!({"n": 1_800}));
    assert_eq!(
        (
            state["updates_applied"].clone(),
            state["updates_dropped"].clone()
        ),
        (json!(1_800), json!(1))
    );
    assert_eq!(
        (
            state["updates_in_window"].clone(),
            state["window_start_ms"].clone()
        ),
        (json!(1_800), json!(T0))
    );
    let (s, drops) = get_json(&mock, "/__mock/property_drops").await;
    assert_eq!(s, 200);
    let request_id = mock.requests()[0].id;
    assert_eq!(
        drops,
        json!([{
            "seq": 1_801,
            "request_id": request_id,
            "endpoint": "batch",
            "index": 1_800,
            "amplitude_id": state["amplitude_id"],
            "user_id": "user-cap",
            "device_id": null,
            "user_properties": {"$add": {"n": 1}},
            "at_ms": T0
        }])
    );
    // Last millisecond of the hour: still dropped.
    mock.clock().advance_ms(HOUR - 1);
    let late = identify("user-cap", json!({"$set": {"late": true}}));
    assert_eq!(post(&mock, "/2/httpapi", &upload(&[late])).await.0, 200);
    assert_eq!(
        user_state(&mock, "user_id=user-cap").await["user_properties"],
        json!({"n": 1_800})
    );
    // First update after the hour: applied, in a new window.
    mock.clock().advance_ms(1);
    let after = identify("user-cap", json!({"$set": {"after": true}}));
    assert_eq!(post(&mock, "/2/httpapi", &upload(&[after])).await.0, 200);
    let state = user_state(&mock, "user_id=user-cap").await;
    assert_eq!(state["user_properties"], json!({"n": 1_800, "after": true}));
    assert_eq!(
        (
            state["updates_in_window"].clone(),
            state["window_start_ms"].clone()
        ),
        (json!(1), json!(T0 + HOUR))
    );
    let stats = mock.stats();
    assert_eq!(
        (
            stats.property_updates_applied,
            stats.property_updates_dropped
        ),
        (1_801, 2)
    );
    assert_eq!(stats.events_stored, 1_803);
    let (_, http_stats) = get_json(&mock, "/__mock/stats").await;
    assert_eq!(
        (
            http_stats["property_updates_applied"].clone(),
            http_stats["property_updates_dropped"].clone()
        ),
        (json!(1_801), json!(2))
    );
    let drops = mock.state().ledger().property_drops();
    assert_eq!(
        drops.iter().map(|d| (d.seq, d.at_ms)).collect::<Vec<_>>(),
        [(Some(1_801), T0), (Some(1_802), T0 + HOUR - 1)]
    );
}

#[tokio::test]
async fn operations_apply_in_server_order_whatever_the_json_order() {
    // spec §3.3: $clearAll, $unset, $set, $setOnce, $add, $append, $prepend, $preInsert,
    // $postInsert, $remove
    let mock = mock().await;
    let first = identify(
        "user-ops",
        json!({"$set": {"gone": 1, "list": ["b"], "n": 1}}),
    );
    let second = identify(
        "user-ops",
        json!({
            "$remove": {"list": "b"},
            "$postInsert": {"list": "z"},
            "$preInsert": {"list": ["a", "b"]},
            "$prepend": {"list": "p"},
            "$append": {"list": "q"},
            "$add": {"n": 5},
            "$setOnce": {"n": 99, "once": "x"},
            "$set": {"n": 10},
            "$unset": {"gone": "-"}
        }),
    );
    assert_eq!(
        post(&mock, "/2/httpapi", &upload(&[first, second])).await.0,
        200
    );
    let state = user_state(&mock, "user_id=user-ops").await;
    // $set n=10, $setOnce keeps n and sets once, $add -> 15; list: ["b"] -> append q ->
    // prepend p -> preInsert a (b present) -> postInsert z -> remove b.
    assert_eq!(
        state["user_properties"],
        json!({"n": 15, "once": "x", "list": ["a", "p", "q", "z"]})
    );
    let clear = identify("user-ops", json!({"$set": {"fresh": 1}, "$clearAll": "-"}));
    assert_eq!(post(&mock, "/2/httpapi", &upload(&[clear])).await.0, 200);
    assert_eq!(
        user_state(&mock, "user_id=user-ops").await["user_properties"],
        json!({"fresh": 1})
    );
}

#[tokio::test]
async fn skip_user_properties_sync_neither_reads_nor_updates_nor_counts() {
    // spec §3.2 `$skip_user_properties_sync`
    let limits = Limits {
        property_updates_per_hour: 1,
        ..Limits::default()
    };
    let mock = builder().limits(limits).start().await;
    let mut skipped = identify("user-skip", json!({"$set": {"a": 1}}));
    skipped["$skip_user_properties_sync"] = json!(true);
    let applied = identify("user-skip", json!({"$set": {"b": 2}}));
    assert_eq!(
        post(&mock, "/2/httpapi", &upload(&[skipped, applied]))
            .await
            .0,
        200
    );
    let state = user_state(&mock, "user_id=user-skip").await;
    assert_eq!(state["user_properties"], json!({"b": 2}));
    let stats = mock.stats();
    assert_eq!(
        (
            stats.property_updates_applied,
            stats.property_updates_skipped,
            stats.property_updates_dropped
        ),
        (1, 1, 0)
    );
}

#[tokio::test]
async fn the_cap_is_per_amplitude_id_across_user_and_device_events() {
    // spec §8.1: the cap is per Amplitude ID; a device linked to a user shares its ID
    let limits = Limits {
        property_updates_per_hour: 3,
        ..Limits::default()
    };
    let mock = builder().limits(limits).start().await;
    let link = json!({"user_id": "user-a", "device_id": "device-a", "event_type": "$identify", "user_properties": {"$add": {"n": 1}}});
    let anon = json!({"device_id": "device-a", "event_type": "$identify", "user_properties": {"$add": {"n": 1}}});
    let other = identify("user-b", json!({"$add": {"n": 1}}));
    let req = [
        link,
        anon.clone(),
        identify("user-a", json!({"$add": {"n": 1}})),
        anon,
        other,
    ];
    assert_eq!(post(&mock, "/2/httpapi", &upload(&req)).await.0, 200);
    let a = user_state(&mock, "user_id=user-a").await;
    assert_eq!(
        (a["user_properties"].clone(), a["updates_dropped"].clone()),
        (json!({"n": 3}), json!(1))
    );
    assert_eq!(a["device_ids"], json!(["device-a"]));
    let by_device = user_state(&mock, "device_id=device-a").await;
    assert_eq!(by_device["amplitude_id"], a["amplitude_id"]);
    let b = user_state(&mock, "user_id=user-b").await;
    assert_eq!(
        (b["user_properties"].clone(), b["updates_dropped"].clone()),
        (json!({"n": 1}), json!(0))
    );
    assert_ne!(a["amplitude_id"], b["amplitude_id"]);
    let drops = mock.state().ledger().property_drops();
    assert_eq!(drops.len(), 1);
    assert_eq!(
        (
            drops[0].index,
            drops[0].device_id.as_deref(),
            drops[0].user_id.as_deref()
        ),
        (3, Some("device-a"), None)
    );
    let (s, _) = get_json(&mock, "/__mock/users?user_id=nobody-here").await;
    assert_eq!(s, 404);
}

#[tokio::test]
async fn dropped_updates_do_not_count_toward_the_cap_and_throttled_events_apply_nothing() {
    // spec §8.1 (silent drop) and §6 (a 429 stores nothing, so it updates nothing)
    let limits = Limits {
        property_updates_per_hour: 2,
        eps_threshold_http_v2: 1,
        ..Limits::default()
    };
    let mock = builder().limits(limits).start().await;
    let ups: Vec<Value> = (0..31)
        .map(|i| identify("user-t", json!({"$set": {"v": i}})))
        .collect();
    assert_eq!(post(&mock, "/2/httpapi", &upload(&ups)).await.0, 200);
    assert_eq!(
        user_state(&mock, "user_id=user-t").await["user_properties"],
        json!({"v": 1})
    );
    let (s, _) = post(
        &mock,
        "/2/httpapi",
        &upload(&[identify("user-t", json!({"$set": {"v": "throttled"}}))]),
    )
    .await;
    assert_eq!(s, 429);
    let state = user_state(&mock, "user_id=user-t").await;
    assert_eq!(
        (
            state["user_properties"].clone(),
            state["updates_dropped"].clone()
        ),
        (json!({"v": 1}), json!(29))
    );
    assert_eq!(mock.stats().property_updates_dropped, 29);
}

#[tokio::test]
async fn groupidentify_events_set_group_properties_and_other_events_do_not() {
    // spec §3.2: group_properties honoured only on `$groupidentify`; §11 group ops; not
    // subject to the user cap
    let limits = Limits {
        property_updates_per_hour: 0,
        ..Limits::default()
    };
    let mock = builder().limits(limits).start().await;
    let gi = json!({
        "device_id": "device-g", "event_type": "$groupidentify",
        "groups": {"org": "acme"},
        "group_properties": {"$set": {"plan": "pro"}, "$add": {"seats": 3}}
    });
    let plain = json!({
        "device_id": "device-g", "event_type": "click",
        "groups": {"org": "acme"},
        "group_properties": {"$set": {"plan": "free"}}
    });
    assert_eq!(
        post(&mock, "/2/httpapi", &upload(&[gi, plain])).await.0,
        200
    );
    let (s, v) = get_json(&mock, "/__mock/groups?group_type=org&group_value=acme").await;
    assert_eq!(
        (s, v),
        (
            200,
            json!({"group_type": "org", "group_value": "acme", "group_properties": {"plan": "pro", "seats": 3}})
        )
    );
    assert_eq!(
        get_json(&mock, "/__mock/groups?group_type=org&group_value=other")
            .await
            .0,
        404
    );
    assert_eq!(
        get_json(&mock, "/__mock/groups?group_type=org").await.0,
        400
    );
    assert_eq!(mock.stats().property_updates_dropped, 0);
}
