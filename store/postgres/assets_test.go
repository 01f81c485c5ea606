package postgres_test

import (
	"context"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/loupe-dev/loupe/store"
	"github.com/loupe-dev/loupe/store/storetest"
)

// TestAssetStoredSize checks how bodies are stored: textual ones
// compressed, binary ones as they are.
func TestAssetStoredSize(t *testing.T) {
	ctx := context.Background()
	db, dsn := mustNew(t)
	read := func(path string) []byte {
		b, err := os.ReadFile(filepath.Join("..", "..", "demo", "static", path))
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	tests := []struct {
		name        string
		body        []byte
		contentType string
		wantCodec   string
	}{
		{"shop.css", read("shop.css"), "text/css; charset=utf-8", "zstd"},
		{"house-blend.svg", read("img/house-blend.svg"), "image/svg+xml", "zstd"},
		{"generated.png", storetest.PNG, "image/png", "identity"},
		{"shop.woff2", read("fonts/shop.woff2"), "font/woff2", "identity"},
	}
	conn := rawConn(t, dsn)
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := db.PutAsset(ctx, &store.Asset{
				URL: "https://shop.example/" + tt.name, Hash: storetest.Hash(tt.body),
				ContentType: tt.contentType, CapturedAt: time.Now(),
			}, tt.body); err != nil {
				t.Fatalf("put: %v", err)
			}
			var codec string
			var stored, row, size int
			if err := conn.QueryRow(ctx, `SELECT codec, length(data), pg_column_size(b.*), size FROM asset_bodies b WHERE hash = $1`,
				storetest.Hash(tt.body)).Scan(&codec, &stored, &row, &size); err != nil {
				t.Fatalf("query: %v", err)
			}
			t.Logf("%s: %d bytes stored as %d (%s), row %d bytes", tt.name, len(tt.body), stored, codec, row)
			if codec != tt.wantCodec {
				t.Errorf("codec: got %q, want %q", codec, tt.wantCodec)
			}
			if size != len(tt.body) {
				t.Errorf("size: got %d, want %d", size, len(tt.body))
			}
			switch {
			case codec == "zstd" && stored >= len(tt.body)*2/3:
				t.Errorf("stored %d bytes, want < two thirds of %d", stored, len(tt.body))
			case codec == "identity" && stored != len(tt.body):
				t.Errorf("stored %d bytes, want %d", stored, len(tt.body))
			}
		})
	}
}

// TestPutAssetNodes runs identical PutAsset calls from two nodes (two
// pools on one database) at once: one body row, one capture per URL.
func TestPutAssetNodes(t *testing.T) {
	ctx := context.Background()
	a, dsn := mustNew(t)
	b := mustOpen(t, dsn)
	defer b.Close()
	urls := []string{"https://shop.example/shop.css", "https://cdn.example/shop.css"}
	var (
		wg      sync.WaitGroup
		newBody atomic.Int32
		calls   atomic.Int32
	)
	for g := range 8 {
		db := a
		if g%2 == 1 {
			db = b
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range 25 {
				n := calls.Add(1)
				asset := &store.Asset{
					URL: urls[i%2], Hash: storetest.Hash(storetest.CSS), ContentType: "text/css",
					CapturedAt: time.UnixMilli(1_700_000_000_000 + int64(n)),
				}
				got, err := db.PutAsset(ctx, asset, storetest.CSS)
				if err != nil {
					t.Errorf("put: %v", err)
					return
				}
				if got {
					newBody.Add(1)
				}
			}
		}()
	}
	wg.Wait()
	if got := newBody.Load(); got != 1 {
		t.Errorf("calls reporting a new body: got %d, want 1", got)
	}
	conn := rawConn(t, dsn)
	var bodies, captures int
	if err := conn.QueryRow(ctx, `SELECT (SELECT count(*) FROM asset_bodies), (SELECT count(*) FROM asset_captures)`).Scan(&bodies, &captures); err != nil {
		t.Fatal(err)
	}
	if bodies != 1 || captures != len(urls) {
		t.Errorf("rows: got %d bodies and %d captures, want 1 and %d", bodies, captures, len(urls))
	}
}

// TestPruneWhilePutting prunes while other calls capture the same bodies
// at new URLs: every capture that PutAsset recorded keeps its body.
func TestPruneWhilePutting(t *testing.T) {
	ctx := context.Background()
	db, _ := mustNew(t)
	old := time.UnixMilli(1_700_000_000_000)
	bodies := [][]byte{storetest.CSS, storetest.SVG, storetest.PNG}
	var wg sync.WaitGroup
	stop := make(chan struct{})
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			select {
			case <-stop:
				return
			default:
			}
			if _, err := db.PruneAssets(ctx, old.Add(time.Hour)); err != nil {
				t.Errorf("prune: %v", err)
				return
			}
		}
	}()
	for i := range 60 {
		body := bodies[i%len(bodies)]
		// Old captures, pruned at once, and new ones of the same bodies.
		for _, at := range []time.Time{old, old.Add(2 * time.Hour)} {
			url := "https://shop.example/" + at.Format("150405") + "/" + string(rune('a'+i))
			if _, err := db.PutAsset(ctx, &store.Asset{URL: url, Hash: storetest.Hash(body), ContentType: "text/css", CapturedAt: at}, body); err != nil {
				t.Fatalf("put: %v", err)
			}
			if at.After(old) {
				c, err := db.Capture(ctx, url, at)
				if err != nil {
					t.Fatalf("capture: %v", err)
				}
				if _, _, err := db.Body(ctx, c.Hash); err != nil {
					t.Fatalf("body of a kept capture: %v", err)
				}
			}
		}
	}
	close(stop)
	wg.Wait()
}
