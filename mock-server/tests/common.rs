//! Helpers shared by the integration tests: a mock on port 0 and a plain HTTP client.

#![allow(dead_code)]

use amplitude_mock::{MockServer, MockServerBuilder};
use serde_json::Value;

pub const KEY: &str = "0123456789abcdef0123456789abcdef";
pub const T0: i64 = 1_700_000_000_000;

/// A mock with project `KEY`, virtual time frozen at `T0`.
pub async fn mock() -> MockServer {
    builder().start().await.unwrap()
}

pub fn builder() -> MockServerBuilder {
    MockServer::builder().api_key(KEY).virtual_clock(T0)
}

/// POSTs raw bytes; returns (HTTP status, parsed body).
pub async fn post_raw(mock: &MockServer, path: &str, body: Vec<u8>, headers: &[(&str, &str)]) -> (u16, Value) {
    let client = reqwest::Client::new();
    let mut req = client
        .post(format!("{}{path}", mock.uri()))
        .header("content-type", "application/json")
        .body(body);
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    let resp = req.send().await.unwrap();
    let status = resp.status().as_u16();
    let text = resp.text().await.unwrap();
    let v: Value = serde_json::from_str(&text).unwrap_or_else(|_| panic!("non-JSON body: {text}"));
    (status, v)
}

pub async fn post(mock: &MockServer, path: &str, body: &Value) -> (u16, Value) {
    post_raw(mock, path, serde_json::to_vec(body).unwrap(), &[]).await
}

pub fn events(n: usize, device: &str) -> Vec<Value> {
    (0..n)
        .map(|i| serde_json::json!({"device_id": device, "event_type": "tick", "insert_id": format!("{device}-{i}")}))
        .collect()
}
