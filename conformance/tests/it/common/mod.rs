//! Helpers shared by the integration tests.

#![allow(clippy::unwrap_used)] // test helpers

use amplitude_conformance::runner::SenderSpec;
use std::path::PathBuf;

/// The conformance crate's directory.
pub fn crate_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// The scenario files' directory in the source tree (`loadgen/scenarios/`: the built-in set).
pub fn scenarios_dir() -> PathBuf {
    crate_dir().join("../loadgen/scenarios")
}

/// The `amplitude-conformance` binary built for these tests.
pub fn reference_exe() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_amplitude-conformance"))
}

/// The reference sender, as the runner starts it.
pub fn reference_sender() -> SenderSpec {
    SenderSpec::Reference {
        exe: reference_exe(),
        args: vec![],
    }
}

/// A fresh state directory under the system temp dir, named after `prefix`.
pub fn state_dir(prefix: &str) -> PathBuf {
    std::env::temp_dir().join(format!("{prefix}-{}", uuid::Uuid::new_v4()))
}
