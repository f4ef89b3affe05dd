-- The session whose open transaction is the oldest to hold the cluster's xmin back (this one
-- excluded): while it is open, the CDC poller cannot pass its xid. Its query text is not read:
-- it may carry values that do not belong in a status screen.
SELECT pid, datname::text, usename::text, application_name, state, xact_start
FROM pg_stat_activity
WHERE (backend_xid IS NOT NULL OR backend_xmin IS NOT NULL)
  AND pid <> pg_backend_pid()
ORDER BY xact_start NULLS LAST
LIMIT 1
