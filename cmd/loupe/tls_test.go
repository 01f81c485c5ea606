package main

import (
	"context"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"encoding/pem"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/loupe-dev/loupe/certs"
)

const tlsPage = `<!doctype html><html><head><title>Shop</title></head><body><h1>Fresh roasts</h1></body></html>`

// startTLSLoupe runs the proxy role in front of a page-serving origin with
// cfg's TLS settings; add may register sites' certificates first.
func startTLSLoupe(t *testing.T, tc TLSConfig, add func(*Main)) (*Main, *atomic.Int64) {
	t.Helper()
	var hits atomic.Int64
	origin := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hits.Add(1)
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		io.WriteString(w, tlsPage)
	}))
	t.Cleanup(origin.Close)
	tc.Listen = "127.0.0.1:0"
	m := &Main{
		Config: Config{Upstream: origin.URL, Listen: "127.0.0.1:0", Data: t.TempDir(), NoArchive: true, TLS: tc},
		Roles:  roleProxy,
		Logger: slog.New(slog.DiscardHandler),
	}
	if add != nil {
		add(m)
	}
	if err := m.Open(context.Background()); err != nil {
		m.Close()
		t.Fatal(err)
	}
	t.Cleanup(func() { m.Close() })
	return m, &hits
}

// poolOf returns a pool of the PEM certificates in file.
func poolOf(t *testing.T, file string) *x509.CertPool {
	t.Helper()
	b, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	p := x509.NewCertPool()
	if !p.AppendCertsFromPEM(b) {
		t.Fatalf("%s holds no certificate", file)
	}
	return p
}

// TestTLSHTTP2: with a self-signed certificate the proxy speaks HTTP/2 to
// a client that offers it (and HTTP/1.1 to one that does not), and the
// page is injected either way.
func TestTLSHTTP2(t *testing.T) {
	m, _ := startTLSLoupe(t, TLSConfig{SelfSigned: true}, nil)
	if !strings.HasPrefix(m.ProxyTLSURL, "https://127.0.0.1:") {
		t.Fatalf("ProxyTLSURL %q", m.ProxyTLSURL)
	}
	roots := poolOf(t, filepath.Join(m.Config.Data, certs.SelfSignedCertFile))
	for _, tc := range []struct {
		name      string
		transport *http.Transport
		proto     int
	}{
		{"h2", &http.Transport{TLSClientConfig: &tls.Config{RootCAs: roots}, ForceAttemptHTTP2: true}, 2},
		{"http/1.1", &http.Transport{TLSClientConfig: &tls.Config{RootCAs: roots}, TLSNextProto: map[string]func(string, *tls.Conn) http.RoundTripper{}}, 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			defer tc.transport.CloseIdleConnections()
			resp, err := (&http.Client{Transport: tc.transport}).Get(m.ProxyTLSURL + "/")
			if err != nil {
				t.Fatal(err)
			}
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.ProtoMajor != tc.proto {
				t.Errorf("got %s, want HTTP/%d", resp.Proto, tc.proto)
			}
			if resp.StatusCode != http.StatusOK || !strings.Contains(string(body), "recorder.js") || !strings.Contains(string(body), "Fresh roasts") {
				t.Errorf("got %d %q, want the injected page", resp.StatusCode, body)
			}
			if c := resp.Header.Get("Set-Cookie"); !strings.Contains(c, "Secure") {
				t.Errorf("Set-Cookie %q over TLS, want Secure", c)
			}
		})
	}
	// The plain listener still serves the site.
	resp, err := http.Get(m.ProxyURL + "/")
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("plain listener: %v %v", resp, err)
	}
	resp.Body.Close()
}

// TestTLSSitesSNI: sites' certificates are picked by server name; a name
// no site claims gets the default (--tls-self-signed) certificate.
func TestTLSSitesSNI(t *testing.T) {
	dir := t.TempDir()
	files := map[string][2]string{}
	for _, name := range []string{"a.test", "b.test"} {
		sub := filepath.Join(dir, name)
		if _, err := certs.SelfSigned(sub, []string{name}, nil); err != nil {
			t.Fatal(err)
		}
		files[name] = [2]string{filepath.Join(sub, certs.SelfSignedCertFile), filepath.Join(sub, certs.SelfSignedKeyFile)}
	}
	m, _ := startTLSLoupe(t, TLSConfig{SelfSigned: true}, func(m *Main) {
		for name, f := range files {
			if err := m.AddSiteTLS([]string{name}, SiteTLS{CertFile: f[0], KeyFile: f[1]}); err != nil {
				t.Fatal(err)
			}
		}
		if err := m.AddSiteTLS([]string{"*.c.test"}, SiteTLS{SelfSigned: true}); err != nil {
			t.Fatal(err)
		}
		if err := m.AddSiteTLS([]string{"d.test"}, SiteTLS{SelfSigned: true, ACME: true}); err == nil {
			t.Error("a tls block with two sources was accepted")
		}
	})
	addr := strings.TrimPrefix(m.ProxyTLSURL, "https://")
	for _, tc := range []struct{ sni, wantName string }{
		{"a.test", "a.test"},
		{"b.test", "b.test"},
		{"shop.c.test", "*.c.test"},
		{"other.test", "localhost"},
	} {
		conn, err := tls.Dial("tcp", addr, &tls.Config{ServerName: tc.sni, InsecureSkipVerify: true})
		if err != nil {
			t.Fatalf("%s: %v", tc.sni, err)
		}
		leaf := conn.ConnectionState().PeerCertificates[0]
		conn.Close()
		found := false
		for _, n := range leaf.DNSNames {
			found = found || n == tc.wantName
		}
		if !found {
			t.Errorf("SNI %s: certificate for %q, want one naming %s", tc.sni, leaf.DNSNames, tc.wantName)
		}
	}
}

func TestTLSRedirect(t *testing.T) {
	m, hits := startTLSLoupe(t, TLSConfig{SelfSigned: true, Redirect: true}, nil)
	noFollow := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	resp, err := noFollow.Get(m.ProxyURL + "/cart?x=1")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if want := m.ProxyTLSURL + "/cart?x=1"; resp.StatusCode != http.StatusPermanentRedirect || resp.Header.Get("Location") != want {
		t.Fatalf("got %d to %q, want 308 to %q", resp.StatusCode, resp.Header.Get("Location"), want)
	}
	resp, err = noFollow.Get(m.ProxyURL + "/__loupe/healthz")
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("health probe on the plain listener: %v %v", resp, err)
	}
	resp.Body.Close()
	if hits.Load() != 0 {
		t.Fatalf("the origin saw %d requests, want none", hits.Load())
	}
}

// TestTLSACME: with --acme the plain listener answers the CA's HTTP-01
// challenges for the site's hosts and proxies everything else, the TLS
// listener offers acme-tls/1 for TLS-ALPN-01, and the account and
// certificates live in the data folder. No CA is reached: there is no
// network here.
func TestTLSACME(t *testing.T) {
	var m *Main
	m, hits := startTLSLoupe(t, TLSConfig{ACME: true, ACMEEmail: "ops@shop.example"}, func(mm *Main) {
		mm.Config.SiteHosts = "shop.example"
	})
	get := func(host, path string) int {
		req, _ := http.NewRequest(http.MethodGet, m.ProxyURL+path, nil)
		req.Host = host
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	if got := get("shop.example", "/.well-known/acme-challenge/token"); got != http.StatusNotFound || hits.Load() != 0 {
		t.Errorf("challenge: got %d (origin saw %d), want autocert's 404 for an unknown token", got, hits.Load())
	}
	if got := get("shop.example", "/"); got != http.StatusOK || hits.Load() != 1 {
		t.Errorf("page on the plain listener: got %d, want it proxied", got)
	}
	cfg := m.tls.mgr.TLSConfig()
	if cfg.NextProtos[0] != "h2" || cfg.NextProtos[len(cfg.NextProtos)-1] != "acme-tls/1" {
		t.Errorf("NextProtos %q, want h2 first and acme-tls/1", cfg.NextProtos)
	}
	a := m.tls.acme[acmeKey{"", "ops@shop.example"}]
	if a == nil || !a.Serves("shop.example") || a.Serves("evil.example") {
		t.Fatal("the ACME source does not serve exactly --site-host")
	}
	// A handshake for a host that is not the site's fails without asking
	// the CA.
	conn, err := tls.Dial("tcp", strings.TrimPrefix(m.ProxyTLSURL, "https://"), &tls.Config{ServerName: "evil.example", InsecureSkipVerify: true})
	if err == nil {
		conn.Close()
		t.Fatal("handshake for an unconfigured host succeeded")
	}
}

func TestTLSFlagErrors(t *testing.T) {
	dir := t.TempDir()
	if _, err := certs.SelfSigned(dir, nil, nil); err != nil {
		t.Fatal(err)
	}
	cert, key := filepath.Join(dir, certs.SelfSignedCertFile), filepath.Join(dir, certs.SelfSignedKeyFile)
	for _, tc := range []struct {
		name string
		tls  TLSConfig
	}{
		{"cert without key", TLSConfig{CertFile: cert}},
		{"cert and self-signed", TLSConfig{CertFile: cert, KeyFile: key, SelfSigned: true}},
		{"missing cert file", TLSConfig{CertFile: cert + ".none", KeyFile: key}},
		{"acme without hosts", TLSConfig{ACME: true}},
	} {
		m := &Main{Config: Config{Data: t.TempDir(), TLS: tc.tls}}
		err := m.tlsFromFlags()
		if !errors.As(err, new(usageError)) {
			t.Errorf("%s: got %v, want a usage error", tc.name, err)
		}
	}
	// --tls-cert files work.
	m := &Main{Config: Config{Data: t.TempDir(), TLS: TLSConfig{CertFile: cert, KeyFile: key}}}
	if err := m.tlsFromFlags(); err != nil || m.tls.mgr.Empty() {
		t.Fatalf("--tls-cert: %v", err)
	}
	b, _ := os.ReadFile(cert)
	blk, _ := pem.Decode(b)
	c, err := m.tls.mgr.GetCertificate(&tls.ClientHelloInfo{ServerName: "any.example"})
	if err != nil || string(c.Certificate[0]) != string(blk.Bytes) {
		t.Fatalf("--tls-cert not served: %v", err)
	}
}

// TestTLSChromiumHTTP2: Chromium, accepting the self-signed certificate,
// loads the site over HTTP/2 through the TLS listener, the recorder runs,
// and the session is stored under the https URL.
func TestTLSChromiumHTTP2(t *testing.T) {
	chromium := requireBrowser(t)
	origin := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		io.WriteString(w, `<!doctype html><html><head><title>Shop</title></head><body><h1>Fresh roasts</h1><button id="buy">Buy</button></body></html>`)
	}))
	defer origin.Close()
	m := &Main{
		Config: Config{Upstream: origin.URL, Listen: "127.0.0.1:0", Admin: "127.0.0.1:0", Data: t.TempDir(),
			TLS: TLSConfig{Listen: "127.0.0.1:0", SelfSigned: true}},
		Logger: slog.New(slog.DiscardHandler),
	}
	if err := m.Open(context.Background()); err != nil {
		m.Close()
		t.Fatal(err)
	}
	defer m.Close()
	signIn(t, m)
	b, err := os.ReadFile(filepath.Join(m.Config.Data, certs.SelfSignedCertFile))
	if err != nil {
		t.Fatal(err)
	}
	blk, _ := pem.Decode(b)
	cert, err := x509.ParseCertificate(blk.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	spki := sha256.Sum256(cert.RawSubjectPublicKeyInfo)
	opts := []chromedp.ExecAllocatorOption{
		chromedp.ExecPath(chromium),
		chromedp.Headless, chromedp.NoSandbox, chromedp.DisableGPU,
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("no-first-run", true),
		chromedp.Flag("disable-quic", true),
		// The exception a person makes for the self-signed certificate.
		chromedp.Flag("ignore-certificate-errors-spki-list", base64.StdEncoding.EncodeToString(spki[:])),
		chromedp.UserDataDir(t.TempDir()),
	}
	actx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	defer cancelAlloc()
	ctx, cancel := chromedp.NewContext(actx)
	defer cancel()
	if err := chromedp.Do(ctx); err != nil {
		t.Fatalf("start chromium: %v", err)
	}
	do(t, ctx, "open the site over TLS", chromedp.Navigate(m.ProxyTLSURL+"/"), chromedp.WaitVisible(chromedp.CSS("#buy")))
	proto, err := chromedp.Run(ctx, chromedp.Evaluate[string](`performance.getEntriesByType("navigation")[0].nextHopProtocol`))
	if err != nil || proto != "h2" {
		t.Fatalf("page loaded over %q (%v), want h2", proto, err)
	}
	recording, err := chromedp.Run(ctx, chromedp.Poll[bool]("!!(window.__loupe && window.__loupe.pv)", chromedp.WithPollingTimeout(10*time.Second)))
	if err != nil || !recording {
		t.Fatalf("recorder did not start over TLS: %v", err)
	}
	do(t, ctx, "click and leave", chromedp.Click(chromedp.CSS("#buy")), chromedp.Sleep(300*time.Millisecond), chromedp.Navigate("about:blank"))
	deadline := time.Now().Add(15 * time.Second)
	for {
		var list struct{ Sessions []apiSession }
		getJSON(t, m.AdminURL+"/api/sessions", &list)
		if len(list.Sessions) == 1 && list.Sessions[0].ClickCount >= 1 {
			if got := list.Sessions[0].EntryURL; got != m.ProxyTLSURL+"/" {
				t.Errorf("entry_url %q, want %q", got, m.ProxyTLSURL+"/")
			}
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("sessions after 15 s: %+v; want one with a click", list.Sessions)
		}
		time.Sleep(250 * time.Millisecond)
	}
}
