//! The binary works from any directory, as after `cargo install`: `run`, `generate` and
//! `check` take built-in scenario names (written out to the kit's cache directory, traces
//! included), `list` names them, and an unknown name is a clear error (ADR 006). Each run
//! happens in an empty working directory with the cache in a temporary directory.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use crate::common::scenarios_dir;
use amplitude_loadgen::{builtin, Scenario};
use std::path::PathBuf;
use std::process::{Command, Output};

/// A fresh empty working directory, and a cache directory beside it.
struct Anywhere {
    root: tempfile::TempDir,
}

impl Anywhere {
    fn new() -> Self {
        let root = tempfile::tempdir().unwrap();
        std::fs::create_dir(root.path().join("cwd")).unwrap();
        Self { root }
    }

    fn cwd(&self) -> PathBuf {
        self.root.path().join("cwd")
    }

    fn cache(&self) -> PathBuf {
        self.root.path().join("cache")
    }

    /// The command `amplitude-loadgen ARGS` in the empty directory, cache redirected.
    fn command(&self, args: &[&str]) -> Command {
        let mut c = Command::new(env!("CARGO_BIN_EXE_amplitude-loadgen"));
        c.args(args)
            .current_dir(self.cwd())
            .env("AMPLITUDE_KIT_CACHE_DIR", self.cache())
            .env("XDG_CACHE_HOME", self.root.path().join("xdg"));
        c
    }

    fn run(&self, args: &[&str]) -> Output {
        self.command(args).output().unwrap()
    }
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// `amplitude-loadgen run SCENARIO --target MOCK --api-key KEY --progress off EXTRA...` in
/// `a`'s directory, off the async runtime; asserts exit 0 and returns its stderr.
async fn run_to_mock(
    a: &Anywhere,
    mock: &amplitude_mock::MockServer,
    scenario: &str,
    extra: &[&str],
) -> String {
    let uri = mock.uri();
    let mut args = vec![
        "run",
        scenario,
        "--target",
        &uri,
        "--api-key",
        "KEY",
        "--progress",
        "off",
    ];
    args.extend_from_slice(extra);
    let mut cmd = a.command(&args);
    let out = tokio::task::spawn_blocking(move || cmd.output().unwrap())
        .await
        .unwrap();
    let (stdout, stderr) = (text(&out.stdout), text(&out.stderr));
    assert_eq!(out.status.code(), Some(0), "{stdout}\n{stderr}");
    stderr
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn run_by_name_against_the_mock_from_an_empty_directory() {
    let mock = amplitude_mock::MockServer::start().await;
    let a = Anywhere::new();
    let stderr = run_to_mock(&a, &mock, "steady-trickle", &["--report-json", "r.json"]).await;
    // No [mock] section in it: no note about one.
    assert!(!stderr.contains("[mock] section"), "{stderr}");
    // Every generated event reached the mock.
    let sc = Scenario::from_path(scenarios_dir().join("steady-trickle.toml")).unwrap();
    let generated = sc.events(sc.seed).unwrap().count() as u64;
    assert!(generated > 100);
    assert_eq!(mock.stats().events_stored, generated);
    let report: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(a.cwd().join("r.json")).unwrap()).unwrap();
    assert_eq!(report["scenario"]["name"], "steady-trickle");
    // The scenario came from the versioned cache directory.
    let cached = a
        .cache()
        .join(env!("CARGO_PKG_VERSION"))
        .join("scenarios/steady-trickle.toml");
    assert!(cached.is_file());
}

/// A scenario's `[mock]` section configures the embedded mock of the conformance suite;
/// `run` against a target of the user's cannot apply it, and says so instead of dropping it
/// silently.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn run_says_that_a_scenarios_mock_section_is_not_applied_to_the_target() {
    let mock = amplitude_mock::MockServer::start().await;
    let a = Anywhere::new();
    std::fs::write(
        a.cwd().join("with-mock.toml"),
        r#"name = "with-mock"
seed = 1
endpoint = "http_v2"
duration = "1s"
arrival = { kind = "constant", rate = 5.0 }
[mock]
faults = [{ kind = "status", status = 503, count = 1000 }]
"#,
    )
    .unwrap();
    let stderr = run_to_mock(&a, &mock, "with-mock.toml", &[]).await;
    assert!(
        stderr.contains(
            "note: the scenario's [mock] section (limits, faults) configures the embedded mock"
        ),
        "{stderr}"
    );
    // The fault was not applied: the mock stored every event.
    assert_eq!(mock.stats().events_stored, 5);
}

#[test]
fn generate_by_name_equals_generate_of_the_source_file() {
    let a = Anywhere::new();
    let by_name = a.run(&["generate", "trace-replay"]);
    assert_eq!(by_name.status.code(), Some(0), "{}", text(&by_name.stderr));
    let source = scenarios_dir().join("trace-replay.toml");
    let by_path = a.run(&["generate", source.to_str().unwrap()]);
    assert_eq!(by_path.status.code(), Some(0), "{}", text(&by_path.stderr));
    assert!(!by_name.stdout.is_empty());
    assert!(by_name.stdout == by_path.stdout, "generate NAME differs");
}

#[test]
fn check_and_list_know_every_builtin_scenario() {
    let a = Anywhere::new();
    let names = builtin::names();
    let mut args = vec!["check"];
    args.extend(&names);
    let out = a.run(&args);
    let stdout = text(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{stdout}{}", text(&out.stderr));
    assert_eq!(stdout.lines().count(), names.len(), "{stdout}");
    for (line, name) in stdout.lines().zip(&names) {
        assert!(
            line.starts_with(&format!("ok   {name} ({name}): ")),
            "{line}"
        );
    }

    let out = a.run(&["list"]);
    let stdout = text(&out.stdout);
    assert_eq!(out.status.code(), Some(0));
    let lines: Vec<&str> = stdout.lines().collect();
    assert_eq!(lines.len(), names.len(), "{stdout}");
    for (line, name) in lines.iter().zip(&names) {
        assert!(
            line.starts_with(&format!("{name} ")) && line.contains("Should provoke: "),
            "{line}"
        );
    }
}

#[test]
fn an_unknown_name_is_a_clear_error() {
    let a = Anywhere::new();
    let out = a.run(&["generate", "no-such-scenario"]);
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.starts_with("error: no scenario `no-such-scenario`: not a file"),
        "{stderr}"
    );
    assert!(stderr.contains("steady-trickle"), "{stderr}");
    assert!(!a.cache().exists(), "nothing written for an unknown name");
}

#[test]
fn every_builtin_scenario_parses_and_says_what_it_models_and_provokes() {
    let summaries = builtin::summaries();
    assert_eq!(summaries.len(), builtin::names().len());
    for s in &summaries {
        let sc = Scenario::from_toml_str(s.text, format!("{}.toml", s.name)).unwrap();
        assert_eq!(sc.name, s.name, "a built-in's `name` is its file stem");
        assert_eq!(sc.description, s.description);
        assert!(!s.description.is_empty(), "{}: no description", s.name);
        assert!(
            s.provokes.ends_with('.') && s.provokes.len() > 5,
            "{}: its header has no `Should provoke:` sentence: {:?}",
            s.name,
            s.provokes
        );
    }
}
