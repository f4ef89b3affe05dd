-- Which PostgreSQL cluster a CDC cursor's watermark belongs to. A transaction id means nothing in
-- another cluster: after a dump and restore, an upgrade by logical replication or a move, the
-- stored watermark may lie above every transaction of the new cluster, and polling from it would
-- return nothing, forever, while pruning deleted every new change. The poller compares this with
-- pg_control_system() before it uses the cursor (a cursor stored before this column existed is
-- claimed by the cluster that first reads it).

ALTER TABLE cdc_cursors ADD COLUMN IF NOT EXISTS system_identifier bigint;
