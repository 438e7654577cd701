//! `MockConfig::validate` and `Fault::problems`: every nonsensical fault or limit is refused
//! with its path, all at once, before anything runs.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test code: failing loudly is the point

use crate::common::*;
use amplitude_mock::{Fault, Limits, MockClock, MockConfig, MockState, ProjectConfig, Region};
use serde_json::json;

fn paths(config: &MockConfig) -> Vec<String> {
    config
        .validate()
        .unwrap_err()
        .0
        .into_iter()
        .map(|i| i.path)
        .collect()
}

#[test]
fn every_problem_is_returned_with_its_path() {
    let config = MockConfig {
        faults: vec![
            Fault::status(503),                                    // fine
            Fault::status(503).committed(true),                    // 503 is never committed
            Fault::refuse(Some(10), 20).count(1).probability(0.5), // count, probability
            Fault {
                until_ms: None,
                ..Fault::refuse(None, 0)
            }, // until_ms required
            Fault {
                device_id: None,
                ..Fault::throttle_device("d")
            }, // throttle needs an identity
            Fault::throttle_device("d").route("/identify"),        // no events there
            Fault::reset().window(Some(5), Some(5)),               // empty window
        ],
        limits: Limits {
            eps_window_ms: 0,
            max_events_per_request: 0,
            ..Limits::default()
        },
        projects: vec![
            ProjectConfig {
                api_key: "k1".into(),
                region: Region::Us,
                limits: None,
            },
            ProjectConfig {
                api_key: "k1".into(),
                region: Region::Us,
                limits: Some(Limits {
                    eps_window_ms: 0,
                    ..Limits::default()
                }),
            },
        ],
        ..MockConfig::default()
    };
    assert_eq!(
        paths(&config),
        vec![
            "faults[1].committed",
            "faults[2].count",
            "faults[2].probability",
            "faults[3].until_ms",
            "faults[4].kind",
            "faults[5].route",
            "faults[6].from_ms",
            "limits.eps_window_ms",
            "limits.max_events_per_request",
            "projects[1].api_key",
            "projects[1].limits.eps_window_ms",
        ]
    );
    let e = config.validate().unwrap_err();
    assert_eq!(
        e.0[0].to_string(),
        "faults[1].committed: status fault: a 503 is never committed (spec §5.5)"
    );
    assert!(MockState::try_new(config.clone(), MockClock::virtual_at(T0)).is_err());
    // The infallible constructor schedules the valid faults and keeps the problems.
    let state = MockState::new(config, MockClock::virtual_at(T0));
    assert_eq!(state.config_errors().len(), 11);
    assert_eq!(state.faults().list().len(), 1);
}

#[test]
fn fields_that_do_not_apply_are_named() {
    for (fault, field) in [
        (Fault::throttle_device("d").committed(true), "committed"),
        (
            Fault {
                status: Some(429),
                ..Fault::throttle_device("d")
            },
            "status",
        ),
        (Fault::refuse(None, 5).route("/batch"), "route"),
        (Fault::refuse(None, 5).device_id("d"), "device_id"),
        (Fault::close().device_id(""), "device_id"),
        (Fault::status(500).route("/__mock/stats"), "route"),
        (Fault::status(500).probability(f64::NAN), "probability"),
    ] {
        let e = fault.validate().unwrap_err();
        assert_eq!(e.field, field, "{fault:?}: {e}");
    }
    for ok in [
        Fault::throttle_device("d").route("/batch").count(2),
        Fault::throttle_user("u").probability(0.5),
        Fault::status(503).device_id("d").user_id("u"),
        Fault::refuse(None, 5),
        Fault::refuse(Some(1), 5),
    ] {
        ok.validate().unwrap_or_else(|e| panic!("{ok:?}: {e}"));
    }
}

#[tokio::test]
async fn post_faults_lists_every_problem() {
    let mock = mock().await;
    let (s, v) = post(
        &mock,
        "/__mock/faults",
        &json!([{"kind":"refuse","count":1},{"kind":"status","status":503,"committed":true}]),
    )
    .await;
    assert_eq!(s, 400);
    let paths: Vec<&str> = v["errors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["path"].as_str().unwrap())
        .collect();
    assert_eq!(
        paths,
        vec![
            "faults[0].count",
            "faults[0].until_ms",
            "faults[1].committed"
        ]
    );
    assert!(mock.faults().list().is_empty());
}

#[test]
fn toml_config_is_validated_with_paths() {
    let e = MockConfig::from_toml_str(
        "[limits]\neps_window_ms = 0\n[[faults]]\nkind = \"throttle\"\n",
        "bad.toml",
    )
    .unwrap_err()
    .to_string();
    assert_eq!(
        e,
        "bad.toml: faults[0].kind: throttle fault: throttle needs `device_id` or `user_id` (the identity to throttle); limits.eps_window_ms: must be at least 1 ms (the EPS averaging window)"
    );
}
