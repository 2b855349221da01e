package rabbitbroker

import (
	"strconv"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"
)

// Delays without a plugin: binary delay levels (the design NServiceBus uses on RabbitMQ).
//
// A delay is rounded up to a whole number of delayUnit and written in binary. Level k has a
// delay queue per brisk queue (a quorum queue that dead-letters at least once, or a classic
// one with queue_type=classic) whose messages all live for delayUnit·2^k (x-message-ttl) and
// then dead-letter to the exchange of level k−1; level 0 dead-letters to the out exchange,
// which routes to the brisk queue's ready queue. A message is published to the exchange of
// its highest set bit; each level exchange sends it into its level queue when its bit is
// set (header b<k> = "1") and on to the next lower exchange when it is not. Every message
// in one delay queue has the same TTL, so they expire in order at the head, and the time a
// message spends adds up to its delay: it arrives at most one delayUnit (plus a millisecond
// per hop) after it is due, and never before. No worker holds a delayed message.
const (
	// delayUnit is the resolution of delays: the greatest lateness they add.
	delayUnit = 100 * time.Millisecond
	// delayLevels is the number of levels: delays up to delayUnit·(2^delayLevels − 1), about
	// 310 days. A longer delay goes through every level and, arriving early, is delayed
	// again by the consumer that receives it.
	delayLevels = 28
)

// delayBits returns the delay in units (rounded up, at least 1, at most the largest the
// levels can hold) for a task due in d.
func delayBits(d time.Duration) uint32 {
	units := (d + delayUnit - 1) / delayUnit
	if units < 1 {
		units = 1
	}
	if max := time.Duration(1)<<delayLevels - 1; units > max {
		units = max
	}
	return uint32(units)
}

// highestBit is the highest level a delay of bits passes through.
func highestBit(bits uint32) int {
	k := 0
	for b := bits >> 1; b != 0; b >>= 1 {
		k++
	}
	return k
}

// bitHeader names the routing header of level k.
func bitHeader(k int) string { return hBit + strconv.Itoa(k) }

// routeDelayed adds the routing headers of a delay of bits for brisk queue q to msg and
// returns the exchange to publish it to.
func (n names) routeDelayed(msg *amqp.Publishing, q string, bits uint32) string {
	msg.Headers[hDelayQueue] = q
	top := highestBit(bits)
	for k := 0; k <= top; k++ {
		v := "0"
		if bits&(1<<k) != 0 {
			v = "1"
		}
		msg.Headers[bitHeader(k)] = v
	}
	return n.levelExchange(top)
}

// levelTTL is how long a message stays in a delay queue of level k.
func levelTTL(k int) time.Duration { return delayUnit << k }
