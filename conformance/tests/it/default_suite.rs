//! The main job in CI: the default suite (the built-in scenarios, `loadgen/scenarios/`) with
//! the embedded mock and the reference sender passes, and its reports have their documented
//! shapes.

use crate::common::{reference_sender, scenarios_dir};
use amplitude_conformance::runner::{default_suite, run_suite, RunnerOptions, REPORT_SCHEMA};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn default_suite_passes_with_the_reference_sender() {
    let dir = scenarios_dir();
    let files = default_suite(&dir).unwrap();
    assert!(files.len() >= 8, "{files:?}");
    let opts = RunnerOptions {
        sender: reference_sender(),
        seed: None,
        jobs: 4,
    };
    let report = run_suite(&files, &opts, |p| eprintln!("{p}")).await;
    assert!(report.errors.is_empty(), "{:?}", report.errors);
    assert!(report.passed, "{}", report.to_terminal());
    // Run 4 at a time, reported in file order (each file's stem is its scenario's name).
    let names: Vec<&str> = report
        .scenarios
        .iter()
        .map(|s| s.scenario.as_str())
        .collect();
    let stems: Vec<String> = files
        .iter()
        .filter_map(|f| f.file_stem())
        .map(|s| s.to_string_lossy().into_owned())
        .collect();
    assert_eq!(names, stems);
    for s in &report.scenarios {
        let e = &s.verdict.events;
        // every valid event stored exactly once, every invalid one rejected, nothing else
        assert_eq!(
            e.stored + e.expected_rejection,
            e.attempted,
            "{}",
            s.scenario
        );
        assert_eq!(
            (e.lost, e.duplicate_stored, e.unexpected),
            (0, 0, 0),
            "{}",
            s.scenario
        );
    }

    // The JSON report validates against conformance/report.schema.json.
    let schema: serde_json::Value = serde_json::from_str(REPORT_SCHEMA).unwrap();
    let validator = jsonschema::validator_for(&schema).unwrap();
    let json = serde_json::to_value(&report).unwrap();
    let errors: Vec<String> = validator
        .iter_errors(&json)
        .map(|e| e.to_string())
        .collect();
    assert!(errors.is_empty(), "{errors:?}");

    // JUnit: one test case per scenario, no failures.
    let junit = report.to_junit().unwrap();
    assert_eq!(junit.matches("<testcase").count(), report.scenarios.len());
    assert!(!junit.contains("<failure"));

    // HTML (issue 19): well-formed, under 2 MB, the same bytes on a second render, a section
    // and a timeline mark per request of every scenario.
    let html = report.to_html();
    amplitude_conformance::runner::check_well_formed(&html).unwrap();
    assert!(html.len() < 2_000_000, "{} bytes", html.len());
    assert_eq!(html, report.clone().to_html());
    for s in &report.scenarios {
        assert!(
            html.contains(&format!("<h2 id=\"s{}\"", s.scenario)),
            "{}",
            s.scenario
        );
        assert_eq!(s.timeline.requests.len(), s.requests, "{}", s.scenario);
    }
}
