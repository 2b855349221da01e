package autoscale

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/briskq/brisk/internal/shellwords"
)

// CountPlaceholder is replaced by the desired count in a CommandActuator's template.
const CountPlaceholder = "{{count}}"

// CommandConfig configures a CommandActuator.
type CommandConfig struct {
	// Template is the command line, split with shellwords.Split (no shell runs it), in which every
	// {{count}} is replaced by the desired count, e.g. "heroku ps:scale worker={{count}}" or
	// "docker compose up -d --no-recreate --scale worker={{count}}". Required, and it must
	// contain {{count}}.
	Template string
	// Timeout bounds one run of the command (default 1 min).
	Timeout time.Duration
	// Logger receives each run with its output. Default: discard.
	Logger *slog.Logger
}

// CommandActuator runs a user's command with the desired count, for platforms that scale
// workers themselves (Heroku, Docker Compose, ECS, Nomad, …). It runs only when the count
// changes; a command that fails or times out is an error (with the end of its output), and
// the next decision tries again.
type CommandActuator struct {
	cfg   CommandConfig
	words []string

	mu   sync.Mutex
	last int // last count applied successfully; -1 before the first
	runs int
}

// NewCommandActuator checks cfg and returns the actuator.
func NewCommandActuator(cfg CommandConfig) (*CommandActuator, error) {
	if !strings.Contains(cfg.Template, CountPlaceholder) {
		return nil, invalidf("hook %q does not contain %s", cfg.Template, CountPlaceholder)
	}
	words, err := shellwords.Split(cfg.Template)
	if err != nil {
		return nil, invalidf("hook: %v", err)
	}
	if cfg.Timeout < 0 {
		return nil, invalidf("hook: timeout %s is negative", cfg.Timeout)
	}
	if cfg.Timeout == 0 {
		cfg.Timeout = time.Minute
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	return &CommandActuator{cfg: cfg, words: words, last: -1}, nil
}

// Command returns the command line (argv) that sets n workers.
func (c *CommandActuator) Command(n int) []string {
	argv := make([]string, len(c.words))
	for i, w := range c.words {
		argv[i] = strings.ReplaceAll(w, CountPlaceholder, strconv.Itoa(n))
	}
	return argv
}

// Runs returns how many times the command ran.
func (c *CommandActuator) Runs() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.runs
}

// Apply implements Actuator: it runs the command with d.Desired unless that count is the
// one last applied.
func (c *CommandActuator) Apply(ctx context.Context, d Decision) error {
	return c.Scale(ctx, d.Desired)
}

// Scale runs the command with n unless n is the count last applied.
func (c *CommandActuator) Scale(ctx context.Context, n int) error {
	if n < 0 {
		return invalidf("hook: count %d is negative", n)
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if n == c.last {
		return nil
	}
	ctx, cancel := context.WithTimeout(ctx, c.cfg.Timeout)
	defer cancel()
	argv := c.Command(n)
	cmd := exec.CommandContext(ctx, argv[0], argv[1:]...)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	cmd.WaitDelay = time.Second
	start := time.Now()
	err := cmd.Run()
	c.runs++
	text := strings.TrimSpace(out.String())
	if err != nil {
		if ctx.Err() == context.DeadlineExceeded {
			err = fmt.Errorf("timed out after %s", c.cfg.Timeout)
		}
		c.cfg.Logger.Error("autoscale: hook failed", "count", n, "command", strings.Join(argv, " "), "err", err, "output", text)
		return fmt.Errorf("autoscale: hook %q: %v%s", strings.Join(argv, " "), err, lastLine(text))
	}
	c.cfg.Logger.Info("autoscale: hook ran", "count", n, "command", strings.Join(argv, " "),
		"took", time.Since(start).Round(time.Millisecond), "output", text)
	c.last = n
	return nil
}

func lastLine(s string) string {
	if s == "" {
		return ""
	}
	if i := strings.LastIndexByte(s, '\n'); i >= 0 {
		s = s[i+1:]
	}
	if len(s) > 200 {
		s = s[:200] + "…"
	}
	return ": " + s
}
