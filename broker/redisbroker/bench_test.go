package redisbroker_test

import (
	"testing"

	"github.com/briskq/brisk/broker"
	"github.com/briskq/brisk/broker/brokertest"
)

// benchHarness gives the shared benchmarks a fresh store per benchmark.
var benchHarness = brokertest.Harness{NewURL: newURL, Open: broker.Open}

// BenchmarkEnqueueBatch: batches of 1,000 tasks, one Enqueue call each.
func BenchmarkEnqueueBatch(b *testing.B) { brokertest.BenchEnqueueBatch(b, benchHarness) }

// BenchmarkEnqueueSingle: one task per Enqueue call, serial and from 8 goroutines.
func BenchmarkEnqueueSingle(b *testing.B) { brokertest.BenchEnqueueSingle(b, benchHarness) }

// BenchmarkReserveAck: reserve 8, ack 8, with 1 and 4 consumers.
func BenchmarkReserveAck(b *testing.B) { brokertest.BenchReserveAck(b, benchHarness) }

// BenchmarkDrain: one worker with 8 handlers drains a queue of no-op tasks (the W1 drain).
func BenchmarkDrain(b *testing.B) { brokertest.BenchDrain(b, benchHarness) }
