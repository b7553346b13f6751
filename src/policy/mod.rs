//! Cedar policies: loading a snapshot, holding it, and deciding with it.

pub mod diagnostic;
pub mod eval;
pub mod load;
pub mod model;
pub mod reads;
pub mod slice;
pub mod snapshot;
pub mod store;
pub mod watch;

pub use eval::{AuthzRequest, Decision, DeterminingPolicy, Effect, PrincipalSpec, Reason};
pub use load::{PolicyLoadError, load_dir};
pub use snapshot::Snapshot;
pub use store::PolicyStore;
