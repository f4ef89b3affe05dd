//! What the processor does with one message: decide ([`classify`]) and carry out ([`Work::execute`]).

use std::time::Instant;

use rdkafka::error::KafkaError;
use rdkafka::message::{Header, Headers, Message, OwnedHeaders, OwnedMessage};
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::types::RDKafkaErrorCode;
use tokio_util::sync::CancellationToken;

use super::metric_handles::{ConsumeMetrics, LaneMetrics};
use super::ProcessError;
use crate::codec::{DecodeError, Decoder};
use crate::dead_letters;
use crate::error::{chain, Retryable};
use crate::model::BeforeImage;
use crate::normalize::{normalize_owned, NormalizedUser};
use crate::retry::{retry, BackoffPolicy, RetryError};
use crate::schemas::{SchemaError, SchemaRegistryClient, SCHEMA_NOT_FOUND};
use crate::sink::{CassandraSink, CountryKey};

/// One message's work. Every variant ends with the message's offset being released.
#[derive(Debug)]
pub enum Work {
    Upsert {
        partition: i32,
        offset: i64,
        user: Box<NormalizedUser>,
        /// Where the version this one replaced sits in `users_by_country`, from the message's
        /// before headers.
        previous: Option<CountryKey>,
        source_ts_us: i64,
        source_txid: Option<i64>,
        /// Dead-lettered as it came should Cassandra refuse the data itself.
        original: Box<OwnedMessage>,
    },
    Delete {
        partition: i32,
        offset: i64,
        user_id: String,
        /// Where the deleted version sits in `users_by_country`.
        previous: Option<CountryKey>,
        source_ts_us: i64,
        original: Box<OwnedMessage>,
    },
    DeadLetter(Box<DeadLetter>),
}

/// A message that cannot be processed, with why, on its way to the dead-letter topic.
#[derive(Debug)]
pub struct DeadLetter {
    /// Short, fixed reason: the metric label and the `error_kind` header.
    pub kind: &'static str,
    /// What was wrong, for people: the `error_message` header.
    pub message: String,
    pub topic: String,
    pub partition: i32,
    pub offset: i64,
    pub key: Option<Vec<u8>>,
    pub payload: Option<Vec<u8>>,
    pub headers: Option<OwnedHeaders>,
}

impl DeadLetter {
    /// `message` as it came, on its way to the dead-letter topic because of `kind`.
    fn of(message: &OwnedMessage, kind: &'static str, text: String) -> Self {
        Self {
            kind,
            message: text,
            topic: message.topic().to_owned(),
            partition: message.partition(),
            offset: message.offset(),
            key: message.key().map(<[u8]>::to_vec),
            payload: message.payload().map(<[u8]>::to_vec),
            headers: message.headers().cloned(),
        }
    }
}

impl Work {
    pub fn partition(&self) -> i32 {
        match self {
            Self::Upsert { partition, .. } | Self::Delete { partition, .. } => *partition,
            Self::DeadLetter(letter) => letter.partition,
        }
    }

    pub fn offset(&self) -> i64 {
        match self {
            Self::Upsert { offset, .. } | Self::Delete { offset, .. } => *offset,
            Self::DeadLetter(letter) => letter.offset,
        }
    }

    /// What decides the lane: the user id, so one user's versions stay in order.
    pub fn lane_key(&self) -> &[u8] {
        match self {
            Self::Upsert { user, .. } => user.id.as_bytes(),
            Self::Delete { user_id, .. } => user_id.as_bytes(),
            Self::DeadLetter(letter) => letter.key.as_deref().unwrap_or_default(),
        }
    }

    /// Writes to Cassandra or produces to the dead-letter topic. Safe to repeat.
    pub(super) async fn execute(
        &self,
        sink: &CassandraSink,
        dead_letters: &FutureProducer,
        dead_letter_topic: &str,
        metrics: &LaneMetrics,
    ) -> Result<(), ProcessError> {
        let started = Instant::now();
        let (op_metrics, written, original) = match self {
            Self::Upsert {
                user,
                previous,
                source_ts_us,
                source_txid,
                original,
                ..
            } => (
                &metrics.upsert,
                sink.upsert(user, previous.as_ref(), *source_ts_us, *source_txid)
                    .await,
                original,
            ),
            Self::Delete {
                user_id,
                previous,
                source_ts_us,
                original,
                ..
            } => (
                &metrics.delete,
                sink.delete(user_id, previous.as_ref(), *source_ts_us).await,
                original,
            ),
            Self::DeadLetter(letter) => {
                return produce_dead_letter(letter, dead_letters, dead_letter_topic).await
            }
        };
        match written {
            Ok(()) => {}
            // Cassandra refused these values (a key over 64 KiB, a mutation too large): the
            // same message would be refused forever, so it goes where poison goes.
            Err(error) if error.is_refused_data() => {
                let letter = DeadLetter::of(original, "cassandra_rejected", chain(&error));
                return produce_dead_letter(&letter, dead_letters, dead_letter_topic).await;
            }
            Err(error) => return Err(error.into()),
        }
        op_metrics.seconds.record(started.elapsed().as_secs_f64());
        op_metrics.written.increment(1);
        Ok(())
    }
}

/// Produces `letter` to the dead-letter topic. One that cannot be produced whole (its payload
/// plus the added headers exceed the producer's or the topic's size limit) is produced without
/// its payload, so it still says what was wrong and where the message is; any other refusal that
/// retrying cannot fix stops the processor with it.
async fn produce_dead_letter(
    letter: &DeadLetter,
    producer: &FutureProducer,
    topic: &str,
) -> Result<(), ProcessError> {
    let outcome = match send_dead_letter(letter, producer, topic, None).await {
        Err(error) if is_too_large(&error) && letter.payload.is_some() => {
            let size = letter.payload.as_ref().map_or(0, Vec::len);
            let dropped =
                format!("{size} bytes: too large for the dead-letter topic ({error}); dropped");
            tracing::warn!(
                partition = letter.partition,
                offset = letter.offset,
                size,
                "dead letter too large to produce whole; producing it without its payload"
            );
            send_dead_letter(letter, producer, topic, Some(&dropped)).await
        }
        outcome => outcome,
    };
    outcome.map_err(|source| {
        if is_refused_for_good(&source) {
            ProcessError::DeadLetterRefused {
                partition: letter.partition,
                offset: letter.offset,
                source,
            }
        } else {
            ProcessError::Kafka {
                operation: "produce to the dead-letter topic",
                source,
            }
        }
    })?;
    metrics::counter!("userstream_processor_dead_lettered_total", "reason" => letter.kind)
        .increment(1);
    tracing::warn!(
        kind = letter.kind,
        message = letter.message,
        partition = letter.partition,
        offset = letter.offset,
        "message dead-lettered"
    );
    Ok(())
}

/// One produce of `letter`; with `payload_dropped`, without the payload and with a header saying
/// why.
async fn send_dead_letter(
    letter: &DeadLetter,
    producer: &FutureProducer,
    topic: &str,
    payload_dropped: Option<&str>,
) -> Result<(), KafkaError> {
    let mut headers = OwnedHeaders::new();
    if let Some(original) = &letter.headers {
        for header in original.iter() {
            headers = headers.insert(Header {
                key: header.key,
                value: header.value,
            });
        }
    }
    let partition = letter.partition.to_string();
    let offset = letter.offset.to_string();
    headers = headers
        .insert(Header {
            key: dead_letters::ERROR_KIND,
            value: Some(letter.kind),
        })
        .insert(Header {
            key: dead_letters::ERROR_MESSAGE,
            value: Some(&letter.message),
        })
        .insert(Header {
            key: dead_letters::ORIGINAL_TOPIC,
            value: Some(&letter.topic),
        })
        .insert(Header {
            key: dead_letters::ORIGINAL_PARTITION,
            value: Some(&partition),
        })
        .insert(Header {
            key: dead_letters::ORIGINAL_OFFSET,
            value: Some(&offset),
        });
    if let Some(reason) = payload_dropped {
        headers = headers.insert(Header {
            key: dead_letters::PAYLOAD_DROPPED,
            value: Some(reason),
        });
    }
    let mut record: FutureRecord<'_, [u8], [u8]> = FutureRecord::to(topic).headers(headers);
    if let Some(key) = &letter.key {
        record = record.key(key.as_slice());
    }
    if let (Some(payload), None) = (&letter.payload, payload_dropped) {
        record = record.payload(payload.as_slice());
    }
    producer
        .send(record, rdkafka::util::Timeout::Never)
        .await
        .map(drop)
        .map_err(|(error, _)| error)
}

fn produce_error_code(error: &KafkaError) -> Option<RDKafkaErrorCode> {
    match error {
        KafkaError::MessageProduction(code) => Some(*code),
        _ => None,
    }
}

fn is_too_large(error: &KafkaError) -> bool {
    matches!(
        produce_error_code(error),
        Some(RDKafkaErrorCode::MessageSizeTooLarge | RDKafkaErrorCode::InvalidMessageSize)
    )
}

/// Refusals of the dead-letter topic that no retry can change: without a place for poison, the
/// processor must stop rather than stall or drop it.
fn is_refused_for_good(error: &KafkaError) -> bool {
    matches!(
        produce_error_code(error),
        Some(
            RDKafkaErrorCode::MessageSizeTooLarge
                | RDKafkaErrorCode::InvalidMessageSize
                | RDKafkaErrorCode::TopicAuthorizationFailed
                | RDKafkaErrorCode::ClusterAuthorizationFailed
                | RDKafkaErrorCode::InvalidRecord
                | RDKafkaErrorCode::PolicyViolation
                | RDKafkaErrorCode::InvalidTopic
        )
    )
}

/// Decides what to do with `message`. Returns `None` only when shutdown interrupted a transient
/// wait (fetching the writer schema): the message is then left uncommitted.
pub async fn classify(
    message: OwnedMessage,
    decoder: &mut Decoder,
    registry: &SchemaRegistryClient,
    policy: BackoffPolicy,
    shutdown: &CancellationToken,
    metrics: &mut ConsumeMetrics,
) -> Option<Work> {
    let (partition, offset) = (message.partition(), message.offset());

    let Some(key) = message.key() else {
        return dead(
            &message,
            "missing_key",
            "message has no key (the user id)".to_owned(),
        );
    };
    let Ok(user_id) = std::str::from_utf8(key) else {
        return dead(
            &message,
            "invalid_key",
            "message key is not UTF-8".to_owned(),
        );
    };
    let source_ts_us = match header(&message, "source_ts_us").map(str::parse::<i64>) {
        Some(Ok(ts)) => ts,
        Some(Err(_)) => {
            return dead(
                &message,
                "invalid_header",
                "header source_ts_us is not an integer".to_owned(),
            )
        }
        None => {
            return dead(
                &message,
                "missing_header",
                "header source_ts_us is missing".to_owned(),
            )
        }
    };
    if let Err(reason) = plausible_source_time(source_ts_us, chrono::Utc::now()) {
        return dead(&message, "implausible_source_time", reason);
    }
    let source_txid = match header(&message, "source_txid").map(str::parse::<i64>) {
        Some(Ok(txid)) => Some(txid),
        Some(Err(_)) => {
            return dead(
                &message,
                "invalid_header",
                "header source_txid is not an integer".to_owned(),
            )
        }
        None => None,
    };
    let op = header(&message, "op");
    let previous = match previous_country_key(&message, user_id) {
        Ok(previous) => previous,
        Err(reason) => return dead(&message, "invalid_header", reason),
    };

    let Some(payload) = message.payload() else {
        if matches!(op, Some("c" | "u" | "r")) {
            return dead(
                &message,
                "op_mismatch",
                format!("op {op:?} with a null value (a tombstone)"),
            );
        }
        let user_id = user_id.to_owned();
        return Some(Work::Delete {
            partition,
            offset,
            user_id,
            previous,
            source_ts_us,
            original: Box::new(message),
        });
    };
    if op == Some("d") {
        return dead(
            &message,
            "op_mismatch",
            "op \"d\" with a non-null value".to_owned(),
        );
    }

    let decoded = loop {
        match decoder.decode(payload) {
            Ok(decoded) => break decoded,
            Err(DecodeError::UnknownSchemaId(id)) => {
                let fetched = retry("fetch writer schema", policy, shutdown, || async {
                    registry.schema_by_id(id).await.map_err(WriterSchemaLookup)
                })
                .await;
                let registered = match fetched {
                    Ok(schema) => decoder.register_writer(id, &schema),
                    Err(RetryError::Cancelled(_)) => return None,
                    Err(RetryError::Permanent(WriterSchemaLookup(error))) => {
                        return dead(&message, "unknown_schema", chain(&error));
                    }
                };
                if let Err(error) = registered {
                    return dead(&message, error.kind(), chain(&error));
                }
            }
            Err(error) => return dead(&message, error.kind(), chain(&error)),
        }
    };
    if decoded.record.id != user_id {
        return dead(
            &message,
            "key_mismatch",
            format!(
                "key {user_id:?} but the value's id is {:?}",
                decoded.record.id
            ),
        );
    }
    match normalize_owned(decoded.record) {
        Ok(normalized) => {
            for repair in &normalized.repairs {
                metrics.repaired(*repair).increment(1);
            }
            for warning in &normalized.warnings {
                metrics.dropped(*warning).increment(1);
            }
            metrics.normalize_accepted.increment(1);
            Some(Work::Upsert {
                partition,
                offset,
                user: Box::new(normalized.user),
                previous,
                source_ts_us,
                source_txid,
                original: Box::new(message),
            })
        }
        Err(error) => {
            metrics::counter!(
                "userstream_normalize_rejected_total",
                "field" => error.field,
                "reason" => error.reason.as_str()
            )
            .increment(1);
            dead(&message, "invalid_value", chain(&error))
        }
    }
}

fn dead(message: &OwnedMessage, kind: &'static str, text: String) -> Option<Work> {
    Some(Work::DeadLetter(Box::new(DeadLetter::of(
        message, kind, text,
    ))))
}

/// A source time is the change's commit time in PostgreSQL, and it becomes the Cassandra write
/// time: one far in the future would win against every later version of the user, freezing it
/// for good, and one before 2000 is no time this pipeline wrote. Such a header is poison.
fn plausible_source_time(
    source_ts_us: i64,
    now: chrono::DateTime<chrono::Utc>,
) -> Result<(), String> {
    const EARLIEST_US: i64 = 946_684_800_000_000; // 2000-01-01T00:00:00Z
    let latest_us = (now + chrono::Duration::days(1)).timestamp_micros();
    if (EARLIEST_US..=latest_us).contains(&source_ts_us) {
        Ok(())
    } else {
        Err(format!(
            "header source_ts_us is {source_ts_us}, not between 2000-01-01 and a day from now \
             ({latest_us})"
        ))
    }
}

/// Looking a message's writer schema up. Only the registry's definitive "no schema with this id"
/// (error 40403) is final and dead-letters the message: any other failure — a gateway's 504, a
/// 500 with an HTML body, 429, a refused connection, an answer that is not JSON — says nothing
/// about the message, so it is retried for as long as it lasts.
#[derive(Debug, thiserror::Error)]
#[error(transparent)]
struct WriterSchemaLookup(SchemaError);

impl Retryable for WriterSchemaLookup {
    fn is_retryable(&self) -> bool {
        !matches!(
            self.0,
            SchemaError::Refused {
                error_code: SCHEMA_NOT_FOUND,
                ..
            }
        )
    }
}

/// Where the version a change replaced sits in `users_by_country`, from the message's before
/// headers: `None` when there are none (a create; a snapshot image; a message produced before
/// the change log recorded before images) or when they name no country, as a version that
/// normalization refused was never written. The key is computed by normalizing the image, so it
/// is the key that version was written under.
fn previous_country_key(
    message: &OwnedMessage,
    user_id: &str,
) -> Result<Option<CountryKey>, String> {
    let registered_at = match header(message, BeforeImage::REGISTERED_AT_HEADER) {
        None => None,
        Some(text) => Some(
            text.parse::<i64>()
                .ok()
                .and_then(chrono::DateTime::from_timestamp_micros)
                .ok_or_else(|| {
                    format!(
                        "header {} is not a time in microseconds: {text:?}",
                        BeforeImage::REGISTERED_AT_HEADER
                    )
                })?,
        ),
    };
    let before = BeforeImage {
        nat: header(message, BeforeImage::NAT_HEADER).map(str::to_owned),
        country: header(message, BeforeImage::COUNTRY_HEADER).map(str::to_owned),
        national_id_name: header(message, BeforeImage::NATIONAL_ID_NAME_HEADER).map(str::to_owned),
        registered_at,
    };
    if before == BeforeImage::default() {
        return Ok(None);
    }
    Ok(normalize_owned(before.to_record(user_id))
        .ok()
        .map(|previous| CountryKey::of(&previous.user)))
}

fn header<'a>(message: &'a OwnedMessage, key: &str) -> Option<&'a str> {
    message
        .headers()?
        .iter()
        .find(|header| header.key == key)
        .and_then(|header| std::str::from_utf8(header.value?).ok())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn refused(error_code: u32) -> WriterSchemaLookup {
        WriterSchemaLookup(SchemaError::Refused {
            operation: "schema lookup",
            target: "id 7".to_owned(),
            error_code,
            reason: "from the registry".to_owned(),
        })
    }

    fn with_headers(headers: &[(&str, &str)]) -> OwnedMessage {
        let headers = headers
            .iter()
            .fold(OwnedHeaders::new(), |all, (key, value)| {
                all.insert(Header {
                    key,
                    value: Some(*value),
                })
            });
        OwnedMessage::new(
            None,
            Some(b"u-1".to_vec()),
            "users".to_owned(),
            rdkafka::Timestamp::NotAvailable,
            0,
            0,
            Some(headers),
        )
    }

    #[test]
    fn the_before_headers_name_the_row_the_replaced_version_was_written_to() {
        let key = |headers: &[(&str, &str)]| previous_country_key(&with_headers(headers), "u-1");
        let registered_at = chrono::DateTime::from_timestamp_millis(1_433_664_550_123).unwrap();
        // Normalized as that version was: nat upper-cased, the time cut to milliseconds.
        assert_eq!(
            key(&[
                ("before_nat", " fr "),
                ("before_country", "Germany"),
                ("before_registered_at_us", "1433664550123456"),
            ]),
            Ok(Some(CountryKey {
                country_code: "FR".to_owned(),
                registered_at,
            }))
        );
        // No nationality: the country name; no registration: the epoch, where it sorts last.
        assert_eq!(
            key(&[("before_country", "Switzerland")]),
            Ok(Some(CountryKey {
                country_code: "CH".to_owned(),
                registered_at: chrono::DateTime::UNIX_EPOCH,
            }))
        );
        // A create, or a version without any country (refused, so never written).
        assert_eq!(key(&[("op", "c")]), Ok(None));
        assert_eq!(
            key(&[("before_registered_at_us", "1433664550123456")]),
            Ok(None)
        );
        assert!(key(&[("before_nat", "DE"), ("before_registered_at_us", "soon")]).is_err());
    }

    #[test]
    fn only_the_registrys_schema_not_found_is_final() {
        assert!(!refused(SCHEMA_NOT_FOUND).is_retryable());
        // A 404 without Confluent's error body (a proxy's page), a rate limit, an auth failure:
        // none of them says the schema does not exist.
        for code in [404, 429, 401, 40401, 50001] {
            assert!(refused(code).is_retryable(), "{code}");
        }
    }
}
