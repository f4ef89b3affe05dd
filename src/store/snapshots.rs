//! Snapshots: current users re-emitted through the change log as op `r`, a batch at a time, with
//! a checkpoint per snapshot advanced in the same transaction as the batch it covers.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use tokio_postgres::types::Json;
use tokio_postgres::Client;

use super::StoreError;

const CANDIDATES: &str = include_str!("sql/query/snapshot_candidates.sql");
const REMAINING: &str = include_str!("sql/query/snapshot_remaining.sql");
const EMIT: &str = include_str!("sql/query/snapshot_emit.sql");

/// Which users a snapshot re-emits: those matching every non-empty list (an empty list matches
/// everyone). Values are compared as given for ids, ignoring case for nationalities and countries.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SnapshotFilter {
    pub ids: Vec<String>,
    /// Nationality codes, e.g. `GB`.
    pub nats: Vec<String>,
    /// Country names as the API gives them, e.g. `United Kingdom`.
    pub countries: Vec<String>,
}

impl SnapshotFilter {
    /// The filter as it is stored and compared: case folded where case does not matter, sorted
    /// and without duplicates, so that `--nat gb,FR` and `--nat fr --nat GB` are one filter.
    pub fn canonical(&self) -> Self {
        let tidy = |values: &[String], fold: fn(&str) -> String| {
            let mut values: Vec<String> = values.iter().map(|value| fold(value.trim())).collect();
            values.sort();
            values.dedup();
            values
        };
        Self {
            ids: tidy(&self.ids, str::to_owned),
            nats: tidy(&self.nats, str::to_uppercase),
            countries: tidy(&self.countries, str::to_lowercase),
        }
    }
}

/// Where a snapshot stands, as recorded in `snapshots`.
#[derive(Debug, Clone, PartialEq)]
pub struct SnapshotState {
    pub name: String,
    /// The users it re-emits ([`SnapshotFilter::canonical`]).
    pub filter: SnapshotFilter,
    /// Every selected user up to this id has been re-emitted; `None` before the first batch.
    pub last_user_id: Option<String>,
    pub emitted: u64,
    pub batches: u64,
    pub started_at: DateTime<Utc>,
    pub finished_at: Option<DateTime<Utc>>,
}

/// What one [`emit_snapshot_batch`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SnapshotBatch {
    /// The new checkpoint: the last id of the batch.
    pub last_user_id: String,
    /// Users of the batch that were re-emitted (those deleted since they were listed are not).
    pub emitted: u64,
    /// Users listed for the batch.
    pub listed: u64,
}

/// The state of snapshot `name`, recorded now with `filter` if it has none (or, with `restart`,
/// recorded afresh whatever it had). The filter of a snapshot that already has one is returned
/// as recorded: comparing it with the one asked for is the caller's business.
pub async fn begin_snapshot(
    client: &Client,
    name: &str,
    filter: &SnapshotFilter,
    restart: bool,
) -> Result<SnapshotState, StoreError> {
    let filter = Json(filter.canonical());
    if restart {
        client
            .execute("DELETE FROM snapshots WHERE name = $1", &[&name])
            .await
            .map_err(StoreError::postgres("restart a snapshot"))?;
    }
    client
        .execute(
            "INSERT INTO snapshots (name, filter) VALUES ($1, $2) ON CONFLICT (name) DO NOTHING",
            &[&name, &filter],
        )
        .await
        .map_err(StoreError::postgres("record a snapshot"))?;
    let row = client
        .query_one(
            "SELECT filter, last_user_id, emitted, batches, started_at, finished_at \
             FROM snapshots WHERE name = $1",
            &[&name],
        )
        .await
        .map_err(StoreError::postgres("read a snapshot"))?;
    let read = StoreError::postgres("read a snapshot");
    let Json(filter) = row.try_get(0).map_err(&read)?;
    let emitted: i64 = row.try_get(2).map_err(&read)?;
    let batches: i64 = row.try_get(3).map_err(&read)?;
    Ok(SnapshotState {
        name: name.to_owned(),
        filter,
        last_user_id: row.try_get(1).map_err(&read)?,
        emitted: u64::try_from(emitted).unwrap_or_default(),
        batches: u64::try_from(batches).unwrap_or_default(),
        started_at: row.try_get(4).map_err(&read)?,
        finished_at: row.try_get(5).map_err(read)?,
    })
}

/// Makes this connection's session the one running snapshot `name`: a session advisory lock,
/// released when the connection closes (so a crashed run frees it by itself). `false` while
/// another session holds it.
pub async fn try_lock_snapshot(client: &Client, name: &str) -> Result<bool, StoreError> {
    client
        .query_one(
            "SELECT pg_try_advisory_lock(hashtextextended('userstream snapshot ' || $1, 0))",
            &[&name],
        )
        .await
        .and_then(|row| row.try_get(0))
        .map_err(StoreError::postgres("lock a snapshot"))
}

/// How many users `filter` selects after `after` (all of them when `None`).
pub async fn remaining_snapshot_users(
    client: &Client,
    filter: &SnapshotFilter,
    after: Option<&str>,
) -> Result<u64, StoreError> {
    let count: i64 = client
        .query_one(
            REMAINING,
            &[&after, &filter.ids, &filter.nats, &filter.countries],
        )
        .await
        .and_then(|row| row.try_get(0))
        .map_err(StoreError::postgres("count the users left to snapshot"))?;
    Ok(u64::try_from(count).unwrap_or_default())
}

/// Re-emits the next `limit` users of snapshot `state` (filter and checkpoint as `state` says)
/// and advances its checkpoint, in one transaction: after a crash the batch was either logged
/// and passed, or neither. `None` when no user is left (the snapshot is then marked finished).
///
/// Waits for a writer of one of the users only briefly (half PostgreSQL's `deadlock_timeout`),
/// then gives up with a retryable error: a snapshot must never be the reason a writer fails on
/// a deadlock, and giving up first means it never is.
pub async fn emit_snapshot_batch(
    client: &mut Client,
    state: &SnapshotState,
    limit: u32,
) -> Result<Option<SnapshotBatch>, StoreError> {
    let filter = &state.filter;
    let transaction = client
        .transaction()
        .await
        .map_err(StoreError::postgres("begin a snapshot batch"))?;
    transaction
        .execute(
            "SELECT set_config('lock_timeout', greatest(1, (extract(epoch FROM \
             current_setting('deadlock_timeout')::interval) * 500)::bigint) || 'ms', true)",
            &[],
        )
        .await
        .map_err(StoreError::postgres("limit the snapshot's lock waits"))?;
    let ids: Vec<String> = transaction
        .query(
            CANDIDATES,
            &[
                &state.last_user_id,
                &filter.ids,
                &filter.nats,
                &filter.countries,
                &i64::from(limit.max(1)),
            ],
        )
        .await
        .map_err(StoreError::postgres("list a snapshot batch"))?
        .iter()
        .map(|row| row.try_get(0))
        .collect::<Result<_, _>>()
        .map_err(StoreError::postgres("list a snapshot batch"))?;
    let Some(last_user_id) = ids.last().cloned() else {
        transaction
            .execute(
                "UPDATE snapshots SET finished_at = now(), updated_at = now() \
                 WHERE name = $1 AND finished_at IS NULL",
                &[&state.name],
            )
            .await
            .map_err(StoreError::postgres("finish a snapshot"))?;
        transaction
            .commit()
            .await
            .map_err(StoreError::postgres("finish a snapshot"))?;
        return Ok(None);
    };
    let emitted = transaction
        .execute(EMIT, &[&ids])
        .await
        .map_err(StoreError::postgres("log a snapshot batch"))?;
    transaction
        .execute(
            "UPDATE snapshots SET last_user_id = $2, emitted = emitted + $3, \
             batches = batches + 1, updated_at = now() WHERE name = $1",
            &[
                &state.name,
                &last_user_id,
                &i64::try_from(emitted).unwrap_or(i64::MAX),
            ],
        )
        .await
        .map_err(StoreError::postgres("advance a snapshot's checkpoint"))?;
    transaction
        .commit()
        .await
        .map_err(StoreError::postgres("commit a snapshot batch"))?;
    Ok(Some(SnapshotBatch {
        last_user_id,
        emitted,
        listed: ids.len() as u64,
    }))
}
