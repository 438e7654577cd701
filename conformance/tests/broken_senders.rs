//! Deliberately broken senders (tests/senders/broken_sender.py) are each caught by the right
//! check, with an explanation (architecture "Checker vocabulary").

#![allow(clippy::unwrap_used)]

use amplitude_conformance::runner::{run_scenario, RunnerOptions, SenderSpec};
use std::path::PathBuf;

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

async fn judge(mode: &str, scenario: &str) -> amplitude_conformance::runner::ScenarioReport {
    let script = root().join("tests/senders/broken_sender.py");
    let opts = RunnerOptions {
        sender: SenderSpec::Command {
            cmd: format!("exec python3 '{}' {mode}", script.display()),
            label: mode.to_owned(),
        },
        seed: None,
    };
    run_scenario(&root().join("../scenarios").join(scenario), &opts)
        .await
        .unwrap()
}

fn failed(r: &amplitude_conformance::runner::ScenarioReport) -> Vec<&'static str> {
    r.verdict
        .checks
        .iter()
        .filter(|c| !c.passed)
        .map(|c| c.name)
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_retries_loses_events_in_an_outage() {
    // spec §5.5: 503 is never committed; a sender that does not retry loses those events
    let r = judge("no-retry", "outage-recovery.toml").await;
    assert!(!r.passed);
    assert!(failed(&r).contains(&"no_lost_events"), "{:?}", failed(&r));
    assert!(r.verdict.events.lost > 0);
    assert_eq!(r.verdict.events.lost, r.verdict.events.lost_silently);
    let ex = &r.verdict.check("no_lost_events").unwrap().examples[0];
    assert!(ex.contains("never followed by a successful retry"), "{ex}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fresh_insert_id_on_retry_is_caught() {
    // spec §5.5, §9: a committed 500 retried with a new insert_id is stored twice
    let r = judge("fresh-insert-id", "committed-500.toml").await;
    let f = failed(&r);
    assert!(f.contains(&"retries_keep_insert_id"), "{f:?}");
    assert!(f.contains(&"no_duplicates_stored"), "{f:?}");
    assert!(r.verdict.events.duplicate_stored > 0);
    let ex = &r.verdict.check("no_duplicates_stored").unwrap().examples[0];
    assert!(
        ex.contains("new or missing insert_id") && ex.contains("committed"),
        "{ex}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hammering_a_throttled_device_is_caught() {
    // spec §5.4, §8.1: a throttled device must pause 30 s
    let r = judge("hammer", "heavy-hitter.toml").await;
    let f = failed(&r);
    assert!(f.contains(&"throttle_pause_respected"), "{f:?}");
    assert!(r.requests_by_status.get("429").copied().unwrap_or(0) > 5);
}
