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
	"strconv"
	"strings"
	"time"

	"github.com/briskq/brisk"
	"github.com/briskq/brisk/dashboard"
)

var dashboardCmd = &command{
	name:     "dashboard",
	synopsis: "[--listen ADDR] [--token T | --basic-auth USER:PASS] [--host NAME] [--read-only] [--autoscaler URL] [flags]",
	summary:  "serve the web dashboard and the JSON HTTP API (/api/v1)",
	detail: `
It serves the pages (queues with latency against SLA, a latency chart per queue, workers,
tasks, retry and delete of dead tasks) and the JSON API documented in docs/api.md until
interrupted. The store must exist: the dashboard does not create one.

It listens on 127.0.0.1:7070 by default. On any address that is not a loopback one it
refuses to start unless --token or --basic-auth is given: anyone who can reach it could
otherwise read payloads and enqueue tasks. With --token, API clients and Prometheus send
"Authorization: Bearer T"; a browser opens a page once with ?token=T, which the dashboard
keeps in a cookie before it redirects to the page without it. Keep credentials out of the
process list: the token may come from --token-file FILE or $BRISK_DASHBOARD_TOKEN, and
USER:PASS from --basic-auth-file FILE or $BRISK_DASHBOARD_BASIC_AUTH (a file's first line).

The Host of every request is checked (against DNS rebinding, where a page of another
site has its name point at this machine): without credentials only localhost and
loopback addresses on the listening port are served; with credentials, any name, unless
--host lists the names the dashboard is reached by (then those and loopback). Others get
421. Behind a reverse proxy, pass the original Host and list it with --host.

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
	tokenFile := fs.String("token-file", "", "read the bearer token from the first line of `FILE`")
	basic := fs.String("basic-auth", "", "require HTTP basic authentication as `USER:PASS` (default $BRISK_DASHBOARD_BASIC_AUTH)")
	basicFile := fs.String("basic-auth-file", "", "read USER:PASS from the first line of `FILE`")
	var hosts listFlag
	fs.Var(&hosts, "host", "also answer to the host `NAME` or NAME:PORT (repeatable)")
	readOnly := fs.Bool("read-only", false, "refuse every change (enqueue, retry and delete of dead tasks, pause, resume, queue delete)")
	autoscaler := fs.String("autoscaler", "", "draw the decisions of the autoscaler serving metrics at `URL` on the charts")
	pos, err := e.parse(fs, args)
	if err != nil {
		return err
	}
	if err := noArgs(pos); err != nil {
		return err
	}
	if *token, err = secret("--token", *token, *tokenFile, "BRISK_DASHBOARD_TOKEN"); err != nil {
		return err
	}
	if *basic, err = secret("--basic-auth", *basic, *basicFile, "BRISK_DASHBOARD_BASIC_AUTH"); err != nil {
		return err
	}
	opts := dashboard.Options{Token: *token, ReadOnly: *readOnly, AutoscalerURL: *autoscaler, Hosts: hosts,
		Logger: slog.New(slog.NewTextHandler(e.stderr, nil))}
	if u, err := url.Parse(*autoscaler); *autoscaler != "" && (err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "") {
		return usagef("--autoscaler %q is not an http:// or https:// URL", *autoscaler)
	}
	if *basic != "" {
		user, pass, ok := strings.Cut(*basic, ":")
		if !ok || user == "" || pass == "" {
			return usagef("--basic-auth (or its file or variable) is not USER:PASS")
		}
		opts.BasicAuthUser, opts.BasicAuthPassword = user, pass
	}
	host, err := listenAddr("--listen", *listen)
	if err != nil {
		return err
	}
	if !isLoopback(host) && opts.Token == "" && opts.BasicAuthUser == "" {
		return fmt.Errorf("refusing to listen on %s without authentication: give --token or --basic-auth, or listen on 127.0.0.1", *listen)
	}
	// Check the options before the broker is opened, so that a usage error is one.
	if err := opts.Validate(); err != nil {
		return usagef("%s", strings.TrimPrefix(strings.Replace(err.Error(), "Options.Hosts", "--host", 1), brisk.ErrInvalid.Error()+": dashboard: "))
	}

	if watches(brisk.BrokerURL(*brokerURL)) {
		opts.ReadOnly = true // the broker refuses every change: show no button that would try
	}
	c, err := e.openClient(ctx, *brokerURL, needsStore)
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
	defer h.Close()
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

// secret returns a credential given on the command line (flag), else read from the first
// line of file, else from the environment variable env. A flag shows in the process list;
// a file or the environment does not.
func secret(name, flagValue, file, env string) (string, error) {
	switch {
	case flagValue != "" && file != "":
		return "", usagef("give %s or %s-file, not both", name, name)
	case flagValue != "":
		return flagValue, nil
	case file != "":
		b, err := os.ReadFile(file)
		if err != nil {
			return "", usagef("%s-file: %v", name, err)
		}
		v := strings.TrimSpace(firstLine(string(b)))
		if v == "" {
			return "", usagef("%s-file %s is empty", name, file)
		}
		return v, nil
	}
	return os.Getenv(env), nil
}

// listenAddr checks a listen address (host:port, the port a number from 0 to 65535) and
// returns its host; a bad one is a usage error naming flag.
func listenAddr(flagName, addr string) (string, error) {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return "", usagef("%s %q is not host:port", flagName, addr)
	}
	if n, err := strconv.Atoi(port); err != nil || n < 0 || n > 65535 {
		return "", usagef("%s %q: the port must be a number from 0 to 65535", flagName, addr)
	}
	return host, nil
}

// watches reports whether a broker URL names a read-only broker that watches another
// system's queues (celery+…, rq+…).
func watches(rawURL string) bool {
	scheme, _, _ := strings.Cut(rawURL, "://")
	return strings.HasPrefix(scheme, "celery+") || strings.HasPrefix(scheme, "rq+")
}
