package brisk

import (
	"context"
	"log/slog"
	"testing"
)

// The default logger says what goes wrong (warnings and errors) and nothing else.
func TestDefaultLoggerWarns(t *testing.T) {
	var c WorkerConfig
	c.setDefaults()
	ctx := context.Background()
	if h := c.Logger.Handler(); !h.Enabled(ctx, slog.LevelWarn) || !h.Enabled(ctx, slog.LevelError) || h.Enabled(ctx, slog.LevelInfo) {
		t.Errorf("default logger: warn %v, error %v, info %v; want warnings and errors only",
			h.Enabled(ctx, slog.LevelWarn), h.Enabled(ctx, slog.LevelError), h.Enabled(ctx, slog.LevelInfo))
	}
}
