package main

import (
	"bytes"
	"context"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"encoding/pem"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/loupe-dev/loupe/certs"
)

func TestCertsCommand(t *testing.T) {
	ctx := context.Background()
	data := t.TempDir()
	var out, errOut bytes.Buffer
	if err := run(ctx, []string{"certs", "export", "--data", data}, &out, &errOut); err == nil || !strings.Contains(err.Error(), "certs init") {
		t.Fatalf("export before init: got %v, want a hint to run certs init", err)
	}
	if err := run(ctx, []string{"certs", "init", "--data", data}, &out, &errOut); err != nil {
		t.Fatal(err)
	}
	fi, err := os.Stat(filepath.Join(data, certs.CAKeyFile))
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("CA key: %v, mode %v; want 0600", err, fi.Mode().Perm())
	}
	if err := run(ctx, []string{"certs", "init", "--data", data}, &out, &errOut); !errors.Is(err, certs.ErrCAExists) {
		t.Fatalf("second init: got %v, want ErrCAExists", err)
	}
	out.Reset()
	if err := run(ctx, []string{"certs", "export", "--data", data}, &out, &errOut); err != nil {
		t.Fatal(err)
	}
	blk, rest := pem.Decode(out.Bytes())
	if blk == nil || blk.Type != "CERTIFICATE" || len(bytes.TrimSpace(rest)) != 0 {
		t.Fatalf("export printed %q, want one PEM certificate", out.String())
	}
	ca, err := x509.ParseCertificate(blk.Bytes)
	if err != nil || !ca.IsCA {
		t.Fatalf("exported certificate: %v, CA %v", err, ca != nil && ca.IsCA)
	}
	if err := run(ctx, []string{"certs", "renew"}, &out, &errOut); !errors.As(err, new(usageError)) {
		t.Errorf("unknown certs command: got %v, want a usage error", err)
	}
	if err := run(ctx, []string{"mitm", "--data", data}, &out, &errOut); !errors.As(err, new(usageError)) {
		t.Errorf("mitm without --record-host: got %v, want a usage error", err)
	}
}

// mitmRig is `loupe mitm` recording example.com, which resolves (through
// the MITM's dialer) to a TLS origin whose CA is given by --upstream-ca.
type mitmRig struct {
	m       *Main
	origin  *httptest.Server
	pageURL string // https://example.com:<port>/
	caPEM   []byte
}

func startMITM(t *testing.T, handler http.Handler) *mitmRig {
	t.Helper()
	data := t.TempDir()
	if _, err := certs.InitCA(data, nil); err != nil {
		t.Fatal(err)
	}
	origin := httptest.NewTLSServer(handler)
	t.Cleanup(origin.Close)
	upstreamCA := filepath.Join(t.TempDir(), "origin-ca.pem")
	os.WriteFile(upstreamCA, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: origin.Certificate().Raw}), 0o644)
	ou, _ := url.Parse(origin.URL)
	named := "example.com:" + ou.Port()
	var d net.Dialer
	m := &Main{
		Config: Config{Listen: "127.0.0.1:0", Admin: "127.0.0.1:0", Data: data},
		Roles:  allRoles,
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil)),
	}
	mitm, err := m.openMITM(context.Background(), mitmOptions{
		Record:     []string{"example.com"},
		UpstreamCA: upstreamCA,
		dial: func(ctx context.Context, network, addr string) (net.Conn, error) {
			if addr == named {
				addr = ou.Host
			}
			return d.DialContext(ctx, network, addr)
		},
	})
	if err != nil {
		m.Close()
		t.Fatal(err)
	}
	t.Cleanup(func() { mitm.Close(); m.Close() })
	signIn(t, m)
	ca, err := certs.LoadCA(data)
	if err != nil {
		t.Fatal(err)
	}
	return &mitmRig{m: m, origin: origin, pageURL: "https://" + named + "/", caPEM: ca.PEM}
}

const mitmPage = `<!doctype html><html><head><title>Lab</title></head><body>
<h1>Lab shop</h1><button id="buy" onclick="this.textContent='bought'">Buy</button></body></html>`

func servePage(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	io.WriteString(w, mitmPage)
}

// TestMITMCommandServes: a client using `loupe mitm` as its proxy and
// trusting the exported CA gets the recorded host's page injected, under a
// leaf of that CA; without --upstream-ca the origin's test certificate is
// refused.
func TestMITMCommandServes(t *testing.T) {
	rg := startMITM(t, http.HandlerFunc(servePage))
	roots := x509.NewCertPool()
	roots.AppendCertsFromPEM(rg.caPEM)
	pu, _ := url.Parse(rg.m.ProxyURL)
	c := &http.Client{Transport: &http.Transport{Proxy: http.ProxyURL(pu), TLSClientConfig: &tls.Config{RootCAs: roots}}}
	resp, err := c.Get(rg.pageURL)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || !strings.Contains(string(body), "recorder.js") {
		t.Fatalf("got %d %q, want the injected page", resp.StatusCode, body)
	}
	if _, err := resp.TLS.PeerCertificates[0].Verify(x509.VerifyOptions{DNSName: "example.com", Roots: roots}); err != nil {
		t.Fatalf("leaf does not verify against the exported CA: %v", err)
	}

	// The same origin without --upstream-ca: its certificate is untrusted.
	data := t.TempDir()
	certs.InitCA(data, nil)
	m := &Main{Config: Config{Listen: "127.0.0.1:0", Admin: "127.0.0.1:0", Data: data}, Roles: allRoles,
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil))}
	ou, _ := url.Parse(rg.origin.URL)
	mitm, err := m.openMITM(context.Background(), mitmOptions{Record: []string{"example.com"},
		dial: func(ctx context.Context, network, addr string) (net.Conn, error) {
			return (&net.Dialer{}).DialContext(ctx, network, ou.Host)
		}})
	if err != nil {
		m.Close()
		t.Fatal(err)
	}
	defer func() { mitm.Close(); m.Close() }()
	ca, _ := certs.LoadCA(data)
	pu, _ = url.Parse(m.ProxyURL)
	c = &http.Client{Transport: &http.Transport{Proxy: http.ProxyURL(pu), TLSClientConfig: &tls.Config{RootCAs: ca.Pool()}}}
	resp, err = c.Get(rg.pageURL)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusBadGateway {
		t.Fatalf("untrusted upstream: got %d, want 502", resp.StatusCode)
	}
}

// TestMITMRecordsInChromium: a test browser whose proxy is `loupe mitm`
// and which accepts Loupe's CA visits a recorded host over HTTPS; the
// recorder runs, its batches reach the collector in process through the
// host's own /__loupe/ingest, and the session is stored under the host's
// URL.
func TestMITMRecordsInChromium(t *testing.T) {
	chromium := requireBrowser(t)
	rg := startMITM(t, http.HandlerFunc(servePage))
	blk, _ := pem.Decode(rg.caPEM)
	ca, _ := x509.ParseCertificate(blk.Bytes)
	spki := sha256.Sum256(ca.RawSubjectPublicKeyInfo)

	opts := []chromedp.ExecAllocatorOption{
		chromedp.ExecPath(chromium),
		chromedp.Headless, chromedp.NoSandbox, chromedp.DisableGPU,
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.Flag("no-first-run", true),
		chromedp.Flag("disable-quic", true),
		chromedp.ProxyServer(rg.m.ProxyURL),
		// Trust exactly Loupe's CA, as a person would by installing it in
		// a test profile.
		chromedp.Flag("ignore-certificate-errors-spki-list", base64.StdEncoding.EncodeToString(spki[:])),
		chromedp.UserDataDir(t.TempDir()),
	}
	actx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	ctx, cancel := chromedp.NewContext(actx)
	t.Cleanup(func() { cancel(); cancelAlloc() })
	if err := chromedp.Do(ctx); err != nil { // start the browser in ctx, not in a step's
		t.Fatalf("start chromium: %v", err)
	}

	do(t, ctx, "open the recorded host", chromedp.Navigate(rg.pageURL), chromedp.WaitVisible(chromedp.CSS("#buy")))
	recording, err := chromedp.Run(ctx, chromedp.Poll[bool]("!!(window.__loupe && window.__loupe.pv)", chromedp.WithPollingTimeout(10*time.Second)))
	if err != nil || !recording {
		t.Fatalf("recorder did not start behind the MITM: %v", err)
	}
	do(t, ctx, "click and leave",
		chromedp.Click(chromedp.CSS("#buy")),
		chromedp.Sleep(300*time.Millisecond),
		chromedp.Navigate("about:blank"),
	)
	deadline := time.Now().Add(15 * time.Second)
	for {
		var list struct{ Sessions []apiSession }
		getJSON(t, rg.m.AdminURL+"/api/sessions", &list)
		if len(list.Sessions) == 1 && list.Sessions[0].ClickCount >= 1 {
			if s := list.Sessions[0]; s.EntryURL != rg.pageURL {
				t.Errorf("entry_url %q, want %q", s.EntryURL, rg.pageURL)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("sessions after 15 s: %+v; want one with a click", list.Sessions)
		}
		time.Sleep(250 * time.Millisecond)
	}

	// The network log has the page, as behind the reverse proxy, and
	// none of Loupe's own routes.
	var list struct{ Sessions []apiSession }
	getJSON(t, rg.m.AdminURL+"/api/sessions", &list)
	page, _ := url.Parse(rg.pageURL)
	for {
		var reqs []apiRequest
		getJSON(t, rg.m.AdminURL+"/api/sessions/"+list.Sessions[0].ID+"/requests", &reqs)
		var found bool
		for _, r := range reqs {
			if strings.HasPrefix(r.URL, "/__loupe/") {
				t.Errorf("Loupe's own route %s is in the network log", r.URL)
			}
			found = found || (r.URL == page.RequestURI() && r.Method == "GET" && r.Status == 200 && r.PageViewID != "")
		}
		if found {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("network log after 15 s: %+v; want GET %s 200 with its page view", reqs, page.RequestURI())
		}
		time.Sleep(250 * time.Millisecond)
	}
}
