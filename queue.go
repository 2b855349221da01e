package brisk

import (
	"strconv"
	"strings"
	"time"
)

var numberWords = map[string]int{
	"one": 1, "two": 2, "three": 3, "four": 4, "five": 5, "six": 6, "seven": 7, "eight": 8,
	"nine": 9, "ten": 10, "fifteen": 15, "twenty": 20, "thirty": 30, "forty": 40, "forty_five": 45,
	"fifty": 50, "sixty": 60, "ninety": 90,
}

var unitWords = map[string]time.Duration{
	"ms": time.Millisecond, "millisecond": time.Millisecond, "milliseconds": time.Millisecond,
	"s": time.Second, "sec": time.Second, "second": time.Second, "seconds": time.Second,
	"m": time.Minute, "min": time.Minute, "minute": time.Minute, "minutes": time.Minute,
	"h": time.Hour, "hour": time.Hour, "hours": time.Hour,
}

// SLAFromName reads the latency target from the name of a queue that is named after it:
// "five_second" → 5s, "thirty_seconds" → 30s, "one_minute" → 1m, "10_minutes" → 10m,
// "within_5_seconds" → 5s. It reports false for other names.
func SLAFromName(name string) (time.Duration, bool) {
	parts := strings.Split(strings.ToLower(name), "_")
	if len(parts) < 2 {
		return 0, false
	}
	unit, ok := unitWords[parts[len(parts)-1]]
	if !ok {
		return 0, false
	}
	num := parts[:len(parts)-1]
	// The number is the last one or two words before the unit ("forty_five").
	for take := min(2, len(num)); take >= 1; take-- {
		word := strings.Join(num[len(num)-take:], "_")
		if n, ok := numberWords[word]; ok {
			return time.Duration(n) * unit, true
		}
		if take == 1 {
			if n, err := strconv.Atoi(word); err == nil && n > 0 {
				return time.Duration(n) * unit, true
			}
		}
	}
	return 0, false
}
