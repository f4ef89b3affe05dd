-- Deletes the changes every registered consumer has passed: below its watermark, or at or
-- before the last change it emitted. With no consumer registered nothing has been passed.
DELETE FROM user_changes c
WHERE EXISTS (SELECT 1 FROM cdc_cursors)
  AND NOT EXISTS (
      SELECT 1
      FROM cdc_cursors k
      WHERE c.xid >= k.watermark
        AND (k.last_xid IS NULL OR (c.xid, c.seq) > (k.last_xid, k.last_seq))
  )
