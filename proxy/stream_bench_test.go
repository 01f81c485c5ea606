package proxy

import (
	"bytes"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	"github.com/loupe-dev/loupe/injector"
)

// benchContent returns bench/gen-content.sh's page and stylesheet, the
// content bench/run.sh measures. If LOUPE_BENCH_CONTENT names a folder the
// script already filled, they are read from there: a benchmark binary run
// under valgrind then starts no child process (whose signal callgrind
// cannot handle).
func benchContent(b *testing.B) (form, css []byte) {
	b.Helper()
	dir := os.Getenv("LOUPE_BENCH_CONTENT")
	if dir == "" {
		dir = b.TempDir()
		if out, err := exec.Command("bash", filepath.Join("..", "bench", "gen-content.sh"), dir).CombinedOutput(); err != nil {
			b.Skipf("gen-content.sh: %v\n%s", err, out)
		}
	}
	form, err := os.ReadFile(filepath.Join(dir, "form.html"))
	if err != nil {
		b.Fatal(err)
	}
	css, err = os.ReadFile(filepath.Join(dir, "style.css"))
	if err != nil {
		b.Fatal(err)
	}
	return form, css
}

// benchProxy serves body (in coding enc) through Loupe and measures one
// client fetching it over and over, with Accept-Encoding ae.
func benchProxy(b *testing.B, ctype, enc, ae string, body []byte) {
	var coded bytes.Buffer
	cw := compressor(b, enc, &coded)
	cw.Write(body)
	cw.Close()
	srv, _ := mustProxy(b, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", ctype)
		if enc != "" {
			w.Header().Set("Content-Encoding", enc)
		}
		w.Write(coded.Bytes())
	}), nil)
	req, _ := http.NewRequest(http.MethodGet, srv.URL+"/", nil)
	if ae != "" {
		req.Header.Set("Accept-Encoding", ae)
	}
	b.SetBytes(int64(len(body)))
	b.ReportAllocs()
	for b.Loop() {
		resp, err := client.Do(req)
		if err != nil {
			b.Fatal(err)
		}
		if _, err := io.Copy(io.Discard, resp.Body); err != nil {
			b.Fatal(err)
		}
		resp.Body.Close()
	}
}

// BenchmarkProxyInject: the 50 KB form page, identity, injected.
func BenchmarkProxyInject(b *testing.B) {
	form, _ := benchContent(b)
	benchProxy(b, "text/html; charset=utf-8", "", "", form)
}

// BenchmarkProxyInjectGzip: the same page gzip'd by the origin and
// re-encoded in gzip for the visitor.
func BenchmarkProxyInjectGzip(b *testing.B) {
	form, _ := benchContent(b)
	benchProxy(b, "text/html; charset=utf-8", "gzip", "gzip", form)
}

// BenchmarkProxyInjectBrotliToZstd: brotli from the origin, zstd out.
func BenchmarkProxyInjectBrotliToZstd(b *testing.B) {
	form, _ := benchContent(b)
	benchProxy(b, "text/html; charset=utf-8", "br", "zstd", form)
}

// BenchmarkProxyPassThrough: the 20 KB stylesheet, passed through.
func BenchmarkProxyPassThrough(b *testing.B) {
	_, css := benchContent(b)
	benchProxy(b, "text/css", "", "", css)
}

// BenchmarkInjectStream: the streaming rewrite alone (no HTTP), identity.
func BenchmarkInjectStream(b *testing.B) {
	form, _ := benchContent(b)
	inj := mustInjector(b)
	b.SetBytes(int64(len(form)))
	b.ReportAllocs()
	for b.Loop() {
		body, err := newStream(io.NopCloser(bytes.NewReader(form)), encIdentity, encIdentity, inj, nil, discardLog)
		if err != nil {
			b.Fatal(err)
		}
		io.Copy(io.Discard, body)
		body.Close()
	}
}

var discardLog = slog.New(slog.DiscardHandler)

func mustInjector(tb testing.TB) rewriteFunc {
	tb.Helper()
	inj, err := injector.New(injector.Config{})
	if err != nil {
		tb.Fatal(err)
	}
	pg := injector.Page{PageViewID: "pv", Token: "tok"}
	return func(dst io.Writer, src io.Reader) error { return inj.Rewrite(dst, src, pg) }
}

// BenchmarkBareReverseProxy: the stylesheet through a bare
// httputil.ReverseProxy with Loupe's upstream transport and copy buffers,
// the floor BenchmarkProxyPassThrough can come down to.
func BenchmarkBareReverseProxy(b *testing.B) {
	_, css := benchContent(b)
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/css")
		w.Write(css)
	}))
	b.Cleanup(up.Close)
	u, _ := url.Parse(up.URL)
	t := http.DefaultTransport.(*http.Transport).Clone()
	t.MaxIdleConnsPerHost = 256
	t.DisableCompression = true
	rp := &httputil.ReverseProxy{
		Rewrite:    func(pr *httputil.ProxyRequest) { pr.SetURL(u) },
		Transport:  t,
		BufferPool: copyBuffers,
	}
	srv := httptest.NewServer(rp)
	b.Cleanup(srv.Close)
	req, _ := http.NewRequest(http.MethodGet, srv.URL+"/", nil)
	b.SetBytes(int64(len(css)))
	b.ReportAllocs()
	for b.Loop() {
		resp, err := client.Do(req)
		if err != nil {
			b.Fatal(err)
		}
		if _, err := io.Copy(io.Discard, resp.Body); err != nil {
			b.Fatal(err)
		}
		resp.Body.Close()
	}
}
