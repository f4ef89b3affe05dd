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

// Parsed once at start-up, so the size of the largest variant does not matter.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Apply the PostgreSQL and Cassandra schemas (idempotent; safe while the pipeline runs).
    Migrate(crate::migrate::Config),
    /// Fetch users from the randomuser.me API into PostgreSQL, once or --every interval.
    Fetch(crate::fetcher::Config),
    /// Capture committed changes from PostgreSQL and produce them to Kafka as Avro.
    Cdc(crate::cdc::Config),
    /// Consume the topic, normalize, and upsert into Cassandra (poison messages to <topic>.dlq).
    Process(crate::processor::Config),
    /// Migrate, then run fetch, cdc and process in one process.
    Run(crate::pipeline::Config),
    /// Check or register the newest value schema (or a candidate) under `<topic>-value`.
    Schemas(crate::schemas_cmd::Config),
    /// Serve a Confluent-compatible Schema Registry HTTP API, persisted in PostgreSQL.
    Registry(crate::registry::Config),
    /// Serve captured randomuser.me responses at /api/, for offline use and the fetcher's tests.
    FixtureServer(crate::fixture_server::Config),
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory;

    use super::Cli;

    #[test]
    fn every_subcommand_has_a_consistent_definition() {
        Cli::command().debug_assert();
    }
}
