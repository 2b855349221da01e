package dashboard

import (
	"errors"
	"net"
	"net/http"
	"net/url"
	"path"
	"strconv"
	"strings"
)

// validHost checks an entry of Options.Hosts: a host name or IP address, with or without
// a port, and nothing else.
func validHost(h string) error {
	name, port := splitHost(h)
	switch {
	case name == "":
		return errors.New("has no host name")
	case strings.ContainsAny(name, "/@?#\\ \t") || strings.ContainsRune(h, '*'):
		return errors.New("is not a host name or host:port")
	case port != "":
		if n, err := strconv.Atoi(port); err != nil || n < 1 || n > 65535 {
			return errors.New("has a port that is not a number from 1 to 65535")
		}
	}
	return nil
}

// splitHost splits a Host header, or an entry of Options.Hosts, into its lower-case name
// (without the brackets of an IPv6 address, or a final dot) and its port ("" when none).
func splitHost(h string) (name, port string) {
	name, port, err := net.SplitHostPort(h)
	if err != nil {
		name, port = strings.TrimSuffix(strings.TrimPrefix(h, "["), "]"), ""
	}
	return strings.TrimSuffix(strings.ToLower(name), "."), port
}

// isLoopbackName reports whether a host name can only mean this machine: localhost, a
// name under .localhost (which browsers resolve to loopback themselves, RFC 6761), or a
// loopback address.
func isLoopbackName(name string) bool {
	if name == "localhost" || strings.HasSuffix(name, ".localhost") {
		return true
	}
	ip := net.ParseIP(name)
	return ip != nil && ip.IsLoopback()
}

// misdirected returns why r's Host header is not one this dashboard answers to, or "".
// Without credentials it answers to loopback names on the port it listens on and to
// Options.Hosts; with credentials and Options.Hosts, to those; with credentials alone, to
// any. A request without a Host header (HTTP/1.0) cannot come from a browser page.
func (h *handler) misdirected(r *http.Request) string {
	credentials := h.opts.Token != "" || h.opts.BasicAuthUser != ""
	if r.Host == "" || (credentials && len(h.opts.Hosts) == 0) {
		return ""
	}
	name, port := splitHost(r.Host)
	if port == "" {
		port = "80"
		if r.TLS != nil {
			port = "443"
		}
	}
	for _, allowed := range h.opts.Hosts {
		an, ap := splitHost(allowed)
		if an == name && (ap == "" || ap == port) {
			return ""
		}
	}
	if isLoopbackName(name) {
		// On the port the connection came in on, when the server says (not when the
		// handler is called without a server, as in tests of a recorder).
		local, ok := r.Context().Value(http.LocalAddrContextKey).(net.Addr)
		if !ok {
			return ""
		}
		if _, lport, err := net.SplitHostPort(local.String()); err != nil || lport == port {
			return ""
		}
	}
	return "host " + strconv.Quote(r.Host) + " is not served here: this dashboard answers to " + h.servedNames() +
		" (add the names it is reached by with --host, Options.Hosts)"
}

// servedNames says which Host headers the dashboard answers to, for misdirected's message.
func (h *handler) servedNames() string {
	names := "localhost and loopback addresses on its port"
	if len(h.opts.Hosts) > 0 {
		names += " and " + strings.Join(h.opts.Hosts, ", ")
	}
	return names
}

// browserRoute reports whether path is a page or a static file, which a browser fetches
// with the dashboard's cookie, rather than the API or /metrics, which programs call with
// an Authorization header.
func browserRoute(p string) bool {
	return !strings.HasPrefix(p, "/api/") && p != "/metrics"
}

// pageRoute reports whether path is a page (not the API, /metrics or a static file).
func pageRoute(p string) bool {
	return browserRoute(p) && !strings.HasPrefix(p, "/static/")
}

// tokenInURL handles a page opened with ?token=T (the link an operator is given): with
// the right token it sets the cookie that later requests of the pages carry, redirects to
// the same URL without the token, so that it stays out of the browser's history, the
// server's logs and the URL the page polls, and returns true. It returns false otherwise,
// and the request goes on to authenticate, where a ?token= counts for nothing.
func (h *handler) tokenInURL(w http.ResponseWriter, r *http.Request) bool {
	if h.opts.Token == "" || (r.Method != http.MethodGet && r.Method != http.MethodHead) || !pageRoute(r.URL.Path) {
		return false
	}
	q := r.URL.Query()
	if !q.Has("token") || !equal(q.Get("token"), h.opts.Token) {
		return false
	}
	http.SetCookie(w, &http.Cookie{
		Name: tokenCookie, Value: h.opts.Token, Path: h.basePath + "/", HttpOnly: true,
		SameSite: http.SameSiteStrictMode, Secure: r.TLS != nil,
	})
	q.Del("token")
	target := h.basePath + r.URL.EscapedPath()
	if len(q) > 0 {
		target += "?" + q.Encode()
	}
	w.Header().Set("Cache-Control", "no-store")
	http.Redirect(w, r, target, http.StatusSeeOther)
	return true
}

// apiNoRoute answers an API request that no route takes: 405 with Allow when the path is
// a route of other methods, else 404, both in the API's JSON shape.
func (h *handler) apiNoRoute(w http.ResponseWriter, r *http.Request) {
	var allow []string
	for _, m := range []string{http.MethodGet, http.MethodHead, http.MethodPost, http.MethodPut, http.MethodPatch, http.MethodDelete} {
		probe := r.Clone(r.Context())
		probe.Method = m
		if _, pattern := h.mux.Handler(probe); pattern != "" && pattern != "/api/" {
			allow = append(allow, m)
		}
	}
	if len(allow) > 0 {
		w.Header().Set("Allow", strings.Join(allow, ", "))
		writeError(w, http.StatusMethodNotAllowed, "method "+r.Method+" not allowed on "+r.URL.Path+" (allowed: "+strings.Join(allow, ", ")+")")
		return
	}
	writeError(w, http.StatusNotFound, "no route "+r.Method+" "+r.URL.Path)
}

// localPath returns next when it is a clean absolute path of this site (with a query, no
// fragment), else def: never anything a browser would read as another host, such as
// "//evil.example", "/\evil.example", or "/\t/evil.example" (browsers drop tabs and
// newlines from URLs).
func localPath(next, def string) string {
	if !strings.HasPrefix(next, "/") || strings.HasPrefix(next, "//") || strings.ContainsAny(next, "\\#") {
		return def
	}
	u, err := url.Parse(next)
	if err != nil || u.Scheme != "" || u.Host != "" || u.User != nil || u.Opaque != "" ||
		hasControl(next) || hasControl(u.Path) {
		return def
	}
	if clean := path.Clean(u.Path); clean != u.Path && clean+"/" != u.Path {
		return def
	}
	return next
}

// hasControl reports whether s holds an ASCII control character.
func hasControl(s string) bool {
	return strings.ContainsFunc(s, func(c rune) bool { return c < 0x20 || c == 0x7f })
}
