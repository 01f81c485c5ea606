package proxy

import (
	"bytes"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/loupe-dev/loupe/injector"
)

// flushCounter is a ResponseWriter that counts flushes.
type flushCounter struct {
	*httptest.ResponseRecorder
	flushes int
}

func (f *flushCounter) Flush() {
	f.flushes++
	f.ResponseRecorder.Flush()
}

// TestPacedWriter: once paced, the writer flushes where the stream asks,
// as soon as what it asked for is written, and ignores other flushes
// until the stream ends; after the handler returns it is left alone.
func TestPacedWriter(t *testing.T) {
	fc := &flushCounter{ResponseRecorder: httptest.NewRecorder()}
	w := &pacedWriter{ResponseWriter: fc, flushAt: -1}
	step := func(what string, do func(), want int) {
		t.Helper()
		do()
		if fc.flushes != want {
			t.Fatalf("%s: %d flushes, want %d", what, fc.flushes, want)
		}
	}
	write := func() { w.Write(make([]byte, 10)) }
	step("not paced: ReverseProxy's flush", func() { w.FlushError() }, 1)
	w.pace()
	step("paced: ReverseProxy's flush", func() { w.FlushError() }, 1)
	step("paced: a write", write, 1)
	step("asked for 20 bytes with 10 written", func() { w.flushTo(20) }, 1)
	step("the write that reaches 20", write, 2)
	step("another write", write, 2)
	step("asked for 30 bytes with 30 written", func() { w.flushTo(30) }, 3)
	step("asked for 50 bytes", func() { w.flushTo(50) }, 3)
	step("asked for 40 bytes", func() { w.flushTo(40) }, 3)
	step("a write to 40", write, 4)
	step("a write to 50", write, 4)
	w.unpace()
	step("the stream ended: ReverseProxy's flush", func() { w.FlushError() }, 5)
	w.pace()
	w.finish()
	step("asked after the handler returned", func() { w.flushTo(0) }, 5)
	if got := fc.Body.Len(); got != 50 {
		t.Errorf("%d bytes written, want 50", got)
	}
}

// memTransport answers every request with a page from memory: reading
// its body never waits, so no stall flush is due.
type memTransport struct{ page []byte }

func (m memTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	return &http.Response{
		StatusCode: http.StatusOK, Proto: "HTTP/1.1", ProtoMajor: 1, ProtoMinor: 1,
		Header:        http.Header{"Content-Type": {"text/html; charset=utf-8"}},
		Body:          io.NopCloser(bytes.NewReader(m.page)),
		ContentLength: int64(len(m.page)),
		Request:       r,
	}, nil
}

// TestPacedPageNotFlushedPerPiece: a rewritten page whose origin answers
// at once goes to the visitor as net/http's buffer fills, not flushed
// piece by piece as ReverseProxy does a body of unknown length (once per
// read of it: 32 times or more for this page). The stall rule is
// lengthened: a busy machine may hold a read up for over a millisecond.
func TestPacedPageNotFlushedPerPiece(t *testing.T) {
	defer func(d time.Duration) { stallFlush = d }(stallFlush)
	stallFlush = time.Hour
	var b strings.Builder
	b.WriteString("<!doctype html><html><head><title>Big</title></head><body>\n")
	for b.Len() < 2<<20 {
		b.WriteString("<p>Plenty of text, and a <a href=/x>link</a>.</p><input name=q>\n")
	}
	b.WriteString("</body></html>")
	page := b.String()
	inj, err := injector.New(injector.Config{})
	if err != nil {
		t.Fatal(err)
	}
	u, _ := url.Parse("http://origin.test")
	p, err := New(Config{Upstream: u, Transport: memTransport{[]byte(page)}, Injector: inj, Tokens: mustTokens(t),
		RecorderJS: []byte("/*recorder*/"), Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	fc := &flushCounter{ResponseRecorder: httptest.NewRecorder()}
	p.ServeHTTP(fc, httptest.NewRequest(http.MethodGet, "/", nil))
	got := fc.Body.Bytes()
	tagConfig(t, got)
	if !bytes.HasSuffix(got, []byte(`<input class="rr-mask" name=q>`+"\n</body></html>")) {
		t.Fatalf("page not whole: ends %q", got[max(0, len(got)-80):])
	}
	if fc.flushes != 0 {
		t.Errorf("%d flushes for a page of %d pieces from an origin that never waits", fc.flushes, len(page)/streamBufSize)
	}
}

// TestPacedHeaderWhileOriginWaits: an origin that sends its header and
// then waits before its page has the header in the visitor's hands while
// it waits, as without Loupe.
func TestPacedHeaderWhileOriginWaits(t *testing.T) {
	release := make(chan struct{})
	srv, _ := mustProxy(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/html")
		w.WriteHeader(http.StatusOK)
		w.(http.Flusher).Flush()
		select {
		case <-release:
			io.WriteString(w, page)
		case <-r.Context().Done():
		}
	}), nil)
	defer close(release)
	got := make(chan *http.Response, 1)
	go func() {
		resp, err := client.Get(srv.URL + "/")
		if err != nil {
			t.Error(err)
			close(got)
			return
		}
		got <- resp
	}()
	select {
	case resp, ok := <-got:
		if ok {
			resp.Body.Close()
		}
	case <-time.After(10 * time.Second):
		t.Fatal("no header while the origin waits before its page")
	}
}
