//! The integration tests of amplitude-loadgen, one binary: one module per area, shared
//! helpers in `common/`.

mod common;
mod direct;
mod from_anywhere;
mod generation;
mod kubernetes;
mod next_into;
mod segments;
