package collector

import (
	"errors"
	"fmt"
	"net/http"
	"reflect"
	"strings"
	"sync"
	"testing"
)

// wantRecorder is an AssetWanter that remembers every call.
type wantRecorder struct {
	mu    sync.Mutex
	calls [][]string
}

func (w *wantRecorder) Want(urls []string) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.calls = append(w.calls, urls)
}

// snapshotEvents is a Meta and a full snapshot whose body holds imgs.
func snapshotEvents(imgs ...string) string {
	var nodes []string
	for i, src := range imgs {
		nodes = append(nodes, fmt.Sprintf(`{"type":2,"tagName":"img","attributes":{"src":%q},"childNodes":[],"id":%d}`, src, 10+i))
	}
	return `[{"type":4,"data":{"href":"http://shop.test/","width":1280,"height":720},"timestamp":1700000000000},` +
		`{"type":2,"data":{"node":{"type":0,"childNodes":[{"type":2,"tagName":"html","attributes":{},"id":2,"childNodes":[` +
		`{"type":2,"tagName":"head","attributes":{},"id":3,"childNodes":[` +
		`{"type":2,"tagName":"link","attributes":{"rel":"stylesheet","href":"http://shop.test/shop.css"},"childNodes":[],"id":4}]},` +
		`{"type":2,"tagName":"body","attributes":{},"id":5,"childNodes":[` + strings.Join(nodes, ",") + `]}]}],"id":1},` +
		`"initialOffset":{"left":0,"top":0}},"timestamp":1700000000005}]`
}

func TestIngestAssetURLs(t *testing.T) {
	many := make([]string, MaxAssetURLs+50)
	for i := range many {
		many[i] = fmt.Sprintf("http://shop.test/img/%d.png", i)
	}
	tests := []struct {
		name      string
		events    string
		storeErr  error
		wantURLs  []string // in the stored batch; nil to check only the count
		wantCount int
		wantCalls int
	}{
		{name: "snapshot", events: snapshotEvents("http://shop.test/img/a.png", "https://cdn.test/b.png"),
			wantURLs:  []string{"http://shop.test/shop.css", "http://shop.test/img/a.png", "https://cdn.test/b.png"},
			wantCount: 3, wantCalls: 1},
		{name: "no assets", events: sampleEvents, wantCount: 0, wantCalls: 0},
		{name: "capped", events: snapshotEvents(many...), wantCount: MaxAssetURLs, wantCalls: 1},
		{name: "store down", events: snapshotEvents("http://shop.test/img/a.png"), storeErr: errors.New("disk full"), wantCalls: 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFixture(t)
			f.st.err = tt.storeErr
			wr := &wantRecorder{}
			f.c.Assets = wr
			w := post(f.c, []byte(batchJSON(f.token, 0, tt.events)), nil)
			if tt.storeErr != nil {
				if w.Code != http.StatusServiceUnavailable {
					t.Fatalf("status: got %d, want 503", w.Code)
				}
			} else {
				if w.Code != http.StatusNoContent {
					t.Fatalf("status: got %d (%s), want 204", w.Code, w.Body)
				}
				got := f.st.batches[0].AssetURLs
				if len(got) != tt.wantCount {
					t.Errorf("AssetURLs: got %d, want %d: %q", len(got), tt.wantCount, got)
				}
				if tt.wantURLs != nil && !sameSet(got, tt.wantURLs) {
					t.Errorf("AssetURLs: got %q, want %q in any order", got, tt.wantURLs)
				}
			}
			if len(wr.calls) != tt.wantCalls {
				t.Fatalf("Want calls: got %d, want %d", len(wr.calls), tt.wantCalls)
			}
			if tt.wantCalls > 0 && !reflect.DeepEqual(wr.calls[0], f.st.batches[0].AssetURLs) {
				t.Errorf("Want got %q, want the batch's AssetURLs %q", wr.calls[0], f.st.batches[0].AssetURLs)
			}
			// A retried batch is stored once and wanted once.
			if tt.storeErr == nil {
				post(f.c, []byte(batchJSON(f.token, 0, tt.events)), nil)
				if len(wr.calls) != tt.wantCalls {
					t.Errorf("Want calls after a duplicate: got %d, want %d", len(wr.calls), tt.wantCalls)
				}
			}
		})
	}
}

// TestIngestNoArchive: without an archive to feed, batches are not scanned
// for asset URLs.
func TestIngestNoArchive(t *testing.T) {
	f := newFixture(t)
	if w := post(f.c, []byte(batchJSON(f.token, 0, snapshotEvents("http://shop.test/img/a.png"))), nil); w.Code != http.StatusNoContent {
		t.Fatalf("status: got %d (%s), want 204", w.Code, w.Body)
	}
	if got := f.st.batches[0].AssetURLs; len(got) != 0 {
		t.Errorf("AssetURLs: got %q, want none with archiving off", got)
	}
}

func sameSet(a, b []string) bool {
	if len(a) != len(b) {
		return false
	}
	m := map[string]int{}
	for _, s := range a {
		m[s]++
	}
	for _, s := range b {
		m[s]--
	}
	for _, n := range m {
		if n != 0 {
			return false
		}
	}
	return true
}
