//! Kafka client configuration shared by the producer (`cdc`) and the consumer (`process`).
//!
//! Our defaults encode the delivery contract (idempotent producer, manual offset store); the
//! user's pass-through options are applied last so that an operator can still tune anything
//! librdkafka offers (security, batching, timeouts) without a new flag.

use rdkafka::ClientConfig;

use crate::config::KafkaArgs;

/// Where the processor puts messages it cannot decode or validate.
pub fn dead_letter_topic(topic: &str) -> String {
    format!("{topic}.dlq")
}

/// A producer that never duplicates or reorders within a partition on retry, waits for every
/// in-sync replica, and compresses. It lingers a little to fill large batches (CDC keeps several
/// batches of changes in flight, so throughput, not one message's latency, is what counts).
pub fn producer_config(args: &KafkaArgs) -> ClientConfig {
    let mut config = ClientConfig::new();
    config
        .set("bootstrap.servers", &args.brokers)
        .set("enable.idempotence", "true")
        .set("acks", "all")
        .set("compression.type", "lz4")
        .set("linger.ms", "10")
        .set("batch.num.messages", "10000")
        .set("batch.size", "1048576");
    overlay(config, args)
}

/// A consumer in `group_id` that stores an offset only when told to (after the record's write),
/// and auto-commits what was stored.
pub fn consumer_config(args: &KafkaArgs, group_id: &str) -> ClientConfig {
    let mut config = ClientConfig::new();
    config
        .set("bootstrap.servers", &args.brokers)
        .set("group.id", group_id)
        .set("enable.auto.commit", "true")
        .set("enable.auto.offset.store", "false")
        .set("auto.offset.reset", "earliest")
        .set("enable.partition.eof", "false")
        // librdkafka prefetches up to 64 MiB per consumer by default, most of a processor's
        // memory; 16 MiB still holds tens of thousands of messages ahead of the writes.
        .set("queued.max.messages.kbytes", "16384");
    let mut config = overlay(config, args);
    for (key, value) in &args.consumer_options {
        config.set(key, value);
    }
    config
}

fn overlay(mut config: ClientConfig, args: &KafkaArgs) -> ClientConfig {
    for (key, value) in args.options() {
        config.set(key, value);
    }
    config
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(options: &[(&str, &str)]) -> KafkaArgs {
        KafkaArgs {
            brokers: "b1:9092,b2:9092".to_owned(),
            librdkafka_options: options
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            consumer_options: vec![("session.timeout.ms".to_owned(), "6000".to_owned())],
        }
    }

    #[test]
    fn producer_is_idempotent_unless_overridden() {
        let config = producer_config(&args(&[]));
        assert_eq!(config.get("enable.idempotence"), Some("true"));
        assert_eq!(config.get("acks"), Some("all"));
        assert_eq!(config.get("bootstrap.servers"), Some("b1:9092,b2:9092"));

        let tuned = producer_config(&args(&[("compression.type", "zstd")]));
        assert_eq!(tuned.get("compression.type"), Some("zstd"));
    }

    #[test]
    fn consumer_stores_offsets_manually() {
        let config = consumer_config(&args(&[("security.protocol", "SSL")]), "g");
        assert_eq!(config.get("enable.auto.offset.store"), Some("false"));
        assert_eq!(config.get("group.id"), Some("g"));
        assert_eq!(config.get("security.protocol"), Some("SSL"));
        assert_eq!(config.get("session.timeout.ms"), Some("6000"));
        assert_eq!(producer_config(&args(&[])).get("session.timeout.ms"), None);
    }
}
