//! cedar-gate: an Envoy ext_authz v3 service that decides with Cedar policies.
//!
//! The layers, innermost first (ARCHITECTURE.md; `tests/layering.rs` checks
//! that imports only point inward):
//! - [`vocab`]: the Cedar vocabulary (names, values, the question and its
//!   answer); imports nothing from the crate. [`target`]: the canonical
//!   request target. [`watch`]: following files through Kubernetes `..data`
//!   swaps.
//! - [`request`] (the request as the decision core sees it), [`record::metrics`].
//! - [`identity`], [`classify`], [`policy`]: who is asking, what for, and the
//!   policies that answer; [`credentials`], the provider keys the gateway
//!   holds. Independent of each other.
//! - [`config`]: the configuration file, composed of the parts' own types.
//! - [`decide`]: resolve, classify, ask, decide: one [`decide::Outcome`].
//! - [`record::audit`]: one audit event per decision.
//! - [`wire`]: the edge, the only code that names `envoy_types`; [`admin`].
//! - [`app`], [`cli`], [`analysis`]: wiring and tools.

pub mod admin;
pub mod analysis;
pub mod app;
pub mod classify;
pub mod cli;
pub mod config;
pub mod credentials;
pub mod decide;
pub mod identity;
pub mod policy;
pub mod record;
pub mod request;
pub mod target;
pub mod vocab;
pub mod watch;
pub mod wire;
