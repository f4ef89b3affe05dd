-- Every CDC cursor, and how many changes of the log it has not produced yet: those after its
-- position (see store/sql/query/backlog.sql), committed or not yet visible to it.
SELECT c.consumer,
       c.watermark::text,
       c.last_xid::text,
       c.last_seq,
       c.updated_at,
       (SELECT count(*)
        FROM user_changes u
        WHERE u.xid >= c.watermark
          AND (u.xid, u.seq) > (coalesce(c.last_xid, '0'::xid8), coalesce(c.last_seq, 0))) AS unproduced
FROM cdc_cursors c
ORDER BY c.consumer
