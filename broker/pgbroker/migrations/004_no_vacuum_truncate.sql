-- brisk PostgreSQL schema, version 4: VACUUM never truncates the tables that churn.
--
-- After a burst drains, the tail pages of tasks and counts are empty, and VACUUM's last
-- step would give them back to the file system: it takes an ACCESS EXCLUSIVE lock on the
-- table and holds it while it checks that the pages are still empty. Every enqueue, reserve
-- and ack writes those tables, so each of them waits behind that lock (tens of ms, up to
-- hundreds under load), which shows as the tail of pickup latency. The pages are reused by
-- the next burst anyway; keep them.
ALTER TABLE {{schema}}.tasks SET (vacuum_truncate = false);
ALTER TABLE {{schema}}.counts SET (vacuum_truncate = false);
