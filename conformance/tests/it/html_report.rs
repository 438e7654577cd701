//! The HTML report (issue 19) of a real run: a sender hammering a throttled device shows the
//! device's lane with exactly the in-pause requests `throttle_pause_respected` counted, every
//! failed check with its count, and the page is well-formed, deterministic and valid JSON
//! underneath.

#![allow(clippy::unwrap_used)]

use crate::common::{crate_dir, scenarios_dir};
use amplitude_conformance::runner::{
    check_well_formed, run_scenario, RunnerOptions, SenderSpec, SuiteReport, REPORT_SCHEMA,
};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hammered_throttled_device_shows_its_lane_and_the_counted_requests() {
    let script = crate_dir().join("tests/senders/broken_sender.py");
    let opts = RunnerOptions {
        sender: SenderSpec::Command {
            cmd: format!("exec python3 '{}' hammer", script.display()),
            label: "hammer".to_owned(),
        },
        seed: None,
        jobs: 1,
    };
    let r = run_scenario(&scenarios_dir().join("heavy-hitter.toml"), &opts)
        .await
        .unwrap();
    let check = r.verdict.check("throttle_pause_respected").unwrap().clone();
    assert!(!check.passed && check.count > 0, "{check:?}");
    let tl = &r.timeline;
    assert_eq!(tl.requests.len(), r.requests);
    assert_eq!(
        tl.flow.len(),
        amplitude_conformance::runner::FLOW_POINTS + 1
    );
    assert!(!tl.throttle_lanes.is_empty());
    let lane_total: u64 = tl.throttle_lanes.iter().map(|l| l.counted).sum();
    assert_eq!(lane_total, check.count);

    let suite = SuiteReport::new("hammer".into(), vec![r.clone()], vec![]);
    let html = suite.to_html();
    check_well_formed(&html).unwrap();
    assert_eq!(html, suite.clone().to_html());
    // Each lane's table row carries its count, and its red marks add up to it.
    for l in &tl.throttle_lanes {
        let kind = if l.device { "device" } else { "user" };
        let row = format!(
            "data-identity=\"{kind}:{}\" data-counted=\"{}\"",
            l.id, l.counted
        );
        assert!(html.contains(&row), "{row}");
    }
    let marked: u64 = html
        .split("class=\"inpause\" data-counted=\"")
        .skip(1)
        .map(|s| s.split('"').next().unwrap().parse::<u64>().unwrap())
        .sum();
    if tl.throttle_lanes.len() <= amplitude_conformance::runner::MAX_LANES {
        assert_eq!(marked, check.count);
    }
    // Every failed check appears with its count; its examples link to request marks.
    for c in r.verdict.checks.iter().filter(|c| !c.passed) {
        let tag = format!("data-check=\"{}\" data-count=\"{}\"", c.name, c.count);
        assert!(html.contains(&tag), "{tag}");
    }
    let link = "<a href=\"#sheavy-hitter-r";
    let id = html.split(link).nth(1).unwrap().split('"').next().unwrap();
    assert!(
        html.contains(&format!("id=\"sheavy-hitter-r{id}\"")),
        "{id}"
    );
    assert!(!html.contains("<script"));
    // The JSON report with its timeline still validates against the schema.
    let schema: serde_json::Value = serde_json::from_str(REPORT_SCHEMA).unwrap();
    let validator = jsonschema::validator_for(&schema).unwrap();
    let json = serde_json::to_value(&suite).unwrap();
    let errors: Vec<String> = validator
        .iter_errors(&json)
        .map(|e| e.to_string())
        .collect();
    assert!(errors.is_empty(), "{errors:?}");
}
