package proxy

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log"
	"log/slog"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/url"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"golang.org/x/net/websocket"

	"github.com/loupe-dev/loupe/collector"
	"github.com/loupe-dev/loupe/store"
)

// wait bounds how long a test waits for something that should happen at
// once; it only turns a hang into a failure.
const wait = 10 * time.Second

func recv[T any](tb testing.TB, c <-chan T, what string) T {
	tb.Helper()
	select {
	case v := <-c:
		return v
	case <-time.After(wait):
		tb.Fatalf("gave up waiting for %s", what)
		panic("unreachable")
	}
}

// frame is one WebSocket message and its type (text or binary).
type frame struct {
	data []byte
	typ  byte
}

// echoCodec sends a message back as the type it came in.
var echoCodec = websocket.Codec{
	Marshal: func(v any) ([]byte, byte, error) {
		f := v.(frame)
		return f.data, f.typ, nil
	},
	Unmarshal: func(data []byte, typ byte, v any) error {
		*v.(*frame) = frame{data: data, typ: typ}
		return nil
	},
}

// discardRequests is a network log that keeps nothing: with one
// configured, the proxy serves recorded sessions' requests through its
// logging ResponseWriter.
type discardRequests struct{}

func (discardRequests) LogRequest(store.Request) {}

// withNetlog configures a network log; recordedSession returns a cookie of
// a recorded session, whose requests it logs.
func withNetlog(c *Config) { c.Requests = discardRequests{} }

func recordedSession(tk *collector.Tokens) *http.Cookie {
	return &http.Cookie{Name: DefaultCookieName, Value: tk.SessionCookie(tk.NewSession())}
}

// Each protocol test runs plain and through the network log's
// ResponseWriter wrapper, with a recorded session's cookie.
var netlogModes = []struct {
	name string
	log  bool
}{{"plain", false}, {"network log", true}}

func TestWebSocketEcho(t *testing.T) {
	for _, mode := range netlogModes {
		t.Run(mode.name, func(t *testing.T) {
			srv, tk := mustProxy(t, websocket.Handler(func(ws *websocket.Conn) {
				for {
					var f frame
					if err := echoCodec.Receive(ws, &f); err != nil {
						return
					}
					if err := echoCodec.Send(ws, f); err != nil {
						return
					}
				}
			}), func(c *Config) {
				c.Archive = &fakeArchive{}
				if mode.log {
					withNetlog(c)
				}
			})
			u, _ := url.Parse(srv.URL)
			cfg, err := websocket.NewConfig("ws://"+u.Host+"/socket", srv.URL)
			if err != nil {
				t.Fatal(err)
			}
			if mode.log {
				cfg.Header.Set("Cookie", recordedSession(tk).String())
			}
			ws, err := websocket.DialConfig(cfg)
			if err != nil {
				t.Fatalf("dial through the proxy: %v", err)
			}
			defer ws.Close()
			ws.SetDeadline(time.Now().Add(wait))
			for i, msg := range []string{"hello", strings.Repeat("x", 100<<10), "bye"} {
				if err := websocket.Message.Send(ws, msg); err != nil {
					t.Fatalf("send %d: %v", i, err)
				}
				var got string
				if err := websocket.Message.Receive(ws, &got); err != nil {
					t.Fatalf("receive %d: %v", i, err)
				}
				if got != msg {
					t.Fatalf("message %d: got %d bytes back, want the %d sent", i, len(got), len(msg))
				}
			}
			// Binary frames too.
			bin := []byte{0, 1, 2, 0xff, 0xfe}
			if err := websocket.Message.Send(ws, bin); err != nil {
				t.Fatal(err)
			}
			var got []byte
			if err := websocket.Message.Receive(ws, &got); err != nil || !bytes.Equal(got, bin) {
				t.Fatalf("binary echo: got %v (%v), want %v", got, err, bin)
			}
		})
	}
}

// sseOrigin sends an event, then waits for next before each following
// one: a client can only read event n+1 if event n reached it unbuffered.
func sseOrigin(next <-chan struct{}, n int) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/event-stream")
		w.Header().Set("Cache-Control", "no-store")
		for i := 1; i <= n; i++ {
			if i > 1 {
				select {
				case <-next:
				case <-r.Context().Done():
					return
				}
			}
			fmt.Fprintf(w, "id: %d\ndata: event %d\n\n", i, i)
			http.NewResponseController(w).Flush()
		}
	}
}

// readEvents reads n events from an SSE stream, asking for the next one
// after each.
func readEvents(tb testing.TB, c *http.Client, u string, next chan<- struct{}, n int) *http.Response {
	tb.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), wait)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	req.Header.Set("Accept", "text/event-stream")
	resp, err := c.Do(req)
	if err != nil {
		tb.Fatal(err)
	}
	defer resp.Body.Close()
	if ct := resp.Header.Get("Content-Type"); ct != "text/event-stream" {
		tb.Fatalf("got Content-Type %q, want text/event-stream", ct)
	}
	br := bufio.NewReader(resp.Body)
	for i := 1; i <= n; i++ {
		var event []string
		for {
			line, err := br.ReadString('\n')
			if err != nil {
				tb.Fatalf("event %d: %v (the proxy held it back?)", i, err)
			}
			if line == "\n" {
				break
			}
			event = append(event, strings.TrimSuffix(line, "\n"))
		}
		if want := fmt.Sprintf("id: %d|data: event %d", i, i); strings.Join(event, "|") != want {
			tb.Fatalf("got event %q, want %q", strings.Join(event, "|"), want)
		}
		if i < n {
			next <- struct{}{}
		}
	}
	return resp
}

func TestSSEEventByEvent(t *testing.T) {
	for _, mode := range netlogModes {
		t.Run(mode.name, func(t *testing.T) {
			next := make(chan struct{})
			srv, tk := mustProxy(t, sseOrigin(next, 3), func(c *Config) {
				c.Archive = &fakeArchive{}
				if mode.log {
					withNetlog(c)
				}
			})
			c := client
			if mode.log {
				jar, _ := cookiejar.New(nil)
				u, _ := url.Parse(srv.URL)
				jar.SetCookies(u, []*http.Cookie{recordedSession(tk)})
				c = &http.Client{Transport: client.Transport, Jar: jar}
			}
			resp := readEvents(t, c, srv.URL+"/events", next, 3)
			if len(resp.Cookies()) != 0 {
				t.Errorf("got cookies %v on an event stream", resp.Cookies())
			}
		})
	}
}

// Any response without a length streams: each chunk the origin flushes
// reaches the client before the origin sends the next.
func TestStreamedResponsesUnbuffered(t *testing.T) {
	for _, ctype := range []string{"application/x-ndjson", "application/octet-stream", "text/plain"} {
		t.Run(ctype, func(t *testing.T) {
			next := make(chan struct{})
			srv, _ := mustProxy(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				w.Header().Set("Content-Type", ctype)
				for i := range 3 {
					if i > 0 {
						select {
						case <-next:
						case <-r.Context().Done():
							return
						}
					}
					fmt.Fprintf(w, "{\"n\":%d}\n", i)
					http.NewResponseController(w).Flush()
				}
			}), func(c *Config) { c.Archive = &fakeArchive{} })
			ctx, cancel := context.WithTimeout(context.Background(), wait)
			defer cancel()
			req, _ := http.NewRequestWithContext(ctx, http.MethodGet, srv.URL+"/feed", nil)
			resp, err := client.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			if len(resp.TransferEncoding) == 0 || resp.TransferEncoding[0] != "chunked" {
				t.Errorf("got Transfer-Encoding %v, want chunked", resp.TransferEncoding)
			}
			br := bufio.NewReader(resp.Body)
			for i := range 3 {
				line, err := br.ReadString('\n')
				if want := fmt.Sprintf("{\"n\":%d}\n", i); line != want || err != nil {
					t.Fatalf("chunk %d: got %q (%v), want %q", i, line, err, want)
				}
				if i < 2 {
					next <- struct{}{}
				}
			}
		})
	}
}

// same compares what a request gets from the origin directly and through
// Loupe: status, body and the headers that matter for the case.
func same(t *testing.T, direct, proxied string, method, path string, header map[string]string, headers ...string) (*http.Response, []byte) {
	t.Helper()
	do := func(base string) (*http.Response, []byte) {
		req, _ := http.NewRequest(method, base+path, nil)
		for k, v := range header {
			req.Header.Set(k, v)
		}
		resp, err := client.Do(req)
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
	want, wantBody := do(direct)
	got, gotBody := do(proxied)
	if got.StatusCode != want.StatusCode {
		t.Errorf("%s %s %v: got status %d, want the origin's %d", method, path, header, got.StatusCode, want.StatusCode)
	}
	if !bytes.Equal(gotBody, wantBody) {
		t.Errorf("%s %s %v: got %d bytes, want the origin's %d, byte for byte", method, path, header, len(gotBody), len(wantBody))
	}
	for _, h := range headers {
		if g, w := got.Header.Values(h), want.Header.Values(h); strings.Join(g, "\n") != strings.Join(w, "\n") {
			t.Errorf("%s %s %v: got %s %q, want the origin's %q", method, path, header, h, g, w)
		}
	}
	if got.ContentLength != want.ContentLength {
		t.Errorf("%s %s %v: got Content-Length %d, want the origin's %d", method, path, header, got.ContentLength, want.ContentLength)
	}
	if len(got.Cookies()) != 0 {
		t.Errorf("%s %s %v: got cookies %v, want none", method, path, header, got.Cookies())
	}
	return got, gotBody
}

// contentOrigin serves fixed files with http.ServeContent: validators,
// conditional requests and ranges as a careful origin does them.
func contentOrigin(files map[string][]byte, modified time.Time) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/empty" {
			w.WriteHeader(http.StatusNoContent)
			return
		}
		b, ok := files[r.URL.Path]
		if !ok {
			http.NotFound(w, r)
			return
		}
		sum := sha256.Sum256(b)
		w.Header().Set("ETag", `"`+hex.EncodeToString(sum[:8])+`"`)
		if strings.HasSuffix(r.URL.Path, ".html") {
			w.Header().Set("Content-Type", "text/html; charset=utf-8")
		}
		http.ServeContent(w, r, r.URL.Path, modified, bytes.NewReader(b))
	})
}

func testFiles() map[string][]byte {
	bin := make([]byte, 300<<10)
	for i := range bin {
		bin[i] = byte(i*31 + i>>8)
	}
	return map[string][]byte{
		"/photo.bin": bin,
		"/page.html": []byte(strings.Repeat("<p>paragraph</p>", 200) + page),
		"/style.css": []byte("body{color:red}"),
	}
}

func TestHeadNotModifiedNoContent(t *testing.T) {
	modified := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	files := testFiles()
	origin := httptest.NewServer(contentOrigin(files, modified))
	t.Cleanup(origin.Close)
	srv, _ := mustProxy(t, contentOrigin(files, modified), func(c *Config) { c.Archive = &fakeArchive{} })
	validators := []string{"ETag", "Last-Modified", "Content-Type", "Accept-Ranges"}
	for _, path := range []string{"/photo.bin", "/style.css", "/page.html"} {
		base := srv.URL
		if path == "/page.html" {
			base = origin.URL // rewritten through Loupe: HEAD below
		}
		resp, body := same(t, origin.URL, base, http.MethodHead, path, nil, validators...)
		if resp.StatusCode != http.StatusOK || len(body) != 0 {
			t.Errorf("HEAD %s: got %d with %d bytes, want 200 and none", path, resp.StatusCode, len(body))
		}
		etag := resp.Header.Get("ETag")
		lm := resp.Header.Get("Last-Modified")
		for _, h := range []map[string]string{{"If-None-Match": etag}, {"If-Modified-Since": lm}} {
			resp, _ := same(t, origin.URL, srv.URL, http.MethodGet, path, h, "ETag", "Last-Modified")
			if resp.StatusCode != http.StatusNotModified {
				t.Errorf("GET %s %v: got %d, want 304", path, h, resp.StatusCode)
			}
		}
	}

	// HEAD of a page Loupe rewrites has the headers its GET has: no length
	// or range support of the origin's bytes, the same weak validator.
	for _, enc := range []string{"", "gzip"} {
		hdr := map[string]string{"Accept-Encoding": enc}
		getResp, _ := get(t, srv.URL+"/page.html", hdr)
		req, _ := http.NewRequest(http.MethodHead, srv.URL+"/page.html", nil)
		req.Header.Set("Accept-Encoding", enc)
		headResp, err := client.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		headResp.Body.Close()
		for _, h := range []string{"ETag", "Last-Modified", "Content-Type", "Content-Encoding", "Content-Length", "Accept-Ranges", "Cache-Control", "Vary"} {
			if g, w := headResp.Header.Values(h), getResp.Header.Values(h); strings.Join(g, "\n") != strings.Join(w, "\n") {
				t.Errorf("HEAD /page.html (Accept-Encoding %q): got %s %q, want the GET's %q", enc, h, g, w)
			}
		}
		if headResp.ContentLength != -1 || !strings.HasPrefix(headResp.Header.Get("ETag"), `W/"`) {
			t.Errorf("HEAD /page.html: got Content-Length %d, ETag %q; want none and a weak one", headResp.ContentLength, headResp.Header.Get("ETag"))
		}
		if len(headResp.Cookies()) != 0 {
			t.Errorf("HEAD /page.html: got cookies %v, want none (no page view)", headResp.Cookies())
		}
	}
	// The weak ETag Loupe gives a rewritten page still validates it.
	resp, _ := get(t, srv.URL+"/page.html", nil)
	weak := resp.Header.Get("ETag")
	if !strings.HasPrefix(weak, `W/"`) {
		t.Fatalf("rewritten page has ETag %q, want a weak one", weak)
	}
	if resp, body := get(t, srv.URL+"/page.html", map[string]string{"If-None-Match": weak}); resp.StatusCode != http.StatusNotModified ||
		len(body) != 0 || resp.Header.Get("ETag") != weak {
		t.Errorf("revalidating with %s: got %d with %d bytes, ETag %q; want 304, none, %s", weak, resp.StatusCode, len(body), resp.Header.Get("ETag"), weak)
	}

	resp, body := same(t, origin.URL, srv.URL, http.MethodGet, "/empty", nil, "Content-Type")
	if resp.StatusCode != http.StatusNoContent || len(body) != 0 || len(resp.TransferEncoding) != 0 {
		t.Errorf("204: got %d, %d bytes, Transfer-Encoding %v; want 204 and nothing", resp.StatusCode, len(body), resp.TransferEncoding)
	}
}

// Range requests get the origin's bytes, on binaries and on HTML alike:
// a partial HTML response is never rewritten.
func TestRangeByteIdentical(t *testing.T) {
	modified := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	files := testFiles()
	origin := httptest.NewServer(contentOrigin(files, modified))
	t.Cleanup(origin.Close)
	arch := &fakeArchive{}
	srv, _ := mustProxy(t, contentOrigin(files, modified), func(c *Config) { c.Archive = arch })
	for _, path := range []string{"/photo.bin", "/page.html"} {
		full := files[path]
		for _, rng := range []string{"bytes=0-99", "bytes=100-199", "bytes=-50", "bytes=1000-"} {
			t.Run(path+" "+rng, func(t *testing.T) {
				resp, body := same(t, origin.URL, srv.URL, http.MethodGet, path, map[string]string{"Range": rng},
					"Content-Range", "Content-Type", "ETag")
				if resp.StatusCode != http.StatusPartialContent {
					t.Fatalf("got %d, want 206", resp.StatusCode)
				}
				var first, last, size int
				if _, err := fmt.Sscanf(resp.Header.Get("Content-Range"), "bytes %d-%d/%d", &first, &last, &size); err != nil {
					t.Fatal(err)
				}
				if size != len(full) || !bytes.Equal(body, full[first:last+1]) {
					t.Errorf("got bytes %d-%d/%d not equal to the file's", first, last, size)
				}
			})
		}
		// If-Range with the current validator: still the range.
		resp, _ := get(t, origin.URL+path, nil)
		resp, _ = same(t, origin.URL, srv.URL, http.MethodGet, path,
			map[string]string{"Range": "bytes=5-9", "If-Range": resp.Header.Get("ETag")}, "Content-Range")
		if resp.StatusCode != http.StatusPartialContent {
			t.Errorf("%s with a matching If-Range: got %d, want 206", path, resp.StatusCode)
		}
		// An unsatisfiable range is the origin's 416.
		resp, _ = same(t, origin.URL, srv.URL, http.MethodGet, path, map[string]string{"Range": "bytes=999999999-"}, "Content-Range")
		if resp.StatusCode != http.StatusRequestedRangeNotSatisfiable {
			t.Errorf("%s unsatisfiable range: got %d, want 416", path, resp.StatusCode)
		}
	}
	arch.mu.Lock()
	defer arch.mu.Unlock()
	if len(arch.paths) != 0 {
		t.Errorf("archived partial responses %v, want none", arch.paths)
	}
}

func TestTrailersPassThrough(t *testing.T) {
	for _, ctype := range []string{"application/grpc", "text/html"} {
		t.Run(ctype, func(t *testing.T) {
			srv, _ := mustProxy(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				w.Header().Set("Content-Type", ctype)
				w.Header().Set("Trailer", "X-Checksum")
				io.WriteString(w, "<p>body</p>")
				w.Header().Set("X-Checksum", "abc123")
				w.Header().Set(http.TrailerPrefix+"X-Late", "undeclared")
			}), nil)
			req, _ := http.NewRequest(http.MethodGet, srv.URL+"/t", nil)
			req.Header.Set("TE", "trailers")
			resp, err := client.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if got := resp.Trailer.Get("X-Checksum"); got != "abc123" {
				t.Errorf("got trailer X-Checksum %q, want abc123 (trailers %v)", got, resp.Trailer)
			}
			if got := resp.Trailer.Get("X-Late"); got != "undeclared" {
				t.Errorf("got trailer X-Late %q, want undeclared (trailers %v)", got, resp.Trailer)
			}
		})
	}
}

// patternReader yields n deterministic bytes without holding them.
type patternReader struct{ n, off int64 }

func (r *patternReader) Read(p []byte) (int, error) {
	if r.off >= r.n {
		return 0, io.EOF
	}
	if int64(len(p)) > r.n-r.off {
		p = p[:r.n-r.off]
	}
	for i := range p {
		x := r.off + int64(i)
		p[i] = byte(x ^ x>>9)
	}
	r.off += int64(len(p))
	return len(p), nil
}

// A large upload streams through: the origin holds its first MiB while
// the client has not sent the rest, and gets every byte.
func TestLargeUploadStreams(t *testing.T) {
	const size = 50 << 20
	firstMiB := make(chan struct{})
	type result struct {
		n   int64
		sum string
		err error
	}
	got := make(chan result, 1)
	srv, _ := mustProxy(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h := sha256.New()
		n, err := io.CopyN(h, r.Body, 1<<20)
		if err == nil {
			if r.URL.Path == "/upload" {
				close(firstMiB)
			}
			var m int64
			m, err = io.Copy(h, r.Body)
			n += m
		}
		got <- result{n, hex.EncodeToString(h.Sum(nil)), err}
		w.WriteHeader(http.StatusCreated)
	}), func(c *Config) { c.Archive = &fakeArchive{} })

	want := sha256.New()
	io.Copy(want, &patternReader{n: size})
	pr, pw := io.Pipe()
	go func() {
		src := &patternReader{n: size}
		if _, err := io.CopyN(pw, src, 1<<20); err != nil {
			pw.CloseWithError(err)
			return
		}
		select {
		case <-firstMiB:
		case <-time.After(wait):
			pw.CloseWithError(errors.New("the origin never got the first MiB before the rest was sent: the upload was buffered"))
			return
		}
		_, err := io.Copy(pw, src)
		pw.CloseWithError(err)
	}()
	req, _ := http.NewRequest(http.MethodPut, srv.URL+"/upload", pr)
	req.ContentLength = size
	resp, err := client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	r := recv(t, got, "the origin's result")
	if r.err != nil || r.n != size || r.sum != hex.EncodeToString(want.Sum(nil)) {
		t.Fatalf("origin got %d bytes, sha256 %s (%v); want %d, %x", r.n, r.sum, r.err, size, want.Sum(nil))
	}
	if resp.StatusCode != http.StatusCreated {
		t.Errorf("got %d, want the origin's 201", resp.StatusCode)
	}

	// Chunked (no length) too.
	req, _ = http.NewRequest(http.MethodPost, srv.URL+"/chunked", io.MultiReader(&patternReader{n: 3 << 20}))
	resp, err = client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	want.Reset()
	io.Copy(want, &patternReader{n: 3 << 20})
	if r := recv(t, got, "the origin's result"); r.n != 3<<20 || r.sum != hex.EncodeToString(want.Sum(nil)) {
		t.Fatalf("chunked upload: origin got %d bytes, sha256 %s (%v)", r.n, r.sum, r.err)
	}
}

// logBuffer is a slog handler's destination tests can read.
type logBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (l *logBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.Write(p)
}

func (l *logBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.String()
}

func TestClientGoneCancelsUpstream(t *testing.T) {
	started := make(chan struct{}, 1)
	canceled := make(chan error, 1)
	logs := &logBuffer{}
	srv, _ := mustProxy(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		started <- struct{}{}
		<-r.Context().Done()
		canceled <- r.Context().Err()
	}), func(c *Config) { c.Logger = slog.New(slog.NewTextHandler(logs, nil)) })
	ctx, cancel := context.WithCancel(context.Background())
	errc := make(chan error, 1)
	go func() {
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, srv.URL+"/slow", nil)
		resp, err := client.Do(req)
		if err == nil {
			resp.Body.Close()
		}
		errc <- err
	}()
	recv(t, started, "the request to reach the origin")
	cancel()
	if err := recv(t, canceled, "the origin's request to be canceled"); !errors.Is(err, context.Canceled) {
		t.Errorf("origin's context ended with %v, want context.Canceled", err)
	}
	recv(t, errc, "the client to return")
	deadline := time.Now().Add(wait)
	for !strings.Contains(logs.String(), "status=499") {
		if time.Now().After(deadline) {
			t.Fatalf("no 499 logged; log:\n%s", logs)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// A client that hangs up in the middle of a body also ends the upstream
// request, whether the body streams past or is being rewritten.
func TestClientGoneMidBodyCancelsUpstream(t *testing.T) {
	for _, ctype := range []string{"application/octet-stream", "text/html; charset=utf-8"} {
		t.Run(ctype, func(t *testing.T) {
			canceled := make(chan error, 1)
			srv, _ := mustProxy(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				w.Header().Set("Content-Type", ctype)
				io.WriteString(w, "<!doctype html><html><head><title>t</title></head><body>"+strings.Repeat("<p>first part</p>", 4000))
				http.NewResponseController(w).Flush()
				<-r.Context().Done()
				canceled <- r.Context().Err()
			}), nil)
			resp, err := client.Get(srv.URL + "/big")
			if err != nil {
				t.Fatal(err)
			}
			if _, err := io.ReadFull(resp.Body, make([]byte, 1024)); err != nil {
				t.Fatalf("first bytes: %v", err)
			}
			resp.Body.Close() // unread body: the connection is closed
			if err := recv(t, canceled, "the origin's request to be canceled"); !errors.Is(err, context.Canceled) {
				t.Errorf("origin's context ended with %v, want context.Canceled", err)
			}
		})
	}
}

func TestUpstreamErrorPages(t *testing.T) {
	release := make(chan struct{})
	t.Cleanup(func() { close(release) })
	slow := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-release:
		case <-r.Context().Done():
		}
	}))
	t.Cleanup(slow.Close)
	down := httptest.NewServer(http.NotFoundHandler())
	downURL, _ := url.Parse(down.URL)
	down.Close()
	slowURL, _ := url.Parse(slow.URL)
	hangup := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		c, _, err := http.NewResponseController(w).Hijack()
		if err == nil {
			c.Close() // no response at all
		}
	}))
	t.Cleanup(hangup.Close)
	hangupURL, _ := url.Parse(hangup.URL)
	tests := []struct {
		name string
		mod  func(*Config)
		want int
	}{
		{"down", func(c *Config) { c.Upstream = downURL }, http.StatusBadGateway},
		{"hangs up", func(c *Config) { c.Upstream = hangupURL }, http.StatusBadGateway},
		{"timeout", func(c *Config) {
			c.Upstream = slowURL
			c.Transport = &http.Transport{ResponseHeaderTimeout: 20 * time.Millisecond}
		}, http.StatusGatewayTimeout},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			logs := &logBuffer{}
			srv, _ := mustProxy(t, http.NotFoundHandler(), func(c *Config) {
				tt.mod(c)
				c.Logger = slog.New(slog.NewTextHandler(logs, nil))
			})
			resp, body := get(t, srv.URL+"/page", nil)
			if resp.StatusCode != tt.want {
				t.Fatalf("got %d, want %d", resp.StatusCode, tt.want)
			}
			if ct := resp.Header.Get("Content-Type"); !strings.HasPrefix(ct, "text/plain") || !strings.HasPrefix(string(body), strconv.Itoa(tt.want)) {
				t.Errorf("got %q page %q, want a plain one starting with the status", ct, body)
			}
			if !strings.Contains(logs.String(), "status="+strconv.Itoa(tt.want)) {
				t.Errorf("log lacks status=%d:\n%s", tt.want, logs)
			}
		})
	}
}

// Under HTTP/2 (TLS on), pages are still injected, event streams still
// arrive event by event, and the server logs no header misuse.
func TestHTTP2(t *testing.T) {
	next := make(chan struct{})
	events := sseOrigin(next, 3)
	origin := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/events" {
			events(w, r)
			return
		}
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		w.Header().Set("Connection", "keep-alive") // hop-by-hop: never to an HTTP/2 client
		w.Header().Set("Keep-Alive", "timeout=5")
		w.Header().Set("Content-Encoding", "gzip")
		w.Write(encode(t, "gzip", []byte(page)))
	})
	proxied, _ := mustProxy(t, origin, nil)
	// mustProxy serves over plain HTTP/1.1; serve the same handler again
	// over TLS with HTTP/2.
	srv := httptest.NewUnstartedServer(proxied.Config.Handler)
	srv.EnableHTTP2 = true
	serverLog := &logBuffer{}
	srv.Config.ErrorLog = log.New(serverLog, "", 0)
	srv.StartTLS()
	t.Cleanup(srv.Close)
	c := srv.Client()
	c.Transport.(*http.Transport).DisableCompression = true

	resp, err := c.Get(srv.URL + "/")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.ProtoMajor != 2 {
		t.Fatalf("got %s, want HTTP/2", resp.Proto)
	}
	if resp.Header.Get("Content-Encoding") != "gzip" || resp.ContentLength != -1 && resp.ContentLength != int64(len(body)) {
		t.Errorf("got Content-Encoding %q, Content-Length %d for %d bytes", resp.Header.Get("Content-Encoding"), resp.ContentLength, len(body))
	}
	for _, h := range []string{"Connection", "Keep-Alive", "Transfer-Encoding"} {
		if v := resp.Header.Get(h); v != "" {
			t.Errorf("HTTP/2 response carries %s: %q", h, v)
		}
	}
	tagConfig(t, decode(t, "gzip", body))
	var secure bool
	for _, ck := range resp.Cookies() {
		secure = secure || (ck.Name == DefaultCookieName && ck.Secure)
	}
	if !secure {
		t.Errorf("session cookie over TLS is not Secure: %v", resp.Cookies())
	}

	resp = readEvents(t, c, srv.URL+"/events", next, 3)
	if resp.ProtoMajor != 2 {
		t.Errorf("event stream over %s, want HTTP/2", resp.Proto)
	}
	if s := serverLog.String(); s != "" {
		t.Errorf("server logged:\n%s", s)
	}
}

// browserPath returns Chromium's path, skipping the test where there is
// none (CI installs it, and there it fails instead).
func browserPath(t *testing.T) string {
	t.Helper()
	for _, p := range []string{os.Getenv("LOUPE_CHROMIUM"), "/usr/bin/chromium", "chromium"} {
		if p == "" {
			continue
		}
		if path, err := exec.LookPath(p); err == nil {
			return path
		}
	}
	if os.Getenv("CI") != "" {
		t.Fatal("chromium not found")
	}
	t.Skip("chromium not found; make test installs Debian's chromium")
	return ""
}

// browserPage opens a WebSocket and an EventSource to its own host,
// acknowledging each event so the origin sends the next.
const browserPage = `<!doctype html><html><head><title>live</title></head><body><h1>live</h1>
<script>
window.__r = {ws: null, events: [], cookie: document.cookie};
const ws = new WebSocket((location.protocol === "https:" ? "wss://" : "ws://") + location.host + "/ws");
ws.onopen = () => ws.send("ping");
ws.onmessage = (e) => { window.__r.ws = e.data; ws.close(); };
const es = new EventSource("/events");
es.onmessage = (e) => {
  window.__r.events.push(e.data);
  if (window.__r.events.length < 3) fetch("/ack"); else es.close();
};
</script></body></html>`

// In Chromium, through Loupe with the upstream's Host rewritten, over
// HTTP/1.1 and over TLS with HTTP/2: a redirect naming the upstream lands
// on the public host and scheme, the cookie the upstream scoped to itself
// is kept, the page is recorded, and its WebSocket and event stream work,
// event by event.
func TestBrowserThroughProxy(t *testing.T) {
	chromium := browserPath(t)
	for _, tt := range []struct {
		name      string
		tls       bool
		wantProto string // the page's nextHopProtocol
	}{
		{"http", false, "http/1.1"},
		{"https h2", true, "h2"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			ack := make(chan struct{}, 3)
			mux := http.NewServeMux()
			mux.HandleFunc("/login", func(w http.ResponseWriter, r *http.Request) {
				host, _, _ := strings.Cut(r.Host, ":")
				w.Header().Add("Set-Cookie", "who=ada; Path=/; Domain="+host)
				http.Redirect(w, r, "http://"+r.Host+"/app", http.StatusFound)
			})
			mux.HandleFunc("/app", func(w http.ResponseWriter, r *http.Request) {
				w.Header().Set("Content-Type", "text/html; charset=utf-8")
				io.WriteString(w, browserPage)
			})
			mux.Handle("/ws", websocket.Handler(func(ws *websocket.Conn) { io.Copy(ws, ws) }))
			mux.HandleFunc("/ack", func(w http.ResponseWriter, r *http.Request) {
				ack <- struct{}{}
				w.WriteHeader(http.StatusNoContent)
			})
			mux.Handle("/events", sseOrigin(ack, 3))
			srv, _ := mustProxy(t, mux, withNetlog)
			scheme := "http"
			if tt.tls {
				tlsSrv := httptest.NewUnstartedServer(srv.Config.Handler)
				tlsSrv.EnableHTTP2 = true
				tlsSrv.Config.ErrorLog = log.New(io.Discard, "", 0)
				tlsSrv.StartTLS()
				t.Cleanup(tlsSrv.Close)
				srv, scheme = tlsSrv, "https"
			}
			_, port, _ := strings.Cut(strings.TrimPrefix(srv.URL, scheme+"://"), ":")

			opts := []chromedp.ExecAllocatorOption{
				chromedp.ExecPath(chromium),
				chromedp.Headless, chromedp.NoSandbox, chromedp.DisableGPU,
				chromedp.Flag("disable-background-networking", true),
				chromedp.Flag("no-first-run", true),
				chromedp.Flag("host-resolver-rules", "MAP shop.test 127.0.0.1"),
				// The test server's certificate is for 127.0.0.1.
				chromedp.Flag("ignore-certificate-errors", true),
				chromedp.UserDataDir(t.TempDir()),
			}
			actx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
			defer cancelAlloc()
			ctx, cancel := chromedp.NewContext(actx)
			defer cancel()
			ctx, cancelT := context.WithTimeout(ctx, 20*time.Second)
			defer cancelT()

			public := scheme + "://shop.test:" + port
			if err := chromedp.Do(ctx, chromedp.Navigate(public+"/login")); err != nil {
				t.Fatalf("navigate: %v", err)
			}
			done, err := chromedp.Run(ctx, chromedp.Poll[bool](`!!(window.__r && window.__r.ws && window.__r.events.length === 3)`,
				chromedp.WithPollingTimeout(15*time.Second)))
			if err != nil || !done {
				r, _ := chromedp.Run(ctx, chromedp.Evaluate[string](`JSON.stringify(window.__r || null) + " at " + location.href`))
				t.Fatalf("page never finished (%v): %s", err, r)
			}
			got, err := chromedp.Run(ctx, chromedp.Evaluate[string](`JSON.stringify([location.href, window.__r.cookie, window.__r.ws,
				window.__r.events.join("|"), !!document.querySelector("script[data-loupe]"),
				performance.getEntriesByType("navigation")[0].nextHopProtocol])`))
			if err != nil {
				t.Fatal(err)
			}
			want := fmt.Sprintf(`[%q,"who=ada","ping","event 1|event 2|event 3",true,%q]`, public+"/app", tt.wantProto)
			if got != want {
				t.Errorf("got  %s\nwant %s", got, want)
			}
		})
	}
}
