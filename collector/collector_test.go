package collector

import (
	"bytes"
	"compress/gzip"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"reflect"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/time/rate"

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
	kept := *b
	kept.Events = bytes.Clone(b.Events) // the collector reuses its buffer
	m.batches = append(m.batches, &kept)
	return nil
}

type fixture struct {
	c       *Collector
	st      *memStore
	tk      *Tokens
	now     *time.Time
	sid, pv string
	start   time.Time // the session's start
	token   string
}

// fixtureNow is the fixture's clock at creation: 2023-11-14T22:13:20Z.
var fixtureNow = time.Unix(1_700_000_000, 0)

func newFixture(tb testing.TB) *fixture {
	tb.Helper()
	now := fixtureNow
	tk := mustTokens(tb, &now)
	st := &memStore{}
	// Fixed ids: the fuzzer's workers rebuild the fixture and must agree
	// with the seed corpus on which session a token proves.
	f := &fixture{st: st, tk: tk, now: &now, sid: "5e55105e55105e55105e55105e55105e", pv: "9a9e9a9e9a9e9a9e9a9e9a9e9a9e9a9e",
		start: now.Add(-time.Hour)}
	f.token = tk.PageViewToken(Session{ID: f.sid, Start: f.start}, f.pv)
	f.c = &Collector{Store: st, Tokens: tk,
		Limits: Limits{MaxBodyBytes: 64 << 10, MaxBatchBytes: 256 << 10, MaxEventBytes: 128 << 10},
		Logger: slog.New(slog.DiscardHandler),
		Now:    func() time.Time { return now }}
	return f
}

const sampleEvents = `[
 {"type":4,"data":{"href":"http://shop.test/","width":1280,"height":720},"timestamp":1700000000000},
 {"type":2,"data":{"node":{"type":0,"childNodes":[],"id":1},"initialOffset":{"left":0,"top":0}},"timestamp":1700000000005},
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
		if k == "RemoteAddr" {
			r.RemoteAddr = v
			continue
		}
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
			body := []byte(batchJSON(f.token, i+1, sampleEvents))
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
			want := store.Batch{SessionID: f.sid, PageViewID: f.pv, Seq: i + 1, EventCount: 5,
				FirstTS: 1700000000000, LastTS: 1700000002000, URL: "http://shop.test/",
				Clicks: []store.Click{
					{PageViewID: f.pv, At: 1700000001000, X: 10, Y: 20, NodeID: 5},
					{PageViewID: f.pv, At: 1700000002000, X: 11, Y: 21, NodeID: 7}},
				ScrollDepth: 720, ViewportW: 1280, ViewportH: 720,
				UserAgent:  "test-agent/1.0",
				Client:     store.Client{IPHash: f.tk.HashIP(ParseAddr("192.0.2.1"))},
				ReceivedAt: fixtureNow}
			got := *b
			got.Events = nil
			if !reflect.DeepEqual(got, want) {
				t.Errorf("got batch\n%+v\nwant\n%+v", got, want)
			}
			if !bytes.Equal(b.Events, []byte(sampleEvents)) {
				t.Errorf("stored events differ from the bytes received:\n%s", b.Events)
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
	got := f.st.batches[0]
	if got.PageViewID != own || got.SessionID != f.sid {
		t.Fatalf("got (session %s, page view %s), want (%s, %s)", got.SessionID, got.PageViewID, f.sid, own)
	}
	for _, c := range got.Clicks {
		if c.PageViewID != own {
			t.Errorf("click in page view %q, want %q", c.PageViewID, own)
		}
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
	forged := other.PageViewToken(Session{ID: f.sid, Start: f.start}, f.pv)
	expired := func() string {
		saved := *f.now
		*f.now = saved.Add(-TokenTTL - time.Minute)
		defer func() { *f.now = saved }()
		return f.tk.PageViewToken(Session{ID: f.sid, Start: *f.now}, f.pv)
	}()
	tooLong := f.tk.PageViewToken(Session{ID: f.sid, Start: fixtureNow.Add(-DefaultMaxSessionLength - time.Second)}, f.pv)
	ev := func(ts int64) string {
		return `{"type":3,"data":{"source":1,"positions":[]},"timestamp":` + strconv.FormatInt(ts, 10) + `}`
	}
	const t0 = 1700000000000
	big := `[` + strings.Repeat(`{"type":5,"data":{"tag":"x","payload":"`+strings.Repeat("a", 1000)+`"},"timestamp":1700000000000},`, 300) + `{"type":5,"data":{},"timestamp":1700000000000}]`
	hugeEvent := `[{"type":3,"data":{"source":0,"adds":"` + strings.Repeat("a", 130<<10) + `"},"timestamp":1700000000000}]`
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
		{name: "JSON array", body: []byte("[1]"), want: http.StatusBadRequest, wantText: "not a JSON batch"},
		{name: "trailing data", body: []byte(batchJSON(f.token, 0, sampleEvents) + "{}"), want: http.StatusBadRequest, wantText: "after the object"},
		{name: "truncated", body: []byte(batchJSON(f.token, 0, sampleEvents)[:200]), want: http.StatusBadRequest, wantText: "is not valid JSON"},
		{name: "bad gzip", body: []byte{0x1f, 0x8b, 1, 2, 3}, want: http.StatusBadRequest, wantText: "gzip"},
		{name: "unknown encoding", body: []byte("{}"), header: map[string]string{"Content-Encoding": "zstd"}, want: http.StatusUnsupportedMediaType, wantText: "zstd"},
		{name: "wrong version", body: []byte(`{"v":2,"token":"` + f.token + `","seq":0,"events":[]}`), want: http.StatusBadRequest, wantText: "version"},
		{name: "missing token", body: []byte(batchJSON("", 0, sampleEvents)), want: http.StatusUnauthorized, wantText: "missing token"},
		{name: "forged token", body: []byte(batchJSON(forged, 0, sampleEvents)), want: http.StatusUnauthorized, wantText: "invalid"},
		{name: "expired token", body: []byte(batchJSON(expired, 0, sampleEvents)), want: http.StatusUnauthorized, wantText: "expired"},
		{name: "session too long", body: []byte(batchJSON(tooLong, 0, sampleEvents)), want: http.StatusForbidden, wantText: "maximum session length of 12h0m0s"},
		{name: "missing seq", body: []byte(`{"v":1,"token":"` + f.token + `","events":` + sampleEvents + `}`), want: http.StatusBadRequest, wantText: "seq"},
		{name: "negative seq", body: []byte(batchJSON(f.token, -1, sampleEvents)), want: http.StatusBadRequest, wantText: "seq"},
		{name: "fractional seq", body: []byte(`{"v":1,"token":"` + f.token + `","seq":1.5,"events":` + sampleEvents + `}`), want: http.StatusBadRequest, wantText: "seq"},
		{name: "bad pv", body: []byte(`{"v":1,"token":"` + f.token + `","pv":"../x","seq":0,"events":` + sampleEvents + `}`), want: http.StatusBadRequest, wantText: "pv"},
		{name: "page not object", body: []byte(`{"v":1,"token":"` + f.token + `","seq":0,"page":"x","events":` + sampleEvents + `}`), want: http.StatusBadRequest, wantText: "page"},
		{name: "referrer not string", body: []byte(`{"v":1,"token":"` + f.token + `","seq":0,"page":{"referrer":1},"events":` + sampleEvents + `}`), want: http.StatusBadRequest, wantText: "page.referrer"},
		{name: "tab not an id", body: []byte(`{"v":1,"token":"` + f.token + `","seq":0,"page":{"tab":"tab-1"},"events":` + sampleEvents + `}`), want: http.StatusBadRequest, wantText: "page.tab must be 32 hex digits"},
		{name: "tab not string", body: []byte(`{"v":1,"token":"` + f.token + `","seq":0,"page":{"tab":7},"events":` + sampleEvents + `}`), want: http.StatusBadRequest, wantText: "page.tab"},
		{name: "no events", body: []byte(batchJSON(f.token, 0, `[]`)), want: http.StatusBadRequest, wantText: "events"},
		{name: "events not array", body: []byte(batchJSON(f.token, 0, `{}`)), want: http.StatusBadRequest, wantText: "events"},
		{name: "event not object", body: []byte(batchJSON(f.token, 0, `[1]`)), want: http.StatusBadRequest, wantText: "event 0 is not an object"},
		{name: "unknown type", body: []byte(batchJSON(f.token, 0, `[{"type":9,"data":{},"timestamp":1}]`)), want: http.StatusBadRequest, wantText: "event 0 has no valid type"},
		{name: "fractional type", body: []byte(batchJSON(f.token, 0, `[{"type":3.5,"data":{},"timestamp":1}]`)), want: http.StatusBadRequest, wantText: "event 0 has no valid type"},
		{name: "no type", body: []byte(batchJSON(f.token, 0, `[`+ev(t0)+`,{"data":{},"timestamp":1}]`)), want: http.StatusBadRequest, wantText: "event 1 has no valid type"},
		{name: "no timestamp", body: []byte(batchJSON(f.token, 0, `[{"type":3,"data":{}}]`)), want: http.StatusBadRequest, wantText: "event 0 has no valid timestamp"},
		{name: "string timestamp", body: []byte(batchJSON(f.token, 0, `[{"type":3,"data":{},"timestamp":"1"}]`)), want: http.StatusBadRequest, wantText: "event 0 has no valid timestamp"},
		{name: "data not object", body: []byte(batchJSON(f.token, 0, `[{"type":3,"data":"x","timestamp":1}]`)), want: http.StatusBadRequest, wantText: "event 0 has no data object"},
		{name: "no data", body: []byte(batchJSON(f.token, 0, `[{"type":3,"timestamp":1}]`)), want: http.StatusBadRequest, wantText: "event 0 has no data object"},
		{name: "timestamp goes back", body: []byte(batchJSON(f.token, 0, `[`+ev(t0)+`,`+ev(t0+10000)+`,`+ev(t0+4000)+`]`)), want: http.StatusBadRequest, wantText: "event 2 has a timestamp 6000 ms before"},
		{name: "timestamp in the future", body: []byte(batchJSON(f.token, 0, `[`+ev(t0)+`,`+ev(t0+25*3600*1000)+`]`)), want: http.StatusBadRequest, wantText: "event 1 has a timestamp more than 24h0m0s ahead"},
		{name: "body too large", body: []byte(batchJSON(f.token, 0, big)), want: http.StatusRequestEntityTooLarge, wantText: "limit of 65536 bytes"},
		{name: "decompressed too large", body: gz(t, batchJSON(f.token, 0, `[`+strings.Repeat(`{"type":5,"data":{"p":"`+strings.Repeat("a", 10000)+`"},"timestamp":1},`, 30)+`{"type":5,"data":{},"timestamp":1}]`)), want: http.StatusRequestEntityTooLarge, wantText: "limit of 262144 bytes"},
		{name: "event too large", body: gz(t, batchJSON(f.token, 0, hugeEvent)), want: http.StatusRequestEntityTooLarge, wantText: "event 0 is 133"},
		{name: "event too large names limit", body: gz(t, batchJSON(f.token, 0, hugeEvent)), want: http.StatusRequestEntityTooLarge, wantText: "limit of 131072 bytes per event"},
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
			if ct := w.Header().Get("Content-Type"); ct != "application/json" {
				t.Errorf("got Content-Type %q, want application/json", ct)
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
	if got := w.Header().Get("Retry-After"); got != "5" {
		t.Errorf("got Retry-After %q, want 5", got)
	}
	if strings.Contains(w.Body.String(), "disk") || !strings.Contains(w.Body.String(), `"error"`) {
		t.Errorf("got body %s, want a JSON error without internal text", w.Body)
	}
	// Once the store is back, the retried batch is stored.
	f.st.err = nil
	if w := post(f.c, []byte(batchJSON(f.token, 0, sampleEvents)), nil); w.Code != http.StatusNoContent {
		t.Fatalf("retry: got status %d, want 204", w.Code)
	}
}

func TestRateLimits(t *testing.T) {
	tests := []struct {
		name   string
		limits Limits
		// tokens[i] is the session of request i: requests alternate
		// sessions to tell per-session from per-client limits.
		sessions  int
		addrs     int
		wantOK    int    // accepted before the first 429
		wantRetry string // its Retry-After
		wantText  string
		wait      time.Duration // after which one more request passes
	}{
		{name: "per session", limits: Limits{SessionRate: 1, SessionBurst: 3, ClientRate: rate.Inf},
			sessions: 1, addrs: 1, wantOK: 3, wantRetry: "1", wantText: "session", wait: time.Second},
		{name: "per session, slow rate", limits: Limits{SessionRate: 0.1, SessionBurst: 2, ClientRate: rate.Inf},
			sessions: 1, addrs: 1, wantOK: 2, wantRetry: "10", wantText: "session", wait: 10 * time.Second},
		{name: "per client address across sessions", limits: Limits{SessionRate: rate.Inf, ClientRate: 2, ClientBurst: 4},
			sessions: 4, addrs: 1, wantOK: 4, wantRetry: "1", wantText: "address", wait: 500 * time.Millisecond},
		{name: "negative rates disable both limits", limits: Limits{SessionRate: -1, ClientRate: -1},
			sessions: 1, addrs: 1, wantOK: DefaultClientBurst + 10},
		{name: "addresses do not share a bucket", limits: Limits{SessionRate: rate.Inf, ClientRate: 1, ClientBurst: 1},
			sessions: 1, addrs: 5, wantOK: 5},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFixture(t)
			f.c.Limits = tt.limits
			tokens := make([]string, tt.sessions)
			for i := range tokens {
				tokens[i] = f.tk.PageViewToken(Session{ID: fmt.Sprintf("%032x", i+1), Start: f.start}, NewID())
			}
			send := func(i int) *httptest.ResponseRecorder {
				return post(f.c, []byte(batchJSON(tokens[i%len(tokens)], i, sampleEvents)),
					map[string]string{"RemoteAddr": fmt.Sprintf("198.51.100.%d:4000", i%tt.addrs+1)})
			}
			for i := 0; i < tt.wantOK; i++ {
				if w := send(i); w.Code != http.StatusNoContent {
					t.Fatalf("request %d: got status %d (%s), want 204", i, w.Code, w.Body)
				}
			}
			if tt.wantRetry == "" {
				return
			}
			w := send(tt.wantOK)
			if w.Code != http.StatusTooManyRequests {
				t.Fatalf("request %d: got status %d, want 429", tt.wantOK, w.Code)
			}
			if got := w.Header().Get("Retry-After"); got != tt.wantRetry {
				t.Errorf("got Retry-After %q, want %q", got, tt.wantRetry)
			}
			if !strings.Contains(w.Body.String(), tt.wantText) {
				t.Errorf("got body %s, want it to mention %q", w.Body, tt.wantText)
			}
			// A refused request takes no token: after the wait, one passes.
			*f.now = f.now.Add(tt.wait - time.Millisecond)
			if w := send(tt.wantOK); w.Code != http.StatusTooManyRequests {
				t.Fatalf("just before the wait: got status %d, want 429", w.Code)
			}
			*f.now = f.now.Add(time.Millisecond)
			if w := send(tt.wantOK); w.Code != http.StatusNoContent {
				t.Fatalf("after the wait: got status %d (%s), want 204", w.Code, w.Body)
			}
			if n := len(f.st.batches); n != tt.wantOK+1 {
				t.Errorf("stored %d batches, want %d", n, tt.wantOK+1)
			}
		})
	}
}

func TestRateLimiterMemoryIsBounded(t *testing.T) {
	l := NewLimiter[string](1, 1, 100)
	now := fixtureNow
	for i := 0; i < 10_000; i++ {
		l.Wait(strconv.Itoa(i), now)
	}
	if n := l.m.Len(); n > 100 {
		t.Fatalf("limiter remembers %d keys, want at most 100", n)
	}
	// The most recent key is still limited.
	if d := l.Wait("9999", now); d != time.Second {
		t.Fatalf("got wait %v for a recent key, want 1s", d)
	}
}

func TestIngestPageInfo(t *testing.T) {
	events := `[{"type":4,"data":{"href":"https://shop.test/p?utm_source=news&utm_medium=email&utm_campaign=autumn&utm_term=beans&utm_content=hero&x=1","width":390,"height":844},"timestamp":1700000000000}]`
	tests := []struct {
		name string
		seq  int
		page string
		want *store.PageInfo
	}{
		{name: "seq 0 with page", seq: 0, page: `{"referrer":"https://www.google.com/","language":"en-GB","future":[1],"tab":"0123456789abcdef0123456789abcdef"}`,
			want: &store.PageInfo{Referrer: "https://www.google.com/", Language: "en-GB", UTMSource: "news", UTMMedium: "email",
				UTMCampaign: "autumn", UTMTerm: "beans", UTMContent: "hero", Tab: "0123456789abcdef0123456789abcdef"}},
		{name: "seq 0 without page (older recorder)", seq: 0, page: "",
			want: &store.PageInfo{UTMSource: "news", UTMMedium: "email", UTMCampaign: "autumn", UTMTerm: "beans", UTMContent: "hero"}},
		{name: "page ignored after seq 0", seq: 1, page: `{"referrer":"https://x.test/"}`, want: nil},
		{name: "null page", seq: 0, page: `null`,
			want: &store.PageInfo{UTMSource: "news", UTMMedium: "email", UTMCampaign: "autumn", UTMTerm: "beans", UTMContent: "hero"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFixture(t)
			page := ""
			if tt.page != "" {
				page = `,"page":` + tt.page
			}
			body := `{"v":1,"token":"` + f.token + `","seq":` + strconv.Itoa(tt.seq) + page + `,"events":` + events + `}`
			if w := post(f.c, []byte(body), nil); w.Code != http.StatusNoContent {
				t.Fatalf("got status %d (%s), want 204", w.Code, w.Body)
			}
			if got := f.st.batches[0].Page; !reflect.DeepEqual(got, tt.want) {
				t.Errorf("got page %+v, want %+v", got, tt.want)
			}
		})
	}
}

// TestConcurrentIngest runs requests in parallel for the race detector:
// the limiters and the User-Agent cache are shared.
func TestConcurrentIngest(t *testing.T) {
	f := newFixture(t)
	f.c.Store = discard{}
	var wg sync.WaitGroup
	codes := make(chan int, 64)
	for g := 0; g < 8; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < 8; i++ {
				tok := f.tk.PageViewToken(Session{ID: NewID(), Start: f.start}, NewID())
				codes <- post(f.c, []byte(batchJSON(tok, i, sampleEvents)), map[string]string{
					"RemoteAddr": fmt.Sprintf("198.51.100.%d:1", g), "User-Agent": fmt.Sprintf("agent/%d", i%3)}).Code
			}
		}()
	}
	wg.Wait()
	close(codes)
	for c := range codes {
		if c != http.StatusNoContent {
			t.Fatalf("got status %d, want 204", c)
		}
	}
}

// FuzzIngest checks that no input panics the decoder, that nothing is
// stored unless the batch is valid, and that an accepted batch is always
// written into the session its token proves.
func FuzzIngest(f *testing.F) {
	fx := newFixture(f)
	fx.c.Limits.SessionRate, fx.c.Limits.ClientRate = rate.Inf, rate.Inf
	f.Add([]byte(batchJSON(fx.token, 0, sampleEvents)))
	f.Add([]byte(`{"v":1,"token":"` + fx.token + `","pv":"` + NewID() + `","seq":1,"events":[{"type":3,"data":{},"timestamp":1}]}`))
	f.Add([]byte(`{"v":1,"token":"x.y","seq":0,"events":[]}`))
	f.Add(gz(f, batchJSON(fx.token, 0, sampleEvents)))
	f.Add([]byte(`{"v":1,"seq":0,"page":{"referrer":"r","language":"en","tab":"` + NewID() + `"},"token":"` + fx.token + `","events":` + derivedEvents + `}`))
	f.Add([]byte(`{"events":[{"data":{"type":2,"source":2,"x":1},"timestamp":1700000000000,"type":3}],"seq":0,"v":1,"token":"` + fx.token + `"}`))
	f.Add([]byte(`{"v":1,"token":"` + fx.token + `","seq":0,"events":[{"type":5,"data":{"tag":"loupe.error","payload":{"message":"\ud800x","stack":"s"}},"timestamp":1}]}`))
	f.Add([]byte(batchJSON(fx.token, 0, realisticEvents(8<<10, 1_700_000_000_000))))
	// A token for another session, signed with another key: must never land.
	other, _ := NewTokens([]byte(strings.Repeat("o", 32)))
	other.Now = fx.tk.Now
	f.Add([]byte(batchJSON(other.PageViewToken(Session{ID: NewID(), Start: fx.start}, NewID()), 0, sampleEvents)))
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
			if !validID(b.PageViewID) {
				t.Fatalf("batch written into page view %q", b.PageViewID)
			}
			if !json.Valid(b.Events) || b.Events[0] != '[' {
				t.Fatalf("stored events are not a JSON array: %q", b.Events)
			}
			var evs []json.RawMessage
			if err := json.Unmarshal(b.Events, &evs); err != nil || len(evs) != b.EventCount {
				t.Fatalf("stored %d events (%v), counted %d", len(evs), err, b.EventCount)
			}
			for _, e := range b.Errors {
				if len(e.Message) > maxMessage || len(e.Stack) > maxStack {
					t.Fatalf("error row not truncated: %d-byte message, %d-byte stack", len(e.Message), len(e.Stack))
				}
			}
		case w.Code >= 400 && w.Code < 500:
			if len(fx.st.batches) != 0 {
				t.Fatalf("status %d but %d batches stored", w.Code, len(fx.st.batches))
			}
			var e struct{ Error string }
			if err := json.Unmarshal(w.Body.Bytes(), &e); err != nil || e.Error == "" {
				t.Fatalf("status %d with body %q, want a JSON error", w.Code, w.Body)
			}
		default:
			t.Fatalf("unexpected status %d: %s", w.Code, w.Body)
		}
	})
}
