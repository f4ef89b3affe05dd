//! PostgreSQL: the users as fetched, and the change log the CDC poller reads.
//!
//! * [`migrate()`] applies the numbered, idempotent files in `sql/` once each, under an advisory
//!   lock so several processes may start at once.
//! * [`upsert_page`] stores one page of users in one transaction; a trigger logs every insert,
//!   update and delete in `user_changes` within the writing transaction, stamped with its xid8.
//!   An unchanged user is not touched and logs nothing.
//! * [`poll_changes`] reads the log with a **transaction watermark**: only changes of
//!   transactions below the xmin of a snapshot, which are final, in (xid, seq) order.
//!   A transaction that began before a poll but commits after it has an xid at or above that
//!   xmin, so it is read by a later poll instead of being skipped — the flaw of sequence and
//!   timestamp cursors. [`commit_position`] stores where a consumer is once Kafka acknowledged
//!   everything before it; [`prune`] drops what every consumer has passed.
//!
//! The change images carry the typed columns only: the raw JSON, and with it the API's
//! credentials, stays in `users.raw`.

mod changes;
mod migrate;
mod users;

use crate::config::Secret;
use crate::error::Retryable;

pub use changes::{
    backlog, commit_position, load_position, poll_changes, prune, quarantine, try_lead_cursor,
    Backlog, Change, ChangeKey, Op, Poll, Position, UnreadableChange,
};
pub use migrate::{migrate, migration_count, migration_versions};
pub use users::{
    delete_user, record_rejections, upsert_page, validate, RejectedRecord, UpsertOutcome,
};

/// What went wrong talking to PostgreSQL or with what was read from or given to it.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("PostgreSQL failed to {operation}")]
    Postgres {
        /// What we were doing, e.g. "read changes".
        operation: &'static str,
        #[source]
        source: tokio_postgres::Error,
    },

    #[error("migration {version} ({name}) failed")]
    Migration {
        version: i32,
        name: &'static str,
        #[source]
        source: tokio_postgres::Error,
    },

    #[error("PostgreSQL failed to store user {id:?}")]
    Upsert {
        id: String,
        #[source]
        source: tokio_postgres::Error,
    },

    #[error("user {id:?} cannot be stored: {reason}")]
    InvalidUser { id: String, reason: String },

    #[error(
        "change ({xid}, {seq}) has an after image that is not a user: its {field} cannot be read"
    )]
    ChangeImage {
        xid: u64,
        seq: i64,
        /// Where in the image, e.g. `date_of_birth`.
        field: String,
        #[source]
        source: serde_json::Error,
    },

    #[error("change log row is malformed: {reason}")]
    MalformedChange { reason: String },

    /// The cursor's watermark was stored by another PostgreSQL cluster (a dump and restore, an
    /// upgrade by logical replication, a move), where transaction ids mean something else.
    #[error(
        "CDC cursor {consumer:?} was stored by PostgreSQL cluster {stored}, but this is cluster \
         {current}: its watermark means nothing here, and polling from it could skip every \
         change. Re-read the change log from its start by deleting the cursor \
         (DELETE FROM cdc_cursors WHERE consumer = '{consumer}'; changes sent again are harmless), \
         and refill Cassandra if changes were pruned before the move"
    )]
    ForeignCursor {
        consumer: String,
        stored: i64,
        current: i64,
    },

    /// The cursor's watermark lies above every transaction this cluster has started.
    #[error(
        "CDC cursor {consumer:?} is at transaction {watermark}, ahead of every transaction of \
         this PostgreSQL cluster (the next is {next}): it was not stored by this cluster's \
         history (restored from elsewhere, or the cluster was rebuilt), and polling from it would \
         return nothing. Re-read the change log from its start by deleting the cursor \
         (DELETE FROM cdc_cursors WHERE consumer = '{consumer}'; changes sent again are harmless)"
    )]
    CursorAhead {
        consumer: String,
        watermark: u64,
        next: u64,
    },
}

/// Opens one connection to PostgreSQL; its driver task runs until the connection closes.
pub async fn connect(url: &Secret<String>) -> Result<tokio_postgres::Client, StoreError> {
    let (client, connection) = tokio_postgres::connect(url.expose(), tokio_postgres::NoTls)
        .await
        .map_err(StoreError::postgres("connect"))?;
    tokio::spawn(async move {
        if let Err(error) = connection.await {
            tracing::warn!(%error, "PostgreSQL connection closed");
        }
    });
    Ok(client)
}

impl StoreError {
    pub(crate) fn postgres(operation: &'static str) -> impl Fn(tokio_postgres::Error) -> Self {
        move |source| Self::Postgres { operation, source }
    }
}

impl Retryable for StoreError {
    fn is_retryable(&self) -> bool {
        match self {
            Self::Postgres { source, .. }
            | Self::Migration { source, .. }
            | Self::Upsert { source, .. } => is_transient(source),
            Self::InvalidUser { .. }
            | Self::ChangeImage { .. }
            | Self::MalformedChange { .. }
            | Self::ForeignCursor { .. }
            | Self::CursorAhead { .. } => false,
        }
    }
}

/// Whether a PostgreSQL error may go away by itself: the connection or the server is gone or
/// busy, or the transaction lost a race (serialization failure, deadlock). Constraint, type and
/// data errors would fail the same way again.
fn is_transient(error: &tokio_postgres::Error) -> bool {
    match error.code() {
        Some(code) => {
            let code = code.code();
            matches!(
                code,
                // serialization_failure, deadlock_detected
                "40001" | "40P01"
                // lock_not_available, query_canceled (statement timeout)
                | "55P03" | "57014"
                // admin_shutdown, crash_shutdown, cannot_connect_now
                | "57P01" | "57P02" | "57P03"
                // read_only_sql_transaction: we reached a standby, e.g. during a fail-over
                | "25006"
            )
            // connection_exception, insufficient_resources (too many connections, memory, disk)
            || code.starts_with("08")
            || code.starts_with("53")
        }
        // Without a server error code it is either the connection (closed, I/O) or our own
        // conversion of a value, which no retry fixes.
        None => {
            error.is_closed()
                || std::error::Error::source(error)
                    .is_some_and(|source| source.downcast_ref::<std::io::Error>().is_some())
        }
    }
}
