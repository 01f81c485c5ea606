package proxy

import (
	"bufio"
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/loupe-dev/loupe/certs"
	"github.com/loupe-dev/loupe/injector"
)

// mitmRig is a forward proxy in front of a TLS origin reachable as
// example.com (the name in httptest's certificate) and a plain one as
// plain.test.
type mitmRig struct {
	ca       *certs.CA
	minter   *certs.Minter
	origin   *httptest.Server // TLS, served as example.com:<port>
	plain    *httptest.Server // http, served as plain.test:<port>
	proxyURL *url.URL
	mitm     *MITM
	hits     atomic.Int64 // requests the TLS origin served
	ingested atomic.Int64 // requests the ingest handler served
}

func (rg *mitmRig) originURL() string {
	return "https://example.com:" + portOf(rg.origin.URL) + "/"
}

func portOf(u string) string {
	pu, _ := url.Parse(u)
	return pu.Port()
}

// newMITMRig starts origins and a MITM recording example.com and
// plain.test. The TLS origin serves a page, or tlsOrigin if not nil; mod
// may change the config.
func newMITMRig(t *testing.T, tlsOrigin http.Handler, mod func(*MITMConfig)) *mitmRig {
	t.Helper()
	rg := &mitmRig{}
	html := func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		io.WriteString(w, page)
	}
	if tlsOrigin == nil {
		tlsOrigin = http.HandlerFunc(html)
	}
	rg.origin = httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		rg.hits.Add(1)
		tlsOrigin.ServeHTTP(w, r)
	}))
	t.Cleanup(rg.origin.Close)
	rg.plain = httptest.NewServer(http.HandlerFunc(html))
	t.Cleanup(rg.plain.Close)

	var err error
	if rg.ca, err = certs.InitCA(t.TempDir(), nil); err != nil {
		t.Fatal(err)
	}
	if rg.minter, err = certs.NewMinter(rg.ca, certs.MinterConfig{}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(rg.minter.Close)
	inj, err := injector.New(injector.Config{})
	if err != nil {
		t.Fatal(err)
	}
	roots := x509.NewCertPool()
	roots.AddCert(rg.origin.Certificate())
	names := map[string]string{
		"example.com:" + portOf(rg.origin.URL): rg.origin.Listener.Addr().String(),
		"plain.test:" + portOf(rg.plain.URL):   rg.plain.Listener.Addr().String(),
	}
	var d net.Dialer
	cfg := MITMConfig{
		Record: []string{"example.com", "*.test"},
		Leaves: rg.minter,
		Site: Config{
			Injector:   inj,
			Tokens:     mustTokens(t),
			RecorderJS: []byte("/*recorder*/"),
			Ingest: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				rg.ingested.Add(1)
				w.WriteHeader(http.StatusNoContent)
			}),
			Logger: slog.New(slog.DiscardHandler),
		},
		RootCAs: roots,
		DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
			if a, ok := names[addr]; ok {
				addr = a
			}
			return d.DialContext(ctx, network, addr)
		},
	}
	if mod != nil {
		mod(&cfg)
	}
	rg.mitm, err = NewMITM(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { rg.mitm.Close() })
	srv := httptest.NewServer(rg.mitm)
	t.Cleanup(srv.Close)
	rg.proxyURL, _ = url.Parse(srv.URL)
	return rg
}

// client returns a browser stand-in using the proxy and trusting roots.
func (rg *mitmRig) client(roots *x509.CertPool) *http.Client {
	return &http.Client{Transport: &http.Transport{
		Proxy:              http.ProxyURL(rg.proxyURL),
		TLSClientConfig:    &tls.Config{RootCAs: roots},
		DisableCompression: true,
		ForceAttemptHTTP2:  true,
	}}
}

func mustDo(t *testing.T, c *http.Client, req *http.Request) (*http.Response, string) {
	t.Helper()
	resp, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp, string(b)
}

func TestMITMRecordsAllowlistedHost(t *testing.T) {
	rg := newMITMRig(t, nil, nil)
	c := rg.client(rg.ca.Pool())
	req, _ := http.NewRequest(http.MethodGet, rg.originURL(), nil)
	resp, body := mustDo(t, c, req)
	if resp.StatusCode != http.StatusOK || !strings.Contains(body, "recorder.js") || !strings.Contains(body, "Fresh roasts") {
		t.Fatalf("got %d %q, want the injected page", resp.StatusCode, body)
	}
	leaf := resp.TLS.PeerCertificates[0]
	if _, err := leaf.Verify(x509.VerifyOptions{DNSName: "example.com", Roots: rg.ca.Pool()}); err != nil {
		t.Fatalf("the page's certificate is not a leaf of the Loupe CA for example.com: %v", err)
	}
	if leaf.Equal(rg.origin.Certificate()) {
		t.Fatal("the browser saw the origin's own certificate")
	}
	if !strings.Contains(resp.Header.Get("Set-Cookie"), DefaultCookieName) || !strings.Contains(resp.Header.Get("Set-Cookie"), "Secure") {
		t.Errorf("Set-Cookie %q, want a Secure session cookie", resp.Header.Get("Set-Cookie"))
	}
	if resp.ProtoMajor != 2 {
		t.Errorf("intercepted connection spoke %s, want HTTP/2", resp.Proto)
	}

	// Loupe's own routes answer on the recorded host.
	req, _ = http.NewRequest(http.MethodGet, rg.originURL()+"__loupe/recorder.js", nil)
	if resp, body := mustDo(t, c, req); resp.StatusCode != http.StatusOK || body != "/*recorder*/" {
		t.Errorf("recorder.js: %d %q", resp.StatusCode, body)
	}
	req, _ = http.NewRequest(http.MethodPost, rg.originURL()+"__loupe/ingest", strings.NewReader("{}"))
	if resp, _ := mustDo(t, c, req); resp.StatusCode != http.StatusNoContent || rg.ingested.Load() != 1 {
		t.Errorf("ingest: %d, %d batches reached the collector", resp.StatusCode, rg.ingested.Load())
	}

	// A plain http:// page of a recorded host is injected too.
	req, _ = http.NewRequest(http.MethodGet, "http://plain.test:"+portOf(rg.plain.URL)+"/", nil)
	if resp, body := mustDo(t, c, req); resp.StatusCode != http.StatusOK || !strings.Contains(body, "recorder.js") {
		t.Errorf("plain http page: %d %q, want it injected", resp.StatusCode, body)
	}

	// A request inside the tunnel naming another host is refused.
	req, _ = http.NewRequest(http.MethodGet, rg.originURL(), nil)
	req.Host = "bank.example"
	if resp, _ := mustDo(t, c, req); resp.StatusCode != http.StatusMisdirectedRequest {
		t.Errorf("other Host inside the tunnel: %d, want 421", resp.StatusCode)
	}
}

func TestMITMTunnelsOtherHosts(t *testing.T) {
	rg := newMITMRig(t, nil, nil)
	// 127.0.0.1 is not on the list: the browser talks TLS with the origin
	// itself, so it must trust the origin, not Loupe.
	roots := x509.NewCertPool()
	roots.AddCert(rg.origin.Certificate())
	req, _ := http.NewRequest(http.MethodGet, rg.origin.URL, nil)
	resp, body := mustDo(t, rg.client(roots), req)
	if resp.StatusCode != http.StatusOK || body != page {
		t.Fatalf("got %d %q, want the origin's bytes", resp.StatusCode, body)
	}
	if !resp.TLS.PeerCertificates[0].Equal(rg.origin.Certificate()) {
		t.Fatal("a tunnelled host was shown another certificate than its own")
	}
	if rg.minter.Minted() != 0 {
		t.Fatalf("minted %d leaves for a tunnelled host", rg.minter.Minted())
	}
}

func TestMITMRefusesUntrustedUpstream(t *testing.T) {
	// The upstream's certificate is not signed by any root the MITM trusts.
	rg := newMITMRig(t, nil, func(c *MITMConfig) { c.RootCAs = x509.NewCertPool() })
	req, _ := http.NewRequest(http.MethodGet, rg.originURL(), nil)
	resp, body := mustDo(t, rg.client(rg.ca.Pool()), req)
	if resp.StatusCode != http.StatusBadGateway {
		t.Fatalf("got %d %q, want 502", resp.StatusCode, body)
	}
	if strings.Contains(body, "Fresh roasts") || rg.hits.Load() != 0 {
		t.Fatalf("the untrusted upstream's page was served (%d requests reached it)", rg.hits.Load())
	}
}

func TestMITMMintsOnceForConcurrentConnects(t *testing.T) {
	rg := newMITMRig(t, nil, nil)
	const n = 8
	var wg sync.WaitGroup
	start := make(chan struct{})
	for range n {
		// A client each: each opens its own CONNECT and TLS handshake.
		c := rg.client(rg.ca.Pool())
		wg.Go(func() {
			<-start
			req, _ := http.NewRequest(http.MethodGet, rg.originURL(), nil)
			resp, err := c.Do(req)
			if err != nil {
				t.Error(err)
				return
			}
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if resp.StatusCode != http.StatusOK {
				t.Errorf("status %d", resp.StatusCode)
			}
		})
	}
	close(start)
	wg.Wait()
	if got := rg.minter.Minted(); got != 1 {
		t.Fatalf("%d concurrent CONNECTs minted %d leaves, want 1", n, got)
	}
	if got := rg.hits.Load(); got != n {
		t.Fatalf("origin served %d requests, want %d", got, n)
	}
}

func TestMITMConfig(t *testing.T) {
	inj, _ := injector.New(injector.Config{})
	ca, _ := certs.InitCA(t.TempDir(), nil)
	mt, _ := certs.NewMinter(ca, certs.MinterConfig{})
	defer mt.Close()
	site := Config{Injector: inj, Tokens: mustTokens(t)}
	for _, tc := range []struct {
		name string
		cfg  MITMConfig
	}{
		{"no minter", MITMConfig{Site: site}},
		{"no injector", MITMConfig{Leaves: mt, Site: Config{Tokens: site.Tokens}}},
		{"bad glob", MITMConfig{Leaves: mt, Site: site, Record: []string{"[x"}}},
	} {
		if m, err := NewMITM(tc.cfg); err == nil {
			m.Close()
			t.Errorf("%s: accepted", tc.name)
		}
	}
	m, err := NewMITM(MITMConfig{Leaves: mt, Site: site, Record: []string{"*.Shop.example", "10.0.0.1"}})
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	for host, want := range map[string]bool{
		"a.shop.example:443": true, "A.SHOP.EXAMPLE.": true, "shop.example": false,
		"10.0.0.1:8443": true, "bank.example:443": false,
	} {
		if got := m.recorded(host); got != want {
			t.Errorf("recorded(%q) = %v, want %v", host, got, want)
		}
	}
}

// TestMITMPlainHTTPInTunnel: a client that speaks plain HTTP inside a
// CONNECT tunnel to a recorded host (as Chromium does for ws:// through a
// proxy) is served over http, injected, with no TLS handshake.
func TestMITMPlainHTTPInTunnel(t *testing.T) {
	rg := newMITMRig(t, nil, nil)
	conn, err := net.Dial("tcp", rg.proxyURL.Host)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	target := "plain.test:" + portOf(rg.plain.URL)
	fmt.Fprintf(conn, "CONNECT %s HTTP/1.1\r\nHost: %s\r\n\r\n", target, target)
	br := bufio.NewReader(conn)
	resp, err := http.ReadResponse(br, &http.Request{Method: http.MethodConnect})
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("CONNECT: %v %v", resp, err)
	}
	req, _ := http.NewRequest(http.MethodGet, "http://"+target+"/", nil)
	if err := req.Write(conn); err != nil {
		t.Fatal(err)
	}
	resp, err = http.ReadResponse(br, req)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || !strings.Contains(string(body), "recorder.js") {
		t.Fatalf("got %d %q, want the injected page", resp.StatusCode, body)
	}
	if strings.Contains(resp.Header.Get("Set-Cookie"), "Secure") {
		t.Errorf("Set-Cookie %q over plain http, want no Secure", resp.Header.Get("Set-Cookie"))
	}
	if rg.minter.Minted() != 0 {
		t.Errorf("minted %d leaves for a plain tunnel", rg.minter.Minted())
	}
}

// TestMITMWebSocket: a WebSocket upgrade to a recorded host passes through
// the intercepted TLS connection and carries bytes both ways.
func TestMITMWebSocket(t *testing.T) {
	// The TLS origin echoes after a 101.
	rg := newMITMRig(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Upgrade") != "websocket" {
			http.Error(w, "want an upgrade", http.StatusBadRequest)
			return
		}
		conn, brw, err := http.NewResponseController(w).Hijack()
		if err != nil {
			return
		}
		defer conn.Close()
		brw.WriteString("HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n")
		brw.Flush()
		io.Copy(conn, brw)
	}), nil)
	target := "example.com:" + portOf(rg.origin.URL)
	conn, err := net.Dial("tcp", rg.proxyURL.Host)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	fmt.Fprintf(conn, "CONNECT %s HTTP/1.1\r\nHost: %s\r\n\r\n", target, target)
	resp, err := http.ReadResponse(bufio.NewReader(conn), &http.Request{Method: http.MethodConnect})
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("CONNECT: %v %v", resp, err)
	}
	tc := tls.Client(conn, &tls.Config{ServerName: "example.com", RootCAs: rg.ca.Pool(), NextProtos: []string{"http/1.1"}})
	req, _ := http.NewRequest(http.MethodGet, "https://"+target+"/ws", nil)
	req.Header.Set("Connection", "Upgrade")
	req.Header.Set("Upgrade", "websocket")
	req.Header.Set("Sec-WebSocket-Version", "13")
	req.Header.Set("Sec-WebSocket-Key", "dGhlIHNhbXBsZSBub25jZQ==")
	if err := req.Write(tc); err != nil {
		t.Fatal(err)
	}
	br := bufio.NewReader(tc)
	resp, err = http.ReadResponse(br, req)
	if err != nil || resp.StatusCode != http.StatusSwitchingProtocols {
		t.Fatalf("upgrade: %v %v, want 101", resp, err)
	}
	for _, msg := range []string{"ping", "pong and more"} {
		io.WriteString(tc, msg)
		got := make([]byte, len(msg))
		if _, err := io.ReadFull(br, got); err != nil || string(got) != msg {
			t.Fatalf("echo: got %q (%v), want %q", got, err, msg)
		}
	}
}

// TestMITMShutdown: a request in flight in an intercepted connection
// finishes; a CONNECT after Shutdown is not intercepted.
func TestMITMShutdown(t *testing.T) {
	release := make(chan struct{})
	started := make(chan struct{})
	rg := newMITMRig(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		close(started)
		<-release
		w.Header().Set("Content-Type", "text/html")
		io.WriteString(w, page)
	}), nil)
	c := rg.client(rg.ca.Pool())
	type result struct {
		status int
		body   string
		err    error
	}
	done := make(chan result, 1)
	go func() {
		resp, err := c.Get(rg.originURL())
		if err != nil {
			done <- result{err: err}
			return
		}
		b, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		done <- result{resp.StatusCode, string(b), err}
	}()
	<-started
	shut := make(chan error, 1)
	go func() { shut <- rg.mitm.Shutdown(context.Background()) }()
	close(release)
	r := <-done
	if r.err != nil || r.status != http.StatusOK || !strings.Contains(r.body, "recorder.js") {
		t.Fatalf("request in flight during Shutdown: %d %q %v", r.status, r.body, r.err)
	}
	if err := <-shut; err != nil {
		t.Fatalf("Shutdown: %v", err)
	}
	c2 := rg.client(rg.ca.Pool())
	if resp, err := c2.Get(rg.originURL()); err == nil {
		resp.Body.Close()
		t.Fatalf("a request after Shutdown was served: %d", resp.StatusCode)
	}
}
