//! A whole pipeline per test, on the real local stack: a PostgreSQL database, a topic (and its
//! dead-letter topic), a keyspace, a consumer group and a CDC cursor of its own, with `cdc` and
//! `process` running as in-process tasks that a test can stop and start again one at a time.
//!
//! Every read-back helper reads the real services (Cassandra through its own session, Kafka with
//! a fresh consumer of its own), so what a test asserts is what a user of the pipeline would see.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{bail, ensure, Context};
use chrono::{DateTime, NaiveDate, Utc};
use rdkafka::consumer::{Consumer, ConsumerContext, StreamConsumer};
use rdkafka::error::KafkaError;
use rdkafka::message::{Header, Headers, Message, OwnedHeaders, OwnedMessage};
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::types::RDKafkaErrorCode;
use rdkafka::{ClientContext, Offset, TopicPartitionList};
use scylla::client::session::Session;
use scylla::DeserializeRow;
use serde_json::{json, Value};
use tokio::task::JoinHandle;
use tokio_postgres::Client;
use tokio_util::sync::CancellationToken;
use userstream::config::{
    CassandraArgs, MetricsArgs, PostgresArgs, SchemaRegistryArgs, Secret, TopicArgs,
};
use userstream::model::UserRecord;
use userstream::normalize::NormalizedUser;
use userstream::{cdc, processor, sink, store};

use crate::common::{self, TestDatabase, TestKeyspace, TestTopics};

/// How long a stage may take to stop after its token is cancelled.
const STOP_DEADLINE: Duration = Duration::from_secs(60);

/// Replication of the test keyspaces (the local stack and compose have one node).
const REPLICATION: &str = "{'class': 'SimpleStrategy', 'replication_factor': 1}";

/// How a test's pipeline is tuned.
#[derive(Debug, Clone)]
pub struct Settings {
    /// Partitions of the topic and of its dead-letter topic.
    pub partitions: i32,
    /// Changes per CDC round.
    pub cdc_batch_size: u32,
    /// Processor lanes and their depth; small values keep few messages in flight, so a stop
    /// lands in the middle of a stream.
    pub write_lanes: usize,
    pub lane_capacity: usize,
    /// The CQL migrations applied to the test's keyspace: every one, or those up to this version
    /// (a keyspace as an older release left it).
    pub cql_migrations_up_to: Option<i32>,
    /// librdkafka options for the processors' consumers, on top of the environment's.
    pub consumer_options: Vec<(&'static str, &'static str)>,
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            partitions: 3,
            cdc_batch_size: 1000,
            write_lanes: 64,
            lane_capacity: 16,
            cql_migrations_up_to: None,
            consumer_options: Vec::new(),
        }
    }
}

/// A running stage: its own token, and the task that reports how it ended.
struct Stage {
    name: &'static str,
    token: CancellationToken,
    handle: JoinHandle<anyhow::Result<()>>,
}

impl Stage {
    async fn stop(self) -> anyhow::Result<()> {
        self.token.cancel();
        tokio::time::timeout(STOP_DEADLINE, self.handle)
            .await
            .with_context(|| format!("{} did not stop within {STOP_DEADLINE:?}", self.name))?
            .with_context(|| format!("{} panicked", self.name))?
            .with_context(|| format!("{} failed", self.name))
    }
}

/// One test's pipeline. Stages still running when it is dropped are cancelled.
pub struct TestPipeline {
    /// A connection to the test's database, for the test's own reads and writes. (Declared
    /// before `database` so that it closes before the database is dropped.)
    pub pg: Client,
    pub database: TestDatabase,
    pub topic: String,
    pub dead_letter_topic: String,
    pub keyspace: String,
    pub group_id: String,
    pub cdc_name: String,
    pub settings: Settings,
    /// A session of the test's own (not the processor's) for reading Cassandra back.
    pub cassandra: Arc<Session>,
    cdc: Option<Stage>,
    processor: Option<Stage>,
    /// More processors in the same consumer group, oldest first.
    more_processors: Vec<Stage>,
    /// More `cdc` stages with the same cursor name, oldest first.
    more_cdcs: Vec<Stage>,
    /// Drop the keyspace and the topics with the pipeline.
    _keyspace: TestKeyspace,
    _topics: TestTopics,
}

impl TestPipeline {
    pub async fn new(prefix: &str) -> anyhow::Result<Self> {
        Self::with_settings(prefix, Settings::default()).await
    }

    pub async fn with_settings(prefix: &str, settings: Settings) -> anyhow::Result<Self> {
        init_tracing();
        let database = TestDatabase::create(prefix).await?;
        let mut pg = store::connect(&Secret::new(database.url.clone())).await?;
        store::migrate(&mut pg).await?;

        let topic = common::unique_name(prefix);
        let dead_letter_topic = userstream::kafka::dead_letter_topic(&topic);
        let topics = TestTopics::new([topic.clone(), dead_letter_topic.clone()]);
        let topic_args = TopicArgs {
            topic: topic.clone(),
            partitions: settings.partitions,
            replication_factor: 1,
        };
        cdc::ensure_topics(&common::kafka_args(), &topic_args).await?;

        let test_keyspace = TestKeyspace::new(prefix);
        let keyspace = test_keyspace.name.clone();
        let cassandra_args = cassandra_args(&keyspace);
        let session = sink::connect(&cassandra_args).await?;
        match settings.cql_migrations_up_to {
            None => sink::migrate(&session, &keyspace, REPLICATION).await?,
            Some(last) => sink::migrate_to(&session, &keyspace, REPLICATION, last).await?,
        };

        Ok(Self {
            database,
            pg,
            dead_letter_topic,
            topic,
            group_id: common::unique_name(&format!("{prefix}_group")),
            cdc_name: common::unique_name(&format!("{prefix}_cdc")),
            keyspace,
            settings,
            cassandra: Arc::new(session),
            cdc: None,
            processor: None,
            more_processors: Vec::new(),
            more_cdcs: Vec::new(),
            _keyspace: test_keyspace,
            _topics: topics,
        })
    }

    pub fn topic_args(&self) -> TopicArgs {
        TopicArgs {
            topic: self.topic.clone(),
            partitions: self.settings.partitions,
            replication_factor: 1,
        }
    }

    pub fn registry_args(&self) -> SchemaRegistryArgs {
        SchemaRegistryArgs {
            url: common::registry_url(),
        }
    }

    pub fn cdc_config(&self) -> cdc::Config {
        cdc::Config {
            postgres: PostgresArgs {
                pg_url: Secret::new(self.database.url.clone()),
            },
            kafka: common::kafka_args(),
            registry: self.registry_args(),
            metrics: MetricsArgs { listen: None },
            topic: self.topic_args(),
            options: cdc::CdcOptions {
                name: self.cdc_name.clone(),
                poll_interval: Duration::from_millis(50),
                batch_size: self.settings.cdc_batch_size,
                max_in_flight_batches: 8,
                prune_every: Duration::from_secs(3600),
                drain_timeout: Duration::from_secs(10),
                stall_warning: Duration::from_secs(60),
            },
        }
    }

    pub fn processor_config(&self) -> processor::Config {
        let mut kafka = common::kafka_args();
        // Committed offsets are what a restarted processor resumes from, and what tests wait
        // on to know a message was handled; the default 5 s commit interval only slows them.
        kafka
            .consumer_options
            .push(("auto.commit.interval.ms".to_owned(), "200".to_owned()));
        for (key, value) in &self.settings.consumer_options {
            kafka
                .consumer_options
                .push(((*key).to_owned(), (*value).to_owned()));
        }
        processor::Config {
            kafka,
            registry: self.registry_args(),
            cassandra: cassandra_args(&self.keyspace),
            metrics: MetricsArgs { listen: None },
            topic: self.topic_args(),
            options: processor::ProcessOptions {
                group_id: self.group_id.clone(),
                write_lanes: self.settings.write_lanes,
                lane_capacity: self.settings.lane_capacity,
                drain_timeout: Duration::from_secs(30),
            },
        }
    }

    pub fn start_cdc(&mut self) {
        self.start_cdc_with(self.cdc_config());
    }

    /// Starts `cdc` with settings of the test's own (e.g. other Kafka options).
    pub fn start_cdc_with(&mut self, config: cdc::Config) {
        assert!(self.cdc.is_none(), "cdc is already running");
        self.cdc = Some(spawn_cdc(config));
    }

    /// Starts one more `cdc` with the test's cursor name.
    pub fn start_another_cdc(&mut self) {
        let stage = spawn_cdc(self.cdc_config());
        self.more_cdcs.push(stage);
    }

    /// Stops the oldest of the stages [`Self::start_another_cdc`] started.
    pub async fn stop_another_cdc(&mut self) -> anyhow::Result<()> {
        ensure!(!self.more_cdcs.is_empty(), "no other cdc is running");
        self.more_cdcs.remove(0).stop().await
    }

    /// Waits until `cdc` ends by itself, and returns the error it ended with.
    pub async fn cdc_failure(&mut self, deadline: Duration) -> anyhow::Result<anyhow::Error> {
        let stage = self.cdc.take().context("cdc is not running")?;
        let outcome = tokio::time::timeout(deadline, stage.handle)
            .await
            .with_context(|| format!("cdc was still running after {deadline:?}"))?
            .context("cdc panicked")?;
        match outcome {
            Ok(()) => bail!("cdc ended without an error"),
            Err(error) => Ok(error),
        }
    }

    pub async fn stop_cdc(&mut self) -> anyhow::Result<()> {
        self.cdc.take().context("cdc is not running")?.stop().await
    }

    /// Ends `cdc` as a crash would: wherever it is, without draining or committing anything.
    pub async fn crash_cdc(&mut self) -> anyhow::Result<()> {
        let stage = self.cdc.take().context("cdc is not running")?;
        stage.handle.abort();
        match stage.handle.await {
            Err(aborted) if aborted.is_cancelled() => Ok(()),
            Err(panicked) => Err(panicked).context("cdc panicked"),
            Ok(ended) => ended.context("cdc failed before the crash"),
        }
    }

    pub fn start_processor(&mut self) {
        self.start_processor_with(self.processor_config());
    }

    /// Starts the processor with settings of the test's own (e.g. another registry URL).
    pub fn start_processor_with(&mut self, config: processor::Config) {
        assert!(self.processor.is_none(), "the processor is already running");
        self.processor = Some(spawn_processor(config));
    }

    /// Starts one more processor in the test's consumer group.
    pub fn start_another_processor(&mut self) {
        let stage = spawn_processor(self.processor_config());
        self.more_processors.push(stage);
    }

    /// Stops the oldest of the processors [`Self::start_another_processor`] started.
    pub async fn stop_another_processor(&mut self) -> anyhow::Result<()> {
        ensure!(
            !self.more_processors.is_empty(),
            "no other processor is running"
        );
        self.more_processors.remove(0).stop().await
    }

    /// Waits until the processors' consumer group has `wanted` members.
    pub async fn wait_for_group_members(&self, wanted: usize) -> anyhow::Result<()> {
        self.eventually(
            &format!("the group has {wanted} members"),
            common::DEFAULT_DEADLINE,
            || async { Ok((self.group_members().await?.len() == wanted).then_some(())) },
        )
        .await
    }

    /// The member ids of the processors' consumer group, as the group coordinator reports them.
    pub async fn group_members(&self) -> anyhow::Result<Vec<String>> {
        let consumer: StreamConsumer =
            userstream::kafka::consumer_config(&common::kafka_args(), &self.group_id).create()?;
        let group_id = self.group_id.clone();
        tokio::task::spawn_blocking(move || {
            let groups = consumer.fetch_group_list(Some(&group_id), Duration::from_secs(10))?;
            Ok(groups
                .groups()
                .iter()
                .flat_map(|group| group.members())
                .map(|member| member.id().to_owned())
                .collect())
        })
        .await?
    }

    pub async fn stop_processor(&mut self) -> anyhow::Result<()> {
        self.processor
            .take()
            .context("the processor is not running")?
            .stop()
            .await
    }

    /// Fails when a stage that should be running has ended (with its error in the log).
    pub fn ensure_stages_running(&self) -> anyhow::Result<()> {
        let single = [&self.cdc, &self.processor].into_iter().flatten();
        for stage in single.chain(&self.more_processors).chain(&self.more_cdcs) {
            ensure!(
                !stage.handle.is_finished(),
                "the {} stage ended by itself (its error is logged above)",
                stage.name
            );
        }
        Ok(())
    }

    /// [`common::eventually`], failing at once if a stage died meanwhile.
    pub async fn eventually<T, F, Fut>(
        &self,
        what: &str,
        deadline: Duration,
        mut probe: F,
    ) -> anyhow::Result<T>
    where
        F: FnMut() -> Fut,
        Fut: std::future::Future<Output = anyhow::Result<Option<T>>>,
    {
        // A dead stage will not make the condition come true: its error ends the wait at once
        // (as a value, since `eventually` keeps polling through errors).
        common::eventually(what, deadline, || {
            let alive = self.ensure_stages_running();
            let probe = probe();
            async move {
                match alive {
                    Err(error) => Ok(Some(Err(error))),
                    Ok(()) => Ok(probe.await?.map(Ok)),
                }
            }
        })
        .await?
        .with_context(|| format!("while waiting until {what}"))
    }

    // ---- PostgreSQL ----

    /// Stores `users` as the fetcher does: one page, one transaction.
    pub async fn upsert(&mut self, users: &[(UserRecord, Value)]) -> anyhow::Result<()> {
        store::upsert_page(&mut self.pg, users).await?;
        Ok(())
    }

    /// Every user in PostgreSQL: its typed columns (every column but the raw JSON and the
    /// bookkeeping times), as a `UserRecord`. Read generically, so columns a schema change adds
    /// are compared too.
    pub async fn pg_users(&self) -> anyhow::Result<BTreeMap<String, UserRecord>> {
        let rows = self
            .pg
            .query(
                "SELECT to_jsonb(u) - 'raw' - 'fetched_at' - 'updated_at' FROM users u",
                &[],
            )
            .await
            .context("reading users")?;
        rows.iter()
            .map(|row| {
                let columns: Value = row.try_get(0)?;
                let user: UserRecord = serde_json::from_value(columns.clone())
                    .with_context(|| format!("users row {columns}"))?;
                Ok((user.id.clone(), user))
            })
            .collect()
    }

    // ---- Cassandra ----

    /// The `users_by_id` row of `user_id`, if any.
    pub async fn user_by_id(&self, user_id: &str) -> anyhow::Result<Option<CassandraUser>> {
        let query = format!(
            "SELECT * FROM {}.users_by_id WHERE user_id = ?",
            self.keyspace
        );
        let result = self
            .cassandra
            .query_unpaged(query, (user_id,))
            .await?
            .into_rows_result()?;
        rows_as_json(&result)?
            .into_iter()
            .next()
            .map(CassandraUser::from_json)
            .transpose()
    }

    /// Every `users_by_id` row, by user id.
    pub async fn all_users_by_id(&self) -> anyhow::Result<BTreeMap<String, CassandraUser>> {
        let query = format!("SELECT * FROM {}.users_by_id", self.keyspace);
        let result = self
            .cassandra
            .query_unpaged(query, ())
            .await?
            .into_rows_result()?;
        rows_as_json(&result)?
            .into_iter()
            .map(|row| {
                let user = CassandraUser::from_json(row)?;
                Ok((user.user.id.clone(), user))
            })
            .collect()
    }

    /// Every `users_by_country` row (a full scan; test tables are small).
    pub async fn all_users_by_country(&self) -> anyhow::Result<Vec<UserByCountryRow>> {
        let query = format!(
            "SELECT country_code, registered_at, user_id, first_name, last_name, email, gender, \
             date_of_birth, city, state, nat, phone_e164 FROM {}.users_by_country",
            self.keyspace
        );
        self.rows(&query).await
    }

    /// The `users_by_country` rows of `user_id` (found by scanning: the table is keyed by
    /// country, and a stale row may sit in any partition).
    pub async fn country_rows_of(&self, user_id: &str) -> anyhow::Result<Vec<UserByCountryRow>> {
        Ok(self
            .all_users_by_country()
            .await?
            .into_iter()
            .filter(|row| row.user_id == user_id)
            .collect())
    }

    pub async fn count(&self, table: &str) -> anyhow::Result<i64> {
        let query = format!("SELECT COUNT(*) FROM {}.{table}", self.keyspace);
        let (count,): (i64,) = self
            .cassandra
            .query_unpaged(query, ())
            .await?
            .into_rows_result()?
            .single_row()?;
        Ok(count)
    }

    /// Every row of `table`, each column rendered as text (for searching them).
    pub async fn table_as_text(&self, table: &str) -> anyhow::Result<Vec<Vec<String>>> {
        let query = format!("SELECT * FROM {}.{table}", self.keyspace);
        let result = self
            .cassandra
            .query_unpaged(query, ())
            .await?
            .into_rows_result()?;
        Ok(rows_as_json(&result)?
            .into_iter()
            .map(|row| {
                row.into_values()
                    .map(|value| match value {
                        Value::String(text) => text,
                        other => other.to_string(),
                    })
                    .collect()
            })
            .collect())
    }

    async fn rows<T>(&self, query: &str) -> anyhow::Result<Vec<T>>
    where
        T: for<'f, 'm> scylla::deserialize::row::DeserializeRow<'f, 'm>,
    {
        let result = self
            .cassandra
            .query_unpaged(query, ())
            .await
            .with_context(|| format!("CQL {query}"))?
            .into_rows_result()?;
        let rows = result
            .rows::<T>()?
            .collect::<Result<Vec<T>, _>>()
            .with_context(|| format!("rows of {query}"))?;
        Ok(rows)
    }

    /// Waits until Cassandra holds exactly the normalized PostgreSQL users (all of which must
    /// normalize); returns how many.
    pub async fn wait_until_cassandra_matches_postgres(
        &self,
        deadline: Duration,
    ) -> anyhow::Result<usize> {
        let expected: BTreeMap<String, NormalizedUser> = self
            .pg_users()
            .await?
            .into_iter()
            .map(|(id, record)| {
                let normalized = userstream::normalize::normalize(&record)
                    .with_context(|| format!("user {id} does not normalize"))?;
                Ok((id, normalized.user))
            })
            .collect::<anyhow::Result<_>>()?;
        self.wait_until_cassandra_holds(&expected, deadline).await?;
        Ok(expected.len())
    }

    /// Waits until `users_by_id` holds exactly `expected` with every normalized value, and
    /// `users_by_country` exactly one matching row per user and nothing else.
    pub async fn wait_until_cassandra_holds(
        &self,
        expected: &BTreeMap<String, NormalizedUser>,
        deadline: Duration,
    ) -> anyhow::Result<()> {
        let want = i64::try_from(expected.len())?;
        let last_difference = std::sync::Mutex::new(String::from("none compared yet"));
        let note = |difference: String| {
            if let Ok(mut last) = last_difference.lock() {
                *last = difference;
            }
        };
        let result = self
            .eventually("Cassandra holds the expected users", deadline, || async {
                // Counting is cheap; the full comparison runs once the numbers add up.
                let count = self.count("users_by_id").await?;
                if count != want {
                    note(format!("users_by_id has {count} rows of {want}"));
                    return Ok(None);
                }
                let by_id = self.all_users_by_id().await?;
                let by_country = self.all_users_by_country().await?;
                match cassandra_difference(expected, &by_id, &by_country) {
                    None => Ok(Some(())),
                    Some(difference) => {
                        note(difference);
                        Ok(None)
                    }
                }
            })
            .await;
        let last = last_difference
            .lock()
            .map(|last| last.clone())
            .unwrap_or_default();
        result.with_context(|| format!("last difference: {last}"))
    }

    /// How many messages the test's topic holds.
    pub async fn topic_len(&self) -> anyhow::Result<usize> {
        Ok(self.topic_messages().await?.len())
    }

    // ---- Kafka ----

    /// Every message on the test's topic now (up to each partition's high watermark).
    pub async fn topic_messages(&self) -> anyhow::Result<Vec<OwnedMessage>> {
        read_topic(&self.topic, self.settings.partitions).await
    }

    /// Every message on the test's dead-letter topic now.
    pub async fn dead_letters(&self) -> anyhow::Result<Vec<OwnedMessage>> {
        read_topic(&self.dead_letter_topic, self.settings.partitions).await
    }

    /// The offset the processor's group committed for `partition`, if any.
    pub async fn committed_offset(&self, partition: i32) -> anyhow::Result<Option<i64>> {
        let consumer: StreamConsumer =
            userstream::kafka::consumer_config(&common::kafka_args(), &self.group_id).create()?;
        let mut list = TopicPartitionList::new();
        list.add_partition(&self.topic, partition);
        let topic = self.topic.clone();
        tokio::task::spawn_blocking(move || {
            let committed = consumer.committed_offsets(list, Duration::from_secs(10))?;
            Ok(committed
                .find_partition(&topic, partition)
                .and_then(|element| match element.offset() {
                    Offset::Offset(offset) => Some(offset),
                    _ => None,
                }))
        })
        .await?
    }
}

impl Drop for TestPipeline {
    fn drop(&mut self) {
        let single = [self.cdc.take(), self.processor.take()]
            .into_iter()
            .flatten();
        let more = self
            .more_processors
            .drain(..)
            .chain(self.more_cdcs.drain(..));
        for stage in single.chain(more) {
            stage.token.cancel();
            stage.handle.abort();
        }
    }
}

fn spawn_cdc(config: cdc::Config) -> Stage {
    let token = CancellationToken::new();
    let future = cdc::run(config, token.clone());
    spawn_stage("cdc", token, async move { Ok(future.await?) })
}

fn spawn_processor(config: processor::Config) -> Stage {
    let token = CancellationToken::new();
    let future = processor::run(config, token.clone());
    spawn_stage("process", token, async move { Ok(future.await?) })
}

fn spawn_stage(
    name: &'static str,
    token: CancellationToken,
    future: impl std::future::Future<Output = anyhow::Result<()>> + Send + 'static,
) -> Stage {
    let handle = tokio::spawn(async move {
        let result = future.await;
        if let Err(error) = &result {
            eprintln!("stage {name} failed: {error:#}");
        }
        result
    });
    Stage {
        name,
        token,
        handle,
    }
}

fn cassandra_args(keyspace: &str) -> CassandraArgs {
    CassandraArgs {
        nodes: common::cassandra_nodes(),
        keyspace: keyspace.to_owned(),
        keyspace_replication: REPLICATION.to_owned(),
    }
}

/// Pipeline logs go to the test's output (shown for failing tests); `RUST_LOG` tunes them.
fn init_tracing() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_test_writer()
        .try_init();
}

/// Reads every message of `topic`: each partition from its beginning up to its end at the time
/// of reading (librdkafka's partition-EOF event).
pub async fn read_topic(topic: &str, partitions: i32) -> anyhow::Result<Vec<OwnedMessage>> {
    let mut config = userstream::kafka::consumer_config(
        &common::kafka_args(),
        &common::unique_name("it_reader"),
    );
    config.set("enable.partition.eof", "true");
    let consumer: StreamConsumer<EofIsNotAnError> = config.create_with_context(EofIsNotAnError)?;
    let mut assignment = TopicPartitionList::new();
    for partition in 0..partitions {
        assignment.add_partition_offset(topic, partition, Offset::Beginning)?;
    }
    consumer.assign(&assignment)?;
    let mut open: BTreeSet<i32> = (0..partitions).collect();
    let mut messages = Vec::new();
    while !open.is_empty() {
        let next = tokio::time::timeout(common::DEFAULT_DEADLINE, consumer.recv())
            .await
            .with_context(|| format!("reading {topic}: no end of partitions {open:?}"))?;
        match next {
            Ok(message) => messages.push(message.detach()),
            Err(KafkaError::PartitionEOF(partition)) => {
                open.remove(&partition);
            }
            Err(error) => return Err(error).with_context(|| format!("reading {topic}")),
        }
    }
    Ok(messages)
}

/// A client context that does not log the partition-EOF events [`read_topic`] asks for.
struct EofIsNotAnError;

impl ClientContext for EofIsNotAnError {
    fn error(&self, error: KafkaError, reason: &str) {
        let eof = matches!(
            error,
            KafkaError::PartitionEOF(_) | KafkaError::Global(RDKafkaErrorCode::PartitionEOF)
        );
        if !eof {
            tracing::error!(%error, reason, "Kafka client error while reading a topic");
        }
    }
}

impl ConsumerContext for EofIsNotAnError {}

/// A producer for hand-made messages (the pipeline's own producer settings).
pub fn producer() -> anyhow::Result<FutureProducer> {
    Ok(userstream::kafka::producer_config(&common::kafka_args()).create()?)
}

/// Produces one message and returns where it landed.
pub async fn produce(
    producer: &FutureProducer,
    topic: &str,
    partition: Option<i32>,
    key: &str,
    payload: Option<&[u8]>,
    headers: &[(&str, &str)],
) -> anyhow::Result<(i32, i64)> {
    let mut owned = OwnedHeaders::new();
    for (name, value) in headers {
        owned = owned.insert(Header {
            key: name,
            value: Some(*value),
        });
    }
    let mut record: FutureRecord<'_, str, [u8]> = FutureRecord::to(topic).key(key).headers(owned);
    if let Some(partition) = partition {
        record = record.partition(partition);
    }
    if let Some(payload) = payload {
        record = record.payload(payload);
    }
    let delivery = producer
        .send(record, Duration::from_secs(30))
        .await
        .map_err(|(error, _)| error)
        .with_context(|| format!("producing {key} to {topic}"))?;
    Ok((delivery.partition, delivery.offset))
}

/// The value of header `key` as text.
pub fn header(message: &OwnedMessage, key: &str) -> Option<String> {
    message
        .headers()?
        .iter()
        .find(|header| header.key == key)
        .and_then(|header| header.value)
        .map(|value| String::from_utf8_lossy(value).into_owned())
}

pub fn key(message: &OwnedMessage) -> Option<String> {
    message
        .key()
        .map(|key| String::from_utf8_lossy(key).into_owned())
}

/// A `users_by_id` row: the normalized user it holds, and the change it came from.
#[derive(Debug, Clone, PartialEq)]
pub struct CassandraUser {
    pub user: NormalizedUser,
    pub source_ts_us: Option<i64>,
    pub source_txid: Option<i64>,
}

impl CassandraUser {
    /// From a row as [`rows_as_json`] gives it: the columns are the `NormalizedUser` fields
    /// (`user_id` being `id`), so columns a schema change adds are read without a change here.
    fn from_json(mut row: serde_json::Map<String, Value>) -> anyhow::Result<Self> {
        let id = row
            .remove("user_id")
            .context("users_by_id row without user_id")?;
        row.insert("id".to_owned(), id);
        let number = |row: &serde_json::Map<String, Value>, column: &str| {
            row.get(column).and_then(Value::as_i64)
        };
        Ok(Self {
            source_ts_us: number(&row, "source_ts_us"),
            source_txid: number(&row, "source_txid"),
            user: serde_json::from_value(Value::Object(row.clone()))
                .with_context(|| format!("users_by_id row {row:?}"))?,
        })
    }
}

/// Every row of `result` as a JSON object of its columns: text as strings, numbers as numbers,
/// `date` as "YYYY-MM-DD" and `timestamp` as RFC 3339 (how `NormalizedUser` serializes them).
pub fn rows_as_json(
    result: &scylla::response::query_result::QueryRowsResult,
) -> anyhow::Result<Vec<serde_json::Map<String, Value>>> {
    use scylla::value::CqlValue;
    let names: Vec<String> = result
        .column_specs()
        .iter()
        .map(|spec| spec.name().to_owned())
        .collect();
    let to_json = |value: Option<CqlValue>| -> anyhow::Result<Value> {
        Ok(match value {
            None | Some(CqlValue::Empty) => Value::Null,
            Some(CqlValue::Text(text) | CqlValue::Ascii(text)) => Value::String(text),
            Some(CqlValue::Int(n)) => json!(n),
            Some(CqlValue::BigInt(n)) => json!(n),
            Some(CqlValue::SmallInt(n)) => json!(n),
            Some(CqlValue::TinyInt(n)) => json!(n),
            Some(CqlValue::Double(n)) => json!(n),
            Some(CqlValue::Float(n)) => json!(n),
            Some(CqlValue::Boolean(b)) => json!(b),
            Some(CqlValue::Date(date)) => {
                let date: NaiveDate = date.try_into().context("date out of range")?;
                json!(date)
            }
            Some(CqlValue::Timestamp(ts)) => {
                let ts: DateTime<Utc> = ts.try_into().context("timestamp out of range")?;
                json!(ts)
            }
            Some(other) => Value::String(format!("{other:?}")),
        })
    };
    result
        .rows::<scylla::value::Row>()?
        .map(|row| {
            let row = row?;
            names
                .iter()
                .cloned()
                .zip(row.columns)
                .map(|(name, value)| Ok((name, to_json(value)?)))
                .collect()
        })
        .collect()
}

#[derive(Debug, Clone, PartialEq, DeserializeRow)]
pub struct UserByCountryRow {
    pub country_code: String,
    pub registered_at: DateTime<Utc>,
    pub user_id: String,
    pub first_name: Option<String>,
    pub last_name: Option<String>,
    pub email: Option<String>,
    pub gender: Option<String>,
    pub date_of_birth: Option<NaiveDate>,
    pub city: Option<String>,
    pub state: Option<String>,
    pub nat: Option<String>,
    pub phone_e164: Option<String>,
}

impl UserByCountryRow {
    /// The row `user` should have in `users_by_country`.
    pub fn expected_for(user: &NormalizedUser) -> Self {
        Self {
            country_code: user.country_code.clone(),
            registered_at: user.registered_at.unwrap_or(DateTime::UNIX_EPOCH),
            user_id: user.id.clone(),
            first_name: user.first_name.clone(),
            last_name: user.last_name.clone(),
            email: user.email.clone(),
            gender: user.gender.clone(),
            date_of_birth: user.date_of_birth,
            city: user.city.clone(),
            state: user.state.clone(),
            nat: user.nat.clone(),
            phone_e164: user.phone_e164.clone(),
        }
    }
}

/// The fields in which two values differ, as "field: left ≠ right" lines.
pub fn field_differences<T: serde::Serialize>(actual: &T, expected: &T) -> Vec<String> {
    let (Ok(Value::Object(actual)), Ok(Value::Object(expected))) =
        (serde_json::to_value(actual), serde_json::to_value(expected))
    else {
        return vec!["values are not objects".to_owned()];
    };
    expected
        .iter()
        .filter(|(field, value)| actual.get(*field) != Some(value))
        .map(|(field, value)| {
            format!(
                "{field}: got {}, expected {value}",
                actual.get(field).unwrap_or(&Value::Null)
            )
        })
        .collect()
}

/// `None` when `users_by_id` and `users_by_country` hold exactly `expected`; otherwise the
/// first few differences.
pub fn cassandra_difference(
    expected: &BTreeMap<String, NormalizedUser>,
    by_id: &BTreeMap<String, CassandraUser>,
    by_country: &[UserByCountryRow],
) -> Option<String> {
    let mut problems = Vec::new();
    for (id, user) in expected {
        match by_id.get(id) {
            None => problems.push(format!("{id} missing from users_by_id")),
            Some(row) => {
                let differences = field_differences(&row.user, user);
                if !differences.is_empty() {
                    problems.push(format!("{id} in users_by_id: {}", differences.join("; ")));
                }
            }
        }
    }
    for id in by_id.keys().filter(|id| !expected.contains_key(*id)) {
        problems.push(format!("{id} in users_by_id but not expected"));
    }
    let mut country_rows: BTreeMap<&str, Vec<&UserByCountryRow>> = BTreeMap::new();
    for row in by_country {
        country_rows.entry(&row.user_id).or_default().push(row);
    }
    for (id, user) in expected {
        let want = UserByCountryRow::expected_for(user);
        match country_rows.get(id.as_str()).map(Vec::as_slice) {
            Some([row]) if **row == want => {}
            Some(rows) => problems.push(format!(
                "{id} in users_by_country: {rows:?}, expected {want:?}"
            )),
            None => problems.push(format!("{id} missing from users_by_country")),
        }
    }
    for id in country_rows
        .keys()
        .filter(|id| !expected.contains_key(**id))
    {
        problems.push(format!("{id} in users_by_country but not expected"));
    }
    if problems.is_empty() {
        return None;
    }
    let total = problems.len();
    problems.truncate(5);
    Some(format!(
        "{total} difference(s), e.g. {}",
        problems.join(" | ")
    ))
}

/// A complete, valid user (German numbering, so both phones have an E.164 form) and the API
/// record it came from, with credentials that must never leave PostgreSQL.
pub fn sample_user(id: &str, first_name: &str) -> (UserRecord, Value) {
    let record = user_record(json!({
        "id": id,
        "gender": "female",
        "title": "Ms",
        "first_name": first_name,
        "last_name": "Schneider",
        "email": format!("{id}@example.com"),
        "username": format!("user-{id}"),
        "date_of_birth": "1980-02-03T04:05:06Z",
        "registered_at": "2015-06-07T08:09:10.123Z",
        "phone": "0171-2345678",
        "cell": "0172-3456789",
        "street_number": "12",
        "street_name": "Lindenstraße",
        "city": "Berlin",
        "state": "Berlin",
        "country": "Germany",
        "postcode": "10115",
        "latitude": 52.52,
        "longitude": 13.405,
        "timezone_offset": "+1:00",
        "timezone_description": "Brussels, Copenhagen, Madrid, Paris",
        "nat": "DE",
    }));
    let raw = json!({
        "login": {"uuid": id, "password": format!("pw-{id}"), "salt": "NaCl1234"},
        "name": {"first": first_name},
    });
    (record, raw)
}

/// A `UserRecord` from the fields given (any other field is `None`).
pub fn user_record(fields: Value) -> UserRecord {
    serde_json::from_value(fields).expect("a UserRecord literal of the test")
}

/// Fails with `what` unless `condition`.
pub fn check(condition: bool, what: impl std::fmt::Display) -> anyhow::Result<()> {
    if !condition {
        bail!("{what}");
    }
    Ok(())
}
