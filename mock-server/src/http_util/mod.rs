//! The HTTP leaf: response building (CORS and content-type headers on every response, the
//! preflight), request helpers (headers, query string) and body reading (size-capped,
//! streamed, gzip). Nothing here imports the rest of the mock: every other layer may use it.

pub(crate) mod body;
mod fault_body;

pub(crate) use fault_body::FaultBody;

use amplitude_wire::ResponseBody;
use bytes::Bytes;
use http::{header, HeaderValue, Request, Response, StatusCode};
use http_body_util::{BodyExt, Either, Full, Limited};
use hyper::body::Incoming;
use std::collections::HashMap;

/// Body type of every response: a whole body, or a body cut or trickled by a fault.
pub(crate) type ResponseBodyType = Either<Full<Bytes>, FaultBody>;

/// Most bytes of a `/__mock/` request body (JSON commands), 1 MiB.
pub(crate) const ADMIN_BODY_LIMIT: usize = 1 << 20;

/// A response with CORS and content-type headers (`status` out of range answers 500).
pub(crate) fn response(
    status: u16,
    body: Bytes,
    content_type: &'static str,
) -> Response<ResponseBodyType> {
    let mut resp = Response::new(Either::Left(Full::new(body)));
    *resp.status_mut() = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let h = resp.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    h.insert(
        header::ACCESS_CONTROL_ALLOW_ORIGIN,
        HeaderValue::from_static("*"),
    );
    resp
}

/// A JSON response with CORS and content-type headers.
pub(crate) fn json_response(status: u16, body: Vec<u8>) -> Response<ResponseBodyType> {
    response(status, Bytes::from(body), "application/json")
}

/// A JSON response of `value`.
pub(crate) fn json_value(status: u16, value: &serde_json::Value) -> Response<ResponseBodyType> {
    json_response(status, value.to_string().into_bytes())
}

/// A JSON error response `{"code": status, "error": message}`.
pub(crate) fn json_error(status: u16, message: &str) -> Response<ResponseBodyType> {
    json_value(
        status,
        &serde_json::json!({ "code": status, "error": message }),
    )
}

/// The status and serialized bytes of an Amplitude response body (its `code` is the status).
/// The 200 of an upload (spec §4: `code`, `events_ingested`, `payload_size_bytes`,
/// `server_upload_time`) is written from a template, byte for byte what serde_json writes,
/// without serializing the 20-field [`ResponseBody`] (docs/benchmarks.md).
pub(crate) fn amplitude_response(body: &ResponseBody) -> (u16, Vec<u8>) {
    if let (200, Some(n), Some(size), Some(at)) = (
        body.code,
        body.events_ingested,
        body.payload_size_bytes,
        body.server_upload_time,
    ) {
        if *body == ResponseBody::success(n, size, at) {
            let mut buf = itoa::Buffer::new();
            let mut out = Vec::with_capacity(128);
            out.extend_from_slice(br#"{"code":200,"events_ingested":"#);
            out.extend_from_slice(buf.format(n).as_bytes());
            out.extend_from_slice(br#","payload_size_bytes":"#);
            out.extend_from_slice(buf.format(size).as_bytes());
            out.extend_from_slice(br#","server_upload_time":"#);
            out.extend_from_slice(buf.format(at).as_bytes());
            out.push(b'}');
            return (200, out);
        }
    }
    let bytes = serde_json::to_vec(body).unwrap_or_else(|_| br#"{"code":500}"#.to_vec());
    (body.code, bytes)
}

/// The answer to a CORS preflight (`OPTIONS`, spec §2).
pub(crate) fn preflight() -> Response<ResponseBodyType> {
    let mut resp = Response::new(Either::Left(Full::new(Bytes::new())));
    *resp.status_mut() = StatusCode::NO_CONTENT;
    let h = resp.headers_mut();
    for (name, value) in [
        (header::ACCESS_CONTROL_ALLOW_ORIGIN, "*"),
        (header::ACCESS_CONTROL_ALLOW_METHODS, "GET, POST, OPTIONS"),
        (header::ACCESS_CONTROL_ALLOW_HEADERS, "*"),
        (header::ACCESS_CONTROL_MAX_AGE, "86400"),
    ] {
        h.insert(name, HeaderValue::from_static(value));
    }
    resp
}

/// A header's value, when present and visible ASCII.
pub(crate) fn header_str<B>(req: &Request<B>, name: header::HeaderName) -> Option<&str> {
    req.headers().get(name).and_then(|v| v.to_str().ok())
}

/// `Content-Encoding: gzip`.
pub(crate) fn is_gzip<B>(req: &Request<B>) -> bool {
    header_str(req, header::CONTENT_ENCODING).is_some_and(|e| e.eq_ignore_ascii_case("gzip"))
}

/// The declared `Content-Length`, when it parses.
pub(crate) fn content_length<B>(req: &Request<B>) -> Option<u64> {
    header_str(req, header::CONTENT_LENGTH).and_then(|v| v.parse::<u64>().ok())
}

/// Query-string parameters of a request (form-urlencoded; a repeated name keeps the last).
pub(crate) fn query_params<B>(req: &Request<B>) -> HashMap<String, String> {
    req.uri()
        .query()
        .map(|q| form_urlencoded::parse(q.as_bytes()).into_owned().collect())
        .unwrap_or_default()
}

/// The whole body of a small request (a `/__mock/` command), at most [`ADMIN_BODY_LIMIT`]
/// bytes; the error is the message to answer with.
pub(crate) async fn read_small_body(body: Incoming) -> Result<Bytes, String> {
    Limited::new(body, ADMIN_BODY_LIMIT)
        .collect()
        .await
        .map(|c| c.to_bytes())
        .map_err(|e| format!("reading body: {e}"))
}

/// A small JSON request body (see [`read_small_body`]) parsed as `T`.
pub(crate) async fn read_json_body<T: serde::de::DeserializeOwned>(
    body: Incoming,
) -> Result<T, String> {
    let bytes = read_small_body(body).await?;
    serde_json::from_slice(&bytes).map_err(|e| format!("invalid JSON: {e}"))
}

#[cfg(test)]
mod template_tests {
    use super::*;

    #[test]
    fn the_200_template_writes_what_serde_json_writes() {
        for (n, size, at) in [
            (1, 330, 1_700_000_000_000),
            (0, 0, 0),
            (2_000, 20_000_000, -1),
            (u64::MAX, u64::MAX, i64::MIN),
        ] {
            let body = ResponseBody::success(n, size, at);
            let (status, bytes) = amplitude_response(&body);
            assert_eq!(status, 200);
            assert_eq!(bytes, serde_json::to_vec(&body).unwrap(), "{n} {size} {at}");
        }
        // any other 200-coded body is serialized whole
        let mut odd = ResponseBody::success(1, 2, 3);
        odd.error = Some("x".into());
        assert_eq!(
            amplitude_response(&odd).1,
            serde_json::to_vec(&odd).unwrap()
        );
    }
}
