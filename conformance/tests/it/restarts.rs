//! Crash-restart scenarios (sender contract 3, `[conformance] restarts`): the reference
//! sender survives every kill with nothing lost and nothing stored twice, whether it gets its
//! state directory as `--state-dir` or from `AMPLITUDE_SENDER_STATE_DIR`; a sender that keeps
//! its queue in memory fails `no_lost_events` with each loss explained by the restart, and one
//! that resends with fresh insert_ids after a restart is caught storing events twice.

#![allow(clippy::unwrap_used)]

use crate::common::{crate_dir, reference_exe, reference_sender, scenarios_dir};
use amplitude_conformance::runner::{run_scenario, RunnerOptions, ScenarioReport, SenderSpec};

const MID_OUTAGE: &str = "sdk-restart-mid-outage.toml";
const BATCH_IN_FLIGHT: &str = "sdk-restart-batch-in-flight.toml";

async fn run(sender: SenderSpec, scenario: &str) -> ScenarioReport {
    let opts = RunnerOptions {
        sender,
        seed: None,
        jobs: 1,
    };
    run_scenario(&scenarios_dir().join(scenario), &opts)
        .await
        .unwrap()
}

fn broken(mode: &str) -> SenderSpec {
    let script = crate_dir().join("tests/senders/broken_sender.py");
    SenderSpec::Command {
        cmd: format!("exec python3 '{}' {mode}", script.display()),
        label: mode.to_owned(),
    }
}

fn explain(r: &ScenarioReport) -> String {
    r.verdict
        .checks
        .iter()
        .filter(|c| !c.passed)
        .map(|c| format!("{} ({}): {:?}", c.name, c.count, c.examples))
        .collect::<Vec<_>>()
        .join("\n")
        + &format!("\nevents {:?}\nstderr: {}", r.verdict.events, r.stderr_tail)
}

/// Both kills happened, each with events fed to the killed process, and the run passed with
/// every event stored exactly once.
fn survived(r: &ScenarioReport) {
    assert!(r.passed, "{}: {}", r.scenario, explain(r));
    let e = &r.verdict.events;
    assert_eq!(
        (e.stored, e.lost, e.duplicate_stored, e.lost_at_restart),
        (e.attempted, 0, 0, 0),
        "{}",
        r.scenario
    );
    assert_eq!(e.attempted, 40);
    let at: Vec<u64> = r.restarts.iter().map(|k| k.at_ms).collect();
    let numbers: Vec<u32> = r.restarts.iter().map(|k| k.number).collect();
    assert_eq!(numbers, vec![1, 2]);
    assert_eq!(at.len(), 2);
    assert!(r.restarts.iter().all(|k| k.events_fed > 0 && !k.had_exited));
    assert_eq!(r.events_fed, 40);
    assert!(r.sender_exited);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_reference_sender_survives_a_restart_mid_outage() {
    let r = run(reference_sender(), MID_OUTAGE).await;
    survived(&r);
    assert_eq!(
        r.restarts.iter().map(|k| k.at_ms).collect::<Vec<_>>(),
        vec![2_200, 4_200]
    );
    // Its stderr shows each process starting and the runner's restart lines.
    assert!(
        r.stderr_tail.contains("[runner] restart 2 at 4.2 s"),
        "{}",
        r.stderr_tail
    );
}

/// The reference sender as any third-party sender runs it: no `--state-dir`, so its durable
/// queue is AMPLITUDE_SENDER_STATE_DIR. The requests in flight at the second kill were stored:
/// their resends carry the same insert_ids and are deduplicated.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_reference_sender_finds_its_queue_in_the_contract_state_dir() {
    let sender = SenderSpec::Command {
        cmd: format!("exec '{}' sender", reference_exe().display()),
        label: "reference via AMPLITUDE_SENDER_STATE_DIR".to_owned(),
    };
    let r = run(sender, BATCH_IN_FLIGHT).await;
    survived(&r);
    assert!(
        r.verdict.events.duplicate_deduplicated > 0,
        "{:?}",
        r.verdict.events
    );
    assert!(r.requests_by_status.get("429").copied().unwrap_or(0) > 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sender_that_queues_in_memory_loses_events_at_each_restart() {
    let r = run(broken("memory-queue"), MID_OUTAGE).await;
    let failed = r.verdict.failed();
    assert!(failed.contains(&"no_lost_events"), "{}", explain(&r));
    let e = &r.verdict.events;
    assert!(e.lost > 0);
    assert_eq!(
        (e.lost_at_restart, e.lost_silently, e.duplicate_stored),
        (e.lost, e.lost, 0),
        "{}",
        explain(&r)
    );
    let ex = &r.verdict.check("no_lost_events").unwrap().examples;
    assert!(
        ex.iter().all(|x| x
            .contains("in the sender's memory when it was killed at 2.2 s (restart 1)")
            || x.contains("killed at 4.2 s (restart 2)")),
        "{ex:?}"
    );
    assert!(ex[0].contains("killed at 2.2 s (restart 1)"), "{ex:?}");
}

/// On /batch the first requests are stored (before the 429s, and during the slow answers
/// before the second kill): resent with fresh insert_ids by the restarted sender, they are
/// stored twice.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sender_that_resends_with_fresh_insert_ids_after_a_restart_stores_events_twice() {
    let r = run(broken("fresh-after-restart"), BATCH_IN_FLIGHT).await;
    let failed = r.verdict.failed();
    assert!(failed.contains(&"no_duplicates_stored"), "{}", explain(&r));
    assert!(r.verdict.events.duplicate_stored > 0);
    let ex = &r.verdict.check("no_duplicates_stored").unwrap().examples;
    assert!(
        ex.iter()
            .all(|x| x.contains("stored before the sender was killed at ")
                && x.contains("sent again after it with a new or missing insert_id")),
        "{ex:?}"
    );
}
