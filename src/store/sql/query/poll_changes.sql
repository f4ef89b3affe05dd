-- The next changes after a consumer's position, all from transactions that had ended before the
-- caller took $4 (the xmin of an earlier snapshot): those are final, nothing can join them later.
-- $1 watermark, ($2, $3) the last change emitted, $4 the snapshot's xmin, $5 the batch size.
-- ORDER BY names the table's columns: the output column `xid` is text, and ordering by it would
-- put xid 10 before xid 9 and sort the whole backlog on every poll instead of walking the key.
SELECT c.xid::text AS xid, c.seq, c.op, c.user_id, c.source_ts, c.after, c.before
FROM user_changes c
WHERE c.xid >= $1::text::xid8
  AND (c.xid, c.seq) > ($2::text::xid8, $3::bigint)
  AND c.xid < $4::text::xid8
ORDER BY c.xid, c.seq
LIMIT $5
