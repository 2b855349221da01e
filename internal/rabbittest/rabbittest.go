// Package rabbittest gives tests a RabbitMQ to talk to: the URL of a reachable server and a
// fresh store prefix whose queues and exchanges are deleted when the test ends.
package rabbittest

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"regexp"
	"testing"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/briskq/brisk/internal/testenv"
)

// URL returns the AMQP URL tests use: $BRISK_AMQP_URL, default the local RabbitMQ with the
// guest user. When it does not answer, the test fails under CI ($CI set) and is skipped out
// loud elsewhere.
func URL(t testing.TB) string {
	t.Helper()
	raw := os.Getenv("BRISK_AMQP_URL")
	if raw == "" {
		raw = "amqp://guest:guest@127.0.0.1:5672/"
	}
	conn, err := amqp.DialConfig(raw, amqp.Config{Dial: amqp.DefaultDial(2 * time.Second)})
	if err != nil {
		testenv.Missing(t, "no RabbitMQ at %s (set BRISK_AMQP_URL, or start it: rabbitmq-server -detached): %v", redact(raw), err)
	}
	_ = conn.Close()
	return raw
}

// ManagementURL returns the management API of the RabbitMQ of raw (port 15672, the same
// credentials), failing the test under CI and skipping it out loud elsewhere when it does not
// answer.
func ManagementURL(t testing.TB, raw string) string {
	t.Helper()
	m := managementURL(raw)
	if _, err := get(m, "/api/overview"); err != nil {
		testenv.Missing(t, "no RabbitMQ management API at %s (rabbitmq-plugins enable rabbitmq_management): %v", redact(m), err)
	}
	return m
}

func managementURL(raw string) string {
	u, _ := url.Parse(raw)
	m := url.URL{Scheme: "http", Host: u.Hostname() + ":15672", User: u.User}
	return m.String()
}

// NewPrefix returns a fresh random store prefix (starting with name) whose queues and
// exchanges are deleted when t ends.
func NewPrefix(t testing.TB, raw, name string) string {
	t.Helper()
	return testenv.NewPrefix(t, name, func(prefix string) { Clean(t, raw, prefix) })
}

// Clean deletes the queues, streams and exchanges whose names start with prefix and a dot,
// found through the management API.
func Clean(t testing.TB, raw, prefix string) {
	m := managementURL(raw)
	vhost := "/"
	if u, err := url.Parse(raw); err == nil && len(u.Path) > 1 {
		vhost, _ = url.PathUnescape(u.Path[1:])
	}
	pattern := "^" + regexp.QuoteMeta(prefix+".")
	for _, kind := range []string{"queues", "exchanges"} {
		path := fmt.Sprintf("/api/%s/%s?page=1&page_size=500&use_regex=true&columns=name&name=%s", kind, url.PathEscape(vhost), url.QueryEscape(pattern))
		for range 20 { // pages of 500
			body, err := get(m, path)
			if err != nil {
				t.Logf("cleaning %s of %s: %v", kind, prefix, err)
				return
			}
			var page struct {
				Items []struct {
					Name string `json:"name"`
				} `json:"items"`
			}
			if err := json.Unmarshal(body, &page); err != nil {
				t.Logf("cleaning %s of %s: %v", kind, prefix, err)
				return
			}
			if len(page.Items) == 0 {
				break
			}
			for _, it := range page.Items {
				if err := del(m, fmt.Sprintf("/api/%s/%s/%s", kind, url.PathEscape(vhost), url.PathEscape(it.Name))); err != nil {
					t.Logf("cleaning %s %s: %v", kind, it.Name, err)
					return
				}
			}
		}
	}
}

var client = &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{DisableKeepAlives: true}}

// request sends one management API request and returns the body of a 2xx or 404 answer.
// A 5xx answer is retried, up to 10 tries 200 ms apart: RabbitMQ 3.10 answers a listing
// of queues with 500 while any queue of the virtual host is being created or deleted
// (rabbit_amqqueue_process:format/1 fails on a queue without a process yet), which
// parallel tests do all the time, and a cleanup that gave up there left queues behind.
func request(method, base, path string) ([]byte, error) {
	u, err := url.Parse(base)
	if err != nil {
		return nil, err
	}
	for try := 1; ; try++ {
		req, err := http.NewRequest(method, u.Scheme+"://"+u.Host+path, nil)
		if err != nil {
			return nil, err
		}
		if u.User != nil {
			pw, _ := u.User.Password()
			req.SetBasicAuth(u.User.Username(), pw)
		}
		resp, err := client.Do(req)
		if err != nil {
			return nil, err
		}
		body, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		switch {
		case resp.StatusCode/100 == 5 && try < 10:
			time.Sleep(200 * time.Millisecond)
			continue
		case resp.StatusCode/100 != 2 && resp.StatusCode != http.StatusNotFound:
			return nil, fmt.Errorf("%s %s: %s", method, path, resp.Status)
		}
		return body, err
	}
}

func get(base, path string) ([]byte, error) { return request(http.MethodGet, base, path) }

func del(base, path string) error {
	_, err := request(http.MethodDelete, base, path)
	return err
}

func redact(raw string) string {
	u, err := url.Parse(raw)
	if err != nil {
		return "(bad url)"
	}
	return u.Redacted()
}

// Describe returns one line per queue whose name starts with the prefix of the store URL raw
// (its prefix parameter): the management API's message counts, for a failing test's log.
// Messages dead-lettered by a quorum queue but not yet confirmed by their target are in
// messages but neither ready nor unacknowledged.
func Describe(raw string) string {
	u, err := url.Parse(raw)
	if err != nil {
		return err.Error()
	}
	prefix := u.Query().Get("prefix")
	u.RawQuery = ""
	m := managementURL(u.String())
	path := "/api/queues?page=1&page_size=500&use_regex=true&columns=name,messages,messages_ready,messages_unacknowledged,consumers,state&name=" +
		url.QueryEscape("^"+regexp.QuoteMeta(prefix+"."))
	body, err := get(m, path)
	if err != nil {
		return err.Error()
	}
	var page struct {
		Items []struct {
			Name      string `json:"name"`
			Messages  int    `json:"messages"`
			Ready     int    `json:"messages_ready"`
			Unacked   int    `json:"messages_unacknowledged"`
			Consumers int    `json:"consumers"`
			State     string `json:"state"`
		} `json:"items"`
	}
	if err := json.Unmarshal(body, &page); err != nil {
		return err.Error()
	}
	var out string
	for _, q := range page.Items {
		out += fmt.Sprintf("\n  %s: messages %d, ready %d, unacked %d, consumers %d, %s", q.Name, q.Messages, q.Ready, q.Unacked, q.Consumers, q.State)
	}
	return out
}
