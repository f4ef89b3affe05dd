//! Commit-to-readable latency under a steady offered load: small transactions of updates paced
//! by a timer; for one change of each transaction, the time from COMMIT returning to a prepared
//! SELECT of `users_by_id` seeing that transaction's `source_txid`.

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use scylla::client::session::Session;
use scylla::statement::prepared::PreparedStatement;
use tokio::sync::mpsc;
use tokio::task::JoinSet;

/// Changes per transaction; one of them is timed.
pub const CHANGES_PER_TRANSACTION: u32 = 10;
/// PostgreSQL connections the load is spread over, so one slow commit does not hold the pace.
const WRITERS: u64 = 4;
/// How often a timed change is looked up until it is visible: the resolution of the figures.
pub const POLL_INTERVAL: Duration = Duration::from_millis(20);
/// A change not visible by then counts as this late (a lower bound).
const VISIBLE_DEADLINE: Duration = Duration::from_secs(30);

pub struct LatencySettings<'a> {
    pub pg_url: &'a str,
    pub keyspace: &'a str,
    pub run_id: &'a str,
    /// Users `<run_id>-1` ..= `<run_id>-<population>` exist.
    pub population: u32,
    pub rate: u32,
    pub duration: Duration,
}

pub struct Latency {
    pub offered_cps: f64,
    pub committed_cps: f64,
    pub samples: usize,
    pub not_visible: usize,
    pub p50: Duration,
    pub p99: Duration,
    pub max: Duration,
}

struct Sample {
    user_id: String,
    txid: i64,
    committed_at: Instant,
}

/// Runs the load against a running cdc and processor and returns the figures.
pub async fn measure(
    settings: &LatencySettings<'_>,
    session: Arc<Session>,
) -> anyhow::Result<Latency> {
    let visible = session
        .prepare(include_str!("latency_visible.cql").replace("{{keyspace}}", settings.keyspace))
        .await?;
    let (sample_tx, mut sample_rx) = mpsc::unbounded_channel::<Sample>();
    let mut writers = Vec::new();
    let mut writer_tasks = JoinSet::new();
    for _ in 0..WRITERS {
        let (client, connection) =
            tokio_postgres::connect(settings.pg_url, tokio_postgres::NoTls).await?;
        tokio::spawn(connection);
        let (tick_tx, tick_rx) = mpsc::unbounded_channel::<u64>();
        writers.push(tick_tx);
        writer_tasks.spawn(write_transactions(
            client,
            tick_rx,
            sample_tx.clone(),
            settings.run_id.to_owned(),
            settings.population,
        ));
    }
    drop(sample_tx);

    // One transaction first, waited for without a clock: the stages are up and caught up.
    writers[0].send(0)?;
    let probe = sample_rx
        .recv()
        .await
        .context("the load's first transaction failed")?;
    time_visible(
        Arc::clone(&session),
        visible.clone(),
        probe,
        Duration::from_secs(120),
    )
    .await?
    .context("the pipeline did not deliver a first change within 120 s")?;

    let transactions_per_second = f64::from(settings.rate) / f64::from(CHANGES_PER_TRANSACTION);
    let transactions = (transactions_per_second * settings.duration.as_secs_f64()).round() as u64;
    let mut pace = tokio::time::interval(Duration::from_secs_f64(1.0 / transactions_per_second));
    pace.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
    let mut lookups = JoinSet::new();
    let started = Instant::now();
    for tick in 1..=transactions {
        pace.tick().await;
        writers[(tick % WRITERS) as usize].send(tick)?;
        while let Ok(sample) = sample_rx.try_recv() {
            lookups.spawn(time_visible(
                Arc::clone(&session),
                visible.clone(),
                sample,
                VISIBLE_DEADLINE,
            ));
        }
    }
    drop(writers);
    let mut committed = 0u64;
    while let Some(written) = writer_tasks.join_next().await {
        committed += written??;
    }
    let load_time = started.elapsed();
    while let Some(sample) = sample_rx.recv().await {
        lookups.spawn(time_visible(
            Arc::clone(&session),
            visible.clone(),
            sample,
            VISIBLE_DEADLINE,
        ));
    }
    // A change not visible by the deadline counts as the deadline: the percentiles it reaches
    // are lower bounds, and `not_visible` says how many there were.
    let mut latencies = Vec::new();
    let mut not_visible = 0;
    while let Some(timed) = lookups.join_next().await {
        latencies.push(timed??.unwrap_or_else(|| {
            not_visible += 1;
            VISIBLE_DEADLINE
        }));
    }
    if latencies.is_empty() {
        bail!("the latency load timed no change");
    }
    latencies.sort_unstable();
    let percentile = |q: f64| {
        latencies[((q * latencies.len() as f64).ceil() as usize).clamp(1, latencies.len()) - 1]
    };
    Ok(Latency {
        offered_cps: f64::from(settings.rate),
        // The probe transaction came before the clock started.
        committed_cps: (committed - u64::from(CHANGES_PER_TRANSACTION)) as f64
            / load_time.as_secs_f64(),
        samples: latencies.len(),
        not_visible,
        p50: percentile(0.50),
        p99: percentile(0.99),
        max: *latencies.last().expect("not empty"),
    })
}

/// Commits one transaction per tick received; returns the number of changes committed.
async fn write_transactions(
    mut client: tokio_postgres::Client,
    mut ticks: mpsc::UnboundedReceiver<u64>,
    samples: mpsc::UnboundedSender<Sample>,
    run_id: String,
    population: u32,
) -> anyhow::Result<u64> {
    let update = client.prepare(include_str!("latency_update.sql")).await?;
    let current_xid = client.prepare(include_str!("current_xid.sql")).await?;
    let mut committed = 0;
    while let Some(tick) = ticks.recv().await {
        let per = u64::from(CHANGES_PER_TRANSACTION);
        let ids: Vec<String> = (0..per)
            .map(|k| format!("{run_id}-{}", (tick * per + k) % u64::from(population) + 1))
            .collect();
        let transaction = client.transaction().await?;
        let updated = transaction
            .execute(&update, &[&format!("t{tick}"), &ids])
            .await?;
        if updated != per {
            bail!("the latency load updated {updated} of {per} users");
        }
        let txid: String = transaction.query_one(&current_xid, &[]).await?.get(0);
        transaction.commit().await?;
        let committed_at = Instant::now();
        committed += updated;
        let user_id = ids.into_iter().next().expect("a transaction has changes");
        // The receiver is gone only when the load is over.
        let _ = samples.send(Sample {
            user_id,
            txid: txid.parse()?,
            committed_at,
        });
    }
    Ok(committed)
}

/// How long after its commit the sampled change became readable; `None` past `deadline`.
async fn time_visible(
    session: Arc<Session>,
    visible: PreparedStatement,
    sample: Sample,
    deadline: Duration,
) -> anyhow::Result<Option<Duration>> {
    loop {
        // A lookup Cassandra times out under the load is asked again: only a change that stays
        // invisible past the deadline counts against the run.
        let txid = match session
            .execute_unpaged(&visible, (sample.user_id.as_str(),))
            .await
        {
            Ok(result) => result
                .into_rows_result()?
                .maybe_first_row::<(Option<i64>,)>()?
                .and_then(|(txid,)| txid),
            Err(_) => None,
        };
        let elapsed = sample.committed_at.elapsed();
        if txid.is_some_and(|seen| seen >= sample.txid) {
            return Ok(Some(elapsed));
        }
        if elapsed > deadline {
            return Ok(None);
        }
        // A change already late is looked up less often (10 % of its age), so that a backlog
        // does not turn the lookups into a load of their own on Cassandra.
        tokio::time::sleep(POLL_INTERVAL.max(elapsed / 10)).await;
    }
}
