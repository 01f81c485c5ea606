package replayer

import (
	"compress/gzip"
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"testing/fstest"
	"time"

	"github.com/loupe-dev/loupe/replayer/replayertest"
	"github.com/loupe-dev/loupe/store"
)

// fakeStore serves fixed sessions, and keeps users in memory.
type fakeStore struct {
	*replayertest.Users
	sessions []*store.Session
	events   map[string]string
	down     bool
	gotF     store.SessionFilter
}

func (f *fakeStore) Sessions(_ context.Context, sf store.SessionFilter) ([]*store.Session, error) {
	f.gotF = sf
	if f.down {
		return nil, errors.New("database is locked")
	}
	return f.sessions, nil
}

func (f *fakeStore) Session(_ context.Context, id string) (*store.Session, error) {
	for _, s := range f.sessions {
		if s.ID == id {
			return s, nil
		}
	}
	return nil, store.ErrNotFound
}

func (f *fakeStore) WriteEvents(_ context.Context, id string, w io.Writer) error {
	ev, ok := f.events[id]
	if !ok {
		return store.ErrNotFound
	}
	_, err := io.WriteString(w, ev)
	return err
}

func (f *fakeStore) Ping(context.Context) error {
	if f.down {
		return errors.New("down")
	}
	return nil
}

func newServer(t *testing.T) (*httptest.Server, *fakeStore) {
	t.Helper()
	start := time.Date(2026, 11, 27, 10, 0, 0, 0, time.UTC)
	fs := &fakeStore{
		Users: replayertest.NewUsers(),
		sessions: []*store.Session{{ID: "s1", StartedAt: start, EndedAt: start.Add(90 * time.Second),
			PageCount: 3, ClickCount: 7, EventCount: 40, EntryURL: "http://shop.test/", UserAgent: "Chrome",
			Client:   store.Client{Browser: "Chrome", OS: "Windows", Device: "desktop", Country: "NZ"},
			Language: "en-NZ", ViewportW: 1280, ViewportH: 720, UTMSource: "news"}},
		events: map[string]string{"s1": `[{"type":4,"data":{},"timestamp":1}]`},
	}
	srv, err := New(Config{Store: fs, Logger: slog.New(slog.DiscardHandler),
		UI: fstest.MapFS{"app.js": {Data: []byte("//ui")}, "app.css": {Data: []byte("/*ui*/")}}})
	if err != nil {
		t.Fatal(err)
	}
	ts := httptest.NewServer(srv)
	t.Cleanup(ts.Close)
	// ts.Client() is signed in.
	replayertest.SignIn(t, ts.Client(), ts.URL, fs, store.RoleViewer)
	return ts, fs
}

func TestRoutes(t *testing.T) {
	ts, _ := newServer(t)
	tests := []struct {
		path     string
		want     int
		wantType string
		wantBody string
	}{
		{"/", 200, "text/html", `data-page="sessions"`},
		{"/sessions/s1", 200, "text/html", `data-session="s1"`},
		{"/sessions/s1?t=1500", 200, "text/html", `data-t="1500"`},
		{"/sessions/s1?t=-4", 400, "text/plain", "milliseconds"},
		{"/sessions/s1?t=abc", 400, "text/plain", "milliseconds"},
		{"/sessions/nope", 404, "text/plain", "session not found"},
		{"/api/sessions", 200, "application/json", `"duration_ms":90000`},
		{"/api/sessions?limit=5000", 400, "application/json", "limit"},
		{"/api/sessions/s1", 200, "application/json", `"page_count":3`},
		{"/api/sessions/nope", 404, "application/json", `"error":"session not found"`},
		{"/api/sessions/nope/events", 404, "application/json", "not found"},
		{"/api/sessions/s1/events", 200, "application/json", `[{"type":4`},
		{"/ui/app.js", 200, "text/javascript", "//ui"},
		{"/healthz", 200, "text/plain", "ok"},
		{"/readyz", 200, "text/plain", "ok"},
		{"/nope", 404, "text/plain", ""},
	}
	for _, tt := range tests {
		t.Run(tt.path, func(t *testing.T) {
			resp, err := ts.Client().Get(ts.URL + tt.path)
			if err != nil {
				t.Fatal(err)
			}
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode != tt.want {
				t.Fatalf("got status %d (%s), want %d", resp.StatusCode, body, tt.want)
			}
			if ct := resp.Header.Get("Content-Type"); !strings.HasPrefix(ct, tt.wantType) {
				t.Errorf("got Content-Type %q, want %s", ct, tt.wantType)
			}
			if !strings.Contains(string(body), tt.wantBody) {
				t.Errorf("got body %q, want it to contain %q", body, tt.wantBody)
			}
			if csp := resp.Header.Get("Content-Security-Policy"); !strings.Contains(csp, "script-src 'self'") {
				t.Errorf("got CSP %q, want scripts limited to the UI", csp)
			}
		})
	}
}

func TestSessionJSON(t *testing.T) {
	ts, fs := newServer(t)
	resp, err := ts.Client().Get(ts.URL + "/api/sessions?limit=10&offset=20")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var got struct{ Sessions []map[string]any }
	if err := json.NewDecoder(resp.Body).Decode(&got); err != nil {
		t.Fatal(err)
	}
	if fs.gotF.Limit != 10 || fs.gotF.Offset != 20 {
		t.Errorf("store got filter %+v, want limit 10 offset 20", fs.gotF)
	}
	want := map[string]any{"id": "s1", "started_at": "2026-11-27T10:00:00Z", "duration_ms": 90000.0,
		"page_count": 3.0, "click_count": 7.0, "entry_url": "http://shop.test/", "user_agent": "Chrome",
		"browser": "Chrome", "os": "Windows", "device": "desktop", "country": "NZ", "language": "en-NZ",
		"viewport_width": 1280.0, "viewport_height": 720.0, "utm_source": "news"}
	if len(got.Sessions) != 1 {
		t.Fatalf("got %d sessions, want 1", len(got.Sessions))
	}
	for k, v := range want {
		if got.Sessions[0][k] != v {
			t.Errorf("%s: got %v, want %v", k, got.Sessions[0][k], v)
		}
	}
}

func TestEventsGzip(t *testing.T) {
	ts, _ := newServer(t)
	req, _ := http.NewRequest("GET", ts.URL+"/api/sessions/s1/events", nil)
	req.Header.Set("Accept-Encoding", "gzip")
	req.AddCookie(replayertest.Cookie(t, ts.Client(), ts.URL))
	resp, err := (&http.Transport{DisableCompression: true}).RoundTrip(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.Header.Get("Content-Encoding") != "gzip" {
		t.Fatalf("got Content-Encoding %q, want gzip", resp.Header.Get("Content-Encoding"))
	}
	zr, err := gzip.NewReader(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(zr)
	if string(body) != `[{"type":4,"data":{},"timestamp":1}]` {
		t.Errorf("got %q, want the stored events", body)
	}
}

func TestStoreDown(t *testing.T) {
	ts, fs := newServer(t)
	fs.down = true
	for path, want := range map[string]int{"/readyz": 503, "/api/sessions": 500, "/healthz": 200} {
		resp, err := ts.Client().Get(ts.URL + path)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != want {
			t.Errorf("%s: got %d, want %d", path, resp.StatusCode, want)
		}
		if strings.Contains(string(body), "locked") {
			t.Errorf("%s: internal error text leaked: %s", path, body)
		}
	}
}

func TestAcceptsGzip(t *testing.T) {
	tests := []struct {
		ae   string
		want bool
	}{
		{"", false}, {"gzip", true}, {"br, gzip;q=0.5", true}, {"gzip;q=0", false}, {"deflate", false}, {"GZIP", true},
	}
	for _, tt := range tests {
		r := httptest.NewRequest("GET", "/", nil)
		r.Header.Set("Accept-Encoding", tt.ae)
		if got := acceptsGzip(r); got != tt.want {
			t.Errorf("acceptsGzip(%q) = %v, want %v", tt.ae, got, tt.want)
		}
	}
}
