# syntax=docker/dockerfile:1
# dynatrace-mcp container image: one static (musl) binary and the CA roots in an empty `scratch` image,
# running as a non-root user, serving MCP on 0.0.0.0:3000 (POST /mcp and POST /, GET /health).
#
# Two targets produce the same final image:
#
#   docker build -t dynatrace-mcp .
#       Self-contained (the default, last stage `runtime`): compiles the binary in the `build` stage.
#
#   docker build --target prebuilt -t dynatrace-mcp CONTEXT_DIR
#       From a binary built beforehand: `cargo lambda build --release --target x86_64-unknown-linux-musl
#       --lambda-dir target/lambda-musl` (static, linked by zig) leaves it in target/lambda-musl/dynatrace-mcp/bootstrap.
#       CONTEXT_DIR holds exactly two files: that binary as `dynatrace-mcp`, and `ca-certificates.crt`.
#       The ECS pipeline (.github/workflows/deploy-ecs.yml) and scripts/check-aws.sh build this target: it pulls
#       no base image, so it also builds where no registry is reachable, and the pipeline reuses the binary its
#       tests ran against.
#
# With podman, add `--format docker`: the OCI image format has no HEALTHCHECK. ECS ignores the image's
# HEALTHCHECK anyway and runs the one in ecs/task-definition.json (the same command).

ARG RUST_VERSION=1.95

# ---- build: static x86_64 musl binary (musl-gcc compiles the C parts of aws-lc-sys and ring) ----
FROM rust:${RUST_VERSION}-slim-bookworm AS build
# Unpinned on purpose: Debian replaces package versions in point releases, so pins would break the build.
# hadolint ignore=DL3008
RUN apt-get update \
 && apt-get install -y --no-install-recommends musl-tools ca-certificates \
 && rm -rf /var/lib/apt/lists/*
RUN rustup target add x86_64-unknown-linux-musl
WORKDIR /src
COPY Cargo.toml Cargo.lock ./
COPY src ./src
COPY sandbox ./sandbox
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target \
    cargo build --release --locked --no-default-features --target x86_64-unknown-linux-musl --bin dynatrace-mcp \
 && mkdir -p /out \
 && cp target/x86_64-unknown-linux-musl/release/dynatrace-mcp /out/dynatrace-mcp

# ---- base: everything but the files (shared by both targets below) ----
FROM scratch AS base
# mimalloc, the static binary's allocator: arena memory committed as it is used and freed pages given
# back at once (7 MiB idle instead of 12, and a flat RSS under load: bench/README.md).
ENV SSL_CERT_FILE=/etc/ssl/certs/ca-certificates.crt \
    MIMALLOC_ARENA_EAGER_COMMIT=0 \
    MIMALLOC_PURGE_DELAY=0
# No passwd file is needed for a numeric user; 65532 owns nothing in the image, so it can change nothing.
USER 65532:65532
EXPOSE 3000
HEALTHCHECK --interval=30s --timeout=5s --start-period=10s --retries=3 \
    CMD ["/dynatrace-mcp", "healthcheck"]
ENTRYPOINT ["/dynatrace-mcp"]
CMD ["serve", "--host", "0.0.0.0", "--port", "3000"]

# ---- prebuilt: the binary and CA roots from the build context ----
FROM base AS prebuilt
COPY ca-certificates.crt /etc/ssl/certs/ca-certificates.crt
COPY dynatrace-mcp /dynatrace-mcp

# ---- runtime (default): the binary from the build stage ----
FROM base AS runtime
COPY --from=build /etc/ssl/certs/ca-certificates.crt /etc/ssl/certs/ca-certificates.crt
COPY --from=build /out/dynatrace-mcp /dynatrace-mcp
