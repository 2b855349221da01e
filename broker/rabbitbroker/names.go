package rabbitbroker

import "fmt"

// names builds the names of a store's queues, exchanges and streams, all starting with the
// store's prefix so that several stores share a vhost.
type names struct{ prefix string }

// ready is the queue that holds a brisk queue's pending tasks.
func (n names) ready(q string) string { return n.prefix + ".q." + q }

// dead is the queue that holds a brisk queue's dead tasks.
func (n names) dead(q string) string { return n.prefix + ".dead." + q }

// level is the delay queue of brisk queue q for delay level k.
func (n names) level(q string, k int) string { return fmt.Sprintf("%s.delay.%s.%02d", n.prefix, q, k) }

// levelExchange routes delayed messages at level k (a headers exchange, shared by all queues
// of the store).
func (n names) levelExchange(k int) string { return fmt.Sprintf("%s.delay.%02d", n.prefix, k) }

// outExchange routes a message whose delay has run out to its brisk queue's ready queue.
func (n names) outExchange() string { return n.prefix + ".delay.out" }

// meta is the stream of queue declarations and delay levels in use.
func (n names) meta() string { return n.prefix + ".meta" }

// live is the stream of worker heartbeats and head reports (kept for an hour).
func (n names) live() string { return n.prefix + ".live" }
