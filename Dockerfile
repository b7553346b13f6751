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
# The `prove` image: Python 3.11 on Debian 12, for the cvc5 wheel.
ARG PROVE_IMAGE=python:3.11-slim-bookworm

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

# Target `prove` (`make image-prove`, tag <version>-prove): cedar-gate with the cvc5 1.3.1
# solver (PyPI wheel) behind scripts/cvc5-driver.py, for `validate --prove` in the chart's
# `helm test` Pod (tests.prove). The serving image below does not carry it: `serve` never
# needs a solver, and this one has Python and a shell. Listed before the serving stage so
# a plain `docker build` still builds the serving image.
FROM ${PROVE_IMAGE} AS prove
RUN pip install --no-cache-dir --target /opt/cvc5 'cvc5==1.3.1'
COPY --from=build /out/cedar-gate /usr/local/bin/cedar-gate
COPY --from=files /out/etc/cedar-gate/ /etc/cedar-gate/
COPY --chmod=0755 scripts/cvc5-driver.py /usr/local/bin/cvc5
ENV PYTHONPATH=/opt/cvc5 CVC5=/usr/local/bin/cvc5
USER 65532:65532
ENTRYPOINT ["/usr/local/bin/cedar-gate"]
CMD ["validate", "--prove", "--policy-dir", "/etc/cedar-gate/policies"]

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
