package archive

import (
	"fmt"
	"mime"
	"net/http"
	"net/url"
	"path"
	"strings"
)

// defaultMaxBytes is Policy.MaxBytes when it is zero.
const defaultMaxBytes = 8 << 20

// Policy decides which responses the archive keeps. The zero value
// archives stylesheets, fonts and images up to 8 MiB that a shared cache
// could keep.
type Policy struct {
	// ExtraTypes are media types archived besides the built-in ones
	// (text/css, font/*, application/font-*, application/vnd.ms-fontobject,
	// image/*), e.g. "application/javascript". An entry ending in "/*"
	// matches every subtype. Matching ignores case and parameters. If nil,
	// only the built-in types are archived.
	ExtraTypes []string

	// MaxBytes bounds a body the archive keeps, in bytes, both as received
	// (encoded) and decoded. A response whose Content-Length is larger is
	// not even buffered. If zero, 8 MiB; if negative, nothing is archived.
	MaxBytes int64

	// PublicPatterns mark URL paths the operator knows to be public
	// (path.Match globs on the URL's path, e.g. "/static/*"; "*" does not
	// cross "/", so "/static/*/*" is needed one level down). A matching
	// response is archived even if its headers say no-store or private,
	// it sets cookies, varies on credentials, or answers a request
	// carrying credentials. If nil, only the headers decide.
	PublicPatterns []string
}

// maxBytes returns the effective body bound.
func (p *Policy) maxBytes() int64 {
	if p.MaxBytes == 0 {
		return defaultMaxBytes
	}
	return p.MaxBytes
}

// validate reports a malformed pattern or type.
func (p *Policy) validate() error {
	for _, pat := range p.PublicPatterns {
		if _, err := path.Match(pat, "/"); err != nil {
			return fmt.Errorf("public pattern %q: %w", pat, err)
		}
	}
	for _, t := range p.ExtraTypes {
		if !strings.Contains(t, "/") {
			return fmt.Errorf("extra type %q: not a media type", t)
		}
	}
	return nil
}

// archivableType reports whether a Content-Type value is one the archive
// keeps. The empty string is not archivable: the proxy archives only what
// the origin labelled.
func (p *Policy) archivableType(contentType string) bool {
	mt, _, err := mime.ParseMediaType(contentType)
	if err != nil {
		return false
	}
	switch {
	case mt == "text/css",
		strings.HasPrefix(mt, "font/"),
		strings.HasPrefix(mt, "application/font-"),
		mt == "application/vnd.ms-fontobject",
		strings.HasPrefix(mt, "image/"):
		return true
	}
	for _, t := range p.ExtraTypes {
		t = strings.ToLower(strings.TrimSpace(t))
		if t == mt || (strings.HasSuffix(t, "/*") && strings.HasPrefix(mt, t[:len(t)-1])) {
			return true
		}
	}
	return false
}

// public reports whether the operator marked u's path public.
func (p *Policy) public(u *url.URL) bool {
	for _, pat := range p.PublicPatterns {
		if ok, _ := path.Match(pat, u.Path); ok {
			return true
		}
	}
	return false
}

// policySkip returns why resp must not be archived, or "" if it may be.
// Rules that protect privacy (RFC 9111 §3 and §3.5, made stricter: a
// response that sets a cookie is not kept either, §7.3) yield to
// PublicPatterns; a request's credentials also yield to the response
// saying "public" or "s-maxage" (§3.5). Method, status, type, size and
// encoding rules never yield.
func (p *Policy) policySkip(resp *http.Response) string {
	req := resp.Request
	if req == nil || req.URL == nil {
		return "no request"
	}
	if req.Method != http.MethodGet && req.Method != "" {
		return "method " + req.Method
	}
	if resp.StatusCode != http.StatusOK {
		return fmt.Sprintf("status %d", resp.StatusCode)
	}
	max := p.maxBytes()
	if max < 0 {
		return "archiving disabled"
	}
	if resp.ContentLength > max {
		return "too large"
	}
	if !p.archivableType(resp.Header.Get("Content-Type")) {
		return "content type"
	}
	if _, ok := decodable(resp.Header.Values("Content-Encoding")); !ok {
		return "content encoding"
	}
	if p.public(req.URL) {
		return ""
	}
	cc := policyCacheControl(resp.Header.Values("Cache-Control"))
	switch {
	case cc["no-store"]:
		return "no-store"
	case cc["private"]:
		return "private"
	case len(resp.Header.Values("Set-Cookie")) > 0:
		return "sets cookie"
	}
	for _, v := range resp.Header.Values("Vary") {
		for _, f := range strings.Split(v, ",") {
			switch strings.ToLower(strings.TrimSpace(f)) {
			case "*", "cookie", "authorization":
				return "vary " + strings.TrimSpace(f)
			}
		}
	}
	if req.Header.Get("Authorization") != "" || req.Header.Get("Cookie") != "" {
		if !cc["public"] && !cc["s-maxage"] {
			return "request credentials"
		}
	}
	return ""
}

// policyCacheControl returns the directive names present in Cache-Control
// header values, lowercased. Arguments are ignored: "private" with field
// names (RFC 9111 §5.2.2.7) is still treated as private.
func policyCacheControl(values []string) map[string]bool {
	m := make(map[string]bool)
	for _, v := range values {
		for _, d := range strings.Split(v, ",") {
			name, _, _ := strings.Cut(d, "=")
			if name = strings.ToLower(strings.TrimSpace(name)); name != "" {
				m[name] = true
			}
		}
	}
	return m
}
