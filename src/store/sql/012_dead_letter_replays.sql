-- Dead letters `userstream dead-letters replay` re-produced to the main topic, one row per dead
-- letter, written only after Kafka acknowledged the replayed message: a second replay skips what
-- is here, so it never produces a dead letter twice. A message the processor dead-letters again
-- after its replay gets a new dead-letter offset, and so a row of its own when replayed again.
CREATE TABLE IF NOT EXISTS dead_letter_replays (
    dlq_topic             text        NOT NULL,
    dlq_partition         integer     NOT NULL,
    dlq_offset            bigint      NOT NULL,
    error_kind            text,
    original_partition    integer,
    original_offset       bigint,
    replayed_to_topic     text        NOT NULL,
    replayed_to_partition integer     NOT NULL,
    replayed_to_offset    bigint      NOT NULL,
    replayed_at           timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (dlq_topic, dlq_partition, dlq_offset)
);
