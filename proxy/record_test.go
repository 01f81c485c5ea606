package proxy

import (
	"bytes"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/loupe-dev/loupe/collector"
	"github.com/loupe-dev/loupe/store"
)

func TestPathGlob(t *testing.T) {
	tests := []struct {
		glob, path string
		want       bool
	}{
		{"/checkout/**", "/checkout", true},
		{"/checkout/**", "/checkout/", true},
		{"/checkout/**", "/checkout/pay/card", true},
		{"/checkout/**", "/checkouts", false},
		{"/checkout/**", "/shop/checkout", false},
		{"/**", "/", true},
		{"/**", "/a/b/c", true},
		{"/*", "/a", true},
		{"/*", "/a/b", false},
		{"/account/*/orders", "/account/42/orders", true},
		{"/account/*/orders", "/account/42/x/orders", false},
		{"/**/print", "/a/b/print", true},
		{"/**/print", "/print", true},
		{"/**/print", "/a/printer", false},
		{"/a/**/z", "/a/z", true},
		{"/a/**/z", "/a/b/c/z", true},
		{"/a/**/z", "/a/b/c/y", false},
		{"/blog/*.html", "/blog/post.html", true},
		{"/blog/*.html", "/blog/post.htm", false},
		{"/x/[0-9]", "/x/7", true},
		{"/exact", "/exact", true},
		{"/exact", "/exact/", false},
		{"/[", "/[", false}, // malformed: matches nothing
		{"relative/*", "/relative/a", false},
	}
	for _, tt := range tests {
		if got := PathGlob(tt.glob, tt.path); got != tt.want {
			t.Errorf("PathGlob(%q, %q) = %v, want %v", tt.glob, tt.path, got, tt.want)
		}
	}
	for _, bad := range []string{"/[", "checkout/**", "/a**", "/a/b**c", ""} {
		if CheckPathGlob(bad) == nil {
			t.Errorf("CheckPathGlob(%q) = nil, want an error", bad)
		}
	}
	for _, good := range []string{"/", "/**", "/checkout/**", "/a/*/b", "/x/[a-z]*"} {
		if err := CheckPathGlob(good); err != nil {
			t.Errorf("CheckPathGlob(%q) = %v", good, err)
		}
	}
}

func TestRecordRulesFuncValidates(t *testing.T) {
	for _, rr := range []RecordRules{
		{Sampling: 1.5}, {Sampling: -0.1}, {Sampling: 1, Include: []string{"nope"}}, {Sampling: 1, Exclude: []string{"/["}},
	} {
		if _, err := rr.Func(); err == nil {
			t.Errorf("%+v: no error", rr)
		}
	}
}

// TestRecordDecision checks the decision function alone, on requests as
// the proxy hands it (no session asked for when sampling is 0 or 1).
func TestRecordDecision(t *testing.T) {
	tests := []struct {
		name   string
		rules  RecordRules
		path   string
		header map[string]string
		want   bool
	}{
		{"all", RecordRules{Sampling: 1}, "/", nil, true},
		{"DNT", RecordRules{Sampling: 1}, "/", map[string]string{"DNT": "1"}, false},
		{"DNT 0", RecordRules{Sampling: 1}, "/", map[string]string{"DNT": "0"}, true},
		{"GPC", RecordRules{Sampling: 1}, "/", map[string]string{"Sec-GPC": "1"}, false},
		{"DNT ignored", RecordRules{Sampling: 1, IgnorePrivacySignals: true}, "/", map[string]string{"DNT": "1", "Sec-GPC": "1"}, true},
		{"excluded", RecordRules{Sampling: 1, Exclude: []string{"/checkout/**"}}, "/checkout/pay", nil, false},
		{"not excluded", RecordRules{Sampling: 1, Exclude: []string{"/checkout/**"}}, "/cart", nil, true},
		{"included", RecordRules{Sampling: 1, Include: []string{"/shop/**"}}, "/shop/a", nil, true},
		{"not included", RecordRules{Sampling: 1, Include: []string{"/shop/**"}}, "/about", nil, false},
		{"exclude wins", RecordRules{Sampling: 1, Include: []string{"/shop/**"}, Exclude: []string{"/shop/admin/**"}}, "/shop/admin/x", nil, false},
		{"sampling 0", RecordRules{Sampling: 0}, "/", nil, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f, err := tt.rules.Func()
			if err != nil {
				t.Fatal(err)
			}
			r := httptest.NewRequest(http.MethodGet, tt.path, nil)
			for k, v := range tt.header {
				r.Header.Set(k, v)
			}
			if got := f(r); got != tt.want {
				t.Errorf("got %v, want %v", got, tt.want)
			}
		})
	}
}

func TestSampledDeterministic(t *testing.T) {
	in := 0
	for i := 0; i < 2000; i++ {
		id := collector.NewID()
		a := sampled(id, 0.5)
		if sampled(id, 0.5) != a {
			t.Fatalf("session %s decided both ways", id)
		}
		if !sampled(id, 1) || sampled(id, 0) {
			t.Fatalf("session %s: rate 1 or 0 not respected", id)
		}
		if a {
			in++
		}
	}
	// Binomial(2000, 0.5): 800..1200 is over 8 standard deviations wide.
	if in < 800 || in > 1200 {
		t.Errorf("%d of 2000 sessions sampled at 0.5, want about 1000", in)
	}
	if sampled("", 1) {
		t.Error("a request without a session was sampled")
	}
}

func htmlOrigin(hits *int) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if hits != nil {
			*hits++
		}
		w.Header().Set("Content-Type", "text/html")
		w.Header().Set("Cache-Control", "public, max-age=60")
		io.WriteString(w, page)
	})
}

func TestRecordPassThroughUntouched(t *testing.T) {
	rec, err := RecordRules{Sampling: 1, Exclude: []string{"/checkout/**"}}.Func()
	if err != nil {
		t.Fatal(err)
	}
	srv, _ := mustProxy(t, htmlOrigin(nil), func(c *Config) { c.Record = rec })
	for _, tc := range []struct {
		path   string
		header map[string]string
	}{
		{"/checkout/pay", nil},
		{"/", map[string]string{"DNT": "1"}},
		{"/", map[string]string{"Sec-GPC": "1"}},
	} {
		resp, body := get(t, srv.URL+tc.path, tc.header)
		if !bytes.Equal(body, []byte(page)) {
			t.Errorf("%s %v: body changed: %q", tc.path, tc.header, body)
		}
		if c := resp.Header.Values("Set-Cookie"); len(c) != 0 {
			t.Errorf("%s %v: got Set-Cookie %q, want none", tc.path, tc.header, c)
		}
		if cc := resp.Header.Get("Cache-Control"); cc != "public, max-age=60" {
			t.Errorf("%s %v: Cache-Control %q, want the origin's", tc.path, tc.header, cc)
		}
	}
	_, body := get(t, srv.URL+"/", nil)
	tagConfig(t, body)
}

// TestRecordSeesPublicPath: with an upstream under a base path, Record
// matches the path the visitor asked for.
func TestRecordSeesPublicPath(t *testing.T) {
	var seen string
	up := httptest.NewServer(htmlOrigin(nil))
	defer up.Close()
	srv, _ := mustProxy(t, htmlOrigin(nil), func(c *Config) {
		c.Upstream, _ = url.Parse(up.URL + "/app/")
		c.Record = func(r *http.Request) bool { seen = r.URL.Path; return true }
	})
	get(t, srv.URL+"/shop/x", nil)
	if seen != "/shop/x" {
		t.Errorf("Record saw path %q, want /shop/x", seen)
	}
}

// TestSamplingAcrossPageLoads: at 0.5, each session is in or out for all of
// its page loads. A recorded session stays in the session it started in;
// a sampled-out visitor gets the sampled-out cookie that keeps it out, the
// origin never sees either cookie, and the network log keeps nothing of a
// sampled-out session.
func TestSamplingAcrossPageLoads(t *testing.T) {
	rec, err := RecordRules{Sampling: 0.5}.Func()
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	var originCookies []string
	origin := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		originCookies = append(originCookies, r.Header.Get("Cookie"))
		mu.Unlock()
		w.Header().Set("Content-Type", "text/html")
		io.WriteString(w, page)
	})
	logged := &requestLog{}
	srv, tk := mustProxy(t, origin, func(c *Config) { c.Record = rec; c.Requests = logged })
	in, out := 0, 0
	outSessions := map[string]bool{}
	for v := 0; v < 60; v++ {
		resp, body := get(t, srv.URL+"/", nil)
		cookies := resp.Cookies()
		if len(cookies) != 1 {
			t.Fatalf("visitor %d: got cookies %v, want one", v, cookies)
		}
		c := cookies[0]
		id := mustSession(t, tk, c.Value)
		recorded := strings.Contains(string(body), "data-loupe")
		if recorded != sampled(id, 0.5) {
			t.Fatalf("visitor %d: recorded %v, but session %s is sampled %v", v, recorded, id, !recorded)
		}
		if recorded {
			in++
			if c.Name != DefaultCookieName {
				t.Fatalf("recorded visitor got cookie %s, want %s", c.Name, DefaultCookieName)
			}
			if pv := tokenOf(t, tk, body); pv.SessionID != id {
				t.Fatalf("page recorded in session %s, cookie names %s", pv.SessionID, id)
			}
		} else {
			out++
			outSessions[id] = true
			if c.Name != DefaultCookieName+"_out" {
				t.Fatalf("sampled-out visitor got cookie %s, want %s_out", c.Name, DefaultCookieName)
			}
			if cc := resp.Header.Get("Cache-Control"); !strings.HasPrefix(cc, "private") {
				t.Errorf("sampled-out page with a cookie has Cache-Control %q, want private", cc)
			}
			if !bytes.Equal(body, []byte(page)) {
				t.Errorf("sampled-out page body changed")
			}
		}
		for load := 0; load < 3; load++ {
			resp, body := get(t, srv.URL+"/next", map[string]string{"Cookie": "theme=dark; " + c.Name + "=" + c.Value})
			if got := strings.Contains(string(body), "data-loupe"); got != recorded {
				t.Fatalf("visitor %d, load %d: recorded %v, first load %v", v, load, got, recorded)
			}
			if recorded {
				if pv := tokenOf(t, tk, body); pv.SessionID != id {
					t.Fatalf("visitor %d, load %d: session %s, want %s", v, load, pv.SessionID, id)
				}
			} else if rc := resp.Cookies(); len(rc) != 1 || rc[0].Name != c.Name || mustSession(t, tk, rc[0].Value) != id {
				t.Fatalf("visitor %d, load %d: cookies %v, want session %s's %s renewed", v, load, rc, id, c.Name)
			}
		}
	}
	// Binomial(60, 0.5) outside 10..50 is a 1-in-10^7 event.
	if in < 10 || out < 10 {
		t.Errorf("%d sessions recorded, %d not, at 0.5", in, out)
	}
	mu.Lock()
	for _, c := range originCookies {
		if c != "" && c != "theme=dark" {
			t.Fatalf("origin got Cookie %q, want the site's own only", c)
		}
	}
	mu.Unlock()
	for _, r := range logged.all() {
		if outSessions[r.SessionID] {
			t.Fatalf("network log has %s %s of sampled-out session %s", r.Method, r.URL, r.SessionID)
		}
	}
	if len(logged.all()) == 0 {
		t.Error("network log is empty; want the recorded sessions' requests")
	}
}

// requestLog is a RequestLogger keeping every entry.
type requestLog struct {
	mu   sync.Mutex
	reqs []store.Request
}

func (l *requestLog) LogRequest(r store.Request) {
	l.mu.Lock()
	l.reqs = append(l.reqs, r)
	l.mu.Unlock()
}

func (l *requestLog) all() []store.Request {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]store.Request(nil), l.reqs...)
}

// TestSampledBackIn: a session kept out under a lower rate is recorded,
// as the same session, once the rate takes it in, and loses its
// sampled-out cookie.
func TestSampledBackIn(t *testing.T) {
	var id string
	for id == "" || sampled(id, 0.5) {
		id = collector.NewID()
	}
	tk := mustTokens(t)
	outCookie := tk.SessionCookie(collector.Session{ID: id, Start: time.Now()})
	srv, tk := mustProxy(t, htmlOrigin(nil), func(c *Config) {
		c.Record = func(r *http.Request) bool { return SessionID(r) != "" }
	})
	resp, body := get(t, srv.URL+"/", map[string]string{"Cookie": DefaultCookieName + "_out=" + outCookie})
	if pv := tokenOf(t, tk, body); pv.SessionID != id {
		t.Fatalf("recorded in session %s, want %s", pv.SessionID, id)
	}
	var names []string
	for _, c := range resp.Cookies() {
		names = append(names, fmt.Sprintf("%s:%d", c.Name, c.MaxAge))
	}
	if got := strings.Join(names, " "); got != DefaultCookieName+"_out:-1 "+DefaultCookieName+":1800" {
		t.Errorf("cookies %s, want the sampled-out one removed and the session's set", got)
	}
}

func mustSession(t *testing.T, tk *collector.Tokens, v string) string {
	t.Helper()
	s, err := tk.ParseSessionCookie(v)
	if err != nil {
		t.Fatal(err)
	}
	return s.ID
}
