//! The Cedar vocabulary cedar-gate speaks: entity-type names, values, uids,
//! the question ([`AuthzRequest`]) and its answer ([`Decision`]).
//!
//! Imports nothing from the crate: every layer may use it, and it can be read
//! alone.

mod decision;
mod id;
mod names;
mod time;
mod value;

pub use decision::{AuthzRequest, Decision, DeterminingPolicy, Effect, PrincipalSpec, Reason};
pub use id::decision_id;
pub use names::*;
pub use time::{push_rfc3339, rfc3339, rfc3339_seconds};
pub use value::*;
