package cli

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"
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

// termSafe escapes what a terminal would act on instead of printing: ASCII and C1 control
// characters (ESC sequences can retitle the window, clear the screen or move the cursor; a
// carriage return overwrites the line), the Unicode controls that reorder text (bidi
// overrides and isolates), and bytes that are not UTF-8. Text from tasks (types, payloads,
// handler errors) is printed through it in every table and message; JSON output is not.
func termSafe(s string) string { return escapeControls(s, false) }

// termSafeLines is termSafe keeping newlines, for a field printed last that may span
// lines (a panic's stack).
func termSafeLines(s string) string { return escapeControls(s, true) }

func escapeControls(s string, newlines bool) string {
	clean := true
	for i, r := range s {
		if unsafeRune(r, newlines) || r == utf8.RuneError && !strings.HasPrefix(s[i:], "\uFFFD") {
			clean = false
			break
		}
	}
	if clean {
		return s
	}
	var sb strings.Builder
	for i := 0; i < len(s); {
		r, size := utf8.DecodeRuneInString(s[i:])
		switch {
		case r == utf8.RuneError && size == 1:
			fmt.Fprintf(&sb, `\x%02x`, s[i])
		case r == '\t' && !newlines, r == '\n' && !newlines, r == '\r':
			sb.WriteString(strconv.QuoteRune(r)[1:3])
		case unsafeRune(r, newlines) && r < 0x100:
			fmt.Fprintf(&sb, `\x%02x`, r)
		case unsafeRune(r, newlines):
			fmt.Fprintf(&sb, `\u%04x`, r)
		default:
			sb.WriteString(s[i : i+size])
		}
		i += size
	}
	return sb.String()
}

// unsafeRune reports whether a terminal acts on r rather than showing it.
func unsafeRune(r rune, newlines bool) bool {
	switch {
	case r == '\n':
		return !newlines
	case r < 0x20, r == 0x7f, r >= 0x80 && r <= 0x9f:
		return true
	case r >= 0x202a && r <= 0x202e, r >= 0x2066 && r <= 0x2069, r == 0x200e, r == 0x200f, r == 0x061c:
		return true
	}
	return false
}
