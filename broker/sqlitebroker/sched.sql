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
