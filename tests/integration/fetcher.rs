//! The fetcher against the fixture server's misbehaviours (`/_fault/{scenario}/{spec}/api/`):
//! every transient fault is retried until the page arrives, and a page that never arrives is
//! reported and leaves nothing half-written.

use std::time::Duration;

use anyhow::{ensure, Context};
use tokio_util::sync::CancellationToken;
use userstream::config::Secret;
use userstream::fetcher::{FetchError, FetchOptions, Fetcher};
use userstream::retry::BackoffPolicy;
use userstream::store;

use crate::common::{self, TestDatabase};

const PAGE_SIZE: u32 = 25;

fn options(base_url: String, count: u32, request_timeout: Duration) -> FetchOptions {
    FetchOptions {
        base_url,
        count,
        seed: None,
        nat: None,
        every: None,
        page_size: PAGE_SIZE,
        request_timeout,
        max_attempts: 4,
    }
}

/// The fixture server seen through a fault scenario of this test's own.
fn faulty_url(spec: &str) -> String {
    format!(
        "{}/_fault/{}/{spec}",
        common::randomuser_url(),
        common::unique_name("fetch")
    )
}

fn fetcher(options: &FetchOptions) -> anyhow::Result<Fetcher> {
    Ok(Fetcher::new(options)?.with_backoff(BackoffPolicy {
        initial: Duration::from_millis(10),
        max: Duration::from_millis(50),
    }))
}

async fn database() -> anyhow::Result<(TestDatabase, tokio_postgres::Client)> {
    let database = TestDatabase::create("it_fetch").await?;
    let mut client = store::connect(&Secret::new(database.url.clone())).await?;
    store::migrate(&mut client).await?;
    Ok((database, client))
}

async fn stored_users(client: &tokio_postgres::Client) -> anyhow::Result<i64> {
    Ok(client
        .query_one("SELECT count(*) FROM users", &[])
        .await?
        .get(0))
}

#[tokio::test]
async fn every_transient_fault_is_retried_until_the_page_arrives() -> anyhow::Result<()> {
    for spec in [
        "status-500-x2",
        "status-503-x2",
        "html-x2",
        "truncated-x2",
        "error-body-x2",
        "close-x2",
    ] {
        let (_database, mut client) = database().await?;
        let options = options(faulty_url(spec), 2 * PAGE_SIZE, Duration::from_secs(10));
        let report = fetcher(&options)?
            .fetch(&mut client, "fault-seed", 1, &CancellationToken::new())
            .await
            .with_context(|| format!("fetching through {spec}"))?;
        ensure!(
            report.pages == 2 && report.inserted == u64::from(2 * PAGE_SIZE),
            "{spec}: {report:?}"
        );
        ensure!(
            stored_users(&client).await? == i64::from(2 * PAGE_SIZE),
            "{spec}: every user of both pages is stored"
        );
    }
    Ok(())
}

#[tokio::test]
async fn a_slow_response_times_out_and_is_retried() -> anyhow::Result<()> {
    let (_database, mut client) = database().await?;
    let options = options(
        faulty_url("slow-3s-x1"),
        PAGE_SIZE,
        Duration::from_millis(500),
    );
    let report = fetcher(&options)?
        .fetch(&mut client, "slow-seed", 1, &CancellationToken::new())
        .await?;
    ensure!(report.inserted == u64::from(PAGE_SIZE), "{report:?}");
    Ok(())
}

#[tokio::test]
async fn a_page_that_never_arrives_is_reported_and_nothing_is_half_written() -> anyhow::Result<()> {
    for spec in ["status-503", "truncated", "html"] {
        let (_database, mut client) = database().await?;
        let options = options(faulty_url(spec), PAGE_SIZE, Duration::from_secs(10));
        let result = fetcher(&options)?
            .fetch(&mut client, "broken-seed", 1, &CancellationToken::new())
            .await;
        match result {
            Err(FetchError::GaveUp { attempts, .. }) => {
                ensure!(
                    attempts == 4,
                    "{spec}: gave up after {attempts} attempts, not 4"
                )
            }
            other => anyhow::bail!("{spec}: expected the fetcher to give up, got {other:?}"),
        }
        ensure!(
            stored_users(&client).await? == 0,
            "{spec}: nothing of the broken page is stored"
        );
    }
    Ok(())
}

#[tokio::test]
async fn fetching_the_same_users_again_changes_nothing() -> anyhow::Result<()> {
    let (_database, mut client) = database().await?;
    let options = options(
        common::randomuser_url(),
        2 * PAGE_SIZE,
        Duration::from_secs(10),
    );
    let fetcher = fetcher(&options)?;
    let first = fetcher
        .fetch(&mut client, "same-seed", 1, &CancellationToken::new())
        .await?;
    let changes_after_first: i64 = client
        .query_one("SELECT count(*) FROM user_changes", &[])
        .await?
        .get(0);
    let second = fetcher
        .fetch(&mut client, "same-seed", 1, &CancellationToken::new())
        .await?;
    let changes_after_second: i64 = client
        .query_one("SELECT count(*) FROM user_changes", &[])
        .await?
        .get(0);
    ensure!(first.inserted == u64::from(2 * PAGE_SIZE), "{first:?}");
    ensure!(
        second.unchanged == u64::from(2 * PAGE_SIZE) && second.inserted + second.updated == 0,
        "{second:?}"
    );
    ensure!(
        changes_after_second == changes_after_first,
        "re-fetching unchanged users logged {} changes",
        changes_after_second - changes_after_first
    );
    Ok(())
}
