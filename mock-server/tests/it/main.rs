//! The mock's integration tests, one binary: one module per behaviour area, shared helpers
//! in `common/` (a mock on port 0, a plain HTTP client).

mod accounting;
mod builder;
mod canned_bodies;
mod ci_example;
mod common;
mod dedup;
mod expectations;
mod faults;
mod fuzz;
mod identify;
mod inspection;
mod knobs;
mod model;
mod overload;
mod properties;
mod quota;
mod readme;
mod refuse;
mod robustness;
mod scoped_faults;
mod start;
mod throttling;
mod transport;
mod validation;
mod vectors;
mod wire_429;
