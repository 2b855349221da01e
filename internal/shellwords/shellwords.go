// Package shellwords splits a command line into words as a POSIX shell would, without
// running a shell.
package shellwords

import (
	"fmt"
	"strings"
)

// Split splits a command line into words the way a POSIX shell would, without running
// a shell: words are separated by blanks; single quotes keep everything literally; double
// quotes keep blanks, and a backslash in them escapes \, ", $ and `; outside quotes a
// backslash escapes the next character. There is no expansion of any kind. An unterminated
// quote or a line with no word is an error.
func Split(line string) ([]string, error) {
	var (
		words []string
		cur   strings.Builder
		in    bool // a word has started (possibly empty: '')
	)
	rs := []rune(line)
	for i := 0; i < len(rs); i++ {
		r := rs[i]
		switch {
		case r == ' ' || r == '\t' || r == '\n':
			if in {
				words = append(words, cur.String())
				cur.Reset()
				in = false
			}
		case r == '\\':
			in = true
			if i+1 < len(rs) {
				i++
				if rs[i] != '\n' {
					cur.WriteRune(rs[i])
				}
			}
		case r == '\'':
			in = true
			j := i + 1
			for j < len(rs) && rs[j] != '\'' {
				j++
			}
			if j == len(rs) {
				return nil, fmt.Errorf("command %q: unterminated single quote", line)
			}
			cur.WriteString(string(rs[i+1 : j]))
			i = j
		case r == '"':
			in = true
			j := i + 1
			for ; j < len(rs) && rs[j] != '"'; j++ {
				if rs[j] == '\\' && j+1 < len(rs) && strings.ContainsRune("\\\"$`", rs[j+1]) {
					j++
				}
				cur.WriteRune(rs[j])
			}
			if j == len(rs) {
				return nil, fmt.Errorf("command %q: unterminated double quote", line)
			}
			i = j
		default:
			in = true
			cur.WriteRune(r)
		}
	}
	if in {
		words = append(words, cur.String())
	}
	if len(words) == 0 {
		return nil, fmt.Errorf("command %q: no command", line)
	}
	return words, nil
}
