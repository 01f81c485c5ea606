package proxy

import (
	"bufio"
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"path"
	"strings"
	"sync"
	"time"

	"github.com/elazarl/goproxy"
)

// LeafMinter mints the certificate a browser is shown for an intercepted
// host (*certs.Minter).
type LeafMinter interface {
	Leaf(host string) (*tls.Certificate, error)
}

// MITMConfig configures a MITM.
type MITMConfig struct {
	// Record lists the hosts to intercept and record: names or path.Match
	// globs ("*.shop.example"), matched against the host without its port,
	// ignoring case. Every other host is passed through untouched: a
	// CONNECT is tunnelled byte for byte (no TLS interception) and a plain
	// http:// request forwarded. If empty, nothing is recorded.
	Record []string
	// Leaves mints the certificates shown for recorded hosts. Required.
	Leaves LeafMinter
	// Site is the template of each recorded host's Proxy: Injector,
	// Tokens, Ingest, RecorderJS, Archive and the rest apply to every
	// recorded host as they would to one reverse-proxied site. Upstream
	// and Transport are set per host; theirs are ignored.
	Site Config
	// RootCAs verifies upstream certificates. If nil, the system's roots.
	// Upstream TLS is always verified: an upstream whose certificate does
	// not verify answers 502.
	RootCAs *x509.CertPool
	// DialContext dials upstreams and tunnels. If nil, a net.Dialer's with
	// a 10-second timeout.
	DialContext func(ctx context.Context, network, addr string) (net.Conn, error)
	// Logger receives operator-facing lines. If nil, Site.Logger or
	// slog.Default().
	Logger *slog.Logger
}

// MITM is a forward proxy for lab studies: a browser configured to use it
// (and to trust the CA behind Leaves) gets every page of a recorded host
// through the same Proxy as a reverse-proxied site — injected, archived,
// with Loupe's routes under the prefix — and everything else untouched.
//
// goproxy speaks the forward-proxy protocol (CONNECT, absolute-form
// requests, tunnels). A CONNECT to a recorded host is hijacked: MITM
// terminates its TLS with a minted leaf and serves the connection with
// net/http, so that streaming, WebSockets, HTTP/2 and the rest behave as
// with the reverse proxy rather than through goproxy's own MITM loop.
type MITM struct {
	cfg       MITMConfig
	log       *slog.Logger
	gp        *goproxy.ProxyHttpServer
	transport *http.Transport
	// tlsConns and plainConns are the hijacked connections whose first
	// byte starts a TLS handshake, and those that speak plain HTTP inside
	// the tunnel (Chromium tunnels ws:// through a proxy with CONNECT);
	// srvTLS and srvPlain serve them.
	tlsConns, plainConns *connListener
	srvTLS, srvPlain     *http.Server
	done                 sync.WaitGroup

	mu    sync.Mutex
	sites map[string]*Proxy // by upstream origin, "https://shop.example:443"
}

// NewMITM validates cfg and returns a MITM. Close it to end its
// intercepted connections.
func NewMITM(cfg MITMConfig) (*MITM, error) {
	if cfg.Leaves == nil {
		return nil, errors.New("mitm: a leaf minter is required")
	}
	if cfg.Site.Injector == nil || cfg.Site.Tokens == nil {
		return nil, errors.New("mitm: the site template needs an injector and tokens")
	}
	for _, g := range cfg.Record {
		if _, err := path.Match(g, ""); err != nil {
			return nil, fmt.Errorf("mitm: record host %q: %w", g, err)
		}
	}
	if cfg.Logger == nil {
		cfg.Logger = cfg.Site.Logger
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.DialContext == nil {
		cfg.DialContext = (&net.Dialer{Timeout: 10 * time.Second, KeepAlive: 30 * time.Second}).DialContext
	}
	m := &MITM{
		cfg:        cfg,
		log:        cfg.Logger,
		tlsConns:   newConnListener(),
		plainConns: newConnListener(),
		sites:      map[string]*Proxy{},
	}
	m.transport = &http.Transport{
		DialContext:     cfg.DialContext,
		TLSClientConfig: &tls.Config{RootCAs: cfg.RootCAs, MinVersion: tls.VersionTLS12},
		// The recorded hosts' HTML is decoded by the rewriter, which asks
		// only for what it can decode; see Proxy.rewriteRequest.
		DisableCompression:    true,
		ForceAttemptHTTP2:     true,
		MaxIdleConnsPerHost:   64,
		IdleConnTimeout:       90 * time.Second,
		TLSHandshakeTimeout:   10 * time.Second,
		ResponseHeaderTimeout: 60 * time.Second,
	}

	gp := goproxy.NewProxyHttpServer()
	gp.Tr = m.transport
	// Never goproxy's environment-based chaining: tunnels dial directly.
	gp.ConnectDial = nil
	gp.ConnectDialWithReq = func(req *http.Request, network, addr string) (net.Conn, error) {
		return cfg.DialContext(req.Context(), network, addr)
	}
	// Forwarded hosts get the client's Accept-Encoding, and their bytes as
	// sent (the transport does not decompress).
	gp.KeepAcceptEncoding = true
	gp.Logger = slogPrintf{m.log}
	gp.OnRequest().HandleConnectFunc(func(host string, ctx *goproxy.ProxyCtx) (*goproxy.ConnectAction, string) {
		if m.recorded(host) {
			return &goproxy.ConnectAction{Action: goproxy.ConnectHijack, Hijack: m.hijack}, host
		}
		return &goproxy.ConnectAction{Action: goproxy.ConnectAccept}, host
	})
	m.gp = gp

	connContext := func(ctx context.Context, c net.Conn) context.Context {
		if tc, ok := c.(*tls.Conn); ok {
			c = tc.NetConn()
		}
		if ic, ok := c.(*interceptedConn); ok {
			return context.WithValue(ctx, connectTargetKey{}, ic.target)
		}
		return ctx
	}
	newServer := func() *http.Server {
		return &http.Server{
			Handler:           http.HandlerFunc(m.serveIntercepted),
			ReadHeaderTimeout: 10 * time.Second,
			IdleTimeout:       120 * time.Second,
			ErrorLog:          slog.NewLogLogger(m.log.Handler(), slog.LevelDebug),
			ConnContext:       connContext,
		}
	}
	m.srvTLS, m.srvPlain = newServer(), newServer()
	m.srvTLS.TLSConfig = &tls.Config{
		MinVersion:     tls.VersionTLS12,
		GetCertificate: m.certificate,
		NextProtos:     []string{"h2", "http/1.1"},
	}
	m.done.Add(2)
	go func() {
		defer m.done.Done()
		if err := m.srvTLS.ServeTLS(m.tlsConns, "", ""); !errors.Is(err, http.ErrServerClosed) {
			m.log.Error("mitm: intercepted connections", "err", err)
		}
	}()
	go func() {
		defer m.done.Done()
		if err := m.srvPlain.Serve(m.plainConns); !errors.Is(err, http.ErrServerClosed) {
			m.log.Error("mitm: intercepted connections", "err", err)
		}
	}()
	return m, nil
}

// ServeHTTP serves a forward-proxy request: a CONNECT, or an absolute-form
// request for a plain http:// URL.
func (m *MITM) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	switch {
	case r.Method == http.MethodConnect:
		m.gp.ServeHTTP(w, r)
	case !r.URL.IsAbs() || r.URL.Host == "":
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		w.WriteHeader(http.StatusBadRequest)
		fmt.Fprintln(w, "This is Loupe's forward proxy for lab studies: set it as the browser's HTTP and HTTPS proxy.")
	case r.URL.Scheme == "http" && m.recorded(r.URL.Host):
		m.site("http", r.URL.Host).ServeHTTP(w, r)
	default:
		m.gp.ServeHTTP(w, r)
	}
}

// Close ends the intercepted connections at once, and idle upstream
// connections.
func (m *MITM) Close() error {
	m.tlsConns.Close()
	m.plainConns.Close()
	err := errors.Join(m.srvTLS.Close(), m.srvPlain.Close())
	m.done.Wait()
	m.transport.CloseIdleConnections()
	return err
}

// Shutdown stops taking intercepted connections and waits, until ctx is
// done, for their requests in flight to finish (as http.Server.Shutdown:
// upgraded connections such as WebSockets are not waited for), then
// closes what is left.
func (m *MITM) Shutdown(ctx context.Context) error {
	m.tlsConns.Close()
	m.plainConns.Close()
	var wg sync.WaitGroup
	errs := make([]error, 2)
	for i, srv := range []*http.Server{m.srvTLS, m.srvPlain} {
		wg.Go(func() { errs[i] = srv.Shutdown(ctx) })
	}
	wg.Wait()
	return errors.Join(errors.Join(errs...), m.Close())
}

// recorded reports whether hostport (a host, with or without port) is on
// the record list.
func (m *MITM) recorded(hostport string) bool {
	host := strings.ToLower(strings.TrimSuffix(hostOnly(hostport), "."))
	for _, g := range m.cfg.Record {
		if ok, _ := path.Match(strings.ToLower(g), host); ok {
			return true
		}
	}
	return false
}

// hostOnly strips the port (and an IPv6 address's brackets).
func hostOnly(hostport string) string {
	if h, _, err := net.SplitHostPort(hostport); err == nil {
		return h
	}
	return strings.Trim(hostport, "[]")
}

// hijack takes a CONNECT to a recorded host: it confirms the tunnel and
// hands the connection to the server of intercepted TLS connections, whose
// handshake shows the host's minted leaf, or, when the client speaks plain
// HTTP inside the tunnel, to the plain one. The client sends nothing
// before the 200, so no bytes are left in goproxy's reader.
func (m *MITM) hijack(req *http.Request, client net.Conn, _ *goproxy.ProxyCtx) {
	if _, err := fmt.Fprintf(client, "HTTP/%d.%d 200 Connection established\r\n\r\n", max(req.ProtoMajor, 1), req.ProtoMinor); err != nil {
		client.Close()
		return
	}
	ic := &interceptedConn{Conn: client, target: req.URL.Host, r: bufio.NewReader(client)}
	client.SetReadDeadline(time.Now().Add(30 * time.Second))
	first, err := ic.r.Peek(1)
	client.SetReadDeadline(time.Time{})
	if err != nil {
		client.Close()
		return
	}
	to := m.plainConns
	if first[0] == 0x16 { // a TLS handshake record (RFC 8446 §5.1)
		to = m.tlsConns
	}
	if !to.push(ic) {
		client.Close()
	}
}

// certificate presents the leaf of the host the CONNECT named, whatever
// the client's SNI says (a URL with an IP address sends none).
func (m *MITM) certificate(hello *tls.ClientHelloInfo) (*tls.Certificate, error) {
	ic, ok := hello.Conn.(*interceptedConn)
	if !ok {
		return nil, errors.New("mitm: connection without a CONNECT target")
	}
	return m.cfg.Leaves.Leaf(hostOnly(ic.target))
}

// connectTargetKey carries an intercepted connection's CONNECT target
// (host:port) to its requests.
type connectTargetKey struct{}

// serveIntercepted serves a request inside an intercepted connection with
// the target host's Proxy, over https when the client spoke TLS to it.
func (m *MITM) serveIntercepted(w http.ResponseWriter, r *http.Request) {
	target, _ := r.Context().Value(connectTargetKey{}).(string)
	// A request inside the tunnel may name another host; recording it under
	// the CONNECT target's leaf would be wrong, and forwarding it would
	// intercept a host the list does not name.
	if !strings.EqualFold(hostOnly(r.Host), hostOnly(target)) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		w.WriteHeader(http.StatusMisdirectedRequest)
		fmt.Fprintln(w, "421 Misdirected Request: this connection is for", hostOnly(target))
		return
	}
	scheme := "https"
	if r.TLS == nil {
		scheme = "http"
	}
	m.site(scheme, target).ServeHTTP(w, r)
}

// site returns the Proxy for an upstream origin, made on first use.
func (m *MITM) site(scheme, hostport string) http.Handler {
	u := &url.URL{Scheme: scheme, Host: hostport}
	if p := u.Port(); (scheme == "https" && p == "443") || (scheme == "http" && p == "80") {
		u.Host = hostOnly(hostport)
		if strings.Contains(u.Host, ":") {
			u.Host = "[" + u.Host + "]"
		}
	}
	key := u.String()
	m.mu.Lock()
	defer m.mu.Unlock()
	if p, ok := m.sites[key]; ok {
		return p
	}
	cfg := m.cfg.Site
	cfg.Upstream = u
	cfg.Transport = m.transport
	if cfg.Logger == nil {
		cfg.Logger = m.log
	}
	p, err := New(cfg)
	if err != nil {
		m.log.Error("mitm: site proxy", "upstream", key, "err", err)
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			http.Error(w, "502 Bad Gateway", http.StatusBadGateway)
		})
	}
	m.sites[key] = p
	return p
}

// interceptedConn is a hijacked client connection and the host:port its
// CONNECT named; reads go through r, which holds the peeked first byte.
type interceptedConn struct {
	net.Conn
	target string
	r      *bufio.Reader
}

func (c *interceptedConn) Read(p []byte) (int, error) { return c.r.Read(p) }

// connListener is a net.Listener of the connections hijack pushes.
type connListener struct {
	ch     chan net.Conn
	closed chan struct{}
	once   sync.Once
}

func newConnListener() *connListener {
	return &connListener{ch: make(chan net.Conn), closed: make(chan struct{})}
}

// push hands c to Accept; it reports false once the listener is closed.
func (l *connListener) push(c net.Conn) bool {
	select {
	case l.ch <- c:
		return true
	case <-l.closed:
		return false
	}
}

func (l *connListener) Accept() (net.Conn, error) {
	select {
	case c := <-l.ch:
		return c, nil
	case <-l.closed:
		return nil, net.ErrClosed
	}
}

func (l *connListener) Close() error {
	l.once.Do(func() { close(l.closed) })
	return nil
}

func (l *connListener) Addr() net.Addr { return mitmAddr{} }

type mitmAddr struct{}

func (mitmAddr) Network() string { return "mitm" }
func (mitmAddr) String() string  { return "mitm" }

// slogPrintf is goproxy's Logger on slog: its lines are debug detail.
type slogPrintf struct{ log *slog.Logger }

func (s slogPrintf) Printf(format string, v ...any) {
	s.log.Debug(fmt.Sprintf(format, v...), "part", "mitm")
}
