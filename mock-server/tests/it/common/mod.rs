//! Helpers shared by the integration tests: a mock on port 0 and a plain HTTP client.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test helpers: failing loudly is the point

pub mod process;

use amplitude_mock::{MockServer, MockServerBuilder};
use serde_json::Value;

/// The API key of the test project.
pub const KEY: &str = "0123456789abcdef0123456789abcdef";
/// Virtual start time, ms since the epoch (2023-11-14T22:13:20Z; second-aligned).
pub const T0: i64 = 1_700_000_000_000;

/// A mock with project `KEY`, virtual time frozen at `T0`.
pub async fn mock() -> MockServer {
    builder().start().await
}

/// A builder with project `KEY` and virtual time frozen at `T0`.
pub fn builder() -> MockServerBuilder {
    MockServer::builder().api_key(KEY).virtual_clock(T0)
}

/// POSTs raw bytes; returns (HTTP status, parsed body).
pub async fn post_raw(
    mock: &MockServer,
    path: &str,
    body: Vec<u8>,
    headers: &[(&str, &str)],
) -> (u16, Value) {
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

/// POSTs `body` as JSON; returns (HTTP status, parsed body).
pub async fn post(mock: &MockServer, path: &str, body: &Value) -> (u16, Value) {
    post_raw(mock, path, serde_json::to_vec(body).unwrap(), &[]).await
}

/// `n` events of `device`, with `insert_id`s `"{device}-{i}"`.
pub fn events(n: usize, device: &str) -> Vec<Value> {
    (0..n)
        .map(|i| serde_json::json!({"device_id": device, "event_type": "tick", "insert_id": format!("{device}-{i}")}))
        .collect()
}

/// One second, ms.
pub const SEC: i64 = 1_000;
/// One hour, ms.
pub const HOUR: i64 = 3_600_000;
/// One day, ms.
pub const DAY: i64 = 24 * HOUR;
/// Seven days (the dedup window, spec §9), ms.
pub const WEEK: i64 = 7 * DAY;

/// `{"api_key": KEY, "events": events}`.
pub fn upload(events: &[Value]) -> Value {
    serde_json::json!({"api_key": KEY, "events": events})
}

/// GETs a `/__mock/` (or any) path; returns (HTTP status, parsed JSON body).
pub async fn get_json(mock: &MockServer, path_and_query: &str) -> (u16, Value) {
    let resp = reqwest::get(format!("{}{path_and_query}", mock.uri()))
        .await
        .unwrap();
    let status = resp.status().as_u16();
    let text = resp.text().await.unwrap();
    (
        status,
        serde_json::from_str(&text).unwrap_or_else(|_| panic!("non-JSON body: {text}")),
    )
}

/// POSTs a form-urlencoded body (plus an optional query string) to an identify-style
/// endpoint; returns (HTTP status, content-type, body text).
pub async fn post_form(
    mock: &MockServer,
    path_and_query: &str,
    form: &[(&str, &str)],
) -> (u16, String, String) {
    let resp = reqwest::Client::new()
        .post(format!("{}{path_and_query}", mock.uri()))
        .form(form)
        .send()
        .await
        .unwrap();
    status_type_text(resp).await
}

/// GETs a path with query parameters; returns (HTTP status, content-type, body text).
pub async fn get_text(
    mock: &MockServer,
    path: &str,
    query: &[(&str, &str)],
) -> (u16, String, String) {
    let resp = reqwest::Client::new()
        .get(format!("{}{path}", mock.uri()))
        .query(query)
        .send()
        .await
        .unwrap();
    status_type_text(resp).await
}

/// `POST /__mock/clock` with `body` (`{"advance_ms": N}` or `{"set_ms": T}`); returns the
/// clock view.
pub async fn post_clock(mock: &MockServer, body: Value) -> (u16, Value) {
    post(mock, "/__mock/clock", &body).await
}

/// The `insert_id`s of the stored events, in storage order.
pub fn stored_insert_ids(mock: &MockServer) -> Vec<String> {
    mock.events()
        .iter()
        .map(|e| {
            let v: Value = serde_json::from_str(e.event.get()).unwrap();
            v["insert_id"].as_str().unwrap_or("").to_owned()
        })
        .collect()
}

/// One event of `device` with `insert_id`.
pub fn ev(device: &str, insert_id: &str) -> Value {
    serde_json::json!({"device_id": device, "event_type": "tick", "insert_id": insert_id})
}

/// (HTTP status, content-type, body text) of a response.
async fn status_type_text(resp: reqwest::Response) -> (u16, String, String) {
    let status = resp.status().as_u16();
    let ct = resp
        .headers()
        .get("content-type")
        .map(|v| v.to_str().unwrap().to_owned())
        .unwrap_or_default();
    (status, ct, resp.text().await.unwrap())
}
