// Package proxy is Loupe's site-facing reverse proxy. It forwards every
// request to the upstream with httputil.ReverseProxy, injects the recorder
// into HTML responses on their way back, issues the session cookie, and
// serves Loupe's own routes under one reserved prefix (/__loupe/ by default):
// the recorder bundle, the ingest endpoint and a health probe.
//
// Non-HTML responses (stylesheets, fonts, images) are handed to an optional
// Archiver as they stream past, so that replays can show the assets the
// visitor saw.
//
// The proxy fails open: when injection or archiving cannot be done safely the
// visitor gets the origin's bytes unchanged.
package proxy

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/http/httputil"
	"net/netip"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/loupe-dev/loupe/collector"
	"github.com/loupe-dev/loupe/injector"
	"github.com/loupe-dev/loupe/injector/recorder"
)

// DefaultCookieName is the session cookie's name.
const DefaultCookieName = "__loupe_sid"

// replayLoginCookie is the replay server's login cookie (package replayer).
// A browser signed in to a replay UI on the same host name as a site (the
// demo's 127.0.0.1, any port) sends it to the site too; it is a key to
// every recording, so the origin never gets it.
const replayLoginCookie = "loupe_login"

// Config configures a Proxy.
type Config struct {
	// Upstream is the origin every request is forwarded to. Required.
	Upstream *url.URL

	// Prefix is where Loupe's own routes live on the site. If empty,
	// injector.DefaultPrefix is used. It must start and end with "/".
	Prefix string

	// Injector rewrites HTML. Required.
	Injector *injector.Injector
	// Tokens mints session cookies and page-view tokens. Required.
	Tokens *collector.Tokens
	// Ingest serves <Prefix>ingest. If nil, the route answers 404.
	Ingest http.Handler
	// RecorderJS is the recorder bundle served at <Prefix>recorder.js. If
	// empty, the route answers 503 and pages are still injected.
	RecorderJS []byte

	// CookieName is the session cookie's name. If empty, DefaultCookieName.
	CookieName string
	// MaxRewriteBytes bounds an HTML body the proxy will rewrite when the
	// origin declares its length (Content-Length); larger bodies pass
	// through unchanged. Bodies of unknown length are always streamed
	// through the rewriter. If zero, 16 MiB.
	MaxRewriteBytes int64

	// Record decides whether an HTML page gets the recorder; see
	// RecordRules and SessionID. It sees the visitor's request with the
	// page's public path. If nil, every HTML page is recorded.
	Record func(*http.Request) bool

	// Archive receives every archivable response (see archivable) before
	// its body streams to the visitor; it may wrap resp.Body to tee it, and
	// must neither block nor change the bytes. If nil, nothing is archived.
	Archive Archiver
	// SiteHosts are the host names (host or host:port, as visitors' Host
	// headers carry them) the site is served under. If set, responses to
	// requests naming any other Host are not archived: a forged Host would
	// otherwise file the origin's bytes under another site's URLs, which
	// replays of that site would then show. If empty, every Host is
	// trusted.
	SiteHosts []string

	// Requests receives the network log: an entry per request of a
	// recorded session (see netlog.go). If nil, nothing is logged.
	Requests RequestLogger
	// UserRules find a user id in a logged request (cookie, header and jwt
	// rules); it rides on the request's entry. If empty, none is looked for.
	UserRules collector.UserRules

	// TrustedProxies are the peers (load balancers, CDNs) whose
	// X-Forwarded-For, X-Forwarded-Host, X-Forwarded-Proto and Forwarded
	// headers are passed on to the upstream, with this hop appended. Any
	// other peer's are dropped and replaced by what Loupe saw. If empty,
	// no peer is trusted.
	TrustedProxies []netip.Prefix
	// PreserveHost sends the visitor's Host header to the upstream. If
	// false, the upstream's own host is sent, and the Location,
	// Content-Location, Refresh and cookie domains it answers with are
	// mapped back to the public host (see mapUpstreamHeaders).
	PreserveHost bool

	// Transport reaches the upstream. If nil, a clone of
	// http.DefaultTransport with compression handling off is used; a
	// custom one should set DisableCompression too.
	Transport http.RoundTripper
	// Logger receives operator-facing lines. If nil, slog.Default().
	Logger *slog.Logger
}

// Archiver is what the proxy hands responses to for archiving
// (*archive.Archiver).
type Archiver interface {
	// Tee may replace resp.Body with a reader that copies what the visitor
	// reads. It is called before the first byte of the body is read.
	Tee(resp *http.Response)
}

// Proxy is an http.Handler serving a site through Loupe.
type Proxy struct {
	cfg     Config
	rp      *httputil.ReverseProxy
	mux     *http.ServeMux
	log     *slog.Logger
	started time.Time
	// recorderVersion is recorder.Version of the served bundle.
	recorderVersion string
}

// New validates cfg and returns a Proxy.
func New(cfg Config) (*Proxy, error) {
	if cfg.Upstream == nil || cfg.Upstream.Host == "" ||
		(cfg.Upstream.Scheme != "http" && cfg.Upstream.Scheme != "https") {
		return nil, errors.New("upstream must be an absolute http or https URL")
	}
	if cfg.Injector == nil || cfg.Tokens == nil {
		return nil, errors.New("proxy needs an injector and tokens")
	}
	if cfg.Prefix == "" {
		cfg.Prefix = injector.DefaultPrefix
	}
	if !strings.HasPrefix(cfg.Prefix, "/") || !strings.HasSuffix(cfg.Prefix, "/") {
		return nil, fmt.Errorf("prefix %q must start and end with /", cfg.Prefix)
	}
	if cfg.CookieName == "" {
		cfg.CookieName = DefaultCookieName
	}
	if cfg.MaxRewriteBytes <= 0 {
		cfg.MaxRewriteBytes = 16 << 20
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.Transport == nil {
		t := http.DefaultTransport.(*http.Transport).Clone()
		t.MaxIdleConnsPerHost = 256
		// Without this the transport asks for gzip on the client's behalf
		// and silently decompresses, so the client would not get the
		// origin's bytes.
		t.DisableCompression = true
		t.ResponseHeaderTimeout = 60 * time.Second
		cfg.Transport = t
	}
	p := &Proxy{cfg: cfg, log: cfg.Logger, started: time.Now(), recorderVersion: recorder.Version(cfg.RecorderJS)}
	p.rp = &httputil.ReverseProxy{
		Rewrite:        p.rewriteRequest,
		ModifyResponse: p.upstreamResponse,
		ErrorHandler:   p.errorHandler,
		Transport:      cfg.Transport,
		BufferPool:     copyBuffers,
		ErrorLog:       slog.NewLogLogger(cfg.Logger.Handler(), slog.LevelWarn),
	}
	p.mux = p.routes()
	return p, nil
}

// routes lists every route the proxy answers itself; everything else goes
// to the upstream.
func (p *Proxy) routes() *http.ServeMux {
	mux := http.NewServeMux()
	pre := p.cfg.Prefix
	mux.HandleFunc("GET "+pre+"recorder.js", p.serveRecorder)
	mux.HandleFunc("GET "+pre+"healthz", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		w.Header().Set("Cache-Control", "no-store")
		fmt.Fprintln(w, "ok")
	})
	if p.cfg.Ingest != nil {
		mux.Handle(pre+"ingest", p.cfg.Ingest)
	}
	mux.HandleFunc(pre, http.NotFound)
	mux.HandleFunc("/", p.forward)
	return mux
}

// bufferPool lends the 64 KiB buffers ReverseProxy copies bodies through;
// without one it allocates a buffer per response. It pools them as array
// pointers, which a buffer given back converts to without allocating (a
// *[]byte would cost an allocation per Put).
type bufferPool struct{ p sync.Pool }

const copyBufferSize = streamBufSize // a rewritten piece in one read

func (b *bufferPool) Get() []byte { return b.p.Get().(*[copyBufferSize]byte)[:] }
func (b *bufferPool) Put(buf []byte) {
	if cap(buf) >= copyBufferSize {
		b.p.Put((*[copyBufferSize]byte)(buf[:copyBufferSize]))
	}
}

var copyBuffers = &bufferPool{p: sync.Pool{New: func() any { return new([copyBufferSize]byte) }}}

// ServeHTTP serves one request, recovering from a panic in Loupe's own code
// so that one bad response never takes the process down.
func (p *Proxy) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	w, r, logged := p.netlog(w, r)
	defer logged()
	defer func() {
		if v := recover(); v != nil {
			if v == http.ErrAbortHandler {
				panic(v)
			}
			p.log.Error("proxy panic", "panic", v, "method", r.Method, "path", r.URL.Path)
			http.Error(w, "Bad Gateway", http.StatusBadGateway)
		}
	}()
	p.mux.ServeHTTP(w, r)
}

func (p *Proxy) serveRecorder(w http.ResponseWriter, r *http.Request) {
	if len(p.cfg.RecorderJS) == 0 {
		http.Error(w, "recorder bundle not built (run make)", http.StatusServiceUnavailable)
		return
	}
	w.Header().Set("Content-Type", "text/javascript; charset=utf-8")
	// Pages name the bundle by version (see recorder.Version): that URL
	// can be kept for good; an unversioned one only briefly.
	if v := r.URL.Query().Get("v"); v != "" && v == p.recorderVersion {
		w.Header().Set("Cache-Control", "public, max-age=31536000, immutable")
	} else {
		w.Header().Set("Cache-Control", "public, max-age=300")
	}
	w.Header().Set("X-Content-Type-Options", "nosniff")
	http.ServeContent(w, r, "recorder.js", p.started, bytes.NewReader(p.cfg.RecorderJS))
}

// rewriteRequest prepares the outbound request.
func (p *Proxy) rewriteRequest(pr *httputil.ProxyRequest) {
	pr.SetURL(p.cfg.Upstream)
	if p.cfg.PreserveHost {
		pr.Out.Host = pr.In.Host
	}
	SetForwarded(pr, p.cfg.TrustedProxies)
	if p.cfg.Archive != nil && p.siteHost(pr.In.Host) {
		pr.Out = pr.Out.WithContext(context.WithValue(pr.Out.Context(), publicURLKey{}, publicURL(pr.In)))
	}
	// Loupe's cookies never reach the origin: the session cookie's and the
	// sampled-out cookie's values go on in the context only, and the
	// replay UI's login is dropped.
	sampledOut := ""
	if p.cfg.Record != nil {
		sampledOut = p.sampledOutCookie()
	}
	v := stripCookies(pr.Out.Header, [3]string{p.cfg.CookieName, sampledOut, replayLoginCookie})
	if v[0] != "" {
		pr.Out = pr.Out.WithContext(context.WithValue(pr.Out.Context(), sessionCookieKey{}, v[0]))
	}
	if v[1] != "" {
		pr.Out = pr.Out.WithContext(context.WithValue(pr.Out.Context(), sampledOutKey{}, v[1]))
	}
	// Ask only for encodings the rewriter can decode, so an HTML page is never
	// left unrecorded because of its encoding.
	if ae := pr.Out.Header.Get("Accept-Encoding"); ae != "" {
		pr.Out.Header.Set("Accept-Encoding", filterAcceptEncoding(ae))
		if pr.Out.Header.Get("Accept-Encoding") == "" {
			pr.Out.Header.Del("Accept-Encoding")
		}
	}
}

// siteHost reports whether host is one the site is served under.
func (p *Proxy) siteHost(host string) bool {
	if len(p.cfg.SiteHosts) == 0 {
		return true
	}
	for _, h := range p.cfg.SiteHosts {
		if strings.EqualFold(h, host) {
			return true
		}
		if name, _, err := net.SplitHostPort(host); err == nil && strings.EqualFold(h, name) {
			return true
		}
	}
	return false
}

// publicURLKey carries the URL the visitor asked for from the inbound
// request to the archiver (see PublicURL).
type publicURLKey struct{}

// publicURL is the absolute URL in of an inbound request, as the visitor's
// browser (and so the recording) names it: its Host, and https when the
// connection or a TLS-terminating balancer's X-Forwarded-Proto says so.
func publicURL(in *http.Request) string {
	scheme := "http"
	if in.TLS != nil {
		scheme = "https"
	} else if p, _, _ := strings.Cut(in.Header.Get("X-Forwarded-Proto"), ","); strings.EqualFold(strings.TrimSpace(p), "https") {
		scheme = "https"
	}
	u := url.URL{Scheme: scheme, Host: in.Host, Path: in.URL.Path, RawPath: in.URL.RawPath, RawQuery: in.URL.RawQuery}
	return u.String()
}

// PublicURL returns the URL the visitor asked for that resp answers, for
// archive.Config.URL: the outbound request the response carries names the
// upstream instead. It returns false for a response the proxy did not
// hand to its Archiver.
func PublicURL(resp *http.Response) (string, bool) {
	if resp.Request == nil {
		return "", false
	}
	u, ok := resp.Request.Context().Value(publicURLKey{}).(string)
	return u, ok && u != ""
}

// errorHandler answers when the upstream cannot be reached or fails: 504
// for a timeout, 499 (logged only) when the client went away, 502 otherwise.
func (p *Proxy) errorHandler(w http.ResponseWriter, r *http.Request, err error) {
	status := http.StatusBadGateway
	var ne net.Error
	switch {
	case errors.Is(r.Context().Err(), context.Canceled):
		status = 499
	case errors.Is(err, context.DeadlineExceeded), errors.As(err, &ne) && ne.Timeout():
		status = http.StatusGatewayTimeout
	}
	p.log.Warn("upstream error", "status", status, "method", r.Method, "path", r.URL.Path, "err", err)
	if status == 499 {
		return
	}
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	fmt.Fprintf(w, "%d %s: the site behind this proxy could not be reached.\n", status, http.StatusText(status))
}
