// Package cli implements the brisk command: enqueue, inspect, retry and delete tasks, run
// the benchmark workloads and the demo. It uses only brisk's public API, like any other
// program built on brisk.
package cli

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"text/tabwriter"
	"time"

	"github.com/briskq/brisk"
	"github.com/briskq/brisk/internal/humanize"
)

// Exit statuses of Main.
const (
	exitOK          = 0
	exitError       = 1   // a runtime error
	exitUsage       = 2   // a bad command, flag or argument
	exitInterrupted = 130 // Ctrl-C or SIGTERM (128 + SIGINT, as shells report it)
)

// command is one brisk subcommand.
type command struct {
	name     string
	synopsis string // what follows "brisk NAME" in the usage line
	summary  string // one line, for "brisk --help" and the top of the command's help
	detail   string // further paragraphs of the command's help; may be empty
	hidden   bool   // left out of "brisk --help" (internal commands)
	// run defines its flags on fs, parses args with env.parse, and does the work.
	run func(ctx context.Context, e *env, fs *flag.FlagSet, args []string) error
}

// commands lists every command in the order "brisk --help" shows them. It is filled in by
// init because the help command refers to it.
var commands []*command

func init() {
	commands = []*command{
		enqueueCmd, queuesCmd, tasksCmd, retryCmd, deleteCmd, pauseCmd, resumeCmd, queueCmd, benchCmd, simulateCmd, autoscaleCmd, workerCmd, workersCmd, dashboardCmd, demoCmd, migrateCmd,
		versionCmd, helpCmd, benchWorkerCmd,
	}
	commands = append(commands, schedCommands...)
}

// newFlagSet returns an empty flag set for cmd that reports errors to its caller instead of
// printing them: env.parse prints the help and report prints the error line.
func newFlagSet(cmd *command) *flag.FlagSet {
	fs := flag.NewFlagSet("brisk "+cmd.name, flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	fs.Usage = func() {}
	return fs
}

func lookup(name string) *command {
	for _, c := range commands {
		if c.name == name {
			return c
		}
	}
	return nil
}

// env is what a command runs with: its standard streams and its own description.
type env struct {
	stdin  io.Reader
	stdout io.Writer
	stderr io.Writer
	cmd    *command
}

// Main runs the brisk command with args (without the program name) and returns its exit
// status: 0 on success, 1 on a runtime error, 2 on a bad command, flag or argument, 130
// when interrupted. Errors are reported as one line on stderr. Ctrl-C (SIGINT) and SIGTERM
// cancel the command's context, so that long commands stop cleanly.
func Main(args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if stdin == nil {
		stdin = strings.NewReader("")
	}
	return run(ctx, args, stdin, stdout, stderr)
}

func run(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprintln(stderr, "brisk: no command given (see brisk --help)")
		return exitUsage
	}
	name := args[0]
	switch name {
	case "-h", "-help", "--help":
		printMainHelp(stdout)
		return exitOK
	case "-version", "--version":
		name = "version"
	}
	cmd := lookup(name)
	if cmd == nil {
		if strings.HasPrefix(name, "-") {
			fmt.Fprintf(stderr, "brisk: flag %s before the command (see brisk --help)\n", name)
		} else {
			fmt.Fprintf(stderr, "brisk: unknown command %q (see brisk --help)\n", name)
		}
		return exitUsage
	}
	e := &env{stdin: stdin, stdout: stdout, stderr: stderr, cmd: cmd}
	err := cmd.run(ctx, e, newFlagSet(cmd), args[1:])
	return report(ctx, stderr, cmd, err)
}

// report turns a command's error into its one line on stderr and the exit status.
func report(ctx context.Context, stderr io.Writer, cmd *command, err error) int {
	var ue *usageError
	switch {
	case err == nil:
		return exitOK
	case errors.Is(err, errHelpShown):
		return exitOK
	case errors.As(err, &ue):
		hint := "brisk " + cmd.name + " --help"
		if cmd == helpCmd {
			hint = "brisk --help"
		}
		fmt.Fprintf(stderr, "brisk: %s (see %s)\n", termSafe(firstLine(ue.msg)), hint)
		return exitUsage
	case ctx.Err() != nil: // whatever failed, it failed because the command was interrupted
		fmt.Fprintln(stderr, "brisk: interrupted")
		return exitInterrupted
	default:
		fmt.Fprintf(stderr, "brisk: %s\n", termSafe(oneLine(err)))
		return exitError
	}
}

// oneLine returns err's message without the "brisk: " prefixes that each layer of the
// library adds (the line gets one of its own), cut at the first newline.
func oneLine(err error) string {
	msg := strings.ReplaceAll(err.Error(), ": brisk: ", ": ")
	for strings.HasPrefix(msg, "brisk: ") {
		msg = strings.TrimPrefix(msg, "brisk: ")
	}
	return firstLine(msg)
}

// firstLine cuts s at its first newline.
func firstLine(s string) string {
	if i := strings.IndexByte(s, '\n'); i >= 0 {
		return s[:i]
	}
	return s
}

// usageError is a mistake in the command line: exit status 2.
type usageError struct{ msg string }

func (e *usageError) Error() string { return e.msg }

func usagef(format string, args ...any) error {
	return &usageError{msg: fmt.Sprintf(format, args...)}
}

// errHelpShown ends a command whose help was asked for: exit status 0.
var errHelpShown = errors.New("help shown")

// parse parses args with fs, letting flags come before, between and after positional
// arguments (the flag package stops at the first positional one). A "--" ends the flags:
// what follows is positional even if it starts with "-". It returns the positional
// arguments, errHelpShown after printing the help for -h/--help, or a usage error.
func (e *env) parse(fs *flag.FlagSet, args []string) ([]string, error) {
	var pos []string
	for {
		if err := fs.Parse(args); err != nil {
			if errors.Is(err, flag.ErrHelp) {
				e.printHelp(fs)
				return nil, errHelpShown
			}
			return nil, usagef("%s", flagError(err))
		}
		rest := fs.Args()
		if len(rest) == 0 {
			return pos, nil
		}
		if consumed := len(args) - len(rest); consumed > 0 && args[consumed-1] == "--" {
			return append(pos, rest...), nil
		}
		pos = append(pos, rest[0])
		args = rest[1:]
	}
}

var (
	flagUnknownRE = regexp.MustCompile(`^flag provided but not defined: -+(.*)$`)
	flagValueRE   = regexp.MustCompile(`^invalid (?:boolean )?value (".*") for flag -+(\S+): (.*)$`)
	flagMissingRE = regexp.MustCompile(`^flag needs an argument: -+(.*)$`)
)

// flagError rewords an error of the flag package in the command's own terms: flags with
// two dashes, as the help shows them, and the value first.
func flagError(err error) string {
	msg := err.Error()
	if m := flagUnknownRE.FindStringSubmatch(msg); m != nil {
		return "unknown flag --" + m[1]
	}
	if m := flagValueRE.FindStringSubmatch(msg); m != nil {
		why := m[3]
		if why == "parse error" {
			why = "invalid value"
		}
		return "--" + m[2] + " " + m[1] + ": " + why
	}
	if m := flagMissingRE.FindStringSubmatch(msg); m != nil {
		return "flag --" + m[1] + " needs a value"
	}
	return msg
}

// durationValue is a flag.Value of a duration whose errors say what is wrong: a number
// without a unit ("--delay 30") asks for one.
type durationValue time.Duration

func (d *durationValue) String() string { return time.Duration(*d).String() }

func (d *durationValue) Get() any { return time.Duration(*d) }

func (d *durationValue) Set(s string) error {
	v, err := time.ParseDuration(s)
	if err != nil {
		if _, nerr := strconv.ParseFloat(s, 64); nerr == nil {
			return fmt.Errorf("a duration needs a unit, such as %ss or %sm", s, s)
		}
		return errors.New("not a duration such as 30s, 5m or 1h30m")
	}
	*d = durationValue(v)
	return nil
}

// durationFlag defines a duration flag (see durationValue).
func durationFlag(fs *flag.FlagSet, name string, def time.Duration, usage string) *time.Duration {
	p := new(time.Duration)
	*p = def
	fs.Var((*durationValue)(p), name, usage)
	return p
}

// printHelp prints the command's usage line, description and flags to stdout.
func (e *env) printHelp(fs *flag.FlagSet) {
	c := e.cmd
	w := e.stdout
	fmt.Fprintf(w, "Usage: %s\n\n%s.\n", strings.TrimSpace("brisk "+c.name+" "+c.synopsis), upperFirst(c.summary))
	if c.detail != "" {
		fmt.Fprintf(w, "\n%s\n", strings.TrimSpace(c.detail))
	}
	fmt.Fprintf(w, "\nFlags:\n")
	tw := tabwriter.NewWriter(w, 0, 8, 2, ' ', 0)
	fs.VisitAll(func(f *flag.Flag) {
		name, usage := flag.UnquoteUsage(f)
		arg := ""
		if name != "" {
			arg = " " + name
		}
		if def := f.DefValue; def != "" && def != "0" && def != "0s" && def != "false" && !strings.Contains(usage, "(default") {
			if g, ok := f.Value.(flag.Getter); ok {
				switch v := g.Get().(type) {
				case string:
					def = strconv.Quote(v)
				case time.Duration:
					def = humanize.Duration(v)
				}
			}
			usage += fmt.Sprintf(" (default %s)", def)
		}
		fmt.Fprintf(tw, "  --%s%s\t%s\n", f.Name, arg, usage)
	})
	fmt.Fprintf(tw, "  -h, --help\tshow this help\n")
	tw.Flush()
}

func upperFirst(s string) string {
	if s == "" {
		return s
	}
	return strings.ToUpper(s[:1]) + s[1:]
}

func printMainHelp(w io.Writer) {
	fmt.Fprintf(w, "brisk is a task queue that keeps its promises on queue latency.\n\n")
	fmt.Fprintf(w, "Usage: brisk COMMAND [flags] [arguments]\n\nCommands:\n")
	tw := tabwriter.NewWriter(w, 0, 8, 2, ' ', 0)
	for _, c := range commands {
		if !c.hidden {
			fmt.Fprintf(tw, "  %s\t%s\n", c.name, c.summary)
		}
	}
	tw.Flush()
	fmt.Fprintf(w, "\nThe broker is named by --broker URL, else $BRISK_BROKER, else %s.\n", brisk.DefaultBrokerURL)
	fmt.Fprintf(w, "Run \"brisk COMMAND --help\" for a command's flags; --json gives machine-readable output.\n")
}

var helpCmd = &command{
	name:     "help",
	synopsis: "[COMMAND]",
	summary:  "show the help of brisk or of one command",
	run: func(ctx context.Context, e *env, fs *flag.FlagSet, args []string) error {
		pos, err := e.parse(fs, args)
		if err != nil {
			return err
		}
		switch len(pos) {
		case 0:
			printMainHelp(e.stdout)
			return nil
		case 1:
			c := lookup(pos[0])
			if c == nil || c.hidden {
				return usagef("unknown command %q", pos[0])
			}
			return c.run(ctx, &env{stdin: e.stdin, stdout: e.stdout, stderr: e.stderr, cmd: c},
				newFlagSet(c), []string{"--help"})
		default:
			return usagef("help takes at most one command, got %d arguments", len(pos))
		}
	},
}

var versionCmd = &command{
	name:     "version",
	synopsis: "",
	summary:  "print brisk's version",
	run: func(ctx context.Context, e *env, fs *flag.FlagSet, args []string) error {
		pos, err := e.parse(fs, args)
		if err != nil {
			return err
		}
		if len(pos) > 0 {
			return usagef("version takes no arguments")
		}
		fmt.Fprintf(e.stdout, "brisk %s\n", brisk.Version)
		return nil
	},
}

// brokerFlag defines the --broker flag every command takes.
func brokerFlag(fs *flag.FlagSet) *string {
	return fs.String("broker", "", "broker `URL` (default $BRISK_BROKER, else "+brisk.DefaultBrokerURL+")")
}

// checkNames returns a usage error, naming the offending character, for the first of
// queues that is not a valid queue name.
func checkNames(queues ...string) error {
	for _, q := range queues {
		if err := brisk.ValidateQueueName(q); err != nil {
			return invalid(err)
		}
	}
	return nil
}

// invalid turns an error of the library wrapping ErrInvalid, about what the command line
// gave, into a usage error without the sentinel's words.
func invalid(err error) error {
	msg := strings.Replace(oneLine(err), brisk.ErrInvalid.Error()+": ", "", 1)
	return usagef("%s", strings.TrimSuffix(msg, ": "+brisk.ErrInvalid.Error()))
}

// jsonFlag defines the --json flag.
func jsonFlag(fs *flag.FlagSet) *bool {
	return fs.Bool("json", false, "print JSON instead of a table")
}

// parseNoArgs parses args with fs for a command that takes no positional argument.
func (e *env) parseNoArgs(fs *flag.FlagSet, args []string) error {
	pos, err := e.parse(fs, args)
	if err != nil {
		return err
	}
	return noArgs(pos)
}

// noArgs returns a usage error when a command that takes no positional argument got some.
func noArgs(pos []string) error {
	if len(pos) > 0 {
		return usagef("unexpected argument %q", pos[0])
	}
	return nil
}
