package main

// Fault tests: real loupe processes, built once by TestMain, under load,
// with PostgreSQL from pgtest or SQLite in a temporary folder. Each is
// bounded in time; all listen on loopback only.

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"html"
	"io"
	"net"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/loupe-dev/loupe/store"
	"github.com/loupe-dev/loupe/store/postgres/pgtest"
)

// backend is a store a test runs against.
type backend struct {
	name     string
	database func(t *testing.T) string // --database; "" for SQLite in --data
}

var backends = []backend{
	{"sqlite", func(t *testing.T) string { return "" }},
	// Fast (no fsync) loses nothing committed when a process dies, only
	// when the machine does; these tests kill processes, not machines.
	{"postgres", func(t *testing.T) string { return pgtest.Start(t, pgtest.Fast()).CreateDB(t) }},
}

// startCollector runs `loupe collector` on addr against database (or
// SQLite in data). Every visitor of the load comes from 127.0.0.1, far
// above one real client's rate, so rate limits are off; the proxies of the
// test are trusted to name the visitor.
func startCollector(t *testing.T, addr, database, data string) *proc {
	t.Helper()
	return startProc(t, []string{"ingest"}, "collector", "--listen", addr, "--database", database, "--data", data,
		"--trusted-proxies", "127.0.0.1/32", "--client-rate", "-1", "--session-rate", "-1")
}

// TestPostgresStoppedUnderLoad stops PostgreSQL for a few seconds while
// visitors send batches to a collector: meanwhile the collector answers 503
// with Retry-After, the visitors retry, and once PostgreSQL is back every
// batch is stored, each once.
func TestPostgresStoppedUnderLoad(t *testing.T) {
	srv := pgtest.Start(t)
	dsn := srv.CreateDB(t)
	data := t.TempDir()
	coll := startCollector(t, "127.0.0.1:0", dsn, data)
	l := startLoad(t, coll.url("ingest"), 8)

	l.waitAcked(t, 100, 10*time.Second)
	srv.Stop(t)
	down := l.unavail.Load()
	time.Sleep(3 * time.Second)
	if n := l.unavail.Load() - down; n == 0 {
		t.Errorf("no 503 while PostgreSQL was down")
	}
	if l.retryAfter.Load() == 0 {
		t.Errorf("no 503 carried Retry-After")
	}
	srv.Start(t)
	l.waitAcked(t, 100, 20*time.Second)
	l.finish(t, 20*time.Second)
	coll.stop()
	checkStored(t, openStore(t, dsn, data), l)
}

// TestCollectorKilledUnderLoad kills the collector with SIGKILL while
// visitors send batches, starts it again on the same address, and requires
// every acknowledged batch in the store.
func TestCollectorKilledUnderLoad(t *testing.T) {
	for _, b := range backends {
		t.Run(b.name, func(t *testing.T) {
			dsn, data := b.database(t), t.TempDir()
			coll := startCollector(t, "127.0.0.1:0", dsn, data)
			l := startLoad(t, coll.url("ingest"), 8)

			l.waitAcked(t, 100, 10*time.Second)
			coll.signal(syscall.SIGKILL)
			coll.wait(5 * time.Second)
			addr := strings.TrimPrefix(coll.url("ingest"), "http://")
			addr, _, _ = strings.Cut(addr, "/")
			coll = startCollector(t, addr, dsn, data)
			l.waitAcked(t, 100, 10*time.Second)
			l.finish(t, 20*time.Second)
			coll.stop()
			if l.netErrs.Load() == 0 {
				t.Log("no request was cut by the kill (it fell between batches)")
			}
			checkStored(t, openStore(t, dsn, data), l)
		})
	}
}

// TestGracefulShutdownDrains sends SIGTERM while batches are still
// arriving: the collector stops accepting connections at once, but the
// requests in flight are answered 204 and stored before it exits.
func TestGracefulShutdownDrains(t *testing.T) {
	data := t.TempDir()
	coll := startCollector(t, "127.0.0.1:0", "", data)
	ingest := coll.url("ingest")
	addr := strings.TrimPrefix(ingest, "http://")
	addr, _, _ = strings.Cut(addr, "/")

	tokens := testTokens(t)
	l := &load{}
	const inFlight = 3
	type conn struct {
		c    net.Conn
		v    *visitor
		rest []byte
	}
	var conns []conn
	for range inFlight {
		v := newVisitor(tokens)
		l.visitors = append(l.visitors, v)
		body := batchBody(v, 0)
		c, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		// Headers and half the body now; the rest after SIGTERM.
		fmt.Fprintf(c, "POST /__loupe/ingest HTTP/1.1\r\nHost: %s\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n", addr, len(body))
		half := len(body) / 2
		if _, err := c.Write(body[:half]); err != nil {
			t.Fatal(err)
		}
		conns = append(conns, conn{c, v, body[half:]})
	}
	time.Sleep(300 * time.Millisecond) // the server has read the headers
	coll.signal(syscall.SIGTERM)
	// The listener closes as soon as the signal is handled, while the
	// requests above are still unanswered.
	for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		c, err := net.DialTimeout("tcp", addr, time.Second)
		if err != nil {
			break
		}
		c.Close()
		if time.Now().After(deadline) {
			t.Fatal("new connections are still accepted 5 s after SIGTERM")
		}
	}
	for _, c := range conns {
		if _, err := c.c.Write(c.rest); err != nil {
			t.Fatalf("finish the body after SIGTERM: %v", err)
		}
		c.c.SetReadDeadline(time.Now().Add(10 * time.Second))
		resp, err := http.ReadResponse(bufio.NewReader(c.c), nil)
		if err != nil {
			t.Fatalf("in-flight request after SIGTERM: %v", err)
		}
		io.Copy(io.Discard, resp.Body)
		if resp.StatusCode != http.StatusNoContent {
			t.Errorf("in-flight request after SIGTERM: got %d, want 204", resp.StatusCode)
		} else {
			c.v.acked = append(c.v.acked, 0)
		}
		c.c.Close()
	}
	if err := coll.wait(25 * time.Second); err != nil {
		t.Errorf("collector exited with %v after SIGTERM, want 0\n%s", err, coll.log)
	}
	checkStored(t, openStore(t, "", data), l)
}

// dataLoupe finds the recorder tag's configuration in a page.
var dataLoupe = regexp.MustCompile(`data-loupe="([^"]*)"`)

// TestTwoProxiesOneSession loads page 1 through one proxy and page 2
// through another, as a load balancer may: the visitor's cookie (shared by
// every port of 127.0.0.1, as in a browser) keeps it one session. Proxy A
// forwards ingest to a collector process; proxy B runs its collector in
// process; all share one PostgreSQL and one secret.
func TestTwoProxiesOneSession(t *testing.T) {
	dsn := pgtest.Start(t, pgtest.Fast()).CreateDB(t)
	origin := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		fmt.Fprintf(w, "<!doctype html><html><head><title>%s</title></head><body><h1>page %s</h1></body></html>", r.URL.Path, r.URL.Path)
	}))
	defer origin.Close()

	coll := startCollector(t, "127.0.0.1:0", dsn, t.TempDir())
	collBase := strings.TrimSuffix(coll.url("ingest"), "/__loupe/ingest")
	a := startProc(t, []string{"the site through Loupe"}, "proxy", "--upstream", origin.URL, "--listen", "127.0.0.1:0",
		"--collector", collBase, "--data", t.TempDir())
	b := startProc(t, []string{"the site through Loupe"}, "proxy", "--upstream", origin.URL, "--listen", "127.0.0.1:0",
		"--database", dsn, "--data", t.TempDir())

	jar, _ := cookiejar.New(nil)
	client := &http.Client{Jar: jar, Timeout: 10 * time.Second}
	for i, px := range []*proc{a, b} {
		site := px.url("the site through Loupe")
		page := fmt.Sprintf("%s/page%d", site, i+1)
		resp, err := client.Get(page)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		m := dataLoupe.FindSubmatch(body)
		if m == nil {
			t.Fatalf("GET %s: no recorder tag in %q", page, body)
		}
		var cfg struct {
			Token string `json:"token"`
		}
		if err := json.Unmarshal([]byte(html.UnescapeString(string(m[1]))), &cfg); err != nil || cfg.Token == "" {
			t.Fatalf("GET %s: recorder tag config %q: %v", page, m[1], err)
		}
		v := &visitor{token: cfg.Token, pv: ""}
		l := &load{url: site + "/__loupe/ingest", client: client}
		if status, _, err := l.post(pageBatch(v, page)); err != nil || status != http.StatusNoContent {
			t.Fatalf("POST a batch of %s through proxy %c: got %d, %v; want 204", page, 'A'+i, status, err)
		}
	}
	a.stop()
	b.stop()
	coll.stop()

	m := openStore(t, dsn, t.TempDir())
	list, err := m.db.Sessions(context.Background(), store.SessionFilter{})
	if err != nil {
		t.Fatal(err)
	}
	if len(list) != 1 {
		t.Fatalf("got %d sessions, want 1", len(list))
	}
	if got := list[0].PageCount; got != 2 {
		t.Errorf("the session has %d page views, want 2", got)
	}
}

// pageBatch is the first batch of a page view known by its token only.
func pageBatch(v *visitor, href string) []byte {
	ts := time.Now().UnixMilli()
	b, _ := json.Marshal(map[string]any{"v": 1, "token": v.token, "seq": 0, "events": []any{
		map[string]any{"type": 4, "timestamp": ts, "data": map[string]any{"href": href, "width": 1280, "height": 800}},
		map[string]any{"type": 2, "timestamp": ts, "data": map[string]any{
			"node":          map[string]any{"type": 0, "id": 1, "childNodes": []any{}},
			"initialOffset": map[string]any{"top": 0, "left": 0},
		}},
	}})
	return b
}
