//! Schema migrations: the files in `sql/`, applied once each and in order.

use tokio_postgres::Client;

use super::StoreError;

/// One numbered file of `sql/`.
struct Migration {
    version: i32,
    name: &'static str,
    sql: &'static str,
}

/// Every migration, oldest first. Versions are never reused or reordered: a database remembers
/// which ones it has applied.
const MIGRATIONS: &[Migration] = &[
    Migration {
        version: 1,
        name: "users",
        sql: include_str!("sql/001_users.sql"),
    },
    Migration {
        version: 2,
        name: "user_changes",
        sql: include_str!("sql/002_user_changes.sql"),
    },
    Migration {
        version: 3,
        name: "cdc_cursors",
        sql: include_str!("sql/003_cdc_cursors.sql"),
    },
    Migration {
        version: 4,
        name: "fetch_rejections",
        sql: include_str!("sql/004_fetch_rejections.sql"),
    },
    Migration {
        version: 5,
        name: "user_evolution",
        sql: include_str!("sql/005_user_evolution.sql"),
    },
    Migration {
        version: 6,
        name: "cdc_cursor_cluster",
        sql: include_str!("sql/006_cdc_cursor_cluster.sql"),
    },
    Migration {
        version: 7,
        name: "monotonic_source_time",
        sql: include_str!("sql/007_monotonic_source_time.sql"),
    },
    Migration {
        version: 8,
        name: "cdc_quarantine",
        sql: include_str!("sql/008_cdc_quarantine.sql"),
    },
    Migration {
        version: 9,
        name: "snapshot",
        sql: include_str!("sql/009_snapshot.sql"),
    },
    Migration {
        version: 10,
        name: "change_before_image",
        sql: include_str!("sql/010_change_before_image.sql"),
    },
    Migration {
        version: 11,
        name: "change_notify",
        sql: include_str!("sql/011_change_notify.sql"),
    },
    Migration {
        version: 12,
        name: "dead_letter_replays",
        sql: include_str!("sql/012_dead_letter_replays.sql"),
    },
];

/// How many migrations this build knows.
pub fn migration_count() -> usize {
    MIGRATIONS.len()
}

/// The versions of the migrations this build knows, oldest first.
pub fn migration_versions() -> Vec<i32> {
    MIGRATIONS
        .iter()
        .map(|migration| migration.version)
        .collect()
}

/// Serializes migrating processes on one database (an arbitrary constant, unique to this use:
/// "userstr" in ASCII). Held for the migrating transaction only, so a crash releases it.
const MIGRATION_LOCK: i64 = 0x0075_7365_7273_7472;

/// Applies the migrations this database has not seen yet, in order, in one transaction, and
/// returns the versions it applied (none when the schema is current).
///
/// Safe to run from several processes at once: they queue on an advisory lock and each one
/// after the first finds nothing left to do.
pub async fn migrate(client: &mut Client) -> Result<Vec<i32>, StoreError> {
    let transaction = client
        .transaction()
        .await
        .map_err(StoreError::postgres("begin the migration transaction"))?;
    // The lock comes first: even `CREATE TABLE IF NOT EXISTS` fails when two sessions race.
    transaction
        .execute("SELECT pg_advisory_xact_lock($1)", &[&MIGRATION_LOCK])
        .await
        .map_err(StoreError::postgres("take the migration lock"))?;
    transaction
        .batch_execute(
            "CREATE TABLE IF NOT EXISTS store_migrations (
                 version    integer PRIMARY KEY,
                 name       text NOT NULL,
                 applied_at timestamptz NOT NULL DEFAULT now()
             )",
        )
        .await
        .map_err(StoreError::postgres("create the migrations table"))?;
    let applied: Vec<i32> = transaction
        .query("SELECT version FROM store_migrations", &[])
        .await
        .map_err(StoreError::postgres("read the applied migrations"))?
        .iter()
        .map(|row| row.try_get(0))
        .collect::<Result<_, _>>()
        .map_err(StoreError::postgres("read the applied migrations"))?;

    let mut newly_applied = Vec::new();
    for migration in MIGRATIONS {
        if applied.contains(&migration.version) {
            continue;
        }
        let failed = |source| StoreError::Migration {
            version: migration.version,
            name: migration.name,
            source,
        };
        transaction
            .batch_execute(migration.sql)
            .await
            .map_err(failed)?;
        transaction
            .execute(
                "INSERT INTO store_migrations (version, name) VALUES ($1, $2)",
                &[&migration.version, &migration.name],
            )
            .await
            .map_err(failed)?;
        tracing::info!(
            version = migration.version,
            name = migration.name,
            "applied migration"
        );
        newly_applied.push(migration.version);
    }
    transaction
        .commit()
        .await
        .map_err(StoreError::postgres("commit the migrations"))?;
    Ok(newly_applied)
}

#[cfg(test)]
mod tests {
    use super::MIGRATIONS;

    #[test]
    fn versions_are_consecutive_from_one() {
        for (index, migration) in MIGRATIONS.iter().enumerate() {
            assert_eq!(migration.version as usize, index + 1, "{}", migration.name);
        }
    }
}
