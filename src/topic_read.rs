//! Reading a topic from outside every consumer group, for the operator commands (`status`,
//! `dead-letters`, `tail`): partitions are assigned, never subscribed, and nothing is committed,
//! so reading never moves the processors' offsets or joins their group.

use std::collections::BTreeSet;
use std::time::Duration;

use rdkafka::consumer::{BaseConsumer, Consumer, ConsumerContext, StreamConsumer};
use rdkafka::error::KafkaError;
use rdkafka::message::OwnedMessage;
use rdkafka::types::RDKafkaErrorCode;
use rdkafka::{ClientConfig, ClientContext, Message, Offset, TopicPartitionList};

use crate::config::KafkaArgs;
use crate::error::Retryable;

/// The group id of the operator commands' consumers. They only assign partitions, so they never
/// join this group or commit to it; librdkafka just wants one set.
const READER_GROUP: &str = "userstream-operator";

/// The consumer of the operator commands.
pub type Reader = StreamConsumer<QuietEof>;

/// A client context that logs librdkafka's errors, except the partition-EOF events the readers
/// ask for to learn where a partition ends.
pub struct QuietEof;

impl ClientContext for QuietEof {
    fn error(&self, error: KafkaError, reason: &str) {
        let eof = matches!(
            error,
            KafkaError::PartitionEOF(_) | KafkaError::Global(RDKafkaErrorCode::PartitionEOF)
        );
        if !eof {
            tracing::error!(%error, reason, "Kafka client error");
        }
    }
}

impl ConsumerContext for QuietEof {}

/// Where reading starts in each partition.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Start {
    /// The oldest message still held.
    Beginning,
    /// After the newest message: only what is produced from now on.
    End,
    /// The newest `n` messages of each partition.
    Last(i64),
}

/// One partition and the offsets it holds: `low` is the oldest one's, `high` the next to be
/// written (so `high - low` messages, without compaction).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub struct PartitionEnds {
    pub partition: i32,
    pub low: i64,
    pub high: i64,
}

impl PartitionEnds {
    /// The offset `start` means in this partition.
    fn start_offset(&self, start: Start) -> i64 {
        match start {
            Start::Beginning => self.low,
            Start::End => self.high,
            Start::Last(count) => (self.high - count).max(self.low),
        }
    }
}

/// Why a topic could not be read.
#[derive(Debug, thiserror::Error)]
pub enum ReadError {
    #[error("Kafka: {operation} of topic {topic}")]
    Kafka {
        operation: &'static str,
        topic: String,
        #[source]
        source: KafkaError,
    },
    #[error("topic {topic} does not exist")]
    NoSuchTopic { topic: String },
    #[error("reading {topic} took longer than {timeout:?}; partitions {open:?} were not read to their end")]
    TimedOut {
        topic: String,
        timeout: Duration,
        open: Vec<i32>,
    },
    #[error("a Kafka metadata request was cancelled")]
    Cancelled(#[source] tokio::task::JoinError),
}

impl Retryable for ReadError {
    fn is_retryable(&self) -> bool {
        match self {
            Self::Kafka { .. } | Self::TimedOut { .. } => true,
            Self::NoSuchTopic { .. } | Self::Cancelled(_) => false,
        }
    }
}

fn kafka(operation: &'static str, topic: &str) -> impl Fn(KafkaError) -> ReadError {
    let topic = topic.to_owned();
    move |source| ReadError::Kafka {
        operation,
        topic: topic.clone(),
        source,
    }
}

/// A consumer configuration that commits nothing, in `group_id` (the processors' group, to read
/// its committed offsets) or in none that anyone joins.
pub fn reader_config(args: &KafkaArgs, group_id: Option<&str>) -> ClientConfig {
    let mut config = crate::kafka::consumer_config(args, group_id.unwrap_or(READER_GROUP));
    config
        .set("enable.auto.commit", "false")
        .set("enable.partition.eof", "true");
    config
}

/// The partitions of `topic` and their offsets, asked of the broker through `consumer`. Blocks:
/// call it from a blocking task.
pub fn partition_ends(
    consumer: &BaseConsumer,
    topic: &str,
    timeout: Duration,
) -> Result<Vec<PartitionEnds>, ReadError> {
    let metadata = consumer
        .fetch_metadata(Some(topic), timeout)
        .map_err(kafka("read the metadata", topic))?;
    let Some(found) = metadata
        .topics()
        .iter()
        .find(|found| found.name() == topic && found.error().is_none())
    else {
        return Err(ReadError::NoSuchTopic {
            topic: topic.to_owned(),
        });
    };
    let mut partitions: Vec<i32> = found.partitions().iter().map(|p| p.id()).collect();
    partitions.sort_unstable();
    partitions
        .into_iter()
        .map(|partition| {
            let (low, high) = consumer
                .fetch_watermarks(topic, partition, timeout)
                .map_err(kafka("read the offsets", topic))?;
            Ok(PartitionEnds {
                partition,
                low,
                high,
            })
        })
        .collect()
}

/// [`partition_ends`] from async code, with a consumer of its own.
pub async fn partition_ends_of(
    args: &KafkaArgs,
    topic: &str,
    timeout: Duration,
) -> Result<Vec<PartitionEnds>, ReadError> {
    let consumer: BaseConsumer = reader_config(args, None)
        .create()
        .map_err(kafka("create a consumer", topic))?;
    let topic = topic.to_owned();
    tokio::task::spawn_blocking(move || partition_ends(&consumer, &topic, timeout))
        .await
        .map_err(ReadError::Cancelled)?
}

/// A consumer assigned every partition of `topic` from `start`, and the partitions' offsets as
/// they were just before.
pub async fn assign(
    args: &KafkaArgs,
    topic: &str,
    start: Start,
    timeout: Duration,
) -> Result<(Reader, Vec<PartitionEnds>), ReadError> {
    let ends = partition_ends_of(args, topic, timeout).await?;
    let consumer: Reader = reader_config(args, None)
        .create_with_context(QuietEof)
        .map_err(kafka("create a consumer", topic))?;
    let mut assignment = TopicPartitionList::new();
    for end in &ends {
        assignment
            .add_partition_offset(
                topic,
                end.partition,
                Offset::Offset(end.start_offset(start)),
            )
            .map_err(kafka("assign the partitions", topic))?;
    }
    consumer
        .assign(&assignment)
        .map_err(kafka("assign the partitions", topic))?;
    Ok((consumer, ends))
}

/// Every message of `topic` from `start` up to the end each partition had when reading began,
/// partition by partition in offset order; `timeout` bounds the whole read.
pub async fn read_to_end(
    args: &KafkaArgs,
    topic: &str,
    start: Start,
    timeout: Duration,
) -> Result<Vec<OwnedMessage>, ReadError> {
    let (consumer, ends) = assign(args, topic, start, timeout).await?;
    let mut open: BTreeSet<i32> = ends
        .iter()
        .filter(|end| end.start_offset(start) < end.high)
        .map(|end| end.partition)
        .collect();
    let mut messages = Vec::new();
    let deadline = tokio::time::Instant::now() + timeout;
    while !open.is_empty() {
        let received = tokio::time::timeout_at(deadline, consumer.recv())
            .await
            .map_err(|_| ReadError::TimedOut {
                topic: topic.to_owned(),
                timeout,
                open: open.iter().copied().collect(),
            })?;
        match received {
            Ok(message) => {
                let partition = message.partition();
                let Some(end) = ends.iter().find(|end| end.partition == partition) else {
                    continue;
                };
                if message.offset() < end.high {
                    messages.push(message.detach());
                }
                if message.offset() >= end.high - 1 {
                    open.remove(&partition);
                }
            }
            Err(KafkaError::PartitionEOF(partition)) => {
                open.remove(&partition);
            }
            Err(source) => return Err(kafka("read", topic)(source)),
        }
    }
    messages.sort_by_key(|message| (message.partition(), message.offset()));
    Ok(messages)
}
