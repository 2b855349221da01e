package pgbroker_test

import (
	"testing"

	"github.com/briskq/brisk/broker/brokertest"
)

// BenchmarkEnqueueBatch: batches of 1,000 tasks, one Enqueue call each.
func BenchmarkEnqueueBatch(b *testing.B) { brokertest.BenchEnqueueBatch(b, harness(b)) }

// BenchmarkEnqueueSingle: one task per Enqueue call, serial and from 8 goroutines.
func BenchmarkEnqueueSingle(b *testing.B) { brokertest.BenchEnqueueSingle(b, harness(b)) }

// BenchmarkReserveAck: reserve 8, ack 8, with 1 and 4 consumers.
func BenchmarkReserveAck(b *testing.B) { brokertest.BenchReserveAck(b, harness(b)) }

// BenchmarkDrain: one worker with 8 handlers drains a queue of no-op tasks (the W1 drain
// inside go test).
func BenchmarkDrain(b *testing.B) { brokertest.BenchDrain(b, harness(b)) }
