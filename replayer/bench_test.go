package replayer_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"path"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/loupe-dev/loupe/archive"
	"github.com/loupe-dev/loupe/replayer"
	"github.com/loupe-dev/loupe/store"
	"github.com/loupe-dev/loupe/store/sqlite"
	"github.com/loupe-dev/loupe/store/storetest"
)

// BenchmarkEventsLive and BenchmarkEventsArchive measure how long the
// player waits before a replay can start: GET /api/sessions/{id}/events of
// the real Chromium session (storetest.ChromiumSession) from a SQLite
// store, uncompressed (Accept-Encoding: identity), as recorded
// (?assets=live) and with every asset URL rewritten to its archived copy
// (the default). Reported per request: ttfb-ms (until the first body byte)
// and ns/op (until the whole body), and MB/s of the body served.
func BenchmarkEventsLive(b *testing.B)    { benchEvents(b, "?assets=live", false) }
func BenchmarkEventsArchive(b *testing.B) { benchEvents(b, "", true) }

const benchSession = "bench-chromium"

// benchReplayServer stores a copy of the Chromium session, with its asset
// URLs, and a capture of every one of them from an hour before the
// session, and serves it with a replayer.Server.
func benchReplayServer(b *testing.B) (srv *httptest.Server, assets int) {
	b.Helper()
	ctx := context.Background()
	db, err := sqlite.Open(ctx, filepath.Join(b.TempDir(), "loupe.db"))
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { db.Close() })

	batches := storetest.ChromiumSession(benchSession)
	var urls []string
	first := int64(-1)
	for _, bt := range batches {
		bt.AssetURLs, err = archive.AssetURLs(bt.Events)
		if err != nil {
			b.Fatal(err)
		}
		for _, u := range bt.AssetURLs {
			if !slices.Contains(urls, u) {
				urls = append(urls, u)
			}
		}
		if first < 0 || bt.FirstTS < first {
			first = bt.FirstTS
		}
		if err := db.AppendBatch(ctx, bt); err != nil {
			b.Fatal(err)
		}
	}
	if len(urls) == 0 {
		b.Fatal("the Chromium session references no asset")
	}
	at := time.UnixMilli(first).Add(-time.Hour)
	for _, u := range urls {
		body := []byte(fmt.Sprintf("/* archived copy of %s */\n", u))
		sum := sha256.Sum256(body)
		if _, err := db.PutAsset(ctx, &store.Asset{
			URL: u, Hash: hex.EncodeToString(sum[:]), ContentType: benchContentType(u),
			Size: int64(len(body)), CapturedAt: at,
		}, body); err != nil {
			b.Fatal(err)
		}
	}

	s, err := replayer.New(replayer.Config{Store: db, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		b.Fatal(err)
	}
	srv = httptest.NewServer(s)
	b.Cleanup(srv.Close)
	return srv, len(urls)
}

func benchContentType(u string) string {
	if i := strings.IndexAny(u, "?#"); i >= 0 {
		u = u[:i]
	}
	switch path.Ext(u) {
	case ".css":
		return "text/css"
	case ".svg":
		return "image/svg+xml"
	case ".png":
		return "image/png"
	case ".jpg", ".jpeg":
		return "image/jpeg"
	case ".woff2":
		return "font/woff2"
	case ".woff":
		return "font/woff"
	}
	return "application/octet-stream"
}

func benchEvents(b *testing.B, query string, wantArchive bool) {
	srv, assets := benchReplayServer(b)
	client := &http.Client{Transport: &http.Transport{DisableCompression: true}}
	u := srv.URL + "/api/sessions/" + benchSession + "/events" + query
	get := func(body io.Writer) (ttfb time.Duration, n int64) {
		req, err := http.NewRequest(http.MethodGet, u, nil)
		if err != nil {
			b.Fatal(err)
		}
		req.Header.Set("Accept-Encoding", "identity")
		t0 := time.Now()
		resp, err := client.Do(req)
		if err != nil {
			b.Fatal(err)
		}
		defer resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			b.Fatalf("GET %s: %s", u, resp.Status)
		}
		if ce := resp.Header.Get("Content-Encoding"); ce != "" {
			b.Fatalf("GET %s: Content-Encoding %q, want none", u, ce)
		}
		var one [1]byte
		if _, err := io.ReadFull(resp.Body, one[:]); err != nil {
			b.Fatal(err)
		}
		ttfb = time.Since(t0)
		body.Write(one[:])
		m, err := io.Copy(body, resp.Body)
		if err != nil {
			b.Fatal(err)
		}
		return ttfb, m + 1
	}

	// One request outside the timer, to check what is served.
	var first bytes.Buffer
	get(&first)
	n := strings.Count(first.String(), "/archive/")
	switch {
	case wantArchive && n == 0:
		b.Fatalf("the archive answer holds no /archive/ URL (%d asset URLs were captured)", assets)
	case !wantArchive && n > 0:
		b.Fatalf("the live answer holds %d /archive/ URLs", n)
	}
	b.SetBytes(int64(first.Len()))

	var ttfb time.Duration
	b.ResetTimer()
	for b.Loop() {
		t, _ := get(io.Discard)
		ttfb += t
	}
	b.StopTimer()
	// After the loop: ResetTimer drops metrics reported before it.
	b.ReportMetric(float64(ttfb.Microseconds())/1000/float64(b.N), "ttfb-ms")
	b.ReportMetric(float64(first.Len()), "body-B")
	b.ReportMetric(float64(n), "archive-urls")
	b.ReportMetric(float64(assets), "asset-urls")
}
