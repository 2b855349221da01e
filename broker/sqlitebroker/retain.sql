-- brisk SQLite schema, version 6 additions (applied to a new file after the earlier
-- versions, and as the migration of a version 5 file): completed tasks kept for a
-- retention with their result, and the progress of running tasks. Additive only.

-- A task's own retention (0: its queue's), when it completed or was cancelled, when it
-- is removed, its result and its handler's last progress report.
ALTER TABLE tasks ADD COLUMN retention_ns INTEGER NOT NULL DEFAULT 0;
ALTER TABLE tasks ADD COLUMN finished_at INTEGER;
ALTER TABLE tasks ADD COLUMN expires_at INTEGER;
ALTER TABLE tasks ADD COLUMN result BLOB;
ALTER TABLE tasks ADD COLUMN progress_pct REAL;
ALTER TABLE tasks ADD COLUMN progress_msg TEXT;
ALTER TABLE tasks ADD COLUMN progress_at INTEGER;

-- A queue's retention, and how many completed tasks it keeps.
ALTER TABLE queues ADD COLUMN retention_ns INTEGER NOT NULL DEFAULT 0;
ALTER TABLE queues ADD COLUMN retained INTEGER NOT NULL DEFAULT 0;

-- The completed listing, oldest finished first. Reserve, Wait and the queue latency read
-- only the pending and running indexes, so kept tasks cost them nothing.
CREATE INDEX IF NOT EXISTS tasks_completed ON tasks (queue, finished_at, seq) WHERE state = 'completed';
-- Removing expired tasks, oldest first, a slice at a time.
CREATE INDEX IF NOT EXISTS tasks_expires ON tasks (expires_at) WHERE expires_at IS NOT NULL;

CREATE TRIGGER IF NOT EXISTS tasks_count_completed_insert AFTER INSERT ON tasks
WHEN NEW.state = 'completed'
BEGIN
    UPDATE queues SET retained = retained + 1 WHERE name = NEW.queue;
END;

CREATE TRIGGER IF NOT EXISTS tasks_count_completed_delete AFTER DELETE ON tasks
WHEN OLD.state = 'completed'
BEGIN
    UPDATE queues SET retained = retained - 1 WHERE name = OLD.queue;
END;

-- A task completes (or leaves completed) within its queue: one UPDATE, as every
-- completion with a retention fires it.
CREATE TRIGGER IF NOT EXISTS tasks_count_completed_state AFTER UPDATE OF state ON tasks
WHEN (OLD.state = 'completed') IS NOT (NEW.state = 'completed') AND OLD.queue IS NEW.queue
BEGIN
    UPDATE queues SET retained = retained + (NEW.state = 'completed') - (OLD.state = 'completed') WHERE name = NEW.queue;
END;

-- A task moved to another queue by hand.
CREATE TRIGGER IF NOT EXISTS tasks_count_completed_move AFTER UPDATE OF queue ON tasks
WHEN OLD.queue IS NOT NEW.queue AND (OLD.state = 'completed' OR NEW.state = 'completed')
BEGIN
    UPDATE queues SET retained = retained - (OLD.state = 'completed') WHERE name = OLD.queue;
    UPDATE queues SET retained = retained + (NEW.state = 'completed') WHERE name = NEW.queue;
END;

-- The counting of version 1 on a delete, now only for the states it counts: removing
-- expired completed and cancelled tasks (which the triggers above and of version 4 count)
-- runs no UPDATE that changes nothing.
DROP TRIGGER IF EXISTS tasks_count_delete;
CREATE TRIGGER tasks_count_delete AFTER DELETE ON tasks
WHEN OLD.state IN ('pending', 'running', 'dead')
BEGIN
    UPDATE queues SET
        waiting = waiting - (OLD.state = 'pending'),
        running = running - (OLD.state = 'running'),
        dead    = dead    - (OLD.state = 'dead')
    WHERE name = OLD.queue;
END;
