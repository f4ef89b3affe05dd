//! The whole pipeline on the real local stack — fetcher → PostgreSQL → cdc → Kafka → process →
//! Cassandra — one test per guarantee of DESIGN.md, each on a pipeline of its own
//! ([`TestPipeline`]).

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::PathBuf;
use std::time::Duration;

use anyhow::{ensure, Context};
use chrono::{DateTime, Utc};
use rdkafka::message::{Headers, Message, OwnedMessage};
use serde_json::{json, Value};
use tokio_util::sync::CancellationToken;
use userstream::codec::{encode_wire, Encoder, USER_SCHEMA};
use userstream::fetcher::{FetchOptions, FetchReport, Fetcher};
use userstream::model::UserRecord;
use userstream::normalize::{normalize, NormalizedUser, ValidationError};
use userstream::randomuser::{self, RecordOutcome};
use userstream::schemas::{value_subject, SchemaRegistryClient};

use crate::common;
use crate::harness::{
    check, header, key, produce, producer, sample_user, CassandraUser, Settings, TestPipeline,
};

/// Records in the captured fixtures (fixtures/randomuser/SOURCES.md).
const FIXTURE_RECORDS: usize = 2848;

/// How long the whole fixture set may take from PostgreSQL to Cassandra (2 cores, debug build).
const FULL_RUN_DEADLINE: Duration = Duration::from_secs(300);

/// How long a handful of changes may take.
const DEADLINE: Duration = Duration::from_secs(60);

fn fixtures_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("fixtures/randomuser")
}

/// Every fixture file with its parsed response, by file name.
fn fixture_files() -> anyhow::Result<BTreeMap<String, (Vec<u8>, randomuser::Response)>> {
    let mut files = BTreeMap::new();
    for entry in std::fs::read_dir(fixtures_dir())? {
        let path = entry?.path();
        if path.extension().is_some_and(|ext| ext == "json") {
            let body = std::fs::read(&path)?;
            let response = randomuser::parse_response(&body)
                .with_context(|| format!("parsing {}", path.display()))?;
            let name = path
                .file_name()
                .context("file name")?
                .to_string_lossy()
                .into_owned();
            files.insert(name, (body, response));
        }
    }
    Ok(files)
}

/// What one run over every fixture record produced.
struct FixtureRun {
    report: FetchReport,
    seed: String,
    /// The users normalization accepts, normalized, by id.
    accepted: BTreeMap<String, NormalizedUser>,
    /// The users normalization refuses, with why, by id.
    rejected: BTreeMap<String, ValidationError>,
}

/// Fetches every record the fixture server has with one seed, runs cdc and process, and waits
/// until every user PostgreSQL holds is either in Cassandra or on the dead-letter topic.
async fn run_all_fixtures(pipeline: &mut TestPipeline) -> anyhow::Result<FixtureRun> {
    let seed = common::unique_name("seed");
    let fetcher = Fetcher::new(&FetchOptions {
        base_url: common::randomuser_url(),
        // More than the server has: one page brings every record, the next is empty.
        count: 5000,
        seed: Some(seed.clone()),
        nat: None,
        every: None,
        page_size: 5000,
        request_timeout: Duration::from_secs(60),
        max_attempts: 3,
    })?;
    let started = std::time::Instant::now();
    let report = fetcher
        .fetch(&mut pipeline.pg, &seed, 1, &CancellationToken::new())
        .await?;
    eprintln!("fetched in {:?}: {report:?}", started.elapsed());

    let mut accepted = BTreeMap::new();
    let mut rejected = BTreeMap::new();
    for (id, record) in pipeline.pg_users().await? {
        match normalize(&record) {
            Ok(normalized) => {
                accepted.insert(id, normalized.user);
            }
            Err(error) => {
                rejected.insert(id, error);
            }
        }
    }

    pipeline.start_cdc();
    pipeline.start_processor();
    pipeline
        .eventually(
            "every refused user is on the dead-letter topic",
            FULL_RUN_DEADLINE,
            || async {
                let letters = pipeline.dead_letters().await?;
                Ok((letters.len() >= rejected.len()).then_some(()))
            },
        )
        .await?;
    pipeline
        .wait_until_cassandra_holds(&accepted, FULL_RUN_DEADLINE)
        .await?;
    eprintln!(
        "{} users in Cassandra, {} dead-lettered, after {:?}",
        accepted.len(),
        rejected.len(),
        started.elapsed()
    );
    Ok(FixtureRun {
        report,
        seed,
        accepted,
        rejected,
    })
}

/// A `users_by_id` row found by a column value (legacy records have derived ids).
fn find_by<'a>(
    users: &'a BTreeMap<String, CassandraUser>,
    what: &str,
    pick: impl Fn(&NormalizedUser) -> bool,
) -> anyhow::Result<&'a NormalizedUser> {
    let found: Vec<_> = users
        .values()
        .map(|row| &row.user)
        .filter(|u| pick(u))
        .collect();
    match found.as_slice() {
        [user] => Ok(user),
        other => anyhow::bail!("{} users_by_id rows for {what}", other.len()),
    }
}

fn utc(text: &str) -> anyhow::Result<DateTime<Utc>> {
    Ok(text.parse()?)
}

/// Fails unless `user` has every value of `expected` (a JSON object of `NormalizedUser` fields).
fn expect_fields(what: &str, user: &NormalizedUser, expected: Value) -> anyhow::Result<()> {
    let actual = serde_json::to_value(user)?;
    let Value::Object(expected) = expected else {
        anyhow::bail!("expected values of {what} are not an object");
    };
    let wrong: Vec<String> = expected
        .iter()
        .filter(|(field, value)| actual.get(field.as_str()) != Some(*value))
        .map(|(field, value)| {
            format!(
                "{field}: got {}, expected {value}",
                actual.get(field.as_str()).unwrap_or(&Value::Null)
            )
        })
        .collect();
    ensure!(wrong.is_empty(), "{what}: {}", wrong.join("; "));
    Ok(())
}

/// Values worked out by hand from the fixture files and docs/normalization.md, independent of
/// the normalizer's code: one record per API era, several numbering plans and scripts.
fn check_hand_written_expectations(users: &BTreeMap<String, CassandraUser>) -> anyhow::Result<()> {
    // API 1.4, NL: string postcode, "-11:00", trunk prefix dropped from the phones.
    let jawad = &users
        .get("680e3b35-d5dc-487f-a492-d0c36b6697a9")
        .context("the v1.4 NL record (Jawad Pruijn) is in users_by_id")?
        .user;
    expect_fields(
        "v1.4 NL record",
        jawad,
        json!({
            "country_code": "NL",
            "nat": "NL",
            "gender": "male",
            "title": "Mr",
            "first_name": "Jawad",
            "last_name": "Pruijn",
            "email": "jawad.pruijn@example.com",
            "username": "purpledog875",
            "date_of_birth": "1944-11-28",
            "registered_at": "2018-02-08T14:55:13.972Z",
            "phone": "(047) 4464669",
            "phone_e164": "+31474464669",
            "cell": "(06) 78808033",
            "cell_e164": "+31678808033",
            "street_number": "8791",
            "street_name": "Burg Mobersstraat",
            "city": "Rijperkerk",
            "state": "Friesland",
            "country": "Netherlands",
            "postcode": "0958 PO",
            "latitude": 31.444,
            "longitude": -88.7909,
            "timezone_offset_minutes": -660,
            "timezone_description": "Midway Island, Samoa",
            "national_id_name": "BSN",
            "national_id_value": "72991275",
            "picture_large": "https://randomuser.me/api/portraits/men/18.jpg",
            "picture_medium": "https://randomuser.me/api/portraits/med/men/18.jpg",
            "picture_thumbnail": "https://randomuser.me/api/portraits/thumb/men/18.jpg",
        }),
    )?;

    // Legacy 0.8 (`user` wrapper, Unix seconds, no nat: US from the SSN, derived id): lower
    // case names title-cased, places kept as sent, an exchange starting with 0 has no E.164.
    let terrance = find_by(users, "username purplefrog560", |u| {
        u.username.as_deref() == Some("purplefrog560")
    })?;
    expect_fields(
        "legacy 0.8 record",
        terrance,
        json!({
            "country_code": "US",
            "nat": null,
            "title": "Mr",
            "first_name": "Terrance",
            "last_name": "Wheeler",
            "city": "pittsburgh",
            "state": "california",
            "street_number": "3692",
            "street_name": "timber wolf trail",
            "postcode": "25559",
            "registered_at": "2004-01-07T03:23:13Z",
            "date_of_birth": "2011-02-23",
            "phone_e164": null,
            "cell_e164": "+19897496244",
            "national_id_name": "SSN",
            "national_id_value": "495-28-8321",
        }),
    )?;

    // API 1.1, TR: "YYYY-MM-DD HH:MM:SS" dates; the dotless ı survives title case.
    let fatma = find_by(users, "username lazyrabbit560", |u| {
        u.username.as_deref() == Some("lazyrabbit560")
    })?;
    expect_fields(
        "v1.1 TR record",
        fatma,
        json!({
            "country_code": "TR",
            "title": "Miss",
            "first_name": "Fatma",
            "last_name": "Yıldırım",
            "email": "fatma.yıldırım@example.com",
            "registered_at": "2005-10-24T09:46:50Z",
            "date_of_birth": "1969-05-11",
            "phone_e164": "+901686389764",
            "postcode": "80510",
        }),
    )?;

    // API 1.3, BR: a blank id name becomes null; two-digit area codes.
    let humberto = &users
        .get("78f5ec4e-3b23-41d1-a02a-b7984eceac1c")
        .context("the v1.3 BR record (Humberto Martins) is in users_by_id")?
        .user;
    expect_fields(
        "v1.3 BR record",
        humberto,
        json!({
            "country_code": "BR",
            "phone_e164": "+552879681772",
            "cell_e164": "+553701851210",
            "timezone_offset_minutes": 660,
            "street_number": "3343",
            "street_name": "Rua Três",
            "national_id_name": null,
            "national_id_value": null,
            "registered_at": "2012-12-31T20:57:06.611Z",
        }),
    )
}

/// Test 1. Every fixture record ends up in Cassandra with its normalized values, or is
/// accounted for with its reason: on the dead-letter topic (normalization refused it) or in
/// `fetch_rejections` (the fetcher refused it).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_fixture_record_is_written_normalized_or_accounted_for() -> anyhow::Result<()> {
    // The process-wide recorder behind `/metrics`; installed before the stages count anything.
    let metrics = userstream::telemetry::prometheus();
    let mut pipeline = TestPipeline::new("it_e2e").await?;
    let run = run_all_fixtures(&mut pipeline).await?;

    // Fetched = stored + refused by the fetcher, and each refusal is kept with its reason.
    let files = fixture_files()?;
    let in_files: usize = files.values().map(|(_, r)| r.records.len()).sum();
    check(
        in_files == FIXTURE_RECORDS,
        format!("the fixture files hold {in_files} records, expected {FIXTURE_RECORDS}"),
    )?;
    let fetched = run.report.accepted + run.report.rejected;
    check(
        fetched == FIXTURE_RECORDS as u64,
        format!("fetched {fetched} records: {:?}", run.report),
    )?;
    let rejections = pipeline
        .pg
        .query(
            "SELECT field, reason, detail FROM fetch_rejections WHERE seed = $1",
            &[&run.seed],
        )
        .await?;
    check(
        rejections.len() as u64 == run.report.rejected,
        format!(
            "the fetcher rejected {} records but fetch_rejections holds {}",
            run.report.rejected,
            rejections.len()
        ),
    )?;
    for row in &rejections {
        let (field, reason): (String, String) = (row.get(0), row.get(1));
        check(
            !field.is_empty() && !reason.is_empty(),
            format!("fetch rejection without a reason: {field:?} {reason:?}"),
        )?;
    }
    let stored = run.accepted.len() + run.rejected.len();
    check(
        stored as u64 == run.report.accepted && stored as u64 == run.report.inserted,
        format!(
            "PostgreSQL holds {stored} users, the fetcher accepted {} and inserted {}",
            run.report.accepted, run.report.inserted
        ),
    )?;

    // Stored = in Cassandra + dead-lettered as invalid, each with its reason.
    let letters = pipeline.dead_letters().await?;
    let mut dead: BTreeMap<String, &OwnedMessage> = BTreeMap::new();
    for letter in &letters {
        let id = key(letter).context("dead letter without key")?;
        check(
            dead.insert(id.clone(), letter).is_none(),
            format!("{id} dead-lettered twice"),
        )?;
    }
    check(
        dead.keys().eq(run.rejected.keys()),
        format!(
            "dead letters {:?} are not the users normalization refuses {:?}",
            dead.keys().collect::<Vec<_>>(),
            run.rejected.keys().collect::<Vec<_>>()
        ),
    )?;
    for (id, error) in &run.rejected {
        let letter = dead[id];
        check(
            header(letter, "error_kind").as_deref() == Some("invalid_value"),
            format!("{id}: error_kind {:?}", header(letter, "error_kind")),
        )?;
        let message = header(letter, "error_message").unwrap_or_default();
        check(
            message.contains(&error.to_string()),
            format!("{id}: error_message {message:?} does not say {error}"),
        )?;
        check(
            header(letter, "original_topic").as_deref() == Some(pipeline.topic.as_str()),
            format!(
                "{id}: original_topic {:?}",
                header(letter, "original_topic")
            ),
        )?;
    }

    // Cassandra holds exactly the accepted users (compared field by field for every one of them
    // by `run_all_fixtures`); here the record sample and the hand-written values.
    let users = pipeline.all_users_by_id().await?;
    check(
        users.len() == run.accepted.len(),
        format!(
            "{} rows in users_by_id, {} accepted",
            users.len(),
            run.accepted.len()
        ),
    )?;
    check(
        pipeline.count("users_by_country").await? == run.accepted.len() as i64,
        "users_by_country has one row per accepted user",
    )?;
    check(
        users.values().all(|row| row.source_ts_us.is_some()),
        "every users_by_id row carries its source time",
    )?;
    let nats: BTreeSet<&str> = users
        .values()
        .filter_map(|row| row.user.nat.as_deref())
        .collect();
    check(
        nats.len() >= 21,
        format!("only {} nationalities in Cassandra: {nats:?}", nats.len()),
    )?;
    // Every file is accounted for record by record, and every API era (the file name's first
    // part: legacy, v0.3.2, v0.8, v1.0 … v1.4, noinfo) has records in Cassandra.
    let mut written_per_era: BTreeMap<&str, usize> = BTreeMap::new();
    for (file, (_, response)) in &files {
        let mut written = 0;
        for outcome in &response.records {
            if let RecordOutcome::Accepted(user) = outcome {
                let id = &user.record.id;
                match (users.get(id), run.accepted.get(id)) {
                    (Some(row), Some(expected)) => {
                        check(
                            row.user == *expected,
                            format!("{file}: {id} differs from normalize()"),
                        )?;
                        written += 1;
                    }
                    _ => check(
                        dead.contains_key(id),
                        format!("{file}: {id} is neither in Cassandra nor dead-lettered"),
                    )?,
                }
            }
        }
        let era = file.split('-').next().unwrap_or_default();
        *written_per_era.entry(era).or_default() += written;
    }
    check(
        written_per_era.len() >= 9 && written_per_era.values().all(|&n| n > 0),
        format!("records written per API era: {written_per_era:?}"),
    )?;
    check_hand_written_expectations(&users)?;

    // A record without any country (API `inc=name,email,picture`) is refused with its reason.
    let jenny_id = run
        .rejected
        .keys()
        .find(|id| {
            let Some(letter) = dead.get(*id) else {
                return false;
            };
            letter
                .payload()
                .is_some_and(|p| p.windows(24).any(|w| w == b"jenny.dombrowski@example"))
        })
        .context("Jenny Dombrowski (no nat, no location) is dead-lettered")?;
    let message = header(dead[jenny_id], "error_message").unwrap_or_default();
    check(
        message.contains("country_code") && message.contains("no ISO nationality"),
        format!("reason for Jenny Dombrowski: {message:?}"),
    )?;

    // The processor's /metrics shows what normalization accepted, repaired and refused, by
    // field and reason (other tests share the recorder, so only presence is asserted).
    let exposition = metrics.render();
    for series in [
        "userstream_normalize_accepted_total",
        r#"userstream_normalize_rejected_total{field="country_code",reason="no_country"}"#,
        "userstream_normalize_repaired_total{field=",
        r#"userstream_processor_dead_lettered_total{reason="invalid_value"}"#,
        "userstream_processor_records_written_total{",
    ] {
        check(
            exposition.contains(series),
            format!("/metrics has no {series}"),
        )?;
    }

    pipeline.stop_processor().await?;
    pipeline.stop_cdc().await?;
    Ok(())
}

/// Test 2. An update in PostgreSQL (by SQL, and by the fetcher's upsert) shows in Cassandra,
/// moving the `users_by_country` row when its key changes; a delete removes the user from both
/// tables.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn updates_and_deletes_in_postgres_reach_both_tables() -> anyhow::Result<()> {
    let mut pipeline = TestPipeline::new("it_upd").await?;
    pipeline.start_cdc();
    pipeline.start_processor();
    let id = uuid::Uuid::new_v4().to_string();
    let bystander = uuid::Uuid::new_v4().to_string();
    let (user, raw) = sample_user(&id, "anna");
    pipeline
        .upsert(&[
            (user.clone(), raw.clone()),
            sample_user(&bystander, "bruno"),
        ])
        .await?;
    pipeline
        .wait_until_cassandra_matches_postgres(DEADLINE)
        .await?;
    let row = pipeline.user_by_id(&id).await?.context("inserted user")?;
    check(
        row.user.first_name.as_deref() == Some("Anna"),
        format!("first name {:?}", row.user.first_name),
    )?;

    // By SQL: a new name, city and registration time (a new users_by_country key).
    let updated = pipeline
        .pg
        .execute(
            "UPDATE users SET first_name = 'berta', city = 'Hamburg', \
             registered_at = '2019-01-02T03:04:05.678Z' WHERE id = $1",
            &[&id],
        )
        .await?;
    check(updated == 1, "the SQL update hit the user")?;
    pipeline
        .wait_until_cassandra_matches_postgres(DEADLINE)
        .await?;
    let row = pipeline.user_by_id(&id).await?.context("updated user")?;
    check(
        row.user.first_name.as_deref() == Some("Berta")
            && row.user.city.as_deref() == Some("Hamburg")
            && row.user.registered_at == Some(utc("2019-01-02T03:04:05.678Z")?),
        format!("after the SQL update: {row:#?}"),
    )?;
    let rows = pipeline.country_rows_of(&id).await?;
    check(
        rows.len() == 1 && rows[0].registered_at == utc("2019-01-02T03:04:05.678Z")?,
        format!("users_by_country after moving the registration: {rows:#?}"),
    )?;

    // By the fetcher's upsert: another nationality, so the row moves to another partition.
    let mut french = user.clone();
    french.first_name = Some("Chloé".into());
    french.nat = Some("FR".into());
    french.country = Some("France".into());
    french.phone = Some("01-23-45-67-89".into());
    pipeline.upsert(&[(french, raw.clone())]).await?;
    pipeline
        .wait_until_cassandra_matches_postgres(DEADLINE)
        .await?;
    let row = pipeline.user_by_id(&id).await?.context("re-fetched user")?;
    check(
        row.user.country_code == "FR"
            && row.user.first_name.as_deref() == Some("Chloé")
            && row.user.phone_e164.as_deref() == Some("+33123456789"),
        format!("after the upsert: {row:#?}"),
    )?;
    let rows = pipeline.country_rows_of(&id).await?;
    check(
        rows.len() == 1 && rows[0].country_code == "FR",
        format!("users_by_country after the move to FR: {rows:#?}"),
    )?;

    check(
        userstream::store::delete_user(&pipeline.pg, &id).await?,
        "the user was deleted in PostgreSQL",
    )?;
    pipeline
        .wait_until_cassandra_matches_postgres(DEADLINE)
        .await?;
    check(
        pipeline.user_by_id(&id).await?.is_none()
            && pipeline.country_rows_of(&id).await?.is_empty(),
        "the deleted user is gone from both tables",
    )?;
    check(
        pipeline.user_by_id(&bystander).await?.is_some(),
        "the other user is untouched",
    )?;

    // Each change after the create carried where the version it replaced sat, which is what
    // retired the old users_by_country rows without a read.
    let registered_2015_us = utc("2015-06-07T08:09:10.123Z")?
        .timestamp_micros()
        .to_string();
    let registered_2019_us = utc("2019-01-02T03:04:05.678Z")?
        .timestamp_micros()
        .to_string();
    let before_images: Vec<[Option<String>; 4]> = pipeline
        .topic_messages()
        .await?
        .iter()
        .filter(|message| key(message).as_deref() == Some(id.as_str()))
        .map(|message| {
            [
                "op",
                "before_nat",
                "before_country",
                "before_registered_at_us",
            ]
            .map(|name| header(message, name))
        })
        .collect();
    let some = |text: &str| Some(text.to_owned());
    check(
        before_images
            == [
                [some("c"), None, None, None],
                [
                    some("u"),
                    some("DE"),
                    some("Germany"),
                    some(&registered_2015_us),
                ],
                [
                    some("u"),
                    some("DE"),
                    some("Germany"),
                    some(&registered_2019_us),
                ],
                [
                    some("d"),
                    some("FR"),
                    some("France"),
                    // The fetcher's upsert wrote the record's own registration back.
                    some(&registered_2015_us),
                ],
            ],
        format!("op and before headers of the user's messages: {before_images:#?}"),
    )?;

    pipeline.stop_processor().await?;
    pipeline.stop_cdc().await?;
    Ok(())
}

/// Encodes `user` as the pipeline does.
fn encode(encoder: &Encoder, schema_id: u32, user: &UserRecord) -> anyhow::Result<Vec<u8>> {
    Ok(encoder.encode_message(schema_id, user)?)
}

/// Registers the value schema for the test's topic, as `cdc` would.
async fn register_schema(pipeline: &TestPipeline) -> anyhow::Result<u32> {
    let registry = SchemaRegistryClient::new(&pipeline.registry_args())?;
    Ok(registry
        .register(&value_subject(&pipeline.topic), USER_SCHEMA)
        .await?)
}

/// Waits until the processor's group has committed past `offsets` (partition → last offset
/// produced there): every one of those messages has been handled.
async fn wait_until_handled(
    pipeline: &TestPipeline,
    offsets: &BTreeMap<i32, i64>,
) -> anyhow::Result<()> {
    pipeline
        .eventually(
            "the processor committed past the test's messages",
            DEADLINE,
            || async {
                for (&partition, &last) in offsets {
                    match pipeline.committed_offset(partition).await? {
                        Some(committed) if committed > last => {}
                        _ => return Ok(None),
                    }
                }
                Ok(Some(()))
            },
        )
        .await
}

/// Test 3. An older version arriving after a newer one loses (by source time, not arrival),
/// in both tables; a replayed delete older than a later re-insert deletes nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn older_versions_and_replayed_deletes_never_overwrite_newer_ones() -> anyhow::Result<()> {
    let mut pipeline = TestPipeline::new("it_ooo").await?;
    let schema_id = register_schema(&pipeline).await?;
    let encoder = Encoder::new()?;
    let producer = producer()?;
    pipeline.start_processor();
    let base = Utc::now().timestamp_micros();
    let mut last_offsets = BTreeMap::new();
    // Each message as `cdc` produces it, with the before headers of the version it replaced.
    let send = |id: String,
                user: Option<UserRecord>,
                replaced: Option<&UserRecord>,
                op: &'static str,
                ts: i64,
                txid: i64| {
        let payload = user.map(|u| encode(&encoder, schema_id, &u)).transpose();
        let producer = &producer;
        let topic = pipeline.topic.clone();
        let before = replaced.map(before_headers).unwrap_or_default();
        async move {
            let (ts, txid) = (ts.to_string(), txid.to_string());
            let mut headers = vec![("op", op), ("source_ts_us", &ts), ("source_txid", &txid)];
            headers.extend(before.iter().map(|(key, value)| (*key, value.as_str())));
            produce(producer, &topic, None, &id, payload?.as_deref(), &headers).await
        }
    };

    // X: the newer version (DE) first, then an older one (FR, another registration).
    let x = uuid::Uuid::new_v4().to_string();
    let (newer, _) = sample_user(&x, "Neu");
    let mut older = newer.clone();
    older.first_name = Some("Alt".into());
    older.nat = Some("FR".into());
    older.country = Some("France".into());
    older.registered_at = Some(utc("2011-01-01T00:00:00Z")?);
    let (p, o) = send(
        x.clone(),
        Some(newer.clone()),
        Some(&older),
        "u",
        base + 2_000,
        20,
    )
    .await?;
    last_offsets.insert(p, o);
    let (p, o) = send(x.clone(), Some(older), None, "c", base + 1_000, 10).await?;
    last_offsets.insert(p, o);

    // Y: created, deleted, created again; then the delete is replayed.
    let y = uuid::Uuid::new_v4().to_string();
    let (first, _) = sample_user(&y, "Erst");
    let (again, _) = sample_user(&y, "Wieder");
    send(y.clone(), Some(first.clone()), None, "c", base + 1_000, 11).await?;
    send(y.clone(), None, Some(&first), "d", base + 2_000, 21).await?;
    send(y.clone(), Some(again.clone()), None, "c", base + 3_000, 31).await?;
    let (p, o) = send(y.clone(), None, Some(&first), "d", base + 2_000, 21).await?;
    last_offsets.insert(p, o.max(last_offsets.get(&p).copied().unwrap_or(o)));

    wait_until_handled(&pipeline, &last_offsets).await?;
    let expected: BTreeMap<String, NormalizedUser> = [(x.clone(), newer), (y.clone(), again)]
        .into_iter()
        .map(|(id, user)| Ok((id, normalize(&user)?.user)))
        .collect::<anyhow::Result<_>>()?;
    pipeline
        .wait_until_cassandra_holds(&expected, DEADLINE)
        .await
        .context("the newest version of each user is what Cassandra holds")?;
    let row = pipeline.user_by_id(&x).await?.context("X")?;
    check(
        row.user.first_name.as_deref() == Some("Neu") && row.source_ts_us == Some(base + 2_000),
        format!("X after the late older version: {row:#?}"),
    )?;
    let row = pipeline
        .user_by_id(&y)
        .await?
        .context("Y survives the replayed delete")?;
    check(
        row.user.first_name.as_deref() == Some("Wieder") && row.source_ts_us == Some(base + 3_000),
        format!("Y after the replayed delete: {row:#?}"),
    )?;
    pipeline.stop_processor().await?;
    Ok(())
}

/// The before headers `cdc` gives a change that replaced `record`.
fn before_headers(record: &UserRecord) -> Vec<(&'static str, String)> {
    [
        ("before_nat", record.nat.clone()),
        ("before_country", record.country.clone()),
        ("before_national_id_name", record.national_id_name.clone()),
        (
            "before_registered_at_us",
            record
                .registered_at
                .map(|registered_at| registered_at.timestamp_micros().to_string()),
        ),
    ]
    .into_iter()
    .filter_map(|(key, value)| Some((key, value?)))
    .collect()
}

/// The start time of the newest change-log poll `cdc` has run against the test's database.
async fn last_poll_start(pipeline: &TestPipeline) -> anyhow::Result<Option<DateTime<Utc>>> {
    let row = pipeline
        .pg
        .query_one(
            "SELECT max(query_start) FROM pg_stat_activity \
             WHERE datname = current_database() AND pid <> pg_backend_pid() \
               AND query LIKE '%FROM user_changes%' AND query LIKE '%ORDER BY c.xid, c.seq%'",
            &[],
        )
        .await?;
    Ok(row.try_get(0)?)
}

/// Test 4. A transaction that began first but commits last is neither skipped nor overtaken:
/// while it is open, `cdc` holds back the later transaction's change; once it commits, both
/// are produced in (xid, seq) order, once each.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_late_committing_transaction_is_neither_lost_nor_overtaken() -> anyhow::Result<()> {
    // One partition, so the order on the topic is the order `cdc` produced in.
    let mut pipeline = TestPipeline::with_settings(
        "it_late",
        Settings {
            partitions: 1,
            ..Settings::default()
        },
    )
    .await?;
    pipeline.start_cdc();
    pipeline.start_processor();
    let (a, b, c) = (
        format!("a-{}", uuid::Uuid::new_v4()),
        format!("b-{}", uuid::Uuid::new_v4()),
        format!("c-{}", uuid::Uuid::new_v4()),
    );

    let mut late = userstream::store::connect(&userstream::config::Secret::new(
        pipeline.database.url.clone(),
    ))
    .await?;
    let transaction_a = late.transaction().await?;
    transaction_a
        .execute(
            "INSERT INTO users (id, first_name, nat, country, raw) \
             VALUES ($1, 'Anna', 'DE', 'Germany', '{}'::jsonb)",
            &[&a],
        )
        .await?;
    let (user_b, raw) = sample_user(&b, "Bea");
    pipeline.upsert(&[(user_b, raw.clone())]).await?;
    let b_committed: DateTime<Utc> = pipeline
        .pg
        .query_one("SELECT clock_timestamp()", &[])
        .await?
        .get(0);

    // Two polls that started after B committed: the first one read B's change and had to leave
    // it; the second one starts only after the first round's produce was acknowledged.
    let first_poll = pipeline
        .eventually("cdc polls after B committed", DEADLINE, || async {
            Ok(last_poll_start(&pipeline)
                .await?
                .filter(|t| *t > b_committed))
        })
        .await?;
    pipeline
        .eventually("cdc polls again", DEADLINE, || async {
            Ok(last_poll_start(&pipeline)
                .await?
                .filter(|t| *t > first_poll))
        })
        .await?;
    check(
        pipeline.topic_len().await? == 0,
        "nothing is produced while the older transaction A is open (B must wait for it)",
    )?;

    transaction_a.commit().await?;
    pipeline
        .eventually("A and B reach Kafka", DEADLINE, || async {
            Ok((pipeline.topic_len().await? >= 2).then_some(()))
        })
        .await?;
    // C is a barrier: once it is on the topic, everything produced before it is too.
    pipeline.upsert(&[(sample_user(&c, "Cem").0, raw)]).await?;
    pipeline
        .eventually("C reaches Kafka", DEADLINE, || async {
            Ok((pipeline.topic_len().await? >= 3).then_some(()))
        })
        .await?;
    let messages = pipeline.topic_messages().await?;
    let keys: Vec<String> = messages.iter().filter_map(key).collect();
    check(
        keys == [a.clone(), b.clone(), c.clone()],
        format!("topic holds {keys:?}, expected exactly A, B, C in this order"),
    )?;
    let txids: Vec<u64> = messages
        .iter()
        .map(|m| {
            header(m, "source_txid")
                .context("source_txid")?
                .parse()
                .context("txid")
        })
        .collect::<anyhow::Result<_>>()?;
    check(
        txids[0] < txids[1] && txids[1] < txids[2],
        format!("source_txid of A, B, C: {txids:?} (A began first, so its xid is lowest)"),
    )?;
    pipeline
        .wait_until_cassandra_matches_postgres(DEADLINE)
        .await?;

    pipeline.stop_processor().await?;
    pipeline.stop_cdc().await?;
    Ok(())
}

/// `count` sample users with ids `<prefix>-<n>`, in pages of `page`.
async fn insert_users(
    pipeline: &mut TestPipeline,
    prefix: &str,
    count: usize,
    page: usize,
) -> anyhow::Result<Vec<String>> {
    let ids: Vec<String> = (0..count).map(|n| format!("{prefix}-{n:05}")).collect();
    for chunk in ids.chunks(page) {
        let users: Vec<_> = chunk
            .iter()
            .map(|id| sample_user(id, &format!("name {id}")))
            .collect();
        pipeline.upsert(&users).await?;
    }
    Ok(ids)
}

/// Updates every `step`-th of `ids` (a new first name) in one transaction.
async fn update_users(pipeline: &TestPipeline, ids: &[String], step: usize) -> anyhow::Result<u64> {
    let chosen: Vec<&String> = ids.iter().step_by(step).collect();
    Ok(pipeline
        .pg
        .execute(
            "UPDATE users SET first_name = 'renamed ' || id WHERE id = ANY($1)",
            &[&chosen],
        )
        .await?)
}

/// Deletes every `step`-th of `ids`, starting at the second.
async fn delete_users(pipeline: &TestPipeline, ids: &[String], step: usize) -> anyhow::Result<u64> {
    let chosen: Vec<&String> = ids.iter().skip(1).step_by(step).collect();
    Ok(pipeline
        .pg
        .execute("DELETE FROM users WHERE id = ANY($1)", &[&chosen])
        .await?)
}

/// Test 5a. `process` stopped while many messages remain, then started again: Cassandra ends up
/// equal to PostgreSQL, nothing missing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_processor_restart_mid_stream_loses_nothing() -> anyhow::Result<()> {
    let mut pipeline = TestPipeline::with_settings(
        "it_rs_proc",
        Settings {
            // Few messages in flight, so the stop leaves most of the stream unconsumed.
            write_lanes: 2,
            lane_capacity: 2,
            ..Settings::default()
        },
    )
    .await?;
    let ids = insert_users(&mut pipeline, "p", 1500, 500).await?;
    let updated = update_users(&pipeline, &ids, 10).await?;
    let deleted = delete_users(&pipeline, &ids, 25).await?;
    let changes = ids.len() + updated as usize + deleted as usize;
    pipeline.start_cdc();
    pipeline
        .eventually("every change is on the topic", DEADLINE, || async {
            Ok((pipeline.topic_len().await? >= changes).then_some(()))
        })
        .await?;

    pipeline.start_processor();
    pipeline
        .eventually("the processor has written some users", DEADLINE, || async {
            Ok((pipeline.count("users_by_id").await? >= 100).then_some(()))
        })
        .await?;
    pipeline.stop_processor().await?;
    let written = pipeline.count("users_by_id").await?;
    let remaining = ids.len() as i64 - deleted as i64;
    check(
        written < remaining,
        format!("the stop came mid-stream ({written} of {remaining} users written)"),
    )?;

    pipeline.start_processor();
    let users = pipeline
        .wait_until_cassandra_matches_postgres(FULL_RUN_DEADLINE)
        .await?;
    check(
        users as i64 == remaining,
        format!("{users} users, expected {remaining}"),
    )?;
    pipeline.stop_processor().await?;
    pipeline.stop_cdc().await?;
    Ok(())
}

/// Test 5c. Three processors in one consumer group share the topic's partitions. Members leave
/// and join between waves of changes, so the group rebalances for real while the waves are
/// still being written. Nothing is lost: Cassandra ends up equal to PostgreSQL.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn processors_joining_and_leaving_one_group_lose_nothing() -> anyhow::Result<()> {
    let mut pipeline = TestPipeline::with_settings(
        "it_group",
        Settings {
            write_lanes: 2,
            lane_capacity: 2,
            ..Settings::default()
        },
    )
    .await?;
    pipeline.start_cdc();
    pipeline.start_processor();
    pipeline.start_another_processor();
    pipeline.start_another_processor();
    pipeline.wait_for_group_members(3).await?;

    let first = insert_users(&mut pipeline, "g1", 600, 200).await?;
    pipeline.stop_another_processor().await?;
    pipeline.wait_for_group_members(2).await?;
    update_users(&pipeline, &first, 3).await?;
    pipeline.start_another_processor();
    pipeline.wait_for_group_members(3).await?;
    delete_users(&pipeline, &first, 10).await?;
    let second = insert_users(&mut pipeline, "g2", 600, 200).await?;
    pipeline.stop_another_processor().await?;
    pipeline.wait_for_group_members(2).await?;
    update_users(&pipeline, &second, 4).await?;

    let remaining = pipeline.pg_users().await?.len();
    let users = pipeline
        .wait_until_cassandra_matches_postgres(FULL_RUN_DEADLINE)
        .await?;
    check(
        users == remaining,
        format!("{users} users, expected {remaining}"),
    )?;
    pipeline.stop_another_processor().await?;
    pipeline.stop_processor().await?;
    pipeline.stop_cdc().await?;
    Ok(())
}

/// Test 5b. `cdc` stopped mid-stream (and more changes made while it is down), then started
/// again: every change reaches Kafka and Cassandra ends up equal to PostgreSQL.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cdc_restart_mid_stream_loses_nothing() -> anyhow::Result<()> {
    let mut pipeline = TestPipeline::with_settings(
        "it_rs_cdc",
        Settings {
            // Many small rounds, so the stop lands between two of them.
            cdc_batch_size: 10,
            ..Settings::default()
        },
    )
    .await?;
    let ids = insert_users(&mut pipeline, "c", 1500, 100).await?;
    pipeline.start_processor();
    pipeline.start_cdc();
    // The stored cursor is the cheap sign of progress: it moves after each acknowledged round.
    pipeline
        .eventually("cdc has committed a round", DEADLINE, || async {
            let row = pipeline
                .pg
                .query_opt(
                    "SELECT last_seq FROM cdc_cursors WHERE consumer = $1",
                    &[&pipeline.cdc_name],
                )
                .await?;
            let last_seq: Option<i64> = row.map(|row| row.try_get(0)).transpose()?.flatten();
            Ok(last_seq.map(|_| ()))
        })
        .await?;
    pipeline.stop_cdc().await?;
    let produced = pipeline.topic_len().await?;
    check(
        produced < ids.len(),
        format!(
            "the stop came mid-stream ({produced} of {} changes produced)",
            ids.len()
        ),
    )?;

    // Changes made while cdc is down.
    update_users(&pipeline, &ids, 7).await?;
    delete_users(&pipeline, &ids, 11).await?;
    insert_users(&mut pipeline, "c-late", 100, 100).await?;

    pipeline.start_cdc();
    pipeline
        .wait_until_cassandra_matches_postgres(FULL_RUN_DEADLINE)
        .await?;
    // Every logged change is on the topic (at least once).
    let logged: BTreeSet<(String, String, String)> = pipeline
        .pg
        .query("SELECT user_id, op, xid::text FROM user_changes", &[])
        .await?
        .iter()
        .map(|row| {
            (
                row.get(0),
                row.get::<_, String>(1).trim().to_owned(),
                row.get(2),
            )
        })
        .collect();
    let on_topic: BTreeSet<(String, String, String)> = pipeline
        .topic_messages()
        .await?
        .iter()
        .map(|m| {
            (
                key(m).unwrap_or_default(),
                header(m, "op").unwrap_or_default(),
                header(m, "source_txid").unwrap_or_default(),
            )
        })
        .collect();
    let missing: Vec<_> = logged.difference(&on_topic).take(5).collect();
    check(
        missing.is_empty(),
        format!("changes never produced, e.g. {missing:?}"),
    )?;
    pipeline.stop_cdc().await?;
    pipeline.stop_processor().await?;
    Ok(())
}

/// Test 6. Garbage, a wrong magic byte, an unknown schema id and a truncated Avro body each go
/// to the dead-letter topic with their reason and origin; the valid messages around them are
/// written.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn poison_messages_are_dead_lettered_and_the_rest_is_written() -> anyhow::Result<()> {
    let mut pipeline = TestPipeline::new("it_poison").await?;
    let schema_id = register_schema(&pipeline).await?;
    let encoder = Encoder::new()?;
    let producer = producer()?;
    pipeline.start_processor();

    let before = uuid::Uuid::new_v4().to_string();
    let after = uuid::Uuid::new_v4().to_string();
    let (before_user, _) = sample_user(&before, "Vor");
    let (after_user, _) = sample_user(&after, "Nach");
    let valid_body = encoder.encode(&before_user)?;
    let truncated = encode(&encoder, schema_id, &before_user)?;
    let truncated = truncated[..truncated.len() / 2].to_vec();
    let mut wrong_magic = encode_wire(schema_id, &valid_body);
    wrong_magic[0] = 1;
    // Far above any id a registry hands out in a test run.
    let unknown_id = encode_wire(1_999_999_999, &valid_body);

    // (key, payload, expected error_kind, text the error_message must contain)
    let poison: Vec<(String, Vec<u8>, &str, &str)> = vec![
        (
            format!("garbage-{before}"),
            b"this is not Avro, just text".to_vec(),
            "wire_format",
            "magic byte 0x74",
        ),
        (
            format!("magic-{before}"),
            wrong_magic,
            "wire_format",
            "magic byte 0x01",
        ),
        (
            format!("unknown-{before}"),
            unknown_id,
            "unknown_schema",
            "1999999999",
        ),
        (
            format!("truncated-{before}"),
            truncated,
            "avro_body",
            "truncated",
        ),
    ];
    let ts = Utc::now().timestamp_micros().to_string();
    let headers = [
        ("op", "c"),
        ("source_ts_us", ts.as_str()),
        ("source_txid", "42"),
    ];
    // All on one partition, in this order: valid, the four poison messages, valid.
    let partition = Some(0);
    let payload = encode(&encoder, schema_id, &before_user)?;
    produce(
        &producer,
        &pipeline.topic,
        partition,
        &before,
        Some(&payload),
        &headers,
    )
    .await?;
    let mut origins = BTreeMap::new();
    for (key, payload, _, _) in &poison {
        let at = produce(
            &producer,
            &pipeline.topic,
            partition,
            key,
            Some(payload),
            &headers,
        )
        .await?;
        origins.insert(key.clone(), at);
    }
    let payload = encode(&encoder, schema_id, &after_user)?;
    produce(
        &producer,
        &pipeline.topic,
        partition,
        &after,
        Some(&payload),
        &headers,
    )
    .await?;

    let expected: BTreeMap<String, NormalizedUser> =
        [(before.clone(), before_user), (after.clone(), after_user)]
            .into_iter()
            .map(|(id, user)| Ok((id, normalize(&user)?.user)))
            .collect::<anyhow::Result<_>>()?;
    pipeline
        .wait_until_cassandra_holds(&expected, DEADLINE)
        .await
        .context("the valid messages around the poison are written")?;
    let letters = pipeline
        .eventually(
            "all four poison messages are dead-lettered",
            DEADLINE,
            || async {
                let letters = pipeline.dead_letters().await?;
                Ok((letters.len() >= poison.len()).then_some(letters))
            },
        )
        .await?;
    check(
        letters.len() == poison.len(),
        format!("{} dead letters, expected {}", letters.len(), poison.len()),
    )?;
    for (key_text, payload, kind, reason) in &poison {
        let letter = letters
            .iter()
            .find(|m| key(m).as_deref() == Some(key_text.as_str()))
            .with_context(|| format!("{key_text} is not on the dead-letter topic"))?;
        let (partition, offset) = origins[key_text];
        let got = |name: &str| header(letter, name).unwrap_or_default();
        check(
            got("error_kind") == *kind,
            format!(
                "{key_text}: error_kind {:?}, expected {kind:?}",
                got("error_kind")
            ),
        )?;
        check(
            got("error_message").contains(reason),
            format!(
                "{key_text}: error_message {:?} lacks {reason:?}",
                got("error_message")
            ),
        )?;
        check(
            got("original_topic") == pipeline.topic
                && got("original_partition") == partition.to_string()
                && got("original_offset") == offset.to_string(),
            format!(
                "{key_text}: origin {}/{}/{}, expected {}/{partition}/{offset}",
                got("original_topic"),
                got("original_partition"),
                got("original_offset"),
                pipeline.topic
            ),
        )?;
        check(
            letter.payload() == Some(payload.as_slice()),
            format!("{key_text}: the dead letter keeps the original bytes"),
        )?;
        check(
            letter
                .headers()
                .is_some_and(|h| h.iter().any(|h| h.key == "source_ts_us")),
            format!("{key_text}: the original headers are kept"),
        )?;
    }
    pipeline.stop_processor().await?;
    Ok(())
}

/// Shorter credential values are left out: the API's passwords include short dictionary words
/// and digit runs ("lake", "1952") that occur in names, places and phone numbers. So are
/// all-digit values ("123456"): the pipeline itself generates digit runs (source times,
/// transaction ids, E.164 numbers) that contain them by chance.
const MIN_SECRET_LEN: usize = 6;

/// Credential values, found in a haystack in one pass (indexed by their first bytes).
struct Secrets {
    by_prefix: HashMap<[u8; MIN_SECRET_LEN], Vec<String>>,
    len: usize,
}

impl Secrets {
    fn new(values: impl IntoIterator<Item = String>) -> Self {
        let mut by_prefix: HashMap<[u8; MIN_SECRET_LEN], Vec<String>> = HashMap::new();
        let mut len = 0;
        for value in values {
            let Some(prefix) = value.as_bytes().first_chunk::<MIN_SECRET_LEN>() else {
                continue;
            };
            by_prefix.entry(*prefix).or_default().push(value);
            len += 1;
        }
        Self { by_prefix, len }
    }

    /// Every secret occurring in `haystack`.
    fn found_in<'a>(&'a self, haystack: &[u8]) -> BTreeSet<&'a str> {
        let mut found = BTreeSet::new();
        for (start, window) in haystack.windows(MIN_SECRET_LEN).enumerate() {
            let Some(candidates) = self.by_prefix.get(window) else {
                continue;
            };
            for secret in candidates {
                if haystack[start..].starts_with(secret.as_bytes()) {
                    found.insert(secret.as_str());
                }
            }
        }
        found
    }

    fn first_in<'a>(&'a self, haystack: &[u8]) -> Option<&'a str> {
        self.found_in(haystack).into_iter().next()
    }
}

/// The credential values of every fixture record (`login.password`, `salt`, `md5`, `sha1`,
/// `sha256`, and the legacy `password`, `md5 hash`, `sha1 hash` … of the `user` wrapper), except
/// those shorter than [`MIN_SECRET_LEN`], all digits, or occurring (in any case) in the records'
/// other values (a password "morgan" next to a last name "Morgan" proves nothing); and how many
/// were left out.
fn fixture_secrets() -> anyhow::Result<(Secrets, usize)> {
    fn walk(value: &Value, key: &str, secrets: &mut BTreeSet<String>, other: &mut String) {
        match value {
            Value::Object(members) => {
                for (name, member) in members {
                    walk(member, name, secrets, other);
                }
            }
            Value::Array(items) => {
                for item in items {
                    walk(item, key, secrets, other);
                }
            }
            Value::Null => {}
            scalar => {
                let text = match scalar {
                    Value::String(text) => text.clone(),
                    other => other.to_string(),
                };
                let name = key.to_lowercase();
                let name = name.strip_suffix(" hash").unwrap_or(&name);
                if ["password", "salt", "md5", "sha1", "sha256"].contains(&name) {
                    secrets.insert(text);
                } else {
                    other.push_str(&text.to_lowercase());
                    other.push('\n');
                }
            }
        }
    }
    let mut all = BTreeSet::new();
    let mut other = String::new();
    for (file, (body, _)) in fixture_files()? {
        let json: Value = serde_json::from_slice(&body).with_context(|| file.clone())?;
        walk(&json, "", &mut all, &mut other);
    }
    let lower = Secrets::new(all.iter().map(|secret| secret.to_lowercase()));
    let colliding: BTreeSet<String> = lower
        .found_in(other.as_bytes())
        .into_iter()
        .map(str::to_owned)
        .collect();
    let secrets = Secrets::new(
        all.iter()
            .filter(|secret| !secret.bytes().all(|b| b.is_ascii_digit()))
            .filter(|secret| !colliding.contains(&secret.to_lowercase()))
            .cloned(),
    );
    let left_out = all.len() - secrets.len;
    Ok((secrets, left_out))
}

/// Test 7. No credential of any fixture record reaches Kafka (keys, values, headers; the topic
/// and its dead letters) or Cassandra (every table), though PostgreSQL's raw JSON has them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fixture_credentials_never_leave_postgres() -> anyhow::Result<()> {
    let (secrets, left_out) = fixture_secrets()?;
    check(
        secrets.len > 10_000,
        format!(
            "only {} credential values to look for ({left_out} left out)",
            secrets.len
        ),
    )?;
    let mut pipeline = TestPipeline::new("it_cred").await?;
    run_all_fixtures(&mut pipeline).await?;

    // The search works: PostgreSQL's raw JSON, where credentials belong, is full of them.
    let raw: Vec<String> = pipeline
        .pg
        .query("SELECT raw::text FROM users", &[])
        .await?
        .iter()
        .map(|row| row.get(0))
        .collect();
    let in_raw = raw
        .iter()
        .filter(|raw| secrets.first_in(raw.as_bytes()).is_some())
        .count();
    check(
        in_raw * 2 > raw.len(),
        format!(
            "only {in_raw} of {} raw records show a credential",
            raw.len()
        ),
    )?;

    let mut messages = pipeline.topic_messages().await?;
    let on_topic = messages.len();
    messages.extend(pipeline.dead_letters().await?);
    check(
        on_topic >= FIXTURE_RECORDS / 2,
        format!("only {on_topic} messages"),
    )?;
    for message in &messages {
        // Header names are the pipeline's own fixed words ("error_message" would match the
        // password "message"); header values are searched.
        let mut parts: Vec<(String, &[u8])> = vec![
            ("key".to_owned(), message.key().unwrap_or_default()),
            ("value".to_owned(), message.payload().unwrap_or_default()),
        ];
        if let Some(headers) = message.headers() {
            for header in headers.iter() {
                parts.push((
                    format!("header {}", header.key),
                    header.value.unwrap_or_default(),
                ));
            }
        }
        for (part, bytes) in parts {
            if let Some(secret) = secrets.first_in(bytes) {
                anyhow::bail!(
                    "credential {secret:?} in the {part} of the message at {}/{}/{}: {:?}",
                    message.topic(),
                    message.partition(),
                    message.offset(),
                    String::from_utf8_lossy(bytes)
                );
            }
        }
    }
    let mut rows = 0;
    for table in ["users_by_id", "users_by_country"] {
        for row in pipeline.table_as_text(table).await? {
            rows += 1;
            for value in &row {
                if let Some(secret) = secrets.first_in(value.as_bytes()) {
                    anyhow::bail!("credential {secret:?} in {table}: {row:?}");
                }
            }
        }
    }
    check(
        rows >= FIXTURE_RECORDS,
        format!("only {rows} Cassandra rows searched"),
    )?;
    pipeline.stop_processor().await?;
    pipeline.stop_cdc().await?;
    Ok(())
}
