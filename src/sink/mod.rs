//! Cassandra: the CQL migrations and the processor's writes.
//!
//! Every write carries `USING TIMESTAMP` = the change's source time in microseconds, so Cassandra's
//! last-write-wins reconciliation orders versions by when they happened in PostgreSQL, not by when
//! they arrived: a replayed or late older version loses to the newer one cell by cell, and nulls
//! are written as tombstones so a field that disappeared in a newer version stays gone.
//!
//! `users_by_country` is keyed by (country, registration), which a newer version may change. The
//! old row must then be deleted, and a stale version must not resurrect it. The `user_versions`
//! table (which, unlike `users_by_id`, outlives deletes) records the newest source time applied
//! per user and where that version sits in `users_by_country`: a change older than it is skipped,
//! and a change that moves the user deletes the old row. It is written last, so a crash half-way
//! leaves it behind the data tables and the replay redoes the whole change.
//!
//! Writes of one user must not run concurrently (the processor serializes them per key); writes of
//! different users may.
//!
//! The columns of value schema v2/v3 (`cql/003_user_evolution.cql`) are written by their own
//! statement, prepared once the keyspace has them: `userstream migrate` may add them while a
//! processor runs, and that processor starts filling them within [`EVOLVED_COLUMNS_RECHECK`]
//! without a restart. Until then each write skips them, counted in
//! `userstream_sink_evolved_columns_missing_total` and logged at every re-check.

mod migrate;

use std::sync::Arc;

use chrono::{DateTime, NaiveDate, Utc};
use scylla::client::session::Session;
use scylla::client::session_builder::SessionBuilder;
use scylla::errors::{DbError, ExecutionError, NewSessionError, PrepareError, RequestAttemptError};
use scylla::statement::prepared::PreparedStatement;
use scylla::{DeserializeRow, SerializeRow};

pub use migrate::{migrate, migrate_to, CQL_MIGRATIONS};

use crate::config::CassandraArgs;
use crate::error::Retryable;
use crate::normalize::NormalizedUser;

/// Where a user without a registration date sorts in `users_by_country` (a clustering column
/// cannot be null): the epoch, i.e. after every real registration.
const UNKNOWN_REGISTRATION: DateTime<Utc> = DateTime::UNIX_EPOCH;

/// How often a sink whose keyspace lacks the `cql/003` columns checks again whether they were
/// added (a prepare round trip, so not on every write).
pub const EVOLVED_COLUMNS_RECHECK: std::time::Duration = std::time::Duration::from_secs(2);

/// Errors of the Cassandra side.
#[derive(Debug, thiserror::Error)]
pub enum SinkError {
    #[error("cannot connect to Cassandra at {nodes}")]
    Connect {
        nodes: String,
        #[source]
        source: Box<NewSessionError>,
    },
    #[error("cannot prepare the {statement} statement")]
    Prepare {
        statement: &'static str,
        #[source]
        source: Box<PrepareError>,
    },
    /// Preparing failed on the way to Cassandra rather than because of the statement.
    #[error("cannot prepare the {statement} statement now")]
    PrepareUnavailable {
        statement: &'static str,
        #[source]
        source: Box<PrepareError>,
    },
    #[error("Cassandra request failed: {operation}")]
    Execute {
        operation: &'static str,
        #[source]
        source: Box<ExecutionError>,
    },
    #[error("unexpected result shape from {operation}")]
    Rows {
        operation: &'static str,
        /// The driver's result or row deserialization error.
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    #[error("CQL migration {file}, statement {statement}, failed")]
    Migration {
        file: &'static str,
        statement: usize,
        #[source]
        source: Box<ExecutionError>,
    },
}

impl Retryable for SinkError {
    fn is_retryable(&self) -> bool {
        match self {
            Self::Connect { .. } | Self::PrepareUnavailable { .. } => true,
            Self::Execute { source, .. } | Self::Migration { source, .. } => is_transient(source),
            Self::Prepare { .. } | Self::Rows { .. } => false,
        }
    }
}

impl SinkError {
    /// Whether Cassandra refused the values of this write rather than the statement or the
    /// keyspace: the same write would be refused forever, so the change it carries is poison.
    /// (A key over 64 KiB, a mutation over the commit log's limit, a value that cannot be bound.)
    /// A keyspace or table that is gone is not the data's fault and stops the processor instead.
    pub fn is_refused_data(&self) -> bool {
        let Self::Execute { source, .. } = self else {
            return false;
        };
        match &**source {
            ExecutionError::LastAttemptError(RequestAttemptError::DbError(
                DbError::Invalid,
                message,
            )) => !names_missing_schema(message),
            ExecutionError::LastAttemptError(RequestAttemptError::SerializationError(_))
            | ExecutionError::LastAttemptError(RequestAttemptError::CqlRequestSerialization(_)) => {
                true
            }
            _ => false,
        }
    }
}

/// Cassandra's `Invalid` answers about the schema rather than the values.
fn names_missing_schema(message: &str) -> bool {
    let message = message.to_ascii_lowercase();
    [
        "unconfigured table",
        "keyspace",
        "undefined column",
        "unknown identifier",
    ]
    .iter()
    .any(|marker| message.contains(marker))
}

/// Whether Cassandra (or the way to it) may answer differently if asked again: time-outs,
/// unavailable replicas, overload, a lost connection, a server error or rate limit, metadata or
/// a re-prepare failing on the way. Invalid statements and values never will.
fn is_transient(error: &ExecutionError) -> bool {
    match error {
        ExecutionError::ConnectionPoolError(_)
        | ExecutionError::RequestTimeout(_)
        | ExecutionError::EmptyPlan
        | ExecutionError::SchemaAgreementError(_)
        | ExecutionError::MetadataError(_) => true,
        ExecutionError::LastAttemptError(attempt) => attempt_is_transient(attempt),
        ExecutionError::PrepareError(prepare) => match prepare {
            PrepareError::AllAttemptsFailed { first_attempt } => {
                attempt_is_transient(first_attempt)
            }
            PrepareError::ConnectionPoolError(_) => true,
            _ => false,
        },
        _ => false,
    }
}

fn attempt_is_transient(attempt: &RequestAttemptError) -> bool {
    match attempt {
        RequestAttemptError::BrokenConnectionError(_)
        | RequestAttemptError::UnableToAllocStreamId => true,
        RequestAttemptError::DbError(db, _) => matches!(
            db,
            DbError::Unavailable { .. }
                | DbError::Overloaded
                | DbError::IsBootstrapping
                | DbError::ReadTimeout { .. }
                | DbError::WriteTimeout { .. }
                | DbError::ReadFailure { .. }
                | DbError::WriteFailure { .. }
                | DbError::TruncateError
                | DbError::ServerError
                | DbError::RateLimitReached { .. }
                | DbError::Unprepared { .. }
        ),
        _ => false,
    }
}

/// What a write did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WriteOutcome {
    /// The change was applied to every table.
    Applied,
    /// A newer version of the user was already applied; nothing was written.
    Stale,
}

/// Opens a session to `args.nodes` with the driver's default settings.
pub async fn connect(args: &CassandraArgs) -> Result<Session, SinkError> {
    SessionBuilder::new()
        .known_nodes(&args.nodes)
        .build()
        .await
        .map_err(|source| SinkError::Connect {
            nodes: args.nodes.join(","),
            source: Box::new(source),
        })
}

/// The prepared statements of one keyspace.
#[derive(Debug, Clone)]
pub struct CassandraSink {
    session: Arc<Session>,
    read_version: PreparedStatement,
    upsert_by_id: PreparedStatement,
    delete_by_id: PreparedStatement,
    upsert_by_country: PreparedStatement,
    delete_by_country: PreparedStatement,
    record_version: PreparedStatement,
    /// The `users_by_id` update of the `cql/003` columns, once they exist.
    evolved: Arc<EvolvedColumns>,
}

/// The lazily prepared update of the columns `cql/003` adds, shared by the sink's clones.
#[derive(Debug)]
struct EvolvedColumns {
    cql: String,
    statement: tokio::sync::OnceCell<PreparedStatement>,
    /// No prepare is attempted before this instant (the previous attempt found no columns).
    /// Held across an attempt, so writers arriving meanwhile wait for its answer instead of
    /// writing without the columns.
    next_attempt: tokio::sync::Mutex<std::time::Instant>,
}

#[derive(Debug, DeserializeRow)]
struct AppliedVersion {
    source_ts_us: Option<i64>,
    country_code: Option<String>,
    registered_at: Option<DateTime<Utc>>,
}

/// Bound by position: the last marker is `USING TIMESTAMP ?`, which has no column name.
#[derive(Debug, SerializeRow)]
#[scylla(flavor = "enforce_order", skip_name_checks)]
struct UserByIdRow<'a> {
    user_id: &'a str,
    country_code: &'a str,
    nat: Option<&'a str>,
    gender: Option<&'a str>,
    title: Option<&'a str>,
    first_name: Option<&'a str>,
    last_name: Option<&'a str>,
    email: Option<&'a str>,
    username: Option<&'a str>,
    date_of_birth: Option<NaiveDate>,
    registered_at: Option<DateTime<Utc>>,
    phone: Option<&'a str>,
    phone_e164: Option<&'a str>,
    cell: Option<&'a str>,
    cell_e164: Option<&'a str>,
    street_number: Option<&'a str>,
    street_name: Option<&'a str>,
    city: Option<&'a str>,
    state: Option<&'a str>,
    country: Option<&'a str>,
    postcode: Option<&'a str>,
    latitude: Option<f64>,
    longitude: Option<f64>,
    timezone_offset_minutes: Option<i32>,
    timezone_description: Option<&'a str>,
    national_id_name: Option<&'a str>,
    national_id_value: Option<&'a str>,
    picture_large: Option<&'a str>,
    picture_medium: Option<&'a str>,
    picture_thumbnail: Option<&'a str>,
    source_ts_us: i64,
    source_txid: Option<i64>,
    write_ts: i64,
}

#[derive(Debug, SerializeRow)]
#[scylla(flavor = "enforce_order", skip_name_checks)]
struct UserByCountryRow<'a> {
    country_code: &'a str,
    registered_at: DateTime<Utc>,
    user_id: &'a str,
    first_name: Option<&'a str>,
    last_name: Option<&'a str>,
    email: Option<&'a str>,
    gender: Option<&'a str>,
    date_of_birth: Option<NaiveDate>,
    city: Option<&'a str>,
    state: Option<&'a str>,
    nat: Option<&'a str>,
    phone_e164: Option<&'a str>,
    write_ts: i64,
}

/// Where one version of a user sits in `users_by_country`.
#[derive(Debug, Clone, PartialEq, Eq)]
struct CountryKey {
    country_code: String,
    registered_at: DateTime<Utc>,
}

impl CassandraSink {
    /// Prepares every statement against `keyspace` (which `migrate` has created).
    pub async fn prepare(session: Arc<Session>, keyspace: &str) -> Result<Self, SinkError> {
        let prepare = |name: &'static str, cql: String| {
            let session = Arc::clone(&session);
            async move {
                session
                    .prepare(cql)
                    .await
                    .map_err(|source| SinkError::Prepare {
                        statement: name,
                        source: Box::new(source),
                    })
            }
        };
        Ok(Self {
            read_version: prepare(
                "read version",
                format!(
                    "SELECT source_ts_us, country_code, registered_at FROM {keyspace}.user_versions \
                     WHERE user_id = ?"
                ),
            )
            .await?,
            upsert_by_id: prepare(
                "upsert users_by_id",
                format!(
                    "INSERT INTO {keyspace}.users_by_id (user_id, country_code, nat, gender, title, \
                     first_name, last_name, email, username, date_of_birth, registered_at, phone, \
                     phone_e164, cell, cell_e164, street_number, street_name, city, state, country, \
                     postcode, latitude, longitude, timezone_offset_minutes, timezone_description, \
                     national_id_name, national_id_value, picture_large, picture_medium, \
                     picture_thumbnail, source_ts_us, source_txid) \
                     VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, \
                     ?, ?, ?, ?, ?, ?, ?, ?) USING TIMESTAMP ?"
                ),
            )
            .await?,
            delete_by_id: prepare(
                "delete users_by_id",
                format!("DELETE FROM {keyspace}.users_by_id USING TIMESTAMP ? WHERE user_id = ?"),
            )
            .await?,
            upsert_by_country: prepare(
                "upsert users_by_country",
                format!(
                    "INSERT INTO {keyspace}.users_by_country (country_code, registered_at, user_id, \
                     first_name, last_name, email, gender, date_of_birth, city, state, nat, \
                     phone_e164) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) USING TIMESTAMP ?"
                ),
            )
            .await?,
            delete_by_country: prepare(
                "delete users_by_country",
                format!(
                    "DELETE FROM {keyspace}.users_by_country USING TIMESTAMP ? \
                     WHERE country_code = ? AND registered_at = ? AND user_id = ?"
                ),
            )
            .await?,
            record_version: prepare(
                "record version",
                format!(
                    "INSERT INTO {keyspace}.user_versions (user_id, source_ts_us, country_code, \
                     registered_at, deleted) VALUES (?, ?, ?, ?, ?) USING TIMESTAMP ?"
                ),
            )
            .await?,
            evolved: Arc::new(EvolvedColumns {
                cql: format!(
                    "UPDATE {keyspace}.users_by_id USING TIMESTAMP ? SET source_api_version = ?, \
                     age = ?, id_source = ? WHERE user_id = ?"
                ),
                statement: tokio::sync::OnceCell::new(),
                next_attempt: tokio::sync::Mutex::new(std::time::Instant::now()),
            }),
            session,
        })
    }

    /// The prepared update of the `cql/003` columns, or `None` while the keyspace lacks them.
    async fn evolved_statement(&self) -> Result<Option<&PreparedStatement>, SinkError> {
        let evolved = &*self.evolved;
        if let Some(statement) = evolved.statement.get() {
            return Ok(Some(statement));
        }
        let mut next = evolved.next_attempt.lock().await;
        if let Some(statement) = evolved.statement.get() {
            return Ok(Some(statement));
        }
        let now = std::time::Instant::now();
        if now < *next {
            return Ok(None);
        }
        *next = now + EVOLVED_COLUMNS_RECHECK;
        match self.session.prepare(evolved.cql.as_str()).await {
            Ok(statement) => {
                tracing::info!("users_by_id has the cql/003 columns; writing them");
                Ok(Some(
                    evolved.statement.get_or_init(|| async { statement }).await,
                ))
            }
            // Cassandra refused the statement: the columns are not there (yet).
            Err(PrepareError::AllAttemptsFailed {
                first_attempt: RequestAttemptError::DbError(DbError::Invalid, message),
            }) => {
                tracing::warn!(
                    reason = message,
                    "users_by_id lacks the cql/003 columns (run `userstream migrate`); \
                     writing without source_api_version, age and id_source"
                );
                Ok(None)
            }
            Err(source) => {
                *next = std::time::Instant::now();
                Err(SinkError::PrepareUnavailable {
                    statement: "update users_by_id (cql/003 columns)",
                    source: Box::new(source),
                })
            }
        }
    }

    /// Writes one version of a user, unless a newer one is already applied.
    pub async fn upsert(
        &self,
        user: &NormalizedUser,
        source_ts_us: i64,
        source_txid: Option<i64>,
    ) -> Result<WriteOutcome, SinkError> {
        let Some(previous) = self.applied_version(&user.id, source_ts_us).await? else {
            return Ok(WriteOutcome::Stale);
        };
        let key = CountryKey {
            country_code: user.country_code.clone(),
            registered_at: user.registered_at.unwrap_or(UNKNOWN_REGISTRATION),
        };
        self.execute(
            "upsert users_by_id",
            &self.upsert_by_id,
            user_by_id_row(user, source_ts_us, source_txid),
        )
        .await?;
        match self.evolved_statement().await? {
            Some(statement) => {
                self.execute(
                    "update users_by_id (cql/003 columns)",
                    statement,
                    (
                        source_ts_us,
                        user.source_api_version.as_deref(),
                        user.age,
                        user.id_source.as_deref(),
                        user.id.as_str(),
                    ),
                )
                .await?
            }
            None => metrics::counter!("userstream_sink_evolved_columns_missing_total").increment(1),
        }
        if let Some(old) = previous.filter(|old| *old != key) {
            self.delete_country_row(&user.id, &old, source_ts_us)
                .await?;
        }
        self.execute(
            "upsert users_by_country",
            &self.upsert_by_country,
            user_by_country_row(user, key.registered_at, source_ts_us),
        )
        .await?;
        self.execute(
            "record version",
            &self.record_version,
            (
                user.id.as_str(),
                source_ts_us,
                Some(key.country_code.as_str()),
                Some(key.registered_at),
                false,
                source_ts_us,
            ),
        )
        .await?;
        Ok(WriteOutcome::Applied)
    }

    /// Removes a user from both tables, unless a newer version is already applied.
    pub async fn delete(
        &self,
        user_id: &str,
        source_ts_us: i64,
    ) -> Result<WriteOutcome, SinkError> {
        let Some(previous) = self.applied_version(user_id, source_ts_us).await? else {
            return Ok(WriteOutcome::Stale);
        };
        self.execute(
            "delete users_by_id",
            &self.delete_by_id,
            (source_ts_us, user_id),
        )
        .await?;
        if let Some(old) = previous {
            self.delete_country_row(user_id, &old, source_ts_us).await?;
        }
        self.execute(
            "record version",
            &self.record_version,
            (
                user_id,
                source_ts_us,
                None::<&str>,
                None::<DateTime<Utc>>,
                true,
                source_ts_us,
            ),
        )
        .await?;
        Ok(WriteOutcome::Applied)
    }

    /// `None` when a newer version than `source_ts_us` is applied (the change is stale);
    /// otherwise where the applied version sits in `users_by_country`, if anywhere.
    async fn applied_version(
        &self,
        user_id: &str,
        source_ts_us: i64,
    ) -> Result<Option<Option<CountryKey>>, SinkError> {
        const OPERATION: &str = "read user_versions";
        let rows = self
            .session
            .execute_unpaged(&self.read_version, (user_id,))
            .await
            .map_err(|source| SinkError::Execute {
                operation: OPERATION,
                source: Box::new(source),
            })?
            .into_rows_result()
            .map_err(|source| rows_error(OPERATION, source))?;
        let applied = rows
            .maybe_first_row::<AppliedVersion>()
            .map_err(|source| rows_error(OPERATION, source))?;
        let Some(applied) = applied else {
            return Ok(Some(None));
        };
        if applied
            .source_ts_us
            .is_some_and(|applied_ts| applied_ts > source_ts_us)
        {
            return Ok(None);
        }
        Ok(Some(applied.country_code.zip(applied.registered_at).map(
            |(country_code, registered_at)| CountryKey {
                country_code,
                registered_at,
            },
        )))
    }

    async fn delete_country_row(
        &self,
        user_id: &str,
        key: &CountryKey,
        source_ts_us: i64,
    ) -> Result<(), SinkError> {
        self.execute(
            "delete users_by_country",
            &self.delete_by_country,
            (
                source_ts_us,
                key.country_code.as_str(),
                key.registered_at,
                user_id,
            ),
        )
        .await
    }

    async fn execute(
        &self,
        operation: &'static str,
        statement: &PreparedStatement,
        values: impl scylla::serialize::row::SerializeRow,
    ) -> Result<(), SinkError> {
        self.session
            .execute_unpaged(statement, values)
            .await
            .map(drop)
            .map_err(|source| SinkError::Execute {
                operation,
                source: Box::new(source),
            })
    }
}

fn rows_error(
    operation: &'static str,
    source: impl std::error::Error + Send + Sync + 'static,
) -> SinkError {
    SinkError::Rows {
        operation,
        source: Box::new(source),
    }
}

fn user_by_id_row(
    user: &NormalizedUser,
    source_ts_us: i64,
    source_txid: Option<i64>,
) -> UserByIdRow<'_> {
    UserByIdRow {
        user_id: &user.id,
        country_code: &user.country_code,
        nat: user.nat.as_deref(),
        gender: user.gender.as_deref(),
        title: user.title.as_deref(),
        first_name: user.first_name.as_deref(),
        last_name: user.last_name.as_deref(),
        email: user.email.as_deref(),
        username: user.username.as_deref(),
        date_of_birth: user.date_of_birth,
        registered_at: user.registered_at,
        phone: user.phone.as_deref(),
        phone_e164: user.phone_e164.as_deref(),
        cell: user.cell.as_deref(),
        cell_e164: user.cell_e164.as_deref(),
        street_number: user.street_number.as_deref(),
        street_name: user.street_name.as_deref(),
        city: user.city.as_deref(),
        state: user.state.as_deref(),
        country: user.country.as_deref(),
        postcode: user.postcode.as_deref(),
        latitude: user.latitude,
        longitude: user.longitude,
        timezone_offset_minutes: user.timezone_offset_minutes,
        timezone_description: user.timezone_description.as_deref(),
        national_id_name: user.national_id_name.as_deref(),
        national_id_value: user.national_id_value.as_deref(),
        picture_large: user.picture_large.as_deref(),
        picture_medium: user.picture_medium.as_deref(),
        picture_thumbnail: user.picture_thumbnail.as_deref(),
        source_ts_us,
        source_txid,
        write_ts: source_ts_us,
    }
}

fn user_by_country_row(
    user: &NormalizedUser,
    registered_at: DateTime<Utc>,
    source_ts_us: i64,
) -> UserByCountryRow<'_> {
    UserByCountryRow {
        country_code: &user.country_code,
        registered_at,
        user_id: &user.id,
        first_name: user.first_name.as_deref(),
        last_name: user.last_name.as_deref(),
        email: user.email.as_deref(),
        gender: user.gender.as_deref(),
        date_of_birth: user.date_of_birth,
        city: user.city.as_deref(),
        state: user.state.as_deref(),
        nat: user.nat.as_deref(),
        phone_e164: user.phone_e164.as_deref(),
        write_ts: source_ts_us,
    }
}
