package cli

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"os"
	"strings"
	"time"

	"github.com/briskq/brisk"
	"github.com/briskq/brisk/dashboard"
)

var dashboardCmd = &command{
	name:     "dashboard",
	synopsis: "[--listen ADDR] [--token T | --basic-auth USER:PASS] [--read-only] [--autoscaler URL] [flags]",
	summary:  "serve the web dashboard and the JSON HTTP API (/api/v1)",
	detail: `
It serves the pages (queues with latency against SLA, a latency chart per queue, workers,
tasks, retry and delete of dead tasks) and the JSON API documented in docs/api.md until
interrupted.

It listens on 127.0.0.1:7070 by default. On any address that is not a loopback one it
refuses to start unless --token or --basic-auth is given: anyone who can reach it could
otherwise read payloads and enqueue tasks. With --token, API clients send
"Authorization: Bearer T" and a browser opens the pages once with ?token=T. The token may
also come from $BRISK_DASHBOARD_TOKEN, which keeps it out of the process list.

--autoscaler URL is the address of a running "brisk autoscale --metrics ADDR"
(e.g. http://127.0.0.1:9090): the dashboard reads its /decisions at every sample and
draws the last hour's decisions on each queue's latency chart, as ticks marked with the
desired worker count (hover for current -> desired and the reason). When it cannot be
read the dashboard logs it once and shows the charts without them.

On a broker that watches Celery's or RQ's queues (celery+redis://, celery+amqp://,
rq+redis://) the dashboard is read-only: those brokers refuse every change.

Example:
  brisk dashboard --autoscaler http://127.0.0.1:9090`,
	run: runDashboard,
}

func runDashboard(ctx context.Context, e *env, fs *flag.FlagSet, args []string) error {
	brokerURL := brokerFlag(fs)
	listen := fs.String("listen", "127.0.0.1:7070", "listen on `ADDR` (host:port)")
	token := fs.String("token", "", "require bearer token `T` (default $BRISK_DASHBOARD_TOKEN)")
	basic := fs.String("basic-auth", "", "require HTTP basic authentication as `USER:PASS`")
	readOnly := fs.Bool("read-only", false, "refuse every change (enqueue, retry, delete)")
	autoscaler := fs.String("autoscaler", "", "draw the decisions of the autoscaler serving metrics at `URL` on the charts")
	pos, err := e.parse(fs, args)
	if err != nil {
		return err
	}
	if err := noArgs(pos); err != nil {
		return err
	}
	if *token == "" {
		*token = os.Getenv("BRISK_DASHBOARD_TOKEN")
	}
	opts := dashboard.Options{Token: *token, ReadOnly: *readOnly, AutoscalerURL: *autoscaler,
		Logger: slog.New(slog.NewTextHandler(e.stderr, nil))}
	if u, err := url.Parse(*autoscaler); *autoscaler != "" && (err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "") {
		return usagef("--autoscaler %q is not an http:// or https:// URL", *autoscaler)
	}
	if *basic != "" {
		user, pass, ok := strings.Cut(*basic, ":")
		if !ok || user == "" || pass == "" {
			return usagef("--basic-auth %q is not USER:PASS", *basic)
		}
		opts.BasicAuthUser, opts.BasicAuthPassword = user, pass
	}
	host, _, err := net.SplitHostPort(*listen)
	if err != nil {
		return usagef("--listen %q is not host:port", *listen)
	}
	if !isLoopback(host) && opts.Token == "" && opts.BasicAuthUser == "" {
		return fmt.Errorf("refusing to listen on %s without authentication: give --token or --basic-auth, or listen on 127.0.0.1", *listen)
	}

	if watches(brisk.BrokerURL(*brokerURL)) {
		opts.ReadOnly = true // the broker refuses every change: show no button that would try
	}
	c, err := openClient(ctx, *brokerURL)
	if err != nil {
		return err
	}
	defer closeClient(c)
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	opts.Context = ctx
	h, err := dashboard.New(c.Broker(), opts)
	if err != nil {
		return err
	}
	ln, err := net.Listen("tcp", *listen)
	if err != nil {
		return err
	}
	srv := &http.Server{Handler: h, ReadHeaderTimeout: 10 * time.Second, ReadTimeout: time.Minute, IdleTimeout: 2 * time.Minute}
	fmt.Fprintf(e.stdout, "brisk dashboard on http://%s/ (Ctrl-C to stop)\n", ln.Addr())
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ln) }()
	select {
	case err := <-done:
		return err
	case <-ctx.Done():
	}
	shutCtx, stop := context.WithTimeout(context.Background(), 5*time.Second)
	defer stop()
	if err := srv.Shutdown(shutCtx); err != nil {
		return err
	}
	if err := <-done; err != nil && !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return ctx.Err()
}

// isLoopback reports whether host (of --listen) only accepts connections from this machine.
// An empty host or an unspecified address listens everywhere.
func isLoopback(host string) bool {
	if strings.EqualFold(host, "localhost") {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// watches reports whether a broker URL names a read-only broker that watches another
// system's queues (celery+…, rq+…).
func watches(rawURL string) bool {
	scheme, _, _ := strings.Cut(rawURL, "://")
	return strings.HasPrefix(scheme, "celery+") || strings.HasPrefix(scheme, "rq+")
}
