//! `GET /metrics`: Prometheus text exposition format 0.0.4, rendered from the request
//! counters (`crate::metrics`) and, when scraped, from the ledger and the rule stores.

use crate::http_util::{self, ResponseBodyType};
use crate::metrics::{BUCKETS_US, ROUTES, STATUSES};
use crate::state::MockState;
use bytes::Bytes;
use http::Response;
use std::fmt::Write as _;
use std::sync::atomic::Ordering::Relaxed;

fn header(out: &mut String, name: &str, kind: &str, help: &str) {
    let _ = writeln!(out, "# HELP {name} {help}");
    let _ = writeln!(out, "# TYPE {name} {kind}");
}

/// Renders every metric of `state` in the Prometheus text format (version 0.0.4).
pub(crate) fn render(state: &MockState) -> String {
    let m = &state.metrics;
    let stats = state.ledger.stats();
    let mut out = String::with_capacity(8 * 1024);

    header(
        &mut out,
        "amplitude_mock_requests_total",
        "counter",
        "Requests by route and HTTP status answered (status \"cut\": no complete response).",
    );
    for route in ROUTES {
        for status in 0..STATUSES {
            let n = m
                .requests
                .get(route.index() * STATUSES + status)
                .map_or(0, |c| c.load(Relaxed));
            if n > 0 {
                let label = if status == 0 {
                    "cut".to_owned()
                } else {
                    status.to_string()
                };
                let _ = writeln!(
                    out,
                    "amplitude_mock_requests_total{{route=\"{}\",status=\"{label}\"}} {n}",
                    route.as_str()
                );
            }
        }
    }

    header(
        &mut out,
        "amplitude_mock_request_duration_seconds",
        "histogram",
        "Time from request head to response head, by route.",
    );
    for route in ROUTES {
        let base = route.index() * (BUCKETS_US.len() + 1);
        let counts: Vec<u64> = (0..=BUCKETS_US.len())
            .map(|b| m.latency.get(base + b).map_or(0, |c| c.load(Relaxed)))
            .collect();
        let total: u64 = counts.iter().sum();
        if total == 0 {
            continue;
        }
        let r = route.as_str();
        let mut cum = 0;
        for (ub, n) in BUCKETS_US.iter().zip(&counts) {
            cum += n;
            let _ = writeln!(
                out,
                "amplitude_mock_request_duration_seconds_bucket{{route=\"{r}\",le=\"{}\"}} {cum}",
                *ub as f64 / 1e6
            );
        }
        let _ = writeln!(
            out,
            "amplitude_mock_request_duration_seconds_bucket{{route=\"{r}\",le=\"+Inf\"}} {total}"
        );
        let sum = m
            .latency_sum_us
            .get(route.index())
            .map_or(0, |c| c.load(Relaxed));
        let _ = writeln!(
            out,
            "amplitude_mock_request_duration_seconds_sum{{route=\"{r}\"}} {}",
            sum as f64 / 1e6
        );
        let _ = writeln!(
            out,
            "amplitude_mock_request_duration_seconds_count{{route=\"{r}\"}} {total}"
        );
    }

    header(&mut out, "amplitude_mock_events_received_total", "counter", "Events in requests parsed far enough to count them (= stored + deduplicated + rejected, spec §6).");
    let _ = writeln!(
        out,
        "amplitude_mock_events_received_total {}",
        stats.events_received
    );
    header(
        &mut out,
        "amplitude_mock_events_total",
        "counter",
        "Events by outcome: stored, deduplicated (spec §9), rejected (spec §5).",
    );
    let _ = writeln!(
        out,
        "amplitude_mock_events_total{{outcome=\"stored\"}} {}",
        stats.events_stored
    );
    let _ = writeln!(
        out,
        "amplitude_mock_events_total{{outcome=\"deduplicated\"}} {}",
        stats.events_deduplicated
    );
    let _ = writeln!(
        out,
        "amplitude_mock_events_total{{outcome=\"rejected\"}} {}",
        stats.events_rejected.total
    );
    header(
        &mut out,
        "amplitude_mock_events_rejected_total",
        "counter",
        "Rejected events by reason.",
    );
    for (reason, n) in &stats.events_rejected.by_reason {
        let _ = writeln!(
            out,
            "amplitude_mock_events_rejected_total{{reason=\"{reason}\"}} {n}"
        );
    }

    header(
        &mut out,
        "amplitude_mock_throttled_identities_total",
        "counter",
        "Devices and users listed in 429 bodies (spec §5.4).",
    );
    let _ = writeln!(
        out,
        "amplitude_mock_throttled_identities_total {}",
        m.throttled_identities.load(Relaxed)
    );
    header(
        &mut out,
        "amplitude_mock_limiter_identities",
        "gauge",
        "Identities the EPS/daily-quota limiter holds (spec §8).",
    );
    let _ = writeln!(
        out,
        "amplitude_mock_limiter_identities {}",
        state.limiter.active_identities()
    );
    header(
        &mut out,
        "amplitude_mock_dedup_store_ids",
        "gauge",
        "insert_ids remembered by the 7-day dedup store (spec §9).",
    );
    let _ = writeln!(out, "amplitude_mock_dedup_store_ids {}", state.dedup.len());
    header(
        &mut out,
        "amplitude_mock_dedup_store_bytes",
        "gauge",
        "Heap bytes of the dedup store.",
    );
    let _ = writeln!(
        out,
        "amplitude_mock_dedup_store_bytes {}",
        state.dedup.heap_bytes()
    );

    header(
        &mut out,
        "amplitude_mock_property_updates_total",
        "counter",
        "User-property updates by outcome (dropped: over 1,800/hour, spec §8.1).",
    );
    let _ = writeln!(
        out,
        "amplitude_mock_property_updates_total{{outcome=\"applied\"}} {}",
        stats.property_updates_applied
    );
    let _ = writeln!(
        out,
        "amplitude_mock_property_updates_total{{outcome=\"dropped\"}} {}",
        stats.property_updates_dropped
    );
    let _ = writeln!(
        out,
        "amplitude_mock_property_updates_total{{outcome=\"skipped\"}} {}",
        stats.property_updates_skipped
    );

    header(
        &mut out,
        "amplitude_mock_faults_injected_total",
        "counter",
        "Injected faults by kind and whether the request's events were committed (spec §5.5).",
    );
    for (kind, c) in &stats.faults {
        let _ = writeln!(
            out,
            "amplitude_mock_faults_injected_total{{kind=\"{kind}\",committed=\"true\"}} {}",
            c.committed
        );
        let _ = writeln!(
            out,
            "amplitude_mock_faults_injected_total{{kind=\"{kind}\",committed=\"false\"}} {}",
            c.injected.saturating_sub(c.committed)
        );
    }
    header(
        &mut out,
        "amplitude_mock_faults_scheduled",
        "gauge",
        "Faults still scheduled.",
    );
    let _ = writeln!(
        out,
        "amplitude_mock_faults_scheduled {}",
        state.faults.list().len()
    );

    header(
        &mut out,
        "amplitude_mock_connections_open",
        "gauge",
        "Open client connections.",
    );
    let _ = writeln!(
        out,
        "amplitude_mock_connections_open {}",
        m.connections_open.load(Relaxed)
    );
    header(
        &mut out,
        "amplitude_mock_connections_total",
        "counter",
        "Connections accepted.",
    );
    let _ = writeln!(
        out,
        "amplitude_mock_connections_total {}",
        m.connections_total.load(Relaxed)
    );
    header(
        &mut out,
        "amplitude_mock_body_read_timeouts_total",
        "counter",
        "Request bodies that did not arrive within the read timeout (answered 408).",
    );
    let _ = writeln!(
        out,
        "amplitude_mock_body_read_timeouts_total {}",
        m.body_timeouts.load(Relaxed)
    );
    out
}

/// The `GET /metrics` response.
pub(crate) fn response(state: &MockState) -> Response<ResponseBodyType> {
    http_util::response(
        200,
        Bytes::from(render(state).into_bytes()),
        "text/plain; version=0.0.4; charset=utf-8",
    )
}
