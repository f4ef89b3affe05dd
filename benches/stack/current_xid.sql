-- The transaction's id, which the change carries to Cassandra as users_by_id.source_txid.
SELECT pg_current_xact_id()::text
