package main

import (
	"context"
	"database/sql"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"path/filepath"
	"sort"
	"sync/atomic"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/loupe-dev/loupe/demo"
)

// TestRecorderSurvivesCollectorOutage runs the real recorder in Chromium
// against a collector that goes away for a while: batches made during the
// outage, including those of a page the visitor left meanwhile (kept in
// sessionStorage and resent by the next page), all reach the store once it
// is back, with no hole in any page view's sequence numbers.
func TestRecorderSurvivesCollectorOutage(t *testing.T) {
	chromium := requireBrowser(t)
	origin := httptest.NewServer(demo.Handler())
	defer origin.Close()
	quiet := slog.New(slog.NewTextHandler(io.Discard, nil))
	data := t.TempDir()
	secret := "recorder-outage-test-secret-0123456789"

	coll := &Main{Roles: roleCollector, Logger: quiet,
		Config: Config{Listen: "127.0.0.1:0", Data: data, Secret: secret}}
	if err := coll.Open(context.Background()); err != nil {
		t.Fatal(err)
	}
	defer coll.Close()

	// Between the proxy and the collector: a switch that answers 503 (or
	// drops the connection) while the outage lasts.
	var down atomic.Bool
	var refused atomic.Int64
	target, _ := url.Parse(coll.CollectorURL)
	rp := httputil.NewSingleHostReverseProxy(target)
	flaky := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if down.Load() {
			n := refused.Add(1)
			if n%2 == 0 {
				panic(http.ErrAbortHandler) // a dropped connection
			}
			w.Header().Set("Retry-After", "1")
			http.Error(w, `{"error":"storage unavailable"}`, http.StatusServiceUnavailable)
			return
		}
		rp.ServeHTTP(w, r)
	}))
	defer flaky.Close()

	px := &Main{Roles: roleProxy, Logger: quiet,
		Config: Config{Upstream: origin.URL, Listen: "127.0.0.1:0", Data: data, Secret: secret, Collector: flaky.URL}}
	if err := px.Open(context.Background()); err != nil {
		t.Fatal(err)
	}
	defer px.Close()

	db, err := sql.Open("sqlite", "file:"+filepath.Join(data, "loupe.db")+"?mode=ro")
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	stored := func() map[string][]int {
		rows, err := db.Query(`SELECT page_view_id, seq FROM chunks`)
		if err != nil {
			t.Fatal(err)
		}
		defer rows.Close()
		out := map[string][]int{}
		for rows.Next() {
			var pv string
			var seq int
			if err := rows.Scan(&pv, &seq); err != nil {
				t.Fatal(err)
			}
			out[pv] = append(out[pv], seq)
		}
		return out
	}
	waitFor := func(what string, ok func(map[string][]int) bool) map[string][]int {
		t.Helper()
		deadline := time.Now().Add(30 * time.Second)
		for {
			s := stored()
			if ok(s) {
				return s
			}
			if time.Now().After(deadline) {
				t.Fatalf("%s: stored page views and seqs after 30 s: %v", what, s)
			}
			time.Sleep(200 * time.Millisecond)
		}
	}

	ctx := newBrowser(t, chromium)
	do(t, ctx, "home", chromedp.Navigate(px.ProxyURL+"/"), chromedp.WaitVisible(chromedp.CSS("h1")))
	first := waitFor("first snapshot stored", func(s map[string][]int) bool { return len(s) == 1 })
	var home string
	for pv := range first {
		home = pv
	}

	down.Store(true)
	outage := time.Now().UnixMilli()
	do(t, ctx, "browse during the outage",
		chromedp.Sleep(6*time.Second), // the home page's promo keeps mutating; flushes every 5 s fail
		chromedp.Click(chromedp.CSS(`a[href^="/product/"]`)),
		chromedp.WaitVisible(chromedp.CSS("#add-to-cart")),
		chromedp.Click(chromedp.CSS("#add-to-cart")),
		chromedp.Sleep(6*time.Second),
	)
	if refused.Load() == 0 {
		t.Fatal("no ingest request reached the collector's switch during the outage")
	}
	down.Store(false)
	do(t, ctx, "browse after the outage",
		chromedp.Navigate(px.ProxyURL+"/cart"),
		chromedp.WaitVisible(chromedp.CSS("h1")),
		chromedp.Sleep(2*time.Second),
		chromedp.Navigate("about:blank"),
	)
	s := waitFor("three page views stored", func(s map[string][]int) bool { return len(s) >= 3 })
	// Give late retries a moment, then check for holes.
	time.Sleep(2 * time.Second)
	s = stored()
	for pv, seqs := range s {
		sort.Ints(seqs)
		for i, seq := range seqs {
			if seq != i {
				t.Errorf("page view %s: stored seqs %v, want 0..%d without a hole", pv, seqs, len(seqs)-1)
				break
			}
		}
	}
	// The home page was left during the outage: what it recorded then can
	// only have arrived through the next pages resending its queue.
	var late int
	if err := db.QueryRow(`SELECT count(*) FROM chunks WHERE page_view_id = ? AND first_ts >= ?`, home, outage).Scan(&late); err != nil {
		t.Fatal(err)
	}
	if late == 0 {
		t.Errorf("none of the home page's batches recorded during the outage was stored (seqs %v)", s[home])
	}
	t.Logf("%d requests refused during the outage; %d home page batches from the outage resent; stored %s", refused.Load(), late, fmt.Sprint(s))
}
