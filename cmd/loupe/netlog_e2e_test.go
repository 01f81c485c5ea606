package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"html"
	"io"
	"log/slog"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/url"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/loupe-dev/loupe/store"
)

// netlogOrigin is a shop whose page calls an API that fails with a 500 and
// one that never answers (the page gives up after a second), and whose
// page response sets the visitor's user id in a cookie.
func netlogOrigin() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /{$}", func(w http.ResponseWriter, r *http.Request) {
		http.SetCookie(w, &http.Cookie{Name: "uid", Value: url.QueryEscape("ada@example.test"), Path: "/"})
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		fmt.Fprint(w, `<!doctype html><html><head><title>Shop</title></head>
<body><h1>Shop</h1>
<p id="status">loading</p>
<script>
var done = 0;
function settle() { if (++done === 2) document.getElementById('status').textContent = 'settled'; }
fetch('/api/cart').then(settle, settle);
var c = new AbortController();
setTimeout(function () { c.abort(); }, 1000);
fetch('/api/stock', {signal: c.signal}).then(settle, settle);
</script></body></html>`)
	})
	mux.HandleFunc("GET /api/cart", func(w http.ResponseWriter, r *http.Request) {
		http.Error(w, "cart service down", http.StatusInternalServerError)
	})
	mux.HandleFunc("GET /api/stock", func(w http.ResponseWriter, r *http.Request) {
		select { // never answers; the visitor gives up
		case <-r.Context().Done():
		case <-time.After(15 * time.Second):
		}
	})
	return mux
}

type apiRequest struct {
	AtMS       int64  `json:"at_ms"`
	PageViewID string `json:"page_view_id"`
	Method     string `json:"method"`
	URL        string `json:"url"`
	Status     int    `json:"status"`
	DurationMS int64  `json:"duration_ms"`
	Bytes      int64  `json:"bytes"`
}

// TestNetworkLog: in real Chromium, a page whose script calls an API that
// answers 500 and one that never answers. The proxy's network log holds
// every request of the session (not Loupe's own), the 500 is a
// server_error signal and the abandoned call a failed_request, visible
// through /api/sessions/{id}/requests and the timeline; the user id comes
// from the cookie the origin set, and the session is found by it.
func TestNetworkLog(t *testing.T) {
	chromium := requireBrowser(t)
	origin := httptest.NewServer(netlogOrigin())
	defer origin.Close()
	m := startLoupeUsers(t, origin.URL, "cookie:uid")
	ctx := newBrowser(t, chromium)

	do(t, ctx, "open the page", chromedp.Navigate(m.ProxyURL+"/"), chromedp.WaitVisible(chromedp.CSS("h1")))
	if _, err := chromedp.Run(ctx, chromedp.Poll[bool](`document.getElementById('status').textContent === 'settled'`,
		chromedp.WithPollingTimeout(10*time.Second))); err != nil {
		t.Fatalf("the page's calls did not settle: %v", err)
	}
	do(t, ctx, "leave", chromedp.Sleep(300*time.Millisecond), chromedp.Navigate("about:blank"))

	// The network log reaches the store within about a second; the
	// recorder's batches on pagehide.
	var sess struct {
		ID      string         `json:"id"`
		UserID  string         `json:"user_id"`
		Signals map[string]int `json:"signals"`
	}
	deadline := time.Now().Add(20 * time.Second)
	for {
		var list struct {
			Sessions []json.RawMessage `json:"sessions"`
		}
		getJSON(t, m.AdminURL+"/api/sessions?user="+url.QueryEscape("ada@example.test"), &list)
		if len(list.Sessions) == 1 {
			if err := json.Unmarshal(list.Sessions[0], &sess); err != nil {
				t.Fatal(err)
			}
			if sess.Signals["server_error"] >= 1 {
				break
			}
		}
		if time.Now().After(deadline) {
			resp, _ := adminGet(m.AdminURL + "/api/sessions")
			all, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			t.Fatalf("after 20 s, all sessions: %s\nsessions of user ada@example.test: %d, last %+v; want one with a server error", all, len(list.Sessions), sess)
		}
		time.Sleep(250 * time.Millisecond)
	}
	if sess.UserID != "ada@example.test" || sess.Signals["server_error"] != 1 {
		t.Errorf("got user %q, server errors %d; want the cookie's user and 1", sess.UserID, sess.Signals["server_error"])
	}

	// The abandoned call is logged once the proxy notices the visitor
	// went away, then delivered within about a second.
	var reqs []apiRequest
	for {
		reqs = nil
		getJSON(t, m.AdminURL+"/api/sessions/"+sess.ID+"/requests", &reqs)
		if strings.Contains(fmt.Sprint(reqs), "/api/stock") {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("after 20 s the network log has no /api/stock: %+v", reqs)
		}
		time.Sleep(250 * time.Millisecond)
	}
	byURL := map[string]apiRequest{}
	for _, r := range reqs {
		if strings.HasPrefix(r.URL, "/__loupe/") {
			t.Errorf("Loupe's own route %s is in the network log", r.URL)
		}
		byURL[r.URL] = r
	}
	t.Logf("network log: %+v", reqs)
	page, cart, stock := byURL["/"], byURL["/api/cart"], byURL["/api/stock"]
	if page.Method != "GET" || page.Status != 200 || page.PageViewID == "" || page.Bytes <= 0 {
		t.Errorf("page: got %+v, want GET / 200 with its page view and bytes", page)
	}
	if cart.Status != 500 || cart.Bytes != int64(len("cart service down\n")) || cart.PageViewID != "" {
		t.Errorf("api call: got %+v, want a 500 of 18 bytes", cart)
	}
	// The browser gave up after a second: no response was sent. (The
	// duration is measured from the request's arrival, so it is at most
	// about a second; only that it was measured is checked.)
	if stock.Status != 0 || stock.DurationMS <= 0 || stock.Bytes != 0 {
		t.Errorf("abandoned call: got %+v, want status 0, no bytes and its duration", stock)
	}

	var timeline []struct {
		Kind    string `json:"kind"`
		Message string `json:"message"`
		URL     string `json:"url"`
		Status  *int   `json:"status"`
	}
	getJSON(t, m.AdminURL+"/api/sessions/"+sess.ID+"/timeline", &timeline)
	var sawServer, sawFailed, sawRequest bool
	for _, e := range timeline {
		switch {
		case e.Kind == "server_error" && strings.Contains(e.Message, "/api/cart") && strings.Contains(e.Message, "500"):
			sawServer = true
		case e.Kind == "failed_request" && strings.Contains(e.Message, "/api/stock"):
			sawFailed = true
		case e.Kind == "request" && e.URL == "/api/cart" && e.Status != nil && *e.Status == 500:
			sawRequest = true
		}
	}
	if !sawServer || !sawFailed || !sawRequest {
		t.Errorf("timeline: server_error %v, failed_request %v, request %v; want all: %+v", sawServer, sawFailed, sawRequest, timeline)
	}
}

// startLoupeUsers runs the whole program in front of origin with the
// given --user-id rules.
func startLoupeUsers(t *testing.T, origin string, rules ...string) *Main {
	t.Helper()
	m := &Main{
		Config: Config{Upstream: origin, Listen: "127.0.0.1:0", Admin: "127.0.0.1:0", Data: t.TempDir(), UserIDRules: rules},
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil)),
	}
	if err := m.Open(context.Background()); err != nil {
		m.Close()
		t.Fatal(err)
	}
	t.Cleanup(func() { m.Close() })
	signIn(t, m)
	return m
}

// TestUserFromDOM: a dom: rule. The recorder sends the text of the
// element, which appears after the page loaded, and the session is found
// by it.
func TestUserFromDOM(t *testing.T) {
	chromium := requireBrowser(t)
	origin := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/" {
			http.NotFound(w, r)
			return
		}
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		fmt.Fprint(w, `<!doctype html><html><head><title>Account</title></head>
<body><h1>Account</h1><div id="account"></div>
<script>setTimeout(function () {
  document.getElementById('account').innerHTML = 'Signed in as <span class="email">\n  ada.dom@example.test </span>';
}, 300);</script></body></html>`)
	}))
	defer origin.Close()
	m := startLoupeUsers(t, origin.URL, "dom:#account .email")
	ctx := newBrowser(t, chromium)
	do(t, ctx, "open the page", chromedp.Navigate(m.ProxyURL+"/"), chromedp.WaitVisible(chromedp.CSS("#account .email")),
		chromedp.Sleep(300*time.Millisecond), chromedp.Navigate("about:blank"))

	deadline := time.Now().Add(20 * time.Second)
	for {
		var list struct {
			Sessions []struct {
				ID     string `json:"id"`
				UserID string `json:"user_id"`
			} `json:"sessions"`
		}
		getJSON(t, m.AdminURL+"/api/sessions?user="+url.QueryEscape("ada.dom@example.test"), &list)
		if len(list.Sessions) == 1 && list.Sessions[0].UserID == "ada.dom@example.test" {
			break
		}
		if time.Now().After(deadline) {
			var all json.RawMessage
			getJSON(t, m.AdminURL+"/api/sessions", &all)
			t.Fatalf("after 20 s no session of user ada.dom@example.test; sessions: %s", all)
		}
		time.Sleep(250 * time.Millisecond)
	}
}

// TestNetworkLogSplitRoles: `loupe proxy --collector URL` in front of a
// separate `loupe collector`. The proxy posts its network log to the
// collector's signed route, and the collector's store holds it, with the
// signal and the user id.
func TestNetworkLogSplitRoles(t *testing.T) {
	origin := httptest.NewServer(netlogOrigin())
	defer origin.Close()
	secret := strings.Repeat("n", 40)
	quiet := slog.New(slog.NewTextHandler(io.Discard, nil))
	coll := &Main{Config: Config{Listen: "127.0.0.1:0", Data: t.TempDir(), Secret: secret}, Roles: roleCollector, Logger: quiet}
	if err := coll.Open(context.Background()); err != nil {
		coll.Close()
		t.Fatal(err)
	}
	t.Cleanup(func() { coll.Close() })
	px := &Main{Config: Config{Upstream: origin.URL, Listen: "127.0.0.1:0", Data: t.TempDir(), Secret: secret,
		Collector: coll.CollectorURL, UserIDRules: []string{"cookie:uid"}}, Roles: roleProxy, Logger: quiet}
	if err := px.Open(context.Background()); err != nil {
		px.Close()
		t.Fatal(err)
	}
	t.Cleanup(func() { px.Close() })

	jar, _ := cookiejar.New(nil)
	client := &http.Client{Jar: jar, Timeout: 10 * time.Second}
	var page []byte
	for _, path := range []string{"/", "/api/cart"} {
		resp, err := client.Get(px.ProxyURL + path)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if path == "/" {
			page = body
		}
	}
	var sid string
	u, _ := url.Parse(px.ProxyURL)
	for _, c := range jar.Cookies(u) {
		if c.Name == "__loupe_sid" {
			sid, _, _ = strings.Cut(c.Value, ".")
		}
	}
	if sid == "" {
		t.Fatal("no session cookie")
	}
	// Closing the proxy delivers what its queue holds. The session has no
	// row until the recorder's first batch: its signal and user id wait.
	if err := px.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := coll.db.Session(context.Background(), sid); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("session before its first batch: got %v, want ErrNotFound", err)
	}
	m := regexp.MustCompile(`data-loupe="([^"]*)"`).FindSubmatch(page)
	if m == nil {
		t.Fatalf("no recorder tag in the page: %s", page)
	}
	var tag struct{ Token string }
	if err := json.Unmarshal([]byte(html.UnescapeString(string(m[1]))), &tag); err != nil {
		t.Fatal(err)
	}
	batch := fmt.Sprintf(`{"v":1,"token":%q,"seq":0,"events":[{"type":4,"data":{"href":"http://shop.test/","width":800,"height":600},"timestamp":%d}]}`,
		tag.Token, time.Now().UnixMilli())
	resp, err := http.Post(coll.CollectorURL+"/__loupe/ingest", "application/json", strings.NewReader(batch))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusNoContent {
		t.Fatalf("ingest: got %s", resp.Status)
	}
	rs := coll.db.(store.RequestStore)
	reqs, err := rs.Requests(context.Background(), sid)
	if err != nil {
		t.Fatalf("requests at the collector: %v", err)
	}
	if len(reqs) != 2 || reqs[0].URL != "/" || reqs[1].URL != "/api/cart" || reqs[1].Status != 500 {
		t.Fatalf("got %+v, want the page and the 500", reqs)
	}
	sess, err := coll.db.Session(context.Background(), sid)
	if err != nil {
		t.Fatal(err)
	}
	if sess.Signals.ServerError != 1 || sess.UserID != "ada@example.test" {
		t.Errorf("got server errors %d, user %q; want 1 and the cookie's user", sess.Signals.ServerError, sess.UserID)
	}
}

// TestUserIDFlag: --user-id may be repeated or comma-separated, and
// LOUPE_USER_ID adds to it; a malformed rule is a usage error.
func TestUserIDFlag(t *testing.T) {
	tests := []struct {
		name    string
		env     string
		args    []string
		want    string
		wantErr bool
	}{
		{name: "none", want: ""},
		{name: "repeated", args: []string{"--user-id", "cookie:uid", "--user-id", "jwt:tok:email"}, want: "cookie:uid jwt:tok:email"},
		{name: "comma-separated", args: []string{"--user-id", "header:x-user,dom:#me .name"}, want: "header:X-User dom:#me .name"},
		{name: "environment", env: "cookie:uid", args: []string{"--user-id", "header:X-User"}, want: "cookie:uid header:X-User"},
		{name: "malformed", args: []string{"--user-id", "query:user"}, wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if tt.env != "" {
				t.Setenv("LOUPE_USER_ID", tt.env)
			}
			c := parseServeFlags(t, tt.args)
			rules, err := c.userRules()
			if tt.wantErr {
				if !errors.As(err, new(usageError)) {
					t.Fatalf("got %v, want a usage error", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got := strings.Join(rules.Strings(), " "); got != tt.want {
				t.Errorf("got %q, want %q", got, tt.want)
			}
		})
	}
}
