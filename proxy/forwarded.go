package proxy

import (
	"net/http"
	"net/http/httputil"
	"net/netip"
	"strings"

	"github.com/loupe-dev/loupe/collector"
)

// SetForwarded sets X-Forwarded-For, X-Forwarded-Host, X-Forwarded-Proto
// and Forwarded (RFC 7239) on the outbound request.
//
// ReverseProxy has already removed the client's copies from pr.Out. When
// the peer is one of trusted (a load balancer or CDN in front of Loupe),
// the ones it sent are passed on with this hop appended: X-Forwarded-For
// and Forwarded gain the peer's address, and X-Forwarded-Host and
// X-Forwarded-Proto keep naming what the visitor asked for. A peer that
// sent only one of the two families gets the other made from it, so the
// upstream sees the same chain whichever it reads. From any other peer
// nothing is believed: the headers describe this connection alone, and
// the other headers some origins take a client's address or scheme from
// (spoofableHeaders) are dropped.
func SetForwarded(pr *httputil.ProxyRequest, trusted []netip.Prefix) {
	in, h := pr.In, pr.Out.Header
	peer := collector.ParseAddr(in.RemoteAddr)
	proto := "http"
	if in.TLS != nil {
		proto = "https"
	}
	// What this hop adds: the peer, and the Host and protocol it used.
	var self forwardedElement
	var peerIP string
	if peer.IsValid() {
		peerIP = peer.String()
		self = forwardedElement{forAddr: peerIP, host: in.Host, proto: proto}
		if peer.Is6() {
			self.forAddr = "[" + peerIP + "]"
		}
	} else {
		// RFC 7239 §6.2, e.g. a Unix socket peer.
		self = forwardedElement{forAddr: "unknown", host: in.Host, proto: proto}
	}

	if !peer.IsValid() || !collector.IsTrusted(peer, trusted) {
		// The common case, kept cheap: only this hop.
		for _, name := range spoofableHeaders {
			// Canonical already: no h.Del, which canonicalizes each name
			// again, at a cost that showed in every request.
			delete(h, name)
		}
		if peerIP != "" {
			h.Set("X-Forwarded-For", peerIP)
		}
		h.Set("X-Forwarded-Host", in.Host)
		h.Set("X-Forwarded-Proto", proto)
		h.Set("Forwarded", self.String())
		return
	}

	xff := splitList(in.Header.Values("X-Forwarded-For"))
	chain := parseForwarded(in.Header.Values("Forwarded"))
	switch {
	case len(xff) == 0:
		for _, e := range chain {
			xff = append(xff, xffNode(e.forAddr))
		}
	case len(chain) == 0:
		for _, a := range xff {
			chain = append(chain, forwardedElement{forAddr: formatNode(a)})
		}
	}
	// The first hop's values are the visitor's.
	pubHost, pubProto := in.Host, proto
	if v := firstListValue(in.Header.Values("X-Forwarded-Host")); v != "" {
		pubHost = v
	} else if len(chain) > 0 && chain[0].host != "" {
		pubHost = chain[0].host
	}
	if v := firstListValue(in.Header.Values("X-Forwarded-Proto")); v != "" {
		pubProto = strings.ToLower(v)
	} else if len(chain) > 0 && chain[0].proto != "" {
		pubProto = strings.ToLower(chain[0].proto)
	}
	xff = append(xff, peerIP)
	chain = append(chain, self)

	h.Set("X-Forwarded-For", strings.Join(xff, ", "))
	h.Set("X-Forwarded-Host", pubHost)
	h.Set("X-Forwarded-Proto", pubProto)
	elems := make([]string, len(chain))
	for i, e := range chain {
		elems[i] = e.String()
	}
	h.Set("Forwarded", strings.Join(elems, ", "))
}

// spoofableHeaders are request headers besides X-Forwarded-* and
// Forwarded that proxies, CDNs and frameworks use to name the client or
// its scheme. Only a trusted peer's reach the upstream. Names are in
// canonical form (TestSpoofableHeadersCanonical).
var spoofableHeaders = []string{
	"X-Real-Ip", "X-Client-Ip", "True-Client-Ip", "Cf-Connecting-Ip", "Fastly-Client-Ip",
	"X-Cluster-Client-Ip", "Forwarded-For", "X-Forwarded", "X-Forwarded-Port",
	"X-Forwarded-Scheme", "X-Forwarded-Ssl", "X-Forwarded-Server", "X-Url-Scheme", "Front-End-Https",
}

// publicHost returns the host name and port (as in a Host header) and the
// scheme the visitor used, as SetForwarded recorded them on the outbound
// request out.
func publicHost(out *http.Request) (host, scheme string) {
	host, scheme = out.Header.Get("X-Forwarded-Host"), out.Header.Get("X-Forwarded-Proto")
	if scheme != "https" {
		scheme = "http"
	}
	return host, scheme
}

// forwardedElement is one hop of a Forwarded header (RFC 7239 §4). Values
// are unquoted; by= and extensions are not kept.
type forwardedElement struct {
	forAddr, host, proto string
}

// String formats e as a forwarded-element, quoting values that are not
// tokens (an IPv6 node, a host with a port).
func (e forwardedElement) String() string {
	var b strings.Builder
	b.Grow(len(e.forAddr) + len(e.host) + len(e.proto) + 24)
	for _, kv := range [...][2]string{{"for", e.forAddr}, {"host", e.host}, {"proto", e.proto}} {
		if kv[1] == "" {
			continue
		}
		if b.Len() > 0 {
			b.WriteByte(';')
		}
		b.WriteString(kv[0])
		b.WriteByte('=')
		writeValue(&b, kv[1])
	}
	return b.String()
}

// formatNode writes an address as a Forwarded node: IPv6 in brackets
// (RFC 7239 §6). Anything else (an obfuscated "_hidden", "unknown") is
// kept as it is.
func formatNode(addr string) string {
	a := collector.ParseAddr(addr)
	switch {
	case !a.IsValid():
		return addr
	case a.Is6():
		return "[" + a.String() + "]"
	}
	return a.String()
}

// xffNode turns a Forwarded node into an X-Forwarded-For entry: the bare
// address, without brackets or port.
func xffNode(node string) string {
	if a := collector.ParseAddr(node); a.IsValid() {
		return a.String()
	}
	return node
}

// parseForwarded parses Forwarded header lines into their elements. A
// malformed pair is skipped; the rest of its element is kept.
func parseForwarded(lines []string) []forwardedElement {
	var out []forwardedElement
	for _, line := range lines {
		for _, elem := range splitQuoted(line, ',') {
			if strings.TrimSpace(elem) == "" {
				continue
			}
			var e forwardedElement
			for _, pair := range splitQuoted(elem, ';') {
				k, v, ok := strings.Cut(strings.TrimSpace(pair), "=")
				if !ok {
					continue
				}
				v = unquoteValue(strings.TrimSpace(v))
				switch strings.ToLower(strings.TrimSpace(k)) {
				case "for":
					e.forAddr = v
				case "host":
					e.host = v
				case "proto":
					e.proto = v
				}
			}
			out = append(out, e)
		}
	}
	return out
}

// splitQuoted splits s at sep outside double quotes.
func splitQuoted(s string, sep byte) []string {
	var out []string
	start, quoted := 0, false
	for i := 0; i < len(s); i++ {
		switch c := s[i]; {
		case c == '\\' && quoted:
			i++
		case c == '"':
			quoted = !quoted
		case c == sep && !quoted:
			out = append(out, s[start:i])
			start = i + 1
		}
	}
	return append(out, s[start:])
}

// writeValue writes v as a token if it is one, else as a quoted-string
// (RFC 9110 §5.6.4).
func writeValue(b *strings.Builder, v string) {
	if v != "" && strings.IndexFunc(v, func(r rune) bool { return !isTokenChar(r) }) < 0 {
		b.WriteString(v)
		return
	}
	b.WriteByte('"')
	for i := 0; i < len(v); i++ {
		if v[i] == '"' || v[i] == '\\' {
			b.WriteByte('\\')
		}
		b.WriteByte(v[i])
	}
	b.WriteByte('"')
}

func unquoteValue(v string) string {
	if len(v) < 2 || v[0] != '"' || v[len(v)-1] != '"' {
		return v
	}
	v = v[1 : len(v)-1]
	var b strings.Builder
	for i := 0; i < len(v); i++ {
		if v[i] == '\\' && i+1 < len(v) {
			i++
		}
		b.WriteByte(v[i])
	}
	return b.String()
}

func isTokenChar(r rune) bool {
	return r < 0x7f && (r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' ||
		strings.ContainsRune("!#$%&'*+-.^_`|~", r))
}

// splitList splits comma-separated header lines into trimmed, non-empty
// entries.
func splitList(lines []string) []string {
	var out []string
	for _, line := range lines {
		for _, v := range strings.Split(line, ",") {
			if v = strings.TrimSpace(v); v != "" {
				out = append(out, v)
			}
		}
	}
	return out
}

// firstListValue is the first entry of comma-separated header lines: the
// one the hop nearest the visitor wrote.
func firstListValue(lines []string) string {
	if l := splitList(lines); len(l) > 0 {
		return l[0]
	}
	return ""
}
