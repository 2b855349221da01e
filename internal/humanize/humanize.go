// Package humanize formats figures for people, the same way in the CLI and the dashboard.
package humanize

import (
	"fmt"
	"time"
)

// Duration formats d briefly: "0s", "12ms", "1.2s", "1m5s", "5s", "1m", "2h".
func Duration(d time.Duration) string {
	switch {
	case d == 0:
		return "0s"
	case d < 0:
		return "-" + Duration(-d)
	case d < time.Second:
		return d.Round(time.Millisecond).String()
	case d%time.Hour == 0:
		return fmt.Sprintf("%dh", d/time.Hour)
	case d%time.Minute == 0:
		return fmt.Sprintf("%dm", d/time.Minute)
	case d < time.Minute:
		return d.Round(100 * time.Millisecond).String()
	default:
		return d.Round(time.Second).String()
	}
}
