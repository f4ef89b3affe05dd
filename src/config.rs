//! Settings shared by several subcommands, as clap argument groups.
//!
//! Every flag has a `USERSTREAM_*` environment variable: the local stack
//! (`scripts/local-stack env`) and docker compose write exactly these names, so a stage started
//! by hand, by compose or by a test reads the same settings.

use std::collections::BTreeMap;
use std::fmt;
use std::net::SocketAddr;
use std::str::FromStr;

/// A value that must never reach a log line: `Debug` and `Display` print a placeholder.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret<T>(T);

impl<T> Secret<T> {
    pub fn new(value: T) -> Self {
        Self(value)
    }

    /// The secret itself; call only where it is handed to the client that needs it.
    pub fn expose(&self) -> &T {
        &self.0
    }
}

impl<T> fmt::Debug for Secret<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(<redacted>)")
    }
}

impl<T> fmt::Display for Secret<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<redacted>")
    }
}

impl<T: FromStr> FromStr for Secret<T> {
    type Err = T::Err;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        s.parse().map(Secret)
    }
}

/// Where PostgreSQL is. The URL may carry a password, so it is held as a [`Secret`].
#[derive(Debug, Clone, clap::Args)]
pub struct PostgresArgs {
    /// PostgreSQL connection URL, e.g. postgres://user:pass@127.0.0.1:5432/userstream
    #[arg(long = "pg-url", env = "USERSTREAM_PG_URL")]
    pub pg_url: Secret<String>,
}

/// Where Kafka is, and any librdkafka option to pass through untouched.
#[derive(Debug, Clone, clap::Args)]
pub struct KafkaArgs {
    /// Comma-separated bootstrap brokers (host:port).
    #[arg(
        long = "kafka-brokers",
        env = "USERSTREAM_KAFKA_BROKERS",
        default_value = "127.0.0.1:9092"
    )]
    pub brokers: String,

    /// Extra librdkafka client properties as key=value (repeat the flag, or comma-separate in
    /// the environment variable), e.g. security.protocol=SASL_SSL. They override our defaults.
    #[arg(
        long = "kafka-option",
        env = "USERSTREAM_KAFKA_OPTIONS",
        value_parser = parse_key_value,
        value_delimiter = ','
    )]
    pub librdkafka_options: Vec<(String, String)>,

    /// Like --kafka-option, for the consumer only (e.g. session.timeout.ms, which producers
    /// would warn about).
    #[arg(
        long = "kafka-consumer-option",
        env = "USERSTREAM_KAFKA_CONSUMER_OPTIONS",
        value_parser = parse_key_value,
        value_delimiter = ','
    )]
    pub consumer_options: Vec<(String, String)>,
}

impl KafkaArgs {
    /// The pass-through options as a map; later duplicates win, as on a command line.
    pub fn options(&self) -> BTreeMap<String, String> {
        self.librdkafka_options.iter().cloned().collect()
    }
}

/// The topic the user changes go to, and how it is created when missing.
#[derive(Debug, Clone, clap::Args)]
pub struct TopicArgs {
    /// Kafka topic of the user changes; the dead-letter topic is `<topic>.dlq`.
    #[arg(
        long = "topic",
        env = "USERSTREAM_TOPIC",
        default_value = "userstream.users"
    )]
    pub topic: String,

    /// Partitions of the topic when userstream creates it (an existing topic is left as it is).
    #[arg(
        long = "topic-partitions",
        env = "USERSTREAM_TOPIC_PARTITIONS",
        default_value_t = 3
    )]
    pub partitions: i32,

    /// Replication factor of the topic when userstream creates it.
    #[arg(
        long = "topic-replication",
        env = "USERSTREAM_TOPIC_REPLICATION",
        default_value_t = 1
    )]
    pub replication_factor: i32,
}

/// Where the Confluent-compatible Schema Registry is.
#[derive(Debug, Clone, clap::Args)]
pub struct SchemaRegistryArgs {
    /// Base URL of a Confluent-compatible Schema Registry.
    #[arg(
        long = "schema-registry-url",
        env = "USERSTREAM_SCHEMA_REGISTRY_URL",
        default_value = "http://127.0.0.1:8081"
    )]
    pub url: String,
}

/// Where Cassandra (or any CQL endpoint) is.
#[derive(Debug, Clone, clap::Args)]
pub struct CassandraArgs {
    /// Comma-separated CQL contact points (host:port).
    #[arg(
        long = "cassandra-nodes",
        env = "USERSTREAM_CASSANDRA_NODES",
        value_delimiter = ',',
        default_value = "127.0.0.1:9042"
    )]
    pub nodes: Vec<String>,

    /// Keyspace that holds the userstream tables.
    #[arg(
        long = "cassandra-keyspace",
        env = "USERSTREAM_CASSANDRA_KEYSPACE",
        default_value = "userstream"
    )]
    pub keyspace: String,

    /// Replication of the keyspace when `migrate` creates it (a CQL map literal).
    #[arg(
        long = "cassandra-replication",
        env = "USERSTREAM_CASSANDRA_REPLICATION",
        default_value = "{'class': 'SimpleStrategy', 'replication_factor': 1}"
    )]
    pub keyspace_replication: String,
}

/// Where a stage serves `/metrics` (Prometheus text) and `/healthz`.
#[derive(Debug, Clone, clap::Args)]
pub struct MetricsArgs {
    /// Listen address for /metrics and /healthz; empty to disable.
    #[arg(long = "metrics-listen", env = "USERSTREAM_METRICS_LISTEN")]
    pub listen: Option<SocketAddr>,
}

/// Parses `key=value`; the value may itself contain `=`.
pub fn parse_key_value(raw: &str) -> Result<(String, String), String> {
    match raw.split_once('=') {
        Some((key, value)) if !key.trim().is_empty() => {
            Ok((key.trim().to_owned(), value.trim().to_owned()))
        }
        _ => Err(format!("expected key=value, got {raw:?}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secret_is_redacted_in_debug_and_display() {
        let secret: Secret<String> = "postgres://u:hunter2@db/x".parse().unwrap();
        assert!(!format!("{secret:?}").contains("hunter2"));
        assert!(!format!("{secret}").contains("hunter2"));
        assert_eq!(secret.expose(), "postgres://u:hunter2@db/x");
    }

    #[test]
    fn key_value_keeps_equals_in_value() {
        assert_eq!(
            parse_key_value("sasl.jaas.config=a=b").unwrap(),
            ("sasl.jaas.config".to_owned(), "a=b".to_owned())
        );
        assert!(parse_key_value("novalue").is_err());
        assert!(parse_key_value("=x").is_err());
    }
}
