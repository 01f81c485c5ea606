package proxy

import (
	"net"
	"net/http"
	"net/http/httputil"
	"net/netip"
	"strings"
)

// setForwarded sets X-Forwarded-For, X-Forwarded-Host, X-Forwarded-Proto
// and Forwarded (RFC 7239) on the outbound request.
//
// ReverseProxy has already removed the client's copies from pr.Out. When
// the peer is one of trusted (a load balancer or CDN in front of Loupe),
// the ones it sent are passed on with this hop appended: X-Forwarded-For
// and Forwarded gain the peer's address, and X-Forwarded-Host and
// X-Forwarded-Proto keep naming what the visitor asked for. A peer that
// sent only one of the two families gets the other made from it, so the
// upstream sees the same chain whichever it reads. From any other peer
// nothing is believed: the headers describe this connection alone.
func setForwarded(pr *httputil.ProxyRequest, trusted []netip.Prefix) {
	in, h := pr.In, pr.Out.Header
	peer := peerAddr(in.RemoteAddr)
	proto := "http"
	if in.TLS != nil {
		proto = "https"
	}
	// What this hop adds: the peer, and the Host and protocol it used.
	self := forwardedElement{forAddr: formatNode(peer), host: in.Host, proto: proto}
	if peer == "" {
		self.forAddr = "unknown" // RFC 7239 §6.2, e.g. a Unix socket peer
	}

	var xff []string
	var chain []forwardedElement
	pubHost, pubProto := in.Host, proto
	if isTrusted(peer, trusted) {
		xff = splitList(in.Header.Values("X-Forwarded-For"))
		chain = parseForwarded(in.Header.Values("Forwarded"))
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
	}
	if peer != "" {
		xff = append(xff, peer)
	}
	chain = append(chain, self)

	if len(xff) > 0 {
		h.Set("X-Forwarded-For", strings.Join(xff, ", "))
	}
	h.Set("X-Forwarded-Host", pubHost)
	h.Set("X-Forwarded-Proto", pubProto)
	elems := make([]string, len(chain))
	for i, e := range chain {
		elems[i] = e.String()
	}
	h.Set("Forwarded", strings.Join(elems, ", "))
}

// publicHost returns the host name and port (as in a Host header) and the
// scheme the visitor used, as setForwarded recorded them on the outbound
// request out.
func publicHost(out *http.Request) (host, scheme string) {
	host, scheme = out.Header.Get("X-Forwarded-Host"), out.Header.Get("X-Forwarded-Proto")
	if scheme != "https" {
		scheme = "http"
	}
	return host, scheme
}

// peerAddr returns the IP address of a RemoteAddr ("ip:port"), or "" when
// it has none.
func peerAddr(remote string) string {
	a := parseAddr(remote)
	if !a.IsValid() {
		return ""
	}
	return a.String()
}

// isTrusted reports whether the address addr is in one of trusted.
func isTrusted(addr string, trusted []netip.Prefix) bool {
	if addr == "" || len(trusted) == 0 {
		return false
	}
	a := parseAddr(addr)
	for _, p := range trusted {
		if p.Contains(a) {
			return true
		}
	}
	return false
}

// parseAddr parses "ip", "ip:port", "[ipv6]" or "[ipv6]:port", dropping a
// zone and unmapping IPv4-in-IPv6, as the collector does.
func parseAddr(s string) netip.Addr {
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

// forwardedElement is one hop of a Forwarded header (RFC 7239 §4). Values
// are unquoted; by= and extensions are not kept.
type forwardedElement struct {
	forAddr, host, proto string
}

// String formats e as a forwarded-element, quoting values that are not
// tokens (an IPv6 node, a host with a port).
func (e forwardedElement) String() string {
	var parts []string
	if e.forAddr != "" {
		parts = append(parts, "for="+quoteValue(e.forAddr))
	}
	if e.host != "" {
		parts = append(parts, "host="+quoteValue(e.host))
	}
	if e.proto != "" {
		parts = append(parts, "proto="+quoteValue(e.proto))
	}
	return strings.Join(parts, ";")
}

// formatNode writes an address as a Forwarded node: IPv6 in brackets
// (RFC 7239 §6). Anything else (an obfuscated "_hidden", "unknown") is
// kept as it is.
func formatNode(addr string) string {
	a := parseAddr(addr)
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
	if a := parseAddr(node); a.IsValid() {
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

// quoteValue returns v as a token if it is one, else as a quoted-string
// (RFC 9110 §5.6.4).
func quoteValue(v string) string {
	if v != "" && strings.IndexFunc(v, func(r rune) bool { return !isTokenChar(r) }) < 0 {
		return v
	}
	var b strings.Builder
	b.WriteByte('"')
	for i := 0; i < len(v); i++ {
		if v[i] == '"' || v[i] == '\\' {
			b.WriteByte('\\')
		}
		b.WriteByte(v[i])
	}
	b.WriteByte('"')
	return b.String()
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
