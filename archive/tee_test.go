package archive

import (
	"bytes"
	"compress/flate"
	"compress/gzip"
	"compress/zlib"
	"errors"
	"io"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"strconv"
	"testing"
	"time"

	"github.com/andybalholm/brotli"
	"github.com/klauspost/compress/zstd"
)

// encode applies one content coding ("rawdeflate": deflate without the
// zlib wrapper some servers send).
func encode(tb testing.TB, coding string, b []byte) []byte {
	tb.Helper()
	var buf bytes.Buffer
	var w io.WriteCloser
	switch coding {
	case "gzip":
		w = gzip.NewWriter(&buf)
	case "deflate":
		w = zlib.NewWriter(&buf)
	case "rawdeflate":
		w, _ = flate.NewWriter(&buf, flate.DefaultCompression)
	case "br":
		w = brotli.NewWriter(&buf)
	case "zstd":
		w, _ = zstd.NewWriter(&buf)
	default:
		tb.Fatalf("unknown coding %q", coding)
	}
	if _, err := w.Write(b); err != nil {
		tb.Fatal(err)
	}
	if err := w.Close(); err != nil {
		tb.Fatal(err)
	}
	return buf.Bytes()
}

// cssBody is a deterministic stylesheet of about n bytes.
func cssBody(n int) []byte {
	var b bytes.Buffer
	for i := 0; b.Len() < n; i++ {
		b.WriteString(".c" + strconv.Itoa(i) + " { color: #" + strconv.Itoa(100000+i%900000) + "; }\n")
	}
	return b.Bytes()[:n]
}

// newResp returns a 200 response for u with body and headers.
func newResp(u string, body []byte, header ...string) *http.Response {
	req := httptest.NewRequest(http.MethodGet, u, nil)
	h := http.Header{}
	for i := 0; i+1 < len(header); i += 2 {
		h.Add(header[i], header[i+1])
	}
	return &http.Response{
		StatusCode:    http.StatusOK,
		Header:        h,
		Body:          io.NopCloser(bytes.NewReader(body)),
		ContentLength: int64(len(body)),
		Request:       req,
	}
}

// oddReader returns bytes in small, irregular reads, as a network would.
type oddReader struct {
	r   io.Reader
	rnd *rand.Rand
}

func (o *oddReader) Read(p []byte) (int, error) {
	n := 1 + o.rnd.IntN(700)
	return o.r.Read(p[:min(n, len(p))])
}

func TestTeeArchives(t *testing.T) {
	css := cssBody(50_000)
	tests := []struct {
		name     string
		coding   string
		wantType string
	}{
		{"identity", "", "text/css; charset=utf-8"},
		{"gzip", "gzip", "text/css; charset=utf-8"},
		{"deflate", "deflate", "text/css; charset=utf-8"},
		{"br", "br", "text/css; charset=utf-8"},
		{"zstd", "zstd", "text/css; charset=utf-8"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			st := newFakeStore()
			a := mustArchiver(t, st, nil)
			wire := css
			hdr := []string{"Content-Type", tt.wantType}
			if tt.coding != "" {
				wire = encode(t, tt.coding, css)
				hdr = append(hdr, "Content-Encoding", tt.coding)
			}
			resp := newResp("https://Example.com:443/a.css", wire, hdr...)
			resp.Body = io.NopCloser(&oddReader{r: bytes.NewReader(wire), rnd: rand.New(rand.NewPCG(1, 2))})
			a.Tee(resp)
			got, err := io.ReadAll(resp.Body)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if !bytes.Equal(got, wire) {
				t.Fatalf("visitor got %d bytes differing from the origin's %d", len(got), len(wire))
			}
			waitFor(t, "capture", func() bool { return a.Stats().Captured == 1 })
			body, ct := st.body("https://example.com/a.css")
			if !bytes.Equal(body, css) {
				t.Errorf("stored %d bytes, want the %d decoded bytes", len(body), len(css))
			}
			if ct != tt.wantType {
				t.Errorf("got content type %q, want %q", ct, tt.wantType)
			}
		})
	}
}

// TestTeeStoreFull: while the store refuses assets (a full disk), the
// visitor still gets every byte and the capture is counted failed; once
// the store takes them again, the same asset is captured: a failure is
// not remembered as stored.
func TestTeeStoreFull(t *testing.T) {
	css := cssBody(20_000)
	st := newFakeStore()
	st.err = errors.New("database or disk is full")
	a := mustArchiver(t, st, nil)
	fetch := func() {
		t.Helper()
		resp := newResp("https://example.com/full.css", css, "Content-Type", "text/css")
		a.Tee(resp)
		got, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		if err != nil || !bytes.Equal(got, css) {
			t.Fatalf("visitor got %d bytes (%v), want the origin's %d", len(got), err, len(css))
		}
	}
	fetch()
	waitFor(t, "failure", func() bool { return a.Stats().Failed == 1 })
	if body, _ := st.body("https://example.com/full.css"); body != nil {
		t.Fatal("a refused asset is in the store")
	}
	st.mu.Lock()
	st.err = nil
	st.mu.Unlock()
	fetch()
	waitFor(t, "capture", func() bool { return a.Stats().Captured == 1 })
	if body, _ := st.body("https://example.com/full.css"); !bytes.Equal(body, css) {
		t.Errorf("stored %d bytes after the store recovered, want %d", len(body), len(css))
	}
	if s := a.Stats(); s.Failed != 1 {
		t.Errorf("stats %+v: want the one failure counted once", s)
	}
}

func TestTeeDiscards(t *testing.T) {
	css := cssBody(10_000)
	tests := []struct {
		name string
		run  func(t *testing.T, a *Archiver) // reads a tee'd body somehow
	}{
		{"close before EOF", func(t *testing.T, a *Archiver) {
			resp := newResp("https://example.com/a.css", css, "Content-Type", "text/css")
			a.Tee(resp)
			io.ReadFull(resp.Body, make([]byte, 100))
			resp.Body.Close()
		}},
		{"read error", func(t *testing.T, a *Archiver) {
			resp := newResp("https://example.com/a.css", css, "Content-Type", "text/css")
			resp.Body = io.NopCloser(io.MultiReader(bytes.NewReader(css[:500]), iotestErrReader{}))
			a.Tee(resp)
			io.ReadAll(resp.Body)
			resp.Body.Close()
		}},
		{"over MaxBytes without Content-Length", func(t *testing.T, a *Archiver) {
			resp := newResp("https://example.com/a.css", css, "Content-Type", "text/css")
			resp.ContentLength = -1
			a.policy.MaxBytes = 1000
			a.Tee(resp)
			got, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if !bytes.Equal(got, css) {
				t.Errorf("visitor got %d bytes, want %d", len(got), len(css))
			}
		}},
		{"not archivable", func(t *testing.T, a *Archiver) {
			resp := newResp("https://example.com/", css, "Content-Type", "text/html")
			body := resp.Body
			a.Tee(resp)
			if resp.Body != body {
				t.Errorf("got a replaced body, want the origin's")
			}
			io.ReadAll(resp.Body)
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			st := newFakeStore()
			a := mustArchiver(t, st, nil)
			tt.run(t, a)
			a.Close()
			if got := st.putCount(); got != 0 {
				t.Errorf("got %d stored, want 0", got)
			}
			if s := a.Stats(); s.Captured != 0 || s.Dropped != 0 {
				t.Errorf("got stats %+v, want nothing captured or dropped", s)
			}
		})
	}
}

type iotestErrReader struct{}

func (iotestErrReader) Read([]byte) (int, error) { return 0, io.ErrUnexpectedEOF }

func TestTeeDedup(t *testing.T) {
	st := newFakeStore()
	a := mustArchiver(t, st, nil)
	css := cssBody(2000)
	for i := range 5 {
		resp := newResp("https://example.com/a.css", css, "Content-Type", "text/css")
		a.Tee(resp)
		io.ReadAll(resp.Body)
		resp.Body.Close()
		waitFor(t, "capture", func() bool { s := a.Stats(); return s.Captured+s.Deduped == int64(i+1) })
	}
	if s := a.Stats(); s.Captured != 1 || s.Deduped != 4 || s.NewBodies != 1 {
		t.Errorf("got captured %d, deduped %d, new bodies %d, want 1, 4, 1", s.Captured, s.Deduped, s.NewBodies)
	}
	if got := st.putCount(); got != 1 {
		t.Errorf("got %d PutAsset calls, want 1", got)
	}
	// A changed body at the same URL is stored.
	resp := newResp("https://example.com/a.css", cssBody(2001), "Content-Type", "text/css")
	a.Tee(resp)
	io.ReadAll(resp.Body)
	waitFor(t, "second capture", func() bool { return a.Stats().Captured == 2 })
}

// TestTeeNeverBlocks proves a stuck store neither delays the visitor nor
// grows memory without bound: bodies beyond the queue are dropped.
func TestTeeNeverBlocks(t *testing.T) {
	st := newFakeStore()
	st.block = make(chan struct{})
	a := mustArchiver(t, st, func(c *Config) {
		c.QueueSize = 2
		c.Workers = 1
		c.DrainTimeout = 10 * time.Millisecond
	})
	css := cssBody(20_000)
	const n = 50
	done := make(chan struct{})
	go func() {
		defer close(done)
		for i := range n {
			resp := newResp("https://example.com/a"+strconv.Itoa(i)+".css", css, "Content-Type", "text/css")
			a.Tee(resp)
			got, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if !bytes.Equal(got, css) {
				t.Errorf("response %d: visitor got %d bytes, want %d", i, len(got), len(css))
			}
		}
	}()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("reading tee'd bodies blocked on a stuck store")
	}
	// At most one in the worker and two queued; the rest dropped. If the
	// worker had not yet taken the first body when the queue filled, one
	// more is dropped.
	if got := a.Stats().Dropped; got < n-3 || got > n-2 {
		t.Errorf("got %d dropped, want %d or %d", got, n-3, n-2)
	}
	closed := make(chan struct{})
	go func() { a.Close(); close(closed) }()
	select {
	case <-closed:
	case <-time.After(5 * time.Second):
		t.Fatal("Close did not return within its drain bound")
	}
	close(st.block)
}

func TestTeeAfterClose(t *testing.T) {
	a := mustArchiver(t, newFakeStore(), nil)
	a.Close()
	resp := newResp("https://example.com/a.css", cssBody(100), "Content-Type", "text/css")
	body := resp.Body
	a.Tee(resp)
	if resp.Body != body {
		t.Errorf("got a replaced body after Close, want the origin's")
	}
}

func TestTeeURLHook(t *testing.T) {
	st := newFakeStore()
	a := mustArchiver(t, st, func(c *Config) {
		c.URL = func(resp *http.Response) (string, bool) {
			return "https://www.example.com" + resp.Request.URL.Path, true
		}
	})
	resp := newResp("http://127.0.0.1:8080/s/a.css", cssBody(100), "Content-Type", "text/css")
	a.Tee(resp)
	io.ReadAll(resp.Body)
	waitFor(t, "capture", func() bool { return a.Stats().Captured == 1 })
	if b, _ := st.body("https://www.example.com/s/a.css"); b == nil {
		t.Errorf("got no capture at the public URL")
	}
}

// BenchmarkTee compares reading a 100 KB stylesheet through Tee with
// reading it plainly.
func BenchmarkTee(b *testing.B) {
	css := cssBody(100 << 10)
	buf := make([]byte, 32<<10) // httputil.ReverseProxy's copy buffer size
	run := func(b *testing.B, a *Archiver) {
		b.SetBytes(int64(len(css)))
		b.ReportAllocs()
		for i := 0; b.Loop(); i++ {
			resp := newResp("https://example.com/a.css", css, "Content-Type", "text/css")
			if a != nil {
				a.Tee(resp)
			}
			if _, err := io.CopyBuffer(io.Discard, struct{ io.Reader }{resp.Body}, buf); err != nil {
				b.Fatal(err)
			}
			resp.Body.Close()
		}
	}
	b.Run("plain", func(b *testing.B) { run(b, nil) })
	b.Run("tee", func(b *testing.B) {
		a := mustArchiver(b, newFakeStore(), nil)
		run(b, a)
		b.StopTimer()
		a.Close()
		s := a.Stats()
		b.ReportMetric(float64(s.Dropped), "dropped")
	})
}
