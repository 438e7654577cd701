//! Every canned fault body equals the mock's real body for that status (docs/faults.md):
//! each status of `REAL_BODY_STATUSES` is provoked for real over HTTP and compared with the
//! body a `status` fault answers for the same request.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test code: failing loudly is the point

use crate::common::*;
use amplitude_mock::faults::REAL_BODY_STATUSES;
use amplitude_mock::{Fault, Limits, MockServer};
use serde_json::{json, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// Sends `body` to `/2/httpapi` once through a `status` fault of `status` and once for real;
/// returns (fault body, real status, real body).
async fn both(mock: &MockServer, status: u16, body: Vec<u8>) -> (Value, u16, Value) {
    mock.faults().push(Fault::status(status).count(1)).unwrap();
    let (s, canned) = post_raw(mock, "/2/httpapi", body.clone(), &[]).await;
    assert_eq!(s, status);
    let (real_status, real) = post_raw(mock, "/2/httpapi", body, &[]).await;
    (canned, real_status, real)
}

/// The body of a request whose body stalls past the read timeout (the real 408).
async fn real_408(mock: &MockServer) -> Value {
    let mut s = tokio::net::TcpStream::connect(mock.address())
        .await
        .unwrap();
    s.write_all(b"POST /2/httpapi HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n{")
        .await
        .unwrap();
    let mut out = Vec::new();
    s.read_to_end(&mut out).await.unwrap_or_default();
    let text = String::from_utf8_lossy(&out);
    assert!(text.starts_with("HTTP/1.1 408"), "{text}");
    let body = text.split("\r\n\r\n").nth(1).unwrap();
    serde_json::from_str(body).unwrap()
}

#[tokio::test]
async fn canned_bodies_are_the_real_bodies() {
    let limits = Limits {
        eps_threshold_http_v2: 1,
        eps_window_ms: 1_000,
        max_events_per_request: 3,
        ..Limits::default()
    };
    let mock = builder().limits(limits).read_timeout_ms(200).start().await;
    let mut checked = Vec::new();
    for status in REAL_BODY_STATUSES {
        let (canned, real) = match status {
            200 => {
                let (c, s, r) = both(
                    &mock,
                    200,
                    serde_json::to_vec(&upload(&events(1, "dev-200"))).unwrap(),
                )
                .await;
                assert_eq!(s, 200);
                (c, r)
            }
            400 => {
                let (c, s, r) = both(&mock, 400, b"{not json".to_vec()).await;
                assert_eq!(s, 400);
                (c, r)
            }
            403 => {
                // The WAF's body (spec §5.2): the mock never answers it on its own.
                mock.faults().push(Fault::status(403).count(1)).unwrap();
                let (_, c) = post(&mock, "/2/httpapi", &upload(&events(1, "dev-403"))).await;
                (
                    c,
                    serde_json::to_value(amplitude_wire::ResponseBody::forbidden()).unwrap(),
                )
            }
            408 => {
                mock.faults().push(Fault::status(408).count(1)).unwrap();
                let (_, c) = post(&mock, "/2/httpapi", &upload(&events(1, "dev-408"))).await;
                (c, real_408(&mock).await)
            }
            413 => {
                let (c, s, r) = both(
                    &mock,
                    413,
                    serde_json::to_vec(&upload(&events(4, "dev-413"))).unwrap(),
                )
                .await;
                assert_eq!(s, 413);
                (c, r)
            }
            429 => {
                // 2 events pass (the counts before are 0), the third is over 1 event/s.
                let (s, _) = post(&mock, "/2/httpapi", &upload(&events(2, "dev-429"))).await;
                assert_eq!(s, 200);
                let (c, s, mut r) = both(
                    &mock,
                    429,
                    serde_json::to_vec(&upload(&events(1, "dev-429"))).unwrap(),
                )
                .await;
                assert_eq!(s, 429);
                assert_eq!(r["throttled_devices"], json!({"dev-429": 2}));
                assert_eq!(r["throttled_events"], json!([0]));
                // The canned 429 names no identity: the same body with the lists emptied.
                r["throttled_devices"] = json!({});
                r["throttled_events"] = json!([]);
                (c, r)
            }
            other => panic!("REAL_BODY_STATUSES has {other}: add how to provoke it"),
        };
        assert_eq!(canned, real, "status {status}");
        checked.push(status);
    }
    assert_eq!(checked, vec![200, 400, 403, 408, 413, 429]);
    assert_eq!(
        serde_json::to_value(amplitude_mock::faults::canned_body(
            413,
            &amplitude_mock::faults::CannedContext {
                eps_threshold: 30,
                events: 0,
                payload_size_bytes: 0,
                now_ms: T0,
            }
        ))
        .unwrap(),
        json!({"code":413,"error":"Payload too large"})
    );
}

#[tokio::test]
async fn statuses_without_a_real_body_answer_the_reason_phrase() {
    let mock = mock().await;
    for (status, reason) in [
        (500, "Internal Server Error"),
        (502, "Bad Gateway"),
        (503, "Service Unavailable"),
        (504, "Gateway Timeout"),
    ] {
        mock.faults().push(Fault::status(status).count(1)).unwrap();
        let (s, body) = post(&mock, "/2/httpapi", &upload(&events(1, "dev"))).await;
        assert_eq!(
            (s, body),
            (status, json!({"code": status, "error": reason}))
        );
    }
}
