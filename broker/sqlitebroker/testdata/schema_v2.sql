-- brisk SQLite schema, version 2 (PRAGMA user_version = 2), kept to test the migration to 3.
--
-- Version 2 added queues.paused; Open migrates a version 1 file with
-- ALTER TABLE queues ADD COLUMN paused INTEGER NOT NULL DEFAULT 0.
--
-- Times are INTEGER Unix nanoseconds. A task is stored in one of three states:
-- 'pending' (which also covers scheduled: ready_at in the future), 'running' and 'dead'.
-- Done tasks are deleted and counted in queues.completed.

CREATE TABLE IF NOT EXISTS tasks (
    seq          INTEGER PRIMARY KEY,  -- enqueue order, the FIFO tie-break
    id           TEXT    NOT NULL UNIQUE,
    queue        TEXT    NOT NULL,
    type         TEXT,
    payload      BLOB,
    state        TEXT    NOT NULL,
    attempt      INTEGER NOT NULL DEFAULT 0,
    max_attempts INTEGER,
    timeout_ns   INTEGER NOT NULL DEFAULT 0,
    enqueued_at  INTEGER,
    ready_at     INTEGER,
    started_at   INTEGER,
    lease_until  INTEGER,
    lease_token  TEXT,
    worker_id    TEXT,
    last_error   TEXT,
    failed_at    INTEGER
);

-- Reserve, queue latency, Wait and the pending/scheduled listings: the oldest ready task
-- of a queue is the first entry of its range.
CREATE INDEX IF NOT EXISTS tasks_pending ON tasks (queue, ready_at, seq) WHERE state = 'pending';
-- Reclaiming expired leases and the next lease expiry for Wait.
CREATE INDEX IF NOT EXISTS tasks_running ON tasks (queue, lease_until) WHERE state = 'running';
-- ReleaseWorker.
CREATE INDEX IF NOT EXISTS tasks_worker ON tasks (worker_id) WHERE state = 'running';
-- The dead listing, RetryDead and Delete of dead tasks.
CREATE INDEX IF NOT EXISTS tasks_dead ON tasks (queue, ready_at, seq) WHERE state = 'dead';

-- One row per known queue with its settings and counters, so that Stats reads counts
-- instead of counting rows. waiting = pending + scheduled. The state counters are kept
-- by the triggers below (so they stay right even when rows are changed by hand);
-- completed and failed are events, counted by the broker in the same transaction.
CREATE TABLE IF NOT EXISTS queues (
    name      TEXT    PRIMARY KEY,
    sla_ns    INTEGER NOT NULL DEFAULT 0,
    waiting   INTEGER NOT NULL DEFAULT 0,
    running   INTEGER NOT NULL DEFAULT 0,
    dead      INTEGER NOT NULL DEFAULT 0,
    completed INTEGER NOT NULL DEFAULT 0,
    failed    INTEGER NOT NULL DEFAULT 0,
    paused    INTEGER NOT NULL DEFAULT 0  -- 1 while paused (Reserve skips the queue)
) WITHOUT ROWID;

CREATE TRIGGER IF NOT EXISTS tasks_count_insert AFTER INSERT ON tasks
BEGIN
    UPDATE queues SET
        waiting = waiting + (NEW.state = 'pending'),
        running = running + (NEW.state = 'running'),
        dead    = dead    + (NEW.state = 'dead')
    WHERE name = NEW.queue;
END;

CREATE TRIGGER IF NOT EXISTS tasks_count_delete AFTER DELETE ON tasks
BEGIN
    UPDATE queues SET
        waiting = waiting - (OLD.state = 'pending'),
        running = running - (OLD.state = 'running'),
        dead    = dead    - (OLD.state = 'dead')
    WHERE name = OLD.queue;
END;

-- A change of state within one queue (the broker's only kind of update) is one UPDATE.
CREATE TRIGGER IF NOT EXISTS tasks_count_state AFTER UPDATE OF state ON tasks
WHEN OLD.state IS NOT NEW.state AND OLD.queue IS NEW.queue
BEGIN
    UPDATE queues SET
        waiting = waiting + (NEW.state = 'pending') - (OLD.state = 'pending'),
        running = running + (NEW.state = 'running') - (OLD.state = 'running'),
        dead    = dead    + (NEW.state = 'dead')    - (OLD.state = 'dead')
    WHERE name = NEW.queue;
END;

-- A task moved to another queue by hand.
CREATE TRIGGER IF NOT EXISTS tasks_count_move AFTER UPDATE OF queue ON tasks
WHEN OLD.queue IS NOT NEW.queue
BEGIN
    UPDATE queues SET
        waiting = waiting - (OLD.state = 'pending'),
        running = running - (OLD.state = 'running'),
        dead    = dead    - (OLD.state = 'dead')
    WHERE name = OLD.queue;
    UPDATE queues SET
        waiting = waiting + (NEW.state = 'pending'),
        running = running + (NEW.state = 'running'),
        dead    = dead    + (NEW.state = 'dead')
    WHERE name = NEW.queue;
END;

CREATE TABLE IF NOT EXISTS workers (
    id          TEXT    PRIMARY KEY,
    host        TEXT    NOT NULL DEFAULT '',
    pid         INTEGER NOT NULL DEFAULT 0,
    queues      TEXT    NOT NULL DEFAULT 'null', -- JSON array of queue names
    concurrency INTEGER NOT NULL DEFAULT 0,
    busy        INTEGER NOT NULL DEFAULT 0,
    started_at  INTEGER NOT NULL DEFAULT 0,
    last_seen   INTEGER NOT NULL DEFAULT 0,
    version     TEXT    NOT NULL DEFAULT ''
) WITHOUT ROWID;
