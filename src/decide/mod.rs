//! The decision core: a request's identity, its operations and the policies
//! give one [`Outcome`]. Plain synchronous Rust, no tonic: [`crate::wire`]
//! converts at the edges.

pub mod gate;
pub mod request_file;

pub use gate::{Gate, Outcome};
