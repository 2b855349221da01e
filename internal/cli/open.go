package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"strconv"
	"strings"

	"github.com/briskq/brisk"
)

// access says whether a command may create the store it is given. Commands that read a
// store, or change tasks already in it, never do: a SQLite path where no store exists is an
// error for them, not an empty store that says "no queues".
type access int

const (
	needsStore   access = iota // queues, tasks, retry, delete, dashboard, autoscale, queue delete
	createsStore               // enqueue, pause, resume, bench, demo
)

// openClient opens the broker that url names (empty: $BRISK_BROKER or the default) and
// returns a client on it; close it with closeClient. What the broker logs at warning level
// (a Redis that keeps nothing on disk, a store created in an empty file) goes to standard
// error, one "brisk: " line each. A URL that is malformed, has an unknown parameter or an
// unknown scheme is a usage error.
func (e *env) openClient(ctx context.Context, rawURL string, a access) (*brisk.Client, error) {
	rawURL = brisk.BrokerURL(rawURL)
	ctx = brisk.WithLogger(ctx, slog.New(&lineHandler{w: e.stderr, level: slog.LevelWarn}))
	open := brisk.Open
	if a == needsStore {
		open = brisk.OpenExisting
	}
	b, err := open(ctx, rawURL)
	switch {
	case err == nil:
		return brisk.NewClient(b), nil
	case errors.Is(err, brisk.ErrInvalid), errors.Is(err, brisk.ErrUnknownScheme):
		return nil, invalid(err)
	case errors.Is(err, fs.ErrNotExist) && a == needsStore:
		return nil, fmt.Errorf("no brisk store at %s: the file does not exist, and brisk %s does not create one "+
			"(check --broker and $BRISK_BROKER; enqueue creates the store)", brisk.RedactURL(rawURL), e.cmd.name)
	}
	return nil, err
}

func closeClient(c *brisk.Client) { _ = c.Broker().Close() }

// lineHandler is the slog.Handler of the command's own messages on standard error: one
// "brisk: message key=value …" line per record at or above level, control characters
// escaped.
type lineHandler struct {
	w     io.Writer
	level slog.Level
	attrs []slog.Attr
}

func (h *lineHandler) Enabled(_ context.Context, l slog.Level) bool { return l >= h.level }

func (h *lineHandler) Handle(_ context.Context, r slog.Record) error {
	var sb strings.Builder
	sb.WriteString("brisk: ")
	sb.WriteString(strings.TrimPrefix(r.Message, "brisk: "))
	attr := func(a slog.Attr) bool {
		v := a.Value.Resolve().String()
		if v == "" || strings.ContainsAny(v, " \"=") {
			v = strconv.Quote(v)
		}
		sb.WriteString(" " + a.Key + "=" + v)
		return true
	}
	for _, a := range h.attrs {
		attr(a)
	}
	r.Attrs(attr)
	_, err := io.WriteString(h.w, termSafe(sb.String())+"\n")
	return err
}

func (h *lineHandler) WithAttrs(as []slog.Attr) slog.Handler {
	return &lineHandler{w: h.w, level: h.level, attrs: append(append([]slog.Attr(nil), h.attrs...), as...)}
}

func (h *lineHandler) WithGroup(string) slog.Handler { return h }
