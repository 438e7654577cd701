//! The binary works from any directory, as after `cargo install`: built-in scenarios by name,
//! `--list`, a clear error for an unknown name, all from an empty working directory with the
//! kit's cache directory in a temporary directory (ADR 006). The SDK adapters are not run
//! here (slow, installed elsewhere); `runner::adapter`'s unit tests cover writing them out.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use crate::common::reference_exe;
use std::path::Path;
use std::process::{Command, Output};

/// A fresh empty working directory and a cache directory beside it.
struct Anywhere {
    root: tempfile::TempDir,
}

impl Anywhere {
    fn new() -> Self {
        let root = tempfile::tempdir().unwrap();
        std::fs::create_dir(root.path().join("cwd")).unwrap();
        Self { root }
    }

    fn cwd(&self) -> std::path::PathBuf {
        self.root.path().join("cwd")
    }

    fn cache(&self) -> std::path::PathBuf {
        self.root.path().join("cache")
    }

    /// `amplitude-conformance ARGS` run in the empty directory, with the cache redirected
    /// (both the kit's variable and XDG_CACHE_HOME, so nothing reaches the real home).
    fn run(&self, args: &[&str]) -> Output {
        Command::new(reference_exe())
            .args(args)
            .current_dir(self.cwd())
            .env("AMPLITUDE_KIT_CACHE_DIR", self.cache())
            .env("XDG_CACHE_HOME", self.root.path().join("xdg"))
            .output()
            .unwrap()
    }
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

#[test]
fn list_names_every_builtin_scenario_with_what_it_models_and_provokes() {
    let a = Anywhere::new();
    let out = a.run(&["--list"]);
    let stdout = text(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let names = amplitude_loadgen::builtin::names();
    let lines: Vec<&str> = stdout.lines().collect();
    assert_eq!(lines.len(), names.len(), "{stdout}");
    for (line, name) in lines.iter().zip(&names) {
        assert!(line.starts_with(&format!("{name} ")), "{line}");
        assert!(line.contains("Should provoke: "), "{line}");
    }
    let trickle = lines
        .iter()
        .find(|l| l.starts_with("steady-trickle "))
        .unwrap();
    assert!(
        trickle.contains("Poisson 40 events/s") && trickle.ends_with("Should provoke: nothing."),
        "{trickle}"
    );
    assert!(lines
        .iter()
        .any(|l| l.starts_with("sdk-long-outage ") && l.ends_with("(not in the default suite)")));
    // Listing writes nothing anywhere.
    assert!(!a.cache().exists());
    assert_eq!(std::fs::read_dir(a.cwd()).unwrap().count(), 0);
}

#[test]
fn a_builtin_scenario_by_name_passes_from_an_empty_directory() {
    let a = Anywhere::new();
    let out = a.run(&["--scenario", "steady-trickle", "--report-json", "r.json"]);
    let (stdout, stderr) = (text(&out.stdout), text(&out.stderr));
    assert_eq!(out.status.code(), Some(0), "{stdout}\n{stderr}");
    assert!(stdout.contains("steady-trickle"), "{stdout}");
    // The built-in set was written out to the versioned cache directory, traces included...
    let dir = a.cache().join(env!("CARGO_PKG_VERSION")).join("scenarios");
    for f in amplitude_loadgen::builtin::files() {
        assert!(dir.join(f.path).is_file(), "{}", f.path);
    }
    // ...and the run used it; the working directory got only the report asked for.
    let report: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(a.cwd().join("r.json")).unwrap()).unwrap();
    assert_eq!(report["passed"], true);
    let file = report["scenarios"][0]["file"].as_str().unwrap();
    assert_eq!(Path::new(file), dir.join("steady-trickle.toml"));
    let names: Vec<String> = std::fs::read_dir(a.cwd())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(names, ["r.json"]);
}

#[test]
fn an_unknown_scenario_name_is_a_clear_error_with_exit_2() {
    let a = Anywhere::new();
    let out = a.run(&["--scenario", "no-such-scenario"]);
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains(
            "no scenario `no-such-scenario`: not a file, and no built-in scenario has that name"
        ),
        "{stderr}"
    );
    for name in amplitude_loadgen::builtin::names() {
        assert!(stderr.contains(name), "{name} missing from: {stderr}");
    }
    // A path is a file, never a name: a missing one is named as such.
    let out = a.run(&["--scenario", "missing.toml"]);
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("missing.toml"), "{stderr}");
    assert!(!stderr.contains("no built-in scenario"), "{stderr}");
}

#[test]
fn check_takes_builtin_names_and_files() {
    let a = Anywhere::new();
    std::fs::write(
        a.cwd().join("mine.toml"),
        "duration = \"1s\"\narrival = { kind = \"constant\", rate = 20.0 }\n",
    )
    .unwrap();
    let out = a.run(&[
        "check",
        "trace-replay",
        "sdk-events-without-ids",
        "mine.toml",
    ]);
    let stdout = text(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{stdout}{}", text(&out.stderr));
    assert_eq!(
        stdout,
        "ok   trace-replay (trace-replay)\nok   sdk-events-without-ids (sdk-events-without-ids)\nok   mine.toml (mine)\n"
    );
}

/// A sender command the shell cannot run (exit 127, no outcome line) is "could not run"
/// (exit 2), with the command, the code and the shell's message on the terminal, not a
/// run of lost events.
#[test]
fn a_sender_command_that_cannot_start_is_a_could_not_run_error() {
    let a = Anywhere::new();
    let out = a.run(&[
        "--sender-cmd",
        "no-such-sender-4b2e",
        "--scenario",
        "steady-trickle",
    ]);
    let (stdout, stderr) = (text(&out.stdout), text(&out.stderr));
    assert_eq!(out.status.code(), Some(2), "{stdout}\n{stderr}");
    let all = format!("{stdout}\n{stderr}");
    assert!(
        all.contains("sender `no-such-sender-4b2e` could not run: it exited with code 127"),
        "{all}"
    );
    assert!(all.contains("no-such-sender-4b2e: not found"), "{all}");
    assert!(!all.contains("silent loss"), "{all}");
}

/// `--scenarios-dir`: a missing directory is named; an empty one is an error (exit 2), not
/// "0 of 0 scenarios passed".
#[test]
fn a_missing_or_empty_scenarios_dir_is_an_error() {
    let a = Anywhere::new();
    let out = a.run(&["--scenarios-dir", "nonexist"]);
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("reading the scenarios directory nonexist: No such file or directory"),
        "{stderr}"
    );
    std::fs::create_dir(a.cwd().join("empty")).unwrap();
    let out = a.run(&["--scenarios-dir", "empty"]);
    let (stdout, stderr) = (text(&out.stdout), text(&out.stderr));
    assert_eq!(out.status.code(), Some(2), "{stdout}\n{stderr}");
    assert!(stderr.contains("error: no scenarios in empty"), "{stderr}");
    assert!(!stdout.contains("scenarios passed"), "{stdout}");
}

/// `--help` lists every adapter the binary carries; an unknown one is refused by the
/// argument parser (exit 2) before anything is installed.
#[test]
fn adapters_are_listed_in_help_and_an_unknown_one_is_refused_first() {
    let a = Anywhere::new();
    let out = a.run(&["--help"]);
    let help = text(&out.stdout)
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ");
    assert_eq!(out.status.code(), Some(0));
    for adapter in amplitude_conformance::runner::ADAPTERS {
        assert!(
            help.contains(adapter.name),
            "{} missing: {help}",
            adapter.name
        );
    }
    let out = a.run(&["--adapter", "bogus"]);
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("bogus"), "{stderr}");
    assert!(stderr.contains("legacy-node-sdk"), "{stderr}");
    assert!(!stderr.contains("installing adapter"), "{stderr}");
    assert!(!a.cache().exists());
}

/// `sender --help` lists every environment variable of the sender contract's table
/// (docs/sender-contract.md), contract 3 included.
#[test]
fn sender_help_lists_every_contract_variable() {
    let doc = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../docs/sender-contract.md"),
    )
    .unwrap();
    let vars: Vec<&str> = doc
        .lines()
        .filter_map(|l| l.strip_prefix("| `")?.split('`').next())
        .filter(|v| v.starts_with("AMPLITUDE_"))
        .collect();
    assert!(vars.contains(&"AMPLITUDE_SENDER_RESTART"), "{vars:?}");
    let out = Anywhere::new().run(&["sender", "--help"]);
    let help = text(&out.stdout);
    assert_eq!(out.status.code(), Some(0));
    for v in vars {
        assert!(
            help.lines().any(|l| l.trim_start().starts_with(v)),
            "{v} missing from the Environment list: {help}"
        );
    }
}
