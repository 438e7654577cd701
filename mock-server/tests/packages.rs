//! The mock as a Python package (a wheel with the binary and the pytest plugin) and as npm
//! packages (the helper and the linux-x64 binary package), each built from `packaging/`,
//! installed the way a user installs it into a fresh virtualenv / folder, and driving the
//! official SDK (the versions the conformance adapters pin) in a pytest / `node --test` file
//! checked in next to the package.
//!
//! Needs python3 (with venv) and node/npm, and PyPI and npm access the first time; installs
//! what it needs itself (maturin into `<target>/packaging/maturin-venv`).
//!
//! Its own test binary, the second exception to "one integration-test binary per crate" (after
//! `logs.rs`): building the wheel compiles the mock once more (maturin runs cargo, into
//! `<target>/packaging/cargo` so that it never waits on the test build's lock), which keeps
//! both cores busy for minutes on a cold target dir; cargo runs test binaries one at a time,
//! so the timing-sensitive tests of `tests/it/` never share the machine with that build.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test code: a failure is a panic

#[path = "it/common/process.rs"]
mod process;

use process::{mock_binary, repo, run, target_dir};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

const MINUTE: Duration = Duration::from_secs(60);

/// The one file of `dir` whose name starts with `prefix` and ends with `suffix`.
fn only_file(dir: &Path, prefix: &str, suffix: &str) -> PathBuf {
    let found: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| {
            let name = p.file_name().unwrap().to_string_lossy();
            name.starts_with(prefix) && name.ends_with(suffix)
        })
        .collect();
    assert_eq!(
        found.len(),
        1,
        "one {prefix}*{suffix} in {}: {found:?}",
        dir.display()
    );
    found.into_iter().next().unwrap()
}

/// The closing line of a runner (`N passed`, `# pass N`) must be there, and nothing failed.
fn assert_summary(what: &str, output: &str, expected: &str) {
    assert!(
        output.contains(expected),
        "{what}: expected `{expected}` in its output:\n{output}"
    );
}

#[test]
fn python_wheel_and_pytest_plugin_drive_the_official_sdk() {
    let repo = repo();
    let tmp = tempfile::tempdir().unwrap();

    // The wheel, as packaging/python/build.sh builds it for anyone, but with the dev profile.
    // Measured on 2 cores: a cold build costs about the same CPU either way (user time: dev
    // 4 min 53 s, release 4 min 4 s), but after an edit of the mock the dev build is
    // incremental (seconds) where release rebuilds the crate (about a minute); and the test
    // needs a working binary, not a fast one.
    let wheels = tmp.path().join("wheels");
    run(
        "building the wheel (maturin, dev profile)",
        Command::new("bash")
            .arg(repo.join("packaging/python/build.sh"))
            .arg("--debug")
            .arg("--out")
            .arg(&wheels)
            .env("PACKAGING_DIR", target_dir().join("packaging"))
            .env_remove("CARGO_TARGET_DIR"),
        30 * MINUTE,
    );
    let wheel = only_file(&wheels, "amplitude_mock-", ".whl");

    // A fresh virtualenv with the wheel, pytest and the SDK (pinned in requirements.txt).
    let venv = tmp.path().join("venv");
    run(
        "python3 -m venv",
        Command::new("python3").arg("-m").arg("venv").arg(&venv),
        5 * MINUTE,
    );
    let python = venv.join("bin/python");
    run(
        "pip install (the wheel, pytest, amplitude-analytics)",
        Command::new(&python)
            .args([
                "-m",
                "pip",
                "install",
                "--disable-pip-version-check",
                "--quiet",
            ])
            .arg(&wheel)
            .arg("-r")
            .arg(repo.join("packaging/python/tests/requirements.txt")),
        10 * MINUTE,
    );
    assert!(
        venv.join("bin/amplitude-mock").is_file(),
        "the wheel put no amplitude-mock binary into {}/bin",
        venv.display()
    );

    // The plugin comes from the wheel's entry point: nothing else points pytest at it.
    let pytest = run(
        "pytest packaging/python/tests",
        Command::new(&python)
            .args([
                "-m",
                "pytest",
                "-p",
                "pytester",
                "-p",
                "no:cacheprovider",
                "-v",
            ])
            .arg(repo.join("packaging/python/tests"))
            .current_dir(tmp.path())
            .env("PYTHONDONTWRITEBYTECODE", "1")
            .env_remove("AMPLITUDE_MOCK_BINARY")
            .env_remove("PYTHONPATH")
            .env_remove("PYTEST_ADDOPTS")
            .env_remove("PYTEST_PLUGINS")
            .env_remove("VIRTUAL_ENV"),
        10 * MINUTE,
    );
    assert_summary("pytest", &pytest.stdout, "7 passed");
}

#[test]
fn npm_packages_drive_the_official_sdk() {
    let repo = repo();
    let tmp = tempfile::tempdir().unwrap();

    // Both packages, as packaging/npm/build.sh packs them for anyone, around the binary cargo
    // built for these tests.
    let dist = tmp.path().join("dist");
    run(
        "packing the npm packages",
        Command::new("bash")
            .arg(repo.join("packaging/npm/build.sh"))
            .arg(mock_binary())
            .arg(&dist),
        5 * MINUTE,
    );
    let main = only_file(&dist, "amplitude-mock-0", ".tgz");
    let platform = only_file(&dist, "amplitude-mock-linux-x64-", ".tgz");

    // A fresh folder with the two tarballs and the SDK at the adapter's pinned version.
    let adapter: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(repo.join("conformance/adapters/node-sdk/package.json")).unwrap(),
    )
    .unwrap();
    let sdk_version = adapter["dependencies"]["@amplitude/analytics-node"]
        .as_str()
        .unwrap();
    let app = tmp.path().join("app");
    std::fs::create_dir(&app).unwrap();
    std::fs::write(app.join("package.json"), r#"{"private": true}"#).unwrap();
    run(
        "npm install (the two tarballs, @amplitude/analytics-node)",
        Command::new("npm")
            .args([
                "install",
                "--no-audit",
                "--no-fund",
                "--save-exact",
                "--loglevel=error",
            ])
            .arg(&main)
            .arg(&platform)
            .arg(format!("@amplitude/analytics-node@{sdk_version}"))
            .current_dir(&app),
        10 * MINUTE,
    );

    // The test file is copied next to node_modules: that is where `import 'amplitude-mock'`
    // resolves from.
    std::fs::copy(
        repo.join("packaging/npm/test/with-sdk.test.mjs"),
        app.join("with-sdk.test.mjs"),
    )
    .unwrap();
    let node = run(
        "node --test with-sdk.test.mjs",
        Command::new("node")
            .args(["--test", "with-sdk.test.mjs"])
            .current_dir(&app)
            .env_remove("AMPLITUDE_MOCK_BINARY")
            .env_remove("NODE_OPTIONS"),
        5 * MINUTE,
    );
    assert_summary("node --test", &node.stdout, "# pass 5");
    assert_summary("node --test", &node.stdout, "# fail 0");
}
