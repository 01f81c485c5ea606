package storetest

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"image"
	"image/color"
	"image/png"
	"reflect"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/loupe-dev/loupe/store"
)

// AssetBackend is a store with the asset archive.
type AssetBackend interface {
	store.Store
	store.AssetStore
}

// RunAssets runs the asset archive's conformance suite. open must return a
// new, empty store for each call; RunAssets closes it when the subtest ends.
func RunAssets(t *testing.T, open func(t *testing.T) AssetBackend) {
	t.Helper()
	runCases(t, open, []testCase[AssetBackend]{
		{"Dedup", testAssetDedup},
		{"RepeatedConcurrent", testAssetRepeatedConcurrent},
		{"Capture", testAssetCapture},
		{"Body", testAssetBody},
		{"Invalid", testAssetInvalid},
		{"SessionAssets", testSessionAssets},
		{"Prune", testAssetPrune},
	})
}

// Hash returns the hex SHA-256 of body, as store.Asset.Hash holds it.
func Hash(body []byte) string {
	sum := sha256.Sum256(body)
	return hex.EncodeToString(sum[:])
}

// Sample asset bodies.
var (
	CSS = []byte(bytes.Repeat([]byte(`.card { display: grid; gap: 1rem; padding: 1.5rem; border-radius: 8px;
  background: url("img/card.png") no-repeat; font-family: "Shop", system-ui, sans-serif; }
`), 40))
	SVG = []byte(`<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 64 64"><circle cx="32" cy="32" r="30" fill="#6b4f3a"/><path d="M20 32h24M32 20v24" stroke="#fff" stroke-width="4"/></svg>`)
	PNG = mustPNG()
)

func mustPNG() []byte {
	img := image.NewRGBA(image.Rect(0, 0, 48, 48))
	for y := range 48 {
		for x := range 48 {
			img.Set(x, y, color.RGBA{uint8(x * 5), uint8(y * 5), uint8((x * y) % 256), 255})
		}
	}
	var buf bytes.Buffer
	if err := png.Encode(&buf, img); err != nil {
		panic(err)
	}
	return buf.Bytes()
}

// at is a capture time, minutes after base.
func at(minutes int) time.Time {
	return time.UnixMilli(base).Add(time.Duration(minutes) * time.Minute).UTC()
}

func capture(url string, body []byte, contentType string, t time.Time) *store.Asset {
	return &store.Asset{URL: url, Hash: Hash(body), ContentType: contentType, Size: int64(len(body)), CapturedAt: t}
}

func mustPut(tb testing.TB, s store.AssetStore, a *store.Asset, body []byte) bool {
	tb.Helper()
	newBody, err := s.PutAsset(context.Background(), a, body)
	if err != nil {
		tb.Fatalf("put %s at %v: %v", a.URL, a.CapturedAt, err)
	}
	return newBody
}

func mustCapture(tb testing.TB, s store.AssetStore, url string, t time.Time) *store.Asset {
	tb.Helper()
	a, err := s.Capture(context.Background(), url, t)
	if err != nil {
		tb.Fatalf("capture %s at %v: %v", url, t, err)
	}
	return a
}

func testAssetDedup(t *testing.T, s AssetBackend) {
	ctx := context.Background()
	const u1, u2 = "https://shop.example/a.css", "https://cdn.example/a.css"
	if has, err := s.HasBody(ctx, Hash(CSS)); err != nil || has {
		t.Fatalf("HasBody before put: got %v, %v, want false", has, err)
	}
	steps := []struct {
		a       *store.Asset
		wantNew bool
	}{
		{capture(u1, CSS, "text/css", at(0)), true},
		{capture(u2, CSS, "text/css", at(1)), false}, // same body at another URL
		{capture(u1, CSS, "text/css", at(2)), false}, // same URL and body again
	}
	for i, st := range steps {
		if got := mustPut(t, s, st.a, CSS); got != st.wantNew {
			t.Errorf("put %d (%s): newBody got %v, want %v", i, st.a.URL, got, st.wantNew)
		}
	}
	if has, err := s.HasBody(ctx, Hash(CSS)); err != nil || !has {
		t.Errorf("HasBody: got %v, %v, want true", has, err)
	}
	for _, tt := range []struct {
		url  string
		want time.Time
	}{{u1, at(0)}, {u2, at(1)}} {
		got := mustCapture(t, s, tt.url, at(10))
		if got.Hash != Hash(CSS) || !got.CapturedAt.Equal(tt.want) {
			t.Errorf("capture %s: got %s at %v, want %s at %v", tt.url, got.Hash, got.CapturedAt, Hash(CSS), tt.want)
		}
	}
}

// testAssetRepeatedConcurrent: a thousand visits of one URL with one body,
// from several goroutines, store one body and one capture.
func testAssetRepeatedConcurrent(t *testing.T, s AssetBackend) {
	const (
		url        = "https://shop.example/shop.css"
		goroutines = 8
		calls      = 1000
	)
	var (
		wg       sync.WaitGroup
		newBody  atomic.Int32
		next     atomic.Int32
		firstErr atomic.Value
	)
	for range goroutines {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := int(next.Add(1))
				if i > calls {
					return
				}
				// Distinct times, so that a second capture would show.
				a := capture(url, CSS, "text/css", at(0).Add(time.Duration(i)*time.Second))
				n, err := s.PutAsset(context.Background(), a, CSS)
				if err != nil {
					firstErr.CompareAndSwap(nil, err)
					return
				}
				if n {
					newBody.Add(1)
				}
			}
		}()
	}
	wg.Wait()
	if err, _ := firstErr.Load().(error); err != nil {
		t.Fatalf("put: %v", err)
	}
	if got := newBody.Load(); got != 1 {
		t.Errorf("calls reporting a new body: got %d, want 1", got)
	}
	first := mustCapture(t, s, url, at(0))
	last := mustCapture(t, s, url, at(10_000))
	if !first.CapturedAt.Equal(last.CapturedAt) {
		t.Errorf("captures: earliest at %v, latest at %v, want one capture", first.CapturedAt, last.CapturedAt)
	}
}

func testAssetCapture(t *testing.T, s AssetBackend) {
	const url = "https://shop.example/shop.css"
	v1 := []byte("body { color: black }")
	v2 := []byte("body { color: navy }")
	mustPut(t, s, capture(url, v1, "text/css", at(10)), v1)
	mustPut(t, s, capture(url, v2, "text/css", at(20)), v2)
	mustPut(t, s, capture(url, v1, "text/css", at(30)), v1) // reverted: a new capture
	mustPut(t, s, capture(url, v1, "text/css", at(40)), v1) // unchanged: none
	tests := []struct {
		name     string
		t        time.Time
		wantBody []byte
		wantAt   time.Time
	}{
		{"before the first: the first after", at(0), v1, at(10)},
		{"at the first", at(10), v1, at(10)},
		{"between", at(15), v1, at(10)},
		{"at the second", at(20), v2, at(20)},
		{"just before the third", at(30).Add(-time.Millisecond), v2, at(20)},
		{"after the last", at(50), v1, at(30)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := mustCapture(t, s, url, tt.t)
			want := &store.Asset{URL: url, Hash: Hash(tt.wantBody), ContentType: "text/css", Size: int64(len(tt.wantBody)), CapturedAt: tt.wantAt}
			if !reflect.DeepEqual(got, want) {
				t.Errorf("got %+v, want %+v", got, want)
			}
		})
	}
	if _, err := s.Capture(context.Background(), "https://shop.example/never.css", at(0)); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("capture of an unknown URL: got %v, want ErrNotFound", err)
	}
}

func testAssetBody(t *testing.T, s AssetBackend) {
	ctx := context.Background()
	tests := []struct {
		name        string
		body        []byte
		contentType string
	}{
		{"css", CSS, "text/css; charset=utf-8"},
		{"svg", SVG, "image/svg+xml"},
		{"png", PNG, "image/png"},
		{"empty", []byte{}, "text/plain"},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			mustPut(t, s, capture(fmt.Sprintf("https://shop.example/%d", i), tt.body, tt.contentType, at(i)), tt.body)
			got, ct, err := s.Body(ctx, Hash(tt.body))
			if err != nil {
				t.Fatalf("body: %v", err)
			}
			if !bytes.Equal(got, tt.body) {
				t.Errorf("body: got %d bytes, want %d", len(got), len(tt.body))
			}
			if ct != tt.contentType {
				t.Errorf("content type: got %q, want %q", ct, tt.contentType)
			}
		})
	}
	// The newest capture's type wins, whatever the order of the calls.
	mustPut(t, s, capture("https://cdn.example/x", SVG, "text/xml", at(100)), SVG)
	mustPut(t, s, capture("https://cdn.example/y", SVG, "application/octet-stream", at(50)), SVG)
	if _, ct, err := s.Body(ctx, Hash(SVG)); err != nil || ct != "text/xml" {
		t.Errorf("content type after newer captures: got %q, %v, want text/xml", ct, err)
	}
	if _, _, err := s.Body(ctx, Hash([]byte("never stored"))); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("unknown body: got %v, want ErrNotFound", err)
	}
}

func testAssetInvalid(t *testing.T, s AssetBackend) {
	ctx := context.Background()
	body := []byte("body {}")
	tests := []struct {
		name   string
		mutate func(*store.Asset)
	}{
		{"hash of another body", func(a *store.Asset) { a.Hash = Hash([]byte("other")) }},
		{"no hash", func(a *store.Asset) { a.Hash = "" }},
		{"truncated hash", func(a *store.Asset) { a.Hash = a.Hash[:32] }},
		{"no URL", func(a *store.Asset) { a.URL = "" }},
		{"no capture time", func(a *store.Asset) { a.CapturedAt = time.Time{} }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			a := capture("https://shop.example/a.css", body, "text/css", at(0))
			tt.mutate(a)
			if _, err := s.PutAsset(ctx, a, body); err == nil {
				t.Error("put: got nil error")
			}
			if has, err := s.HasBody(ctx, Hash(body)); err != nil || has {
				t.Errorf("HasBody after a rejected put: got %v, %v, want false", has, err)
			}
		})
	}
}

func testSessionAssets(t *testing.T, s AssetBackend) {
	ctx := context.Background()
	const (
		uBefore = "https://shop.example/a.css"     // captured before and after the start
		uAfter  = "https://cdn.example/font.woff2" // captured only after
		uNever  = "https://cdn.example/never.png"  // never captured
		uDup    = "https://shop.example/dup.png"   // only in a duplicate batch
	)
	start := at(60)
	b := Batch("s", "p", 0, start.UnixMilli(), 3, 100, "https://shop.example/", 0)
	b.AssetURLs = []string{uBefore, uNever, uAfter}
	mustAppend(t, s, b)
	b2 := Batch("s", "p", 1, start.UnixMilli()+1000, 3, 100, "", 0)
	b2.AssetURLs = []string{uBefore} // already referenced
	mustAppend(t, s, b2)
	dup := Batch("s", "p", 1, start.UnixMilli()+1000, 3, 100, "", 0)
	dup.AssetURLs = []string{uDup}
	if err := s.AppendBatch(ctx, dup); !errors.Is(err, store.ErrDuplicate) {
		t.Fatalf("append duplicate: got %v, want ErrDuplicate", err)
	}

	old, cur := []byte("a{color:red}"), []byte("a{color:blue}")
	mustPut(t, s, capture(uBefore, old, "text/css", at(30)), old)
	mustPut(t, s, capture(uBefore, cur, "text/css", at(90)), cur)
	mustPut(t, s, capture(uAfter, PNG, "font/woff2", at(120)), PNG)
	mustPut(t, s, capture(uDup, SVG, "image/svg+xml", at(0)), SVG)

	got, err := s.SessionAssets(ctx, "s")
	if err != nil {
		t.Fatalf("session assets: %v", err)
	}
	want := []*store.Asset{
		{URL: uAfter, Hash: Hash(PNG), ContentType: "font/woff2", Size: int64(len(PNG)), CapturedAt: at(120)},
		{URL: uBefore, Hash: Hash(old), ContentType: "text/css", Size: int64(len(old)), CapturedAt: at(30)},
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("session assets:\ngot  %s\nwant %s", assetList(got), assetList(want))
	}
	if _, err := s.SessionAssets(ctx, "nobody"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("unknown session: got %v, want ErrNotFound", err)
	}
}

func assetList(as []*store.Asset) string {
	var b bytes.Buffer
	for _, a := range as {
		fmt.Fprintf(&b, "%+v ", *a)
	}
	return b.String()
}

func testAssetPrune(t *testing.T, s AssetBackend) {
	ctx := context.Background()
	cutoff := at(100)
	const (
		uKept  = "https://shop.example/kept.css" // referenced by a kept session
		uOld   = "https://shop.example/old.css"  // referenced only by an old session
		uFree  = "https://shop.example/free.css" // referenced by none
		uNewer = "https://shop.example/new.css"  // captured only after the cutoff
	)
	oldSession := Batch("old", "p1", 0, at(10).UnixMilli(), 2, 100, "", 0)
	oldSession.AssetURLs = []string{uOld, uKept}
	keptSession := Batch("kept", "p2", 0, at(150).UnixMilli(), 2, 100, "", 0)
	keptSession.AssetURLs = []string{uKept}
	mustAppend(t, s, oldSession, keptSession)

	kept1, kept2 := []byte(".k{v:1}"), []byte(".k{v:2}")
	old1, free1, free2 := []byte(".o{v:1}"), []byte(".f{v:1}"), []byte(".f{v:2}")
	shared := []byte(".s{}") // at uOld before the cutoff and at uNewer after
	for _, p := range []struct {
		url  string
		body []byte
		at   time.Time
	}{
		{uKept, kept1, at(5)},
		{uKept, kept2, at(200)}, // after the kept session's start: it replays kept1
		{uOld, old1, at(5)},
		{uOld, shared, at(20)},
		{uFree, free1, at(5)},
		{uFree, free2, at(110)},
		{uNewer, shared, at(120)},
	} {
		mustPut(t, s, capture(p.url, p.body, "text/css", p.at), p.body)
	}
	before, err := s.SessionAssets(ctx, "kept")
	if err != nil {
		t.Fatalf("session assets: %v", err)
	}

	n, err := s.PruneAssets(ctx, cutoff)
	if err != nil {
		t.Fatalf("prune: %v", err)
	}
	if n != 2 { // old1, free1
		t.Errorf("bodies removed: got %d, want 2", n)
	}
	after, err := s.SessionAssets(ctx, "kept")
	if err != nil {
		t.Fatalf("session assets after prune: %v", err)
	}
	if !reflect.DeepEqual(after, before) {
		t.Errorf("kept session's assets after prune:\ngot  %s\nwant %s", assetList(after), assetList(before))
	}
	bodies := []struct {
		name string
		body []byte
		want bool
	}{
		{"kept1", kept1, true}, {"kept2", kept2, true}, {"old1", old1, false},
		{"shared", shared, true}, {"free1", free1, false}, {"free2", free2, true},
	}
	for _, b := range bodies {
		if has, err := s.HasBody(ctx, Hash(b.body)); err != nil || has != b.want {
			t.Errorf("HasBody(%s) after prune: got %v, %v, want %v", b.name, has, err, b.want)
		}
	}
	captures := []struct {
		url    string
		wantAt time.Time // zero: none left
	}{
		{uKept, at(5)}, {uOld, time.Time{}}, {uFree, at(110)}, {uNewer, at(120)},
	}
	for _, c := range captures {
		got, err := s.Capture(ctx, c.url, at(0))
		switch {
		case c.wantAt.IsZero() && !errors.Is(err, store.ErrNotFound):
			t.Errorf("capture %s after prune: got %v, %v, want ErrNotFound", c.url, got, err)
		case !c.wantAt.IsZero() && (err != nil || !got.CapturedAt.Equal(c.wantAt)):
			t.Errorf("capture %s after prune: got %v, %v, want the one at %v", c.url, got, err, c.wantAt)
		}
	}
	if n, err := s.PruneAssets(ctx, cutoff); err != nil || n != 0 {
		t.Errorf("prune again: got %d, %v, want 0", n, err)
	}
}
