-- Deletes the changes every registered consumer has passed: below its watermark, or at or
-- before the last change it emitted. With no consumer registered nothing has been passed, and
-- while any cursor belongs to another cluster or lies ahead of every transaction here (see
-- 006_cdc_cursor_cluster.sql) nothing is deleted: such a cursor has passed nothing of this log.
DELETE FROM user_changes c
WHERE EXISTS (SELECT 1 FROM cdc_cursors)
  AND NOT EXISTS (
      SELECT 1
      FROM cdc_cursors k
      WHERE k.watermark > pg_snapshot_xmax(pg_current_snapshot())
         OR k.system_identifier IS DISTINCT FROM (SELECT system_identifier FROM pg_control_system())
  )
  AND NOT EXISTS (
      SELECT 1
      FROM cdc_cursors k
      WHERE c.xid >= k.watermark
        AND (k.last_xid IS NULL OR (c.xid, c.seq) > (k.last_xid, k.last_seq))
  )
