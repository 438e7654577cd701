//! The inspection and control routes under `/__mock/` (architecture "Contracts"), JSON in
//! and out. Served to loopback clients; others must present `x-mock-admin-token` when the
//! config sets `admin_token`, and are refused otherwise.

use crate::clock::Clock;
use crate::ledger::EventFilter;
use crate::server::{json_response, ResponseBodyType};
use crate::state::MockState;
use http::{Method, Request, Response};
use http_body_util::{BodyExt, Limited};
use hyper::body::Incoming;
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::net::SocketAddr;

fn ok<T: Serialize>(v: &T) -> Response<ResponseBodyType> {
    match serde_json::to_vec(v) {
        Ok(b) => json_response(200, b),
        Err(e) => error(500, &e.to_string()),
    }
}

fn error(status: u16, message: &str) -> Response<ResponseBodyType> {
    let body = serde_json::json!({ "code": status, "error": message });
    json_response(status, body.to_string().into_bytes())
}

fn query(req: &Request<Incoming>) -> HashMap<String, String> {
    req.uri()
        .query()
        .map(|q| form_urlencoded::parse(q.as_bytes()).into_owned().collect())
        .unwrap_or_default()
}

async fn json_body<T: for<'de> Deserialize<'de>>(req: Request<Incoming>) -> Result<T, String> {
    let bytes = Limited::new(req.into_body(), 1 << 20)
        .collect()
        .await
        .map_err(|e| format!("reading body: {e}"))?
        .to_bytes();
    serde_json::from_slice(&bytes).map_err(|e| format!("invalid JSON: {e}"))
}

/// Body of `POST /__mock/clock`: one of the two fields.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ClockCommand {
    /// Move time forward by this many ms.
    advance_ms: Option<i64>,
    /// Jump to this time, ms since the epoch.
    set_ms: Option<i64>,
}

#[derive(Debug, Serialize)]
struct ClockView {
    now_ms: i64,
    virtual_time: bool,
    offset_ms: i64,
}

fn clock_view(state: &MockState) -> ClockView {
    ClockView {
        now_ms: state.clock.now_ms(),
        virtual_time: state.clock.is_virtual(),
        offset_ms: state.clock.offset_ms(),
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct SilenceCommand {
    device_ids: Vec<String>,
}

fn authorized(state: &MockState, remote: SocketAddr, req: &Request<Incoming>) -> bool {
    if remote.ip().is_loopback() {
        return true;
    }
    let Some(token) = state.config.admin_token.as_deref() else {
        return false;
    };
    req.headers()
        .get("x-mock-admin-token")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|t| t == token)
}

/// Handles a request under `/__mock/` (and `/metrics`).
pub async fn handle(
    state: &MockState,
    remote: SocketAddr,
    req: Request<Incoming>,
) -> Response<ResponseBodyType> {
    if !authorized(state, remote, &req) {
        return error(
            403,
            "the /__mock/ routes need a loopback client or x-mock-admin-token",
        );
    }
    let q = query(&req);
    let path = req.uri().path().to_owned();
    match (req.method().clone(), path.as_str()) {
        (Method::GET, "/__mock/stats") => {
            // An inspection call is a fine moment to free idle limiter identities (their
            // windows have drained, spec §8.3); the hot path also purges by itself.
            state.limiter.purge_idle(state.clock.now_ms());
            ok(&state.ledger.stats())
        }
        (Method::GET, "/__mock/events") => {
            let filter = EventFilter {
                api_key: q.get("api_key").cloned(),
                user_id: q.get("user_id").cloned(),
                device_id: q.get("device_id").cloned(),
                insert_id: q.get("insert_id").cloned(),
                limit: q.get("limit").and_then(|l| l.parse().ok()),
            };
            ok(&state.ledger.events(&filter))
        }
        (Method::GET, "/__mock/requests") => ok(&state
            .ledger
            .requests(q.get("limit").and_then(|l| l.parse().ok()))),
        (Method::GET, "/__mock/duplicates") => ok(&state.ledger.duplicates()),
        (Method::GET, "/__mock/property_drops") => ok(&state.ledger.property_drops()),
        (Method::GET, "/__mock/clock") => ok(&clock_view(state)),
        (Method::POST, "/__mock/clock") => match json_body::<ClockCommand>(req).await {
            Ok(ClockCommand {
                advance_ms: Some(ms),
                set_ms: None,
            }) => {
                state.clock.advance_ms(ms);
                ok(&clock_view(state))
            }
            Ok(ClockCommand {
                advance_ms: None,
                set_ms: Some(t),
            }) => {
                state.clock.set_ms(t);
                ok(&clock_view(state))
            }
            Ok(_) => error(400, "give exactly one of advance_ms or set_ms"),
            Err(e) => error(400, &e),
        },
        (Method::POST, "/__mock/reset") => {
            state.reset();
            ok(&serde_json::json!({"reset": true}))
        }
        (Method::GET, "/__mock/users") => {
            let project = q
                .get("api_key")
                .and_then(|k| state.projects.lookup_any_region(k))
                .map_or(1, |p| p.id);
            match state.properties.user(
                project,
                q.get("user_id").map(String::as_str),
                q.get("device_id").map(String::as_str),
            ) {
                Some(u) => ok(&u),
                None => error(404, "no such user"),
            }
        }
        (Method::GET, "/__mock/groups") => {
            let project = q
                .get("api_key")
                .and_then(|k| state.projects.lookup_any_region(k))
                .map_or(1, |p| p.id);
            let (Some(group_type), Some(group_value)) = (q.get("group_type"), q.get("group_value"))
            else {
                return error(400, "give group_type and group_value");
            };
            match state.properties.group(project, group_type, group_value) {
                Some(props) => ok(&serde_json::json!({
                    "group_type": group_type,
                    "group_value": group_value,
                    "group_properties": props,
                })),
                None => error(404, "no such group"),
            }
        }
        (Method::POST, "/__mock/silenced") => match json_body::<SilenceCommand>(req).await {
            Ok(c) => {
                state.silenced.write().extend(c.device_ids);
                ok(&serde_json::json!({"silenced": state.silenced.read().len()}))
            }
            Err(e) => error(400, &e),
        },
        (Method::DELETE, "/__mock/silenced") => {
            state.silenced.write().clear();
            ok(&serde_json::json!({"silenced": 0}))
        }
        (Method::GET, "/metrics") => crate::metrics::response(state),
        (_, "/__mock/faults") => crate::faults::admin_route(state, req).await,
        _ => error(404, "unknown /__mock/ route"),
    }
}
