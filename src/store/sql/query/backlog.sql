-- How far behind a CDC consumer is, in time, whatever it has produced lately:
--   1. the source time of the oldest change after its position, committed or not yet visible to
--      it (a change of a transaction that is still open counts from when it was written);
--   2. when the oldest transaction that holds the cluster's xmin back started: while it is open,
--      the poller cannot pass its xid, so the changes behind it wait however old they get.
-- $1 watermark, ($2, $3) the last change emitted.
SELECT
    (SELECT min(source_ts)
     FROM user_changes
     WHERE xid >= $1::text::xid8
       AND (xid, seq) > ($2::text::xid8, $3::bigint)) AS oldest_unproduced,
    (SELECT min(xact_start)
     FROM pg_stat_activity
     WHERE backend_xid IS NOT NULL OR backend_xmin IS NOT NULL) AS oldest_open_transaction
