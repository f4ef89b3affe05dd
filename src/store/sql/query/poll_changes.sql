-- The next changes after a consumer's position, all from transactions that had ended before the
-- caller took $4 (the xmin of an earlier snapshot): those are final, nothing can join them later.
-- $1 watermark, ($2, $3) the last change emitted, $4 the snapshot's xmin, $5 the batch size.
SELECT xid::text AS xid, seq, op, user_id, source_ts, after, before
FROM user_changes
WHERE xid >= $1::text::xid8
  AND (xid, seq) > ($2::text::xid8, $3::bigint)
  AND xid < $4::text::xid8
ORDER BY xid, seq
LIMIT $5
