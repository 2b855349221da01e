-- The schema of a version 5 store (schema.sql, the samples table, sched.sql and tasks.headers),
-- as brisk wrote it before completed tasks were kept: the start of the migration test to 6.
-- brisk SQLite schema, version 3 (PRAGMA user_version = 3).
--
-- Version 2 added queues.paused; Open migrates a version 1 file with
-- ALTER TABLE queues ADD COLUMN paused INTEGER NOT NULL DEFAULT 0.
-- Version 3 added the table samples (the dashboard's samples of queue statistics), whose
-- definition is samplesSchema in sqlitebroker.go: Open runs it after this file in a new
-- store, and as the migration from version 2.
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


CREATE TABLE IF NOT EXISTS samples (
    queue      TEXT    NOT NULL,
    second     INTEGER NOT NULL,  -- at_ms / 1000: one sample per queue and second
    at_ms      INTEGER NOT NULL,  -- Unix milliseconds
    latency_ns INTEGER NOT NULL,
    completed  INTEGER NOT NULL,
    failed     INTEGER NOT NULL,
    PRIMARY KEY (queue, second)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS samples_at ON samples (at_ms);

-- brisk SQLite schema, version 4 additions (applied to a new file after schema.sql and
-- the samples table, and as the migration of a version 3 file): uniqueness locks, cancelled tasks, leaderships,
-- periodic schedules and limits. Additive only: nothing of version 2 changes.

-- A uniqueness lock: task_id of queue holds key until (Unix ns), whatever becomes of it.
CREATE TABLE IF NOT EXISTS unique_locks (
    queue   TEXT    NOT NULL,
    key     TEXT    NOT NULL,
    task_id TEXT    NOT NULL,
    until   INTEGER NOT NULL,
    PRIMARY KEY (queue, key)
) WITHOUT ROWID;
-- Purging expired locks.
CREATE INDEX IF NOT EXISTS unique_locks_until ON unique_locks (until);

-- Cancelled tasks keep state 'cancelled': listed through this index, counted in
-- queues.cancelled by the triggers below (the version 1 triggers ignore the state).
ALTER TABLE queues ADD COLUMN cancelled INTEGER NOT NULL DEFAULT 0;
CREATE INDEX IF NOT EXISTS tasks_cancelled ON tasks (queue, ready_at, seq) WHERE state = 'cancelled';

CREATE TRIGGER IF NOT EXISTS tasks_count_cancelled_insert AFTER INSERT ON tasks
WHEN NEW.state = 'cancelled'
BEGIN
    UPDATE queues SET cancelled = cancelled + 1 WHERE name = NEW.queue;
END;

CREATE TRIGGER IF NOT EXISTS tasks_count_cancelled_delete AFTER DELETE ON tasks
WHEN OLD.state = 'cancelled'
BEGIN
    UPDATE queues SET cancelled = cancelled - 1 WHERE name = OLD.queue;
END;

CREATE TRIGGER IF NOT EXISTS tasks_count_cancelled_state AFTER UPDATE OF state, queue ON tasks
WHEN (OLD.state = 'cancelled') IS NOT (NEW.state = 'cancelled') OR OLD.queue IS NOT NEW.queue
BEGIN
    UPDATE queues SET cancelled = cancelled - (OLD.state = 'cancelled') WHERE name = OLD.queue;
    UPDATE queues SET cancelled = cancelled + (NEW.state = 'cancelled') WHERE name = NEW.queue;
END;

-- A named leadership: holder until (Unix ns), token grows at each new acquisition.
CREATE TABLE IF NOT EXISTS leaders (
    name   TEXT    PRIMARY KEY,
    holder TEXT    NOT NULL DEFAULT '',
    token  INTEGER NOT NULL DEFAULT 0,
    until  INTEGER NOT NULL DEFAULT 0
) WITHOUT ROWID;

-- Periodic schedules; spec is brisk's to parse.
CREATE TABLE IF NOT EXISTS schedules (
    name         TEXT    PRIMARY KEY,
    spec         TEXT    NOT NULL,
    queue        TEXT    NOT NULL,
    type         TEXT    NOT NULL,
    payload      BLOB    NOT NULL,
    max_attempts INTEGER NOT NULL,
    timeout_ns   INTEGER NOT NULL DEFAULT 0,
    catch_up     INTEGER NOT NULL DEFAULT 0,
    created_at   INTEGER NOT NULL,
    updated_at   INTEGER NOT NULL,
    last_run     INTEGER NOT NULL DEFAULT 0,
    last_task_id TEXT    NOT NULL DEFAULT ''
) WITHOUT ROWID;

-- Rate and concurrency limits of a queue (type '') or of a task type within it, with the
-- rate limit's token bucket (tokens at refilled_at, Unix ns; NULL: full).
CREATE TABLE IF NOT EXISTS limits (
    queue       TEXT    NOT NULL,
    type        TEXT    NOT NULL DEFAULT '',
    rate        INTEGER NOT NULL DEFAULT 0,
    per_ns      INTEGER NOT NULL DEFAULT 0,
    burst       INTEGER NOT NULL DEFAULT 0,
    max_running INTEGER NOT NULL DEFAULT 0,
    tokens      REAL,
    refilled_at INTEGER,
    PRIMARY KEY (queue, type)
) WITHOUT ROWID;

ALTER TABLE tasks ADD COLUMN headers TEXT;
