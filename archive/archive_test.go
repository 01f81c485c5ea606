package archive

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/loupe-dev/loupe/store"
)

// fakeStore is an in-memory store.AssetStore. If block is set, PutAsset
// waits for it to be closed (or for the context to end).
type fakeStore struct {
	block chan struct{}

	mu       sync.Mutex
	err      error // if set, PutAsset fails with it (a full disk, say)
	bodies   map[string][]byte
	captures map[string][]store.Asset
	puts     int
}

var _ store.AssetStore = (*fakeStore)(nil)

func newFakeStore() *fakeStore {
	return &fakeStore{bodies: map[string][]byte{}, captures: map[string][]store.Asset{}}
}

func (s *fakeStore) PutAsset(ctx context.Context, a *store.Asset, body []byte) (bool, error) {
	if s.block != nil {
		select {
		case <-s.block:
		case <-ctx.Done():
			return false, ctx.Err()
		}
	}
	sum := sha256.Sum256(body)
	if hex.EncodeToString(sum[:]) != a.Hash {
		return false, errors.New("hash mismatch")
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.err != nil {
		return false, s.err
	}
	s.puts++
	_, had := s.bodies[a.Hash]
	if !had {
		s.bodies[a.Hash] = append([]byte(nil), body...)
	}
	cs := s.captures[a.URL]
	if len(cs) == 0 || cs[len(cs)-1].Hash != a.Hash {
		s.captures[a.URL] = append(cs, *a)
	}
	return !had, nil
}

func (s *fakeStore) HasBody(_ context.Context, hash string) (bool, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	_, ok := s.bodies[hash]
	return ok, nil
}

func (s *fakeStore) Capture(_ context.Context, url string, _ time.Time) (*store.Asset, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	cs := s.captures[url]
	if len(cs) == 0 {
		return nil, store.ErrNotFound
	}
	a := cs[len(cs)-1]
	return &a, nil
}

func (s *fakeStore) Body(_ context.Context, hash string) ([]byte, string, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	b, ok := s.bodies[hash]
	if !ok {
		return nil, "", store.ErrNotFound
	}
	return b, "", nil
}

func (s *fakeStore) SessionAssets(context.Context, string) ([]*store.Asset, error) {
	return nil, store.ErrNotFound
}

func (s *fakeStore) PruneAssets(context.Context, time.Time) (int, error) { return 0, nil }

// body returns the body last captured for url, or nil.
func (s *fakeStore) body(url string) ([]byte, string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	cs := s.captures[url]
	if len(cs) == 0 {
		return nil, ""
	}
	a := cs[len(cs)-1]
	return s.bodies[a.Hash], a.ContentType
}

func (s *fakeStore) putCount() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.puts
}

// mustArchiver returns a running Archiver over st, closed at the test's end.
func mustArchiver(tb testing.TB, st store.AssetStore, edit func(*Config)) *Archiver {
	tb.Helper()
	cfg := Config{Store: st}
	if edit != nil {
		edit(&cfg)
	}
	a, err := New(cfg)
	if err != nil {
		tb.Fatalf("New: %v", err)
	}
	tb.Cleanup(func() { a.Close() })
	return a
}

// waitFor polls cond until it holds or a few seconds pass.
func waitFor(tb testing.TB, what string, cond func() bool) {
	tb.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			tb.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(2 * time.Millisecond)
	}
}

func TestNewValidates(t *testing.T) {
	tests := []struct {
		name string
		cfg  Config
	}{
		{"no store", Config{}},
		{"bad pattern", Config{Store: newFakeStore(), Policy: Policy{PublicPatterns: []string{"/a/["}}}},
		{"bad type", Config{Store: newFakeStore(), Policy: Policy{ExtraTypes: []string{"css"}}}},
		{"bad allow", Config{Store: newFakeStore(), Fetch: FetchConfig{AllowPrivate: []string{"localhost"}}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			a, err := New(tt.cfg)
			if err == nil {
				a.Close()
				t.Fatalf("got no error, want one")
			}
		})
	}
}

func TestDecodeBody(t *testing.T) {
	plain := []byte("body { color: red }\n")
	for _, coding := range []string{"gzip", "deflate", "br", "zstd"} {
		t.Run(coding, func(t *testing.T) {
			got, err := decodeBody(encode(t, coding, plain), []string{coding}, 1<<20)
			if err != nil {
				t.Fatalf("decode: %v", err)
			}
			if string(got) != string(plain) {
				t.Errorf("got %q, want %q", got, plain)
			}
		})
	}
	t.Run("raw deflate", func(t *testing.T) {
		got, err := decodeBody(encode(t, "rawdeflate", plain), []string{"deflate"}, 1<<20)
		if err != nil || string(got) != string(plain) {
			t.Errorf("got %q, %v, want %q", got, err, plain)
		}
	})
	t.Run("two codings", func(t *testing.T) {
		got, err := decodeBody(encode(t, "br", encode(t, "gzip", plain)), []string{"gzip", "br"}, 1<<20)
		if err != nil || string(got) != string(plain) {
			t.Errorf("got %q, %v, want %q", got, err, plain)
		}
	})
	t.Run("bomb", func(t *testing.T) {
		big := make([]byte, 1<<20)
		_, err := decodeBody(encode(t, "gzip", big), []string{"gzip"}, 1000)
		if !errors.Is(err, errTooLarge) {
			t.Errorf("got %v, want %v", err, errTooLarge)
		}
	})
}

func TestStatsString(t *testing.T) {
	// Stats is a plain value: printing it must not race with workers.
	a := mustArchiver(t, newFakeStore(), nil)
	if got := fmt.Sprint(a.Stats()); got == "" {
		t.Errorf("got empty stats")
	}
}
