-- An abandoned slot retains WAL forever: the run drops its own at the end.
SELECT pg_drop_replication_slot($1)
