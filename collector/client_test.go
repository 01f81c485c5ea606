package collector

import (
	"crypto/tls"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"os"
	"path/filepath"
	"testing"

	"github.com/maxmind/mmdbwriter"
	"github.com/maxmind/mmdbwriter/mmdbtype"

	"github.com/loupe-dev/loupe/store"
)

func TestClientIP(t *testing.T) {
	trusted := []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8"), netip.MustParsePrefix("2001:db8:ffff::/48")}
	tests := []struct {
		name    string
		remote  string
		xff     []string
		trusted []netip.Prefix
		want    string
	}{
		{name: "direct", remote: "203.0.113.9:5000", want: "203.0.113.9"},
		{name: "untrusted peer's XFF is ignored", remote: "203.0.113.9:5000", xff: []string{"198.51.100.1"}, trusted: trusted, want: "203.0.113.9"},
		{name: "no trusted proxies configured", remote: "10.0.0.2:5000", xff: []string{"198.51.100.1"}, want: "10.0.0.2"},
		{name: "trusted peer", remote: "10.0.0.2:5000", xff: []string{"198.51.100.1"}, trusted: trusted, want: "198.51.100.1"},
		{name: "right-most untrusted wins over a forged left entry", remote: "10.0.0.2:5000",
			xff: []string{"1.2.3.4, 198.51.100.1, 10.0.0.7"}, trusted: trusted, want: "198.51.100.1"},
		{name: "several header lines", remote: "10.0.0.2:5000",
			xff: []string{"1.2.3.4", "198.51.100.1", "10.0.0.7"}, trusted: trusted, want: "198.51.100.1"},
		{name: "all trusted: left-most", remote: "10.0.0.2:5000", xff: []string{"10.1.1.1, 10.0.0.7"}, trusted: trusted, want: "10.1.1.1"},
		{name: "garbage stops the walk", remote: "10.0.0.2:5000", xff: []string{"198.51.100.1, nonsense, 10.0.0.7"}, trusted: trusted, want: "10.0.0.7"},
		{name: "empty XFF", remote: "10.0.0.2:5000", xff: []string{""}, trusted: trusted, want: "10.0.0.2"},
		{name: "IPv6 peer and entry with port", remote: "[2001:db8:ffff::1]:443", xff: []string{"[2001:db8:1::5]:1234"}, trusted: trusted, want: "2001:db8:1::5"},
		{name: "IPv4-mapped peer", remote: "[::ffff:203.0.113.9]:5000", want: "203.0.113.9"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := httptest.NewRequest(http.MethodPost, "/", nil)
			r.RemoteAddr = tt.remote
			for _, v := range tt.xff {
				r.Header.Add("X-Forwarded-For", v)
			}
			if got := ClientIP(r, tt.trusted); got.String() != tt.want {
				t.Errorf("got %v, want %s", got, tt.want)
			}
		})
	}
}

func TestForwardedHTTPS(t *testing.T) {
	trusted := []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8")}
	tests := []struct {
		name    string
		remote  string
		proto   []string
		tls     bool
		trusted []netip.Prefix
		want    bool
	}{
		{name: "plain, direct", remote: "203.0.113.9:5000"},
		{name: "TLS, direct", remote: "203.0.113.9:5000", tls: true, want: true},
		{name: "trusted balancer ending TLS", remote: "10.0.0.2:5000", proto: []string{"https"}, trusted: trusted, want: true},
		{name: "any case", remote: "10.0.0.2:5000", proto: []string{"HTTPS"}, trusted: trusted, want: true},
		{name: "trusted balancer, plain", remote: "10.0.0.2:5000", proto: []string{"http"}, trusted: trusted},
		{name: "the client's https before the balancer's http", remote: "10.0.0.2:5000", proto: []string{"https, http"}, trusted: trusted},
		{name: "the balancer's line last", remote: "10.0.0.2:5000", proto: []string{"http", " https "}, trusted: trusted, want: true},
		{name: "untrusted peer", remote: "203.0.113.9:5000", proto: []string{"https"}, trusted: trusted},
		{name: "no trusted proxies", remote: "10.0.0.2:5000", proto: []string{"https"}},
		{name: "trusted peer, no header", remote: "10.0.0.2:5000", trusted: trusted},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := httptest.NewRequest(http.MethodGet, "/", nil)
			r.RemoteAddr = tt.remote
			if tt.tls {
				r.TLS = &tls.ConnectionState{}
			}
			for _, v := range tt.proto {
				r.Header.Add("X-Forwarded-Proto", v)
			}
			if got := ForwardedHTTPS(r, tt.trusted); got != tt.want {
				t.Errorf("got %v, want %v", got, tt.want)
			}
		})
	}
}

func TestIngestClientAddress(t *testing.T) {
	tests := []struct {
		name   string
		keepIP bool
		wantIP string
	}{
		{name: "hash only by default", keepIP: false, wantIP: ""},
		{name: "KeepIP", keepIP: true, wantIP: "198.51.100.23"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFixture(t)
			f.c.TrustedProxies = []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8")}
			f.c.KeepIP = tt.keepIP
			w := post(f.c, []byte(batchJSON(f.token, 0, sampleEvents)), map[string]string{
				"RemoteAddr": "10.0.0.2:7000", "X-Forwarded-For": "6.6.6.6, 198.51.100.23"})
			if w.Code != http.StatusNoContent {
				t.Fatalf("got status %d (%s), want 204", w.Code, w.Body)
			}
			got := f.st.batches[0].Client
			if want := f.tk.HashIP(netip.MustParseAddr("198.51.100.23")); got.IPHash != want {
				t.Errorf("got IP hash %q, want %q (the client's, not the proxy's)", got.IPHash, want)
			}
			if got.IP != tt.wantIP {
				t.Errorf("got IP %q, want %q", got.IP, tt.wantIP)
			}
		})
	}
}

func TestEnrichUserAgent(t *testing.T) {
	tests := []struct {
		name string
		ua   string
		want store.Client
	}{
		{name: "Chrome on Windows",
			ua:   "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/126.0.0.0 Safari/537.36",
			want: store.Client{Browser: "Chrome", BrowserVersion: "126.0.0.0", OS: "Windows", Device: "desktop"}},
		{name: "Safari on iPhone",
			ua:   "Mozilla/5.0 (iPhone; CPU iPhone OS 17_5 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.5 Mobile/15E148 Safari/604.1",
			want: store.Client{Browser: "Safari", BrowserVersion: "17.5", OS: "iOS", Device: "mobile"}},
		{name: "Chrome on an Android tablet",
			ua:   "Mozilla/5.0 (Linux; Android 13; SM-X700) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/126.0.0.0 Safari/537.36",
			want: store.Client{Browser: "Chrome", BrowserVersion: "126.0.0.0", OS: "Android", Device: "tablet"}},
		{name: "Chrome on an Android phone",
			ua:   "Mozilla/5.0 (Linux; Android 14; Pixel 8) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/126.0.6478.122 Mobile Safari/537.36",
			want: store.Client{Browser: "Chrome", BrowserVersion: "126.0.6478.122", OS: "Android", Device: "mobile"}},
		{name: "Googlebot",
			ua:   "Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)",
			want: store.Client{Device: "bot"}},
		{name: "empty", ua: "", want: store.Client{}},
	}
	c := &Collector{}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			for i := 0; i < 2; i++ { // the second parse comes from the cache
				if got := c.enrich(netip.Addr{}, tt.ua); got != tt.want {
					t.Fatalf("parse %d: got %+v, want %+v", i, got, tt.want)
				}
			}
		})
	}
	if n := c.uaParser.cache.Len(); n != len(tests)-1 {
		t.Errorf("cache holds %d user agents, want %d", n, len(tests)-1)
	}
}

// mustGeoDB writes a tiny MaxMind-format country database.
func mustGeoDB(tb testing.TB) string {
	tb.Helper()
	w, err := mmdbwriter.New(mmdbwriter.Options{DatabaseType: "GeoLite2-Country", RecordSize: 24, IPVersion: 6})
	if err != nil {
		tb.Fatal(err)
	}
	country := func(iso string) mmdbtype.Map {
		return mmdbtype.Map{"country": mmdbtype.Map{"iso_code": mmdbtype.String(iso)}}
	}
	for _, n := range []struct {
		cidr string
		data mmdbtype.Map
	}{
		{"81.2.69.0/24", country("GB")},
		{"2a02:dd8::/32", country("DE")},
		{"89.160.20.0/24", mmdbtype.Map{"registered_country": mmdbtype.Map{"iso_code": mmdbtype.String("SE")}}},
	} {
		_, ipnet, _ := net.ParseCIDR(n.cidr)
		if err := w.Insert(ipnet, n.data); err != nil {
			tb.Fatal(err)
		}
	}
	path := filepath.Join(tb.TempDir(), "country.mmdb")
	fh, err := os.Create(path)
	if err != nil {
		tb.Fatal(err)
	}
	if _, err := w.WriteTo(fh); err != nil {
		tb.Fatal(err)
	}
	if err := fh.Close(); err != nil {
		tb.Fatal(err)
	}
	return path
}

func TestGeoIP(t *testing.T) {
	g, err := OpenGeoIP(mustGeoDB(t))
	if err != nil {
		t.Fatal(err)
	}
	defer g.Close()
	tests := []struct {
		ip   string
		want string
	}{
		{"81.2.69.142", "GB"},
		{"::ffff:81.2.69.142", "GB"},
		{"2a02:dd8:1::1", "DE"},
		{"89.160.20.112", "SE"}, // registered country only
		{"8.8.8.8", ""},
	}
	for _, tt := range tests {
		if got := g.Country(netip.MustParseAddr(tt.ip)); got != tt.want {
			t.Errorf("Country(%s): got %q, want %q", tt.ip, got, tt.want)
		}
	}

	f := newFixture(t)
	f.c.GeoIP = g
	if w := post(f.c, []byte(batchJSON(f.token, 0, sampleEvents)), map[string]string{"RemoteAddr": "81.2.69.142:4000"}); w.Code != http.StatusNoContent {
		t.Fatalf("got status %d (%s), want 204", w.Code, w.Body)
	}
	if got := f.st.batches[0].Client.Country; got != "GB" {
		t.Errorf("stored country %q, want GB", got)
	}
}

func TestOpenGeoIPMissing(t *testing.T) {
	if _, err := OpenGeoIP(filepath.Join(t.TempDir(), "none.mmdb")); err == nil {
		t.Fatal("opened a database that does not exist")
	}
}
