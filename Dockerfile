# syntax=docker/dockerfile:1
#
# cedar-gate container image: a release build on Debian 12, copied into distroless
# (glibc + libgcc, no shell, no package manager), running as the non-root user 65532.
# It carries the example policies and config, so `docker run` works out of the box; in
# Kubernetes the Helm chart mounts your own over /etc/cedar-gate/{config,policies}.
#
#   make image                     # = docker build -t cedar-gate:0.1.0 .
#   docker build -t ghcr.io/cedar-gate/cedar-gate:0.1.0 .
#   docker run --rm -p 9191:9191 -p 9464:9464 ghcr.io/cedar-gate/cedar-gate:0.1.0
#   docker run --rm -v "$PWD/cedar:/p:ro" ghcr.io/cedar-gate/cedar-gate:0.1.0 validate --policy-dir /p

# Base images. Tags by default; pin them by digest for reproducible builds, e.g.
#   make image DOCKER_BUILD_ARGS="--build-arg BUILD_IMAGE=rust:1.95-bookworm@sha256:<digest> \
#     --build-arg RUNTIME_IMAGE=gcr.io/distroless/cc-debian12:nonroot@sha256:<digest>"
# (`docker buildx imagetools inspect IMAGE` prints the digest). The repository does not
# carry digests: they could not be looked up from the machines this was built on.
ARG BUILD_IMAGE=rust:1.95-bookworm
ARG FILES_IMAGE=debian:bookworm-slim
# The glibc of Debian 12 matches the build stage.
ARG RUNTIME_IMAGE=gcr.io/distroless/cc-debian12:nonroot

FROM ${BUILD_IMAGE} AS build
# aws-lc-sys (rustls' crypto provider) compiles its C with the `cc` crate: no cmake needed.
WORKDIR /src
COPY . .
# Cache mounts keep the registry and the target dir between builds (BuildKit).
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target \
    cargo build --release --locked --bin cedar-gate \
 && install -D -m 0755 target/release/cedar-gate /out/cedar-gate

# Files the runtime stage takes, owned by root and read-only for the service user.
FROM ${FILES_IMAGE} AS files
COPY cedar/ /out/etc/cedar-gate/policies/
COPY config/cedar-gate.yaml /out/etc/cedar-gate/config/cedar-gate.yaml
RUN chmod -R a+rX,go-w /out

FROM ${RUNTIME_IMAGE}
ARG VERSION=0.1.0
LABEL org.opencontainers.image.title="cedar-gate" \
      org.opencontainers.image.description="Envoy ext_authz service that governs AI traffic with Cedar policies" \
      org.opencontainers.image.source="https://github.com/cedar-gate/cedar-gate" \
      org.opencontainers.image.licenses="Apache-2.0" \
      org.opencontainers.image.version="${VERSION}"
COPY --from=build /out/cedar-gate /usr/local/bin/cedar-gate
COPY --from=files /out/etc/cedar-gate/ /etc/cedar-gate/
# 65532 is distroless' `nonroot`; numeric so `runAsNonRoot` can verify it.
USER 65532:65532
# gRPC (ext_authz Check + grpc.health.v1) and admin HTTP (/metrics /healthz /readyz).
EXPOSE 9191 9464
ENTRYPOINT ["/usr/local/bin/cedar-gate"]
CMD ["serve", "--config", "/etc/cedar-gate/config/cedar-gate.yaml", "--policy-dir", "/etc/cedar-gate/policies"]
