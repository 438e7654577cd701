//! The integration tests of amplitude-conformance, one binary: one module per area, shared
//! helpers in `common/`. The sender library's own tests are in sender/tests/it/; the
//! CLI (`amplitude-conformance sender`) and its crash tests stay here. The deliberately broken senders stay in `tests/senders/`.

mod common;

mod broken_senders;
mod default_suite;
mod from_anywhere;
mod html_report;
mod restarts;
mod sdk_adapters;
mod sender_cli;
mod sender_crash;
mod sender_disk_full;
