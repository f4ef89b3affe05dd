-- One replayed dead letter, recorded once Kafka acknowledged its copy on the main topic.
-- $1 dead-letter topic, $2 its partition, $3 its offset, $4 error kind, $5 original partition,
-- $6 original offset, $7 topic replayed to, $8 partition and $9 offset of the copy.
INSERT INTO dead_letter_replays (
    dlq_topic, dlq_partition, dlq_offset, error_kind, original_partition, original_offset,
    replayed_to_topic, replayed_to_partition, replayed_to_offset
)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)
ON CONFLICT (dlq_topic, dlq_partition, dlq_offset) DO NOTHING
