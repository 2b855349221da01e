//go:build !unix

package brokertest

import "time"

// processCPU reports that this system's process CPU time is not read here.
func processCPU() (time.Duration, bool) { return 0, false }
