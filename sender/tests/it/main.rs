//! The integration tests of amplitude-sender, one binary: one module per area, shared helpers
//! in `common/`. They test the library only; the `amplitude-conformance sender` command (the
//! contract speaker) and its crash tests are tested in conformance/tests/it/.

mod common;

mod against_mock;
mod against_wiremock;
mod builder_api;
mod disk_full;
mod durability;
mod model;
mod state_machine;
