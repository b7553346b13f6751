//! Cedar policies: loading a snapshot, holding it, and deciding with it.

pub mod cache;
pub mod config;
pub mod diagnostic;
pub mod load;
pub mod reads;
pub mod scope;
pub mod shadow;
pub mod slice;
pub mod snapshot;
pub mod store;
#[cfg(any(test, feature = "testkit"))]
pub mod testkit;
pub mod watch;

pub use config::{AuthorizationConfig, CacheConfig, OnPolicyError, PolicyReloadConfig};
pub use load::{PolicyLoadError, load_dir, load_dir_with};
pub use snapshot::Snapshot;
pub use store::PolicyStore;
