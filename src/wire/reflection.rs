//! gRPC server reflection on the Check port, so `grpcurl list`, `describe` and calls
//! work without a copy of the Envoy `.proto` trees.
//!
//! envoy-types ships generated code and the `.proto` sources but no descriptor set, and
//! the build has no protoc. So the descriptor set of `external_auth.proto` and everything
//! it imports is generated once (`make descriptors`, protoc from the `grpcio-tools` wheel)
//! and checked in as `proto/ext_authz.binpb`, with the envoy-types version it came from in
//! `proto/ext_authz.binpb.source`; a test fails when Cargo.lock moves to another version.
//! tonic-health ships its own descriptor set. Both reflection protocols are served: v1,
//! and v1alpha for clients such as grpcurl 1.8 that speak only that one.

use tonic_reflection::server::{v1, v1alpha};

/// The encoded `FileDescriptorSet` of `envoy.service.auth.v3` and its imports.
pub const EXT_AUTHZ_DESCRIPTOR_SET: &[u8] = include_bytes!("../../proto/ext_authz.binpb");

/// The reflection services could not be built from the descriptor sets.
#[derive(Debug, thiserror::Error)]
#[error("gRPC reflection: the built-in descriptor sets do not decode: {0}")]
pub struct ReflectionError(#[source] tonic_reflection::server::Error);

/// The v1 and v1alpha reflection services, describing the Authorization and Health
/// services (and reflection itself).
pub(crate) fn services() -> Result<
    (
        v1::ServerReflectionServer<impl v1::ServerReflection>,
        v1alpha::ServerReflectionServer<impl v1alpha::ServerReflection>,
    ),
    ReflectionError,
> {
    let builder = || {
        tonic_reflection::server::Builder::configure()
            .register_encoded_file_descriptor_set(EXT_AUTHZ_DESCRIPTOR_SET)
            .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
    };
    let v1 = builder().build_v1().map_err(ReflectionError)?;
    let v1alpha = builder().build_v1alpha().map_err(ReflectionError)?;
    Ok((v1, v1alpha))
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use prost::Message;
    use prost_types::FileDescriptorSet;

    use super::*;

    #[test]
    fn descriptor_set_describes_check() {
        let set = FileDescriptorSet::decode(EXT_AUTHZ_DESCRIPTOR_SET).unwrap();
        let file = set
            .file
            .iter()
            .find(|f| f.name() == "envoy/service/auth/v3/external_auth.proto")
            .unwrap();
        assert_eq!(file.package(), "envoy.service.auth.v3");
        let service = file.service.iter().find(|s| s.name() == "Authorization");
        let check = service.unwrap().method.iter().find(|m| m.name() == "Check");
        let check = check.unwrap();
        assert_eq!(check.input_type(), ".envoy.service.auth.v3.CheckRequest");
        assert_eq!(check.output_type(), ".envoy.service.auth.v3.CheckResponse");
        // Every import is in the set, so a client can resolve every type.
        let names: Vec<&str> = set.file.iter().map(|f| f.name()).collect();
        for f in &set.file {
            for dep in &f.dependency {
                assert!(names.contains(&dep.as_str()), "{} imports {dep}", f.name());
            }
        }
    }

    /// The checked-in descriptor set was generated from the envoy-types version in
    /// Cargo.lock: after an upgrade, `make descriptors` regenerates it.
    #[test]
    fn descriptor_set_matches_the_locked_envoy_types() {
        let lock = include_str!("../../Cargo.lock");
        let locked = lock
            .split("[[package]]")
            .find(|p| p.contains("\nname = \"envoy-types\"\n"))
            .and_then(|p| p.split("\nversion = \"").nth(1))
            .and_then(|v| v.split('"').next())
            .unwrap();
        let source = include_str!("../../proto/ext_authz.binpb.source");
        assert_eq!(
            source.trim(),
            format!("envoy-types {locked}"),
            "proto/ext_authz.binpb is stale: run `make descriptors`"
        );
    }

    #[test]
    fn services_build() {
        services().unwrap();
    }
}
