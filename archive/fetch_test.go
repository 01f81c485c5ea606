package archive

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// fakeClock is a settable clock.
type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *fakeClock) now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *fakeClock) add(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

// origin is a test server counting requests and connections.
type origin struct {
	*httptest.Server
	hits, conns atomic.Int64
}

func newOrigin(tb testing.TB, h http.HandlerFunc) *origin {
	tb.Helper()
	o := &origin{}
	o.Server = httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		o.hits.Add(1)
		h(w, r)
	}))
	o.Config.ConnState = func(_ net.Conn, s http.ConnState) {
		if s == http.StateNew {
			o.conns.Add(1)
		}
	}
	o.Start()
	tb.Cleanup(o.Close)
	return o
}

// fetchArchiver returns an Archiver allowed to fetch from the origins.
func fetchArchiver(tb testing.TB, st *fakeStore, edit func(*Config), allow ...*origin) *Archiver {
	tb.Helper()
	return mustArchiver(tb, st, func(c *Config) {
		for _, o := range allow {
			c.Fetch.AllowPrivate = append(c.Fetch.AllowPrivate, o.Listener.Addr().String())
		}
		c.Fetch.Backoff = time.Millisecond
		if edit != nil {
			edit(c)
		}
	})
}

func TestFetchStores(t *testing.T) {
	css := cssBody(3000)
	o := newOrigin(t, func(w http.ResponseWriter, r *http.Request) {
		if got := r.Header.Get("User-Agent"); got != "test-agent" {
			t.Errorf("got User-Agent %q, want %q", got, "test-agent")
		}
		w.Header().Set("Content-Type", "text/css")
		w.Write(css)
	})
	st := newFakeStore()
	a := fetchArchiver(t, st, func(c *Config) { c.Fetch.UserAgent = "test-agent" }, o)
	a.Want([]string{o.URL + "/a.css#frag", "not a url", "data:image/png;base64,AA"})
	waitFor(t, "fetch", func() bool { return a.Stats().Fetched == 1 })
	if b, ct := st.body(o.URL + "/a.css"); string(b) != string(css) || ct != "text/css" {
		t.Errorf("got %d bytes of %q, want %d bytes of text/css", len(b), ct, len(css))
	}
	if got := a.Stats().FetchSkipped; got != 2 {
		t.Errorf("got %d skipped, want 2 (the invalid URLs)", got)
	}
	// Known now: neither the cache nor the store lets it be fetched again.
	a.Want([]string{o.URL + "/a.css"})
	a.recent.Clear()
	a.Want([]string{o.URL + "/a.css"})
	waitFor(t, "skips", func() bool { return a.Stats().FetchSkipped == 4 })
	if got := o.hits.Load(); got != 1 {
		t.Errorf("got %d requests, want 1", got)
	}
}

// TestFetchStylesheetSubresources: a fetched stylesheet's fonts and
// images are fetched too; the visitor loaded them from that other origin.
func TestFetchStylesheetSubresources(t *testing.T) {
	o := newOrigin(t, func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/css/site.css":
			w.Header().Set("Content-Type", "text/css")
			w.Write([]byte(`@font-face{src:url(../f/a.woff2)} body{background:url("/img/bg.png")}`))
		case "/f/a.woff2":
			w.Header().Set("Content-Type", "font/woff2")
			w.Write([]byte("wOF2font"))
		case "/img/bg.png":
			w.Header().Set("Content-Type", "image/png")
			w.Write([]byte("\x89PNG\r\n\x1a\nimage"))
		default:
			http.NotFound(w, r)
		}
	})
	st := newFakeStore()
	a := fetchArchiver(t, st, nil, o)
	a.Want([]string{o.URL + "/css/site.css"})
	waitFor(t, "stylesheet and its subresources", func() bool { return a.Stats().Fetched == 3 })
	for _, u := range []string{"/f/a.woff2", "/img/bg.png"} {
		if b, _ := st.body(o.URL + u); len(b) == 0 {
			t.Errorf("%s was not archived", u)
		}
	}
}

// TestFetchSiteOrigin: a URL on the site's own host is fetched from its
// upstream, with the site's Host, and archived under the site's URL.
func TestFetchSiteOrigin(t *testing.T) {
	var gotHost atomic.Value
	o := newOrigin(t, func(w http.ResponseWriter, r *http.Request) {
		gotHost.Store(r.Host)
		w.Header().Set("Content-Type", "image/png")
		w.Write([]byte("\x89PNG\r\n\x1a\n2x"))
	})
	up, _ := url.Parse(o.URL)
	st := newFakeStore()
	a := fetchArchiver(t, st, func(c *Config) {
		c.Fetch.Origins = map[string]*url.URL{"shop.example:8080": up}
	}, o)
	a.Want([]string{"http://shop.example:8080/img/a@2x.png"})
	waitFor(t, "fetch", func() bool { return a.Stats().Fetched == 1 })
	if b, _ := st.body("http://shop.example:8080/img/a@2x.png"); len(b) == 0 {
		t.Error("not archived under the site's URL")
	}
	if h, _ := gotHost.Load().(string); h != "shop.example:8080" {
		t.Errorf("upstream got Host %q, want the site's shop.example:8080", h)
	}
}

// TestFetchRefusesLoopback: a loopback origin that is not an upstream is
// refused before any connection, directly or through a redirect.
func TestFetchRefusesLoopback(t *testing.T) {
	secret := newOrigin(t, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "image/png")
		w.Write([]byte("\x89PNG\r\n\x1a\n"))
	})
	redirector := newOrigin(t, func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, secret.URL+"/i.png", http.StatusFound)
	})
	tests := []struct {
		name  string
		allow []*origin
		url   string
	}{
		{"direct", nil, secret.URL + "/i.png"},
		{"redirect", []*origin{redirector}, redirector.URL + "/r.png"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			before := secret.conns.Load()
			st := newFakeStore()
			a := fetchArchiver(t, st, nil, tt.allow...)
			a.Want([]string{tt.url})
			waitFor(t, "failure", func() bool { return a.Stats().FetchFailed == 1 })
			if got := secret.conns.Load() - before; got != 0 {
				t.Errorf("got %d connections to the refused origin, want 0", got)
			}
			if got := st.putCount(); got != 0 {
				t.Errorf("got %d stored, want 0", got)
			}
		})
	}
}

func TestFetchPublic(t *testing.T) {
	tests := []struct {
		ip   string
		want bool
	}{
		{"93.184.216.34", true},
		{"2606:2800:220:1::1", true},
		{"127.0.0.1", false},
		{"::1", false},
		{"10.1.2.3", false},
		{"172.16.0.1", false},
		{"192.168.1.1", false},
		{"169.254.169.254", false},
		{"fe80::1", false},
		{"fc00::1", false},
		{"0.0.0.0", false},
		{"::", false},
		{"224.0.0.1", false},
		{"ff02::1", false},
		{"100.64.0.1", false},
		{"::ffff:127.0.0.1", false},
		{"::ffff:10.0.0.1", false},
	}
	for _, tt := range tests {
		t.Run(tt.ip, func(t *testing.T) {
			if got := fetchPublic(netip.MustParseAddr(tt.ip)); got != tt.want {
				t.Errorf("fetchPublic(%s) = %v, want %v", tt.ip, got, tt.want)
			}
		})
	}
}

func TestFetchRejects(t *testing.T) {
	tests := []struct {
		name    string
		handler http.HandlerFunc
	}{
		{"html type", func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Type", "text/html; charset=utf-8")
			w.Write([]byte("<p>not found</p>"))
		}},
		{"html body labelled css", func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Type", "text/css")
			w.Write([]byte("\n<!DOCTYPE html><html><body>Sign in</body></html>"))
		}},
		{"html body behind a comment", func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Type", "image/png")
			w.Write([]byte("<!-- cdn --><html><body>Error</body></html>"))
		}},
		{"html body unlabelled", func(w http.ResponseWriter, r *http.Request) {
			w.Header()["Content-Type"] = nil
			w.Write([]byte("<html><body>Error</body></html>"))
		}},
		{"not archivable", func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Type", "application/json")
			w.Write([]byte(`{}`))
		}},
		{"404", func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Type", "image/png")
			w.WriteHeader(http.StatusNotFound)
		}},
		{"too large", func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Type", "text/css")
			w.Write(cssBody(2000))
		}},
		{"too large, chunked", func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Type", "text/css")
			w.Write(cssBody(600))
			w.(http.Flusher).Flush()
			w.Write(cssBody(600))
		}},
		{"redirect loop", func(w http.ResponseWriter, r *http.Request) {
			http.Redirect(w, r, r.URL.Path+"x", http.StatusFound)
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			o := newOrigin(t, tt.handler)
			st := newFakeStore()
			a := fetchArchiver(t, st, func(c *Config) { c.Policy.MaxBytes = 1000 }, o)
			a.Want([]string{o.URL + "/a"})
			waitFor(t, "failure", func() bool { return a.Stats().FetchFailed == 1 })
			if got := st.putCount(); got != 0 {
				t.Errorf("got %d stored, want 0", got)
			}
			if got := o.hits.Load(); got > 1+fetchMaxRedirects {
				t.Errorf("got %d requests, want at most %d (no retries)", got, 1+fetchMaxRedirects)
			}
		})
	}
	t.Run("css starting with a comment is kept", func(t *testing.T) {
		o := newOrigin(t, func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Type", "text/css")
			w.Write([]byte("<!-- old -->\nbody { color: red }"))
		})
		a := fetchArchiver(t, newFakeStore(), nil, o)
		a.Want([]string{o.URL + "/a.css"})
		waitFor(t, "fetch", func() bool { return a.Stats().Fetched == 1 })
	})
}

func TestFetchRetries(t *testing.T) {
	tests := []struct {
		name      string
		fails     int      // responses before success
		header    []string // on failing responses
		status    int
		retries   int
		wantWaits []time.Duration
		wantOK    bool
	}{
		{"retry-after seconds", 1, []string{"Retry-After", "7"}, http.StatusServiceUnavailable, 0, []time.Duration{7 * time.Second}, true},
		{"retry-after capped", 1, []string{"Retry-After", "3600"}, http.StatusTooManyRequests, 0, []time.Duration{time.Minute}, true},
		{"exponential backoff", 2, nil, http.StatusBadGateway, 0, []time.Duration{time.Millisecond, 2 * time.Millisecond}, true},
		{"gives up", 10, nil, http.StatusInternalServerError, 2, []time.Duration{time.Millisecond, 2 * time.Millisecond}, false},
		{"no retry on 403", 1, nil, http.StatusForbidden, 0, nil, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var n atomic.Int64
			o := newOrigin(t, func(w http.ResponseWriter, r *http.Request) {
				if int(n.Add(1)) <= tt.fails {
					for i := 0; i+1 < len(tt.header); i += 2 {
						w.Header().Set(tt.header[i], tt.header[i+1])
					}
					w.WriteHeader(tt.status)
					return
				}
				w.Header().Set("Content-Type", "image/gif")
				w.Write([]byte("GIF89a"))
			})
			a := fetchArchiver(t, newFakeStore(), func(c *Config) { c.Fetch.Retries = tt.retries }, o)
			var mu sync.Mutex
			var waits []time.Duration
			a.fetch.sleep = func(_ context.Context, d time.Duration) error {
				mu.Lock()
				defer mu.Unlock()
				waits = append(waits, d)
				return nil
			}
			a.Want([]string{o.URL + "/i.gif"})
			waitFor(t, "outcome", func() bool { s := a.Stats(); return s.Fetched+s.FetchFailed == 1 })
			if got := a.Stats().Fetched == 1; got != tt.wantOK {
				t.Errorf("got fetched %v, want %v", got, tt.wantOK)
			}
			mu.Lock()
			defer mu.Unlock()
			if len(waits) != len(tt.wantWaits) {
				t.Fatalf("got waits %v, want %v", waits, tt.wantWaits)
			}
			for i := range waits {
				if waits[i] != tt.wantWaits[i] {
					t.Errorf("got waits %v, want %v", waits, tt.wantWaits)
					break
				}
			}
		})
	}
}

func TestFetchRetryAfter(t *testing.T) {
	now := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	tests := []struct {
		in   string
		want time.Duration
	}{
		{"", 0},
		{"120", 2 * time.Minute},
		{"0", 0},
		{"-5", 0},
		{"99999999999999999", 86400 * time.Second},
		{now.Add(30 * time.Second).Format(http.TimeFormat), 30 * time.Second},
		{now.Add(-time.Hour).Format(http.TimeFormat), 0},
		{"soon", 0},
	}
	for _, tt := range tests {
		if got := fetchRetryAfter(tt.in, now); got != tt.want {
			t.Errorf("fetchRetryAfter(%q) = %v, want %v", tt.in, got, tt.want)
		}
	}
}

func TestFetchCoolDown(t *testing.T) {
	o := newOrigin(t, func(w http.ResponseWriter, r *http.Request) { http.NotFound(w, r) })
	clock := &fakeClock{t: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)}
	a := fetchArchiver(t, newFakeStore(), func(c *Config) {
		c.Now = clock.now
		c.Fetch.CoolDown = 10 * time.Minute
	}, o)
	u := o.URL + "/gone.png"
	a.Want([]string{u})
	waitFor(t, "failure", func() bool { return a.Stats().FetchFailed == 1 })

	clock.add(9 * time.Minute)
	a.Want([]string{u})
	if got := a.Stats().FetchSkipped; got != 1 {
		t.Errorf("during cool-down: got %d skipped, want 1", got)
	}
	clock.add(2 * time.Minute)
	a.Want([]string{u})
	waitFor(t, "second failure", func() bool { return a.Stats().FetchFailed == 2 })
	if got := o.hits.Load(); got != 2 {
		t.Errorf("got %d requests, want 2", got)
	}
}

// TestFetchCoolDownBound: cool-downs are forgotten when they end, and a
// flood of failing URLs keeps at most fetchMaxCoolDowns, the newest.
func TestFetchCoolDownBound(t *testing.T) {
	clock := &fakeClock{t: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)}
	a := fetchArchiver(t, newFakeStore(), func(c *Config) {
		c.Now = clock.now
		c.Fetch.CoolDown = 10 * time.Minute
	})
	f := a.fetch
	cooling := func(u string) bool {
		f.mu.Lock()
		defer f.mu.Unlock()
		until, ok := f.cool[u]
		return ok && clock.now().Before(until)
	}
	url := func(i int) string { return fmt.Sprintf("https://shop.example/broken/%d.png", i) }
	n := fetchMaxCoolDowns + 500
	for i := range n {
		f.coolDown(url(i))
	}
	if got := len(f.cool); got != fetchMaxCoolDowns {
		t.Errorf("after %d failures: %d cooling down, want %d", n, got, fetchMaxCoolDowns)
	}
	if cooling(url(0)) || !cooling(url(500)) || !cooling(url(n-1)) {
		t.Errorf("cooling: first %v, 501st %v, last %v; want the oldest forgotten", cooling(url(0)), cooling(url(500)), cooling(url(n-1)))
	}
	if len(f.coolOrder) > fetchMaxCoolDowns {
		t.Errorf("order holds %d entries, want at most %d", len(f.coolOrder), fetchMaxCoolDowns)
	}

	// Past their end, cool-downs are forgotten at the next failure; one that
	// began again later is kept.
	clock.add(5 * time.Minute)
	f.coolDown(url(600))
	clock.add(6 * time.Minute)
	f.coolDown("https://shop.example/new.png")
	if got := len(f.cool); got != 2 || !cooling(url(600)) {
		t.Errorf("after the cool-downs ended: %d kept (url 600 cooling: %v), want 2", got, cooling(url(600)))
	}
}

func TestFetchPerHost(t *testing.T) {
	var inFlight, peak atomic.Int64
	release := make(chan struct{})
	o := newOrigin(t, func(w http.ResponseWriter, r *http.Request) {
		n := inFlight.Add(1)
		for {
			p := peak.Load()
			if n <= p || peak.CompareAndSwap(p, n) {
				break
			}
		}
		<-release
		inFlight.Add(-1)
		w.Header().Set("Content-Type", "text/css")
		w.Write([]byte("a{}" + r.URL.Path))
	})
	a := fetchArchiver(t, newFakeStore(), func(c *Config) { c.Fetch.PerHost = 2 }, o)
	var urls []string
	for i := range 8 {
		urls = append(urls, o.URL+"/"+strings.Repeat("x", i+1)+".css")
	}
	a.Want(urls)
	waitFor(t, "two in flight", func() bool { return inFlight.Load() == 2 })
	time.Sleep(50 * time.Millisecond) // room for a third to (wrongly) start
	if got := inFlight.Load(); got != 2 {
		t.Errorf("got %d in flight, want 2", got)
	}
	close(release)
	waitFor(t, "all fetched", func() bool { return a.Stats().Fetched == 8 })
	if got := peak.Load(); got != 2 {
		t.Errorf("got peak %d concurrent requests, want 2", got)
	}
}

func TestFetchMaxQueue(t *testing.T) {
	block := make(chan struct{})
	o := newOrigin(t, func(w http.ResponseWriter, r *http.Request) { <-block; http.NotFound(w, r) })
	defer close(block)
	a := fetchArchiver(t, newFakeStore(), func(c *Config) { c.Fetch.MaxQueue = 3 }, o)
	a.Want([]string{o.URL + "/1", o.URL + "/2", o.URL + "/1", o.URL + "/3", o.URL + "/4"})
	if got := a.Stats().FetchSkipped; got != 2 {
		t.Errorf("got %d skipped, want 2 (a duplicate and one over the bound)", got)
	}
}
