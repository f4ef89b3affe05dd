//! userstream — a change-data-capture pipeline from the randomuser.me API to Cassandra.
//!
//! # Layout
//!
//! * [`cli`] — the subcommands of the one binary; `main.rs` only dispatches.
//! * [`config`] — argument groups shared by several subcommands, each with its `USERSTREAM_*`
//!   environment variable; [`config::Secret`] keeps credentials out of logs.
//! * [`error`] — the [`error::Retryable`] contract every module's error enum implements.
//! * [`shutdown`] — one cancellation token for SIGINT/SIGTERM.
//! * [`telemetry`] — logs and the Prometheus `/metrics` + `/healthz` endpoint, with the live
//!   status page at `/`.
//! * [`http`] — the shared axum serving loop.
//! * [`kafka`] — client configuration shared by the producer (cdc) and consumer (processor).
//! * [`cdc`] — `userstream cdc`: the change log → Avro messages on Kafka, watermark after acks.
//! * [`codec`] — `UserRecord` ↔ Avro in the Confluent wire format; writer→reader resolution
//!   cached per schema id (pure).
//! * [`migrate`] — `userstream migrate`: the PostgreSQL and Cassandra schemas.
//! * [`model`] — [`model::UserRecord`], the user as it travels from PostgreSQL to Cassandra.
//! * [`randomuser`] — randomuser.me response bodies of every API version → `UserRecord`s (pure).
//! * [`normalize`] — `UserRecord` → the normalized values written to Cassandra (pure).
//! * [`pipeline`] — `userstream run`: migrate, then the three stages in one process.
//! * [`processor`] — `userstream process`: consume, decode, normalize, upsert into Cassandra.
//! * [`registry`] — `userstream registry`, a Confluent-compatible Schema Registry on PostgreSQL.
//! * [`retry`] — capped exponential backoff with jitter for transient failures.
//! * [`schemas`] — Schema Registry client: register the newest value schema, fetch writers by id.
//! * [`schemas_cmd`] — `userstream schemas check|register`: try a value schema against the
//!   topic's subject before deploying it.
//! * [`fetcher`] — `userstream fetch`: randomuser.me pages → PostgreSQL, retried, never half-written.
//! * [`fixture_server`] — `userstream fixture-server`, the randomuser.me API served from
//!   captured responses, able to misbehave on request.
//! * [`sink`] — Cassandra: the `cql/` migrations and the timestamped upserts and deletes.
//! * [`snapshot`] — `userstream snapshot`: current users re-emitted as op `r`, resumable.
//! * [`progress`] — a progress bar on a terminal, interval log lines elsewhere.
//! * [`store`] — PostgreSQL: `users`, the trigger-filled change log and its xid8-watermark poll.
//! * [`status`], [`dead_letters`], [`tail`] — the operator commands `userstream status`,
//!   `dead-letters list|replay` and `tail`; [`topic_read`] reads a topic for them outside every
//!   consumer group.
//!
//! See `DESIGN.md`-level contracts in the README: every Cassandra write is an idempotent upsert
//! `USING TIMESTAMP` of the change's source time, so at-least-once delivery is harmless.

pub mod cdc;
pub mod cli;
pub mod codec;
pub mod config;
pub mod dead_letters;
pub mod error;
pub mod fetcher;
pub mod fixture_server;
pub mod http;
pub mod kafka;
pub mod migrate;
pub mod model;
pub mod normalize;
pub mod pipeline;
pub mod processor;
pub mod progress;
pub mod randomuser;
pub mod registry;
pub mod retry;
pub mod schemas;
pub mod schemas_cmd;
pub mod shutdown;
pub mod sink;
pub mod snapshot;
pub mod status;
pub mod store;
pub mod tail;
pub mod telemetry;
pub mod topic_read;
