package proxy

import (
	"context"
	"errors"
	"fmt"
	"hash/fnv"
	"math"
	"net/http"
	"path"
	"strings"

	"github.com/loupe-dev/loupe/collector"
)

// RecordRules say which pages of a site get the recorder. Rules builds the
// decision function for Config.Record from them.
type RecordRules struct {
	// Sampling is the fraction of sessions recorded, from 0 to 1. It is
	// decided from the session id, so a session is recorded on all of its
	// pages or on none. The zero value records no session; 1 records all.
	Sampling float64
	// Include are URL path globs (see PathGlob) of the pages recorded. If
	// empty, every path is.
	Include []string
	// Exclude are URL path globs of pages never recorded; they win over
	// Include.
	Exclude []string
	// IgnorePrivacySignals records visitors who send Do-Not-Track
	// ("DNT: 1") or Global Privacy Control ("Sec-GPC: 1"). If false, their
	// pages pass through untouched: no recorder, no session cookie.
	IgnorePrivacySignals bool
}

// Func compiles the rules into a Config.Record function. A malformed glob or
// a sampling rate outside 0..1 is an error.
func (rr RecordRules) Func() (func(*http.Request) bool, error) {
	if math.IsNaN(rr.Sampling) || rr.Sampling < 0 || rr.Sampling > 1 {
		return nil, fmt.Errorf("sampling %v is not between 0 and 1", rr.Sampling)
	}
	var errs []error
	for _, g := range append(append([]string(nil), rr.Include...), rr.Exclude...) {
		if err := CheckPathGlob(g); err != nil {
			errs = append(errs, err)
		}
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	return rr.record, nil
}

func (rr RecordRules) record(r *http.Request) bool {
	if !rr.IgnorePrivacySignals && PrivacySignal(r) {
		return false
	}
	p := r.URL.Path
	for _, g := range rr.Exclude {
		if PathGlob(g, p) {
			return false
		}
	}
	if len(rr.Include) > 0 {
		in := false
		for _, g := range rr.Include {
			if in = PathGlob(g, p); in {
				break
			}
		}
		if !in {
			return false
		}
	}
	switch {
	case rr.Sampling <= 0:
		return false
	case rr.Sampling >= 1:
		return true
	}
	return sampled(SessionID(r), rr.Sampling)
}

// PrivacySignal reports whether r's browser asks not to be tracked:
// "DNT: 1" or Global Privacy Control's "Sec-GPC: 1".
func PrivacySignal(r *http.Request) bool {
	return strings.TrimSpace(r.Header.Get("DNT")) == "1" || strings.TrimSpace(r.Header.Get("Sec-GPC")) == "1"
}

// sampled reports whether the session id falls in the recorded fraction:
// the first 53 bits of its FNV-1a hash, as a number in [0, 1), are below
// rate. The same id gives the same answer in every process and release.
func sampled(id string, rate float64) bool {
	if id == "" {
		return false
	}
	h := fnv.New64a()
	h.Write([]byte(id))
	return float64(h.Sum64()>>11)/(1<<53) < rate
}

// CheckPathGlob reports whether g is a well-formed PathGlob pattern.
func CheckPathGlob(g string) error {
	if !strings.HasPrefix(g, "/") {
		return fmt.Errorf("path glob %q does not start with /", g)
	}
	for _, seg := range strings.Split(g[1:], "/") {
		if seg == "**" {
			continue
		}
		if strings.Contains(seg, "**") {
			return fmt.Errorf("path glob %q: ** must be a whole path segment", g)
		}
		if _, err := path.Match(seg, ""); err != nil {
			return fmt.Errorf("path glob %q: %w", g, err)
		}
	}
	return nil
}

// PathGlob reports whether the URL path p matches the glob g. g is a path
// of segments, each a path.Match pattern ("*" matches within one segment),
// or "**", which matches any number of segments, none included:
// "/checkout/**" matches /checkout, /checkout/ and /checkout/pay/card. A
// malformed pattern matches nothing.
func PathGlob(g, p string) bool {
	if !strings.HasPrefix(g, "/") || !strings.HasPrefix(p, "/") {
		return false
	}
	return matchSegments(strings.Split(g[1:], "/"), strings.Split(p[1:], "/"))
}

func matchSegments(g, p []string) bool {
	for len(g) > 0 {
		if g[0] == "**" {
			rest := g[1:]
			for len(rest) > 0 && rest[0] == "**" {
				rest = rest[1:]
			}
			if len(rest) == 0 {
				return true
			}
			for i := 0; i <= len(p); i++ {
				if matchSegments(rest, p[i:]) {
					return true
				}
			}
			return false
		}
		if len(p) == 0 {
			return false
		}
		if ok, err := path.Match(g[0], p[0]); err != nil || !ok {
			return false
		}
		g, p = g[1:], p[1:]
	}
	return len(p) == 0
}

// pageSessionKey carries a *pageSession in the request Config.Record sees.
type pageSessionKey struct{}

// pageSession resolves the session of the page being decided, only if the
// decision asks for it.
type pageSession struct {
	p      *Proxy
	resp   *http.Response
	sess   collector.Session
	cookie *http.Cookie
	asked  bool
}

func (ps *pageSession) id() string {
	if !ps.asked {
		ps.asked = true
		ps.sess, ps.cookie = ps.p.session(ps.resp)
	}
	return ps.sess.ID
}

// SessionID returns the id of the session the page answering r belongs
// to, for a Config.Record function: the one the visitor's session cookie
// proves, or the new one the proxy starts. A decision that asks for it is
// one about the session: the visitor gets the session cookie whatever the
// answer, so that the next page load is decided the same way. It returns ""
// for a request the proxy did not hand to Config.Record.
func SessionID(r *http.Request) string {
	ps, _ := r.Context().Value(pageSessionKey{}).(*pageSession)
	if ps == nil {
		return ""
	}
	return ps.id()
}

// recording reports whether resp, an HTML page, is to get the recorder,
// asking Config.Record. The request Record sees is the visitor's as the
// upstream got it, but with the public URL path (without the upstream's
// base path). If the decision needed the session, the page's session is
// settled here: a recorded page continues it, and a page that is not
// recorded still carries the session cookie.
func (p *Proxy) recording(resp *http.Response) bool {
	if p.cfg.Record == nil {
		return true
	}
	ps := &pageSession{p: p, resp: resp}
	req := resp.Request
	r := req.WithContext(context.WithValue(req.Context(), pageSessionKey{}, ps))
	u := *req.URL
	u.Path = strings.TrimPrefix(u.Path, strings.TrimSuffix(p.cfg.Upstream.Path, "/"))
	if !strings.HasPrefix(u.Path, "/") {
		u.Path = "/" + u.Path
	}
	u.RawPath = ""
	r.URL = &u
	rec := p.cfg.Record(r)
	if !ps.asked {
		return rec
	}
	if rec {
		// inject's own p.session must find this session, new or not.
		resp.Request = req.WithContext(context.WithValue(req.Context(), sessionCookieKey{}, ps.cookie.Value))
		return true
	}
	h := resp.Header
	h.Add("Set-Cookie", ps.cookie.String())
	h.Set("Cache-Control", privateCacheControl(h.Get("Cache-Control")))
	return false
}
