//! `userstream schemas check|register`: the newest local value schema (or a candidate file)
//! against the topic's subject `<topic>-value`, under the compatibility level the registry has
//! for that subject.
//!
//! `check` asks the registry whether the schema could be registered now and exits non-zero with
//! the registry's reasons when it could not; `register` registers it and prints its id. Neither
//! produces anything to Kafka: this is how a new `schemas/user-vN.avsc` is tried before a `cdc`
//! with it is deployed (which registers it itself on start).

use std::path::PathBuf;

use tokio_util::sync::CancellationToken;

use crate::codec::USER_SCHEMA;
use crate::config::{SchemaRegistryArgs, TopicArgs};
use crate::error::Retryable;
use crate::schemas::{value_subject, SchemaError, SchemaRegistryClient};

/// Settings of `userstream schemas`.
#[derive(Debug, Clone, clap::Args)]
pub struct Config {
    #[command(subcommand)]
    pub action: Action,
}

#[derive(Debug, Clone, clap::Subcommand)]
pub enum Action {
    /// Ask the registry whether the schema is compatible with `<topic>-value` (exit code 1 and
    /// the registry's reasons if not). Registers nothing.
    Check(Args),
    /// Register the schema under `<topic>-value` and print its id (exit code 1 and the
    /// registry's reason if it refuses). Produces nothing.
    Register(Args),
}

/// What both actions need.
#[derive(Debug, Clone, clap::Args)]
pub struct Args {
    #[command(flatten)]
    pub registry: SchemaRegistryArgs,
    #[command(flatten)]
    pub topic: TopicArgs,
    /// An Avro schema file to use instead of the newest schema built into this binary (the
    /// last `schemas/user-vN.avsc`), e.g. a candidate for the next version.
    #[arg(long = "schema-file", env = "USERSTREAM_SCHEMA_FILE")]
    pub schema_file: Option<PathBuf>,
}

/// Why `userstream schemas` failed.
#[derive(Debug, thiserror::Error)]
pub enum SchemasCmdError {
    #[error("cannot read the schema file {path}")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error(transparent)]
    Registry(#[from] SchemaError),
    /// The registry's check said no.
    #[error(
        "{schema} is not compatible with subject {subject} (level {level}): {}",
        reasons(messages)
    )]
    Incompatible {
        schema: String,
        subject: String,
        level: String,
        messages: Vec<String>,
    },
}

impl Retryable for SchemasCmdError {
    fn is_retryable(&self) -> bool {
        match self {
            Self::Registry(error) => error.is_retryable(),
            Self::Read { .. } | Self::Incompatible { .. } => false,
        }
    }
}

fn reasons(messages: &[String]) -> String {
    if messages.is_empty() {
        "the registry gave no reason".to_owned()
    } else {
        messages.join("; ")
    }
}

/// What a successful action found out.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// `check`: the schema could be registered; the level it was checked under.
    Compatible { level: String },
    /// `register`: the schema's id (the same id again when it was registered before).
    Registered { id: u32 },
}

/// Runs one action and prints its outcome. Refusals are errors, so the exit code says it.
pub async fn run(config: Config, shutdown: CancellationToken) -> Result<(), SchemasCmdError> {
    let (args, verb) = match &config.action {
        Action::Check(args) => (args, "check"),
        Action::Register(args) => (args, "register"),
    };
    let schema = Schema::load(args.schema_file.as_ref())?;
    let subject = value_subject(&args.topic.topic);
    let outcome = tokio::select! {
        outcome = execute(&config.action, &schema) => outcome?,
        _ = shutdown.cancelled() => {
            tracing::info!(verb, "interrupted");
            return Ok(());
        }
    };
    match outcome {
        Outcome::Compatible { level } => println!(
            "{} is compatible with subject {subject} (level {level})",
            schema.name
        ),
        Outcome::Registered { id } => {
            println!(
                "{} registered under subject {subject} with id {id}",
                schema.name
            )
        }
    }
    Ok(())
}

/// The action's outcome, without printing: what `run` and the tests share.
pub async fn execute(action: &Action, schema: &Schema) -> Result<Outcome, SchemasCmdError> {
    let args = match action {
        Action::Check(args) | Action::Register(args) => args,
    };
    let registry = SchemaRegistryClient::new(&args.registry)?;
    let subject = value_subject(&args.topic.topic);
    match action {
        Action::Check(_) => {
            let report = registry.check_compatibility(&subject, &schema.text).await?;
            let level = registry.compatibility_level(&subject).await?;
            if report.is_compatible {
                Ok(Outcome::Compatible { level })
            } else {
                Err(SchemasCmdError::Incompatible {
                    schema: schema.name.clone(),
                    subject,
                    level,
                    messages: report.messages,
                })
            }
        }
        Action::Register(_) => {
            let id = registry.register(&subject, &schema.text).await?;
            tracing::info!(subject, id, schema = schema.name, "schema registered");
            Ok(Outcome::Registered { id })
        }
    }
}

/// A schema to check or register, with a name for messages.
#[derive(Debug, Clone)]
pub struct Schema {
    /// The file it came from, or "the newest built-in schema".
    pub name: String,
    pub text: String,
}

impl Schema {
    /// The file's schema, or the newest one built into the binary.
    pub fn load(file: Option<&PathBuf>) -> Result<Self, SchemasCmdError> {
        match file {
            None => Ok(Self::newest()),
            Some(path) => Ok(Self {
                name: path.display().to_string(),
                text: std::fs::read_to_string(path).map_err(|source| SchemasCmdError::Read {
                    path: path.clone(),
                    source,
                })?,
            }),
        }
    }

    /// The newest `schemas/user-vN.avsc`, as the poller writes it.
    pub fn newest() -> Self {
        Self {
            name: format!(
                "the newest built-in value schema (v{})",
                crate::codec::USER_SCHEMA_VERSIONS.len()
            ),
            text: USER_SCHEMA.to_owned(),
        }
    }
}
