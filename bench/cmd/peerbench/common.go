package main

import (
	"context"
	"net"
	"sync/atomic"
)

// result is the figures of one workload of one system, keyed as `brisk bench --json` keys
// them (internal/workload), plus peerbench's own.
type result map[string]any

// countingConn counts the Redis commands a client writes (RESP arrays), so that commands
// per task can be told from the client side: a pipeline of k commands counts k, and an
// EVALSHA counts one whatever its script runs.
type countingConn struct {
	net.Conn
	n *atomic.Int64
	p respCounter
}

func (c *countingConn) Write(b []byte) (int, error) {
	c.n.Add(int64(c.p.feed(b)))
	return c.Conn.Write(b)
}

// countingDialer returns a dialer for go-redis whose connections add to n.
func countingDialer(n *atomic.Int64) func(ctx context.Context, network, addr string) (net.Conn, error) {
	return func(ctx context.Context, network, addr string) (net.Conn, error) {
		var d net.Dialer
		conn, err := d.DialContext(ctx, network, addr)
		if err != nil {
			return nil, err
		}
		return &countingConn{Conn: conn, n: n}, nil
	}
}

// respCounter is a streaming parser of what a client writes: arrays of bulk strings.
type respCounter struct {
	state int // 0: expect '*', 1: array length, 2: expect '$', 3: bulk length, 4: bulk bytes, 5: bulk CRLF
	num   int64
	left  int64 // bulk strings left in the array
	skip  int64 // bytes left of the bulk string (+2 for CRLF)
}

// feed parses b and returns the number of commands that were completed in it.
func (r *respCounter) feed(b []byte) int {
	done := 0
	for i := 0; i < len(b); i++ {
		c := b[i]
		switch r.state {
		case 0:
			if c == '*' {
				r.state, r.num = 1, 0
			}
		case 1, 3:
			switch {
			case c >= '0' && c <= '9':
				r.num = r.num*10 + int64(c-'0')
			case c == '\r':
			case c == '\n':
				if r.state == 1 {
					r.left = r.num
					if r.left == 0 {
						r.state = 0
						done++
					} else {
						r.state = 2
					}
				} else {
					r.skip = r.num + 2
					r.state = 4
				}
				r.num = 0
			}
		case 2:
			if c == '$' {
				r.state, r.num = 3, 0
			}
		case 4:
			n := min(r.skip, int64(len(b)-i))
			r.skip -= n
			i += int(n) - 1
			if r.skip == 0 {
				r.left--
				if r.left == 0 {
					r.state = 0
					done++
				} else {
					r.state = 2
				}
			}
		}
	}
	return done
}
