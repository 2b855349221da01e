-- brisk PostgreSQL schema, version 2: wake-up of idle workers, and vacuum settings for
-- the tables that churn.
--
-- Every statement that leaves tasks pending (enqueue, retry, release, retry of dead tasks,
-- release of a dead worker's tasks) notifies the channel '{{channel}}' once per queue,
-- with the queue's name as payload. PostgreSQL delivers a notification when the
-- transaction commits and never for one that rolls back, so a worker is woken exactly
-- when a task of an application's transaction becomes visible.

CREATE FUNCTION {{schema}}.wake() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('{{channel}}', queue) FROM (SELECT DISTINCT queue FROM new_rows WHERE state = 'pending') q;
    RETURN NULL;
END $$;

CREATE TRIGGER tasks_wake_insert AFTER INSERT ON {{schema}}.tasks
    REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION {{schema}}.wake();
CREATE TRIGGER tasks_wake_update AFTER UPDATE ON {{schema}}.tasks
    REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION {{schema}}.wake();

-- Every task row is inserted, updated a few times and deleted within seconds, and every
-- statement appends to counts: vacuum them after a small share of changes instead of the
-- default 20%, so that dead rows are reclaimed before they slow index scans.
ALTER TABLE {{schema}}.tasks SET (autovacuum_vacuum_scale_factor = 0.01, autovacuum_vacuum_threshold = 1000,
    autovacuum_vacuum_insert_scale_factor = 0.01, autovacuum_analyze_scale_factor = 0.02);
ALTER TABLE {{schema}}.counts SET (autovacuum_vacuum_scale_factor = 0.01, autovacuum_vacuum_threshold = 1000,
    autovacuum_vacuum_insert_scale_factor = 0.01);

