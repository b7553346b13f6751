//! The decision core: a request's identity, its operations and the policies
//! give one [`Outcome`]. Plain synchronous Rust, no tonic: [`crate::wire`]
//! converts at the edges.
//!
//! [`Gate::check`] runs the steps: resolve the caller ([`crate::identity`]),
//! classify the request ([`crate::classify`]), ask ([`question`]), decide the
//! batch ([`batch`]), answer ([`outcome`]), and on routes where the gateway
//! holds the provider key, name the credential to inject ([`credentials`]).

pub(crate) mod batch;
pub mod credentials;
pub(crate) mod gate;
pub(crate) mod outcome;
pub mod question;
pub mod raw;
pub mod request_file;
pub mod stepup;

pub use gate::Gate;
pub use outcome::{Answer, HEADER_PREFIX, Outcome};
