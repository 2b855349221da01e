package cli

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/briskq/brisk"
)

var enqueueCmd = &command{
	name:     "enqueue",
	synopsis: "[flags] TYPE [PAYLOAD_JSON]",
	summary:  "enqueue one task and print its id",
	detail: `
TYPE names the handler: ` + brisk.TypeNameRule + `. A queue name
(--queue) is ` + brisk.QueueNameRule + `. PAYLOAD_JSON must be
valid JSON in UTF-8; "-" reads it from standard input; without it the payload is empty.
Nothing is stored when the payload or an option is bad (exit status 2).

--delay and --process-at schedule the task: ` + brisk.ScheduleAheadRule + `. A
--process-at in the past means now: the task is ready at once, its latency counted from
the enqueue.

--retention D keeps the task for D once it has completed (or been cancelled), with the
result its handler stored: brisk tasks --id ID shows it. Only the SQLite broker keeps
completed tasks; others refuse the task.

--unique-for D makes the task unique in its queue for D: while a task of the same type
and payload (or of the same --unique-key) was enqueued less than D ago, nothing is stored;
the command then prints that task's id and fails (exit status 1) with "duplicate".

Example:
  brisk enqueue --queue five_second email.send '{"to":"ada@example.com"}'`,
	run: runEnqueue,
}

func runEnqueue(ctx context.Context, e *env, fs *flag.FlagSet, args []string) error {
	brokerURL := brokerFlag(fs)
	queue := fs.String("queue", brisk.DefaultQueue, "put the task in queue `Q`")
	delay := durationFlag(fs, "delay", 0, "make the task ready `D` from now (e.g. 30s, 5m)")
	processAt := fs.String("process-at", "", "make the task ready at `TIME` (RFC 3339, e.g. 2030-01-02T15:04:05Z)")
	maxAttempts := fs.Int("max-attempts", brisk.DefaultMaxAttempts, "let the task run `N` times before it is dead, at least 1")
	timeout := durationFlag(fs, "timeout", 0, "bound one run of the handler to `D` (default: the worker's)")
	uniqueFor := durationFlag(fs, "unique-for", 0, "store the task only if no task with its unique key was enqueued in the last `D`")
	uniqueKey := fs.String("unique-key", "", "the unique key `K` (default: the type and a hash of the payload); needs --unique-for")
	retention := durationFlag(fs, "retention", 0, "keep the task for `D` once it has completed, with its result (default: its queue's retention)")
	var headers headerFlag
	fs.Var(&headers, "header", "carry header `NAME=VALUE` to the handler (repeatable)")
	pos, err := e.parse(fs, args)
	if err != nil {
		return err
	}
	switch {
	case len(pos) == 0:
		return usagef("enqueue needs a task TYPE")
	case len(pos) > 2:
		return usagef("enqueue takes TYPE and PAYLOAD_JSON, got %d arguments (quote the JSON)", len(pos))
	case *delay < 0:
		return usagef("--delay %s is negative", *delay)
	case *maxAttempts < 1:
		return usagef("--max-attempts %d: a task runs at least once (1 means no retry), so it must be at least 1", *maxAttempts)
	case *timeout < 0:
		return usagef("--timeout %s is negative", *timeout)
	case *delay != 0 && *processAt != "":
		return usagef("give --delay or --process-at, not both")
	case *uniqueFor < 0:
		return usagef("--unique-for %s is negative", *uniqueFor)
	case *retention < 0:
		return usagef("--retention %s is negative", *retention)
	case *uniqueKey != "" && *uniqueFor == 0:
		return usagef("--unique-key needs --unique-for D (how long the key is held)")
	}
	if err := checkNames(*queue); err != nil {
		return err
	}
	if err := brisk.ValidateTypeName(pos[0]); err != nil {
		return invalid(err)
	}
	opts := []brisk.Option{brisk.InQueue(*queue), brisk.MaxAttempts(*maxAttempts)}
	if *processAt != "" {
		at, err := time.Parse(time.RFC3339Nano, *processAt)
		if err != nil {
			return usagef("--process-at %q is not an RFC 3339 time such as 2030-01-02T15:04:05Z", *processAt)
		}
		opts = append(opts, brisk.ProcessAt(at))
	}
	if *delay > 0 {
		opts = append(opts, brisk.Delay(*delay))
	}
	if *timeout > 0 {
		opts = append(opts, brisk.Timeout(*timeout))
	}
	if *uniqueFor > 0 {
		opts = append(opts, brisk.UniqueKey(*uniqueKey, *uniqueFor))
	}
	if *retention > 0 {
		opts = append(opts, brisk.Retain(*retention))
	}
	for _, h := range headers {
		opts = append(opts, brisk.WithHeader(h[0], h[1]))
	}

	var payload []byte
	if len(pos) == 2 {
		if payload, err = readPayload(pos[1], e.stdin); err != nil {
			return err
		}
	}

	c, err := e.openClient(ctx, *brokerURL, createsStore)
	if err != nil {
		return err
	}
	defer closeClient(c)
	id, err := c.Enqueue(ctx, brisk.NewTask(pos[0], payload), opts...)
	if errors.Is(err, brisk.ErrDuplicate) && id != "" {
		fmt.Fprintln(e.stdout, id) // the task that holds the key or ID
		return err
	}
	if errors.Is(err, brisk.ErrInvalid) {
		// What is invalid came from the command line (a schedule past the bound).
		return invalid(err)
	}
	if err != nil {
		return err
	}
	_, err = fmt.Fprintln(e.stdout, id)
	return err
}

// readPayload returns the payload argument (or standard input for "-") without surrounding
// white space, or a usage error when it is not valid JSON in UTF-8.
func readPayload(arg string, stdin io.Reader) ([]byte, error) {
	raw := []byte(arg)
	if arg == "-" {
		var err error
		if raw, err = io.ReadAll(stdin); err != nil {
			return nil, fmt.Errorf("read payload from standard input: %w", err)
		}
	}
	raw = bytes.TrimSpace(raw)
	var v json.RawMessage
	if err := json.Unmarshal(raw, &v); err != nil {
		return nil, usagef("payload is not valid JSON: %v", err)
	}
	if !utf8.Valid(raw) {
		return nil, usagef("payload is not valid UTF-8 (JSON text must be)")
	}
	return raw, nil
}

// headerFlag collects repeated --header NAME=VALUE flags.
type headerFlag [][2]string

func (h *headerFlag) String() string { return "" }

// Set takes one NAME=VALUE and checks the name as the broker will.
func (h *headerFlag) Set(s string) error {
	name, value, ok := strings.Cut(s, "=")
	if !ok {
		return fmt.Errorf("%q is not NAME=VALUE", s)
	}
	if err := brisk.ValidateHeaders(map[string]string{name: value}); err != nil {
		return err
	}
	*h = append(*h, [2]string{name, value})
	return nil
}
