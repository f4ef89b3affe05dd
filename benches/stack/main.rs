//! The stack benchmark (issue 12): the release `userstream` stages against the real local stack,
//! each measured against its peer or limit in the same run. `scripts/bench` builds, fetches the
//! peer and runs this; see `docs/performance.md` for what each figure means.
//!
//! ```text
//! cargo bench --bench stack -- [--quick] --json STACK.json --debezium-lib DIR
//!     [--codec-json CODEC.json --report REPORT.json] [--userstream BIN] [--java JAVA]
//!     [--state DIR]
//!     [--changes N] [--latency-rate N] [--latency-seconds S]
//! ```
//!
//! * cdc: N users inserted in one transaction. Debezium (streaming from its slot before the
//!   commit) is timed from the commit until its topic holds N messages, and stopped; then
//!   `userstream cdc` is started and timed until ours holds N.
//! * process: the N messages decoded and normalized up front, then written blind at the
//!   processor's concurrency into a keyspace of their own (the limit); then `userstream
//!   process` is started and timed until its group has committed all N.
//! * latency: a fresh cdc and processor under a steady load of small update transactions.
//! * memory: each stage's VmHWM, read before it is stopped.
//!
//! The run's database, keyspaces, topics, group, registry subject and replication slot are its
//! own (`bench<MMDDHHMM><hex>`) and dropped at the end. Exit status 1 when a part did not run
//! or the report lacks a figure; the figures themselves never fail the run.

mod debezium;
mod latency;
mod limit;
mod report;
mod stage;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use clap::Parser;
use rdkafka::admin::{AdminClient, AdminOptions};
use rdkafka::client::DefaultClientContext;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::{ClientConfig, Offset, TopicPartitionList};
use scylla::client::session::Session;
use scylla::client::session_builder::SessionBuilder;
use serde_json::{json, Value};
use tokio::process::Command;

use crate::debezium::{Peer, PeerSettings};
use crate::latency::LatencySettings;
use crate::stage::Stage;

/// How long a stage may take to move the run's changes before the run gives up.
const PART_DEADLINE: Duration = Duration::from_secs(900);
/// How often progress (end offsets, committed offsets) is looked at: the resolution of the rates.
const PROGRESS_INTERVAL: Duration = Duration::from_millis(50);

struct Options {
    quick: bool,
    json: PathBuf,
    codec_json: Option<PathBuf>,
    report: Option<PathBuf>,
    userstream: PathBuf,
    debezium_lib: PathBuf,
    java: PathBuf,
    state: PathBuf,
    changes: u32,
    latency_rate: u32,
    latency_seconds: u64,
}

impl Options {
    fn parse() -> anyhow::Result<Self> {
        let mut args = std::env::args().skip(1);
        let mut quick = false;
        let mut given = std::collections::HashMap::new();
        while let Some(arg) = args.next() {
            match arg.as_str() {
                "--quick" => quick = true,
                // cargo bench passes it to every bench target.
                "--bench" => {}
                "--json" | "--codec-json" | "--report" | "--userstream" | "--debezium-lib"
                | "--java" | "--state" | "--changes" | "--latency-rate" | "--latency-seconds" => {
                    let value = args
                        .next()
                        .with_context(|| format!("{arg} needs a value"))?;
                    given.insert(arg, value);
                }
                other => bail!("unknown argument {other:?} (see benches/stack.rs)"),
            }
        }
        let path = |name: &str| given.get(name).map(PathBuf::from);
        let number = |name: &str, default: u64| -> anyhow::Result<u64> {
            given.get(name).map_or(Ok(default), |value| {
                value.parse().with_context(|| format!("{name} {value:?}"))
            })
        };
        let (changes, rate, seconds) = if quick {
            (2_000, 200, 5)
        } else {
            (100_000, 1_000, 60)
        };
        Ok(Self {
            quick,
            json: path("--json").context("--json PATH is required")?,
            codec_json: path("--codec-json"),
            report: path("--report"),
            // Cargo builds the package's binaries for a bench, with the bench's (release)
            // settings.
            userstream: path("--userstream")
                .unwrap_or_else(|| PathBuf::from(env!("CARGO_BIN_EXE_userstream"))),
            debezium_lib: path("--debezium-lib").context("--debezium-lib DIR is required")?,
            java: path("--java")
                .unwrap_or_else(|| PathBuf::from("/usr/lib/jvm/java-17-openjdk-amd64/bin/java")),
            state: path("--state").unwrap_or_else(std::env::temp_dir),
            changes: u32::try_from(number("--changes", changes)?)?,
            latency_rate: u32::try_from(number("--latency-rate", rate)?)?,
            latency_seconds: number("--latency-seconds", seconds)?,
        })
    }
}

/// The settings a `userstream process` started now would run with (its defaults, or the
/// `USERSTREAM_*` variables it inherits): the limit uses its concurrency, the peer its partitions.
#[derive(Parser)]
struct StageDefaults {
    #[command(flatten)]
    process: userstream::processor::ProcessOptions,
    #[command(flatten)]
    topic: userstream::config::TopicArgs,
}

/// The run's names and where the stack is.
struct Run {
    id: String,
    admin_url: String,
    pg_url: String,
    brokers: String,
    registry_url: String,
    cassandra_nodes: Vec<String>,
    keyspace: String,
    limit_keyspace: String,
    topic: String,
    group: String,
    state: PathBuf,
    userstream: PathBuf,
    partitions: i32,
    write_lanes: usize,
}

impl Run {
    fn new(options: &Options) -> anyhow::Result<Self> {
        let env = |name: &str| {
            std::env::var(name)
                .with_context(|| format!("{name} is not set (source .local-stack/env)"))
        };
        let suffix: u16 = rand::random();
        let id = format!("bench{}{suffix:04x}", chrono::Utc::now().format("%m%d%H%M"));
        let admin_url = env("USERSTREAM_PG_URL")?;
        let state = options.state.join(&id);
        std::fs::create_dir_all(&state)?;
        // A copy of its own: another build in the same target directory must not swap the
        // binary between two stages of the run.
        let userstream = state.join("userstream");
        std::fs::copy(&options.userstream, &userstream)
            .with_context(|| format!("copying {}", options.userstream.display()))?;
        let defaults = StageDefaults::parse_from(["userstream"]);
        Ok(Self {
            pg_url: with_database(&admin_url, &id),
            admin_url,
            brokers: env("USERSTREAM_KAFKA_BROKERS")?,
            registry_url: env("USERSTREAM_SCHEMA_REGISTRY_URL")?,
            cassandra_nodes: env("USERSTREAM_CASSANDRA_NODES")?
                .split(',')
                .map(str::to_owned)
                .collect(),
            keyspace: id.clone(),
            limit_keyspace: format!("{id}_limit"),
            topic: format!("userstream.{id}"),
            group: format!("{id}-processor"),
            state,
            userstream,
            partitions: defaults.topic.partitions,
            write_lanes: defaults.process.write_lanes,
            id,
        })
    }

    /// `userstream <subcommand>` on the run's database, keyspace, topic, group and cursor.
    fn command(&self, subcommand: &str, keyspace: &str) -> Command {
        let mut command = Command::new(&self.userstream);
        command
            .arg(subcommand)
            .env("USERSTREAM_PG_URL", &self.pg_url)
            .env("USERSTREAM_CASSANDRA_KEYSPACE", keyspace)
            .env("USERSTREAM_TOPIC", &self.topic)
            .env("USERSTREAM_GROUP_ID", &self.group)
            .env("USERSTREAM_CDC_NAME", format!("{}-cdc", self.id))
            .env("USERSTREAM_LOG", "info")
            .env_remove("USERSTREAM_METRICS_LISTEN");
        command
    }

    fn stage(&self, subcommand: &str) -> anyhow::Result<Stage> {
        let mut command = self.command(subcommand, &self.keyspace);
        if subcommand == "process" {
            // The group's committed offsets are the clock of the process part: commit often
            // (librdkafka's default is every 5 s).
            command.env(
                "USERSTREAM_KAFKA_CONSUMER_OPTIONS",
                "auto.commit.interval.ms=100",
            );
        }
        Stage::spawn(
            subcommand,
            command,
            &self.state.join(format!("{subcommand}.log")),
        )
    }

    async fn migrate(&self, keyspace: &str) -> anyhow::Result<()> {
        let log = self.state.join("migrate.log");
        let mut stage = Stage::spawn("migrate", self.command("migrate", keyspace), &log)?;
        if !stage.wait().await?.success() {
            bail!("userstream migrate failed; see {}", log.display());
        }
        Ok(())
    }
}

/// `url` with its database (the path) replaced by `database`.
fn with_database(url: &str, database: &str) -> String {
    let (base, query) = url
        .split_once('?')
        .map_or((url, None), |(base, query)| (base, Some(query)));
    let authority = base.find("://").map_or(0, |scheme| scheme + 3);
    let base = base[authority..]
        .find('/')
        .map_or(base, |slash| &base[..authority + slash]);
    match query {
        Some(query) => format!("{base}/{database}?{query}"),
        None => format!("{base}/{database}"),
    }
}

/// What the run created, for the clean-up.
#[derive(Default)]
struct Created {
    database: bool,
    keyspaces: Vec<String>,
    topics: Vec<String>,
    slot: Option<String>,
}

async fn pg_connect(url: &str) -> anyhow::Result<tokio_postgres::Client> {
    let (client, connection) = tokio_postgres::connect(url, tokio_postgres::NoTls)
        .await
        .with_context(|| format!("connecting to PostgreSQL at {url}"))?;
    tokio::spawn(connection);
    Ok(client)
}

/// When a count first moved and when it reached its target.
struct Progress {
    /// The first count above 0 and when it was seen.
    first: (u64, Instant),
    done: Instant,
}

impl Progress {
    /// Changes per second from the first count above 0 to the target: the stage's throughput
    /// without its start-up (for the processor, mostly the consumer group's join delay).
    fn steady_rate(&self, target: u32) -> Option<f64> {
        let (first, at) = self.first;
        let seconds = self.done.duration_since(at).as_secs_f64();
        (first < u64::from(target) && seconds > 0.0)
            .then(|| (u64::from(target) - first) as f64 / seconds)
    }
}

/// Waits until `count` reaches `target`, `stage` running all along. A failing count is asked
/// again (a topic being created answers "not leader" for a moment).
fn wait_for(
    what: &str,
    stage: &mut Stage,
    target: u64,
    mut count: impl FnMut() -> anyhow::Result<u64>,
) -> anyhow::Result<Progress> {
    let deadline = Instant::now() + PART_DEADLINE;
    let mut first = None;
    loop {
        let last = count();
        if let Ok(now) = last {
            let seen = Instant::now();
            if now > 0 && first.is_none() {
                first = Some((now, seen));
            }
            if now >= target {
                return Ok(Progress {
                    first: first.unwrap_or((now, seen)),
                    done: seen,
                });
            }
        }
        stage.ensure_running()?;
        if Instant::now() > deadline {
            let last = last.with_context(|| format!("{what}: counting failed"))?;
            bail!("{what}: {last} of {target} after {PART_DEADLINE:?}");
        }
        std::thread::sleep(PROGRESS_INTERVAL);
    }
}

/// The sum of `topic`'s end offsets (0 while it does not exist).
fn end_offsets(consumer: &BaseConsumer, topic: &str) -> anyhow::Result<u64> {
    let metadata = consumer.fetch_metadata(Some(topic), Duration::from_secs(5))?;
    let Some(partitions) = metadata
        .topics()
        .iter()
        .find(|found| found.name() == topic && found.error().is_none())
        .map(|found| found.partitions().len())
    else {
        return Ok(0);
    };
    let mut sum = 0;
    for partition in 0..partitions {
        let (_, high) =
            consumer.fetch_watermarks(topic, i32::try_from(partition)?, Duration::from_secs(5))?;
        sum += u64::try_from(high)?;
    }
    Ok(sum)
}

/// The sum of the offsets `consumer`'s group has committed on `topic`.
fn committed(consumer: &BaseConsumer, topic: &str, partitions: i32) -> anyhow::Result<u64> {
    let mut list = TopicPartitionList::new();
    for partition in 0..partitions {
        list.add_partition(topic, partition);
    }
    let offsets = consumer.committed_offsets(list, Duration::from_secs(5))?;
    Ok(offsets
        .elements()
        .iter()
        .filter_map(|element| match element.offset() {
            Offset::Offset(offset) => u64::try_from(offset).ok(),
            _ => None,
        })
        .sum())
}

fn consumer(brokers: &str, group: &str) -> anyhow::Result<BaseConsumer> {
    Ok(ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .set("group.id", group)
        .set("enable.auto.commit", "false")
        .create()?)
}

fn per_second(changes: u32, from: Instant, to: Instant) -> f64 {
    f64::from(changes) / to.duration_since(from).as_secs_f64()
}

fn megabytes(bytes: u64) -> f64 {
    bytes as f64 / 1e6
}

fn millis(duration: Duration) -> f64 {
    duration.as_secs_f64() * 1e3
}

/// The whole measurement; each part's figures go into `figures` as soon as they exist, so a
/// failing run still reports what it measured.
async fn measure(
    options: &Options,
    run: &Run,
    created: &mut Created,
    figures: &mut Value,
) -> anyhow::Result<()> {
    let n = options.changes;
    let admin = pg_connect(&run.admin_url).await?;
    admin
        .batch_execute(&format!("CREATE DATABASE \"{}\"", run.id))
        .await
        .with_context(|| format!("creating database {}", run.id))?;
    created.database = true;
    created.keyspaces = vec![run.keyspace.clone(), run.limit_keyspace.clone()];
    created.topics = vec![
        run.topic.clone(),
        userstream::kafka::dead_letter_topic(&run.topic),
    ];
    run.migrate(&run.keyspace).await?;
    run.migrate(&run.limit_keyspace).await?;
    let pg = pg_connect(&run.pg_url).await?;
    let session = Arc::new(
        SessionBuilder::new()
            .known_nodes(&run.cassandra_nodes)
            .build()
            .await?,
    );
    figures["run"]["versions"] = versions(&pg, &session).await?;
    let progress = Arc::new(consumer(&run.brokers, &format!("{}-progress", run.id))?);

    // ---- cdc: the peer first, then ours, on the same committed rows ----
    println!("bench: cdc — starting the Debezium peer");
    let pg_config: tokio_postgres::Config = run.pg_url.parse()?;
    let pg_host = match pg_config.get_hosts().first() {
        Some(tokio_postgres::config::Host::Tcp(host)) => host.clone(),
        _ => "127.0.0.1".to_owned(),
    };
    let mut peer = Peer::start(
        &PeerSettings {
            run_id: &run.id,
            java: &options.java,
            lib: &options.debezium_lib,
            state: &run.state,
            brokers: &run.brokers,
            pg_host: &pg_host,
            pg_port: pg_config.get_ports().first().copied().unwrap_or(5432),
            pg_user: pg_config.get_user().unwrap_or("postgres"),
            database: &run.id,
            partitions: run.partitions,
        },
        &pg,
    )
    .await?;
    created.slot = Some(peer.slot.clone());
    created.topics.push(peer.topic.clone());
    let peer_versions = peer.versions(&run.id).await?;
    println!("bench: cdc — inserting {n} users in one transaction");
    let inserted = pg
        .execute(
            include_str!("insert_users.sql"),
            &[&i32::try_from(n)?, &run.id],
        )
        .await?;
    let committed_at = Instant::now();
    if inserted != u64::from(n) {
        bail!("inserted {inserted} users, not {n}");
    }
    let peer_done = tokio::task::block_in_place(|| {
        wait_for("Debezium's topic", &mut peer.stage, u64::from(n), || {
            end_offsets(&progress, &peer.topic)
        })
    })?;
    let peer_done = peer_done.done;
    let peer_cps = per_second(n, committed_at, peer_done);
    let peer_rss = peer.stage.stop().await?;
    debezium::drop_slot(&pg, &peer.slot).await?;
    created.slot = None;
    println!("bench: cdc — Debezium: {peer_cps:.0} changes/s; starting userstream cdc");
    let started = Instant::now();
    let mut cdc = run.stage("cdc")?;
    let cdc_done = tokio::task::block_in_place(|| {
        wait_for("our topic", &mut cdc, u64::from(n), || {
            end_offsets(&progress, &run.topic)
        })
    })?;
    let cdc_done = cdc_done.done;
    let cdc_cps = per_second(n, started, cdc_done);
    let mut cdc_rss = cdc.stop().await?;
    println!("bench: cdc — userstream: {cdc_cps:.0} changes/s");
    figures["cdc"] = json!({
        "changes": n,
        "ours_cps": cdc_cps,
        "ours_seconds": cdc_done.duration_since(started).as_secs_f64(),
        "peer_cps": peer_cps,
        "peer_seconds": peer_done.duration_since(committed_at).as_secs_f64(),
        "ratio": cdc_cps / peer_cps,
        "peer": format!(
            "Debezium {} PostgresConnector, Kafka Connect {} standalone, pgoutput",
            peer_versions.connector, peer_versions.connect
        ),
        "converter": "JSON without schemas (org.apache.kafka.connect.json.JsonConverter, \
                      schemas.enable=false); Confluent's Avro converter is not on Maven Central",
    });
    figures["memory"]["peer_peak_rss_mb"] = json!(megabytes(peer_rss));
    figures["memory"]["cdc_peak_rss_mb"] = json!(megabytes(cdc_rss));

    // ---- process: the blind-write limit first, then ours, on the same messages ----
    println!("bench: process — decoding the {n} messages for the limit");
    let changes = Arc::new(
        limit::read_changes(
            &run.brokers,
            &run.topic,
            run.partitions,
            &run.registry_url,
            n as usize,
        )
        .await?,
    );
    // Untimed: a Cassandra started shortly before runs its write path cold, and the limit writes
    // first, so without this the processor would meet a warmer node than the limit did.
    let warm_up = changes.len() / 5;
    println!("bench: process — warming Cassandra up with the first {warm_up} changes' writes");
    limit::blind_writes(
        Arc::clone(&session),
        &run.limit_keyspace,
        Arc::clone(&changes),
        warm_up,
        run.write_lanes,
    )
    .await?;
    println!(
        "bench: process — blind writes at concurrency {}",
        run.write_lanes
    );
    let limit_time = limit::blind_writes(
        Arc::clone(&session),
        &run.limit_keyspace,
        Arc::clone(&changes),
        changes.len(),
        run.write_lanes,
    )
    .await?;
    let limit_cps = f64::from(n) / limit_time.as_secs_f64();
    println!("bench: process — limit: {limit_cps:.0} changes/s; starting userstream process");
    let group_offsets = consumer(&run.brokers, &run.group)?;
    let started = Instant::now();
    let mut process = run.stage("process")?;
    let process_done = tokio::task::block_in_place(|| {
        wait_for(
            "the processor's committed offsets",
            &mut process,
            u64::from(n),
            || committed(&group_offsets, &run.topic, run.partitions),
        )
    })?;
    let process_from_start = per_second(n, started, process_done.done);
    let process_cps = process_done.steady_rate(n).unwrap_or(process_from_start);
    let mut process_rss = process.stop().await?;
    println!("bench: process — userstream: {process_cps:.0} changes/s");
    figures["memory"]["process_peak_rss_mb"] = json!(megabytes(process_rss));
    figures["process"] = json!({
        "changes": n,
        "ours_cps": process_cps,
        "ours_cps_from_start": process_from_start,
        "ours_seconds": process_done.done.duration_since(started).as_secs_f64(),
        "ours_first_commit_seconds": process_done.first.1.duration_since(started).as_secs_f64(),
        "limit_cps": limit_cps,
        "limit_seconds": limit_time.as_secs_f64(),
        "ratio": process_cps / limit_cps,
        "concurrency": run.write_lanes,
        "limit": "per change: users_by_id INSERT (every column, cql/003 ones included) then \
                  users_by_country INSERT, prepared, USING TIMESTAMP, no reads",
    });

    // ---- latency: both stages running under a steady load ----
    println!(
        "bench: latency — {} changes/s for {} s",
        options.latency_rate, options.latency_seconds
    );
    let cdc = run.stage("cdc")?;
    let process = run.stage("process")?;
    let latency = latency::measure(
        &LatencySettings {
            pg_url: &run.pg_url,
            keyspace: &run.keyspace,
            run_id: &run.id,
            population: n,
            rate: options.latency_rate,
            duration: Duration::from_secs(options.latency_seconds),
        },
        Arc::clone(&session),
    )
    .await?;
    cdc_rss = cdc_rss.max(cdc.stop().await?);
    process_rss = process_rss.max(process.stop().await?);
    figures["latency"] = json!({
        "offered_cps": latency.offered_cps,
        "committed_cps": latency.committed_cps,
        "seconds": options.latency_seconds,
        "changes_per_transaction": latency::CHANGES_PER_TRANSACTION,
        "samples": latency.samples,
        "not_visible": latency.not_visible,
        "poll_interval_ms": millis(latency::POLL_INTERVAL),
        "p50_ms": millis(latency.p50),
        "p99_ms": millis(latency.p99),
        "max_ms": millis(latency.max),
    });
    figures["memory"]["cdc_peak_rss_mb"] = json!(megabytes(cdc_rss));
    figures["memory"]["process_peak_rss_mb"] = json!(megabytes(process_rss));
    Ok(())
}

async fn versions(pg: &tokio_postgres::Client, session: &Session) -> anyhow::Result<Value> {
    let postgres: String = pg
        .query_one(include_str!("server_version.sql"), &[])
        .await?
        .get(0);
    let (cassandra,) = session
        .query_unpaged(include_str!("release_version.cql"), ())
        .await?
        .into_rows_result()?
        .single_row::<(String,)>()?;
    let kafka_pom = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/scripts/stack/kafka/pom.xml"
    ))?;
    let kafka = kafka_pom
        .split_once("<kafka.version>")
        .and_then(|(_, rest)| rest.split_once('<'))
        .map_or("unknown", |(version, _)| version);
    let commit = std::process::Command::new("git")
        .args([
            "-C",
            env!("CARGO_MANIFEST_DIR"),
            "rev-parse",
            "--short",
            "HEAD",
        ])
        .output()
        .ok()
        .filter(|output| output.status.success())
        .map_or("unknown".to_owned(), |output| {
            String::from_utf8_lossy(&output.stdout).trim().to_owned()
        });
    Ok(json!({
        "userstream": format!("{} ({commit})", env!("CARGO_PKG_VERSION")),
        "postgresql": postgres,
        "kafka": kafka,
        "cassandra": cassandra,
    }))
}

fn machine() -> Value {
    let read = |path: &str| std::fs::read_to_string(path).unwrap_or_default();
    let cpu = read("/proc/cpuinfo")
        .lines()
        .find_map(|line| line.strip_prefix("model name"))
        .map(|rest| rest.trim_start_matches([' ', '\t', ':']).to_owned())
        .unwrap_or_default();
    let memory_gib = read("/proc/meminfo")
        .lines()
        .find_map(|line| line.strip_prefix("MemTotal:"))
        .and_then(|rest| {
            rest.trim()
                .trim_end_matches("kB")
                .trim()
                .parse::<f64>()
                .ok()
        })
        .map_or(0.0, |kib| (kib / 1024.0 / 1024.0).round());
    json!({
        "cores": std::thread::available_parallelism().map_or(0, usize::from),
        "cpu": cpu,
        "memory_gib": memory_gib,
        "kernel": read("/proc/sys/kernel/osrelease").trim(),
        "load_average_at_start": read("/proc/loadavg").split(' ').take(3).collect::<Vec<_>>().join(" "),
    })
}

/// Drops what the run created; a failure is reported and leaves only a stray name.
async fn clean_up(run: &Run, created: &Created) {
    let report = |what: String, outcome: anyhow::Result<()>| {
        if let Err(error) = outcome {
            eprintln!("bench: clean-up of {what} failed: {error:#}");
        }
    };
    if let Some(slot) = &created.slot {
        // A logical slot is dropped from its own database.
        let outcome = async {
            let pg = pg_connect(&run.pg_url).await?;
            debezium::drop_slot(&pg, slot).await
        }
        .await;
        report(format!("replication slot {slot}"), outcome);
    }
    if created.database {
        let outcome = async {
            pg_connect(&run.admin_url)
                .await?
                .batch_execute(&format!(
                    "DROP DATABASE IF EXISTS \"{}\" WITH (FORCE)",
                    run.id
                ))
                .await?;
            anyhow::Ok(())
        }
        .await;
        report(format!("database {}", run.id), outcome);
    }
    if !created.keyspaces.is_empty() {
        let outcome = async {
            let session = SessionBuilder::new()
                .known_nodes(&run.cassandra_nodes)
                .build()
                .await?;
            for keyspace in &created.keyspaces {
                session
                    .query_unpaged(format!("DROP KEYSPACE IF EXISTS {keyspace}"), ())
                    .await?;
            }
            anyhow::Ok(())
        }
        .await;
        report(format!("keyspaces {:?}", created.keyspaces), outcome);
    }
    if !created.topics.is_empty() {
        let outcome = async {
            let admin: AdminClient<DefaultClientContext> = ClientConfig::new()
                .set("bootstrap.servers", &run.brokers)
                .create()?;
            let options = AdminOptions::new().operation_timeout(Some(Duration::from_secs(30)));
            let topics: Vec<&str> = created.topics.iter().map(String::as_str).collect();
            admin.delete_topics(&topics, &options).await?;
            admin.delete_groups(&[run.group.as_str()], &options).await?;
            anyhow::Ok(())
        }
        .await;
        report(format!("topics {:?}", created.topics), outcome);
        let subject = userstream::schemas::value_subject(&run.topic);
        let outcome = async {
            let http = reqwest::Client::new();
            let url = format!(
                "{}/subjects/{subject}",
                run.registry_url.trim_end_matches('/')
            );
            http.delete(&url).send().await?;
            http.delete(format!("{url}?permanent=true")).send().await?;
            anyhow::Ok(())
        }
        .await;
        report(format!("registry subject {subject}"), outcome);
    }
}

fn write_json(path: &Path, value: &Value) -> anyhow::Result<()> {
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent)?;
    }
    std::fs::write(path, serde_json::to_string_pretty(value)? + "\n")
        .with_context(|| format!("writing {}", path.display()))
}

#[tokio::main]
async fn main() -> std::process::ExitCode {
    match bench().await {
        Ok(true) => std::process::ExitCode::SUCCESS,
        Ok(false) => std::process::ExitCode::FAILURE,
        Err(error) => {
            eprintln!("bench: {error:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

/// Runs the parts and writes the figures; `Ok(false)` when a part failed or a figure is missing.
async fn bench() -> anyhow::Result<bool> {
    let options = Options::parse()?;
    let run = Run::new(&options)?;
    println!(
        "bench: run {} ({}), logs in {}",
        run.id,
        if options.quick { "quick" } else { "full" },
        run.state.display()
    );
    let mut figures = json!({
        "run": {
            "id": run.id,
            "date": chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
            "quick": options.quick,
            "changes": options.changes,
            "machine": machine(),
        },
        "memory": {},
    });
    let mut created = Created::default();
    let measured = measure(&options, &run, &mut created, &mut figures).await;
    clean_up(&run, &created).await;
    let mut complete = true;
    if let Err(error) = &measured {
        eprintln!("bench: the run failed: {error:#}");
        figures["error"] = json!(format!("{error:#}"));
        complete = false;
    }
    write_json(&options.json, &figures)?;
    let Some(report_path) = &options.report else {
        return Ok(complete);
    };
    let mut report = figures;
    report["codec"] = match &options.codec_json {
        Some(path) => match std::fs::read_to_string(path) {
            Ok(text) => serde_json::from_str(&text)
                .with_context(|| format!("{} is not JSON", path.display()))?,
            Err(_) => Value::Null,
        },
        None => Value::Null,
    };
    let table = report::judge(&mut report);
    let missing = report::missing(&report);
    report["missing"] = json!(missing);
    write_json(report_path, &report)?;
    println!("\n{table}\n");
    println!("bench: report in {}", report_path.display());
    if !missing.is_empty() {
        eprintln!("bench: the report lacks {}", missing.join(", "));
        complete = false;
    }
    Ok(complete)
}
