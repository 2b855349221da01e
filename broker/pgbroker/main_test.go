package pgbroker_test

import (
	"context"
	"fmt"
	"os"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"go.uber.org/goleak"

	"github.com/briskq/brisk/internal/pgtest"
)

// TestMain skips the whole package out loud when no PostgreSQL answers (its examples run
// against the server too and cannot skip one by one), and fails under CI, as
// internal/testenv does for a single test.
func TestMain(m *testing.M) {
	url := os.Getenv("BRISK_POSTGRES_URL")
	if url == "" {
		url = pgtest.DefaultURL
	}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	conn, err := pgx.Connect(ctx, url)
	if err == nil {
		conn.Close(ctx)
	}
	cancel()
	if err != nil {
		msg := fmt.Sprintf("no PostgreSQL at %s (set BRISK_POSTGRES_URL, or run scripts/test.sh, which starts one): %v", url, err)
		if os.Getenv("CI") != "" {
			fmt.Fprintln(os.Stderr, "FAIL: "+msg)
			os.Exit(1)
		}
		fmt.Println("SKIPPED: every test of broker/pgbroker: " + msg)
		os.Exit(0)
	}
	goleak.VerifyTestMain(m)
}
