-- Changes a CDC poller could not carry: an after image it cannot read back (a value PostgreSQL
-- stores but the change log's JSON or Avro cannot represent, e.g. a date past year 9999) or
-- cannot encode. The poller records the change here, logs it and moves on, so one bad row never
-- blocks every change behind it. Fix the row (any later change of the user carries it again),
-- then delete its entry here.
CREATE TABLE IF NOT EXISTS cdc_quarantine (
    consumer        text NOT NULL,
    xid             xid8 NOT NULL,
    seq             bigint NOT NULL,
    op              text NOT NULL,
    user_id         text NOT NULL,
    after           jsonb,
    reason          text NOT NULL,
    quarantined_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (consumer, xid, seq)
);
