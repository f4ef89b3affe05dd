//! Settings shared by several subcommands, as clap argument groups.
//!
//! Every flag has a `USERSTREAM_*` environment variable: the local stack
//! (`scripts/local-stack env`) and docker compose write exactly these names, so a stage started
//! by hand, by compose or by a test reads the same settings.

use std::collections::BTreeMap;
use std::fmt;
use std::net::SocketAddr;
use std::str::FromStr;

/// What `Debug` and `Display` print in place of a secret.
const REDACTED: &str = "<redacted>";

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
        write!(f, "Secret({REDACTED})")
    }
}

impl<T> fmt::Display for Secret<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(REDACTED)
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

/// Where Kafka is, and any librdkafka option to pass through untouched. `Debug` shows every
/// option's key but hides the values of credentials and private keys.
#[derive(Clone, clap::Args)]
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

impl fmt::Debug for KafkaArgs {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KafkaArgs")
            .field("brokers", &self.brokers)
            .field(
                "librdkafka_options",
                &RedactedOptions(&self.librdkafka_options),
            )
            .field("consumer_options", &RedactedOptions(&self.consumer_options))
            .finish()
    }
}

/// Parts of a librdkafka property name that make its value a credential or private key:
/// `sasl.password`, `ssl.key.password`, `ssl.keystore.password`,
/// `sasl.oauthbearer.client.secret`, `ssl.key.pem`,
/// `sasl.oauthbearer.assertion.private.key.{pem,passphrase}`; `sasl.oauthbearer.config` may embed
/// a client secret, and `sasl.jaas.config` (Java's, but copied into librdkafka settings) carries
/// the password. Certificates and file locations are public and stay visible.
const SECRET_OPTION_MARKERS: &[&str] = &[
    "password",
    "passphrase",
    "secret",
    "key.pem",
    "sasl.oauthbearer.config",
    "sasl.jaas.config",
];

/// Whether the value of the librdkafka property `key` must not be shown.
fn is_secret_option(key: &str) -> bool {
    let key = key.to_ascii_lowercase();
    SECRET_OPTION_MARKERS
        .iter()
        .any(|marker| key.contains(marker))
}

/// Pass-through options as `Debug` shows them: keys, and values unless they are secret.
struct RedactedOptions<'a>(&'a [(String, String)]);

impl fmt::Debug for RedactedOptions<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list()
            .entries(self.0.iter().map(|(key, value)| {
                let shown = if is_secret_option(key) {
                    REDACTED
                } else {
                    value.as_str()
                };
                (key.as_str(), shown)
            }))
            .finish()
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

/// Where the Confluent-compatible Schema Registry is. The URL may carry basic-auth credentials
/// (`https://key:secret@host`), so `Debug` and [`SchemaRegistryArgs::redacted_url`] hide the
/// password.
#[derive(Clone, clap::Args)]
pub struct SchemaRegistryArgs {
    /// Base URL of a Confluent-compatible Schema Registry, e.g. https://user:pass@host:8081
    #[arg(
        long = "schema-registry-url",
        env = "USERSTREAM_SCHEMA_REGISTRY_URL",
        default_value = "http://127.0.0.1:8081"
    )]
    pub url: String,
}

impl SchemaRegistryArgs {
    /// The URL for logs and error messages, its password replaced.
    pub fn redacted_url(&self) -> String {
        redact_url_password(&self.url)
    }
}

impl fmt::Debug for SchemaRegistryArgs {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SchemaRegistryArgs")
            .field("url", &self.redacted_url())
            .finish()
    }
}

/// `url` with the password of its user information (`scheme://user:password@host`) replaced.
/// Everything between `://` and the last `@` counts as user information, so a password holding
/// an unescaped `/`, `?` or `@` is hidden whole; a URL with an `@` further on but no credentials
/// loses some of its text in the output, which is only cosmetic.
fn redact_url_password(url: &str) -> String {
    let Some(authority) = url.find("://").map(|scheme_end| scheme_end + 3) else {
        return url.to_owned();
    };
    let Some(at) = url[authority..].rfind('@').map(|at| authority + at) else {
        return url.to_owned();
    };
    match url[authority..at].split_once(':') {
        Some((user, _password)) => format!("{}{user}:{REDACTED}{}", &url[..authority], &url[at..]),
        None => url.to_owned(),
    }
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

    /// Keyspace that holds the userstream tables: 1 to 48 letters, digits and underscores,
    /// starting with a letter.
    #[arg(
        long = "cassandra-keyspace",
        env = "USERSTREAM_CASSANDRA_KEYSPACE",
        default_value = "userstream",
        value_parser = parse_keyspace
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

/// Cassandra's longest keyspace name.
const MAX_KEYSPACE_LEN: usize = 48;

/// Why a keyspace name was refused.
#[derive(Debug, thiserror::Error)]
pub enum InvalidKeyspace {
    #[error("a keyspace name cannot be empty")]
    Empty,
    #[error("a keyspace name must start with a letter, not {0:?}")]
    Start(char),
    #[error("a keyspace name may hold only letters, digits and underscores, not {0:?}")]
    Character(char),
    #[error("a keyspace name has at most {MAX_KEYSPACE_LEN} characters, not {0}")]
    TooLong(usize),
}

/// The keyspace is written into CQL statements as it is (`{keyspace}.users_by_id`), so only an
/// unquoted CQL identifier that Cassandra accepts as a keyspace name may pass: anything else
/// would fail on the first statement, or change what the statement does.
fn parse_keyspace(raw: &str) -> Result<String, InvalidKeyspace> {
    let mut chars = raw.chars();
    match chars.next() {
        None => return Err(InvalidKeyspace::Empty),
        Some(first) if !first.is_ascii_alphabetic() => return Err(InvalidKeyspace::Start(first)),
        Some(_) => {}
    }
    if let Some(bad) = chars.find(|c| !c.is_ascii_alphanumeric() && *c != '_') {
        return Err(InvalidKeyspace::Character(bad));
    }
    if raw.len() > MAX_KEYSPACE_LEN {
        return Err(InvalidKeyspace::TooLong(raw.len()));
    }
    Ok(raw.to_owned())
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
    fn kafka_args_debug_hides_credentials_and_keys_but_not_settings() {
        let options = |pairs: &[(&str, &str)]| -> Vec<(String, String)> {
            pairs
                .iter()
                .map(|(key, value)| (key.to_string(), value.to_string()))
                .collect()
        };
        let args = KafkaArgs {
            brokers: "b1:9092".to_owned(),
            librdkafka_options: options(&[
                ("security.protocol", "SASL_SSL"),
                ("sasl.username", "alice"),
                ("sasl.password", "hunter2-sasl"),
                ("ssl.key.password", "hunter2-key"),
                ("ssl.keystore.password", "hunter2-keystore"),
                ("sasl.oauthbearer.client.secret", "hunter2-oauth"),
                ("sasl.oauthbearer.config", "clientSecret=hunter2-oauthconf"),
                ("ssl.key.pem", "-----BEGIN PRIVATE KEY----- hunter2-pem"),
                (
                    "sasl.oauthbearer.assertion.private.key.passphrase",
                    "hunter2-passphrase",
                ),
                ("sasl.jaas.config", "password=\"hunter2-jaas\""),
                ("SASL.PASSWORD", "hunter2-upper"),
                ("ssl.certificate.pem", "-----BEGIN CERTIFICATE----- public"),
            ]),
            consumer_options: options(&[
                ("session.timeout.ms", "6000"),
                ("sasl.password", "hunter2-consumer"),
            ]),
        };
        let shown = format!("{args:?}");
        assert!(!shown.contains("hunter2"), "{shown}");
        for visible in [
            "b1:9092",
            "SASL_SSL",
            "alice",
            "sasl.password",
            "ssl.key.pem",
            "BEGIN CERTIFICATE",
            "session.timeout.ms",
            "6000",
        ] {
            assert!(shown.contains(visible), "{visible} missing from {shown}");
        }
        // Only the printout changes: the clients still get the real values.
        assert_eq!(args.options()["sasl.password"], "hunter2-sasl");
    }

    #[test]
    fn registry_url_password_is_redacted() {
        for (url, shown) in [
            (
                "https://key:hunter2@sr.example:8081/apis",
                "https://key:<redacted>@sr.example:8081/apis",
            ),
            ("http://key:hun/ter@2@sr", "http://key:<redacted>@sr"),
            ("http://:hunter2@sr", "http://:<redacted>@sr"),
            ("http://127.0.0.1:8081", "http://127.0.0.1:8081"),
            ("http://user@sr", "http://user@sr"),
            ("not a url", "not a url"),
        ] {
            let args = SchemaRegistryArgs {
                url: url.to_owned(),
            };
            assert_eq!(args.redacted_url(), shown);
            assert!(!format!("{args:?}").contains("hunter2"), "{args:?}");
            assert_eq!(args.url, url, "the client still gets the real URL");
        }
    }

    #[test]
    fn keyspace_must_be_an_unquoted_cql_identifier() {
        for good in [
            "userstream",
            "Userstream_2",
            "k",
            "evo_m_0123456789ab",
            &"k".repeat(48),
        ] {
            assert_eq!(parse_keyspace(good).unwrap(), good);
        }
        for bad in [
            "",
            "_userstream",
            "1users",
            "users-stream",
            "users stream",
            "ks; DROP KEYSPACE system_auth",
            "ks.users_by_id",
            "\"quoted\"",
            "küche",
            &"k".repeat(49),
        ] {
            assert!(parse_keyspace(bad).is_err(), "{bad:?} was accepted");
        }
        assert!(matches!(
            parse_keyspace(&"k".repeat(49)),
            Err(InvalidKeyspace::TooLong(49))
        ));
    }

    #[test]
    fn a_bad_keyspace_fails_at_start_up() {
        use clap::Parser;

        #[derive(Debug, Parser)]
        struct Cli {
            #[command(flatten)]
            cassandra: CassandraArgs,
        }
        let error = Cli::try_parse_from(["t", "--cassandra-keyspace", "x-y"])
            .expect_err("x-y was accepted");
        assert!(
            error
                .to_string()
                .contains("letters, digits and underscores"),
            "{error}"
        );
        let parsed = Cli::try_parse_from(["t", "--cassandra-keyspace", "x_y"]).unwrap();
        assert_eq!(parsed.cassandra.keyspace, "x_y");
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
