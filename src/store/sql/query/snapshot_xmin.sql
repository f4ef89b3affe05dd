-- The xmin of the current snapshot (every xid below it had ended), and whether committed changes
-- already wait at or above it: those are visible to this snapshot, so they have committed, but
-- an older transaction still open keeps the poller from passing them.
SELECT s.xmin::text, EXISTS (SELECT 1 FROM user_changes c WHERE c.xid >= s.xmin)
FROM (SELECT pg_snapshot_xmin(pg_current_snapshot()) AS xmin) s
