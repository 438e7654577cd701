//! Reference sender and conformance suite (work in progress).
