//! Endpoints, unique names and condition polling shared by the integration tests.

#![allow(dead_code)]

use std::future::Future;
use std::time::Duration;

use anyhow::{bail, Context};

/// How long a test waits for a condition before it fails.
pub const DEFAULT_DEADLINE: Duration = Duration::from_secs(30);

pub fn env_or(name: &str, default: &str) -> String {
    std::env::var(name)
        .ok()
        .filter(|value| !value.is_empty())
        .unwrap_or_else(|| default.to_owned())
}

pub fn pg_url() -> String {
    env_or(
        "USERSTREAM_PG_URL",
        "postgres://postgres@127.0.0.1:5432/userstream",
    )
}

pub fn kafka_brokers() -> String {
    env_or("USERSTREAM_KAFKA_BROKERS", "127.0.0.1:9092")
}

/// The pipeline's Kafka settings, with the pass-through options of the environment.
pub fn kafka_args() -> userstream::config::KafkaArgs {
    userstream::config::KafkaArgs {
        brokers: kafka_brokers(),
        librdkafka_options: key_values("USERSTREAM_KAFKA_OPTIONS"),
        consumer_options: key_values("USERSTREAM_KAFKA_CONSUMER_OPTIONS"),
    }
}

fn key_values(variable: &str) -> Vec<(String, String)> {
    std::env::var(variable)
        .unwrap_or_default()
        .split(',')
        .filter(|pair| !pair.trim().is_empty())
        .map(|pair| userstream::config::parse_key_value(pair).expect(variable))
        .collect()
}

pub fn registry_url() -> String {
    env_or("USERSTREAM_SCHEMA_REGISTRY_URL", "http://127.0.0.1:8081")
}

pub fn randomuser_url() -> String {
    env_or("USERSTREAM_RANDOMUSER_URL", "http://127.0.0.1:8090")
}

pub fn cassandra_nodes() -> Vec<String> {
    env_or("USERSTREAM_CASSANDRA_NODES", "127.0.0.1:9042")
        .split(',')
        .map(str::to_owned)
        .collect()
}

/// A name no other test (or earlier run) uses: `prefix_` plus 12 random hex digits. Safe as a
/// topic, subject, keyspace or database name.
pub fn unique_name(prefix: &str) -> String {
    let id = uuid::Uuid::new_v4().simple().to_string();
    format!("{prefix}_{}", &id[..12])
}

/// Polls `probe` until it yields `Some`, failing with `what` once `deadline` has passed.
pub async fn eventually<T, F, Fut>(
    what: &str,
    deadline: Duration,
    mut probe: F,
) -> anyhow::Result<T>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = anyhow::Result<Option<T>>>,
{
    let give_up = tokio::time::Instant::now() + deadline;
    let mut last_error = None;
    loop {
        match probe().await {
            Ok(Some(value)) => return Ok(value),
            Ok(None) => {}
            Err(error) => last_error = Some(error),
        }
        if tokio::time::Instant::now() >= give_up {
            return match last_error {
                Some(error) => Err(error).context(format!("timed out after {deadline:?}: {what}")),
                None => bail!("timed out after {deadline:?}: {what}"),
            };
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// A PostgreSQL database of its own for one test, dropped when the value is dropped.
pub struct TestDatabase {
    pub name: String,
    pub url: String,
    admin_url: String,
}

impl TestDatabase {
    pub async fn create(prefix: &str) -> anyhow::Result<Self> {
        let admin_url = pg_url();
        let name = unique_name(prefix);
        let (client, connection) = tokio_postgres::connect(&admin_url, tokio_postgres::NoTls)
            .await
            .with_context(|| format!("connecting to PostgreSQL at {admin_url}"))?;
        tokio::spawn(connection);
        client
            .batch_execute(&format!("CREATE DATABASE \"{name}\""))
            .await
            .with_context(|| format!("creating database {name}"))?;
        let url = with_database(&admin_url, &name);
        Ok(Self {
            name,
            url,
            admin_url,
        })
    }
}

impl Drop for TestDatabase {
    fn drop(&mut self) {
        let admin_url = self.admin_url.clone();
        let name = self.name.clone();
        clean_up(format!("database {name}"), async move {
            let (client, connection) =
                tokio_postgres::connect(&admin_url, tokio_postgres::NoTls).await?;
            tokio::spawn(connection);
            client
                .batch_execute(&format!("DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)"))
                .await?;
            Ok(())
        });
    }
}

/// A Cassandra keyspace name of its own for one test, dropped (if it was created) when the
/// value is dropped: a real node slows down as keyspaces pile up.
pub struct TestKeyspace {
    pub name: String,
}

impl TestKeyspace {
    pub fn new(prefix: &str) -> Self {
        Self {
            name: unique_name(prefix),
        }
    }
}

impl Drop for TestKeyspace {
    fn drop(&mut self) {
        let name = self.name.clone();
        clean_up(format!("keyspace {name}"), async move {
            let session = scylla::client::session_builder::SessionBuilder::new()
                .known_nodes(cassandra_nodes())
                .build()
                .await?;
            session
                .query_unpaged(format!("DROP KEYSPACE IF EXISTS {name}"), ())
                .await?;
            Ok(())
        });
    }
}

/// Kafka topics of one test, deleted when the value is dropped (missing ones are ignored).
pub struct TestTopics {
    pub names: Vec<String>,
}

impl TestTopics {
    pub fn new(names: impl IntoIterator<Item = String>) -> Self {
        Self {
            names: names.into_iter().collect(),
        }
    }
}

impl Drop for TestTopics {
    fn drop(&mut self) {
        let names = std::mem::take(&mut self.names);
        clean_up(format!("topics {names:?}"), async move {
            use rdkafka::admin::{AdminClient, AdminOptions};
            use rdkafka::client::DefaultClientContext;
            let admin: AdminClient<DefaultClientContext> =
                userstream::kafka::producer_config(&kafka_args()).create()?;
            let names: Vec<&str> = names.iter().map(String::as_str).collect();
            admin
                .delete_topics(
                    &names,
                    &AdminOptions::new().operation_timeout(Some(Duration::from_secs(30))),
                )
                .await?;
            Ok(())
        });
    }
}

/// Runs a clean-up to its end from a `Drop`, which runs outside any async context we could await
/// on: the work gets a thread and a runtime of its own. A failure is reported and otherwise only
/// leaves a stray name behind.
fn clean_up(what: String, work: impl Future<Output = anyhow::Result<()>> + Send + 'static) {
    let outcome = std::thread::spawn(move || -> anyhow::Result<()> {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?
            .block_on(work)
    })
    .join();
    match outcome {
        Ok(Ok(())) => {}
        Ok(Err(error)) => eprintln!("clean-up of {what} failed: {error:#}"),
        Err(_) => eprintln!("clean-up of {what} panicked"),
    }
}

/// `url` with its database path replaced by `database`.
pub fn with_database(url: &str, database: &str) -> String {
    let (base, query) = match url.split_once('?') {
        Some((base, query)) => (base, Some(query)),
        None => (url, None),
    };
    let authority_end = base
        .find("://")
        .map(|scheme| scheme + 3)
        .and_then(|start| base[start..].find('/').map(|slash| start + slash))
        .unwrap_or(base.len());
    let mut out = format!("{}/{}", &base[..authority_end], database);
    if let Some(query) = query {
        out.push('?');
        out.push_str(query);
    }
    out
}
