package shellwords

import (
	"reflect"
	"testing"
)

func TestSplit(t *testing.T) {
	for _, c := range []struct {
		in   string
		want []string
	}{
		{"brisk worker --queue q", []string{"brisk", "worker", "--queue", "q"}},
		{`  a  'b c'  "d \"e\" $f \x"  g\ h ''`, []string{"a", "b c", `d "e" $f \x`, "g h", ""}},
		{`sh -c 'echo {{count}} >> /tmp/x'`, []string{"sh", "-c", "echo {{count}} >> /tmp/x"}},
		{`a"b"'c'`, []string{"abc"}},
	} {
		got, err := Split(c.in)
		if err != nil || !reflect.DeepEqual(got, c.want) {
			t.Errorf("Split(%q) = %q, %v; want %q", c.in, got, err, c.want)
		}
	}
	for _, in := range []string{"", "   ", `a 'b`, `a "b`} {
		if _, err := Split(in); err == nil {
			t.Errorf("Split(%q): err %v, want an error", in, err)
		}
	}
}
