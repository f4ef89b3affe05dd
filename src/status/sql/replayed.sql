-- How many dead letters of one dead-letter topic `dead-letters replay` has re-produced.
-- $1 dead-letter topic.
SELECT count(*) FROM dead_letter_replays WHERE dlq_topic = $1
