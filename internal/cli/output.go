package cli

import (
	"bytes"
	"encoding/json"
	"io"
	"strconv"
	"strings"
	"time"
)

// writeJSON prints v as JSON followed by a newline: indented for listings people also read,
// on one line (indent false) for records meant to be appended to a file of JSON lines.
func writeJSON(w io.Writer, v any, indent bool) error {
	enc := json.NewEncoder(w)
	enc.SetEscapeHTML(false)
	if indent {
		enc.SetIndent("", "  ")
	}
	return enc.Encode(v)
}

// textTime is a time for tables: RFC 3339 in local time to the millisecond, or "-".
func textTime(t time.Time) string {
	if t.IsZero() {
		return "-"
	}
	return t.Local().Format("2006-01-02T15:04:05.000Z07:00")
}

// truncate cuts s to at most n runes on its first line, marking a cut with "…".
func truncate(s string, n int) string {
	cut := false
	if i := strings.IndexByte(s, '\n'); i >= 0 {
		s, cut = s[:i], true
	}
	r := []rune(s)
	if len(r) > n {
		r, cut = r[:n-1], true
	}
	if cut {
		return string(r) + "…"
	}
	return string(r)
}

// payloadText shows a payload on one line: as compact JSON when it is valid JSON, as a
// quoted Go string otherwise, "-" when empty.
func payloadText(p []byte) string {
	if len(p) == 0 {
		return "-"
	}
	var buf bytes.Buffer
	if err := json.Compact(&buf, p); err == nil {
		return buf.String()
	}
	return strconv.Quote(string(p))
}
