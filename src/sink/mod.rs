//! Cassandra: the CQL migrations and the processor's writes.
//!
//! Every write carries `USING TIMESTAMP` = the change's source time in microseconds, so Cassandra's
//! last-write-wins reconciliation orders versions by when they happened in PostgreSQL, not by when
//! they arrived: a replayed or late older version loses to the newer one cell by cell, and nulls
//! are written as tombstones so a field that disappeared in a newer version stays gone.
//!
//! Nothing is read before it is written. `users_by_country` is keyed by (country, registration),
//! which a newer version may change; the change carries where the version it replaced sat
//! ([`CountryKey`], from the log's before image), so a move or a delete writes a tombstone for
//! that row at its own source time. A late older version that writes an old row again is
//! shadowed by the tombstone of the version that moved the user away from it (delivery is
//! at-least-once, so that version is written too), for as long as Cassandra keeps tombstones
//! (`gc_grace_seconds`). The writes of one change are independent and idempotent, so they run
//! concurrently and the driver may retry them.
//!
//! The columns of value schema v2/v3 (`cql/003_user_evolution.cql`) are written by a second
//! variant of the `users_by_id` upsert, prepared once the keyspace has them: `userstream migrate`
//! may add them while a processor runs, and that processor starts filling them within
//! [`EVOLVED_COLUMNS_RECHECK`] without a restart. Until then each write skips them, counted in
//! `userstream_sink_evolved_columns_missing_total` and logged at every re-check.

mod migrate;

use std::sync::Arc;

use chrono::{DateTime, NaiveDate, Utc};
use scylla::client::session::Session;
use scylla::client::session_builder::SessionBuilder;
use scylla::errors::{DbError, ExecutionError, NewSessionError, PrepareError, RequestAttemptError};
use scylla::statement::prepared::PreparedStatement;
use scylla::SerializeRow;

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
    upsert_by_id: PreparedStatement,
    delete_by_id: PreparedStatement,
    upsert_by_country: PreparedStatement,
    delete_by_country: PreparedStatement,
    /// The `users_by_id` upsert with the `cql/003` columns, once they exist.
    evolved: Arc<EvolvedColumns>,
    /// Resolved once: writes without the `cql/003` columns.
    evolved_columns_missing: metrics::Counter,
}

/// The lazily prepared `users_by_id` upsert with the columns `cql/003` adds, shared by the
/// sink's clones.
#[derive(Debug)]
struct EvolvedColumns {
    cql: String,
    statement: tokio::sync::OnceCell<PreparedStatement>,
    /// No prepare is attempted before this instant (the previous attempt found no columns).
    /// Held across an attempt, so writers arriving meanwhile wait for its answer instead of
    /// writing without the columns.
    next_attempt: tokio::sync::Mutex<std::time::Instant>,
}

/// The values of every `users_by_id` column the first release has, in the order of
/// [`USER_BY_ID_COLUMNS`].
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
}

/// Bound by position: the last marker is `USING TIMESTAMP ?`, which has no column name.
#[derive(Debug, SerializeRow)]
#[scylla(flavor = "enforce_order", skip_name_checks)]
struct UserByIdWrite<'a> {
    #[scylla(flatten)]
    row: UserByIdRow<'a>,
    write_ts: i64,
}

/// [`UserByIdWrite`] with the `cql/003` columns.
#[derive(Debug, SerializeRow)]
#[scylla(flavor = "enforce_order", skip_name_checks)]
struct EvolvedUserByIdWrite<'a> {
    #[scylla(flatten)]
    row: UserByIdRow<'a>,
    source_api_version: Option<&'a str>,
    age: Option<i32>,
    id_source: Option<&'a str>,
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

const USER_BY_ID_COLUMNS: &str = "user_id, country_code, nat, gender, title, first_name, \
    last_name, email, username, date_of_birth, registered_at, phone, phone_e164, cell, cell_e164, \
    street_number, street_name, city, state, country, postcode, latitude, longitude, \
    timezone_offset_minutes, timezone_description, national_id_name, national_id_value, \
    picture_large, picture_medium, picture_thumbnail, source_ts_us, source_txid";

/// Where one version of a user sits in `users_by_country`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CountryKey {
    pub country_code: String,
    pub registered_at: DateTime<Utc>,
}

impl CountryKey {
    /// The row `user` is written to.
    pub fn of(user: &NormalizedUser) -> Self {
        Self {
            country_code: user.country_code.clone(),
            registered_at: user.registered_at.unwrap_or(UNKNOWN_REGISTRATION),
        }
    }
}

impl CassandraSink {
    /// Prepares every statement against `keyspace` (which `migrate` has created).
    pub async fn prepare(session: Arc<Session>, keyspace: &str) -> Result<Self, SinkError> {
        let prepare = |name: &'static str, cql: String| {
            let session = Arc::clone(&session);
            async move {
                let mut statement =
                    session
                        .prepare(cql)
                        .await
                        .map_err(|source| SinkError::Prepare {
                            statement: name,
                            source: Box::new(source),
                        })?;
                statement.set_is_idempotent(true);
                Ok::<_, SinkError>(statement)
            }
        };
        let markers = |count: usize| vec!["?"; count].join(", ");
        let user_by_id_markers = USER_BY_ID_COLUMNS.split(',').count();
        // Registered before the first write, so the handle resolved here is a live one.
        crate::telemetry::prometheus();
        Ok(Self {
            upsert_by_id: prepare(
                "upsert users_by_id",
                format!(
                    "INSERT INTO {keyspace}.users_by_id ({USER_BY_ID_COLUMNS}) VALUES ({}) \
                     USING TIMESTAMP ?",
                    markers(user_by_id_markers)
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
            evolved: Arc::new(EvolvedColumns {
                cql: format!(
                    "INSERT INTO {keyspace}.users_by_id ({USER_BY_ID_COLUMNS}, source_api_version, \
                     age, id_source) VALUES ({}) USING TIMESTAMP ?",
                    markers(user_by_id_markers + 3)
                ),
                statement: tokio::sync::OnceCell::new(),
                next_attempt: tokio::sync::Mutex::new(std::time::Instant::now()),
            }),
            evolved_columns_missing: metrics::counter!(
                "userstream_sink_evolved_columns_missing_total"
            ),
            session,
        })
    }

    /// The prepared upsert with the `cql/003` columns, or `None` while the keyspace lacks them.
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
            Ok(mut statement) => {
                tracing::info!("users_by_id has the cql/003 columns; writing them");
                statement.set_is_idempotent(true);
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
                    statement: "upsert users_by_id (cql/003 columns)",
                    source: Box::new(source),
                })
            }
        }
    }

    /// Writes one version of a user, with blind writes only: its `users_by_id` row, its
    /// `users_by_country` row, and — when `previous` (where the version it replaced sat in
    /// `users_by_country`, as the change carries it) is another row — a tombstone for that row,
    /// all `USING TIMESTAMP source_ts_us` and concurrently.
    ///
    /// A late older version cannot bring an old row back: the version that moved the user away
    /// from it wrote a tombstone at a later time, and that version is delivered too.
    pub async fn upsert(
        &self,
        user: &NormalizedUser,
        previous: Option<&CountryKey>,
        source_ts_us: i64,
        source_txid: Option<i64>,
    ) -> Result<(), SinkError> {
        let key = CountryKey::of(user);
        // Resolved before the writes start: a prepare cancelled by a failing sibling write would
        // leave the re-check waiting, and the retry would write without the columns.
        let evolved = self.evolved_statement().await?;
        let by_country = self.execute(
            "upsert users_by_country",
            &self.upsert_by_country,
            user_by_country_row(user, key.registered_at, source_ts_us),
        );
        let retire_previous = async {
            match previous.filter(|previous| **previous != key) {
                Some(previous) => {
                    self.delete_country_row(&user.id, previous, source_ts_us)
                        .await
                }
                None => Ok(()),
            }
        };
        futures::try_join!(
            self.upsert_user_by_id(user, evolved, source_ts_us, source_txid),
            by_country,
            retire_previous
        )?;
        Ok(())
    }

    /// Removes a user from `users_by_id` and, when the change says where the deleted version
    /// sat, from `users_by_country`; blind tombstones `USING TIMESTAMP source_ts_us`, written
    /// concurrently, which shadow every older version whenever it arrives.
    pub async fn delete(
        &self,
        user_id: &str,
        previous: Option<&CountryKey>,
        source_ts_us: i64,
    ) -> Result<(), SinkError> {
        let by_country = async {
            match previous {
                Some(previous) => {
                    self.delete_country_row(user_id, previous, source_ts_us)
                        .await
                }
                None => Ok(()),
            }
        };
        futures::try_join!(
            self.execute(
                "delete users_by_id",
                &self.delete_by_id,
                (source_ts_us, user_id),
            ),
            by_country
        )?;
        Ok(())
    }

    /// `evolved`: the upsert with the `cql/003` columns, if the keyspace has them.
    async fn upsert_user_by_id(
        &self,
        user: &NormalizedUser,
        evolved: Option<&PreparedStatement>,
        source_ts_us: i64,
        source_txid: Option<i64>,
    ) -> Result<(), SinkError> {
        let row = user_by_id_row(user, source_ts_us, source_txid);
        match evolved {
            Some(statement) => {
                self.execute(
                    "upsert users_by_id",
                    statement,
                    EvolvedUserByIdWrite {
                        row,
                        source_api_version: user.source_api_version.as_deref(),
                        age: user.age,
                        id_source: user.id_source.as_deref(),
                        write_ts: source_ts_us,
                    },
                )
                .await
            }
            None => {
                self.evolved_columns_missing.increment(1);
                self.execute(
                    "upsert users_by_id",
                    &self.upsert_by_id,
                    UserByIdWrite {
                        row,
                        write_ts: source_ts_us,
                    },
                )
                .await
            }
        }
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
