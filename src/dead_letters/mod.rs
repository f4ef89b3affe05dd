//! `userstream dead-letters list|replay`: what is on `<topic>.dlq`, and putting it back on the
//! topic once its cause is fixed.
//!
//! `list` reads the dead-letter topic from its beginning to its end and shows each dead letter's
//! coordinates, key, `error_kind`, message and where it came from, filtered by `--kind` and
//! `--since`. `replay` re-produces the selected ones to the main topic with their key, value and
//! original headers (the dead-letter headers removed, `replay_of_dlq_partition` and
//! `replay_of_dlq_offset` added), so the processor handles them as if the cdc had sent them again.
//!
//! Replay contract:
//! * Each dead letter is recorded in PostgreSQL's `dead_letter_replays` (keyed by dead-letter
//!   topic, partition and offset) only after Kafka acknowledged its copy; a later replay skips the
//!   recorded ones. A crash between the acknowledgement and the record replays that one message
//!   again next time, which is harmless: every Cassandra write is idempotent and ordered by
//!   source time, so an old version replayed after a newer one changes nothing.
//! * One replay per dead-letter topic at a time (a PostgreSQL advisory lock).
//! * If the cause is not fixed, the processor dead-letters the copy again: a new dead letter with
//!   a new offset, which still carries the `replay_of_dlq_*` headers. Replay leaves such
//!   "dead-lettered again" letters alone unless `--again` is given (after a second fix), so
//!   replaying repeatedly never cycles a message that is still poison.
//! * A dead letter whose payload was dropped for size cannot be replayed; it is counted apart.

use std::collections::{BTreeMap, HashSet};
use std::fmt;
use std::io::Write;
use std::time::Duration;

use chrono::{DateTime, Utc};
use rdkafka::error::KafkaError;
use rdkafka::message::{Header, Headers, Message, OwnedHeaders, OwnedMessage};
use rdkafka::producer::{FutureProducer, FutureRecord};
use tokio_util::sync::CancellationToken;

use crate::config::{KafkaArgs, PostgresArgs, TopicArgs};
use crate::error::Retryable;
use crate::store::{self, StoreError};
use crate::topic_read::{self, ReadError, Start};

/// The headers the processor adds to a dead letter (`processor::work` writes them by these names).
pub const ERROR_KIND: &str = "error_kind";
pub const ERROR_MESSAGE: &str = "error_message";
pub const ORIGINAL_TOPIC: &str = "original_topic";
pub const ORIGINAL_PARTITION: &str = "original_partition";
pub const ORIGINAL_OFFSET: &str = "original_offset";
pub const PAYLOAD_DROPPED: &str = "payload_dropped";
/// The headers a replayed message carries: which dead letter it is a copy of.
pub const REPLAY_OF_PARTITION: &str = "replay_of_dlq_partition";
pub const REPLAY_OF_OFFSET: &str = "replay_of_dlq_offset";

/// Headers that describe a dead letter rather than the change, left out of a replayed copy.
const DEAD_LETTER_HEADERS: &[&str] = &[
    ERROR_KIND,
    ERROR_MESSAGE,
    ORIGINAL_TOPIC,
    ORIGINAL_PARTITION,
    ORIGINAL_OFFSET,
    PAYLOAD_DROPPED,
    REPLAY_OF_PARTITION,
    REPLAY_OF_OFFSET,
];

const REPLAYED: &str = include_str!("sql/replayed.sql");
const RECORD_REPLAY: &str = include_str!("sql/record_replay.sql");
const LOCK_REPLAY: &str = include_str!("sql/lock_replay.sql");

/// Settings of `userstream dead-letters`.
#[derive(Debug, Clone, clap::Args)]
pub struct Config {
    #[command(subcommand)]
    pub action: Action,
}

#[derive(Debug, Clone, clap::Subcommand)]
pub enum Action {
    /// Show the dead letters of `<topic>.dlq`: partition/offset, time, key, error kind, where
    /// they came from and the error message.
    List(ListArgs),
    /// Re-produce the selected dead letters to the topic (once the cause is fixed); each one at
    /// most once, recorded in PostgreSQL.
    Replay(ReplayArgs),
}

/// Which dead letters, and where they are.
#[derive(Debug, Clone, clap::Args)]
pub struct Selection {
    #[command(flatten)]
    pub kafka: KafkaArgs,
    #[command(flatten)]
    pub topic: TopicArgs,
    /// Only dead letters of this error_kind (repeat the flag, or comma-separate, for several).
    #[arg(long = "kind", env = "USERSTREAM_DLQ_KIND", value_delimiter = ',')]
    pub kinds: Vec<String>,
    /// Only dead letters written at or after this time: RFC 3339 (2026-12-02T15:00:00Z) or a
    /// duration before now (90m, 2h).
    #[arg(long = "since", env = "USERSTREAM_DLQ_SINCE", value_parser = parse_since)]
    pub since: Option<DateTime<Utc>>,
    /// How long reading the dead-letter topic to its end may take.
    #[arg(
        long = "read-timeout",
        env = "USERSTREAM_DLQ_READ_TIMEOUT",
        default_value = "30s",
        value_parser = humantime::parse_duration
    )]
    pub read_timeout: Duration,
}

/// Settings of `dead-letters list`.
#[derive(Debug, Clone, clap::Args)]
pub struct ListArgs {
    #[command(flatten)]
    pub selection: Selection,
    /// One JSON object per line instead of a table.
    #[arg(long = "json", env = "USERSTREAM_DLQ_JSON")]
    pub json: bool,
}

/// Settings of `dead-letters replay`.
#[derive(Debug, Clone, clap::Args)]
pub struct ReplayArgs {
    #[command(flatten)]
    pub selection: Selection,
    /// Where the replays are recorded (`dead_letter_replays`).
    #[command(flatten)]
    pub postgres: PostgresArgs,
    /// Also replay dead letters that are themselves replays dead-lettered again (they carry
    /// replay_of_dlq_offset): after fixing what made the replay fail.
    #[arg(long = "again", env = "USERSTREAM_DLQ_AGAIN")]
    pub again: bool,
}

/// Why a dead-letter command failed.
#[derive(Debug, thiserror::Error)]
pub enum DeadLettersError {
    #[error("cannot read the dead-letter topic")]
    Read(#[from] ReadError),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("Kafka: {operation}")]
    Kafka {
        operation: &'static str,
        #[source]
        source: KafkaError,
    },
    #[error("another replay of {dlq_topic} is running; try again when it has finished")]
    ReplayRunning { dlq_topic: String },
    #[error("cannot write the output")]
    Output(#[source] std::io::Error),
}

impl Retryable for DeadLettersError {
    fn is_retryable(&self) -> bool {
        match self {
            Self::Read(error) => error.is_retryable(),
            Self::Store(error) => error.is_retryable(),
            Self::Kafka { .. } | Self::ReplayRunning { .. } => true,
            Self::Output(_) => false,
        }
    }
}

/// `--since`: a time, or a duration before now.
fn parse_since(raw: &str) -> Result<DateTime<Utc>, String> {
    if let Ok(time) = DateTime::parse_from_rfc3339(raw) {
        return Ok(time.with_timezone(&Utc));
    }
    let ago = humantime::parse_duration(raw).map_err(|error| {
        format!("expected an RFC 3339 time or a duration such as 2h, got {raw:?} ({error})")
    })?;
    chrono::Duration::from_std(ago)
        .ok()
        .and_then(|ago| Utc::now().checked_sub_signed(ago))
        .ok_or_else(|| format!("{raw:?} reaches before any representable time"))
}

/// One message of the dead-letter topic, as the processor wrote it.
#[derive(Debug, Clone, serde::Serialize)]
pub struct DeadLetter {
    pub partition: i32,
    pub offset: i64,
    /// When it was dead-lettered (the message's timestamp).
    pub timestamp: Option<DateTime<Utc>>,
    /// The user id, when the key is one.
    pub key: Option<String>,
    pub error_kind: Option<String>,
    pub error_message: Option<String>,
    pub original_topic: Option<String>,
    pub original_partition: Option<i32>,
    pub original_offset: Option<i64>,
    /// The dead letter (`partition/offset`) this one is a failed replay of.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub replay_of: Option<String>,
    /// Why it was produced without its payload, which makes it unreplayable.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub payload_dropped: Option<String>,
    /// The message itself, for a replay.
    #[serde(skip)]
    pub message: OwnedMessage,
}

impl DeadLetter {
    pub fn from_message(message: OwnedMessage) -> Self {
        let text = |name: &str| header_text(&message, name);
        Self {
            partition: message.partition(),
            offset: message.offset(),
            timestamp: message
                .timestamp()
                .to_millis()
                .and_then(DateTime::from_timestamp_millis),
            key: message
                .key()
                .map(|key| String::from_utf8_lossy(key).into_owned()),
            error_kind: text(ERROR_KIND),
            error_message: text(ERROR_MESSAGE),
            original_topic: text(ORIGINAL_TOPIC),
            original_partition: text(ORIGINAL_PARTITION).and_then(|value| value.parse().ok()),
            original_offset: text(ORIGINAL_OFFSET).and_then(|value| value.parse().ok()),
            payload_dropped: text(PAYLOAD_DROPPED),
            replay_of: text(REPLAY_OF_PARTITION)
                .zip(text(REPLAY_OF_OFFSET))
                .map(|(partition, offset)| format!("{partition}/{offset}")),
            message,
        }
    }
}

/// The value of header `name` as text (invalid UTF-8 replaced).
pub fn header_text(message: &OwnedMessage, name: &str) -> Option<String> {
    message
        .headers()?
        .iter()
        .find(|header| header.key == name)
        .and_then(|header| header.value)
        .map(|value| String::from_utf8_lossy(value).into_owned())
}

impl Selection {
    fn selects(&self, letter: &DeadLetter) -> bool {
        let kind_matches = self.kinds.is_empty()
            || letter
                .error_kind
                .as_ref()
                .is_some_and(|kind| self.kinds.contains(kind));
        let recent_enough = match (self.since, letter.timestamp) {
            (None, _) => true,
            (Some(since), Some(timestamp)) => timestamp >= since,
            (Some(_), None) => false,
        };
        kind_matches && recent_enough
    }

    fn dead_letter_topic(&self) -> String {
        crate::kafka::dead_letter_topic(&self.topic.topic)
    }

    /// Every dead letter now on the topic, oldest first in each partition.
    async fn read_all(&self) -> Result<Vec<DeadLetter>, DeadLettersError> {
        let messages = topic_read::read_to_end(
            &self.kafka,
            &self.dead_letter_topic(),
            Start::Beginning,
            self.read_timeout,
        )
        .await?;
        Ok(messages.into_iter().map(DeadLetter::from_message).collect())
    }
}

/// Runs one action and prints its outcome.
pub async fn run(config: Config, shutdown: CancellationToken) -> Result<(), DeadLettersError> {
    match config.action {
        Action::List(args) => {
            let letters = tokio::select! {
                letters = list(&args.selection) => letters?,
                _ = shutdown.cancelled() => return Ok(()),
            };
            print_list(&mut std::io::stdout().lock(), &letters, args.json)
                .map_err(DeadLettersError::Output)?;
        }
        Action::Replay(args) => {
            let report = replay(&args, &shutdown).await?;
            writeln!(std::io::stdout().lock(), "{report}").map_err(DeadLettersError::Output)?;
        }
    }
    Ok(())
}

/// The dead letters `selection` selects.
pub async fn list(selection: &Selection) -> Result<Vec<DeadLetter>, DeadLettersError> {
    let mut letters = selection.read_all().await?;
    letters.retain(|letter| selection.selects(letter));
    Ok(letters)
}

fn print_list(out: &mut impl Write, letters: &[DeadLetter], json: bool) -> std::io::Result<()> {
    if json {
        for letter in letters {
            let line = serde_json::to_string(letter).map_err(std::io::Error::other)?;
            writeln!(out, "{line}")?;
        }
        return Ok(());
    }
    writeln!(
        out,
        "{:<12} {:<24} {:<38} {:<24} {:<20} message",
        "dlq p/offset", "dead-lettered", "key", "kind", "original p/offset"
    )?;
    let shown = |value: &Option<String>| value.clone().unwrap_or_else(|| "-".to_owned());
    for letter in letters {
        let original = match (letter.original_partition, letter.original_offset) {
            (Some(partition), Some(offset)) => format!("{partition}/{offset}"),
            _ => "-".to_owned(),
        };
        let mut message = shown(&letter.error_message);
        if letter.payload_dropped.is_some() {
            message.push_str(" [payload dropped]");
        }
        if let Some(replay_of) = &letter.replay_of {
            message.push_str(&format!(" [failed replay of {replay_of}]"));
        }
        writeln!(
            out,
            "{:<12} {:<24} {:<38} {:<24} {:<20} {message}",
            format!("{}/{}", letter.partition, letter.offset),
            letter.timestamp.map_or_else(
                || "-".to_owned(),
                |time| time.to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
            ),
            shown(&letter.key),
            shown(&letter.error_kind),
            original,
        )?;
    }
    writeln!(out, "{} dead letter(s)", letters.len())?;
    Ok(())
}

/// What a replay did.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct ReplayReport {
    /// The topic the copies went to.
    pub topic: String,
    /// Copies produced now, by the partition they went to.
    pub replayed: BTreeMap<i32, u64>,
    /// Selected, but replayed by an earlier run.
    pub already_replayed: u64,
    /// Not selected by `--kind` / `--since`.
    pub skipped_by_filter: u64,
    /// Selected, but a replay that was dead-lettered again, left alone without `--again`.
    pub failed_replays: u64,
    /// Selected, but dead-lettered without a payload (too large), so there is nothing to replay.
    pub without_payload: u64,
    /// Shutdown came before every selected dead letter was replayed.
    pub interrupted: bool,
}

impl ReplayReport {
    pub fn replayed_total(&self) -> u64 {
        self.replayed.values().sum()
    }
}

impl fmt::Display for ReplayReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "replayed {} dead letter(s) to {}",
            self.replayed_total(),
            self.topic
        )?;
        if !self.replayed.is_empty() {
            let by_partition: Vec<String> = self
                .replayed
                .iter()
                .map(|(partition, count)| format!("partition {partition}: {count}"))
                .collect();
            write!(f, " ({})", by_partition.join(", "))?;
        }
        write!(
            f,
            "; {} already replayed, {} skipped by the filter, {} without payload",
            self.already_replayed, self.skipped_by_filter, self.without_payload
        )?;
        if self.failed_replays > 0 {
            write!(
                f,
                "; {} dead-lettered again after an earlier replay, left alone (--again replays \
                 them)",
                self.failed_replays
            )?;
        }
        if self.interrupted {
            write!(f, "; interrupted by shutdown")?;
        }
        Ok(())
    }
}

/// Replays the dead letters `args` selects that were not replayed before.
pub async fn replay(
    args: &ReplayArgs,
    shutdown: &CancellationToken,
) -> Result<ReplayReport, DeadLettersError> {
    let selection = &args.selection;
    let dlq_topic = selection.dead_letter_topic();
    let mut pg = store::connect(&args.postgres.pg_url).await?;
    store::migrate(&mut pg).await?;
    let locked: bool = pg
        .query_one(LOCK_REPLAY, &[&dlq_topic])
        .await
        .and_then(|row| row.try_get(0))
        .map_err(|source| StoreError::Postgres {
            operation: "lock the dead-letter replay",
            source,
        })?;
    if !locked {
        return Err(DeadLettersError::ReplayRunning { dlq_topic });
    }
    let replayed_before: HashSet<(i32, i64)> = pg
        .query(REPLAYED, &[&dlq_topic])
        .await
        .and_then(|rows| {
            rows.iter()
                .map(|row| Ok((row.try_get(0)?, row.try_get(1)?)))
                .collect()
        })
        .map_err(|source| StoreError::Postgres {
            operation: "read the replayed dead letters",
            source,
        })?;
    let letters = selection.read_all().await?;
    let producer: FutureProducer = crate::kafka::producer_config(&selection.kafka)
        .create()
        .map_err(|source| DeadLettersError::Kafka {
            operation: "create the producer",
            source,
        })?;

    let mut report = ReplayReport {
        topic: selection.topic.topic.clone(),
        ..ReplayReport::default()
    };
    for letter in &letters {
        if !selection.selects(letter) {
            report.skipped_by_filter += 1;
        } else if replayed_before.contains(&(letter.partition, letter.offset)) {
            report.already_replayed += 1;
        } else if letter.payload_dropped.is_some() {
            report.without_payload += 1;
        } else if letter.replay_of.is_some() && !args.again {
            report.failed_replays += 1;
        } else if shutdown.is_cancelled() {
            report.interrupted = true;
            break;
        } else {
            let (partition, offset) = produce_copy(&producer, &report.topic, letter).await?;
            pg.execute(
                RECORD_REPLAY,
                &[
                    &dlq_topic,
                    &letter.partition,
                    &letter.offset,
                    &letter.error_kind,
                    &letter.original_partition,
                    &letter.original_offset,
                    &report.topic,
                    &partition,
                    &offset,
                ],
            )
            .await
            .map_err(|source| StoreError::Postgres {
                operation: "record a replayed dead letter",
                source,
            })?;
            tracing::info!(
                dlq_partition = letter.partition,
                dlq_offset = letter.offset,
                partition,
                offset,
                "dead letter replayed"
            );
            *report.replayed.entry(partition).or_default() += 1;
        }
    }
    Ok(report)
}

/// Produces `letter`'s key, value and original headers to `topic`, marked as a replay; where the
/// copy landed once Kafka acknowledged it. The key decides the partition, as for the cdc's
/// messages, so the copy joins its user's other versions.
async fn produce_copy(
    producer: &FutureProducer,
    topic: &str,
    letter: &DeadLetter,
) -> Result<(i32, i64), DeadLettersError> {
    let message = &letter.message;
    let mut headers = OwnedHeaders::new();
    if let Some(original) = message.headers() {
        for header in original
            .iter()
            .filter(|header| !DEAD_LETTER_HEADERS.contains(&header.key))
        {
            headers = headers.insert(header);
        }
    }
    let (partition, offset) = (letter.partition.to_string(), letter.offset.to_string());
    headers = headers
        .insert(Header {
            key: REPLAY_OF_PARTITION,
            value: Some(&partition),
        })
        .insert(Header {
            key: REPLAY_OF_OFFSET,
            value: Some(&offset),
        });
    let mut record: FutureRecord<'_, [u8], [u8]> = FutureRecord::to(topic).headers(headers);
    if let Some(key) = message.key() {
        record = record.key(key);
    }
    if let Some(payload) = message.payload() {
        record = record.payload(payload);
    }
    let delivery = producer
        .send(record, rdkafka::util::Timeout::Never)
        .await
        .map_err(|(source, _)| DeadLettersError::Kafka {
            operation: "produce a replayed dead letter",
            source,
        })?;
    Ok((delivery.partition, delivery.offset))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn since_takes_a_time_or_a_duration_ago() {
        assert_eq!(
            parse_since("2026-12-02T15:00:00Z").unwrap(),
            DateTime::parse_from_rfc3339("2026-12-02T15:00:00Z").unwrap()
        );
        let two_hours_ago = parse_since("2h").unwrap();
        let expected = Utc::now() - chrono::Duration::hours(2);
        assert!((two_hours_ago - expected).num_seconds().abs() < 5);
        assert!(parse_since("yesterday").is_err());
    }

    #[test]
    fn the_report_says_how_many_went_where() {
        let report = ReplayReport {
            topic: "users".to_owned(),
            replayed: BTreeMap::from([(0, 2), (2, 1)]),
            already_replayed: 4,
            skipped_by_filter: 5,
            without_payload: 1,
            failed_replays: 0,
            interrupted: false,
        };
        assert_eq!(report.replayed_total(), 3);
        assert_eq!(
            report.to_string(),
            "replayed 3 dead letter(s) to users (partition 0: 2, partition 2: 1); 4 already \
             replayed, 5 skipped by the filter, 1 without payload"
        );
        let again = ReplayReport {
            failed_replays: 2,
            ..report
        };
        assert!(again.to_string().ends_with(
            "; 2 dead-lettered again after an earlier replay, left alone (--again replays them)"
        ));
    }
}
