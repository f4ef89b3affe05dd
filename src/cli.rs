//! The command line: one binary, one subcommand per stage or service.

use clap::{Parser, Subcommand};

/// userstream: randomuser.me → PostgreSQL → CDC → Avro on Kafka → Cassandra.
///
/// Every flag can also be set through the environment variable shown in its help.
#[derive(Debug, Parser)]
#[command(name = "userstream", version, about, long_about = None)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Serve a Confluent-compatible Schema Registry HTTP API, persisted in PostgreSQL.
    Registry(crate::registry::Config),
    /// Serve captured randomuser.me responses at /api/, for offline use and the fetcher's tests.
    FixtureServer(crate::fixture_server::Config),
}
