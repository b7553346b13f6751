//! The edge: the only code that names `envoy_types`. The gRPC service and its
//! health, the answer to Envoy (with refusals in the caller's protocol), server
//! reflection, and the server's TLS.

pub mod conn;
pub mod extproc;
pub mod health;
pub mod lean;
mod pbwrite;
pub mod reflection;
pub(crate) mod refusal;
pub mod request;
pub mod response;
pub mod service;
#[cfg(any(test, feature = "testkit"))]
pub mod testkit;
pub mod tls;

// Provider credentials end to end inside the process: decision, answer to
// Envoy, audit (docs/credentials.md).
#[cfg(test)]
mod credentials_tests;
// The answer to Envoy read back with prost.
#[cfg(test)]
mod response_tests;
