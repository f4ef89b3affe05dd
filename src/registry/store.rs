//! The registry's state in PostgreSQL (tables in `sql/001_registry.sql`).
//!
//! Every change to a subject runs in one transaction holding a transaction-scoped advisory lock
//! on that subject, so concurrent registrations under one subject are serialized (one version
//! per schema) and registry replicas sharing a database stay consistent. Schema ids come from a
//! unique constraint on the fingerprint: two subjects registering one schema at once both end up
//! with the row that committed first.

use apache_avro::Schema;
use deadpool_postgres::{Pool, PoolError, Transaction};
use tokio_postgres::Row;

use super::compatibility::{self, Existing, Level};
use super::schema::{ParsedSchema, AVRO};
use crate::error::Retryable;

const MIGRATIONS: &[(&str, &str)] = &[("001_registry", include_str!("sql/001_registry.sql"))];

/// First key of every advisory lock the registry takes, so its locks never meet the pipeline's.
const LOCK_NAMESPACE: i32 = 0x5352_0001;

/// Errors of the PostgreSQL store.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("no PostgreSQL connection available")]
    Pool(#[source] PoolError),
    #[error("PostgreSQL failed while {action}")]
    Query {
        action: &'static str,
        #[source]
        source: tokio_postgres::Error,
    },
    #[error("stored schema {id} no longer parses as Avro")]
    CorruptSchema {
        id: i32,
        #[source]
        source: apache_avro::Error,
    },
    #[error("stored compatibility level {0:?} is not a known level")]
    CorruptLevel(String),
}

impl Retryable for StoreError {
    fn is_retryable(&self) -> bool {
        match self {
            StoreError::Pool(_) | StoreError::Query { .. } => true,
            StoreError::CorruptSchema { .. } | StoreError::CorruptLevel(_) => false,
        }
    }
}

fn query(action: &'static str) -> impl FnOnce(tokio_postgres::Error) -> StoreError {
    move |source| StoreError::Query { action, source }
}

/// Which version of a subject a request names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum VersionSpec {
    Latest,
    Number(i32),
}

/// One version of a subject, as the API returns it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SubjectVersion {
    pub subject: String,
    pub version: i32,
    pub id: i32,
    pub schema: String,
}

/// What a registration did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Registration {
    /// The schema was already a live version of the subject; nothing changed.
    Existing { id: i32 },
    /// A new version was added.
    Added { id: i32, version: i32 },
    /// The configured compatibility level refused it, with one message per failed check.
    Incompatible { level: Level, messages: Vec<String> },
}

/// What a soft delete of a subject did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SubjectDeletion {
    NotFound,
    AlreadyDeleted,
    /// The versions that were live and are now deleted.
    Deleted(Vec<i32>),
}

/// What a soft delete of one version did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum VersionDeletion {
    SubjectNotFound,
    VersionNotFound,
    AlreadyDeleted,
    Deleted(i32),
}

/// Live versions of a subject with their parsed schemas, for a compatibility check.
#[derive(Debug)]
pub struct LiveVersions {
    pub level: Level,
    /// Oldest first.
    pub versions: Vec<(i32, Schema)>,
}

impl LiveVersions {
    pub fn check(&self, new: &Schema) -> Vec<String> {
        let existing: Vec<Existing<'_>> = self
            .versions
            .iter()
            .map(|(version, schema)| Existing {
                version: *version,
                schema,
            })
            .collect();
        compatibility::check(self.level, new, &existing)
    }
}

/// The registry's tables behind a connection pool.
#[derive(Clone)]
pub struct Store {
    pool: Pool,
}

impl Store {
    pub fn new(pool: Pool) -> Self {
        Self { pool }
    }

    async fn client(&self) -> Result<deadpool_postgres::Client, StoreError> {
        self.pool.get().await.map_err(StoreError::Pool)
    }

    /// Applies the registry's SQL files; safe to run on every start, also by several replicas.
    pub async fn migrate(&self) -> Result<(), StoreError> {
        let mut client = self.client().await?;
        let tx = client
            .transaction()
            .await
            .map_err(query("starting the migration"))?;
        tx.execute("SELECT pg_advisory_xact_lock($1, 0)", &[&LOCK_NAMESPACE])
            .await
            .map_err(query("locking for the migration"))?;
        for (name, sql) in MIGRATIONS {
            tracing::debug!(migration = name, "applying registry SQL");
            tx.batch_execute(sql)
                .await
                .map_err(query("applying the registry's SQL"))?;
        }
        tx.commit().await.map_err(query("committing the migration"))
    }

    /// Subjects with at least one live version (or any version, with `include_deleted`).
    pub async fn subjects(&self, include_deleted: bool) -> Result<Vec<String>, StoreError> {
        let client = self.client().await?;
        let rows = client
            .query(
                "SELECT DISTINCT subject FROM schema_registry.subject_versions \
                 WHERE NOT deleted OR $1 ORDER BY subject",
                &[&include_deleted],
            )
            .await
            .map_err(query("listing subjects"))?;
        Ok(rows.iter().map(|row| row.get(0)).collect())
    }

    /// A subject's version numbers, ascending; empty when the subject does not exist.
    pub async fn versions(
        &self,
        subject: &str,
        include_deleted: bool,
    ) -> Result<Vec<i32>, StoreError> {
        let client = self.client().await?;
        let rows = client
            .query(
                "SELECT version FROM schema_registry.subject_versions \
                 WHERE subject = $1 AND (NOT deleted OR $2) ORDER BY version",
                &[&subject, &include_deleted],
            )
            .await
            .map_err(query("listing versions"))?;
        Ok(rows.iter().map(|row| row.get(0)).collect())
    }

    /// One version of a subject.
    pub async fn version(
        &self,
        subject: &str,
        spec: VersionSpec,
        include_deleted: bool,
    ) -> Result<Option<SubjectVersion>, StoreError> {
        let client = self.client().await?;
        let row = match spec {
            VersionSpec::Latest => client
                .query_opt(
                    "SELECT v.subject, v.version, v.schema_id, s.schema_text \
                     FROM schema_registry.subject_versions v \
                     JOIN schema_registry.schemas s ON s.id = v.schema_id \
                     WHERE v.subject = $1 AND (NOT v.deleted OR $2) \
                     ORDER BY v.version DESC LIMIT 1",
                    &[&subject, &include_deleted],
                )
                .await
                .map_err(query("reading the latest version"))?,
            VersionSpec::Number(version) => client
                .query_opt(
                    "SELECT v.subject, v.version, v.schema_id, s.schema_text \
                     FROM schema_registry.subject_versions v \
                     JOIN schema_registry.schemas s ON s.id = v.schema_id \
                     WHERE v.subject = $1 AND v.version = $2 AND (NOT v.deleted OR $3)",
                    &[&subject, &version, &include_deleted],
                )
                .await
                .map_err(query("reading a version"))?,
        };
        Ok(row.as_ref().map(subject_version))
    }

    /// The schema text registered under `id`; soft deletes never hide it.
    pub async fn schema_by_id(&self, id: i32) -> Result<Option<String>, StoreError> {
        let client = self.client().await?;
        let row = client
            .query_opt(
                "SELECT schema_text FROM schema_registry.schemas WHERE id = $1",
                &[&id],
            )
            .await
            .map_err(query("reading a schema by id"))?;
        Ok(row.map(|row| row.get(0)))
    }

    /// The subject versions that use schema `id`, or `None` when no schema has that id.
    pub async fn versions_of_schema(
        &self,
        id: i32,
        include_deleted: bool,
    ) -> Result<Option<Vec<(String, i32)>>, StoreError> {
        let client = self.client().await?;
        let rows = client
            .query(
                "SELECT v.subject, v.version FROM schema_registry.schemas s \
                 LEFT JOIN schema_registry.subject_versions v \
                   ON v.schema_id = s.id AND (NOT v.deleted OR $2) \
                 WHERE s.id = $1 ORDER BY v.subject, v.version",
                &[&id, &include_deleted],
            )
            .await
            .map_err(query("listing the versions of a schema"))?;
        if rows.is_empty() {
            return Ok(None);
        }
        Ok(Some(
            rows.iter()
                .filter_map(|row| Some((row.get::<_, Option<String>>(0)?, row.get(1))))
                .collect(),
        ))
    }

    /// The newest version of `subject` whose schema is `schema`.
    pub async fn find(
        &self,
        subject: &str,
        schema: &ParsedSchema,
        include_deleted: bool,
    ) -> Result<Option<SubjectVersion>, StoreError> {
        let client = self.client().await?;
        let row = client
            .query_opt(
                "SELECT v.subject, v.version, v.schema_id, s.schema_text \
                 FROM schema_registry.subject_versions v \
                 JOIN schema_registry.schemas s ON s.id = v.schema_id \
                 WHERE v.subject = $1 AND s.schema_type = $2 AND s.fingerprint = $3 \
                   AND (NOT v.deleted OR $4) \
                 ORDER BY v.version DESC LIMIT 1",
                &[
                    &subject,
                    &AVRO,
                    &schema.fingerprint.as_slice(),
                    &include_deleted,
                ],
            )
            .await
            .map_err(query("looking a schema up"))?;
        Ok(row.as_ref().map(subject_version))
    }

    /// Registers `schema` under `subject` unless it already is a live version there or the
    /// subject's compatibility level refuses it. A new version's number follows every earlier
    /// one, soft-deleted ones included, so a number is never reused.
    pub async fn register(
        &self,
        subject: &str,
        schema: &ParsedSchema,
    ) -> Result<Registration, StoreError> {
        let mut client = self.client().await?;
        let tx = client
            .transaction()
            .await
            .map_err(query("starting a registration"))?;
        lock_subject(&tx, subject).await?;
        let rows = tx
            .query(
                "SELECT v.version, v.deleted, v.schema_id, s.fingerprint, s.schema_text \
                 FROM schema_registry.subject_versions v \
                 JOIN schema_registry.schemas s ON s.id = v.schema_id \
                 WHERE v.subject = $1 ORDER BY v.version",
                &[&subject],
            )
            .await
            .map_err(query("reading the subject's versions"))?;
        let mut next_version = 1;
        let mut live = Vec::new();
        for row in &rows {
            let version: i32 = row.get(0);
            let deleted: bool = row.get(1);
            let id: i32 = row.get(2);
            let fingerprint: &[u8] = row.get(3);
            next_version = next_version.max(version.saturating_add(1));
            if deleted {
                continue;
            }
            if fingerprint == schema.fingerprint.as_slice() {
                return Ok(Registration::Existing { id });
            }
            live.push((version, id, row.get::<_, &str>(4)));
        }
        let level = effective_level(&tx, subject).await?;
        if level != Level::None && !live.is_empty() {
            let versions = live
                .iter()
                .map(|(version, id, text)| Ok((*version, parse_stored(*id, text)?)))
                .collect::<Result<Vec<_>, StoreError>>()?;
            let messages = LiveVersions { level, versions }.check(&schema.schema);
            if !messages.is_empty() {
                return Ok(Registration::Incompatible { level, messages });
            }
        }
        let id = schema_id(&tx, schema).await?;
        tx.execute(
            "INSERT INTO schema_registry.subject_versions (subject, version, schema_id) \
             VALUES ($1, $2, $3)",
            &[&subject, &next_version, &id],
        )
        .await
        .map_err(query("adding a version"))?;
        tx.commit()
            .await
            .map_err(query("committing a registration"))?;
        Ok(Registration::Added {
            id,
            version: next_version,
        })
    }

    /// The level in force for `subject` and its live versions, oldest first.
    pub async fn live_versions(&self, subject: &str) -> Result<LiveVersions, StoreError> {
        let mut client = self.client().await?;
        let tx = client
            .build_transaction()
            .read_only(true)
            .start()
            .await
            .map_err(query("starting a compatibility check"))?;
        let level = effective_level(&tx, subject).await?;
        let rows = tx
            .query(
                "SELECT v.version, v.schema_id, s.schema_text \
                 FROM schema_registry.subject_versions v \
                 JOIN schema_registry.schemas s ON s.id = v.schema_id \
                 WHERE v.subject = $1 AND NOT v.deleted ORDER BY v.version",
                &[&subject],
            )
            .await
            .map_err(query("reading the subject's versions"))?;
        let versions = rows
            .iter()
            .map(|row| Ok((row.get(0), parse_stored(row.get(1), row.get(2))?)))
            .collect::<Result<Vec<_>, StoreError>>()?;
        Ok(LiveVersions { level, versions })
    }

    /// The global level (BACKWARD until someone sets it).
    pub async fn global_level(&self) -> Result<Level, StoreError> {
        let client = self.client().await?;
        let row = client
            .query_opt(
                "SELECT level FROM schema_registry.global_compatibility",
                &[],
            )
            .await
            .map_err(query("reading the global compatibility level"))?;
        row.map_or(Ok(Level::DEFAULT), |row| parse_level(row.get(0)))
    }

    pub async fn set_global_level(&self, level: Level) -> Result<(), StoreError> {
        let client = self.client().await?;
        client
            .execute(
                "INSERT INTO schema_registry.global_compatibility (level) VALUES ($1) \
                 ON CONFLICT (singleton) DO UPDATE SET level = EXCLUDED.level, updated_at = now()",
                &[&level.as_str()],
            )
            .await
            .map_err(query("setting the global compatibility level"))?;
        Ok(())
    }

    /// The level set for `subject` itself, if any.
    pub async fn subject_level(&self, subject: &str) -> Result<Option<Level>, StoreError> {
        let client = self.client().await?;
        let row = client
            .query_opt(
                "SELECT level FROM schema_registry.subject_compatibility WHERE subject = $1",
                &[&subject],
            )
            .await
            .map_err(query("reading a subject's compatibility level"))?;
        row.map(|row| parse_level(row.get(0))).transpose()
    }

    pub async fn set_subject_level(&self, subject: &str, level: Level) -> Result<(), StoreError> {
        let client = self.client().await?;
        client
            .execute(
                "INSERT INTO schema_registry.subject_compatibility (subject, level) \
                 VALUES ($1, $2) \
                 ON CONFLICT (subject) DO UPDATE SET level = EXCLUDED.level, updated_at = now()",
                &[&subject, &level.as_str()],
            )
            .await
            .map_err(query("setting a subject's compatibility level"))?;
        Ok(())
    }

    /// Removes the level set for `subject`; returns what it was.
    pub async fn delete_subject_level(&self, subject: &str) -> Result<Option<Level>, StoreError> {
        let client = self.client().await?;
        let row = client
            .query_opt(
                "DELETE FROM schema_registry.subject_compatibility WHERE subject = $1 \
                 RETURNING level",
                &[&subject],
            )
            .await
            .map_err(query("deleting a subject's compatibility level"))?;
        row.map(|row| parse_level(row.get(0))).transpose()
    }

    /// Soft-deletes every live version of `subject` and its compatibility level, as Confluent's
    /// registry does.
    pub async fn delete_subject(&self, subject: &str) -> Result<SubjectDeletion, StoreError> {
        let mut client = self.client().await?;
        let tx = client
            .transaction()
            .await
            .map_err(query("starting a subject deletion"))?;
        let versions = versions_under_lock(&tx, subject).await?;
        if versions.is_empty() {
            return Ok(SubjectDeletion::NotFound);
        }
        let live: Vec<i32> = versions
            .iter()
            .filter(|(_, deleted)| !deleted)
            .map(|&(version, _)| version)
            .collect();
        if live.is_empty() {
            return Ok(SubjectDeletion::AlreadyDeleted);
        }
        tx.execute(
            "UPDATE schema_registry.subject_versions SET deleted = true \
             WHERE subject = $1 AND NOT deleted",
            &[&subject],
        )
        .await
        .map_err(query("soft-deleting a subject"))?;
        tx.execute(
            "DELETE FROM schema_registry.subject_compatibility WHERE subject = $1",
            &[&subject],
        )
        .await
        .map_err(query("deleting a subject's compatibility level"))?;
        tx.commit()
            .await
            .map_err(query("committing a subject deletion"))?;
        Ok(SubjectDeletion::Deleted(live))
    }

    /// Soft-deletes one version; `Latest` is the newest live one.
    pub async fn delete_version(
        &self,
        subject: &str,
        spec: VersionSpec,
    ) -> Result<VersionDeletion, StoreError> {
        let mut client = self.client().await?;
        let tx = client
            .transaction()
            .await
            .map_err(query("starting a version deletion"))?;
        let versions = versions_under_lock(&tx, subject).await?;
        let target = match spec {
            VersionSpec::Latest => match versions.iter().rev().find(|(_, deleted)| !deleted) {
                Some(&(version, _)) => version,
                None => return Ok(VersionDeletion::SubjectNotFound),
            },
            VersionSpec::Number(wanted) => {
                if versions.is_empty() {
                    return Ok(VersionDeletion::SubjectNotFound);
                }
                match versions.iter().find(|(version, _)| *version == wanted) {
                    None => return Ok(VersionDeletion::VersionNotFound),
                    Some((_, true)) => return Ok(VersionDeletion::AlreadyDeleted),
                    Some(&(version, false)) => version,
                }
            }
        };
        tx.execute(
            "UPDATE schema_registry.subject_versions SET deleted = true \
             WHERE subject = $1 AND version = $2",
            &[&subject, &target],
        )
        .await
        .map_err(query("soft-deleting a version"))?;
        tx.commit()
            .await
            .map_err(query("committing a version deletion"))?;
        Ok(VersionDeletion::Deleted(target))
    }
}

fn subject_version(row: &Row) -> SubjectVersion {
    SubjectVersion {
        subject: row.get(0),
        version: row.get(1),
        id: row.get(2),
        schema: row.get(3),
    }
}

/// Takes `subject`'s lock for the transaction, then reads its versions as (number, deleted),
/// oldest first: what every change of a subject's versions starts from.
async fn versions_under_lock(
    tx: &Transaction<'_>,
    subject: &str,
) -> Result<Vec<(i32, bool)>, StoreError> {
    lock_subject(tx, subject).await?;
    let rows = tx
        .query(
            "SELECT version, deleted FROM schema_registry.subject_versions \
             WHERE subject = $1 ORDER BY version",
            &[&subject],
        )
        .await
        .map_err(query("reading the subject's versions"))?;
    Ok(rows.iter().map(|row| (row.get(0), row.get(1))).collect())
}

async fn lock_subject(tx: &Transaction<'_>, subject: &str) -> Result<(), StoreError> {
    tx.execute(
        "SELECT pg_advisory_xact_lock($1, hashtext($2))",
        &[&LOCK_NAMESPACE, &subject],
    )
    .await
    .map_err(query("locking the subject"))?;
    Ok(())
}

/// The subject's own level, else the global one, else BACKWARD.
async fn effective_level(tx: &Transaction<'_>, subject: &str) -> Result<Level, StoreError> {
    let row = tx
        .query_opt(
            "SELECT coalesce( \
                 (SELECT level FROM schema_registry.subject_compatibility WHERE subject = $1), \
                 (SELECT level FROM schema_registry.global_compatibility))",
            &[&subject],
        )
        .await
        .map_err(query("reading the compatibility level"))?;
    match row.and_then(|row| row.get::<_, Option<String>>(0)) {
        Some(level) => parse_level(level),
        None => Ok(Level::DEFAULT),
    }
}

/// The id of `schema`, inserting it if no subject has registered it yet.
async fn schema_id(tx: &Transaction<'_>, schema: &ParsedSchema) -> Result<i32, StoreError> {
    let fingerprint = schema.fingerprint.as_slice();
    let inserted = tx
        .query_opt(
            "INSERT INTO schema_registry.schemas (schema_type, fingerprint, normalized, schema_text) \
             VALUES ($1, $2, $3, $4) \
             ON CONFLICT (schema_type, fingerprint) DO NOTHING RETURNING id",
            &[&AVRO, &fingerprint, &schema.normalized, &schema.text],
        )
        .await
        .map_err(query("storing a schema"))?;
    if let Some(row) = inserted {
        return Ok(row.get(0));
    }
    // Another subject holds (or has just committed) this schema; in READ COMMITTED this new
    // statement sees that row.
    let row = tx
        .query_one(
            "SELECT id FROM schema_registry.schemas WHERE schema_type = $1 AND fingerprint = $2",
            &[&AVRO, &fingerprint],
        )
        .await
        .map_err(query("reading a schema's id"))?;
    Ok(row.get(0))
}

fn parse_stored(id: i32, text: &str) -> Result<Schema, StoreError> {
    Schema::parse_str(text).map_err(|source| StoreError::CorruptSchema { id, source })
}

fn parse_level(raw: String) -> Result<Level, StoreError> {
    raw.parse().map_err(|_| StoreError::CorruptLevel(raw))
}
