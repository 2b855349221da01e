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
package brisk
