//! Spec §14.1 vectors #1-10 over real HTTP, plus the transport rules of §2.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test code: failing loudly is the point

use crate::common::*;
use serde_json::json;

#[tokio::test]
async fn v1_success_body_and_stored_event() {
    // spec §14.1 #1, §4: 200 with the four integer fields; payload_size_bytes = raw body length
    let mock = mock().await;
    let body = serde_json::to_vec(
        &json!({"api_key": KEY, "events": [{"user_id": "user-12345", "event_type": "A"}]}),
    )
    .unwrap();
    let len = body.len() as u64;
    let (status, v) = post_raw(&mock, "/2/httpapi", body, &[]).await;
    assert_eq!(status, 200);
    assert_eq!(
        v,
        json!({"code": 200, "events_ingested": 1, "payload_size_bytes": len, "server_upload_time": T0})
    );
    let stored = mock.events();
    assert_eq!(stored.len(), 1);
    assert_eq!(stored[0].server_upload_time, T0);
    let ev: serde_json::Value = serde_json::from_str(stored[0].event.get()).unwrap();
    assert_eq!(ev, json!({"user_id": "user-12345", "event_type": "A"}));
}

#[tokio::test]
async fn v2_invalid_json() {
    // spec §14.1 #2, §5.1
    let mock = mock().await;
    let (status, v) = post_raw(&mock, "/2/httpapi", b"{not json".to_vec(), &[]).await;
    assert_eq!(
        (status, v),
        (
            400,
            json!({"code": 400, "error": "Invalid JSON request body"})
        )
    );
    let (status, v) = post_raw(&mock, "/batch", Vec::new(), &[]).await;
    assert_eq!(
        (status, v),
        (400, json!({"code": 400, "error": "Missing request body"}))
    );
}

#[tokio::test]
async fn v3_v4_missing_fields() {
    // spec §14.1 #3 and #4, §5.1
    let mock = mock().await;
    let (s, v) = post(
        &mock,
        "/2/httpapi",
        &json!({"events": [{"user_id": "user-12345", "event_type": "A"}]}),
    )
    .await;
    assert_eq!(
        (s, v),
        (
            400,
            json!({"code": 400, "error": "Request missing required field", "missing_field": "api_key"})
        )
    );
    let (s, v) = post(&mock, "/2/httpapi", &json!({"api_key": KEY})).await;
    assert_eq!(
        (s, v),
        (
            400,
            json!({"code": 400, "error": "Request missing required field", "missing_field": "events"})
        )
    );
    assert!(mock.events().is_empty());
}

#[tokio::test]
async fn v5_unknown_key_and_wrong_region() {
    // spec §14.1 #5, §1.1: a key used in the wrong region gets the same 400
    let mock = builder().eu_api_key("eu-key-123").start().await;
    let (s, v) = post(&mock, "/2/httpapi", &json!({"api_key": "K2", "events": []})).await;
    assert_eq!(
        (s, v),
        (400, json!({"code": 400, "error": "Invalid API key: K2"}))
    );
    let body = serde_json::to_vec(
        &json!({"api_key": "eu-key-123", "events": [{"device_id": "device-1", "event_type": "A"}]}),
    )
    .unwrap();
    let (s, v) = post_raw(&mock, "/2/httpapi", body.clone(), &[]).await;
    assert_eq!(
        (s, v),
        (
            400,
            json!({"code": 400, "error": "Invalid API key: eu-key-123"})
        )
    );
    let (s, _) = post_raw(
        &mock,
        "/2/httpapi",
        body,
        &[("host", "api.eu.amplitude.com")],
    )
    .await;
    assert_eq!(s, 200);
    let (s, _) = post_raw(
        &mock,
        "/2/httpapi",
        serde_json::to_vec(&json!({"api_key": KEY, "events": []})).unwrap(),
        &[("host", "api.eu.amplitude.com")],
    )
    .await;
    assert_eq!(s, 400);
}

#[tokio::test]
async fn v6_missing_event_type_rejects_whole_request() {
    // spec §14.1 #6, §6: nothing stored
    let mock = mock().await;
    let (s, v) = post(
        &mock,
        "/2/httpapi",
        &json!({"api_key": KEY, "events": [{"user_id": "user-12345", "event_type": "A"}, {"user_id": "user-12345"}, {"user_id": "user-12345"}]}),
    )
    .await;
    assert_eq!(
        (s, v),
        (
            400,
            json!({"code": 400, "error": "Request missing required field", "events_with_missing_fields": {"event_type": [1, 2]}})
        )
    );
    assert!(mock.events().is_empty());
    assert_eq!(mock.stats().events_rejected.total, 3);
}

#[tokio::test]
async fn v7_time_as_string_is_invalid() {
    // spec §14.1 #7, §3.4
    let mock = mock().await;
    let (s, v) = post(&mock, "/batch", &json!({"api_key": KEY, "events": [{"user_id": "user-12345", "event_type": "A", "time": "2024-01-01"}]})).await;
    assert_eq!(
        (s, v),
        (
            400,
            json!({"code": 400, "error": "Invalid field values on some events", "events_with_invalid_fields": {"time": [0]}})
        )
    );
}

#[tokio::test]
async fn v8_v9_short_ids_and_min_id_length() {
    // spec §14.1 #8 (UNCERTAIN, default: reject as observed) and #9 (options.min_id_length)
    let mock = mock().await;
    let ev = json!({"user_id": "42", "device_id": "device-12345", "event_type": "A"});
    let (s, v) = post(
        &mock,
        "/2/httpapi",
        &json!({"api_key": KEY, "events": [ev]}),
    )
    .await;
    assert_eq!(
        (s, v),
        (
            400,
            json!({"code": 400, "error": "Invalid id length for user_id or device_id", "events_with_invalid_id_lengths": {"user_id": [0]}})
        )
    );
    let (s, v) = post(
        &mock,
        "/2/httpapi",
        &json!({"api_key": KEY, "events": [ev], "options": {"min_id_length": 1}}),
    )
    .await;
    assert_eq!(s, 200, "{v}");
    assert_eq!(v["events_ingested"], 1);
}

#[tokio::test]
async fn v8_strip_profile_removes_the_short_id() {
    // spec §3.4 documented behaviour, behind profile short_id_policy = "strip"
    let profile = amplitude_mock::FidelityProfile {
        short_id_policy: amplitude_mock::profile::ShortIdPolicy::Strip,
        ..Default::default()
    };
    let mock = builder().profile(profile).start().await;
    let (s, _) = post(&mock, "/2/httpapi", &json!({"api_key": KEY, "events": [{"user_id": "42", "device_id": "device-12345", "event_type": "A"}]})).await;
    assert_eq!(s, 200);
    let ev: serde_json::Value = serde_json::from_str(mock.events()[0].event.get()).unwrap();
    assert_eq!(ev, json!({"device_id": "device-12345", "event_type": "A"}));
    let (s, v) = post(
        &mock,
        "/2/httpapi",
        &json!({"api_key": KEY, "events": [{"user_id": "42", "event_type": "A"}]}),
    )
    .await;
    assert_eq!(s, 400);
    assert_eq!(v["events_with_missing_fields"], json!({"device_id": [0]}));
}

#[tokio::test]
async fn reserved_id_values_are_invalid() {
    // spec §3.4 "Invalid ID values"
    let mock = mock().await;
    let (s, v) = post(
        &mock,
        "/2/httpapi",
        &json!({"api_key": KEY, "events": [
        {"user_id": "user-12345", "event_type": "A"},
        {"device_id": "00000000-0000-0000-0000-000000000000", "event_type": "A"},
        {"user_id": "Undefined", "event_type": "A"}]}),
    )
    .await;
    assert_eq!(s, 400);
    assert_eq!(
        v["events_with_invalid_fields"],
        json!({"device_id": [1], "user_id": [2]})
    );
}

#[tokio::test]
async fn v10_too_many_events_and_too_large() {
    // spec §14.1 #10, §3.4, §5.3
    let mock = mock().await;
    let (s, v) = post(
        &mock,
        "/2/httpapi",
        &json!({"api_key": KEY, "events": events(2_001, "device-1")}),
    )
    .await;
    assert_eq!(
        (s, v),
        (413, json!({"code": 413, "error": "Payload too large"}))
    );
    let (s, _) = post(
        &mock,
        "/2/httpapi",
        &json!({"api_key": KEY, "events": events(2_000, "device-1")}),
    )
    .await;
    assert_eq!(s, 200, "exactly 2,000 is allowed by default (spec §15 #6)");
    let big = "x".repeat(1_000);
    let evs: Vec<_> = (0..1_100).map(|i| json!({"device_id": format!("device-{i}"), "event_type": "A", "event_properties": {"p": big}})).collect();
    let body = json!({"api_key": KEY, "events": evs});
    let (s, _) = post(&mock, "/2/httpapi", &body).await;
    assert_eq!(s, 413, "over 1 MB on HTTP V2");
    let (s, _) = post(&mock, "/batch", &body).await;
    assert_eq!(s, 200, "under 20 MB on batch");
}

#[tokio::test]
async fn long_strings_are_truncated_by_default() {
    // spec §3.4 "String length" (server behaviour UNCERTAIN; default truncate)
    let mock = mock().await;
    let long = "é".repeat(1_500);
    let (s, _) = post(&mock, "/2/httpapi", &json!({"api_key": KEY, "events": [{"device_id": "device-1", "event_type": "A", "event_properties": {"s": long}}]})).await;
    assert_eq!(s, 200);
    let ev: serde_json::Value = serde_json::from_str(mock.events()[0].event.get()).unwrap();
    assert_eq!(
        ev["event_properties"]["s"]
            .as_str()
            .unwrap()
            .chars()
            .count(),
        1_024
    );
}

#[tokio::test]
async fn gzip_bodies_and_gzip_bombs() {
    // spec §2: Content-Encoding gzip; limits after decompression
    use std::io::Write;
    let mock = mock().await;
    let body =
        serde_json::to_vec(&json!({"api_key": KEY, "events": events(3, "device-1")})).unwrap();
    let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    enc.write_all(&body).unwrap();
    let z = enc.finish().unwrap();
    let zlen = z.len() as u64;
    let (s, v) = post_raw(&mock, "/2/httpapi", z, &[("content-encoding", "gzip")]).await;
    assert_eq!(s, 200);
    assert_eq!(v["events_ingested"], 3);
    assert_eq!(v["payload_size_bytes"], zlen);
    let mut bomb =
        serde_json::to_vec(&json!({"api_key": KEY, "events": events(1, "device-1")})).unwrap();
    bomb.extend(std::iter::repeat_n(b' ', 3_000_000));
    let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
    enc.write_all(&bomb).unwrap();
    let (s, v) = post_raw(
        &mock,
        "/2/httpapi",
        enc.finish().unwrap(),
        &[("content-encoding", "gzip")],
    )
    .await;
    assert_eq!(
        (s, v),
        (413, json!({"code": 413, "error": "Payload too large"}))
    );
}

#[tokio::test]
async fn cors_and_content_types() {
    // spec §2: Access-Control-Allow-Origin: *, permissive preflight; any JSON charset, text/plain beacons
    let mock = mock().await;
    let client = reqwest::Client::new();
    let pre = client
        .request(
            reqwest::Method::OPTIONS,
            format!("{}/2/httpapi", mock.uri()),
        )
        .header(
            "access-control-request-headers",
            "content-type, content-encoding",
        )
        .send()
        .await
        .unwrap();
    assert_eq!(pre.status().as_u16(), 204);
    assert_eq!(pre.headers()["access-control-allow-origin"], "*");
    for ct in [
        "application/json; charset=UTF-8",
        "text/plain;charset=UTF-8",
    ] {
        let r = client
            .post(format!("{}/2/httpapi", mock.uri()))
            .header("content-type", ct)
            .body(
                serde_json::to_vec(&json!({"api_key": KEY, "events": events(1, "device-1")}))
                    .unwrap(),
            )
            .send()
            .await
            .unwrap();
        assert_eq!(r.status().as_u16(), 200);
        assert_eq!(r.headers()["access-control-allow-origin"], "*");
    }
}

#[tokio::test]
async fn ledger_agrees_with_responses() {
    // spec §6: on non-200 nothing is stored; stored == sum of events_ingested of 200s (no duplicates here)
    let mock = mock().await;
    let mut ingested = 0;
    for (i, body) in [
        json!({"api_key": KEY, "events": events(5, "device-a")}),
        json!({"api_key": KEY, "events": [{"device_id": "device-b"}]}),
        json!({"api_key": KEY, "events": events(2, "device-c")}),
        json!({"api_key": "nope", "events": events(2, "device-c")}),
    ]
    .iter()
    .enumerate()
    {
        let (s, v) = post(
            &mock,
            if i % 2 == 0 { "/2/httpapi" } else { "/batch" },
            body,
        )
        .await;
        if s == 200 {
            ingested += v["events_ingested"].as_u64().unwrap();
        }
    }
    let stats = mock.stats();
    assert_eq!(ingested, 7);
    assert_eq!(stats.events_stored, ingested);
    assert_eq!(mock.events().len() as u64, ingested);
    assert_eq!(
        stats.events_received,
        stats.events_stored + stats.events_deduplicated + stats.events_rejected.total
    );
    assert_eq!(
        stats
            .requests_by_status
            .get(&amplitude_mock::StatusKey::Status(200)),
        Some(&2)
    );
    assert_eq!(
        stats
            .requests_by_status
            .get(&amplitude_mock::StatusKey::Status(400)),
        Some(&2)
    );
}

#[tokio::test]
async fn oversized_body_gets_a_413_not_a_broken_pipe() {
    // spec §5.3: SDKs split the batch on 413, so the client must read the 413 even when it
    // declared a body far over the limit (the mock discards the rest instead of hanging up)
    let mock = mock().await;
    let mut body =
        serde_json::to_vec(&json!({"api_key": KEY, "events": events(1, "device-1")})).unwrap();
    body.extend(std::iter::repeat_n(b' ', 8_000_000));
    let (s, v) = post_raw(&mock, "/2/httpapi", body, &[]).await;
    assert_eq!(
        (s, v),
        (413, json!({"code": 413, "error": "Payload too large"}))
    );
    assert!(mock.events().is_empty());
}
