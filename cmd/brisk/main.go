// Command brisk enqueues, inspects, retries and benchmarks brisk tasks from the shell, and
// runs workers, the dashboard and the autoscaler. Run "brisk --help" for the commands; they
// are implemented in internal/cli, which knows every broker.
package main

import (
	"os"

	"github.com/briskq/brisk/internal/cli"
)

func main() {
	os.Exit(cli.Main(os.Args[1:], os.Stdin, os.Stdout, os.Stderr))
}
