//! Helpers shared by the integration tests.

#![allow(clippy::unwrap_used)] // test helpers

use amplitude_loadgen::Scenario;
use std::path::{Path, PathBuf};

/// This crate's `scenarios/` directory (the built-in set).
pub fn scenarios_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("scenarios")
}

/// A shipped scenario, loaded.
pub fn load(name: &str) -> Scenario {
    Scenario::from_path(scenarios_dir().join(name)).unwrap()
}
