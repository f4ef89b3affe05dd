//! `userstream migrate`: PostgreSQL's schema (`src/store/sql/`) and Cassandra's (`cql/`).
//!
//! Both sides are idempotent and remember what they applied, so `migrate` can run at every
//! deployment — also while the pipeline runs, which is how a new `cql/` file (say an
//! `ALTER TABLE … ADD`) reaches a live keyspace. Services that are still starting are waited for.

use tokio_util::sync::CancellationToken;

use crate::config::{CassandraArgs, PostgresArgs};
use crate::error::Retryable;
use crate::retry::{retry, BackoffPolicy, RetryError};
use crate::sink::{self, SinkError};
use crate::store::{self, StoreError};

/// Settings of `userstream migrate`.
#[derive(Debug, Clone, clap::Args)]
pub struct Config {
    #[command(flatten)]
    pub postgres: PostgresArgs,
    #[command(flatten)]
    pub cassandra: CassandraArgs,
}

#[derive(Debug, thiserror::Error)]
pub enum MigrateError {
    #[error("PostgreSQL migration failed")]
    Postgres(#[source] StoreError),
    #[error("Cassandra migration failed")]
    Cassandra(#[source] SinkError),
}

impl Retryable for MigrateError {
    fn is_retryable(&self) -> bool {
        match self {
            Self::Postgres(error) => error.is_retryable(),
            Self::Cassandra(error) => error.is_retryable(),
        }
    }
}

/// Migrates PostgreSQL, then Cassandra, retrying while either is unreachable.
pub async fn run(config: Config, shutdown: CancellationToken) -> Result<(), MigrateError> {
    let policy = BackoffPolicy::default();
    let applied = retry("migrate PostgreSQL", policy, &shutdown, || async {
        let mut client = store::connect(&config.postgres.pg_url).await?;
        store::migrate(&mut client).await
    })
    .await
    .map_err(|error| MigrateError::Postgres(RetryError::into_inner(error)))?;
    tracing::info!(?applied, "PostgreSQL schema is current");

    let applied = retry("migrate Cassandra", policy, &shutdown, || async {
        let session = sink::connect(&config.cassandra).await?;
        sink::migrate(
            &session,
            &config.cassandra.keyspace,
            &config.cassandra.keyspace_replication,
        )
        .await
    })
    .await
    .map_err(|error| MigrateError::Cassandra(RetryError::into_inner(error)))?;
    tracing::info!(
        ?applied,
        keyspace = config.cassandra.keyspace,
        "Cassandra schema is current"
    );
    Ok(())
}
