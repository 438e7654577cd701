//! The inspection and control routes under `/__mock/` (architecture "Contracts"), JSON in
//! and out. Served to loopback clients; others must present `x-mock-admin-token` when the
//! config sets `admin_token`, and are refused otherwise.

use crate::clock::Clock;
use crate::config::faults_problems;
use crate::faults::parse_faults_json;
use crate::http_util::{
    json_error as error, json_response, json_value, query_params, read_json_body, read_small_body,
    ResponseBodyType,
};
use crate::ledger::EventFilter;
use crate::state::MockState;
use http::{Method, Request, Response};
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

/// The project the query's `api_key` names (any region); without `api_key`, project 1 (the
/// first configured, or the any-key project). An unknown key is an error (answered 400):
/// falling back to another project would show that project's users as if they were the
/// key's.
fn project_of(state: &MockState, q: &HashMap<String, String>) -> Result<u32, String> {
    match q.get("api_key") {
        None => Ok(1),
        Some(key) => state
            .projects
            .lookup_any_region(key)
            .map(|p| p.id)
            .ok_or_else(|| {
                format!(
                    "unknown api_key {}: not a project of this mock",
                    crate::projects::redact_key(key)
                )
            }),
    }
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
    let q = query_params(&req);
    let path = req.uri().path().to_owned();
    match (req.method().clone(), path.as_str()) {
        (Method::GET, "/__mock/stats") => {
            // An inspection call is a fine moment to free idle limiter identities (their
            // windows have drained, spec §8.3); the hot path also purges by itself.
            state.limiter.purge_idle(state.clock.now_ms());
            ok(&state.ledger.stats())
        }
        (Method::GET, "/__mock/events") => {
            let limit = match limit_param(&q) {
                Ok(l) => l,
                Err(e) => return error(400, &e),
            };
            let filter = EventFilter {
                api_key: q.get("api_key").cloned(),
                user_id: q.get("user_id").cloned(),
                device_id: q.get("device_id").cloned(),
                insert_id: q.get("insert_id").cloned(),
                limit,
            };
            ok(&state.ledger.events(&filter))
        }
        (Method::GET, "/__mock/requests") => match limit_param(&q) {
            Ok(limit) => ok(&state.ledger.requests(limit)),
            Err(e) => error(400, &e),
        },
        (Method::GET, "/__mock/duplicates") => ok(&state.ledger.duplicates()),
        (Method::GET, "/__mock/property_drops") => ok(&state.ledger.property_drops()),
        (Method::GET, "/__mock/clock") => ok(&clock_view(state)),
        (Method::POST, "/__mock/clock") => {
            match read_json_body::<ClockCommand>(req.into_body()).await {
                Ok(ClockCommand {
                    advance_ms: Some(ms),
                    set_ms: None,
                }) => match state.clock.now_ms().checked_add(ms) {
                    Some(t) if (0..=MAX_CLOCK_MS).contains(&t) => {
                        state.clock.advance_ms(ms);
                        ok(&clock_view(state))
                    }
                    _ => error(400, CLOCK_RANGE),
                },
                Ok(ClockCommand {
                    advance_ms: None,
                    set_ms: Some(t),
                }) if (0..=MAX_CLOCK_MS).contains(&t) => {
                    state.clock.set_ms(t);
                    ok(&clock_view(state))
                }
                Ok(ClockCommand {
                    advance_ms: None,
                    set_ms: Some(_),
                }) => error(400, CLOCK_RANGE),
                Ok(_) => error(400, "give exactly one of advance_ms or set_ms"),
                Err(e) => error(400, &e),
            }
        }
        (Method::POST, "/__mock/reset") => {
            state.reset();
            ok(&serde_json::json!({"reset": true}))
        }
        (Method::GET, "/__mock/users") => {
            let project = match project_of(state, &q) {
                Ok(p) => p,
                Err(e) => return error(400, &e),
            };
            if !q.contains_key("user_id") && !q.contains_key("device_id") {
                return error(400, "give user_id or device_id");
            }
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
            let project = match project_of(state, &q) {
                Ok(p) => p,
                Err(e) => return error(400, &e),
            };
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
        (Method::POST, "/__mock/silenced") => {
            match read_json_body::<SilenceCommand>(req.into_body()).await {
                Ok(c) => {
                    state.silenced.write().extend(c.device_ids);
                    ok(&serde_json::json!({"silenced": state.silenced.read().len()}))
                }
                Err(e) => error(400, &e),
            }
        }
        (Method::DELETE, "/__mock/silenced") => {
            state.silenced.write().clear();
            ok(&serde_json::json!({"silenced": 0}))
        }
        (Method::GET, "/metrics") => crate::routes::metrics::response(state),
        (_, "/__mock/faults") => faults_route(state, req).await,
        (_, p) => match ROUTES.iter().find(|(route, _)| *route == p) {
            Some((_, allowed)) => {
                let mut r = error(405, &format!("{p} takes {allowed}"));
                if let Ok(v) = http::HeaderValue::from_str(allowed) {
                    r.headers_mut().insert(http::header::ALLOW, v);
                }
                r
            }
            None => error(404, "unknown /__mock/ route"),
        },
    }
}

/// The admin routes with the methods each takes (a known route asked with another method
/// is answered 405 with an `Allow` header, an unknown one 404).
const ROUTES: &[(&str, &str)] = &[
    ("/__mock/stats", "GET"),
    ("/__mock/events", "GET"),
    ("/__mock/requests", "GET"),
    ("/__mock/duplicates", "GET"),
    ("/__mock/property_drops", "GET"),
    ("/__mock/clock", "GET, POST"),
    ("/__mock/reset", "POST"),
    ("/__mock/users", "GET"),
    ("/__mock/groups", "GET"),
    ("/__mock/silenced", "POST, DELETE"),
    ("/metrics", "GET"),
];

/// Latest time `POST /__mock/clock` accepts, ms since the epoch (9999-12-31T23:59:59.999Z);
/// the earliest is 0 (1970-01-01).
const MAX_CLOCK_MS: i64 = 253_402_300_799_999;

const CLOCK_RANGE: &str =
    "the clock must stay between 0 (1970-01-01) and 253402300799999 ms (9999-12-31)";

/// `limit=N` of a listing: absent is no limit; anything but a non-negative integer is an
/// error (answered 400) rather than silently no limit.
fn limit_param(q: &HashMap<String, String>) -> Result<Option<usize>, String> {
    q.get("limit")
        .map(|l| {
            l.parse::<usize>()
                .map_err(|_| format!("limit must be a non-negative integer, got {l:?}"))
        })
        .transpose()
}

/// `GET|POST|DELETE /__mock/faults`.
async fn faults_route(state: &MockState, req: Request<Incoming>) -> Response<ResponseBodyType> {
    let reply = |status: u16, v: serde_json::Value| json_value(status, &v);
    match *req.method() {
        Method::GET => reply(
            200,
            serde_json::json!({
                "seed": state.faults.seed(),
                "faults": state.faults.list(),
                "config_errors": state.config_errors(),
            }),
        ),
        Method::DELETE => reply(200, serde_json::json!({"cleared": state.faults.clear()})),
        Method::POST => {
            let bytes = match read_small_body(req.into_body()).await {
                Ok(b) => b,
                Err(e) => return error(400, &e),
            };
            let faults = match parse_faults_json(&bytes) {
                Ok(f) => f,
                Err(e) => return reply(400, serde_json::json!({"code": 400, "error": e})),
            };
            let problems = faults_problems(&faults, "faults");
            if !problems.is_empty() {
                let text: Vec<String> = problems.iter().map(ToString::to_string).collect();
                return reply(
                    400,
                    serde_json::json!({"code": 400, "error": text.join("; "), "errors": problems}),
                );
            }
            match state.faults.push_all(faults) {
                Ok(ids) => reply(
                    200,
                    serde_json::json!({"scheduled": ids, "faults": state.faults.list()}),
                ),
                Err(e) => reply(
                    400,
                    serde_json::json!({"code": 400, "error": e.to_string()}),
                ),
            }
        }
        _ => reply(
            405,
            serde_json::json!({"code": 405, "error": "GET, POST or DELETE"}),
        ),
    }
}
