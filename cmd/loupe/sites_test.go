package main

import (
	"bufio"
	"context"
	"crypto/tls"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/loupe-dev/loupe/certs"
	"github.com/loupe-dev/loupe/collector"
)

func TestExampleSitesFile(t *testing.T) {
	example, err := os.ReadFile(filepath.Join("..", "..", "deploy", "examples", "sites.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	// Beside it, the certificate files its blog site names.
	dir := t.TempDir()
	if _, err := certs.SelfSigned(filepath.Join(dir, "certs"), []string{"blog.example.com"}, nil); err != nil {
		t.Fatal(err)
	}
	os.Rename(filepath.Join(dir, "certs", certs.SelfSignedCertFile), filepath.Join(dir, "certs", "blog.crt"))
	os.Rename(filepath.Join(dir, "certs", certs.SelfSignedKeyFile), filepath.Join(dir, "certs", "blog.key"))
	file := filepath.Join(dir, "sites.yaml")
	os.WriteFile(file, example, 0o600)
	sc, err := loadSites(file)
	if err != nil {
		t.Fatal(err)
	}
	if len(sc.Sites) != 4 {
		t.Fatalf("got %d sites, want 4", len(sc.Sites))
	}
	shop, docs, staging, blog := sc.Sites[0], sc.Sites[1], sc.Sites[3], sc.Sites[2]
	if blog.TLS == nil || blog.TLS.CertFile != filepath.Join(dir, "certs", "blog.crt") {
		t.Errorf("blog: %+v", blog.TLS)
	}
	if shop.Name != "shop" || !shop.PreserveHost || shop.Rules.Sampling != 0.25 || shop.Rules.IgnorePrivacySignals ||
		len(shop.Rules.Exclude) != 2 || len(shop.Block) != 2 || len(shop.MaskText) != 2 || !shop.Archive ||
		shop.TLS == nil || !shop.TLS.ACME {
		t.Errorf("shop: %+v", shop)
	}
	if docs.Hosts[0] != "*.docs.example.com" || docs.Upstream.Path != "/site/" || docs.Archive || docs.Rules.Sampling != 1 ||
		docs.TLS == nil || !docs.TLS.SelfSigned {
		t.Errorf("docs: %+v", docs)
	}
	if staging.Rules.Sampling != 0 || staging.TLS != nil {
		t.Errorf("staging: %+v", staging)
	}
	if !sc.HasRetention || sc.AssetRetention != 720*time.Hour || strings.Join(sc.ArchivePublic, ",") != "/static/*,/img/*/*" {
		t.Errorf("archive settings: %+v", sc)
	}
}

func TestParseSitesDefaults(t *testing.T) {
	sc, err := parseSites("sites.yaml", []byte("sites:\n  - name: a\n    hosts: [A.test.]\n    upstream: http://127.0.0.1:1\n"))
	if err != nil {
		t.Fatal(err)
	}
	s := sc.Sites[0]
	if s.Hosts[0] != "a.test" || s.Rules.Sampling != 1 || s.Rules.IgnorePrivacySignals || !s.Archive || s.PreserveHost ||
		s.TLS != nil || s.record == nil || sc.HasRetention {
		t.Errorf("defaults: %+v", s)
	}
	if !s.record(httptest.NewRequest("GET", "/", nil)) {
		t.Error("a site with defaults does not record /")
	}
	r := httptest.NewRequest("GET", "/", nil)
	r.Header.Set("Sec-GPC", "1")
	if s.record(r) {
		t.Error("a site with defaults records a visitor sending Sec-GPC: 1")
	}
}

// TestParseSitesErrors: each mistake gives exactly these lines.
func TestParseSitesErrors(t *testing.T) {
	dir := t.TempDir()
	certFile, keyFile := filepath.Join(dir, "c.pem"), filepath.Join(dir, "k.pem")
	os.WriteFile(certFile, []byte("not a certificate"), 0o600)
	os.WriteFile(keyFile, []byte("not a key"), 0o600)

	const head = "sites:\n  - name: shop\n    hosts: [shop.test]\n    upstream: http://127.0.0.1:3000\n"
	tests := []struct {
		name, yaml string
		want       []string
	}{
		{"sampling", head + "    sampling: 1.5\n",
			[]string{`sites.yaml:5: site "shop": sampling 1.5 is not between 0 and 1`}},
		{"negative sampling", head + "    sampling: -1\n",
			[]string{`sites.yaml:5: site "shop": sampling -1 is not between 0 and 1`}},
		{"sampling not a number", head + "    sampling: half\n",
			[]string{"sites.yaml:5: site \"shop\": cannot unmarshal !!str `half` into float64"}},
		{"unknown field", head + "    colour: blue\n",
			[]string{`sites.yaml:5: site "shop": unknown field "colour"`}},
		{"unknown tls field", head + "    tls:\n      certificate: x\n",
			[]string{`sites.yaml:6: site "shop": unknown field "certificate" in tls`}},
		{"unknown top field", "listen: :80\n" + head,
			[]string{`sites.yaml:1: unknown field "listen"`}},
		{"recording not a boolean", head + "    recording: sometimes\n",
			[]string{`sites.yaml:5: site "shop": "sometimes" is not on or off (true or false)`}},
		{"top-level field after the sites", head + "asset_retention: [1h]\n",
			[]string{"sites.yaml:5: cannot unmarshal !!seq into string"}},
		{"sites not a list", "sites: shop\n",
			[]string{"sites.yaml:1: cannot unmarshal !!str `shop` into a list of sites"}},
		{"site not a mapping", "sites:\n  - shop\n",
			[]string{"sites.yaml:2: site 1: cannot unmarshal !!str `shop` into a site (a mapping)"}},
		{"hosts not a list", "sites:\n  - name: a\n    hosts: a.test\n",
			[]string{"sites.yaml:3: site \"a\": cannot unmarshal !!str `a.test` into a list"}},
		{"syntax", "sites:\n  - name: [\n",
			[]string{"sites.yaml:2: did not find expected node content"}},
		{"not a mapping", "- a\n- b\n",
			[]string{"sites.yaml:1: want a mapping with a list of sites (sites:)"}},
		{"no sites", "sites: []\n",
			[]string{"sites.yaml:1: no sites: list at least one under sites:"}},
		{"missing fields", "sites:\n  - sampling: 1\n",
			[]string{
				"sites.yaml:2: site 1: name is required",
				"sites.yaml:2: site 1: hosts is required: the host names the site is served under",
				"sites.yaml:2: site 1: upstream is required: the origin URL, e.g. http://127.0.0.1:3000",
			}},
		{"bad upstream", "sites:\n  - name: a\n    hosts: [a.test]\n    upstream: localhost:3000\n",
			[]string{`sites.yaml:4: site "a": upstream "localhost:3000" is not an http:// or https:// URL`}},
		{"duplicate host", head + "  - name: other\n    hosts: [x.test, SHOP.test]\n    upstream: http://127.0.0.1:3001\n",
			[]string{`sites.yaml:6: site "other": host shop.test is already site "shop"'s`}},
		{"duplicate name", head + "  - name: shop\n    hosts: [x.test]\n    upstream: http://127.0.0.1:3001\n",
			[]string{`sites.yaml:5: site "shop": the name is already used by the site at line 2`}},
		{"host with port", "sites:\n  - name: a\n    hosts:\n      - ok.test\n      - a.test:8080\n    upstream: http://x\n",
			[]string{`sites.yaml:5: site "a": hosts: host "a.test:8080" has a port; name the host alone (every port matches)`}},
		{"bad wildcard", "sites:\n  - name: a\n    hosts: [\"*.com\"]\n    upstream: http://x\n",
			[]string{`sites.yaml:3: site "a": hosts: host "*.com" is not a host name or a wildcard such as *.example.com`}},
		{"bad glob", head + "    exclude:\n      - /ok/**\n      - checkout/**\n      - /a/[\n",
			[]string{
				`sites.yaml:7: site "shop": exclude: path glob "checkout/**" does not start with /`,
				`sites.yaml:8: site "shop": exclude: path glob "/a/[": syntax error in pattern`,
			}},
		{"bad include", head + "    include: [/a**]\n",
			[]string{`sites.yaml:5: site "shop": include: path glob "/a**": ** must be a whole path segment`}},
		{"bad block selector", head + "    block:\n      - \"#ok\"\n      - \"input[name=\"\n",
			[]string{`sites.yaml:7: site "shop": block: block selector "input[name=": unexpected EOF in attribute selector`}},
		{"cascadia-only mask selector", head + "    mask_text: [\"p:contains(x)\"]\n",
			[]string{`sites.yaml:5: site "shop": mask_text: mask text selector "p:contains(x)": :contains is a cascadia extension browsers reject`}},
		{"bad user_id", head + "    user_id:\n      - cookie:uid\n      - session:x\n",
			[]string{`sites.yaml:7: site "shop": user_id: ` + badUserRule("session:x")}},
		{"tls two ways", head + "    tls:\n      self_signed: true\n      acme: true\n",
			[]string{`sites.yaml:6: site "shop": tls: give exactly one of cert and key, self_signed: true or acme: true`}},
		{"tls cert without key", head + "    tls:\n      cert: c.pem\n",
			[]string{`sites.yaml:6: site "shop": tls: cert and key go together: give both files`}},
		{"tls bad pair", head + "    tls:\n      cert: " + certFile + "\n      key: " + keyFile + "\n",
			nil}, // the message is crypto/tls's; checked below
		{"acme wildcard", "sites:\n  - name: a\n    hosts: [\"*.a.test\", 10.0.0.1]\n    upstream: http://x\n    tls: {acme: true}\n",
			[]string{
				`sites.yaml:5: site "a": tls: acme cannot certify the wildcard *.a.test (HTTP-01 and TLS-ALPN-01 prove one name); list each name, or give cert and key`,
				`sites.yaml:5: site "a": tls: acme cannot certify the address 10.0.0.1; give cert and key`,
			}},
		{"archive_public", "archive_public: [\"static/*\"]\n" + head,
			[]string{`sites.yaml:1: archive_public: "static/*" is not a path glob such as /static/*`}},
		{"asset_retention", "asset_retention: 30d\n" + head,
			[]string{`sites.yaml:1: asset_retention "30d" is not a duration such as 720h (0 keeps assets forever)`}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := parseSites("sites.yaml", []byte(tt.yaml))
			if err == nil {
				t.Fatal("no error")
			}
			if !errors.As(err, new(usageError)) {
				t.Errorf("%T is not a usage error", err)
			}
			got := strings.Split(err.Error(), "\n")
			if tt.want == nil {
				if len(got) != 1 || !strings.HasPrefix(got[0], `sites.yaml:6: site "shop": tls: `) {
					t.Errorf("got %q", got)
				}
				return
			}
			if strings.Join(got, "\n") != strings.Join(tt.want, "\n") {
				t.Errorf("got\n  %s\nwant\n  %s", strings.Join(got, "\n  "), strings.Join(tt.want, "\n  "))
			}
		})
	}
}

func TestSitesFlagsConflict(t *testing.T) {
	file := filepath.Join(t.TempDir(), "sites.yaml")
	os.WriteFile(file, []byte("archive_public: [/s/*]\nasset_retention: 1h\nsites:\n  - name: a\n    hosts: [a.test]\n    upstream: http://127.0.0.1:1\n"), 0o600)
	for _, tt := range []struct {
		cfg  Config
		want string
	}{
		{Config{SitesFile: file, Upstream: "http://x"}, "--upstream and --config exclude each other"},
		{Config{SitesFile: file, SiteHosts: "a.test"}, "--site-host and --config exclude each other"},
		{Config{SitesFile: file, ArchivePublic: "/x/*"}, "archive_public is set both in --config and by --archive-public"},
		{Config{SitesFile: file, AssetRetention: time.Hour}, "asset_retention is set both"},
		{Config{SitesFile: file + ".missing"}, "--config: open "},
	} {
		m := &Main{Config: tt.cfg}
		if _, err := m.sites(); err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("%+v: got %v, want %q", tt.cfg, err, tt.want)
		}
	}
	m := &Main{Config: Config{SitesFile: file}}
	if _, err := m.sites(); err != nil {
		t.Fatal(err)
	}
	if m.Config.ArchivePublic != "/s/*" || m.Config.AssetRetention != time.Hour {
		t.Errorf("file's archive settings not taken: %q %v", m.Config.ArchivePublic, m.Config.AssetRetention)
	}
}

// TestSitesEndToEnd runs the real program with a two-site config: site A's
// pages are recorded with its own selectors, site B's excluded path and a
// DNT visitor get the origin's bytes, an unknown host gets 421.
func TestSitesEndToEnd(t *testing.T) {
	const page = `<!doctype html><html><head><title>t</title></head><body><p class="addr">1 Main St</p><input name="gift"></body></html>`
	origin := func(name string) *httptest.Server {
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Type", "text/html; charset=utf-8")
			w.Header().Set("X-Origin", name)
			io.WriteString(w, page)
		}))
		t.Cleanup(srv.Close)
		return srv
	}
	a, b := origin("a"), origin("b")
	file := filepath.Join(t.TempDir(), "sites.yaml")
	yaml := fmt.Sprintf(`sites:
  - name: a
    hosts: [a.test]
    upstream: %s
    block: ["input[name=gift]"]
    mask_text: [".addr"]
    user_id: ["dom:#who"]
  - name: b
    hosts: ["*.b.test"]
    upstream: %s
    exclude: ["/private/**"]
`, a.URL, b.URL)
	if err := os.WriteFile(file, []byte(yaml), 0o600); err != nil {
		t.Fatal(err)
	}
	t.Setenv("LOUPE_CONFIG", file)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	outR, outW := io.Pipe()
	done := make(chan error, 1)
	go func() {
		err := run(ctx, []string{"serve", "--listen", "127.0.0.1:0", "--admin", "127.0.0.1:0", "--data", t.TempDir()}, outW, io.Discard)
		outW.Close()
		done <- err
	}()
	sc := bufio.NewScanner(outR)
	var out strings.Builder
	proxyURL := ""
	for sc.Scan() {
		out.WriteString(sc.Text() + "\n")
		if _, u, ok := strings.Cut(sc.Text(), "sites through "); ok {
			proxyURL = u
		}
		if strings.Contains(sc.Text(), "the replay UI") {
			break
		}
	}
	go io.Copy(io.Discard, outR)
	if proxyURL == "" {
		t.Fatalf("serve did not say where the sites are; stdout %q", out.String())
	}
	for _, want := range []string{"  a: a.test → " + a.URL + ", recording", "  b: *.b.test → " + b.URL + ", recording"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("stdout %q does not list %q", out.String(), want)
		}
	}

	fetch := func(host, path string, header ...string) (*http.Response, string) {
		t.Helper()
		req, _ := http.NewRequest("GET", proxyURL+path, nil)
		req.Host = host
		for i := 0; i+1 < len(header); i += 2 {
			req.Header.Set(header[i], header[i+1])
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		body, _ := io.ReadAll(resp.Body)
		return resp, string(body)
	}

	resp, body := fetch("a.test", "/")
	if resp.Header.Get("X-Origin") != "a" || !strings.Contains(body, "data-loupe") {
		t.Fatalf("site A page not recorded: %s %q", resp.Header.Get("X-Origin"), body)
	}
	if !strings.Contains(body, `<input class="rr-block" name="gift">`) || !strings.Contains(body, "input[name=gift]") ||
		!strings.Contains(body, `&#34;maskText&#34;:&#34;.addr&#34;`) {
		t.Errorf("site A's own selectors not applied: %q", body)
	}
	if !strings.Contains(body, `&#34;user&#34;:&#34;#who&#34;`) {
		t.Errorf("site A's user_id dom rule not sent to its recorder: %q", body)
	}
	if len(resp.Cookies()) != 1 {
		t.Errorf("recorded page cookies %v, want the session cookie", resp.Cookies())
	}

	resp, body = fetch("www.b.test:80", "/shop")
	if resp.Header.Get("X-Origin") != "b" || !strings.Contains(body, "data-loupe") || strings.Contains(body, "rr-block") || strings.Contains(body, "#who") {
		t.Errorf("site B page: origin %s, body %q; want recorded with the default selectors only", resp.Header.Get("X-Origin"), body)
	}
	resp, body = fetch("www.b.test", "/private/account")
	if resp.Header.Get("X-Origin") != "b" || body != page || len(resp.Cookies()) != 0 {
		t.Errorf("site B excluded path: origin %s, cookies %v, body %q; want the origin's bytes", resp.Header.Get("X-Origin"), resp.Cookies(), body)
	}
	resp, body = fetch("a.test", "/", "DNT", "1")
	if body != page || len(resp.Cookies()) != 0 {
		t.Errorf("DNT visitor: cookies %v, body %q; want the origin's bytes", resp.Cookies(), body)
	}
	resp, body = fetch("a.test", "/", "Sec-GPC", "1")
	if body != page {
		t.Errorf("GPC visitor got %q; want the origin's bytes", body)
	}
	resp, body = fetch("c.test", "/")
	if resp.StatusCode != http.StatusMisdirectedRequest || strings.Contains(body, "<html") {
		t.Errorf("unknown host: %d %q, want 421", resp.StatusCode, body)
	}
	// The recorder itself is served on each site.
	if resp, _ := fetch("x.b.test", "/__loupe/recorder.js"); resp.StatusCode != http.StatusOK && resp.StatusCode != http.StatusServiceUnavailable {
		t.Errorf("recorder.js on site B: %d", resp.StatusCode)
	}

	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("serve returned %v", err)
		}
	case <-time.After(15 * time.Second):
		t.Fatal("serve did not stop")
	}
}

func TestRunConfigErrors(t *testing.T) {
	file := filepath.Join(t.TempDir(), "sites.yaml")
	os.WriteFile(file, []byte("sites:\n  - name: shop\n    hosts: [shop.test]\n    upstream: http://127.0.0.1:1\n    sampling: 1.5\n"), 0o600)
	err := run(context.Background(), []string{"proxy", "--config", file, "--data", t.TempDir(), "--listen", "127.0.0.1:0"}, io.Discard, io.Discard)
	want := file + `:5: site "shop": sampling 1.5 is not between 0 and 1`
	if err == nil || err.Error() != want || !errors.As(err, new(usageError)) {
		t.Errorf("got %v, want usage error %q", err, want)
	}
}

type wantLog struct{ urls []string }

func (w *wantLog) Want(urls []string) { w.urls = append(w.urls, urls...) }

func TestAssetWanterSkipsSitesNotArchiving(t *testing.T) {
	sc, err := parseSites("sites.yaml", []byte(`sites:
  - name: a
    hosts: [a.test]
    upstream: http://127.0.0.1:1
  - name: b
    hosts: [b.test, "*.b.test"]
    upstream: http://127.0.0.1:2
    archive: off
`))
	if err != nil {
		t.Fatal(err)
	}
	var log wantLog
	w := assetWanter(sc.Sites, &log)
	w.Want([]string{"http://a.test/s.css", "http://b.test/s.css", "https://cdn.b.test:8443/f.woff2", "https://cdn.example/x.png"})
	if got := strings.Join(log.urls, " "); got != "http://a.test/s.css https://cdn.example/x.png" {
		t.Errorf("fetched %q, want site a's and the CDN's only", got)
	}
	if w := assetWanter(sc.Sites[:1], &log); w != collector.AssetWanter(&log) {
		t.Errorf("with every site archiving, got %T, want the archiver itself", w)
	}
}

// TestSitesInChromium: in a real browser, two sites behind one Loupe by
// host name are each recorded as their own session, under their own
// host, and a page of an excluded path runs no recorder.
func TestSitesInChromium(t *testing.T) {
	chromium := requireBrowser(t)
	origin := func(title string) string {
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Type", "text/html; charset=utf-8")
			fmt.Fprintf(w, `<!doctype html><html><head><title>%s</title></head><body><h1>%s %s</h1><button>ok</button></body></html>`, title, title, r.URL.Path)
		}))
		t.Cleanup(srv.Close)
		return srv.URL
	}
	file := filepath.Join(t.TempDir(), "sites.yaml")
	os.WriteFile(file, []byte(fmt.Sprintf(`sites:
  - name: a
    hosts: [a.test]
    upstream: %s
  - name: b
    hosts: ["*.b.test"]
    upstream: %s
    exclude: ["/private/**"]
`, origin("Site A"), origin("Site B"))), 0o600)
	m := &Main{
		Config: Config{SitesFile: file, Listen: "127.0.0.1:0", Admin: "127.0.0.1:0", Data: t.TempDir()},
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil)),
	}
	if err := m.Open(context.Background()); err != nil {
		m.Close()
		t.Fatal(err)
	}
	t.Cleanup(func() { m.Close() })
	signIn(t, m)
	_, port, _ := net.SplitHostPort(strings.TrimPrefix(m.ProxyURL, "http://"))

	opts := []chromedp.ExecAllocatorOption{
		chromedp.ExecPath(chromium),
		chromedp.Headless, chromedp.NoSandbox, chromedp.DisableGPU,
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("no-first-run", true),
		chromedp.Flag("host-resolver-rules", "MAP a.test 127.0.0.1, MAP *.b.test 127.0.0.1"),
		chromedp.UserDataDir(t.TempDir()),
	}
	actx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	ctx, cancel := chromedp.NewContext(actx)
	t.Cleanup(func() { cancel(); cancelAlloc() })
	if err := chromedp.Do(ctx); err != nil { // start the browser outside any step's timeout
		t.Fatalf("start chromium: %v", err)
	}

	recorderRuns := func(url string) bool {
		t.Helper()
		do(t, ctx, "open "+url, chromedp.Navigate(url), chromedp.WaitVisible(chromedp.CSS("h1")))
		ok, err := chromedp.Run(ctx, chromedp.Poll[bool]("!!(window.__loupe && window.__loupe.pv)", chromedp.WithPollingTimeout(3*time.Second)))
		return err == nil && ok
	}
	a := "http://a.test:" + port
	b := "http://www.b.test:" + port
	if !recorderRuns(a + "/") {
		t.Fatal("no recorder on site A")
	}
	do(t, ctx, "click", chromedp.Click(chromedp.CSS("button")), chromedp.Sleep(300*time.Millisecond))
	if recorderRuns(b + "/private/account") {
		t.Error("a recorder runs on site B's excluded path")
	}
	if !recorderRuns(b + "/") {
		t.Fatal("no recorder on site B")
	}
	do(t, ctx, "leave", chromedp.Sleep(300*time.Millisecond), chromedp.Navigate("about:blank"))

	deadline := time.Now().Add(20 * time.Second)
	for {
		var list struct{ Sessions []apiSession }
		getJSON(t, m.AdminURL+"/api/sessions", &list)
		var entries []string
		for _, s := range list.Sessions {
			entries = append(entries, s.EntryURL)
		}
		slices.Sort(entries)
		if len(entries) == 2 && entries[0] == a+"/" && entries[1] == b+"/" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("sessions entered at %q, want one at %s/ and one at %s/", entries, a, b)
		}
		time.Sleep(250 * time.Millisecond)
	}
}

// TestSitesTLS: the sites' tls blocks feed the TLS listener: each site's
// certificate by server name, and the router behind it by Host.
func TestSitesTLS(t *testing.T) {
	origin := func(name string) string {
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Type", "text/html")
			fmt.Fprintf(w, "<html><head></head><body>%s</body></html>", name)
		}))
		t.Cleanup(srv.Close)
		return srv.URL
	}
	dir := t.TempDir()
	if _, err := certs.SelfSigned(filepath.Join(dir, "a"), []string{"a.test"}, nil); err != nil {
		t.Fatal(err)
	}
	file := filepath.Join(dir, "sites.yaml")
	os.WriteFile(file, []byte(fmt.Sprintf(`sites:
  - name: a
    hosts: [a.test]
    upstream: %s
    tls:
      cert: a/%s
      key: a/%s
  - name: b
    hosts: [b.test]
    upstream: %s
    tls: {self_signed: on}
`, origin("site a"), certs.SelfSignedCertFile, certs.SelfSignedKeyFile, origin("site b"))), 0o600)
	m := &Main{
		Config: Config{SitesFile: file, Listen: "127.0.0.1:0", Admin: "127.0.0.1:0", Data: t.TempDir(),
			TLS: TLSConfig{Listen: "127.0.0.1:0"}},
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil)),
	}
	if err := m.Open(context.Background()); err != nil {
		m.Close()
		t.Fatal(err)
	}
	t.Cleanup(func() { m.Close() })
	if m.ProxyTLSURL == "" {
		t.Fatal("no TLS listener for sites with tls blocks")
	}
	for _, name := range []string{"a", "b"} {
		host := name + ".test"
		var leafNames []string
		client := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{
			ServerName: host, InsecureSkipVerify: true,
			VerifyConnection: func(cs tls.ConnectionState) error {
				leafNames = cs.PeerCertificates[0].DNSNames
				return nil
			},
		}}}
		req, _ := http.NewRequest("GET", m.ProxyTLSURL+"/", nil)
		req.Host = host
		resp, err := client.Do(req)
		if err != nil {
			t.Fatalf("%s over TLS: %v", host, err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if !slices.Contains(leafNames, host) {
			t.Errorf("%s: certificate names %q", host, leafNames)
		}
		if !strings.Contains(string(body), "site "+name) || !strings.Contains(string(body), "data-loupe") {
			t.Errorf("%s over TLS: %d %q, want its site's page, recorded", host, resp.StatusCode, body)
		}
	}
}

// TestPrivacySignalsFlag: without --config the one site honours DNT and GPC
// too, unless --honor-privacy-signals=false; with --config the flag is the
// default of sites that do not say.
func TestPrivacySignalsFlag(t *testing.T) {
	const page = "<html><head></head><body>hi</body></html>"
	origin := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/html")
		io.WriteString(w, page)
	}))
	defer origin.Close()
	file := filepath.Join(t.TempDir(), "sites.yaml")
	os.WriteFile(file, []byte(`sites:
  - name: says
    hosts: [says.test]
    upstream: `+origin.URL+`
    honor_privacy_signals: on
  - name: silent
    hosts: [silent.test]
    upstream: `+origin.URL+`
`), 0o600)
	for _, tc := range []struct {
		name   string
		args   []string
		host   string
		record bool // a DNT visitor's page is recorded
	}{
		{"flags default", []string{"--upstream", origin.URL}, "", false},
		{"flags off", []string{"--upstream", origin.URL, "--honor-privacy-signals=false"}, "", true},
		{"config default", []string{"--config", file}, "silent.test", false},
		{"config, flag off, site silent", []string{"--config", file, "--honor-privacy-signals=false"}, "silent.test", true},
		{"config, flag off, site says", []string{"--config", file, "--honor-privacy-signals=false"}, "says.test", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var cfg Config
			fs := flag.NewFlagSet("loupe proxy", flag.ContinueOnError)
			if err := cfg.flags(fs, allRoles); err != nil {
				t.Fatal(err)
			}
			if err := fs.Parse(append(tc.args, "--listen", "127.0.0.1:0", "--admin", "127.0.0.1:0", "--data", t.TempDir(), "--archive=false")); err != nil {
				t.Fatal(err)
			}
			m := &Main{Config: cfg, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))}
			if err := m.Open(context.Background()); err != nil {
				m.Close()
				t.Fatal(err)
			}
			defer m.Close()
			req, _ := http.NewRequest("GET", m.ProxyURL+"/", nil)
			if tc.host != "" {
				req.Host = tc.host
			}
			req.Header.Set("DNT", "1")
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if got := strings.Contains(string(body), "data-loupe"); got != tc.record || (!got && string(body) != page) {
				t.Errorf("DNT visitor: body %q; want recorded %v", body, tc.record)
			}
		})
	}
}

// badUserRule is collector.ParseUserRules' message for spec.
func badUserRule(spec string) string {
	_, err := collector.ParseUserRules(spec)
	if err == nil {
		panic(spec + " parses")
	}
	return err.Error()
}
