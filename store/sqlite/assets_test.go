package sqlite_test

import (
	"context"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/loupe-dev/loupe/store"
	"github.com/loupe-dev/loupe/store/storetest"
)

// sampleAssets are the demo shop's assets and a generated PNG, with the
// codec each must be stored with.
func sampleAssets(tb testing.TB) []sampleAsset {
	tb.Helper()
	read := func(path string) []byte {
		b, err := os.ReadFile(filepath.Join("..", "..", "demo", "static", path))
		if err != nil {
			tb.Fatal(err)
		}
		return b
	}
	return []sampleAsset{
		{"shop.css", read("shop.css"), "text/css; charset=utf-8", "zstd"},
		{"house-blend.svg", read("img/house-blend.svg"), "image/svg+xml", "zstd"},
		{"generated.png", storetest.PNG, "image/png", "identity"},
		{"shop.woff2", read("fonts/shop.woff2"), "font/woff2", "identity"},
	}
}

type sampleAsset struct {
	name        string
	body        []byte
	contentType string
	wantCodec   string
}

// TestAssetStoredSize checks how bodies are stored: textual ones
// compressed, binary ones as they are.
func TestAssetStoredSize(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "loupe.db")
	db := mustOpen(t, path)
	defer db.Close()
	for _, a := range sampleAssets(t) {
		t.Run(a.name, func(t *testing.T) {
			if _, err := db.PutAsset(ctx, &store.Asset{
				URL: "https://shop.example/" + a.name, Hash: storetest.Hash(a.body),
				ContentType: a.contentType, CapturedAt: time.Now(),
			}, a.body); err != nil {
				t.Fatalf("put: %v", err)
			}
			var codec string
			var stored, size int
			if err := rawQuery(t, path, `SELECT codec, length(data), size FROM asset_bodies WHERE hash = '`+storetest.Hash(a.body)+`'`,
				&codec, &stored, &size); err != nil {
				t.Fatalf("query: %v", err)
			}
			t.Logf("%s: %d bytes stored as %d (%s)", a.name, len(a.body), stored, codec)
			if codec != a.wantCodec {
				t.Errorf("codec: got %q, want %q", codec, a.wantCodec)
			}
			if size != len(a.body) {
				t.Errorf("size: got %d, want %d", size, len(a.body))
			}
			switch {
			case codec == "zstd" && stored >= len(a.body)*2/3:
				t.Errorf("stored %d bytes, want < two thirds of %d", stored, len(a.body))
			case codec == "identity" && stored != len(a.body):
				t.Errorf("stored %d bytes, want %d", stored, len(a.body))
			}
		})
	}
}
