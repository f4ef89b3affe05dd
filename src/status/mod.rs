//! `userstream status`: every stage on one screen (or as JSON with `--json`), and a verdict in
//! the exit code.
//!
//! * **PostgreSQL** — the users; per CDC cursor the changes it has not produced yet (count and
//!   the source time of the oldest); the oldest open transaction holding the cluster's xmin back.
//! * **Kafka** — the topic's partitions and end offsets, the processors' group: committed offsets,
//!   lag per partition, members.
//! * **Dead letters** — how many `<topic>.dlq` holds, and the five newest with kind and message.
//! * **Registry** — the versions of `<topic>-value` and the newest one's schema id.
//! * **Cassandra** — reachable, the keyspace, the CQL migrations applied (of those this build has).
//!
//! Verdict ([`Verdict`]): **unreachable** (exit 2) when PostgreSQL, Kafka, the registry or
//! Cassandra cannot be reached within `--timeout`; otherwise **degraded** (exit 1) when any of
//! these holds, each named in `problems`:
//! * a CDC cursor's oldest unproduced change, or the oldest transaction holding the xmin, is
//!   older than `--max-backlog-age`;
//! * the processors' lag over all partitions exceeds `--max-lag`, or there is lag and the group
//!   has no member;
//! * the newest dead letter is younger than `--dead-letter-window`, and not every dead letter was
//!   replayed (`dead-letters replay`; a replay dead-lettered again is a new dead letter);
//! * the topic, the subject's schemas, the keyspace or a CQL migration is missing;
//! * a service answered but a question about it failed (e.g. PostgreSQL is not migrated).
//!
//! Otherwise **healthy** (exit 0). Every check only reads: status joins no consumer group,
//! commits nothing and registers nothing.

mod render;

use std::io::Write;
use std::time::Duration;

use chrono::{DateTime, Utc};
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::KafkaError;
use rdkafka::{Offset, TopicPartitionList};
use scylla::client::session::Session;
use tokio_util::sync::CancellationToken;

use crate::config::{CassandraArgs, KafkaArgs, PostgresArgs, SchemaRegistryArgs, TopicArgs};
use crate::dead_letters::DeadLetter;
use crate::error::{chain, Retryable};
use crate::schemas::{value_subject, SchemaError, SchemaRegistryClient};
use crate::sink::{self, SinkError};
use crate::store::{self, ChangeKey, Position, StoreError};
use crate::topic_read::{self, PartitionEnds, ReadError, Start};

const USERS: &str = include_str!("sql/users.sql");
const CURSORS: &str = include_str!("sql/cursors.sql");
const OLDEST_XMIN: &str = include_str!("sql/oldest_xmin.sql");
const REPLAYS_TABLE: &str = include_str!("sql/replays_table.sql");
const REPLAYED: &str = include_str!("sql/replayed.sql");
const KEYSPACE: &str = include_str!("sql/keyspace.cql");
const MIGRATIONS: &str = include_str!("sql/migrations.cql");

/// How many of the newest dead letters the status shows.
const LATEST_DEAD_LETTERS: i64 = 5;

/// Settings of `userstream status`.
#[derive(Debug, Clone, clap::Args)]
pub struct Config {
    #[command(flatten)]
    pub postgres: PostgresArgs,
    #[command(flatten)]
    pub kafka: KafkaArgs,
    #[command(flatten)]
    pub registry: SchemaRegistryArgs,
    #[command(flatten)]
    pub cassandra: CassandraArgs,
    #[command(flatten)]
    pub topic: TopicArgs,
    #[command(flatten)]
    pub options: StatusOptions,
}

/// The thresholds of the verdict, and how the report is shown.
#[derive(Debug, Clone, clap::Args)]
pub struct StatusOptions {
    /// Kafka consumer group of the processors whose offsets and lag are shown.
    #[arg(
        long = "group-id",
        env = "USERSTREAM_GROUP_ID",
        default_value = "userstream-processor"
    )]
    pub group_id: String,

    /// Print the report as one JSON document.
    #[arg(long = "json", env = "USERSTREAM_STATUS_JSON")]
    pub json: bool,

    /// Degraded when a CDC cursor's oldest unproduced change, or the oldest transaction holding
    /// PostgreSQL's xmin, is older than this.
    #[arg(
        long = "max-backlog-age",
        env = "USERSTREAM_STATUS_MAX_BACKLOG_AGE",
        default_value = "1m",
        value_parser = humantime::parse_duration
    )]
    pub max_backlog_age: Duration,

    /// Degraded when the processors' group lags by more messages than this, over all partitions.
    #[arg(
        long = "max-lag",
        env = "USERSTREAM_STATUS_MAX_LAG",
        default_value_t = 1000
    )]
    pub max_lag: i64,

    /// Degraded when the newest dead letter is younger than this.
    #[arg(
        long = "dead-letter-window",
        env = "USERSTREAM_STATUS_DEAD_LETTER_WINDOW",
        default_value = "1h",
        value_parser = humantime::parse_duration
    )]
    pub dead_letter_window: Duration,

    /// How long each service may take to answer before it counts as unreachable.
    #[arg(
        long = "timeout",
        env = "USERSTREAM_STATUS_TIMEOUT",
        default_value = "5s",
        value_parser = humantime::parse_duration
    )]
    pub timeout: Duration,
}

/// What the exit code says.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Verdict {
    Healthy,
    Degraded,
    Unreachable,
}

impl Verdict {
    pub fn exit_code(self) -> i32 {
        match self {
            Self::Healthy => 0,
            Self::Degraded => 1,
            Self::Unreachable => 2,
        }
    }
}

/// Why status could not even start.
#[derive(Debug, thiserror::Error)]
pub enum StatusError {
    #[error(transparent)]
    Schema(#[from] SchemaError),
    #[error("cannot print the report as JSON")]
    Json(#[source] serde_json::Error),
    #[error("cannot write the output")]
    Output(#[source] std::io::Error),
}

impl Retryable for StatusError {
    fn is_retryable(&self) -> bool {
        match self {
            Self::Schema(error) => error.is_retryable(),
            Self::Json(_) | Self::Output(_) => false,
        }
    }
}

/// Why one check failed; shown in the report, in words.
#[derive(Debug, thiserror::Error)]
enum CheckError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Sink(#[from] SinkError),
    #[error(transparent)]
    Read(#[from] ReadError),
    #[error(transparent)]
    Schema(#[from] SchemaError),
    #[error("Kafka: {operation}")]
    Kafka {
        operation: &'static str,
        #[source]
        source: KafkaError,
    },
    #[error("no answer within {0:?}")]
    TimedOut(Duration),
    #[error("a Kafka request was cancelled")]
    Cancelled(#[source] tokio::task::JoinError),
}

/// One service's part of the report: whether it answered, what failed, and what was found.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Section<T> {
    pub reachable: bool,
    /// The failure that made it unreachable, or a question about it that failed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    #[serde(flatten)]
    pub details: Option<T>,
}

impl<T> Section<T> {
    fn found(details: T) -> Self {
        Self {
            reachable: true,
            error: None,
            details: Some(details),
        }
    }

    fn unreachable(error: &CheckError) -> Self {
        Self {
            reachable: false,
            error: Some(chain(error)),
            details: None,
        }
    }

    fn failed(error: &CheckError) -> Self {
        Self {
            reachable: true,
            error: Some(chain(error)),
            details: None,
        }
    }
}

/// Everything `status` found.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Report {
    pub verdict: Verdict,
    pub exit_code: i32,
    /// Why the verdict is not healthy, one line each.
    pub problems: Vec<String>,
    pub checked_at: DateTime<Utc>,
    pub postgres: Section<PostgresStatus>,
    pub kafka: Section<KafkaStatus>,
    pub dead_letters: Section<DeadLetterStatus>,
    pub registry: Section<RegistryStatus>,
    pub cassandra: Section<CassandraStatus>,
}

#[derive(Debug, Clone, serde::Serialize)]
pub struct PostgresStatus {
    pub users: i64,
    pub cdc_cursors: Vec<CursorStatus>,
    /// The session whose transaction is the oldest to hold the xmin back; `None` when none does.
    pub oldest_xmin_holder: Option<XminHolder>,
}

/// One CDC cursor and its backlog.
#[derive(Debug, Clone, serde::Serialize)]
pub struct CursorStatus {
    pub consumer: String,
    pub watermark: String,
    pub updated_at: DateTime<Utc>,
    /// Changes of the log after the cursor's position.
    pub unproduced: i64,
    /// Source time of the oldest of them.
    pub oldest_unproduced: Option<DateTime<Utc>>,
    pub oldest_unproduced_age_seconds: Option<f64>,
}

#[derive(Debug, Clone, serde::Serialize)]
pub struct XminHolder {
    pub pid: i32,
    pub database: Option<String>,
    pub user: Option<String>,
    pub application_name: Option<String>,
    pub state: Option<String>,
    pub transaction_start: Option<DateTime<Utc>>,
    pub age_seconds: Option<f64>,
}

#[derive(Debug, Clone, serde::Serialize)]
pub struct KafkaStatus {
    pub topic: String,
    /// `false` when the topic does not exist (yet).
    pub topic_exists: bool,
    pub group: String,
    pub group_state: Option<String>,
    pub partitions: Vec<PartitionStatus>,
    pub total_lag: i64,
    pub members: Vec<GroupMember>,
}

#[derive(Debug, Clone, serde::Serialize)]
pub struct PartitionStatus {
    pub partition: i32,
    pub low_offset: i64,
    pub end_offset: i64,
    /// The group's committed offset (the next message it will read); `None` before its first
    /// commit.
    pub committed: Option<i64>,
    /// Messages the group has not consumed: from the committed offset (or the oldest message
    /// held) to the end.
    pub lag: i64,
}

#[derive(Debug, Clone, serde::Serialize)]
pub struct GroupMember {
    pub member_id: String,
    pub client_id: String,
    pub client_host: String,
}

#[derive(Debug, Clone, serde::Serialize)]
pub struct DeadLetterStatus {
    pub topic: String,
    /// Messages on the dead-letter topic (0 when it does not exist).
    pub count: i64,
    /// How many of them `dead-letters replay` re-produced (`None` when PostgreSQL could not say).
    pub replayed: Option<i64>,
    /// The newest ones, newest first.
    pub latest: Vec<DeadLetter>,
}

#[derive(Debug, Clone, serde::Serialize)]
pub struct RegistryStatus {
    pub subject: String,
    pub versions: Vec<u32>,
    pub newest_version: Option<u32>,
    pub newest_id: Option<u32>,
}

#[derive(Debug, Clone, serde::Serialize)]
pub struct CassandraStatus {
    pub keyspace: String,
    pub keyspace_exists: bool,
    pub migrations: Vec<AppliedMigration>,
    /// How many CQL migrations this build has.
    pub known_migrations: usize,
}

#[derive(Debug, Clone, serde::Serialize)]
pub struct AppliedMigration {
    pub version: i32,
    pub name: Option<String>,
    pub applied_at: Option<DateTime<Utc>>,
}

/// Checks everything, prints the report, and returns the verdict for the exit code.
pub async fn run(config: Config, shutdown: CancellationToken) -> Result<Verdict, StatusError> {
    let report = tokio::select! {
        report = check(&config) => report?,
        // Interrupted before every service answered: nothing is known, which a script must not
        // read as healthy.
        _ = shutdown.cancelled() => return Ok(Verdict::Unreachable),
    };
    let mut out = std::io::stdout().lock();
    if config.options.json {
        let text = serde_json::to_string_pretty(&report).map_err(StatusError::Json)?;
        writeln!(out, "{text}")
    } else {
        write!(out, "{}", render::Screen(&report))
    }
    .map_err(StatusError::Output)?;
    Ok(report.verdict)
}

/// Asks every service at once and judges what they said.
pub async fn check(config: &Config) -> Result<Report, StatusError> {
    let registry = SchemaRegistryClient::new(&config.registry)?;
    let timeout = config.options.timeout;
    let (postgres, kafka, dead_letters, registry, cassandra) = tokio::join!(
        bounded(timeout, postgres(config)),
        bounded(timeout, kafka(config)),
        bounded(timeout, dead_letters(config)),
        bounded(timeout, subject(config, &registry)),
        bounded(timeout, cassandra(config)),
    );
    let mut report = Report {
        verdict: Verdict::Healthy,
        exit_code: 0,
        problems: Vec::new(),
        checked_at: Utc::now(),
        postgres,
        kafka,
        dead_letters,
        registry,
        cassandra,
    };
    report.judge(&config.options);
    Ok(report)
}

/// `check` within `timeout`; a time-out makes the service unreachable.
async fn bounded<T>(
    timeout: Duration,
    check: impl std::future::Future<Output = Section<T>>,
) -> Section<T> {
    tokio::time::timeout(timeout, check)
        .await
        .unwrap_or_else(|_| Section::unreachable(&CheckError::TimedOut(timeout)))
}

fn age_seconds(since: DateTime<Utc>, now: DateTime<Utc>) -> f64 {
    (now - since).num_milliseconds() as f64 / 1000.0
}

async fn postgres(config: &Config) -> Section<PostgresStatus> {
    let client = match store::connect(&config.postgres.pg_url).await {
        Ok(client) => client,
        Err(error) => return Section::unreachable(&error.into()),
    };
    match postgres_details(&client).await {
        Ok(details) => Section::found(details),
        Err(error) => Section::failed(&error),
    }
}

async fn postgres_details(client: &tokio_postgres::Client) -> Result<PostgresStatus, CheckError> {
    let failed = |operation| StoreError::postgres(operation);
    let users: i64 = client
        .query_one(USERS, &[])
        .await
        .and_then(|row| row.try_get(0))
        .map_err(failed("count the users"))?;
    let now = Utc::now();
    let mut cdc_cursors = Vec::new();
    for row in client
        .query(CURSORS, &[])
        .await
        .map_err(failed("read the CDC cursors"))?
    {
        let read = failed("read a CDC cursor");
        let consumer: String = row.try_get(0).map_err(&read)?;
        let watermark: String = row.try_get(1).map_err(&read)?;
        let last_xid: Option<String> = row.try_get(2).map_err(&read)?;
        let last_seq: Option<i64> = row.try_get(3).map_err(&read)?;
        let updated_at: DateTime<Utc> = row.try_get(4).map_err(&read)?;
        let unproduced: i64 = row.try_get(5).map_err(&read)?;
        let position = Position {
            watermark: watermark.parse().unwrap_or(0),
            last: last_xid
                .and_then(|xid| xid.parse().ok())
                .zip(last_seq)
                .map(|(xid, seq)| ChangeKey { xid, seq }),
        };
        let backlog = store::backlog(client, &position).await?;
        cdc_cursors.push(CursorStatus {
            consumer,
            watermark,
            updated_at,
            unproduced,
            oldest_unproduced: backlog.oldest_unproduced,
            oldest_unproduced_age_seconds: backlog
                .oldest_unproduced
                .map(|oldest| age_seconds(oldest, now)),
        });
    }
    let oldest_xmin_holder = client
        .query_opt(OLDEST_XMIN, &[])
        .await
        .map_err(failed("read the oldest open transaction"))?
        .map(|row| -> Result<XminHolder, tokio_postgres::Error> {
            let transaction_start: Option<DateTime<Utc>> = row.try_get(5)?;
            Ok(XminHolder {
                pid: row.try_get(0)?,
                database: row.try_get(1)?,
                user: row.try_get(2)?,
                application_name: row.try_get(3)?,
                state: row.try_get(4)?,
                transaction_start,
                age_seconds: transaction_start.map(|start| age_seconds(start, now)),
            })
        })
        .transpose()
        .map_err(failed("read the oldest open transaction"))?;
    Ok(PostgresStatus {
        users,
        cdc_cursors,
        oldest_xmin_holder,
    })
}

async fn kafka(config: &Config) -> Section<KafkaStatus> {
    let kafka_args = config.kafka.clone();
    let topic = config.topic.topic.clone();
    let group = config.options.group_id.clone();
    let timeout = config.options.timeout;
    let checked =
        tokio::task::spawn_blocking(move || kafka_details(&kafka_args, &topic, &group, timeout))
            .await;
    checked.unwrap_or_else(|cancelled| Section::failed(&CheckError::Cancelled(cancelled)))
}

fn kafka_error(operation: &'static str) -> impl Fn(KafkaError) -> CheckError {
    move |source| CheckError::Kafka { operation, source }
}

/// Blocks. Kafka counts as unreachable when it does not answer the metadata request.
fn kafka_details(
    args: &KafkaArgs,
    topic: &str,
    group: &str,
    timeout: Duration,
) -> Section<KafkaStatus> {
    let consumer: BaseConsumer = match topic_read::reader_config(args, Some(group)).create() {
        Ok(consumer) => consumer,
        Err(error) => return Section::failed(&kafka_error("create a consumer")(error)),
    };
    let ends = match topic_read::partition_ends(&consumer, topic, timeout) {
        Ok(ends) => ends,
        Err(ReadError::NoSuchTopic { .. }) => Vec::new(),
        Err(error) => return Section::unreachable(&error.into()),
    };
    match group_details(&consumer, topic, group, &ends, timeout) {
        Ok(details) => Section::found(details),
        Err(error) => Section::failed(&error),
    }
}

/// The group's offsets, lag and members on the partitions `ends`. Blocks.
fn group_details(
    consumer: &BaseConsumer,
    topic: &str,
    group: &str,
    ends: &[PartitionEnds],
    timeout: Duration,
) -> Result<KafkaStatus, CheckError> {
    let mut wanted = TopicPartitionList::new();
    for end in ends {
        wanted.add_partition(topic, end.partition);
    }
    let committed = if ends.is_empty() {
        TopicPartitionList::new()
    } else {
        consumer
            .committed_offsets(wanted, timeout)
            .map_err(kafka_error("read the group's committed offsets"))?
    };
    let partitions: Vec<PartitionStatus> = ends
        .iter()
        .map(|end| {
            let committed = committed
                .find_partition(topic, end.partition)
                .and_then(|element| match element.offset() {
                    Offset::Offset(offset) => Some(offset),
                    _ => None,
                });
            PartitionStatus {
                partition: end.partition,
                low_offset: end.low,
                end_offset: end.high,
                committed,
                lag: (end.high - committed.unwrap_or(end.low).max(end.low)).max(0),
            }
        })
        .collect();
    let groups = consumer
        .fetch_group_list(Some(group), timeout)
        .map_err(kafka_error("describe the group"))?;
    let found = groups.groups().iter().find(|found| found.name() == group);
    let members = found
        .map(|found| {
            found
                .members()
                .iter()
                .map(|member| GroupMember {
                    member_id: member.id().to_owned(),
                    client_id: member.client_id().to_owned(),
                    client_host: member.client_host().to_owned(),
                })
                .collect()
        })
        .unwrap_or_default();
    Ok(KafkaStatus {
        topic: topic.to_owned(),
        topic_exists: !ends.is_empty(),
        group: group.to_owned(),
        group_state: found.map(|found| found.state().to_owned()),
        total_lag: partitions.iter().map(|partition| partition.lag).sum(),
        partitions,
        members,
    })
}

async fn dead_letters(config: &Config) -> Section<DeadLetterStatus> {
    let topic = crate::kafka::dead_letter_topic(&config.topic.topic);
    let timeout = config.options.timeout;
    let ends: Vec<PartitionEnds> =
        match topic_read::partition_ends_of(&config.kafka, &topic, timeout).await {
            Ok(ends) => ends,
            Err(ReadError::NoSuchTopic { .. }) => Vec::new(),
            Err(error) => return Section::unreachable(&error.into()),
        };
    let count = ends.iter().map(|end| end.high - end.low).sum();
    let latest = if count == 0 {
        Vec::new()
    } else {
        match topic_read::read_to_end(
            &config.kafka,
            &topic,
            Start::Last(LATEST_DEAD_LETTERS),
            timeout,
        )
        .await
        {
            Ok(messages) => messages,
            Err(error) => return Section::failed(&error.into()),
        }
    };
    let replayed = replayed(&config.postgres, &topic).await;
    let mut latest: Vec<DeadLetter> = latest.into_iter().map(DeadLetter::from_message).collect();
    latest.sort_by(|a, b| {
        (b.timestamp, b.partition, b.offset).cmp(&(a.timestamp, a.partition, a.offset))
    });
    latest.truncate(LATEST_DEAD_LETTERS as usize);
    Section::found(DeadLetterStatus {
        topic,
        count,
        replayed,
        latest,
    })
}

/// How many dead letters of `dlq_topic` were replayed; `None` when PostgreSQL cannot say (its
/// own section reports why).
async fn replayed(postgres: &PostgresArgs, dlq_topic: &str) -> Option<i64> {
    let client = store::connect(&postgres.pg_url).await.ok()?;
    let exists: bool = client.query_one(REPLAYS_TABLE, &[]).await.ok()?.get(0);
    if !exists {
        return Some(0);
    }
    client
        .query_one(REPLAYED, &[&dlq_topic])
        .await
        .ok()
        .map(|row| row.get(0))
}

async fn subject(config: &Config, registry: &SchemaRegistryClient) -> Section<RegistryStatus> {
    let subject = value_subject(&config.topic.topic);
    let answered = async {
        let versions = registry.subject_versions(&subject).await?;
        let newest = registry.latest_version(&subject).await?;
        Ok::<_, SchemaError>((versions, newest))
    }
    .await;
    match answered {
        Ok((versions, newest)) => Section::found(RegistryStatus {
            subject,
            versions,
            newest_version: newest.as_ref().map(|newest| newest.version),
            newest_id: newest.map(|newest| newest.id),
        }),
        Err(error @ SchemaError::Refused { .. }) => Section::failed(&error.into()),
        Err(error) => Section::unreachable(&error.into()),
    }
}

async fn cassandra(config: &Config) -> Section<CassandraStatus> {
    let session = match sink::connect(&config.cassandra).await {
        Ok(session) => session,
        Err(error) => return Section::unreachable(&error.into()),
    };
    match cassandra_details(&session, &config.cassandra.keyspace).await {
        Ok(details) => Section::found(details),
        Err(error) => Section::failed(&error),
    }
}

async fn cassandra_details(
    session: &Session,
    keyspace: &str,
) -> Result<CassandraStatus, CheckError> {
    let known_migrations = sink::CQL_MIGRATIONS.len();
    let execute = |operation| {
        move |source| SinkError::Execute {
            operation,
            source: Box::new(source),
        }
    };
    let rows = |operation| {
        move |source: Box<dyn std::error::Error + Send + Sync>| SinkError::Rows {
            operation,
            source,
        }
    };
    let found = session
        .query_unpaged(KEYSPACE, (keyspace,))
        .await
        .map_err(execute("look the keyspace up"))?
        .into_rows_result()
        .map_err(|error| rows("look the keyspace up")(Box::new(error)))?
        .rows_num();
    if found == 0 {
        return Ok(CassandraStatus {
            keyspace: keyspace.to_owned(),
            keyspace_exists: false,
            migrations: Vec::new(),
            known_migrations,
        });
    }
    const READ_MIGRATIONS: &str = "read schema_migrations";
    let result = session
        .query_unpaged(MIGRATIONS.replace("{{keyspace}}", keyspace), ())
        .await
        .map_err(execute(READ_MIGRATIONS))?
        .into_rows_result()
        .map_err(|error| rows(READ_MIGRATIONS)(Box::new(error)))?;
    let mut migrations: Vec<AppliedMigration> = result
        .rows::<(i32, Option<String>, Option<DateTime<Utc>>)>()
        .map_err(|error| rows(READ_MIGRATIONS)(Box::new(error)))?
        .map(|row| {
            row.map(|(version, name, applied_at)| AppliedMigration {
                version,
                name,
                applied_at,
            })
        })
        .collect::<Result<_, _>>()
        .map_err(|error| rows(READ_MIGRATIONS)(Box::new(error)))?;
    migrations.sort_by_key(|migration| migration.version);
    Ok(CassandraStatus {
        keyspace: keyspace.to_owned(),
        keyspace_exists: true,
        migrations,
        known_migrations,
    })
}

impl Report {
    /// Sets the verdict and the problems from what was found, by the rules of the module doc.
    fn judge(&mut self, options: &StatusOptions) {
        let mut problems = Vec::new();
        let mut unreachable = false;
        let now = self.checked_at;
        let max_age = options.max_backlog_age.as_secs_f64();
        let mut section = |name: &str, reachable: bool, error: &Option<String>| {
            if let Some(error) = error {
                let state = if reachable { "failed" } else { "unreachable" };
                problems.push(format!("{name} {state}: {error}"));
            }
            unreachable |= !reachable;
        };
        section("PostgreSQL", self.postgres.reachable, &self.postgres.error);
        section("Kafka", self.kafka.reachable, &self.kafka.error);
        section(
            "dead letters",
            self.dead_letters.reachable,
            &self.dead_letters.error,
        );
        section("registry", self.registry.reachable, &self.registry.error);
        section("Cassandra", self.cassandra.reachable, &self.cassandra.error);

        if let Some(postgres) = &self.postgres.details {
            for cursor in &postgres.cdc_cursors {
                if let Some(age) = cursor
                    .oldest_unproduced_age_seconds
                    .filter(|age| *age > max_age)
                {
                    problems.push(format!(
                        "cdc cursor {:?}: {} unproduced change(s), the oldest {age:.0}s old (limit {})",
                        cursor.consumer,
                        cursor.unproduced,
                        humantime::format_duration(options.max_backlog_age)
                    ));
                }
            }
            if let Some(holder) = &postgres.oldest_xmin_holder {
                if let Some(age) = holder.age_seconds.filter(|age| *age > max_age) {
                    problems.push(format!(
                        "PostgreSQL: transaction of pid {} ({}) has held the xmin for {age:.0}s \
                         (limit {}); the cdc cannot pass it",
                        holder.pid,
                        holder
                            .application_name
                            .as_deref()
                            .unwrap_or("no application name"),
                        humantime::format_duration(options.max_backlog_age)
                    ));
                }
            }
        }
        if let Some(kafka) = &self.kafka.details {
            if !kafka.topic_exists {
                problems.push(format!("Kafka: topic {} does not exist", kafka.topic));
            }
            if kafka.total_lag > options.max_lag {
                problems.push(format!(
                    "Kafka: group {} lags {} message(s) behind (limit {})",
                    kafka.group, kafka.total_lag, options.max_lag
                ));
            }
            if kafka.total_lag > 0 && kafka.members.is_empty() {
                problems.push(format!(
                    "Kafka: group {} has no member while {} message(s) wait",
                    kafka.group, kafka.total_lag
                ));
            }
        }
        if let Some(letters) = &self.dead_letters.details {
            let newest = letters
                .latest
                .iter()
                .filter_map(|letter| letter.timestamp)
                .max();
            let unreplayed = letters.count - letters.replayed.unwrap_or(0);
            if let Some(newest) = newest.filter(|_| unreplayed > 0) {
                let age = now - newest;
                if age
                    .to_std()
                    .map_or(true, |age| age < options.dead_letter_window)
                {
                    problems.push(format!(
                        "dead letters: {unreplayed} not replayed, the newest on {} {}s old \
                         (window {})",
                        letters.topic,
                        age.num_seconds(),
                        humantime::format_duration(options.dead_letter_window)
                    ));
                }
            }
        }
        if let Some(registry) = &self.registry.details {
            if registry.versions.is_empty() {
                problems.push(format!(
                    "registry: subject {} has no schema; nothing can be decoded",
                    registry.subject
                ));
            }
        }
        if let Some(cassandra) = &self.cassandra.details {
            if !cassandra.keyspace_exists {
                problems.push(format!(
                    "Cassandra: keyspace {} does not exist (run userstream migrate)",
                    cassandra.keyspace
                ));
            } else if cassandra.migrations.len() < cassandra.known_migrations {
                problems.push(format!(
                    "Cassandra: {} of {} CQL migrations applied (run userstream migrate)",
                    cassandra.migrations.len(),
                    cassandra.known_migrations
                ));
            }
        }
        self.verdict = if unreachable {
            Verdict::Unreachable
        } else if problems.is_empty() {
            Verdict::Healthy
        } else {
            Verdict::Degraded
        };
        self.exit_code = self.verdict.exit_code();
        self.problems = problems;
    }
}
