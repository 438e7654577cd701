//! Transport realism: HTTPS with the generated certificate (spec §2 "TLS"), keep-alive and
//! `Connection: close`, read timeouts and connection limits (a slowloris client must not
//! starve others), 408 for a stalled body (spec §5.6), and `/metrics`.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test code: a failure is a panic

use amplitude_mock::{MockServer, MockServerBuilder};
use serde_json::{json, Value};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

const KEY: &str = "0123456789abcdef0123456789abcdef";

fn builder() -> MockServerBuilder {
    MockServer::builder()
        .api_key(KEY)
        .virtual_clock(1_700_000_000_000)
}

fn raw_request(body: &str, extra: &str) -> String {
    format!(
        "POST /2/httpapi HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\nContent-Length: {}\r\n{extra}\r\n{body}",
        body.len()
    )
}

fn body(tag: &str) -> String {
    json!({"api_key": KEY, "events": [{"device_id": format!("device-{tag}"), "event_type": "e", "insert_id": tag}]}).to_string()
}

#[tokio::test]
async fn https_with_the_generated_certificate() {
    // spec §2: the Java SDK needs https; the client trusts the certificate the mock wrote.
    let mock = builder().tls(true).start().await;
    let (addr, identity) = mock.tls_identity().unwrap();
    assert!(mock.tls_uri().unwrap().starts_with("https://localhost:"));
    let mut roots = rustls::RootCertStore::empty();
    roots
        .add(rustls::pki_types::CertificateDer::from(
            identity.cert_der.clone(),
        ))
        .unwrap();
    let config = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_root_certificates(roots)
    .with_no_client_auth();
    let connector = tokio_rustls::TlsConnector::from(Arc::new(config));
    let tcp = TcpStream::connect(addr).await.unwrap();
    let name = rustls::pki_types::ServerName::try_from("localhost").unwrap();
    let mut tls = connector.connect(name, tcp).await.unwrap();
    tls.write_all(raw_request(&body("tls"), "Connection: close\r\n").as_bytes())
        .await
        .unwrap();
    let mut out = String::new();
    tls.read_to_string(&mut out).await.unwrap_or_default();
    assert!(out.starts_with("HTTP/1.1 200 OK"), "{out}");
    assert!(out.contains("\"events_ingested\":1"), "{out}");
    assert_eq!(mock.events().len(), 1);
}

#[tokio::test]
async fn keep_alive_serves_many_requests_on_one_connection_and_close_is_honoured() {
    let mock = builder().start().await;
    let mut s = TcpStream::connect(mock.address()).await.unwrap();
    let mut buf = vec![0u8; 4096];
    for i in 0..5 {
        s.write_all(raw_request(&body(&format!("ka{i}")), "").as_bytes())
            .await
            .unwrap();
        let n = s.read(&mut buf).await.unwrap();
        let text = String::from_utf8_lossy(&buf[..n]);
        assert!(text.starts_with("HTTP/1.1 200"), "{text}");
    }
    s.write_all(raw_request(&body("ka-last"), "Connection: close\r\n").as_bytes())
        .await
        .unwrap();
    let mut out = Vec::new();
    s.read_to_end(&mut out).await.unwrap();
    let text = String::from_utf8_lossy(&out);
    assert!(
        text.starts_with("HTTP/1.1 200") && text.to_ascii_lowercase().contains("connection: close"),
        "{text}"
    );
    assert_eq!(mock.events().len(), 6);
    let m = mock.metrics_text();
    assert!(
        m.lines().any(|l| l == "amplitude_mock_connections_total 1"),
        "{m}"
    );
}

#[tokio::test]
async fn slowloris_is_cut_and_does_not_starve_others() {
    let mock = builder().read_timeout_ms(300).start().await;
    let mut slow = Vec::new();
    for _ in 0..20 {
        let mut s = TcpStream::connect(mock.address()).await.unwrap();
        s.write_all(b"POST /2/httpapi HTTP/1.1\r\nHost: x\r\n")
            .await
            .unwrap();
        slow.push(s);
    }
    // Another client is served while the slow ones dangle.
    let r = reqwest::Client::new()
        .post(format!("{}/2/httpapi", mock.uri()))
        .header("content-type", "application/json")
        .body(body("fast"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 200);
    // The slow ones are cut once the head read timeout passes.
    let start = Instant::now();
    let mut buf = [0u8; 512];
    for s in &mut slow {
        let n = s.read(&mut buf).await.unwrap_or(0);
        let text = String::from_utf8_lossy(&buf[..n]);
        assert!(n == 0 || text.starts_with("HTTP/1.1 408"), "{text}");
    }
    assert!(start.elapsed() < Duration::from_secs(5));
}

#[tokio::test]
async fn connection_limit_queues_the_next_client_until_a_slot_frees() {
    let mock = builder()
        .read_timeout_ms(300)
        .max_connections(2)
        .start()
        .await;
    let mut holders = Vec::new();
    for _ in 0..2 {
        let mut s = TcpStream::connect(mock.address()).await.unwrap();
        s.write_all(b"POST /2/httpapi HTTP/1.1\r\n").await.unwrap();
        holders.push(s);
    }
    let start = Instant::now();
    let r = reqwest::Client::new()
        .post(format!("{}/2/httpapi", mock.uri()))
        .header("content-type", "application/json")
        .body(body("queued"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 200);
    assert!(
        start.elapsed() >= Duration::from_millis(250),
        "served only after a slot freed: {:?}",
        start.elapsed()
    );
}

#[tokio::test]
async fn stalled_body_gets_408() {
    // spec §5.6: a request that does not arrive in time
    let mock = builder().read_timeout_ms(300).start().await;
    let mut s = TcpStream::connect(mock.address()).await.unwrap();
    s.write_all(b"POST /2/httpapi HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{\"api_key\":").await.unwrap();
    let mut out = Vec::new();
    s.read_to_end(&mut out).await.unwrap_or_default();
    let text = String::from_utf8_lossy(&out);
    assert!(text.starts_with("HTTP/1.1 408"), "{text}");
    assert!(mock.events().is_empty());
    assert_eq!(
        mock.stats()
            .requests_by_status
            .get(&amplitude_mock::StatusKey::Status(408)),
        Some(&1)
    );
    assert!(mock
        .metrics_text()
        .lines()
        .any(|l| l == "amplitude_mock_body_read_timeouts_total 1"));
}

#[tokio::test]
async fn metrics_in_prometheus_text_format() {
    let mock = builder().start().await;
    let http = reqwest::Client::new();
    for tag in ["m1", "m1", "m2"] {
        http.post(format!("{}/2/httpapi", mock.uri()))
            .header("content-type", "application/json")
            .body(body(tag))
            .send()
            .await
            .unwrap();
    }
    http.post(format!("{}/nope", mock.uri()))
        .body("{}")
        .send()
        .await
        .unwrap();
    let r = http
        .get(format!("{}/metrics", mock.uri()))
        .send()
        .await
        .unwrap();
    assert_eq!(
        r.headers()["content-type"],
        "text/plain; version=0.0.4; charset=utf-8"
    );
    let text = r.text().await.unwrap();
    for line in [
        "# TYPE amplitude_mock_requests_total counter",
        "amplitude_mock_requests_total{route=\"/2/httpapi\",status=\"200\"} 3",
        "amplitude_mock_requests_total{route=\"other\",status=\"400\"} 1",
        "amplitude_mock_events_received_total 3",
        "amplitude_mock_events_total{outcome=\"stored\"} 2",
        "amplitude_mock_events_total{outcome=\"deduplicated\"} 1",
        "amplitude_mock_dedup_store_ids 2",
        "# TYPE amplitude_mock_request_duration_seconds histogram",
        "amplitude_mock_request_duration_seconds_bucket{route=\"/2/httpapi\",le=\"+Inf\"} 3",
        "amplitude_mock_request_duration_seconds_count{route=\"/2/httpapi\"} 3",
        "amplitude_mock_property_updates_total{outcome=\"dropped\"} 0",
    ] {
        assert!(
            text.lines().any(|l| l == line),
            "missing `{line}` in\n{text}"
        );
    }
    // Every sample line is `name{labels} value` with a numeric value.
    for l in text.lines().filter(|l| !l.starts_with('#')) {
        let value = l.rsplit(' ').next().unwrap();
        assert!(value.parse::<f64>().is_ok(), "{l}");
    }
    let v: Value = http
        .get(format!("{}/__mock/stats", mock.uri()))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(v["events_stored"], 2);
}
