# Reservation gateway image.
#
#   docker build -t reservations-gateway .
#   docker run --rm -p 8080:8080 reservations-gateway        # in-memory store with demo data
#
# Configuration comes from the environment: see .env.example. Works with the classic builder
# (Debian's docker-compose 1.29) as well as BuildKit: no RUN --mount, no heredocs.

############################ builder ############################
# The workspace needs Rust >= 1.92 (refinery 0.10); rust:1-bookworm follows the latest stable.
FROM rust:1-bookworm AS builder
WORKDIR /src

# Dependency-caching layer: manifests and lock file first, with stub sources, so the external
# crates are compiled once and reused until Cargo.toml/Cargo.lock change. Best effort: if the
# stubs ever stop matching the manifests (a new [[bin]] path, a build script), this step is
# skipped and the real build below compiles everything.
COPY Cargo.toml Cargo.lock ./
COPY engine/Cargo.toml engine/
COPY gateway/Cargo.toml gateway/
COPY bots/Cargo.toml bots/
COPY load-tests/Cargo.toml load-tests/
RUN mkdir -p engine/src gateway/src bots/src load-tests/src/bin \
 && touch engine/src/lib.rs bots/src/lib.rs gateway/src/lib.rs \
 && echo 'fn main() {}' > gateway/src/main.rs \
 && echo 'fn main() {}' > load-tests/src/bin/engine_bench.rs \
 && (cargo build --release -p gateway --locked \
     || echo 'dependency pre-build failed; the full build below compiles everything') \
 && rm -rf engine/src gateway/src bots/src load-tests/src

# The real sources. COPY keeps the build context's modification times, which can be older than
# the stub build: touch the workspace's own sources so cargo rebuilds them, not the stubs.
COPY . .
RUN find engine gateway bots load-tests migrations -type f -exec touch {} + \
 && cargo build --release -p gateway --locked \
 && cp target/release/gateway /gateway

############################ runtime ############################
FROM debian:bookworm-slim

# ca-certificates: TLS to SMTP servers, the Telegram Bot API and OTLP collectors.
RUN apt-get update \
 && apt-get install -y --no-install-recommends ca-certificates \
 && rm -rf /var/lib/apt/lists/*

RUN groupadd --system --gid 10001 gateway \
 && useradd --system --uid 10001 --gid gateway --no-create-home --home-dir /nonexistent \
      --shell /usr/sbin/nologin gateway

COPY --from=builder /gateway /usr/local/bin/gateway

# Listen on every interface inside the container (the gateway's own default is 127.0.0.1).
ENV APP_HOST=0.0.0.0 \
    APP_PORT=8080

USER 10001:10001
EXPOSE 8080
# No HEALTHCHECK: the slim image has no HTTP client. Probe from outside (orchestrator, compose).
ENTRYPOINT ["/usr/local/bin/gateway"]
