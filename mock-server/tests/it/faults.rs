//! Fault injection over real HTTP with a real client (reqwest): one test per fault kind,
//! asserting both what the client saw and what the ledger stored (spec §5.2, §5.5, §5.6, §6).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test code: a failure is a panic

use amplitude_mock::{Fault, MockConfig, MockServer, MockServerBuilder};
use serde_json::{json, Value};
use std::time::{Duration, Instant};

const KEY: &str = "0123456789abcdef0123456789abcdef";
const T0: i64 = 1_700_000_000_000;

fn builder() -> MockServerBuilder {
    MockServer::builder().api_key(KEY).virtual_clock(T0)
}

/// A client that opens a fresh connection per request (a fault may kill a connection).
fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .pool_max_idle_per_host(0)
        .build()
        .unwrap()
}

fn batch(tag: &str, n: usize) -> Value {
    let events: Vec<Value> = (0..n)
        .map(|i| json!({"device_id": format!("device-{tag}"), "event_type": "tick", "insert_id": format!("{tag}-{i}")}))
        .collect();
    json!({"api_key": KEY, "events": events})
}

async fn send(mock: &MockServer, body: &Value) -> reqwest::Result<reqwest::Response> {
    client()
        .post(format!("{}/2/httpapi", mock.uri()))
        .json(body)
        .send()
        .await
}

async fn schedule(mock: &MockServer, faults: Value) -> Value {
    let resp = client()
        .post(format!("{}/__mock/faults", mock.uri()))
        .json(&faults)
        .send()
        .await
        .unwrap();
    let status = resp.status().as_u16();
    let v: Value = resp.json().await.unwrap();
    assert_eq!(status, 200, "{v}");
    v
}

fn fault_count(mock: &MockServer, kind: &str) -> (u64, u64) {
    mock.stats()
        .faults
        .get(kind)
        .map_or((0, 0), |c| (c.injected, c.committed))
}

fn has_io_kind(e: &(dyn std::error::Error + 'static), kind: std::io::ErrorKind) -> bool {
    let mut cur = Some(e);
    while let Some(err) = cur {
        if err
            .downcast_ref::<std::io::Error>()
            .is_some_and(|io| io.kind() == kind)
        {
            return true;
        }
        cur = err.source();
    }
    false
}

fn identity_holds(mock: &MockServer) {
    // spec §6: every received event is stored, deduplicated or rejected, nothing else
    let s = mock.stats();
    assert_eq!(
        s.events_received,
        s.events_stored + s.events_deduplicated + s.events_rejected.total,
        "{s:?}"
    );
}

#[tokio::test]
async fn status_503_three_times_stores_nothing() {
    let mock = builder().start().await;
    schedule(&mock, json!({"kind":"status","status":503,"count":3})).await;
    for i in 0..3 {
        let resp = send(&mock, &batch("a", 2)).await.unwrap();
        assert_eq!(resp.status().as_u16(), 503, "request {i}");
        let body: Value = resp.json().await.unwrap();
        assert_eq!(body, json!({"code":503,"error":"Service Unavailable"}));
    }
    let resp = send(&mock, &batch("a", 2)).await.unwrap();
    assert_eq!(
        resp.status().as_u16(),
        200,
        "the fourth request is past the count"
    );
    // spec §5.5: a 503 is never committed
    assert_eq!(mock.events().len(), 2);
    let s = mock.stats();
    assert_eq!(
        s.events_rejected
            .by_reason
            .get(&amplitude_mock::RejectReason::Fault),
        Some(&6)
    );
    assert_eq!(
        s.requests_by_status
            .get(&amplitude_mock::StatusKey::Status(503)),
        Some(&3)
    );
    assert_eq!(fault_count(&mock, "status"), (3, 0));
    let journal = mock.requests();
    assert_eq!(journal.len(), 4);
    assert!(journal[..3]
        .iter()
        .all(|e| e.fault.as_deref() == Some("status")
            && e.outcome == "fault"
            && e.status == 503
            && e.stored == 0
            && e.events == 2));
    assert_eq!(journal[3].fault, None);
    identity_holds(&mock);
}

#[tokio::test]
async fn committed_500_stores_then_answers_500() {
    let mock = builder().start().await;
    schedule(
        &mock,
        json!({"kind":"status","status":500,"committed":true,"count":1}),
    )
    .await;
    let resp = send(&mock, &batch("c", 3)).await.unwrap();
    assert_eq!(resp.status().as_u16(), 500);
    // spec §5.5: a 500 may have been committed: here it was
    assert_eq!(mock.events().len(), 3);
    assert_eq!(fault_count(&mock, "status"), (1, 1));
    let e = &mock.requests()[0];
    assert_eq!(
        (e.status, e.outcome.as_ref(), e.stored, e.fault.as_deref()),
        (500, "stored", 3, Some("status"))
    );
    // The sender retries with the same insert_ids: deduplicated (spec §9).
    let resp = send(&mock, &batch("c", 3)).await.unwrap();
    assert_eq!(resp.status().as_u16(), 200);
    assert_eq!(mock.events().len(), 3);
    assert_eq!(mock.stats().events_deduplicated, 3);
    identity_holds(&mock);
}

#[tokio::test]
async fn uncommitted_500_stores_nothing() {
    let mock = builder().start().await;
    schedule(
        &mock,
        json!({"kind":"status","status":500,"committed":false,"count":1}),
    )
    .await;
    let resp = send(&mock, &batch("u", 3)).await.unwrap();
    assert_eq!(resp.status().as_u16(), 500);
    assert!(
        mock.events().is_empty(),
        "spec §5.5: not committed this time"
    );
    assert_eq!(fault_count(&mock, "status"), (1, 0));
    assert_eq!(
        mock.stats()
            .events_rejected
            .by_reason
            .get(&amplitude_mock::RejectReason::Fault),
        Some(&3)
    );
    identity_holds(&mock);
}

#[tokio::test]
async fn html_502_page() {
    let mock = builder().start().await;
    schedule(&mock, json!({"kind":"html","status":502,"count":1})).await;
    let resp = send(&mock, &batch("h", 1)).await.unwrap();
    assert_eq!(resp.status().as_u16(), 502);
    assert_eq!(resp.headers()["content-type"], "text/html");
    let text = resp.text().await.unwrap();
    // spec §2: a load balancer's HTML page, not JSON
    assert!(
        text.starts_with("<html>") && text.contains("502 Bad Gateway"),
        "{text}"
    );
    assert!(serde_json::from_str::<Value>(&text).is_err());
    assert!(mock.events().is_empty());
    assert_eq!(fault_count(&mock, "html"), (1, 0));
    identity_holds(&mock);
}

#[tokio::test]
async fn waf_403_body() {
    let mock = builder().start().await;
    schedule(&mock, json!({"kind":"status","status":403,"count":1})).await;
    let resp = send(&mock, &batch("w", 1)).await.unwrap();
    assert_eq!(resp.status().as_u16(), 403);
    // spec §5.2: the WAF body
    assert_eq!(
        resp.json::<Value>().await.unwrap(),
        json!({"code":403,"error":"Forbidden"})
    );
    assert!(mock.events().is_empty());
    identity_holds(&mock);
}

#[tokio::test]
async fn empty_400_body() {
    let mock = builder().start().await;
    schedule(&mock, json!({"kind":"empty_400","count":1})).await;
    let resp = send(&mock, &batch("e", 2)).await.unwrap();
    assert_eq!(resp.status().as_u16(), 400);
    assert_eq!(resp.text().await.unwrap(), "{}");
    assert!(mock.events().is_empty(), "spec §6: a 400 stores nothing");
    assert_eq!(fault_count(&mock, "empty_400"), (1, 0));
    identity_holds(&mock);
}

#[tokio::test]
async fn delay_holds_the_response_after_storing() {
    let mock = builder().start().await;
    schedule(&mock, json!({"kind":"delay","ms":300,"count":1})).await;
    let start = Instant::now();
    let resp = send(&mock, &batch("d", 2)).await.unwrap();
    assert!(
        start.elapsed() >= Duration::from_millis(300),
        "{:?}",
        start.elapsed()
    );
    assert_eq!(resp.status().as_u16(), 200);
    assert_eq!(mock.events().len(), 2);
    assert_eq!(fault_count(&mock, "delay"), (1, 1));
    // A client that gives up first (spec §5.6: it synthesizes 408 and retries) finds the
    // events stored anyway.
    schedule(
        &mock,
        json!({"kind":"delay","median_ms":300,"sigma":0.0,"count":1}),
    )
    .await;
    let err = client()
        .post(format!("{}/2/httpapi", mock.uri()))
        .timeout(Duration::from_millis(100))
        .json(&batch("d2", 1))
        .send()
        .await
        .unwrap_err();
    assert!(err.is_timeout(), "{err:?}");
    assert_eq!(mock.events().len(), 3);
    identity_holds(&mock);
}

#[tokio::test]
async fn uniform_delay_within_bounds() {
    let mock = builder()
        .fault(Fault::delay_uniform(150, 250).count(1))
        .start()
        .await;
    let start = Instant::now();
    let resp = send(&mock, &batch("ud", 1)).await.unwrap();
    assert_eq!(resp.status().as_u16(), 200);
    assert!(
        start.elapsed() >= Duration::from_millis(150),
        "{:?}",
        start.elapsed()
    );
}

#[tokio::test]
async fn reset_before_any_response() {
    let mock = builder().start().await;
    schedule(&mock, json!({"kind":"reset","count":1})).await;
    let err = send(&mock, &batch("r", 2)).await.unwrap_err();
    assert!(
        has_io_kind(&err, std::io::ErrorKind::ConnectionReset),
        "expected a reset: {err:?}"
    );
    assert!(mock.events().is_empty());
    let s = mock.stats();
    assert_eq!(s.requests_cut, 1);
    assert_eq!(fault_count(&mock, "reset"), (1, 0));
    let e = &mock.requests()[0];
    assert_eq!(
        (e.status, e.fault.as_deref(), e.events),
        (0, Some("reset"), 2)
    );
    identity_holds(&mock);
}

#[tokio::test]
async fn committed_reset_loses_only_the_answer() {
    let mock = builder()
        .fault(Fault::reset().committed(true).count(1))
        .start()
        .await;
    let err = send(&mock, &batch("rc", 2)).await.unwrap_err();
    assert!(
        has_io_kind(&err, std::io::ErrorKind::ConnectionReset),
        "{err:?}"
    );
    assert_eq!(mock.events().len(), 2);
    assert_eq!(fault_count(&mock, "reset"), (1, 1));
    identity_holds(&mock);
}

#[tokio::test]
async fn close_without_response() {
    let mock = builder().start().await;
    schedule(&mock, json!({"kind":"close","count":1})).await;
    let err = send(&mock, &batch("x", 1)).await.unwrap_err();
    assert!(
        !has_io_kind(&err, std::io::ErrorKind::ConnectionReset),
        "a FIN, not a reset: {err:?}"
    );
    assert!(
        err.is_request() || err.is_connect() || err.to_string().contains("error sending request"),
        "{err:?}"
    );
    assert!(mock.events().is_empty());
    assert_eq!(mock.stats().requests_cut, 1);
    assert_eq!(fault_count(&mock, "close"), (1, 0));
    identity_holds(&mock);
}

#[tokio::test]
async fn truncate_cuts_the_body() {
    let mock = builder().start().await;
    schedule(&mock, json!({"kind":"truncate","count":1})).await;
    let resp = send(&mock, &batch("t", 2)).await.unwrap();
    assert_eq!(resp.status().as_u16(), 200, "the head arrives");
    let declared: usize = resp.headers()["content-length"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    let err = resp.bytes().await.unwrap_err();
    assert!(err.is_body() || err.is_decode(), "{err:?}");
    assert!(declared > 10);
    // Without a status the real response is cut: the events were committed (spec §5.5).
    assert_eq!(mock.events().len(), 2);
    assert_eq!(fault_count(&mock, "truncate"), (1, 1));
    identity_holds(&mock);
}

#[tokio::test]
async fn dribble_trickles_the_whole_body() {
    let mock = builder().start().await;
    schedule(
        &mock,
        json!({"kind":"dribble","ms":400,"chunks":4,"count":1}),
    )
    .await;
    let start = Instant::now();
    let mut resp = send(&mock, &batch("dr", 1)).await.unwrap();
    assert_eq!(resp.status().as_u16(), 200);
    let mut body = Vec::new();
    let mut pieces = 0;
    while let Some(c) = resp.chunk().await.unwrap() {
        pieces += 1;
        body.extend_from_slice(&c);
    }
    assert!(
        start.elapsed() >= Duration::from_millis(400),
        "{:?}",
        start.elapsed()
    );
    assert!(pieces >= 2, "arrived in {pieces} piece(s)");
    let v: Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(v["events_ingested"], 1, "spec §4: the real 200 body");
    assert_eq!(mock.events().len(), 1);
    assert_eq!(fault_count(&mock, "dribble"), (1, 1));
}

#[tokio::test]
async fn hang_until_the_client_gives_up() {
    let mock = builder().start().await;
    schedule(&mock, json!({"kind":"hang","count":1})).await;
    let err = client()
        .post(format!("{}/2/httpapi", mock.uri()))
        .timeout(Duration::from_millis(300))
        .json(&batch("hg", 2))
        .send()
        .await
        .unwrap_err();
    assert!(err.is_timeout(), "{err:?}");
    assert!(mock.events().is_empty());
    assert_eq!(fault_count(&mock, "hang"), (1, 0));
    let e = &mock.requests()[0];
    assert_eq!((e.status, e.fault.as_deref()), (0, Some("hang")));
    // The mock keeps serving others.
    assert_eq!(
        send(&mock, &batch("hg", 2))
            .await
            .unwrap()
            .status()
            .as_u16(),
        200
    );
    identity_holds(&mock);
}

#[tokio::test]
async fn hang_with_a_cap_closes() {
    let mock = builder().fault(Fault::hang().count(1)).start().await;
    mock.faults().clear();
    mock.faults()
        .push(
            Fault {
                ms: Some(200),
                ..Fault::hang()
            }
            .count(1),
        )
        .unwrap();
    let start = Instant::now();
    let err = send(&mock, &batch("hc", 1)).await.unwrap_err();
    assert!(start.elapsed() >= Duration::from_millis(200));
    assert!(!err.is_timeout(), "{err:?}");
}

#[tokio::test]
async fn the_done_when_script_in_one_call() {
    // Two 503s, a committed 500, a reset and a stall, against a retrying sender.
    let mock = builder().seed(42).start().await;
    let v = schedule(
        &mock,
        json!([
            {"kind":"status","status":503,"count":2},
            {"kind":"status","status":500,"committed":true,"count":1},
            {"kind":"reset","count":1},
            {"kind":"delay","ms":300,"count":1}
        ]),
    )
    .await;
    assert_eq!(v["scheduled"], json!([1, 2, 3, 4]));
    let mut seen = Vec::new();
    for _ in 0..6 {
        let r = send(&mock, &batch("s", 4)).await;
        seen.push(r.map_or(0, |r| r.status().as_u16()));
    }
    assert_eq!(seen, vec![503, 503, 500, 0, 200, 200]);
    // The committed 500 stored the 4 events; every retry after it was deduplicated (spec §9).
    assert_eq!(mock.events().len(), 4);
    let s = mock.stats();
    assert_eq!(s.events_deduplicated, 8);
    assert_eq!(
        s.events_rejected
            .by_reason
            .get(&amplitude_mock::RejectReason::Fault),
        Some(&12)
    );
    assert_eq!(fault_count(&mock, "status"), (3, 1));
    assert_eq!(fault_count(&mock, "reset"), (1, 0));
    assert_eq!(fault_count(&mock, "delay"), (1, 1));
    identity_holds(&mock);
    let metrics = client()
        .get(format!("{}/metrics", mock.uri()))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    for line in [
        "amplitude_mock_requests_total{route=\"/2/httpapi\",status=\"503\"} 2",
        "amplitude_mock_requests_total{route=\"/2/httpapi\",status=\"500\"} 1",
        "amplitude_mock_requests_total{route=\"/2/httpapi\",status=\"cut\"} 1",
        "amplitude_mock_requests_total{route=\"/2/httpapi\",status=\"200\"} 2",
        "amplitude_mock_faults_injected_total{kind=\"status\",committed=\"true\"} 1",
        "amplitude_mock_faults_injected_total{kind=\"status\",committed=\"false\"} 2",
        "amplitude_mock_faults_injected_total{kind=\"reset\",committed=\"false\"} 1",
        "amplitude_mock_faults_injected_total{kind=\"delay\",committed=\"true\"} 1",
        "amplitude_mock_events_total{outcome=\"stored\"} 4",
        "amplitude_mock_events_total{outcome=\"deduplicated\"} 8",
        "amplitude_mock_events_rejected_total{reason=\"fault\"} 12",
        "amplitude_mock_dedup_store_ids 4",
        "amplitude_mock_request_duration_seconds_count{route=\"/2/httpapi\"} 6",
        "amplitude_mock_faults_scheduled 0",
    ] {
        assert!(
            metrics.lines().any(|l| l == line),
            "missing `{line}` in\n{metrics}"
        );
    }
}

/// Statuses of `n` sequential requests against a mock seeded `seed` with a 30% 503 fault.
async fn pattern(seed: u64, n: usize) -> Vec<u16> {
    let mock = builder()
        .seed(seed)
        .fault(Fault::status(503).probability(0.3))
        .start()
        .await;
    let http = reqwest::Client::new();
    let mut out = Vec::new();
    for i in 0..n {
        let r = http
            .post(format!("{}/2/httpapi", mock.uri()))
            .json(&batch(&format!("p{i}"), 1))
            .send()
            .await
            .unwrap();
        out.push(r.status().as_u16());
    }
    out
}

#[tokio::test]
async fn same_seed_same_pattern_different_seed_different_pattern() {
    let a = pattern(7, 40).await;
    let b = pattern(7, 40).await;
    let c = pattern(8, 40).await;
    assert_eq!(a, b, "same seed, same request sequence: same faults");
    assert_ne!(a, c, "another seed: another pattern");
    let faults = a.iter().filter(|s| **s == 503).count();
    assert!((3..=25).contains(&faults), "about 30% of 40: {faults}");
    assert!(a.iter().all(|s| *s == 200 || *s == 503));
}

#[tokio::test]
async fn clear_reseeds_so_a_script_replays() {
    let mock = builder().seed(11).start().await;
    let http = reqwest::Client::new();
    let mut runs = Vec::new();
    for _ in 0..2 {
        let r = http
            .delete(format!("{}/__mock/faults", mock.uri()))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status().as_u16(), 200);
        schedule(&mock, json!({"kind":"empty_400","probability":0.5})).await;
        let mut run = Vec::new();
        for i in 0..20 {
            let r = http
                .post(format!("{}/2/httpapi", mock.uri()))
                .json(&batch(&format!("c{i}"), 1))
                .send()
                .await
                .unwrap();
            run.push(r.status().as_u16());
        }
        runs.push(run);
    }
    assert_eq!(runs[0], runs[1]);
    assert!(runs[0].contains(&400) && runs[0].contains(&200));
}

#[tokio::test]
async fn route_filter_and_time_window() {
    let mock = builder().start().await;
    schedule(&mock, json!({"kind":"status","status":502,"route":"/batch","from_ms":T0 + 1000, "until_ms": T0 + 2000})).await;
    assert_eq!(
        send(&mock, &batch("rf", 1))
            .await
            .unwrap()
            .status()
            .as_u16(),
        200
    );
    let to_batch = |tag: &'static str| {
        let uri = format!("{}/batch", mock.uri());
        async move {
            client()
                .post(uri)
                .json(&batch(tag, 1))
                .send()
                .await
                .unwrap()
                .status()
                .as_u16()
        }
    };
    assert_eq!(to_batch("b0").await, 200, "before the window");
    mock.clock().advance_ms(1000);
    assert_eq!(to_batch("b1").await, 502, "in the window");
    assert_eq!(
        to_batch("b2").await,
        502,
        "no count: every matching request"
    );
    mock.clock().advance_ms(1000);
    assert_eq!(to_batch("b3").await, 200, "the window is half-open");
}

#[tokio::test]
async fn invalid_faults_are_refused_with_the_field_named() {
    let mock = builder().start().await;
    let http = client();
    for (body, needle) in [
        (
            json!({"kind":"status","status":503,"committed":true}),
            "503",
        ),
        (json!({"kind":"status","count":1}), "status"),
        (json!({"kind":"delay","ms":5,"status":500}), "status"),
        (json!({"kind":"boom"}), "boom"),
        (
            json!([{"kind":"reset","count":1},{"kind":"reset","probabilty":0.5}]),
            "probabilty",
        ),
    ] {
        let r = http
            .post(format!("{}/__mock/faults", mock.uri()))
            .json(&body)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status().as_u16(), 400, "{body}");
        let v: Value = r.json().await.unwrap();
        assert!(v["error"].as_str().unwrap().contains(needle), "{v}");
    }
    let v: Value = http
        .get(format!("{}/__mock/faults", mock.uri()))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(v["faults"], json!([]), "all or nothing");
}

#[tokio::test]
async fn faults_from_the_config_file() {
    let config = MockConfig::from_toml_str(
        r#"
        seed = 3
        [[projects]]
        api_key = "0123456789abcdef0123456789abcdef"
        [[faults]]
        kind = "status"
        status = 504
        committed = true
        count = 1
        route = "/2/httpapi"
        "#,
        "test.toml",
    )
    .unwrap();
    let mock = MockServer::builder()
        .config(config)
        .virtual_clock(T0)
        .start()
        .await;
    assert_eq!(
        send(&mock, &batch("cf", 1))
            .await
            .unwrap()
            .status()
            .as_u16(),
        504
    );
    assert_eq!(
        mock.events().len(),
        1,
        "spec §5.5: a 504 may have been committed"
    );
    let bad = MockConfig::from_toml_str(
        "[[faults]]\nkind = \"status\"\nstatus = 503\ncommitted = true\n",
        "bad.toml",
    );
    assert!(bad.unwrap_err().to_string().contains("faults[0]"));
}
