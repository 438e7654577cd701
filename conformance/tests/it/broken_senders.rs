//! Deliberately broken senders (tests/senders/broken_sender.py) are each caught by the right
//! check, with an explanation (architecture "Checker vocabulary").

#![allow(clippy::unwrap_used)]

use crate::common::{crate_dir, reference_exe, reference_sender, scenarios_dir};
use amplitude_conformance::runner::{run_scenario, RunnerOptions, SenderSpec};

async fn judge(mode: &str, scenario: &str) -> amplitude_conformance::runner::ScenarioReport {
    let script = crate_dir().join("tests/senders/broken_sender.py");
    let opts = RunnerOptions {
        sender: SenderSpec::Command {
            cmd: format!("exec python3 '{}' {mode}", script.display()),
            label: mode.to_owned(),
        },
        seed: None,
        jobs: 1,
    };
    run_scenario(&scenarios_dir().join(scenario), &opts)
        .await
        .unwrap()
}

fn failed(r: &amplitude_conformance::runner::ScenarioReport) -> Vec<&'static str> {
    r.verdict.failed()
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

/// Issue 12, fault 1: resending each failed request at once during 8 s of 400s that name no
/// event is a hot loop, though nothing is lost in the end.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn resending_at_once_after_400s_is_a_hot_loop() {
    let r = judge("resend-at-once", "sdk-400-names-nothing.toml").await;
    assert_eq!(
        failed(&r),
        vec!["no_hot_loop"],
        "{}",
        r.verdict.check("no_hot_loop").unwrap().examples.join("\n")
    );
    assert!(r.requests_by_status.get("400").copied().unwrap_or(0) > 100);
}

/// Issue 12, fault 5: "dropped" for events the mock stored (after `200 {}`) is a false drop
/// report, a failure of its own.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reporting_stored_events_as_dropped_is_caught() {
    let r = judge("report-dropped", "sdk-empty-200-body.toml").await;
    assert_eq!(failed(&r), vec!["no_false_drop_reports"]);
    let e = &r.verdict.events;
    assert_eq!(e.false_drop_reports, e.attempted);
    assert_eq!((e.stored, e.lost), (e.attempted, 0));
}

/// Issue 12, fault 6: with an invalid key, resending refused events and never reporting them
/// is judged on exactly that; the events are expected rejections, not losses.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn resending_with_an_invalid_key_is_caught() {
    let r = judge("resend-at-once", "sdk-invalid-api-key.toml").await;
    assert_eq!(
        failed(&r),
        vec![
            "refused_events_reported",
            "invalid_key_not_retried",
            "no_hot_loop"
        ]
    );
    let e = &r.verdict.events;
    assert_eq!(
        (e.expected_rejection, e.lost, e.stored),
        (e.attempted, 0, 0)
    );
    assert_eq!(e.refused_silently, e.attempted);
}

/// Issue 21, fault 3: a flush that returns before delivery, then an exit: the events are
/// lost, silently.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flush_that_resolves_before_delivery_loses_events_at_exit() {
    let r = judge("flush-early", "sdk-flush-then-exit.toml").await;
    assert_eq!(failed(&r), vec!["no_lost_events"]);
    let e = &r.verdict.events;
    assert_eq!(
        (e.lost, e.lost_silently, e.stored),
        (e.attempted, e.attempted, 0)
    );
    assert!(r.sender_exited);
}

/// Issue 12, fault 3: an invalid `[mock]` fault stops the suite before anything runs, with
/// exit code 2 (a failed verdict is 1) and the file, line, fault and why on stderr.
#[test]
fn an_invalid_scenario_is_an_error_before_anything_runs() {
    let dir = tempfile::tempdir().unwrap();
    let bad = dir.path().join("bad.toml");
    std::fs::write(
        &bad,
        "name = \"bad\"\nduration = \"1s\"\narrival = { kind = \"constant\", rate = 1.0 }\n\n[mock]\nfaults = [{ kind = \"status\", status = 503, committed = true }]\n",
    )
    .unwrap();
    let good = scenarios_dir().join("steady-trickle.toml");
    let out = std::process::Command::new(reference_exe())
        .arg("--scenario")
        .arg(&good)
        .arg("--scenario")
        .arg(&bad)
        .arg("--sender-cmd")
        .arg("exit 3")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains(&format!(
            "{}:6: [mock] faults[0].committed: ",
            bad.display()
        )) && stderr.contains("503"),
        "{stderr}"
    );
    // Nothing ran: not even the valid scenario before it.
    assert!(!stderr.contains("[1/2]"), "{stderr}");
    // `check` says the same without running anything.
    let out = std::process::Command::new(reference_exe())
        .arg("check")
        .arg(&good)
        .arg(&bad)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(2), "{stdout}");
    assert!(
        stdout.starts_with(&format!(
            "ok   {} (steady-trickle)\nFAIL {}:6: [mock] faults[0].committed: ",
            good.display(),
            bad.display()
        )),
        "{stdout}"
    );
}

async fn judge_reference(scenario: &str) -> amplitude_conformance::runner::ScenarioReport {
    let opts = RunnerOptions {
        sender: reference_sender(),
        seed: None,
        jobs: 1,
    };
    run_scenario(&scenarios_dir().join(scenario), &opts)
        .await
        .unwrap()
}

/// Issue 12, fault 7: a throttle fault answers each request with Amplitude's real 429 for
/// that request's events of the device, so a correct sender passes (a static 429 body made
/// it fail), and one that hammers the throttled device does not.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_throttle_fault_follows_the_senders_batching() {
    let r = judge_reference("sdk-throttled-device.toml").await;
    assert_eq!(failed(&r), Vec::<&str>::new(), "{:?}", r.verdict);
    assert!(r.requests_by_status.get("429").copied().unwrap_or(0) > 0);
    assert_eq!(r.verdict.events.stored, r.verdict.events.attempted);
    let r = judge("hammer", "sdk-throttled-device.toml").await;
    let f = failed(&r);
    assert!(f.contains(&"throttle_pause_respected"), "{f:?}");
    assert!(f.contains(&"no_hot_loop"), "{f:?}");
}

/// Issue 12, fault 4: 80 s of 503 for everyone, no 429: the reference sender loses nothing
/// and no check blames the outage on a throttled identity.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_long_outage_is_not_blamed_on_throttling() {
    let r = judge_reference("sdk-long-outage.toml").await;
    assert_eq!(failed(&r), Vec::<&str>::new(), "{:?}", r.verdict);
    assert_eq!(r.requests_by_status.get("429"), None);
    let e = &r.verdict.events;
    assert_eq!((e.stored, e.lost), (e.attempted, 0));
}

/// Issue 21, fault 2: a daily-quota backlog. The reference sender holds the quota-refused
/// events for the quota window; it exits by itself within its drain budget (no kill) and
/// reports them held: only `drained_before_deadline` fails.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_quota_backlog_is_held_and_reported_not_killed() {
    let r = judge_reference("sdk-daily-quota-backlog.toml").await;
    assert_eq!(
        failed(&r),
        vec!["drained_before_deadline"],
        "{:?}",
        r.verdict
    );
    assert!(r.sender_exited, "killed: {}", r.stderr_tail);
    let e = &r.verdict.events;
    assert!(e.held_at_exit > 0, "{e:?}");
    assert_eq!(
        (e.stored + e.held_at_exit, e.lost, e.lost_silently),
        (e.attempted, 0, 0)
    );
}
