//! The operator commands against a real pipeline: `status` (its report and its exit codes),
//! `dead-letters list|replay` (poison put back once its cause is gone, and only once) and `tail`
//! (the topic decoded through the registry).

use std::time::Duration;

use anyhow::{ensure, Context};
use serde_json::Value;
use tokio_util::sync::CancellationToken;
use userstream::config::{CassandraArgs, PostgresArgs, SchemaRegistryArgs, Secret};
use userstream::dead_letters::{self, ReplayArgs, Selection};
use userstream::status::{self, StatusOptions, Verdict};
use userstream::tail::{self, Line};

use crate::common::{self, TestDatabase};
use crate::harness::{self, sample_user, TestPipeline};

const DEADLINE: Duration = Duration::from_secs(90);

fn status_config(pipeline: &TestPipeline) -> status::Config {
    status::Config {
        postgres: PostgresArgs {
            pg_url: Secret::new(pipeline.database.url.clone()),
        },
        kafka: common::kafka_args(),
        registry: pipeline.registry_args(),
        cassandra: CassandraArgs {
            nodes: common::cassandra_nodes(),
            keyspace: pipeline.keyspace.clone(),
            keyspace_replication: String::new(),
        },
        topic: pipeline.topic_args(),
        options: StatusOptions {
            group_id: pipeline.group_id.clone(),
            json: true,
            // Other tests share the PostgreSQL cluster and may hold its xmin for a while: only
            // this test's own backlog is asserted, not the shared cluster's age.
            max_backlog_age: Duration::from_secs(3600),
            max_lag: 0,
            dead_letter_window: Duration::from_secs(3600),
            timeout: Duration::from_secs(10),
        },
    }
}

/// `userstream status --json` on the test's resources (as `compose` would pass them, through
/// the environment), with extra flags and a time-out per service; its exit code and report.
async fn status_binary(
    pipeline: &TestPipeline,
    flags: &[&str],
    timeout: &str,
) -> anyhow::Result<(i32, Value)> {
    let output = tokio::process::Command::new(env!("CARGO_BIN_EXE_userstream"))
        .arg("status")
        .args(["--json", "--max-backlog-age", "1h", "--timeout", timeout])
        .args(flags)
        .env("USERSTREAM_PG_URL", &pipeline.database.url)
        .env("USERSTREAM_KAFKA_BROKERS", common::kafka_brokers())
        .env("USERSTREAM_SCHEMA_REGISTRY_URL", common::registry_url())
        .env(
            "USERSTREAM_CASSANDRA_NODES",
            common::cassandra_nodes().join(","),
        )
        .env("USERSTREAM_CASSANDRA_KEYSPACE", &pipeline.keyspace)
        .env("USERSTREAM_TOPIC", &pipeline.topic)
        .env("USERSTREAM_GROUP_ID", &pipeline.group_id)
        .output()
        .await
        .context("running userstream status")?;
    let code = output.status.code().context("status was killed")?;
    let report = serde_json::from_slice(&output.stdout).with_context(|| {
        format!(
            "status printed no JSON: {}\n{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        )
    })?;
    Ok((code, report))
}

/// A caught-up pipeline is healthy, with every stage's figures in the report; a fresh dead
/// letter makes it degraded (exit 1); a Kafka that cannot be reached makes it unreachable
/// (exit 2).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn status_reports_each_stage_and_says_healthy_degraded_or_unreachable() -> anyhow::Result<()>
{
    let mut pipeline = TestPipeline::new("ops_status").await?;
    pipeline
        .upsert(&[
            sample_user("s-1", "Ada"),
            sample_user("s-2", "Grace"),
            sample_user("s-3", "Edsger"),
        ])
        .await?;
    pipeline.start_cdc();
    pipeline.start_processor();
    pipeline
        .wait_until_cassandra_matches_postgres(DEADLINE)
        .await?;

    let config = status_config(&pipeline);
    let report = pipeline
        .eventually("the group has committed everything", DEADLINE, || async {
            let report = status::check(&config).await?;
            Ok((report.verdict == Verdict::Healthy).then_some(report))
        })
        .await?;
    let json = serde_json::to_value(&report)?;
    ensure!(json["exit_code"] == 0, "{json:#}");
    ensure!(json["postgres"]["users"] == 3, "{json:#}");
    let cursors = json["postgres"]["cdc_cursors"]
        .as_array()
        .context("cursors")?;
    ensure!(cursors.len() == 1, "{json:#}");
    ensure!(cursors[0]["consumer"] == pipeline.cdc_name.as_str());
    ensure!(cursors[0]["unproduced"] == 0, "{json:#}");
    let kafka = &json["kafka"];
    ensure!(kafka["reachable"] == true && kafka["topic_exists"] == true);
    let partitions = kafka["partitions"].as_array().context("partitions")?;
    ensure!(partitions.len() == 3, "{kafka:#}");
    let ends: i64 = partitions
        .iter()
        .filter_map(|p| p["end_offset"].as_i64())
        .sum();
    ensure!(ends == 3, "three changes produced: {kafka:#}");
    for partition in partitions {
        ensure!(partition["lag"] == 0, "{kafka:#}");
        if partition["end_offset"] != 0 {
            ensure!(
                partition["committed"] == partition["end_offset"],
                "{kafka:#}"
            );
        }
    }
    ensure!(kafka["total_lag"] == 0);
    ensure!(
        !kafka["members"].as_array().context("members")?.is_empty(),
        "the running processor is a member: {kafka:#}"
    );
    ensure!(json["dead_letters"]["count"] == 0, "{json:#}");
    ensure!(json["registry"]["versions"]
        .as_array()
        .is_some_and(|v| !v.is_empty()));
    ensure!(json["registry"]["newest_id"].is_u64(), "{json:#}");
    let cassandra = &json["cassandra"];
    ensure!(cassandra["keyspace_exists"] == true);
    ensure!(
        cassandra["migrations"].as_array().map(Vec::len)
            == Some(userstream::sink::CQL_MIGRATIONS.len()),
        "{cassandra:#}"
    );

    // Poison: not Avro at all.
    let producer = harness::producer()?;
    let now = chrono::Utc::now().timestamp_micros().to_string();
    harness::produce(
        &producer,
        &pipeline.topic,
        Some(0),
        "s-poison",
        Some(b"not avro".as_slice()),
        &[("op", "c"), ("source_ts_us", now.as_str())],
    )
    .await?;
    let (code, report) = pipeline
        .eventually("status sees the dead letter", DEADLINE, || async {
            // Generous: the shared services answer slowly while other tests load them.
            let (code, report) = status_binary(&pipeline, &[], "30s").await?;
            Ok(
                (report["dead_letters"]["count"] == 1 && report["kafka"]["total_lag"] == 0)
                    .then_some((code, report)),
            )
        })
        .await?;
    ensure!(
        code == 1,
        "a fresh dead letter is degraded, got {code}: {report:#}"
    );
    ensure!(report["verdict"] == "degraded");
    let latest = &report["dead_letters"]["latest"][0];
    ensure!(latest["key"] == "s-poison", "{latest:#}");
    ensure!(latest["error_kind"] == "wire_format", "{latest:#}");
    ensure!(latest["error_message"]
        .as_str()
        .is_some_and(|m| !m.is_empty()));
    ensure!(
        report["problems"]
            .as_array()
            .is_some_and(|problems| problems
                .iter()
                .any(|p| p.as_str().is_some_and(|p| p.contains("dead letters")))),
        "{report:#}"
    );

    // Nothing listens on port 1 of the loopback.
    let (code, report) =
        status_binary(&pipeline, &["--kafka-brokers", "127.0.0.1:1"], "5s").await?;
    ensure!(
        code == 2,
        "an unreachable Kafka is exit 2, got {code}: {report:#}"
    );
    ensure!(report["verdict"] == "unreachable");
    ensure!(report["kafka"]["reachable"] == false, "{report:#}");
    ensure!(report["postgres"]["reachable"] == true, "{report:#}");

    pipeline.stop_processor().await?;
    pipeline.stop_cdc().await
}

/// A `userstream registry` on a database of its own, which knows none of the shared registry's
/// schemas.
struct EmptyRegistry {
    url: String,
    shutdown: CancellationToken,
    task: tokio::task::JoinHandle<Result<(), userstream::registry::Error>>,
    _database: TestDatabase,
}

impl EmptyRegistry {
    async fn start() -> anyhow::Result<Self> {
        let database = TestDatabase::create("ops_empty_registry").await?;
        let postgres = PostgresArgs {
            pg_url: Secret::new(database.url.clone()),
        };
        let pool = userstream::registry::pool(&postgres, 2, Duration::from_secs(10))?;
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let url = format!("http://{}", listener.local_addr()?);
        let shutdown = CancellationToken::new();
        let task = tokio::spawn(userstream::registry::serve(
            listener,
            pool,
            shutdown.clone(),
        ));
        let http = reqwest::Client::new();
        common::eventually("the empty registry answers", DEADLINE, || async {
            let answer = http.get(format!("{url}/subjects")).send().await?;
            Ok(answer.status().is_success().then_some(()))
        })
        .await?;
        Ok(Self {
            url,
            shutdown,
            task,
            _database: database,
        })
    }

    async fn stop(self) -> anyhow::Result<()> {
        self.shutdown.cancel();
        self.task.await??;
        Ok(())
    }
}

fn replay_args(pipeline: &TestPipeline, kinds: &[&str]) -> ReplayArgs {
    ReplayArgs {
        selection: Selection {
            kafka: common::kafka_args(),
            topic: pipeline.topic_args(),
            kinds: kinds.iter().map(|kind| (*kind).to_owned()).collect(),
            since: None,
            read_timeout: Duration::from_secs(30),
        },
        postgres: PostgresArgs {
            pg_url: Secret::new(pipeline.database.url.clone()),
        },
        again: false,
    }
}

/// The poison is real and its cause removable: the processor was pointed at a registry that
/// lacks the writer schemas (a second, empty `userstream registry`, as after a registry restored
/// without its data or a wrong URL in a deployment). It dead-letters every change as
/// `unknown_schema` — the registry's definitive 40403, so rightly not retried. The cause is
/// removed by restarting the processor with the right registry; the replay then gets every
/// valid change into Cassandra, and a second replay produces nothing. One user is poison for a
/// second reason (no country can be derived): its replay is dead-lettered again, and the second
/// replay leaves that one alone too.
///
/// (A message whose schema id is unknown everywhere is no replay case: nothing will make it
/// decodable. Nor is a normalization rule a test can fix.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replay_writes_dead_letters_once_their_cause_is_fixed_and_only_once() -> anyhow::Result<()>
{
    let mut pipeline = TestPipeline::new("ops_replay").await?;
    let wrong = EmptyRegistry::start().await?;
    let mut misconfigured = pipeline.processor_config();
    misconfigured.registry = SchemaRegistryArgs {
        url: wrong.url.clone(),
    };
    pipeline.start_processor_with(misconfigured);
    let valid = [
        sample_user("d-1", "Ada"),
        sample_user("d-2", "Grace"),
        sample_user("d-3", "Edsger"),
    ];
    let (mut stateless, raw) = sample_user("d-4", "Nowhere");
    stateless.nat = None;
    stateless.country = None;
    let mut users = valid.to_vec();
    users.push((stateless, raw));
    pipeline.upsert(&users).await?;
    pipeline.start_cdc();
    let selection = replay_args(&pipeline, &["unknown_schema"]).selection;
    let listed = pipeline
        .eventually("every change is dead-lettered", DEADLINE, || async {
            let listed = dead_letters::list(&selection).await?;
            Ok((listed.len() == 4).then_some(listed))
        })
        .await?;
    for letter in &listed {
        ensure!(letter.original_topic.as_deref() == Some(pipeline.topic.as_str()));
        ensure!(letter.original_partition.is_some() && letter.original_offset.is_some());
        ensure!(
            letter
                .error_message
                .as_deref()
                .is_some_and(|m| m.contains("40403")),
            "{letter:?}"
        );
    }
    ensure!(pipeline.count("users_by_id").await? == 0);

    // The cause goes away: the processor restarts with the registry the cdc registered in.
    pipeline.stop_processor().await?;
    wrong.stop().await?;
    pipeline.start_processor();

    let never_shutdown = CancellationToken::new();
    let other_kind =
        dead_letters::replay(&replay_args(&pipeline, &["wire_format"]), &never_shutdown).await?;
    ensure!(
        other_kind.replayed_total() == 0 && other_kind.skipped_by_filter == 4,
        "{other_kind}"
    );

    let first = dead_letters::replay(&replay_args(&pipeline, &[]), &never_shutdown).await?;
    ensure!(
        first.replayed_total() == 4 && first.already_replayed == 0,
        "{first}"
    );
    let expected = valid
        .iter()
        .map(|(record, _)| {
            let normalized = userstream::normalize::normalize(record)?;
            Ok((record.id.clone(), normalized.user))
        })
        .collect::<anyhow::Result<_>>()?;
    pipeline
        .wait_until_cassandra_holds(&expected, DEADLINE)
        .await?;
    let again = pipeline
        .eventually(
            "the stateless user is dead-lettered again",
            DEADLINE,
            || async {
                let letters =
                    dead_letters::list(&replay_args(&pipeline, &["invalid_value"]).selection)
                        .await?;
                Ok((!letters.is_empty()).then_some(letters))
            },
        )
        .await?;
    ensure!(again.len() == 1, "{again:?}");
    ensure!(again[0].key.as_deref() == Some("d-4"));
    ensure!(
        again[0].replay_of.is_some(),
        "it says it is a failed replay: {:?}",
        again[0]
    );

    let second = dead_letters::replay(&replay_args(&pipeline, &[]), &never_shutdown).await?;
    ensure!(
        second.replayed_total() == 0 && second.already_replayed == 4 && second.failed_replays == 1,
        "{second}"
    );
    let copies: Vec<_> = pipeline
        .topic_messages()
        .await?
        .into_iter()
        .filter(|message| harness::header(message, dead_letters::REPLAY_OF_OFFSET).is_some())
        .collect();
    ensure!(
        copies.len() == 4,
        "{} replayed copies on the topic",
        copies.len()
    );
    for copy in &copies {
        ensure!(
            harness::header(copy, "source_ts_us").is_some(),
            "original headers kept"
        );
        ensure!(
            harness::header(copy, dead_letters::ERROR_KIND).is_none(),
            "dead-letter headers dropped"
        );
    }
    ensure!(
        pipeline.dead_letters().await?.len() == 5,
        "only the stateless user's copy was dead-lettered again"
    );
    let report = status::check(&status_config(&pipeline)).await?;
    let letters = report
        .dead_letters
        .details
        .as_ref()
        .context("dead letters")?;
    ensure!(
        letters.count == 5 && letters.replayed == Some(4),
        "{letters:?}"
    );
    ensure!(
        report
            .problems
            .iter()
            .any(|problem| problem.contains("1 not replayed")),
        "{:?}",
        report.problems
    );
    pipeline.stop_processor().await?;
    pipeline.stop_cdc().await
}

fn tail_config(pipeline: &TestPipeline, key: Option<&str>, dlq: bool) -> tail::Config {
    tail::Config {
        kafka: common::kafka_args(),
        registry: pipeline.registry_args(),
        topic: pipeline.topic_args(),
        from_beginning: true,
        key: key.map(str::to_owned),
        dead_letters: dlq,
        max_messages: None,
        until_end: true,
        kafka_timeout: Duration::from_secs(10),
    }
}

async fn tail_lines(config: &tail::Config) -> anyhow::Result<Vec<Line>> {
    let mut lines = Vec::new();
    let mut collect = |line: &Line| {
        // Through the JSON a person sees: what is printed must read back as the same line.
        let text = serde_json::to_string(line).map_err(std::io::Error::other)?;
        lines.push(serde_json::from_str(&text).map_err(std::io::Error::other)?);
        Ok(())
    };
    tokio::time::timeout(
        DEADLINE,
        tail::tail(config, &CancellationToken::new(), &mut collect),
    )
    .await
    .context("tail did not reach the end")??;
    Ok(lines)
}

/// `tail --from-beginning` shows every change decoded (key, op, source time, coordinates, the
/// user), `--key` one user's versions in order, and `--dlq` the dead letters with their reason.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tail_prints_the_topic_decoded_and_follows_one_key() -> anyhow::Result<()> {
    let mut pipeline = TestPipeline::new("ops_tail").await?;
    pipeline
        .upsert(&[sample_user("t-1", "Ada"), sample_user("t-2", "Grace")])
        .await?;
    pipeline.upsert(&[sample_user("t-1", "Augusta")]).await?;
    userstream::store::delete_user(&pipeline.pg, "t-2").await?;
    pipeline.start_cdc();
    pipeline
        .eventually("four changes on the topic", DEADLINE, || async {
            Ok((pipeline.topic_len().await? == 4).then_some(()))
        })
        .await?;

    let every = tail_lines(&tail_config(&pipeline, None, false)).await?;
    ensure!(every.len() == 4, "{every:#?}");
    for line in &every {
        ensure!(line.topic == pipeline.topic);
        ensure!(
            line.source_ts.is_some() && line.source_txid.is_some(),
            "{line:?}"
        );
        ensure!(line.decode_error.is_none(), "{line:?}");
        if line.op.as_deref() == Some("d") {
            ensure!(
                line.value.is_none() && line.key.as_deref() == Some("t-2"),
                "{line:?}"
            );
        } else {
            let value = line.value.as_ref().context("a value")?;
            ensure!(Some(&value.id) == line.key.as_ref(), "{line:?}");
            ensure!(line.schema_id.is_some(), "{line:?}");
        }
    }

    let one = tail_lines(&tail_config(&pipeline, Some("t-1"), false)).await?;
    let versions: Vec<(Option<&str>, Option<&str>)> = one
        .iter()
        .map(|line| {
            (
                line.op.as_deref(),
                line.value
                    .as_ref()
                    .and_then(|value| value.first_name.as_deref()),
            )
        })
        .collect();
    ensure!(
        versions == [(Some("c"), Some("Ada")), (Some("u"), Some("Augusta"))],
        "{versions:?}"
    );
    ensure!(one[0].partition == one[1].partition && one[0].offset < one[1].offset);

    let producer = harness::producer()?;
    let now = chrono::Utc::now().timestamp_micros().to_string();
    harness::produce(
        &producer,
        &pipeline.topic,
        Some(1),
        "t-poison",
        Some(b"not avro".as_slice()),
        &[("op", "c"), ("source_ts_us", now.as_str())],
    )
    .await?;
    pipeline.start_processor();
    pipeline
        .eventually("the poison is dead-lettered", DEADLINE, || async {
            Ok((!pipeline.dead_letters().await?.is_empty()).then_some(()))
        })
        .await?;
    let letters = tail_lines(&tail_config(&pipeline, None, true)).await?;
    ensure!(letters.len() == 1, "{letters:#?}");
    let letter = &letters[0];
    ensure!(letter.key.as_deref() == Some("t-poison"));
    ensure!(
        letter.error_kind.as_deref() == Some("wire_format"),
        "{letter:?}"
    );
    ensure!(letter.original_partition == Some(1), "{letter:?}");
    ensure!(
        letter.decode_error.is_some() && letter.value.is_none(),
        "{letter:?}"
    );
    pipeline.stop_processor().await?;
    pipeline.stop_cdc().await
}
