//! `userstream process`: Kafka → decode → normalize → Cassandra.
//!
//! The consumer loop reads each message, turns it into a piece of [`Work`] — an upsert, a
//! delete, or a dead letter saying why the message is unusable — and hands it to one of
//! `--write-lanes` lanes chosen by the message key. A lane runs its work in order, so versions of
//! one user are never written concurrently, while different users are written in parallel.
//!
//! Delivery contract:
//! * An offset is stored only after its write (or its dead-letter produce) succeeded, and only
//!   once every earlier offset of its partition has too ([`offsets::OffsetTracker`]); the stored
//!   offsets are committed in the background and synchronously at shutdown.
//! * Poison messages (undecodable, unknown or incompatible schema, invalid values, missing key or
//!   headers) go to `<topic>.dlq` with headers naming the error kind, the message and the original
//!   topic/partition/offset, and the processor moves on.
//! * Transient failures (Cassandra, the registry, the broker) are retried with backoff, forever,
//!   and never dead-lettered; nothing past them is committed.

mod metric_handles;
pub mod offsets;
mod work;

use std::collections::VecDeque;
use std::hash::{Hash, Hasher};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use rdkafka::consumer::{
    BaseConsumer, CommitMode, Consumer, ConsumerContext, Rebalance, StreamConsumer,
};
use rdkafka::error::KafkaError;
use rdkafka::message::{Message, OwnedMessage};
use rdkafka::producer::FutureProducer;
use rdkafka::statistics::Statistics;
use rdkafka::types::RDKafkaErrorCode;
use rdkafka::ClientContext;
use tokio::sync::mpsc;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use crate::codec::Decoder;
use crate::config::{CassandraArgs, KafkaArgs, MetricsArgs, SchemaRegistryArgs, TopicArgs};
use crate::error::Retryable;
use crate::retry::{retry, BackoffPolicy, RetryError};
use crate::schemas::SchemaRegistryClient;
use crate::sink::{self, CassandraSink, SinkError};
use crate::telemetry::{self, Health};

use metric_handles::{ConsumeMetrics, LaneMetrics};
use offsets::{OffsetTracker, Ticket};
pub use work::{DeadLetter, Work};

/// Settings of `userstream process`.
#[derive(Debug, Clone, clap::Args)]
pub struct Config {
    #[command(flatten)]
    pub kafka: KafkaArgs,
    #[command(flatten)]
    pub registry: SchemaRegistryArgs,
    #[command(flatten)]
    pub cassandra: CassandraArgs,
    #[command(flatten)]
    pub metrics: MetricsArgs,
    #[command(flatten)]
    pub topic: TopicArgs,
    #[command(flatten)]
    pub options: ProcessOptions,
}

/// The processor's own settings (also part of `userstream run`).
#[derive(Debug, Clone, clap::Args)]
pub struct ProcessOptions {
    /// Kafka consumer group of the processors; instances in one group share the partitions.
    #[arg(
        long = "group-id",
        env = "USERSTREAM_GROUP_ID",
        default_value = "userstream-processor"
    )]
    pub group_id: String,

    /// Users written concurrently: messages are spread over this many ordered lanes by key.
    #[arg(
        long = "write-lanes",
        env = "USERSTREAM_WRITE_LANES",
        default_value_t = 64
    )]
    pub write_lanes: usize,

    /// Messages each lane may hold waiting (the consumer pauses when a lane is full).
    #[arg(
        long = "lane-capacity",
        env = "USERSTREAM_LANE_CAPACITY",
        default_value_t = 16
    )]
    pub lane_capacity: usize,

    /// How long shutdown waits for in-flight writes before committing what was written.
    #[arg(
        long = "drain-timeout",
        env = "USERSTREAM_DRAIN_TIMEOUT",
        default_value = "30s",
        value_parser = humantime::parse_duration
    )]
    pub drain_timeout: Duration,
}

/// Why the processor stopped.
#[derive(Debug, thiserror::Error)]
pub enum ProcessError {
    #[error(transparent)]
    Sink(#[from] SinkError),
    #[error(transparent)]
    Schema(#[from] crate::schemas::SchemaError),
    #[error("the reader schema is unusable")]
    ReaderSchema(#[source] crate::codec::DecodeError),
    #[error("Kafka: {operation}")]
    Kafka {
        operation: &'static str,
        #[source]
        source: KafkaError,
    },
    /// The dead-letter topic refused a dead letter in a way no retry changes (authorization,
    /// topic policy, even without its payload too large).
    #[error(
        "the dead-letter topic refused the dead letter of partition {partition}, offset {offset}"
    )]
    DeadLetterRefused {
        partition: i32,
        offset: i64,
        #[source]
        source: KafkaError,
    },
    #[error(transparent)]
    Telemetry(#[from] telemetry::TelemetryError),
}

impl Retryable for ProcessError {
    fn is_retryable(&self) -> bool {
        match self {
            Self::Sink(error) => error.is_retryable(),
            Self::Schema(error) => error.is_retryable(),
            Self::Kafka { .. } => true,
            Self::ReaderSchema(_) | Self::DeadLetterRefused { .. } | Self::Telemetry(_) => false,
        }
    }
}

fn kafka(operation: &'static str) -> impl Fn(KafkaError) -> ProcessError {
    move |source| ProcessError::Kafka { operation, source }
}

/// The consumer's context: publishes librdkafka's view of the consumer lag, and hands partitions
/// over cleanly in a rebalance.
pub struct ProcessorContext {
    tracker: Arc<Mutex<OffsetTracker>>,
}

impl ClientContext for ProcessorContext {
    fn stats(&self, statistics: Statistics) {
        let lag: i64 = statistics
            .topics
            .values()
            .flat_map(|topic| topic.partitions.values())
            .filter(|partition| partition.partition >= 0 && partition.consumer_lag >= 0)
            .map(|partition| partition.consumer_lag)
            .sum();
        metrics::gauge!("userstream_processor_consumer_lag").set(lag as f64);
    }
}

impl ConsumerContext for ProcessorContext {
    /// Before partitions go: the work queued for them is dropped (their new owner consumes it
    /// again from the last commit), and what was written is committed now, so the new owner
    /// repeats as little as possible.
    fn pre_rebalance(&self, consumer: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        let Rebalance::Revoke(partitions) = rebalance else {
            return;
        };
        {
            let mut tracker = self.tracker.lock().unwrap_or_else(PoisonError::into_inner);
            for element in partitions.elements() {
                tracker.revoke(element.partition());
            }
        }
        match consumer.commit_consumer_state(CommitMode::Sync) {
            Ok(()) | Err(KafkaError::ConsumerCommit(RDKafkaErrorCode::NoOffset)) => {}
            Err(error) => tracing::warn!(%error, "commit before giving partitions up failed"),
        }
        tracing::info!(partitions = partitions.count(), "partitions revoked");
    }
}

type ProcessorConsumer = StreamConsumer<ProcessorContext>;

/// Everything a lane needs to carry out work and release offsets.
struct Lanes {
    sink: CassandraSink,
    dead_letters: FutureProducer,
    dead_letter_topic: String,
    consumer: Arc<ProcessorConsumer>,
    tracker: Arc<Mutex<OffsetTracker>>,
    topic: String,
    policy: BackoffPolicy,
    /// Not ready while writes fail and are being retried (Cassandra or the broker is down).
    health: Health,
    metrics: LaneMetrics,
}

/// Runs the processor until `shutdown`, then drains and commits.
pub async fn run(config: Config, shutdown: CancellationToken) -> Result<(), ProcessError> {
    run_reporting(config, shutdown, Health::new("process")).await
}

/// [`run`], reporting its readiness as `health` (a part of a process hosting several stages);
/// each lane reports as a part of its own.
pub async fn run_reporting(
    config: Config,
    shutdown: CancellationToken,
    health: Health,
) -> Result<(), ProcessError> {
    telemetry::spawn_metrics_server(config.metrics.listen, &health, &shutdown);
    let policy = BackoffPolicy::default();
    let sink = match connect_sink(&config.cassandra, policy, &shutdown).await {
        Ok(sink) => sink,
        // Nothing was consumed yet, so there is nothing to drain or commit.
        Err(RetryError::Cancelled(error)) => {
            tracing::info!(error = %crate::error::chain(&error), "shutdown while connecting to Cassandra");
            return Ok(());
        }
        Err(RetryError::Permanent(error)) => return Err(error),
    };
    let processor = Processor::new(&config, sink, policy, health.clone())?;
    health.set_ready(true);
    processor.run(shutdown).await
}

async fn connect_sink(
    cassandra: &CassandraArgs,
    policy: BackoffPolicy,
    shutdown: &CancellationToken,
) -> Result<CassandraSink, RetryError<ProcessError>> {
    retry("connect to Cassandra", policy, shutdown, || async {
        let session = Arc::new(sink::connect(cassandra).await?);
        Ok(CassandraSink::prepare(session, &cassandra.keyspace).await?)
    })
    .await
}

/// A processor with its clients; [`Processor::run`] consumes until shutdown.
pub struct Processor {
    consumer: Arc<ProcessorConsumer>,
    decoder: Decoder,
    registry: SchemaRegistryClient,
    metrics: ConsumeMetrics,
    lanes: Arc<Lanes>,
    write_lanes: usize,
    lane_capacity: usize,
    drain_timeout: Duration,
}

impl Processor {
    pub fn new(
        config: &Config,
        sink: CassandraSink,
        policy: BackoffPolicy,
        health: Health,
    ) -> Result<Self, ProcessError> {
        let mut consumer_config =
            crate::kafka::consumer_config(&config.kafka, &config.options.group_id);
        if consumer_config.get("statistics.interval.ms").is_none() {
            consumer_config.set("statistics.interval.ms", "5000");
        }
        let tracker = Arc::<Mutex<OffsetTracker>>::default();
        let consumer: ProcessorConsumer = consumer_config
            .create_with_context(ProcessorContext {
                tracker: Arc::clone(&tracker),
            })
            .map_err(kafka("create the consumer"))?;
        consumer
            .subscribe(&[&config.topic.topic])
            .map_err(kafka("subscribe"))?;
        let consumer = Arc::new(consumer);
        let dead_letters: FutureProducer = crate::kafka::producer_config(&config.kafka)
            .create()
            .map_err(kafka("create the dead-letter producer"))?;
        Ok(Self {
            consumer: Arc::clone(&consumer),
            decoder: Decoder::new().map_err(ProcessError::ReaderSchema)?,
            registry: SchemaRegistryClient::new(&config.registry)?,
            metrics: ConsumeMetrics::new(),
            lanes: Arc::new(Lanes {
                sink,
                dead_letters,
                dead_letter_topic: crate::kafka::dead_letter_topic(&config.topic.topic),
                consumer,
                tracker,
                topic: config.topic.topic.clone(),
                policy,
                health,
                metrics: LaneMetrics::new(),
            }),
            write_lanes: config.options.write_lanes.max(1),
            lane_capacity: config.options.lane_capacity.max(1),
            drain_timeout: config.options.drain_timeout,
        })
    }

    /// Consumes until `shutdown`; then lets the lanes finish (up to the drain time-out) and
    /// commits every stored offset.
    pub async fn run(mut self, shutdown: CancellationToken) -> Result<(), ProcessError> {
        // Cancelled by the shutdown signal, or by a lane that cannot go on.
        let stop = shutdown.child_token();
        let mut lanes = JoinSet::new();
        let senders: Vec<mpsc::Sender<Queued>> = (0..self.write_lanes)
            .map(|index| {
                let (sender, receiver) = mpsc::channel(self.lane_capacity);
                let health = self.lanes.health.part(&format!("process lane {index}"));
                health.set_ready(true);
                lanes.spawn(lane(
                    Arc::clone(&self.lanes),
                    receiver,
                    health,
                    stop.clone(),
                ));
                sender
            })
            .collect();

        let mut result = self.consume(&senders, &stop).await;
        drop(senders);
        let drained = tokio::time::timeout(self.drain_timeout, async {
            let mut failure = None;
            while let Some(joined) = lanes.join_next().await {
                if let Ok(Err(error)) = joined {
                    failure.get_or_insert(error);
                }
            }
            failure
        })
        .await;
        let timed_out = drained.is_err();
        if let Ok(Some(error)) = drained {
            result = result.and(Err(error));
        }
        if timed_out {
            tracing::warn!(
                in_flight = self
                    .lanes
                    .tracker
                    .lock()
                    .map(|t| t.in_flight())
                    .unwrap_or(0),
                "drain time-out: unwritten messages stay uncommitted and will be consumed again"
            );
            lanes.abort_all();
        }
        match self.consumer.commit_consumer_state(CommitMode::Sync) {
            Ok(())
            | Err(KafkaError::ConsumerCommit(rdkafka::types::RDKafkaErrorCode::NoOffset)) => {}
            Err(error) => tracing::warn!(%error, "final offset commit failed"),
        }
        tracing::info!("processor stopped");
        result
    }

    async fn consume(
        &mut self,
        senders: &[mpsc::Sender<Queued>],
        shutdown: &CancellationToken,
    ) -> Result<(), ProcessError> {
        // Messages received while the partitions were paused (fetched before the pause took
        // effect, or from partitions a rebalance assigned meanwhile), in order, each with its
        // partition's assignment epoch when it arrived.
        let mut held: VecDeque<(OwnedMessage, u64)> = VecDeque::new();
        loop {
            let message = match held.pop_front() {
                Some((message, epoch)) => {
                    // A rebalance since it arrived took its partition away (and maybe gave it
                    // back): whoever holds the partition now consumes it again from the last
                    // commit. Begun now, it would count as that assignment's first message and
                    // release offsets the re-consumed messages before it have not reached.
                    if self
                        .lanes
                        .tracker
                        .lock()
                        .unwrap_or_else(PoisonError::into_inner)
                        .epoch(message.partition())
                        != epoch
                    {
                        continue;
                    }
                    message
                }
                None => {
                    let message = tokio::select! {
                        _ = shutdown.cancelled() => return Ok(()),
                        message = self.consumer.recv() => message,
                    };
                    match message {
                        Ok(message) => message.detach(),
                        Err(error) => {
                            tracing::warn!(%error, "consumer error");
                            continue;
                        }
                    }
                }
            };
            self.metrics.records_in.increment(1);
            let work = work::classify(
                message,
                &mut self.decoder,
                &self.registry,
                self.lanes.policy,
                shutdown,
                &mut self.metrics,
            )
            .await;
            let Some(work) = work else {
                // Shutdown came while the writer schema was being fetched: this message stays
                // uncommitted and is consumed again after the restart.
                return Ok(());
            };
            let ticket = self
                .lanes
                .tracker
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .begin(work.partition(), work.offset());
            let lane = lane_of(work.lane_key(), senders.len());
            let queued = Queued { work, ticket };
            if !self
                .dispatch(&senders[lane], queued, &mut held, shutdown)
                .await?
            {
                return Ok(());
            }
        }
    }

    /// Hands `queued` to its lane; `false` when the lanes are gone or shutdown came first.
    ///
    /// A lane that stays full does not stop the consumer from polling: a consumer that stops
    /// polling for `max.poll.interval.ms` (say, through a long Cassandra outage) is thrown out of
    /// its group, and rebalances repeat. After [`PAUSE_AFTER_FULL_LANE`] every assigned partition
    /// is paused — the consumer keeps polling, so it keeps its membership and serves rebalances,
    /// but fetches nothing — and resumed once the lane has room.
    async fn dispatch(
        &self,
        lane: &mpsc::Sender<Queued>,
        queued: Queued,
        held: &mut VecDeque<(OwnedMessage, u64)>,
        shutdown: &CancellationToken,
    ) -> Result<bool, ProcessError> {
        let queued = match lane.try_send(queued) {
            Ok(()) => return Ok(true),
            Err(mpsc::error::TrySendError::Closed(_)) => return Ok(false),
            Err(mpsc::error::TrySendError::Full(queued)) => queued,
        };
        // A lane full for a moment is the normal state while a backlog drains; pausing then
        // would cost more than it saves (librdkafka drops what it prefetched for a paused
        // partition and fetches it again on resume). Only a lane that stays full pauses.
        let waited = tokio::select! {
            permit = tokio::time::timeout(PAUSE_AFTER_FULL_LANE, lane.reserve()) => permit,
            _ = shutdown.cancelled() => return Ok(false),
        };
        match waited {
            Ok(Ok(permit)) => {
                permit.send(queued);
                return Ok(true);
            }
            Ok(Err(_)) => return Ok(false),
            Err(_still_full) => {}
        }
        self.pause_assignment()?;
        metrics::gauge!("userstream_processor_paused").set(1.0);
        let sent = loop {
            tokio::select! {
                permit = lane.reserve() => match permit {
                    Ok(permit) => {
                        permit.send(queued);
                        break true;
                    }
                    Err(_) => break false,
                },
                message = self.consumer.recv() => match message {
                    Ok(message) => {
                        let epoch = self
                            .lanes
                            .tracker
                            .lock()
                            .unwrap_or_else(PoisonError::into_inner)
                            .epoch(message.partition());
                        held.push_back((message.detach(), epoch));
                        // A rebalance may have assigned partitions that are not paused.
                        self.pause_assignment()?;
                    }
                    Err(error) => tracing::warn!(%error, "consumer error while paused"),
                },
                _ = shutdown.cancelled() => break false,
            }
        };
        self.consumer
            .resume(
                &self
                    .consumer
                    .assignment()
                    .map_err(kafka("read the assignment"))?,
            )
            .map_err(kafka("resume the partitions"))?;
        metrics::gauge!("userstream_processor_paused").set(0.0);
        Ok(sent)
    }

    fn pause_assignment(&self) -> Result<(), ProcessError> {
        let assignment = self
            .consumer
            .assignment()
            .map_err(kafka("read the assignment"))?;
        self.consumer
            .pause(&assignment)
            .map_err(kafka("pause the partitions"))
    }
}

/// How long the consumer waits for room in a full lane before it pauses its partitions and
/// goes back to polling: well under any sensible `max.poll.interval.ms`, well over one write.
const PAUSE_AFTER_FULL_LANE: std::time::Duration = std::time::Duration::from_millis(500);

/// Work on its way to a lane, with the ticket that releases its offset.
struct Queued {
    work: Work,
    ticket: Ticket,
}

fn lane_of(key: &[u8], lanes: usize) -> usize {
    let mut hasher = std::collections::hash_map::DefaultHasher::new();
    key.hash(&mut hasher);
    (hasher.finish() % lanes as u64) as usize
}

/// Carries out one lane's work in order, retrying transient failures until shutdown.
///
/// A permanent failure stops the whole processor (through `stop`) with that error: committing
/// past the message would lose it, and leaving it unwritten would stall its partition.
async fn lane(
    lanes: Arc<Lanes>,
    mut receiver: mpsc::Receiver<Queued>,
    health: Health,
    stop: CancellationToken,
) -> Result<(), ProcessError> {
    while let Some(Queued { work, ticket }) = receiver.recv().await {
        let current = lanes
            .tracker
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .is_current(ticket);
        if !current {
            // Its partition was revoked: the new owner consumes the message again.
            continue;
        }
        let (partition, offset) = (ticket.partition, ticket.offset);
        let done = retry("process message", lanes.policy, &stop, || async {
            let result = work
                .execute(
                    &lanes.sink,
                    &lanes.dead_letters,
                    &lanes.dead_letter_topic,
                    &lanes.metrics,
                )
                .await;
            health.set_ready(
                result
                    .as_ref()
                    .map_or_else(|error| !error.is_retryable(), |_| true),
            );
            result
        })
        .await;
        match done {
            Ok(()) => {
                let stored = offsets::finish_and_store(&lanes.tracker, ticket, |ready| {
                    lanes
                        .consumer
                        .store_offset(&lanes.topic, partition, ready)
                        .map_err(|error| (ready, error))
                });
                if let Some(Err((ready, error))) = stored {
                    // The partition was revoked by a rebalance: its new owner resumes from the
                    // last commit, so this message may be processed again — harmless.
                    tracing::debug!(%error, partition, offset = ready, "offset not stored");
                }
            }
            Err(RetryError::Cancelled(error)) => {
                tracing::warn!(%error, partition, offset, "shutdown during retries; left uncommitted");
                return Ok(());
            }
            Err(RetryError::Permanent(error)) => {
                tracing::error!(%error, partition, offset, "permanent write failure; stopping");
                stop.cancel();
                return Err(error);
            }
        }
    }
    Ok(())
}
