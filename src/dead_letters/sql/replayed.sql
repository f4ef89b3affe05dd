-- The dead letters of one dead-letter topic that were already replayed. $1 dead-letter topic.
SELECT dlq_partition, dlq_offset
FROM dead_letter_replays
WHERE dlq_topic = $1
