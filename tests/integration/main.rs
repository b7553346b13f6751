//! Integration tests, compiled as one binary: the real `cedar-gate` process, and end to end
//! through a real Envoy. Shared helpers live in [`common`].

// Tests may unwrap and panic: a failing assertion is the point.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;
mod e2e;
mod grpc;
mod robustness;
