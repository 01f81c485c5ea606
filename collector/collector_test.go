package collector

import (
	"bytes"
	"compress/gzip"
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"reflect"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/loupe-dev/loupe/store"
)

// memStore is an Appender that keeps batches in memory.
type memStore struct {
	batches []*store.Batch
	seen    map[string]bool
	err     error
}

func (m *memStore) AppendBatch(_ context.Context, b *store.Batch) error {
	if m.err != nil {
		return m.err
	}
	key := b.PageViewID + "/" + strconv.Itoa(b.Seq)
	if m.seen[key] {
		return store.ErrDuplicate
	}
	if m.seen == nil {
		m.seen = map[string]bool{}
	}
	m.seen[key] = true
	m.batches = append(m.batches, b)
	return nil
}

type fixture struct {
	c       *Collector
	st      *memStore
	sid, pv string
	token   string
}

func newFixture(tb testing.TB) *fixture {
	tb.Helper()
	now := time.Unix(1_700_000_000, 0)
	tk := mustTokens(tb, &now)
	st := &memStore{}
	// Fixed ids: the fuzzer's workers rebuild the fixture and must agree
	// with the seed corpus on which session a token proves.
	f := &fixture{st: st, sid: "5e55105e55105e55105e55105e55105e", pv: "9a9e9a9e9a9e9a9e9a9e9a9e9a9e9a9e"}
	f.token = tk.PageViewToken(f.sid, f.pv)
	f.c = &Collector{Store: st, Tokens: tk, MaxBodyBytes: 64 << 10, MaxEventsBytes: 256 << 10,
		Now: func() time.Time { return now }}
	return f
}

const sampleEvents = `[
 {"type":4,"data":{"href":"http://shop.test/","width":1280,"height":720},"timestamp":1700000000000},
 {"type":2,"data":{"node":{"type":0,"childNodes":[]}},"timestamp":1700000000005},
 {"type":3,"data":{"source":2,"type":2,"id":5,"x":10,"y":20},"timestamp":1700000001000},
 {"type":3,"data":{"source":2,"type":1,"id":5,"x":10,"y":20},"timestamp":1700000000990},
 {"type":3,"data":{"source":2,"type":2,"id":7,"x":11,"y":21},"timestamp":1700000002000}
]`

func batchJSON(token string, seq int, events string) string {
	return `{"v":1,"token":"` + token + `","seq":` + strconv.Itoa(seq) + `,"events":` + events + `}`
}

func gz(tb testing.TB, s string) []byte {
	tb.Helper()
	var b bytes.Buffer
	w := gzip.NewWriter(&b)
	w.Write([]byte(s))
	if err := w.Close(); err != nil {
		tb.Fatal(err)
	}
	return b.Bytes()
}

func post(c http.Handler, body []byte, header map[string]string) *httptest.ResponseRecorder {
	r := httptest.NewRequest(http.MethodPost, "/__loupe/ingest", bytes.NewReader(body))
	r.Header.Set("User-Agent", "test-agent/1.0")
	for k, v := range header {
		r.Header.Set(k, v)
	}
	w := httptest.NewRecorder()
	c.ServeHTTP(w, r)
	return w
}

func TestIngestAccepts(t *testing.T) {
	tests := []struct {
		name   string
		gzip   bool
		header map[string]string
	}{
		{name: "plain JSON"},
		{name: "gzip by header", gzip: true, header: map[string]string{"Content-Encoding": "gzip"}},
		{name: "gzip by magic (sendBeacon)", gzip: true},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFixture(t)
			body := []byte(batchJSON(f.token, i, sampleEvents))
			if tt.gzip {
				body = gz(t, string(body))
			}
			w := post(f.c, body, tt.header)
			if w.Code != http.StatusNoContent {
				t.Fatalf("got status %d (%s), want 204", w.Code, w.Body)
			}
			if len(f.st.batches) != 1 {
				t.Fatalf("got %d stored batches, want 1", len(f.st.batches))
			}
			b := f.st.batches[0]
			want := store.Batch{SessionID: f.sid, PageViewID: f.pv, Seq: i, EventCount: 5,
				FirstTS: 1700000000000, LastTS: 1700000002000, URL: "http://shop.test/",
				Clicks:    []store.Click{{PageViewID: f.pv, At: 1700000001000}, {PageViewID: f.pv, At: 1700000002000}},
				UserAgent: "test-agent/1.0"}
			got := *b
			got.Events, got.ReceivedAt = nil, time.Time{}
			if !reflect.DeepEqual(got, want) {
				t.Errorf("got batch %+v, want %+v", got, want)
			}
			var evs []map[string]any
			if err := json.Unmarshal(b.Events, &evs); err != nil || len(evs) != 5 {
				t.Errorf("stored events: got %d events, err %v; want 5", len(evs), err)
			}
		})
	}
}

func TestIngestRecorderPageViewID(t *testing.T) {
	f := newFixture(t)
	own := NewID()
	body := `{"v":1,"token":"` + f.token + `","pv":"` + own + `","seq":0,"events":` + sampleEvents + `}`
	if w := post(f.c, []byte(body), nil); w.Code != http.StatusNoContent {
		t.Fatalf("got status %d (%s), want 204", w.Code, w.Body)
	}
	if got := f.st.batches[0]; got.PageViewID != own || got.SessionID != f.sid {
		t.Fatalf("got (session %s, page view %s), want (%s, %s)", got.SessionID, got.PageViewID, f.sid, own)
	}
}

func TestIngestDuplicateIsAcknowledgedOnce(t *testing.T) {
	f := newFixture(t)
	body := []byte(batchJSON(f.token, 3, sampleEvents))
	for i := 0; i < 3; i++ {
		if w := post(f.c, body, nil); w.Code != http.StatusNoContent {
			t.Fatalf("attempt %d: got status %d, want 204", i, w.Code)
		}
	}
	if len(f.st.batches) != 1 {
		t.Fatalf("got %d stored batches, want 1", len(f.st.batches))
	}
}

func TestIngestRejects(t *testing.T) {
	f := newFixture(t)
	other, _ := NewTokens([]byte(strings.Repeat("z", 32)))
	forged := other.PageViewToken(f.sid, f.pv)
	big := `[` + strings.Repeat(`{"type":5,"data":{"tag":"x","payload":"`+strings.Repeat("a", 1000)+`"},"timestamp":1700000000000},`, 300) + `{"type":5,"data":{},"timestamp":1700000000000}]`
	tests := []struct {
		name     string
		method   string
		body     []byte
		header   map[string]string
		want     int
		wantText string
	}{
		{name: "GET", method: http.MethodGet, want: http.StatusMethodNotAllowed, wantText: "POST"},
		{name: "not JSON", body: []byte("hello"), want: http.StatusBadRequest, wantText: "not a JSON batch"},
		{name: "bad gzip", body: []byte{0x1f, 0x8b, 1, 2, 3}, want: http.StatusBadRequest, wantText: "gzip"},
		{name: "unknown encoding", body: []byte("{}"), header: map[string]string{"Content-Encoding": "zstd"}, want: http.StatusUnsupportedMediaType, wantText: "zstd"},
		{name: "wrong version", body: []byte(`{"v":2,"token":"` + f.token + `","seq":0,"events":[]}`), want: http.StatusBadRequest, wantText: "version"},
		{name: "missing token", body: []byte(batchJSON("", 0, sampleEvents)), want: http.StatusUnauthorized, wantText: "missing token"},
		{name: "forged token", body: []byte(batchJSON(forged, 0, sampleEvents)), want: http.StatusUnauthorized, wantText: "invalid"},
		{name: "missing seq", body: []byte(`{"v":1,"token":"` + f.token + `","events":` + sampleEvents + `}`), want: http.StatusBadRequest, wantText: "seq"},
		{name: "negative seq", body: []byte(batchJSON(f.token, -1, sampleEvents)), want: http.StatusBadRequest, wantText: "seq"},
		{name: "bad pv", body: []byte(`{"v":1,"token":"` + f.token + `","pv":"../x","seq":0,"events":` + sampleEvents + `}`), want: http.StatusBadRequest, wantText: "pv"},
		{name: "no events", body: []byte(batchJSON(f.token, 0, `[]`)), want: http.StatusBadRequest, wantText: "events"},
		{name: "event not object", body: []byte(batchJSON(f.token, 0, `[1]`)), want: http.StatusBadRequest, wantText: "event 0"},
		{name: "unknown type", body: []byte(batchJSON(f.token, 0, `[{"type":9,"data":{},"timestamp":1}]`)), want: http.StatusBadRequest, wantText: "type"},
		{name: "no timestamp", body: []byte(batchJSON(f.token, 0, `[{"type":3,"data":{}}]`)), want: http.StatusBadRequest, wantText: "timestamp"},
		{name: "data not object", body: []byte(batchJSON(f.token, 0, `[{"type":3,"data":"x","timestamp":1}]`)), want: http.StatusBadRequest, wantText: "data"},
		{name: "body too large", body: []byte(batchJSON(f.token, 0, big)), want: http.StatusRequestEntityTooLarge, wantText: "65536"},
		{name: "decompressed too large", body: gz(t, batchJSON(f.token, 0, `[`+strings.Repeat(`{"type":5,"data":{"p":"`+strings.Repeat("a", 10000)+`"},"timestamp":1},`, 30)+`{"type":5,"data":{},"timestamp":1}]`)), want: http.StatusRequestEntityTooLarge, wantText: "262144"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			method := tt.method
			if method == "" {
				method = http.MethodPost
			}
			r := httptest.NewRequest(method, "/__loupe/ingest", bytes.NewReader(tt.body))
			for k, v := range tt.header {
				r.Header.Set(k, v)
			}
			w := httptest.NewRecorder()
			f.c.ServeHTTP(w, r)
			if w.Code != tt.want {
				t.Fatalf("got status %d (%s), want %d", w.Code, w.Body, tt.want)
			}
			var e struct{ Error string }
			if err := json.Unmarshal(w.Body.Bytes(), &e); err != nil || !strings.Contains(e.Error, tt.wantText) {
				t.Fatalf("got body %q, want a JSON error mentioning %q", w.Body, tt.wantText)
			}
			if len(f.st.batches) != 0 {
				t.Fatalf("stored %d batches from rejected input", len(f.st.batches))
			}
		})
	}
}

func TestIngestStoreDown(t *testing.T) {
	f := newFixture(t)
	f.st.err = errors.New("disk I/O error")
	w := post(f.c, []byte(batchJSON(f.token, 0, sampleEvents)), nil)
	if w.Code != http.StatusServiceUnavailable {
		t.Fatalf("got status %d, want 503", w.Code)
	}
	if w.Header().Get("Retry-After") == "" {
		t.Error("503 without Retry-After")
	}
	if strings.Contains(w.Body.String(), "disk") {
		t.Errorf("internal error text leaked to the client: %s", w.Body)
	}
}

// FuzzIngest checks that no input panics the decoder, that nothing is
// stored unless the batch is valid, and that an accepted batch is always
// written into the session its token proves.
func FuzzIngest(f *testing.F) {
	fx := newFixture(f)
	f.Add([]byte(batchJSON(fx.token, 0, sampleEvents)))
	f.Add([]byte(`{"v":1,"token":"` + fx.token + `","pv":"` + NewID() + `","seq":1,"events":[{"type":3,"data":{},"timestamp":1}]}`))
	f.Add([]byte(`{"v":1,"token":"x.y","seq":0,"events":[]}`))
	f.Add(gz(f, batchJSON(fx.token, 0, sampleEvents)))
	f.Fuzz(func(t *testing.T, body []byte) {
		fx.st.batches = nil
		fx.st.seen = nil
		w := post(fx.c, body, nil)
		switch {
		case w.Code == http.StatusNoContent:
			if len(fx.st.batches) != 1 {
				t.Fatalf("204 with %d stored batches", len(fx.st.batches))
			}
			b := fx.st.batches[0]
			if b.SessionID != fx.sid {
				t.Fatalf("batch written into session %q, token proves %q", b.SessionID, fx.sid)
			}
			if !json.Valid(b.Events) {
				t.Fatalf("stored events are not valid JSON: %q", b.Events)
			}
		case w.Code >= 400 && w.Code < 500:
			if len(fx.st.batches) != 0 {
				t.Fatalf("status %d but %d batches stored", w.Code, len(fx.st.batches))
			}
		default:
			t.Fatalf("unexpected status %d: %s", w.Code, w.Body)
		}
	})
}
