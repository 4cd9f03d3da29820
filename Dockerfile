# Payymo core: a release build in a slim runtime image.
# Build:  docker build -t payymo .
# Run:    docker compose up   (Postgres, Redis and two replicas; see docker-compose.yml)

FROM rust:1.95-bookworm AS build
WORKDIR /src
COPY . .
RUN cargo build --release --locked --bin payymo

FROM debian:bookworm-slim
RUN apt-get update \
    && apt-get install -y --no-install-recommends ca-certificates curl \
    && rm -rf /var/lib/apt/lists/* \
    && useradd --system --uid 10001 --home-dir /var/lib/payymo --create-home payymo
COPY --from=build /src/target/release/payymo /usr/local/bin/payymo
USER payymo
WORKDIR /var/lib/payymo
ENV PAYYMO_LISTEN=0.0.0.0:8080 PAYYMO_LOG_FORMAT=json
EXPOSE 8080
HEALTHCHECK --interval=10s --timeout=3s CMD curl -fsS http://127.0.0.1:8080/healthz || exit 1
ENTRYPOINT ["payymo"]
CMD ["serve"]
