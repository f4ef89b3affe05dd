-- Where each CDC consumer is in the change log. Everything below `watermark` and everything up
-- to and including (last_xid, last_seq) has been acknowledged by Kafka.

CREATE TABLE IF NOT EXISTS cdc_cursors (
    consumer   text PRIMARY KEY,
    -- Every transaction with a smaller id had ended when the consumer last read up to here.
    watermark  xid8 NOT NULL,
    -- The last change emitted; it lets a batch limit stop in the middle of one transaction.
    last_xid   xid8,
    last_seq   bigint,
    updated_at timestamptz NOT NULL DEFAULT now(),
    CHECK ((last_xid IS NULL) = (last_seq IS NULL))
);
