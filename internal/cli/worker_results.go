package cli

import (
	"context"
	"errors"
	"log/slog"

	"github.com/briskq/brisk"
	"github.com/briskq/brisk/internal/apiv1"
)

// Results and progress of handlers in other languages: an --exec child's "result" and
// "progress" keys, an --http endpoint's JSON body. They go through the handler's context
// as a Go handler's do (brisk.SetResult, brisk.ReportProgress).

// keepResult stores result as the task's result. The handler did its work and the task is
// done either way, so a refusal is logged: a broker that keeps no results at warning level
// when the handler asked (asked: an --exec child's "result"), at debug level when it did
// not (an --http endpoint's body is kept where the broker can); any other refusal (a
// result over brisk.MaxResult) is a warning.
func keepResult(ctx context.Context, log *slog.Logger, id string, result []byte, asked bool) {
	err := brisk.SetResult(ctx, result)
	switch {
	case err == nil:
	case errors.Is(err, brisk.ErrUnsupported) && !asked:
		log.Debug("result not kept: the broker keeps no results", "task", id)
	default:
		log.Warn("result not kept", "task", id, "err", err)
	}
}

// reportProgress stores a progress report of the task; a refusal is logged, never the
// task's failure.
func reportProgress(ctx context.Context, log *slog.Logger, id string, p apiv1.ProgressReport) {
	err := brisk.ReportProgress(ctx, p.Percent, p.Message)
	switch {
	case err == nil:
	default:
		log.Warn("progress not kept", "task", id, "err", err)
	}
}
