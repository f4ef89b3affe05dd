//! What the processor does with one message: decide ([`classify`]) and carry out ([`Work::execute`]).

use std::time::Instant;

use rdkafka::message::{Header, Headers, Message, OwnedHeaders, OwnedMessage};
use rdkafka::producer::{FutureProducer, FutureRecord};
use tokio_util::sync::CancellationToken;

use super::ProcessError;
use crate::codec::{DecodeError, Decoder};
use crate::error::{chain, Retryable};
use crate::normalize::{normalize, NormalizedUser};
use crate::retry::{retry, BackoffPolicy, RetryError};
use crate::schemas::{SchemaError, SchemaRegistryClient, SCHEMA_NOT_FOUND};
use crate::sink::{CassandraSink, WriteOutcome};

/// One message's work. Every variant ends with the message's offset being released.
#[derive(Debug)]
pub enum Work {
    Upsert {
        partition: i32,
        offset: i64,
        user: Box<NormalizedUser>,
        source_ts_us: i64,
        source_txid: Option<i64>,
    },
    Delete {
        partition: i32,
        offset: i64,
        user_id: String,
        source_ts_us: i64,
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
    pub async fn execute(
        &self,
        sink: &CassandraSink,
        dead_letters: &FutureProducer,
        dead_letter_topic: &str,
    ) -> Result<(), ProcessError> {
        let started = Instant::now();
        let (op, outcome) = match self {
            Self::Upsert {
                user,
                source_ts_us,
                source_txid,
                ..
            } => (
                "upsert",
                sink.upsert(user, *source_ts_us, *source_txid).await?,
            ),
            Self::Delete {
                user_id,
                source_ts_us,
                ..
            } => ("delete", sink.delete(user_id, *source_ts_us).await?),
            Self::DeadLetter(letter) => {
                return produce_dead_letter(letter, dead_letters, dead_letter_topic).await
            }
        };
        metrics::histogram!("userstream_processor_write_seconds", "op" => op)
            .record(started.elapsed().as_secs_f64());
        let outcome = match outcome {
            WriteOutcome::Applied => "applied",
            WriteOutcome::Stale => "stale",
        };
        metrics::counter!("userstream_processor_records_written_total", "op" => op, "outcome" => outcome)
            .increment(1);
        Ok(())
    }
}

async fn produce_dead_letter(
    letter: &DeadLetter,
    producer: &FutureProducer,
    topic: &str,
) -> Result<(), ProcessError> {
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
            key: "error_kind",
            value: Some(letter.kind),
        })
        .insert(Header {
            key: "error_message",
            value: Some(&letter.message),
        })
        .insert(Header {
            key: "original_topic",
            value: Some(&letter.topic),
        })
        .insert(Header {
            key: "original_partition",
            value: Some(&partition),
        })
        .insert(Header {
            key: "original_offset",
            value: Some(&offset),
        });
    let mut record: FutureRecord<'_, [u8], [u8]> = FutureRecord::to(topic).headers(headers);
    if let Some(key) = &letter.key {
        record = record.key(key.as_slice());
    }
    if let Some(payload) = &letter.payload {
        record = record.payload(payload.as_slice());
    }
    producer
        .send(record, rdkafka::util::Timeout::Never)
        .await
        .map_err(|(source, _)| ProcessError::Kafka {
            operation: "produce to the dead-letter topic",
            source,
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

/// Decides what to do with `message`. Returns `None` only when shutdown interrupted a transient
/// wait (fetching the writer schema): the message is then left uncommitted.
pub async fn classify(
    message: OwnedMessage,
    decoder: &mut Decoder,
    registry: &SchemaRegistryClient,
    policy: BackoffPolicy,
    shutdown: &CancellationToken,
) -> Option<Work> {
    let dead = |kind: &'static str, text: String| {
        Some(Work::DeadLetter(Box::new(DeadLetter {
            kind,
            message: text,
            topic: message.topic().to_owned(),
            partition: message.partition(),
            offset: message.offset(),
            key: message.key().map(<[u8]>::to_vec),
            payload: message.payload().map(<[u8]>::to_vec),
            headers: message.headers().cloned(),
        })))
    };
    let (partition, offset) = (message.partition(), message.offset());

    let Some(key) = message.key() else {
        return dead("missing_key", "message has no key (the user id)".to_owned());
    };
    let Ok(user_id) = std::str::from_utf8(key) else {
        return dead("invalid_key", "message key is not UTF-8".to_owned());
    };
    let source_ts_us = match header(&message, "source_ts_us").map(str::parse::<i64>) {
        Some(Ok(ts)) => ts,
        Some(Err(_)) => {
            return dead(
                "invalid_header",
                "header source_ts_us is not an integer".to_owned(),
            )
        }
        None => {
            return dead(
                "missing_header",
                "header source_ts_us is missing".to_owned(),
            )
        }
    };
    let source_txid = match header(&message, "source_txid").map(str::parse::<i64>) {
        Some(Ok(txid)) => Some(txid),
        Some(Err(_)) => {
            return dead(
                "invalid_header",
                "header source_txid is not an integer".to_owned(),
            )
        }
        None => None,
    };
    let op = header(&message, "op");

    let Some(payload) = message.payload() else {
        if matches!(op, Some("c" | "u")) {
            return dead(
                "op_mismatch",
                format!("op {op:?} with a null value (a tombstone)"),
            );
        }
        return Some(Work::Delete {
            partition,
            offset,
            user_id: user_id.to_owned(),
            source_ts_us,
        });
    };
    if op == Some("d") {
        return dead("op_mismatch", "op \"d\" with a non-null value".to_owned());
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
                        return dead("unknown_schema", chain(&error));
                    }
                };
                if let Err(error) = registered {
                    return dead(error.kind(), chain(&error));
                }
            }
            Err(error) => return dead(error.kind(), chain(&error)),
        }
    };
    if decoded.record.id != user_id {
        return dead(
            "key_mismatch",
            format!(
                "key {user_id:?} but the value's id is {:?}",
                decoded.record.id
            ),
        );
    }
    match normalize(&decoded.record) {
        Ok(normalized) => {
            for repair in &normalized.repairs {
                metrics::counter!(
                    "userstream_normalize_repaired_total",
                    "field" => repair.field,
                    "reason" => repair.reason.as_str()
                )
                .increment(1);
            }
            for warning in &normalized.warnings {
                metrics::counter!(
                    "userstream_normalize_dropped_total",
                    "field" => warning.field,
                    "reason" => warning.reason.as_str()
                )
                .increment(1);
            }
            metrics::counter!("userstream_normalize_accepted_total").increment(1);
            Some(Work::Upsert {
                partition,
                offset,
                user: Box::new(normalized.user),
                source_ts_us,
                source_txid,
            })
        }
        Err(error) => {
            metrics::counter!(
                "userstream_normalize_rejected_total",
                "field" => error.field,
                "reason" => error.reason.as_str()
            )
            .increment(1);
            dead("invalid_value", chain(&error))
        }
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
