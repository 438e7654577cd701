//! Request assertions and expectations (issue 20, E): `received_requests()` has every
//! request with its headers and bodies; each expectation passes when met and fails with a
//! message naming what was seen when not (checked by `verify()` and on drop).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test code: a failure is a panic

use crate::common::{builder, events, post, post_raw, upload, SEC, T0};
use amplitude_mock::{Limits, MockServer};
use std::io::Write;

fn gzip(v: &serde_json::Value) -> Vec<u8> {
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    e.write_all(&serde_json::to_vec(v).unwrap()).unwrap();
    e.finish().unwrap()
}

#[tokio::test]
async fn received_requests_have_headers_raw_and_decoded_bodies_without_journal_bodies() {
    let mock = builder().start().await;
    let body = upload(&events(2, "device-1"));
    let gz = gzip(&body);
    let (s, _) = post_raw(
        &mock,
        "/2/httpapi",
        gz.clone(),
        &[
            ("content-encoding", "gzip"),
            ("authorization", "Bearer secret-token-0123456789"),
            ("x-trace", "t-1"),
        ],
    )
    .await;
    assert_eq!(s, 200);
    let r = mock.received_requests();
    assert_eq!(r.len(), 1);
    let r = &r[0];
    assert_eq!(
        (r.method.as_str(), r.path.as_str(), r.status),
        ("POST", "/2/httpapi", 200)
    );
    assert_eq!(r.raw_body.as_ref(), gz.as_slice());
    assert_eq!(r.json().unwrap(), body);
    assert_eq!(r.events().len(), 2);
    assert!(r.is_gzip() && r.is_upload());
    assert_eq!(r.header("X-Trace"), Some("t-1"));
    let auth = r.header("authorization").unwrap();
    assert!(!auth.contains("secret-token"), "not redacted: {auth}");
    assert_eq!(r.response_json().unwrap()["events_ingested"], 2);
    // The /__mock/requests JSON keeps its shape: no headers or bodies in it.
    let j = serde_json::to_value(&mock.requests()[0]).unwrap();
    assert!(j.get("headers").is_none() && j.get("raw_body").is_none());
}

#[tokio::test]
async fn the_journal_is_bounded_by_count_and_bytes() {
    let small = builder()
        .ledger(amplitude_mock::LedgerConfig {
            journal_max_body_bytes: 400,
            ..Default::default()
        })
        .start()
        .await;
    for i in 0..5 {
        post(
            &small,
            "/2/httpapi",
            &upload(&events(1, &format!("device-{i}"))),
        )
        .await;
    }
    let kept = small.received_requests();
    let bytes: usize = kept.iter().map(|r| r.raw_body.len()).sum();
    assert!(
        kept.len() < 5 && bytes <= 400,
        "{} kept, {bytes} bytes",
        kept.len()
    );

    let mock = builder()
        .ledger(amplitude_mock::LedgerConfig {
            journal_capacity: 3,
            ..Default::default()
        })
        .start()
        .await;
    for i in 0..5 {
        assert_eq!(
            post(
                &mock,
                "/2/httpapi",
                &upload(&events(1, &format!("device-{i}")))
            )
            .await
            .0,
            200
        );
    }
    let ids: Vec<u64> = mock.received_requests().iter().map(|r| r.id).collect();
    assert_eq!(ids, [3, 4, 5]);
    assert_eq!(mock.state().ledger().requests_evicted(), 2);
    // Evicted requests make an expectation fail loudly rather than silently pass.
    mock.expect_every_request_gzip();
    let msg = mock.check_expectations().unwrap_err();
    assert!(msg.contains("evicted 2 requests"), "{msg}");
    mock.clear_expectations();
}

#[tokio::test]
async fn expect_uploads_passes_when_met_and_names_the_count_when_not() {
    let mock = builder().start().await;
    mock.expect_uploads(2);
    mock.expect_uploads(1..=3);
    mock.expect_uploads(2..);
    for d in ["device-1", "device-2"] {
        post(&mock, "/2/httpapi", &upload(&events(1, d))).await;
    }
    mock.verify();
    mock.expect_uploads(3..5);
    let msg = mock.check_expectations().unwrap_err();
    assert!(msg.contains("1 of 4 expectations not met"), "{msg}");
    assert!(
        msg.contains("expected between 3 and 4 upload requests"),
        "{msg}"
    );
    assert!(msg.contains("got: 2 (request ids [1, 2])"), "{msg}");
    mock.clear_expectations();
}

#[tokio::test]
async fn expect_every_request_gzip_both_ways() {
    let mock = builder().start().await;
    mock.expect_every_request_gzip();
    let body = upload(&events(1, "device-1"));
    post_raw(
        &mock,
        "/2/httpapi",
        gzip(&body),
        &[("content-encoding", "gzip")],
    )
    .await;
    mock.verify();
    post(&mock, "/batch", &upload(&events(1, "device-2"))).await;
    let msg = mock.check_expectations().unwrap_err();
    assert!(
        msg.contains("expected every upload request with Content-Encoding: gzip"),
        "{msg}"
    );
    assert!(
        msg.contains("1 not gzipped: request 2 /batch (content-encoding: none)"),
        "{msg}"
    );
    mock.clear_expectations();
}

#[tokio::test]
async fn expect_no_request_after_both_ways() {
    let mock = builder().start().await;
    mock.expect_no_request_after(T0 + 10 * SEC);
    post(&mock, "/2/httpapi", &upload(&events(1, "device-1"))).await;
    mock.clock().advance_ms(10 * SEC);
    post(&mock, "/2/httpapi", &upload(&events(1, "device-2"))).await;
    mock.verify();
    mock.clock().advance_ms(1);
    post(&mock, "/2/httpapi", &upload(&events(1, "device-3"))).await;
    let msg = mock.check_expectations().unwrap_err();
    assert!(
        msg.contains(&format!(
            "request 3 /2/httpapi at {} ms (+1 ms)",
            T0 + 10 * SEC + 1
        )),
        "{msg}"
    );
    mock.clear_expectations();
}

#[tokio::test]
async fn expect_device_never_sent_inside_throttle_window_both_ways() {
    let limits = Limits {
        eps_threshold_http_v2: 1,
        ..Limits::default()
    };
    let mock = builder().limits(limits).start().await;
    mock.expect_device_never_sent_inside_throttle_window("device-hot");
    assert_eq!(
        post(&mock, "/2/httpapi", &upload(&events(40, "device-hot")))
            .await
            .0,
        200
    );
    let again = upload(&[crate::common::ev("device-hot", "again-1")]);
    assert_eq!(post(&mock, "/2/httpapi", &again).await.0, 429);
    // Another device may go on; the throttled one waits 30 s.
    post(&mock, "/2/httpapi", &upload(&events(1, "device-cold"))).await;
    mock.clock().advance_ms(30 * SEC);
    post(&mock, "/2/httpapi", &again).await;
    mock.verify();
    // Too early after a second 429.
    let mock2 = builder().limits(limits).start().await;
    mock2.expect_device_never_sent_inside_throttle_window("device-hot");
    post(&mock2, "/2/httpapi", &upload(&events(40, "device-hot"))).await;
    assert_eq!(post(&mock2, "/2/httpapi", &again).await.0, 429);
    mock2.clock().advance_ms(5 * SEC);
    post(&mock2, "/2/httpapi", &again).await;
    let msg = mock2.check_expectations().unwrap_err();
    assert!(
        msg.contains("request 3 sent it 5000 ms after the 429 of request 2 (window 30000 ms)"),
        "{msg}"
    );
    mock2.clear_expectations();
}

#[tokio::test]
#[should_panic(
    expected = "amplitude-mock: 1 of 1 expectations not met:\n  - expected exactly 1 upload requests"
)]
async fn an_unmet_expectation_panics_on_drop() {
    let mock = builder().start().await;
    mock.expect_uploads(1);
    drop(mock);
}

#[test]
fn drop_does_not_panic_again_while_panicking() {
    let r = std::panic::catch_unwind(|| {
        let mock = MockServer::builder().start_blocking();
        mock.expect_uploads(1);
        panic!("the test's own failure");
    });
    let e = r.unwrap_err();
    assert_eq!(e.downcast_ref::<&str>(), Some(&"the test's own failure"));
}
