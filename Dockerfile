# syntax=docker/dockerfile:1
# One image for the engine and every module: the `weir` binary carries them all, and the chart
# runs it as `weir engine` or `weir module NAME`. Needs BuildKit (cache mounts):
#
#   docker build -t ghcr.io/weir-dev/weir:0.1.0 .
#   openssl rand -hex 32 > token
#   docker run --rm -p 127.0.0.1:7420:7420 -v "$PWD/token:/run/weir/token:ro" \
#     ghcr.io/weir-dev/weir:0.1.0 up --data-dir /tmp/weir --listen 0.0.0.0:7420 --token-file /run/weir/token
#
# (`weir up` listens beyond the container's loopback only with a token; the editor asks for it.)
#
# The image holds the binary (/usr/local/bin/weir), the editor (/usr/share/weir/ui) and the
# solutions gallery (/usr/share/weir/solutions). It runs as 65532:65532 and writes only to /tmp,
# so the root file system can be read-only (the chart makes it so).

# ---- build --------------------------------------------------------------------------------------
FROM rust:1.95-bookworm AS build
WORKDIR /src

# The toolchain rust-toolchain.toml pins (with its components), plus the wasm32 target for the
# editor; in a layer of its own so a source change does not redo it.
COPY rust-toolchain.toml ./
RUN rustup toolchain install && rustup target add wasm32-unknown-unknown && rustc --version

# wasm-bindgen-cli at the version of the wasm-bindgen crate in Cargo.lock, as scripts/ui.sh wants
# it (ui.sh then finds it and skips its own install).
COPY Cargo.lock ./
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/usr/local/cargo/git \
    version="$(awk '/^name = "wasm-bindgen"$/ { getline; gsub(/version = |"/, ""); print; exit }' Cargo.lock)" \
 && { cargo install --locked wasm-bindgen-cli --version "$version" \
      || cargo install wasm-bindgen-cli --version "$version"; } \
 && wasm-bindgen --version

COPY . .
# target/ is a cache mount, so what the image needs is copied out of it in the same step.
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/usr/local/cargo/git \
    --mount=type=cache,target=/src/target,sharing=locked \
    cargo build --release --locked --bin weir \
 && WEIR_JOBS="$(nproc)" scripts/ui.sh \
 && mkdir -p /out/solutions \
 && cp target/release/weir /out/weir \
 && cp -r ui/dist /out/ui \
 && for d in solutions/*/; do \
      if [ -f "$d/solution.toml" ]; then cp -r "$d" /out/solutions/; fi; \
    done \
 && /out/weir --version

# ---- runtime ------------------------------------------------------------------------------------
# glibc and libgcc, nothing else: the binary speaks TLS with rustls, so no OpenSSL.
FROM gcr.io/distroless/cc-debian12:nonroot
ARG VERSION=0.1.0
ARG REVISION=unknown
LABEL org.opencontainers.image.title="weir" \
      org.opencontainers.image.description="Weir, a Kubernetes-native workflow engine: the engine, its editor and every module in one binary" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.revision="${REVISION}" \
      org.opencontainers.image.licenses="Apache-2.0" \
      org.opencontainers.image.base.name="gcr.io/distroless/cc-debian12:nonroot"

COPY --from=build /out/weir /usr/local/bin/weir
COPY --from=build /out/ui /usr/share/weir/ui
COPY --from=build /out/solutions /usr/share/weir/solutions
ENV WEIR_UI_DIR=/usr/share/weir/ui \
    WEIR_SOLUTIONS_DIR=/usr/share/weir/solutions

USER 65532:65532
# 7420: the engine's HTTP (editor, API, health, metrics); 7421: a module's gRPC; 7422: a module's
# HTTP (health, metrics).
EXPOSE 7420 7421 7422
ENTRYPOINT ["/usr/local/bin/weir"]
CMD ["engine"]
