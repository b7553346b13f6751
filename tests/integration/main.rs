//! Integration tests, compiled as one binary: the real `cedar-gate` process, and end to end
//! through a real Envoy. Shared helpers live in [`common`].

// Tests may unwrap and panic: a failing assertion is the point.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod ai;
mod common;
mod credentials_e2e;
mod e2e;
mod e2e_ai;
mod e2e_differential;
mod grpc;
mod hostile_envoy;
mod idp_outage;
mod jwt;
mod jwt_e2e;
mod operations;
mod policy_review;
mod policy_tests;
mod reload;
mod robustness;
mod tls;
