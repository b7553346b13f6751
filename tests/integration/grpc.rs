//! gRPC-level integration tests (lead)
