//! The process stage's limit: the rows the sink writes for the run's changes, written blind
//! (single-row prepared upserts `USING TIMESTAMP`, no reads) at the processor's concurrency.
//! Per insert that is one `users_by_id` row with every column, the `cql/003` ones included, and
//! one `users_by_country` row: two writes per change.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use chrono::{DateTime, NaiveDate, Utc};
use rdkafka::consumer::{Consumer, StreamConsumer};
use rdkafka::message::{Headers, Message};
use rdkafka::{ClientConfig, Offset, TopicPartitionList};
use scylla::client::session::Session;
use scylla::SerializeRow;
use userstream::codec::{DecodeError, Decoder};
use userstream::config::SchemaRegistryArgs;
use userstream::normalize::{normalize, NormalizedUser};
use userstream::schemas::SchemaRegistryClient;

/// One change as the processor would write it.
pub struct Change {
    user: NormalizedUser,
    source_ts_us: i64,
    source_txid: Option<i64>,
}

/// Reads the `expected` messages of `topic` from the start and turns each into the row the
/// processor writes: decoded (writer schemas from the registry), normalized, with the headers'
/// source time and transaction.
pub async fn read_changes(
    brokers: &str,
    topic: &str,
    partitions: i32,
    registry_url: &str,
    expected: usize,
) -> anyhow::Result<Vec<Change>> {
    let consumer: StreamConsumer = ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .set("group.id", format!("{topic}-limit-reader"))
        .set("enable.auto.commit", "false")
        .create()?;
    let mut assignment = TopicPartitionList::new();
    for partition in 0..partitions {
        assignment.add_partition_offset(topic, partition, Offset::Beginning)?;
    }
    consumer.assign(&assignment)?;
    let registry = SchemaRegistryClient::new(&SchemaRegistryArgs {
        url: registry_url.to_owned(),
    })?;
    let mut decoder = Decoder::new()?;
    let mut changes = Vec::with_capacity(expected);
    let deadline = Instant::now() + Duration::from_secs(300);
    while changes.len() < expected {
        let message = tokio::time::timeout_at(deadline.into(), consumer.recv())
            .await
            .with_context(|| {
                format!("only {} of {expected} messages on {topic}", changes.len())
            })??;
        let header = |name: &str| -> anyhow::Result<i64> {
            let headers = message.headers().context("a message without headers")?;
            let value = headers
                .iter()
                .find(|header| header.key == name)
                .and_then(|header| header.value)
                .with_context(|| format!("a message without header {name}"))?;
            Ok(std::str::from_utf8(value)?.parse()?)
        };
        let payload = message.payload().context("a tombstone among the inserts")?;
        let decoded = match decoder.decode(payload) {
            Err(DecodeError::UnknownSchemaId(id)) => {
                let schema = registry.schema_by_id(id).await?;
                decoder.register_writer(id, &schema)?;
                decoder.decode(payload)?
            }
            other => other?,
        };
        let normalized = normalize(&decoded.record)?;
        changes.push(Change {
            user: normalized.user,
            source_ts_us: header("source_ts_us")?,
            source_txid: Some(header("source_txid")?),
        });
    }
    Ok(changes)
}

/// Writes the rows of the first `count` changes into `keyspace` with `concurrency` writers, each
/// change's two writes issued together (as the sink does); returns the time it took.
pub async fn blind_writes(
    session: Arc<Session>,
    keyspace: &str,
    changes: Arc<Vec<Change>>,
    count: usize,
    concurrency: usize,
) -> anyhow::Result<Duration> {
    let prepare = |cql: &str| cql.replace("{{keyspace}}", keyspace);
    let by_id = session
        .prepare(prepare(include_str!("limit_users_by_id.cql")))
        .await?;
    let by_country = session
        .prepare(prepare(include_str!("limit_users_by_country.cql")))
        .await?;
    let next = Arc::new(AtomicUsize::new(0));
    let started = Instant::now();
    let mut writers = tokio::task::JoinSet::new();
    for _ in 0..concurrency {
        let (session, changes, next) = (
            Arc::clone(&session),
            Arc::clone(&changes),
            Arc::clone(&next),
        );
        let (by_id, by_country) = (by_id.clone(), by_country.clone());
        writers.spawn(async move {
            loop {
                let index = next.fetch_add(1, Ordering::Relaxed);
                let Some(change) = changes[..count].get(index) else {
                    return anyhow::Ok(());
                };
                futures::try_join!(
                    session.execute_unpaged(&by_id, user_by_id_row(change)),
                    session.execute_unpaged(&by_country, user_by_country_row(change)),
                )?;
            }
        });
    }
    while let Some(writer) = writers.join_next().await {
        writer??;
    }
    let elapsed = started.elapsed();
    if next.load(Ordering::Relaxed) < count {
        bail!("the blind writers stopped early");
    }
    Ok(elapsed)
}

/// Bound by position: the last marker is `USING TIMESTAMP ?`.
#[derive(SerializeRow)]
#[scylla(flavor = "enforce_order", skip_name_checks)]
struct UserByIdRow<'a> {
    user_id: &'a str,
    country_code: &'a str,
    nat: Option<&'a str>,
    gender: Option<&'a str>,
    title: Option<&'a str>,
    first_name: Option<&'a str>,
    last_name: Option<&'a str>,
    email: Option<&'a str>,
    username: Option<&'a str>,
    date_of_birth: Option<NaiveDate>,
    registered_at: Option<DateTime<Utc>>,
    phone: Option<&'a str>,
    phone_e164: Option<&'a str>,
    cell: Option<&'a str>,
    cell_e164: Option<&'a str>,
    street_number: Option<&'a str>,
    street_name: Option<&'a str>,
    city: Option<&'a str>,
    state: Option<&'a str>,
    country: Option<&'a str>,
    postcode: Option<&'a str>,
    latitude: Option<f64>,
    longitude: Option<f64>,
    timezone_offset_minutes: Option<i32>,
    timezone_description: Option<&'a str>,
    national_id_name: Option<&'a str>,
    national_id_value: Option<&'a str>,
    picture_large: Option<&'a str>,
    picture_medium: Option<&'a str>,
    picture_thumbnail: Option<&'a str>,
    source_ts_us: i64,
    source_txid: Option<i64>,
    source_api_version: Option<&'a str>,
    age: Option<i32>,
    id_source: Option<&'a str>,
    write_ts: i64,
}

#[derive(SerializeRow)]
#[scylla(flavor = "enforce_order", skip_name_checks)]
struct UserByCountryRow<'a> {
    country_code: &'a str,
    registered_at: DateTime<Utc>,
    user_id: &'a str,
    first_name: Option<&'a str>,
    last_name: Option<&'a str>,
    email: Option<&'a str>,
    gender: Option<&'a str>,
    date_of_birth: Option<NaiveDate>,
    city: Option<&'a str>,
    state: Option<&'a str>,
    nat: Option<&'a str>,
    phone_e164: Option<&'a str>,
    write_ts: i64,
}

fn user_by_id_row(change: &Change) -> UserByIdRow<'_> {
    let user = &change.user;
    UserByIdRow {
        user_id: &user.id,
        country_code: &user.country_code,
        nat: user.nat.as_deref(),
        gender: user.gender.as_deref(),
        title: user.title.as_deref(),
        first_name: user.first_name.as_deref(),
        last_name: user.last_name.as_deref(),
        email: user.email.as_deref(),
        username: user.username.as_deref(),
        date_of_birth: user.date_of_birth,
        registered_at: user.registered_at,
        phone: user.phone.as_deref(),
        phone_e164: user.phone_e164.as_deref(),
        cell: user.cell.as_deref(),
        cell_e164: user.cell_e164.as_deref(),
        street_number: user.street_number.as_deref(),
        street_name: user.street_name.as_deref(),
        city: user.city.as_deref(),
        state: user.state.as_deref(),
        country: user.country.as_deref(),
        postcode: user.postcode.as_deref(),
        latitude: user.latitude,
        longitude: user.longitude,
        timezone_offset_minutes: user.timezone_offset_minutes,
        timezone_description: user.timezone_description.as_deref(),
        national_id_name: user.national_id_name.as_deref(),
        national_id_value: user.national_id_value.as_deref(),
        picture_large: user.picture_large.as_deref(),
        picture_medium: user.picture_medium.as_deref(),
        picture_thumbnail: user.picture_thumbnail.as_deref(),
        source_ts_us: change.source_ts_us,
        source_txid: change.source_txid,
        source_api_version: user.source_api_version.as_deref(),
        age: user.age,
        id_source: user.id_source.as_deref(),
        write_ts: change.source_ts_us,
    }
}

fn user_by_country_row(change: &Change) -> UserByCountryRow<'_> {
    let user = &change.user;
    UserByCountryRow {
        country_code: &user.country_code,
        // The sink's stand-in for a user without a registration date (a clustering column
        // cannot be null).
        registered_at: user.registered_at.unwrap_or(DateTime::UNIX_EPOCH),
        user_id: &user.id,
        first_name: user.first_name.as_deref(),
        last_name: user.last_name.as_deref(),
        email: user.email.as_deref(),
        gender: user.gender.as_deref(),
        date_of_birth: user.date_of_birth,
        city: user.city.as_deref(),
        state: user.state.as_deref(),
        nat: user.nat.as_deref(),
        phone_e164: user.phone_e164.as_deref(),
        write_ts: change.source_ts_us,
    }
}
