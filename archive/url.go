package archive

import (
	"errors"
	"fmt"
	"net"
	"net/url"
	"strings"
)

// errNotHTTP is returned by NormalizeURL for anything but an absolute
// http or https URL with a host.
var errNotHTTP = errors.New("not an absolute http or https URL")

// NormalizeURL returns the form of an asset URL the archive indexes by:
// absolute http or https only; scheme and host lowercased; the scheme's
// default port, the fragment and any userinfo removed; an empty path
// becomes "/" and an empty query ("?") is dropped (RFC 3986 §6.2.3).
// The path and query are otherwise kept exactly, escaping included: the
// origin may treat "%2F" and "/" differently, so they are not equivalent.
func NormalizeURL(raw string) (string, error) {
	u, err := url.Parse(strings.TrimSpace(raw))
	if err != nil {
		return "", fmt.Errorf("normalize url: %w", err)
	}
	scheme := strings.ToLower(u.Scheme)
	if (scheme != "http" && scheme != "https") || u.Opaque != "" {
		return "", fmt.Errorf("normalize url %q: %w", raw, errNotHTTP)
	}
	host, port := strings.ToLower(u.Hostname()), u.Port()
	if host == "" {
		return "", fmt.Errorf("normalize url %q: %w", raw, errNotHTTP)
	}
	if (scheme == "http" && port == "80") || (scheme == "https" && port == "443") {
		port = ""
	}
	switch {
	case port != "":
		u.Host = net.JoinHostPort(host, port)
	case strings.Contains(host, ":"): // IPv6 literal
		u.Host = "[" + host + "]"
	default:
		u.Host = host
	}
	u.Scheme = scheme
	u.User = nil
	u.Fragment, u.RawFragment = "", ""
	u.ForceQuery = false
	if u.Path == "" && u.RawPath == "" {
		u.Path = "/"
	}
	return u.String(), nil
}
