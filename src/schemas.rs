//! The pipeline's side of the Schema Registry: the producer registers the newest local value
//! schema under `<topic>-value` (TopicNameStrategy) before producing anything, and the processor
//! fetches writer schemas by the id each message carries.
//!
//! Calls go through `schema_registry_converter`, so any Confluent-compatible registry works
//! (Confluent's, Karapace, `userstream registry`). An incompatible schema is refused by the
//! registry itself, under the subject's compatibility level, and its reason is passed on verbatim.

use std::error::Error as _;

use schema_registry_converter::async_impl::schema_registry::{
    get_schema_by_id, is_compatible_schema, post_schema, SrSettings,
};
use schema_registry_converter::error::SRCError;
use schema_registry_converter::schema_registry_common::{RawError, SchemaType, SuppliedSchema};

use crate::config::SchemaRegistryArgs;
use crate::error::Retryable;

/// The subject holding the value schemas of `topic` (Confluent's TopicNameStrategy).
pub fn value_subject(topic: &str) -> String {
    format!("{topic}-value")
}

/// Errors talking to the Schema Registry.
#[derive(Debug, thiserror::Error)]
pub enum SchemaError {
    #[error("invalid Schema Registry settings for {url}")]
    Settings {
        url: String,
        #[source]
        source: SRCError,
    },
    /// The registry answered and said no (incompatible, invalid, not found): its code and reason.
    #[error("the Schema Registry refused {operation} for {target} (error {error_code}): {reason}")]
    Refused {
        operation: &'static str,
        target: String,
        error_code: u32,
        reason: String,
    },
    /// The registry could not be reached or failed on its side.
    #[error("Schema Registry request failed: {operation} for {target}")]
    Request {
        operation: &'static str,
        target: String,
        #[source]
        source: SRCError,
    },
}

impl Retryable for SchemaError {
    fn is_retryable(&self) -> bool {
        match self {
            Self::Request { source, .. } => {
                source.retriable
                    || source
                        .source()
                        .is_some_and(|cause| cause.downcast_ref::<reqwest::Error>().is_some())
                    || registry_error(source).is_some_and(|raw| raw.error_code >= 50000)
            }
            Self::Settings { .. } | Self::Refused { .. } => false,
        }
    }
}

fn registry_error(error: &SRCError) -> Option<&RawError> {
    error.source()?.downcast_ref::<RawError>()
}

/// A client of one Schema Registry.
#[derive(Clone)]
pub struct SchemaRegistryClient {
    settings: SrSettings,
}

impl std::fmt::Debug for SchemaRegistryClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SchemaRegistryClient")
            .finish_non_exhaustive()
    }
}

impl SchemaRegistryClient {
    pub fn new(args: &SchemaRegistryArgs) -> Result<Self, SchemaError> {
        let settings = SrSettings::new_builder(args.url.clone())
            .set_timeout(std::time::Duration::from_secs(10))
            .build()
            .map_err(|source| SchemaError::Settings {
                url: args.url.clone(),
                source,
            })?;
        Ok(Self { settings })
    }

    /// Registers `schema` (Avro JSON) under `subject` and returns its id. The same schema again
    /// returns the same id; one the subject's compatibility level forbids is [`SchemaError::Refused`].
    pub async fn register(&self, subject: &str, schema: &str) -> Result<u32, SchemaError> {
        post_schema(&self.settings, subject.to_owned(), avro(schema))
            .await
            .map(|registered| registered.id)
            .map_err(|source| classify("registration", subject, source))
    }

    /// Whether `schema` could be registered under `subject` now, without registering it.
    pub async fn is_compatible(&self, subject: &str, schema: &str) -> Result<bool, SchemaError> {
        is_compatible_schema(&self.settings, subject.to_owned(), avro(schema))
            .await
            .map_err(|source| classify("compatibility check", subject, source))
    }

    /// The schema (Avro JSON) with `id`, as a message's writer schema.
    pub async fn schema_by_id(&self, id: u32) -> Result<String, SchemaError> {
        get_schema_by_id(id, &self.settings)
            .await
            .map(|registered| registered.schema)
            .map_err(|source| classify("schema lookup", &format!("id {id}"), source))
    }
}

fn avro(schema: &str) -> SuppliedSchema {
    SuppliedSchema::new(None, SchemaType::Avro, schema.to_owned())
}

/// A client-side answer of the registry (4xx with its error JSON) is a refusal; anything else
/// is a failed request whose retryability [`Retryable`] decides.
fn classify(operation: &'static str, target: &str, source: SRCError) -> SchemaError {
    match registry_error(&source) {
        Some(raw) if (40000..50000).contains(&raw.error_code) || raw.error_code == 409 => {
            SchemaError::Refused {
                operation,
                target: target.to_owned(),
                error_code: raw.error_code,
                reason: raw.message.clone(),
            }
        }
        _ => SchemaError::Request {
            operation,
            target: target.to_owned(),
            source,
        },
    }
}
