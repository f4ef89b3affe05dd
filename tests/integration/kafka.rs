//! The broker at `USERSTREAM_KAFKA_BROKERS`, driven with the same client configuration the
//! pipeline uses: idempotent keyed produce with headers, a consumer group with manually stored
//! offsets, and committed offsets that outlive the consumer that committed them.

use std::collections::BTreeMap;
use std::time::Duration;

use anyhow::{ensure, Context};
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::consumer::{CommitMode, Consumer, StreamConsumer};
use rdkafka::message::{BorrowedMessage, Header, Headers, Message, OwnedHeaders};
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::{Offset, TopicPartitionList};
use userstream::kafka::{consumer_config, producer_config};

use crate::common::{self, eventually, kafka_args, TestTopics, DEFAULT_DEADLINE};

/// Creates `name`; it is deleted when the returned guard is dropped.
async fn create_topic(name: &str, partitions: i32) -> anyhow::Result<TestTopics> {
    let guard = TestTopics::new([name.to_owned()]);
    let admin: AdminClient<DefaultClientContext> = producer_config(&kafka_args())
        .create()
        .context("creating the admin client")?;
    let results = admin
        .create_topics(
            &[NewTopic::new(name, partitions, TopicReplication::Fixed(1))],
            &AdminOptions::new().operation_timeout(Some(Duration::from_secs(10))),
        )
        .await
        .context("CreateTopics request")?;
    for result in results {
        result.map_err(|(topic, code)| anyhow::anyhow!("creating topic {topic}: {code}"))?;
    }
    Ok(guard)
}

fn producer() -> anyhow::Result<FutureProducer> {
    Ok(producer_config(&kafka_args()).create()?)
}

fn consumer(group: &str, topic: &str) -> anyhow::Result<StreamConsumer> {
    let consumer: StreamConsumer = consumer_config(&kafka_args(), group).create()?;
    consumer.subscribe(&[topic])?;
    Ok(consumer)
}

async fn next_message(consumer: &StreamConsumer) -> anyhow::Result<BorrowedMessage<'_>> {
    tokio::time::timeout(DEFAULT_DEADLINE, consumer.recv())
        .await
        .context("no message within the deadline")?
        .context("consumer error")
}

fn header<'a>(message: &'a BorrowedMessage<'_>, key: &str) -> Option<&'a [u8]> {
    message
        .headers()?
        .iter()
        .find(|header| header.key == key)
        .and_then(|header| header.value)
}

#[tokio::test]
async fn keyed_messages_keep_per_key_order_and_headers_in_a_consumer_group() -> anyhow::Result<()> {
    let topic = common::unique_name("it_kafka_order");
    let _topic = create_topic(&topic, 3).await?;
    let producer = producer()?;
    let keys: Vec<String> = (0..10).map(|i| format!("user-{i}")).collect();
    for version in 0..3 {
        for key in &keys {
            let payload = format!("{key}:v{version}");
            let headers = OwnedHeaders::new()
                .insert(Header {
                    key: "op",
                    value: Some(if version == 0 { "c" } else { "u" }),
                })
                .insert(Header {
                    key: "source_ts_us",
                    value: Some(&version.to_string()),
                });
            producer
                .send(
                    FutureRecord::to(&topic)
                        .key(key)
                        .payload(&payload)
                        .headers(headers),
                    Duration::from_secs(10),
                )
                .await
                .map_err(|(error, _)| error)
                .with_context(|| format!("producing {payload}"))?;
        }
    }

    let consumer = consumer(&common::unique_name("it_group"), &topic)?;
    let mut seen: BTreeMap<String, Vec<(i32, String, String)>> = BTreeMap::new();
    for _ in 0..30 {
        let message = next_message(&consumer).await?;
        let key = String::from_utf8(message.key().context("message without key")?.to_vec())?;
        let payload = String::from_utf8(message.payload().context("empty payload")?.to_vec())?;
        let op = String::from_utf8(
            header(&message, "op")
                .context("op header missing")?
                .to_vec(),
        )?;
        consumer.store_offset_from_message(&message)?;
        seen.entry(key)
            .or_default()
            .push((message.partition(), payload, op));
    }

    assert_eq!(seen.len(), keys.len(), "every key arrives");
    for (key, versions) in &seen {
        let payloads: Vec<&str> = versions
            .iter()
            .map(|(_, payload, _)| payload.as_str())
            .collect();
        assert_eq!(
            payloads,
            vec![
                format!("{key}:v0"),
                format!("{key}:v1"),
                format!("{key}:v2")
            ],
            "versions of {key} arrive in produce order"
        );
        assert!(
            versions
                .iter()
                .all(|(partition, _, _)| *partition == versions[0].0),
            "all versions of {key} share one partition"
        );
        let ops: Vec<&str> = versions.iter().map(|(_, _, op)| op.as_str()).collect();
        assert_eq!(
            ops,
            ["c", "u", "u"],
            "headers of {key} survive the round trip"
        );
    }
    Ok(())
}

#[tokio::test]
async fn committed_offset_survives_a_consumer_restart() -> anyhow::Result<()> {
    let topic = common::unique_name("it_kafka_commit");
    let group = common::unique_name("it_group");
    let _topic = create_topic(&topic, 1).await?;
    let producer = producer()?;
    for i in 0..10 {
        producer
            .send(
                FutureRecord::to(&topic).key("k").payload(&format!("m{i}")),
                Duration::from_secs(10),
            )
            .await
            .map_err(|(error, _)| error)?;
    }

    {
        let first = consumer(&group, &topic)?;
        for expected in 0..4 {
            let message = next_message(&first).await?;
            assert_eq!(message.payload(), Some(format!("m{expected}").as_bytes()));
            first.store_offset_from_message(&message)?;
        }
        first.commit_consumer_state(CommitMode::Sync)?;
    }

    let second = consumer(&group, &topic)?;
    let message = next_message(&second).await?;
    assert_eq!(
        (message.offset(), message.payload()),
        (4, Some(&b"m4"[..])),
        "the restarted consumer resumes right after the committed offset"
    );

    let mut partition = TopicPartitionList::new();
    partition.add_partition(&topic, 0);
    let committed = eventually("the committed offset is visible", DEFAULT_DEADLINE, || {
        let offset = second
            .committed_offsets(partition.clone(), Duration::from_secs(5))
            .map(|list| {
                list.find_partition(&topic, 0)
                    .map(|element| element.offset())
            });
        async move { Ok(offset?.filter(|offset| *offset != Offset::Invalid)) }
    })
    .await?;
    ensure!(
        committed == Offset::Offset(4),
        "committed offset is {committed:?}, expected 4"
    );
    Ok(())
}
