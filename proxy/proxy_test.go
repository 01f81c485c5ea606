package proxy

import (
	"bytes"
	"encoding/json"
	"html"
	"io"
	"log/slog"
	"mime"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/andybalholm/brotli"
	"github.com/klauspost/compress/gzip"
	"github.com/klauspost/compress/zlib"
	"github.com/klauspost/compress/zstd"

	"github.com/loupe-dev/loupe/collector"
	"github.com/loupe-dev/loupe/injector"
	"github.com/loupe-dev/loupe/injector/recorder"
)

const page = `<!doctype html><html><head><title>Shop</title></head>` +
	`<body><h1>Fresh roasts</h1><form><input name="email"><input type="password" name="pw"></form></body></html>`

func mustTokens(tb testing.TB) *collector.Tokens {
	tb.Helper()
	tk, err := collector.NewTokens([]byte(strings.Repeat("s", 32)))
	if err != nil {
		tb.Fatal(err)
	}
	return tk
}

// mustProxy starts origin and a Loupe proxy in front of it.
func mustProxy(tb testing.TB, origin http.Handler, mod func(*Config)) (*httptest.Server, *collector.Tokens) {
	tb.Helper()
	up := httptest.NewServer(origin)
	tb.Cleanup(up.Close)
	u, _ := url.Parse(up.URL)
	inj, err := injector.New(injector.Config{})
	if err != nil {
		tb.Fatal(err)
	}
	tk := mustTokens(tb)
	cfg := Config{Upstream: u, Injector: inj, Tokens: tk, RecorderJS: []byte("/*recorder*/"),
		Logger: slog.New(slog.DiscardHandler),
		Ingest: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(http.StatusNoContent) })}
	if mod != nil {
		mod(&cfg)
	}
	p, err := New(cfg)
	if err != nil {
		tb.Fatal(err)
	}
	srv := httptest.NewServer(p)
	tb.Cleanup(srv.Close)
	return srv, tk
}

// client does not decompress or follow redirects: tests see the bytes.
var client = &http.Client{
	Transport:     &http.Transport{DisableCompression: true},
	CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
}

func get(tb testing.TB, u string, header map[string]string) (*http.Response, []byte) {
	tb.Helper()
	req, _ := http.NewRequest(http.MethodGet, u, nil)
	for k, v := range header {
		req.Header.Set(k, v)
	}
	resp, err := client.Do(req)
	if err != nil {
		tb.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		tb.Fatal(err)
	}
	return resp, body
}

var dataLoupe = regexp.MustCompile(`<script src="/__loupe/recorder.js" defer data-loupe="([^"]*)"></script>`)

// tagConfig returns the recorder settings injected into page, failing if
// there is not exactly one tag.
func tagConfig(tb testing.TB, page []byte) map[string]any {
	tb.Helper()
	m := dataLoupe.FindAllSubmatch(page, -1)
	if len(m) != 1 {
		tb.Fatalf("got %d recorder tags in %q, want 1", len(m), page)
	}
	var cfg map[string]any
	if err := json.Unmarshal([]byte(html.UnescapeString(string(m[0][1]))), &cfg); err != nil {
		tb.Fatal(err)
	}
	return cfg
}

func encode(tb testing.TB, enc string, b []byte) []byte {
	tb.Helper()
	var buf bytes.Buffer
	var w io.WriteCloser
	switch enc {
	case "gzip":
		w = gzip.NewWriter(&buf)
	case "deflate":
		w = zlib.NewWriter(&buf)
	case "br":
		w = brotli.NewWriter(&buf)
	case "zstd":
		w, _ = zstd.NewWriter(&buf)
	default:
		return b
	}
	w.Write(b)
	if err := w.Close(); err != nil {
		tb.Fatal(err)
	}
	return buf.Bytes()
}

func decode(tb testing.TB, enc string, b []byte) []byte {
	tb.Helper()
	dec, release, err := newDecoder(decodable[enc], bytes.NewReader(b))
	if err != nil {
		tb.Fatalf("decode %s: %v", enc, err)
	}
	defer release()
	out, err := io.ReadAll(dec)
	if err != nil {
		tb.Fatalf("decode %s: %v", enc, err)
	}
	return out
}

func TestInjectsEveryEncoding(t *testing.T) {
	for _, enc := range []string{"", "gzip", "deflate", "br", "zstd"} {
		t.Run("encoding="+enc, func(t *testing.T) {
			body := encode(t, enc, []byte(page))
			srv, tk := mustProxy(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				w.Header().Set("Content-Type", "text/html; charset=utf-8")
				w.Header().Set("ETag", `"v1"`)
				w.Header().Set("Accept-Ranges", "bytes")
				w.Header().Set("Cache-Control", "public, max-age=60")
				if enc != "" {
					w.Header().Set("Content-Encoding", enc)
				}
				w.Write(body)
			}), nil)
			resp, got := get(t, srv.URL+"/", map[string]string{"Accept-Encoding": "gzip, deflate, br, zstd"})
			if ce := resp.Header.Get("Content-Encoding"); ce != enc {
				t.Fatalf("got Content-Encoding %q, want %q", ce, enc)
			}
			// The origin's length does not apply: the body goes out
			// chunked, or, when all of it was written before the first
			// flush (a small page), with the length net/http counted.
			if cl := resp.ContentLength; cl == int64(len(body)) || cl != -1 && cl != int64(len(got)) {
				t.Errorf("got Content-Length %d for %d bytes (the origin's was %d), want chunked or the length sent", cl, len(got), len(body))
			}
			if etag := resp.Header.Get("ETag"); etag != `W/"v1"` {
				t.Errorf("got ETag %q, want W/\"v1\"", etag)
			}
			if ar := resp.Header.Get("Accept-Ranges"); ar != "" {
				t.Errorf("got Accept-Ranges %q on a rewritten body, want none", ar)
			}
			if cc := resp.Header.Get("Cache-Control"); cc != "private, max-age=60" {
				t.Errorf("got Cache-Control %q, want %q", cc, "private, max-age=60")
			}
			html := decode(t, enc, got)
			cfg := tagConfig(t, html)
			if !bytes.Contains(html, []byte("<h1>Fresh roasts</h1>")) || !bytes.HasSuffix(html, []byte("</html>")) {
				t.Errorf("page content lost: %s", html)
			}
			if !bytes.Contains(html, []byte(`class="rr-block"`)) || !bytes.Contains(html, []byte(`class="rr-mask"`)) {
				t.Errorf("fields not marked: %s", html)
			}
			tokPV, err := tk.ParsePageViewToken(cfg["token"].(string))
			sid := tokPV.SessionID
			if err != nil {
				t.Fatalf("injected token does not verify: %v", err)
			}
			var cookie *http.Cookie
			for _, c := range resp.Cookies() {
				if c.Name == DefaultCookieName {
					cookie = c
				}
			}
			if cookie == nil || !cookie.HttpOnly || cookie.Path != "/" {
				t.Fatalf("got session cookie %v, want an HttpOnly cookie for /", cookie)
			}
			if got, err := tk.ParseSessionCookie(cookie.Value); err != nil || got.ID != sid || !got.Start.Equal(tokPV.SessionStart) {
				t.Fatalf("cookie proves session %+v (%v), token proves %q started %v", got, err, sid, tokPV.SessionStart)
			}
		})
	}
}

func TestSessionContinuesAndCookieStaysWithLoupe(t *testing.T) {
	var originCookies []string
	srv, tk := mustProxy(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		originCookies = append(originCookies, r.Header.Get("Cookie"))
		w.Header().Set("Content-Type", "text/html")
		io.WriteString(w, page)
	}), nil)

	resp, body := get(t, srv.URL+"/a", nil)
	sid1 := tokenOf(t, tk, body).SessionID
	cookie := resp.Cookies()[0]

	// The replay UI's login, if the browser has one for this host name,
	// stays with Loupe too.
	_, body = get(t, srv.URL+"/b", map[string]string{"Cookie": "theme=dark; " + cookie.Name + "=" + cookie.Value + "; loupe_login=ana|9|mac; cart=3"})
	tok2 := tokenOf(t, tk, body)
	sid2, pv2 := tok2.SessionID, tok2.ID
	if sid1 == "" || sid2 != sid1 {
		t.Fatalf("second page in session %q, first in %q: want one session", sid2, sid1)
	}
	if got := originCookies[1]; got != "theme=dark; cart=3" {
		t.Errorf("origin got Cookie %q, want the site's own cookies only", got)
	}

	// A forged cookie starts a new session rather than joining one.
	_, body = get(t, srv.URL+"/c", map[string]string{"Cookie": cookie.Name + "=" + sid1 + ".1.AAAA"})
	tok3 := tokenOf(t, tk, body)
	if sid3, pv3 := tok3.SessionID, tok3.ID; sid3 == sid1 || pv3 == pv2 {
		t.Fatalf("forged cookie joined session %q", sid3)
	}
}

// tokenOf returns what the page-view token in a recorded page proves.
func tokenOf(tb testing.TB, tk *collector.Tokens, body []byte) collector.PageView {
	tb.Helper()
	pv, err := tk.ParsePageViewToken(tagConfig(tb, body)["token"].(string))
	if err != nil {
		tb.Fatalf("page token does not verify: %v", err)
	}
	return pv
}

func TestSessionRollsOverAfterMaxLength(t *testing.T) {
	srv, tk := mustProxy(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/html")
		io.WriteString(w, page)
	}), nil)
	now := time.Unix(1_700_000_000, 0)
	tk.Now = func() time.Time { return now }
	tk.MaxSessionLength = time.Hour

	resp, body := get(t, srv.URL+"/a", nil)
	first := tokenOf(t, tk, body)
	// Keep the session busy (never idle) until it is over its length.
	for i := 0; i < 4; i++ {
		now = now.Add(20 * time.Minute)
		var cookie *http.Cookie
		for _, c := range resp.Cookies() {
			if c.Name == DefaultCookieName {
				cookie = c
			}
		}
		resp, body = get(t, srv.URL+"/b", map[string]string{"Cookie": cookie.Name + "=" + cookie.Value})
		got := tokenOf(t, tk, body)
		age := now.Sub(first.SessionStart)
		if wantSame := age <= time.Hour; (got.SessionID == first.SessionID) != wantSame {
			t.Fatalf("at session age %v: got session %q (first %q), want same=%v", age, got.SessionID, first.SessionID, wantSame)
		}
		if got.SessionID != first.SessionID && !got.SessionStart.Equal(now) {
			t.Fatalf("new session starts at %v, want %v", got.SessionStart, now)
		}
		if got.SessionID != first.SessionID {
			return
		}
	}
	t.Fatal("session never rolled over")
}

func TestPassThroughByteForByte(t *testing.T) {
	binary := make([]byte, 256*1024)
	for i := range binary {
		binary[i] = byte(i * 7)
	}
	tests := []struct {
		name   string
		method string
		ctype  string
		enc    string
		body   []byte
		header map[string]string
	}{
		{name: "image", ctype: "image/png", body: binary},
		{name: "css", ctype: "text/css", body: []byte("body{color:red}")},
		{name: "json", ctype: "application/json", body: []byte(`{"a":1}`)},
		{name: "HEAD css", method: http.MethodHead, ctype: "text/css"},
		{name: "unsupported encoding", ctype: "text/html", enc: "compress", body: []byte("\x1f\x9d\x90garbage")},
		{name: "corrupt gzip html", ctype: "text/html", enc: "gzip", body: []byte("\x1f\x8b\x08\x00not really gzip")},
		{name: "html over the size bound", ctype: "text/html", body: bytes.Repeat([]byte("<p>hello</p>"), 2000)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv, _ := mustProxy(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				w.Header().Set("Content-Type", tt.ctype)
				w.Header().Set("ETag", `"abc"`)
				if tt.enc != "" {
					w.Header().Set("Content-Encoding", tt.enc)
				}
				w.Header().Set("Content-Length", strconv.Itoa(len(tt.body)))
				w.Write(tt.body)
			}), func(c *Config) { c.MaxRewriteBytes = 16 << 10 })
			method := tt.method
			if method == "" {
				method = http.MethodGet
			}
			req, _ := http.NewRequest(method, srv.URL+"/x", nil)
			resp, err := client.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			got, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if !bytes.Equal(got, tt.body) && method != http.MethodHead {
				t.Fatalf("body changed: got %d bytes, want the origin's %d", len(got), len(tt.body))
			}
			if etag := resp.Header.Get("ETag"); etag != `"abc"` {
				t.Errorf("got ETag %q, want the origin's", etag)
			}
			if len(resp.Cookies()) != 0 {
				t.Errorf("got cookies %v on an unrecorded response", resp.Cookies())
			}
		})
	}
}

func TestAcceptEncodingFiltered(t *testing.T) {
	var got string
	srv, _ := mustProxy(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		got = r.Header.Get("Accept-Encoding")
	}), nil)
	get(t, srv.URL+"/", map[string]string{"Accept-Encoding": "gzip, deflate, br, zstd, compress"})
	if got != "gzip, deflate, br, zstd" {
		t.Fatalf("origin got Accept-Encoding %q, want %q", got, "gzip, deflate, br, zstd")
	}
}

func TestForwardsRequest(t *testing.T) {
	var got *http.Request
	var gotBody []byte
	srv, _ := mustProxy(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		got = r
		gotBody, _ = io.ReadAll(r.Body)
		w.Header().Set("X-Origin", "yes")
		w.WriteHeader(http.StatusCreated)
	}), nil)
	resp, err := client.Post(srv.URL+"/api/orders?x=1", "application/json", strings.NewReader(`{"n":1}`))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusCreated || resp.Header.Get("X-Origin") != "yes" {
		t.Errorf("got status %d, X-Origin %q; want the origin's 201 and header", resp.StatusCode, resp.Header.Get("X-Origin"))
	}
	if got.URL.RequestURI() != "/api/orders?x=1" || string(gotBody) != `{"n":1}` || got.Method != http.MethodPost {
		t.Errorf("origin got %s %s %q, want POST /api/orders?x=1 {\"n\":1}", got.Method, got.URL.RequestURI(), gotBody)
	}
	if got.Header.Get("X-Forwarded-For") == "" {
		t.Error("origin got no X-Forwarded-For")
	}
}

func TestLoupeRoutes(t *testing.T) {
	var originHits int
	srv, _ := mustProxy(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { originHits++ }), nil)
	tests := []struct {
		path     string
		want     int
		wantBody string
	}{
		{"/__loupe/healthz", 200, "ok"},
		{"/__loupe/recorder.js", 200, "/*recorder*/"},
		{"/__loupe/nope", 404, ""},
	}
	for _, tt := range tests {
		resp, body := get(t, srv.URL+tt.path, nil)
		if resp.StatusCode != tt.want || !strings.Contains(string(body), tt.wantBody) {
			t.Errorf("%s: got %d %q, want %d containing %q", tt.path, resp.StatusCode, body, tt.want, tt.wantBody)
		}
	}
	resp, _ := get(t, srv.URL+"/__loupe/recorder.js", nil)
	if ct := resp.Header.Get("Content-Type"); !strings.HasPrefix(ct, "text/javascript") {
		t.Errorf("recorder served as %q", ct)
	}
	if originHits != 0 {
		t.Errorf("origin saw %d requests for Loupe's own routes, want 0", originHits)
	}
}

func TestUpstreamFailures(t *testing.T) {
	// A port nothing listens on.
	ln, _ := net.Listen("tcp", "127.0.0.1:0")
	dead := ln.Addr().String()
	ln.Close()

	t.Run("unreachable", func(t *testing.T) {
		srv, _ := mustProxy(t, http.NotFoundHandler(), func(c *Config) { c.Upstream = &url.URL{Scheme: "http", Host: dead} })
		resp, body := get(t, srv.URL+"/", nil)
		if resp.StatusCode != http.StatusBadGateway || !strings.Contains(string(body), "could not be reached") {
			t.Fatalf("got %d %q, want 502 with a plain message", resp.StatusCode, body)
		}
	})
	t.Run("timeout", func(t *testing.T) {
		release := make(chan struct{})
		defer close(release)
		srv, _ := mustProxy(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			select {
			case <-release:
			case <-r.Context().Done():
			}
		}), func(c *Config) { c.Transport = &http.Transport{ResponseHeaderTimeout: 50 * time.Millisecond} })
		resp, _ := get(t, srv.URL+"/", nil)
		if resp.StatusCode != http.StatusGatewayTimeout {
			t.Fatalf("got %d, want 504", resp.StatusCode)
		}
	})
}

func TestNewValidates(t *testing.T) {
	inj, _ := injector.New(injector.Config{})
	tk := mustTokens(t)
	tests := []struct {
		name string
		cfg  Config
	}{
		{"no upstream", Config{Injector: inj, Tokens: tk}},
		{"relative upstream", Config{Upstream: &url.URL{Path: "/x"}, Injector: inj, Tokens: tk}},
		{"ftp upstream", Config{Upstream: &url.URL{Scheme: "ftp", Host: "x"}, Injector: inj, Tokens: tk}},
		{"bad prefix", Config{Upstream: &url.URL{Scheme: "http", Host: "x"}, Injector: inj, Tokens: tk, Prefix: "loupe"}},
		{"no injector", Config{Upstream: &url.URL{Scheme: "http", Host: "x"}, Tokens: tk}},
	}
	for _, tt := range tests {
		if _, err := New(tt.cfg); err == nil {
			t.Errorf("%s: got nil error, want one", tt.name)
		}
	}
}

func TestPrivateCacheControl(t *testing.T) {
	tests := []struct{ in, want string }{
		{"", "private"},
		{"public, max-age=600", "private, max-age=600"},
		{"max-age=60, s-maxage=600", "private, max-age=60"},
		{"no-cache", "private, no-cache"},
		{"private", "private"},
	}
	for _, tt := range tests {
		if got := privateCacheControl(tt.in); got != tt.want {
			t.Errorf("privateCacheControl(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
}

func TestInjectsPostResponse(t *testing.T) {
	srv, _ := mustProxy(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/html")
		io.WriteString(w, page)
	}), nil)
	resp, err := client.Post(srv.URL+"/checkout", "application/x-www-form-urlencoded", strings.NewReader("a=1"))
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	tagConfig(t, body)
}

func TestRecorderCaching(t *testing.T) {
	js := []byte("/*recorder v2*/")
	srv, _ := mustProxy(t, http.NotFoundHandler(), func(c *Config) { c.RecorderJS = js })
	tests := []struct{ query, want string }{
		{"?v=" + recorder.Version(js), "public, max-age=31536000, immutable"},
		{"?v=0123456789abcdef", "public, max-age=300"},
		{"", "public, max-age=300"},
	}
	for _, tt := range tests {
		resp, body := get(t, srv.URL+"/__loupe/recorder.js"+tt.query, nil)
		if cc := resp.Header.Get("Cache-Control"); cc != tt.want || string(body) != string(js) {
			t.Errorf("recorder.js%s: got Cache-Control %q, body %q; want %q, the bundle", tt.query, cc, body, tt.want)
		}
	}
}

// fakeArchive records what it was handed and copies each body it tees.
type fakeArchive struct {
	mu     sync.Mutex
	paths  []string
	public string // PublicURL of the last response
	copies map[string]*bytes.Buffer
}

func (f *fakeArchive) Tee(resp *http.Response) {
	f.mu.Lock()
	defer f.mu.Unlock()
	p := resp.Request.URL.Path
	f.paths = append(f.paths, p)
	f.public, _ = PublicURL(resp)
	if f.copies == nil {
		f.copies = map[string]*bytes.Buffer{}
	}
	buf := &bytes.Buffer{}
	f.copies[p] = buf
	resp.Body = readCloser{io.TeeReader(resp.Body, lockedWriter{&f.mu, buf}), resp.Body}
}

func (f *fakeArchive) copyOf(path string) (string, bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	b, ok := f.copies[path]
	if !ok {
		return "", false
	}
	return b.String(), true
}

type lockedWriter struct {
	mu *sync.Mutex
	w  io.Writer
}

func (l lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}

func TestArchiveTee(t *testing.T) {
	big := strings.Repeat("\x89PNG-body-", 20000) // beyond one copy buffer
	origin := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/shop.css":
			w.Header().Set("Content-Type", "text/css")
			io.WriteString(w, "body{background:url(bg.png)}")
		case "/bg.png":
			w.Header().Set("Content-Type", "image/png")
			w.Header().Set("Content-Length", strconv.Itoa(len(big)))
			io.WriteString(w, big)
		case "/page":
			w.Header().Set("Content-Type", "text/html; charset=utf-8")
			io.WriteString(w, page)
		case "/range.png":
			w.Header().Set("Content-Type", "image/png")
			w.Header().Set("Content-Range", "bytes 0-3/10")
			w.WriteHeader(http.StatusPartialContent)
			io.WriteString(w, "\x89PNG")
		case "/cached.png":
			w.WriteHeader(http.StatusNotModified)
		case "/missing.png":
			w.Header().Set("Content-Type", "image/png")
			w.WriteHeader(http.StatusNotFound)
			io.WriteString(w, "nope")
		}
	})
	fa := &fakeArchive{}
	srv, _ := mustProxy(t, origin, func(c *Config) { c.Archive = fa })

	tests := []struct {
		name     string
		method   string
		path     string
		header   map[string]string
		wantTee  bool
		wantBody string // for a tee'd response; "" means not checked
	}{
		{name: "css", method: "GET", path: "/shop.css", wantTee: true, wantBody: "body{background:url(bg.png)}"},
		{name: "image", method: "GET", path: "/bg.png", wantTee: true, wantBody: big},
		{name: "html", method: "GET", path: "/page"},
		{name: "head", method: "HEAD", path: "/shop.css"},
		{name: "range request", method: "GET", path: "/bg.png", header: map[string]string{"Range": "bytes=0-3"}},
		{name: "206", method: "GET", path: "/range.png"},
		{name: "304", method: "GET", path: "/cached.png", header: map[string]string{"If-None-Match": `"x"`}},
		{name: "404", method: "GET", path: "/missing.png"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			fa.mu.Lock()
			fa.paths, fa.copies = nil, nil
			fa.mu.Unlock()
			req, _ := http.NewRequest(tt.method, srv.URL+tt.path, nil)
			for k, v := range tt.header {
				req.Header.Set(k, v)
			}
			resp, err := client.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			body, err := io.ReadAll(resp.Body)
			resp.Body.Close()
			if err != nil {
				t.Fatal(err)
			}
			fa.mu.Lock()
			got := len(fa.paths) > 0
			fa.mu.Unlock()
			if got != tt.wantTee {
				t.Fatalf("Tee called: got %v, want %v", got, tt.wantTee)
			}
			if tt.wantBody == "" {
				return
			}
			if string(body) != tt.wantBody {
				t.Errorf("client got %d bytes, want the origin's %d bytes unchanged", len(body), len(tt.wantBody))
			}
			if cl := resp.Header.Get("Content-Length"); cl != strconv.Itoa(len(tt.wantBody)) {
				t.Errorf("Content-Length: got %q, want %d", cl, len(tt.wantBody))
			}
			// The proxy finishes its copy just after the client's last read.
			deadline := time.Now().Add(2 * time.Second)
			for {
				c, _ := fa.copyOf(tt.path)
				if c == tt.wantBody {
					break
				}
				if time.Now().After(deadline) {
					t.Fatalf("archive copy: got %d bytes, want %d", len(c), len(tt.wantBody))
				}
				time.Sleep(5 * time.Millisecond)
			}
		})
	}
}

// panicArchive fails inside Tee.
type panicArchive struct{}

func (panicArchive) Tee(*http.Response) { panic("archive bug") }

func TestPublicURL(t *testing.T) {
	origin := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "image/svg+xml")
		io.WriteString(w, "<svg/>")
	})
	fa := &fakeArchive{}
	srv, _ := mustProxy(t, origin, func(c *Config) { c.Archive = fa })
	tests := []struct {
		name   string
		header map[string]string
		want   string
	}{
		{name: "host", header: map[string]string{"Host": "shop.test"}, want: "http://shop.test/img/a%20b.svg?v=2"},
		{name: "behind TLS balancer", header: map[string]string{"Host": "shop.test", "X-Forwarded-Proto": "https"}, want: "https://shop.test/img/a%20b.svg?v=2"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			req, _ := http.NewRequest(http.MethodGet, srv.URL+"/img/a%20b.svg?v=2", nil)
			for k, v := range tt.header {
				req.Header.Set(k, v)
			}
			req.Host = tt.header["Host"]
			resp, err := client.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			fa.mu.Lock()
			got := fa.public
			fa.mu.Unlock()
			if got != tt.want {
				t.Errorf("PublicURL: got %q, want %q", got, tt.want)
			}
		})
	}
}

func TestArchivePanicFailsOpen(t *testing.T) {
	origin := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/css")
		io.WriteString(w, "a{}")
	})
	srv, _ := mustProxy(t, origin, func(c *Config) { c.Archive = panicArchive{} })
	resp, body := get(t, srv.URL+"/a.css", nil)
	if resp.StatusCode != http.StatusOK || string(body) != "a{}" {
		t.Errorf("got %d %q, want 200 %q", resp.StatusCode, body, "a{}")
	}
}

// TestArchiveSiteHosts: with SiteHosts set, a request naming another Host
// (a forged one, say) is served but not archived.
func TestArchiveSiteHosts(t *testing.T) {
	origin := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/css")
		io.WriteString(w, "body{color:red}")
	})
	fa := &fakeArchive{}
	srv, _ := mustProxy(t, origin, func(c *Config) { c.Archive = fa; c.SiteHosts = []string{"shop.example"} })
	tests := []struct {
		host    string
		wantTee bool
	}{
		{"shop.example", true},
		{"SHOP.example:8080", true},
		{"cdn.example", false},
		{"shop.example.evil", false},
	}
	for _, tt := range tests {
		fa.mu.Lock()
		fa.paths, fa.copies = nil, nil
		fa.mu.Unlock()
		req, _ := http.NewRequest("GET", srv.URL+"/site.css", nil)
		req.Host = tt.host
		resp, err := client.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		fa.mu.Lock()
		got := len(fa.paths) > 0
		fa.mu.Unlock()
		if got != tt.wantTee || string(body) != "body{color:red}" {
			t.Errorf("Host %s: archived %v, body %q; want archived %v and the origin's body", tt.host, got, body, tt.wantTee)
		}
	}
}

// TestMayBe: mayBe is false only where mime.ParseMediaType cannot return
// the type.
func TestMayBe(t *testing.T) {
	for _, ct := range []string{"", "text/html", "TEXT/HTML", " text/html ; charset=utf-8", "text/html;", "text/html; charset",
		"text/htmlx", "text/css", "text/html\u212a", "application/XHTML+xml", "application/xhtml+xml; q=1", "image/png", "text/ht;ml"} {
		for _, mt := range []string{"text/html", "application/xhtml+xml"} {
			got, _, err := mime.ParseMediaType(ct)
			if err == nil && got == mt && !mayBe(ct, mt) {
				t.Errorf("mayBe(%q, %q) = false, ParseMediaType gives %q", ct, mt, got)
			}
		}
	}
	if mayBe("text/css", "text/html") || !mayBe("Text/HTML; x=y", "text/html") {
		t.Error("mayBe does not tell text/css from text/html")
	}
}
