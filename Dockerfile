# syntax=docker/dockerfile:1
# Multi-stage build of the one `userstream` binary; every stage of the pipeline runs from this image
# with a different subcommand (see docker-compose.yml).

FROM rust:1.88-bookworm AS build
# cmake and the curl headers build librdkafka from the rdkafka crate's bundled sources.
RUN apt-get update \
 && apt-get install -y --no-install-recommends cmake libcurl4-openssl-dev \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY . .
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target \
    cargo build --release --locked --bin userstream \
 && cp target/release/userstream /usr/local/bin/userstream

FROM debian:bookworm-slim
RUN apt-get update \
 && apt-get install -y --no-install-recommends ca-certificates curl \
 && rm -rf /var/lib/apt/lists/* \
 && useradd --system --uid 10001 userstream
COPY --from=build /usr/local/bin/userstream /usr/local/bin/userstream
COPY fixtures/randomuser /opt/userstream/fixtures/randomuser
USER userstream
ENTRYPOINT ["userstream"]
