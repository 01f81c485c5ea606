package proxy

import (
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"strings"
)

// upstreamResponse is the ReverseProxy's ModifyResponse: the upstream's
// names are mapped back to the public host, then the body is handled.
func (p *Proxy) upstreamResponse(resp *http.Response) error {
	p.mapUpstreamHeaders(resp)
	weakenNotModified(resp)
	return p.modifyResponse(resp)
}

// weakenNotModified keeps a revalidated page's ETag weak: Loupe weakens
// the ETag of every page it rewrites, the browser revalidates with that
// weak tag, and an origin that matches it weakly (RFC 9110 §13.1.2)
// answers 304 with its strong one, which the browser would then store
// with the rewritten bytes (RFC 9111 §4.3.4).
func weakenNotModified(resp *http.Response) {
	if resp.StatusCode != http.StatusNotModified || resp.Request == nil {
		return
	}
	etag := resp.Header.Get("ETag")
	if etag == "" || strings.HasPrefix(etag, "W/") {
		return
	}
	for _, v := range splitList(resp.Request.Header.Values("If-None-Match")) {
		if v == "W/"+etag {
			resp.Header.Set("ETag", v)
			return
		}
	}
}

// mapUpstreamHeaders points the headers of resp that name the upstream
// back at the site's public host, when the upstream was sent its own Host
// (Config.PreserveHost off) and so wrote its own name into them:
//
//   - Location, Content-Location and the URL of Refresh, when absolute
//     URLs on the upstream's scheme and host (under its base path),
//     become path-absolute references. The browser resolves those against
//     the URL it asked for, so they keep the visitor's scheme and host
//     even behind a TLS-terminating balancer Loupe was not told to trust
//     (RFC 9110 §10.2.2 allows a relative Location; nginx's
//     proxy_redirect default does the same).
//   - Link targets (<…>; rel=preload and the like), mapped as Location
//     is, so that a preload does not send the browser to the upstream.
//   - Set-Cookie Domain= naming the upstream's host names the public host
//     instead, or is dropped (a host-only cookie) when the public host is
//     an IP address, where browsers refuse a Domain.
func (p *Proxy) mapUpstreamHeaders(resp *http.Response) {
	if p.cfg.PreserveHost || resp.Request == nil {
		return
	}
	h := resp.Header
	for _, name := range []string{"Location", "Content-Location"} {
		if v := h.Get(name); v != "" {
			if m, ok := p.mapURL(v); ok {
				h.Set(name, m)
			}
		}
	}
	if v := h.Get("Refresh"); v != "" {
		if m, ok := p.mapRefresh(v); ok {
			h.Set("Refresh", m)
		}
	}
	links := h["Link"] // edited in place
	for i, v := range links {
		if m, ok := p.mapLink(v); ok {
			links[i] = m
		}
	}
	cookies := h["Set-Cookie"] // edited in place
	if len(cookies) == 0 {
		return
	}
	pub, _ := publicHost(resp.Request)
	pubName := hostName(pub)
	upName := p.cfg.Upstream.Hostname()
	if pubName == "" || strings.EqualFold(pubName, upName) {
		return
	}
	for i, c := range cookies {
		cookies[i] = mapCookieDomain(c, upName, pubName)
	}
}

// mapURL returns the path-absolute form of raw if it is an absolute URL
// on the upstream.
func (p *Proxy) mapURL(raw string) (string, bool) {
	u, err := url.Parse(strings.TrimSpace(raw))
	if err != nil || !u.IsAbs() || u.Opaque != "" || u.User != nil {
		return "", false
	}
	up := p.cfg.Upstream
	if !strings.EqualFold(u.Scheme, up.Scheme) || !sameHost(u, up) {
		return "", false
	}
	path := u.EscapedPath()
	base := strings.TrimSuffix(up.EscapedPath(), "/")
	if base != "" && base[0] != '/' {
		base = "/" + base
	}
	if base != "" {
		if path != base && !strings.HasPrefix(path, base+"/") {
			return "", false // on the upstream host, outside what Loupe serves
		}
		path = strings.TrimPrefix(path, base)
	}
	if path == "" {
		path = "/"
	}
	out := path
	if u.RawQuery != "" || u.ForceQuery {
		out += "?" + u.RawQuery
	}
	if u.Fragment != "" {
		out += "#" + u.EscapedFragment()
	}
	return out, true
}

// mapRefresh maps the URL of a Refresh header ("5; url=http://…").
func (p *Proxy) mapRefresh(v string) (string, bool) {
	delay, rest, ok := strings.Cut(v, ";")
	if !ok {
		return "", false
	}
	rest = strings.TrimSpace(rest)
	if len(rest) < 4 || !strings.EqualFold(rest[:4], "url=") {
		return "", false
	}
	target := strings.TrimSpace(rest[4:])
	if len(target) >= 2 && (target[0] == '\'' || target[0] == '"') && target[len(target)-1] == target[0] {
		target = target[1 : len(target)-1]
	}
	m, ok := p.mapURL(target)
	if !ok {
		return "", false
	}
	return delay + "; url=" + m, true
}

// mapLink maps the targets of a Link header's link-values
// ("<url>; rel=preload, <url2>; rel=next"): every other byte is kept,
// including quoted parameters, which may hold commas and angle brackets.
func (p *Proxy) mapLink(v string) (string, bool) {
	var b strings.Builder
	changed := false
	for i := 0; i < len(v); {
		if v[i] != '<' {
			b.WriteByte(v[i])
			i++
			continue
		}
		end := strings.IndexByte(v[i:], '>')
		if end < 0 {
			b.WriteString(v[i:])
			break
		}
		target := v[i+1 : i+end]
		if m, ok := p.mapURL(target); ok {
			b.WriteString("<" + m + ">")
			changed = true
		} else {
			b.WriteString(v[i : i+end+1])
		}
		i += end + 1
		// The parameters, up to the comma that ends this link-value.
		for i < len(v) && v[i] != ',' {
			if v[i] != '"' {
				b.WriteByte(v[i])
				i++
				continue
			}
			j := i + 1
			for j < len(v) && v[j] != '"' {
				if v[j] == '\\' {
					j++
				}
				j++
			}
			j = min(j+1, len(v))
			b.WriteString(v[i:j])
			i = j
		}
	}
	if !changed {
		return "", false
	}
	return b.String(), true
}

// sameHost reports whether u and up name the same host and port, a
// missing port being the scheme's default.
func sameHost(u, up *url.URL) bool {
	if !strings.EqualFold(u.Hostname(), up.Hostname()) {
		return false
	}
	return portOrDefault(u) == portOrDefault(up)
}

func portOrDefault(u *url.URL) string {
	if p := u.Port(); p != "" {
		return p
	}
	if strings.EqualFold(u.Scheme, "https") {
		return "443"
	}
	return "80"
}

// hostName strips the port of a Host header value.
func hostName(hostport string) string {
	if h, _, err := net.SplitHostPort(hostport); err == nil {
		return strings.Trim(h, "[]")
	}
	return strings.Trim(hostport, "[]")
}

// mapCookieDomain rewrites a Set-Cookie line whose Domain attribute is
// upName (with or without a leading dot) to pubName, leaving every other
// byte alone.
func mapCookieDomain(line, upName, pubName string) string {
	parts := strings.Split(line, ";")
	changed := false
	for i := 1; i < len(parts); i++ {
		k, v, ok := strings.Cut(parts[i], "=")
		if !ok || !strings.EqualFold(strings.TrimSpace(k), "domain") {
			continue
		}
		if !strings.EqualFold(strings.TrimPrefix(strings.TrimSpace(v), "."), upName) {
			continue
		}
		changed = true
		if _, err := netip.ParseAddr(pubName); err == nil {
			parts[i] = "" // dropped below
		} else {
			parts[i] = " Domain=" + pubName
		}
	}
	if !changed {
		return line
	}
	kept := parts[:0]
	for i, part := range parts {
		if i == 0 || part != "" {
			kept = append(kept, part)
		}
	}
	return strings.Join(kept, ";")
}
