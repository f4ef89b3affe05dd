//! `userstream snapshot`: current PostgreSQL users re-emitted through the change log as op `r`,
//! so that `cdc` and `process` carry them to Cassandra like any change — to fill columns a schema
//! change added, or to refill a lost keyspace.
//!
//! The walk goes through `users` in id order, in small batches. Each batch is one transaction
//! that logs the batch's images and advances the snapshot's checkpoint (`snapshots`, by
//! `--name`), so a run that is stopped or crashes resumes after the last committed batch and
//! never logs a user twice past it. Safe while changes flow: see `sql/query/snapshot_emit.sql`
//! in the store for why an image never overwrites a newer change nor revives a deleted user.
//! `--rate` caps the changes logged per second, so the pipeline keeps room for live changes.

use std::time::Duration;

use tokio::time::Instant;
use tokio_postgres::Client;
use tokio_util::sync::CancellationToken;

use crate::config::PostgresArgs;
use crate::error::{chain, Retryable};
use crate::progress::{Progress, ProgressArgs};
use crate::retry::{Backoff, BackoffPolicy};
use crate::store::{self, SnapshotFilter, SnapshotState, StoreError};

/// The largest batch: one batch's rows stay locked against writers until it commits.
pub const MAX_BATCH_SIZE: u32 = 10_000;

/// Settings of `userstream snapshot`.
#[derive(Debug, Clone, clap::Args)]
pub struct Config {
    #[command(flatten)]
    pub postgres: PostgresArgs,
    #[command(flatten)]
    pub options: SnapshotOptions,
    #[command(flatten)]
    pub progress: ProgressArgs,
}

/// What to re-emit, and how fast.
#[derive(Debug, Clone, clap::Args)]
pub struct SnapshotOptions {
    /// Name of the snapshot: running it again resumes it after its last batch.
    #[arg(
        long = "name",
        env = "USERSTREAM_SNAPSHOT_NAME",
        default_value = "default"
    )]
    pub name: String,

    /// Start the snapshot over from the first user, forgetting how far it got (and its
    /// filters).
    #[arg(long = "restart", env = "USERSTREAM_SNAPSHOT_RESTART")]
    pub restart: bool,

    /// Only these user ids (repeat the flag, or comma-separate).
    #[arg(long = "id", env = "USERSTREAM_SNAPSHOT_IDS", value_delimiter = ',')]
    pub ids: Vec<String>,

    /// Only users of these nationalities, e.g. "gb,fr" (case does not matter).
    #[arg(long = "nat", env = "USERSTREAM_SNAPSHOT_NAT", value_delimiter = ',')]
    pub nats: Vec<String>,

    /// Only users in these countries as the API names them, e.g. "United Kingdom" (repeat the
    /// flag, or comma-separate; case does not matter).
    #[arg(
        long = "country",
        env = "USERSTREAM_SNAPSHOT_COUNTRIES",
        value_delimiter = ','
    )]
    pub countries: Vec<String>,

    /// Users per batch (one transaction; its rows wait for writers and writers for them only
    /// while it runs).
    #[arg(
        long = "batch-size",
        env = "USERSTREAM_SNAPSHOT_BATCH_SIZE",
        default_value_t = 100,
        value_parser = clap::value_parser!(u32).range(1..=i64::from(MAX_BATCH_SIZE))
    )]
    pub batch_size: u32,

    /// Most changes logged per second (unlimited when absent).
    #[arg(
        long = "rate",
        env = "USERSTREAM_SNAPSHOT_RATE",
        value_parser = clap::value_parser!(u32).range(1..)
    )]
    pub rate: Option<u32>,
}

impl SnapshotOptions {
    fn filter(&self) -> SnapshotFilter {
        SnapshotFilter {
            ids: self.ids.clone(),
            nats: self.nats.clone(),
            countries: self.countries.clone(),
        }
        .canonical()
    }

    /// A batch never holds more than a tenth of a second's worth of the rate: batches are paced
    /// after they are logged, so the rate holds over any span longer than that.
    fn effective_batch_size(&self) -> u32 {
        match self.rate {
            Some(rate) => self.batch_size.min(rate / 10).max(1),
            None => self.batch_size,
        }
    }
}

/// Why a snapshot stopped before its end.
#[derive(Debug, thiserror::Error)]
pub enum SnapshotError {
    #[error(transparent)]
    Store(#[from] StoreError),

    /// Another session runs the snapshot of this name now.
    #[error(
        "snapshot {name:?} is running in another session; wait for it, or give this one \
         another --name"
    )]
    Running { name: String },

    /// A resume asked for other users than the snapshot was started with.
    #[error(
        "snapshot {name:?} was started for {recorded} and cannot resume for {requested}; run \
         it with the same filters, add --restart to start it over with these, or choose another \
         --name"
    )]
    FilterChanged {
        name: String,
        recorded: String,
        requested: String,
    },
}

impl Retryable for SnapshotError {
    fn is_retryable(&self) -> bool {
        match self {
            Self::Store(error) => error.is_retryable(),
            // The other run may end, but waiting for it is the operator's choice.
            Self::Running { .. } | Self::FilterChanged { .. } => false,
        }
    }
}

/// What a run of a snapshot did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SnapshotReport {
    pub name: String,
    /// Users re-emitted by this run.
    pub emitted: u64,
    /// Batches committed by this run.
    pub batches: u64,
    /// Users re-emitted by the snapshot so far, earlier runs included.
    pub emitted_in_all: u64,
    /// Whether the snapshot reached its last user (`false`: stopped by shutdown; run it again
    /// to resume).
    pub finished: bool,
    /// The snapshot had finished before this run, which did nothing.
    pub already_finished: bool,
    /// The last user re-emitted: the checkpoint a resume continues after.
    pub checkpoint: Option<String>,
}

/// Runs the snapshot `config` names until it is finished or `shutdown` (between batches), and
/// logs what it did.
pub async fn run(config: Config, shutdown: CancellationToken) -> Result<(), SnapshotError> {
    let report = snapshot(&config, &shutdown).await?;
    if report.already_finished {
        tracing::info!(
            name = report.name,
            emitted = report.emitted_in_all,
            "snapshot had already finished; nothing to do (--restart runs it again)"
        );
    } else if report.finished {
        tracing::info!(
            name = report.name,
            emitted = report.emitted,
            batches = report.batches,
            emitted_in_all = report.emitted_in_all,
            "snapshot finished"
        );
    } else {
        tracing::info!(
            name = report.name,
            emitted = report.emitted,
            batches = report.batches,
            emitted_in_all = report.emitted_in_all,
            checkpoint = report.checkpoint,
            "snapshot stopped; run it again to resume after the checkpoint"
        );
    }
    Ok(())
}

/// [`run`], returning the report instead of logging it.
pub async fn snapshot(
    config: &Config,
    shutdown: &CancellationToken,
) -> Result<SnapshotReport, SnapshotError> {
    let options = &config.options;
    let mut pg = lead(config).await?;
    let requested = options.filter();
    let mut state = store::begin_snapshot(&pg, &options.name, &requested, options.restart).await?;
    if state.filter != requested {
        return Err(SnapshotError::FilterChanged {
            name: state.name,
            recorded: describe(&state.filter),
            requested: describe(&requested),
        });
    }
    let mut report = SnapshotReport {
        name: state.name.clone(),
        emitted: 0,
        batches: 0,
        emitted_in_all: state.emitted,
        finished: state.finished_at.is_some(),
        already_finished: state.finished_at.is_some(),
        checkpoint: state.last_user_id.clone(),
    };
    if report.already_finished {
        return Ok(report);
    }
    let remaining =
        store::remaining_snapshot_users(&pg, &state.filter, state.last_user_id.as_deref()).await?;
    tracing::info!(
        name = state.name,
        filter = describe(&state.filter),
        resumed_after = state.last_user_id,
        emitted_before = state.emitted,
        remaining,
        "snapshot started"
    );
    let total = state.emitted + remaining;
    let mut progress = Progress::start("users re-emitted", state.emitted, total, &config.progress);
    let outcome = walk(
        &mut pg,
        config,
        &mut state,
        total,
        &mut progress,
        &mut report,
        shutdown,
    )
    .await;
    progress.finish();
    outcome?;
    report.emitted_in_all = state.emitted;
    report.checkpoint = state.last_user_id;
    Ok(report)
}

/// Logs batches until no user is left or shutdown is requested. `total` is what the progress
/// counts to.
#[allow(clippy::too_many_arguments)]
async fn walk(
    pg: &mut Client,
    config: &Config,
    state: &mut SnapshotState,
    mut total: u64,
    progress: &mut Progress,
    report: &mut SnapshotReport,
    shutdown: &CancellationToken,
) -> Result<(), SnapshotError> {
    let options = &config.options;
    let batch_size = options.effective_batch_size();
    let started = Instant::now();
    let mut backoff = Backoff::new(BackoffPolicy::default());
    while !shutdown.is_cancelled() {
        let batch = match store::emit_snapshot_batch(pg, state, batch_size).await {
            Ok(batch) => batch,
            Err(error) if !error.is_retryable() => return Err(error.into()),
            Err(error) => {
                // Nothing of the batch was committed: it is tried again from the same checkpoint.
                let delay = backoff.next_delay();
                metrics::counter!("userstream_retries_total", "operation" => "log a snapshot batch")
                    .increment(1);
                tracing::warn!(error = %chain(&error), retry_in = ?delay, "snapshot batch failed; retrying");
                tokio::select! {
                    _ = tokio::time::sleep(delay) => {}
                    _ = shutdown.cancelled() => return Ok(()),
                }
                if pg.is_closed() {
                    *pg = lead(config).await?;
                }
                continue;
            }
        };
        backoff = Backoff::new(BackoffPolicy::default());
        let Some(batch) = batch else {
            report.finished = true;
            return Ok(());
        };
        state.last_user_id = Some(batch.last_user_id);
        state.emitted += batch.emitted;
        state.batches += 1;
        report.emitted += batch.emitted;
        report.batches += 1;
        // Users deleted since they were counted are not emitted: there is less to do.
        if batch.listed > batch.emitted {
            total = total.saturating_sub(batch.listed - batch.emitted);
            progress.set_total(total);
        }
        progress.advance(batch.emitted);
        if let Some(rate) = options.rate {
            // Paced from the start of this run, not per batch, so that the waits do not drift.
            let due = started + Duration::from_secs_f64(report.emitted as f64 / f64::from(rate));
            tokio::select! {
                _ = tokio::time::sleep_until(due) => {}
                _ = shutdown.cancelled() => {}
            }
        }
    }
    Ok(())
}

/// A connection whose session runs snapshot `config.options.name`, as the only one.
async fn lead(config: &Config) -> Result<Client, SnapshotError> {
    let pg = store::connect(&config.postgres.pg_url).await?;
    if !store::try_lock_snapshot(&pg, &config.options.name).await? {
        return Err(SnapshotError::Running {
            name: config.options.name.clone(),
        });
    }
    Ok(pg)
}

/// A filter in words, for logs and errors.
fn describe(filter: &SnapshotFilter) -> String {
    let mut parts = Vec::new();
    for (name, values) in [
        ("ids", &filter.ids),
        ("nationalities", &filter.nats),
        ("countries", &filter.countries),
    ] {
        if !values.is_empty() {
            parts.push(format!("{name} {}", values.join(", ")));
        }
    }
    if parts.is_empty() {
        "all users".to_owned()
    } else {
        parts.join("; ")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn options(rate: Option<u32>, batch_size: u32) -> SnapshotOptions {
        SnapshotOptions {
            name: "default".to_owned(),
            restart: false,
            ids: Vec::new(),
            nats: vec!["gb".to_owned(), " FR".to_owned(), "GB".to_owned()],
            countries: vec!["United Kingdom".to_owned()],
            batch_size,
            rate,
        }
    }

    #[test]
    fn filters_are_compared_case_folded_sorted_and_without_duplicates() {
        let filter = options(None, 100).filter();
        assert_eq!(filter.nats, ["FR", "GB"]);
        assert_eq!(filter.countries, ["united kingdom"]);
        assert_eq!(
            describe(&filter),
            "nationalities FR, GB; countries united kingdom"
        );
        assert_eq!(describe(&SnapshotFilter::default()), "all users");
    }

    #[test]
    fn a_batch_never_exceeds_a_tenth_of_a_second_of_the_rate() {
        assert_eq!(options(None, 100).effective_batch_size(), 100);
        assert_eq!(options(Some(200), 100).effective_batch_size(), 20);
        assert_eq!(options(Some(5), 100).effective_batch_size(), 1);
        assert_eq!(options(Some(5_000), 100).effective_batch_size(), 100);
    }
}
