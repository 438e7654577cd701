//! The `refuse` fault: the listener is closed during a window of the mock clock (the kernel
//! refuses connections) and reopened on the same address. Virtual time; the test waits for
//! the listener's state through `wait_refusing` (a watch channel), never by sleeping.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test code: failing loudly is the point

use crate::common::*;
use amplitude_mock::{Fault, MockClock, MockConfig, MockState};
use std::sync::Arc;
use tokio::io::AsyncReadExt;
use tokio::net::TcpStream;

#[tokio::test]
async fn connections_are_refused_during_the_window_then_accepted_on_the_same_port() {
    let mock = builder()
        .fault(Fault::refuse(Some(T0 + SEC), T0 + 5 * SEC))
        .start()
        .await;
    let addr = mock.address();
    let (s, _) = post(&mock, "/2/httpapi", &upload(&events(1, "device-A"))).await;
    assert_eq!(s, 200, "before the window");
    // An idle keep-alive connection opened before the window...
    let mut idle = TcpStream::connect(addr).await.unwrap();

    mock.clock().advance_ms(SEC);
    mock.wait_refusing(true).await;
    let err = TcpStream::connect(addr).await.unwrap_err();
    assert_eq!(err.kind(), std::io::ErrorKind::ConnectionRefused);
    // ...is closed at the window's start.
    let mut buf = [0u8; 16];
    assert_eq!(idle.read(&mut buf).await.unwrap_or(0), 0);

    mock.clock().advance_ms(4 * SEC - 1);
    assert_eq!(
        mock.state().listener_view().closed,
        1,
        "the window is half-open"
    );
    mock.clock().advance_ms(1);
    mock.wait_refusing(false).await;
    assert_eq!(mock.address(), addr);
    let (s, _) = post(&mock, "/2/httpapi", &upload(&events(1, "device-B"))).await;
    assert_eq!(s, 200, "after the window, same port");

    let st = mock.stats();
    assert_eq!(
        st.faults.get("refuse").map(|c| (c.injected, c.committed)),
        Some((1, 0))
    );
    assert_eq!(
        st.requests_by_status
            .get(&amplitude_mock::StatusKey::Status(200)),
        Some(&2)
    );
    assert_eq!(mock.events().len(), 2);
}

#[tokio::test]
async fn a_window_open_at_start_through_serve() {
    // "A mock that only starts accepting 3 s after the sender starts", through the entry
    // point the conformance runner uses.
    let config = MockConfig {
        faults: vec![Fault::refuse(None, T0 + 3 * SEC)],
        ..MockConfig::default()
    };
    let state = Arc::new(MockState::try_new(config, MockClock::virtual_at(T0)).unwrap());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(amplitude_mock::serve(
        listener,
        state.clone(),
        None,
        async {
            let _ = rx.await;
        },
    ));
    state.wait_refusing(true).await;
    let err = TcpStream::connect(addr).await.unwrap_err();
    assert_eq!(err.kind(), std::io::ErrorKind::ConnectionRefused);
    state.clock().advance_ms(3 * SEC);
    state.wait_refusing(false).await;
    let r = reqwest::Client::new()
        .post(format!("http://{addr}/2/httpapi"))
        .json(&upload(&events(2, "device-A")))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 200);
    assert_eq!(state.ledger().stats().events_stored, 2);
    tx.send(()).unwrap();
    server.await.unwrap().unwrap();
    assert_eq!(state.listener_view().listeners, 0);
}

#[tokio::test]
async fn a_window_scheduled_over_http_and_cleared_from_the_library() {
    let mock = mock().await;
    let (s, v) = post(
        &mock,
        "/__mock/faults",
        &serde_json::json!({"kind":"refuse","from_ms":T0,"until_ms":T0 + 60 * SEC}),
    )
    .await;
    assert_eq!(s, 200, "{v}");
    mock.wait_refusing(true).await;
    assert_eq!(
        TcpStream::connect(mock.address()).await.unwrap_err().kind(),
        std::io::ErrorKind::ConnectionRefused
    );
    assert_eq!(mock.faults().clear(), 1);
    mock.wait_refusing(false).await;
    let (s, _) = post(&mock, "/2/httpapi", &upload(&events(1, "device-A"))).await;
    assert_eq!(s, 200);
}
