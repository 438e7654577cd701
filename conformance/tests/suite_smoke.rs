//! End to end: the reference sender through one short scenario into the embedded mock.

use amplitude_conformance::runner::{run_scenario, RunnerOptions, SenderSpec};
use std::path::PathBuf;

fn scenarios() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../scenarios")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reference_sender_passes_steady_trickle() {
    let opts = RunnerOptions {
        sender: SenderSpec::Reference {
            exe: PathBuf::from(env!("CARGO_BIN_EXE_amplitude-conformance")),
            args: vec![],
        },
        seed: None,
    };
    let r = run_scenario(&scenarios().join("steady-trickle.toml"), &opts).await.unwrap();
    let failed: Vec<_> = r.verdict.checks.iter().filter(|c| !c.passed).collect();
    assert!(r.passed, "{failed:#?}\nstderr: {}", r.stderr_tail);
    assert!(r.verdict.events.attempted > 100);
    assert_eq!(r.verdict.events.stored, r.verdict.events.attempted);
}
