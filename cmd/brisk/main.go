// Command brisk enqueues, inspects, retries and benchmarks brisk tasks from the shell.
// Run "brisk --help" for the commands; they are implemented in internal/cli.
package main

import (
	"os"

	_ "github.com/briskq/brisk/broker/celerybroker" // celery+redis://, celery+amqp:// (Celery's queues, read only)
	_ "github.com/briskq/brisk/broker/rabbitbroker" // amqp:// and amqps://
	_ "github.com/briskq/brisk/broker/redisbroker"  // redis:// and rediss://
	_ "github.com/briskq/brisk/broker/rqbroker"     // rq+redis:// (RQ's queues, read only)
	"github.com/briskq/brisk/internal/cli"
)

func main() {
	os.Exit(cli.Main(os.Args[1:], os.Stdin, os.Stdout, os.Stderr))
}
