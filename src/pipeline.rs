//! `userstream run`: migrate, then fetch, cdc and process in one process — for small set-ups,
//! demos and laptops. Each stage runs exactly as its own subcommand would; one `/metrics`
//! endpoint serves all three. A stage that fails stops the others (after their drain).

use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use crate::config::{
    CassandraArgs, KafkaArgs, MetricsArgs, PostgresArgs, SchemaRegistryArgs, TopicArgs,
};
use crate::telemetry::{self, Health};
use crate::{cdc, fetcher, migrate, processor};

/// Settings of `userstream run`: the union of the three stages'.
#[derive(Debug, Clone, clap::Args)]
pub struct Config {
    #[command(flatten)]
    pub postgres: PostgresArgs,
    #[command(flatten)]
    pub kafka: KafkaArgs,
    #[command(flatten)]
    pub registry: SchemaRegistryArgs,
    #[command(flatten)]
    pub cassandra: CassandraArgs,
    #[command(flatten)]
    pub metrics: MetricsArgs,
    #[command(flatten)]
    pub topic: TopicArgs,
    #[command(flatten)]
    pub fetch: fetcher::FetchOptions,
    #[command(flatten)]
    pub cdc: cdc::CdcOptions,
    #[command(flatten)]
    pub process: processor::ProcessOptions,
    #[command(flatten)]
    pub progress: crate::progress::ProgressArgs,
}

/// Why `run` stopped.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    #[error(transparent)]
    Migrate(#[from] migrate::MigrateError),
    #[error(transparent)]
    Fetch(#[from] fetcher::FetchError),
    #[error(transparent)]
    Cdc(#[from] cdc::CdcError),
    #[error(transparent)]
    Process(#[from] processor::ProcessError),
    #[error(transparent)]
    Telemetry(#[from] telemetry::TelemetryError),
    #[error("a stage panicked")]
    Panicked(#[source] tokio::task::JoinError),
}

pub async fn run(config: Config, shutdown: CancellationToken) -> Result<(), RunError> {
    migrate::run(
        migrate::Config {
            postgres: config.postgres.clone(),
            cassandra: config.cassandra.clone(),
        },
        shutdown.clone(),
    )
    .await?;

    let health = Health::new("run");
    let no_metrics = MetricsArgs { listen: None };
    let mut stages: JoinSet<Result<(), RunError>> = JoinSet::new();
    if let Some(addr) = config.metrics.listen {
        let (health, shutdown) = (health.clone(), shutdown.clone());
        stages.spawn(async move { Ok(telemetry::serve_metrics(addr, health, shutdown).await?) });
    }
    let fetch = fetcher::Config {
        postgres: config.postgres.clone(),
        metrics: no_metrics.clone(),
        options: config.fetch.clone(),
        progress: config.progress.clone(),
    };
    stages.spawn(stage(fetcher::run_reporting(
        fetch,
        shutdown.clone(),
        health.part("fetch"),
    )));
    let cdc = cdc::Config {
        postgres: config.postgres.clone(),
        kafka: config.kafka.clone(),
        registry: config.registry.clone(),
        metrics: no_metrics.clone(),
        topic: config.topic.clone(),
        options: config.cdc.clone(),
    };
    stages.spawn(stage(cdc::run_reporting(
        cdc,
        shutdown.clone(),
        health.part("cdc"),
    )));
    let process = processor::Config {
        kafka: config.kafka,
        registry: config.registry,
        cassandra: config.cassandra,
        metrics: no_metrics,
        topic: config.topic,
        options: config.process,
    };
    stages.spawn(stage(processor::run_reporting(
        process,
        shutdown.clone(),
        health.part("process"),
    )));
    health.set_ready(true);

    let mut first_error = None;
    while let Some(joined) = stages.join_next().await {
        let result = joined.map_err(RunError::Panicked).and_then(|result| result);
        if let Err(error) = result {
            tracing::error!(error = %crate::error::chain(&error), "stage failed; stopping the others");
            shutdown.cancel();
            first_error.get_or_insert(error);
        }
    }
    first_error.map_or(Ok(()), Err)
}

/// A stage's future with its own error turned into [`RunError`], so the stages share a `JoinSet`.
async fn stage<E: Into<RunError>>(
    future: impl std::future::Future<Output = Result<(), E>>,
) -> Result<(), RunError> {
    future.await.map_err(Into::into)
}
