// Package brisk is a task queue that keeps its promises on queue latency.
//
// A Client enqueues tasks into named queues; a Worker reserves them from a broker, runs
// the handler registered for each task's type and acknowledges, retries or buries the
// task. Tasks are stored by a broker: an embedded SQLite file by default
// ("sqlite://./brisk.db"), or a server such as Redis, RabbitMQ or PostgreSQL through the
// packages under broker/.
//
// Words (see also the README):
//   - queue latency: how long the oldest ready task of a queue has waited, the number
//     users feel and the one autoscaling acts on;
//   - pickup latency: how long one task waited between becoming ready and starting;
//   - SLA: a queue's declared latency target ("five_second" → 5 s);
//   - lease: the time a reserved task belongs to one worker, extended while its handler
//     runs; a task whose lease expires is delivered again (at-least-once).
//
// Done in the broker, so that they hold across every worker and process (where the broker
// has the capability; otherwise the call fails with ErrUnsupported):
//   - unique tasks: Unique and UniqueKey refuse a second task with the same key within a
//     window, returning the first one's ID with ErrDuplicate (see ExampleUnique);
//   - cancellation: Inspector.CancelTask stops a pending, scheduled or running task; a
//     running handler's context is cancelled within a second with the cause ErrCancelled
//     (see ExampleInspector_CancelTask);
//   - rate and concurrency limits: Inspector.SetLimit, applied when workers reserve (see
//     ExampleInspector_SetLimit);
//   - periodic tasks: schedules stored with Client.SetPeriodic, enqueued once per tick by
//     the one Scheduler that leads (see ExampleScheduler and ParseSpec).
//
// docs/scheduling.md in the repository explains each.
package brisk
