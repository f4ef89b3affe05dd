//! `userstream snapshot` against the real stack: re-emitting every user while other sessions
//! update and delete them, a snapshot killed half-way and resumed, a lost keyspace refilled, and
//! columns added to Cassandra filled for users that did not change.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{ensure, Context};
use rand::seq::IndexedRandom;
use rand::Rng;
use tokio_util::sync::CancellationToken;
use userstream::config::{PostgresArgs, Secret};
use userstream::progress::ProgressArgs;
use userstream::snapshot::{self, SnapshotError, SnapshotOptions, SnapshotReport};
use userstream::store;

use crate::common;
use crate::harness::{self, sample_user, Settings, TestPipeline};

const DEADLINE: Duration = Duration::from_secs(90);

fn snapshot_config(
    pipeline: &TestPipeline,
    batch_size: u32,
    rate: Option<u32>,
) -> snapshot::Config {
    snapshot::Config {
        postgres: PostgresArgs {
            pg_url: Secret::new(pipeline.database.url.clone()),
        },
        options: SnapshotOptions {
            name: "default".to_owned(),
            restart: false,
            ids: Vec::new(),
            nats: Vec::new(),
            countries: Vec::new(),
            batch_size,
            rate,
        },
        progress: ProgressArgs::default(),
    }
}

fn user_id(n: usize) -> String {
    format!("snap-{n:04}")
}

/// Stores users `0..count` in pages of 50.
async fn seed_users(pipeline: &mut TestPipeline, count: usize) -> anyhow::Result<()> {
    let users: Vec<_> = (0..count)
        .map(|n| sample_user(&user_id(n), &format!("First{n}")))
        .collect();
    for page in users.chunks(50) {
        pipeline.upsert(page).await?;
    }
    Ok(())
}

/// The `r` changes in the log, per user id.
async fn snapshot_changes_per_user(
    pipeline: &TestPipeline,
) -> anyhow::Result<BTreeMap<String, i64>> {
    let rows = pipeline
        .pg
        .query(
            "SELECT user_id, count(*) FROM user_changes WHERE op = 'r' GROUP BY user_id",
            &[],
        )
        .await?;
    rows.iter()
        .map(|row| Ok((row.try_get(0)?, row.try_get(1)?)))
        .collect()
}

#[tokio::test]
async fn a_snapshot_among_concurrent_updates_and_deletes_leaves_cassandra_equal_to_postgres(
) -> anyhow::Result<()> {
    let mut pipeline = TestPipeline::new("snap_live").await?;
    seed_users(&mut pipeline, 200).await?;
    pipeline.start_cdc();
    pipeline.start_processor();

    // Another session updates (single users and pages of several, in random order) and deletes
    // users for as long as the snapshot runs.
    let snapshot_done = Arc::new(AtomicBool::new(false));
    let writer = {
        let url = Secret::new(pipeline.database.url.clone());
        let done = Arc::clone(&snapshot_done);
        tokio::spawn(async move {
            let mut pg = store::connect(&url).await?;
            let mut writes = 0_u32;
            let mut version = 0_u32;
            while !done.load(Ordering::SeqCst) && writes < 2_000 {
                version += 1;
                let roll = rand::rng().random_range(0..10);
                if roll == 0 {
                    let n = rand::rng().random_range(0..200);
                    store::delete_user(&pg, &user_id(n)).await?;
                } else {
                    let count = if roll < 5 { 1 } else { 5 };
                    let ids: Vec<usize> = (0..200).collect();
                    let page: Vec<_> = ids
                        .choose_multiple(&mut rand::rng(), count)
                        .map(|n| sample_user(&user_id(*n), &format!("V{version}x{n}")))
                        .collect();
                    store::upsert_page(&mut pg, &page).await?;
                }
                writes += 1;
            }
            anyhow::Ok(writes)
        })
    };

    // Small batches, slowed down, so that the writer's changes land between and during them.
    let report = snapshot::snapshot(
        &snapshot_config(&pipeline, 7, Some(400)),
        &CancellationToken::new(),
    )
    .await;
    snapshot_done.store(true, Ordering::SeqCst);
    let writes = writer.await??;
    let report = report?;
    ensure!(report.finished, "{report:?}");
    ensure!(writes > 10, "only {writes} writes ran beside the snapshot");
    let logged: i64 = snapshot_changes_per_user(&pipeline).await?.values().sum();
    assert_eq!(u64::try_from(logged)?, report.emitted);
    // Deleted users were skipped, the rest re-emitted once.
    ensure!(report.emitted > 100 && report.emitted <= 200, "{report:?}");

    let users = pipeline
        .wait_until_cassandra_matches_postgres(DEADLINE)
        .await?;
    ensure!(users > 0);
    pipeline.stop_processor().await?;
    pipeline.stop_cdc().await
}

/// Runs the snapshot again until the session of a killed run has let go of it.
async fn resume(config: &snapshot::Config) -> anyhow::Result<SnapshotReport> {
    common::eventually(
        "the killed snapshot's session has ended",
        DEADLINE,
        || async {
            match snapshot::snapshot(config, &CancellationToken::new()).await {
                Ok(report) => Ok(Some(report)),
                Err(SnapshotError::Running { .. }) => Ok(None),
                Err(other) => Err(other.into()),
            }
        },
    )
    .await
}

#[tokio::test]
async fn a_snapshot_killed_half_way_resumes_after_its_checkpoint_and_emits_each_user_once(
) -> anyhow::Result<()> {
    const USERS: usize = 120;
    let mut pipeline = TestPipeline::new("snap_kill").await?;
    seed_users(&mut pipeline, USERS).await?;

    // Killed (its task aborted, its connection dropped mid-transaction) after a few batches.
    let config = snapshot_config(&pipeline, 10, Some(100));
    let killed = {
        let config = config.clone();
        tokio::spawn(async move { snapshot::snapshot(&config, &CancellationToken::new()).await })
    };
    let batches = common::eventually("the snapshot has committed 4 batches", DEADLINE, || async {
        let batches: i64 = pipeline
            .pg
            .query_one("SELECT batches FROM snapshots WHERE name = 'default'", &[])
            .await
            .and_then(|row| row.try_get(0))
            .unwrap_or(0);
        Ok((batches >= 4).then_some(batches))
    })
    .await?;
    killed.abort();
    ensure!(
        killed.await.is_err_and(|error| error.is_cancelled()),
        "the snapshot ended before it was killed"
    );

    // What the killed run committed: its checkpoint and exactly the users up to it.
    let row = pipeline
        .pg
        .query_one(
            "SELECT last_user_id, emitted, finished_at IS NULL FROM snapshots WHERE name = 'default'",
            &[],
        )
        .await?;
    let (checkpoint, emitted, unfinished): (String, i64, bool) =
        (row.try_get(0)?, row.try_get(1)?, row.try_get(2)?);
    ensure!(unfinished, "the snapshot finished before it was killed");
    ensure!(batches >= 4 && emitted >= 40 && emitted < USERS as i64);
    let logged = snapshot_changes_per_user(&pipeline).await?;
    let expected_before: Vec<String> = (0..USERS)
        .map(user_id)
        .filter(|id| *id <= checkpoint)
        .collect();
    assert_eq!(
        logged.keys().cloned().collect::<Vec<_>>(),
        expected_before,
        "the killed run logged exactly the users up to its checkpoint"
    );
    assert_eq!(logged.values().sum::<i64>(), emitted);

    let report = resume(&config).await?;
    ensure!(report.finished, "{report:?}");
    assert_eq!(report.emitted_in_all, USERS as u64);
    assert_eq!(report.emitted, (USERS as i64 - emitted) as u64);
    let logged = snapshot_changes_per_user(&pipeline).await?;
    assert_eq!(logged.len(), USERS);
    ensure!(
        logged.values().all(|count| *count == 1),
        "a user was re-emitted twice: {logged:?}"
    );

    // Run once more: it had finished, so nothing is emitted.
    let again = snapshot::snapshot(&config, &CancellationToken::new()).await?;
    ensure!(again.already_finished && again.emitted == 0, "{again:?}");

    // Downstream, each user's `r` reaches the topic once.
    pipeline.start_cdc();
    let messages = pipeline
        .eventually("every change is on the topic", DEADLINE, || async {
            let messages = pipeline.topic_messages().await?;
            Ok((messages.len() >= 2 * USERS).then_some(messages))
        })
        .await?;
    let mut snapshot_keys: Vec<String> = messages
        .iter()
        .filter(|message| harness::header(message, "op").as_deref() == Some("r"))
        .filter_map(harness::key)
        .collect();
    snapshot_keys.sort();
    assert_eq!(snapshot_keys, (0..USERS).map(user_id).collect::<Vec<_>>());
    pipeline.stop_cdc().await
}

#[tokio::test]
async fn a_snapshot_refills_a_lost_keyspace() -> anyhow::Result<()> {
    let mut pipeline = TestPipeline::new("snap_rebuild").await?;
    seed_users(&mut pipeline, 60).await?;
    for n in [3, 17, 42] {
        store::delete_user(&pipeline.pg, &user_id(n)).await?;
    }
    pipeline.start_cdc();
    pipeline.start_processor();
    pipeline
        .wait_until_cassandra_matches_postgres(DEADLINE)
        .await?;

    // The keyspace is lost, and created again empty, as `migrate` creates it.
    pipeline.stop_processor().await?;
    pipeline
        .cassandra
        .query_unpaged(format!("DROP KEYSPACE {}", pipeline.keyspace), ())
        .await?;
    migrate(&pipeline).await?;
    assert_eq!(pipeline.count("users_by_id").await?, 0);

    pipeline.start_processor();
    let report = snapshot::snapshot(
        &snapshot_config(&pipeline, 25, None),
        &CancellationToken::new(),
    )
    .await?;
    assert_eq!(report.emitted, 57);
    let users = pipeline
        .wait_until_cassandra_matches_postgres(DEADLINE)
        .await?;
    assert_eq!(users, 57);
    pipeline.stop_processor().await?;
    pipeline.stop_cdc().await
}

async fn migrate(pipeline: &TestPipeline) -> anyhow::Result<()> {
    userstream::migrate::run(
        userstream::migrate::Config {
            postgres: pipeline.cdc_config().postgres,
            cassandra: pipeline.processor_config().cassandra,
        },
        CancellationToken::new(),
    )
    .await
    .context("migrate")
}

#[tokio::test]
async fn a_snapshot_fills_columns_added_to_cassandra_for_users_that_did_not_change(
) -> anyhow::Result<()> {
    // The keyspace as the release before cql/003 left it, while PostgreSQL has the columns.
    let mut pipeline = TestPipeline::with_settings(
        "snap_fill",
        Settings {
            cql_migrations_up_to: Some(2),
            ..Settings::default()
        },
    )
    .await?;
    let users: Vec<_> = (0..30)
        .map(|n| {
            let (mut user, raw) = sample_user(&user_id(n), &format!("First{n}"));
            user.age = Some(20 + n as i64);
            user.source_api_version = Some("1.4".to_owned());
            user.id_source = Some("login_uuid".to_owned());
            (user, raw)
        })
        .collect();
    pipeline.upsert(&users).await?;
    pipeline.start_cdc();
    pipeline.start_processor();
    pipeline
        .eventually("every user is in users_by_id", DEADLINE, || async {
            Ok((pipeline.count("users_by_id").await? == 30).then_some(()))
        })
        .await?;

    // The columns arrive; the users have not changed, so nothing fills them yet.
    migrate(&pipeline).await?;
    pipeline.stop_processor().await?;
    pipeline.start_processor();
    let row = pipeline
        .user_by_id(&user_id(7))
        .await?
        .context("user 7 in users_by_id")?;
    assert_eq!(row.user.age, None);

    let report = snapshot::snapshot(
        &snapshot_config(&pipeline, 10, None),
        &CancellationToken::new(),
    )
    .await?;
    assert_eq!(report.emitted, 30);
    pipeline
        .wait_until_cassandra_matches_postgres(DEADLINE)
        .await?;
    let row = pipeline
        .user_by_id(&user_id(7))
        .await?
        .context("user 7 in users_by_id")?;
    assert_eq!(row.user.age, Some(27));
    assert_eq!(row.user.source_api_version.as_deref(), Some("1.4"));
    pipeline.stop_processor().await?;
    pipeline.stop_cdc().await
}

#[tokio::test]
async fn a_snapshot_re_emits_only_the_users_its_filters_select_and_refuses_other_filters_on_resume(
) -> anyhow::Result<()> {
    let mut pipeline = TestPipeline::new("snap_filter").await?;
    let mut users: Vec<_> = (0..10)
        .map(|n| sample_user(&user_id(n), &format!("First{n}")))
        .collect();
    for (user, _) in users.iter_mut().take(4) {
        user.nat = Some("GB".to_owned());
        user.country = Some("United Kingdom".to_owned());
    }
    pipeline.upsert(&users).await?;

    let mut config = snapshot_config(&pipeline, 2, None);
    config.options.nats = vec!["gb".to_owned()];
    config.options.ids = vec![user_id(1), user_id(2), user_id(8)];
    let report = snapshot::snapshot(&config, &CancellationToken::new()).await?;
    assert_eq!(report.emitted, 2);
    let logged = snapshot_changes_per_user(&pipeline).await?;
    assert_eq!(
        logged.keys().cloned().collect::<Vec<_>>(),
        [user_id(1), user_id(2)]
    );

    let mut other = snapshot_config(&pipeline, 2, None);
    other.options.countries = vec!["united kingdom".to_owned()];
    match snapshot::snapshot(&other, &CancellationToken::new()).await {
        Err(SnapshotError::FilterChanged { .. }) => {}
        outcome => anyhow::bail!("a resume with other filters was not refused: {outcome:?}"),
    }
    other.options.restart = true;
    let report = snapshot::snapshot(&other, &CancellationToken::new()).await?;
    assert_eq!(report.emitted, 4);
    Ok(())
}

#[tokio::test]
async fn a_snapshot_image_wins_over_a_null_written_at_the_users_last_change_time(
) -> anyhow::Result<()> {
    let mut pipeline = TestPipeline::new("snap_tie").await?;
    let (mut user, raw) = sample_user(&user_id(1), "Tia");
    user.age = Some(33);
    pipeline.upsert(&[(user, raw)]).await?;
    pipeline.start_cdc();
    pipeline.start_processor();
    pipeline
        .wait_until_cassandra_matches_postgres(DEADLINE)
        .await?;
    let written = pipeline
        .user_by_id(&user_id(1))
        .await?
        .context("the user in users_by_id")?;
    let last_change_ts = written.source_ts_us.context("source_ts_us")?;

    // What a processor that could not fill the column (an older release, a column it did not
    // know) left behind: a null written at the user's last change time.
    pipeline
        .cassandra
        .query_unpaged(
            format!(
                "UPDATE {}.users_by_id USING TIMESTAMP ? SET age = null WHERE user_id = ?",
                pipeline.keyspace
            ),
            (last_change_ts, user_id(1)),
        )
        .await?;
    let nulled = pipeline
        .user_by_id(&user_id(1))
        .await?
        .context("the user")?;
    assert_eq!(nulled.user.age, None);

    // Cassandra breaks a timestamp tie in favour of the null: the image must be newer.
    let report = snapshot::snapshot(
        &snapshot_config(&pipeline, 10, None),
        &CancellationToken::new(),
    )
    .await?;
    assert_eq!(report.emitted, 1);
    pipeline
        .wait_until_cassandra_matches_postgres(DEADLINE)
        .await?;
    let filled = pipeline
        .user_by_id(&user_id(1))
        .await?
        .context("the user")?;
    assert_eq!(filled.user.age, Some(33));
    ensure!(filled.source_ts_us > Some(last_change_ts), "{filled:?}");
    pipeline.stop_processor().await?;
    pipeline.stop_cdc().await
}

#[tokio::test]
async fn a_snapshot_waits_for_open_writers_logs_their_version_after_them_and_skips_a_user_they_deleted(
) -> anyhow::Result<()> {
    let mut pipeline = TestPipeline::new("snap_lock").await?;
    seed_users(&mut pipeline, 2).await?;
    let (kept, deleted) = (user_id(0), user_id(1));

    // A writer's transaction, open while the snapshot starts: it updates one user and deletes
    // the other.
    let mut writer = store::connect(&Secret::new(pipeline.database.url.clone())).await?;
    let open = writer.transaction().await?;
    open.execute(
        "UPDATE users SET first_name = 'Later' WHERE id = $1",
        &[&kept],
    )
    .await?;
    open.execute("DELETE FROM users WHERE id = $1", &[&deleted])
        .await?;

    let config = snapshot_config(&pipeline, 10, None);
    let running =
        tokio::spawn(async move { snapshot::snapshot(&config, &CancellationToken::new()).await });
    common::eventually(
        "the snapshot waits for the writer's row locks",
        DEADLINE,
        || async {
            let waiting: i64 = pipeline
                .pg
                .query_one(
                    "SELECT count(*) FROM pg_locks l JOIN pg_stat_activity a USING (pid) \
                     WHERE NOT l.granted AND a.datname = current_database() \
                     AND a.query LIKE '%user_change_image%'",
                    &[],
                )
                .await?
                .try_get(0)?;
            Ok((waiting > 0).then_some(()))
        },
    )
    .await?;
    ensure!(!running.is_finished(), "the snapshot did not wait");
    open.commit().await?;

    let report = tokio::time::timeout(DEADLINE, running).await???;
    ensure!(report.finished, "{report:?}");
    assert_eq!(report.emitted, 1, "the deleted user is skipped");
    let rows = pipeline
        .pg
        .query(
            "SELECT op, user_id, after->>'first_name', source_ts FROM user_changes \
             WHERE op IN ('u', 'd', 'r') ORDER BY source_ts",
            &[],
        )
        .await?;
    let changes: Vec<(String, String, Option<String>)> = rows
        .iter()
        .map(|row| Ok((row.try_get(0)?, row.try_get(1)?, row.try_get(2)?)))
        .collect::<anyhow::Result<_>>()?;
    // The writer's changes come first; the image carries the writer's version, after it.
    let image = changes
        .iter()
        .position(|(op, _, _)| op == "r")
        .context("no r change")?;
    assert_eq!(
        changes[image],
        ("r".to_owned(), kept.clone(), Some("Later".to_owned()))
    );
    let update = changes
        .iter()
        .position(|(op, id, _)| op == "u" && *id == kept)
        .context("no u change")?;
    ensure!(
        update < image,
        "the image is not after the update: {changes:?}"
    );
    ensure!(
        !changes
            .iter()
            .any(|(op, id, _)| op == "r" && *id == deleted),
        "the deleted user was re-emitted: {changes:?}"
    );
    Ok(())
}
