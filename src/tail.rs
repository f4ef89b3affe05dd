//! `userstream tail`: the change topic (or its dead-letter topic) as a person reads it — each
//! message decoded through the Schema Registry and printed as one JSON line with its key, op,
//! source time, partition and offset. Like Confluent's `kafka-avro-console-consumer`, without a
//! JVM, and outside every consumer group: tailing never moves the processors' offsets.
//!
//! A value that cannot be decoded (it may well be why a message is on the dead-letter topic) is
//! shown with the reason in `decode_error` instead of `value`; tail never stops on it.

use std::io::Write;
use std::time::Duration;

use chrono::{DateTime, Utc};
use rdkafka::error::KafkaError;
use rdkafka::message::{Message, OwnedMessage};
use tokio_util::sync::CancellationToken;

use crate::codec::{DecodeError, Decoder};
use crate::config::{KafkaArgs, SchemaRegistryArgs, TopicArgs};
use crate::dead_letters::{self, header_text};
use crate::error::{chain, Retryable};
use crate::model::UserRecord;
use crate::schemas::{SchemaError, SchemaRegistryClient};
use crate::topic_read::{self, ReadError, Start};

/// Settings of `userstream tail`.
#[derive(Debug, Clone, clap::Args)]
pub struct Config {
    #[command(flatten)]
    pub kafka: KafkaArgs,
    #[command(flatten)]
    pub registry: SchemaRegistryArgs,
    #[command(flatten)]
    pub topic: TopicArgs,
    /// Start with the oldest message still held instead of what is produced from now on.
    #[arg(long = "from-beginning", env = "USERSTREAM_TAIL_FROM_BEGINNING")]
    pub from_beginning: bool,
    /// Show only the messages of this user id (the message key).
    #[arg(long = "key", env = "USERSTREAM_TAIL_KEY")]
    pub key: Option<String>,
    /// Read the dead-letter topic `<topic>.dlq`; each line also shows why and where from.
    #[arg(long = "dlq", env = "USERSTREAM_TAIL_DLQ")]
    pub dead_letters: bool,
    /// Stop after printing this many messages.
    #[arg(long = "max-messages", env = "USERSTREAM_TAIL_MAX_MESSAGES")]
    pub max_messages: Option<u64>,
    /// Stop once every message that was on the topic at start has been read, instead of
    /// following it.
    #[arg(long = "until-end", env = "USERSTREAM_TAIL_UNTIL_END")]
    pub until_end: bool,
    /// How long asking Kafka for the topic's partitions may take.
    #[arg(
        long = "kafka-timeout",
        env = "USERSTREAM_TAIL_KAFKA_TIMEOUT",
        default_value = "10s",
        value_parser = humantime::parse_duration
    )]
    pub kafka_timeout: Duration,
}

/// Why `tail` stopped.
#[derive(Debug, thiserror::Error)]
pub enum TailError {
    #[error(transparent)]
    Read(#[from] ReadError),
    #[error(transparent)]
    Schema(#[from] SchemaError),
    #[error("the reader schema is unusable")]
    ReaderSchema(#[source] DecodeError),
    #[error("Kafka: reading {topic}")]
    Kafka {
        topic: String,
        #[source]
        source: KafkaError,
    },
    #[error("cannot write the output")]
    Output(#[source] std::io::Error),
}

impl Retryable for TailError {
    fn is_retryable(&self) -> bool {
        match self {
            Self::Read(error) => error.is_retryable(),
            Self::Schema(error) => error.is_retryable(),
            Self::Kafka { .. } => true,
            Self::ReaderSchema(_) | Self::Output(_) => false,
        }
    }
}

/// One message as `tail` prints it.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Line {
    pub topic: String,
    pub partition: i32,
    pub offset: i64,
    /// The message's timestamp (when it was produced).
    pub timestamp: Option<DateTime<Utc>>,
    pub key: Option<String>,
    /// `c`, `u`, `d` (or `r`), from the `op` header.
    pub op: Option<String>,
    /// When the change was committed in PostgreSQL (the `source_ts_us` header).
    pub source_ts: Option<DateTime<Utc>>,
    pub source_txid: Option<i64>,
    /// The writer schema's registry id, from the wire-format header.
    pub schema_id: Option<u32>,
    /// The user as the newest schema reads it; `null` for a delete's tombstone.
    pub value: Option<UserRecord>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub decode_error: Option<String>,
    /// On the dead-letter topic: why the processor refused it, and where it came from.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error_kind: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error_message: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub original_partition: Option<i32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub original_offset: Option<i64>,
}

/// Prints the topic's messages to stdout until shutdown (or `--max-messages`, `--until-end`).
pub async fn run(config: Config, shutdown: CancellationToken) -> Result<(), TailError> {
    let stdout = std::io::stdout();
    let mut out = stdout.lock();
    let mut print = |line: &Line| {
        let text = serde_json::to_string(line).map_err(std::io::Error::other)?;
        writeln!(out, "{text}")?;
        out.flush()
    };
    tail(&config, &shutdown, &mut print).await?;
    Ok(())
}

/// Hands each message (after `--key`) to `emit`, and returns how many it handed over.
pub async fn tail(
    config: &Config,
    shutdown: &CancellationToken,
    emit: &mut dyn FnMut(&Line) -> std::io::Result<()>,
) -> Result<u64, TailError> {
    let topic = if config.dead_letters {
        crate::kafka::dead_letter_topic(&config.topic.topic)
    } else {
        config.topic.topic.clone()
    };
    let start = if config.from_beginning {
        Start::Beginning
    } else {
        Start::End
    };
    let registry = SchemaRegistryClient::new(&config.registry)?;
    let mut decoder = Decoder::new().map_err(TailError::ReaderSchema)?;
    let (consumer, ends) =
        topic_read::assign(&config.kafka, &topic, start, config.kafka_timeout).await?;
    // With --until-end: the partitions that still hold messages from before the start.
    let mut unread: Vec<_> = ends
        .iter()
        .filter(|end| config.from_beginning && end.low < end.high)
        .copied()
        .collect();
    let mut emitted = 0;
    loop {
        if config.until_end && unread.is_empty() {
            return Ok(emitted);
        }
        if config.max_messages.is_some_and(|max| emitted >= max) {
            return Ok(emitted);
        }
        let received = tokio::select! {
            received = consumer.recv() => received,
            _ = shutdown.cancelled() => return Ok(emitted),
        };
        let message = match received {
            Ok(message) => message.detach(),
            Err(KafkaError::PartitionEOF(partition)) => {
                unread.retain(|end| end.partition != partition);
                continue;
            }
            Err(source) => return Err(TailError::Kafka { topic, source }),
        };
        unread.retain(|end| {
            !(end.partition == message.partition() && message.offset() >= end.high - 1)
        });
        let key = message
            .key()
            .map(|key| String::from_utf8_lossy(key).into_owned());
        if config.key.is_some() && key != config.key {
            continue;
        }
        let line = describe(&message, key, &mut decoder, &registry).await;
        emit(&line).map_err(TailError::Output)?;
        emitted += 1;
    }
}

/// `message` as a [`Line`], its value decoded with the writer schema it names.
async fn describe(
    message: &OwnedMessage,
    key: Option<String>,
    decoder: &mut Decoder,
    registry: &SchemaRegistryClient,
) -> Line {
    let header = |name: &str| header_text(message, name);
    let source_ts = header("source_ts_us")
        .and_then(|us| us.parse::<i64>().ok())
        .and_then(DateTime::from_timestamp_micros);
    let (schema_id, value, decode_error) = match message.payload() {
        None => (None, None, None),
        Some(payload) => match decode(payload, decoder, registry).await {
            Ok(decoded) => (Some(decoded.schema_id), Some(decoded.record), None),
            Err(error) => (error.schema_id, None, Some(error.reason)),
        },
    };
    Line {
        topic: message.topic().to_owned(),
        partition: message.partition(),
        offset: message.offset(),
        timestamp: message
            .timestamp()
            .to_millis()
            .and_then(DateTime::from_timestamp_millis),
        key,
        op: header("op"),
        source_ts,
        source_txid: header("source_txid").and_then(|txid| txid.parse().ok()),
        schema_id,
        value,
        decode_error,
        error_kind: header(dead_letters::ERROR_KIND),
        error_message: header(dead_letters::ERROR_MESSAGE),
        original_partition: header(dead_letters::ORIGINAL_PARTITION).and_then(|p| p.parse().ok()),
        original_offset: header(dead_letters::ORIGINAL_OFFSET).and_then(|o| o.parse().ok()),
    }
}

/// Why a value could not be shown, and the schema id it named if it got that far.
struct Undecodable {
    schema_id: Option<u32>,
    reason: String,
}

async fn decode(
    payload: &[u8],
    decoder: &mut Decoder,
    registry: &SchemaRegistryClient,
) -> Result<crate::codec::DecodedChange, Undecodable> {
    match decoder.decode(payload) {
        Err(DecodeError::UnknownSchemaId(id)) => {
            let failed = |reason: String| Undecodable {
                schema_id: Some(id),
                reason,
            };
            let schema = registry
                .schema_by_id(id)
                .await
                .map_err(|error| failed(chain(&error)))?;
            decoder
                .register_writer(id, &schema)
                .map_err(|error| failed(chain(&error)))?;
            decoder
                .decode(payload)
                .map_err(|error| failed(chain(&error)))
        }
        decoded => decoded.map_err(|error| Undecodable {
            schema_id: None,
            reason: chain(&error),
        }),
    }
}
