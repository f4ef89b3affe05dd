//! Schema evolution against the real registry (over HTTP) and the broker: every version under
//! `schemas/` decoded by every reader the Avro rules allow, a topic mixing versions processed in
//! one run, refused candidates refused before anything is produced, a processor meeting a
//! version newer than itself was started with, compatibility levels as Confluent documents them,
//! and `cql/003` applied while a processor runs.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::{bail, ensure, Context};
use apache_avro::types::Value;
use apache_avro::writer::datum::GenericDatumWriter;
use apache_avro::Schema;
use rdkafka::consumer::{BaseConsumer, Consumer};
use serde_json::{json, Value as Json};
use userstream::codec::{encode_wire, Decoder, Encoder, USER_SCHEMA, USER_SCHEMA_VERSIONS};
use userstream::config::{SchemaRegistryArgs, TopicArgs};
use userstream::model::UserRecord;
use userstream::normalize::{normalize, NormalizedUser};
use userstream::schemas::{value_subject, SchemaError, SchemaRegistryClient};
use userstream::schemas_cmd::{self, Action, Args, SchemasCmdError};

use crate::common;
use crate::harness::{self, Settings, TestPipeline};

const DEADLINE: Duration = Duration::from_secs(60);

fn version(n: usize) -> &'static str {
    USER_SCHEMA_VERSIONS[n - 1]
}

fn registry() -> anyhow::Result<SchemaRegistryClient> {
    Ok(SchemaRegistryClient::new(&registry_args())?)
}

fn registry_args() -> SchemaRegistryArgs {
    SchemaRegistryArgs {
        url: common::registry_url(),
    }
}

/// A user with every field set, the v2/v3 ones included (German numbering, so it normalizes
/// with both E.164 forms).
fn user(id: &str, first_name: &str, age: i64) -> UserRecord {
    let (user, _) = harness::sample_user(id, first_name);
    UserRecord {
        source_api_version: Some("1.4".to_owned()),
        age: Some(age),
        id_source: Some("login_uuid".to_owned()),
        ..user
    }
}

/// `user` as a reader of schema version `n` sees it: the fields version `n` lacks are empty.
fn as_of_version(user: &UserRecord, n: usize) -> UserRecord {
    match n {
        1 => UserRecord {
            source_api_version: None,
            age: None,
            id_source: None,
            ..user.clone()
        },
        _ => user.clone(),
    }
}

/// The Avro body of `user` written with `schema_json`, an older version of the value schema:
/// each writer field takes the `UserRecord` field of its name, or the one whose newest-schema
/// `aliases` name it (a rename); an int field takes a long that fits.
fn encode_as(schema_json: &str, user: &UserRecord) -> anyhow::Result<Vec<u8>> {
    let schema = Schema::parse_str(schema_json)?;
    let Schema::Record(record) = &schema else {
        bail!("not a record schema");
    };
    let Schema::Record(newest) = Schema::parse_str(USER_SCHEMA)? else {
        bail!("the newest schema is not a record");
    };
    let values = serde_json::to_value(user)?;
    let mut fields = Vec::new();
    for field in &record.fields {
        let source = newest
            .fields
            .iter()
            .find(|newer| newer.name == field.name || newer.aliases.contains(&field.name))
            .with_context(|| format!("no UserRecord field for {}", field.name))?;
        let value = values.get(&source.name).cloned().unwrap_or(Json::Null);
        fields.push((field.name.clone(), to_avro(&field.schema, value)?));
    }
    let writer = GenericDatumWriter::builder(&schema).build()?;
    Ok(writer.write_value_to_vec(Value::Record(fields))?)
}

fn to_avro(schema: &Schema, value: Json) -> anyhow::Result<Value> {
    Ok(match (schema, value) {
        (Schema::Union(_), Json::Null) => Value::Union(0, Box::new(Value::Null)),
        (Schema::Union(union), value) => {
            Value::Union(1, Box::new(to_avro(&union.variants()[1], value)?))
        }
        (Schema::String, Json::String(text)) => Value::String(text),
        (Schema::Double, Json::Number(n)) => Value::Double(n.as_f64().context("double")?),
        (Schema::Long, Json::Number(n)) => Value::Long(n.as_i64().context("long")?),
        (Schema::Int, Json::Number(n)) => Value::Int(i32::try_from(n.as_i64().context("int")?)?),
        (Schema::TimestampMicros, Json::String(text)) => {
            Value::TimestampMicros(chrono::DateTime::parse_from_rfc3339(&text)?.timestamp_micros())
        }
        (schema, value) => bail!("cannot write {value} as {schema:?}"),
    })
}

/// A complete Kafka value of `user` written with version `n`, registered as `schema_id`.
fn message(n: usize, schema_id: u32, user: &UserRecord) -> anyhow::Result<Vec<u8>> {
    if n == USER_SCHEMA_VERSIONS.len() {
        return Ok(Encoder::new()?.encode_message(schema_id, user)?);
    }
    Ok(encode_wire(schema_id, &encode_as(version(n), user)?))
}

/// Registers versions 1..=`up_to` under `subject` (BACKWARD, the registry's default) and
/// returns their ids, oldest first.
async fn register_versions(subject: &str, up_to: usize) -> anyhow::Result<Vec<u32>> {
    let registry = registry()?;
    let mut ids = Vec::new();
    for n in 1..=up_to {
        ids.push(
            registry
                .register(subject, version(n))
                .await
                .with_context(|| format!("registering v{n}"))?,
        );
    }
    Ok(ids)
}

/// A decoder reading with `reader_json`, knowing the writer `schema_id` as the registry
/// returns it (what the processor does with an id it has not seen).
async fn decoder_for(reader_json: &str, schema_id: u32) -> anyhow::Result<Decoder> {
    let writer = registry()?.schema_by_id(schema_id).await?;
    let mut decoder = Decoder::with_reader_schema(reader_json)?;
    decoder.register_writer(schema_id, &writer)?;
    Ok(decoder)
}

// ---- (a), (b): decoding across versions ----

#[tokio::test]
async fn a_v1_message_decodes_under_the_v2_and_v3_readers_with_the_defaults() -> anyhow::Result<()>
{
    let subject = value_subject(&common::unique_name("evo_a"));
    let ids = register_versions(&subject, 3).await?;
    let written = user("u-a", "Anna", 41);
    let bytes = message(1, ids[0], &written)?;
    for reader in [2, 3] {
        let decoded = decoder_for(version(reader), ids[0]).await?.decode(&bytes)?;
        assert_eq!(decoded.schema_id, ids[0]);
        // The v1 fields as written; the v2/v3 fields hold their default, null.
        assert_eq!(
            decoded.record,
            as_of_version(&written, 1),
            "v{reader} reader"
        );
    }
    Ok(())
}

#[tokio::test]
async fn newer_messages_decode_under_older_readers_where_the_rules_allow() -> anyhow::Result<()> {
    let subject = value_subject(&common::unique_name("evo_b"));
    let ids = register_versions(&subject, 3).await?;
    let written = user("u-b", "Berta", 37);

    // v3 → v1: v1 ignores the fields it does not know.
    let v3 = message(3, ids[2], &written)?;
    let decoded = decoder_for(version(1), ids[2]).await?.decode(&v3)?;
    assert_eq!(decoded.record, as_of_version(&written, 1));

    // v2 → v1 likewise, and v2 → v3 finds the renamed field through its alias and widens age.
    let v2 = message(2, ids[1], &written)?;
    let decoded = decoder_for(version(1), ids[1]).await?.decode(&v2)?;
    assert_eq!(decoded.record, as_of_version(&written, 1));
    let decoded = decoder_for(version(3), ids[1]).await?.decode(&v2)?;
    assert_eq!(decoded.record, written);

    // v3 → v2 is not allowed: v2's int cannot hold v3's long. Refused up front, with a reason.
    let error = decoder_for(version(2), ids[2])
        .await
        .expect_err("a v2 reader must refuse the v3 writer");
    let error = error
        .downcast::<userstream::codec::DecodeError>()
        .context("a decode error")?;
    assert_eq!(error.kind(), "schema_resolution", "{error}");
    Ok(())
}

// ---- (c): one topic, three versions ----

/// One message of the mixed topic.
struct Version {
    schema: usize,
    user: UserRecord,
    source_ts_us: i64,
}

#[tokio::test]
async fn c_a_topic_mixing_v1_v2_and_v3_is_processed_in_one_run() -> anyhow::Result<()> {
    let mut pipeline = TestPipeline::new("evo_c").await?;
    let ids = register_versions(&value_subject(&pipeline.topic), 3).await?;
    let producer = harness::producer()?;

    // Interleaved: per user, versions in source-time order, each written with another schema;
    // the newest one decides what Cassandra holds.
    let mut ts = 1_700_000_000_000_000;
    let mut next_ts = || {
        ts += 1_000;
        ts
    };
    let messages = [
        Version {
            schema: 1,
            user: user("u-c1", "Carla", 30),
            source_ts_us: next_ts(),
        },
        Version {
            schema: 2,
            user: user("u-c2", "Clara", 31),
            source_ts_us: next_ts(),
        },
        Version {
            schema: 3,
            user: user("u-c3", "Cora", 32),
            source_ts_us: next_ts(),
        },
        Version {
            schema: 3,
            user: user("u-c1", "Carla", 33),
            source_ts_us: next_ts(),
        },
        Version {
            schema: 1,
            user: user("u-c2", "Clarissa", 34),
            source_ts_us: next_ts(),
        },
        Version {
            schema: 2,
            user: user("u-c3", "Corinna", 35),
            source_ts_us: next_ts(),
        },
        Version {
            schema: 1,
            user: user("u-c4", "Chiara", 36),
            source_ts_us: next_ts(),
        },
        Version {
            schema: 2,
            user: user("u-c4", "Chiara", 37),
            source_ts_us: next_ts(),
        },
    ];
    let mut expected: BTreeMap<String, NormalizedUser> = BTreeMap::new();
    for (index, version) in messages.iter().enumerate() {
        let payload = message(version.schema, ids[version.schema - 1], &version.user)?;
        let ts = version.source_ts_us.to_string();
        let txid = (index + 1).to_string();
        harness::produce(
            &producer,
            &pipeline.topic,
            None,
            &version.user.id,
            Some(&payload),
            &[("op", "u"), ("source_ts_us", &ts), ("source_txid", &txid)],
        )
        .await?;
        let seen = as_of_version(&version.user, version.schema);
        expected.insert(seen.id.clone(), normalize(&seen)?.user);
    }
    // What the newest version of each user says, spelled out for the new columns.
    assert_eq!(expected["u-c1"].age, Some(33));
    assert_eq!(
        expected["u-c2"].age, None,
        "written with v1, which has no age"
    );
    assert_eq!(expected["u-c3"].source_api_version.as_deref(), Some("1.4"));
    assert_eq!(expected["u-c4"].id_source.as_deref(), Some("login_uuid"));

    pipeline.start_processor();
    pipeline
        .wait_until_cassandra_holds(&expected, DEADLINE)
        .await?;
    ensure!(
        pipeline.dead_letters().await?.is_empty(),
        "no message of a registered version is dead-lettered"
    );
    pipeline.stop_processor().await
}

// ---- (d): refused candidates ----

/// Each file under `schemas/refused/` with the level that refuses it (see its README).
const REFUSED: &[(&str, &str)] = &[
    ("add-required-field.avsc", "BACKWARD"),
    ("narrow-age-to-int.avsc", "BACKWARD"),
    ("latitude-as-string.avsc", "BACKWARD"),
    ("rename-id-without-alias.avsc", "BACKWARD"),
    ("remove-id.avsc", "FORWARD"),
];

fn refused_file(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("schemas/refused")
        .join(name)
}

fn args(topic: &str, schema_file: Option<PathBuf>) -> Args {
    Args {
        registry: registry_args(),
        topic: TopicArgs {
            topic: topic.to_owned(),
            partitions: 1,
            replication_factor: 1,
        },
        schema_file,
    }
}

async fn set_level(subject: &str, level: &str) -> anyhow::Result<()> {
    let response = reqwest::Client::new()
        .put(format!("{}/config/{subject}", common::registry_url()))
        .json(&json!({ "compatibility": level }))
        .send()
        .await?;
    ensure!(
        response.status().is_success(),
        "setting {subject} to {level}: {}",
        response.text().await?
    );
    Ok(())
}

/// The end of partition 0 of `topic`: 0 while nothing was ever produced to it.
async fn high_watermark(topic: &str) -> anyhow::Result<i64> {
    let topic = topic.to_owned();
    tokio::task::spawn_blocking(move || {
        let consumer: BaseConsumer = userstream::kafka::consumer_config(
            &common::kafka_args(),
            &common::unique_name("evo_watermark"),
        )
        .create()?;
        let (_, high) = consumer.fetch_watermarks(&topic, 0, Duration::from_secs(10))?;
        anyhow::Ok(high)
    })
    .await?
}

async fn version_count(subject: &str) -> anyhow::Result<usize> {
    let versions: Vec<u32> = reqwest::get(format!(
        "{}/subjects/{subject}/versions",
        common::registry_url()
    ))
    .await?
    .error_for_status()?
    .json()
    .await?;
    Ok(versions.len())
}

#[tokio::test]
async fn d_every_refused_candidate_is_refused_with_the_registrys_reason_and_nothing_is_produced(
) -> anyhow::Result<()> {
    let files: Vec<String> = std::fs::read_dir(refused_file(""))?
        .map(|entry| Ok(entry?.file_name().to_string_lossy().into_owned()))
        .collect::<anyhow::Result<Vec<_>>>()?
        .into_iter()
        .filter(|name| name.ends_with(".avsc"))
        .collect();
    for file in &files {
        ensure!(
            REFUSED.iter().any(|(name, _)| name == file),
            "{file} has no row in REFUSED"
        );
    }

    for &(file, level) in REFUSED {
        let topic = common::unique_name("evo_d");
        let _topics =
            common::TestTopics::new([topic.clone(), userstream::kafka::dead_letter_topic(&topic)]);
        userstream::cdc::ensure_topics(&common::kafka_args(), &args(&topic, None).topic).await?;
        let subject = value_subject(&topic);
        register_versions(&subject, 3).await?;
        set_level(&subject, level).await?;
        let candidate = schemas_cmd::Schema::load(Some(&refused_file(file)))?;

        let check = Action::Check(args(&topic, Some(refused_file(file))));
        match schemas_cmd::execute(&check, &candidate).await {
            Err(SchemasCmdError::Incompatible {
                messages, level: l, ..
            }) => {
                assert_eq!(l, level, "{file}");
                assert!(!messages.is_empty(), "{file}: the registry says why");
            }
            other => bail!("{file}: check gave {other:?}"),
        }

        let register = Action::Register(args(&topic, Some(refused_file(file))));
        match schemas_cmd::execute(&register, &candidate).await {
            Err(SchemasCmdError::Registry(SchemaError::Refused {
                error_code, reason, ..
            })) => {
                assert_eq!(error_code, 409, "{file}: {reason}");
                assert!(reason.contains(level), "{file}: {reason}");
            }
            other => bail!("{file}: register gave {other:?}"),
        }
        assert_eq!(
            version_count(&subject).await?,
            3,
            "{file}: no version added"
        );
        assert_eq!(
            high_watermark(&topic).await?,
            0,
            "{file}: nothing produced to {topic}"
        );
    }
    Ok(())
}

/// The binary itself: exit code and the registry's reason on stderr, for check and register.
#[tokio::test]
async fn the_schemas_subcommand_exits_non_zero_with_the_reason() -> anyhow::Result<()> {
    let topic = common::unique_name("evo_cli");
    let subject = value_subject(&topic);
    register_versions(&subject, 3).await?;
    let run = |action: &str, file: Option<PathBuf>| {
        let mut command = std::process::Command::new(env!("CARGO_BIN_EXE_userstream"));
        command
            .args(["schemas", action, "--topic", &topic])
            .env("USERSTREAM_SCHEMA_REGISTRY_URL", common::registry_url())
            .env_remove("USERSTREAM_SCHEMA_FILE");
        if let Some(file) = file {
            command.arg("--schema-file").arg(file);
        }
        command.output()
    };

    let output = run("check", None)?;
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success(), "{output:?}");
    assert!(
        stdout.contains("is compatible") && stdout.contains("BACKWARD"),
        "{stdout}"
    );

    let output = run("register", None)?;
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success(), "{output:?}");
    assert!(stdout.contains("with id"), "{stdout}");

    for action in ["check", "register"] {
        let output = run(action, Some(refused_file("narrow-age-to-int.avsc")))?;
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert_eq!(output.status.code(), Some(1), "{action}: {stderr}");
        assert!(
            stderr.contains("cannot read data written with version 3"),
            "{action}: the registry's reason: {stderr}"
        );
    }
    assert_eq!(version_count(&subject).await?, 3);
    Ok(())
}

// ---- (e): a processor older than the version ----

#[tokio::test]
async fn e_a_processor_started_before_v2_existed_reads_v2_without_a_restart() -> anyhow::Result<()>
{
    let mut pipeline = TestPipeline::new("evo_e").await?;
    let subject = value_subject(&pipeline.topic);
    let registry = registry()?;
    let v1 = registry.register(&subject, version(1)).await?;
    let producer = harness::producer()?;
    pipeline.start_processor();

    let first = user("u-e1", "Emma", 50);
    let payload = message(1, v1, &first)?;
    harness::produce(
        &producer,
        &pipeline.topic,
        None,
        &first.id,
        Some(&payload),
        &[("op", "c"), ("source_ts_us", "1700000000000001")],
    )
    .await?;
    let mut expected =
        BTreeMap::from([(first.id.clone(), normalize(&as_of_version(&first, 1))?.user)]);
    pipeline
        .wait_until_cassandra_holds(&expected, DEADLINE)
        .await?;

    // Only now do v2 and v3 exist; the running processor meets their ids for the first time.
    for (n, id, first_name) in [(2, "u-e2", "Ella"), (3, "u-e3", "Erika")] {
        let schema_id = registry.register(&subject, version(n)).await?;
        let later = user(id, first_name, 50 + n as i64);
        let payload = message(n, schema_id, &later)?;
        harness::produce(
            &producer,
            &pipeline.topic,
            None,
            &later.id,
            Some(&payload),
            &[("op", "c"), ("source_ts_us", "1700000000000002")],
        )
        .await?;
        expected.insert(later.id.clone(), normalize(&later)?.user);
    }
    pipeline
        .wait_until_cassandra_holds(&expected, DEADLINE)
        .await?;
    let stored = pipeline.user_by_id("u-e2").await?.context("u-e2 stored")?;
    assert_eq!(stored.user.age, Some(52));
    assert_eq!(stored.user.source_api_version.as_deref(), Some("1.4"));
    pipeline.ensure_stages_running()?;
    ensure!(
        pipeline.dead_letters().await?.is_empty(),
        "nothing dead-lettered"
    );
    pipeline.stop_processor().await
}

// ---- (f): compatibility levels ----

/// v3 plus one more optional field: compatible with v3 in every direction.
fn v3_plus_optional_field() -> anyhow::Result<String> {
    let mut schema: Json = serde_json::from_str(version(3))?;
    schema["fields"]
        .as_array_mut()
        .context("fields")?
        .push(json!({"name": "nickname", "type": ["null", "string"], "default": null, "doc": "x"}));
    Ok(schema.to_string())
}

fn refused(name: &str) -> anyhow::Result<String> {
    Ok(std::fs::read_to_string(refused_file(name))?)
}

#[tokio::test]
async fn f_levels_accept_and_refuse_as_confluent_documents() -> anyhow::Result<()> {
    // (history, candidate, then for BACKWARD, BACKWARD_TRANSITIVE, FORWARD, FORWARD_TRANSITIVE,
    // FULL, FULL_TRANSITIVE, NONE: accepted?). BACKWARD: the candidate reads the latest
    // version's data; FORWARD: the latest reads the candidate's; FULL: both; the _TRANSITIVE
    // levels: against every version, not only the latest; NONE: no check.
    let v1 = version(1).to_owned();
    let v2 = version(2).to_owned();
    let v3 = version(3).to_owned();
    let old_latitude = refused("latitude-as-string.avsc")?;
    type Case = (&'static str, Vec<String>, String, [bool; 7]);
    let cases: Vec<Case> = vec![
        (
            "v2 adds optional fields",
            vec![v1.clone()],
            v2.clone(),
            [true; 7],
        ),
        (
            "v3 renames through an alias and widens int to long",
            vec![v1.clone(), v2.clone()],
            v3.clone(),
            [true, true, false, false, false, false, true],
        ),
        (
            "a required field added without a default",
            vec![v3.clone()],
            refused("add-required-field.avsc")?,
            [false, false, true, true, false, false, true],
        ),
        (
            "a required field removed",
            vec![v3.clone()],
            refused("remove-id.avsc")?,
            [true, true, false, false, false, false, true],
        ),
        (
            "long narrowed to int",
            vec![v3.clone()],
            refused("narrow-age-to-int.avsc")?,
            [false, false, true, true, false, false, true],
        ),
        (
            "double changed to string",
            vec![v3.clone()],
            old_latitude.clone(),
            [false, false, false, false, false, false, true],
        ),
        (
            "a required field renamed without an alias",
            vec![v3.clone()],
            refused("rename-id-without-alias.avsc")?,
            [false, false, false, false, false, false, true],
        ),
        (
            "compatible with the latest version, not with an older one",
            vec![old_latitude, v3.clone()],
            v3_plus_optional_field()?,
            [true, false, true, false, true, false, true],
        ),
    ];
    let levels = [
        "BACKWARD",
        "BACKWARD_TRANSITIVE",
        "FORWARD",
        "FORWARD_TRANSITIVE",
        "FULL",
        "FULL_TRANSITIVE",
        "NONE",
    ];
    let registry = registry()?;
    let mut wrong = Vec::new();
    for (what, history, candidate, expected) in &cases {
        for (level, accept) in levels.iter().zip(expected) {
            let subject = value_subject(&common::unique_name("evo_f"));
            set_level(&subject, "NONE").await?;
            for schema in history {
                registry.register(&subject, schema).await?;
            }
            set_level(&subject, level).await?;
            let report = registry.check_compatibility(&subject, candidate).await?;
            let registered = registry.register(&subject, candidate).await;
            let registered_ok = match &registered {
                Ok(_) => true,
                Err(SchemaError::Refused {
                    error_code: 409, ..
                }) => false,
                Err(error) => bail!("{what} under {level}: {error}"),
            };
            if report.is_compatible != *accept || registered_ok != *accept {
                wrong.push(format!(
                    "{what} under {level}: expected {}, check said {} ({:?}), register {:?}",
                    if *accept { "accepted" } else { "refused" },
                    report.is_compatible,
                    report.messages,
                    registered.map_err(|error| error.to_string()),
                ));
            }
            if !*accept {
                ensure!(
                    !report.messages.is_empty(),
                    "{what} under {level}: refused without a reason"
                );
            }
        }
    }
    ensure!(wrong.is_empty(), "{}", wrong.join("\n"));
    Ok(())
}

// ---- `migrate` while a processor runs ----

#[tokio::test]
async fn migrate_while_a_processor_runs_adds_the_columns_and_the_processor_fills_them(
) -> anyhow::Result<()> {
    // The keyspace as the release before cql/003 left it. (Not a keyspace whose columns were
    // dropped: Cassandra hides every cell older than a column's drop when it is added again.)
    let mut pipeline = TestPipeline::with_settings(
        "evo_m",
        Settings {
            cql_migrations_up_to: Some(2),
            ..Settings::default()
        },
    )
    .await?;
    let subject = value_subject(&pipeline.topic);
    let schema_id = registry()?.register(&subject, USER_SCHEMA).await?;
    let producer = harness::producer()?;
    pipeline.start_processor();

    let mut ts: i64 = 1_700_000_000_000_000;
    let mut produce_version = |age: i64| {
        ts += 1;
        let user = user("u-m", "Mia", age);
        let ts = ts.to_string();
        let producer = &producer;
        let topic = pipeline.topic.clone();
        async move {
            let payload = message(3, schema_id, &user)?;
            harness::produce(
                producer,
                &topic,
                None,
                &user.id,
                Some(&payload),
                &[("op", "u"), ("source_ts_us", &ts)],
            )
            .await?;
            anyhow::Ok(ts)
        }
    };
    let first_ts: i64 = produce_version(20).await?.parse()?;
    // Written without the columns the keyspace lacks; the processor keeps going.
    let row = pipeline
        .eventually("the first version is written", DEADLINE, || async {
            Ok(pipeline
                .user_by_id("u-m")
                .await?
                .filter(|row| row.source_ts_us == Some(first_ts)))
        })
        .await?;
    assert_eq!(row.user.first_name.as_deref(), Some("Mia"));
    assert_eq!(row.user.age, None);

    userstream::migrate::run(
        userstream::migrate::Config {
            postgres: pipeline.cdc_config().postgres,
            cassandra: pipeline.processor_config().cassandra,
        },
        tokio_util::sync::CancellationToken::new(),
    )
    .await?;

    // Each new version is a write after the migration; within the sink's re-check interval
    // one of them fills the new columns.
    let mut age = 20;
    let row = common::eventually("the processor fills the new columns", DEADLINE, || {
        age += 1;
        let written_age = age;
        let produced = produce_version(written_age);
        let pipeline = &pipeline;
        async move {
            pipeline.ensure_stages_running()?;
            let ts: i64 = produced.await?.parse()?;
            let row = pipeline
                .eventually("the version is written", DEADLINE, || async {
                    Ok(pipeline
                        .user_by_id("u-m")
                        .await?
                        .filter(|row| row.source_ts_us == Some(ts)))
                })
                .await?;
            Ok((row.user.age == Some(written_age as i32)).then_some(row))
        }
    })
    .await?;
    assert_eq!(row.user.source_api_version.as_deref(), Some("1.4"));
    assert_eq!(row.user.id_source.as_deref(), Some("login_uuid"));
    pipeline.ensure_stages_running()?;
    pipeline.stop_processor().await
}
