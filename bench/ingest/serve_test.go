package ingest

import (
	"bytes"
	"context"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"testing"

	"golang.org/x/time/rate"

	"github.com/loupe-dev/loupe/collector"
	"github.com/loupe-dev/loupe/store"
	"github.com/loupe-dev/loupe/store/postgres"
	"github.com/loupe-dev/loupe/store/postgres/pgtest"
	"github.com/loupe-dev/loupe/store/sqlite"
	"github.com/loupe-dev/loupe/store/storetest"
)

// BenchmarkServe is BenchmarkIngest without the network and the client:
// one goroutine calls the collector's ServeHTTP for each prepared request
// in turn, so that the work per request can be counted (for instance in
// instructions, under valgrind --tool=callgrind, as the difference of two
// runs with different -benchtime Nx; preparation does not depend on N
// below servePool requests).
//
//	go test ./bench/ingest -run '^$' -bench Serve -benchtime 200x -benchmem
func BenchmarkServe(b *testing.B) {
	b.Run("sqlite", func(b *testing.B) {
		db, err := sqlite.Open(context.Background(), filepath.Join(b.TempDir(), "loupe.db"))
		if err != nil {
			b.Fatal(err)
		}
		defer db.Close()
		serve(b, db)
	})
	b.Run("postgres", func(b *testing.B) {
		srv := pgtest.Start(b)
		db, err := postgres.Open(context.Background(), srv.DSN())
		if err != nil {
			b.Fatal(err)
		}
		defer db.Close()
		serve(b, db)
	})
}

// servePool is how many requests BenchmarkServe prepares whatever b.N:
// enough sessions for -benchtime 1000x.
const servePool = 1000

func serve(b *testing.B, st store.Store) {
	tk, err := collector.NewTokens([]byte(strings.Repeat("b", 32)))
	if err != nil {
		b.Fatal(err)
	}
	c := &collector.Collector{Store: st, Tokens: tk, Logger: slog.New(slog.DiscardHandler),
		Limits: collector.Limits{SessionRate: rate.Inf, ClientRate: rate.Inf}, Assets: noFetch{}}
	perSession := len(storetest.ChromiumSession("x"))
	reqs := prepare(b, tk, max(servePool, b.N)/perSession+1)[:max(servePool, b.N)]
	var rawBytes int64
	for _, r := range reqs[:b.N] {
		rawBytes += int64(r.rawBytes)
	}
	b.ReportAllocs()
	b.ResetTimer()
	for i := range b.N {
		req := httptest.NewRequest(http.MethodPost, "/__loupe/ingest", bytes.NewReader(reqs[i].body))
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("User-Agent", "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/126.0.0.0 Safari/537.36")
		w := httptest.NewRecorder()
		c.ServeHTTP(w, req)
		if w.Code != http.StatusNoContent {
			b.Fatalf("request %d: status %d: %s", i, w.Code, w.Body)
		}
	}
	b.StopTimer()
	b.ReportMetric(float64(rawBytes)/float64(b.N), "rawB/op")
}
