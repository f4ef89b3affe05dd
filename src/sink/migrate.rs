//! Applies the numbered CQL files of `cql/` in order, each exactly once per keyspace.
//!
//! The files are compiled into the binary, so a deployed `userstream migrate` needs no checkout.
//! `{{keyspace}}` and `{{replication}}` in them are replaced by the configured values. Applied
//! files are recorded in `<keyspace>.schema_migrations`; a file is recorded only after all its
//! statements succeeded, and its statements are themselves idempotent where CQL allows
//! (`IF NOT EXISTS`), so re-running after a failure half-way is safe.

use scylla::client::session::Session;
use scylla::errors::{DbError, ExecutionError, RequestAttemptError};

use super::{rows_error, SinkError};

/// `(version, file name, text)`, in the order they are applied.
pub const CQL_MIGRATIONS: &[(i32, &str, &str)] = &[
    (
        1,
        "001_keyspace.cql",
        include_str!("../../cql/001_keyspace.cql"),
    ),
    (2, "002_users.cql", include_str!("../../cql/002_users.cql")),
    (
        3,
        "003_user_evolution.cql",
        include_str!("../../cql/003_user_evolution.cql"),
    ),
];

/// Applies every migration not yet recorded in `keyspace`; returns the files it applied.
pub async fn migrate(
    session: &Session,
    keyspace: &str,
    replication: &str,
) -> Result<Vec<&'static str>, SinkError> {
    migrate_to(session, keyspace, replication, i32::MAX).await
}

/// Like [`migrate`], but stops after migration `last_version`: the keyspace as the release that
/// ended with that file left it.
pub async fn migrate_to(
    session: &Session,
    keyspace: &str,
    replication: &str,
    last_version: i32,
) -> Result<Vec<&'static str>, SinkError> {
    let mut applied = Vec::new();
    for &(version, file, text) in CQL_MIGRATIONS
        .iter()
        .take_while(|(version, ..)| *version <= last_version)
    {
        // The first file creates the ledger itself, so it always runs (it is idempotent).
        if version > 1 && already_applied(session, keyspace, version).await? {
            continue;
        }
        let text = text
            .replace("{{keyspace}}", keyspace)
            .replace("{{replication}}", replication);
        for (index, statement) in statements(&text).enumerate() {
            match session.query_unpaged(statement.as_str(), ()).await {
                Ok(_) => {}
                // CQL has no `ADD IF NOT EXISTS` before Cassandra 4.1: a column that is already
                // there means this file got that far before (and failed to be recorded).
                Err(source) if adds_existing_column(&statement, &source) => {
                    tracing::info!(file, statement = index + 1, "columns already added");
                }
                Err(source) => {
                    return Err(SinkError::Migration {
                        file,
                        statement: index + 1,
                        source: Box::new(source),
                    })
                }
            }
        }
        session
            .query_unpaged(
                format!(
                    "INSERT INTO {keyspace}.schema_migrations (version, name, applied_at) \
                     VALUES (?, ?, ?)"
                ),
                (version, file, chrono::Utc::now()),
            )
            .await
            .map_err(|source| SinkError::Migration {
                file,
                statement: 0,
                source: Box::new(source),
            })?;
        tracing::info!(file, keyspace, "applied CQL migration");
        applied.push(file);
    }
    Ok(applied)
}

fn adds_existing_column(statement: &str, error: &ExecutionError) -> bool {
    let is_alter = statement
        .get(..11)
        .is_some_and(|start| start.eq_ignore_ascii_case("ALTER TABLE"));
    is_alter
        && matches!(
            error,
            ExecutionError::LastAttemptError(RequestAttemptError::DbError(DbError::Invalid, message))
                if message.contains("already exists")
        )
}

async fn already_applied(
    session: &Session,
    keyspace: &str,
    version: i32,
) -> Result<bool, SinkError> {
    const OPERATION: &str = "read schema_migrations";
    let rows = session
        .query_unpaged(
            format!("SELECT version FROM {keyspace}.schema_migrations WHERE version = ?"),
            (version,),
        )
        .await
        .map_err(|source| SinkError::Execute {
            operation: OPERATION,
            source: Box::new(source),
        })?
        .into_rows_result()
        .map_err(|source| rows_error(OPERATION, source))?;
    Ok(rows.rows_num() > 0)
}

/// The statements of a CQL file: `--` comments dropped, split at `;`. (Our files keep semicolons
/// out of string literals, which is what makes this split sound.)
fn statements(text: &str) -> impl Iterator<Item = String> + '_ {
    let without_comments: String = text
        .lines()
        .map(|line| line.split_once("--").map_or(line, |(code, _)| code))
        .collect::<Vec<_>>()
        .join("\n");
    without_comments
        .split(';')
        .map(|statement| statement.trim().to_owned())
        .filter(|statement| !statement.is_empty())
        .collect::<Vec<_>>()
        .into_iter()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_file_splits_into_statements_without_comments() {
        for &(_, file, text) in CQL_MIGRATIONS {
            let statements: Vec<String> = statements(text).collect();
            assert!(!statements.is_empty(), "{file} has statements");
            for statement in &statements {
                assert!(
                    !statement.contains("--"),
                    "{file}: comment left in {statement}"
                );
                let first = statement.split_whitespace().next().unwrap_or_default();
                assert!(
                    ["CREATE", "ALTER", "DROP"].contains(&first),
                    "{file}: unexpected statement start {first:?}"
                );
            }
        }
    }

    #[test]
    fn versions_are_numbered_like_their_files() {
        for (index, &(version, file, _)) in CQL_MIGRATIONS.iter().enumerate() {
            assert_eq!(version as usize, index + 1);
            assert!(file.starts_with(&format!("{version:03}_")), "{file}");
        }
    }
}
