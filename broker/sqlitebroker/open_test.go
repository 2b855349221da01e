package sqlitebroker_test

import (
	"bytes"
	"errors"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/briskq/brisk/broker"
	"github.com/briskq/brisk/broker/sqlitebroker"
)

// TestOpenNoCreate checks mode=rw (Options.NoCreate), what read-only commands open a
// store with: a path where no file exists is refused, and not created; an empty file is
// refused as "not a brisk store", and left empty; an existing store opens.
func TestOpenNoCreate(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	missing := filepath.Join(dir, "missing.db")
	_, err := broker.Open(t.Context(), "sqlite://"+missing+"?mode=rw")
	if !errors.Is(err, fs.ErrNotExist) || !errors.Is(err, broker.ErrUnavailable) || !strings.Contains(err.Error(), missing) {
		t.Errorf("Open(mode=rw) of a missing file = %v, want an error naming it and wrapping fs.ErrNotExist and ErrUnavailable", err)
	}
	if _, err := os.Stat(missing); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("Open(mode=rw) created %s (%v)", missing, err)
	}

	empty := filepath.Join(dir, "empty.db")
	if err := os.WriteFile(empty, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	_, err = sqlitebroker.Open(t.Context(), empty, sqlitebroker.Options{NoCreate: true})
	if !errors.Is(err, broker.ErrUnavailable) || !strings.Contains(err.Error(), "empty file (0 bytes)") {
		t.Errorf("Open(NoCreate) of an empty file = %v, want ErrUnavailable saying it is empty", err)
	}
	if fi, err := os.Stat(empty); err != nil || fi.Size() != 0 {
		t.Errorf("Open(NoCreate) changed the empty file: %v, %v", fi, err)
	}

	store := filepath.Join(dir, "store.db")
	open(t, store).Close()
	b, err := broker.Open(t.Context(), "sqlite://"+store+"?mode=rw")
	if err != nil {
		t.Fatalf("Open(mode=rw) of a store: %v", err)
	}
	b.Close()

	for _, bad := range []string{"ro", "rwx", ""} {
		if _, err := broker.Open(t.Context(), "sqlite://"+store+"?mode="+bad); !errors.Is(err, broker.ErrInvalid) {
			t.Errorf("Open(mode=%s) = %v, want ErrInvalid", bad, err)
		}
	}
}

// TestOpenEmptyFileWarns checks that a store created in an empty file (one that may have
// been truncated) is not created silently: Open logs a warning naming the file.
func TestOpenEmptyFileWarns(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "empty.db")
	if err := os.WriteFile(path, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	var log bytes.Buffer
	b, err := sqlitebroker.Open(t.Context(), path, sqlitebroker.Options{Logger: slog.New(slog.NewTextHandler(&log, nil))})
	if err != nil {
		t.Fatal(err)
	}
	b.Close()
	if !strings.Contains(log.String(), "level=WARN") || !strings.Contains(log.String(), "empty file (0 bytes)") || !strings.Contains(log.String(), path) {
		t.Errorf("log of Open of an empty file: %q, want a warning naming the file", log.String())
	}
	// The logger of a URL open comes from the context.
	log.Reset()
	path2 := filepath.Join(t.TempDir(), "empty.db")
	if err := os.WriteFile(path2, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	ctx := broker.WithLogger(t.Context(), slog.New(slog.NewTextHandler(&log, nil)))
	b2, err := broker.Open(ctx, "sqlite://"+path2)
	if err != nil {
		t.Fatal(err)
	}
	b2.Close()
	if !strings.Contains(log.String(), "empty file (0 bytes)") {
		t.Errorf("log of a URL Open of an empty file with broker.WithLogger: %q, want the warning", log.String())
	}
	// A store that already holds data is opened without a word.
	log.Reset()
	b3, err := sqlitebroker.Open(t.Context(), path, sqlitebroker.Options{Logger: slog.New(slog.NewTextHandler(&log, nil))})
	if err != nil {
		t.Fatal(err)
	}
	b3.Close()
	if log.Len() != 0 {
		t.Errorf("log of Open of a store: %q, want nothing", log.String())
	}
}
