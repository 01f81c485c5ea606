package collector

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/loupe-dev/loupe/store"
)

// reqStore is a RequestAppender keeping what it is given.
type reqStore struct {
	mu   sync.Mutex
	got  [][]store.Request
	fail error
}

func (s *reqStore) AppendRequests(_ context.Context, reqs []store.Request) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.fail != nil {
		return s.fail
	}
	s.got = append(s.got, append([]store.Request(nil), reqs...))
	return nil
}

func sampleRequests() []store.Request {
	return []store.Request{
		{SessionID: NewID(), PageViewID: NewID(), At: 1_700_000_000_000, Method: "GET", URL: "/", Status: 200,
			DurationMS: 12, Bytes: 3456, PageURL: "https://shop.test/", UserID: "ada@example.test"},
		{SessionID: NewID(), At: 1_700_000_000_500, Method: "POST", URL: "/api/cart?x=1", Status: 500, DurationMS: 40, Bytes: 12},
		{SessionID: NewID(), At: 1_700_000_000_600, Method: "GET", URL: "/ws", Status: 101, DurationMS: 9000, Stream: true},
	}
}

// TestRequestsRoundTrip: a proxy's RequestClient and a collector's
// RequestsHandler, over HTTP, deliver the entries unchanged.
func TestRequestsRoundTrip(t *testing.T) {
	now := fixtureNow
	tk := mustTokens(t, &now)
	st := &reqStore{}
	srv := httptest.NewServer(&RequestsHandler{Store: st, Tokens: tk, Logger: slog.New(slog.DiscardHandler), Now: tk.Now})
	defer srv.Close()
	c := &RequestClient{URL: srv.URL + "/__loupe/requests", Tokens: tk, Now: tk.Now}
	want := sampleRequests()
	if err := c.AppendRequests(context.Background(), want); err != nil {
		t.Fatal(err)
	}
	if len(st.got) != 1 || !reflect.DeepEqual(st.got[0], want) {
		t.Fatalf("got %+v\nwant %+v", st.got, want)
	}

	// Another deployment's secret: refused, and not worth retrying.
	other := &RequestClient{URL: c.URL, Tokens: mustOtherTokens(t, &now), Now: tk.Now}
	if err := other.AppendRequests(context.Background(), want); !errors.Is(err, ErrRejected) || !strings.Contains(err.Error(), "401") {
		t.Errorf("forged signature: got %v, want a 401 wrapping ErrRejected", err)
	}
	// A store failure is worth retrying.
	st.fail = errors.New("disk full")
	if err := c.AppendRequests(context.Background(), want); err == nil || errors.Is(err, ErrRejected) || !strings.Contains(err.Error(), "503") {
		t.Errorf("store down: got %v, want a retryable 503", err)
	}
	// No collector at all: retryable.
	srv.Close()
	if err := c.AppendRequests(context.Background(), want); err == nil || errors.Is(err, ErrRejected) {
		t.Errorf("collector down: got %v, want a retryable error", err)
	}
}

func mustOtherTokens(tb testing.TB, now *time.Time) *Tokens {
	tb.Helper()
	tk, err := NewTokens([]byte(strings.Repeat("o", 32)))
	if err != nil {
		tb.Fatal(err)
	}
	tk.Now = func() time.Time { return *now }
	return tk
}

func TestRequestsHandlerRejects(t *testing.T) {
	now := fixtureNow
	tk := mustTokens(t, &now)
	st := &reqStore{}
	h := &RequestsHandler{Store: st, Tokens: tk, Logger: slog.New(slog.DiscardHandler), Now: tk.Now}
	sid := NewID()
	entry := `{"session_id":"` + sid + `","at":1700000000000,"method":"GET","url":"/","status":200,"duration_ms":1,"bytes":2}`
	good := `{"v":1,"requests":[` + entry + `]}`
	tests := []struct {
		name   string
		method string
		body   string
		sign   func(body []byte) string
		want   int
	}{
		{name: "ok", body: good, want: http.StatusNoContent},
		{name: "get", method: http.MethodGet, body: good, want: http.StatusMethodNotAllowed},
		{name: "no signature", body: good, sign: func([]byte) string { return "" }, want: http.StatusUnauthorized},
		{name: "garbage signature", body: good, sign: func([]byte) string { return "t=x,mac=y" }, want: http.StatusUnauthorized},
		{name: "signature of another body", body: good, sign: func([]byte) string { return tk.signRequests(now, []byte("{}")) }, want: http.StatusUnauthorized},
		{name: "stale signature", body: good, sign: func(b []byte) string { return tk.signRequests(now.Add(-RequestsSkew-time.Minute), b) }, want: http.StatusUnauthorized},
		{name: "future signature", body: good, sign: func(b []byte) string { return tk.signRequests(now.Add(RequestsSkew+time.Minute), b) }, want: http.StatusUnauthorized},
		{name: "not json", body: `{`, want: http.StatusBadRequest},
		{name: "version", body: `{"v":2,"requests":[` + entry + `]}`, want: http.StatusBadRequest},
		{name: "no requests", body: `{"v":1,"requests":[]}`, want: http.StatusBadRequest},
		{name: "bad session id", body: strings.Replace(good, sid, "nope", 1), want: http.StatusBadRequest},
		{name: "bad page view id", body: strings.Replace(good, `"at"`, `"page_view_id":"x","at"`, 1), want: http.StatusBadRequest},
		{name: "no method", body: strings.Replace(good, `"GET"`, `""`, 1), want: http.StatusBadRequest},
		{name: "bad status", body: strings.Replace(good, `"status":200`, `"status":1000`, 1), want: http.StatusBadRequest},
		{name: "no time", body: strings.Replace(good, `"at":1700000000000`, `"at":0`, 1), want: http.StatusBadRequest},
		{name: "too many", body: `{"v":1,"requests":[` + strings.TrimSuffix(strings.Repeat(entry+",", MaxLoggedRequests+1), ",") + `]}`,
			want: http.StatusRequestEntityTooLarge},
		{name: "too big", body: `{"v":1,"pad":"` + strings.Repeat("x", MaxRequestsBody) + `"}`, want: http.StatusRequestEntityTooLarge},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			st.got = nil
			m := tt.method
			if m == "" {
				m = http.MethodPost
			}
			r := httptest.NewRequest(m, "/__loupe/requests", bytes.NewReader([]byte(tt.body)))
			sig := tk.signRequests(now, []byte(tt.body))
			if tt.sign != nil {
				sig = tt.sign([]byte(tt.body))
			}
			if sig != "" {
				r.Header.Set("X-Loupe-Signature", sig)
			}
			w := httptest.NewRecorder()
			h.ServeHTTP(w, r)
			if w.Code != tt.want {
				t.Fatalf("got %d %s, want %d", w.Code, w.Body, tt.want)
			}
			if stored := len(st.got) > 0; stored != (tt.want == http.StatusNoContent) {
				t.Errorf("stored %v with status %d", stored, w.Code)
			}
			if w.Code != http.StatusNoContent && !strings.HasPrefix(w.Body.String(), `{"error":`) {
				t.Errorf("error body %q is not JSON", w.Body)
			}
		})
	}
}
