package broker

import (
	"fmt"
	"strings"
)

// Messages a broker stores as a task's LastError when the broker, not a handler, ends an
// attempt on the task's final attempt.
const (
	// MsgLeaseExpired: the lease expired (the worker was lost) and a Reserve found it.
	MsgLeaseExpired = "lease expired on the final attempt (worker lost)"
	// MsgWorkerLost: ReleaseWorker handed back the task of a worker known to be dead.
	MsgWorkerLost = "worker lost on the final attempt"
)

// IDList formats task IDs for an error message: id="a", id="b", … (at most 10 shown).
func IDList(ids []string) string {
	var sb strings.Builder
	for i, id := range ids {
		if i == 10 {
			fmt.Fprintf(&sb, " and %d more", len(ids)-i)
			break
		}
		if i > 0 {
			sb.WriteString(", ")
		}
		fmt.Fprintf(&sb, "id=%q", id)
	}
	return sb.String()
}
