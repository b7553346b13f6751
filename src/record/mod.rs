//! Recording decisions: the audit stream and Prometheus metrics. Metrics take
//! plain values, so any layer may count; the audit event is built from a
//! decided [`crate::decide::Outcome`].

pub mod audit;
pub mod metrics;
