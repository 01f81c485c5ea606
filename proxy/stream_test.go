package proxy

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/andybalholm/brotli"
	"github.com/klauspost/compress/gzip"
	"github.com/klauspost/compress/zlib"
	"github.com/klauspost/compress/zstd"
)

// flushWriter is a compressor that can push what it has to the client.
type flushWriter interface {
	io.WriteCloser
	Flush() error
}

type nopFlusher struct{ io.Writer }

func (nopFlusher) Flush() error { return nil }
func (nopFlusher) Close() error { return nil }

// compressor returns a writer encoding to w in enc ("" for identity).
func compressor(tb testing.TB, enc string, w io.Writer) flushWriter {
	tb.Helper()
	switch enc {
	case "":
		return nopFlusher{w}
	case "gzip":
		return gzip.NewWriter(w)
	case "deflate":
		return zlib.NewWriter(w)
	case "br":
		return brotli.NewWriter(w)
	case "zstd":
		zw, err := zstd.NewWriter(w)
		if err != nil {
			tb.Fatal(err)
		}
		return zw
	}
	tb.Fatalf("no compressor for %q", enc)
	return nil
}

var allEncodings = []string{"", "gzip", "deflate", "br", "zstd"}

// slowPage serves through Loupe a page that origin sends in coding enc,
// each piece it sends flushed to the wire, and returns the visitor's
// response and its decoded body.
func slowPage(t *testing.T, enc string, origin func(r *http.Request, send func(piece string))) (*http.Response, io.Reader) {
	t.Helper()
	srv, _ := mustProxy(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		if enc != "" {
			w.Header().Set("Content-Encoding", enc)
		}
		cw := compressor(t, enc, w)
		origin(r, func(piece string) {
			io.WriteString(cw, piece)
			cw.Flush()
			w.(http.Flusher).Flush()
		})
		cw.Close()
	}), nil)
	req, _ := http.NewRequest(http.MethodGet, srv.URL+"/", nil)
	req.Header.Set("Accept-Encoding", "gzip, deflate, br, zstd")
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	t.Cleanup(cancel)
	resp, err := client.Do(req.WithContext(ctx))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { resp.Body.Close() })
	if ce := resp.Header.Get("Content-Encoding"); ce != enc {
		t.Fatalf("got Content-Encoding %q, want the origin's %q", ce, enc)
	}
	dec, done, err := newDecoder(decodable[enc], resp.Body)
	if err != nil {
		t.Fatalf("decode %s: %v (the head never came)", enc, err)
	}
	t.Cleanup(done)
	return resp, dec
}

// readUntil reads r onto got until got contains want, failing if r ends
// first: the caller's origin is waiting, so what it sent has not come.
func readUntil(t *testing.T, r io.Reader, got []byte, want *regexp.Regexp) []byte {
	t.Helper()
	buf := make([]byte, 1024)
	for !want.Match(got) {
		n, err := r.Read(buf)
		got = append(got, buf[:n]...)
		if err != nil {
			t.Fatalf("while the origin waits, got %q and %v; want %v", got, err, want)
		}
	}
	return got
}

// TestStreamHeadFirst: an origin that sends its head, flushes and then
// waits has the head and the recorder tag in the visitor's hands while it
// waits, in every coding; then the rest follows and the page is whole.
func TestStreamHeadFirst(t *testing.T) {
	const head = `<!doctype html><html><head><meta charset="utf-8"><title>Slow</title>`
	const rest = `<link rel="stylesheet" href="/s.css"></head><body><p>rendered later</p><input name="q"></body></html>`
	for _, enc := range allEncodings {
		t.Run("encoding="+enc, func(t *testing.T) {
			release := make(chan struct{})
			defer func() {
				select {
				case <-release:
				default:
					close(release)
				}
			}()
			resp, dec := slowPage(t, enc, func(r *http.Request, send func(string)) {
				send(head)
				select {
				case <-release:
					send(rest)
				case <-r.Context().Done():
				}
			})
			if resp.ContentLength != -1 || len(resp.TransferEncoding) == 0 || resp.TransferEncoding[0] != "chunked" {
				t.Errorf("got Content-Length %d, Transfer-Encoding %v; want chunked", resp.ContentLength, resp.TransferEncoding)
			}
			// Decoded bytes until the tag is complete, with the origin
			// still waiting.
			got := readUntil(t, dec, nil, dataLoupe)
			if !bytes.HasPrefix([]byte(head), dataLoupe.ReplaceAll(got, nil)) {
				t.Errorf("got %q first, want the head with the tag", got)
			}
			close(release)
			tail, err := io.ReadAll(dec)
			if err != nil {
				t.Fatalf("reading the rest: %v", err)
			}
			page := append(got, tail...)
			tagConfig(t, page)
			if want := dataLoupe.ReplaceAll(page, nil); !bytes.Equal(bytes.Replace(want, []byte(` class="rr-mask"`), nil, 1), []byte(head+rest)) {
				t.Errorf("page changed beyond the tag and mark:\n%s", page)
			}
		})
	}
}

// TestStreamPiecesWhileOriginWaits: an origin that streams its page in
// pieces, waiting between them, has each piece in the visitor's hands
// while it waits, not only the head with the tag.
func TestStreamPiecesWhileOriginWaits(t *testing.T) {
	pieces := []string{
		`<!doctype html><html><head><title>Feed</title></head><body><p>first piece</p>`,
		`<p>second piece</p><input name="q">`,
		`</body></html>`,
	}
	for _, enc := range allEncodings {
		t.Run("encoding="+enc, func(t *testing.T) {
			next := make(chan struct{})
			_, dec := slowPage(t, enc, func(r *http.Request, send func(string)) {
				for i, p := range pieces {
					if i > 0 {
						select {
						case <-next:
						case <-r.Context().Done():
							return
						}
					}
					send(p)
				}
			})
			var got []byte
			for _, want := range []string{"first piece", "second piece"} {
				got = readUntil(t, dec, got, regexp.MustCompile(want))
				next <- struct{}{} // the origin sends the next piece
			}
			tail, err := io.ReadAll(dec)
			if err != nil {
				t.Fatalf("reading the rest: %v", err)
			}
			page := dataLoupe.ReplaceAll(append(got, tail...), nil)
			if want := strings.Join(pieces, ""); string(bytes.Replace(page, []byte(` class="rr-mask"`), nil, 1)) != want {
				t.Errorf("got page %q, want %q with the tag and mark", page, want)
			}
		})
	}
}

// TestStreamLargePage: a 5 MB page streams through whole, the tag in its
// head, in every coding the visitor may ask for.
func TestStreamLargePage(t *testing.T) {
	var b strings.Builder
	b.WriteString("<!DOCTYPE html><html><head><title>Big</title></head><body>\n")
	for i := 0; b.Len() < 5<<20; i++ {
		fmt.Fprintf(&b, "<div class=row id=r%d><a href=/p/%d>Item %d</a> &amp; more text here</div>\n", i, i, i)
	}
	b.WriteString("</body></html>\n")
	doc := []byte(b.String())
	for _, enc := range allEncodings {
		t.Run("encoding="+enc, func(t *testing.T) {
			srv, _ := mustProxy(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				w.Header().Set("Content-Type", "text/html")
				if enc != "" {
					w.Header().Set("Content-Encoding", enc)
				}
				cw := compressor(t, enc, w)
				cw.Write(doc)
				cw.Close()
			}), nil)
			ae := enc
			if enc == "" {
				ae = "identity"
			}
			resp, body := get(t, srv.URL+"/", map[string]string{"Accept-Encoding": ae})
			if ce := resp.Header.Get("Content-Encoding"); ce != enc {
				t.Fatalf("got Content-Encoding %q, want %q", ce, enc)
			}
			page := decode(t, enc, body)
			tagConfig(t, page)
			if i := dataLoupe.FindIndex(page); i == nil || i[0] != len("<!DOCTYPE html><html><head>") {
				t.Errorf("tag at %v, want right after <head>", i)
			}
			if !bytes.Equal(dataLoupe.ReplaceAll(page, nil), doc) {
				t.Errorf("page of %d bytes came back as %d bytes without the tag, different", len(doc), len(page))
			}
		})
	}
}

// TestChooseEncoding: the coding a rewritten page goes out in.
func TestChooseEncoding(t *testing.T) {
	tests := []struct{ ae, origin, want string }{
		{"", "gzip", "gzip"}, // no header: anything is acceptable
		{"gzip, br", "", ""}, // uncompressed stays so
		{"gzip, deflate, br, zstd", "gzip", "gzip"},
		{"gzip, deflate, br, zstd", "br", "br"},
		{"gzip, zstd", "br", "zstd"}, // the visitor cannot read br
		{"gzip;q=0.5, br;q=0.9", "gzip", "br"},
		{"gzip;q=0.5, br;q=0.9, zstd;q=0.9", "deflate", "zstd"},
		{"identity", "gzip", ""},
		{"gzip;q=0, identity", "gzip", ""},
		{"*", "br", "br"},
		{"*;q=0.1, gzip;q=0", "gzip", "zstd"},
		{"x-gzip", "gzip", "gzip"},
		{"GZIP;Q=1", "br", "gzip"},
		{"br;q=bogus, gzip", "br", "gzip"},
		{"deflate", "zstd", "deflate"},
	}
	for _, tt := range tests {
		if got := chooseEncoding(tt.ae, tt.origin); got != tt.want {
			t.Errorf("chooseEncoding(%q, %q) = %q, want %q", tt.ae, tt.origin, got, tt.want)
		}
	}
}

// TestReencodes: a page comes back in what the visitor accepts, whatever
// the origin used, never encoded twice, with Vary: Accept-Encoding.
func TestReencodes(t *testing.T) {
	tests := []struct {
		origin, ae, want string
		vary             string // the origin's Vary
	}{
		{origin: "gzip", ae: "br", want: "br"},
		{origin: "br", ae: "gzip", want: "gzip", vary: "Accept-Encoding"},
		{origin: "zstd", ae: "deflate", want: "deflate", vary: "Origin"},
		{origin: "deflate", ae: "zstd", want: "zstd", vary: "accept-encoding, Origin"},
		{origin: "br", ae: "identity", want: ""},
		{origin: "gzip", ae: "gzip;q=0.2, zstd", want: "zstd"},
	}
	for _, tt := range tests {
		t.Run(tt.origin+"→"+tt.want, func(t *testing.T) {
			srv, _ := mustProxy(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				w.Header().Set("Content-Type", "text/html")
				w.Header().Set("Content-Encoding", tt.origin)
				if tt.vary != "" {
					w.Header().Set("Vary", tt.vary)
				}
				cw := compressor(t, tt.origin, w)
				io.WriteString(cw, page)
				cw.Close()
			}), nil)
			resp, body := get(t, srv.URL+"/", map[string]string{"Accept-Encoding": tt.ae})
			if ce := resp.Header.Values("Content-Encoding"); strings.Join(ce, ",") != tt.want {
				t.Fatalf("got Content-Encoding %q, want %q", ce, tt.want)
			}
			n := 0
			for _, v := range resp.Header.Values("Vary") {
				for _, f := range strings.Split(v, ",") {
					if strings.EqualFold(strings.TrimSpace(f), "Accept-Encoding") {
						n++
					}
				}
			}
			if n != 1 {
				t.Errorf("got Vary %q, want Accept-Encoding named once", resp.Header.Values("Vary"))
			}
			html := decode(t, tt.want, body)
			tagConfig(t, html)
			if !bytes.Contains(html, []byte("<h1>Fresh roasts</h1>")) {
				t.Errorf("page content lost: %q", html)
			}
		})
	}
}

// TestRangeRequests: a Range request gets the origin's bytes, for a binary
// and for an HTML page; a full request for the page is still recorded.
func TestRangeRequests(t *testing.T) {
	bin := make([]byte, 300<<10)
	for i := range bin {
		bin[i] = byte(i*31 + i>>8)
	}
	html := []byte(strings.Repeat(page, 200))
	modified := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	srv, _ := mustProxy(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("ETag", `"v1"`)
		if r.URL.Path == "/page" {
			w.Header().Set("Content-Type", "text/html; charset=utf-8")
			http.ServeContent(w, r, "", modified, bytes.NewReader(html))
			return
		}
		w.Header().Set("Content-Type", "application/octet-stream")
		http.ServeContent(w, r, "", modified, bytes.NewReader(bin))
	}), nil)
	for _, tt := range []struct {
		path  string
		body  []byte
		rng   string
		start int
		end   int // exclusive
	}{
		{"/bin", bin, "bytes=0-99", 0, 100},
		{"/bin", bin, "bytes=1000-200000", 1000, 200001},
		{"/bin", bin, "bytes=-500", len(bin) - 500, len(bin)},
		{"/page", html, "bytes=0-99", 0, 100},
		{"/page", html, "bytes=5000-", 5000, len(html)},
	} {
		resp, got := get(t, srv.URL+tt.path, map[string]string{"Range": tt.rng})
		if resp.StatusCode != http.StatusPartialContent {
			t.Errorf("%s %s: got status %d, want 206", tt.path, tt.rng, resp.StatusCode)
			continue
		}
		if !bytes.Equal(got, tt.body[tt.start:tt.end]) {
			t.Errorf("%s %s: got %d bytes, not the origin's %d-%d", tt.path, tt.rng, len(got), tt.start, tt.end-1)
		}
		if want := fmt.Sprintf("bytes %d-%d/%d", tt.start, tt.end-1, len(tt.body)); resp.Header.Get("Content-Range") != want {
			t.Errorf("%s %s: got Content-Range %q, want %q", tt.path, tt.rng, resp.Header.Get("Content-Range"), want)
		}
		if cl := resp.Header.Get("Content-Length"); cl != strconv.Itoa(tt.end-tt.start) {
			t.Errorf("%s %s: got Content-Length %q", tt.path, tt.rng, cl)
		}
		if resp.Header.Get("ETag") != `"v1"` || len(resp.Cookies()) != 0 {
			t.Errorf("%s %s: a range was treated as a recorded page: ETag %q, cookies %v", tt.path, tt.rng, resp.Header.Get("ETag"), resp.Cookies())
		}
	}
	// The whole page is recorded, and says it takes no ranges.
	resp, got := get(t, srv.URL+"/page", nil)
	tagConfig(t, got)
	if resp.Header.Get("Accept-Ranges") != "" || resp.Header.Get("ETag") != `W/"v1"` {
		t.Errorf("recorded page has Accept-Ranges %q, ETag %q", resp.Header.Get("Accept-Ranges"), resp.Header.Get("ETag"))
	}
	// A range that the weakened ETag no longer matches gets the whole,
	// recorded page (If-Range needs a strong validator).
	resp, got = get(t, srv.URL+"/page", map[string]string{"Range": "bytes=0-9", "If-Range": `W/"v1"`})
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("If-Range with the weak ETag: got %d, want the whole page", resp.StatusCode)
	}
	tagConfig(t, got)
}

// TestStreamBreaksOff: a body whose coding breaks after the first bytes
// were sent ends as the origin's would, cut short; one broken from the
// start goes out as the origin sent it (TestPassThroughByteForByte).
func TestStreamBreaksOff(t *testing.T) {
	var buf bytes.Buffer
	zw := gzip.NewWriter(&buf)
	io.WriteString(zw, `<!doctype html><html><head><title>x</title></head><body>`)
	zw.Flush()
	good := buf.Len()
	io.WriteString(zw, strings.Repeat("<p>lots of text</p>", 5000))
	zw.Close()
	body := buf.Bytes()
	// Corrupt the deflate data after the first flush point.
	for i := good + 10; i < good+200 && i < len(body); i++ {
		body[i] ^= 0x55
	}
	srv, _ := mustProxy(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/html")
		w.Header().Set("Content-Encoding", "gzip")
		w.Write(body[:good])
		w.(http.Flusher).Flush()
		w.Write(body[good:])
	}), nil)
	req, _ := http.NewRequest(http.MethodGet, srv.URL+"/", nil)
	req.Header.Set("Accept-Encoding", "gzip")
	resp, err := client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	got, err := io.ReadAll(resp.Body)
	if err == nil {
		t.Fatalf("got a complete body of %d bytes from a broken origin body; want it cut short", len(got))
	}
	// What came is a valid start of the page, with the tag.
	zr, zerr := gzip.NewReader(bytes.NewReader(got))
	if zerr != nil {
		t.Fatalf("cut body does not start as gzip: %v", zerr)
	}
	start, _ := io.ReadAll(bufio.NewReader(zr))
	if !bytes.HasPrefix(start, []byte(`<!doctype html><html><head>`)) || !dataLoupe.Match(start) {
		t.Errorf("cut body starts %q, want the head with the tag", start)
	}
}

// TestStreamClientGoesAway: a visitor leaving mid-page cancels the request
// to the origin, which is stalled in the middle of its body.
func TestStreamClientGoesAway(t *testing.T) {
	gone := make(chan struct{})
	srv, _ := mustProxy(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/html")
		io.WriteString(w, "<!doctype html><html><head><title>x</title></head><body>")
		w.(http.Flusher).Flush()
		select {
		case <-r.Context().Done():
			close(gone)
		case <-time.After(20 * time.Second):
		}
	}), nil)
	ctx, cancel := context.WithCancel(context.Background())
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, srv.URL+"/", nil)
	resp, err := client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 10)
	if _, err := io.ReadFull(resp.Body, buf); err != nil {
		t.Fatal(err)
	}
	cancel()
	resp.Body.Close()
	select {
	case <-gone:
	case <-time.After(10 * time.Second):
		t.Fatal("the origin's request was not canceled after the visitor left")
	}
}

// TestCorruptBodyPassesThrough: a page whose body is not in the coding it
// claims goes out as the origin sent it, headers included, in every coding.
func TestCorruptBodyPassesThrough(t *testing.T) {
	for _, enc := range []string{"gzip", "deflate", "br", "zstd"} {
		t.Run(enc, func(t *testing.T) {
			body := []byte("\x1f\x8b\x28\xb5\x2f\xfdnot really " + enc + strings.Repeat(" garbage", 100))
			srv, _ := mustProxy(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				w.Header().Set("Content-Type", "text/html")
				w.Header().Set("Content-Encoding", enc)
				w.Header().Set("ETag", `"e"`)
				w.Write(body)
			}), nil)
			resp, got := get(t, srv.URL+"/", map[string]string{"Accept-Encoding": "gzip, deflate, br, zstd"})
			if !bytes.Equal(got, body) {
				t.Fatalf("got %q, want the origin's bytes", got)
			}
			if resp.Header.Get("Content-Encoding") != enc || resp.Header.Get("ETag") != `"e"` || len(resp.Cookies()) != 0 {
				t.Errorf("headers changed: %v", resp.Header)
			}
		})
	}
}
