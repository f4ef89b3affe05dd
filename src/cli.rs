//! The command line: one binary, one subcommand per stage or service.

use clap::{Arg, Parser, Subcommand};

/// userstream: randomuser.me → PostgreSQL → CDC → Avro on Kafka → Cassandra.
///
/// Every flag can also be set through the environment variable shown in its help.
#[derive(Debug, Parser)]
#[command(
    name = "userstream",
    version,
    about,
    long_about = None,
    mut_args = hide_env_value,
    mut_subcommands = hide_env_values
)]
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
    /// Re-emit current PostgreSQL users through the change log (op r), resumable by --name.
    Snapshot(crate::snapshot::Config),
    /// Every stage on one screen (or --json); exit 0 healthy, 1 degraded, 2 unreachable.
    Status(crate::status::Config),
    /// List the dead letters of <topic>.dlq, or replay them to the topic once the cause is fixed.
    DeadLetters(crate::dead_letters::Config),
    /// Print the topic's (or --dlq's) messages decoded through the registry, one JSON line each.
    Tail(crate::tail::Config),
}

/// Help names each flag's environment variable but must not print its value: several hold
/// secrets (the PostgreSQL URL's password, `sasl.password` among the Kafka options, the registry
/// URL's credentials). Applied here to every argument of every subcommand, after the derive has
/// added them all, so that a flag added later cannot leak by forgetting an attribute.
fn hide_env_values(command: clap::Command) -> clap::Command {
    command
        .mut_args(hide_env_value)
        .mut_subcommands(hide_env_values)
}

fn hide_env_value(arg: Arg) -> Arg {
    arg.hide_env_values(true)
}

#[cfg(test)]
mod tests {
    use clap::error::ErrorKind;
    use clap::CommandFactory;

    use super::*;

    #[test]
    fn every_subcommand_has_a_consistent_definition() {
        Cli::command().debug_assert();
    }

    /// The command paths of `command` and all its subcommands, nested ones included.
    fn command_paths(command: &clap::Command, path: Vec<String>, into: &mut Vec<Vec<String>>) {
        for sub in command.get_subcommands() {
            let mut sub_path = path.clone();
            sub_path.push(sub.get_name().to_owned());
            command_paths(sub, sub_path, into);
        }
        into.push(path);
    }

    #[test]
    fn help_never_shows_environment_values() {
        let secrets = [
            ("USERSTREAM_PG_URL", "postgres://u:hunter2-pg@db/x"),
            (
                "USERSTREAM_KAFKA_OPTIONS",
                "security.protocol=SASL_SSL,sasl.password=hunter2-kafka",
            ),
            (
                "USERSTREAM_KAFKA_CONSUMER_OPTIONS",
                "ssl.key.password=hunter2-consumer",
            ),
            (
                "USERSTREAM_SCHEMA_REGISTRY_URL",
                "https://key:hunter2-registry@sr.example",
            ),
        ];
        // Clap reads the variables when the command is built, so they are set first. No other
        // test of this crate reads them.
        for (name, value) in secrets {
            std::env::set_var(name, value);
        }
        let mut paths = Vec::new();
        command_paths(&Cli::command(), Vec::new(), &mut paths);
        assert!(paths.len() > 8, "{paths:?}");
        let mut shown_pg_variable = false;
        for path in paths {
            for flag in ["-h", "--help"] {
                let argv = std::iter::once("userstream".to_owned())
                    .chain(path.iter().cloned())
                    .chain(std::iter::once(flag.to_owned()));
                let error = Cli::try_parse_from(argv).expect_err("help is an early exit");
                assert_eq!(error.kind(), ErrorKind::DisplayHelp, "{path:?} {flag}");
                let help = error.render().to_string();
                assert!(!help.contains("hunter2"), "{path:?} {flag}:\n{help}");
                shown_pg_variable |= help.contains("[env: USERSTREAM_PG_URL]");
            }
        }
        assert!(shown_pg_variable, "help no longer names the variables");
    }
}
