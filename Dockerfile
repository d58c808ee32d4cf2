# syntax=docker/dockerfile:1
#
# The Mutant server image.
#
#   docker build -t mutant-server .
#   docker run --rm -p 127.0.0.1:7311:7311 \
#     -e MUTANT_CLICKHOUSE_URL=http://clickhouse.example:8123 mutant-server
#
# Every setting is a MUTANT_* environment variable (see PROTOCOL.md, "Server
# settings"); docker-compose.yml runs this image next to a ClickHouse.

# ---- build ----
# The workspace's rust-version (1.89), pinned to a patch release so that
# rebuilds use the same compiler.
FROM rust:1.89.0-bookworm AS builder
WORKDIR /src
# The whole workspace: cargo needs every member's manifest (and the lock file)
# even to build one package. .dockerignore keeps target/, .build/ and .git/ out.
COPY . .
# BuildKit cache mounts keep the crate registry and target/ between builds, so
# a code change recompiles Mutant, not its dependencies. A cache mount is not
# part of the image, hence the copy to /out in the same step.
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/usr/local/cargo/git \
    --mount=type=cache,target=/src/target \
    cargo build --release --locked -p mutant-server \
 && install -D -m 0755 target/release/mutant-server /out/mutant-server

# ---- run ----
# Same Debian release as the builder, so the binary's glibc matches. The tag
# floats on purpose to pick up Debian security updates on rebuild.
FROM debian:bookworm-slim
# The CA bundle: unused while the ClickHouse driver is built without TLS
# (plain http:// URLs only), there so enabling TLS needs no image change.
RUN apt-get update \
 && apt-get install -y --no-install-recommends ca-certificates \
 && rm -rf /var/lib/apt/lists/*
# The server writes nothing to disk: a system user without a home is enough.
RUN groupadd --system --gid 10001 mutant \
 && useradd --system --uid 10001 --gid mutant --no-create-home \
      --home-dir /nonexistent --shell /usr/sbin/nologin mutant
COPY --from=builder /out/mutant-server /usr/local/bin/mutant-server
USER mutant:mutant
# The default (127.0.0.1:7311) would be unreachable from outside the container.
# Beyond loopback, set MUTANT_API_TOKEN too (docker run -e, or the compose
# file): without it the server has no authentication and says so at start.
ENV MUTANT_LISTEN=0.0.0.0:7311
EXPOSE 7311
# No curl in the slim image: bash's /dev/tcp sends GET /healthz. The port is
# fixed here; change it too if you change MUTANT_LISTEN.
HEALTHCHECK --interval=10s --timeout=3s --start-period=10s --retries=3 \
  CMD ["bash", "-c", "exec 3<>/dev/tcp/127.0.0.1/7311 && printf 'GET /healthz HTTP/1.1\\r\\nHost: localhost\\r\\nConnection: close\\r\\n\\r\\n' >&3 && grep -q '^ok' <&3"]
# The server is PID 1 and handles SIGTERM itself: it stops accepting and
# drains in-flight requests for up to 30 s (give `docker stop` -t 35).
ENTRYPOINT ["/usr/local/bin/mutant-server"]
