//! cedar-gate: an Envoy ext_authz v3 service that decides with Cedar policies.
//!
//! The Check path is: [`request`] (wire → domain) → [`identity`] → [`classify`] →
//! [`policy`] (snapshot decide) → [`response`] (domain → wire), with one [`audit`]
//! event and one set of [`metrics`] per decision. Everything between the wire types
//! and the response is synchronous and testable without tonic.

pub mod admin;
pub mod analysis;
pub mod app;
pub mod audit;
pub mod cache;
pub mod classify;
pub mod cli;
pub mod config;
pub mod gate;
pub mod identity;
pub mod metrics;
pub mod policy;
pub mod reflection;
mod refusal;
pub mod report;
pub mod request;
pub mod response;
pub mod service;
pub mod shadow;
pub mod target;
pub mod tls;
