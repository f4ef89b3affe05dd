//! `userstream cdc`: the change log in PostgreSQL → Avro messages on Kafka.
//!
//! Each batch is read with the transaction watermark ([`crate::store::poll_changes`]), and every
//! change produced (key = user id, value = Avro `User` in the Confluent wire format, a tombstone
//! for a delete; headers `op`, `source_ts_us`, `source_txid`, and for an update or a delete the
//! `before_*` headers of [`crate::model::BeforeImage`]) with the idempotent producer. The
//! next batch is read, from where the last one ended, while earlier ones are still in flight (up
//! to `--cdc-max-in-flight-batches`); a batch's position is stored only once Kafka acknowledged
//! **all** of its changes and every earlier batch's. A crash before that replays what follows the
//! stored position: delivery is at-least-once, and the processor's timestamped upserts make
//! replays harmless. A failed delivery drops the batches in flight and starts again from the
//! stored position.
//!
//! A commit that writes changes wakes the poller at once (LISTEN/NOTIFY, see [`wake`]); without
//! a notification it polls every `--cdc-poll-interval`.
//!
//! One poller per cursor name produces at a time: its PostgreSQL session holds an advisory lock
//! on the cursor, and others with the same name wait as standbys until that session ends. The
//! stored cursor never moves back, whoever commits.
//!
//! The newest local schema is registered under `<topic>-value` before anything is produced; a
//! schema the registry refuses (incompatible under the subject's level) stops the stage with the
//! registry's reason, so nothing is ever produced with an unregistered schema.

mod wake;

pub use wake::LISTENER_APPLICATION_NAME;

use std::collections::VecDeque;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::FutureExt;
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::{Header, OwnedHeaders};
use rdkafka::producer::{FutureProducer, FutureRecord, Producer};
use tokio::sync::Notify;
use tokio_postgres::Client;
use tokio_util::sync::CancellationToken;

use crate::codec::{EncodeError, Encoder, USER_SCHEMA};
use crate::config::{KafkaArgs, MetricsArgs, PostgresArgs, SchemaRegistryArgs, TopicArgs};
use crate::error::{chain, Retryable};
use crate::model::BeforeImage;
use crate::retry::{retry, Backoff, BackoffPolicy, RetryError};
use crate::schemas::{value_subject, SchemaError, SchemaRegistryClient};
use crate::store::{self, Change, Op, Position, StoreError, UnreadableChange};
use crate::telemetry::{self, Health};

/// Settings of `userstream cdc`.
#[derive(Debug, Clone, clap::Args)]
pub struct Config {
    #[command(flatten)]
    pub postgres: PostgresArgs,
    #[command(flatten)]
    pub kafka: KafkaArgs,
    #[command(flatten)]
    pub registry: SchemaRegistryArgs,
    #[command(flatten)]
    pub metrics: MetricsArgs,
    #[command(flatten)]
    pub topic: TopicArgs,
    #[command(flatten)]
    pub options: CdcOptions,
}

/// The poller's own settings (also part of `userstream run`).
#[derive(Debug, Clone, clap::Args)]
pub struct CdcOptions {
    /// Name of this poller's cursor in PostgreSQL (cdc_cursors); pollers with different names
    /// each read every change.
    #[arg(
        long = "cdc-name",
        env = "USERSTREAM_CDC_NAME",
        default_value = "userstream-cdc"
    )]
    pub name: String,

    /// Longest wait between polls when the change log has nothing new. A commit that writes
    /// changes wakes the poller at once (LISTEN/NOTIFY); the interval is the fallback.
    #[arg(
        long = "cdc-poll-interval",
        env = "USERSTREAM_CDC_POLL_INTERVAL",
        default_value = "500ms",
        value_parser = humantime::parse_duration
    )]
    pub poll_interval: Duration,

    /// Most changes read and produced per batch.
    #[arg(
        long = "cdc-batch-size",
        env = "USERSTREAM_CDC_BATCH_SIZE",
        default_value_t = 1000
    )]
    pub batch_size: u32,

    /// Most batches handed to Kafka and not yet wholly acknowledged: the next batch is read while
    /// earlier ones are in flight. The cursor is stored in read order, once every message before
    /// it is acknowledged.
    #[arg(
        long = "cdc-max-in-flight-batches",
        env = "USERSTREAM_CDC_MAX_IN_FLIGHT_BATCHES",
        default_value_t = 8,
        value_parser = clap::value_parser!(u32).range(1..)
    )]
    pub max_in_flight_batches: u32,

    /// How often changes every poller has passed are deleted from the change log.
    #[arg(
        long = "cdc-prune-every",
        env = "USERSTREAM_CDC_PRUNE_EVERY",
        default_value = "1m",
        value_parser = humantime::parse_duration
    )]
    pub prune_every: Duration,

    /// How long shutdown waits for the batches in flight to be acknowledged by Kafka; those cut
    /// off are not committed and are produced again after the restart.
    #[arg(
        id = "cdc_drain_timeout",
        value_name = "CDC_DRAIN_TIMEOUT",
        long = "cdc-drain-timeout",
        env = "USERSTREAM_CDC_DRAIN_TIMEOUT",
        default_value = "30s",
        value_parser = humantime::parse_duration
    )]
    pub drain_timeout: Duration,

    /// Log a warning when the oldest change not yet produced, or the oldest open transaction
    /// holding the poller back, is older than this.
    #[arg(
        long = "cdc-stall-warning",
        env = "USERSTREAM_CDC_STALL_WARNING",
        default_value = "1m",
        value_parser = humantime::parse_duration
    )]
    pub stall_warning: Duration,
}

/// Why the CDC stage stopped.
#[derive(Debug, thiserror::Error)]
pub enum CdcError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Schema(#[from] SchemaError),
    #[error("cannot encode change ({xid}, {seq}) of user {user_id:?}")]
    Encode {
        xid: u64,
        seq: i64,
        user_id: String,
        #[source]
        source: EncodeError,
    },
    #[error("the newest local value schema cannot be used for encoding")]
    LocalSchema(#[source] EncodeError),
    #[error("Kafka: {operation}")]
    Kafka {
        operation: &'static str,
        #[source]
        source: KafkaError,
    },
    #[error(transparent)]
    Telemetry(#[from] telemetry::TelemetryError),
    /// The task reading the next batch panicked (a bug) or was torn down with the runtime.
    #[error("the read of the next batch ended without a result")]
    ReadAhead(#[source] tokio::task::JoinError),
}

impl Retryable for CdcError {
    fn is_retryable(&self) -> bool {
        match self {
            Self::Store(error) => error.is_retryable(),
            Self::Schema(error) => error.is_retryable(),
            // The producer already retries internally until `message.timeout.ms`; a delivery
            // that still failed (broker down for that long) may succeed on a later round.
            Self::Kafka { .. } => true,
            Self::Encode { .. }
            | Self::LocalSchema(_)
            | Self::Telemetry(_)
            | Self::ReadAhead(_) => false,
        }
    }
}

fn kafka(operation: &'static str) -> impl Fn(KafkaError) -> CdcError {
    move |source| CdcError::Kafka { operation, source }
}

/// Creates `topic` and `<topic>.dlq` unless they exist.
pub async fn ensure_topics(kafka_args: &KafkaArgs, topic: &TopicArgs) -> Result<(), CdcError> {
    let admin: AdminClient<DefaultClientContext> = crate::kafka::producer_config(kafka_args)
        .create()
        .map_err(kafka("create the admin client"))?;
    let dead_letters = crate::kafka::dead_letter_topic(&topic.topic);
    let topics = [
        NewTopic::new(
            &topic.topic,
            topic.partitions,
            TopicReplication::Fixed(topic.replication_factor),
        ),
        NewTopic::new(
            &dead_letters,
            topic.partitions,
            TopicReplication::Fixed(topic.replication_factor),
        ),
    ];
    let results = admin
        .create_topics(
            &topics,
            &AdminOptions::new().operation_timeout(Some(Duration::from_secs(30))),
        )
        .await
        .map_err(kafka("create topics"))?;
    for result in results {
        match result {
            Ok(name) => tracing::info!(topic = name, "created topic"),
            Err((_, RDKafkaErrorCode::TopicAlreadyExists)) => {}
            Err((name, code)) => {
                tracing::error!(topic = name, %code, "cannot create topic");
                return Err(CdcError::Kafka {
                    operation: "create topics",
                    source: KafkaError::AdminOp(code),
                });
            }
        }
    }
    Ok(())
}

/// Runs the poller until `shutdown`; the batches in flight when it comes are finished and
/// committed.
pub async fn run(config: Config, shutdown: CancellationToken) -> Result<(), CdcError> {
    run_reporting(config, shutdown, Health::new("cdc")).await
}

/// [`run`], reporting its readiness as `health` (a part of a process hosting several stages).
pub async fn run_reporting(
    config: Config,
    shutdown: CancellationToken,
    health: Health,
) -> Result<(), CdcError> {
    let metrics_server = telemetry::spawn_metrics_server(config.metrics.listen, &health, &shutdown);
    let policy = BackoffPolicy::default();

    ensure_topics_retrying(&config, policy, &shutdown).await?;
    let registry = SchemaRegistryClient::new(&config.registry)?;
    let subject = value_subject(&config.topic.topic);
    let schema_id = retry("register schema", policy, &shutdown, || {
        registry.register(&subject, USER_SCHEMA)
    })
    .await
    .map_err(RetryError::into_inner)?;
    tracing::info!(subject, schema_id, "value schema registered");

    let mut poller = Poller {
        encoder: Encoder::new().map_err(CdcError::LocalSchema)?,
        producer: create_producer(&config.kafka)?,
        kafka: config.kafka.clone(),
        schema_id,
        topic: Arc::from(config.topic.topic.as_str()),
        stall_warned_at: Mutex::new(None),
        backlog_measured_at: Mutex::new(None),
        last_prune: Mutex::new(tokio::time::Instant::now()),
    };
    let wake = Arc::new(Notify::new());
    // Ends with the stage, however it ends.
    let listening = shutdown.child_token();
    let stop_listening = listening.clone().drop_guard();
    let listener =
        wake::spawn_listener(config.postgres.pg_url.clone(), Arc::clone(&wake), listening);

    let mut client = None;
    let mut backoff = Backoff::new(policy);
    while !shutdown.is_cancelled() {
        let session = async {
            let pg = match client.take() {
                Some(pg) => pg,
                None => {
                    let pg = Arc::new(store::connect(&config.postgres.pg_url).await?);
                    if !lead_cursor(&pg, &config.options, &health, &shutdown).await? {
                        return Ok(());
                    }
                    pg
                }
            };
            let streamed = poller
                .stream(
                    &pg,
                    &config.options,
                    &wake,
                    &health,
                    &mut backoff,
                    &shutdown,
                )
                .await;
            client = Some(pg).filter(|pg: &Arc<Client>| !pg.is_closed());
            streamed
        };
        let drain_deadline = async {
            shutdown.cancelled().await;
            tokio::time::sleep(config.options.drain_timeout).await;
        };
        let outcome = tokio::select! {
            outcome = session => outcome,
            () = drain_deadline => {
                tracing::warn!(
                    drain_timeout = ?config.options.drain_timeout,
                    "Kafka did not acknowledge the batches in flight in time; they stay \
                     uncommitted and are produced again after the restart"
                );
                break;
            }
        };
        match outcome {
            Ok(()) => {}
            Err(error) if error.is_retryable() => {
                health.set_ready(false);
                poller.renew_producer_if_fatal()?;
                let delay = backoff.next_delay();
                metrics::counter!("userstream_retries_total", "operation" => "cdc round")
                    .increment(1);
                tracing::warn!(%error, retry_in = ?delay, "CDC round failed; retrying");
                tokio::select! {
                    _ = tokio::time::sleep(delay) => {}
                    _ = shutdown.cancelled() => {}
                }
            }
            Err(error) => return Err(error),
        }
    }
    poller.producer.flush(Duration::from_secs(10)).ok();
    if let Some(server) = metrics_server {
        server.abort();
    }
    drop(stop_listening);
    listener.await.ok();
    tracing::info!("CDC stopped");
    Ok(())
}

/// Waits until this poller's connection leads the cursor (see [`store::try_lead_cursor`]): one
/// poller per cursor name produces, the others wait as standbys and the first to ask after the
/// leader is gone takes over. `false` when shutdown came first.
async fn lead_cursor(
    pg: &Client,
    options: &CdcOptions,
    health: &Health,
    shutdown: &CancellationToken,
) -> Result<bool, CdcError> {
    let mut announced = false;
    loop {
        if store::try_lead_cursor(pg, &options.name).await? {
            metrics::gauge!("userstream_cdc_leader").set(1.0);
            tracing::info!(cursor = options.name, "leading the CDC cursor");
            return Ok(true);
        }
        metrics::gauge!("userstream_cdc_leader").set(0.0);
        // Waiting is what a standby is for: nothing is failing.
        health.set_ready(true);
        if !announced {
            tracing::info!(
                cursor = options.name,
                "another cdc leads this cursor; waiting as a standby to take over"
            );
            announced = true;
        }
        tokio::select! {
            _ = tokio::time::sleep(options.poll_interval) => {}
            _ = shutdown.cancelled() => return Ok(false),
        }
    }
}

async fn ensure_topics_retrying(
    config: &Config,
    policy: BackoffPolicy,
    shutdown: &CancellationToken,
) -> Result<(), CdcError> {
    retry("create topics", policy, shutdown, || {
        ensure_topics(&config.kafka, &config.topic)
    })
    .await
    .map_err(RetryError::into_inner)
}

/// A message handed to the producer: resolves when Kafka acknowledged it.
type Delivery = Pin<Box<dyn Future<Output = Result<(), CdcError>> + Send>>;

fn create_producer(kafka_args: &KafkaArgs) -> Result<FutureProducer, CdcError> {
    crate::kafka::producer_config(kafka_args)
        .create()
        .map_err(kafka("create the producer"))
}

/// The first and the longest wait before polling again for changes held back by an open
/// transaction (never longer than the poll interval).
const HELD_BACK_FIRST_RETRY: Duration = Duration::from_millis(10);
const HELD_BACK_LONGEST_RETRY: Duration = Duration::from_secs(1);

/// What one read found, for deciding when to read next.
struct Read {
    /// The batch limit was reached: more may be waiting right now.
    full: bool,
    /// Committed changes wait behind a transaction still open.
    held_back: bool,
}

/// A read of the change log running on its own task, so that PostgreSQL works on it meanwhile.
/// Dropped before it finished, it is abandoned: a read changes nothing.
struct ReadAhead(tokio::task::JoinHandle<Result<store::Poll, StoreError>>);

impl ReadAhead {
    fn start(pg: &Arc<Client>, from: Position, limit: u32) -> Self {
        let pg = Arc::clone(pg);
        Self(tokio::spawn(async move {
            store::poll_changes(&pg, &from, limit).await
        }))
    }

    async fn finish(mut self) -> Result<store::Poll, CdcError> {
        Ok((&mut self.0).await.map_err(CdcError::ReadAhead)??)
    }
}

impl Drop for ReadAhead {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// One read's changes on their way to Kafka.
struct Batch {
    /// Not yet acknowledged, oldest first.
    deliveries: VecDeque<Delivery>,
    /// The position to store once these and every earlier batch's changes are acknowledged.
    next: Position,
    /// The source time of the batch's newest change, for the lag gauge.
    newest_source_ts_us: Option<i64>,
}

impl Batch {
    /// Settles the deliveries already acknowledged, without waiting; `true` when none is left.
    fn settle_acknowledged(&mut self) -> Result<bool, CdcError> {
        while let Some(oldest) = self.deliveries.front_mut() {
            match oldest.now_or_never() {
                Some(delivered) => {
                    delivered?;
                    self.deliveries.pop_front();
                }
                None => return Ok(false),
            }
        }
        Ok(true)
    }
}

/// The batches read and not yet committed, in read order, and where the cursor is.
struct Window {
    /// The position stored in PostgreSQL (as this poller last stored or loaded it).
    committed: Position,
    /// Where the next read starts: after everything read so far, whether acknowledged or not.
    read_from: Position,
    batches: VecDeque<Batch>,
}

impl Window {
    fn new(committed: Position) -> Self {
        Self {
            committed,
            read_from: committed,
            batches: VecDeque::new(),
        }
    }

    /// Waits until every delivery of the oldest batch is acknowledged (at once without one).
    async fn oldest_acknowledged(&mut self) -> Result<(), CdcError> {
        if let Some(oldest) = self.batches.front_mut() {
            while let Some(delivery) = oldest.deliveries.front_mut() {
                delivery.await?;
                oldest.deliveries.pop_front();
            }
        }
        Ok(())
    }

    /// Removes the batches at the front whose every delivery is acknowledged, and returns what
    /// to commit for them: the newest one's position, with the newest change's source time
    /// among them. `None` while the oldest batch waits for an acknowledgement.
    fn take_acknowledged(&mut self) -> Result<Option<Batch>, CdcError> {
        let mut done: Option<Batch> = None;
        while let Some(oldest) = self.batches.front_mut() {
            if !oldest.settle_acknowledged()? {
                break;
            }
            let Some(batch) = self.batches.pop_front() else {
                break;
            };
            let newest_source_ts_us = batch
                .newest_source_ts_us
                .or(done.and_then(|earlier| earlier.newest_source_ts_us));
            done = Some(Batch {
                newest_source_ts_us,
                ..batch
            });
        }
        Ok(done)
    }
}

/// What reading and producing need besides PostgreSQL.
struct Poller {
    encoder: Encoder,
    producer: FutureProducer,
    /// What the producer was made from, to make a new one.
    kafka: KafkaArgs,
    schema_id: u32,
    topic: Arc<str>,
    /// When a stall was last logged, so that a long one is logged once per threshold.
    stall_warned_at: Mutex<Option<std::time::Instant>>,
    /// When the backlog was last measured (see [`BACKLOG_EVERY`]).
    backlog_measured_at: Mutex<Option<std::time::Instant>>,
    /// When the change log was last pruned.
    last_prune: Mutex<tokio::time::Instant>,
}

/// How often the backlog is measured: its query reads every change after the cursor, which a
/// round of a large backlog must not pay each time.
const BACKLOG_EVERY: Duration = Duration::from_secs(5);

impl Poller {
    /// An idempotent producer that hit a fatal error (say, the broker lost its sequence state)
    /// refuses every message from then on: retrying with it would fail forever. A new producer
    /// starts a new idempotent session; the round it failed is produced again, harmlessly.
    fn renew_producer_if_fatal(&mut self) -> Result<(), CdcError> {
        if let Some((code, reason)) = self.producer.client().fatal_error() {
            tracing::warn!(%code, reason, "the Kafka producer failed fatally; replacing it");
            metrics::counter!("userstream_cdc_producer_renewals_total").increment(1);
            self.producer = create_producer(&self.kafka)?;
        }
        Ok(())
    }

    /// Leads the cursor from its stored position until `shutdown` (then finishes and commits the
    /// batches in flight) or a failure. Batches are read one after the other while earlier ones
    /// are still in flight, up to `--cdc-max-in-flight-batches`; the position is stored in read
    /// order, each time every message before it has been acknowledged. After a failure the
    /// stored position is the truth: what was produced after it is produced again.
    async fn stream(
        &self,
        pg: &Arc<Client>,
        config: &CdcOptions,
        wake: &Notify,
        health: &Health,
        backoff: &mut Backoff,
        shutdown: &CancellationToken,
    ) -> Result<(), CdcError> {
        let mut window = Window::new(store::load_position(pg, &config.name).await?);
        let max_in_flight = usize::try_from(config.max_in_flight_batches).unwrap_or(usize::MAX);
        // Everything final has been read: the next read waits for a wake-up or `next_poll`.
        let mut caught_up = false;
        let mut next_poll = tokio::time::Instant::now();
        // Committed changes behind an open transaction: its end may notify nobody, so they are
        // polled for again soon, then less and less often.
        let held_back_policy = BackoffPolicy {
            initial: HELD_BACK_FIRST_RETRY.min(config.poll_interval),
            max: HELD_BACK_LONGEST_RETRY.min(config.poll_interval),
        };
        let mut held_back = Backoff::new(held_back_policy);
        // The read of the batch after `window.read_from`, started while the previous one is
        // encoded and produced.
        let mut read_ahead: Option<ReadAhead> = None;
        loop {
            self.commit_acknowledged(pg, config, &mut window).await?;
            if shutdown.is_cancelled() {
                drop(read_ahead.take());
                while !window.batches.is_empty() {
                    window.oldest_acknowledged().await?;
                    self.commit_acknowledged(pg, config, &mut window).await?;
                }
                return Ok(());
            }
            if !caught_up && window.batches.len() < max_in_flight {
                let poll = match read_ahead.take() {
                    Some(started) => started.finish().await?,
                    None => store::poll_changes(pg, &window.read_from, config.batch_size).await?,
                };
                let read = Read {
                    full: poll.changes.len() + poll.unreadable.len()
                        >= config.batch_size.max(1) as usize,
                    held_back: poll.held_back,
                };
                // More is waiting: PostgreSQL reads the next batch while this one is encoded.
                if read.full && window.batches.len() + 1 < max_in_flight {
                    read_ahead = Some(ReadAhead::start(pg, poll.next, config.batch_size));
                }
                self.produce_batch(pg, config, poll, &mut window).await?;
                *backoff = Backoff::new(BackoffPolicy::default());
                health.set_ready(true);
                caught_up = !read.full;
                let wait = if read.held_back {
                    held_back.next_delay()
                } else {
                    held_back = Backoff::new(held_back_policy);
                    config.poll_interval
                };
                next_poll = tokio::time::Instant::now() + wait;
                continue;
            }
            tokio::select! {
                acknowledged = window.oldest_acknowledged(), if !window.batches.is_empty() => {
                    acknowledged?;
                }
                () = wake.notified(), if caught_up => caught_up = false,
                () = tokio::time::sleep_until(next_poll), if caught_up => caught_up = false,
                () = shutdown.cancelled() => {}
            }
        }
    }

    /// Hands the changes of `poll` (read from `window.read_from`) to the producer and adds them
    /// to the window as one batch. Changes that cannot be carried are quarantined before the
    /// batch can be committed past them.
    async fn produce_batch(
        &self,
        pg: &Client,
        config: &CdcOptions,
        poll: store::Poll,
        window: &mut Window,
    ) -> Result<(), CdcError> {
        let mut unreadable = poll.unreadable;
        let mut deliveries = VecDeque::with_capacity(poll.changes.len());
        for change in &poll.changes {
            match self
                .enqueue_waiting_for_room(change, &mut deliveries, window)
                .await
            {
                Ok(()) => {}
                Err(CdcError::Encode { source, .. }) => unreadable.push(UnreadableChange {
                    xid: change.xid,
                    seq: change.seq,
                    op: change.op.as_str().to_owned(),
                    user_id: change.user_id.clone(),
                    after: change
                        .after
                        .as_ref()
                        .and_then(|user| serde_json::to_value(user).ok()),
                    reason: chain(&source),
                }),
                Err(other) => return Err(other),
            }
        }
        for change in &unreadable {
            store::quarantine(pg, &config.name, change).await?;
            metrics::counter!("userstream_cdc_quarantined_total").increment(1);
            tracing::error!(
                cursor = config.name,
                xid = change.xid,
                seq = change.seq,
                user_id = change.user_id,
                reason = change.reason,
                "change cannot be carried to Kafka; quarantined in cdc_quarantine and passed"
            );
        }
        window.read_from = poll.next;
        window.batches.push_back(Batch {
            deliveries,
            next: poll.next,
            newest_source_ts_us: poll.changes.last().map(|change| change.source_ts_us),
        });
        Ok(())
    }

    /// Stores the position of the newest batch that was acknowledged with every batch before it
    /// (without waiting for any), and updates what is measured from it.
    async fn commit_acknowledged(
        &self,
        pg: &Client,
        config: &CdcOptions,
        window: &mut Window,
    ) -> Result<(), CdcError> {
        let Some(done) = window.take_acknowledged()? else {
            return Ok(());
        };
        if done.next != window.committed {
            store::commit_position(pg, &config.name, &done.next).await?;
            window.committed = done.next;
        }
        metrics::gauge!("userstream_cdc_watermark").set(done.next.watermark as f64);
        let lag_us = done
            .newest_source_ts_us
            .map_or(0, |newest| chrono::Utc::now().timestamp_micros() - newest);
        metrics::gauge!("userstream_cdc_lag_seconds").set(lag_us as f64 / 1e6);
        self.report_backlog(pg, config, &done.next).await?;

        let due = {
            let mut last_prune = self
                .last_prune
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            let due = last_prune.elapsed() >= config.prune_every;
            if due {
                *last_prune = tokio::time::Instant::now();
            }
            due
        };
        if due {
            let pruned = store::prune(pg).await?;
            metrics::counter!("userstream_cdc_pruned_total").increment(pruned);
        }
        Ok(())
    }

    /// Publishes how old the oldest change not yet produced and the oldest open transaction are
    /// (at most every [`BACKLOG_EVERY`]), and warns when either is past `--cdc-stall-warning`. The lag of what was produced says
    /// nothing while a long-open transaction pins the cluster's xmin and nothing is produced.
    async fn report_backlog(
        &self,
        pg: &Client,
        config: &CdcOptions,
        position: &Position,
    ) -> Result<(), CdcError> {
        {
            let mut measured_at = self
                .backlog_measured_at
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            if measured_at.is_some_and(|at| at.elapsed() < BACKLOG_EVERY) {
                return Ok(());
            }
            *measured_at = Some(std::time::Instant::now());
        }
        let backlog = store::backlog(pg, position).await?;
        let now = chrono::Utc::now();
        let age = |since: Option<chrono::DateTime<chrono::Utc>>| {
            since.map_or(Duration::ZERO, |since| {
                (now - since).to_std().unwrap_or(Duration::ZERO)
            })
        };
        let unproduced = age(backlog.oldest_unproduced);
        let open = age(backlog.oldest_open_transaction);
        metrics::gauge!("userstream_cdc_oldest_unproduced_seconds").set(unproduced.as_secs_f64());
        metrics::gauge!("userstream_cdc_oldest_open_transaction_seconds").set(open.as_secs_f64());
        if unproduced.max(open) < config.stall_warning {
            return Ok(());
        }
        let mut warned_at = self
            .stall_warned_at
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if warned_at.is_some_and(|at| at.elapsed() < config.stall_warning) {
            return Ok(());
        }
        *warned_at = Some(std::time::Instant::now());
        tracing::warn!(
            cursor = config.name,
            oldest_unproduced_age = ?unproduced,
            oldest_open_transaction_age = ?open,
            "CDC is falling behind: changes wait to be produced. A transaction open for long \
             (see pg_stat_activity.xact_start) keeps the poller from passing it"
        );
        Ok(())
    }

    /// Hands `change` to the producer, its delivery after the others in `deliveries`. While
    /// librdkafka's queue is full (more in flight than `queue.buffering.max.messages`), it waits
    /// for the oldest delivery to be acknowledged and tries again: failing instead would produce
    /// the first part of the window again on every retry.
    async fn enqueue_waiting_for_room(
        &self,
        change: &Change,
        deliveries: &mut VecDeque<Delivery>,
        window: &mut Window,
    ) -> Result<(), CdcError> {
        loop {
            match self.produce(change) {
                Ok(delivery) => {
                    deliveries.push_back(delivery);
                    return Ok(());
                }
                Err(CdcError::Kafka {
                    source: KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull),
                    ..
                }) => {
                    let oldest = window
                        .batches
                        .iter_mut()
                        .map(|batch| &mut batch.deliveries)
                        .chain([&mut *deliveries])
                        .find(|pending| !pending.is_empty());
                    match oldest.and_then(VecDeque::pop_front) {
                        Some(oldest) => oldest.await?,
                        // Full with nothing of ours in it: another producer's messages still leave.
                        None => tokio::time::sleep(Duration::from_millis(10)).await,
                    }
                }
                Err(other) => return Err(other),
            }
        }
    }

    /// Hands one change to the producer; the returned future resolves when Kafka acknowledged it.
    fn produce(&self, change: &Change) -> Result<Delivery, CdcError> {
        let payload = match (&change.after, change.op) {
            (_, Op::Delete) | (None, _) => None,
            (Some(user), _) => Some(self.encoder.encode_message(self.schema_id, user).map_err(
                |source| CdcError::Encode {
                    xid: change.xid,
                    seq: change.seq,
                    user_id: change.user_id.clone(),
                    source,
                },
            )?),
        };
        let mut headers = OwnedHeaders::new()
            .insert(Header {
                key: "op",
                value: Some(change.op.as_str()),
            })
            .insert(Header {
                key: "source_ts_us",
                value: Some(&change.source_ts_us.to_string()),
            })
            .insert(Header {
                key: "source_txid",
                value: Some(&change.xid.to_string()),
            });
        if let Some(before) = &change.before {
            headers = before_headers(headers, before);
        }
        let mut record = FutureRecord::to(&self.topic)
            .key(change.user_id.as_bytes())
            .headers(headers);
        if let Some(payload) = payload.as_deref() {
            record = record.payload(payload);
        }
        let delivery =
            self.producer
                .send_result(record)
                .map_err(|(source, _)| CdcError::Kafka {
                    operation: "enqueue a message",
                    source,
                })?;
        let op = change.op.as_str();
        Ok(Box::pin(async move {
            match delivery.await {
                Ok(Ok(_)) => {
                    metrics::counter!("userstream_cdc_changes_produced_total", "op" => op)
                        .increment(1);
                    Ok(())
                }
                Ok(Err((source, _))) => Err(CdcError::Kafka {
                    operation: "deliver a message",
                    source,
                }),
                Err(_) => Err(CdcError::Kafka {
                    operation: "deliver a message",
                    source: KafkaError::Canceled,
                }),
            }
        }))
    }
}

/// `before`'s non-null fields as headers (see [`BeforeImage`]).
fn before_headers(mut headers: OwnedHeaders, before: &BeforeImage) -> OwnedHeaders {
    let registered_at_us = before
        .registered_at
        .map(|registered_at| registered_at.timestamp_micros().to_string());
    for (key, value) in [
        (BeforeImage::NAT_HEADER, before.nat.as_deref()),
        (BeforeImage::COUNTRY_HEADER, before.country.as_deref()),
        (
            BeforeImage::NATIONAL_ID_NAME_HEADER,
            before.national_id_name.as_deref(),
        ),
        (
            BeforeImage::REGISTERED_AT_HEADER,
            registered_at_us.as_deref(),
        ),
    ] {
        if let Some(value) = value {
            headers = headers.insert(Header {
                key,
                value: Some(value),
            });
        }
    }
    headers
}

#[cfg(test)]
mod tests {
    use std::ffi::CString;

    use rdkafka::types::RDKafkaRespErr;

    use super::*;

    /// A delivery that resolves as its sender says.
    fn delivery() -> (tokio::sync::oneshot::Sender<Result<(), CdcError>>, Delivery) {
        let (acknowledge, acknowledged) = tokio::sync::oneshot::channel();
        let delivery = async move {
            acknowledged.await.unwrap_or(Err(CdcError::Kafka {
                operation: "deliver a message",
                source: KafkaError::Canceled,
            }))
        };
        (acknowledge, Box::pin(delivery))
    }

    fn position(watermark: u64) -> Position {
        Position {
            watermark,
            last: None,
        }
    }

    fn batch(deliveries: Vec<Delivery>, watermark: u64, newest: Option<i64>) -> Batch {
        Batch {
            deliveries: deliveries.into(),
            next: position(watermark),
            newest_source_ts_us: newest,
        }
    }

    #[test]
    fn a_batch_is_committed_only_after_every_earlier_batch_is_acknowledged() {
        let mut window = Window::new(position(1));
        let (first_ack, first) = delivery();
        let (second_ack, second) = delivery();
        let (third_ack, third) = delivery();
        window.batches.push_back(batch(vec![first], 2, Some(10)));
        window.batches.push_back(batch(vec![second], 3, None));
        window.batches.push_back(batch(vec![third], 4, Some(30)));

        second_ack.send(Ok(())).ok();
        assert!(window.take_acknowledged().unwrap().is_none());
        assert_eq!(window.batches.len(), 3);

        first_ack.send(Ok(())).ok();
        let done = window.take_acknowledged().unwrap().unwrap();
        assert_eq!(done.next, position(3));
        assert_eq!(done.newest_source_ts_us, Some(10));
        assert_eq!(window.batches.len(), 1);

        third_ack.send(Ok(())).ok();
        futures::executor::block_on(window.oldest_acknowledged()).unwrap();
        assert_eq!(
            window.take_acknowledged().unwrap().unwrap().next,
            position(4)
        );
        assert!(window.batches.is_empty());
        assert!(window.take_acknowledged().unwrap().is_none());
    }

    #[test]
    fn a_failed_delivery_fails_the_window_and_commits_nothing() {
        let mut window = Window::new(position(1));
        let (first_ack, first) = delivery();
        let (second_ack, second) = delivery();
        window
            .batches
            .push_back(batch(vec![first, second], 2, Some(10)));
        second_ack.send(Ok(())).ok();
        first_ack
            .send(Err(CdcError::Kafka {
                operation: "deliver a message",
                source: KafkaError::MessageProduction(RDKafkaErrorCode::MessageTimedOut),
            }))
            .ok();
        assert!(matches!(
            window.take_acknowledged(),
            Err(CdcError::Kafka { .. })
        ));
        assert_eq!(window.committed, position(1));
    }

    #[test]
    fn a_batch_without_changes_commits_in_turn() {
        let mut window = Window::new(position(1));
        let (first_ack, first) = delivery();
        window.batches.push_back(batch(vec![first], 2, Some(10)));
        window.batches.push_back(batch(Vec::new(), 3, None));
        assert!(window.take_acknowledged().unwrap().is_none());
        first_ack.send(Ok(())).ok();
        assert_eq!(
            window.take_acknowledged().unwrap().unwrap().next,
            position(3)
        );
    }

    #[test]
    fn a_producer_that_failed_fatally_is_replaced() {
        let kafka = KafkaArgs {
            brokers: "127.0.0.1:9".to_owned(),
            librdkafka_options: Vec::new(),
            consumer_options: Vec::new(),
        };
        let mut poller = Poller {
            encoder: Encoder::new().unwrap(),
            producer: create_producer(&kafka).unwrap(),
            kafka,
            schema_id: 1,
            topic: Arc::from("t"),
            stall_warned_at: Mutex::new(None),
            backlog_measured_at: Mutex::new(None),
            last_prune: Mutex::new(tokio::time::Instant::now()),
        };
        poller.renew_producer_if_fatal().unwrap();
        let healthy = poller.producer.client().native_ptr();

        // librdkafka's own hook for raising a fatal error, as a broker-side idempotence failure
        // (a lost sequence number) does.
        let reason = CString::new("test: the broker lost the producer's sequence").unwrap();
        // SAFETY: the handle is the live producer's, and the reason outlives the call.
        let raised = unsafe {
            rdkafka::bindings::rd_kafka_test_fatal_error(
                healthy,
                RDKafkaRespErr::RD_KAFKA_RESP_ERR_OUT_OF_ORDER_SEQUENCE_NUMBER,
                reason.as_ptr(),
            )
        };
        assert_eq!(raised, RDKafkaRespErr::RD_KAFKA_RESP_ERR_NO_ERROR);
        assert!(poller.producer.client().fatal_error().is_some());

        poller.renew_producer_if_fatal().unwrap();
        assert!(poller.producer.client().fatal_error().is_none());
        assert_ne!(poller.producer.client().native_ptr(), healthy);
    }
}
