-- Whether the replication slot $1 exists (a row) and a client streams from it (its value).
SELECT active FROM pg_replication_slots WHERE slot_name = $1
