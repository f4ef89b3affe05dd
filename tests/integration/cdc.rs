//! `cdc` on the real local stack: woken by commits (LISTEN/NOTIFY) rather than by its poll
//! interval, a listener that loses its connection listens again, and batches read while earlier
//! ones are in flight keep their order and the watermark rule through a crash.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use anyhow::Context;
use userstream::store;

use crate::harness::{self, check, sample_user, Settings, TestPipeline};

const DEADLINE: Duration = Duration::from_secs(90);

/// Far longer than a wake-up may take: a change that arrives within [`WAKE_DEADLINE`] was not
/// found by the interval.
const POLL_INTERVAL: Duration = Duration::from_secs(600);

/// How soon a committed change must be on the topic once `cdc` is woken. (Generous: on a busy
/// machine reading the topic back takes a while, and the cluster-wide xmin may be held back for a
/// moment by another test's open transaction.)
const WAKE_DEADLINE: Duration = Duration::from_secs(30);

/// Starts `cdc` with the long [`POLL_INTERVAL`].
fn start_cdc_polling_rarely(pipeline: &mut TestPipeline) {
    let mut config = pipeline.cdc_config();
    config.options.poll_interval = POLL_INTERVAL;
    pipeline.start_cdc_with(config);
}

/// The backend of `cdc`'s listener once it is listening in the test's database (another than
/// `not`, a backend that was terminated).
async fn listener_backend(pipeline: &TestPipeline, not: Option<i32>) -> anyhow::Result<i32> {
    pipeline
        .eventually("cdc listens for changes", DEADLINE, || async {
            let row = pipeline
                .pg
                .query_opt(
                    "SELECT pid FROM pg_stat_activity \
                     WHERE datname = $1 AND application_name = $2 \
                       AND query = 'LISTEN user_changes' AND pid <> $3",
                    &[
                        &pipeline.database.name,
                        &userstream::cdc::LISTENER_APPLICATION_NAME,
                        &not.unwrap_or(0),
                    ],
                )
                .await?;
            Ok(row.map(|row| row.try_get::<_, i32>(0)).transpose()?)
        })
        .await
}

/// Waits until `cdc` has read the change log once (its cursor is registered by the first read).
async fn wait_for_first_read(pipeline: &TestPipeline) -> anyhow::Result<()> {
    pipeline
        .eventually("cdc has read the change log", DEADLINE, || async {
            let row = pipeline
                .pg
                .query_opt(
                    "SELECT 1 FROM cdc_cursors WHERE consumer = $1",
                    &[&pipeline.cdc_name],
                )
                .await?;
            Ok(row.map(|_| ()))
        })
        .await
}

async fn wait_for_one_message(pipeline: &TestPipeline, what: &str) -> anyhow::Result<()> {
    pipeline
        .eventually(what, WAKE_DEADLINE, || async {
            Ok((pipeline.topic_len().await? == 1).then_some(()))
        })
        .await
}

/// With a poll interval of a minute, a committed change is on the topic within seconds: the
/// commit's notification woke `cdc`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_commit_wakes_cdc_long_before_its_poll_interval() -> anyhow::Result<()> {
    let mut pipeline = TestPipeline::new("cdc_wake").await?;
    start_cdc_polling_rarely(&mut pipeline);
    listener_backend(&pipeline, None).await?;
    wait_for_first_read(&pipeline).await?;

    pipeline.upsert(&[sample_user("wake-1", "Ada")]).await?;
    wait_for_one_message(&pipeline, "the change is on the topic").await?;
    pipeline.stop_cdc().await
}

/// The listener's connection terminated by the server: `cdc` goes on, listens again, and the
/// next commit still wakes it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cdc_listens_again_after_its_listener_is_terminated() -> anyhow::Result<()> {
    let mut pipeline = TestPipeline::new("cdc_relisten").await?;
    start_cdc_polling_rarely(&mut pipeline);
    let first = listener_backend(&pipeline, None).await?;
    wait_for_first_read(&pipeline).await?;

    let terminated: bool = pipeline
        .pg
        .query_one("SELECT pg_terminate_backend($1)", &[&first])
        .await?
        .try_get(0)?;
    check(
        terminated,
        format!("the listener's backend {first} was terminated"),
    )?;
    listener_backend(&pipeline, Some(first)).await?;

    pipeline.upsert(&[sample_user("relisten-1", "Ada")]).await?;
    wait_for_one_message(&pipeline, "the change after the new LISTEN is on the topic").await?;
    pipeline.stop_cdc().await
}

/// Many small batches in flight at once (the producer lingers, so acknowledgements come late),
/// then a crash mid-stream: the stored position covers only changes that are on the topic, what
/// was produced came in (xid, seq) order, and after the restart every change is on the topic.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn batches_in_flight_keep_order_and_a_crash_loses_nothing() -> anyhow::Result<()> {
    let mut pipeline = TestPipeline::with_settings(
        "cdc_window",
        Settings {
            // One partition: the topic's order is the order `cdc` produced in.
            partitions: 1,
            cdc_batch_size: 10,
            ..Settings::default()
        },
    )
    .await?;
    let ids: Vec<String> = (0..3000).map(|n| format!("w-{n:05}")).collect();
    for page in ids.chunks(100) {
        let users: Vec<_> = page.iter().map(|id| sample_user(id, "Ada")).collect();
        pipeline.upsert(&users).await?;
    }
    // One large transaction too, which batches end inside of.
    let renamed: Vec<&String> = ids.iter().step_by(3).collect();
    pipeline
        .pg
        .execute(
            "UPDATE users SET first_name = 'renamed ' || id WHERE id = ANY($1)",
            &[&renamed],
        )
        .await?;
    let logged = logged_changes(&pipeline).await?;

    let mut config = pipeline.cdc_config();
    config.options.max_in_flight_batches = 16;
    config
        .kafka
        .librdkafka_options
        .push(("linger.ms".to_owned(), "100".to_owned()));
    pipeline.start_cdc_with(config.clone());
    pipeline
        .eventually("cdc has committed a batch", DEADLINE, || async {
            let position = store::load_position(&pipeline.pg, &pipeline.cdc_name).await?;
            Ok(position.last.map(|_| ()))
        })
        .await?;
    pipeline.crash_cdc().await?;

    let stored = store::load_position(&pipeline.pg, &pipeline.cdc_name).await?;
    let produced = on_topic(&pipeline, &logged).await?;
    check(
        produced.len() < logged.len(),
        format!(
            "the crash came mid-stream ({} of {} changes produced)",
            produced.len(),
            logged.len()
        ),
    )?;
    let unproduced_but_passed: Vec<_> = logged
        .keys()
        .filter(|&&(xid, seq)| {
            let passed = xid < stored.watermark
                || stored
                    .last
                    .is_some_and(|last| (xid, seq) <= (last.xid, last.seq));
            passed && !produced.contains(&(xid, seq))
        })
        .take(5)
        .collect();
    check(
        unproduced_but_passed.is_empty(),
        format!(
            "the stored position {stored:?} passed changes never produced, e.g. \
             {unproduced_but_passed:?}"
        ),
    )?;
    for pair in produced.windows(2) {
        check(
            pair[0] < pair[1],
            format!("{:?} was produced before {:?}", pair[0], pair[1]),
        )?;
    }

    pipeline.start_cdc_with(config);
    pipeline
        .eventually("every change is on the topic", DEADLINE, || async {
            let produced: BTreeSet<_> = on_topic(&pipeline, &logged).await?.into_iter().collect();
            Ok((produced.len() == logged.len()).then_some(()))
        })
        .await?;
    pipeline.stop_cdc().await
}

/// Every change in the log by its (xid, seq), with what identifies its message on the topic:
/// user id, op and xid.
async fn logged_changes(
    pipeline: &TestPipeline,
) -> anyhow::Result<BTreeMap<(u64, i64), (String, String, String)>> {
    let rows = pipeline
        .pg
        .query(
            "SELECT xid::text, seq, user_id, op::text FROM user_changes",
            &[],
        )
        .await?;
    rows.iter()
        .map(|row| {
            let xid: String = row.try_get(0)?;
            let key = (xid.parse()?, row.try_get(1)?);
            Ok((key, (row.try_get(2)?, row.try_get(3)?, xid)))
        })
        .collect()
}

/// The (xid, seq) of each message on the topic, in topic order.
async fn on_topic(
    pipeline: &TestPipeline,
    logged: &BTreeMap<(u64, i64), (String, String, String)>,
) -> anyhow::Result<Vec<(u64, i64)>> {
    let by_message: BTreeMap<&(String, String, String), (u64, i64)> = logged
        .iter()
        .map(|(key, message)| (message, *key))
        .collect();
    pipeline
        .topic_messages()
        .await?
        .iter()
        .map(|message| {
            let identity = (
                harness::key(message).unwrap_or_default(),
                harness::header(message, "op").unwrap_or_default(),
                harness::header(message, "source_txid").unwrap_or_default(),
            );
            by_message
                .get(&identity)
                .copied()
                .with_context(|| format!("a message that is no logged change: {identity:?}"))
        })
        .collect()
}
