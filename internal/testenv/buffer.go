package testenv

import (
	"strings"
	"sync"
)

// Buffer collects what goroutines write (a command's output, a logger's lines) for a
// test to read meanwhile: a strings.Builder behind a mutex.
type Buffer struct {
	mu sync.Mutex
	sb strings.Builder
}

// Write appends p.
func (b *Buffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.sb.Write(p)
}

// String returns what was written so far.
func (b *Buffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.sb.String()
}

// Reset forgets what was written.
func (b *Buffer) Reset() {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.sb.Reset()
}
