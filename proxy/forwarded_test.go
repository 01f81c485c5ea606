package proxy

import (
	"context"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"net/url"
	"strings"
	"sync"
	"testing"
)

// headerOrigin answers every request after keeping its Host and headers.
type headerOrigin struct {
	mu     sync.Mutex
	host   string
	header http.Header
	serve  func(w http.ResponseWriter, r *http.Request) // optional
}

func (o *headerOrigin) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	o.mu.Lock()
	o.host, o.header = r.Host, r.Header.Clone()
	o.mu.Unlock()
	if o.serve != nil {
		o.serve(w, r)
	}
}

func (o *headerOrigin) seen() (string, http.Header) {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.host, o.header
}

func TestForwardedHeaders(t *testing.T) {
	loopback := []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")}
	elsewhere := []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8")}
	forged := map[string]string{
		"X-Forwarded-For":   "198.51.100.9",
		"X-Forwarded-Host":  "evil.example",
		"X-Forwarded-Proto": "https",
		"Forwarded":         "for=198.51.100.9;host=evil.example;proto=https",
	}
	tests := []struct {
		name    string
		trusted []netip.Prefix
		sent    map[string]string
		// In wants, HOST stands for the proxy's own host:port, as the
		// test client sends it.
		wantXFF, wantHost, wantProto, wantForwarded string
	}{
		{
			name: "no trusted proxies: a client's headers are replaced", sent: forged,
			wantXFF: "127.0.0.1", wantHost: "HOST", wantProto: "http",
			wantForwarded: `for=127.0.0.1;host="HOST";proto=http`,
		},
		{
			name: "peer outside the trusted ranges: replaced", trusted: elsewhere, sent: forged,
			wantXFF: "127.0.0.1", wantHost: "HOST", wantProto: "http",
			wantForwarded: `for=127.0.0.1;host="HOST";proto=http`,
		},
		{
			name: "nothing sent", trusted: loopback,
			wantXFF: "127.0.0.1", wantHost: "HOST", wantProto: "http",
			wantForwarded: `for=127.0.0.1;host="HOST";proto=http`,
		},
		{
			name: "trusted balancer's X-Forwarded-*: kept, this hop appended", trusted: loopback,
			sent: map[string]string{
				"X-Forwarded-For":   "203.0.113.7, 10.0.0.2",
				"X-Forwarded-Host":  "shop.example",
				"X-Forwarded-Proto": "https",
			},
			wantXFF: "203.0.113.7, 10.0.0.2, 127.0.0.1", wantHost: "shop.example", wantProto: "https",
			wantForwarded: `for=203.0.113.7, for=10.0.0.2, for=127.0.0.1;host="HOST";proto=http`,
		},
		{
			name: "trusted balancer's Forwarded: kept, and X-Forwarded-* made from it", trusted: loopback,
			sent: map[string]string{
				"Forwarded": `for="[2001:db8::1]:4711";host=shop.example;proto=https, for=10.0.0.2`,
			},
			wantXFF: "2001:db8::1, 10.0.0.2, 127.0.0.1", wantHost: "shop.example", wantProto: "https",
			wantForwarded: `for="[2001:db8::1]:4711";host=shop.example;proto=https, for=10.0.0.2, for=127.0.0.1;host="HOST";proto=http`,
		},
		{
			name: "trusted balancer sends both families: each kept as sent", trusted: loopback,
			sent: map[string]string{
				"X-Forwarded-For":   "203.0.113.7",
				"X-Forwarded-Proto": "HTTPS",
				"Forwarded":         `for=203.0.113.7;proto=https;host="shop.example:8443"`,
			},
			wantXFF: "203.0.113.7, 127.0.0.1", wantHost: "shop.example:8443", wantProto: "https",
			wantForwarded: `for=203.0.113.7;host="shop.example:8443";proto=https, for=127.0.0.1;host="HOST";proto=http`,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			origin := &headerOrigin{}
			srv, _ := mustProxy(t, origin, func(c *Config) { c.TrustedProxies = tt.trusted })
			get(t, srv.URL+"/", tt.sent)
			host := strings.TrimPrefix(srv.URL, "http://")
			_, h := origin.seen()
			want := map[string]string{
				"X-Forwarded-For":   tt.wantXFF,
				"X-Forwarded-Host":  strings.ReplaceAll(tt.wantHost, "HOST", host),
				"X-Forwarded-Proto": tt.wantProto,
				"Forwarded":         strings.ReplaceAll(tt.wantForwarded, "HOST", host),
			}
			for k, v := range want {
				if got := h.Values(k); len(got) != 1 || got[0] != v {
					t.Errorf("origin got %s %q, want %q", k, got, v)
				}
			}
		})
	}
}

// The session cookie is Secure when the visitor's connection was https,
// which only a trusted balancer may say.
func TestSecureCookieOnlyFromTrustedProto(t *testing.T) {
	for _, trusted := range []bool{false, true} {
		srv, _ := mustProxy(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Type", "text/html")
			io.WriteString(w, page)
		}), func(c *Config) {
			if trusted {
				c.TrustedProxies = []netip.Prefix{netip.MustParsePrefix("127.0.0.1/32")}
			}
		})
		resp, _ := get(t, srv.URL+"/", map[string]string{"X-Forwarded-Proto": "https"})
		var secure, found bool
		for _, c := range resp.Cookies() {
			if c.Name == DefaultCookieName {
				found, secure = true, c.Secure
			}
		}
		if !found || secure != trusted {
			t.Errorf("trusted=%v: got session cookie found=%v Secure=%v, want Secure=%v", trusted, found, secure, trusted)
		}
	}
}

func TestParseForwarded(t *testing.T) {
	tests := []struct {
		name string
		in   []string
		want []forwardedElement
	}{
		{"empty", nil, nil},
		{"one", []string{"for=192.0.2.43"}, []forwardedElement{{forAddr: "192.0.2.43"}}},
		{
			"case and spaces", []string{`For="[2001:db8:cafe::17]:4711" ; Proto=https; HOST=a.example`},
			[]forwardedElement{{forAddr: "[2001:db8:cafe::17]:4711", proto: "https", host: "a.example"}},
		},
		{
			"comma inside quotes", []string{`for="a,b";host=x, for=192.0.2.1`},
			[]forwardedElement{{forAddr: "a,b", host: "x"}, {forAddr: "192.0.2.1"}},
		},
		{
			"several lines and an escaped quote", []string{`for=_hidden`, `for="x\"y";by=10.0.0.1`},
			[]forwardedElement{{forAddr: "_hidden"}, {forAddr: `x"y`}},
		},
		{"malformed pair skipped", []string{"for;proto=http"}, []forwardedElement{{proto: "http"}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := parseForwarded(tt.in)
			if len(got) != len(tt.want) {
				t.Fatalf("got %+v, want %+v", got, tt.want)
			}
			for i := range got {
				if got[i] != tt.want[i] {
					t.Errorf("element %d: got %+v, want %+v", i, got[i], tt.want[i])
				}
			}
		})
	}
}

func TestForwardedElementString(t *testing.T) {
	tests := []struct {
		e    forwardedElement
		want string
	}{
		{forwardedElement{forAddr: formatNode("192.0.2.1"), host: "a.example", proto: "http"}, "for=192.0.2.1;host=a.example;proto=http"},
		{forwardedElement{forAddr: formatNode("2001:db8::1"), host: "a.example:8080"}, `for="[2001:db8::1]";host="a.example:8080"`},
		{forwardedElement{forAddr: formatNode("::ffff:192.0.2.1")}, "for=192.0.2.1"},
		{forwardedElement{forAddr: `we"ird`}, `for="we\"ird"`},
	}
	for _, tt := range tests {
		if got := tt.e.String(); got != tt.want {
			t.Errorf("%+v: got %q, want %q", tt.e, got, tt.want)
		}
	}
}

// hostOrigin answers /login with a redirect, a Content-Location, a Refresh
// and cookies, all naming the host the origin was asked for.
func hostOrigin(o *headerOrigin) {
	o.serve = func(w http.ResponseWriter, r *http.Request) {
		self := "http://" + r.Host
		h := w.Header()
		switch strings.TrimPrefix(r.URL.Path, "/app") {
		case "/login":
			h.Set("Location", self+"/app/next?a=1#top")
			h.Set("Content-Location", self+"/app/login.html")
			h.Set("Refresh", "5; url="+self+"/app/later")
			h.Add("Link", "<"+self+"/app/a.css>; rel=preload; as=style, <https://cdn.example/b.js>; rel=preload; as=script")
			h.Add("Link", `<`+self+`/app/c.css?v=1>; rel=preload; title="a, <b>"; as=style,<`+self+`/other/d>; rel=next`)
			host := r.Host
			if i := strings.LastIndexByte(host, ':'); i >= 0 {
				host = host[:i]
			}
			h.Add("Set-Cookie", "sid=1; Path=/; Domain="+host+"; HttpOnly")
			h.Add("Set-Cookie", "lang=en; Domain=."+host)
			h.Add("Set-Cookie", "other=1; Domain=example.org")
			h.Add("Set-Cookie", "plain=1; Path=/")
			w.WriteHeader(http.StatusFound)
		case "/away":
			h.Set("Location", "https://elsewhere.example/x")
			w.WriteHeader(http.StatusFound)
		case "/relative":
			h.Set("Location", "/app/y")
			w.WriteHeader(http.StatusFound)
		case "/outside":
			h.Set("Location", self+"/other/z")
			w.WriteHeader(http.StatusFound)
		case "/scheme":
			h.Set("Location", "https://"+r.Host+"/app/z")
			w.WriteHeader(http.StatusFound)
		}
	}
}

func TestHostRewrittenAndMappedBack(t *testing.T) {
	origin := &headerOrigin{}
	hostOrigin(origin)
	var upHost string
	srv, _ := mustProxy(t, origin, func(c *Config) {
		upHost = c.Upstream.Host
		c.Upstream, _ = url.Parse(c.Upstream.String() + "/app/")
	})
	const public = "shop.example"
	do := func(path string) *http.Response {
		req, _ := http.NewRequest(http.MethodGet, srv.URL+path, nil)
		req.Host = public
		resp, err := client.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp
	}
	resp := do("/login")
	if host, _ := origin.seen(); host != upHost {
		t.Errorf("origin got Host %q, want the upstream's %q", host, upHost)
	}
	h := resp.Header
	for name, want := range map[string]string{
		"Location":         "/next?a=1#top",
		"Content-Location": "/login.html",
		"Refresh":          "5; url=/later",
	} {
		if got := h.Get(name); got != want {
			t.Errorf("got %s %q, want %q", name, got, want)
		}
	}
	wantLinks := []string{
		"</a.css>; rel=preload; as=style, <https://cdn.example/b.js>; rel=preload; as=script",
		`</c.css?v=1>; rel=preload; title="a, <b>"; as=style,<http://` + upHost + `/other/d>; rel=next`,
	}
	if got := h.Values("Link"); strings.Join(got, "\n") != strings.Join(wantLinks, "\n") {
		t.Errorf("got Link\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(wantLinks, "\n"))
	}
	// A relative Location resolves against the URL the browser asked for.
	if loc, err := resp.Location(); err != nil || loc.Host != strings.TrimPrefix(srv.URL, "http://") || loc.Path != "/next" {
		t.Errorf("Location resolves to %v (%v), want the proxy's /next", loc, err)
	}
	wantCookies := []string{
		"sid=1; Path=/; Domain=" + public + "; HttpOnly",
		"lang=en; Domain=" + public,
		"other=1; Domain=example.org",
		"plain=1; Path=/",
	}
	if got := h.Values("Set-Cookie"); strings.Join(got, "\n") != strings.Join(wantCookies, "\n") {
		t.Errorf("got Set-Cookie\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(wantCookies, "\n"))
	}

	for _, tt := range []struct{ path, want string }{
		{"/away", "https://elsewhere.example/x"},
		{"/relative", "/app/y"},
		{"/outside", "http://" + upHost + "/other/z"},
		{"/scheme", "https://" + upHost + "/app/z"},
	} {
		if got := do(tt.path).Header.Get("Location"); got != tt.want {
			t.Errorf("%s: got Location %q, want it untouched, %q", tt.path, got, tt.want)
		}
	}
}

// A cookie scoped to the upstream's IP becomes host-only on a public IP:
// browsers refuse a Domain that is an address other than their host.
func TestCookieDomainOnPublicIP(t *testing.T) {
	origin := &headerOrigin{serve: func(w http.ResponseWriter, r *http.Request) {
		w.Header().Add("Set-Cookie", "sid=1; Domain=upstream.internal; Path=/")
	}}
	up := httptest.NewServer(origin)
	t.Cleanup(up.Close)
	srv, _ := mustProxy(t, http.NotFoundHandler(), func(c *Config) {
		u, _ := url.Parse(up.URL)
		// The test origin listens on 127.0.0.1; name it as an operator
		// would, through a Transport that dials it.
		c.Upstream = &url.URL{Scheme: "http", Host: "upstream.internal"}
		c.Transport = &http.Transport{DialContext: dialTo(u.Host)}
	})
	resp, _ := get(t, srv.URL+"/", nil)
	if got := resp.Header.Get("Set-Cookie"); got != "sid=1; Path=/" {
		t.Errorf("got Set-Cookie %q, want %q", got, "sid=1; Path=/")
	}
}

func TestPreserveHost(t *testing.T) {
	origin := &headerOrigin{}
	hostOrigin(origin)
	srv, _ := mustProxy(t, origin, func(c *Config) { c.PreserveHost = true })
	req, _ := http.NewRequest(http.MethodGet, srv.URL+"/login", nil)
	req.Host = "shop.example"
	resp, err := client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if host, h := origin.seen(); host != "shop.example" || h.Get("X-Forwarded-Host") != "shop.example" {
		t.Errorf("origin got Host %q, X-Forwarded-Host %q; want the visitor's shop.example", host, h.Get("X-Forwarded-Host"))
	}
	if got := resp.Header.Get("Location"); got != "http://shop.example/app/next?a=1#top" {
		t.Errorf("got Location %q, want the origin's own", got)
	}
	if got := resp.Header.Values("Set-Cookie"); len(got) != 4 || got[0] != "sid=1; Path=/; Domain=shop.example; HttpOnly" {
		t.Errorf("got Set-Cookie %q, want the origin's own", got)
	}
}

func TestMapCookieDomain(t *testing.T) {
	tests := []struct{ in, want string }{
		{"a=1; Domain=up.internal", "a=1; Domain=shop.example"},
		{"a=1; domain=.UP.internal; Secure", "a=1; Domain=shop.example; Secure"},
		{"a=1; Domain=sub.up.internal", "a=1; Domain=sub.up.internal"},
		{"a=1", "a=1"},
		{"a=b=c; Path=/x;Domain=up.internal;SameSite=Lax", "a=b=c; Path=/x; Domain=shop.example;SameSite=Lax"},
	}
	for _, tt := range tests {
		if got := mapCookieDomain(tt.in, "up.internal", "shop.example"); got != tt.want {
			t.Errorf("mapCookieDomain(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
}

// dialTo returns a DialContext that reaches addr whatever the host asked for.
func dialTo(addr string) func(ctx context.Context, network, _ string) (net.Conn, error) {
	return func(ctx context.Context, network, _ string) (net.Conn, error) {
		var d net.Dialer
		return d.DialContext(ctx, network, addr)
	}
}

// Headers other proxies name the client with reach the upstream only from
// a trusted peer.
func TestSpoofableHeadersOnlyFromTrustedPeers(t *testing.T) {
	sent := map[string]string{"X-Real-IP": "198.51.100.9", "True-Client-IP": "198.51.100.9", "X-Forwarded-Port": "443", "X-Other": "kept"}
	for _, trusted := range []bool{false, true} {
		origin := &headerOrigin{}
		srv, _ := mustProxy(t, origin, func(c *Config) {
			if trusted {
				c.TrustedProxies = []netip.Prefix{netip.MustParsePrefix("127.0.0.1/32")}
			}
		})
		get(t, srv.URL+"/", sent)
		_, h := origin.seen()
		for k, v := range sent {
			want := v
			if !trusted && k != "X-Other" {
				want = ""
			}
			if got := h.Get(k); got != want {
				t.Errorf("trusted=%v: origin got %s %q, want %q", trusted, k, got, want)
			}
		}
	}
}

// TestSpoofableHeadersCanonical: SetForwarded deletes these names from the
// header map as they are.
func TestSpoofableHeadersCanonical(t *testing.T) {
	for _, name := range spoofableHeaders {
		if c := http.CanonicalHeaderKey(name); c != name {
			t.Errorf("%q is not canonical (%q)", name, c)
		}
	}
}

// FuzzMapLink: mapping Link values never panics, and a mapped value has
// nothing left to map. (TestHostRewrittenAndMappedBack checks that the
// bytes around the targets are kept.)
func FuzzMapLink(f *testing.F) {
	for _, s := range []string{
		`<http://up.internal/a.css>; rel=preload; as=style, <https://cdn.example/b.js>; rel=preload`,
		`<http://up.internal/c>; title="a, <http://up.internal/x>"; rel=next,<http://up.internal/d>`,
		`<http://up.internal/e`, `"<http://up.internal/f>"`, `<>; rel=x, <http://up.internal>`,
		`<http://up.internal/g>; t="\"<"; rel=a`,
	} {
		f.Add(s)
	}
	p := &Proxy{cfg: Config{Upstream: &url.URL{Scheme: "http", Host: "up.internal"}}}
	f.Fuzz(func(t *testing.T, v string) {
		m, ok := p.mapLink(v)
		if !ok {
			return
		}
		if _, again := p.mapLink(m); again {
			t.Fatalf("%q mapped to %q, which maps again", v, m)
		}
	})
}
