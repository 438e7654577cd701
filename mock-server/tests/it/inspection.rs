//! Read-only inspection types (issue 20, D): `Stats` round-trips through `/__mock/stats`,
//! status keys are typed, stored events answer their ids, duplicates are one call away.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test code: a failure is a panic

use crate::common::{builder, events, get_json, post, post_clock, upload, KEY};
use amplitude_mock::{Clock, Fault, RejectReason, Stats, StatusKey};
use serde_json::json;

#[tokio::test]
async fn get_stats_deserializes_into_stats_equal_to_mock_stats() {
    let mock = builder()
        .limits(amplitude_mock::Limits {
            eps_threshold_http_v2: 1,
            ..Default::default()
        })
        .start()
        .await;
    // 200, then a duplicate, a 429, a 400, a committed 500 fault and a cut request.
    assert_eq!(
        post(&mock, "/2/httpapi", &upload(&events(2, "device-1")))
            .await
            .0,
        200
    );
    assert_eq!(
        post(&mock, "/2/httpapi", &upload(&events(2, "device-1")))
            .await
            .0,
        200
    );
    assert_eq!(
        post(&mock, "/2/httpapi", &upload(&events(40, "device-2")))
            .await
            .0,
        200
    );
    let hot = upload(&[crate::common::ev("device-2", "again-1")]);
    assert_eq!(post(&mock, "/2/httpapi", &hot).await.0, 429);
    let bad = json!({"api_key": KEY, "events": [{"device_id": "device-3"}]});
    assert_eq!(post(&mock, "/2/httpapi", &bad).await.0, 400);
    mock.faults()
        .push_all(vec![
            Fault::status(500).committed(true).count(1),
            Fault::reset().count(1),
        ])
        .unwrap();
    assert_eq!(
        post(&mock, "/2/httpapi", &upload(&events(1, "device-4")))
            .await
            .0,
        500
    );
    let cut = reqwest::Client::new()
        .post(format!("{}/2/httpapi", mock.uri()))
        .json(&upload(&events(1, "device-5")))
        .send()
        .await;
    assert!(cut.is_err());

    let (status, v) = get_json(&mock, "/__mock/stats").await;
    assert_eq!(status, 200);
    let read_back: Stats = serde_json::from_value(v.clone()).unwrap();
    let stats = mock.stats();
    assert_eq!(read_back, stats);
    // Typed keys, and the JSON shape stays: status strings and snake_case reasons.
    assert_eq!(
        stats.requests_by_status.get(&StatusKey::Status(429)),
        Some(&1)
    );
    assert_eq!(stats.requests_by_status.get(&StatusKey::Cut), Some(&1));
    assert_eq!(
        stats
            .events_rejected
            .by_reason
            .get(&RejectReason::Throttled),
        Some(&1)
    );
    assert_eq!(v["requests_by_status"]["429"], 1);
    assert_eq!(v["requests_by_status"]["cut"], 1);
    assert_eq!(v["events_rejected"]["by_reason"]["throttled"], 1);
    assert_eq!(v["faults"]["reset"]["injected"], 1);
    assert_eq!(serde_json::to_value(&stats).unwrap(), v);
}

#[test]
fn status_keys_parse_and_print_as_the_stats_json_keys() {
    for (k, s) in [(StatusKey::Status(200), "200"), (StatusKey::Cut, "cut")] {
        assert_eq!(k.to_string(), s);
        assert_eq!(s.parse::<StatusKey>().unwrap(), k);
    }
    assert_eq!(StatusKey::from(0), StatusKey::Cut);
    assert!("20".parse::<StatusKey>().is_err());
    assert!(StatusKey::Status(599) < StatusKey::Cut);
}

#[tokio::test]
async fn stored_events_answer_their_ids_and_duplicates_are_one_call_away() {
    let mock = builder().start().await;
    let e = json!({"device_id": "dev-1", "user_id": "user-12345", "event_type": "A", "insert_id": "ins-1"});
    assert_eq!(
        post(&mock, "/2/httpapi", &upload(std::slice::from_ref(&e)))
            .await
            .0,
        200
    );
    assert_eq!(
        post(&mock, "/2/httpapi", &upload(std::slice::from_ref(&e)))
            .await
            .0,
        200
    );
    let stored = mock.events();
    assert_eq!(stored.len(), 1);
    let s = &stored[0];
    assert_eq!(s.insert_id().as_deref(), Some("ins-1"));
    assert_eq!(s.device_id().as_deref(), Some("dev-1"));
    assert_eq!(s.user_id().as_deref(), Some("user-12345"));
    assert_eq!(s.json()["event_type"], "A");
    let d = mock.duplicates();
    assert_eq!(d.len(), 1);
    assert_eq!(d[0].insert_id, "ins-1");
    assert_eq!(d[0].duplicate_of, Some(s.seq));
    assert!(mock.property_drops().is_empty());
    let anonymous = json!({"device_id": "dev-2", "event_type": "B"});
    assert_eq!(
        post(&mock, "/2/httpapi", &upload(&[anonymous])).await.0,
        200
    );
    let last = mock.events().pop().unwrap();
    assert_eq!((last.insert_id(), last.user_id()), (None, None));
}

#[tokio::test]
async fn stored_events_and_route_labels_name_the_api_as_before() {
    // the ledger's and /metrics' route names come from amplitude_wire::Api: JSON unchanged
    let mock = builder().start().await;
    assert_eq!(
        post(&mock, "/2/httpapi", &upload(&events(1, "device-1")))
            .await
            .0,
        200
    );
    assert_eq!(
        post(&mock, "/batch", &upload(&events(1, "device-2")))
            .await
            .0,
        200
    );
    let (_, v) = get_json(&mock, "/__mock/events").await;
    let names: Vec<&str> = v
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["endpoint"].as_str().unwrap())
        .collect();
    assert_eq!(names, vec!["http_v2", "batch"]);
    let m = mock.metrics_text();
    for route in ["/2/httpapi", "/batch"] {
        let line = format!("amplitude_mock_requests_total{{route=\"{route}\",status=\"200\"}} 1");
        assert!(m.lines().any(|l| l == line), "{line} in {m}");
    }
}

/// Bad input to the inspection routes is named (400), a known route asked with another
/// method is 405 with `Allow`, and the clock refuses times outside 1970..=9999 while still
/// moving within them (docs/architecture.md, "/__mock/ routes").
#[tokio::test]
async fn admin_routes_name_bad_input_and_wrong_methods() {
    let mock = builder().virtual_clock(1_700_000_000_000).start().await;
    assert_eq!(
        post(&mock, "/2/httpapi", &upload(&events(3, "device-1")))
            .await
            .0,
        200
    );
    let (status, v) = get_json(&mock, "/__mock/events?limit=abc").await;
    assert_eq!(status, 400);
    assert_eq!(
        v["error"],
        r#"limit must be a non-negative integer, got "abc""#
    );
    let (status, v) = get_json(&mock, "/__mock/events?limit=2").await;
    assert_eq!((status, v.as_array().map(Vec::len)), (200, Some(2)));
    assert_eq!(get_json(&mock, "/__mock/requests?limit=-1").await.0, 400);
    let (status, v) = get_json(&mock, "/__mock/users").await;
    assert_eq!(
        (status, v["error"].as_str()),
        (400, Some("give user_id or device_id"))
    );

    let http = reqwest::Client::new();
    let reset = http
        .get(format!("{}/__mock/reset", mock.uri()))
        .send()
        .await
        .unwrap();
    assert_eq!(reset.status().as_u16(), 405);
    assert_eq!(reset.headers()["allow"], "POST");
    let stats = http
        .delete(format!("{}/__mock/stats", mock.uri()))
        .send()
        .await
        .unwrap();
    assert_eq!(stats.status().as_u16(), 405);
    let nothing = http
        .get(format!("{}/__mock/nothing", mock.uri()))
        .send()
        .await
        .unwrap();
    assert_eq!(nothing.status().as_u16(), 404);
    assert_eq!(mock.stats().events_stored, 3, "nothing was reset");

    for bad in [
        json!({"set_ms": -5}),
        json!({"set_ms": i64::MAX}),
        json!({"advance_ms": -99_999_999_999_999_999_i64}),
        json!({"advance_ms": i64::MAX}),
    ] {
        let (status, v) = post_clock(&mock, bad.clone()).await;
        assert_eq!(status, 400, "{bad}");
        assert!(
            v["error"]
                .as_str()
                .unwrap()
                .starts_with("the clock must stay between 0"),
            "{v}"
        );
    }
    assert_eq!(
        mock.clock().now_ms(),
        1_700_000_000_000,
        "a refused command moves nothing"
    );
    let (status, v) = post_clock(&mock, json!({"advance_ms": -1_000})).await;
    assert_eq!(
        (status, v["now_ms"].as_i64()),
        (200, Some(1_699_999_999_000))
    );
    let (status, v) = post_clock(&mock, json!({"set_ms": 0})).await;
    assert_eq!((status, v["now_ms"].as_i64()), (200, Some(0)));
}
