-- brisk PostgreSQL schema, version 1: tables, indexes and the counters by state.
--
-- {{schema}} is replaced by the broker's schema (URL parameter schema, default brisk).
-- A task is stored in one of three states: 'pending' (which also covers scheduled:
-- ready_at in the future), 'running' and 'dead'. Done tasks are deleted and counted.

CREATE TABLE {{schema}}.queues (
    name   text    PRIMARY KEY,
    sla_ns bigint  NOT NULL DEFAULT 0,
    paused boolean NOT NULL DEFAULT false
);

CREATE TABLE {{schema}}.tasks (
    id           text        PRIMARY KEY,
    seq          bigint      NOT NULL GENERATED ALWAYS AS IDENTITY, -- enqueue order, the FIFO tie-break
    queue        text        NOT NULL,
    type         text        NOT NULL,
    payload      bytea       NOT NULL,
    state        text        NOT NULL CHECK (state IN ('pending', 'running', 'dead')),
    attempt      integer     NOT NULL DEFAULT 0,
    max_attempts integer     NOT NULL,
    timeout_ns   bigint      NOT NULL DEFAULT 0,
    enqueued_at  timestamptz NOT NULL,
    ready_at     timestamptz NOT NULL,
    started_at   timestamptz,
    lease_until  timestamptz,
    lease_token  text,
    worker_id    text,
    last_error   text,
    failed_at    timestamptz,
    headers      jsonb        -- a JSON object of strings; NULL for none
);

-- Every update of a task changes its state, which the partial indexes below depend on, so
-- none is a HOT update: each one adds an entry to every index whose predicate the new row
-- meets. The table therefore has as few indexes as the questions need: no index on seq
-- (statements find the rows they locked by ctid) and none on worker_id (ReleaseWorker
-- reads the running tasks, which are few).
--
-- Reserve, queue latency, Wait and the pending/scheduled listings: the oldest ready task
-- of a queue is the first entry of its range.
CREATE INDEX tasks_pending ON {{schema}}.tasks (queue, ready_at, seq) WHERE state = 'pending';
-- Reclaiming expired leases, the next lease expiry for Wait, ReleaseWorker.
CREATE INDEX tasks_running ON {{schema}}.tasks (queue, lease_until) WHERE state = 'running';
-- The dead listing, RetryDead and Delete of dead tasks.
CREATE INDEX tasks_dead ON {{schema}}.tasks (queue, ready_at, seq) WHERE state = 'dead';

-- Counters as deltas: every statement that changes tasks appends one row per queue it
-- touched (the triggers below for the states, the broker for completed and failed), and
-- Stats adds them up. Appending takes no lock that another transaction waits for, so an
-- enqueue inside an application's long transaction never blocks other writers of the
-- queue, as one counter row per queue would. The broker folds the rows of a queue into
-- one now and then (so no index: every reader reads them all). waiting = pending +
-- scheduled.
CREATE TABLE {{schema}}.counts (
    queue     text   NOT NULL,
    waiting   bigint NOT NULL DEFAULT 0,
    running   bigint NOT NULL DEFAULT 0,
    dead      bigint NOT NULL DEFAULT 0,
    completed bigint NOT NULL DEFAULT 0,
    failed    bigint NOT NULL DEFAULT 0
);

CREATE FUNCTION {{schema}}.count_insert() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO {{schema}}.counts (queue, waiting, running, dead)
    SELECT queue, count(*) FILTER (WHERE state = 'pending'), count(*) FILTER (WHERE state = 'running'),
        count(*) FILTER (WHERE state = 'dead')
    FROM new_rows GROUP BY queue;
    RETURN NULL;
END $$;

CREATE FUNCTION {{schema}}.count_delete() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO {{schema}}.counts (queue, waiting, running, dead)
    SELECT queue, -count(*) FILTER (WHERE state = 'pending'), -count(*) FILTER (WHERE state = 'running'),
        -count(*) FILTER (WHERE state = 'dead')
    FROM old_rows GROUP BY queue;
    RETURN NULL;
END $$;

CREATE FUNCTION {{schema}}.count_update() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO {{schema}}.counts (queue, waiting, running, dead)
    SELECT queue, sum(waiting), sum(running), sum(dead)
    FROM (
        SELECT queue, (state = 'pending')::int AS waiting, (state = 'running')::int AS running, (state = 'dead')::int AS dead
        FROM new_rows
        UNION ALL
        SELECT queue, -(state = 'pending')::int, -(state = 'running')::int, -(state = 'dead')::int
        FROM old_rows
    ) d
    GROUP BY queue
    HAVING sum(waiting) <> 0 OR sum(running) <> 0 OR sum(dead) <> 0;
    RETURN NULL;
END $$;

CREATE TRIGGER tasks_count_insert AFTER INSERT ON {{schema}}.tasks
    REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION {{schema}}.count_insert();
CREATE TRIGGER tasks_count_delete AFTER DELETE ON {{schema}}.tasks
    REFERENCING OLD TABLE AS old_rows FOR EACH STATEMENT EXECUTE FUNCTION {{schema}}.count_delete();
CREATE TRIGGER tasks_count_update AFTER UPDATE ON {{schema}}.tasks
    REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION {{schema}}.count_update();

CREATE TABLE {{schema}}.workers (
    id          text        PRIMARY KEY,
    host        text        NOT NULL DEFAULT '',
    pid         integer     NOT NULL DEFAULT 0,
    queues      text[]      NOT NULL DEFAULT '{}',
    concurrency integer     NOT NULL DEFAULT 0,
    busy        integer     NOT NULL DEFAULT 0,
    started_at  timestamptz,
    last_seen   timestamptz NOT NULL,
    version     text        NOT NULL DEFAULT ''
);
