//! `userstream registry`: a Confluent-Schema-Registry-compatible HTTP API persisted in PostgreSQL,
//! so that small deployments and the local stack need no JVM service.
//!
//! * [`api`] — Confluent's routes, request/response shapes and error codes.
//! * [`store`] — the tables (schema `schema_registry`, from `sql/`), transactions and locks.
//! * [`schema`] — parsing a submitted Avro schema and what makes two submissions the same schema.
//! * [`compatibility`] — the seven compatibility levels over apache-avro's checker.
//!
//! Only AVRO schemas are stored. Deletes are soft: a deleted version disappears from listings
//! and look-ups, but its id keeps resolving, because Kafka may still hold data written with it.

pub mod api;
pub mod compatibility;
pub mod schema;
pub mod store;

use std::net::SocketAddr;
use std::str::FromStr;
use std::time::Duration;

use deadpool_postgres::{Manager, ManagerConfig, Pool, RecyclingMethod, Runtime};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use crate::config::PostgresArgs;
use crate::error::Retryable;
use crate::telemetry::{metrics_router, Health};
pub use store::{Store, StoreError};

/// Settings of `userstream registry`.
#[derive(Debug, Clone, clap::Args)]
pub struct Config {
    /// Address the registry's HTTP API listens on (also serves /metrics and /healthz).
    #[arg(
        long = "listen",
        env = "USERSTREAM_REGISTRY_LISTEN",
        default_value = "127.0.0.1:8081"
    )]
    pub listen: SocketAddr,

    /// Largest number of PostgreSQL connections the registry holds open.
    #[arg(
        long = "registry-pg-pool-size",
        env = "USERSTREAM_REGISTRY_PG_POOL_SIZE",
        default_value_t = 8,
        value_parser = clap::builder::RangedU64ValueParser::<usize>::new().range(1..)
    )]
    pub pool_size: usize,

    /// How long a request waits for a PostgreSQL connection before it fails with 50001.
    #[arg(
        long = "registry-pg-timeout",
        env = "USERSTREAM_REGISTRY_PG_TIMEOUT",
        default_value = "5s",
        value_parser = humantime::parse_duration
    )]
    pub pg_timeout: Duration,

    #[command(flatten)]
    pub postgres: PostgresArgs,
}

/// Errors that stop the registry.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("the PostgreSQL URL is not valid")]
    PgUrl(#[source] tokio_postgres::Error),
    #[error("cannot build the PostgreSQL connection pool")]
    Pool(#[source] deadpool_postgres::BuildError),
    #[error("cannot create the registry's tables")]
    Migrate(#[source] StoreError),
    #[error("cannot listen on {addr}")]
    Bind {
        addr: SocketAddr,
        #[source]
        source: std::io::Error,
    },
    #[error("the registry's HTTP server failed")]
    Serve(#[source] std::io::Error),
}

impl Retryable for Error {
    fn is_retryable(&self) -> bool {
        match self {
            Error::Migrate(error) => error.is_retryable(),
            Error::Serve(_) => true,
            Error::PgUrl(_) | Error::Pool(_) | Error::Bind { .. } => false,
        }
    }
}

/// A pool of connections to the PostgreSQL at `postgres`; connections open lazily.
pub fn pool(postgres: &PostgresArgs, size: usize, timeout: Duration) -> Result<Pool, Error> {
    let pg_config =
        tokio_postgres::Config::from_str(postgres.pg_url.expose()).map_err(Error::PgUrl)?;
    let manager = Manager::from_config(
        pg_config,
        tokio_postgres::NoTls,
        ManagerConfig {
            recycling_method: RecyclingMethod::Fast,
        },
    );
    Pool::builder(manager)
        .max_size(size)
        .runtime(Runtime::Tokio1)
        .wait_timeout(Some(timeout))
        .create_timeout(Some(timeout))
        .build()
        .map_err(Error::Pool)
}

/// Runs `userstream registry` until `shutdown` is cancelled.
pub async fn run(config: Config, shutdown: CancellationToken) -> Result<(), Error> {
    let pool = pool(&config.postgres, config.pool_size, config.pg_timeout)?;
    let listener = TcpListener::bind(config.listen)
        .await
        .map_err(|source| Error::Bind {
            addr: config.listen,
            source,
        })?;
    serve(listener, pool, shutdown).await
}

/// Applies the registry's SQL to `pool`'s database, then serves the API on `listener` until
/// `shutdown` is cancelled. Tests call this with a listener on port 0 and a database of their own.
pub async fn serve(
    listener: TcpListener,
    pool: Pool,
    shutdown: CancellationToken,
) -> Result<(), Error> {
    let store = Store::new(pool);
    store.migrate().await.map_err(Error::Migrate)?;
    // Registered before the first request so /metrics lists the counter from the start.
    crate::telemetry::prometheus();
    let health = Health::new("registry");
    health.set_ready(true);
    let router = api::router(store).merge(metrics_router(health));
    match listener.local_addr() {
        Ok(addr) => tracing::info!(%addr, "schema registry listening"),
        Err(error) => tracing::warn!(%error, "schema registry listening on an unknown address"),
    }
    crate::http::serve(listener, router, shutdown)
        .await
        .map_err(Error::Serve)
}
