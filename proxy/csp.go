package proxy

import (
	"net/http"

	"github.com/loupe-dev/loupe/injector/csp"
)

// cspHeaders are the response headers that carry policies. A Report-Only
// policy is adjusted the same way, so it does not report the recorder.
var cspHeaders = []string{"Content-Security-Policy", "Content-Security-Policy-Report-Only"}

// recorderCSP fits the recorder into resp's Content-Security-Policy: it
// adjusts every policy header line (see package csp: only the recorder's
// own sources are added) and returns what the injector needs for the tag's
// nonce and for <meta> policies.
//
// A response with policy headers gets a fresh nonce. One without gets none:
// the tag is written before any <meta> policy (it follows <head> and a
// charset <meta> only), and a meta policy governs only what is fetched
// after it (CSP3 §3.3), so there the recorder's uploads need a source, never
// its script a nonce. (The exception, one <meta> declaring both charset and
// policy, which the tag follows, the injector handles itself.)
//
// If the body is then sent as the origin sent it after all, the adjusted
// headers only allow a nonce no element carries and Loupe's own two URLs.
func (p *Proxy) recorderCSP(resp *http.Response) csp.Recorder {
	host, scheme := publicHost(resp.Request)
	// Scheme is always set: a zero Recorder would leave <meta> policies
	// unadjusted.
	r := csp.Recorder{Scheme: scheme}
	h := resp.Header
	for _, k := range cspHeaders {
		if len(h.Values(k)) > 0 {
			r.Nonce = csp.NewNonce()
			break
		}
	}
	if sourceSafe(host, false) && sourceSafe(p.cfg.Prefix, true) {
		// A source naming exactly the recorder's URL (and the ingest's)
		// admits nothing else of the site, where 'self' would. Where the
		// host cannot be written as a CSP host-source (an IPv6 literal,
		// odd bytes), 'self' it is.
		origin := scheme + "://" + host
		r.Script = origin + p.cfg.Prefix + "recorder.js"
		r.Connect = origin + p.cfg.Prefix + "ingest"
	}
	for _, k := range cspHeaders {
		vals := h.Values(k)
		if len(vals) == 0 {
			continue
		}
		adjusted := make([]string, len(vals))
		for i, v := range vals {
			adjusted[i] = csp.Header(v, r)
		}
		h[k] = adjusted
	}
	return r
}

// sourceSafe reports whether s may go into a CSP host-source as a host
// (host-char, '.', and a ':port') or, if path, as its path: only bytes that
// need no percent-encoding there and cannot end a source, a directive or a
// policy.
func sourceSafe(s string, path bool) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9', c == '-', c == '.':
		case c == ':' && !path:
		case path && (c == '/' || c == '_' || c == '~'):
		default:
			return false
		}
	}
	return true
}
