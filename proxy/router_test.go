package proxy

import (
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

func named(name string) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, name) })
}

func TestRouterMatch(t *testing.T) {
	rt, err := NewRouter("", []Route{
		{Name: "shop", Hosts: []string{"shop.example.com", "www.Shop.example.com."}, Handler: named("shop")},
		{Name: "tenants", Hosts: []string{"*.example.com"}, Handler: named("tenants")},
		{Name: "eu", Hosts: []string{"*.eu.example.com"}, Handler: named("eu")},
		{Name: "local", Hosts: []string{"127.0.0.1", "localhost"}, Handler: named("local")},
	})
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct{ host, want string }{
		{"shop.example.com", "shop"},
		{"SHOP.example.com:8443", "shop"},
		{"www.shop.example.com", "shop"}, // explicit before wildcard
		{"shop.example.com.", "shop"},
		{"a.example.com", "tenants"},
		{"a.b.example.com", "tenants"},
		{"x.eu.example.com", "eu"}, // longest wildcard
		{"eu.example.com", "tenants"},
		{"127.0.0.1:8080", "local"},
		{"localhost", "local"},
		{"example.com", ""},
		{"evil.com", ""},
		{"", ""},
	}
	for _, tt := range tests {
		h := rt.Match(tt.host)
		got := ""
		if h != nil {
			rec := httptest.NewRecorder()
			h.ServeHTTP(rec, httptest.NewRequest("GET", "/", nil))
			got = rec.Body.String()
		}
		if got != tt.want {
			t.Errorf("Match(%q) = %q, want %q", tt.host, got, tt.want)
		}
	}
}

func TestRouterUnknownHost(t *testing.T) {
	rt, err := NewRouter("", []Route{{Name: "a", Hosts: []string{"a.test"}, Handler: named("a")}})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(rt)
	defer srv.Close()
	req, _ := http.NewRequest("GET", srv.URL+"/", nil)
	req.Host = "b.test"
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusMisdirectedRequest || !strings.Contains(string(body), `"b.test"`) ||
		!strings.HasPrefix(resp.Header.Get("Content-Type"), "text/plain") {
		t.Errorf("unknown host: %d %q %q, want a plain 421 naming the host", resp.StatusCode, resp.Header.Get("Content-Type"), body)
	}
	// The health probe answers on any host.
	req, _ = http.NewRequest("GET", srv.URL+"/__loupe/healthz", nil)
	resp, err = http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Errorf("healthz by address: %d, want 200", resp.StatusCode)
	}
}

// TestRouterTwoSites: two proxies with their own upstreams behind one
// router; each host reaches its own origin.
func TestRouterTwoSites(t *testing.T) {
	origin := func(name string) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Type", "text/plain")
			io.WriteString(w, name+" "+r.URL.Path)
		})
	}
	a, _ := mustProxy(t, origin("origin-a"), nil)
	b, _ := mustProxy(t, origin("origin-b"), nil)
	rt, err := NewRouter("", []Route{
		{Name: "a", Hosts: []string{"a.test"}, Handler: a.Config.Handler},
		{Name: "b", Hosts: []string{"*.b.test"}, Handler: b.Config.Handler},
	})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(rt)
	defer srv.Close()
	for host, want := range map[string]string{"a.test": "origin-a /x", "www.b.test": "origin-b /x", "b.test": "421"} {
		req, _ := http.NewRequest("GET", srv.URL+"/x", nil)
		req.Host = host
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if !strings.HasPrefix(string(body), want) {
			t.Errorf("Host %s: got %d %q, want %q", host, resp.StatusCode, body, want)
		}
	}
}

func TestNewRouterErrors(t *testing.T) {
	h := named("x")
	tests := []struct {
		routes []Route
		want   string
	}{
		{[]Route{{Name: "a", Hosts: []string{"x.test"}, Handler: h}, {Name: "b", Hosts: []string{"X.test"}, Handler: h}}, `site "b": host x.test is already site "a"'s`},
		{[]Route{{Name: "a", Hosts: []string{"x.test:8080"}, Handler: h}}, "has a port"},
		{[]Route{{Name: "a", Hosts: []string{"http://x.test"}, Handler: h}}, "is not a host name"},
		{[]Route{{Name: "a", Hosts: []string{"*"}, Handler: h}}, "is not a host name or a wildcard"},
		{[]Route{{Name: "a", Hosts: []string{"a.*.test"}, Handler: h}}, "is not a host name or a wildcard"},
		{[]Route{{Name: "a", Hosts: []string{"*.com"}, Handler: h}}, "is not a host name or a wildcard"},
		{[]Route{{Name: "a", Hosts: []string{"*.localhost", "10.0.0.1"}, Handler: h}}, ""},
		{[]Route{{Name: "a", Hosts: []string{""}, Handler: h}}, "empty host"},
		{[]Route{{Name: "a", Hosts: nil, Handler: h}}, "has no hosts"},
		{[]Route{{Name: "a", Hosts: []string{"x.test"}}}, "has no handler"},
	}
	for _, tt := range tests {
		_, err := NewRouter("", tt.routes)
		switch {
		case tt.want == "" && err != nil:
			t.Errorf("%+v: %v", tt.routes, err)
		case tt.want != "" && (err == nil || !strings.Contains(err.Error(), tt.want)):
			t.Errorf("%+v: got %v, want %q", tt.routes, err, tt.want)
		}
	}
}
