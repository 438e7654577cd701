//! Accounting of requests without a response (the `"cut"` bucket) and of refused keys in
//! the journal (docs/faults.md, docs/fidelity.md).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test code: failing loudly is the point

use crate::common::*;
use amplitude_mock::Fault;
use serde_json::{json, Value};

#[tokio::test]
async fn requests_without_a_response_count_as_cut_and_the_buckets_sum_to_the_total() {
    let mock = builder()
        .fault(Fault::reset().count(1))
        .fault(Fault::close().count(1))
        .fault(Fault::truncate().count(1))
        .fault(
            Fault {
                ms: Some(50),
                ..Fault::hang()
            }
            .count(1),
        )
        .start()
        .await;
    let http = reqwest::Client::builder()
        .pool_max_idle_per_host(0)
        .build()
        .unwrap();
    let mut outcomes = Vec::new();
    for i in 0..6 {
        let r = http
            .post(format!("{}/2/httpapi", mock.uri()))
            .json(&upload(&events(1, &format!("dev-{i}"))))
            .send()
            .await;
        let ok = match r {
            Ok(r) => r.bytes().await.is_ok(),
            Err(_) => false,
        };
        outcomes.push(ok);
    }
    assert_eq!(outcomes, vec![false, false, false, false, true, true]);
    let st = mock.stats();
    use amplitude_mock::StatusKey;
    let want: std::collections::BTreeMap<StatusKey, u64> =
        [(StatusKey::Status(200), 2), (StatusKey::Cut, 4)]
            .into_iter()
            .collect();
    assert_eq!(st.requests_by_status, want);
    assert_eq!(st.requests_cut, 4);
    assert_eq!(st.requests_by_status.values().sum::<u64>(), 6);
    assert_eq!(mock.requests().len(), 6);
    let metrics = mock.metrics_text();
    assert!(
        metrics
            .lines()
            .any(|l| l == "amplitude_mock_requests_total{route=\"/2/httpapi\",status=\"cut\"} 4"),
        "{metrics}"
    );
    let (_, v) = get_json(&mock, "/__mock/stats").await;
    assert_eq!(v["requests_by_status"], json!({"200": 2, "cut": 4}));
}

#[tokio::test]
async fn the_journal_keeps_the_events_of_refused_keys() {
    let mock = builder()
        .eu_api_key("fedcba9876543210fedcba9876543210")
        .journal_bodies(true)
        .start()
        .await;
    let evs = events(2, "dev-a");
    for key in [
        "not-a-known-key-0000000000",
        "fedcba9876543210fedcba9876543210",
    ] {
        let (s, _) = post(&mock, "/2/httpapi", &json!({"api_key": key, "events": evs})).await;
        assert_eq!(s, 400, "{key}: unknown here, or an EU key on the US host");
    }
    let j = mock.requests();
    assert_eq!(j.len(), 2);
    for r in &j {
        assert_eq!(r.outcome, "invalid_api_key");
        assert_eq!(r.stored, 0);
        let sent: Value = serde_json::from_str(r.events_json.as_ref().unwrap().get()).unwrap();
        assert_eq!(sent, json!(evs));
    }
    assert!(mock.events().is_empty());
}
