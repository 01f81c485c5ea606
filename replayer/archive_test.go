package replayer

import (
	"bufio"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nlnwa/gowarc/v2"

	"github.com/loupe-dev/loupe/replayer/replayertest"
	"github.com/loupe-dev/loupe/store"
)

// fakeAssets is an archive in memory: captures by URL, bodies by hash.
type fakeAssets struct {
	mu       sync.Mutex
	captures map[string][]*store.Asset
	bodies   map[string][]byte
	types    map[string]string
	session  map[string][]string // session id → referenced URLs
	lookups  map[string]int      // Capture calls per URL
}

func sha(b []byte) string {
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:])
}

func (f *fakeAssets) put(u, ct, body string, at time.Time) string {
	h := sha([]byte(body))
	if f.captures == nil {
		f.captures, f.bodies, f.types, f.lookups = map[string][]*store.Asset{}, map[string][]byte{}, map[string]string{}, map[string]int{}
	}
	f.bodies[h], f.types[h] = []byte(body), ct
	f.captures[u] = append(f.captures[u], &store.Asset{URL: u, Hash: h, ContentType: ct, Size: int64(len(body)), CapturedAt: at})
	return h
}

// Capture picks the latest capture at or before t, else the first after.
func (f *fakeAssets) Capture(_ context.Context, u string, t time.Time) (*store.Asset, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.lookups[u]++
	var best *store.Asset
	for _, a := range f.captures[u] {
		if !a.CapturedAt.After(t) && (best == nil || a.CapturedAt.After(best.CapturedAt) || best.CapturedAt.After(t)) {
			best = a
		}
	}
	if best == nil {
		for _, a := range f.captures[u] {
			if best == nil || a.CapturedAt.Before(best.CapturedAt) {
				best = a
			}
		}
	}
	if best == nil {
		return nil, store.ErrNotFound
	}
	return best, nil
}

func (f *fakeAssets) Body(_ context.Context, h string) ([]byte, string, error) {
	b, ok := f.bodies[h]
	if !ok {
		return nil, "", store.ErrNotFound
	}
	return b, f.types[h], nil
}

func (f *fakeAssets) SessionAssets(ctx context.Context, id string) ([]*store.Asset, error) {
	urls, ok := f.session[id]
	if !ok {
		return nil, store.ErrNotFound
	}
	var out []*store.Asset
	for _, u := range urls {
		if a, err := f.Capture(ctx, u, sessionStart); err == nil {
			out = append(out, a)
		}
	}
	return out, nil
}

var sessionStart = time.Date(2026, 11, 27, 10, 0, 0, 0, time.UTC)

// recorded is a full snapshot with a stylesheet link, a captured image
// shown twice, an image the archive never got and an inline style.
const recorded = `[{"type":4,"data":{"href":"http://shop.test/","width":1280,"height":720},"timestamp":1795780800000},` +
	`{"type":2,"data":{"node":{"type":0,"id":1,"childNodes":[{"type":2,"tagName":"html","attributes":{},"id":2,"childNodes":[` +
	`{"type":2,"tagName":"head","attributes":{},"id":3,"childNodes":[` +
	`{"type":2,"tagName":"link","attributes":{"rel":"stylesheet","href":"http://shop.test/css/shop.css"},"childNodes":[],"id":4}]},` +
	`{"type":2,"tagName":"body","attributes":{},"id":5,"childNodes":[` +
	`{"type":2,"tagName":"img","attributes":{"src":"http://shop.test/img/logo.png"},"childNodes":[],"id":6},` +
	`{"type":2,"tagName":"img","attributes":{"src":"http://shop.test/img/logo.png"},"childNodes":[],"id":7},` +
	`{"type":2,"tagName":"img","attributes":{"src":"http://shop.test/img/gone.png"},"childNodes":[],"id":8}` +
	`]}]}]},"initialOffset":{"left":0,"top":0}},"timestamp":1795780800005}]`

type archiveFixture struct {
	ts                    *httptest.Server
	fa                    *fakeAssets
	logo, css, bg, oldCSS string // hashes
}

func newArchiveServer(t *testing.T) *archiveFixture {
	t.Helper()
	fs := &fakeStore{
		Users:    replayertest.NewUsers(),
		sessions: []*store.Session{{ID: "s1", StartedAt: sessionStart, EndedAt: sessionStart.Add(time.Minute)}},
		events:   map[string]string{"s1": recorded},
	}
	fa := &fakeAssets{}
	f := &archiveFixture{fa: fa}
	f.oldCSS = fa.put("http://shop.test/css/shop.css", "text/css", "body{color:red}", sessionStart.Add(-48*time.Hour))
	f.css = fa.put("http://shop.test/css/shop.css", "text/css; charset=utf-8",
		`body{background:url(bg.png)} h1{background:url("/img/missing.png")} @import "https://fonts.test/f.css";`, sessionStart.Add(-time.Hour))
	// A later deploy: a replay of this session must not see it.
	fa.put("http://shop.test/css/shop.css", "text/css", "body{color:blue}", sessionStart.Add(time.Hour))
	f.logo = fa.put("http://shop.test/img/logo.png", "image/png", "\x89PNG logo", sessionStart.Add(-time.Minute))
	f.bg = fa.put("http://shop.test/css/bg.png", "image/png", "\x89PNG bg", sessionStart.Add(time.Minute))
	fa.session = map[string][]string{"s1": {"http://shop.test/css/shop.css", "http://shop.test/img/logo.png", "http://shop.test/img/gone.png"}}
	srv, err := New(Config{Store: fs, Assets: fa, Logger: slog.New(slog.DiscardHandler),
		Now: func() time.Time { return sessionStart.Add(24 * time.Hour) }})
	if err != nil {
		t.Fatal(err)
	}
	f.ts = httptest.NewServer(srv)
	t.Cleanup(f.ts.Close)
	replayertest.SignIn(t, f.ts.Client(), f.ts.URL, fs, store.RoleViewer)
	return f
}

func mustGet(t *testing.T, u string, header map[string]string) (*http.Response, []byte) {
	t.Helper()
	req, _ := http.NewRequest(http.MethodGet, u, nil)
	for k, v := range header {
		req.Header.Set(k, v)
	}
	resp, err := replayertest.ClientFor(u).Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp, body
}

// attrs returns every value of the named attribute in events, in order.
func attrs(t *testing.T, events []byte, name string) []string {
	t.Helper()
	var v any
	if err := json.Unmarshal(events, &v); err != nil {
		t.Fatalf("events are not JSON: %v: %s", err, events)
	}
	var out []string
	var walk func(any)
	walk = func(v any) {
		switch v := v.(type) {
		case []any:
			for _, e := range v {
				walk(e)
			}
		case map[string]any:
			if a, ok := v["attributes"].(map[string]any); ok {
				if s, ok := a[name].(string); ok {
					out = append(out, s)
				}
			}
			keys := make([]string, 0, len(v))
			for k := range v {
				keys = append(keys, k)
			}
			sort.Strings(keys)
			for _, k := range keys {
				walk(v[k])
			}
		}
	}
	walk(v)
	return out
}

func TestEventsFromArchive(t *testing.T) {
	f := newArchiveServer(t)
	ms := strconv.FormatInt(sessionStart.UnixMilli(), 10)
	logo := "/archive/" + f.logo + "?u=" + url.QueryEscape("http://shop.test/img/logo.png") + "&t=" + ms
	css := "/archive/" + f.css + "?u=" + url.QueryEscape("http://shop.test/css/shop.css") + "&t=" + ms
	tests := []struct {
		name     string
		query    string
		wantSrc  []string
		wantHref []string
	}{
		{name: "default is archive", query: "",
			wantSrc: []string{logo, logo, "http://shop.test/img/gone.png"}, wantHref: []string{css}},
		{name: "archive", query: "?assets=archive",
			wantSrc: []string{logo, logo, "http://shop.test/img/gone.png"}, wantHref: []string{css}},
		{name: "live", query: "?assets=live",
			wantSrc:  []string{"http://shop.test/img/logo.png", "http://shop.test/img/logo.png", "http://shop.test/img/gone.png"},
			wantHref: []string{"http://shop.test/css/shop.css"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f.fa.mu.Lock()
			clear(f.fa.lookups)
			f.fa.mu.Unlock()
			resp, body := mustGet(t, f.ts.URL+"/api/sessions/s1/events"+tt.query, nil)
			if resp.StatusCode != http.StatusOK {
				t.Fatalf("status: got %d (%s), want 200", resp.StatusCode, body)
			}
			if got := attrs(t, body, "src"); strings.Join(got, "\n") != strings.Join(tt.wantSrc, "\n") {
				t.Errorf("img src:\n got %q\nwant %q", got, tt.wantSrc)
			}
			if got := attrs(t, body, "href"); strings.Join(got, "\n") != strings.Join(tt.wantHref, "\n") {
				t.Errorf("link href:\n got %q\nwant %q", got, tt.wantHref)
			}
			if cd := resp.Header.Get("Content-Disposition"); cd != "" {
				t.Errorf("Content-Disposition: got %q, want none without download=1", cd)
			}
			f.fa.mu.Lock()
			defer f.fa.mu.Unlock()
			for u, n := range f.fa.lookups {
				if n != 1 {
					t.Errorf("Capture(%s) called %d times, want once per request", u, n)
				}
			}
		})
	}
}

func TestEventsDownload(t *testing.T) {
	f := newArchiveServer(t)
	tests := []struct {
		query    string
		status   int
		wantDisp string
	}{
		{"?download=1", 200, `attachment; filename=session-s1.json`},
		{"?assets=live&download=1", 200, `attachment; filename=session-s1.json`},
		{"?download=0", 200, ""},
		{"?download=yes", 400, ""},
		{"?assets=cdn", 400, ""},
	}
	for _, tt := range tests {
		t.Run(tt.query, func(t *testing.T) {
			resp, body := mustGet(t, f.ts.URL+"/api/sessions/s1/events"+tt.query, nil)
			if resp.StatusCode != tt.status {
				t.Fatalf("status: got %d (%s), want %d", resp.StatusCode, body, tt.status)
			}
			if got := resp.Header.Get("Content-Disposition"); got != tt.wantDisp {
				t.Errorf("Content-Disposition: got %q, want %q", got, tt.wantDisp)
			}
		})
	}
}

func TestArchivedBody(t *testing.T) {
	f := newArchiveServer(t)
	ms := strconv.FormatInt(sessionStart.UnixMilli(), 10)
	cssURL := url.QueryEscape("http://shop.test/css/shop.css")
	bg := "/archive/" + f.bg + "?u=" + url.QueryEscape("http://shop.test/css/bg.png") + "&t=" + ms
	tests := []struct {
		name      string
		path      string
		status    int
		wantType  string
		wantBody  string
		wantCache string
	}{
		{name: "image", path: "/archive/" + f.logo, status: 200, wantType: "image/png", wantBody: "\x89PNG logo", wantCache: immutable},
		{name: "css without u is as stored", path: "/archive/" + f.css, status: 200, wantType: "text/css; charset=utf-8",
			wantBody: `body{background:url(bg.png)} h1{background:url("/img/missing.png")} @import "https://fonts.test/f.css";`, wantCache: immutable},
		{name: "css rewritten at t", path: "/archive/" + f.css + "?u=" + cssURL + "&t=" + ms, status: 200, wantType: "text/css; charset=utf-8",
			wantBody:  `body{background:url("` + bg + `")} h1{background:url("/img/missing.png")} @import "https://fonts.test/f.css";`,
			wantCache: revisit},
		{name: "unknown hash", path: "/archive/" + strings.Repeat("0", 64), status: 404},
		{name: "not a hash", path: "/archive/..%2f..%2fetc", status: 404},
		{name: "bad u", path: "/archive/" + f.css + "?u=shop.css", status: 400},
		{name: "bad t", path: "/archive/" + f.css + "?u=" + cssURL + "&t=yesterday", status: 400},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			resp, body := mustGet(t, f.ts.URL+tt.path, nil)
			if resp.StatusCode != tt.status {
				t.Fatalf("status: got %d (%s), want %d", resp.StatusCode, body, tt.status)
			}
			if tt.status != 200 {
				return
			}
			h := resp.Header
			want := map[string]string{
				"Content-Type":                tt.wantType,
				"Content-Security-Policy":     "sandbox",
				"X-Content-Type-Options":      "nosniff",
				"Access-Control-Allow-Origin": "*",
				"Cache-Control":               tt.wantCache,
				"Content-Length":              strconv.Itoa(len(tt.wantBody)),
			}
			if tt.wantCache == immutable {
				want["ETag"] = `"` + strings.TrimPrefix(strings.SplitN(tt.path, "?", 2)[0], "/archive/") + `"`
			}
			for k, v := range want {
				if got := h.Get(k); got != v {
					t.Errorf("%s: got %q, want %q", k, got, v)
				}
			}
			if string(body) != tt.wantBody {
				t.Errorf("body:\n got %q\nwant %q", body, tt.wantBody)
			}
		})
	}
}

func TestArchivedBodyRevalidates(t *testing.T) {
	f := newArchiveServer(t)
	resp, _ := mustGet(t, f.ts.URL+"/archive/"+f.logo, map[string]string{"If-None-Match": `"` + f.logo + `"`})
	if resp.StatusCode != http.StatusNotModified {
		t.Errorf("status: got %d, want 304", resp.StatusCode)
	}
}

func TestNoArchive(t *testing.T) {
	ts, _ := newServer(t) // its store has no asset methods
	for path, want := range map[string]int{
		"/archive/" + strings.Repeat("a", 64): 404,
		"/api/sessions/s1/assets.warc":        404,
		"/api/sessions/s1/events":             200,
	} {
		resp, _ := mustGet(t, ts.URL+path, nil)
		if resp.StatusCode != want {
			t.Errorf("%s: got %d, want %d", path, resp.StatusCode, want)
		}
	}
}

func TestWARCExport(t *testing.T) {
	f := newArchiveServer(t)
	resp, body := mustGet(t, f.ts.URL+"/api/sessions/s1/assets.warc", nil)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("status: got %d (%s), want 200", resp.StatusCode, body)
	}
	for k, v := range map[string]string{
		"Content-Type":        "application/warc",
		"Content-Disposition": "attachment; filename=session-s1.warc",
	} {
		if got := resp.Header.Get(k); got != v {
			t.Errorf("%s: got %q, want %q", k, got, v)
		}
	}

	// Read it back with gowarc, validating every record and digest.
	r, err := gowarc.NewWarcFileReaderFromStream(strings.NewReader(string(body)), 0, gowarc.WithStrictValidation())
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	type rec struct{ typ, uri, date, ctype, body string }
	var got []rec
	for {
		wr, _, v, err := r.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatalf("record %d: %v", len(got), err)
		}
		if v != nil && !v.Valid() {
			t.Errorf("record %d: %v", len(got), v)
		}
		if wr.Version().String() != "WARC/1.1" {
			t.Errorf("record %d version: got %s, want WARC/1.1", len(got), wr.Version())
		}
		h := wr.WarcHeader()
		g := rec{typ: wr.Type().String(), uri: h.Get(gowarc.WarcTargetURI), date: h.Get(gowarc.WarcDate)}
		if b, ok := wr.Block().(gowarc.HttpResponseBlock); ok {
			g.ctype = b.HttpHeader().Get("Content-Type")
			if b.HttpStatusCode() != 200 {
				t.Errorf("%s: HTTP status %d, want 200", g.uri, b.HttpStatusCode())
			}
			if pd := h.Get(gowarc.WarcPayloadDigest); pd == "" {
				t.Errorf("%s: no WARC-Payload-Digest", g.uri)
			}
			pr, err := b.PayloadBytes()
			if err != nil {
				t.Fatal(err)
			}
			pb, _ := io.ReadAll(pr)
			g.body = string(pb)
		}
		wr.Close()
		got = append(got, g)
	}
	want := []rec{
		{typ: "warcinfo"},
		{typ: "response", uri: "http://shop.test/css/shop.css", date: "2026-11-27T09:00:00Z", ctype: "text/css; charset=utf-8",
			body: string(f.fa.bodies[f.css])},
		{typ: "response", uri: "http://shop.test/img/logo.png", date: "2026-11-27T09:59:00Z", ctype: "image/png", body: "\x89PNG logo"},
	}
	if len(got) != len(want) {
		t.Fatalf("got %d records %+v, want %d", len(got), got, len(want))
	}
	for i := range want {
		if want[i].typ == "warcinfo" {
			want[i].date = got[i].date
		}
		if got[i] != want[i] {
			t.Errorf("record %d:\n got %+v\nwant %+v", i, got[i], want[i])
		}
	}

	// The header lines of each record, as the WARC 1.1 grammar has them.
	sc := bufio.NewScanner(strings.NewReader(string(body)))
	sc.Buffer(nil, 1<<20)
	var versions, responses int
	for sc.Scan() {
		line := sc.Text()
		switch {
		case line == "WARC/1.1":
			versions++
		case line == "WARC-Type: response":
			responses++
		case strings.HasPrefix(line, "WARC-Payload-Digest: "):
			if d := strings.TrimPrefix(line, "WARC-Payload-Digest: "); d != "sha256:"+f.css && d != "sha256:"+f.logo {
				t.Errorf("payload digest %q is not the sha256 of a body", d)
			}
		}
	}
	if versions != 3 || responses != 2 {
		t.Errorf("got %d WARC/1.1 lines and %d responses, want 3 and 2", versions, responses)
	}
	if !strings.HasPrefix(string(body), "WARC/1.1\r\n") || !strings.HasSuffix(string(body), "\r\n\r\n") {
		t.Errorf("file does not start with WARC/1.1 CRLF and end with the record separator")
	}
}

func TestWARCUnknownSession(t *testing.T) {
	f := newArchiveServer(t)
	resp, _ := mustGet(t, f.ts.URL+"/api/sessions/nope/assets.warc", nil)
	if resp.StatusCode != http.StatusNotFound {
		t.Errorf("status: got %d, want 404", resp.StatusCode)
	}
}
