-- brisk PostgreSQL schema, version 3: the broker's own enqueues wake workers after their
-- commit instead of inside it.
--
-- A transaction that notifies holds PostgreSQL's notification lock from its pre-commit
-- until its commit record is flushed, so durable transactions that notify commit one at a
-- time: concurrent enqueues could not share a WAL flush (1,100-1,600 commits/s with 16
-- clients here, against 5,600-6,200 without the notification). Broker.Enqueue therefore
-- sets brisk.defer_wake for its own statement, which this trigger honours, and notifies in
-- a statement of its own after the commit, which does not wait for the flush. Enqueues
-- inside an application's transaction (EnqueueTx) do not set it: their notification is
-- sent when that transaction commits, and never when it rolls back.
CREATE OR REPLACE FUNCTION {{schema}}.wake() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF current_setting('brisk.defer_wake', true) = 'on' THEN
        RETURN NULL;
    END IF;
    PERFORM pg_notify('{{channel}}', queue) FROM (SELECT DISTINCT queue FROM new_rows WHERE state = 'pending') q;
    RETURN NULL;
END $$;
