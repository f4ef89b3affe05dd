//! userstream — a change-data-capture pipeline from the randomuser.me API to Cassandra.
//!
//! # Layout
//!
//! * [`cli`] — the subcommands of the one binary; `main.rs` only dispatches.
//! * [`config`] — argument groups shared by several subcommands, each with its `USERSTREAM_*`
//!   environment variable; [`config::Secret`] keeps credentials out of logs.
//! * [`error`] — the [`error::Retryable`] contract every module's error enum implements.
//! * [`shutdown`] — one cancellation token for SIGINT/SIGTERM.
//! * [`telemetry`] — logs and the Prometheus `/metrics` + `/healthz` endpoint.
//! * [`http`] — the shared axum serving loop.
//! * [`kafka`] — client configuration shared by the producer (cdc) and consumer (processor).
//! * [`model`] — [`model::UserRecord`], the user as it travels from PostgreSQL to Cassandra.
//! * [`registry`] — `userstream registry`, a Confluent-compatible Schema Registry on PostgreSQL.
//! * [`fixture_server`] — `userstream fixture-server`, the randomuser.me API served from
//!   captured responses, able to misbehave on request.
//! * [`store`] — PostgreSQL: `users`, the trigger-filled change log and its xid8-watermark poll.
//!
//! See `DESIGN.md`-level contracts in the README: every Cassandra write is an idempotent upsert
//! `USING TIMESTAMP` of the change's source time, so at-least-once delivery is harmless.

pub mod cli;
pub mod config;
pub mod error;
pub mod fixture_server;
pub mod http;
pub mod kafka;
pub mod model;
pub mod registry;
pub mod shutdown;
pub mod store;
pub mod telemetry;
