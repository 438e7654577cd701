//! Starting the mock as in wiremock-rs (issue 20, A and C): `start().await` returns the server
//! and panics naming the cause; `try_start()` returns the error; the server runs on a thread
//! and runtime of its own, so blocking clients work from any test.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test code: a failure is a panic

use crate::common::{builder, KEY};
use amplitude_mock::MockServer;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};

/// An address already taken by a listener this test holds.
fn taken() -> (TcpListener, SocketAddr) {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let a = l.local_addr().unwrap();
    (l, a)
}

#[tokio::test]
async fn start_returns_the_server() {
    let mock = MockServer::start().await;
    assert!(mock.uri().starts_with("http://127.0.0.1:"));
    let mock = builder().start().await;
    assert_eq!(mock.stats().events_stored, 0);
}

#[tokio::test]
async fn try_start_returns_the_bind_error_naming_the_address() {
    let (_held, addr) = taken();
    let Err(e) = builder().bind(addr).try_start().await else {
        panic!("binding a taken address succeeded");
    };
    assert_eq!(e.kind(), std::io::ErrorKind::AddrInUse, "{e}");
    assert!(e.to_string().contains(&addr.to_string()), "{e}");
}

#[tokio::test]
#[should_panic(expected = "amplitude-mock: the mock server could not start: binding 127.0.0.1:")]
async fn start_panics_with_the_cause_when_it_cannot_bind() {
    let (_held, addr) = taken();
    let _mock = builder().bind(addr).start().await;
}

#[tokio::test]
async fn an_invalid_configuration_is_an_invalid_input_error() {
    let e = builder()
        .max_events_per_request(0)
        .try_start()
        .await
        .err()
        .unwrap();
    assert_eq!(e.kind(), std::io::ErrorKind::InvalidInput);
    assert!(e.to_string().contains("max_events_per_request"), "{e}");
}

/// One blocking HTTP/1.1 POST over std's TcpStream (no runtime involved); returns the status
/// line and the body.
pub fn blocking_post(uri: &str, path: &str, body: &str) -> (String, String) {
    let addr = uri.trim_start_matches("http://");
    let mut s = TcpStream::connect(addr).unwrap();
    write!(
        s,
        "POST {path} HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )
    .unwrap();
    let mut out = String::new();
    s.read_to_string(&mut out).unwrap();
    let (head, body) = out.split_once("\r\n\r\n").unwrap();
    (head.lines().next().unwrap().to_owned(), body.to_owned())
}

fn one_event() -> String {
    format!(r#"{{"api_key":"{KEY}","events":[{{"device_id":"device-1","event_type":"A"}}]}}"#)
}

/// A blocking client inside a current-thread runtime (the default `#[tokio::test]`): the
/// runtime's only thread is blocked in the client, so this works only because the mock serves
/// from a thread of its own.
#[tokio::test]
async fn a_blocking_client_in_a_current_thread_test_gets_its_answer() {
    let mock = builder().start().await;
    let (status, body) = blocking_post(&mock.uri(), "/2/httpapi", &one_event());
    assert_eq!(status, "HTTP/1.1 200 OK", "{body}");
    assert_eq!(mock.stats().events_stored, 1);
}

/// A plain `#[test]` with no runtime at all: `start_blocking`.
#[test]
fn start_blocking_serves_a_test_without_a_runtime() {
    let mock = builder().start_blocking();
    let (status, body) = blocking_post(&mock.uri(), "/2/httpapi", &one_event());
    assert_eq!(status, "HTTP/1.1 200 OK", "{body}");
    assert_eq!(mock.stats().events_stored, 1);
    let (_held, addr) = taken();
    assert!(builder().bind(addr).try_start_blocking().is_err());
}

/// Dropping the mock stops its thread: the port is closed once `drop` returns.
#[test]
fn drop_shuts_the_server_down() {
    let mock = MockServer::builder().start_blocking();
    let addr = mock.address();
    drop(mock);
    assert!(
        TcpStream::connect(addr).is_err(),
        "still accepting after drop"
    );
}

/// The binary's startup errors are one `error:` line with the cause, never a backtrace, even
/// with `RUST_BACKTRACE=1` set (common on developer machines), and exit code 1.
#[test]
fn the_binary_reports_a_taken_port_and_a_missing_config_in_one_line() {
    let (_held, addr) = taken();
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("nope.toml");
    for args in [
        vec!["--bind".to_owned(), addr.to_string()],
        vec!["--config".to_owned(), missing.display().to_string()],
    ] {
        let out = std::process::Command::new(crate::common::process::mock_binary())
            .args(&args)
            .env("RUST_BACKTRACE", "1")
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{args:?}: {stderr}");
        let error_lines: Vec<&str> = stderr
            .lines()
            .filter(|l| l.starts_with("error: "))
            .collect();
        assert_eq!(error_lines.len(), 1, "{args:?}: {stderr}");
        assert!(!stderr.contains("backtrace"), "{args:?}: {stderr}");
    }
}
