package pgbroker_test

import (
	"bytes"
	"fmt"
	"strings"
	"testing"

	"github.com/briskq/brisk/broker/pgbroker"
	"github.com/briskq/brisk/internal/cli"
	"github.com/briskq/brisk/internal/pgtest"
)

// TestMigrateCommand runs brisk migrate: --print connects to nothing and prints every
// version; without it the migrations are applied once and a second run is a no-op.
func TestMigrateCommand(t *testing.T) {
	t.Parallel()
	schema, url := pgtest.NewSchema(t, pgtest.URL(t), "cli")
	run := func(args ...string) (int, string, string) {
		var out, errOut bytes.Buffer
		code := cli.Main(args, strings.NewReader(""), &out, &errOut)
		return code, out.String(), errOut.String()
	}
	code, out, _ := run("migrate", "--broker", "postgres://nobody@192.0.2.1:1/none?schema="+schema, "--print")
	if code != 0 || !strings.Contains(out, "CREATE TABLE "+schema+".tasks") || !strings.Contains(out, fmt.Sprintf("VALUES (%d)", pgbroker.SchemaVersion)) {
		t.Fatalf("migrate --print: exit %d, output:\n%s", code, out)
	}
	code, out, errOut := run("migrate", "--broker", url)
	if want := fmt.Sprintf("migrated from version 0 to %d", pgbroker.SchemaVersion); code != 0 || !strings.Contains(out, want) {
		t.Fatalf("migrate: exit %d, %q %q; want %q", code, out, errOut, want)
	}
	code, out, _ = run("migrate", "--broker", url)
	if code != 0 || !strings.Contains(out, "up to date") {
		t.Fatalf("second migrate: exit %d, %q", code, out)
	}
	open(t, url+"&migrate=false")
	if code, _, errOut := run("migrate", "--broker", "redis://127.0.0.1:6379/0"); code != 2 || !strings.Contains(errOut, "PostgreSQL") {
		t.Errorf("migrate of a Redis URL: exit %d, %q; want a usage error", code, errOut)
	}
}
