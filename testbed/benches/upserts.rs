//! Prepared upserts per second against an in-process testbed over loopback, 256 in flight,
//! with the scylla driver's default settings — the processor's write pattern (prepared
//! INSERT ... USING TIMESTAMP ?). Prints a figure for the record, not a target.
//!
//! `cargo bench -p userstream-testbed --bench upserts`; `USERSTREAM_BENCH_RECORDS` sets the
//! number of upserts (default 200000).

use std::time::Instant;

use anyhow::Context as _;
use futures::stream::{FuturesUnordered, StreamExt};
use scylla::client::session_builder::SessionBuilder;
use userstream_testbed::Testbed;

const IN_FLIGHT: usize = 256;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let records: u64 = match std::env::var("USERSTREAM_BENCH_RECORDS") {
        Ok(v) => v
            .parse()
            .context("USERSTREAM_BENCH_RECORDS must be a number")?,
        Err(_) => 200_000,
    };
    let testbed = Testbed::start("127.0.0.1:0".parse()?)?;
    let session = SessionBuilder::new()
        .known_node(testbed.addr().to_string())
        .build()
        .await?;
    session
        .query_unpaged(
            "CREATE KEYSPACE bench WITH replication = {'class': 'SimpleStrategy', 'replication_factor': 1}",
            (),
        )
        .await?;
    session
        .query_unpaged(
            "CREATE TABLE bench.users (id bigint PRIMARY KEY, name text, email text, country text, registered timestamp)",
            (),
        )
        .await?;
    let upsert = session
        .prepare(
            "INSERT INTO bench.users (id, name, email, country, registered) VALUES (?, ?, ?, ?, ?) USING TIMESTAMP ?",
        )
        .await?;

    let started = Instant::now();
    let mut in_flight = FuturesUnordered::new();
    let mut next = 0u64;
    let mut done = 0u64;
    while done < records {
        while in_flight.len() < IN_FLIGHT && next < records {
            let id = next as i64;
            let values = (
                id % (records as i64 / 2).max(1),
                format!("User {id}"),
                format!("user{id}@example.com"),
                "NL",
                scylla::value::CqlTimestamp(1_700_000_000_000 + id),
                1_700_000_000_000_000 + id,
            );
            let session = &session;
            let upsert = &upsert;
            in_flight.push(async move { session.execute_unpaged(upsert, values).await });
            next += 1;
        }
        if let Some(result) = in_flight.next().await {
            result.context("upsert failed")?;
            done += 1;
        }
    }
    let elapsed = started.elapsed();
    let rate = records as f64 / elapsed.as_secs_f64();
    println!(
        "prepared upserts: {records} records in {:.2} s with {IN_FLIGHT} in flight = {rate:.0} records/s",
        elapsed.as_secs_f64()
    );
    let count: (i64,) = session
        .query_unpaged("SELECT COUNT(*) FROM bench.users", ())
        .await?
        .into_rows_result()?
        .first_row()?;
    anyhow::ensure!(
        count.0 == (records / 2).max(1) as i64,
        "expected {} rows, counted {}",
        (records / 2).max(1),
        count.0
    );
    Ok(())
}
