package proxy

import (
	"errors"
	"fmt"
	"net"
	"net/http"
	"sort"
	"strings"

	"github.com/loupe-dev/loupe/injector"
)

// Route is one site a Router serves: the host names it answers to and the
// handler (its *Proxy) that serves them.
type Route struct {
	// Name names the site in errors.
	Name string
	// Hosts are exact host names ("shop.example.com", "127.0.0.1") or
	// wildcards ("*.example.com", which matches every name ending in
	// ".example.com" but not "example.com" itself). Ports are not part of
	// a host: a request's port is ignored. Matching ignores case and a
	// trailing dot.
	Hosts []string
	// Handler serves the site's requests.
	Handler http.Handler
}

// Router serves several sites on one listener by the request's Host: an
// exact host name first, then the longest matching wildcard. A request
// naming no site's host gets 421 Misdirected Request with a plain page; only
// the health probe (<prefix>healthz) answers on any host, so that a load
// balancer probing by address sees the process up.
type Router struct {
	exact  map[string]http.Handler
	wild   []wildRoute // longest suffix first
	health string
}

type wildRoute struct {
	suffix  string // ".example.com"
	handler http.Handler
}

// NewRouter returns a Router over routes. prefix is where Loupe's own
// routes live ("" for injector.DefaultPrefix). A host claimed by two routes,
// a malformed host and a route without a handler are errors.
func NewRouter(prefix string, routes []Route) (*Router, error) {
	if prefix == "" {
		prefix = injector.DefaultPrefix
	}
	rt := &Router{exact: map[string]http.Handler{}, health: prefix + "healthz"}
	owner := map[string]string{}
	var errs []error
	for _, r := range routes {
		if r.Handler == nil {
			errs = append(errs, fmt.Errorf("site %q has no handler", r.Name))
			continue
		}
		if len(r.Hosts) == 0 {
			errs = append(errs, fmt.Errorf("site %q has no hosts", r.Name))
		}
		for _, h := range r.Hosts {
			h, err := NormalizeHost(h)
			if err != nil {
				errs = append(errs, fmt.Errorf("site %q: %w", r.Name, err))
				continue
			}
			if prev, ok := owner[h]; ok {
				errs = append(errs, fmt.Errorf("site %q: host %s is already site %q's", r.Name, h, prev))
				continue
			}
			owner[h] = r.Name
			if suffix, ok := strings.CutPrefix(h, "*"); ok {
				rt.wild = append(rt.wild, wildRoute{suffix: suffix, handler: r.Handler})
			} else {
				rt.exact[h] = r.Handler
			}
		}
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	sort.SliceStable(rt.wild, func(i, j int) bool { return len(rt.wild[i].suffix) > len(rt.wild[j].suffix) })
	return rt, nil
}

// NormalizeHost checks a configured host (see Route.Hosts) and returns it
// lowercased, without a trailing dot. IPv6 literals are not supported.
func NormalizeHost(h string) (string, error) {
	n := strings.TrimSuffix(strings.ToLower(strings.TrimSpace(h)), ".")
	name, wild := strings.CutPrefix(n, "*.")
	switch {
	case n == "":
		return "", errors.New("empty host")
	case strings.ContainsAny(n, "/@?#[]"):
		return "", fmt.Errorf("host %q is not a host name", h)
	case strings.Contains(n, ":"):
		if _, _, err := net.SplitHostPort(n); err == nil {
			return "", fmt.Errorf("host %q has a port; name the host alone (every port matches)", h)
		}
		return "", fmt.Errorf("host %q is not a host name", h)
	case !validHostName(name) || (wild && !strings.Contains(name, ".") && name != "localhost"):
		return "", fmt.Errorf("host %q is not a host name or a wildcard such as *.example.com", h)
	}
	return n, nil
}

// validHostName reports whether s is a DNS name or an IPv4 address: dot
// separated labels of letters, digits, '-' and '_', none empty or longer
// than 63.
func validHostName(s string) bool {
	if s == "" || len(s) > 253 {
		return false
	}
	for _, label := range strings.Split(s, ".") {
		if label == "" || len(label) > 63 || label[0] == '-' || label[len(label)-1] == '-' {
			return false
		}
		for i := 0; i < len(label); i++ {
			c := label[i]
			if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '-' || c == '_') {
				return false
			}
		}
	}
	return true
}

// Match returns the handler of the site host names, or nil.
func (rt *Router) Match(host string) http.Handler {
	if h, _, err := net.SplitHostPort(host); err == nil {
		host = h
	}
	host = strings.TrimSuffix(strings.ToLower(host), ".")
	if h, ok := rt.exact[host]; ok {
		return h
	}
	for _, w := range rt.wild {
		if len(host) > len(w.suffix) && strings.HasSuffix(host, w.suffix) {
			return w.handler
		}
	}
	return nil
}

func (rt *Router) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if h := rt.Match(r.Host); h != nil {
		h.ServeHTTP(w, r)
		return
	}
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	if r.URL.Path == rt.health && (r.Method == http.MethodGet || r.Method == http.MethodHead) {
		fmt.Fprintln(w, "ok")
		return
	}
	w.WriteHeader(http.StatusMisdirectedRequest)
	fmt.Fprintf(w, "%d %s: this server serves no site named %q.\n",
		http.StatusMisdirectedRequest, http.StatusText(http.StatusMisdirectedRequest), r.Host)
}
