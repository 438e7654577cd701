//! The `max_events_per_request` limit and the `eps_count_request_events` profile knob, at
//! their edges (docs/fidelity.md). Over HTTP, virtual time, exact bodies.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test code: failing loudly is the point

use crate::common::*;
use amplitude_mock::{FidelityProfile, Limits, MockConfig};
use serde_json::json;

#[tokio::test]
async fn max_events_per_request_n_passes_n_plus_one_is_413() {
    let limits = Limits {
        max_events_per_request: 5,
        ..Limits::default()
    };
    let mock = builder().limits(limits).start().await;
    let (s, _) = post(&mock, "/2/httpapi", &upload(&events(5, "dev-a"))).await;
    assert_eq!(s, 200);
    let (s, body) = post(&mock, "/batch", &upload(&events(6, "dev-b"))).await;
    assert_eq!(
        (s, body),
        (413, json!({"code":413,"error":"Payload too large"}))
    );
    assert_eq!(mock.events().len(), 5);
    let st = mock.stats();
    assert_eq!(
        st.events_rejected
            .by_reason
            .get(&amplitude_mock::RejectReason::PayloadTooLarge),
        Some(&6)
    );
    assert_eq!(mock.requests()[1].outcome, "payload_too_large");
}

#[tokio::test]
async fn max_events_per_request_from_toml_and_default() {
    let c = MockConfig::from_toml_str("[limits]\nmax_events_per_request = 7\n", "t.toml").unwrap();
    assert_eq!(c.limits.max_events_per_request, 7);
    assert_eq!(Limits::default().max_events_per_request, 2_000);
    assert!(!FidelityProfile::default().eps_count_request_events);
}

/// 2 events/s over 3 s: more than 6 events in the window is throttled.
fn small() -> Limits {
    Limits {
        eps_threshold_http_v2: 2,
        eps_window_ms: 3_000,
        ..Limits::default()
    }
}

fn profile(count_own: bool) -> FidelityProfile {
    FidelityProfile {
        eps_count_request_events: count_own,
        ..FidelityProfile::default()
    }
}

#[tokio::test]
async fn only_counts_before_the_request_by_default() {
    let mock = builder()
        .limits(small())
        .profile(profile(false))
        .start()
        .await;
    // A fresh device sends 7 (> 6) at once: judged on the 0 before it.
    let (s, _) = post(&mock, "/2/httpapi", &upload(&events(7, "dev-a"))).await;
    assert_eq!(s, 200);
    // 6 in the window is not over: the next request passes, whatever its size.
    let (s, _) = post(&mock, "/2/httpapi", &upload(&events(6, "dev-b"))).await;
    assert_eq!(s, 200);
    let (s, _) = post(&mock, "/2/httpapi", &upload(&[ev("dev-b", "b-x")])).await;
    assert_eq!(s, 200);
    // 7 in the window: throttled.
    let (s, body) = post(&mock, "/2/httpapi", &upload(&[ev("dev-b", "b-y")])).await;
    assert_eq!(s, 429);
    assert_eq!(body["throttled_devices"], json!({"dev-b": 3}));
}

#[tokio::test]
async fn own_events_count_when_the_knob_is_on() {
    let mock = builder()
        .limits(small())
        .profile(profile(true))
        .start()
        .await;
    // 6 own events: 6 > 6 is false.
    let (s, _) = post(&mock, "/2/httpapi", &upload(&events(6, "dev-a"))).await;
    assert_eq!(s, 200);
    // 6 before + 1 own = 7 > 6.
    let (s, body) = post(&mock, "/2/httpapi", &upload(&[ev("dev-a", "a-x")])).await;
    assert_eq!(s, 429);
    assert_eq!(
        body,
        json!({"code":429,"error":"Too many requests for some devices and users",
               "eps_threshold":2,"throttled_devices":{"dev-a":3},"throttled_users":{},
               "throttled_events":[0]})
    );
    // A fresh device with 7 own events at once.
    let (s, body) = post(&mock, "/2/httpapi", &upload(&events(7, "dev-c"))).await;
    assert_eq!(s, 429);
    assert_eq!(body["throttled_devices"], json!({"dev-c": 3}));
    assert_eq!(body["throttled_events"], json!([0, 1, 2, 3, 4, 5, 6]));
}

/// A request of more than 8 events (the throttle step's map of identities, steps.rs) counts
/// each identity's own events together, however they interleave (docs/fidelity.md
/// `eps_count_request_events`, spec §8.3).
#[tokio::test]
async fn own_events_of_a_large_request_count_per_identity() {
    let mock = builder()
        .limits(small())
        .profile(profile(true))
        .start()
        .await;
    // 12 events: dev-e at 1, 3, 5 (3 <= 6), dev-d at the other 9 (9 > 6).
    let devices = [
        "dev-d", "dev-e", "dev-d", "dev-e", "dev-d", "dev-e", "dev-d", "dev-d", "dev-d", "dev-d",
        "dev-d", "dev-d",
    ];
    let batch: Vec<_> = devices
        .iter()
        .enumerate()
        .map(|(i, d)| ev(d, &format!("{d}-{i}")))
        .collect();
    let (s, body) = post(&mock, "/2/httpapi", &upload(&batch)).await;
    assert_eq!(s, 429);
    // 9 own events over a 3 s window: 3 events/s (rounded up); dev-e (3 <= 6) is not listed.
    assert_eq!(body["throttled_devices"], json!({"dev-d": 3}));
    let expected: Vec<usize> = (0..12).filter(|i| devices[*i] == "dev-d").collect();
    assert_eq!(body["throttled_events"], json!(expected));
}
