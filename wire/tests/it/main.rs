//! The integration tests of amplitude-wire, one binary. The crate has no I/O of its own, so
//! they check the repository as a whole: it stands on its own (no references outside it,
//! every `spec` citation resolves), and the crates meant for users package with what they
//! need and nothing else.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test code: a failure is a panic

mod no_outside_refs;
mod packaging;
