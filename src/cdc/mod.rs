//! `userstream cdc`: the change log in PostgreSQL → Avro messages on Kafka.
//!
//! Each round reads a batch with the transaction watermark ([`crate::store::poll_changes`]),
//! produces every change (key = user id, value = Avro `User` in the Confluent wire format, a
//! tombstone for a delete; headers `op`, `source_ts_us`, `source_txid`, and for an update or a
//! delete the `before_*` headers of [`crate::model::BeforeImage`]) with the idempotent
//! producer, waits until Kafka acknowledged **all** of them, and only then stores the new position.
//! A crash between produce and commit replays the batch: delivery is at-least-once, and the
//! processor's timestamped upserts make replays harmless.
//!
//! One poller per cursor name produces at a time: its PostgreSQL session holds an advisory lock
//! on the cursor, and others with the same name wait as standbys until that session ends. The
//! stored cursor never moves back, whoever commits.
//!
//! The newest local schema is registered under `<topic>-value` before anything is produced; a
//! schema the registry refuses (incompatible under the subject's level) stops the stage with the
//! registry's reason, so nothing is ever produced with an unregistered schema.

use std::collections::VecDeque;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::future::try_join_all;
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::{Header, OwnedHeaders};
use rdkafka::producer::{FutureProducer, FutureRecord, Producer};
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

    /// Wait between polls when the change log has nothing new.
    #[arg(
        long = "cdc-poll-interval",
        env = "USERSTREAM_CDC_POLL_INTERVAL",
        default_value = "500ms",
        value_parser = humantime::parse_duration
    )]
    pub poll_interval: Duration,

    /// Most changes read and produced per round.
    #[arg(
        long = "cdc-batch-size",
        env = "USERSTREAM_CDC_BATCH_SIZE",
        default_value_t = 1000
    )]
    pub batch_size: u32,

    /// How often changes every poller has passed are deleted from the change log.
    #[arg(
        long = "cdc-prune-every",
        env = "USERSTREAM_CDC_PRUNE_EVERY",
        default_value = "1m",
        value_parser = humantime::parse_duration
    )]
    pub prune_every: Duration,

    /// How long shutdown waits for the round in flight to be acknowledged by Kafka; a round cut
    /// off is not committed and is produced again after the restart.
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
}

impl Retryable for CdcError {
    fn is_retryable(&self) -> bool {
        match self {
            Self::Store(error) => error.is_retryable(),
            Self::Schema(error) => error.is_retryable(),
            // The producer already retries internally until `message.timeout.ms`; a delivery
            // that still failed (broker down for that long) may succeed on a later round.
            Self::Kafka { .. } => true,
            Self::Encode { .. } | Self::LocalSchema(_) | Self::Telemetry(_) => false,
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

/// Runs the poller until `shutdown`; the batch in flight when it comes is finished and committed.
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
    };

    let mut client = None;
    let mut position = None;
    let mut last_prune = tokio::time::Instant::now();
    let mut backoff = Backoff::new(policy);
    while !shutdown.is_cancelled() {
        let round = async {
            let pg = match client.take() {
                Some(pg) => pg,
                None => {
                    let pg = store::connect(&config.postgres.pg_url).await?;
                    if !lead_cursor(&pg, &config.options, &health, &shutdown).await? {
                        return Ok(0);
                    }
                    // Another poller may have led the cursor meanwhile: its stored position is
                    // the truth now.
                    position = None;
                    pg
                }
            };
            let result = poller
                .round(&pg, &config.options, &mut position, &mut last_prune)
                .await;
            client = Some(pg).filter(|pg: &Client| !pg.is_closed());
            result
        };
        let drain_deadline = async {
            shutdown.cancelled().await;
            tokio::time::sleep(config.options.drain_timeout).await;
        };
        let outcome = tokio::select! {
            outcome = round => outcome,
            () = drain_deadline => {
                tracing::warn!(
                    drain_timeout = ?config.options.drain_timeout,
                    "Kafka did not acknowledge the last round in time; it stays uncommitted and is \
                     produced again after the restart"
                );
                break;
            }
        };
        match outcome {
            Ok(produced) => {
                backoff = Backoff::new(policy);
                health.set_ready(true);
                if produced > 0 {
                    continue;
                }
                tokio::select! {
                    _ = tokio::time::sleep(config.options.poll_interval) => {}
                    _ = shutdown.cancelled() => {}
                }
            }
            Err(error) if error.is_retryable() => {
                health.set_ready(false);
                poller.renew_producer_if_fatal()?;
                // The position in PostgreSQL is the truth after a failure: re-read it.
                position = None;
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

/// What one round needs besides PostgreSQL.
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

    /// Reads one batch, produces it, waits for every acknowledgement, commits the position.
    /// Returns how many changes were produced.
    async fn round(
        &self,
        pg: &Client,
        config: &CdcOptions,
        position: &mut Option<Position>,
        last_prune: &mut tokio::time::Instant,
    ) -> Result<usize, CdcError> {
        let from = match *position {
            Some(from) => from,
            None => store::load_position(pg, &config.name).await?,
        };
        let poll = store::poll_changes(pg, &from, config.batch_size).await?;
        let mut unreadable = poll.unreadable;
        let mut deliveries = VecDeque::with_capacity(poll.changes.len());
        let mut acknowledged = 0;
        for change in &poll.changes {
            match self
                .enqueue_waiting_for_room(change, &mut deliveries, &mut acknowledged)
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
        // Recorded before the position passes them, so none is lost track of.
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
        let produced = acknowledged + deliveries.len();
        try_join_all(deliveries).await?;

        if poll.next != from {
            store::commit_position(pg, &config.name, &poll.next).await?;
        }
        *position = Some(poll.next);
        metrics::gauge!("userstream_cdc_watermark").set(poll.next.watermark as f64);
        if let Some(newest) = poll.changes.last() {
            let lag_us = chrono::Utc::now().timestamp_micros() - newest.source_ts_us;
            metrics::gauge!("userstream_cdc_lag_seconds").set(lag_us as f64 / 1e6);
        } else {
            metrics::gauge!("userstream_cdc_lag_seconds").set(0.0);
        }
        self.report_backlog(pg, config, &poll.next).await?;

        if last_prune.elapsed() >= config.prune_every {
            let pruned = store::prune(pg).await?;
            metrics::counter!("userstream_cdc_pruned_total").increment(pruned);
            *last_prune = tokio::time::Instant::now();
        }
        Ok(produced)
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
    /// librdkafka's queue is full (a batch larger than `queue.buffering.max.messages`), it waits
    /// for the oldest delivery to be acknowledged and tries again: failing the round instead
    /// would produce its first part again on every retry.
    async fn enqueue_waiting_for_room(
        &self,
        change: &Change,
        deliveries: &mut VecDeque<Delivery>,
        acknowledged: &mut usize,
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
                }) => match deliveries.pop_front() {
                    Some(oldest) => {
                        oldest.await?;
                        *acknowledged += 1;
                    }
                    // Full with nothing of ours in it: another round's messages still leave.
                    None => tokio::time::sleep(Duration::from_millis(10)).await,
                },
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
