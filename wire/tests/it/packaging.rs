//! The crates meant for users package (`cargo package --list`, no build) with the files they
//! need at build and run time, and without build output, installed SDKs or test fixtures.

use std::path::{Path, PathBuf};
use std::process::Command;

fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// The files `cargo package` would put in `krate`'s `.crate`, relative to the crate's root.
fn package_list(krate: &str) -> Vec<String> {
    // Its own target dir: never waits on the lock of the `cargo test` running this test.
    let target = std::env::temp_dir().join(format!("amplitude-kit-package-{}", std::process::id()));
    let out = Command::new(env!("CARGO"))
        .args([
            "package",
            "-p",
            krate,
            "--no-verify",
            "--list",
            "--allow-dirty",
        ])
        .current_dir(repo_root())
        .env("CARGO_TARGET_DIR", &target)
        .output()
        .expect("running cargo package");
    assert!(
        out.status.success(),
        "cargo package -p {krate} --list failed:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(str::to_owned)
        .collect()
}

/// Names in `dir` (relative to the repository root) ending in `suffix`, as `prefix/NAME`.
fn files_in(dir: &str, suffix: &str, prefix: &str) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(repo_root().join(dir))
        .unwrap()
        .filter_map(|e| e.ok())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(suffix))
        .map(|n| format!("{prefix}/{n}"))
        .collect();
    names.sort();
    names
}

fn assert_clean(krate: &str, list: &[String]) {
    for must in ["Cargo.toml", "README.md", "src/lib.rs"] {
        assert!(
            list.iter().any(|f| f == must),
            "{krate}: no {must} in {list:?}"
        );
    }
    let unwanted: Vec<&String> = list
        .iter()
        .filter(|f| {
            f.starts_with("target/")
                || f.starts_with("tests/")
                || f.starts_with("benches/")
                || f.contains("node_modules")
                || f.contains(".venv")
        })
        .collect();
    assert!(unwanted.is_empty(), "{krate} packages {unwanted:?}");
}

#[test]
fn the_user_facing_crates_package_with_what_they_need_and_nothing_else() {
    for krate in [
        "amplitude-wire",
        "amplitude-mock",
        "amplitude-loadgen",
        "amplitude-conformance",
    ] {
        let list = package_list(krate);
        assert_clean(krate, &list);
        match krate {
            "amplitude-loadgen" => {
                // the built-in scenarios and their traces are embedded: they must travel along
                for f in files_in("loadgen/scenarios", ".toml", "scenarios")
                    .into_iter()
                    .chain(files_in(
                        "loadgen/scenarios/traces",
                        ".jsonl",
                        "scenarios/traces",
                    ))
                {
                    assert!(list.contains(&f), "amplitude-loadgen: {f} is not packaged");
                }
            }
            "amplitude-conformance" => {
                for f in [
                    "adapters/python-sdk/adapter.py",
                    "adapters/node-sdk/adapter.mjs",
                    "adapters/browser-sdk/adapter.mjs",
                    "adapters/browser-sdk/page-browser-sdk.js",
                    "adapters/browser-sdk/page-amplitude-js.js",
                    "adapters/amplitude-js/run.sh",
                ] {
                    assert!(list.iter().any(|l| l == f), "amplitude-conformance: no {f}");
                }
            }
            _ => {}
        }
    }
}

/// The sender library a service embeds pulls in none of the kit's test machinery: no mock
/// (and its certificate generator), no load generator (and its charts and archives), no JUnit
/// writer (issue 14).
#[test]
fn the_sender_library_depends_on_no_test_machinery() {
    let target = std::env::temp_dir().join(format!("amplitude-kit-tree-{}", std::process::id()));
    let out = Command::new(env!("CARGO"))
        .args([
            "tree",
            "-p",
            "amplitude-sender",
            "-e",
            "normal",
            "--prefix",
            "none",
        ])
        .current_dir(repo_root())
        .env("CARGO_TARGET_DIR", &target)
        .output()
        .expect("running cargo tree");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let tree = String::from_utf8_lossy(&out.stdout);
    let crates: Vec<&str> = tree
        .lines()
        .filter_map(|l| l.split_whitespace().next())
        .collect();
    assert!(crates.contains(&"reqwest"), "{tree}");
    for unwanted in [
        "amplitude-mock",
        "amplitude-loadgen",
        "amplitude-conformance",
        "rcgen",
        "plotters",
        "zip",
        "quick-junit",
    ] {
        assert!(
            !crates.contains(&unwanted),
            "amplitude-sender depends on {unwanted}:\n{tree}"
        );
    }
}
