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

/// Confluent's error code for "no schema with this id".
pub const SCHEMA_NOT_FOUND: u32 = 40403;

/// The subject holding the value schemas of `topic` (Confluent's TopicNameStrategy).
pub fn value_subject(topic: &str) -> String {
    format!("{topic}-value")
}

/// Errors talking to the Schema Registry.
#[derive(Debug, thiserror::Error)]
pub enum SchemaError {
    /// `url` is shown without its password: errors end up in logs and on terminals.
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
    /// A request made without `schema_registry_converter` (which lacks it) failed on the way,
    /// or its answer was not the JSON the API documents.
    #[error("Schema Registry request failed: {operation} for {target}")]
    Http {
        operation: &'static str,
        target: String,
        #[source]
        source: reqwest::Error,
    },
}

/// The registry's answer to "could this schema be registered under the subject now?".
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CompatibilityReport {
    pub is_compatible: bool,
    /// The registry's reasons when it is not (empty when it gave none).
    pub messages: Vec<String>,
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
            Self::Http { source, .. } => !source.is_decode() && !source.is_builder(),
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
    /// The registry's base URL, for the calls `schema_registry_converter` does not offer.
    base_url: String,
    http: reqwest::Client,
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
                url: args.redacted_url(),
                source,
            })?;
        let http = reqwest::Client::builder()
            .timeout(std::time::Duration::from_secs(10))
            .build()
            .map_err(|source| SchemaError::Http {
                operation: "client set-up",
                target: args.redacted_url(),
                source,
            })?;
        Ok(Self {
            settings,
            base_url: args.url.trim_end_matches('/').to_owned(),
            http,
        })
    }

    /// Whether `schema` could be registered under `subject` now, and if not the registry's
    /// reasons: Confluent's `verbose` compatibility check against the versions the subject's
    /// level requires (the latest, or every one for the `_TRANSITIVE` levels). A subject without
    /// versions accepts anything.
    pub async fn check_compatibility(
        &self,
        subject: &str,
        schema: &str,
    ) -> Result<CompatibilityReport, SchemaError> {
        const OPERATION: &str = "compatibility check";
        #[derive(serde::Deserialize)]
        struct Answer {
            is_compatible: bool,
            #[serde(default)]
            messages: Vec<String>,
        }
        let url = format!(
            "{}/compatibility/subjects/{}/versions",
            self.base_url,
            path_segment(subject)
        );
        let response = self
            .http
            .post(url)
            .query(&[("verbose", "true")])
            .header("Content-Type", "application/vnd.schemaregistry.v1+json")
            .json(&serde_json::json!({ "schema": schema }))
            .send()
            .await
            .map_err(http_error(OPERATION, subject))?;
        match self.answer::<Answer>(OPERATION, subject, response).await {
            Ok(answer) => Ok(CompatibilityReport {
                is_compatible: answer.is_compatible,
                messages: answer.messages,
            }),
            // Confluent's registry answers "subject not found" where there is nothing to check
            // against; ours says compatible.
            Err(SchemaError::Refused {
                error_code: SUBJECT_NOT_FOUND,
                ..
            }) => Ok(CompatibilityReport {
                is_compatible: true,
                messages: Vec::new(),
            }),
            Err(error) => Err(error),
        }
    }

    /// The compatibility level in force for `subject`: its own, or else the registry's.
    pub async fn compatibility_level(&self, subject: &str) -> Result<String, SchemaError> {
        const OPERATION: &str = "compatibility level lookup";
        #[derive(serde::Deserialize)]
        #[serde(rename_all = "camelCase")]
        struct Level {
            compatibility_level: String,
        }
        let url = format!("{}/config/{}", self.base_url, path_segment(subject));
        let response = self
            .http
            .get(url)
            .query(&[("defaultToGlobal", "true")])
            .send()
            .await
            .map_err(http_error(OPERATION, subject))?;
        let level: Level = self.answer(OPERATION, subject, response).await?;
        Ok(level.compatibility_level)
    }

    /// The JSON body of a 2xx answer; a 4xx with the registry's error JSON is
    /// [`SchemaError::Refused`].
    async fn answer<T: serde::de::DeserializeOwned>(
        &self,
        operation: &'static str,
        target: &str,
        response: reqwest::Response,
    ) -> Result<T, SchemaError> {
        let status = response.status();
        if status.is_client_error() {
            if let Ok(raw) = response.json::<RegistryErrorBody>().await {
                return Err(SchemaError::Refused {
                    operation,
                    target: target.to_owned(),
                    error_code: raw.error_code,
                    reason: raw.message,
                });
            }
            return Err(SchemaError::Refused {
                operation,
                target: target.to_owned(),
                error_code: u32::from(status.as_u16()),
                reason: status.to_string(),
            });
        }
        response
            .error_for_status()
            .map_err(http_error(operation, target))?
            .json()
            .await
            .map_err(http_error(operation, target))
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

    /// The versions registered under `subject`, oldest first; none when the subject has none.
    pub async fn subject_versions(&self, subject: &str) -> Result<Vec<u32>, SchemaError> {
        const OPERATION: &str = "version list";
        let url = format!(
            "{}/subjects/{}/versions",
            self.base_url,
            path_segment(subject)
        );
        let response = self
            .http
            .get(url)
            .send()
            .await
            .map_err(http_error(OPERATION, subject))?;
        match self.answer(OPERATION, subject, response).await {
            Err(SchemaError::Refused {
                error_code: SUBJECT_NOT_FOUND,
                ..
            }) => Ok(Vec::new()),
            answer => answer,
        }
    }

    /// The newest version registered under `subject` and its schema id; `None` when the subject
    /// has no versions.
    pub async fn latest_version(
        &self,
        subject: &str,
    ) -> Result<Option<SubjectVersion>, SchemaError> {
        const OPERATION: &str = "latest version lookup";
        let url = format!(
            "{}/subjects/{}/versions/latest",
            self.base_url,
            path_segment(subject)
        );
        let response = self
            .http
            .get(url)
            .send()
            .await
            .map_err(http_error(OPERATION, subject))?;
        match self.answer(OPERATION, subject, response).await {
            Ok(version) => Ok(Some(version)),
            Err(SchemaError::Refused {
                error_code: SUBJECT_NOT_FOUND,
                ..
            }) => Ok(None),
            Err(error) => Err(error),
        }
    }

    /// The schema (Avro JSON) with `id`, as a message's writer schema.
    pub async fn schema_by_id(&self, id: u32) -> Result<String, SchemaError> {
        get_schema_by_id(id, &self.settings)
            .await
            .map(|registered| registered.schema)
            .map_err(|source| classify("schema lookup", &format!("id {id}"), source))
    }
}

/// Confluent's error code for "no such subject".
const SUBJECT_NOT_FOUND: u32 = 40401;

/// One version of a subject, as `GET /subjects/{subject}/versions/{version}` answers.
#[derive(Debug, Clone, PartialEq, Eq, serde::Deserialize, serde::Serialize)]
pub struct SubjectVersion {
    pub version: u32,
    /// The schema's registry id, the one messages written with it carry.
    pub id: u32,
}

/// The error body of the Confluent API.
#[derive(serde::Deserialize)]
struct RegistryErrorBody {
    error_code: u32,
    message: String,
}

fn http_error(operation: &'static str, target: &str) -> impl Fn(reqwest::Error) -> SchemaError {
    let target = target.to_owned();
    move |source| SchemaError::Http {
        operation,
        target: target.clone(),
        source,
    }
}

/// `text` as one URL path segment (subjects may hold any character; topic names hold
/// `[A-Za-z0-9._-]`, which pass unchanged).
fn path_segment(text: &str) -> String {
    text.bytes()
        .map(|byte| match byte {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'.' | b'_' | b'-' | b'~' => {
                char::from(byte).to_string()
            }
            other => format!("%{other:02X}"),
        })
        .collect()
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

#[cfg(test)]
mod tests {
    use super::*;

    /// The full chain of causes, as `main` and the logs print an error.
    fn chain(error: &dyn std::error::Error) -> String {
        let mut text = format!("{error} / {error:?}");
        let mut source = error.source();
        while let Some(cause) = source {
            text.push_str(&format!(" / {cause} / {cause:?}"));
            source = cause.source();
        }
        text
    }

    #[tokio::test]
    async fn errors_never_show_the_registry_password() {
        // Port 1 on the loopback refuses at once: every call fails in the client.
        let client = SchemaRegistryClient::new(&SchemaRegistryArgs {
            url: "http://key:hunter2@127.0.0.1:1".to_owned(),
        })
        .unwrap();
        let errors = [
            client.register("s-value", "\"string\"").await.unwrap_err(),
            client.compatibility_level("s-value").await.unwrap_err(),
            client
                .check_compatibility("s-value", "\"string\"")
                .await
                .unwrap_err(),
        ];
        for error in errors {
            let text = chain(&error);
            assert!(!text.contains("hunter2"), "{text}");
            assert!(error.is_retryable(), "{text}");
        }
    }
}
