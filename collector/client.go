package collector

import (
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"strings"

	lru "github.com/hashicorp/golang-lru/v2"
	useragent "github.com/medama-io/go-useragent"
	"github.com/medama-io/go-useragent/agents"
	"github.com/oschwald/maxminddb-golang/v2"

	"github.com/loupe-dev/loupe/store"
)

// ClientIP returns the address of the visitor that sent r: its peer
// address, or, when the peer is one of trusted (a load balancer or a proxy
// node in front of the collector), the right-most address of
// X-Forwarded-For that is not itself trusted. Addresses to the left of that
// one were written by the client and can be forged, so they are never used.
// If every listed address is trusted, the left-most one is the client. A
// malformed entry ends the walk: the last good address is used.
func ClientIP(r *http.Request, trusted []netip.Prefix) netip.Addr {
	peer := ParseAddr(r.RemoteAddr)
	if !peer.IsValid() || !IsTrusted(peer, trusted) {
		return peer
	}
	ip := peer
	values := r.Header.Values("X-Forwarded-For")
	for i := len(values) - 1; i >= 0; i-- {
		parts := strings.Split(values[i], ",")
		for j := len(parts) - 1; j >= 0; j-- {
			a := ParseAddr(strings.TrimSpace(parts[j]))
			if !a.IsValid() {
				return ip
			}
			ip = a
			if !IsTrusted(a, trusted) {
				return a
			}
		}
	}
	return ip
}

// ForwardedHTTPS reports whether the client sent r over HTTPS: r came
// over TLS, or its peer is one of trusted (a load balancer that ends TLS)
// and the last X-Forwarded-Proto value, the one that peer set, is https.
// A value sent by the client itself through a proxy that sets none
// counts too: the client then only asks for what it could have had.
func ForwardedHTTPS(r *http.Request, trusted []netip.Prefix) bool {
	if r.TLS != nil {
		return true
	}
	if peer := ParseAddr(r.RemoteAddr); !peer.IsValid() || !IsTrusted(peer, trusted) {
		return false
	}
	values := r.Header.Values("X-Forwarded-Proto")
	if len(values) == 0 {
		return false
	}
	last := values[len(values)-1]
	if i := strings.LastIndexByte(last, ','); i >= 0 {
		last = last[i+1:]
	}
	return strings.EqualFold(strings.TrimSpace(last), "https")
}

// IsTrusted reports whether ip is in one of trusted.
func IsTrusted(ip netip.Addr, trusted []netip.Prefix) bool {
	for _, p := range trusted {
		if p.Contains(ip) {
			return true
		}
	}
	return false
}

// ParseAddr parses "ip", "ip:port", "[ipv6]" or "[ipv6]:port", as
// http.Request.RemoteAddr and forwarding headers carry addresses, dropping
// any zone and unmapping IPv4-in-IPv6. It returns the zero Addr if s is
// none of them.
func ParseAddr(s string) netip.Addr {
	if a, err := netip.ParseAddr(s); err == nil {
		return a.WithZone("").Unmap()
	}
	if host, _, err := net.SplitHostPort(s); err == nil {
		if a, err := netip.ParseAddr(host); err == nil {
			return a.WithZone("").Unmap()
		}
	}
	if strings.HasPrefix(s, "[") && strings.HasSuffix(s, "]") {
		if a, err := netip.ParseAddr(s[1 : len(s)-1]); err == nil {
			return a.WithZone("").Unmap()
		}
	}
	return netip.Addr{}
}

// CountryLookup finds the country of an address.
type CountryLookup interface {
	// Country returns the ISO 3166-1 alpha-2 code of ip's country, or ""
	// if unknown.
	Country(ip netip.Addr) string
}

// GeoIP is a CountryLookup backed by a MaxMind-format database
// (GeoLite2-Country, GeoIP2-City, DB-IP Lite and the like).
type GeoIP struct {
	r *maxminddb.Reader
}

var _ CountryLookup = (*GeoIP)(nil)

// OpenGeoIP opens the MaxMind-format database at path. The caller closes it.
func OpenGeoIP(path string) (*GeoIP, error) {
	r, err := maxminddb.Open(path)
	if err != nil {
		return nil, fmt.Errorf("open geoip database: %w", err)
	}
	return &GeoIP{r: r}, nil
}

// Country returns the country of ip, falling back to the country the
// address block is registered in (for anycast and satellite ranges).
func (g *GeoIP) Country(ip netip.Addr) string {
	var rec struct {
		Country struct {
			ISOCode string `maxminddb:"iso_code"`
		} `maxminddb:"country"`
		Registered struct {
			ISOCode string `maxminddb:"iso_code"`
		} `maxminddb:"registered_country"`
	}
	if err := g.r.Lookup(ip).Decode(&rec); err != nil {
		return ""
	}
	if rec.Country.ISOCode != "" {
		return rec.Country.ISOCode
	}
	return rec.Registered.ISOCode
}

// Close releases the database.
func (g *GeoIP) Close() error { return g.r.Close() }

// maxUserAgent is the longest User-Agent kept and parsed; real ones are
// under 400 bytes.
const maxUserAgent = 512

// uaInfo is what the user agent says about the browser.
type uaInfo struct {
	browser, version, os, device string
}

// userAgents parses User-Agent strings with a bounded cache: every batch of
// a page view repeats the same string.
type userAgents struct {
	p     *useragent.Parser
	cache *lru.Cache[string, uaInfo]
}

func newUserAgents(size int) *userAgents {
	c, _ := lru.New[string, uaInfo](size)
	return &userAgents{p: useragent.NewParser(), cache: c}
}

func (u *userAgents) parse(s string) uaInfo {
	if s == "" {
		return uaInfo{}
	}
	if info, ok := u.cache.Get(s); ok {
		return info
	}
	ua := u.p.Parse(s)
	info := uaInfo{
		browser: string(ua.Browser()),
		version: ua.BrowserVersion(),
		os:      string(ua.OS()),
	}
	switch ua.Device() {
	case agents.DeviceBot:
		info.device = "bot"
	case agents.DeviceMobile:
		info.device = "mobile"
	case agents.DeviceTablet:
		info.device = "tablet"
	case agents.DeviceDesktop, agents.DeviceTV:
		info.device = "desktop"
	}
	// The parser files every Android device as mobile, but Android tablets
	// leave the "Mobile" token out of their User-Agent (Google's documented
	// convention for telling phones from tablets).
	if info.device == "mobile" && ua.OS() == agents.OSAndroid && !strings.Contains(s, "Mobile") {
		info.device = "tablet"
	}
	if ua.IsBot() {
		info.device = "bot"
	}
	u.cache.Add(s, info)
	return info
}

// enrich describes the client of a request.
func (c *Collector) enrich(ip netip.Addr, ua string) store.Client {
	info := c.userAgents().parse(ua)
	cl := store.Client{
		Browser:        info.browser,
		BrowserVersion: info.version,
		OS:             info.os,
		Device:         info.device,
	}
	if ip.IsValid() {
		cl.IPHash = c.Tokens.HashIP(ip)
		if c.KeepIP {
			cl.IP = ip.String()
		}
		if c.GeoIP != nil {
			cl.Country = c.GeoIP.Country(ip)
		}
	}
	return cl
}
