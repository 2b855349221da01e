package brisk

import (
	"crypto/sha256"
	"encoding/hex"
	"time"
)

// Unique makes the task unique for window: while a task of the same queue with the same
// type and payload (its default uniqueness key: the type and a SHA-256 of the payload) was
// enqueued less than window ago, Enqueue stores nothing and returns that task's ID with an
// error wrapping ErrDuplicate (a *DuplicateError). The check is atomic with the enqueue in
// the broker, so it holds across processes; the lock lasts the whole window whatever
// happens to the task (done, dead, cancelled). Brokers without unique tasks refuse such a
// task with ErrUnsupported.
func Unique(window time.Duration) Option { return func(t *Task) { t.UniqueFor = window } }

// UniqueKey is Unique with an explicit key instead of the type and payload: at most one
// task of the queue with key is enqueued per window.
func UniqueKey(key string, window time.Duration) Option {
	return func(t *Task) { t.UniqueKey, t.UniqueFor = key, window }
}

// uniqueKey returns the task's uniqueness key: its own, or the type and a hash of the
// payload.
func uniqueKey(t *Task) string {
	if t.UniqueKey != "" {
		return t.UniqueKey
	}
	sum := sha256.Sum256(t.Payload)
	return t.Type + ":" + hex.EncodeToString(sum[:])
}
